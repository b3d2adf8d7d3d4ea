package ledger

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kms-rotator/kms-rotator/tools/dynalite"
)

var tables atomic.Int64

// newLedger is a ledger on a fresh table of a dynalite (a third party's
// DynamoDB) shared by the package's tests.
func newLedger(t *testing.T) *Ledger {
	t.Helper()
	srv := sharedServer(t)
	name := fmt.Sprintf("ledger-test-%d", tables.Add(1))
	if err := srv.CreateLedgerTable(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	return New(srv.Client(context.Background()), name, 400*24*time.Hour)
}

var server struct {
	once sync.Once
	srv  *dynalite.Server
	err  error
}

func sharedServer(t *testing.T) *dynalite.Server {
	t.Helper()
	server.once.Do(func() { server.srv, server.err = dynalite.Start(context.Background(), dynalite.Options{}) })
	if server.err != nil {
		t.Fatalf("dynalite: %v (run npm ci)", server.err)
	}
	return server.srv
}

func TestMain(m *testing.M) {
	code := m.Run()
	if server.srv != nil {
		server.srv.Close()
	}
	os.Exit(code)
}

const arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

func claim(run, request string, at time.Time) Claim {
	return Claim{KeyARN: arn, ClaimedAt: at, RunID: run, Mode: "incident", Request: request, Reason: "INC-1"}
}

func TestClaimRefusedByAYoungerClaimUntilReleased(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	if res, err := l.Claim(ctx, claim("run-a", "req-a", t0), Guard{Since: t0.Add(-time.Hour)}); err != nil || res.Held != nil || res.Replaced != nil {
		t.Fatalf("first claim: %+v, %v; want written, replacing nothing", res, err)
	}
	// Another request half an hour later, cooldown one hour: refused.
	t1 := t0.Add(30 * time.Minute)
	res, err := l.Claim(ctx, claim("run-b", "req-b", t1), Guard{Since: t1.Add(-time.Hour)})
	if err != nil || res.Held == nil || res.Held.RunID != "run-a" || res.Held.Outcome != Claimed {
		t.Fatalf("claim inside the guard: %+v, %v; want refused by run-a's claim", res, err)
	}
	// Force (no Since) but the same request: still refused within the window.
	res, err = l.Claim(ctx, claim("run-c", "req-a", t1), Guard{Request: "req-a", RequestSince: t1.Add(-24 * time.Hour)})
	if err != nil || res.Held == nil {
		t.Fatalf("a forced repeat of the same request: %+v, %v; want refused", res, err)
	}
	// Force of a new request: written, replacing run-a's claim.
	res, err = l.Claim(ctx, claim("run-d", "req-d", t1), Guard{Request: "req-d", RequestSince: t1.Add(-24 * time.Hour)})
	if err != nil || res.Held != nil || res.Replaced == nil || res.Replaced.RunID != "run-a" {
		t.Fatalf("a forced new request: %+v, %v; want written over run-a's claim", res, err)
	}
	// Released (KMS refused with no effect): blocks nothing.
	d := claim("run-d", "req-d", t1)
	d.Outcome, d.Detail = Released, "RotateKeyOnDemand: LimitExceededException"
	if err := l.Record(ctx, d); err != nil {
		t.Fatal(err)
	}
	if res, err := l.Claim(ctx, claim("run-e", "req-e", t1.Add(time.Second)), Guard{Since: t1.Add(-time.Hour)}); err != nil || res.Held != nil {
		t.Fatalf("claim after a release: %+v, %v; want written", res, err)
	}
	// Every claim has its record, oldest first.
	claims, err := l.Claims(ctx, arn, 0)
	if err != nil || len(claims) != 3 || claims[0].RunID != "run-a" || claims[1].Outcome != Released || claims[2].RunID != "run-e" {
		t.Fatalf("records: %+v, %v; want run-a, run-d (released), run-e", claims, err)
	}
}

func TestRacingClaimsOneWins(t *testing.T) {
	l := newLedger(t)
	t0 := time.Now()
	var won atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			res, err := l.Claim(context.Background(), claim(fmt.Sprintf("run-%d", i), fmt.Sprintf("req-%d", i), t0), Guard{Since: t0.Add(-time.Hour)})
			if err != nil {
				t.Error(err)
			}
			if err == nil && res.Held == nil {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if n := won.Load(); n != 1 {
		t.Fatalf("%d of 8 racing claims were written, want 1", n)
	}
}

func TestSettleMovesOnlyTheClaimItRead(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	a := claim("run-a", "req-a", t0)
	if _, err := l.Claim(ctx, a, Guard{}); err != nil {
		t.Fatal(err)
	}
	a.Outcome = Unconfirmed
	if err := l.Record(ctx, a); err != nil {
		t.Fatal(err)
	}
	held, err := l.Head(ctx, arn)
	if err != nil || held == nil || held.Outcome != Unconfirmed {
		t.Fatalf("head %+v, %v; want run-a unconfirmed", held, err)
	}
	if err := l.Settle(ctx, *held, Released, "run-z"); err != nil {
		t.Fatal(err)
	}
	h, _ := l.Head(ctx, arn)
	recs, _ := l.Claims(ctx, arn, 0)
	if h.Outcome != Released || h.SettledBy != "run-z" || len(recs) != 1 || recs[0].Outcome != Released {
		t.Fatalf("after settling: head %+v records %+v; want released by run-z on both", h, recs)
	}
}

func TestRequestRecordsAnswerRepeats(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	now := time.Now()
	if rec, err := l.Begin(ctx, "id:soar-1", "run-a", now, now.Add(time.Minute), 24*time.Hour); err != nil || rec != nil {
		t.Fatalf("first Begin: %+v, %v", rec, err)
	}
	rec, err := l.Begin(ctx, "id:soar-1", "run-b", now, now.Add(time.Minute), 24*time.Hour)
	if err != nil || rec == nil || rec.RunID != "run-a" || rec.Status != InProgress {
		t.Fatalf("repeat while running: %+v, %v; want run-a in progress", rec, err)
	}
	if err := l.Complete(ctx, "id:soar-1", "run-a", []byte(`{"runId":"run-a"}`)); err != nil {
		t.Fatal(err)
	}
	rec, err = l.Begin(ctx, "id:soar-1", "run-c", now, now.Add(time.Minute), 24*time.Hour)
	if err != nil || rec == nil || rec.Status != Completed || string(rec.Report) != `{"runId":"run-a"}` {
		t.Fatalf("repeat after completion: %+v, %v; want run-a's stored report", rec, err)
	}
	// Past the first run's deadline without completing: a repeat takes over.
	if _, err := l.Begin(ctx, "id:soar-2", "run-x", now, now.Add(time.Minute), 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if rec, err := l.Begin(ctx, "id:soar-2", "run-y", now.Add(2*time.Minute), now.Add(3*time.Minute), 24*time.Hour); err != nil || rec != nil {
		t.Fatalf("repeat after the first run's deadline: %+v, %v; want it to take over", rec, err)
	}
}
