package policy

import (
	"reflect"
	"strings"
	"testing"
)

// testParams are the values of a local deployment (the account the Lambda
// Runtime Interface Emulator reports).
var testParams = Params{
	Partition:         "aws",
	Account:           "012345678912",
	Region:            "us-east-1",
	TagKey:            "kms-rotator",
	TagValue:          "enabled",
	LogGroupName:      "/aws/lambda/kms-rotator",
	FunctionName:      "kms-rotator",
	SweepFunctionName: "kms-rotator-sweep",
	FailureQueueARN:   "arn:aws:sqs:us-east-1:012345678912:kms-rotator-failures",
	RoleARN:           "arn:aws:iam::012345678912:role/kms-rotator",
	// The infra package passes settings.ResultEventSource and the incident
	// event's source and detail-type (infra/stack_test.go pins them).
	ResultEventSource:         "kms-rotator",
	ResultEventDetailType:     "KMS Rotation Run Completed",
	ResultBusName:             "kms-rotator-results",
	IncidentBusName:           "kms-rotator-incidents",
	IncidentSource:            "kms-rotator",
	IncidentDetailType:        "Rotate KMS Keys",
	IncidentPrincipals:        []string{"arn:aws:iam::012345678912:role/soar"},
	IncidentPrincipalPatterns: []string{"arn:aws:iam::012345678912:role/soar"},
	LedgerTableARN:            ledgerTable,
	EvidenceBucketName:        evidenceBucket,
}

// ledgerTable is the rotation ledger's table of testParams.
const ledgerTable = "arn:aws:dynamodb:us-east-1:012345678912:table/KmsRotator-LedgerTable-1A2B3C4D5E6F"

// accountOnly are the incident bus parameters without incidentPrincipals:
// the whole account, through IAM.
func accountOnly(p Params) Params {
	p.IncidentPrincipals = []string{"arn:aws:iam::012345678912:root"}
	p.IncidentPrincipalPatterns = []string{"arn:aws:iam::012345678912:*"}
	return p
}

const keyARNs = "arn:aws:kms:*:012345678912:key/*"

// TestFunctionRoleIsExactlyThis spells out every statement, so a permission
// added to function-role.json fails here until it is reviewed.
func TestFunctionRoleIsExactlyThis(t *testing.T) {
	want := []Statement{
		{Sid: "RotateOptedInSymmetricKeys", Effect: "Allow",
			Action:   []string{"kms:RotateKeyOnDemand"},
			Resource: []string{keyARNs},
			Condition: map[string]map[string]Values{"StringEquals": {
				"aws:ResourceTag/kms-rotator": {"enabled"},
				"kms:KeySpec":                 {"SYMMETRIC_DEFAULT"},
			}}},
		{Sid: "ReadRotationStateOfOptedInKeys", Effect: "Allow",
			Action:   []string{"kms:GetKeyRotationStatus", "kms:ListKeyRotations", "kms:GetKeyLastUsage"},
			Resource: []string{keyARNs},
			Condition: map[string]map[string]Values{"StringEquals": {
				"aws:ResourceTag/kms-rotator": {"enabled"},
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
			Action: []string{"lambda:InvokeFunction"},
			Resource: []string{"arn:aws:lambda:us-east-1:012345678912:function:kms-rotator",
				"arn:aws:lambda:us-east-1:012345678912:function:kms-rotator-sweep"}},
		{Sid: "SendFailedInvocationsToOwnQueue", Effect: "Allow",
			Action:   []string{"sqs:SendMessage"},
			Resource: []string{"arn:aws:sqs:us-east-1:012345678912:kms-rotator-failures"}},
		{Sid: "AnnounceRunResultsOnResultsBus", Effect: "Allow",
			Action:   []string{"events:PutEvents"},
			Resource: []string{"arn:aws:events:us-east-1:012345678912:event-bus/kms-rotator-results"},
			Condition: map[string]map[string]Values{
				"ForAllValues:StringEquals": {"events:source": {"kms-rotator"}, "events:detail-type": {"KMS Rotation Run Completed"}},
				"Null":                      {"events:source": {"false"}, "events:detail-type": {"false"}},
			}},
		{Sid: "ReadWriteOwnLedger", Effect: "Allow",
			Action:   []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query"},
			Resource: []string{ledgerTable}},
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
	all := append(doc.Statement, keys...)
	for _, render := range []func(Params) (Document, error){SchedulerRole, Responder, IncidentBus, OrganizationRead, EvidenceWrite, SecurityHub} {
		d, err := render(testParams)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, d.Statement...)
	}
	for _, s := range all {
		// The incident bus's deny is the only one: it keeps principals of
		// the account that are not listed off the bus.
		if s.Effect != "Allow" && s.Sid != "DenyEveryoneElse" {
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
	role := map[string]Values{"AWS": {testParams.RoleARN}}
	want := []Statement{
		{Sid: "KmsRotatorReadsThisKey", Effect: "Allow", Principal: role,
			Action:   []string{"kms:DescribeKey", "kms:GetKeyRotationStatus", "kms:ListKeyRotations", "kms:ListResourceTags", "kms:GetKeyLastUsage"},
			Resource: []string{"*"}},
		{Sid: "KmsRotatorRotatesThisKeyWhileOptedIn", Effect: "Allow", Principal: role,
			Action:   []string{"kms:RotateKeyOnDemand"},
			Resource: []string{"*"},
			Condition: map[string]map[string]Values{"StringEquals": {
				"aws:ResourceTag/kms-rotator": {"enabled"},
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
				if got := d.Statement[0].Condition["StringEquals"]["aws:ResourceTag/kms-rotator"]; !reflect.DeepEqual(got, Values{`a"b\c`}) {
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
		{FunctionRoleFile, []string{"Account", "FailureQueueArn", "FunctionName", "LedgerTableArn", "LogGroupName", "Partition", "Region", "ResultBusName", "ResultEventDetailType", "ResultEventSource", "SweepFunctionName", "TagKey", "TagValue"}},
		{KeyPolicyStatementFile, []string{"RoleArn", "TagKey", "TagValue"}},
		{SchedulerRoleFile, []string{"Account", "FailureQueueArn", "FunctionName", "Partition", "Region"}},
		{SchedulerOrgRoleFile, []string{"FailureQueueArn", "StateMachineArn"}},
		{ResponderFile, []string{"Account", "FunctionName", "IncidentBusName", "IncidentDetailType", "IncidentSource", "Partition", "Region"}},
		{IncidentBusFile, []string{"Account", "IncidentBusName", "IncidentPrincipalPatterns", "IncidentPrincipals", "Partition", "Region"}},
		{ResultsBusFile, []string{"Account", "Partition", "Region", "ResultBusName", "RoleArn"}},
		{AssumeMemberRoleFile, []string{"MemberRoleName", "OrgId", "Partition"}},
		{OrganizationReadFile, []string{}},
		{EvidenceWriteFile, []string{"EvidenceBucketName", "Partition"}},
		{SecurityHubFile, []string{"Account", "Partition", "Region"}},
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

func TestSchedulerRoleInvokesOnlyTheFunctionAndFeedsOnlyTheQueue(t *testing.T) {
	got, err := SchedulerRole(testParams)
	if err != nil {
		t.Fatal(err)
	}
	want := []Statement{
		{Sid: "StartTheScheduledSweep", Effect: "Allow",
			Action:   []string{"lambda:InvokeFunction"},
			Resource: []string{"arn:aws:lambda:us-east-1:012345678912:function:kms-rotator"}},
		{Sid: "SendUndeliveredSweepsToFailureQueue", Effect: "Allow",
			Action:   []string{"sqs:SendMessage"},
			Resource: []string{testParams.FailureQueueARN}},
	}
	if !reflect.DeepEqual(got.Statement, want) {
		t.Errorf("\n got %+v\nwant %+v", got.Statement, want)
	}
}

func TestResponderMayInvokeAndRequestIncidentsOnly(t *testing.T) {
	got, err := Responder(testParams)
	if err != nil {
		t.Fatal(err)
	}
	want := []Statement{
		{Sid: "InvokeTheRotator", Effect: "Allow",
			Action:   []string{"lambda:InvokeFunction"},
			Resource: []string{"arn:aws:lambda:us-east-1:012345678912:function:kms-rotator"}},
		{Sid: "RequestIncidentRotationOnIncidentBus", Effect: "Allow",
			Action:   []string{"events:PutEvents"},
			Resource: []string{"arn:aws:events:us-east-1:012345678912:event-bus/kms-rotator-incidents"},
			Condition: map[string]map[string]Values{
				"ForAllValues:StringEquals": {"events:source": {"kms-rotator"}, "events:detail-type": {"Rotate KMS Keys"}},
				"Null":                      {"events:source": {"false"}, "events:detail-type": {"false"}},
			}},
	}
	if !reflect.DeepEqual(got.Statement, want) {
		t.Errorf("\n got %+v\nwant %+v", got.Statement, want)
	}
}

func TestIncidentBusAdmitsTheListedPrincipalsOrTheAccount(t *testing.T) {
	const bus = "arn:aws:events:us-east-1:012345678912:event-bus/kms-rotator-incidents"
	twoRoles := testParams
	twoRoles.IncidentPrincipals = []string{"arn:aws:iam::012345678912:role/soar", "arn:aws:iam::012345678912:role/ir/oncall"}
	twoRoles.IncidentPrincipalPatterns = twoRoles.IncidentPrincipals
	tests := []struct {
		name      string
		params    Params
		principal Values
		patterns  Values
	}{
		{"listed roles only", twoRoles, Values{"arn:aws:iam::012345678912:role/soar", "arn:aws:iam::012345678912:role/ir/oncall"},
			Values{"arn:aws:iam::012345678912:role/soar", "arn:aws:iam::012345678912:role/ir/oncall"}},
		{"the account when no principal is listed", accountOnly(testParams), Values{"arn:aws:iam::012345678912:root"},
			Values{"arn:aws:iam::012345678912:*"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := IncidentBus(tc.params)
			if err != nil {
				t.Fatal(err)
			}
			want := []Statement{
				{Sid: "AdmitIncidentRequestsFromResponders", Effect: "Allow", Principal: map[string]Values{"AWS": tc.principal},
					Action: []string{"events:PutEvents"}, Resource: []string{bus}},
				{Sid: "DenyEveryoneElse", Effect: "Deny", Principal: map[string]Values{"AWS": {"*"}},
					Action: []string{"events:PutEvents"}, Resource: []string{bus},
					Condition: map[string]map[string]Values{"ArnNotLike": {"aws:PrincipalArn": tc.patterns}}},
			}
			if !reflect.DeepEqual(got.Statement, want) {
				t.Errorf("\n got %+v\nwant %+v", got.Statement, want)
			}
		})
	}
}

func TestListPlaceholders(t *testing.T) {
	t.Run("an empty list fails naming the placeholder", func(t *testing.T) {
		p := testParams
		p.IncidentPrincipals = nil
		if _, err := IncidentBus(p); err == nil || !strings.Contains(err.Error(), "no value for IncidentPrincipals") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("one value renders as a string", func(t *testing.T) {
		d, err := IncidentBus(testParams)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.Map()["Statement"].([]any)[0].(map[string]any)["Principal"]; !reflect.DeepEqual(got, map[string]any{"AWS": "arn:aws:iam::012345678912:role/soar"}) {
			t.Errorf("principal %v", got)
		}
	})
}
