package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kms-rotator/kms-rotator/lambda/harness"
)

// regions are the regions the test fleets place keys in.
var regions = []string{"us-east-1", "eu-west-1"}

// snapshot reads every key's on-demand rotations from the emulator through
// the real KMS client.
func snapshot(t *testing.T, k *harness.KMSLocal) map[string]harness.KeyRotations {
	t.Helper()
	s, err := k.Rotations(t.Context(), regions...)
	if err != nil {
		t.Fatalf("read the emulator's rotations: %v", err)
	}
	return s
}

// report reports problems found by a harness check as test errors.
func report(t *testing.T, what string, problems []string) {
	t.Helper()
	for _, p := range problems {
		t.Errorf("%s: %s", what, p)
	}
}

// checkLogs asserts that the invocation's output is JSON lines, that the
// log lines carry the request ID (DESIGN.md "Metrics and logs"), and that
// the EMF records follow the specification and agree with the report.
func checkLogs(t *testing.T, inv *harness.Invocation, r *harness.Report) {
	t.Helper()
	if len(inv.Logs) == 0 {
		t.Fatal("no log lines between the RIE's START and END lines")
	}
	for _, l := range inv.Logs {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			// The AWS SDK's own default logger writes plain-text
			// warnings to stderr ("SDK 2026/11/26 … WARN failed to
			// discard remaining HTTP response body …") when a call's
			// connection is closed under it; they come and go with
			// timing, so they are noted rather than failed here.
			if strings.HasPrefix(l, "SDK ") {
				t.Logf("plain-text AWS SDK log line: %.200s", l)
				continue
			}
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
	report(t, "metrics", harness.CheckMetrics(recs, r, "KMSRotator"))
}
