package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"
)

// The deployment's own identity: the stack's name, the permissions
// boundary of its roles, the tags of its resources and the account's Lambda
// concurrency. Each is a context key with its default in cdk.json.
const (
	ctxStackName              = "stackName"
	ctxPermissionsBoundaryARN = "permissionsBoundaryArn"
	ctxTags                   = "tags"
	ctxAccountConcurrency     = "accountConcurrency"
)

// deploymentContextKeys are the keys above (ContextKeys).
var deploymentContextKeys = []string{ctxStackName, ctxPermissionsBoundaryARN, ctxTags, ctxAccountConcurrency}

// defaultStackName is the CloudFormation stack name when stackName is not
// set: the name every earlier version deployed.
const defaultStackName = "KmsRotator"

// supportedPartitions are the partitions the app deploys to: the commercial
// one, China, GovCloud (US) and the European Sovereign Cloud. A Region of
// another partition (the isolated aws-iso* ones) is refused at synth.
var supportedPartitions = []string{"aws", "aws-cn", "aws-us-gov", "aws-eusc"}

var (
	// A stack name: letters, digits and hyphens, starting with a letter,
	// at most 128 characters
	// (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CreateStack.html,
	// StackName).
	stackNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,127}$`)
	// An IAM managed policy's ARN: a customer managed policy of an account
	// (path allowed) or an AWS managed policy ("aws" as the account)
	// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-arns).
	policyARNRE = regexp.MustCompile(`^arn:(aws[a-z-]*):iam::(\d{12}|aws):policy/((?:[\w+=,.@-]+/)*)([\w+=,.@-]{1,128})$`)
)

// Tag rules common to the services of the stack
// (https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html):
// at most 50 tags a resource; a key of 1–128 and a value of 0–256 Unicode
// characters, letters, digits, white space and _ . : / = + - @; the aws:
// prefix, in any case, is reserved for AWS. IAM compares keys without case
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_tags.html), so two
// keys that differ only in case cannot both be on a role.
const (
	maxTags        = 50
	maxTagKeyLen   = 128
	maxTagValueLen = 256
)

// Tag is one tag the app puts on every resource it creates.
type Tag struct {
	Key   string
	Value string
}

// PermissionsBoundary is permissionsBoundaryArn taken apart.
type PermissionsBoundary struct {
	// ARN is the policy's ARN as given.
	ARN string
	// Partition and Account are the ARN's; Account is "aws" for an AWS
	// managed policy.
	Partition, Account string
	// Path ("/" or "/a/b/") and Name are the policy's.
	Path, Name string
}

// Managed says whether the boundary is an AWS managed policy, which exists
// in every account under the same ARN.
func (b PermissionsBoundary) Managed() bool { return b.Account == "aws" }

// InAccount is the boundary's ARN in another account of the partition,
// which may be CloudFormation's ${AWS::Partition} and ${AWS::AccountId} in
// an Fn::Sub text: an AWS managed policy keeps its ARN, a customer managed
// one is the policy of the same path and name in that account (a role's
// boundary must be a policy of its own account).
func (b PermissionsBoundary) InAccount(partition, account string) string {
	if b.Managed() {
		return "arn:" + partition + ":iam::aws:policy" + b.Path + b.Name
	}
	return "arn:" + partition + ":iam::" + account + ":policy" + b.Path + b.Name
}

// deployment reads stackName, permissionsBoundaryArn, tags and
// accountConcurrency into s.
func (r *ctxReader) deployment(s *Settings) {
	r.setStr(ctxStackName, &s.StackName)
	if !stackNameRE.MatchString(s.StackName) {
		r.fail(ctxStackName, s.StackName, "not a CloudFormation stack name: 1–128 letters, digits or -, starting with a letter")
	}
	if arn := r.str(ctxPermissionsBoundaryARN); arn != "" {
		m := policyARNRE.FindStringSubmatch(arn)
		if m == nil {
			r.fail(ctxPermissionsBoundaryARN, arn, "not an IAM managed policy's ARN such as arn:aws:iam::111122223333:policy/Boundary or arn:aws:iam::aws:policy/PowerUserAccess")
		} else {
			path := "/" + m[3]
			s.PermissionsBoundary = &PermissionsBoundary{ARN: arn, Partition: m[1], Account: m[2], Path: path, Name: m[4]}
			if !slices.Contains(supportedPartitions, m[1]) {
				r.fail(ctxPermissionsBoundaryARN, arn, "partition %s is not one of %s", m[1], strings.Join(supportedPartitions, ", "))
			}
		}
	}
	s.Tags = r.tags(ctxTags)
	s.AccountConcurrency = r.integer(ctxAccountConcurrency, s.AccountConcurrency, 1, maxConcurrencyValue)
}

// maxConcurrencyValue is the largest value a Lambda concurrency setting
// takes (a 32-bit integer).
const maxConcurrencyValue = 1<<31 - 1

// tags reads tags as a JSON object (cdk.json, or a JSON text with -c) or a
// comma-separated list of key=value, and checks them against AWS's tag
// rules. The result is sorted by key.
func (r *ctxReader) tags(key string) []Tag {
	var out []Tag
	fromJSON := func(m map[string]any) bool {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			v, ok := m[k].(string)
			if !ok {
				r.fail(key, r.raw(key, ""), "tag %q: the value must be a string, not %v", k, m[k])
				return false
			}
			out = append(out, Tag{k, v})
		}
		return true
	}
	switch v := r.get(key).(type) {
	case nil:
		return nil
	case map[string]any:
		// An object of the app's context reaches Go through jsii wrapped
		// as {"$jsii.map": {…}}.
		if inner, ok := v["$jsii.map"].(map[string]any); ok && len(v) == 1 {
			v = inner
		}
		if !fromJSON(v) {
			return nil
		}
	case string:
		v = strings.TrimSpace(v)
		switch {
		case v == "":
			return nil
		case strings.HasPrefix(v, "{"):
			var m map[string]any
			if err := json.Unmarshal([]byte(v), &m); err != nil {
				r.fail(key, v, "not a JSON object of strings: %v", err)
				return nil
			}
			if !fromJSON(m) {
				return nil
			}
		default:
			seen := map[string]bool{}
			for _, kv := range strings.Split(v, ",") {
				k, val, ok := strings.Cut(kv, "=")
				k, val = strings.TrimSpace(k), strings.TrimSpace(val)
				if !ok {
					r.fail(key, v, "%q is not key=value (a JSON object takes keys with = or ,)", strings.TrimSpace(kv))
					return nil
				}
				if seen[k] {
					r.fail(key, v, "the tag %q is given twice", k)
					return nil
				}
				seen[k] = true
				out = append(out, Tag{k, val})
			}
			slices.SortFunc(out, func(a, b Tag) int { return strings.Compare(a.Key, b.Key) })
		}
	default:
		r.fail(key, fmt.Sprint(v), "a JSON object of strings, or key=value,key=value")
		return nil
	}
	if len(out) > maxTags {
		r.fail(key, r.raw(key, ""), "%d tags: a resource holds at most %d", len(out), maxTags)
		return nil
	}
	folded := map[string]string{}
	ok := true
	for _, t := range out {
		var why string
		switch {
		case t.Key == "" || utf8.RuneCountInString(t.Key) > maxTagKeyLen:
			why = fmt.Sprintf("a key holds 1–%d characters", maxTagKeyLen)
		case utf8.RuneCountInString(t.Value) > maxTagValueLen:
			why = fmt.Sprintf("a value holds at most %d characters", maxTagValueLen)
		case !tagRE.MatchString(t.Key) || !tagRE.MatchString(t.Value):
			why = "letters, digits, spaces and _ . : / = + - @ only"
		case strings.HasPrefix(strings.ToLower(t.Key), "aws:") || strings.HasPrefix(strings.ToLower(t.Value), "aws:"):
			why = "the aws: prefix is reserved for AWS"
		case folded[strings.ToLower(t.Key)] != "":
			why = fmt.Sprintf("IAM does not tell it from %q (tag keys of a role are compared without case)", folded[strings.ToLower(t.Key)])
		}
		folded[strings.ToLower(t.Key)] = t.Key
		if why != "" {
			r.fail(key, r.raw(key, ""), "tag %q=%q: %s", t.Key, t.Value, why)
			ok = false
		}
	}
	if !ok {
		return nil
	}
	return out
}

// partition is the partition of the Regions the settings name (the
// stacks', or organization mode's), or "" when they name none: the stack
// then deploys to the CLI's Region, which addStacks checks.
func (s Settings) partition() string {
	for _, r := range append(slices.Clone(s.Regions), s.Org.Regions...) {
		if p := regionPartition(r); p != "" {
			return p
		}
	}
	return ""
}

// checkPartition refuses a Region of a partition the app does not deploy to,
// and ARNs of the settings that are not of the stack's partition.
func (r *ctxReader) checkPartition(s *Settings) {
	p := s.partition()
	if p == "" {
		return
	}
	if !slices.Contains(supportedPartitions, p) {
		key := ctxRegions
		if len(s.Regions) == 0 {
			key = ctxOrgRegions
		}
		r.fail(key, strings.Join(append(slices.Clone(s.Regions), s.Org.Regions...), ","),
			"Regions of partition %s, which kms-rotator does not deploy to (%s)", p, strings.Join(supportedPartitions, ", "))
		return
	}
	if why := s.partitionMismatch(p); why != "" {
		r.fail(ctxPermissionsBoundaryARN, s.PermissionsBoundary.ARN, "%s", why)
	}
}

// partitionMismatch says why the settings' ARNs do not fit a stack of
// partition p, or "".
func (s Settings) partitionMismatch(p string) string {
	if b := s.PermissionsBoundary; b != nil && b.Partition != p {
		return fmt.Sprintf("a policy of partition %s; the stack deploys to partition %s, whose roles can have only its own policies as boundary", b.Partition, p)
	}
	return ""
}

// boundaryAccountMismatch says why a customer managed boundary of another
// account cannot be the boundary of the stack's roles, or "".
func (s Settings) boundaryAccountMismatch(account string) string {
	if b := s.PermissionsBoundary; b != nil && !b.Managed() && account != "" && b.Account != account {
		return fmt.Sprintf("a policy of account %s; the stack deploys to %s, and a role's boundary must be a policy of its own account (or an AWS managed one)", b.Account, account)
	}
	return ""
}

// minUnreservedConcurrency is what Lambda keeps unreserved in every account
// and Region: reserved concurrency may take the account's concurrency
// quota minus 100
// (https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html).
const minUnreservedConcurrency = 100

// concurrency checks that the reserved concurrency the stack asks for fits
// the account's quota: the incident function's reservedConcurrency plus, in
// organization mode, the sweep function's, which is orgMaxConcurrency
// (sweepConcurrency), must leave Lambda's 100 unreserved executions of
// accountConcurrency. A deploy that breaks the rule fails on Lambda's
// PutFunctionConcurrency half-way through; the synth says which keys to
// change instead.
func (r *ctxReader) concurrency(s *Settings) {
	if r.failed[ctxReservedConcurrency] || r.failed[ctxOrgMaxConcurrency] || r.failed[ctxAccountConcurrency] {
		return
	}
	sweep := sweepConcurrency(*s)
	room := max(s.AccountConcurrency-minUnreservedConcurrency, 0)
	if s.ReservedConcurrency+sweep <= room {
		return
	}
	if sweep == 0 {
		r.fail(ctxReservedConcurrency, strconv.Itoa(s.ReservedConcurrency),
			"more than the %d executions an account of -c %s=%d may reserve: Lambda keeps %d unreserved", room, ctxAccountConcurrency, s.AccountConcurrency, minUnreservedConcurrency)
		return
	}
	r.fail(ctxReservedConcurrency, strconv.Itoa(s.ReservedConcurrency),
		"with -c %s=%d (the sweep function reserves as many) the stack reserves %d executions, more than the %d an account of -c %s=%d may reserve: Lambda keeps %d unreserved; "+
			"lower reservedConcurrency or orgMaxConcurrency, or give the account's real quota (aws lambda get-account-settings) as accountConcurrency",
		ctxOrgMaxConcurrency, sweep, s.ReservedConcurrency+sweep, room, ctxAccountConcurrency, s.AccountConcurrency, minUnreservedConcurrency)
}

// sweepConcurrency is the sweep function's reserved concurrency: in
// organization mode the Map state's MaxConcurrency, so the organization
// sweep has exactly the executions its Map runs at once and can never take
// the incident function's; none in single-account mode, where a sweep and
// the continuation it starts run at most two at a time, in the account's
// unreserved pool (as every earlier version did).
func sweepConcurrency(s Settings) int {
	if s.Org.Enabled() {
		return s.Org.MaxConcurrency
	}
	return 0
}

// applyBoundaryAndTags puts the permissions boundary on every role of the
// stack (CDK's PermissionsBoundary aspect, which reaches the roles CDK
// makes itself, such as the state machine's) and the tags on every
// resource CDK can tag (its Tags aspect). The member role of organization
// mode gets both in its own template (memberTemplate).
func applyBoundaryAndTags(stack awscdk.Stack, s Settings) {
	if b := s.PermissionsBoundary; b != nil {
		awsiam.PermissionsBoundary_Of(stack).Apply(awsiam.ManagedPolicy_FromManagedPolicyArn(stack, jsii.String("PermissionsBoundary"), jsii.String(b.ARN)))
	}
	for _, t := range s.Tags {
		awscdk.Tags_Of(stack).Add(jsii.String(t.Key), jsii.String(t.Value), &awscdk.TagProps{ExcludeResourceTypes: jsii.Strings(untaggedInTemplate...)})
	}
}

// untaggedInTemplate are resource types the template does not tag itself,
// though CDK could: CloudFormation added Tags to AWS::CloudWatch::Dashboard
// in 2026, and the cfn-lint the tests pin (Makefile CFN_LINT_VERSION) does
// not know the property yet. CloudFormation still tags the dashboard with
// the stack's tags (stackTags), which it propagates to every resource that
// supports them.
var untaggedInTemplate = []string{"AWS::CloudWatch::Dashboard"}

// stackTags are the tags as StackProps.Tags: CloudFormation also puts them
// on the resources it can tag that CDK cannot.
func stackTags(s Settings) *map[string]*string {
	if len(s.Tags) == 0 {
		return nil
	}
	m := map[string]*string{}
	for _, t := range s.Tags {
		m[t.Key] = jsii.String(t.Value)
	}
	return &m
}
