package policy

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// The evidence bucket and Security Hub: what the function's role (and in
// organization mode the member role) may do in S3 and in Security Hub.

const (
	// evidenceBucket is the evidence bucket of testParams, a name
	// CloudFormation makes up.
	evidenceBucket = "kmsrotator-evidencebucket-1a2b3c4d5e6f"
	// evidenceObject is a run's record, as the function names it.
	evidenceObject = "arn:aws:s3:::" + evidenceBucket + "/evidence/012345678912/us-east-1/2026/11/26/20261126T030000Z-1a2b3c4d.json"
)

func TestEvidenceWriteIsExactlyThis(t *testing.T) {
	doc, err := EvidenceWrite(testParams)
	if err != nil {
		t.Fatal(err)
	}
	want := []Statement{{Sid: "WriteEvidenceRecords", Effect: "Allow", Action: []string{"s3:PutObject"},
		Resource: []string{"arn:aws:s3:::" + evidenceBucket + "/evidence/*"}}}
	if doc.Version != "2012-10-17" || !reflect.DeepEqual(doc.Statement, want) {
		t.Errorf("\n got %+v\nwant %+v", doc, want)
	}
	t.Run("its statement is not one the member role may pick", func(t *testing.T) {
		for _, sid := range MemberRoleSids {
			if sid == doc.Statement[0].Sid {
				t.Errorf("Sid %s is a member role statement", sid)
			}
		}
	})
	if _, err := EvidenceWrite(Params{Partition: "aws"}); err == nil || !strings.Contains(err.Error(), "EvidenceBucketName") {
		t.Errorf("without a bucket: err = %v, want one naming EvidenceBucketName", err)
	}
}

func TestSecurityHubIsExactlyThis(t *testing.T) {
	doc, err := SecurityHub(testParams)
	if err != nil {
		t.Fatal(err)
	}
	want := []Statement{
		{Sid: "ImportFindingsOfOwnAccount", Effect: "Allow", Action: []string{"securityhub:BatchImportFindings"},
			Resource: []string{"arn:aws:securityhub:us-east-1:012345678912:product/012345678912/default"}},
		{Sid: "ReadFindingsOfOwnAccount", Effect: "Allow", Action: []string{"securityhub:GetFindings"},
			Resource: []string{"arn:aws:securityhub:us-east-1:012345678912:hub/default"}},
	}
	if doc.Version != "2012-10-17" || !reflect.DeepEqual(doc.Statement, want) {
		t.Errorf("\n got %+v\nwant %+v", doc, want)
	}
	t.Run("in several Regions: one statement per action, a resource per Region", func(t *testing.T) {
		got, err := SecurityHubIn(memberParams(), []string{"eu-west-1", "us-east-1", "eu-west-1"})
		if err != nil {
			t.Fatal(err)
		}
		want := []Statement{
			{Sid: "ImportFindingsOfOwnAccount", Effect: "Allow", Action: []string{"securityhub:BatchImportFindings"},
				Resource: []string{"arn:aws:securityhub:eu-west-1:111122223333:product/111122223333/default",
					"arn:aws:securityhub:us-east-1:111122223333:product/111122223333/default"}},
			{Sid: "ReadFindingsOfOwnAccount", Effect: "Allow", Action: []string{"securityhub:GetFindings"},
				Resource: []string{"arn:aws:securityhub:eu-west-1:111122223333:hub/default",
					"arn:aws:securityhub:us-east-1:111122223333:hub/default"}},
		}
		if !reflect.DeepEqual(got.Statement, want) {
			t.Errorf("\n got %+v\nwant %+v", got.Statement, want)
		}
		if _, err := SecurityHubIn(memberParams(), nil); err == nil {
			t.Error("no Region: no error")
		}
	})
	t.Run("its statements are not ones the member role picks from function-role.json", func(t *testing.T) {
		member, err := MemberRole(memberParams())
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range member.Statement {
			for _, a := range st.Action {
				if strings.HasPrefix(a, "securityhub:") || strings.HasPrefix(a, "s3:") {
					t.Errorf("the member role's %s grants %s", st.Sid, a)
				}
			}
		}
	})
}

// fillARN fills the placeholders of a resource ARN of the simulator's action
// list from values; any other becomes "x1".
func fillARN(arn string, values map[string]string) string {
	placeholder := regexp.MustCompile(`\$\{([A-Za-z]+)\}`)
	return placeholder.ReplaceAllStringFunc(arn, func(m string) string {
		if v, ok := values[placeholder.FindStringSubmatch(m)[1]]; ok {
			return v
		}
		return "x1"
	})
}

// serviceActions is the simulator's own list of a service's actions, with
// the ARN patterns of their resource types.
func serviceActions(t *testing.T, service string, least int) []struct {
	Action        string   `json:"action"`
	ResourceTypes []string `json:"resourceTypes"`
	ResourceArns  []string `json:"resourceArns"`
} {
	t.Helper()
	var actions []struct {
		Action        string   `json:"action"`
		ResourceTypes []string `json:"resourceTypes"`
		ResourceArns  []string `json:"resourceArns"`
	}
	runSimulator(t, nil, &actions, "actions", service)
	if len(actions) < least {
		t.Fatalf("the simulator knows only %d %s actions", len(actions), service)
	}
	return actions
}

// TestSimulateEvidenceWrite asks the simulator's own action list for every
// S3 action: the function's role (function-role.json and
// evidence-write.json) may put objects under evidence/ of its evidence
// bucket and do nothing else in S3 — not read, list or delete the records,
// not change their retention, legal hold or ACL, not write outside
// evidence/ or into another bucket. The member role may do nothing in S3.
func TestSimulateEvidenceWrite(t *testing.T) {
	fn, err := FunctionRole(testParams)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := EvidenceWrite(testParams)
	if err != nil {
		t.Fatal(err)
	}
	member, err := MemberRole(memberParams())
	if err != nil {
		t.Fatal(err)
	}
	identity := []any{fn.Map(), ev.Map()}
	values := map[string]string{"Partition": "aws", "Region": "us-east-1", "Account": simAccount, "BucketName": evidenceBucket,
		"ObjectName": strings.TrimPrefix(evidenceObject, "arn:aws:s3:::"+evidenceBucket+"/")}
	var cases []simCase
	seen := map[string]bool{}
	for _, a := range serviceActions(t, "s3", 100) {
		seen[a.Action] = true
		resources := []string{"*"}
		if len(a.ResourceArns) > 0 {
			resources = nil
			for _, arn := range a.ResourceArns {
				resources = append(resources, fillARN(arn, values))
			}
		}
		for _, r := range resources {
			want := "ImplicitlyDenied"
			if a.Action == "s3:PutObject" && r == evidenceObject {
				want = "Allowed"
			}
			cases = append(cases,
				simCase{Name: "the function role: " + a.Action + " on " + r, Principal: simRole, Action: a.Action, Resource: r,
					Account: simAccount, IdentityPolicies: identity, want: want},
				simCase{Name: "the member role: " + a.Action + " on " + r, Principal: memberRole, Action: a.Action, Resource: r,
					Account: memberAccount, IdentityPolicies: []any{member.Map()}, want: "ImplicitlyDenied"})
		}
	}
	for _, must := range []string{"s3:PutObject", "s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:ListBucketVersions",
		"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectRetention", "s3:BypassGovernanceRetention", "s3:PutObjectLegalHold",
		"s3:PutObjectAcl", "s3:PutLifecycleConfiguration", "s3:PutBucketPolicy", "s3:DeleteBucket"} {
		if !seen[must] {
			t.Errorf("the simulator's action list lacks %s", must)
		}
	}
	put := func(name, resource, want string) simCase {
		return simCase{Name: "the function role: " + name, Principal: simRole, Action: "s3:PutObject", Resource: resource,
			Account: simAccount, IdentityPolicies: identity, want: want}
	}
	cases = append(cases,
		put("put a record of another account and Region", "arn:aws:s3:::"+evidenceBucket+"/evidence/111122223333/eu-west-1/2026/11/26/r.json", "Allowed"),
		put("put an object outside evidence/", "arn:aws:s3:::"+evidenceBucket+"/other/r.json", "ImplicitlyDenied"),
		put("put an object at the bucket's top", "arn:aws:s3:::"+evidenceBucket+"/r.json", "ImplicitlyDenied"),
		put("put an object under a prefix that only starts like evidence/", "arn:aws:s3:::"+evidenceBucket+"/evidence-old/r.json", "ImplicitlyDenied"),
		put("put a record into another bucket's evidence/", "arn:aws:s3:::payments-data/evidence/012345678912/us-east-1/2026/11/26/r.json", "ImplicitlyDenied"),
		simCase{Name: "without evidence-write.json, put a record", Principal: simRole, Action: "s3:PutObject", Resource: evidenceObject,
			Account: simAccount, IdentityPolicies: []any{fn.Map()}, want: "ImplicitlyDenied"},
	)
	simulate(t, cases)
}

// TestSimulateSecurityHub asks the simulator's own action list for every
// Security Hub action, both ways: with security-hub.json the function's
// role may import findings into its own account's default product and read
// its own account's findings, in its Region, and nothing else in Security
// Hub; without it, nothing at all. The member role, with the statements
// rendered for the organization's Regions, may do the same in its own
// account in those Regions; without them, nothing.
func TestSimulateSecurityHub(t *testing.T) {
	fn, err := FunctionRole(testParams)
	if err != nil {
		t.Fatal(err)
	}
	hub, err := SecurityHub(testParams)
	if err != nil {
		t.Fatal(err)
	}
	member, err := MemberRole(memberParams())
	if err != nil {
		t.Fatal(err)
	}
	memberHub, err := SecurityHubIn(memberParams(), []string{"eu-west-1", "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	type role struct {
		name, principal, account, region string
		with, without                    []any
	}
	roles := []role{
		{"the function role", simRole, simAccount, "us-east-1", []any{fn.Map(), hub.Map()}, []any{fn.Map()}},
		{"the member role", memberRole, memberAccount, "eu-west-1", []any{member.Map(), memberHub.Map()}, []any{member.Map()}},
	}
	var cases []simCase
	seen := map[string]bool{}
	for _, a := range serviceActions(t, "securityhub", 50) {
		seen[a.Action] = true
		for _, rl := range roles {
			values := map[string]string{"Partition": "aws", "Region": rl.region, "Account": rl.account, "Company": rl.account, "ProductId": "default"}
			resources := []string{"*"}
			if len(a.ResourceArns) > 0 {
				resources = nil
				for _, arn := range a.ResourceArns {
					resources = append(resources, fillARN(arn, values))
				}
			}
			for _, r := range resources {
				want := "ImplicitlyDenied"
				if (a.Action == "securityhub:BatchImportFindings" && strings.HasSuffix(r, ":product/"+rl.account+"/default")) ||
					(a.Action == "securityhub:GetFindings" && strings.HasSuffix(r, ":hub/default")) {
					want = "Allowed"
				}
				cases = append(cases,
					simCase{Name: rl.name + " with Security Hub on: " + a.Action + " on " + r, Principal: rl.principal, Action: a.Action,
						Resource: r, Account: rl.account, IdentityPolicies: rl.with, want: want},
					simCase{Name: rl.name + " with Security Hub off: " + a.Action + " on " + r, Principal: rl.principal, Action: a.Action,
						Resource: r, Account: rl.account, IdentityPolicies: rl.without, want: "ImplicitlyDenied"})
			}
		}
	}
	for _, must := range []string{"securityhub:BatchImportFindings", "securityhub:GetFindings", "securityhub:BatchUpdateFindings",
		"securityhub:DisableSecurityHub", "securityhub:UpdateFindings", "securityhub:CreateInsight"} {
		if !seen[must] {
			t.Errorf("the simulator's action list lacks %s", must)
		}
	}
	imp := func(name, principal string, identity []any, product, want string) simCase {
		account := strings.Split(product, ":")[4]
		return simCase{Name: name, Principal: principal, Action: "securityhub:BatchImportFindings", Resource: product,
			Account: account, IdentityPolicies: identity, want: want}
	}
	cases = append(cases,
		imp("the function role: import into another account's default product", simRole, roles[0].with,
			"arn:aws:securityhub:us-east-1:111122223333:product/111122223333/default", "ImplicitlyDenied"),
		imp("the function role: import into its default product in another Region", simRole, roles[0].with,
			"arn:aws:securityhub:eu-west-1:012345678912:product/012345678912/default", "ImplicitlyDenied"),
		imp("the function role: import as a partner product", simRole, roles[0].with,
			"arn:aws:securityhub:us-east-1:444455556666:product/example-partner/scanner", "ImplicitlyDenied"),
		imp("the member role: import in the organization's other Region", memberRole, roles[1].with,
			"arn:aws:securityhub:us-east-1:111122223333:product/111122223333/default", "Allowed"),
		imp("the member role: import in a Region the organization does not sweep", memberRole, roles[1].with,
			"arn:aws:securityhub:ap-southeast-2:111122223333:product/111122223333/default", "ImplicitlyDenied"),
		imp("the member role: import into the central account's product", memberRole, roles[1].with,
			"arn:aws:securityhub:eu-west-1:012345678912:product/012345678912/default", "ImplicitlyDenied"),
		simCase{Name: "the member role: read the central account's findings", Principal: memberRole, Action: "securityhub:GetFindings",
			Resource: "arn:aws:securityhub:eu-west-1:012345678912:hub/default", Account: simAccount, IdentityPolicies: roles[1].with, want: "ImplicitlyDenied"},
	)
	simulate(t, cases)
}
