package main

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"sort"
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
		s, err := SettingsFromContext(func(k string) any { return ctx[k] })
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(s, DefaultSettings()) {
			t.Errorf("\n got %+v\nwant %+v", s, DefaultSettings())
		}
	})
}

// TestFunctionAcceptsTheEnvironment runs the function's own config loader on
// what the stack sets, so the two sides cannot drift.
func TestFunctionAcceptsTheEnvironment(t *testing.T) {
	custom := DefaultSettings()
	custom.TagKey, custom.TagValue, custom.IntervalDays, custom.OnDemandLimit = "security:rotate", "yes", 60, 20
	custom.Reserve, custom.RotateRPS, custom.Concurrency, custom.DryRun, custom.MetricsNamespace = 5, 2.5, 8, true, "Sec/KMS"
	custom.ContinuationMax = 3
	custom.IncidentCooldown, custom.ConfirmWait, custom.CallTimeout = 90*time.Minute, 2*time.Second, 30*time.Second
	custom.MinIntervalDays, custom.AutoRotationGraceDays = 45, 0
	want := settings.DefaultConfig()
	want.TagKey, want.TagValue, want.IntervalDays, want.OnDemandLimit = "security:rotate", "yes", 60, 20
	want.Reserve, want.RotateRPS, want.Concurrency, want.DryRun, want.MetricsNamespace = 5, 2.5, 8, true, "Sec/KMS"
	want.ContinuationMax = 3
	want.IncidentCooldown, want.ConfirmWait, want.CallTimeout = 90*time.Minute, 2*time.Second, 30*time.Second
	want.MinIntervalDays, want.AutoRotationGraceDays = 45, 0
	// The stack always sets ROTATOR_CONCURRENCY (from context), so the
	// function uses it exactly rather than growing it with the pace.
	want.ConcurrencyAuto = false
	defaults := settings.DefaultConfig()
	defaults.ConcurrencyAuto = false
	tests := []struct {
		name string
		s    Settings
		want settings.Config
	}{
		{"defaults give the function's defaults", DefaultSettings(), defaults},
		{"every setting reaches the function", custom, want},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.s.Environment()
			got, err := settings.LoadConfig(func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("\n got %+v\nwant %+v", got, tc.want)
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
				if s.MemorySize != 512 || !s.DryRun || s.RotateRPS != 2.5 || s.Timeout != 15*time.Minute {
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
			ctx: map[string]any{ctxIncidentCooldown: "90m", ctxConfirmWait: "0", ctxCallTimeout: "30s"},
			check: func(t *testing.T, s Settings) {
				t.Helper()
				env := s.Environment()
				if env[settings.EnvIncidentCooldown] != "1h30m" || env[settings.EnvConfirmWait] != "0s" || env[settings.EnvCallTimeout] != "30s" {
					t.Errorf("environment %v", env)
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
		{name: "reserve not below the limit is rejected", ctx: map[string]any{ctxReserve: 25}, wantErr: "-c reserve=25"},
		{name: "a region typo is rejected", ctx: map[string]any{ctxRegions: "us-east1"}, wantErr: `"us-east1" is not a region`},
		{name: "a schedule that is neither cron nor rate is rejected", ctx: map[string]any{ctxSchedule: "daily"}, wantErr: "-c schedule=daily"},
		{name: "a five-field cron is rejected", ctx: map[string]any{ctxSchedule: "cron(0 3 * * ?)"}, wantErr: "-c schedule=cron(0 3 * * ?): a cron expression has six fields"},
		{name: "an unknown time zone is rejected", ctx: map[string]any{ctxScheduleTimezone: "Mars/Olympus"}, wantErr: "-c scheduleTimezone=Mars/Olympus"},
		{name: "an interval below the floor is rejected by the function's own loader, naming the key",
			ctx: map[string]any{ctxIntervalDays: 20}, wantErr: "-c intervalDays=20: ROTATOR_INTERVAL_DAYS=20: below ROTATOR_MIN_INTERVAL_DAYS (30)"},
		{name: "a cooldown past the function's bound is rejected naming the key", ctx: map[string]any{ctxIncidentCooldown: "200h"},
			wantErr: "-c incidentCooldown=200h: ROTATOR_INCIDENT_COOLDOWN="},
		{name: "a duration that is not Go's is rejected", ctx: map[string]any{ctxConfirmWait: "5 seconds"}, wantErr: "-c confirmWait=5 seconds: not a Go duration"},
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
		{name: "a fractional integer is rejected", ctx: map[string]any{ctxConcurrency: 1.5}, wantErr: "-c concurrency=1.5: not a whole number"},
		{name: "a retention CloudWatch does not offer is rejected", ctx: map[string]any{ctxLogRetentionDays: 100}, wantErr: "-c logRetentionDays=100"},
		{name: "an aws: tag key is rejected", ctx: map[string]any{ctxTagKey: "aws:rotate"}, wantErr: "-c tagKey=aws:rotate"},
		{name: "a quote in the tag value is rejected", ctx: map[string]any{ctxTagValue: `a"b`}, wantErr: "-c tagValue="},
		{name: "a function name with a dot is rejected", ctx: map[string]any{ctxFunctionName: "kms.rotator"}, wantErr: "-c functionName=kms.rotator"},
		{name: "a continuation bound past Lambda's loop detection is rejected", ctx: map[string]any{ctxContinuationMax: 16}, wantErr: "-c continuationMax=16"},
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
			for _, e := range stackEnvs(tc.regions, tc.account, tc.defaultRegion) {
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
