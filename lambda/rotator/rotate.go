package rotator

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kms-rotator/kms-rotator/lambda/ledger"
)

// rotate is the rotation stage of one due key: pace, re-check, rotate once,
// and after an ambiguous failure look for the rotation instead of trying
// again (docs/design.md "Safety rules").
func (r *run) rotate(ctx context.Context, it *item) {
	if r.pastCutoff() {
		r.deferKey(it)
		return
	}
	// Wait fails at once when the token would come after the deadline.
	wctx := ctx
	if !r.cutoff.IsZero() {
		var cancel context.CancelFunc
		wctx, cancel = context.WithDeadline(ctx, r.cutoff)
		defer cancel()
	}
	if err := r.e.pace.rotate.Wait(wctx); err != nil {
		r.deferKey(it)
		return
	}
	// Re-check right before rotating: another run (a duplicate
	// EventBridge delivery, an incident) may be rotating the key now, or
	// have rotated it since its history was read — even a moment ago, as
	// KMS may complete a rotation within a second. Status first, then the
	// history: a rotation in progress at the first read shows there, one
	// that completes before the second shows in the history, and one
	// still in progress when ours arrives gets ConflictException. The one
	// rotation neither read can see is another run's that starts after
	// the status read and completes before our RotateKeyOnDemand arrives:
	// a whole rotation within about two round trips (tests/faults
	// documents it).
	if err := r.fetch.status(ctx, it); err != nil {
		r.failed(it, opGetKeyRotationStatus, err, false)
		return
	}
	if err := r.fetch.history(ctx, it); err != nil {
		r.failed(it, opListKeyRotations, err, false)
		return
	}
	if d := Decide(it.facts, r.e.now(), r.e.cfg); d.Action != Rotate {
		r.decided(it, d)
		return
	}
	before := observation{onDemand: it.facts.History.OnDemand, material: it.facts.History.CurrentMaterial}
	if before.material == "" && it.facts.Meta != nil {
		before.material = it.facts.Meta.MaterialID // DescribeKey's CurrentKeyMaterialId
	}
	it.facts.MaterialBefore = before.material
	// A call sent without the time to confirm it could be applied with
	// nobody to record it: only when the rest of the run's call time
	// holds one call's timeout and the confirm window does it go out.
	if !r.timeToRotate(r.e.cfg.CallTimeout, r.e.cfg.ConfirmWait) {
		r.deferKey(it)
		return
	}
	// The claim before the call: the one guard that does not read KMS.
	if !r.guard.claim(ctx, it, before) {
		r.finish(it)
		return
	}
	r.fetch.calls.add(opRotateKeyOnDemand)
	started := r.e.now()
	_, err := r.fetch.kmsOf(it).RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(it.arn)},
		inRegion(it.region), r.e.rotateOpt)
	if err == nil {
		r.guard.recordClaim(ctx, it, ledger.Rotated, "")
		r.rotated(it, started)
		return
	}
	c := classify(err)
	if !c.ambiguous {
		// KMS refused with no effect (limit, conflict, state, denied):
		// the claim is released and blocks nothing.
		r.guard.recordClaim(ctx, it, ledger.Released, opRotateKeyOnDemand.String()+": "+c.detail)
		r.failedAs(it, opRotateKeyOnDemand, err, c, true)
		return
	}
	// Ambiguous (5xx, timeout, connection reset, lost response): the
	// rotation may have been applied, and RotateKeyOnDemand has no
	// idempotency token. KMS promises no read-after-write consistency for
	// the rotation status, so a look that shows nothing does not prove
	// nothing happened: never a second call, in any mode.
	if r.confirm(ctx, it, before) {
		r.guard.recordClaim(ctx, it, ledger.Rotated, "confirmed after an ambiguous failure: "+c.detail)
		r.rotated(it, started)
		return
	}
	// The claim stays and blocks the key until a run settles it from the
	// key's history (ROTATOR_SETTLE_AFTER).
	r.guard.recordClaim(ctx, it, ledger.Unconfirmed, opRotateKeyOnDemand.String()+": "+c.detail)
	it.outcome, it.reason = Failed, ReasonUnconfirmed
	it.detail = fmt.Sprintf("%s: %s; the rotation may have been applied, but KMS did not show it within %s. "+
		"Do not retry blindly: check aws kms get-key-rotation-status (OnDemandRotationStartDate), "+
		"aws kms list-key-rotations (a new ON_DEMAND entry) and aws kms describe-key (CurrentKeyMaterialId, was %s) for %s. "+
		"The rotation ledger holds this run's claim, so no run rotates the key again until one settles it from the key's history",
		opRotateKeyOnDemand, c.detail, r.e.cfg.ConfirmWait, orNone(before.material), it.arn)
	r.finish(it)
}

func orNone(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// observation is what the engine saw of a key right before RotateKeyOnDemand.
type observation struct {
	onDemand int    // ON_DEMAND entries in the history
	material string // the current key material ID
}

// confirm looks for the rotation an ambiguous failure may have applied,
// several times over up to ROTATOR_CONFIRM_WAIT (bounded by the run's
// lookBy). Any of three signs is the rotation this run asked for: an
// on-demand rotation in progress (the status read right before showed none,
// so one now started since — another run's could only have started in that
// same moment, the window tests/faults documents; its start date is not
// compared with the function's clock, which may be skewed), more ON_DEMAND
// entries than before, or a current key material other than before.
func (r *run) confirm(ctx context.Context, it *item, before observation) bool {
	lctx, cancel := r.afterKeys(ctx, r.e.cfg.ConfirmWait)
	defer cancel()
	pause := 200 * time.Millisecond
	for {
		if r.looksApplied(lctx, it, before) {
			return true
		}
		t := time.NewTimer(pause)
		select {
		case <-lctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		pause = min(2*pause, time.Second)
	}
}

// looksApplied is one look of confirm; a failed read is no sign either way.
func (r *run) looksApplied(ctx context.Context, it *item, before observation) bool {
	if err := r.fetch.status(ctx, it); err == nil && it.facts.inProgress() {
		return true
	}
	if h, err := r.fetch.readHistory(ctx, it); err == nil && h.OnDemand > before.onDemand {
		return true
	}
	if before.material == "" {
		return false
	}
	m := r.fetch.currentMaterial(ctx, it)
	return m != "" && m != before.material
}

// rotated records a started rotation. The entry shows the budget after it:
// KMS lists the rotation in ListKeyRotations once it completes. An incident
// that waits for completion holds the entry until awaitCompletion.
func (r *run) rotated(it *item, at time.Time) {
	it.outcome, it.reason, it.detail = Rotated, ReasonNone, ""
	it.facts.RotatedAt = &at
	if r.waits() {
		r.mu.Lock()
		r.waiting = append(r.waiting, it)
		r.mu.Unlock()
		return
	}
	r.finish(it)
}
