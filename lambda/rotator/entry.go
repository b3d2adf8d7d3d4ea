package rotator

import (
	"encoding/json"
	"time"

	"github.com/kms-rotator/kms-rotator/lambda/ledger"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// entry builds the key's report entry from what the run learned.
func (o *outputs) entry(it *item) KeyReport {
	r := o.r
	cfg := r.e.cfg
	k := KeyReport{
		KeyID:   it.keyID,
		KeyARN:  it.arn,
		Alias:   it.alias,
		Outcome: it.outcome,
		Reason:  it.reason,
		Error:   it.detail,
		Claim:   claimReport(it.held),
	}
	if r.e.organization() {
		k.Account = accountOf(it.arn)
	}
	f := &it.facts
	if m := f.Meta; m != nil {
		k.KeyState = m.KeyState
		if m.Replica {
			k.PrimaryKeyARN = m.PrimaryARN
		}
	}
	if s := f.Status; s != nil && s.NextAutomatic != nil {
		k.NextRotationDate = timePtr(*s.NextAutomatic)
	}
	rot := &it.rot
	if f.RotatedAt != nil {
		k.KeyMaterialIDBefore = rot.materialBefore
	}
	if rot.materialAfter != "" {
		k.KeyMaterialID = rot.materialAfter
	} else if h := f.History; h != nil && f.Meta != nil && f.Meta.Origin == "EXTERNAL" {
		k.KeyMaterialID = h.CurrentMaterial
	}
	if rot.waited {
		k.Completion = "pending"
		if rot.completedAt != nil {
			k.Completion, k.CompletedAt = "complete", timePtr(*rot.completedAt)
		}
	}
	k.Stuck = f.stuck(r.e.now(), cfg.StuckAfter)
	k.Owner = f.Owner
	notice := r.e.now().Add(days(cfg.NoticeDays))
	if h := f.History; h != nil {
		k.StagedKeyMaterialID = h.Staged
		if k.StagedKeyMaterialID == "" {
			k.StagedKeyMaterialID = h.StagedForReplicas
		}
		if h.CurrentValidTo != nil {
			k.MaterialExpiresAt = timePtr(*h.CurrentValidTo)
			// Expired already is worse than expiring: both need new
			// material imported now.
			k.MaterialExpiringSoon = cfg.NoticeDays > 0 && h.CurrentValidTo.Before(notice)
		}
	}
	if u := f.Usage; u != nil {
		k.LastUsedAt = json.RawMessage("null")
		if u.LastUsed != nil {
			k.LastUsedAt, _ = json.Marshal(fmtTime(*u.LastUsed))
		}
	}
	used, remaining, known := f.Budget(cfg.OnDemandLimit)
	k.Next = next(it.outcome, it.reason, known && remaining == 0, cfg)
	if !known {
		return k
	}
	k.OnDemandUsed, k.OnDemandRemaining = &used, &remaining
	material := f.Material()
	if f.RotatedAt != nil || f.inProgress() || !f.History.Newest.IsZero() {
		k.LastRotation = timePtr(material)
	}
	if material.IsZero() {
		return k
	}
	now := r.e.now()
	nextDue := material.Add(days(f.IntervalDays))
	k.NextDue = timePtr(nextDue)
	age := int(now.Sub(material) / (24 * time.Hour))
	overdue := it.overdue(now, cfg)
	k.MaterialAgeDays, k.Overdue = &age, &overdue
	if overdue {
		k.OverdueFor = overdueFor(it.reason)
	}
	// Upcoming: due within the notice days, not rotated now and not
	// overdue already (that is a louder signal).
	k.DueSoon = cfg.NoticeDays > 0 && !overdue && it.outcome != Rotated && it.outcome != WouldRotate &&
		nextDue.After(now) && nextDue.Before(notice)
	if r.req.Mode.Rules().Inventory {
		interval := f.IntervalDays
		left := max(remaining-cfg.Reserve, 0)
		k.IntervalDays, k.ScheduledRotationsLeft = &interval, &left
		if left > 0 {
			first := nextDue
			if first.Before(now) {
				first = now
			}
			k.BudgetRunsOutAt = timePtr(first.Add(days(interval * (left - 1))))
		}
	}
	return k
}

// overdue says whether the key's material is older than its interval and
// this run neither rotated it nor would rotate it: the cryptoperiod signal
// (KeysOverdue). Keys left for later on purpose are not overdue while
// that is ordinary: deferred ones (the next link or run takes them) up to
// overdueBound past their interval, and those waiting for their free
// automatic rotation (automatic-rotation-soon) up to the grace days — past
// that, the automatic rotation was missed.
func (it *item) overdue(now time.Time, cfg settings.Config) bool {
	f := &it.facts
	if f.History == nil || f.IntervalDays <= 0 {
		return false
	}
	m := f.Material()
	if m.IsZero() {
		return false
	}
	// Another run's claim that rotated the key (or is rotating it) is its
	// newest rotation, though KMS may not list it yet: not overdue for
	// the minute its material takes. An unconfirmed one is not counted.
	if h := it.held; h != nil && (h.Outcome == ledger.Rotated || h.Outcome == ledger.Claimed) && h.ClaimedAt.After(m) {
		m = h.ClaimedAt
	}
	age, interval := now.Sub(m), days(f.IntervalDays)
	switch {
	case it.outcome == Rotated || it.outcome == WouldRotate:
		return false
	case it.outcome == Deferred:
		return age > interval+overdueBound
	case it.reason == ReasonAutomaticRotationSoon:
		return age > interval+days(cfg.AutoRotationGraceDays)
	}
	return age > interval
}

// overdueBound is how long past its interval a deferred key may wait for
// the next run or link before it counts as overdue: a day's sweep and one
// more.
const overdueBound = 48 * time.Hour

// Why an overdue key is overdue (the entry's overdueFor).
const (
	// OverdueForAction: someone must act — a failure, an unconfirmed or
	// stuck rotation, a key deferred past overdueBound, a missed automatic
	// rotation (KeysOverdueAction, the keys-overdue alarm).
	OverdueForAction = "action"
	// OverdueByPolicy: the product keeps it overdue on purpose — the
	// reserve, an exhausted budget, material not imported, an idle key
	// (KeysOverdueByPolicy).
	OverdueByPolicy = "policy"
)

// overdueFor classifies an overdue key.
func overdueFor(reason Reason) string {
	switch reason {
	case ReasonBudgetReserved, ReasonBudgetExhausted, ReasonMaterialNotStaged, ReasonMaterialPendingReplicaImport, ReasonIdle:
		return OverdueByPolicy
	}
	return OverdueForAction
}
