package harness

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

// InvokePath is the Runtime Interface Emulator's invoke path: the Lambda
// Invoke API path for a function named "function", so `aws lambda invoke
// --endpoint-url http://ADDR --function-name function` reaches it too.
const InvokePath = "/2015-03-31/functions/function/invocations"

// FunctionOptions configure StartFunction.
type FunctionOptions struct {
	// Endpoint is AWS_ENDPOINT_URL, normally KMSLocal.URL. Required.
	Endpoint string
	// Region is AWS_REGION; empty = Region.
	Region string
	// Name is AWS_LAMBDA_FUNCTION_NAME (the last part of the invoked
	// function ARN); empty = "kms-rotator".
	Name string
	// Timeout is AWS_LAMBDA_FUNCTION_TIMEOUT, rounded up to whole seconds;
	// it sets the handler's context deadline. 0 = 60s.
	Timeout time.Duration
	// Env adds or overrides environment variables of the function, e.g.
	// ROTATOR_INTERVAL_DAYS. AWS_LAMBDA_MAX_CONCURRENCY is refused: it
	// switches the RIE to another mode.
	Env map[string]string
	// Log, if not nil, receives the RIE's and the function's output as it
	// runs.
	Log io.Writer
	// StartTimeout bounds the wait for the RIE to listen; 0 = 30s.
	StartTimeout time.Duration
}

// Function is one running "Lambda function": the Runtime Interface Emulator
// with the bootstrap under it. The bootstrap starts (cold start) on the
// first invocation. Invocations of one Function are serialised, as one
// Lambda execution environment handles one event at a time; start several
// Functions for concurrent runs.
type Function struct {
	// URL is the invoke URL (http://ADDR/2015-03-31/functions/function/invocations).
	URL string
	// Addr is the RIE's address; RuntimeAPIAddr is the Runtime API's.
	Addr, RuntimeAPIAddr string
	// Name is the function name in the invoked function ARN.
	Name string
	// Proc is the RIE process. Proc.Stdout holds the function's log lines
	// (the RIE forwards both streams of the bootstrap there) framed by the
	// RIE's START/END/REPORT lines; Proc.Stderr holds the RIE's own log.
	Proc *Process

	mu sync.Mutex // held while an invocation runs
}

// callEnded is closed and replaced whenever an invocation of any Function
// ends, so Env.InvokeFree can wait for a function to free up.
var callEnded = struct {
	mu sync.Mutex
	ch chan struct{}
}{ch: make(chan struct{})}

func callEndedSignal() <-chan struct{} {
	callEnded.mu.Lock()
	defer callEnded.mu.Unlock()
	return callEnded.ch
}

// release ends f's invocation: f is free again, and InvokeFree learns so.
func (f *Function) release() {
	f.mu.Unlock()
	callEnded.mu.Lock()
	close(callEnded.ch)
	callEnded.ch = make(chan struct{})
	callEnded.mu.Unlock()
}

// StartFunction starts the RIE (always on 127.0.0.1, both addresses given:
// without them it binds 0.0.0.0:8080) with the bootstrap, and waits until it
// listens.
func StartFunction(ctx context.Context, bins *Binaries, opts FunctionOptions) (*Function, error) {
	if opts.Endpoint == "" {
		return nil, fmt.Errorf("harness: function: Endpoint (AWS_ENDPOINT_URL) is required")
	}
	if _, ok := opts.Env["AWS_LAMBDA_MAX_CONCURRENCY"]; ok {
		return nil, fmt.Errorf("harness: function: AWS_LAMBDA_MAX_CONCURRENCY switches the RIE to managed-instances mode; leave it unset")
	}
	region := cmp.Or(opts.Region, Region)
	name := cmp.Or(opts.Name, "kms-rotator")
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	env := append(baseEnv(),
		"AWS_REGION="+region,
		"AWS_ACCESS_KEY_ID="+AccessKeyID,
		"AWS_SECRET_ACCESS_KEY="+SecretAccessKey,
		"AWS_ENDPOINT_URL="+opts.Endpoint,
		"AWS_LAMBDA_FUNCTION_NAME="+name,
		"AWS_LAMBDA_FUNCTION_TIMEOUT="+strconv.Itoa(int(math.Ceil(timeout.Seconds()))),
	)
	env = mergeEnv(env, opts.Env)

	startTimeout := opts.StartTimeout
	if startTimeout == 0 {
		startTimeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()

	var lastErr error
	for range 3 {
		addr, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		apiAddr, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		args := []string{
			"--runtime-interface-emulator-address", addr,
			"--runtime-api-address", apiAddr,
			bins.Bootstrap,
		}
		p, err := startProcess("function "+name, bins.RIE, args, env, bins.Root, opts.Log)
		if err != nil {
			return nil, err
		}
		f := &Function{URL: "http://" + addr + InvokePath, Addr: addr, RuntimeAPIAddr: apiAddr, Name: name, Proc: p}
		// Both ports: the RIE serves invokes and the Runtime API from
		// the start, and dies if either address is taken.
		lastErr = waitListening(ctx, p, addr)
		if lastErr == nil {
			lastErr = waitListening(ctx, p, apiAddr)
		}
		if lastErr == nil && !p.Exited() {
			return f, nil
		}
		if lastErr == nil {
			lastErr = fmt.Errorf("harness: %s exited right after start: %v\n%s", p.Name, p.ExitErr(), p.Stderr.tail(2000)+p.Stdout.tail(2000))
		}
		p.Stop(StopGrace)
		if !addrInUse(p) {
			break
		}
	}
	return nil, lastErr
}

// Invocation is one invocation's outcome as the caller of Lambda sees it,
// plus the function's log lines for it.
type Invocation struct {
	// RequestID is the Lambda request ID (sent as X-Amzn-RequestId, so
	// the RIE uses it and the function logs it).
	RequestID string
	// Payload is what was sent; Raw is the response body.
	Payload, Raw []byte
	// StatusCode is the RIE's HTTP status (200 also for handler errors).
	StatusCode int
	// Err is the invocation error, if any: *HandlerError or *InvokeError.
	Err error
	// Logs are the function's output lines for this request (between the
	// RIE's START and END lines): slog JSON lines, EMF lines, and whatever
	// else it printed.
	Logs []string
	// Duration is the wall time of the HTTP invoke.
	Duration time.Duration
	// Function is the function that served it.
	Function *Function
}

// HandlerError is an error returned by the handler: Lambda (and the RIE)
// answer HTTP 200 with {"errorMessage":…,"errorType":…}.
type HandlerError struct {
	Message string `json:"errorMessage"`
	Type    string `json:"errorType"`
}

// Error implements error.
func (e *HandlerError) Error() string {
	return fmt.Sprintf("handler error (%s): %s", e.Type, e.Message)
}

// InvokeError is any other failed invocation: the RIE answered a status
// other than 200 (e.g. the bootstrap crashed during init), or the function
// timed out, or the body was not JSON.
type InvokeError struct {
	StatusCode int
	Body       string
}

// Error implements error.
func (e *InvokeError) Error() string {
	return fmt.Sprintf("invoke failed (HTTP %d): %s", e.StatusCode, truncate(e.Body, 2000))
}

// Timeout reports whether the RIE cut the invocation off at the function
// timeout.
func (e *InvokeError) Timeout() bool {
	return strings.HasPrefix(e.Body, "Task timed out")
}

// Invoke sends payload and returns the response body; a handler error is
// returned as *HandlerError, other failures as *InvokeError or a transport
// error.
func (f *Function) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	inv, err := f.Call(ctx, payload)
	if inv == nil {
		return nil, err
	}
	return inv.Raw, err
}

// Call invokes the function and returns the invocation with its logs. The
// returned error is inv.Err (or a transport error, with inv nil).
func (f *Function) Call(ctx context.Context, payload []byte) (*Invocation, error) {
	return f.CallAs(ctx, newRequestID(), payload)
}

// NewRequestID returns a fresh Lambda request ID, for CallAs.
func NewRequestID() string { return newRequestID() }

// CallAs is Call with the given Lambda request ID: Lambda retries an
// asynchronous invocation that failed (a crash, a timeout) with the same
// request ID, so a test re-sends a crashed invocation with its ID.
func (f *Function) CallAs(ctx context.Context, requestID string, payload []byte) (*Invocation, error) {
	f.mu.Lock()
	defer f.release()
	return f.call(ctx, requestID, payload)
}

// call is CallAs with f.mu held.
func (f *Function) call(ctx context.Context, id string, payload []byte) (*Invocation, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.URL, bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("harness: invoke %s: %w", f.Name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Amzn-RequestId", id)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("harness: invoke %s: %w\n%s", f.Name, err, f.Proc.Stderr.tail(2000))
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("harness: invoke %s: read response: %w", f.Name, err)
	}
	inv := &Invocation{
		RequestID:  id,
		Payload:    payload,
		Raw:        body,
		StatusCode: resp.StatusCode,
		Duration:   time.Since(start),
		Function:   f,
	}
	inv.Err = classify(resp.StatusCode, body)
	inv.Logs = f.logsOf(ctx, id)
	return inv, inv.Err
}

// InvokeReport invokes the function and decodes the report it returns.
func (f *Function) InvokeReport(ctx context.Context, payload []byte) (*oracle.Report, *Invocation, error) {
	return f.InvokeReportAs(ctx, newRequestID(), payload)
}

// InvokeReportAs is InvokeReport with the given Lambda request ID (CallAs).
func (f *Function) InvokeReportAs(ctx context.Context, requestID string, payload []byte) (*oracle.Report, *Invocation, error) {
	inv, err := f.CallAs(ctx, requestID, payload)
	if err != nil {
		return nil, inv, err
	}
	r, err := oracle.Decode(inv.Raw)
	return r, inv, err
}

// EMF returns the invocation's EMF records, in order; an error names the
// first line that claims to be EMF but breaks the specification.
func (inv *Invocation) EMF() ([]oracle.EMF, error) {
	return oracle.ParseEMFLines(inv.Logs)
}

// classify turns an RIE response into nil, *HandlerError or *InvokeError.
func classify(status int, body []byte) error {
	if status != http.StatusOK {
		return &InvokeError{StatusCode: status, Body: string(body)}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		if bytes.HasPrefix(body, []byte("Task timed out")) || !json.Valid(body) {
			return &InvokeError{StatusCode: status, Body: string(body)}
		}
		return nil // a JSON value that is not an object
	}
	_, hasMsg := fields["errorMessage"]
	_, hasType := fields["errorType"]
	if !hasMsg || !hasType {
		return nil
	}
	var he HandlerError
	if err := json.Unmarshal(body, &he); err != nil {
		return &InvokeError{StatusCode: status, Body: string(body)}
	}
	return &he
}

// logsOf returns the function's output lines for request id. The bootstrap
// writes to the same pipe as the RIE and finishes writing before it posts
// its response, so once the RIE's END line is in, so are all of them. The
// wait is bounded so a crashed RIE cannot hang a test.
func (f *Function) logsOf(ctx context.Context, id string) []string {
	start := []byte("START RequestId: " + id + " ")
	end := []byte("END RequestId: " + id + "\n")
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	f.Proc.Stdout.WaitFor(wctx, func(b []byte) bool { return bytes.Contains(b, end) })
	var lines []string
	in := false
	for _, l := range f.Proc.Stdout.Lines() {
		switch {
		case strings.HasPrefix(l, string(start)):
			in = true
		case l+"\n" == string(end):
			return lines
		case in:
			lines = append(lines, l)
		}
	}
	return lines
}

// Pids returns the process IDs of the RIE and of its children (the
// bootstrap, once the first invocation started it), so a test can check
// that none survives Close or Kill.
func (f *Function) Pids() []int {
	return append([]int{f.Proc.Pid()}, childPids(f.Proc.Pid())...)
}

// Kill ends the function abruptly (SIGKILL to the RIE and the bootstrap),
// as a crashed or recycled execution environment would end. Use it to test
// a sweep retried after a crash; Close is the graceful stop.
func (f *Function) Kill() {
	for _, c := range childPids(f.Proc.Pid()) {
		_ = signalGroup(c, syscall.SIGKILL)
	}
	f.Proc.Kill()
}

// Close stops the function (SIGTERM, then SIGKILL after StopGrace).
func (f *Function) Close() error {
	f.Proc.Stop(StopGrace)
	return nil
}

// newRequestID returns a random UUID-shaped ID, like Lambda's.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// mergeEnv sets or replaces the variables of add in env.
func mergeEnv(env []string, add map[string]string) []string {
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := add[k]; !ok {
			out = append(out, kv)
		}
	}
	for k, v := range add {
		out = append(out, k+"="+v)
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
