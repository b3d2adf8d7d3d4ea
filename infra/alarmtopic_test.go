package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// The alarm topic's policy, judged by the IAM simulator that
// policy/simulate_test.go runs (policy/testdata/simulate.mjs,
// @cloud-copilot/iam-simulate, a separate Node process): every alarm of the
// synthesized templates must be able to deliver its ALARM and OK actions,
// the result notification rule its messages, and nobody else may publish.

const (
	simAccount      = "012345678912"
	simOtherAccount = "111122223333"
	simRegion       = "us-east-1"
)

// iamCase is one request for the simulator (policy/testdata/simulate.mjs).
type iamCase struct {
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

// simulateIAM runs the cases through the simulator and checks each result.
func simulateIAM(t *testing.T, cases []iamCase) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := findModuleRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules", "@cloud-copilot", "iam-simulate")); err != nil {
		t.Fatalf("the IAM simulator is not installed: run `npm ci` in the repository root: %v", err)
	}
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nodeTool(t, "node"), filepath.Join(root, "policy", "testdata", "simulate.mjs"))
	cmd.Dir = filepath.Join(root, "policy")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("simulate.mjs: %v\n%s", err, stderr.String())
	}
	var results []struct {
		Name, Result, Error string
	}
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("simulate.mjs output: %v\n%s", err, out)
	}
	if len(results) != len(cases) {
		t.Fatalf("%d results for %d cases", len(results), len(cases))
	}
	for i, c := range cases {
		r := results[i]
		t.Run(c.Name+" is "+c.want, func(t *testing.T) {
			if r.Error != "" {
				t.Fatalf("the simulator rejected the request: %s", r.Error)
			}
			if r.Result != c.want {
				t.Errorf("%s %s on %s with %v: %s, want %s", c.Principal, c.Action, c.Resource, c.Context, r.Result, c.want)
			}
		})
	}
}

// cfnValues are the values resolve gives CloudFormation's pseudo parameters
// and the template's resources: Ref of an SNS topic is its ARN, of an alarm
// its name, Fn::GetAtt X.Arn an ARN named after the logical ID.
func cfnValues(tmpl map[string]any) map[string]string {
	v := map[string]string{
		"AWS::Partition": "aws", "AWS::Region": simRegion, "AWS::AccountId": simAccount, "AWS::URLSuffix": "amazonaws.com",
		"AWS::StackId": "arn:aws:cloudformation:" + simRegion + ":" + simAccount + ":stack/KmsRotator/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
	}
	resources := tmpl["Resources"].(map[string]any)
	// busName is the name of the bus a rule's EventBusName refers to.
	busName := func(ref any) string {
		if m, ok := ref.(map[string]any); ok {
			if id, ok := m["Ref"].(string); ok {
				return resources[id].(map[string]any)["Properties"].(map[string]any)["Name"].(string)
			}
		}
		return ""
	}
	for id, r := range resources {
		r := r.(map[string]any)
		p, _ := r["Properties"].(map[string]any)
		switch r["Type"] {
		case "AWS::SNS::Topic":
			v[id] = "arn:aws:sns:" + simRegion + ":" + simAccount + ":" + id
		case "AWS::Events::Rule":
			name, named := p["Name"].(string)
			if !named {
				name = id
			}
			// A rule of a custom bus is rule/<bus>/<rule>.
			if bus := busName(p["EventBusName"]); bus != "" {
				name = bus + "/" + name
			}
			v[id+".Arn"] = "arn:aws:events:" + simRegion + ":" + simAccount + ":rule/" + name
		case "AWS::Events::EventBus":
			v[id] = p["Name"].(string)
			v[id+".Arn"] = "arn:aws:events:" + simRegion + ":" + simAccount + ":event-bus/" + v[id]
		case "AWS::CloudWatch::Alarm":
			v[id] = p["AlarmName"].(string)
		case "AWS::IAM::Role":
			v[id] = id
			v[id+".Arn"] = "arn:aws:iam::" + simAccount + ":role/" + id
		case "AWS::SQS::Queue":
			v[id+".Arn"] = "arn:aws:sqs:" + simRegion + ":" + simAccount + ":" + id
		case "AWS::DynamoDB::Table":
			v[id] = id
			v[id+".Arn"] = "arn:aws:dynamodb:" + simRegion + ":" + simAccount + ":table/" + id
		case "AWS::S3::Bucket":
			// A name CloudFormation makes up: lower case.
			v[id] = strings.ToLower("kmsrotator-" + id)
			v[id+".Arn"] = "arn:aws:s3:::" + v[id]
		}
	}
	return v
}

// resolve replaces Ref, Fn::GetAtt and Fn::Join in a template value with
// the values of cfnValues; it fails on anything it cannot resolve.
func resolve(t *testing.T, v any, values map[string]string) any {
	t.Helper()
	switch v := v.(type) {
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = resolve(t, x, values)
		}
		return out
	case map[string]any:
		if r, ok := v["Ref"]; ok {
			s, known := values[r.(string)]
			if !known {
				t.Fatalf("cannot resolve Ref %v", r)
			}
			return s
		}
		if g, ok := v["Fn::GetAtt"]; ok {
			a := g.([]any)
			s, known := values[a[0].(string)+"."+a[1].(string)]
			if !known {
				t.Fatalf("cannot resolve Fn::GetAtt %v", a)
			}
			return s
		}
		if j, ok := v["Fn::Join"]; ok {
			a := j.([]any)
			var parts []string
			for _, p := range a[1].([]any) {
				parts = append(parts, resolve(t, p, values).(string))
			}
			return strings.Join(parts, a[0].(string))
		}
		if sp, ok := v["Fn::Split"]; ok {
			a := sp.([]any)
			var out []any
			for _, part := range strings.Split(resolve(t, a[1], values).(string), a[0].(string)) {
				out = append(out, part)
			}
			return out
		}
		if sel, ok := v["Fn::Select"]; ok {
			a := sel.([]any)
			list := resolve(t, a[1], values).([]any)
			return list[int(a[0].(float64))]
		}
		out := map[string]any{}
		for k, x := range v {
			if strings.HasPrefix(k, "Fn::") {
				t.Fatalf("cannot resolve %s", k)
			}
			out[k] = resolve(t, x, values)
		}
		return out
	}
	return v
}

// topicPolicy is the template's one topic policy, resolved, and the ARN of
// the topic it is attached to.
func topicPolicy(t *testing.T, tmpl map[string]any) (topicARN string, doc map[string]any) {
	t.Helper()
	values := cfnValues(tmpl)
	_, p := only(t, tmpl, "AWS::SNS::TopicPolicy")
	topics := resolve(t, p["Topics"], values).([]any)
	if len(topics) != 1 {
		t.Fatalf("the topic policy applies to %v, want the alarm topic alone", topics)
	}
	return topics[0].(string), resolve(t, p["PolicyDocument"], values).(map[string]any)
}

// TestEveryAlarmCanNotifyTheTopic puts every alarm of the single-account
// and the organization template through the topic's policy as CloudWatch
// would publish its ALARM and OK actions, and the result notification rule
// as EventBridge would; alarms, rules, services and principals that are not
// the stack's own are refused.
func TestEveryAlarmCanNotifyTheTopic(t *testing.T) {
	_, _, single := synth(t)
	_, _, org := orgSynth(t)
	const (
		allowed  = "Allowed"
		implicit = "ImplicitlyDenied"
		explicit = "ExplicitlyDenied"
	)
	for _, mode := range []struct {
		name string
		tmpl map[string]any
		// alarms the mode must have, so the loop below cannot pass by
		// finding none.
		mustHave []string
	}{
		{"single account", single, []string{"kms-rotator-keys-failed", "kms-rotator-silence", "kms-rotator-function-errors",
			"kms-rotator-evidence-failed", "kms-rotator-material-expiring-soon"}},
		{"organization", org, []string{"kms-rotator-keys-failed", "kms-rotator-org-sweep-failed", "kms-rotator-org-targets-failed", "kms-rotator-evidence-failed", "kms-rotator-material-expiring-soon"}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			values := cfnValues(mode.tmpl)
			topicARN, policy := topicPolicy(t, mode.tmpl)
			secure := func(ctx map[string]any) map[string]any {
				ctx["aws:SecureTransport"] = "true"
				return ctx
			}
			publish := func(name, principal, sourceArn, sourceAccount, want string) iamCase {
				ctx := map[string]any{}
				if sourceArn != "" {
					ctx["aws:SourceArn"] = sourceArn
				}
				if sourceAccount != "" {
					ctx["aws:SourceAccount"] = sourceAccount
				}
				return iamCase{Name: name, Principal: principal, Action: "sns:Publish", Resource: topicARN, Account: simAccount,
					Context: secure(ctx), ResourcePolicy: policy, want: want}
			}
			alarmArn := func(account, name string) string {
				return "arn:aws:cloudwatch:" + simRegion + ":" + account + ":alarm:" + name
			}
			var cases []iamCase
			seen := map[string]bool{}
			for _, r := range resources(t, mode.tmpl, "AWS::CloudWatch::Alarm") {
				p := r["Properties"].(map[string]any)
				name := p["AlarmName"].(string)
				seen[name] = true
				for _, key := range []string{"AlarmActions", "OKActions"} {
					actions, _ := resolve(t, p[key], values).([]any)
					if len(actions) == 0 {
						t.Errorf("%s has no %s", name, key)
					}
					for _, a := range actions {
						if a != topicARN {
							t.Errorf("%s %s: %v, want the topic %s", name, key, a, topicARN)
							continue
						}
						cases = append(cases, publish(name+" "+key, "cloudwatch.amazonaws.com", alarmArn(simAccount, name), simAccount, allowed))
					}
				}
			}
			for _, name := range mode.mustHave {
				if !seen[name] {
					t.Errorf("no alarm %s in the template", name)
				}
			}
			var ruleArn string
			for id, r := range resources(t, mode.tmpl, "AWS::Events::Rule") {
				if strings.Contains(fmt.Sprint(r["Properties"].(map[string]any)["EventPattern"]), settings.ResultEventDetailType) {
					ruleArn = values[id+".Arn"]
				}
			}
			if ruleArn == "" {
				t.Fatal("no result notification rule")
			}
			otherRule := "arn:aws:events:" + simRegion + ":" + simAccount + ":rule/payments"
			anyPublish := []any{map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
				"Effect": "Allow", "Action": "sns:Publish", "Resource": "*"}}}}
			foreignRole := iamCase{Name: "a role of another account allowed sns:Publish on * by its own policy",
				Principal: "arn:aws:iam::" + simOtherAccount + ":role/admin", Action: "sns:Publish", Resource: topicARN, Account: simAccount,
				Context:          secure(map[string]any{"aws:PrincipalArn": "arn:aws:iam::" + simOtherAccount + ":role/admin"}),
				IdentityPolicies: anyPublish, ResourcePolicy: policy, want: implicit}
			cases = append(cases,
				publish("the result notification rule", "events.amazonaws.com", ruleArn, simAccount, allowed),
				publish("another rule of the account", "events.amazonaws.com", otherRule, simAccount, explicit),
				publish("another alarm of the account", "cloudwatch.amazonaws.com", alarmArn(simAccount, "payments-latency"), simAccount, implicit),
				publish("an alarm of the account whose name shares the prefix", "cloudwatch.amazonaws.com", alarmArn(simAccount, "kms-rotator-other"), simAccount, implicit),
				publish("another account's alarm of the same name", "cloudwatch.amazonaws.com", alarmArn(simOtherAccount, "kms-rotator-keys-failed"), simOtherAccount, implicit),
				publish("CloudWatch without a source", "cloudwatch.amazonaws.com", "", "", implicit),
				publish("another service naming one of the alarms", "s3.amazonaws.com", alarmArn(simAccount, "kms-rotator-keys-failed"), simAccount, implicit),
				foreignRole,
			)
			plain := publish("an alarm of the stack over plain HTTP", "cloudwatch.amazonaws.com", alarmArn(simAccount, "kms-rotator-keys-failed"), simAccount, explicit)
			plain.Context["aws:SecureTransport"] = "false"
			cases = append(cases, plain)
			simulateIAM(t, cases)
		})
	}
}

// TestOwnAlarmTopic: with alarmTopicArn the stack creates no topic; every
// alarm action, the result notification rule and the output name the
// team's topic.
func TestOwnAlarmTopic(t *testing.T) {
	const own = "arn:aws:sns:eu-west-1:111122223333:secops-oncall"
	for _, mode := range []struct {
		name string
		ctx  map[string]any
	}{
		{"single account", map[string]any{ctxAlarmTopicARN: own, ctxRegions: "eu-west-1"}},
		{"organization", func() map[string]any {
			ctx := map[string]any{ctxAlarmTopicARN: own, ctxRegions: "eu-west-1"}
			for k, v := range orgContext {
				ctx[k] = v
			}
			return ctx
		}()},
	} {
		t.Run(mode.name, func(t *testing.T) {
			app := newApp(t, mode.ctx)
			if err := addStacks(app, fakeCode(t)); err != nil {
				t.Fatal(err)
			}
			stack := app.Node().FindChild(jsii.String(defaultStackName + "-eu-west-1")).(awscdk.Stack)
			tmpl := assertions.Template_FromStack(stack, nil)
			var j map[string]any
			if err := json.Unmarshal(mustJSON(tmpl.ToJSON()), &j); err != nil {
				t.Fatal(err)
			}
			for _, typ := range []string{"AWS::SNS::Topic", "AWS::SNS::TopicPolicy", "AWS::SNS::Subscription"} {
				if n := len(resources(t, j, typ)); n != 0 {
					t.Errorf("%d resources of type %s, want none", n, typ)
				}
			}
			alarms := resources(t, j, "AWS::CloudWatch::Alarm")
			if len(alarms) < 9 {
				t.Fatalf("%d alarms", len(alarms))
			}
			for _, r := range alarms {
				p := r["Properties"].(map[string]any)
				for _, key := range []string{"AlarmActions", "OKActions"} {
					if got := flatList(p[key]); len(got) != 1 || got[0] != own {
						t.Errorf("%s %s = %v, want [%s]", p["AlarmName"], key, got, own)
					}
				}
			}
			var targets []string
			for _, r := range resources(t, j, "AWS::Events::Rule") {
				p := r["Properties"].(map[string]any)
				if strings.Contains(fmt.Sprint(p["EventPattern"]), settings.ResultEventDetailType) {
					// The name docs/deploy.md puts in the topic's policy.
					if p["Name"] != "kms-rotator-results" {
						t.Errorf("the result notification rule is named %v, want kms-rotator-results", p["Name"])
					}
					for _, tg := range p["Targets"].([]any) {
						targets = append(targets, flat(tg.(map[string]any)["Arn"]))
					}
				}
			}
			if len(targets) != 1 || targets[0] != own {
				t.Errorf("the result notification rule targets %v, want [%s]", targets, own)
			}
			if got := flat(j["Outputs"].(map[string]any)["AlarmTopicArn"].(map[string]any)["Value"]); got != own {
				t.Errorf("output AlarmTopicArn = %s, want %s", got, own)
			}
			ann := assertions.Annotations_FromStack(stack)
			for _, f := range *ann.FindError(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))) {
				t.Errorf("unsuppressed cdk-nag error %s", mustJSON(f))
			}
		})
	}
}

func TestAlarmTopicARNIsChecked(t *testing.T) {
	tests := []struct {
		name    string
		ctx     map[string]any
		env     map[string]string // CDK_DEFAULT_* as the CLI sets them
		wantErr string
	}{
		{"an SQS queue is not a topic", map[string]any{ctxAlarmTopicARN: "arn:aws:sqs:us-east-1:111122223333:oncall"}, nil,
			"-c alarmTopicArn=arn:aws:sqs:us-east-1:111122223333:oncall: not a standard SNS topic's ARN"},
		{"a topic name alone is not an ARN", map[string]any{ctxAlarmTopicARN: "oncall"}, nil, "-c alarmTopicArn=oncall: not a standard SNS topic's ARN"},
		{"a FIFO topic is refused", map[string]any{ctxAlarmTopicARN: "arn:aws:sns:us-east-1:111122223333:oncall.fifo"}, nil, "not a standard SNS topic's ARN"},
		{"a Region of another partition", map[string]any{ctxAlarmTopicARN: "arn:aws:sns:cn-north-1:111122223333:oncall"}, nil,
			"the Region cn-north-1 is not one of partition aws"},
		{"a topic of another Region than -c regions", map[string]any{ctxAlarmTopicARN: "arn:aws:sns:us-east-1:111122223333:oncall", ctxRegions: "eu-west-1"}, nil,
			"-c alarmTopicArn=arn:aws:sns:us-east-1:111122223333:oncall: the topic is in us-east-1, the stack deploys to eu-west-1"},
		{"one topic for stacks in several Regions", map[string]any{ctxAlarmTopicARN: "arn:aws:sns:us-east-1:111122223333:oncall", ctxRegions: "us-east-1,eu-west-1"}, nil,
			"the topic is in us-east-1, the stack deploys to eu-west-1"},
		{"a topic of another Region than the CLI's", map[string]any{ctxAlarmTopicARN: "arn:aws:sns:us-east-1:111122223333:oncall"},
			map[string]string{"CDK_DEFAULT_REGION": "eu-west-1", "CDK_DEFAULT_ACCOUNT": "111122223333"},
			"-c alarmTopicArn=arn:aws:sns:us-east-1:111122223333:oncall: the topic is in us-east-1, the stack deploys to eu-west-1"},
		{"a function name too long for the result rule's", map[string]any{ctxFunctionName: strings.Repeat("f", 57)}, nil,
			"-c functionName=" + strings.Repeat("f", 57) + ": at most 56 characters: the result notification rule is named <functionName>-results"},
		{"an alarm e-mail as well", map[string]any{ctxAlarmTopicARN: "arn:aws:sns:us-east-1:111122223333:oncall", ctxAlarmEmail: "sec@example.com"}, nil,
			"-c alarmEmail=sec@example.com: subscribes to the stack's own topic, which alarmTopicArn replaces"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CDK_DEFAULT_REGION", tc.env["CDK_DEFAULT_REGION"])
			t.Setenv("CDK_DEFAULT_ACCOUNT", tc.env["CDK_DEFAULT_ACCOUNT"])
			err := addStacks(newApp(t, tc.ctx), fakeCode(t))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
	t.Run("a topic of the CLI's Region is accepted", func(t *testing.T) {
		t.Setenv("CDK_DEFAULT_REGION", "us-east-1")
		t.Setenv("CDK_DEFAULT_ACCOUNT", "111122223333")
		s, err := SettingsFromContext(func(k string) any {
			return map[string]any{ctxAlarmTopicARN: " arn:aws-us-gov:sns:us-gov-west-1:111122223333:on_call-1 "}[k]
		})
		if err != nil || s.AlarmTopicARN != "arn:aws-us-gov:sns:us-gov-west-1:111122223333:on_call-1" {
			t.Fatalf("settings %q, err %v", s.AlarmTopicARN, err)
		}
		if err := addStacks(newApp(t, map[string]any{ctxAlarmTopicARN: "arn:aws:sns:us-east-1:111122223333:oncall"}), fakeCode(t)); err != nil {
			t.Fatal(err)
		}
	})
}
