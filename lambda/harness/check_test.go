package harness

import (
	"strings"
	"testing"

	"github.com/kms-rotator/kms-rotator/lambda/rotator"
)

func TestCheckRotations(t *testing.T) {
	const a, b = "arn:aws:kms:us-east-1:012345678912:key/a", "arn:aws:kms:us-east-1:012345678912:key/b"
	const replica, primary = "arn:aws:kms:us-east-1:012345678912:key/mrk-1", "arn:aws:kms:eu-west-1:012345678912:key/mrk-1"
	one, two := 1, 2
	before := map[string]KeyRotations{
		a: {KeyID: "a", KeyARN: a, OnDemand: 1}, b: {KeyID: "b", KeyARN: b},
		replica: {KeyID: "mrk-1", KeyARN: replica}, primary: {KeyID: "mrk-1", KeyARN: primary},
	}
	rotatedA := &Report{Keys: []KeyReport{{KeyID: "a", KeyARN: a, Outcome: rotator.Rotated, OnDemandUsed: &two}}}
	tests := []struct {
		name    string
		after   map[string]KeyRotations
		reports []*Report
		want    string // in a problem; "" = no problem
	}{
		{name: "rotated key with one new rotation passes", reports: []*Report{rotatedA},
			after: map[string]KeyRotations{a: {KeyID: "a", OnDemand: 2}, b: before[b], replica: before[replica], primary: before[primary]}},
		{name: "rotation in progress counts as started", reports: []*Report{rotatedA},
			after: map[string]KeyRotations{a: {KeyID: "a", OnDemand: 1, InProgress: true}, b: before[b], replica: before[replica], primary: before[primary]}},
		{name: "rotated key without a new rotation fails", reports: []*Report{rotatedA}, want: "0 new on-demand rotation(s) in the emulator, 1 reported",
			after: map[string]KeyRotations{a: {KeyID: "a", OnDemand: 1}, b: before[b], replica: before[replica], primary: before[primary]}},
		{name: "unreported rotation fails", reports: []*Report{rotatedA}, want: b + ": 1 new",
			after: map[string]KeyRotations{a: {KeyID: "a", OnDemand: 2}, b: {KeyID: "b", OnDemand: 1}, replica: before[replica], primary: before[primary]}},
		{name: "double rotation fails", reports: []*Report{rotatedA}, want: "2 new",
			after: map[string]KeyRotations{a: {KeyID: "a", OnDemand: 3}, b: before[b], replica: before[replica], primary: before[primary]}},
		{name: "two runs rotating one key fail", reports: []*Report{rotatedA, rotatedA}, want: "reported rotated by 2 runs",
			after: map[string]KeyRotations{a: {KeyID: "a", OnDemand: 3}, b: before[b], replica: before[replica], primary: before[primary]}},
		{name: "replica follows its rotated primary", reports: []*Report{{Keys: []KeyReport{{KeyID: "mrk-1", KeyARN: primary, Outcome: rotator.Rotated}}}},
			after: map[string]KeyRotations{a: before[a], b: before[b], replica: {KeyID: "mrk-1", OnDemand: 1}, primary: {KeyID: "mrk-1", OnDemand: 1}}},
		{name: "budget that disagrees with the emulator fails", want: "onDemandUsed 1",
			reports: []*Report{{Keys: []KeyReport{{KeyID: "a", KeyARN: a, Outcome: rotator.Skipped, Reason: rotator.ReasonNotDue, OnDemandUsed: &one}}}},
			after:   map[string]KeyRotations{a: {KeyID: "a", OnDemand: 2, InProgress: false}, b: before[b], replica: before[replica], primary: before[primary]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := CheckRotations(before, tt.after, tt.reports...)
			if tt.want == "" {
				if len(problems) > 0 {
					t.Fatalf("problems: %q", problems)
				}
				return
			}
			if !strings.Contains(strings.Join(problems, "\n"), tt.want) {
				t.Fatalf("problems %q, want one containing %q", problems, tt.want)
			}
		})
	}
}

func TestCheckReportJSON(t *testing.T) {
	const valid = `{"runId":"r","mode":"scheduled","dryRun":false,"startedAt":"2026-11-26T06:00:00Z","finishedAt":"2026-11-26T06:00:01Z",
 "summary":{"candidates":2,"rotated":1,"wouldRotate":0,"skipped":1,"failed":0,"deferred":0,"reasons":{"not-due":1}},
 "keys":[{"keyId":"a","keyArn":"arn:a","alias":"alias/a","outcome":"rotated","reason":"","onDemandUsed":1,"onDemandRemaining":9,"lastRotation":"2026-11-26T06:00:00.5Z","nextDue":"2027-02-24T06:00:00Z"},
         {"keyId":"b","keyArn":"arn:b","alias":"","outcome":"skipped","reason":"not-due","onDemandUsed":0,"onDemandRemaining":10,"lastRotation":null,"nextDue":"2027-01-01T00:00:00Z"}]}`
	tests := []struct {
		name string
		raw  string
		want string // in a problem; "" = valid
	}{
		{name: "valid report passes", raw: valid},
		{name: "summary off by one fails", raw: strings.Replace(valid, `"rotated":1,`, `"rotated":2,`, 1), want: "summary"},
		{name: "reason paired with the wrong outcome fails", raw: strings.Replace(valid, `"outcome":"skipped","reason":"not-due"`, `"outcome":"failed","reason":"not-due"`, 1), want: "pairs the reason"},
		{name: "unknown outcome fails", raw: strings.Replace(valid, `"outcome":"rotated"`, `"outcome":"done"`, 1), want: "unknown outcome"},
		{name: "duplicate key fails", raw: strings.Replace(valid, `"keyArn":"arn:b"`, `"keyArn":"arn:a"`, 1), want: "listed twice"},
		{name: "missing nextDue fails", raw: strings.Replace(valid, `,"nextDue":"2027-01-01T00:00:00Z"`, ``, 1), want: "nextDue missing"},
		{name: "non-RFC3339 time fails", raw: strings.Replace(valid, `"lastRotation":null`, `"lastRotation":"yesterday"`, 1), want: "lastRotation"},
		{name: "failed entry without error fails", raw: strings.Replace(valid, `"outcome":"skipped","reason":"not-due"`, `"outcome":"failed","reason":"throttled"`, 1), want: "error member"},
		{name: "reasons not matching the entries fail", raw: strings.Replace(valid, `{"not-due":1}`, `{"not-due":1,"throttled":1}`, 1), want: "reasons[throttled]"},
		{name: "not JSON fails", raw: `Task timed out`, want: "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := CheckReportJSON([]byte(tt.raw))
			if tt.want == "" {
				if len(problems) > 0 {
					t.Fatalf("problems: %q", problems)
				}
				return
			}
			if !strings.Contains(strings.Join(problems, "\n"), tt.want) {
				t.Fatalf("problems %q, want one containing %q", problems, tt.want)
			}
		})
	}
}

func TestCheckMetrics(t *testing.T) {
	r := &Report{Mode: "scheduled", Summary: Summary{Candidates: 3, Rotated: 1, Skipped: 2}}
	line := `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"KMSRotator","Dimensions":[["Mode"]],"Metrics":[{"Name":"KeysCandidate"},{"Name":"KeysRotated"},{"Name":"KeysSkipped"},{"Name":"KeysFailed"},{"Name":"KeysDeferred"},{"Name":"RunsCompleted"}]}]},"Mode":"scheduled","KeysCandidate":3,"KeysRotated":1,"KeysSkipped":2,"KeysFailed":0,"KeysDeferred":0,"RunsCompleted":1}`
	tests := []struct {
		name string
		line string
		want string
	}{
		{name: "metrics equal to the summary pass", line: line},
		{name: "rotated count off fails", line: strings.Replace(line, `"KeysRotated":1`, `"KeysRotated":2`, 1), want: "KeysRotated = 2"},
		{name: "per-key dimension fails", line: strings.Replace(strings.Replace(line, `[["Mode"]]`, `[["Mode","KeyId"]]`, 1), `"Mode":"scheduled"`, `"Mode":"scheduled","KeyId":"k"`, 1), want: "KeyId"},
		{name: "other namespace fails", line: strings.Replace(line, `"KMSRotator"`, `"Other"`, 1), want: "namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := ParseEMFLines([]string{tt.line})
			if err != nil {
				t.Fatal(err)
			}
			problems := CheckMetrics(recs, r, "KMSRotator")
			if tt.want == "" {
				if len(problems) > 0 {
					t.Fatalf("problems: %q", problems)
				}
				return
			}
			if !strings.Contains(strings.Join(problems, "\n"), tt.want) {
				t.Fatalf("problems %q, want one containing %q", problems, tt.want)
			}
		})
	}
}
