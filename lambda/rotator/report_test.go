package rotator

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kms-rotator/kms-rotator/lambda/ledger"
	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

func TestEntry(t *testing.T) {
	cfg := settings.DefaultConfig() // interval 90, reserve 2
	cfg.OnDemandLimit = 10
	e := &Engine{cfg: cfg, now: func() time.Time { return now }}
	ts := func(s *string) string {
		if s == nil {
			return "null"
		}
		return *s
	}
	iptr := func(p *int) int {
		if p == nil {
			return -1
		}
		return *p
	}
	started := now.Add(-time.Minute)
	for _, tc := range []struct {
		name     string
		mode     request.Mode
		it       item
		used     int // -1: null
		last     string
		nextDue  string
		age      int    // -1: absent
		overdue  string // "true", "false" or "absent"
		left     int    // report mode; -1: absent
		runsOut  string
		keyState string
	}{
		{name: "ineligible key: no budget, null dates", mode: request.ModeScheduled,
			it:   item{outcome: Skipped, reason: ReasonAWSManaged, facts: Facts{Tags: Tags{IntervalDays: 90}, Meta: &Metadata{KeyState: "Enabled", CreatedAt: ago(10)}}},
			used: -1, last: "null", nextDue: "null", age: -1, overdue: "absent", left: -1, runsOut: "null", keyState: "Enabled"},
		{name: "never rotated: lastRotation null, nextDue from creation", mode: request.ModeScheduled,
			it:   item{outcome: Skipped, reason: ReasonNotDue, facts: Facts{Tags: Tags{IntervalDays: 90}, Meta: eligible(), History: &History{}}},
			used: 0, last: "null", nextDue: fmtTime(ago(400).Add(days(90))), age: 400, overdue: "true", left: -1, runsOut: "null", keyState: "Enabled"},
		{name: "rotated now: budget after the rotation, dates from it", mode: request.ModeIncident,
			it:   item{outcome: Rotated, facts: Facts{Tags: Tags{IntervalDays: 90}, RotatedAt: &started, Meta: eligible(), History: &History{OnDemand: 3, Newest: ago(5)}}},
			used: 4, last: fmtTime(started), nextDue: fmtTime(started.Add(days(90))), age: 0, overdue: "false", left: -1, runsOut: "null", keyState: "Enabled"},
		{name: "another run's rotation in progress: counted as spent, dates from its start", mode: request.ModeScheduled,
			it:   item{outcome: Skipped, reason: ReasonRotationInProgress, facts: Facts{Tags: Tags{IntervalDays: 90}, Meta: eligible(), History: &History{OnDemand: 3, Newest: ago(100)}, Status: &Status{OnDemandStart: &started}}},
			used: 4, last: fmtTime(started), nextDue: fmtTime(started.Add(days(90))), age: 0, overdue: "false", left: -1, runsOut: "null", keyState: "Enabled"},
		{name: "report: 1 used, 20 days old → 7 scheduled rotations, the last 70+6×90 days out", mode: request.ModeReport,
			it:   item{outcome: Skipped, reason: ReasonNotDue, facts: Facts{Tags: Tags{IntervalDays: 90}, Meta: eligible(), History: &History{OnDemand: 1, Newest: ago(20)}}},
			used: 1, last: fmtTime(ago(20)), nextDue: fmtTime(ago(20).Add(days(90))), age: 20, overdue: "false", left: 7, runsOut: fmtTime(ago(20).Add(days(90 + 6*90))), keyState: "Enabled"},
		{name: "report: overdue key counts from now", mode: request.ModeReport,
			it:   item{outcome: WouldRotate, facts: Facts{Tags: Tags{IntervalDays: 30}, Meta: eligible(), History: &History{OnDemand: 6, Newest: ago(100)}}},
			used: 6, last: fmtTime(ago(100)), nextDue: fmtTime(ago(70)), age: 100, overdue: "false", left: 2, runsOut: fmtTime(now.Add(days(30))), keyState: "Enabled"},
		{name: "report: remaining == reserve → none left, no runs-out date", mode: request.ModeReport,
			it:   item{outcome: Skipped, reason: ReasonBudgetReserved, facts: Facts{Tags: Tags{IntervalDays: 90}, Meta: eligible(), History: &History{OnDemand: 8, Newest: ago(100)}}},
			used: 8, last: fmtTime(ago(100)), nextDue: fmtTime(ago(10)), age: 100, overdue: "true", left: 0, runsOut: "null", keyState: "Enabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &run{e: e, job: job{req: request.Request{Mode: tc.mode}}}
			k := (&outputs{r: r}).entry(&tc.it)
			if iptr(k.OnDemandUsed) != tc.used {
				t.Errorf("onDemandUsed = %d, want %d", iptr(k.OnDemandUsed), tc.used)
			}
			if tc.used >= 0 && iptr(k.OnDemandRemaining) != 10-tc.used {
				t.Errorf("onDemandRemaining = %d, want %d", iptr(k.OnDemandRemaining), 10-tc.used)
			}
			if ts(k.LastRotation) != tc.last || ts(k.NextDue) != tc.nextDue {
				t.Errorf("lastRotation %s nextDue %s, want %s %s", ts(k.LastRotation), ts(k.NextDue), tc.last, tc.nextDue)
			}
			if iptr(k.MaterialAgeDays) != tc.age || iptr(k.ScheduledRotationsLeft) != tc.left || ts(k.BudgetRunsOutAt) != tc.runsOut {
				t.Errorf("age %d left %d runsOut %s, want %d %d %s", iptr(k.MaterialAgeDays), iptr(k.ScheduledRotationsLeft), ts(k.BudgetRunsOutAt), tc.age, tc.left, tc.runsOut)
			}
			od := "absent"
			if k.Overdue != nil {
				od = map[bool]string{true: "true", false: "false"}[*k.Overdue]
			}
			if od != tc.overdue {
				t.Errorf("overdue %s, want %s", od, tc.overdue)
			}
			if k.KeyState != tc.keyState {
				t.Errorf("keyState %q, want %q", k.KeyState, tc.keyState)
			}
		})
	}
}

func TestFmtTime(t *testing.T) {
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "2026-01-02T03:04:05Z"},
		{time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600)), "2026-01-02T02:04:05.123Z"},
	} {
		got := fmtTime(tc.in)
		if got != tc.want {
			t.Errorf("fmtTime(%v) = %s, want %s", tc.in, got, tc.want)
		}
		if _, err := time.Parse(time.RFC3339, got); err != nil {
			t.Errorf("%s is not RFC 3339: %v", got, err)
		}
	}
}

// Overdue keys are split: someone must act (a failure, a key deferred for
// days, a missed automatic rotation) or the product keeps them so (the
// reserve, an exhausted budget, material not imported, idle).
func TestOverdueSplitsActionFromPolicy(t *testing.T) {
	cfg := settings.DefaultConfig() // interval 90, grace 7
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	r := &run{e: &Engine{cfg: cfg, now: func() time.Time { return now }}, job: job{req: request.Request{Mode: request.ModeScheduled}}}
	ago := func(d int) time.Time { return now.Add(-days(d)) }
	for _, tc := range []struct {
		name    string
		outcome Outcome
		reason  Reason
		age     int
		want    string // overdueFor; "" = not overdue
	}{
		{"budget-reserved 100 days", Skipped, ReasonBudgetReserved, 100, OverdueByPolicy},
		{"idle 100 days", Skipped, ReasonIdle, 100, OverdueByPolicy},
		{"material-not-staged 100 days", Skipped, ReasonMaterialNotStaged, 100, OverdueByPolicy},
		{"throttled 100 days", Failed, ReasonThrottled, 100, OverdueForAction},
		{"rotation in progress 100 days", Skipped, ReasonRotationInProgress, 100, OverdueForAction},
		{"deferred a day past its interval", Deferred, ReasonDeadline, 91, ""},
		{"deferred three days past its interval", Deferred, ReasonDeadline, 93, OverdueForAction},
		{"automatic rotation soon, within the grace", Skipped, ReasonAutomaticRotationSoon, 95, ""},
		{"automatic rotation soon, past the grace: missed", Skipped, ReasonAutomaticRotationSoon, 98, OverdueForAction},
		{"not due", Skipped, ReasonNotDue, 50, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			it := &item{outcome: tc.outcome, reason: tc.reason}
			it.facts.IntervalDays = 90
			it.facts.Meta = &Metadata{CreatedAt: ago(400)}
			it.facts.History = &History{Newest: ago(tc.age)}
			k := (&outputs{r: r}).entry(it)
			got := ""
			if k.Overdue != nil && *k.Overdue {
				got = k.OverdueFor
				if got == "" {
					t.Fatal("overdue without overdueFor")
				}
			} else if k.OverdueFor != "" {
				t.Fatalf("overdueFor %q on a key that is not overdue", k.OverdueFor)
			}
			if got != tc.want {
				t.Fatalf("overdueFor %q, want %q", got, tc.want)
			}
		})
	}
}

// A key another run's claim just rotated is not overdue while KMS has not
// listed that rotation yet; an unconfirmed claim does not count.
func TestHeldRotatedClaimIsNotOverdue(t *testing.T) {
	cfg := settings.DefaultConfig()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	r := &run{e: &Engine{cfg: cfg, now: func() time.Time { return now }}, job: job{req: request.Request{Mode: request.ModeScheduled}}}
	for outcome, want := range map[string]bool{ledger.Rotated: false, ledger.Claimed: false, ledger.Unconfirmed: true, ledger.Released: true} {
		it := &item{outcome: Skipped, reason: ReasonRecentlyRotated,
			held: &ledger.Claim{Outcome: outcome, ClaimedAt: now.Add(-time.Minute)}}
		it.facts.IntervalDays = 90
		it.facts.Meta = &Metadata{CreatedAt: now.Add(-days(400))}
		it.facts.History = &History{Newest: now.Add(-days(100))}
		if got := *(&outputs{r: r}).entry(it).Overdue; got != want {
			t.Errorf("claim %s a minute ago: overdue %v, want %v", outcome, got, want)
		}
	}
}

// One trim policy shortens every list of entries: skipped entries give way
// first, then deferred, then rotated and would-rotate, then failed ones,
// each from the tail; what stays keeps its order.
func TestTrimPolicy(t *testing.T) {
	list := []Outcome{Failed, Skipped, Rotated, Deferred, Skipped, WouldRotate, Failed, Deferred}
	for _, tc := range []struct {
		budget int
		want   string // indexes kept
	}{
		{8, "01234567"},
		{7, "0123567"}, // the last skipped
		{6, "023567"},  // both skipped
		{5, "02356"},   // then the last deferred
		{4, "0256"},    // both deferred
		{3, "026"},     // then the last of rotated and would-rotate
		{2, "06"},      // failed ones stay longest
		{1, "0"},
		{0, ""},
	} {
		keep := fit(len(list), func(i int) Outcome { return list[i] }, func(int) int { return 1 }, tc.budget)
		got := ""
		for i, k := range keep {
			if k {
				got += fmt.Sprint(i)
			}
		}
		if got != tc.want {
			t.Errorf("budget %d: kept %s, want %s", tc.budget, got, tc.want)
		}
	}
}

// The report's entries, trimmed as they arrive, end as the policy would
// trim the whole list at once.
func TestEntriesTrimWhileStreaming(t *testing.T) {
	outcomes := []Outcome{Skipped, Failed, Deferred, Rotated, WouldRotate}
	e := entries{maxListed: 0, maxEntries: 4}
	var all []KeyReport
	for i := range 40 {
		k := KeyReport{KeyARN: fmt.Sprintf("k%02d", (i*7)%40), Outcome: outcomes[i%len(outcomes)]}
		all = append(all, k)
		e.keep(k.KeyARN, k, i+1)
	}
	slices.SortFunc(all, func(a, b KeyReport) int { return strings.Compare(a.KeyARN, b.KeyARN) })
	keep := fit(len(all), func(i int) Outcome { return all[i].Outcome }, func(int) int { return 1 }, 4)
	var want []string
	for i, k := range all {
		if keep[i] {
			want = append(want, k.KeyARN)
		}
	}
	var got []string
	for _, k := range e.finish() {
		got = append(got, k.KeyARN)
	}
	if !slices.Equal(got, want) || e.omittedOther != 36 {
		t.Fatalf("kept %v (omitted %d), want %v (36)", got, e.omittedOther, want)
	}
}
