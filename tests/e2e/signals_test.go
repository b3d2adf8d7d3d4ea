package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kms-rotator/kms-rotator/tools/harness"
	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

// The budget and compliance signals, from outside: a floor on
// interval tags, free automatic rotations first, overdue keys and material
// age in the report and the metrics, budget metrics that say what the
// report says (a rotation in progress included), and a sweep whose listing
// fails half-way still reporting what it did.

// mainMetrics returns the invocation's EMF record with dimensions [Mode].
func mainMetrics(t *testing.T, inv *harness.Invocation) oracle.EMF {
	t.Helper()
	recs, err := inv.EMF()
	if err != nil {
		t.Fatalf("EMF: %v", err)
	}
	for _, rec := range recs {
		if rec.Dimension("Mode") != "" && rec.Dimension("Reason") == "" {
			if _, ok := rec.Value("KeysCandidate"); ok {
				return rec
			}
		}
	}
	t.Fatalf("no EMF record with dimensions [Mode] among %d", len(recs))
	return oracle.EMF{}
}

// TestIntervalTagBelowTheFloorIsRefused: an interval tag under
// ROTATOR_MIN_INTERVAL_DAYS (30) fails the key naming the tag and the
// floor and never rotates it, in every sweep; a tag at the floor works; and
// ROTATOR_INTERVAL_DAYS under the floor stops the cold start naming both
// variables.
func TestIntervalTagBelowTheFloorIsRefused(t *testing.T) {
	const fleet = `[
 {"alias":"alias/one-day","createdDaysAgo":200,"tags":{"kms-rotator":"enabled","kms-rotator:interval-days":"1"}},
 {"alias":"alias/twenty-nine","createdDaysAgo":200,"tags":{"kms-rotator":"enabled","kms-rotator:interval-days":"29"}},
 {"alias":"alias/thirty","createdDaysAgo":200,"tags":{"kms-rotator":"enabled","kms-rotator:interval-days":"30"},
  "rotations":[{"type":"ON_DEMAND","daysAgo":31}]}]`
	env := harness.StartTB(t, harness.Options{KMSLocal: harness.KMSLocalOptions{FleetJSON: fleet, Args: completeAtOnce}})
	first := snapshot(t, env.KMS)
	var r0 *oracle.Report
	for _, mode := range []string{"plan", "scheduled", "scheduled"} {
		start := snapshot(t, env.KMS)
		r, inv, err := env.Function.InvokeReport(t.Context(), []byte(`{"mode":"`+mode+`"}`))
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		r0 = r
		report(t, mode+" report", oracle.CheckReport(inv.Raw))
		report(t, mode+" emulator state", oracle.CheckRotations(start, snapshot(t, env.KMS), r))
		entries := rawEntries(t, inv.Raw)
		for _, name := range []string{"alias/one-day", "alias/twenty-nine"} {
			if got := outcomeOf(r, name); got != "failed/error" {
				t.Errorf("%s: %s %q, want failed/error", mode, name, got)
			}
			msg, _ := entries[name]["error"].(string)
			if !strings.Contains(msg, "kms-rotator:interval-days") || !strings.Contains(msg, "30") {
				t.Errorf("%s: %s error %q does not name the tag kms-rotator:interval-days and the floor 30", mode, name, msg)
			}
		}
		want := map[string]string{"plan": "would-rotate", "scheduled": "rotated"}[mode]
		if got := outcomeOf(r, "alias/thirty"); got != want && got != "skipped/not-due" {
			t.Errorf("%s: alias/thirty (tag at the floor) %q, want %s (or not-due once rotated)", mode, got, want)
		}
	}
	// Nine daily sweeps spent 8 rotations with a 1-day tag; the
	// refused tags must spend none, the tag at the floor one.
	end := snapshot(t, env.KMS)
	for _, k := range r0.Keys {
		want := map[string]int{"alias/one-day": 0, "alias/twenty-nine": 0, "alias/thirty": 1}[k.Alias]
		if got := end[k.KeyARN].Started() - first[k.KeyARN].Started(); got != want {
			t.Errorf("%s: %d new on-demand rotations after three sweeps, want %d", k.Alias, got, want)
		}
	}

	// The cold start checks the configuration before the Runtime API is
	// reached, so the built bootstrap is run on its own here: under the RIE
	// the same failure costs a 10-second init retry.
	cmd := exec.CommandContext(t.Context(), env.Bins.Bootstrap)
	cmd.Env = []string{"ROTATOR_INTERVAL_DAYS=10", "AWS_REGION=us-east-1", "AWS_ENDPOINT_URL=" + env.KMS.URL,
		"AWS_ACCESS_KEY_ID=" + harness.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + harness.SecretAccessKey}
	for k, v := range env.LedgerEnv() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("ROTATOR_INTERVAL_DAYS=10 under the 30-day floor: bootstrap ended with %v, want a failed cold start\n%s", err, out)
	}
	if !strings.Contains(string(out), "ROTATOR_INTERVAL_DAYS") || !strings.Contains(string(out), "ROTATOR_MIN_INTERVAL_DAYS") {
		t.Errorf("the cold start failure does not name ROTATOR_INTERVAL_DAYS and ROTATOR_MIN_INTERVAL_DAYS:\n%s", out)
	}
}

// TestAutomaticRotationSoonWaitsForTheFreeRotation: a due key whose
// automatic rotation comes in 3 days is skipped by sweeps
// (automatic-rotation-soon, with nextRotationDate) so no on-demand rotation
// is spent days before a free one; one 10 days away (beyond the 7-day
// grace) is rotated; an incident rotates regardless; and
// ROTATOR_AUTO_ROTATION_GRACE_DAYS=0 turns the rule off.
func TestAutomaticRotationSoonWaitsForTheFreeRotation(t *testing.T) {
	const fleet = `[
 {"alias":"alias/auto-in-3-days","createdDaysAgo":400,"rotationPeriodInDays":90,
  "tags":{"kms-rotator":"enabled","kms-rotator:interval-days":"30"},"rotations":[{"type":"AUTOMATIC","daysAgo":87}]},
 {"alias":"alias/auto-in-10-days","createdDaysAgo":400,"rotationPeriodInDays":90,
  "tags":{"kms-rotator":"enabled","kms-rotator:interval-days":"30"},"rotations":[{"type":"AUTOMATIC","daysAgo":80}]}]`
	tests := []struct {
		name    string
		fnEnv   map[string]string
		payload string
		want    map[string]string
	}{
		{name: "plan", payload: `{"mode":"plan"}`,
			want: map[string]string{"alias/auto-in-3-days": "skipped/automatic-rotation-soon", "alias/auto-in-10-days": "would-rotate"}},
		{name: "sweep", payload: `{"mode":"scheduled"}`,
			want: map[string]string{"alias/auto-in-3-days": "skipped/automatic-rotation-soon", "alias/auto-in-10-days": "rotated"}},
		{name: "incident", payload: `{"mode":"incident","reason":"INC-9005","keys":["alias/auto-in-3-days"]}`,
			want: map[string]string{"alias/auto-in-3-days": "rotated"}},
		{name: "sweep with the grace off", payload: `{"mode":"scheduled"}`, fnEnv: map[string]string{"ROTATOR_AUTO_ROTATION_GRACE_DAYS": "0"},
			want: map[string]string{"alias/auto-in-3-days": "rotated", "alias/auto-in-10-days": "rotated"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := harness.StartTB(t, harness.Options{
				KMSLocal: harness.KMSLocalOptions{FleetJSON: fleet, Args: completeAtOnce},
				Function: harness.FunctionOptions{Env: tt.fnEnv},
			})
			start := snapshot(t, env.KMS)
			r, inv, err := env.Function.InvokeReport(t.Context(), []byte(tt.payload))
			if err != nil {
				t.Fatal(err)
			}
			report(t, "report", oracle.CheckReport(inv.Raw))
			report(t, "emulator state", oracle.CheckRotations(start, snapshot(t, env.KMS), r))
			for name, want := range tt.want {
				if got := outcomeOf(r, name); got != want {
					t.Errorf("%s %q, want %q", name, got, want)
				}
			}
			if tt.want["alias/auto-in-3-days"] == "skipped/automatic-rotation-soon" {
				checkNextRotationWithin(t, "alias/auto-in-3-days", rawEntries(t, inv.Raw)["alias/auto-in-3-days"], 3*24*time.Hour-time.Hour, 3*24*time.Hour)
			}
		})
	}
}

// overdueFleet: two due keys the sweep may not rotate (budget exhausted,
// budget reserved) are overdue in every mode; a due key is rotated (or
// would be) and a young key is not due, so neither is overdue; a disabled
// key with 900-day-old material is not eligible, so it is neither overdue
// nor the fleet's oldest material.
const overdueFleet = `[
 {"alias":"alias/exhausted-due","createdDaysAgo":2000,"tags":{"kms-rotator":"enabled"},"rotations":%s},
 {"alias":"alias/reserved-due","createdDaysAgo":2000,"tags":{"kms-rotator":"enabled"},"rotations":%s},
 {"alias":"alias/due","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}},
 {"alias":"alias/fresh","createdDaysAgo":10,"tags":{"kms-rotator":"enabled"}},
 {"alias":"alias/disabled-old","createdDaysAgo":900,"keyState":"Disabled","tags":{"kms-rotator":"enabled"}}]`

// TestOverdueKeysInReportAndMetrics checks materialAgeDays and overdue on
// the entries, summary.overdue, and the KeysOverdue and MaxMaterialAgeDays
// metrics, in the three sweep modes.
func TestOverdueKeysInReportAndMetrics(t *testing.T) {
	fleet := fmt.Sprintf(overdueFleet, onDemandJSON(25, 400), onDemandJSON(23, 100))
	wantOverdue := map[string]bool{"alias/exhausted-due": true, "alias/reserved-due": true, "alias/due": false, "alias/fresh": false}
	for _, mode := range []string{"report", "plan", "scheduled"} {
		t.Run(mode, func(t *testing.T) {
			env := harness.StartTB(t, harness.Options{KMSLocal: harness.KMSLocalOptions{FleetJSON: fleet, Args: completeAtOnce}})
			r, inv, err := env.Function.InvokeReport(t.Context(), []byte(`{"mode":"`+mode+`"}`))
			if err != nil {
				t.Fatal(err)
			}
			report(t, "report", oracle.CheckReport(inv.Raw))
			entries := rawEntries(t, inv.Raw)
			for name, want := range wantOverdue {
				if got, ok := entries[name]["overdue"].(bool); !ok || got != want {
					t.Errorf("%s (%s): overdue %#v, want %v", name, outcomeOf(r, name), entries[name]["overdue"], want)
				}
			}
			if got, _ := entries["alias/disabled-old"]["overdue"].(bool); got {
				t.Error("alias/disabled-old (not eligible) is overdue")
			}
			if age, _ := entries["alias/exhausted-due"]["materialAgeDays"].(float64); age != 400 {
				t.Errorf("alias/exhausted-due: materialAgeDays %#v, want 400", entries["alias/exhausted-due"]["materialAgeDays"])
			}
			var summary struct {
				Summary struct {
					Overdue *int `json:"overdue"`
				} `json:"summary"`
			}
			if err := json.Unmarshal(inv.Raw, &summary); err != nil || summary.Summary.Overdue == nil || *summary.Summary.Overdue != 2 {
				t.Errorf("summary.overdue %v (%v), want 2", summary.Summary.Overdue, err)
			}
			m := mainMetrics(t, inv)
			if v, ok := m.Value("KeysOverdue"); !ok || v != 2 {
				t.Errorf("KeysOverdue = %v (present %v), want 2", v, ok)
			}
			// The disabled key's 900 days do not count: it is not eligible.
			if v, ok := m.Value("MaxMaterialAgeDays"); !ok || v != 400 {
				t.Errorf("MaxMaterialAgeDays = %v (present %v), want 400", v, ok)
			}
			checkMetrics(t, inv, r)
		})
	}
}

// TestBudgetMetricsEqualTheReport compares KeysBudgetLow,
// KeysBudgetExhausted and MinOnDemandRemaining with the report's entries
// while another run's on-demand rotations are in progress (they are spent:
// KMS lists a rotation only once it completes), in every sweep mode.
func TestBudgetMetricsEqualTheReport(t *testing.T) {
	fleet := fmt.Sprintf(`[
 {"alias":"alias/in-progress-low","createdDaysAgo":2000,"tags":{"kms-rotator":"enabled"},"rotations":%s},
 {"alias":"alias/in-progress-last","createdDaysAgo":2000,"tags":{"kms-rotator":"enabled"},"rotations":%s},
 {"alias":"alias/exhausted","createdDaysAgo":2000,"tags":{"kms-rotator":"enabled"},"rotations":%s},
 {"alias":"alias/reserved","createdDaysAgo":2000,"tags":{"kms-rotator":"enabled"},"rotations":%s},
 {"alias":"alias/due","createdDaysAgo":2000,"tags":{"kms-rotator":"enabled"},"rotations":%s},
 {"alias":"alias/fresh","createdDaysAgo":5,"tags":{"kms-rotator":"enabled"}}]`,
		onDemandJSON(22, 100), onDemandJSON(24, 100), onDemandJSON(25, 100), onDemandJSON(23, 100), onDemandJSON(10, 100))
	env := harness.StartTB(t, harness.Options{KMSLocal: harness.KMSLocalOptions{FleetJSON: fleet, Args: []string{"-rotation-delay=1h", "-quiet"}}})
	// Another run's rotations, still in progress when the function runs.
	client := env.KMS.KMS("")
	for _, alias := range []string{"alias/in-progress-low", "alias/in-progress-last"} {
		// RotateKeyOnDemand takes a key ID or ARN, not an alias.
		key, err := client.DescribeKey(t.Context(), &kms.DescribeKeyInput{KeyId: aws.String(alias)})
		if err != nil {
			t.Fatalf("describe %s: %v", alias, err)
		}
		if _, err := client.RotateKeyOnDemand(t.Context(), &kms.RotateKeyOnDemandInput{KeyId: key.KeyMetadata.KeyId}); err != nil {
			t.Fatalf("rotate %s: %v", alias, err)
		}
	}
	// Remaining after the run (limit 25, reserve 2): in-progress-low 2,
	// in-progress-last 0, exhausted 0, reserved 2, due 15 (14 once
	// rotated), fresh 25.
	wantRemaining := map[string]int{"alias/in-progress-low": 2, "alias/in-progress-last": 0, "alias/exhausted": 0, "alias/reserved": 2, "alias/fresh": 25}
	wantMetrics := map[string]float64{"KeysBudgetLow": 4, "KeysBudgetExhausted": 2, "MinOnDemandRemaining": 0}
	for _, mode := range []string{"report", "plan", "scheduled"} {
		t.Run(mode, func(t *testing.T) {
			start := snapshot(t, env.KMS)
			r, inv, err := env.Function.InvokeReport(t.Context(), []byte(`{"mode":"`+mode+`"}`))
			if err != nil {
				t.Fatal(err)
			}
			report(t, "report", oracle.CheckReport(inv.Raw))
			report(t, "emulator state", oracle.CheckRotations(start, snapshot(t, env.KMS), r))
			for _, k := range r.Keys {
				want, ok := wantRemaining[k.Alias]
				if ok && (k.OnDemandRemaining == nil || *k.OnDemandRemaining != want) {
					t.Errorf("%s (%s/%s): onDemandRemaining %v, want %d", k.Alias, k.Outcome, k.Reason, ptr(k.OnDemandRemaining), want)
				}
				if strings.HasPrefix(k.Alias, "alias/in-progress-") && k.Outcome != "skipped" {
					t.Errorf("%s has a rotation in progress, yet %s", k.Alias, k.Outcome)
				}
			}
			m := mainMetrics(t, inv)
			for name, want := range wantMetrics {
				if v, ok := m.Value(name); !ok || v != want {
					t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
				}
			}
			checkMetrics(t, inv, r)
		})
	}
}

func ptr(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestListingFailureAfterRotationsStillReports: the tagging API answers
// the sweep's first page of candidates, then fails every later page. The
// run returns its error (so Lambda's retry and failure destination apply),
// but first writes the metrics and the report log line of the keys it did
// handle, and those agree with the emulator.
func TestListingFailureAfterRotationsStillReports(t *testing.T) {
	// 150 due keys: GetResources returns 100 a page.
	const fleet = `[{"alias":"alias/due","count":150,"createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}}]`
	env := harness.StartTB(t, harness.Options{
		KMSLocal: harness.KMSLocalOptions{FleetJSON: fleet, Args: completeAtOnce},
		Function: harness.FunctionOptions{Env: map[string]string{"ROTATOR_ROTATE_RPS": "50"}},
	})
	var px *proxy
	px, url := newProxy(t, env.KMS.URL, func(op string, _ int, body []byte) step {
		if op != "GetResources" || !strings.Contains(string(body), `"PaginationToken"`) {
			return step{forward: true}
		}
		// A later page: fail it once the sweep has rotated something, so
		// the failure comes after keys were handled.
		for deadline := time.Now().Add(20 * time.Second); px.count("RotateKeyOnDemand") == 0 && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		return step{answer: &awsError{status: 500, code: "InternalServiceException", message: "injected by the e2e proxy"}}
	})
	fn, err := env.AddFunction(t.Context(), harness.FunctionOptions{Name: "listing-fails", Endpoint: url})
	if err != nil {
		t.Fatal(err)
	}
	start := snapshot(t, env.KMS)
	inv, err := fn.Call(t.Context(), []byte(`{"mode":"scheduled"}`))
	var he *harness.HandlerError
	if !errors.As(err, &he) {
		t.Fatalf("a sweep whose listing failed answered %v, want its error", err)
	}
	end := snapshot(t, env.KMS)
	rotated := newRotations(start, end)
	if rotated == 0 {
		t.Fatal("no key rotated before the listing failed: the scenario tests nothing")
	}
	// The report log line of what the run did.
	var logged *oracle.Report
	var loggedRaw []byte
	for _, l := range inv.Logs {
		var line struct {
			Msg    string          `json:"msg"`
			Report json.RawMessage `json:"report"`
		}
		if json.Unmarshal([]byte(l), &line) == nil && line.Msg == "report" {
			loggedRaw = line.Report
			if logged, err = oracle.Decode(line.Report); err != nil {
				t.Fatal(err)
			}
		}
	}
	if logged == nil {
		t.Fatal("no report log line from the partial sweep")
	}
	report(t, "logged report schema", oracle.CheckReport(loggedRaw))
	report(t, "emulator state against the logged report", oracle.CheckRotations(start, end, logged))
	m := mainMetrics(t, inv)
	if v, ok := m.Value("KeysRotated"); !ok || v != float64(rotated) {
		t.Errorf("KeysRotated = %v (present %v), the emulator has %d new rotations", v, ok, rotated)
	}
}
