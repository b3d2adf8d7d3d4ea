package rotator

import (
	"testing"
	"time"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

func TestReadPipelines(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want int
	}{
		{"defaults → 16", nil, 16},
		{"unset concurrency, raised pace → enough pipelines for ListKeyRotations at 20× the rotate pace", map[string]string{settings.EnvRotateRPS: "50"}, 100},
		{"concurrency set → used exactly, whatever the pace", map[string]string{settings.EnvRotateRPS: "50", settings.EnvConcurrency: "2"}, 2},
		{"concurrency set above the auto value → used exactly", map[string]string{settings.EnvConcurrency: "64"}, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := settings.LoadConfig(func(k string) string {
				if k == settings.EnvLedgerTable {
					return "kms-rotator-ledger"
				}
				return tc.env[k]
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := readPipelines(cfg); got != tc.want {
				t.Fatalf("readPipelines = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestStartJitter(t *testing.T) {
	cfg := settings.DefaultConfig() // StartJitter 1 s
	e := &Engine{cfg: cfg}
	for _, tc := range []struct {
		name   string
		req    request.Request
		dry    bool
		cutoff time.Duration // from now; 0 = none
		max    time.Duration // 0: must be exactly 0
	}{
		{"scheduled sweep → up to StartJitter", request.Request{Mode: request.ModeScheduled}, false, 0, time.Second},
		{"scheduled sweep with 10 min left → still up to StartJitter", request.Request{Mode: request.ModeScheduled}, false, 10 * time.Minute, time.Second},
		{"scheduled sweep with 20 s left → at most 1 % of it", request.Request{Mode: request.ModeScheduled}, false, 20 * time.Second, 200 * time.Millisecond},
		{"incident → never waits", request.Request{Mode: request.ModeIncident}, false, 0, 0},
		{"dry run → nothing to protect", request.Request{Mode: request.ModeScheduled}, true, 0, 0},
		{"plan → nothing to protect", request.Request{Mode: request.ModePlan}, true, 0, 0},
		{"continuation link → up to StartJitter (Lambda's asynchronous invocation may deliver it twice)", request.Request{Mode: request.ModeScheduled, Continuation: &request.Continuation{RunID: "r", Chain: 1}}, false, 0, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &run{e: e, job: job{req: tc.req, dry: tc.dry}}
			if tc.cutoff > 0 {
				r.cutoff = time.Now().Add(tc.cutoff)
			}
			var most time.Duration
			for range 200 {
				j := r.startJitter()
				if j < 0 || j > tc.max {
					t.Fatalf("startJitter = %v, want within [0, %v]", j, tc.max)
				}
				most = max(most, j)
			}
			if tc.max > 0 && most == 0 {
				t.Fatal("startJitter never waited: duplicate sweeps would stay in lockstep")
			}
		})
	}
}
