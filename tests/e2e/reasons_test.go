package e2e

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kms-rotator/kms-rotator/tools/harness"
	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

// notProducedHere are the reasons this test cannot provoke through the
// built binary without faults the emulator applies to every call alike:
// throttling that outlasts the SDK's retries. The engine's fault tests
// (lambda/rotator, tests/faults) cover it against the emulator.
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

// imminentFleet holds an opted-in key whose automatic rotation (every 90
// days, since its creation) begins about 7 minutes after the emulator
// starts: KMS refuses an on-demand rotation then with ConflictException
// (https://docs.aws.amazon.com/kms/latest/APIReference/API_RotateKeyOnDemand.html).
const imminentFleet = `[
 {"keyId":"aaaaaaaa-0000-4000-8000-000000000001","alias":"alias/auto-imminent","createdDaysAgo":89.995,
  "rotationPeriodInDays":90,"tags":{"kms-rotator":"enabled"}}]`

// incidentNoWait is events/incident.json with "wait": false.
const incidentNoWait = `{"mode":"incident","keys":["1234abcd-12ab-34cd-56ef-1234567890ab",
 "arn:aws:kms:us-east-1:012345678912:key/0987dcba-09fe-87dc-65ba-ab0987654321","alias/payments"],
 "reason":"INC-4711 suspected exposure","dryRun":false,"wait":false}`

// incidentAgain is events/incident.json sent by another responder (a new
// reason): a new request, not a repeat of the first (a repeat answers the
// first run's report), so the keys' cooldown and claims decide.
const incidentAgain = `{"mode":"incident","keys":["1234abcd-12ab-34cd-56ef-1234567890ab",
 "arn:aws:kms:us-east-1:012345678912:key/0987dcba-09fe-87dc-65ba-ab0987654321","alias/payments"],
 "reason":"INC-4712 the same keys, another responder","dryRun":false}`

// incidentNoWaitAgain is incidentAgain with "wait": false.
const incidentNoWaitAgain = `{"mode":"incident","keys":["1234abcd-12ab-34cd-56ef-1234567890ab",
 "arn:aws:kms:us-east-1:012345678912:key/0987dcba-09fe-87dc-65ba-ab0987654321","alias/payments"],
 "reason":"INC-4712 the same keys, another responder","dryRun":false,"wait":false}`

// plainFleet holds one opted-in key, due for the 90-day sweep.
const plainFleet = `[
 {"keyId":"bbbbbbbb-0000-4000-8000-000000000001","alias":"alias/exposed","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}}]`

// rotateAnswers500 is a proxy rule: every RotateKeyOnDemand is answered
// KMSInternalException (HTTP 500) without reaching KMS, so the rotation
// never happens and the function cannot tell.
func rotateAnswers500(op string, _ int, _ []byte) step {
	if op == "RotateKeyOnDemand" {
		return step{answer: internalError}
	}
	return step{forward: true}
}

// TestEveryReasonFromTheBuiltFunction drives the built bootstrap under the
// RIE into every outcome and reason of docs/design.md that a healthy emulator
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
		// proxy, when set, puts a proxy with this rule between the
		// function and kmslocal.
		proxy func(op string, n int, body []byte) step
		// want maps a key name to "outcome/reason"; alternatives are
		// separated by "|".
		want map[string]string
		// check looks at the last report's raw entries, by key name.
		check func(t *testing.T, entries map[string]map[string]any)
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
				"alias/partner-byok": "skipped/material-not-staged", "alias/partner-byok-staged": "rotated",
				"alias/partner-global": "skipped/material-pending-replica-import", "alias/hsm-vault": "skipped/custom-key-store",
				"alias/sovereign-xks": "skipped/custom-key-store", "alias/old-analytics": "skipped/key-not-enabled",
				"alias/retired-vendor": "skipped/key-not-enabled", "alias/global-orders": "skipped/multi-region-replica",
				"alias/invoices": "skipped/automatic-rotation-soon", "alias/tmp-uploads": "failed/error",
				"alias/card-vault": "skipped/not-due",
			},
			check: func(t *testing.T, entries map[string]map[string]any) {
				// Its automatic rotation (90 days) was 87 days ago.
				checkNextRotationWithin(t, "alias/invoices", entries["alias/invoices"], 3*24*time.Hour-time.Hour, 3*24*time.Hour)
				// The 1-day tag is refused naming the tag and the floor.
				if e, _ := entries["alias/tmp-uploads"]["error"].(string); !strings.Contains(e, "kms-rotator:interval-days") || !strings.Contains(e, "30") {
					t.Errorf("alias/tmp-uploads: error %q does not name the tag kms-rotator:interval-days and the floor 30", e)
				}
				// Imported keys: the partner's current material
				// expires in 180 days; the multi-Region key names the
				// material its replica still has to import.
				if exp, ok := entryTime(entries["alias/partner-byok"], "materialExpiresAt"); !ok || time.Until(exp) < 179*24*time.Hour || time.Until(exp) > 180*24*time.Hour {
					t.Errorf("alias/partner-byok: materialExpiresAt %#v, want 180 days from now", entries["alias/partner-byok"]["materialExpiresAt"])
				}
				for _, name := range []string{"alias/partner-byok", "alias/partner-global"} {
					if str(entries[name], "keyMaterialId") == "" {
						t.Errorf("%s: no keyMaterialId (the imported key's current material)", name)
					}
				}
				if str(entries["alias/partner-global"], "stagedKeyMaterialId") == "" {
					t.Error("alias/partner-global: no stagedKeyMaterialId (the material waiting for the replica)")
				}
			},
		},
		{
			// alias/backups was last used (Decrypt) 130 days ago, before
			// its rotation 120 days ago; the other due keys were used since,
			// or their usage tracking began after their last rotation.
			name:     "scheduled sweep with ROTATOR_SKIP_IDLE skips a due key unused since its rotation (idle)",
			emuArgs:  completeAtOnce,
			fnEnv:    map[string]string{"ROTATOR_SKIP_IDLE": "true"},
			payloads: []string{"@events/scheduled.json"},
			want: map[string]string{
				"alias/backups": "skipped/idle", "alias/customer-pii": "rotated", "alias/session-tokens": "rotated",
				"alias/audit-logs": "rotated", "alias/partner-byok-staged": "rotated", "alias/orders-db": "skipped/not-due",
			},
			check: func(t *testing.T, entries map[string]map[string]any) {
				if at, ok := entryTime(entries["alias/backups"], "lastUsedAt"); !ok || time.Since(at) < 130*24*time.Hour-time.Hour || time.Since(at) > 130*24*time.Hour+time.Hour {
					t.Errorf("alias/backups: lastUsedAt %#v, want 130 days ago", entries["alias/backups"]["lastUsedAt"])
				}
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
			// The cooldown counts a rotation in progress too;
			// either reason keeps the second rotation from starting.
			name:    "incident repeated while the rotations are in progress starts none",
			emuArgs: []string{"-rotation-delay=1h", "-quiet"},
			// events/incident.json without the wait for completion, which
			// would last until the deadline with rotations taking an hour.
			payloads: []string{incidentNoWait, incidentNoWaitAgain},
			want: map[string]string{
				"alias/orders-db": "skipped/rotation-in-progress|skipped/recently-rotated",
				"alias/ledger":    "skipped/rotation-in-progress|skipped/recently-rotated",
				"alias/payments":  "skipped/rotation-in-progress|skipped/recently-rotated",
			},
		},
		{
			name:     "incident repeated after the rotations completed is inside the cooldown: recently-rotated",
			emuArgs:  completeAtOnce,
			payloads: []string{"@events/incident.json", incidentAgain},
			want: map[string]string{
				"alias/orders-db": "skipped/recently-rotated", "alias/ledger": "skipped/recently-rotated",
				"alias/payments": "skipped/recently-rotated",
			},
		},
		{
			name:     "incident refused by KMS for an automatic rotation within 20 minutes says so and when",
			fleet:    imminentFleet,
			emuArgs:  completeAtOnce,
			payloads: []string{`{"mode":"incident","reason":"e2e conflict","keys":["alias/auto-imminent"]}`},
			want:     map[string]string{"alias/auto-imminent": "skipped/rotation-in-progress"},
			check: func(t *testing.T, entries map[string]map[string]any) {
				e := entries["alias/auto-imminent"]
				checkNextRotationWithin(t, "alias/auto-imminent", e, 0, 20*time.Minute)
				// KMS's message, as the emulator words it (tools/kmsemu).
				if msg, _ := e["error"].(string); !strings.Contains(msg, "within the next 20 minutes") {
					t.Errorf("alias/auto-imminent: error %q does not carry KMS's message", msg)
				}
			},
		},
		{
			name:     "incident whose RotateKeyOnDemand gets a 500 and no rotation shows is unconfirmed, never retried",
			fleet:    plainFleet,
			emuArgs:  completeAtOnce,
			fnEnv:    map[string]string{"ROTATOR_CONFIRM_WAIT": "1s"},
			proxy:    rotateAnswers500,
			payloads: []string{`{"mode":"incident","reason":"e2e unconfirmed","keys":["alias/exposed"]}`},
			want:     map[string]string{"alias/exposed": "failed/unconfirmed"},
			check: func(t *testing.T, entries map[string]map[string]any) {
				checkUnconfirmedError(t, "alias/exposed", entries["alias/exposed"])
			},
		},
		{
			// The ledger's table does not exist: no claim can be written,
			// so no due key is rotated, and each says why.
			name:     "a sweep whose ledger cannot be written rotates nothing: ledger-unavailable",
			emuArgs:  completeAtOnce,
			fnEnv:    map[string]string{"ROTATOR_LEDGER_TABLE": "missing-table"},
			payloads: []string{"@events/scheduled.json"},
			want: map[string]string{
				"alias/customer-pii": "failed/ledger-unavailable", "alias/audit-logs": "failed/ledger-unavailable",
				"alias/orders-db": "skipped/not-due",
			},
			check: func(t *testing.T, entries map[string]map[string]any) {
				for _, alias := range []string{"alias/customer-pii", "alias/audit-logs"} {
					if msg, _ := entries[alias]["error"].(string); !strings.Contains(msg, "missing-table") || !strings.Contains(msg, "no RotateKeyOnDemand was sent") {
						t.Errorf("%s: error %q, want it to name the table and say nothing was sent", alias, msg)
					}
				}
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
			fn := env.Function
			var px *proxy
			if tt.proxy != nil {
				var url string
				px, url = newProxy(t, env.KMS.URL, tt.proxy)
				var err error
				if fn, err = env.AddFunction(t.Context(), harness.FunctionOptions{Name: "behind-proxy", Endpoint: url}); err != nil {
					t.Fatal(err)
				}
			}
			var r *oracle.Report
			var raw []byte
			for _, p := range tt.payloads {
				payload := []byte(p)
				if file, ok := strings.CutPrefix(p, "@"); ok {
					var err error
					if payload, err = env.ReadFile(file); err != nil {
						t.Fatal(err)
					}
				}
				before := snapshot(t, env.KMS)
				rep, inv, err := fn.InvokeReport(t.Context(), payload)
				if err != nil {
					t.Fatalf("invoke %.60s: %v", p, err)
				}
				after := snapshot(t, env.KMS)
				report(t, "report schema", oracle.CheckReport(inv.Raw))
				report(t, "emulator state", oracle.CheckRotations(before, after, rep))
				report(t, "key material", oracle.CheckMaterial(before, after, rep))
				r, raw = rep, inv.Raw
			}
			if px != nil {
				if n := px.count("RotateKeyOnDemand"); n != 1 {
					t.Errorf("%d RotateKeyOnDemand requests through the proxy, want exactly 1 (never a second after an ambiguous failure)", n)
				}
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
				if !slices.Contains(strings.Split(want, "|"), got[name]) {
					t.Errorf("%s: %q, want %q", name, got[name], want)
				}
			}
			if tt.check != nil {
				tt.check(t, rawEntries(t, raw))
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
	for _, name := range append(slices.Clone(oracle.Outcomes), slices.Sorted(maps.Keys(oracle.OutcomeOfReason))...) {
		if !seen[name] && !slices.Contains(notProducedHere, name) {
			t.Errorf("outcome or reason %s never produced by the built function", name)
		}
	}
}
