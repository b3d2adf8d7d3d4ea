package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	tagging "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"

	"github.com/kms-rotator/kms-rotator/lambda/ledger"
	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/rotator"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// sweepResult is what the -sweep child hands back to the parent.
type sweepResult struct {
	WallSeconds float64         `json:"wallSeconds"`
	Summary     rotator.Summary `json:"summary"`
	// PeakRSSMB is the child's own VmHWM (Linux), read at its end.
	PeakRSSMB float64 `json:"peakRSSMB"`
	// CPUSeconds is filled in by the parent from the child's rusage.
	CPUSeconds float64 `json:"-"`
	// LedgerCalls and LedgerBusySeconds are ledgerTimer's figures.
	LedgerCalls       int64   `json:"ledgerCalls"`
	LedgerBusySeconds float64 `json:"ledgerBusySeconds"`
}

// ledgerTimer wraps the ledger's HTTP client: it counts the DynamoDB
// requests and the wall time during which at least one is in flight. The
// pipelines overlap their calls, so summed latencies would overstate what
// the ledger costs the sweep; busy time is what it can cost at most.
type ledgerTimer struct {
	next aws.HTTPClient
	now  func() time.Time // time.Now when nil

	mu       sync.Mutex
	calls    int64
	inFlight int
	since    time.Time
	busy     time.Duration
}

// Do implements aws.HTTPClient.
func (t *ledgerTimer) Do(r *http.Request) (*http.Response, error) {
	t.mu.Lock()
	t.calls++
	if t.inFlight == 0 {
		t.since = t.clock()
	}
	t.inFlight++
	t.mu.Unlock()
	resp, err := t.next.Do(r)
	t.mu.Lock()
	if t.inFlight--; t.inFlight == 0 {
		t.busy += t.clock().Sub(t.since)
	}
	t.mu.Unlock()
	return resp, err
}

func (t *ledgerTimer) clock() time.Time {
	if t.now != nil {
		return t.now()
	}
	return time.Now()
}

// runSweep is the child process: one scheduled run of the engine, wired the
// way lambda/main.go wires it (configuration from the environment, SDK
// clients from rotator.LoadAWSConfig), with a
// 15-minute deadline like the longest Lambda run. Logs and EMF lines go to
// stdout as in Lambda (the parent points stdout at /dev/null). The result
// goes to the file out.
func runSweep(out, cpuProfile, memProfile, target string) error {
	ctx := context.Background()
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	rotator.ConfigureRuntime(os.Getenv) // as lambda/main.go does
	cfg, err := settings.LoadConfig(os.Getenv)
	if err != nil {
		return err
	}
	awsCfg, err := rotator.LoadAWSConfig(ctx, cfg)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	engine := rotator.New(cfg, kms.NewFromConfig(awsCfg), tagging.NewFromConfig(awsCfg), log, os.Stdout)
	// The ledger as lambda/main.go gives it, its requests timed.
	timer := &ledgerTimer{next: awsCfg.HTTPClient}
	engine.SetLedger(ledger.New(dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) { o.HTTPClient = timer }), cfg.LedgerTable, cfg.LedgerRetention))
	inv := rotator.Invocation{RequestID: "bench", Scope: request.Scope{Partition: "aws", Account: benchAccount, Region: benchRegion}}
	req := request.Request{Mode: request.ModeScheduled, Source: request.SourceScheduledEvent}
	if target != "" {
		// Organization mode, as the state machine invokes it: one member
		// account per function invocation, through its member role.
		engine.SetMembers(rotator.AssumeMemberRole(awsCfg, orgMemberRole))
		req.Target = &request.Target{Account: target, Region: benchRegion}
	}

	rctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	start := time.Now()
	rep, err := engine.Run(rctx, req, inv)
	wall := time.Since(start)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	if memProfile != "" {
		f, err := os.Create(memProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		// alloc_space shows what the run allocated, inuse_space what it
		// still holds at its end.
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return err
		}
	}
	timer.mu.Lock()
	calls, busy := timer.calls, timer.busy
	timer.mu.Unlock()
	b, err := json.Marshal(sweepResult{WallSeconds: wall.Seconds(), Summary: rep.Summary, PeakRSSMB: peakRSSMB(),
		LedgerCalls: calls, LedgerBusySeconds: busy.Seconds()})
	if err != nil {
		return err
	}
	return os.WriteFile(out, b, 0o600)
}

// peakRSSMB is this process's peak resident set (VmHWM in /proc/self/status),
// 0 where that file does not exist. The child's rusage is no measure: Go
// starts children with vfork semantics, and Linux carries the parent's
// high-water mark (the emulator holding the whole fleet) into the child's
// ru_maxrss at exec.
func peakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err == nil {
				return kb / 1024
			}
		}
	}
	return 0
}
