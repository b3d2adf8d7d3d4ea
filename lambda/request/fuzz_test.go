package request

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// maxErrorLen bounds an error message: errors repeat caller input only
// shortened (see quote), so a huge payload never becomes a huge error.
const maxErrorLen = 1024

// FuzzDecode checks that Decode never panics, that every error is a short
// *ValidationError, and that every accepted payload satisfies the Request
// invariants the engine relies on. Seeds: events/*.json and the bad-input
// corpus.
func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("..", "..", "events", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		if filepath.Base(name) == "fleet.json" {
			continue
		}
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, tc := range badPayloads {
		if len(tc.payload) <= 4096 { // the big ones only slow the fuzzer's mutator
			f.Add([]byte(tc.payload))
		}
	}
	f.Add([]byte(`{"mode":"incident","keys":["arn:aws:kms:eu-west-1:012345678912:key/` + mrkID + `","alias/a","alias/a"],"reason":"x","dryRun":true}`))
	f.Add([]byte(`{"source":"kms-rotator","detail-type":"Rotate KMS Keys","detail":{"mode":"incident","tag":{"key":"team","value":"payments"},"reason":"r"}}`))
	f.Add([]byte(`{"mode":"scheduled","continuation":{"runId":"20260102T030405Z-1a2b3c4d","after":"` + arn2 + `","chain":1}}`))
	f.Add([]byte(`{"mode":"targets","orgTargets":["111111111111","ou-ab12-cdefgh34","r-ab12"],"orgRegions":["us-east-1","eu-west-1"]}`))

	f.Fuzz(func(t *testing.T, payload []byte) {
		// Organization mode accepts more (targets, member accounts); what
		// it accepts in targets mode must hold the targets invariants.
		if p, err := Parse(payload, orgScope); err != nil {
			checkRejection(t, Request{}, err)
		} else if (p.Org == nil) == (p.Request == nil) {
			t.Fatalf("Parse set %+v: want exactly one of Request and Org", p)
		} else if p.Org != nil {
			checkOrg(t, *p.Org)
		}
		req, err := Decode(payload, testScope)
		if err != nil {
			checkRejection(t, req, err)
			return
		}
		checkRequest(t, payload, req)

		again, err2 := Decode(payload, testScope)
		if err2 != nil || !reflect.DeepEqual(again, req) {
			t.Fatalf("second Decode differs: %+v, %v; first %+v", again, err2, req)
		}
		// A direct request carried in a kms-rotator event's detail means
		// the same thing.
		if req.Source == SourceDirect && len(payload) < MaxPayloadBytes-100 {
			wrapped := `{"source":"kms-rotator","detail-type":"Rotate KMS Keys","detail":` + string(payload) + `}`
			ev, err := Decode([]byte(wrapped), testScope)
			if err != nil {
				t.Fatalf("direct payload accepted but the same as an event's detail rejected: %v", err)
			}
			ev.Source = SourceDirect
			if !reflect.DeepEqual(ev, req) {
				t.Fatalf("as an event: %+v, direct: %+v", ev, req)
			}
		}
	})
}

// checkOrg asserts the invariants of an accepted organization request.
func checkOrg(t *testing.T, req Org) {
	t.Helper()
	if req.Execution != "" && !executionPattern.MatchString(req.Execution) {
		t.Fatalf("execution %q accepted", req.Execution)
	}
	if req.Mode == ModeOrgSummary {
		if req.Execution == "" || !strings.HasPrefix(req.Manifest, OrgPrefix(req.Execution)) || strings.Contains(req.Manifest, "/../") {
			t.Fatalf("org-summary request %+v outside its execution's folder", req)
		}
		return
	}
	if len(req.OrgTargets) == 0 || len(req.OrgTargets) > MaxOrgTargets || len(req.OrgRegions) == 0 || len(req.OrgRegions) > MaxOrgRegions {
		t.Fatalf("targets request with %d orgTargets, %d orgRegions", len(req.OrgTargets), len(req.OrgRegions))
	}
	for i, id := range req.OrgTargets {
		if !validAccount(id) && !IsParentID(id) || slices.Contains(req.OrgTargets[:i], id) {
			t.Fatalf("orgTargets[%d] %q is not an account, OU or root ID, or repeats", i, id)
		}
	}
	for i, r := range req.OrgRegions {
		if !validRegion(r) || partitionOfRegion(r) != orgScope.Partition || slices.Contains(req.OrgRegions[:i], r) {
			t.Fatalf("orgRegions[%d] %q is not a Region of %s, or repeats", i, r, orgScope.Partition)
		}
	}
}

// checkRejection asserts the shape of a rejection.
func checkRejection(t *testing.T, req Request, err error) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %T %v is not a *ValidationError", err, err)
	}
	if ve.Field == "" || ve.Msg == "" {
		t.Fatalf("error without field or message: %#v", ve)
	}
	if len(err.Error()) > maxErrorLen {
		t.Fatalf("error of %d bytes: %.200s…", len(err.Error()), err)
	}
	if !utf8.ValidString(err.Error()) {
		t.Fatalf("error is not valid UTF-8: %q", err.Error())
	}
	if !reflect.DeepEqual(req, Request{}) {
		t.Fatalf("rejected payload returned %+v", req)
	}
}

// checkRequest asserts every invariant of an accepted Request.
func checkRequest(t *testing.T, payload []byte, req Request) {
	t.Helper()
	if len(payload) > MaxPayloadBytes || !utf8.Valid(payload) {
		t.Fatalf("accepted a payload of %d bytes, valid UTF-8 %v", len(payload), utf8.Valid(payload))
	}
	if !req.Mode.Valid() {
		t.Fatalf("accepted mode %q", req.Mode)
	}
	if !slices.Contains([]string{SourceScheduledEvent, SourceCustomEvent, SourceDirect}, req.Source) {
		t.Fatalf("accepted source %q", req.Source)
	}
	if req.Source == SourceScheduledEvent && (req.Mode != ModeScheduled || req.DryRun) {
		t.Fatalf("a Scheduled Event became %+v", req)
	}
	switch req.Mode {
	case ModePlan:
		if !req.DryRun {
			t.Fatal("plan without DryRun")
		}
	case ModeReport:
		if req.DryRun {
			t.Fatal("report with DryRun")
		}
	}
	if c := req.Continuation; c != nil {
		if req.Mode == ModeIncident || req.Source == SourceScheduledEvent {
			t.Fatalf("a continuation in mode %s from %s", req.Mode, req.Source)
		}
		if c.Chain < 1 || c.Chain > MaxChain || c.RunID == "" {
			t.Fatalf("continuation %+v", *c)
		}
		if ref, err := ParseKeyRef(c.After); err != nil || ref.Kind != KeyARN || ref.Region != testScope.Region || ref.Account != testScope.Account {
			t.Fatalf("continuation cursor %q (%v)", c.After, err)
		}
	}
	if req.Mode != ModeIncident {
		if req.Keys != nil || req.Tag != nil || req.Reason != "" {
			t.Fatalf("mode %s with keys %v, tag %v, reason %q", req.Mode, req.Keys, req.Tag, req.Reason)
		}
		return
	}
	if (len(req.Keys) > 0) == (req.Tag != nil) {
		t.Fatalf("incident with %d keys and tag %v: want exactly one selector", len(req.Keys), req.Tag)
	}
	if strings.TrimSpace(req.Reason) == "" || len(req.Reason) > MaxReasonBytes || !utf8.ValidString(req.Reason) {
		t.Fatalf("incident reason %q", req.Reason)
	}
	if req.Tag != nil {
		if req.Tag.Key == "" || utf8.RuneCountInString(req.Tag.Key) > maxTagKeyLen || utf8.RuneCountInString(req.Tag.Value) > maxTagValueLen {
			t.Fatalf("tag %+v", *req.Tag)
		}
	}
	if len(req.Keys) > MaxKeys {
		t.Fatalf("%d keys", len(req.Keys))
	}
	seen := map[string]bool{}
	for i, k := range req.Keys {
		if seen[k.Raw] {
			t.Fatalf("keys[%d] %q is a textual duplicate", i, k.Raw)
		}
		seen[k.Raw] = true
		again, err := ParseKeyRef(k.Raw)
		if err != nil || again != k {
			t.Fatalf("keys[%d] %+v re-parses as %+v, %v", i, k, again, err)
		}
		if k.IsARN() {
			if k.Partition != testScope.Partition || k.Account != testScope.Account {
				t.Fatalf("keys[%d] %q is outside partition/account %+v", i, k.Raw, testScope)
			}
			if k.Region != testScope.Region && !(k.Kind == KeyARN && k.MultiRegion()) {
				t.Fatalf("keys[%d] %q is in region %s, not %s, and not a multi-Region key ARN", i, k.Raw, k.Region, testScope.Region)
			}
		}
	}
}

// FuzzParseKeyRef checks that ParseKeyRef never panics, that what it accepts
// is exactly one of the four documented forms rebuilt from its fields, and
// that an accepted key ID or alias name also parses inside an ARN.
func FuzzParseKeyRef(f *testing.F) {
	for _, s := range []string{
		id1, mrkID, arn2, "alias/payments", "alias/aws/ebs",
		"arn:aws:kms:us-east-1:012345678912:alias/payments",
		"arn:aws:kms:eu-west-1:012345678912:key/" + mrkID,
		"arn:aws-cn:kms:cn-north-1:111122223333:key/" + id1,
		"arn:aws-us-gov:kms:us-gov-west-1:111122223333:alias/x",
		"arn:aws-iso-b:kms:us-isob-east-1:111122223333:key/" + id1,
		"arn:aws-eusc:kms:eusc-de-east-1:111122223333:key/" + id1,
		"", " ", "alias/", "arn:", "arn:aws:kms:us-east-1:1234:key/x", strings.ToUpper(id1),
		"arn:aws:kms:cn-north-1:111122223333:key/" + id1, "alias/a\x00", "alias/\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKeyRef(s)
		if err != nil {
			if err.Error() == "" || len(err.Error()) > maxErrorLen {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
			if k != (KeyRef{}) {
				t.Fatalf("rejected %q but returned %+v", s, k)
			}
			return
		}
		if k.Raw != s || k.String() != s || !utf8.ValidString(s) || strings.TrimSpace(s) != s || len(s) > maxKeyRefLen {
			t.Fatalf("accepted %q as %+v", s, k)
		}
		var rebuilt string
		switch k.Kind {
		case KeyID:
			rebuilt = k.ID
		case AliasName:
			rebuilt = k.Alias
		case KeyARN:
			rebuilt = "arn:" + k.Partition + ":kms:" + k.Region + ":" + k.Account + ":key/" + k.ID
		case AliasARN:
			rebuilt = "arn:" + k.Partition + ":kms:" + k.Region + ":" + k.Account + ":" + k.Alias
		default:
			t.Fatalf("accepted %q with kind %d", s, k.Kind)
		}
		if rebuilt != s {
			t.Fatalf("%q rebuilds from %+v as %q", s, k, rebuilt)
		}
		if k.ID != "" && !validKeyID(k.ID) || k.Alias != "" && aliasNameProblem(k.Alias) != "" {
			t.Fatalf("accepted %q with ID %q alias %q", s, k.ID, k.Alias)
		}
		if (k.ID != "") != (k.Kind == KeyID || k.Kind == KeyARN) || (k.Alias != "") != (k.Kind == AliasName || k.Kind == AliasARN) {
			t.Fatalf("accepted %q with fields inconsistent with kind %s: %+v", s, k.Kind, k)
		}
		if k.IsARN() {
			if !knownPartition(k.Partition) || partitionOfRegion(k.Region) != k.Partition || !validRegion(k.Region) || !validAccount(k.Account) {
				t.Fatalf("accepted ARN %q with %+v", s, k)
			}
		} else if k.Partition != "" || k.Region != "" || k.Account != "" {
			t.Fatalf("accepted %q with ARN fields %+v", s, k)
		}
		// A bare ID or alias is also valid inside an ARN of the same kind.
		switch k.Kind {
		case KeyID:
			a, err := ParseKeyRef("arn:aws:kms:us-east-1:012345678912:key/" + s)
			if err != nil || a.Kind != KeyARN || a.ID != s {
				t.Fatalf("key ID %q inside an ARN: %+v, %v", s, a, err)
			}
		case AliasName:
			a, err := ParseKeyRef("arn:aws:kms:us-east-1:012345678912:" + s)
			if err != nil || a.Kind != AliasARN || a.Alias != s {
				t.Fatalf("alias %q inside an ARN: %+v, %v", s, a, err)
			}
		}
	})
}
