package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/harness"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

// The organization sweep's state machine (orgflow.go), synthesized by CDK,
// checked by asl-validator and executed by aws-local-stepfunctions against
// the built bootstrap under the Runtime Interface Emulator and kmslocal.
// Both Node packages are pinned in package.json.

const (
	flowMemberA     = "111111111111" // needs continuations in us-east-1; in the root in TestOrgStateMachineResolvesOUsLocally
	flowMemberB     = "222222222222"
	flowUnreachable = "333333333333" // has keys but no member role
	flowRole        = "kms-rotator-member"
	// flowFunctionARN replaces the function's Fn::GetAtt in the synthesized
	// definition; the local run's Lambda integration accepts only it.
	flowFunctionARN = "arn:aws:lambda:us-east-1:012345678912:function:kms-rotator"
)

var (
	flowRegions = []string{"us-east-1", "eu-west-1"}
	// flowAccounts are the orgTargets of most tests: account IDs only.
	flowAccounts = []string{flowMemberA, flowMemberB, flowUnreachable}
)

// crossTargets are the accounts × the Regions, in the order the function's
// targets mode answers them (accounts sorted by ID).
func crossTargets(accounts []string, regions []string) []orgTarget {
	var ts []orgTarget
	for _, a := range slices.Sorted(slices.Values(accounts)) {
		for _, r := range regions {
			ts = append(ts, orgTarget{Account: a, Region: r})
		}
	}
	return ts
}

func flowTargets() []orgTarget { return crossTargets(flowAccounts, flowRegions) }

// flowSynth is one synthesis of the stand-in stack, for one orgTargets.
type flowSynth struct {
	once     sync.Once
	template map[string]any
	nag      []string // cdk-nag findings on the state machine's resources
	err      error
}

var flowSynths sync.Map // strings.Join(orgTargets, ",") → *flowSynth

// flowTemplate synthesizes a stack holding only the state machine for
// flowAccounts and a stand-in function.
func flowTemplate(t *testing.T) map[string]any {
	t.Helper()
	return flowSynthFor(t, flowAccounts).template
}

// flowSynthFor synthesizes, once per orgTargets, a stack holding only the
// state machine and a stand-in function (inline code: synthesis does not
// build ./lambda, and provided.al2023 takes no inline code).
func flowSynthFor(t *testing.T, orgTargets []string) *flowSynth {
	t.Helper()
	v, _ := flowSynths.LoadOrStore(strings.Join(orgTargets, ","), &flowSynth{})
	fs := v.(*flowSynth)
	fs.once.Do(func() {
		defer func() {
			if r := recover(); r != nil {
				fs.err = fmt.Errorf("synth: %v", r)
			}
		}()
		app := awscdk.NewApp(nil)
		stack := awscdk.NewStack(app, jsii.String("OrgFlow"), nil)
		fn := awslambda.NewFunction(stack, jsii.String("Function"), &awslambda.FunctionProps{
			Runtime: awslambda.Runtime_NODEJS_22_X(),
			Handler: jsii.String("index.handler"),
			Code:    awslambda.Code_FromInline(jsii.String("exports.handler = async () => ({});")),
		})
		newOrgStateMachine(stack, "OrgSweep", &orgStateMachineProps{Function: fn, OrgTargets: orgTargets, Regions: flowRegions, MaxConcurrency: 3})
		awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
		fs.template = *assertions.Template_FromStack(stack, nil).ToJSON()
		for _, kind := range []string{"error", "warning"} {
			find := assertions.Annotations_FromStack(stack).FindError
			if kind == "warning" {
				find = assertions.Annotations_FromStack(stack).FindWarning
			}
			for _, f := range *find(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))) {
				b, _ := json.Marshal(f)
				if !strings.Contains(string(b), `"/OrgFlow/OrgSweep`) {
					continue // the stand-in function's
				}
				fs.nag = append(fs.nag, kind+" "+string(b))
			}
		}
	})
	if fs.err != nil {
		t.Fatal(fs.err)
	}
	return fs
}

// flowDefinition is flowDefinitionFor flowAccounts.
func flowDefinition(t *testing.T) []byte {
	t.Helper()
	return flowDefinitionFor(t, flowAccounts)
}

// flowDefinitionFor is the template's DefinitionString with its
// CloudFormation parts resolved for a local run: the function's ARN becomes
// flowFunctionARN, AWS::Partition "aws". Any other intrinsic fails the test.
func flowDefinitionFor(t *testing.T, orgTargets []string) []byte {
	t.Helper()
	var def any
	for _, r := range flowSynthFor(t, orgTargets).template["Resources"].(map[string]any) {
		res := r.(map[string]any)
		if res["Type"] == "AWS::StepFunctions::StateMachine" {
			def = res["Properties"].(map[string]any)["DefinitionString"]
		}
	}
	join, ok := def.(map[string]any)["Fn::Join"].([]any)
	if !ok || join[0] != "" {
		t.Fatalf("DefinitionString %v: want an Fn::Join", def)
	}
	var b strings.Builder
	for _, p := range join[1].([]any) {
		switch p := p.(type) {
		case string:
			b.WriteString(p)
		case map[string]any:
			if ga, ok := p["Fn::GetAtt"].([]any); ok && len(ga) == 2 && ga[1] == "Arn" && strings.HasPrefix(ga[0].(string), "Function") {
				b.WriteString(flowFunctionARN)
			} else if p["Ref"] == "AWS::Partition" {
				b.WriteString("aws")
			} else {
				t.Fatalf("DefinitionString holds %v, which the local run cannot resolve", p)
			}
		}
	}
	if !json.Valid([]byte(b.String())) {
		t.Fatalf("resolved definition is not JSON:\n%s", b.String())
	}
	return []byte(b.String())
}

// nodeTool is a Node package's CLI from node_modules/.bin (make test installs them).
func nodeTool(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join("..", "node_modules", ".bin", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v (run `npm ci` in the repository root)", name, err)
	}
	abs, _ := filepath.Abs(p)
	return abs
}

func TestOrgStateMachinePassesASLValidator(t *testing.T) {
	def := flowDefinition(t)
	file := filepath.Join(t.TempDir(), "definition.json")
	if err := os.WriteFile(file, def, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(nodeTool(t, "asl-validator"), "--json-path", file).CombinedOutput()
	if err != nil {
		t.Fatalf("asl-validator: %v\n%s\n%s", err, out, def)
	}
}

func TestOrgStateMachineNagFindsNothing(t *testing.T) {
	for _, f := range flowSynthFor(t, flowAccounts).nag {
		t.Error(f)
	}
}

func TestOrgStateMachineResource(t *testing.T) {
	tpl := flowTemplate(t)
	var sm, policy map[string]any
	for _, r := range tpl["Resources"].(map[string]any) {
		res := r.(map[string]any)
		switch res["Type"] {
		case "AWS::StepFunctions::StateMachine":
			sm = res["Properties"].(map[string]any)
		case "AWS::IAM::Policy":
			policy = res["Properties"].(map[string]any)
		}
	}
	if sm["StateMachineType"] != "STANDARD" || sm["TracingConfiguration"].(map[string]any)["Enabled"] != true {
		t.Errorf("state machine %v: want STANDARD with tracing", sm)
	}
	if lc := sm["LoggingConfiguration"].(map[string]any); lc["Level"] != "ALL" || lc["IncludeExecutionData"] != true {
		t.Errorf("logging %v: want ALL with execution data", lc)
	}
	var invoke []any
	for _, st := range policy["PolicyDocument"].(map[string]any)["Statement"].([]any) {
		if st := st.(map[string]any); st["Action"] == "lambda:InvokeFunction" {
			invoke = append(invoke, st["Resource"])
		}
	}
	if b, _ := json.Marshal(invoke); len(invoke) != 1 || !strings.HasPrefix(string(b), `[{"Fn::GetAtt":["Function`) || !strings.HasSuffix(string(b), `","Arn"]}]`) {
		t.Errorf("lambda:InvokeFunction on %s; want the function's unqualified ARN alone", b)
	}
	var def map[string]any
	if err := json.Unmarshal(flowDefinition(t), &def); err != nil {
		t.Fatal(err)
	}
	states := def["States"].(map[string]any)
	m := states[orgMapState].(map[string]any)
	if m["MaxConcurrency"] != 3.0 || m["ItemsPath"] != "$.targets" || m["ResultPath"] != "$.targets" {
		t.Errorf("Map %v: want MaxConcurrency 3 over $.targets, results in $.targets", m)
	}
	t.Run("the first state resolves orgTargets with the function and fails the execution when it fails", func(t *testing.T) {
		if def["StartAt"] != orgResolveTask || len(states) != 2 {
			t.Fatalf("StartAt %v, states %v: want %q, then the Map", def["StartAt"], slices.Sorted(maps.Keys(states)), orgResolveTask)
		}
		got := states[orgResolveTask].(map[string]any)
		want := map[string]any{
			"Type":     "Task",
			"Comment":  got["Comment"],
			"Resource": "arn:aws:states:::lambda:invoke",
			"Parameters": map[string]any{
				"FunctionName": flowFunctionARN,
				"Payload":      map[string]any{"mode": "targets", "orgTargets": []any{flowMemberA, flowMemberB, flowUnreachable}, "orgRegions": []any{"us-east-1", "eu-west-1"}},
			},
			"ResultSelector": map[string]any{"targets.$": "$.Payload.targets", "excluded.$": "$.Payload.excluded"},
			"TimeoutSeconds": float64(orgTaskTimeout),
			"Retry":          states[orgMapState].(map[string]any)["ItemProcessor"].(map[string]any)["States"].(map[string]any)[orgSweepTask].(map[string]any)["Retry"],
			"Next":           orgMapState,
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("\n got %s\nwant %s", mustJSON(got), mustJSON(want))
		}
		if _, ok := got["Catch"]; ok || got["Retry"] == nil {
			t.Errorf("catch %v, retry %v: want the Lambda retriers and no Catch", got["Catch"], got["Retry"])
		}
	})
}

// flowTargetResult is one entry of the execution's output.
type flowTargetResult struct {
	Account  string `json:"account"`
	Region   string `json:"region"`
	Status   string `json:"status"`
	Links    int    `json:"links"`
	Rotated  int    `json:"rotated"`
	Failed   int    `json:"failed"`
	Skipped  int    `json:"skipped"`
	Deferred int    `json:"deferred"`
	RunID    string `json:"runId"`
	Error    struct {
		Error string `json:"Error"`
		Cause string `json:"Cause"`
	} `json:"error"`
}

// flowFleet is a kmslocal fleet: due[target] due keys and one key that is
// not due in each target.
func flowFleet(due map[orgTarget]int) string {
	var entries []map[string]any
	for tg, n := range due {
		suffix := tg.Account + "-" + tg.Region
		entries = append(entries,
			map[string]any{"account": tg.Account, "region": tg.Region, "alias": "alias/due-" + suffix, "createdDaysAgo": 200, "count": n, "tags": map[string]string{"kms-rotator": "enabled"}},
			map[string]any{"account": tg.Account, "region": tg.Region, "alias": "alias/fresh-" + suffix, "createdDaysAgo": 5, "tags": map[string]string{"kms-rotator": "enabled"}})
	}
	b, _ := json.Marshal(entries)
	return string(b)
}

// startFlowEnv starts kmslocal with the fleet, member roles in flowMemberA
// and flowMemberB only, and three functions (the Map's MaxConcurrency) in
// organization mode with fnEnv over ROTATOR_MEMBER_ROLE_NAME.
func startFlowEnv(t *testing.T, due map[orgTarget]int, timeout time.Duration, fnEnv map[string]string) *harness.Env {
	t.Helper()
	return startFlowEnvWith(t, due, []string{flowMemberA, flowMemberB}, nil, timeout, fnEnv)
}

// startFlowEnvWith is startFlowEnv with the accounts that have the member
// role and kmslocal's organization (nil: none) given.
func startFlowEnvWith(t *testing.T, due map[orgTarget]int, roleAccounts []string, org *kmsemu.Organization, timeout time.Duration, fnEnv map[string]string) *harness.Env {
	t.Helper()
	var roles []string
	for _, a := range roleAccounts {
		roles = append(roles, flowRoleARN(a))
	}
	env := map[string]string{settings.EnvMemberRoleName: flowRole}
	maps.Copy(env, fnEnv)
	return harness.StartTB(t, harness.Options{
		KMSLocal: harness.KMSLocalOptions{FleetJSON: flowFleet(due), Organization: org,
			Args: []string{"-roles", strings.Join(roles, ","), "-rotation-delay=0", "-quiet"}},
		Function:  harness.FunctionOptions{Timeout: timeout, Env: env},
		Functions: 3,
	})
}

// flowRoleARN is the member role of account.
func flowRoleARN(account string) string { return "arn:aws:iam::" + account + ":role/" + flowRole }

// flowExcluded is one account the resolve state left out.
type flowExcluded struct {
	Account string `json:"account"`
	From    string `json:"from"`
	Reason  string `json:"reason"`
	State   string `json:"state,omitempty"`
}

// flowOutput is the execution's output.
type flowOutput struct {
	Targets  []flowTargetResult `json:"targets"`
	Excluded []flowExcluded     `json:"excluded"`
	// raw is the output as the runner printed it.
	raw []byte
}

// flowUrls are the invoke URLs of env's functions.
func flowUrls(env *harness.Env) []string {
	var urls []string
	for _, f := range env.Functions {
		urls = append(urls, f.URL)
	}
	return urls
}

// runFlowAt executes the definition against the function's invoke URLs and
// checks that the output has one result per target of want, in order.
func runFlowAt(t *testing.T, def []byte, urls []string, want []orgTarget) (flowOutput, int) {
	t.Helper()
	raw, stderr, err := execFlow(t, def, urls)
	if err != nil {
		t.Fatalf("local execution: %v\n%s", err, stderr)
	}
	var res struct {
		Output      json.RawMessage `json:"output"`
		Invocations int             `json:"invocations"`
	}
	var out flowOutput
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("runner output %s: %v", raw, err)
	}
	if err := json.Unmarshal(res.Output, &out); err != nil {
		t.Fatalf("execution output %s: %v", res.Output, err)
	}
	out.raw = res.Output
	// The sizes orgDefinition's comment counts with.
	var raws struct{ Targets []json.RawMessage }
	if err := json.Unmarshal(res.Output, &raws); err != nil {
		t.Fatal(err)
	}
	for i, r := range raws.Targets {
		if limit := orgResultBytes(out.Targets[i].Status); len(r) > limit {
			t.Errorf("result %d takes %d bytes, over the %d orgDefinition counts for a %s target: %s", i, len(r), limit, out.Targets[i].Status, r)
		}
	}
	if len(out.Targets) != len(want) {
		t.Fatalf("%d target results, want %d: %s", len(out.Targets), len(want), raw)
	}
	for i, tg := range want {
		if r := out.Targets[i]; r.Account != tg.Account || r.Region != tg.Region {
			t.Fatalf("result %d is for %s/%s, want %s/%s (target order)", i, r.Account, r.Region, tg.Account, tg.Region)
		}
	}
	if out.Excluded == nil {
		t.Errorf("the output has no excluded list: %s", res.Output)
	}
	return out, res.Invocations
}

// execFlow runs the definition through testdata/run-org-sweep.mjs, the
// resolve and sweep states invoking the function at urls, and returns the
// runner's stdout and stderr; err is set when the execution failed.
func execFlow(t *testing.T, def []byte, urls []string) ([]byte, string, error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "definition.json")
	if err := os.WriteFile(file, def, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), nodeTool(t, "node"), filepath.Join("testdata", "run-org-sweep.mjs"),
		file, orgResolveTask+","+orgSweepTask, flowFunctionARN, strings.Join(urls, ","))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	t.Logf("local execution: %s", time.Since(start).Round(time.Millisecond))
	return out, stderr.String(), err
}

// checkFlow runs the state machine twice against env and checks that the
// first execution rotated every due key of every reachable target exactly
// once (its output and kmslocal's per-account counters agree), reported the
// unreachable account's targets as failed naming the role, and that the
// second finds nothing due. It returns the first execution's output.
func checkFlow(t *testing.T, def []byte, env *harness.Env, due map[orgTarget]int) []flowTargetResult {
	t.Helper()
	return checkFlowOf(t, def, env, due, flowTargets()).Targets
}

// checkFlowOf is checkFlow for the targets the resolve state should find,
// in order: every due key of every target of another account than
// flowUnreachable rotated once, flowUnreachable's targets failed naming the
// role, no rotation in any other account of due; and a second execution
// rotates nothing. It returns the first execution's output.
func checkFlowOf(t *testing.T, def []byte, env *harness.Env, due map[orgTarget]int, targets []orgTarget) flowOutput {
	t.Helper()
	out, invocations := runFlowAt(t, def, flowUrls(env), targets)
	got := out.Targets
	links, unreachable := 0, 0
	for _, r := range got {
		tg := orgTarget{r.Account, r.Region}
		links += r.Links
		if tg.Account == flowUnreachable {
			unreachable++
			if r.Status != "failed" || r.Links != 0 || r.Rotated != 0 || !strings.Contains(r.Error.Cause, "assume role arn:aws:iam::"+flowUnreachable+":role/"+flowRole) {
				t.Errorf("%s/%s: %+v; want failed naming the role, nothing rotated", tg.Account, tg.Region, r)
			}
			continue
		}
		if r.Status != "swept" || r.Rotated != due[tg] || r.Failed != 0 || r.Deferred != 0 || r.RunID == "" {
			t.Errorf("%s/%s: %+v; want swept with %d rotated, none failed or deferred", tg.Account, tg.Region, r, due[tg])
		}
	}
	if want := 1 + links + unreachable; invocations != want { // the resolve state's, and one failed run per unreachable target
		t.Errorf("%d invocations, want %d (the targets run, the links, and one per unreachable target)", invocations, want)
	}

	st, err := env.KMS.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rotates := map[string]int{}
	for tg, n := range due {
		rotates[tg.Account] += 0 // every account of due is checked, untouched ones too
		if tg.Account != flowUnreachable && slices.Contains(targets, tg) {
			rotates[tg.Account] += n
		}
	}
	for a, want := range rotates {
		op := st.Accounts[a]["RotateKeyOnDemand"]
		if op.Calls != int64(want) || op.Errors != 0 {
			t.Errorf("account %s: %d RotateKeyOnDemand calls (%d errors), want %d and none", a, op.Calls, op.Errors, want)
		}
	}

	again, _ := runFlowAt(t, def, flowUrls(env), targets)
	for _, r := range again.Targets {
		if r.Rotated != 0 || (r.Account != flowUnreachable && r.Status != "swept") {
			t.Errorf("second execution, %s/%s: %+v; want swept, nothing rotated", r.Account, r.Region, r)
		}
	}
	st2, err := env.KMS.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if a, b := st.Op("RotateKeyOnDemand").Calls, st2.Op("RotateKeyOnDemand").Calls; a != b {
		t.Errorf("the second execution called RotateKeyOnDemand %d times", b-a)
	}
	return out
}

// TestOrgStateMachineSweepsEveryReachableTargetLocally runs the deployed
// configuration: the function with ROTATOR_CONTINUATION_MAX=0, 3 member
// accounts × 2 Regions, one account without the member role.
func TestOrgStateMachineSweepsEveryReachableTargetLocally(t *testing.T) {
	due := map[orgTarget]int{
		{flowMemberA, "us-east-1"}: 3, {flowMemberA, "eu-west-1"}: 2,
		{flowMemberB, "us-east-1"}: 2, {flowMemberB, "eu-west-1"}: 4,
		{flowUnreachable, "us-east-1"}: 2, {flowUnreachable, "eu-west-1"}: 2,
	}
	env := startFlowEnv(t, due, 0, map[string]string{settings.EnvContinuationMax: "0"})
	for _, r := range checkFlow(t, flowDefinition(t), env, due) {
		if r.Account != flowUnreachable && r.Links != 1 {
			t.Errorf("%s/%s took %d links, want 1", r.Account, r.Region, r.Links)
		}
	}
}

// TestOrgStateMachineContinuesADeferringTargetLocally makes one target
// defer keys: a 6 s function timeout leaves 4 s for keys after the 2 s
// deadline margin, the engine starts a rotation only while one call's
// timeout (1 s here) and the confirm window (0 here) still fit before that
// cutoff, and 5 rotations a second do not finish 24 due keys in the 3 s
// left. The state machine invokes the function again with the report's
// cursor until the target is swept. The function runs as deployed in
// organization mode, ROTATOR_CONTINUATION_MAX=0: it reports the cursor
// without starting a next link itself.
func TestOrgStateMachineContinuesADeferringTargetLocally(t *testing.T) {
	due := map[orgTarget]int{
		{flowMemberA, "us-east-1"}: 24, {flowMemberA, "eu-west-1"}: 2,
		{flowMemberB, "us-east-1"}: 2, {flowMemberB, "eu-west-1"}: 3,
		{flowUnreachable, "us-east-1"}: 2, {flowUnreachable, "eu-west-1"}: 2,
	}
	env := startFlowEnv(t, due, 6*time.Second, map[string]string{
		settings.EnvContinuationMax: "0",
		settings.EnvRotateRPS:       "5",
		settings.EnvCallTimeout:     "1s",
		settings.EnvConfirmWait:     "0s",
	})
	for _, r := range checkFlow(t, flowDefinition(t), env, due) {
		if tg := (orgTarget{r.Account, r.Region}); tg == (orgTarget{flowMemberA, "us-east-1"}) && r.Links < 2 {
			t.Errorf("%s/%s took %d link(s); its 24 due keys need continuations", r.Account, r.Region, r.Links)
		}
	}
}

// TestOrgStateMachineBoundsAndReportsEveryOutcome runs the definition
// against a scripted function (an HTTP server answering as the RIE does) to
// reach what the real function does not show quickly: a target that keeps
// deferring stops after orgMaxLinks invocations as incomplete, each
// continuation carrying the chain's run ID, the previous cursor and the next
// chain number; deferred keys without a cursor end incomplete at once; a
// function error is that target's failure with the error type and document.
// The resolve state's answer decides the targets, and its excluded list
// reaches the execution's output.
func TestOrgStateMachineBoundsAndReportsEveryOutcome(t *testing.T) {
	endless := orgTarget{flowMemberA, "us-east-1"}
	noCursor := orgTarget{flowMemberA, "eu-west-1"}
	denied := orgTarget{flowMemberB, "us-east-1"}
	suspended := flowExcluded{Account: "444444444444", From: "ou-ab12-cdefghij", Reason: "not-active", State: "SUSPENDED"}
	var mu sync.Mutex
	payloads := map[orgTarget][]map[string]any{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			Mode         string         `json:"mode"`
			Target       orgTarget      `json:"target"`
			Continuation map[string]any `json:"continuation"`
		}
		body, _ := io.ReadAll(r.Body)
		if resolveAnswer(t, w, body, flowTargets(), []flowExcluded{suspended}) {
			return
		}
		if err := json.Unmarshal(body, &p); err != nil || p.Mode != "scheduled" {
			t.Errorf("payload %s: want a scheduled request", body)
		}
		var raw map[string]any
		_ = json.Unmarshal(body, &raw)
		mu.Lock()
		payloads[p.Target] = append(payloads[p.Target], raw)
		n := len(payloads[p.Target])
		mu.Unlock()
		report := map[string]any{"runId": fmt.Sprintf("run-%s-%d", p.Target.Region, n), "mode": "scheduled", "account": p.Target.Account,
			"summary": map[string]any{"candidates": 2, "rotated": 1, "failed": 0, "skipped": 1, "deferred": 0}, "keys": []any{}}
		chain := 0
		if p.Continuation != nil {
			chain = int(p.Continuation["chain"].(float64))
		}
		switch p.Target {
		case endless:
			report["summary"].(map[string]any)["deferred"] = 5
			report["continuation"] = map[string]any{"runId": "run-us-east-1-1", "chain": chain, "deferred": 5,
				"next": fmt.Sprintf("arn:aws:kms:us-east-1:%s:key/%d", flowMemberA, n), "started": false, "notStarted": "disabled"}
		case noCursor:
			report["summary"].(map[string]any)["deferred"] = 3
			report["continuation"] = map[string]any{"runId": report["runId"], "chain": 0, "deferred": 3, "started": false, "notStarted": "disabled"}
		case denied:
			report = map[string]any{"errorType": "wrapError", "errorMessage": "scheduled run: assume role arn:aws:iam::" + flowMemberB + ":role/" + flowRole + ": AccessDenied"}
		}
		_ = json.NewEncoder(w).Encode(report)
	}))
	t.Cleanup(srv.Close)

	out, invocations := runFlowAt(t, flowDefinition(t), []string{srv.URL, srv.URL, srv.URL}, flowTargets())
	got := out.Targets
	if !reflect.DeepEqual(out.Excluded, []flowExcluded{suspended}) {
		t.Errorf("excluded %+v, want the resolve state's %+v", out.Excluded, suspended)
	}
	failed := flowTargetResult{Status: "failed"}
	failed.Error.Error = "wrapError" // the errorType
	want := map[orgTarget]flowTargetResult{
		endless:  {Status: "incomplete", Links: orgMaxLinks, Rotated: orgMaxLinks, Skipped: orgMaxLinks, Deferred: 5},
		noCursor: {Status: "incomplete", Links: 1, Rotated: 1, Skipped: 1, Deferred: 3},
		denied:   failed,
	}
	for _, r := range got {
		tg := orgTarget{r.Account, r.Region}
		w, ok := want[tg]
		if !ok {
			w = flowTargetResult{Status: "swept", Links: 1, Rotated: 1, Skipped: 1}
		}
		w.Account, w.Region, w.RunID, w.Error.Cause = r.Account, r.Region, r.RunID, r.Error.Cause
		if r != w {
			t.Errorf("%s/%s: %+v, want %+v", tg.Account, tg.Region, r, w)
		}
		if tg == denied && !strings.Contains(r.Error.Cause, `"errorMessage":"scheduled run: assume role arn:aws:iam::`+flowMemberB) {
			t.Errorf("cause %q: want the function's error document", r.Error.Cause)
		}
	}
	if want := 1 + orgMaxLinks + len(flowTargets()) - 1; invocations != want { // the targets run first
		t.Errorf("%d invocations, want %d", invocations, want)
	}
	chain := payloads[endless]
	for i, p := range chain {
		if i == 0 {
			if _, ok := p["continuation"]; ok {
				t.Errorf("first request %v carries a continuation", p)
			}
			continue
		}
		c, _ := p["continuation"].(map[string]any)
		after := fmt.Sprintf("arn:aws:kms:us-east-1:%s:key/%d", flowMemberA, i)
		if c["runId"] != "run-us-east-1-1" || c["after"] != after || c["chain"] != float64(i) {
			t.Errorf("request %d continuation %v; want runId run-us-east-1-1, after %s, chain %d", i+1, c, after, i)
		}
		if tg, _ := json.Marshal(p["target"]); string(tg) != `{"account":"`+flowMemberA+`","region":"us-east-1"}` {
			t.Errorf("request %d target %s", i+1, tg)
		}
	}
}

// resolveAnswer answers a scripted function's targets request (mode
// targets, the orgTargets and orgRegions of flowDefinition) with targets
// and excluded in the function's answer shape, and reports whether body was
// one.
func resolveAnswer(t *testing.T, w http.ResponseWriter, body []byte, targets []orgTarget, excluded []flowExcluded) bool {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil || p["mode"] != orgTargetsMode {
		return false
	}
	if want := orgResolvePayload(flowAccounts, flowRegions); string(mustJSON(p)) != string(mustJSON(want)) {
		t.Errorf("targets request %s, want %s", body, mustJSON(want))
	}
	accounts := []map[string]string{}
	for _, tg := range targets {
		if len(accounts) == 0 || accounts[len(accounts)-1]["account"] != tg.Account {
			accounts = append(accounts, map[string]string{"account": tg.Account, "from": tg.Account})
		}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"runId": "run-targets", "mode": orgTargetsMode, "account": "012345678912",
		"targets": targets, "accounts": accounts, "excluded": excluded,
		"summary": map[string]int{"accounts": len(accounts), "targets": len(targets), "excluded": len(excluded)},
	})
	return true
}

// TestOrgStateMachineFailsWhenTargetsCannotBeResolved: the resolve state
// has no Catch, so a function error there (an OU not found, no permission
// to list, nothing to sweep) fails the execution before any target is
// swept, which the org-sweep-failed alarm reports.
func TestOrgStateMachineFailsWhenTargetsCannotBeResolved(t *testing.T) {
	var mu sync.Mutex
	var modes []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			Mode string `json:"mode"`
		}
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &p)
		mu.Lock()
		modes = append(modes, p.Mode)
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"errorType": "wrapError",
			"errorMessage": "targets run: list the accounts of ou-ab12-cdefghij: OrganizationalUnitNotFoundException"})
	}))
	t.Cleanup(srv.Close)
	out, stderr, err := execFlow(t, flowDefinition(t), []string{srv.URL})
	if err == nil {
		t.Fatalf("the execution succeeded: %s", out)
	}
	if !strings.Contains(stderr, "execution failed") || !strings.Contains(stderr, "OrganizationalUnitNotFoundException") {
		t.Errorf("runner: %v\n%s; want the execution failed with the function's error", err, stderr)
	}
	// A function error is not retried: only Lambda's own errors are.
	if !reflect.DeepEqual(modes, []string{orgTargetsMode}) {
		t.Errorf("invocations %v, want the targets run alone", modes)
	}
}

// orgResultBytes is orgDefinition's bound on a result of the given status.
func orgResultBytes(status string) int {
	if status == "failed" {
		return orgFailedResultBytes
	}
	return orgSweptResultBytes
}

// The organization of TestOrgStateMachineResolvesOUsLocally.
const (
	flowRoot       = "r-ab12"
	flowOU         = "ou-ab12-prod0001"
	flowNestedOU   = "ou-ab12-team0001" // in flowOU
	flowNested     = "444444444444"     // ACTIVE, in flowNestedOU
	flowSuspended  = "555555555555"     // SUSPENDED, in flowNestedOU
	flowManagement = "999999999999"     // the management account, in flowOU
)

// TestOrgStateMachineResolvesOUsLocally runs the state machine with OU
// targets resolved at run time by the built function against kmslocal's
// Organizations API, the central account being a delegated administrator:
// orgTargets = one account of the root by its ID, and an OU holding a
// nested OU. The OU's ACTIVE accounts are swept — flowMemberB, flowNested
// in the nested OU, and flowUnreachable, which has no member role and
// fails naming it — while the suspended account and the management account
// (both in the OU, both with keys due and a member role) are excluded and
// untouched. Every due key of a reachable target is rotated exactly once:
// the execution's output, kmslocal's per-account counters and each key's
// rotation history (read through the member role) agree; a second
// execution rotates nothing.
func TestOrgStateMachineResolvesOUsLocally(t *testing.T) {
	orgTargets := []string{flowMemberA, flowOU}
	org := &kmsemu.Organization{
		ID: "o-a1b2c3d4e5", ManagementAccount: flowManagement, DelegatedAdministrators: []string{harness.Account}, RootID: flowRoot,
		Units: []kmsemu.OrganizationUnit{{ID: flowOU, Name: "prod", Parent: flowRoot}, {ID: flowNestedOU, Name: "team", Parent: flowOU}},
		Accounts: []kmsemu.OrganizationAccount{
			{ID: harness.Account}, {ID: flowMemberA},
			{ID: flowMemberB, Parent: flowOU}, {ID: flowUnreachable, Parent: flowOU}, {ID: flowManagement, Parent: flowOU},
			{ID: flowNested, Parent: flowNestedOU}, {ID: flowSuspended, Parent: flowNestedOU, State: "SUSPENDED"},
		},
	}
	due := map[orgTarget]int{}
	for i, a := range []string{flowMemberA, flowMemberB, flowUnreachable, flowNested, flowSuspended, flowManagement} {
		for j, r := range flowRegions {
			due[orgTarget{a, r}] = 1 + (i+j)%3
		}
	}
	// Explicit roles: every account but flowUnreachable, the excluded ones
	// included, so that only the exclusion keeps them unswept.
	withRole := []string{flowMemberA, flowMemberB, flowNested, flowSuspended, flowManagement}
	env := startFlowEnvWith(t, due, withRole, org, 0, map[string]string{settings.EnvContinuationMax: "0"})
	def := flowDefinitionFor(t, orgTargets)

	out := checkFlowOf(t, def, env, due, crossTargets([]string{flowMemberA, flowMemberB, flowUnreachable, flowNested}, flowRegions))
	excluded := slices.Clone(out.Excluded)
	slices.SortFunc(excluded, func(a, b flowExcluded) int { return strings.Compare(a.Account, b.Account) })
	wantExcluded := []flowExcluded{
		{Account: flowSuspended, From: flowOU, Reason: "not-active", State: "SUSPENDED"},
		{Account: flowManagement, From: flowOU, Reason: "management-account"},
	}
	if !reflect.DeepEqual(excluded, wantExcluded) {
		t.Errorf("excluded %+v, want %+v", out.Excluded, wantExcluded)
	}

	for _, a := range withRole {
		swept := a != flowSuspended && a != flowManagement
		for _, r := range flowRegions {
			keys := memberRotations(t, env, a, r)
			old := 0
			for arn, k := range keys {
				want := 0
				if k.due {
					old++
					if swept {
						want = 1
					}
				}
				if k.onDemand != want {
					t.Errorf("%s (due %t): %d on-demand rotations, want %d", arn, k.due, k.onDemand, want)
				}
			}
			if old != due[orgTarget{a, r}] {
				t.Errorf("%s/%s: %d due keys in kmslocal, want %d", a, r, old, due[orgTarget{a, r}])
			}
		}
	}
}

// memberKey is one key's on-demand rotations, read in its account.
type memberKey struct {
	due      bool // created 200 days ago (flowFleet), not 5
	onDemand int
}

// memberRotations reads every key of account in region through its member
// role (kmslocal's STS), keyed by ARN.
func memberRotations(t *testing.T, env *harness.Env, account, region string) map[string]memberKey {
	t.Helper()
	cfg := env.KMS.Config(region)
	cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), flowRoleARN(account)))
	client := kms.NewFromConfig(cfg)
	out := map[string]memberKey{}
	keys := kms.NewListKeysPaginator(client, &kms.ListKeysInput{})
	for keys.HasMorePages() {
		page, err := keys.NextPage(t.Context())
		if err != nil {
			t.Fatalf("ListKeys in %s/%s: %v", account, region, err)
		}
		for _, k := range page.Keys {
			d, err := client.DescribeKey(t.Context(), &kms.DescribeKeyInput{KeyId: k.KeyId})
			if err != nil {
				t.Fatal(err)
			}
			mk := memberKey{due: time.Since(aws.ToTime(d.KeyMetadata.CreationDate)) > 100*24*time.Hour}
			rotations := kms.NewListKeyRotationsPaginator(client, &kms.ListKeyRotationsInput{KeyId: k.KeyId})
			for rotations.HasMorePages() {
				rp, err := rotations.NextPage(t.Context())
				if err != nil {
					t.Fatalf("ListKeyRotations %s: %v", aws.ToString(k.KeyArn), err)
				}
				for _, r := range rp.Rotations {
					if r.RotationType == kmstypes.RotationTypeOnDemand {
						mk.onDemand++
					}
				}
			}
			out[aws.ToString(k.KeyArn)] = mk
		}
	}
	if len(out) == 0 {
		t.Fatalf("no keys in %s/%s", account, region)
	}
	return out
}
