package org

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"
	"github.com/aws/smithy-go"

	"github.com/kms-rotator/kms-rotator/lambda/request"
)

// fakeOrg is an organization in memory: which OUs and accounts sit under
// each parent. It pages as Organizations does (MaxResults, NextToken) and
// counts the calls.
type fakeOrg struct {
	management string
	units      map[string][]string           // parent → OU IDs
	accounts   map[string][]orgtypes.Account // parent → accounts
	pageSize   int                           // at most this many per page (≤ MaxResults)
	// emptyFirst answers every listing's first request with no item and
	// a NextToken, as Organizations may ("These operations can
	// occasionally return an empty set of results even when there are
	// more results available", API_ListAccountsForParent.html).
	emptyFirst bool
	calls      map[string]int
	deny       bool // every call is AccessDeniedException
}

func (f *fakeOrg) count(op string) error {
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[op]++
	if f.deny {
		return &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "You don't have permissions to access this resource."}
	}
	return nil
}

func (f *fakeOrg) known(parent string) error {
	if _, ok := f.units[parent]; ok {
		return nil
	}
	if _, ok := f.accounts[parent]; ok {
		return nil
	}
	return &smithy.GenericAPIError{Code: "ParentNotFoundException", Message: "We can't find a root or OU with the ParentId that you specified."}
}

// page returns the [from, to) window of n items for a request and the next token.
func (f *fakeOrg) page(n int, token *string, max *int32) (int, int, *string) {
	if f.emptyFirst && token == nil {
		return 0, 0, aws.String("0")
	}
	from, _ := strconv.Atoi(aws.ToString(token))
	size := int(aws.ToInt32(max))
	if f.pageSize > 0 && f.pageSize < size {
		size = f.pageSize
	}
	to := min(from+size, n)
	if to < n {
		return from, to, aws.String(strconv.Itoa(to))
	}
	return from, to, nil
}

func (f *fakeOrg) DescribeOrganization(_ context.Context, _ *organizations.DescribeOrganizationInput, _ ...func(*organizations.Options)) (*organizations.DescribeOrganizationOutput, error) {
	if err := f.count("DescribeOrganization"); err != nil {
		return nil, err
	}
	return &organizations.DescribeOrganizationOutput{Organization: &orgtypes.Organization{Id: aws.String("o-exampleorg1"), MasterAccountId: aws.String(f.management)}}, nil
}

func (f *fakeOrg) ListAccountsForParent(_ context.Context, in *organizations.ListAccountsForParentInput, _ ...func(*organizations.Options)) (*organizations.ListAccountsForParentOutput, error) {
	if err := f.count("ListAccountsForParent"); err != nil {
		return nil, err
	}
	if err := f.known(aws.ToString(in.ParentId)); err != nil {
		return nil, err
	}
	all := f.accounts[aws.ToString(in.ParentId)]
	from, to, next := f.page(len(all), in.NextToken, in.MaxResults)
	return &organizations.ListAccountsForParentOutput{Accounts: all[from:to], NextToken: next}, nil
}

func (f *fakeOrg) ListOrganizationalUnitsForParent(_ context.Context, in *organizations.ListOrganizationalUnitsForParentInput, _ ...func(*organizations.Options)) (*organizations.ListOrganizationalUnitsForParentOutput, error) {
	if err := f.count("ListOrganizationalUnitsForParent"); err != nil {
		return nil, err
	}
	if err := f.known(aws.ToString(in.ParentId)); err != nil {
		return nil, err
	}
	all := f.units[aws.ToString(in.ParentId)]
	from, to, next := f.page(len(all), in.NextToken, in.MaxResults)
	out := &organizations.ListOrganizationalUnitsForParentOutput{NextToken: next}
	for _, id := range all[from:to] {
		out.OrganizationalUnits = append(out.OrganizationalUnits, orgtypes.OrganizationalUnit{Id: aws.String(id)})
	}
	return out, nil
}

func acct(id string, state orgtypes.AccountState) orgtypes.Account {
	return orgtypes.Account{Id: aws.String(id), Name: aws.String("name-" + id), State: state}
}

// exampleOrg: root r-ex12 holds the management account and OU Workloads,
// which holds 25 accounts (more than a page), a suspended account and OU
// Prod; Prod holds one account and a closed one.
func exampleOrg() *fakeOrg {
	f := &fakeOrg{
		management: "999999999999",
		units: map[string][]string{
			"r-ex12":           {"ou-ex12-aaaaaaaa"},
			"ou-ex12-aaaaaaaa": {"ou-ex12-bbbbbbbb"},
			"ou-ex12-bbbbbbbb": nil,
		},
		accounts: map[string][]orgtypes.Account{
			"r-ex12":           {acct("999999999999", orgtypes.AccountStateActive)},
			"ou-ex12-bbbbbbbb": {acct("300000000001", orgtypes.AccountStateActive), acct("300000000002", orgtypes.AccountStateClosed)},
		},
	}
	var workloads []orgtypes.Account
	for i := 25; i >= 1; i-- { // not in ID order: the report sorts
		workloads = append(workloads, acct(fmt.Sprintf("2000000000%02d", i), orgtypes.AccountStateActive))
	}
	f.accounts["ou-ex12-aaaaaaaa"] = append(workloads, acct("200000000099", orgtypes.AccountStateSuspended))
	return f
}

func targetsEngine(t *testing.T, f *fakeOrg) (*Service, *buffer, *buffer) {
	t.Helper()
	c := Clients{Ledger: &fakeLedger{}, S3: &fakeS3{bucket: bucket}}
	if f != nil {
		c.Organizations = f
	}
	return newService(c, bucket)
}

// resolve runs a targets request and returns the whole resolution it
// wrote to S3 (resolution.json).
func resolve(e *Service, targets, regions []string) (*TargetsReport, error) {
	rep, err := e.Resolve(context.Background(), request.Org{Mode: request.ModeTargets, OrgTargets: targets, OrgRegions: regions},
		Invocation{RequestID: "req-1", Scope: testScope})
	if err != nil {
		return rep, err
	}
	store := e.c.S3.(*fakeS3)
	var whole TargetsReport
	if err := json.Unmarshal(store.objects[rep.Resolution.Key], &whole); err != nil {
		return nil, err
	}
	return &whole, nil
}

func TestResolveTargetsWalksOUsRecursively(t *testing.T) {
	f := exampleOrg()
	e, logs, metrics := targetsEngine(t, f)
	rep, err := resolve(e, []string{"100000000001", "ou-ex12-aaaaaaaa", "r-ex12"}, []string{"us-east-1", "eu-west-1"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range rep.Accounts {
		ids = append(ids, a.Account+"<"+a.From)
	}
	want := []string{"100000000001<100000000001"}
	for i := 1; i <= 25; i++ {
		want = append(want, fmt.Sprintf("2000000000%02d<ou-ex12-aaaaaaaa", i))
	}
	want = append(want, "300000000001<ou-ex12-aaaaaaaa")
	if !reflect.DeepEqual(ids, want) {
		t.Fatalf("accounts (account<from):\n got %v\nwant %v", ids, want)
	}
	if len(rep.Targets) != 2*len(want) || rep.Targets[0] != (request.Target{Account: "100000000001", Region: "us-east-1"}) ||
		rep.Targets[1] != (request.Target{Account: "100000000001", Region: "eu-west-1"}) {
		t.Fatalf("targets: %d, first %v; want %d, each account in us-east-1 then eu-west-1", len(rep.Targets), rep.Targets[:2], 2*len(want))
	}
	wantExcluded := []ExcludedAccount{
		{Account: "200000000099", From: "ou-ex12-aaaaaaaa", Name: "name-200000000099", Reason: ExcludedNotActive, State: "SUSPENDED"},
		{Account: "300000000002", From: "ou-ex12-aaaaaaaa", Name: "name-300000000002", Reason: ExcludedNotActive, State: "CLOSED"},
		{Account: "999999999999", From: "r-ex12", Name: "name-999999999999", Reason: ExcludedManagementAccount},
	}
	if !reflect.DeepEqual(rep.Excluded, wantExcluded) {
		t.Fatalf("excluded:\n got %+v\nwant %+v", rep.Excluded, wantExcluded)
	}
	if rep.Summary != (TargetsSummary{Accounts: 27, Targets: 54, Excluded: 3}) || rep.Mode != request.ModeTargets || rep.Account != testAccount || rep.RunID == "" {
		t.Fatalf("summary %+v, mode %q, account %q, runId %q", rep.Summary, rep.Mode, rep.Account, rep.RunID)
	}
	// Workloads' 26 accounts take two pages; the root's OU is listed once
	// although both orgTargets reach it; one DescribeOrganization.
	if f.calls["DescribeOrganization"] != 1 || f.calls["ListAccountsForParent"] != 4 || f.calls["ListOrganizationalUnitsForParent"] != 3 {
		t.Fatalf("calls %v; want 1 DescribeOrganization, 4 ListAccountsForParent (2 pages + 2), 3 ListOrganizationalUnitsForParent", f.calls)
	}
	var resolved, excludedLines int
	for _, l := range logs.lines(t) {
		switch l["msg"] {
		case "targets resolved":
			resolved++
			if l["targets"] != float64(54) || l["runId"] != rep.RunID {
				t.Errorf("summary line %v", l)
			}
		case "account excluded":
			excludedLines++
		}
	}
	if resolved != 1 || excludedLines != 3 {
		t.Errorf("%d summary lines, %d excluded lines; want 1 and 3", resolved, excludedLines)
	}
	ms := emfRecords(t, metrics, e.cfg.MetricsNamespace)
	if len(ms) != 1 {
		t.Fatalf("%d EMF lines, want 1", len(ms))
	}
	if ms[0]["Mode"] != "targets" || ms[0]["TargetsResolved"] != float64(54) || ms[0]["AccountsExcluded"] != float64(3) || ms[0]["RunsCompleted"] != float64(1) {
		t.Fatalf("EMF line %v", ms[0])
	}
}

func TestResolveTargetsFollowsEmptyPages(t *testing.T) {
	f := exampleOrg()
	f.emptyFirst = true
	e, _, _ := targetsEngine(t, f)
	rep, err := resolve(e, []string{"ou-ex12-aaaaaaaa"}, []string{"us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Accounts != 26 || rep.Summary.Excluded != 2 {
		t.Fatalf("summary %+v; want the 26 active accounts of Workloads and Prod, 2 excluded, past the empty first pages", rep.Summary)
	}
}

func TestResolveTargetsKeepsAccountsAsGiven(t *testing.T) {
	// Named by ID, even the management account is swept, and no
	// Organizations call is made.
	f := exampleOrg()
	e, _, _ := targetsEngine(t, f)
	rep, err := resolve(e, []string{"999999999999", "100000000001"}, []string{"us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []request.Target{{Account: "100000000001", Region: "us-east-1"}, {Account: "999999999999", Region: "us-east-1"}}
	if !reflect.DeepEqual(rep.Targets, want) || len(rep.Excluded) != 0 || rep.Excluded == nil {
		t.Fatalf("targets %v, excluded %#v; want %v and an empty list", rep.Targets, rep.Excluded, want)
	}
	if len(f.calls) != 0 {
		t.Fatalf("Organizations calls %v; account IDs need none", f.calls)
	}
	// An explicit account reached again through an OU keeps its source.
	rep, err = resolve(e, []string{"ou-ex12-bbbbbbbb", "300000000001"}, []string{"us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Accounts) != 1 || rep.Accounts[0].From != "300000000001" {
		t.Fatalf("accounts %+v; want 300000000001 once, from its own ID", rep.Accounts)
	}
}

func TestResolveTargetsFailsLoudly(t *testing.T) {
	denied := exampleOrg()
	denied.deny = true
	empty := exampleOrg()
	empty.units["ou-ex12-cccccccc"] = nil
	for _, tc := range []struct {
		name    string
		org     *fakeOrg
		targets []string
		want    []string
	}{
		{"unknown OU", exampleOrg(), []string{"100000000001", "ou-ex12-zzzzzzzz"},
			[]string{"ou-ex12-zzzzzzzz is not a root or OU of the organization", "ParentNotFoundException"}},
		{"not a delegated administrator", denied, []string{"r-ex12"},
			[]string{"listing the accounts of r-ex12 needs account " + testAccount + " to be the organization's management account or a delegated administrator", "organizations:ListAccountsForParent", "AccessDeniedException"}},
		{"nothing to sweep", empty, []string{"ou-ex12-cccccccc"},
			[]string{"orgTargets [ou-ex12-cccccccc] hold no active account to sweep (0 excluded)"}},
		{"no client", nil, []string{"r-ex12"}, []string{"no Organizations client"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, logs, metrics := targetsEngine(t, tc.org)
			rep, err := resolve(e, tc.targets, []string{"us-east-1"})
			if err == nil {
				t.Fatalf("report %+v, want an error", rep)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			ms := metrics.lines(t)
			if len(ms) != 1 || ms[0]["RunsFailed"] != float64(1) {
				t.Errorf("EMF %v; want one line with RunsFailed 1", ms)
			}
			if !strings.Contains(logs.String(), "targets not resolved; nothing is swept") {
				t.Errorf("no error line in %s", logs.String())
			}
		})
	}
}
