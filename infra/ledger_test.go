package main

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/kms-rotator/kms-rotator/lambda/rotator"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// The rotation ledger's table, the function's access to it, its alarm and
// the maximum age of incident events.

func TestLedgerTable(t *testing.T) {
	_, tmpl, j := synth(t)
	t.Run("one table: keys pk and sk as strings, on demand, PITR, deletion protection, TTL on expiresAt, retained", func(t *testing.T) {
		tmpl.ResourceCountIs(jsii.String("AWS::DynamoDB::Table"), jsii.Number(1))
		tmpl.HasResource(jsii.String("AWS::DynamoDB::Table"), map[string]any{
			"DeletionPolicy":      "Retain",
			"UpdateReplacePolicy": "Retain",
			"Properties": map[string]any{
				"KeySchema": []any{
					map[string]any{"AttributeName": settings.LedgerPartitionKey, "KeyType": "HASH"},
					map[string]any{"AttributeName": settings.LedgerSortKey, "KeyType": "RANGE"},
				},
				"AttributeDefinitions": []any{
					map[string]any{"AttributeName": settings.LedgerPartitionKey, "AttributeType": "S"},
					map[string]any{"AttributeName": settings.LedgerSortKey, "AttributeType": "S"},
				},
				"BillingMode":                      "PAY_PER_REQUEST",
				"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
				"DeletionProtectionEnabled":        true,
				"TimeToLiveSpecification":          map[string]any{"AttributeName": settings.LedgerTTLAttribute, "Enabled": true},
			},
		})
	})
	tableID, table := only(t, j, "AWS::DynamoDB::Table")
	t.Run("CloudFormation names the table, so a retained one never blocks the next deployment", func(t *testing.T) {
		if name, named := table["TableName"]; named {
			t.Errorf("TableName %v", name)
		}
	})
	t.Run("no index, no stream: the ledger reads by key only", func(t *testing.T) {
		for _, key := range []string{"GlobalSecondaryIndexes", "LocalSecondaryIndexes", "StreamSpecification"} {
			if v, ok := table[key]; ok {
				t.Errorf("%s %v", key, v)
			}
		}
	})
	t.Run("the function's ROTATOR_LEDGER_TABLE is the table's name, not the placeholder", func(t *testing.T) {
		_, fn := lambdaFunction(t, j, "kms-rotator")
		got := fn["Environment"].(map[string]any)["Variables"].(map[string]any)[settings.EnvLedgerTable]
		if !reflect.DeepEqual(got, map[string]any{"Ref": tableID}) {
			t.Errorf("%s = %v, want Ref %s", settings.EnvLedgerTable, got, tableID)
		}
		if strings.Contains(mustString(fn), ledgerTablePlaceholder) {
			t.Errorf("the function's properties hold the placeholder %s", ledgerTablePlaceholder)
		}
	})
	t.Run("the function role reads and writes items of this table only", func(t *testing.T) {
		var ledger []statement
		for _, s := range statements(t, resources(t, j, "AWS::IAM::Role")[functionRoleID(t, j)]["Properties"].(map[string]any)) {
			for _, a := range s.Actions {
				if strings.HasPrefix(a, "dynamodb:") {
					ledger = append(ledger, s)
					break
				}
			}
		}
		want := []statement{{"ReadWriteOwnLedger", []string{"dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"},
			[]string{"${" + tableID + ".Arn}"}, ""}}
		if !reflect.DeepEqual(ledger, want) {
			t.Errorf("\n got %+v\nwant %+v", ledger, want)
		}
	})
	t.Run("the output LedgerTableName names the table", func(t *testing.T) {
		out := j["Outputs"].(map[string]any)["LedgerTableName"].(map[string]any)
		if !reflect.DeepEqual(out["Value"], map[string]any{"Ref": tableID}) {
			t.Errorf("output %v", out)
		}
	})
}

// TestOrgLedgerIsCentral: organization mode has one ledger, in the central
// stack, for the central function; the member template creates no table
// and its role has no DynamoDB permission.
func TestOrgLedgerIsCentral(t *testing.T) {
	_, tmpl, j := orgSynth(t)
	tmpl.ResourceCountIs(jsii.String("AWS::DynamoDB::Table"), jsii.Number(1))
	tableID, _ := only(t, j, "AWS::DynamoDB::Table")
	_, fn := lambdaFunction(t, j, "kms-rotator")
	if got := fn["Environment"].(map[string]any)["Variables"].(map[string]any)[settings.EnvLedgerTable]; !reflect.DeepEqual(got, map[string]any{"Ref": tableID}) {
		t.Errorf("%s = %v, want Ref %s", settings.EnvLedgerTable, got, tableID)
	}
	if role := mustString(resources(t, j, "AWS::IAM::Role")[functionRoleID(t, j)]); !strings.Contains(role, `"ReadWriteOwnLedger"`) {
		t.Error("the central function role has no ledger statement")
	}
	for id, stackSet := range resources(t, j, "AWS::CloudFormation::StackSet") {
		member := stackSet["Properties"].(map[string]any)["TemplateBody"].(string)
		for _, forbidden := range []string{"AWS::DynamoDB::", "dynamodb:", "ReadWriteOwnLedger"} {
			if strings.Contains(member, forbidden) {
				t.Errorf("the member template of %s holds %s", id, forbidden)
			}
		}
		if !strings.Contains(member, "kms:RotateKeyOnDemand") {
			t.Errorf("the member template of %s has no member role to compare with", id)
		}
	}
}

// TestLateIncidentsAreDropped: the incident rule's target and the
// function's asynchronous invocations give up on an event older than
// ROTATOR_INCIDENT_MAX_AGE (15 minutes by default, -c incidentMaxAge), and
// send it to the failure queue; Lambda still does not retry a failed run.
func TestLateIncidentsAreDropped(t *testing.T) {
	check := func(t *testing.T, j map[string]any, age float64) {
		t.Helper()
		queueID, _ := only(t, j, "AWS::SQS::Queue")
		// Both functions: incidents on the one, the schedule's sweeps and
		// continuations on the other.
		configs := map[string]map[string]any{}
		for _, r := range resources(t, j, "AWS::Lambda::EventInvokeConfig") {
			p := r["Properties"].(map[string]any)
			configs[flat(p["FunctionName"])] = p
		}
		if len(configs) != 2 {
			t.Errorf("%d asynchronous invoke configs, want one for each function", len(configs))
		}
		for _, name := range []string{"kms-rotator", "kms-rotator-sweep"} {
			fnID, _ := lambdaFunction(t, j, name)
			want := map[string]any{
				"FunctionName":             map[string]any{"Ref": fnID},
				"Qualifier":                "$LATEST",
				"MaximumEventAgeInSeconds": age,
				"MaximumRetryAttempts":     0.0,
				"DestinationConfig":        map[string]any{"OnFailure": map[string]any{"Destination": map[string]any{"Fn::GetAtt": []any{queueID, "Arn"}}}},
			}
			if cfg := configs["${"+fnID+"}"]; !reflect.DeepEqual(cfg, want) {
				t.Errorf("%s: asynchronous invoke config\n %v\nwant %v", name, cfg, want)
			}
		}
		busID, _ := eventBus(t, j, "kms-rotator-incidents")
		var targets []any
		for _, r := range resources(t, j, "AWS::Events::Rule") {
			if p := r["Properties"].(map[string]any); flat(p["EventBusName"]) == "${"+busID+"}" {
				targets = p["Targets"].([]any)
			}
		}
		if len(targets) != 1 {
			t.Fatalf("incident rule targets %v", targets)
		}
		target := targets[0].(map[string]any)
		if got := target["RetryPolicy"]; !reflect.DeepEqual(got, map[string]any{"MaximumEventAgeInSeconds": age, "MaximumRetryAttempts": 185.0}) {
			t.Errorf("incident target retry policy %v, want %v s and EventBridge's 185 retries", got, age)
		}
		if flat(target["DeadLetterConfig"].(map[string]any)["Arn"]) != "${"+queueID+".Arn}" {
			t.Errorf("incident target dead-letter queue %v", target["DeadLetterConfig"])
		}
	}
	t.Run("the default: 15 minutes", func(t *testing.T) {
		_, _, j := synth(t)
		check(t, j, 900)
	})
	t.Run("organization mode too", func(t *testing.T) {
		_, _, j := orgSynth(t)
		check(t, j, 900)
	})
	t.Run("-c incidentMaxAge=2m", func(t *testing.T) {
		app := newApp(t, map[string]any{ctxIncidentMaxAge: "2m"})
		if err := addStacks(app, fakeCode(t)); err != nil {
			t.Fatal(err)
		}
		check(t, templateOf(t, app), 120)
	})
}

// TestLedgerUnavailableAlarm: KeysFailed with Reason=ledger-unavailable,
// summed over every mode, pages at the first key, and is on the dashboard
// of both modes.
func TestLedgerUnavailableAlarm(t *testing.T) {
	// The stack's copy of the reason, pinned to the function's.
	if reasonLedgerUnavailable != string(rotator.ReasonLedgerUnavailable) {
		t.Fatalf("the alarm watches reason %q, the function emits %q", reasonLedgerUnavailable, rotator.ReasonLedgerUnavailable)
	}
	for _, mode := range []struct {
		name string
		j    map[string]any
	}{{"single account", func() map[string]any { _, _, j := synth(t); return j }()}, {"organization", func() map[string]any { _, _, j := orgSynth(t); return j }()}} {
		t.Run(mode.name, func(t *testing.T) {
			topicID, _ := only(t, mode.j, "AWS::SNS::Topic")
			var id string
			var a map[string]any
			for rid, r := range resources(t, mode.j, "AWS::CloudWatch::Alarm") {
				if p := r["Properties"].(map[string]any); p["AlarmName"] == "kms-rotator-ledger-unavailable" {
					id, a = rid, p
				}
			}
			if a == nil {
				t.Fatal("no alarm kms-rotator-ledger-unavailable")
			}
			topic := []any{map[string]any{"Ref": topicID}}
			if !reflect.DeepEqual(a["AlarmActions"], topic) || !reflect.DeepEqual(a["OKActions"], topic) {
				t.Errorf("actions %v, OK actions %v: want the topic for both", a["AlarmActions"], a["OKActions"])
			}
			if a["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" || a["Threshold"] != 1.0 || a["EvaluationPeriods"] != 1.0 ||
				a["DatapointsToAlarm"] != 1.0 || a["TreatMissingData"] != "notBreaching" {
				t.Errorf("alarm %v: want ≥ 1 in one period, missing data not breaching", a)
			}
			var expr string
			var gotModes []string
			for _, m := range a["Metrics"].([]any) {
				m := m.(map[string]any)
				if e, ok := m["Expression"].(string); ok {
					expr = e
					continue
				}
				st := m["MetricStat"].(map[string]any)
				metric := st["Metric"].(map[string]any)
				dims := metric["Dimensions"].([]any)
				if metric["Namespace"] != "KMSRotator" || metric["MetricName"] != settings.MetricKeysFailed || st["Stat"] != "Sum" || st["Period"] != 300.0 ||
					len(dims) != 2 || dims[0].(map[string]any)["Name"] != settings.DimMode ||
					!reflect.DeepEqual(dims[1], map[string]any{"Name": settings.DimReason, "Value": "ledger-unavailable"}) {
					t.Errorf("metric %v", m)
					continue
				}
				gotModes = append(gotModes, dims[0].(map[string]any)["Value"].(string))
			}
			sort.Strings(gotModes)
			if expr != "SUM(METRICS())" || !reflect.DeepEqual(gotModes, []string{"incident", "plan", "report", "scheduled"}) {
				t.Errorf("expression %q over modes %v", expr, gotModes)
			}
			_, d := only(t, mode.j, "AWS::CloudWatch::Dashboard")
			body := flat(d["DashboardBody"])
			if !strings.Contains(body, "Rotation ledger unavailable") || !strings.Contains(body, fmt.Sprintf(`"annotations":{"alarms":["${%s.Arn}"]}`, id)) {
				t.Errorf("the dashboard has no graph of the ledger-unavailable alarm: %.400s", body)
			}
		})
	}
}

// templateOf is the template of app's single stack, as JSON.
func templateOf(t *testing.T, app awscdk.App) map[string]any {
	t.Helper()
	stack := app.Node().FindChild(jsii.String(defaultStackName)).(awscdk.Stack)
	var j map[string]any
	if err := json.Unmarshal(mustJSON(assertions.Template_FromStack(stack, nil).ToJSON()), &j); err != nil {
		t.Fatal(err)
	}
	return j
}
