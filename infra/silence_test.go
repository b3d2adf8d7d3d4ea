package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// This file checks the silence alarm's metric math against simulated weeks
// of sweeps, with a small interpreter of the functions it uses, following
// the semantics that https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/using-metric-math.html
// states:
//   - EPOCH returns a non-sparse series: every bucket of the range, valued
//     with its timestamp in seconds;
//   - FILL(x, REPEAT) repeats the last real value; before the first one
//     there is nothing to repeat (not stated; assumed);
//   - arithmetic and comparisons of two series treat a missing value as 0
//     (a bucket present in either series is present in the result);
//     a series compared with a number keeps the series' buckets;
//   - IF(c, a, b): a where c is true, b where false, dropped where c has no
//     value or b is omitted; a missing bucket of a series a is 0;
//   - MIN(x) and MAX(x) of one series are a number, its smallest and
//     largest value (the other alarms' math, overdue_test.go);
//   - DIFF(x) is each value minus the value before it; the first value of
//     the range has none before it and is dropped, and a missing bucket is
//     skipped (assumed: the page says "the preceding value").
// and evaluates the alarm as "How alarm state is evaluated when data is
// missing" describes for 1 of N with missing data ignored: any breaching
// value among the last N buckets → ALARM, else any value → OK, else the
// state is kept.
// CloudWatch itself cannot run offline; this pins the expressions' logic.

type series map[int64]float64

type mathEval struct {
	rng   []int64 // bucket timestamps of the range, ascending
	vars  map[string]series
	toks  []string
	i     int
	exprs map[string]string
}

// mathValue is a scalar or a series.
type mathValue struct {
	s      series
	scalar float64
	isS    bool
}

func (e *mathEval) eval(id string) series {
	if v, ok := e.vars[id]; ok {
		return v
	}
	expr, ok := e.exprs[id]
	if !ok {
		panic("unknown id " + id)
	}
	sub := &mathEval{rng: e.rng, vars: e.vars, exprs: e.exprs, toks: tokenize(expr)}
	v := sub.expr()
	if sub.i != len(sub.toks) {
		panic(fmt.Sprintf("%s: trailing %v", expr, sub.toks[sub.i:]))
	}
	if !v.isS {
		panic(id + " is not a series")
	}
	e.vars[id] = v.s
	return v.s
}

func tokenize(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ':
			i++
		case strings.HasPrefix(s[i:], ">="), strings.HasPrefix(s[i:], "<="):
			out, i = append(out, s[i:i+2]), i+2
		case strings.ContainsRune("(),+-><", rune(c)):
			out, i = append(out, string(c)), i+1
		default:
			j := i
			for j < len(s) && (s[j] == '_' || s[j] >= '0' && s[j] <= '9' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z') {
				j++
			}
			if j == i {
				panic("bad character in " + s[i:])
			}
			out, i = append(out, s[i:j]), j
		}
	}
	return out
}

func (e *mathEval) peek() string {
	if e.i < len(e.toks) {
		return e.toks[e.i]
	}
	return ""
}

func (e *mathEval) next() string { t := e.peek(); e.i++; return t }

// expr := sum [(>= | > | <= | <) sum]
func (e *mathEval) expr() mathValue {
	l := e.sum()
	for {
		switch op := e.peek(); op {
		case ">=", ">", "<=", "<":
			e.next()
			r := e.sum()
			l = e.binary(l, r, func(a, b float64) float64 {
				if op == ">=" && a >= b || op == ">" && a > b || op == "<=" && a <= b || op == "<" && a < b {
					return 1
				}
				return 0
			})
		default:
			return l
		}
	}
}

// sum := atom {(+|-) atom}
func (e *mathEval) sum() mathValue {
	l := e.atom()
	for e.peek() == "+" || e.peek() == "-" {
		op := e.next()
		r := e.atom()
		l = e.binary(l, r, func(a, b float64) float64 {
			if op == "+" {
				return a + b
			}
			return a - b
		})
	}
	return l
}

func (e *mathEval) binary(l, r mathValue, f func(a, b float64) float64) mathValue {
	switch {
	case !l.isS && !r.isS:
		return mathValue{scalar: f(l.scalar, r.scalar)}
	case l.isS && !r.isS:
		out := series{}
		for t, v := range l.s {
			out[t] = f(v, r.scalar)
		}
		return mathValue{s: out, isS: true}
	case !l.isS && r.isS:
		out := series{}
		for t, v := range r.s {
			out[t] = f(l.scalar, v)
		}
		return mathValue{s: out, isS: true}
	}
	out := series{}
	for _, t := range e.rng {
		a, okA := l.s[t]
		b, okB := r.s[t]
		if okA || okB {
			out[t] = f(a, b)
		}
	}
	return mathValue{s: out, isS: true}
}

func (e *mathEval) atom() mathValue {
	tok := e.next()
	if n, err := strconv.ParseFloat(tok, 64); err == nil {
		return mathValue{scalar: n}
	}
	switch tok {
	case "(":
		v := e.expr()
		e.expect(")")
		return v
	case "EPOCH":
		e.expect("(")
		e.expr()
		e.expect(")")
		out := series{}
		for _, t := range e.rng {
			out[t] = float64(t)
		}
		return mathValue{s: out, isS: true}
	case "FILL":
		e.expect("(")
		x := e.expr()
		e.expect(",")
		out := series{}
		if e.peek() == "REPEAT" {
			e.next()
			var last float64
			seen := false
			for _, t := range e.rng {
				if v, ok := x.s[t]; ok {
					last, seen = v, true
				}
				if seen {
					out[t] = last
				}
			}
		} else {
			c := e.expr()
			for _, t := range e.rng {
				if v, ok := x.s[t]; ok {
					out[t] = v
				} else {
					out[t] = c.scalar
				}
			}
		}
		e.expect(")")
		return mathValue{s: out, isS: true}
	case "MIN", "MAX":
		e.expect("(")
		x := e.expr()
		e.expect(")")
		if !x.isS {
			panic(tok + " of a number")
		}
		first := true
		var v float64
		for _, t := range e.rng {
			if xv, ok := x.s[t]; ok {
				if first || tok == "MIN" && xv < v || tok == "MAX" && xv > v {
					v, first = xv, false
				}
			}
		}
		if first {
			// No value at all: nothing to compare with. (CloudWatch's
			// answer is not documented; an empty series keeps the alarm's
			// state either way.)
			return mathValue{s: series{}, isS: true}
		}
		return mathValue{scalar: v}
	case "DIFF":
		e.expect("(")
		x := e.expr()
		e.expect(")")
		out := series{}
		var prev float64
		seen := false
		for _, t := range e.rng {
			if v, ok := x.s[t]; ok {
				if seen {
					out[t] = v - prev
				}
				prev, seen = v, true
			}
		}
		return mathValue{s: out, isS: true}
	case "IF":
		e.expect("(")
		c := e.expr()
		e.expect(",")
		a := e.expr()
		var b *mathValue
		if e.peek() == "," {
			e.next()
			bv := e.expr()
			b = &bv
		}
		e.expect(")")
		out := series{}
		for t, cv := range c.s {
			switch {
			case cv != 0 && a.isS:
				out[t] = a.s[t] // a missing value of a is 0
			case cv != 0:
				out[t] = a.scalar
			case b != nil && b.isS:
				if v, ok := b.s[t]; ok {
					out[t] = v
				}
			case b != nil:
				out[t] = b.scalar
			}
		}
		return mathValue{s: out, isS: true}
	}
	if tok != "" && tok[0] >= 'a' && tok[0] <= 'z' {
		return mathValue{s: e.eval(tok), isS: true}
	}
	panic("unexpected token " + tok)
}

func (e *mathEval) expect(tok string) {
	if got := e.next(); got != tok {
		panic(fmt.Sprintf("want %q, got %q in %v", tok, got, e.toks))
	}
}

// silenceSim runs the silence alarm over a timeline: the Scheduler's
// firings and the completions of scheduled runs, evaluated every ten minutes.
type silenceSim struct {
	plan     silencePlan
	firings  []time.Time
	runs     []time.Time
	from, to time.Time
}

// states returns the alarm state after each evaluation, and the first time
// it went into ALARM.
func (sim silenceSim) run(t *testing.T) (states []string, firstAlarm time.Time) {
	t.Helper()
	exprs := silenceExpressions(sim.plan)
	state := "INSUFFICIENT_DATA"
	for now := sim.from; now.Before(sim.to); now = now.Add(10 * time.Minute) {
		// The evaluated range: the last Periods hourly buckets, the newest
		// one partial (what has arrived by now).
		newest := now.Truncate(silenceBucket)
		var rng []int64
		for b := newest.Add(-time.Duration(sim.plan.Periods-1) * silenceBucket); !b.After(newest); b = b.Add(silenceBucket) {
			rng = append(rng, b.Unix())
		}
		bucket := func(events []time.Time) series {
			s := series{}
			for _, ev := range events {
				b := ev.Truncate(silenceBucket).Unix()
				if !ev.After(now) && slices.Contains(rng, b) {
					s[b]++
				}
			}
			return s
		}
		e := &mathEval{rng: rng, exprs: exprs, vars: map[string]series{"runs": bucket(sim.runs), "attempts": bucket(sim.firings)}}
		silent := e.eval("silent")
		if len(silent) > 0 {
			state = "OK"
			for _, v := range silent {
				if v >= 1 {
					state = "ALARM"
				}
			}
		}
		if state == "ALARM" && firstAlarm.IsZero() {
			firstAlarm = now
		}
		states = append(states, state)
	}
	return states, firstAlarm
}

// timeline lists a schedule's firings from `from` for `days`, and a run
// completing `runAfter` after each firing except the skipped ones.
func timeline(t *testing.T, expr string, from time.Time, days int, runAfter time.Duration, skip func(i int, f time.Time) bool) (firings, runs []time.Time) {
	t.Helper()
	sched, err := parseSchedule(expr)
	if err != nil {
		t.Fatal(err)
	}
	firings = sched.firings(from, from.AddDate(0, 0, days), time.UTC)
	for i, f := range firings {
		if skip == nil || !skip(i, f) {
			runs = append(runs, f.Add(runAfter))
		}
	}
	return firings, runs
}

func planGap(t *testing.T, expr string) time.Duration {
	t.Helper()
	sched, err := parseSchedule(expr)
	if err != nil {
		t.Fatal(err)
	}
	gap, err := sched.longestGap(time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	return gap
}

func planFor(t *testing.T, expr string) silencePlan {
	t.Helper()
	sched, err := parseSchedule(expr)
	if err != nil {
		t.Fatal(err)
	}
	gap, err := sched.longestGap(time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	return planSilence(Silence{Gap: gap, Slack: silenceSlack(10 * time.Minute)})
}

func TestSilenceAlarmOnSimulatedSchedules(t *testing.T) {
	start := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC) // a Monday
	// The stack is deployed at `start`; the Scheduler's rate schedules fire
	// from their creation, a few minutes later.
	deployed := start.Add(7 * time.Minute)
	slack := silenceSlack(10 * time.Minute)
	tests := []struct {
		schedule string
		days     int
	}{
		{"cron(0 * * * ? *)", 4},
		{"cron(0 3 * * ? *)", 20},
		{"cron(0 3 ? * MON *)", 50},
		{"rate(7 days)", 50},
		{"cron(0 6 ? * MON-FRI *)", 30},
	}
	for _, tc := range tests {
		plan := planFor(t, tc.schedule)
		from := start
		if strings.HasPrefix(tc.schedule, "rate(") {
			from = deployed
		}
		t.Run(tc.schedule+": healthy sweeps, even late within the slack, never alarm", func(t *testing.T) {
			firings, runs := timeline(t, tc.schedule, from, tc.days, slack-time.Minute, nil)
			sim := silenceSim{plan: plan, firings: firings, runs: runs, from: start, to: start.AddDate(0, 0, tc.days)}
			states, first := sim.run(t)
			if !first.IsZero() {
				t.Errorf("ALARM at %v", first)
			}
			// Before the first firing there is no evidence: the alarm stays
			// as created, INSUFFICIENT_DATA, and pages nobody.
			for i, now := 0, start; now.Before(firings[0]); i, now = i+1, now.Add(10*time.Minute) {
				if states[i] != "INSUFFICIENT_DATA" {
					t.Fatalf("at %v, before the first firing, the alarm is %s", now, states[i])
				}
			}
		})
		t.Run(tc.schedule+": when the Scheduler fires and runs stop completing, the alarm goes off within the window", func(t *testing.T) {
			var stopped time.Time
			firings, runs := timeline(t, tc.schedule, from, tc.days, 5*time.Minute, func(i int, f time.Time) bool {
				if i == 3 {
					stopped = f
				}
				return i >= 3
			})
			_, first := silenceSim{plan: plan, firings: firings, runs: runs, from: start, to: start.AddDate(0, 0, tc.days)}.run(t)
			limit := plan.MissedAfter + silenceBucket
			if plan.Stale {
				limit = max(limit, plan.StaleAfter+silenceBucket)
			}
			if first.IsZero() || first.Sub(stopped) < slack || first.Sub(stopped) > limit {
				t.Errorf("ALARM at %v, want between %v and %v after the first unanswered firing %v", first, slack, limit, stopped)
			}
		})
		if plan.MissedAfter >= planGap(t, tc.schedule) {
			// A single missed sweep of a frequent schedule is not silence: the
			// next one completes before the window is over.
			continue
		}
		t.Run(tc.schedule+": a single missed sweep alarms after the slack, and clears after the next run", func(t *testing.T) {
			var missed time.Time
			firings, runs := timeline(t, tc.schedule, from, tc.days, 5*time.Minute, func(i int, f time.Time) bool {
				if i == 2 {
					missed = f
					return true
				}
				return false
			})
			states, first := silenceSim{plan: plan, firings: firings, runs: runs, from: start, to: start.AddDate(0, 0, tc.days)}.run(t)
			if first.IsZero() {
				t.Fatalf("no ALARM for the sweep missed at %v", missed)
			}
			if late := first.Sub(missed); late < slack || late > plan.MissedAfter+silenceBucket {
				t.Errorf("ALARM %v after the missed firing, want between %v and %v", late, slack, plan.MissedAfter+silenceBucket)
			}
			if states[len(states)-1] != "OK" {
				t.Errorf("the alarm ends %s after later sweeps completed, want OK", states[len(states)-1])
			}
		})
		t.Run(tc.schedule+": a fresh stack whose first sweep fails alarms only once that sweep was due", func(t *testing.T) {
			firings, runs := timeline(t, tc.schedule, from, tc.days, 5*time.Minute, func(i int, f time.Time) bool { return i == 0 })
			_, first := silenceSim{plan: plan, firings: firings, runs: runs, from: start, to: firings[1]}.run(t)
			if first.IsZero() || first.Before(firings[0].Add(slack)) {
				t.Errorf("ALARM at %v, want after the first firing %v plus %v", first, firings[0], slack)
			}
		})
	}
	t.Run("a daily schedule that stops firing alarms after the longest gap plus the slack, and stays in ALARM", func(t *testing.T) {
		const expr = "cron(0 3 * * ? *)"
		plan := planFor(t, expr)
		firings, runs := timeline(t, expr, start, 3, 5*time.Minute, nil)
		last := runs[len(runs)-1]
		states, first := silenceSim{plan: plan, firings: firings, runs: runs, from: start, to: start.AddDate(0, 0, 14)}.run(t)
		if first.IsZero() {
			t.Fatal("no ALARM although the sweeps stopped")
		}
		if since := first.Sub(last); since < 24*time.Hour+slack || since > plan.StaleAfter+silenceBucket {
			t.Errorf("ALARM %v after the last run, want between %v and %v", since, 24*time.Hour+slack, plan.StaleAfter+silenceBucket)
		}
		if states[len(states)-1] != "ALARM" {
			t.Errorf("ten days later the alarm is %s, want ALARM", states[len(states)-1])
		}
	})
	t.Run("without the stale check (weekly), a stopped schedule is not seen: the documented limit", func(t *testing.T) {
		const expr = "cron(0 3 ? * MON *)"
		plan := planFor(t, expr)
		if plan.Stale {
			t.Fatal("a weekly schedule was expected not to fit the stale check")
		}
		firings, runs := timeline(t, expr, start, 14, 5*time.Minute, nil)
		_, first := silenceSim{plan: plan, firings: firings, runs: runs, from: start, to: start.AddDate(0, 0, 40)}.run(t)
		if !first.IsZero() {
			t.Errorf("ALARM at %v", first)
		}
	})
}

func TestSilenceExpressionsUseOnlyTheirInputs(t *testing.T) {
	for _, stale := range []bool{true, false} {
		exprs := silenceExpressions(silencePlan{Stale: stale, StaleAfter: 27 * time.Hour, MissedAfter: 3 * time.Hour})
		for id, expr := range exprs {
			for _, tok := range tokenize(expr) {
				if tok[0] >= 'a' && tok[0] <= 'z' && tok != "runs" && tok != "attempts" && exprs[tok] == "" {
					t.Errorf("%s uses %s, which is neither a metric nor an expression", id, tok)
				}
			}
		}
		if _, ok := exprs["stale"]; ok != stale {
			t.Errorf("stale check present = %t, want %t", ok, stale)
		}
	}
}
