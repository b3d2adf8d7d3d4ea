package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	lambdasvc "github.com/aws/aws-sdk-go-v2/service/lambda"
	tagging "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"

	"github.com/kms-rotator/kms-rotator/lambda/ledger"
	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/rotator"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/harness"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu/emutest"
	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

const region = "us-east-1"

var scope = request.Scope{Partition: "aws", Account: emutest.Account, Region: region}

// schedule is one fault schedule: how the emulator misbehaves and how many
// sweeps of the fleet run against it. Add a row to faultSchedules to add a
// scenario.
type schedule struct {
	name string
	// emu: faults, quotas, rotation delay, KMS's own limit, seed.
	emu kmsemu.Options
	// due is the number of plainly due keys in the fleet (default 12).
	due int
	// env overrides the function's ROTATOR_* settings.
	env map[string]string
	// sweeps run concurrently, each its own Engine (its own pacing), as
	// separate Lambda execution environments would (default 1).
	sweeps int
	// incident: the first run is an incident selecting every opted-in key
	// by tag (no interval; the reserve may be spent), the others sweeps.
	incident bool
	// noWait: the incident does not wait for its rotations to complete
	// ("wait": false). Rows whose emulator clock completes rotations only
	// after every run returned need it: the wait would last
	// ROTATOR_INCIDENT_WAIT.
	noWait bool
	// plan: the first run is a plan (a dry run of the sweep): it must
	// never rotate, whatever the faults.
	plan bool
	// interloper: the sweep (ROTATOR_CONCURRENCY 1) is held at its first
	// rotation by a gate; meanwhile the test rotates every due key itself,
	// as another run would, and lets those rotations complete; then the
	// sweep goes on with the rotation history it read before them.
	interloper bool
	// deadline is each run's remaining Lambda time (0: none).
	deadline time.Duration
	// kmsClockBehind sets the emulator's clock this far behind the
	// function's (KMS's and Lambda's clocks are never exactly equal).
	kmsClockBehind time.Duration
	// hangingLambda: the Lambda API the engine continues a deferred sweep
	// with never answers (a function in a VPC without a Lambda endpoint).
	hangingLambda bool
	// exact: no faults, so every class must get exactly its outcome.
	exact bool
	// wantDeferred: the deadline must cut the sweep short.
	wantDeferred bool
	// ambiguous: faults can make a rotation's outcome ambiguous (5xx, lost
	// responses), so two overlapping runs may both claim one rotation
	// (see checkRuns); never two rotations.
	ambiguous bool
	// localLimit, when set, is the function's ROTATOR_ON_DEMAND_LIMIT,
	// below KMS's (the emulator's) limit.
	localLimit int
}

// shortRun is the environment of the 3-second runs: a rotation goes out
// only while one call's timeout and the confirm window still fit before the
// run's call deadline, which the defaults (10 s and 5 s) never leave it.
var shortRun = map[string]string{settings.EnvRotateRPS: "8", settings.EnvCallTimeout: "1s", settings.EnvConfirmWait: "500ms"}

// overlapDelay is the emulator's rotation delay in the overlap scenarios.
// In-process rows complete rotations by moving the emulator's clock, and
// the observer counts rotations in progress, so a long delay costs no time.
//
// The window that remains. Right before RotateKeyOnDemand the engine reads
// GetKeyRotationStatus, then ListKeyRotations: a rotation by another run
// that is in progress at the first read shows there, one that completed
// before the second read shows in the history, and one still in progress
// when our call arrives makes KMS answer ConflictException. What no read
// can see is another run's rotation that starts after our status read AND
// completes before our RotateKeyOnDemand reaches KMS: KMS has no
// idempotency token or conditional rotate, so two runs whose re-checks
// interleave that way both rotate. It needs a whole rotation to fit inside
// one run's status→rotate span (two round trips). Real KMS rotations are
// asynchronous and take far longer than two round trips, but the emulator
// completes them after -rotation-delay, and on this 2-core machine under
// -race with a load average of 13–16 that span was measured above 300 ms
// (a 300 ms delay double rotated a key in about one run in three) and once
// exceeded 2 s (one double rotation in about five runs of three engines).
// So the overlap rows use a delay no stall reaches, and a delay of 0 —
// where the window is real — is not an overlap row: with -rotation-delay 0
// two sweeps that reach the same key at the same moment can both rotate it.
const overlapDelay = 30 * time.Second

// faultSchedules is the table of in-process scenarios. Rotation delays are
// short so the suite stays fast; faults are seeded, so a failure replays
// with the same dice (the interleaving of concurrent calls still varies,
// which is the point: the invariants must hold for every interleaving).
var faultSchedules = []schedule{
	{name: "no faults: each due key rotated once, every other key skipped for its reason",
		emu: kmsemu.Options{RotationDelay: 200 * time.Millisecond, Seed: 1}, exact: true},
	{name: "no faults, rotations complete at once (rotation-delay 0): the same answers",
		emu: kmsemu.Options{Seed: 1}, exact: true},
	{name: "throttling storm (quota-scale 0.5, 50 rotations/s asked of 2.5/s): throttled calls are retried or reported throttled, never rotated twice",
		emu: kmsemu.Options{QuotaScale: 0.5, RotationDelay: 100 * time.Millisecond, Seed: 2}, due: 4,
		env: map[string]string{settings.EnvRotateRPS: "50", settings.EnvConcurrency: "16"}},
	{name: "5xx before any change (fail-rate 0.15): reads retried; a failed rotation is looked at, never sent again (rotated or unconfirmed)",
		emu: kmsemu.Options{FailRate: 0.15, RotationDelay: 100 * time.Millisecond, Seed: 3}, ambiguous: true},
	{name: "lost responses after the rotation applied (drop-rate 0.5, rotation-delay 0): reported rotated (or unconfirmed), never sent again",
		emu: kmsemu.Options{DropRate: 0.5, Seed: 4}, ambiguous: true},
	{name: "lost responses while the rotation is in progress (drop-rate 0.5, rotation-delay 300ms): reported rotated",
		emu: kmsemu.Options{DropRate: 0.5, RotationDelay: 300 * time.Millisecond, Seed: 5}, ambiguous: true},
	{name: "lost responses with KMS's clock 2s behind the function's: a lost rotation is still reported rotated",
		emu: kmsemu.Options{DropRate: 1, RotationDelay: 300 * time.Millisecond, Seed: 18}, kmsClockBehind: 2 * time.Second, due: 4},
	{name: "latency 25ms on every call: the same answers, only slower",
		emu: kmsemu.Options{Latency: 25 * time.Millisecond, RotationDelay: 100 * time.Millisecond, Seed: 6}, exact: true},
	{name: "every fault at once: 5xx, lost responses, throttling and latency",
		emu: kmsemu.Options{FailRate: 0.1, DropRate: 0.3, QuotaScale: 1, Latency: 10 * time.Millisecond, RotationDelay: 100 * time.Millisecond, Seed: 7},
		due: 4, ambiguous: true},
	{name: "KMS's lifetime limit lower than ROTATOR_ON_DEMAND_LIMIT: LimitExceededException is budget-exhausted",
		emu: kmsemu.Options{OnDemandLimit: limit - reserve - 1, Seed: 8}},
	// The function's count says exhausted (ROTATOR_ON_DEMAND_LIMIT 10, the
	// seed's figure); KMS's limit is 25. Incidents let KMS judge: every
	// key KMS accepts is rotated, only KMS's LimitExceededException is
	// budget-exhausted.
	{name: "incident with a local limit below KMS's: the local count never refuses, KMS judges",
		emu: kmsemu.Options{RotationDelay: 100 * time.Millisecond, Seed: 19}, incident: true, localLimit: 10, exact: true},
	{name: "deadline mid-sweep: keys not started in time are deferred and the report returns",
		emu: kmsemu.Options{RotationDelay: 100 * time.Millisecond, Seed: 9}, due: 30,
		env: shortRun, deadline: 3 * time.Second, wantDeferred: true},
	{name: "deadline mid-sweep with lost responses: an in-flight rotation is looked at, never left unknown",
		emu: kmsemu.Options{DropRate: 0.5, Latency: 20 * time.Millisecond, Seed: 10}, due: 30,
		env: shortRun, deadline: 3 * time.Second, wantDeferred: true, ambiguous: true},
	{name: "deadline mid-sweep while the Lambda API hangs: the continuation gives up in time and the report returns",
		emu: kmsemu.Options{RotationDelay: 100 * time.Millisecond, Seed: 16}, due: 30,
		env: shortRun, deadline: 3 * time.Second, wantDeferred: true, hangingLambda: true},
	{name: "two sweeps at once: each due key rotated by exactly one of them",
		emu: kmsemu.Options{RotationDelay: overlapDelay, Seed: 11}, sweeps: 2},
	{name: "three sweeps at once with 5xx and lost responses: never a second rotation",
		emu: kmsemu.Options{RotationDelay: overlapDelay, FailRate: 0.05, DropRate: 0.2, Seed: 12}, sweeps: 3, ambiguous: true},
	{name: "incident by tag under 5xx and lost responses: may spend the reserve, never past the limit",
		emu: kmsemu.Options{FailRate: 0.1, DropRate: 0.3, RotationDelay: 100 * time.Millisecond, Seed: 14}, incident: true, ambiguous: true},
	{name: "plan under every fault at once: decides, never rotates",
		emu: kmsemu.Options{FailRate: 0.1, DropRate: 0.5, QuotaScale: 1, Latency: 10 * time.Millisecond, Seed: 17}, plan: true},
	{name: "an incident by tag while two sweeps run: one rotation per key, the sweeps never touch the reserve",
		emu: kmsemu.Options{RotationDelay: overlapDelay, Seed: 15}, incident: true, noWait: true, sweeps: 3},
	// Without the history re-read right before rotating, the sweep rotates
	// again every key whose history it had read before the other rotation
	// completed (its queue holds about a second of due keys). No timing:
	// a gate holds the sweep while the other rotations start and complete.
	{name: "another run rotates keys the sweep already found due: the sweep sees them rotated, never rotates again",
		emu: kmsemu.Options{RotationDelay: overlapDelay, Seed: 13}, interloper: true,
		env: map[string]string{settings.EnvConcurrency: "1"}},
}

func TestFaultSchedules(t *testing.T) {
	for _, sc := range faultSchedules {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel() // each row has its own emulator; most of a row is waiting
			runSchedule(t, sc)
		})
	}
}

func runSchedule(t *testing.T, sc schedule) {
	t.Helper()
	due := sc.due
	if due == 0 {
		due = 12
	}
	cs := classes(due)
	opts := sc.emu
	opts.Log = io.Discard // the per-request log would drown the report of a failure
	// The emulator's clock runs with real time plus skip, so the test can
	// complete the rotations in progress without sleeping them out.
	var skip atomic.Int64
	skip.Store(-int64(sc.kmsClockBehind))
	opts.Now = func() time.Time { return time.Now().Add(time.Duration(skip.Load())) }
	emu := emutest.Start(t, opts, fleetJSON(t, cs))
	obs := oracle.Observer(emu.Config(region))
	before := snapshot(t, obs)
	if got := len(candidates(before)); got < 20 || got > 60 {
		t.Fatalf("fleet has %d candidates; keep fleets at 20–60 keys", got)
	}
	fnEnv := withLedger(t, scheduledEnv(sc.env))
	if sc.localLimit > 0 {
		fnEnv[settings.EnvOnDemandLimit] = fmt.Sprint(sc.localLimit)
	}
	cfg, err := settings.LoadConfig(mapEnv(fnEnv))
	if err != nil {
		t.Fatal(err)
	}
	// The engines reach the emulator through a counter of their
	// RotateKeyOnDemand requests (and the interloper's gate).
	counter, endpoint := newRotateCounter(t, emu.URL)
	var g *gate
	if sc.interloper {
		g, endpoint = newGate(t, endpoint, 0)
	}
	n := max(sc.sweeps, 1)
	runs := make([]run, n)
	errs := make([]error, n)
	late := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx := context.Background()
			if sc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, sc.deadline)
				defer cancel()
			}
			req, name := request.Request{Mode: request.ModeScheduled}, "sweep-"+string(rune('A'+i))
			if sc.plan && i == 0 {
				req, name = request.Request{Mode: request.ModePlan, DryRun: true}, "plan"
			}
			if sc.incident && i == 0 {
				req = request.Request{Mode: request.ModeIncident, Tag: &request.Tag{Key: "kms-rotator", Value: "enabled"},
					Reason: "INC-7 fault suite", NoWait: sc.noWait}
				name = "incident"
			}
			runs[i], errs[i] = runEngine(ctx, endpoint, cfg, req, name, sc.hangingLambda)
			// Invariant 4: the report comes back before the deadline.
			late[i] = ctx.Err() != nil
		})
	}
	var others map[string]string
	if sc.interloper {
		<-g.held // the sweep's first rotation is applied; it waits for the answer
		others = interlope(t, obs, cs, before)
		skip.Add(int64(opts.RotationDelay)) // the other rotations complete
		g.open()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("sweep %d: %v", i, err)
		}
		if late[i] {
			t.Errorf("invariant 4: sweep %d returned after its deadline", i)
		}
	}
	skip.Add(int64(opts.RotationDelay)) // complete every rotation in progress
	after := snapshot(t, obs)
	checkRuns(t, before, after, runs, others, !sc.ambiguous)
	if others == nil { // the interloper's rotations have no claims
		checkLedger(t, tableClaims(t, fnEnv[settings.EnvLedgerTable]), before, after, runs)
	}
	counter.check(t, len(runs))
	for i, r := range runs {
		checkClasses(t, sc, r, cs, before)
		checkMaterial(t, r, sc.incident && i == 0 && !sc.noWait)
	}
	for _, r := range runs {
		if c := r.report.Continuation; sc.hangingLambda && (c == nil || c.Started || !strings.HasPrefix(c.NotStarted, "invoke-failed")) {
			t.Errorf("%s: continuation %+v, want one not started because the Invoke failed", r.name, c)
		}
	}
	if sc.interloper {
		// The keys the interloper rotated were due when the sweep read
		// them: only the re-read history can tell the sweep otherwise.
		seenInHistory := 0
		for _, k := range runs[0].report.Keys {
			if _, ok := others[k.KeyARN]; ok && (k.Reason == rotator.ReasonNotDue || k.Reason == rotator.ReasonBudgetReserved) {
				seenInHistory++
			}
		}
		if len(others) == 0 || seenInHistory != len(others) {
			t.Errorf("the interloper rotated %d keys, the sweep found %d of them rotated in their history", len(others), seenInHistory)
		}
	}
	if t.Failed() {
		for _, r := range runs {
			t.Logf("%s outcomes:\n%s", r.name, outcomes(r.report, before))
		}
		t.Logf("emulator stats: %+v", emu.Server.Stats().Operations)
	}
}

// rotateCounter is a reverse proxy that counts, per key, the
// RotateKeyOnDemand requests KMS answered with anything but throttling.
type rotateCounter struct {
	target string
	mu     sync.Mutex
	perKey map[string]int
}

func newRotateCounter(t *testing.T, target string) (*rotateCounter, string) {
	t.Helper()
	c := &rotateCounter{target: target, perKey: map[string]int{}}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return c, srv.URL
}

func (c *rotateCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	status, header, out, err := harness.Forward(r, c.target, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".RotateKeyOnDemand") {
		var in struct{ KeyId string }
		var answer struct {
			Type string `json:"__type"`
		}
		_ = json.Unmarshal(body, &in)
		_ = json.Unmarshal(out, &answer)
		if !strings.HasSuffix(answer.Type, "ThrottlingException") {
			// By key ID, whether the caller named the key by ID or ARN.
			c.mu.Lock()
			c.perKey[in.KeyId[strings.LastIndex(in.KeyId, "/")+1:]]++
			c.mu.Unlock()
		}
	}
	harness.WriteAnswer(w, status, header, out)
}

// check asserts that no key got more RotateKeyOnDemand requests than one
// per run: the request has no idempotency token, so after an ambiguous
// failure (5xx, timeout, lost response) it is never sent again (docs/design.md
// "Safety rules"). Only throttled requests, refused before any change, may
// be retried.
func (c *rotateCounter) check(t *testing.T, runs int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, n := range c.perKey {
		if n > runs {
			t.Errorf("invariant 6: key %s got %d RotateKeyOnDemand requests from %d run(s): a rotation was sent again", key, n, runs)
		}
	}
}

// interlope rotates the due keys directly (KMS refuses the one the sweep is
// rotating with ConflictException) and returns the keys it rotated.
func interlope(t *testing.T, c *kms.Client, cs []class, st oracle.Snapshot) map[string]string {
	t.Helper()
	var due []string
	for arn, k := range st {
		if cl, ok := classOf(cs, k.Alias); ok && cl.outcome == rotator.Rotated {
			due = append(due, arn)
		}
	}
	out := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, arn := range due {
		wg.Go(func() {
			_, err := c.RotateKeyOnDemand(context.Background(), &kms.RotateKeyOnDemandInput{KeyId: aws.String(arn)})
			var conflict *kmstypes.ConflictException
			switch {
			case errors.As(err, &conflict): // the sweep got there first
			case err != nil:
				t.Errorf("interloper: rotate %s: %v", st[arn].Alias, err)
			default:
				mu.Lock()
				out[arn] = "interloper"
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}

// checkClasses asserts each class's outcome: exactly the fault-free one in
// exact schedules; otherwise the fault-free one, a failure, a deferral (with
// a deadline), or — for due keys in overlapping sweeps — the other sweep's
// rotation seen as in progress or as not due any more.
func checkClasses(t *testing.T, sc schedule, r run, cs []class, st oracle.Snapshot) {
	t.Helper()
	deferred := 0
	for _, k := range r.report.Keys {
		c, ok := classOf(cs, st[k.KeyARN].Alias)
		if !ok || !c.optedIn {
			t.Errorf("%s: reported key %s (%s) is not a candidate", r.name, k.KeyARN, st[k.KeyARN].Alias)
			continue
		}
		want, wantReason := c.outcome, c.reason
		switch r.report.Mode {
		case request.ModeIncident:
			want, wantReason = c.incOutcome, c.incReason
		case request.ModePlan:
			if want == rotator.Rotated {
				want, wantReason = rotator.WouldRotate, ""
			}
		}
		if k.Outcome == want && k.Reason == wantReason {
			continue
		}
		if k.Outcome == rotator.Deferred {
			deferred++
		}
		// Another run's rotation seen: in progress, or completed (so not
		// due, or for the last rotation a sweep may spend, now reserved;
		// for an incident, inside the cooldown).
		overlapSeen := want == rotator.Rotated && (sc.sweeps > 1 || sc.interloper) && k.Outcome == rotator.Skipped &&
			(k.Reason == rotator.ReasonRotationInProgress || k.Reason == rotator.ReasonNotDue || k.Reason == rotator.ReasonBudgetReserved ||
				k.Reason == rotator.ReasonRecentlyRotated)
		// KMS's own limit below ours: the last scheduled rotation meets
		// LimitExceededException.
		kmsLimit := sc.emu.OnDemandLimit > 0 && c.name == "due-last-scheduled" && k.Reason == rotator.ReasonBudgetExhausted
		faulty := !sc.exact && (k.Outcome == rotator.Failed || (sc.deadline > 0 && k.Outcome == rotator.Deferred))
		if !overlapSeen && !kmsLimit && !faulty {
			t.Errorf("%s: %s (%s) is %s/%s, want %s/%s (error %q)", r.name, st[k.KeyARN].Alias, c.name,
				k.Outcome, k.Reason, want, wantReason, k.Error)
		}
	}
	if sc.wantDeferred && deferred == 0 {
		t.Errorf("%s: the deadline (%v) deferred no key: the scenario does not test a deadline", r.name, sc.deadline)
	}
}

// runEngine runs one request through a fresh Engine wired like the Lambda
// function (lambda/main.go): real SDK clients, adaptive retry for reads,
// against the emulator at endpoint.
func runEngine(ctx context.Context, endpoint string, cfg settings.Config, req request.Request, name string, hangingLambda bool) (run, error) {
	awsCfg := aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		BaseEndpoint: aws.String(endpoint),
		Retryer:      rotator.ReadRetryer, // what lambda/main.go installs for reads
	}
	var logs, metrics emutest.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	eng := rotator.New(cfg, kms.NewFromConfig(awsCfg), tagging.NewFromConfig(awsCfg), log, &metrics)
	// The ledger withLedger named, in the process's dynalite.
	root, err := harness.FindRoot("")
	if err != nil {
		return run{}, err
	}
	ledgerSrv, err := harness.SharedLedger(ctx, root)
	if err != nil {
		return run{}, err
	}
	eng.SetLedger(ledger.New(ledgerSrv.Client(ctx), cfg.LedgerTable, cfg.LedgerRetention))
	inv := rotator.Invocation{RequestID: name, Scope: scope}
	if hangingLambda {
		eng.SetLambda(hangingInvoke{})
		inv.FunctionARN = "arn:aws:lambda:" + region + ":" + scope.Account + ":function:kms-rotator"
	}
	rep, err := eng.Run(ctx, req, inv)
	if err != nil {
		return run{}, err
	}
	emf, err := oracle.ParseEMFLines(strings.Split(metrics.String(), "\n"))
	if err != nil {
		return run{}, err
	}
	return newRun(name, rep, nil, emf, strings.Split(logs.String(), "\n"))
}

// tableClaims reads the claims of a ledger table in the process's dynalite
// (withLedger's).
func tableClaims(t *testing.T, table string) oracle.Claims {
	t.Helper()
	root, err := harness.FindRoot("")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := harness.SharedLedger(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := oracle.ReadClaims(t.Context(), srv.Client(t.Context()), table)
	if err != nil {
		t.Fatal(err)
	}
	return claims
}

// hangingInvoke is a Lambda API that answers only when its context ends.
type hangingInvoke struct{}

func (hangingInvoke) Invoke(ctx context.Context, _ *lambdasvc.InvokeInput, _ ...func(*lambdasvc.Options)) (*lambdasvc.InvokeOutput, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}
