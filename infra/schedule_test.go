package main

import (
	"strings"
	"testing"
	"time"
)

func TestLongestGap(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name     string
		schedule string
		tz       string
		want     time.Duration
	}{
		{"hourly cron", "cron(0 * * * ? *)", "UTC", time.Hour},
		{"every 15 minutes", "cron(0/15 * * * ? *)", "UTC", 15 * time.Minute},
		{"daily cron", "cron(0 3 * * ? *)", "UTC", day},
		{"weekly cron", "cron(0 3 ? * MON *)", "UTC", 7 * day},
		{"weekly cron by number (2 = Monday)", "cron(30 2 ? * 2 *)", "UTC", 7 * day},
		{"rate(7 days)", "rate(7 days)", "UTC", 7 * day},
		{"rate(1 hour)", "rate(1 hour)", "UTC", time.Hour},
		{"weekdays leave the weekend out", "cron(0 6 ? * MON-FRI *)", "UTC", 3 * day},
		{"twice a week", "cron(0 3 ? * MON,THU *)", "UTC", 4 * day},
		{"monthly on the 1st: the longest month", "cron(0 3 1 * ? *)", "UTC", 31 * day},
		{"the last day of the month", "cron(0 3 L * ? *)", "UTC", 31 * day},
		{"the last weekday of the month", "cron(0 3 LW * ? *)", "UTC", 33 * day},
		{"the first Monday of the month", "cron(0 3 ? * 2#1 *)", "UTC", 35 * day},
		{"the last Friday of the month", "cron(0 3 ? * 6L *)", "UTC", 35 * day},
		{"the weekday nearest the 15th", "cron(0 3 15W * ? *)", "UTC", 32 * day},
		{"quarterly", "cron(0 3 1 JAN,APR,JUL,OCT ? *)", "UTC", 92 * day},
		// 2027-03-28: clocks go from 02:00 to 03:00 in Berlin; 02:30 does not
		// exist that day and the Scheduler skips it.
		{"daily at 02:30 Berlin time skips the spring-forward day", "cron(30 2 * * ? *)", "Europe/Berlin", 47 * time.Hour},
		// 03:00 exists every day; the autumn day is 25 hours long.
		{"daily at 03:00 Berlin time: the autumn day has 25 hours", "cron(0 3 * * ? *)", "Europe/Berlin", 25 * time.Hour},
		{"weekly in New York across the changes", "cron(0 3 ? * SUN *)", "America/New_York", 7*day + time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sched, err := parseSchedule(tc.schedule)
			if err != nil {
				t.Fatal(err)
			}
			loc, err := time.LoadLocation(tc.tz)
			if err != nil {
				t.Fatal(err)
			}
			got, err := sched.longestGap(loc)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("longest gap of %s in %s = %v, want %v", tc.schedule, tc.tz, got, tc.want)
			}
		})
	}
}

func TestCronFirings(t *testing.T) {
	tests := []struct {
		name, schedule string
		from           string
		want           []string
	}{
		{"the weekday nearest the 1st, a Saturday, is Monday the 3rd", "cron(0 3 1W * ? *)", "2027-05-01",
			[]string{"2027-05-03T03:00"}},
		{"the weekday nearest the 31st, a Sunday, is Friday the 29th", "cron(0 3 31W * ? *)", "2027-10-01",
			[]string{"2027-10-29T03:00"}},
		{"the second Tuesday", "cron(0 9 ? * TUE#2 *)", "2027-06-01", []string{"2027-06-08T09:00"}},
		{"the last Sunday (1L)", "cron(0 9 ? * 1L *)", "2027-06-01", []string{"2027-06-27T09:00"}},
		{"L in day-of-week is Saturday", "cron(0 9 ? * L *)", "2027-06-01", []string{"2027-06-05T09:00", "2027-06-12T09:00", "2027-06-19T09:00", "2027-06-26T09:00"}},
		{"a range with a step", "cron(0 9-17/4 1 * ? *)", "2027-06-01", []string{"2027-06-01T09:00", "2027-06-01T13:00", "2027-06-01T17:00"}},
		{"February 29th only in a leap year", "cron(0 0 29 2 ? *)", "2028-02-01", []string{"2028-02-29T00:00"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sched, err := parseSchedule(tc.schedule)
			if err != nil {
				t.Fatal(err)
			}
			from, _ := time.Parse("2006-01-02", tc.from)
			var got []string
			for _, f := range sched.firings(from, from.AddDate(0, 1, 0), time.UTC) {
				got = append(got, f.Format("2006-01-02T15:04"))
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("firings %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseScheduleRejectsWhatItDoesNotSupport(t *testing.T) {
	tests := []struct{ schedule, want string }{
		{"cron(0 3 * * *)", "six fields"},
		{"cron(0 3 * * ? 2027)", "the year field must be *"},
		{"cron(0 3 * * MON *)", "exactly one of day-of-month and day-of-week must be ?"},
		{"cron(0 3 ? * ? *)", "exactly one of day-of-month and day-of-week must be ?"},
		{"cron(0 25 * * ? *)", `hours "25"`},
		{"cron(0 3 ? * FRI-MON *)", "runs backwards"},
		{"cron(0/0 3 * * ? *)", "the step after / must be"},
		{"cron(0 3 L,15 * ? *)", "stand alone"},
		{"cron(0 3 ? * 2#6 *)", "d#n takes a day"},
		{"cron(0 3 ? * MON#1,FRI *)", "d#n takes a day"},
		{"cron(0 3 32W * ? *)", "nW takes a day"},
		{"cron(0 3 * FOO ? *)", `month "FOO"`},
		{"cron(0 0 29 2 ? *)", "at least twice a year"},
		{"rate(1 days)", "singular for 1"},
		{"rate(2 day)", "singular for 1"},
		{"rate(0 minutes)", "at least 1"},
		{"rate(5 weeks)", "rate(<n> minute[s]|hour[s]|day[s])"},
		{"at(2027-01-01T00:00:00)", "must be cron(…) or rate(…)"},
	}
	for _, tc := range tests {
		t.Run(tc.schedule, func(t *testing.T) {
			sched, err := parseSchedule(tc.schedule)
			if err == nil {
				_, err = sched.longestGap(time.UTC)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestPlanSilence(t *testing.T) {
	slack := silenceSlack(10 * time.Minute) // the default 10-minute timeout: 1h10m
	tests := []struct {
		name                    string
		gap                     time.Duration
		stale                   bool
		staleAfter, missedAfter time.Duration
		periods                 int
	}{
		// Window = gap + 1h10m, rounded up to whole hours, plus the hour a
		// bucket's timestamp may understate an age by.
		{"hourly cron: a window of 2h10m", time.Hour, true, 4 * time.Hour, 3 * time.Hour, 6},
		{"daily cron: a window of 25h10m", 24 * time.Hour, true, 27 * time.Hour, 3 * time.Hour, 29},
		{"weekly cron: 169h10m does not fit in seven days, only the missed-run check remains", 7 * 24 * time.Hour, false, 171 * time.Hour, 3 * time.Hour, 5},
		{"rate(7 days): the same as weekly", 7 * 24 * time.Hour, false, 171 * time.Hour, 3 * time.Hour, 5},
		{"the longest gap that still fits: 6 days 19 hours", 163 * time.Hour, true, 166 * time.Hour, 3 * time.Hour, 168},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := planSilence(Silence{Gap: tc.gap, Slack: slack})
			if p.Stale != tc.stale || p.StaleAfter != tc.staleAfter || p.MissedAfter != tc.missedAfter || p.Periods != tc.periods {
				t.Errorf("plan %+v, want stale %t after %v, missed after %v, %d periods", p, tc.stale, tc.staleAfter, tc.missedAfter, tc.periods)
			}
			if time.Duration(p.Periods)*silenceBucket > maxEvaluatedRange {
				t.Errorf("%d hourly periods exceed CloudWatch's seven days", p.Periods)
			}
		})
	}
}
