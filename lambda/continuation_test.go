package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/rotator"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu/emutest"
)

// lambdaCall is one request the function sent to the Lambda API.
type lambdaCall struct {
	path, invocationType, authorization string
	body                                []byte
}

// TestSweepPastItsDeadlineInvokesItself runs a sweep through the handler
// built the way main builds it (real SDK clients, the Lambda client
// included) against an endpoint that serves the emulator and records Lambda
// Invoke calls: a sweep that cannot finish before its deadline invokes the
// function's own unqualified ARN asynchronously with a payload that decodes
// to the next link of the chain.
func TestSweepPastItsDeadlineInvokesItself(t *testing.T) {
	emu := kmsemu.New(kmsemu.Options{Account: "012345678912"})
	if err := emu.LoadFleet(strings.NewReader(`[{"alias":"alias/due","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"},"count":60}]`)); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var calls []lambdaCall
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/2015-03-31/functions/") {
			emu.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		calls = append(calls, lambdaCall{r.URL.Path, r.Header.Get("X-Amz-Invocation-Type"), r.Header.Get("Authorization"), body})
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted) // Lambda's answer to an Event invocation
	}))
	t.Cleanup(srv.Close)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ENDPOINT_URL", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	// 60 due keys need 6 s. A rotation goes out only while a call's
	// timeout and the confirm window still fit before the call deadline.
	env := withLedger(t, map[string]string{settings.EnvRotateRPS: "10", settings.EnvCallTimeout: "1s", settings.EnvConfirmWait: "0s"})
	h, err := newHandler(context.Background(), func(k string) string { return env[k] }, &emutest.Buffer{})
	if err != nil {
		t.Fatal(err)
	}

	// 3 s left: the 2 s minimum margin leaves 1 s for keys.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{
		AwsRequestID: "0f3c6a3e-req", InvokedFunctionArn: functionARN + ":live",
	})
	out, err := h.Invoke(ctx, []byte(`{"mode":"scheduled"}`))
	if err != nil {
		t.Fatal(err)
	}
	var rep rotator.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	c := rep.Continuation
	if c == nil || !c.Started || c.Chain != 0 || c.Deferred == 0 || c.Deferred != rep.Summary.Deferred || c.Next == "" {
		t.Fatalf("continuation %+v with summary %+v; want a started continuation for the deferred keys", c, rep.Summary)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 1 {
		t.Fatalf("%d Lambda API calls, want 1", len(calls))
	}
	got := calls[0]
	if want := "/2015-03-31/functions/" + functionARN + "/invocations"; got.path != want {
		t.Errorf("invoked %s, want %s (the unqualified ARN)", got.path, want)
	}
	if got.invocationType != "Event" || !strings.Contains(got.authorization, "/us-east-1/lambda/aws4_request") {
		t.Errorf("X-Amz-Invocation-Type %q, Authorization %q; want Event, signed for lambda", got.invocationType, got.authorization)
	}
	scope, _ := request.ScopeFromFunctionARN(functionARN)
	next, err := request.Decode(got.body, scope)
	if err != nil {
		t.Fatalf("payload %s: %v", got.body, err)
	}
	if next.Mode != request.ModeScheduled || next.Continuation == nil ||
		*next.Continuation != (request.Continuation{RunID: rep.RunID, After: c.Next, Chain: 1}) {
		t.Errorf("payload decodes to %+v (continuation %+v), want link 1 of run %s after %s", next, next.Continuation, rep.RunID, c.Next)
	}
}
