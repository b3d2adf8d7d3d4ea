package rotator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kms-rotator/kms-rotator/lambda/ledger"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
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
				r.evaluate(ctx, it)
				if !it.rotateNext {
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

// evaluate fetches facts cheapest first until Decide is final, or says
// Rotate (then the rotation stage takes over).
func (r *run) evaluate(ctx context.Context, it *item) {
	it.facts.Open = r.open[it.arn]
	for {
		d := Decide(it.facts, r.e.now(), r.e.cfg)
		var err error
		var op string
		switch d.Action {
		case Done:
			r.decided(it, d)
			return
		case FetchMetadata:
			op, err = opDescribeKey, r.describe(ctx, it)
		case FetchTags:
			op, err = opListResourceTags, r.listTags(ctx, it)
		case FetchHistory:
			op, err = opListKeyRotations, r.history(ctx, it)
		case FetchStatus:
			op, err = opGetKeyRotationStatus, r.status(ctx, it)
		case FetchUsage:
			op, err = opGetKeyLastUsage, r.usage(ctx, it)
		case Rotate:
			it.rotateNext = true
			return
		}
		if err != nil {
			r.failed(it, op, err, false)
			return
		}
	}
}

// decided records a final decision (and adds a replica's primary in incident mode).
func (r *run) decided(it *item, d Decision) {
	it.outcome, it.reason, it.detail = d.Outcome, d.Reason, d.Detail
	if r.repeatOf != "" && d.Outcome == WouldRotate {
		r.repeatEntry(it)
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
		r.addPrimary(it.facts.Meta.PrimaryARN)
	}
	r.finish(it)
}

// failed records a call's failure: mapped once in classify.
func (r *run) failed(it *item, op string, err error, rotating bool) {
	r.failedAs(it, op, err, classify(err), rotating)
}

// failedAs records a failure already classified.
func (r *run) failedAs(it *item, op string, err error, c classification, rotating bool) {
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
func (it *item) apply(op string, c classification) {
	it.outcome, it.reason, it.detail = c.outcome, c.reason, c.detail
	if it.detail != "" {
		it.detail = op + ": " + it.detail
	}
	if c.reason == ReasonBudgetExhausted {
		it.facts.LimitReached = true
	}
}

func (r *run) deferKey(it *item) {
	it.outcome, it.reason, it.detail = Deferred, ReasonDeadline, ""
	r.finish(it)
}

func (r *run) describe(ctx context.Context, it *item) error {
	if err := r.call(ctx, opDescribeKey); err != nil {
		return err
	}
	out, err := r.kmsOf(it).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(it.arn)}, inRegion(it.region))
	if err != nil {
		return err
	}
	km := out.KeyMetadata
	if km == nil {
		return errors.New("DescribeKey returned no KeyMetadata")
	}
	m := &Metadata{
		KeyManager: string(km.KeyManager),
		KeySpec:    string(km.KeySpec),
		KeyUsage:   string(km.KeyUsage),
		Origin:     string(km.Origin),
		KeyState:   string(km.KeyState),
		CreatedAt:  aws.ToTime(km.CreationDate),
		MaterialID: aws.ToString(km.CurrentKeyMaterialId),
	}
	if mr := km.MultiRegionConfiguration; mr != nil && mr.MultiRegionKeyType == kmstypes.MultiRegionKeyTypeReplica {
		m.Replica = true
		if mr.PrimaryKey != nil {
			m.PrimaryARN = aws.ToString(mr.PrimaryKey.Arn)
		}
	} else if mr != nil {
		for _, rk := range mr.ReplicaKeys {
			m.Replicas = append(m.Replicas, RegionalKey{ARN: strings.Clone(aws.ToString(rk.Arn)), Region: strings.Clone(aws.ToString(rk.Region))})
		}
	}
	it.facts.Meta = m
	// The canonical ARN and ID (the caller may have used an alias or ID).
	if a := aws.ToString(km.Arn); a != "" {
		it.arn = a
	}
	if id := aws.ToString(km.KeyId); id != "" {
		it.keyID = id
	}
	return nil
}

// listTags learns the tags of a key named explicitly in an incident. One
// ListResourceTags call per such key (≤ 1,000 keys, 2,000 calls/s quota);
// chosen over GetResources with ResourceARNList because it answers for
// untagged keys too, works in the primary's Region for an added primary,
// and keeps every per-key call on kms:* actions the key policy governs.
func (r *run) listTags(ctx context.Context, it *item) error {
	tags := map[string]string{}
	in := &kms.ListResourceTagsInput{KeyId: aws.String(it.arn)}
	for {
		if err := r.call(ctx, opListResourceTags); err != nil {
			return err
		}
		out, err := r.kmsOf(it).ListResourceTags(ctx, in, inRegion(it.region))
		if err != nil {
			return err
		}
		for _, t := range out.Tags {
			k := aws.ToString(t.TagKey)
			if k == r.e.cfg.TagKey || k == settings.IntervalTagKey {
				tags[k] = aws.ToString(t.TagValue)
			}
		}
		if !out.Truncated || aws.ToString(out.NextMarker) == "" {
			break
		}
		in.Marker = out.NextMarker
	}
	r.applyTags(it, tags)
	return nil
}

// history reads all pages of ListKeyRotations: the budget used is the count
// of ON_DEMAND entries, the age is the newest entry of any type
// (https://docs.aws.amazon.com/kms/latest/APIReference/API_ListKeyRotations.html).
func (r *run) history(ctx context.Context, it *item) error {
	h, err := r.readHistory(ctx, it)
	if err != nil {
		return err
	}
	it.facts.History = h
	return nil
}

func (r *run) readHistory(ctx context.Context, it *item) (*History, error) {
	h := &History{}
	// 1,000 entries a page (the maximum) so one call covers any real key.
	in := &kms.ListKeyRotationsInput{KeyId: aws.String(it.arn), Limit: aws.Int32(1000)}
	if m := it.facts.Meta; m != nil && m.Origin == "EXTERNAL" {
		// Imported keys list their staged material too (PENDING_ROTATION).
		in.IncludeKeyMaterial = kmstypes.IncludeKeyMaterialAllKeyMaterial
	}
	for {
		if err := r.e.waitListRotations(ctx); err != nil {
			return nil, err
		}
		r.calls.add(opListKeyRotations)
		out, err := r.kmsOf(it).ListKeyRotations(ctx, in, inRegion(it.region))
		if err != nil {
			return nil, err
		}
		for _, e := range out.Rotations {
			id := aws.ToString(e.KeyMaterialId)
			switch e.KeyMaterialState {
			case kmstypes.KeyMaterialStateCurrent:
				h.CurrentMaterial, h.CurrentValidTo = strings.Clone(id), e.ValidTo
			case kmstypes.KeyMaterialStatePendingRotation:
				h.Staged = strings.Clone(id)
			case kmstypes.KeyMaterialStatePendingMultiRegionImportAndRotation:
				h.PendingReplicaImport, h.StagedForReplicas = true, strings.Clone(id)
			}
			if e.RotationType == "" || e.RotationDate == nil {
				continue // a material that no rotation made current (the first, a staged one)
			}
			d := aws.ToTime(e.RotationDate)
			if e.RotationType == kmstypes.RotationTypeOnDemand {
				h.OnDemand++
				if d.After(h.NewestOnDemand) {
					h.NewestOnDemand = d
				}
			}
			if d.After(h.Newest) {
				h.Newest = d
			}
		}
		if !out.Truncated || aws.ToString(out.NextMarker) == "" {
			return h, nil
		}
		in.Marker = out.NextMarker
	}
}

// usage reads GetKeyLastUsage: the last successful cryptographic operation
// since KMS began tracking the key
// (https://docs.aws.amazon.com/kms/latest/APIReference/API_GetKeyLastUsage.html).
func (r *run) usage(ctx context.Context, it *item) error {
	u, err := r.lastUsage(ctx, it, it.arn, it.region)
	if err != nil {
		return err
	}
	// KMS tracks a multi-Region key's use per Region: a primary unused in
	// its own Region may be busy in a replica's. It is idle only if the
	// primary and every replica are.
	if m := it.facts.Meta; m != nil {
		for _, rep := range m.Replicas {
			ru, err := r.lastUsage(ctx, it, rep.ARN, rep.Region)
			if err != nil {
				return err
			}
			if ru.LastUsed != nil && (u.LastUsed == nil || ru.LastUsed.After(*u.LastUsed)) {
				u.LastUsed = ru.LastUsed
			}
			if ru.TrackingStart.After(u.TrackingStart) {
				u.TrackingStart = ru.TrackingStart
			}
		}
	}
	it.facts.Usage = u
	return nil
}

// lastUsage is one GetKeyLastUsage, paced at its share of the operation's
// quota (5 per second per account and Region: a 10,000-key report takes
// over half an hour at it).
func (r *run) lastUsage(ctx context.Context, it *item, arn, region string) (*Usage, error) {
	if err := r.call(ctx, opGetKeyLastUsage); err != nil {
		return nil, err
	}
	out, err := r.kmsOf(it).GetKeyLastUsage(ctx, &kms.GetKeyLastUsageInput{KeyId: aws.String(arn)}, inRegion(region))
	if err != nil {
		return nil, err
	}
	u := &Usage{TrackingStart: aws.ToTime(out.TrackingStartDate)}
	if l := out.KeyLastUsage; l != nil && l.Timestamp != nil {
		u.LastUsed = l.Timestamp
	}
	return u, nil
}

// status reads GetKeyRotationStatus: OnDemandRotationStartDate is present only
// while an on-demand rotation is in progress, NextRotationDate while
// automatic rotation is enabled
// (https://docs.aws.amazon.com/kms/latest/APIReference/API_GetKeyRotationStatus.html).
func (r *run) status(ctx context.Context, it *item) error {
	if err := r.call(ctx, opGetKeyRotationStatus); err != nil {
		return err
	}
	out, err := r.kmsOf(it).GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(it.arn)}, inRegion(it.region))
	if err != nil {
		return err
	}
	st := &Status{OnDemandStart: out.OnDemandRotationStartDate}
	if out.KeyRotationEnabled {
		st.NextAutomatic = out.NextRotationDate
	}
	it.facts.Status = st
	return nil
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
	if err := r.e.limiter.Wait(wctx); err != nil {
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
	// a whole rotation within about two round trips (lambda/tests/faults
	// documents it).
	if err := r.status(ctx, it); err != nil {
		r.failed(it, opGetKeyRotationStatus, err, false)
		return
	}
	if err := r.history(ctx, it); err != nil {
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
	if !r.timeToRotate() {
		r.deferKey(it)
		return
	}
	// The claim before the call: the one guard that does not read KMS.
	if !r.claim(ctx, it, before) {
		r.finish(it)
		return
	}
	r.calls.add(opRotateKeyOnDemand)
	started := r.e.now()
	_, err := r.kmsOf(it).RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(it.arn)},
		inRegion(it.region), r.e.rotateOpt)
	if err == nil {
		r.recordClaim(ctx, it, ledger.Rotated, "")
		r.rotated(it, started)
		return
	}
	c := classify(err)
	if !c.ambiguous {
		// KMS refused with no effect (limit, conflict, state, denied):
		// the claim is released and blocks nothing.
		r.recordClaim(ctx, it, ledger.Released, opRotateKeyOnDemand+": "+c.detail)
		r.failedAs(it, opRotateKeyOnDemand, err, c, true)
		return
	}
	// Ambiguous (5xx, timeout, connection reset, lost response): the
	// rotation may have been applied, and RotateKeyOnDemand has no
	// idempotency token. KMS promises no read-after-write consistency for
	// the rotation status, so a look that shows nothing does not prove
	// nothing happened: never a second call, in any mode.
	if r.confirm(ctx, it, before) {
		r.recordClaim(ctx, it, ledger.Rotated, "confirmed after an ambiguous failure: "+c.detail)
		r.rotated(it, started)
		return
	}
	// The claim stays and blocks the key until a run settles it from the
	// key's history (ROTATOR_SETTLE_AFTER).
	r.recordClaim(ctx, it, ledger.Unconfirmed, opRotateKeyOnDemand+": "+c.detail)
	it.outcome, it.reason = Failed, ReasonUnconfirmed
	it.detail = fmt.Sprintf("%s: %s; the rotation may have been applied, but KMS did not show it within %s. "+
		"Do not retry blindly: check aws kms get-key-rotation-status (OnDemandRotationStartDate), "+
		"aws kms list-key-rotations (a new ON_DEMAND entry) and aws kms describe-key (CurrentKeyMaterialId, was %s) for %s. "+
		"The rotation ledger holds this run's claim, so no run rotates the key again until one settles it from the key's history",
		opRotateKeyOnDemand, c.detail, r.e.cfg.ConfirmWait, orNone(before.material), it.arn)
	r.finish(it)
}

// timeToRotate says whether the run's call time still holds one call's
// timeout (ROTATOR_CALL_TIMEOUT) and the confirm window
// (ROTATOR_CONFIRM_WAIT) after now: a RotateKeyOnDemand sent later could
// time out and be applied after the run stopped looking.
func (r *run) timeToRotate() bool {
	dl, ok := r.ctx.Deadline()
	if !ok {
		return true
	}
	return time.Until(dl) > r.e.cfg.CallTimeout+r.e.cfg.ConfirmWait
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
// same moment, the window lambda/tests/faults documents; its start date is not
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
	if err := r.status(ctx, it); err == nil && it.facts.inProgress() {
		return true
	}
	if h, err := r.readHistory(ctx, it); err == nil && h.OnDemand > before.onDemand {
		return true
	}
	if before.material == "" {
		return false
	}
	m := r.currentMaterial(ctx, it)
	return m != "" && m != before.material
}

// currentMaterial reads DescribeKey's CurrentKeyMaterialId ("" when the
// call fails: no sign either way).
func (r *run) currentMaterial(ctx context.Context, it *item) string {
	if err := r.call(ctx, opDescribeKey); err != nil {
		return ""
	}
	out, err := r.kmsOf(it).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(it.arn)}, inRegion(it.region))
	if err != nil || out.KeyMetadata == nil {
		return ""
	}
	return aws.ToString(out.KeyMetadata.CurrentKeyMaterialId)
}

// afterKeys is the context of a call made after the run's own calls may be
// over (the look after an ambiguous rotation, the continuation, the result
// event): at most d, and never past lookBy, a quarter margin before the
// Lambda deadline, so it cannot hold the report past it.
func (r *run) afterKeys(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	by := time.Now().Add(d)
	if !r.lookBy.IsZero() && r.lookBy.Before(by) {
		by = r.lookBy
	}
	return context.WithDeadline(context.WithoutCancel(ctx), by)
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

// finish labels the key with its alias, records its entry and logs its line.
func (r *run) finish(it *item) {
	r.closeOpen(it)
	r.setAlias(it)
	r.record(it)
}

// call waits for the operation's pace and counts the call.
func (r *run) call(ctx context.Context, op string) error {
	if err := r.e.pace(ctx, op); err != nil {
		return err
	}
	r.calls.add(op)
	return nil
}

// Operation names, for call counts and error messages.
const (
	opGetResources         = "GetResources"
	opListAliases          = "ListAliases"
	opDescribeKey          = "DescribeKey"
	opListResourceTags     = "ListResourceTags"
	opListKeyRotations     = "ListKeyRotations"
	opGetKeyRotationStatus = "GetKeyRotationStatus"
	opRotateKeyOnDemand    = "RotateKeyOnDemand"
	opGetKeyLastUsage      = "GetKeyLastUsage"
)

var opNames = [...]string{opGetResources, opListAliases, opDescribeKey, opListResourceTags,
	opListKeyRotations, opGetKeyRotationStatus, opRotateKeyOnDemand, opGetKeyLastUsage}

// callCounts counts API calls per operation (one per SDK operation call,
// retries inside the SDK not included).
type callCounts struct{ n [len(opNames)]atomic.Int64 }

func (c *callCounts) add(op string) {
	for i, name := range opNames {
		if name == op {
			c.n[i].Add(1)
			return
		}
	}
}

// snapshot returns the counts by operation name.
func (c *callCounts) snapshot() map[string]int64 {
	m := make(map[string]int64, len(opNames))
	for i, name := range opNames {
		m[name] = c.n[i].Load()
	}
	return m
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
