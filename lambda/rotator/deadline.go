package rotator

import (
	"context"
	"time"
)

// deadlines are the moments a run works by, all set from the Lambda
// deadline and the margin kept back (DeadlineMargin): cutoff, after which
// no key (or rotation) starts; callsEnd, when the per-key calls' context
// ends (half a margin before the deadline); lookBy, the end of the
// listings, the look after an ambiguous rotation, the result event and
// the continuation (a quarter margin before it), so the report always
// returns. Zero times mean no deadline (tests).
type deadlines struct {
	cutoff, callsEnd, lookBy time.Time
}

// newDeadlines derives a run's deadlines from the Lambda deadline dl.
func newDeadlines(dl time.Time, margin time.Duration) deadlines {
	return deadlines{cutoff: dl.Add(-margin), callsEnd: dl.Add(-margin / 2), lookBy: dl.Add(-margin / 4)}
}

// timeToRotate says whether the run's call time still holds one call's
// timeout (ROTATOR_CALL_TIMEOUT) and the confirm window
// (ROTATOR_CONFIRM_WAIT) after now: a RotateKeyOnDemand sent later could
// time out and be applied after the run stopped looking.
func (d deadlines) timeToRotate(callTimeout, confirmWait time.Duration) bool {
	return d.callsEnd.IsZero() || time.Until(d.callsEnd) > callTimeout+confirmWait
}

// afterKeys is the context of a call made after the run's own calls may be
// over (the look after an ambiguous rotation, the continuation, the result
// event): at most wait, and never past lookBy, a quarter margin before the
// Lambda deadline, so it cannot hold the report past it.
func (d deadlines) afterKeys(ctx context.Context, wait time.Duration) (context.Context, context.CancelFunc) {
	by := time.Now().Add(wait)
	if !d.lookBy.IsZero() && d.lookBy.Before(by) {
		by = d.lookBy
	}
	return context.WithDeadline(context.WithoutCancel(ctx), by)
}

// listContext bounds the listings by lookBy (no bound without a deadline).
func (d deadlines) listContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if d.lookBy.IsZero() {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, d.lookBy)
}

// pastCutoff reports whether the deadline is too near to start more work.
func (d deadlines) pastCutoff() bool {
	return !d.cutoff.IsZero() && !time.Now().Before(d.cutoff)
}

// until is when this run ends at the latest, on the engine's clock: past
// it, a request record still in progress belongs to a run that died.
func (d deadlines) until(now time.Time) time.Time {
	if d.cutoff.IsZero() {
		return now.Add(15 * time.Minute)
	}
	return now.Add(time.Until(d.cutoff))
}
