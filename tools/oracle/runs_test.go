package oracle

import (
	"testing"
)

func TestCheckCandidates(t *testing.T) {
	r := &Report{Keys: []Entry{{KeyARN: "arn:b"}, {KeyARN: "arn:a"}}}
	wantProblem(t, CheckCandidates(r, []string{"arn:a", "arn:b"}), "")
	wantProblem(t, CheckCandidates(r, []string{"arn:a", "arn:b", "arn:c"}), "report lists 2 keys, want the 3 candidates")
	wantProblem(t, CheckCandidates(&Report{Keys: []Entry{{KeyARN: "arn:a"}, {KeyARN: "arn:a"}}}, []string{"arn:a"}), "arn:a appears twice")
}

func TestCheckUnconfirmedNotApplied(t *testing.T) {
	const a = "arn:aws:kms:us-east-1:012345678912:key/a"
	before := Snapshot{a: {KeyID: "a", KeyARN: a, OnDemand: 1}}
	r := &Report{Keys: []Entry{{KeyID: "a", KeyARN: a, Outcome: Failed, Reason: "unconfirmed"}}}
	wantProblem(t, CheckUnconfirmedNotApplied(before, before, r), "")
	wantProblem(t, CheckUnconfirmedNotApplied(before, Snapshot{a: {KeyID: "a", KeyARN: a, OnDemand: 1, InProgress: true}}, r), "unconfirmed, yet the emulator has 1 new")
}

func TestCheckClaims(t *testing.T) {
	const a, replica, primary = "arn:aws:kms:us-east-1:012345678912:key/a", "arn:aws:kms:us-east-1:012345678912:key/mrk-1", "arn:aws:kms:eu-west-1:012345678912:key/mrk-1"
	before := Snapshot{a: {KeyID: "a", KeyARN: a}, replica: {KeyID: "mrk-1", KeyARN: replica}, primary: {KeyID: "mrk-1", KeyARN: primary}}
	after := Snapshot{a: {KeyID: "a", KeyARN: a, OnDemand: 1}, replica: {KeyID: "mrk-1", KeyARN: replica, OnDemand: 1}, primary: {KeyID: "mrk-1", KeyARN: primary, InProgress: true}}
	r := &Report{RunID: "run-1", Keys: []Entry{{KeyID: "a", KeyARN: a, Outcome: Rotated}, {KeyID: "mrk-1", KeyARN: primary, Outcome: Rotated}}}
	old := Claims{{SK: a + " claim#1#run-0", KeyARN: a, RunID: "run-0", Outcome: "rotated"}}
	claims := append(old, LedgerClaim{SK: a + " claim#2#run-1", KeyARN: a, RunID: "run-1", Outcome: "rotated"},
		LedgerClaim{SK: primary + " claim#2#run-1", KeyARN: primary, RunID: "run-1", Outcome: "claimed"})
	t.Run("one claim per rotation, the primary's covering its replica, passes", func(t *testing.T) {
		wantProblem(t, CheckClaims(claims.Since(old), before, after, r), "")
	})
	t.Run("a rotated entry without its run's claim fails", func(t *testing.T) {
		wantProblem(t, CheckClaims(claims[:2].Since(old), before, after, r), primary+" reported rotated by run run-1, which has no claim")
	})
	t.Run("a rotation without a claim fails", func(t *testing.T) {
		wantProblem(t, CheckClaims(claims[:2].Since(old), before, after), "key mrk-1: 1 new on-demand rotation(s) in the emulator, 0 new claim(s)")
	})
	t.Run("a repeat names no claim of its own", func(t *testing.T) {
		wantProblem(t, CheckClaims(nil, before, before, &Report{RunID: "run-2", RepeatOf: "run-1", Keys: r.Keys}), "")
	})
	t.Run("a claim with an unknown outcome fails", func(t *testing.T) {
		wantProblem(t, CheckClaims(Claims{{SK: "x", KeyARN: a, RunID: "run-1", Outcome: "maybe"}}, before, before), `outcome "maybe"`)
	})
}

func TestCheckLogLines(t *testing.T) {
	wantProblem(t, CheckLogLines([]string{`{"msg":"key decision","requestId":"req-1"}`, `{"_aws":{}}`, "SDK 2026/11/26 WARN x"}, "req-1"), "")
	wantProblem(t, CheckLogLines(nil, "req-1"), "no log lines")
	wantProblem(t, CheckLogLines([]string{`plain text`}, "req-1"), "not a JSON object")
	wantProblem(t, CheckLogLines([]string{`{"msg":"run summary"}`}, "req-1"), "without requestId req-1")
}

func TestCheckKeyLines(t *testing.T) {
	r := &Report{Keys: []Entry{{KeyARN: "arn:a"}, {KeyARN: "arn:b"}}}
	line := func(arn string) string { return `{"msg":"key decision","keyArn":"` + arn + `"}` }
	wantProblem(t, CheckKeyLines([]string{line("arn:a"), `{"msg":"run summary"}`, line("arn:b")}, r), "")
	wantProblem(t, CheckKeyLines([]string{line("arn:a"), line("arn:a"), line("arn:b")}, r), "2 key decision log lines for arn:a")
	wantProblem(t, CheckKeyLines([]string{line("arn:a"), line("arn:b"), line("arn:c")}, r), "lines for 3 keys, report has 2")
}

func TestUnknownMembersAtEveryLevel(t *testing.T) {
	raw := `{"runId":"r","colour":1,"summary":{"shade":2},"continuation":{"runId":"r","tint":3},"keys":[{"keyArn":"a","claim":{"runId":"r","hue":4}}]}`
	got := unknownMembers([]byte(raw))
	want := []string{"report.colour", "summary.shade", "continuation.tint", "keys[0].claim.hue"}
	if len(got) != len(want) {
		t.Fatalf("unknown members %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("unknown members %v, want %v", got, want)
		}
	}
}
