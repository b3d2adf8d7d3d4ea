package harness

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		body        string
		wantHandler string // expected HandlerError.Type
		wantInvoke  int    // expected InvokeError.StatusCode
		wantTimeout bool
	}{
		{name: "report is no error", status: 200, body: `{"runId":"r","mode":"plan","summary":{},"keys":[]}`},
		{name: "handler error becomes HandlerError", status: 200, body: `{"errorMessage":"keys: empty list","errorType":"errorString"}`, wantHandler: "errorString"},
		{name: "error fields among others still a HandlerError", status: 200, body: `{"errorMessage":"x","errorType":"T","stackTrace":[]}`, wantHandler: "T"},
		{name: "only errorMessage is no error", status: 200, body: `{"errorMessage":"x"}`},
		{name: "init failure becomes InvokeError", status: 502, body: `{"errorType":"Runtime.ExitError"}`, wantInvoke: 502},
		{name: "timeout text becomes InvokeError with Timeout", status: 200, body: "Task timed out after 3.00 seconds", wantInvoke: 200, wantTimeout: true},
		{name: "non-JSON body becomes InvokeError", status: 200, body: "oops", wantInvoke: 200},
		{name: "JSON string is no error", status: 200, body: `"ok"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classify(tt.status, []byte(tt.body))
			var he *HandlerError
			var ie *InvokeError
			switch {
			case tt.wantHandler != "":
				if !errors.As(err, &he) || he.Type != tt.wantHandler {
					t.Fatalf("classify = %v, want HandlerError of type %s", err, tt.wantHandler)
				}
			case tt.wantInvoke != 0:
				if !errors.As(err, &ie) || ie.StatusCode != tt.wantInvoke || ie.Timeout() != tt.wantTimeout {
					t.Fatalf("classify = %#v, want InvokeError %d timeout=%v", err, tt.wantInvoke, tt.wantTimeout)
				}
			default:
				if err != nil {
					t.Fatalf("classify = %v, want nil", err)
				}
			}
		})
	}
}

func TestWriteTable(t *testing.T) {
	used, left := 3, 7
	last, due, nextAuto := "2026-08-01T10:00:00Z", "2026-10-30T10:00:00Z", "2026-11-29T06:00:00Z"
	overdue := true
	expires, completed := "2027-05-29T04:00:00Z", "2026-11-26T06:01:02.5Z"
	r := &oracle.Report{
		RunID: "run-1", Mode: "scheduled",
		StartedAt: "2026-11-26T06:00:00Z", FinishedAt: "2026-11-26T06:00:00.25Z",
		Summary: oracle.Summary{Candidates: 4, Rotated: 1, Skipped: 3, Overdue: 1,
			Reasons: map[string]int{"key-not-enabled": 1, "budget-exhausted": 1, "automatic-rotation-soon": 1}},
		Keys: []oracle.Entry{
			{KeyID: "1234abcd-12ab-34cd-56ef-1234567890ab", Alias: "alias/payments", Outcome: "rotated", OnDemandUsed: &used, OnDemandRemaining: &left, LastRotation: &last, NextDue: &due},
			{KeyID: "0987dcba-09fe-87dc-65ba-ab0987654321", Outcome: "skipped", Reason: "key-not-enabled", KeyState: "Disabled"},
			{KeyID: "b0d9e700-0000-4000-8000-0000000000e1", Alias: "alias/legacy-billing", Outcome: "skipped", Reason: "budget-exhausted", Overdue: &overdue},
			{KeyID: "5e1f0d00-0000-4000-8000-00000000d005", Alias: "alias/invoices", Outcome: "skipped", Reason: "automatic-rotation-soon", NextRotationDate: &nextAuto},
			{KeyID: "b7e00000-0000-4000-8000-0000000000c2", Alias: "alias/partner-byok", Outcome: "skipped", Reason: "material-not-staged",
				KeyMaterialID: "f450b0cabcde5a5aa16263c4c77c3c184c70d2d29d00b18af52035864e1c9e23", MaterialExpiresAt: &expires, LastUsedAt: json.RawMessage(`"2026-11-20T00:00:00Z"`)},
			{KeyID: "b7e00000-0000-4000-8000-0000000000c3", Alias: "alias/partner-global", Outcome: "skipped", Reason: "material-pending-replica-import",
				StagedKeyMaterialID: "ebdab98afedcf80c9c331ea0a533241048852d7b52ce51c050440e9e71b6fab4", LastUsedAt: json.RawMessage(`null`)},
			{KeyID: "c0ffee00-5a1e-4b0b-9a7e-0000000000aa", Alias: "alias/exposed", Outcome: "rotated", Completion: "complete", CompletedAt: &completed},
			{KeyID: "c0ffee00-5a1e-4b0b-9a7e-0000000000bb", Alias: "alias/slow", Outcome: "rotated", Completion: "pending"},
			{KeyID: "c0ffee00-5a1e-4b0b-9a7e-0000000000cc", Alias: "alias/busy", Outcome: "skipped", Reason: "rotation-in-progress", Stuck: true},
		},
	}
	var b strings.Builder
	if err := WriteTable(&b, r); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	tests := []struct {
		name string
		line int
		want []string
	}{
		{name: "header names the columns", line: 0, want: []string{"ALIAS", "KEY ID", "OUTCOME", "REASON", "USED", "LEFT", "LAST ROTATION", "NEXT DUE"}},
		{name: "rotated row shows budget and dates", line: 1, want: []string{"alias/payments", "rotated", " 3 ", " 7 ", "2026-08-01", "2026-10-30"}},
		{name: "skipped row shows dashes and the state", line: 2, want: []string{"0987dcba", "key-not-enabled", "state Disabled"}},
		{name: "overdue key is marked", line: 3, want: []string{"alias/legacy-billing", "budget-exhausted", "overdue"}},
		{name: "key waiting for its automatic rotation shows when", line: 4, want: []string{"alias/invoices", "automatic-rotation-soon", "next automatic rotation 2026-11-29"}},
		{name: "imported key shows when its material expires and its last use", line: 5, want: []string{"alias/partner-byok", "material expires 2027-05-29", "last used 2026-11-20"}},
		{name: "key waiting for its replicas shows the staged material", line: 6, want: []string{"alias/partner-global", "material staged ebdab98afedc…", "never used"}},
		{name: "incident rotation seen complete shows when", line: 7, want: []string{"alias/exposed", "new material current 06:01:02"}},
		{name: "incident rotation not yet complete says so", line: 8, want: []string{"alias/slow", "new material pending"}},
		{name: "stuck rotation is marked", line: 9, want: []string{"alias/busy", "stuck"}},
		{name: "summary line counts and times the run", line: 10, want: []string{"scheduled: 4 candidates, 1 rotated", "3 skipped", "0 deferred, 1 overdue", "key-not-enabled 1", "in 250ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, w := range tt.want {
				if !strings.Contains(lines[tt.line], w) {
					t.Errorf("line %d %q lacks %q", tt.line, lines[tt.line], w)
				}
			}
		})
	}
	t.Run("columns are aligned", func(t *testing.T) {
		col := strings.Index(lines[0], "OUTCOME")
		for _, l := range lines[1:3] {
			if !strings.HasPrefix(l[col:], "rotated") && !strings.HasPrefix(l[col:], "skipped") {
				t.Errorf("OUTCOME column not at %d in %q", col, l)
			}
		}
	})
}

func TestOutputLines(t *testing.T) {
	o := newOutput(nil)
	_, _ = o.Write([]byte("one\ntw"))
	if got := o.Lines(); !slices.Equal(got, []string{"one"}) {
		t.Fatalf("Lines = %q, want only the complete line", got)
	}
	_, _ = o.Write([]byte("o\n"))
	if got := o.Lines(); !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("Lines = %q", got)
	}
	if !o.WaitContains(t.Context(), "two") {
		t.Fatal("WaitContains did not find written text")
	}
}

func TestStopEndsTheWholeGroup(t *testing.T) {
	tests := []struct {
		name   string
		script string
	}{
		{name: "a child that exits on SIGTERM stops with its grandchild", script: `sleep 60 & echo $!; wait`},
		{name: "a child ignoring SIGTERM is killed with its grandchild", script: `trap "" TERM; sleep 60 & echo $!; wait; wait`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := startProcess("sh", "/bin/sh", []string{"-c", tt.script}, baseEnv(), "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if !p.Stdout.WaitContains(t.Context(), "\n") {
				t.Fatal("no grandchild pid")
			}
			grandchild, err := strconv.Atoi(strings.TrimSpace(p.Stdout.String()))
			if err != nil {
				t.Fatal(err)
			}
			p.Stop(200 * time.Millisecond)
			if !p.Exited() {
				t.Fatal("process still running after Stop")
			}
			// The grandchild, a zombie at worst until init reaps it, must
			// have been signalled: poll until it is gone.
			for processAlive(grandchild) && !isZombie(grandchild) {
				select {
				case <-t.Context().Done():
					t.Fatalf("grandchild %d survived Stop", grandchild)
				case <-time.After(10 * time.Millisecond):
				}
			}
		})
	}
}

// isZombie reports whether pid has exited but is not reaped yet.
func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || strings.HasPrefix(s[i+1:], " Z")
}

func TestFreeAddrNeverRepeats(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		a, err := FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(a, "127.0.0.1:") || seen[a] {
			t.Fatalf("FreeAddr = %s (seen before: %v)", a, seen[a])
		}
		seen[a] = true
	}
}

func TestMergeEnvOverridesAndAdds(t *testing.T) {
	got := mergeEnv([]string{"A=1", "B=2"}, map[string]string{"B": "3", "C": "4"})
	slices.Sort(got)
	if want := []string{"A=1", "B=3", "C=4"}; !slices.Equal(got, want) {
		t.Fatalf("mergeEnv = %q, want %q", got, want)
	}
}

func TestBaseEnvCarriesNoAWSSettings(t *testing.T) {
	t.Setenv("AWS_PROFILE", "prod")
	t.Setenv("AWS_ENDPOINT_URL_KMS", "https://kms.us-east-1.amazonaws.com")
	for _, kv := range baseEnv() {
		if strings.HasPrefix(kv, "AWS_PROFILE=") || strings.HasPrefix(kv, "AWS_ENDPOINT_URL") {
			t.Fatalf("baseEnv leaks %s", kv)
		}
	}
}

func TestFindRootFindsTheModule(t *testing.T) {
	root, err := FindRoot("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "tools", "harness")); err != nil {
		t.Fatalf("FindRoot = %s, not the module root: %v", root, err)
	}
	if _, err := FindRoot(os.TempDir()); err == nil {
		t.Fatal("FindRoot outside the module succeeded")
	}
}

func TestOwnsListenerTellsOurListenerFromAnother(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	tests := []struct {
		name      string
		pid       int
		wantOwned bool
	}{
		{name: "this process owns its listener", pid: os.Getpid(), wantOwned: true},
		{name: "init does not own it", pid: 1, wantOwned: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			owned, known := ownsListener(tt.pid, port)
			if !known && tt.pid == os.Getpid() {
				t.Fatal("/proc could not tell for our own process")
			}
			if known && owned != tt.wantOwned {
				t.Fatalf("owned = %v, want %v", owned, tt.wantOwned)
			}
		})
	}
}
