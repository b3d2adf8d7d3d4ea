package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// The stack is synthesized once and shared by every test: starting jsii and
// synthesizing cost seconds, reading the template costs nothing.
var synthOnce struct {
	sync.Once
	app      awscdk.App
	stack    awscdk.Stack
	template assertions.Template
	json     map[string]any
	err      error
}

const testAlarmEmail = "secops@example.com"

// newApp is the app `cdk synth` runs: cdk.json's context (the settings'
// defaults and the feature flags) with ctx over it.
func newApp(t *testing.T, ctx map[string]any) awscdk.App {
	t.Helper()
	merged := cdkJSONContext(t)
	maps.Copy(merged, ctx)
	return awscdk.NewApp(&awscdk.AppProps{Context: &merged})
}

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
		app := newApp(t, map[string]any{ctxAlarmEmail: testAlarmEmail})
		synthOnce.app = app
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

// eventBus returns the event bus of this name.
func eventBus(t *testing.T, tmpl map[string]any, name string) (string, map[string]any) {
	t.Helper()
	for id, r := range resources(t, tmpl, "AWS::Events::EventBus") {
		if p := r["Properties"].(map[string]any); p["Name"] == name {
			return id, p
		}
	}
	t.Fatalf("no event bus %s", name)
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
		if sel, ok := v["Fn::Select"]; ok {
			a := sel.([]any)
			return fmt.Sprintf("${Select %v %s}", a[0], flat(a[1]))
		}
		if sp, ok := v["Fn::Split"]; ok {
			a := sp.([]any)
			return fmt.Sprintf("Split(%s, %s)", a[0], flat(a[1]))
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

// logGroupName is the function's log group name as flat renders it: the
// prefix and the stack's UUID (the last part of AWS::StackId).
const logGroupName = `/aws/lambda/kms-rotator/${Select 2 Split(/, ${AWS::StackId})}`

func TestFunction(t *testing.T) {
	_, tmpl, j := synth(t)
	_, logGroup := only(t, j, "AWS::Logs::LogGroup")
	logGroupID, _ := only(t, j, "AWS::Logs::LogGroup")
	queueID, _ := only(t, j, "AWS::SQS::Queue")
	_, fn := lambdaFunction(t, j, "kms-rotator")
	tableID, _ := only(t, j, "AWS::DynamoDB::Table")
	env := map[string]any{}
	for k, v := range settings.Environment(DefaultSettings().Function) {
		env[k] = v
	}
	// The ledger table's name, not the placeholder the settings were
	// validated with, and the results bus, not the default bus.
	env[settings.EnvLedgerTable] = map[string]any{"Ref": tableID}
	resultsID, _ := eventBus(t, j, "kms-rotator-results")
	env[settings.EnvResultBus] = map[string]any{"Ref": resultsID}
	// The evidence bucket the stack creates, not the function's default
	// (none).
	bucketID, _ := only(t, j, "AWS::S3::Bucket")
	env[settings.EnvEvidenceBucket] = map[string]any{"Ref": bucketID}
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
		// A retained group with a fixed name would make `cdk deploy` after
		// `cdk destroy` fail: the name ends with the stack's own ID.
		{"log group is named after the function and the stack's ID", flat(logGroup["LogGroupName"]), logGroupName},
		{"logs are kept a year", logGroup["RetentionInDays"], 365.0},
		{"environment is every ROTATOR_* setting with its default", fn["Environment"], map[string]any{"Variables": env}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Errorf("got %#v, want %#v", tc.got, tc.want)
			}
		})
	}
	// The defaults of docs/design.md "Configuration" as the deployed function
	// sees them (a variable without a context key is set at its default too,
	// so this lists the stack's keys, not every variable).
	t.Run("environment spells the defaults of docs/design.md", func(t *testing.T) {
		for k, v := range map[string]string{
			"ROTATOR_TAG_KEY": "kms-rotator", "ROTATOR_TAG_VALUE": "enabled", "ROTATOR_INTERVAL_DAYS": "90",
			"ROTATOR_ON_DEMAND_LIMIT": "25", "ROTATOR_RESERVE": "2", "ROTATOR_ROTATE_RPS": "4",
			"ROTATOR_CONCURRENCY": "16", "ROTATOR_DRY_RUN": "false", "ROTATOR_METRICS_NAMESPACE": "KMSRotator",
			"ROTATOR_CONTINUATION_MAX": "8", "ROTATOR_INCIDENT_COOLDOWN": "1h0m0s", "ROTATOR_CONFIRM_WAIT": "5s",
			"ROTATOR_CALL_TIMEOUT": "10s", "ROTATOR_MIN_INTERVAL_DAYS": "30", "ROTATOR_AUTO_ROTATION_GRACE_DAYS": "7",
			"ROTATOR_INCIDENT_WAIT": "1m30s", "ROTATOR_STUCK_AFTER": "24h0m0s", "ROTATOR_SKIP_IDLE": "false",
		} {
			if env[k] != v {
				t.Errorf("%s = %v, want %s", k, env[k], v)
			}
		}
	})
	t.Run("the function waits for an incident's new material, flags stuck rotations after a day and rotates idle keys", func(t *testing.T) {
		tmpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
			"Environment": map[string]any{"Variables": assertions.Match_ObjectLike(&map[string]any{
				"ROTATOR_INCIDENT_WAIT": "1m30s", "ROTATOR_STUCK_AFTER": "24h0m0s", "ROTATOR_SKIP_IDLE": "false",
			})},
		})
	})
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

func TestSchedule(t *testing.T) {
	_, _, j := synth(t)
	fnID, _ := lambdaFunction(t, j, "kms-rotator-sweep")
	queueID, _ := only(t, j, "AWS::SQS::Queue")
	groupID, _ := only(t, j, "AWS::Scheduler::ScheduleGroup")
	group := resources(t, j, "AWS::Scheduler::ScheduleGroup")[groupID]
	_, sched := only(t, j, "AWS::Scheduler::Schedule")
	target := sched["Target"].(map[string]any)
	roleID := ""
	for id, r := range resources(t, j, "AWS::IAM::Role") {
		if strings.Contains(fmt.Sprint(r["Properties"].(map[string]any)["AssumeRolePolicyDocument"]), "scheduler.amazonaws.com") {
			roleID = id
		}
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"schedule is daily at 03:00", sched["ScheduleExpression"], "cron(0 3 * * ? *)"},
		{"in UTC by default (scheduleTimezone)", sched["ScheduleExpressionTimezone"], "UTC"},
		{"flexible time window is off", sched["FlexibleTimeWindow"], map[string]any{"Mode": "OFF"}},
		{"enabled", sched["State"], "ENABLED"},
		{"in the stack's own schedule group (its metrics are the schedule's)", flat(sched["GroupName"]), "kms-rotator"},
		{"the group is deleted with the stack (a kept group would block the next deploy)", group["DeletionPolicy"], "Delete"},
		{"targets the sweep function", flat(target["Arn"]), "${" + fnID + ".Arn}"},
		{"with the scheduler role", flat(target["RoleArn"]), "${" + roleID + ".Arn}"},
		{"no retries", target["RetryPolicy"].(map[string]any)["MaximumRetryAttempts"], 0.0},
		{"the failure queue is its dead-letter queue", flat(target["DeadLetterConfig"].(map[string]any)["Arn"]), "${" + queueID + ".Arn}"},
	}
	_ = groupID
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Errorf("got %#v, want %#v", tc.got, tc.want)
			}
		})
	}
	t.Run("the input is a payload the function decodes as a scheduled sweep", func(t *testing.T) {
		scope, err := request.ScopeFromFunctionARN("arn:aws:lambda:us-east-1:012345678912:function:kms-rotator")
		if err != nil {
			t.Fatal(err)
		}
		req, err := request.Decode([]byte(target["Input"].(string)), scope)
		if err != nil {
			t.Fatalf("the function rejects the schedule's input %s: %v", target["Input"], err)
		}
		if req.Mode != request.ModeScheduled || req.DryRun {
			t.Errorf("input %s decodes to mode %s (dry run %t), want a scheduled sweep", target["Input"], req.Mode, req.DryRun)
		}
	})
	t.Run("no legacy EventBridge schedule rule", func(t *testing.T) {
		for id, r := range resources(t, j, "AWS::Events::Rule") {
			if _, ok := r["Properties"].(map[string]any)["ScheduleExpression"]; ok {
				t.Errorf("rule %s has a ScheduleExpression", id)
			}
		}
	})
	t.Run("only the Scheduler of this account assumes the scheduler role", func(t *testing.T) {
		role := resources(t, j, "AWS::IAM::Role")[roleID]["Properties"].(map[string]any)
		want := `{"Statement":[{"Action":"sts:AssumeRole","Condition":{"StringEquals":{"aws:SourceAccount":{"Ref":"AWS::AccountId"}}},"Effect":"Allow","Principal":{"Service":"scheduler.amazonaws.com"}}],"Version":"2012-10-17"}`
		if got := string(mustJSON(role["AssumeRolePolicyDocument"])); got != want {
			t.Errorf("trust policy %s", got)
		}
		got := statements(t, role)
		wantStatements := []statement{
			{"SendUndeliveredSweepsToFailureQueue", []string{"sqs:SendMessage"}, []string{"${" + queueID + ".Arn}"}, ""},
			{"StartTheScheduledSweep", []string{"lambda:InvokeFunction"},
				[]string{"arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:kms-rotator-sweep"}, ""},
		}
		if !reflect.DeepEqual(got, wantStatements) {
			t.Errorf("\n got %+v\nwant %+v", got, wantStatements)
		}
	})
}

func TestIncidentChannel(t *testing.T) {
	_, _, j := synth(t)
	fnID, _ := lambdaFunction(t, j, "kms-rotator")
	queueID, _ := only(t, j, "AWS::SQS::Queue")
	busID, bus := eventBus(t, j, "kms-rotator-incidents")
	var incident map[string]any
	for _, r := range resources(t, j, "AWS::Events::Rule") {
		p := r["Properties"].(map[string]any)
		if flat(p["EventBusName"]) == "${"+busID+"}" {
			if incident != nil {
				t.Fatal("two rules on the incident bus")
			}
			incident = p
		}
	}
	if incident == nil {
		t.Fatal("no rule on the incident bus")
	}
	t.Run("the bus is named by incidentBusName", func(t *testing.T) {
		if bus["Name"] != "kms-rotator-incidents" {
			t.Errorf("name %v", bus["Name"])
		}
	})
	t.Run("the bus admits the account and denies every principal outside it", func(t *testing.T) {
		doc := bus["Policy"].(map[string]any)
		var got []string
		for _, st := range doc["Statement"].([]any) {
			st := st.(map[string]any)
			got = append(got, fmt.Sprintf("%s %s %s %s %s", st["Effect"], flat(st["Principal"].(map[string]any)["AWS"]), flatList(st["Action"]),
				flatList(st["Resource"]), flat(mustString(st["Condition"]))))
		}
		const busARN = "[arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/kms-rotator-incidents]"
		want := []string{
			"Allow arn:${AWS::Partition}:iam::${AWS::AccountId}:root [events:PutEvents] " + busARN + " null",
			"Deny * [events:PutEvents] " + busARN + ` {"ArnNotLike":{"aws:PrincipalArn":{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":iam::",{"Ref":"AWS::AccountId"},":*"]]}}}`,
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("\n got %q\nwant %q", got, want)
		}
	})
	t.Run("the incident rule matches incident requests of the stack's account and targets the function", func(t *testing.T) {
		raw, _ := os.ReadFile("../events/incident-eventbridge.json")
		var sample map[string]any
		if err := json.Unmarshal(raw, &sample); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"source": []any{sample["source"]}, "detail-type": []any{sample["detail-type"]},
			"account": []any{map[string]any{"Ref": "AWS::AccountId"}},
		}
		if !reflect.DeepEqual(incident["EventPattern"], want) {
			t.Errorf("pattern %v, want %v", incident["EventPattern"], want)
		}
		targets := incident["Targets"].([]any)
		if len(targets) != 1 || flat(targets[0].(map[string]any)["Arn"]) != "${"+fnID+".Arn}" ||
			flat(targets[0].(map[string]any)["DeadLetterConfig"].(map[string]any)["Arn"]) != "${"+queueID+".Arn}" {
			t.Errorf("targets %v", targets)
		}
	})
	t.Run("no rule on the default bus matches incident requests", func(t *testing.T) {
		for id, r := range resources(t, j, "AWS::Events::Rule") {
			p := r["Properties"].(map[string]any)
			if _, custom := p["EventBusName"]; custom {
				continue
			}
			pattern, _ := p["EventPattern"].(map[string]any)
			if pattern == nil || slices.Contains(pattern["detail-type"].([]any), any(incidentDetailType)) {
				t.Errorf("rule %s on the default bus: %v", id, p)
			}
		}
	})
	t.Run("EventBridge may invoke the function from the incident rule only", func(t *testing.T) {
		perms := resources(t, j, "AWS::Lambda::Permission")
		if len(perms) != 1 {
			t.Fatalf("%d Lambda permissions, want 1", len(perms))
		}
		for _, p := range perms {
			p := p["Properties"].(map[string]any)
			if p["Principal"] != "events.amazonaws.com" || p["Action"] != "lambda:InvokeFunction" || !strings.Contains(flat(p["SourceArn"]), "IncidentRule") {
				t.Errorf("permission %v", p)
			}
		}
	})
	t.Run("the responder policy may invoke the function and request incidents on the bus, and is an output", func(t *testing.T) {
		policyID, mp := only(t, j, "AWS::IAM::ManagedPolicy")
		if _, named := mp["ManagedPolicyName"]; named {
			t.Errorf("the managed policy has a name (IAM names are global: one stack per Region would collide)")
		}
		got := statements(t, map[string]any{"Policies": []any{map[string]any{"PolicyDocument": mp["PolicyDocument"]}}})
		want := []statement{
			{"InvokeTheRotator", []string{"lambda:InvokeFunction"}, []string{"arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:kms-rotator"}, ""},
			{"RequestIncidentRotationOnIncidentBus", []string{"events:PutEvents"},
				[]string{"arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${" + busID + "}"},
				`{"ForAllValues:StringEquals":{"events:detail-type":"Rotate KMS Keys","events:source":"kms-rotator"},"Null":{"events:detail-type":"false","events:source":"false"}}`},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("\n got %+v\nwant %+v", got, want)
		}
		out := j["Outputs"].(map[string]any)["ResponderPolicyArn"].(map[string]any)
		if flat(out["Value"]) != "${"+policyID+"}" {
			t.Errorf("output %v", out)
		}
	})
}

func TestIncidentPrincipalsRestrictTheBus(t *testing.T) {
	const soar, oncall = "arn:aws:iam::012345678912:role/soar", "arn:aws:iam::012345678912:role/ir/oncall"
	app := newApp(t, map[string]any{ctxIncidentPrincipals: soar + "," + oncall, ctxIncidentBusName: "sec-incidents"})
	if err := addStacks(app, fakeCode(t)); err != nil {
		t.Fatal(err)
	}
	var j map[string]any
	stack := app.Node().FindChild(jsii.String(defaultStackName)).(awscdk.Stack)
	if err := json.Unmarshal(mustJSON(assertions.Template_FromStack(stack, nil).ToJSON()), &j); err != nil {
		t.Fatal(err)
	}
	_, bus := eventBus(t, j, "sec-incidents")
	st := bus["Policy"].(map[string]any)["Statement"].([]any)
	roles := []any{soar, oncall}
	if got := st[0].(map[string]any)["Principal"]; !reflect.DeepEqual(got, map[string]any{"AWS": roles}) {
		t.Errorf("allowed principals %v", got)
	}
	if got := st[1].(map[string]any)["Condition"]; !reflect.DeepEqual(got, map[string]any{"ArnNotLike": map[string]any{"aws:PrincipalArn": roles}}) {
		t.Errorf("deny condition %v", got)
	}
	if bus["Name"] != "sec-incidents" {
		t.Errorf("bus name %v", bus["Name"])
	}
}

func TestIncidentPrincipalsOfAnotherAccountFailTheSynth(t *testing.T) {
	t.Setenv("CDK_DEFAULT_ACCOUNT", "111122223333")
	t.Setenv("CDK_DEFAULT_REGION", "eu-west-1")
	app := newApp(t, map[string]any{ctxIncidentPrincipals: "arn:aws:iam::444455556666:role/soar"})
	err := addStacks(app, fakeCode(t))
	if err == nil || !strings.Contains(err.Error(), "-c incidentPrincipals") || !strings.Contains(err.Error(), "111122223333") {
		t.Fatalf("err = %v, want one naming incidentPrincipals and the stack's account", err)
	}
}

func TestResultNotification(t *testing.T) {
	_, tmpl, j := synth(t)
	topicID, _ := only(t, j, "AWS::SNS::Topic")
	queueID, _ := only(t, j, "AWS::SQS::Queue")
	var ruleID string
	var rule map[string]any
	for id, r := range resources(t, j, "AWS::Events::Rule") {
		p := r["Properties"].(map[string]any)
		if strings.Contains(fmt.Sprint(p["EventPattern"]), settings.ResultEventDetailType) {
			ruleID, rule = id, p
		}
	}
	if rule == nil {
		t.Fatal("no rule for result events")
	}
	busID, bus := eventBus(t, j, "kms-rotator-results")
	t.Run("the results bus denies events:PutEvents to every principal but the function's role", func(t *testing.T) {
		roleID := functionRoleID(t, j)
		doc := bus["Policy"].(map[string]any)
		want := `{"Statement":[{"Action":["events:PutEvents"],"Condition":{"ArnNotEquals":{"aws:PrincipalArn":{"Fn::GetAtt":["` + roleID + `","Arn"]}}},` +
			`"Effect":"Deny","Principal":{"AWS":"*"},"Resource":[{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":events:",{"Ref":"AWS::Region"},":",{"Ref":"AWS::AccountId"},":event-bus/kms-rotator-results"]]}],` +
			`"Sid":"OnlyTheFunctionPublishesResults"}],"Version":"2012-10-17"}`
		if got := string(mustJSON(doc)); got != want {
			t.Errorf("\n got %s\nwant %s", got, want)
		}
	})
	t.Run("the function publishes on the results bus, which is an output", func(t *testing.T) {
		_, fn := lambdaFunction(t, j, "kms-rotator")
		if got := flat(fn["Environment"].(map[string]any)["Variables"].(map[string]any)[settings.EnvResultBus]); got != "${"+busID+"}" {
			t.Errorf("%s = %s, want the results bus", settings.EnvResultBus, got)
		}
		if got := flat(j["Outputs"].(map[string]any)["ResultBusName"].(map[string]any)["Value"]); got != "${"+busID+"}" {
			t.Errorf("output ResultBusName %s", got)
		}
	})
	t.Run("is on the results bus and matches result events of incidents and of runs with failures", func(t *testing.T) {
		if got := flat(rule["EventBusName"]); got != "${"+busID+"}" {
			t.Errorf("on bus %v, want the results bus", got)
		}
		if rule["Name"] != "kms-rotator-results" {
			t.Errorf("rule name %v", rule["Name"])
		}
		want := map[string]any{
			"source": []any{settings.ResultEventSource}, "detail-type": []any{settings.ResultEventDetailType},
			"account": []any{map[string]any{"Ref": "AWS::AccountId"}},
			"detail": map[string]any{"$or": []any{
				map[string]any{"mode": []any{"incident"}},
				map[string]any{"summary": map[string]any{"failed": []any{map[string]any{"numeric": []any{">", 0.0}}}}},
			}},
		}
		if !reflect.DeepEqual(rule["EventPattern"], want) {
			t.Errorf("pattern %v\nwant %v", rule["EventPattern"], want)
		}
	})
	target := rule["Targets"].([]any)[0].(map[string]any)
	t.Run("sends a readable message to the alarm topic, undeliverable ones to the failure queue", func(t *testing.T) {
		if flat(target["Arn"]) != "${"+topicID+"}" || flat(target["DeadLetterConfig"].(map[string]any)["Arn"]) != "${"+queueID+".Arn}" {
			t.Errorf("target %v", target)
		}
		tr := target["InputTransformer"].(map[string]any)
		tpl := tr["InputTemplate"].(string)
		for _, want := range []string{"<detail-mode>", "<detail-runId>", "<detail-summary-rotated>", "<detail-summary-failed>", "<detail-reason>", "<detail-requestId>", "<detail-truncated>"} {
			if !strings.Contains(tpl, want) {
				t.Errorf("message %s lacks %s", tpl, want)
			}
		}
		paths := tr["InputPathsMap"].(map[string]any)
		for name, path := range map[string]string{"detail-mode": "$.detail.mode", "detail-summary-failed": "$.detail.summary.failed", "detail-reason": "$.detail.reason"} {
			if paths[name] != path {
				t.Errorf("input path %s = %v, want %s", name, paths[name], path)
			}
		}
	})
	t.Run("the topic admits EventBridge publishes from this rule only", func(t *testing.T) {
		tmpl.HasResourceProperties(jsii.String("AWS::SNS::TopicPolicy"), map[string]any{
			"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
				assertions.Match_ObjectLike(&map[string]any{"Effect": "Allow", "Action": "sns:Publish",
					"Principal": map[string]any{"Service": "events.amazonaws.com"}}),
				assertions.Match_ObjectLike(&map[string]any{"Effect": "Deny", "Action": "sns:Publish",
					"Principal": map[string]any{"Service": "events.amazonaws.com"},
					"Condition": map[string]any{"ArnNotEquals": map[string]any{"aws:SourceArn": map[string]any{"Fn::GetAtt": []any{ruleID, "Arn"}}}}}),
			})},
		})
	})
}

func mustString(v any) string {
	if v == nil {
		return "null"
	}
	return string(mustJSON(v))
}

// statements flattens the statements of a role's (single) inline policy,
// sorted by Sid.
func statements(t *testing.T, role map[string]any) []statement {
	t.Helper()
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
		for _, a := range st.Actions {
			if strings.Contains(a, "*") {
				t.Errorf("wildcard action %s", a)
			}
		}
		got = append(got, st)
	}
	sort.Slice(got, func(a, b int) bool { return got[a].Sid < got[b].Sid })
	return got
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
	tableID, _ := only(t, j, "AWS::DynamoDB::Table")
	bucketID, _ := only(t, j, "AWS::S3::Bucket")
	const keys = "arn:${AWS::Partition}:kms:*:${AWS::AccountId}:key/*"
	want := []statement{
		{"AnnounceRunResultsOnResultsBus", []string{"events:PutEvents"},
			[]string{"arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/kms-rotator-results"},
			`{"ForAllValues:StringEquals":{"events:detail-type":"` + settings.ResultEventDetailType + `","events:source":"` + settings.ResultEventSource +
				`"},"Null":{"events:detail-type":"false","events:source":"false"}}`},
		{"ContinueOwnSweep", []string{"lambda:InvokeFunction"},
			[]string{"arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:kms-rotator",
				"arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:kms-rotator-sweep"}, ""},
		{"DescribeAnyKeyOfTheAccount", []string{"kms:DescribeKey", "kms:ListResourceTags"}, []string{keys}, ""},
		{"ListAliasesAndTaggedKeys", []string{"kms:ListAliases", "tag:GetResources"}, []string{"*"}, ""},
		{"ReadRotationStateOfOptedInKeys", []string{"kms:GetKeyLastUsage", "kms:GetKeyRotationStatus", "kms:ListKeyRotations"}, []string{keys},
			`{"StringEquals":{"aws:ResourceTag/kms-rotator":"enabled"}}`},
		{"ReadWriteOwnLedger", []string{"dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"},
			[]string{"${" + tableID + ".Arn}"}, ""},
		{"RotateOptedInSymmetricKeys", []string{"kms:RotateKeyOnDemand"}, []string{keys},
			`{"StringEquals":{"aws:ResourceTag/kms-rotator":"enabled","kms:KeySpec":"SYMMETRIC_DEFAULT"}}`},
		{"SendFailedInvocationsToOwnQueue", []string{"sqs:SendMessage"}, []string{"${" + queueID + ".Arn}"}, ""},
		{"WriteEvidenceRecords", []string{"s3:PutObject"}, []string{"arn:${AWS::Partition}:s3:::${" + bucketID + "}/evidence/*"}, ""},
		{"WriteOwnLogGroup", []string{"logs:CreateLogStream", "logs:PutLogEvents"},
			[]string{"arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:" + logGroupName + ":*"}, ""},
	}
	// The function's role, the scheduler's role and the responders'
	// managed policy; no policy CDK would have added.
	tmpl.ResourceCountIs(jsii.String("AWS::IAM::Role"), jsii.Number(2))
	t.Run("no policy beyond the roles' inline policies and the responder policy", func(t *testing.T) {
		tmpl.ResourceCountIs(jsii.String("AWS::IAM::Policy"), jsii.Number(0))
		tmpl.ResourceCountIs(jsii.String("AWS::IAM::ManagedPolicy"), jsii.Number(1))
	})
	var role map[string]any
	for _, r := range resources(t, j, "AWS::IAM::Role") {
		p := r["Properties"].(map[string]any)
		if strings.Contains(fmt.Sprint(p["AssumeRolePolicyDocument"]), "lambda.amazonaws.com") {
			role = p
		}
	}
	t.Run("only Lambda assumes the role", func(t *testing.T) {
		want := `{"Statement":[{"Action":"sts:AssumeRole","Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"}}],"Version":"2012-10-17"}`
		if got := string(mustJSON(role["AssumeRolePolicyDocument"])); got != want {
			t.Errorf("trust policy %s", got)
		}
		if role["ManagedPolicyArns"] != nil {
			t.Errorf("managed policies %v", role["ManagedPolicyArns"])
		}
	})
	got := statements(t, role)
	if len(got) != len(want) {
		t.Fatalf("%d statements, want %d:\n%+v", len(got), len(want), got)
	}
	for i := range want {
		t.Run(want[i].Sid+" is as reviewed", func(t *testing.T) {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("\n got %+v\nwant %+v", got[i], want[i])
			}
		})
	}
}

func TestKeyPolicyStatementsOutputNameTheRole(t *testing.T) {
	_, _, j := synth(t)
	var roleID string
	for id, r := range resources(t, j, "AWS::IAM::Role") {
		if strings.Contains(fmt.Sprint(r["Properties"].(map[string]any)["AssumeRolePolicyDocument"]), "lambda.amazonaws.com") {
			roleID = id
		}
	}
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
	fnID, _ := lambdaFunction(t, j, "kms-rotator")
	queueID, _ := only(t, j, "AWS::SQS::Queue")
	alarms := map[string]map[string]any{}
	for _, r := range resources(t, j, "AWS::CloudWatch::Alarm") {
		p := r["Properties"].(map[string]any)
		alarms[p["AlarmName"].(string)] = p
	}
	names := slices.Sorted(maps.Keys(alarms))
	wantNames := []string{"kms-rotator-async-events-dropped", "kms-rotator-budget-exhausted", "kms-rotator-evidence-failed", "kms-rotator-failure-queue",
		"kms-rotator-function-errors", "kms-rotator-keys-deferred", "kms-rotator-keys-failed", "kms-rotator-keys-newly-overdue", "kms-rotator-keys-overdue",
		"kms-rotator-ledger-unavailable", "kms-rotator-material-expiring-soon", "kms-rotator-result-events-failed", "kms-rotator-rotations-stuck",
		"kms-rotator-silence"}
	if !reflect.DeepEqual(names, wantNames) {
		t.Fatalf("alarms %v, want %v", names, wantNames)
	}
	t.Run("every alarm notifies the topic when it fires and when it is OK again", func(t *testing.T) {
		for name, a := range alarms {
			for _, key := range []string{"AlarmActions", "OKActions"} {
				if got := flatList(a[key]); !reflect.DeepEqual(got, []string{"${" + topicID + "}"}) {
					t.Errorf("%s %s %v", name, key, got)
				}
			}
		}
	})
	// mathAlarm describes an alarm on SUM(METRICS()) of one EMF metric over modes.
	type mathAlarm struct {
		metric, op, missing string
		threshold, periods  float64
		period              float64
		modes               []string
	}
	all := []string{"incident", "plan", "report", "scheduled"}
	tests := map[string]mathAlarm{
		"kms-rotator-keys-failed":          {settings.MetricKeysFailed, "GreaterThanOrEqualToThreshold", "notBreaching", 1, 1, 300, all},
		"kms-rotator-budget-exhausted":     {settings.MetricKeysBudgetExhausted, "GreaterThanThreshold", "notBreaching", 0, 1, 3600, all},
		"kms-rotator-result-events-failed": {settings.MetricResultEventsFailed, "GreaterThanOrEqualToThreshold", "notBreaching", 1, 1, 300, all},
		"kms-rotator-rotations-stuck":      {settings.MetricRotationsStuck, "GreaterThanOrEqualToThreshold", "notBreaching", 1, 1, 3600, all},
		// A run of any mode without its evidence record.
		"kms-rotator-evidence-failed": {settings.MetricEvidenceFailed, "GreaterThanOrEqualToThreshold", "notBreaching", 1, 1, 300, all},
	}
	for name, w := range tests {
		t.Run(name+" sums "+w.metric+" over modes", func(t *testing.T) {
			a := alarms[name]
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
	// mathOf lists an alarm's queries by ID: an expression, or a metric as
	// "namespace/name dimensions stat period".
	mathOf := func(a map[string]any) map[string]string {
		got := map[string]string{}
		for _, m := range a["Metrics"].([]any) {
			m := m.(map[string]any)
			if e, ok := m["Expression"]; ok {
				got[m["Id"].(string)] = e.(string)
				continue
			}
			st := m["MetricStat"].(map[string]any)
			metric := st["Metric"].(map[string]any)
			got[m["Id"].(string)] = fmt.Sprintf("%s/%s %v %s %v", metric["Namespace"], metric["MetricName"], metric["Dimensions"], st["Stat"], st["Period"])
		}
		return got
	}
	t.Run("keys-overdue watches KeysOverdueAction of scheduled sweeps, one figure per sweep period, and keeps the last sweep's verdict between sweeps", func(t *testing.T) {
		a := alarms["kms-rotator-keys-overdue"]
		got := mathOf(a)
		want := map[string]string{"m1": "KMSRotator/KeysOverdueAction [map[Name:Mode Value:scheduled]] Sum 86400"}
		if len(got) != 1 || slices.Collect(maps.Values(got))[0] != want["m1"] {
			t.Errorf("metrics %q, want %q", got, want)
		}
		if a["Threshold"] != 1.0 || a["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" || a["TreatMissingData"] != "ignore" ||
			a["EvaluationPeriods"] != 2.0 || a["DatapointsToAlarm"] != 1.0 {
			t.Errorf("alarm %v", a)
		}
	})
	t.Run("material-expiring-soon watches MaterialExpiringSoon of scheduled sweeps, one figure per sweep period, and keeps the last sweep's verdict between sweeps", func(t *testing.T) {
		a := alarms["kms-rotator-material-expiring-soon"]
		got := mathOf(a)
		want := "KMSRotator/MaterialExpiringSoon [map[Name:Mode Value:scheduled]] Sum 86400"
		if len(got) != 1 || slices.Collect(maps.Values(got))[0] != want {
			t.Errorf("metrics %q, want %q", got, want)
		}
		if a["Threshold"] != 1.0 || a["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" || a["TreatMissingData"] != "ignore" ||
			a["EvaluationPeriods"] != 2.0 || a["DatapointsToAlarm"] != 1.0 {
			t.Errorf("alarm %v", a)
		}
		if desc := a["AlarmDescription"].(string); !strings.Contains(desc, "within 14 days") {
			t.Errorf("description %q does not name the notice window", desc)
		}
	})
	t.Run("keys-newly-overdue compares KeysOverdueAction of two consecutive sweep periods", func(t *testing.T) {
		a := alarms["kms-rotator-keys-newly-overdue"]
		got := mathOf(a)
		want := map[string]string{
			"overdue": "KMSRotator/KeysOverdueAction [map[Name:Mode Value:scheduled]] Sum 86400",
			"expr_1":  "IF(DIFF(overdue) > 0, 1, 0)",
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("\n got %q\nwant %q", got, want)
		}
		if a["Threshold"] != 1.0 || a["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" || a["TreatMissingData"] != "notBreaching" ||
			a["EvaluationPeriods"] != 2.0 || a["DatapointsToAlarm"] != 1.0 {
			t.Errorf("alarm %v", a)
		}
	})
	t.Run("keys-deferred watches the hourly minimum of KeysDeferred of scheduled runs, for a day past a sweep that finished every key", func(t *testing.T) {
		a := alarms["kms-rotator-keys-deferred"]
		plan := planDeferral(DefaultSettings().Silence)
		got := mathOf(a)
		want := deferralExpressions(plan)
		want["expr_1"] = want["persisting"]
		delete(want, "persisting")
		want["deferred"] = "KMSRotator/KeysDeferred [map[Name:Mode Value:scheduled]] Minimum 3600"
		if !reflect.DeepEqual(got, want) {
			t.Errorf("\n got %q\nwant %q", got, want)
		}
		// Daily: a day + 24h gap + 1h10m slack → 51h in hourly buckets.
		if !strings.Contains(want["since"], "clear + 93600") || !strings.Contains(want["expr_1"], ">= 90000") {
			t.Errorf("thresholds: %q", want)
		}
		if a["EvaluationPeriods"] != float64(plan.Periods) || a["DatapointsToAlarm"] != 1.0 || a["TreatMissingData"] != "ignore" ||
			a["Threshold"] != 1.0 || a["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" {
			t.Errorf("alarm %v", a)
		}
	})
	t.Run("failure-queue watches the messages visible in the failure queue", func(t *testing.T) {
		a := alarms["kms-rotator-failure-queue"]
		if a["Namespace"] != "AWS/SQS" || a["MetricName"] != "ApproximateNumberOfMessagesVisible" || a["Threshold"] != 1.0 ||
			a["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" ||
			flat(a["Dimensions"].([]any)[0].(map[string]any)["Value"]) != "${"+queueID+".QueueName}" {
			t.Errorf("alarm %v", a)
		}
	})
	sweepID, _ := lambdaFunction(t, j, "kms-rotator-sweep")
	for name, metric := range map[string]string{"kms-rotator-function-errors": "Errors", "kms-rotator-async-events-dropped": "AsyncEventsDropped"} {
		t.Run(name+" watches "+metric+" of both functions", func(t *testing.T) {
			a := alarms[name]
			if a["Threshold"] != 1.0 || a["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" || a["TreatMissingData"] != "notBreaching" {
				t.Fatalf("alarm %v", a)
			}
			got := mathOf(a)
			want := map[string]string{
				"expr_1": "SUM(METRICS())",
				"fn0":    fmt.Sprintf("AWS/Lambda/%s [map[Name:FunctionName Value:map[Ref:%s]]] Sum 300", metric, fnID),
				"fn1":    fmt.Sprintf("AWS/Lambda/%s [map[Name:FunctionName Value:map[Ref:%s]]] Sum 300", metric, sweepID),
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("\n got %q\nwant %q", got, want)
			}
		})
	}
	t.Run("silence: scheduled runs against the schedule's firings, with the window of a daily schedule", func(t *testing.T) {
		a := alarms["kms-rotator-silence"]
		plan := planSilence(DefaultSettings().Silence)
		// Daily at 03:00: gap 24h + slack 1h10m = 25h10m → 27h in hourly
		// buckets; a firing not followed by a run within 3h.
		if plan.StaleAfter != 27*time.Hour || plan.MissedAfter != 3*time.Hour || !plan.Stale {
			t.Fatalf("plan %+v", plan)
		}
		if a["EvaluationPeriods"] != float64(plan.Periods) || a["DatapointsToAlarm"] != 1.0 || a["TreatMissingData"] != "ignore" ||
			a["Threshold"] != 1.0 || a["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" {
			t.Errorf("alarm %v", a)
		}
		got := map[string]string{}
		for _, m := range a["Metrics"].([]any) {
			m := m.(map[string]any)
			if e, ok := m["Expression"]; ok {
				got[m["Id"].(string)] = e.(string)
				continue
			}
			st := m["MetricStat"].(map[string]any)
			metric := st["Metric"].(map[string]any)
			got[m["Id"].(string)] = fmt.Sprintf("%s/%s %v %s %v", metric["Namespace"], metric["MetricName"], metric["Dimensions"], st["Stat"], st["Period"])
		}
		want := silenceExpressions(plan)
		want["expr_1"] = want["silent"] // the alarm's own expression gets CDK's ID
		delete(want, "silent")
		want["runs"] = "KMSRotator/RunsCompleted [map[Name:Mode Value:scheduled]] Sum 3600"
		want["attempts"] = "AWS/Scheduler/InvocationAttemptCount [map[Name:ScheduleGroup Value:kms-rotator]] Sum 3600"
		if !reflect.DeepEqual(got, want) {
			t.Errorf("\n got %q\nwant %q", got, want)
		}
		if !strings.Contains(want["stale"], ">= 97200") || !strings.Contains(want["missed"], ">= 10800") {
			t.Errorf("thresholds: %q", want)
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

func TestSilenceAlarmFollowsTheSchedule(t *testing.T) {
	tests := []struct {
		name     string
		ctx      map[string]any
		periods  float64
		hasStale bool
		stale    string
	}{
		{"hourly cron", map[string]any{ctxSchedule: "cron(0 * * * ? *)"}, 6, true, ">= 14400"},
		{"weekly cron in Berlin: only the missed-run check fits", map[string]any{ctxSchedule: "cron(0 3 ? * MON *)", ctxScheduleTimezone: "Europe/Berlin"}, 5, false, ""},
		{"rate(7 days): only the missed-run check fits", map[string]any{ctxSchedule: "rate(7 days)"}, 5, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			app := newApp(t, tc.ctx)
			if err := addStacks(app, fakeCode(t)); err != nil {
				t.Fatal(err)
			}
			tmpl := assertions.Template_FromStack(app.Node().FindChild(jsii.String(defaultStackName)).(awscdk.Stack), nil)
			var j map[string]any
			if err := json.Unmarshal(mustJSON(tmpl.ToJSON()), &j); err != nil {
				t.Fatal(err)
			}
			_, sched := only(t, j, "AWS::Scheduler::Schedule")
			if sched["ScheduleExpression"] != tc.ctx[ctxSchedule] {
				t.Errorf("schedule %v", sched["ScheduleExpression"])
			}
			for _, r := range resources(t, j, "AWS::CloudWatch::Alarm") {
				a := r["Properties"].(map[string]any)
				if a["AlarmName"] != "kms-rotator-silence" {
					continue
				}
				if a["EvaluationPeriods"] != tc.periods {
					t.Errorf("%v evaluation periods, want %v", a["EvaluationPeriods"], tc.periods)
				}
				var stale string
				for _, m := range a["Metrics"].([]any) {
					if m.(map[string]any)["Id"] == "stale" {
						stale = m.(map[string]any)["Expression"].(string)
					}
				}
				if (stale != "") != tc.hasStale || !strings.Contains(stale, tc.stale) {
					t.Errorf("stale check %q, want one with %q: %t", stale, tc.stale, tc.hasStale)
				}
			}
		})
	}
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
		`SEARCH('{KMSRotator,Mode} MetricName=\"KeysOverdueAction\"', 'Sum', 3600)`,
		`SEARCH('{KMSRotator,Mode} MetricName=\"KeysOverdueByPolicy\"', 'Sum', 3600)`,
		`SEARCH('{KMSRotator,Mode} MetricName=\"MaxMaterialAgeDays\"', 'Maximum', 3600)`,
		`SEARCH('{KMSRotator,Mode} MetricName=\"ResultEventsFailed\"', 'Sum', 3600)`,
		`SEARCH('{KMSRotator,Mode} MetricName=\"RotationsStuck\"', 'Maximum', 3600)`,
		`SEARCH('{KMSRotator,Mode} MetricName=\"KeysDueSoon\"', 'Sum', 3600)`,
		`SEARCH('{KMSRotator,Mode} MetricName=\"MaterialExpiringSoon\"', 'Sum', 3600)`,
		`Upcoming within 14 days (noticeDays)`,
		`Evidence records not written (EvidenceFailed)`,
		`["AWS/Lambda","AsyncEventsDropped","FunctionName"`,
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
	// metric cannot be missing from the dashboard unnoticed. KeysOverdue is
	// shown as its two parts, KeysOverdueAction and KeysOverdueByPolicy.
	for _, name := range []string{settings.MetricKeysCandidate, settings.MetricKeysRotated, settings.MetricKeysWouldRotate,
		settings.MetricKeysSkipped, settings.MetricKeysFailed, settings.MetricKeysDeferred, settings.MetricKeysBudgetLow,
		settings.MetricKeysBudgetExhausted, settings.MetricMinOnDemandRemaining, settings.MetricRunDuration,
		settings.MetricRunsCompleted, settings.MetricRunsFailed, settings.MetricContinuations,
		settings.MetricKeysOverdueAction, settings.MetricKeysOverdueByPolicy, settings.MetricMaxMaterialAgeDays, settings.MetricResultEventsFailed,
		settings.MetricRotationsStuck, settings.MetricKeysDueSoon, settings.MetricMaterialExpiringSoon, settings.MetricEvidenceFailed} {
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
				found = strings.Contains(fmt.Sprint(w["properties"]), "SOURCE '"+logGroupName+"'")
			}
		}
		if !found {
			t.Errorf("no log widget on %s in %s", logGroupName, body)
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

// TestCDKJSONSetsTheRecommendedFeatureFlags reads the feature-flag report
// the synth writes (what `cdk flags` shows): every flag of the pinned
// aws-cdk-lib whose unset behaviour differs from its recommended value is set
// in cdk.json, so the CLI has nothing to warn about, and each flag cdk.json
// sets has the recommended value.
func TestCDKJSONSetsTheRecommendedFeatureFlags(t *testing.T) {
	synth(t)
	raw, err := os.ReadFile(filepath.Join(*synthOnce.app.Synth(nil).Directory(), "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var manifest struct {
		Artifacts map[string]struct {
			Type       string `json:"type"`
			Properties struct {
				Flags map[string]struct {
					UserValue               any `json:"userValue"`
					RecommendedValue        any `json:"recommendedValue"`
					UnconfiguredBehavesLike struct {
						V2 any `json:"v2"`
					} `json:"unconfiguredBehavesLike"`
				} `json:"flags"`
			} `json:"properties"`
		} `json:"artifacts"`
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatal(err)
	}
	reports := 0
	for _, a := range manifest.Artifacts {
		if a.Type != "cdk:feature-flag-report" {
			continue
		}
		reports++
		for name, f := range a.Properties.Flags {
			unset := f.UnconfiguredBehavesLike.V2
			if unset == nil {
				unset = false
			}
			switch {
			case f.UserValue == nil && !reflect.DeepEqual(unset, f.RecommendedValue):
				t.Errorf("%s is not in cdk.json: it behaves like %v, the recommended value is %v", name, unset, f.RecommendedValue)
			case f.UserValue != nil && !reflect.DeepEqual(f.UserValue, f.RecommendedValue):
				t.Errorf("cdk.json sets %s to %v, the recommended value is %v", name, f.UserValue, f.RecommendedValue)
			}
		}
	}
	if reports != 1 {
		t.Errorf("%d feature-flag reports in the cloud assembly, want 1", reports)
	}
}

func TestRegionsContextGivesOneStackPerRegion(t *testing.T) {
	app := newApp(t, map[string]any{ctxRegions: "us-east-1, eu-west-1"})
	if err := addStacks(app, fakeCode(t)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range *app.Node().Children() {
		if s, ok := c.(awscdk.Stack); ok {
			got = append(got, *s.Node().Id()+"="+*s.StackName()+"@"+*s.Region())
		}
	}
	// One CloudFormation stack name in every Region: switching between
	// the single-Region form and regions=… updates the same stack.
	want := []string{"KmsRotator-us-east-1=KmsRotator@us-east-1", "KmsRotator-eu-west-1=KmsRotator@eu-west-1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stacks %v, want %v", got, want)
	}
}

// TestSwitchingToRegionsKeepsTheStack compares the single-Region stack with
// the same Region's stack under regions=…: same stack name, same logical IDs
// and the same explicit names, so CloudFormation updates the stack in place
// (a renamed stack would be a second one, colliding on every fixed name).
func TestSwitchingToRegionsKeepsTheStack(t *testing.T) {
	template := func(t *testing.T, ctx map[string]any, id string) (string, map[string]any) {
		t.Helper()
		t.Setenv("CDK_DEFAULT_REGION", "eu-west-1")
		t.Setenv("CDK_DEFAULT_ACCOUNT", "")
		app := newApp(t, ctx)
		if err := addStacks(app, fakeCode(t)); err != nil {
			t.Fatal(err)
		}
		stack := app.Node().FindChild(jsii.String(id)).(awscdk.Stack)
		var j map[string]any
		if err := json.Unmarshal(mustJSON(assertions.Template_FromStack(stack, nil).ToJSON()), &j); err != nil {
			t.Fatal(err)
		}
		return *stack.StackName(), j
	}
	single, one := template(t, map[string]any{}, defaultStackName)
	multi, many := template(t, map[string]any{ctxRegions: "eu-west-1,us-east-1"}, defaultStackName+"-eu-west-1")
	if single != multi {
		t.Errorf("stack name %s alone, %s with regions", single, multi)
	}
	ids := func(j map[string]any) []string { return slices.Sorted(maps.Keys(j["Resources"].(map[string]any))) }
	if !reflect.DeepEqual(ids(one), ids(many)) {
		t.Errorf("logical IDs differ:\n alone   %v\n regions %v", ids(one), ids(many))
	}
	// Explicit names of resources, compared as rendered.
	names := func(j map[string]any) map[string]string {
		out := map[string]string{}
		for id, r := range j["Resources"].(map[string]any) {
			p, _ := r.(map[string]any)["Properties"].(map[string]any)
			for _, key := range []string{"Name", "FunctionName", "LogGroupName", "AlarmName", "DashboardName"} {
				if v, ok := p[key]; ok && r.(map[string]any)["Type"] != "AWS::Lambda::Permission" {
					out[id+"."+key] = flat(v)
				}
			}
		}
		return out
	}
	if !reflect.DeepEqual(names(one), names(many)) {
		t.Errorf("names differ:\n alone   %v\n regions %v", names(one), names(many))
	}
}

// TestRetainedResourcesHaveNamesThatCannotCollide: after `cdk destroy`, a
// retained resource stays; `cdk deploy` must not try to create one with the
// same name. Every retained resource with an explicit name must make it
// unique to the stack (AWS::StackId), and IAM names (global, one stack per
// Region) must be left to CloudFormation.
func TestRetainedResourcesHaveNamesThatCannotCollide(t *testing.T) {
	_, _, single := synth(t)
	_, _, org := orgSynth(t)
	all := maps.Clone(single["Resources"].(map[string]any))
	for id, r := range org["Resources"].(map[string]any) {
		if r.(map[string]any)["Type"] == "AWS::CloudFormation::StackSet" {
			// The exception: a StackSet is kept on purpose, member roles
			// and all, and a new deployment must not create a second one
			// beside it, whose instances would collide on the role's name:
			// its fixed name makes that deploy fail at once, and
			// docs/deploy.md says to delete the kept one first.
			continue
		}
		all["org:"+id] = r
	}
	for id, r := range all {
		r := r.(map[string]any)
		p, _ := r["Properties"].(map[string]any)
		if r["DeletionPolicy"] == "Retain" {
			for key, v := range p {
				if strings.HasSuffix(key, "Name") && !strings.Contains(flat(v), "${AWS::StackId}") {
					t.Errorf("retained %s %s has the fixed name %s = %s", r["Type"], id, key, flat(v))
				}
			}
		}
		if strings.HasPrefix(r["Type"].(string), "AWS::IAM::") {
			for _, key := range []string{"RoleName", "ManagedPolicyName", "PolicyName"} {
				// An AWS::IAM::Policy's PolicyName names it within its role
				// (the state machine's), not in the account.
				if _, named := p[key]; named && r["Type"] != "AWS::IAM::Role" && (r["Type"] != "AWS::IAM::Policy" || key != "PolicyName") {
					t.Errorf("%s %s has an explicit IAM name %s", r["Type"], id, key)
				}
			}
			if _, named := p["RoleName"]; named {
				t.Errorf("role %s has an explicit name", id)
			}
		}
	}
}

func TestReservedConcurrencyIsSetWhenGiven(t *testing.T) {
	app := newApp(t, map[string]any{ctxReservedConcurrency: 5})
	if err := addStacks(app, fakeCode(t)); err != nil {
		t.Fatal(err)
	}
	assertions.Template_FromStack(app.Node().FindChild(jsii.String(defaultStackName)).(awscdk.Stack), nil).
		HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{"ReservedConcurrentExecutions": 5})
}

// TestFunctionContextReachesTheFunction: function settings given with -c
// are the deployed function's variables, spelled as the function's
// settings.Environment spells them.
func TestFunctionContextReachesTheFunction(t *testing.T) {
	app := newApp(t, map[string]any{ctxSkipIdle: "true", ctxIncidentWait: "2m", ctxStuckAfter: "12h", ctxRotateRPS: "2.5"})
	if err := addStacks(app, fakeCode(t)); err != nil {
		t.Fatal(err)
	}
	assertions.Template_FromStack(app.Node().FindChild(jsii.String(defaultStackName)).(awscdk.Stack), nil).
		HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
			"Environment": map[string]any{"Variables": assertions.Match_ObjectLike(&map[string]any{
				"ROTATOR_SKIP_IDLE": "true", "ROTATOR_INCIDENT_WAIT": "2m0s", "ROTATOR_STUCK_AFTER": "12h0m0s", "ROTATOR_ROTATE_RPS": "2.5",
			})},
		})
}

func TestBadContextFailsTheSynth(t *testing.T) {
	app := newApp(t, map[string]any{ctxReserve: "25"})
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
		"AWS::IAM::Role AwsSolutions-IAM5 [map[regex:/^Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/lambda/kms-rotator/.*:\\*$/]]",
		"AWS::IAM::Role AwsSolutions-IAM5 [map[regex:/^Resource::arn:<AWS::Partition>:s3:::<EvidenceBucket[0-9A-F]{8}>\\/evidence/\\*$/]]",
		"AWS::S3::Bucket AwsSolutions-S1 <nil>",
		"AWS::SQS::Queue AwsSolutions-SQS3 <nil>",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("suppressions\n got %q\nwant %q", got, want)
	}
}

// lambdaFunction returns the logical ID and properties of the function of
// this name: the incident function is functionName (kms-rotator), the sweep
// function <functionName>-sweep.
func lambdaFunction(t *testing.T, tmpl map[string]any, name string) (string, map[string]any) {
	t.Helper()
	for id, r := range resources(t, tmpl, "AWS::Lambda::Function") {
		if p := r["Properties"].(map[string]any); p["FunctionName"] == name {
			return id, p
		}
	}
	t.Fatalf("no function %s", name)
	return "", nil
}
