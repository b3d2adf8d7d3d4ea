package main

import (
	"testing"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// TestOnlyTheFunctionPublishesResults puts PutEvents requests through the
// synthesized templates of both modes — the function role's inline policy
// and the results bus's resource policy, resolved as CloudFormation would —
// with the IAM simulator (policy/testdata/simulate.mjs): the function's
// role may announce a result on the results bus and nowhere else, and no
// other principal may put anything there, whatever its identity policy.
func TestOnlyTheFunctionPublishesResults(t *testing.T) {
	_, _, single := synth(t)
	_, _, org := orgSynth(t)
	for _, mode := range []struct {
		name string
		tmpl map[string]any
	}{{"single account", single}, {"organization", org}} {
		t.Run(mode.name, func(t *testing.T) {
			values := cfnValues(mode.tmpl)
			busID, bus := eventBus(t, mode.tmpl, "kms-rotator-results")
			busARN := values[busID+".Arn"]
			busPolicy := resolve(t, bus["Policy"], values)
			roleID := functionRoleID(t, mode.tmpl)
			roleARN := values[roleID+".Arn"]
			role := mode.tmpl["Resources"].(map[string]any)[roleID].(map[string]any)["Properties"].(map[string]any)
			var identity []any
			for _, p := range role["Policies"].([]any) {
				identity = append(identity, resolve(t, p.(map[string]any)["PolicyDocument"], values))
			}
			defaultBus := "arn:aws:events:" + simRegion + ":" + simAccount + ":event-bus/default"
			entry := func(source, detailType string) map[string]any {
				return map[string]any{"events:source": []string{source}, "events:detail-type": []string{detailType}}
			}
			result := entry(settings.ResultEventSource, settings.ResultEventDetailType)
			put := func(name, principal string, identity []any, bus string, busPolicy any, ctx map[string]any, want string) iamCase {
				c := map[string]any{"aws:PrincipalArn": principal} // the simulator does not derive it
				for k, v := range ctx {
					c[k] = v
				}
				return iamCase{Name: name, Principal: principal, Action: "events:PutEvents", Resource: bus, Account: simAccount,
					Context: c, IdentityPolicies: identity, ResourcePolicy: busPolicy, want: want}
			}
			admin := []any{map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
				"Effect": "Allow", "Action": "events:PutEvents", "Resource": "*"}}}}
			other := "arn:aws:iam::" + simAccount + ":role/soar"
			simulateIAM(t, []iamCase{
				put("the function's role, a result event on the results bus", roleARN, identity, busARN, busPolicy, result, "Allowed"),
				put("the function's role, a result event on the default bus", roleARN, identity, defaultBus, nil, result, "ImplicitlyDenied"),
				put("the function's role, an event of another source on the results bus", roleARN, identity, busARN, busPolicy,
					entry("com.example.soar", settings.ResultEventDetailType), "ImplicitlyDenied"),
				put("the function's role, an incident request on the results bus", roleARN, identity, busARN, busPolicy,
					entry(settings.ResultEventSource, incidentDetailType), "ImplicitlyDenied"),
				put("another principal of the account allowed PutEvents on *, a forged result on the results bus", other, admin, busARN, busPolicy, result, "ExplicitlyDenied"),
				put("a role of another account allowed PutEvents on *, a forged result on the results bus",
					"arn:aws:iam::"+simOtherAccount+":role/"+roleID, admin, busARN, busPolicy, result, "ExplicitlyDenied"),
			})
		})
	}
}
