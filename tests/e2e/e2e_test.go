package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kms-rotator/kms-rotator/tools/harness"
	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

// completeAtOnce makes on-demand rotations complete immediately, so a
// rotation the function started is in ListKeyRotations when it answers.
var completeAtOnce = []string{"-rotation-delay=0", "-quiet"}

// TestEveryEventReturnsAConsistentReport invokes every sample payload in
// events/ against a fresh emulator seeded with events/fleet.json and judges
// the answer from outside: the report's schema, the emulator's state through
// the SDK, the ledger's claims, the log lines and the EMF metrics.
func TestEveryEventReturnsAConsistentReport(t *testing.T) {
	root, err := harness.FindRoot("")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file       string
		wantMode   string
		wantDryRun bool
		// wantRotated is the keys the fleet makes due for this payload:
		// a floor that catches a function that rotates nothing.
		wantRotated int
	}{
		{file: "plan.json", wantMode: "plan", wantDryRun: true},
		{file: "report.json", wantMode: "report", wantDryRun: true},
		// Four keys with KMS's material and alias/partner-byok-staged,
		// whose imported material is staged.
		{file: "scheduled.json", wantMode: "scheduled", wantRotated: 5},
		{file: "incident.json", wantMode: "incident", wantRotated: 3},
		{file: "incident-eventbridge.json", wantMode: "incident", wantRotated: 3},
		{file: "incident-tag.json", wantMode: "incident", wantRotated: 1},
		// alias/card-vault was rotated on demand 15 minutes before the
		// emulator started: inside the cooldown, which force overrides.
		{file: "incident-force.json", wantMode: "incident", wantRotated: 1},
	}
	// Every payload in events/ must be in the table.
	files, err := filepath.Glob(filepath.Join(root, "events", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		if name == "fleet.json" {
			continue
		}
		known := false
		for _, tt := range tests {
			known = known || tt.file == name
		}
		if !known {
			t.Errorf("events/%s has no row in this test", name)
		}
	}
	for _, tt := range tests {
		t.Run(tt.file+" answers a report the emulator agrees with", func(t *testing.T) {
			payload, err := os.ReadFile(filepath.Join(root, "events", tt.file))
			if err == nil {
				// An event's time must be recent (ROTATOR_INCIDENT_MAX_AGE).
				payload, err = harness.FreshEvent(payload)
			}
			if err != nil {
				t.Fatal(err)
			}
			env := harness.StartTB(t, harness.Options{KMSLocal: harness.KMSLocalOptions{Fleet: "events/fleet.json", Args: completeAtOnce}})
			before, claimsBefore := snapshot(t, env.KMS), claims(t, env)
			r, inv, err := env.Function.InvokeReport(t.Context(), payload)
			if err != nil {
				t.Fatalf("invoke: %v", err)
			}
			report(t, "report schema", oracle.CheckReport(inv.Raw))
			if string(r.Mode) != tt.wantMode || r.DryRun != tt.wantDryRun {
				t.Errorf("mode %q dryRun %v, want %q %v", r.Mode, r.DryRun, tt.wantMode, tt.wantDryRun)
			}
			if r.Summary.Rotated < tt.wantRotated {
				t.Errorf("rotated %d keys, want at least %d", r.Summary.Rotated, tt.wantRotated)
			}
			if tt.wantDryRun && r.Summary.Rotated != 0 {
				t.Errorf("dry run rotated %d keys", r.Summary.Rotated)
			}
			after := snapshot(t, env.KMS)
			report(t, "emulator state", oracle.CheckRotations(before, after, r))
			report(t, "key material", oracle.CheckMaterial(before, after, r))
			report(t, "ledger", oracle.CheckClaims(claims(t, env).Since(claimsBefore), before, after, r))
			checkLogs(t, inv, r)
			if t.Failed() {
				var b strings.Builder
				_ = harness.WriteTable(&b, r)
				t.Logf("report:\n%s", b.String())
			}
		})
	}
}

// dueFleet has three opted-in keys due for the 90-day sweep, one opted-in
// key that is not due and one due key that did not opt in.
const dueFleet = `[
 {"alias":"alias/due-1","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}},
 {"alias":"alias/due-2","createdDaysAgo":400,"tags":{"kms-rotator":"enabled"},"rotations":[{"type":"ON_DEMAND","daysAgo":120}]},
 {"alias":"alias/due-3","createdDaysAgo":500,"tags":{"kms-rotator":"enabled"},"rotations":[{"type":"AUTOMATIC","daysAgo":91}]},
 {"alias":"alias/fresh","createdDaysAgo":5,"tags":{"kms-rotator":"enabled"}},
 {"alias":"alias/not-opted-in","createdDaysAgo":300}
]`

// TestScheduledSweepTwiceRotatesNothingTheSecondTime runs the scheduled
// payload twice in a row: the first run rotates the three due keys, the
// second none, whether the first run's rotations completed or are still in
// progress.
func TestScheduledSweepTwiceRotatesNothingTheSecondTime(t *testing.T) {
	tests := []struct {
		name       string
		emuArgs    []string
		wantReason []string // acceptable reasons for the due keys the second time
	}{
		{name: "completed rotations make the keys not due", emuArgs: completeAtOnce, wantReason: []string{"not-due"}},
		// Real KMS keeps an on-demand rotation in progress for a while;
		// a second delivery of the schedule arrives meanwhile.
		{name: "rotations still in progress are not started again", emuArgs: []string{"-rotation-delay=1h", "-quiet"}, wantReason: []string{"rotation-in-progress", "not-due"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := harness.StartTB(t, harness.Options{KMSLocal: harness.KMSLocalOptions{FleetJSON: dueFleet, Args: tt.emuArgs}})
			payload, err := env.ReadFile("events/scheduled.json")
			if err != nil {
				t.Fatal(err)
			}
			start := snapshot(t, env.KMS)
			first, _, err := env.Function.InvokeReport(t.Context(), payload)
			if err != nil {
				t.Fatalf("first sweep: %v", err)
			}
			if first.Summary.Candidates != 4 || first.Summary.Rotated != 3 {
				t.Fatalf("first sweep: %s; want 4 candidates, 3 rotated", harness.SummaryLine(first))
			}
			for _, k := range first.Keys {
				if (k.Outcome == "rotated") != strings.HasPrefix(k.Alias, "alias/due-") {
					t.Errorf("first sweep: %s %s (%s)", k.Alias, k.Outcome, k.Reason)
				}
			}
			second, _, err := env.Function.InvokeReport(t.Context(), payload)
			if err != nil {
				t.Fatalf("second sweep: %v", err)
			}
			if second.Summary.Rotated != 0 || second.Summary.Candidates != 4 {
				t.Fatalf("second sweep: %s; want 4 candidates, 0 rotated", harness.SummaryLine(second))
			}
			for _, k := range second.Keys {
				if strings.HasPrefix(k.Alias, "alias/due-") && !contains(tt.wantReason, string(k.Reason)) {
					t.Errorf("second sweep: %s skipped for %q, want one of %v", k.Alias, k.Reason, tt.wantReason)
				}
			}
			// One rotation per due key over both runs, nothing else.
			report(t, "emulator state", oracle.CheckRotations(start, snapshot(t, env.KMS), first, second))
		})
	}
}

// TestBadPayloadYieldsAHandlerErrorNamingTheField sends malformed payloads
// to the built function: each answers a handler error (HTTP 200 with
// errorMessage) naming the problem, and none reaches the emulator.
func TestBadPayloadYieldsAHandlerErrorNamingTheField(t *testing.T) {
	env := harness.StartTB(t, harness.Options{KMSLocal: harness.KMSLocalOptions{Fleet: "events/fleet.json", Args: []string{"-quiet"}}})
	thousandAndOne := make([]string, 1001)
	for i := range thousandAndOne {
		thousandAndOne[i] = fmt.Sprintf(`"alias/k%d"`, i)
	}
	tests := []struct {
		name    string
		payload string
		want    string // in the error message
	}{
		{name: "empty key list names keys", payload: `{"mode":"incident","keys":[],"reason":"r"}`, want: "keys"},
		{name: "missing incident reason names reason", payload: `{"mode":"incident","keys":["alias/payments"]}`, want: "reason"},
		{name: "unknown mode names mode", payload: `{"mode":"rotate-everything"}`, want: "mode"},
		{name: "force outside an incident names force", payload: `{"mode":"plan","force":true}`, want: "force"},
		{name: "force that is not a bool names force", payload: `{"mode":"incident","keys":["alias/payments"],"reason":"r","force":"yes"}`, want: "force"},
		{name: "unknown field names it", payload: `{"mode":"plan","rotateAll":true}`, want: "rotateAll"},
		{name: "wrong type names the field", payload: `{"mode":"incident","keys":"alias/payments","reason":"r"}`, want: "keys"},
		{name: "another account's ARN names the account", payload: `{"mode":"incident","keys":["arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"],"reason":"r"}`, want: "111122223333"},
		{name: "1001 keys names keys", payload: `{"mode":"incident","reason":"r","keys":[` + strings.Join(thousandAndOne, ",") + `]}`, want: "keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := env.Function.Invoke(t.Context(), []byte(tt.payload))
			var he *harness.HandlerError
			if !errors.As(err, &he) {
				t.Fatalf("invoke: %v, want a handler error", err)
			}
			if !strings.Contains(he.Message, tt.want) {
				t.Errorf("error %q does not name %q", he.Message, tt.want)
			}
		})
	}
	st, err := env.KMS.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Total.Calls != 0 {
		t.Errorf("bad payloads reached the emulator: %+v", st.Operations)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
