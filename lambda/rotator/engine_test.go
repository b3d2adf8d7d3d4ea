package rotator

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

// want is an expected entry: outcome and reason.
type want struct {
	outcome Outcome
	reason  Reason
}

func checkEntries(t *testing.T, rep *Report, wants map[string]want) {
	t.Helper()
	got := byAlias(rep)
	for name, w := range wants {
		k, ok := got[name]
		if !ok {
			t.Errorf("%s: no entry", name)
			continue
		}
		if k.Outcome != w.outcome || k.Reason != w.reason {
			t.Errorf("%s: %s/%s (error %q), want %s/%s", name, k.Outcome, k.Reason, k.Error, w.outcome, w.reason)
		}
	}
	if len(rep.Keys) != len(wants) {
		names := []string{}
		for _, k := range rep.Keys {
			names = append(names, k.Alias+"="+string(k.Outcome)+"/"+string(k.Reason))
		}
		t.Errorf("%d entries, want %d: %s", len(rep.Keys), len(wants), strings.Join(names, ", "))
	}
}

// scheduledDemo is what a scheduled sweep of events/fleet.json decides with
// the default configuration (interval 90, limit 25, reserve 2, grace 7 days,
// interval floor 30).
func scheduledDemo(due want) map[string]want {
	return map[string]want{
		"alias/orders-db":           {Skipped, ReasonNotDue},
		"alias/ledger":              {Skipped, ReasonNotDue},
		"alias/payments":            {Skipped, ReasonNotDue},
		"alias/checkout-sessions":   {Skipped, ReasonNotDue},
		"alias/search-index":        {Skipped, ReasonNotDue},
		"alias/reports":             {Skipped, ReasonNotDue},
		"alias/card-vault":          {Skipped, ReasonNotDue},
		"alias/invoices":            {Skipped, ReasonAutomaticRotationSoon},
		"alias/tmp-uploads":         {Failed, ReasonError},
		"alias/customer-pii":        due,
		"alias/audit-logs":          due,
		"alias/backups":             due,
		"alias/session-tokens":      due,
		"alias/partner-byok-staged": due,
		"alias/legacy-billing":      {Skipped, ReasonBudgetExhausted},
		"alias/fraud-model":         {Skipped, ReasonBudgetReserved},
		"alias/ml-features":         {Skipped, ReasonBudgetReserved},
		"alias/aws/ebs":             {Skipped, ReasonAWSManaged},
		"alias/code-signing":        {Skipped, ReasonUnsupportedKeySpec},
		"alias/webhook-hmac":        {Skipped, ReasonUnsupportedKeySpec},
		"alias/partner-byok":        {Skipped, ReasonMaterialNotStaged},
		"alias/partner-global":      {Skipped, ReasonMaterialPendingReplicaImport},
		"alias/hsm-vault":           {Skipped, ReasonCustomKeyStore},
		"alias/sovereign-xks":       {Skipped, ReasonCustomKeyStore},
		"alias/global-orders":       {Skipped, ReasonMultiRegionReplica},
		"alias/old-analytics":       {Skipped, ReasonKeyNotEnabled},
		"alias/retired-vendor":      {Skipped, ReasonKeyNotEnabled},
	}
}

func TestScheduledSweepRotatesDueKeysOnceAndNothingTheSecondTime(t *testing.T) {
	for _, delay := range []time.Duration{0, time.Hour} {
		t.Run(fmt.Sprintf("rotation delay %v", delay), func(t *testing.T) {
			h := newHarness(t, kmsemu.Options{RotationDelay: delay}, demoFleet(t), fastConfig())
			before := h.snapshot(t, "us-east-1", "eu-west-1")
			rep := h.run(t, payload(t, "scheduled.json"))
			checkEntries(t, rep, scheduledDemo(want{Rotated, ReasonNone}))
			after := h.snapshot(t, "us-east-1", "eu-west-1")
			checkAgainstEmulator(t, rep, before, after)
			if rep.DryRun || rep.Mode != request.ModeScheduled {
				t.Errorf("mode %s dryRun %v, want scheduled, false", rep.Mode, rep.DryRun)
			}
			pii := byAlias(rep)["alias/customer-pii"]
			if pii.OnDemandUsed == nil || *pii.OnDemandUsed != 2 || *pii.OnDemandRemaining != 23 {
				t.Errorf("customer-pii budget after rotation = %v/%v, want 2 used, 23 remaining", pii.OnDemandUsed, pii.OnDemandRemaining)
			}
			replica := byAlias(rep)["alias/global-orders"]
			if !strings.HasPrefix(replica.PrimaryKeyARN, "arn:aws:kms:eu-west-1:") {
				t.Errorf("replica entry names primary %q, want the eu-west-1 key", replica.PrimaryKeyARN)
			}

			second := h.run(t, payload(t, "scheduled.json"))
			if second.Summary.Rotated != 0 {
				t.Fatalf("second sweep rotated %d keys, want 0", second.Summary.Rotated)
			}
			again := scheduledDemo(want{Skipped, ReasonNotDue})
			if delay > 0 { // still rotating: the status check catches it
				again = scheduledDemo(want{Skipped, ReasonRotationInProgress})
			} else { // the staged material is current now: nothing left to rotate to
				again["alias/partner-byok-staged"] = want{Skipped, ReasonMaterialNotStaged}
			}
			checkEntries(t, second, again)
			checkAgainstEmulator(t, second, after, h.snapshot(t, "us-east-1", "eu-west-1"))
		})
	}
}

func TestPlanDecidesLikeScheduledAndChangesNothing(t *testing.T) {
	h := newHarness(t, kmsemu.Options{}, demoFleet(t), fastConfig())
	before := h.snapshot(t, "us-east-1", "eu-west-1")
	rep := h.run(t, payload(t, "plan.json"))
	if !rep.DryRun || rep.Mode != request.ModePlan {
		t.Errorf("mode %s dryRun %v, want plan, true", rep.Mode, rep.DryRun)
	}
	checkEntries(t, rep, scheduledDemo(want{WouldRotate, ReasonNone}))
	checkAgainstEmulator(t, rep, before, h.snapshot(t, "us-east-1", "eu-west-1"))
}

func TestDryRunConfigTurnsScheduledIntoPlan(t *testing.T) {
	cfg := fastConfig()
	cfg.DryRun = true
	h := newHarness(t, kmsemu.Options{}, demoFleet(t), cfg)
	before := h.snapshot(t, "us-east-1")
	rep := h.run(t, payload(t, "scheduled.json"))
	if !rep.DryRun || rep.Summary.WouldRotate != 5 || rep.Summary.Rotated != 0 {
		t.Fatalf("dryRun %v, %d would-rotate, %d rotated; want true, 5, 0", rep.DryRun, rep.Summary.WouldRotate, rep.Summary.Rotated)
	}
	checkAgainstEmulator(t, rep, before, h.snapshot(t, "us-east-1"))
}

func TestReportModeInventory(t *testing.T) {
	h := newHarness(t, kmsemu.Options{}, demoFleet(t), fastConfig())
	before := h.snapshot(t, "us-east-1")
	rep := h.run(t, payload(t, "report.json"))
	checkEntries(t, rep, scheduledDemo(want{WouldRotate, ReasonNone}))
	checkAgainstEmulator(t, rep, before, h.snapshot(t, "us-east-1"))
	keys := byAlias(rep)
	for _, tc := range []struct {
		alias                      string
		age, interval, left        int
		lastRotationSet, runsOutAt bool
	}{
		// 1 used, 24 left, reserve 2 → 22 scheduled rotations; last 20 days ago.
		{"alias/orders-db", 20, 90, 22, true, true},
		// never rotated, created 500 days ago.
		{"alias/audit-logs", 500, 90, 23, false, true},
		// 23 used: the scheduled budget is spent.
		{"alias/fraud-model", 100, 90, 0, true, false},
		{"alias/session-tokens", 45, 30, 21, true, true},
	} {
		t.Run(tc.alias+" inventory fields", func(t *testing.T) {
			k := keys[tc.alias]
			if k.MaterialAgeDays == nil || *k.MaterialAgeDays != tc.age {
				t.Errorf("materialAgeDays = %v, want %d", k.MaterialAgeDays, tc.age)
			}
			if k.IntervalDays == nil || *k.IntervalDays != tc.interval {
				t.Errorf("intervalDays = %v, want %d", k.IntervalDays, tc.interval)
			}
			if k.ScheduledRotationsLeft == nil || *k.ScheduledRotationsLeft != tc.left {
				t.Errorf("scheduledRotationsLeft = %v, want %d", k.ScheduledRotationsLeft, tc.left)
			}
			if (k.LastRotation != nil) != tc.lastRotationSet {
				t.Errorf("lastRotation = %v, want set=%v", k.LastRotation, tc.lastRotationSet)
			}
			if (k.BudgetRunsOutAt != nil) != tc.runsOutAt {
				t.Errorf("budgetRunsOutAt = %v, want set=%v", k.BudgetRunsOutAt, tc.runsOutAt)
			}
			if k.NextDue == nil {
				t.Errorf("nextDue is null")
			}
		})
	}
	// orders-db: next due in 70 days, then 21 more at 90-day steps.
	k := keys["alias/orders-db"]
	runsOut, _ := time.Parse(time.RFC3339, *k.BudgetRunsOutAt)
	if d := time.Until(runsOut) - days(70+21*90); d < -time.Hour || d > time.Hour {
		t.Errorf("orders-db budgetRunsOutAt %s is %v off 1,960 days from now", *k.BudgetRunsOutAt, d)
	}
}

func TestReportJSONShape(t *testing.T) {
	h := newHarness(t, kmsemu.Options{}, demoFleet(t), fastConfig())
	rep := h.run(t, payload(t, "scheduled.json"))
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"runId", "mode", "dryRun", "startedAt", "finishedAt", "summary", "keys"} {
		if _, ok := m[f]; !ok {
			t.Errorf("report lacks %q", f)
		}
	}
	sum := m["summary"].(map[string]any)
	for _, f := range []string{"candidates", "rotated", "wouldRotate", "skipped", "failed", "deferred", "overdue", "reasons"} {
		if _, ok := sum[f]; !ok {
			t.Errorf("summary lacks %q", f)
		}
	}
	for _, e := range m["keys"].([]any) {
		k := e.(map[string]any)
		for _, f := range []string{"keyId", "keyArn", "alias", "outcome", "reason", "onDemandUsed", "onDemandRemaining", "lastRotation", "nextDue"} {
			if _, ok := k[f]; !ok {
				t.Errorf("entry %v lacks %q", k["alias"], f)
			}
		}
		if k["reason"] == string(ReasonAWSManaged) && (k["onDemandUsed"] != nil || k["lastRotation"] != nil || k["nextDue"] != nil) {
			t.Errorf("aws-managed entry has budget or dates: %v", k)
		}
		if k["reason"] == string(ReasonKeyNotEnabled) && k["keyState"] == nil {
			t.Errorf("key-not-enabled entry lacks keyState: %v", k)
		}
		if _, ok := k["intervalDays"]; ok {
			t.Errorf("scheduled entry carries report-mode field intervalDays")
		}
		// The cryptoperiod signals are on every entry whose history was
		// read, in every mode.
		_, hasAge := k["materialAgeDays"]
		_, hasOverdue := k["overdue"]
		if (k["onDemandUsed"] != nil) != hasAge || hasAge != hasOverdue {
			t.Errorf("entry %v: materialAgeDays/overdue present %v/%v, want both exactly when the history was read", k["alias"], hasAge, hasOverdue)
		}
	}
	// The last log line is the report.
	lines := h.logs.lines(t)
	last := lines[len(lines)-1]
	if last["msg"] != "report" || last["requestId"] != "req-1" {
		t.Fatalf("last log line = %v, want the report with the request ID", last)
	}
	logged, _ := json.Marshal(last["report"])
	var lr Report
	if err := json.Unmarshal(logged, &lr); err != nil || lr.RunID != rep.RunID || len(lr.Keys) != len(rep.Keys) {
		t.Fatalf("logged report differs: %v %+v", err, lr.Summary)
	}
}

func TestIncidentSamplePayloadsRotateTheNamedKeys(t *testing.T) {
	for _, file := range []string{"incident.json", "incident-eventbridge.json"} {
		t.Run(file+" rotates the three sample keys", func(t *testing.T) {
			h := newHarness(t, kmsemu.Options{}, demoFleet(t), fastConfig())
			before := h.snapshot(t, "us-east-1", "eu-west-1")
			rep := h.run(t, payload(t, file))
			checkEntries(t, rep, map[string]want{
				"alias/orders-db": {Rotated, ReasonNone},
				"alias/ledger":    {Rotated, ReasonNone},
				"alias/payments":  {Rotated, ReasonNone},
			})
			checkAgainstEmulator(t, rep, before, h.snapshot(t, "us-east-1", "eu-west-1"))
			for _, l := range h.logs.lines(t) {
				if l["msg"] == "key decision" && l["incidentReason"] == nil {
					t.Errorf("key line without the incident reason: %v", l)
				}
			}
		})
	}
}

func TestIncidentByTagAddsReplicaPrimaryInItsRegion(t *testing.T) {
	h := newHarness(t, kmsemu.Options{}, demoFleet(t), fastConfig())
	before := h.snapshot(t, "us-east-1", "eu-west-1")
	rep := h.run(t, request.Request{Mode: request.ModeIncident, Tag: &request.Tag{Key: "team", Value: "payments"}, Reason: "INC-1"})
	after := h.snapshot(t, "us-east-1", "eu-west-1")
	checkAgainstEmulator(t, rep, before, after)
	var primary, replica *KeyReport
	for i, k := range rep.Keys {
		if k.Alias == "alias/global-orders" {
			if strings.Contains(k.KeyARN, ":eu-west-1:") {
				primary = &rep.Keys[i]
			} else {
				replica = &rep.Keys[i]
			}
		}
	}
	if replica == nil || replica.Reason != ReasonMultiRegionReplica || replica.PrimaryKeyARN == "" {
		t.Fatalf("replica entry = %+v, want skipped multi-region-replica naming its primary", replica)
	}
	if primary == nil || primary.Outcome != Rotated || primary.KeyARN != replica.PrimaryKeyARN {
		t.Fatalf("primary entry = %+v, want rotated in eu-west-1", primary)
	}
	got := byAlias(rep)
	for alias, w := range map[string]want{
		"alias/orders-db":         {Rotated, ReasonNone},
		"alias/payments":          {Rotated, ReasonNone},
		"alias/checkout-sessions": {Rotated, ReasonNone},
		"alias/customer-pii":      {Rotated, ReasonNone},
		"alias/fraud-model":       {Rotated, ReasonNone}, // incidents may use the reserve
		"alias/card-vault":        {Skipped, ReasonRecentlyRotated},
		"alias/webhook-hmac":      {Skipped, ReasonUnsupportedKeySpec},
	} {
		if k := got[alias]; k.Outcome != w.outcome || k.Reason != w.reason {
			t.Errorf("%s: %s/%s, want %s/%s", alias, k.Outcome, k.Reason, w.outcome, w.reason)
		}
	}
	if rep.Summary.Candidates != 9 {
		t.Errorf("%d candidates, want 9 (8 tagged + the added primary)", rep.Summary.Candidates)
	}
}

func TestIncidentExplicitKeysEveryForm(t *testing.T) {
	ref := func(s string) request.KeyRef {
		r, err := request.ParseKeyRef(s)
		if err != nil {
			t.Fatalf("ParseKeyRef(%q): %v", s, err)
		}
		return r
	}
	arnPrefix := "arn:aws:kms:us-east-1:" + testAccount + ":"
	h := newHarness(t, kmsemu.Options{}, demoFleet(t), fastConfig())
	before := h.snapshot(t, "us-east-1", "eu-west-1")
	req := request.Request{Mode: request.ModeIncident, Reason: "INC-2", Keys: []request.KeyRef{
		ref("1234abcd-12ab-34cd-56ef-1234567890ab"),                 // key ID
		ref(arnPrefix + "key/1234abcd-12ab-34cd-56ef-1234567890ab"), // same key by ARN: deduplicated
		ref("alias/orders-db"),                                      // same key by alias: deduplicated
		ref(arnPrefix + "alias/ledger"),                             // alias ARN
		ref("alias/global-orders"),                                  // the replica: primary added
		ref("mrk-1234abcd12ab34cd56ef1234567890ab"),                 // the replica by mrk- ID: deduplicated
		ref("alias/dev-sandbox"),                                    // not opted in
		ref("alias/legacy-billing"),                                 // budget exhausted
		ref("alias/ml-features"),                                    // inside the reserve: incidents may use it
		ref("alias/old-analytics"),                                  // disabled
		ref("alias/does-not-exist"),                                 // unknown alias
		ref("00000000-0000-4000-8000-000000000000"),                 // unknown key ID
	}}
	rep := h.run(t, req)
	checkAgainstEmulator(t, rep, before, h.snapshot(t, "us-east-1", "eu-west-1"))
	type entry struct {
		outcome Outcome
		reason  Reason
	}
	got := map[string]entry{}
	for _, k := range rep.Keys {
		name := k.Alias
		if strings.Contains(k.KeyARN, ":eu-west-1:") {
			name += "@eu-west-1"
		}
		if name == "" {
			name = k.KeyID
		}
		got[name] = entry{k.Outcome, k.Reason}
	}
	wants := map[string]entry{
		"alias/orders-db":                      {Rotated, ""},
		"alias/ledger":                         {Rotated, ""},
		"alias/global-orders":                  {Skipped, ReasonMultiRegionReplica},
		"alias/global-orders@eu-west-1":        {Rotated, ""},
		"alias/dev-sandbox":                    {Skipped, ReasonNotOptedIn},
		"alias/legacy-billing":                 {Skipped, ReasonBudgetExhausted},
		"alias/ml-features":                    {Rotated, ""},
		"alias/old-analytics":                  {Skipped, ReasonKeyNotEnabled},
		"alias/does-not-exist":                 {Failed, ReasonNotFound},
		"00000000-0000-4000-8000-000000000000": {Failed, ReasonNotFound},
	}
	for name, w := range wants {
		if got[name] != w {
			t.Errorf("%s: %v, want %v", name, got[name], w)
		}
	}
	if len(rep.Keys) != len(wants) {
		t.Errorf("%d entries, want %d: %v", len(rep.Keys), len(wants), got)
	}
}

func TestIncidentDryRunRotatesNothing(t *testing.T) {
	h := newHarness(t, kmsemu.Options{}, demoFleet(t), fastConfig())
	req := payload(t, "incident.json")
	req.DryRun = true
	before := h.snapshot(t, "us-east-1")
	rep := h.run(t, req)
	if rep.Summary.WouldRotate != 3 || rep.Summary.Rotated != 0 || !rep.DryRun {
		t.Fatalf("summary %+v dryRun %v, want 3 would-rotate", rep.Summary, rep.DryRun)
	}
	checkAgainstEmulator(t, rep, before, h.snapshot(t, "us-east-1"))
}

func TestPaginationPastOneHundredKeys(t *testing.T) {
	fleet := `[
	 {"alias":"alias/due","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"},"count":10},
	 {"alias":"alias/fresh","createdDaysAgo":10,"tags":{"kms-rotator":"enabled"},"count":195},
	 {"alias":"alias/other","createdDaysAgo":200,"tags":{"team":"x"},"count":20}]`
	h := newHarness(t, kmsemu.Options{}, fleet, fastConfig())
	before := h.snapshot(t, "us-east-1")
	rep := h.run(t, request.Request{Mode: request.ModeScheduled})
	stats := h.emu.Server.Stats()
	if rep.Summary.Candidates != 205 || rep.Summary.Rotated != 10 || rep.Summary.Reasons[ReasonNotDue] != 195 {
		t.Fatalf("summary %+v, want 205 candidates, 10 rotated, 195 not-due", rep.Summary)
	}
	checkAgainstEmulator(t, rep, before, h.snapshot(t, "us-east-1"))
	for i := 1; i < len(rep.Keys); i++ {
		if rep.Keys[i-1].KeyARN >= rep.Keys[i].KeyARN {
			t.Fatalf("entries not sorted by key ARN at %d", i)
		}
	}
	for _, k := range rep.Keys {
		if !strings.HasPrefix(k.Alias, "alias/due-") && !strings.HasPrefix(k.Alias, "alias/fresh-") {
			t.Fatalf("entry %s has alias %q, want its own", k.KeyARN, k.Alias)
		}
	}
	if n := stats.Op("GetResources").Calls; n != 3 {
		t.Errorf("%d GetResources calls for 205 keys, want 3", n)
	}
	if n := stats.Op("ListAliases").Calls; n != 3 {
		t.Errorf("%d ListAliases calls for 225 aliases, want 3 (one paginated listing)", n)
	}
	// Calls per key: 2 for a not-due key; 5 for a due one (its status and
	// history are read again right before rotating).
	if d, l, s, r := stats.Op("DescribeKey").Calls, stats.Op("ListKeyRotations").Calls,
		stats.Op("GetKeyRotationStatus").Calls, stats.Op("RotateKeyOnDemand").Calls; d != 205 || l != 215 || s != 10 || r != 10 {
		t.Errorf("calls DescribeKey %d ListKeyRotations %d GetKeyRotationStatus %d RotateKeyOnDemand %d, want 205 215 10 10", d, l, s, r)
	}
}

func TestLargeRunListsOnlyEntriesThatAreNotNotDue(t *testing.T) {
	fleet := `[
	 {"alias":"alias/due","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"},"count":5},
	 {"alias":"alias/fresh","createdDaysAgo":10,"tags":{"kms-rotator":"enabled"},"count":20}]`
	h := newHarness(t, kmsemu.Options{}, fleet, fastConfig())
	if h.engine.limits.maxListed != 2000 {
		t.Fatalf("the listing threshold is %d, want docs/design.md's 2,000", h.engine.limits.maxListed)
	}
	// 2,000 keys work the same way, only slower (the threshold is all that differs).
	h.engine.limits.maxListed = 20
	rep := h.run(t, request.Request{Mode: request.ModePlan})
	if rep.Summary.Candidates != 25 || len(rep.Keys) != 5 || rep.OmittedNotDue != 20 || rep.Summary.Reasons[ReasonNotDue] != 20 {
		t.Fatalf("candidates %d, %d entries, %d omitted; want 25, 5, 20", rep.Summary.Candidates, len(rep.Keys), rep.OmittedNotDue)
	}
	for _, k := range rep.Keys {
		if k.Outcome != WouldRotate {
			t.Errorf("listed entry %s is %s/%s, want only the due keys", k.Alias, k.Outcome, k.Reason)
		}
	}
}

func TestDeadlineDefersKeysAndStillReports(t *testing.T) {
	h := newHarness(t, kmsemu.Options{}, demoFleet(t), fastConfig())
	before := h.snapshot(t, "us-east-1")
	// Less time left than the margin: no key may start (a margin larger
	// than the time left stands for a deadline already too near, without
	// racing a short timeout on a busy machine).
	h.engine.margin = func(left time.Duration) time.Duration { return left + time.Minute }
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := h.engine.Run(ctx, request.Request{Mode: request.ModeScheduled}, Invocation{RequestID: "r", Scope: testScope})
	// A sweep that defers every key made no progress: it fails the
	// invocation, after writing its report line and metrics.
	if err == nil || !strings.Contains(err.Error(), "no progress: all") {
		t.Fatalf("Run error = %v, want no progress", err)
	}
	var rep *Report
	for _, l := range h.logs.lines(t) {
		if l["msg"] == "report" {
			b, _ := json.Marshal(l["report"])
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Fatal(err)
			}
		}
	}
	if rep == nil {
		t.Fatal("no report line")
	}
	checkReport(t, rep)
	if n := len(byAlias(rep)); rep.Summary.Deferred != n || rep.Summary.Reasons[ReasonDeadline] != n || n < 20 {
		t.Fatalf("summary %+v, want all %d candidates deferred for the deadline", rep.Summary, n)
	}
	if m := h.metrics.String(); !strings.Contains(m, `"RunsFailed":1`) || !strings.Contains(m, `"RunsCompleted":0`) {
		t.Errorf("metrics do not count a failed run: %s", m)
	}
	checkAgainstEmulator(t, rep, before, h.snapshot(t, "us-east-1"))
}

// A KMS that stops answering is not the run's deadline: every key fails,
// naming the call that timed out, and the run is not a quiet success.
func TestHungKMSFailsKeysNamingTheCall(t *testing.T) {
	cfg := fastConfig()
	h := newHarness(t, kmsemu.Options{}, oneDueKey, cfg)
	hk := &hookKMS{KMSAPI: h.kms}
	hk.describe = func(ctx context.Context, in *kms.DescribeKeyInput, _ ...func(*kms.Options)) (*kms.DescribeKeyOutput, error) {
		// What Go's HTTP client timeout returns on the last attempt.
		return nil, &retry.MaxAttemptsError{Attempt: 3, Err: fmt.Errorf("http: %w", context.DeadlineExceeded)}
	}
	h.engine.kms = hk
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := h.engine.Run(ctx, request.Request{Mode: request.ModeScheduled}, Invocation{RequestID: "r", Scope: testScope})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range rep.Keys {
		if k.Outcome != Failed || k.Reason != ReasonError || !strings.Contains(k.Error, "DescribeKey: timed out after 3 attempts") {
			t.Errorf("%s: %s/%s %q, want failed naming the call that timed out", k.Alias, k.Outcome, k.Reason, k.Error)
		}
	}
}

func TestDeadlineMargin(t *testing.T) {
	for _, tc := range []struct{ remaining, want time.Duration }{
		{time.Second, 2 * time.Second}, {60 * time.Second, 6 * time.Second},
		{300 * time.Second, 30 * time.Second}, {900 * time.Second, 30 * time.Second},
	} {
		if got := DeadlineMargin(tc.remaining); got != tc.want {
			t.Errorf("DeadlineMargin(%v) = %v, want %v", tc.remaining, got, tc.want)
		}
	}
}

func TestListingFailureFailsTheRun(t *testing.T) {
	h := newHarness(t, kmsemu.Options{}, demoFleet(t), fastConfig())
	h.emu.URL = "http://127.0.0.1:1" // nothing listens there
	h.engine = New(fastConfig(), h.emu.KMS(testRegion), h.emu.Tagging(testRegion), nil, h.metrics)
	_, err := h.engine.Run(context.Background(), request.Request{Mode: request.ModeScheduled}, Invocation{Scope: testScope})
	if err == nil || !strings.Contains(err.Error(), "get resources") {
		t.Fatalf("Run error = %v, want the listing failure", err)
	}
	if !strings.Contains(h.metrics.String(), `"RunsFailed":1`) {
		t.Errorf("no RunsFailed metric: %s", h.metrics.String())
	}
}

func TestDeadlineMidSweepDefersTheRest(t *testing.T) {
	fleet := `[{"alias":"alias/due","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"},"count":50},
	           {"alias":"alias/fresh","createdDaysAgo":5,"tags":{"kms-rotator":"enabled"},"count":50}]`
	cfg := fastConfig()
	cfg.Concurrency, cfg.ConcurrencyAuto = 2, false // exactly 2 read pipelines
	// 20 ms a DescribeKey, 2 pipelines: 100 keys need over 1 s; the run has
	// 0.5 s before its cutoff (60 s left, a 59.5 s margin — so calls in
	// flight at the cutoff still have half the margin, ~30 s, to finish
	// however busy the machine is).
	h := newHarness(t, kmsemu.Options{}, fleet, cfg)
	h.engine.margin = func(time.Duration) time.Duration { return 59500 * time.Millisecond }
	h.engine.kms = &hookKMS{KMSAPI: h.kms, describe: func(ctx context.Context, in *kms.DescribeKeyInput, optFns ...func(*kms.Options)) (*kms.DescribeKeyOutput, error) {
		time.Sleep(20 * time.Millisecond)
		return h.kms.DescribeKey(ctx, in, optFns...)
	}}
	before := h.snapshot(t, testRegion)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := h.engine.Run(ctx, request.Request{Mode: request.ModeScheduled}, Invocation{Scope: testScope})
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep)
	if rep.Summary.Candidates != 100 || rep.Summary.Deferred == 0 || rep.Summary.Reasons[ReasonDeadline] != rep.Summary.Deferred {
		t.Fatalf("summary %+v, want 100 candidates and some deferred for the deadline", rep.Summary)
	}
	for _, k := range rep.Keys {
		if k.Outcome == Failed {
			t.Errorf("%s failed (%s): a deadline defers, it does not fail", k.Alias, k.Error)
		}
	}
	checkAgainstEmulator(t, rep, before, h.snapshot(t, testRegion))
	if !strings.Contains(h.metrics.String(), fmt.Sprintf(`"KeysDeferred":%d`, rep.Summary.Deferred)) {
		t.Errorf("KeysDeferred metric does not match the report")
	}
}

func TestIncidentNamesPrimaryInAnotherRegionByARN(t *testing.T) {
	fleet := `[
	 {"keyId":"mrk-00000000000000000000000000000001","alias":"alias/p-primary","region":"us-west-2","multiRegionKeyType":"PRIMARY","createdDaysAgo":100,"tags":{"kms-rotator":"enabled"}},
	 {"alias":"alias/p-replica","region":"us-east-1","multiRegionKeyType":"REPLICA","primaryAlias":"alias/p-primary","createdDaysAgo":90,"tags":{"kms-rotator":"enabled"}}]`
	h := newHarness(t, kmsemu.Options{}, fleet, fastConfig())
	primaryARN := "arn:aws:kms:us-west-2:" + testAccount + ":key/mrk-00000000000000000000000000000001"
	p, err := request.ParseKeyRef(primaryARN)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := request.ParseKeyRef("alias/p-replica")
	before := h.snapshot(t, "us-east-1", "us-west-2")
	rep := h.run(t, request.Request{Mode: request.ModeIncident, Reason: "INC", Keys: []request.KeyRef{p, r}})
	checkAgainstEmulator(t, rep, before, h.snapshot(t, "us-east-1", "us-west-2"))
	if len(rep.Keys) != 2 {
		t.Fatalf("%d entries, want the primary once and the replica", len(rep.Keys))
	}
	for _, k := range rep.Keys {
		switch k.KeyARN {
		case primaryARN:
			if k.Outcome != Rotated || k.Alias != "alias/p-primary" {
				t.Errorf("primary %s/%s alias %q, want rotated with its own us-west-2 alias", k.Outcome, k.Reason, k.Alias)
			}
		default:
			if k.Reason != ReasonMultiRegionReplica || k.PrimaryKeyARN != primaryARN || k.Alias != "alias/p-replica" {
				t.Errorf("replica %+v, want multi-region-replica naming the primary", k)
			}
		}
	}
}

func TestIncidentWhatTheKeyIsComesBeforeTheOptInTag(t *testing.T) {
	fleet := `[
	 {"keyId":"mrk-00000000000000000000000000000002","alias":"alias/g-primary","region":"us-west-2","multiRegionKeyType":"PRIMARY","createdDaysAgo":100,"tags":{"kms-rotator":"enabled"}},
	 {"alias":"alias/g-replica","region":"us-east-1","multiRegionKeyType":"REPLICA","primaryAlias":"alias/g-primary","createdDaysAgo":90},
	 {"alias":"alias/aws/s3","keyManager":"AWS","createdDaysAgo":500},
	 {"alias":"alias/signing","keySpec":"ECC_NIST_P256","keyUsage":"SIGN_VERIFY","createdDaysAgo":50},
	 {"alias":"alias/plain","createdDaysAgo":50}]`
	h := newHarness(t, kmsemu.Options{}, fleet, fastConfig())
	var refs []request.KeyRef
	for _, a := range []string{"alias/g-replica", "alias/aws/s3", "alias/signing", "alias/plain"} {
		r, err := request.ParseKeyRef(a)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	before := h.snapshot(t, "us-east-1", "us-west-2")
	rep := h.run(t, request.Request{Mode: request.ModeIncident, Reason: "INC", Keys: refs})
	checkAgainstEmulator(t, rep, before, h.snapshot(t, "us-east-1", "us-west-2"))
	checkEntries(t, rep, map[string]want{
		"alias/g-replica": {Skipped, ReasonMultiRegionReplica}, // untagged, but never rotated itself
		"alias/g-primary": {Rotated, ReasonNone},               // opted in: rotated for it
		"alias/aws/s3":    {Skipped, ReasonAWSManaged},
		"alias/signing":   {Skipped, ReasonUnsupportedKeySpec},
		"alias/plain":     {Skipped, ReasonNotOptedIn},
	})
}

func TestReportSizeIsBoundedWhateverTheFleet(t *testing.T) {
	fleet := `[
	 {"alias":"alias/due","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"},"count":3},
	 {"alias":"alias/rsa","keySpec":"RSA_2048","keyUsage":"SIGN_VERIFY","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"},"count":2},
	 {"alias":"alias/fresh","createdDaysAgo":10,"tags":{"kms-rotator":"enabled"},"count":10}]`
	h := newHarness(t, kmsemu.Options{}, fleet, fastConfig())
	h.engine.limits.maxListed, h.engine.limits.maxEntries = 5, 3 // stand-ins for 2,000 and 10,000
	rep := h.run(t, request.Request{Mode: request.ModePlan})
	if rep.Summary.Candidates != 15 || len(rep.Keys) != 3 || rep.OmittedNotDue != 10 || rep.OmittedOther != 2 {
		t.Fatalf("candidates %d, %d entries, omitted %d not-due + %d other; want 15, 3, 10 + 2",
			rep.Summary.Candidates, len(rep.Keys), rep.OmittedNotDue, rep.OmittedOther)
	}
	for _, k := range rep.Keys {
		if k.Outcome != WouldRotate {
			t.Errorf("listed %s/%s; the skipped entries go first", k.Outcome, k.Reason)
		}
	}
	if rep.Summary.Skipped != 12 || rep.Summary.WouldRotate != 3 {
		t.Errorf("summary %+v, want it complete", rep.Summary)
	}
}

// With a slow KMS and a short timeout, no RotateKeyOnDemand goes out past
// the cutoff, nor so late that one call's timeout and the confirm window
// would not fit before the calls' deadline: a call sent later could be
// applied after the run stopped looking.
func TestNoRotationCallPastTheCutoffWithSlowKMS(t *testing.T) {
	fleet := `[{"alias":"alias/due","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"},"count":30}]`
	cfg := fastConfig()
	cfg.CallTimeout, cfg.ConfirmWait, cfg.Concurrency, cfg.ConcurrencyAuto = time.Second, 500*time.Millisecond, 2, false
	h := newHarness(t, kmsemu.Options{Latency: 300 * time.Millisecond}, fleet, cfg)
	var mu sync.Mutex
	var sent []time.Time
	hk := &hookKMS{KMSAPI: h.kms}
	hk.rotate = func(ctx context.Context, in *kms.RotateKeyOnDemandInput, optFns ...func(*kms.Options)) (*kms.RotateKeyOnDemandOutput, error) {
		mu.Lock()
		sent = append(sent, time.Now())
		mu.Unlock()
		return h.kms.RotateKeyOnDemand(ctx, in, optFns...)
	}
	h.engine.kms = hk
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	rep, err := h.engine.Run(ctx, request.Request{Mode: request.ModeScheduled}, Invocation{RequestID: "r", Scope: testScope})
	if err != nil {
		t.Fatal(err)
	}
	dl, _ := ctx.Deadline()
	d := newDeadlines(dl, DeadlineMargin(dl.Sub(start)))
	lastStart := d.callsEnd.Add(-(cfg.CallTimeout + cfg.ConfirmWait))
	if len(sent) == 0 || rep.Summary.Deferred == 0 {
		t.Fatalf("%d rotation calls, %d deferred: the run should both rotate and run out of time", len(sent), rep.Summary.Deferred)
	}
	for _, at := range sent {
		if at.After(d.cutoff) || at.After(lastStart) {
			t.Errorf("RotateKeyOnDemand sent %v after the start: past the cutoff (%v) or the last moment a call and its confirmation fit (%v)",
				at.Sub(start), d.cutoff.Sub(start), lastStart.Sub(start))
		}
	}
}
