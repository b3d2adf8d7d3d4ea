// Package settings holds the function's settings in one place, for the
// function and the CDK app alike: the environment variables with their
// defaults and bounds (LoadConfig), the per-key interval tag, and the names
// the function emits (metrics, dimensions, the result event). It depends on
// the standard library only, so infra/ reads it without building the engine.
package settings

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Config is the function's configuration, read once at cold start from the
// environment variables of docs/design.md "Configuration" (the CDK stack
// sets them from its context and validates them with LoadConfig at synth).
type Config struct {
	// TagKey and TagValue form the opt-in tag (ROTATOR_TAG_KEY / ROTATOR_TAG_VALUE).
	TagKey, TagValue string
	// IntervalDays is the scheduled rotation interval (ROTATOR_INTERVAL_DAYS);
	// a key's tag kms-rotator:interval-days overrides it.
	IntervalDays int
	// OnDemandLimit is the lifetime on-demand rotation limit per key
	// (ROTATOR_ON_DEMAND_LIMIT).
	OnDemandLimit int
	// Reserve is the number of on-demand rotations scheduled runs never use
	// (ROTATOR_RESERVE); always < OnDemandLimit.
	Reserve int
	// RotateRPS paces RotateKeyOnDemand calls (ROTATOR_ROTATE_RPS).
	RotateRPS float64
	// Concurrency is the number of key pipelines in flight (ROTATOR_CONCURRENCY).
	Concurrency int
	// ConcurrencyAuto is true when ROTATOR_CONCURRENCY was not set: the
	// engine may then read with more pipelines than Concurrency when a
	// raised ROTATOR_ROTATE_RPS needs them to keep ListKeyRotations' pace
	// (readPipelines). A value the operator set is used exactly.
	ConcurrencyAuto bool
	// DryRun forces every run to decide and report only (ROTATOR_DRY_RUN).
	DryRun bool
	// StartJitter bounds a random delay before a scheduled run's first
	// rotation (no environment variable; 0 turns it off). Duplicate
	// deliveries of one schedule start at the same moment and walk the keys
	// in the same order at the same pace: in lockstep, each could read a
	// key's history before the other's rotation lands, and both rotate it.
	// A random offset puts one sweep behind the other, so the re-check
	// right before each rotation sees the leader's rotations.
	StartJitter time.Duration
	// MetricsNamespace is the CloudWatch EMF namespace (ROTATOR_METRICS_NAMESPACE).
	MetricsNamespace string
	// ContinuationMax bounds the chain of continuations a scheduled, plan
	// or report run may start when its keys do not fit before the Lambda
	// deadline (ROTATOR_CONTINUATION_MAX; 0 = never continue).
	ContinuationMax int
	// IncidentCooldown: an incident skips a key whose newest on-demand
	// rotation (completed or in progress) is younger than this, unless the
	// request says force (ROTATOR_INCIDENT_COOLDOWN; 0 = off). Repeated
	// incident requests are ordinary (CLI re-sends, SOAR retries,
	// at-least-once delivery) and must not spend a rotation each.
	IncidentCooldown time.Duration
	// ConfirmWait bounds how long the engine looks for a rotation after an
	// ambiguous RotateKeyOnDemand failure (ROTATOR_CONFIRM_WAIT).
	ConfirmWait time.Duration
	// CallTimeout is the per-attempt timeout of every AWS call
	// (ROTATOR_CALL_TIMEOUT).
	CallTimeout time.Duration
	// MinIntervalDays is the shortest interval a key's tag or
	// ROTATOR_INTERVAL_DAYS may set (ROTATOR_MIN_INTERVAL_DAYS): whoever may
	// tag a key must not be able to spend its lifetime budget in days.
	MinIntervalDays int
	// AutoRotationGraceDays: a sweep skips a due key whose automatic
	// rotation comes within this many days, a free rotation instead of an
	// on-demand one from the lifetime budget
	// (ROTATOR_AUTO_ROTATION_GRACE_DAYS; 0 = off).
	AutoRotationGraceDays int
	// IncidentWait bounds how long an incident waits for its rotations to
	// complete, that is for the new key material to become current
	// (ROTATOR_INCIDENT_WAIT; 0 = do not wait). On AWS the status clears
	// within seconds but the material changes about a minute later.
	IncidentWait time.Duration
	// StuckAfter flags an on-demand rotation still in progress after this
	// long (ROTATOR_STUCK_AFTER).
	StuckAfter time.Duration
	// SkipIdle skips due keys with no cryptographic use since their newest
	// rotation: new material protects nothing new (ROTATOR_SKIP_IDLE).
	SkipIdle bool
	// MemberRoleName turns on organization mode: the role the function
	// assumes in a member account (arn:PARTITION:iam::ACCOUNT:role/NAME)
	// to work there (ROTATOR_MEMBER_ROLE_NAME; empty = own account only).
	MemberRoleName string

	// LedgerTable names the DynamoDB table of the rotation ledger
	// (ROTATOR_LEDGER_TABLE; required): a claim is written there, with a
	// conditional write, before every RotateKeyOnDemand, because the call
	// has no idempotency token and KMS's reads are eventually consistent.
	LedgerTable string
	// IdempotencyWindow: an incident request repeated within this long of
	// its first run answers that run's report and makes no KMS mutation
	// (ROTATOR_IDEMPOTENCY_WINDOW). 24 h is the longest EventBridge retries
	// an event.
	IdempotencyWindow time.Duration
	// SettleAfter: an unconfirmed claim older than this is settled from
	// KMS's rotation history by the first run that meets it
	// (ROTATOR_SETTLE_AFTER), well past KMS's consistency window.
	SettleAfter time.Duration
	// LedgerRetention is how long the ledger keeps a claim, its evidence
	// (ROTATOR_LEDGER_RETENTION; PCI DSS 10.5.1 asks for 12 months).
	LedgerRetention time.Duration
	// IncidentMaxAge refuses an incident delivered by EventBridge whose
	// envelope time is older than this (ROTATOR_INCIDENT_MAX_AGE): a late
	// delivery must not rotate a key the responder has moved on from.
	IncidentMaxAge time.Duration
	// ResultBus is the event bus the result events go to
	// (ROTATOR_RESULT_BUS): the stack's results bus, which only the
	// function's role may put events on, so a result cannot be forged.
	ResultBus string
}

// Environment variable names (docs/design.md "Configuration").
const (
	EnvTagKey                = "ROTATOR_TAG_KEY"
	EnvTagValue              = "ROTATOR_TAG_VALUE"
	EnvIntervalDays          = "ROTATOR_INTERVAL_DAYS"
	EnvOnDemandLimit         = "ROTATOR_ON_DEMAND_LIMIT"
	EnvReserve               = "ROTATOR_RESERVE"
	EnvRotateRPS             = "ROTATOR_ROTATE_RPS"
	EnvConcurrency           = "ROTATOR_CONCURRENCY"
	EnvDryRun                = "ROTATOR_DRY_RUN"
	EnvMetricsNamespace      = "ROTATOR_METRICS_NAMESPACE"
	EnvContinuationMax       = "ROTATOR_CONTINUATION_MAX"
	EnvIncidentCooldown      = "ROTATOR_INCIDENT_COOLDOWN"
	EnvConfirmWait           = "ROTATOR_CONFIRM_WAIT"
	EnvCallTimeout           = "ROTATOR_CALL_TIMEOUT"
	EnvMinIntervalDays       = "ROTATOR_MIN_INTERVAL_DAYS"
	EnvAutoRotationGraceDays = "ROTATOR_AUTO_ROTATION_GRACE_DAYS"
	EnvIncidentWait          = "ROTATOR_INCIDENT_WAIT"
	EnvStuckAfter            = "ROTATOR_STUCK_AFTER"
	EnvSkipIdle              = "ROTATOR_SKIP_IDLE"
	EnvMemberRoleName        = "ROTATOR_MEMBER_ROLE_NAME"
	EnvLedgerTable           = "ROTATOR_LEDGER_TABLE"
	EnvIdempotencyWindow     = "ROTATOR_IDEMPOTENCY_WINDOW"
	EnvSettleAfter           = "ROTATOR_SETTLE_AFTER"
	EnvLedgerRetention       = "ROTATOR_LEDGER_RETENTION"
	EnvIncidentMaxAge        = "ROTATOR_INCIDENT_MAX_AGE"
	EnvResultBus             = "ROTATOR_RESULT_BUS"
)

// IntervalTagKey is the per-key tag overriding ROTATOR_INTERVAL_DAYS.
const IntervalTagKey = "kms-rotator:interval-days"

// Bounds of the numeric settings. The interval range matches the per-key tag
// (1–3650 days). The on-demand limit is 25 in the current KMS quota table
// (https://docs.aws.amazon.com/kms/latest/developerguide/resource-limits.html);
// 100 leaves room for a raised quota without accepting nonsense.
const (
	minIntervalDays  = 1
	maxIntervalDays  = 3650
	maxOnDemandLimit = 100
	maxRotateRPS     = 1000
	maxConcurrency   = 256
	// maxContinuation is request.MaxChain: a longer chain would be refused.
	maxContinuation = 100
	// maxGraceDays: automatic rotation periods are 90–2560 days
	// (https://docs.aws.amazon.com/kms/latest/developerguide/rotate-keys.html).
	maxGraceDays = 365
	// maxDuration bounds the duration settings: a Lambda run lasts at most
	// 15 minutes; the cooldown may be longer (a week).
	maxCallTimeout      = 15 * time.Minute
	maxConfirmWait      = 15 * time.Minute
	maxIncidentCooldown = 7 * 24 * time.Hour
	maxIncidentWait     = 15 * time.Minute
	minStuckAfter       = time.Minute
	maxStuckAfter       = 30 * 24 * time.Hour
	// The idempotency window covers EventBridge's longest retry (24 h,
	// https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-retry-policy.html)
	// at least, and a week at most.
	minIdempotencyWindow = time.Hour
	maxIdempotencyWindow = 7 * 24 * time.Hour
	minSettleAfter       = time.Minute
	maxSettleAfter       = 24 * time.Hour
	// A ledger entry is kept at least 90 days and at most ten years.
	minLedgerRetention = 90 * 24 * time.Hour
	maxLedgerRetention = 3650 * 24 * time.Hour
	// An event younger than a minute is never refused as late; Lambda's
	// asynchronous maximum event age is 6 h
	// (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-configuring.html).
	minIncidentMaxAge = time.Minute
	maxIncidentMaxAge = 24 * time.Hour
)

// The rotation ledger's DynamoDB key schema and expiry attribute
// (docs/design.md "The rotation ledger"): the stack creates its table from
// these, and local tests create theirs from the same names.
const (
	// LedgerPartitionKey is the table's partition key (string).
	LedgerPartitionKey = "pk"
	// LedgerSortKey is the table's sort key (string).
	LedgerSortKey = "sk"
	// LedgerTTLAttribute holds the epoch second after which DynamoDB may
	// delete an item (time to live).
	LedgerTTLAttribute = "expiresAt"
)

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		TagKey:                "kms-rotator",
		TagValue:              "enabled",
		IntervalDays:          90,
		OnDemandLimit:         25,
		Reserve:               2,
		RotateRPS:             4,
		Concurrency:           16,
		ConcurrencyAuto:       true,
		StartJitter:           time.Second,
		DryRun:                false,
		MetricsNamespace:      "KMSRotator",
		ContinuationMax:       8,
		IncidentCooldown:      time.Hour,
		ConfirmWait:           5 * time.Second,
		CallTimeout:           10 * time.Second,
		MinIntervalDays:       30,
		AutoRotationGraceDays: 7,
		IncidentWait:          90 * time.Second,
		StuckAfter:            24 * time.Hour,
		IdempotencyWindow:     24 * time.Hour,
		SettleAfter:           15 * time.Minute,
		LedgerRetention:       400 * 24 * time.Hour,
		IncidentMaxAge:        15 * time.Minute,
		ResultBus:             "default",
	}
}

// LoadConfig reads the configuration through getenv (os.Getenv in production)
// and validates it. An unset or empty variable takes its default; an invalid
// one is an error naming the variable, so a bad deployment fails its cold
// start instead of rotating with surprising settings.
func LoadConfig(getenv func(string) string) (Config, error) {
	c := DefaultConfig()
	var err error
	str := func(name string, dst *string, maxLen int) {
		v := getenv(name)
		if err != nil || v == "" {
			return
		}
		if len(v) > maxLen {
			err = fmt.Errorf("%s: %d characters, at most %d allowed", name, len(v), maxLen)
			return
		}
		if strings.TrimSpace(v) != v {
			err = fmt.Errorf("%s=%q: leading or trailing white space", name, v)
			return
		}
		*dst = v
	}
	integer := func(name string, dst *int, lo, hi int) {
		v := getenv(name)
		if err != nil || v == "" {
			return
		}
		n, perr := strconv.Atoi(v)
		if perr != nil {
			err = fmt.Errorf("%s=%q: not an integer", name, v)
			return
		}
		if n < lo || n > hi {
			err = fmt.Errorf("%s=%d: must be between %d and %d", name, n, lo, hi)
			return
		}
		*dst = n
	}
	// Tag keys may have 128 characters, values 256
	// (https://docs.aws.amazon.com/kms/latest/developerguide/tagging-keys.html).
	str(EnvTagKey, &c.TagKey, 128)
	str(EnvTagValue, &c.TagValue, 256)
	integer(EnvIntervalDays, &c.IntervalDays, minIntervalDays, maxIntervalDays)
	integer(EnvOnDemandLimit, &c.OnDemandLimit, 1, maxOnDemandLimit)
	integer(EnvReserve, &c.Reserve, 0, maxOnDemandLimit)
	integer(EnvConcurrency, &c.Concurrency, 1, maxConcurrency)
	c.ConcurrencyAuto = getenv(EnvConcurrency) == ""
	integer(EnvContinuationMax, &c.ContinuationMax, 0, maxContinuation)
	integer(EnvMinIntervalDays, &c.MinIntervalDays, minIntervalDays, maxIntervalDays)
	integer(EnvAutoRotationGraceDays, &c.AutoRotationGraceDays, 0, maxGraceDays)
	str(EnvMetricsNamespace, &c.MetricsNamespace, 255)
	str(EnvMemberRoleName, &c.MemberRoleName, 64)
	// DynamoDB table names: 3–255 characters
	// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html).
	str(EnvLedgerTable, &c.LedgerTable, 255)
	// Event bus names: 1–256 of letters, digits and . - _ /
	// (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_CreateEventBus.html).
	str(EnvResultBus, &c.ResultBus, 256)
	duration := func(name string, dst *time.Duration, lo, hi time.Duration) {
		v := getenv(name)
		if err != nil || v == "" {
			return
		}
		d, perr := time.ParseDuration(v)
		if perr != nil {
			err = fmt.Errorf("%s=%q: not a Go duration (e.g. 90s, 10m, 1h)", name, v)
			return
		}
		if d < lo || d > hi {
			err = fmt.Errorf("%s=%s: must be between %s and %s", name, v, lo, hi)
			return
		}
		*dst = d
	}
	duration(EnvIncidentCooldown, &c.IncidentCooldown, 0, maxIncidentCooldown)
	duration(EnvConfirmWait, &c.ConfirmWait, 0, maxConfirmWait)
	duration(EnvCallTimeout, &c.CallTimeout, time.Second, maxCallTimeout)
	duration(EnvIncidentWait, &c.IncidentWait, 0, maxIncidentWait)
	duration(EnvStuckAfter, &c.StuckAfter, minStuckAfter, maxStuckAfter)
	duration(EnvIdempotencyWindow, &c.IdempotencyWindow, minIdempotencyWindow, maxIdempotencyWindow)
	duration(EnvSettleAfter, &c.SettleAfter, minSettleAfter, maxSettleAfter)
	duration(EnvLedgerRetention, &c.LedgerRetention, minLedgerRetention, maxLedgerRetention)
	duration(EnvIncidentMaxAge, &c.IncidentMaxAge, minIncidentMaxAge, maxIncidentMaxAge)
	if err != nil {
		return Config{}, err
	}
	if strings.ContainsFunc(c.ResultBus, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-/", r))
	}) {
		return Config{}, fmt.Errorf("%s=%q: not an event bus name (letters, digits and . _ - /)", EnvResultBus, c.ResultBus)
	}
	if c.LedgerTable == "" {
		return Config{}, fmt.Errorf("%s: required; it names the DynamoDB table of the rotation ledger, "+
			"where a claim is written before every RotateKeyOnDemand (the CDK stack creates the table and sets it)", EnvLedgerTable)
	}
	if len(c.LedgerTable) < 3 || strings.ContainsFunc(c.LedgerTable, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-.", r))
	}) {
		return Config{}, fmt.Errorf("%s=%q: not a DynamoDB table name (3-255 of letters, digits, _ - .)", EnvLedgerTable, c.LedgerTable)
	}
	// IAM role names: 1–64 of letters, digits and + = , . @ _ -
	// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html).
	if c.MemberRoleName != "" && strings.ContainsFunc(c.MemberRoleName, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("+=,.@_-", r))
	}) {
		return Config{}, fmt.Errorf("%s=%q: not an IAM role name (letters, digits and + = , . @ _ -)", EnvMemberRoleName, c.MemberRoleName)
	}
	if c.IntervalDays < c.MinIntervalDays {
		return Config{}, fmt.Errorf("%s=%d: below %s (%d); a shorter interval spends the lifetime on-demand budget in a few sweeps",
			EnvIntervalDays, c.IntervalDays, EnvMinIntervalDays, c.MinIntervalDays)
	}
	if v := getenv(EnvRotateRPS); v != "" {
		f, perr := strconv.ParseFloat(v, 64)
		if perr != nil {
			return Config{}, fmt.Errorf("%s=%q: not a number", EnvRotateRPS, v)
		}
		if !(f > 0 && f <= maxRotateRPS) { // also rejects NaN
			return Config{}, fmt.Errorf("%s=%s: must be greater than 0 and at most %d", EnvRotateRPS, v, maxRotateRPS)
		}
		c.RotateRPS = f
	}
	for _, b := range []struct {
		name string
		dst  *bool
	}{{EnvDryRun, &c.DryRun}, {EnvSkipIdle, &c.SkipIdle}} {
		name, dst := b.name, b.dst
		if v := getenv(name); v != "" {
			b, perr := strconv.ParseBool(v)
			if perr != nil {
				return Config{}, fmt.Errorf("%s=%q: not a boolean (true or false)", name, v)
			}
			*dst = b
		}
	}
	if c.Reserve >= c.OnDemandLimit {
		return Config{}, fmt.Errorf("%s=%d: must be less than %s (%d), or scheduled runs could never rotate",
			EnvReserve, c.Reserve, EnvOnDemandLimit, c.OnDemandLimit)
	}
	if strings.HasPrefix(c.MetricsNamespace, ":") || strings.ContainsFunc(c.MetricsNamespace, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		return Config{}, fmt.Errorf("%s=%q: must be printable ASCII not starting with ':'", EnvMetricsNamespace, c.MetricsNamespace)
	}
	return c, nil
}

// ParseIntervalTag parses the value of the per-key interval tag
// kms-rotator:interval-days: a whole number of days from floor
// (ROTATOR_MIN_INTERVAL_DAYS) to 3650. A value under the floor is refused,
// not raised to it: kms:TagResource must not become the right to rotate a
// key every day, and a typo must not be guessed at.
func ParseIntervalTag(v string, floor int) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("tag %s=%q: not a whole number of days", IntervalTagKey, v)
	}
	if n < floor {
		return 0, fmt.Errorf("tag %s=%q: below the floor of %d days (%s)", IntervalTagKey, v, floor, EnvMinIntervalDays)
	}
	if n > maxIntervalDays {
		return 0, fmt.Errorf("tag %s=%q: must be between %d and %d days", IntervalTagKey, v, floor, maxIntervalDays)
	}
	return n, nil
}

// Environment is the inverse of LoadConfig: the ROTATOR_* variables that
// make LoadConfig return c. The CDK stack sets exactly these on the
// function, so every setting has one name, one default and one bound, here.
// (StartJitter and ConcurrencyAuto have no variable: the jitter is fixed,
// and a set ROTATOR_CONCURRENCY is used exactly.)
func Environment(c Config) map[string]string {
	dur := func(d time.Duration) string { return d.String() }
	return map[string]string{
		EnvTagKey:                c.TagKey,
		EnvTagValue:              c.TagValue,
		EnvIntervalDays:          strconv.Itoa(c.IntervalDays),
		EnvOnDemandLimit:         strconv.Itoa(c.OnDemandLimit),
		EnvReserve:               strconv.Itoa(c.Reserve),
		EnvRotateRPS:             strconv.FormatFloat(c.RotateRPS, 'f', -1, 64),
		EnvConcurrency:           strconv.Itoa(c.Concurrency),
		EnvDryRun:                strconv.FormatBool(c.DryRun),
		EnvMetricsNamespace:      c.MetricsNamespace,
		EnvContinuationMax:       strconv.Itoa(c.ContinuationMax),
		EnvIncidentCooldown:      dur(c.IncidentCooldown),
		EnvConfirmWait:           dur(c.ConfirmWait),
		EnvCallTimeout:           dur(c.CallTimeout),
		EnvMinIntervalDays:       strconv.Itoa(c.MinIntervalDays),
		EnvAutoRotationGraceDays: strconv.Itoa(c.AutoRotationGraceDays),
		EnvIncidentWait:          dur(c.IncidentWait),
		EnvStuckAfter:            dur(c.StuckAfter),
		EnvSkipIdle:              strconv.FormatBool(c.SkipIdle),
		EnvMemberRoleName:        c.MemberRoleName,
		EnvLedgerTable:           c.LedgerTable,
		EnvIdempotencyWindow:     dur(c.IdempotencyWindow),
		EnvSettleAfter:           dur(c.SettleAfter),
		EnvLedgerRetention:       dur(c.LedgerRetention),
		EnvIncidentMaxAge:        dur(c.IncidentMaxAge),
		EnvResultBus:             c.ResultBus,
	}
}
