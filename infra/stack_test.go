package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/kms-rotator/kms-rotator/lambda/rotator"
)

// The stack is synthesized once and shared by every test: starting jsii and
// synthesizing cost seconds, reading the template costs nothing.
var synthOnce struct {
	sync.Once
	stack    awscdk.Stack
	template assertions.Template
	json     map[string]any
	err      error
}

const testAlarmEmail = "secops@example.com"

// fakeCode stands in for the Go build of ./lambda (covered by bundle_test.go
// and by `make synth`), so the tests do not compile the function.
func fakeCode(t *testing.T) func() awslambda.Code {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bootstrap"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return func() awslambda.Code { return awslambda.Code_FromAsset(jsii.String(dir), nil) }
}

// synth returns the template of a stack with the cdk.json defaults plus an
// alarm e-mail, with the cdk-nag checks applied as in main.
func synth(t *testing.T) (awscdk.Stack, assertions.Template, map[string]any) {
	t.Helper()
	synthOnce.Do(func() {
		app := awscdk.NewApp(&awscdk.AppProps{Context: &map[string]any{
			ctxAlarmEmail: testAlarmEmail,
		}})
		if synthOnce.err = addStacks(app, fakeCode(t)); synthOnce.err != nil {
			return
		}
		synthOnce.stack = app.Node().FindChild(jsii.String("KmsRotator")).(awscdk.Stack)
		synthOnce.template = assertions.Template_FromStack(synthOnce.stack, nil)
		synthOnce.err = json.Unmarshal(mustJSON(synthOnce.template.ToJSON()), &synthOnce.json)
	})
	if synthOnce.err != nil {
		t.Fatal(synthOnce.err)
	}
	return synthOnce.stack, synthOnce.template, synthOnce.json
}

func mustJSON(v any) []byte {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return raw
}

// resources returns the template's resources of one type by logical ID.
func resources(t *testing.T, tmpl map[string]any, typ string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for id, r := range tmpl["Resources"].(map[string]any) {
		r := r.(map[string]any)
		if r["Type"] == typ {
			out[id] = r
		}
	}
	return out
}

// only returns the single resource of a type.
func only(t *testing.T, tmpl map[string]any, typ string) (string, map[string]any) {
	t.Helper()
	rs := resources(t, tmpl, typ)
	if len(rs) != 1 {
		t.Fatalf("%d resources of type %s, want 1", len(rs), typ)
	}
	for id, r := range rs {
		return id, r["Properties"].(map[string]any)
	}
	panic("unreachable")
}

// flat renders a CloudFormation value as one string: Ref X → ${X},
// Fn::GetAtt [X, A] → ${X.A}, Fn::Join concatenates. It makes resources
// and dashboard bodies comparable with plain strings.
func flat(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case map[string]any:
		if r, ok := v["Ref"]; ok {
			return "${" + r.(string) + "}"
		}
		if g, ok := v["Fn::GetAtt"]; ok {
			a := g.([]any)
			return "${" + a[0].(string) + "." + a[1].(string) + "}"
		}
		if j, ok := v["Fn::Join"]; ok {
			a := j.([]any)
			var parts []string
			for _, p := range a[1].([]any) {
				parts = append(parts, flat(p))
			}
			return strings.Join(parts, a[0].(string))
		}
	}
	return fmt.Sprint(v)
}

func flatList(v any) []string {
	if l, ok := v.([]any); ok {
		out := make([]string, len(l))
		for i, x := range l {
			out[i] = flat(x)
		}
		return out
	}
	return []string{flat(v)}
}

func TestFunction(t *testing.T) {
	_, tmpl, j := synth(t)
	_, logGroup := only(t, j, "AWS::Logs::LogGroup")
	logGroupID, _ := only(t, j, "AWS::Logs::LogGroup")
	queueID, _ := only(t, j, "AWS::SQS::Queue")
	_, fn := only(t, j, "AWS::Lambda::Function")
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"runtime is provided.al2023", fn["Runtime"], "provided.al2023"},
		{"architecture is arm64", fn["Architectures"], []any{"arm64"}},
		{"handler is bootstrap", fn["Handler"], "bootstrap"},
		{"memory is 256 MB", fn["MemorySize"], 256.0},
		{"timeout is 10 minutes", fn["Timeout"], 600.0},
		{"name is explicit", fn["FunctionName"], "kms-rotator"},
		{"logs are JSON into its own log group", fn["LoggingConfig"], map[string]any{
			"LogFormat": "JSON", "LogGroup": map[string]any{"Ref": logGroupID}}},
		{"recursive loops are terminated", fn["RecursiveLoop"], "Terminate"},
		{"no reserved concurrency, so an incident never queues behind a sweep", fn["ReservedConcurrentExecutions"], nil},
		{"log group is named after the function", logGroup["LogGroupName"], "/aws/lambda/kms-rotator"},
		{"logs are kept a year", logGroup["RetentionInDays"], 365.0},
		{"environment is docs/design.md's configuration with its defaults", fn["Environment"], map[string]any{"Variables": map[string]any{
			"ROTATOR_TAG_KEY": "kms-rotator", "ROTATOR_TAG_VALUE": "enabled", "ROTATOR_INTERVAL_DAYS": "90",
			"ROTATOR_ON_DEMAND_LIMIT": "25", "ROTATOR_RESERVE": "2", "ROTATOR_ROTATE_RPS": "4",
			"ROTATOR_CONCURRENCY": "16", "ROTATOR_DRY_RUN": "false", "ROTATOR_METRICS_NAMESPACE": "KMSRotator",
			"ROTATOR_CONTINUATION_MAX": "8",
		}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Errorf("got %#v, want %#v", tc.got, tc.want)
			}
		})
	}
	t.Run("log group survives stack deletion", func(t *testing.T) {
		tmpl.HasResource(jsii.String("AWS::Logs::LogGroup"), map[string]any{"DeletionPolicy": "Retain"})
	})
	t.Run("async failures are not retried and go to the queue", func(t *testing.T) {
		tmpl.HasResourceProperties(jsii.String("AWS::Lambda::EventInvokeConfig"), map[string]any{
			"MaximumRetryAttempts": 0,
			"Qualifier":            "$LATEST",
			"DestinationConfig": map[string]any{"OnFailure": map[string]any{
				"Destination": map[string]any{"Fn::GetAtt": []any{queueID, "Arn"}}}},
		})
	})
}

func TestFailureQueue(t *testing.T) {
	_, tmpl, j := synth(t)
	queueID, queue := only(t, j, "AWS::SQS::Queue")
	t.Run("is encrypted with SQS-managed keys", func(t *testing.T) {
		if queue["SqsManagedSseEnabled"] != true {
			t.Errorf("queue properties %v", queue)
		}
	})
	t.Run("denies requests without TLS", func(t *testing.T) {
		tmpl.HasResourceProperties(jsii.String("AWS::SQS::QueuePolicy"), map[string]any{
			"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{map[string]any{
				"Effect":    "Deny",
				"Action":    "sqs:*",
				"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
				"Principal": map[string]any{"AWS": "*"},
				"Resource":  map[string]any{"Fn::GetAtt": []any{queueID, "Arn"}},
			}})},
		})
	})
}

func TestRules(t *testing.T) {
	_, _, j := synth(t)
	fnID, _ := only(t, j, "AWS::Lambda::Function")
	queueID, _ := only(t, j, "AWS::SQS::Queue")
	rules := resources(t, j, "AWS::Events::Rule")
	var schedule, incident map[string]any
	for _, r := range rules {
		p := r["Properties"].(map[string]any)
		if _, ok := p["ScheduleExpression"]; ok {
			schedule = p
		} else {
			incident = p
		}
	}
	if len(rules) != 2 || schedule == nil || incident == nil {
		t.Fatalf("want one schedule rule and one event-pattern rule, got %v", rules)
	}
	wantTarget := func(t *testing.T, p map[string]any) {
		t.Helper()
		targets := p["Targets"].([]any)
		if len(targets) != 1 {
			t.Fatalf("%d targets", len(targets))
		}
		tg := targets[0].(map[string]any)
		if got := flat(tg["Arn"]); got != "${"+fnID+".Arn}" {
			t.Errorf("target %s, want the function", got)
		}
		if got := flat(tg["DeadLetterConfig"].(map[string]any)["Arn"]); got != "${"+queueID+".Arn}" {
			t.Errorf("dead-letter queue %s, want the failure queue", got)
		}
	}
	t.Run("schedule is daily at 03:00 UTC and targets the function", func(t *testing.T) {
		if schedule["ScheduleExpression"] != "cron(0 3 * * ? *)" || schedule["State"] != "ENABLED" {
			t.Errorf("schedule %v", schedule)
		}
		wantTarget(t, schedule)
	})
	t.Run("incident rule matches SOAR events on the default bus and targets the function", func(t *testing.T) {
		want := map[string]any{"source": []any{"kms-rotator"}, "detail-type": []any{"Rotate KMS Keys"}}
		if !reflect.DeepEqual(incident["EventPattern"], want) {
			t.Errorf("pattern %v, want %v", incident["EventPattern"], want)
		}
		if _, ok := incident["EventBusName"]; ok {
			t.Errorf("rule on bus %v, want the default bus", incident["EventBusName"])
		}
		wantTarget(t, incident)
	})
	t.Run("EventBridge may invoke the function from both rules only", func(t *testing.T) {
		perms := resources(t, j, "AWS::Lambda::Permission")
		if len(perms) != 2 {
			t.Fatalf("%d Lambda permissions, want 2", len(perms))
		}
		for _, p := range perms {
			p := p["Properties"].(map[string]any)
			if p["Principal"] != "events.amazonaws.com" || p["Action"] != "lambda:InvokeFunction" || p["SourceArn"] == nil {
				t.Errorf("permission %v", p)
			}
		}
	})
}

// statement is one IAM statement in the flattened form of the template.
type statement struct {
	Sid       string
	Actions   []string
	Resources []string
	Condition string
}

// TestRoleHasExactlyThesePermissions lists the full set of statements: a new
// permission, resource or condition fails here until it is reviewed.
func TestRoleHasExactlyThesePermissions(t *testing.T) {
	_, tmpl, j := synth(t)
	queueID, _ := only(t, j, "AWS::SQS::Queue")
	const keys = "arn:${AWS::Partition}:kms:*:${AWS::AccountId}:key/*"
	want := []statement{
		{"RotateOptedInSymmetricKeys", []string{"kms:RotateKeyOnDemand"}, []string{keys},
			`{"StringEquals":{"aws:ResourceTag/kms-rotator":"enabled","kms:KeySpec":"SYMMETRIC_DEFAULT"}}`},
		{"ReadRotationStateOfOptedInKeys", []string{"kms:GetKeyRotationStatus", "kms:ListKeyRotations"}, []string{keys},
			`{"StringEquals":{"aws:ResourceTag/kms-rotator":"enabled"}}`},
		{"DescribeAnyKeyOfTheAccount", []string{"kms:DescribeKey", "kms:ListResourceTags"}, []string{keys}, ""},
		{"ListAliasesAndTaggedKeys", []string{"kms:ListAliases", "tag:GetResources"}, []string{"*"}, ""},
		{"WriteOwnLogGroup", []string{"logs:CreateLogStream", "logs:PutLogEvents"},
			[]string{"arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/kms-rotator:*"}, ""},
		{"ContinueOwnSweep", []string{"lambda:InvokeFunction"},
			[]string{"arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:kms-rotator"}, ""},
		{"SendFailedInvocationsToOwnQueue", []string{"sqs:SendMessage"}, []string{"${" + queueID + ".Arn}"}, ""},
		{"AnnounceRunResultsOnDefaultBus", []string{"events:PutEvents"},
			[]string{"arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"},
			`{"ForAllValues:StringEquals":{"events:detail-type":"` + rotator.ResultEventDetailType + `","events:source":"` + rotator.ResultEventSource +
				`"},"Null":{"events:detail-type":"false","events:source":"false"}}`},
	}
	tmpl.ResourceCountIs(jsii.String("AWS::IAM::Role"), jsii.Number(1))
	t.Run("no policy beyond the role's inline policy", func(t *testing.T) {
		tmpl.ResourceCountIs(jsii.String("AWS::IAM::Policy"), jsii.Number(0))
		tmpl.ResourceCountIs(jsii.String("AWS::IAM::ManagedPolicy"), jsii.Number(0))
	})
	_, role := only(t, j, "AWS::IAM::Role")
	t.Run("only Lambda assumes the role", func(t *testing.T) {
		want := `{"Statement":[{"Action":"sts:AssumeRole","Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"}}],"Version":"2012-10-17"}`
		if got := string(mustJSON(role["AssumeRolePolicyDocument"])); got != want {
			t.Errorf("trust policy %s", got)
		}
		if role["ManagedPolicyArns"] != nil {
			t.Errorf("managed policies %v", role["ManagedPolicyArns"])
		}
	})
	policies := role["Policies"].([]any)
	if len(policies) != 1 {
		t.Fatalf("%d inline policies, want 1", len(policies))
	}
	var got []statement
	for _, s := range policies[0].(map[string]any)["PolicyDocument"].(map[string]any)["Statement"].([]any) {
		s := s.(map[string]any)
		if s["Effect"] != "Allow" {
			t.Errorf("statement %v: Effect %v", s["Sid"], s["Effect"])
		}
		st := statement{Sid: fmt.Sprint(s["Sid"]), Actions: flatList(s["Action"]), Resources: flatList(s["Resource"])}
		if c, ok := s["Condition"]; ok {
			st.Condition = string(mustJSON(c))
		}
		sort.Strings(st.Actions)
		got = append(got, st)
	}
	sort.Slice(got, func(a, b int) bool { return got[a].Sid < got[b].Sid })
	sort.Slice(want, func(a, b int) bool { return want[a].Sid < want[b].Sid })
	if len(got) != len(want) {
		t.Fatalf("%d statements, want %d:\n%+v", len(got), len(want), got)
	}
	for i := range want {
		t.Run(want[i].Sid+" is as reviewed", func(t *testing.T) {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("\n got %+v\nwant %+v", got[i], want[i])
			}
			for _, a := range got[i].Actions {
				if strings.Contains(a, "*") {
					t.Errorf("wildcard action %s", a)
				}
			}
		})
	}
}

func TestKeyPolicyStatementsOutputNameTheRole(t *testing.T) {
	_, _, j := synth(t)
	roleID, _ := only(t, j, "AWS::IAM::Role")
	out := flat(j["Outputs"].(map[string]any)["KeyPolicyStatements"].(map[string]any)["Value"])
	for _, want := range []string{`"AWS":"${` + roleID + `.Arn}"`, `"kms:RotateKeyOnDemand"`, `"aws:ResourceTag/kms-rotator":"enabled"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output %s lacks %s", out, want)
		}
	}
}

func TestAlarms(t *testing.T) {
	_, tmpl, j := synth(t)
	topicID, _ := only(t, j, "AWS::SNS::Topic")
	fnID, _ := only(t, j, "AWS::Lambda::Function")
	alarms := map[string]map[string]any{}
	for _, r := range resources(t, j, "AWS::CloudWatch::Alarm") {
		p := r["Properties"].(map[string]any)
		alarms[p["AlarmName"].(string)] = p
	}
	// mathAlarm describes an alarm on SUM(METRICS()) of one EMF metric over modes.
	type mathAlarm struct {
		metric, op, missing string
		threshold, periods  float64
		period              float64
		modes               []string
	}
	all := []string{"incident", "plan", "report", "scheduled"}
	tests := map[string]mathAlarm{
		"kms-rotator-keys-failed":      {"KeysFailed", "GreaterThanOrEqualToThreshold", "notBreaching", 1, 1, 300, all},
		"kms-rotator-silence":          {"RunsCompleted", "LessThanThreshold", "breaching", 1, 2, 86400, []string{"plan", "scheduled"}},
		"kms-rotator-budget-exhausted": {"KeysBudgetExhausted", "GreaterThanThreshold", "notBreaching", 0, 1, 3600, all},
	}
	if len(alarms) != 4 {
		t.Fatalf("%d alarms, want 4: %v", len(alarms), alarms)
	}
	for name, w := range tests {
		t.Run(name+" sums "+w.metric+" over modes", func(t *testing.T) {
			a := alarms[name]
			if a == nil {
				t.Fatalf("no alarm %s", name)
			}
			if a["ComparisonOperator"] != w.op || a["Threshold"] != w.threshold || a["EvaluationPeriods"] != w.periods ||
				a["DatapointsToAlarm"] != w.periods || a["TreatMissingData"] != w.missing {
				t.Errorf("alarm %v", a)
			}
			var gotModes []string
			var expr string
			for _, m := range a["Metrics"].([]any) {
				m := m.(map[string]any)
				if e, ok := m["Expression"]; ok {
					expr = e.(string)
					continue
				}
				st := m["MetricStat"].(map[string]any)
				metric := st["Metric"].(map[string]any)
				if metric["Namespace"] != "KMSRotator" || metric["MetricName"] != w.metric || st["Stat"] != "Sum" || st["Period"] != w.period {
					t.Errorf("metric %v", m)
				}
				dims := metric["Dimensions"].([]any)
				gotModes = append(gotModes, dims[0].(map[string]any)["Value"].(string))
			}
			sort.Strings(gotModes)
			if expr != "SUM(METRICS())" || !reflect.DeepEqual(gotModes, w.modes) {
				t.Errorf("expression %q over modes %v, want SUM(METRICS()) over %v", expr, gotModes, w.modes)
			}
		})
	}
	t.Run("function errors alarm on the Lambda Errors metric", func(t *testing.T) {
		a := alarms["kms-rotator-function-errors"]
		if a == nil || a["MetricName"] != "Errors" || a["Namespace"] != "AWS/Lambda" || a["Threshold"] != 1.0 ||
			a["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" || a["Statistic"] != "Sum" {
			t.Fatalf("alarm %v", a)
		}
		if got := flat(a["Dimensions"].([]any)[0].(map[string]any)["Value"]); got != "${"+fnID+"}" {
			t.Errorf("dimension %s, want the function", got)
		}
	})
	t.Run("every alarm notifies the topic", func(t *testing.T) {
		for name, a := range alarms {
			if got := flatList(a["AlarmActions"]); !reflect.DeepEqual(got, []string{"${" + topicID + "}"}) {
				t.Errorf("%s actions %v", name, got)
			}
		}
	})
	t.Run("the alarm e-mail is subscribed", func(t *testing.T) {
		tmpl.HasResourceProperties(jsii.String("AWS::SNS::Subscription"), map[string]any{
			"Protocol": "email", "Endpoint": testAlarmEmail, "TopicArn": map[string]any{"Ref": topicID},
		})
	})
	t.Run("the topic requires TLS", func(t *testing.T) {
		tmpl.HasResourceProperties(jsii.String("AWS::SNS::TopicPolicy"), map[string]any{
			"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
				assertions.Match_ObjectLike(&map[string]any{"Effect": "Deny",
					"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}}}),
			})},
		})
	})
}

func TestDashboard(t *testing.T) {
	_, _, j := synth(t)
	_, d := only(t, j, "AWS::CloudWatch::Dashboard")
	body := flat(d["DashboardBody"])
	var widgets struct {
		Widgets []map[string]any `json:"widgets"`
	}
	if err := json.Unmarshal([]byte(body), &widgets); err != nil {
		t.Fatalf("dashboard body is not JSON: %v\n%s", err, body)
	}
	for _, want := range []string{
		`SEARCH('{KMSRotator,Mode} MetricName=\"KeysRotated\"', 'Sum', 3600)`,
		`SEARCH('{KMSRotator,Mode} MetricName=\"KeysCandidate\"', 'Sum', 3600)`,
		`SEARCH('{KMSRotator,Mode} MetricName=\"KeysFailed\"', 'Sum', 3600)`,
		`SEARCH('{KMSRotator,Mode} MetricName=\"KeysDeferred\"', 'Sum', 3600)`,
		`SEARCH('{KMSRotator,Mode,Reason} MetricName=\"KeysSkipped\"', 'Sum', 3600)`,
		`SEARCH('{KMSRotator,Mode,Reason} MetricName=\"KeysFailed\"', 'Sum', 3600)`,
		`SEARCH('{KMSRotator,Mode} MetricName=\"KeysBudgetLow\"', 'Maximum', 3600)`,
		`SEARCH('{KMSRotator,Mode} MetricName=\"KeysBudgetExhausted\"', 'Maximum', 3600)`,
		`SEARCH('{KMSRotator,Mode} MetricName=\"RunDuration\"', 'Maximum', 3600)`,
		`SEARCH('{KMSRotator,Mode} MetricName=\"RunsCompleted\"', 'Sum', 3600)`,
		`["KMSRotator","MinOnDemandRemaining","Mode","scheduled"`,
		`["AWS/Lambda","Errors","FunctionName"`,
		`["AWS/Lambda","Throttles","FunctionName"`,
		`fields @timestamp, keyId, alias, outcome, reason, incidentReason`,
		`"type":"alarm"`,
	} {
		t.Run("shows "+want, func(t *testing.T) {
			if !strings.Contains(body, want) {
				t.Errorf("dashboard body lacks %s", want)
			}
		})
	}
	// The function's own metric names (lambda/rotator), so a renamed or new
	// metric cannot be missing from the dashboard unnoticed.
	for _, name := range []string{rotator.MetricKeysCandidate, rotator.MetricKeysRotated, rotator.MetricKeysWouldRotate,
		rotator.MetricKeysSkipped, rotator.MetricKeysFailed, rotator.MetricKeysDeferred, rotator.MetricKeysBudgetLow,
		rotator.MetricKeysBudgetExhausted, rotator.MetricMinOnDemandRemaining, rotator.MetricRunDuration,
		rotator.MetricRunsCompleted, rotator.MetricRunsFailed, rotator.MetricContinuations} {
		t.Run("shows the function's metric "+name, func(t *testing.T) {
			if !strings.Contains(body, `\"`+name+`\"`) && !strings.Contains(body, `"`+name+`"`) {
				t.Errorf("dashboard lacks %s", name)
			}
		})
	}
	t.Run("the log widget reads the function's log group", func(t *testing.T) {
		var found bool
		for _, w := range widgets.Widgets {
			if w["type"] == "log" {
				found = strings.Contains(fmt.Sprint(w["properties"]), "SOURCE '/aws/lambda/kms-rotator'")
			}
		}
		if !found {
			t.Errorf("no log widget on /aws/lambda/kms-rotator in %s", body)
		}
	})
}

// TestNagReportsNoError applies AwsSolutionsChecks (as main does) and expects
// no unsuppressed error or warning.
func TestNagReportsNoError(t *testing.T) {
	stack, _, _ := synth(t)
	ann := assertions.Annotations_FromStack(stack)
	for _, level := range []string{"error", "warning"} {
		t.Run("no unsuppressed AwsSolutions "+level, func(t *testing.T) {
			find := ann.FindError
			if level == "warning" {
				find = ann.FindWarning
			}
			found := find(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*")))
			for _, f := range *found {
				t.Errorf("unsuppressed finding %s", mustJSON(f))
			}
		})
	}
}

func TestRegionsContextGivesOneStackPerRegion(t *testing.T) {
	app := awscdk.NewApp(&awscdk.AppProps{Context: &map[string]any{ctxRegions: "us-east-1, eu-west-1"}})
	if err := addStacks(app, fakeCode(t)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range *app.Node().Children() {
		if s, ok := c.(awscdk.Stack); ok {
			got = append(got, *s.StackName()+"@"+*s.Region())
		}
	}
	want := []string{"KmsRotator-us-east-1@us-east-1", "KmsRotator-eu-west-1@eu-west-1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stacks %v, want %v", got, want)
	}
}

func TestBadContextFailsTheSynth(t *testing.T) {
	app := awscdk.NewApp(&awscdk.AppProps{Context: &map[string]any{ctxReserve: "25"}})
	err := addStacks(app, fakeCode(t))
	if err == nil || !strings.Contains(err.Error(), "-c reserve=25") {
		t.Fatalf("err = %v, want one naming -c reserve=25", err)
	}
}

// TestNagSuppressionsAreTheReviewedOnes lists every cdk-nag suppression: a
// new one fails here until its reason is reviewed.
func TestNagSuppressionsAreTheReviewedOnes(t *testing.T) {
	_, _, j := synth(t)
	var got []string
	for id, r := range j["Resources"].(map[string]any) {
		md, _ := r.(map[string]any)["Metadata"].(map[string]any)
		nag, _ := md["cdk_nag"].(map[string]any)
		rules, _ := nag["rules_to_suppress"].([]any)
		for _, rule := range rules {
			rule := rule.(map[string]any)
			reason, _ := rule["reason"].(string)
			if len(reason) < 80 {
				t.Errorf("%s %v: reason %q is too short to explain anything", id, rule["id"], reason)
			}
			got = append(got, r.(map[string]any)["Type"].(string)+" "+rule["id"].(string)+" "+fmt.Sprint(rule["applies_to"]))
		}
	}
	sort.Strings(got)
	want := []string{
		"AWS::IAM::Role AwsSolutions-IAM5 [Resource::*]",
		"AWS::IAM::Role AwsSolutions-IAM5 [Resource::arn:<AWS::Partition>:kms:*:<AWS::AccountId>:key/*]",
		"AWS::IAM::Role AwsSolutions-IAM5 [Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/lambda/kms-rotator:*]",
		"AWS::SQS::Queue AwsSolutions-SQS3 <nil>",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("suppressions\n got %q\nwant %q", got, want)
	}
}
