package faults

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kms-rotator/kms-rotator/lambda/rotator"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/harness"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

// The configuration every scenario runs with (ROTATOR_* defaults except the
// pace): a limit of 25 on-demand rotations (KMS's current quota, and the
// emulator's default, so the function's count and KMS's agree), a reserve
// of 2, a 90-day interval.
const (
	limit   = 25
	reserve = 2
)

// class is a group of fleet keys that a fault-free scheduled run treats the
// same way. Keys are told apart by alias: alias/<class>-00001, …
type class struct {
	name string
	// optedIn: the key carries kms-rotator=enabled, so it is a candidate.
	optedIn bool
	// outcome and reason: what a fault-free scheduled run reports.
	outcome rotator.Outcome
	reason  rotator.Reason
	// incOutcome and incReason: what a fault-free incident run selecting
	// every opted-in key reports (no interval, the reserve may be spent).
	incOutcome rotator.Outcome
	incReason  rotator.Reason
	entry      kmsemu.FleetKey
}

func days(n float64) *float64 { return &n }

func onDemand(n int, daysAgo float64) []kmsemu.FleetRotation {
	out := make([]kmsemu.FleetRotation, n)
	for i := range out {
		out[i] = kmsemu.FleetRotation{Type: "ON_DEMAND", DaysAgo: daysAgo + float64(n-i)}
	}
	return out
}

var optIn = map[string]string{"kms-rotator": "enabled"}

// classes builds a fleet of due keys (`due` of them) plus a fixed set of
// keys at every budget and eligibility edge a sweep meets.
func classes(due int) []class {
	return []class{
		{"due", true, rotator.Rotated, "", rotator.Rotated, "", kmsemu.FleetKey{Count: due, CreatedDaysAgo: days(200), Tags: optIn}},
		// Remaining 3 > reserve 2: the last rotation a sweep may spend.
		{"due-last-scheduled", true, rotator.Rotated, "", rotator.Rotated, "", kmsemu.FleetKey{Count: 2, Rotations: onDemand(limit-reserve-1, 100), Tags: optIn}},
		// Remaining 2 = reserve: kept for incidents.
		{"reserved", true, rotator.Skipped, rotator.ReasonBudgetReserved, rotator.Rotated, "", kmsemu.FleetKey{Count: 2, Rotations: onDemand(limit-reserve, 100), Tags: optIn}},
		{"exhausted", true, rotator.Skipped, rotator.ReasonBudgetExhausted, rotator.Skipped, rotator.ReasonBudgetExhausted, kmsemu.FleetKey{Count: 2, Rotations: onDemand(limit, 100), Tags: optIn}},
		{"fresh", true, rotator.Skipped, rotator.ReasonNotDue, rotator.Rotated, "", kmsemu.FleetKey{Count: 8, CreatedDaysAgo: days(10), Tags: optIn}},
		{"disabled", true, rotator.Skipped, rotator.ReasonKeyNotEnabled, rotator.Skipped, rotator.ReasonKeyNotEnabled, kmsemu.FleetKey{Count: 2, CreatedDaysAgo: days(200), KeyState: "Disabled", Tags: optIn}},
		// Due by its 30-day tag, but an automatic rotation begins within
		// 20 minutes: a sweep waits for that free rotation; an incident
		// asks, and KMS answers ConflictException.
		{"auto-soon", true, rotator.Skipped, rotator.ReasonAutomaticRotationSoon, rotator.Skipped, rotator.ReasonRotationInProgress, kmsemu.FleetKey{Count: 1, CreatedDaysAgo: days(89.995),
			RotationPeriodInDays: 90, Tags: map[string]string{"kms-rotator": "enabled", settings.IntervalTagKey: "30"}}},
		// An interval tag under ROTATOR_MIN_INTERVAL_DAYS: sweeps refuse
		// the key; an incident has no interval and rotates it.
		{"tag-below-floor", true, rotator.Failed, rotator.ReasonError, rotator.Rotated, "", kmsemu.FleetKey{Count: 1, CreatedDaysAgo: days(200),
			Tags: map[string]string{"kms-rotator": "enabled", settings.IntervalTagKey: "1"}}},
		// Rotated on demand 10 minutes ago: not due; an incident is inside
		// its cooldown (ROTATOR_INCIDENT_COOLDOWN, 1 h).
		{"recent", true, rotator.Skipped, rotator.ReasonNotDue, rotator.Skipped, rotator.ReasonRecentlyRotated, kmsemu.FleetKey{Count: 2, CreatedDaysAgo: days(200),
			Rotations: []kmsemu.FleetRotation{{Type: "ON_DEMAND", DaysAgo: 10.0 / (24 * 60)}}, Tags: optIn}},
		// Not candidates: a sweep must never touch them.
		{"not-opted-in", false, "", "", "", "", kmsemu.FleetKey{Count: 3, CreatedDaysAgo: days(200)}},
		{"opted-out", false, "", "", "", "", kmsemu.FleetKey{Count: 1, CreatedDaysAgo: days(200), Tags: map[string]string{"kms-rotator": "disabled"}}},
	}
}

// fleetJSON renders classes as a fleet file.
func fleetJSON(t testing.TB, cs []class) string {
	t.Helper()
	var entries []kmsemu.FleetKey
	for _, c := range cs {
		e := c.entry
		e.Alias = "alias/" + c.name
		if e.Count == 0 {
			continue
		}
		entries = append(entries, e)
	}
	b, err := json.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// classOf maps an alias (alias/<class>-00001) back to its class.
func classOf(cs []class, alias string) (class, bool) {
	name, _, _ := strings.Cut(strings.TrimPrefix(alias, "alias/"), "-0")
	for _, c := range cs {
		if c.name == name {
			return c, true
		}
	}
	return class{}, false
}

// scheduledEnv is the function configuration of the suite: defaults except
// a pace and concurrency that keep runs short.
// ledgerTables numbers the ledger tables withLedger creates.
var ledgerTables atomic.Int64

// withLedger sets ROTATOR_LEDGER_TABLE in env to a fresh table in the
// process's dynalite (harness.SharedLedger), which runEngine hands the
// engine as lambda/main.go does; the engines of one scenario share it, as
// the runs of one deployment do.
func withLedger(t *testing.T, env map[string]string) map[string]string {
	t.Helper()
	root, err := harness.FindRoot("")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := harness.SharedLedger(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("faults-ledger-%d", ledgerTables.Add(1))
	if err := srv.CreateLedgerTable(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	env[settings.EnvLedgerTable] = name
	return env
}

func scheduledEnv(extra map[string]string) map[string]string {
	env := map[string]string{
		settings.EnvOnDemandLimit: fmt.Sprint(limit),
		settings.EnvReserve:       fmt.Sprint(reserve),
		settings.EnvIntervalDays:  "90",
		settings.EnvRotateRPS:     "20",
		settings.EnvConcurrency:   "8",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}
