package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kms-rotator/kms-rotator/tools/harness"
	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

// The incident path, from outside: repeats inside the cooldown
// spend one rotation, force spends one more, replayed events are refused
// before any call, KMS (not the local count) judges the lifetime limit, an
// ambiguous RotateKeyOnDemand is never sent twice, and every incident is
// announced with a result event that matches its report.

// incidentFor is an incident request naming keys, as a responder sends it.
func incidentFor(reason string, force bool, keys ...string) []byte {
	b, _ := json.Marshal(map[string]any{"mode": "incident", "keys": keys, "reason": reason, "force": force})
	return b
}

// outcomeOf returns "outcome" or "outcome/reason" of the entry named by
// alias, key ID or key ARN ("" when absent).
func outcomeOf(r *oracle.Report, name string) string {
	for _, k := range r.Keys {
		if k.Alias == name || k.KeyID == name || k.KeyARN == name {
			if k.Reason == "" {
				return string(k.Outcome)
			}
			return string(k.Outcome) + "/" + string(k.Reason)
		}
	}
	return ""
}

// newRotations counts the on-demand rotations started between two
// snapshots, over all keys.
func newRotations(before, after oracle.Snapshot) int {
	n := 0
	for arn, a := range after {
		n += a.Started() - before[arn].Started()
	}
	return n
}

// rotateCalls returns how many RotateKeyOnDemand requests the emulator got.
func rotateCalls(t *testing.T, k *harness.KMSLocal) int64 {
	t.Helper()
	st, err := k.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st.Op("RotateKeyOnDemand").Calls
}

// TestRepeatedIncidentsSpendOneRotation sends one incident three times, as
// the AWS CLI's re-send, a SOAR retry or a second EventBridge delivery
// would: one rotation in the emulator; then the same request with force
// spends exactly one more, and force never starts a second rotation while
// one is in progress.
func TestRepeatedIncidentsSpendOneRotation(t *testing.T) {
	tests := []struct {
		name    string
		emuArgs []string
		// wantRepeat: acceptable outcomes of the repeats.
		wantRepeat []string
		// wantForced: the forced request's outcome; forcedRotations: the
		// rotations it adds.
		wantForced      string
		forcedRotations int
		// noWait sends "wait": false: with rotations that take an hour the
		// wait for completion would last until the deadline.
		noWait bool
	}{
		{name: "rotation completed at once: repeats answer the first report, a new request is recently-rotated, force rotates again",
			emuArgs: completeAtOnce, wantRepeat: []string{"skipped/recently-rotated"},
			wantForced: "rotated", forcedRotations: 1},
		// Real KMS keeps a rotation in progress for a while; the cooldown
		// and the in-progress check both refuse the repeats, and force
		// cannot start a second rotation KMS would refuse anyway.
		{name: "rotation still in progress: repeats and a new request start nothing, force neither",
			emuArgs: []string{"-rotation-delay=1h", "-quiet"}, wantRepeat: []string{"skipped/recently-rotated", "skipped/rotation-in-progress"},
			wantForced: "skipped/rotation-in-progress", forcedRotations: 0, noWait: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := harness.StartTB(t, harness.Options{KMSLocal: harness.KMSLocalOptions{FleetJSON: plainFleet, Args: tt.emuArgs}})
			start := snapshot(t, env.KMS)
			payload := incidentFor("INC-9001 key in a public repository", false, "alias/exposed")
			forcedPayload := incidentFor("INC-9001 key in a public repository", true, "alias/exposed")
			if tt.noWait {
				payload, forcedPayload = noWait(t, payload), noWait(t, forcedPayload)
			}
			var reports []*oracle.Report
			// The same request three times: the repeats answer the first
			// run's report (repeatOf) and touch nothing; then another
			// responder's request for the key finds it recently rotated.
			other := incidentFor("INC-9001b the same key, another responder", false, "alias/exposed")
			if tt.noWait {
				other = noWait(t, other)
			}
			for i, p := range [][]byte{payload, payload, payload, other} {
				r, inv, err := env.Function.InvokeReport(t.Context(), p)
				if err != nil {
					t.Fatalf("incident %d: %v", i+1, err)
				}
				report(t, fmt.Sprintf("incident %d report", i+1), oracle.CheckReport(inv.Raw))
				got := outcomeOf(r, "alias/exposed")
				switch {
				case i == 0 && got != "rotated":
					t.Errorf("incident 1: alias/exposed %q, want rotated", got)
				case i == 1 || i == 2:
					if got != "rotated" || r.RepeatOf != reports[0].RunID {
						t.Errorf("incident %d (a repeat): alias/exposed %q repeatOf %q, want the first run's answer (rotated, repeatOf %s)",
							i+1, got, r.RepeatOf, reports[0].RunID)
					}
				case i == 3 && !contains(tt.wantRepeat, got):
					t.Errorf("incident %d (a new request): alias/exposed %q, want one of %v", i+1, got, tt.wantRepeat)
				}
				reports = append(reports, r)
			}
			afterRepeats := snapshot(t, env.KMS)
			if n := newRotations(start, afterRepeats); n != 1 {
				t.Errorf("three identical incidents and a fourth for the key started %d rotations in the emulator, want 1", n)
			}
			report(t, "emulator state after the repeats", oracle.CheckRotations(start, afterRepeats, reports...))
			if n := rotateCalls(t, env.KMS); n != 1 {
				t.Errorf("%d RotateKeyOnDemand calls for three identical incidents and a fourth for the key, want 1", n)
			}

			forced, inv, err := env.Function.InvokeReport(t.Context(), forcedPayload)
			if err != nil {
				t.Fatalf("forced incident: %v", err)
			}
			report(t, "forced incident report", oracle.CheckReport(inv.Raw))
			if got := outcomeOf(forced, "alias/exposed"); got != tt.wantForced {
				t.Errorf("forced incident: alias/exposed %q, want %q", got, tt.wantForced)
			}
			end := snapshot(t, env.KMS)
			if n := newRotations(afterRepeats, end); n != tt.forcedRotations {
				t.Errorf("the forced incident started %d rotations, want %d", n, tt.forcedRotations)
			}
			report(t, "emulator state after force", oracle.CheckRotations(afterRepeats, end, forced))
		})
	}
}

// TestConcurrentIdenticalIncidentsSpendOneRotation delivers one incident to
// three execution environments at once (at-least-once delivery, a SOAR
// retry while the first still runs): one rotation. The emulator keeps the
// rotation in progress for 30 s, longer than any stall of this machine (see
// tests/faults overlapDelay).
func TestConcurrentIdenticalIncidentsSpendOneRotation(t *testing.T) {
	env := harness.StartTB(t, harness.Options{
		KMSLocal:  harness.KMSLocalOptions{FleetJSON: plainFleet, Args: []string{"-rotation-delay=30s", "-quiet"}},
		Functions: 3,
	})
	start := snapshot(t, env.KMS)
	// Without the wait for completion: the winner would wait the 30 s out.
	payload := noWait(t, incidentFor("INC-9002 duplicate deliveries", false, "alias/exposed"))
	reports := make([]*oracle.Report, len(env.Functions))
	errs := make([]error, len(env.Functions))
	var wg sync.WaitGroup
	for i, f := range env.Functions {
		wg.Go(func() { reports[i], _, errs[i] = f.InvokeReport(t.Context(), payload) })
	}
	wg.Wait()
	rotated, first := 0, ""
	for i, err := range errs {
		if err != nil {
			t.Fatalf("function %d: %v", i, err)
		}
		if outcomeOf(reports[i], "alias/exposed") == "rotated" && reports[i].RepeatOf == "" {
			rotated++
			first = reports[i].RunID
		}
	}
	end := snapshot(t, env.KMS)
	if n := newRotations(start, end); n != 1 || rotated != 1 {
		t.Errorf("three concurrent identical incidents: %d rotations in the emulator, %d first runs say rotated; want 1 and 1", n, rotated)
	}
	// The other two are repeats: they waited for the first run and
	// answer its report.
	for i, r := range reports {
		if r.RunID != first && (r.RepeatOf != first || outcomeOf(r, "alias/exposed") != "rotated") {
			t.Errorf("function %d: repeatOf %q, alias/exposed %q; want the first run's answer (repeatOf %s)", i, r.RepeatOf, outcomeOf(r, "alias/exposed"), first)
		}
	}
	report(t, "emulator state", oracle.CheckRotations(start, end, reports...))
}

// TestReplayedEventIsRefusedBeforeAnyCall sends the EventBridge incident
// sample as an archive replay delivers it (with replay-name): the function
// answers an error naming replay-name, and neither KMS nor EventBridge sees
// a request.
func TestReplayedEventIsRefusedBeforeAnyCall(t *testing.T) {
	env := harness.StartTB(t, harness.Options{KMSLocal: harness.KMSLocalOptions{Fleet: "events/fleet.json", Args: completeAtOnce}})
	sample, err := env.ReadFile("events/incident-eventbridge.json")
	if err == nil {
		sample, err = harness.FreshEvent(sample)
	}
	if err != nil {
		t.Fatal(err)
	}
	var envelope map[string]any
	if err := json.Unmarshal(sample, &envelope); err != nil {
		t.Fatal(err)
	}
	// An archive replay adds replay-name to the envelope
	// (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-replay-archived-event.html).
	envelope["replay-name"] = "kms-rotator-incidents-replay-1"
	replayed, _ := json.Marshal(envelope)
	_, err = env.Function.Invoke(t.Context(), replayed)
	var he *harness.HandlerError
	if !errors.As(err, &he) || !strings.Contains(he.Message, "replay-name") {
		t.Fatalf("replayed event: %v, want a handler error naming replay-name", err)
	}
	st, err := env.KMS.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Total.Calls != 0 {
		t.Errorf("the replayed event reached the emulator: %+v", st.Operations)
	}
	// The same event without replay-name is an ordinary incident: the
	// refusal is about the replay, not the payload.
	r, _, err := env.Function.InvokeReport(t.Context(), sample)
	if err != nil || r.Summary.Rotated != 3 {
		t.Fatalf("the sample itself: %v, %v; want 3 rotated", err, r)
	}
}

// TestKMSJudgesTheLifetimeLimitForIncidents runs the function with a local
// limit of 10 against KMS's 25: an incident still rotates a key with 10
// on-demand rotations (the local count never refuses it), a key at KMS's
// limit is budget-exhausted on KMS's LimitExceededException, and a
// scheduled sweep keeps stopping at the local limit without asking KMS.
func TestKMSJudgesTheLifetimeLimitForIncidents(t *testing.T) {
	fleet := fmt.Sprintf(`[
 {"alias":"alias/local-exhausted","createdDaysAgo":1000,"tags":{"kms-rotator":"enabled"},"rotations":%s},
 {"alias":"alias/kms-exhausted","createdDaysAgo":1000,"tags":{"kms-rotator":"enabled"},"rotations":%s}]`,
		onDemandJSON(10, 100), onDemandJSON(25, 100))
	env := harness.StartTB(t, harness.Options{
		KMSLocal: harness.KMSLocalOptions{FleetJSON: fleet, Args: completeAtOnce}, // KMS's limit: the default 25
		Function: harness.FunctionOptions{Env: map[string]string{"ROTATOR_ON_DEMAND_LIMIT": "10"}},
	})
	start := snapshot(t, env.KMS)
	r, inv, err := env.Function.InvokeReport(t.Context(), incidentFor("INC-9003 limit", false, "alias/local-exhausted", "alias/kms-exhausted"))
	if err != nil {
		t.Fatal(err)
	}
	report(t, "incident report", oracle.CheckReport(inv.Raw))
	if got := outcomeOf(r, "alias/local-exhausted"); got != "rotated" {
		t.Errorf("alias/local-exhausted (10 used, local limit 10, KMS's 25): %q, want rotated", got)
	}
	if got := outcomeOf(r, "alias/kms-exhausted"); got != "skipped/budget-exhausted" {
		t.Errorf("alias/kms-exhausted (25 used): %q, want skipped/budget-exhausted", got)
	}
	if n := rotateCalls(t, env.KMS); n != 2 {
		t.Errorf("%d RotateKeyOnDemand calls, want 2: the incident asks KMS for both keys", n)
	}
	mid := snapshot(t, env.KMS)
	report(t, "emulator state after the incident", oracle.CheckRotations(start, mid, r))

	sweep, inv, err := env.Function.InvokeReport(t.Context(), []byte(`{"mode":"scheduled"}`))
	if err != nil {
		t.Fatal(err)
	}
	report(t, "sweep report", oracle.CheckReport(inv.Raw))
	for _, name := range []string{"alias/local-exhausted", "alias/kms-exhausted"} {
		if got := outcomeOf(sweep, name); got != "skipped/budget-exhausted" {
			t.Errorf("sweep: %s %q, want skipped/budget-exhausted", name, got)
		}
	}
	if n := rotateCalls(t, env.KMS); n != 2 {
		t.Errorf("the sweep called RotateKeyOnDemand (%d calls in all): it must stop at the local limit", n)
	}
	report(t, "emulator state after the sweep", oracle.CheckRotations(mid, snapshot(t, env.KMS), sweep))
}

// onDemandJSON renders n completed on-demand rotations, the newest
// newestDaysAgo days ago, one every 30 days before it.
func onDemandJSON(n int, newestDaysAgo float64) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"type":"ON_DEMAND","daysAgo":%g}`, newestDaysAgo+float64(30*(n-1-i)))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// TestAmbiguousRotateIsNeverSentTwice: KMS applies the incident's
// RotateKeyOnDemand, but its answer is lost (HTTP 500, the emulator's
// -drop-rate 1), or it never answers in time (a proxy holds the answer,
// ROTATOR_CALL_TIMEOUT 1s). The function looks at the key instead of
// calling again: exactly one call, exactly one rotation, reported rotated
// (or unconfirmed, saying how to check); and the hung call does not hold
// the incident until the Lambda deadline.
func TestAmbiguousRotateIsNeverSentTwice(t *testing.T) {
	tests := []struct {
		name    string
		emuArgs []string
		fnEnv   map[string]string
		hold    bool
		// noWait sends "wait": false, so a rotation that takes an hour is
		// not waited for until the deadline.
		noWait bool
	}{
		{name: "lost response, rotation completed at once", emuArgs: []string{"-drop-rate=1", "-rotation-delay=0", "-quiet"}},
		{name: "lost response, rotation in progress", emuArgs: []string{"-drop-rate=1", "-rotation-delay=1h", "-quiet"}, noWait: true},
		{name: "response held past ROTATOR_CALL_TIMEOUT", emuArgs: completeAtOnce, hold: true,
			fnEnv: map[string]string{"ROTATOR_CALL_TIMEOUT": "1s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := harness.StartTB(t, harness.Options{
				KMSLocal: harness.KMSLocalOptions{FleetJSON: plainFleet, Args: tt.emuArgs},
				Function: harness.FunctionOptions{Env: tt.fnEnv, Timeout: 120 * time.Second},
			})
			fn := env.Function
			if tt.hold {
				// Applied by KMS, answered after 100 s: the function's
				// 120 s would let a call without its own timeout wait it out.
				_, url := newProxy(t, env.KMS.URL, func(op string, _ int, _ []byte) step {
					if op == "RotateKeyOnDemand" {
						return step{forward: true, hold: 100 * time.Second}
					}
					return step{forward: true}
				})
				var err error
				if fn, err = env.AddFunction(t.Context(), harness.FunctionOptions{Name: "behind-proxy", Endpoint: url}); err != nil {
					t.Fatal(err)
				}
			}
			start := snapshot(t, env.KMS)
			payload := incidentFor("INC-9004 lost answer", false, "alias/exposed")
			if tt.noWait {
				payload = noWait(t, payload)
			}
			r, inv, err := fn.InvokeReport(t.Context(), payload)
			if err != nil {
				t.Fatal(err)
			}
			report(t, "report", oracle.CheckReport(inv.Raw))
			got := outcomeOf(r, "alias/exposed")
			if got != "rotated" && got != "failed/unconfirmed" {
				t.Errorf("alias/exposed %q, want rotated or failed/unconfirmed", got)
			}
			if got == "failed/unconfirmed" {
				checkUnconfirmedError(t, "alias/exposed", rawEntries(t, inv.Raw)["alias/exposed"])
			}
			end := snapshot(t, env.KMS)
			if n := newRotations(start, end); n != 1 {
				t.Errorf("%d rotations in the emulator, want exactly 1", n)
			}
			report(t, "emulator state", oracle.CheckRotations(start, end, r))
			if n := rotateCalls(t, env.KMS); n != 1 {
				t.Errorf("%d RotateKeyOnDemand calls reached the emulator, want exactly 1", n)
			}
			// ROTATOR_CALL_TIMEOUT (1s) plus ROTATOR_CONFIRM_WAIT (5s) and
			// slack; far below the 100 s the answer was held.
			if tt.hold && inv.Duration > 30*time.Second {
				t.Errorf("the incident took %v with a 1 s call timeout: the hung call held it", inv.Duration.Round(time.Second))
			}
		})
	}
}

// recordedEvents returns the events the emulator accepted, in order
// (GET /_kmslocal/events).
func recordedEvents(t *testing.T, k *harness.KMSLocal) []harness.Event {
	t.Helper()
	events, err := k.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// resultEventsFailed returns the run's ResultEventsFailed metric.
func resultEventsFailed(t *testing.T, inv *harness.Invocation) (float64, bool) {
	t.Helper()
	recs, err := inv.EMF()
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		if v, ok := rec.Value("ResultEventsFailed"); ok && rec.Dimension("Reason") == "" {
			return v, true
		}
	}
	return 0, false
}

// TestResultEventMatchesTheReport: every incident run (dry runs included)
// and every run with failed keys publishes one result event on the default
// bus, whose detail is the report's run, summary and entries that are not
// not-due; a sweep without failures publishes none; and a publish that
// EventBridge refuses fails neither the run nor its report, only the
// ResultEventsFailed metric says so.
func TestResultEventMatchesTheReport(t *testing.T) {
	env := harness.StartTB(t, harness.Options{KMSLocal: harness.KMSLocalOptions{Fleet: "events/fleet.json", Args: completeAtOnce}})
	tests := []struct {
		name, payload string
		reason        string // the incident reason the event must carry
		wantEvent     bool
	}{
		{name: "incident", payload: "@events/incident.json", reason: "INC-4711 suspected exposure", wantEvent: true},
		{name: "incident dry run", payload: `{"mode":"incident","keys":["alias/customer-pii"],"reason":"INC-4714 what if","dryRun":true}`,
			reason: "INC-4714 what if", wantEvent: true},
		// alias/tmp-uploads' 1-day interval tag fails in every sweep.
		{name: "sweep with a failed key", payload: "@events/scheduled.json", wantEvent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name+" publishes one result event matching its report", func(t *testing.T) {
			payload := []byte(tt.payload)
			if file, ok := strings.CutPrefix(tt.payload, "@"); ok {
				var err error
				if payload, err = env.ReadFile(file); err != nil {
					t.Fatal(err)
				}
			}
			before := len(recordedEvents(t, env.KMS))
			r, inv, err := env.Function.InvokeReport(t.Context(), payload)
			if err != nil {
				t.Fatal(err)
			}
			events := recordedEvents(t, env.KMS)[before:]
			if len(events) != 1 {
				t.Fatalf("%d events published, want 1: %+v", len(events), events)
			}
			ev := events[0]
			report(t, "result event", oracle.CheckResultEvent(ev.Source, ev.DetailType, ev.Detail, r, inv.RequestID, tt.reason))
			if ev.EventBusName != "default" {
				t.Errorf("event on bus %q, want the default bus", ev.EventBusName)
			}
			if v, ok := resultEventsFailed(t, inv); !ok || v != 0 {
				t.Errorf("ResultEventsFailed = %v (present %v), want 0 after a publish that succeeded", v, ok)
			}
		})
	}

	t.Run("sweep without failures publishes nothing", func(t *testing.T) {
		clean := harness.StartTB(t, harness.Options{KMSLocal: harness.KMSLocalOptions{FleetJSON: dueFleet, Args: completeAtOnce}})
		r, _, err := clean.Function.InvokeReport(t.Context(), []byte(`{"mode":"scheduled"}`))
		if err != nil {
			t.Fatal(err)
		}
		if r.Summary.Rotated == 0 || r.Summary.Failed != 0 {
			t.Fatalf("%s: want rotations and no failure", harness.SummaryLine(r))
		}
		if events := recordedEvents(t, clean.KMS); len(events) != 0 {
			t.Errorf("%d events published by a sweep without failures, want none: %+v", len(events), events)
		}
	})

	t.Run("a refused publish fails neither the run nor the rotations", func(t *testing.T) {
		refused := harness.StartTB(t, harness.Options{KMSLocal: harness.KMSLocalOptions{FleetJSON: plainFleet, Args: completeAtOnce}})
		_, url := newProxy(t, refused.KMS.URL, func(op string, _ int, _ []byte) step {
			if op == "PutEvents" {
				return step{answer: &awsError{status: http.StatusBadRequest, code: "AccessDeniedException",
					message: "not authorized to perform: events:PutEvents"}}
			}
			return step{forward: true}
		})
		fn, err := refused.AddFunction(t.Context(), harness.FunctionOptions{Name: "events-denied", Endpoint: url})
		if err != nil {
			t.Fatal(err)
		}
		start := snapshot(t, refused.KMS)
		r, inv, err := fn.InvokeReport(t.Context(), incidentFor("INC-4715 no events", false, "alias/exposed"))
		if err != nil {
			t.Fatalf("the run failed with its result event: %v", err)
		}
		if got := outcomeOf(r, "alias/exposed"); got != "rotated" {
			t.Errorf("alias/exposed %q, want rotated", got)
		}
		report(t, "emulator state", oracle.CheckRotations(start, snapshot(t, refused.KMS), r))
		if v, ok := resultEventsFailed(t, inv); !ok || v != 1 {
			t.Errorf("ResultEventsFailed = %v (present %v), want 1", v, ok)
		}
	})
}
