package settings

import (
	"slices"
	"time"
)

// A Setting is one ROTATOR_* variable of the function: its name, the CDK
// context key the stack sets it from, what it means, and (unexported) the
// Config field it fills with its default and bounds. LoadConfig,
// Environment and DefaultConfig are derived from the table of them; infra
// reads the function's context keys from it, and tests/doccheck checks the
// docs' tables against it.
type Setting struct {
	// Env is the environment variable.
	Env string
	// Context is the CDK context key the stack sets it from; "" when the
	// stack sets the variable itself (the ledger table, the results bus).
	Context string
	// Meaning says what the setting does, in one sentence.
	Meaning string
	// value parses the variable into its Config field and spells it back.
	value value
}

// Table returns the function's settings, one row per variable, in the
// order LoadConfig reports their problems.
func Table() []Setting { return slices.Clone(table) }

// maxIntervalDays bounds the interval settings and the per-key interval
// tag alike (1–3650 days).
const maxIntervalDays = 3650

// day is a day of 24 hours, for the durations measured in days.
const day = 24 * time.Hour

// table holds every ROTATOR_* variable: adding a setting is one row here
// plus its Config field and its behaviour (docs/development.md "Adding a
// setting"). Checks that read two settings, or a name's character set,
// follow the rows in LoadConfig.
var table = []Setting{
	// Tag keys may have 128 characters, values 256
	// (https://docs.aws.amazon.com/kms/latest/developerguide/tagging-keys.html).
	{Env: EnvTagKey, Context: "tagKey",
		value:   text(func(c *Config) *string { return &c.TagKey }, "kms-rotator", 128),
		Meaning: "The key of the opt-in tag: only keys that carry the tag are rotated."},
	{Env: EnvTagValue, Context: "tagValue",
		value:   text(func(c *Config) *string { return &c.TagValue }, "enabled", 256),
		Meaning: "The value of the opt-in tag."},
	{Env: EnvIntervalDays, Context: "intervalDays",
		value:   ints(func(c *Config) *int { return &c.IntervalDays }, 90, 1, maxIntervalDays),
		Meaning: "Sweeps rotate a key whose newest rotation is at least this many days old, unless the key's tag " + IntervalTagKey + " says otherwise."},
	{Env: EnvMinIntervalDays, Context: "minIntervalDays",
		value:   ints(func(c *Config) *int { return &c.MinIntervalDays }, 30, 1, maxIntervalDays),
		Meaning: "The shortest interval in days that " + EnvIntervalDays + " or a key's tag may ask for."},
	// The on-demand limit is 25 in the current KMS quota table
	// (https://docs.aws.amazon.com/kms/latest/developerguide/resource-limits.html);
	// 100 leaves room for a raised quota without accepting nonsense.
	{Env: EnvOnDemandLimit, Context: "onDemandLimit",
		value:   ints(func(c *Config) *int { return &c.OnDemandLimit }, 25, 1, 100),
		Meaning: "Lifetime on-demand rotations per key, KMS's quota; sweeps stop at this minus the reserve."},
	{Env: EnvReserve, Context: "reserve",
		value:   ints(func(c *Config) *int { return &c.Reserve }, 2, 0, 100),
		Meaning: "On-demand rotations that sweeps never use, kept for incidents."},
	// Automatic rotation periods are 90–2560 days
	// (https://docs.aws.amazon.com/kms/latest/developerguide/rotate-keys.html).
	{Env: EnvAutoRotationGraceDays, Context: "autoRotationGraceDays",
		value:   ints(func(c *Config) *int { return &c.AutoRotationGraceDays }, 7, 0, 365),
		Meaning: "Sweeps skip a due key whose automatic rotation comes within this many days (0 = off)."},
	{Env: EnvSkipIdle, Context: "skipIdle",
		value:   flag(func(c *Config) *bool { return &c.SkipIdle }, false),
		Meaning: "Sweeps skip due keys that nobody has used since their current material."},
	{Env: EnvNoticeDays, Context: "noticeDays",
		value:   ints(func(c *Config) *int { return &c.NoticeDays }, 14, 0, 365),
		Meaning: "Keys that fall due, and imported material that expires, within this many days are listed as upcoming (0 = off)."},
	{Env: EnvOwnerTagKey, Context: "ownerTagKey",
		value:   text(func(c *Config) *string { return &c.OwnerTagKey }, "kms-rotator:owner", 128),
		Meaning: "The tag whose value names a key's owner, carried in its entries and the result event."},
	{Env: EnvSecurityHub, Context: "securityHub",
		value:   flag(func(c *Config) *bool { return &c.SecurityHub }, false),
		Meaning: "Keys that need action become Security Hub findings, archived once the condition clears."},
	{Env: EnvDryRun, Context: "dryRun",
		value:   flag(func(c *Config) *bool { return &c.DryRun }, false),
		Meaning: "Every run only plans."},
	{Env: EnvConcurrency, Context: "concurrency",
		value:   ints(func(c *Config) *int { return &c.Concurrency }, 16, 1, 256),
		Meaning: "Key pipelines in flight."},
	{Env: EnvRotateRPS, Context: "rotateRps",
		value:   rate(func(c *Config) *float64 { return &c.RotateRPS }, 4, 1000),
		Meaning: "RotateKeyOnDemand calls per second; every other KMS call is paced at the same share of its own quota."},
	// A Lambda run lasts at most 15 minutes: no wait or call may be longer.
	{Env: EnvCallTimeout, Context: "callTimeout",
		value:   durations(func(c *Config) *time.Duration { return &c.CallTimeout }, 10*time.Second, time.Second, 15*time.Minute),
		Meaning: "The per-attempt timeout of every AWS call."},
	{Env: EnvConfirmWait, Context: "confirmWait",
		value:   durations(func(c *Config) *time.Duration { return &c.ConfirmWait }, 5*time.Second, 0, 15*time.Minute),
		Meaning: "How long to look for a rotation after an ambiguous RotateKeyOnDemand failure before reporting it unconfirmed."},
	// 100 is request.MaxChain: a longer chain would be refused.
	{Env: EnvContinuationMax, Context: "continuationMax",
		value:   ints(func(c *Config) *int { return &c.ContinuationMax }, 8, 0, 100),
		Meaning: "The longest chain of self-invocations that finish a sweep too big for one run (0 = off)."},
	{Env: EnvIncidentCooldown, Context: "incidentCooldown",
		value:   durations(func(c *Config) *time.Duration { return &c.IncidentCooldown }, time.Hour, 0, 7*day),
		Meaning: "An incident skips a key rotated on demand more recently than this, unless it says force (0 = off)."},
	{Env: EnvIncidentWait, Context: "incidentWait",
		value:   durations(func(c *Config) *time.Duration { return &c.IncidentWait }, 90*time.Second, 0, 15*time.Minute),
		Meaning: "How long an incident waits for its rotated keys' new material to become current (0 = do not wait)."},
	// An event younger than a minute is never refused as late; Lambda's
	// asynchronous maximum event age is 6 h
	// (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-configuring.html).
	{Env: EnvIncidentMaxAge, Context: "incidentMaxAge",
		value:   durations(func(c *Config) *time.Duration { return &c.IncidentMaxAge }, 15*time.Minute, time.Minute, day),
		Meaning: "An incident that EventBridge delivers older than this is refused before any call."},
	// The idempotency window covers EventBridge's longest retry (24 h,
	// https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-retry-policy.html)
	// at least, and a week at most.
	{Env: EnvIdempotencyWindow, Context: "idempotencyWindow",
		value:   durations(func(c *Config) *time.Duration { return &c.IdempotencyWindow }, day, time.Hour, 7*day),
		Meaning: "An incident request repeated within this long of its first run answers that run's report."},
	{Env: EnvStuckAfter, Context: "stuckAfter",
		value:   durations(func(c *Config) *time.Duration { return &c.StuckAfter }, day, time.Minute, 30*day),
		Meaning: "An on-demand rotation in progress for longer than this is flagged stuck."},
	{Env: EnvSettleAfter, Context: "settleAfter",
		value:   durations(func(c *Config) *time.Duration { return &c.SettleAfter }, 15*time.Minute, time.Minute, day),
		Meaning: "An unconfirmed claim older than this is settled from the key's rotation history."},
	// A claim is kept at least 90 days and at most ten years.
	{Env: EnvLedgerRetention, Context: "ledgerRetention",
		value:   durations(func(c *Config) *time.Duration { return &c.LedgerRetention }, 400*day, 90*day, 3650*day),
		Meaning: "How long the ledger keeps a claim, the evidence of who rotated which key and why."},
	// DynamoDB table names: 3–255 characters
	// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html).
	{Env: EnvLedgerTable,
		value:   text(func(c *Config) *string { return &c.LedgerTable }, "", 255),
		Meaning: "The DynamoDB table of the rotation ledger, where a claim is written before every rotation; required."},
	{Env: EnvMetricsNamespace, Context: "metricsNamespace",
		value:   text(func(c *Config) *string { return &c.MetricsNamespace }, "KMSRotator", 255),
		Meaning: "The CloudWatch namespace of the metrics."},
	// Event bus names: 1–256 characters
	// (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_CreateEventBus.html).
	// S3 bucket names: 3–63 characters (checked after the rows).
	{Env: EnvEvidenceBucket,
		value:   text(func(c *Config) *string { return &c.EvidenceBucket }, "", 63),
		Meaning: "The S3 bucket each run writes its evidence record to (empty = none)."},
	{Env: EnvOrgBucket,
		value:   text(func(c *Config) *string { return &c.OrgBucket }, "", 63),
		Meaning: "The S3 bucket of the organization sweep: a targets run writes the targets there for the Distributed Map, and org-summary reads the results; only a function with it set answers those requests (empty = none)."},
	{Env: EnvResultBus,
		value:   text(func(c *Config) *string { return &c.ResultBus }, "default", 256),
		Meaning: "The event bus the result events go to."},
	// IAM role names: 1–64 characters
	// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html).
	{Env: EnvMemberRoleName, Context: "memberRoleName",
		value:   text(func(c *Config) *string { return &c.MemberRoleName }, "", 64),
		Meaning: "The IAM role the function assumes in member accounts; set, it turns on organization mode."},
}
