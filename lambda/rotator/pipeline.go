package rotator

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// process decides and, where due, rotates items. Two stages run side by
// side so reads never wait behind the rotation pace: ROTATOR_CONCURRENCY
// read pipelines walk the items in order (DescribeKey → ListKeyRotations →
// …), and the keys decided due go to ROTATOR_CONCURRENCY rotation pipelines
// that wait for the limiter, re-check GetKeyRotationStatus right before
// rotating, and call RotateKeyOnDemand.
//
// The hand-over queue holds about one second of rotations. When rotating is
// the bottleneck the read pipelines wait for it, which costs no wall time
// (the run cannot end before its last rotation anyway) and keeps the reads
// of a run and its rotations close together.
func (r *run) process(ctx context.Context, items []*item) {
	r.processFeed(ctx, closedFeed(items))
}

// processFeed is process over a list that may still be growing (stream.go).
func (r *run) processFeed(ctx context.Context, f *feed) {
	n := r.e.cfg.Concurrency
	due := make(chan *item, max(1, int(math.Ceil(r.e.cfg.RotateRPS))))
	st := r.newStarter(f) // deferred keys are always the tail (pace.go)
	var reads, rotations sync.WaitGroup
	for range readPipelines(r.e.cfg) {
		reads.Go(func() {
			for {
				it, ok, start := st.take()
				if !ok {
					return
				}
				if it.outcome != "" { // decided at selection (unknown alias)
					r.finish(it)
					continue
				}
				if !start {
					r.deferKey(it)
					continue
				}
				// Until it is read, a key may turn out due: it counts
				// against the rotations that must fit before the cutoff.
				st.queued.Add(1)
				if !r.evaluate(ctx, it) {
					st.queued.Add(-1)
					continue
				}
				due <- it
			}
		})
	}
	startAt := time.Now().Add(r.startJitter())
	for range n {
		rotations.Go(func() {
			r.sleepUntil(ctx, startAt)
			for it := range due {
				r.rotate(ctx, it)
				st.queued.Add(-1)
			}
		})
	}
	reads.Wait()
	close(due)
	rotations.Wait()
}

// evaluate fetches facts cheapest first until Decide is final (the key is
// finished), or says Rotate: it returns true, and the rotation stage takes
// the key over.
func (r *run) evaluate(ctx context.Context, it *item) (due bool) {
	it.facts.Open = r.guard.open[it.arn]
	for {
		d := Decide(it.facts, r.e.now(), r.e.cfg)
		var err error
		var op operation
		switch d.Action {
		case Done:
			r.decided(it, d)
			return false
		case FetchMetadata:
			op, err = opDescribeKey, r.fetch.describe(ctx, it)
		case FetchTags:
			op, err = opListResourceTags, r.fetch.listTags(ctx, it)
		case FetchHistory:
			op, err = opListKeyRotations, r.fetch.history(ctx, it)
		case FetchStatus:
			op, err = opGetKeyRotationStatus, r.fetch.status(ctx, it)
		case FetchUsage:
			op, err = opGetKeyLastUsage, r.fetch.usage(ctx, it)
		case Rotate:
			return true
		}
		if err != nil {
			r.failed(it, op, err, false)
			return false
		}
	}
}

// decided records a final decision (and adds a replica's primary in incident mode).
func (r *run) decided(it *item, d Decision) {
	it.outcome, it.reason, it.detail = d.Outcome, d.Reason, d.Detail
	if r.guard.repeatOf != "" && d.Outcome == WouldRotate {
		r.guard.repeatEntry(it)
	}
	if r.req.Mode.Rules().Inventory && r.e.ledger != nil && it.facts.History != nil {
		// The inventory shows who last claimed the key, and why.
		if h, err := r.e.ledger.Head(r.ctx, it.arn); err == nil {
			it.held = h
		} else {
			r.log.Warn("the key's last claim could not be read", "keyArn", it.arn, "error", err.Error())
		}
	}
	if d.Reason == ReasonMultiRegionReplica && !scheduledLike(it.facts.Mode) && it.facts.Meta.PrimaryARN != "" {
		r.sel.addPrimary(it.facts.Meta.PrimaryARN)
	}
	r.finish(it)
}

// failed records a call's failure: mapped once in classify.
func (r *run) failed(it *item, op operation, err error, rotating bool) {
	r.failedAs(it, op, err, classify(err), rotating)
}

// failedAs records a failure already classified.
func (r *run) failedAs(it *item, op operation, err error, c classification, rotating bool) {
	// A read that failed leaves the key's state unknown: the evidence
	// lists it as not collected.
	it.unread = !rotating
	if c.deadline && !rotating {
		if r.ctx.Err() != nil || r.pastCutoff() {
			r.deferKey(it)
			return
		}
		// Not the run's deadline: the call itself timed out on every
		// attempt (Go's HTTP client timeout is a context.DeadlineExceeded
		// too). A KMS that stops answering must fail loudly, not defer
		// every key day after day.
		c = classification{outcome: Failed, reason: ReasonError, detail: timedOut(err, r.e.cfg.CallTimeout)}
	}
	it.apply(op, c)
	r.finish(it)
}

// apply makes a classified error the item's outcome: the one place where
// AWS errors become entries.
func (it *item) apply(op operation, c classification) {
	it.outcome, it.reason, it.detail = c.outcome, c.reason, c.detail
	if it.detail != "" {
		it.detail = op.String() + ": " + it.detail
	}
	if c.reason == ReasonBudgetExhausted {
		it.facts.LimitReached = true
	}
}

func (r *run) deferKey(it *item) {
	it.outcome, it.reason, it.detail = Deferred, ReasonDeadline, ""
	r.finish(it)
}

// finish labels the key with its alias, records its entry and logs its line.
func (r *run) finish(it *item) {
	r.guard.closeOpen(it)
	r.sel.setAlias(it)
	r.record(it)
}

// startJitter is the random delay before a scheduled run's first rotation
// (Config.StartJitter): only a scheduled run that rotates can meet a
// duplicate delivery of itself (EventBridge delivers at least once, and so
// does Lambda's asynchronous invocation that starts a continuation link); an
// incident must not wait. It is at most 1 % of the time left, so it never
// costs a run a noticeable share of its keys.
func (r *run) startJitter() time.Duration {
	j := r.e.cfg.StartJitter
	if !r.req.Mode.Rules().Jitter || r.dry || j <= 0 {
		return 0
	}
	if !r.cutoff.IsZero() {
		j = min(j, time.Until(r.cutoff)/100)
	}
	if j <= 0 {
		return 0
	}
	return rand.N(j)
}

// sleepUntil waits until t, the cutoff or the end of ctx, whichever is first.
func (r *run) sleepUntil(ctx context.Context, t time.Time) {
	if !r.cutoff.IsZero() && r.cutoff.Before(t) {
		t = r.cutoff
	}
	d := time.Until(t)
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}
