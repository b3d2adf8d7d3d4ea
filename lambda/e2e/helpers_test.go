package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kms-rotator/kms-rotator/lambda/harness"
)

// regions are the regions the test fleets place keys in.
var regions = []string{"us-east-1", "eu-west-1"}

// keyState is what the emulator says about one key, through the SDK.
type keyState struct {
	keyID      string
	onDemand   int  // ON_DEMAND entries of ListKeyRotations (completed rotations)
	inProgress bool // GetKeyRotationStatus.OnDemandRotationStartDate is set
}

// started counts on-demand rotations including one in progress: KMS lists
// a rotation in ListKeyRotations only once it completes.
func (s keyState) started() int {
	if s.inProgress {
		return s.onDemand + 1
	}
	return s.onDemand
}

// snapshot lists every key of every region with ListKeys and counts its
// on-demand rotations with ListKeyRotations (all pages), keyed by key ARN.
func snapshot(t *testing.T, ctx context.Context, k *harness.KMSLocal) map[string]keyState {
	t.Helper()
	out := map[string]keyState{}
	for _, region := range regions {
		client := k.KMS(region)
		keys := kms.NewListKeysPaginator(client, &kms.ListKeysInput{})
		for keys.HasMorePages() {
			page, err := keys.NextPage(ctx)
			if err != nil {
				t.Fatalf("ListKeys %s: %v", region, err)
			}
			for _, key := range page.Keys {
				s := keyState{keyID: aws.ToString(key.KeyId)}
				var err error
				if s.onDemand, err = onDemandRotations(ctx, client, s.keyID); err != nil && !noRotations(err) {
					t.Fatalf("ListKeyRotations %s: %v", aws.ToString(key.KeyArn), err)
				}
				status, err := client.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: key.KeyId})
				if err != nil && !noRotations(err) {
					t.Fatalf("GetKeyRotationStatus %s: %v", aws.ToString(key.KeyArn), err)
				}
				s.inProgress = err == nil && status.OnDemandRotationStartDate != nil
				out[aws.ToString(key.KeyArn)] = s
			}
		}
	}
	return out
}

// noRotations reports whether err is how KMS answers a rotation call for a
// key that has no rotations to show: rotation unsupported (asymmetric, HMAC,
// AWS managed, custom key store) or the key's state (pending deletion).
func noRotations(err error) bool {
	var unsupported *types.UnsupportedOperationException
	var state *types.KMSInvalidStateException
	return errors.As(err, &unsupported) || errors.As(err, &state)
}

func onDemandRotations(ctx context.Context, client *kms.Client, keyID string) (int, error) {
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

// checkStateAgrees asserts that the emulator's state agrees with the report:
// a key reported rotated has exactly one new on-demand rotation (completed
// or in progress), every other key none, and a reported budget equals the
// emulator's count. Keys are matched by key ID: a multi-Region primary and
// its replicas share it, and rotating the primary rotates the replicas
// (https://docs.aws.amazon.com/kms/latest/developerguide/rotate-keys-on-demand.html).
func checkStateAgrees(t *testing.T, r *harness.Report, before, after map[string]keyState) {
	t.Helper()
	rotated := map[string]bool{}
	for _, k := range r.Keys {
		if k.Outcome == "rotated" {
			rotated[k.KeyID] = true
		}
		a, ok := after[k.KeyARN]
		if !ok {
			if k.Reason != "not-found" {
				t.Errorf("%s (%s): reported key ARN not in the emulator", k.KeyARN, k.Outcome)
			}
			continue
		}
		if k.OnDemandUsed != nil && *k.OnDemandUsed != a.started() {
			t.Errorf("%s: report says onDemandUsed %d, emulator has %d ON_DEMAND rotations (in progress: %v)", k.KeyARN, *k.OnDemandUsed, a.started(), a.inProgress)
		}
	}
	for arn, a := range after {
		got := a.started() - before[arn].started()
		want := 0
		if rotated[a.keyID] {
			want = 1
		}
		if got != want {
			t.Errorf("%s: %d new on-demand rotation(s) in the emulator, want %d (reported rotated: %v)", arn, got, want, rotated[a.keyID])
		}
	}
}

// outcomeOfReason is DESIGN.md "Decisions: outcomes and reasons".
var outcomeOfReason = map[string]string{
	"not-opted-in": "skipped", "aws-managed": "skipped", "unsupported-key-spec": "skipped",
	"imported-key-material": "skipped", "custom-key-store": "skipped", "multi-region-replica": "skipped",
	"key-not-enabled": "skipped", "rotation-in-progress": "skipped", "budget-exhausted": "skipped",
	"budget-reserved": "skipped", "not-due": "skipped",
	"not-found": "failed", "access-denied": "failed", "throttled": "failed", "error": "failed",
	"deadline": "deferred",
}

// checkSchema checks a raw report against DESIGN.md "The report" without the
// engine's types: required members and their JSON types, the outcome and
// reason vocabulary, and a summary that counts the entries.
func checkSchema(t *testing.T, raw []byte) {
	t.Helper()
	var r map[string]any
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("report is not a JSON object: %v\n%s", err, raw)
	}
	str := func(m map[string]any, k, where string) string {
		s, ok := m[k].(string)
		if !ok {
			t.Errorf("%s.%s = %#v, want a string", where, k, m[k])
		}
		return s
	}
	timeOrNull := func(m map[string]any, k, where string) {
		v, present := m[k]
		if !present {
			t.Errorf("%s.%s missing (want RFC 3339 or null)", where, k)
			return
		}
		if v == nil {
			return
		}
		if s, ok := v.(string); !ok {
			t.Errorf("%s.%s = %#v, want RFC 3339 or null", where, k, v)
		} else if _, err := time.Parse(time.RFC3339, s); err != nil {
			t.Errorf("%s.%s = %q: %v", where, k, s, err)
		}
	}
	if str(r, "runId", "report") == "" {
		t.Error("report.runId is empty")
	}
	mode := str(r, "mode", "report")
	if !slices.Contains([]string{"scheduled", "plan", "incident", "report"}, mode) {
		t.Errorf("report.mode = %q", mode)
	}
	if _, ok := r["dryRun"].(bool); !ok {
		t.Errorf("report.dryRun = %#v, want a bool", r["dryRun"])
	}
	for _, k := range []string{"startedAt", "finishedAt"} {
		if _, err := time.Parse(time.RFC3339, str(r, k, "report")); err != nil {
			t.Errorf("report.%s: %v", k, err)
		}
	}
	summary, ok := r["summary"].(map[string]any)
	if !ok {
		t.Fatalf("report.summary = %#v, want an object", r["summary"])
	}
	counts := map[string]float64{}
	for _, k := range []string{"candidates", "rotated", "wouldRotate", "skipped", "failed", "deferred"} {
		n, ok := summary[k].(float64)
		if !ok {
			t.Errorf("summary.%s = %#v, want a number", k, summary[k])
		}
		counts[k] = n
	}
	reasons, ok := summary["reasons"].(map[string]any)
	if !ok {
		t.Errorf("summary.reasons = %#v, want an object", summary["reasons"])
	}
	keys, ok := r["keys"].([]any)
	if !ok {
		t.Fatalf("report.keys = %#v, want an array", r["keys"])
	}
	if float64(len(keys)) != counts["candidates"] {
		t.Errorf("%d entries in keys, summary.candidates %v", len(keys), counts["candidates"])
	}
	byOutcome := map[string]float64{}
	byReason := map[string]float64{}
	seen := map[string]bool{}
	for i, e := range keys {
		k, ok := e.(map[string]any)
		where := fmt.Sprintf("keys[%d]", i)
		if !ok {
			t.Errorf("%s is not an object", where)
			continue
		}
		arn := str(k, "keyArn", where)
		if seen[arn] {
			t.Errorf("%s: %s listed twice", where, arn)
		}
		seen[arn] = true
		str(k, "keyId", where)
		if a := str(k, "alias", where); a != "" && !strings.HasPrefix(a, "alias/") {
			t.Errorf("%s.alias = %q", where, a)
		}
		outcome, reason := str(k, "outcome", where), str(k, "reason", where)
		byOutcome[outcome]++
		if reason != "" {
			byReason[reason]++
		}
		switch outcome {
		case "rotated", "would-rotate":
			if reason != "" {
				t.Errorf("%s: %s with reason %q", where, outcome, reason)
			}
		default:
			if want, known := outcomeOfReason[reason]; !known || want != outcome {
				t.Errorf("%s: outcome %q with reason %q (DESIGN.md pairs it with %q)", where, outcome, reason, want)
			}
		}
		for _, f := range []string{"onDemandUsed", "onDemandRemaining"} {
			v, present := k[f]
			if _, isNum := v.(float64); !present || (v != nil && !isNum) {
				t.Errorf("%s.%s = %#v, want a number or null", where, f, v)
			}
		}
		timeOrNull(k, "lastRotation", where)
		timeOrNull(k, "nextDue", where)
		if _, has := k["error"]; has != (outcome == "failed") {
			t.Errorf("%s: error member present %v for outcome %s", where, has, outcome)
		}
		if _, has := k["primaryKeyArn"]; has != (reason == "multi-region-replica") {
			t.Errorf("%s: primaryKeyArn present %v for reason %q", where, has, reason)
		}
	}
	for outcome, field := range map[string]string{"rotated": "rotated", "would-rotate": "wouldRotate", "skipped": "skipped", "failed": "failed", "deferred": "deferred"} {
		if byOutcome[outcome] != counts[field] {
			t.Errorf("summary.%s = %v, entries with outcome %s: %v", field, counts[field], outcome, byOutcome[outcome])
		}
	}
	for reason, n := range reasons {
		if n != byReason[reason] {
			t.Errorf("summary.reasons[%s] = %v, entries: %v", reason, n, byReason[reason])
		}
	}
	for reason, n := range byReason {
		if _, ok := reasons[reason]; !ok {
			t.Errorf("summary.reasons lacks %s (%v entries)", reason, n)
		}
	}
}

// checkLogs asserts that the invocation's output is JSON lines, that the
// log lines carry the request ID, and that the EMF records follow the
// specification and agree with the report.
func checkLogs(t *testing.T, inv *harness.Invocation, r *harness.Report) {
	t.Helper()
	if len(inv.Logs) == 0 {
		t.Fatal("no log lines between the RIE's START and END lines")
	}
	for _, l := range inv.Logs {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("log line is not a JSON object: %v: %.200s", err, l)
			continue
		}
		if _, isEMF := m["_aws"]; !isEMF && m["requestId"] != inv.RequestID {
			t.Errorf("log line without requestId %s: %.200s", inv.RequestID, l)
		}
	}
	recs, err := inv.EMF()
	if err != nil {
		t.Fatalf("EMF: %v", err)
	}
	if len(recs) == 0 {
		t.Fatal("no EMF line on the function's stdout")
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
			if d.Namespace != "KMSRotator" {
				t.Errorf("EMF namespace %q, want the default KMSRotator", d.Namespace)
			}
			for _, set := range d.Dimensions {
				if slices.Contains(set, "KeyId") || slices.Contains(set, "KeyArn") {
					t.Errorf("EMF dimension set %v has a per-key dimension", set)
				}
				if !slices.Equal(set, []string{"Mode"}) {
					continue
				}
				if rec.Dimension("Mode") != mode {
					t.Errorf("EMF Mode %q, report mode %q", rec.Dimension("Mode"), mode)
				}
				for _, m := range d.Metrics {
					if w, ok := want[m.Name]; ok {
						found[m.Name] = true
						if v, _ := rec.Value(m.Name); v != w {
							t.Errorf("EMF %s = %v, report says %v", m.Name, v, w)
						}
					}
				}
			}
		}
	}
	for name := range want {
		if !found[name] {
			t.Errorf("EMF metric %s with dimensions [Mode] missing", name)
		}
	}
}
