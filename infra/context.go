package main

import (
	"strings"

	"github.com/kms-rotator/kms-rotator/lambda/request"
)

// The context keys the app accepts: its own (ContextKeys, each listed in
// cdk.json with its default) and the CDK's. Any other key is refused at
// synth with the nearest known key: a misspelt key is otherwise ignored,
// and `-c dryrun=true` would deploy a stack that rotates for real.
//
// The CDK's keys are those the toolkit and the framework put into the
// app's context themselves, rather than settings of this app:
//   - feature flags, "@aws-cdk/…" (cdk.json pins them; the CLI adds
//     "@aws-cdk/core:failSynthOnValidationErrors") and
//     "@aws-cdk-containers/…";
//   - the toolkit's own switches, "aws:cdk:…" (path and asset metadata,
//     version reporting, bundling-stacks, asset staging);
//   - keys the toolkit keeps in cdk.context.json: "acknowledged-issue-numbers"
//     (`cdk acknowledge`), "cli-telemetry" (`cdk cli-telemetry`), and the
//     cached answers of context lookups, "<provider>:account=…:region=…"
//     (https://docs.aws.amazon.com/cdk/v2/guide/context.html);
//   - "cdk-…" keys of CDK tools.
var (
	cdkContextPrefixes = []string{"@aws-cdk", "aws:cdk:", "cdk-"}
	cdkContextKeys     = []string{"acknowledged-issue-numbers", "cli-telemetry"}
)

// knownContextKey says whether key is one of the app's or the CDK's.
func knownContextKey(key string) bool {
	for _, k := range ContextKeys {
		if key == k {
			return true
		}
	}
	for _, k := range cdkContextKeys {
		if key == k {
			return true
		}
	}
	for _, p := range cdkContextPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	// A cached lookup: a provider name, then its parameters (key=value)
	// after a colon. None of the app's keys has a colon.
	if provider, params, ok := strings.Cut(key, ":"); ok && provider != "" && strings.Contains(params, "=") {
		return true
	}
	return false
}

// unknownContextKeys checks every context key the app holds; each unknown
// one is reported under its own name, with the nearest of the app's keys.
func (r *ctxReader) unknownContextKeys(keys []string) {
	for _, k := range keys {
		if knownContextKey(k) {
			continue
		}
		msg := "not a setting of kms-rotator (docs/deploy.md \"Settings (CDK context)\" lists them)"
		if near := nearest(k, ContextKeys); near != "" {
			msg += "; did you mean " + near + "?"
		}
		r.fail(k, r.raw(k, ""), "%s", msg)
	}
}

// nearest is the candidate closest to s by edit distance, ignoring case,
// when it is close enough to be a likely typo (at most a third of its
// length, and at least 2, apart); "" otherwise. Ties go to the earlier
// candidate.
func nearest(s string, candidates []string) string {
	best, bestDist := "", -1
	for _, c := range candidates {
		d := request.EditDistance(strings.ToLower(s), strings.ToLower(c))
		if d <= max(2, len(c)/3) && (bestDist < 0 || d < bestDist) {
			best, bestDist = c, d
		}
	}
	return best
}
