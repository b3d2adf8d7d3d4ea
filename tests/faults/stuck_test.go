package faults

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/rotator"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu/emutest"
	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

// TestStuckRotationIsFlagged: KMS has kept another caller's on-demand
// rotation of alias/stuck in progress for two minutes, longer than
// ROTATOR_STUCK_AFTER at its minimum of one minute. Every mode
// flags the key "stuck" and counts it in RotationsStuck; with the default
// (24 h) nothing is stuck. The emulator's clock is set two minutes back for
// the one RotateKeyOnDemand call, so the rotation started "two minutes ago"
// without the test waiting for it.
func TestStuckRotationIsFlagged(t *testing.T) {
	const fleet = `[
 {"alias":"alias/stuck","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}},
 {"alias":"alias/plain","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}},
 {"alias":"alias/fresh","createdDaysAgo":5,"tags":{"kms-rotator":"enabled"}}]`
	var skip atomic.Int64
	emu := emutest.Start(t, kmsemu.Options{RotationDelay: time.Hour, Now: func() time.Time { return time.Now().Add(time.Duration(skip.Load())) }}, fleet)
	c := emu.KMS(region)
	d, err := c.DescribeKey(t.Context(), &kms.DescribeKeyInput{KeyId: aws.String("alias/stuck")})
	if err != nil {
		t.Fatal(err)
	}
	skip.Store(int64(-2 * time.Minute))
	if _, err := c.RotateKeyOnDemand(t.Context(), &kms.RotateKeyOnDemandInput{KeyId: d.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	skip.Store(0)
	stuckARN := aws.ToString(d.KeyMetadata.Arn)

	config := func(t *testing.T, extra map[string]string) settings.Config {
		cfg, err := settings.LoadConfig(mapEnv(withLedger(t, scheduledEnv(extra))))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	incident := request.Request{Mode: request.ModeIncident, Tag: &request.Tag{Key: "kms-rotator", Value: "enabled"}, Reason: "INC-1204 stuck?", NoWait: true}
	requests := []request.Request{{Mode: request.ModeReport, DryRun: true}, {Mode: request.ModePlan, DryRun: true}, incident, {Mode: request.ModeScheduled}}
	for _, req := range requests {
		t.Run(string(req.Mode)+" with ROTATOR_STUCK_AFTER=1m flags it", func(t *testing.T) {
			r, err := runEngine(context.Background(), emu.URL, config(t, map[string]string{settings.EnvStuckAfter: "1m"}), req, string(req.Mode), false)
			if err != nil {
				t.Fatal(err)
			}
			stuck := 0
			for _, k := range r.report.Keys {
				if k.Stuck {
					stuck++
				}
				switch {
				case k.KeyARN == stuckARN && (!k.Stuck || k.Outcome != rotator.Skipped):
					t.Errorf("alias/stuck: %s/%s stuck %v, want skipped and stuck (in progress for 2 minutes)", k.Outcome, k.Reason, k.Stuck)
				case k.KeyARN != stuckARN && k.Stuck:
					t.Errorf("%s: stuck, but no rotation of it has been in progress that long", k.Alias)
				}
			}
			if stuck != 1 {
				t.Errorf("%d stuck entries, want 1", stuck)
			}
			if v, ok := mainRecord(t, r).Value("RotationsStuck"); !ok || v != 1 {
				t.Errorf("RotationsStuck = %v (present %v), want 1", v, ok)
			}
			c := oracle.Documented
			c.Reserve = reserve
			for _, p := range c.CheckMetrics(r.emf, r.judged) {
				t.Errorf("metrics: %s", p)
			}
			for _, p := range oracle.CheckReport(r.judged.Raw) {
				t.Errorf("report: %s", p)
			}
		})
	}
	t.Run("report with the default ROTATOR_STUCK_AFTER (24h) flags nothing", func(t *testing.T) {
		r, err := runEngine(context.Background(), emu.URL, config(t, nil), request.Request{Mode: request.ModeReport, DryRun: true}, "report-default", false)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range r.report.Keys {
			if k.Stuck {
				t.Errorf("%s: stuck after 2 minutes with the 24 h default", k.Alias)
			}
		}
		if v, ok := mainRecord(t, r).Value("RotationsStuck"); ok && v != 0 {
			t.Errorf("RotationsStuck = %v, want 0", v)
		}
	})
}

// mainRecord returns the run's EMF record with dimensions [Mode].
func mainRecord(t *testing.T, r run) oracle.EMF {
	t.Helper()
	for _, rec := range r.emf {
		if rec.Dimension("Reason") == "" {
			if _, ok := rec.Value("KeysCandidate"); ok {
				return rec
			}
		}
	}
	t.Fatalf("%s: no EMF record with dimensions [Mode]", r.name)
	return oracle.EMF{}
}
