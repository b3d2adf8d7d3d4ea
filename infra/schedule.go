package main

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A schedule expression of EventBridge Scheduler, rate(…) or cron(…)
// (https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html),
// parsed far enough to list when it fires: the silence alarm watches the
// longest gap between two firings.
//
// Cron has six fields — minutes hours day-of-month month day-of-week year —
// with the wildcards , - * / in every field, ? in day-of-month and
// day-of-week (exactly one of the two is ?), L and W in day-of-month (L, LW,
// 15W), L and # in day-of-week (L, 6L, 2#1), JAN–DEC and SUN–SAT (1 = SUN).
// L, W and # stand alone in their field; the year must be *, because a sweep
// schedule that ends would leave the silence alarm paging for ever.

// schedule is a parsed rate or cron expression.
type schedule struct {
	rate time.Duration // rate(…); zero for cron
	cron *cronExpr
}

// cronExpr holds the matching sets of a cron expression.
type cronExpr struct {
	minutes, hours, months []bool // indexed by value
	dom                    domSpec
	dow                    dowSpec
	domAny, dowAny         bool // the field is ?
}

// domSpec is the day-of-month field: a set of days, or L, LW, nW.
type domSpec struct {
	days        []bool // 1..31
	last        bool   // L
	lastWeekday bool   // LW
	nearest     int    // nW: the weekday nearest to day n
}

// dowSpec is the day-of-week field (1 = Sunday): a set of days, the last
// given weekday of the month (6L), or the nth given weekday (2#1).
type dowSpec struct {
	days    []bool // 1..7
	lastOf  int    // dL
	nthDay  int    // d#n: the day
	nthWeek int    // d#n: n
}

var (
	rateExprRE = regexp.MustCompile(`^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$`)
	monthNames = []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}
	dayNames   = []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}
)

// parseSchedule parses a rate(…) or cron(…) expression; errors say what is
// wrong in the user's terms.
func parseSchedule(expr string) (schedule, error) {
	switch {
	case strings.HasPrefix(expr, "rate("):
		m := rateExprRE.FindStringSubmatch(expr)
		if m == nil {
			return schedule{}, errors.New("a rate is rate(<n> minute[s]|hour[s]|day[s]), e.g. rate(7 days)")
		}
		n, err := strconv.Atoi(m[1])
		if err != nil || n < 1 {
			return schedule{}, errors.New("the rate must be a whole number of at least 1")
		}
		// "If the value is equal to 1, then the unit must be singular";
		// more takes the plural (schedule-types.html, rate-based schedules).
		if plural := strings.HasSuffix(m[2], "s"); plural != (n > 1) {
			return schedule{}, fmt.Errorf("write rate(1 %s) or rate(%d %ss): the unit is singular for 1 and plural otherwise",
				strings.TrimSuffix(m[2], "s"), max(n, 2), strings.TrimSuffix(m[2], "s"))
		}
		unit := map[byte]time.Duration{'m': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour}[m[2][0]]
		return schedule{rate: time.Duration(n) * unit}, nil
	case strings.HasPrefix(expr, "cron(") && strings.HasSuffix(expr, ")"):
		c, err := parseCron(strings.Fields(expr[len("cron(") : len(expr)-1]))
		if err != nil {
			return schedule{}, err
		}
		return schedule{cron: c}, nil
	}
	return schedule{}, errors.New("must be cron(…) or rate(…)")
}

func parseCron(f []string) (*cronExpr, error) {
	if len(f) != 6 {
		return nil, fmt.Errorf("a cron expression has six fields (minutes hours day-of-month month day-of-week year), not %d", len(f))
	}
	c := &cronExpr{}
	var err error
	if c.minutes, err = parseSet("minutes", f[0], 0, 59, nil); err != nil {
		return nil, err
	}
	if c.hours, err = parseSet("hours", f[1], 0, 23, nil); err != nil {
		return nil, err
	}
	if c.months, err = parseSet("month", f[3], 1, 12, monthNames); err != nil {
		return nil, err
	}
	if f[5] != "*" {
		return nil, fmt.Errorf("the year field must be * (%q would end the sweeps, and the silence alarm would page from then on)", f[5])
	}
	c.domAny, c.dowAny = f[2] == "?", f[4] == "?"
	if c.domAny == c.dowAny {
		return nil, errors.New("exactly one of day-of-month and day-of-week must be ? (e.g. cron(0 3 * * ? *) or cron(0 3 ? * MON *))")
	}
	if !c.domAny {
		if c.dom, err = parseDOM(f[2]); err != nil {
			return nil, err
		}
	}
	if !c.dowAny {
		if c.dow, err = parseDOW(f[4]); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func parseDOM(v string) (domSpec, error) {
	switch {
	case v == "L":
		return domSpec{last: true}, nil
	case v == "LW":
		return domSpec{lastWeekday: true}, nil
	case strings.HasSuffix(v, "W"):
		n, err := strconv.Atoi(strings.TrimSuffix(v, "W"))
		if err != nil || n < 1 || n > 31 {
			return domSpec{}, fmt.Errorf("day-of-month %q: nW takes a day from 1 to 31 (the weekday nearest to it), e.g. 15W", v)
		}
		return domSpec{nearest: n}, nil
	case strings.ContainsAny(v, "LW#"):
		return domSpec{}, fmt.Errorf("day-of-month %q: L, LW and nW stand alone in the field", v)
	}
	days, err := parseSet("day-of-month", v, 1, 31, nil)
	return domSpec{days: days}, err
}

func parseDOW(v string) (dowSpec, error) {
	if v == "L" {
		// The last day of the week: Saturday (1 = Sunday).
		return dowSpec{days: setOf(7, 7)}, nil
	}
	if strings.HasSuffix(v, "L") {
		d, err := value(strings.TrimSuffix(v, "L"), 1, 7, dayNames)
		if err != nil {
			return dowSpec{}, fmt.Errorf("day-of-week %q: dL takes a day (1–7 or SUN–SAT), e.g. 6L for the last Friday of the month", v)
		}
		return dowSpec{lastOf: d}, nil
	}
	if d, n, ok := strings.Cut(v, "#"); ok {
		day, err := value(d, 1, 7, dayNames)
		week, err2 := strconv.Atoi(n)
		if err != nil || err2 != nil || week < 1 || week > 5 {
			return dowSpec{}, fmt.Errorf("day-of-week %q: d#n takes a day (1–7 or SUN–SAT) and a week from 1 to 5, e.g. 2#1 for the first Monday", v)
		}
		return dowSpec{nthDay: day, nthWeek: week}, nil
	}
	if strings.ContainsAny(v, "LW") {
		return dowSpec{}, fmt.Errorf("day-of-week %q: L, dL and d#n stand alone in the field", v)
	}
	days, err := parseSet("day-of-week", v, 1, 7, dayNames)
	return dowSpec{days: days}, err
}

// parseSet parses a list of values, ranges (a-b) and steps (*/n, a/n,
// a-b/n) into a set indexed by value.
func parseSet(field, v string, lo, hi int, names []string) ([]bool, error) {
	set := make([]bool, hi+1)
	for _, part := range strings.Split(v, ",") {
		from, to, step := lo, hi, 1
		rng, st, hasStep := strings.Cut(part, "/")
		if hasStep {
			n, err := strconv.Atoi(st)
			if err != nil || n < 1 || n > hi {
				return nil, fmt.Errorf("%s %q: the step after / must be a number from 1 to %d", field, v, hi)
			}
			step = n
		}
		switch {
		case rng == "*":
		case strings.Contains(rng, "-"):
			a, b, _ := strings.Cut(rng, "-")
			var err error
			if from, err = value(a, lo, hi, names); err != nil {
				return nil, fmt.Errorf("%s %q: %v", field, v, err)
			}
			if to, err = value(b, lo, hi, names); err != nil {
				return nil, fmt.Errorf("%s %q: %v", field, v, err)
			}
			if from > to {
				return nil, fmt.Errorf("%s %q: the range %s runs backwards; write it as two ranges", field, v, rng)
			}
		default:
			n, err := value(rng, lo, hi, names)
			if err != nil {
				return nil, fmt.Errorf("%s %q: %v", field, v, err)
			}
			from = n
			if !hasStep {
				to = n
			}
		}
		for i := from; i <= to; i += step {
			set[i] = true
		}
	}
	return set, nil
}

// value parses one number or name of a field.
func value(v string, lo, hi int, names []string) (int, error) {
	if i := slices.Index(names, strings.ToUpper(v)); i >= 0 {
		return lo + i, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		if names != nil {
			return 0, fmt.Errorf("%q is not %d–%d or %s–%s", v, lo, hi, names[0], names[len(names)-1])
		}
		return 0, fmt.Errorf("%q is not a number from %d to %d", v, lo, hi)
	}
	return n, nil
}

func setOf(lo, hi int) []bool {
	s := make([]bool, hi+1)
	for i := lo; i <= hi; i++ {
		s[i] = true
	}
	return s
}

// matchDay says whether the cron fires on the local calendar day d.
func (c *cronExpr) matchDay(d time.Time) bool {
	if !c.months[d.Month()] {
		return false
	}
	last := daysIn(d.Year(), d.Month())
	if !c.domAny {
		switch dom := c.dom; {
		case dom.last:
			return d.Day() == last
		case dom.lastWeekday:
			return d.Day() == nearestWeekday(d.Year(), d.Month(), last)
		case dom.nearest > 0:
			return dom.nearest <= last && d.Day() == nearestWeekday(d.Year(), d.Month(), dom.nearest)
		default:
			return dom.days[d.Day()]
		}
	}
	wd := int(d.Weekday()) + 1 // 1 = Sunday
	switch dow := c.dow; {
	case dow.lastOf > 0:
		return wd == dow.lastOf && d.Day()+7 > last
	case dow.nthDay > 0:
		return wd == dow.nthDay && (d.Day()-1)/7+1 == dow.nthWeek
	default:
		return dow.days[wd]
	}
}

// nearestWeekday is the weekday (Monday–Friday) nearest to day n of the
// month, without leaving the month (the W wildcard).
func nearestWeekday(year int, month time.Month, n int) int {
	switch time.Date(year, month, n, 0, 0, 0, 0, time.UTC).Weekday() {
	case time.Saturday:
		if n == 1 {
			return 3 // Monday the 3rd
		}
		return n - 1
	case time.Sunday:
		if n == daysIn(year, month) {
			return n - 2 // Friday
		}
		return n + 1
	}
	return n
}

func daysIn(year int, month time.Month) int {
	return time.Date(year, month+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// firings lists when the schedule fires in [from, to), in loc. A local time
// that does not exist (the hour skipped when daylight saving time starts) is
// skipped, as EventBridge Scheduler skips it; a local time that occurs
// twice fires once (schedule-types.html above, "time zones" and daylight
// saving time; https://repost.aws/knowledge-center/eventbridge-scheduler-adjust-dst).
// A rate fires every period from `from` on: its phase is the moment the
// schedule is created, which no template knows, and does not change a gap.
func (s schedule) firings(from, to time.Time, loc *time.Location) []time.Time {
	var out []time.Time
	if s.rate > 0 {
		for t := from; t.Before(to); t = t.Add(s.rate) {
			out = append(out, t)
		}
		return out
	}
	from, to = from.In(loc), to.In(loc)
	for d := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, loc); d.Before(to); d = time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc) {
		if !s.cron.matchDay(d) {
			continue
		}
		for h, okH := range s.cron.hours {
			for m, okM := range s.cron.minutes {
				if !okH || !okM {
					continue
				}
				t := time.Date(d.Year(), d.Month(), d.Day(), h, m, 0, 0, loc)
				if t.Hour() != h || t.Minute() != m || t.Day() != d.Day() {
					continue // does not exist on this day
				}
				if !t.Before(from) && t.Before(to) {
					out = append(out, t)
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return slices.CompactFunc(out, func(a, b time.Time) bool { return a.Equal(b) })
}

// gapYears is the stretch the longest gap is measured over: two calendar
// years, one of them a leap year, so that every month length, weekday
// pattern and daylight-saving change of a year is seen, with the turn of
// the year in between. Fixed, so a synth does not depend on the day it runs.
var gapYears = [2]time.Time{time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC)}

// longestGap is the longest time between two consecutive firings of the
// schedule over gapYears, evaluated in loc.
func (s schedule) longestGap(loc *time.Location) (time.Duration, error) {
	_, longest, err := s.gaps(loc)
	return longest, err
}

// gaps are the shortest and the longest time between two consecutive
// firings of the schedule over gapYears, evaluated in loc.
func (s schedule) gaps(loc *time.Location) (shortest, longest time.Duration, err error) {
	if s.rate > 0 {
		return s.rate, s.rate, nil
	}
	from := time.Date(gapYears[0].Year(), 1, 1, 0, 0, 0, 0, loc)
	to := time.Date(gapYears[1].Year(), 1, 1, 0, 0, 0, 0, loc)
	f := s.firings(from, to, loc)
	if len(f) < 4 {
		return 0, 0, fmt.Errorf("fires %d times in %d–%d; a sweep schedule must fire at least twice a year", len(f), from.Year(), to.Year()-1)
	}
	shortest = to.Sub(from)
	for i := 1; i < len(f); i++ {
		g := f[i].Sub(f[i-1])
		longest, shortest = max(longest, g), min(shortest, g)
	}
	// Across the end of the period: from its last firing to the next one.
	next := s.firings(to, to.AddDate(1, 0, 0), loc)
	if len(next) > 0 {
		g := next[0].Sub(f[len(f)-1])
		longest, shortest = max(longest, g), min(shortest, g)
	}
	return shortest, longest, nil
}
