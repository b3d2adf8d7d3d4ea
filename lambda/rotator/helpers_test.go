package rotator

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kms-rotator/kms-rotator/lambda/ledger"
	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu/emutest"
	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

const (
	testAccount = emutest.Account
	testRegion  = "us-east-1"
)

var testScope = request.Scope{Partition: "aws", Account: testAccount, Region: testRegion}

// syncBuffer collects the engine's log and metric lines (safe for its
// concurrent writers).
type syncBuffer struct{ emutest.Buffer }

// lines returns the buffer's JSON lines, decoded.
func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// harness is an engine wired to an emulator through the real SDK clients.
type harness struct {
	emu     *emutest.Emu
	engine  *Engine
	ledger  *ledger.Ledger
	logs    *syncBuffer
	metrics *syncBuffer
	kms     *kms.Client
}

// fastConfig is the default configuration with a pace fast enough for tests.
func fastConfig() settings.Config {
	c := settings.DefaultConfig()
	c.RotateRPS = 500
	c.StartJitter = 0 // tests that need it set it
	c.ConfirmWait = 500 * time.Millisecond
	return c
}

func newHarness(t *testing.T, opts kmsemu.Options, fleet string, cfg settings.Config) *harness {
	t.Helper()
	if opts.Log == nil {
		opts.Log = io.Discard // the emulator's request log; switch to os.Stderr to debug
	}
	emu := emutest.Start(t, opts, fleet)
	h := &harness{emu: emu, logs: &syncBuffer{}, metrics: &syncBuffer{}, kms: emu.KMS(testRegion)}
	log := slog.New(slog.NewJSONHandler(h.logs, nil))
	h.engine = New(cfg, h.kms, emu.Tagging(testRegion), log, h.metrics)
	h.ledger = testLedger(t, cfg)
	h.engine.SetLedger(h.ledger)
	return h
}

// demoFleet is events/fleet.json, the fleet every sample payload names.
func demoFleet(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../events/fleet.json")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (h *harness) run(t *testing.T, req request.Request) *Report {
	t.Helper()
	rep, err := h.engine.Run(context.Background(), req, Invocation{RequestID: "req-1", Scope: testScope})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Tests may lower the listing threshold (a stand-in for 2,000).
	c := oracle.Documented
	c.MaxListed = h.engine.limits.maxListed
	judge(t, c, rep)
	return rep
}

// payload decodes a sample payload file the way the handler does.
func payload(t *testing.T, name string) request.Request {
	t.Helper()
	b, err := os.ReadFile("../../events/" + name)
	if err != nil {
		t.Fatal(err)
	}
	// An event's time must be recent (ROTATOR_INCIDENT_MAX_AGE).
	b = bytes.Replace(b, []byte(`"2026-11-26T06:05:00Z"`), []byte(`"`+time.Now().UTC().Format(time.RFC3339)+`"`), 1)
	req, err := request.Decode(b, testScope)
	if err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return req
}

// checkReport asserts that the report follows docs/design.md "The
// report", as the report oracle judges it from the JSON the function would
// return.
func checkReport(t *testing.T, rep *Report) { judge(t, oracle.Documented, rep) }

// judge checks the report against contract c with the report oracle and
// returns it as the oracle reads it.
func judge(t *testing.T, c oracle.Contract, rep *Report) *oracle.Report {
	t.Helper()
	r, err := oracle.Encode(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range c.CheckReport(r.Raw) {
		t.Errorf("report: %s", p)
	}
	return r
}

// byAlias indexes entries by alias (entries without one by key ID).
func byAlias(rep *Report) map[string]KeyReport {
	m := map[string]KeyReport{}
	for _, k := range rep.Keys {
		name := k.Alias
		if name == "" {
			name = k.KeyID
		}
		if r, ok := m[name]; ok && strings.Contains(r.KeyARN, testRegion) {
			continue // keep the home-Region entry under the alias
		}
		m[name] = k
	}
	return m
}

// snapshot reads every key's on-demand rotations (completed and in
// progress) and material in the given Regions through the SDK, keyed by key
// ARN, then resets the emulator's call counts: the run's are counted from
// there.
func (h *harness) snapshot(t *testing.T, regions ...string) oracle.Snapshot {
	t.Helper()
	var clients []*kms.Client
	for _, region := range regions {
		// The oracle's observer retries hard and fast: under the
		// emulator's injected failures a read that gave up would fail the
		// test, and one that backed off long would slow it.
		clients = append(clients, oracle.Observer(h.emu.Config(region)))
	}
	s, err := oracle.Read(context.Background(), clients...)
	if err != nil {
		t.Fatal(err)
	}
	h.emu.Server.ResetStats()
	return s
}

// checkAgainstEmulator asserts, with the report oracle, that exactly the
// keys reported rotated got one new on-demand rotation (completed or in
// progress; a replica its primary's), no other key changed, and a key
// reported unconfirmed was not rotated either: the emulator's injected
// failures happen before any change.
func checkAgainstEmulator(t *testing.T, rep *Report, before, after oracle.Snapshot) {
	t.Helper()
	r := judge(t, oracle.Documented, rep)
	for _, p := range append(oracle.CheckRotations(before, after, r), oracle.CheckUnconfirmedNotApplied(before, after, r)...) {
		t.Errorf("emulator: %s", p)
	}
}
