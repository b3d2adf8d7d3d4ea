package e2e

import (
	"errors"
	"strings"
	"testing"

	"github.com/kms-rotator/kms-rotator/tools/harness"
	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

// Organization mode, function side: with
// ROTATOR_MEMBER_ROLE_NAME set, the built function assumes the member role
// in the account a request targets (kmslocal's STS AssumeRole), works there
// alone, and a role that cannot be assumed fails the run before any call.

const (
	orgMember      = "210987654321"
	orgUnreachable = "333344445555" // has keys, but no member role kmslocal lets anyone assume
)

var orgFleet = `[
 {"alias":"alias/own-due","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}},
 {"keyId":"aaaa0000-0000-4000-8000-000000000001","account":"` + orgMember + `","alias":"alias/member-due","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}},
 {"keyId":"aaaa0000-0000-4000-8000-000000000002","account":"` + orgMember + `","alias":"alias/member-fresh","createdDaysAgo":5,"tags":{"kms-rotator":"enabled"}},
 {"keyId":"aaaa0000-0000-4000-8000-000000000003","account":"` + orgUnreachable + `","alias":"alias/elsewhere","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}}]`

func TestOrganizationTargetsFromTheBuiltFunction(t *testing.T) {
	env := harness.StartTB(t, harness.Options{
		KMSLocal: harness.KMSLocalOptions{FleetJSON: orgFleet, Args: append([]string{"-roles",
			"arn:aws:iam::" + orgMember + ":role/kms-rotator-member"}, completeAtOnce...)},
		Function: harness.FunctionOptions{Env: map[string]string{"ROTATOR_MEMBER_ROLE_NAME": "kms-rotator-member"}},
	})

	r, inv, err := env.Function.InvokeReport(t.Context(), []byte(`{"mode":"scheduled","target":{"account":"`+orgMember+`","region":"us-east-1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	report(t, "member sweep report", oracle.CheckReport(inv.Raw))
	if r.Account != orgMember || r.Summary.Candidates != 2 {
		t.Fatalf("account %q, %d candidates; want %s and its 2 keys", r.Account, r.Summary.Candidates, orgMember)
	}
	if got := outcomeOf(r, "alias/member-due"); got != "rotated" {
		t.Errorf("alias/member-due: %q, want rotated", got)
	}
	for _, k := range r.Keys {
		if k.Account != orgMember || !strings.Contains(k.KeyARN, ":"+orgMember+":key/") {
			t.Errorf("entry %s: account %q, ARN %s", k.Alias, k.Account, k.KeyARN)
		}
	}
	if n := rotateCalls(t, env.KMS); n != 1 {
		t.Errorf("%d RotateKeyOnDemand calls, want 1 (the member's due key only)", n)
	}

	before := rotateCalls(t, env.KMS)
	_, err = env.Function.Invoke(t.Context(), []byte(`{"mode":"scheduled","target":{"account":"`+orgUnreachable+`","region":"us-east-1"}}`))
	var he *harness.HandlerError
	if !errors.As(err, &he) || !strings.Contains(err.Error(), "assume role arn:aws:iam::"+orgUnreachable+":role/kms-rotator-member") {
		t.Fatalf("unreachable member: error %v, want a handler error naming the role", err)
	}
	if n := rotateCalls(t, env.KMS); n != before {
		t.Errorf("the failed run called RotateKeyOnDemand %d times", n-before)
	}
}

func TestTargetIsRefusedOutsideOrganizationMode(t *testing.T) {
	env := harness.StartTB(t, harness.Options{KMSLocal: harness.KMSLocalOptions{FleetJSON: orgFleet, Args: completeAtOnce}})
	_, err := env.Function.Invoke(t.Context(), []byte(`{"mode":"scheduled","target":{"account":"`+orgMember+`","region":"us-east-1"}}`))
	if err == nil || !strings.Contains(err.Error(), "target: accepted only in organization mode") {
		t.Fatalf("error %v, want the validation error naming target", err)
	}
}
