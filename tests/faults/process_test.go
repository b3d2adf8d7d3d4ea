package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kms-rotator/kms-rotator/lambda/rotator"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/harness"
	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

// These scenarios run the built bootstrap under the Lambda Runtime Interface
// Emulator, one process per function, against ONE kmslocal process: what
// duplicate EventBridge deliveries, an incident during a sweep, and a Lambda
// retry after a crash look like. The emulator's rotation delay is
// overlapDelay (see its comment for why not 0).

// processEnv starts kmslocal with the fleet and n functions.
func processEnv(t *testing.T, cs []class, n int, kmsArgs ...string) *harness.Env {
	t.Helper()
	args := append([]string{"-rotation-delay", overlapDelay.String(), "-quiet"}, kmsArgs...)
	return harness.StartTB(t, harness.Options{
		KMSLocal:  harness.KMSLocalOptions{FleetJSON: fleetJSON(t, cs), Args: args},
		Function:  harness.FunctionOptions{Env: scheduledEnv(nil), Timeout: 60 * time.Second},
		Functions: n,
	})
}

// envClaims reads the claims of the environment's ledger.
func envClaims(t *testing.T, env *harness.Env) oracle.Claims {
	t.Helper()
	claims, err := oracle.ReadClaims(t.Context(), env.Ledger.Client(t.Context()), env.LedgerTable)
	if err != nil {
		t.Fatalf("read the ledger: %v", err)
	}
	return claims
}

// invoke calls f with payload and returns the run (report, EMF, key lines).
func invoke(ctx context.Context, f *harness.Function, payload []byte) (run, error) {
	return invokeAs(ctx, f, harness.NewRequestID(), payload)
}

// invokeAs is invoke with a given Lambda request ID (a retry's).
func invokeAs(ctx context.Context, f *harness.Function, requestID string, payload []byte) (run, error) {
	_, inv, err := f.InvokeReportAs(ctx, requestID, payload)
	if err != nil {
		return run{}, err
	}
	emf, err := inv.EMF()
	if err != nil {
		return run{}, err
	}
	return newRun(f.Name+" "+f.Addr, nil, inv.Raw, emf, inv.Logs)
}

func TestConcurrentSweepProcesses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sweeps  int
		kmsArgs []string
		// ambiguous: see schedule.ambiguous.
		ambiguous bool
	}{
		{name: "two duplicate deliveries at once: each due key rotated by exactly one process", sweeps: 2},
		{name: "three at once with 5xx and lost responses: never a second rotation", sweeps: 3,
			kmsArgs: []string{"-fail-rate", "0.05", "-drop-rate", "0.2", "-seed", "21"}, ambiguous: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := classes(12)
			env := processEnv(t, cs, 1, tc.kmsArgs...)
			obs := oracle.Observer(env.KMS.Config(region))
			before, claimsBefore := snapshot(t, obs), envClaims(t, env)
			payload, err := env.ReadFile("events/scheduled.json")
			if err != nil {
				t.Fatal(err)
			}
			// The sweeps reach kmslocal through a counter of their
			// RotateKeyOnDemand requests.
			counter, url := newRotateCounter(t, env.KMS.URL)
			fns := make([]*harness.Function, tc.sweeps)
			for i := range fns {
				if fns[i], err = env.AddFunction(t.Context(), harness.FunctionOptions{Name: fmt.Sprintf("sweep-%d", i), Endpoint: url}); err != nil {
					t.Fatal(err)
				}
			}
			runs := make([]run, tc.sweeps)
			errs := make([]error, tc.sweeps)
			var wg sync.WaitGroup
			for i, f := range fns {
				wg.Go(func() { runs[i], errs[i] = invoke(t.Context(), f, payload) })
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("sweep %d: %v", i, err)
				}
			}
			after := snapshot(t, obs)
			checkRuns(t, before, after, runs, nil, !tc.ambiguous)
			checkLedger(t, envClaims(t, env).Since(claimsBefore), before, after, runs)
			counter.check(t, tc.sweeps)
			sc := schedule{sweeps: tc.sweeps, exact: !tc.ambiguous}
			for _, r := range runs {
				checkClasses(t, sc, r, cs, before)
			}
			rotated := 0
			for _, r := range runs {
				rotated += r.report.Summary.Rotated
			}
			if rotated == 0 {
				t.Error("no process rotated anything: the scenario tests nothing")
			}
		})
	}
}

// gate is a reverse proxy between one function and kmslocal. It forwards
// everything until `pass` RotateKeyOnDemand calls went through; the next
// one is forwarded too (KMS applies it) but its response is held until
// release is closed: a run stopped half-way at a known point, with one
// rotation applied and not yet reported.
type gate struct {
	target string
	pass   int64
	seen   atomic.Int64
	held   chan struct{} // closed when a response is held
	// heldStatus is the HTTP status of the first held response.
	heldStatus int
	release    chan struct{}
	once       sync.Once
}

func newGate(t *testing.T, target string, pass int64) (*gate, string) {
	t.Helper()
	g := &gate{target: target, pass: pass, held: make(chan struct{}), release: make(chan struct{})}
	srv := httptest.NewServer(g)
	t.Cleanup(func() {
		g.open()
		srv.Close()
	})
	return g, srv.URL
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	hold := false
	if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".RotateKeyOnDemand") {
		hold = g.seen.Add(1) > g.pass
	}
	status, header, out, err := harness.Forward(r, g.target, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if hold {
		select {
		case <-g.held:
		default:
			g.heldStatus = status
			close(g.held)
		}
		select {
		case <-g.release:
		case <-r.Context().Done():
			return
		}
	}
	harness.WriteAnswer(w, status, header, out)
}

// TestIncidentDuringSweep: an incident invocation must not wait for a
// sweep. The sweep's function is stopped half-way by a gate (one rotation
// applied, its response held); the incident, in its own execution
// environment, must return its report while the sweep provably has not
// (ordering, not a time limit). Then the sweep goes on and must not rotate
// the keys the incident rotated.
func TestIncidentDuringSweep(t *testing.T) {
	cs := classes(12)
	env := processEnv(t, cs, 1)
	obs := oracle.Observer(env.KMS.Config(region))
	before, claimsBefore := snapshot(t, obs), envClaims(t, env)
	g, gateURL := newGate(t, env.KMS.URL, 2)
	// One rotation pipeline: held at its third rotation, the sweep is
	// blocked as a whole, and it has not reached the incident's key.
	sweepFn, err := env.AddFunction(t.Context(), harness.FunctionOptions{Name: "sweep", Endpoint: gateURL,
		Env: map[string]string{settings.EnvConcurrency: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	incidentFn := env.Function

	// The incident names the last due key by ARN order (the sweep reaches
	// it last) and a key that is not due.
	var due, fresh []string
	for arn, k := range before {
		if c, _ := classOf(cs, k.Alias); c.name == "due" {
			due = append(due, arn)
		} else if c.name == "fresh" {
			fresh = append(fresh, arn)
		}
	}
	slices.Sort(due)
	slices.Sort(fresh)
	target, freshARN := due[len(due)-1], fresh[0]
	// By key ARN and by alias, with a reason that tries to break a log line;
	// without the wait for completion, which would take the emulator's 30 s.
	incident, _ := json.Marshal(map[string]any{"mode": "incident", "keys": []string{target, before[freshARN].Alias},
		"reason": "INC-42 \"quoted\" reason\nwith a newline", "wait": false})

	scheduled, err := env.ReadFile("events/scheduled.json")
	if err != nil {
		t.Fatal(err)
	}
	var sweep run
	var sweepErr error
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		sweep, sweepErr = invoke(context.Background(), sweepFn, scheduled)
	}()
	select {
	case <-g.held:
	case <-sweepDone:
		t.Fatalf("the sweep ended before its third rotation: %v", sweepErr)
	}

	inc, err := invoke(t.Context(), incidentFn, incident)
	if err != nil {
		t.Fatal(err)
	}
	inc.want = []string{target, freshARN}
	slices.Sort(inc.want)
	select {
	case <-sweepDone:
		t.Fatal("the sweep finished before the incident although its rotation response was still held: the incident waited for it")
	default:
	}
	if got := sweepFn.Proc.Stdout.String(); strings.Contains(got, `"msg":"run summary"`) {
		t.Fatal("the sweep logged its summary before the incident returned")
	}
	g.open()
	<-sweepDone
	if sweepErr != nil {
		t.Fatal(sweepErr)
	}

	after := snapshot(t, obs)
	checkRuns(t, before, after, []run{inc, sweep}, nil, true)
	checkLedger(t, envClaims(t, env).Since(claimsBefore), before, after, []run{inc, sweep})
	checkClasses(t, schedule{sweeps: 2, exact: true}, sweep, cs, before)
	byARN := map[string]rotator.KeyReport{}
	for _, k := range inc.report.Keys {
		byARN[k.KeyARN] = k
	}
	if k := byARN[target]; k.Outcome != rotator.Rotated {
		t.Errorf("incident: the due key is %s/%s, want rotated", k.Outcome, k.Reason)
	}
	for _, k := range sweep.report.Keys {
		if k.KeyARN == target && k.Outcome == rotator.Rotated {
			t.Errorf("the sweep rotated %s again after the incident did", before[target].Alias)
		}
	}
	// The reason is logged as data: escaped in a JSON string, never a new line.
	for _, l := range incidentFn.Proc.Stdout.Lines() {
		if strings.HasPrefix(l, "with a newline") {
			t.Errorf("the incident reason broke a log line: %q", l)
		}
	}
	if !strings.Contains(incidentFn.Proc.Stdout.String(), `"incidentReason":"INC-42 \"quoted\" reason\nwith a newline"`) {
		t.Error("the incident reason is not logged as an escaped JSON string")
	}
}

// TestSweepRetriedAfterACrash: the function dies half-way through a sweep —
// two rotations reported in its log, a third applied by KMS but its
// response never seen — and Lambda (or the next schedule) runs the sweep
// again in a fresh process. The retry must rotate exactly the due keys the
// crashed run did not, and none twice.
func TestSweepRetriedAfterACrash(t *testing.T) {
	// Without the auto-soon key: its ConflictException would make the
	// crash point (which rotation is applied) depend on key ID order.
	cs := slices.DeleteFunc(classes(12), func(c class) bool { return c.name == "auto-soon" })
	env := processEnv(t, cs, 1)
	obs := oracle.Observer(env.KMS.Config(region))
	before, claimsBefore := snapshot(t, obs), envClaims(t, env)
	g, gateURL := newGate(t, env.KMS.URL, 2)
	// One rotation pipeline, so the crash point is exact: two rotations
	// answered, the third applied and unanswered, nothing else in flight.
	crashing, err := env.AddFunction(t.Context(), harness.FunctionOptions{Name: "crashing", Endpoint: gateURL,
		Env: map[string]string{settings.EnvConcurrency: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	scheduled, err := env.ReadFile("events/scheduled.json")
	if err != nil {
		t.Fatal(err)
	}
	// Lambda retries a failed asynchronous invocation with its request ID
	// (the retry takes over the crashed run's sweep lease).
	id := harness.NewRequestID()
	done := make(chan error, 1)
	go func() {
		_, err := crashing.CallAs(context.Background(), id, scheduled)
		done <- err
	}()
	select {
	case <-g.held:
	case err := <-done:
		t.Fatalf("the sweep ended before its third rotation: %v", err)
	}
	if g.heldStatus != http.StatusOK {
		t.Fatalf("the held RotateKeyOnDemand answered %d, want 200 (applied)", g.heldStatus)
	}
	crashing.Kill()
	if err := <-done; err == nil {
		t.Fatal("the killed invocation returned a report")
	}
	mid := snapshot(t, obs)
	crashed := map[string]string{}
	for arn, k := range mid {
		if k.Started() > before[arn].Started() {
			crashed[arn] = "crashed run"
		}
	}
	if len(crashed) != 3 {
		t.Fatalf("the crashed run left %d rotations, want 3 (two answered, one applied and unanswered)", len(crashed))
	}

	retry, err := invokeAs(t.Context(), env.Function, id, scheduled)
	if err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, obs)
	checkRuns(t, before, after, []run{retry}, crashed, true)
	// The crashed run claimed its rotations before it died.
	checkLedger(t, envClaims(t, env).Since(claimsBefore), before, after, []run{retry})
	checkClasses(t, schedule{sweeps: 2, exact: true}, retry, cs, before)
	for arn := range crashed {
		for _, k := range retry.report.Keys {
			if k.KeyARN == arn && k.Outcome == rotator.Rotated {
				t.Errorf("the retry rotated %s again", before[arn].Alias)
			}
		}
	}
	// Every due key ends rotated exactly once, by one run or the other.
	for arn, k := range before {
		if c, _ := classOf(cs, k.Alias); c.outcome == rotator.Rotated {
			if got := after[arn].Started() - k.Started(); got != 1 {
				t.Errorf("%s has %d new rotations after the crash and the retry, want 1", k.Alias, got)
			}
		}
	}
}

// TestDeadlineUnderTheRuntimeEmulator: the Lambda deadline that the Runtime
// Interface Emulator sets (AWS_LAMBDA_FUNCTION_TIMEOUT) arrives mid-sweep;
// the function must answer with its report and deferred keys, not time out.
func TestDeadlineUnderTheRuntimeEmulator(t *testing.T) {
	cs := classes(30)
	env := processEnv(t, cs, 1)
	obs := oracle.Observer(env.KMS.Config(region))
	before, claimsBefore := snapshot(t, obs), envClaims(t, env)
	f, err := env.AddFunction(t.Context(), harness.FunctionOptions{Name: "short", Timeout: 3 * time.Second,
		Env: map[string]string{settings.EnvRotateRPS: "4"}})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := env.ReadFile("events/scheduled.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := invoke(t.Context(), f, payload)
	if err != nil {
		t.Fatalf("invariant 4: the run did not return its report: %v", err)
	}
	after := snapshot(t, obs)
	checkRuns(t, before, after, []run{r}, nil, true)
	checkLedger(t, envClaims(t, env).Since(claimsBefore), before, after, []run{r})
	checkClasses(t, schedule{deadline: 3 * time.Second, wantDeferred: true}, r, cs, before)
}
