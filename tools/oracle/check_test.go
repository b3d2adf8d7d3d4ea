package oracle

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestCheckRotations(t *testing.T) {
	const a, b = "arn:aws:kms:us-east-1:012345678912:key/a", "arn:aws:kms:us-east-1:012345678912:key/b"
	const replica, primary = "arn:aws:kms:us-east-1:012345678912:key/mrk-1", "arn:aws:kms:eu-west-1:012345678912:key/mrk-1"
	one, two := 1, 2
	before := Snapshot{
		a: {KeyID: "a", KeyARN: a, OnDemand: 1}, b: {KeyID: "b", KeyARN: b},
		replica: {KeyID: "mrk-1", KeyARN: replica}, primary: {KeyID: "mrk-1", KeyARN: primary},
	}
	rotatedA := &Report{Keys: []Entry{{KeyID: "a", KeyARN: a, Outcome: Rotated, OnDemandUsed: &two}}}
	tests := []struct {
		name    string
		after   Snapshot
		reports []*Report
		want    string // in a problem; "" = no problem
	}{
		{name: "rotated key with one new rotation passes", reports: []*Report{rotatedA},
			after: Snapshot{a: {KeyID: "a", OnDemand: 2}, b: before[b], replica: before[replica], primary: before[primary]}},
		{name: "rotation in progress counts as started", reports: []*Report{rotatedA},
			after: Snapshot{a: {KeyID: "a", OnDemand: 1, InProgress: true}, b: before[b], replica: before[replica], primary: before[primary]}},
		{name: "rotated key without a new rotation fails", reports: []*Report{rotatedA}, want: "0 new on-demand rotation(s) in the emulator, 1 reported",
			after: Snapshot{a: {KeyID: "a", OnDemand: 1}, b: before[b], replica: before[replica], primary: before[primary]}},
		{name: "unreported rotation fails", reports: []*Report{rotatedA}, want: b + ": 1 new",
			after: Snapshot{a: {KeyID: "a", OnDemand: 2}, b: {KeyID: "b", OnDemand: 1}, replica: before[replica], primary: before[primary]}},
		{name: "double rotation fails", reports: []*Report{rotatedA}, want: "2 new",
			after: Snapshot{a: {KeyID: "a", OnDemand: 3}, b: before[b], replica: before[replica], primary: before[primary]}},
		{name: "two runs rotating one key fail", reports: []*Report{rotatedA, rotatedA}, want: "reported rotated by 2 runs",
			after: Snapshot{a: {KeyID: "a", OnDemand: 3}, b: before[b], replica: before[replica], primary: before[primary]}},
		{name: "replica follows its rotated primary", reports: []*Report{{Keys: []Entry{{KeyID: "mrk-1", KeyARN: primary, Outcome: Rotated}}}},
			after: Snapshot{a: before[a], b: before[b], replica: {KeyID: "mrk-1", OnDemand: 1}, primary: {KeyID: "mrk-1", OnDemand: 1}}},
		{name: "unconfirmed key with its rotation applied passes", reports: []*Report{{Keys: []Entry{{KeyID: "b", KeyARN: b, Outcome: Failed, Reason: "unconfirmed", OnDemandUsed: new(int)}}}},
			after: Snapshot{a: before[a], b: {KeyID: "b", OnDemand: 1}, replica: before[replica], primary: before[primary]}},
		{name: "unconfirmed key without a rotation passes", reports: []*Report{{Keys: []Entry{{KeyID: "b", KeyARN: b, Outcome: Failed, Reason: "unconfirmed"}}}},
			after: Snapshot{a: before[a], b: before[b], replica: before[replica], primary: before[primary]}},
		{name: "unconfirmed key rotated twice fails", reports: []*Report{{Keys: []Entry{{KeyID: "b", KeyARN: b, Outcome: Failed, Reason: "unconfirmed"}}}}, want: "2 new",
			after: Snapshot{a: before[a], b: {KeyID: "b", OnDemand: 2}, replica: before[replica], primary: before[primary]}},
		{name: "budget that disagrees with the emulator fails", want: "onDemandUsed 1",
			reports: []*Report{{Keys: []Entry{{KeyID: "a", KeyARN: a, Outcome: Skipped, Reason: "not-due", OnDemandUsed: &one}}}},
			after:   Snapshot{a: {KeyID: "a", OnDemand: 2, InProgress: false}, b: before[b], replica: before[replica], primary: before[primary]}},
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

// validReport is a scheduled run's report that follows the contract.
const validReport = `{"runId":"r","mode":"scheduled","dryRun":false,"startedAt":"2026-11-26T06:00:00Z","finishedAt":"2026-11-26T06:00:01Z",
 "summary":{"candidates":4,"rotated":1,"wouldRotate":0,"skipped":3,"failed":0,"deferred":0,"overdue":1,"dueSoon":0,"materialExpiringSoon":0,"reasons":{"not-due":1,"budget-reserved":1,"automatic-rotation-soon":1}},
 "keys":[{"keyId":"a","keyArn":"arn:a","alias":"alias/a","outcome":"rotated","reason":"","onDemandUsed":1,"onDemandRemaining":24,"lastRotation":"2026-11-26T06:00:00.5Z","nextDue":"2027-02-24T06:00:00Z","materialAgeDays":0,"overdue":false,"keyMaterialIdBefore":"m-a"},
         {"keyId":"b","keyArn":"arn:b","alias":"","outcome":"skipped","reason":"not-due","next":"nothing to do","onDemandUsed":0,"onDemandRemaining":25,"lastRotation":null,"nextDue":"2027-01-01T00:00:00Z","materialAgeDays":59,"overdue":false},
         {"keyId":"c","keyArn":"arn:c","alias":"alias/c","outcome":"skipped","reason":"budget-reserved","next":"kept for incidents","onDemandUsed":23,"onDemandRemaining":2,"lastRotation":"2026-06-01T00:00:00Z","nextDue":"2026-08-30T00:00:00Z","materialAgeDays":178,"overdue":true,"overdueFor":"policy"},
         {"keyId":"d","keyArn":"arn:d","alias":"alias/d","outcome":"skipped","reason":"automatic-rotation-soon","next":"nothing to do","onDemandUsed":0,"onDemandRemaining":25,"lastRotation":"2026-11-26T06:00:00Z","nextDue":"2026-12-26T06:00:00Z","materialAgeDays":0,"overdue":false,"nextRotationDate":"2026-11-29T06:00:00Z"}]}`

func TestCheckReport(t *testing.T) {
	const valid = validReport
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
		{name: "failed entry without error fails", raw: strings.Replace(valid, `"outcome":"skipped","reason":"not-due"`, `"outcome":"failed","reason":"throttled"`, 1), want: "failed entry without an error"},
		{name: "reasons not matching the entries fail", raw: strings.Replace(valid, `{"not-due":1,`, `{"not-due":1,"throttled":1,`, 1), want: "reasons[throttled]"},
		{name: "not JSON fails", raw: `Task timed out`, want: "not a JSON object"},
		{name: "missing summary.overdue fails", raw: strings.Replace(valid, `"overdue":1,`, ``, 1), want: "summary.overdue"},
		{name: "summary.overdue not counting the entries fails", raw: strings.Replace(valid, `"overdue":1,`, `"overdue":2,`, 1), want: "summary.overdue = 2"},
		{name: "eligible entry without materialAgeDays fails", raw: strings.Replace(valid, `"materialAgeDays":59,`, ``, 1), want: "without materialAgeDays"},
		{name: "overdue rotated entry fails", raw: strings.Replace(strings.Replace(valid, `"materialAgeDays":0,"overdue":false,"keyMaterialIdBefore"`, `"materialAgeDays":0,"overdue":true,"keyMaterialIdBefore"`, 1), `"overdue":1,`, `"overdue":2,`, 1), want: "overdue although rotated"},
		{name: "past-due key not overdue fails", raw: strings.Replace(strings.Replace(valid, `"materialAgeDays":178,"overdue":true`, `"materialAgeDays":178,"overdue":false`, 1), `"overdue":1,`, `"overdue":0,`, 1), want: "overdue false, but nextDue 2026-08-30T00:00:00Z is before"},
		{name: "key waiting for its automatic rotation overdue fails", raw: strings.Replace(strings.Replace(valid, `"materialAgeDays":0,"overdue":false,"nextRotationDate"`, `"materialAgeDays":0,"overdue":true,"nextRotationDate"`, 1), `"overdue":1,`, `"overdue":2,`, 1), want: "overdue although skipped automatic-rotation-soon"},
		{name: "not-yet-due key overdue fails", raw: strings.Replace(strings.Replace(valid, `"materialAgeDays":59,"overdue":false`, `"materialAgeDays":59,"overdue":true`, 1), `"overdue":1,`, `"overdue":2,`, 1), want: "overdue true, but nextDue 2027-01-01T00:00:00Z is after"},
		{name: "automatic-rotation-soon without nextRotationDate fails", raw: strings.Replace(valid, `,"nextRotationDate":"2026-11-29T06:00:00Z"`, ``, 1), want: "without nextRotationDate"},
		{name: "error on a rotation-in-progress entry passes", raw: strings.Replace(strings.Replace(valid,
			`"reason":"automatic-rotation-soon"`, `"reason":"rotation-in-progress","error":"ConflictException: an automatic rotation begins within 20 minutes"`, 1),
			`"automatic-rotation-soon":1`, `"rotation-in-progress":1`, 1)},
		{name: "error on a not-due entry fails", raw: strings.Replace(valid, `"reason":"not-due"`, `"reason":"not-due","error":"x"`, 1), want: "error member present"},
		{name: "budget-exhausted with budget left fails", raw: strings.Replace(strings.Replace(valid, `"reason":"budget-reserved"`, `"reason":"budget-exhausted"`, 1), `"budget-reserved":1`, `"budget-exhausted":1`, 1), want: "budget-exhausted with onDemandRemaining 2"},
		{name: "recently-rotated without lastRotation fails", raw: strings.Replace(strings.Replace(valid, `"reason":"not-due"`, `"reason":"recently-rotated"`, 1), `"not-due":1`, `"recently-rotated":1`, 1), want: "recently-rotated without lastRotation"},
		{name: "recently-rotated refused by a ledger claim passes without lastRotation", raw: strings.Replace(strings.Replace(valid, `"reason":"not-due"`, `"reason":"recently-rotated","claim":{"runId":"r0","mode":"incident","claimedAt":"2026-11-26T06:00:00Z","outcome":"rotated"}`, 1), `"not-due":1`, `"recently-rotated":1`, 1)},
		{name: "a skipped entry without a next step fails", raw: strings.Replace(valid, `"next":"kept for incidents",`, ``, 1), want: "skipped/budget-reserved without a next step"},
		{name: "a member the contract does not name fails", raw: strings.Replace(valid, `"alias":"",`, `"alias":"","colour":"blue",`, 1), want: "keys[1].colour is not a member"},
		{name: "a key due soon counted passes", raw: strings.Replace(strings.Replace(valid, `"materialAgeDays":59,"overdue":false`, `"materialAgeDays":59,"overdue":false,"dueSoon":true,"owner":"team-a"`, 1), `"dueSoon":0`, `"dueSoon":1`, 1)},
		{name: "a key due soon not counted fails", raw: strings.Replace(valid, `"materialAgeDays":59,"overdue":false`, `"materialAgeDays":59,"overdue":false,"dueSoon":true`, 1), want: "summary.dueSoon = 0, entries with dueSoon true: 1"},
		{name: "dueSoon false fails", raw: strings.Replace(valid, `"materialAgeDays":59,"overdue":false`, `"materialAgeDays":59,"overdue":false,"dueSoon":false`, 1), want: "want true (absent when not)"},
		{name: "a rotated key due soon fails", raw: strings.Replace(strings.Replace(valid, `"overdue":false,"keyMaterialIdBefore"`, `"overdue":false,"dueSoon":true,"keyMaterialIdBefore"`, 1), `"dueSoon":0`, `"dueSoon":1`, 1), want: "dueSoon on a rotated entry"},
		{name: "an empty owner fails", raw: strings.Replace(valid, `"materialAgeDays":59,"overdue":false`, `"materialAgeDays":59,"overdue":false,"owner":""`, 1), want: "owner"},
		{name: "a summary without materialExpiringSoon fails", raw: strings.Replace(valid, `"materialExpiringSoon":0,`, ``, 1), want: "summary.materialExpiringSoon"},
		{name: "a key never read and not found overdue fails", raw: strings.Replace(strings.Replace(strings.Replace(valid, `"outcome":"skipped","reason":"not-due","next":"nothing to do","onDemandUsed":0,"onDemandRemaining":25,"lastRotation":null,"nextDue":"2027-01-01T00:00:00Z","materialAgeDays":59,"overdue":false}`,
			`"outcome":"failed","reason":"not-found","error":"NotFoundException","next":"check","onDemandUsed":null,"onDemandRemaining":null,"lastRotation":null,"nextDue":null,"overdue":true,"overdueFor":"action"}`, 1),
			`"not-due":1,`, `"not-found":1,`, 1), `"skipped":3,"failed":0`, `"skipped":2,"failed":1`, 1), want: "overdue for not-found, a key this product cannot rotate"},
		{name: "a key read, then not found by the rotation, may be overdue", raw: strings.Replace(strings.Replace(strings.Replace(strings.Replace(valid, `"outcome":"skipped","reason":"not-due","next":"nothing to do","onDemandUsed":0,"onDemandRemaining":25,"lastRotation":null,"nextDue":"2027-01-01T00:00:00Z","materialAgeDays":59,"overdue":false}`,
			`"outcome":"failed","reason":"not-found","error":"NotFoundException","next":"check","onDemandUsed":0,"onDemandRemaining":25,"lastRotation":null,"nextDue":"2026-01-01T00:00:00Z","materialAgeDays":400,"overdue":true,"overdueFor":"action"}`, 1),
			`"not-due":1,`, `"not-found":1,`, 1), `"skipped":3,"failed":0`, `"skipped":2,"failed":1`, 1), `"overdue":1,`, `"overdue":2,`, 1)},
		{name: "evidence written passes", raw: strings.Replace(valid, `"dryRun":false,`, `"dryRun":false,"evidence":{"bucket":"b","key":"evidence/r.json"},`, 1)},
		{name: "evidence that failed passes", raw: strings.Replace(valid, `"dryRun":false,`, `"dryRun":false,"evidence":{"error":"AccessDenied"},`, 1)},
		{name: "evidence with neither place nor error fails", raw: strings.Replace(valid, `"dryRun":false,`, `"dryRun":false,"evidence":{"bucket":"b"},`, 1), want: "want bucket and key, or an error"},
		{name: "notRotated on a sweep fails", raw: strings.Replace(valid, `"overdue":1,`, `"overdue":1,"notRotated":3,`, 1), want: "scheduled summary has notRotated"},
		{name: "an entry missing fails", raw: strings.Replace(valid, `{"keyId":"b","keyArn":"arn:b","alias":"","outcome":"skipped","reason":"not-due","next":"nothing to do","onDemandUsed":0,"onDemandRemaining":25,"lastRotation":null,"nextDue":"2027-01-01T00:00:00Z","materialAgeDays":59,"overdue":false},`, ``, 1),
			want: "3 entries in keys + 0 omittedNotDue + 0 omittedOther = 3, summary.candidates 4"},
		{name: "two aliases that did not resolve are two entries", raw: strings.Replace(strings.Replace(valid, `"keyId":"a","keyArn":"arn:a"`, `"keyId":"","keyArn":""`, 1), `"keyId":"c","keyArn":"arn:c"`, `"keyId":"","keyArn":""`, 1)},
		{name: "one alias that did not resolve listed twice fails", raw: strings.Replace(strings.Replace(valid, `"keyId":"a","keyArn":"arn:a","alias":"alias/a"`, `"keyId":"","keyArn":"","alias":"alias/x"`, 1), `"keyId":"c","keyArn":"arn:c","alias":"alias/c"`, `"keyId":"","keyArn":"","alias":"alias/x"`, 1), want: "unresolved:alias/x listed twice"},
		{name: "unconfirmed is a failure with an error", raw: strings.Replace(strings.Replace(strings.Replace(valid, `"outcome":"skipped","reason":"not-due"`, `"outcome":"failed","reason":"unconfirmed","error":"may have been applied"`, 1), `"not-due":1`, `"unconfirmed":1`, 1), `"skipped":3,"failed":0`, `"skipped":2,"failed":1`, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := CheckReport([]byte(tt.raw))
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

// TestCheckReportJSONKeyMaterial covers the key-material members: the
// material before and after a rotation, an incident's wait for completion,
// staged and expiring material, stuck rotations and the last use.
// TestCheckReportOmitted covers a report that leaves entries out: not-due
// ones beyond MaxListed candidates, others counted in omittedOther.
func TestCheckReportOmitted(t *testing.T) {
	const notDue = `{"keyId":"b","keyArn":"arn:b","alias":"","outcome":"skipped","reason":"not-due","next":"nothing to do","onDemandUsed":0,"onDemandRemaining":25,"lastRotation":null,"nextDue":"2027-01-01T00:00:00Z","materialAgeDays":59,"overdue":false},`
	const reserved = `{"keyId":"c","keyArn":"arn:c","alias":"alias/c","outcome":"skipped","reason":"budget-reserved","next":"kept for incidents","onDemandUsed":23,"onDemandRemaining":2,"lastRotation":"2026-06-01T00:00:00Z","nextDue":"2026-08-30T00:00:00Z","materialAgeDays":178,"overdue":true,"overdueFor":"policy"},`
	withoutNotDue := strings.Replace(strings.Replace(validReport, notDue, ``, 1), `"dryRun":false,`, `"dryRun":false,"omittedNotDue":1,`, 1)
	small := Contract{MaxListed: 3, Reserve: 2, Namespace: "KMSRotator"}
	tests := []struct {
		name     string
		contract Contract
		raw      string
		want     string
	}{
		{name: "a not-due entry left out beyond MaxListed candidates passes", contract: small, raw: withoutNotDue},
		{name: "a not-due entry left out at 2,000 candidates or fewer fails", contract: Documented, raw: withoutNotDue, want: "left out only beyond 2000"},
		{name: "another entry counted as not-due fails", contract: small,
			raw:  strings.Replace(strings.Replace(validReport, reserved, ``, 1), `"dryRun":false,`, `"dryRun":false,"omittedNotDue":1,`, 1),
			want: "summary.reasons[budget-reserved] = 1, entries: 0"},
		{name: "an entry left out by omittedOther passes", contract: Documented,
			raw: strings.Replace(strings.Replace(validReport, reserved, ``, 1), `"dryRun":false,`, `"dryRun":false,"omittedOther":1,`, 1)},
		{name: "omittedOther with as many entries as candidates fails", contract: Documented,
			raw: strings.Replace(validReport, `"dryRun":false,`, `"dryRun":false,"omittedOther":1,`, 1), want: "+ 1 omittedOther = 5"},
		{name: "a zero omittedNotDue fails", contract: Documented,
			raw: strings.Replace(validReport, `"dryRun":false,`, `"dryRun":false,"omittedNotDue":0,`, 1), want: "want a whole number ≥ 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantProblem(t, tt.contract.CheckReport([]byte(tt.raw)), tt.want)
		})
	}
}

func TestCheckReportKeyMaterial(t *testing.T) {
	const valid = `{"runId":"r","mode":"incident","dryRun":false,"startedAt":"2026-11-26T06:00:00Z","finishedAt":"2026-11-26T06:01:00Z",
 "summary":{"candidates":4,"rotated":2,"wouldRotate":0,"skipped":2,"failed":0,"deferred":0,"overdue":0,"dueSoon":0,"materialExpiringSoon":0,"notRotated":2,"reasons":{"material-not-staged":1,"rotation-in-progress":1}},
 "keys":[{"keyId":"a","keyArn":"arn:a","alias":"alias/a","outcome":"rotated","reason":"","onDemandUsed":1,"onDemandRemaining":24,"lastRotation":"2026-11-26T06:00:01Z","nextDue":"2027-02-24T06:00:01Z","materialAgeDays":0,"overdue":false,"keyMaterialIdBefore":"m0","keyMaterialId":"m1","completion":"complete","completedAt":"2026-11-26T06:00:40Z"},
         {"keyId":"b","keyArn":"arn:b","alias":"alias/b","outcome":"rotated","reason":"","onDemandUsed":1,"onDemandRemaining":24,"lastRotation":"2026-11-26T06:00:01Z","nextDue":"2027-02-24T06:00:01Z","materialAgeDays":0,"overdue":false,"keyMaterialIdBefore":"n0","completion":"pending"},
         {"keyId":"c","keyArn":"arn:c","alias":"alias/c","outcome":"skipped","reason":"material-not-staged","onDemandUsed":0,"onDemandRemaining":25,"lastRotation":null,"nextDue":"2027-01-01T00:00:00Z","materialAgeDays":10,"overdue":false,"keyMaterialId":"p0","materialExpiresAt":"2027-05-01T00:00:00Z","next":"x"},
         {"keyId":"d","keyArn":"arn:d","alias":"alias/d","outcome":"skipped","reason":"rotation-in-progress","onDemandUsed":3,"onDemandRemaining":22,"lastRotation":"2026-11-20T00:00:00Z","nextDue":"2027-02-18T00:00:00Z","materialAgeDays":6,"overdue":false,"stuck":true,"next":"x"}]}`
	tests := []struct {
		name string
		raw  string
		want string // in a problem; "" = valid
	}{
		{name: "valid incident report passes", raw: valid},
		{name: "rotated entry without keyMaterialIdBefore fails", raw: strings.Replace(valid, `"keyMaterialIdBefore":"n0",`, ``, 1), want: "without keyMaterialIdBefore"},
		{name: "empty keyMaterialId fails", raw: strings.Replace(valid, `"keyMaterialId":"p0"`, `"keyMaterialId":""`, 1), want: "want a key material ID"},
		{name: "complete without completedAt fails", raw: strings.Replace(valid, `,"completedAt":"2026-11-26T06:00:40Z"`, ``, 1), want: "completion complete with completedAt"},
		{name: "pending with completedAt fails", raw: strings.Replace(valid, `"completion":"pending"`, `"completion":"pending","completedAt":"2026-11-26T06:00:40Z"`, 1), want: "completion pending with completedAt"},
		{name: "completedAt after the run fails", raw: strings.Replace(valid, `"completedAt":"2026-11-26T06:00:40Z"`, `"completedAt":"2026-11-26T06:02:00Z"`, 1), want: "outside the run"},
		{name: "completedAt before the rotation fails", raw: strings.Replace(valid, `"completedAt":"2026-11-26T06:00:40Z"`, `"completedAt":"2026-11-26T06:00:00.5Z"`, 1), want: "before the rotation started"},
		{name: "complete with the old material fails", raw: strings.Replace(valid, `"keyMaterialId":"m1"`, `"keyMaterialId":"m0"`, 1), want: "is the material before the rotation"},
		{name: "unknown completion fails", raw: strings.Replace(valid, `"completion":"pending"`, `"completion":"maybe"`, 1), want: "want \"complete\" or \"pending\""},
		{name: "completion in a sweep fails", raw: strings.Replace(valid, `"mode":"incident"`, `"mode":"scheduled"`, 1), want: "only incidents wait"},
		{name: "completion on a skipped entry fails", raw: strings.Replace(valid, `"keyMaterialId":"p0",`, `"keyMaterialId":"p0","completion":"pending",`, 1), want: "completion pending on a skipped entry"},
		{name: "material-not-staged with staged material fails", raw: strings.Replace(valid, `"keyMaterialId":"p0",`, `"keyMaterialId":"p0","stagedKeyMaterialId":"p1",`, 1), want: "material-not-staged with stagedKeyMaterialId"},
		{name: "material-not-staged without its material fails", raw: strings.Replace(valid, `"keyMaterialId":"p0",`, ``, 1), want: "material-not-staged without keyMaterialId"},
		{name: "staged material equal to the current fails", raw: strings.Replace(strings.Replace(valid, `"keyMaterialId":"p0",`, `"keyMaterialId":"p0","stagedKeyMaterialId":"p0",`, 1), `material-not-staged`, `material-pending-replica-import`, 2), want: "is the current material"},
		{name: "bad materialExpiresAt fails", raw: strings.Replace(valid, `"materialExpiresAt":"2027-05-01T00:00:00Z"`, `"materialExpiresAt":"soon"`, 1), want: "materialExpiresAt"},
		{name: "stuck that is not a bool fails", raw: strings.Replace(valid, `"stuck":true`, `"stuck":"yes"`, 1), want: "want a bool"},
		{name: "stuck on a rotated entry fails", raw: strings.Replace(valid, `"completion":"pending"`, `"completion":"pending","stuck":true`, 1), want: "yet rotated"},
		{name: "imported-key-material is no longer a reason", raw: strings.Replace(strings.Replace(valid, `"reason":"material-not-staged"`, `"reason":"imported-key-material"`, 1), `"material-not-staged":1`, `"imported-key-material":1`, 1), want: "pairs the reason"},
		{name: "idle with lastUsedAt null passes", raw: strings.Replace(strings.Replace(valid, `"reason":"material-not-staged","onDemandUsed":0`, `"reason":"idle","lastUsedAt":null,"onDemandUsed":0`, 1), `"material-not-staged":1`, `"idle":1`, 1)},
		{name: "idle with a lastUsedAt time passes", raw: strings.Replace(strings.Replace(valid, `"reason":"material-not-staged","onDemandUsed":0`, `"reason":"idle","lastUsedAt":"2026-06-01T00:00:00Z","onDemandUsed":0`, 1), `"material-not-staged":1`, `"idle":1`, 1)},
		{name: "idle without lastUsedAt fails", raw: strings.Replace(strings.Replace(valid, `"reason":"material-not-staged"`, `"reason":"idle"`, 1), `"material-not-staged":1`, `"idle":1`, 1), want: "no lastUsedAt"},
		{name: "bad lastUsedAt fails", raw: strings.Replace(strings.Replace(valid, `"reason":"material-not-staged","onDemandUsed":0`, `"reason":"idle","lastUsedAt":"June","onDemandUsed":0`, 1), `"material-not-staged":1`, `"idle":1`, 1), want: "lastUsedAt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := CheckReport([]byte(tt.raw))
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
	t.Run("report mode that read usage without lastUsedAt on an eligible entry fails", func(t *testing.T) {
		const report = `{"runId":"r","mode":"report","dryRun":true,"startedAt":"2026-11-26T06:00:00Z","finishedAt":"2026-11-26T06:00:01Z",
 "summary":{"candidates":2,"rotated":0,"wouldRotate":1,"skipped":1,"failed":0,"deferred":0,"overdue":0,"dueSoon":0,"materialExpiringSoon":0,"reasons":{"aws-managed":1}},
 "keys":[{"keyId":"a","keyArn":"arn:a","alias":"alias/a","outcome":"would-rotate","reason":"","onDemandUsed":0,"onDemandRemaining":25,"lastRotation":null,"nextDue":"2026-11-01T00:00:00Z","materialAgeDays":120,"overdue":false},
         {"keyId":"b","keyArn":"arn:b","alias":"alias/aws/b","outcome":"skipped","reason":"aws-managed","onDemandUsed":null,"onDemandRemaining":null,"lastRotation":null,"nextDue":null,"next":"x"}]}`
		// Without "usage": true no entry carries lastUsedAt.
		if p := CheckReport([]byte(report)); len(p) > 0 {
			t.Fatalf("a report that did not read usage: problems %q", p)
		}
		// With it, every eligible entry does.
		usage := strings.Replace(strings.Replace(report, `"candidates":2,`, `"candidates":3,`, 1), `"wouldRotate":1,`, `"wouldRotate":2,`, 1)
		usage = strings.Replace(usage, `"keys":[`, `"keys":[{"keyId":"c","keyArn":"arn:c","alias":"alias/c","outcome":"would-rotate","reason":"","onDemandUsed":0,"onDemandRemaining":25,"lastRotation":null,"nextDue":"2026-11-01T00:00:00Z","materialAgeDays":120,"overdue":false,"lastUsedAt":null},`, 1)
		if p := CheckReport([]byte(usage)); len(p) != 1 || !strings.Contains(p[0], "keys[1]: no lastUsedAt") {
			t.Fatalf("problems %q, want one about keys[1]'s lastUsedAt", p)
		}
		withLastUse := strings.Replace(usage, `"overdue":false}`, `"overdue":false,"lastUsedAt":null}`, 1)
		if p := CheckReport([]byte(withLastUse)); len(p) > 0 {
			t.Fatalf("problems: %q", p)
		}
	})
}

func TestCheckMaterial(t *testing.T) {
	const a, b = "arn:a", "arn:b"
	before := Snapshot{a: {KeyARN: a, Material: "m0", Staged: "m1"}, b: {KeyARN: b, Material: "n0"}}
	after := Snapshot{a: {KeyARN: a, Material: "m1"}, b: {KeyARN: b, Material: "n0"}}
	const raw = `{"keys":[{"keyArn":"arn:a","outcome":"rotated","keyMaterialIdBefore":"m0","keyMaterialId":"m1","completion":"complete"},
 {"keyArn":"arn:b","outcome":"skipped","keyMaterialId":"n0"}]}`
	tests := []struct {
		name, raw, want string
	}{
		{name: "materials the emulator shows pass", raw: raw},
		{name: "wrong material before fails", raw: strings.Replace(raw, `"keyMaterialIdBefore":"m0"`, `"keyMaterialIdBefore":"x"`, 1), want: "keyMaterialIdBefore x"},
		{name: "completed with a material the key does not use fails", raw: strings.Replace(raw, `"keyMaterialId":"m1"`, `"keyMaterialId":"x"`, 1), want: "CurrentKeyMaterialId after the run is m1"},
		{name: "a skipped key's unknown material fails", raw: strings.Replace(raw, `"keyMaterialId":"n0"`, `"keyMaterialId":"x"`, 1), want: "neither the material before"},
		{name: "a staged material the emulator does not have fails", raw: strings.Replace(raw, `"keyMaterialId":"n0"`, `"keyMaterialId":"n0","stagedKeyMaterialId":"n1"`, 1), want: "stagedKeyMaterialId n1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := CheckMaterial(before, after, decode(t, tt.raw))
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

// metricsReport is a scheduled run's report: remaining 0 (exhausted by
// KMS), 2 (= reserve), 1 (in progress counted), 20; ages 400, 10, 120, 3;
// one overdue.
const metricsReport = `{"mode":"scheduled","summary":{"candidates":5,"rotated":1,"wouldRotate":0,"skipped":4,"failed":0,"deferred":0,
 "overdue":1,"overdueAction":0,"overdueByPolicy":1,"dueSoon":1,"materialExpiringSoon":0,"reasons":{"budget-exhausted":1,"budget-reserved":1,"rotation-in-progress":1,"aws-managed":1}},"keys":[
 {"keyArn":"a","outcome":"skipped","reason":"budget-exhausted","onDemandRemaining":0,"materialAgeDays":400},
 {"keyArn":"b","outcome":"skipped","reason":"budget-reserved","onDemandRemaining":2,"materialAgeDays":10},
 {"keyArn":"c","outcome":"skipped","reason":"rotation-in-progress","onDemandRemaining":1,"materialAgeDays":120},
 {"keyArn":"d","outcome":"rotated","reason":"","onDemandRemaining":20,"materialAgeDays":3},
 {"keyArn":"e","outcome":"skipped","reason":"aws-managed","onDemandRemaining":null}]}`

// metricsLines are the EMF lines metricsReport implies: the [Mode] record
// and one [Mode, Reason] record per reason.
var metricsLines = []string{
	`{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"KMSRotator","Dimensions":[["Mode"]],"Metrics":[{"Name":"KeysCandidate"},{"Name":"KeysRotated"},{"Name":"KeysWouldRotate"},{"Name":"KeysSkipped"},{"Name":"KeysFailed"},{"Name":"KeysDeferred"},{"Name":"RunsCompleted"},{"Name":"KeysBudgetLow"},{"Name":"KeysBudgetExhausted"},{"Name":"MinOnDemandRemaining"},{"Name":"KeysOverdue"},{"Name":"KeysOverdueAction"},{"Name":"KeysOverdueByPolicy"},{"Name":"MaxMaterialAgeDays"},{"Name":"KeysDueSoon"},{"Name":"MaterialExpiringSoon"}]}]},` +
		`"Mode":"scheduled","KeysCandidate":5,"KeysRotated":1,"KeysWouldRotate":0,"KeysSkipped":4,"KeysFailed":0,"KeysDeferred":0,"RunsCompleted":1,"KeysBudgetLow":3,"KeysBudgetExhausted":1,"MinOnDemandRemaining":0,"KeysOverdue":1,"KeysOverdueAction":0,"KeysOverdueByPolicy":1,"MaxMaterialAgeDays":400,"KeysDueSoon":1,"MaterialExpiringSoon":0}`,
	reasonLine("budget-exhausted", 1), reasonLine("budget-reserved", 1), reasonLine("rotation-in-progress", 1), reasonLine("aws-managed", 1),
}

func reasonLine(reason string, n int) string {
	return `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"KMSRotator","Dimensions":[["Mode","Reason"]],"Metrics":[{"Name":"KeysSkipped"}]}]},"Mode":"scheduled","Reason":"` +
		reason + `","KeysSkipped":` + strconv.Itoa(n) + `}`
}

func TestCheckMetrics(t *testing.T) {
	main := metricsLines[0]
	with := func(line string) []string { return append([]string{line}, metricsLines[1:]...) }
	stuckLine := strings.Replace(strings.Replace(main, `{"Name":"KeysOverdue"}`, `{"Name":"KeysOverdue"},{"Name":"RotationsStuck"}`, 1), `"KeysOverdue":1`, `"KeysOverdue":1,"RotationsStuck":1`, 1)
	stuckReport := strings.Replace(metricsReport, `"reason":"rotation-in-progress",`, `"reason":"rotation-in-progress","stuck":true,`, 1)
	tests := []struct {
		name  string
		lines []string
		raw   string
		want  string
	}{
		{name: "metrics equal to the summary and the entries pass", lines: metricsLines, raw: metricsReport},
		{name: "no record fails", raw: metricsReport, want: "no EMF record"},
		{name: "rotated count off fails", lines: with(strings.Replace(main, `"KeysRotated":1`, `"KeysRotated":2`, 1)), raw: metricsReport, want: "KeysRotated = 2"},
		{name: "would-rotate count off fails", lines: with(strings.Replace(main, `"KeysWouldRotate":0`, `"KeysWouldRotate":1`, 1)), raw: metricsReport, want: "KeysWouldRotate = 1"},
		{name: "per-key dimension fails", lines: with(strings.Replace(strings.Replace(main, `[["Mode"]]`, `[["Mode","KeyId"]]`, 1), `"Mode":"scheduled"`, `"Mode":"scheduled","KeyId":"k"`, 1)), raw: metricsReport, want: "KeyId"},
		{name: "other namespace fails", lines: with(strings.Replace(main, `"KMSRotator"`, `"Other"`, 1)), raw: metricsReport, want: "namespace"},
		{name: "other mode fails", lines: with(strings.Replace(main, `"Mode":"scheduled"`, `"Mode":"plan"`, 1)), raw: metricsReport, want: `EMF Mode "plan"`},
		{name: "two [Mode] records fail", lines: append(slices.Clone(metricsLines), main), raw: metricsReport, want: "two EMF records"},
		{name: "a reason's count off fails", lines: append(slices.Clone(metricsLines[:4]), reasonLine("aws-managed", 2)), raw: metricsReport, want: "KeysSkipped per Reason"},
		{name: "a reason without its record fails", lines: metricsLines[:4], raw: metricsReport, want: "KeysSkipped per Reason"},
		{name: "budget-low missing the in-progress key fails", lines: with(strings.Replace(main, `"KeysBudgetLow":3`, `"KeysBudgetLow":2`, 1)), raw: metricsReport, want: "KeysBudgetLow = 2"},
		{name: "exhausted count off fails", lines: with(strings.Replace(main, `"KeysBudgetExhausted":1`, `"KeysBudgetExhausted":0`, 1)), raw: metricsReport, want: "KeysBudgetExhausted = 0"},
		{name: "minimum off fails", lines: with(strings.Replace(main, `"MinOnDemandRemaining":0`, `"MinOnDemandRemaining":1`, 1)), raw: metricsReport, want: "MinOnDemandRemaining = 1"},
		{name: "overdue not the summary's fails", lines: with(strings.Replace(main, `"KeysOverdue":1`, `"KeysOverdue":0`, 1)), raw: metricsReport, want: "KeysOverdue = 0"},
		{name: "overdue split not the summary's fails", lines: with(strings.Replace(main, `"KeysOverdueAction":0`, `"KeysOverdueAction":1`, 1)), raw: metricsReport, want: "KeysOverdueAction = 1"},
		{name: "a summary without its overdue split fails", lines: metricsLines, raw: strings.Replace(metricsReport, `"overdueAction":0,`, ``, 1), want: "summary.overdueAction missing"},
		{name: "due-soon count off fails", lines: with(strings.Replace(main, `"KeysDueSoon":1`, `"KeysDueSoon":0`, 1)), raw: metricsReport, want: "KeysDueSoon = 0"},
		{name: "evidence written counted passes", lines: with(strings.Replace(strings.Replace(main, `{"Name":"KeysDueSoon"}`, `{"Name":"KeysDueSoon"},{"Name":"EvidenceFailed"}`, 1), `"KeysDueSoon":1`, `"KeysDueSoon":1,"EvidenceFailed":0`, 1)),
			raw: strings.Replace(metricsReport, `"mode":"scheduled",`, `"mode":"scheduled","evidence":{"bucket":"b","key":"k"},`, 1)},
		{name: "evidence that failed not counted fails", lines: with(strings.Replace(strings.Replace(main, `{"Name":"KeysDueSoon"}`, `{"Name":"KeysDueSoon"},{"Name":"EvidenceFailed"}`, 1), `"KeysDueSoon":1`, `"KeysDueSoon":1,"EvidenceFailed":0`, 1)),
			raw: strings.Replace(metricsReport, `"mode":"scheduled",`, `"mode":"scheduled","evidence":{"error":"denied"},`, 1), want: "EMF EvidenceFailed = 0"},
		{name: "EvidenceFailed without evidence fails", lines: with(strings.Replace(strings.Replace(main, `{"Name":"KeysDueSoon"}`, `{"Name":"KeysDueSoon"},{"Name":"EvidenceFailed"}`, 1), `"KeysDueSoon":1`, `"KeysDueSoon":1,"EvidenceFailed":0`, 1)),
			raw: metricsReport, want: "names no evidence record"},
		{name: "max age off fails", lines: with(strings.Replace(main, `"MaxMaterialAgeDays":400`, `"MaxMaterialAgeDays":900`, 1)), raw: metricsReport, want: "MaxMaterialAgeDays = 900"},
		{name: "undeclared metric fails", lines: with(strings.Replace(main, `{"Name":"KeysOverdue"},`, ``, 1)), raw: metricsReport, want: "KeysOverdue"},
		{name: "budget-exhausted counts as zero left", lines: metricsLines, raw: strings.Replace(metricsReport, `"reason":"budget-exhausted","onDemandRemaining":0`, `"reason":"budget-exhausted","onDemandRemaining":null`, 1)},
		{name: "a stuck rotation counted passes", lines: with(stuckLine), raw: stuckReport},
		{name: "a stuck rotation not counted fails", lines: metricsLines, raw: stuckReport, want: "RotationsStuck = 0"},
		{name: "RotationsStuck without a stuck entry fails", lines: with(stuckLine), raw: metricsReport, want: "RotationsStuck = 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := ParseEMFLines(tt.lines)
			if err != nil {
				t.Fatal(err)
			}
			wantProblem(t, CheckMetrics(recs, decode(t, tt.raw)), tt.want)
		})
	}
}

func TestCheckResultEvent(t *testing.T) {
	const report = `{"runId":"r1","mode":"incident","dryRun":false,"summary":{"candidates":3,"rotated":1,"skipped":2,"reasons":{"not-due":1,"recently-rotated":1}},
 "keys":[{"keyArn":"a","outcome":"rotated","reason":""},{"keyArn":"b","outcome":"skipped","reason":"not-due"},{"keyArn":"c","outcome":"skipped","reason":"recently-rotated"}]}`
	const detail = `{"runId":"r1","mode":"incident","dryRun":false,"reason":"INC-1","requestId":"req-1",
 "summary":{"candidates":3,"rotated":1,"skipped":2,"reasons":{"not-due":1,"recently-rotated":1}},
 "keys":[{"keyArn":"a","outcome":"rotated","reason":""},{"keyArn":"c","outcome":"skipped","reason":"recently-rotated"}],"truncated":false}`
	expiring := strings.Replace(report, `"reason":"not-due"}`, `"reason":"not-due","materialExpiringSoon":true}`, 1)
	tests := []struct {
		name, source, report, detail, want string
	}{
		{name: "event matching the report passes", detail: detail},
		{name: "other source fails", source: "aws.kms", detail: detail, want: "source"},
		{name: "other run fails", detail: strings.Replace(detail, `"runId":"r1"`, `"runId":"r2"`, 1), want: "detail.runId"},
		{name: "other request ID fails", detail: strings.Replace(detail, `"req-1"`, `"req-2"`, 1), want: "requestId"},
		{name: "missing reason fails", detail: strings.Replace(detail, `"reason":"INC-1",`, ``, 1), want: "detail.reason"},
		{name: "summary not the report's fails", detail: strings.Replace(detail, `"rotated":1,`, `"rotated":2,`, 1), want: "detail.summary"},
		{name: "a not-due entry fails", detail: strings.Replace(detail, `"keys":[`, `"keys":[{"keyArn":"b","outcome":"skipped","reason":"not-due"},`, 1), want: "3 entries"},
		{name: "an entry left out without truncated fails", detail: strings.Replace(detail, `,{"keyArn":"c","outcome":"skipped","reason":"recently-rotated"}`, ``, 1), want: "1 entries"},
		{name: "an entry left out with truncated passes", detail: strings.Replace(strings.Replace(detail, `{"keyArn":"a","outcome":"rotated","reason":""},`, ``, 1), `"truncated":false`, `"truncated":true`, 1)},
		{name: "a truncated list with an entry twice fails", detail: strings.Replace(strings.Replace(detail, `{"keyArn":"c","outcome":"skipped","reason":"recently-rotated"}`, `{"keyArn":"a","outcome":"rotated","reason":""}`, 1), `"truncated":false`, `"truncated":true`, 1), want: "listed twice"},
		{name: "a changed entry fails", detail: strings.Replace(detail, `"outcome":"rotated"`, `"outcome":"failed"`, 1), want: "keys[0]"},
		{name: "a not-due entry whose material expires soon is kept", report: expiring,
			detail: strings.Replace(detail, `{"keyArn":"c"`, `{"keyArn":"b","outcome":"skipped","reason":"not-due","materialExpiringSoon":true},{"keyArn":"c"`, 1)},
		{name: "a not-due entry whose material expires soon left out fails", report: expiring, detail: detail, want: "the report has 3"},
		{name: "not JSON fails", detail: `{`, want: "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			source := tt.source
			if source == "" {
				source = ResultEventSource
			}
			rep := report
			if tt.report != "" {
				rep = tt.report
			}
			problems := CheckResultEvent(source, ResultEventDetailType, tt.detail, decode(t, rep), "req-1", "INC-1")
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

// decode decodes a report fixture.
func decode(t *testing.T, raw string) *Report {
	t.Helper()
	r, err := Decode([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// wantProblem asserts that problems hold one containing want, or none
// when want is empty.
func wantProblem(t *testing.T, problems []string, want string) {
	t.Helper()
	if want == "" {
		if len(problems) > 0 {
			t.Fatalf("problems: %q", problems)
		}
		return
	}
	if !strings.Contains(strings.Join(problems, "\n"), want) {
		t.Fatalf("problems %q, want one containing %q", problems, want)
	}
}
