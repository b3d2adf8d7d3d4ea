package e2e

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/kms-rotator/kms-rotator/tools/harness"
	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

// Repeats and overlaps, from outside (docs/design.md "Request identity and
// repeats", "The rotation ledger", "Safety rules"): a CLI re-send while the
// first run still waits for its material, a forced request sent again, a
// Step Functions retry of a target, a sweep racing an incident, a late
// EventBridge delivery and the links of a continuation each spend exactly
// the rotations meant, counted in the emulator's own history and call
// counts. Every scenario runs against both readings of KMS's eventual
// consistency: a rotation listed by ListKeyRotations as soon as its status
// clears, and (kmslocal -list-after-material) only once its new material is
// current — where no read of KMS shows a rotation that just completed and
// only the ledger's claim stands between a second run and a second
// rotation.

// repeatModel is one reading of KMS's eventual consistency.
type repeatModel struct {
	name string
	// listAfterMaterial passes kmslocal -list-after-material.
	listAfterMaterial bool
}

var repeatModels = []repeatModel{
	{name: "KMS lists a rotation once its status clears"},
	{name: "KMS lists a rotation only once its material is current", listAfterMaterial: true},
}

// forEachModel runs body once per model, the two in parallel: most of each
// is waiting for the emulator's delays.
func forEachModel(t *testing.T, body func(t *testing.T, m repeatModel)) {
	t.Helper()
	for _, m := range repeatModels {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			body(t, m)
		})
	}
}

// emulatorDelays are kmslocal's flags for a rotation that stays in
// progress for rotation and whose material becomes current material later.
func emulatorDelays(rotation, material time.Duration) []string {
	return []string{"-rotation-delay=" + rotation.String(), "-material-delay=" + material.String(), "-quiet"}
}

// settle waits until every rotation started before it was called is
// listed in the model's history: with -list-after-material a rotation is
// invisible to every read of KMS until its material is current, so the
// emulator's history can be counted only then. A lower bound on time, never
// an upper one.
func settle(m repeatModel, rotation, material time.Duration) {
	d := rotation
	if m.listAfterMaterial {
		d += material
	}
	time.Sleep(d + 100*time.Millisecond)
}

// repeatFleet: two keys a responder names, due for a sweep too, and one
// that is not due.
const repeatFleet = `[
 {"keyId":"cccccccc-0000-4000-8000-000000000001","alias":"alias/leaked-1","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}},
 {"keyId":"cccccccc-0000-4000-8000-000000000002","alias":"alias/leaked-2","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}},
 {"keyId":"cccccccc-0000-4000-8000-000000000003","alias":"alias/fresh","createdDaysAgo":5,"tags":{"kms-rotator":"enabled"}}]`

// checkedReport decodes a function's answer and checks it against the
// report contract.
func checkedReport(t *testing.T, what string, inv *harness.Invocation, err error) *oracle.Report {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	r, err := oracle.Decode(inv.Raw)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	report(t, what+" report", oracle.CheckReport(inv.Raw))
	return r
}

// entryOf returns the entry named by alias, key ID or key ARN.
func entryOf(r *oracle.Report, name string) (oracle.Entry, bool) {
	for _, k := range r.Keys {
		if k.Alias == name || k.KeyID == name || k.KeyARN == name {
			return k, true
		}
	}
	return oracle.Entry{}, false
}

// wantSpent asserts that each key got exactly want[key] new on-demand
// rotations (started, completed or not) between two snapshots, by alias
// or key ARN; keys not named must have none.
func wantSpent(t *testing.T, before, after oracle.Snapshot, aliases map[string]string, want map[string]int) {
	t.Helper()
	for arn, a := range after {
		name := cmp.Or(aliases[arn], arn)
		got := a.Started() - before[arn].Started()
		if w := want[name]; got != w {
			t.Errorf("%s: %d new on-demand rotations in the emulator's history, want %d", name, got, w)
		}
	}
}

// aliasesOf maps key ARNs to their alias, from reports.
func aliasesOf(reports ...*oracle.Report) map[string]string {
	out := map[string]string{}
	for _, r := range reports {
		for _, k := range r.Keys {
			if k.Alias != "" {
				out[k.KeyARN] = k.Alias
			}
		}
	}
	return out
}

// opCounter is a rule for newProxy: it counts every request and holds
// the ones hold picks until release is closed or the test ends.
type opCounter struct {
	all, rotates atomic.Int64
	hold         func(op string, rotates int64) bool
	held         chan struct{}
	heldOnce     sync.Once
	release      chan struct{}
	ctx          context.Context
}

func newOpCounter(ctx context.Context, hold func(op string, rotates int64) bool) *opCounter {
	return &opCounter{hold: hold, held: make(chan struct{}), release: make(chan struct{}), ctx: ctx}
}

func (c *opCounter) rule(op string, _ int, _ []byte) step {
	c.all.Add(1)
	if op == "RotateKeyOnDemand" {
		c.rotates.Add(1)
	}
	if c.hold != nil && c.hold(op, c.rotates.Load()) {
		c.heldOnce.Do(func() { close(c.held) })
		select {
		case <-c.release:
		case <-c.ctx.Done():
		}
	}
	return step{forward: true}
}

// invocation is an invocation's outcome, for goroutines.
type invocation struct {
	inv *harness.Invocation
	err error
}

// TestRepeatWhileTheFirstRunsAnswersItsReport: the AWS CLI re-sends an
// incident when its read timeout passes while the function still waits for
// the new material. The re-send, in another execution environment, must
// wait for the first run and answer its report — repeatOf naming it, the
// same entries — with no request to KMS at all: one rotation per key. The
// first run's function reaches KMS through a proxy that holds its first
// completion poll after both rotations until the repeat has logged that it
// found the first run in progress, so the overlap is certain, not a matter
// of timing; the material then becomes current seconds later.
func TestRepeatWhileTheFirstRunsAnswersItsReport(t *testing.T) {
	const rotationDelay, materialDelay = time.Second, 3 * time.Second
	keys := []string{"alias/leaked-1", "alias/leaked-2"}
	for _, force := range []bool{true, false} {
		t.Run(fmt.Sprintf("force %v", force), func(t *testing.T) {
			t.Parallel()
			forEachModel(t, func(t *testing.T, m repeatModel) {
				env := harness.StartTB(t, harness.Options{
					KMSLocal: harness.KMSLocalOptions{FleetJSON: repeatFleet, ListAfterMaterial: m.listAfterMaterial,
						Args: emulatorDelays(rotationDelay, materialDelay)},
					Function: harness.FunctionOptions{Env: map[string]string{"ROTATOR_INCIDENT_WAIT": "45s"}},
				})
				gate := newOpCounter(t.Context(), func(op string, rotates int64) bool {
					return rotates >= int64(len(keys)) && (op == "GetKeyRotationStatus" || op == "DescribeKey")
				})
				_, gateURL := newProxy(t, env.KMS.URL, gate.rule)
				firstFn, err := env.AddFunction(t.Context(), harness.FunctionOptions{Name: "first", Endpoint: gateURL})
				if err != nil {
					t.Fatal(err)
				}
				repeats := newOpCounter(t.Context(), nil)
				_, countURL := newProxy(t, env.KMS.URL, repeats.rule)
				repeatFn, err := env.AddFunction(t.Context(), harness.FunctionOptions{Name: "re-send", Endpoint: countURL})
				if err != nil {
					t.Fatal(err)
				}
				before := snapshot(t, env.KMS)
				payload := incidentFor(fmt.Sprintf("INC-9101 key pasted in a chat (force %v)", force), force, keys...)

				firstDone := make(chan invocation, 1)
				go func() {
					inv, err := firstFn.Call(t.Context(), payload)
					firstDone <- invocation{inv, err}
				}()
				select {
				case <-gate.held:
				case r := <-firstDone:
					t.Fatalf("the first run ended before its rotations completed: %v", r.err)
				}
				secondDone := make(chan invocation, 1)
				secondReturned := make(chan struct{})
				go func() {
					defer close(secondReturned)
					inv, err := repeatFn.Call(t.Context(), payload)
					secondDone <- invocation{inv, err}
				}()
				// The re-send says it found the first run in progress;
				// should it answer without saying so, the wait ends too.
				wctx, cancel := context.WithCancel(t.Context())
				go func() {
					<-secondReturned
					cancel()
				}()
				sawInProgress := repeatFn.Proc.Stdout.WaitFor(wctx, func(b []byte) bool {
					for l := range bytes.Lines(b) {
						if bytes.Contains(l, []byte(`"msg":"a repeat of an earlier request`)) && bytes.Contains(l, []byte(`"status":"INPROGRESS"`)) {
							return true
						}
					}
					return false
				})
				cancel()
				close(gate.release)
				fr, sr := <-firstDone, <-secondDone
				first := checkedReport(t, "first run", fr.inv, fr.err)
				second := checkedReport(t, "re-send", sr.inv, sr.err)
				if !sawInProgress {
					t.Errorf("the re-send never logged that it found the first run in progress; its logs:\n%s", strings.Join(sr.inv.Logs, "\n"))
				}

				for _, k := range keys {
					e, _ := entryOf(first, k)
					if e.Outcome != "rotated" || e.Completion != "complete" {
						t.Errorf("first run: %s %s/%s completion %q, want rotated and complete", k, e.Outcome, e.Reason, e.Completion)
					}
				}
				if second.RepeatOf != first.RunID || second.RunID == "" || second.RunID == first.RunID {
					t.Errorf("re-send: runId %q repeatOf %q; want its own runId and repeatOf %q", second.RunID, second.RepeatOf, first.RunID)
				}
				if first.RepeatOf != "" {
					t.Errorf("first run: repeatOf %q, want none", first.RepeatOf)
				}
				fk, _ := json.Marshal(first.Keys)
				sk, _ := json.Marshal(second.Keys)
				fs, _ := json.Marshal(first.Summary)
				ss, _ := json.Marshal(second.Summary)
				if !bytes.Equal(fk, sk) || !bytes.Equal(fs, ss) || first.StartedAt != second.StartedAt {
					t.Errorf("re-send answered another report than the first run's:\nfirst   %s %s\nre-send %s %s", fs, fk, ss, sk)
				}
				if n := repeats.all.Load(); n != 0 {
					t.Errorf("the re-send sent %d requests to KMS, tagging or EventBridge, want none", n)
				}
				if n := rotateCalls(t, env.KMS); n != int64(len(keys)) {
					t.Errorf("%d RotateKeyOnDemand calls, want %d (one per key)", n, len(keys))
				}
				if evs := recordedEvents(t, env.KMS); len(evs) != 1 {
					t.Errorf("%d result events, want 1 (the first run's; a repeat publishes none)", len(evs))
				}
				after := snapshot(t, env.KMS)
				wantSpent(t, before, after, aliasesOf(first), map[string]int{"alias/leaked-1": 1, "alias/leaked-2": 1})
				report(t, "emulator state", oracle.CheckRotations(before, after, first))
			})
		})
	}
}

// TestForcedRequestSentThriceRotatesOnce: a forced incident sent three
// times in a row is one request: one rotation, the two repeats answer the
// first run's report. The same keys with a new reason are a new request,
// and force spends a second rotation inside the cooldown.
func TestForcedRequestSentThriceRotatesOnce(t *testing.T) {
	const rotationDelay, materialDelay = 500 * time.Millisecond, 2 * time.Second
	forEachModel(t, func(t *testing.T, m repeatModel) {
		env := harness.StartTB(t, harness.Options{KMSLocal: harness.KMSLocalOptions{FleetJSON: repeatFleet,
			ListAfterMaterial: m.listAfterMaterial, Args: emulatorDelays(rotationDelay, materialDelay)}})
		before := snapshot(t, env.KMS)
		payload := incidentFor("INC-9102 forced, sent three times", true, "alias/leaked-1")
		var first *oracle.Report
		for i := range 3 {
			inv, err := env.InvokeFree(t.Context(), payload)
			r := checkedReport(t, fmt.Sprintf("send %d", i+1), inv, err)
			if i == 0 {
				first = r
				if e, _ := entryOf(r, "alias/leaked-1"); e.Outcome != "rotated" || e.Completion != "complete" {
					t.Fatalf("send 1: alias/leaked-1 %s/%s completion %q, want rotated and complete", e.Outcome, e.Reason, e.Completion)
				}
				continue
			}
			if r.RepeatOf != first.RunID {
				t.Errorf("send %d: repeatOf %q, want the first run %s", i+1, r.RepeatOf, first.RunID)
			}
			if e, _ := entryOf(r, "alias/leaked-1"); e.Outcome != "rotated" || e.KeyMaterialID == "" {
				t.Errorf("send %d: alias/leaked-1 %s/%s; want the first run's entry (rotated, with its material)", i+1, e.Outcome, e.Reason)
			}
		}
		mid := snapshot(t, env.KMS)
		wantSpent(t, before, mid, aliasesOf(first), map[string]int{"alias/leaked-1": 1})
		if n := rotateCalls(t, env.KMS); n != 1 {
			t.Errorf("%d RotateKeyOnDemand calls for one forced request sent three times, want 1", n)
		}
		report(t, "emulator state after the three sends", oracle.CheckRotations(before, mid, first))

		inv, err := env.InvokeFree(t.Context(), incidentFor("INC-9102 exposed again after the rotation", true, "alias/leaked-1"))
		again := checkedReport(t, "new reason", inv, err)
		if e, _ := entryOf(again, "alias/leaked-1"); e.Outcome != "rotated" || again.RepeatOf != "" {
			t.Errorf("new reason: alias/leaked-1 %s/%s repeatOf %q, want rotated by a run of its own", e.Outcome, e.Reason, again.RepeatOf)
		}
		end := snapshot(t, env.KMS)
		wantSpent(t, mid, end, aliasesOf(first), map[string]int{"alias/leaked-1": 1})
		if n := rotateCalls(t, env.KMS); n != 2 {
			t.Errorf("%d RotateKeyOnDemand calls in all, want 2", n)
		}
		report(t, "emulator state after the new reason", oracle.CheckRotations(mid, end, again))
	})
}

// memberAccount owns the keys of the organization scenarios; kmslocal lets
// anyone assume its kms-rotator-member role (the default -roles).
const memberAccount = "444455556666"

// memberFleet: three due keys and one fresh key in the member account, and
// a due key of the function's own account that no target run may touch.
const memberFleet = `[
 {"alias":"alias/own-due","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}},
 {"account":"` + memberAccount + `","alias":"alias/member-due","count":3,"createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}},
 {"account":"` + memberAccount + `","alias":"alias/member-fresh","createdDaysAgo":5,"tags":{"kms-rotator":"enabled"}}]`

// memberRotations reads every key of account (the emulator's home Region)
// through its kms-rotator-member role, as the function does.
func memberRotations(t *testing.T, env *harness.Env, account string) oracle.Snapshot {
	t.Helper()
	ctx := t.Context()
	cfg := env.KMS.Config("")
	out, err := sts.NewFromConfig(cfg).AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn: aws.String("arn:aws:iam::" + account + ":role/kms-rotator-member"), RoleSessionName: aws.String("e2e-observer"),
	})
	if err != nil {
		t.Fatalf("assume the member role of %s: %v", account, err)
	}
	c := out.Credentials
	cfg.Credentials = credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))
	got, err := oracle.Read(ctx, kms.NewFromConfig(cfg))
	if err != nil {
		t.Fatalf("read the keys of %s: %v", account, err)
	}
	return got
}

// TestTargetRetriedAfterItRotatedRotatesNothing: the organization sweep's
// state machine retries a target whose run rotated its due keys (a Lambda
// service error after the function answered). The retry is a new run of
// the same target: each due key is not-due (its rotation is listed) or,
// where KMS does not list the rotation yet, refused by the first run's
// claim — never rotated a second time.
func TestTargetRetriedAfterItRotatedRotatesNothing(t *testing.T) {
	const rotationDelay, materialDelay = 0, 3 * time.Second
	forEachModel(t, func(t *testing.T, m repeatModel) {
		env := harness.StartTB(t, harness.Options{
			KMSLocal: harness.KMSLocalOptions{FleetJSON: memberFleet, ListAfterMaterial: m.listAfterMaterial,
				Args: emulatorDelays(rotationDelay, materialDelay)},
			Function: harness.FunctionOptions{Env: orgEnv(t)},
		})
		resolveTargets(t, env, memberAccount)
		ownBefore, before := snapshot(t, env.KMS), memberRotations(t, env, memberAccount)
		payload := []byte(`{"mode":"scheduled","target":{"account":"` + memberAccount + `","region":"us-east-1"}}`)
		inv, err := env.InvokeFree(t.Context(), payload)
		first := checkedReport(t, "first run", inv, err)
		inv, err = env.InvokeFree(t.Context(), payload)
		retry := checkedReport(t, "retry", inv, err)

		due := 0
		for _, k := range first.Keys {
			if !strings.HasPrefix(k.Alias, "alias/member-due-") {
				continue
			}
			due++
			if k.Outcome != "rotated" {
				t.Errorf("first run: %s %s/%s, want rotated", k.Alias, k.Outcome, k.Reason)
			}
			r, _ := entryOf(retry, k.KeyARN)
			switch {
			case r.Outcome == "skipped" && r.Reason == "not-due":
			case r.Outcome == "skipped" && r.Reason == "recently-rotated" && r.Claim != nil && r.Claim.RunID == first.RunID && r.Claim.Mode == "scheduled":
				t.Logf("retry: %s refused by the first run's claim", k.Alias)
			default:
				t.Errorf("retry: %s %s/%s (claim %+v), want skipped/not-due or skipped/recently-rotated with the first run's claim",
					k.Alias, r.Outcome, r.Reason, r.Claim)
			}
		}
		if due != 3 || first.Account != memberAccount || retry.Summary.Rotated != 0 {
			t.Errorf("first run: %d due member keys in account %q; retry rotated %d; want 3 in %s, and 0", due, first.Account, retry.Summary.Rotated, memberAccount)
		}
		if n := rotateCalls(t, env.KMS); n != 3 {
			t.Errorf("%d RotateKeyOnDemand calls over the run and its retry, want 3", n)
		}
		settle(m, rotationDelay, materialDelay)
		after := memberRotations(t, env, memberAccount)
		want := map[string]int{}
		for _, k := range first.Keys {
			if k.Outcome == "rotated" {
				want[k.Alias] = 1
			}
		}
		wantSpent(t, before, after, aliasesOf(first), want)
		report(t, "member account's history", oracle.CheckRotations(before, after, first, retry))
		wantSpent(t, ownBefore, snapshot(t, env.KMS), nil, nil)
	})
}

// TestSweepAndIncidentRacingForAKeyRotateItOnce: a scheduled sweep and an
// incident naming one of its due keys start together in two execution
// environments. The key gets one RotateKeyOnDemand between them; the run
// that loses finds the winner's claim (recently-rotated, with the claim),
// its rotation (in progress, or listed: not-due, or inside the incident
// cooldown) — never a second rotation. Rotations complete at once and their
// material seconds later, so a loser that reads KMS after the winner's call
// sees the rotation only where KMS lists it before the material.
func TestSweepAndIncidentRacingForAKeyRotateItOnce(t *testing.T) {
	const rotationDelay, materialDelay = 0, 3 * time.Second
	forEachModel(t, func(t *testing.T, m repeatModel) {
		env := harness.StartTB(t, harness.Options{
			KMSLocal: harness.KMSLocalOptions{FleetJSON: repeatFleet, ListAfterMaterial: m.listAfterMaterial,
				Args: emulatorDelays(rotationDelay, materialDelay)},
			// 10 s of Lambda time keep the sweep's start jitter (1 % of
			// it) short, so it meets the incident at the key; a call's
			// timeout and the confirm window still fit.
			Function: harness.FunctionOptions{Timeout: 10 * time.Second,
				Env: map[string]string{"ROTATOR_CALL_TIMEOUT": "2s", "ROTATOR_CONFIRM_WAIT": "1s"}},
			Functions: 2,
		})
		before := snapshot(t, env.KMS)
		payloads := [][]byte{[]byte(`{"mode":"scheduled"}`), noWait(t, incidentFor("INC-9104 during the sweep", false, "alias/leaked-1"))}
		results := make([]invocation, len(payloads))
		var start sync.WaitGroup
		start.Add(1)
		var wg sync.WaitGroup
		for i, p := range payloads {
			wg.Go(func() {
				start.Wait()
				results[i].inv, results[i].err = env.InvokeFree(t.Context(), p)
			})
		}
		start.Done()
		wg.Wait()
		sweep := checkedReport(t, "sweep", results[0].inv, results[0].err)
		incident := checkedReport(t, "incident", results[1].inv, results[1].err)

		rotatedBy := 0
		for _, r := range []*oracle.Report{sweep, incident} {
			e, ok := entryOf(r, "alias/leaked-1")
			if !ok {
				t.Fatalf("%s run has no entry for alias/leaked-1", r.Mode)
			}
			switch {
			case e.Outcome == "rotated":
				rotatedBy++
			case e.Outcome == "skipped" && e.Reason == "recently-rotated" && e.Claim != nil:
				t.Logf("%s run: alias/leaked-1 refused by the claim of the %s run", r.Mode, e.Claim.Mode)
			case e.Outcome == "skipped" && (e.Reason == "rotation-in-progress" || e.Reason == "recently-rotated" ||
				(e.Reason == "not-due" && r.Mode == "scheduled")):
			default:
				t.Errorf("%s run: alias/leaked-1 %s/%s (claim %+v): the run that lost the race must find the other's claim or rotation",
					r.Mode, e.Outcome, e.Reason, e.Claim)
			}
		}
		if rotatedBy != 1 {
			t.Errorf("alias/leaked-1 reported rotated by %d runs, want 1", rotatedBy)
		}
		// alias/leaked-1 once between the two runs, alias/leaked-2 by the sweep.
		if n := rotateCalls(t, env.KMS); n != 2 {
			t.Errorf("%d RotateKeyOnDemand calls, want 2: one per due key, whoever won the race", n)
		}
		settle(m, rotationDelay, materialDelay)
		after := snapshot(t, env.KMS)
		wantSpent(t, before, after, aliasesOf(sweep), map[string]int{"alias/leaked-1": 1, "alias/leaked-2": 1})
		report(t, "emulator state", oracle.CheckRotations(before, after, sweep, incident))
	})
}

// eventAt is the kms-rotator custom event EventBridge delivers for an
// incident, with the envelope's time.
func eventAt(t *testing.T, at time.Time, detail []byte) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"version": "0", "id": "8d4f2c1a-5b6e-4c3d-9a8b-7f6e5d4c3b2a", "detail-type": "Rotate KMS Keys", "source": "kms-rotator",
		"account": harness.Account, "time": at.UTC().Format(time.RFC3339), "region": harness.Region, "resources": []string{},
		"detail": json.RawMessage(detail),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLateEventIsRefusedAndAFreshOneRotates: EventBridge delivers an
// incident event 20 minutes after its time (retries, a backed-up queue):
// past ROTATOR_INCIDENT_MAX_AGE (15m) it is refused as a ValidationError
// naming time, before any call. The same event with a fresh time is an
// ordinary first run — the refusal left no request record behind — and
// rotates.
func TestLateEventIsRefusedAndAFreshOneRotates(t *testing.T) {
	forEachModel(t, func(t *testing.T, m repeatModel) {
		env := harness.StartTB(t, harness.Options{KMSLocal: harness.KMSLocalOptions{FleetJSON: repeatFleet,
			ListAfterMaterial: m.listAfterMaterial, Args: completeAtOnce}})
		before := snapshot(t, env.KMS)
		if err := env.KMS.ResetStats(t.Context()); err != nil { // the snapshot's reads
			t.Fatal(err)
		}
		detail := incidentFor("INC-9105 delivered late", false, "alias/leaked-1")
		_, err := env.InvokeFree(t.Context(), eventAt(t, time.Now().Add(-20*time.Minute), detail))
		var he *harness.HandlerError
		if !errors.As(err, &he) || he.Type != "ValidationError" || !strings.HasPrefix(he.Message, "time: ") {
			t.Fatalf("event 20 minutes old: %v; want a ValidationError naming time", err)
		}
		st, err := env.KMS.Stats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.Total.Calls != 0 {
			t.Errorf("the late event reached the emulator: %+v", st.Operations)
		}

		inv, err := env.InvokeFree(t.Context(), eventAt(t, time.Now(), detail))
		fresh := checkedReport(t, "fresh event", inv, err)
		if e, _ := entryOf(fresh, "alias/leaked-1"); e.Outcome != "rotated" || fresh.RepeatOf != "" {
			t.Errorf("fresh event: alias/leaked-1 %s/%s repeatOf %q; want rotated by a first run", e.Outcome, e.Reason, fresh.RepeatOf)
		}
		if n := rotateCalls(t, env.KMS); n != 1 {
			t.Errorf("%d RotateKeyOnDemand calls, want 1", n)
		}
		after := snapshot(t, env.KMS)
		wantSpent(t, before, after, aliasesOf(fresh), map[string]int{"alias/leaked-1": 1})
		report(t, "emulator state", oracle.CheckRotations(before, after, fresh))
	})
}

// lambdaAPI stands in for the Lambda Invoke API of the function's
// continuations (AWS_ENDPOINT_URL_LAMBDA): it accepts an asynchronous
// invocation as Lambda does (202) and delivers its payload to a free
// function of the Env, reporting each delivery's outcome on links. Lambda
// delivers an asynchronous event at least once: the first continuation is
// delivered twice, so two twins of one link run side by side.
type lambdaAPI struct {
	env       atomic.Pointer[harness.Env]
	ctx       context.Context
	links     chan invocation
	requests  atomic.Int64
	delivered atomic.Int64
	wg        sync.WaitGroup
}

func newLambdaAPI(t *testing.T) (*lambdaAPI, string) {
	t.Helper()
	l := &lambdaAPI{ctx: t.Context(), links: make(chan invocation, 64)}
	srv := httptest.NewServer(l)
	t.Cleanup(func() {
		srv.Close()
		l.wg.Wait()
	})
	return l, srv.URL
}

func (l *lambdaAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	env := l.env.Load()
	if err != nil || env == nil || !strings.HasPrefix(r.URL.Path, "/2015-03-31/functions/") || !strings.HasSuffix(r.URL.Path, "/invocations") ||
		r.Header.Get("X-Amz-Invocation-Type") != "Event" {
		http.Error(w, fmt.Sprintf("unexpected Lambda API request %s %s (%s)", r.Method, r.URL.Path, r.Header.Get("X-Amz-Invocation-Type")), http.StatusBadRequest)
		return
	}
	deliveries := int64(1)
	if l.requests.Add(1) == 1 {
		deliveries = 2
	}
	// Counted before the 202: the link that asked returns its report
	// only after this answer, so a collector that has that report also
	// sees these deliveries.
	l.delivered.Add(deliveries)
	for range deliveries {
		l.wg.Go(func() {
			inv, err := env.InvokeFree(l.ctx, body)
			l.links <- invocation{inv, err}
		})
	}
	w.WriteHeader(http.StatusAccepted)
}

// TestContinuationLinksRotateEachDueKeyOnce: a sweep too big for one
// invocation (4 s of Lambda time, 12 due keys at 4 rotations a second)
// continues by invoking its own function with a cursor, and Lambda
// delivers the first continuation twice. Across every link and twin each
// due key is rotated exactly once: a twin finds the keys the other just
// rotated listed (not-due) or — where KMS lists a rotation only once its
// material is current — claimed in the ledger (recently-rotated).
func TestContinuationLinksRotateEachDueKeyOnce(t *testing.T) {
	const rotationDelay, materialDelay = 0, 5 * time.Second
	const due = 12
	fleet := fmt.Sprintf(`[
 {"alias":"alias/due","count":%d,"createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}},
 {"alias":"alias/fresh","count":3,"createdDaysAgo":5,"tags":{"kms-rotator":"enabled"}}]`, due)
	forEachModel(t, func(t *testing.T, m repeatModel) {
		api, apiURL := newLambdaAPI(t)
		env := harness.StartTB(t, harness.Options{
			KMSLocal: harness.KMSLocalOptions{FleetJSON: fleet, ListAfterMaterial: m.listAfterMaterial, Args: emulatorDelays(rotationDelay, materialDelay)},
			Function: harness.FunctionOptions{Timeout: 4 * time.Second, Env: map[string]string{
				"AWS_ENDPOINT_URL_LAMBDA": apiURL,
				// A rotation goes out only while a call's timeout and the
				// confirm window fit before the call deadline.
				"ROTATOR_CALL_TIMEOUT": "1s", "ROTATOR_CONFIRM_WAIT": "0s", "ROTATOR_ROTATE_RPS": "4",
			}},
			// A link, and the twins of the next one.
			Functions: 3,
		})
		api.env.Store(env)
		before := snapshot(t, env.KMS)
		inv, err := env.InvokeFree(t.Context(), []byte(`{"mode":"scheduled"}`))
		first := checkedReport(t, "link 0", inv, err)
		reports := []*oracle.Report{first}
		for int64(len(reports)) < 1+api.delivered.Load() {
			select {
			case l := <-api.links:
				reports = append(reports, checkedReport(t, fmt.Sprintf("delivery %d", len(reports)), l.inv, l.err))
			case <-t.Context().Done():
				t.Fatal("the chain did not finish")
			}
		}
		if len(reports) < 3 {
			t.Fatalf("one link did the whole sweep (%s): the scenario tests no continuation", harness.SummaryLine(first))
		}
		slices.SortStableFunc(reports, func(a, b *oracle.Report) int { return chainOf(a) - chainOf(b) })
		rotated := map[string]int{}
		claimed := 0
		for i, r := range reports {
			c := r.Continuation
			if c == nil || c.RunID != first.RunID || (i == 0) != (c.Chain == 0) {
				t.Errorf("report %d: continuation %+v, want a link of run %s (chain 0 only for the first)", i, c, first.RunID)
				continue
			}
			t.Logf("chain %d: %s", c.Chain, harness.SummaryLine(r))
			if r.Summary.Deferred > 0 && !c.Started {
				t.Errorf("chain %d deferred %d keys without starting the next link: %+v", c.Chain, r.Summary.Deferred, c)
			}
			for _, k := range r.Keys {
				switch {
				case k.Outcome == "rotated":
					rotated[k.Alias]++
				case k.Outcome == "skipped" && k.Reason == "recently-rotated" && k.Claim != nil:
					claimed++
				}
			}
		}
		t.Logf("%d entries refused by another link's claim", claimed)
		if n := rotateCalls(t, env.KMS); n != due {
			t.Errorf("%d RotateKeyOnDemand calls across %d deliveries, want %d", n, len(reports), due)
		}
		settle(m, rotationDelay, materialDelay)
		after := snapshot(t, env.KMS)
		want := map[string]int{}
		for i := range due {
			alias := fmt.Sprintf("alias/due-%05d", i+1)
			want[alias] = 1
			if rotated[alias] != 1 {
				t.Errorf("%s reported rotated by %d deliveries, want 1", alias, rotated[alias])
			}
		}
		wantSpent(t, before, after, aliasesOf(reports...), want)
		report(t, "emulator state across the links", oracle.CheckRotations(before, after, reports...))
	})
}

func chainOf(r *oracle.Report) int {
	if r.Continuation == nil {
		return 0
	}
	return r.Continuation.Chain
}
