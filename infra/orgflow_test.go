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
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/harness"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/moto"
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

var flowSynths sync.Map // flowShape → *flowSynth

// flowShape is what a synthesis of the stand-in stack depends on.
type flowShape struct {
	orgTargets, regions string // comma-separated
	maxConcurrency      int
}

// flowTemplate synthesizes a stack holding only the state machine for
// flowAccounts and a stand-in function.
func flowTemplate(t *testing.T) map[string]any {
	t.Helper()
	return flowSynthFor(t, flowAccounts, flowRegions, 3).template
}

// flowSynthFor synthesizes, once per orgTargets, Regions and
// MaxConcurrency, a stack holding only the
// state machine and a stand-in function (inline code: synthesis does not
// build ./lambda, and provided.al2023 takes no inline code).
func flowSynthFor(t *testing.T, orgTargets, regions []string, maxConcurrency int) *flowSynth {
	t.Helper()
	v, _ := flowSynths.LoadOrStore(flowShape{strings.Join(orgTargets, ","), strings.Join(regions, ","), maxConcurrency}, &flowSynth{})
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
		newOrgStateMachine(stack, "OrgSweep", &orgStateMachineProps{Function: fn, Bucket: newOrgBucket(stack), OrgTargets: orgTargets, Regions: regions, MaxConcurrency: maxConcurrency})
		awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
		fs.template = *assertions.Template_FromStack(stack, nil).ToJSON()
		for _, kind := range []string{"error", "warning"} {
			find := assertions.Annotations_FromStack(stack).FindError
			if kind == "warning" {
				find = assertions.Annotations_FromStack(stack).FindWarning
			}
			for _, f := range *find(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))) {
				b, _ := json.Marshal(f)
				if !strings.Contains(string(b), `"/OrgFlow/OrgSweep`) && !strings.Contains(string(b), `"/OrgFlow/OrgSweepBucket`) {
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
func flowDefinition(t *testing.T, bucket string) []byte {
	t.Helper()
	return flowDefinitionFor(t, flowAccounts, bucket)
}

// flowDefinitionFor is the template's DefinitionString with its
// CloudFormation parts resolved for a local run: the function's ARN becomes
// flowFunctionARN, the organization sweep's bucket bucket, AWS::Partition
// "aws". Any other intrinsic fails the test.
func flowDefinitionFor(t *testing.T, orgTargets []string, bucket string) []byte {
	t.Helper()
	return flowDefinitionWith(t, orgTargets, flowRegions, 3, bucket)
}

// flowDefinitionWith is flowDefinitionFor with the Regions and the Map's
// MaxConcurrency given.
func flowDefinitionWith(t *testing.T, orgTargets, regions []string, maxConcurrency int, bucket string) []byte {
	t.Helper()
	var def any
	for _, r := range flowSynthFor(t, orgTargets, regions, maxConcurrency).template["Resources"].(map[string]any) {
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
			} else if ref, _ := p["Ref"].(string); strings.HasPrefix(ref, "OrgSweepBucket") {
				b.WriteString(bucket)
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
	def := flowDefinition(t, "kms-rotator-org-sweep")
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
	for _, f := range flowSynthFor(t, flowAccounts, flowRegions, 3).nag {
		t.Error(f)
	}
}

func TestOrgStateMachineResource(t *testing.T) {
	tpl := flowTemplate(t)
	var sm map[string]any
	policies := map[string]map[string]any{}
	var bucketID string
	for id, r := range tpl["Resources"].(map[string]any) {
		res := r.(map[string]any)
		switch res["Type"] {
		case "AWS::StepFunctions::StateMachine":
			sm = res["Properties"].(map[string]any)
		case "AWS::IAM::Policy":
			policies[id] = res["Properties"].(map[string]any)
		case "AWS::S3::Bucket":
			bucketID = id
		}
	}
	if sm["StateMachineType"] != "STANDARD" || sm["TracingConfiguration"].(map[string]any)["Enabled"] != true {
		t.Errorf("state machine %v: want STANDARD with tracing", sm)
	}
	if lc := sm["LoggingConfiguration"].(map[string]any); lc["Level"] != "ALL" || lc["IncludeExecutionData"] != true {
		t.Errorf("logging %v: want ALL with execution data", lc)
	}
	t.Run("the role invokes the function and runs the Distributed Map in the bucket, nothing else", func(t *testing.T) {
		var statements []string
		for id, p := range policies {
			for _, st := range p["PolicyDocument"].(map[string]any)["Statement"].([]any) {
				st := st.(map[string]any)
				if strings.Contains(fmt.Sprint(st["Action"]), "logs:") || strings.Contains(fmt.Sprint(st["Action"]), "xray:") {
					continue // log delivery and tracing, CDK's own
				}
				b, _ := json.Marshal(map[string]any{"Action": st["Action"], "Resource": st["Resource"]})
				statements = append(statements, strings.TrimRight(id, "0123456789ABCDEF")+" "+string(b))
			}
		}
		slices.Sort(statements)
		bucketARN := func(key string) string {
			return `{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":s3:::",{"Ref":"` + bucketID + `"},"/` + key + `"]]}`
		}
		want := []string{
			`OrgSweepDistributedMapPolicy {"Action":"s3:GetObject","Resource":` + bucketARN("runs/*/targets.json") + `}`,
			`OrgSweepDistributedMapPolicy {"Action":"states:StartExecution","Resource":{"Ref":"OrgSweep`,
			`OrgSweepDistributedMapPolicy {"Action":["s3:PutObject","s3:GetObject","s3:ListMultipartUploadParts","s3:AbortMultipartUpload"],"Resource":` + bucketARN("runs/*/results/*") + `}`,
			`OrgSweepDistributedMapPolicy {"Action":["states:DescribeExecution","states:StopExecution"],"Resource":{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":states:",{"Ref":"AWS::Region"},":",{"Ref":"AWS::AccountId"},":execution:",{"Fn::GetAtt":["OrgSweep`,
			`OrgSweepRoleDefaultPolicy {"Action":"lambda:InvokeFunction","Resource":{"Fn::GetAtt":["Function`,
		}
		if len(statements) != len(want) {
			t.Fatalf("statements:\n%s\nwant %d", strings.Join(statements, "\n"), len(want))
		}
		for i, w := range want {
			if !strings.HasPrefix(statements[i], w) {
				t.Errorf("statement %d:\n got %s\nwant %s…", i, statements[i], w)
			}
		}
		if !strings.HasSuffix(statements[1], `"}}`) || !strings.HasSuffix(statements[3], `","Name"]},":*"]]}}`) || !strings.HasSuffix(statements[4], `","Arn"]}}`) {
			t.Errorf("the state machine's own ARN, its executions and the function's unqualified ARN: %s", strings.Join(statements, "\n"))
		}
	})
	t.Run("the state machine waits for its default policy only, not for the policy that names it", func(t *testing.T) {
		for _, r := range tpl["Resources"].(map[string]any) {
			if r := r.(map[string]any); r["Type"] == "AWS::StepFunctions::StateMachine" {
				if dep := fmt.Sprint(r["DependsOn"]); !strings.Contains(dep, "OrgSweepRoleDefaultPolicy") || strings.Contains(dep, "DistributedMap") {
					t.Errorf("DependsOn %s", dep)
				}
			}
		}
	})

	var def map[string]any
	if err := json.Unmarshal(flowDefinition(t, "org-bucket"), &def); err != nil {
		t.Fatal(err)
	}
	states := def["States"].(map[string]any)
	if def["StartAt"] != orgResolveTask || !reflect.DeepEqual(slices.Sorted(maps.Keys(states)), []string{orgResolveTask, orgSummarizeTask, orgMapState}) {
		t.Fatalf("StartAt %v, states %v: want %q, the Map, %q", def["StartAt"], slices.Sorted(maps.Keys(states)), orgResolveTask, orgSummarizeTask)
	}
	m := states[orgMapState].(map[string]any)
	proc := m["ItemProcessor"].(map[string]any)
	retry := proc["States"].(map[string]any)[orgSweepTask].(map[string]any)["Retry"]
	t.Run("the first state resolves orgTargets into the bucket and fails the execution when it fails", func(t *testing.T) {
		got := states[orgResolveTask].(map[string]any)
		want := map[string]any{
			"Type":     "Task",
			"Comment":  got["Comment"],
			"Resource": "arn:aws:states:::lambda:invoke",
			"Parameters": map[string]any{
				"FunctionName": flowFunctionARN,
				"Payload": map[string]any{"mode": "targets", "orgTargets": []any{flowMemberA, flowMemberB, flowUnreachable}, "orgRegions": []any{"us-east-1", "eu-west-1"},
					"execution.$": "$$.Execution.Name"},
			},
			"ResultSelector": map[string]any{"items.$": "$.Payload.items", "resolved.$": "$.Payload.summary", "excluded.$": "$.Payload.excluded",
				"results.$": "States.Format('runs/{}/results', $$.Execution.Name)"},
			"TimeoutSeconds": float64(orgTaskTimeout),
			"Retry":          retry,
			"Next":           orgMapState,
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("\n got %s\nwant %s", mustJSON(got), mustJSON(want))
		}
		if got["Retry"] == nil {
			t.Error("no Lambda retriers")
		}
	})
	t.Run("the Map is distributed: items from the bucket, Standard children, every failure tolerated, results to the bucket", func(t *testing.T) {
		want := map[string]any{
			"ProcessorConfig": map[string]any{"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
			"MaxConcurrency":  3.0, "ToleratedFailurePercentage": 100.0, "Label": orgMapLabel,
			"ItemReader": map[string]any{"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": map[string]any{"InputType": "JSON"},
				"Parameters": map[string]any{"Bucket": "org-bucket", "Key.$": "$.items.key"}},
			"ResultWriter": map[string]any{"Resource": "arn:aws:states:::s3:putObject", "Parameters": map[string]any{"Bucket": "org-bucket", "Prefix.$": "$.results"}},
			"ResultPath":   "$.sweep", "Next": orgSummarizeTask,
		}
		got := map[string]any{"ProcessorConfig": proc["ProcessorConfig"]}
		for k := range want {
			if k != "ProcessorConfig" {
				got[k] = m[k]
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("\n got %s\nwant %s", mustJSON(got), mustJSON(want))
		}
		for _, k := range []string{"ItemsPath", "Catch", "Retry", "ResultSelector"} {
			if _, ok := m[k]; ok {
				t.Errorf("the Map has %s", k)
			}
		}
	})
	t.Run("the last state summarizes with the function and fails the execution when it fails", func(t *testing.T) {
		got := states[orgSummarizeTask].(map[string]any)
		want := map[string]any{
			"Type":     "Task",
			"Comment":  got["Comment"],
			"Resource": "arn:aws:states:::lambda:invoke",
			"Parameters": map[string]any{"FunctionName": flowFunctionARN,
				"Payload": map[string]any{"mode": "org-summary", "execution.$": "$$.Execution.Name", "manifest.$": "$.sweep.ResultWriterDetails.Key"}},
			"ResultSelector": map[string]any{"summary.$": "$.Payload.summary", "failedTargets.$": "$.Payload.failedTargets", "notSwept.$": "$.Payload.notSwept",
				"runId.$": "$.Payload.runId"},
			"ResultPath":     "$.summary",
			"TimeoutSeconds": float64(orgTaskTimeout),
			"Retry":          retry,
			"End":            true,
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("\n got %s\nwant %s", mustJSON(got), mustJSON(want))
		}
	})
}

// flowTargetResult is one target's result: a child execution's output.
type flowTargetResult struct {
	Account  string `json:"account"`
	Region   string `json:"region"`
	Status   string `json:"status"`
	Links    int    `json:"links"`
	Rotated  int    `json:"rotated"`
	Failed   int    `json:"failed"`
	Skipped  int    `json:"skipped"`
	Overdue  int    `json:"overdue"`
	Deferred int    `json:"deferred"`
	RunID    string `json:"runId"`
	NotSwept string `json:"notSwept"`
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

// flowEnv is a running local stack for the state machine: kmslocal, the
// functions, and the organization sweep's bucket in moto's S3.
type flowEnv struct {
	*harness.Env
	Bucket string
	S3     *moto.Server
}

// startFlowEnv starts kmslocal with the fleet, member roles in flowMemberA
// and flowMemberB only, and three functions (the Map's MaxConcurrency) in
// organization mode with fnEnv over ROTATOR_MEMBER_ROLE_NAME and the
// organization sweep's bucket.
func startFlowEnv(t *testing.T, due map[orgTarget]int, timeout time.Duration, fnEnv map[string]string) flowEnv {
	t.Helper()
	return startFlowEnvWith(t, due, []string{flowMemberA, flowMemberB}, nil, timeout, 3, fnEnv)
}

// startFlowEnvWith is startFlowEnv with the accounts that have the member
// role (nil: kmslocal's default, every ACTIVE account of the organization
// but its management account), kmslocal's organization (nil: none) and the
// number of functions given.
func startFlowEnvWith(t *testing.T, due map[orgTarget]int, roleAccounts []string, org *kmsemu.Organization, timeout time.Duration, functions int, fnEnv map[string]string) flowEnv {
	t.Helper()
	bucket, srv := flowBucket(t)
	args := []string{"-rotation-delay=0", "-quiet"}
	if roleAccounts != nil {
		var roles []string
		for _, a := range roleAccounts {
			roles = append(roles, flowRoleARN(a))
		}
		args = append(args, "-roles", strings.Join(roles, ","))
	}
	env := map[string]string{settings.EnvMemberRoleName: flowRole, settings.EnvOrgBucket: bucket, "AWS_ENDPOINT_URL_S3": srv.URL}
	maps.Copy(env, fnEnv)
	return flowEnv{Env: harness.StartTB(t, harness.Options{
		KMSLocal:  harness.KMSLocalOptions{FleetJSON: flowFleet(due), Organization: org, Args: args},
		Function:  harness.FunctionOptions{Timeout: timeout, Env: env},
		Functions: functions,
	}), Bucket: bucket, S3: srv}
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

// flowUrls are the invoke URLs of env's functions.
func flowUrls(env *harness.Env) []string {
	var urls []string
	for _, f := range env.Functions {
		urls = append(urls, f.URL)
	}
	return urls
}

// checkFlow runs the state machine twice against env and checks that the
// first execution rotated every due key of every reachable target exactly
// once (its results and kmslocal's per-account counters agree), reported
// the unreachable account's targets as failed naming the role, and that
// the second finds nothing due. It returns the first execution's results.
func checkFlow(t *testing.T, env flowEnv, due map[orgTarget]int) []flowTargetResult {
	t.Helper()
	return checkFlowOf(t, flowDefinition(t, env.Bucket), env, due, flowTargets()).Results
}

// checkFlowOf is checkFlow for the targets the resolve state should find,
// in order: every due key of every target of another account than
// flowUnreachable rotated once, flowUnreachable's targets failed naming the
// role, no rotation in any other account of due; the org-summary answer and
// its EMF record add up the results; and a second execution rotates
// nothing. It returns the first execution.
func checkFlowOf(t *testing.T, def []byte, env flowEnv, due map[orgTarget]int, targets []orgTarget) flowRun {
	t.Helper()
	d := flowDriver{Definition: def, URLs: flowUrls(env.Env), S3: env.S3}
	run := runFlow(t, d, targets)
	links, unreachable := 0, 0
	for _, r := range run.Results {
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
	// The resolve state's and the summary's, the links, one failed run per
	// unreachable target.
	if want := 2 + links + unreachable; run.Invocations != want {
		t.Errorf("%d invocations, want %d (the targets run, the links, one per unreachable target, the summary)", run.Invocations, want)
	}
	if run.MaxChildren > 3 {
		t.Errorf("%d child executions ran at once, over MaxConcurrency 3", run.MaxChildren)
	}
	checkSummary(t, env, run, 1)

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

	again := runFlow(t, d, targets)
	for _, r := range again.Results {
		if r.Rotated != 0 || (r.Account != flowUnreachable && r.Status != "swept") {
			t.Errorf("second execution, %s/%s: %+v; want swept, nothing rotated", r.Account, r.Region, r)
		}
	}
	checkSummary(t, env, again, 2)
	st2, err := env.KMS.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if a, b := st.Op("RotateKeyOnDemand").Calls, st2.Op("RotateKeyOnDemand").Calls; a != b {
		t.Errorf("the second execution called RotateKeyOnDemand %d times", b-a)
	}
	return run
}

// checkSummary checks the org-summary answer of run against its results,
// and that the functions of env have written executions org-summary EMF
// records and result events so far, the last with the same totals (and
// the event with the failed accounts).
func checkSummary(t *testing.T, env flowEnv, run flowRun, executions int) {
	t.Helper()
	want := tally(run.Results)
	want.Excluded = run.Output.Resolved.Excluded
	if got := run.Output.Summary.Summary; got != want {
		t.Errorf("org-summary %+v, want %+v (the results added up)", got, want)
	}
	var failed []flowFailedTarget
	var notSwept []string
	for _, r := range run.Results {
		switch r.Status {
		case "swept", "incomplete":
		case "excluded":
			notSwept = append(notSwept, r.Account+"/"+r.Region+" "+r.NotSwept)
		default:
			failed = append(failed, flowFailedTarget{Account: r.Account, Region: r.Region})
		}
	}
	var gotNotSwept []string
	for _, n := range run.Output.Summary.NotSwept {
		gotNotSwept = append(gotNotSwept, n.Account+"/"+n.Region+" "+n.Reason)
	}
	if !slices.Equal(gotNotSwept, notSwept[:min(len(notSwept), 100)]) {
		t.Errorf("not swept %v, want %v", gotNotSwept, notSwept[:min(len(notSwept), 100)])
	}
	got := run.Output.Summary.FailedTargets
	if len(got) != min(len(failed), 100) {
		t.Errorf("%d failed targets named, want %d", len(got), min(len(failed), 100))
	}
	for i := range got {
		if got[i].Account != failed[i].Account || got[i].Region != failed[i].Region || got[i].Error == "" {
			t.Errorf("failed target %d: %+v, want %s/%s with its error", i, got[i], failed[i].Account, failed[i].Region)
			break
		}
	}
	recs := orgSummaryEMF(t, env.Env)
	if len(recs) != executions {
		t.Fatalf("%d org-summary EMF records after %d executions", len(recs), executions)
	}
	checkSummaryEMF(t, recs[len(recs)-1], want)

	// One result event per execution, naming the failed accounts.
	evs, err := env.KMS.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	type resultEvent struct {
		Mode           string      `json:"mode"`
		Execution      string      `json:"execution"`
		Summary        flowSummary `json:"summary"`
		FailedAccounts []string    `json:"failedAccounts"`
	}
	var details []resultEvent
	for _, ev := range evs {
		var d resultEvent
		if err := json.Unmarshal([]byte(ev.Detail), &d); err == nil && d.Mode == orgSummaryMode {
			details = append(details, d)
		}
	}
	if len(details) != executions {
		t.Fatalf("%d org-summary result events after %d executions", len(details), executions)
	}
	last := details[len(details)-1]
	wantAccounts := []string{}
	for _, f := range failed {
		if !slices.Contains(wantAccounts, f.Account) {
			wantAccounts = append(wantAccounts, f.Account)
		}
	}
	slices.Sort(wantAccounts)
	if last.Execution != run.Execution || last.Summary != want || !slices.Equal(last.FailedAccounts, wantAccounts) {
		t.Errorf("result event %+v; want execution %s, summary %+v, failed accounts %v", last, run.Execution, want, wantAccounts)
	}
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
	for _, r := range checkFlow(t, env, due) {
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
// left. The child execution invokes the function again with the report's
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
	for _, r := range checkFlow(t, env, due) {
		if tg := (orgTarget{r.Account, r.Region}); tg == (orgTarget{flowMemberA, "us-east-1"}) && r.Links < 2 {
			t.Errorf("%s/%s took %d link(s); its 24 due keys need continuations", r.Account, r.Region, r.Links)
		}
	}
}

// scripted is a stand-in for the function, an HTTP server answering as the
// RIE does: a targets request is answered as the function does with the
// organization sweep's bucket (the targets written to
// runs/<execution>/targets.json), an org-summary request with an empty
// summary (recorded for the test), and every scheduled request by sweep.
type scripted struct {
	t        *testing.T
	bucket   string
	s3       *moto.Server
	targets  []orgTarget
	excluded []flowExcluded
	sweep    func(p map[string]any) any
	mu       sync.Mutex
	modes    []string
	summary  []map[string]any
}

func (sc *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := sc.t
	body, _ := io.ReadAll(r.Body)
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		t.Errorf("payload %s: %v", body, err)
	}
	mode, _ := p["mode"].(string)
	sc.mu.Lock()
	sc.modes = append(sc.modes, mode)
	sc.mu.Unlock()
	switch mode {
	case orgTargetsMode:
		execution, _ := p["execution"].(string)
		want := map[string]any{"mode": orgTargetsMode, "orgTargets": flowAccounts, "orgRegions": flowRegions, "execution": execution}
		if execution == "" || string(mustJSON(p)) != string(mustJSON(want)) {
			t.Errorf("targets request %s, want %s with the execution's name", body, mustJSON(want))
		}
		key := orgRunsPrefix + execution + "/targets.json"
		if _, err := sc.s3.S3().PutObject(r.Context(), &s3.PutObjectInput{Bucket: aws.String(sc.bucket), Key: aws.String(key), Body: bytes.NewReader(mustJSON(sc.targets))}); err != nil {
			t.Errorf("put %s: %v", key, err)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"runId": "run-targets", "mode": orgTargetsMode, "account": "012345678912",
			"items":      map[string]string{"bucket": sc.bucket, "key": key},
			"resolution": map[string]string{"bucket": sc.bucket, "key": orgRunsPrefix + execution + "/resolution.json"},
			"excluded":   sc.excluded,
			"summary":    map[string]int{"accounts": len(sc.targets) / len(flowRegions), "targets": len(sc.targets), "excluded": len(sc.excluded)},
		})
	case orgSummaryMode:
		sc.mu.Lock()
		sc.summary = append(sc.summary, p)
		sc.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"runId": "run-summary", "mode": orgSummaryMode, "account": "012345678912", "execution": p["execution"],
			"summary": map[string]int{}, "failedTargets": []any{}, "notSwept": []any{}})
	default:
		_ = json.NewEncoder(w).Encode(sc.sweep(p))
	}
}

// startScripted serves sc and returns its URL three times (the local
// run's pool of "functions").
func startScripted(t *testing.T, sc *scripted) []string {
	t.Helper()
	sc.t = t
	sc.bucket, sc.s3 = flowBucket(t)
	srv := httptest.NewServer(sc)
	t.Cleanup(srv.Close)
	return []string{srv.URL, srv.URL, srv.URL}
}

// TestOrgStateMachineBoundsAndReportsEveryOutcome runs the definition
// against a scripted function to reach what the real function does not
// show quickly: a target that keeps deferring stops after orgMaxLinks
// invocations as incomplete, each continuation carrying the chain's run ID,
// the previous cursor and the next chain number; deferred keys without a
// cursor end incomplete at once; a function error is that target's failure
// with the error type and document; a report the child cannot read (no
// summary) fails that child execution, which the Map tolerates and the
// ResultWriter files under FAILED. The resolve state's answer decides the
// targets, its excluded list reaches the execution's output, and the
// org-summary request names the execution and the ResultWriter's manifest.
func TestOrgStateMachineBoundsAndReportsEveryOutcome(t *testing.T) {
	endless := orgTarget{flowMemberA, "us-east-1"}
	noCursor := orgTarget{flowMemberA, "eu-west-1"}
	denied := orgTarget{flowMemberB, "us-east-1"}
	garbled := orgTarget{flowMemberB, "eu-west-1"}
	disabled := orgTarget{flowUnreachable, "eu-west-1"}
	suspended := flowExcluded{Account: "444444444444", From: "ou-ab12-cdefghij", Reason: "not-active", State: "SUSPENDED"}
	var mu sync.Mutex
	payloads := map[orgTarget][]map[string]any{}
	sc := &scripted{targets: flowTargets(), excluded: []flowExcluded{suspended}, sweep: func(raw map[string]any) any {
		var p struct {
			Mode         string         `json:"mode"`
			Target       orgTarget      `json:"target"`
			Continuation map[string]any `json:"continuation"`
		}
		_ = json.Unmarshal(mustJSON(raw), &p)
		if p.Mode != "scheduled" {
			t.Errorf("payload %s: want a scheduled request", mustJSON(raw))
		}
		mu.Lock()
		payloads[p.Target] = append(payloads[p.Target], raw)
		n := len(payloads[p.Target])
		mu.Unlock()
		report := map[string]any{"runId": fmt.Sprintf("run-%s-%d", p.Target.Region, n), "mode": "scheduled", "account": p.Target.Account,
			"summary": map[string]any{"candidates": 2, "rotated": 1, "failed": 0, "skipped": 1, "deferred": 0, "overdue": 1}, "keys": []any{}}
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
			return map[string]any{"errorType": "wrapError", "errorMessage": "scheduled run: assume role arn:aws:iam::" + flowMemberB + ":role/" + flowRole + ": AccessDenied"}
		case garbled:
			delete(report, "summary")
		case disabled:
			return map[string]any{"runId": report["runId"], "mode": "scheduled", "account": p.Target.Account, "region": p.Target.Region,
				"notSwept": "region-not-enabled", "error": "assume role: RegionDisabledException",
				"summary": map[string]any{"candidates": 0, "rotated": 0, "failed": 0, "skipped": 0, "deferred": 0, "overdue": 0}}
		}
		return report
	}}
	urls := startScripted(t, sc)
	run := runFlow(t, flowDriver{Definition: flowDefinition(t, sc.bucket), URLs: urls, S3: sc.s3}, flowTargets())
	if !reflect.DeepEqual(run.Output.Excluded, []flowExcluded{suspended}) {
		t.Errorf("excluded %+v, want the resolve state's %+v", run.Output.Excluded, suspended)
	}
	failed := flowTargetResult{Status: "failed"}
	failed.Error.Error = "wrapError" // the errorType
	want := map[orgTarget]flowTargetResult{
		endless:  {Status: "incomplete", Links: orgMaxLinks, Rotated: orgMaxLinks, Skipped: orgMaxLinks, Overdue: orgMaxLinks, Deferred: 5},
		noCursor: {Status: "incomplete", Links: 1, Rotated: 1, Skipped: 1, Overdue: 1, Deferred: 3},
		denied:   failed,
		garbled:  {Status: "child-failed"},
		disabled: {Status: "excluded", Links: 1, NotSwept: "region-not-enabled"},
	}
	for _, r := range run.Results {
		tg := orgTarget{r.Account, r.Region}
		w, ok := want[tg]
		if !ok {
			w = flowTargetResult{Status: "swept", Links: 1, Rotated: 1, Skipped: 1, Overdue: 1}
		}
		w.Account, w.Region, w.RunID, w.Error.Cause = r.Account, r.Region, r.RunID, r.Error.Cause
		if tg == garbled {
			w.Error.Error = r.Error.Error
		}
		if r != w {
			t.Errorf("%s/%s: %+v, want %+v", tg.Account, tg.Region, r, w)
		}
		if tg == denied && !strings.Contains(r.Error.Cause, `"errorMessage":"scheduled run: assume role arn:aws:iam::`+flowMemberB) {
			t.Errorf("cause %q: want the function's error document", r.Error.Cause)
		}
		if tg == garbled && (r.Error.Error != "States.Runtime" || !strings.Contains(r.Error.Cause, "summary")) {
			t.Errorf("the garbled report's child failed with %s: %s; want States.Runtime naming the missing summary", r.Error.Error, r.Error.Cause)
		}
	}
	if len(run.Records["FAILED"]) != 1 || len(run.Records["SUCCEEDED"]) != len(flowTargets())-1 || len(run.Manifest.ResultFiles["PENDING"]) != 0 {
		t.Errorf("%d failed, %d succeeded child executions, pending files %v; want 1, %d, none", len(run.Records["FAILED"]), len(run.Records["SUCCEEDED"]),
			run.Manifest.ResultFiles["PENDING"], len(flowTargets())-1)
	}
	for _, c := range append(slices.Clone(run.Records["SUCCEEDED"]), run.Records["FAILED"]...) {
		if !strings.HasPrefix(c.ExecutionArn, "arn:aws:states:us-east-1:012345678912:execution:kms-rotator-org-sweep/"+orgMapLabel+":") ||
			c.StateMachineArn != flowStateMachineARN+"/"+orgMapLabel || c.StartDate == "" || c.StopDate == "" || c.Name == "" {
			t.Errorf("child execution record %+v", c)
		}
	}
	// The targets run, the endless chain, one run of every other target,
	// the summary.
	if want := 1 + orgMaxLinks + len(flowTargets()) - 1 + 1; run.Invocations != want {
		t.Errorf("%d invocations, want %d", run.Invocations, want)
	}
	if len(sc.summary) != 1 || sc.summary[0]["execution"] != run.Execution || sc.summary[0]["manifest"] != run.Output.Sweep.ResultWriterDetails.Key {
		t.Errorf("org-summary requests %v; want one naming %s and its manifest %s", sc.summary, run.Execution, run.Output.Sweep.ResultWriterDetails.Key)
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

// TestOrgStateMachineSweepsManyTargetsInChildExecutions: 1,001 targets,
// each run as a child of its own, at most MaxConcurrency at once, every
// result in the ResultWriter's files (split every 250 executions here, as
// Step Functions splits past 5 GB), the execution's output small whatever
// the count.
func TestOrgStateMachineSweepsManyTargetsInChildExecutions(t *testing.T) {
	var targets []orgTarget
	for i := range 1001 {
		targets = append(targets, orgTarget{fmt.Sprintf("%012d", 100000000000+i), flowRegions[i%2]})
	}
	var calls atomic.Int64
	sc := &scripted{targets: targets, excluded: []flowExcluded{}, sweep: func(raw map[string]any) any {
		calls.Add(1)
		tg := raw["target"].(map[string]any)
		return map[string]any{"runId": "run-" + tg["account"].(string), "mode": "scheduled", "account": tg["account"],
			"summary": map[string]any{"candidates": 0, "rotated": 0, "failed": 0, "skipped": 0, "deferred": 0, "overdue": 0}, "keys": []any{}}
	}}
	urls := startScripted(t, sc)
	run := runFlow(t, flowDriver{Definition: flowDefinition(t, sc.bucket), URLs: urls, S3: sc.s3, ResultFileItems: 250}, targets)
	if run.MaxChildren > 3 || run.MaxChildren < 2 {
		t.Errorf("at most %d child executions ran at once; want up to MaxConcurrency 3", run.MaxChildren)
	}
	if n := len(run.Manifest.ResultFiles["SUCCEEDED"]); n != 5 {
		t.Errorf("%d SUCCEEDED files for 1,001 executions of 250 a file, want 5", n)
	}
	for _, r := range run.Results {
		if r.Status != "swept" || r.Links != 1 || r.RunID != "run-"+r.Account {
			t.Fatalf("%+v: want swept in one link", r)
		}
	}
	if run.OutputBytes > 4096 {
		t.Errorf("the execution's output takes %d bytes for 1,001 targets", run.OutputBytes)
	}
	if calls.Load() != 1001 || run.Invocations != 1003 {
		t.Errorf("%d sweeps, %d invocations; want 1,001 and 1,003", calls.Load(), run.Invocations)
	}
	// A child's history: the Task, its two Choices and the Pass, each
	// entered and exited, the execution started and succeeded, the Lambda
	// task's own events.
	if run.MaxEvents == 0 || run.MaxEvents > 30 {
		t.Errorf("the longest child history holds %d events", run.MaxEvents)
	}
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
	bucket, s3srv := flowBucket(t)
	out, stderr, _, _, err := execFlow(t, flowDriver{Definition: flowDefinition(t, bucket), URLs: []string{srv.URL}, S3: s3srv})
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

// TestOrgStateMachineFailsWhenResultsCannotBeRead: the summary state has no
// Catch either: a function error there fails the execution after the
// sweep, for org-sweep-failed.
func TestOrgStateMachineFailsWhenResultsCannotBeRead(t *testing.T) {
	sc := &scripted{targets: flowTargets(), excluded: []flowExcluded{}, sweep: func(raw map[string]any) any {
		return map[string]any{"runId": "run", "mode": "scheduled", "account": "x",
			"summary": map[string]any{"candidates": 0, "rotated": 0, "failed": 0, "skipped": 0, "deferred": 0, "overdue": 0}, "keys": []any{}}
	}}
	urls := startScripted(t, sc)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), `"mode":"org-summary"`) {
			_ = json.NewEncoder(w).Encode(map[string]any{"errorType": "wrapError", "errorMessage": "org-summary run: the Distributed Map's manifest: NoSuchKey"})
			return
		}
		resp, err := http.Post(urls[0], "application/json", bytes.NewReader(body))
		if err != nil {
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(failing.Close)
	out, stderr, _, _, err := execFlow(t, flowDriver{Definition: flowDefinition(t, sc.bucket), URLs: []string{failing.URL}, S3: sc.s3})
	if err == nil || !strings.Contains(stderr, "NoSuchKey") {
		t.Fatalf("execution: %v, %s\n%s; want it failed with the summary's error", err, out, stderr)
	}
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
	env := startFlowEnvWith(t, due, withRole, org, 0, 3, map[string]string{settings.EnvContinuationMax: "0"})
	def := flowDefinitionFor(t, orgTargets, env.Bucket)

	out := checkFlowOf(t, def, env, due, crossTargets([]string{flowMemberA, flowMemberB, flowUnreachable, flowNested}, flowRegions))
	excluded := slices.Clone(out.Output.Excluded)
	slices.SortFunc(excluded, func(a, b flowExcluded) int { return strings.Compare(a.Account, b.Account) })
	wantExcluded := []flowExcluded{
		{Account: flowSuspended, From: flowOU, Reason: "not-active", State: "SUSPENDED"},
		{Account: flowManagement, From: flowOU, Reason: "management-account"},
	}
	if !reflect.DeepEqual(excluded, wantExcluded) {
		t.Errorf("excluded %+v, want %+v", out.Output.Excluded, wantExcluded)
	}

	for _, a := range withRole {
		swept := a != flowSuspended && a != flowManagement
		for _, r := range flowRegions {
			keys := memberRotations(t, env.Env, a, r)
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
