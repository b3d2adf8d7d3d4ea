package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

// WriteTable prints a report as an aligned table, one row per key, followed
// by a one-line summary.
func WriteTable(w io.Writer, r *oracle.Report) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	// Report mode is the inventory: it adds the material age and how long
	// the scheduled budget lasts at the key's interval.
	inventory := r.Mode == oracle.ModeReport
	header := "ALIAS\tKEY ID\tOUTCOME\tREASON\tUSED\tLEFT\tLAST ROTATION\tNEXT DUE"
	if inventory {
		header += "\tAGE (DAYS)\tINTERVAL\tSCHEDULED LEFT\tBUDGET RUNS OUT"
	}
	fmt.Fprintln(tw, header+"\tNOTE")
	for _, k := range r.Keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s",
			dash(k.Alias), dash(k.KeyID), k.Outcome, dash(k.Reason),
			num(k.OnDemandUsed), num(k.OnDemandRemaining),
			day(k.LastRotation), day(k.NextDue))
		if inventory {
			fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s",
				num(k.MaterialAgeDays), num(k.IntervalDays), num(k.ScheduledRotationsLeft), day(k.BudgetRunsOutAt))
		}
		fmt.Fprintf(tw, "\t%s\n", note(k))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// tabwriter pads the empty last cells; trailing blanks only get in
	// the way of copying and diffing the output.
	for _, l := range strings.SplitAfter(buf.String(), "\n") {
		if _, err := io.WriteString(w, strings.TrimRight(l, " \n")+strings.Repeat("\n", strings.Count(l, "\n"))); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w, SummaryLine(r))
	return err
}

// SummaryLine renders the summary in one line, e.g.
// "scheduled: 5 candidates, 1 rotated, 0 would rotate, 4 skipped, 0 failed, 0 deferred, 1 overdue [budget-exhausted 1, not-due 3] in 84ms"
// (overdue only when some key is).
func SummaryLine(r *oracle.Report) string {
	s := r.Summary
	var b strings.Builder
	fmt.Fprintf(&b, "%s", r.Mode)
	if r.DryRun {
		b.WriteString(" (dry run)")
	}
	fmt.Fprintf(&b, ": %d candidates, %d rotated, %d would rotate, %d skipped, %d failed, %d deferred",
		s.Candidates, s.Rotated, s.WouldRotate, s.Skipped, s.Failed, s.Deferred)
	if s.Overdue > 0 {
		fmt.Fprintf(&b, ", %d overdue", s.Overdue)
	}
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
func note(k oracle.Entry) string {
	var parts []string
	if k.KeyState != "" && k.KeyState != "Enabled" {
		parts = append(parts, "state "+k.KeyState)
	}
	if k.PrimaryKeyARN != "" {
		parts = append(parts, "primary "+k.PrimaryKeyARN)
	}
	if k.Overdue != nil && *k.Overdue {
		parts = append(parts, "overdue")
	}
	if k.NextRotationDate != nil {
		parts = append(parts, "next automatic rotation "+day(k.NextRotationDate))
	}
	// Key material: whether an incident saw the new material
	// take over, what an imported key has staged or when its material
	// expires, a rotation in progress for too long, the last use.
	switch k.Completion {
	case "complete":
		parts = append(parts, "new material current "+clock(k.CompletedAt))
	case "pending":
		parts = append(parts, "new material pending")
	}
	if k.Stuck {
		parts = append(parts, "stuck")
	}
	if k.StagedKeyMaterialID != "" && k.Outcome != "rotated" {
		parts = append(parts, "material staged "+short(k.StagedKeyMaterialID))
	}
	if k.MaterialExpiresAt != nil {
		parts = append(parts, "material expires "+day(k.MaterialExpiresAt))
	}
	if len(k.LastUsedAt) > 0 {
		var at *string
		if json.Unmarshal(k.LastUsedAt, &at) == nil {
			if at == nil {
				parts = append(parts, "never used")
			} else {
				parts = append(parts, "last used "+day(at))
			}
		}
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

// clock shortens an RFC 3339 time to its UTC time of day.
func clock(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	t, err := time.Parse(time.RFC3339, *s)
	if err != nil {
		return *s
	}
	return t.UTC().Format(time.TimeOnly)
}

// short abbreviates a 64-digit key material ID.
func short(id string) string {
	if len(id) > 12 {
		return id[:12] + "…"
	}
	return id
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

// FreshEvent returns an EventBridge event payload (events/incident-eventbridge.json,
// say) with its envelope time set to now: the function refuses an
// incident event older than ROTATOR_INCIDENT_MAX_AGE, as a late delivery.
// A payload without a top-level time is returned unchanged.
func FreshEvent(payload []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, err
	}
	if _, ok := m["time"]; !ok {
		return payload, nil
	}
	m["time"], _ = json.Marshal(time.Now().UTC().Format(time.RFC3339))
	return json.Marshal(m)
}
