package harness

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/dynalite"
)

// LedgerTable is the name of the rotation ledger's table the first Env
// of a process creates; later ones add -2, -3, … (see Options.LedgerTable).
const LedgerTable = "kms-rotator-ledger"

var sharedLedger struct {
	once sync.Once
	srv  *dynalite.Server
	err  error
}

// SharedLedger starts, on its first call, the dynalite that every Env of
// this process keeps its ledger in (each Env in a table of its own), and
// returns it to every caller. Starting Node costs ~0.15 s of CPU; a test
// package starts dozens of Envs. It runs until the process ends: dynalite
// ends with the process that started it (package dynalite), so nothing
// needs to stop it. root is the module root whose node_modules holds
// dynalite.
func SharedLedger(ctx context.Context, root string) (*dynalite.Server, error) {
	sharedLedger.once.Do(func() {
		// Not the caller's ctx: the server outlives the test that
		// happened to start it.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		sharedLedger.srv, sharedLedger.err = dynalite.Start(sctx, dynalite.Options{Root: root})
	})
	return sharedLedger.srv, sharedLedger.err
}

// Options configure Start.
type Options struct {
	// Binaries to run; nil = Shared (built once per process).
	Binaries *Binaries
	// KMSLocal configures the emulator.
	KMSLocal KMSLocalOptions
	// Function is the template for the functions; Endpoint and Region
	// default to the emulator's.
	Function FunctionOptions
	// Functions is how many functions to start (each its own RIE and
	// bootstrap, like separate Lambda execution environments); 0 = 1.
	Functions int
	// Ledger is the dynalite to keep the rotation ledger in; nil:
	// SharedLedger. Start creates a table there; Close leaves the server
	// running.
	Ledger *dynalite.Server
	// LedgerTable names the ledger's table; empty: LedgerTable, or
	// LedgerTable-2, -3, … when other Envs took the names before.
	LedgerTable string
}

// Env is a running local stack: kmslocal and one or more functions.
type Env struct {
	// Bins are the binaries in use.
	Bins *Binaries
	// KMS is the emulator.
	KMS *KMSLocal
	// Function is Functions[0].
	Function *Function
	// Functions are all functions, in start order (AddFunction appends).
	Functions []*Function
	// Ledger is the dynalite holding the rotation ledger; every function
	// gets it as AWS_ENDPOINT_URL_DYNAMODB. Ledger.Client reads it.
	Ledger *dynalite.Server
	// LedgerTable is the ledger's table in Ledger; every function gets it
	// as ROTATOR_LEDGER_TABLE.
	LedgerTable string

	mu       sync.Mutex
	template FunctionOptions
}

// Start builds (or reuses) the binaries, starts kmslocal (and, for the
// process's first Env, dynalite: SharedLedger) side by side, creates the
// ledger's table, then starts the functions. On error everything started
// so far is stopped.
func Start(ctx context.Context, opts Options) (*Env, error) {
	bins := opts.Binaries
	if bins == nil {
		b, err := Shared(ctx)
		if err != nil {
			return nil, err
		}
		bins = b
	}
	e := &Env{Bins: bins, template: opts.Function, Ledger: opts.Ledger}
	// The ledger's table is made while kmslocal starts.
	var kmsErr, ledgerErr error
	var started sync.WaitGroup
	started.Go(func() { e.KMS, kmsErr = StartKMSLocal(ctx, bins, opts.KMSLocal) })
	started.Go(func() {
		if e.Ledger == nil {
			if e.Ledger, ledgerErr = SharedLedger(ctx, bins.Root); ledgerErr != nil {
				return
			}
		}
		e.LedgerTable, ledgerErr = createLedgerTable(ctx, e.Ledger, opts.LedgerTable)
	})
	started.Wait()
	if err := errors.Join(kmsErr, ledgerErr); err != nil {
		e.Close()
		return nil, err
	}
	n := cmp.Or(opts.Functions, 1)
	fns := make([]*Function, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { fns[i], errs[i] = StartFunction(ctx, bins, e.functionOptions(FunctionOptions{})) })
	}
	wg.Wait()
	for _, f := range fns {
		if f != nil {
			e.Functions = append(e.Functions, f)
		}
	}
	if err := errors.Join(errs...); err != nil {
		e.Close()
		return nil, err
	}
	e.Function = e.Functions[0]
	return e, nil
}

// AddFunction starts one more function against the same emulator and
// ledger. Empty fields of o take the values of Options.Function; o.Env is
// merged over Options.Function.Env, which is merged over LedgerEnv.
func (e *Env) AddFunction(ctx context.Context, o FunctionOptions) (*Function, error) {
	f, err := StartFunction(ctx, e.Bins, e.functionOptions(o))
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.Functions = append(e.Functions, f)
	e.mu.Unlock()
	return f, nil
}

func (e *Env) functionOptions(o FunctionOptions) FunctionOptions {
	t := e.template
	// The ledger first, so a test can still point a function elsewhere
	// (an unreachable DynamoDB, a missing table) through Env.
	env := e.LedgerEnv()
	for k, v := range t.Env {
		env[k] = v
	}
	for k, v := range o.Env {
		env[k] = v
	}
	return FunctionOptions{
		Endpoint:     cmp.Or(o.Endpoint, t.Endpoint, e.KMS.URL),
		Region:       cmp.Or(o.Region, t.Region, e.KMS.Region),
		Name:         cmp.Or(o.Name, t.Name),
		Timeout:      cmp.Or(o.Timeout, t.Timeout),
		Env:          env,
		Log:          cmp.Or(o.Log, t.Log),
		StartTimeout: cmp.Or(o.StartTimeout, t.StartTimeout),
	}
}

// InvokeFree sends payload to a function that is not serving an
// invocation — the first such in start order — and waits for one to free
// up when all are busy; Invocation.Function tells which served it. Lambda
// runs concurrent invocations in separate execution environments, while
// the Runtime Interface Emulator serves one at a time (a second concurrent
// one panics it), so overlapping invocations (a CLI re-send while the
// first still runs, an incident during a sweep) go through here, with as
// many functions as may overlap (Options.Functions, AddFunction).
// Functions that have exited (Kill, a crash) are passed over. Errors are
// as for Function.Call.
func (e *Env) InvokeFree(ctx context.Context, payload []byte) (*Invocation, error) {
	for {
		// Taken before looking, so an invocation that ends meanwhile
		// still wakes the wait below.
		ended := callEndedSignal()
		e.mu.Lock()
		fns := slices.Clone(e.Functions)
		e.mu.Unlock()
		running := 0
		for _, f := range fns {
			if f.Proc.Exited() {
				continue
			}
			running++
			if f.mu.TryLock() {
				inv, err := f.call(ctx, newRequestID(), payload)
				f.release()
				return inv, err
			}
		}
		if running == 0 {
			return nil, errors.New("harness: InvokeFree: no function is running")
		}
		select {
		case <-ended:
		case <-ctx.Done():
			return nil, fmt.Errorf("harness: InvokeFree: waiting for a free function: %w", ctx.Err())
		}
	}
}

// LedgerEnv is what a function needs to reach the Env's ledger:
// ROTATOR_LEDGER_TABLE and AWS_ENDPOINT_URL_DYNAMODB (the SDK's
// service-specific endpoint variable, which wins over the emulator's
// AWS_ENDPOINT_URL). Every function the Env starts has it.
func (e *Env) LedgerEnv() map[string]string {
	return map[string]string{
		settings.EnvLedgerTable:     e.LedgerTable,
		"AWS_ENDPOINT_URL_DYNAMODB": e.Ledger.URL,
	}
}

// createLedgerTable creates the Env's table: name, or else the first of
// LedgerTable, LedgerTable-2, … that no other Env took.
func createLedgerTable(ctx context.Context, s *dynalite.Server, name string) (string, error) {
	if name != "" {
		return name, s.CreateLedgerTable(ctx, name)
	}
	for i := 1; ; i++ {
		name = LedgerTable
		if i > 1 {
			name = fmt.Sprintf("%s-%d", LedgerTable, i)
		}
		err := s.CreateLedgerTable(ctx, name)
		var inUse *types.ResourceInUseException
		if !errors.As(err, &inUse) {
			return name, err
		}
	}
}

// Close stops every function, then the emulator. The ledger's dynalite
// keeps running for the process's other Envs, with this Env's table.
func (e *Env) Close() error {
	e.mu.Lock()
	fns := e.Functions
	e.mu.Unlock()
	var wg sync.WaitGroup
	for _, f := range fns {
		wg.Go(func() { _ = f.Close() })
	}
	wg.Wait()
	if e.KMS != nil {
		return e.KMS.Close()
	}
	return nil
}

// Path resolves a path relative to the module root ("events/plan.json").
func (e *Env) Path(rel string) string {
	if filepath.IsAbs(rel) {
		return rel
	}
	return filepath.Join(e.Bins.Root, rel)
}

// ReadFile reads a file relative to the module root.
func (e *Env) ReadFile(rel string) ([]byte, error) {
	return os.ReadFile(e.Path(rel))
}

// StartTB is Start for tests: it fails tb on error and stops everything in
// tb.Cleanup; when the test failed, the cleanup logs the tails of the
// processes' output first.
func StartTB(tb testing.TB, opts Options) *Env {
	tb.Helper()
	e, err := Start(tb.Context(), opts)
	if err != nil {
		tb.Fatalf("harness: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("kmslocal stderr (tail):\n%s", e.KMS.Proc.Stderr.tail(4000))
			tb.Logf("dynalite output (tail):\n%s", e.Ledger.Output())
			for _, f := range e.Functions {
				tb.Logf("%s stdout (tail):\n%s\nstderr (tail):\n%s", f.Proc.Name, f.Proc.Stdout.tail(4000), f.Proc.Stderr.tail(2000))
			}
		}
		_ = e.Close()
	})
	return e
}

// String describes the endpoints, for logs.
func (e *Env) String() string {
	s := fmt.Sprintf("kmslocal %s, ledger %s in dynalite %s", e.KMS.URL, e.LedgerTable, e.Ledger.URL)
	for _, f := range e.Functions {
		s += fmt.Sprintf(", %s http://%s", f.Name, f.Addr)
	}
	return s
}
