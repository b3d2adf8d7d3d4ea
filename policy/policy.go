// Package policy holds the IAM policy documents of kms-rotator as JSON files
// (the single source of truth for what the function may do) and renders them
// with the parameters of one deployment: partition, account, region, the
// opt-in tag, and the names of the function's own resources.
//
// The CDK app (infra/) builds the function's role from FunctionRole (plus
// AssumeMemberRole in organization mode, and OrganizationRead when a target
// is an OU or a root), the member accounts' role from
// MemberRole (the same statements of function-role.json), the
// EventBridge Scheduler role from SchedulerRole, the responders' managed
// policy from Responder, the incident event bus's resource policy from
// IncidentBus and the results bus's from ResultsBus; the function's role
// also gains EvidenceWrite (the evidence bucket) and, with Security Hub on,
// SecurityHub (the member role SecurityHubIn), and in organization mode
// OrgRunsFunction (the organization sweep's bucket); the organization
// sweep's state machine role gains OrgStateMachine; key owners whose key policy
// does not delegate to IAM add the statements of KeyStatements to that key
// policy. Tests render the same
// files, so what is reviewed, deployed and simulated is one text.
package policy

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// The JSON files are embedded so the CDK app and the tests cannot drift from
// the reviewed text.
//
//go:embed function-role.json key-policy-statement.json scheduler-role.json scheduler-org-role.json responder.json incident-bus.json results-bus.json assume-member-role.json organization-read.json evidence-write.json security-hub.json org-runs-function.json org-state-machine.json
var files embed.FS

// File names of the documents, relative to this package.
const (
	// FunctionRoleFile is the identity policy of the function's execution role.
	FunctionRoleFile = "function-role.json"
	// KeyPolicyStatementFile holds the statements a key owner adds to a key
	// policy that does not delegate to IAM.
	KeyPolicyStatementFile = "key-policy-statement.json"
	// SchedulerRoleFile is the identity policy of the role EventBridge
	// Scheduler assumes to start the scheduled sweep.
	SchedulerRoleFile = "scheduler-role.json"
	// SchedulerOrgRoleFile is the Scheduler's role in organization mode:
	// start the organization's state machine, nothing else.
	SchedulerOrgRoleFile = "scheduler-org-role.json"
	// ResponderFile is the customer managed policy for incident responders.
	ResponderFile = "responder.json"
	// IncidentBusFile is the resource policy of the incident event bus.
	IncidentBusFile = "incident-bus.json"
	// ResultsBusFile is the resource policy of the results event bus.
	ResultsBusFile = "results-bus.json"
	// AssumeMemberRoleFile is the statement the function's role gains in
	// organization mode: assume the member role of another account.
	AssumeMemberRoleFile = "assume-member-role.json"
	// OrganizationReadFile is the policy the function's role gains in
	// organization mode when a target is an OU or a root: list their
	// accounts.
	OrganizationReadFile = "organization-read.json"
	// EvidenceWriteFile is the statement the function's role gains for the
	// stack's evidence bucket: write evidence records, nothing else.
	EvidenceWriteFile = "evidence-write.json"
	// SecurityHubFile is the policy the function's role, and in
	// organization mode the member role, gains with Security Hub findings
	// on: import and read the findings of its own account.
	SecurityHubFile = "security-hub.json"
	// OrgRunsFunctionFile is the policy the function's role gains in
	// organization mode: write each sweep's targets and resolution to the
	// organization sweep's bucket, read that sweep's results.
	OrgRunsFunctionFile = "org-runs-function.json"
	// OrgStateMachineFile is the identity policy of the organization
	// sweep's state machine role for its Distributed Map: start and track
	// its child executions, read the targets, write the results.
	OrgStateMachineFile = "org-state-machine.json"
)

// Params are the values substituted for the ${Name} placeholders of the
// documents. Values may be CDK tokens (they are strings that CloudFormation
// resolves at deploy time); a placeholder a document uses must not be empty.
type Params struct {
	// Partition is the AWS partition, e.g. "aws".
	Partition string
	// Account is the 12-digit account ID of the function and its keys.
	Account string
	// Region is the function's region (KMS key ARNs use a wildcard region,
	// because a replica's primary may live in another region).
	Region string
	// TagKey and TagValue are the opt-in tag (ROTATOR_TAG_KEY/ROTATOR_TAG_VALUE).
	TagKey   string
	TagValue string
	// LogGroupName is the function's own log group, e.g. "/aws/lambda/kms-rotator".
	LogGroupName string
	// FunctionName is the function's name; the role may invoke this function
	// (the continuation of a run that ran out of time), and SweepFunctionName.
	FunctionName string
	// SweepFunctionName is the sweep function's name (<FunctionName>-sweep):
	// the same code and role as FunctionName, running the scheduled sweeps,
	// which it continues by invoking itself.
	SweepFunctionName string
	// FailureQueueARN is the SQS queue that receives failed asynchronous invocations.
	FailureQueueARN string
	// RoleARN is the function's execution role (key policy statements and
	// the results bus's policy).
	RoleARN string
	// ResultEventSource and ResultEventDetailType are the source and
	// detail-type of the result event the function publishes on the results
	// bus (settings.ResultEventSource, settings.ResultEventDetailType).
	ResultEventSource     string
	ResultEventDetailType string
	// ResultBusName is the event bus of the result events
	// (ROTATOR_RESULT_BUS), the only bus the function's role may put events on.
	ResultBusName string
	// IncidentBusName is the dedicated event bus for incident requests.
	IncidentBusName string
	// IncidentSource and IncidentDetailType are the source and detail-type of
	// an incident request event (docs/design.md "Invocation payloads").
	IncidentSource     string
	IncidentDetailType string
	// IncidentPrincipals are the principals the incident bus admits: role
	// ARNs, or the account's root ARN (the whole account, through IAM).
	IncidentPrincipals []string
	// IncidentPrincipalPatterns are ARN patterns (aws:PrincipalArn) outside
	// which the incident bus denies events:PutEvents: the role ARNs, or
	// arn:<partition>:iam::<account>:* for the whole account.
	IncidentPrincipalPatterns []string
	// MemberRoleName is the role the function assumes in member accounts
	// (organization mode, ROTATOR_MEMBER_ROLE_NAME).
	MemberRoleName string
	// OrgID is the organization (o-…) the member roles must belong to;
	// empty leaves the condition out (AssumeMemberRole).
	OrgID string
	// StateMachineARN is the organization sweep's state machine
	// (organization mode's Scheduler role).
	StateMachineARN string
	// LedgerTableARN is the rotation ledger's DynamoDB table, the only
	// table the function's role may read and write.
	LedgerTableARN string
	// EvidenceBucketName is the stack's evidence bucket
	// (ROTATOR_EVIDENCE_BUCKET), the only bucket the function's role may
	// write to, under evidence/ only.
	EvidenceBucketName string
	// OrgBucketName is the organization sweep's bucket
	// (ROTATOR_ORG_BUCKET): each execution's targets, resolution and
	// results under runs/<execution>/.
	OrgBucketName string
	// StateMachineName is the organization sweep's state machine's name
	// (its executions' ARNs hold it).
	StateMachineName string
}

func (p Params) values() map[string]string {
	return map[string]string{
		"Partition":             p.Partition,
		"Account":               p.Account,
		"Region":                p.Region,
		"TagKey":                p.TagKey,
		"TagValue":              p.TagValue,
		"LogGroupName":          p.LogGroupName,
		"FunctionName":          p.FunctionName,
		"SweepFunctionName":     p.SweepFunctionName,
		"FailureQueueArn":       p.FailureQueueARN,
		"RoleArn":               p.RoleARN,
		"ResultEventSource":     p.ResultEventSource,
		"ResultEventDetailType": p.ResultEventDetailType,
		"ResultBusName":         p.ResultBusName,
		"IncidentBusName":       p.IncidentBusName,
		"IncidentSource":        p.IncidentSource,
		"IncidentDetailType":    p.IncidentDetailType,
		"MemberRoleName":        p.MemberRoleName,
		"OrgId":                 p.OrgID,
		"StateMachineArn":       p.StateMachineARN,
		"LedgerTableArn":        p.LedgerTableARN,
		"EvidenceBucketName":    p.EvidenceBucketName,
		"OrgBucketName":         p.OrgBucketName,
		"StateMachineName":      p.StateMachineName,
	}
}

// lists are the placeholders that stand for a whole JSON string value and
// are replaced by a JSON list of strings ("${Name}" → ["a","b"]).
func (p Params) lists() map[string][]string {
	return map[string][]string{
		"IncidentPrincipals":        p.IncidentPrincipals,
		"IncidentPrincipalPatterns": p.IncidentPrincipalPatterns,
	}
}

// Document is an IAM policy document.
type Document struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one IAM policy statement. The JSON files always use lists for
// Action and Resource, so a statement compares field by field.
type Statement struct {
	Sid       string                       `json:"Sid,omitempty"`
	Effect    string                       `json:"Effect"`
	Principal map[string]Values            `json:"Principal,omitempty"`
	Action    []string                     `json:"Action"`
	Resource  []string                     `json:"Resource"`
	Condition map[string]map[string]Values `json:"Condition,omitempty"`
}

// Values is a principal or condition value: one string or a list of strings
// (IAM accepts both). It reads either form and writes one string as a string.
type Values []string

// UnmarshalJSON accepts "a" or ["a", "b"].
func (v *Values) UnmarshalJSON(raw []byte) error {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		*v = Values{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return fmt.Errorf("want a string or a list of strings: %w", err)
	}
	*v = many
	return nil
}

// MarshalJSON writes a single value as a string, several as a list.
func (v Values) MarshalJSON() ([]byte, error) {
	if len(v) == 1 {
		return json.Marshal(v[0])
	}
	return json.Marshal([]string(v))
}

// FunctionRole renders the identity policy of the function's execution role.
// Its only write, kms:RotateKeyOnDemand, is limited to the account's keys that
// carry the opt-in tag (aws:ResourceTag, KMS ABAC:
// https://docs.aws.amazon.com/kms/latest/developerguide/abac.html) and are
// symmetric (kms:KeySpec:
// https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-key-spec).
// kms:ListAliases and tag:GetResources take no resource ARN, so they are
// granted on "*" (https://docs.aws.amazon.com/kms/latest/developerguide/kms-api-permissions-reference.html).
//
// Its only other write is events:PutEvents of the run's result event, on the
// results bus (ResultBusName) of its Region and with the result event's
// source and detail-type only; not on the default bus, where anyone allowed
// events:PutEvents could publish a look-alike. events:source and events:detail-type are multivalued
// keys (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoneventbridge.html),
// hence ForAllValues:StringEquals, with Null so that an entry without them
// does not pass (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html).
//
// Its ledger statement lets the role read and write the items of its own
// table, LedgerTableARN, and nothing else in DynamoDB: the item reads and
// writes the ledger makes and Query on the table itself, not on an index
// (an index is a resource of its own,
// https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html),
// and no Scan and no table management. It is not one of MemberRoleSids, so
// a member role never holds it.
//
// The incident function (FunctionName) and the sweep function
// (SweepFunctionName) share the role, so ContinueOwnSweep names both
// unqualified ARNs: each continues its own chain by invoking itself.
func FunctionRole(p Params) (Document, error) {
	return renderDocument(FunctionRoleFile, p)
}

// KeyStatements renders the statements a key owner appends to the Statement
// list of a key policy that does not delegate to IAM: kms:RotateKeyOnDemand is
// a key-policy permission, so the role's IAM policy alone cannot grant it there.
// See https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html#key-policy-default-allow-root-enable-iam
func KeyStatements(p Params) ([]Statement, error) {
	var s []Statement
	if err := render(KeyPolicyStatementFile, p, &s); err != nil {
		return nil, err
	}
	return s, nil
}

// SchedulerRole renders the identity policy of the role EventBridge Scheduler
// assumes for the scheduled sweep: invoke this one function (the stack
// passes the sweep function as FunctionName), and send an
// invocation it could not deliver to the failure queue (the schedule's
// dead-letter queue; the execution role needs sqs:SendMessage on it:
// https://docs.aws.amazon.com/scheduler/latest/UserGuide/configuring-schedule-dlq.html).
func SchedulerRole(p Params) (Document, error) {
	return renderDocument(SchedulerRoleFile, p)
}

// SchedulerOrgRole renders the Scheduler's role in organization mode: it
// starts the state machine that sweeps every member account.
func SchedulerOrgRole(p Params) (Document, error) {
	return renderDocument(SchedulerOrgRoleFile, p)
}

// Responder renders the customer managed policy for incident responders:
// invoke the function, and put incident requests (source and detail-type of
// an incident event only) on the incident bus.
func Responder(p Params) (Document, error) {
	return renderDocument(ResponderFile, p)
}

// IncidentBus renders the resource policy of the incident event bus: it
// admits events:PutEvents from IncidentPrincipals and denies it to every
// principal whose ARN matches none of IncidentPrincipalPatterns. The deny is
// what keeps other principals of the same account out: within one account
// an identity policy alone would otherwise suffice
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html).
func IncidentBus(p Params) (Document, error) {
	return renderDocument(IncidentBusFile, p)
}

// ResultsBus renders the resource policy of the results event bus: it
// denies events:PutEvents to every principal whose ARN is not the
// function's role (RoleARN), so that a result event on this bus can only
// come from the function, whatever the identity policies of the account
// allow. Within one account an identity policy alone would otherwise
// suffice, so the deny is what keeps the account's other principals out
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html);
// aws:PrincipalArn is the role's ARN for every session of the role
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-principalarn).
// It grants nothing: the role's own policy allows the result event only
// (FunctionRole), and an Allow here would lift that limit on source and
// detail-type, since a same-account request is allowed by either policy.
// It names events:PutEvents only: consumers' rules on the bus (PutRule,
// PutTargets, under their own IAM policies) are not its business.
func ResultsBus(p Params) (Document, error) {
	return renderDocument(ResultsBusFile, p)
}

// MemberRoleSids are the statements of function-role.json that the member
// role of an organization's account holds: the KMS and tagging permissions,
// without the function's own logs, queue, bus and invocation, which live in
// the central account.
var MemberRoleSids = []string{
	"RotateOptedInSymmetricKeys",
	"ReadRotationStateOfOptedInKeys",
	"DescribeAnyKeyOfTheAccount",
	"ListAliasesAndTaggedKeys",
}

// MemberRole renders the identity policy of the member role that the
// function assumes in a member account (organization mode): exactly the
// MemberRoleSids statements of function-role.json, from the same text, so
// the role's only write stays kms:RotateKeyOnDemand on opted-in symmetric
// keys. It uses Partition, Account, TagKey and TagValue only; Account is the
// member account (the StackSet's template passes ${AWS::AccountId}).
func MemberRole(p Params) (Document, error) {
	raw, err := files.ReadFile(FunctionRoleFile)
	if err != nil {
		return Document{}, err
	}
	var whole struct {
		Version   string
		Statement []json.RawMessage
	}
	if err := json.Unmarshal(raw, &whole); err != nil {
		return Document{}, fmt.Errorf("policy %s: %w", FunctionRoleFile, err)
	}
	bySid := map[string]json.RawMessage{}
	for _, st := range whole.Statement {
		var head struct{ Sid string }
		if err := json.Unmarshal(st, &head); err != nil {
			return Document{}, fmt.Errorf("policy %s: %w", FunctionRoleFile, err)
		}
		bySid[head.Sid] = st
	}
	picked := struct {
		Version   string            `json:"Version"`
		Statement []json.RawMessage `json:"Statement"`
	}{Version: whole.Version}
	for _, sid := range MemberRoleSids {
		st, ok := bySid[sid]
		if !ok {
			return Document{}, fmt.Errorf("policy %s: no statement %s for the member role", FunctionRoleFile, sid)
		}
		picked.Statement = append(picked.Statement, st)
	}
	text, err := json.Marshal(picked)
	if err != nil {
		return Document{}, err
	}
	var d Document
	if err := renderBytes(FunctionRoleFile+" (member role)", text, p, &d); err != nil {
		return Document{}, err
	}
	return d, nil
}

// MemberKeyStatements renders the statements the owner of a member
// account's key appends to a key policy that does not delegate to IAM, so
// that the member role may rotate that key (organization mode): the member
// role's own statements on keys (MemberRoleSids whose resources are key
// ARNs), each with the member role as its Principal and Resource "*" (in a
// key policy, the key itself), actions and conditions unchanged — exactly
// as narrow as the role's IAM policy, from the same text. The principal is
// the role's ARN in the key's own account, built from Partition, Account
// (the member account) and MemberRoleName: a key policy's Principal takes
// no policy variables
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html).
func MemberKeyStatements(p Params) ([]Statement, error) {
	if p.MemberRoleName == "" {
		return nil, fmt.Errorf("policy %s (member key policy): no value for MemberRoleName", FunctionRoleFile)
	}
	role, err := MemberRole(p)
	if err != nil {
		return nil, err
	}
	principal := map[string]Values{"AWS": {"arn:" + p.Partition + ":iam::" + p.Account + ":role/" + p.MemberRoleName}}
	var out []Statement
	for _, st := range role.Statement {
		if !slices.ContainsFunc(st.Resource, func(r string) bool { return strings.Contains(r, ":key/") }) {
			continue // the listings, which a key policy does not grant
		}
		out = append(out, Statement{Sid: "KmsRotatorMember" + st.Sid, Effect: st.Effect, Principal: principal,
			Action: st.Action, Resource: []string{"*"}, Condition: st.Condition})
	}
	return out, nil
}

// AssumeMemberRole renders the statement the function's role gains in
// organization mode: sts:AssumeRole on the member role's name in any
// account, and with OrgID set only on roles of that organization
// (aws:ResourceOrgID, the organization of the account that owns the role:
// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-resourceorgid).
// Without OrgID the condition is left out and the role name alone limits it.
func AssumeMemberRole(p Params) (Statement, error) {
	raw, err := files.ReadFile(AssumeMemberRoleFile)
	if err != nil {
		return Statement{}, err
	}
	if p.OrgID == "" {
		// Drop the condition before rendering, so ${OrgId} needs no value.
		var d map[string]any
		if err := json.Unmarshal(raw, &d); err != nil {
			return Statement{}, fmt.Errorf("policy %s: %w", AssumeMemberRoleFile, err)
		}
		for _, st := range d["Statement"].([]any) {
			delete(st.(map[string]any), "Condition")
		}
		if raw, err = json.Marshal(d); err != nil {
			return Statement{}, err
		}
	}
	var d Document
	if err := renderBytes(AssumeMemberRoleFile, raw, p, &d); err != nil {
		return Statement{}, err
	}
	if len(d.Statement) != 1 {
		return Statement{}, fmt.Errorf("policy %s: %d statements, want 1", AssumeMemberRoleFile, len(d.Statement))
	}
	return d.Statement[0], nil
}

// OrganizationRead renders the policy the function's role gains in
// organization mode when orgTargets names an OU or a root: the three
// read-only calls that list the accounts of a target OU or root,
// recursively (DescribeOrganization for the management account, which is
// excluded; ListAccountsForParent; ListOrganizationalUnitsForParent). No
// other Organizations action, and no write. Resource is "*":
// DescribeOrganization supports no resource type, and the root and OU ARNs
// the two listings support hold the management account's ID and name no
// parent, so the nested OUs found at run time could only be matched by a
// wildcard over the whole organization
// (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsorganizations.html).
// It uses no placeholder, and its statement is not one of function-role.json,
// so the member role never holds it.
func OrganizationRead(p Params) (Document, error) {
	return renderDocument(OrganizationReadFile, p)
}

// EvidenceWrite renders the statement the function's role gains for the
// stack's evidence bucket: s3:PutObject on the objects under evidence/ of
// EvidenceBucketName, where each run writes its record
// (evidence/<account>/<Region>/<yyyy>/<mm>/<dd>/<run ID>.json, docs/design.md
// "Evidence"), and nothing else in S3 — no read, no listing, no delete, no
// object ACL, retention or legal hold, no write outside evidence/. The
// object ARN is arn:PARTITION:s3:::BUCKET/KEY, without Region or account
// (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html).
// The record's encryption needs no permission: it is S3-managed (SSE-S3),
// which the bucket applies and the function asks for. It is not one of
// MemberRoleSids: the member role writes no evidence, the central function
// does.
func EvidenceWrite(p Params) (Document, error) {
	return renderDocument(EvidenceWriteFile, p)
}

// SecurityHub renders the policy that lets a role import and read the
// Security Hub findings of its own account (Account) in Region, as the
// function does with ROTATOR_SECURITY_HUB (docs/design.md "Security Hub
// findings"): securityhub:BatchImportFindings on the account's default
// product, arn:PARTITION:securityhub:REGION:ACCOUNT:product/ACCOUNT/default
// (the product resource type, required for that action), and
// securityhub:GetFindings on the account's hub,
// arn:PARTITION:securityhub:REGION:ACCOUNT:hub/default (the hub resource
// type)
// (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssecurityhub.html).
// Security Hub takes a finding of the default product only from the account
// the finding belongs to
// (https://docs.aws.amazon.com/securityhub/1.0/APIReference/API_BatchImportFindings.html),
// so the function's role imports its own account's findings and each
// member role its account's (SecurityHubIn). No BatchUpdateFindings: the
// function archives a finding by importing it again with RecordState
// ARCHIVED.
func SecurityHub(p Params) (Document, error) {
	return renderDocument(SecurityHubFile, p)
}

// SecurityHubIn is SecurityHub for every Region of regions at once, one
// statement per action with a resource per Region: the member role is
// global (IAM) and imports findings in each Region the organization sweep
// covers. regions must not be empty.
func SecurityHubIn(p Params, regions []string) (Document, error) {
	if len(regions) == 0 {
		return Document{}, fmt.Errorf("policy %s: no Region", SecurityHubFile)
	}
	var out Document
	for i, region := range regions {
		p.Region = region
		d, err := SecurityHub(p)
		if err != nil {
			return Document{}, err
		}
		if i == 0 {
			out = d
			continue
		}
		for j := range out.Statement {
			for _, r := range d.Statement[j].Resource {
				if !slices.Contains(out.Statement[j].Resource, r) {
					out.Statement[j].Resource = append(out.Statement[j].Resource, r)
				}
			}
		}
	}
	return out, nil
}

func renderDocument(file string, p Params) (Document, error) {
	var d Document
	if err := render(file, p, &d); err != nil {
		return Document{}, err
	}
	return d, nil
}

// Placeholders lists the ${Name} placeholders a document uses, sorted.
func Placeholders(file string) ([]string, error) {
	raw, err := files.ReadFile(file)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, m := range placeholder.FindAllSubmatch(raw, -1) {
		seen[string(m[1])] = true
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// Map returns the document as the generic JSON value that
// awsiam.PolicyDocument_FromJson expects.
func (d Document) Map() map[string]any {
	return asMap(d)
}

// Map returns the statement as a generic JSON value
// (awsiam.PolicyStatement_FromJson).
func (s Statement) Map() map[string]any {
	return asMap(s)
}

func asMap(d any) map[string]any {
	raw, err := json.Marshal(d)
	if err != nil {
		// A Document holds only strings, lists and maps of strings.
		panic(fmt.Sprintf("policy: marshal document: %v", err))
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		panic(fmt.Sprintf("policy: unmarshal document: %v", err))
	}
	return m
}

var placeholder = regexp.MustCompile(`\$\{([A-Za-z]+)\}`)

// listPlaceholder is a placeholder that is a whole JSON string value.
var listPlaceholder = regexp.MustCompile(`"\$\{([A-Za-z]+)\}"`)

// render substitutes every placeholder in one pass (a value that is itself a
// CDK token such as "${Token[AWS.Partition.9]}" is not scanned again) and
// decodes the result strictly into v. A list placeholder ("${Name}" as a
// whole string, Name in Params.lists) becomes a JSON list of strings.
func render(file string, p Params, v any) error {
	raw, err := files.ReadFile(file)
	if err != nil {
		return err
	}
	return renderBytes(file, raw, p, v)
}

// renderBytes is render on a document's text; file names it in errors.
func renderBytes(file string, raw []byte, p Params, v any) error {
	vals := p.values()
	lists := p.lists()
	var missing []string
	out := listPlaceholder.ReplaceAllFunc(raw, func(m []byte) []byte {
		name := string(listPlaceholder.FindSubmatch(m)[1])
		list, isList := lists[name]
		if !isList {
			return m
		}
		if len(list) == 0 || slices.Contains(list, "") {
			missing = append(missing, name)
			return m
		}
		// CDK tokens ("${Token[…]}") do not match a placeholder, so the
		// scalar pass below leaves the list's values alone.
		q, _ := json.Marshal(list)
		return q
	})
	out = placeholder.ReplaceAllFunc(out, func(m []byte) []byte {
		name := string(placeholder.FindSubmatch(m)[1])
		if _, isList := lists[name]; isList {
			// Only as a whole string value can a list stand in.
			missing = append(missing, name+" (a list, allowed only as a whole JSON string)")
			return m
		}
		val, known := vals[name]
		if !known || val == "" {
			missing = append(missing, name)
			return m
		}
		// Escape as the inside of a JSON string: placeholders stand only
		// inside strings in the documents.
		q, _ := json.Marshal(val)
		return q[1 : len(q)-1]
	})
	if len(missing) > 0 {
		return fmt.Errorf("policy %s: no value for %s", file, strings.Join(dedupe(missing), ", "))
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("policy %s: %w", file, err)
	}
	return nil
}

func dedupe(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// OrgRunsFunction renders the statements the function's role gains in
// organization mode for the organization sweep's bucket (OrgBucketName):
// s3:PutObject of the two objects a targets run writes,
// runs/<execution>/targets.json (the Distributed Map's items) and
// runs/<execution>/resolution.json (the whole resolution), and
// s3:GetObject under runs/, where the org-summary run reads the
// ResultWriter's manifest and result files and the resolution. Nothing
// else: no listing, no delete, no write of a result file (Step Functions
// writes those), no other bucket. The execution's name is only known at run
// time, hence the wildcard segment. It is not one of MemberRoleSids: only
// the central function writes and reads the sweep's files.
func OrgRunsFunction(p Params) (Document, error) {
	return renderDocument(OrgRunsFunctionFile, p)
}

// OrgStateMachine renders the identity policy of the organization sweep's
// state machine role for its Distributed Map state, as AWS documents it
// (https://docs.aws.amazon.com/step-functions/latest/dg/iam-policies-eg-dist-map.html):
// states:StartExecution on the state machine itself (StateMachineARN),
// whose child workflow executions the Map Run starts;
// states:DescribeExecution on its executions (execution:StateMachineName:*),
// and states:StopExecution there too, which CDK also grants a state
// machine holding a Distributed Map;
// s3:GetObject of the targets the ItemReader reads
// (runs/<execution>/targets.json); and on the ResultWriter's prefix
// (runs/<execution>/results/) the four actions AWS lists for writing
// results, s3:PutObject, s3:GetObject, s3:ListMultipartUploadParts and
// s3:AbortMultipartUpload: the results are written with multipart uploads
// (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html).
// The bucket is encrypted with S3-managed keys, so no KMS permission is
// needed.
func OrgStateMachine(p Params) (Document, error) {
	return renderDocument(OrgStateMachineFile, p)
}
