package policy

import (
	"reflect"
	"strings"
	"testing"
)

// testParams are the values of a local deployment (the account the Lambda
// Runtime Interface Emulator reports).
var testParams = Params{
	Partition:       "aws",
	Account:         "012345678912",
	Region:          "us-east-1",
	TagKey:          "kms-rotator",
	TagValue:        "enabled",
	LogGroupName:    "/aws/lambda/kms-rotator",
	FunctionName:    "kms-rotator",
	FailureQueueARN: "arn:aws:sqs:us-east-1:012345678912:kms-rotator-failures",
	RoleARN:         "arn:aws:iam::012345678912:role/kms-rotator",
}

const keyARNs = "arn:aws:kms:*:012345678912:key/*"

// TestFunctionRoleIsExactlyThis spells out every statement, so a permission
// added to function-role.json fails here until it is reviewed.
func TestFunctionRoleIsExactlyThis(t *testing.T) {
	want := []Statement{
		{Sid: "RotateOptedInSymmetricKeys", Effect: "Allow",
			Action:   []string{"kms:RotateKeyOnDemand"},
			Resource: []string{keyARNs},
			Condition: map[string]map[string]string{"StringEquals": {
				"aws:ResourceTag/kms-rotator": "enabled",
				"kms:KeySpec":                 "SYMMETRIC_DEFAULT",
			}}},
		{Sid: "ReadRotationStateOfOptedInKeys", Effect: "Allow",
			Action:   []string{"kms:GetKeyRotationStatus", "kms:ListKeyRotations"},
			Resource: []string{keyARNs},
			Condition: map[string]map[string]string{"StringEquals": {
				"aws:ResourceTag/kms-rotator": "enabled",
			}}},
		{Sid: "DescribeAnyKeyOfTheAccount", Effect: "Allow",
			Action:   []string{"kms:DescribeKey", "kms:ListResourceTags"},
			Resource: []string{keyARNs}},
		{Sid: "ListAliasesAndTaggedKeys", Effect: "Allow",
			Action:   []string{"kms:ListAliases", "tag:GetResources"},
			Resource: []string{"*"}},
		{Sid: "WriteOwnLogGroup", Effect: "Allow",
			Action:   []string{"logs:CreateLogStream", "logs:PutLogEvents"},
			Resource: []string{"arn:aws:logs:us-east-1:012345678912:log-group:/aws/lambda/kms-rotator:*"}},
		{Sid: "ContinueOwnSweep", Effect: "Allow",
			Action:   []string{"lambda:InvokeFunction"},
			Resource: []string{"arn:aws:lambda:us-east-1:012345678912:function:kms-rotator"}},
		{Sid: "SendFailedInvocationsToOwnQueue", Effect: "Allow",
			Action:   []string{"sqs:SendMessage"},
			Resource: []string{"arn:aws:sqs:us-east-1:012345678912:kms-rotator-failures"}},
	}
	doc, err := FunctionRole(testParams)
	if err != nil {
		t.Fatal(err)
	}
	if doc.Version != "2012-10-17" {
		t.Errorf("Version = %q, want 2012-10-17", doc.Version)
	}
	if len(doc.Statement) != len(want) {
		t.Fatalf("%d statements, want %d: %+v", len(doc.Statement), len(want), doc.Statement)
	}
	for i, w := range want {
		t.Run(w.Sid+" is as reviewed", func(t *testing.T) {
			if got := doc.Statement[i]; !reflect.DeepEqual(got, w) {
				t.Errorf("statement %d\n got %+v\nwant %+v", i, got, w)
			}
		})
	}
}

func TestNoStatementGrantsAWildcardAction(t *testing.T) {
	doc, err := FunctionRole(testParams)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := KeyStatements(testParams)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range append(doc.Statement, keys...) {
		if s.Effect != "Allow" {
			t.Errorf("%s: Effect %q, want Allow (no deny is needed)", s.Sid, s.Effect)
		}
		for _, a := range s.Action {
			if strings.Contains(a, "*") {
				t.Errorf("%s: wildcard action %q", s.Sid, a)
			}
		}
	}
}

func TestKeyStatementsNameTheRoleAndTheOptInTag(t *testing.T) {
	got, err := KeyStatements(testParams)
	if err != nil {
		t.Fatal(err)
	}
	role := map[string]string{"AWS": testParams.RoleARN}
	want := []Statement{
		{Sid: "KmsRotatorReadsThisKey", Effect: "Allow", Principal: role,
			Action:   []string{"kms:DescribeKey", "kms:GetKeyRotationStatus", "kms:ListKeyRotations", "kms:ListResourceTags"},
			Resource: []string{"*"}},
		{Sid: "KmsRotatorRotatesThisKeyWhileOptedIn", Effect: "Allow", Principal: role,
			Action:   []string{"kms:RotateKeyOnDemand"},
			Resource: []string{"*"},
			Condition: map[string]map[string]string{"StringEquals": {
				"aws:ResourceTag/kms-rotator": "enabled",
			}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("\n got %+v\nwant %+v", got, want)
	}
}

func TestRender(t *testing.T) {
	tests := []struct {
		name    string
		params  func(p Params) Params
		wantErr string
		check   func(t *testing.T, d Document)
	}{
		{
			name:    "missing values fail naming every placeholder",
			params:  func(p Params) Params { p.Account, p.TagValue = "", ""; return p },
			wantErr: "no value for Account, TagValue",
		},
		{
			name:   "CDK tokens are substituted once and kept literally",
			params: func(p Params) Params { p.Partition = "${Token[AWS.Partition.9]}"; return p },
			check: func(t *testing.T, d Document) {
				t.Helper()
				if got := d.Statement[0].Resource[0]; got != "arn:${Token[AWS.Partition.9]}:kms:*:012345678912:key/*" {
					t.Errorf("resource = %q", got)
				}
			},
		},
		{
			name:   "quotes in a tag value stay inside the JSON string",
			params: func(p Params) Params { p.TagValue = `a"b\c`; return p },
			check: func(t *testing.T, d Document) {
				t.Helper()
				if got := d.Statement[0].Condition["StringEquals"]["aws:ResourceTag/kms-rotator"]; got != `a"b\c` {
					t.Errorf("tag value = %q", got)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := FunctionRole(tc.params(testParams))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, d)
		})
	}
}

func TestPlaceholdersListWhatTheDocumentsNeed(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{FunctionRoleFile, []string{"Account", "FailureQueueArn", "FunctionName", "LogGroupName", "Partition", "Region", "TagKey", "TagValue"}},
		{KeyPolicyStatementFile, []string{"RoleArn", "TagKey", "TagValue"}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			got, err := Placeholders(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMapKeepsTheDocument(t *testing.T) {
	d, err := FunctionRole(testParams)
	if err != nil {
		t.Fatal(err)
	}
	m := d.Map()
	st, ok := m["Statement"].([]any)
	if !ok || len(st) != len(d.Statement) {
		t.Fatalf("Statement = %#v", m["Statement"])
	}
	if _, has := st[2].(map[string]any)["Condition"]; has {
		t.Errorf("a statement without conditions must not carry an empty Condition: %v", st[2])
	}
}
