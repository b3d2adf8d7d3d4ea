package rotator

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kms-rotator/kms-rotator/lambda/ledger"
)

// completion is the stage after RotateKeyOnDemand: it looks for a rotation
// whose answer was lost (confirm) and waits until an incident's new key
// material is current (awaitCompletion), holding those keys' entries until
// then.
type completion struct {
	r  *run
	mu sync.Mutex
	// waiting holds an incident's rotated keys until their new material is
	// current (awaitCompletion).
	waiting []*item
}

// hold keeps a rotated key's entry until awaitCompletion.
func (c *completion) hold(it *item) {
	c.mu.Lock()
	c.waiting = append(c.waiting, it)
	c.mu.Unlock()
}

// waits says whether this run waits for its rotations to complete: an
// incident that rotates, unless the request says "wait": false or
// ROTATOR_INCIDENT_WAIT is 0. Sweeps never wait: the next run sees the
// result, and waiting would cost them the rotation quota's time.
func (c *completion) waits() bool {
	r := c.r
	return r.req.Mode.Rules().Waits && !r.dry && !r.req.NoWait && r.e.cfg.IncidentWait > 0
}

// awaitCompletion polls the incident's rotated keys until their new key
// material is current, up to ROTATOR_INCIDENT_WAIT and never past the
// run's cutoff (the report and the result event need the margin). A
// rotation completes in two steps on AWS: OnDemandRotationStartDate
// disappears within seconds, and CurrentKeyMaterialId changes about a
// minute later; only the second means that new encryptions use new
// material, so that is what "complete" means here.
func (c *completion) awaitCompletion(ctx context.Context) {
	r := c.r
	c.mu.Lock()
	pending := c.waiting
	c.waiting = nil
	c.mu.Unlock()
	if len(pending) == 0 {
		return
	}
	by := time.Now().Add(r.e.cfg.IncidentWait)
	if !r.cutoff.IsZero() && r.cutoff.Before(by) {
		by = r.cutoff
	}
	wctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), by)
	defer cancel()
	// Up to three reads a key a round; a round at most every second, and
	// slower for many keys, so polling stays inside ListKeyRotations'
	// 100 per second and far inside the DescribeKey and
	// GetKeyRotationStatus quotas the sweeps share.
	pause := max(time.Second, time.Duration(len(pending))*time.Second/80)
	for len(pending) > 0 {
		pending = c.pollCompletion(wctx, pending)
		if len(pending) == 0 {
			break
		}
		t := time.NewTimer(pause)
		select {
		case <-wctx.Done():
			t.Stop()
		case <-t.C:
		}
		if wctx.Err() != nil {
			break
		}
	}
	for _, it := range pending {
		it.rot.waited = true
		r.finish(it)
	}
}

// pollCompletion reads each key once, finishes the completed ones and
// returns the others.
func (c *completion) pollCompletion(ctx context.Context, items []*item) []*item {
	var (
		mu   sync.Mutex
		left []*item
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, 8)
	for _, it := range items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if c.completed(ctx, it) {
				it.rot.waited = true
				c.r.finish(it)
				return
			}
			mu.Lock()
			left = append(left, it)
			mu.Unlock()
		})
	}
	wg.Wait()
	return left
}

// completed reads the key's status and its current material: the rotation
// is complete once none is in progress and the material is a new one.
func (c *completion) completed(ctx context.Context, it *item) bool {
	r := c.r
	if err := r.fetch.status(ctx, it); err != nil || it.facts.inProgress() {
		return false
	}
	m := r.fetch.currentMaterial(ctx, it)
	if m == "" || m == it.rot.materialBefore {
		return false
	}
	// Another rotation of the key just before this one (a forced repeat
	// seconds after another) changes the material too: complete means
	// the material of this run's own rotation, the expectOnDemand-th
	// ON_DEMAND entry, or a later one, is current.
	if n := it.rot.expectOnDemand; n > 0 {
		mats, err := c.onDemandMaterials(ctx, it)
		if err != nil || len(mats) < n || !slices.Contains(mats[n-1:], m) {
			return false
		}
		if mats[n-1] != "" {
			m = mats[n-1]
		}
	}
	now := r.e.now()
	it.rot.materialAfter, it.rot.completedAt = m, &now
	r.guard.recordClaim(ctx, it, ledger.Rotated, "")
	return true
}

// onDemandMaterials lists the key material IDs of the key's ON_DEMAND
// rotations, oldest first
// (https://docs.aws.amazon.com/kms/latest/APIReference/API_ListKeyRotations.html).
func (c *completion) onDemandMaterials(ctx context.Context, it *item) ([]string, error) {
	type rot struct {
		at time.Time
		id string
	}
	var rots []rot
	err := c.r.fetch.eachRotation(ctx, it, false, func(e kmstypes.RotationsListEntry) {
		if e.RotationType == kmstypes.RotationTypeOnDemand && e.RotationDate != nil {
			rots = append(rots, rot{aws.ToTime(e.RotationDate), aws.ToString(e.KeyMaterialId)})
		}
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(rots, func(a, b rot) int { return a.at.Compare(b.at) })
	ids := make([]string, len(rots))
	for i, x := range rots {
		ids[i] = x.id
	}
	return ids, nil
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
func (c *completion) confirm(ctx context.Context, it *item, before observation) bool {
	r := c.r
	lctx, cancel := r.afterKeys(ctx, r.e.cfg.ConfirmWait)
	defer cancel()
	pause := 200 * time.Millisecond
	for {
		if c.looksApplied(lctx, it, before) {
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
func (c *completion) looksApplied(ctx context.Context, it *item, before observation) bool {
	r := c.r
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
