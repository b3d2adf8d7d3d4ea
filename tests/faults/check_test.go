package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/rotator"
	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

// snapshot lists every key of the emulator's home Region with its tags,
// aliases and on-demand rotations (the report oracle's Reader, without the
// engine's listing path).
func snapshot(t testing.TB, c *kms.Client) oracle.Snapshot {
	t.Helper()
	s, err := oracle.Reader{Clients: []*kms.Client{c}, Tags: true}.Read(context.Background())
	if err != nil {
		t.Fatalf("observer: %v", err)
	}
	return s
}

// candidates are the ARNs a scheduled sweep must report: the opted-in keys.
func candidates(s oracle.Snapshot) []string { return s.Tagged("kms-rotator", "enabled") }

// run is one finished invocation: its report as the engine's type (the
// suite's expectations speak it) and as the report oracle reads it, its
// EMF records and its log lines.
type run struct {
	name   string
	report *rotator.Report
	judged *oracle.Report
	emf    []oracle.EMF
	logs   []string
	// want lists the key ARNs the report must hold; nil means the fleet's
	// opted-in keys (a sweep).
	want []string
}

// newRun makes a run of a report the engine returned (rep) or the
// function answered (raw).
func newRun(name string, rep *rotator.Report, raw []byte, emf []oracle.EMF, logs []string) (run, error) {
	var err error
	if raw == nil {
		if raw, err = json.Marshal(rep); err != nil {
			return run{}, err
		}
	}
	if rep == nil {
		rep = new(rotator.Report)
		if err := json.Unmarshal(raw, rep); err != nil {
			return run{}, err
		}
	}
	judged, err := oracle.Decode(raw)
	if err != nil {
		return run{}, err
	}
	return run{name: name, report: rep, judged: judged, emf: emf, logs: logs}, nil
}

// checkRuns asserts the invariants for runs of the same fleet that
// overlapped (or one run alone) between the snapshots before and after:
// each run's report against the report oracle (invariants 2 and 5), and
// across the runs invariants 1–3.
// others are rotations made outside the runs (key ARN → who), which count
// as claims. exclusive: no two runs may both claim one rotation. It holds
// when nothing made a rotation's outcome ambiguous; see the comment in the
// body for the one case where two reports may name the same rotation.
func checkRuns(t *testing.T, before, after oracle.Snapshot, runs []run, others map[string]string, exclusive bool) {
	t.Helper()
	cands := candidates(before)
	claims := map[string][]string{} // key ARN → runs reporting it rotated
	// key ARN → runs reporting it failed/unconfirmed: the rotation got no
	// clear answer and the look afterwards did not find it, so it may or
	// may not have been applied (docs/design.md "Safety rules").
	maybe := map[string][]string{}
	for arn, who := range others {
		claims[arn] = append(claims[arn], who)
	}
	ids := map[string]bool{}
	for _, r := range runs {
		ids[r.report.RunID] = true
	}
	for _, r := range runs {
		// A duplicate delivery of a sweep that another run holds the
		// target's lease for does nothing: no keys, no metrics, and it
		// names the run it repeats.
		if r.report.RepeatOf != "" && r.report.Mode == request.ModeScheduled {
			if len(r.report.Keys) != 0 || r.report.Summary.Candidates != 0 || !ids[r.report.RepeatOf] {
				t.Errorf("%s: a duplicate sweep (repeatOf %s) lists %d keys, %d candidates; want none, repeating a run of this schedule",
					r.name, r.report.RepeatOf, len(r.report.Keys), r.report.Summary.Candidates)
			}
			continue
		}
		if r.want != nil {
			checkReport(t, r, r.want)
		} else {
			checkReport(t, r, cands)
		}
		for _, k := range r.report.Keys {
			if k.Reason == rotator.ReasonUnconfirmed {
				maybe[k.KeyARN] = append(maybe[k.KeyARN], r.name)
			}
			if k.Outcome != rotator.Rotated {
				continue
			}
			claims[k.KeyARN] = append(claims[k.KeyARN], r.name)
			// Invariant 3: a scheduled run rotates only keys with more
			// than the reserve left.
			if b := before[k.KeyARN]; r.report.Mode == request.ModeScheduled && b.Started() >= limit-reserve {
				t.Errorf("invariant 3: %s: a scheduled run spent the incident reserve of %s (used %d of %d, reserve %d)",
					r.name, b.Alias, b.Started(), limit, reserve)
			}
		}
	}
	for arn, b := range before {
		a, ok := after[arn]
		if !ok {
			t.Errorf("%s (%s) vanished from the emulator", b.Alias, arn)
			continue
		}
		added := a.Started() - b.Started()
		// Invariant 1: one intended rotation → at most one new rotation.
		if added < 0 || added > 1 {
			t.Errorf("invariant 1: %s got %d new on-demand rotations (before %d, after %d); claimed by %v",
				b.Alias, added, b.Started(), a.Started(), claims[arn])
		}
		// Invariant 2: rotated ⇔ a new rotation in the emulator.
		c := claims[arn]
		switch {
		case added == 1 && len(c) == 0 && len(maybe[arn]) == 0:
			t.Errorf("invariant 2: %s was rotated in the emulator but no report says rotated (or unconfirmed)", b.Alias)
		case added == 0 && len(c) > 0:
			t.Errorf("invariant 2: %v report %s rotated, but the emulator has no new rotation", c, b.Alias)
		case len(c) > 1 && exclusive:
			// With an ambiguous failure (5xx, lost response) a run that
			// finds an on-demand rotation started after it began reports
			// it as its own (docs/design.md "Safety rules"); when another run
			// started that rotation, both reports say rotated for one
			// rotation. Without ambiguous failures only one may claim it.
			t.Errorf("invariant 2: one rotation of %s claimed by %d runs %v", b.Alias, len(c), c)
		}
		if !slices.Contains(cands, arn) && added > 0 {
			t.Errorf("%s is not opted in, yet it was rotated", b.Alias)
		}
		// Invariant 3.
		if added > 0 && a.Started() > limit {
			t.Errorf("invariant 3: %s has %d on-demand rotations, over ROTATOR_ON_DEMAND_LIMIT %d", b.Alias, a.Started(), limit)
		}
	}
}

// checkReport asserts invariants 2 (each candidate exactly once) and 5
// (the summary, the metrics and the key decision lines agree with the
// entries) for one report, with the report oracle.
func checkReport(t *testing.T, r run, cands []string) {
	t.Helper()
	c := oracle.Documented
	c.Reserve = reserve
	for _, p := range oracle.CheckCandidates(r.judged, cands) {
		t.Errorf("%s: invariant 2: %s", r.name, p)
	}
	for _, p := range append(c.CheckReport(r.judged.Raw), c.CheckMetrics(r.emf, r.judged)...) {
		t.Errorf("%s: invariant 5: %s", r.name, p)
	}
	for _, p := range oracle.CheckKeyLines(r.logs, r.judged) {
		t.Errorf("%s: %s", r.name, p)
	}
}

// checkLedger asserts that the runs' claims (the ledger's claim records
// made while they ran) account for every rotation they made and reported.
func checkLedger(t *testing.T, claims oracle.Claims, before, after oracle.Snapshot, runs []run) {
	t.Helper()
	var reports []*oracle.Report
	for _, r := range runs {
		reports = append(reports, r.judged)
	}
	for _, p := range oracle.CheckClaims(claims, before, after, reports...) {
		t.Errorf("ledger: %s", p)
	}
}

// outcomes renders a report's outcomes by class, for failure messages.
func outcomes(rep *rotator.Report, st oracle.Snapshot) string {
	m := map[string]int{}
	for _, k := range rep.Keys {
		name := st[k.KeyARN].Alias
		if i := strings.LastIndex(name, "-0"); i > 0 {
			name = name[:i]
		}
		m[fmt.Sprintf("%s→%s/%s", name, k.Outcome, k.Reason)]++
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s ×%d\n", k, m[k])
	}
	return b.String()
}

// checkMaterial checks confirmation under faults: an incident that waited
// reports each of its rotations complete, with the new material and when
// it was seen (the rows' rotations complete in well under a second, far
// inside ROTATOR_INCIDENT_WAIT, and reads are retried through the faults);
// nothing else claims a completion (sweeps never wait, nor an incident
// with "wait": false). That a rotated entry names the material it
// replaced (keyMaterialIdBefore) is the report oracle's to check.
func checkMaterial(t *testing.T, r run, waited bool) {
	t.Helper()
	for _, k := range r.report.Keys {
		switch {
		case waited && k.Outcome == rotator.Rotated:
			if k.Completion != "complete" || k.CompletedAt == nil || k.KeyMaterialID == "" || k.KeyMaterialID == k.KeyMaterialIDBefore {
				t.Errorf("%s: %s rotated, completion %q completedAt %v keyMaterialId %q (before %q); want complete with the new material",
					r.name, k.KeyARN, k.Completion, k.CompletedAt, k.KeyMaterialID, k.KeyMaterialIDBefore)
			}
		case k.Completion != "" || k.CompletedAt != nil:
			t.Errorf("%s: %s %s/%s with completion %q: only an incident that waited reports one", r.name, k.KeyARN, k.Outcome, k.Reason, k.Completion)
		}
	}
}
