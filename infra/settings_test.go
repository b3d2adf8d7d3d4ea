package main

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

func cdkJSONContext(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile("../cdk.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		App     string         `json:"app"`
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.App != "go run ./infra" {
		t.Errorf("app = %q, want go run ./infra", cfg.App)
	}
	return cfg.Context
}

func TestCDKJSONHoldsEveryDefault(t *testing.T) {
	ctx := cdkJSONContext(t)
	t.Run("every context key the app reads is in cdk.json, and no other besides the feature flags", func(t *testing.T) {
		var got []string
		for k := range ctx {
			if !strings.HasPrefix(k, "@aws-cdk") { // a CDK feature flag
				got = append(got, k)
			}
		}
		want := slices.Clone(ContextKeys)
		sort.Strings(got)
		sort.Strings(want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("cdk.json context keys %v, want %v", got, want)
		}
	})
	t.Run("cdk.json's values are the defaults", func(t *testing.T) {
		s, err := SettingsFromAllContext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(s, DefaultSettings()) {
			t.Errorf("\n got %+v\nwant %+v", s, DefaultSettings())
		}
	})
}

// Context keys of the function's settings these tests name (the stack's
// own checks name the others, settings.go), from the function's table.
var (
	ctxIntervalDays          = functionKey(settings.EnvIntervalDays)
	ctxOnDemandLimit         = functionKey(settings.EnvOnDemandLimit)
	ctxReserve               = functionKey(settings.EnvReserve)
	ctxRotateRPS             = functionKey(settings.EnvRotateRPS)
	ctxConcurrency           = functionKey(settings.EnvConcurrency)
	ctxDryRun                = functionKey(settings.EnvDryRun)
	ctxIncidentCooldown      = functionKey(settings.EnvIncidentCooldown)
	ctxConfirmWait           = functionKey(settings.EnvConfirmWait)
	ctxCallTimeout           = functionKey(settings.EnvCallTimeout)
	ctxMinIntervalDays       = functionKey(settings.EnvMinIntervalDays)
	ctxAutoRotationGraceDays = functionKey(settings.EnvAutoRotationGraceDays)
	ctxIncidentWait          = functionKey(settings.EnvIncidentWait)
	ctxStuckAfter            = functionKey(settings.EnvStuckAfter)
	ctxSkipIdle              = functionKey(settings.EnvSkipIdle)
	ctxIdempotencyWindow     = functionKey(settings.EnvIdempotencyWindow)
	ctxSettleAfter           = functionKey(settings.EnvSettleAfter)
	ctxLedgerRetention       = functionKey(settings.EnvLedgerRetention)
)

// nonDefault is a valid value other than the default for each function
// setting's context key, as `-c key=value` gives it.
var nonDefault = map[string]string{
	ctxTagKey: "security:rotate", ctxTagValue: "yes", ctxIntervalDays: "60", ctxOnDemandLimit: "20", ctxReserve: "5",
	ctxRotateRPS: "2.5", ctxConcurrency: "8", ctxDryRun: "true", ctxMetricsNamespace: "Sec/KMS", ctxContinuationMax: "3",
	ctxIncidentCooldown: "90m", ctxConfirmWait: "2s", ctxCallTimeout: "30s", ctxMinIntervalDays: "45",
	ctxAutoRotationGraceDays: "0", ctxIncidentWait: "0", ctxStuckAfter: "6h", ctxSkipIdle: "true",
	ctxIdempotencyWindow: "48h", ctxSettleAfter: "30m", ctxLedgerRetention: "8760h", ctxIncidentMaxAge: "5m",
	functionKey(settings.EnvNoticeDays): "30", functionKey(settings.EnvOwnerTagKey): "team", functionKey(settings.EnvSecurityHub): "true",
}

func TestFunctionKeys(t *testing.T) {
	defaults := settings.Environment(settings.DefaultConfig())
	keys, envs := map[string]bool{}, map[string]bool{}
	for _, fk := range functionSettings() {
		if keys[fk.Context] || envs[fk.Env] {
			t.Errorf("%s → %s: a key or variable listed twice", fk.Context, fk.Env)
		}
		keys[fk.Context], envs[fk.Env] = true, true
		if _, ok := defaults[fk.Env]; !ok {
			t.Errorf("%s sets %s, which is not one of the function's variables", fk.Context, fk.Env)
		}
	}
}

// TestEachFunctionKeySetsItsVariable sets one context key at a time: the
// function's configuration is what the function loads with that one
// variable changed, and exactly one of its fields differs from the defaults.
func TestEachFunctionKeySetsItsVariable(t *testing.T) {
	defaults := DefaultSettings().Function
	for _, fk := range functionSettings() {
		t.Run(fk.Context+" sets "+fk.Env, func(t *testing.T) {
			v, ok := nonDefault[fk.Context]
			if !ok {
				t.Fatalf("nonDefault has no value for %s", fk.Context)
			}
			s, err := SettingsFromContext(func(k string) any {
				if k == fk.Context {
					return v
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			env := settings.Environment(functionDefaults())
			env[fk.Env] = v
			want, err := settings.LoadConfig(func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if s.Function != want {
				t.Errorf("\n got %+v\nwant %+v", s.Function, want)
			}
			got, def := reflect.ValueOf(s.Function), reflect.ValueOf(defaults)
			var changed []string
			for i := range got.NumField() {
				if !reflect.DeepEqual(got.Field(i).Interface(), def.Field(i).Interface()) {
					changed = append(changed, got.Type().Field(i).Name)
				}
			}
			if len(changed) != 1 {
				t.Errorf("fields changed: %v, want exactly one", changed)
			}
		})
	}
}

// TestEveryFunctionSettingReachesTheFunction: every key at once, as -c
// strings and as cdk.json's JSON values, gives the configuration the
// function then loads from the stack's environment.
func TestEveryFunctionSettingReachesTheFunction(t *testing.T) {
	want := DefaultSettings().Function
	want.TagKey, want.TagValue, want.IntervalDays, want.OnDemandLimit = "security:rotate", "yes", 60, 20
	want.Reserve, want.RotateRPS, want.Concurrency, want.DryRun, want.MetricsNamespace = 5, 2.5, 8, true, "Sec/KMS"
	want.ContinuationMax = 3
	want.IncidentCooldown, want.ConfirmWait, want.CallTimeout = 90*time.Minute, 2*time.Second, 30*time.Second
	want.MinIntervalDays, want.AutoRotationGraceDays = 45, 0
	want.IncidentWait, want.StuckAfter, want.SkipIdle = 0, 6*time.Hour, true
	want.IdempotencyWindow, want.SettleAfter, want.LedgerRetention, want.IncidentMaxAge = 48*time.Hour, 30*time.Minute, 365*24*time.Hour, 5*time.Minute
	want.NoticeDays, want.OwnerTagKey, want.SecurityHub = 30, "team", true
	// The stack always sets ROTATOR_CONCURRENCY, so the function uses it
	// exactly rather than growing it with the pace.
	if want.ConcurrencyAuto {
		t.Errorf("ConcurrencyAuto is true, want false: the stack sets every variable")
	}
	typed := map[string]any{}
	for k, v := range nonDefault {
		switch {
		case v == "true":
			typed[k] = true
		default:
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				typed[k] = f
			} else {
				typed[k] = v
			}
		}
	}
	asStrings := map[string]any{}
	for k, v := range nonDefault {
		asStrings[k] = v
	}
	for name, ctx := range map[string]map[string]any{"-c strings": asStrings, "cdk.json values": typed} {
		t.Run(name, func(t *testing.T) {
			s, err := SettingsFromContext(func(k string) any { return ctx[k] })
			if err != nil {
				t.Fatal(err)
			}
			if s.Function != want {
				t.Errorf("\n got %+v\nwant %+v", s.Function, want)
			}
			env := settings.Environment(s.Function)
			loaded, err := settings.LoadConfig(func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if loaded != s.Function {
				t.Errorf("the function loads\n %+v\nthe stack holds\n %+v", loaded, s.Function)
			}
		})
	}
}

func TestSettingsFromContext(t *testing.T) {
	tests := []struct {
		name    string
		ctx     map[string]any
		wantErr string
		check   func(t *testing.T, s Settings)
	}{
		{name: "-c strings are parsed like cdk.json values",
			ctx: map[string]any{ctxMemorySize: "512", ctxDryRun: "true", ctxRotateRPS: "2.5", ctxTimeoutMinutes: "15"},
			check: func(t *testing.T, s Settings) {
				t.Helper()
				if s.MemorySize != 512 || !s.Function.DryRun || s.Function.RotateRPS != 2.5 || s.Timeout != 15*time.Minute {
					t.Errorf("%+v", s)
				}
			}},
		{name: "regions are split, trimmed and deduplicated",
			ctx: map[string]any{ctxRegions: "us-east-1, eu-west-1,us-east-1"},
			check: func(t *testing.T, s Settings) {
				t.Helper()
				if !reflect.DeepEqual(s.Regions, []string{"us-east-1", "eu-west-1"}) {
					t.Errorf("regions %v", s.Regions)
				}
			}},
		{name: "a rate schedule's gap is its rate",
			ctx: map[string]any{ctxSchedule: "rate(6 hours)"},
			check: func(t *testing.T, s Settings) {
				t.Helper()
				if s.Silence.Gap != 6*time.Hour || s.Silence.Window() != 6*time.Hour+time.Hour+10*time.Minute {
					t.Errorf("silence %+v, window %v", s.Silence, s.Silence.Window())
				}
			}},
		{name: "a weekly cron in a time zone with daylight saving time: the autumn week has 169 hours; the slack follows the timeout",
			ctx: map[string]any{ctxSchedule: "cron(0 3 ? * MON *)", ctxScheduleTimezone: "Europe/Berlin", ctxTimeoutMinutes: 15},
			check: func(t *testing.T, s Settings) {
				t.Helper()
				if s.Silence.Gap != 7*24*time.Hour+time.Hour || s.Silence.Slack != time.Hour+15*time.Minute || s.ScheduleTimezone != "Europe/Berlin" {
					t.Errorf("silence %+v in %s", s.Silence, s.ScheduleTimezone)
				}
			}},
		{name: "function durations are Go durations",
			ctx: map[string]any{ctxIncidentCooldown: "90m", ctxConfirmWait: "0", ctxCallTimeout: "30s", ctxIncidentWait: "2m", ctxStuckAfter: "48h"},
			check: func(t *testing.T, s Settings) {
				t.Helper()
				env := settings.Environment(s.Function)
				if env[settings.EnvIncidentCooldown] != "1h30m0s" || env[settings.EnvConfirmWait] != "0s" || env[settings.EnvCallTimeout] != "30s" ||
					env[settings.EnvIncidentWait] != "2m0s" || env[settings.EnvStuckAfter] != "48h0m0s" {
					t.Errorf("environment %v", env)
				}
			}},
		{name: "an empty function setting takes the function's default",
			ctx: map[string]any{ctxIncidentWait: "", ctxTagKey: " ", ctxSkipIdle: ""},
			check: func(t *testing.T, s Settings) {
				t.Helper()
				if s.Function != DefaultSettings().Function {
					t.Errorf("%+v", s.Function)
				}
			}},
		{name: "incident principals are comma-separated",
			ctx: map[string]any{ctxIncidentPrincipals: "arn:aws:iam::111122223333:role/soar, arn:aws:iam::111122223333:role/ir/oncall"},
			check: func(t *testing.T, s Settings) {
				t.Helper()
				want := []string{"arn:aws:iam::111122223333:role/soar", "arn:aws:iam::111122223333:role/ir/oncall"}
				if !reflect.DeepEqual(s.IncidentPrincipals, want) {
					t.Errorf("principals %v", s.IncidentPrincipals)
				}
			}},
		{name: "incident principals may be a JSON list, in cdk.json or in a string",
			ctx: map[string]any{ctxIncidentPrincipals: `["arn:aws:iam::111122223333:role/soar"]`},
			check: func(t *testing.T, s Settings) {
				t.Helper()
				if !reflect.DeepEqual(s.IncidentPrincipals, []string{"arn:aws:iam::111122223333:role/soar"}) {
					t.Errorf("principals %v", s.IncidentPrincipals)
				}
			}},
		{name: "incident principals from a cdk.json list",
			ctx: map[string]any{ctxIncidentPrincipals: []any{"arn:aws:iam::111122223333:role/soar"}},
			check: func(t *testing.T, s Settings) {
				t.Helper()
				if len(s.IncidentPrincipals) != 1 {
					t.Errorf("principals %v", s.IncidentPrincipals)
				}
			}},
		{name: "reserved concurrency is unset by default and set when given",
			ctx: map[string]any{ctxReservedConcurrency: "5"},
			check: func(t *testing.T, s Settings) {
				t.Helper()
				if s.ReservedConcurrency != 5 || DefaultSettings().ReservedConcurrency != 0 {
					t.Errorf("reserved concurrency %d", s.ReservedConcurrency)
				}
			}},
		{name: "log retention 0 never expires", ctx: map[string]any{ctxLogRetentionDays: 0},
			check: func(t *testing.T, s Settings) {
				t.Helper()
				if s.LogRetentionDays != 0 {
					t.Errorf("retention %d", s.LogRetentionDays)
				}
			}},
		{name: "an empty alarm e-mail means no subscription", ctx: map[string]any{ctxAlarmEmail: ""},
			check: func(t *testing.T, s Settings) {
				t.Helper()
				if s.AlarmEmail != "" {
					t.Errorf("alarm e-mail %q", s.AlarmEmail)
				}
			}},
		{name: "the ledger's settings are Go durations, set as Go spells them",
			ctx: map[string]any{ctxIdempotencyWindow: "36h", ctxSettleAfter: "1h", ctxLedgerRetention: "17520h", ctxIncidentMaxAge: "6h"},
			check: func(t *testing.T, s Settings) {
				t.Helper()
				env := settings.Environment(s.Function)
				if env[settings.EnvIdempotencyWindow] != "36h0m0s" || env[settings.EnvSettleAfter] != "1h0m0s" ||
					env[settings.EnvLedgerRetention] != "17520h0m0s" || env[settings.EnvIncidentMaxAge] != "6h0m0s" {
					t.Errorf("environment %v", env)
				}
			}},
		{name: "the ledger's defaults: a day's idempotency window, 15 minutes to settle and to deliver an incident, 400 days kept",
			ctx: map[string]any{},
			check: func(t *testing.T, s Settings) {
				t.Helper()
				f := s.Function
				if f.IdempotencyWindow != 24*time.Hour || f.SettleAfter != 15*time.Minute || f.LedgerRetention != 400*24*time.Hour || f.IncidentMaxAge != 15*time.Minute {
					t.Errorf("%+v", f)
				}
				if f.LedgerTable != ledgerTablePlaceholder {
					t.Errorf("ledger table %q, want the placeholder the stack replaces", f.LedgerTable)
				}
			}},
		{name: "an incident max age past Lambda's asynchronous maximum is rejected by the stack", ctx: map[string]any{ctxIncidentMaxAge: "7h"},
			wantErr: "-c incidentMaxAge=7h: whole seconds, at most 6h0m0s: Lambda keeps an asynchronous event at most that long"},
		{name: "an incident max age of fractional seconds is rejected by the stack", ctx: map[string]any{ctxIncidentMaxAge: "90.5s"},
			wantErr: "-c incidentMaxAge=90.5s: whole seconds"},
		{name: "an incident max age under a minute is rejected by the function's loader", ctx: map[string]any{ctxIncidentMaxAge: "30s"},
			wantErr: "-c incidentMaxAge=30s: ROTATOR_INCIDENT_MAX_AGE=30s: must be between 1m0s and 24h0m0s"},
		{name: "a ledger retention under 90 days is rejected by the function's loader", ctx: map[string]any{ctxLedgerRetention: "720h"},
			wantErr: "-c ledgerRetention=720h: ROTATOR_LEDGER_RETENTION=720h: must be between"},
		{name: "an idempotency window under an hour is rejected by the function's loader", ctx: map[string]any{ctxIdempotencyWindow: "30m"},
			wantErr: "-c idempotencyWindow=30m: ROTATOR_IDEMPOTENCY_WINDOW=30m: must be between"},
		{name: "reserve not below the limit is rejected", ctx: map[string]any{ctxReserve: 25}, wantErr: "-c reserve=25"},
		{name: "a region typo is rejected", ctx: map[string]any{ctxRegions: "us-east1"}, wantErr: `-c regions=us-east1: "us-east1" is not an AWS Region; did you mean us-east-1?`},
		{name: "a schedule that is neither cron nor rate is rejected", ctx: map[string]any{ctxSchedule: "daily"}, wantErr: "-c schedule=daily"},
		{name: "a five-field cron is rejected", ctx: map[string]any{ctxSchedule: "cron(0 3 * * ?)"}, wantErr: "-c schedule=cron(0 3 * * ?): a cron expression has six fields"},
		{name: "an unknown time zone is rejected", ctx: map[string]any{ctxScheduleTimezone: "Mars/Olympus"}, wantErr: "-c scheduleTimezone=Mars/Olympus"},
		{name: "an interval below the floor is rejected by the function's own loader, naming the key",
			ctx: map[string]any{ctxIntervalDays: 20}, wantErr: "-c intervalDays=20: ROTATOR_INTERVAL_DAYS=20: below ROTATOR_MIN_INTERVAL_DAYS (30)"},
		{name: "a cooldown past the function's bound is rejected naming the key", ctx: map[string]any{ctxIncidentCooldown: "200h"},
			wantErr: "-c incidentCooldown=200h: ROTATOR_INCIDENT_COOLDOWN="},
		{name: "a duration that is not Go's is rejected", ctx: map[string]any{ctxConfirmWait: "5 seconds"},
			wantErr: `-c confirmWait=5 seconds: ROTATOR_CONFIRM_WAIT="5 seconds": not a Go duration`},
		{name: "an incident wait past the function's bound is rejected naming the key", ctx: map[string]any{ctxIncidentWait: "20m"},
			wantErr: "-c incidentWait=20m: ROTATOR_INCIDENT_WAIT=20m: must be between 0s and 15m0s"},
		{name: "a stuck threshold under the function's bound is rejected naming the key", ctx: map[string]any{ctxStuckAfter: "30s"},
			wantErr: "-c stuckAfter=30s: ROTATOR_STUCK_AFTER=30s: must be between 1m0s and 720h0m0s"},
		{name: "skipIdle must be a boolean", ctx: map[string]any{ctxSkipIdle: "maybe"}, wantErr: `-c skipIdle=maybe: ROTATOR_SKIP_IDLE="maybe": not a boolean`},
		{name: "a function setting given as a list is rejected", ctx: map[string]any{ctxTagKey: []any{"a"}}, wantErr: "-c tagKey=[a]: a string, number or boolean"},
		{name: "a grace above the function's bound is rejected", ctx: map[string]any{ctxAutoRotationGraceDays: 1000}, wantErr: "-c autoRotationGraceDays=1000"},
		{name: "several function settings are reported together",
			ctx: map[string]any{ctxConcurrency: 0, ctxRotateRPS: 0}, wantErr: "-c concurrency=0: ROTATOR_CONCURRENCY=0: must be between 1 and 256\n  -c rotateRps=0: ROTATOR_ROTATE_RPS=0"},
		{name: "reserved concurrency below 3 is rejected", ctx: map[string]any{ctxReservedConcurrency: 1}, wantErr: "-c reservedConcurrency=1: at least 3"},
		{name: "the default bus is not an incident bus", ctx: map[string]any{ctxIncidentBusName: "default"}, wantErr: "-c incidentBusName=default"},
		{name: "a bus name with a slash is rejected", ctx: map[string]any{ctxIncidentBusName: "a/b"}, wantErr: "-c incidentBusName=a/b"},
		{name: "an incident principal that is not a role ARN is rejected", ctx: map[string]any{ctxIncidentPrincipals: "arn:aws:iam::111122223333:user/bob"},
			wantErr: "-c incidentPrincipals=arn:aws:iam::111122223333:user/bob: not an IAM role ARN"},
		{name: "incident principals of two accounts are rejected",
			ctx:     map[string]any{ctxIncidentPrincipals: "arn:aws:iam::111122223333:role/a,arn:aws:iam::444455556666:role/b"},
			wantErr: "must all be of one account"},
		{name: "memory above Lambda's maximum is rejected", ctx: map[string]any{ctxMemorySize: 20000}, wantErr: "-c memorySize=20000"},
		{name: "a timeout above 15 minutes is rejected", ctx: map[string]any{ctxTimeoutMinutes: 16}, wantErr: "-c timeoutMinutes=16"},
		{name: "a fractional integer is rejected", ctx: map[string]any{ctxConcurrency: 1.5}, wantErr: `-c concurrency=1.5: ROTATOR_CONCURRENCY="1.5": not an integer`},
		{name: "a retention CloudWatch does not offer is rejected", ctx: map[string]any{ctxLogRetentionDays: 100}, wantErr: "-c logRetentionDays=100"},
		{name: "an aws: tag key is rejected", ctx: map[string]any{ctxTagKey: "aws:rotate"}, wantErr: "-c tagKey=aws:rotate"},
		{name: "a quote in the tag value is rejected", ctx: map[string]any{ctxTagValue: `a"b`}, wantErr: "-c tagValue="},
		{name: "a function name with a dot is rejected", ctx: map[string]any{ctxFunctionName: "kms.rotator"}, wantErr: "-c functionName=kms.rotator"},
		{name: "a continuation bound past Lambda's loop detection is rejected", ctx: map[string]any{ctxContinuationMax: 16},
			wantErr: "-c continuationMax=16: at most 15: Lambda's recursive loop detection"},
		{name: "a continuation bound past the function's own is rejected by the function's loader", ctx: map[string]any{ctxContinuationMax: 101},
			wantErr: "-c continuationMax=101: ROTATOR_CONTINUATION_MAX=101: must be between 0 and 100"},
		{name: "dryRun must be a boolean", ctx: map[string]any{ctxDryRun: "yes please"}, wantErr: "-c dryRun=yes please"},
		{name: "an AWS/ namespace is rejected", ctx: map[string]any{ctxMetricsNamespace: "AWS/KMS"}, wantErr: "-c metricsNamespace=AWS/KMS"},
		{name: "an alarm e-mail with a display name is rejected", ctx: map[string]any{ctxAlarmEmail: "Sec <sec@example.com>"}, wantErr: "-c alarmEmail="},
		{name: "every bad value is reported at once", ctx: map[string]any{ctxMemorySize: 1, ctxIntervalDays: 0}, wantErr: "memorySize=1: must be between 128 and 10240\n  -c intervalDays=0"},
		{name: "a cross-field error names the key the loader names", ctx: map[string]any{ctxOnDemandLimit: 10, ctxReserve: 10},
			wantErr: "-c reserve=10: ROTATOR_RESERVE=10: must be less than ROTATOR_ON_DEMAND_LIMIT (10)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := SettingsFromContext(func(k string) any { return tc.ctx[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
		})
	}
}

// TestAFunctionDefaultRefusedByAnotherKeyIsReportedOnce: a cross-field rule
// of the function's loader may refuse a default because of another key's
// value; the error names the key of the refused variable, once.
func TestAFunctionDefaultRefusedByAnotherKeyIsReportedOnce(t *testing.T) {
	_, err := SettingsFromContext(func(k string) any {
		if k == ctxMinIntervalDays {
			return 120.0
		}
		return nil
	})
	want := "invalid CDK context:\n  -c intervalDays=90: ROTATOR_INTERVAL_DAYS=90: below ROTATOR_MIN_INTERVAL_DAYS (120)"
	if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Count(err.Error(), "\n") != 1 {
		t.Errorf("err = %v, want one line starting %q", err, want)
	}
}

func TestStackEnvs(t *testing.T) {
	tests := []struct {
		name                   string
		regions                []string
		account, defaultRegion string
		want                   []string
	}{
		{"no regions and no CLI environment give one environment-agnostic stack", nil, "", "", []string{"KmsRotator@-"}},
		{"no regions take the CLI's region", nil, "111122223333", "eu-central-1", []string{"KmsRotator@eu-central-1"}},
		{"regions give one stack each", []string{"us-east-1", "eu-west-1"}, "", "eu-central-1",
			[]string{"KmsRotator-us-east-1@us-east-1", "KmsRotator-eu-west-1@eu-west-1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, e := range stackEnvs(defaultStackName, tc.regions, tc.account, tc.defaultRegion) {
				r := "-"
				if e.env != nil && e.env.Region != nil {
					r = *e.env.Region
				}
				if e.env != nil && tc.account != "" && (e.env.Account == nil || *e.env.Account != tc.account) {
					t.Errorf("%s: account %v, want %s", e.id, e.env.Account, tc.account)
				}
				got = append(got, e.id+"@"+r)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
