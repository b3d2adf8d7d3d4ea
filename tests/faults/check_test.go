package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/rotator"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/harness"
)

// keyState is what the emulator says about one key, read through the SDK.
type keyState struct {
	arn, alias string
	optedIn    bool
	// completed counts the ON_DEMAND entries of ListKeyRotations.
	completed int
	// inProgress: GetKeyRotationStatus has OnDemandRotationStartDate.
	inProgress bool
}

// started is the number of on-demand rotations KMS has accepted for the key:
// the completed ones plus one in progress. A rotation moves from the second
// term to the first when it completes, so the sum never double counts.
func (k keyState) started() int {
	n := k.completed
	if k.inProgress {
		n++
	}
	return n
}

// fleetState is the emulator's view of every key, by key ARN.
type fleetState map[string]keyState

// observer reads the emulator through an SDK client of its own that retries
// hard, so injected faults and throttling never hide the truth from the
// checks (its calls use the same fault dice as the engine's).
func observer(cfg aws.Config) *kms.Client {
	return kms.NewFromConfig(cfg, func(o *kms.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 40
			so.MaxBackoff = 250 * time.Millisecond
			so.RateLimiter = ratelimit.None
		})
	})
}

// snapshot lists every key of the emulator's home Region with its aliases,
// opt-in tag and on-demand rotations. It does not use GetResources (the
// engine's own listing path), so a listing bug cannot hide itself.
func snapshot(t testing.TB, c *kms.Client) fleetState {
	t.Helper()
	ctx := context.Background()
	st := fleetState{}
	aliases := map[string]string{}
	ap := kms.NewListAliasesPaginator(c, &kms.ListAliasesInput{})
	for ap.HasMorePages() {
		out, err := ap.NextPage(ctx)
		if err != nil {
			t.Fatalf("observer: ListAliases: %v", err)
		}
		for _, a := range out.Aliases {
			if id := aws.ToString(a.TargetKeyId); id != "" {
				aliases[id] = aws.ToString(a.AliasName)
			}
		}
	}
	var keys []kmstypes.KeyListEntry
	kp := kms.NewListKeysPaginator(c, &kms.ListKeysInput{})
	for kp.HasMorePages() {
		out, err := kp.NextPage(ctx)
		if err != nil {
			t.Fatalf("observer: ListKeys: %v", err)
		}
		keys = append(keys, out.Keys...)
	}
	// Eight readers: the emulator's latency applies to these calls too.
	states := make([]keyState, len(keys))
	errs := make([]error, len(keys))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(keys); i = int(next.Add(1)) - 1 {
				states[i], errs[i] = readKey(ctx, c, keys[i], aliases)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("observer: %v", err)
		}
		st[states[i].arn] = states[i]
	}
	return st
}

// candidates are the ARNs a scheduled sweep must report: the opted-in keys.
func (s fleetState) candidates() []string {
	var out []string
	for arn, k := range s {
		if k.optedIn {
			out = append(out, arn)
		}
	}
	sort.Strings(out)
	return out
}

// run is one finished invocation: its report and its EMF lines.
type run struct {
	name   string
	report *rotator.Report
	emf    []harness.EMF
	// keyLines counts the "key decision" log lines per key ARN.
	keyLines map[string]int
	// want lists the key ARNs the report must hold; nil means the fleet's
	// opted-in keys (a sweep).
	want []string
}

// checkRuns asserts the five invariants for runs of the same fleet that
// overlapped (or one run alone) between the snapshots before and after.
// others are rotations made outside the runs (key ARN → who), which count
// as claims. exclusive: no two runs may both claim one rotation. It holds
// when nothing made a rotation's outcome ambiguous; see the comment in the
// body for the one case where two reports may name the same rotation.
func checkRuns(t *testing.T, before, after fleetState, runs []run, others map[string]string, exclusive bool) {
	t.Helper()
	cands := before.candidates()
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
			if b := before[k.KeyARN]; r.report.Mode == request.ModeScheduled && b.started() >= limit-reserve {
				t.Errorf("invariant 3: %s: a scheduled run spent the incident reserve of %s (used %d of %d, reserve %d)",
					r.name, b.alias, b.started(), limit, reserve)
			}
		}
	}
	for arn, b := range before {
		a, ok := after[arn]
		if !ok {
			t.Errorf("%s (%s) vanished from the emulator", b.alias, arn)
			continue
		}
		added := a.started() - b.started()
		// Invariant 1: one intended rotation → at most one new rotation.
		if added < 0 || added > 1 {
			t.Errorf("invariant 1: %s got %d new on-demand rotations (before %d, after %d); claimed by %v",
				b.alias, added, b.started(), a.started(), claims[arn])
		}
		// Invariant 2: rotated ⇔ a new rotation in the emulator.
		c := claims[arn]
		switch {
		case added == 1 && len(c) == 0 && len(maybe[arn]) == 0:
			t.Errorf("invariant 2: %s was rotated in the emulator but no report says rotated (or unconfirmed)", b.alias)
		case added == 0 && len(c) > 0:
			t.Errorf("invariant 2: %v report %s rotated, but the emulator has no new rotation", c, b.alias)
		case len(c) > 1 && exclusive:
			// With an ambiguous failure (5xx, lost response) a run that
			// finds an on-demand rotation started after it began reports
			// it as its own (docs/design.md "Safety rules"); when another run
			// started that rotation, both reports say rotated for one
			// rotation. Without ambiguous failures only one may claim it.
			t.Errorf("invariant 2: one rotation of %s claimed by %d runs %v", b.alias, len(c), c)
		}
		if !b.optedIn && added > 0 {
			t.Errorf("%s is not opted in, yet it was rotated", b.alias)
		}
		// Invariant 3.
		if added > 0 && a.started() > limit {
			t.Errorf("invariant 3: %s has %d on-demand rotations, over ROTATOR_ON_DEMAND_LIMIT %d", b.alias, a.started(), limit)
		}
	}
}

// checkReport asserts invariants 2 (each candidate exactly once) and 5 (the
// summary and the metrics agree with the entries) for one report.
func checkReport(t *testing.T, r run, cands []string) {
	t.Helper()
	rep := r.report
	var got []string
	seen := map[string]bool{}
	for _, k := range rep.Keys {
		if seen[k.KeyARN] {
			t.Errorf("%s: invariant 2: %s appears twice", r.name, k.KeyARN)
		}
		seen[k.KeyARN] = true
		got = append(got, k.KeyARN)
	}
	sort.Strings(got)
	if cands != nil && !slices.Equal(got, cands) {
		t.Errorf("%s: invariant 2: report lists %d keys, want the %d candidates:\n got %v\nwant %v",
			r.name, len(got), len(cands), got, cands)
	}
	// Invariant 5: outcomes add up, per outcome and per reason.
	count := map[rotator.Outcome]int{}
	reasons := map[rotator.Reason]int{}
	skippedBy, failedBy := map[rotator.Reason]int{}, map[rotator.Reason]int{}
	for _, k := range rep.Keys {
		count[k.Outcome]++
		if k.Reason != rotator.ReasonNone {
			reasons[k.Reason]++
		}
		switch k.Outcome {
		case rotator.Skipped:
			skippedBy[k.Reason]++
		case rotator.Failed:
			failedBy[k.Reason]++
		case rotator.Deferred:
			if k.Reason != rotator.ReasonDeadline {
				t.Errorf("%s: deferred %s with reason %q, want deadline", r.name, k.KeyARN, k.Reason)
			}
		}
	}
	s := rep.Summary
	if sum := s.Rotated + s.WouldRotate + s.Skipped + s.Failed + s.Deferred; sum != s.Candidates || s.Candidates != len(rep.Keys) {
		t.Errorf("%s: invariant 5: outcomes sum to %d, candidates %d, entries %d", r.name, sum, s.Candidates, len(rep.Keys))
	}
	want := rotator.Summary{Candidates: len(rep.Keys), Rotated: count[rotator.Rotated], WouldRotate: count[rotator.WouldRotate],
		Skipped: count[rotator.Skipped], Failed: count[rotator.Failed], Deferred: count[rotator.Deferred]}
	if s.Rotated != want.Rotated || s.WouldRotate != want.WouldRotate || s.Skipped != want.Skipped || s.Failed != want.Failed || s.Deferred != want.Deferred {
		t.Errorf("%s: invariant 5: summary %+v disagrees with the entries %+v", r.name, s, want)
	}
	if fmt.Sprint(s.Reasons) != fmt.Sprint(reasons) {
		t.Errorf("%s: invariant 5: summary reasons %v, entries %v", r.name, s.Reasons, reasons)
	}
	// One log line per key decision, for every candidate.
	if r.keyLines != nil {
		for _, k := range rep.Keys {
			if n := r.keyLines[k.KeyARN]; n != 1 {
				t.Errorf("%s: %d key decision log lines for %s, want 1", r.name, n, k.KeyARN)
			}
		}
		if len(r.keyLines) != len(rep.Keys) {
			t.Errorf("%s: key decision lines for %d keys, report has %d", r.name, len(r.keyLines), len(rep.Keys))
		}
	}
	checkMetrics(t, r, count, skippedBy, failedBy)
	raw, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range harness.CheckReportMetrics(r.emf, raw, reserve) {
		t.Errorf("%s: invariant 5: %s", r.name, p)
	}
}

// checkMetrics asserts that the EMF lines of a run say what its report says.
func checkMetrics(t *testing.T, r run, count map[rotator.Outcome]int, skippedBy, failedBy map[rotator.Reason]int) {
	t.Helper()
	mode := string(r.report.Mode)
	var main *harness.EMF
	perReason := map[string]map[rotator.Reason]float64{settings.MetricKeysSkipped: {}, settings.MetricKeysFailed: {}}
	for i, e := range r.emf {
		if e.Dimension(settings.DimMode) != mode {
			t.Errorf("%s: EMF line with Mode %q, want %q", r.name, e.Dimension(settings.DimMode), mode)
		}
		rsn := e.Dimension(settings.DimReason)
		if rsn == "" {
			if main != nil {
				t.Errorf("%s: two EMF lines with dimensions [Mode]", r.name)
			}
			main = &r.emf[i]
			continue
		}
		for name, m := range perReason {
			if v, ok := e.Value(name); ok {
				m[rotator.Reason(rsn)] += v
			}
		}
	}
	if main == nil {
		t.Errorf("%s: invariant 5: no EMF line with dimensions [Mode]", r.name)
		return
	}
	for name, want := range map[string]int{
		settings.MetricKeysCandidate:   len(r.report.Keys),
		settings.MetricKeysRotated:     count[rotator.Rotated],
		settings.MetricKeysWouldRotate: count[rotator.WouldRotate],
		settings.MetricKeysSkipped:     count[rotator.Skipped],
		settings.MetricKeysFailed:      count[rotator.Failed],
		settings.MetricKeysDeferred:    count[rotator.Deferred],
		settings.MetricRunsCompleted:   1,
	} {
		if v, ok := main.Value(name); !ok || v != float64(want) {
			t.Errorf("%s: invariant 5: metric %s = %v (present %v), report says %d", r.name, name, v, ok, want)
		}
	}
	for name, want := range map[string]map[rotator.Reason]int{
		settings.MetricKeysSkipped: skippedBy, settings.MetricKeysFailed: failedBy} {
		got := perReason[name]
		if len(got) != len(want) {
			t.Errorf("%s: invariant 5: %s per reason %v, report %v", r.name, name, got, want)
			continue
		}
		for rsn, n := range want {
			if got[rsn] != float64(n) {
				t.Errorf("%s: invariant 5: %s{Reason=%s} = %v, report %d", r.name, name, rsn, got[rsn], n)
			}
		}
	}
}

// outcomes renders a report's outcomes by class, for failure messages.
func outcomes(rep *rotator.Report, st fleetState) string {
	m := map[string]int{}
	for _, k := range rep.Keys {
		name := st[k.KeyARN].alias
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

// readKey reads one key's opt-in tag and on-demand rotations.
func readKey(ctx context.Context, c *kms.Client, k kmstypes.KeyListEntry, aliases map[string]string) (keyState, error) {
	ks := keyState{arn: aws.ToString(k.KeyArn), alias: aliases[aws.ToString(k.KeyId)]}
	tags, err := c.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: k.KeyArn})
	if err != nil {
		return ks, fmt.Errorf("ListResourceTags %s: %w", ks.alias, err)
	}
	for _, tg := range tags.Tags {
		if aws.ToString(tg.TagKey) == "kms-rotator" && aws.ToString(tg.TagValue) == "enabled" {
			ks.optedIn = true
		}
	}
	// Status, history, status again: a rotation that completes between
	// the reads could be counted twice or not at all, so read until both
	// status reads agree (no new rotation starts while the checks read).
	for {
		before, err := inProgress(ctx, c, k.KeyArn)
		if err != nil {
			return ks, fmt.Errorf("GetKeyRotationStatus %s: %w", ks.alias, err)
		}
		ks.completed = 0
		rp := kms.NewListKeyRotationsPaginator(c, &kms.ListKeyRotationsInput{KeyId: k.KeyArn})
		for rp.HasMorePages() {
			out, err := rp.NextPage(ctx)
			if err != nil {
				return ks, fmt.Errorf("ListKeyRotations %s: %w", ks.alias, err)
			}
			for _, r := range out.Rotations {
				if r.RotationType == kmstypes.RotationTypeOnDemand {
					ks.completed++
				}
			}
		}
		after, err := inProgress(ctx, c, k.KeyArn)
		if err != nil {
			return ks, fmt.Errorf("GetKeyRotationStatus %s: %w", ks.alias, err)
		}
		if before == after {
			ks.inProgress = after
			return ks, nil
		}
	}
}

// inProgress reports whether an on-demand rotation of the key is in
// progress (false for keys rotation does not apply to).
func inProgress(ctx context.Context, c *kms.Client, arn *string) (bool, error) {
	status, err := c.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: arn})
	var unsupported *kmstypes.UnsupportedOperationException
	switch {
	case errors.As(err, &unsupported):
		return false, nil
	case err != nil:
		return false, err
	}
	return status.OnDemandRotationStartDate != nil, nil
}

// checkMaterial checks confirmation under faults: every rotated
// entry names the material it replaced (keyMaterialIdBefore); an incident
// that waited reports each of its rotations complete, with the new
// material and when it was seen (the rows' rotations complete in well under
// a second, far inside ROTATOR_INCIDENT_WAIT, and reads are retried through
// the faults); nothing else claims a completion (sweeps never wait).
func checkMaterial(t *testing.T, r run, waited bool) {
	t.Helper()
	for _, k := range r.report.Keys {
		if k.Outcome == rotator.Rotated && k.KeyMaterialIDBefore == "" {
			t.Errorf("%s: %s rotated without keyMaterialIdBefore", r.name, k.KeyARN)
		}
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
