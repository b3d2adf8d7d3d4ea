package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/policy"
)

// orgContext is an organization-mode deployment: two OUs, a root-reached
// account, two Regions, a custom member role name and the organization ID.
var orgContext = map[string]any{
	ctxOrgTargets:        "ou-ab12-cdefghij, 111122223333,ou-ab12-klmnopqr",
	ctxOrgRegions:        []any{"eu-west-1", "us-east-1"},
	ctxMemberRoleName:    "sec-kms-rotator",
	ctxOrgMaxConcurrency: "25",
	ctxOrgID:             "o-a1b2c3d4e5",
	ctxOrgRootID:         "r-ab12",
}

var orgSynthOnce struct {
	sync.Once
	stack    awscdk.Stack
	template assertions.Template
	json     map[string]any
	err      error
}

// orgSynth synthesizes the central stack in organization mode once.
func orgSynth(t *testing.T) (awscdk.Stack, assertions.Template, map[string]any) {
	t.Helper()
	orgSynthOnce.Do(func() {
		app := newApp(t, orgContext)
		if orgSynthOnce.err = addStacks(app, fakeCode(t)); orgSynthOnce.err != nil {
			return
		}
		orgSynthOnce.stack = app.Node().FindChild(jsii.String(defaultStackName)).(awscdk.Stack)
		orgSynthOnce.template = assertions.Template_FromStack(orgSynthOnce.stack, nil)
		orgSynthOnce.err = json.Unmarshal(mustJSON(orgSynthOnce.template.ToJSON()), &orgSynthOnce.json)
	})
	if orgSynthOnce.err != nil {
		t.Fatal(orgSynthOnce.err)
	}
	return orgSynthOnce.stack, orgSynthOnce.template, orgSynthOnce.json
}

func TestOrgSettingsFromContext(t *testing.T) {
	t.Run("the organization context reads as given", func(t *testing.T) {
		s, err := SettingsFromContext(func(k string) any { return orgContext[k] })
		if err != nil {
			t.Fatal(err)
		}
		want := OrgSettings{
			Targets:  []string{"ou-ab12-cdefghij", "111122223333", "ou-ab12-klmnopqr"},
			Accounts: []string{"111122223333"}, OUs: []string{"ou-ab12-cdefghij", "ou-ab12-klmnopqr"},
			Regions: []string{"eu-west-1", "us-east-1"}, MemberRoleName: "sec-kms-rotator", MaxConcurrency: 25,
			OrgID: "o-a1b2c3d4e5", RootID: "r-ab12",
		}
		if !reflect.DeepEqual(s.Org, want) {
			t.Errorf("\n got %+v\nwant %+v", s.Org, want)
		}
		if s.Function.MemberRoleName != "sec-kms-rotator" {
			t.Errorf("the function's MemberRoleName = %q, want sec-kms-rotator", s.Function.MemberRoleName)
		}
	})
	t.Run("without orgTargets organization mode is off and the function has no member role", func(t *testing.T) {
		s, err := SettingsFromContext(func(k string) any {
			if k == ctxMemberRoleName {
				return "custom"
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if s.Org.Enabled() || s.Function.MemberRoleName != "" {
			t.Errorf("org %+v, function member role %q", s.Org, s.Function.MemberRoleName)
		}
	})
	t.Run("a JSON list in a string, a root as a target", func(t *testing.T) {
		s, err := SettingsFromContext(func(k string) any {
			return map[string]any{ctxOrgTargets: `["r-ab12","ou-ab12-cdefghij"]`, ctxOrgID: "o-a1b2c3d4e5", ctxOrgRegions: "cn-north-1,cn-northwest-1"}[k]
		})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(s.Org.OUs, []string{"r-ab12", "ou-ab12-cdefghij"}) || s.Org.MaxConcurrency != 10 || s.Org.MemberRoleName != "kms-rotator-member" {
			t.Errorf("org %+v", s.Org)
		}
		// The state machine continues targets itself.
		if s.Function.ContinuationMax != 0 {
			t.Errorf("the function's ContinuationMax = %d in organization mode, want 0", s.Function.ContinuationMax)
		}
		if !reflect.DeepEqual(s.Org.Targets, []string{"r-ab12", "ou-ab12-cdefghij"}) || !s.Org.ListsAccounts() {
			t.Errorf("targets %v, want the root and the OU as given, listing accounts", s.Org.Targets)
		}
	})
	t.Run("OU targets alone are swept: their accounts are listed at run time, no root ID needed", func(t *testing.T) {
		s, err := SettingsFromContext(func(k string) any {
			return map[string]any{ctxOrgTargets: "ou-ab12-cdefghij,ou-ab12-cdefghij", ctxOrgID: "o-a1b2c3d4e5", ctxOrgRegions: "us-east-1"}[k]
		})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(s.Org.Targets, []string{"ou-ab12-cdefghij"}) || len(s.Org.Accounts) != 0 || !s.Org.ListsAccounts() {
			t.Errorf("org %+v", s.Org)
		}
	})
	t.Run("account targets alone list no accounts", func(t *testing.T) {
		s, err := SettingsFromContext(func(k string) any {
			return map[string]any{ctxOrgTargets: "111122223333", ctxOrgRootID: "r-ab12", ctxOrgID: "o-a1b2c3d4e5", ctxOrgRegions: "us-east-1"}[k]
		})
		if err != nil {
			t.Fatal(err)
		}
		if !s.Org.Enabled() || s.Org.ListsAccounts() {
			t.Errorf("org %+v: want enabled, listing no accounts", s.Org)
		}
	})
	base := map[string]any{ctxOrgTargets: "ou-ab12-cdefghij", ctxOrgRegions: "us-east-1", ctxOrgID: "o-a1b2c3d4e5"}
	for _, tc := range []struct {
		name string
		ctx  map[string]any
		want string
	}{
		{"a target that is neither account, OU nor root", map[string]any{ctxOrgTargets: "ou-ab12-cdefghij,12345"}, "-c orgTargets=12345: not an account ID"},
		{"an OU ID of the wrong shape", map[string]any{ctxOrgTargets: "ou-AB12-cdefghij"}, "-c orgTargets=ou-AB12-cdefghij"},
		{"no Regions", map[string]any{ctxOrgRegions: ""}, "-c orgRegions=: organization mode"},
		{"a bad Region", map[string]any{ctxOrgRegions: "us-east-1,mars-1"}, "-c orgRegions=mars-1"},
		{"Regions of two partitions", map[string]any{ctxOrgRegions: "us-east-1,cn-north-1"}, "must be of one partition"},
		{"a stack Region of another partition", map[string]any{ctxRegions: "us-gov-west-1"}, "must be of one partition"},
		{"several central stacks", map[string]any{ctxRegions: "us-east-1,eu-west-1"}, "-c regions=us-east-1,eu-west-1: organization mode has one central stack"},
		{"a concurrency of 0", map[string]any{ctxOrgMaxConcurrency: "0"}, "-c orgMaxConcurrency=0: must be between 1 and 10000"},
		{"a concurrency above the Distributed Map's 10,000", map[string]any{ctxOrgMaxConcurrency: 10001.0}, "-c orgMaxConcurrency=10001: must be between 1 and 10000"},
		{"a member role name with a path", map[string]any{ctxMemberRoleName: "path/role"}, "-c memberRoleName=path/role: ROTATOR_MEMBER_ROLE_NAME"},
		{"a member role name too long", map[string]any{ctxMemberRoleName: strings.Repeat("r", 65)}, "-c memberRoleName=" + strings.Repeat("r", 65)},
		{"a bad organization ID", map[string]any{ctxOrgID: "org-1"}, "-c orgId=org-1: not an organization ID"},
		{"account targets without the root", map[string]any{ctxOrgTargets: "111122223333"}, "-c orgRootId=: account targets (111122223333) need the organization's root ID"},
		{"a bad root ID", map[string]any{ctxOrgRootID: "root"}, "-c orgRootId=root: not a root ID"},
		// Without it the function may assume the member role's name in any
		// account whose role trusts it.
		{"no organization ID", map[string]any{ctxOrgID: ""}, "-c orgId=: organization mode needs the organization's ID (o-…"},
		{"no organization ID with account targets", map[string]any{ctxOrgID: nil, ctxOrgTargets: "111122223333", ctxOrgRootID: "r-ab12"},
			"-c orgId=: organization mode needs the organization's ID"},
		// The root's StackSet already gives every account the role; a
		// second StackSet for the accounts would collide with it.
		{"the root and account IDs", map[string]any{ctxOrgTargets: "r-ab12,111122223333", ctxOrgRootID: "r-ab12"},
			"-c orgTargets=r-ab12,111122223333: the root r-ab12 already holds every account of the organization: drop the account IDs (111122223333)"},
		{"a Region of a partition kms-rotator does not deploy to", map[string]any{ctxOrgRegions: "us-iso-east-1"},
			"-c orgRegions=us-iso-east-1: Regions of partition aws-iso, which kms-rotator does not deploy to (aws, aws-cn, aws-us-gov, aws-eusc)"},
	} {
		t.Run(tc.name+" fails naming the key", func(t *testing.T) {
			ctx := map[string]any{}
			for k, v := range base {
				ctx[k] = v
			}
			for k, v := range tc.ctx {
				ctx[k] = v
			}
			_, err := SettingsFromContext(func(k string) any { return ctx[k] })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestOrgStackSet: the member role reaches the OU and root targets through
// one StackSet with automatic deployment (accounts that join later get it),
// and the account targets through another without (no account but those
// listed ever gets it); both are service-managed, called as delegated
// administrator, deploy one instance per account (IAM is global) and pass
// the function role's ARN.
func TestOrgStackSet(t *testing.T) {
	_, _, j := orgSynth(t)
	roleID := functionRoleID(t, j)
	sets := resources(t, j, "AWS::CloudFormation::StackSet")
	if len(sets) != 2 {
		t.Fatalf("%d StackSets, want one for the OUs and one for the accounts", len(sets))
	}
	common := map[string]any{
		"PermissionModel": "SERVICE_MANAGED",
		"CallAs":          "DELEGATED_ADMIN",
		"Capabilities":    []any{"CAPABILITY_NAMED_IAM"},
		"Parameters": []any{map[string]any{
			"ParameterKey": memberRoleParameter, "ParameterValue": map[string]any{"Fn::GetAtt": []any{roleID, "Arn"}},
		}},
	}
	want := map[string]map[string]any{
		"MemberRoleStackSet": {
			"StackSetName":   "kms-rotator-member-role",
			"AutoDeployment": map[string]any{"Enabled": true, "RetainStacksOnAccountRemoval": false},
			"StackInstancesGroup": []any{map[string]any{
				"DeploymentTargets": map[string]any{"OrganizationalUnitIds": []any{"ou-ab12-cdefghij", "ou-ab12-klmnopqr"}},
				// IAM is global: one Region per account.
				"Regions": []any{"eu-west-1"},
			}},
		},
		"MemberRoleAccountsStackSet": {
			"StackSetName":   "kms-rotator-member-role-accounts",
			"AutoDeployment": map[string]any{"Enabled": false},
			"StackInstancesGroup": []any{map[string]any{
				"DeploymentTargets": map[string]any{
					"OrganizationalUnitIds": []any{"r-ab12"}, "Accounts": []any{"111122223333"}, "AccountFilterType": "INTERSECTION",
				},
				"Regions": []any{"eu-west-1"},
			}},
		},
	}
	for id, w := range want {
		r, ok := sets[id]
		if !ok {
			t.Errorf("no StackSet %s", id)
			continue
		}
		p := r["Properties"].(map[string]any)
		for k, v := range common {
			w[k] = v
		}
		for k, v := range w {
			if !reflect.DeepEqual(p[k], v) {
				t.Errorf("%s %s = %s, want %s", id, k, mustString(p[k]), mustString(v))
			}
		}
		if _, url := p["TemplateURL"]; url {
			t.Errorf("%s has a TemplateURL: the template must be inline, with no asset", id)
		}
		if strings.Contains(mustString(p), "cdk-hnb659fds") || strings.Contains(mustString(p), "AssetParameters") {
			t.Errorf("%s refers to CDK bootstrap resources: %s", id, mustString(p))
		}
	}
	t.Run("the accounts' StackSet waits for the OUs'", func(t *testing.T) {
		// An update that moves an account from one to the other removes
		// the old instance before the new one creates the role.
		if got := sets["MemberRoleAccountsStackSet"]["DependsOn"]; !reflect.DeepEqual(got, []any{"MemberRoleStackSet"}) {
			t.Errorf("DependsOn %v", got)
		}
	})
	t.Run("both deploy the same member template", func(t *testing.T) {
		a := sets["MemberRoleStackSet"]["Properties"].(map[string]any)["TemplateBody"]
		b := sets["MemberRoleAccountsStackSet"]["Properties"].(map[string]any)["TemplateBody"]
		if a != b {
			t.Errorf("member templates differ:\n%v\n%v", a, b)
		}
	})
}

// memberTemplateOf is the member template of the StackSet that serves the
// OU and root targets (MemberRoleStackSet).
func memberTemplateOf(t *testing.T, j map[string]any) string {
	t.Helper()
	set, ok := resources(t, j, "AWS::CloudFormation::StackSet")["MemberRoleStackSet"]
	if !ok {
		t.Fatal("no StackSet MemberRoleStackSet")
	}
	body, ok := set["Properties"].(map[string]any)["TemplateBody"].(string)
	if !ok {
		t.Fatalf("TemplateBody is %T, want a plain JSON string", set["Properties"].(map[string]any)["TemplateBody"])
	}
	return body
}

// unsub replaces each {"Fn::Sub": text} (the member template's ARNs) by its
// text, so the member role's statements read like the central stack's.
func unsub(v any) any {
	switch v := v.(type) {
	case map[string]any:
		if sub, ok := v["Fn::Sub"].(string); ok && len(v) == 1 {
			return sub
		}
		out := map[string]any{}
		for k, x := range v {
			out[k] = unsub(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = unsub(x)
		}
		return out
	}
	return v
}

// functionRoleID is the logical ID of the function's execution role.
func functionRoleID(t *testing.T, j map[string]any) string {
	t.Helper()
	for id, r := range resources(t, j, "AWS::IAM::Role") {
		if strings.Contains(fmt.Sprint(r["Properties"].(map[string]any)["AssumeRolePolicyDocument"]), "lambda.amazonaws.com") {
			return id
		}
	}
	t.Fatal("no function role")
	return ""
}

func TestOrgMemberTemplate(t *testing.T) {
	_, _, j := orgSynth(t)
	body := memberTemplateOf(t, j)
	var member map[string]any
	if err := json.Unmarshal([]byte(body), &member); err != nil {
		t.Fatalf("TemplateBody is not JSON: %v", err)
	}
	rs := member["Resources"].(map[string]any)
	if len(rs) != 1 {
		t.Fatalf("%d resources, want only the member role: %v", len(rs), rs)
	}
	_, role := only(t, member, "AWS::IAM::Role")
	role = unsub(role).(map[string]any)
	t.Run("every pseudo parameter is substituted (Fn::Sub)", func(t *testing.T) {
		if subs := strings.Count(body, `{"Fn::Sub":"arn:${AWS::Partition}:kms:*:${AWS::AccountId}:key/*"}`); subs != 3 {
			t.Errorf("%d substituted key ARNs, want 3:\n%s", subs, body)
		}
		var bare func(v any, inSub bool)
		bare = func(v any, inSub bool) {
			switch v := v.(type) {
			case string:
				if !inSub && strings.Contains(v, "${AWS::") {
					t.Errorf("%q holds a pseudo parameter outside an Fn::Sub", v)
				}
			case map[string]any:
				for k, x := range v {
					bare(x, k == "Fn::Sub")
				}
			case []any:
				for _, x := range v {
					bare(x, false)
				}
			}
		}
		bare(member, false)
	})
	t.Run("the role has the fixed member role name", func(t *testing.T) {
		if role["RoleName"] != "sec-kms-rotator" {
			t.Errorf("RoleName = %v", role["RoleName"])
		}
	})
	t.Run("only the central function role may assume it", func(t *testing.T) {
		want := `{"Statement":[{"Action":"sts:AssumeRole","Effect":"Allow","Principal":{"AWS":{"Ref":"` + memberRoleParameter + `"}}}],"Version":"2012-10-17"}`
		if got := string(mustJSON(role["AssumeRolePolicyDocument"])); got != want {
			t.Errorf("trust policy\n got %s\nwant %s", got, want)
		}
		if p := member["Parameters"].(map[string]any); len(p) != 1 || p[memberRoleParameter] == nil {
			t.Errorf("parameters %v, want only %s", p, memberRoleParameter)
		}
		if role["ManagedPolicyArns"] != nil || role["PermissionsBoundary"] != nil {
			t.Errorf("managed policies %v, boundary %v", role["ManagedPolicyArns"], role["PermissionsBoundary"])
		}
	})
	t.Run("exactly the function role's KMS and tagging statements", func(t *testing.T) {
		got := statements(t, role)
		doc, err := policy.MemberRole(policy.Params{Partition: "${AWS::Partition}", Account: "${AWS::AccountId}", TagKey: "kms-rotator", TagValue: "enabled"})
		if err != nil {
			t.Fatal(err)
		}
		var want []statement
		for _, st := range doc.Statement {
			w := statement{Sid: st.Sid, Actions: st.Action, Resources: st.Resource}
			if st.Condition != nil {
				w.Condition = string(mustJSON(st.Condition))
			}
			sort.Strings(w.Actions)
			want = append(want, w)
		}
		sort.Slice(want, func(a, b int) bool { return want[a].Sid < want[b].Sid })
		if !reflect.DeepEqual(got, want) {
			t.Errorf("\n got %+v\nwant %+v", got, want)
		}
		var sids []string
		for _, s := range got {
			sids = append(sids, s.Sid)
		}
		wantSids := []string{"DescribeAnyKeyOfTheAccount", "ListAliasesAndTaggedKeys", "ReadRotationStateOfOptedInKeys", "RotateOptedInSymmetricKeys"}
		if !reflect.DeepEqual(sids, wantSids) {
			t.Errorf("Sids %v, want %v", sids, wantSids)
		}
		// The central stack's own role holds the same statements.
		_, _, cj := orgSynth(t)
		central := map[string]statement{}
		for _, s := range statements(t, resources(t, cj, "AWS::IAM::Role")[functionRoleID(t, cj)]["Properties"].(map[string]any)) {
			central[s.Sid] = s
		}
		for _, s := range got {
			if !reflect.DeepEqual(central[s.Sid], s) {
				t.Errorf("%s differs from the function role's\n member  %+v\n central %+v", s.Sid, s, central[s.Sid])
			}
		}
	})
}

func TestOrgFunctionAssumesOnlyMemberRoles(t *testing.T) {
	_, tmpl, j := orgSynth(t)
	tmpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
		"Environment": map[string]any{"Variables": assertions.Match_ObjectLike(&map[string]any{settings.EnvMemberRoleName: "sec-kms-rotator"})},
	})
	role := resources(t, j, "AWS::IAM::Role")[functionRoleID(t, j)]["Properties"].(map[string]any)
	var assume []statement
	for _, s := range statements(t, role) {
		for _, a := range s.Actions {
			if strings.HasPrefix(a, "sts:") {
				assume = append(assume, s)
			}
		}
	}
	want := []statement{{"AssumeMemberRoles", []string{"sts:AssumeRole"}, []string{"arn:${AWS::Partition}:iam::*:role/sec-kms-rotator"},
		`{"StringEquals":{"aws:ResourceOrgID":"o-a1b2c3d4e5"}}`}}
	if !reflect.DeepEqual(assume, want) {
		t.Errorf("\n got %+v\nwant %+v", assume, want)
	}
	t.Run("without orgId there is no organization mode", func(t *testing.T) {
		ctx := maps.Clone(orgContext)
		delete(ctx, ctxOrgID)
		err := addStacks(newApp(t, ctx), fakeCode(t))
		if err == nil || !strings.Contains(err.Error(), "-c orgId=: organization mode needs the organization's ID") {
			t.Errorf("err = %v, want the synth to fail naming orgId", err)
		}
	})
}

func TestSingleAccountModeHasNoOrganizationResources(t *testing.T) {
	_, tmpl, j := synth(t)
	tmpl.ResourceCountIs(jsii.String("AWS::CloudFormation::StackSet"), jsii.Number(0))
	_, fn := lambdaFunction(t, j, "kms-rotator")
	if v := fn["Environment"].(map[string]any)["Variables"].(map[string]any)[settings.EnvMemberRoleName]; v != nil && v != "" {
		t.Errorf("%s = %v in single-account mode", settings.EnvMemberRoleName, v)
	}
	if strings.Contains(mustString(j["Resources"]), "sts:AssumeRole\"") && strings.Contains(mustString(j["Resources"]), "AssumeMemberRoles") {
		t.Errorf("the function role may assume member roles in single-account mode")
	}
}

func TestOrgNagReportsNoError(t *testing.T) {
	stack, _, _ := orgSynth(t)
	ann := assertions.Annotations_FromStack(stack)
	for _, f := range *ann.FindError(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))) {
		t.Errorf("unsuppressed error %s", mustJSON(f))
	}
	for _, f := range *ann.FindWarning(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))) {
		t.Errorf("unsuppressed warning %s", mustJSON(f))
	}
}

// TestOrgNagSuppressionsAreTheReviewedOnes: organization mode adds the
// suppressions for the member role's account wildcard, the state machine's
// role and, with an OU or root target, the Organizations reads.
func TestOrgNagSuppressionsAreTheReviewedOnes(t *testing.T) {
	_, _, j := orgSynth(t)
	var got []string
	for _, r := range j["Resources"].(map[string]any) {
		md, _ := r.(map[string]any)["Metadata"].(map[string]any)
		nag, _ := md["cdk_nag"].(map[string]any)
		rules, _ := nag["rules_to_suppress"].([]any)
		for _, rule := range rules {
			rule := rule.(map[string]any)
			if reason, _ := rule["reason"].(string); len(reason) < 80 {
				t.Errorf("%v: reason %q is too short to explain anything", rule["id"], reason)
			}
			got = append(got, r.(map[string]any)["Type"].(string)+" "+rule["id"].(string)+" "+fmt.Sprint(rule["applies_to"]))
		}
	}
	sort.Strings(got)
	want := []string{
		// The state machine's role: log delivery and X-Ray take Resource * (orgflow.go).
		"AWS::IAM::Policy AwsSolutions-IAM5 [Resource::*]",
		// Its Distributed Map: its own executions, each execution's files (orgflow.go).
		`AWS::IAM::Policy AwsSolutions-IAM5 [map[regex:/^Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:<.*\.Name>:\*$/] map[regex:/^Resource::arn:<AWS::Partition>:s3:::<.*>\/runs/\*\/(targets\.json|results\/\*)$/]]`,
		"AWS::IAM::Role AwsSolutions-IAM5 [Resource::*]",
		"AWS::IAM::Role AwsSolutions-IAM5 [Resource::*]",
		// The function role's Organizations reads (an OU target): Resource * (stack.go).
		"AWS::IAM::Role AwsSolutions-IAM5 [Resource::*]",
		"AWS::IAM::Role AwsSolutions-IAM5 [Resource::arn:<AWS::Partition>:iam::*:role/sec-kms-rotator]",
		"AWS::IAM::Role AwsSolutions-IAM5 [Resource::arn:<AWS::Partition>:kms:*:<AWS::AccountId>:key/*]",
		"AWS::IAM::Role AwsSolutions-IAM5 [map[regex:/^Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/lambda/kms-rotator/.*:\\*$/]]",
		// The evidence bucket, central as in single-account mode (evidence.go, stack.go).
		"AWS::IAM::Role AwsSolutions-IAM5 [map[regex:/^Resource::arn:<AWS::Partition>:s3:::<EvidenceBucket[0-9A-F]{8}>\\/evidence/\\*$/]]",
		// The organization sweep's bucket: the targets run's files, the results it reads (orgbucket.go, stack.go).
		`AWS::IAM::Role AwsSolutions-IAM5 [map[regex:/^Resource::arn:<AWS::Partition>:s3:::<OrgSweepBucket[0-9A-F]{8}>\/runs/\*(\/targets\.json|\/resolution\.json)?$/]]`,
		"AWS::S3::Bucket AwsSolutions-S1 <nil>",
		"AWS::S3::Bucket AwsSolutions-S1 <nil>",
		"AWS::SQS::Queue AwsSolutions-SQS3 <nil>",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("suppressions\n got %q\nwant %q", got, want)
	}
	if !strings.Contains(mustString(j["Resources"]), mustString(orgReadWildcardReason)) {
		t.Error("the Organizations reads' suppression is not on the function role")
	}
}

func TestOrgDashboardShowsEveryAccount(t *testing.T) {
	dashboard := func(j map[string]any) string {
		_, d := only(t, j, "AWS::CloudWatch::Dashboard")
		return flat(d["DashboardBody"])
	}
	_, _, org := orgSynth(t)
	body := dashboard(org)
	for _, want := range []string{
		`SEARCH('{KMSRotator,Mode,Account} MetricName=\"KeysRotated\"', 'Sum', 3600)`,
		`SEARCH('{KMSRotator,Mode,Account} MetricName=\"KeysFailed\"', 'Sum', 3600)`,
		`SEARCH('{KMSRotator,Mode,Account} MetricName=\"KeysOverdueAction\"', 'Sum', 3600)`,
		`SEARCH('{KMSRotator,Mode,Account} MetricName=\"KeysOverdueByPolicy\"', 'Sum', 3600)`,
		`SEARCH('{KMSRotator,Mode,Account} MetricName=\"RunsFailed\"', 'Sum', 3600)`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("organization dashboard lacks %s", want)
		}
	}
	_, _, single := synth(t)
	if strings.Contains(dashboard(single), "Account}") {
		t.Error("the single-account dashboard has per-account widgets")
	}
}

func TestOrgScheduleStartsTheStateMachine(t *testing.T) {
	_, tmpl, j := orgSynth(t)
	tmpl.ResourceCountIs(jsii.String("AWS::StepFunctions::StateMachine"), jsii.Number(1))
	smID, _ := only(t, j, "AWS::StepFunctions::StateMachine")
	_, sched := only(t, j, "AWS::Scheduler::Schedule")
	target := sched["Target"].(map[string]any)
	if ref, _ := target["Arn"].(map[string]any)["Ref"].(string); ref != smID {
		t.Errorf("the schedule targets %v, want the state machine %s", target["Arn"], smID)
	}
	if body := mustString(j["Resources"]); !strings.Contains(body, "states:StartExecution") {
		t.Error("no role may start the state machine")
	}
	_, fn := lambdaFunction(t, j, "kms-rotator")
	if v := fn["Environment"].(map[string]any)["Variables"].(map[string]any)[settings.EnvContinuationMax]; v != "0" {
		t.Errorf("%s = %v in organization mode, want 0: the state machine continues targets", settings.EnvContinuationMax, v)
	}
	_, _, single := synth(t)
	if n := len(resources(t, single, "AWS::StepFunctions::StateMachine")); n != 0 {
		t.Errorf("%d state machines in single-account mode", n)
	}
}

// TestOrgSweepFailedAlarm: in organization mode an alarm watches the state
// machine's executions that failed, timed out or were aborted (a resolve
// state that failed fails the execution), notifying the topic both ways;
// the dashboard's organization section shows the executions.
func TestOrgSweepFailedAlarm(t *testing.T) {
	_, _, j := orgSynth(t)
	smID, _ := only(t, j, "AWS::StepFunctions::StateMachine")
	topicID, _ := only(t, j, "AWS::SNS::Topic")
	var alarm map[string]any
	for _, r := range resources(t, j, "AWS::CloudWatch::Alarm") {
		if p := r["Properties"].(map[string]any); p["AlarmName"] == "kms-rotator-org-sweep-failed" {
			alarm = p
		}
	}
	if alarm == nil {
		t.Fatal("no alarm kms-rotator-org-sweep-failed")
	}
	topic := []any{map[string]any{"Ref": topicID}}
	if !reflect.DeepEqual(alarm["AlarmActions"], topic) || !reflect.DeepEqual(alarm["OKActions"], topic) {
		t.Errorf("actions %v, OK actions %v: want the topic for both", alarm["AlarmActions"], alarm["OKActions"])
	}
	if alarm["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" || alarm["Threshold"] != 1.0 || alarm["EvaluationPeriods"] != 1.0 || alarm["TreatMissingData"] != "notBreaching" {
		t.Errorf("alarm %v: want ≥ 1 in one period, missing data not breaching", alarm)
	}
	var expr string
	var watched []string
	for _, m := range alarm["Metrics"].([]any) {
		m := m.(map[string]any)
		if e, ok := m["Expression"].(string); ok {
			expr = e
			continue
		}
		st := m["MetricStat"].(map[string]any)
		metric := st["Metric"].(map[string]any)
		dims := metric["Dimensions"].([]any)
		if len(dims) != 1 || !reflect.DeepEqual(dims[0], map[string]any{"Name": "StateMachineArn", "Value": map[string]any{"Ref": smID}}) ||
			metric["Namespace"] != "AWS/States" || st["Stat"] != "Sum" || st["Period"] != 300.0 {
			t.Errorf("metric %v: want the state machine's, summed over 5 minutes", m)
		}
		watched = append(watched, metric["MetricName"].(string))
	}
	sort.Strings(watched)
	if expr != "SUM(METRICS())" || !reflect.DeepEqual(watched, []string{"ExecutionsAborted", "ExecutionsFailed", "ExecutionsTimedOut"}) {
		t.Errorf("expression %q over %v", expr, watched)
	}
	_, d := only(t, j, "AWS::CloudWatch::Dashboard")
	if body := flat(d["DashboardBody"]); !strings.Contains(body, `"TargetsResolved","Mode","targets"`) || !strings.Contains(body, `"AccountsExcluded","Mode","targets"`) {
		t.Errorf("the dashboard has no TargetsResolved / AccountsExcluded figure of mode targets: %.600s", body)
	}
	if body := flat(d["DashboardBody"]); !strings.Contains(body, "Organization: sweep executions") || !strings.Contains(body, `"ExecutionsFailed","StateMachineArn","${`+smID+`}"`) {
		t.Errorf("the dashboard does not show the sweep's executions")
	}
	_, _, single := synth(t)
	if strings.Contains(mustString(single["Resources"]), "org-sweep-failed") {
		t.Error("an org-sweep-failed alarm in single-account mode")
	}
}

// orgSynthWith synthesizes the central stack with orgContext changed by
// changes, and returns its template.
func orgSynthWith(t *testing.T, changes map[string]any) map[string]any {
	t.Helper()
	ctx := maps.Clone(orgContext)
	maps.Copy(ctx, changes)
	app := newApp(t, ctx)
	if err := addStacks(app, fakeCode(t)); err != nil {
		t.Fatal(err)
	}
	var j map[string]any
	if err := json.Unmarshal(mustJSON(assertions.Template_FromStack(onlyStack(t, app), nil).ToJSON()), &j); err != nil {
		t.Fatal(err)
	}
	return j
}

// onlyStack is the app's one stack, whatever its name.
func onlyStack(t *testing.T, app awscdk.App) awscdk.Stack {
	t.Helper()
	var stacks []awscdk.Stack
	for _, c := range *app.Node().Children() {
		if s, ok := c.(awscdk.Stack); ok {
			stacks = append(stacks, s)
		}
	}
	if len(stacks) != 1 {
		t.Fatalf("%d stacks, want 1", len(stacks))
	}
	return stacks[0]
}

// TestOrgFunctionListsTargetOUsOnly: with an OU or root among orgTargets
// the function role gains policy/organization-read.json (the three reads
// that list a target's accounts, on *), which the member role does not;
// with account IDs alone it has no Organizations permission.
func TestOrgFunctionListsTargetOUsOnly(t *testing.T) {
	_, _, j := orgSynth(t)
	var got []statement
	for _, s := range statements(t, resources(t, j, "AWS::IAM::Role")[functionRoleID(t, j)]["Properties"].(map[string]any)) {
		if strings.Contains(strings.Join(s.Actions, ","), "organizations:") {
			got = append(got, s)
		}
	}
	want := []statement{{"ListAccountsOfTargetOUs",
		[]string{"organizations:DescribeOrganization", "organizations:ListAccountsForParent", "organizations:ListOrganizationalUnitsForParent"}, []string{"*"}, ""}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("\n got %+v\nwant %+v", got, want)
	}
	if body := memberTemplateOf(t, j); strings.Contains(body, "organizations:") {
		t.Errorf("the member role holds an Organizations permission: %s", body)
	}
	accountsOnly := orgSynthWith(t, map[string]any{ctxOrgTargets: "111122223333,444455556666"})
	if strings.Contains(mustString(accountsOnly["Resources"]), "organizations:") {
		t.Error("with account targets only, the stack grants an Organizations permission")
	}
	if _, _, single := synth(t); strings.Contains(mustString(single["Resources"]), "organizations:") {
		t.Error("single-account mode grants an Organizations permission")
	}
}

// TestOrgMemberKeyPolicyStatements: the central stack outputs the
// statements a member account's key policy needs for the member role
// (policy.MemberKeyStatements), naming the role in MEMBER_ACCOUNT_ID for
// the key owner to replace; each member stack outputs them with its own
// account. Single-account mode has no such output.
func TestOrgMemberKeyPolicyStatements(t *testing.T) {
	_, _, j := orgSynth(t)
	want := func(account string) []any {
		st, err := policy.MemberKeyStatements(policy.Params{Partition: "${AWS::Partition}", Account: account, MemberRoleName: "sec-kms-rotator", TagKey: "kms-rotator", TagValue: "enabled"})
		if err != nil {
			t.Fatal(err)
		}
		var v []any
		if err := json.Unmarshal(mustJSON(statementsAsAny(st)), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	parse := func(where, text string) []any {
		var v []any
		if err := json.Unmarshal([]byte(text), &v); err != nil {
			t.Fatalf("%s is not a JSON list: %v\n%s", where, err, text)
		}
		return v
	}
	central := flat(j["Outputs"].(map[string]any)["Member"+memberKeyPolicyOutput].(map[string]any)["Value"])
	// flat renders the partition's Ref as ${AWS::Partition}.
	if got := parse("the central output", central); !reflect.DeepEqual(got, want(memberAccountPlaceholder)) {
		t.Errorf("central output\n got %s\nwant %s", mustJSON(got), mustJSON(want(memberAccountPlaceholder)))
	}
	if !strings.Contains(central, `"AWS":"arn:${AWS::Partition}:iam::MEMBER_ACCOUNT_ID:role/sec-kms-rotator"`) {
		t.Errorf("the central output does not name the member role in MEMBER_ACCOUNT_ID: %s", central)
	}
	var member map[string]any
	if err := json.Unmarshal([]byte(memberTemplateOf(t, j)), &member); err != nil {
		t.Fatal(err)
	}
	sub, _ := member["Outputs"].(map[string]any)[memberKeyPolicyOutput].(map[string]any)["Value"].(map[string]any)["Fn::Sub"].(string)
	if got := parse("the member output", sub); !reflect.DeepEqual(got, want("${AWS::AccountId}")) {
		t.Errorf("member output\n got %s\nwant %s", mustJSON(got), mustJSON(want("${AWS::AccountId}")))
	}
	_, _, single := synth(t)
	if _, ok := single["Outputs"].(map[string]any)["Member"+memberKeyPolicyOutput]; ok {
		t.Error("single-account mode outputs the member key policy statements")
	}
}

// TestOrgSweepResolvesOrgTargetsAsGiven: the central stack's state machine
// asks the function for the targets of orgTargets as given (accounts, OUs
// and roots, in order) in orgRegions; OU targets alone synthesize, without
// orgRootId, and grant the Organizations reads.
func TestOrgSweepResolvesOrgTargetsAsGiven(t *testing.T) {
	payload := func(j map[string]any) string {
		_, sm := only(t, j, "AWS::StepFunctions::StateMachine")
		var def map[string]any
		if err := json.Unmarshal([]byte(flat(sm["DefinitionString"])), &def); err != nil {
			t.Fatalf("definition: %v", err)
		}
		resolve := def["States"].(map[string]any)[orgResolveTask].(map[string]any)
		return string(mustJSON(resolve["Parameters"].(map[string]any)["Payload"]))
	}
	_, _, j := orgSynth(t)
	want := `{"execution.$":"$$.Execution.Name","mode":"targets","orgRegions":["eu-west-1","us-east-1"],"orgTargets":["ou-ab12-cdefghij","111122223333","ou-ab12-klmnopqr"]}`
	if got := payload(j); got != want {
		t.Errorf("payload %s, want %s", got, want)
	}
	ouOnly := orgSynthWith(t, map[string]any{ctxOrgTargets: "ou-ab12-cdefghij", ctxOrgRootID: ""})
	want = `{"execution.$":"$$.Execution.Name","mode":"targets","orgRegions":["eu-west-1","us-east-1"],"orgTargets":["ou-ab12-cdefghij"]}`
	if got := payload(ouOnly); got != want {
		t.Errorf("OU only: payload %s, want %s", got, want)
	}
	if !strings.Contains(mustString(ouOnly["Resources"]), `"organizations:ListAccountsForParent"`) {
		t.Error("OU only: the function role may not list the OU's accounts")
	}
}

// TestOrgTargetsFailedAlarm: in organization mode an alarm fires when the
// last sweep's org-summary run counted failed targets (OrgTargetsFailed,
// Mode=org-summary, the function's namespace), holds that verdict between
// sweeps and notifies the topic both ways; the dashboard shows the
// org-summary figures. A single-account stack has neither.
func TestOrgTargetsFailedAlarm(t *testing.T) {
	_, _, j := orgSynth(t)
	topicID, _ := only(t, j, "AWS::SNS::Topic")
	var alarm map[string]any
	for _, r := range resources(t, j, "AWS::CloudWatch::Alarm") {
		if p := r["Properties"].(map[string]any); p["AlarmName"] == "kms-rotator-org-targets-failed" {
			alarm = p
		}
	}
	if alarm == nil {
		t.Fatal("no alarm kms-rotator-org-targets-failed")
	}
	topic := []any{map[string]any{"Ref": topicID}}
	want := map[string]any{
		"AlarmActions": topic, "OKActions": topic, "ComparisonOperator": "GreaterThanOrEqualToThreshold", "Threshold": 1.0,
		"EvaluationPeriods": 1.0, "TreatMissingData": "ignore",
		"Metrics": []any{map[string]any{"Id": "m1", "Label": orgSummaryMode, "ReturnData": true, "MetricStat": map[string]any{
			"Metric": map[string]any{"MetricName": settings.MetricOrgTargetsFailed, "Namespace": "KMSRotator",
				"Dimensions": []any{map[string]any{"Name": settings.DimMode, "Value": orgSummaryMode}}},
			"Period": sweepPeriod(DefaultSettings().Silence).Seconds(), "Stat": "Maximum"}}},
	}
	for k, w := range want {
		if !reflect.DeepEqual(alarm[k], w) {
			t.Errorf("%s = %s, want %s", k, mustJSON(alarm[k]), mustJSON(w))
		}
	}
	_, d := only(t, j, "AWS::CloudWatch::Dashboard")
	body := flat(d["DashboardBody"])
	for _, m := range []string{settings.MetricOrgTargets, settings.MetricOrgTargetsSwept, settings.MetricOrgTargetsIncomplete, settings.MetricOrgTargetsFailed,
		settings.MetricOrgKeysRotated, settings.MetricOrgKeysFailed, settings.MetricOrgKeysOverdue} {
		if !strings.Contains(body, `"`+m+`","Mode","org-summary"`) {
			t.Errorf("the dashboard has no %s figure of mode org-summary", m)
		}
	}
	_, _, single := synth(t)
	if s := mustString(single["Resources"]); strings.Contains(s, "org-targets-failed") || strings.Contains(s, "OrgTargets") {
		t.Error("org-summary alarm or figures in single-account mode")
	}
}
