package policy

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// Organization mode: the member role of a member account, the function
// role's statement that assumes it, and the member role's trust policy as
// infra/org.go writes it.

const (
	memberAccount = "111122223333"
	memberRole    = "arn:aws:iam::111122223333:role/kms-rotator-member"
	memberKey     = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
)

// memberParams render the member role for memberAccount.
func memberParams() Params {
	return Params{Partition: "aws", Account: memberAccount, TagKey: "kms-rotator", TagValue: "enabled"}
}

func TestMemberRoleIsTheFunctionRolesKMSStatements(t *testing.T) {
	member, err := MemberRole(memberParams())
	if err != nil {
		t.Fatal(err)
	}
	fp := testParams
	fp.Account = memberAccount
	fn, err := FunctionRole(fp)
	if err != nil {
		t.Fatal(err)
	}
	var want []Statement
	for _, st := range fn.Statement {
		for _, sid := range MemberRoleSids {
			if st.Sid == sid {
				want = append(want, st)
			}
		}
	}
	if len(want) != len(MemberRoleSids) {
		t.Fatalf("function-role.json holds %d of the %d member statements", len(want), len(MemberRoleSids))
	}
	if member.Version != fn.Version || !reflect.DeepEqual(member.Statement, want) {
		t.Errorf("member role\n %+v\nwant the function role's\n %+v", member, want)
	}
	t.Run("the only write is kms:RotateKeyOnDemand, and no action outside kms: and tag:GetResources", func(t *testing.T) {
		for _, st := range member.Statement {
			for _, a := range st.Action {
				if a != "tag:GetResources" && !strings.HasPrefix(a, "kms:") {
					t.Errorf("%s grants %s", st.Sid, a)
				}
				if strings.HasPrefix(a, "kms:") && !strings.HasPrefix(a, "kms:Get") && !strings.HasPrefix(a, "kms:List") &&
					!strings.HasPrefix(a, "kms:Describe") && a != "kms:RotateKeyOnDemand" {
					t.Errorf("%s grants the write %s", st.Sid, a)
				}
			}
		}
	})
	t.Run("placeholders beyond partition, account and tag are not needed", func(t *testing.T) {
		if _, err := MemberRole(Params{Partition: "aws", Account: memberAccount}); err == nil || !strings.Contains(err.Error(), "TagKey") {
			t.Errorf("err = %v, want one naming TagKey", err)
		}
	})
}

func TestAssumeMemberRole(t *testing.T) {
	for _, tc := range []struct {
		name  string
		orgID string
		want  Statement
	}{
		{"with orgId: only roles of the organization", "o-a1b2c3d4e5", Statement{
			Sid: "AssumeMemberRoles", Effect: "Allow", Action: []string{"sts:AssumeRole"},
			Resource:  []string{"arn:aws:iam::*:role/kms-rotator-member"},
			Condition: map[string]map[string]Values{"StringEquals": {"aws:ResourceOrgID": {"o-a1b2c3d4e5"}}},
		}},
		{"without orgId: the role name alone", "", Statement{
			Sid: "AssumeMemberRoles", Effect: "Allow", Action: []string{"sts:AssumeRole"},
			Resource: []string{"arn:aws:iam::*:role/kms-rotator-member"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AssumeMemberRole(Params{Partition: "aws", MemberRoleName: "kms-rotator-member", OrgID: tc.orgID})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	if _, err := AssumeMemberRole(Params{Partition: "aws"}); err == nil || !strings.Contains(err.Error(), "MemberRoleName") {
		t.Errorf("without a role name: err = %v, want one naming MemberRoleName", err)
	}
}

// memberTrust is the member role's trust policy as infra/org.go writes it,
// with the central function role's ARN resolved.
func memberTrust(central string) map[string]any {
	return map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
		"Effect": "Allow", "Principal": map[string]any{"AWS": central}, "Action": "sts:AssumeRole"}}}
}

// TestSimulateMemberRole: in a member account, the member role can read the
// opted-in keys and rotate them under the same conditions as the function's
// own role, and nothing else.
func TestSimulateMemberRole(t *testing.T) {
	doc, err := MemberRole(memberParams())
	if err != nil {
		t.Fatal(err)
	}
	memberKeyPolicy := map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
		"Sid": "Enable IAM User Permissions", "Effect": "Allow",
		"Principal": map[string]any{"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"}}}
	c := func(name, action, resource string, ctx map[string]any, want string) simCase {
		var rp any
		if strings.Contains(resource, ":key/") {
			rp = memberKeyPolicy
		}
		return simCase{Name: name, Principal: memberRole, Action: action, Resource: resource, Account: memberAccount,
			Context: ctx, IdentityPolicies: []any{doc.Map()}, ResourcePolicy: rp, want: want}
	}
	untagged := map[string]any{"kms:KeySpec": "SYMMETRIC_DEFAULT"}
	const allowed, denied = "Allowed", "ImplicitlyDenied"
	simulate(t, []simCase{
		c("rotate an opted-in symmetric key", "kms:RotateKeyOnDemand", memberKey, optedIn(), allowed),
		c("rotate an untagged key", "kms:RotateKeyOnDemand", memberKey, untagged, denied),
		c("rotate an opted-in asymmetric key", "kms:RotateKeyOnDemand", memberKey,
			map[string]any{"aws:ResourceTag/kms-rotator": "enabled", "kms:KeySpec": "RSA_2048"}, denied),
		c("rotate an opted-in key of another account", "kms:RotateKeyOnDemand",
			"arn:aws:kms:eu-west-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab", optedIn(), denied),
		c("rotation status of an opted-in key", "kms:GetKeyRotationStatus", memberKey, optedIn(), allowed),
		c("rotation status of an untagged key", "kms:GetKeyRotationStatus", memberKey, untagged, denied),
		c("list rotations of an opted-in key", "kms:ListKeyRotations", memberKey, optedIn(), allowed),
		c("describe an untagged key", "kms:DescribeKey", memberKey, untagged, allowed),
		c("list aliases", "kms:ListAliases", "*", nil, allowed),
		c("find tagged keys", "tag:GetResources", "*", nil, allowed),
		c("schedule deletion of an opted-in key", "kms:ScheduleKeyDeletion", memberKey, optedIn(), denied),
		c("decrypt with an opted-in key", "kms:Decrypt", memberKey, optedIn(), denied),
		c("encrypt with an opted-in key", "kms:Encrypt", memberKey, optedIn(), denied),
		c("replace the key policy of an opted-in key", "kms:PutKeyPolicy", memberKey, optedIn(), denied),
		c("disable an opted-in key", "kms:DisableKey", memberKey, optedIn(), denied),
		c("grant on an opted-in key", "kms:CreateGrant", memberKey, optedIn(), denied),
		c("tag a key (opting it in)", "kms:TagResource", memberKey, untagged, denied),
		c("list every key", "kms:ListKeys", "*", nil, denied),
		c("invoke a function", "lambda:InvokeFunction", "arn:aws:lambda:eu-west-1:111122223333:function:payments", nil, denied),
		c("assume another role", "sts:AssumeRole", "arn:aws:iam::111122223333:role/admin", nil, denied),
	})
}

// TestSimulateMemberRoleTrust: only the central function role may assume the
// member role; the central role may assume member roles of that name only
// (and, with orgId, of the organization only).
func TestSimulateMemberRoleTrust(t *testing.T) {
	const (
		central      = "arn:aws:iam::012345678912:role/KmsRotator-FunctionRole1A2B3C"
		otherCentral = "arn:aws:iam::012345678912:role/admin"
		foreign      = "arn:aws:iam::444455556666:role/KmsRotator-FunctionRole1A2B3C"
	)
	withOrg, err := AssumeMemberRole(Params{Partition: "aws", MemberRoleName: "kms-rotator-member", OrgID: "o-a1b2c3d4e5"})
	if err != nil {
		t.Fatal(err)
	}
	nameOnly, err := AssumeMemberRole(Params{Partition: "aws", MemberRoleName: "kms-rotator-member"})
	if err != nil {
		t.Fatal(err)
	}
	identity := func(st Statement) []any {
		return []any{Document{Version: "2012-10-17", Statement: []Statement{st}}.Map()}
	}
	// Any principal here may assume any role by its own identity policy:
	// the trust policy alone must keep it out.
	anything := []any{map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
		"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}}}}
	c := func(name, principal, role string, id []any, ctx map[string]any, want string) simCase {
		return simCase{Name: name, Principal: principal, Action: "sts:AssumeRole", Resource: role,
			Account: strings.Split(role, ":")[4], Context: ctx, IdentityPolicies: id, ResourcePolicy: memberTrust(central), want: want}
	}
	inOrg := map[string]any{"aws:ResourceOrgID": "o-a1b2c3d4e5"}
	outOfOrg := map[string]any{"aws:ResourceOrgID": "o-zzzzzzzzzz"}
	const allowed, denied = "Allowed", "ImplicitlyDenied"
	simulate(t, []simCase{
		c("the central function role, with orgId, a member of the organization", central, memberRole, identity(withOrg), inOrg, allowed),
		c("the central function role, with orgId, a role of another organization", central, memberRole, identity(withOrg), outOfOrg, denied),
		c("the central function role, without orgId", central, memberRole, identity(nameOnly), inOrg, allowed),
		c("the central function role, a member role of another name", central, "arn:aws:iam::111122223333:role/admin", identity(nameOnly), inOrg, denied),
		c("another role of the central account", otherCentral, memberRole, anything, inOrg, denied),
		c("a role of another account with the central role's name", foreign, memberRole, anything, inOrg, denied),
		c("the central account's root", "arn:aws:iam::012345678912:root", memberRole, anything, inOrg, denied),
	})
}

// TestMemberKeyStatements spells out the statements a member account's key
// policy gains for the member role: its own three key statements, with the
// role in the key's account as Principal and the key as Resource.
func TestMemberKeyStatements(t *testing.T) {
	p := memberParams()
	p.MemberRoleName = "kms-rotator-member"
	got, err := MemberKeyStatements(p)
	if err != nil {
		t.Fatal(err)
	}
	role := map[string]Values{"AWS": {memberRole}}
	optIn := map[string]Values{"aws:ResourceTag/kms-rotator": {"enabled"}}
	want := []Statement{
		{Sid: "KmsRotatorMemberRotateOptedInSymmetricKeys", Effect: "Allow", Principal: role,
			Action: []string{"kms:RotateKeyOnDemand"}, Resource: []string{"*"},
			Condition: map[string]map[string]Values{"StringEquals": {"aws:ResourceTag/kms-rotator": {"enabled"}, "kms:KeySpec": {"SYMMETRIC_DEFAULT"}}}},
		{Sid: "KmsRotatorMemberReadRotationStateOfOptedInKeys", Effect: "Allow", Principal: role,
			Action: []string{"kms:GetKeyRotationStatus", "kms:ListKeyRotations", "kms:GetKeyLastUsage"}, Resource: []string{"*"},
			Condition: map[string]map[string]Values{"StringEquals": optIn}},
		{Sid: "KmsRotatorMemberDescribeAnyKeyOfTheAccount", Effect: "Allow", Principal: role,
			Action: []string{"kms:DescribeKey", "kms:ListResourceTags"}, Resource: []string{"*"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("\n got %+v\nwant %+v", got, want)
	}
	if _, err := MemberKeyStatements(memberParams()); err == nil || !strings.Contains(err.Error(), "MemberRoleName") {
		t.Errorf("without a role name: err = %v, want one naming MemberRoleName", err)
	}
}

// TestSimulateMemberKeyStatements: on a key whose policy names only its
// owner, the member role can do with the statements added exactly what its
// IAM policy lets it do on a key whose policy delegates to IAM — every case
// of a list answers the same both ways — and nothing without them.
func TestSimulateMemberKeyStatements(t *testing.T) {
	p := memberParams()
	p.MemberRoleName = "kms-rotator-member"
	keyStatements, err := MemberKeyStatements(p)
	if err != nil {
		t.Fatal(err)
	}
	roleDoc, err := MemberRole(p)
	if err != nil {
		t.Fatal(err)
	}
	owner := map[string]any{"Sid": "KeyOwnerOnly", "Effect": "Allow",
		"Principal": map[string]any{"AWS": "arn:aws:iam::111122223333:role/key-owner"}, "Action": "kms:*", "Resource": "*"}
	ownerOnly := map[string]any{"Version": "2012-10-17", "Statement": []any{owner}}
	withMember := map[string]any{"Version": "2012-10-17", "Statement": append([]any{owner}, statementsAsAny(t, keyStatements)...)}
	delegating := map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
		"Sid": "Enable IAM User Permissions", "Effect": "Allow",
		"Principal": map[string]any{"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"}}}
	untagged := map[string]any{"kms:KeySpec": "SYMMETRIC_DEFAULT"}
	asymmetric := map[string]any{"aws:ResourceTag/kms-rotator": "enabled", "kms:KeySpec": "RSA_2048"}
	type probe struct {
		action string
		ctx    map[string]any
		want   string
	}
	const allowed, denied = "Allowed", "ImplicitlyDenied"
	probes := []probe{
		{"kms:RotateKeyOnDemand", optedIn(), allowed},
		{"kms:RotateKeyOnDemand", untagged, denied},
		{"kms:RotateKeyOnDemand", asymmetric, denied},
		{"kms:GetKeyRotationStatus", optedIn(), allowed},
		{"kms:GetKeyRotationStatus", untagged, denied},
		{"kms:ListKeyRotations", untagged, denied},
		{"kms:GetKeyLastUsage", optedIn(), allowed},
		{"kms:DescribeKey", untagged, allowed},
		{"kms:ListResourceTags", untagged, allowed},
		{"kms:Decrypt", optedIn(), denied},
		{"kms:PutKeyPolicy", optedIn(), denied},
		{"kms:ScheduleKeyDeletion", optedIn(), denied},
		{"kms:CreateGrant", optedIn(), denied},
		{"kms:TagResource", untagged, denied},
	}
	var cases []simCase
	for _, pr := range probes {
		base := simCase{Principal: memberRole, Action: pr.action, Resource: memberKey, Account: memberAccount, Context: pr.ctx, want: pr.want}
		byKeyPolicy, byIAM, without := base, base, base
		byKeyPolicy.Name, byKeyPolicy.ResourcePolicy = fmt.Sprintf("%s %v, key policy with the member statements", pr.action, pr.ctx), withMember
		byIAM.Name, byIAM.ResourcePolicy, byIAM.IdentityPolicies = fmt.Sprintf("%s %v, the role's IAM policy, key delegating to IAM", pr.action, pr.ctx), delegating, []any{roleDoc.Map()}
		without.Name, without.ResourcePolicy, without.IdentityPolicies, without.want = fmt.Sprintf("%s %v, owner-only key policy", pr.action, pr.ctx), ownerOnly, []any{roleDoc.Map()}, denied
		cases = append(cases, byKeyPolicy, byIAM, without)
	}
	simulate(t, cases)
}
