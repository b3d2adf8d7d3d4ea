package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/aws-cdk-go/awscdk/v2/interfaces/interfacesawscloudwatch"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

type rotatorDashboardProps struct {
	// Function is the incident function, SweepFunction the sweep function.
	Function      awslambda.Function
	SweepFunction awslambda.Function
	// LogGroupName is the function's log group (a token: its name ends with
	// the stack's ID).
	LogGroupName string
	Settings     Settings
	Alarms       []awscloudwatch.IAlarm
	// LedgerUnavailable is the ledger-unavailable alarm, graphed.
	LedgerUnavailable awscloudwatch.Alarm
	// OrgSweep is organization mode's state machine (nil otherwise).
	OrgSweep awsstepfunctions.StateMachine
}

// latestRotationsQuery lists the newest per-key decisions that did something
// or failed (the one-line-per-key logs of docs/design.md "Metrics and logs").
var latestRotationsQuery = []string{
	"fields @timestamp, keyId, alias, outcome, reason, incidentReason, mode, runId",
	`filter ispresent(outcome) and ispresent(keyId) and outcome != "skipped"`,
	"sort @timestamp desc",
	"limit 100",
}

// search is a CloudWatch SEARCH over one metric of the namespace with the
// given dimension names, one line per dimension value (per Mode, per Reason),
// so new reasons show without changing the dashboard.
func search(s Settings, metric string, dims []string, stat string, label string) awscloudwatch.MathExpression {
	schema := strings.Join(append([]string{s.Function.MetricsNamespace}, dims...), ",")
	return awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression: jsii.String(fmt.Sprintf(`SEARCH('{%s} MetricName="%s"', '%s', 3600)`, schema, metric, stat)),
		Label:      jsii.String(label),
		Period:     awscdk.Duration_Hours(jsii.Number(1)),
	})
}

// newRotatorDashboard is the CloudWatch dashboard of what the function did
// and how much rotation budget is left.
func newRotatorDashboard(scope constructs.Construct, id string, props *rotatorDashboardProps) awscloudwatch.Dashboard {
	c := constructs.NewConstruct(scope, &id)
	s := props.Settings
	f := s.Function
	graph := func(title string, left []awscloudwatch.IMetric, right []awscloudwatch.IMetric) awscloudwatch.IWidget {
		p := &awscloudwatch.GraphWidgetProps{Title: jsii.String(title), Left: &left, Width: jsii.Number(12), Height: jsii.Number(6)}
		if len(right) > 0 {
			p.Right = &right
		}
		return awscloudwatch.NewGraphWidget(p)
	}
	byMode := []string{settings.DimMode}
	byReason := []string{settings.DimMode, settings.DimReason}
	fn := props.Function
	fiveMin := &awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Sum")}
	hourly := time.Hour

	d := awscloudwatch.NewDashboard(c, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{
		DashboardName:   jsii.String(s.FunctionName + "-" + *awscdk.Aws_REGION()),
		DefaultInterval: awscdk.Duration_Days(jsii.Number(14)),
	})
	d.AddWidgets(awscloudwatch.NewTextWidget(&awscloudwatch.TextWidgetProps{
		Markdown: jsii.String(fmt.Sprintf("# kms-rotator\nOpt-in tag `%s=%s` · schedule `%s` (%s) · interval %d days (floor %d) · on-demand limit %d, reserve %d · dry run %t · namespace `%s` · incident bus `%s` · results bus `%s`",
			f.TagKey, f.TagValue, s.Schedule, s.ScheduleTimezone, f.IntervalDays, f.MinIntervalDays, f.OnDemandLimit, f.Reserve, f.DryRun, f.MetricsNamespace, s.IncidentBusName, resultBusName(s))),
		Width: jsii.Number(24), Height: jsii.Number(2),
	}))
	d.AddWidgets(
		graph("Keys rotated (would rotate in dry runs) per run, by mode", []awscloudwatch.IMetric{
			search(s, settings.MetricKeysRotated, byMode, "Sum", "rotated"),
			search(s, settings.MetricKeysWouldRotate, byMode, "Sum", "would rotate"),
		}, []awscloudwatch.IMetric{
			search(s, settings.MetricKeysCandidate, byMode, "Sum", "candidates"),
		}),
		graph("Keys failed and deferred; rotations stuck in progress (by mode)", []awscloudwatch.IMetric{
			search(s, settings.MetricKeysFailed, byMode, "Sum", "failed"),
			search(s, settings.MetricKeysDeferred, byMode, "Sum", "deferred"),
		}, []awscloudwatch.IMetric{
			// Each run counts every stuck rotation it reads: the largest
			// count in the hour, not the sum of runs that saw the same key.
			search(s, settings.MetricRotationsStuck, byMode, "Maximum", "stuck rotations"),
		}),
	)
	d.AddWidgets(
		graph("Keys skipped by reason", []awscloudwatch.IMetric{search(s, settings.MetricKeysSkipped, byReason, "Sum", "skipped")}, nil),
		graph("Keys failed by reason", []awscloudwatch.IMetric{search(s, settings.MetricKeysFailed, byReason, "Sum", "failed")}, nil),
	)
	d.AddWidgets(
		graph("Budget health: lowest on-demand rotations left", []awscloudwatch.IMetric{
			rotatorMetric(s, settings.MetricMinOnDemandRemaining, scheduled, "Minimum", hourly),
			rotatorMetric(s, settings.MetricMinOnDemandRemaining, string(request.ModeReport), "Minimum", hourly),
			rotatorMetric(s, settings.MetricMinOnDemandRemaining, string(request.ModeIncident), "Minimum", hourly),
		}, nil),
		graph("Budget health: keys low / exhausted", []awscloudwatch.IMetric{
			search(s, settings.MetricKeysBudgetLow, byMode, "Maximum", "budget low"),
			search(s, settings.MetricKeysBudgetExhausted, byMode, "Maximum", "budget exhausted"),
		}, nil),
	)
	d.AddWidgets(
		// Overdue split by what it asks of someone: action (the
		// keys-overdue alarms' metric) or nothing, the product keeping the
		// key so on purpose (policy). Summed per hour: a continued sweep's
		// links, and an organization sweep's targets, each count their own
		// keys.
		graph("Cryptoperiod: keys past their interval, for action and by policy; oldest key material (days)", []awscloudwatch.IMetric{
			search(s, settings.MetricKeysOverdueAction, byMode, "Sum", "overdue, action"),
			search(s, settings.MetricKeysOverdueByPolicy, byMode, "Sum", "overdue by policy"),
		}, []awscloudwatch.IMetric{
			search(s, settings.MetricMaxMaterialAgeDays, byMode, "Maximum", "oldest material, days"),
		}),
		graph("Result events not published (incidents and failures not announced)", []awscloudwatch.IMetric{
			search(s, settings.MetricResultEventsFailed, byMode, "Sum", "result events failed"),
		}, []awscloudwatch.IMetric{
			fn.Metric(jsii.String("AsyncEventsDropped"), fiveMin),
		}),
	)
	d.AddWidgets(
		// Keys not rotated because their claim could not be recorded:
		// any is an alarm, so the alarm's own graph with its threshold.
		awscloudwatch.NewAlarmWidget(&awscloudwatch.AlarmWidgetProps{
			Title: jsii.String("Rotation ledger unavailable: keys failed (ledger-unavailable), all modes"),
			Alarm: props.LedgerUnavailable,
			Width: jsii.Number(24), Height: jsii.Number(6),
		}),
	)
	d.AddWidgets(
		// What falls due, and what imported material expires, within
		// noticeDays: the keys to look at before they are overdue or
		// unusable (material-expiring-soon alarms on the second).
		graph(fmt.Sprintf("Upcoming within %d days (noticeDays): keys due soon, imported material expiring soon", f.NoticeDays), []awscloudwatch.IMetric{
			search(s, settings.MetricKeysDueSoon, byMode, "Sum", "due soon"),
			search(s, settings.MetricMaterialExpiringSoon, byMode, "Sum", "material expiring soon"),
		}, nil),
		// A run without its evidence record: any is an alarm
		// (evidence-failed), drawn as the graph's threshold.
		awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
			Title: jsii.String("Evidence records not written (EvidenceFailed), by mode"),
			Left:  &[]awscloudwatch.IMetric{search(s, settings.MetricEvidenceFailed, byMode, "Sum", "evidence not written")},
			LeftAnnotations: &[]*awscloudwatch.HorizontalAnnotation{{
				Value: jsii.Number(1), Label: jsii.String(s.FunctionName + "-evidence-failed fires"), Color: jsii.String("#d62728"),
			}},
			Width: jsii.Number(12), Height: jsii.Number(6),
		}),
	)
	d.AddWidgets(
		graph("Run duration; runs completed, failed and continued", []awscloudwatch.IMetric{
			search(s, settings.MetricRunDuration, byMode, "Maximum", "duration ms"),
		}, []awscloudwatch.IMetric{
			search(s, settings.MetricRunsCompleted, byMode, "Sum", "runs"),
			search(s, settings.MetricRunsFailed, byMode, "Sum", "failed runs"),
			search(s, settings.MetricContinuations, byMode, "Sum", "continuations"),
		}),
		lambdaGraph("Incident function "+s.FunctionName+": invocations, errors, throttles; duration", fn, fiveMin, graph),
	)
	d.AddWidgets(
		lambdaGraph("Sweep function "+sweepFunctionName(s)+": invocations, errors, throttles; duration", props.SweepFunction, fiveMin, graph),
		// Against its reserved concurrency in organization mode: the Map
		// runs orgMaxConcurrency targets at once, and no more fit.
		graph("Concurrent executions of both functions", []awscloudwatch.IMetric{
			fn.Metric(jsii.String("ConcurrentExecutions"), &awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Maximum"), Label: jsii.String(s.FunctionName)}),
			props.SweepFunction.Metric(jsii.String("ConcurrentExecutions"), &awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Maximum"), Label: jsii.String(sweepFunctionName(s))}),
		}, nil),
	)
	if s.Org.Enabled() {
		// Organization mode: every figure also per member account
		// ([Mode, Account]), one line per account, so a target that
		// stopped rotating or keeps failing stands out.
		byAccount := []string{settings.DimMode, settings.DimAccount}
		d.AddWidgets(
			graph("Organization: keys rotated and failed per account", []awscloudwatch.IMetric{
				search(s, settings.MetricKeysRotated, byAccount, "Sum", "rotated"),
			}, []awscloudwatch.IMetric{
				search(s, settings.MetricKeysFailed, byAccount, "Sum", "failed"),
			}),
			graph("Organization: overdue keys (action, by policy) and runs per account", []awscloudwatch.IMetric{
				search(s, settings.MetricKeysOverdueAction, byAccount, "Sum", "overdue, action"),
				search(s, settings.MetricKeysOverdueByPolicy, byAccount, "Sum", "overdue by policy"),
			}, []awscloudwatch.IMetric{
				search(s, settings.MetricRunsCompleted, byAccount, "Sum", "runs"),
				search(s, settings.MetricRunsFailed, byAccount, "Sum", "failed runs"),
			}),
		)
		if sm := props.OrgSweep; sm != nil {
			// The targets each execution's first state resolved: a count
			// that drops (an OU emptied, accounts suspended) shows here
			// before any key goes overdue.
			targets := string(request.ModeTargets)
			d.AddWidgets(graph("Organization: sweep executions", []awscloudwatch.IMetric{
				sm.MetricSucceeded(fiveMin),
			}, []awscloudwatch.IMetric{
				sm.MetricFailed(fiveMin), sm.MetricTimedOut(fiveMin), sm.MetricAborted(fiveMin),
			}), graph("Organization: targets resolved per sweep, accounts left out", []awscloudwatch.IMetric{
				rotatorMetric(s, settings.MetricTargetsResolved, targets, "Maximum", hourly).With(&awscloudwatch.MetricOptions{Label: jsii.String("targets")}),
			}, []awscloudwatch.IMetric{
				rotatorMetric(s, settings.MetricAccountsExcluded, targets, "Maximum", hourly).With(&awscloudwatch.MetricOptions{Label: jsii.String("accounts excluded")}),
			}))
			// What each sweep achieved, once per execution from the
			// org-summary run: the targets' outcomes, and the keys of the
			// whole organization.
			summary := func(name, label string) awscloudwatch.IMetric {
				return rotatorMetric(s, name, orgSummaryMode, "Maximum", hourly).With(&awscloudwatch.MetricOptions{Label: jsii.String(label)})
			}
			d.AddWidgets(graph("Organization: targets per sweep — swept, incomplete, failed", []awscloudwatch.IMetric{
				summary(settings.MetricOrgTargets, "targets"), summary(settings.MetricOrgTargetsSwept, "swept"),
			}, []awscloudwatch.IMetric{
				summary(settings.MetricOrgTargetsIncomplete, "incomplete"), summary(settings.MetricOrgTargetsFailed, "failed"),
			}), graph("Organization: keys per sweep — rotated, failed, overdue", []awscloudwatch.IMetric{
				summary(settings.MetricOrgKeysRotated, "rotated"),
			}, []awscloudwatch.IMetric{
				summary(settings.MetricOrgKeysFailed, "failed"), summary(settings.MetricOrgKeysOverdue, "overdue"),
			}))
		}
	}
	d.AddWidgets(
		awscloudwatch.NewLogQueryWidget(&awscloudwatch.LogQueryWidgetProps{
			Title:         jsii.String("Latest rotations (key, outcome, reason, incident reason)"),
			LogGroupNames: jsii.Strings(props.LogGroupName),
			QueryLines:    jsii.Strings(latestRotationsQuery...),
			View:          awscloudwatch.LogQueryVisualizationType_TABLE,
			Width:         jsii.Number(24), Height: jsii.Number(8),
		}),
	)
	alarms := props.Alarms
	d.AddWidgets(awscloudwatch.NewAlarmStatusWidget(&awscloudwatch.AlarmStatusWidgetProps{
		Title:  jsii.String("Alarms"),
		Alarms: alarmRefs(alarms),
		Width:  jsii.Number(24), Height: jsii.Number(3),
	}))
	return d
}

// lambdaGraph is one function's invocations, errors and throttles, and its
// longest duration.
func lambdaGraph(title string, fn awslambda.Function, fiveMin *awscloudwatch.MetricOptions,
	graph func(string, []awscloudwatch.IMetric, []awscloudwatch.IMetric) awscloudwatch.IWidget) awscloudwatch.IWidget {
	return graph(title, []awscloudwatch.IMetric{
		fn.MetricInvocations(fiveMin), fn.MetricErrors(fiveMin), fn.MetricThrottles(fiveMin),
	}, []awscloudwatch.IMetric{
		fn.MetricDuration(&awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Maximum")}),
	})
}

func alarmRefs(alarms []awscloudwatch.IAlarm) *[]interfacesawscloudwatch.IAlarmRef {
	refs := make([]interfacesawscloudwatch.IAlarmRef, len(alarms))
	for i, a := range alarms {
		refs[i] = a
	}
	return &refs
}
