package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// This file checks the keys-overdue, keys-newly-overdue and keys-deferred
// alarms against simulated sweeps, with silence_test.go's interpreter of
// CloudWatch's metric math and its model of how an alarm reads data that
// is missing: at each evaluation the alarm sees the buckets of its range,
// the newest one partial (the runs that have reported so far).

// run is one report of a scheduled run: when it ended and a metric's value.
type run struct {
	at    time.Time
	value float64
}

// buckets aggregates the runs reported by now into the buckets of period
// p (aligned to the Unix epoch) from `from` on, with stat "Sum" or
// "Minimum".
func buckets(runs []run, stat string, p time.Duration, from, now time.Time) series {
	s := series{}
	for _, r := range runs {
		if r.at.After(now) || r.at.Before(from) {
			continue
		}
		b := r.at.Truncate(p).Unix()
		v, ok := s[b]
		switch {
		case !ok:
			s[b] = r.value
		case stat == "Sum":
			s[b] = v + r.value
		case stat == "Minimum":
			s[b] = min(v, r.value)
		default:
			panic(stat)
		}
	}
	return s
}

// rangeOf is the alarm's evaluated range at now: its newest n buckets of
// period p, the last one holding now.
func rangeOf(now time.Time, p time.Duration, n int) []int64 {
	newest := now.Truncate(p)
	var rng []int64
	for b := newest.Add(-time.Duration(n-1) * p); !b.After(newest); b = b.Add(p) {
		rng = append(rng, b.Unix())
	}
	return rng
}

// alarmState is the state after one evaluation of an alarm that fires on
// any breaching value (1 of N): ALARM on a value ≥ threshold, OK on other
// values, and without any value OK (missing data not breaching) or the
// state kept (missing data ignored).
func alarmState(state string, values series, threshold float64, notBreaching bool) string {
	if len(values) == 0 {
		if notBreaching {
			return "OK"
		}
		return state
	}
	for _, v := range values {
		if v >= threshold {
			return "ALARM"
		}
	}
	return "OK"
}

// transition is a state the alarm entered, and when.
type transition struct {
	at    time.Time
	state string
}

// evaluate runs an alarm every ten minutes from `from` to `to` and returns
// its transitions; eval gives the values the alarm compares at now.
func evaluate(from, to time.Time, notBreaching bool, eval func(now time.Time) series) []transition {
	state := "INSUFFICIENT_DATA"
	var out []transition
	for now := from; now.Before(to); now = now.Add(10 * time.Minute) {
		next := alarmState(state, eval(now), 1, notBreaching)
		if next != state {
			out = append(out, transition{now, next})
			state = next
		}
	}
	return out
}

// alarmsAt lists the times the alarm went into ALARM.
func alarmsAt(ts []transition) []time.Time {
	var out []time.Time
	for _, t := range ts {
		if t.state == "ALARM" {
			out = append(out, t.at)
		}
	}
	return out
}

// stateAt is the alarm's state at t.
func stateAt(ts []transition, t time.Time) string {
	state := "INSUFFICIENT_DATA"
	for _, tr := range ts {
		if tr.at.After(t) {
			break
		}
		state = tr.state
	}
	return state
}

var simStart = time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC) // a Monday

// orgSweep is one organization sweep's reports of KeysOverdueAction: one
// target every 20 minutes from 03:00 of the day, the given counts.
func orgSweep(day int, counts ...float64) []run {
	var out []run
	for i, c := range counts {
		out = append(out, run{simStart.AddDate(0, 0, day).Add(3*time.Hour + time.Duration(i)*20*time.Minute), c})
	}
	return out
}

func TestKeysOverdueAlarmReadsWholeSweeps(t *testing.T) {
	p := sweepPeriod(DefaultSettings().Silence)
	if p != 24*time.Hour {
		t.Fatalf("sweep period %v, want a day for the daily schedule", p)
	}
	// The alarm of the stack: Sum over the sweep period, 1 of 2 periods,
	// missing data ignored (stack_test.go TestAlarms pins the template).
	keysOverdue := func(runs []run) []transition {
		return evaluate(simStart, simStart.AddDate(0, 0, 6), false, func(now time.Time) series {
			rng := rangeOf(now, p, 2)
			return buckets(runs, "Sum", p, time.Unix(rng[0], 0), now)
		})
	}
	t.Run("an organization sweep whose first targets have nothing overdue does not clear the alarm half-way", func(t *testing.T) {
		var runs []run
		for day := range 5 {
			// Targets 1–3 clean, target 4 with two keys overdue for action.
			runs = append(runs, orgSweep(day, 0, 0, 0, 2)...)
		}
		ts := keysOverdue(runs)
		first := alarmsAt(ts)
		if len(first) != 1 || !first[0].Equal(simStart.Add(4*time.Hour)) {
			t.Fatalf("transitions %v, want one ALARM when the fourth target reports on the first day", ts)
		}
		if len(ts) != 2 { // INSUFFICIENT_DATA → OK (first targets), then ALARM for good
			t.Errorf("transitions %v, want OK then ALARM and no OK while the keys stay overdue", ts)
		}
	})
	t.Run("it returns to OK once a whole sweep reported none", func(t *testing.T) {
		runs := append(orgSweep(0, 0, 3), orgSweep(1, 0, 0)...)
		runs = append(runs, orgSweep(2, 0, 0)...)
		ts := keysOverdue(runs)
		if got := stateAt(ts, simStart.AddDate(0, 0, 1).Add(5*time.Hour)); got != "ALARM" {
			t.Errorf("after the clean second sweep: %s, want ALARM until its period is complete", got)
		}
		if got := stateAt(ts, simStart.AddDate(0, 0, 2).Add(time.Hour)); got != "OK" {
			t.Errorf("a period after the clean sweep: %s, want OK", got)
		}
	})
	t.Run("the hourly alarm it replaces cleared half-way through a sweep", func(t *testing.T) {
		var runs []run
		for day := range 3 {
			runs = append(runs, orgSweep(day, 2, 0, 0, 0)...)
		}
		ts := evaluate(simStart, simStart.AddDate(0, 0, 3), false, func(now time.Time) series {
			rng := rangeOf(now, time.Hour, 1)
			return buckets(runs, "Sum", time.Hour, time.Unix(rng[0], 0), now)
		})
		if len(alarmsAt(ts)) < 2 {
			t.Errorf("transitions %v: expected the hourly alarm to flap", ts)
		}
	})
}

func TestKeysNewlyOverdueAlarm(t *testing.T) {
	p := sweepPeriod(DefaultSettings().Silence)
	newly := func(runs []run, days int) []transition {
		return evaluate(simStart, simStart.AddDate(0, 0, days), true, func(now time.Time) series {
			rng := rangeOf(now, p, 2)
			e := &mathEval{rng: rng, exprs: map[string]string{"newly": newlyOverdueExpression},
				vars: map[string]series{"overdue": buckets(runs, "Sum", p, time.Unix(rng[0], 0), now)}}
			return e.eval("newly")
		})
	}
	daily := func(counts ...float64) []run {
		var runs []run
		for day, c := range counts {
			runs = append(runs, orgSweep(day, 0, c)...)
		}
		return runs
	}
	t.Run("a key newly overdue notifies although older ones persist, and the alarm clears the next period", func(t *testing.T) {
		ts := newly(daily(2, 2, 3, 3, 3, 5, 5), 8)
		var days []int
		for _, at := range alarmsAt(ts) {
			days = append(days, int(at.Sub(simStart)/(24*time.Hour)))
		}
		if !slices.Equal(days, []int{2, 5}) {
			t.Errorf("ALARM on days %v, want 2 and 5 (the sweeps that found more keys overdue)\n%v", days, ts)
		}
		for _, day := range []int{3, 6} {
			if got := stateAt(ts, simStart.AddDate(0, 0, day).Add(time.Hour)); got != "OK" {
				t.Errorf("day %d before its sweep: %s, want OK", day, got)
			}
		}
	})
	t.Run("fewer or as many keys overdue never notify; the first sweep has nothing to compare with", func(t *testing.T) {
		if got := alarmsAt(newly(daily(4, 4, 3, 1, 1, 0), 7)); len(got) != 0 {
			t.Errorf("ALARM at %v", got)
		}
	})
	t.Run("a sweep under way notifies only once its figure exceeds the previous sweep's", func(t *testing.T) {
		runs := append(orgSweep(0, 1, 1, 1), orgSweep(1, 0, 0, 1, 1, 1, 1)...)
		got := alarmsAt(newly(runs, 3))
		// Day 1: 0, 0, 1, 2, 3 (equal), 4 at the sixth target, 04:40.
		if want := simStart.AddDate(0, 0, 1).Add(4*time.Hour + 40*time.Minute); len(got) != 1 || !got[0].Equal(want) {
			t.Errorf("ALARM at %v, want once at %v", got, want)
		}
	})
}

// deferralSim is a timeline of scheduled runs reporting KeysDeferred.
type deferralSim struct {
	plan     deferralPlan
	runs     []run
	from, to time.Time
}

func (sim deferralSim) run() []transition {
	exprs := deferralExpressions(sim.plan)
	return evaluate(sim.from, sim.to, false, func(now time.Time) series {
		rng := rangeOf(now, deferralBucket, sim.plan.Periods)
		e := &mathEval{rng: rng, exprs: exprs,
			vars: map[string]series{"deferred": buckets(sim.runs, "Minimum", deferralBucket, time.Unix(rng[0], 0), now)}}
		return e.eval("persisting")
	})
}

// chain is one sweep at `at`: a run every 15 minutes reporting the keys it
// left deferred, the last value being the last link's.
func chain(at time.Time, deferred ...float64) []run {
	var out []run
	for i, d := range deferred {
		out = append(out, run{at.Add(time.Duration(i+1) * 15 * time.Minute), d})
	}
	return out
}

func planDeferralFor(t *testing.T, expr string) deferralPlan {
	t.Helper()
	sched, err := parseSchedule(expr)
	if err != nil {
		t.Fatal(err)
	}
	shortest, longest, err := sched.gaps(time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	return planDeferral(Silence{Gap: longest, MinGap: shortest, Slack: silenceSlack(10 * time.Minute)})
}

func TestKeysDeferredAlarmOnSimulatedSweeps(t *testing.T) {
	daily := planDeferralFor(t, "cron(0 3 * * ? *)")
	at := func(day int, hour, minute int) time.Time {
		return simStart.AddDate(0, 0, day).Add(time.Duration(hour)*time.Hour + time.Duration(minute)*time.Minute)
	}
	// sweeps is a daily sweep at 03:00 for days, each a chain of links.
	sweeps := func(days int, links func(day int) []float64) []run {
		var out []run
		for d := range days {
			out = append(out, chain(at(d, 3, 0), links(d)...)...)
		}
		return out
	}
	finishes := []float64{300, 120, 0}
	stops := []float64{300, 120, 40}
	tests := []struct {
		name  string
		plan  deferralPlan
		runs  []run
		days  int
		check func(t *testing.T, ts []transition)
	}{
		{"daily sweeps whose continuations finish every key never alarm", daily,
			sweeps(10, func(int) []float64 { return finishes }), 10, noAlarm},
		{"a fresh stack whose first sweep defers and continues does not alarm on its first link", daily,
			sweeps(3, func(int) []float64 { return finishes }), 3, noAlarm},
		{"a continuation that finishes in the next hour", daily,
			func() []run {
				var out []run
				for d := range 10 {
					out = append(out, run{at(d, 3, 50), 200}, run{at(d, 4, 5), 0})
				}
				return out
			}(), 10, noAlarm},
		{"one daily sweep left keys deferred, the next finished them: no alarm", daily,
			sweeps(10, func(d int) []float64 {
				if d == 4 {
					return stops
				}
				return finishes
			}), 10, noAlarm},
		{"two daily sweeps in a row left keys deferred: ALARM after the second, OK after the next that finished", daily,
			sweeps(10, func(d int) []float64 {
				if d == 4 || d == 5 {
					return stops
				}
				return finishes
			}), 10, func(t *testing.T, ts []transition) {
				got := alarmsAt(ts)
				// The second sweep ends 03:45 on day 5; the clear hour of
				// day 3 is AfterClear old at 03:00 on day 3 + AfterClear.
				want := at(3, 3, 0).Add(daily.AfterClear)
				if len(got) != 1 || got[0].Before(at(5, 3, 45)) || got[0].After(want.Add(time.Hour)) {
					t.Errorf("ALARM at %v, want once between the second deferring sweep and %v", got, want.Add(time.Hour))
				}
				if s := stateAt(ts, at(6, 5, 0)); s != "OK" {
					t.Errorf("after the sweep of day 6 finished every key: %s, want OK", s)
				}
			}},
		{"a fresh stack whose sweeps never finish alarms a day after its first, not before", daily,
			sweeps(4, func(int) []float64 { return stops }), 4, func(t *testing.T, ts []transition) {
				got := alarmsAt(ts)
				first := at(0, 3, 15)
				if len(got) != 1 || got[0].Sub(first) < deferralPersists || got[0].Sub(first) > deferralPersists+2*time.Hour {
					t.Errorf("ALARM at %v, want once a day after the first deferral %v", got, first)
				}
			}},
	}
	hourly := planDeferralFor(t, "cron(0 * * * ? *)")
	hourlyRuns := func(deferFrom, deferTo int) []run {
		var out []run
		for h := range 24 * 4 {
			v := 0.0
			if h >= deferFrom && h < deferTo {
				v = 50
			}
			out = append(out, run{simStart.Add(time.Duration(h)*time.Hour + 20*time.Minute), v})
		}
		return out
	}
	tests = append(tests,
		struct {
			name  string
			plan  deferralPlan
			runs  []run
			days  int
			check func(t *testing.T, ts []transition)
		}{"hourly sweeps that leave keys deferred for 20 hours do not alarm", hourly, hourlyRuns(10, 30), 4, noAlarm},
		struct {
			name  string
			plan  deferralPlan
			runs  []run
			days  int
			check func(t *testing.T, ts []transition)
		}{"hourly sweeps that leave keys deferred for 40 hours alarm after a day and clear with the first sweep that finishes", hourly, hourlyRuns(10, 50), 4,
			func(t *testing.T, ts []transition) {
				got := alarmsAt(ts)
				first := simStart.Add(10*time.Hour + 20*time.Minute)
				if len(got) != 1 || got[0].Sub(first) < deferralPersists || got[0].Sub(first) > hourly.AfterClear+time.Hour {
					t.Errorf("ALARM at %v, want once between a day and %v after %v", got, hourly.AfterClear+time.Hour, first)
				}
				if s := stateAt(ts, simStart.Add(50*time.Hour+30*time.Minute)); s != "OK" {
					t.Errorf("after a sweep that deferred nothing: %s, want OK", s)
				}
			}},
	)
	weekly := planDeferralFor(t, "cron(0 3 ? * MON *)")
	tests = append(tests, struct {
		name  string
		plan  deferralPlan
		runs  []run
		days  int
		check func(t *testing.T, ts []transition)
	}{"a weekly sweep that leaves keys deferred for a week alarms a day later, and clears with the next", weekly,
		append(append(chain(at(0, 3, 0), finishes...), chain(at(7, 3, 0), stops...)...), chain(at(14, 3, 0), finishes...)...), 16,
		func(t *testing.T, ts []transition) {
			got := alarmsAt(ts)
			if len(got) != 1 || got[0].Sub(at(7, 3, 15)) < deferralPersists || got[0].Sub(at(7, 3, 15)) > deferralPersists+2*time.Hour {
				t.Errorf("ALARM at %v, want once a day after the weekly sweep of day 7", got)
			}
			if s := stateAt(ts, at(14, 5, 0)); s != "OK" {
				t.Errorf("after the next weekly sweep finished: %s, want OK", s)
			}
		}})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := deferralSim{plan: tc.plan, runs: tc.runs, from: simStart, to: simStart.AddDate(0, 0, tc.days)}.run()
			tc.check(t, ts)
		})
	}
}

func noAlarm(t *testing.T, ts []transition) {
	t.Helper()
	if got := alarmsAt(ts); len(got) > 0 {
		t.Errorf("ALARM at %v\n%v", got, ts)
	}
}

func TestDeferralPlan(t *testing.T) {
	tests := []struct {
		schedule string
		after    time.Duration
		periods  int
	}{
		// A day, plus the longest gap and the slack (1h10m), in whole hours
		// plus one.
		{"cron(0 3 * * ? *)", 51 * time.Hour, 53},
		{"cron(0 * * * ? *)", 28 * time.Hour, 30},
		// Longer than CloudWatch evaluates: the range is cut to seven days.
		{"cron(0 3 ? * MON *)", 195 * time.Hour, 168},
	}
	for _, tc := range tests {
		t.Run(tc.schedule, func(t *testing.T) {
			p := planDeferralFor(t, tc.schedule)
			if p.AfterClear != tc.after || p.Periods != tc.periods {
				t.Errorf("plan %+v, want after %v, %d periods", p, tc.after, tc.periods)
			}
		})
	}
	t.Run("the expressions use only their input and each other", func(t *testing.T) {
		exprs := deferralExpressions(planDeferralFor(t, "cron(0 3 * * ? *)"))
		for id, expr := range exprs {
			for _, tok := range tokenize(expr) {
				if tok[0] >= 'a' && tok[0] <= 'z' && tok != "deferred" && exprs[tok] == "" {
					t.Errorf("%s uses %s, which is neither the metric nor an expression", id, tok)
				}
			}
		}
		if !strings.Contains(exprs["persisting"], fmt.Sprintf(">= %d", int((deferralPersists+time.Hour).Seconds()))) {
			t.Errorf("persisting %q does not wait a day", exprs["persisting"])
		}
	})
}
