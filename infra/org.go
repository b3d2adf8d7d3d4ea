package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudformation"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/policy"
)

// Organization mode (docs/deploy.md): one central stack rotates the keys of
// member accounts by assuming a member role there, which a service-managed
// StackSet of the central stack deploys into every target account.

// Context keys of organization mode. cdk.json lists each with its default;
// an empty orgTargets leaves organization mode off.
const (
	ctxOrgTargets        = "orgTargets"
	ctxOrgRegions        = "orgRegions"
	ctxMemberRoleName    = "memberRoleName"
	ctxOrgMaxConcurrency = "orgMaxConcurrency"
	ctxOrgID             = "orgId"
	ctxOrgRootID         = "orgRootId"
)

// orgContextKeys are the context keys of organization mode (ContextKeys).
var orgContextKeys = []string{ctxOrgTargets, ctxOrgRegions, ctxMemberRoleName, ctxOrgMaxConcurrency, ctxOrgID, ctxOrgRootID}

// OrgSettings are organization mode's settings; Enabled tells whether it is on.
type OrgSettings struct {
	// Targets are orgTargets as given (duplicates dropped): account, OU and
	// root IDs, which the state machine's first state resolves into
	// (account, Region) targets at each run.
	Targets []string
	// Accounts are the target account IDs, used as given.
	Accounts []string
	// OUs are the target organizational units and roots (ou-…, r-…): the
	// StackSet deploys to their accounts, and to accounts that join later;
	// the sweep lists their active accounts at each run.
	OUs []string
	// Regions are the target Regions of the partition. The member role is
	// global (IAM), so it is deployed from the first one only.
	Regions []string
	// MemberRoleName is the fixed name of the member role, the function's
	// ROTATOR_MEMBER_ROLE_NAME: <functionName>-member unless set, so that
	// two deployments that sweep the same accounts (an organization
	// sharded by Region) do not collide on it.
	MemberRoleName string
	// MaxConcurrency is how many targets are swept at once.
	MaxConcurrency int
	// OrgID (o-…) limits the function's sts:AssumeRole to roles of
	// accounts of this organization (aws:ResourceOrgID); required.
	OrgID string
	// RootID (r-…) is the organization's root: a StackSet can reach single
	// accounts only through an OU that holds them (AccountFilterType
	// INTERSECTION), so account targets need it.
	RootID string
}

// Enabled is true when the deployment spans the organization.
func (o OrgSettings) Enabled() bool { return len(o.Targets) > 0 }

// ListsAccounts is true when a target is an OU or a root, whose accounts
// the function lists through AWS Organizations at each run.
func (o OrgSettings) ListsAccounts() bool { return len(o.OUs) > 0 }

// defaultOrgSettings are cdk.json's: organization mode off.
func defaultOrgSettings() OrgSettings {
	return OrgSettings{MemberRoleName: "kms-rotator" + memberRoleSuffix, MaxConcurrency: 10}
}

// memberRoleSuffix ends the member role's default name,
// <functionName>-member.
const memberRoleSuffix = "-member"

// maxOrgConcurrency: the sweep's Distributed Map runs at most 10,000 child
// executions in parallel per Map Run, a hard quota
// (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html).
// The sweep function reserves as many executions (sweepConcurrency), which
// the account's Lambda concurrency must hold (concurrency in
// deployment.go), so the account's quota is the bound in practice.
const maxOrgConcurrency = 10000

// orgIDRE is an organization ID
// (https://docs.aws.amazon.com/organizations/latest/APIReference/API_Organization.html).
// Account, OU and root IDs are checked by the function's own request
// package, so the synth and the targets request accept the same orgTargets.
var orgIDRE = regexp.MustCompile(`^o-[a-z0-9]{10,32}$`)

// org reads organization mode's settings into s. The member role name is
// checked by the function's own loader in either mode; in organization mode
// it becomes the function's MemberRoleName.
func (r *ctxReader) org(s *Settings) {
	o := defaultOrgSettings()
	for _, t := range r.list(ctxOrgTargets) {
		if slices.Contains(o.Targets, t) {
			continue
		}
		switch {
		case request.IsAccountID(t):
			o.Accounts = append(o.Accounts, t)
		case request.IsParentID(t):
			o.OUs = append(o.OUs, t)
		default:
			r.fail(ctxOrgTargets, t, "not an account ID (12 digits), an OU ID (ou-xxxx-yyyyyyyy) or a root ID (r-xxxx)")
			continue
		}
		o.Targets = append(o.Targets, t)
	}
	for _, region := range r.list(ctxOrgRegions) {
		if regionPartition(region) == "" {
			r.fail(ctxOrgRegions, region, "%s", unknownRegion(region))
			continue
		}
		if !slices.Contains(o.Regions, region) {
			o.Regions = append(o.Regions, region)
		}
	}
	o.MemberRoleName = ""
	r.setStr(ctxMemberRoleName, &o.MemberRoleName)
	if o.MemberRoleName == "" {
		o.MemberRoleName = s.FunctionName + memberRoleSuffix
	}
	env := settings.Environment(functionDefaults())
	env[settings.EnvMemberRoleName] = o.MemberRoleName
	if _, err := settings.LoadConfig(func(k string) string { return env[k] }); err != nil {
		r.fail(ctxMemberRoleName, o.MemberRoleName, "%v", err)
	}
	o.MaxConcurrency = r.integer(ctxOrgMaxConcurrency, o.MaxConcurrency, 1, maxOrgConcurrency)
	r.setStr(ctxOrgID, &o.OrgID)
	if o.OrgID != "" && !orgIDRE.MatchString(o.OrgID) {
		r.fail(ctxOrgID, o.OrgID, "not an organization ID (o- and 10–32 lowercase letters or digits)")
	}
	r.setStr(ctxOrgRootID, &o.RootID)
	if o.RootID != "" && !request.IsRootID(o.RootID) {
		r.fail(ctxOrgRootID, o.RootID, "not a root ID (r- and 4–32 lowercase letters or digits)")
	}
	s.Org = o
	if !o.Enabled() && len(o.Regions) > 0 && !r.failed[ctxOrgTargets] {
		// orgRegions alone would give a single-account stack and sweep
		// none of them: most likely orgTargets is misspelt or missing.
		r.fail(ctxOrgRegions, strings.Join(o.Regions, ","), "organization mode is off: orgRegions needs orgTargets, the accounts, OUs or roots to sweep in them "+
			"(the stacks' own Regions are -c %s)", ctxRegions)
	}
	if !o.Enabled() || r.failed[ctxOrgTargets] {
		return
	}
	if len(o.Regions) == 0 && !r.failed[ctxOrgRegions] {
		r.fail(ctxOrgRegions, "", "organization mode (orgTargets is set) needs the Regions to sweep")
	}
	if mixed := mixedPartitions(append(slices.Clone(o.Regions), s.Regions...)); mixed != "" {
		r.fail(ctxOrgRegions, strings.Join(o.Regions, ","), "the Regions (and the stack's, -c regions) must be of one partition, not %s: roles and STS do not cross partitions", mixed)
	}
	if len(s.Regions) > 1 {
		r.fail(ctxRegions, strings.Join(s.Regions, ","),
			"organization mode has one central stack: the member role trusts one function role, and its fixed name can be deployed once per account")
	}
	if o.OrgID == "" && !r.failed[ctxOrgID] {
		r.fail(ctxOrgID, "", "organization mode needs the organization's ID (o-…, aws organizations describe-organization): it limits the function's sts:AssumeRole to "+
			"roles of the organization's accounts (aws:ResourceOrgID); without it a role named %s in any account that trusts the function's role could be assumed", o.MemberRoleName)
	}
	if roots := slices.DeleteFunc(slices.Clone(o.OUs), func(id string) bool { return !request.IsRootID(id) }); len(roots) > 0 && len(o.Accounts) > 0 {
		// The root's StackSet deploys the member role to every account;
		// a second StackSet for the listed accounts would collide with it
		// on the role's name.
		r.fail(ctxOrgTargets, strings.Join(o.Targets, ","), "the root %s already holds every account of the organization: drop the account IDs (%s)",
			roots[0], strings.Join(o.Accounts, ","))
	}
	if len(o.Accounts) > 0 && o.RootID == "" {
		r.fail(ctxOrgRootID, "", "account targets (%s) need the organization's root ID: a StackSet reaches single accounts only through an OU that holds them (AccountFilterType INTERSECTION)",
			strings.Join(o.Accounts, ","))
	}
	if !r.failed[ctxMemberRoleName] {
		s.Function.MemberRoleName = o.MemberRoleName
	}
	// The state machine continues a target from the report's cursor; a
	// function that also invoked itself would sweep the same keys twice.
	s.Function.ContinuationMax = 0
}

// list reads a comma-separated string or a JSON list (in cdk.json, or as a
// string with -c), trimmed, without empty entries.
func (r *ctxReader) list(key string) []string {
	var raw []string
	switch v := r.get(key).(type) {
	case nil:
		return nil
	case []any:
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				r.fail(key, fmt.Sprint(v), "a list of strings")
				return nil
			}
			raw = append(raw, s)
		}
	case string:
		v = strings.TrimSpace(v)
		if strings.HasPrefix(v, "[") {
			if err := json.Unmarshal([]byte(v), &raw); err != nil {
				r.fail(key, v, "not a JSON list of strings: %v", err)
				return nil
			}
		} else {
			raw = strings.Split(v, ",")
		}
	default:
		r.fail(key, fmt.Sprint(v), "a comma-separated string or a list")
		return nil
	}
	var out []string
	for _, s := range raw {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// memberRoleParameter is the member template's parameter holding the
// central function role's ARN, the only principal the member role trusts.
const memberRoleParameter = "CentralFunctionRoleArn"

// memberTemplate is the StackSet's template: a plain CloudFormation JSON
// template holding only the member role, with no assets and nothing of CDK's
// bootstrap, so a member account needs no bootstrapping. Its permissions
// are policy.MemberRole, the function role's own KMS and tagging
// statements rendered for the member account (${AWS::AccountId} through
// Fn::Sub), and with Security Hub findings on policy.SecurityHubIn, the
// member account's own findings in the orgRegions.
func memberTemplate(s Settings) (string, error) {
	doc, err := policy.MemberRole(policy.Params{
		Partition: "${AWS::Partition}",
		Account:   "${AWS::AccountId}",
		TagKey:    s.Function.TagKey,
		TagValue:  s.Function.TagValue,
	})
	if err != nil {
		return "", err
	}
	if s.Function.SecurityHub {
		// Security Hub takes a member account's findings from that account
		// only: the function imports them through the member role, in each
		// Region the sweep covers (policy.SecurityHubIn).
		hub, err := policy.SecurityHubIn(policy.Params{Partition: "${AWS::Partition}", Account: "${AWS::AccountId}"}, s.Org.Regions)
		if err != nil {
			return "", err
		}
		doc.Statement = append(doc.Statement, hub.Statement...)
	}
	keyStatements, err := memberKeyStatements(s, "${AWS::Partition}", "${AWS::AccountId}")
	if err != nil {
		return "", err
	}
	m := doc.Map()
	for _, st := range m["Statement"].([]any) {
		st := st.(map[string]any)
		res := st["Resource"].([]any)
		for i, v := range res {
			if strings.Contains(v.(string), "${AWS::") {
				res[i] = map[string]any{"Fn::Sub": v}
			}
		}
	}
	tmpl := map[string]any{
		"AWSTemplateFormatVersion": "2010-09-09",
		"Description":              "kms-rotator member role: the central kms-rotator function assumes it to rotate this account's opted-in KMS keys on demand",
		"Parameters": map[string]any{
			memberRoleParameter: map[string]any{
				"Type":           "String",
				"Description":    "The central kms-rotator function's execution role, the only principal that may assume the member role",
				"AllowedPattern": `^arn:aws[a-z-]*:iam::\d{12}:role/.+$`,
			},
		},
		"Resources": map[string]any{
			"MemberRole": map[string]any{
				"Type": "AWS::IAM::Role",
				// The function role's cdk-nag suppressions, for the same
				// statements: CloudFormation ignores Metadata, and cdk-nag
				// reads it when the template is checked
				// (org_nag_test.go).
				"Metadata": map[string]any{"cdk_nag": map[string]any{"rules_to_suppress": []any{
					map[string]any{"id": "AwsSolutions-IAM5", "reason": keyWildcardReason, "applies_to": []any{keyWildcardFinding}},
					map[string]any{"id": "AwsSolutions-IAM5", "reason": listWildcardReason, "applies_to": []any{listWildcardFinding}},
				}}},
				"Properties": map[string]any{
					"RoleName":    s.Org.MemberRoleName,
					"Description": "kms-rotator member role: rotate this account's opted-in keys on demand, nothing else (policy/function-role.json)",
					"AssumeRolePolicyDocument": map[string]any{
						"Version": "2012-10-17",
						"Statement": []any{map[string]any{
							"Effect":    "Allow",
							"Principal": map[string]any{"AWS": map[string]any{"Ref": memberRoleParameter}},
							"Action":    "sts:AssumeRole",
						}},
					},
					"Policies": []any{map[string]any{"PolicyName": "kms-rotator-member", "PolicyDocument": m}},
				},
			},
		},
		"Outputs": map[string]any{
			"MemberRoleArn": map[string]any{"Description": "The member role", "Value": map[string]any{"Fn::GetAtt": []any{"MemberRole", "Arn"}}},
			// The account's own copy of the central stack's
			// MemberKeyPolicyStatements, the role ARN filled in.
			memberKeyPolicyOutput: map[string]any{
				"Description": "Append to the Statement list of this account's key policies that do not delegate to IAM, so the member role may rotate the key while it is opted in",
				"Value":       map[string]any{"Fn::Sub": string(keyStatements)},
			},
		},
	}
	props := tmpl["Resources"].(map[string]any)["MemberRole"].(map[string]any)["Properties"].(map[string]any)
	if b := s.PermissionsBoundary; b != nil {
		// The same policy in the member account: a role's boundary is a
		// policy of its own account, or an AWS managed one.
		props["PermissionsBoundary"] = map[string]any{"Fn::Sub": b.InAccount("${AWS::Partition}", "${AWS::AccountId}")}
	}
	if len(s.Tags) > 0 {
		var tags []any
		for _, t := range s.Tags {
			tags = append(tags, map[string]any{"Key": t.Key, "Value": t.Value})
		}
		props["Tags"] = tags
	}
	raw, err := json.Marshal(tmpl)
	return string(raw), err
}

// memberKeyPolicyOutput names the output of the member statements for key
// policies, in the member template; the central stack's is
// "Member"+memberKeyPolicyOutput.
const memberKeyPolicyOutput = "KeyPolicyStatements"

// memberAccountPlaceholder stands for the member account in the central
// stack's MemberKeyPolicyStatements: the key owner replaces it with the
// key's account ID. Left in place, KMS refuses the key policy (the principal
// does not exist), so a forgotten replacement grants nothing.
const memberAccountPlaceholder = "MEMBER_ACCOUNT_ID"

// memberKeyStatements are the statements that let the member role rotate a
// key whose key policy does not delegate to IAM (policy.MemberKeyStatements),
// as JSON text: the member role of account, in partition.
func memberKeyStatements(s Settings, partition, account string) ([]byte, error) {
	st, err := policy.MemberKeyStatements(policy.Params{
		Partition: partition, Account: account, MemberRoleName: s.Org.MemberRoleName,
		TagKey: s.Function.TagKey, TagValue: s.Function.TagValue,
	})
	if err != nil {
		return nil, err
	}
	return json.Marshal(statementsAsAny(st))
}

// memberStackSetSuffix and memberAccountsStackSetSuffix end the names of
// the member role's StackSets, <functionName>-member-role (OU and root
// targets) and <functionName>-member-role-accounts (account targets).
const (
	memberStackSetSuffix         = "-member-role"
	memberAccountsStackSetSuffix = "-member-role-accounts"
)

// newMemberStackSets deploys the member role with service-managed
// StackSets, called as the organization's delegated administrator (the
// central account): into exactly the accounts the sweep may reach, and no
// other.
//
// Automatic deployment is a setting of the whole StackSet, and it ignores
// account filters: "Automatic deployments do not consider account level
// targeting filters. If you target specific accounts and enable automatic
// deployments, your StackSet will continue to deploy to any newly added
// accounts within the deployed organization. To prevent deployments to
// newly added accounts, disable automatic deployments." and "The automatic
// deployments feature is enabled at the StackSet level. You can't adjust
// automatic deployments selectively for OUs, accounts, or Regions."
// (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/stacksets-orgs-manage-auto-deployment.html).
// One StackSet cannot therefore follow OUs and stay out of the accounts it
// was not given, so the targets are split:
//
//   - OU and root targets: <functionName>-member-role, automatic deployment
//     on, no account filter. An account that joins a target OU gets the
//     role, one that leaves it loses it (RetainStacksOnAccountRemoval
//     false), as the sweep lists the OUs anew at each run.
//   - Account targets: <functionName>-member-role-accounts, automatic
//     deployment off. A service-managed StackSet still reaches accounts only
//     through an OU that holds them, so its instances are the root
//     intersected with the listed accounts (AccountFilterType INTERSECTION;
//     UNION is refused for CreateStackInstances:
//     https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DeploymentTargets.html),
//     and no account is ever added to it but by a deploy that lists it.
//
// Both are retained when organization mode is dropped from a deploy, or
// the stack deleted (RemovalPolicy RETAIN): the member roles of a whole
// organization must not vanish because a later deploy forgot its context.
// docs/deploy.md says how to remove them on purpose. The accounts'
// StackSet is created (and updated) after the OUs', so that an update that
// moves accounts from one to the other removes the old instances first.
func newMemberStackSets(stack awscdk.Stack, s Settings, role awsiam.IRole) []awscloudformation.CfnStackSet {
	var sets []awscloudformation.CfnStackSet
	if len(s.Org.OUs) > 0 {
		sets = append(sets, memberStackSet(stack, s, role, "MemberRoleStackSet", s.FunctionName+memberStackSetSuffix,
			"kms-rotator member role in every account of the target OUs and roots, and in accounts that join them (assumed by the central function only)",
			&awscloudformation.CfnStackSet_DeploymentTargetsProperty{OrganizationalUnitIds: jsii.Strings(s.Org.OUs...)},
			&awscloudformation.CfnStackSet_AutoDeploymentProperty{Enabled: jsii.Bool(true), RetainStacksOnAccountRemoval: jsii.Bool(false)}))
	}
	if len(s.Org.Accounts) > 0 {
		set := memberStackSet(stack, s, role, "MemberRoleAccountsStackSet", s.FunctionName+memberAccountsStackSetSuffix,
			"kms-rotator member role in the target accounts listed by ID, and no other (assumed by the central function only)",
			&awscloudformation.CfnStackSet_DeploymentTargetsProperty{
				OrganizationalUnitIds: jsii.Strings(s.Org.RootID),
				Accounts:              jsii.Strings(s.Org.Accounts...),
				AccountFilterType:     jsii.String("INTERSECTION"),
			},
			&awscloudformation.CfnStackSet_AutoDeploymentProperty{Enabled: jsii.Bool(false)})
		for _, first := range sets {
			set.AddResourceDependency(first, jsii.String("an update that moves an account between the StackSets removes its old instance first"))
		}
		sets = append(sets, set)
	}
	return sets
}

// memberStackSet is one StackSet of the member role.
func memberStackSet(stack awscdk.Stack, s Settings, role awsiam.IRole, id, name, desc string,
	targets *awscloudformation.CfnStackSet_DeploymentTargetsProperty, auto *awscloudformation.CfnStackSet_AutoDeploymentProperty) awscloudformation.CfnStackSet {
	body, err := memberTemplate(s)
	if err != nil {
		panic(err)
	}
	set := awscloudformation.NewCfnStackSet(stack, jsii.String(id), &awscloudformation.CfnStackSetProps{
		StackSetName:    jsii.String(name),
		Description:     jsii.String(desc),
		PermissionModel: jsii.String("SERVICE_MANAGED"),
		CallAs:          jsii.String("DELEGATED_ADMIN"),
		AutoDeployment:  auto,
		// A fixed role name needs CAPABILITY_NAMED_IAM.
		Capabilities: jsii.Strings("CAPABILITY_NAMED_IAM"),
		// ManagedExecution is a plain JSON object to CDK (its type is any).
		ManagedExecution: map[string]any{"Active": true},
		// All accounts at once; up to a tenth may fail (a name already
		// taken, a suspended account) before the operation stops, and the
		// concurrency does not shrink with the failures.
		OperationPreferences: &awscloudformation.CfnStackSet_OperationPreferencesProperty{
			ConcurrencyMode:            jsii.String("SOFT_FAILURE_TOLERANCE"),
			MaxConcurrentPercentage:    jsii.Number(100),
			FailureTolerancePercentage: jsii.Number(10),
		},
		Parameters: []any{&awscloudformation.CfnStackSet_ParameterProperty{
			ParameterKey:   jsii.String(memberRoleParameter),
			ParameterValue: role.RoleArn(),
		}},
		StackInstancesGroup: []any{&awscloudformation.CfnStackSet_StackInstancesProperty{
			DeploymentTargets: targets,
			// IAM is global: the role is deployed from one Region per
			// account, or the second Region's stack would collide on the
			// fixed role name.
			Regions: jsii.Strings(s.Org.Regions[0]),
		}},
		TemplateBody: jsii.String(body),
	})
	set.ApplyRemovalPolicy(awscdk.RemovalPolicy_RETAIN, nil)
	return set
}
