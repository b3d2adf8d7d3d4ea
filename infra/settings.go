package main

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net/mail"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// Settings are the deployment's choices, read from CDK context (cdk.json holds
// the defaults; `-c key=value` overrides one). The function's settings are
// one settings.Config, read and validated by the function's own loader
// (settings.LoadConfig) on the environment the stack sets, so the stack and
// the function cannot disagree on a name, a default or a bound; the few
// bounds that only the stack knows (Lambda, CloudWatch, KMS tag limits) are
// checked here, each with its reason.
type Settings struct {
	// StackName is the CloudFormation stack's name (and the CDK stack's ID,
	// with -<region> when regions is set).
	StackName string
	// Regions gets one stack each; empty means the CLI's default region.
	Regions []string
	// FunctionName is the incident function's explicit name (responders
	// invoke it); the sweep function is <FunctionName>-sweep, and the names
	// of the stack's other named resources derive from it.
	FunctionName string
	// Schedule is the EventBridge Scheduler expression of the sweep, read
	// in ScheduleTimezone (an IANA time zone name).
	Schedule         string
	ScheduleTimezone string
	// Silence is what the silence alarm watches, derived from Schedule.
	Silence Silence
	// MemorySize in MB and Timeout of the function.
	MemorySize int
	Timeout    time.Duration
	// LogRetentionDays of the function's log group (0 = never expire).
	LogRetentionDays int
	// ReservedConcurrency of the incident function; 0 = none (the
	// default). The sweep function's is sweepConcurrency.
	ReservedConcurrency int
	// AccountConcurrency is the account's Lambda concurrency quota in the
	// stack's Region, which the reserved concurrency must fit.
	AccountConcurrency int
	// PermissionsBoundary, when set, is the permissions boundary of every
	// role the app creates, member roles included.
	PermissionsBoundary *PermissionsBoundary
	// Tags go on every resource the app creates that can carry tags.
	Tags []Tag
	// Function is the function's configuration (docs/design.md
	// "Configuration"), exactly as the function will load it: the stack
	// sets settings.Environment(Function), every ROTATOR_* variable.
	Function settings.Config
	// AlarmEmail, when set, subscribes this address to the alarm topic.
	AlarmEmail string
	// AlarmTopicARN, when set, is a team's own SNS topic: the stack creates
	// no topic, and every alarm action and the result notification go
	// there.
	AlarmTopicARN string
	// IncidentBusName is the dedicated event bus for incident requests,
	// <FunctionName>-incidents unless set.
	IncidentBusName string
	// IncidentPrincipals are the IAM role ARNs that may put events on the
	// incident bus; empty = any principal of the stack's own account that
	// its IAM policies allow.
	IncidentPrincipals []string
	// Org is organization mode (infra/org.go); off unless orgTargets is set.
	Org OrgSettings
	// Evidence is the evidence bucket's retention and Object Lock
	// (infra/evidence.go).
	Evidence EvidenceSettings
}

// Silence is the alarms' view of the schedule (the silence alarm's first).
type Silence struct {
	// Gap is the longest time between two firings of the schedule over a
	// year (in its time zone, daylight saving time included).
	Gap time.Duration
	// MinGap is the shortest time between two firings: the overdue alarms
	// read one sweep per period of at most this length (sweepPeriod).
	MinGap time.Duration
	// Slack is how late a sweep may complete after it was due: one hour
	// for delivery and start, plus the function's timeout.
	Slack time.Duration
}

// Window is the longest time without a completed scheduled run that is
// still normal: the longest gap plus the slack.
func (s Silence) Window() time.Duration { return s.Gap + s.Slack }

// Context keys of the stack's own settings. cdk.json lists each with its
// default.
const (
	ctxRegions             = "regions"
	ctxFunctionName        = "functionName"
	ctxSchedule            = "schedule"
	ctxScheduleTimezone    = "scheduleTimezone"
	ctxMemorySize          = "memorySize"
	ctxTimeoutMinutes      = "timeoutMinutes"
	ctxLogRetentionDays    = "logRetentionDays"
	ctxReservedConcurrency = "reservedConcurrency"
	ctxAlarmEmail          = "alarmEmail"
	ctxAlarmTopicARN       = "alarmTopicArn"
	ctxIncidentBusName     = "incidentBusName"
	ctxIncidentPrincipals  = "incidentPrincipals"
)

// functionSettings are the function's settings the stack reads from its
// context: every row of the function's table (settings.Table) with a
// context key, but for organization mode's own (memberRoleName), which org
// reads and sets only in that mode. Each key's value goes into the
// function's environment as written, and the function's loader parses it,
// so a context key accepts exactly what its variable accepts. A variable
// without a key is still set, by the stack (settings.Environment sets
// every one).
func functionSettings() []settings.Setting {
	return slices.DeleteFunc(settings.Table(), func(s settings.Setting) bool {
		return s.Context == "" || slices.Contains(orgContextKeys, s.Context)
	})
}

// functionKey is the context key of the function's variable env, from the
// function's table.
func functionKey(env string) string {
	for _, s := range settings.Table() {
		if s.Env == env && s.Context != "" {
			return s.Context
		}
	}
	panic("settings: " + env + " has no context key")
}

// Context keys of the function's settings that the stack's own checks
// name (stackBounds).
var (
	ctxTagKey           = functionKey(settings.EnvTagKey)
	ctxTagValue         = functionKey(settings.EnvTagValue)
	ctxMetricsNamespace = functionKey(settings.EnvMetricsNamespace)
	ctxContinuationMax  = functionKey(settings.EnvContinuationMax)
	ctxIncidentMaxAge   = functionKey(settings.EnvIncidentMaxAge)
)

// ContextKeys lists every context key the app reads.
var ContextKeys = func() []string {
	keys := []string{
		ctxRegions, ctxFunctionName, ctxSchedule, ctxScheduleTimezone, ctxMemorySize, ctxTimeoutMinutes,
		ctxLogRetentionDays, ctxReservedConcurrency, ctxAlarmEmail, ctxAlarmTopicARN, ctxIncidentBusName, ctxIncidentPrincipals,
	}
	keys = append(keys, orgContextKeys...)
	keys = append(keys, deploymentContextKeys...)
	keys = append(keys, evidenceContextKeys...)
	for _, s := range functionSettings() {
		keys = append(keys, s.Context)
	}
	return keys
}()

// maxStackContinuation is the stack's bound on continuationMax, below the
// function's (100): Lambda's recursive loop detection stops a chain after
// about 16 invocations
// (https://docs.aws.amazon.com/lambda/latest/dg/invocation-recursion.html),
// so a longer chain would be cut by Lambda, not by the function.
const maxStackContinuation = 15

// ledgerTablePlaceholder stands for the ledger table's name while the
// function's configuration is checked at synth: settings.LoadConfig
// requires ROTATOR_LEDGER_TABLE, and the table's name exists only once
// CloudFormation has created the table, so the stack validates every other
// setting with this valid name and sets the variable itself to the table's
// name.
const ledgerTablePlaceholder = "kms-rotator-ledger"

// functionDefaults is the function's configuration when the stack sets
// every variable at its default: settings.DefaultConfig, with the ledger
// table's placeholder, as LoadConfig reads it back from
// settings.Environment. (A set ROTATOR_CONCURRENCY is used exactly, so
// ConcurrencyAuto is false.)
func functionDefaults() settings.Config {
	c := settings.DefaultConfig()
	c.LedgerTable = ledgerTablePlaceholder
	env := settings.Environment(c)
	c, err := settings.LoadConfig(func(k string) string { return env[k] })
	if err != nil {
		panic("settings: the defaults do not load: " + err.Error()) // settings' own tests pin the round trip
	}
	return c
}

// DefaultSettings are the values cdk.json ships with. The function's come
// from settings.DefaultConfig, so the stack and the function share one set
// of defaults.
func DefaultSettings() Settings {
	s := Settings{
		StackName:          defaultStackName,
		AccountConcurrency: defaultAccountConcurrency,
		FunctionName:       "kms-rotator",
		Schedule:           "cron(0 3 * * ? *)",
		ScheduleTimezone:   "UTC",
		MemorySize:         256,
		Timeout:            10 * time.Minute,
		LogRetentionDays:   365,
		Function:           functionDefaults(),
		IncidentBusName:    "kms-rotator" + incidentBusSuffix,
		Org:                defaultOrgSettings(),
		Evidence:           defaultEvidenceSettings(),
	}
	// A daily cron in UTC: 24 hours between sweeps.
	s.Silence = Silence{Gap: 24 * time.Hour, MinGap: 24 * time.Hour, Slack: silenceSlack(s.Timeout)}
	return s
}

// defaultAccountConcurrency is Lambda's default concurrency quota of an
// account in a Region (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
const defaultAccountConcurrency = 1000

// incidentBusSuffix ends the incident bus's default name,
// <functionName>-incidents.
const incidentBusSuffix = "-incidents"

// silenceSlack is how late a scheduled run may complete and still be on
// time: EventBridge Scheduler invokes within the minute it is due (flexible
// window off), the asynchronous invocation usually starts within seconds,
// and the run completes within the function's timeout; an hour covers the
// delivery and a daylight-saving hour that a local time may shift by.
func silenceSlack(timeout time.Duration) time.Duration { return time.Hour + timeout }

var (
	// https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunction.html (FunctionName)
	functionNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	// Tag keys and values: letters, digits, white space and _ . : / = + - @
	// (https://docs.aws.amazon.com/kms/latest/developerguide/tagging-keys.html).
	tagRE = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
	// A custom event bus name: letters, digits, . - _ (the / is for partner
	// buses), at most 256, not "default"
	// (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_CreateEventBus.html).
	busNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,256}$`)
	// An IAM role ARN, path included
	// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-arns).
	roleARNRE = regexp.MustCompile(`^arn:(aws[a-z-]*):iam::(\d{12}):role/[\w+=,.@/-]{1,512}$`)
	// A standard SNS topic's ARN, arn:PARTITION:sns:REGION:ACCOUNT:NAME, the
	// form of an alarm's SNS action
	// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html,
	// AlarmActions); a name is 1–256 letters, digits, - or _
	// (https://docs.aws.amazon.com/sns/latest/api/API_CreateTopic.html).
	topicARNRE = regexp.MustCompile(`^arn:(aws[a-z-]*):sns:([a-z0-9-]+):(\d{12}):[A-Za-z0-9_-]{1,256}$`)
)

// maxAsyncEventAge is the longest maximum event age of Lambda's
// asynchronous invocation (MaximumEventAgeInSeconds 21600).
const maxAsyncEventAge = 6 * time.Hour

// maxRuleName is the longest EventBridge rule name.
const maxRuleName = 64

// logRetentionDays are the retention periods CloudWatch Logs accepts
// (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html).
var logRetentionDays = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

// minReservedConcurrency of the incident function: sweeps run on the sweep
// function, but a plan or report run and the continuation it starts
// overlap there for a moment, and an incident must still find a free
// execution (docs/design.md "Safety rules": an incident is never queued
// behind a sweep).
const minReservedConcurrency = 3

// SettingsFromContext reads and validates the settings; get returns a context
// value (nil when unset). cdk.json gives typed JSON values, `-c` gives strings;
// both are accepted. Errors name the context key.
func SettingsFromContext(get func(key string) any) (Settings, error) {
	return settingsFrom(get, nil)
}

// SettingsFromAllContext is SettingsFromContext on the app's whole context
// (every key cdk.json, cdk.context.json, `-c` and the CDK toolkit gave it),
// which also refuses every key that is neither the app's nor the CDK's
// (knownContextKey), with the nearest setting's name.
func SettingsFromAllContext(all map[string]any) (Settings, error) {
	return settingsFrom(func(k string) any { return all[k] }, slices.Sorted(maps.Keys(all)))
}

// settingsFrom reads the settings through get and checks that every key of
// keys is known.
func settingsFrom(get func(key string) any, keys []string) (Settings, error) {
	s := DefaultSettings()
	r := ctxReader{get: get}
	r.unknownContextKeys(keys)
	r.deployment(&s)
	if v := r.str(ctxRegions); v != "" {
		for _, region := range strings.Split(v, ",") {
			region = strings.TrimSpace(region)
			if regionPartition(region) == "" {
				r.fail(ctxRegions, v, "%s", unknownRegion(region))
				continue
			}
			if !slices.Contains(s.Regions, region) {
				s.Regions = append(s.Regions, region)
			}
		}
		// One app deploys with one account's credentials, and an account,
		// its roles and its STS belong to one partition
		// (https://docs.aws.amazon.com/whitepapers/latest/aws-fault-isolation-boundaries/partitions.html).
		if mixed := mixedPartitions(s.Regions); mixed != "" {
			r.fail(ctxRegions, v, "Regions of different partitions (%s): the stacks of one app deploy with one account's credentials, and an account belongs to one partition; deploy each partition separately", mixed)
		}
	}
	r.setStr(ctxFunctionName, &s.FunctionName)
	if !functionNameRE.MatchString(s.FunctionName) {
		r.fail(ctxFunctionName, s.FunctionName, "1–64 letters, digits, - or _")
	} else if n := maxRuleName - len(resultRuleSuffix); len(s.FunctionName) > n {
		// An EventBridge rule's name has at most 64 characters
		// (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutRule.html).
		r.fail(ctxFunctionName, s.FunctionName, "at most %d characters: the result notification rule is named <functionName>%s, and an EventBridge rule name holds at most %d",
			n, resultRuleSuffix, maxRuleName)
	}
	s.MemorySize = r.integer(ctxMemorySize, s.MemorySize, 128, 10240)
	s.Timeout = time.Duration(r.integer(ctxTimeoutMinutes, int(s.Timeout/time.Minute), 1, 15)) * time.Minute
	r.setStr(ctxSchedule, &s.Schedule)
	r.setStr(ctxScheduleTimezone, &s.ScheduleTimezone)
	s.Silence = r.silence(s.Schedule, s.ScheduleTimezone, s.Timeout)
	s.LogRetentionDays = r.integer(ctxLogRetentionDays, s.LogRetentionDays, 0, 3653)
	if s.LogRetentionDays != 0 && !slices.Contains(logRetentionDays, s.LogRetentionDays) {
		r.fail(ctxLogRetentionDays, strconv.Itoa(s.LogRetentionDays), "not a CloudWatch Logs retention; one of 0 (never expire) or %v", logRetentionDays)
	}
	if r.get(ctxReservedConcurrency) != nil {
		s.ReservedConcurrency = r.integer(ctxReservedConcurrency, 0, 0, math.MaxInt32)
		if s.ReservedConcurrency != 0 && s.ReservedConcurrency < minReservedConcurrency {
			r.fail(ctxReservedConcurrency, strconv.Itoa(s.ReservedConcurrency),
				"at least %d (a plan or report run, the continuation it starts and an incident must run at once), or empty for none", minReservedConcurrency)
		}
	}
	if c, ok := r.functionConfig(); ok {
		s.Function = c
		r.stackBounds(c)
	}
	r.setStr(ctxAlarmEmail, &s.AlarmEmail)
	if s.AlarmEmail != "" {
		if a, err := mail.ParseAddress(s.AlarmEmail); err != nil || a.Address != s.AlarmEmail {
			r.fail(ctxAlarmEmail, s.AlarmEmail, "not a plain e-mail address")
		}
	}
	r.alarmTopic(&s)
	// Named after the function unless set, so that a second deployment in
	// the account and Region (another stackName and functionName) has a
	// bus of its own.
	s.IncidentBusName = ""
	r.setStr(ctxIncidentBusName, &s.IncidentBusName)
	if s.IncidentBusName == "" {
		s.IncidentBusName = s.FunctionName + incidentBusSuffix
	}
	if !busNameRE.MatchString(s.IncidentBusName) || s.IncidentBusName == "default" {
		r.fail(ctxIncidentBusName, s.IncidentBusName, "a custom event bus name: 1–256 letters, digits, . - or _, not default")
	}
	s.IncidentPrincipals = r.roleARNs(ctxIncidentPrincipals)
	r.evidence(&s)
	r.org(&s)
	r.checkPartition(&s)
	r.concurrency(&s)
	if len(r.errs) > 0 {
		return Settings{}, fmt.Errorf("invalid CDK context:\n  %s", strings.Join(r.errs, "\n  "))
	}
	return s, nil
}

// alarmTopic reads alarmTopicArn: a standard SNS topic in the partition
// and Region of the stack(s) named by -c regions; addStacks checks it
// against the Region of a stack whose Region comes from the CLI.
func (r *ctxReader) alarmTopic(s *Settings) {
	r.setStr(ctxAlarmTopicARN, &s.AlarmTopicARN)
	if s.AlarmTopicARN == "" {
		return
	}
	m := topicARNRE.FindStringSubmatch(s.AlarmTopicARN)
	if m == nil {
		r.fail(ctxAlarmTopicARN, s.AlarmTopicARN, "not a standard SNS topic's ARN such as arn:aws:sns:us-east-1:111122223333:oncall")
		return
	}
	partition, region := m[1], m[2]
	if regionPartition(region) != partition {
		r.fail(ctxAlarmTopicARN, s.AlarmTopicARN, "the Region %s is not one of partition %s", region, partition)
		return
	}
	for _, stackRegion := range s.Regions {
		if stackRegion != region {
			r.fail(ctxAlarmTopicARN, s.AlarmTopicARN, "%s", topicRegionMismatch(region, stackRegion))
			return
		}
	}
	if s.AlarmEmail != "" {
		r.fail(ctxAlarmEmail, s.AlarmEmail, "subscribes to the stack's own topic, which alarmTopicArn replaces: subscribe the address to %s instead", s.AlarmTopicARN)
	}
}

// topicRegionMismatch says why a topic of another Region cannot be the
// alarm topic: the stack's alarms and its result notification rule publish
// to it from the stack's Region.
func topicRegionMismatch(topicRegion, stackRegion string) string {
	return fmt.Sprintf("the topic is in %s, the stack deploys to %s: the stack's alarms and result notification rule publish to a topic of their own Region", topicRegion, stackRegion)
}

// functionConfig writes each function setting's context value into the
// environment the stack sets (the defaults, settings.Environment) and runs
// the function's own loader on it, which reports every variable it refuses;
// each is reported under its context key. It returns false when the
// configuration could not be loaded.
func (r *ctxReader) functionConfig() (settings.Config, bool) {
	env := settings.Environment(functionDefaults())
	keyOf := map[string]string{}
	for _, s := range functionSettings() {
		keyOf[s.Env] = s.Context
		if v, set := r.scalar(s.Context); set {
			env[s.Env] = v
		}
	}
	c, err := settings.LoadConfig(func(k string) string { return env[k] })
	if err == nil {
		return c, true
	}
	var cerr *settings.ConfigError
	if !errors.As(err, &cerr) {
		r.errs = append(r.errs, "the function's configuration: "+err.Error())
		return settings.Config{}, false
	}
	for _, p := range cerr.Problems {
		key, known := keyOf[p.Var]
		if !known {
			// A variable the stack sets itself (or org does): its value is
			// the stack's, not the user's.
			r.errs = append(r.errs, "the function's configuration: "+p.Error())
			continue
		}
		r.fail(key, r.raw(key, env[p.Var]), "%v", p)
	}
	return settings.Config{}, false
}

// stackBounds checks what only the stack knows about the function's
// settings, on the configuration the function will load.
func (r *ctxReader) stackBounds(c settings.Config) {
	// The tag goes into the role's and the key policies' conditions: a key or
	// value KMS cannot hold would make conditions that match no key. The
	// function checks only lengths; KMS's character set is the stack's to check.
	if !r.failed[ctxTagKey] && (!tagRE.MatchString(c.TagKey) || strings.HasPrefix(strings.ToLower(c.TagKey), "aws:")) {
		r.fail(ctxTagKey, c.TagKey, "a tag key: letters, digits, spaces or _ . : / = + - @, not starting with aws:")
	}
	if !r.failed[ctxTagValue] && !tagRE.MatchString(c.TagValue) {
		r.fail(ctxTagValue, c.TagValue, "a tag value: letters, digits, spaces or _ . : / = + - @")
	}
	// CloudWatch reserves the AWS/ namespaces for AWS services
	// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html):
	// the function would write metrics nobody can read.
	if !r.failed[ctxMetricsNamespace] && strings.HasPrefix(c.MetricsNamespace, "AWS/") {
		r.fail(ctxMetricsNamespace, c.MetricsNamespace, "the AWS/ namespaces are reserved for AWS services")
	}
	if !r.failed[ctxContinuationMax] && c.ContinuationMax > maxStackContinuation {
		r.fail(ctxContinuationMax, strconv.Itoa(c.ContinuationMax),
			"at most %d: Lambda's recursive loop detection stops a chain of about 16 invocations (the function itself accepts more)", maxStackContinuation)
	}
	// The incident rule's target and the function's asynchronous
	// invocations drop an event older than incidentMaxAge, in whole
	// seconds; Lambda keeps an asynchronous event at most six hours
	// (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-configuring.html),
	// though the function accepts a day.
	if !r.failed[ctxIncidentMaxAge] && (c.IncidentMaxAge > maxAsyncEventAge || c.IncidentMaxAge%time.Second != 0) {
		r.fail(ctxIncidentMaxAge, r.raw(ctxIncidentMaxAge, c.IncidentMaxAge.String()),
			"whole seconds, at most %s: Lambda keeps an asynchronous event at most that long (the function itself accepts up to 24h)", maxAsyncEventAge)
	}
}

// ctxReader collects every error, so one synth reports all bad settings.
type ctxReader struct {
	get    func(string) any
	errs   []string
	failed map[string]bool // context keys with an error
}

func (r *ctxReader) fail(key, value, format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf("-c %s=%s: %s", key, value, fmt.Sprintf(format, args...)))
	if r.failed == nil {
		r.failed = map[string]bool{}
	}
	r.failed[key] = true
}

// raw is the context value of key as the user wrote it, or def when unset.
func (r *ctxReader) raw(key, def string) string {
	if v := r.get(key); v != nil {
		return fmt.Sprint(v)
	}
	return def
}

// scalar is the context value of key as the text of an environment
// variable: a string trimmed, a number or boolean of cdk.json spelled as Go
// does. set is false when the key is unset or empty (the default applies).
func (r *ctxReader) scalar(key string) (v string, set bool) {
	switch x := r.get(key).(type) {
	case nil:
		return "", false
	case string:
		v = strings.TrimSpace(x)
	case float64:
		v = strconv.FormatFloat(x, 'f', -1, 64)
	case int:
		v = strconv.Itoa(x)
	case bool:
		v = strconv.FormatBool(x)
	default:
		r.fail(key, fmt.Sprint(x), "a string, number or boolean")
		return "", false
	}
	return v, v != ""
}

// silence parses the schedule and its time zone and derives the silence
// alarm's view of it; errors name the context key.
func (r *ctxReader) silence(expr, tz string, timeout time.Duration) Silence {
	// Scheduler takes IANA names (ScheduleExpressionTimezone); the app
	// embeds Go's copy of the database (time/tzdata), so a synth gives the
	// same answer on every machine.
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "Local" || tz == "" {
		r.fail(ctxScheduleTimezone, tz, "not an IANA time zone name such as UTC or Europe/Berlin")
		loc = time.UTC
	}
	sched, err := parseSchedule(expr)
	if err != nil {
		r.fail(ctxSchedule, expr, "%v", err)
		return Silence{}
	}
	shortest, gap, err := sched.gaps(loc)
	if err != nil {
		r.fail(ctxSchedule, expr, "%v", err)
		return Silence{}
	}
	return Silence{Gap: gap, MinGap: shortest, Slack: silenceSlack(timeout)}
}

// roleARNs reads a list of IAM role ARNs given as a JSON list (cdk.json),
// a JSON list in a string, or a comma-separated string (-c). All must be of
// one account: the incident rule matches that account's events only.
func (r *ctxReader) roleARNs(key string) []string {
	list := r.list(key)
	var out []string
	accounts := map[string]bool{}
	for _, arn := range list {
		arn = strings.TrimSpace(arn)
		m := roleARNRE.FindStringSubmatch(arn)
		if m == nil {
			r.fail(key, arn, "not an IAM role ARN such as arn:aws:iam::111122223333:role/soar")
			continue
		}
		accounts[m[2]] = true
		if !slices.Contains(out, arn) {
			out = append(out, arn)
		}
	}
	if len(accounts) > 1 {
		r.fail(key, strings.Join(out, ","), "the roles must all be of one account, the stack's: the incident rule matches only events of that account")
	}
	return out
}

// principalAccount is the account of the incident principals ("" without any).
func principalAccount(arns []string) string {
	for _, arn := range arns {
		if m := roleARNRE.FindStringSubmatch(arn); m != nil {
			return m[2]
		}
	}
	return ""
}

func (r *ctxReader) str(key string) string {
	switch v := r.get(key).(type) {
	case nil:
		return ""
	case string:
		return strings.TrimSpace(v)
	default:
		r.fail(key, fmt.Sprint(v), "must be a string")
		return ""
	}
}

func (r *ctxReader) setStr(key string, dst *string) {
	if v := r.get(key); v != nil {
		if s := r.str(key); s != "" || key == ctxAlarmEmail {
			*dst = s
		}
	}
}

func (r *ctxReader) number(key string, def, lo, hi float64) float64 {
	var f float64
	switch v := r.get(key).(type) {
	case nil:
		return def
	case float64:
		f = v
	case int:
		f = float64(v)
	case string:
		if strings.TrimSpace(v) == "" {
			return def
		}
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil {
			r.fail(key, v, "not a number")
			return def
		}
	default:
		r.fail(key, fmt.Sprint(v), "not a number")
		return def
	}
	if math.IsNaN(f) || f < lo || f > hi {
		r.fail(key, strconv.FormatFloat(f, 'f', -1, 64), "must be between %g and %g", lo, hi)
		return def
	}
	return f
}

func (r *ctxReader) integer(key string, def, lo, hi int) int {
	f := r.number(key, float64(def), math.Inf(-1), math.Inf(1))
	if f != math.Trunc(f) {
		r.fail(key, strconv.FormatFloat(f, 'f', -1, 64), "not a whole number")
		return def
	}
	n := int(f)
	if n < lo || n > hi {
		r.fail(key, strconv.Itoa(n), "must be between %d and %d", lo, hi)
		return def
	}
	return n
}
