// Package kmsemu is an in-memory emulator of AWS KMS, of the Resource Groups
// Tagging API GetResources operation, of the EventBridge PutEvents
// operation and of the AWS Organizations operations that list an
// organization's accounts (organizations.go). It speaks the real AWS JSON 1.1 wire protocol (POST /,
// X-Amz-Target, epoch-second timestamps, {"__type": …} errors), so the
// unmodified aws-sdk-go-v2 clients, the AWS CLI and any other AWS SDK work
// against it through a custom endpoint URL.
//
// It models what kms-rotator depends on, as KMS documents it: key IDs and
// ARNs, aliases, key specs, origins, managers and states, multi-Region
// primaries and replicas, tags, pagination markers, rotation history,
// on-demand rotations that stay in progress for a while and switch key
// material a while later, the lifetime limit on on-demand rotations, imported
// key material (GetParametersForImport, ImportKeyMaterial,
// DeleteImportedKeyMaterial; imports.go) and its rotation, GetKeyLastUsage
// fed by its own Encrypt and Decrypt, per-operation request quotas and
// injectable faults (latency, internal errors, responses lost after the
// change was applied).
// PutEvents validates entries as EventBridge documents and records every
// accepted one, so tests can read back the events a run published
// (Server.Events, GET /_kmslocal/events).
//
// The region of a request is taken from the credential scope of its SigV4
// Authorization header, so keys of several regions live in one Server. Keys
// also belong to accounts: STS AssumeRole (sts.go) issues credentials for
// the roles of Options.Roles, and a request signed with them is served for
// the role's account; any other credentials act in Options.Account.
package kmsemu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// Options configures a Server. The zero value is usable: see New for the
// defaults of empty fields.
type Options struct {
	// Account is the AWS account ID in ARNs (default 111122223333).
	Account string
	// Region serves requests that carry no SigV4 credential scope, and is the
	// region of fleet entries without one (default us-east-1).
	Region string
	// RotationDelay is how long an on-demand rotation stays in progress
	// (GetKeyRotationStatus.OnDemandRotationStartDate is set); 0 completes it
	// at once.
	RotationDelay time.Duration
	// MaterialDelay is how long after an on-demand rotation leaves "in
	// progress" its new key material becomes current: DescribeKey's
	// CurrentKeyMaterialId, the KeyMaterialState of the rotation's
	// ListKeyRotations entry (NON_CURRENT until then, listed from the end of
	// RotationDelay) and the material Encrypt uses. AWS clears
	// OnDemandRotationStartDate within about 10 s but switches the material
	// about a minute later; 0 (the default) switches both at once.
	MaterialDelay time.Duration
	// ListAfterMaterial lists an on-demand rotation in ListKeyRotations
	// only once its key material is current (MaterialDelay after the
	// status cleared) instead of from the end of RotationDelay. KMS
	// promises no read-after-write consistency and nobody has recorded
	// what it lists in that gap; this is the unfavourable answer, where a
	// client that counts ON_DEMAND entries under-counts a rotation that
	// already left "in progress" and already counts against the lifetime
	// limit. GetKeyRotationStatus still clears after RotationDelay.
	ListAfterMaterial bool
	// ReplicaDelay is how long a replica made by ReplicateKey stays in the
	// Creating key state (Enabled false, no CurrentKeyMaterialId) before it
	// becomes Enabled, or PendingImport for imported key material. The
	// ReplicateKey response always shows Creating, as KMS's does; 0 makes the
	// replica usable from the next request on.
	ReplicaDelay time.Duration
	// OnDemandLimit is the lifetime number of on-demand rotations per key
	// (default 25, KMS's current quota), then LimitExceededException.
	OnDemandLimit int
	// Latency is added to every response.
	Latency time.Duration
	// QuotaScale multiplies KMS's default request quotas: 0 disables
	// throttling, 1 is KMS's defaults, 10 is ten times them.
	QuotaScale float64
	// FailRate is the fraction of requests answered with HTTP 500
	// (KMSInternalException) before any change is made.
	FailRate float64
	// DropRate is the fraction of RotateKeyOnDemand requests that are applied
	// and then answered with HTTP 500: the lost-response case.
	DropRate float64
	// Roles are the IAM role ARNs STS AssumeRole accepts (sts.go); the
	// credentials it issues act in the role's account. nil: DefaultMemberRole
	// in every account that has keys in a loaded fleet and in every ACTIVE
	// account of a loaded organization but its management account.
	Roles []string
	// Seed seeds the fault dice and the generated IDs, so a run can be replayed.
	Seed int64
	// Log receives one line per request; nil discards them.
	Log io.Writer
	// Now is the clock (default time.Now). Tests advance a fake clock to
	// complete rotations and pending deletions without sleeping.
	Now func() time.Time
}

// Server is the emulator: an http.Handler serving KMS, the tagging API and
// EventBridge PutEvents. It is safe for concurrent use.
type Server struct {
	opts Options

	mu      sync.Mutex // guards everything below
	regions map[string]*regionStore
	rng     *rand.Rand // fault dice
	idRNG   *rand.Rand // key IDs, key material IDs
	secret  [32]byte   // derives the emulated key material
	stats   map[string]*OpStats
	// acctStats are the same counters by account, then operation.
	acctStats map[string]map[string]*OpStats
	events    []Event // accepted PutEvents entries, in arrival order

	// sessions are the credentials AssumeRole issued, by access key ID.
	sessions map[string]*session
	// fleetAccounts are the accounts that have keys from a fleet: their
	// DefaultMemberRole is assumable when Options.Roles is nil.
	fleetAccounts map[string]bool
	// org is the organization LoadOrganization loaded, nil without one.
	org *org

	logMu sync.Mutex
}

// New returns a Server with no keys. Empty Options fields take these
// defaults: Account 111122223333, Region us-east-1, OnDemandLimit 25,
// Now time.Now, Log discarded.
func New(opts Options) *Server {
	if opts.Account == "" {
		opts.Account = "111122223333"
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.OnDemandLimit <= 0 {
		opts.OnDemandLimit = 25
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	seed := uint64(opts.Seed)
	s := &Server{
		opts:    opts,
		regions: map[string]*regionStore{},
		rng:     rand.New(rand.NewPCG(seed, 0x6b6d73656d75)),
		idRNG:   rand.New(rand.NewPCG(seed, 0x6b6579696473)),
		stats:   map[string]*OpStats{},

		acctStats: map[string]map[string]*OpStats{},

		sessions:      map[string]*session{},
		fleetAccounts: map[string]bool{},
	}
	for i := range s.secret {
		s.secret[i] = byte(s.idRNG.Uint32())
	}
	return s
}

// Options returns the options the Server runs with, defaults filled in.
func (s *Server) Options() Options { return s.opts }

// KeyCount returns how many keys the Server holds, replicas included, in all regions.
func (s *Server) KeyCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, rs := range s.regions {
		n += len(rs.keys)
	}
	return n
}

// apiError is an AWS JSON protocol error: an HTTP status and the __type code.
type apiError struct {
	status  int
	code    string
	message string
	reason  string // Organizations' InvalidInputException Reason
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// The KMS error codes the emulator answers, from the KMS API reference
// (https://docs.aws.amazon.com/kms/latest/APIReference/CommonErrors.html and
// each operation's "Errors" section).
func errValidation(format string, args ...any) *apiError {
	return errf(400, "ValidationException", format, args...)
}
func errNotFound(format string, args ...any) *apiError {
	return errf(400, "NotFoundException", format, args...)
}
func errInvalidState(format string, args ...any) *apiError {
	return errf(400, "KMSInvalidStateException", format, args...)
}
func errUnsupported(format string, args ...any) *apiError {
	return errf(400, "UnsupportedOperationException", format, args...)
}

// call is one request being served.
type call struct {
	op        string
	region    string
	account   string // the account of the signing credentials (sts.go)
	requestID string // X-Amzn-RequestId of the answer
	now       time.Time
	key       string // key identifier for the log line
	note      string // appended to the log line when not empty
}

type handler func(s *Server, c *call, body []byte) (any, *apiError)

// service is the API an operation belongs to: each names some errors its own way.
type service int

const (
	kmsService service = iota
	taggingService
	eventsService
	orgService
)

type operation struct {
	name  string
	svc   service
	quota float64
	fn    handler
}

// operations are what the emulator serves, by X-Amz-Target. Request quotas
// are in requests per second per account and Region. Every KMS operation's
// is settings.KMSRequestQuotas, the table the function paces its own calls
// by (KMS's published figures), so the emulator cannot drift from them;
// Encrypt and Decrypt share KMS's per-Region cryptographic quota
// (cryptoRate). The other services' figures are here: GetResources has no
// published figure; 10/s is a conservative guess (the tagging API documents
// only that it throttles), so a client that pages through 10,000 keys at 100
// a page needs about 10 s at scale 1. PutEvents has per-region quotas
// (putEventsRate).
var operations = map[string]operation{}

const (
	kmsPrefix     = "TrentService."
	taggingPrefix = "ResourceGroupsTaggingAPI_20170126."
	eventsPrefix  = "AWSEvents."
	orgPrefix     = "AWSOrganizationsV20161128."
	// cryptoQuota marks the operations sharing the symmetric cryptographic
	// operations quota, whose rate depends on the region.
	cryptoQuota = -1
	// putEventsQuota marks PutEvents, whose rate depends on the region.
	putEventsQuota = -2
)

func init() {
	// A KMS operation without a row in settings.KMSRequestQuotas gets
	// quota 0, which allow never throttles; TestKMSQuotasComeFromSettings
	// fails on it.
	add := func(name string, fn handler) {
		operations[kmsPrefix+name] = operation{name: name, quota: settings.KMSRequestQuotas[name], fn: fn}
	}
	addCrypto := func(name string, fn handler) {
		operations[kmsPrefix+name] = operation{name: name, quota: cryptoQuota, fn: fn}
	}
	add("CancelKeyDeletion", (*Server).cancelKeyDeletion)
	add("CreateAlias", (*Server).createAlias)
	add("CreateKey", (*Server).createKey)
	add("DeleteAlias", (*Server).deleteAlias)
	add("DeleteImportedKeyMaterial", (*Server).deleteImportedKeyMaterial)
	add("DescribeKey", (*Server).describeKey)
	add("DisableKey", (*Server).disableKey)
	add("DisableKeyRotation", (*Server).disableKeyRotation)
	add("EnableKey", (*Server).enableKey)
	add("EnableKeyRotation", (*Server).enableKeyRotation)
	addCrypto("Encrypt", (*Server).encrypt)
	addCrypto("Decrypt", (*Server).decrypt)
	add("GetKeyLastUsage", (*Server).getKeyLastUsage)
	add("GetKeyRotationStatus", (*Server).getKeyRotationStatus)
	add("GetParametersForImport", (*Server).getParametersForImport)
	add("ImportKeyMaterial", (*Server).importKeyMaterial)
	add("ListAliases", (*Server).listAliases)
	add("ListKeyRotations", (*Server).listKeyRotations)
	add("ListKeys", (*Server).listKeys)
	add("ListResourceTags", (*Server).listResourceTags)
	add("ReplicateKey", (*Server).replicateKey)
	add("RotateKeyOnDemand", (*Server).rotateKeyOnDemand)
	add("ScheduleKeyDeletion", (*Server).scheduleKeyDeletion)
	add("TagResource", (*Server).tagResource)
	add("UntagResource", (*Server).untagResource)
	operations[taggingPrefix+"GetResources"] = operation{name: "GetResources", svc: taggingService, quota: 10, fn: (*Server).getResources}
	operations[eventsPrefix+"PutEvents"] = operation{name: "PutEvents", svc: eventsService, quota: putEventsQuota, fn: (*Server).putEvents}
	// Organizations publishes no request rates; 10/s, as for GetResources.
	addOrg := func(name string, fn handler) {
		operations[orgPrefix+name] = operation{name: name, svc: orgService, quota: 10, fn: fn}
	}
	addOrg("DescribeOrganization", (*Server).describeOrganization)
	addOrg("ListRoots", (*Server).listRoots)
	addOrg("ListAccountsForParent", (*Server).listAccountsForParent)
	addOrg("ListOrganizationalUnitsForParent", (*Server).listOrganizationalUnitsForParent)
}

// cryptoRate is the shared quota of symmetric cryptographic operations, which
// KMS sets per region
// (https://docs.aws.amazon.com/kms/latest/developerguide/requests-per-second.html),
// so it has no row of its own in settings.KMSRequestQuotas.
func cryptoRate(region string) float64 {
	switch region {
	case "us-east-1", "us-west-2", "eu-west-1":
		return 100000
	case "us-east-2", "ap-southeast-1", "ap-southeast-2", "ap-northeast-1", "eu-central-1", "eu-west-2":
		return 50000
	}
	return 5500
}

// putEventsRate is EventBridge's default PutEvents quota in requests per
// second per account and region ("PutEvents throttle limit in transactions
// per second",
// https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-quota.html).
func putEventsRate(region string) float64 {
	switch region {
	case "us-east-1", "us-west-2", "eu-west-1":
		return 10000
	case "us-east-2", "eu-central-1", "eu-south-2":
		return 2400
	case "us-west-1", "ap-northeast-1", "ap-southeast-1", "ap-southeast-2", "eu-west-2":
		return 1200
	case "ap-east-1", "ap-northeast-2", "ap-south-1", "ca-central-1", "eu-north-1", "eu-west-3", "sa-east-1":
		return 600
	}
	return 400
}

// maxBody bounds a request body; KMS's largest inputs (key policies, 32 KB,
// and 6 KB ciphertexts) and a full PutEvents request (entries under 256 KB)
// are far below it.
const maxBody = 1 << 20

var credentialRegion = regexp.MustCompile(`Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/`)
var validRegion = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d{1,2}$`)

// regionOf reads the region from the SigV4 credential scope
// (Credential=AKID/DATE/REGION/SERVICE/aws4_request), see
// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html.
func (s *Server) regionOf(r *http.Request) string {
	if m := credentialRegion.FindStringSubmatch(r.Header.Get("Authorization")); m != nil && validRegion.MatchString(m[1]) {
		return m[1]
	}
	return s.opts.Region
}

// ServeHTTP serves one AWS JSON 1.1 request, or the /_kmslocal/ admin paths.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_kmslocal/") {
		s.serveAdmin(w, r)
		return
	}
	if isQueryRequest(r) {
		s.serveSTS(w, r)
		return
	}
	start := time.Now()
	target := r.Header.Get("X-Amz-Target")
	op, known := operations[target]
	c := &call{op: op.name, region: s.regionOf(r), account: s.accountOf(r), requestID: s.requestID()}
	if !known {
		c.op = "Unknown"
	}

	var status int
	var out []byte
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	switch {
	case r.Method != http.MethodPost || !known:
		// KMS answers an absent or unknown X-Amz-Target this way.
		status, out = encodeError(errf(400, "UnknownOperationException", "unknown operation %q", target), kmsService)
		s.count(c.op, func(st *OpStats) { st.Calls++; st.Errors++ })
	case err != nil:
		status, out = encodeError(errf(400, "SerializationException", "cannot read the request body: %v", err), op.svc)
		s.count(c.op, func(st *OpStats) { st.Calls++; st.Errors++ })
	case len(body) > maxBody:
		status, out = encodeError(errValidation("request body larger than %d bytes", maxBody), op.svc)
		s.count(c.op, func(st *OpStats) { st.Calls++; st.Errors++ })
	default:
		status, out = s.serveOp(c, op, body)
	}

	s.delay(r)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-RequestId", c.requestID)
	w.WriteHeader(status)
	_, _ = w.Write(out)
	s.logLine(c, status, out, time.Since(start))
}

// delay waits Options.Latency, or until the client gives up.
func (s *Server) delay(r *http.Request) {
	if s.opts.Latency > 0 {
		t := time.NewTimer(s.opts.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
}

// serveOp runs op under the lock: quota, fault dice, the handler, the drop
// dice. A panic in a handler (a bug) answers HTTP 500 rather than dropping
// the connection, and the lock is released.
func (s *Server) serveOp(c *call, op operation, body []byte) (status int, out []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st OpStats // this request's counts, added to the operation's and the account's
	defer func() {
		s.statsFor(op.name).add(st)
		s.accountStatsFor(c.account, op.name).add(st)
	}()
	defer func() {
		if p := recover(); p != nil {
			st.Errors++
			status, out = encodeError(errf(500, "KMSInternalException", "emulator bug: %v", p), op.svc)
		}
	}()
	c.now = s.opts.Now()
	st.Calls++
	if !s.allow(c.account, c.region, op, c.now) {
		st.Throttled++
		st.Errors++
		if op.svc == taggingService {
			return encodeError(errf(400, "ThrottledException", "Rate exceeded"), op.svc)
		}
		return encodeError(errf(400, "ThrottlingException", "Rate exceeded"), op.svc)
	}
	if s.opts.FailRate > 0 && s.rng.Float64() < s.opts.FailRate {
		st.Failed++
		st.Errors++
		return encodeError(errf(500, "KMSInternalException", "injected internal failure (nothing was changed)"), op.svc)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	res, aerr := op.fn(s, c, body)
	if aerr != nil {
		st.Errors++
		return encodeError(aerr, op.svc)
	}
	if op.name == "RotateKeyOnDemand" && s.opts.DropRate > 0 && s.rng.Float64() < s.opts.DropRate {
		st.Dropped++
		st.Errors++
		return encodeError(errf(500, "KMSInternalException", "injected lost response (the rotation was started)"), op.svc)
	}
	out, err := json.Marshal(res)
	if err != nil {
		st.Errors++
		return encodeError(errf(500, "KMSInternalException", "encode response: %v", err), op.svc)
	}
	return 200, out
}

// encodeError renders e the way the AWS JSON protocol does; the tagging API
// uses its own names for the internal and validation errors, EventBridge its
// own name for the internal error (InternalException, HTTP 500:
// https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html#API_PutEvents_Errors),
// Organizations its own names for the internal, throttling and validation
// errors and a capitalized Message (with InvalidInputException's Reason).
func encodeError(e *apiError, svc service) (int, []byte) {
	code := e.code
	switch svc {
	case orgService:
		switch code {
		case "KMSInternalException":
			code = "ServiceException"
		case "ThrottlingException":
			code = "TooManyRequestsException"
		case "ValidationException":
			code = "InvalidInputException"
		}
		out, _ := json.Marshal(struct {
			Type    string `json:"__type"`
			Message string `json:"Message"`
			Reason  string `json:"Reason,omitempty"`
		}{code, e.message, e.reason})
		return e.status, out
	case taggingService:
		switch code {
		case "KMSInternalException":
			code = "InternalServiceException"
		case "ValidationException":
			code = "InvalidParameterException"
		}
	case eventsService:
		if code == "KMSInternalException" {
			code = "InternalException"
		}
	}
	// Some KMS errors carry no message at all (UnsupportedOperationException
	// for an asymmetric key given to RotateKeyOnDemand,
	// InvalidCiphertextException): the body then has no message member.
	out, _ := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message,omitempty"`
	}{code, e.message})
	return e.status, out
}

func (s *Server) requestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return uuidFrom(s.idRNG)
}

// logLine writes one line per request: operation, region, key, result code,
// latency, and the operation's note (PutEvents: entries and failed entries,
// which a 200 alone does not tell).
func (s *Server) logLine(c *call, status int, out []byte, d time.Duration) {
	if s.opts.Log == io.Discard {
		return
	}
	code := "OK"
	if status != 200 {
		var e struct {
			Type string `json:"__type"`
		}
		_ = json.Unmarshal(out, &e)
		code = e.Type
	}
	s.writeLogLine(c, status, code, d)
}

// writeLogLine writes the line of a request answered with status and code;
// a request in another account than Options.Account ends with account=ID.
func (s *Server) writeLogLine(c *call, status int, code string, d time.Duration) {
	if s.opts.Log == io.Discard {
		return
	}
	key := c.key
	if key == "" {
		key = "-"
	}
	if strings.ContainsFunc(key, func(r rune) bool { return r <= ' ' || r == '"' || r > '~' }) {
		// The key identifier is the caller's text: quoted, a newline or
		// control character in it cannot forge a log line.
		key = strconv.Quote(key)
	}
	line := fmt.Sprintf("%s op=%s region=%s key=%s status=%d code=%s latency=%s",
		time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), c.op, c.region, key, status, code, d.Round(time.Microsecond))
	if c.note != "" {
		line += " " + c.note
	}
	if c.account != s.opts.Account && c.account != "" && c.op != "AssumeRole" {
		line += " account=" + c.account
	}
	line += "\n"
	s.logMu.Lock()
	defer s.logMu.Unlock()
	_, _ = io.WriteString(s.opts.Log, line)
}

// decode parses a JSON request body. Like KMS, unknown members are ignored
// and a value of the wrong type is a SerializationException.
func decode(body []byte, v any) *apiError {
	if err := json.Unmarshal(body, v); err != nil {
		return errf(400, "SerializationException", "cannot parse the request: %v", err)
	}
	return nil
}

// OpStats counts the requests of one operation.
type OpStats struct {
	// Calls is every request received for the operation.
	Calls int64 `json:"calls"`
	// Throttled is the requests answered with ThrottlingException / ThrottledException.
	Throttled int64 `json:"throttled"`
	// Failed is the requests answered with an injected internal error (-fail-rate).
	Failed int64 `json:"failed"`
	// Dropped is the RotateKeyOnDemand requests applied, then answered with an error (-drop-rate).
	Dropped int64 `json:"dropped"`
	// Errors is every error response, including the three above.
	Errors int64 `json:"errors"`
}

// Stats is a snapshot of the request counters.
type Stats struct {
	// Operations maps an operation name (DescribeKey, GetResources, …) to its counters.
	Operations map[string]OpStats `json:"operations"`
	// Total sums all operations.
	Total OpStats `json:"total"`
	// Accounts splits the counters of the operations served (not the
	// unknown ones) by the account the request acted in, then operation.
	Accounts map[string]map[string]OpStats `json:"accounts,omitempty"`
}

func (o *OpStats) add(d OpStats) {
	o.Calls += d.Calls
	o.Throttled += d.Throttled
	o.Failed += d.Failed
	o.Dropped += d.Dropped
	o.Errors += d.Errors
}

// Op returns the counters of one operation (zero when it was never called).
func (st Stats) Op(name string) OpStats { return st.Operations[name] }

func (s *Server) statsFor(op string) *OpStats {
	st := s.stats[op]
	if st == nil {
		st = &OpStats{}
		s.stats[op] = st
	}
	return st
}

func (s *Server) accountStatsFor(account, op string) *OpStats {
	m := s.acctStats[account]
	if m == nil {
		m = map[string]*OpStats{}
		s.acctStats[account] = m
	}
	st := m[op]
	if st == nil {
		st = &OpStats{}
		m[op] = st
	}
	return st
}

func (s *Server) count(op string, f func(*OpStats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.statsFor(op))
}

// Stats returns a snapshot of the per-operation request counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Stats{Operations: make(map[string]OpStats, len(s.stats))}
	for name, st := range s.stats {
		out.Operations[name] = *st
		out.Total.add(*st)
	}
	if len(s.acctStats) > 0 {
		out.Accounts = make(map[string]map[string]OpStats, len(s.acctStats))
		for acct, ops := range s.acctStats {
			m := make(map[string]OpStats, len(ops))
			for name, st := range ops {
				m[name] = *st
			}
			out.Accounts[acct] = m
		}
	}
	return out
}

// ResetStats zeroes the request counters.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = map[string]*OpStats{}
	s.acctStats = map[string]map[string]*OpStats{}
}

// serveAdmin serves GET /_kmslocal/stats, POST /_kmslocal/stats/reset,
// GET /_kmslocal/events and POST /_kmslocal/events/reset.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/_kmslocal/stats" && r.Method == http.MethodGet:
		_ = json.NewEncoder(w).Encode(s.Stats())
	case r.URL.Path == "/_kmslocal/stats/reset" && r.Method == http.MethodPost:
		s.ResetStats()
		_ = json.NewEncoder(w).Encode(s.Stats())
	case r.URL.Path == "/_kmslocal/events" && r.Method == http.MethodGet:
		_ = json.NewEncoder(w).Encode(s.Events())
	case r.URL.Path == "/_kmslocal/events/reset" && r.Method == http.MethodPost:
		s.ResetEvents()
		_ = json.NewEncoder(w).Encode(s.Events())
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"message":"not found: use GET /_kmslocal/stats, POST /_kmslocal/stats/reset, GET /_kmslocal/events or POST /_kmslocal/events/reset"}`+"\n")
	}
}

// epoch renders t as AWS JSON timestamps are sent: epoch seconds as a JSON
// number (milliseconds as the fraction).
func epoch(t time.Time) *float64 {
	if t.IsZero() {
		return nil
	}
	v := float64(t.UnixMilli()) / 1000
	return &v
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
