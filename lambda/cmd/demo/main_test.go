package main

import (
	"slices"
	"strings"
	"testing"
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
