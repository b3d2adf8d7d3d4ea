package main

import (
	"fmt"
	"math"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// modes are the values of the EMF dimension Mode (lambda/request.Mode).
var modes = []string{"scheduled", "incident", "plan", "report"}

// rotatorMetric is one EMF metric of docs/design.md "Metrics and logs" with
// dimensions [Mode].
func rotatorMetric(s Settings, name, mode, statistic string, period time.Duration) awscloudwatch.Metric {
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace:     jsii.String(s.MetricsNamespace),
		MetricName:    jsii.String(name),
		DimensionsMap: &map[string]*string{"Mode": jsii.String(mode)},
		Statistic:     jsii.String(statistic),
		Period:        awscdk.Duration_Seconds(jsii.Number(period.Seconds())),
		Label:         jsii.String(mode),
	})
}

// sumOverModes adds one metric across the given modes: EMF publishes it per
// Mode, and an alarm must not miss a failure because it happened in a mode
// nobody thought of.
func sumOverModes(s Settings, name string, ms []string, period time.Duration, label string) awscloudwatch.MathExpression {
	using := map[string]awscloudwatch.IMetric{}
	for _, m := range ms {
		using[m] = rotatorMetric(s, name, m, "Sum", period)
	}
	return awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression:   jsii.String("SUM(METRICS())"),
		UsingMetrics: &using,
		Period:       awscdk.Duration_Seconds(jsii.Number(period.Seconds())),
		Label:        jsii.String(label),
	})
}

type alarmsProps struct {
	Function awslambda.Function
	Settings Settings
}

// rotatorAlarms are the alarms of issue 4, all notifying Topic.
type rotatorAlarms struct {
	Topic           awssns.Topic
	KeysFailed      awscloudwatch.Alarm
	Silence         awscloudwatch.Alarm
	BudgetExhausted awscloudwatch.Alarm
	FunctionErrors  awscloudwatch.Alarm
	All             []awscloudwatch.IAlarm
}

// silencePeriod is the alarm period of the silence alarm, which alarms when
// two consecutive periods have no completed scheduled run. CloudWatch allows
// at most 7 days of evaluation (1 day for periods under an hour), see
// https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html,
// so slower schedules are watched over 2 × 3.5 days.
func silencePeriod(schedule time.Duration) time.Duration {
	p := time.Duration(math.Ceil(schedule.Minutes())) * time.Minute
	if p < time.Minute {
		p = time.Minute
	}
	if p < time.Hour && 2*p > 24*time.Hour {
		p = 12 * time.Hour
	}
	if max := 84 * time.Hour; p > max {
		p = max
	}
	return p
}

func newAlarms(scope constructs.Construct, id string, props *alarmsProps) *rotatorAlarms {
	c := constructs.NewConstruct(scope, &id)
	s := props.Settings
	topic := awssns.NewTopic(c, jsii.String("Topic"), &awssns.TopicProps{
		DisplayName: jsii.String("kms-rotator alarms"),
		EnforceSSL:  jsii.Bool(true),
	})
	// Not encrypted with KMS: the topic carries only alarm state changes, and
	// CloudWatch alarms cannot publish to a topic encrypted with the AWS
	// managed key aws/sns. (cdk-nag's AwsSolutions pack has no rule on it.)
	if s.AlarmEmail != "" {
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(s.AlarmEmail), nil))
	}
	action := awscloudwatchactions.NewSnsAction(topic)
	a := &rotatorAlarms{Topic: topic}
	alarm := func(id, name, desc string, metric awscloudwatch.IMetric, op awscloudwatch.ComparisonOperator, threshold, periods float64, missing awscloudwatch.TreatMissingData) awscloudwatch.Alarm {
		al := awscloudwatch.NewAlarm(c, jsii.String(id), &awscloudwatch.AlarmProps{
			AlarmName:          jsii.String(s.FunctionName + "-" + name),
			AlarmDescription:   jsii.String(desc),
			Metric:             metric,
			ComparisonOperator: op,
			Threshold:          jsii.Number(threshold),
			EvaluationPeriods:  jsii.Number(periods),
			DatapointsToAlarm:  jsii.Number(periods),
			TreatMissingData:   missing,
		})
		al.AddAlarmAction(action)
		a.All = append(a.All, al)
		return al
	}
	a.KeysFailed = alarm("KeysFailed", "keys-failed",
		"A run reported failed keys (any mode). The function's report and log lines name each key and its reason (access-denied, not-found, throttled, error).",
		sumOverModes(s, "KeysFailed", modes, 5*time.Minute, "failed keys"),
		awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD, 1, 1, awscloudwatch.TreatMissingData_NOT_BREACHING)
	period := silencePeriod(s.SchedulePeriod)
	a.Silence = alarm("Silence", "silence",
		fmt.Sprintf("No scheduled run completed in two schedule periods (%s each, schedule %s): the schedule, the function or its permissions are broken.", period, s.Schedule),
		sumOverModes(s, "RunsCompleted", []string{"scheduled", "plan"}, period, "runs completed"),
		awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD, 1, 2, awscloudwatch.TreatMissingData_BREACHING)
	a.BudgetExhausted = alarm("BudgetExhausted", "budget-exhausted",
		"A key has used up its lifetime on-demand rotations: it can no longer be rotated on demand, not even in an incident. Plan its replacement.",
		sumOverModes(s, "KeysBudgetExhausted", modes, time.Hour, "keys with exhausted budget"),
		awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD, 0, 1, awscloudwatch.TreatMissingData_NOT_BREACHING)
	a.FunctionErrors = alarm("FunctionErrors", "function-errors",
		"The function failed (invalid configuration, keys could not be listed, crash or timeout). Failed asynchronous events are in the failure queue.",
		props.Function.MetricErrors(&awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Sum")}),
		awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD, 1, 1, awscloudwatch.TreatMissingData_NOT_BREACHING)
	return a
}
