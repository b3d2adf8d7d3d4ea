package main

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdadestinations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/kms-rotator/kms-rotator/lambda/rotator"
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

// Incident events from SOAR tools (docs/design.md "Invocation payloads").
const (
	incidentSource     = "kms-rotator"
	incidentDetailType = "Rotate KMS Keys"
)

// NewRotatorStack defines the function, its role (rendered from policy/),
// the schedule, the incident rule, the failure queue, the dashboard and the alarms.
func NewRotatorStack(scope constructs.Construct, id string, props *RotatorStackProps) awscdk.Stack {
	stack := awscdk.NewStack(scope, &id, &props.StackProps)
	s := props.Settings

	// Failed asynchronous invocations (after Lambda's retries, and events
	// EventBridge could not deliver) land here. SQS-managed encryption,
	// because EventBridge cannot send to a queue encrypted with the AWS
	// managed KMS key (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html).
	failures := awssqs.NewQueue(stack, jsii.String("FailureQueue"), &awssqs.QueueProps{
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
	})
	cdknag.NagSuppressions_AddResourceSuppressions(failures, &[]*cdknag.NagPackSuppression{{
		Id:     jsii.String("AwsSolutions-SQS3"),
		Reason: jsii.String("This queue is itself the dead-letter destination of the function's failed asynchronous invocations and of undeliverable EventBridge events; a DLQ of a DLQ adds nothing."),
	}}, jsii.Bool(false))

	// The log group is named explicitly so the role's policy can name it
	// without referring to the function (which would be circular). Retained
	// on stack deletion: it is the per-key evidence of every rotation.
	logGroupName := "/aws/lambda/" + s.FunctionName
	logGroup := awslogs.NewLogGroup(stack, jsii.String("LogGroup"), &awslogs.LogGroupProps{
		LogGroupName:  jsii.String(logGroupName),
		Retention:     retention(s.LogRetentionDays),
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})

	role := newFunctionRole(stack, s, logGroupName, *failures.QueueArn())

	code := props.Code
	if code == nil {
		code = functionCode(props.ModuleDir)
	}
	env := map[string]*string{}
	for k, v := range s.Environment() {
		env[k] = jsii.String(v)
	}
	fn := awslambda.NewFunction(stack, jsii.String("Function"), &awslambda.FunctionProps{
		FunctionName:  jsii.String(s.FunctionName),
		Description:   jsii.String("kms-rotator: rotates the key material of opted-in KMS keys on demand (scheduled sweep and incident response)"),
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
		// A continuation chain is bounded by ROTATOR_CONTINUATION_MAX (≤ 15);
		// Lambda's own loop detection stays on as a second stop.
		RecursiveLoop: awslambda.RecursiveLoop_TERMINATE,
		// No reserved concurrency: an incident invocation must never queue
		// behind a running sweep. Overlapping runs are safe because every
		// rotation is preceded by GetKeyRotationStatus (in progress → skip).
	})

	// The function refers to the role by GetAtt, which orders them already;
	// the DependsOn CDK adds for a role of its own making only draws cfn-lint
	// warning W3005. The role has no separate policy resource to wait for.
	fn.Node().DefaultChild().(awscdk.CfnResource).AddDeletionOverride(jsii.String("DependsOn"))

	target := func() awsevents.IRuleTarget {
		return awseventstargets.NewLambdaFunction(fn, &awseventstargets.LambdaFunctionProps{
			DeadLetterQueue: failures,
		})
	}
	awsevents.NewRule(stack, jsii.String("Schedule"), &awsevents.RuleProps{
		Description: jsii.String("kms-rotator scheduled sweep of opted-in keys"),
		Schedule:    awsevents.Schedule_Expression(jsii.String(s.Schedule)),
		Targets:     &[]awsevents.IRuleTarget{target()},
	})
	awsevents.NewRule(stack, jsii.String("IncidentRule"), &awsevents.RuleProps{
		Description: jsii.String("kms-rotator incident requests from SOAR tools on the default event bus"),
		EventPattern: &awsevents.EventPattern{
			Source:     jsii.Strings(incidentSource),
			DetailType: jsii.Strings(incidentDetailType),
		},
		Targets: &[]awsevents.IRuleTarget{target()},
	})

	alarms := newAlarms(stack, "Alarms", &alarmsProps{Function: fn, Settings: s})
	newRotatorDashboard(stack, "Dashboard", &rotatorDashboardProps{
		Function: fn, LogGroupName: logGroupName, Settings: s, Alarms: alarms.All,
	})

	keyStatements, err := policy.KeyStatements(policy.Params{RoleARN: *role.RoleArn(), TagKey: s.TagKey, TagValue: s.TagValue})
	if err != nil {
		panic(err)
	}
	out := func(id, desc string, value *string) {
		awscdk.NewCfnOutput(stack, jsii.String(id), &awscdk.CfnOutputProps{Description: jsii.String(desc), Value: value})
	}
	out("FunctionName", "Invoke this function for plan, report and incident runs", fn.FunctionName())
	out("FunctionArn", "The function's ARN", fn.FunctionArn())
	out("RoleArn", "The function's execution role", role.RoleArn())
	out("FailureQueueUrl", "Failed asynchronous invocations", failures.QueueUrl())
	out("AlarmTopicArn", "Alarm notifications; subscribe your on-call here", alarms.Topic.TopicArn())
	out("KeyPolicyStatements", "Append to the Statement list of a key policy that does not delegate to IAM (policy/key-policy-statement.json)",
		stack.ToJsonString(statementsAsAny(keyStatements), nil))
	return stack
}

// newFunctionRole creates the execution role with exactly the inline policy
// rendered from policy/function-role.json.
func newFunctionRole(stack awscdk.Stack, s Settings, logGroupName, failureQueueARN string) awsiam.Role {
	doc, err := policy.FunctionRole(policy.Params{
		Partition:       *awscdk.Aws_PARTITION(),
		Account:         *awscdk.Aws_ACCOUNT_ID(),
		Region:          *awscdk.Aws_REGION(),
		TagKey:          s.TagKey,
		TagValue:        s.TagValue,
		LogGroupName:    logGroupName,
		FunctionName:    s.FunctionName,
		FailureQueueARN: failureQueueARN,
		// The result event the function announces on the default bus.
		ResultEventSource:     rotator.ResultEventSource,
		ResultEventDetailType: rotator.ResultEventDetailType,
	})
	if err != nil {
		panic(err)
	}
	role := awsiam.NewRole(stack, jsii.String("FunctionRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("kms-rotator function: rotate opted-in keys on demand, nothing else (policy/function-role.json)"),
		InlinePolicies: &map[string]awsiam.PolicyDocument{
			"kms-rotator": awsiam.PolicyDocument_FromJson(doc.Map()),
		},
	})
	cdknag.NagSuppressions_AddResourceSuppressions(role, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("Keys are selected by tag at run time, so key ARNs cannot be listed: kms:RotateKeyOnDemand, kms:GetKeyRotationStatus and kms:ListKeyRotations on key/* are " +
			"limited by the condition aws:ResourceTag/<opt-in tag> (and kms:KeySpec = SYMMETRIC_DEFAULT for rotation) to this account's opted-in keys; the region is a wildcard because a " +
			"multi-Region replica's primary may live in another region. kms:DescribeKey and kms:ListResourceTags are read-only on this account's keys so an incident request for a key " +
			"that is not opted in is answered not-opted-in instead of access-denied."),
		AppliesTo: &[]interface{}{"Resource::arn:<AWS::Partition>:kms:*:<AWS::AccountId>:key/*"},
	}, {
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("kms:ListAliases and tag:GetResources support no resource-level permissions (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awskeymanagementservice.html, " +
			"https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsresourcegroupstaggingapi.html): Resource must be *. Both are read-only listings."),
		AppliesTo: &[]interface{}{"Resource::*"},
	}, {
		Id:        jsii.String("AwsSolutions-IAM5"),
		Reason:    jsii.String("Log streams are created by Lambda with generated names inside the function's own log group; the policy names that group and only its streams."),
		AppliesTo: &[]interface{}{fmt.Sprintf("Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:%s:*", logGroupName)},
	}}, jsii.Bool(true))
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
