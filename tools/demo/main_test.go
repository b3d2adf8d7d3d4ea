package main

import (
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/harness"
	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		wantEvents  []string
		wantEnv     map[string]string
		wantTimeout time.Duration
		wantErr     string
	}{
		{name: "defaults invoke plan, scheduled and incident, no variables, the default timeout",
			wantEvents: []string{"events/plan.json", "events/scheduled.json", "events/incident.json"}, wantEnv: map[string]string{}},
		{name: "events list is split and trimmed", args: []string{"-events", "a.json, b.json,"}, wantEvents: []string{"a.json", "b.json"}, wantEnv: map[string]string{}},
		{name: "empty events list is refused", args: []string{"-events", ","}, wantErr: "-events"},
		{name: "positional arguments are refused", args: []string{"extra"}, wantErr: "unexpected arguments"},
		{name: "unknown flag is refused", args: []string{"-nope"}, wantErr: "-nope"},
		{name: "-env is repeatable and -timeout sets the function timeout",
			args:       []string{"-env", "ROTATOR_INTERVAL_DAYS=30", "-env", "ROTATOR_DRY_RUN=true", "-env", "ROTATOR_LEDGER_TABLE=prod-ledger", "-timeout", "90s"},
			wantEvents: []string{"events/plan.json", "events/scheduled.json", "events/incident.json"},
			wantEnv:    map[string]string{"ROTATOR_INTERVAL_DAYS": "30", "ROTATOR_DRY_RUN": "true", "ROTATOR_LEDGER_TABLE": "prod-ledger"}, wantTimeout: 90 * time.Second},
		{name: "a value may contain =", args: []string{"-env", "ROTATOR_TAG_VALUE=a=b"},
			wantEvents: []string{"events/plan.json", "events/scheduled.json", "events/incident.json"}, wantEnv: map[string]string{"ROTATOR_TAG_VALUE": "a=b"}},
		{name: "a misspelt name is refused with the closest", args: []string{"-env", "ROTATOR_INTERVAL_DAY=30"},
			wantErr: "ROTATOR_INTERVAL_DAY is not a variable the function reads; did you mean ROTATOR_INTERVAL_DAYS?"},
		{name: "a name without its prefix is refused with the full one", args: []string{"-env", "dry_run=true"},
			wantErr: "did you mean ROTATOR_DRY_RUN?"},
		{name: "a ROTATOR_ name nothing resembles is refused with the list", args: []string{"-env", "ROTATOR_COLOUR=blue"},
			wantErr: "ROTATOR_COLOUR is not a variable the function reads; it reads ROTATOR_AUTO_ROTATION_GRACE_DAYS, "},
		{name: "another variable is refused", args: []string{"-env", "AWS_REGION=eu-west-1"}, wantErr: "AWS_REGION is not a variable the function reads"},
		{name: "a flag value without = is refused", args: []string{"-env", "ROTATOR_DRY_RUN"}, wantErr: "is not NAME=value"},
		{name: "a bad value is refused as the function would", args: []string{"-env", "ROTATOR_INTERVAL_DAYS=0"}, wantErr: "-env: ROTATOR_INTERVAL_DAYS=0: must be between 1 and 3650"},
		{name: "one name with two values is refused", args: []string{"-env", "ROTATOR_RESERVE=1", "-env", "ROTATOR_RESERVE=3"}, wantErr: "ROTATOR_RESERVE given twice"},
		{name: "a timeout past Lambda's 15 minutes is refused", args: []string{"-timeout", "16m"}, wantErr: "whole seconds from 1s to 15m0s"},
		{name: "a timeout of part of a second is refused", args: []string{"-timeout", "1500ms"}, wantErr: "whole seconds"},
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
			if !maps.Equal(o.env, tt.wantEnv) || o.timeout != tt.wantTimeout {
				t.Fatalf("env %v, timeout %v; want %v, %v", o.env, o.timeout, tt.wantEnv, tt.wantTimeout)
			}
		})
	}
}

// TestEveryRotatorVariableIsAccepted: -env takes each name the settings
// package defines, with the value the stack would set.
func TestEveryRotatorVariableIsAccepted(t *testing.T) {
	defaults := settings.Environment(settings.DefaultConfig())
	if len(defaults) < 20 {
		t.Fatalf("%d variables; the settings package defines more", len(defaults))
	}
	for name, v := range defaults {
		if v == "" {
			continue // a setting without a default (a member role name)
		}
		if _, err := parseFlags([]string{"-env", name + "=" + v}, io.Discard); err != nil {
			t.Errorf("-env %s=%s: %v", name, v, err)
		}
	}
}

// TestRun runs the demo as `make demo` does, through the built binaries.
func TestRun(t *testing.T) {
	// A key last rotated 40 days ago: due at ROTATOR_INTERVAL_DAYS=30, not
	// at the default 90. Its entry has a field kmslocal does not know and
	// a creation younger than its rotation: two fleet warnings.
	fleet := filepath.Join(t.TempDir(), "fleet.json")
	if err := os.WriteFile(fleet, []byte(`[{"alias": "alias/rehearsed", "owner": "team-x", "createdDaysAgo": 10,
	  "tags": {"kms-rotator": "enabled"}, "rotations": [{"type": "ON_DEMAND", "daysAgo": 40}]}]`), 0o600); err != nil {
		t.Fatal(err)
	}
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
		{
			name:     "a rehearsal runs with the given variables and timeout and shows the fleet warnings",
			args:     []string{"-fleet", fleet, "-events", "events/plan.json", "-env", "ROTATOR_INTERVAL_DAYS=30", "-timeout", "30s"},
			wantCode: 0,
			wantOut: []string{
				`kmslocal: warning: fleet: json: unknown field "owner" (ignored)`,
				"kmslocal: warning: fleet entry 0: createdDaysAgo 10 is younger than its oldest rotation (40 days ago)",
				"(2 fleet warning(s)",
				"function: timeout 30s; ROTATOR_* variables: ROTATOR_INTERVAL_DAYS=30",
				"alias/rehearsed", "plan (dry run): 1 candidates, 0 rotated, 1 would rotate",
				"demo: 1 invocation(s), 0 failed",
			},
		},
		{
			name:     "without -env the same key is not due",
			args:     []string{"-fleet", fleet, "-events", "events/plan.json"},
			wantCode: 0,
			wantOut:  []string{"function: timeout 60s (default); ROTATOR_* variables: none set, all defaults", "plan (dry run): 1 candidates, 0 rotated, 0 would rotate"},
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
	const summary = `"summary":{"candidates":3,"rotated":2,"wouldRotate":0,"skipped":1,"failed":0,"deferred":0,"reasons":{"recently-rotated":1}}`
	const keys = `"keys":[{"keyId":"a"},{"keyId":"b"},{"keyId":"c"}]`
	decode := func(raw string) *oracle.Report {
		r, err := oracle.Decode([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	report := decode(`{"runId":"r-1","mode":"incident","dryRun":false,` + summary + `,` + keys + `}`)
	const detail = `{"runId":"r-1","mode":"incident","dryRun":false,"reason":"INC-4711 suspected exposure","requestId":"req-9",` +
		summary + `,` + keys + `,"truncated":false}`
	event := func(detailType, detail string) harness.Event {
		return harness.Event{Source: "kms-rotator", DetailType: detailType, Detail: detail, EventBusName: "default",
			Region: "us-east-1", Account: "012345678912", Time: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	}
	tests := []struct {
		name        string
		events      []harness.Event
		report      *oracle.Report
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
			report:  decode(`{"runId":"r-2","mode":"scheduled"}`),
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
			wantProblem: `detail.runId = "r-0"`,
		},
		{
			name:        "another request's event is a problem",
			events:      []harness.Event{event("KMS Rotation Run Completed", strings.Replace(detail, `"req-9"`, `"req-8"`, 1))},
			report:      report,
			wantProblem: `detail.requestId = "req-8"`,
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
			problems := writeResultEvents(&out, tt.events, tt.report, "req-9", "INC-4711 suspected exposure")
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

func TestRequestReasonIsTheIncidents(t *testing.T) {
	for payload, want := range map[string]string{
		`{"mode":"incident","keys":["k"],"reason":"INC-1"}`:                                        "INC-1",
		`{"source":"kms-rotator","detail":{"mode":"incident","tag":{"Key":"a"},"reason":"INC-2"}}`: "INC-2",
		`{"mode":"scheduled"}`:           "",
		`{"mode":"plan","reason":"why"}`: "",
		`not JSON`:                       "",
	} {
		if got := requestReason([]byte(payload)); got != want {
			t.Errorf("requestReason(%s) = %q, want %q", payload, got, want)
		}
	}
}

func TestFleetRegionsStartAtHome(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.json")
	if err := os.WriteFile(path, []byte(`[{"alias":"alias/a"},{"region":"eu-west-1"},{"region":"us-east-1"},{"region":"eu-west-1"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := fleetRegions(path, "us-east-1")
	if err != nil || !slices.Equal(got, []string{"us-east-1", "eu-west-1"}) {
		t.Fatalf("fleetRegions = %v, %v", got, err)
	}
}
