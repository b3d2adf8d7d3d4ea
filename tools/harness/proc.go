package harness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// StopGrace is how long Close waits after SIGTERM before it sends SIGKILL.
// kmslocal and the RIE both stop within about a second on SIGTERM.
const StopGrace = 3 * time.Second

// Output is the captured output of one stream of a process. It is safe for
// concurrent use; writers append, readers take snapshots.
type Output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
	tee     io.Writer
}

func newOutput(tee io.Writer) *Output {
	return &Output{changed: make(chan struct{}), tee: tee}
}

// Write appends p (and copies it to the tee writer, if any).
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	o.buf.Write(p)
	close(o.changed)
	o.changed = make(chan struct{})
	tee := o.tee
	o.mu.Unlock()
	if tee != nil {
		_, _ = tee.Write(p)
	}
	return len(p), nil
}

// Bytes returns a copy of everything captured so far.
func (o *Output) Bytes() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return bytes.Clone(o.buf.Bytes())
}

// String returns everything captured so far.
func (o *Output) String() string { return string(o.Bytes()) }

// Lines returns the complete lines captured so far, without newlines.
func (o *Output) Lines() []string {
	b := o.Bytes()
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	} else {
		return nil
	}
	return strings.Split(string(b), "\n")
}

// Len returns the number of bytes captured so far.
func (o *Output) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Len()
}

// WaitFor blocks until cond holds for the captured bytes or ctx ends, and
// reports whether cond held. cond must not keep or modify its argument.
func (o *Output) WaitFor(ctx context.Context, cond func([]byte) bool) bool {
	return o.waitFor(ctx, nil, cond)
}

// WaitContains blocks until the captured output contains s or ctx ends,
// and reports whether it does.
func (o *Output) WaitContains(ctx context.Context, s string) bool {
	return o.WaitFor(ctx, func(b []byte) bool { return bytes.Contains(b, []byte(s)) })
}

// waitFor is WaitFor that also gives up when done is closed.
func (o *Output) waitFor(ctx context.Context, done <-chan struct{}, cond func([]byte) bool) bool {
	for {
		o.mu.Lock()
		ok := cond(o.buf.Bytes())
		ch := o.changed
		o.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-done:
			// One last look: the process may have written and exited.
			o.mu.Lock()
			ok = cond(o.buf.Bytes())
			o.mu.Unlock()
			return ok
		case <-ctx.Done():
			return false
		}
	}
}

// tail returns at most n trailing bytes, for error messages.
func (o *Output) tail(n int) string {
	b := o.Bytes()
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// Process is one child process started by the harness, in its own process
// group so that stopping it stops everything it started.
type Process struct {
	// Name labels the process in errors and logs ("kmslocal", "function").
	Name string
	// Stdout and Stderr capture the process's output streams.
	Stdout, Stderr *Output

	cmd      *exec.Cmd
	done     chan struct{}
	waitErr  error
	stopOnce sync.Once
}

// startProcess starts bin with args and exactly env (nothing inherited, so a
// developer's AWS_PROFILE or AWS_ENDPOINT_URL_KMS cannot leak in and point a
// local run at a real account). tee, if not nil, receives both streams.
func startProcess(name, bin string, args, env []string, dir string, tee io.Writer) (*Process, error) {
	installSignalHandler()
	p := &Process{
		Name:   name,
		Stdout: newOutput(tee),
		Stderr: newOutput(tee),
		done:   make(chan struct{}),
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout = p.Stdout
	cmd.Stderr = p.Stderr
	cmd.SysProcAttr = sysProcAttr()
	// Do not let a forgotten grandchild holding the pipes keep Wait
	// blocked for ever after the child itself exited.
	cmd.WaitDelay = StopGrace
	p.cmd = cmd

	registry.mu.Lock()
	if registry.stopping {
		registry.mu.Unlock()
		return nil, fmt.Errorf("harness: not starting %s: interrupted", name)
	}
	if err := cmd.Start(); err != nil {
		registry.mu.Unlock()
		return nil, fmt.Errorf("harness: start %s: %w", name, err)
	}
	registry.procs[p] = struct{}{}
	registry.mu.Unlock()

	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid returns the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitErr returns the error of the process's Wait (nil for exit status 0);
// it is meaningful only once Done is closed.
func (p *Process) ExitErr() error {
	<-p.done
	return p.waitErr
}

// Stop sends SIGTERM to the process group, waits up to grace, then sends
// SIGKILL; it also stops any process group the child created for its own
// children (the RIE puts the bootstrap in a group of its own). Stop is
// idempotent and returns once the process has exited.
func (p *Process) Stop(grace time.Duration) {
	p.stop(syscall.SIGTERM, grace)
}

// Kill ends the process group with SIGKILL at once, like a crash.
func (p *Process) Kill() {
	p.stop(syscall.SIGKILL, 0)
}

func (p *Process) stop(first syscall.Signal, grace time.Duration) {
	p.stopOnce.Do(func() {
		defer func() {
			registry.mu.Lock()
			delete(registry.procs, p)
			registry.mu.Unlock()
		}()
		if p.Exited() {
			return
		}
		pid := p.Pid()
		children := childPids(pid)
		_ = signalGroup(pid, first)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = signalGroup(pid, syscall.SIGKILL)
			<-p.done
		}
		// A child that outlived its parent (normally none: the RIE
		// stops its runtime on SIGTERM) is killed with its group.
		for _, c := range children {
			if processAlive(c) {
				_ = signalGroup(c, syscall.SIGKILL)
			}
		}
	})
}

// registry tracks live processes so a SIGINT/SIGTERM of the parent (Ctrl-C
// in `make demo`, an interrupted `go test`) stops them: they live in their
// own process groups and would not see the terminal's signal.
var registry = struct {
	mu        sync.Mutex
	procs     map[*Process]struct{}
	installed bool
	stopping  bool
}{procs: map[*Process]struct{}{}}

func installSignalHandler() {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if registry.installed {
		return
	}
	registry.installed = true
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-ch
		fmt.Fprintf(os.Stderr, "harness: %v: stopping the processes it started\n", sig)
		StopAll()
		if callerHandlesSignals.Load() {
			return
		}
		// Die of the same signal, as if we had not caught it.
		signal.Reset(os.Interrupt, syscall.SIGTERM)
		if s, ok := sig.(syscall.Signal); ok {
			_ = syscall.Kill(os.Getpid(), s)
		}
		time.Sleep(time.Second)
		os.Exit(130)
	}()
}

var callerHandlesSignals atomic.Bool

// CallerHandlesSignals tells the harness that the program handles SIGINT
// and SIGTERM itself (signal.NotifyContext, say): on those signals the
// harness still stops every process it started, but leaves exiting to the
// program instead of ending it with the same signal.
func CallerHandlesSignals() { callerHandlesSignals.Store(true) }

// StopAll stops every process the harness started and still runs, and
// refuses to start new ones. The signal handler calls it; a program may
// call it from its own shutdown path.
func StopAll() {
	registry.mu.Lock()
	registry.stopping = true
	procs := make([]*Process, 0, len(registry.procs))
	for p := range registry.procs {
		procs = append(procs, p)
	}
	registry.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { p.Stop(StopGrace) })
	}
	wg.Wait()
}

// baseEnv is the environment every child starts from: enough to run, and
// nothing that configures AWS.
func baseEnv() []string {
	env := []string{
		// The SDK must not read the developer's ~/.aws files: a profile
		// there could name a region, an endpoint or credentials.
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
		"AWS_EC2_METADATA_DISABLED=true",
	}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "TZ", "GOCOVERDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}
