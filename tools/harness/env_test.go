package harness

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/dynalite"
	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

// tables lists the tables of a dynalite.
func tables(t *testing.T, s *dynalite.Server) []string {
	t.Helper()
	out, err := s.Client(t.Context()).ListTables(t.Context(), &dynamodb.ListTablesInput{})
	if err != nil {
		t.Fatalf("ListTables: %v", err)
	}
	return out.TableNames
}

func TestEnvsKeepTheirLedgersInTablesOfTheirOwn(t *testing.T) {
	opts := Options{KMSLocal: KMSLocalOptions{Args: []string{"-quiet"}}}
	a, b := StartTB(t, opts), StartTB(t, opts)
	shared, err := SharedLedger(t.Context(), a.Bins.Root)
	if err != nil {
		t.Fatal(err)
	}
	if a.Ledger != shared || b.Ledger != shared {
		t.Fatalf("ledgers %s and %s, want the process's shared one %s", a.Ledger.URL, b.Ledger.URL, shared.URL)
	}
	if a.LedgerTable == b.LedgerTable || !strings.HasPrefix(a.LedgerTable, LedgerTable) || !strings.HasPrefix(b.LedgerTable, LedgerTable) {
		t.Fatalf("tables %q and %q, want two named after %q", a.LedgerTable, b.LedgerTable, LedgerTable)
	}
	if got := tables(t, shared); !slices.Contains(got, a.LedgerTable) || !slices.Contains(got, b.LedgerTable) {
		t.Fatalf("tables %v, want %s and %s", got, a.LedgerTable, b.LedgerTable)
	}
	want := map[string]string{settings.EnvLedgerTable: a.LedgerTable, "AWS_ENDPOINT_URL_DYNAMODB": shared.URL}
	for _, o := range []FunctionOptions{{}, {Name: "another"}} {
		env := a.functionOptions(o).Env
		for k, v := range want {
			if env[k] != v {
				t.Errorf("function %q: %s=%q, want %q", o.Name, k, env[k], v)
			}
		}
	}
	// A test may still point a function at another table or endpoint.
	over := a.functionOptions(FunctionOptions{Env: map[string]string{settings.EnvLedgerTable: "missing-table"}}).Env
	if over[settings.EnvLedgerTable] != "missing-table" || over["AWS_ENDPOINT_URL_DYNAMODB"] != shared.URL {
		t.Errorf("with %s overridden: %v", settings.EnvLedgerTable, over)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got := tables(t, shared); !slices.Contains(got, b.LedgerTable) {
		t.Fatalf("after one Env closed: tables %v", got)
	}

	t.Run("an Env given a dynalite uses it, the first table named LedgerTable", func(t *testing.T) {
		given := dynalite.StartTB(t)
		e := StartTB(t, Options{KMSLocal: KMSLocalOptions{Args: []string{"-quiet"}}, Ledger: given})
		if e.Ledger != given || e.LedgerTable != LedgerTable {
			t.Fatalf("ledger %s table %q, want %s table %q", e.Ledger.URL, e.LedgerTable, given.URL, LedgerTable)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-given.Done():
			t.Fatal("closing the Env stopped the dynalite it was given")
		default:
		}
	})
}

// TestInvokeFreeRunsConcurrentInvocationsOnSeparateFunctions sends three
// slow invocations at once to two functions: each RIE serves one at a
// time (a second concurrent one panics it), so two run side by side and
// the third waits for whichever frees up first.
func TestInvokeFreeRunsConcurrentInvocationsOnSeparateFunctions(t *testing.T) {
	e := StartTB(t, Options{
		// Every emulator answer takes 150 ms, so a plan of the demo
		// fleet takes about a second.
		KMSLocal:  KMSLocalOptions{Fleet: "events/fleet.json", Args: []string{"-latency=150ms", "-quiet"}},
		Functions: 2,
	})
	payload, err := e.ReadFile("events/plan.json")
	if err != nil {
		t.Fatal(err)
	}
	type run struct {
		inv        *Invocation
		err        error
		start, end time.Time
	}
	runs := make([]run, 3)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Go(func() {
			runs[i].start = time.Now()
			runs[i].inv, runs[i].err = e.InvokeFree(t.Context(), payload)
			runs[i].end = time.Now()
		})
	}
	wg.Wait()
	served := map[string]int{} // by RIE address
	for i, r := range runs {
		if r.err != nil {
			t.Fatalf("invocation %d: %v", i, r.err)
		}
		if _, err := oracle.Decode(r.inv.Raw); err != nil {
			t.Fatalf("invocation %d: %v", i, err)
		}
		served[r.inv.Function.Addr]++
	}
	if len(served) != 2 || served[e.Functions[0].Addr]+served[e.Functions[1].Addr] != 3 {
		t.Fatalf("served %v: want both functions, one of them twice", served)
	}
	// Two ran at once: sent to one function they would have queued.
	overlapping := 0
	for i := range runs {
		for j := i + 1; j < len(runs); j++ {
			if runs[i].inv.Function != runs[j].inv.Function &&
				runs[i].end.Sub(runs[j].start) > 0 && runs[j].end.Sub(runs[i].start) > 0 {
				overlapping++
			}
		}
	}
	if overlapping == 0 {
		t.Fatalf("no two invocations overlapped (durations %v, %v, %v)", runs[0].inv.Duration, runs[1].inv.Duration, runs[2].inv.Duration)
	}
	if d := runs[0].inv.Duration; d < 500*time.Millisecond {
		t.Errorf("an invocation took %v: too fast to show that invocations overlap", d)
	}

	t.Run("with every function gone it fails instead of waiting", func(t *testing.T) {
		for _, f := range e.Functions {
			f.Kill()
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if _, err := e.InvokeFree(ctx, payload); err == nil || ctx.Err() != nil {
			t.Fatalf("InvokeFree with no function running: %v (context %v), want an error at once", err, ctx.Err())
		}
	})
}
