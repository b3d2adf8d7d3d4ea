package harness

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

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

	mu       sync.Mutex
	template FunctionOptions
}

// Start builds (or reuses) the binaries, starts kmslocal, then the
// functions. On error everything started so far is stopped.
func Start(ctx context.Context, opts Options) (*Env, error) {
	bins := opts.Binaries
	if bins == nil {
		b, err := Shared(ctx)
		if err != nil {
			return nil, err
		}
		bins = b
	}
	k, err := StartKMSLocal(ctx, bins, opts.KMSLocal)
	if err != nil {
		return nil, err
	}
	e := &Env{Bins: bins, KMS: k, template: opts.Function}
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

// AddFunction starts one more function against the same emulator. Empty
// fields of o take the values of Options.Function; o.Env is merged over
// Options.Function.Env.
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
	env := map[string]string{}
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

// Close stops every function, then the emulator.
func (e *Env) Close() error {
	e.mu.Lock()
	fns := e.Functions
	e.mu.Unlock()
	var wg sync.WaitGroup
	for _, f := range fns {
		wg.Go(func() { _ = f.Close() })
	}
	wg.Wait()
	return e.KMS.Close()
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
	s := fmt.Sprintf("kmslocal %s", e.KMS.URL)
	for _, f := range e.Functions {
		s += fmt.Sprintf(", %s http://%s", f.Name, f.Addr)
	}
	return s
}
