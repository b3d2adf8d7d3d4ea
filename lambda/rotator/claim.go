package rotator

import (
	"context"
	"errors"
	"time"

	"github.com/kms-rotator/kms-rotator/lambda/ledger"
)

// ReasonLedgerUnavailable: the rotation ledger could not be read or
// written (unreachable, throttled, denied), so no RotateKeyOnDemand was
// sent: without a claim written first, a repeat or an overlapping run could
// spend a second rotation (docs/design.md "The rotation ledger").
const ReasonLedgerUnavailable Reason = "ledger-unavailable"

// ledgerGuard is a run's side of the rotation ledger (lambda/ledger): the
// claim written before every RotateKeyOnDemand and its outcome after, the
// open rotations a sweep checks, an incident's request record and a
// sweep's lease (repeat.go). A nil ledger fails every rotation closed.
type ledgerGuard struct {
	r *run
	// identity is an incident request's identity (request.Identity; empty
	// for sweeps and dry runs); repeatOf the first run's ID when this run
	// is a repeat of it (repeat.go).
	identity string
	repeatOf string
	// open are the sweep's keys with an open rotation in the ledger.
	open map[string]bool
	// leased: this run holds its target's sweep lease (repeat.go).
	leased bool
}

// SetLedger gives the engine its rotation ledger. Without one no key is
// rotated: every due key fails with ledger-unavailable.
func (e *Engine) SetLedger(l *ledger.Ledger) { e.ledger = l }

// ClaimReport is a claim on a key as a report entry shows it: the one
// that refused this run's claim, or (report mode) the key's newest.
type ClaimReport struct {
	RunID     string `json:"runId"`
	Mode      string `json:"mode"`
	ClaimedAt string `json:"claimedAt"`
	Reason    string `json:"reason,omitempty"`
	Force     bool   `json:"force,omitempty"`
	// Outcome is claimed, rotated, unconfirmed or released.
	Outcome string `json:"outcome"`
	// Request is the incident request's identity.
	Request       string `json:"request,omitempty"`
	MaterialAfter string `json:"keyMaterialId,omitempty"`
}

func claimReport(c *ledger.Claim) *ClaimReport {
	if c == nil {
		return nil
	}
	return &ClaimReport{RunID: c.RunID, Mode: c.Mode, ClaimedAt: fmtTime(c.ClaimedAt), Reason: c.Reason, Force: c.Force,
		Outcome: c.Outcome, Request: c.Request, MaterialAfter: c.MaterialAfter}
}

// guard is which standing claim refuses this run's claim on the key: one
// younger than the key's interval for sweeps, than ROTATOR_INCIDENT_COOLDOWN
// for incidents (none with force), and any claim of the same request
// within ROTATOR_IDEMPOTENCY_WINDOW, force or not.
func (lg *ledgerGuard) guard(it *item, now time.Time) ledger.Guard {
	r := lg.r
	cfg := r.e.cfg
	if r.req.Mode.Rules().Sweep {
		return ledger.Guard{Since: now.Add(-days(max(it.facts.IntervalDays, 1)))}
	}
	g := ledger.Guard{Request: lg.identity, RequestSince: now.Add(-cfg.IdempotencyWindow)}
	if !r.req.Force && cfg.IncidentCooldown > 0 {
		g.Since = now.Add(-cfg.IncidentCooldown)
	}
	return g
}

// claim writes the key's claim before RotateKeyOnDemand. It returns true
// when the run may call; otherwise the item has its outcome: skipped
// (recently-rotated, naming the standing claim) or failed
// (ledger-unavailable). A standing claim that was never confirmed and is
// older than ROTATOR_SETTLE_AFTER is settled first from the history this
// run just read, so an unconfirmed rotation never blocks a key for long.
func (lg *ledgerGuard) claim(ctx context.Context, it *item, before observation) bool {
	r := lg.r
	if r.e.ledger == nil {
		it.outcome, it.reason = Failed, ReasonLedgerUnavailable
		it.detail = "no rotation ledger configured (ROTATOR_LEDGER_TABLE): no RotateKeyOnDemand without a claim"
		return false
	}
	now := r.e.now()
	c := ledger.Claim{
		KeyARN: it.arn, ClaimedAt: now, RunID: r.id, Mode: string(r.req.Mode), LambdaRequestID: r.inv.RequestID,
		Request: lg.identity, Caller: r.caller(), Reason: r.req.Reason, Force: r.req.Force,
		OnDemandBefore: before.onDemand, MaterialBefore: before.material,
	}
	for attempt := 0; ; attempt++ {
		res, err := r.e.ledger.Claim(ctx, c, lg.guard(it, now))
		if err != nil {
			lg.ledgerFailed(it, err)
			return false
		}
		held := res.Held
		if held == nil {
			it.rot.claim = &c
			it.rot.expectOnDemand = before.onDemand + 1 + unlisted(res.Replaced, before.onDemand)
			return true
		}
		if attempt == 0 && lg.settle(ctx, it, held, now) {
			continue
		}
		// The entry's claim names the standing claim; skipped entries
		// carry no error.
		it.outcome, it.reason, it.held = Skipped, ReasonRecentlyRotated, held
		return false
	}
}

// settle records what became of a claim that was never confirmed (the
// call's answer was lost, or its run ended before recording it), once it
// is older than ROTATOR_SETTLE_AFTER, from the key's history as this run
// read it right before: more ON_DEMAND rotations than the claim saw, or
// one dated at or after the claim, mean it rotated; none, that it did not.
// It returns true when the claim was settled (the caller claims again).
func (lg *ledgerGuard) settle(ctx context.Context, it *item, held *ledger.Claim, now time.Time) bool {
	r := lg.r
	if held.Outcome != ledger.Claimed && held.Outcome != ledger.Unconfirmed {
		return false
	}
	if held.RunID == r.id || now.Sub(held.ClaimedAt) < r.e.cfg.SettleAfter {
		return false
	}
	h := it.facts.History
	if h == nil {
		return false
	}
	outcome := ledger.Released
	if h.OnDemand > held.OnDemandBefore || !h.NewestOnDemand.Before(held.ClaimedAt) {
		outcome = ledger.Rotated
	}
	if err := r.e.ledger.Settle(ctx, *held, outcome, r.id); err != nil {
		r.log.Warn("settling an unconfirmed claim failed", "keyArn", it.arn, "claimRunId", held.RunID, "error", err.Error())
		return false
	}
	r.log.Info("settled an unconfirmed claim from the key's history", "keyArn", it.arn, "claimRunId", held.RunID,
		"claimedAt", fmtTime(held.ClaimedAt), "outcome", outcome)
	return true
}

// unlisted is 1 when the claim this one replaced was a rotation (or may
// have been one) that KMS did not list yet when this run read the key's
// history: that run saw as many ON_DEMAND rotations as this one, so its
// rotation is not among them. This run's own rotation then comes after it,
// and so does its material (completion, complete.go). The count compares
// KMS's own lists, not the function's clock with KMS's.
func unlisted(prev *ledger.Claim, onDemandNow int) int {
	if prev == nil || prev.Outcome == ledger.Released || onDemandNow > prev.OnDemandBefore {
		return 0
	}
	return 1
}

// ledgerFailed fails the key closed: no claim, no call.
func (lg *ledgerGuard) ledgerFailed(it *item, err error) {
	it.outcome, it.reason = Failed, ReasonLedgerUnavailable
	it.detail = err.Error() + "; no RotateKeyOnDemand was sent"
	var le *ledger.Error
	if !errors.As(err, &le) {
		it.detail = "ledger: " + it.detail
	}
}

// recordClaim writes what the call did on the run's claim. A failed write
// is logged and leaves the claim as it was (claimed: it keeps blocking
// until a later run settles it), never a second call.
func (lg *ledgerGuard) recordClaim(ctx context.Context, it *item, outcome, detail string) {
	r := lg.r
	c := it.rot.claim
	if c == nil || r.e.ledger == nil {
		return
	}
	c.Outcome, c.Detail = outcome, detail
	c.MaterialAfter, c.CompletedAt = it.rot.materialAfter, it.rot.completedAt
	wctx := context.WithoutCancel(ctx)
	if err := r.e.ledger.Record(wctx, *c); err != nil {
		r.log.Warn("recording the claim's outcome failed; the claim stands until a later run settles it",
			"keyArn", it.arn, "outcome", outcome, "error", err.Error())
	}
	// A rotation that started (or may have) stays open until a run sees
	// it complete; one this run saw complete is closed at once.
	switch {
	case outcome != ledger.Released && c.CompletedAt == nil:
		if err := r.e.ledger.Opened(wctx, *c); err != nil {
			r.log.Warn("marking the rotation open failed; sweeps will not check it for a stuck rotation",
				"keyArn", it.arn, "error", err.Error())
		}
	case c.CompletedAt != nil:
		lg.closeRotation(wctx, it.arn)
	}
}

// loadOpen reads the open rotations of a sweep's account and Region (one
// Query): their keys' status is read whatever their due date.
func (lg *ledgerGuard) loadOpen(ctx context.Context) {
	r := lg.r
	if r.e.ledger == nil || !r.req.Mode.Rules().Sweep {
		return
	}
	open, err := r.e.ledger.OpenRotations(ctx, r.scope.Region, r.scope.Account)
	if err != nil {
		r.log.Warn("open rotations not read; stuck rotations of keys that are not due go unseen this run", "error", err.Error())
		return
	}
	lg.open = open
}

// closeOpen closes a key's open rotation once its status shows none in
// progress (best effort: a failure leaves it for the next sweep).
func (lg *ledgerGuard) closeOpen(it *item) {
	if !it.facts.Open || it.facts.Status == nil || it.facts.inProgress() || it.rot.claim != nil {
		return
	}
	lg.closeRotation(lg.r.ctx, it.arn)
}

func (lg *ledgerGuard) closeRotation(ctx context.Context, arn string) {
	r := lg.r
	if err := r.e.ledger.Close(ctx, arn); err != nil {
		r.log.Warn("closing an open rotation failed", "keyArn", arn, "error", err.Error())
	}
}

// caller is who asked for the run, where the function can know it.
func (r *run) caller() string {
	switch {
	case r.req.EventAccount != "":
		return "event:" + r.req.EventAccount
	case r.req.Target != nil:
		return "target:" + r.req.Target.Account + "/" + r.req.Target.Region
	}
	return r.req.Source
}
