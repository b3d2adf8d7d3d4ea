package oracle

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// CheckMetrics checks a run's EMF records against its report with the
// documented namespace and reserve (Documented.CheckMetrics).
func CheckMetrics(recs []EMF, r *Report) []string { return Documented.CheckMetrics(recs, r) }

// CheckMetrics checks a run's EMF records against its report
// (docs/design.md "Metrics and logs"):
//   - every record is in c.Namespace with the report's Mode, and has no
//     per-key dimension (Mode and Reason only; Account in organization
//     mode); exactly one record has the dimensions [Mode];
//   - there, KeysCandidate, KeysRotated, KeysWouldRotate, KeysSkipped,
//     KeysFailed and KeysDeferred equal the summary, RunsCompleted is 1,
//     KeysOverdue, KeysOverdueAction, KeysOverdueByPolicy, KeysDueSoon and
//     MaterialExpiringSoon are the summary's figures; EvidenceFailed is 1
//     when the report's evidence says error, 0 when it names the record,
//     absent without evidence;
//   - KeysSkipped and KeysFailed with [Mode, Reason] are the summary's
//     reasons of that outcome, one record per reason that occurred;
//   - when the report lists every candidate, what its entries imply (one
//     budget count, cryptoperiod signals): KeysBudgetLow (entries with
//     onDemandRemaining ≤ c.Reserve), KeysBudgetExhausted (0 left),
//     MinOnDemandRemaining (the smallest; absent when no entry has one),
//     MaxMaterialAgeDays (the largest materialAgeDays; absent or 0 when
//     none), RotationsStuck (stuck entries; may be absent when none). A
//     budget-exhausted entry counts as 0 remaining.
func (c Contract) CheckMetrics(recs []EMF, r *Report) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if len(recs) == 0 {
		return []string{"no EMF record"}
	}
	dims := []string{dimMode, dimReason}
	if r.Account != "" {
		dims = append(dims, dimAccount)
	}
	var main *EMF
	perReason := map[string]map[string]float64{mKeysSkipped: {}, mKeysFailed: {}}
	for i, rec := range recs {
		if rec.Dimension(dimMode) != r.Mode {
			bad("EMF Mode %q, report mode %q", rec.Dimension(dimMode), r.Mode)
		}
		for _, d := range rec.Directives {
			if d.Namespace != c.Namespace {
				bad("EMF namespace %q, want %q", d.Namespace, c.Namespace)
			}
			for _, set := range d.Dimensions {
				for _, dim := range set {
					if !slices.Contains(dims, dim) {
						bad("EMF dimension %q in %v (only %v; never a per-key one)", dim, set, dims)
					}
				}
				if slices.Equal(set, []string{dimMode}) && main != &recs[i] {
					if main != nil {
						bad("two EMF records with dimensions [Mode]")
					}
					main = &recs[i]
				}
			}
		}
		if reason := rec.Dimension(dimReason); reason != "" {
			for name, m := range perReason {
				if v, ok := rec.Value(name); ok {
					m[reason] += v
				}
			}
		}
	}
	if main == nil {
		return append(problems, "no EMF record with dimensions [Mode] for mode "+r.Mode)
	}
	declared := map[string]bool{}
	for _, d := range main.Directives {
		for _, m := range d.Metrics {
			declared[m.Name] = true
		}
	}
	metric := func(name string) (float64, bool) {
		v, ok := main.Value(name)
		return v, ok && declared[name]
	}
	s := r.Summary
	want := map[string]int{
		mKeysCandidate: s.Candidates, mKeysRotated: s.Rotated, mKeysWouldRotate: s.WouldRotate,
		mKeysSkipped: s.Skipped, mKeysFailed: s.Failed, mKeysDeferred: s.Deferred, mRunsCompleted: 1,
		mKeysOverdue: s.Overdue, mKeysOverdueAction: s.OverdueAction, mKeysOverdueByPolicy: s.OverdueByPolicy,
		mKeysDueSoon: s.DueSoon, mMaterialExpiringSoon: s.MaterialExpiringSoon,
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if v, ok := metric(name); !ok {
			bad("EMF metric %s with dimensions [Mode] missing", name)
		} else if v != float64(want[name]) {
			bad("EMF %s = %v, report says %v", name, v, want[name])
		}
	}
	// EvidenceFailed: whether the run's evidence record was written, only
	// when the run writes one.
	switch v, ok := metric(mEvidenceFailed); {
	case r.Evidence == nil && ok:
		bad("EMF EvidenceFailed = %v, but the report names no evidence record", v)
	case r.Evidence != nil && (!ok || (v == 1) != (r.Evidence.Error != "")):
		bad("EMF EvidenceFailed = %v (present %v), the report's evidence %+v", v, ok, *r.Evidence)
	}
	// The summary's overdue figures are the contract's, not a default 0.
	var raw struct {
		Summary map[string]json.RawMessage `json:"summary"`
	}
	if r.Raw != nil && json.Unmarshal(r.Raw, &raw) == nil {
		for _, f := range []string{"overdue", "overdueAction", "overdueByPolicy", "dueSoon", "materialExpiringSoon"} {
			if _, ok := raw.Summary[f]; !ok {
				bad("summary.%s missing: the metrics have no figure to match", f)
			}
		}
	}
	for name, outcome := range map[string]string{mKeysSkipped: Skipped, mKeysFailed: Failed} {
		wantBy := map[string]float64{}
		for reason, n := range s.Reasons {
			if OutcomeOfReason[reason] == outcome && n > 0 {
				wantBy[reason] = float64(n)
			}
		}
		if got := perReason[name]; !maps.Equal(got, wantBy) {
			bad("EMF %s per Reason %v, the summary's reasons say %v", name, got, wantBy)
		}
	}
	if len(r.Keys) != s.Candidates {
		return problems
	}
	low, exhausted, minRemaining, maxAge, stuck := 0, 0, -1, -1, 0
	for _, k := range r.Keys {
		if k.Stuck {
			stuck++
		}
		if k.MaterialAgeDays != nil && *k.MaterialAgeDays > maxAge {
			maxAge = *k.MaterialAgeDays
		}
		rem := k.OnDemandRemaining
		if k.Reason == "budget-exhausted" {
			rem = new(int)
		}
		if rem == nil {
			continue
		}
		if *rem <= c.Reserve {
			low++
		}
		if *rem == 0 {
			exhausted++
		}
		if minRemaining < 0 || *rem < minRemaining {
			minRemaining = *rem
		}
	}
	for name, want := range map[string]int{mKeysBudgetLow: low, mKeysBudgetExhausted: exhausted} {
		if v, ok := metric(name); !ok || v != float64(want) {
			bad("EMF %s = %v (present %v), the report's entries say %v (reserve %d)", name, v, ok, want, c.Reserve)
		}
	}
	switch v, ok := metric(mMinOnDemandRemaining); {
	case minRemaining < 0 && ok:
		bad("EMF MinOnDemandRemaining = %v, but no entry has a budget", v)
	case minRemaining >= 0 && (!ok || v != float64(minRemaining)):
		bad("EMF MinOnDemandRemaining = %v (present %v), the report's smallest onDemandRemaining is %v", v, ok, minRemaining)
	}
	// RotationsStuck may be left out of a run with none.
	if v, ok := metric(mRotationsStuck); (ok || stuck > 0) && v != float64(stuck) {
		bad("EMF RotationsStuck = %v (present %v), the report has %v stuck entries", v, ok, stuck)
	}
	switch v, ok := metric(mMaxMaterialAgeDays); {
	case maxAge < 0 && ok && v != 0:
		bad("EMF MaxMaterialAgeDays = %v, but no entry has materialAgeDays", v)
	case maxAge >= 0 && (!ok || v != float64(maxAge)):
		bad("EMF MaxMaterialAgeDays = %v (present %v), the report's largest materialAgeDays is %v", v, ok, maxAge)
	}
	return problems
}
