package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"
)

// TestSweepsRunOnAFunctionOfTheirOwn: the schedule's sweeps run on
// <functionName>-sweep, incidents (the incident rule, the responders'
// policy) on functionName; both are the same code with the same settings
// and role, and each writes into the one log group of the stack.
func TestSweepsRunOnAFunctionOfTheirOwn(t *testing.T) {
	_, _, j := synth(t)
	incidentID, incident := lambdaFunction(t, j, "kms-rotator")
	sweepID, sweep := lambdaFunction(t, j, "kms-rotator-sweep")
	if n := len(resources(t, j, "AWS::Lambda::Function")); n != 2 {
		t.Fatalf("%d functions, want 2", n)
	}
	for _, key := range []string{"Code", "Role", "Environment", "LoggingConfig", "Runtime", "Architectures", "Handler", "MemorySize", "Timeout", "RecursiveLoop"} {
		if !reflect.DeepEqual(incident[key], sweep[key]) {
			t.Errorf("%s differs: incident %s, sweep %s", key, mustString(incident[key]), mustString(sweep[key]))
		}
	}
	t.Run("in single-account mode neither reserves concurrency", func(t *testing.T) {
		if incident["ReservedConcurrentExecutions"] != nil || sweep["ReservedConcurrentExecutions"] != nil {
			t.Errorf("reserved: incident %v, sweep %v", incident["ReservedConcurrentExecutions"], sweep["ReservedConcurrentExecutions"])
		}
	})
	_, sched := only(t, j, "AWS::Scheduler::Schedule")
	if got := flat(sched["Target"].(map[string]any)["Arn"]); got != "${"+sweepID+".Arn}" {
		t.Errorf("the schedule targets %s, want the sweep function", got)
	}
	for id, r := range resources(t, j, "AWS::Events::Rule") {
		for _, target := range r["Properties"].(map[string]any)["Targets"].([]any) {
			if arn := flat(target.(map[string]any)["Arn"]); strings.Contains(arn, "Function") && arn != "${"+incidentID+".Arn}" {
				t.Errorf("rule %s targets %s, want the incident function", id, arn)
			}
		}
	}
	_, responder := only(t, j, "AWS::IAM::ManagedPolicy")
	if body := mustString(responder); !strings.Contains(body, ":function:kms-rotator\"") || strings.Contains(body, "kms-rotator-sweep") {
		t.Errorf("the responder policy must invoke the incident function only: %s", body)
	}
	outputs := j["Outputs"].(map[string]any)
	if got := flat(outputs["SweepFunctionName"].(map[string]any)["Value"]); got != "${"+sweepID+"}" {
		t.Errorf("output SweepFunctionName %s", got)
	}
	if got := flat(outputs["FunctionName"].(map[string]any)["Value"]); got != "${"+incidentID+"}" {
		t.Errorf("output FunctionName %s", got)
	}
}

// TestTheOrganizationSweepHasItsOwnConcurrency: in organization mode the
// state machine invokes the sweep function only, whose reserved
// concurrency is the Map's MaxConcurrency, so the sweep neither throttles
// itself nor takes the incident function's executions; reservedConcurrency
// stays the incident function's. reservedConcurrency 3 with
// orgMaxConcurrency 40 — a sweep that would have starved incidents when they
// shared one function — gives 3 to incidents and 40 to the sweep.
func TestTheOrganizationSweepHasItsOwnConcurrency(t *testing.T) {
	for _, tc := range []struct {
		name                string
		ctx                 map[string]any
		incident, sweep, mc float64
	}{
		{"the defaults", map[string]any{ctxOrgMaxConcurrency: nil}, 0, 10, 10},
		{"orgContext", nil, 0, 25, 25},
		{"reservedConcurrency 3 with orgMaxConcurrency 40", map[string]any{ctxReservedConcurrency: 3, ctxOrgMaxConcurrency: 40}, 3, 40, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := orgSynthWith(t, tc.ctx)
			incidentID, incident := lambdaFunction(t, j, "kms-rotator")
			sweepID, sweep := lambdaFunction(t, j, "kms-rotator-sweep")
			got := func(v any) float64 {
				f, _ := v.(float64)
				return f
			}
			if got(incident["ReservedConcurrentExecutions"]) != tc.incident || got(sweep["ReservedConcurrentExecutions"]) != tc.sweep {
				t.Errorf("reserved concurrency: incident %v, sweep %v; want %v and %v", incident["ReservedConcurrentExecutions"], sweep["ReservedConcurrentExecutions"], tc.incident, tc.sweep)
			}
			_, sm := only(t, j, "AWS::StepFunctions::StateMachine")
			def := flat(sm["DefinitionString"])
			var parsed map[string]any
			if err := json.Unmarshal([]byte(def), &parsed); err != nil {
				t.Fatalf("definition: %v", err)
			}
			mapState := parsed["States"].(map[string]any)[orgMapState].(map[string]any)
			if mapState["MaxConcurrency"] != tc.mc || got(sweep["ReservedConcurrentExecutions"]) < tc.mc {
				t.Errorf("the Map runs %v at once, the sweep function reserves %v", mapState["MaxConcurrency"], sweep["ReservedConcurrentExecutions"])
			}
			if !strings.Contains(def, "${"+sweepID+".Arn}") || strings.Contains(def, "${"+incidentID+".Arn}") {
				t.Errorf("the state machine must invoke the sweep function only: %.300s", def)
			}
			for id, p := range resources(t, j, "AWS::IAM::Policy") {
				if body := mustString(p); strings.Contains(body, "lambda:InvokeFunction") && strings.Contains(body, `"`+incidentID+`"`) {
					t.Errorf("policy %s lets the state machine invoke the incident function: %s", id, body)
				}
			}
		})
	}
}

// TestReservedConcurrencyFitsTheAccount: the incident function's and the
// sweep function's reserved concurrency together leave Lambda's 100
// unreserved executions of the account's quota (accountConcurrency, 1000
// by default), or the synth refuses, naming the keys to change.
func TestReservedConcurrencyFitsTheAccount(t *testing.T) {
	org := func(ctx map[string]any) map[string]any {
		out := maps.Clone(orgContext)
		maps.Copy(out, ctx)
		return out
	}
	for _, tc := range []struct {
		name string
		ctx  map[string]any
		want string // "" = accepted
	}{
		{"single account, 900 reserved of 1000", map[string]any{ctxReservedConcurrency: 900}, ""},
		{"single account, 901 reserved of 1000", map[string]any{ctxReservedConcurrency: 901},
			"-c reservedConcurrency=901: more than the 900 executions an account of -c accountConcurrency=1000 may reserve: Lambda keeps 100 unreserved"},
		{"single account, a raised quota", map[string]any{ctxReservedConcurrency: 2000, ctxAccountConcurrency: 3000}, ""},
		{"an account of 10 reserves nothing and deploys", map[string]any{ctxAccountConcurrency: 10}, ""},
		{"organization, 860 + 40 of 1000", org(map[string]any{ctxReservedConcurrency: 860, ctxOrgMaxConcurrency: 40}), ""},
		{"organization, 880 + 40 of 1000", org(map[string]any{ctxReservedConcurrency: 880, ctxOrgMaxConcurrency: 40}),
			"-c reservedConcurrency=880: with -c orgMaxConcurrency=40 (the sweep function reserves as many) the stack reserves 920 executions, more than the 900 an account of -c accountConcurrency=1000 may reserve"},
		{"organization in an account of 100", org(map[string]any{ctxAccountConcurrency: 100}),
			"-c reservedConcurrency=0: with -c orgMaxConcurrency=25 (the sweep function reserves as many) the stack reserves 25 executions, more than the 0 an account of -c accountConcurrency=100 may reserve"},
		{"a quota of 0", map[string]any{ctxAccountConcurrency: 0}, "-c accountConcurrency=0: must be between 1 and"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := synthErr(t, tc.ctx)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("err = %v\nwant one containing %q", err, tc.want)
			}
		})
	}
}

// TestBothFunctionsAreWatched: the dashboard shows each function's
// invocations, errors and throttles, and both functions' concurrency.
func TestBothFunctionsAreWatched(t *testing.T) {
	_, _, j := synth(t)
	_, d := only(t, j, "AWS::CloudWatch::Dashboard")
	body := flat(d["DashboardBody"])
	for _, name := range []string{"kms-rotator", "kms-rotator-sweep"} {
		id, _ := lambdaFunction(t, j, name)
		for _, metric := range []string{"Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions"} {
			if want := fmt.Sprintf(`["AWS/Lambda","%s","FunctionName","${%s}"`, metric, id); !strings.Contains(body, want) {
				t.Errorf("the dashboard lacks %s of %s", metric, name)
			}
		}
	}
}
