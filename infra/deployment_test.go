package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// dressedContext, over orgContext: a second deployment of the account and
// Region (another stack and function name), whose roles have a permissions
// boundary and whose resources carry tags, with Security Hub findings on
// and the evidence kept two years under a COMPLIANCE Object Lock of a year.
var dressedContext = map[string]any{
	ctxStackName:    "KmsRotator-payments",
	ctxFunctionName: "kms-rotator-payments",
	// Named after the function, as by default.
	ctxMemberRoleName:         "",
	ctxPermissionsBoundaryARN: "arn:aws:iam::111122223333:policy/boundaries/SecBoundary",
	// As cdk.json gives it: a JSON object.
	ctxTags: map[string]any{"team": "security", "cost-center": "CC 42/a+b"},
	// Security Hub on; evidence kept two years, locked one.
	functionKey(settings.EnvSecurityHub): true,
	ctxEvidenceRetentionDays:             731,
	ctxEvidenceObjectLockDays:            365,
	ctxEvidenceObjectLockMode:            "COMPLIANCE",
}

// dressedTags are dressedContext's tags.
var dressedTags = map[string]string{"team": "security", "cost-center": "CC 42/a+b"}

// dressedApp synthesizes orgContext with dressedContext over it.
func dressedApp(t *testing.T) (awscdk.Stack, map[string]any) {
	t.Helper()
	ctx := maps.Clone(orgContext)
	maps.Copy(ctx, dressedContext)
	app := newApp(t, ctx)
	if err := addStacks(app, fakeCode(t)); err != nil {
		t.Fatal(err)
	}
	stack := onlyStack(t, app)
	var j map[string]any
	if err := json.Unmarshal(mustJSON(assertions.Template_FromStack(stack, nil).ToJSON()), &j); err != nil {
		t.Fatal(err)
	}
	return stack, j
}

// synthErr is the error of a synth with ctx over cdk.json.
func synthErr(t *testing.T, ctx map[string]any) error {
	t.Helper()
	return addStacks(newApp(t, ctx), fakeCode(t))
}

// TestNoStackSetAutoDeploysWithAnAccountFilter reads every synthesized
// StackSet of several organization-mode deployments: automatic deployment
// ignores account filters (it deploys to every account added to the
// organization), so no StackSet with automatic deployment may carry one, and
// the account targets are deployed, exactly, by a StackSet without it.
func TestNoStackSetAutoDeploysWithAnAccountFilter(t *testing.T) {
	for _, tc := range []struct {
		name              string
		ctx               map[string]any
		ous, accounts     []string
		wantStackSetNames []string
	}{
		{"OUs and an account", nil, []string{"ou-ab12-cdefghij", "ou-ab12-klmnopqr"}, []string{"111122223333"},
			[]string{"kms-rotator-member-role", "kms-rotator-member-role-accounts"}},
		{"accounts only", map[string]any{ctxOrgTargets: "111122223333,444455556666"}, nil, []string{"111122223333", "444455556666"},
			[]string{"kms-rotator-member-role-accounts"}},
		{"OUs only", map[string]any{ctxOrgTargets: "ou-ab12-cdefghij", ctxOrgRootID: ""}, []string{"ou-ab12-cdefghij"}, nil,
			[]string{"kms-rotator-member-role"}},
		{"the root", map[string]any{ctxOrgTargets: "r-ab12"}, []string{"r-ab12"}, nil, []string{"kms-rotator-member-role"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := orgSynthWith(t, tc.ctx)
			var names, gotOUs, gotAccounts []string
			for id, r := range resources(t, j, "AWS::CloudFormation::StackSet") {
				p := r["Properties"].(map[string]any)
				names = append(names, p["StackSetName"].(string))
				auto, _ := p["AutoDeployment"].(map[string]any)
				enabled := auto["Enabled"] == true
				for _, g := range p["StackInstancesGroup"].([]any) {
					targets := g.(map[string]any)["DeploymentTargets"].(map[string]any)
					filter, _ := targets["AccountFilterType"].(string)
					_, accounts := targets["Accounts"]
					_, url := targets["AccountsUrl"]
					filtered := accounts || url || (filter != "" && filter != "NONE")
					if enabled && filtered {
						t.Errorf("%s: automatic deployment with an account filter %v: every account that joins the organization would get the member role", id, targets)
					}
					if !filtered {
						gotOUs = append(gotOUs, flatList(targets["OrganizationalUnitIds"])...)
						continue
					}
					// Accounts are reached through the root, intersected.
					if filter != "INTERSECTION" || !reflect.DeepEqual(flatList(targets["OrganizationalUnitIds"]), []string{"r-ab12"}) {
						t.Errorf("%s: account targets %v, want the root intersected with the accounts", id, targets)
					}
					gotAccounts = append(gotAccounts, flatList(targets["Accounts"])...)
				}
				if _, has := auto["Enabled"]; !has {
					t.Errorf("%s: AutoDeployment %v does not say whether it is on", id, auto)
				}
			}
			slices.Sort(names)
			if !reflect.DeepEqual(names, tc.wantStackSetNames) {
				t.Errorf("StackSets %v, want %v", names, tc.wantStackSetNames)
			}
			if !slices.Equal(gotOUs, tc.ous) || !slices.Equal(gotAccounts, tc.accounts) {
				t.Errorf("deployed to OUs %v and accounts %v, want %v and %v", gotOUs, gotAccounts, tc.ous, tc.accounts)
			}
		})
	}
}

// TestMemberRolesOutliveOrganizationMode: each StackSet is retained when it
// leaves the template (a deploy without the organization context) or the
// stack is deleted, and when CloudFormation would replace it: the member
// roles stay until someone deletes them on purpose.
func TestMemberRolesOutliveOrganizationMode(t *testing.T) {
	_, _, j := orgSynth(t)
	for id, r := range resources(t, j, "AWS::CloudFormation::StackSet") {
		if r["DeletionPolicy"] != "Retain" || r["UpdateReplacePolicy"] != "Retain" {
			t.Errorf("%s: DeletionPolicy %v, UpdateReplacePolicy %v, want Retain", id, r["DeletionPolicy"], r["UpdateReplacePolicy"])
		}
	}
}

// TestStacksAreTerminationProtected: a delete-stack (or cdk destroy) by
// mistake is refused, in both modes.
func TestStacksAreTerminationProtected(t *testing.T) {
	single, _, _ := synth(t)
	org, _, _ := orgSynth(t)
	for name, s := range map[string]awscdk.Stack{"single-account": single, "organization": org} {
		if tp := s.TerminationProtection(); tp == nil || !*tp {
			t.Errorf("%s: termination protection off", name)
		}
	}
}

func TestStackName(t *testing.T) {
	t.Run("names the stack in every Region", func(t *testing.T) {
		app := newApp(t, map[string]any{ctxStackName: "KmsRotator-payments", ctxRegions: "us-east-1,eu-west-1"})
		if err := addStacks(app, fakeCode(t)); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range *app.Node().Children() {
			if s, ok := c.(awscdk.Stack); ok {
				got = append(got, *s.Node().Id()+"="+*s.StackName())
			}
		}
		want := []string{"KmsRotator-payments-us-east-1=KmsRotator-payments", "KmsRotator-payments-eu-west-1=KmsRotator-payments"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("stacks %v, want %v", got, want)
		}
	})
	for _, bad := range []string{"1rotator", "kms_rotator", "kms rotator", strings.Repeat("K", 129)} {
		t.Run(fmt.Sprintf("%.20q is refused", bad), func(t *testing.T) {
			err := synthErr(t, map[string]any{ctxStackName: bad})
			if err == nil || !strings.Contains(err.Error(), "-c stackName="+bad+": not a CloudFormation stack name") {
				t.Errorf("err = %v", err)
			}
		})
	}
}

// TestTwoDeploymentsInOneAccountDoNotCollide: an organization sharded
// across two deployments in one account and Region, told apart by
// stackName and functionName: no resource name of one is a name of the
// other (functions, alarms, dashboard, schedule group, buses, rules,
// StackSets, member role, log group), and the resources without an
// explicit name (roles, ledger table, queue, topic, state machine) are
// named by CloudFormation after the stack.
func TestTwoDeploymentsInOneAccountDoNotCollide(t *testing.T) {
	first := orgSynthWith(t, nil)
	secondStack, second := dressedApp(t)
	if *secondStack.StackName() != "KmsRotator-payments" {
		t.Fatalf("stack name %s", *secondStack.StackName())
	}
	// The property holding each resource type's own name.
	own := map[string]string{
		"AWS::Lambda::Function": "FunctionName", "AWS::CloudWatch::Alarm": "AlarmName", "AWS::CloudWatch::Dashboard": "DashboardName",
		"AWS::Scheduler::ScheduleGroup": "Name", "AWS::Events::EventBus": "Name", "AWS::Events::Rule": "Name",
		"AWS::CloudFormation::StackSet": "StackSetName", "AWS::Logs::LogGroup": "LogGroupName",
	}
	generated := map[string]string{
		"AWS::IAM::Role": "RoleName", "AWS::DynamoDB::Table": "TableName", "AWS::SQS::Queue": "QueueName", "AWS::SNS::Topic": "TopicName",
		"AWS::StepFunctions::StateMachine": "StateMachineName", "AWS::IAM::ManagedPolicy": "ManagedPolicyName", "AWS::Scheduler::Schedule": "Name",
		"AWS::S3::Bucket": "BucketName",
	}
	names := func(j map[string]any) map[string]string {
		out := map[string]string{}
		for id, r := range j["Resources"].(map[string]any) {
			r := r.(map[string]any)
			typ := r["Type"].(string)
			p, _ := r["Properties"].(map[string]any)
			if key, ok := generated[typ]; ok {
				if v, named := p[key]; named {
					t.Errorf("%s %s has the explicit name %v: a second deployment would collide on it", typ, id, flat(v))
				}
			}
			if key, ok := own[typ]; ok {
				if v, named := p[key]; named {
					out[typ+" "+flat(v)] = id
				}
			}
			if typ == "AWS::CloudFormation::StackSet" {
				var member map[string]any
				if err := json.Unmarshal([]byte(p["TemplateBody"].(string)), &member); err != nil {
					t.Fatal(err)
				}
				role := member["Resources"].(map[string]any)["MemberRole"].(map[string]any)["Properties"].(map[string]any)
				out["member role "+role["RoleName"].(string)] = id
			}
		}
		return out
	}
	a, b := names(first), names(second)
	if len(a) < 20 || len(b) != len(a) {
		t.Fatalf("%d and %d names: %v", len(a), len(b), slices.Sorted(maps.Keys(b)))
	}
	for n := range b {
		if _, clash := a[n]; clash {
			t.Errorf("both deployments create %s", n)
		}
	}
	for _, want := range []string{"AWS::Lambda::Function kms-rotator-payments", "AWS::Lambda::Function kms-rotator-payments-sweep",
		"AWS::Events::EventBus kms-rotator-payments-incidents", "member role kms-rotator-payments-member",
		"AWS::CloudFormation::StackSet kms-rotator-payments-member-role", "AWS::Scheduler::ScheduleGroup kms-rotator-payments"} {
		if _, ok := b[want]; !ok {
			t.Errorf("the second deployment has no %s: %v", want, slices.Sorted(maps.Keys(b)))
		}
	}
}

// TestPermissionsBoundaryIsOnEveryRole: every role of the central stack
// (the function's, the Scheduler's, the state machine's) and the member
// role have the boundary; the member role's is the policy of the same path
// and name in its own account.
func TestPermissionsBoundaryIsOnEveryRole(t *testing.T) {
	_, j := dressedApp(t)
	roles := resources(t, j, "AWS::IAM::Role")
	if len(roles) != 3 {
		t.Errorf("%d roles, want the function's, the Scheduler's and the state machine's", len(roles))
	}
	for id, r := range roles {
		if got := r["Properties"].(map[string]any)["PermissionsBoundary"]; got != dressedContext[ctxPermissionsBoundaryARN] {
			t.Errorf("role %s: boundary %v", id, got)
		}
	}
	for id, r := range resources(t, j, "AWS::CloudFormation::StackSet") {
		var member map[string]any
		if err := json.Unmarshal([]byte(r["Properties"].(map[string]any)["TemplateBody"].(string)), &member); err != nil {
			t.Fatal(err)
		}
		role := member["Resources"].(map[string]any)["MemberRole"].(map[string]any)["Properties"].(map[string]any)
		want := map[string]any{"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/boundaries/SecBoundary"}
		if !reflect.DeepEqual(role["PermissionsBoundary"], want) {
			t.Errorf("%s: member role boundary %v, want %v", id, role["PermissionsBoundary"], want)
		}
	}
	t.Run("an AWS managed policy is the same in every account", func(t *testing.T) {
		s, err := SettingsFromContext(func(k string) any {
			return map[string]any{ctxPermissionsBoundaryARN: "arn:aws:iam::aws:policy/PowerUserAccess"}[k]
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.PermissionsBoundary.InAccount("${AWS::Partition}", "${AWS::AccountId}"); got != "arn:${AWS::Partition}:iam::aws:policy/PowerUserAccess" {
			t.Errorf("member boundary %s", got)
		}
	})
	for _, tc := range []struct {
		name string
		ctx  map[string]any
		want string
	}{
		{"a role ARN", map[string]any{ctxPermissionsBoundaryARN: "arn:aws:iam::111122223333:role/Boundary"}, "not an IAM managed policy's ARN"},
		{"a policy of another partition than the stack's", map[string]any{ctxPermissionsBoundaryARN: "arn:aws:iam::111122223333:policy/B", ctxRegions: "cn-north-1"},
			"-c permissionsBoundaryArn=arn:aws:iam::111122223333:policy/B: a policy of partition aws; the stack deploys to partition aws-cn"},
		{"a policy of an isolated partition", map[string]any{ctxPermissionsBoundaryARN: "arn:aws-iso:iam::111122223333:policy/B"}, "partition aws-iso is not one of"},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			if err := synthErr(t, tc.ctx); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	t.Run("a policy of another account than the CLI's is refused", func(t *testing.T) {
		t.Setenv("CDK_DEFAULT_ACCOUNT", "444455556666")
		t.Setenv("CDK_DEFAULT_REGION", "us-gov-west-1")
		err := synthErr(t, map[string]any{ctxPermissionsBoundaryARN: "arn:aws-us-gov:iam::111122223333:policy/B"})
		if err == nil || !strings.Contains(err.Error(), "a policy of account 111122223333; the stack deploys to 444455556666") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("a policy of another partition than the CLI's Region is refused", func(t *testing.T) {
		t.Setenv("CDK_DEFAULT_ACCOUNT", "")
		t.Setenv("CDK_DEFAULT_REGION", "eusc-de-east-1")
		err := synthErr(t, map[string]any{ctxPermissionsBoundaryARN: "arn:aws:iam::aws:policy/PowerUserAccess"})
		if err == nil || !strings.Contains(err.Error(), "the stack deploys to partition aws-eusc") {
			t.Errorf("err = %v", err)
		}
	})
}

// tagsOf reads a template's Tags property: a list of {Key, Value}, or (for
// some resource types) a map.
func tagsOf(v any) map[string]string {
	out := map[string]string{}
	switch v := v.(type) {
	case []any:
		for _, t := range v {
			t := t.(map[string]any)
			out[fmt.Sprint(t["Key"])] = fmt.Sprint(t["Value"])
		}
	case map[string]any:
		for k, x := range v {
			out[k] = fmt.Sprint(x)
		}
	}
	return out
}

// TestTagsAreOnEveryTaggableResource: every resource of the stack CDK can
// tag carries the tags, the member role too, and the stack itself (which
// CloudFormation propagates to what CDK cannot tag).
func TestTagsAreOnEveryTaggableResource(t *testing.T) {
	stack, j := dressedApp(t)
	rs := j["Resources"].(map[string]any)
	tagged := 0
	for _, c := range *stack.Node().FindAll(constructs.ConstructOrder_PREORDER) {
		cfn, ok := c.(awscdk.CfnResource)
		if !ok || !*awscdk.TagManager_IsTaggable(c) {
			continue
		}
		id := *stack.GetLogicalId(cfn)
		r, ok := rs[id].(map[string]any)
		if !ok {
			continue // not rendered (an imported resource)
		}
		if slices.Contains(untaggedInTemplate, r["Type"].(string)) {
			continue // tagged by CloudFormation with the stack's tags
		}
		props, _ := r["Properties"].(map[string]any)
		got := tagsOf(props["Tags"])
		for k, v := range dressedTags {
			if got[k] != v {
				t.Errorf("%s %s: tag %s = %q, want %q", r["Type"], id, k, got[k], v)
			}
		}
		tagged++
	}
	if tagged < 12 {
		t.Errorf("only %d taggable resources", tagged)
	}
	for id, r := range resources(t, j, "AWS::CloudFormation::StackSet") {
		var member map[string]any
		if err := json.Unmarshal([]byte(r["Properties"].(map[string]any)["TemplateBody"].(string)), &member); err != nil {
			t.Fatal(err)
		}
		role := member["Resources"].(map[string]any)["MemberRole"].(map[string]any)["Properties"].(map[string]any)
		if got := tagsOf(role["Tags"]); !reflect.DeepEqual(got, dressedTags) {
			t.Errorf("%s: member role tags %v, want %v", id, got, dressedTags)
		}
	}
	stackTags := map[string]string{}
	for k, v := range *stack.Tags().TagValues() {
		stackTags[k] = *v
	}
	if !reflect.DeepEqual(stackTags, dressedTags) {
		t.Errorf("stack tags %v, want %v", stackTags, dressedTags)
	}
}

func TestTagsAreChecked(t *testing.T) {
	read := func(v any) ([]Tag, error) {
		s, err := SettingsFromContext(func(k string) any { return map[string]any{ctxTags: v}[k] })
		return s.Tags, err
	}
	want := []Tag{{"cost-center", "42"}, {"team", "sec ops"}}
	for name, v := range map[string]any{
		"a JSON object (cdk.json)": map[string]any{"team": "sec ops", "cost-center": "42"},
		"a JSON object in -c":      `{"team":"sec ops","cost-center":"42"}`,
		"a key=value list in -c":   "team=sec ops, cost-center=42",
	} {
		t.Run(name, func(t *testing.T) {
			got, err := read(v)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("tags %v, %v; want %v", got, err, want)
			}
		})
	}
	many := map[string]any{}
	for i := range 51 {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"a key of AWS's", "aws:owner=me", `tag "aws:owner"="me": the aws: prefix is reserved for AWS`},
		{"a value of AWS's", "owner=AWS:me", "the aws: prefix is reserved"},
		{"a character tags do not take", "team=sec#ops", "letters, digits, spaces and _ . : / = + - @ only"},
		{"a key too long", strings.Repeat("k", 129) + "=v", "a key holds 1–128 characters"},
		{"a value too long", "k=" + strings.Repeat("v", 257), "a value holds at most 256 characters"},
		{"an empty key", "=v", "a key holds 1–128 characters"},
		{"keys that differ only in case", map[string]any{"Team": "a", "team": "b"}, `IAM does not tell it from "Team"`},
		{"a pair without =", "team", `"team" is not key=value`},
		{"a key given twice", "team=a,team=b", `the tag "team" is given twice`},
		{"a value that is not a string", map[string]any{"n": 1.0}, `tag "n": the value must be a string`},
		{"more than 50", many, "51 tags: a resource holds at most 50"},
		{"a JSON list", []any{"team=a"}, "a JSON object of strings, or key=value,key=value"},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			_, err := read(tc.v)
			if err == nil || !strings.Contains(err.Error(), "-c tags=") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestPartitions: the stack deploys to the four partitions the product
// supports, and the synth refuses the others. Every Region the synth
// accepts is one the function accepts too, with the same partition (the
// function learns its partition and Region from its own ARN), so a stack
// that synthesizes does not fail its runs on the Region's name.
func TestPartitions(t *testing.T) {
	for _, region := range []string{"us-east-1", "cn-north-1", "us-gov-west-1", "eusc-de-east-1"} {
		t.Run(region+" synthesizes in both modes", func(t *testing.T) {
			if err := synthErr(t, map[string]any{ctxRegions: region}); err != nil {
				t.Error(err)
			}
			org := maps.Clone(orgContext)
			org[ctxOrgRegions] = region
			if err := synthErr(t, org); err != nil {
				t.Error(err)
			}
		})
	}
	for _, region := range []string{"us-iso-east-1", "us-isob-east-1", "eu-isoe-west-1", "us-isof-south-1"} {
		t.Run(region+" is refused", func(t *testing.T) {
			err := synthErr(t, map[string]any{ctxRegions: region})
			if err == nil || !strings.Contains(err.Error(), "which kms-rotator does not deploy to (aws, aws-cn, aws-us-gov, aws-eusc)") {
				t.Errorf("err = %v", err)
			}
		})
	}
	t.Run("the CLI's Region of another partition is refused", func(t *testing.T) {
		t.Setenv("CDK_DEFAULT_REGION", "us-iso-east-1")
		err := synthErr(t, nil)
		if err == nil || !strings.Contains(err.Error(), "the stack's Region us-iso-east-1 (the CLI's) is of partition aws-iso") {
			t.Errorf("err = %v", err)
		}
	})
	for p, regions := range partitionRegions {
		for _, region := range regions {
			sc, err := request.ScopeFromFunctionARN("arn:" + p + ":lambda:" + region + ":111122223333:function:kms-rotator")
			if err != nil || sc.Partition != p || sc.Region != region {
				t.Errorf("%s (%s): the function reads its ARN as %+v, %v", region, p, sc, err)
				continue
			}
			sc.Organization = true
			if _, err := request.Decode([]byte(`{"mode":"scheduled","target":{"account":"444455556666","region":"`+region+`"}}`), sc); err != nil {
				t.Errorf("%s (%s): the function refuses a target in its own Region: %v", region, p, err)
			}
		}
	}
}

// TestDressedStackNagReportsNoError: another stack name, a boundary and
// tags change nothing cdk-nag objects to.
func TestDressedStackNagReportsNoError(t *testing.T) {
	stack, _ := dressedApp(t)
	ann := assertions.Annotations_FromStack(stack)
	match := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))
	for _, f := range append(*ann.FindError(jsii.String("*"), match), *ann.FindWarning(jsii.String("*"), match)...) {
		t.Errorf("unsuppressed finding %s", mustJSON(f))
	}
}
