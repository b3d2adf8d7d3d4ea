package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"sync"
	"time"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

// orgMemberRole is the member role the emulator lets the bench assume in
// every account with keys (kmslocal's default -roles).
const orgMemberRole = "kms-rotator-member"

// orgResult is the organization figure: member accounts swept side by side,
// each by its own function process (as a Step Functions Map item invokes
// its own Lambda), against the emulator's per-account quotas.
type orgResult struct {
	Targets       int     `json:"targets"`
	KeysPerTarget int     `json:"keysPerTarget"`
	FloorSeconds  float64 `json:"floorSeconds"`
	WallSeconds   float64 `json:"wallSeconds"`
	SlowestSecond float64 `json:"slowestTargetSeconds"`
	Ratio         float64 `json:"ratio"`
	Rotated       int     `json:"rotated"`
	Due           int     `json:"due"`
}

// orgAccount is the i-th member account of the organization figure.
func orgAccount(i int) string { return fmt.Sprintf("2100000000%02d", i+1) }

// orgFleetJSON is the fleet of every member account: the shape of one
// fleet, once per account.
func orgFleetJSON(shape fleetShape, targets int) ([]byte, error) {
	var one []kmsemu.FleetKey
	if err := json.Unmarshal(fleetJSON(shape), &one); err != nil {
		return nil, err
	}
	all := make([]kmsemu.FleetKey, 0, len(one)*targets)
	for i := range targets {
		for _, k := range one {
			k.Account = orgAccount(i)
			all = append(all, k)
		}
	}
	return json.Marshal(all)
}

// benchOrg sweeps o.orgTargets member accounts of o.orgKeys keys each at
// once (orgMaxConcurrency ≥ targets) and compares the wall time with the
// floor of one account: KMS's quotas are per account and Region, so the
// whole organization should take no longer than its slowest account.
func benchOrg(ctx context.Context, o options, tmp string, w io.Writer) (orgResult, error) {
	shape := shapeOf(o.orgKeys, o.dueFraction)
	rotateRate := quotaRotateKeyOnDemand * o.quotaScale
	listRate := quotaListKeyRotations * o.quotaScale
	r := orgResult{Targets: o.orgTargets, KeysPerTarget: o.orgKeys, Due: shape.Due * o.orgTargets,
		FloorSeconds: round(math.Max(float64(shape.Due)/rotateRate, float64(shape.OptedIn)/listRate), 3)}
	fmt.Fprintf(w, "\n== organization: %d member accounts × %d opted-in keys (%d due each), swept side by side\n",
		o.orgTargets, o.orgKeys, shape.Due)
	fleet, err := orgFleetJSON(shape, o.orgTargets)
	if err != nil {
		return r, err
	}
	emu, err := startEmulator(o, fleet)
	if err != nil {
		return r, err
	}
	defer emu.close()
	// One ledger for the organization, as the central account's one
	// table serves every member sweep.
	ldb, err := startLedger(ctx)
	if err != nil {
		return r, err
	}
	defer ldb.Close()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		firstEr error
	)
	start := time.Now()
	for i := range o.orgTargets {
		wg.Go(func() {
			res, _, err := runChild(ctx, emu.url, ldb.URL, rotateRate, filepath.Join(tmp, fmt.Sprintf("org-%d.json", i)), orgAccount(i), "", "", "")
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstEr == nil {
				firstEr = fmt.Errorf("member %s: %w", orgAccount(i), err)
			}
			r.Rotated += res.Summary.Rotated
			r.SlowestSecond = math.Max(r.SlowestSecond, res.WallSeconds)
		})
	}
	wg.Wait()
	if firstEr != nil {
		return r, firstEr
	}
	r.WallSeconds = round(time.Since(start).Seconds(), 3)
	r.SlowestSecond = round(r.SlowestSecond, 3)
	r.Ratio = round(r.WallSeconds/r.FloorSeconds, 3)
	fmt.Fprintf(w, "organization: wall %.2fs (slowest account's sweep %.2fs), one account's floor %.2fs, ratio %.3f (target <= 1.2); rotated %d of %d due\n",
		r.WallSeconds, r.SlowestSecond, r.FloorSeconds, r.Ratio, r.Rotated, r.Due)
	return r, nil
}
