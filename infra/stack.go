package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdadestinations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/policy"
)

// RotatorStackProps configure one deployment of kms-rotator in one region.
type RotatorStackProps struct {
	awscdk.StackProps
	// Settings come from CDK context (see settings.go).
	Settings Settings
	// ModuleDir is the repository root the function is built from (./lambda).
	ModuleDir string
	// Code replaces the Go build of ./lambda; tests set it so synthesizing
	// the stack does not compile the function.
	Code awslambda.Code
}

// incidentDetailType is the detail-type of an incident request on the
// incident bus (docs/design.md "Invocation payloads"; the function's
// decoder accepts it from source request.SourceCustomEvent, and
// stack_test.go pins it to events/incident-eventbridge.json).
const incidentDetailType = "Rotate KMS Keys"

// scheduledInput is the EventBridge Scheduler target input of the sweep.
// Scheduler delivers the Input alone, without an event envelope, which the
// function decodes as a direct invocation of mode scheduled
// (lambda/request/decode.go).
func scheduledInput() string {
	raw, err := json.Marshal(map[string]string{"mode": string(request.ModeScheduled)})
	if err != nil {
		panic(err)
	}
	return string(raw)
}

// NewRotatorStack defines the incident and sweep functions, their role
// (rendered from policy/), the rotation ledger's table, the evidence
// bucket, the Scheduler schedule, the incident bus and its rule, the
// results bus and its notification rule, the failure queue, the responder
// policy, the dashboard and the alarms; in organization mode also the state machine and the
// member role's StackSets. Every role gets permissionsBoundaryArn, every
// taggable resource the tags.
func NewRotatorStack(scope constructs.Construct, id string, props *RotatorStackProps) awscdk.Stack {
	stack := awscdk.NewStack(scope, &id, &props.StackProps)
	s := props.Settings

	// Failed asynchronous invocations (Lambda does not retry them), sweeps
	// the Scheduler could not deliver and events EventBridge could not
	// deliver land here. SQS-managed encryption, because EventBridge cannot
	// send to a queue encrypted with the AWS managed KMS key
	// (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html).
	failures := awssqs.NewQueue(stack, jsii.String("FailureQueue"), &awssqs.QueueProps{
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
	})
	cdknag.NagSuppressions_AddResourceSuppressions(failures, &[]*cdknag.NagPackSuppression{{
		Id:     jsii.String("AwsSolutions-SQS3"),
		Reason: jsii.String("This queue is itself the dead-letter destination of the function's failed asynchronous invocations, of the Scheduler's undeliverable sweeps and of undeliverable EventBridge events; a DLQ of a DLQ adds nothing."),
	}}, jsii.Bool(false))

	// The log group is retained on stack deletion: it is the per-key
	// evidence of every rotation. A retained resource with a fixed name
	// would make the next deployment fail (the name exists), so the name
	// ends with the stack's own ID, new for every stack created: after
	// `cdk destroy`, `cdk deploy` makes a new group next to the kept one.
	logGroupName := awscdk.Fn_Join(jsii.String(""), &[]*string{
		jsii.String(logGroupPrefix(s)),
		awscdk.Fn_Select(jsii.Number(2), awscdk.Fn_Split(jsii.String("/"), awscdk.Aws_STACK_ID(), nil)),
	})
	logGroup := awslogs.NewLogGroup(stack, jsii.String("LogGroup"), &awslogs.LogGroupProps{
		LogGroupName:  logGroupName,
		Retention:     retention(s.LogRetentionDays),
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})

	ledger := newLedgerTable(stack)
	evidence := newEvidenceBucket(stack, s)
	// Organization mode: the bucket of the organization sweep's files.
	var orgBucket awss3.Bucket
	orgBucketName := ""
	if s.Org.Enabled() {
		orgBucket = newOrgBucket(stack)
		orgBucketName = *orgBucket.BucketName()
	}
	role := newFunctionRole(stack, s, *logGroupName, *failures.QueueArn(), *ledger.TableArn(), *evidence.BucketName(), orgBucketName)
	results := newResultsBus(stack, s, role)

	code := props.Code
	if code == nil {
		code = functionCode(props.ModuleDir)
	}
	env := map[string]*string{}
	for k, v := range settings.Environment(s.Function) {
		env[k] = jsii.String(v)
	}
	// The settings were validated with a placeholder table name
	// (ledgerTablePlaceholder), the default bus and no evidence bucket; the
	// function gets the table's own name, the results bus and the evidence
	// bucket, whose name CloudFormation makes up.
	env[settings.EnvLedgerTable] = ledger.TableName()
	env[settings.EnvResultBus] = results.EventBusName()
	env[settings.EnvEvidenceBucket] = evidence.BucketName()
	// One code asset, one role, one log group for both functions:
	// incidents (and plan and report runs) on the function responders
	// invoke, s.FunctionName; sweeps — the schedule's, or the organization
	// sweep's targets — on <functionName>-sweep, so that they do not share
	// a concurrency pool (sweepConcurrency). One role, because the role is
	// what key policies, the member roles' trust and the results bus's
	// policy name: a second role would have to be added to each of them.
	// One log group, because it is the evidence of every rotation.
	newFn := func(id, name, desc string, reserved int, env map[string]*string) awslambda.Function {
		fnProps := &awslambda.FunctionProps{
			FunctionName:  jsii.String(name),
			Description:   jsii.String(desc),
			Runtime:       awslambda.Runtime_PROVIDED_AL2023(),
			Architecture:  awslambda.Architecture_ARM_64(),
			Handler:       jsii.String("bootstrap"),
			Code:          code,
			MemorySize:    jsii.Number(float64(s.MemorySize)),
			Timeout:       awscdk.Duration_Seconds(jsii.Number(s.Timeout.Seconds())),
			Environment:   &env,
			LogGroup:      logGroup,
			LoggingFormat: awslambda.LoggingFormat_JSON,
			// The role's permissions are exactly policy/function-role.json:
			// grants CDK would add (e.g. for the destination) are dropped, and
			// the JSON already holds them.
			Role: role.WithoutPolicyUpdates(&awsiam.WithoutPolicyUpdatesOptions{AddGrantsToResources: jsii.Bool(false)}),
			// No retry of a failed asynchronous run: RotateKeyOnDemand has no
			// idempotency token, and the next scheduled run (or a continuation)
			// picks up whatever is left, so a retry could only spend a second
			// rotation on a key whose first one had started.
			RetryAttempts: jsii.Number(0),
			OnFailure:     awslambdadestinations.NewSqsDestination(failures),
			// An asynchronous event Lambda could not start within
			// ROTATOR_INCIDENT_MAX_AGE (throttling, reserved concurrency) goes
			// to the failure queue instead of running late: a late incident
			// must not rotate a key its responder has moved on from, and the
			// function would refuse it anyway. The same age applies to the
			// Scheduler's sweeps and to continuations, whose keys the next
			// sweep picks up (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-configuring.html,
			// MaximumEventAgeInSeconds, at least 60 s).
			MaxEventAge: awscdk.Duration_Seconds(jsii.Number(s.Function.IncidentMaxAge.Seconds())),
			// A continuation chain is bounded by ROTATOR_CONTINUATION_MAX (at
			// most maxStackContinuation); Lambda's own loop detection stays on
			// as a second stop.
			RecursiveLoop: awslambda.RecursiveLoop_TERMINATE,
		}
		// Reserved concurrency both guarantees and caps a function's
		// concurrency (https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html).
		if reserved > 0 {
			fnProps.ReservedConcurrentExecutions = jsii.Number(float64(reserved))
		}
		fn := awslambda.NewFunction(stack, jsii.String(id), fnProps)
		// The function refers to the role by GetAtt, which orders them already;
		// the DependsOn CDK adds for a role of its own making only draws cfn-lint
		// warning W3005. The role has no separate policy resource to wait for.
		fn.Node().DefaultChild().(awscdk.CfnResource).AddDeletionOverride(jsii.String("DependsOn"))
		return fn
	}
	// The incident function: no reserved concurrency by default, so an
	// incident never waits for one; overlapping runs are safe because every
	// rotation is preceded by GetKeyRotationStatus (in progress → skip) and
	// a ledger claim. reservedConcurrency guarantees it executions no other
	// function, the sweep function included, can take.
	fn := newFn("Function", s.FunctionName,
		"kms-rotator: rotates the key material of opted-in KMS keys on demand (incident response, plan and report runs)", s.ReservedConcurrency, env)
	// The sweep function: the same code, settings and role. In organization
	// mode its reserved concurrency is the Map state's MaxConcurrency
	// (orgMaxConcurrency): exactly what the organization sweep runs at once,
	// taken from no one else. ContinuationMax is 0 there, so it never
	// invokes itself; in single-account mode it continues its own sweep.
	//
	// In organization mode the sweep function alone gets the organization
	// sweep's bucket: it answers the state machine's targets and
	// org-summary requests, which read and write there. The incident
	// function, whose environment leaves it empty, refuses both, so a
	// responder allowed to invoke it can neither re-resolve the targets
	// (and with them the accounts a request may name) nor replay a
	// summary (docs/design.md "The targets request").
	sweepEnv := maps.Clone(env)
	if orgBucket != nil {
		sweepEnv[settings.EnvOrgBucket] = orgBucket.BucketName()
	}
	sweep := newFn("SweepFunction", sweepFunctionName(s),
		"kms-rotator: the scheduled sweep of opted-in KMS keys (and in organization mode every target of the organization sweep)", sweepConcurrency(s), sweepEnv)

	// Organization mode: the schedule starts a state machine that resolves
	// orgTargets and sweeps every (account, Region) target through the
	// member roles, on the sweep function.
	var orgSweep awsstepfunctions.StateMachine
	if s.Org.Enabled() {
		orgSweep = newOrgStateMachine(stack, "OrgSweep", &orgStateMachineProps{
			Function: sweep, Bucket: orgBucket, OrgTargets: s.Org.Targets, Regions: s.Org.Regions, MaxConcurrency: s.Org.MaxConcurrency, LogRetention: retention(s.LogRetentionDays),
		})
		if got := *sweep.Node().DefaultChild().(awslambda.CfnFunction).ReservedConcurrentExecutions(); got < float64(s.Org.MaxConcurrency) {
			// sweepConcurrency guarantees it; a change that broke it would
			// let the Map's iterations throttle each other.
			panic(fmt.Sprintf("the sweep function reserves %v executions, fewer than the Map's MaxConcurrency %d", got, s.Org.MaxConcurrency))
		}
	}
	scheduleGroup := newSchedule(stack, s, sweep, orgSweep, failures)
	bus := newIncidentChannel(stack, s, fn, failures)

	alarms := newAlarms(stack, "Alarms", &alarmsProps{Function: fn, SweepFunction: sweep, FailureQueue: failures, ScheduleGroup: scheduleGroup, OrgSweep: orgSweep, Settings: s})
	newResultNotification(stack, s, results, alarms.Topic, failures)
	newRotatorDashboard(stack, "Dashboard", &rotatorDashboardProps{
		Function: fn, SweepFunction: sweep, LogGroupName: *logGroupName, Settings: s, Alarms: alarms.All, OrgSweep: orgSweep, LedgerUnavailable: alarms.LedgerUnavailable,
	})
	responder := newResponderPolicy(stack, s, bus)
	if s.Org.Enabled() {
		newMemberStackSets(stack, s, role)
	}
	applyBoundaryAndTags(stack, s)

	keyStatements, err := policy.KeyStatements(policy.Params{RoleARN: *role.RoleArn(), TagKey: s.Function.TagKey, TagValue: s.Function.TagValue})
	if err != nil {
		panic(err)
	}
	out := func(id, desc string, value *string) {
		awscdk.NewCfnOutput(stack, jsii.String(id), &awscdk.CfnOutputProps{Description: jsii.String(desc), Value: value})
	}
	out("FunctionName", "Invoke this function for plan, report and incident runs", fn.FunctionName())
	out("FunctionArn", "The function's ARN", fn.FunctionArn())
	out("SweepFunctionName", "The function the schedule (or the organization sweep) runs sweeps on; same code, settings and role", sweep.FunctionName())
	out("RoleArn", "The function's execution role", role.RoleArn())
	out("LogGroupName", "The function's log group (kept when the stack is deleted)", logGroup.LogGroupName())
	out("FailureQueueUrl", "Failed asynchronous invocations and undeliverable sweeps and events", failures.QueueUrl())
	out("LedgerTableName", "The rotation ledger: one item per rotation claim, with who asked and why (kept when the stack is deleted)", ledger.TableName())
	out("EvidenceBucketName", "Each run's evidence record, under evidence/<account>/<Region>/<yyyy>/<mm>/<dd>/<run ID>.json ("+evidenceSummary(s.Evidence)+"; kept when the stack is deleted)",
		evidence.BucketName())
	out("AlarmTopicArn", "Alarm notifications and incident results; subscribe your on-call here", alarms.Topic.TopicArn())
	out("IncidentBusName", "Put incident requests (source kms-rotator, detail-type Rotate KMS Keys) on this event bus", bus.EventBusName())
	out("ResultBusName", "The function's result events (source kms-rotator, detail-type KMS Rotation Run Completed): add your rules on this event bus, which only the function may publish to", results.EventBusName())
	out("ResponderPolicyArn", "Attach to incident responders' roles: invoke the function, request incidents on the incident bus", responder.ManagedPolicyArn())
	out("KeyPolicyStatements", "Append to the Statement list of a key policy that does not delegate to IAM (policy/key-policy-statement.json)",
		stack.ToJsonString(statementsAsAny(keyStatements), nil))
	if s.Org.Enabled() {
		member, err := memberKeyStatements(s, *awscdk.Aws_PARTITION(), memberAccountPlaceholder)
		if err != nil {
			panic(err)
		}
		out("OrgSweepBucketName", fmt.Sprintf("Organization mode: each sweep's targets, resolution and per-target results, under runs/<execution>/ (kept %d days)", orgRunsExpiryDays),
			orgBucket.BucketName())
		out("OrgSweepStateMachineArn", "Organization mode: the organization sweep; start an execution (aws stepfunctions start-execution) to list and sweep the targets now",
			orgSweep.StateMachineArn())
		out("Member"+memberKeyPolicyOutput, "Organization mode: append to the Statement list of a member account's key policy that does not delegate to IAM, with "+memberAccountPlaceholder+
			" replaced by the key's account ID, so the member role may rotate the key while it is opted in (each member account's StackSet stack outputs them filled in as "+memberKeyPolicyOutput+")",
			jsii.String(string(member)))
	}
	return stack
}

// sweepFunctionName is the sweep function's name, <functionName>-sweep.
func sweepFunctionName(s Settings) string { return s.FunctionName + sweepFunctionSuffix }

// sweepFunctionSuffix ends the sweep function's name.
const sweepFunctionSuffix = "-sweep"

// logGroupPrefix is the function's log group name without the stack's
// unique suffix.
func logGroupPrefix(s Settings) string { return "/aws/lambda/" + s.FunctionName + "/" }

// newSchedule starts the sweep with EventBridge Scheduler, the successor of
// scheduled EventBridge rules, which also takes a time zone
// (https://docs.aws.amazon.com/scheduler/latest/UserGuide/what-is-scheduler.html).
// The schedule lives in a group of its own, so the group's metrics are this
// schedule's (the silence alarm reads its invocation attempts).
//
// In organization mode (orgSweep set) the schedule starts the state machine
// instead of the function: its targets are in its definition.
func newSchedule(stack awscdk.Stack, s Settings, fn awslambda.Function, orgSweep awsstepfunctions.StateMachine, failures awssqs.Queue) awsscheduler.ScheduleGroup {
	group := awsscheduler.NewScheduleGroup(stack, jsii.String("ScheduleGroup"), &awsscheduler.ScheduleGroupProps{
		ScheduleGroupName: jsii.String(s.FunctionName),
		// Deleted with the stack: a kept group with a fixed name would make
		// the next deployment fail, and it holds nothing worth keeping.
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	params := policy.Params{
		Partition: *awscdk.Aws_PARTITION(),
		Account:   *awscdk.Aws_ACCOUNT_ID(),
		Region:    *awscdk.Aws_REGION(),
		// The sweep function, not the one responders invoke.
		FunctionName:    sweepFunctionName(s),
		FailureQueueARN: *failures.QueueArn(),
	}
	render, target, input := policy.SchedulerRole, fn.FunctionArn(), scheduledInput()
	if orgSweep != nil {
		params.StateMachineARN = *orgSweep.StateMachineArn()
		render, target, input = policy.SchedulerOrgRole, orgSweep.StateMachineArn(), "{}"
	}
	doc, err := render(params)
	if err != nil {
		panic(err)
	}
	// Only the Scheduler of this account may assume the role (confused
	// deputy prevention: https://docs.aws.amazon.com/scheduler/latest/UserGuide/cross-service-confused-deputy-prevention.html).
	role := awsiam.NewRole(stack, jsii.String("SchedulerRole"), &awsiam.RoleProps{
		AssumedBy: awsiam.NewServicePrincipal(jsii.String("scheduler.amazonaws.com"), &awsiam.ServicePrincipalOpts{
			Conditions: &map[string]any{"StringEquals": map[string]any{"aws:SourceAccount": awscdk.Aws_ACCOUNT_ID()}},
		}),
		Description: jsii.String("kms-rotator schedule: start the sweep, nothing else (policy/scheduler-role.json)"),
		InlinePolicies: &map[string]awsiam.PolicyDocument{
			"kms-rotator-schedule": awsiam.PolicyDocument_FromJson(doc.Map()),
		},
	})
	awsscheduler.NewCfnSchedule(stack, jsii.String("Schedule"), &awsscheduler.CfnScheduleProps{
		Description:                jsii.String("kms-rotator scheduled sweep of opted-in keys"),
		GroupName:                  group.ScheduleGroupName(),
		ScheduleExpression:         jsii.String(s.Schedule),
		ScheduleExpressionTimezone: jsii.String(s.ScheduleTimezone),
		// Off: the sweep runs at the time written, which the silence alarm
		// and the operators expect.
		FlexibleTimeWindow: &awsscheduler.CfnSchedule_FlexibleTimeWindowProperty{Mode: jsii.String("OFF")},
		State:              jsii.String("ENABLED"),
		Target: &awsscheduler.CfnSchedule_TargetProperty{
			Arn:     target,
			RoleArn: role.RoleArn(),
			Input:   jsii.String(input),
			// No retry: the Scheduler invokes asynchronously, and a
			// delivery that failed goes to the failure queue (alarmed);
			// the next firing sweeps again anyway.
			RetryPolicy: &awsscheduler.CfnSchedule_RetryPolicyProperty{
				MaximumRetryAttempts:     jsii.Number(0),
				MaximumEventAgeInSeconds: jsii.Number(3600),
			},
			DeadLetterConfig: &awsscheduler.CfnSchedule_DeadLetterConfigProperty{Arn: failures.QueueArn()},
		},
	})
	return group
}

// newIncidentChannel is the protected way in for SOAR tools: a bus of its
// own whose resource policy admits only the incident principals (or the
// account), and the one rule that turns its incident requests into runs.
// No rule on the default bus matches incident requests: anyone allowed
// events:PutEvents there — the function's own role included — must not be
// able to start rotations.
func newIncidentChannel(stack awscdk.Stack, s Settings, fn awslambda.Function, failures awssqs.Queue) awsevents.EventBus {
	bus := awsevents.NewEventBus(stack, jsii.String("IncidentBus"), &awsevents.EventBusProps{
		EventBusName: jsii.String(s.IncidentBusName),
		Description:  jsii.String("kms-rotator incident requests (source kms-rotator, detail-type Rotate KMS Keys) from responders and SOAR tools"),
	})
	principals, patterns := incidentPrincipals(s)
	doc, err := policy.IncidentBus(policy.Params{
		Partition:                 *awscdk.Aws_PARTITION(),
		Account:                   *awscdk.Aws_ACCOUNT_ID(),
		Region:                    *awscdk.Aws_REGION(),
		IncidentBusName:           s.IncidentBusName,
		IncidentPrincipals:        principals,
		IncidentPrincipalPatterns: patterns,
	})
	if err != nil {
		panic(err)
	}
	// One policy document on the bus itself (AWS::Events::EventBus
	// Policy), so the allow and the deny arrive together.
	bus.Node().DefaultChild().(awsevents.CfnEventBus).SetPolicy(doc.Map())

	rule := awsevents.NewRule(stack, jsii.String("IncidentRule"), &awsevents.RuleProps{
		Description: jsii.String("kms-rotator incident requests on the incident bus, from this account only"),
		EventBus:    bus,
		EventPattern: &awsevents.EventPattern{
			Source:     jsii.Strings(request.SourceCustomEvent),
			DetailType: jsii.Strings(incidentDetailType),
			// The account the event was put from: the bus policy keeps
			// other accounts out, and the rule does not trust that alone.
			Account: &[]*string{awscdk.Aws_ACCOUNT_ID()},
		},
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(fn, &awseventstargets.LambdaFunctionProps{
			DeadLetterQueue: failures,
			// EventBridge retries a failed delivery with backoff until the
			// event is ROTATOR_INCIDENT_MAX_AGE old, then sends it to the
			// failure queue: the age, not the count, bounds the retries, so
			// the count is EventBridge's maximum
			// (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-retry-policy.html;
			// MaximumEventAgeInSeconds at least 60).
			MaxEventAge:   awscdk.Duration_Seconds(jsii.Number(s.Function.IncidentMaxAge.Seconds())),
			RetryAttempts: jsii.Number(maxRuleRetryAttempts),
		})},
	})
	// The target's Lambda permission takes its logical ID from the stack's
	// construct ID, which differs between the single-Region form and
	// regions=…; a fixed one keeps the stack identical in both.
	for _, c := range *rule.Node().FindAll(constructs.ConstructOrder_PREORDER) {
		if p, ok := c.(awslambda.CfnPermission); ok {
			p.OverrideLogicalId(jsii.String("IncidentRuleInvokesFunction"))
		}
	}
	return bus
}

// maxRuleRetryAttempts is the most retries an EventBridge rule target takes
// (RetryPolicy MaximumRetryAttempts, 0–185).
const maxRuleRetryAttempts = 185

// incidentPrincipals are the principals the incident bus admits and the
// ARN patterns outside which it denies: the listed roles, or every
// principal of the stack's account (which its IAM policies then decide).
func incidentPrincipals(s Settings) (principals, patterns []string) {
	if len(s.IncidentPrincipals) > 0 {
		return s.IncidentPrincipals, s.IncidentPrincipals
	}
	account := "arn:" + *awscdk.Aws_PARTITION() + ":iam::" + *awscdk.Aws_ACCOUNT_ID() + ":"
	return []string{account + "root"}, []string{account + "*"}
}

// newResultsBus is the event bus of the function's result events
// (ROTATOR_RESULT_BUS), named <functionName>-results. Its resource policy
// (policy/results-bus.json) denies events:PutEvents to every principal but
// the function's role, so a kms-rotator result on it comes from the
// function: on the default bus any principal allowed events:PutEvents
// could publish one, and the notification rule and the SOAR tools waiting
// for a result would believe it. In organization mode the central function
// publishes every result with its own role; member roles cannot put events
// anywhere.
func newResultsBus(stack awscdk.Stack, s Settings, role awsiam.Role) awsevents.EventBus {
	name := resultBusName(s)
	bus := awsevents.NewEventBus(stack, jsii.String("ResultsBus"), &awsevents.EventBusProps{
		EventBusName: jsii.String(name),
		Description:  jsii.String("kms-rotator result events (source kms-rotator, detail-type KMS Rotation Run Completed), published by the function only"),
	})
	doc, err := policy.ResultsBus(policy.Params{
		Partition:     *awscdk.Aws_PARTITION(),
		Account:       *awscdk.Aws_ACCOUNT_ID(),
		Region:        *awscdk.Aws_REGION(),
		ResultBusName: name,
		RoleARN:       *role.RoleArn(),
	})
	if err != nil {
		panic(err)
	}
	bus.Node().DefaultChild().(awsevents.CfnEventBus).SetPolicy(doc.Map())
	return bus
}

// resultBusName is the results bus's name, <functionName>-results: a
// custom bus name holds at most 256 characters
// (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_CreateEventBus.html),
// and a function name at most 64.
func resultBusName(s Settings) string { return s.FunctionName + resultRuleSuffix }

// newResultNotification sends the function's result events — published
// on the results bus after every incident run and every run with failed
// keys — to the alarm topic as a one-line summary. The pattern repeats the publisher's rule
// ($or in detail: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-content-based-filtering.html),
// so a result event of another kind never pages anyone. The message is an
// input transformer (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html);
// fields a run may lack (the reason of a sweep, truncated when nothing was
// cut) are placed where an empty or null value still reads.
//
// The rule has a fixed name, <functionName>-results, on the bus of the
// same name, so that the policy of a team's own topic (alarmTopicArn) can
// name its ARN (rule/<bus>/<rule> for a rule of a custom bus:
// https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoneventbridge.html#amazoneventbridge-resources-for-iam-policies)
// before the stack exists (docs/deploy.md).
func newResultNotification(stack awscdk.Stack, s Settings, results awsevents.IEventBus, topic awssns.ITopic, failures awssqs.Queue) {
	field := func(path string) string { return *awsevents.EventField_FromPath(jsii.String(path)) }
	msg := fmt.Sprintf("kms-rotator %s run %s in %s %s (dry run: %s): rotated %s, would rotate %s, skipped %s, failed %s, deferred %s, overdue %s of %s keys; reasons %s. "+
		"Incident reason: %s. Lambda request %s. Entries cut to fit: %s. Per-key results: the event's detail.keys and the function's log group.",
		field("$.detail.mode"), field("$.detail.runId"), field("$.account"), field("$.region"), field("$.detail.dryRun"),
		field("$.detail.summary.rotated"), field("$.detail.summary.wouldRotate"), field("$.detail.summary.skipped"),
		field("$.detail.summary.failed"), field("$.detail.summary.deferred"), field("$.detail.summary.overdue"),
		field("$.detail.summary.candidates"), field("$.detail.summary.reasons"),
		field("$.detail.reason"), field("$.detail.requestId"), field("$.detail.truncated"))
	rule := awsevents.NewRule(stack, jsii.String("ResultNotificationRule"), &awsevents.RuleProps{
		RuleName:    jsii.String(resultRuleName(s)),
		Description: jsii.String("kms-rotator run results of incidents and of runs with failed keys, to the alarm topic"),
		EventBus:    results,
		EventPattern: &awsevents.EventPattern{
			Source:     jsii.Strings(settings.ResultEventSource),
			DetailType: jsii.Strings(settings.ResultEventDetailType),
			Account:    &[]*string{awscdk.Aws_ACCOUNT_ID()},
			Detail: &map[string]any{"$or": []any{
				map[string]any{"mode": []any{string(request.ModeIncident)}},
				map[string]any{"summary": map[string]any{"failed": []any{map[string]any{"numeric": []any{">", 0}}}}},
			}},
		},
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewSnsTopic(topic, &awseventstargets.SnsTopicProps{
			Message:         awsevents.RuleTargetInput_FromText(jsii.String(msg)),
			DeadLetterQueue: failures,
		})},
	})
	// The target lets the EventBridge service publish to the topic, from
	// any rule of any account; only this rule may (confused deputy:
	// https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html).
	// A team's own topic (alarmTopicArn) keeps its policy: CDK adds nothing
	// to an imported topic, and docs/deploy.md names the statement it needs.
	topic.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("OnlyTheResultNotificationRule"),
		Effect:     awsiam.Effect_DENY,
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("events.amazonaws.com"), nil)},
		Actions:    jsii.Strings("sns:Publish"),
		Resources:  &[]*string{topic.TopicArn()},
		Conditions: &map[string]any{"ArnNotEquals": map[string]any{"aws:SourceArn": rule.RuleArn()}},
	}))
}

// resultRuleName is the result notification rule's name.
func resultRuleName(s Settings) string { return s.FunctionName + resultRuleSuffix }

// resultRuleSuffix ends the names of the results bus and of its
// notification rule.
const resultRuleSuffix = "-results"

// newResponderPolicy is the customer managed policy for incident responders
// (policy/responder.json). Unnamed: IAM names are global, and one stack per
// Region would collide on a fixed name.
func newResponderPolicy(stack awscdk.Stack, s Settings, bus awsevents.EventBus) awsiam.ManagedPolicy {
	doc, err := policy.Responder(policy.Params{
		Partition:          *awscdk.Aws_PARTITION(),
		Account:            *awscdk.Aws_ACCOUNT_ID(),
		Region:             *awscdk.Aws_REGION(),
		FunctionName:       s.FunctionName,
		IncidentBusName:    *bus.EventBusName(),
		IncidentSource:     request.SourceCustomEvent,
		IncidentDetailType: incidentDetailType,
	})
	if err != nil {
		panic(err)
	}
	return awsiam.NewManagedPolicy(stack, jsii.String("ResponderPolicy"), &awsiam.ManagedPolicyProps{
		Description: jsii.String("kms-rotator incident responders: invoke the function and put incident requests on the incident bus (policy/responder.json)"),
		Document:    awsiam.PolicyDocument_FromJson(doc.Map()),
	})
}

// The reasons of the cdk-nag suppressions on the KMS and tagging
// statements, which the function role and the member role (infra/org.go)
// share.
const (
	keyWildcardReason = "Keys are selected by tag at run time, so key ARNs cannot be listed: kms:RotateKeyOnDemand, kms:GetKeyRotationStatus and kms:ListKeyRotations on key/* are " +
		"limited by the condition aws:ResourceTag/<opt-in tag> (and kms:KeySpec = SYMMETRIC_DEFAULT for rotation) to this account's opted-in keys; the region is a wildcard because a " +
		"multi-Region replica's primary may live in another region. kms:DescribeKey and kms:ListResourceTags are read-only on this account's keys so an incident request for a key " +
		"that is not opted in is answered not-opted-in instead of access-denied."
	// keyWildcardFinding and listWildcardFinding are the findings (appliesTo)
	// these reasons answer.
	keyWildcardFinding  = "Resource::arn:<AWS::Partition>:kms:*:<AWS::AccountId>:key/*"
	listWildcardFinding = "Resource::*"
	listWildcardReason  = "kms:ListAliases and tag:GetResources support no resource-level permissions (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awskeymanagementservice.html, " +
		"https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsresourcegroupstaggingapi.html): Resource must be *. Both are read-only listings."
	// orgReadWildcardReason answers listWildcardFinding for
	// policy/organization-read.json (organization mode with an OU or root
	// target).
	orgReadWildcardReason = "Organization mode lists the accounts of the target OUs and roots at run time (policy/organization-read.json, read-only): organizations:DescribeOrganization supports " +
		"no resource type, and the root and OU ARNs that organizations:ListAccountsForParent and organizations:ListOrganizationalUnitsForParent support hold the management account's ID " +
		"and name no parent OU, so the nested OUs found at run time could only be matched by a wildcard over the organization " +
		"(https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsorganizations.html). The central account can list only its own organization."
)

// newFunctionRole creates the execution role with exactly the inline policy
// rendered from policy/function-role.json, policy/evidence-write.json (the
// evidence bucket's evidence/ prefix), policy/security-hub.json when
// Security Hub findings are on, and organization mode's statements.
func newFunctionRole(stack awscdk.Stack, s Settings, logGroupName, failureQueueARN, ledgerTableARN, evidenceBucketName, orgBucketName string) awsiam.Role {
	doc, err := policy.FunctionRole(policy.Params{
		Partition:    *awscdk.Aws_PARTITION(),
		Account:      *awscdk.Aws_ACCOUNT_ID(),
		Region:       *awscdk.Aws_REGION(),
		TagKey:       s.Function.TagKey,
		TagValue:     s.Function.TagValue,
		LogGroupName: logGroupName,
		FunctionName: s.FunctionName,
		// Each function continues its own chain (a plan or report run on
		// the incident function, a sweep on the sweep function).
		SweepFunctionName: sweepFunctionName(s),
		FailureQueueARN:   failureQueueARN,
		LedgerTableARN:    ledgerTableARN,
		// The result event the function announces on its results bus.
		ResultEventSource:     settings.ResultEventSource,
		ResultEventDetailType: settings.ResultEventDetailType,
		ResultBusName:         resultBusName(s),
	})
	if err != nil {
		panic(err)
	}
	write, err := policy.EvidenceWrite(policy.Params{Partition: *awscdk.Aws_PARTITION(), EvidenceBucketName: evidenceBucketName})
	if err != nil {
		panic(err)
	}
	doc.Statement = append(doc.Statement, write.Statement...)
	if s.Function.SecurityHub {
		// The function's own account's findings, in its Region and, in
		// organization mode, in every Region swept: a target run of the
		// own account imports through the function's role in the run's
		// Region, while a member account's findings go through its member
		// role (memberTemplate).
		regions := []string{*awscdk.Aws_REGION()}
		if s.Org.Enabled() {
			regions = append(regions, s.Org.Regions...)
		}
		hub, err := policy.SecurityHubIn(policy.Params{Partition: *awscdk.Aws_PARTITION(), Account: *awscdk.Aws_ACCOUNT_ID()}, regions)
		if err != nil {
			panic(err)
		}
		doc.Statement = append(doc.Statement, hub.Statement...)
	}
	if s.Org.Enabled() {
		assume, err := policy.AssumeMemberRole(policy.Params{
			Partition: *awscdk.Aws_PARTITION(), MemberRoleName: s.Org.MemberRoleName, OrgID: s.Org.OrgID,
		})
		if err != nil {
			panic(err)
		}
		doc.Statement = append(doc.Statement, assume)
		// The organization sweep's files: the targets run writes its
		// targets and resolution, the org-summary run reads the results.
		runs, err := policy.OrgRunsFunction(policy.Params{Partition: *awscdk.Aws_PARTITION(), OrgBucketName: orgBucketName})
		if err != nil {
			panic(err)
		}
		doc.Statement = append(doc.Statement, runs.Statement...)
	}
	if s.Org.ListsAccounts() {
		// The function lists the accounts of the target OUs and roots at
		// each run; account IDs alone need no Organizations call.
		read, err := policy.OrganizationRead(policy.Params{})
		if err != nil {
			panic(err)
		}
		doc.Statement = append(doc.Statement, read.Statement...)
	}
	role := awsiam.NewRole(stack, jsii.String("FunctionRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("kms-rotator function: rotate opted-in keys on demand, nothing else (policy/function-role.json)"),
		InlinePolicies: &map[string]awsiam.PolicyDocument{
			"kms-rotator": awsiam.PolicyDocument_FromJson(doc.Map()),
		},
	})
	cdknag.NagSuppressions_AddResourceSuppressions(role, &[]*cdknag.NagPackSuppression{{
		Id:        jsii.String("AwsSolutions-IAM5"),
		Reason:    jsii.String(keyWildcardReason),
		AppliesTo: &[]interface{}{keyWildcardFinding},
	}, {
		Id:        jsii.String("AwsSolutions-IAM5"),
		Reason:    jsii.String(listWildcardReason),
		AppliesTo: &[]interface{}{listWildcardFinding},
	}, {
		Id:     jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("Log streams are created by Lambda with generated names inside the function's own log group; the policy names that group and only its streams."),
		// The group's name ends with the stack's ID (see NewRotatorStack).
		AppliesTo: &[]interface{}{map[string]any{"regex": fmt.Sprintf("/^Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:%s.*:\\*$/",
			regexp.QuoteMeta(logGroupPrefix(s)))}},
	}, {
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("Each run writes one evidence record under a key of its own, evidence/<account>/<Region>/<yyyy>/<mm>/<dd>/<run ID>.json, known only at run time; " +
			"the policy names the stack's evidence bucket and that prefix, and grants s3:PutObject alone: no read, list, delete or retention change (policy/evidence-write.json)."),
		// The bucket's name is CloudFormation's (a Ref of its logical ID).
		AppliesTo: &[]interface{}{map[string]any{"regex": "/^Resource::arn:<AWS::Partition>:s3:::<EvidenceBucket[0-9A-F]{8}>\\/" + regexp.QuoteMeta(evidencePrefix) + "\\*$/"}},
	}}, jsii.Bool(true))
	if s.Org.Enabled() {
		cdknag.NagSuppressions_AddResourceSuppressions(role, &[]*cdknag.NagPackSuppression{{
			Id: jsii.String("AwsSolutions-IAM5"),
			Reason: jsii.String("Organization mode: the function assumes the member role, whose name is fixed, in each target account; the accounts of the target OUs " +
				"are found at run time and change as accounts join, so the account is a wildcard (limited by aws:ResourceOrgID when -c orgId is set)."),
			AppliesTo: &[]interface{}{"Resource::arn:<AWS::Partition>:iam::*:role/" + s.Org.MemberRoleName},
		}, {
			Id: jsii.String("AwsSolutions-IAM5"),
			Reason: jsii.String("Organization mode: each sweep keeps its files under " + orgRunsPrefix + "<execution>/ of the stack's organization sweep bucket, the execution's " +
				"name known only at run time; the function may put the two files of a targets run (targets.json, resolution.json) and read what is under " + orgRunsPrefix +
				", nothing else in the bucket (policy/org-runs-function.json)."),
			AppliesTo: &[]interface{}{map[string]any{"regex": "/^Resource::arn:<AWS::Partition>:s3:::<OrgSweepBucket[0-9A-F]{8}>\\/" + regexp.QuoteMeta(orgRunsPrefix) + "\\*(\\/targets\\.json|\\/resolution\\.json)?$/"}},
		}}, jsii.Bool(true))
	}
	if s.Org.ListsAccounts() {
		cdknag.NagSuppressions_AddResourceSuppressions(role, &[]*cdknag.NagPackSuppression{{
			Id:        jsii.String("AwsSolutions-IAM5"),
			Reason:    jsii.String(orgReadWildcardReason),
			AppliesTo: &[]interface{}{listWildcardFinding},
		}}, jsii.Bool(true))
	}
	return role
}

// retention maps days to the CDK enum (validated in settings.go).
func retention(days int) awslogs.RetentionDays {
	m := map[int]awslogs.RetentionDays{
		0: awslogs.RetentionDays_INFINITE, 1: awslogs.RetentionDays_ONE_DAY, 3: awslogs.RetentionDays_THREE_DAYS,
		5: awslogs.RetentionDays_FIVE_DAYS, 7: awslogs.RetentionDays_ONE_WEEK, 14: awslogs.RetentionDays_TWO_WEEKS,
		30: awslogs.RetentionDays_ONE_MONTH, 60: awslogs.RetentionDays_TWO_MONTHS, 90: awslogs.RetentionDays_THREE_MONTHS,
		120: awslogs.RetentionDays_FOUR_MONTHS, 150: awslogs.RetentionDays_FIVE_MONTHS, 180: awslogs.RetentionDays_SIX_MONTHS,
		365: awslogs.RetentionDays_ONE_YEAR, 400: awslogs.RetentionDays_THIRTEEN_MONTHS, 545: awslogs.RetentionDays_EIGHTEEN_MONTHS,
		731: awslogs.RetentionDays_TWO_YEARS, 1096: awslogs.RetentionDays_THREE_YEARS, 1827: awslogs.RetentionDays_FIVE_YEARS,
		2192: awslogs.RetentionDays_SIX_YEARS, 2557: awslogs.RetentionDays_SEVEN_YEARS, 2922: awslogs.RetentionDays_EIGHT_YEARS,
		3288: awslogs.RetentionDays_NINE_YEARS, 3653: awslogs.RetentionDays_TEN_YEARS,
	}
	r, ok := m[days]
	if !ok {
		panic(fmt.Sprintf("log retention of %d days was not validated", days))
	}
	return r
}

func statementsAsAny(s []policy.Statement) []any {
	out := make([]any, len(s))
	for i, st := range s {
		out[i] = policy.Document{Statement: []policy.Statement{st}}.Map()["Statement"].([]any)[0]
	}
	return out
}
