package main

import (
	"maps"
	"strings"
	"testing"
)

// TestContextIsCheckedByName: every context key the app holds is one of its
// settings or one of the CDK's own; a misspelt key fails the synth naming
// the setting it most likely meant, and so do settings that make no sense
// together.
func TestContextIsCheckedByName(t *testing.T) {
	withCDKJSON := func(t *testing.T, ctx map[string]any) map[string]any {
		t.Helper()
		all := cdkJSONContext(t)
		maps.Copy(all, ctx)
		return all
	}
	refused := []struct {
		name string
		ctx  map[string]any
		want string
	}{
		{"a dry run asked for with the wrong case", map[string]any{"dryrun": "true"},
			`-c dryrun=true: not a setting of kms-rotator (docs/deploy.md "Settings (CDK context)" lists them); did you mean dryRun?`},
		{"organization targets without their s", map[string]any{"orgTarget": "ou-ab12-cdefghij", ctxOrgRegions: "eu-west-1"},
			"-c orgTarget=ou-ab12-cdefghij: not a setting of kms-rotator (docs/deploy.md \"Settings (CDK context)\" lists them); did you mean orgTargets?"},
		{"a typo in the middle", map[string]any{"intervalDyas": "60"}, "-c intervalDyas=60: not a setting of kms-rotator (docs/deploy.md \"Settings (CDK context)\" lists them); did you mean intervalDays?"},
		{"a key like no setting, without a guess", map[string]any{"frobnicate": "1"}, "-c frobnicate=1: not a setting of kms-rotator (docs/deploy.md \"Settings (CDK context)\" lists them)\n"},
		{"orgRegions without orgTargets", map[string]any{ctxOrgRegions: "eu-west-1"},
			"-c orgRegions=eu-west-1: organization mode is off: orgRegions needs orgTargets"},
		{"a Region that does not exist", map[string]any{ctxRegions: "us-east-9"}, `-c regions=us-east-9: "us-east-9" is not an AWS Region; did you mean us-east-1?`},
		{"Regions of two partitions in one app", map[string]any{ctxRegions: "cn-north-1,us-east-1"},
			"-c regions=cn-north-1,us-east-1: Regions of different partitions (aws-cn: cn-north-1; aws: us-east-1)"},
		{"an organization Region that does not exist", map[string]any{ctxOrgTargets: "ou-ab12-cdefghij", ctxOrgRegions: "eu-west-1,eu-wset-2"},
			`-c orgRegions=eu-wset-2: "eu-wset-2" is not an AWS Region; did you mean eu-west-2?`},
	}
	for _, tc := range refused {
		t.Run(tc.name+" is refused naming the key", func(t *testing.T) {
			_, err := SettingsFromAllContext(withCDKJSON(t, tc.ctx))
			if err == nil || !strings.Contains(err.Error()+"\n", tc.want) {
				t.Errorf("err = %v\nwant one containing %q", err, tc.want)
			}
		})
	}
	t.Run("every bad key is reported in one synth", func(t *testing.T) {
		_, err := SettingsFromAllContext(withCDKJSON(t, map[string]any{"dryrun": "true", "orgTarget": "ou-ab12-cdefghij", ctxMemorySize: 1}))
		if err == nil || !strings.Contains(err.Error(), "did you mean dryRun?") || !strings.Contains(err.Error(), "did you mean orgTargets?") ||
			!strings.Contains(err.Error(), "-c memorySize=1") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("cdk.json, and what the CDK toolkit adds to the context, are accepted", func(t *testing.T) {
		// What `cdk synth` passes besides cdk.json (aws-cdk's
		// contextFromSettings, `cdk acknowledge`, `cdk cli-telemetry`) and
		// a cached lookup of cdk.context.json.
		s, err := SettingsFromAllContext(withCDKJSON(t, map[string]any{
			"aws:cdk:enable-path-metadata": true, "aws:cdk:enable-asset-metadata": true, "aws:cdk:version-reporting": true,
			"aws:cdk:bundling-stacks": []any{"**"}, "@aws-cdk/core:failSynthOnValidationErrors": false,
			"acknowledged-issue-numbers": []any{32775.0}, "cli-telemetry": false,
			"availability-zones:account=111122223333:region=us-east-1": []any{"us-east-1a"},
		}))
		if err != nil {
			t.Fatal(err)
		}
		if s.Function.DryRun {
			t.Error("dry run on")
		}
	})
	t.Run("the app refuses a misspelt key as `cdk synth` runs it", func(t *testing.T) {
		err := addStacks(newApp(t, map[string]any{"dryrun": "true"}), fakeCode(t))
		if err == nil || !strings.Contains(err.Error(), "-c dryrun=true") || !strings.Contains(err.Error(), "did you mean dryRun?") {
			t.Errorf("err = %v, want the synth to fail naming dryRun", err)
		}
	})
}

func TestNearest(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"dryrun", "dryRun"}, {"DRYRUN", "dryRun"}, {"orgTarget", "orgTargets"}, {"region", "regions"},
		{"alarmEmails", "alarmEmail"}, {"timeout", ""}, {"x", ""},
	} {
		if got := nearest(tc.in, ContextKeys); got != tc.want {
			t.Errorf("nearest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
