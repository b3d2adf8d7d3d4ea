package e2e

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/kms-rotator/kms-rotator/tools/harness"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/moto"
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
			"arn:aws:iam::" + orgMember + ":role/" + kmsemu.DefaultMemberRole}, completeAtOnce...)},
		Function: harness.FunctionOptions{Env: orgEnv(t)},
	})

	// Before any targets run, no member account may be named: the member
	// role exists only where the organization sweep targets.
	_, err := env.Function.Invoke(t.Context(), []byte(`{"mode":"scheduled","target":{"account":"`+orgMember+`","region":"us-east-1"}}`))
	if err == nil || !strings.Contains(err.Error(), "target.account: account "+orgMember+": no targets run is recorded yet") {
		t.Fatalf("before a targets run: %v; want the refusal naming the account", err)
	}
	resolveTargets(t, env, orgMember, orgUnreachable)

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

	// An account the last targets run did not resolve is refused before
	// any role is assumed, in a sweep and in an incident alike; so is a
	// Region it did not resolve.
	resolveTargets(t, env, orgUnreachable)
	for _, payload := range []string{
		`{"mode":"scheduled","target":{"account":"` + orgMember + `","region":"us-east-1"}}`,
		`{"mode":"incident","reason":"INC-1","keys":["arn:aws:kms:us-east-1:` + orgMember + `:key/aaaa0000-0000-4000-8000-000000000001"]}`,
		`{"mode":"scheduled","target":{"account":"` + orgUnreachable + `","region":"eu-west-1"}}`,
	} {
		_, err = env.Function.Invoke(t.Context(), []byte(payload))
		if !errors.As(err, &he) || he.Type != "ValidationError" || !strings.Contains(err.Error(), "was not resolved by the last targets run") {
			t.Errorf("%s: error %v, want a ValidationError naming the last targets run", payload, err)
		}
	}
	if n := rotateCalls(t, env.KMS); n != before {
		t.Errorf("refused requests called RotateKeyOnDemand %d times", n-before)
	}
}

// orgEnv is the function's environment in organization mode, as the stack
// sets it on the sweep function: the member role, and the organization
// bucket (in moto's S3) that targets runs write to.
func orgEnv(t *testing.T) map[string]string {
	env, _ := orgEnvS3(t)
	return env
}

// orgEnvS3 is orgEnv and the S3 that holds the bucket.
func orgEnvS3(t *testing.T) (map[string]string, *moto.Server) {
	t.Helper()
	s3 := moto.BucketTB(t, orgBucket)
	env := s3.Env()
	env["ROTATOR_MEMBER_ROLE_NAME"] = kmsemu.DefaultMemberRole
	env["ROTATOR_ORG_BUCKET"] = orgBucket
	return env, s3
}

const orgBucket = "kms-rotator-e2e-org"

// resolveTargets runs a targets request for the accounts in us-east-1, as
// the organization sweep's first state does.
func resolveTargets(t *testing.T, env *harness.Env, accounts ...string) {
	t.Helper()
	payload := `{"mode":"targets","orgTargets":["` + strings.Join(accounts, `","`) + `"],"orgRegions":["us-east-1"]}`
	out, err := env.Function.Invoke(t.Context(), []byte(payload))
	if err != nil {
		t.Fatalf("targets run: %v", err)
	}
	if !strings.Contains(string(out), `"items":{"bucket":"`+orgBucket+`"`) {
		t.Fatalf("targets answer %s", out)
	}
}

func TestTargetIsRefusedOutsideOrganizationMode(t *testing.T) {
	env := harness.StartTB(t, harness.Options{KMSLocal: harness.KMSLocalOptions{FleetJSON: orgFleet, Args: completeAtOnce}})
	_, err := env.Function.Invoke(t.Context(), []byte(`{"mode":"scheduled","target":{"account":"`+orgMember+`","region":"us-east-1"}}`))
	if err == nil || !strings.Contains(err.Error(), "target: accepted only in organization mode") {
		t.Fatalf("error %v, want the validation error naming target", err)
	}
}

// TestTargetInARegionNotEnabledIsNotSwept: a target in an opt-in Region its
// account has not enabled (kmslocal's STS answers RegionDisabledException)
// is answered as not swept, with no function error and nothing touched;
// the account's other Region is swept.
func TestTargetInARegionNotEnabledIsNotSwept(t *testing.T) {
	env := harness.StartTB(t, harness.Options{
		KMSLocal: harness.KMSLocalOptions{FleetJSON: orgFleet, Args: completeAtOnce,
			Organization: &kmsemu.Organization{ID: "o-abcdefghij", ManagementAccount: harness.Account, RootID: "r-ab12",
				Accounts: []kmsemu.OrganizationAccount{{ID: orgMember, DisabledRegions: []string{"ap-east-1"}}}}},
		Function: harness.FunctionOptions{Env: orgEnv(t)},
	})
	out, err := env.Function.Invoke(t.Context(), []byte(`{"mode":"targets","orgTargets":["r-ab12"],"orgRegions":["us-east-1","ap-east-1"]}`))
	if err != nil || !strings.Contains(string(out), `"summary":{"accounts":1,"targets":2,"excluded":1}`) {
		t.Fatalf("targets run: %s, %v; want %s in two Regions, the management account excluded", out, err, orgMember)
	}
	before := rotateCalls(t, env.KMS)
	inv, err := env.Function.Call(t.Context(), []byte(`{"mode":"scheduled","target":{"account":"`+orgMember+`","region":"ap-east-1"}}`))
	if err != nil {
		t.Fatalf("a Region the account has not enabled: %v; want an answer, not an error", err)
	}
	out = inv.Raw
	// Not a failure: no RunsFailed, no error line.
	for _, l := range inv.Logs {
		if strings.Contains(l, `"RunsFailed"`) || strings.Contains(l, `"level":"ERROR"`) {
			t.Errorf("log line of a target not swept: %s", l)
		}
	}
	var ns struct {
		NotSwept, Account, Region, Error string
		Summary                          map[string]int
	}
	if err := json.Unmarshal(out, &ns); err != nil {
		t.Fatal(err)
	}
	if ns.NotSwept != "region-not-enabled" || ns.Account != orgMember || ns.Region != "ap-east-1" ||
		!strings.Contains(ns.Error, "RegionDisabledException") || ns.Summary["rotated"] != 0 || len(ns.Summary) < 5 {
		t.Fatalf("answer %s", out)
	}
	if _, _, err := env.Function.InvokeReport(t.Context(), []byte(`{"mode":"scheduled","target":{"account":"`+orgMember+`","region":"us-east-1"}}`)); err != nil {
		t.Fatalf("the enabled Region: %v", err)
	}
	if n := rotateCalls(t, env.KMS) - before; n != 1 {
		t.Errorf("%d RotateKeyOnDemand calls, want 1 (the member's due key in us-east-1 only)", n)
	}
}
