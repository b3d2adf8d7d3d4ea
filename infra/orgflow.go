package main

import (
	"encoding/json"
	"fmt"
	"maps"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// The organization sweep: a Step Functions state machine whose first state
// asks the function which (account, Region) targets to sweep — the account
// IDs of orgTargets as given, and the active accounts of its OUs and roots,
// listed at each run — and then sweeps every target with the function, at
// most MaxConcurrency at a time, continuing a target whose run deferred keys
// by invoking the function again with the run's cursor. The function must
// run with ROTATOR_CONTINUATION_MAX=0 here, so that the state machine, not
// the function, starts the next link of a chain.
//
// The definition is written as Amazon States Language (JSONPath) rather
// than with the CDK task constructs so that the document the tests validate
// and execute locally is the one deployed, state for state.

// orgTarget is one target of the sweep: a member account in one Region.
type orgTarget struct {
	Account string `json:"account"`
	Region  string `json:"region"`
}

// orgStateMachineProps configure newOrgStateMachine.
type orgStateMachineProps struct {
	// Function is the rotator function (organization mode,
	// ROTATOR_CONTINUATION_MAX=0).
	Function awslambda.IFunction
	// OrgTargets are the account, OU and root IDs to sweep, as given; the
	// function resolves them into (account, Region) targets at each run.
	OrgTargets []string
	// Regions are the Regions each resolved account is swept in, in order.
	Regions []string
	// MaxConcurrency is how many targets are swept at once (the Map
	// state's MaxConcurrency; an inline Map runs at most 40).
	MaxConcurrency int
	// LogRetention is how long the execution history log is kept; zero
	// means one year.
	LogRetention awslogs.RetentionDays
}

// Names of the states the tests and the local run refer to.
const (
	orgResolveTask = "Resolve targets"
	orgSweepTask   = "Sweep target"
	orgMapState    = "Sweep targets"
	orgMaxLinks    = 15 // invocations per target and execution, the first included
	orgTaskTimeout = 960
)

// Upper bounds of one target's result in the execution's output, in bytes
// (see orgDefinition on payload size).
const (
	orgSweptResultBytes  = 200
	orgFailedResultBytes = 500
)

// orgLambdaRetriers retry what Step Functions recommends retrying for a
// Lambda task (https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html)
// and Lambda's own throttling. A retried sweep is harmless: keys it rotated
// are not due any more.
var orgLambdaRetriers = []any{
	map[string]any{
		"ErrorEquals":     []string{"Lambda.ClientExecutionTimeoutException", "Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException"},
		"IntervalSeconds": 2, "MaxAttempts": 6, "BackoffRate": 2,
	},
	map[string]any{
		"ErrorEquals":     []string{"Lambda.TooManyRequestsException"},
		"IntervalSeconds": 5, "MaxAttempts": 6, "BackoffRate": 2,
	},
}

// orgTargetsMode is the function's mode that resolves orgTargets into
// (account, Region) targets (docs/design.md "Organization mode").
const orgTargetsMode = "targets"

// orgResolvePayload is the resolve state's request to the function.
func orgResolvePayload(orgTargets, regions []string) map[string]any {
	return map[string]any{"mode": orgTargetsMode, "orgTargets": orgTargets, "orgRegions": regions}
}

// orgDefinition is the state machine's ASL. functionARN and partition may
// be CDK tokens.
//
// The first state, orgResolveTask, invokes the function in mode targets:
// it answers the targets, the accounts of orgTargets (account IDs as given;
// the ACTIVE accounts of each OU and root, walked recursively, without the
// management account) sorted by ID × the Regions in order, and the
// accounts it excluded. Its ResultSelector keeps these two lists, which
// the function always returns (possibly empty). It has no Catch: an OU
// that is not found, an account that may not list the organization, or
// targets that resolve to nothing make the function fail, and with it the
// execution, which the org-sweep-failed alarm reports, rather than an
// execution that sweeps nothing and succeeds. Lambda's own errors are
// retried as the sweep's are.
//
// Payload size: Step Functions passes at most 256 KiB (262,144 bytes)
// between states
// (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html).
// The largest state is the execution's output, the Map's results next to
// the excluded list: a swept or incomplete target's result takes at most
// orgSweptResultBytes (a twelve-digit account, a Region, counters, a run
// ID: about 160 bytes), a failed one up to orgFailedResultBytes (it holds
// the function's error document: about 430 bytes for a member role that
// cannot be assumed, whose STS error the function tells in one line). The resolved targets before them take about 50 bytes
// each, an excluded account about 90. The function resolves at most 1,000
// targets (accounts × Regions; rotator.MaxSweepTargets) and fails the
// first state beyond that: 1,000 swept results take at most 200 KB and
// fit. Failed results are bigger: about 600 of them fill the output, so
// an execution in which that many targets fail (a member role missing in
// many accounts) ends with States.DataLimitExceeded after sweeping the
// others; the org-sweep-failed alarm reports it like any failed execution.
// The local runs in orgflow_test.go check every result against these
// bounds.
//
// Each Map item carries {target, links, rotated, failed, skipped, request}
// through its states; "request" is the next payload for the function. After
// each invocation the whole report sits under $.link only until the next
// Pass state trims it: a ResultSelector cannot keep "continuation", which
// the report has only when keys were deferred, since a path that matches
// nothing is a States.Runtime error
// (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-inputpath-params.html).
// Item output, one per target, in target order:
//
//	{"account","region","status","links","rotated","failed","skipped",
//	 "deferred","runId"} or, failed, {…,"error":{"Error","Cause"}}
//
// status is "swept" (every candidate handled), "incomplete" (keys deferred
// to the next schedule: orgMaxLinks reached, or a run that deferred keys
// without a cursor) or "failed" (the function failed; error is what the
// Catch caught, kept whole since a path to a Cause that is not there would
// fail the Map). rotated, failed and skipped add up the links' report
// summaries; deferred and runId are the last link's. The execution's
// output is {"targets":[item output…], "excluded":[…]}, the latter as the
// function resolved it ({"account","from","reason"[,"state"]}).
func orgDefinition(functionARN, partition string, orgTargets, regions []string, maxConcurrency int) map[string]any {
	// Running totals over the links of one target.
	sum := func(field string) string {
		return fmt.Sprintf("States.MathAdd($.%s, $.link.Payload.summary.%s)", field, field)
	}
	totals := func(extra map[string]any) map[string]any {
		m := map[string]any{
			"rotated.$": sum("rotated"),
			"failed.$":  sum("failed"),
			"skipped.$": sum("skipped"),
			"links.$":   "States.MathAdd($.links, 1)",
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	finished := func(status string) map[string]any {
		return map[string]any{
			"Type": "Pass",
			"Parameters": totals(map[string]any{
				"account.$":  "$.target.account",
				"region.$":   "$.target.region",
				"status":     status,
				"deferred.$": "$.link.Payload.summary.deferred",
				"runId.$":    "$.link.Payload.runId",
			}),
			"End": true,
		}
	}
	// invoke is a Task state running the function once with the given
	// Payload (or Payload.$) parameter, Lambda's errors retried, plus extra.
	invoke := func(comment string, payload map[string]any, extra map[string]any) map[string]any {
		params := map[string]any{"FunctionName": functionARN}
		maps.Copy(params, payload)
		st := map[string]any{
			"Type":           "Task",
			"Comment":        comment,
			"Resource":       "arn:" + partition + ":states:::lambda:invoke",
			"Parameters":     params,
			"TimeoutSeconds": orgTaskTimeout,
			"Retry":          orgLambdaRetriers,
		}
		maps.Copy(st, extra)
		return st
	}
	item := map[string]any{
		"ProcessorConfig": map[string]any{"Mode": "INLINE"},
		"StartAt":         orgSweepTask,
		"States": map[string]any{
			orgSweepTask: invoke("One run of the function for the target; a continuation request carries the previous link's cursor.",
				map[string]any{"Payload.$": "$.request"},
				map[string]any{
					"ResultPath": "$.link",
					"Catch": []any{map[string]any{
						"ErrorEquals": []string{"States.ALL"},
						"ResultPath":  "$.error",
						"Next":        "Target failed",
					}},
					"Next": "Keys deferred?",
				}),
			"Keys deferred?": map[string]any{
				"Type": "Choice",
				"Choices": []any{
					map[string]any{
						"Variable":  "$.link.Payload.continuation.next",
						"IsPresent": true,
						"Next":      "Continue?",
					},
					// Deferred keys without a cursor: the run finished none
					// (notStarted "no-progress"), or the function did not
					// report one.
					map[string]any{
						"Variable":           "$.link.Payload.summary.deferred",
						"NumericGreaterThan": 0,
						"Next":               "Target incomplete",
					},
				},
				"Default": "Target swept",
			},
			"Continue?": map[string]any{
				"Type": "Choice",
				"Choices": []any{
					map[string]any{
						"And": []any{
							map[string]any{"Variable": "$.link.Payload.continuation.deferred", "NumericGreaterThan": 0},
							map[string]any{"Variable": "$.links", "NumericLessThan": orgMaxLinks - 1},
						},
						"Next": "Next link",
					},
					map[string]any{
						"Variable":           "$.link.Payload.continuation.deferred",
						"NumericGreaterThan": 0,
						"Next":               "Target incomplete",
					},
				},
				"Default": "Target swept",
			},
			"Next link": map[string]any{
				"Type":    "Pass",
				"Comment": "The next request continues the chain after the cursor, as the function would itself (request.ContinuationPayload).",
				"Parameters": totals(map[string]any{
					"target.$": "$.target",
					"request": map[string]any{
						"mode":     "scheduled",
						"target.$": "$.target",
						"continuation": map[string]any{
							"runId.$": "$.link.Payload.continuation.runId",
							"after.$": "$.link.Payload.continuation.next",
							"chain.$": "States.MathAdd($.link.Payload.continuation.chain, 1)",
						},
					},
				}),
				"Next": orgSweepTask,
			},
			"Target swept":      finished("swept"),
			"Target incomplete": finished("incomplete"),
			"Target failed": map[string]any{
				"Type":    "Pass",
				"Comment": "A target whose run failed (member role missing or not assumable, access denied, throttled past the retries) is reported; the other targets go on.",
				"Parameters": map[string]any{
					"account.$": "$.target.account",
					"region.$":  "$.target.region",
					"status":    "failed",
					"links.$":   "$.links",
					"rotated.$": "$.rotated",
					"failed.$":  "$.failed",
					"skipped.$": "$.skipped",
					"error.$":   "$.error",
				},
				"End": true,
			},
		},
	}
	return map[string]any{
		"Comment": "kms-rotator organization sweep: the targets resolved by the function, then every (account, Region) target, continuations looped here.",
		"StartAt": orgResolveTask,
		"States": map[string]any{
			orgResolveTask: invoke("The function lists the targets: the account IDs as given, the active accounts of the OUs and roots (management account excluded), each in every Region. A failure fails the execution.",
				map[string]any{"Payload": orgResolvePayload(orgTargets, regions)},
				map[string]any{
					"ResultSelector": map[string]any{
						"targets.$":  "$.Payload.targets",
						"excluded.$": "$.Payload.excluded",
					},
					"Next": orgMapState,
				}),
			orgMapState: map[string]any{
				"Type":           "Map",
				"ItemsPath":      "$.targets",
				"MaxConcurrency": maxConcurrency,
				"ItemSelector": map[string]any{
					"target.$": "$$.Map.Item.Value",
					"links":    0, "rotated": 0, "failed": 0, "skipped": 0,
					"request": map[string]any{"mode": "scheduled", "target.$": "$$.Map.Item.Value"},
				},
				"ItemProcessor": item,
				"ResultPath":    "$.targets",
				"End":           true,
			},
		},
	}
}

// newOrgStateMachine is the organization sweep's state machine, allowed to
// invoke props.Function and nothing else of it, with its execution history
// logged (level ALL, cdk-nag AwsSolutions-SF1) and traced (SF2).
func newOrgStateMachine(scope constructs.Construct, id string, props *orgStateMachineProps) awsstepfunctions.StateMachine {
	if len(props.OrgTargets) == 0 || len(props.Regions) == 0 {
		panic("newOrgStateMachine: no targets or no Regions")
	}
	def, err := json.Marshal(orgDefinition(*props.Function.FunctionArn(), *awscdk.Aws_PARTITION(), props.OrgTargets, props.Regions, props.MaxConcurrency))
	if err != nil {
		panic(fmt.Sprintf("newOrgStateMachine: %v", err))
	}
	retention := props.LogRetention
	if retention == "" {
		retention = awslogs.RetentionDays_ONE_YEAR
	}
	logs := awslogs.NewLogGroup(scope, jsii.String(id+"Logs"), &awslogs.LogGroupProps{Retention: retention})
	sm := awsstepfunctions.NewStateMachine(scope, jsii.String(id), &awsstepfunctions.StateMachineProps{
		DefinitionBody:   awsstepfunctions.DefinitionBody_FromString(jsii.String(string(def))),
		StateMachineType: awsstepfunctions.StateMachineType_STANDARD,
		TracingEnabled:   jsii.Bool(true),
		Logs: &awsstepfunctions.LogOptions{
			Destination: logs, Level: awsstepfunctions.LogLevel_ALL, IncludeExecutionData: jsii.Bool(true),
		},
	})
	// The definition invokes the unqualified ARN only; GrantInvoke would
	// add every version and alias (ARN:*).
	sm.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("lambda:InvokeFunction"),
		Resources: jsii.Strings(*props.Function.FunctionArn()),
	}))
	// CDK makes the state machine depend on its whole role construct: the
	// role and its policy. The role is already ordered by the RoleArn
	// GetAtt, and naming it again in DependsOn draws cfn-lint warning
	// W3005; the policy is not referenced, and must exist before the state
	// machine (Step Functions checks the log delivery permissions when it
	// is created), so DependsOn keeps it alone. The override replaces the
	// list CDK renders at synth time.
	policy := sm.Role().Node().FindChild(jsii.String("DefaultPolicy")).Node().DefaultChild().(awscdk.CfnResource)
	sm.Node().DefaultChild().(awscdk.CfnResource).AddOverride(jsii.String("DependsOn"), []*string{awscdk.Stack_Of(sm).GetLogicalId(policy)})
	cdknag.NagSuppressions_AddResourceSuppressions(sm.Role(), &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("Step Functions' log delivery (logs:CreateLogDelivery and the other *LogDelivery actions, logs:PutResourcePolicy, logs:DescribeResourcePolicies, logs:DescribeLogGroups) and X-Ray tracing (xray:PutTraceSegments, xray:PutTelemetryRecords, xray:GetSampling*) support no resource-level permissions " +
			"(https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html, https://docs.aws.amazon.com/step-functions/latest/dg/xray-iam.html)."),
		AppliesTo: &[]interface{}{"Resource::*"},
	}}, jsii.Bool(true))
	return sm
}
