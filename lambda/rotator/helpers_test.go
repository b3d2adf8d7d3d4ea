package rotator

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kms-rotator/kms-rotator/lambda/ledger"
	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu/emutest"
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
	checkReport(t, rep)
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

// checkReport asserts the report's invariants: every entry once, the summary
// consistent with the entries, reasons matching outcomes.
func checkReport(t *testing.T, rep *Report) {
	t.Helper()
	s := rep.Summary
	if got := s.Rotated + s.WouldRotate + s.Skipped + s.Failed + s.Deferred; got != s.Candidates {
		t.Errorf("summary outcomes add up to %d, candidates %d", got, s.Candidates)
	}
	complete := rep.OmittedNotDue == 0 && rep.OmittedOther == 0
	if complete && len(rep.Keys) != s.Candidates {
		t.Errorf("%d entries for %d candidates", len(rep.Keys), s.Candidates)
	}
	if len(rep.Keys)+rep.OmittedNotDue+rep.OmittedOther != s.Candidates {
		t.Errorf("%d entries + %d + %d omitted != %d candidates", len(rep.Keys), rep.OmittedNotDue, rep.OmittedOther, s.Candidates)
	}
	seen := map[string]bool{}
	count := map[Outcome]int{}
	reasons := map[Reason]int{}
	for _, k := range rep.Keys {
		id := k.KeyARN
		if id == "" {
			id = "unresolved:" + k.Alias + k.KeyID
		}
		if seen[id] {
			t.Errorf("key %s appears twice", id)
		}
		seen[id] = true
		count[k.Outcome]++
		if k.Reason != "" {
			reasons[k.Reason]++
		}
		switch k.Outcome {
		case Rotated, WouldRotate:
			if k.Reason != "" {
				t.Errorf("%s: %s with reason %q", id, k.Outcome, k.Reason)
			}
		case Failed:
			if k.Error == "" {
				t.Errorf("%s: failed without error text", id)
			}
		case Skipped, Deferred:
			if k.Reason == "" {
				t.Errorf("%s: %s without reason", id, k.Outcome)
			}
		default:
			t.Errorf("%s: unknown outcome %q", id, k.Outcome)
		}
		// A skipped rotation-in-progress carries KMS's ConflictException
		// message (an automatic rotation due within 20 minutes, say).
		if k.Outcome != Failed && k.Error != "" && k.Reason != ReasonRotationInProgress {
			t.Errorf("%s: error on a %s entry", id, k.Outcome)
		}
		// Every skipped or failed entry says what to do next.
		if (k.Outcome == Skipped || k.Outcome == Failed) && k.Next == "" {
			t.Errorf("%s: %s/%s without a next step", id, k.Outcome, k.Reason)
		}
	}
	if rep.Mode == request.ModeIncident {
		if s.NotRotated == nil || *s.NotRotated != s.Candidates-s.Rotated-s.WouldRotate {
			t.Errorf("incident summary notRotated %v, want candidates − rotated − would-rotate = %d", s.NotRotated, s.Candidates-s.Rotated-s.WouldRotate)
		}
	} else if s.NotRotated != nil {
		t.Errorf("%s summary has notRotated", rep.Mode)
	}
	if complete {
		want := map[Outcome]int{Rotated: s.Rotated, WouldRotate: s.WouldRotate, Skipped: s.Skipped, Failed: s.Failed, Deferred: s.Deferred}
		for o, n := range want {
			if count[o] != n {
				t.Errorf("summary says %d %s, entries %d", n, o, count[o])
			}
		}
		for r, n := range s.Reasons {
			if reasons[r] != n {
				t.Errorf("summary says %d %s, entries %d", n, r, reasons[r])
			}
		}
	}
	if _, err := time.Parse(time.RFC3339, rep.StartedAt); err != nil {
		t.Errorf("startedAt %q: %v", rep.StartedAt, err)
	}
	if _, err := time.Parse(time.RFC3339, rep.FinishedAt); err != nil {
		t.Errorf("finishedAt %q: %v", rep.FinishedAt, err)
	}
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

// keyState is a key's rotation state as KMS (the emulator) shows it.
type keyState struct {
	onDemand   int
	inProgress bool
}

// snapshot reads every key's on-demand count and in-progress flag in the
// given Regions through the SDK, keyed by key ARN.
func (h *harness) snapshot(t *testing.T, regions ...string) map[string]keyState {
	t.Helper()
	ctx := context.Background()
	out := map[string]keyState{}
	var mu sync.Mutex
	for _, region := range regions {
		// Many attempts: under the emulator's injected failures a read
		// that gave up would count a key's rotations as 0.
		c := kms.NewFromConfig(h.emu.Config(region), func(o *kms.Options) { o.RetryMaxAttempts = 30 })
		var arns []string
		p := kms.NewListKeysPaginator(c, &kms.ListKeysInput{})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range page.Keys {
				arns = append(arns, aws.ToString(k.KeyArn))
			}
		}
		// Eight readers: the snapshot is test set-up, not what is measured.
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= len(arns) {
						return
					}
					arn := arns[i]
					var st keyState
					rp := kms.NewListKeyRotationsPaginator(c, &kms.ListKeyRotationsInput{KeyId: &arn})
					for rp.HasMorePages() {
						rpage, err := rp.NextPage(ctx)
						if err != nil {
							break // AWS managed and other keys answer UnsupportedOperation
						}
						for _, r := range rpage.Rotations {
							if r.RotationType == kmstypes.RotationTypeOnDemand {
								st.onDemand++
							}
						}
					}
					s, err := c.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: &arn})
					if err == nil && s.OnDemandRotationStartDate != nil {
						st.inProgress = true
					}
					mu.Lock()
					out[arn] = st
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	h.emu.Server.ResetStats() // the run's calls are counted from here
	return out
}

// checkAgainstEmulator asserts that exactly the keys reported rotated got one
// new on-demand rotation (completed or in progress), and no other key changed.
func checkAgainstEmulator(t *testing.T, rep *Report, before, after map[string]keyState) {
	t.Helper()
	rotated := map[string]bool{}
	for _, k := range rep.Keys {
		if k.Outcome == Rotated {
			rotated[k.KeyARN] = true
		}
	}
	// A replica shares its primary's rotations: it shows the primary's.
	for _, k := range rep.Keys {
		if k.PrimaryKeyARN != "" && rotated[k.PrimaryKeyARN] {
			rotated[k.KeyARN] = true
		}
	}
	for arn, a := range after {
		b := before[arn]
		spent := a.onDemand - b.onDemand
		if a.inProgress && !b.inProgress {
			spent++
		}
		switch {
		case rotated[arn] && spent != 1:
			t.Errorf("%s reported rotated; KMS shows %d new on-demand rotations", arn, spent)
		case !rotated[arn] && spent != 0:
			t.Errorf("%s not reported rotated; KMS shows %d new on-demand rotations", arn, spent)
		}
	}
	for arn := range rotated {
		if _, ok := after[arn]; !ok {
			t.Errorf("%s reported rotated but KMS does not list it", arn)
		}
	}
}
