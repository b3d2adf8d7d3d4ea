package rotator

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

func currentMaterial(t *testing.T, h *harness, keyID string) string {
	t.Helper()
	out, err := h.kms.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.KeyMetadata.CurrentKeyMaterialId)
}

func TestImportedKeys(t *testing.T) {
	const staged, bare = "e0000000-0000-4000-8000-0000000000e1", "e0000000-0000-4000-8000-0000000000e2"
	fleet := `[
	 {"keyId":"` + staged + `","alias":"alias/byok-staged","origin":"EXTERNAL","stagedMaterial":true,"createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}},
	 {"keyId":"` + bare + `","alias":"alias/byok-bare","origin":"EXTERNAL","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}}]`
	h := newHarness(t, kmsemu.Options{}, fleet, fastConfig())
	before := currentMaterial(t, h, staged)
	rep := h.run(t, request.Request{Mode: request.ModePlan})
	stagedEntry := byAlias(rep)["alias/byok-staged"]
	if stagedEntry.StagedKeyMaterialID == "" || stagedEntry.KeyMaterialID != before {
		t.Fatalf("plan entry staged %q current %q, want the staged material and the current %q", stagedEntry.StagedKeyMaterialID, stagedEntry.KeyMaterialID, before)
	}
	stagedID := stagedEntry.StagedKeyMaterialID

	rep = h.run(t, request.Request{Mode: request.ModeScheduled})
	checkEntries(t, rep, map[string]want{
		"alias/byok-staged": {Rotated, ReasonNone},
		"alias/byok-bare":   {Skipped, ReasonMaterialNotStaged},
	})
	k := byAlias(rep)["alias/byok-staged"]
	if k.KeyMaterialIDBefore != before {
		t.Errorf("keyMaterialIdBefore %q, want %q", k.KeyMaterialIDBefore, before)
	}
	if got := currentMaterial(t, h, staged); got != stagedID {
		t.Errorf("CurrentKeyMaterialId after the sweep %q, want the staged %q", got, stagedID)
	}
	if k.Completion != "" {
		t.Errorf("a sweep waited for completion (%q); sweeps never wait", k.Completion)
	}
}

func TestIncidentWaitsForTheNewMaterial(t *testing.T) {
	const id = "f0000000-0000-4000-8000-0000000000f1"
	fleet := `[{"keyId":"` + id + `","alias":"alias/k","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}}]`
	for _, tc := range []struct {
		name       string
		wait       time.Duration
		noWait     bool
		completion string
	}{
		{"status clears first, material later → complete with the new material", 10 * time.Second, false, "complete"},
		{"wait shorter than the material's delay → pending", 300 * time.Millisecond, false, "pending"},
		{`"wait": false → no waiting at all`, 10 * time.Second, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fastConfig()
			cfg.IncidentWait = tc.wait
			h := newHarness(t, kmsemu.Options{RotationDelay: 200 * time.Millisecond, MaterialDelay: time.Second}, fleet, cfg)
			before := currentMaterial(t, h, id)
			req := incidentFor(t, false, "alias/k")
			req.NoWait = tc.noWait
			k := h.run(t, req).Keys[0]
			if k.Outcome != Rotated || k.KeyMaterialIDBefore != before || k.Completion != tc.completion {
				t.Fatalf("%s/%s before %q completion %q, want rotated, %q, %q", k.Outcome, k.Reason, k.KeyMaterialIDBefore, k.Completion, before, tc.completion)
			}
			switch tc.completion {
			case "complete":
				now := currentMaterial(t, h, id)
				if k.KeyMaterialID != now || now == before || k.CompletedAt == nil {
					t.Errorf("keyMaterialId %q completedAt %v; KMS's current material %q (was %q)", k.KeyMaterialID, k.CompletedAt, now, before)
				}
			default:
				if k.CompletedAt != nil || k.KeyMaterialID != "" {
					t.Errorf("completedAt %v keyMaterialId %q without a completed wait", k.CompletedAt, k.KeyMaterialID)
				}
			}
		})
	}
}

func TestStuckRotationsAreFlaggedAndCounted(t *testing.T) {
	const id = "f0000000-0000-4000-8000-0000000000f2"
	fleet := `[{"keyId":"` + id + `","alias":"alias/k","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}}]`
	cfg := fastConfig()
	cfg.StuckAfter = time.Millisecond // a rotation older than this is stuck
	h := newHarness(t, kmsemu.Options{RotationDelay: time.Hour}, fleet, cfg)
	if _, err := h.kms.RotateKeyOnDemand(context.Background(), &kms.RotateKeyOnDemandInput{KeyId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	rep := h.run(t, request.Request{Mode: request.ModeReport})
	if k := rep.Keys[0]; !k.Stuck {
		t.Fatalf("entry %+v, want stuck", k)
	}
	if m := emfValues(t, h); m["RotationsStuck"] != 1 {
		t.Errorf("RotationsStuck = %v, want 1", m["RotationsStuck"])
	}
}

func TestSkipIdle(t *testing.T) {
	fleet := `[
	 {"alias":"alias/unused","createdDaysAgo":400,"trackingStartedDaysAgo":400,"tags":{"kms-rotator":"enabled"},"rotations":[{"type":"ON_DEMAND","daysAgo":100}]},
	 {"alias":"alias/used","createdDaysAgo":400,"trackingStartedDaysAgo":400,"lastUsedDaysAgo":1,"tags":{"kms-rotator":"enabled"},"rotations":[{"type":"ON_DEMAND","daysAgo":100}]}]`
	cfg := fastConfig()
	cfg.SkipIdle = true
	h := newHarness(t, kmsemu.Options{}, fleet, cfg)
	rep := h.run(t, request.Request{Mode: request.ModeScheduled})
	checkEntries(t, rep, map[string]want{"alias/unused": {Skipped, ReasonIdle}, "alias/used": {Rotated, ReasonNone}})
	if raw := byAlias(rep)["alias/unused"].LastUsedAt; string(raw) != "null" {
		t.Errorf("idle entry lastUsedAt %s, want null (never used)", raw)
	}
	// Report mode shows lastUsedAt, whatever ROTATOR_SKIP_IDLE says, when
	// asked ("usage": true): GetKeyLastUsage allows 5 calls a second.
	h2 := newHarness(t, kmsemu.Options{}, fleet, fastConfig())
	inv := h2.run(t, request.Request{Mode: request.ModeReport, Usage: true})
	var used string
	if err := json.Unmarshal(byAlias(inv)["alias/used"].LastUsedAt, &used); err != nil || used == "" {
		t.Errorf("report lastUsedAt %s, want the date", byAlias(inv)["alias/used"].LastUsedAt)
	}
	h2.emu.Server.ResetStats()
	inv = h2.run(t, request.Request{Mode: request.ModeReport})
	if raw := byAlias(inv)["alias/used"].LastUsedAt; raw != nil {
		t.Errorf("report without usage: lastUsedAt %s, want none", raw)
	}
	if n := h2.emu.Server.Stats().Op("GetKeyLastUsage").Calls; n != 0 {
		t.Errorf("report without usage called GetKeyLastUsage %d times", n)
	}
}

// KMS tracks a multi-Region key's last use per Region: a primary unused in
// its own Region but busy in a replica's is not idle.
func TestMultiRegionKeyIsIdleOnlyIfEveryReplicaIs(t *testing.T) {
	fleet := `[
	 {"keyId":"mrk-1111111111114111811111111111111a","alias":"alias/mr-busy","multiRegionKeyType":"PRIMARY","createdDaysAgo":400,"trackingStartedDaysAgo":400,"tags":{"kms-rotator":"enabled"},"rotations":[{"type":"ON_DEMAND","daysAgo":100}]},
	 {"region":"eu-west-1","multiRegionKeyType":"REPLICA","primaryAlias":"alias/mr-busy","createdDaysAgo":400,"trackingStartedDaysAgo":400,"lastUsedDaysAgo":1,"tags":{"kms-rotator":"enabled"}},
	 {"keyId":"mrk-2222222222224222822222222222222b","alias":"alias/mr-idle","multiRegionKeyType":"PRIMARY","createdDaysAgo":400,"trackingStartedDaysAgo":400,"tags":{"kms-rotator":"enabled"},"rotations":[{"type":"ON_DEMAND","daysAgo":100}]},
	 {"region":"eu-west-1","multiRegionKeyType":"REPLICA","primaryAlias":"alias/mr-idle","createdDaysAgo":400,"trackingStartedDaysAgo":400,"tags":{"kms-rotator":"enabled"}}]`
	cfg := fastConfig()
	cfg.SkipIdle = true
	h := newHarness(t, kmsemu.Options{}, fleet, cfg)
	rep := h.run(t, request.Request{Mode: request.ModeScheduled})
	checkEntries(t, rep, map[string]want{"alias/mr-busy": {Rotated, ReasonNone}, "alias/mr-idle": {Skipped, ReasonIdle}})
}

// GetKeyLastUsage is paced at its share of its 5-per-second quota.
func TestUsageReportIsPacedAtGetKeyLastUsagesQuota(t *testing.T) {
	fleet := `[{"alias":"alias/k","createdDaysAgo":400,"tags":{"kms-rotator":"enabled"},"count":11}]`
	cfg := fastConfig()
	cfg.RotateRPS = 5 // all of the quota: GetKeyLastUsage at 5 per second
	h := newHarness(t, kmsemu.Options{}, fleet, cfg)
	start := time.Now()
	rep := h.run(t, request.Request{Mode: request.ModeReport, Usage: true})
	// 11 calls at 5 per second with a burst of 1 take at least 2 s; the
	// emulator at KMS's own quota would throttle anything faster.
	if d := time.Since(start); d < 1900*time.Millisecond {
		t.Fatalf("report of %d keys with usage took %v, want at least 2 s at 5 per second", len(rep.Keys), d)
	}
	if n := h.emu.Server.Stats().Op("GetKeyLastUsage").Calls; n != 11 {
		t.Fatalf("GetKeyLastUsage calls = %d, want 11", n)
	}
}

// Keys that fall due, and imported material that expires, within
// ROTATOR_NOTICE_DAYS are listed as upcoming and counted; material
// expiring soon raises a result event's notice; the owner tag travels.
func TestNoticesAndOwners(t *testing.T) {
	fleet := `[
	 {"alias":"alias/soon","createdDaysAgo":400,"rotations":[{"type":"ON_DEMAND","daysAgo":80}],"tags":{"kms-rotator":"enabled","kms-rotator:owner":"payments"}},
	 {"alias":"alias/later","createdDaysAgo":400,"rotations":[{"type":"ON_DEMAND","daysAgo":30}],"tags":{"kms-rotator":"enabled"}},
	 {"alias":"alias/byok-expiring","origin":"EXTERNAL","createdDaysAgo":400,"materialExpiresInDays":10,"rotations":[{"type":"ON_DEMAND","daysAgo":30}],"tags":{"kms-rotator":"enabled","kms-rotator:owner":"cards"}},
	 {"alias":"alias/byok-staged-not-due","origin":"EXTERNAL","stagedMaterial":true,"createdDaysAgo":400,"materialExpiresInDays":5,"rotations":[{"type":"ON_DEMAND","daysAgo":30}],"tags":{"kms-rotator":"enabled","kms-rotator:owner":"cards"}}]`
	h := newHarness(t, kmsemu.Options{}, fleet, fastConfig())
	ev := &fakeEvents{}
	h.engine.SetEvents(ev)
	rep := h.run(t, request.Request{Mode: request.ModeScheduled})
	soon, later, byok := byAlias(rep)["alias/soon"], byAlias(rep)["alias/later"], byAlias(rep)["alias/byok-expiring"]
	if !soon.DueSoon || later.DueSoon || soon.Owner != "payments" || later.Owner != "" {
		t.Errorf("due in 10 days: dueSoon %v owner %q; due in 60: dueSoon %v owner %q; want true payments, false none",
			soon.DueSoon, soon.Owner, later.DueSoon, later.Owner)
	}
	if !byok.MaterialExpiringSoon || byok.Owner != "cards" {
		t.Errorf("imported material expiring in 10 days: materialExpiringSoon %v owner %q, want true cards", byok.MaterialExpiringSoon, byok.Owner)
	}
	if rep.Summary.DueSoon != 1 || rep.Summary.MaterialExpiringSoon != 2 {
		t.Errorf("summary dueSoon %d materialExpiringSoon %d, want 1 and 2", rep.Summary.DueSoon, rep.Summary.MaterialExpiringSoon)
	}
	if k := byAlias(rep)["alias/byok-staged-not-due"]; k.Reason != ReasonNotDue || !k.MaterialExpiringSoon {
		t.Errorf("staged imported key not due: %s/%s expiring %v, want not-due and expiring", k.Outcome, k.Reason, k.MaterialExpiringSoon)
	}
	m := h.metrics.String()
	if !strings.Contains(m, `"KeysDueSoon":1`) || !strings.Contains(m, `"MaterialExpiringSoon":2`) {
		t.Errorf("metrics lack KeysDueSoon 1 or MaterialExpiringSoon 2: %s", m)
	}
	if len(ev.inputs) != 1 || !strings.Contains(aws.ToString(ev.inputs[0].Entries[0].Detail), `"notice":"the imported key material of 2 key(s) expires within 14 days`) {
		t.Fatalf("a sweep without failures but with material expiring soon: %d result events, want 1 with its notice", len(ev.inputs))
	}
	// The not-due key whose material expires is in the event, for its
	// owner's rule.
	if d := aws.ToString(ev.inputs[0].Entries[0].Detail); !strings.Contains(d, `"alias":"alias/byok-staged-not-due"`) {
		t.Errorf("the result event leaves out the not-due key whose material expires: %s", d)
	}
	// Off: no notice, no upcoming.
	cfg := fastConfig()
	cfg.NoticeDays = 0
	h2 := newHarness(t, kmsemu.Options{}, fleet, cfg)
	if rep := h2.run(t, request.Request{Mode: request.ModeScheduled}); rep.Summary.DueSoon != 0 || rep.Summary.MaterialExpiringSoon != 0 {
		t.Errorf("ROTATOR_NOTICE_DAYS=0: %+v, want no upcoming keys", rep.Summary)
	}
}
