package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/rotator"
	"github.com/kms-rotator/kms-rotator/lambda/tools/harness"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantEvents []string
		wantErr    string
	}{
		{name: "defaults invoke plan, scheduled and incident", wantEvents: []string{"events/plan.json", "events/scheduled.json", "events/incident.json"}},
		{name: "events list is split and trimmed", args: []string{"-events", "a.json, b.json,"}, wantEvents: []string{"a.json", "b.json"}},
		{name: "empty events list is refused", args: []string{"-events", ","}, wantErr: "-events"},
		{name: "positional arguments are refused", args: []string{"extra"}, wantErr: "unexpected arguments"},
		{name: "unknown flag is refused", args: []string{"-nope"}, wantErr: "-nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			o, err := parseFlags(tt.args, &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(o.events, tt.wantEvents) {
				t.Fatalf("events = %q, want %q", o.events, tt.wantEvents)
			}
		})
	}
}

// TestRun runs the demo as `make demo` does, through the built binaries.
func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string // in stdout
		wantErr  string   // in stderr
	}{
		{
			name:     "plan and incident print tables and exit 0",
			args:     []string{"-events", "events/plan.json,events/incident.json"},
			wantCode: 0,
			wantOut: []string{
				"=== events/plan.json", "ALIAS", "OUTCOME", "REASON", "plan (dry run): ",
				"=== events/incident.json", "incident: 3 candidates, 3 rotated",
				// "result event: …" once the function publishes it,
				// "no result event …" until then.
				"result event",
				"ledger: table " + harness.LedgerTable + " in dynalite http://127.0.0.1:",
				// One claim before each of the incident's three
				// RotateKeyOnDemand calls; the plan claims nothing.
				"ledger: 3 claim(s) in table " + harness.LedgerTable,
				"demo: 2 invocation(s), 0 failed",
			},
		},
		{name: "a missing payload file exits 1 naming it", args: []string{"-events", "events/nope.json"}, wantCode: 1, wantErr: "nope.json"},
		{name: "a missing fleet exits 1 naming it", args: []string{"-fleet", "events/nope-fleet.json"}, wantCode: 1, wantErr: "nope-fleet.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			if code := run(tt.args, &stdout, &stderr); code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout.String(), stderr.String())
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantErr, stderr.String())
			}
		})
	}
}

func TestPrefixWriterPrefixesEachLineOnce(t *testing.T) {
	var b strings.Builder
	p := &prefixWriter{w: &b}
	for _, chunk := range []string{"one\ntw", "o\n", "three\n"} {
		if _, err := p.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if want := "  | one\n  | two\n  | three\n"; b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
}

func TestWriteResultEvents(t *testing.T) {
	report := &harness.Report{RunID: "r-1", Mode: request.ModeIncident,
		Summary: rotator.Summary{Candidates: 3, Rotated: 2, Skipped: 1, Reasons: map[rotator.Reason]int{"recently-rotated": 1}}}
	const detail = `{"runId":"r-1","mode":"incident","dryRun":false,"reason":"INC-4711 suspected exposure","requestId":"req-9",` +
		`"summary":{"candidates":3,"rotated":2,"wouldRotate":0,"skipped":1,"failed":0,"deferred":0,"reasons":{"recently-rotated":1}},` +
		`"keys":[{"keyId":"a"},{"keyId":"b"},{"keyId":"c"}],"truncated":false}`
	event := func(detailType, detail string) harness.Event {
		return harness.Event{Source: "kms-rotator", DetailType: detailType, Detail: detail, EventBusName: "default",
			Region: "us-east-1", Account: "012345678912", Time: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	}
	tests := []struct {
		name        string
		events      []harness.Event
		report      *harness.Report
		wantOut     []string
		wantProblem string
	}{
		{
			name:   "the incident's result event is printed with bus, summary and reason",
			events: []harness.Event{event("Something Else", `{}`), event("KMS Rotation Run Completed", detail)},
			report: report,
			wantOut: []string{`result event: source kms-rotator, detail-type "KMS Rotation Run Completed", bus default (us-east-1, account 012345678912), 2026-11-26T12:00:00Z`,
				"incident: 3 candidates, 2 rotated, 0 would rotate, 1 skipped, 0 failed, 0 deferred [recently-rotated 1]; 3 key entries",
				`reason "INC-4711 suspected exposure"; run r-1, request req-9`},
		},
		{
			name:    "an incident without one says so and is no failure",
			events:  []harness.Event{event("Something Else", `{}`)},
			report:  report,
			wantOut: []string{"no result event"},
		},
		{
			name:    "another mode without one prints nothing",
			report:  &harness.Report{RunID: "r-2", Mode: request.ModeScheduled},
			wantOut: []string{},
		},
		{
			name:        "a summary that differs from the report is a problem",
			events:      []harness.Event{event("KMS Rotation Run Completed", strings.Replace(detail, `"rotated":2`, `"rotated":3`, 1))},
			report:      report,
			wantProblem: "summary",
		},
		{
			name:        "another run's event is a problem",
			events:      []harness.Event{event("KMS Rotation Run Completed", strings.Replace(detail, `"r-1"`, `"r-0"`, 1))},
			report:      report,
			wantProblem: "run r-0",
		},
		{
			name:        "a detail that is not the report's shape is a problem",
			events:      []harness.Event{event("KMS Rotation Run Completed", `{"summary":"x"}`)},
			report:      report,
			wantProblem: "detail",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			problems := writeResultEvents(&out, tt.events, tt.report)
			for _, w := range tt.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if tt.wantOut != nil && len(tt.wantOut) == 0 && out.String() != "" {
				t.Errorf("output %q, want none", out.String())
			}
			got := strings.Join(problems, "; ")
			if (tt.wantProblem == "") != (got == "") || !strings.Contains(got, tt.wantProblem) {
				t.Errorf("problems %q, want one containing %q", got, tt.wantProblem)
			}
		})
	}
}
