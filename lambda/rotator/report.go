package rotator

import (
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
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
	RunID      string       `json:"runId"`
	Mode       request.Mode `json:"mode"`
	DryRun     bool         `json:"dryRun"`
	StartedAt  string       `json:"startedAt"`
	FinishedAt string       `json:"finishedAt"`
	Summary    Summary      `json:"summary"`
	Keys       []KeyReport  `json:"keys"`
	// OmittedNotDue counts the not-due entries left out of Keys because
	// the run had more than MaxListedKeys candidates (absent when none).
	OmittedNotDue int `json:"omittedNotDue,omitempty"`
	// OmittedOther counts further entries left out because even without
	// the not-due ones Keys would exceed MaxReportEntries or
	// maxReportBytes: skipped entries first, then deferred ones, then the
	// list's tail (absent when none).
	OmittedOther int `json:"omittedOther,omitempty"`
	// Continuation shows the run's place in a chain of continuations and
	// whether it started the next link (absent when not applicable).
	Continuation *ContinuationReport `json:"continuation,omitempty"`
}

// Summary counts every candidate of the run by outcome and by reason.
type Summary struct {
	Candidates  int `json:"candidates"`
	Rotated     int `json:"rotated"`
	WouldRotate int `json:"wouldRotate"`
	Skipped     int `json:"skipped"`
	Failed      int `json:"failed"`
	Deferred    int `json:"deferred"`
	// Overdue counts the entries with overdue true (KeysOverdue).
	Overdue int            `json:"overdue"`
	Reasons map[Reason]int `json:"reasons"`
}

// KeyReport is one candidate's entry. Times are RFC 3339 in UTC; a nil
// pointer is JSON null (unknown or not applicable).
type KeyReport struct {
	KeyID   string  `json:"keyId"`
	KeyARN  string  `json:"keyArn"`
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

// entry builds the key's report entry from what the run learned.
func (r *run) entry(it *item) KeyReport {
	cfg := r.e.cfg
	k := KeyReport{
		KeyID:   it.keyID,
		KeyARN:  it.arn,
		Alias:   it.alias,
		Outcome: it.outcome,
		Reason:  it.reason,
		Error:   it.detail,
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
	used, remaining, known := f.Budget(cfg.OnDemandLimit)
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
	overdue := it.overdue(now)
	k.MaterialAgeDays, k.Overdue = &age, &overdue
	if r.req.Mode == request.ModeReport {
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
// (KeysOverdue). Keys left for later on purpose are not overdue: deferred
// ones (the next link or run takes them) and those waiting days for their
// free automatic rotation (automatic-rotation-soon).
func (it *item) overdue(now time.Time) bool {
	f := &it.facts
	if f.History == nil || f.IntervalDays <= 0 {
		return false
	}
	switch it.outcome {
	case Rotated, WouldRotate, Deferred:
		return false
	}
	if it.reason == ReasonAutomaticRotationSoon {
		return false
	}
	m := f.Material()
	return !m.IsZero() && now.Sub(m) > days(f.IntervalDays)
}

// report assembles the run's report: every candidate exactly once, sorted
// by key ARN, the summary counting all of them.
func (r *run) report() *Report {
	slices.SortFunc(r.items, func(a, b *item) int { return strings.Compare(a.sortKey(), b.sortKey()) })
	rep := &Report{
		RunID:     r.id,
		Mode:      r.req.Mode,
		DryRun:    r.dry,
		StartedAt: fmtTime(r.start),
		Summary:   Summary{Candidates: len(r.items), Reasons: map[Reason]int{}},
		Keys:      make([]KeyReport, 0, min(len(r.items), r.e.maxListed)),
	}
	now := r.e.now()
	trim := len(r.items) > r.e.maxListed
	// A hard bound on top of docs/design.md's rule, so the response stays under
	// Lambda's 6 MB whatever the fleet: past maxEntries listed entries,
	// skipped ones go first, then deferred ones, then the list is cut.
	var listed, skipped, deferred int
	for _, it := range r.items {
		if trim && it.reason == ReasonNotDue {
			continue
		}
		listed++
		switch it.outcome {
		case Skipped:
			skipped++
		case Deferred:
			deferred++
		}
	}
	dropSkipped := listed > r.e.maxEntries
	dropDeferred := dropSkipped && listed-skipped > r.e.maxEntries
	for _, it := range r.items {
		s := &rep.Summary
		switch it.outcome {
		case Rotated:
			s.Rotated++
		case WouldRotate:
			s.WouldRotate++
		case Skipped:
			s.Skipped++
		case Failed:
			s.Failed++
		case Deferred:
			s.Deferred++
		}
		if it.reason != ReasonNone {
			s.Reasons[it.reason]++
		}
		if it.overdue(now) {
			s.Overdue++
		}
		switch {
		case trim && it.reason == ReasonNotDue:
			rep.OmittedNotDue++
		case dropSkipped && it.outcome == Skipped, dropDeferred && it.outcome == Deferred, len(rep.Keys) >= r.e.maxEntries:
			rep.OmittedOther++
		default:
			rep.Keys = append(rep.Keys, r.entry(it))
		}
	}
	var dropped int
	rep.Keys, dropped = fitBytes(rep.Keys, maxReportBytes)
	rep.OmittedOther += dropped
	rep.FinishedAt = fmtTime(r.e.now())
	return rep
}

// maxReportBytes bounds the encoded entries, leaving room under Lambda's
// 6 MB response limit for the rest of the report. The entry count alone
// does not hold the size: a failed entry carries AWS's error message, and
// an access-denied one is about 1 KB (10,000 of them would be 10 MB).
const maxReportBytes = 5 << 20

// fitBytes drops entries until the encoded list fits maxBytes — skipped
// ones first, then deferred ones, then from the end — and returns the list
// kept and how many entries it dropped.
func fitBytes(keys []KeyReport, maxBytes int) ([]KeyReport, int) {
	size := make([]int, len(keys))
	total := 0
	for i, k := range keys {
		b, err := json.Marshal(k)
		if err != nil {
			return keys, 0 // not reached: KeyReport always encodes
		}
		size[i] = len(b) + 1 // and its comma
		total += size[i]
	}
	if total <= maxBytes {
		return keys, 0
	}
	drop := make([]bool, len(keys))
	dropped := 0
	for _, o := range []Outcome{Skipped, Deferred, ""} {
		for i := len(keys) - 1; i >= 0 && total > maxBytes; i-- {
			if !drop[i] && (o == "" || keys[i].Outcome == o) {
				drop[i] = true
				total -= size[i]
				dropped++
			}
		}
	}
	kept := make([]KeyReport, 0, len(keys)-dropped)
	for i, k := range keys {
		if !drop[i] {
			kept = append(kept, k)
		}
	}
	return kept, dropped
}

// logKey writes the key's decision line.
func (r *run) logKey(it *item) {
	k := r.entry(it)
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
}

// logSummary writes the summary line, then the report as the last line.
func (r *run) logSummary(rep *Report) {
	r.log.Info("run summary",
		"dryRun", rep.DryRun,
		"candidates", rep.Summary.Candidates,
		"rotated", rep.Summary.Rotated,
		"wouldRotate", rep.Summary.WouldRotate,
		"skipped", rep.Summary.Skipped,
		"failed", rep.Summary.Failed,
		"deferred", rep.Summary.Deferred,
		"reasons", rep.Summary.Reasons,
		"calls", r.calls.snapshot(),
		"durationMs", r.e.now().Sub(r.start).Milliseconds(),
		"incidentReason", r.req.Reason,
	)
	b, err := json.Marshal(rep)
	if err == nil && len(b) > maxReportLogBytes {
		// The per-key lines above carry every entry; keep this line
		// within one CloudWatch Logs event.
		short := *rep
		short.Keys = nil
		b, err = json.Marshal(struct {
			*Report
			KeysInLog bool `json:"keysInLog"`
		}{&short, false})
	}
	if err != nil {
		r.log.Error("report not logged", "error", err.Error())
		return
	}
	r.log.Info("report", "report", json.RawMessage(b))
}
