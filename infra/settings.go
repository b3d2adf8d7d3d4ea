package main

import (
	"fmt"
	"math"
	"net/mail"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kms-rotator/kms-rotator/lambda/rotator"
)

// Settings are the deployment's choices, read from CDK context (cdk.json holds
// the defaults; `-c key=value` overrides one). Every field is validated at
// synth time with the same bounds the function applies at cold start
// (lambda/rotator/config.go), so a bad value fails `cdk synth`, not a run.
type Settings struct {
	// Regions gets one stack each; empty means the CLI's default region.
	Regions []string
	// FunctionName is the function's explicit name: the role may invoke only
	// this function (the continuation of a sweep), and the log group is named after it.
	FunctionName string
	// Schedule is the EventBridge schedule expression of the sweep.
	Schedule string
	// SchedulePeriod is the time between two scheduled runs (derived from a
	// rate() schedule, else from context schedulePeriodHours); the silence
	// alarm fires after two periods without a completed run.
	SchedulePeriod time.Duration
	// MemorySize in MB and Timeout of the function.
	MemorySize int
	Timeout    time.Duration
	// LogRetentionDays of the function's log group (0 = never expire).
	LogRetentionDays int
	// Function configuration, passed as ROTATOR_* environment variables
	// (docs/design.md "Configuration").
	TagKey, TagValue string
	IntervalDays     int
	OnDemandLimit    int
	Reserve          int
	RotateRPS        float64
	Concurrency      int
	DryRun           bool
	MetricsNamespace string
	// ContinuationMax bounds the chain of self-invocations that finish a
	// sweep which did not fit in one run (ROTATOR_CONTINUATION_MAX).
	ContinuationMax int
	// AlarmEmail, when set, subscribes this address to the alarm topic.
	AlarmEmail string
}

// Context keys. cdk.json lists each with its default.
const (
	ctxRegions             = "regions"
	ctxFunctionName        = "functionName"
	ctxSchedule            = "schedule"
	ctxSchedulePeriodHours = "schedulePeriodHours"
	ctxMemorySize          = "memorySize"
	ctxTimeoutMinutes      = "timeoutMinutes"
	ctxLogRetentionDays    = "logRetentionDays"
	ctxTagKey              = "tagKey"
	ctxTagValue            = "tagValue"
	ctxIntervalDays        = "intervalDays"
	ctxOnDemandLimit       = "onDemandLimit"
	ctxReserve             = "reserve"
	ctxRotateRPS           = "rotateRps"
	ctxConcurrency         = "concurrency"
	ctxDryRun              = "dryRun"
	ctxMetricsNamespace    = "metricsNamespace"
	ctxContinuationMax     = "continuationMax"
	ctxAlarmEmail          = "alarmEmail"
)

// ContextKeys lists every context key the app reads.
var ContextKeys = []string{
	ctxRegions, ctxFunctionName, ctxSchedule, ctxSchedulePeriodHours, ctxMemorySize,
	ctxTimeoutMinutes, ctxLogRetentionDays, ctxTagKey, ctxTagValue, ctxIntervalDays,
	ctxOnDemandLimit, ctxReserve, ctxRotateRPS, ctxConcurrency, ctxDryRun,
	ctxMetricsNamespace, ctxContinuationMax, ctxAlarmEmail,
}

// DefaultSettings are the values cdk.json ships with. The function-side
// ones come from rotator.DefaultConfig, so the stack and the function share
// one set of defaults.
func DefaultSettings() Settings {
	f := rotator.DefaultConfig()
	return Settings{
		FunctionName:     "kms-rotator",
		Schedule:         "cron(0 3 * * ? *)",
		SchedulePeriod:   24 * time.Hour,
		MemorySize:       256,
		Timeout:          10 * time.Minute,
		LogRetentionDays: 365,
		TagKey:           f.TagKey,
		TagValue:         f.TagValue,
		IntervalDays:     f.IntervalDays,
		OnDemandLimit:    f.OnDemandLimit,
		Reserve:          f.Reserve,
		RotateRPS:        f.RotateRPS,
		Concurrency:      f.Concurrency,
		DryRun:           f.DryRun,
		MetricsNamespace: f.MetricsNamespace,
		ContinuationMax:  f.ContinuationMax,
	}
}

// Environment is the function's environment: the ROTATOR_* variables of
// docs/design.md "Configuration" plus ROTATOR_CONTINUATION_MAX.
func (s Settings) Environment() map[string]string {
	return map[string]string{
		rotator.EnvTagKey:           s.TagKey,
		rotator.EnvTagValue:         s.TagValue,
		rotator.EnvIntervalDays:     strconv.Itoa(s.IntervalDays),
		rotator.EnvOnDemandLimit:    strconv.Itoa(s.OnDemandLimit),
		rotator.EnvReserve:          strconv.Itoa(s.Reserve),
		rotator.EnvRotateRPS:        strconv.FormatFloat(s.RotateRPS, 'f', -1, 64),
		rotator.EnvConcurrency:      strconv.Itoa(s.Concurrency),
		rotator.EnvDryRun:           strconv.FormatBool(s.DryRun),
		rotator.EnvMetricsNamespace: s.MetricsNamespace,
		rotator.EnvContinuationMax:  strconv.Itoa(s.ContinuationMax),
	}
}

var (
	// https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunction.html (FunctionName)
	functionNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	regionRE       = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$`)
	rateRE         = regexp.MustCompile(`^rate\((\d+) (minutes?|hours?|days?)\)$`)
	// Tag keys and values: letters, digits, white space and _ . : / = + - @
	// (https://docs.aws.amazon.com/kms/latest/developerguide/tagging-keys.html).
	tagRE = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
)

// logRetentionDays are the retention periods CloudWatch Logs accepts
// (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html).
var logRetentionDays = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

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
	r.setStr(ctxSchedule, &s.Schedule)
	periodHours := r.number(ctxSchedulePeriodHours, 24, 1.0/60, 24*84)
	s.SchedulePeriod = time.Duration(periodHours * float64(time.Hour))
	switch m := rateRE.FindStringSubmatch(s.Schedule); {
	case m != nil:
		n, _ := strconv.Atoi(m[1])
		unit := map[byte]time.Duration{'m': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour}[m[2][0]]
		s.SchedulePeriod = time.Duration(n) * unit
		if n < 1 {
			r.fail(ctxSchedule, s.Schedule, "the rate must be at least 1")
		}
	case strings.HasPrefix(s.Schedule, "cron(") && strings.HasSuffix(s.Schedule, ")"):
		if len(strings.Fields(s.Schedule[5:len(s.Schedule)-1])) != 6 {
			r.fail(ctxSchedule, s.Schedule, "an EventBridge cron expression has six fields")
		}
	default:
		r.fail(ctxSchedule, s.Schedule, "must be cron(…) or rate(…)")
	}
	s.MemorySize = r.integer(ctxMemorySize, s.MemorySize, 128, 10240)
	s.Timeout = time.Duration(r.integer(ctxTimeoutMinutes, int(s.Timeout/time.Minute), 1, 15)) * time.Minute
	s.LogRetentionDays = r.integer(ctxLogRetentionDays, s.LogRetentionDays, 0, 3653)
	if s.LogRetentionDays != 0 && !slices.Contains(logRetentionDays, s.LogRetentionDays) {
		r.fail(ctxLogRetentionDays, strconv.Itoa(s.LogRetentionDays), "not a CloudWatch Logs retention; one of 0 (never expire) or %v", logRetentionDays)
	}
	r.setStr(ctxTagKey, &s.TagKey)
	r.setStr(ctxTagValue, &s.TagValue)
	if s.TagKey == "" || len(s.TagKey) > 128 || !tagRE.MatchString(s.TagKey) || strings.HasPrefix(strings.ToLower(s.TagKey), "aws:") {
		r.fail(ctxTagKey, s.TagKey, "a tag key: 1–128 letters, digits, spaces or _ . : / = + - @, not starting with aws:")
	}
	if len(s.TagValue) > 256 || !tagRE.MatchString(s.TagValue) || s.TagValue == "" {
		r.fail(ctxTagValue, s.TagValue, "a tag value: 1–256 letters, digits, spaces or _ . : / = + - @")
	}
	s.IntervalDays = r.integer(ctxIntervalDays, s.IntervalDays, 1, 3650)
	s.OnDemandLimit = r.integer(ctxOnDemandLimit, s.OnDemandLimit, 1, 100)
	s.Reserve = r.integer(ctxReserve, s.Reserve, 0, 100)
	if s.Reserve >= s.OnDemandLimit {
		r.fail(ctxReserve, strconv.Itoa(s.Reserve), "must be less than %s (%d), or scheduled runs could never rotate", ctxOnDemandLimit, s.OnDemandLimit)
	}
	s.RotateRPS = r.number(ctxRotateRPS, s.RotateRPS, 0.01, 1000)
	s.Concurrency = r.integer(ctxConcurrency, s.Concurrency, 1, 256)
	s.DryRun = r.boolean(ctxDryRun, s.DryRun)
	r.setStr(ctxMetricsNamespace, &s.MetricsNamespace)
	if s.MetricsNamespace == "" || len(s.MetricsNamespace) > 255 || strings.HasPrefix(s.MetricsNamespace, ":") ||
		strings.HasPrefix(s.MetricsNamespace, "AWS/") ||
		strings.ContainsFunc(s.MetricsNamespace, func(c rune) bool { return c < 0x20 || c > 0x7e }) {
		r.fail(ctxMetricsNamespace, s.MetricsNamespace, "printable ASCII, 1–255 characters, not starting with ':' or AWS/")
	}
	// Lambda's recursive loop detection stops a chain after about 16
	// invocations (https://docs.aws.amazon.com/lambda/latest/dg/invocation-recursion.html),
	// so the bound stays below it.
	s.ContinuationMax = r.integer(ctxContinuationMax, s.ContinuationMax, 0, 15)
	r.setStr(ctxAlarmEmail, &s.AlarmEmail)
	if s.AlarmEmail != "" {
		if a, err := mail.ParseAddress(s.AlarmEmail); err != nil || a.Address != s.AlarmEmail {
			r.fail(ctxAlarmEmail, s.AlarmEmail, "not a plain e-mail address")
		}
	}
	if len(r.errs) > 0 {
		return Settings{}, fmt.Errorf("invalid CDK context:\n  %s", strings.Join(r.errs, "\n  "))
	}
	return s, nil
}

// ctxReader collects every error, so one synth reports all bad settings.
type ctxReader struct {
	get  func(string) any
	errs []string
}

func (r *ctxReader) fail(key, value, format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf("-c %s=%s: %s", key, value, fmt.Sprintf(format, args...)))
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
