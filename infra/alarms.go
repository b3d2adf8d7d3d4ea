package main

import (
	"fmt"
	"math"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// modes are the values of the EMF dimension Mode.
var modes = []string{string(request.ModeScheduled), string(request.ModeIncident), string(request.ModePlan), string(request.ModeReport)}

// scheduled is the Mode of the scheduled sweep (and of its continuations).
var scheduled = string(request.ModeScheduled)

// rotatorMetric is one EMF metric of docs/design.md "Metrics and logs" with
// dimensions [Mode].
func rotatorMetric(s Settings, name, mode, statistic string, period time.Duration) awscloudwatch.Metric {
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace:     jsii.String(s.Function.MetricsNamespace),
		MetricName:    jsii.String(name),
		DimensionsMap: &map[string]*string{settings.DimMode: jsii.String(mode)},
		Statistic:     jsii.String(statistic),
		Period:        awscdk.Duration_Seconds(jsii.Number(period.Seconds())),
		Label:         jsii.String(mode),
	})
}

// reasonLedgerUnavailable is the failure reason of a key whose claim the
// ledger could not record, so the function did not rotate it
// (docs/design.md "Metrics and logs": KeysFailed per [Mode, Reason]).
const reasonLedgerUnavailable = "ledger-unavailable"

// sumOverModesFor is sumOverModes of one metric of one Reason, dimensions
// [Mode, Reason]. The function emits the per-reason lines with these two
// dimensions in organization mode too (no Account), so one alarm covers
// every member account.
func sumOverModesFor(s Settings, name, reason string, ms []string, period time.Duration, label string) awscloudwatch.MathExpression {
	using := map[string]awscloudwatch.IMetric{}
	for _, m := range ms {
		using[m] = awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace:     jsii.String(s.Function.MetricsNamespace),
			MetricName:    jsii.String(name),
			DimensionsMap: &map[string]*string{settings.DimMode: jsii.String(m), settings.DimReason: jsii.String(reason)},
			Statistic:     jsii.String("Sum"),
			Period:        awscdk.Duration_Seconds(jsii.Number(period.Seconds())),
			Label:         jsii.String(m),
		})
	}
	return awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression:   jsii.String("SUM(METRICS())"),
		UsingMetrics: &using,
		Period:       awscdk.Duration_Seconds(jsii.Number(period.Seconds())),
		Label:        jsii.String(label),
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
	// Function is the incident function, SweepFunction the sweep function:
	// the Lambda alarms watch both.
	Function      awslambda.Function
	SweepFunction awslambda.Function
	FailureQueue  awssqs.Queue
	ScheduleGroup awsscheduler.ScheduleGroup
	// OrgSweep is organization mode's state machine (nil otherwise).
	OrgSweep awsstepfunctions.StateMachine
	Settings Settings
}

// rotatorAlarms are the alarms of the stack, all notifying Topic when they
// go into ALARM and when they are OK again.
type rotatorAlarms struct {
	// Topic is the stack's own topic, or the team's (alarmTopicArn).
	Topic                awssns.ITopic
	KeysFailed           awscloudwatch.Alarm
	Silence              awscloudwatch.Alarm
	BudgetExhausted      awscloudwatch.Alarm
	FunctionErrors       awscloudwatch.Alarm
	KeysOverdue          awscloudwatch.Alarm
	KeysNewlyOverdue     awscloudwatch.Alarm
	KeysDeferred         awscloudwatch.Alarm
	FailureQueue         awscloudwatch.Alarm
	AsyncEventsDropped   awscloudwatch.Alarm
	ResultEventsFailed   awscloudwatch.Alarm
	RotationsStuck       awscloudwatch.Alarm
	LedgerUnavailable    awscloudwatch.Alarm
	EvidenceFailed       awscloudwatch.Alarm
	MaterialExpiringSoon awscloudwatch.Alarm
	// OrgSweepFailed and OrgTargetsFailed exist in organization mode only.
	OrgSweepFailed   awscloudwatch.Alarm
	OrgTargetsFailed awscloudwatch.Alarm
	All              []awscloudwatch.IAlarm
}

// CloudWatch evaluates an alarm over at most seven days of data, one day
// when its period is under an hour
// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html,
// Period and EvaluationPeriods).
const (
	silenceBucket     = time.Hour
	maxEvaluatedRange = 7 * 24 * time.Hour
)

// silencePlan is how the silence alarm watches a schedule. It watches
// hourly buckets of two metrics: RunsCompleted of Mode=scheduled (a plan,
// report or incident run does not count) and the Scheduler's
// InvocationAttemptCount of the stack's schedule group, the record that a
// sweep was due. Two checks, either of which alarms:
//
//   - missed: the Scheduler fired and no scheduled run completed within
//     MissedAfter. It needs only MissedAfter of history, so it works for any
//     schedule, weekly and monthly ones included; before the first firing
//     after a deploy it has nothing to say, so a fresh stack does not page.
//   - stale: no scheduled run completed within StaleAfter (the longest gap
//     between two firings plus the slack). It also sees a schedule that was
//     disabled or deleted, which the missed check cannot. It needs the last
//     run inside the evaluated range, so it exists only when StaleAfter fits
//     in CloudWatch's seven days (not for a weekly schedule).
//
// Both are rounded up to whole buckets plus one: a bucket is stamped with
// the start of its hour, so a bucket age understates the real age by up to
// an hour.
type silencePlan struct {
	Stale       bool
	StaleAfter  time.Duration
	MissedAfter time.Duration
	// Periods is the number of hourly buckets evaluated: enough to see the
	// bucket of the last run (stale) or the last firing (missed) when the
	// check crosses its threshold.
	Periods int
}

func planSilence(sil Silence) silencePlan {
	roundUp := func(d time.Duration) time.Duration {
		return time.Duration(math.Ceil(float64(d)/float64(silenceBucket)))*silenceBucket + silenceBucket
	}
	p := silencePlan{StaleAfter: roundUp(sil.Window()), MissedAfter: roundUp(sil.Slack)}
	p.Periods = int(p.MissedAfter/silenceBucket) + 2
	if stale := int(p.StaleAfter/silenceBucket) + 2; time.Duration(stale)*silenceBucket <= maxEvaluatedRange {
		p.Stale, p.Periods = true, max(p.Periods, stale)
	}
	return p
}

// silenceExpressions are the metric math of the silence alarm, by ID; the
// alarm watches "silent" (1 = silent, 0 = fine, no value = no evidence
// either way, which keeps the alarm's state).
//
// Functions (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/using-metric-math.html):
// EPOCH gives each bucket's timestamp and has a value in every bucket; IF
// without a false branch drops the bucket; FILL(x, REPEAT) carries the last
// value forward; arithmetic and comparisons of two series treat a missing
// value as 0.
func silenceExpressions(p silencePlan) map[string]string {
	e := map[string]string{
		// The start of the newest hour with a completed scheduled run, and
		// with a firing of the schedule, at or before each bucket.
		"lastRun": "FILL(IF(runs > 0, EPOCH(runs)), REPEAT)",
		"lastDue": "FILL(IF(attempts > 0, EPOCH(attempts)), REPEAT)",
		// The schedule fired, no scheduled run completed since, and that
		// was MissedAfter ago.
		"missed": fmt.Sprintf("IF(lastDue > 0, IF(lastDue > FILL(lastRun, 0), IF(EPOCH(attempts) - lastDue >= %d, 1, 0), 0))",
			int(p.MissedAfter.Seconds())),
		"silent": "IF(missed >= 1, 1, 0)",
	}
	if p.Stale {
		e["stale"] = fmt.Sprintf("IF(lastRun > 0, IF(EPOCH(runs) - lastRun >= %d, 1, 0))", int(p.StaleAfter.Seconds()))
		e["silent"] = "IF(stale + missed >= 1, 1, 0)"
	}
	return e
}

// silenceMetric builds the silence alarm's math over runs and attempts.
func silenceMetric(runs, attempts awscloudwatch.IMetric, p silencePlan, label string) awscloudwatch.MathExpression {
	exprs := silenceExpressions(p)
	built := map[string]awscloudwatch.IMetric{"runs": runs, "attempts": attempts}
	// Each expression may use the metrics and the expressions built before it.
	for _, id := range []string{"lastRun", "lastDue", "missed", "stale", "silent"} {
		expr, ok := exprs[id]
		if !ok {
			continue
		}
		using := map[string]awscloudwatch.IMetric{}
		for k, v := range built {
			if containsIdent(expr, k) {
				using[k] = v
			}
		}
		props := &awscloudwatch.MathExpressionProps{
			Expression:   jsii.String(expr),
			UsingMetrics: &using,
			Period:       awscdk.Duration_Seconds(jsii.Number(silenceBucket.Seconds())),
		}
		if id == "silent" {
			props.Label = jsii.String(label)
		}
		built[id] = awscloudwatch.NewMathExpression(props)
	}
	return built["silent"].(awscloudwatch.MathExpression)
}

// sweepPeriod is the period of the overdue alarms: the shortest time
// between two firings of the schedule, at most a day. One period then holds
// the runs of at most one sweep — every link of a continued sweep and, in
// organization mode, every target of the execution — so its Sum is one
// figure per sweep rather than per hour: the targets an organization sweep
// reached in one hour, or the last link of a continued sweep alone, are not
// the fleet. A day at most, so that two periods fit CloudWatch's evaluated
// range and a weekly sweep is still read daily.
func sweepPeriod(sil Silence) time.Duration {
	p := min(sil.MinGap, 24*time.Hour).Truncate(time.Minute)
	return max(p, time.Minute)
}

// newlyOverdueExpression is the keys-newly-overdue alarm's math on the
// overdue-for-action figure of two consecutive sweep periods: 1 when the
// newer one is larger. DIFF is each value minus the one before it
// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/using-metric-math.html);
// over the alarm's two periods it has at most one value. A figure still
// filling (a sweep under way) only grows, so it exceeds the previous one
// only once the sweep's own figure will.
const newlyOverdueExpression = "IF(DIFF(overdue) > 0, 1, 0)"

// newlyOverdueMetric builds the keys-newly-overdue alarm's math.
func newlyOverdueMetric(overdue awscloudwatch.IMetric, period time.Duration) awscloudwatch.MathExpression {
	return awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression:   jsii.String(newlyOverdueExpression),
		UsingMetrics: &map[string]awscloudwatch.IMetric{"overdue": overdue},
		Period:       awscdk.Duration_Seconds(jsii.Number(period.Seconds())),
		Label:        jsii.String("more keys overdue for action than the sweep before (1) or not (0)"),
	})
}

// deferralPersists is how long keys may stay deferred before the
// keys-deferred alarm fires: a day, the brief of docs/operations.md. A
// sweep defers keys whenever it reaches its deadline, and its continuations
// (or, in organization mode, the state machine) take them within minutes;
// keys still deferred when a sweep's last run ends wait for the next
// sweep, which for a daily schedule is a day: two daily sweeps in a row,
// or a day of hourly ones, that could not finish is a problem of capacity
// (timeout, continuationMax, KMS throttling), not of one slow night.
const deferralPersists = 24 * time.Hour

// deferralThreshold is deferralPersists in bucket ages: a bucket is stamped
// with the start of its hour, so a bucket's age understates a run's by up
// to an hour.
const deferralThreshold = deferralPersists + deferralBucket

// deferralBucket is the keys-deferred alarm's bucket: an hour, as the
// silence alarm's, small enough that the last link of a continued sweep
// usually lands in a bucket of its own.
const deferralBucket = time.Hour

// deferralPlan is how the keys-deferred alarm watches a schedule. It reads
// hourly buckets of the Minimum of KeysDeferred of scheduled runs: 0 when
// some run of the hour ended with nothing deferred (a sweep, or the last
// link of a continued one, that finished every key), more when every run
// of the hour left keys deferred.
type deferralPlan struct {
	// AfterClear is the age of the newest clear hour from which deferrals
	// since then count as persisting: deferralPersists after the first
	// sweep that came after it, which comes at most the longest gap plus
	// the slack later; rounded up to whole buckets plus one, as the
	// silence alarm's.
	AfterClear time.Duration
	// Periods is the number of hourly buckets evaluated: enough to see the
	// clear hour until it is AfterClear old, within CloudWatch's seven days.
	Periods int
}

func planDeferral(sil Silence) deferralPlan {
	after := time.Duration(math.Ceil(float64(deferralPersists+sil.Window())/float64(deferralBucket)))*deferralBucket + deferralBucket
	p := deferralPlan{AfterClear: after, Periods: int(after/deferralBucket) + 2}
	if limit := int(maxEvaluatedRange / deferralBucket); p.Periods > limit {
		// A weekly schedule: the clear hour leaves the range before it is
		// AfterClear old, and the age of the oldest deferral in the range
		// decides (deferralExpressions).
		p.Periods = limit
	}
	return p
}

// deferralExpressions are the keys-deferred alarm's math, by ID, over the
// hourly Minimum "deferred"; the alarm watches "persisting", which has a
// value in the newest bucket only (so that the alarm is the newest
// verdict, not any verdict of the range): 1 when keys were deferred after
// the newest clear hour and either that hour is AfterClear old, or there is
// none in the range and the oldest deferral in it is deferralThreshold old.
// A fresh stack whose first sweep defers keys therefore waits a day.
//
// Besides the functions of silenceExpressions: MIN and MAX of one series
// are a number, its smallest and largest value
// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/using-metric-math.html).
func deferralExpressions(p deferralPlan) map[string]string {
	return map[string]string{
		// The start of the newest hour whose runs left nothing deferred,
		// and of the newest whose runs all did, at or before each bucket.
		"lastClear":    "FILL(IF(deferred <= 0, EPOCH(deferred)), REPEAT)",
		"lastDeferred": "FILL(IF(deferred > 0, EPOCH(deferred)), REPEAT)",
		"clear":        "FILL(lastClear, 0)",
		// When the deferral began at the latest: the first sweep after the
		// clear hour; without one in the range, the oldest deferral in it.
		"since": fmt.Sprintf("IF(clear > 0, clear + %d, MIN(IF(deferred > 0, EPOCH(deferred))))", int((p.AfterClear - deferralThreshold).Seconds())),
		"persisting": fmt.Sprintf("IF(EPOCH(deferred) >= MAX(EPOCH(deferred)), IF(lastDeferred > clear, IF(EPOCH(deferred) - since >= %d, 1, 0), 0))",
			int(deferralThreshold.Seconds())),
	}
}

// deferralMetric builds the keys-deferred alarm's math over deferred.
func deferralMetric(deferred awscloudwatch.IMetric, p deferralPlan, label string) awscloudwatch.MathExpression {
	exprs := deferralExpressions(p)
	built := map[string]awscloudwatch.IMetric{"deferred": deferred}
	for _, id := range []string{"lastClear", "lastDeferred", "clear", "since", "persisting"} {
		using := map[string]awscloudwatch.IMetric{}
		for k, v := range built {
			if containsIdent(exprs[id], k) {
				using[k] = v
			}
		}
		props := &awscloudwatch.MathExpressionProps{
			Expression:   jsii.String(exprs[id]),
			UsingMetrics: &using,
			Period:       awscdk.Duration_Seconds(jsii.Number(deferralBucket.Seconds())),
		}
		if id == "persisting" {
			props.Label = jsii.String(label)
		}
		built[id] = awscloudwatch.NewMathExpression(props)
	}
	return built["persisting"].(awscloudwatch.MathExpression)
}

// containsIdent says whether an expression uses the identifier id.
func containsIdent(expr, id string) bool {
	isIdent := func(c byte) bool {
		return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	for i := 0; i+len(id) <= len(expr); i++ {
		if expr[i:i+len(id)] == id && (i == 0 || !isIdent(expr[i-1])) && (i+len(id) == len(expr) || !isIdent(expr[i+len(id)])) {
			return true
		}
	}
	return false
}

func newAlarms(scope constructs.Construct, id string, props *alarmsProps) *rotatorAlarms {
	c := constructs.NewConstruct(scope, &id)
	s := props.Settings
	var topic awssns.ITopic
	var own awssns.Topic
	if s.AlarmTopicARN != "" {
		// A team's own topic: its policy is the team's to write
		// (docs/deploy.md "Your own alarm topic").
		topic = awssns.Topic_FromTopicArn(c, jsii.String("Topic"), jsii.String(s.AlarmTopicARN))
	} else {
		own = awssns.NewTopic(c, jsii.String("Topic"), &awssns.TopicProps{
			DisplayName: jsii.String("kms-rotator alarms"),
			EnforceSSL:  jsii.Bool(true),
		})
		topic = own
		// Not encrypted with KMS: the topic carries only alarm state changes and
		// run summaries, and CloudWatch alarms cannot publish to a topic
		// encrypted with the AWS managed key aws/sns. (cdk-nag's AwsSolutions
		// pack has no rule on it.)
		if s.AlarmEmail != "" {
			own.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(s.AlarmEmail), nil))
		}
	}
	action := awscloudwatchactions.NewSnsAction(topic)
	a := &rotatorAlarms{Topic: topic}
	var names []string
	type spec struct {
		name, desc          string
		metric              awscloudwatch.IMetric
		op                  awscloudwatch.ComparisonOperator
		threshold           float64
		periods, datapoints float64
		missing             awscloudwatch.TreatMissingData
	}
	alarm := func(id string, sp spec) awscloudwatch.Alarm {
		if sp.datapoints == 0 {
			sp.datapoints = sp.periods
		}
		name := s.FunctionName + "-" + sp.name
		names = append(names, name)
		al := awscloudwatch.NewAlarm(c, jsii.String(id), &awscloudwatch.AlarmProps{
			AlarmName:          jsii.String(name),
			AlarmDescription:   jsii.String(sp.desc),
			Metric:             sp.metric,
			ComparisonOperator: sp.op,
			Threshold:          jsii.Number(sp.threshold),
			EvaluationPeriods:  jsii.Number(sp.periods),
			DatapointsToAlarm:  jsii.Number(sp.datapoints),
			TreatMissingData:   sp.missing,
		})
		// OK actions too: the on-call learns that a problem went away, and
		// an alarm that flaps shows as such in the topic.
		al.AddAlarmAction(action)
		al.AddOkAction(action)
		a.All = append(a.All, al)
		return al
	}
	const gte = awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD
	fiveMin := 5 * time.Minute
	a.KeysFailed = alarm("KeysFailed", spec{name: "keys-failed",
		desc:   "A run reported failed keys (any mode). The function's report and log lines name each key and its reason (access-denied, not-found, throttled, unconfirmed, error).",
		metric: sumOverModes(s, settings.MetricKeysFailed, modes, fiveMin, "failed keys"),
		op:     gte, threshold: 1, periods: 1, missing: awscloudwatch.TreatMissingData_NOT_BREACHING})

	plan := planSilence(s.Silence)
	desc := fmt.Sprintf("No scheduled sweep completed on time (schedule %s, %s; longest gap between firings %s): either the Scheduler fired and no run with Mode=scheduled completed within %s",
		s.Schedule, s.ScheduleTimezone, s.Silence.Gap, plan.MissedAfter)
	if plan.Stale {
		desc += fmt.Sprintf(", or none completed for %s (the gap plus %s of slack)", plan.StaleAfter, s.Silence.Slack)
	}
	desc += ". Check the schedule, the failure queue and the function's errors. Returns to OK once the silent hours have left the evaluated range."
	runs := rotatorMetric(s, settings.MetricRunsCompleted, scheduled, "Sum", silenceBucket)
	attempts := props.ScheduleGroup.MetricAttempts(&awscloudwatch.MetricOptions{
		Period: awscdk.Duration_Seconds(jsii.Number(silenceBucket.Seconds())), Statistic: jsii.String("Sum"),
	})
	a.Silence = alarm("Silence", spec{name: "silence", desc: desc,
		metric: silenceMetric(runs, attempts, plan, "silent (1) or not (0)"),
		op:     gte, threshold: 1, periods: float64(plan.Periods), datapoints: 1,
		// No evidence either way (no firing and no run in the range): keep
		// the state. A fresh stack stays quiet until its first firing; a
		// silence that lasts longer than the range stays in ALARM.
		missing: awscloudwatch.TreatMissingData_IGNORE})

	a.BudgetExhausted = alarm("BudgetExhausted", spec{name: "budget-exhausted",
		desc:   "A key has used up its lifetime on-demand rotations: it can no longer be rotated on demand, not even in an incident. Plan its replacement.",
		metric: sumOverModes(s, settings.MetricKeysBudgetExhausted, modes, time.Hour, "keys with exhausted budget"),
		op:     awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD, threshold: 0, periods: 1, missing: awscloudwatch.TreatMissingData_NOT_BREACHING})
	fns := []awslambda.Function{props.Function, props.SweepFunction}
	a.FunctionErrors = alarm("FunctionErrors", spec{name: "function-errors",
		desc: fmt.Sprintf("A run of %s (incidents, plan and report runs) or of %s (sweeps) failed (invalid configuration, keys could not be listed, member role not assumable, crash or timeout). "+
			"Failed asynchronous events are in the failure queue.", s.FunctionName, sweepFunctionName(s)),
		metric: sumOverFunctions(fns, "Errors", fiveMin, "errors of both functions"),
		op:     gte, threshold: 1, periods: 1, missing: awscloudwatch.TreatMissingData_NOT_BREACHING})
	period := sweepPeriod(s.Silence)
	overdueAction := rotatorMetric(s, settings.MetricKeysOverdueAction, scheduled, "Sum", period)
	a.KeysOverdue = alarm("KeysOverdue", spec{name: "keys-overdue",
		desc: fmt.Sprintf("Scheduled sweeps left keys past their cryptoperiod for a reason someone must act on (KeysOverdueAction: a failure, an unconfirmed or stuck rotation, "+
			"a key deferred for days, a missed automatic rotation); keys kept overdue on purpose (reserve, exhausted budget, material not imported, idle) count in "+
			"KeysOverdueByPolicy and do not fire it. The figure adds up every run of one sweep period (%s): the links of a continued sweep and, in organization mode, "+
			"every target. The sweep's report lists the keys with overdue=true and overdueFor=action. Returns to OK once a whole period reported none.", period),
		metric: overdueAction,
		op:     gte, threshold: 1,
		// The newest period is still filling while a sweep runs: the one
		// before it, complete, keeps the alarm from clearing half-way
		// through a sweep (the first targets of an organization sweep, the
		// last link of a continued one).
		periods: 2, datapoints: 1,
		// Between sweeps the state is the last sweep's verdict.
		missing: awscloudwatch.TreatMissingData_IGNORE})
	a.KeysNewlyOverdue = alarm("KeysNewlyOverdue", spec{name: "keys-newly-overdue",
		desc: fmt.Sprintf("A scheduled sweep found more keys overdue for action (KeysOverdueAction) than the sweep of the period before (%s each): a key newly "+
			"became overdue, although keys-overdue may have been in ALARM already for older ones. Compare the two sweeps' reports (overdueFor=action). "+
			"Returns to OK when the next period begins.", period),
		metric: newlyOverdueMetric(overdueAction, period),
		op:     gte, threshold: 1, periods: 2, datapoints: 1,
		// No comparison (a first sweep, a period without one): nothing new.
		missing: awscloudwatch.TreatMissingData_NOT_BREACHING})
	dplan := planDeferral(s.Silence)
	a.KeysDeferred = alarm("KeysDeferred", spec{name: "keys-deferred",
		desc: fmt.Sprintf("Scheduled sweeps have left keys deferred (KeysDeferred > 0 in the last run of every sweep, its continuations included) for at least %s "+
			"without a sweep that finished every key: the sweep runs out of time (function timeout, continuationMax, a slow or throttled KMS) or its continuations fail. "+
			"The reports' continuation object says why (notStarted). Returns to OK after a sweep that deferred nothing.", deferralPersists),
		metric: deferralMetric(rotatorMetric(s, settings.MetricKeysDeferred, scheduled, "Minimum", deferralBucket), dplan, "deferred keys persist (1) or not (0)"),
		op:     gte, threshold: 1, periods: float64(dplan.Periods), datapoints: 1,
		// No scheduled run in the range: the silence alarm speaks.
		missing: awscloudwatch.TreatMissingData_IGNORE})
	a.FailureQueue = alarm("FailureQueue", spec{name: "failure-queue",
		desc: "Messages wait in the failure queue: a scheduled sweep the Scheduler could not deliver, an asynchronous run that failed, or an event EventBridge could not deliver. " +
			"They expire after 14 days; read them, fix the cause, then purge the queue.",
		metric: props.FailureQueue.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{
			Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Maximum")}),
		op: gte, threshold: 1, periods: 1, missing: awscloudwatch.TreatMissingData_NOT_BREACHING})
	a.AsyncEventsDropped = alarm("AsyncEventsDropped", spec{name: "async-events-dropped",
		desc: "Lambda dropped asynchronous invocations of either function (a sweep, continuation or incident event) without running them, e.g. after throttling past the maximum event age. " +
			"See https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html.",
		metric: sumOverFunctions(fns, "AsyncEventsDropped", fiveMin, "asynchronous events dropped by both functions"),
		op:     gte, threshold: 1, periods: 1, missing: awscloudwatch.TreatMissingData_NOT_BREACHING})
	a.ResultEventsFailed = alarm("ResultEventsFailed", spec{name: "result-events-failed",
		desc: "The function could not publish a run's result event on the results bus (stack output ResultBusName): an incident or a run with failed keys was not announced " +
			"on the topic, and tools waiting for the result did not get it. The run itself is in the function's logs.",
		metric: sumOverModes(s, settings.MetricResultEventsFailed, modes, fiveMin, "result events not published"),
		op:     gte, threshold: 1, periods: 1, missing: awscloudwatch.TreatMissingData_NOT_BREACHING})
	a.RotationsStuck = alarm("RotationsStuck", spec{name: "rotations-stuck",
		desc: fmt.Sprintf("A key's on-demand rotation has been in progress for more than %s (stuckAfter, ROTATOR_STUCK_AFTER), where KMS normally completes one within minutes. "+
			"The run's report marks the key with stuck=true; every run skips the key (rotation-in-progress), incidents included. "+
			"Check the key with GetKeyRotationStatus and ListKeyRotations, and ask AWS Support if it stays so. "+
			"Fires after each run that sees such a key and returns to OK an hour later; the next sweep fires it again while the rotation stays stuck.",
			s.Function.StuckAfter),
		// Every run counts the stuck keys among those it read (an incident
		// only its own keys), so the alarm takes any run's count in the
		// hour rather than the last run's verdict, as budget-exhausted does.
		metric: sumOverModes(s, settings.MetricRotationsStuck, modes, time.Hour, "stuck rotations"),
		op:     gte, threshold: 1, periods: 1, missing: awscloudwatch.TreatMissingData_NOT_BREACHING})
	a.LedgerUnavailable = alarm("LedgerUnavailable", spec{name: reasonLedgerUnavailable,
		desc: "Keys failed with reason ledger-unavailable: the function could not record its claim in the rotation ledger (the DynamoDB table of the stack output LedgerTableName) " +
			"before RotateKeyOnDemand, so it did not rotate them. Check the table (deleted, restored under another name, throttled), the role's DynamoDB permissions and " +
			"DynamoDB's health in the Region; the function's log lines name the error. The next run, or a repeated incident, rotates the keys once the ledger answers.",
		metric: sumOverModesFor(s, settings.MetricKeysFailed, reasonLedgerUnavailable, modes, fiveMin, "keys failed: ledger unavailable"),
		op:     gte, threshold: 1, periods: 1, missing: awscloudwatch.TreatMissingData_NOT_BREACHING})
	a.EvidenceFailed = alarm("EvidenceFailed", spec{name: "evidence-failed",
		desc: "A run could not write its evidence record to the evidence bucket (stack output EvidenceBucketName): EvidenceFailed >= 1, any mode. The run itself " +
			"completed; its report says why under evidence.error, and the function's log line \"evidence not written\" names the bucket, the key and S3's error. " +
			"Check the bucket (deleted, its policy), the role's s3:PutObject on evidence/* and S3's health in the Region. An assessor will find no record of that run: " +
			"the report and the log lines are its evidence until the next run writes one. Returns to OK after five minutes without a failed write.",
		metric: sumOverModes(s, settings.MetricEvidenceFailed, modes, fiveMin, "evidence records not written"),
		op:     gte, threshold: 1, periods: 1, missing: awscloudwatch.TreatMissingData_NOT_BREACHING})
	a.MaterialExpiringSoon = alarm("MaterialExpiringSoon", spec{name: "material-expiring-soon",
		desc: fmt.Sprintf("Scheduled sweeps found keys whose imported key material expires within %d days (noticeDays, ROTATOR_NOTICE_DAYS) or has expired: "+
			"MaterialExpiringSoon >= 1, Mode=scheduled, summed over one sweep period (%s). KMS deletes imported material when it expires, and the key "+
			"becomes unusable until material is imported again: an outage of whatever the key encrypts. The sweep's report lists the keys with "+
			"materialExpiringSoon=true and the result event carries a notice per key, with its owner. The key's owner re-imports the material with a later "+
			"ValidTo (or none), or stages new material and lets kms-rotator rotate to it (docs/key-material.md). Returns to OK once a whole period reported none.",
			s.Function.NoticeDays, period),
		metric: rotatorMetric(s, settings.MetricMaterialExpiringSoon, scheduled, "Sum", period),
		op:     gte, threshold: 1,
		// As keys-overdue: the period under way and the one before it, so
		// the first targets of an organization sweep do not clear it
		// half-way; between sweeps the state is the last sweep's verdict.
		periods: 2, datapoints: 1,
		missing: awscloudwatch.TreatMissingData_IGNORE})
	if props.OrgSweep != nil {
		a.OrgSweepFailed = alarm("OrgSweepFailed", spec{name: "org-sweep-failed",
			desc: "An execution of the organization sweep's state machine failed, timed out or was aborted: no target of it was swept, or not all. " +
				"Its first state fails when orgTargets cannot be resolved (an OU not found, the central account not a delegated administrator of Organizations, no target left); " +
				"the execution's history (Step Functions console, or the state machine's log group) names the error. A target whose own run fails does not fail the execution: " +
				"it is reported in the execution's output, and its run raises function-errors.",
			metric: orgSweepFailures(props.OrgSweep, fiveMin),
			op:     gte, threshold: 1, periods: 1, missing: awscloudwatch.TreatMissingData_NOT_BREACHING})
		// The org-summary run publishes OrgTargetsFailed once per
		// execution, 0 included, so the alarm holds the last sweep's
		// verdict until the next one.
		a.OrgTargetsFailed = alarm("OrgTargetsFailed", spec{name: "org-targets-failed",
			desc: fmt.Sprintf("The last organization sweep could not sweep some (account, Region) targets: OrgTargetsFailed >= 1, Mode=%s, the largest figure of one "+
				"sweep period (%s). The execution itself succeeded (every target's failure is data), so org-sweep-failed stays quiet. The sweep's result event "+
				"(detail.mode %s) names the failed accounts and, with the execution's output, the first 100 failed targets and their errors; every target's "+
				"result is in the organization sweep bucket under runs/<execution>/results/. Usual causes: the member role missing in the account (not "+
				"deployed by the StackSet, or deleted), its trust or the key policies changed, the Region not enabled in the account. "+
				"Returns to OK after a sweep with no failed target.", orgSummaryMode, period, orgSummaryMode),
			metric: rotatorMetric(s, settings.MetricOrgTargetsFailed, orgSummaryMode, "Maximum", period),
			op:     gte, threshold: 1, periods: 1,
			missing: awscloudwatch.TreatMissingData_IGNORE})
	}
	if own != nil {
		own.AddToResourcePolicy(alarmsMayPublish(own, names))
	}
	return a
}

// alarmsMayPublish is the topic policy's statement that lets CloudWatch
// deliver the stack's alarm actions. A topic policy replaces SNS's default
// one, so without it every ALARM and OK action fails with "not authorized
// to perform: SNS:Publish"
// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Notify_Users_Alarm_Changes.html,
// https://repost.aws/knowledge-center/cloudwatch-receive-sns-for-alarm-trigger).
// aws:SourceArn names exactly these alarms and aws:SourceAccount the stack's
// account, so CloudWatch cannot publish here on behalf of any other alarm
// (confused deputy:
// https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html).
// The ARNs are built from the names, not taken from the alarms, so the
// policy does not wait for the alarms to be created.
func alarmsMayPublish(topic awssns.ITopic, names []string) awsiam.PolicyStatement {
	arns := make([]*string, len(names))
	for i, n := range names {
		arns[i] = jsii.String(alarmARN(n))
	}
	return awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudWatchAlarmsOfThisStack"),
		Effect:     awsiam.Effect_ALLOW,
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("sns:Publish"),
		Resources:  &[]*string{topic.TopicArn()},
		Conditions: &map[string]any{
			"StringEquals": map[string]any{"aws:SourceAccount": awscdk.Aws_ACCOUNT_ID()},
			"ArnEquals":    map[string]any{"aws:SourceArn": arns},
		},
	})
}

// alarmARN is the ARN of the stack's alarm of this name
// (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatch.html#amazoncloudwatch-resources-for-iam-policies).
func alarmARN(name string) string {
	return "arn:" + *awscdk.Aws_PARTITION() + ":cloudwatch:" + *awscdk.Aws_REGION() + ":" + *awscdk.Aws_ACCOUNT_ID() + ":alarm:" + name
}

// sumOverFunctions adds up one Lambda metric (Sum) of the functions, one
// alarm for both: a failure pages whichever function it happened on.
func sumOverFunctions(fns []awslambda.Function, name string, period time.Duration, label string) awscloudwatch.MathExpression {
	using := map[string]awscloudwatch.IMetric{}
	for i, fn := range fns {
		using[fmt.Sprintf("fn%d", i)] = fn.Metric(jsii.String(name), &awscloudwatch.MetricOptions{
			Period: awscdk.Duration_Seconds(jsii.Number(period.Seconds())), Statistic: jsii.String("Sum")})
	}
	return awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression:   jsii.String("SUM(METRICS())"),
		UsingMetrics: &using,
		Period:       awscdk.Duration_Seconds(jsii.Number(period.Seconds())),
		Label:        jsii.String(label),
	})
}

// orgSweepFailures adds up the state machine's executions that failed,
// timed out or were aborted
// (https://docs.aws.amazon.com/step-functions/latest/dg/procedure-cw-metrics.html).
func orgSweepFailures(sm awsstepfunctions.StateMachine, period time.Duration) awscloudwatch.MathExpression {
	opts := &awscloudwatch.MetricOptions{Period: awscdk.Duration_Seconds(jsii.Number(period.Seconds())), Statistic: jsii.String("Sum")}
	return awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression: jsii.String("SUM(METRICS())"),
		UsingMetrics: &map[string]awscloudwatch.IMetric{
			"failed": sm.MetricFailed(opts), "timedOut": sm.MetricTimedOut(opts), "aborted": sm.MetricAborted(opts),
		},
		Period: awscdk.Duration_Seconds(jsii.Number(period.Seconds())),
		Label:  jsii.String("executions failed, timed out or aborted"),
	})
}
