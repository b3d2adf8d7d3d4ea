package policy

import (
	"reflect"
	"strings"
	"testing"
)

// The organization sweep's bucket: what the function's role and the state
// machine's role may do there, and what the state machine may do with its
// own executions.

const (
	// orgBucket is the organization sweep's bucket of orgParams, a name
	// CloudFormation makes up.
	orgBucket = "kmsrotator-orgsweepbucket-0a1b2c3d4e5f"
	// orgStateMachine is the state machine of orgParams.
	orgStateMachine    = "OrgSweep0123ABCD-a1b2c3d4e5f6"
	orgStateMachineARN = "arn:aws:states:us-east-1:012345678912:stateMachine:" + orgStateMachine
	// orgExecution is one execution's name, as the schedule starts it.
	orgExecution = "a1b2c3d4-5678-90ab-cdef-1234567890ab"
)

func orgParams() Params {
	p := testParams
	p.OrgBucketName = orgBucket
	p.StateMachineARN = orgStateMachineARN
	p.StateMachineName = orgStateMachine
	return p
}

func orgObject(key string) string { return "arn:aws:s3:::" + orgBucket + "/" + key }

func TestOrgRunsFunctionIsExactlyThis(t *testing.T) {
	doc, err := OrgRunsFunction(orgParams())
	if err != nil {
		t.Fatal(err)
	}
	want := []Statement{
		{Sid: "WriteSweepTargets", Effect: "Allow", Action: []string{"s3:PutObject"},
			Resource: []string{orgObject("runs/*/targets.json"), orgObject("runs/*/resolution.json")}},
		{Sid: "ReadSweepRuns", Effect: "Allow", Action: []string{"s3:GetObject"}, Resource: []string{orgObject("runs/*")}},
	}
	if !reflect.DeepEqual(doc.Statement, want) {
		t.Errorf("\n got %+v\nwant %+v", doc.Statement, want)
	}
	for _, st := range doc.Statement {
		for _, sid := range MemberRoleSids {
			if sid == st.Sid {
				t.Errorf("Sid %s is a member role statement", sid)
			}
		}
	}
	if _, err := OrgRunsFunction(Params{Partition: "aws"}); err == nil || !strings.Contains(err.Error(), "OrgBucketName") {
		t.Errorf("without a bucket: err = %v, want one naming OrgBucketName", err)
	}
}

func TestOrgStateMachineIsExactlyThis(t *testing.T) {
	doc, err := OrgStateMachine(orgParams())
	if err != nil {
		t.Fatal(err)
	}
	want := []Statement{
		{Sid: "StartChildExecutions", Effect: "Allow", Action: []string{"states:StartExecution"}, Resource: []string{orgStateMachineARN}},
		{Sid: "TrackChildExecutions", Effect: "Allow", Action: []string{"states:DescribeExecution", "states:StopExecution"},
			Resource: []string{"arn:aws:states:us-east-1:012345678912:execution:" + orgStateMachine + ":*"}},
		{Sid: "ReadSweepTargets", Effect: "Allow", Action: []string{"s3:GetObject"}, Resource: []string{orgObject("runs/*/targets.json")}},
		{Sid: "WriteSweepResults", Effect: "Allow", Action: []string{"s3:PutObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"},
			Resource: []string{orgObject("runs/*/results/*")}},
	}
	if !reflect.DeepEqual(doc.Statement, want) {
		t.Errorf("\n got %+v\nwant %+v", doc.Statement, want)
	}
	for _, missing := range []Params{{Partition: "aws", Region: "us-east-1", Account: "012345678912", StateMachineARN: orgStateMachineARN, StateMachineName: orgStateMachine},
		{Partition: "aws", Region: "us-east-1", Account: "012345678912", OrgBucketName: orgBucket}} {
		if _, err := OrgStateMachine(missing); err == nil {
			t.Errorf("%+v: no error", missing)
		}
	}
}

// TestSimulateOrgSweepBucket asks the simulator's own action list for every
// S3 action on the objects of one execution and on the bucket: the
// function's role (function-role.json, evidence-write.json and
// org-runs-function.json) may put the execution's targets.json and
// resolution.json and read anything under runs/, nothing else; the state
// machine's role may read targets.json and read and write (with the
// multipart actions) under the execution's results/, nothing else. The
// member role may do nothing there.
func TestSimulateOrgSweepBucket(t *testing.T) {
	p := orgParams()
	fn, err := FunctionRole(p)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := EvidenceWrite(p)
	if err != nil {
		t.Fatal(err)
	}
	runs, err := OrgRunsFunction(p)
	if err != nil {
		t.Fatal(err)
	}
	sm, err := OrgStateMachine(p)
	if err != nil {
		t.Fatal(err)
	}
	member, err := MemberRole(memberParams())
	if err != nil {
		t.Fatal(err)
	}
	const smRole = "arn:aws:iam::012345678912:role/KmsRotator-OrgSweepRole0123-ABCDEF"
	prefix := "runs/" + orgExecution + "/"
	targets, resolution := prefix+"targets.json", prefix+"resolution.json"
	manifest, result := prefix+"results/5c1e9f2a-1111-2222-3333-444455556666/manifest.json", prefix+"results/5c1e9f2a-1111-2222-3333-444455556666/SUCCEEDED_0.json"
	keys := []string{targets, resolution, manifest, result, "runs/other.json", "evidence/012345678912/us-east-1/2026/12/07/r.json", "targets.json"}
	type role struct {
		name, principal, account string
		identity                 []any
		allowed                  func(action, key string) bool
	}
	roles := []role{
		{"the function role", simRole, simAccount, []any{fn.Map(), ev.Map(), runs.Map()}, func(action, key string) bool {
			switch action {
			case "s3:PutObject":
				return key == targets || key == resolution
			case "s3:GetObject":
				return strings.HasPrefix(key, "runs/")
			}
			return false
		}},
		{"the state machine role", smRole, simAccount, []any{sm.Map()}, func(action, key string) bool {
			switch action {
			case "s3:GetObject":
				return key == targets || strings.HasPrefix(key, prefix+"results/")
			case "s3:PutObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload":
				return strings.HasPrefix(key, prefix+"results/")
			}
			return false
		}},
		{"the member role", memberRole, memberAccount, []any{member.Map()}, func(string, string) bool { return false }},
	}
	var cases []simCase
	seen := map[string]bool{}
	for _, a := range serviceActions(t, "s3", 100) {
		seen[a.Action] = true
		for _, rl := range roles {
			var resources []string
			for _, arn := range a.ResourceArns {
				if strings.Contains(arn, "${ObjectName}") {
					for _, k := range keys {
						resources = append(resources, fillARN(arn, map[string]string{"Partition": "aws", "Region": "us-east-1", "Account": simAccount, "BucketName": orgBucket, "ObjectName": k}))
					}
					continue
				}
				resources = append(resources, fillARN(arn, map[string]string{"Partition": "aws", "Region": "us-east-1", "Account": simAccount, "BucketName": orgBucket}))
			}
			if len(resources) == 0 {
				resources = []string{"*"}
			}
			for _, r := range resources {
				want := "ImplicitlyDenied"
				if key, ok := strings.CutPrefix(r, "arn:aws:s3:::"+orgBucket+"/"); ok && rl.allowed(a.Action, key) {
					want = "Allowed"
				}
				cases = append(cases, simCase{Name: rl.name + ": " + a.Action + " on " + r, Principal: rl.principal, Action: a.Action, Resource: r,
					Account: rl.account, IdentityPolicies: rl.identity, want: want})
			}
		}
	}
	for _, must := range []string{"s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:DeleteObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload", "s3:PutBucketPolicy"} {
		if !seen[must] {
			t.Errorf("the simulator's action list lacks %s", must)
		}
	}
	cases = append(cases,
		simCase{Name: "the function role: put targets into another bucket", Principal: simRole, Action: "s3:PutObject", Resource: "arn:aws:s3:::payments-data/" + targets,
			Account: simAccount, IdentityPolicies: roles[0].identity, want: "ImplicitlyDenied"},
		simCase{Name: "the state machine role: write results into another bucket", Principal: smRole, Action: "s3:PutObject", Resource: "arn:aws:s3:::payments-data/" + result,
			Account: simAccount, IdentityPolicies: roles[1].identity, want: "ImplicitlyDenied"},
	)
	simulate(t, cases)
}

// TestSimulateOrgStateMachineExecutions asks the simulator's own action
// list for every Step Functions action: the state machine's role may start
// executions of itself (the Map Run's children) and describe and stop its
// own executions, and nothing else — not start another state machine, not
// read another's executions, not change or delete a state machine.
func TestSimulateOrgStateMachineExecutions(t *testing.T) {
	sm, err := OrgStateMachine(orgParams())
	if err != nil {
		t.Fatal(err)
	}
	const smRole = "arn:aws:iam::012345678912:role/KmsRotator-OrgSweepRole0123-ABCDEF"
	own := "arn:aws:states:us-east-1:012345678912:execution:" + orgStateMachine + ":" + orgExecution
	var cases []simCase
	seen := map[string]bool{}
	for _, a := range serviceActions(t, "states", 30) {
		seen[a.Action] = true
		for _, arn := range append(a.ResourceArns, "") {
			var resources []string
			switch {
			case arn == "" && len(a.ResourceArns) == 0:
				resources = []string{"*"}
			case arn == "":
				continue
			case strings.Contains(arn, ":stateMachine:"):
				resources = []string{orgStateMachineARN, "arn:aws:states:us-east-1:012345678912:stateMachine:payments"}
			case strings.Contains(arn, ":execution:"):
				resources = []string{own, "arn:aws:states:us-east-1:012345678912:execution:payments:" + orgExecution}
			default:
				resources = []string{fillARN(arn, map[string]string{"Partition": "aws", "Region": "us-east-1", "Account": simAccount})}
			}
			for _, r := range resources {
				want := "ImplicitlyDenied"
				if (a.Action == "states:StartExecution" && r == orgStateMachineARN) ||
					((a.Action == "states:DescribeExecution" || a.Action == "states:StopExecution") && r == own) {
					want = "Allowed"
				}
				cases = append(cases, simCase{Name: "the state machine role: " + a.Action + " on " + r, Principal: smRole, Action: a.Action, Resource: r,
					Account: simAccount, IdentityPolicies: []any{sm.Map()}, want: want})
			}
		}
	}
	for _, must := range []string{"states:StartExecution", "states:DescribeExecution", "states:StopExecution", "states:UpdateStateMachine", "states:DeleteStateMachine", "states:RedriveExecution"} {
		if !seen[must] {
			t.Errorf("the simulator's action list lacks %s", must)
		}
	}
	simulate(t, cases)
}
