package harness

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the function's result, DESIGN.md "The report" (Contract). It
// mirrors the JSON of rotator.Report field for field.
type Report struct {
	RunID      string      `json:"runId"`
	Mode       string      `json:"mode"`
	DryRun     bool        `json:"dryRun"`
	StartedAt  string      `json:"startedAt"`
	FinishedAt string      `json:"finishedAt"`
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

// KeyReport is one candidate key's entry; null budget and time fields
// (not read, not applicable) are nil.
type KeyReport struct {
	KeyID             string  `json:"keyId"`
	KeyARN            string  `json:"keyArn"`
	Alias             string  `json:"alias"`
	Outcome           string  `json:"outcome"`
	Reason            string  `json:"reason"`
	KeyState          string  `json:"keyState,omitempty"`
	OnDemandUsed      *int    `json:"onDemandUsed"`
	OnDemandRemaining *int    `json:"onDemandRemaining"`
	LastRotation      *string `json:"lastRotation"`
	NextDue           *string `json:"nextDue"`
	PrimaryKeyARN     string  `json:"primaryKeyArn,omitempty"`
	Error             string  `json:"error,omitempty"`
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			dash(k.Alias), dash(k.KeyID), k.Outcome, dash(string(k.Reason)),
			num(k.OnDemandUsed), num(k.OnDemandRemaining),
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
			if reason != "" {
				parts = append(parts, fmt.Sprintf("%s %d", reason, s.Reasons[reason]))
			}
		}
		fmt.Fprintf(&b, " [%s]", strings.Join(parts, ", "))
	}
	start, err1 := time.Parse(time.RFC3339, r.StartedAt)
	end, err2 := time.Parse(time.RFC3339, r.FinishedAt)
	if err1 == nil && err2 == nil {
		fmt.Fprintf(&b, " in %v", end.Sub(start).Round(time.Millisecond))
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

// day shortens an RFC 3339 time to its UTC date.
func day(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	t, err := time.Parse(time.RFC3339, *s)
	if err != nil {
		return *s
	}
	return t.UTC().Format(time.DateOnly)
}

func num(n *int) string {
	if n == nil {
		return "-"
	}
	return strconv.Itoa(*n)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
