package main

import (
	"encoding/json"
	"fmt"
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
// validated by the function's own loader (settings.LoadConfig) on the
// environment the stack would set, so the stack and the function cannot
// disagree on a bound; the few bounds that only the stack knows (Lambda,
// CloudWatch, EventBridge limits) are checked here, each with its reason.
type Settings struct {
	// Regions gets one stack each; empty means the CLI's default region.
	Regions []string
	// FunctionName is the function's explicit name: the role may invoke only
	// this function (the continuation of a sweep), and names derive from it.
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
	// ReservedConcurrency of the function; 0 = none (the default).
	ReservedConcurrency int
	// Function configuration, passed as ROTATOR_* environment variables
	// (docs/design.md "Configuration").
	TagKey, TagValue      string
	IntervalDays          int
	OnDemandLimit         int
	Reserve               int
	RotateRPS             float64
	Concurrency           int
	DryRun                bool
	MetricsNamespace      string
	IncidentCooldown      time.Duration
	ConfirmWait           time.Duration
	CallTimeout           time.Duration
	MinIntervalDays       int
	AutoRotationGraceDays int
	// ContinuationMax bounds the chain of self-invocations that finish a
	// sweep which did not fit in one run (ROTATOR_CONTINUATION_MAX).
	ContinuationMax int
	// AlarmEmail, when set, subscribes this address to the alarm topic.
	AlarmEmail string
	// IncidentBusName is the dedicated event bus for incident requests.
	IncidentBusName string
	// IncidentPrincipals are the IAM role ARNs that may put events on the
	// incident bus; empty = any principal of the stack's own account that
	// its IAM policies allow.
	IncidentPrincipals []string
}

// Silence is the silence alarm's view of the schedule.
type Silence struct {
	// Gap is the longest time between two firings of the schedule over a
	// year (in its time zone, daylight saving time included).
	Gap time.Duration
	// Slack is how late a sweep may complete after it was due: one hour
	// for delivery and start, plus the function's timeout.
	Slack time.Duration
}

// Window is the longest time without a completed scheduled run that is
// still normal: the longest gap plus the slack.
func (s Silence) Window() time.Duration { return s.Gap + s.Slack }

// Context keys. cdk.json lists each with its default.
const (
	ctxRegions               = "regions"
	ctxFunctionName          = "functionName"
	ctxSchedule              = "schedule"
	ctxScheduleTimezone      = "scheduleTimezone"
	ctxMemorySize            = "memorySize"
	ctxTimeoutMinutes        = "timeoutMinutes"
	ctxLogRetentionDays      = "logRetentionDays"
	ctxReservedConcurrency   = "reservedConcurrency"
	ctxTagKey                = "tagKey"
	ctxTagValue              = "tagValue"
	ctxIntervalDays          = "intervalDays"
	ctxOnDemandLimit         = "onDemandLimit"
	ctxReserve               = "reserve"
	ctxRotateRPS             = "rotateRps"
	ctxConcurrency           = "concurrency"
	ctxDryRun                = "dryRun"
	ctxMetricsNamespace      = "metricsNamespace"
	ctxContinuationMax       = "continuationMax"
	ctxIncidentCooldown      = "incidentCooldown"
	ctxConfirmWait           = "confirmWait"
	ctxCallTimeout           = "callTimeout"
	ctxMinIntervalDays       = "minIntervalDays"
	ctxAutoRotationGraceDays = "autoRotationGraceDays"
	ctxAlarmEmail            = "alarmEmail"
	ctxIncidentBusName       = "incidentBusName"
	ctxIncidentPrincipals    = "incidentPrincipals"
)

// ContextKeys lists every context key the app reads.
var ContextKeys = []string{
	ctxRegions, ctxFunctionName, ctxSchedule, ctxScheduleTimezone, ctxMemorySize,
	ctxTimeoutMinutes, ctxLogRetentionDays, ctxReservedConcurrency, ctxTagKey, ctxTagValue,
	ctxIntervalDays, ctxOnDemandLimit, ctxReserve, ctxRotateRPS, ctxConcurrency, ctxDryRun,
	ctxMetricsNamespace, ctxContinuationMax, ctxIncidentCooldown, ctxConfirmWait, ctxCallTimeout,
	ctxMinIntervalDays, ctxAutoRotationGraceDays, ctxAlarmEmail, ctxIncidentBusName, ctxIncidentPrincipals,
}

// envContext maps each ROTATOR_* variable the stack sets to the context key
// it comes from, so an error of the function's loader names the key.
var envContext = map[string]string{
	settings.EnvTagKey:                ctxTagKey,
	settings.EnvTagValue:              ctxTagValue,
	settings.EnvIntervalDays:          ctxIntervalDays,
	settings.EnvOnDemandLimit:         ctxOnDemandLimit,
	settings.EnvReserve:               ctxReserve,
	settings.EnvRotateRPS:             ctxRotateRPS,
	settings.EnvConcurrency:           ctxConcurrency,
	settings.EnvDryRun:                ctxDryRun,
	settings.EnvMetricsNamespace:      ctxMetricsNamespace,
	settings.EnvContinuationMax:       ctxContinuationMax,
	settings.EnvIncidentCooldown:      ctxIncidentCooldown,
	settings.EnvConfirmWait:           ctxConfirmWait,
	settings.EnvCallTimeout:           ctxCallTimeout,
	settings.EnvMinIntervalDays:       ctxMinIntervalDays,
	settings.EnvAutoRotationGraceDays: ctxAutoRotationGraceDays,
}

// DefaultSettings are the values cdk.json ships with. The function-side
// ones come from settings.DefaultConfig, so the stack and the function share
// one set of defaults.
func DefaultSettings() Settings {
	f := settings.DefaultConfig()
	s := Settings{
		FunctionName:          "kms-rotator",
		Schedule:              "cron(0 3 * * ? *)",
		ScheduleTimezone:      "UTC",
		MemorySize:            256,
		Timeout:               10 * time.Minute,
		LogRetentionDays:      365,
		TagKey:                f.TagKey,
		TagValue:              f.TagValue,
		IntervalDays:          f.IntervalDays,
		OnDemandLimit:         f.OnDemandLimit,
		Reserve:               f.Reserve,
		RotateRPS:             f.RotateRPS,
		Concurrency:           f.Concurrency,
		DryRun:                f.DryRun,
		MetricsNamespace:      f.MetricsNamespace,
		ContinuationMax:       f.ContinuationMax,
		IncidentCooldown:      f.IncidentCooldown,
		ConfirmWait:           f.ConfirmWait,
		CallTimeout:           f.CallTimeout,
		MinIntervalDays:       f.MinIntervalDays,
		AutoRotationGraceDays: f.AutoRotationGraceDays,
		IncidentBusName:       "kms-rotator-incidents",
	}
	// A daily cron in UTC: 24 hours between sweeps.
	s.Silence = Silence{Gap: 24 * time.Hour, Slack: silenceSlack(s.Timeout)}
	return s
}

// silenceSlack is how late a scheduled run may complete and still be on
// time: EventBridge Scheduler invokes within the minute it is due (flexible
// window off), the asynchronous invocation usually starts within seconds,
// and the run completes within the function's timeout; an hour covers the
// delivery and a daylight-saving hour that a local time may shift by.
func silenceSlack(timeout time.Duration) time.Duration { return time.Hour + timeout }

// Environment is the function's environment: the ROTATOR_* variables of
// docs/design.md "Configuration", every one set (so the function uses
// exactly what the stack says).
func (s Settings) Environment() map[string]string {
	return map[string]string{
		settings.EnvTagKey:                s.TagKey,
		settings.EnvTagValue:              s.TagValue,
		settings.EnvIntervalDays:          strconv.Itoa(s.IntervalDays),
		settings.EnvOnDemandLimit:         strconv.Itoa(s.OnDemandLimit),
		settings.EnvReserve:               strconv.Itoa(s.Reserve),
		settings.EnvRotateRPS:             strconv.FormatFloat(s.RotateRPS, 'f', -1, 64),
		settings.EnvConcurrency:           strconv.Itoa(s.Concurrency),
		settings.EnvDryRun:                strconv.FormatBool(s.DryRun),
		settings.EnvMetricsNamespace:      s.MetricsNamespace,
		settings.EnvContinuationMax:       strconv.Itoa(s.ContinuationMax),
		settings.EnvIncidentCooldown:      formatDuration(s.IncidentCooldown),
		settings.EnvConfirmWait:           formatDuration(s.ConfirmWait),
		settings.EnvCallTimeout:           formatDuration(s.CallTimeout),
		settings.EnvMinIntervalDays:       strconv.Itoa(s.MinIntervalDays),
		settings.EnvAutoRotationGraceDays: strconv.Itoa(s.AutoRotationGraceDays),
	}
}

// formatDuration writes a Go duration without zero tails: 1h, 1h30m, 5s.
func formatDuration(d time.Duration) string {
	out := d.String()
	if strings.HasSuffix(out, "m0s") {
		out = strings.TrimSuffix(out, "0s")
	}
	if strings.HasSuffix(out, "h0m") {
		out = strings.TrimSuffix(out, "0m")
	}
	return out
}

var (
	// https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunction.html (FunctionName)
	functionNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	regionRE       = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$`)
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
)

// logRetentionDays are the retention periods CloudWatch Logs accepts
// (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html).
var logRetentionDays = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

// minReservedConcurrency: a sweep and the continuation it starts overlap
// for a moment, and an incident must still find a free execution
// (docs/design.md "Safety rules": an incident is never queued behind a sweep).
const minReservedConcurrency = 3

// SettingsFromContext reads and validates the settings; get returns a context
// value (nil when unset). cdk.json gives typed JSON values, `-c` gives strings;
// both are accepted. Errors name the context key.
func SettingsFromContext(get func(key string) any) (Settings, error) {
	s := DefaultSettings()
	r := ctxReader{get: get}
	if v := r.str(ctxRegions); v != "" {
		for _, region := range strings.Split(v, ",") {
			region = strings.TrimSpace(region)
			if !regionRE.MatchString(region) {
				r.fail(ctxRegions, v, "%q is not a region name such as us-east-1", region)
				continue
			}
			if !slices.Contains(s.Regions, region) {
				s.Regions = append(s.Regions, region)
			}
		}
	}
	r.setStr(ctxFunctionName, &s.FunctionName)
	if !functionNameRE.MatchString(s.FunctionName) {
		r.fail(ctxFunctionName, s.FunctionName, "1–64 letters, digits, - or _")
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
				"at least %d (a sweep, the continuation it starts and an incident must run at once), or empty for none", minReservedConcurrency)
		}
	}
	r.setStr(ctxTagKey, &s.TagKey)
	r.setStr(ctxTagValue, &s.TagValue)
	// The tag goes into the role's and the key policies' conditions: a key or
	// value KMS cannot hold would make conditions that match no key. The
	// function checks only lengths; KMS's character set is the stack's to check.
	if !tagRE.MatchString(s.TagKey) || strings.HasPrefix(strings.ToLower(s.TagKey), "aws:") {
		r.fail(ctxTagKey, s.TagKey, "a tag key: letters, digits, spaces or _ . : / = + - @, not starting with aws:")
	}
	if !tagRE.MatchString(s.TagValue) {
		r.fail(ctxTagValue, s.TagValue, "a tag value: letters, digits, spaces or _ . : / = + - @")
	}
	s.IntervalDays = r.whole(ctxIntervalDays, s.IntervalDays)
	s.OnDemandLimit = r.whole(ctxOnDemandLimit, s.OnDemandLimit)
	s.Reserve = r.whole(ctxReserve, s.Reserve)
	s.RotateRPS = r.number(ctxRotateRPS, s.RotateRPS, math.Inf(-1), math.Inf(1))
	s.Concurrency = r.whole(ctxConcurrency, s.Concurrency)
	s.DryRun = r.boolean(ctxDryRun, s.DryRun)
	r.setStr(ctxMetricsNamespace, &s.MetricsNamespace)
	// CloudWatch reserves the AWS/ namespaces for AWS services
	// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html):
	// the function would write metrics nobody can read.
	if strings.HasPrefix(s.MetricsNamespace, "AWS/") {
		r.fail(ctxMetricsNamespace, s.MetricsNamespace, "the AWS/ namespaces are reserved for AWS services")
	}
	// Lambda's recursive loop detection stops a chain after about 16
	// invocations (https://docs.aws.amazon.com/lambda/latest/dg/invocation-recursion.html),
	// so the stack keeps the bound below it; the function accepts more.
	s.ContinuationMax = r.integer(ctxContinuationMax, s.ContinuationMax, math.MinInt32, 15)
	s.IncidentCooldown = r.duration(ctxIncidentCooldown, s.IncidentCooldown)
	s.ConfirmWait = r.duration(ctxConfirmWait, s.ConfirmWait)
	s.CallTimeout = r.duration(ctxCallTimeout, s.CallTimeout)
	s.MinIntervalDays = r.whole(ctxMinIntervalDays, s.MinIntervalDays)
	s.AutoRotationGraceDays = r.whole(ctxAutoRotationGraceDays, s.AutoRotationGraceDays)
	r.setStr(ctxAlarmEmail, &s.AlarmEmail)
	if s.AlarmEmail != "" {
		if a, err := mail.ParseAddress(s.AlarmEmail); err != nil || a.Address != s.AlarmEmail {
			r.fail(ctxAlarmEmail, s.AlarmEmail, "not a plain e-mail address")
		}
	}
	r.setStr(ctxIncidentBusName, &s.IncidentBusName)
	if !busNameRE.MatchString(s.IncidentBusName) || s.IncidentBusName == "default" {
		r.fail(ctxIncidentBusName, s.IncidentBusName, "a custom event bus name: 1–256 letters, digits, . - or _, not default")
	}
	s.IncidentPrincipals = r.roleARNs(ctxIncidentPrincipals)
	r.functionConfig(s)
	if len(r.errs) > 0 {
		return Settings{}, fmt.Errorf("invalid CDK context:\n  %s", strings.Join(r.errs, "\n  "))
	}
	return s, nil
}

// functionConfig runs the function's own configuration loader on the
// environment the stack would set. The loader stops at the first bad
// variable, so each one it names is put back to its default and the loader
// runs again: one synth reports every bad setting.
func (r *ctxReader) functionConfig(s Settings) {
	env := s.Environment()
	for name, key := range envContext {
		if r.failed[key] {
			delete(env, name) // reported already, by the stack's own check
		}
	}
	for range envContext {
		_, err := settings.LoadConfig(func(k string) string { return env[k] })
		if err == nil {
			return
		}
		name := envName(err.Error())
		key, ok := envContext[name]
		if _, set := env[name]; !ok || !set {
			// Not a variable the stack sets, or one already put back to
			// its default: report the loader's words as they are.
			r.errs = append(r.errs, "the function's configuration: "+err.Error())
			return
		}
		r.fail(key, r.raw(key, env[name]), "%v", err)
		delete(env, name)
	}
}

// envName is the ROTATOR_* variable an error of settings.LoadConfig starts with.
func envName(msg string) string {
	end := strings.IndexAny(msg, "=: ")
	if end < 0 {
		return msg
	}
	return msg[:end]
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

// whole reads a whole number whose bounds the function's loader checks.
func (r *ctxReader) whole(key string, def int) int {
	return r.integer(key, def, math.MinInt32, math.MaxInt32)
}

// duration reads a Go duration (1h, 90s) whose bounds the function's
// loader checks.
func (r *ctxReader) duration(key string, def time.Duration) time.Duration {
	v := r.str(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		r.fail(key, v, "not a Go duration such as 90s, 10m or 1h")
		return def
	}
	return d
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
	gap, err := sched.longestGap(loc)
	if err != nil {
		r.fail(ctxSchedule, expr, "%v", err)
		return Silence{}
	}
	return Silence{Gap: gap, Slack: silenceSlack(timeout)}
}

// roleARNs reads a list of IAM role ARNs given as a JSON list (cdk.json),
// a JSON list in a string, or a comma-separated string (-c). All must be of
// one account: the incident rule matches that account's events only.
func (r *ctxReader) roleARNs(key string) []string {
	var list []string
	switch v := r.get(key).(type) {
	case nil:
		return nil
	case []any:
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				r.fail(key, fmt.Sprint(v), "a list of role ARNs (strings)")
				return nil
			}
			list = append(list, strings.TrimSpace(s))
		}
	case string:
		v = strings.TrimSpace(v)
		if strings.HasPrefix(v, "[") {
			if err := json.Unmarshal([]byte(v), &list); err != nil {
				r.fail(key, v, "not a JSON list of role ARNs: %v", err)
				return nil
			}
		} else if v != "" {
			list = strings.Split(v, ",")
		}
	default:
		r.fail(key, fmt.Sprint(v), "a comma-separated string or a list of role ARNs")
		return nil
	}
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

func (r *ctxReader) boolean(key string, def bool) bool {
	switch v := r.get(key).(type) {
	case nil:
		return def
	case bool:
		return v
	case string:
		if strings.TrimSpace(v) == "" {
			return def
		}
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			r.fail(key, v, "not true or false")
			return def
		}
		return b
	default:
		r.fail(key, fmt.Sprint(v), "not true or false")
		return def
	}
}
