package rotator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	tagging "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

// onDemandRotations is a fleet rotation list of n ON_DEMAND rotations.
func onDemandRotations(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"type":"ON_DEMAND","daysAgo":%d}`, 1000-i)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func incidentFor(t *testing.T, force bool, keys ...string) request.Request {
	t.Helper()
	req := request.Request{Mode: request.ModeIncident, Reason: "INC-1 test", Force: force}
	for _, k := range keys {
		ref, err := request.ParseKeyRef(k)
		if err != nil {
			t.Fatal(err)
		}
		req.Keys = append(req.Keys, ref)
	}
	return req
}

func spent(t *testing.T, h *harness, before oracle.Snapshot, arn string) int {
	t.Helper()
	return h.snapshot(t, testRegion)[arn].Started() - before[arn].Started()
}

func TestRepeatedIncidentsSpendOneRotation(t *testing.T) {
	for _, delay := range []time.Duration{0, 200 * time.Millisecond} {
		t.Run(fmt.Sprintf("rotation delay %v", delay), func(t *testing.T) {
			h := newHarness(t, kmsemu.Options{RotationDelay: delay}, oneDueKey, fastConfig())
			before := h.snapshot(t, testRegion)
			var arn, first string
			// The same request three times: the repeats answer the first
			// run's report.
			for i := range 3 {
				rep := h.run(t, incidentFor(t, false, "alias/due"))
				k := rep.Keys[0]
				arn = k.KeyARN
				if k.Outcome != Rotated {
					t.Fatalf("incident %d: %s/%s %q, want rotated", i+1, k.Outcome, k.Reason, k.Error)
				}
				if i == 0 {
					first = rep.RunID
				} else if rep.RepeatOf != first {
					t.Fatalf("incident %d: repeatOf %q, want the first run %s", i+1, rep.RepeatOf, first)
				}
			}
			// A new request inside the cooldown finds the key recently rotated.
			other := incidentFor(t, false, "alias/due")
			other.Reason = "INC-2 another responder"
			k := h.run(t, other).Keys[0]
			if k.Outcome != Skipped || k.Reason != ReasonRecentlyRotated || k.LastRotation == nil {
				t.Fatalf("new request inside the cooldown: %s/%s lastRotation %v, want recently-rotated with lastRotation", k.Outcome, k.Reason, k.LastRotation)
			}
			if n := spent(t, h, before, arn); n != 1 {
				t.Fatalf("three identical incidents and a fourth inside the cooldown spent %d rotations, want 1", n)
			}
			if delay > 0 {
				time.Sleep(2 * delay) // force never overrides a rotation in progress
			}
			k = h.run(t, incidentFor(t, true, "alias/due")).Keys[0]
			if k.Outcome != Rotated {
				t.Fatalf("forced incident: %s/%s %q, want rotated", k.Outcome, k.Reason, k.Error)
			}
			if n := spent(t, h, before, arn); n != 2 {
				t.Fatalf("force spent %d rotations in all, want 2", n)
			}
		})
	}
}

func TestIncidentLetsKMSJudgeTheLifetimeLimit(t *testing.T) {
	fleet := `[{"alias":"alias/ten","createdDaysAgo":2000,"tags":{"kms-rotator":"enabled"},"rotations":` + onDemandRotations(10) + `},
	           {"alias":"alias/full","createdDaysAgo":2000,"tags":{"kms-rotator":"enabled"},"rotations":` + onDemandRotations(25) + `}]`
	cfg := fastConfig()
	cfg.OnDemandLimit = 10 // the local count says both are exhausted; KMS (the emulator) allows 25
	h := newHarness(t, kmsemu.Options{OnDemandLimit: 25}, fleet, cfg)
	before := h.snapshot(t, testRegion)

	sweep := h.run(t, request.Request{Mode: request.ModeScheduled})
	checkEntries(t, sweep, map[string]want{"alias/ten": {Skipped, ReasonBudgetExhausted}, "alias/full": {Skipped, ReasonBudgetExhausted}})
	if n := h.emu.Server.Stats().Op("RotateKeyOnDemand").Calls; n != 0 {
		t.Fatalf("scheduled run called RotateKeyOnDemand %d times, want 0 (it stops at the local count)", n)
	}

	rep := h.run(t, incidentFor(t, false, "alias/ten", "alias/full"))
	checkEntries(t, rep, map[string]want{"alias/ten": {Rotated, ReasonNone}, "alias/full": {Skipped, ReasonBudgetExhausted}})
	full := byAlias(rep)["alias/full"]
	if full.OnDemandRemaining == nil || *full.OnDemandRemaining != 0 {
		t.Errorf("budget-exhausted entry shows %v remaining, want 0", full.OnDemandRemaining)
	}
	if n := h.emu.Server.Stats().Op("RotateKeyOnDemand").Calls; n != 2 {
		t.Errorf("incident called RotateKeyOnDemand %d times, want 2 (KMS judges both)", n)
	}
	checkAgainstEmulator(t, rep, before, h.snapshot(t, testRegion))
}

// emfValues returns the [Mode] line's metric values of the last run.
func emfValues(t *testing.T, h *harness) map[string]float64 {
	t.Helper()
	var mode map[string]float64
	for _, l := range h.metrics.lines(t) {
		dims, values := validateEMF(t, l, h.engine.cfg.MetricsNamespace)
		if _, ok := dims["Reason"]; !ok {
			mode = values
		}
	}
	if mode == nil {
		t.Fatal("no [Mode] EMF line")
	}
	return mode
}

// checkBudgetMetrics compares every budget and cryptoperiod metric with
// what the report's entries say: one count everywhere.
func checkBudgetMetrics(t *testing.T, rep *Report, m map[string]float64, reserve int) {
	t.Helper()
	low, exhausted, minRem, maxAge, overdue := 0, 0, -1, -1, 0
	for _, k := range rep.Keys {
		if k.OnDemandRemaining != nil {
			r := *k.OnDemandRemaining
			if r <= reserve {
				low++
			}
			if r == 0 {
				exhausted++
			}
			if minRem < 0 || r < minRem {
				minRem = r
			}
		}
		if k.MaterialAgeDays != nil {
			maxAge = max(maxAge, *k.MaterialAgeDays)
		}
		if k.Overdue != nil && *k.Overdue {
			overdue++
		}
	}
	if overdue != rep.Summary.Overdue {
		t.Errorf("summary.overdue %d, entries say %d", rep.Summary.Overdue, overdue)
	}
	for name, want := range map[string]int{
		settings.MetricKeysBudgetLow: low, settings.MetricKeysBudgetExhausted: exhausted, settings.MetricMinOnDemandRemaining: minRem,
		settings.MetricKeysOverdue: overdue, settings.MetricMaxMaterialAgeDays: maxAge,
	} {
		if got, ok := m[name]; !ok || got != float64(want) {
			t.Errorf("%s = %v (present %v), the report says %d", name, got, ok, want)
		}
	}
}

func TestBudgetMetricsEqualTheReportWithARotationInProgress(t *testing.T) {
	// busy has 22 on-demand rotations and another run's in progress: 2
	// remain, at the reserve. old is past its interval but budget-reserved:
	// overdue.
	fleet := `[{"keyId":"33333333-3333-4333-8333-333333333333","alias":"alias/busy","createdDaysAgo":2000,"tags":{"kms-rotator":"enabled"},"rotations":` + onDemandRotations(22) + `},
	           {"alias":"alias/old","createdDaysAgo":2000,"tags":{"kms-rotator":"enabled"},"rotations":` + onDemandRotations(23) + `},
	           {"alias":"alias/fresh","createdDaysAgo":10,"tags":{"kms-rotator":"enabled"}},
	           {"alias":"alias/due","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}}]`
	for _, mode := range []request.Mode{request.ModeScheduled, request.ModePlan, request.ModeReport} {
		t.Run(string(mode), func(t *testing.T) {
			h := newHarness(t, kmsemu.Options{RotationDelay: time.Hour}, fleet, fastConfig())
			if _, err := h.kms.RotateKeyOnDemand(context.Background(), &kms.RotateKeyOnDemandInput{KeyId: aws.String("33333333-3333-4333-8333-333333333333")}); err != nil {
				t.Fatal(err)
			}
			rep := h.run(t, request.Request{Mode: mode})
			busy := byAlias(rep)["alias/busy"]
			if busy.OnDemandUsed == nil || *busy.OnDemandUsed != 23 || *busy.OnDemandRemaining != 2 {
				t.Errorf("busy: used %v remaining %v, want 23 and 2 (the rotation in progress is spent)", busy.OnDemandUsed, busy.OnDemandRemaining)
			}
			if old := byAlias(rep)["alias/old"]; old.Reason != ReasonBudgetReserved || old.Overdue == nil || !*old.Overdue {
				t.Errorf("old: %s overdue %v, want budget-reserved and overdue", old.Reason, old.Overdue)
			}
			if rep.Summary.Overdue == 0 {
				t.Error("summary.overdue is 0, want the overdue keys counted")
			}
			checkBudgetMetrics(t, rep, emfValues(t, h), h.engine.cfg.Reserve)
		})
	}
}

// fakeEvents records PutEvents calls and answers with err (nil: accepted).
type fakeEvents struct {
	inputs []*eventbridge.PutEventsInput
	err    error
	failed bool // answer with a failed entry
}

func (f *fakeEvents) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	f.inputs = append(f.inputs, in)
	if f.err != nil {
		return nil, f.err
	}
	if f.failed {
		return &eventbridge.PutEventsOutput{FailedEntryCount: 1, Entries: []ebtypes.PutEventsResultEntry{{
			ErrorCode: aws.String("InternalFailure"), ErrorMessage: aws.String("try again")}}}, nil
	}
	return &eventbridge.PutEventsOutput{Entries: []ebtypes.PutEventsResultEntry{{EventId: aws.String("e-1")}}}, nil
}

func TestResultEvent(t *testing.T) {
	t.Run("incident → one event on the default bus that matches the report", func(t *testing.T) {
		h := newHarness(t, kmsemu.Options{}, demoFleet(t), fastConfig())
		ev := &fakeEvents{}
		h.engine.SetEvents(ev)
		req := payload(t, "incident.json")
		rep := h.run(t, req)
		if len(ev.inputs) != 1 || len(ev.inputs[0].Entries) != 1 {
			t.Fatalf("%d PutEvents calls, want 1 with 1 entry", len(ev.inputs))
		}
		e := ev.inputs[0].Entries[0]
		if aws.ToString(e.Source) != settings.ResultEventSource || aws.ToString(e.DetailType) != settings.ResultEventDetailType || aws.ToString(e.EventBusName) != "default" {
			t.Errorf("entry %s / %s on %s", aws.ToString(e.Source), aws.ToString(e.DetailType), aws.ToString(e.EventBusName))
		}
		var d ResultDetail
		if err := json.Unmarshal([]byte(aws.ToString(e.Detail)), &d); err != nil {
			t.Fatal(err)
		}
		if d.RunID != rep.RunID || d.Mode != request.ModeIncident || d.Reason != req.Reason || d.RequestID != "req-1" || d.Truncated {
			t.Errorf("detail %+v does not match the run", d)
		}
		if !reflect.DeepEqual(d.Summary, rep.Summary) {
			t.Errorf("detail summary %+v, report %+v", d.Summary, rep.Summary)
		}
		if len(d.Keys) != len(rep.Keys) {
			t.Errorf("%d keys in the event, %d in the report (an incident has no not-due entries)", len(d.Keys), len(rep.Keys))
		}
		if m := emfValues(t, h); m[settings.MetricResultEventsFailed] != 0 {
			t.Errorf("ResultEventsFailed = %v, want 0", m[settings.MetricResultEventsFailed])
		}
	})
	t.Run("scheduled run without failures → no event, no metric", func(t *testing.T) {
		h := newHarness(t, kmsemu.Options{}, oneDueKey, fastConfig())
		ev := &fakeEvents{}
		h.engine.SetEvents(ev)
		h.run(t, request.Request{Mode: request.ModeScheduled})
		if len(ev.inputs) != 0 {
			t.Errorf("%d PutEvents calls, want 0", len(ev.inputs))
		}
		if _, ok := emfValues(t, h)[settings.MetricResultEventsFailed]; ok {
			t.Error("ResultEventsFailed emitted for a run that published nothing")
		}
	})
	t.Run("scheduled run with a failed key → event with the not-not-due entries", func(t *testing.T) {
		h := newHarness(t, kmsemu.Options{}, demoFleet(t), fastConfig()) // tmp-uploads fails (interval tag below the floor)
		ev := &fakeEvents{}
		h.engine.SetEvents(ev)
		rep := h.run(t, request.Request{Mode: request.ModeScheduled})
		if len(ev.inputs) != 1 {
			t.Fatalf("%d PutEvents calls, want 1", len(ev.inputs))
		}
		var d ResultDetail
		if err := json.Unmarshal([]byte(aws.ToString(ev.inputs[0].Entries[0].Detail)), &d); err != nil {
			t.Fatal(err)
		}
		want := len(rep.Keys) - rep.Summary.Reasons[ReasonNotDue]
		if len(d.Keys) != want || d.Summary.Failed == 0 {
			t.Errorf("%d keys (failed %d), want the %d entries that are not not-due", len(d.Keys), d.Summary.Failed, want)
		}
		for _, k := range d.Keys {
			if k.Reason == ReasonNotDue {
				t.Errorf("not-due entry %s in the event", k.Alias)
			}
		}
	})
	for name, ev := range map[string]*fakeEvents{
		"publish error": {err: errors.New("connection refused")},
		"failed entry":  {failed: true},
	} {
		t.Run(name+" → the run still reports; ResultEventsFailed 1", func(t *testing.T) {
			h := newHarness(t, kmsemu.Options{}, oneDueKey, fastConfig())
			h.engine.SetEvents(ev)
			rep := h.run(t, incidentFor(t, false, "alias/due"))
			if rep.Keys[0].Outcome != Rotated {
				t.Errorf("%s/%s, want rotated", rep.Keys[0].Outcome, rep.Keys[0].Reason)
			}
			if m := emfValues(t, h); m[settings.MetricResultEventsFailed] != 1 {
				t.Errorf("ResultEventsFailed = %v, want 1", m[settings.MetricResultEventsFailed])
			}
			if !strings.Contains(h.logs.String(), "result event not published") {
				t.Error("the failed publish is not logged")
			}
		})
	}
}

func TestResultDetailFitsTheEventLimit(t *testing.T) {
	rep := &Report{RunID: "r", Mode: request.ModeIncident, Summary: Summary{Candidates: 600, Reasons: map[Reason]int{}}}
	for i := range 600 {
		k := KeyReport{KeyID: fmt.Sprintf("k%03d", i), KeyARN: strings.Repeat("a", 300), Outcome: Skipped, Reason: ReasonRecentlyRotated}
		switch i % 3 {
		case 0:
			k.Outcome, k.Reason, k.Error = Failed, ReasonError, strings.Repeat("e", 200)
		case 1:
			k.Outcome, k.Reason = Rotated, ReasonNone
		}
		rep.Keys = append(rep.Keys, k)
	}
	r := &run{job: job{req: request.Request{Mode: request.ModeIncident, Reason: "INC"}}}
	const limit = 160 << 10 // room for the failed entries and some more
	b, err := (&outputs{r: r}).resultDetail(rep, limit)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > limit {
		t.Fatalf("detail is %d bytes, limit %d", len(b), limit)
	}
	var d ResultDetail
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if !d.Truncated || d.Summary.Candidates != 600 {
		t.Fatalf("truncated %v, candidates %d; want true and the whole summary", d.Truncated, d.Summary.Candidates)
	}
	failed := 0
	for i, k := range d.Keys {
		if k.Outcome == Failed {
			failed++
		}
		if i > 0 && k.KeyID < d.Keys[i-1].KeyID {
			t.Fatal("entries are not in report order")
		}
	}
	if failed != 200 {
		t.Errorf("%d failed entries kept, want all 200 (failed entries go first)", failed)
	}
}

// pagesThenFail lets the first n GetResources pages through, then fails.
type pagesThenFail struct {
	TaggingAPI
	n     int32
	calls atomic.Int32
}

func (p *pagesThenFail) GetResources(ctx context.Context, in *tagging.GetResourcesInput, optFns ...func(*tagging.Options)) (*tagging.GetResourcesOutput, error) {
	if p.calls.Add(1) > p.n {
		return nil, errors.New("listing broke")
	}
	return p.TaggingAPI.GetResources(ctx, in, optFns...)
}

func TestListingFailurePartWayStillReportsWhatItDid(t *testing.T) {
	fleet := `[{"alias":"alias/due","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"},"count":150}]`
	h := newHarness(t, kmsemu.Options{}, fleet, fastConfig())
	h.engine.tagging = &pagesThenFail{TaggingAPI: h.engine.tagging, n: 1}
	_, err := h.engine.Run(context.Background(), request.Request{Mode: request.ModeScheduled}, Invocation{RequestID: "req-1", Scope: testScope})
	if err == nil || !strings.Contains(err.Error(), "listing broke") || !strings.Contains(err.Error(), "after 100 keys") {
		t.Fatalf("Run error = %v, want the listing failure after the first page's 100 keys", err)
	}
	m := emfValues(t, h)
	if m[settings.MetricKeysRotated] != 100 || m[settings.MetricRunsFailed] != 1 || m[settings.MetricRunsCompleted] != 0 {
		t.Errorf("KeysRotated %v RunsFailed %v RunsCompleted %v, want 100, 1, 0", m[settings.MetricKeysRotated], m[settings.MetricRunsFailed], m[settings.MetricRunsCompleted])
	}
	lines := h.logs.lines(t)
	var rep *Report
	for _, l := range lines {
		if l["msg"] == "report" {
			b, _ := json.Marshal(l["report"])
			rep = &Report{}
			if err := json.Unmarshal(b, rep); err != nil {
				t.Fatal(err)
			}
		}
	}
	if rep == nil || rep.Summary.Rotated != 100 || len(rep.Keys) != 100 {
		t.Fatalf("report line %+v, want the 100 rotated keys", rep)
	}
}

func TestEveryCallHasAPerAttemptTimeout(t *testing.T) {
	cfg := settings.DefaultConfig()
	cfg.CallTimeout = 3 * time.Second
	awsCfg, err := LoadAWSConfig(context.Background(), cfg, config.WithRegion(testRegion),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")))
	if err != nil {
		t.Fatal(err)
	}
	hc, ok := awsCfg.HTTPClient.(*awshttp.BuildableClient)
	if !ok {
		t.Fatalf("HTTP client %T, want the SDK's buildable client", awsCfg.HTTPClient)
	}
	if got := hc.GetTimeout(); got != cfg.CallTimeout {
		t.Fatalf("per-attempt timeout %v, want ROTATOR_CALL_TIMEOUT %v", got, cfg.CallTimeout)
	}
}

// Answers that cannot be mistaken for success.
func TestIncidentAnswersSayWhatWasNotRotated(t *testing.T) {
	fleet := `[{"alias":"alias/due","createdDaysAgo":200,"tags":{"kms-rotator":"enabled","team":"pay"}},
	           {"alias":"alias/off","createdDaysAgo":200,"keyState":"Disabled","tags":{"kms-rotator":"enabled"}},
	           {"alias":"alias/untagged","createdDaysAgo":200},
	           {"alias":"alias/full","createdDaysAgo":2000,"tags":{"kms-rotator":"enabled"},"rotations":` + onDemandRotations(25) + `}]`
	h := newHarness(t, kmsemu.Options{}, fleet, fastConfig())
	rep := h.run(t, incidentFor(t, false, "alias/due", "alias/off", "alias/untagged"))
	if rep.Summary.NotRotated == nil || *rep.Summary.NotRotated != 2 || rep.Summary.Failed != 0 {
		t.Fatalf("summary %+v notRotated %v, want 2 not rotated (and 0 failed: a playbook must not check failed alone)", rep.Summary, rep.Summary.NotRotated)
	}
	for alias, want := range map[string]string{"alias/off": "enable the key", "alias/untagged": "add the opt-in tag kms-rotator=enabled"} {
		if k := byAlias(rep)[alias]; !strings.Contains(k.Next, want) {
			t.Errorf("%s: next %q, want it to say %q", alias, k.Next, want)
		}
	}
	// A dry run marks the key with no rotation left.
	dry := incidentFor(t, false, "alias/full")
	dry.DryRun = true
	k := h.run(t, dry).Keys[0]
	if k.Outcome != WouldRotate || !strings.Contains(k.Next, "no on-demand rotation left") {
		t.Errorf("dry run of an exhausted key: %s next %q, want would-rotate marked as having no rotation left", k.Outcome, k.Next)
	}
	// A tag that selects nothing is an error, not an empty success, and
	// its result event says so on the results bus.
	ev := &fakeEvents{}
	h.engine.SetEvents(ev)
	h.engine.cfg.ResultBus = "kms-rotator-results"
	_, err := h.engine.Run(context.Background(), request.Request{Mode: request.ModeIncident, Reason: "INC-1",
		Tag: &request.Tag{Key: "team", Value: "payments"}}, Invocation{RequestID: "r", Scope: testScope})
	if err == nil || !strings.Contains(err.Error(), "tag team=payments matches no key") {
		t.Fatalf("tag matching nothing: error %v, want one naming the tag", err)
	}
	if len(ev.inputs) != 1 || aws.ToString(ev.inputs[0].Entries[0].EventBusName) != "kms-rotator-results" ||
		!strings.Contains(aws.ToString(ev.inputs[0].Entries[0].Detail), `"error":"incident run: tag team=payments matches no key`) {
		t.Fatalf("result events %+v, want one on the results bus carrying the error", ev.inputs)
	}
}
