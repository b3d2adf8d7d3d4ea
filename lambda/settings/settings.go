// Package settings holds the function's settings in one place, for the
// function and the CDK app alike: the environment variables, one row each
// in a table (table.go) from which LoadConfig and Environment are derived,
// the per-key interval tag, and the names the function emits (metrics,
// dimensions, the result event). It depends on the standard library only,
// so infra/ reads it without building the engine.
package settings

import (
	"fmt"
	"slices"
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
	// NoticeDays lists keys that fall due, and imported material that
	// expires, within this many days as upcoming (ROTATOR_NOTICE_DAYS;
	// 0 = off): an expired import makes the key unusable, an outage.
	NoticeDays int
	// SecurityHub imports a Security Hub finding for each key that needs
	// action and archives it once the condition clears
	// (ROTATOR_SECURITY_HUB).
	SecurityHub bool
	// EvidenceBucket is the S3 bucket each run writes its evidence record
	// to (ROTATOR_EVIDENCE_BUCKET; empty = none): the stack creates it.
	EvidenceBucket string
	// OrgBucket is the organization sweep's S3 bucket
	// (ROTATOR_ORG_BUCKET): targets are written there, results read.
	OrgBucket string
	// OwnerTagKey is the tag whose value names a key's owner
	// (ROTATOR_OWNER_TAG_KEY): it travels in the entries and the result
	// event, so teams can route notices per owner.
	OwnerTagKey string
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

// Environment variable names (docs/design.md "Configuration"). Each one's
// default, bounds and context key are in its row of the table (table.go).
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
	EnvNoticeDays            = "ROTATOR_NOTICE_DAYS"
	EnvOwnerTagKey           = "ROTATOR_OWNER_TAG_KEY"
	EnvEvidenceBucket        = "ROTATOR_EVIDENCE_BUCKET"
	EnvOrgBucket             = "ROTATOR_ORG_BUCKET"
	EnvSecurityHub           = "ROTATOR_SECURITY_HUB"
)

// IntervalTagKey is the per-key tag overriding ROTATOR_INTERVAL_DAYS.
const IntervalTagKey = "kms-rotator:interval-days"

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

// DefaultConfig returns the documented defaults: each row's of the table,
// and the two fields without a variable.
func DefaultConfig() Config {
	c := Config{ConcurrencyAuto: true, StartJitter: time.Second}
	for _, s := range table {
		s.value.reset(&c)
	}
	return c
}

// LoadConfig reads the configuration through getenv (os.Getenv in production)
// and validates it. An unset or empty variable takes its default; an invalid
// one is a *ConfigError naming every variable refused, so a bad deployment
// fails its cold start instead of rotating with surprising settings, and a
// synth reports every bad setting at once.
func LoadConfig(getenv func(string) string) (Config, error) {
	c := DefaultConfig()
	var problems []Problem
	refused := map[string]bool{}
	refuse := func(name string, p *Problem) {
		p.Var = name
		problems = append(problems, *p)
		refused[name] = true
	}
	for _, s := range table {
		if v := getenv(s.Env); v != "" {
			if p := s.value.parse(v, &c); p != nil {
				refuse(s.Env, p)
			}
		}
	}
	c.ConcurrencyAuto = getenv(EnvConcurrency) == ""

	// The checks below read values the rows accepted: a refused variable
	// holds its default, which says nothing about what was meant.
	read := func(names ...string) bool {
		return !slices.ContainsFunc(names, func(n string) bool { return refused[n] })
	}
	// Event bus names: letters, digits and . - _ /
	// (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_CreateEventBus.html).
	if read(EnvResultBus) && !nameOf(c.ResultBus, "._-/") {
		refuse(EnvResultBus, quoted(c.ResultBus, "not an event bus name (letters, digits and . _ - /)"))
	}
	// S3 bucket names: 3–63 of lowercase letters, digits, . and -,
	// starting and ending with a letter or digit
	// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
	for _, b := range [][2]string{{EnvEvidenceBucket, c.EvidenceBucket}, {EnvOrgBucket, c.OrgBucket}} {
		if read(b[0]) && b[1] != "" && (len(b[1]) < 3 || !bucketName(b[1])) {
			refuse(b[0], quoted(b[1], "not an S3 bucket name (3-63 of lowercase letters, digits, . and -)"))
		}
	}
	switch {
	case !read(EnvLedgerTable):
	case c.LedgerTable == "":
		refuse(EnvLedgerTable, &Problem{Msg: "required; it names the DynamoDB table of the rotation ledger, " +
			"where a claim is written before every RotateKeyOnDemand (the CDK stack creates the table and sets it)"})
	case len(c.LedgerTable) < 3 || !nameOf(c.LedgerTable, "_-."):
		// DynamoDB table names: 3–255 of letters, digits and _ - .
		// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html).
		refuse(EnvLedgerTable, quoted(c.LedgerTable, "not a DynamoDB table name (3-255 of letters, digits, _ - .)"))
	}
	// IAM role names: letters, digits and + = , . @ _ -
	// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html).
	if read(EnvMemberRoleName) && !nameOf(c.MemberRoleName, "+=,.@_-") {
		refuse(EnvMemberRoleName, quoted(c.MemberRoleName, "not an IAM role name (letters, digits and + = , . @ _ -)"))
	}
	if read(EnvIntervalDays, EnvMinIntervalDays) && c.IntervalDays < c.MinIntervalDays {
		refuse(EnvIntervalDays, plain(strconv.Itoa(c.IntervalDays), fmt.Sprintf(
			"below %s (%d); a shorter interval spends the lifetime on-demand budget in a few sweeps", EnvMinIntervalDays, c.MinIntervalDays)))
	}
	if read(EnvReserve, EnvOnDemandLimit) && c.Reserve >= c.OnDemandLimit {
		refuse(EnvReserve, plain(strconv.Itoa(c.Reserve), fmt.Sprintf(
			"must be less than %s (%d), or scheduled runs could never rotate", EnvOnDemandLimit, c.OnDemandLimit)))
	}
	if read(EnvMetricsNamespace) && (strings.HasPrefix(c.MetricsNamespace, ":") ||
		strings.ContainsFunc(c.MetricsNamespace, func(r rune) bool { return r < 0x20 || r > 0x7e })) {
		refuse(EnvMetricsNamespace, quoted(c.MetricsNamespace, "must be printable ASCII not starting with ':'"))
	}
	if len(problems) > 0 {
		return Config{}, &ConfigError{Problems: problems}
	}
	return c, nil
}

// nameOf says whether s holds only ASCII letters, digits and the runes of
// extra (the empty name too: the rows say whether one is allowed).
func nameOf(s, extra string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(extra, r))
	})
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
// make LoadConfig return c, one per row of the table. The CDK stack sets
// exactly these on the function, so every setting has one name, one
// default and one bound, in the table. (StartJitter and ConcurrencyAuto
// have no variable: the jitter is fixed, and a set ROTATOR_CONCURRENCY is
// used exactly.)
func Environment(c Config) map[string]string {
	env := make(map[string]string, len(table))
	for _, s := range table {
		env[s.Env] = s.value.render(&c)
	}
	return env
}

// bucketName says whether b is made of lowercase letters, digits, . and -,
// and starts and ends with a letter or digit.
func bucketName(b string) bool {
	ok := func(r byte) bool { return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' }
	for i := 0; i < len(b); i++ {
		if !ok(b[i]) && b[i] != '.' && b[i] != '-' {
			return false
		}
	}
	return ok(b[0]) && ok(b[len(b)-1])
}
