package request

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Bounds on a payload. Every bound is checked before any AWS call.
const (
	// MaxPayloadBytes bounds the whole payload. The longest valid request —
	// 1000 alias ARNs with 250-character names, ≈ 310 KB — fits; a 1 MB
	// string does not. (Lambda itself accepts 6 MB synchronously, 256 KB
	// asynchronously and from EventBridge: https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html.)
	MaxPayloadBytes = 512 << 10
	// MaxKeys bounds keys, counted as given (before duplicates are removed);
	// docs/design.md "Invocation payloads".
	MaxKeys = 1000
	// MaxReasonBytes bounds the incident reason: it is repeated on every
	// per-key log line, so a ticket reference and a sentence are enough.
	MaxReasonBytes = 1024
	// Tag key and value lengths in characters, as KMS allows them
	// (https://docs.aws.amazon.com/kms/latest/APIReference/API_Tag.html:
	// TagKey 1–128, TagValue 0–256).
	maxTagKeyLen   = 128
	maxTagValueLen = 256
)

// The payload shapes, as Request.Source names them.
const (
	SourceScheduledEvent = "aws.events"  // EventBridge Scheduled Event
	SourceCustomEvent    = "kms-rotator" // EventBridge custom event
	SourceDirect         = "direct"      // direct invoke or EventBridge Scheduler input
)

// The EventBridge detail-type of each accepted source.
const (
	detailTypeScheduled = "Scheduled Event"
	detailTypeRotate    = "Rotate KMS Keys"
)

// ValidationError is why a payload was rejected. Field is the path of the
// offending field ("mode", "keys[3]", "detail.tag.key") or "payload" for
// the payload as a whole; Error() is "Field: Msg", the text the caller sees.
type ValidationError struct {
	Field string
	Msg   string
}

// Error returns "Field: Msg".
func (e *ValidationError) Error() string { return e.Field + ": " + e.Msg }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

var (
	modes = []string{string(ModeScheduled), string(ModePlan), string(ModeIncident), string(ModeReport), string(ModeTargets), string(ModeOrgSummary)}
	// requestFields are the fields of a direct invoke, a Scheduler input and
	// a kms-rotator event's detail.
	requestFields = []string{"mode", "keys", "tag", "reason", "dryRun", "force", "wait", "requestId", "usage", "target", "continuation", "orgTargets", "orgRegions", "execution", "manifest"}
	targetFields  = []string{"account", "region"}
	// envelopeFields are the top-level fields of an EventBridge event
	// (https://docs.aws.amazon.com/eventbridge/latest/ref/overiew-event-structure.html);
	// replay-name is set on events replayed from an archive.
	envelopeFields = []string{"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail", "replay-name"}
	tagFields      = []string{"key", "value"}
)

// Decode validates an invocation payload and returns the Request it carries.
// It accepts:
//
//   - an EventBridge Scheduled Event (source "aws.events", detail-type
//     "Scheduled Event", detail {}): mode scheduled;
//   - a kms-rotator custom event (source "kms-rotator", detail-type
//     "Rotate KMS Keys") whose detail holds the direct-invoke fields;
//   - a direct invoke or an EventBridge Scheduler input (no envelope):
//     {"mode":…, "keys":[…] | "tag":{"key":…,"value":…}, "reason":…, "dryRun":…}.
//
// A payload with any EventBridge envelope field (source, detail, …) is read
// as an event; anything else as a direct invoke. scope is where the function
// runs (ScopeFromFunctionARN); key and alias ARNs must be in its partition
// and account, and in its region — except key ARNs of multi-Region ("mrk-")
// keys: docs/design.md allows "a replica's primary", and a multi-Region key's
// primary (or a sibling replica) may live in any region of the account, so
// any region is accepted for them and the engine resolves them. Alias ARNs
// of another region are rejected: an alias is a regional name.
//
// In organization mode (scope.Organization) a request may name a target,
// whose account and Region then bound its keys and cursor, and an incident
// may name key ARNs of any account and Region of the partition: the engine
// works in them through the member role.
//
// Textual duplicates in keys (the same string twice) are removed, keeping
// the first; different spellings of one key (ID and ARN, alias and ID) are
// left for the engine to merge after it resolves them.
//
// Every rejection is a *ValidationError naming the field; checks run in a
// fixed order, so one payload always gets the same error.
func Decode(payload []byte, scope Scope) (Request, error) {
	p, err := Parse(payload, scope)
	switch {
	case err != nil:
		return Request{}, err
	case p.Org != nil:
		return Request{}, invalid("mode", "%s is an organization request (Parse), not a key request", p.Org.Mode)
	}
	return *p.Request, nil
}

// Payload is one decoded invocation: exactly one of Request (the key
// modes) and Org (the organization sweep's own requests) is set.
type Payload struct {
	Request *Request
	Org     *Org
}

// Parse validates an invocation payload as Decode does, and also accepts
// the organization requests (mode targets and org-summary, organization
// mode only, direct invokes only): the handler routes each kind to its
// own code, so the engine never sees a request that acts on no key.
func Parse(payload []byte, scope Scope) (Payload, error) {
	if err := scope.Validate(); err != nil {
		return Payload{}, invalid("scope", "%s", err)
	}
	if len(payload) > MaxPayloadBytes {
		return Payload{}, invalid("payload", "%d bytes; at most %d", len(payload), MaxPayloadBytes)
	}
	if !utf8.Valid(payload) {
		return Payload{}, invalid("payload", "not valid UTF-8 (first bad byte at offset %d)", firstInvalidUTF8(payload))
	}
	if len(bytes.TrimSpace(payload)) == 0 {
		return Payload{}, invalid("payload", "empty; want a JSON object")
	}
	top, err := readObject(payload, "", true)
	if err != nil {
		return Payload{}, err
	}
	for _, f := range top {
		if contains(envelopeFields, f.name) {
			req, err := decodeEvent(top, scope)
			if err != nil {
				return Payload{}, err
			}
			return Payload{Request: &req}, nil
		}
	}
	p, err := decodeFields(top, "", scope)
	if err != nil {
		return Payload{}, err
	}
	if p.Request != nil {
		p.Request.Source = SourceDirect
	}
	return p, nil
}

// decodeEvent decodes an EventBridge event envelope.
func decodeEvent(fs []field, scope Scope) (Request, error) {
	if err := checkNames(fs, "", envelopeFields, "unknown field in an EventBridge event"); err != nil {
		return Request{}, err
	}
	// An archive replay re-delivers old events
	// (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-replay-archived-event.html):
	// an incident that was handled long ago would spend rotations again,
	// and a replayed schedule is not the schedule. Refused before any AWS call.
	if _, ok := find(fs, "replay-name"); ok {
		return Request{}, invalid("replay-name", "events replayed from an EventBridge archive are refused: a replay would repeat rotations that were already spent; send a new request instead")
	}
	var source, detailType, account, at string
	var detail json.RawMessage
	for _, f := range fs {
		switch f.name {
		case "resources":
			if _, err := readStrings(f.raw, f.name); err != nil {
				return Request{}, err
			}
		case "detail":
			detail = f.raw
		default:
			s, err := readString(f.raw, f.name)
			if err != nil {
				return Request{}, err
			}
			switch f.name {
			case "source":
				source = s
			case "detail-type":
				detailType = s
			case "account":
				account = s
			case "time":
				at = s
			}
		}
	}
	if _, ok := find(fs, "source"); !ok {
		return Request{}, invalid("source", "required in an EventBridge event (want %q or %q)", SourceScheduledEvent, SourceCustomEvent)
	}
	if _, ok := find(fs, "detail-type"); !ok {
		return Request{}, invalid("detail-type", "required in an EventBridge event")
	}
	switch source {
	case SourceScheduledEvent:
		if detailType != detailTypeScheduled {
			return Request{}, invalid("detail-type", "%s is not accepted from source %s (want %q)", quote(detailType), source, detailTypeScheduled)
		}
		if detail != nil {
			// A Scheduled Event's detail is always {}; anything in it is
			// a payload that is not what it claims to be.
			dfs, err := readObject(detail, "detail", false)
			if err != nil {
				return Request{}, err
			}
			if err := checkNames(dfs, "detail", nil, "unknown field (a Scheduled Event's detail is empty)"); err != nil {
				return Request{}, err
			}
		}
		return Request{Mode: ModeScheduled, Source: SourceScheduledEvent}, nil
	case SourceCustomEvent:
		if detailType != detailTypeRotate {
			return Request{}, invalid("detail-type", "%s is not accepted from source %s (want %q)", quote(detailType), source, detailTypeRotate)
		}
		if detail == nil {
			return Request{}, invalid("detail", "required in a %s event", SourceCustomEvent)
		}
		dfs, err := readObject(detail, "detail", false)
		if err != nil {
			return Request{}, err
		}
		p, err := decodeFields(dfs, "detail.", scope)
		if err != nil {
			return Request{}, err
		}
		if p.Org != nil {
			// The organization sweep's state machine asks these
			// directly; an event bus is not its path.
			return Request{}, invalid("detail.mode", "%s is accepted only as a direct invoke (the organization sweep's state machine asks it)", p.Org.Mode)
		}
		req := *p.Request
		req.Source = SourceCustomEvent
		req.EventAccount = account
		if at != "" {
			// The event's time lets the engine refuse a late delivery
			// (ROTATOR_INCIDENT_MAX_AGE): EventBridge retries for up to
			// 24 hours (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-retry-policy.html).
			t, err := time.Parse(time.RFC3339, at)
			if err != nil {
				return Request{}, invalid("time", "%s is not an RFC 3339 time", quote(at))
			}
			req.EventTime = t
		}
		return req, nil
	}
	return Request{}, invalid("source", "%s is not accepted (want %q or %q)", quote(source), SourceScheduledEvent, SourceCustomEvent)
}

// decodeFields decodes the request fields of a direct invoke, a Scheduler
// input or a custom event's detail; prefix is "" or "detail.".
func decodeFields(fs []field, prefix string, scope Scope) (Payload, error) {
	req, org, err := decodeMode(fs, prefix, scope)
	if err != nil || org != nil {
		return Payload{Org: org}, err
	}
	return Payload{Request: &req}, nil
}

// decodeMode decodes the fields of one request: a key request, or an
// organization request (org set).
func decodeMode(fs []field, prefix string, scope Scope) (Request, *Org, error) {
	if err := checkNames(fs, prefix, requestFields, "unknown field"); err != nil {
		return Request{}, nil, err
	}
	var req Request
	raw, ok := find(fs, "mode")
	if !ok {
		return Request{}, nil, invalid(prefix+"mode", "required (modes: %s)", strings.Join(modes, ", "))
	}
	m, err := readString(raw, prefix+"mode")
	if err != nil {
		return Request{}, nil, err
	}
	req.Mode = Mode(m)
	if !req.Mode.Valid() {
		if s := suggest(m, modes); s != "" {
			return Request{}, nil, invalid(prefix+"mode", "unknown mode %s; did you mean %q? (modes: %s)", quote(m), s, strings.Join(modes, ", "))
		}
		return Request{}, nil, invalid(prefix+"mode", "unknown mode %s (modes: %s)", quote(m), strings.Join(modes, ", "))
	}

	if req.Mode.Rules().Org {
		org, err := decodeOrg(fs, prefix, req.Mode, scope)
		return Request{}, org, err
	}
	// Which fields each mode takes: the mode's rules (mode.go).
	if err := checkModeFields(fs, prefix, req.Mode); err != nil {
		return Request{}, nil, err
	}
	// A target moves the run into a member account: keys and the cursor
	// are then checked against it.
	if raw, ok := find(fs, "target"); ok {
		if !scope.Organization {
			return Request{}, nil, invalid(prefix+"target", "accepted only in organization mode (ROTATOR_MEMBER_ROLE_NAME set)")
		}
		if req.Target, err = decodeTarget(raw, prefix+"target", scope); err != nil {
			return Request{}, nil, err
		}
		scope = scope.In(req.Target)
	}
	keysRaw, hasKeys := find(fs, "keys")
	tagRaw, hasTag := find(fs, "tag")
	if req.Mode == ModeIncident {
		switch {
		case hasKeys && hasTag:
			return Request{}, nil, invalid(prefix+"keys", "give keys or tag, not both")
		case !hasKeys && !hasTag:
			return Request{}, nil, invalid(prefix+"keys", "incident mode needs keys (key IDs, key ARNs, alias names or alias ARNs) or tag")
		}
	}

	if hasKeys {
		if req.Keys, err = decodeKeys(keysRaw, prefix+"keys", scope); err != nil {
			return Request{}, nil, err
		}
	}
	if hasTag {
		if req.Tag, err = decodeTag(tagRaw, prefix+"tag"); err != nil {
			return Request{}, nil, err
		}
	}
	if req.Mode == ModeIncident {
		raw, ok := find(fs, "reason")
		if !ok {
			return Request{}, nil, invalid(prefix+"reason", "required in mode incident (e.g. %q)", "INC-4711 suspected exposure")
		}
		if req.Reason, err = decodeReason(raw, prefix+"reason"); err != nil {
			return Request{}, nil, err
		}
	}
	if raw, ok := find(fs, "dryRun"); ok {
		if req.DryRun, err = readBool(raw, prefix+"dryRun"); err != nil {
			return Request{}, nil, err
		}
	}
	if raw, ok := find(fs, "force"); ok {
		if req.Force, err = readBool(raw, prefix+"force"); err != nil {
			return Request{}, nil, err
		}
	}
	if req.Force && hasTag {
		// A tag matches whatever keys carry it when the request runs, not
		// keys a responder named: skipping the cooldown is for named keys.
		return Request{}, nil, invalid(prefix+"force", "accepted only with keys, never with a tag selector: name the keys to rotate inside their cooldown")
	}
	if raw, ok := find(fs, "requestId"); ok {
		if req.RequestID, err = decodeRequestID(raw, prefix+"requestId"); err != nil {
			return Request{}, nil, err
		}
	}
	if raw, ok := find(fs, "wait"); ok {
		var wait bool
		if wait, err = readBool(raw, prefix+"wait"); err != nil {
			return Request{}, nil, err
		}
		req.NoWait = !wait
	}
	if raw, ok := find(fs, "usage"); ok {
		if req.Usage, err = readBool(raw, prefix+"usage"); err != nil {
			return Request{}, nil, err
		}
	}
	if raw, ok := find(fs, "continuation"); ok {
		if req.Continuation, err = decodeContinuation(raw, prefix+"continuation", scope); err != nil {
			return Request{}, nil, err
		}
	}
	if req.Mode == ModePlan {
		req.DryRun = true
	}
	return req, nil, nil
}

// checkModeFields refuses a field the mode does not take (Rules.Fields),
// saying which modes take it. Fields are checked in requestFields' order,
// so one payload always gets the same error.
func checkModeFields(fs []field, prefix string, m Mode) error {
	for _, name := range requestFields {
		if name == "mode" || name == "target" {
			continue // target: every mode, in organization mode only (checked below)
		}
		if _, ok := find(fs, name); !ok || contains(m.Rules().Fields, name) {
			continue
		}
		if why := fieldRefusals[string(m)+"/"+name]; why != "" {
			return invalid(prefix+name, "not accepted in mode %s (%s)", m, why)
		}
		var takers []string
		for _, other := range modes {
			if contains(Mode(other).Rules().Fields, name) {
				takers = append(takers, other)
			}
		}
		verb := "takes"
		if len(takers) > 1 {
			verb = "take"
		}
		return invalid(prefix+name, "not accepted in mode %s (only %s %s %s)", m, strings.Join(takers, ", "), verb, name)
	}
	return nil
}

// fieldRefusals say why a mode refuses a field where "only … take it"
// would not.
var fieldRefusals = map[string]string{
	"plan/dryRun":           "plan is always a dry run",
	"report/dryRun":         "report never rotates",
	"incident/continuation": "only scheduled, plan and report runs continue",
}

// decodeKeys parses and scope-checks the key list, dropping textual
// duplicates.
func decodeKeys(raw json.RawMessage, path string, scope Scope) ([]KeyRef, error) {
	if t := jsonType(raw); t != "array" {
		return nil, invalid(path, "want an array of strings, got %s", t)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, invalid(path, "%s", err) // unreachable: raw is a syntactically valid array
	}
	switch {
	case len(elems) == 0:
		return nil, invalid(path, "empty; give 1 to %d keys", MaxKeys)
	case len(elems) > MaxKeys:
		return nil, invalid(path, "%d keys; at most %d per request", len(elems), MaxKeys)
	}
	keys := make([]KeyRef, 0, len(elems))
	seen := make(map[string]bool, len(elems))
	for i, e := range elems {
		p := fmt.Sprintf("%s[%d]", path, i)
		s, err := readString(e, p)
		if err != nil {
			return nil, err
		}
		ref, err := ParseKeyRef(s)
		if err != nil {
			return nil, invalid(p, "%s", err)
		}
		if err := inScope(ref, scope); err != "" {
			return nil, invalid(p, "%s", err)
		}
		if seen[s] {
			continue
		}
		seen[s] = true
		keys = append(keys, ref)
	}
	return keys, nil
}

// inScope says why an ARN is outside the function's scope, or "" when it is
// inside (see Decode for the multi-Region exception).
func inScope(ref KeyRef, sc Scope) string {
	if !ref.IsARN() {
		return ""
	}
	switch {
	case ref.Partition != sc.Partition:
		return fmt.Sprintf("%s is in partition %s, the function runs in %s", quote(ref.Raw), ref.Partition, sc.Partition)
	case ref.Account != sc.Account && !(sc.Organization && ref.Kind == KeyARN):
		return fmt.Sprintf("%s is in account %s, the function runs in %s", quote(ref.Raw), ref.Account, sc.Account)
	case ref.Region != sc.Region && !(ref.Kind == KeyARN && (ref.MultiRegion() || sc.Organization)):
		return fmt.Sprintf("%s is in region %s, the function runs in %s", quote(ref.Raw), ref.Region, sc.Region)
	}
	return ""
}

// decodeTarget reads {"account": 12 digits, "region": a Region of the
// function's partition}.
func decodeTarget(raw json.RawMessage, path string, scope Scope) (*Target, error) {
	fs, err := readObject(raw, path, false)
	if err != nil {
		return nil, err
	}
	if err := checkNames(fs, path+".", targetFields, "unknown field"); err != nil {
		return nil, err
	}
	var t Target
	for _, name := range targetFields {
		v, ok := find(fs, name)
		if !ok {
			return nil, invalid(join(path, name), "required")
		}
		s, err := readString(v, join(path, name))
		if err != nil {
			return nil, err
		}
		if name == "account" {
			t.Account = s
		} else {
			t.Region = s
		}
	}
	switch {
	case !validAccount(t.Account):
		return nil, invalid(join(path, "account"), "%s is not an account ID (12 digits)", quote(t.Account))
	case !validRegion(t.Region):
		return nil, invalid(join(path, "region"), "%s is not a Region name such as us-east-1", quote(t.Region))
	case partitionOfRegion(t.Region) != scope.Partition:
		return nil, invalid(join(path, "region"), "%s is not in partition %s, where the function runs", quote(t.Region), scope.Partition)
	}
	return &t, nil
}

// decodeTag reads the incident tag selector.
func decodeTag(raw json.RawMessage, path string) (*Tag, error) {
	fs, err := readObject(raw, path, false)
	if err != nil {
		return nil, err
	}
	if err := checkNames(fs, path+".", tagFields, "unknown field"); err != nil {
		return nil, err
	}
	var tag Tag
	for _, name := range tagFields {
		p := path + "." + name
		r, ok := find(fs, name)
		if !ok {
			return nil, invalid(p, "required")
		}
		s, err := readString(r, p)
		if err != nil {
			return nil, err
		}
		if msg := tagTextProblem(s, name == "key"); msg != "" {
			return nil, invalid(p, "%s", msg)
		}
		if name == "key" {
			tag.Key = s
		} else {
			tag.Value = s
		}
	}
	return &tag, nil
}

// tagTextProblem checks a tag key or value against the KMS tag rules
// (https://docs.aws.amazon.com/kms/latest/developerguide/tagging-keys.html#tagging-rules:
// letters, numbers, spaces and _ . : / = + - @; key 1–128, value 0–256
// characters).
func tagTextProblem(s string, isKey bool) string {
	n := utf8.RuneCountInString(s)
	switch {
	case isKey && n == 0:
		return "empty"
	case isKey && n > maxTagKeyLen:
		return fmt.Sprintf("%d characters; at most %d", n, maxTagKeyLen)
	case !isKey && n > maxTagValueLen:
		return fmt.Sprintf("%d characters; at most %d", n, maxTagValueLen)
	}
	for _, c := range s {
		if !(unicode.IsLetter(c) || unicode.IsNumber(c) || unicode.Is(unicode.Zs, c) || strings.ContainsRune("_.:/=+-@", c)) {
			return fmt.Sprintf("contains %q; tags use letters, numbers, spaces and _ . : / = + - @", c)
		}
	}
	return ""
}

// decodeReason reads the incident reason. It is logged as data (slog's JSON
// handler escapes it) and never interpreted; control characters other than
// tab, newline and carriage return, and bidirectional controls, are refused
// so it prints as it reads.
func decodeReason(raw json.RawMessage, path string) (string, error) {
	s, err := readString(raw, path)
	if err != nil {
		return "", err
	}
	switch {
	case strings.TrimSpace(s) == "":
		return "", invalid(path, "blank; say why the keys are rotated (e.g. %q)", "INC-4711 suspected exposure")
	case len(s) > MaxReasonBytes:
		return "", invalid(path, "%d bytes; at most %d", len(s), MaxReasonBytes)
	}
	for _, c := range s {
		if unicode.IsControl(c) && c != '\t' && c != '\n' && c != '\r' {
			return "", invalid(path, "contains control character %q", c)
		}
		// Bidirectional overrides make a log line read differently from
		// what it holds ("Trojan Source", CVE-2021-42574).
		if unicode.Is(unicode.Bidi_Control, c) {
			return "", invalid(path, "contains bidirectional control character %q", c)
		}
		// Format characters (zero-width spaces and joiners) and line or
		// paragraph separators hide text or forge log lines in the audit
		// record.
		if unicode.In(c, unicode.Cf, unicode.Zl, unicode.Zp) {
			return "", invalid(path, "contains invisible or line-separating character %q", c)
		}
	}
	if !strings.ContainsFunc(s, func(c rune) bool { return unicode.IsGraphic(c) && !unicode.IsSpace(c) }) {
		return "", invalid(path, "has no visible character; say why the keys are rotated (e.g. %q)", "INC-4711 suspected exposure")
	}
	return s, nil
}

// MaxRequestIDLen bounds a request's requestId.
const MaxRequestIDLen = 128

// decodeRequestID reads an incident's requestId: the identity a SOAR tool
// gives its request, so that its retries are recognised as repeats.
func decodeRequestID(raw json.RawMessage, path string) (string, error) {
	s, err := readString(raw, path)
	if err != nil {
		return "", err
	}
	if s == "" || len(s) > MaxRequestIDLen {
		return "", invalid(path, "%d characters; give 1 to %d", len(s), MaxRequestIDLen)
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._:/@+=-", c)) {
			return "", invalid(path, "contains %q; use letters, digits and . _ : / @ + = -", c)
		}
	}
	return s, nil
}

// field is one member of a JSON object, in payload order.
type field struct {
	name string
	raw  json.RawMessage
}

// readObject splits a JSON object into its members, refusing anything but
// an object, duplicate member names (encoding/json would silently keep the
// last) and, when top is set, trailing data after the object.
func readObject(data []byte, path string, top bool) ([]field, error) {
	errPath := path
	if errPath == "" {
		errPath = "payload"
	}
	if t := jsonType(data); t != "object" {
		if top && !json.Valid(data) {
			return nil, syntaxError(data)
		}
		return nil, invalid(errPath, "want a JSON object, got %s", t)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // '{'
		return nil, syntaxError(data)
	}
	var fs []field
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxError(data)
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, syntaxError(data)
		}
		if seen[name] {
			return nil, invalid(join(path, name), "given twice")
		}
		seen[name] = true
		fs = append(fs, field{name, raw})
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, syntaxError(data)
	}
	if top {
		end := int(dec.InputOffset())
		if rest := data[end:]; len(bytes.TrimLeft(rest, " \t\r\n")) != 0 {
			at := end + len(rest) - len(bytes.TrimLeft(rest, " \t\r\n"))
			return nil, invalid("payload", "trailing data after the JSON object at byte %d", at)
		}
	}
	return fs, nil
}

// syntaxError describes why data is not valid JSON, with the byte offset.
func syntaxError(data []byte) error {
	var v any
	err := json.Unmarshal(data, &v)
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return invalid("payload", "invalid JSON at byte %d: %s", se.Offset, se.Error())
	case err != nil:
		return invalid("payload", "invalid JSON: %s", err)
	}
	return invalid("payload", "invalid JSON")
}

// checkNames rejects the first member (in payload order) whose name is not
// in known, suggesting the closest known name for a typo.
func checkNames(fs []field, prefix string, known []string, what string) error {
	for _, f := range fs {
		if contains(known, f.name) {
			continue
		}
		p := strings.TrimSuffix(prefix, ".")
		p = join(p, f.name)
		if len(known) == 0 {
			return invalid(p, "%s", what)
		}
		if s := suggest(f.name, known); s != "" {
			return invalid(p, "%s; did you mean %q? (fields: %s)", what, s, strings.Join(known, ", "))
		}
		return invalid(p, "%s (fields: %s)", what, strings.Join(known, ", "))
	}
	return nil
}

// join appends a member name to a field path, quoting names that are not
// plain words so a hostile name cannot disguise the path.
func join(path, name string) string {
	if name == "" || len(name) > 64 || !allWord(name) {
		name = quote(name)
	}
	if path == "" {
		return name
	}
	return path + "." + name
}

func find(fs []field, name string) (json.RawMessage, bool) {
	for _, f := range fs {
		if f.name == name {
			return f.raw, true
		}
	}
	return nil, false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// jsonType names the JSON type of a syntactically valid value.
func jsonType(raw []byte) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// readString decodes a JSON string, refusing U+FFFD: encoding/json turns an
// unpaired surrogate escape ("\ud800") into it, so it marks text that was
// not valid Unicode.
func readString(raw json.RawMessage, path string) (string, error) {
	if t := jsonType(raw); t != "string" {
		return "", invalid(path, "want a string, got %s", t)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", invalid(path, "%s", err) // unreachable: raw is a valid string
	}
	if strings.ContainsRune(s, utf8.RuneError) {
		return "", invalid(path, "contains U+FFFD (invalid UTF-8 or an unpaired surrogate escape)")
	}
	return s, nil
}

func readStrings(raw json.RawMessage, path string) ([]string, error) {
	if t := jsonType(raw); t != "array" {
		return nil, invalid(path, "want an array of strings, got %s", t)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, invalid(path, "%s", err)
	}
	out := make([]string, len(elems))
	for i, e := range elems {
		s, err := readString(e, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

func readBool(raw json.RawMessage, path string) (bool, error) {
	if t := jsonType(raw); t != "boolean" {
		return false, invalid(path, "want a boolean, got %s", t)
	}
	return bytes.HasPrefix(bytes.TrimLeft(raw, " \t\r\n"), []byte("true")), nil
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// suggest returns the candidate closest to s when s looks like a typo of it
// (same letters in another case, a prefix of 3+ letters, or an edit
// distance of at most a third of the candidate's length), else "".
func suggest(s string, candidates []string) string {
	if len(s) == 0 || len(s) > 64 {
		return ""
	}
	ls := strings.ToLower(strings.TrimSpace(s))
	best, bestD := "", 1<<30
	for _, c := range candidates {
		lc := strings.ToLower(c)
		if ls == lc || (len(ls) >= 3 && strings.HasPrefix(lc, ls)) {
			return c
		}
		d := EditDistance(ls, lc)
		if d <= max(1, len(c)/3) && d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// EditDistance is the Levenshtein distance between a and b in bytes: the
// "did you mean" of field, mode and setting names (ASCII), here and in the
// tools that check names.
func EditDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
