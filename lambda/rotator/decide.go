package rotator

import (
	"time"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// Outcome is what happened to a key in a run (docs/design.md "Decisions: outcomes and reasons").
type Outcome string

// The outcomes of docs/design.md "Decisions: outcomes and reasons".
const (
	Rotated     Outcome = "rotated"
	WouldRotate Outcome = "would-rotate"
	Skipped     Outcome = "skipped"
	Failed      Outcome = "failed"
	Deferred    Outcome = "deferred"
)

// Reason says why a key got its outcome; empty for rotated and would-rotate.
type Reason string

// The reasons of docs/design.md "Decisions: outcomes and reasons".
const (
	ReasonNone               Reason = ""
	ReasonNotOptedIn         Reason = "not-opted-in"
	ReasonAWSManaged         Reason = "aws-managed"
	ReasonUnsupportedKeySpec Reason = "unsupported-key-spec"
	ReasonCustomKeyStore     Reason = "custom-key-store"
	ReasonMultiRegionReplica Reason = "multi-region-replica"
	ReasonKeyNotEnabled      Reason = "key-not-enabled"
	ReasonRotationInProgress Reason = "rotation-in-progress"
	ReasonBudgetExhausted    Reason = "budget-exhausted"
	ReasonBudgetReserved     Reason = "budget-reserved"
	ReasonNotDue             Reason = "not-due"
	ReasonNotFound           Reason = "not-found"
	ReasonAccessDenied       Reason = "access-denied"
	ReasonThrottled          Reason = "throttled"
	ReasonError              Reason = "error"
	ReasonDeadline           Reason = "deadline"
	// ReasonRecentlyRotated: an incident met a key whose newest on-demand
	// rotation (completed or in progress) is younger than
	// ROTATOR_INCIDENT_COOLDOWN, and the request did not say force.
	ReasonRecentlyRotated Reason = "recently-rotated"
	// ReasonUnconfirmed: RotateKeyOnDemand failed ambiguously (5xx,
	// timeout, lost response) and KMS did not show the rotation within
	// ROTATOR_CONFIRM_WAIT. It may have been applied; it is never retried.
	ReasonUnconfirmed Reason = "unconfirmed"
	// ReasonAutomaticRotationSoon: a sweep met a due key whose automatic
	// rotation comes within ROTATOR_AUTO_ROTATION_GRACE_DAYS: that one is
	// free, an on-demand one spends the lifetime budget.
	ReasonAutomaticRotationSoon Reason = "automatic-rotation-soon"
	// ReasonMaterialNotStaged: an imported key (Origin EXTERNAL) has no new
	// material waiting in PENDING_ROTATION: KMS rotates such a key on
	// demand only to material imported for it beforehand.
	ReasonMaterialNotStaged Reason = "material-not-staged"
	// ReasonMaterialPendingReplicaImport: a multi-Region imported key's new
	// material is not yet imported into every replica
	// (PENDING_MULTI_REGION_IMPORT_AND_ROTATION).
	ReasonMaterialPendingReplicaImport Reason = "material-pending-replica-import"
	// ReasonIdle: with ROTATOR_SKIP_IDLE, a due key (sweeps) with no
	// cryptographic use since its newest rotation.
	ReasonIdle Reason = "idle"
)

// Action is the next step the engine takes for a key: fetch one more fact
// (cheapest first), rotate it, or stop with a final outcome.
type Action int

// The actions, in the order a key's pipeline meets them.
const (
	// Done: the decision is final (Outcome and Reason are set).
	Done Action = iota
	// FetchMetadata: call DescribeKey.
	FetchMetadata
	// FetchTags: call ListResourceTags (incident keys named explicitly).
	FetchTags
	// FetchHistory: call ListKeyRotations (all pages).
	FetchHistory
	// FetchStatus: call GetKeyRotationStatus.
	FetchStatus
	// FetchUsage: call GetKeyLastUsage.
	FetchUsage
	// Rotate: the key is due. The rotation stage re-reads its status and
	// history right before calling RotateKeyOnDemand, and decides again.
	Rotate
)

// Metadata is what the decision needs from DescribeKey's KeyMetadata.
type Metadata struct {
	KeyManager  string // "AWS" | "CUSTOMER"
	KeySpec     string
	KeyUsage    string
	Origin      string // "AWS_KMS" | "EXTERNAL" | "AWS_CLOUDHSM" | "EXTERNAL_KEY_STORE"
	KeyState    string
	Replica     bool   // MultiRegionKeyType = REPLICA
	PrimaryARN  string // the primary's ARN, for replicas
	CreatedAt   time.Time
	Description string
	// MaterialID is DescribeKey's CurrentKeyMaterialId: it changes when a
	// rotation completes, so it tells whether an ambiguous rotation applied.
	MaterialID string
	// Replicas are a multi-Region primary's replicas: KMS tracks a key's
	// last use per Region.
	Replicas []RegionalKey
}

// RegionalKey is a key ARN and its Region.
type RegionalKey struct{ ARN, Region string }

// History summarises ListKeyRotations (all pages).
type History struct {
	// OnDemand counts ON_DEMAND entries: the budget used.
	OnDemand int
	// Newest is the newest rotation of any type; zero when the key was never rotated.
	Newest time.Time
	// NewestOnDemand is the newest ON_DEMAND rotation; zero when none.
	NewestOnDemand time.Time
	// CurrentMaterial is the material listed CURRENT (empty when no entry
	// says so), and CurrentValidTo when that imported material expires.
	CurrentMaterial string
	CurrentValidTo  *time.Time
	// Staged is an imported key's new material waiting in
	// PENDING_ROTATION: what RotateKeyOnDemand would make current.
	Staged string
	// PendingReplicaImport: an imported multi-Region key's new material
	// (StagedForReplicas) still waits for its replicas
	// (PENDING_MULTI_REGION_IMPORT_AND_ROTATION): the material to import
	// into them.
	PendingReplicaImport bool
	StagedForReplicas    string
}

// Usage is what GetKeyLastUsage says.
type Usage struct {
	// LastUsed is the last successful cryptographic operation; nil when
	// none since TrackingStart.
	LastUsed *time.Time
	// TrackingStart is when KMS began recording the key's use.
	TrackingStart time.Time
}

// Status is what the decision needs from GetKeyRotationStatus.
type Status struct {
	// OnDemandStart is set while an on-demand rotation is in progress.
	OnDemandStart *time.Time
	// NextAutomatic is NextRotationDate: set while automatic rotation is
	// enabled.
	NextAutomatic *time.Time
}

// Facts is everything known about one key when deciding. Nil pointers are
// facts not fetched yet; Decide asks for them one at a time, cheapest first.
type Facts struct {
	// Asked is what the request asks of every key; Tags what the key's
	// tags say.
	Asked
	Tags
	Meta    *Metadata
	History *History
	Status  *Status
	// Usage is GetKeyLastUsage's answer (sweeps with ROTATOR_SKIP_IDLE,
	// and report mode).
	Usage *Usage
	// Open: the ledger holds a rotation of this key whose completion no
	// run has seen (sweeps read its status whatever its due date, so a
	// stuck rotation is flagged).
	Open bool
	// RotatedAt is when this run's RotateKeyOnDemand was accepted (or its
	// ambiguous failure confirmed); nil when this run did not rotate the key.
	RotatedAt *time.Time
	// LimitReached is set when KMS answered LimitExceededException: the
	// lifetime limit is KMS's to judge, whatever our count says.
	LimitReached bool
}

// Asked is what a run's request asks of each of its keys.
type Asked struct {
	Mode   request.Mode
	DryRun bool
	// Force (incident requests only) rotates inside the cooldown.
	Force bool
	// WantUsage (report runs with "usage": true) reads each key's last use.
	WantUsage bool
}

// Tags is what a key's tags say.
type Tags struct {
	// TagsKnown says whether OptedIn and IntervalDays/IntervalErr are known
	// (from GetResources, or from ListResourceTags for explicit incident keys).
	TagsKnown bool
	OptedIn   bool
	// IntervalDays is the key's interval: its tag kms-rotator:interval-days
	// when valid, else the configured default.
	IntervalDays int
	// IntervalErr is set when the key's interval tag is present but invalid.
	IntervalErr string
	// Owner is the value of the key's owner tag (ROTATOR_OWNER_TAG_KEY).
	Owner string
}

// Decision is Decide's answer.
type Decision struct {
	Action  Action
	Outcome Outcome // set when Action is Done
	Reason  Reason  // set when Action is Done
	Detail  string  // a human explanation for error outcomes
}

// Budget is the one count of a key's lifetime on-demand rotations, used by
// Decide, the report entries and the metrics alike: the ON_DEMAND entries of
// its history, plus one rotation in progress or started by this run
// (ListKeyRotations lists an on-demand rotation only once it completes, and
// one in progress is already spent), against limit. When KMS answered
// LimitExceededException nothing remains, whatever the count says. known
// is false until the history was read.
func (f *Facts) Budget(limit int) (used, remaining int, known bool) {
	if f.History == nil {
		return 0, 0, false
	}
	used = f.History.OnDemand
	if f.RotatedAt != nil || f.inProgress() {
		used++
	}
	remaining = max(limit-used, 0)
	if f.LimitReached {
		remaining = 0
	}
	return used, remaining, true
}

func (f *Facts) inProgress() bool { return f.Status != nil && f.Status.OnDemandStart != nil }

// Material is the date the key's current material dates from: this run's
// rotation, another's in progress, the newest completed rotation, or the
// key's creation. Zero when nothing is known.
func (f *Facts) Material() time.Time {
	switch {
	case f.RotatedAt != nil:
		return *f.RotatedAt
	case f.inProgress():
		return *f.Status.OnDemandStart
	}
	return f.Age()
}

// idle says whether the key has had no cryptographic use since its current
// material dates (newest rotation, or creation). Only when KMS was already
// tracking the key's use then, and only once that date is more than a day
// old: GetKeyLastUsage may report a use up to a day late
// (https://docs.aws.amazon.com/kms/latest/APIReference/API_GetKeyLastUsage.html).
func (f *Facts) idle(now time.Time) bool {
	u, since := f.Usage, f.Age()
	if u == nil || since.IsZero() || u.TrackingStart.After(since) || now.Sub(since) < 24*time.Hour {
		return false
	}
	return u.LastUsed == nil || u.LastUsed.Before(since)
}

// stuck says whether an on-demand rotation has been in progress longer
// than after.
func (f *Facts) stuck(now time.Time, after time.Duration) bool {
	return f.inProgress() && now.Sub(*f.Status.OnDemandStart) > after
}

// newestOnDemand is the newest on-demand rotation, completed or in progress.
func (f *Facts) newestOnDemand() time.Time {
	var t time.Time
	if f.History != nil {
		t = f.History.NewestOnDemand
	}
	if f.inProgress() && f.Status.OnDemandStart.After(t) {
		t = *f.Status.OnDemandStart
	}
	return t
}

// Age returns the date the key's current material dates from: its newest
// rotation of any type, or its creation when never rotated.
func (f *Facts) Age() time.Time {
	if f.History != nil && !f.History.Newest.IsZero() {
		return f.History.Newest
	}
	if f.Meta != nil {
		return f.Meta.CreatedAt
	}
	return time.Time{}
}

// NextDue is when the key is due for its next scheduled rotation (zero when
// the age is unknown).
func (f *Facts) NextDue() time.Time {
	a := f.Age()
	if a.IsZero() || f.IntervalDays <= 0 {
		return time.Time{}
	}
	return a.Add(days(f.IntervalDays))
}

func days(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }

// scheduledLike reports whether mode follows the scheduled rules (interval,
// reserve): scheduled itself, plan (its dry run) and report (its inventory).
func scheduledLike(m request.Mode) bool { return m.Rules().Sweep }

// Decide is the whole rotation policy, a pure function of what is known about
// a key. It returns the first applicable row of the docs/design.md reason table —
// in the table's order, except that what the key is (AWS managed, key spec,
// origin, replica) comes before whether it opted in — or the next fact it
// needs. Because facts arrive
// cheapest first (DescribeKey, ListKeyRotations, GetKeyRotationStatus), a key
// that is not due stops after two calls.
func Decide(f Facts, now time.Time, cfg settings.Config) Decision {
	done := func(o Outcome, r Reason) Decision { return Decision{Action: Done, Outcome: o, Reason: r} }
	if f.Meta == nil {
		return Decision{Action: FetchMetadata}
	}
	m := f.Meta
	// What the key is comes first: no tag could make these rotatable, so
	// "not-opted-in" would send the caller the wrong way (an AWS managed
	// key cannot even carry tags).
	switch {
	// Only customer managed symmetric encryption keys with KMS-generated
	// material can be rotated on demand
	// (https://docs.aws.amazon.com/kms/latest/developerguide/rotating-keys-on-demand.html).
	case m.KeyManager == "AWS":
		return done(Skipped, ReasonAWSManaged)
	case m.KeySpec != "SYMMETRIC_DEFAULT" || m.KeyUsage != "ENCRYPT_DECRYPT":
		return done(Skipped, ReasonUnsupportedKeySpec)
	case m.Origin != "AWS_KMS" && m.Origin != "EXTERNAL":
		return done(Skipped, ReasonCustomKeyStore)
	// Rotating a multi-Region primary rotates its replicas; replicas cannot
	// be rotated themselves
	// (https://docs.aws.amazon.com/kms/latest/developerguide/multi-region-keys-manage.html#multi-region-rotate).
	case m.Replica:
		return done(Skipped, ReasonMultiRegionReplica)
	}
	if !f.TagsKnown {
		return Decision{Action: FetchTags}
	}
	switch {
	case !f.OptedIn:
		return done(Skipped, ReasonNotOptedIn)
	// KMS rotates only enabled keys; the state table is not settled for
	// RotateKeyOnDemand, so anything else is skipped (https://docs.aws.amazon.com/kms/latest/developerguide/key-state.html).
	case m.KeyState != "Enabled":
		return done(Skipped, ReasonKeyNotEnabled)
	case scheduledLike(f.Mode) && f.IntervalErr != "":
		// A malformed override is never guessed at: falling back to the
		// default could spend rotations the key's owner did not intend.
		return Decision{Action: Done, Outcome: Failed, Reason: ReasonError, Detail: f.IntervalErr}
	}
	if f.History == nil {
		return Decision{Action: FetchHistory}
	}
	if f.Mode.Rules().Inventory {
		// The inventory reads every eligible key's rotation status (a
		// cheap call: 1,000/s) so its budgets count a rotation in
		// progress; when asked ("usage": true), when each key was last
		// used (GetKeyLastUsage: 5/s, so a 10,000-key fleet takes half
		// an hour).
		if f.Status == nil {
			return Decision{Action: FetchStatus}
		}
		if f.WantUsage && f.Usage == nil {
			return Decision{Action: FetchUsage}
		}
	}
	// Imported material is rotated on demand only to new material staged
	// for it (https://docs.aws.amazon.com/kms/latest/developerguide/rotate-keys-on-demand.html,
	// https://docs.aws.amazon.com/kms/latest/developerguide/importing-keys-rotate.html).
	if m.Origin == "EXTERNAL" && f.History.Staged == "" {
		if f.History.PendingReplicaImport {
			return done(Skipped, ReasonMaterialPendingReplicaImport)
		}
		return done(Skipped, ReasonMaterialNotStaged)
	}
	if f.Open && f.Status == nil {
		// A rotation started earlier and never seen complete: its status
		// tells whether it is still in progress, and for how long.
		return Decision{Action: FetchStatus}
	}
	if scheduledLike(f.Mode) {
		// Scheduled runs keep the reserve for incidents. Incidents never
		// refuse on this count alone: KMS judges the lifetime limit
		// (LimitExceededException), and a count that disagrees with KMS
		// must not stop a responder.
		_, remaining, _ := f.Budget(cfg.OnDemandLimit)
		if f.Status == nil && remaining <= cfg.Reserve+1 {
			// Near the reserve, one rotation in progress (listed only once
			// it completes) changes the answer: read the status first, so
			// the entry and the metrics count it like KMS does.
			return Decision{Action: FetchStatus}
		}
		switch {
		case remaining == 0:
			return done(Skipped, ReasonBudgetExhausted)
		case remaining <= cfg.Reserve:
			return done(Skipped, ReasonBudgetReserved)
		case now.Before(f.NextDue()):
			return done(Skipped, ReasonNotDue)
		}
		if cfg.SkipIdle {
			if f.Usage == nil {
				return Decision{Action: FetchUsage}
			}
			if f.idle(now) {
				return done(Skipped, ReasonIdle)
			}
		}
	}
	if f.Status == nil {
		if !f.DryRun {
			// Rotate: the rotation stage reads the status and the history
			// right before RotateKeyOnDemand and decides again with them.
			return Decision{Action: Rotate}
		}
		return Decision{Action: FetchStatus}
	}
	if !scheduledLike(f.Mode) && !f.Force && cfg.IncidentCooldown > 0 {
		// Repeats are ordinary (CLI re-sends after 60 s, SOAR retries,
		// at-least-once delivery): one rotation per incident, not one per
		// delivery.
		if last := f.newestOnDemand(); !last.IsZero() && now.Sub(last) < cfg.IncidentCooldown {
			return done(Skipped, ReasonRecentlyRotated)
		}
	}
	if f.inProgress() {
		return done(Skipped, ReasonRotationInProgress)
	}
	if scheduledLike(f.Mode) && cfg.AutoRotationGraceDays > 0 {
		// On-demand rotation does not move the automatic schedule
		// (https://docs.aws.amazon.com/kms/latest/developerguide/rotating-keys-on-demand.html):
		// spending a lifetime rotation days before a free one buys nothing.
		// Only a NextRotationDate still ahead: one in the past is an
		// automatic rotation that did not happen, and waiting for it
		// would skip the key forever.
		if next := f.Status.NextAutomatic; next != nil && next.After(now) && next.Before(now.Add(days(cfg.AutoRotationGraceDays))) {
			return done(Skipped, ReasonAutomaticRotationSoon)
		}
	}
	if f.DryRun {
		return done(WouldRotate, ReasonNone)
	}
	return Decision{Action: Rotate}
}
