package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kms-rotator/kms-rotator/tools/harness"
)

// proxy sits between a function and kmslocal and lets a test misbehave on
// one operation where the emulator's flags would hit every call alike: it
// counts each operation's requests (named by X-Amz-Target) and asks rule
// what to do with each.
type proxy struct {
	target string
	rule   func(op string, n int, body []byte) step
	// stop is closed by the test's cleanup, so a held request ends.
	stop chan struct{}

	mu    sync.Mutex
	calls map[string]int
}

// step is what the proxy does with one request.
type step struct {
	// answer, when set, replaces kmslocal's answer: a JSON 1.1 error.
	answer *awsError
	// forward sends the request to kmslocal even when answer is set, so
	// the change is applied and only the response is lost.
	forward bool
	// hold delays the answer (cut short when the caller gives up).
	hold time.Duration
}

// awsError is an AWS JSON 1.1 error response.
type awsError struct {
	status  int
	code    string
	message string
}

// internalError is KMS's server-side failure, HTTP 500.
var internalError = &awsError{status: http.StatusInternalServerError, code: "KMSInternalException", message: "injected by the e2e proxy"}

// newProxy starts a proxy to target; rule nil forwards everything.
func newProxy(t *testing.T, target string, rule func(op string, n int, body []byte) step) (*proxy, string) {
	t.Helper()
	p := &proxy{target: target, rule: rule, stop: make(chan struct{}), calls: map[string]int{}}
	srv := httptest.NewServer(p)
	t.Cleanup(func() {
		close(p.stop)
		srv.Close()
	})
	return p, srv.URL
}

// count returns how many requests of op the proxy has seen.
func (p *proxy) count(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[op]
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	target := r.Header.Get("X-Amz-Target")
	op := target[strings.LastIndexByte(target, '.')+1:]
	p.mu.Lock()
	p.calls[op]++
	n := p.calls[op]
	p.mu.Unlock()
	s := step{forward: true}
	if p.rule != nil {
		s = p.rule(op, n, body)
	}
	status, header, out := 0, http.Header{}, []byte(nil)
	if s.forward || s.answer == nil {
		var err error
		if status, header, out, err = harness.Forward(r, p.target, body); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
	}
	if s.answer != nil {
		status = s.answer.status
		header = http.Header{"Content-Type": {"application/x-amz-json-1.1"}, "X-Amzn-Errortype": {s.answer.code}}
		out = []byte(`{"__type":"` + s.answer.code + `","message":"` + s.answer.message + `"}`)
	}
	if s.hold > 0 {
		select {
		case <-time.After(s.hold):
		case <-r.Context().Done():
			return
		case <-p.stop:
			return
		}
	}
	for k, v := range header {
		if k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(status)
	_, _ = w.Write(out)
}
