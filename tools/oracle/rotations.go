package oracle

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// CheckRotations compares the emulator's state before and after one or more
// runs with their reports: every key gets exactly as many new on-demand
// rotations as reports say "rotated" for it (so none for the others, and a
// lost response that did rotate must be reported rotated), no key is
// reported rotated by two runs, and a reported budget is not below what the
// emulator shows. A key reported failed/unconfirmed may have one new
// rotation more: the function could not tell whether KMS applied it. A
// repeat (repeatOf) answers its first run's report and counts nothing.
// Keys match by key ID: a multi-Region primary and its replicas share it,
// and rotating the primary rotates the replicas
// (https://docs.aws.amazon.com/kms/latest/developerguide/multi-region-keys-manage.html).
func CheckRotations(before, after Snapshot, reports ...*Report) []string {
	var problems []string
	rotated := map[string]int{}
	for _, r := range reports {
		if r.RepeatOf != "" {
			continue // a repeat answers its first run's report: nothing of its own
		}
		for _, k := range r.Keys {
			if k.Outcome == Rotated {
				rotated[k.KeyID]++
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(rotated)) {
		if n := rotated[id]; n > 1 {
			problems = append(problems, fmt.Sprintf("key %s reported rotated by %d runs", id, n))
		}
	}
	// unconfirmed: a failed entry whose RotateKeyOnDemand got no clear
	// answer and whose look afterwards found no rotation: KMS
	// may still have applied it, so the key may show 0 or 1 new rotation.
	unconfirmed := map[string]bool{}
	for _, r := range reports {
		for _, k := range r.Keys {
			if k.Reason == "unconfirmed" {
				unconfirmed[k.KeyID] = true
			}
		}
	}
	single := len(reports) == 1
	for _, r := range reports {
		for _, k := range r.Keys {
			a, ok := after[k.KeyARN]
			if !ok {
				if k.Reason != "not-found" {
					problems = append(problems, fmt.Sprintf("%s (%s): reported key ARN not in the emulator", k.KeyARN, k.Outcome))
				}
				continue
			}
			// With one run and no other writer, the budget the report
			// states is the emulator's count: completed rotations, or
			// also the one in progress (KMS lists a rotation only once
			// it completes, so a run that finds one in progress may
			// count either way).
			if single && k.OnDemandUsed != nil && *k.OnDemandUsed != a.Started() && *k.OnDemandUsed != a.OnDemand && !unconfirmed[k.KeyID] {
				problems = append(problems, fmt.Sprintf("%s: report says onDemandUsed %d, emulator has %d on-demand rotations (in progress: %v)",
					k.KeyARN, *k.OnDemandUsed, a.Started(), a.InProgress))
			}
		}
	}
	for _, arn := range slices.Sorted(maps.Keys(after)) {
		a := after[arn]
		got := a.Started() - before[arn].Started()
		if want := rotated[a.KeyID]; got != want && (!unconfirmed[a.KeyID] || got != want+1) {
			problems = append(problems, fmt.Sprintf("%s: %d new on-demand rotation(s) in the emulator, %d reported", arn, got, want))
		}
	}
	return problems
}

// CheckMaterial compares the key material a report names with the
// emulator's before and after the run (snapshots by key ARN): a rotated
// entry's keyMaterialIdBefore is the key's material before the run; a
// completed one's keyMaterialId is the material after it (and, for an
// imported key, the material that was staged); stagedKeyMaterialId is the
// staged material the emulator shows; any other keyMaterialId is the
// key's material before or after the run.
func CheckMaterial(before, after Snapshot, r *Report) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if r.RepeatOf != "" {
		return nil // a repeat answers an earlier run's report: that run's material, not this one's
	}
	for _, k := range r.Keys {
		b, a := before[k.KeyARN], after[k.KeyARN]
		if a.KeyARN == "" {
			continue
		}
		if k.Outcome == Rotated && k.KeyMaterialIDBefore != "" && k.KeyMaterialIDBefore != b.Material {
			bad("%s: keyMaterialIdBefore %s, the emulator's CurrentKeyMaterialId before the run was %s", k.KeyARN, k.KeyMaterialIDBefore, b.Material)
		}
		switch {
		case k.Completion == "complete":
			if k.KeyMaterialID != a.Material {
				bad("%s: completed with keyMaterialId %s, the emulator's CurrentKeyMaterialId after the run is %s", k.KeyARN, k.KeyMaterialID, a.Material)
			}
			if b.Staged != "" && k.KeyMaterialID != b.Staged {
				bad("%s: completed with keyMaterialId %s, but the material staged before the run was %s", k.KeyARN, k.KeyMaterialID, b.Staged)
			}
		case k.KeyMaterialID != "" && k.Outcome != Rotated && k.KeyMaterialID != b.Material && k.KeyMaterialID != a.Material:
			bad("%s (%s): keyMaterialId %s is neither the material before (%s) nor after the run (%s)", k.KeyARN, k.Outcome, k.KeyMaterialID, b.Material, a.Material)
		}
		if k.StagedKeyMaterialID != "" && k.StagedKeyMaterialID != b.Staged {
			bad("%s: stagedKeyMaterialId %s, the emulator had %q staged before the run", k.KeyARN, k.StagedKeyMaterialID, b.Staged)
		}
	}
	return problems
}

// CheckUnconfirmedNotApplied is for runs whose every ambiguous failure
// happened before KMS changed anything (an emulator's injected 5xx): a
// key reported unconfirmed then has no new on-demand rotation, which
// CheckRotations alone allows.
func CheckUnconfirmedNotApplied(before, after Snapshot, reports ...*Report) []string {
	var problems []string
	for _, r := range reports {
		for _, k := range r.Keys {
			if k.Reason != "unconfirmed" {
				continue
			}
			if a, ok := after[k.KeyARN]; ok && a.Started() != before[k.KeyARN].Started() {
				problems = append(problems, fmt.Sprintf("%s: unconfirmed, yet the emulator has %d new on-demand rotation(s)", k.KeyARN, a.Started()-before[k.KeyARN].Started()))
			}
		}
	}
	return problems
}

// CheckCandidates checks that a report lists exactly the keys want names
// (key ARNs), each once: a sweep's are the keys with the opt-in tag
// (Snapshot.Tagged), an incident's the keys it named.
func CheckCandidates(r *Report, want []string) []string {
	var problems []string
	var got []string
	seen := map[string]bool{}
	for _, k := range r.Keys {
		if seen[k.KeyARN] {
			problems = append(problems, fmt.Sprintf("%s appears twice", k.KeyARN))
		}
		seen[k.KeyARN] = true
		got = append(got, k.KeyARN)
	}
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		problems = append(problems, fmt.Sprintf("report lists %d keys, want the %d candidates:\n got %s\nwant %s",
			len(got), len(want), strings.Join(got, " "), strings.Join(want, " ")))
	}
	return problems
}
