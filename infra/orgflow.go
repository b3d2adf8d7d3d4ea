package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/kms-rotator/kms-rotator/policy"
)

// The organization sweep: a Step Functions state machine whose first state
// asks the function which (account, Region) targets to sweep — the account
// IDs of orgTargets as given, and the active accounts of its OUs and roots,
// listed at each run — and has it write them to the organization sweep's
// bucket; a Distributed Map then reads them from there and sweeps every
// target in a child workflow execution of its own, at most MaxConcurrency
// at a time, continuing a target whose run deferred keys by invoking the
// function again with the run's cursor; the Map writes every child's
// result to the bucket, and a last state has the function read them and
// publish the organization-wide figures. The function must run with
// ROTATOR_CONTINUATION_MAX=0 here, so that the state machine, not the
// function, starts the next link of a chain.
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
	// Function is the sweep function (organization mode,
	// ROTATOR_CONTINUATION_MAX=0, ROTATOR_ORG_BUCKET the Bucket).
	Function awslambda.IFunction
	// Bucket is the organization sweep's bucket (newOrgBucket): the
	// targets the function writes, the results the Map writes.
	Bucket awss3.IBucket
	// OrgTargets are the account, OU and root IDs to sweep, as given; the
	// function resolves them into (account, Region) targets at each run.
	OrgTargets []string
	// Regions are the Regions each resolved account is swept in, in order.
	Regions []string
	// MaxConcurrency is how many targets are swept at once: the
	// Distributed Map's MaxConcurrency, at most maxOrgConcurrency.
	MaxConcurrency int
	// LogRetention is how long the execution history log is kept; zero
	// means one year.
	LogRetention awslogs.RetentionDays
}

// Names of the states the tests and the local run refer to.
const (
	orgResolveTask   = "Resolve targets"
	orgSweepTask     = "Sweep target"
	orgMapState      = "Sweep targets"
	orgSummarizeTask = "Summarize sweep"
	orgMaxLinks      = 15 // invocations per target and execution, the first included
	orgTaskTimeout   = 960
)

// orgMapLabel labels the Distributed Map's Map Runs: it appears in their
// ARNs and in their child executions' (…:execution:<state
// machine>/<label>:<id>), so a child in the console or in a result file
// reads as a target of the sweep. At most 40 characters
// (https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html).
const orgMapLabel = "targets"

// orgRunsPrefix is where each execution keeps its files in the bucket:
// runs/<execution>/targets.json and resolution.json (the function's, from
// the targets run) and runs/<execution>/results/ (the Distributed Map's
// ResultWriter). policy/org-runs-function.json and
// policy/org-state-machine.json name the same keys.
const orgRunsPrefix = "runs/"

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
// (account, Region) targets, and orgSummaryMode the one that reads the
// sweep's results (docs/design.md "Organization mode").
const (
	orgTargetsMode = "targets"
	orgSummaryMode = "org-summary"
)

// orgResolvePayload is the resolve state's request to the function. The
// execution's name names the files it writes (runs/<execution>/…).
func orgResolvePayload(orgTargets, regions []string) map[string]any {
	return map[string]any{"mode": orgTargetsMode, "orgTargets": orgTargets, "orgRegions": regions, "execution.$": "$$.Execution.Name"}
}

// orgDefinition is the state machine's ASL. functionARN, bucket and
// partition may be CDK tokens.
//
// The first state, orgResolveTask, invokes the function in mode targets
// with the execution's name: it resolves orgTargets — account IDs as given;
// the ACTIVE accounts of each OU and root, walked recursively, without the
// management account — into targets, the accounts sorted by ID × the
// Regions in order, writes them as a JSON array to
// runs/<execution>/targets.json of the bucket (and the whole resolution to
// resolution.json), and answers where it put them ("items": bucket and
// key), how many there were ("summary") and at most 100 of the accounts it
// left out ("excluded"). Its ResultSelector keeps these three, and the
// ResultWriter's prefix, runs/<execution>/results, built there because a
// ResultSelector may read the Context object and call intrinsic functions
// (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-contextobject.html,
// https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html),
// while the ResultWriter's Parameters take a reference path to it
// (https://docs.aws.amazon.com/step-functions/latest/dg/iam-policies-eg-dist-map.html).
// It has no Catch: an OU that is not found, an account that may not list
// the organization, or targets that resolve to nothing make the function
// fail, and with it the execution, which the org-sweep-failed alarm
// reports, rather than an execution that sweeps nothing and succeeds.
// Lambda's own errors are retried as the sweep's are.
//
// The second, orgMapState, is a Distributed Map
// (https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html):
// its ItemReader reads targets.json (InputType JSON), and every target
// runs as a Standard child workflow execution (a target may take longer
// than an Express workflow's 5 minutes) with its own 25,000-event history;
// no part of a target's work lands in the parent's history or payload. At
// most MaxConcurrency children run at once. ToleratedFailurePercentage
// 100: a child that fails (it should not: the per-target Catch turns the
// function's failure into a result) is data for the summary, never a
// reason to stop the others. Its ResultWriter writes every child's input,
// output and status to runs/<execution>/results/<Map Run ID>/
// (manifest.json, SUCCEEDED_n.json, FAILED_n.json, PENDING_n.json:
// https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html),
// and the state's result is {"MapRunArn", "ResultWriterDetails": {"Bucket",
// "Key"}}, Key the manifest's, kept under $.sweep.
//
// The limits that remain are Step Functions' and S3's
// (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html,
// https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html):
// the ItemReader reads a file of at most 10 GB (a target takes about 50
// bytes: some 200 million targets); at most 10,000 child executions run in
// parallel per Map Run, and 1,000 Map Runs may be open in an account and
// Region at once; each child's history holds 25,000 events, of which a
// target uses about 11 per link (orgMaxLinks bounds the links); a result
// file holds up to 5 GB before the ResultWriter starts the next one.
//
// The child workflow (the ItemProcessor) carries {target, links, rotated,
// failed, skipped, overdue, request} through its states; "request" is the
// next payload for the function. After each invocation the whole report
// sits under $.link only until the next Pass state trims it: a
// ResultSelector cannot keep "continuation", which the report has only
// when keys were deferred, since a path that matches nothing is a
// States.Runtime error
// (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-inputpath-params.html).
// A child's output, one per target:
//
//	{"account","region","status","links","rotated","failed","skipped",
//	 "overdue","deferred","runId"[,"notSwept"]} or, failed,
//	{…,"error":{"Error","Cause"}}
//
// status is "swept" (every candidate handled), "incomplete" (keys deferred
// to the next schedule: orgMaxLinks reached, or a run that deferred keys
// without a cursor), "excluded" (the function left the target out and said
// why in notSwept: an opt-in Region the account has not enabled) or
// "failed" (the function failed; error is what the
// Catch caught, kept whole since a path to a Cause that is not there would
// fail the child). rotated, failed, skipped and overdue add up the links'
// report summaries; deferred and runId are the last link's.
//
// The last state, orgSummarizeTask, invokes the function in mode
// org-summary with the execution's name and the manifest's key: the
// function reads the manifest, every result file and the resolution,
// publishes the organization-wide figures once (EMF, Mode=org-summary) and
// one result event naming the failed targets, and answers the totals,
// which the state keeps under $.summary. It has no Catch either: results
// that cannot be read fail the execution (org-sweep-failed). The
// execution's output is {items, resolved, excluded, results, sweep,
// summary}, each small (excluded, and the summary's failed and not swept
// targets, hold at most 100 entries each).
func orgDefinition(functionARN, bucket, partition string, orgTargets, regions []string, maxConcurrency int) map[string]any {
	// Running totals over the links of one target.
	sum := func(field string) string {
		return fmt.Sprintf("States.MathAdd($.%s, $.link.Payload.summary.%s)", field, field)
	}
	totals := func(extra map[string]any) map[string]any {
		m := map[string]any{
			"rotated.$": sum("rotated"),
			"failed.$":  sum("failed"),
			"skipped.$": sum("skipped"),
			"overdue.$": sum("overdue"),
			"links.$":   "States.MathAdd($.links, 1)",
		}
		maps.Copy(m, extra)
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
		"ProcessorConfig": map[string]any{"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
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
					// A target the function left out (an opt-in Region its
					// account has not enabled) answers notSwept, not an
					// error.
					map[string]any{
						"Variable":  "$.link.Payload.notSwept",
						"IsPresent": true,
						"Next":      "Target not swept",
					},
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
			"Target not swept": map[string]any{
				"Type":    "Pass",
				"Comment": "A target the function left out, and why (notSwept: region-not-enabled); not a failure.",
				"Parameters": totals(map[string]any{
					"account.$":  "$.target.account",
					"region.$":   "$.target.region",
					"status":     "excluded",
					"notSwept.$": "$.link.Payload.notSwept",
					"deferred":   0,
					"runId.$":    "$.link.Payload.runId",
				}),
				"End": true,
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
					"overdue.$": "$.overdue",
					"error.$":   "$.error",
				},
				"End": true,
			},
		},
	}
	return map[string]any{
		"Comment": "kms-rotator organization sweep: the function resolves the targets into S3, a Distributed Map sweeps each (account, Region) target in a child execution " +
			"(continuations looped there) and writes the results to S3, and the function summarizes them.",
		"StartAt": orgResolveTask,
		"States": map[string]any{
			orgResolveTask: invoke("The function lists the targets — the account IDs as given, the active accounts of the OUs and roots (management account excluded), each in every Region — "+
				"and writes them to runs/<execution>/targets.json. A failure fails the execution.",
				map[string]any{"Payload": orgResolvePayload(orgTargets, regions)},
				map[string]any{
					"ResultSelector": map[string]any{
						"items.$":    "$.Payload.items",
						"resolved.$": "$.Payload.summary",
						"excluded.$": "$.Payload.excluded",
						"results.$":  "States.Format('" + orgRunsPrefix + "{}/results', $$.Execution.Name)",
					},
					"Next": orgMapState,
				}),
			orgMapState: map[string]any{
				"Type":    "Map",
				"Comment": "Every target in a child execution of its own; a target's failure is a result, never the Map's.",
				"Label":   orgMapLabel,
				"ItemReader": map[string]any{
					"Resource":     "arn:" + partition + ":states:::s3:getObject",
					"ReaderConfig": map[string]any{"InputType": "JSON"},
					"Parameters":   map[string]any{"Bucket": bucket, "Key.$": "$.items.key"},
				},
				"ItemSelector": map[string]any{
					"target.$": "$$.Map.Item.Value",
					"links":    0, "rotated": 0, "failed": 0, "skipped": 0, "overdue": 0,
					"request": map[string]any{"mode": "scheduled", "target.$": "$$.Map.Item.Value"},
				},
				"ItemProcessor":              item,
				"MaxConcurrency":             maxConcurrency,
				"ToleratedFailurePercentage": 100,
				"ResultWriter": map[string]any{
					"Resource":   "arn:" + partition + ":states:::s3:putObject",
					"Parameters": map[string]any{"Bucket": bucket, "Prefix.$": "$.results"},
				},
				"ResultPath": "$.sweep",
				"Next":       orgSummarizeTask,
			},
			orgSummarizeTask: invoke("The function reads every target's result and publishes the organization-wide figures and one result event. A failure fails the execution.",
				map[string]any{"Payload": map[string]any{"mode": orgSummaryMode, "execution.$": "$$.Execution.Name", "manifest.$": "$.sweep.ResultWriterDetails.Key"}},
				map[string]any{
					"ResultSelector": map[string]any{"summary.$": "$.Payload.summary", "failedTargets.$": "$.Payload.failedTargets", "notSwept.$": "$.Payload.notSwept",
						"runId.$": "$.Payload.runId"},
					"ResultPath": "$.summary",
					"End":        true,
				}),
		},
	}
}

// newOrgStateMachine is the organization sweep's state machine, allowed to
// invoke props.Function and nothing else of it, to run its Distributed
// Map (policy/org-state-machine.json) in props.Bucket, with its execution
// history logged (level ALL, cdk-nag AwsSolutions-SF1) and traced (SF2).
func newOrgStateMachine(scope constructs.Construct, id string, props *orgStateMachineProps) awsstepfunctions.StateMachine {
	if len(props.OrgTargets) == 0 || len(props.Regions) == 0 {
		panic("newOrgStateMachine: no targets or no Regions")
	}
	def, err := json.Marshal(orgDefinition(*props.Function.FunctionArn(), *props.Bucket.BucketName(), *awscdk.Aws_PARTITION(), props.OrgTargets, props.Regions, props.MaxConcurrency))
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
	// The Distributed Map's permissions name the state machine itself, so
	// they live in a policy of their own: the state machine waits for its
	// role's default policy (below), and that policy naming the state
	// machine would make a cycle. The Map needs them only when an
	// execution reaches it.
	doc, err := policy.OrgStateMachine(policy.Params{
		Partition: *awscdk.Aws_PARTITION(), Region: *awscdk.Aws_REGION(), Account: *awscdk.Aws_ACCOUNT_ID(),
		StateMachineARN: *sm.StateMachineArn(), StateMachineName: *sm.StateMachineName(), OrgBucketName: *props.Bucket.BucketName(),
	})
	if err != nil {
		panic(err)
	}
	dmap := awsiam.NewPolicy(scope, jsii.String(id+"DistributedMapPolicy"), &awsiam.PolicyProps{
		Document: awsiam.PolicyDocument_FromJson(doc.Map()),
		Roles:    &[]awsiam.IRole{sm.Role()},
	})
	cdknag.NagSuppressions_AddResourceSuppressions(dmap, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("The Distributed Map's children are executions of this state machine whose names Step Functions makes up, and each execution keeps its files under " +
			orgRunsPrefix + "<execution>/ of the stack's organization sweep bucket, known only at run time: the policy names this state machine's executions, the targets.json " +
			"of an execution and the results/ prefix, with the actions AWS documents for a Distributed Map's ItemReader and ResultWriter " +
			"(https://docs.aws.amazon.com/step-functions/latest/dg/iam-policies-eg-dist-map.html; policy/org-state-machine.json)."),
		AppliesTo: &[]interface{}{
			map[string]any{"regex": "/^Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:<.*\\.Name>:\\*$/"},
			map[string]any{"regex": "/^Resource::arn:<AWS::Partition>:s3:::<.*>\\/" + regexp.QuoteMeta(orgRunsPrefix) + "\\*\\/(targets\\.json|results\\/\\*)$/"},
		},
	}}, jsii.Bool(false))
	// CDK makes the state machine depend on its whole role construct: the
	// role and its policy. The role is already ordered by the RoleArn
	// GetAtt, and naming it again in DependsOn draws cfn-lint warning
	// W3005; the policy is not referenced, and must exist before the state
	// machine (Step Functions checks the log delivery permissions when it
	// is created), so DependsOn keeps it alone. The override replaces the
	// list CDK renders at synth time.
	defaultPolicy := sm.Role().Node().FindChild(jsii.String("DefaultPolicy")).Node().DefaultChild().(awscdk.CfnResource)
	sm.Node().DefaultChild().(awscdk.CfnResource).AddOverride(jsii.String("DependsOn"), []*string{awscdk.Stack_Of(sm).GetLogicalId(defaultPolicy)})
	cdknag.NagSuppressions_AddResourceSuppressions(sm.Role(), &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("Step Functions' log delivery (logs:CreateLogDelivery and the other *LogDelivery actions, logs:PutResourcePolicy, logs:DescribeResourcePolicies, logs:DescribeLogGroups) and X-Ray tracing (xray:PutTraceSegments, xray:PutTelemetryRecords, xray:GetSampling*) support no resource-level permissions " +
			"(https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html, https://docs.aws.amazon.com/step-functions/latest/dg/xray-iam.html)."),
		AppliesTo: &[]interface{}{"Resource::*"},
	}}, jsii.Bool(true))
	return sm
}
