package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
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
	// Material is DescribeKey's CurrentKeyMaterialId (empty for keys
	// without one).
	Material string
	// Staged is the key material of an imported (EXTERNAL) key that waits
	// for RotateKeyOnDemand: ListKeyRotations with ALL_KEY_MATERIAL lists it
	// PENDING_ROTATION, or PENDING_MULTI_REGION_IMPORT_AND_ROTATION while a
	// replica lacks it (then PendingReplicas is true).
	Staged          string
	PendingReplicas bool
}

// Started counts the on-demand rotations started, completed or not.
func (s KeyRotations) Started() int {
	if s.InProgress {
		return s.OnDemand + 1
	}
	return s.OnDemand
}

// Rotations reads every key of each region (ListKeys, then per key
// DescribeKey, ListKeyRotations — twice for imported keys, the second time
// with their key materials — and GetKeyRotationStatus, 16 keys at a time),
// keyed by key ARN; no regions means the emulator's default region.
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
	d, err := client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(s.KeyID)})
	if err != nil {
		return fmt.Errorf("DescribeKey %s: %w", s.KeyARN, err)
	}
	s.Material = aws.ToString(d.KeyMetadata.CurrentKeyMaterialId)
	if d.KeyMetadata.Origin == types.OriginTypeExternal {
		if err := readStaged(ctx, client, s); err != nil && !noRotations(err) {
			return fmt.Errorf("ListKeyRotations ALL_KEY_MATERIAL %s: %w", s.KeyARN, err)
		}
	}
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
// AWS managed, custom key store) or the key's state (disabled, pending
// deletion, an imported key pending import)
// (https://docs.aws.amazon.com/kms/latest/APIReference/API_ListKeyRotations.html).
func noRotations(err error) bool {
	var unsupported *types.UnsupportedOperationException
	var state *types.KMSInvalidStateException
	return errors.As(err, &unsupported) || errors.As(err, &state)
}

// readStaged finds an imported key's staged material
// (https://docs.aws.amazon.com/kms/latest/developerguide/importing-keys-rotate.html).
func readStaged(ctx context.Context, client *kms.Client, s *KeyRotations) error {
	p := kms.NewListKeyRotationsPaginator(client, &kms.ListKeyRotationsInput{KeyId: aws.String(s.KeyID), IncludeKeyMaterial: types.IncludeKeyMaterialAllKeyMaterial})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, r := range page.Rotations {
			switch r.KeyMaterialState {
			case types.KeyMaterialStatePendingRotation:
				s.Staged = aws.ToString(r.KeyMaterialId)
			case types.KeyMaterialStatePendingMultiRegionImportAndRotation:
				s.Staged, s.PendingReplicas = aws.ToString(r.KeyMaterialId), true
			}
		}
	}
	return nil
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
// emulator shows. A key reported failed/unconfirmed may have one new
// rotation more: the function could not tell whether KMS applied it. Keys match by key ID: a multi-Region primary and its
// replicas share it, and rotating the primary rotates the replicas
// (https://docs.aws.amazon.com/kms/latest/developerguide/multi-region-keys-manage.html).
func CheckRotations(before, after map[string]KeyRotations, reports ...*Report) []string {
	var problems []string
	rotated := map[string]int{}
	for _, r := range reports {
		if r.RepeatOf != "" {
			continue // a repeat answers its first run's report: nothing of its own
		}
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

// CheckMaterial compares the key material a raw report names
// with the emulator's before and after the run (Rotations snapshots, by key
// ARN): a rotated entry's keyMaterialIdBefore is the key's material before
// the run; a completed one's keyMaterialId is the material after it (and,
// for an imported key, the material that was staged); stagedKeyMaterialId
// is the staged material the emulator shows; any other keyMaterialId is the
// key's material before or after the run.
func CheckMaterial(before, after map[string]KeyRotations, raw []byte) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var r struct {
		RepeatOf string `json:"repeatOf"`
		Keys     []struct {
			KeyARN              string `json:"keyArn"`
			Outcome             string `json:"outcome"`
			Completion          string `json:"completion"`
			KeyMaterialIDBefore string `json:"keyMaterialIdBefore"`
			KeyMaterialID       string `json:"keyMaterialId"`
			StagedKeyMaterialID string `json:"stagedKeyMaterialId"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return []string{fmt.Sprintf("report is not JSON: %v", err)}
	}
	if r.RepeatOf != "" {
		return nil // a repeat answers an earlier run's report: that run's material, not this one's
	}
	for _, k := range r.Keys {
		b, a := before[k.KeyARN], after[k.KeyARN]
		if a.KeyARN == "" {
			continue
		}
		if k.Outcome == "rotated" && k.KeyMaterialIDBefore != "" && k.KeyMaterialIDBefore != b.Material {
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
		case k.KeyMaterialID != "" && k.Outcome != "rotated" && k.KeyMaterialID != b.Material && k.KeyMaterialID != a.Material:
			bad("%s (%s): keyMaterialId %s is neither the material before (%s) nor after the run (%s)", k.KeyARN, k.Outcome, k.KeyMaterialID, b.Material, a.Material)
		}
		if k.StagedKeyMaterialID != "" && k.StagedKeyMaterialID != b.Staged {
			bad("%s: stagedKeyMaterialId %s, the emulator had %q staged before the run", k.KeyARN, k.StagedKeyMaterialID, b.Staged)
		}
	}
	return problems
}

// Outcomes are docs/design.md's outcomes, and OutcomeOfReason pairs each reason
// with its outcome (docs/design.md "Decisions: outcomes and reasons").
var (
	Outcomes        = []string{"rotated", "would-rotate", "skipped", "failed", "deferred"}
	OutcomeOfReason = map[string]string{
		"not-opted-in": "skipped", "aws-managed": "skipped", "unsupported-key-spec": "skipped",
		"custom-key-store": "skipped", "multi-region-replica": "skipped",
		"key-not-enabled": "skipped", "rotation-in-progress": "skipped", "budget-exhausted": "skipped",
		"budget-reserved": "skipped", "not-due": "skipped",
		"not-found": "failed", "access-denied": "failed", "throttled": "failed", "error": "failed",
		"deadline": "deferred",
		// Added by issues 9 and 10.
		"recently-rotated": "skipped", "automatic-rotation-soon": "skipped", "unconfirmed": "failed",
		// New reasons (they replace imported-key-material).
		"material-not-staged": "skipped", "material-pending-replica-import": "skipped", "idle": "skipped",
		// The rotation ledger.
		"ledger-unavailable": "failed",
	}
)

// ineligibleReasons are the reasons that say the key cannot be rotated by
// this product at all: such an entry has no cryptoperiod to be overdue on.
var ineligibleReasons = []string{"not-opted-in", "aws-managed", "unsupported-key-spec",
	"custom-key-store", "multi-region-replica", "key-not-enabled", "not-found"}

// CheckReportJSON checks a raw report against docs/design.md "The report"
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
	runStart, _ := time.Parse(time.RFC3339, fmt.Sprint(r["startedAt"]))
	runEnd, _ := time.Parse(time.RFC3339, fmt.Sprint(r["finishedAt"]))
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
	for _, k := range []string{"candidates", "rotated", "wouldRotate", "skipped", "failed", "deferred", "overdue"} {
		n, ok := summary[k].(float64)
		if !ok {
			bad("summary.%s = %#v, want a number", k, summary[k])
		}
		counts[k] = n
	}
	if sum := counts["rotated"] + counts["wouldRotate"] + counts["skipped"] + counts["failed"] + counts["deferred"]; sum != counts["candidates"] {
		bad("summary outcomes add up to %v, candidates %v", sum, counts["candidates"])
	}
	if a, p := summary["overdueAction"], summary["overdueByPolicy"]; a != nil || p != nil {
		an, _ := a.(float64)
		pn, _ := p.(float64)
		if an+pn != counts["overdue"] {
			bad("summary.overdueAction %v + overdueByPolicy %v ≠ overdue %v", a, p, counts["overdue"])
		}
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
	overdue := 0.0
	seen := map[string]bool{}
	// A report run reads last use only when asked ("usage": true): then
	// every eligible entry carries lastUsedAt, else none need to.
	usageRead := false
	for _, e := range keys {
		if k, ok := e.(map[string]any); ok && k["reason"] != "idle" {
			if _, has := k["lastUsedAt"]; has {
				usageRead = true
			}
		}
	}
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
				bad("%s: outcome %q with reason %q (docs/design.md pairs the reason with %q)", where, outcome, reason, want)
			}
		}
		// Every skipped or failed entry says what to do next.
		if n, _ := k["next"].(string); (outcome == "skipped" || outcome == "failed") && n == "" {
			bad("%s: %s/%s without a next step", where, outcome, reason)
		}
		for _, f := range []string{"onDemandUsed", "onDemandRemaining"} {
			v, present := k[f]
			if _, isNum := v.(float64); !present || (v != nil && !isNum) {
				bad("%s.%s = %#v, want a number or null", where, f, v)
			}
		}
		timeOrNull(k, "lastRotation", where)
		timeOrNull(k, "nextDue", where)
		// error: the AWS code and message of a failed entry; also KMS's
		// message on a rotation-in-progress entry that a ConflictException
		// explained (an automatic rotation within 20 minutes).
		switch e, has := k["error"]; {
		case outcome == "failed" && (!has || e == ""):
			bad("%s: failed entry without an error (%#v)", where, e)
		case has && outcome != "failed" && reason != "rotation-in-progress":
			bad("%s: error member present for %s/%s", where, outcome, reason)
		}
		if _, has := k["primaryKeyArn"]; has != (reason == "multi-region-replica") {
			bad("%s: primaryKeyArn present %v for reason %q", where, has, reason)
		}
		if reason == "budget-exhausted" {
			// One budget count: exhausted, by the local count or by
			// KMS's LimitExceededException, means nothing left.
			if rem, isNum := k["onDemandRemaining"].(float64); isNum && rem != 0 {
				bad("%s: budget-exhausted with onDemandRemaining %v", where, rem)
			}
		}
		if reason == "recently-rotated" && k["lastRotation"] == nil && k["claim"] == nil {
			bad("%s: recently-rotated without lastRotation (the rotation that started the cooldown) or the ledger's claim", where)
		}
		// nextRotationDate: the key's next automatic rotation (issues 9 and 10).
		if v, has := k["nextRotationDate"]; has && v != nil {
			timeOrNull(k, "nextRotationDate", where)
		} else if reason == "automatic-rotation-soon" {
			bad("%s: automatic-rotation-soon without nextRotationDate", where)
		}
		overdue += checkCryptoperiod(k, where, outcome, reason, runStart, runEnd, bad)
		checkKeyMaterial(k, where, fmt.Sprint(r["mode"]), outcome, reason, usageRead, runStart, runEnd, bad)
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
	// Entries left out beyond 2,000 candidates are not-due ones, never
	// overdue; only a list cut further (omittedOther) may hide some.
	if other, _ := r["omittedOther"].(float64); other == 0 && overdue != counts["overdue"] {
		bad("summary.overdue = %v, entries with overdue true: %v", counts["overdue"], overdue)
	}
	return problems
}

// checkCryptoperiod checks an entry's materialAgeDays and overdue (issue
// 10): both on every entry whose budget was read (an eligible key), never
// overdue for a key this product cannot rotate, nor for one this run
// rotated, would rotate or left for later on purpose (deferred, or waiting
// for its free automatic rotation: automatic-rotation-soon); otherwise
// overdue exactly when the material is older than the interval, i.e.
// nextDue (material date + interval) passed before the run (a nextDue
// inside the run may go either way). It returns 1 for an overdue entry.
func checkCryptoperiod(k map[string]any, where, outcome, reason string, runStart, runEnd time.Time, bad func(string, ...any)) float64 {
	age, hasAge := k["materialAgeDays"]
	od, hasOverdue := k["overdue"]
	if hasAge {
		if n, ok := age.(float64); !ok || n < 0 || n != float64(int64(n)) {
			bad("%s.materialAgeDays = %#v, want a whole number of days ≥ 0", where, age)
		}
	}
	isOverdue, ok := od.(bool)
	if hasOverdue && !ok {
		bad("%s.overdue = %#v, want a bool", where, od)
	}
	if k["onDemandUsed"] != nil && (!hasAge || !hasOverdue) {
		bad("%s: eligible entry (budget read) without materialAgeDays or overdue", where)
	}
	switch {
	case !isOverdue:
	case slices.Contains(ineligibleReasons, reason):
		bad("%s: overdue for %s, a key this product cannot rotate", where, reason)
	case notOverdue(outcome, reason):
		bad("%s: overdue although %s %s", where, outcome, reason)
	}
	// overdueFor: "policy" for the reasons the product keeps overdue on
	// purpose, "action" for every other overdue key; absent otherwise.
	of, _ := k["overdueFor"].(string)
	switch {
	case isOverdue && slices.Contains(OverdueByPolicyReasons, reason) && of != "policy",
		isOverdue && !slices.Contains(OverdueByPolicyReasons, reason) && of != "action":
		bad("%s: overdue %s/%s with overdueFor %q", where, outcome, reason, of)
	case !isOverdue && of != "":
		bad("%s: overdueFor %q on an entry that is not overdue", where, of)
	}
	nextDue, _ := k["nextDue"].(string)
	due, err := time.Parse(time.RFC3339, nextDue)
	// A deferred key, or one waiting for its automatic rotation, becomes
	// overdue only some time after its interval, never before it.
	if isOverdue && overdueLater(outcome, reason) && err == nil && !runEnd.IsZero() && due.After(runEnd) {
		bad("%s: overdue although %s %s (nextDue %s is after the run)", where, outcome, reason, nextDue)
	}
	// An idle key is skipped on purpose, like one waiting for
	// its automatic rotation, but whether its age still counts as overdue
	// is the engine's call: either answer passes here.
	// A key refused by another run's claim may have been rotated by it
	// though KMS does not list that rotation yet: its overdue follows the
	// claim, not nextDue.
	_, claimed := k["claim"]
	if hasOverdue && err == nil && !runStart.IsZero() && !notOverdue(outcome, reason) && !overdueLater(outcome, reason) && reason != "idle" && !claimed &&
		(due.Before(runStart) || due.After(runEnd)) && isOverdue != due.Before(runStart) {
		bad("%s: overdue %v, but nextDue %s is %s the run (%s)", where, isOverdue, nextDue,
			map[bool]string{true: "before", false: "after"}[due.Before(runStart)], runStart.Format(time.RFC3339))
	}
	if isOverdue {
		return 1
	}
	return 0
}

// checkKeyMaterial checks the key-material members of an entry:
//   - keyMaterialIdBefore (the current material before the rotation) on
//     every rotated entry; keyMaterialId (current, or the new one once a
//     rotation completed) and stagedKeyMaterialId (new material waiting in
//     PENDING_ROTATION) are non-empty strings when present;
//   - an imported key skipped for its material names its current material,
//     and material-not-staged has none staged;
//   - completion ("complete" or "pending") only on rotated incident entries
//     (sweeps do not wait); "complete" ⇔ completedAt, a time inside the run
//     and not before the rotation started, with keyMaterialId the new
//     material (not keyMaterialIdBefore);
//   - stuck is a bool, true only on a key this run did not rotate;
//   - materialExpiresAt and completedAt are RFC 3339, lastUsedAt RFC 3339
//     or null; lastUsedAt is present on idle entries and, in a report run
//     that read usage ("usage": true: some entry has it), on
//     every entry whose history was read.
func checkKeyMaterial(k map[string]any, where, mode, outcome, reason string, usageRead bool, runStart, runEnd time.Time, bad func(string, ...any)) {
	ids := map[string]string{}
	for _, f := range []string{"keyMaterialIdBefore", "keyMaterialId", "stagedKeyMaterialId"} {
		v, has := k[f]
		if !has {
			continue
		}
		if s, ok := v.(string); !ok || s == "" {
			bad("%s.%s = %#v, want a key material ID", where, f, v)
			continue
		}
		ids[f] = v.(string)
	}
	if outcome == "rotated" && ids["keyMaterialIdBefore"] == "" {
		bad("%s: rotated entry without keyMaterialIdBefore", where)
	}
	switch reason {
	case "material-not-staged":
		if _, has := k["stagedKeyMaterialId"]; has {
			bad("%s: material-not-staged with stagedKeyMaterialId %#v", where, k["stagedKeyMaterialId"])
		}
		fallthrough
	case "material-pending-replica-import":
		if ids["keyMaterialId"] == "" {
			bad("%s: %s without keyMaterialId (the imported key's current material)", where, reason)
		}
	}
	if outcome != "rotated" && ids["stagedKeyMaterialId"] != "" && ids["stagedKeyMaterialId"] == ids["keyMaterialId"] {
		bad("%s: stagedKeyMaterialId %s is the current material (keyMaterialId)", where, ids["stagedKeyMaterialId"])
	}
	parse := func(f string, nullable bool) (time.Time, bool) {
		v, has := k[f]
		if !has || (nullable && v == nil) {
			return time.Time{}, false
		}
		s, ok := v.(string)
		t, err := time.Parse(time.RFC3339, s)
		if !ok || err != nil {
			bad("%s.%s = %#v, want RFC 3339%s", where, f, v, map[bool]string{true: " or null", false: ""}[nullable])
			return time.Time{}, false
		}
		return t, true
	}
	parse("materialExpiresAt", false)
	if _, has := k["lastUsedAt"]; has {
		parse("lastUsedAt", true)
	} else if reason == "idle" || (mode == "report" && usageRead && k["onDemandUsed"] != nil) {
		bad("%s: no lastUsedAt (RFC 3339 or null) on a %s entry", where, map[bool]string{true: "idle", false: "report-mode"}[reason == "idle"])
	}
	if v, has := k["stuck"]; has {
		if stuck, ok := v.(bool); !ok {
			bad("%s.stuck = %#v, want a bool", where, v)
		} else if stuck && (outcome == "rotated" || outcome == "would-rotate") {
			bad("%s: stuck (another rotation in progress too long) yet %s", where, outcome)
		}
	}
	completedAt, hasCompletedAt := parse("completedAt", false)
	c, hasCompletion := k["completion"]
	if !hasCompletion {
		if hasCompletedAt {
			bad("%s: completedAt without completion", where)
		}
		return
	}
	switch {
	case c != "complete" && c != "pending":
		bad("%s.completion = %#v, want \"complete\" or \"pending\"", where, c)
	case outcome != "rotated":
		bad("%s: completion %v on a %s entry", where, c, outcome)
	case mode != "incident":
		bad("%s: completion %v in a %s run (only incidents wait for a rotation)", where, c, mode)
	}
	if (c == "complete") != hasCompletedAt {
		bad("%s: completion %v with completedAt %#v", where, c, k["completedAt"])
	}
	if c == "complete" && ids["keyMaterialId"] == ids["keyMaterialIdBefore"] {
		bad("%s: completion complete, but keyMaterialId %q is the material before the rotation", where, ids["keyMaterialId"])
	}
	if !hasCompletedAt || runStart.IsZero() {
		return
	}
	if completedAt.Before(runStart) || completedAt.After(runEnd) {
		bad("%s: completedAt %s outside the run (%s to %s)", where, k["completedAt"], runStart.Format(time.RFC3339Nano), runEnd.Format(time.RFC3339Nano))
	}
	if last, ok := parse("lastRotation", true); ok && completedAt.Before(last) {
		bad("%s: completedAt %s before the rotation started (lastRotation %s)", where, k["completedAt"], k["lastRotation"])
	}
}

// notOverdue reports whether an entry is never overdue whatever its age:
// rotated or would rotate in this run, or left for later on purpose.
func notOverdue(outcome, reason string) bool {
	return outcome == "rotated" || outcome == "would-rotate"
}

// overdueLater reports whether an entry becomes overdue only some time
// after its interval: a deferred key (two days later) and one waiting for
// its automatic rotation (the grace days later, when it was missed).
func overdueLater(outcome, reason string) bool {
	return outcome == "deferred" || reason == "automatic-rotation-soon"
}

// OverdueByPolicyReasons are the reasons an overdue key is overdue by
// policy (overdueFor "policy", KeysOverdueByPolicy): the product keeps it
// so on purpose. Every other overdue key needs someone to act.
var OverdueByPolicyReasons = []string{"budget-reserved", "budget-exhausted", "material-not-staged", "material-pending-replica-import", "idle"}

// CheckMetrics checks the run's EMF records against its report (docs/design.md
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

// CheckReportMetrics checks the [Mode] EMF metrics that a report's entries
// imply (one budget count, cryptoperiod signals), from the raw
// report so it judges the function from outside:
//   - KeysBudgetLow: entries with onDemandRemaining ≤ reserve;
//   - KeysBudgetExhausted: entries with onDemandRemaining 0;
//   - MinOnDemandRemaining: the smallest onDemandRemaining (absent when no
//     entry has one);
//   - KeysOverdue: summary.overdue;
//   - MaxMaterialAgeDays: the largest materialAgeDays (absent or 0 when no
//     entry has one);
//   - RotationsStuck: entries with stuck true (absent allowed when none).
//
// A budget-exhausted entry counts as 0 remaining. The entry-derived ones
// are compared only when the report lists every candidate.
func CheckReportMetrics(recs []EMF, raw []byte, reserve int) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var r struct {
		Mode    string `json:"mode"`
		Summary struct {
			Candidates      int      `json:"candidates"`
			Overdue         *float64 `json:"overdue"`
			OverdueAction   *float64 `json:"overdueAction"`
			OverdueByPolicy *float64 `json:"overdueByPolicy"`
		} `json:"summary"`
		Keys []struct {
			KeyARN            string   `json:"keyArn"`
			Reason            string   `json:"reason"`
			OnDemandRemaining *float64 `json:"onDemandRemaining"`
			MaterialAgeDays   *float64 `json:"materialAgeDays"`
			Stuck             bool     `json:"stuck"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return []string{fmt.Sprintf("report is not JSON: %v", err)}
	}
	var main *EMF
	for i, rec := range recs {
		for _, d := range rec.Directives {
			for _, set := range d.Dimensions {
				if slices.Equal(set, []string{"Mode"}) && rec.Dimension("Mode") == r.Mode {
					if main != nil && main != &recs[i] {
						bad("two EMF records with dimensions [Mode]")
					}
					main = &recs[i]
				}
			}
		}
	}
	if main == nil {
		return []string{"no EMF record with dimensions [Mode] for mode " + r.Mode}
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
	if r.Summary.Overdue == nil {
		bad("summary.overdue missing")
	} else if v, ok := metric("KeysOverdue"); !ok || v != *r.Summary.Overdue {
		bad("EMF KeysOverdue = %v (present %v), summary.overdue %v", v, ok, *r.Summary.Overdue)
	}
	// The split of overdue: someone must act, or kept so by policy.
	for name, want := range map[string]*float64{"KeysOverdueAction": r.Summary.OverdueAction, "KeysOverdueByPolicy": r.Summary.OverdueByPolicy} {
		if want == nil {
			bad("summary lacks the figure of %s", name)
		} else if v, ok := metric(name); !ok || v != *want {
			bad("EMF %s = %v (present %v), summary %v", name, v, ok, *want)
		}
	}
	if len(r.Keys) != r.Summary.Candidates {
		return problems
	}
	low, exhausted, minRemaining, maxAge, stuck := 0.0, 0.0, -1.0, -1.0, 0.0
	for _, k := range r.Keys {
		if k.Stuck {
			stuck++
		}
		if k.MaterialAgeDays != nil && *k.MaterialAgeDays > maxAge {
			maxAge = *k.MaterialAgeDays
		}
		rem := k.OnDemandRemaining
		if k.Reason == "budget-exhausted" {
			rem = new(float64)
		}
		if rem == nil {
			continue
		}
		if *rem <= float64(reserve) {
			low++
		}
		if *rem == 0 {
			exhausted++
		}
		if minRemaining < 0 || *rem < minRemaining {
			minRemaining = *rem
		}
	}
	for name, want := range map[string]float64{"KeysBudgetLow": low, "KeysBudgetExhausted": exhausted} {
		if v, ok := metric(name); !ok || v != want {
			bad("EMF %s = %v (present %v), the report's entries say %v (reserve %d)", name, v, ok, want, reserve)
		}
	}
	switch v, ok := metric("MinOnDemandRemaining"); {
	case minRemaining < 0 && ok:
		bad("EMF MinOnDemandRemaining = %v, but no entry has a budget", v)
	case minRemaining >= 0 && (!ok || v != minRemaining):
		bad("EMF MinOnDemandRemaining = %v (present %v), the report's smallest onDemandRemaining is %v", v, ok, minRemaining)
	}
	// RotationsStuck may be left out of a run with none.
	if v, ok := metric("RotationsStuck"); (ok || stuck > 0) && v != stuck {
		bad("EMF RotationsStuck = %v (present %v), the report has %v stuck entries", v, ok, stuck)
	}
	switch v, ok := metric("MaxMaterialAgeDays"); {
	case maxAge < 0 && ok && v != 0:
		bad("EMF MaxMaterialAgeDays = %v, but no entry has materialAgeDays", v)
	case maxAge >= 0 && (!ok || v != maxAge):
		bad("EMF MaxMaterialAgeDays = %v (present %v), the report's largest materialAgeDays is %v", v, ok, maxAge)
	}
	return problems
}

// The result event's source and detail-type (docs/design.md "The result
// event"). Copies of the contract on purpose: a checker that imported the
// engine's constants could not notice them change.
const (
	ResultEventSource     = "kms-rotator"
	ResultEventDetailType = "KMS Rotation Run Completed"
)

// maxEventEntryBytes is EventBridge's PutEvents entry size limit the
// result event is cut to fit.
const maxEventEntryBytes = 256 * 1024

// CheckResultEvent checks one published result event (its source,
// detail-type and detail text as sent) against the run's raw report, the
// Lambda request ID and the incident reason (empty for other modes): the
// detail carries runId, mode, dryRun, reason, requestId, the summary as
// the report has it, and the report's entries that are not "not-due", in
// the report's order and identical to them — all of them unless truncated
// is true, in which case some of them; the entry stays under 256 KB.
func CheckResultEvent(source, detailType, detail string, report []byte, requestID, reason string) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if source != ResultEventSource || detailType != ResultEventDetailType {
		bad("event source %q detail-type %q, want %q %q", source, detailType, ResultEventSource, ResultEventDetailType)
	}
	if len(source)+len(detailType)+len(detail) > maxEventEntryBytes {
		bad("event entry is %d bytes, over EventBridge's %d", len(source)+len(detailType)+len(detail), maxEventEntryBytes)
	}
	var rep, d map[string]json.RawMessage
	if err := json.Unmarshal(report, &rep); err != nil {
		return append(problems, fmt.Sprintf("report is not a JSON object: %v", err))
	}
	if err := json.Unmarshal([]byte(detail), &d); err != nil {
		return append(problems, fmt.Sprintf("event detail is not a JSON object: %v: %s", err, truncate(detail, 300)))
	}
	same := func(a, b json.RawMessage) bool {
		var x, y any
		return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
	}
	for _, f := range []string{"runId", "mode", "dryRun", "summary"} {
		if !same(d[f], rep[f]) {
			bad("event detail.%s = %s, report says %s", f, truncate(string(d[f]), 300), truncate(string(rep[f]), 300))
		}
	}
	str := func(f string) string {
		var s string
		_ = json.Unmarshal(d[f], &s)
		return s
	}
	if got := str("requestId"); got != requestID {
		bad("event detail.requestId = %q, want the invocation's %q", got, requestID)
	}
	if got := str("reason"); got != reason {
		bad("event detail.reason = %q, want %q", got, reason)
	}
	var truncated bool
	if v, ok := d["truncated"]; ok {
		if err := json.Unmarshal(v, &truncated); err != nil {
			bad("event detail.truncated = %s, want a bool", v)
		}
	}
	var repKeys, evKeys []json.RawMessage
	if err := json.Unmarshal(rep["keys"], &repKeys); err != nil {
		bad("report keys: %v", err)
	}
	if err := json.Unmarshal(d["keys"], &evKeys); err != nil {
		bad("event detail.keys = %s: %v", truncate(string(d["keys"]), 200), err)
	}
	var want []json.RawMessage
	for _, k := range repKeys {
		var e struct {
			Reason string `json:"reason"`
		}
		if json.Unmarshal(k, &e) == nil && e.Reason != "not-due" {
			want = append(want, k)
		}
	}
	if !truncated && len(evKeys) != len(want) {
		bad("event detail.keys has %d entries (not truncated), the report has %d that are not not-due", len(evKeys), len(want))
		return problems
	}
	if !truncated {
		for i := range evKeys {
			if !same(evKeys[i], want[i]) {
				bad("event detail.keys[%d] = %s, report entry %s", i, truncate(string(evKeys[i]), 300), truncate(string(want[i]), 300))
			}
		}
		return problems
	}
	// Truncated: some entries left out (which ones is the engine's choice:
	// docs/design.md "The result event"), each of the rest a report entry,
	// none twice.
	used := make([]bool, len(want))
	for i, k := range evKeys {
		found := false
		for j := range want {
			if !used[j] && same(k, want[j]) {
				used[j], found = true, true
				break
			}
		}
		if !found {
			bad("event detail.keys[%d] = %s is not a report entry that is not not-due (or is listed twice)", i, truncate(string(k), 300))
		}
	}
	return problems
}
