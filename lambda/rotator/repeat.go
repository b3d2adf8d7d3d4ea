package rotator

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kms-rotator/kms-rotator/lambda/ledger"
	"github.com/kms-rotator/kms-rotator/lambda/request"
)

// checkAge refuses an incident that EventBridge delivered later than
// ROTATOR_INCIDENT_MAX_AGE after the event's time: EventBridge retries a
// delivery for up to 24 hours and Lambda's asynchronous queue keeps an
// event up to 6 hours
// (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-retry-policy.html,
// https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html),
// and a rotation the responder asked for long ago may no longer be wanted.
// The event's age is real time, not the engine's clock of decisions.
func (e *Engine) checkAge(req request.Request) error {
	if !req.Mode.Rules().Identity || req.EventTime.IsZero() {
		return nil
	}
	if age := time.Since(req.EventTime); age > e.cfg.IncidentMaxAge {
		return &request.ValidationError{Field: "time", Msg: fmt.Sprintf(
			"the event is %s old, more than ROTATOR_INCIDENT_MAX_AGE (%s): a late delivery is refused before any call; send a new request",
			age.Round(time.Second), e.cfg.IncidentMaxAge)}
	}
	return nil
}

// beginRequest records an incident request's first run in the ledger
// (request.Identity), before any KMS call. A repeat within
// ROTATOR_IDEMPOTENCY_WINDOW makes no KMS mutation: it answers the first
// run's report once that run finished, waiting for it while it runs. It
// returns the answer and true for a repeat that could be answered so; false
// when this run goes on (the first run, a repeat of a run that died, or a
// repeat that must list its keys' claims). A ledger that cannot be written
// here is logged: every key's claim then fails closed.
func (lg *ledgerGuard) beginRequest(ctx context.Context) (*Report, bool) {
	r := lg.r
	if lg.identity == "" || r.e.ledger == nil {
		return nil, false
	}
	rec, err := r.e.ledger.Begin(ctx, lg.identity, r.id, r.e.now(), r.until(r.e.now()), r.e.cfg.IdempotencyWindow)
	if err != nil {
		r.log.Error("the request record could not be written; each key's claim decides", "request", lg.identity, "error", err.Error())
		return nil, false
	}
	if rec == nil {
		return nil, false
	}
	lg.repeatOf = rec.RunID
	r.log.Info("a repeat of an earlier request: answered from its run, no KMS mutation", "request", lg.identity,
		"repeatOf", rec.RunID, "status", rec.Status)
	rec = lg.awaitFirst(ctx, rec)
	if rec == nil { // the first run died: this one takes the request over
		lg.repeatOf = ""
		return nil, false
	}
	if rec.Status == ledger.Completed && rec.Report != nil {
		var rep Report
		if err := json.Unmarshal(rec.Report, &rep); err == nil {
			rep.RepeatOf, rep.RunID = rec.RunID, r.id
			r.out.logSummary(&rep)
			return &rep, true
		}
	}
	// Still running (or its report did not fit the ledger): this run reads
	// the keys without rotating and answers each key's current claim.
	r.dry = true
	return nil, false
}

// awaitFirst polls the request record until the first run completes, for
// as long as an incident waits for its rotations (ROTATOR_INCIDENT_WAIT)
// plus half a minute, and never past half the time this run has left. It
// returns nil when the first run's deadline passed without it completing
// and this run took the request over.
func (lg *ledgerGuard) awaitFirst(ctx context.Context, rec *ledger.RequestRecord) *ledger.RequestRecord {
	r := lg.r
	by := time.Now().Add(r.e.cfg.IncidentWait + 30*time.Second)
	if !r.cutoff.IsZero() {
		if half := time.Now().Add(time.Until(r.cutoff) / 2); half.Before(by) {
			by = half
		}
	}
	for rec.Status != ledger.Completed && time.Now().Before(by) {
		if rec.Status == ledger.InProgress && r.e.now().After(rec.Until) {
			taken, err := r.e.ledger.Begin(ctx, lg.identity, r.id, r.e.now(), r.until(r.e.now()), r.e.cfg.IdempotencyWindow)
			if err == nil && taken == nil {
				r.log.Info("the request's first run ended without completing; this run takes it over", "firstRunId", rec.RunID)
				return nil
			}
		}
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return rec
		case <-t.C:
		}
		if next, err := r.e.ledger.Request(ctx, lg.identity); err == nil && next != nil {
			if next.RunID != rec.RunID && next.RunID != r.id {
				lg.repeatOf = next.RunID
			}
			rec = next
		}
	}
	return rec
}

// repeatEntry turns a key a repeat would rotate into what stands for it:
// the first run's claim (skipped, recently-rotated), or deferred when the
// first run has not claimed it yet.
func (lg *ledgerGuard) repeatEntry(it *item) {
	r := lg.r
	h, err := r.e.ledger.Head(r.ctx, it.arn)
	if err != nil {
		lg.ledgerFailed(it, err)
		return
	}
	if h != nil && h.Request == lg.identity {
		it.outcome, it.reason, it.held, it.detail = Skipped, ReasonRecentlyRotated, h, ""
		return
	}
	it.outcome, it.reason = Deferred, ReasonDeadline
	it.detail = fmt.Sprintf("run %s of this request is still running and has not claimed this key yet; send the request again later for its answer", lg.repeatOf)
}

// completeRequest stores the first run's report on its request record, so
// a repeat answers it.
func (lg *ledgerGuard) completeRequest(ctx context.Context, rep *Report) {
	r := lg.r
	if lg.identity == "" || lg.repeatOf != "" || r.e.ledger == nil {
		return
	}
	b, err := json.Marshal(rep)
	if err == nil {
		err = r.e.ledger.Complete(context.WithoutCancel(ctx), lg.identity, r.id, b)
	}
	if err != nil {
		r.log.Error("the request's report could not be stored; a repeat will answer each key's claim", "request", lg.identity, "error", err.Error())
	}
}

// takeLease takes the target's sweep lease for a scheduled run that
// rotates: one firing of the schedule delivered twice (EventBridge and
// Lambda deliver at least once) must not run two sweeps of one target at
// once. A continuation link takes its chain's lease over. It returns the
// answer of a duplicate (a report of no keys, repeatOf the holder) and
// true; false when the run goes on. A ledger that cannot be read here is
// logged: each key's claim still refuses a second rotation.
func (lg *ledgerGuard) takeLease(ctx context.Context) (*Report, bool) {
	r := lg.r
	if r.e.ledger == nil || !r.req.Mode.Rules().Lease || r.dry {
		return nil, false
	}
	h, err := r.e.ledger.Lease(ctx, r.scope.Region, r.scope.Account, lg.chain(), r.id, r.inv.RequestID, r.e.now(), r.until(r.e.now()))
	if err != nil {
		r.log.Warn("the sweep lease could not be taken; each key's claim guards alone", "error", err.Error())
		return nil, false
	}
	if h == nil {
		lg.leased = true
		return nil, false
	}
	lg.repeatOf = h.RunID
	r.log.Warn("another sweep of this target is running: this delivery does nothing", "holderRunId", h.RunID,
		"holderUntil", fmtTime(h.Until))
	// No metrics: the holder's figures are the sweep's, and zeros from
	// a duplicate would pull the alarms' statistics down.
	rep := r.out.report()
	rep.RepeatOf = h.RunID
	r.out.logSummary(rep)
	return rep, true
}

// chain is the ID of the run's chain of continuations: the first link's.
func (lg *ledgerGuard) chain() string {
	r := lg.r
	if c := r.req.Continuation; c != nil && c.RunID != "" {
		return c.RunID
	}
	return r.id
}

// releaseLease gives the sweep lease up at the end of a run, unless a
// continuation link was started: it takes the lease over.
func (lg *ledgerGuard) releaseLease(ctx context.Context) {
	r := lg.r
	if !lg.leased || (r.out.cont != nil && r.out.cont.Started) {
		return
	}
	if err := r.e.ledger.Release(context.WithoutCancel(ctx), r.scope.Region, r.scope.Account, lg.chain()); err != nil {
		r.log.Warn("releasing the sweep lease failed; it expires at this run's deadline", "error", err.Error())
	}
}
