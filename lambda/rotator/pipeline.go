package rotator

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kms-rotator/kms-rotator/lambda/ledger"
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

// processFeed is process over a list that may still be growing (a sweep's
// listing, select.go).
func (r *run) processFeed(ctx context.Context, f *feed) {
	n := r.e.cfg.Concurrency
	due := make(chan *item, max(1, int(math.Ceil(r.e.cfg.RotateRPS))))
	st := &starter{r: r, f: f} // deferred keys are always the tail
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
	it.rot.materialBefore = before.material
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
	if r.completion.confirm(ctx, it, before) {
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

// rotated records a started rotation. The entry shows the budget after it:
// KMS lists the rotation in ListKeyRotations once it completes. An incident
// that waits for completion holds the entry until awaitCompletion.
func (r *run) rotated(it *item, at time.Time) {
	it.outcome, it.reason, it.detail = Rotated, ReasonNone, ""
	it.facts.RotatedAt = &at
	if r.completion.waits() {
		r.completion.hold(it)
		return
	}
	r.finish(it)
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
	r.out.record(it)
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

// starter hands out the items of one process call in order and decides,
// under one lock, whether each may still start. Once a key is refused —
// the deadline is near, or the rotations already handed over would use all
// the time left — every later key is refused too, so the deferred keys are
// always the tail of the list in key ARN order: what a continuation's
// cursor needs (continuation.go).
type starter struct {
	r       *run
	f       *feed // the items; a sweep's grows while listing
	stopped bool
	// queued counts the keys that may still need a rotation slot: being
	// read (any may turn out due), or due and not yet rotated.
	queued atomic.Int64
}

// take returns the next item, waiting for the listing when it is behind; ok
// is false when none is left, start is false when the item must be deferred.
func (s *starter) take() (it *item, ok, start bool) {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if it, ok = f.next(); !ok {
		return nil, false, false
	}
	if !s.stopped && (s.r.pastCutoff() || s.rotationsFillTimeLeft()) {
		s.stopped = true
	}
	return it, true, !s.stopped
}

// rotationsFillTimeLeft reports whether the rotations that may be pending
// (keys being read and due keys not yet rotated), plus one more, would take (with a quarter of slack) longer than the time
// left before the cutoff at the RotateKeyOnDemand pace: reading more keys
// then only finds due keys that would be deferred in the rotation stage,
// behind the cursor.
func (s *starter) rotationsFillTimeLeft() bool {
	r := s.r
	if r.cutoff.IsZero() || r.dry {
		return false
	}
	need := time.Duration(float64(s.queued.Load()+1) / r.e.cfg.RotateRPS * 1.25 * float64(time.Second))
	return need > time.Until(r.cutoff)
}

// feed is the queue of candidates not yet started by one process call,
// possibly still growing while the listing pages arrive.
type feed struct {
	mu    sync.Mutex
	cond  *sync.Cond
	items []*item // not yet taken, in arrival order
	done  bool
}

// maxAhead bounds how far the listing may run ahead of the pipelines: ten
// GetResources pages. Without it a large fleet would sit in memory, listed
// but not yet started, while the quotas pace the reads.
const maxAhead = 1000

func newFeed() *feed {
	f := &feed{}
	f.cond = sync.NewCond(&f.mu)
	return f
}

// closedFeed is a complete list.
func closedFeed(items []*item) *feed {
	f := newFeed()
	f.items, f.done = items, true
	return f
}

// add appends items, first waiting while maxAhead are already waiting.
func (f *feed) add(items []*item) {
	f.mu.Lock()
	for len(f.items) >= maxAhead {
		f.cond.Wait()
	}
	f.items = append(f.items, items...)
	f.mu.Unlock()
	f.cond.Broadcast()
}

func (f *feed) close() {
	f.mu.Lock()
	f.done = true
	f.mu.Unlock()
	f.cond.Broadcast()
}

// next pops the first item, waiting for one; ok is false once the feed is
// closed and empty. The caller holds f.mu.
func (f *feed) next() (it *item, ok bool) {
	for len(f.items) == 0 && !f.done {
		f.cond.Wait()
	}
	if len(f.items) == 0 {
		return nil, false
	}
	it = f.items[0]
	f.items[0] = nil
	f.items = f.items[1:]
	f.cond.Broadcast() // room for the listing
	return it, true
}
