package rotator

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu/emutest"
)

const memberAccount = "210987654321"

// orgFleet has keys in the function's account and in a member account.
const orgFleet = `[
 {"alias":"alias/own-due","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}},
 {"keyId":"aaaa0000-0000-4000-8000-000000000001","account":"` + memberAccount + `","alias":"alias/member-due","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}},
 {"keyId":"aaaa0000-0000-4000-8000-000000000002","account":"` + memberAccount + `","alias":"alias/member-fresh","createdDaysAgo":5,"tags":{"kms-rotator":"enabled"}}]`

func orgHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, kmsemu.Options{}, orgFleet, fastConfig())
	h.engine.SetMembers(AssumeMemberRole(h.emu.Config(testRegion), "kms-rotator-member"))
	return h
}

func memberOnDemand(t *testing.T, h *harness, keyID string) int {
	t.Helper()
	c := kms.NewFromConfig(h.emu.AssumeRole(t, testRegion, emutest.MemberRole(memberAccount)))
	out, err := c.ListKeyRotations(context.Background(), &kms.ListKeyRotationsInput{KeyId: aws.String(keyID)})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Rotations)
}

func TestTargetRunWorksInTheMemberAccount(t *testing.T) {
	h := orgHarness(t)
	rep := h.run(t, request.Request{Mode: request.ModeScheduled, Target: &request.Target{Account: memberAccount, Region: testRegion}})
	if rep.Account != memberAccount || rep.Summary.Candidates != 2 {
		t.Fatalf("account %q, %d candidates; want %s and its 2 keys", rep.Account, rep.Summary.Candidates, memberAccount)
	}
	checkEntries(t, rep, map[string]want{"alias/member-due": {Rotated, ReasonNone}, "alias/member-fresh": {Skipped, ReasonNotDue}})
	for _, k := range rep.Keys {
		if k.Account != memberAccount || !strings.Contains(k.KeyARN, ":"+memberAccount+":") {
			t.Errorf("entry %s in account %q (%s)", k.Alias, k.Account, k.KeyARN)
		}
	}
	if n := memberOnDemand(t, h, "aaaa0000-0000-4000-8000-000000000001"); n != 1 {
		t.Errorf("member key shows %d rotations, want 1", n)
	}
	// The run's figures are published per account too.
	var sawAccountSet bool
	for _, l := range h.metrics.lines(t) {
		dims, _ := validateEMF(t, l, h.engine.cfg.MetricsNamespace)
		if dims["Account"] == memberAccount {
			sawAccountSet = true
		}
	}
	if !sawAccountSet {
		t.Error("no EMF line with the Account dimension")
	}
}

func TestIncidentRotatesAMemberKeyByARN(t *testing.T) {
	h := orgHarness(t)
	arn := "arn:aws:kms:" + testRegion + ":" + memberAccount + ":key/aaaa0000-0000-4000-8000-000000000002"
	rep := h.run(t, incidentFor(t, false, arn))
	if k := rep.Keys[0]; k.Outcome != Rotated || k.Account != memberAccount {
		t.Fatalf("%s/%s account %q (%s), want rotated in %s", k.Outcome, k.Reason, k.Account, k.Error, memberAccount)
	}
	if n := memberOnDemand(t, h, "aaaa0000-0000-4000-8000-000000000002"); n != 1 {
		t.Errorf("member key shows %d rotations, want 1", n)
	}
}

func TestUnreachableMemberFailsTheRunAndTouchesNothing(t *testing.T) {
	h := orgHarness(t)
	h.emu.Server.ResetStats()
	_, err := h.engine.Run(context.Background(), request.Request{Mode: request.ModeScheduled,
		Target: &request.Target{Account: "999999999999", Region: testRegion}}, Invocation{RequestID: "r", Scope: testScope})
	const want = "scheduled run: assume role arn:aws:iam::999999999999:role/kms-rotator-member: AccessDenied (STS request "
	const hint = "): the member role is missing in that account, or does not trust this function's role"
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), hint) || len(err.Error()) > 250 {
		t.Fatalf("Run error = %v, want %q…%q in at most 250 bytes", err, want, hint)
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDenied" || !strings.Contains(ae.ErrorMessage(), "is not authorized to perform: sts:AssumeRole") {
		t.Fatalf("the SDK's error is not kept under %v", err)
	}
	st := h.emu.Server.Stats()
	for _, op := range []string{"GetResources", "DescribeKey", "ListKeyRotations", "RotateKeyOnDemand", "ListAliases"} {
		if n := st.Op(op).Calls; n != 0 {
			t.Errorf("%d %s calls, want none", n, op)
		}
	}
}

// An incident naming keys in two accounts, one without the member role:
// only that account's keys fail, naming the role; the others rotate.
func TestIncidentWithAnUnreachableAccountRotatesTheOthers(t *testing.T) {
	h := orgHarness(t)
	reachable := "arn:aws:kms:" + testRegion + ":" + memberAccount + ":key/aaaa0000-0000-4000-8000-000000000002"
	gone := "arn:aws:kms:" + testRegion + ":999999999999:key/bbbb0000-0000-4000-8000-000000000001"
	rep := h.run(t, incidentFor(t, false, reachable, gone))
	byARN := map[string]KeyReport{}
	for _, k := range rep.Keys {
		byARN[k.KeyARN] = k
	}
	if k := byARN[reachable]; k.Outcome != Rotated {
		t.Errorf("reachable account's key: %s/%s %q, want rotated", k.Outcome, k.Reason, k.Error)
	}
	k := byARN[gone]
	if k.Outcome != Failed || k.Reason != ReasonAccessDenied || !strings.Contains(k.Error, "role/kms-rotator-member") ||
		!strings.Contains(k.Error, "the member role is missing in that account") {
		t.Errorf("unreachable account's key: %s/%s %q, want failed access-denied naming the role", k.Outcome, k.Reason, k.Error)
	}
	if rep.Summary.Rotated != 1 || rep.Summary.Failed != 1 {
		t.Errorf("summary %+v, want 1 rotated and 1 failed", rep.Summary)
	}
}

func TestWithoutOrganizationModeAMemberTargetIsRefused(t *testing.T) {
	h := newHarness(t, kmsemu.Options{}, orgFleet, fastConfig())
	_, err := h.engine.Run(context.Background(), request.Request{Mode: request.ModeScheduled,
		Target: &request.Target{Account: memberAccount, Region: testRegion}}, Invocation{RequestID: "r", Scope: testScope})
	if err == nil || !strings.Contains(err.Error(), "organization mode is off") {
		t.Fatalf("Run error = %v", err)
	}
}

func TestAccountOf(t *testing.T) {
	for arn, want := range map[string]string{
		"arn:aws:kms:us-east-1:111122223333:key/abc":   "111122223333",
		"arn:aws-cn:kms:cn-north-1:210987654321:key/x": "210987654321",
		"alias/x": "", "": "",
	} {
		if got := accountOf(arn); got != want {
			t.Errorf("accountOf(%q) = %q, want %q", arn, got, want)
		}
	}
}

func TestTargetRunFitsAStepFunctionsResult(t *testing.T) {
	// 1,500 ineligible keys in the member account: each a listed (skipped)
	// entry, about 400 bytes, so the full list would be 600 KB.
	fleet := `[{"account":"` + memberAccount + `","alias":"alias/rsa","keySpec":"RSA_2048","keyUsage":"SIGN_VERIFY","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"},"count":1500}]`
	h := newHarness(t, kmsemu.Options{}, fleet, fastConfig())
	h.engine.SetMembers(AssumeMemberRole(h.emu.Config(testRegion), "kms-rotator-member"))
	rep := h.run(t, request.Request{Mode: request.ModeScheduled, Target: &request.Target{Account: memberAccount, Region: testRegion}})
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 256<<10 || rep.OmittedOther == 0 || rep.Summary.Candidates != 1500 {
		t.Fatalf("response %d bytes, %d left out, %d candidates; want under 256 KiB with the rest left out and all counted", len(b), rep.OmittedOther, rep.Summary.Candidates)
	}
	checkReport(t, rep)
}
