package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kms-rotator/kms-rotator/tools/harness"
	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

// regions are the regions the test fleets place keys in.
var regions = []string{"us-east-1", "eu-west-1"}

// snapshot reads every key's on-demand rotations from the emulator through
// the real KMS client.
func snapshot(t *testing.T, k *harness.KMSLocal) oracle.Snapshot {
	t.Helper()
	var clients []*kms.Client
	for _, region := range regions {
		clients = append(clients, k.KMS(region))
	}
	s, err := oracle.Read(t.Context(), clients...)
	if err != nil {
		t.Fatalf("read the emulator's rotations: %v", err)
	}
	return s
}

// claims reads the claim records of the environment's ledger.
func claims(t *testing.T, env *harness.Env) oracle.Claims {
	t.Helper()
	c, err := oracle.ReadClaims(t.Context(), env.Ledger.Client(t.Context()), env.LedgerTable)
	if err != nil {
		t.Fatalf("read the ledger: %v", err)
	}
	return c
}

// report reports problems found by an oracle check as test errors.
func report(t *testing.T, what string, problems []string) {
	t.Helper()
	for _, p := range problems {
		t.Errorf("%s: %s", what, p)
	}
}

// checkLogs asserts that the invocation's output is JSON lines, that the
// log lines carry the request ID (docs/design.md "Metrics and logs"), and that
// the EMF records follow the specification and agree with the report.
func checkLogs(t *testing.T, inv *harness.Invocation, r *oracle.Report) {
	t.Helper()
	report(t, "log lines", oracle.CheckLogLines(inv.Logs, inv.RequestID))
	checkMetrics(t, inv, r)
}

// checkMetrics asserts that the invocation's EMF records follow the
// specification and agree with the report (docs/design.md "Metrics and
// logs").
func checkMetrics(t *testing.T, inv *harness.Invocation, r *oracle.Report) {
	t.Helper()
	recs, err := inv.EMF()
	if err != nil {
		t.Fatalf("EMF: %v", err)
	}
	report(t, "metrics", oracle.CheckMetrics(recs, r))
}

// rawEntries decodes a raw report's entries as JSON objects, by alias, key
// ID and key ARN (the first entry wins a name), so tests can read members
// the way a caller of the function would.
func rawEntries(t *testing.T, raw []byte) map[string]map[string]any {
	t.Helper()
	var r struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("report: %v", err)
	}
	out := map[string]map[string]any{}
	for _, k := range r.Keys {
		for _, f := range []string{"alias", "keyId", "keyArn"} {
			if name, _ := k[f].(string); name != "" && out[name] == nil {
				out[name] = k
			}
		}
	}
	return out
}

// checkNextRotationWithin asserts that the entry's nextRotationDate (the
// key's next automatic rotation) lies in (now+lo, now+hi].
func checkNextRotationWithin(t *testing.T, name string, e map[string]any, lo, hi time.Duration) {
	t.Helper()
	s, _ := e["nextRotationDate"].(string)
	next, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Errorf("%s: nextRotationDate %#v: %v", name, e["nextRotationDate"], err)
		return
	}
	if in := time.Until(next); in <= lo || in > hi {
		t.Errorf("%s: nextRotationDate %s is %v away, want between %v and %v", name, s, in.Round(time.Minute), lo, hi)
	}
}

// checkUnconfirmedError asserts that an unconfirmed entry's error tells the
// responder that the rotation may have been applied and how to check.
func checkUnconfirmedError(t *testing.T, name string, e map[string]any) {
	t.Helper()
	msg, _ := e["error"].(string)
	if !strings.Contains(msg, "may have") {
		t.Errorf("%s: unconfirmed error %q does not say the rotation may have been applied", name, msg)
	}
	howToCheck := false
	for _, w := range []string{"ListKeyRotations", "list-key-rotations", "GetKeyRotationStatus", "get-key-rotation-status", "CurrentKeyMaterialId"} {
		howToCheck = howToCheck || strings.Contains(msg, w)
	}
	if !howToCheck {
		t.Errorf("%s: unconfirmed error %q does not say how to check (ListKeyRotations, GetKeyRotationStatus or CurrentKeyMaterialId)", name, msg)
	}
}
