package org

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"

	"github.com/kms-rotator/kms-rotator/lambda/ledger"
	"github.com/kms-rotator/kms-rotator/lambda/request"
)

const bucket = "org-bucket"

// bigOrg is a root with n active accounts.
func bigOrg(n int) *fakeOrg {
	f := &fakeOrg{management: "999999999999", units: map[string][]string{"r-ex12": nil}, accounts: map[string][]orgtypes.Account{}}
	for i := range n {
		f.accounts["r-ex12"] = append(f.accounts["r-ex12"], acct(fmt.Sprintf("4%011d", i), orgtypes.AccountStateActive))
	}
	return f
}

func TestResolveWritesTheTargetsToS3BeyondOneState(t *testing.T) {
	f := bigOrg(2000)
	store, lg := &fakeS3{bucket: bucket}, &fakeLedger{}
	s, _, _ := newService(Clients{Organizations: f, S3: store, Ledger: lg}, bucket)
	regions := []string{"us-east-1", "eu-west-1", "ap-southeast-2"}
	rep, err := s.Resolve(context.Background(), request.Org{Mode: request.ModeTargets, OrgTargets: []string{"r-ex12"}, OrgRegions: regions, Execution: "exec-1"},
		Invocation{RequestID: "req-1", Scope: testScope})
	if err != nil {
		t.Fatal(err)
	}
	if *rep.Items != (Object{bucket, "runs/exec-1/targets.json"}) || *rep.Resolution != (Object{bucket, "runs/exec-1/resolution.json"}) {
		t.Fatalf("items %+v, resolution %+v", rep.Items, rep.Resolution)
	}
	if rep.Summary != (TargetsSummary{Accounts: 2000, Targets: 6000, Excluded: 0}) || rep.Targets != nil || rep.Accounts != nil {
		t.Fatalf("answer %+v: want the counts only", rep.Summary)
	}
	answer, _ := json.Marshal(rep)
	if len(answer) > 20<<10 {
		t.Fatalf("answer takes %d bytes", len(answer))
	}
	var items []request.Target
	if err := json.Unmarshal(store.objects["runs/exec-1/targets.json"], &items); err != nil {
		t.Fatal(err)
	}
	if len(items) != 6000 || items[0] != (request.Target{Account: "400000000000", Region: "us-east-1"}) ||
		items[5999] != (request.Target{Account: "400000001999", Region: "ap-southeast-2"}) {
		t.Fatalf("%d items, first %v, last %v", len(items), items[0], items[len(items)-1])
	}
	var whole TargetsReport
	if err := json.Unmarshal(store.objects["runs/exec-1/resolution.json"], &whole); err != nil {
		t.Fatal(err)
	}
	if len(whole.Targets) != 6000 || len(whole.Accounts) != 2000 || whole.RunID != rep.RunID {
		t.Fatalf("resolution holds %d targets, %d accounts, run %s", len(whole.Targets), len(whole.Accounts), whole.RunID)
	}
	if lg.res == nil || len(lg.res.Accounts) != 2000 || !reflect.DeepEqual(lg.res.Regions, regions) || lg.res.RunID != rep.RunID {
		t.Fatalf("ledger record %+v", lg.res)
	}
}

func TestResolveFailsWhenTheRecordOrTheItemsCannotBeWritten(t *testing.T) {
	for name, c := range map[string]Clients{
		"ledger down": {Organizations: exampleOrg(), S3: &fakeS3{bucket: bucket}, Ledger: &fakeLedger{fail: errors.New("ledger down")}},
		"S3 down":     {Organizations: exampleOrg(), S3: &fakeS3{bucket: bucket, fail: errors.New("S3 down")}, Ledger: &fakeLedger{}},
	} {
		t.Run(name, func(t *testing.T) {
			s, _, metrics := newService(c, bucket)
			_, err := s.Resolve(context.Background(), request.Org{Mode: request.ModeTargets, OrgTargets: []string{"r-ex12"}, OrgRegions: []string{"us-east-1"}},
				Invocation{Scope: testScope})
			if err == nil {
				t.Fatal("resolved without its record or items")
			}
			if ms := emfRecords(t, metrics, s.cfg.MetricsNamespace); len(ms) != 1 || ms[0]["RunsFailed"] != float64(1) {
				t.Fatalf("EMF %v", ms)
			}
		})
	}
}

// TestOrganizationRequestsOnlyWhereTheBucketIsSet: the stack sets
// ROTATOR_ORG_BUCKET on the sweep function only; elsewhere (the incident
// function) nobody may re-resolve the targets or replay a summary.
func TestOrganizationRequestsOnlyWhereTheBucketIsSet(t *testing.T) {
	lg := &fakeLedger{}
	s, _, metrics := newService(Clients{Organizations: exampleOrg(), Ledger: lg, S3: &fakeS3{bucket: bucket}}, "")
	inv := Invocation{Scope: testScope}
	_, err := s.Resolve(context.Background(), request.Org{Mode: request.ModeTargets, OrgTargets: []string{"r-ex12"}, OrgRegions: []string{"us-east-1"}}, inv)
	var ve *request.ValidationError
	if !errors.As(err, &ve) || ve.Field != "mode" || !strings.Contains(err.Error(), "targets is answered only by the organization sweep's function, where ROTATOR_ORG_BUCKET is set") {
		t.Fatalf("targets without the bucket: %v", err)
	}
	_, err = s.Summarize(context.Background(), request.Org{Mode: request.ModeOrgSummary, Execution: "e", Manifest: "runs/e/manifest.json"}, inv)
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "org-summary is answered only by") {
		t.Fatalf("org-summary without the bucket: %v", err)
	}
	if lg.res != nil || metrics.String() != "" {
		t.Fatalf("a refused request recorded %+v, wrote EMF %q", lg.res, metrics)
	}
}

func TestCheckRefusesAccountsTheLastTargetsRunDidNotResolve(t *testing.T) {
	lg := &fakeLedger{}
	s, logs, _ := newService(Clients{Ledger: lg}, bucket)
	inv := Invocation{RequestID: "req-9", Scope: testScope}
	target := func(account, region string) request.Request {
		return request.Request{Mode: request.ModeScheduled, Target: &request.Target{Account: account, Region: region}}
	}
	ctx := context.Background()
	// The function's own account needs no record.
	if err := s.Check(ctx, request.Request{Mode: request.ModeScheduled}, inv); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx, target(testAccount, "us-east-1"), inv); err != nil {
		t.Fatal(err)
	}
	err := s.Check(ctx, target("111111111111", "us-east-1"), inv)
	if err == nil || !strings.Contains(err.Error(), "target.account: account 111111111111: no targets run is recorded yet") {
		t.Fatalf("before any targets run: %v", err)
	}
	lg.res = &ledger.Resolution{RunID: "run-7", At: time.Now(), Accounts: []string{"111111111111", "222222222222"}, Regions: []string{"us-east-1"}}
	if err := s.Check(ctx, target("222222222222", "us-east-1"), inv); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		req  request.Request
		want string
	}{
		{target("333333333333", "us-east-1"), "target.account: account 333333333333 was not resolved by the last targets run (run-7)"},
		{target("111111111111", "eu-west-1"), "target.region: Region eu-west-1 of account 111111111111 was not resolved by the last targets run (run-7"},
		{request.Request{Mode: request.ModeIncident, Keys: []request.KeyRef{
			{Raw: "k1", Kind: request.KeyARN, Account: "111111111111"},
			{Raw: "k2", Kind: request.KeyARN, Account: "444444444444"}}},
			"keys[1]: account 444444444444 was not resolved"},
	} {
		err := s.Check(ctx, c.req, inv)
		var ve *request.ValidationError
		if !errors.As(err, &ve) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Check: %v; want a ValidationError with %q", err, c.want)
		}
	}
	if !strings.Contains(logs.String(), "request names an account outside the organization sweep; refused") {
		t.Errorf("no refusal line in %s", logs)
	}
	// A record that cannot be read refuses: the check fails closed.
	lg.fail = errors.New("ledger down")
	if err := s.Check(ctx, target("111111111111", "us-east-1"), inv); err == nil || !strings.Contains(err.Error(), "nothing was touched") {
		t.Fatalf("ledger down: %v", err)
	}
}

// child is one child execution of a result file.
func child(status string, input, output any) childExecution {
	in, _ := json.Marshal(input)
	c := childExecution{ExecutionArn: "arn:aws:states:us-east-1:" + testAccount + ":execution:sweep/x", Input: string(in), Status: status}
	if status == "SUCCEEDED" {
		out, _ := json.Marshal(output)
		c.Output = string(out)
	} else {
		c.Error, c.Cause = "States.Timeout", "the child ran out of time"
	}
	return c
}

func TestSummarizeCountsEveryTargetOnce(t *testing.T) {
	store, events := &fakeS3{bucket: bucket}, &fakeEvents{}
	s, logs, metrics := newService(Clients{S3: store, Events: events}, bucket)
	targets := []request.Target{
		{Account: "111111111111", Region: "us-east-1"}, {Account: "111111111111", Region: "eu-west-1"},
		{Account: "222222222222", Region: "us-east-1"}, {Account: "222222222222", Region: "eu-west-1"},
		{Account: "333333333333", Region: "us-east-1"}, {Account: "333333333333", Region: "eu-west-1"},
		{Account: "444444444444", Region: "ap-east-1"},
	}
	store.putJSON(t, "runs/e1/resolution.json", TargetsReport{Targets: targets, Summary: TargetsSummary{Targets: 7, Accounts: 4, Excluded: 2}})
	result := func(tg request.Target, status string, rotated, failed, overdue int) map[string]any {
		m := map[string]any{"account": tg.Account, "region": tg.Region, "status": status, "links": 1,
			"rotated": rotated, "failed": failed, "skipped": 4, "overdue": overdue, "deferred": 0, "runId": "r"}
		if status == "failed" {
			m["error"] = map[string]string{"Error": "AccessDenied", "Cause": "the member role is missing"}
		}
		return m
	}
	in := func(tg request.Target) map[string]any { return map[string]any{"target": tg, "links": 0} }
	store.putJSON(t, "runs/e1/results/m1/SUCCEEDED_0.json", []childExecution{
		child("SUCCEEDED", in(targets[0]), result(targets[0], "swept", 2, 0, 1)),
		child("SUCCEEDED", in(targets[1]), result(targets[1], "incomplete", 1, 1, 0)),
		child("SUCCEEDED", in(targets[2]), result(targets[2], "failed", 0, 0, 0)),
		child("SUCCEEDED", in(targets[3]), result(targets[3], "swept", 0, 0, 3)),
		child("SUCCEEDED", in(targets[6]), map[string]any{"account": targets[6].Account, "region": targets[6].Region, "status": "excluded",
			"notSwept": ReasonRegionNotEnabled, "links": 1, "rotated": 0, "failed": 0, "skipped": 0, "overdue": 0, "deferred": 0}),
	})
	store.putJSON(t, "runs/e1/results/m1/FAILED_0.json", []childExecution{child("TIMED_OUT", in(targets[4]), nil)})
	// targets[5] has no result at all.
	store.putJSON(t, "runs/e1/results/m1/manifest.json", map[string]any{
		"DestinationBucket": bucket, "MapRunArn": "arn:aws:states:us-east-1:" + testAccount + ":mapRun:sweep/m1",
		"ResultFiles": map[string]any{
			"FAILED":    []map[string]any{{"Key": "runs/e1/results/m1/FAILED_0.json", "Size": 1}},
			"PENDING":   []map[string]any{},
			"SUCCEEDED": []map[string]any{{"Key": "runs/e1/results/m1/SUCCEEDED_0.json", "Size": 1}},
		}})
	rep, err := s.Summarize(context.Background(), request.Org{Mode: request.ModeOrgSummary, Execution: "e1", Manifest: "runs/e1/results/m1/manifest.json"},
		Invocation{RequestID: "req-2", Scope: testScope})
	if err != nil {
		t.Fatal(err)
	}
	want := OrgSummary{Targets: 7, Swept: 2, Incomplete: 1, Failed: 3, NotSwept: 1, Rotated: 3, KeysFailed: 1, Skipped: 16, Overdue: 4, Excluded: 2}
	if rep.Summary != want {
		t.Fatalf("summary %+v\nwant %+v", rep.Summary, want)
	}
	var failed []string
	for _, f := range rep.FailedTargets {
		failed = append(failed, f.Account+"/"+f.Region+": "+f.Error)
	}
	wantFailed := []string{
		"222222222222/us-east-1: AccessDenied: the member role is missing",
		"333333333333/us-east-1: ChildTimedOut: States.Timeout: the child ran out of time",
		"333333333333/eu-west-1: NoResult: the Distributed Map wrote no result for this target (the map run stopped before it)",
	}
	if !reflect.DeepEqual(failed, wantFailed) {
		t.Fatalf("failed targets:\n got %q\nwant %q", failed, wantFailed)
	}
	if len(rep.NotSwept) != 1 || rep.NotSwept[0] != (NotSweptTarget{Account: "444444444444", Region: "ap-east-1", Reason: ReasonRegionNotEnabled}) {
		t.Fatalf("not swept %+v", rep.NotSwept)
	}
	ms := emfRecords(t, metrics, s.cfg.MetricsNamespace)
	if len(ms) != 1 || ms[0]["Mode"] != "org-summary" || ms[0]["OrgTargets"] != float64(7) || ms[0]["OrgTargetsNotSwept"] != float64(1) || ms[0]["OrgTargetsFailed"] != float64(3) ||
		ms[0]["OrgTargetsSwept"] != float64(2) || ms[0]["OrgTargetsIncomplete"] != float64(1) || ms[0]["OrgKeysRotated"] != float64(3) ||
		ms[0]["OrgKeysFailed"] != float64(1) || ms[0]["OrgKeysOverdue"] != float64(4) {
		t.Fatalf("EMF %v", ms)
	}
	if len(events.details) != 1 {
		t.Fatalf("%d result events, want 1", len(events.details))
	}
	var d summaryDetail
	if err := json.Unmarshal([]byte(events.details[0]), &d); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.FailedAccounts, []string{"222222222222", "333333333333"}) || d.Mode != request.ModeOrgSummary || d.Summary != want {
		t.Fatalf("result event %+v", d)
	}
	if n := strings.Count(logs.String(), `"msg":"target failed"`); n != 3 {
		t.Fatalf("%d target-failed lines, want 3", n)
	}
}

func TestSummarizeFailsWhenResultsCannotBeRead(t *testing.T) {
	store := &fakeS3{bucket: bucket}
	s, _, metrics := newService(Clients{S3: store}, bucket)
	req := request.Org{Mode: request.ModeOrgSummary, Execution: "e2", Manifest: "runs/e2/results/m/manifest.json"}
	store.putJSON(t, "runs/e2/resolution.json", TargetsReport{Targets: []request.Target{{Account: "111111111111", Region: "us-east-1"}}})
	for _, c := range []struct {
		name     string
		manifest any
		want     string
	}{
		{"no manifest", nil, "the Distributed Map's manifest"},
		{"a result file outside the execution", map[string]any{"ResultFiles": map[string]any{"SUCCEEDED": []map[string]any{{"Key": "runs/other/x.json"}}}},
			"outside the execution's folder runs/e2/"},
		{"a missing result file", map[string]any{"ResultFiles": map[string]any{"SUCCEEDED": []map[string]any{{"Key": "runs/e2/results/m/SUCCEEDED_0.json"}}}},
			"a result file: reading s3://org-bucket/runs/e2/results/m/SUCCEEDED_0.json"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.manifest != nil {
				store.putJSON(t, req.Manifest, c.manifest)
			}
			_, err := s.Summarize(context.Background(), req, Invocation{Scope: testScope})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v; want %q", err, c.want)
			}
		})
	}
	for _, m := range emfRecords(t, metrics, s.cfg.MetricsNamespace) {
		if m["RunsFailed"] != float64(1) {
			t.Fatalf("EMF %v", m)
		}
	}
	// A result for a target the execution did not resolve is not counted
	// silently.
	store.putJSON(t, "runs/e2/results/m/SUCCEEDED_0.json", []childExecution{
		child("SUCCEEDED", nil, map[string]any{"account": "999999999999", "region": "us-east-1", "status": "swept"})})
	store.putJSON(t, req.Manifest, map[string]any{"ResultFiles": map[string]any{"SUCCEEDED": []map[string]any{{"Key": "runs/e2/results/m/SUCCEEDED_0.json"}}}})
	if _, err := s.Summarize(context.Background(), req, Invocation{Scope: testScope}); err == nil || !strings.Contains(err.Error(), "999999999999/us-east-1") {
		t.Fatalf("foreign result: %v", err)
	}
}
