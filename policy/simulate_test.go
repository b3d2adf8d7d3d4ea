package policy

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The IAM simulation runs @cloud-copilot/iam-simulate (pinned in
// package.json, installed by `make node_modules/.installed`) as a separate
// Node process: it is AGPL-3.0, so it is a test tool, never linked into the product.

const (
	simAccount = "012345678912"
	simRole    = "arn:aws:iam::012345678912:role/kms-rotator"
	simKey     = "arn:aws:kms:us-east-1:012345678912:key/1234abcd-12ab-34cd-56ef-1234567890ab"
)

// defaultKeyPolicy is the key policy KMS gives a key created without one: it
// delegates access control to IAM.
// https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html
var defaultKeyPolicy = map[string]any{
	"Version": "2012-10-17",
	"Statement": []any{map[string]any{
		"Sid": "Enable IAM User Permissions", "Effect": "Allow",
		"Principal": map[string]any{"AWS": "arn:aws:iam::012345678912:root"},
		"Action":    "kms:*", "Resource": "*",
	}},
}

// ownerOnlyKeyPolicy names a key administrator but not the account, so IAM
// policies grant nothing on this key.
var ownerOnlyKeyPolicy = map[string]any{
	"Version": "2012-10-17",
	"Statement": []any{map[string]any{
		"Sid": "KeyOwnerOnly", "Effect": "Allow",
		"Principal": map[string]any{"AWS": "arn:aws:iam::012345678912:role/key-owner"},
		"Action":    "kms:*", "Resource": "*",
	}},
}

type simCase struct {
	Name             string         `json:"name"`
	Principal        string         `json:"principal"`
	Action           string         `json:"action"`
	Resource         string         `json:"resource"`
	Account          string         `json:"account"`
	Context          map[string]any `json:"context"`
	IdentityPolicies []any          `json:"identityPolicies"`
	ResourcePolicy   any            `json:"resourcePolicy"`
	want             string
}

type simResult struct {
	Name   string `json:"name"`
	Result string `json:"result"`
	Error  string `json:"error"`
}

// repoRoot is the directory holding go.mod (tests run in the package folder).
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

// runSimulator runs testdata/simulate.mjs with args, feeding stdin, and
// decodes its JSON output into out.
func runSimulator(t *testing.T, stdin []byte, out any, args ...string) {
	t.Helper()
	root := repoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "node_modules", "@cloud-copilot", "iam-simulate")); err != nil {
		t.Fatalf("the IAM simulator is not installed: run `make node_modules/.installed` (npm ci) first: %v", err)
	}
	node := filepath.Join(root, "node_modules", ".bin", "node")
	if _, err := os.Stat(node); err != nil {
		if node, err = exec.LookPath("node"); err != nil {
			t.Fatalf("node not found: %v", err)
		}
	}
	cmd := exec.Command(node, append([]string{filepath.Join("testdata", "simulate.mjs")}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("simulate.mjs %v: %v\n%s", args, err, stderr.String())
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("simulate.mjs output: %v\n%s", err, raw)
	}
}

func simulate(t *testing.T, cases []simCase) {
	t.Helper()
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	var results []simResult
	runSimulator(t, in, &results)
	if len(results) != len(cases) {
		t.Fatalf("%d results for %d cases", len(results), len(cases))
	}
	for i, c := range cases {
		r := results[i]
		t.Run(c.Name+" is "+c.want, func(t *testing.T) {
			if r.Error != "" {
				t.Fatalf("simulation rejected the request: %s", r.Error)
			}
			if r.Result != c.want {
				t.Errorf("%s on %s with %v: %s, want %s", c.Action, c.Resource, c.Context, r.Result, c.want)
			}
		})
	}
}

func optedIn() map[string]any {
	return map[string]any{"aws:ResourceTag/kms-rotator": "enabled", "kms:KeySpec": "SYMMETRIC_DEFAULT"}
}

func TestSimulateRotation(t *testing.T) {
	doc, err := FunctionRole(testParams)
	if err != nil {
		t.Fatal(err)
	}
	keyStatements, err := KeyStatements(testParams)
	if err != nil {
		t.Fatal(err)
	}
	withKeyStatements := map[string]any{
		"Version":   "2012-10-17",
		"Statement": append(ownerOnlyKeyPolicy["Statement"].([]any), statementsAsAny(t, keyStatements)...),
	}
	identity := []any{doc.Map()}
	key := func(name, action, resource string, ctx map[string]any, keyPolicy any, want string) simCase {
		return simCase{Name: name, Principal: simRole, Action: action, Resource: resource, Account: simAccount,
			Context: ctx, IdentityPolicies: identity, ResourcePolicy: keyPolicy, want: want}
	}
	ctx := func(tag, spec string) map[string]any {
		m := map[string]any{"kms:KeySpec": spec}
		if tag != "" {
			m["aws:ResourceTag/kms-rotator"] = tag
		}
		return m
	}
	const (
		allowed = "Allowed"
		denied  = "ImplicitlyDenied"
	)
	cases := []simCase{
		key("rotate an opted-in key under the default key policy", "kms:RotateKeyOnDemand", simKey, optedIn(), defaultKeyPolicy, allowed),
		key("rotate an opted-in primary in another region", "kms:RotateKeyOnDemand",
			"arn:aws:kms:eu-west-1:012345678912:key/mrk-1234abcd12ab34cd56ef1234567890ab", optedIn(), defaultKeyPolicy, allowed),
		key("rotate a key without the opt-in tag", "kms:RotateKeyOnDemand", simKey, ctx("", "SYMMETRIC_DEFAULT"), defaultKeyPolicy, denied),
		key("rotate a key whose opt-in tag has another value", "kms:RotateKeyOnDemand", simKey, ctx("disabled", "SYMMETRIC_DEFAULT"), defaultKeyPolicy, denied),
		key("rotate an opted-in asymmetric key", "kms:RotateKeyOnDemand", simKey, ctx("enabled", "RSA_2048"), defaultKeyPolicy, denied),
		key("rotate an opted-in HMAC key", "kms:RotateKeyOnDemand", simKey, ctx("enabled", "HMAC_256"), defaultKeyPolicy, denied),
		key("rotate an opted-in key whose key policy does not delegate to IAM", "kms:RotateKeyOnDemand", simKey, optedIn(), ownerOnlyKeyPolicy, denied),
		key("rotate an opted-in key whose key policy has the kms-rotator statements", "kms:RotateKeyOnDemand", simKey, optedIn(), withKeyStatements, allowed),
		key("rotate a key of the kms-rotator statements once its tag is gone", "kms:RotateKeyOnDemand", simKey, ctx("", "SYMMETRIC_DEFAULT"), withKeyStatements, denied),
		{Name: "rotate a key of another account", Principal: simRole, Action: "kms:RotateKeyOnDemand",
			Resource: "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", Account: "111122223333",
			Context: optedIn(), IdentityPolicies: identity, ResourcePolicy: map[string]any{
				"Version": "2012-10-17",
				"Statement": []any{map[string]any{"Effect": "Allow", "Principal": map[string]any{"AWS": "arn:aws:iam::111122223333:root"},
					"Action": "kms:*", "Resource": "*"}}}, want: denied},
		key("list rotations of an opted-in key", "kms:ListKeyRotations", simKey, optedIn(), defaultKeyPolicy, allowed),
		key("list rotations of a key that is not opted in", "kms:ListKeyRotations", simKey, ctx("", "SYMMETRIC_DEFAULT"), defaultKeyPolicy, denied),
		key("rotation status of an opted-in key", "kms:GetKeyRotationStatus", simKey, optedIn(), defaultKeyPolicy, allowed),
		key("rotation status of a key that is not opted in", "kms:GetKeyRotationStatus", simKey, ctx("", "SYMMETRIC_DEFAULT"), defaultKeyPolicy, denied),
		key("last usage of an opted-in key", "kms:GetKeyLastUsage", simKey, optedIn(), defaultKeyPolicy, allowed),
		key("last usage of a key that is not opted in", "kms:GetKeyLastUsage", simKey, ctx("", "SYMMETRIC_DEFAULT"), defaultKeyPolicy, denied),
		key("describe a key that is not opted in (so incidents say not-opted-in)", "kms:DescribeKey", simKey, ctx("", "SYMMETRIC_DEFAULT"), defaultKeyPolicy, allowed),
		key("tags of a key that is not opted in", "kms:ListResourceTags", simKey, ctx("", "SYMMETRIC_DEFAULT"), defaultKeyPolicy, allowed),
		key("describe a key whose key policy does not delegate to IAM", "kms:DescribeKey", simKey, optedIn(), ownerOnlyKeyPolicy, denied),
		key("list aliases", "kms:ListAliases", "*", nil, nil, allowed),
		key("find tagged keys", "tag:GetResources", "*", nil, nil, allowed),
		key("list every key", "kms:ListKeys", "*", nil, nil, denied),
		key("continue its own run", "lambda:InvokeFunction", "arn:aws:lambda:us-east-1:012345678912:function:kms-rotator", nil, nil, allowed),
		// The sweep function shares the role and continues its own sweep.
		key("continue a sweep on the sweep function", "lambda:InvokeFunction", "arn:aws:lambda:us-east-1:012345678912:function:kms-rotator-sweep", nil, nil, allowed),
		key("invoke the sweep function by a qualified ARN", "lambda:InvokeFunction", "arn:aws:lambda:us-east-1:012345678912:function:kms-rotator-sweep:1", nil, nil, denied),
		// The continuation must invoke the unqualified ARN: a qualifier
		// (":$LATEST", an alias) is another resource to IAM.
		key("invoke itself by a qualified ARN", "lambda:InvokeFunction", "arn:aws:lambda:us-east-1:012345678912:function:kms-rotator:$LATEST", nil, nil, denied),
		key("invoke another function", "lambda:InvokeFunction", "arn:aws:lambda:us-east-1:012345678912:function:payments", nil, nil, denied),
		key("invoke itself in another region", "lambda:InvokeFunction", "arn:aws:lambda:eu-west-1:012345678912:function:kms-rotator", nil, nil, denied),
		key("write its own logs", "logs:PutLogEvents",
			"arn:aws:logs:us-east-1:012345678912:log-group:/aws/lambda/kms-rotator:log-stream:2026/11/26/abc", nil, nil, allowed),
		key("write another function's logs", "logs:PutLogEvents",
			"arn:aws:logs:us-east-1:012345678912:log-group:/aws/lambda/payments:log-stream:x", nil, nil, denied),
		key("report a failed invocation to its queue", "sqs:SendMessage", testParams.FailureQueueARN, nil, nil, allowed),
		key("send to another queue", "sqs:SendMessage", "arn:aws:sqs:us-east-1:012345678912:orders", nil, nil, denied),
		// events:source and events:detail-type are evaluated per entry and
		// are multivalued keys, hence ForAllValues + Null in the policy.
		key("announce a run result on the results bus", "events:PutEvents", resultsBus, result("kms-rotator"), nil, allowed),
		key("put an event with another source on the results bus", "events:PutEvents", resultsBus, result("aws.kms"), nil, denied),
		// The result event shares its source with incident requests; the
		// detail-type keeps the role from putting an incident request.
		key("put an incident request on the results bus", "events:PutEvents", resultsBus, source("kms-rotator"), nil, denied),
		key("put a batch mixing sources on the results bus", "events:PutEvents", resultsBus, result("kms-rotator", "aws.kms"), nil, denied),
		key("put an event without source or detail-type", "events:PutEvents", resultsBus, nil, nil, denied),
		// Where anyone allowed events:PutEvents could publish a look-alike.
		key("announce a run result on the default bus", "events:PutEvents", defaultBus, result("kms-rotator"), nil, denied),
		key("put a result event on the incident bus", "events:PutEvents", incidentBus, result("kms-rotator"), nil, denied),
		key("put a result event on another custom bus", "events:PutEvents", "arn:aws:events:us-east-1:012345678912:event-bus/payments", result("kms-rotator"), nil, denied),
		key("put a result event on the results bus of another region", "events:PutEvents", "arn:aws:events:eu-west-1:012345678912:event-bus/kms-rotator-results", result("kms-rotator"), nil, denied),
	}
	simulate(t, cases)
}

const (
	defaultBus  = "arn:aws:events:us-east-1:012345678912:event-bus/default"
	incidentBus = "arn:aws:events:us-east-1:012345678912:event-bus/kms-rotator-incidents"
	resultsBus  = "arn:aws:events:us-east-1:012345678912:event-bus/kms-rotator-results"
	thisFn      = "arn:aws:lambda:us-east-1:012345678912:function:kms-rotator"
	otherFn     = "arn:aws:lambda:us-east-1:012345678912:function:payments"
)

// source is the request context of a PutEvents call whose entries carry
// these sources and the incident request's detail-type.
func source(sources ...string) map[string]any {
	return map[string]any{"events:source": sources, "events:detail-type": []string{"Rotate KMS Keys"}}
}

// result is the request context of a PutEvents call whose entries carry
// these sources and the result event's detail-type.
func result(sources ...string) map[string]any {
	return map[string]any{"events:source": sources, "events:detail-type": []string{"KMS Rotation Run Completed"}}
}

// TestSimulateSchedulerRole: EventBridge Scheduler may start this function
// and report an undeliverable start to the failure queue, nothing else.
func TestSimulateSchedulerRole(t *testing.T) {
	doc, err := SchedulerRole(testParams)
	if err != nil {
		t.Fatal(err)
	}
	const sched = "arn:aws:iam::012345678912:role/kms-rotator-scheduler"
	c := func(name, action, resource, want string) simCase {
		return simCase{Name: name, Principal: sched, Action: action, Resource: resource, Account: simAccount,
			IdentityPolicies: []any{doc.Map()}, want: want}
	}
	simulate(t, []simCase{
		c("invoke the function", "lambda:InvokeFunction", thisFn, "Allowed"),
		c("invoke another function", "lambda:InvokeFunction", otherFn, "ImplicitlyDenied"),
		c("invoke the sweep function of this name", "lambda:InvokeFunction", thisFn+"-sweep", "ImplicitlyDenied"),
		c("invoke a qualified version of the function", "lambda:InvokeFunction", thisFn+":1", "ImplicitlyDenied"),
		c("send an undelivered sweep to the failure queue", "sqs:SendMessage", testParams.FailureQueueARN, "Allowed"),
		c("send to another queue", "sqs:SendMessage", "arn:aws:sqs:us-east-1:012345678912:orders", "ImplicitlyDenied"),
		c("put events", "events:PutEvents", defaultBus, "ImplicitlyDenied"),
	})
	// As the stack renders it: for the sweep function, so the schedule
	// cannot start a run on the function responders invoke.
	p := testParams
	p.FunctionName = testParams.SweepFunctionName
	sweepDoc, err := SchedulerRole(p)
	if err != nil {
		t.Fatal(err)
	}
	sweep := func(name, resource, want string) simCase {
		return simCase{Name: name, Principal: sched, Action: "lambda:InvokeFunction", Resource: resource, Account: simAccount,
			IdentityPolicies: []any{sweepDoc.Map()}, want: want}
	}
	simulate(t, []simCase{
		sweep("rendered for the sweep function, invoke it", thisFn+"-sweep", "Allowed"),
		sweep("rendered for the sweep function, invoke the incident function", thisFn, "ImplicitlyDenied"),
	})
}

// TestSimulateSchedulerOrgRole: in organization mode the Scheduler may start
// the sweep's state machine, nothing else (not the function directly).
func TestSimulateSchedulerOrgRole(t *testing.T) {
	p := testParams
	p.StateMachineARN = "arn:aws:states:us-east-1:012345678912:stateMachine:kms-rotator-org"
	doc, err := SchedulerOrgRole(p)
	if err != nil {
		t.Fatal(err)
	}
	const sched = "arn:aws:iam::012345678912:role/kms-rotator-scheduler"
	c := func(name, action, resource, want string) simCase {
		return simCase{Name: name, Principal: sched, Action: action, Resource: resource, Account: simAccount,
			IdentityPolicies: []any{doc.Map()}, want: want}
	}
	simulate(t, []simCase{
		c("start the organization sweep", "states:StartExecution", p.StateMachineARN, "Allowed"),
		c("start another state machine", "states:StartExecution", "arn:aws:states:us-east-1:012345678912:stateMachine:other", "ImplicitlyDenied"),
		c("invoke the function directly", "lambda:InvokeFunction", thisFn, "ImplicitlyDenied"),
		c("send an undelivered sweep to the failure queue", "sqs:SendMessage", p.FailureQueueARN, "Allowed"),
	})
}

func TestSimulateResponder(t *testing.T) {
	doc, err := Responder(testParams)
	if err != nil {
		t.Fatal(err)
	}
	const responder = "arn:aws:iam::012345678912:role/responder"
	c := func(name, action, resource string, ctx map[string]any, want string) simCase {
		return simCase{Name: name, Principal: responder, Action: action, Resource: resource, Account: simAccount,
			Context: ctx, IdentityPolicies: []any{doc.Map()}, want: want}
	}
	simulate(t, []simCase{
		c("invoke the function", "lambda:InvokeFunction", thisFn, nil, "Allowed"),
		c("invoke another function", "lambda:InvokeFunction", otherFn, nil, "ImplicitlyDenied"),
		c("request an incident rotation on the incident bus", "events:PutEvents", incidentBus, source("kms-rotator"), "Allowed"),
		c("put an event of another detail-type on the incident bus", "events:PutEvents", incidentBus,
			map[string]any{"events:source": []string{"kms-rotator"}, "events:detail-type": []string{"KMS Rotation Run Completed"}}, "ImplicitlyDenied"),
		c("put an event of another source on the incident bus", "events:PutEvents", incidentBus, source("com.example"), "ImplicitlyDenied"),
		c("put an incident request on the default bus", "events:PutEvents", defaultBus, source("kms-rotator"), "ImplicitlyDenied"),
	})
}

// TestSimulateIncidentBus evaluates the bus's resource policy together with
// the caller's identity policy, as IAM does for a same-account request.
func TestSimulateIncidentBus(t *testing.T) {
	listed, err := IncidentBus(testParams)
	if err != nil {
		t.Fatal(err)
	}
	account, err := IncidentBus(accountOnly(testParams))
	if err != nil {
		t.Fatal(err)
	}
	// admin may put events anywhere by its identity policy.
	admin := []any{map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
		"Effect": "Allow", "Action": "events:PutEvents", "Resource": "*"}}}}
	c := func(name, principal string, identity []any, busPolicy Document, want string) simCase {
		ctx := source("kms-rotator")
		// The simulator does not derive aws:PrincipalArn from the principal.
		ctx["aws:PrincipalArn"] = principal
		return simCase{Name: name, Principal: principal, Action: "events:PutEvents", Resource: incidentBus, Account: simAccount,
			Context: ctx, IdentityPolicies: identity, ResourcePolicy: busPolicy.Map(), want: want}
	}
	const (
		soar    = "arn:aws:iam::012345678912:role/soar"
		other   = "arn:aws:iam::012345678912:role/admin"
		foreign = "arn:aws:iam::111122223333:role/soar"
	)
	simulate(t, []simCase{
		c("a listed role, without an identity policy", soar, nil, listed, "Allowed"),
		c("an unlisted role of the account, although its identity policy allows PutEvents on *", other, admin, listed, "ExplicitlyDenied"),
		c("a role of another account with the same name", foreign, admin, listed, "ExplicitlyDenied"),
		c("without incidentPrincipals: a role of the account allowed by its identity policy", other, admin, account, "Allowed"),
		c("without incidentPrincipals: a role of the account without an identity policy", other, nil, account, "ImplicitlyDenied"),
		c("without incidentPrincipals: a role of another account", foreign, admin, account, "ExplicitlyDenied"),
	})
}

// TestSimulateResultsBus evaluates the results bus's resource policy
// together with the caller's identity policy, as IAM does for a
// same-account request: the function's role may put its result event
// there, nobody else may put anything, whatever their identity policy.
func TestSimulateResultsBus(t *testing.T) {
	bus, err := ResultsBus(testParams)
	if err != nil {
		t.Fatal(err)
	}
	fn, err := FunctionRole(testParams)
	if err != nil {
		t.Fatal(err)
	}
	admin := []any{map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
		"Effect": "Allow", "Action": "events:PutEvents", "Resource": "*"}}}}
	c := func(name, principal string, identity []any, ctx map[string]any, want string) simCase {
		if ctx == nil {
			ctx = map[string]any{}
		}
		// The simulator does not derive aws:PrincipalArn from the principal.
		ctx["aws:PrincipalArn"] = principal
		return simCase{Name: name, Principal: principal, Action: "events:PutEvents", Resource: resultsBus, Account: simAccount,
			Context: ctx, IdentityPolicies: identity, ResourcePolicy: bus.Map(), want: want}
	}
	const (
		other   = "arn:aws:iam::012345678912:role/admin"
		foreign = "arn:aws:iam::111122223333:role/kms-rotator"
	)
	simulate(t, []simCase{
		c("the function's role, its result event", simRole, []any{fn.Map()}, result("kms-rotator"), "Allowed"),
		c("the function's role, an event of another source", simRole, []any{fn.Map()}, result("com.example"), "ImplicitlyDenied"),
		c("another role of the account allowed PutEvents on * by its identity policy, a result event", other, admin, result("kms-rotator"), "ExplicitlyDenied"),
		c("another role of the account, without an identity policy", other, nil, result("kms-rotator"), "ExplicitlyDenied"),
		c("a role of another account with the function role's name", foreign, admin, result("kms-rotator"), "ExplicitlyDenied"),
	})
}

// TestSimulateEveryOtherKMSAction asks the simulator's own action list for
// every KMS action, so an action AWS adds later is checked too: on an opted-in
// key under the default key policy, only the listed reads and the one write
// are allowed; every other write (ScheduleKeyDeletion, PutKeyPolicy,
// DisableKey, Decrypt, Encrypt, CreateGrant, …) is denied.
func TestSimulateEveryOtherKMSAction(t *testing.T) {
	allowedActions := map[string]bool{
		"kms:RotateKeyOnDemand": true, "kms:DescribeKey": true, "kms:GetKeyRotationStatus": true,
		"kms:ListKeyRotations": true, "kms:ListResourceTags": true, "kms:ListAliases": true,
		"kms:GetKeyLastUsage": true,
	}
	var actions []struct {
		Action        string   `json:"action"`
		ResourceTypes []string `json:"resourceTypes"`
	}
	runSimulator(t, nil, &actions, "actions", "kms")
	if len(actions) < 50 {
		t.Fatalf("the simulator knows only %d KMS actions", len(actions))
	}
	doc, err := FunctionRole(testParams)
	if err != nil {
		t.Fatal(err)
	}
	var cases []simCase
	seen := map[string]bool{}
	for _, a := range actions {
		seen[a.Action] = true
		c := simCase{Name: a.Action, Principal: simRole, Action: a.Action, Account: simAccount,
			IdentityPolicies: []any{doc.Map()}, Resource: "*", want: "ImplicitlyDenied"}
		switch {
		case contains(a.ResourceTypes, "key"):
			c.Resource, c.Context, c.ResourcePolicy = simKey, optedIn(), defaultKeyPolicy
		case contains(a.ResourceTypes, "alias"):
			c.Resource = "arn:aws:kms:us-east-1:012345678912:alias/payments"
		}
		if allowedActions[a.Action] {
			c.want = "Allowed"
		}
		cases = append(cases, c)
	}
	for _, must := range []string{"kms:ScheduleKeyDeletion", "kms:PutKeyPolicy", "kms:DisableKey", "kms:Decrypt",
		"kms:Encrypt", "kms:CreateGrant", "kms:RotateKeyOnDemand"} {
		if !seen[must] {
			t.Errorf("the simulator's action list lacks %s", must)
		}
	}
	simulate(t, cases)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func statementsAsAny(t *testing.T, s []Statement) []any {
	t.Helper()
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out []any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSimulateLedger asks the simulator's own action list for every
// DynamoDB action, so an action AWS adds later is checked too: the
// function's role may get, put, update and delete items of its ledger table
// and query it, and nothing else — not the same on another table of the
// account, not on the table's indexes or streams, no Scan, no table
// management. The member role of an organization's account may do nothing
// in DynamoDB.
func TestSimulateLedger(t *testing.T) {
	var actions []struct {
		Action        string   `json:"action"`
		ResourceTypes []string `json:"resourceTypes"`
	}
	runSimulator(t, nil, &actions, "actions", "dynamodb")
	if len(actions) < 40 {
		t.Fatalf("the simulator knows only %d DynamoDB actions", len(actions))
	}
	fn, err := FunctionRole(testParams)
	if err != nil {
		t.Fatal(err)
	}
	member, err := MemberRole(memberParams())
	if err != nil {
		t.Fatal(err)
	}
	ledgerActions := map[string]bool{
		"dynamodb:GetItem": true, "dynamodb:PutItem": true, "dynamodb:UpdateItem": true, "dynamodb:DeleteItem": true, "dynamodb:Query": true,
	}
	const (
		otherTable   = "arn:aws:dynamodb:us-east-1:012345678912:table/payments"
		memberLedger = "arn:aws:dynamodb:eu-west-1:111122223333:table/KmsRotator-LedgerTable-1A2B3C4D5E6F"
	)
	var cases []simCase
	seen := map[string]bool{}
	for _, a := range actions {
		seen[a.Action] = true
		onTable := contains(a.ResourceTypes, "table")
		resource := "*"
		if onTable {
			resource = ledgerTable
		}
		want := "ImplicitlyDenied"
		if ledgerActions[a.Action] && onTable {
			want = "Allowed"
		}
		cases = append(cases, simCase{Name: "the function role: " + a.Action + " on " + resource, Principal: simRole, Action: a.Action,
			Resource: resource, Account: simAccount, IdentityPolicies: []any{fn.Map()}, want: want})
		if onTable {
			cases = append(cases, simCase{Name: "the function role: " + a.Action + " on another table of the account", Principal: simRole,
				Action: a.Action, Resource: otherTable, Account: simAccount, IdentityPolicies: []any{fn.Map()}, want: "ImplicitlyDenied"})
		}
		resource = "*"
		if onTable {
			resource = memberLedger
		}
		cases = append(cases, simCase{Name: "the member role: " + a.Action, Principal: memberRole, Action: a.Action,
			Resource: resource, Account: memberAccount, IdentityPolicies: []any{member.Map()}, want: "ImplicitlyDenied"})
	}
	for _, must := range []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query",
		"dynamodb:Scan", "dynamodb:DeleteTable", "dynamodb:CreateTable", "dynamodb:BatchWriteItem", "dynamodb:UpdateTimeToLive"} {
		if !seen[must] {
			t.Errorf("the simulator's action list lacks %s", must)
		}
	}
	// Query on an index of the ledger table: an index is a resource of its
	// own, and the ledger queries the table's key.
	cases = append(cases, simCase{Name: "the function role: dynamodb:Query on an index of its table", Principal: simRole, Action: "dynamodb:Query",
		Resource: ledgerTable + "/index/byTime", Account: simAccount, IdentityPolicies: []any{fn.Map()}, want: "ImplicitlyDenied"})
	simulate(t, cases)
}
