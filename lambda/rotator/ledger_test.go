package rotator

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kms-rotator/kms-rotator/lambda/ledger"
	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/dynalite"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

// One dynalite (an in-memory DynamoDB by a third party) serves every
// test of the package; each harness gets a table of its own.
var shared struct {
	once   sync.Once
	srv    *dynalite.Server
	err    error
	tables atomic.Int64
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.Close()
	}
	if motoS3.srv != nil {
		motoS3.srv.Close()
	}
	os.Exit(code)
}

// testLedger returns a ledger on a new, empty table.
func testLedger(t testing.TB, cfg settings.Config) *ledger.Ledger {
	t.Helper()
	shared.once.Do(func() { shared.srv, shared.err = dynalite.Start(context.Background(), dynalite.Options{}) })
	if shared.err != nil {
		t.Fatalf("dynalite: %v (run npm ci: it comes from package.json)", shared.err)
	}
	name := fmt.Sprintf("ledger-%d", shared.tables.Add(1))
	ctx := context.Background()
	if err := shared.srv.CreateLedgerTable(ctx, name); err != nil {
		t.Fatalf("create ledger table: %v", err)
	}
	return ledger.New(shared.srv.Client(ctx), name, cfg.LedgerRetention)
}

// rotateCalls is how many RotateKeyOnDemand requests the emulator served.
func rotateCalls(h *harness) int64 {
	return h.emu.Server.Stats().Operations["RotateKeyOnDemand"].Calls
}

func TestEveryRotationIsClaimedFirstAndRecorded(t *testing.T) {
	h := newHarness(t, kmsemu.Options{RotationDelay: 0}, oneDueKey, fastConfig())
	req := incidentFor(t, false, "alias/due")
	req.Reason = "INC-7 laptop stolen"
	rep := h.run(t, req)
	k := rep.Keys[0]
	if k.Outcome != Rotated {
		t.Fatalf("incident: %s/%s %q, want rotated", k.Outcome, k.Reason, k.Error)
	}
	claims, err := h.ledger.Claims(context.Background(), k.KeyARN, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(claims) != 1 {
		t.Fatalf("claims = %+v, want one", claims)
	}
	c := claims[0]
	if c.RunID != rep.RunID || c.Mode != "incident" || c.Reason != "INC-7 laptop stolen" || c.Outcome != ledger.Rotated ||
		c.LambdaRequestID != "req-1" || c.Request != req.Identity() || c.MaterialBefore != k.KeyMaterialIDBefore || c.MaterialBefore == "" {
		t.Errorf("claim record = %+v; want run %s, incident, the reason, rotated, req-1, identity %s, material before %s",
			c, rep.RunID, req.Identity(), k.KeyMaterialIDBefore)
	}
	head, err := h.ledger.Head(context.Background(), k.KeyARN)
	if err != nil || head == nil || head.RunID != rep.RunID || head.Outcome != ledger.Rotated {
		t.Fatalf("head = %+v, %v; want this run's rotated claim", head, err)
	}
	// A sweep's claim guard is the key's interval: the incident's claim
	// refuses it even where KMS would not show the rotation (below).
	if n := rotateCalls(h); n != 1 {
		t.Errorf("RotateKeyOnDemand calls = %d, want 1", n)
	}
}

func TestForcedIncidentRepeatSpendsOneRotationAndAnswersRepeatOf(t *testing.T) {
	for _, listAfter := range []bool{false, true} {
		t.Run(fmt.Sprintf("list after material %v", listAfter), func(t *testing.T) {
			opts := kmsemu.Options{RotationDelay: 50 * time.Millisecond, MaterialDelay: 300 * time.Millisecond, ListAfterMaterial: listAfter}
			h := newHarness(t, opts, oneDueKey, fastConfig())
			req := incidentFor(t, true, "alias/due")
			first := h.run(t, req)
			if first.Keys[0].Outcome != Rotated || first.RepeatOf != "" {
				t.Fatalf("first: %+v", first.Keys[0])
			}
			for i := range 2 {
				rep := h.run(t, req)
				if rep.RepeatOf != first.RunID || rep.RunID == first.RunID {
					t.Fatalf("repeat %d: repeatOf %q runId %q, want repeatOf %q and its own run ID", i+1, rep.RepeatOf, rep.RunID, first.RunID)
				}
				if rep.Keys[0].Outcome != Rotated || rep.Summary.Rotated != 1 {
					t.Errorf("repeat %d answers %+v, want the first run's report (rotated)", i+1, rep.Keys[0])
				}
			}
			if n := rotateCalls(h); n != 1 {
				t.Fatalf("RotateKeyOnDemand calls = %d, want 1 for one forced request sent three times", n)
			}
			// A new reason is a new request: force rotates again.
			again := req
			again.Reason = "INC-1 second exposure"
			rep := h.run(t, again)
			if rep.RepeatOf != "" || rep.Keys[0].Outcome != Rotated {
				t.Fatalf("new forced request: %+v repeatOf %q, want rotated", rep.Keys[0], rep.RepeatOf)
			}
			if n := rotateCalls(h); n != 2 {
				t.Fatalf("RotateKeyOnDemand calls = %d, want 2", n)
			}
		})
	}
}

// Every KMS read is blind while the emulator lists a rotation only once its
// material is current and the material takes long: the claim still holds.
func TestRacingRunsMakeOneRotateCallWhenKMSReadsAreBlind(t *testing.T) {
	opts := kmsemu.Options{RotationDelay: 0, MaterialDelay: time.Hour, ListAfterMaterial: true}
	cfg := fastConfig()
	cfg.IncidentWait = 0 // the material takes an hour
	h := newHarness(t, opts, oneDueKey, cfg)
	// Three engines are three Lambda execution environments on one ledger.
	engines := []*Engine{h.engine, h.newEngine(cfg), h.newEngine(cfg)}
	reqs := []request.Request{{Mode: request.ModeScheduled}, incidentFor(t, false, "alias/due"), {Mode: request.ModeScheduled}}
	var wg sync.WaitGroup
	reps := make([]*Report, len(engines))
	for i := range engines {
		wg.Go(func() {
			rep, err := engines[i].Run(context.Background(), reqs[i], Invocation{RequestID: fmt.Sprintf("req-%d", i), Scope: testScope})
			if err != nil {
				t.Errorf("run %d: %v", i, err)
			}
			reps[i] = rep
		})
	}
	wg.Wait()
	if n := rotateCalls(h); n != 1 {
		t.Fatalf("RotateKeyOnDemand calls = %d, want 1 between a sweep, an incident and a second sweep", n)
	}
	// Later runs, with KMS still blind, are refused by the claim too (a
	// new incident request: a repeat of the first would answer its report).
	later := incidentFor(t, false, "alias/due")
	later.Reason = "INC-2 a second responder"
	for _, req := range []request.Request{{Mode: request.ModeScheduled}, later} {
		rep := h.run(t, req)
		for _, k := range rep.Keys {
			if k.Outcome == Rotated {
				t.Errorf("%s run rotated %s again", req.Mode, k.KeyARN)
			}
			if strings.HasSuffix(k.Alias, "due") && (k.Reason != ReasonRecentlyRotated || k.Claim == nil) {
				t.Errorf("%s run: %s/%s claim %+v, want recently-rotated naming the claim", req.Mode, k.Outcome, k.Reason, k.Claim)
			}
		}
	}
	if n := rotateCalls(h); n != 1 {
		t.Fatalf("RotateKeyOnDemand calls = %d after the later runs, want 1", n)
	}
}

func TestLedgerUnavailableRotatesNothingAndSaysWhy(t *testing.T) {
	h := newHarness(t, kmsemu.Options{}, demoFleet(t), fastConfig())
	// A table that does not exist: every write fails.
	h.engine.SetLedger(ledger.New(shared.srv.Client(context.Background()), "no-such-table", time.Hour))
	rep := h.run(t, request.Request{Mode: request.ModeScheduled})
	due := 0
	for _, k := range rep.Keys {
		if k.Outcome == Rotated {
			t.Errorf("%s rotated without a claim", k.KeyARN)
		}
		if k.Reason == ReasonLedgerUnavailable {
			due++
			if k.Outcome != Failed || !strings.Contains(k.Error, "no-such-table") || !strings.Contains(k.Error, "no RotateKeyOnDemand was sent") {
				t.Errorf("entry %s/%s %q, want failed naming the table", k.Outcome, k.Reason, k.Error)
			}
		}
	}
	if due == 0 {
		t.Fatal("no entry says ledger-unavailable; the demo fleet has due keys")
	}
	if n := rotateCalls(h); n != 0 {
		t.Fatalf("RotateKeyOnDemand calls = %d, want none", n)
	}
	// The failure is counted per reason (KeysFailed, Reason=ledger-unavailable).
	if !strings.Contains(h.metrics.String(), `"Reason":"ledger-unavailable"`) {
		t.Error("no KeysFailed metric with Reason ledger-unavailable")
	}
}

func TestUnconfirmedClaimBlocksUntilSettled(t *testing.T) {
	// Every RotateKeyOnDemand answers 500 before any change: ambiguous for
	// the engine, and KMS never shows a rotation.
	opts := kmsemu.Options{RotationDelay: 0}
	cfg := fastConfig()
	cfg.ConfirmWait = 100 * time.Millisecond
	h := newHarness(t, opts, oneDueKey, cfg)
	now := time.Now()
	h.engine.now = func() time.Time { return now }
	hk := &hookKMS{KMSAPI: h.kms}
	hk.rotate = func(context.Context, *kms.RotateKeyOnDemandInput, ...func(*kms.Options)) (*kms.RotateKeyOnDemandOutput, error) {
		return nil, &kmstypes.KMSInternalException{Message: aws.String("injected before any change")}
	}
	h.engine.kms = hk
	rep := h.run(t, incidentFor(t, false, "alias/due"))
	if k := rep.Keys[0]; k.Outcome != Failed || k.Reason != ReasonUnconfirmed {
		t.Fatalf("first: %s/%s, want failed/unconfirmed", k.Outcome, k.Reason)
	}
	h.engine.kms = h.kms
	// A new request inside ROTATOR_SETTLE_AFTER: the unconfirmed claim blocks.
	second := incidentFor(t, false, "alias/due")
	second.Reason = "INC-2"
	now = now.Add(10 * time.Minute)
	rep = h.run(t, second)
	if k := rep.Keys[0]; k.Reason != ReasonRecentlyRotated || k.Claim == nil || k.Claim.Outcome != ledger.Unconfirmed {
		t.Fatalf("inside settle-after: %s/%s claim %+v, want recently-rotated by the unconfirmed claim", k.Outcome, k.Reason, k.Claim)
	}
	// Past it, the history shows no rotation: the claim is released and
	// the key rotates once.
	third := second
	third.Reason = "INC-3"
	now = now.Add(10 * time.Minute)
	rep = h.run(t, third)
	if k := rep.Keys[0]; k.Outcome != Rotated {
		t.Fatalf("past settle-after: %s/%s %q, want rotated", k.Outcome, k.Reason, k.Error)
	}
	claims, err := h.ledger.Claims(context.Background(), rep.Keys[0].KeyARN, 0)
	if err != nil || len(claims) != 2 || claims[0].Outcome != ledger.Released || claims[0].SettledBy != rep.RunID {
		t.Fatalf("claims = %+v, %v; want the first released by the third run, then the third's", claims, err)
	}
}

func TestLateIncidentEventIsRefusedBeforeAnyCall(t *testing.T) {
	h := newHarness(t, kmsemu.Options{}, oneDueKey, fastConfig())
	req := incidentFor(t, false, "alias/due")
	req.Source, req.EventTime = request.SourceCustomEvent, time.Now().Add(-16*time.Minute)
	_, err := h.engine.Run(context.Background(), req, Invocation{RequestID: "req-late", Scope: testScope})
	if err == nil || !strings.Contains(err.Error(), "ROTATOR_INCIDENT_MAX_AGE") {
		t.Fatalf("late event: error %v, want one naming ROTATOR_INCIDENT_MAX_AGE", err)
	}
	if n := h.emu.Server.Stats().Total.Calls; n != 0 {
		t.Fatalf("%d emulator calls, want none", n)
	}
	req.EventTime = time.Now().Add(-time.Minute)
	if rep := h.run(t, req); rep.Keys[0].Outcome != Rotated {
		t.Fatalf("a fresh event: %+v, want rotated", rep.Keys[0])
	}
}

// Two forced incidents of one key seconds apart: each reports the material
// its own rotation made current, not the other's.
func TestCompletionNamesThisRotationsMaterial(t *testing.T) {
	for _, listAfter := range []bool{false, true} {
		t.Run(fmt.Sprintf("list after material %v", listAfter), func(t *testing.T) {
			opts := kmsemu.Options{RotationDelay: 200 * time.Millisecond, MaterialDelay: 1500 * time.Millisecond, ListAfterMaterial: listAfter}
			cfg := fastConfig()
			cfg.IncidentWait = 20 * time.Second
			h := newHarness(t, opts, oneDueKey, cfg)
			second := h.newEngine(cfg)
			a := incidentFor(t, true, "alias/due")
			b := incidentFor(t, true, "alias/due")
			b.Reason = "INC-1 again"
			var repA, repB *Report
			var wg sync.WaitGroup
			wg.Go(func() { repA = h.run(t, a) })
			time.Sleep(700 * time.Millisecond) // A's status cleared, its material not yet current
			wg.Go(func() {
				var err error
				repB, err = second.Run(context.Background(), b, Invocation{RequestID: "req-b", Scope: testScope})
				if err != nil {
					t.Error(err)
				}
			})
			wg.Wait()
			if t.Failed() {
				return
			}
			ka, kb := repA.Keys[0], repB.Keys[0]
			if ka.Outcome != Rotated || kb.Outcome != Rotated {
				t.Fatalf("outcomes %s/%s %q and %s/%s %q, want both rotated", ka.Outcome, ka.Reason, ka.Error, kb.Outcome, kb.Reason, kb.Error)
			}
			out, err := h.kms.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String(ka.KeyARN)})
			if err != nil {
				t.Fatal(err)
			}
			final := aws.ToString(out.KeyMetadata.CurrentKeyMaterialId)
			if kb.Completion != "complete" || kb.KeyMaterialID != final {
				t.Errorf("B: completion %q material %q, want complete with the final material %q", kb.Completion, kb.KeyMaterialID, final)
			}
			if ka.Completion == "complete" && (ka.KeyMaterialID == kb.KeyMaterialID || ka.KeyMaterialID == ka.KeyMaterialIDBefore) {
				t.Errorf("A: complete with %q (before %q, B's %q), want its own material", ka.KeyMaterialID, ka.KeyMaterialIDBefore, kb.KeyMaterialID)
			}
		})
	}
}

// newEngine is another engine (another Lambda execution environment) on
// the harness's emulator and ledger.
func (h *harness) newEngine(cfg settings.Config) *Engine {
	e := New(cfg, h.emu.KMS(testRegion), h.emu.Tagging(testRegion), nil, nil)
	e.SetLedger(h.ledger)
	return e
}

var _ ledger.API = (*dynamodb.Client)(nil)

// A rotation an incident started that never completes is flagged stuck by
// the next sweep, though the key is not due: the ledger keeps it open.
func TestSweepFlagsAStuckIncidentRotationOfAKeyNotDue(t *testing.T) {
	fleet := `[{"alias":"alias/recent","createdDaysAgo":200,"rotations":[{"type":"ON_DEMAND","daysAgo":10}],"tags":{"kms-rotator":"enabled"}}]`
	cfg := fastConfig()
	cfg.IncidentWait = 0
	h := newHarness(t, kmsemu.Options{RotationDelay: 1000 * time.Hour}, fleet, cfg)
	req := incidentFor(t, true, "alias/recent")
	if k := h.run(t, req).Keys[0]; k.Outcome != Rotated {
		t.Fatalf("incident: %s/%s", k.Outcome, k.Reason)
	}
	later := time.Now().Add(25 * time.Hour)
	h.engine.now = func() time.Time { return later }
	rep := h.run(t, request.Request{Mode: request.ModeScheduled})
	k := rep.Keys[0]
	if k.Reason != ReasonNotDue || !k.Stuck {
		t.Fatalf("sweep a day later: %s/%s stuck %v, want not-due and stuck", k.Outcome, k.Reason, k.Stuck)
	}
	if !strings.Contains(h.metrics.String(), `"RotationsStuck":1`) {
		t.Error("RotationsStuck not counted")
	}
	open, err := h.ledger.OpenRotations(context.Background(), testRegion, testAccount)
	if err != nil || !open[k.KeyARN] {
		t.Fatalf("open rotations %v, %v; want the stuck key kept open", open, err)
	}
}

func TestSweepClosesACompletedOpenRotation(t *testing.T) {
	fleet := `[{"alias":"alias/recent","createdDaysAgo":200,"rotations":[{"type":"ON_DEMAND","daysAgo":10}],"tags":{"kms-rotator":"enabled"}}]`
	cfg := fastConfig()
	cfg.IncidentWait = 0 // the incident does not see its completion
	h := newHarness(t, kmsemu.Options{RotationDelay: 0}, fleet, cfg)
	arn := h.run(t, incidentFor(t, true, "alias/recent")).Keys[0].KeyARN
	ctx := context.Background()
	if open, err := h.ledger.OpenRotations(ctx, testRegion, testAccount); err != nil || !open[arn] {
		t.Fatalf("after the incident: open %v, %v; want the key", open, err)
	}
	h.run(t, request.Request{Mode: request.ModeScheduled})
	if open, err := h.ledger.OpenRotations(ctx, testRegion, testAccount); err != nil || len(open) != 0 {
		t.Fatalf("after a sweep saw it complete: open %v, %v; want none", open, err)
	}
	h.emu.Server.ResetStats()
	h.run(t, request.Request{Mode: request.ModeScheduled})
	if n := h.emu.Server.Stats().Op("GetKeyRotationStatus").Calls; n != 0 {
		t.Errorf("a sweep of a closed, not-due key read its status %d times", n)
	}
}

// One firing of the schedule delivered twice runs one sweep of the target:
// the second delivery, while the first runs, does nothing and says whose
// sweep it repeats. Once the first ended, a sweep runs again.
func TestDuplicateScheduledDeliveryRunsOneSweep(t *testing.T) {
	h := newHarness(t, kmsemu.Options{RotationDelay: 0}, oneDueKey, fastConfig())
	dup := h.newEngine(fastConfig())
	// The first sweep is held in its first DescribeKey while the
	// duplicate arrives.
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hk := &hookKMS{KMSAPI: h.kms}
	hk.describe = func(ctx context.Context, in *kms.DescribeKeyInput, optFns ...func(*kms.Options)) (*kms.DescribeKeyOutput, error) {
		once.Do(func() { close(entered) })
		<-release
		return h.kms.DescribeKey(ctx, in, optFns...)
	}
	h.engine.kms = hk
	var first *Report
	var wg sync.WaitGroup
	wg.Go(func() {
		first, _ = h.engine.Run(context.Background(), request.Request{Mode: request.ModeScheduled}, Invocation{RequestID: "a", Scope: testScope})
	})
	<-entered
	rep, err := dup.Run(context.Background(), request.Request{Mode: request.ModeScheduled}, Invocation{RequestID: "b", Scope: testScope})
	close(release)
	wg.Wait()
	if err != nil || rep.RepeatOf == "" || rep.Summary.Candidates != 0 || len(rep.Keys) != 0 {
		t.Fatalf("duplicate delivery: %v, %+v; want a report of no keys, repeatOf the first", err, rep)
	}
	if first == nil || rep.RepeatOf != first.RunID || first.Summary.Rotated != 1 {
		t.Fatalf("duplicate repeatOf %q; first %+v; want the first sweep's run, which rotated the due key", rep.RepeatOf, first)
	}
	if n := rotateCalls(h); n != 1 {
		t.Errorf("RotateKeyOnDemand calls = %d, want 1", n)
	}
	// The first sweep ended (and released its lease): the next sweep runs.
	if again := h.run(t, request.Request{Mode: request.ModeScheduled}); again.RepeatOf != "" || again.Summary.Candidates != 2 {
		t.Fatalf("a later sweep: repeatOf %q, %d candidates; want a sweep of both keys", again.RepeatOf, again.Summary.Candidates)
	}
}

// A sweep that died holding its lease (a crash before its deadline) is
// retried by Lambda with the same request ID: the retry takes the lease over.
func TestLambdaRetryOfACrashedSweepTakesItsLeaseOver(t *testing.T) {
	h := newHarness(t, kmsemu.Options{RotationDelay: 0}, oneDueKey, fastConfig())
	until := time.Now().Add(10 * time.Minute)
	if held, err := h.ledger.Lease(context.Background(), testRegion, testAccount, "crashed-run", "crashed-run", "req-crashed", time.Now(), until); err != nil || held != nil {
		t.Fatalf("the crashed run's lease: %v, %v", held, err)
	}
	other, err := h.newEngine(fastConfig()).Run(context.Background(), request.Request{Mode: request.ModeScheduled}, Invocation{RequestID: "req-other", Scope: testScope})
	if err != nil || other.RepeatOf != "crashed-run" {
		t.Fatalf("another delivery while the lease stands: %v, repeatOf %q; want a duplicate of the crashed run", err, other.RepeatOf)
	}
	retry, err := h.newEngine(fastConfig()).Run(context.Background(), request.Request{Mode: request.ModeScheduled}, Invocation{RequestID: "req-crashed", Scope: testScope})
	if err != nil || retry.RepeatOf != "" || retry.Summary.Rotated != 1 {
		t.Fatalf("Lambda's retry (same request ID): %v, %+v; want the sweep, rotating the due key", err, retry)
	}
}
