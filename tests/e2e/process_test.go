package e2e

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kms-rotator/kms-rotator/tools/harness"
	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

// gone reports whether pid has exited (a zombie waiting for its reaper
// counts: it runs no code).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || strings.HasPrefix(s[i+1:], " Z")
}

// waitGone waits until every pid has exited; the test's deadline bounds it.
func waitGone(t *testing.T, pids []int) {
	t.Helper()
	for _, pid := range pids {
		for !gone(pid) {
			select {
			case <-t.Context().Done():
				t.Fatalf("process %d still running", pid)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// TestConcurrentFunctionsRunAndStopCleanly starts two functions against one
// emulator, as two Lambda execution environments, invokes both at once, and
// checks that Close leaves no RIE or bootstrap running.
func TestConcurrentFunctionsRunAndStopCleanly(t *testing.T) {
	env, err := harness.Start(t.Context(), harness.Options{
		KMSLocal:  harness.KMSLocalOptions{Fleet: "events/fleet.json", Args: []string{"-quiet"}},
		Functions: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Close() })
	payload, err := env.ReadFile("events/plan.json")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	reports := make([]*oracle.Report, len(env.Functions))
	errs := make([]error, len(env.Functions))
	for i, f := range env.Functions {
		wg.Go(func() { reports[i], _, errs[i] = f.InvokeReport(t.Context(), payload) })
	}
	wg.Wait()
	var pids []int
	for i, f := range env.Functions {
		if errs[i] != nil {
			t.Fatalf("function %d: %v", i, errs[i])
		}
		if reports[i].Summary.Candidates == 0 || reports[i].RunID == reports[1-i].RunID {
			t.Errorf("function %d: %s (run %s)", i, harness.SummaryLine(reports[i]), reports[i].RunID)
		}
		if got := f.Pids(); len(got) != 2 {
			t.Errorf("function %d: pids %v, want the RIE and its bootstrap", i, got)
		}
		pids = append(pids, f.Pids()...)
	}
	pids = append(pids, env.KMS.Proc.Pid())
	if err := env.Close(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pids)
}

// TestSweepRetriedAfterACrashRotatesEachDueKeyOnce kills the function in the
// middle of a scheduled sweep (SIGKILL to the RIE and the bootstrap, like a
// lost execution environment), then runs the sweep again in a new one: every
// due key ends with exactly one new rotation.
func TestSweepRetriedAfterACrashRotatesEachDueKeyOnce(t *testing.T) {
	const due = 8
	fleet := `[{"alias":"alias/due","count":` + strconv.Itoa(due) + `,"createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}}]`
	env := harness.StartTB(t, harness.Options{
		KMSLocal: harness.KMSLocalOptions{FleetJSON: fleet, Args: completeAtOnce},
		// One rotation at a time, three a second: the crash lands
		// mid-sweep even when this machine is slow to notice the first.
		Function: harness.FunctionOptions{Env: map[string]string{"ROTATOR_ROTATE_RPS": "3", "ROTATOR_CONCURRENCY": "1"}},
	})
	payload, err := env.ReadFile("events/scheduled.json")
	if err != nil {
		t.Fatal(err)
	}
	start := snapshot(t, env.KMS)
	crashed := env.Function
	// Lambda retries a failed asynchronous invocation with its request ID
	// (the retry takes over the crashed run's sweep lease).
	id := harness.NewRequestID()
	done := make(chan error, 1)
	go func() {
		_, err := crashed.CallAs(t.Context(), id, payload)
		done <- err
	}()
	// Crash after the first rotation reached the emulator.
	for {
		st, err := env.KMS.Stats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.Op("RotateKeyOnDemand").Calls > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("sweep finished before the crash: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	pids := crashed.Pids()
	crashed.Kill()
	if err := <-done; err == nil {
		t.Fatal("the crashed invocation answered")
	}
	waitGone(t, pids)
	mid := snapshot(t, env.KMS)
	rotatedBeforeCrash := 0
	for arn, s := range mid {
		rotatedBeforeCrash += s.Started() - start[arn].Started()
	}
	if rotatedBeforeCrash > due {
		t.Fatalf("%d rotations before the crash for %d due keys", rotatedBeforeCrash, due)
	}

	retry, err := env.AddFunction(t.Context(), harness.FunctionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := retry.InvokeReportAs(t.Context(), id, payload)
	if err != nil {
		t.Fatalf("retried sweep: %v", err)
	}
	if r.Summary.Rotated != due-rotatedBeforeCrash {
		t.Errorf("retried sweep: %s; want %d rotated", harness.SummaryLine(r), due-rotatedBeforeCrash)
	}
	end := snapshot(t, env.KMS)
	report(t, "emulator state since the crash", oracle.CheckRotations(mid, end, r))
	for arn, s := range end {
		if n := s.Started() - start[arn].Started(); n != 1 {
			t.Errorf("%s: %d new on-demand rotations over crash and retry, want 1", arn, n)
		}
	}
}
