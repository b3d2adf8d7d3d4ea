package kmsemu

import (
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// kmsOperations are the KMS operations the emulator serves, sorted.
func kmsOperations() []operation {
	var ops []operation
	for target, op := range operations {
		if strings.HasPrefix(target, kmsPrefix) {
			ops = append(ops, op)
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].name < ops[j].name })
	return ops
}

// TestKMSQuotasComeFromSettings: every KMS operation the emulator serves
// throttles at settings.KMSRequestQuotas, the table the function paces by,
// except Encrypt and Decrypt, which share KMS's per-Region cryptographic
// quota. A served KMS operation without a row fails here.
func TestKMSQuotasComeFromSettings(t *testing.T) {
	for _, op := range kmsOperations() {
		want, ok := settings.KMSRequestQuotas[op.name]
		switch {
		case op.name == "Encrypt" || op.name == "Decrypt":
			if op.quota != cryptoQuota || ok {
				t.Errorf("%s: quota %v (row in settings: %v), want the shared cryptographic quota and no row", op.name, op.quota, ok)
			}
		case !ok:
			t.Errorf("%s: the emulator serves it but settings.KMSRequestQuotas has no row for it", op.name)
		case op.quota != want:
			t.Errorf("%s: emulator quota %v/s, settings.KMSRequestQuotas %v/s", op.name, op.quota, want)
		}
	}
}

// TestEachKMSOperationThrottlesAtItsQuota sends each KMS operation's quota
// of requests at -quota-scale 1 within one frozen instant, then one more:
// the quota's requests pass the throttle (their empty bodies are then
// refused or answered by the operation) and the next is ThrottlingException.
func TestEachKMSOperationThrottlesAtItsQuota(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	s := New(Options{QuotaScale: 1, Now: func() time.Time { return now }})
	send := func(name string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{}`))
		r.Header.Set("X-Amz-Target", kmsPrefix+name)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	for _, op := range kmsOperations() {
		quota, ok := settings.KMSRequestQuotas[op.name]
		if !ok {
			continue // TestKMSQuotasComeFromSettings names it
		}
		for i := 0; i < int(quota); i++ {
			if w := send(op.name); strings.Contains(w.Body.String(), "ThrottlingException") {
				t.Fatalf("%s: request %d of a quota of %v/s throttled", op.name, i+1, quota)
			}
		}
		if w := send(op.name); !strings.Contains(w.Body.String(), "ThrottlingException") {
			t.Errorf("%s: request %d in one second answered %d %s, want ThrottlingException (quota %v/s)", op.name, int(quota)+1, w.Code, w.Body.String(), quota)
		}
	}
}

// TestDocumentedQuotasAreSettings: docs/kmslocal.md's quota table lists
// every row of settings.KMSRequestQuotas with its figure, and nothing else.
func TestDocumentedQuotasAreSettings(t *testing.T) {
	doc, err := os.ReadFile("../../docs/kmslocal.md")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- quotas: settings.KMSRequestQuotas", "<!-- end quotas -->"
	text := string(doc)
	i, j := strings.Index(text, begin), strings.Index(text, end)
	if i < 0 || j < i {
		t.Fatalf("docs/kmslocal.md has no quota table between %q and %q", begin, end)
	}
	documented := map[string]string{}
	for _, line := range strings.Split(text[i:j], "\n") {
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) != 2 {
			continue
		}
		figure := strings.TrimSpace(cells[0])
		if _, err := strconv.ParseFloat(figure, 64); err != nil {
			continue // the header and its rule
		}
		for _, op := range strings.Split(cells[1], ",") {
			op = strings.TrimSpace(op)
			if prev, dup := documented[op]; dup {
				t.Errorf("%s documented twice (%s and %s)", op, prev, figure)
			}
			documented[op] = figure
		}
	}
	for op, q := range settings.KMSRequestQuotas {
		want := strconv.FormatFloat(q, 'f', -1, 64)
		if got, ok := documented[op]; !ok {
			t.Errorf("%s (%s/s in settings.KMSRequestQuotas) is missing from docs/kmslocal.md's quota table", op, want)
		} else if got != want {
			t.Errorf("%s: docs/kmslocal.md says %s/s, settings.KMSRequestQuotas %s/s", op, got, want)
		}
	}
	for op, figure := range documented {
		if _, ok := settings.KMSRequestQuotas[op]; !ok {
			t.Errorf("docs/kmslocal.md's quota table lists %s (%s/s), which settings.KMSRequestQuotas has no row for", op, figure)
		}
	}
}
