package conformance

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu/emutest"
)

// table is testdata/recorded.json (see the package comment for the format).
type table struct {
	Cases []recordedCase `json:"cases"`
}

type recordedCase struct {
	Name     string   `json:"name"`
	Source   string   `json:"source"`
	Recorded string   `json:"recorded"`
	Covers   []string `json:"covers"`
	Options  options  `json:"options"`
	Steps    []step   `json:"steps"`
}

type options struct {
	RotationDelay string `json:"rotationDelay"`
	MaterialDelay string `json:"materialDelay"`
	ReplicaDelay  string `json:"replicaDelay"`
	OnDemandLimit int    `json:"onDemandLimit"`
}

type step struct {
	Call   string            `json:"call"`
	Region string            `json:"region"`
	Input  json.RawMessage   `json:"input"`
	Repeat int               `json:"repeat"`
	Expect expectation       `json:"expect"`
	Save   json.RawMessage   `json:"save"` // {"var": "path"} for calls, "var" for wrap/append
	Wrap   *wrapStep         `json:"wrap"`
	Append map[string]string `json:"append"`
	Adv    string            `json:"advance"`
}

type expectation struct {
	Status    int               `json:"status"`
	Code      string            `json:"code"`
	Message   *string           `json:"message"`
	NoMessage bool              `json:"noMessage"`
	Fields    map[string]string `json:"fields"`
	Not       map[string]string `json:"not"`
	Absent    []string          `json:"absent"`
}

type wrapStep struct {
	PublicKey string `json:"publicKey"`
	Algorithm string `json:"algorithm"`
	Material  string `json:"material"`
	Kind      string `json:"kind"`
}

const account = "111122223333"

func loadTable(t *testing.T) table {
	t.Helper()
	b, err := os.ReadFile("testdata/recorded.json")
	if err != nil {
		t.Fatal(err)
	}
	var tb table
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tb); err != nil {
		t.Fatalf("testdata/recorded.json: %v", err)
	}
	return tb
}

// TestRecordedAWSBehaviours replays every case of the table against the emulator.
func TestRecordedAWSBehaviours(t *testing.T) {
	tb := loadTable(t)
	if len(tb.Cases) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range tb.Cases {
		t.Run(c.Name, func(t *testing.T) {
			if c.Source == "" || c.Recorded == "" {
				t.Fatal("a case must name its source recording and date")
			}
			newRun(t, c.Options).play(c.Steps)
		})
	}
}

// knownDifferences names the differences between the emulator and AWS the
// recordings showed; every one must be covered by a case ("covers").
var knownDifferences = []string{
	"rotate-answers-key-arn",             // RotateKeyOnDemand's KeyId is the key ARN
	"state-before-spec",                  // a disabled RSA_4096 key is DisabledException
	"rotate-imported-without-material",   // "<arn> is pending import."
	"rotate-imported-nothing-staged",     // "No available key material pending rotation …"
	"import-while-material-pending",      // "New key material (id: …) cannot be imported …"
	"encrypt-before-import",              // "<arn> is pending import."
	"expiration-model-after-import-only", // and gone after the material is deleted
	"quoted-invalid-key-id",              // "Invalid keyId 'fake-key-id'"
	"other-region-arn",                   // "Invalid arn <region>"
	"unsupported-spec-no-message",        // UnsupportedOperationException without a message
	"invalid-ciphertext-no-message",      // InvalidCiphertextException without a message
	"limit-message",                      // the lifetime limit's words
	"two-phase-completion",               // status clears first, material about a minute later
	"replica-starts-creating",            // KeyState Creating, Enabled false
}

// TestTableCoversEveryKnownDifference keeps the table honest: each known
// difference has at least one case, and cases cover nothing else by that name.
func TestTableCoversEveryKnownDifference(t *testing.T) {
	covered := map[string]bool{}
	known := map[string]bool{}
	for _, d := range knownDifferences {
		known[d] = true
	}
	for _, c := range loadTable(t).Cases {
		for _, d := range c.Covers {
			if !known[d] {
				t.Errorf("case %q covers %q, which is not a known difference", c.Name, d)
			}
			covered[d] = true
		}
	}
	for _, d := range knownDifferences {
		if !covered[d] {
			t.Errorf("no case covers %q", d)
		}
	}
}

type run struct {
	t         *testing.T
	url       string
	mu        sync.Mutex
	now       time.Time
	vars      map[string]string
	materials map[string][]byte
}

func duration(t *testing.T, s string) time.Duration {
	t.Helper()
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("duration %q: %v", s, err)
	}
	return d
}

func newRun(t *testing.T, o options) *run {
	r := &run{t: t, now: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), vars: map[string]string{}, materials: map[string][]byte{}}
	limit := o.OnDemandLimit
	if limit == 0 {
		limit = 25
	}
	s := kmsemu.New(kmsemu.Options{
		Account: account, Now: r.clock, OnDemandLimit: limit,
		RotationDelay: duration(t, o.RotationDelay), MaterialDelay: duration(t, o.MaterialDelay), ReplicaDelay: duration(t, o.ReplicaDelay),
	})
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	r.url = hs.URL
	r.vars["account"] = account
	return r
}

func (r *run) clock() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now
}

func (r *run) play(steps []step) {
	for i, s := range steps {
		where := fmt.Sprintf("step %d", i+1)
		switch {
		case s.Call != "":
			n := s.Repeat
			if n == 0 {
				n = 1
			}
			for j := 0; j < n; j++ {
				r.call(where+" ("+s.Call+")", s)
			}
		case s.Adv != "":
			d := duration(r.t, s.Adv)
			r.mu.Lock()
			r.now = r.now.Add(d)
			r.mu.Unlock()
		case s.Wrap != nil:
			r.wrap(where, s)
		case s.Append != nil:
			blob, err := base64.StdEncoding.DecodeString(r.subst(s.Append["to"], false))
			if err != nil {
				r.t.Fatalf("%s: append to: %v", where, err)
			}
			r.vars[r.saveName(where, s.Save)] = base64.StdEncoding.EncodeToString(append(blob, s.Append["text"]...))
		default:
			r.t.Fatalf("%s: empty step", where)
		}
	}
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`)

// subst replaces ${var} by its saved value (regexp-quoted when quote).
func (r *run) subst(s string, quote bool) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		name := varRef.FindStringSubmatch(m)[1]
		if n, err := strconv.Atoi(strings.TrimPrefix(name, "zeros_")); err == nil && strings.HasPrefix(name, "zeros_") {
			return base64.StdEncoding.EncodeToString(make([]byte, n))
		}
		v, ok := r.vars[name]
		if !ok {
			r.t.Fatalf("variable %s is not saved yet", name)
		}
		if quote {
			return regexp.QuoteMeta(v)
		}
		return v
	})
}

// substJSON replaces ${var} in every string of a JSON value.
func (r *run) substJSON(v any) any {
	switch x := v.(type) {
	case string:
		return r.subst(x, false)
	case map[string]any:
		for k, e := range x {
			x[k] = r.substJSON(e)
		}
	case []any:
		for i, e := range x {
			x[i] = r.substJSON(e)
		}
	}
	return v
}

func (r *run) saveName(where string, raw json.RawMessage) string {
	var name string
	if err := json.Unmarshal(raw, &name); err != nil || name == "" {
		r.t.Fatalf("%s: save must name a variable", where)
	}
	return name
}

func (r *run) call(where string, s step) {
	t := r.t
	body := []byte("{}")
	if len(s.Input) > 0 {
		var in any
		if err := json.Unmarshal(s.Input, &in); err != nil {
			t.Fatalf("%s: input: %v", where, err)
		}
		body, _ = json.Marshal(r.substJSON(in))
	}
	region := s.Region
	if region == "" {
		region = "us-east-1"
	}
	req, _ := http.NewRequest(http.MethodPost, r.url+"/", bytes.NewReader(body))
	req.Header.Set("X-Amz-Target", "TrentService."+s.Call)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/"+region+"/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s: answer is not a JSON object: %q", where, raw)
	}
	ex := s.Expect
	status := ex.Status
	if status == 0 {
		status = 200
	}
	if ex.Code != "" && status == 200 {
		status = 400
	}
	if resp.StatusCode != status {
		t.Fatalf("%s: HTTP %d %s, want %d", where, resp.StatusCode, raw, status)
	}
	code, _ := out["__type"].(string)
	if code != ex.Code {
		t.Fatalf("%s: error code %q, want %q (%s)", where, code, ex.Code, raw)
	}
	msg, hasMsg := out["message"]
	if ex.NoMessage && hasMsg {
		t.Fatalf("%s: answer has a message %q; AWS sends none", where, msg)
	}
	if ex.Message != nil {
		if s, _ := msg.(string); !r.match(*ex.Message, s) {
			t.Fatalf("%s: message %q, want %s", where, s, r.describe(*ex.Message))
		}
	}
	for path, want := range ex.Fields {
		v, ok := lookup(out, path)
		if !ok {
			t.Fatalf("%s: %s is missing from %s", where, path, raw)
		}
		if got := text(v); !r.match(want, got) {
			t.Fatalf("%s: %s = %s, want %s", where, path, got, r.describe(want))
		}
	}
	for path, unwanted := range ex.Not {
		if v, ok := lookup(out, path); ok && r.match(unwanted, text(v)) {
			t.Fatalf("%s: %s = %s, want anything but %s", where, path, text(v), r.describe(unwanted))
		}
	}
	for _, path := range ex.Absent {
		if v, ok := lookup(out, path); ok {
			t.Fatalf("%s: %s is %s, want it absent", where, path, text(v))
		}
	}
	if len(s.Save) > 0 {
		var save map[string]string
		if err := json.Unmarshal(s.Save, &save); err != nil {
			t.Fatalf("%s: save: %v", where, err)
		}
		for name, path := range save {
			v, ok := lookup(out, path)
			if !ok {
				t.Fatalf("%s: cannot save %s: %s is missing from %s", where, name, path, raw)
			}
			r.vars[name] = text(v)
		}
	}
}

// match compares got with want: literally after ${var} substitution, or, when
// want starts with "~", as an anchored regular expression in which ${var}
// stands for the saved value literally.
func (r *run) match(want, got string) bool {
	if re, ok := strings.CutPrefix(want, "~"); ok {
		return regexp.MustCompile("^(?:" + r.subst(re, true) + ")$").MatchString(got)
	}
	return got == r.subst(want, false)
}

func (r *run) describe(want string) string {
	if re, ok := strings.CutPrefix(want, "~"); ok {
		return "/" + r.subst(re, true) + "/"
	}
	return strconv.Quote(r.subst(want, false))
}

func lookup(v any, path string) (any, bool) {
	for _, part := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			e, ok := x[part]
			if !ok {
				return nil, false
			}
			v = e
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

func text(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func (r *run) wrap(where string, s step) {
	t := r.t
	w := s.Wrap
	material, ok := r.materials[w.Material]
	if !ok {
		material = newMaterial(t, w.Kind)
		r.materials[w.Material] = material
	}
	pub, err := base64.StdEncoding.DecodeString(r.subst(w.PublicKey, false))
	if err != nil {
		t.Fatalf("%s: public key: %v", where, err)
	}
	wrapped, err := emutest.WrapKeyMaterial(pub, types.AlgorithmSpec(w.Algorithm), material)
	if err != nil {
		t.Fatalf("%s: wrap: %v", where, err)
	}
	r.vars[r.saveName(where, s.Save)] = base64.StdEncoding.EncodeToString(wrapped)
}

func newMaterial(t *testing.T, kind string) []byte {
	t.Helper()
	random := func(n int) []byte {
		b := make([]byte, n)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	var priv any
	var err error
	switch {
	case kind == "" || kind == "symmetric":
		return random(32)
	case strings.HasPrefix(kind, "bytes:"):
		n, err := strconv.Atoi(strings.TrimPrefix(kind, "bytes:"))
		if err != nil {
			t.Fatalf("material kind %q", kind)
		}
		return random(n)
	case kind == "pkcs8:RSA_2048":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case kind == "pkcs8:RSA_4096":
		priv, err = rsa.GenerateKey(rand.Reader, 4096)
	case kind == "pkcs8:ECC_NIST_P256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		t.Fatalf("material kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
