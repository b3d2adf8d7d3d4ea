package main

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu/emutest"
)

func TestShapeOf(t *testing.T) {
	for _, tc := range []struct {
		n                                 int
		due                               float64
		wantDue, wantInel, wantNotOptedIn int
	}{
		{1000, 0.10, 100, 50, 100},
		{10000, 0.10, 1000, 500, 1000},
		{10000, 0.01, 100, 500, 1000},
		{37, 0.10, 3, 1, 3},
	} {
		t.Run("the parts of the fleet add up", func(t *testing.T) {
			s := shapeOf(tc.n, tc.due)
			if s.Due != tc.wantDue || s.Ineligible != tc.wantInel || s.NotOptedIn != tc.wantNotOptedIn {
				t.Fatalf("shapeOf(%d, %g) = %+v", tc.n, tc.due, s)
			}
			if s.Due+s.Ineligible+s.NotDue != s.OptedIn || s.Total() != tc.n+tc.wantNotOptedIn {
				t.Fatalf("shapeOf(%d, %g) = %+v does not add up", tc.n, tc.due, s)
			}
		})
	}
}

// TestFleetAndBaseline loads a small bench fleet into the emulator and runs
// the naive baseline on it: it must find and rotate exactly the due keys,
// and a sampled run must say so and extrapolate.
func TestFleetAndBaseline(t *testing.T) {
	shape := shapeOf(80, 0.10)
	cfg := settings.DefaultConfig()
	for _, tc := range []struct {
		name        string
		sample      int
		wantChecked int
		wantRotated int
		wantSampled bool
	}{
		{"the whole fleet rotates every due key", 0, shape.Total(), shape.Due, false},
		{"a sample is marked and extrapolated", 10, 10, -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			emu := emutest.Start(t, kmsemu.Options{}, string(fleetJSON(shape)))
			res, err := runBaseline(context.Background(), emu.KMS("us-east-1"), cfg.TagKey, cfg.TagValue,
				cfg.IntervalDays, cfg.OnDemandLimit, cfg.Reserve, tc.sample)
			if err != nil {
				t.Fatal(err)
			}
			if res.Keys != shape.Total() || res.Checked != tc.wantChecked || res.Sampled != tc.wantSampled {
				t.Fatalf("baseline %+v, want %d keys, %d checked, sampled %v", res, shape.Total(), tc.wantChecked, tc.wantSampled)
			}
			if tc.wantRotated >= 0 && res.Rotated != tc.wantRotated {
				t.Fatalf("baseline rotated %d keys, want the %d due", res.Rotated, tc.wantRotated)
			}
			if res.Sampled && res.EstimatedSeconds <= res.WallSeconds {
				t.Fatalf("extrapolated %gs for %d keys from %gs for %d", res.EstimatedSeconds, res.Keys, res.WallSeconds, res.Checked)
			}
			if got := emu.Server.Stats().Op("RotateKeyOnDemand").Calls; int(got) != res.Rotated {
				t.Fatalf("emulator saw %d rotations, baseline reports %d", got, res.Rotated)
			}
		})
	}
}

func TestOrgFleetRepeatsTheShapeInEveryMemberAccount(t *testing.T) {
	shape := shapeOf(100, 0.1)
	b, err := orgFleetJSON(shape, 3)
	if err != nil {
		t.Fatal(err)
	}
	var keys []kmsemu.FleetKey
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatal(err)
	}
	perAccount := map[string]int{}
	for _, k := range keys {
		perAccount[k.Account] += max(k.Count, 1)
	}
	if len(perAccount) != 3 {
		t.Fatalf("accounts %v, want 3", perAccount)
	}
	for i := range 3 {
		if n := perAccount[orgAccount(i)]; n != shape.Total() {
			t.Errorf("account %s has %d keys, want %d", orgAccount(i), n, shape.Total())
		}
	}
}

// stepClient answers each request when the test releases it.
type stepClient struct{ entered chan chan struct{} }

func (c stepClient) Do(*http.Request) (*http.Response, error) {
	release := make(chan struct{})
	c.entered <- release
	<-release
	return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
}

func TestLedgerTimerCountsTheTimeACallIsInFlightNotTheirSum(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(0, 0)
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	next := stepClient{entered: make(chan chan struct{})}
	timer := &ledgerTimer{next: next, now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }}
	var wg sync.WaitGroup
	send := func() chan struct{} {
		wg.Go(func() { _, _ = timer.Do(&http.Request{}) })
		return <-next.entered
	}
	a := send() // 0-30 ms
	advance(10 * time.Millisecond)
	b := send() // 10-40 ms
	advance(20 * time.Millisecond)
	close(a)
	advance(10 * time.Millisecond)
	close(b)
	wg.Wait()
	advance(60 * time.Millisecond)
	c := send() // 100-105 ms
	advance(5 * time.Millisecond)
	close(c)
	wg.Wait()
	// The three calls last 30+30+5 = 65 ms; one was in flight for 45.
	if timer.calls != 3 || timer.busy != 45*time.Millisecond {
		t.Fatalf("calls %d, busy %v; want 3 calls, 45ms in flight", timer.calls, timer.busy)
	}
}
