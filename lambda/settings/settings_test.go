package settings

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testTable is the ledger table every test environment names: the
// variable is required, and these tests are about the others.
const testTable = "kms-rotator-ledger"

func env(m map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := m[k]; ok || k != EnvLedgerTable {
			return v
		}
		return testTable
	}
}

func TestLoadConfigWithoutLedgerTableFailsNamingIt(t *testing.T) {
	for _, v := range []string{"", "ab", "bad name", "t/able"} {
		_, err := LoadConfig(env(map[string]string{EnvLedgerTable: v}))
		if err == nil || !strings.Contains(err.Error(), EnvLedgerTable) {
			t.Errorf("LoadConfig with %s=%q: error = %v, want one naming the variable", EnvLedgerTable, v, err)
		}
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	got, err := LoadConfig(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	def := DefaultConfig()
	def.LedgerTable = testTable
	if got != def {
		t.Fatalf("LoadConfig(empty) = %+v, want the defaults %+v", got, def)
	}
	want := Config{TagKey: "kms-rotator", TagValue: "enabled", IntervalDays: 90, OnDemandLimit: 25, Reserve: 2,
		RotateRPS: 4, Concurrency: 16, ConcurrencyAuto: true, MetricsNamespace: "KMSRotator", ContinuationMax: 8, StartJitter: time.Second,
		IncidentCooldown: time.Hour, ConfirmWait: 5 * time.Second, CallTimeout: 10 * time.Second, MinIntervalDays: 30, AutoRotationGraceDays: 7,
		IncidentWait: 90 * time.Second, StuckAfter: 24 * time.Hour, LedgerTable: testTable, IdempotencyWindow: 24 * time.Hour,
		SettleAfter: 15 * time.Minute, LedgerRetention: 400 * 24 * time.Hour, IncidentMaxAge: 15 * time.Minute, ResultBus: "default", NoticeDays: 14, OwnerTagKey: "kms-rotator:owner"}
	if got != want {
		t.Fatalf("defaults = %+v, want docs/design.md's %+v", got, want)
	}
}

func TestLoadConfigAccepts(t *testing.T) {
	got, err := LoadConfig(env(map[string]string{
		EnvTagKey: "rotate", EnvTagValue: "yes", EnvIntervalDays: "30", EnvOnDemandLimit: "25",
		EnvReserve: "0", EnvRotateRPS: "2.5", EnvConcurrency: "64", EnvDryRun: "true", EnvMetricsNamespace: "Sec/KMS",
		EnvContinuationMax: "0", EnvIncidentCooldown: "0", EnvConfirmWait: "30s", EnvCallTimeout: "2s",
		EnvMinIntervalDays: "7", EnvAutoRotationGraceDays: "0", EnvIncidentWait: "0", EnvStuckAfter: "2h", EnvSkipIdle: "true",
		EnvLedgerTable: "ledger.prod-1", EnvIdempotencyWindow: "48h", EnvSettleAfter: "30m", EnvLedgerRetention: "9000h",
		EnvIncidentMaxAge: "5m", EnvResultBus: "kms-rotator-results", EnvNoticeDays: "30", EnvOwnerTagKey: "team",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{TagKey: "rotate", TagValue: "yes", IntervalDays: 30, OnDemandLimit: 25, Reserve: 0,
		RotateRPS: 2.5, Concurrency: 64, DryRun: true, MetricsNamespace: "Sec/KMS", ContinuationMax: 0, StartJitter: time.Second,
		IncidentCooldown: 0, ConfirmWait: 30 * time.Second, CallTimeout: 2 * time.Second, MinIntervalDays: 7, AutoRotationGraceDays: 0,
		IncidentWait: 0, StuckAfter: 2 * time.Hour, SkipIdle: true, LedgerTable: "ledger.prod-1", IdempotencyWindow: 48 * time.Hour,
		SettleAfter: 30 * time.Minute, LedgerRetention: 9000 * time.Hour, IncidentMaxAge: 5 * time.Minute, ResultBus: "kms-rotator-results", NoticeDays: 30, OwnerTagKey: "team"}
	if got != want {
		t.Fatalf("LoadConfig = %+v, want %+v", got, want)
	}
}

func TestLoadConfigRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // the error must name the variable and say why
	}{
		{"interval not a number", map[string]string{EnvIntervalDays: "ninety"}, "ROTATOR_INTERVAL_DAYS=\"ninety\": not an integer"},
		{"interval zero", map[string]string{EnvIntervalDays: "0"}, "ROTATOR_INTERVAL_DAYS=0: must be between 1 and 3650"},
		{"interval below the floor", map[string]string{EnvIntervalDays: "7"}, "ROTATOR_INTERVAL_DAYS=7: below ROTATOR_MIN_INTERVAL_DAYS (30)"},
		{"interval below a raised floor", map[string]string{EnvIntervalDays: "90", EnvMinIntervalDays: "180"}, "ROTATOR_INTERVAL_DAYS=90: below ROTATOR_MIN_INTERVAL_DAYS (180)"},
		{"floor zero", map[string]string{EnvMinIntervalDays: "0"}, "ROTATOR_MIN_INTERVAL_DAYS=0: must be between 1 and 3650"},
		{"cooldown not a duration", map[string]string{EnvIncidentCooldown: "60"}, `ROTATOR_INCIDENT_COOLDOWN="60": not a Go duration`},
		{"cooldown negative", map[string]string{EnvIncidentCooldown: "-1h"}, "ROTATOR_INCIDENT_COOLDOWN=-1h: must be between 0s and 168h0m0s"},
		{"confirm wait beyond a run", map[string]string{EnvConfirmWait: "16m"}, "ROTATOR_CONFIRM_WAIT=16m: must be between 0s and 15m0s"},
		{"call timeout zero", map[string]string{EnvCallTimeout: "0s"}, "ROTATOR_CALL_TIMEOUT=0s: must be between 1s and 15m0s"},
		{"incident wait beyond a run", map[string]string{EnvIncidentWait: "20m"}, "ROTATOR_INCIDENT_WAIT=20m: must be between 0s and 15m0s"},
		{"stuck after too short", map[string]string{EnvStuckAfter: "30s"}, "ROTATOR_STUCK_AFTER=30s: must be between 1m0s and 720h0m0s"},
		{"member role with a slash", map[string]string{EnvMemberRoleName: "path/role"}, `ROTATOR_MEMBER_ROLE_NAME="path/role": not an IAM role name`},
		{"skip idle typo", map[string]string{EnvSkipIdle: "yes"}, `ROTATOR_SKIP_IDLE="yes": not a boolean`},
		{"grace negative", map[string]string{EnvAutoRotationGraceDays: "-1"}, "ROTATOR_AUTO_ROTATION_GRACE_DAYS=-1: must be between 0 and 365"},
		{"interval too long", map[string]string{EnvIntervalDays: "3651"}, "ROTATOR_INTERVAL_DAYS=3651: must be between 1 and 3650"},
		{"limit zero", map[string]string{EnvOnDemandLimit: "0"}, "ROTATOR_ON_DEMAND_LIMIT=0"},
		{"negative reserve", map[string]string{EnvReserve: "-1"}, "ROTATOR_RESERVE=-1"},
		{"reserve equal to limit", map[string]string{EnvReserve: "25"}, "ROTATOR_RESERVE=25: must be less than ROTATOR_ON_DEMAND_LIMIT (25)"},
		{"reserve above a lowered limit", map[string]string{EnvOnDemandLimit: "2", EnvReserve: "3"}, "ROTATOR_RESERVE=3: must be less than ROTATOR_ON_DEMAND_LIMIT (2)"},
		{"rps zero", map[string]string{EnvRotateRPS: "0"}, "ROTATOR_ROTATE_RPS=0: must be greater than 0"},
		{"rps NaN", map[string]string{EnvRotateRPS: "NaN"}, "ROTATOR_ROTATE_RPS=NaN"},
		{"rps text", map[string]string{EnvRotateRPS: "fast"}, "ROTATOR_ROTATE_RPS=\"fast\": not a number"},
		{"concurrency zero", map[string]string{EnvConcurrency: "0"}, "ROTATOR_CONCURRENCY=0: must be between 1 and 256"},
		{"concurrency huge", map[string]string{EnvConcurrency: "100000"}, "ROTATOR_CONCURRENCY=100000"},
		{"dry run typo", map[string]string{EnvDryRun: "yes"}, "ROTATOR_DRY_RUN=\"yes\": not a boolean"},
		{"tag key with spaces", map[string]string{EnvTagKey: " kms-rotator"}, "ROTATOR_TAG_KEY"},
		{"tag key too long", map[string]string{EnvTagKey: strings.Repeat("k", 129)}, "ROTATOR_TAG_KEY: 129 characters, at most 128"},
		{"continuation bound negative", map[string]string{EnvContinuationMax: "-1"}, "ROTATOR_CONTINUATION_MAX=-1: must be between 0 and 100"},
		{"continuation bound beyond the request limit", map[string]string{EnvContinuationMax: "101"}, "ROTATOR_CONTINUATION_MAX=101: must be between 0 and 100"},
		{"namespace with control character", map[string]string{EnvMetricsNamespace: "a\nb"}, "ROTATOR_METRICS_NAMESPACE"},
	} {
		t.Run(tc.name+" → error naming the variable", func(t *testing.T) {
			_, err := LoadConfig(env(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadConfig error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseIntervalTag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{{"30", 30, true}, {"3650", 3650, true}, {" 90 ", 90, true}, {"29", 0, false}, {"1", 0, false}, {"0", 0, false}, {"3651", 0, false}, {"30d", 0, false}, {"", 0, false}, {"-5", 0, false}} {
		name := "accepts " + tc.in
		if !tc.ok {
			name = "rejects " + tc.in
		}
		t.Run(name, func(t *testing.T) {
			got, err := ParseIntervalTag(tc.in, 30)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParseIntervalTag(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestParseIntervalTagBelowTheFloorNamesTagAndFloor(t *testing.T) {
	_, err := ParseIntervalTag("1", 30)
	want := `tag kms-rotator:interval-days="1": below the floor of 30 days (ROTATOR_MIN_INTERVAL_DAYS)`
	if err == nil || err.Error() != want {
		t.Fatalf("ParseIntervalTag(1, 30) error = %v, want %q", err, want)
	}
}

func TestEnvironmentRoundTrips(t *testing.T) {
	c := DefaultConfig()
	c.TagKey, c.IntervalDays, c.RotateRPS, c.IncidentWait, c.SkipIdle, c.StuckAfter = "rotate", 45, 2.5, 0, true, 90*time.Minute
	c.MemberRoleName = "kms-rotator-member"
	c.LedgerTable, c.SettleAfter = "ledger", 20*time.Minute
	env := Environment(c)
	got, err := LoadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	c.ConcurrencyAuto = false // a set ROTATOR_CONCURRENCY is used exactly
	if got != c {
		t.Fatalf("LoadConfig(Environment(c)) = %+v, want %+v", got, c)
	}
	// One variable per field (StartJitter and ConcurrencyAuto have none):
	// a new setting cannot be forgotten by the stack.
	if n := reflect.TypeOf(Config{}).NumField() - 2; len(env) != n {
		t.Errorf("Environment sets %d variables for %d settings", len(env), n)
	}
	// Every variable the loader reads is set, so nothing falls back to a
	// default the stack did not choose.
	for _, name := range []string{EnvTagKey, EnvTagValue, EnvIntervalDays, EnvOnDemandLimit, EnvReserve, EnvRotateRPS,
		EnvConcurrency, EnvDryRun, EnvMetricsNamespace, EnvContinuationMax, EnvIncidentCooldown, EnvConfirmWait,
		EnvCallTimeout, EnvMinIntervalDays, EnvAutoRotationGraceDays, EnvIncidentWait, EnvStuckAfter, EnvSkipIdle} {
		if env[name] == "" {
			t.Errorf("%s not set", name)
		}
	}
}

// TestEveryFieldHasOneRow: every Config field but the two without a
// variable is filled by exactly one row of the table, and no two rows share
// a variable or a context key.
func TestEveryFieldHasOneRow(t *testing.T) {
	var c Config
	rows := map[string][]string{} // field → the variables of its rows
	envs, keys := map[string]bool{}, map[string]bool{}
	fields := reflect.ValueOf(&c).Elem()
	for _, s := range Table() {
		if envs[s.Env] || (s.Context != "" && keys[s.Context]) {
			t.Errorf("%s (%s): a variable or context key listed twice", s.Env, s.Context)
		}
		envs[s.Env], keys[s.Context] = true, true
		ptr := reflect.ValueOf(s.value.field(&c)).Pointer()
		found := false
		for i := range fields.NumField() {
			if fields.Field(i).Addr().Pointer() == ptr && fields.Field(i).Type() == reflect.TypeOf(s.value.field(&c)).Elem() {
				name := fields.Type().Field(i).Name
				rows[name], found = append(rows[name], s.Env), true
			}
		}
		if !found {
			t.Errorf("%s fills no field of Config", s.Env)
		}
		if m := s.Meaning; !strings.HasSuffix(m, ".") || strings.Contains(strings.TrimSuffix(m, "."), ". ") {
			t.Errorf("%s: meaning %q, want one sentence", s.Env, m)
		}
	}
	for i := range fields.NumField() {
		name := fields.Type().Field(i).Name
		want := 1
		if name == "StartJitter" || name == "ConcurrencyAuto" {
			want = 0
		}
		if len(rows[name]) != want {
			t.Errorf("Config.%s is filled by rows %v, want %d", name, rows[name], want)
		}
	}
}

// TestLoadConfigReportsEveryBadVariable: one cold start (or synth) names
// every variable it refuses, each as a Problem, in the table's order and
// then the checks that read two settings; those skip a refused variable.
func TestLoadConfigReportsEveryBadVariable(t *testing.T) {
	_, err := LoadConfig(env(map[string]string{
		EnvIntervalDays: "ninety", EnvMinIntervalDays: "120", EnvConcurrency: "0", EnvRotateRPS: "fast",
		EnvTagKey: strings.Repeat("k", 129), EnvReserve: "30", EnvDryRun: "yes", EnvLedgerTable: "",
	}))
	var cerr *ConfigError
	if !errors.As(err, &cerr) {
		t.Fatalf("LoadConfig error = %v, want a *ConfigError", err)
	}
	want := []Problem{
		{Var: EnvTagKey, Value: strings.Repeat("k", 129), Msg: "129 characters, at most 128 allowed"},
		{Var: EnvIntervalDays, Value: "ninety", Msg: "not an integer"},
		{Var: EnvDryRun, Value: "yes", Msg: "not a boolean (true or false)"},
		{Var: EnvConcurrency, Value: "0", Msg: "must be between 1 and 256"},
		{Var: EnvRotateRPS, Value: "fast", Msg: "not a number"},
		{Var: EnvLedgerTable, Msg: "required; it names the DynamoDB table of the rotation ledger, " +
			"where a claim is written before every RotateKeyOnDemand (the CDK stack creates the table and sets it)"},
		{Var: EnvReserve, Value: "30", Msg: "must be less than ROTATOR_ON_DEMAND_LIMIT (25), or scheduled runs could never rotate"},
	}
	var got []Problem
	for _, p := range cerr.Problems {
		p.shown = ""
		got = append(got, p)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems\n %+v\nwant\n %+v", got, want)
	}
	// The interval is not compared with the raised floor: "ninety" says
	// nothing about the interval meant.
	msg := `ROTATOR_TAG_KEY: 129 characters, at most 128 allowed; ROTATOR_INTERVAL_DAYS="ninety": not an integer; ` +
		`ROTATOR_DRY_RUN="yes": not a boolean (true or false); ROTATOR_CONCURRENCY=0: must be between 1 and 256; ` +
		`ROTATOR_ROTATE_RPS="fast": not a number; ROTATOR_LEDGER_TABLE: required; `
	if !strings.HasPrefix(err.Error(), msg) || !strings.HasSuffix(err.Error(), "; ROTATOR_RESERVE=30: must be less than ROTATOR_ON_DEMAND_LIMIT (25), or scheduled runs could never rotate") {
		t.Errorf("error\n %s\nwant it to start\n %s\nand end with the reserve", err, msg)
	}
	var p Problem
	if !errors.As(err, &p) || p.Var != EnvTagKey {
		t.Errorf("errors.As(err, *Problem) = %+v, want the first problem", p)
	}
}

// TestOneProblemIsItsOwnMessage: with one bad variable the error is that
// variable's message, no more (the messages TestLoadConfigRejects pins).
func TestOneProblemIsItsOwnMessage(t *testing.T) {
	_, err := LoadConfig(env(map[string]string{EnvIntervalDays: "ninety"}))
	if err == nil || err.Error() != `ROTATOR_INTERVAL_DAYS="ninety": not an integer` {
		t.Errorf("error = %v", err)
	}
}
