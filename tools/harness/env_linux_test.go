package harness

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// TestEveryFunctionProcessGetsTheLedger reads the environment of each
// bootstrap the Env started — by Start and by AddFunction — from /proc.
func TestEveryFunctionProcessGetsTheLedger(t *testing.T) {
	e := StartTB(t, Options{KMSLocal: KMSLocalOptions{Args: []string{"-quiet"}}, Functions: 2})
	if _, err := e.AddFunction(t.Context(), FunctionOptions{Name: "added"}); err != nil {
		t.Fatal(err)
	}
	payload, err := e.ReadFile("events/plan.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range e.Functions {
		// The cold start fails without ROTATOR_LEDGER_TABLE, and the
		// bootstrap exists only once invoked.
		if _, _, err := f.InvokeReport(t.Context(), payload); err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		pids := f.Pids()
		if len(pids) != 2 {
			t.Fatalf("%s: pids %v, want the RIE and its bootstrap", f.Name, pids)
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pids[1]) + "/environ")
		if err != nil {
			t.Fatal(err)
		}
		env := strings.Split(string(b), "\x00")
		for _, kv := range []string{settings.EnvLedgerTable + "=" + e.LedgerTable, "AWS_ENDPOINT_URL_DYNAMODB=" + e.Ledger.URL} {
			found := false
			for _, have := range env {
				found = found || have == kv
			}
			if !found {
				t.Errorf("%s: bootstrap environment lacks %s", f.Name, kv)
			}
		}
	}
}
