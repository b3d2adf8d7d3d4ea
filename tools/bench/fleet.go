package main

import (
	"encoding/json"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

// fleetShape is the composition of a benchmark fleet of n opted-in keys:
// about 10 % due (-due-fraction), 5 % ineligible (skipped after DescribeKey), the rest
// rotated recently (not due), plus 10 % of n keys that are tagged but not
// opted in (GetResources never returns them to the engine).
type fleetShape struct {
	OptedIn, Due, Ineligible, NotDue, NotOptedIn int
}

func shapeOf(n int, dueFraction float64) fleetShape {
	s := fleetShape{OptedIn: n, Due: int(float64(n) * dueFraction), Ineligible: n / 20, NotOptedIn: n / 10}
	s.NotDue = n - s.Due - s.Ineligible
	return s
}

// Total is every key in the emulator.
func (s fleetShape) Total() int { return s.OptedIn + s.NotOptedIn }

// fleetJSON renders the shape as a kmslocal fleet file using the "count"
// extension. Every key has an alias (so ListAliases pages are real work)
// and was created 400 days ago; the interval is the default 90 days.
func fleetJSON(s fleetShape) []byte {
	optIn := map[string]string{"kms-rotator": "enabled", "team": "bench"}
	days := func(d float64) *float64 { return &d }
	var entries []kmsemu.FleetKey
	add := func(e kmsemu.FleetKey, count int) {
		if count <= 0 {
			return
		}
		e.Count = count
		e.CreatedDaysAgo = days(400)
		entries = append(entries, e)
	}
	// Due: the newest rotation is 120 days old; 1 of 10 on-demand rotations
	// used, so the budget allows a scheduled rotation.
	add(kmsemu.FleetKey{Alias: "alias/bench-due", Tags: optIn,
		Rotations: []kmsemu.FleetRotation{{Type: "AUTOMATIC", DaysAgo: 300}, {Type: "ON_DEMAND", DaysAgo: 120}}}, s.Due)
	// Not due: rotated 30 days ago (half on demand, half automatically).
	add(kmsemu.FleetKey{Alias: "alias/bench-fresh-od", Tags: optIn,
		Rotations: []kmsemu.FleetRotation{{Type: "ON_DEMAND", DaysAgo: 200}, {Type: "ON_DEMAND", DaysAgo: 30}}}, s.NotDue/2)
	add(kmsemu.FleetKey{Alias: "alias/bench-fresh-auto", Tags: optIn,
		Rotations: []kmsemu.FleetRotation{{Type: "AUTOMATIC", DaysAgo: 30}}}, s.NotDue-s.NotDue/2)
	// Ineligible, four kinds, decided after DescribeKey alone.
	q := s.Ineligible / 4
	add(kmsemu.FleetKey{Alias: "alias/bench-rsa", Tags: optIn, KeySpec: "RSA_2048", KeyUsage: "SIGN_VERIFY"}, q)
	add(kmsemu.FleetKey{Alias: "alias/bench-hmac", Tags: optIn, KeySpec: "HMAC_256", KeyUsage: "GENERATE_VERIFY_MAC"}, q)
	add(kmsemu.FleetKey{Alias: "alias/bench-imported", Tags: optIn, Origin: "EXTERNAL"}, q)
	add(kmsemu.FleetKey{Alias: "alias/bench-disabled", Tags: optIn, KeyState: "Disabled"}, s.Ineligible-3*q)
	// Not opted in: tagged, but not with the opt-in tag.
	add(kmsemu.FleetKey{Alias: "alias/bench-other", Tags: map[string]string{"team": "bench"},
		Rotations: []kmsemu.FleetRotation{{Type: "AUTOMATIC", DaysAgo: 200}}}, s.NotOptedIn)
	b, err := json.Marshal(entries)
	if err != nil {
		panic(err) // static shapes; cannot fail
	}
	return b
}
