package rotator

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

const testFunctionARN = "arn:aws:lambda:us-east-1:" + testAccount + ":function:kms-rotator"

// fakeLambda stands in for the Lambda service: Invoke records the
// asynchronous invocation; drain runs each queued link in-process, the way
// Lambda would run the function again with the payload (request.Decode, then
// Engine.Run with a fresh deadline).
type fakeLambda struct {
	mu     sync.Mutex
	queue  [][]byte
	inputs []*lambda.InvokeInput
}

func (f *fakeLambda) Invoke(_ context.Context, in *lambda.InvokeInput, _ ...func(*lambda.Options)) (*lambda.InvokeOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inputs = append(f.inputs, in)
	f.queue = append(f.queue, in.Payload)
	return &lambda.InvokeOutput{StatusCode: 202}, nil
}

func (f *fakeLambda) pop() ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queue) == 0 {
		return nil, false
	}
	p := f.queue[0]
	f.queue = f.queue[1:]
	return p, true
}

// runChain runs req, then every link it (and its links) started, each with
// window of working time before its cutoff; it returns the reports in order.
func runChain(t *testing.T, h *harness, f *fakeLambda, req request.Request, window time.Duration, maxLinks int) []*Report {
	t.Helper()
	const margin = time.Second
	h.engine.margin = func(time.Duration) time.Duration { return margin }
	var reps []*Report
	for {
		ctx, cancel := context.WithTimeout(context.Background(), window+margin)
		rep, err := h.engine.Run(ctx, req, Invocation{RequestID: fmt.Sprintf("req-%d", len(reps)), Scope: testScope, FunctionARN: testFunctionARN})
		cancel()
		if err != nil {
			t.Fatalf("link %d: Run: %v", len(reps), err)
		}
		checkReport(t, rep)
		reps = append(reps, rep)
		p, ok := f.pop()
		if !ok {
			return reps
		}
		if len(reps) >= maxLinks {
			t.Fatalf("more than %d links", maxLinks)
		}
		if req, err = request.Decode(p, testScope); err != nil {
			t.Fatalf("link %d payload %s: %v", len(reps), p, err)
		}
	}
}

// chainFleet has due keys (never rotated, created 200 days ago) and keys
// rotated 10 days ago, all opted in. (A fleet entry's count 0 means 1.)
func chainFleet(due, fresh int) string {
	entries := []string{fmt.Sprintf(`{"alias":"alias/due","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"},"count":%d}`, due)}
	if fresh > 0 {
		entries = append(entries, fmt.Sprintf(`{"alias":"alias/fresh","createdDaysAgo":200,"rotations":[{"type":"AUTOMATIC","daysAgo":10}],"tags":{"kms-rotator":"enabled"},"count":%d}`, fresh))
	}
	return "[" + strings.Join(entries, ",") + "]"
}

// handled counts, per key ARN, the entries across a chain's reports whose
// outcome is not deferred.
func handled(reps []*Report) map[string]int {
	n := map[string]int{}
	for _, rep := range reps {
		for _, k := range rep.Keys {
			if k.Outcome != Deferred {
				n[k.KeyARN]++
			}
		}
	}
	return n
}

func TestContinuationCompletesAFleetTooBigForOneRun(t *testing.T) {
	cfg := shortRunConfig()
	cfg.RotateRPS = 20 // about 16 rotations in each link's 0.8 s
	cfg.ContinuationMax = 30
	const due, fresh = 40, 40
	h := newHarness(t, kmsemu.Options{}, chainFleet(due, fresh), cfg)
	f := &fakeLambda{}
	h.engine.SetLambda(f)

	reps := runChain(t, h, f, request.Request{Mode: request.ModeScheduled, Source: request.SourceScheduledEvent}, 800*time.Millisecond, 31)

	if len(reps) < 2 {
		t.Fatalf("%d link(s): the fleet fit in one run, the test proves nothing", len(reps))
	}
	n := handled(reps)
	if len(n) != due+fresh {
		t.Errorf("%d keys handled across the chain, want all %d", len(n), due+fresh)
	}
	rotated := 0
	for arn, c := range n {
		if c != 1 {
			t.Errorf("key %s handled %d times, want once", arn, c)
		}
	}
	for _, rep := range reps {
		rotated += rep.Summary.Rotated
	}
	if rotated != due {
		t.Errorf("rotated %d keys across the chain, want %d", rotated, due)
	}
	if got := h.emu.Server.Stats().Op("RotateKeyOnDemand").Calls; got != due {
		t.Errorf("the emulator saw %d RotateKeyOnDemand calls, want %d (one per due key)", got, due)
	}
	root := reps[0].RunID
	for i, rep := range reps {
		c := rep.Continuation
		if c == nil {
			t.Fatalf("link %d: no continuation object", i)
		}
		last := i == len(reps)-1
		if c.RunID != root || c.Chain != i || c.Started == last {
			t.Errorf("link %d: continuation %+v, want runId %s, chain %d, started %v", i, *c, root, i, !last)
		}
		if last && (c.Deferred != 0 || rep.Summary.Deferred != 0) {
			t.Errorf("last link deferred %d keys", rep.Summary.Deferred)
		}
		if !last && (c.Deferred != rep.Summary.Deferred || c.Deferred == 0 || c.Next == "") {
			t.Errorf("link %d: continuation %+v for %d deferred keys", i, *c, rep.Summary.Deferred)
		}
		if i > 0 && c.After != reps[i-1].Continuation.Next {
			t.Errorf("link %d starts after %s, the previous link handed on %s", i, c.After, reps[i-1].Continuation.Next)
		}
	}
	for _, in := range f.inputs {
		if aws.ToString(in.FunctionName) != testFunctionARN || in.InvocationType != lambdatypes.InvocationTypeEvent {
			t.Errorf("Invoke(%s, %s), want the function's own ARN, asynchronously", aws.ToString(in.FunctionName), in.InvocationType)
		}
	}
	if got := strings.Count(h.metrics.String(), `"Continuations":1`); got != len(reps)-1 {
		t.Errorf("%d EMF lines with Continuations 1, want %d", got, len(reps)-1)
	}
}

func TestContinuationStopsAtTheChainBound(t *testing.T) {
	cfg := shortRunConfig()
	cfg.RotateRPS = 20
	cfg.ContinuationMax = 1
	const due = 80
	h := newHarness(t, kmsemu.Options{}, chainFleet(due, 0), cfg)
	f := &fakeLambda{}
	h.engine.SetLambda(f)

	reps := runChain(t, h, f, request.Request{Mode: request.ModeScheduled, Source: request.SourceScheduledEvent}, 800*time.Millisecond, 2)

	if len(reps) != 2 {
		t.Fatalf("%d links, want 2 (the first run and ROTATOR_CONTINUATION_MAX=1 continuation)", len(reps))
	}
	last := reps[1]
	c := last.Continuation
	if c == nil || c.Started || c.NotStarted != "chain-limit" || c.Deferred == 0 || c.Deferred != last.Summary.Deferred {
		t.Fatalf("last link: continuation %+v, summary %+v; want chain-limit with the rest deferred", c, last.Summary)
	}
	n := handled(reps)
	for arn, k := range n {
		if k != 1 {
			t.Errorf("key %s handled %d times", arn, k)
		}
	}
	if len(n)+last.Summary.Deferred != due {
		t.Errorf("%d keys handled + %d deferred, want %d", len(n), last.Summary.Deferred, due)
	}
	if got := strings.Count(h.metrics.String(), `"Continuations":1`); got != 1 {
		t.Errorf("%d EMF lines with Continuations 1, want 1", got)
	}
}

func TestContinuationCursor(t *testing.T) {
	h := newHarness(t, kmsemu.Options{}, chainFleet(3, 7), fastConfig())
	all := h.run(t, request.Request{Mode: request.ModePlan, DryRun: true})
	if all.Continuation != nil {
		t.Fatalf("a run that finished has continuation %+v", *all.Continuation)
	}
	cursor := all.Keys[3].KeyARN
	for _, tc := range []struct {
		name string
		req  request.Request
	}{
		{"plan after the cursor handles only later keys", request.Request{Mode: request.ModePlan, DryRun: true}},
		{"report after the cursor handles only later keys", request.Request{Mode: request.ModeReport}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Continuation = &request.Continuation{RunID: "root-1", After: cursor, Chain: 2}
			rep := h.run(t, tc.req)
			if len(rep.Keys) != 6 || rep.Keys[0].KeyARN != all.Keys[4].KeyARN {
				t.Fatalf("%d entries starting at %v, want the 6 keys after %s", len(rep.Keys), rep.Keys, cursor)
			}
			c := rep.Continuation
			if c == nil || c.RunID != "root-1" || c.Chain != 2 || c.After != cursor || c.Started || c.Deferred != 0 {
				t.Fatalf("continuation %+v, want the chain's run ID, link 2, nothing deferred", c)
			}
		})
	}
}

func TestContinuationNotStarted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lambda bool
		max    int
		want   string
	}{
		{"without a Lambda client the rest waits (disabled)", false, 8, "disabled"},
		{"ROTATOR_CONTINUATION_MAX=0 disables continuing", true, 0, "disabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := shortRunConfig()
			cfg.RotateRPS = 20
			cfg.ContinuationMax = tc.max
			h := newHarness(t, kmsemu.Options{}, chainFleet(60, 0), cfg)
			f := &fakeLambda{}
			if tc.lambda {
				h.engine.SetLambda(f)
			}
			reps := runChain(t, h, f, request.Request{Mode: request.ModeScheduled}, 500*time.Millisecond, 1)
			c := reps[0].Continuation
			if c == nil || c.Started || c.NotStarted != tc.want || c.Deferred == 0 || len(f.inputs) != 0 {
				t.Fatalf("continuation %+v, %d invocations; want %q with keys deferred and no Invoke", c, len(f.inputs), tc.want)
			}
		})
	}
	t.Run("incident runs never continue", func(t *testing.T) {
		cfg := shortRunConfig()
		cfg.RotateRPS = 20
		h := newHarness(t, kmsemu.Options{}, chainFleet(60, 0), cfg)
		f := &fakeLambda{}
		h.engine.SetLambda(f)
		reps := runChain(t, h, f, request.Request{Mode: request.ModeIncident, Reason: "INC-1",
			Tag: &request.Tag{Key: "kms-rotator", Value: "enabled"}}, 500*time.Millisecond, 1)
		if reps[0].Continuation != nil || reps[0].Summary.Deferred == 0 || len(f.inputs) != 0 {
			t.Fatalf("incident: continuation %+v, %d deferred, %d invocations; want none, some, none",
				reps[0].Continuation, reps[0].Summary.Deferred, len(f.inputs))
		}
	})
}

func TestUnqualifiedFunctionARN(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{testFunctionARN, testFunctionARN},
		{testFunctionARN + ":live", testFunctionARN},
		{testFunctionARN + ":7", testFunctionARN},
		{"kms-rotator", "kms-rotator"},
	} {
		t.Run(tc.in+" invokes "+tc.want, func(t *testing.T) {
			if got := unqualified(tc.in); got != tc.want {
				t.Fatalf("unqualified(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// shortRunConfig is the default configuration for runs of a second or two:
// a rotation goes out only while one call's timeout and the confirm window
// still fit before the call deadline, which the defaults (10 s and 5 s)
// never leave such a run.
func shortRunConfig() settings.Config {
	cfg := settings.DefaultConfig()
	cfg.CallTimeout, cfg.ConfirmWait = 200*time.Millisecond, 100*time.Millisecond
	return cfg
}
