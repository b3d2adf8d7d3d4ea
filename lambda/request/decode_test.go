package request

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testScope is where the function runs in local runs and tests (docs/design.md "Configuration").
var testScope = Scope{Partition: "aws", Account: "012345678912", Region: "us-east-1"}

const (
	id1      = "1234abcd-12ab-34cd-56ef-1234567890ab"
	id2      = "0987dcba-09fe-87dc-65ba-ab0987654321"
	arn2     = "arn:aws:kms:us-east-1:012345678912:key/" + id2
	mrkID    = "mrk-1234abcd12ab34cd56ef1234567890ab"
	modeList = "(modes: scheduled, plan, incident, report, targets, org-summary)"
	fieldSet = "(fields: mode, keys, tag, reason, dryRun, force, wait, requestId, usage, target, continuation, orgTargets, orgRegions, execution, manifest)"
	keyShape = "(a key ID is 8-4-4-4-12 lowercase hex digits or mrk- and 32 lowercase hex digits)"
)

// mustRef parses a key identifier known to be valid.
func mustRef(t *testing.T, s string) KeyRef {
	t.Helper()
	k, err := ParseKeyRef(s)
	if err != nil {
		t.Fatalf("ParseKeyRef(%q): %v", s, err)
	}
	return k
}

// keyList renders n distinct key IDs as a JSON array body.
func keyList(n int) string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf(`"%08x-0000-0000-0000-000000000000"`, i)
	}
	return strings.Join(ks, ",")
}

func incidentWith(keys string) string {
	return `{"mode":"incident","keys":[` + keys + `],"reason":"INC-1"}`
}

func TestDecodeEventsFiles(t *testing.T) {
	for _, tc := range []struct {
		file string
		want func(t *testing.T) Request
	}{
		{"scheduled.json", func(*testing.T) Request {
			return Request{Mode: ModeScheduled, Source: SourceScheduledEvent}
		}},
		{"plan.json", func(*testing.T) Request {
			return Request{Mode: ModePlan, DryRun: true, Source: SourceDirect}
		}},
		{"report.json", func(*testing.T) Request {
			return Request{Mode: ModeReport, Source: SourceDirect}
		}},
		{"incident.json", func(t *testing.T) Request {
			return Request{Mode: ModeIncident, Source: SourceDirect, Reason: "INC-4711 suspected exposure",
				Keys: []KeyRef{mustRef(t, id1), mustRef(t, arn2), mustRef(t, "alias/payments")}}
		}},
		{"incident-eventbridge.json", func(t *testing.T) Request {
			return Request{Mode: ModeIncident, Source: SourceCustomEvent, Reason: "INC-4711 suspected exposure",
				Keys:      []KeyRef{mustRef(t, id1), mustRef(t, arn2), mustRef(t, "alias/payments")},
				EventTime: time.Date(2026, 11, 26, 6, 5, 0, 0, time.UTC), EventAccount: "012345678912"}
		}},
		{"incident-tag.json", func(*testing.T) Request {
			return Request{Mode: ModeIncident, Source: SourceDirect, Reason: "INC-4712 payments team credentials leaked",
				Tag: &Tag{Key: "team", Value: "payments"}}
		}},
	} {
		t.Run(tc.file+" decodes", func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("..", "..", "events", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(data, testScope)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if want := tc.want(t); !reflect.DeepEqual(got, want) {
				t.Fatalf("Decode:\n got %+v\nwant %+v", got, want)
			}
		})
	}
	// Every sample payload (but the fleet, which is not a payload) must be
	// covered above, so a new file cannot ship undecodable.
	t.Run("every events file decodes", func(t *testing.T) {
		files, err := filepath.Glob(filepath.Join("..", "..", "events", "*.json"))
		if err != nil || len(files) == 0 {
			t.Fatalf("glob events: %v, %d files", err, len(files))
		}
		for _, f := range files {
			if filepath.Base(f) == "fleet.json" {
				continue
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Decode(data, testScope); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
	})
}

func TestDecodeAccepts(t *testing.T) {
	reason1024 := strings.Repeat("r", MaxReasonBytes)
	for _, tc := range []struct {
		name    string
		payload string
		want    func(t *testing.T) Request
	}{
		{"Scheduler input for scheduled mode is a direct scheduled run", `{"mode":"scheduled"}`, func(*testing.T) Request {
			return Request{Mode: ModeScheduled, Source: SourceDirect}
		}},
		{"scheduled dryRun true is a dry run", `{"mode":"scheduled","dryRun":true}`, func(*testing.T) Request {
			return Request{Mode: ModeScheduled, DryRun: true, Source: SourceDirect}
		}},
		{"white space around the object is ignored", " \n\t{\"mode\":\"report\"}\r\n ", func(*testing.T) Request {
			return Request{Mode: ModeReport, Source: SourceDirect}
		}},
		{"scheduled event without detail is scheduled", `{"source":"aws.events","detail-type":"Scheduled Event"}`, func(*testing.T) Request {
			return Request{Mode: ModeScheduled, Source: SourceScheduledEvent}
		}},
		{"forced incident keeps force", `{"mode":"incident","keys":["alias/a"],"reason":"INC-1","force":true}`, func(t *testing.T) Request {
			return Request{Mode: ModeIncident, Source: SourceDirect, Reason: "INC-1", Force: true, Keys: []KeyRef{mustRef(t, "alias/a")}}
		}},
		{"incident with wait false does not wait", `{"mode":"incident","keys":["alias/a"],"reason":"INC-1","wait":false}`, func(t *testing.T) Request {
			return Request{Mode: ModeIncident, Source: SourceDirect, Reason: "INC-1", NoWait: true, Keys: []KeyRef{mustRef(t, "alias/a")}}
		}},
		{"incident with wait true waits", `{"mode":"incident","keys":["alias/a"],"reason":"INC-1","wait":true}`, func(t *testing.T) Request {
			return Request{Mode: ModeIncident, Source: SourceDirect, Reason: "INC-1", Keys: []KeyRef{mustRef(t, "alias/a")}}
		}},
		{"forced incident from EventBridge keeps force", `{"source":"kms-rotator","detail-type":"Rotate KMS Keys","detail":{"mode":"incident","keys":["alias/a"],"reason":"INC-1","force":true}}`, func(t *testing.T) Request {
			return Request{Mode: ModeIncident, Source: SourceCustomEvent, Reason: "INC-1", Force: true, Keys: []KeyRef{mustRef(t, "alias/a")}}
		}},
		{"custom event asking for a plan is a dry run", `{"source":"kms-rotator","detail-type":"Rotate KMS Keys","detail":{"mode":"plan"}}`, func(*testing.T) Request {
			return Request{Mode: ModePlan, DryRun: true, Source: SourceCustomEvent}
		}},
		{"textual duplicates are removed keeping the first", incidentWith(`"alias/a","` + id1 + `","alias/a","` + id1 + `"`), func(t *testing.T) Request {
			return Request{Mode: ModeIncident, Source: SourceDirect, Reason: "INC-1", Keys: []KeyRef{mustRef(t, "alias/a"), mustRef(t, id1)}}
		}},
		{"ID and ARN of one key are both kept for the engine to merge", incidentWith(`"` + id2 + `","` + arn2 + `"`), func(t *testing.T) Request {
			return Request{Mode: ModeIncident, Source: SourceDirect, Reason: "INC-1", Keys: []KeyRef{mustRef(t, id2), mustRef(t, arn2)}}
		}},
		{"multi-Region key ARN of another region is accepted", incidentWith(`"arn:aws:kms:eu-west-1:012345678912:key/` + mrkID + `"`), func(t *testing.T) Request {
			return Request{Mode: ModeIncident, Source: SourceDirect, Reason: "INC-1", Keys: []KeyRef{mustRef(t, "arn:aws:kms:eu-west-1:012345678912:key/"+mrkID)}}
		}},
		{"AWS managed alias is accepted for the engine to skip", incidentWith(`"alias/aws/ebs"`), func(t *testing.T) Request {
			return Request{Mode: ModeIncident, Source: SourceDirect, Reason: "INC-1", Keys: []KeyRef{mustRef(t, "alias/aws/ebs")}}
		}},
		{"alias ARN of the function's region is accepted", incidentWith(`"arn:aws:kms:us-east-1:012345678912:alias/payments"`), func(t *testing.T) Request {
			return Request{Mode: ModeIncident, Source: SourceDirect, Reason: "INC-1", Keys: []KeyRef{mustRef(t, "arn:aws:kms:us-east-1:012345678912:alias/payments")}}
		}},
		{"incident dry run is a dry run", `{"mode":"incident","keys":["` + id1 + `"],"reason":"drill","dryRun":true}`, func(t *testing.T) Request {
			return Request{Mode: ModeIncident, Source: SourceDirect, Reason: "drill", DryRun: true, Keys: []KeyRef{mustRef(t, id1)}}
		}},
		{"reason of 1024 bytes with a newline is kept as given", `{"mode":"incident","tag":{"key":"team","value":""},"reason":"` + reason1024[:1022] + `\n"}`, func(*testing.T) Request {
			return Request{Mode: ModeIncident, Source: SourceDirect, Reason: reason1024[:1022] + "\n", Tag: &Tag{Key: "team", Value: ""}}
		}},
		{"tag with unicode letters and allowed punctuation is accepted", `{"mode":"incident","tag":{"key":"aws:cloudformation:stack-name","value":"Zahlungs Dienst_1.0/+=@"},"reason":"x"}`, func(*testing.T) Request {
			return Request{Mode: ModeIncident, Source: SourceDirect, Reason: "x", Tag: &Tag{Key: "aws:cloudformation:stack-name", Value: "Zahlungs Dienst_1.0/+=@"}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode([]byte(tc.payload), testScope)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if want := tc.want(t); !reflect.DeepEqual(got, want) {
				t.Fatalf("Decode:\n got %+v\nwant %+v", got, want)
			}
		})
	}

	t.Run("1000 distinct keys are accepted in order", func(t *testing.T) {
		got, err := Decode([]byte(incidentWith(keyList(MaxKeys))), testScope)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Keys) != MaxKeys || got.Keys[999].ID != "000003e7-0000-0000-0000-000000000000" {
			t.Fatalf("got %d keys, last %+v", len(got.Keys), got.Keys[len(got.Keys)-1])
		}
	})
	t.Run("1000 copies of one key become one", func(t *testing.T) {
		got, err := Decode([]byte(incidentWith(strings.TrimSuffix(strings.Repeat(`"alias/payments",`, MaxKeys), ","))), testScope)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Keys) != 1 || got.Keys[0].Alias != "alias/payments" {
			t.Fatalf("got %+v", got.Keys)
		}
	})
}

// badPayloads is the bad-input corpus: each payload with the exact error the
// caller sees. Add a case in one line; FuzzDecode seeds from it too.
var badPayloads = []struct {
	name, payload, want string
}{
	// The payload as a whole.
	{"empty payload", ``, `payload: empty; want a JSON object`},
	// Repeat safety and visible reasons.
	{"force with a tag selector", `{"mode":"incident","tag":{"key":"team","value":"a"},"reason":"INC-1","force":true}`,
		`force: accepted only with keys, never with a tag selector: name the keys to rotate inside their cooldown`},
	{"requestId outside incident", `{"mode":"plan","requestId":"r-1"}`, `requestId: not accepted in mode plan (only incident takes requestId)`},
	{"requestId empty", `{"mode":"incident","keys":["alias/a"],"reason":"INC-1","requestId":""}`, `requestId: 0 characters; give 1 to 128`},
	{"requestId with a space", `{"mode":"incident","keys":["alias/a"],"reason":"INC-1","requestId":"soar 1"}`,
		`requestId: contains ' '; use letters, digits and . _ : / @ + = -`},
	{"reason of zero-width spaces", `{"mode":"incident","keys":["alias/a"],"reason":"\u200b\u200b"}`,
		`reason: contains invisible or line-separating character '\u200b'`},
	{"reason with a line separator", `{"mode":"incident","keys":["alias/a"],"reason":"INC-1\u2028forged line"}`,
		`reason: contains invisible or line-separating character '\u2028'`},
	{"reason with a paragraph separator", `{"mode":"incident","keys":["alias/a"],"reason":"INC-1\u2029x"}`,
		`reason: contains invisible or line-separating character '\u2029'`},
	{"reason of punctuation-free spaces", `{"mode":"incident","keys":["alias/a"],"reason":"\u3000\t"}`,
		`reason: blank; say why the keys are rotated (e.g. "INC-4711 suspected exposure")`},
	{"event time not RFC 3339", `{"source":"kms-rotator","detail-type":"Rotate KMS Keys","time":"yesterday","detail":{"mode":"incident","keys":["alias/a"],"reason":"INC-1"}}`,
		`time: "yesterday" is not an RFC 3339 time`},
	{"white space only", " \n ", `payload: empty; want a JSON object`},
	{"null", `null`, `payload: want a JSON object, got null`},
	{"array of requests", `[{"mode":"plan"}]`, `payload: want a JSON object, got array`},
	{"bare string", `"plan"`, `payload: want a JSON object, got string`},
	{"number", `42`, `payload: want a JSON object, got number`},
	{"missing value", `{"mode":}`, `payload: invalid JSON at byte 9: invalid character '}' looking for beginning of value`},
	{"truncated object", `{"mode":"plan"`, `payload: invalid JSON at byte 14: unexpected end of JSON input`},
	{"trailing comma", `{"mode":"plan",}`, `payload: invalid JSON at byte 16: invalid character '}' looking for beginning of object key string`},
	{"single quotes", `{'mode':'plan'}`, `payload: invalid JSON at byte 2: invalid character '\'' looking for beginning of object key string`},
	{"second object after the first", `{"mode":"plan"}{"mode":"incident"}`, `payload: trailing data after the JSON object at byte 15`},
	{"garbage after the object", "{\"mode\":\"plan\"}\n#", `payload: trailing data after the JSON object at byte 16`},
	{"non-UTF-8 byte in a value", "{\"mode\":\"incident\",\"tag\":{\"key\":\"team\",\"value\":\"pay\xffments\"},\"reason\":\"x\"}", `payload: not valid UTF-8 (first bad byte at offset 51)`},
	{"non-UTF-8 byte in a field name", "{\"mo\xc3de\":\"plan\"}", `payload: not valid UTF-8 (first bad byte at offset 4)`},
	{"unpaired surrogate escape in reason", `{"mode":"incident","keys":["alias/a"],"reason":"INC \ud800"}`, `reason: contains U+FFFD (invalid UTF-8 or an unpaired surrogate escape)`},
	{"1 MB reason", `{"mode":"incident","keys":["alias/a"],"reason":"` + strings.Repeat("x", 1<<20) + `"}`, `payload: 1048626 bytes; at most 524288`},
	{"1 MB key", `{"mode":"incident","keys":["` + strings.Repeat("a", 1<<20) + `"],"reason":"x"}`, `payload: 1048620 bytes; at most 524288`},
	{"duplicate field", `{"mode":"plan","mode":"incident"}`, `mode: given twice`},
	{"duplicate field spelled with an escape", `{"mode":"plan","m\u006fde":"incident"}`, `mode: given twice`},

	// Fields and modes.
	{"missing mode", `{}`, `mode: required ` + modeList},
	{"mode of wrong type", `{"mode":1}`, `mode: want a string, got number`},
	{"mode null", `{"mode":null}`, `mode: want a string, got null`},
	{"mode typo", `{"mode":"sheduled"}`, `mode: unknown mode "sheduled"; did you mean "scheduled"? ` + modeList},
	{"mode in capitals", `{"mode":"INCIDENT"}`, `mode: unknown mode "INCIDENT"; did you mean "incident"? ` + modeList},
	{"mode abbreviated", `{"mode":"rep"}`, `mode: unknown mode "rep"; did you mean "report"? ` + modeList},
	{"unknown mode", `{"mode":"sweep"}`, `mode: unknown mode "sweep" ` + modeList},
	{"empty mode", `{"mode":""}`, `mode: unknown mode "" ` + modeList},
	{"unknown field", `{"mode":"plan","forced":true}`, `forced: unknown field; did you mean "force"? ` + fieldSet},
	{"force in plan mode", `{"mode":"plan","force":true}`, `force: not accepted in mode plan (only incident takes force)`},
	{"force in scheduled mode", `{"mode":"scheduled","force":false}`, `force: not accepted in mode scheduled (only incident takes force)`},
	{"wait in report mode", `{"mode":"report","wait":false}`, `wait: not accepted in mode report (only incident takes wait)`},
	{"wait as a string", `{"mode":"incident","keys":["alias/a"],"reason":"x","wait":"no"}`, `wait: want a boolean, got string`},
	{"force as a string", `{"mode":"incident","keys":["alias/a"],"reason":"x","force":"yes"}`, `force: want a boolean, got string`},
	{"field in wrong case", `{"Mode":"plan"}`, `Mode: unknown field; did you mean "mode"? ` + fieldSet},
	{"dryrun misspelt", `{"mode":"scheduled","dry_run":true}`, `dry_run: unknown field; did you mean "dryRun"? ` + fieldSet},
	{"field name with control characters", "{\"mode\":\"plan\",\"\\u001b[2J\":1}", `"\x1b[2J": unknown field ` + fieldSet},
	{"keys in plan mode", `{"mode":"plan","keys":["alias/a"]}`, `keys: not accepted in mode plan (only incident takes keys)`},
	{"tag in report mode", `{"mode":"report","tag":{"key":"team","value":"payments"}}`, `tag: not accepted in mode report (only incident takes tag)`},
	{"reason in scheduled mode", `{"mode":"scheduled","reason":"why not"}`, `reason: not accepted in mode scheduled (only incident takes reason)`},
	{"dryRun in plan mode", `{"mode":"plan","dryRun":false}`, `dryRun: not accepted in mode plan (plan is always a dry run)`},
	{"dryRun in report mode", `{"mode":"report","dryRun":true}`, `dryRun: not accepted in mode report (report never rotates)`},
	{"dryRun as a string", `{"mode":"scheduled","dryRun":"true"}`, `dryRun: want a boolean, got string`},
	{"dryRun as a number", `{"mode":"incident","keys":["alias/a"],"reason":"x","dryRun":1}`, `dryRun: want a boolean, got number`},

	// Incident selection.
	{"incident without keys or tag", `{"mode":"incident","reason":"INC-1"}`, `keys: incident mode needs keys (key IDs, key ARNs, alias names or alias ARNs) or tag`},
	{"incident with keys and tag", `{"mode":"incident","keys":["alias/a"],"tag":{"key":"team","value":"payments"},"reason":"INC-1"}`, `keys: give keys or tag, not both`},
	{"empty key list", `{"mode":"incident","keys":[],"reason":"INC-1"}`, `keys: empty; give 1 to 1000 keys`},
	{"keys as a string", `{"mode":"incident","keys":"alias/payments","reason":"INC-1"}`, `keys: want an array of strings, got string`},
	{"keys null", `{"mode":"incident","keys":null,"reason":"INC-1"}`, `keys: want an array of strings, got null`},
	{"key as a number", incidentWith(`"alias/a",1234`), `keys[1]: want a string, got number`},
	{"key as an object", incidentWith(`{"keyId":"` + id1 + `"}`), `keys[0]: want a string, got object`},
	{"nested key arrays", incidentWith(`[[["alias/a"]]]`), `keys[0]: want a string, got array`},
	{"1001 keys", incidentWith(keyList(MaxKeys + 1)), `keys: 1001 keys; at most 1000 per request`},
	{"1001 copies of one key", incidentWith(strings.TrimSuffix(strings.Repeat(`"alias/a",`, MaxKeys+1), ",")), `keys: 1001 keys; at most 1000 per request`},
	{"empty key", incidentWith(`""`), `keys[0]: empty key identifier`},
	{"malformed key ID", incidentWith(`"alias/a","1234abcd"`), `keys[1]: "1234abcd" is not a key ID, key ARN, alias name or alias ARN ` + keyShape},
	{"key with trailing space", incidentWith(`"` + id1 + ` "`), `keys[0]: "1234abcd-12ab-34cd-56ef-1234567890ab " has leading or trailing white space`},
	{"key with NUL", incidentWith(`"alias/a\u0000b"`), `keys[0]: "alias/a\x00b" contains '\x00'; alias names use only letters, digits, '/', '_' and '-'`},
	{"key of 3000 bytes", incidentWith(`"` + strings.Repeat("k", 3000) + `"`), `keys[0]: "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk…" is 3000 bytes; a key identifier is at most 2048`},
	{"another account's key ARN", incidentWith(`"arn:aws:kms:us-east-1:111122223333:key/` + id1 + `"`), `keys[0]: "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab" is in account 111122223333, the function runs in 012345678912`},
	{"another account's multi-Region key ARN", incidentWith(`"arn:aws:kms:eu-west-1:111122223333:key/` + mrkID + `"`), `keys[0]: "arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab" is in account 111122223333, the function runs in 012345678912`},
	{"another partition's key ARN", incidentWith(`"arn:aws-cn:kms:cn-north-1:012345678912:key/` + id1 + `"`), `keys[0]: "arn:aws-cn:kms:cn-north-1:012345678912:key/1234abcd-12ab-34cd-56ef-1234567890ab" is in partition aws-cn, the function runs in aws`},
	{"another region's key ARN", incidentWith(`"alias/a","alias/b","alias/c","arn:aws:kms:eu-west-1:012345678912:key/` + id1 + `"`), `keys[3]: "arn:aws:kms:eu-west-1:012345678912:key/1234abcd-12ab-34cd-56ef-1234567890ab" is in region eu-west-1, the function runs in us-east-1`},
	{"another region's alias ARN", incidentWith(`"arn:aws:kms:eu-west-1:012345678912:alias/payments"`), `keys[0]: "arn:aws:kms:eu-west-1:012345678912:alias/payments" is in region eu-west-1, the function runs in us-east-1`},
	{"ARN of another service", incidentWith(`"arn:aws:lambda:us-east-1:012345678912:function:f"`), `keys[0]: "arn:aws:lambda:us-east-1:012345678912:function:f" is not a KMS ARN (service "lambda")`},
	{"ARN of an unknown partition", incidentWith(`"arn:aws-mars:kms:us-east-1:012345678912:key/` + id1 + `"`), `keys[0]: "arn:aws-mars:kms:us-east-1:012345678912:key/1234abcd-12ab-34cd-56ef-1234567890ab" has unknown partition "aws-mars" (want one of aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b, aws-iso-e, aws-iso-f, aws-eusc)`},

	// Reason and tag.
	{"incident without reason", `{"mode":"incident","keys":["alias/a"]}`, `reason: required in mode incident (e.g. "INC-4711 suspected exposure")`},
	{"blank reason", `{"mode":"incident","keys":["alias/a"],"reason":" \t "}`, `reason: blank; say why the keys are rotated (e.g. "INC-4711 suspected exposure")`},
	{"reason null", `{"mode":"incident","keys":["alias/a"],"reason":null}`, `reason: want a string, got null`},
	{"reason as an object", `{"mode":"incident","keys":["alias/a"],"reason":{"ticket":"INC-1"}}`, `reason: want a string, got object`},
	{"reason of 1025 bytes", `{"mode":"incident","keys":["alias/a"],"reason":"` + strings.Repeat("x", MaxReasonBytes+1) + `"}`, `reason: 1025 bytes; at most 1024`},
	{"reason of 400 KB", `{"mode":"incident","keys":["alias/a"],"reason":"` + strings.Repeat("x", 400<<10) + `"}`, `reason: 409600 bytes; at most 1024`},
	{"reason with a terminal escape", `{"mode":"incident","keys":["alias/a"],"reason":"INC-1 \u001b[31mred"}`, `reason: contains control character '\x1b'`},
	{"reason with a right-to-left override", `{"mode":"incident","keys":["alias/a"],"reason":"INC-1 \u202egnp.exe"}`, `reason: contains bidirectional control character '\u202e'`},
	{"tag as a string", `{"mode":"incident","tag":"team=payments","reason":"x"}`, `tag: want a JSON object, got string`},
	{"tag without value", `{"mode":"incident","tag":{"key":"team"},"reason":"x"}`, `tag.value: required`},
	{"tag with an unknown field", `{"mode":"incident","tag":{"key":"team","value":"payments","values":["a"]},"reason":"x"}`, `tag.values: unknown field; did you mean "value"? (fields: key, value)`},
	{"tag with an empty key", `{"mode":"incident","tag":{"key":"","value":"payments"},"reason":"x"}`, `tag.key: empty`},
	{"tag key of 129 characters", `{"mode":"incident","tag":{"key":"` + strings.Repeat("k", 129) + `","value":"v"},"reason":"x"}`, `tag.key: 129 characters; at most 128`},
	{"tag value with a newline", `{"mode":"incident","tag":{"key":"team","value":"pay\nments"},"reason":"x"}`, `tag.value: contains '\n'; tags use letters, numbers, spaces and _ . : / = + - @`},
	{"tag value as a number", `{"mode":"incident","tag":{"key":"team","value":7},"reason":"x"}`, `tag.value: want a string, got number`},

	// Continuation (the function's own re-invocation).
	{"continuation in incident mode", `{"mode":"incident","keys":["alias/a"],"reason":"x","continuation":{"runId":"r","after":"` + arn2 + `","chain":1}}`, `continuation: not accepted in mode incident (only scheduled, plan and report runs continue)`},
	{"continuation as a string", `{"mode":"scheduled","continuation":"` + arn2 + `"}`, `continuation: want a JSON object, got string`},
	{"continuation without chain", `{"mode":"scheduled","continuation":{"runId":"r","after":"` + arn2 + `"}}`, `continuation.chain: required`},
	{"continuation with an unknown field", `{"mode":"plan","continuation":{"runId":"r","after":"` + arn2 + `","chain":1,"next":"x"}}`, `continuation.next: unknown field (fields: runId, after, chain)`},
	{"continuation chain 0", `{"mode":"scheduled","continuation":{"runId":"r","after":"` + arn2 + `","chain":0}}`, `continuation.chain: "0": want an integer from 1 to 100`},
	{"continuation chain 101", `{"mode":"scheduled","continuation":{"runId":"r","after":"` + arn2 + `","chain":101}}`, `continuation.chain: "101": want an integer from 1 to 100`},
	{"continuation chain as a fraction", `{"mode":"report","continuation":{"runId":"r","after":"` + arn2 + `","chain":1.5}}`, `continuation.chain: "1.5": want an integer from 1 to 100`},
	{"continuation chain as a string", `{"mode":"scheduled","continuation":{"runId":"r","after":"` + arn2 + `","chain":"1"}}`, `continuation.chain: want an integer, got string`},
	{"continuation cursor is a key ID", `{"mode":"scheduled","continuation":{"runId":"r","after":"` + id2 + `","chain":1}}`, `continuation.after: "` + id2 + `" is not a key ARN`},
	{"continuation cursor is an alias ARN", `{"mode":"scheduled","continuation":{"runId":"r","after":"arn:aws:kms:us-east-1:012345678912:alias/a","chain":1}}`, `continuation.after: "arn:aws:kms:us-east-1:012345678912:alias/a" is not a key ARN`},
	{"continuation cursor in another account", `{"mode":"scheduled","continuation":{"runId":"r","after":"arn:aws:kms:us-east-1:111122223333:key/` + id2 + `","chain":1}}`, `continuation.after: "arn:aws:kms:us-east-1:111122223333:key/` + id2 + `" is in account 111122223333, the function runs in 012345678912`},
	{"continuation cursor of a multi-Region key in another region", `{"mode":"scheduled","continuation":{"runId":"r","after":"arn:aws:kms:eu-west-1:012345678912:key/` + mrkID + `","chain":1}}`, `continuation.after: "arn:aws:kms:eu-west-1:012345678912:key/` + mrkID + `" is in region eu-west-1, the function runs in us-east-1`},
	{"continuation run ID with a newline", `{"mode":"scheduled","continuation":{"runId":"a\nb","after":"` + arn2 + `","chain":1}}`, `continuation.runId: "a\nb" is not a run ID (1 to 64 letters, digits and . _ : -)`},
	{"continuation in a Scheduled Event", `{"source":"aws.events","detail-type":"Scheduled Event","detail":{"continuation":{}}}`, `detail.continuation: unknown field (a Scheduled Event's detail is empty)`},

	// EventBridge envelopes.
	{"event from another source", `{"source":"aws.s3","detail-type":"Object Created","detail":{}}`, `source: "aws.s3" is not accepted (want "aws.events" or "kms-rotator")`},
	{"event without source", `{"detail-type":"Scheduled Event","detail":{}}`, `source: required in an EventBridge event (want "aws.events" or "kms-rotator")`},
	{"event without detail-type", `{"source":"aws.events","detail":{}}`, `detail-type: required in an EventBridge event`},
	{"scheduled event with the custom detail-type", `{"source":"aws.events","detail-type":"Rotate KMS Keys","detail":{}}`, `detail-type: "Rotate KMS Keys" is not accepted from source aws.events (want "Scheduled Event")`},
	{"scheduled event smuggling a mode in detail", `{"source":"aws.events","detail-type":"Scheduled Event","detail":{"mode":"incident"}}`, `detail.mode: unknown field (a Scheduled Event's detail is empty)`},
	{"scheduled event with a request field at the top", `{"source":"aws.events","detail-type":"Scheduled Event","detail":{},"mode":"incident"}`, `mode: unknown field in an EventBridge event (fields: version, id, detail-type, source, account, time, region, resources, detail, replay-name)`},
	{"scheduled event with resources as a string", `{"source":"aws.events","detail-type":"Scheduled Event","resources":"arn:aws:events:us-east-1:012345678912:rule/r"}`, `resources: want an array of strings, got string`},
	{"scheduled event with a numeric account", `{"source":"aws.events","detail-type":"Scheduled Event","account":12345678912}`, `account: want a string, got number`},
	{"custom event without detail", `{"source":"kms-rotator","detail-type":"Rotate KMS Keys"}`, `detail: required in a kms-rotator event`},
	{"custom event with detail as a string", `{"source":"kms-rotator","detail-type":"Rotate KMS Keys","detail":"{\"mode\":\"plan\"}"}`, `detail: want a JSON object, got string`},
	{"custom event with the wrong detail-type", `{"source":"kms-rotator","detail-type":"Scheduled Event","detail":{"mode":"plan"}}`, `detail-type: "Scheduled Event" is not accepted from source kms-rotator (want "Rotate KMS Keys")`},
	{"custom event with an unknown field in detail", `{"source":"kms-rotator","detail-type":"Rotate KMS Keys","detail":{"mode":"plan","forse":true}}`, `detail.forse: unknown field; did you mean "force"? ` + fieldSet},
	{"custom event forcing a plan", `{"source":"kms-rotator","detail-type":"Rotate KMS Keys","detail":{"mode":"plan","force":true}}`, `detail.force: not accepted in mode plan (only incident takes force)`},
	{"replayed incident event", `{"source":"kms-rotator","detail-type":"Rotate KMS Keys","replay-name":"r1","detail":{"mode":"incident","keys":["alias/a"],"reason":"x"}}`, `replay-name: events replayed from an EventBridge archive are refused: a replay would repeat rotations that were already spent; send a new request instead`},
	{"replayed scheduled event", `{"source":"aws.events","detail-type":"Scheduled Event","replay-name":"r1","detail":{}}`, `replay-name: events replayed from an EventBridge archive are refused: a replay would repeat rotations that were already spent; send a new request instead`},
	{"custom event with a duplicate field in detail", `{"source":"kms-rotator","detail-type":"Rotate KMS Keys","detail":{"mode":"plan","mode":"incident"}}`, `detail.mode: given twice`},
	{"custom event with another region's key", `{"source":"kms-rotator","detail-type":"Rotate KMS Keys","detail":{"mode":"incident","keys":["arn:aws:kms:us-west-2:012345678912:key/` + id1 + `"],"reason":"x"}}`, `detail.keys[0]: "arn:aws:kms:us-west-2:012345678912:key/1234abcd-12ab-34cd-56ef-1234567890ab" is in region us-west-2, the function runs in us-east-1`},
	{"custom event incident without reason", `{"source":"kms-rotator","detail-type":"Rotate KMS Keys","detail":{"mode":"incident","tag":{"key":"team","value":"payments"}}}`, `detail.reason: required in mode incident (e.g. "INC-4711 suspected exposure")`},
	{"custom event with a mode typo", `{"source":"kms-rotator","detail-type":"Rotate KMS Keys","detail":{"mode":"incidnet","keys":["alias/a"],"reason":"x"}}`, `detail.mode: unknown mode "incidnet"; did you mean "incident"? ` + modeList},
}

func TestDecodeRejects(t *testing.T) {
	if len(badPayloads) < 30 {
		t.Fatalf("bad-input corpus has %d cases, want at least 30", len(badPayloads))
	}
	for _, tc := range badPayloads {
		t.Run(tc.name+" is rejected", func(t *testing.T) {
			got, err := Decode([]byte(tc.payload), testScope)
			if err == nil {
				t.Fatalf("Decode = %+v, want error %s", got, tc.want)
			}
			if err.Error() != tc.want {
				t.Fatalf("Decode error:\n got %s\nwant %s", err, tc.want)
			}
			checkRejection(t, got, err) // a short *ValidationError and the zero Request
		})
	}
}

func TestDecodeRejectsBadScope(t *testing.T) {
	for _, tc := range []struct {
		name  string
		scope Scope
		want  string
	}{
		{"zero scope", Scope{}, `scope: unknown partition "" (want one of aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b, aws-iso-e, aws-iso-f, aws-eusc)`},
		{"region of another partition", Scope{Partition: "aws", Region: "cn-north-1", Account: "012345678912"}, `scope: region cn-north-1 is not in partition aws`},
		{"short account", Scope{Partition: "aws", Region: "us-east-1", Account: "1"}, `scope: malformed account "1" (want 12 digits)`},
	} {
		t.Run(tc.name+" is rejected", func(t *testing.T) {
			_, err := Decode([]byte(`{"mode":"plan"}`), tc.scope)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Decode error = %v, want %s", err, tc.want)
			}
		})
	}
}

func TestDecodeTarget(t *testing.T) {
	org := testScope
	org.Organization = true
	const member = "210987654321"
	memberKey := "arn:aws:kms:eu-west-1:" + member + ":key/1234abcd-12ab-34cd-56ef-1234567890ab"
	ok := []struct {
		name    string
		payload string
		want    Request
	}{
		{"scheduled sweep of a member account", `{"mode":"scheduled","target":{"account":"` + member + `","region":"eu-west-1"}}`,
			Request{Mode: ModeScheduled, Source: SourceDirect, Target: &Target{Account: member, Region: "eu-west-1"}}},
		{"report of a member account", `{"mode":"report","target":{"account":"` + member + `","region":"us-east-1"}}`,
			Request{Mode: ModeReport, Source: SourceDirect, Target: &Target{Account: member, Region: "us-east-1"}}},
		{"continuation of a member sweep, cursor in the member account", `{"mode":"scheduled","target":{"account":"` + member + `","region":"eu-west-1"},"continuation":{"runId":"r","after":"` + memberKey + `","chain":1}}`,
			Request{Mode: ModeScheduled, Source: SourceDirect, Target: &Target{Account: member, Region: "eu-west-1"}, Continuation: &Continuation{RunID: "r", After: memberKey, Chain: 1}}},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode([]byte(tc.payload), org)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Decode = %+v, want %+v", got, tc.want)
			}
		})
	}
	t.Run("an incident may name a member account's key ARN", func(t *testing.T) {
		got, err := Decode([]byte(`{"mode":"incident","reason":"INC","keys":["`+memberKey+`"]}`), org)
		if err != nil || len(got.Keys) != 1 || got.Keys[0].Account != member {
			t.Fatalf("Decode = %+v, %v", got, err)
		}
	})
	bad := []struct{ name, payload, want string }{
		{"target outside organization mode", `{"mode":"scheduled","target":{"account":"` + member + `","region":"eu-west-1"}}`, "target: accepted only in organization mode (ROTATOR_MEMBER_ROLE_NAME set)"},
		{"malformed account", `{"mode":"scheduled","target":{"account":"12","region":"eu-west-1"}}`, `target.account: "12" is not an account ID (12 digits)`},
		{"region of another partition", `{"mode":"scheduled","target":{"account":"` + member + `","region":"cn-north-1"}}`, `target.region: "cn-north-1" is not in partition aws, where the function runs`},
		{"missing region", `{"mode":"scheduled","target":{"account":"` + member + `"}}`, `target.region: required`},
		{"cursor in another account than the target", `{"mode":"scheduled","target":{"account":"` + member + `","region":"eu-west-1"},"continuation":{"runId":"r","after":"arn:aws:kms:eu-west-1:012345678912:key/1234abcd-12ab-34cd-56ef-1234567890ab","chain":1}}`, `continuation.after: "arn:aws:kms:eu-west-1:012345678912:key/1234abcd-12ab-34cd-56ef-1234567890ab" is in account 012345678912, the run works in ` + member},
	}
	for _, tc := range bad {
		t.Run(tc.name+" is rejected", func(t *testing.T) {
			sc := org
			if strings.HasPrefix(tc.name, "target outside") {
				sc = testScope
			}
			_, err := Decode([]byte(tc.payload), sc)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Decode error = %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("outside organization mode a member key ARN is still rejected", func(t *testing.T) {
		if _, err := Decode([]byte(`{"mode":"incident","reason":"INC","keys":["`+memberKey+`"]}`), testScope); err == nil {
			t.Fatal("accepted")
		}
	})
}
