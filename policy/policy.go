// Package policy holds the IAM policy documents of kms-rotator as JSON files
// (the single source of truth for what the function may do) and renders them
// with the parameters of one deployment: partition, account, region, the
// opt-in tag, and the names of the function's own resources.
//
// The CDK app (infra/) builds the function's role from FunctionRole, and key
// owners whose key policy does not delegate to IAM add the statements of
// KeyStatements to that key policy. Tests render the same files, so what is
// reviewed, deployed and simulated is one text.
package policy

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// The JSON files are embedded so the CDK app and the tests cannot drift from
// the reviewed text.
//
//go:embed function-role.json key-policy-statement.json
var files embed.FS

// File names of the documents, relative to this package.
const (
	// FunctionRoleFile is the identity policy of the function's execution role.
	FunctionRoleFile = "function-role.json"
	// KeyPolicyStatementFile holds the statements a key owner adds to a key
	// policy that does not delegate to IAM.
	KeyPolicyStatementFile = "key-policy-statement.json"
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
	// only (the continuation of a sweep that ran out of time).
	FunctionName string
	// FailureQueueARN is the SQS queue that receives failed asynchronous invocations.
	FailureQueueARN string
	// RoleARN is the function's execution role (key policy statements only).
	RoleARN string
}

func (p Params) values() map[string]string {
	return map[string]string{
		"Partition":       p.Partition,
		"Account":         p.Account,
		"Region":          p.Region,
		"TagKey":          p.TagKey,
		"TagValue":        p.TagValue,
		"LogGroupName":    p.LogGroupName,
		"FunctionName":    p.FunctionName,
		"FailureQueueArn": p.FailureQueueARN,
		"RoleArn":         p.RoleARN,
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
	Principal map[string]string            `json:"Principal,omitempty"`
	Action    []string                     `json:"Action"`
	Resource  []string                     `json:"Resource"`
	Condition map[string]map[string]string `json:"Condition,omitempty"`
}

// FunctionRole renders the identity policy of the function's execution role.
// Its only write, kms:RotateKeyOnDemand, is limited to the account's keys that
// carry the opt-in tag (aws:ResourceTag, KMS ABAC:
// https://docs.aws.amazon.com/kms/latest/developerguide/abac.html) and are
// symmetric (kms:KeySpec:
// https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-key-spec).
// kms:ListAliases and tag:GetResources take no resource ARN, so they are
// granted on "*" (https://docs.aws.amazon.com/kms/latest/developerguide/kms-api-permissions-reference.html).
func FunctionRole(p Params) (Document, error) {
	var d Document
	if err := render(FunctionRoleFile, p, &d); err != nil {
		return Document{}, err
	}
	return d, nil
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

// render substitutes every placeholder in one pass (a value that is itself a
// CDK token such as "${Token[AWS.Partition.9]}" is not scanned again) and
// decodes the result strictly into v.
func render(file string, p Params, v any) error {
	raw, err := files.ReadFile(file)
	if err != nil {
		return err
	}
	vals := p.values()
	var missing []string
	out := placeholder.ReplaceAllFunc(raw, func(m []byte) []byte {
		name := string(placeholder.FindSubmatch(m)[1])
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
