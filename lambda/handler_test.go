package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/rotator"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu/emutest"
)

const functionARN = "arn:aws:lambda:us-east-1:012345678912:function:kms-rotator"

// startFunction builds the handler the way main does, from the environment,
// against an emulator seeded with events/fleet.json.
func startFunction(t *testing.T, env map[string]string) (*handler, *emutest.Emu, *emutest.Buffer) {
	t.Helper()
	fleet, err := os.ReadFile("../events/fleet.json")
	if err != nil {
		t.Fatal(err)
	}
	emu := emutest.Start(t, kmsemu.Options{Log: &bytes.Buffer{}}, string(fleet))
	// The SDK's standard configuration, as in Lambda or make demo.
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ENDPOINT_URL", emu.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	out := &emutest.Buffer{}
	env = withLedger(t, env)
	env[settings.EnvRotateRPS] = "100"
	h, err := newHandler(context.Background(), func(k string) string { return env[k] }, out)
	if err != nil {
		t.Fatal(err)
	}
	return h, emu, out
}

func invoke(h *handler, payload []byte) (*rotator.Report, error) {
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{
		AwsRequestID: "0f3c6a3e-req", InvokedFunctionArn: functionARN,
	})
	// Through Invoke, the entry point aws-lambda-go calls with the raw bytes.
	out, err := h.Invoke(ctx, payload)
	if err != nil {
		return nil, err
	}
	var rep rotator.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		return nil, fmt.Errorf("report is not JSON: %w", err)
	}
	return &rep, nil
}

func TestHandlerRunsEverySamplePayload(t *testing.T) {
	for _, tc := range []struct {
		file     string
		mode     string
		rotated  int
		wouldRot int
	}{
		{"plan.json", "plan", 0, 5},
		{"report.json", "report", 0, 5},
		{"scheduled.json", "scheduled", 5, 0},
		{"incident.json", "incident", 3, 0},
		{"incident-eventbridge.json", "incident", 3, 0},
		{"incident-tag.json", "incident", 6, 0},
	} {
		t.Run(tc.file+" → "+tc.mode+" report", func(t *testing.T) {
			h, _, out := startFunction(t, map[string]string{})
			payload, err := os.ReadFile("../events/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			// An event's time must be recent (ROTATOR_INCIDENT_MAX_AGE).
			payload = bytes.Replace(payload, []byte(`"2026-11-26T06:05:00Z"`), []byte(`"`+time.Now().UTC().Format(time.RFC3339)+`"`), 1)
			rep, err := invoke(h, payload)
			if err != nil {
				t.Fatalf("Handle: %v", err)
			}
			if string(rep.Mode) != tc.mode || rep.Summary.Rotated != tc.rotated || rep.Summary.WouldRotate != tc.wouldRot {
				t.Fatalf("mode %s, %d rotated, %d would-rotate; want %s, %d, %d", rep.Mode, rep.Summary.Rotated, rep.Summary.WouldRotate, tc.mode, tc.rotated, tc.wouldRot)
			}
			// Every JSON log line (not the EMF ones) carries the request ID.
			for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Fatalf("stdout line is not JSON: %q", l)
				}
				if _, emf := m["_aws"]; !emf && m["requestId"] != "0f3c6a3e-req" {
					t.Errorf("log line without the request ID: %q", l)
				}
			}
		})
	}
}

func TestHandlerRejectsBadInputBeforeAnyAWSCall(t *testing.T) {
	for _, tc := range []struct{ name, payload, want string }{
		{"unknown mode", `{"mode":"sweep"}`, "mode"},
		{"incident without reason", `{"mode":"incident","keys":["alias/payments"]}`, "reason"},
		{"another account's key", `{"mode":"incident","reason":"x","keys":["arn:aws:kms:us-east-1:999999999999:key/1234abcd-12ab-34cd-56ef-1234567890ab"]}`, "keys[0]"},
		{"not JSON", `{`, "payload"},
		{"empty payload", ``, "payload"},
		{"trailing data after the request", `{"mode":"plan"} junk`, "payload"},
		{"a second request after the first", `{"mode":"plan"}{"mode":"incident"}`, "payload"},
	} {
		t.Run(tc.name+" → error naming the field", func(t *testing.T) {
			h, emu, _ := startFunction(t, map[string]string{})
			_, err := invoke(h, []byte(tc.payload))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Handle error = %v, want one naming %q", err, tc.want)
			}
			var ve *request.ValidationError
			if !errors.As(err, &ve) {
				t.Errorf("error %T is not a *request.ValidationError (errorType ValidationError)", err)
			}
			for op, st := range emu.Server.Stats().Operations {
				if st.Calls > 0 {
					t.Errorf("%d %s calls for a rejected payload", st.Calls, op)
				}
			}
		})
	}
}

func TestHandlerNeedsTheLambdaContext(t *testing.T) {
	h, _, _ := startFunction(t, map[string]string{})
	if _, err := h.Invoke(context.Background(), []byte(`{"mode":"plan"}`)); err == nil {
		t.Fatal("Handle without a Lambda context succeeded; it cannot know the account")
	}
}

func TestInvalidConfigurationFailsTheColdStart(t *testing.T) {
	_, err := newHandler(context.Background(), func(k string) string {
		return map[string]string{settings.EnvReserve: "25", settings.EnvLedgerTable: "kms-rotator-ledger"}[k]
	}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "ROTATOR_RESERVE") {
		t.Fatalf("newHandler error = %v, want one naming ROTATOR_RESERVE", err)
	}
	// Without a ledger table the function cannot claim a key before
	// rotating it: the cold start fails, naming the variable.
	_, err = newHandler(context.Background(), func(string) string { return "" }, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), settings.EnvLedgerTable) {
		t.Fatalf("newHandler without a ledger table: error = %v, want one naming %s", err, settings.EnvLedgerTable)
	}
}

func TestMemberRoleNameTurnsOnOrganizationMode(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want bool
	}{{nil, false}, {map[string]string{settings.EnvMemberRoleName: "kms-rotator-member"}, true}} {
		env := map[string]string{settings.EnvLedgerTable: "kms-rotator-ledger"}
		maps.Copy(env, tc.env)
		h, err := newHandler(context.Background(), func(k string) string { return env[k] }, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if h.organization != tc.want {
			t.Errorf("env %v: organization %v, want %v", tc.env, h.organization, tc.want)
		}
	}
}
