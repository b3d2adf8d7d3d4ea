package rotator

import (
	"encoding/json"
	"log/slog"
	"time"

	"github.com/kms-rotator/kms-rotator/lambda/request"
)

// MaxListedKeys is the number of entries beyond which the report lists only
// the entries that are not "not-due", to stay under Lambda's 6 MB response
// limit; the summary always counts every candidate (docs/design.md "The report").
const MaxListedKeys = 2000

// MaxReportEntries bounds Keys whatever the fleet: at about 400 bytes an
// entry, 10,000 entries keep the response well under Lambda's 6 MB
// (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
const MaxReportEntries = 10000

// maxReportLogBytes bounds the report's log line: a CloudWatch Logs event
// holds at most 256 KB
// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/cloudwatch_limits_cwl.html).
const maxReportLogBytes = 200 << 10

// Report is the result of a run, returned by the function and logged as the
// last line (docs/design.md "The report" — Contract).
type Report struct {
	RunID string       `json:"runId"`
	Mode  request.Mode `json:"mode"`
	// Account is the account the run worked in (organization mode only).
	Account    string      `json:"account,omitempty"`
	DryRun     bool        `json:"dryRun"`
	StartedAt  string      `json:"startedAt"`
	FinishedAt string      `json:"finishedAt"`
	Summary    Summary     `json:"summary"`
	Keys       []KeyReport `json:"keys"`
	// OmittedNotDue counts the not-due entries left out of Keys because
	// the run had more than MaxListedKeys candidates (absent when none).
	OmittedNotDue int `json:"omittedNotDue,omitempty"`
	// OmittedOther counts further entries left out because even without
	// the not-due ones Keys would exceed MaxReportEntries or
	// maxReportBytes, by the trim policy (fit): skipped entries first,
	// then deferred ones, then rotated and would-rotate ones, then failed
	// ones (absent when none).
	OmittedOther int `json:"omittedOther,omitempty"`
	// Evidence is where the run's evidence record went, or why it could
	// not be written (absent when no evidence bucket is set).
	Evidence *EvidenceReport `json:"evidence,omitempty"`
	// RepeatOf names the run whose report this is when the request repeats
	// an earlier one (same requestId or content) within
	// ROTATOR_IDEMPOTENCY_WINDOW: nothing was rotated again.
	RepeatOf string `json:"repeatOf,omitempty"`
	// Continuation shows the run's place in a chain of continuations and
	// whether it started the next link (absent when not applicable).
	Continuation *ContinuationReport `json:"continuation,omitempty"`

	// keysBytes is the encoded size of Keys (fitBytes).
	keysBytes int
}

// Summary counts every candidate of the run by outcome and by reason.
type Summary struct {
	Candidates  int `json:"candidates"`
	Rotated     int `json:"rotated"`
	WouldRotate int `json:"wouldRotate"`
	Skipped     int `json:"skipped"`
	Failed      int `json:"failed"`
	Deferred    int `json:"deferred"`
	// DueSoon and MaterialExpiringSoon count the entries that say so
	// (KeysDueSoon, MaterialExpiringSoon).
	DueSoon              int `json:"dueSoon"`
	MaterialExpiringSoon int `json:"materialExpiringSoon"`
	// Overdue counts the entries with overdue true (KeysOverdue), split
	// into OverdueAction and OverdueByPolicy by their overdueFor.
	Overdue         int `json:"overdue"`
	OverdueAction   int `json:"overdueAction"`
	OverdueByPolicy int `json:"overdueByPolicy"`
	// NotRotated (incidents only) counts the keys the request named, or
	// its tag selected, that were not rotated (would not be, in a dry
	// run): Reasons says why. A playbook checks it, not only failed.
	NotRotated *int           `json:"notRotated,omitempty"`
	Reasons    map[Reason]int `json:"reasons"`
}

// KeyReport is one candidate's entry. Times are RFC 3339 in UTC; a nil
// pointer is JSON null (unknown or not applicable).
type KeyReport struct {
	KeyID  string `json:"keyId"`
	KeyARN string `json:"keyArn"`
	// Account is the key's account (organization mode only).
	Account string  `json:"account,omitempty"`
	Alias   string  `json:"alias"`
	Outcome Outcome `json:"outcome"`
	Reason  Reason  `json:"reason"`
	// KeyState is the key's state from DescribeKey (absent when unknown).
	KeyState string `json:"keyState,omitempty"`
	// OnDemandUsed and OnDemandRemaining are the on-demand budget after
	// this run (a rotation this run started counts); null when the
	// rotation history was not read (ineligible keys, failures).
	OnDemandUsed      *int `json:"onDemandUsed"`
	OnDemandRemaining *int `json:"onDemandRemaining"`
	// LastRotation is the newest rotation (any type; for a key rotated in
	// this run, when the rotation started); null when never rotated or unknown.
	LastRotation *string `json:"lastRotation"`
	// NextDue is when the scheduled sweep will next find the key due
	// (material date + interval); null when unknown.
	NextDue *string `json:"nextDue"`
	// PrimaryKeyARN names a replica's multi-Region primary.
	PrimaryKeyARN string `json:"primaryKeyArn,omitempty"`
	// Error carries the AWS error code and message of a failed entry.
	Error string `json:"error,omitempty"`

	// NextRotationDate is the key's next automatic rotation, when
	// automatic rotation is enabled and the status was read.
	NextRotationDate *string `json:"nextRotationDate,omitempty"`
	// MaterialAgeDays is the age in whole days of the key's current
	// material (since its newest rotation, or its creation); Overdue is
	// true when that material is older than the key's interval and this
	// run neither rotated it nor would rotate it. Both are set for every
	// key whose history was read (the eligible ones), in every mode.
	MaterialAgeDays *int  `json:"materialAgeDays,omitempty"`
	Overdue         *bool `json:"overdue,omitempty"`
	// OverdueFor says why an overdue key is overdue: "action" (someone
	// must act) or "policy" (kept so on purpose).
	OverdueFor string `json:"overdueFor,omitempty"`

	// KeyMaterialIDBefore is the current key material right before this
	// run's rotation (rotated entries).
	KeyMaterialIDBefore string `json:"keyMaterialIdBefore,omitempty"`
	// KeyMaterialID is the current key material: of an imported key, or
	// the new one once a rotation this run waited for completed.
	KeyMaterialID string `json:"keyMaterialId,omitempty"`
	// CompletedAt is when the run saw the new material current; Completion
	// is "complete" or "pending" when an incident waited for it.
	CompletedAt *string `json:"completedAt,omitempty"`
	Completion  string  `json:"completion,omitempty"`
	// Stuck flags an on-demand rotation in progress for longer than
	// ROTATOR_STUCK_AFTER.
	Stuck bool `json:"stuck,omitempty"`
	// StagedKeyMaterialID is an imported key's material waiting in
	// PENDING_ROTATION; MaterialExpiresAt when its current material expires.
	StagedKeyMaterialID string  `json:"stagedKeyMaterialId,omitempty"`
	MaterialExpiresAt   *string `json:"materialExpiresAt,omitempty"`
	// LastUsedAt is the key's last cryptographic use (GetKeyLastUsage;
	// null when none since tracking began, absent when not read).
	LastUsedAt json.RawMessage `json:"lastUsedAt,omitempty"`

	// Owner is the value of the key's owner tag (ROTATOR_OWNER_TAG_KEY),
	// so notices can be routed per owner.
	Owner string `json:"owner,omitempty"`
	// DueSoon: the key falls due within ROTATOR_NOTICE_DAYS (a key this
	// run did not rotate and that is not overdue yet).
	DueSoon bool `json:"dueSoon,omitempty"`
	// MaterialExpiringSoon: the key's imported material expires (or has
	// expired) within ROTATOR_NOTICE_DAYS: an expired import makes the key
	// unusable.
	MaterialExpiringSoon bool `json:"materialExpiringSoon,omitempty"`
	// Next is a short next step for a skipped or failed entry (and for an
	// incident dry run's key with no on-demand rotation left).
	Next string `json:"next,omitempty"`
	// Claim is the ledger's claim that kept this run from rotating the key
	// (recently-rotated), or in report mode the key's newest claim.
	Claim *ClaimReport `json:"claim,omitempty"`

	// Report mode only (absent in other modes and when unknown).

	// IntervalDays is the key's effective interval (tag override or default).
	IntervalDays *int `json:"intervalDays,omitempty"`
	// ScheduledRotationsLeft is how many rotations scheduled runs may still
	// spend: remaining − reserve, at least 0.
	ScheduledRotationsLeft *int `json:"scheduledRotationsLeft,omitempty"`
	// BudgetRunsOutAt is the date of the last rotation the scheduled budget
	// allows at the key's interval (from the next due date, or now if
	// overdue); absent when ScheduledRotationsLeft is 0.
	BudgetRunsOutAt *string `json:"budgetRunsOutAt,omitempty"`
}

// fmtTime formats t as RFC 3339 in UTC with at most millisecond precision.
func fmtTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.999Z07:00")
}

func timePtr(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := fmtTime(t)
	return &s
}

// outputs is the stage that tells what a run did: each finished key's
// entry and line, the tally of them, and what the run writes once its keys
// are done — the report, the summary line, the continuation, the result
// event and the evidence record (the metrics: metrics.go).
type outputs struct {
	r     *run
	start time.Time
	// tally keeps what the report and the metrics need of finished keys.
	tally *tally
	// book gathers every entry for the evidence record (evidence.go);
	// nil when none is written. findings gathers the Security Hub
	// findings (findings.go); nil when none are imported.
	book     *evidenceBook
	findings *findingBook
	// cont is the report's continuation object (continuation.go).
	cont *ContinuationReport
}

// reportAccount is the report's account: set in organization mode only.
func (o *outputs) reportAccount() string {
	r := o.r
	if r.e.organization() {
		return r.scope.Account
	}
	return ""
}

// report assembles the run's report: every candidate counted exactly once
// in the summary, the entries the response can hold sorted by key ARN.
func (o *outputs) report() *Report {
	r := o.r
	t := o.tally
	keys := t.finish()
	if !r.req.Mode.Rules().Sweep {
		n := t.counts.summary.Candidates - t.counts.summary.Rotated - t.counts.summary.WouldRotate
		t.counts.summary.NotRotated = &n
	}
	rep := &Report{
		RunID:         r.id,
		Mode:          r.req.Mode,
		Account:       o.reportAccount(),
		DryRun:        r.dry && r.guard.repeatOf == "" || r.req.DryRun || r.e.cfg.DryRun,
		StartedAt:     fmtTime(o.start),
		Summary:       t.counts.summary,
		OmittedNotDue: t.entries.omittedNotDue,
		OmittedOther:  t.entries.omittedOther,
	}
	var dropped int
	rep.Keys, dropped, rep.keysBytes = fitBytes(keys, o.maxKeysBytes())
	rep.OmittedOther += dropped
	rep.FinishedAt = fmtTime(r.e.now())
	return rep
}

// maxReportBytes bounds the encoded entries, leaving room under Lambda's
// 6 MB response limit for the rest of the report. The entry count alone
// does not hold the size: a failed entry carries AWS's error message, and
// an access-denied one is about 1 KB (10,000 of them would be 10 MB).
const maxReportBytes = 5 << 20

// maxTargetKeysBytes bounds the entries of a run that names a target: an
// organization's state machine invokes it, and Step Functions fails a task
// whose result is over 256 KiB
// (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html).
// The per-key log lines carry every entry whatever is left out here.
const maxTargetKeysBytes = 200 << 10

// maxKeysBytes is the budget of the report's entries for this run.
func (o *outputs) maxKeysBytes() int {
	if o.r.req.Target != nil {
		return maxTargetKeysBytes
	}
	return maxReportBytes
}

// fitBytes drops entries until the encoded list fits maxBytes, by the trim
// policy (fit), and returns the list kept, how many entries it dropped and
// the encoded size of those kept.
func fitBytes(keys []KeyReport, maxBytes int) ([]KeyReport, int, int) {
	size := make([]int, len(keys))
	total := 0
	for i, k := range keys {
		b, err := json.Marshal(k)
		if err != nil {
			return keys, 0, 0 // not reached: KeyReport always encodes
		}
		size[i] = len(b) + 1 // and its comma
		total += size[i]
	}
	if total <= maxBytes {
		return keys, 0, total
	}
	keep := fit(len(keys), func(i int) Outcome { return keys[i].Outcome }, func(i int) int { return size[i] }, maxBytes)
	kept := make([]KeyReport, 0, len(keys))
	total = 0
	for i, k := range keys {
		if keep[i] {
			kept = append(kept, k)
			total += size[i]
		}
	}
	return kept, len(keys) - len(kept), total
}

// record writes the key's decision line and adds its entry to the tally;
// the item's facts are not needed after this.
func (o *outputs) record(it *item) {
	r := o.r
	k := o.entry(it)
	o.tally.add(it.sortKey(), k)
	if o.book != nil {
		o.book.add(k, it.unread || k.Outcome == Deferred)
	}
	if o.findings != nil && !it.unread && k.Outcome != Deferred {
		o.findings.add(k)
	}
	attrs := []slog.Attr{
		slog.String("keyId", k.KeyID),
		slog.String("keyArn", k.KeyARN),
		slog.String("alias", k.Alias),
		slog.String("outcome", string(k.Outcome)),
		slog.String("reason", string(k.Reason)),
		slog.Int("onDemandLimit", r.e.cfg.OnDemandLimit),
		slog.Int("reserve", r.e.cfg.Reserve),
	}
	if it.ref != "" {
		attrs = append(attrs, slog.String("requestedAs", it.ref))
	}
	if k.Account != "" {
		attrs = append(attrs, slog.String("account", k.Account))
	}
	if k.KeyState != "" {
		attrs = append(attrs, slog.String("keyState", k.KeyState))
	}
	if k.OnDemandUsed != nil {
		attrs = append(attrs, slog.Int("onDemandUsed", *k.OnDemandUsed), slog.Int("onDemandRemaining", *k.OnDemandRemaining))
	}
	if k.LastRotation != nil {
		attrs = append(attrs, slog.String("lastRotation", *k.LastRotation))
	}
	if k.NextDue != nil {
		attrs = append(attrs, slog.String("nextDue", *k.NextDue))
	}
	if k.PrimaryKeyARN != "" {
		attrs = append(attrs, slog.String("primaryKeyArn", k.PrimaryKeyARN))
	}
	if k.Error != "" {
		attrs = append(attrs, slog.String("error", k.Error))
	}
	if r.req.Reason != "" {
		// Logged as data: the JSON handler escapes it.
		attrs = append(attrs, slog.String("incidentReason", r.req.Reason))
	}
	level := slog.LevelInfo
	if k.Outcome == Failed {
		level = slog.LevelError
	}
	r.log.LogAttrs(r.ctx, level, "key decision", attrs...)
	it.facts, it.rot = Facts{}, rotation{} // drop what the entry now holds
}

// logSummary writes the summary line, then the report as the last line.
func (o *outputs) logSummary(rep *Report) {
	r := o.r
	r.log.Info("run summary",
		"account", rep.Account,
		"dryRun", rep.DryRun,
		"candidates", rep.Summary.Candidates,
		"rotated", rep.Summary.Rotated,
		"wouldRotate", rep.Summary.WouldRotate,
		"skipped", rep.Summary.Skipped,
		"failed", rep.Summary.Failed,
		"deferred", rep.Summary.Deferred,
		"reasons", rep.Summary.Reasons,
		"calls", r.fetch.calls.snapshot(),
		"durationMs", r.e.now().Sub(o.start).Milliseconds(),
		"incidentReason", r.req.Reason,
	)
	// The per-key lines above carry every entry; a report too big for one
	// CloudWatch Logs event is logged without them (its size known from
	// fitBytes, rather than by encoding megabytes only to measure them).
	withoutKeys := func() ([]byte, error) {
		short := *rep
		short.Keys = nil
		return json.Marshal(struct {
			*Report
			KeysInLog bool `json:"keysInLog"`
		}{&short, false})
	}
	var b []byte
	var err error
	if rep.keysBytes > maxReportLogBytes {
		b, err = withoutKeys()
	} else if b, err = json.Marshal(rep); err == nil && len(b) > maxReportLogBytes {
		b, err = withoutKeys()
	}
	if err != nil {
		r.log.Error("report not logged", "error", err.Error())
		return
	}
	r.log.Info("report", "report", json.RawMessage(b))
}
