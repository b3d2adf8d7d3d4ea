package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/harness"
	"github.com/kms-rotator/kms-rotator/tools/moto"
	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

// The local run of the organization sweep: testdata/run-org-sweep.mjs runs
// the synthesized definition, its Task states under aws-local-stepfunctions
// and its Distributed Map as Step Functions documents it, against the S3 of
// moto's server (one per test process, a bucket per test).

var flowS3 struct {
	once sync.Once
	srv  *moto.Server
	err  error
	n    atomic.Int64
}

// flowBucket starts moto's server on its first call and creates a bucket
// of the calling test's own in it; it returns the bucket and the server.
// The server ends with the test process (package moto kills it with its
// parent).
func flowBucket(t *testing.T) (string, *moto.Server) {
	t.Helper()
	flowS3.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		flowS3.srv, flowS3.err = moto.Start(ctx)
	})
	if flowS3.err != nil {
		t.Fatal(flowS3.err)
	}
	name := fmt.Sprintf("kms-rotator-org-sweep-%d", flowS3.n.Add(1))
	if _, err := flowS3.srv.S3().CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name, flowS3.srv
}

// flowRun is one local execution of the state machine.
type flowRun struct {
	// Execution is the execution's name.
	Execution string
	// Output is the execution's output.
	Output flowOutput
	// Results are the children's results as the ResultWriter wrote them,
	// in the order of the targets file.
	Results []flowTargetResult
	// Invocations counts the function's invocations, Children the child
	// executions, MaxChildren the most that ran at once, MaxEvents the
	// longest child history.
	Invocations, Children, MaxChildren, MaxEvents int
	// Manifest is the ResultWriter's manifest.
	Manifest flowManifest
	// Records are the result files' child executions, by status.
	Records map[string][]flowChild
	// Took is how long the driver ran.
	Took time.Duration
	// OutputBytes is the size of the execution's output.
	OutputBytes int
}

// flowOutput is the execution's output.
type flowOutput struct {
	Items struct {
		Bucket string `json:"bucket"`
		Key    string `json:"key"`
	} `json:"items"`
	Resolved struct {
		Accounts int `json:"accounts"`
		Targets  int `json:"targets"`
		Excluded int `json:"excluded"`
	} `json:"resolved"`
	Excluded []flowExcluded `json:"excluded"`
	Results  string         `json:"results"`
	Sweep    struct {
		MapRunArn           string `json:"MapRunArn"`
		ResultWriterDetails struct {
			Bucket string `json:"Bucket"`
			Key    string `json:"Key"`
		} `json:"ResultWriterDetails"`
	} `json:"sweep"`
	Summary struct {
		RunID         string             `json:"runId"`
		Summary       flowSummary        `json:"summary"`
		FailedTargets []flowFailedTarget `json:"failedTargets"`
		NotSwept      []struct {
			Account string `json:"account"`
			Region  string `json:"region"`
			Reason  string `json:"reason"`
		} `json:"notSwept"`
	} `json:"summary"`
}

// flowSummary is the org-summary run's totals.
type flowSummary struct {
	Targets    int `json:"targets"`
	Swept      int `json:"swept"`
	Incomplete int `json:"incomplete"`
	Failed     int `json:"failed"`
	Rotated    int `json:"rotated"`
	KeysFailed int `json:"keysFailed"`
	Skipped    int `json:"skipped"`
	Overdue    int `json:"overdue"`
	Excluded   int `json:"excluded"`
	NotSwept   int `json:"notSwept"`
}

// flowFailedTarget is one failed target the org-summary run names.
type flowFailedTarget struct {
	Account string `json:"account"`
	Region  string `json:"region"`
	Error   string `json:"error"`
}

// flowManifest is the ResultWriter's manifest.json.
type flowManifest struct {
	DestinationBucket string `json:"DestinationBucket"`
	MapRunArn         string `json:"MapRunArn"`
	ResultFiles       map[string][]struct {
		Key  string `json:"Key"`
		Size int64  `json:"Size"`
	} `json:"ResultFiles"`
}

// flowChild is one child execution of a result file.
type flowChild struct {
	ExecutionArn    string `json:"ExecutionArn"`
	Input           string `json:"Input"`
	Name            string `json:"Name"`
	Output          string `json:"Output"`
	Status          string `json:"Status"`
	StateMachineArn string `json:"StateMachineArn"`
	StartDate       string `json:"StartDate"`
	StopDate        string `json:"StopDate"`
	Error           string `json:"Error"`
	Cause           string `json:"Cause"`
}

// flowDriver is how a test runs the driver.
type flowDriver struct {
	Definition []byte
	URLs       []string
	S3         *moto.Server
	// Execution names the execution; empty: a new one per run.
	Execution string
	// ResultFileItems, if set, starts a result file every so many
	// executions.
	ResultFileItems int
}

var flowExecutions atomic.Int64

// execFlow runs the driver and returns its stdout and stderr; err is set
// when the execution failed.
func execFlow(t *testing.T, d flowDriver) (raw []byte, stderr string, execution string, took time.Duration, err error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "definition.json")
	if err := os.WriteFile(file, d.Definition, 0o644); err != nil {
		t.Fatal(err)
	}
	execution = d.Execution
	if execution == "" {
		execution = fmt.Sprintf("sweep-%d-%d", time.Now().UnixNano(), flowExecutions.Add(1))
	}
	args := []string{filepath.Join("testdata", "run-org-sweep.mjs"),
		"--definition", file, "--tasks", strings.Join([]string{orgResolveTask, orgSweepTask, orgSummarizeTask}, ","),
		"--function-arn", flowFunctionARN, "--urls", strings.Join(d.URLs, ","), "--execution", execution,
		"--state-machine-arn", flowStateMachineARN}
	if d.S3 != nil {
		args = append(args, "--s3", d.S3.URL)
	}
	if d.ResultFileItems > 0 {
		args = append(args, "--result-file-items", fmt.Sprint(d.ResultFileItems))
	}
	cmd := exec.CommandContext(t.Context(), nodeTool(t, "node"), args...)
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	start := time.Now()
	raw, err = cmd.Output()
	took = time.Since(start)
	t.Logf("local execution %s: %s", execution, took.Round(time.Millisecond))
	return raw, errBuf.String(), execution, took, err
}

// flowStateMachineARN is the state machine the local runs name their Map
// Runs and child executions after.
const flowStateMachineARN = "arn:aws:states:us-east-1:012345678912:stateMachine:kms-rotator-org-sweep"

// runFlow runs the state machine once, fails the test if the execution
// failed, and reads what the Distributed Map wrote: the manifest, every
// result file and, through them, each target's result, which it checks
// against the targets file (one result per target, in the file's order
// after sorting by the file's index) and want (the targets, in order).
func runFlow(t *testing.T, d flowDriver, want []orgTarget) flowRun {
	t.Helper()
	raw, stderr, execution, took, err := execFlow(t, d)
	if err != nil {
		t.Fatalf("local execution: %v\n%s", err, stderr)
	}
	var res struct {
		Output      json.RawMessage `json:"output"`
		Invocations int             `json:"invocations"`
		Children    int             `json:"children"`
		MaxChildren int             `json:"maxChildren"`
		MaxEvents   int             `json:"maxEvents"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("runner output %s: %v", raw, err)
	}
	run := flowRun{Execution: execution, Invocations: res.Invocations, Children: res.Children, MaxChildren: res.MaxChildren, MaxEvents: res.MaxEvents, Took: took,
		Records: map[string][]flowChild{}, OutputBytes: len(res.Output)}
	if err := json.Unmarshal(res.Output, &run.Output); err != nil {
		t.Fatalf("execution output %s: %v", res.Output, err)
	}
	if len(res.Output) > 256*1024 {
		t.Errorf("the execution's output takes %d bytes, over Step Functions' 256 KiB", len(res.Output))
	}
	out := run.Output
	prefix := orgRunsPrefix + execution + "/"
	if out.Items.Key != prefix+"targets.json" || out.Results != prefix+"results" {
		t.Errorf("items %+v, results prefix %q: want %stargets.json and %sresults", out.Items, out.Results, prefix, prefix)
	}
	bucket := out.Sweep.ResultWriterDetails.Bucket
	key := out.Sweep.ResultWriterDetails.Key
	if !strings.HasPrefix(key, prefix+"results/") || !strings.HasSuffix(key, "/manifest.json") || !strings.HasPrefix(out.Sweep.MapRunArn, "arn:aws:states:us-east-1:012345678912:mapRun:kms-rotator-org-sweep/"+orgMapLabel+":") {
		t.Errorf("the Map's result %+v: want a Map Run of the state machine and a manifest under %sresults/", out.Sweep, prefix)
	}
	get := func(key string, v any) {
		t.Helper()
		o, err := d.S3.S3().GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("GetObject %s: %v", key, err)
		}
		defer o.Body.Close()
		b, err := io.ReadAll(o.Body)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
	}
	var targets []orgTarget
	get(out.Items.Key, &targets)
	if !slices.Equal(targets, want) {
		t.Fatalf("the targets file holds %d targets, want %d in order (first %v, want %v)", len(targets), len(want), targets[:min(3, len(targets))], want[:min(3, len(want))])
	}
	get(key, &run.Manifest)
	if run.Manifest.DestinationBucket != bucket || run.Manifest.MapRunArn != out.Sweep.MapRunArn {
		t.Errorf("manifest %+v: want bucket %s and the Map Run %s", run.Manifest, bucket, out.Sweep.MapRunArn)
	}
	byTarget := map[orgTarget]flowTargetResult{}
	for status, files := range run.Manifest.ResultFiles {
		for i, f := range files {
			if want := strings.TrimSuffix(key, "manifest.json") + fmt.Sprintf("%s_%d.json", status, i); f.Key != want {
				t.Errorf("result file %s, want %s", f.Key, want)
			}
			var children []flowChild
			get(f.Key, &children)
			run.Records[status] = append(run.Records[status], children...)
			for _, c := range children {
				if c.Status != status && !(status == "FAILED" && (c.Status == "TIMED_OUT" || c.Status == "ABORTED")) {
					t.Errorf("%s in %s has status %s", c.ExecutionArn, f.Key, c.Status)
				}
				var in struct {
					Target orgTarget `json:"target"`
				}
				if err := json.Unmarshal([]byte(c.Input), &in); err != nil {
					t.Fatalf("%s input %q: %v", c.ExecutionArn, c.Input, err)
				}
				if _, dup := byTarget[in.Target]; dup {
					t.Errorf("two child executions for %v", in.Target)
				}
				r := flowTargetResult{Account: in.Target.Account, Region: in.Target.Region, Status: "child-" + strings.ToLower(c.Status)}
				if c.Status == "SUCCEEDED" {
					r = flowTargetResult{}
					if err := json.Unmarshal([]byte(c.Output), &r); err != nil {
						t.Fatalf("%s output %q: %v", c.ExecutionArn, c.Output, err)
					}
					if limit := orgResultBytes(r.Status); len(c.Output) > limit {
						t.Errorf("%s/%s's result takes %d bytes, over %d: %s", r.Account, r.Region, len(c.Output), limit, c.Output)
					}
				} else {
					r.Error.Error, r.Error.Cause = c.Error, c.Cause
				}
				byTarget[in.Target] = r
			}
		}
	}
	for _, tg := range want {
		r, ok := byTarget[tg]
		if !ok {
			t.Fatalf("no result for %s/%s", tg.Account, tg.Region)
		}
		if r.Account != tg.Account || r.Region != tg.Region {
			t.Fatalf("the child of %s/%s answered for %s/%s", tg.Account, tg.Region, r.Account, r.Region)
		}
		run.Results = append(run.Results, r)
	}
	if len(byTarget) != len(want) || run.Children != len(want) {
		t.Fatalf("%d results, %d child executions for %d targets", len(byTarget), run.Children, len(want))
	}
	return run
}

// orgResultBytes bounds one target's result, the child's output: about 200
// bytes for a swept or incomplete target (a twelve-digit account, a
// Region, counters, a run ID), and, failed, the function's error document
// (about 430 bytes for a member role that cannot be assumed). Nothing
// depends on the sizes any more — each child's output is its own, and the
// ResultWriter's files hold gigabytes — but a result that grew tenfold
// would show a report leaking into it.
func orgResultBytes(status string) int {
	if status == "failed" {
		return 1000
	}
	return 300
}

// tally adds up the targets' results as the org-summary run should.
func tally(results []flowTargetResult) flowSummary {
	var s flowSummary
	for _, r := range results {
		s.Targets++
		switch r.Status {
		case "swept":
			s.Swept++
		case "incomplete":
			s.Incomplete++
		case "excluded":
			s.NotSwept++
		default:
			s.Failed++
		}
		s.Rotated += r.Rotated
		s.KeysFailed += r.Failed
		s.Skipped += r.Skipped
		s.Overdue += r.Overdue
	}
	return s
}

// orgSummaryEMF returns the org-summary EMF records the functions of env
// have written so far, in the order written.
func orgSummaryEMF(t *testing.T, env *harness.Env) []oracle.EMF {
	t.Helper()
	var recs []oracle.EMF
	for _, f := range env.Functions {
		all, err := oracle.ParseEMFLines(f.Proc.Stdout.Lines())
		if err != nil {
			t.Fatalf("EMF of %s: %v", f.URL, err)
		}
		for _, r := range all {
			if r.Fields[settings.DimMode] == orgSummaryMode {
				recs = append(recs, r)
			}
		}
	}
	slices.SortStableFunc(recs, func(a, b oracle.EMF) int { return int(a.Timestamp - b.Timestamp) })
	return recs
}

// checkSummaryEMF checks that the last org-summary EMF record carries the
// run's totals, as the org-summary answer does.
func checkSummaryEMF(t *testing.T, rec oracle.EMF, s flowSummary) {
	t.Helper()
	want := map[string]int{
		settings.MetricOrgTargets: s.Targets, settings.MetricOrgTargetsSwept: s.Swept, settings.MetricOrgTargetsIncomplete: s.Incomplete,
		settings.MetricOrgTargetsFailed: s.Failed, settings.MetricOrgKeysRotated: s.Rotated, settings.MetricOrgKeysFailed: s.KeysFailed,
		settings.MetricOrgKeysOverdue: s.Overdue, settings.MetricOrgTargetsNotSwept: s.NotSwept,
	}
	for name, v := range want {
		if got, ok := rec.Fields[name].(float64); !ok || int(got) != v {
			t.Errorf("EMF %s = %v, want %d", name, rec.Fields[name], v)
		}
	}
}

// TestDriverRunsADistributedMapAsDocumented checks the local driver itself
// on a small definition, against what AWS documents for a Distributed Map
// (state-map-distributed.html, input-output-resultwriter.html): items read
// from S3, ItemSelector with the item's index and value, a child that fails
// lands in FAILED_0.json with its error and cause and no output, a Map Run
// whose failures exceed ToleratedFailurePercentage fails with
// States.ExceedToleratedFailureThreshold (1 of 3 is over 33 %, not over
// 34 %), and the state's result names the Map Run and the manifest.
func TestDriverRunsADistributedMapAsDocumented(t *testing.T) {
	bucket, srv := flowBucket(t)
	if _, err := srv.S3().PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("in/items.json"),
		Body: strings.NewReader(`[{"v":1},{"v":2},{"v":3}]`)}); err != nil {
		t.Fatal(err)
	}
	definition := func(tolerated int) []byte {
		return mustJSON(map[string]any{
			"StartAt": "M",
			"States": map[string]any{"M": map[string]any{
				"Type":         "Map",
				"Label":        "items",
				"ItemReader":   map[string]any{"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": map[string]any{"InputType": "JSON"}, "Parameters": map[string]any{"Bucket": bucket, "Key": "in/items.json"}},
				"ItemSelector": map[string]any{"index.$": "$$.Map.Item.Index", "value.$": "$$.Map.Item.Value.v"},
				"ItemProcessor": map[string]any{
					"ProcessorConfig": map[string]any{"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
					"StartAt":         "Two?",
					"States": map[string]any{
						"Two?": map[string]any{"Type": "Choice", "Choices": []any{map[string]any{"Variable": "$.value", "NumericEquals": 2, "Next": "Boom"}}, "Default": "Done"},
						"Boom": map[string]any{"Type": "Fail", "Error": "Boom", "Cause": "item two"},
						"Done": map[string]any{"Type": "Pass", "End": true},
					},
				},
				"MaxConcurrency":             2,
				"ToleratedFailurePercentage": tolerated,
				"ResultWriter":               map[string]any{"Resource": "arn:aws:states:::s3:putObject", "Parameters": map[string]any{"Bucket": bucket, "Prefix": "out"}},
				"End":                        true,
			}},
		})
	}
	_, stderr, _, _, err := execFlow(t, flowDriver{Definition: definition(33), URLs: []string{"http://127.0.0.1:1"}, S3: srv})
	if err == nil || !strings.Contains(stderr, "States.ExceedToleratedFailureThreshold") {
		t.Errorf("1 of 3 failed with 33 %% tolerated: %v, %s; want States.ExceedToleratedFailureThreshold", err, stderr)
	}
	raw, stderr, _, _, err := execFlow(t, flowDriver{Definition: definition(34), URLs: []string{"http://127.0.0.1:1"}, S3: srv})
	if err != nil {
		t.Fatalf("1 of 3 failed with 34 %% tolerated: %v\n%s", err, stderr)
	}
	var res struct {
		Output struct {
			MapRunArn           string
			ResultWriterDetails struct{ Bucket, Key string }
		} `json:"output"`
		Children, MaxChildren int
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	out := res.Output
	if !strings.HasPrefix(out.MapRunArn, "arn:aws:states:us-east-1:012345678912:mapRun:kms-rotator-org-sweep/items:") || out.ResultWriterDetails.Bucket != bucket ||
		out.ResultWriterDetails.Key != "out/"+out.MapRunArn[strings.LastIndex(out.MapRunArn, ":")+1:]+"/manifest.json" {
		t.Errorf("result %+v: want the Map Run and out/<Map Run ID>/manifest.json", out)
	}
	if res.Children != 3 || res.MaxChildren > 2 {
		t.Errorf("%d children, at most %d at once; want 3, at most 2", res.Children, res.MaxChildren)
	}
	read := func(key string, v any) {
		t.Helper()
		o, err := srv.S3().GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		defer o.Body.Close()
		if err := json.NewDecoder(o.Body).Decode(v); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
	}
	var m flowManifest
	read(out.ResultWriterDetails.Key, &m)
	if len(m.ResultFiles["SUCCEEDED"]) != 1 || len(m.ResultFiles["FAILED"]) != 1 || len(m.ResultFiles["PENDING"]) != 0 || m.DestinationBucket != bucket {
		t.Fatalf("manifest %+v", m)
	}
	var ok, failed []map[string]any
	read(m.ResultFiles["SUCCEEDED"][0].Key, &ok)
	read(m.ResultFiles["FAILED"][0].Key, &failed)
	if len(ok) != 2 || len(failed) != 1 {
		t.Fatalf("%d succeeded, %d failed records", len(ok), len(failed))
	}
	f := failed[0]
	if f["Status"] != "FAILED" || f["Error"] != "Boom" || f["Cause"] != "item two" || f["Input"] != `{"index":1,"value":2}` || f["Output"] != nil || f["RedriveStatus"] != "REDRIVABLE" {
		t.Errorf("failed record %v", f)
	}
	for _, r := range ok {
		if r["Status"] != "SUCCEEDED" || r["Output"] != r["Input"] || r["RedriveStatus"] != "NOT_REDRIVABLE" || r["OutputDetails"] == nil {
			t.Errorf("succeeded record %v", r)
		}
		for _, k := range []string{"ExecutionArn", "Name", "StartDate", "StopDate", "StateMachineArn", "RedriveCount", "InputDetails"} {
			if _, has := r[k]; !has {
				t.Errorf("record %v has no %s", r, k)
			}
		}
	}
}
