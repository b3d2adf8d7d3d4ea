package harness

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the function's result, DESIGN.md "The report".
type Report struct {
	RunID      string      `json:"runId"`
	Mode       string      `json:"mode"`
	DryRun     bool        `json:"dryRun"`
	StartedAt  time.Time   `json:"startedAt"`
	FinishedAt time.Time   `json:"finishedAt"`
	Summary    Summary     `json:"summary"`
	Keys       []KeyReport `json:"keys"`
}

// Summary counts the outcomes of a run.
type Summary struct {
	Candidates  int            `json:"candidates"`
	Rotated     int            `json:"rotated"`
	WouldRotate int            `json:"wouldRotate"`
	Skipped     int            `json:"skipped"`
	Failed      int            `json:"failed"`
	Deferred    int            `json:"deferred"`
	Reasons     map[string]int `json:"reasons"`
}

// KeyReport is one candidate key's entry.
type KeyReport struct {
	KeyID             string     `json:"keyId"`
	KeyARN            string     `json:"keyArn"`
	Alias             string     `json:"alias"`
	Outcome           string     `json:"outcome"`
	Reason            string     `json:"reason"`
	KeyState          string     `json:"keyState"`
	OnDemandUsed      int        `json:"onDemandUsed"`
	OnDemandRemaining int        `json:"onDemandRemaining"`
	LastRotation      *time.Time `json:"lastRotation"`
	NextDue           *time.Time `json:"nextDue"`
	PrimaryKeyARN     string     `json:"primaryKeyArn,omitempty"`
	Error             string     `json:"error,omitempty"`
}

// DecodeReport decodes a report returned by the function.
func DecodeReport(raw []byte) (*Report, error) {
	var r Report
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("harness: decode report: %w", err)
	}
	return &r, nil
}

// WriteTable prints a report as an aligned table, one row per key, followed
// by a one-line summary.
func WriteTable(w io.Writer, r *Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ALIAS\tKEY ID\tOUTCOME\tREASON\tUSED\tLEFT\tLAST ROTATION\tNEXT DUE\tNOTE")
	for _, k := range r.Keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n",
			dash(k.Alias), dash(k.KeyID), k.Outcome, dash(k.Reason),
			k.OnDemandUsed, k.OnDemandRemaining,
			day(k.LastRotation), day(k.NextDue), note(k))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, SummaryLine(r))
	return err
}

// SummaryLine renders the summary in one line, e.g.
// "scheduled: 5 candidates, 1 rotated, 0 would rotate, 4 skipped (not-due 4), 0 failed, 0 deferred in 84ms".
func SummaryLine(r *Report) string {
	s := r.Summary
	var b strings.Builder
	fmt.Fprintf(&b, "%s", r.Mode)
	if r.DryRun {
		b.WriteString(" (dry run)")
	}
	fmt.Fprintf(&b, ": %d candidates, %d rotated, %d would rotate, %d skipped, %d failed, %d deferred",
		s.Candidates, s.Rotated, s.WouldRotate, s.Skipped, s.Failed, s.Deferred)
	if len(s.Reasons) > 0 {
		parts := make([]string, 0, len(s.Reasons))
		for _, reason := range slices.Sorted(maps.Keys(s.Reasons)) {
			parts = append(parts, fmt.Sprintf("%s %d", reason, s.Reasons[reason]))
		}
		fmt.Fprintf(&b, " [%s]", strings.Join(parts, ", "))
	}
	if !r.StartedAt.IsZero() && !r.FinishedAt.IsZero() {
		fmt.Fprintf(&b, " in %v", r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond))
	}
	return b.String()
}

// note is the table's last column: what the reason alone does not say.
func note(k KeyReport) string {
	var parts []string
	if k.KeyState != "" && k.KeyState != "Enabled" {
		parts = append(parts, "state "+k.KeyState)
	}
	if k.PrimaryKeyARN != "" {
		parts = append(parts, "primary "+k.PrimaryKeyARN)
	}
	if k.Error != "" {
		parts = append(parts, truncate(k.Error, 120))
	}
	return strings.Join(parts, "; ")
}

func day(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.DateOnly)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
