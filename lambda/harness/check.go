package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// The checks below judge a run from outside — the report's JSON, the
// emulator's state through the real SDK, the EMF lines — and return the
// problems found as sentences (none = pass), so tests, the fault suite and
// the demo share them.

// KeyRotations is what the emulator says, through the SDK, about one key's
// on-demand rotations.
type KeyRotations struct {
	KeyID, KeyARN, Region string
	// OnDemand counts the ON_DEMAND entries of ListKeyRotations (all
	// pages): completed rotations.
	OnDemand int
	// InProgress is GetKeyRotationStatus.OnDemandRotationStartDate != nil:
	// KMS lists a rotation only once it completes.
	InProgress bool
}

// Started counts the on-demand rotations started, completed or not.
func (s KeyRotations) Started() int {
	if s.InProgress {
		return s.OnDemand + 1
	}
	return s.OnDemand
}

// Rotations reads every key of each region (ListKeys, then per key
// ListKeyRotations and GetKeyRotationStatus, 16 keys at a time), keyed by
// key ARN; no regions means the emulator's default region.
func (k *KMSLocal) Rotations(ctx context.Context, regions ...string) (map[string]KeyRotations, error) {
	if len(regions) == 0 {
		regions = []string{k.Region}
	}
	type job struct {
		client *kms.Client
		s      KeyRotations
	}
	var jobs []job
	for _, region := range regions {
		client := k.KMS(region)
		keys := kms.NewListKeysPaginator(client, &kms.ListKeysInput{})
		for keys.HasMorePages() {
			page, err := keys.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("ListKeys %s: %w", region, err)
			}
			for _, key := range page.Keys {
				jobs = append(jobs, job{client, KeyRotations{KeyID: aws.ToString(key.KeyId), KeyARN: aws.ToString(key.KeyArn), Region: region}})
			}
		}
	}
	errs := make([]error, len(jobs))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range jobs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = readRotations(ctx, jobs[i].client, &jobs[i].s)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := make(map[string]KeyRotations, len(jobs))
	for _, j := range jobs {
		out[j.s.KeyARN] = j.s
	}
	return out, nil
}

func readRotations(ctx context.Context, client *kms.Client, s *KeyRotations) error {
	var err error
	if s.OnDemand, err = countOnDemand(ctx, client, s.KeyID); err != nil && !noRotations(err) {
		return fmt.Errorf("ListKeyRotations %s: %w", s.KeyARN, err)
	}
	status, err := client.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(s.KeyID)})
	if err != nil && !noRotations(err) {
		return fmt.Errorf("GetKeyRotationStatus %s: %w", s.KeyARN, err)
	}
	s.InProgress = err == nil && status.OnDemandRotationStartDate != nil
	return nil
}

// noRotations reports whether err is how KMS answers a rotation call for a
// key without rotations to show: rotation unsupported (asymmetric, HMAC,
// AWS managed, imported, custom key store) or the key's state (disabled,
// pending deletion)
// (https://docs.aws.amazon.com/kms/latest/APIReference/API_ListKeyRotations.html).
func noRotations(err error) bool {
	var unsupported *types.UnsupportedOperationException
	var state *types.KMSInvalidStateException
	return errors.As(err, &unsupported) || errors.As(err, &state)
}

func countOnDemand(ctx context.Context, client *kms.Client, keyID string) (int, error) {
	n := 0
	p := kms.NewListKeyRotationsPaginator(client, &kms.ListKeyRotationsInput{KeyId: aws.String(keyID)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, err
		}
		for _, r := range page.Rotations {
			if r.RotationType == types.RotationTypeOnDemand {
				n++
			}
		}
	}
	return n, nil
}

// CheckRotations compares the emulator's state before and after one or more
// runs with their reports: every key gets exactly as many new on-demand
// rotations as reports say "rotated" for it (so none for the others, and a
// lost response that did rotate must be reported rotated), no key is
// reported rotated by two runs, and a reported budget is not below what the
// emulator shows. Keys match by key ID: a multi-Region primary and its
// replicas share it, and rotating the primary rotates the replicas
// (https://docs.aws.amazon.com/kms/latest/developerguide/multi-region-keys-manage.html).
func CheckRotations(before, after map[string]KeyRotations, reports ...*Report) []string {
	var problems []string
	rotated := map[string]int{}
	for _, r := range reports {
		for _, k := range r.Keys {
			if k.Outcome == "rotated" {
				rotated[k.KeyID]++
			}
		}
	}
	for id, n := range rotated {
		if n > 1 {
			problems = append(problems, fmt.Sprintf("key %s reported rotated by %d runs", id, n))
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
			if single && k.OnDemandUsed != nil && *k.OnDemandUsed != a.Started() && *k.OnDemandUsed != a.OnDemand {
				problems = append(problems, fmt.Sprintf("%s: report says onDemandUsed %d, emulator has %d on-demand rotations (in progress: %v)",
					k.KeyARN, *k.OnDemandUsed, a.Started(), a.InProgress))
			}
		}
	}
	for _, arn := range slices.Sorted(maps.Keys(after)) {
		a := after[arn]
		got := a.Started() - before[arn].Started()
		if want := rotated[a.KeyID]; got != want {
			problems = append(problems, fmt.Sprintf("%s: %d new on-demand rotation(s) in the emulator, %d reported", arn, got, want))
		}
	}
	return problems
}

// Outcomes are DESIGN.md's outcomes, and OutcomeOfReason pairs each reason
// with its outcome (DESIGN.md "Decisions: outcomes and reasons").
var (
	Outcomes        = []string{"rotated", "would-rotate", "skipped", "failed", "deferred"}
	OutcomeOfReason = map[string]string{
		"not-opted-in": "skipped", "aws-managed": "skipped", "unsupported-key-spec": "skipped",
		"imported-key-material": "skipped", "custom-key-store": "skipped", "multi-region-replica": "skipped",
		"key-not-enabled": "skipped", "rotation-in-progress": "skipped", "budget-exhausted": "skipped",
		"budget-reserved": "skipped", "not-due": "skipped",
		"not-found": "failed", "access-denied": "failed", "throttled": "failed", "error": "failed",
		"deadline": "deferred",
	}
)

// CheckReportJSON checks a raw report against DESIGN.md "The report"
// without the engine's types: required members and their JSON types, the
// outcome and reason vocabulary, every candidate once, and a summary that
// counts the entries (when the list is complete; beyond 2,000 candidates
// only the not-due entries may be left out).
func CheckReportJSON(raw []byte) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var r map[string]any
	if err := json.Unmarshal(raw, &r); err != nil {
		return []string{fmt.Sprintf("report is not a JSON object: %v: %s", err, truncate(string(raw), 300))}
	}
	str := func(m map[string]any, k, where string) string {
		s, ok := m[k].(string)
		if !ok {
			bad("%s.%s = %#v, want a string", where, k, m[k])
		}
		return s
	}
	timeOrNull := func(m map[string]any, k, where string) {
		v, present := m[k]
		switch s, isStr := v.(string); {
		case !present:
			bad("%s.%s missing (want RFC 3339 or null)", where, k)
		case v == nil:
		case !isStr:
			bad("%s.%s = %#v, want RFC 3339 or null", where, k, v)
		default:
			if _, err := time.Parse(time.RFC3339, s); err != nil {
				bad("%s.%s = %q: %v", where, k, s, err)
			}
		}
	}
	if str(r, "runId", "report") == "" {
		bad("report.runId is empty")
	}
	if mode := str(r, "mode", "report"); !slices.Contains([]string{"scheduled", "plan", "incident", "report"}, mode) {
		bad("report.mode = %q", mode)
	}
	if _, ok := r["dryRun"].(bool); !ok {
		bad("report.dryRun = %#v, want a bool", r["dryRun"])
	}
	for _, k := range []string{"startedAt", "finishedAt"} {
		if _, err := time.Parse(time.RFC3339, str(r, k, "report")); err != nil {
			bad("report.%s: %v", k, err)
		}
	}
	summary, ok := r["summary"].(map[string]any)
	if !ok {
		bad("report.summary = %#v, want an object", r["summary"])
		return problems
	}
	counts := map[string]float64{}
	for _, k := range []string{"candidates", "rotated", "wouldRotate", "skipped", "failed", "deferred"} {
		n, ok := summary[k].(float64)
		if !ok {
			bad("summary.%s = %#v, want a number", k, summary[k])
		}
		counts[k] = n
	}
	if sum := counts["rotated"] + counts["wouldRotate"] + counts["skipped"] + counts["failed"] + counts["deferred"]; sum != counts["candidates"] {
		bad("summary outcomes add up to %v, candidates %v", sum, counts["candidates"])
	}
	reasons, ok := summary["reasons"].(map[string]any)
	if !ok {
		bad("summary.reasons = %#v, want an object", summary["reasons"])
	}
	keys, ok := r["keys"].([]any)
	if !ok {
		bad("report.keys = %#v, want an array", r["keys"])
		return problems
	}
	byOutcome := map[string]float64{}
	byReason := map[string]float64{}
	seen := map[string]bool{}
	for i, e := range keys {
		where := fmt.Sprintf("keys[%d]", i)
		k, ok := e.(map[string]any)
		if !ok {
			bad("%s is not an object", where)
			continue
		}
		arn := str(k, "keyArn", where)
		if seen[arn] {
			bad("%s: %s listed twice", where, arn)
		}
		seen[arn] = true
		str(k, "keyId", where)
		if a := str(k, "alias", where); a != "" && !strings.HasPrefix(a, "alias/") {
			bad("%s.alias = %q", where, a)
		}
		outcome, reason := str(k, "outcome", where), str(k, "reason", where)
		byOutcome[outcome]++
		if reason != "" {
			byReason[reason]++
		}
		switch {
		case !slices.Contains(Outcomes, outcome):
			bad("%s: unknown outcome %q", where, outcome)
		case outcome == "rotated" || outcome == "would-rotate":
			if reason != "" {
				bad("%s: %s with reason %q", where, outcome, reason)
			}
		default:
			if want, known := OutcomeOfReason[reason]; !known || want != outcome {
				bad("%s: outcome %q with reason %q (DESIGN.md pairs the reason with %q)", where, outcome, reason, want)
			}
		}
		for _, f := range []string{"onDemandUsed", "onDemandRemaining"} {
			v, present := k[f]
			if _, isNum := v.(float64); !present || (v != nil && !isNum) {
				bad("%s.%s = %#v, want a number or null", where, f, v)
			}
		}
		timeOrNull(k, "lastRotation", where)
		timeOrNull(k, "nextDue", where)
		if _, has := k["error"]; has != (outcome == "failed") {
			bad("%s: error member present %v for outcome %s", where, has, outcome)
		}
		if _, has := k["primaryKeyArn"]; has != (reason == "multi-region-replica") {
			bad("%s: primaryKeyArn present %v for reason %q", where, has, reason)
		}
	}
	// Beyond 2,000 candidates the list may leave out not-due entries;
	// every other count must still match the entries.
	complete := float64(len(keys)) == counts["candidates"]
	if !complete && (counts["candidates"] <= 2000 || float64(len(keys)) > counts["candidates"]) {
		bad("%d entries in keys, summary.candidates %v", len(keys), counts["candidates"])
	}
	for outcome, field := range map[string]string{"rotated": "rotated", "would-rotate": "wouldRotate", "skipped": "skipped", "failed": "failed", "deferred": "deferred"} {
		if byOutcome[outcome] != counts[field] && (complete || outcome != "skipped") {
			bad("summary.%s = %v, entries with outcome %s: %v", field, counts[field], outcome, byOutcome[outcome])
		}
	}
	for reason, n := range reasons {
		if n != byReason[reason] && (complete || reason != "not-due") {
			bad("summary.reasons[%s] = %v, entries: %v", reason, n, byReason[reason])
		}
	}
	for reason, n := range byReason {
		if _, ok := reasons[reason]; !ok {
			bad("summary.reasons lacks %s (%v entries)", reason, n)
		}
	}
	return problems
}

// CheckMetrics checks the run's EMF records against its report (DESIGN.md
// "Metrics and logs"): the namespace, no per-key dimension, and with
// dimensions [Mode] KeysCandidate, KeysRotated, KeysSkipped, KeysFailed,
// KeysDeferred equal to the summary and RunsCompleted 1.
func CheckMetrics(recs []EMF, r *Report, namespace string) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if len(recs) == 0 {
		return []string{"no EMF record"}
	}
	mode := string(r.Mode)
	want := map[string]float64{
		"KeysCandidate": float64(r.Summary.Candidates),
		"KeysRotated":   float64(r.Summary.Rotated),
		"KeysSkipped":   float64(r.Summary.Skipped),
		"KeysFailed":    float64(r.Summary.Failed),
		"KeysDeferred":  float64(r.Summary.Deferred),
		"RunsCompleted": 1,
	}
	found := map[string]bool{}
	for _, rec := range recs {
		for _, d := range rec.Directives {
			if d.Namespace != namespace {
				bad("EMF namespace %q, want %q", d.Namespace, namespace)
			}
			for _, set := range d.Dimensions {
				for _, dim := range set {
					if dim != "Mode" && dim != "Reason" {
						bad("EMF dimension %q in %v (only Mode and Reason; never a per-key one)", dim, set)
					}
				}
				if rec.Dimension("Mode") != mode {
					bad("EMF Mode %q, report mode %q", rec.Dimension("Mode"), mode)
				}
				if !slices.Equal(set, []string{"Mode"}) {
					continue
				}
				for _, m := range d.Metrics {
					if w, ok := want[m.Name]; ok {
						found[m.Name] = true
						if v, _ := rec.Value(m.Name); v != w {
							bad("EMF %s = %v, report says %v", m.Name, v, w)
						}
					}
				}
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if !found[name] {
			bad("EMF metric %s with dimensions [Mode] missing", name)
		}
	}
	return problems
}
