package e2e

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kms-rotator/kms-rotator/lambda/harness"
)

// notProducedHere are the reasons this test cannot provoke through the
// built binary without faults the emulator applies to every call alike:
// throttling that outlasts the SDK's retries. The engine's fault tests
// (lambda/rotator, lambda/faults) cover it against the emulator.
var notProducedHere = []string{"throttled"}

// deniedFleet holds a due key whose key policy does not let the function
// rotate it (the emulator's fleet extension "deny") and a due key with a
// malformed interval tag.
const deniedFleet = `[
 {"keyId":"dddddddd-0000-4000-8000-000000000001","alias":"alias/locked-down","createdDaysAgo":200,
  "tags":{"kms-rotator":"enabled"},"deny":["RotateKeyOnDemand"]},
 {"keyId":"dddddddd-0000-4000-8000-000000000002","alias":"alias/typo-interval","createdDaysAgo":200,
  "tags":{"kms-rotator":"enabled","kms-rotator:interval-days":"90d"}},
 {"keyId":"dddddddd-0000-4000-8000-000000000003","alias":"alias/plain-due","createdDaysAgo":200,
  "tags":{"kms-rotator":"enabled"}}]`

// TestEveryReasonFromTheBuiltFunction drives the built bootstrap under the
// RIE into every outcome and reason of DESIGN.md that a healthy emulator
// can produce, and checks each entry named in the table, the report schema
// and the emulator's state after every invocation.
func TestEveryReasonFromTheBuiltFunction(t *testing.T) {
	const incidentMixed = `{"mode":"incident","reason":"e2e reasons","keys":[
		"d3f00000-0000-4000-8000-0000000000f1",
		"1234abcd-0000-4000-8000-00000000dead",
		"alias/global-orders",
		"alias/ml-features"]}`
	tests := []struct {
		name     string
		fleet    string // FleetJSON instead of events/fleet.json
		emuArgs  []string
		fnEnv    map[string]string
		timeout  time.Duration
		payloads []string // invoked in order; the last report is judged
		want     map[string]string
	}{
		{
			name:     "scheduled sweep skips every ineligible key for its reason and rotates the due ones",
			emuArgs:  completeAtOnce,
			payloads: []string{"@events/scheduled.json"},
			want: map[string]string{
				"alias/customer-pii": "rotated", "alias/audit-logs": "rotated", "alias/backups": "rotated",
				"alias/session-tokens": "rotated", "alias/orders-db": "skipped/not-due", "alias/reports": "skipped/not-due",
				"alias/legacy-billing": "skipped/budget-exhausted", "alias/fraud-model": "skipped/budget-reserved",
				"alias/ml-features": "skipped/budget-reserved", "alias/aws/ebs": "skipped/aws-managed",
				"alias/code-signing": "skipped/unsupported-key-spec", "alias/webhook-hmac": "skipped/unsupported-key-spec",
				"alias/partner-byok": "skipped/imported-key-material", "alias/hsm-vault": "skipped/custom-key-store",
				"alias/sovereign-xks": "skipped/custom-key-store", "alias/old-analytics": "skipped/key-not-enabled",
				"alias/retired-vendor": "skipped/key-not-enabled", "alias/global-orders": "skipped/multi-region-replica",
			},
		},
		{
			name:     "sweep reports access-denied for a key its policy keeps from the function, error for a bad interval tag",
			fleet:    deniedFleet,
			emuArgs:  completeAtOnce,
			payloads: []string{"@events/scheduled.json"},
			want: map[string]string{
				"alias/locked-down": "failed/access-denied", "alias/typo-interval": "failed/error",
				"alias/plain-due": "rotated",
			},
		},
		{
			name:     "plan would rotate the due keys and rotates nothing",
			emuArgs:  completeAtOnce,
			payloads: []string{"@events/plan.json"},
			want:     map[string]string{"alias/customer-pii": "would-rotate", "alias/orders-db": "skipped/not-due"},
		},
		{
			name:     "incident reports keys not opted in and missing, rotates a replica's primary and may spend the reserve",
			emuArgs:  completeAtOnce,
			payloads: []string{incidentMixed},
			want: map[string]string{
				"alias/dev-sandbox":                    "skipped/not-opted-in",
				"1234abcd-0000-4000-8000-00000000dead": "failed/not-found",
				"alias/ml-features":                    "rotated",
				// alias/global-orders names the replica here; its primary
				// in eu-west-1 (same key ID and alias) is rotated instead.
				"arn:aws:kms:us-east-1:012345678912:key/mrk-1234abcd12ab34cd56ef1234567890ab": "skipped/multi-region-replica",
				"arn:aws:kms:eu-west-1:012345678912:key/mrk-1234abcd12ab34cd56ef1234567890ab": "rotated",
			},
		},
		{
			name:     "incident repeated while the rotations are in progress starts none",
			emuArgs:  []string{"-rotation-delay=1h", "-quiet"},
			payloads: []string{"@events/incident.json", "@events/incident.json"},
			want: map[string]string{
				"alias/orders-db": "skipped/rotation-in-progress", "alias/ledger": "skipped/rotation-in-progress",
				"alias/payments": "skipped/rotation-in-progress",
			},
		},
		{
			// Every call takes 300 ms and keys go one at a time, so a
			// 5-second function cannot reach them all; the rest must be
			// deferred and the report still returned.
			name:     "a sweep that meets the deadline defers the rest and still reports",
			emuArgs:  []string{"-rotation-delay=0", "-latency=300ms", "-quiet"},
			fnEnv:    map[string]string{"ROTATOR_CONCURRENCY": "1", "ROTATOR_CONTINUATION_MAX": "0"},
			timeout:  5 * time.Second,
			payloads: []string{"@events/scheduled.json"},
			want:     map[string]string{"alias/scratch-never-listed": "absent"},
		},
	}
	seen := map[string]bool{}
	ran := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ran++
			kl := harness.KMSLocalOptions{Fleet: "events/fleet.json", Args: tt.emuArgs}
			if tt.fleet != "" {
				kl = harness.KMSLocalOptions{FleetJSON: tt.fleet, Args: tt.emuArgs}
			}
			env := harness.StartTB(t, harness.Options{
				KMSLocal: kl,
				Function: harness.FunctionOptions{Env: tt.fnEnv, Timeout: tt.timeout},
			})
			var r *harness.Report
			for _, p := range tt.payloads {
				payload := []byte(p)
				if file, ok := strings.CutPrefix(p, "@"); ok {
					var err error
					if payload, err = env.ReadFile(file); err != nil {
						t.Fatal(err)
					}
				}
				before := snapshot(t, env.KMS)
				rep, inv, err := env.Function.InvokeReport(t.Context(), payload)
				if err != nil {
					t.Fatalf("invoke %.60s: %v", p, err)
				}
				report(t, "report schema", harness.CheckReportJSON(inv.Raw))
				report(t, "emulator state", harness.CheckRotations(before, snapshot(t, env.KMS), rep))
				r = rep
			}
			got := map[string]string{}
			for _, k := range r.Keys {
				v := string(k.Outcome)
				if k.Reason != "" {
					v += "/" + string(k.Reason)
					seen[string(k.Reason)] = true
				}
				seen[string(k.Outcome)] = true
				for _, name := range []string{k.Alias, k.KeyID, k.KeyARN} {
					if name != "" && got[name] == "" {
						got[name] = v
					}
				}
			}
			for name, want := range tt.want {
				if want == "absent" {
					want = ""
				}
				if got[name] != want {
					t.Errorf("%s: %q, want %q", name, got[name], want)
				}
			}
			for _, k := range r.Keys {
				if k.Reason == "access-denied" && (!strings.Contains(k.Error, "AccessDeniedException") || !strings.Contains(k.Error, "opt-in tag") || !strings.Contains(k.Error, "key policy")) {
					t.Errorf("%s: access-denied error %q lacks the AWS code or the hint (opt-in tag, key policy)", k.Alias, k.Error)
				}
			}
			if tt.timeout > 0 && (r.Summary.Deferred == 0 || r.Summary.Reasons["deadline"] != r.Summary.Deferred) {
				t.Errorf("deadline run: %s; want keys deferred for deadline", harness.SummaryLine(r))
			}
			if t.Failed() {
				var b strings.Builder
				_ = harness.WriteTable(&b, r)
				t.Logf("last report:\n%s", b.String())
			}
		})
	}
	// The coverage claim holds only for the whole table (-run may select
	// a part of it).
	if ran < len(tests) {
		return
	}
	for _, name := range append(slices.Clone(harness.Outcomes), slices.Sorted(maps.Keys(harness.OutcomeOfReason))...) {
		if !seen[name] && !slices.Contains(notProducedHere, name) {
			t.Errorf("outcome or reason %s never produced by the built function", name)
		}
	}
}
