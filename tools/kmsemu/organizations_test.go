package kmsemu_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu/emutest"
)

// The test organization: the management account is the emulator's default
// account (the static test credentials act in it), orgAdmin is a delegated
// administrator, orgMember a plain member, orgOutsider belongs to no
// organization.
const (
	orgID       = "o-exampleorg1"
	orgRoot     = "r-ex12"
	ouWorkloads = "ou-ex12-aaaaaaaa"
	ouProd      = "ou-ex12-bbbbbbbb"
	ouBig       = "ou-ex12-cccccccc"
	orgAdmin    = "123456789012"
	orgMember   = "111111111111"
	orgOld      = "444444444444"
	orgOutsider = "777777777777"
	bigOUSize   = 45
)

// testOrg builds the organization: Workloads > Prod, and an OU with
// bigOUSize accounts, more than one page of 20 holds.
func testOrg() kmsemu.Organization {
	o := kmsemu.Organization{
		ID: orgID, ManagementAccount: emutest.Account, RootID: orgRoot,
		DelegatedAdministrators: []string{orgAdmin},
		Units: []kmsemu.OrganizationUnit{
			{ID: ouProd, Name: "Prod", Parent: ouWorkloads}, // before its parent: order does not matter
			{ID: ouWorkloads, Name: "Workloads", Parent: orgRoot},
			{ID: ouBig, Parent: orgRoot},
		},
		Accounts: []kmsemu.OrganizationAccount{
			{ID: orgMember, Name: "prod", Email: "prod@example.com", Parent: ouProd, State: "ACTIVE"},
			{ID: orgOld, Name: "old", Parent: ouWorkloads, State: "suspended"},
			{ID: orgAdmin, Name: "security"},
		},
	}
	for i := range bigOUSize {
		// Listed in reverse ID order: the answer is sorted anyway.
		o.Accounts = append(o.Accounts, kmsemu.OrganizationAccount{ID: bigAccount(bigOUSize - 1 - i), Parent: ouBig})
	}
	return o
}

func bigAccount(i int) string { return fmt.Sprintf("5000000000%02d", i) }

func orgJSON(t *testing.T, o kmsemu.Organization) string {
	t.Helper()
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// startOrg starts an emulator with the test organization and roles for the
// delegated administrator, the member and the outsider.
func startOrg(t *testing.T) *env {
	t.Helper()
	e := start(t, kmsemu.Options{Roles: []string{
		emutest.MemberRole(orgAdmin), emutest.MemberRole(orgMember), emutest.MemberRole(orgOutsider),
	}}, "")
	if err := e.emu.Server.LoadOrganization(strings.NewReader(orgJSON(t, testOrg()))); err != nil {
		t.Fatal(err)
	}
	return e
}

// orgClient is an Organizations client that does not retry, acting in the
// default account (cfg nil) or with cfg's credentials.
func orgClient(e *env, cfg *aws.Config) *organizations.Client {
	c := e.emu.Config("us-east-1")
	if cfg != nil {
		c = *cfg
	}
	return organizations.NewFromConfig(c, func(o *organizations.Options) { o.RetryMaxAttempts = 1 })
}

func orgAs(t *testing.T, e *env, account string) *organizations.Client {
	cfg := e.emu.AssumeRole(t, "us-east-1", emutest.MemberRole(account))
	return orgClient(e, &cfg)
}

func accountsIn(t *testing.T, c *organizations.Client, parent string, maxResults int32) (ids []string, pages int) {
	t.Helper()
	in := &organizations.ListAccountsForParentInput{ParentId: aws.String(parent)}
	if maxResults > 0 {
		in.MaxResults = aws.Int32(maxResults)
	}
	p := organizations.NewListAccountsForParentPaginator(c, in)
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if maxResults > 0 && len(out.Accounts) > int(maxResults) {
			t.Fatalf("page %d has %d accounts, MaxResults %d", pages, len(out.Accounts), maxResults)
		}
		for _, a := range out.Accounts {
			ids = append(ids, aws.ToString(a.Id))
		}
	}
	return ids, pages
}

func TestOrganizationShapes(t *testing.T) {
	e := startOrg(t)
	c := orgClient(e, nil)
	mgmt := emutest.Account

	t.Run("DescribeOrganization", func(t *testing.T) {
		o := must[*organizations.DescribeOrganizationOutput](t)(c.DescribeOrganization(e.ctx, &organizations.DescribeOrganizationInput{})).Organization
		if aws.ToString(o.Id) != orgID || aws.ToString(o.MasterAccountId) != mgmt ||
			aws.ToString(o.Arn) != "arn:aws:organizations::"+mgmt+":organization/"+orgID ||
			aws.ToString(o.MasterAccountArn) != "arn:aws:organizations::"+mgmt+":account/"+orgID+"/"+mgmt ||
			aws.ToString(o.MasterAccountEmail) != "aws+"+mgmt+"@example.com" || o.FeatureSet != orgtypes.OrganizationFeatureSetAll {
			t.Fatalf("organization = %+v", o)
		}
	})
	t.Run("ListRoots", func(t *testing.T) {
		out := must[*organizations.ListRootsOutput](t)(c.ListRoots(e.ctx, &organizations.ListRootsInput{}))
		if len(out.Roots) != 1 || out.NextToken != nil {
			t.Fatalf("roots = %+v, next %v", out.Roots, out.NextToken)
		}
		r := out.Roots[0]
		if aws.ToString(r.Id) != orgRoot || aws.ToString(r.Name) != "Root" || aws.ToString(r.Arn) != "arn:aws:organizations::"+mgmt+":root/"+orgID+"/"+orgRoot {
			t.Fatalf("root = %+v", r)
		}
	})
	t.Run("ListOrganizationalUnitsForParent", func(t *testing.T) {
		out := must[*organizations.ListOrganizationalUnitsForParentOutput](t)(c.ListOrganizationalUnitsForParent(e.ctx,
			&organizations.ListOrganizationalUnitsForParentInput{ParentId: aws.String(orgRoot)}))
		var got []string
		for _, u := range out.OrganizationalUnits {
			got = append(got, aws.ToString(u.Id)+"="+aws.ToString(u.Name)+"="+aws.ToString(u.Arn))
		}
		want := []string{
			ouWorkloads + "=Workloads=arn:aws:organizations::" + mgmt + ":ou/" + orgID + "/" + ouWorkloads,
			ouBig + "=" + ouBig + "=arn:aws:organizations::" + mgmt + ":ou/" + orgID + "/" + ouBig,
		}
		if !slices.Equal(got, want) {
			t.Fatalf("OUs of the root = %q, want %q", got, want)
		}
	})
	t.Run("ListAccountsForParent", func(t *testing.T) {
		out := must[*organizations.ListAccountsForParentOutput](t)(c.ListAccountsForParent(e.ctx,
			&organizations.ListAccountsForParentInput{ParentId: aws.String(ouProd)}))
		if len(out.Accounts) != 1 {
			t.Fatalf("accounts of Prod = %+v", out.Accounts)
		}
		a := out.Accounts[0]
		if aws.ToString(a.Id) != orgMember || aws.ToString(a.Name) != "prod" || aws.ToString(a.Email) != "prod@example.com" ||
			aws.ToString(a.Arn) != "arn:aws:organizations::"+mgmt+":account/"+orgID+"/"+orgMember ||
			a.State != orgtypes.AccountStateActive || a.Status != "" || a.JoinedMethod != orgtypes.AccountJoinedMethodCreated ||
			a.JoinedTimestamp == nil || !a.JoinedTimestamp.Equal(e.clock.Now()) {
			t.Fatalf("account = %+v (joined %v)", a, a.JoinedTimestamp)
		}
	})
	t.Run("the management account sits in the root with default name", func(t *testing.T) {
		out := must[*organizations.ListAccountsForParentOutput](t)(c.ListAccountsForParent(e.ctx,
			&organizations.ListAccountsForParentInput{ParentId: aws.String(orgRoot)}))
		var got []string
		for _, a := range out.Accounts {
			got = append(got, aws.ToString(a.Id)+"="+aws.ToString(a.Name))
		}
		if want := []string{mgmt + "=management", orgAdmin + "=security"}; !slices.Equal(got, want) {
			t.Fatalf("accounts of the root = %q, want %q", got, want)
		}
	})
	t.Run("states are answered as State, in any case in the file", func(t *testing.T) {
		out := must[*organizations.ListAccountsForParentOutput](t)(c.ListAccountsForParent(e.ctx,
			&organizations.ListAccountsForParentInput{ParentId: aws.String(ouWorkloads)}))
		if len(out.Accounts) != 1 || out.Accounts[0].State != orgtypes.AccountStateSuspended || aws.ToString(out.Accounts[0].Email) != "aws+"+orgOld+"@example.com" {
			t.Fatalf("accounts of Workloads = %+v", out.Accounts)
		}
	})
	t.Run("the wire answer has epoch-second timestamps and no Status", func(t *testing.T) {
		status, out := orgWire(t, e, "ListAccountsForParent", `{"ParentId":"`+ouProd+`"}`)
		accounts, _ := out["Accounts"].([]any)
		if status != 200 || len(accounts) != 1 {
			t.Fatalf("HTTP %d %v", status, out)
		}
		a, _ := accounts[0].(map[string]any)
		if _, ok := a["Status"]; ok {
			t.Errorf("the retired Status is answered: %v", a)
		}
		if ts, ok := a["JoinedTimestamp"].(float64); !ok || int64(ts) != e.clock.Now().Unix() {
			t.Errorf("JoinedTimestamp = %v, want epoch seconds %d", a["JoinedTimestamp"], e.clock.Now().Unix())
		}
	})
}

// orgWire posts one raw Organizations request in the default account.
func orgWire(t *testing.T, e *env, op, body string) (int, map[string]any) {
	t.Helper()
	status, out, _ := post(t, e.emu.Server, "AWSOrganizationsV20161128."+op, "", []byte(body))
	return status, out
}

func TestOrganizationPagination(t *testing.T) {
	e := startOrg(t)
	c := orgClient(e, nil)
	var want []string
	for i := range bigOUSize {
		want = append(want, bigAccount(i))
	}
	for _, tc := range []struct {
		maxResults int32
		pages      int
	}{{1, bigOUSize}, {20, 3}, {0, 3}, {7, 7}} {
		t.Run(fmt.Sprintf("MaxResults %d", tc.maxResults), func(t *testing.T) {
			ids, pages := accountsIn(t, c, ouBig, tc.maxResults)
			if !slices.Equal(ids, want) {
				t.Fatalf("listed %d accounts %q, want the %d sorted by ID", len(ids), ids, len(want))
			}
			if pages != tc.pages {
				t.Fatalf("%d pages, want %d", pages, tc.pages)
			}
		})
	}
	t.Run("a full last page ends without a token", func(t *testing.T) {
		out := must[*organizations.ListAccountsForParentOutput](t)(c.ListAccountsForParent(e.ctx,
			&organizations.ListAccountsForParentInput{ParentId: aws.String(orgRoot), MaxResults: aws.Int32(2)}))
		if len(out.Accounts) != 2 || out.NextToken != nil {
			t.Fatalf("%d accounts, next %v", len(out.Accounts), out.NextToken)
		}
	})
	t.Run("OUs page too", func(t *testing.T) {
		out := must[*organizations.ListOrganizationalUnitsForParentOutput](t)(c.ListOrganizationalUnitsForParent(e.ctx,
			&organizations.ListOrganizationalUnitsForParentInput{ParentId: aws.String(orgRoot), MaxResults: aws.Int32(1)}))
		if len(out.OrganizationalUnits) != 1 || aws.ToString(out.OrganizationalUnits[0].Id) != ouWorkloads || out.NextToken == nil {
			t.Fatalf("page 1 = %+v, next %v", out.OrganizationalUnits, out.NextToken)
		}
		out = must[*organizations.ListOrganizationalUnitsForParentOutput](t)(c.ListOrganizationalUnitsForParent(e.ctx,
			&organizations.ListOrganizationalUnitsForParentInput{ParentId: aws.String(orgRoot), MaxResults: aws.Int32(1), NextToken: out.NextToken}))
		if len(out.OrganizationalUnits) != 1 || aws.ToString(out.OrganizationalUnits[0].Id) != ouBig || out.NextToken != nil {
			t.Fatalf("page 2 = %+v, next %v", out.OrganizationalUnits, out.NextToken)
		}
	})

	first := must[*organizations.ListAccountsForParentOutput](t)(c.ListAccountsForParent(e.ctx,
		&organizations.ListAccountsForParentInput{ParentId: aws.String(ouBig), MaxResults: aws.Int32(5)}))
	if first.NextToken == nil {
		t.Fatal("no NextToken after 5 of 45 accounts")
	}
	for _, tc := range []struct {
		name       string
		maxResults *int32
		token      *string
		reason     orgtypes.InvalidInputExceptionReason
		ou         bool // ListOrganizationalUnitsForParent rather than ListAccountsForParent
		parent     string
	}{
		{"MaxResults 0", aws.Int32(0), nil, orgtypes.InvalidInputExceptionReasonMinValueExceeded, false, ouBig},
		{"MaxResults 21", aws.Int32(21), nil, orgtypes.InvalidInputExceptionReasonMaxValueExceeded, false, ouBig},
		{"a made-up token", nil, aws.String("bm90LWEtdG9rZW4"), orgtypes.InvalidInputExceptionReasonInvalidPaginationToken, false, ouBig},
		{"a token that is not base64", nil, aws.String("%%%"), orgtypes.InvalidInputExceptionReasonInvalidPaginationToken, false, ouBig},
		{"a token of another parent", nil, first.NextToken, orgtypes.InvalidInputExceptionReasonInvalidPaginationToken, false, orgRoot},
		{"a token of another operation", nil, first.NextToken, orgtypes.InvalidInputExceptionReasonInvalidPaginationToken, true, ouBig},
		{"a token edited past the end", nil, aws.String(editToken(t, *first.NextToken, "45")), orgtypes.InvalidInputExceptionReasonInvalidPaginationToken, false, ouBig},
		{"a token edited to the start", nil, aws.String(editToken(t, *first.NextToken, "0")), orgtypes.InvalidInputExceptionReasonInvalidPaginationToken, false, ouBig},
		{"a token edited to a negative offset", nil, aws.String(editToken(t, *first.NextToken, "-3")), orgtypes.InvalidInputExceptionReasonInvalidPaginationToken, false, ouBig},
	} {
		t.Run(tc.name+" is InvalidInputException", func(t *testing.T) {
			var err error
			if tc.ou {
				_, err = c.ListOrganizationalUnitsForParent(e.ctx, &organizations.ListOrganizationalUnitsForParentInput{ParentId: aws.String(tc.parent), MaxResults: tc.maxResults, NextToken: tc.token})
			} else {
				_, err = c.ListAccountsForParent(e.ctx, &organizations.ListAccountsForParentInput{ParentId: aws.String(tc.parent), MaxResults: tc.maxResults, NextToken: tc.token})
			}
			wantInvalidInput(t, err, tc.reason)
		})
	}
	t.Run("the token of a page continues after it", func(t *testing.T) {
		out := must[*organizations.ListAccountsForParentOutput](t)(c.ListAccountsForParent(e.ctx,
			&organizations.ListAccountsForParentInput{ParentId: aws.String(ouBig), MaxResults: aws.Int32(5), NextToken: first.NextToken}))
		if len(out.Accounts) != 5 || aws.ToString(out.Accounts[0].Id) != bigAccount(5) {
			t.Fatalf("page 2 starts %+v", out.Accounts)
		}
	})
}

// editToken replaces the offset at the end of a NextToken (base64 of text
// ending in the offset), as a client tampering with it would.
func editToken(t *testing.T, token, offset string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		t.Fatalf("NextToken %q is not unpadded base64url: %v", token, err)
	}
	text := strings.TrimRight(string(raw), "0123456789")
	if text == string(raw) {
		t.Fatalf("NextToken %q does not end in an offset", raw)
	}
	return base64.RawURLEncoding.EncodeToString([]byte(text + offset))
}

func wantInvalidInput(t *testing.T, err error, reason orgtypes.InvalidInputExceptionReason) {
	t.Helper()
	var ie *orgtypes.InvalidInputException
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v, want InvalidInputException", err)
	}
	if ie.Reason != reason || aws.ToString(ie.Message) == "" {
		t.Fatalf("InvalidInputException reason %q message %q, want reason %q", ie.Reason, aws.ToString(ie.Message), reason)
	}
}

func TestOrganizationErrors(t *testing.T) {
	t.Run("without an organization every operation is AWSOrganizationsNotInUseException", func(t *testing.T) {
		e := start(t, kmsemu.Options{}, "")
		c := orgClient(e, nil)
		for name, call := range orgCalls(c, orgRoot) {
			err := call(e.ctx)
			var nu *orgtypes.AWSOrganizationsNotInUseException
			if !errors.As(err, &nu) {
				t.Errorf("%s: err = %v, want AWSOrganizationsNotInUseException", name, err)
			}
		}
	})
	e := startOrg(t)
	c := orgClient(e, nil)
	t.Run("an unknown parent is ParentNotFoundException", func(t *testing.T) {
		for _, p := range []string{"ou-ex12-zzzzzzzz", "r-zz99"} {
			_, err := c.ListAccountsForParent(e.ctx, &organizations.ListAccountsForParentInput{ParentId: aws.String(p)})
			var pn *orgtypes.ParentNotFoundException
			if !errors.As(err, &pn) {
				t.Errorf("ListAccountsForParent %s: err = %v, want ParentNotFoundException", p, err)
			}
			_, err = c.ListOrganizationalUnitsForParent(e.ctx, &organizations.ListOrganizationalUnitsForParentInput{ParentId: aws.String(p)})
			if !errors.As(err, &pn) {
				t.Errorf("ListOrganizationalUnitsForParent %s: err = %v, want ParentNotFoundException", p, err)
			}
		}
	})
	t.Run("a malformed parent ID is InvalidInputException INVALID_PATTERN", func(t *testing.T) {
		for _, p := range []string{"bogus", "ou-ex12-aaaaaaa", "R-EX12", orgMember} {
			_, err := c.ListAccountsForParent(e.ctx, &organizations.ListAccountsForParentInput{ParentId: aws.String(p)})
			wantInvalidInput(t, err, orgtypes.InvalidInputExceptionReasonInvalidPattern)
		}
	})
	t.Run("a missing ParentId is InvalidInputException INPUT_REQUIRED", func(t *testing.T) {
		status, out := orgWire(t, e, "ListOrganizationalUnitsForParent", `{}`)
		if status != 400 || out["__type"] != "InvalidInputException" || out["Reason"] != "INPUT_REQUIRED" {
			t.Fatalf("HTTP %d %v", status, out)
		}
	})
	t.Run("errors are HTTP 400 with __type and Message", func(t *testing.T) {
		status, out := orgWire(t, e, "ListAccountsForParent", `{"ParentId":"ou-ex12-zzzzzzzz"}`)
		if msg, _ := out["Message"].(string); status != 400 || out["__type"] != "ParentNotFoundException" || msg == "" {
			t.Fatalf("HTTP %d %v", status, out)
		}
	})
}

// orgCalls are the four operations, by name, each called once.
func orgCalls(c *organizations.Client, parent string) map[string]func(context.Context) error {
	return map[string]func(context.Context) error{
		"DescribeOrganization": func(ctx context.Context) error {
			_, err := c.DescribeOrganization(ctx, &organizations.DescribeOrganizationInput{})
			return err
		},
		"ListRoots": func(ctx context.Context) error {
			_, err := c.ListRoots(ctx, &organizations.ListRootsInput{})
			return err
		},
		"ListAccountsForParent": func(ctx context.Context) error {
			_, err := c.ListAccountsForParent(ctx, &organizations.ListAccountsForParentInput{ParentId: aws.String(parent)})
			return err
		},
		"ListOrganizationalUnitsForParent": func(ctx context.Context) error {
			_, err := c.ListOrganizationalUnitsForParent(ctx, &organizations.ListOrganizationalUnitsForParentInput{ParentId: aws.String(parent)})
			return err
		},
	}
}

func TestOrganizationCallers(t *testing.T) {
	e := startOrg(t)
	callers := []struct {
		name    string
		account string
		client  *organizations.Client
		// list: the List operations' error; describe: DescribeOrganization's.
		list, describe string
	}{
		{"the management account", emutest.Account, orgClient(e, nil), "", ""},
		{"a delegated administrator", orgAdmin, orgAs(t, e, orgAdmin), "", ""},
		{"another member account", orgMember, orgAs(t, e, orgMember), "AccessDeniedException", ""},
		{"an account outside the organization", orgOutsider, orgAs(t, e, orgOutsider), "AWSOrganizationsNotInUseException", "AWSOrganizationsNotInUseException"},
	}
	e.emu.Server.ResetStats()
	for _, cl := range callers {
		t.Run(cl.name, func(t *testing.T) {
			for name, call := range orgCalls(cl.client, ouWorkloads) {
				want := cl.list
				if name == "DescribeOrganization" {
					want = cl.describe
				}
				if got := code(t, call(e.ctx)); got != want {
					t.Errorf("%s: error %q, want %q", name, got, want)
				}
			}
			// Every call is counted for the account it acted in.
			st := e.emu.Server.Stats().Accounts[cl.account]
			for _, op := range []string{"DescribeOrganization", "ListRoots", "ListAccountsForParent", "ListOrganizationalUnitsForParent"} {
				wantErrs := int64(0)
				if (op == "DescribeOrganization" && cl.describe != "") || (op != "DescribeOrganization" && cl.list != "") {
					wantErrs = 1
				}
				if st[op].Calls != 1 || st[op].Errors != wantErrs {
					t.Errorf("stats of %s %s = %+v, want 1 call, %d errors", cl.account, op, st[op], wantErrs)
				}
			}
		})
	}
	t.Run("AccessDeniedException is HTTP 400 with a message", func(t *testing.T) {
		_, err := callers[2].client.ListRoots(e.ctx, &organizations.ListRootsInput{})
		var ad *orgtypes.AccessDeniedException
		if !errors.As(err, &ad) || aws.ToString(ad.Message) == "" {
			t.Fatalf("err = %v", err)
		}
		if s := httpStatus(err); s != 400 {
			t.Fatalf("HTTP %d, want 400", s)
		}
	})
}

// TestOrganizationWalk walks the organization as organization mode does:
// the roots, then OUs recursively, collecting the ACTIVE accounts, through
// the SDK's paginators with the smallest pages.
func TestOrganizationWalk(t *testing.T) {
	e := start(t, kmsemu.Options{}, "")
	o := testOrg()
	// Five levels of OUs under Workloads' sibling chain, an account at each.
	parent := orgRoot
	for i := range 5 {
		id := fmt.Sprintf("ou-ex12-deep%04d", i)
		o.Units = append(o.Units, kmsemu.OrganizationUnit{ID: id, Parent: parent})
		o.Accounts = append(o.Accounts, kmsemu.OrganizationAccount{ID: fmt.Sprintf("6000000000%02d", i), Parent: id})
		parent = id
	}
	o.Accounts = append(o.Accounts, kmsemu.OrganizationAccount{ID: "600000000099", Parent: parent, State: "CLOSED"})
	if err := e.emu.Server.LoadOrganization(strings.NewReader(orgJSON(t, o))); err != nil {
		t.Fatal(err)
	}
	c := orgClient(e, nil)
	var walk func(parent string) []string
	walk = func(parent string) []string {
		var active []string
		pa := organizations.NewListAccountsForParentPaginator(c, &organizations.ListAccountsForParentInput{ParentId: aws.String(parent), MaxResults: aws.Int32(1)})
		for pa.HasMorePages() {
			out := must[*organizations.ListAccountsForParentOutput](t)(pa.NextPage(e.ctx))
			for _, a := range out.Accounts {
				if a.State == orgtypes.AccountStateActive {
					active = append(active, aws.ToString(a.Id))
				}
			}
		}
		pu := organizations.NewListOrganizationalUnitsForParentPaginator(c, &organizations.ListOrganizationalUnitsForParentInput{ParentId: aws.String(parent), MaxResults: aws.Int32(1)})
		for pu.HasMorePages() {
			out := must[*organizations.ListOrganizationalUnitsForParentOutput](t)(pu.NextPage(e.ctx))
			for _, u := range out.OrganizationalUnits {
				active = append(active, walk(aws.ToString(u.Id))...)
			}
		}
		return active
	}
	roots := must[*organizations.ListRootsOutput](t)(c.ListRoots(e.ctx, &organizations.ListRootsInput{}))
	var got []string
	for _, r := range roots.Roots {
		got = append(got, walk(aws.ToString(r.Id))...)
	}
	sort.Strings(got)
	want := []string{emutest.Account, orgMember, orgAdmin}
	for i := range bigOUSize {
		want = append(want, bigAccount(i))
	}
	for i := range 5 {
		want = append(want, fmt.Sprintf("6000000000%02d", i))
	}
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("walk found %d ACTIVE accounts %q, want %d %q", len(got), got, len(want), want)
	}
	// One ListAccountsForParent page per account (MaxResults 1), at least
	// one call per parent: the counters show the walk's calls.
	st := e.emu.Server.Stats().Accounts[emutest.Account]
	if n := st["ListAccountsForParent"].Calls; n < int64(len(want)) {
		t.Fatalf("ListAccountsForParent counted %d calls for %d accounts", n, len(want))
	}
	if n := st["ListOrganizationalUnitsForParent"].Calls; n < 1+3+5 {
		t.Fatalf("ListOrganizationalUnitsForParent counted %d calls", n)
	}
}

func TestOrganizationDefaultRoles(t *testing.T) {
	fleet := `[{"account": "` + memberB + `", "tags": {"kms-rotator": "enabled"}}]`
	e := start(t, kmsemu.Options{}, fleet)
	if err := e.emu.Server.LoadOrganization(strings.NewReader(orgJSON(t, testOrg()))); err != nil {
		t.Fatal(err)
	}
	roles := e.emu.Server.Roles()
	want := []string{emutest.MemberRole(memberB), emutest.MemberRole(orgMember), emutest.MemberRole(orgAdmin)}
	for i := range bigOUSize {
		want = append(want, emutest.MemberRole(bigAccount(i)))
	}
	sort.Strings(want)
	if !slices.Equal(roles, want) {
		t.Fatalf("default roles = %q\nwant (fleet accounts and ACTIVE members but the management account) %q", roles, want)
	}
	stsc := sts.NewFromConfig(e.emu.Config("us-east-1"), func(o *sts.Options) { o.RetryMaxAttempts = 1 })
	for account, allowed := range map[string]bool{orgMember: true, bigAccount(3): true, memberB: true, emutest.Account: false, orgOld: false, orgOutsider: false} {
		_, err := stsc.AssumeRole(e.ctx, &sts.AssumeRoleInput{RoleArn: aws.String(emutest.MemberRole(account)), RoleSessionName: aws.String("test")})
		want := "AccessDenied"
		if allowed {
			want = ""
		}
		if got := code(t, err); got != want {
			t.Errorf("AssumeRole in %s: error %q, want %q", account, got, want)
		}
	}
	t.Run("explicit Roles replace the default", func(t *testing.T) {
		e := start(t, kmsemu.Options{Roles: []string{emutest.MemberRole(orgOutsider)}}, "")
		if err := e.emu.Server.LoadOrganization(strings.NewReader(orgJSON(t, testOrg()))); err != nil {
			t.Fatal(err)
		}
		if got := e.emu.Server.Roles(); !slices.Equal(got, []string{emutest.MemberRole(orgOutsider)}) {
			t.Fatalf("roles = %q", got)
		}
	})
}

func TestLoadOrganizationRejects(t *testing.T) {
	mod := func(f func(o *kmsemu.Organization)) string {
		o := testOrg()
		f(&o)
		b, _ := json.Marshal(o)
		return string(b)
	}
	unit := func(id, parent string) kmsemu.OrganizationUnit {
		return kmsemu.OrganizationUnit{ID: id, Parent: parent}
	}
	chain := func(n int) []kmsemu.OrganizationUnit {
		var us []kmsemu.OrganizationUnit
		parent := orgRoot
		for i := range n {
			id := fmt.Sprintf("ou-ex12-nest%04d", i)
			us = append(us, unit(id, parent))
			parent = id
		}
		return us
	}
	cases := []struct {
		name, file, want string
	}{
		{"not JSON", `[1,2]`, "not a JSON organization object"},
		{"organization ID", mod(func(o *kmsemu.Organization) { o.ID = "o-short" }), `id "o-short"`},
		{"root ID", mod(func(o *kmsemu.Organization) { o.RootID = "root" }), `rootId "root"`},
		{"management account", mod(func(o *kmsemu.Organization) { o.ManagementAccount = "12345" }), `managementAccount "12345"`},
		{"OU ID", mod(func(o *kmsemu.Organization) { o.Units[0].ID = "ou-ex12-short" }), `units[0]: id "ou-ex12-short"`},
		{"account ID", mod(func(o *kmsemu.Organization) { o.Accounts[1].ID = "4444" }), `accounts[1]: id "4444"`},
		{"unknown OU parent", mod(func(o *kmsemu.Organization) { o.Units[2].Parent = "ou-ex12-zzzzzzzz" }), `units[2] (` + ouBig + `): unknown parent "ou-ex12-zzzzzzzz"`},
		{"unknown account parent", mod(func(o *kmsemu.Organization) { o.Accounts[0].Parent = "r-zz99" }), `accounts[0] (` + orgMember + `): unknown parent "r-zz99"`},
		{"duplicate OU", mod(func(o *kmsemu.Organization) { o.Units = append(o.Units, unit(ouProd, orgRoot)) }), `units[3] (` + ouProd + `): duplicate OU ID`},
		{"duplicate account", mod(func(o *kmsemu.Organization) {
			o.Accounts = append(o.Accounts, kmsemu.OrganizationAccount{ID: orgMember})
		}), "(" + orgMember + "): duplicate account ID"},
		{"cycle", mod(func(o *kmsemu.Organization) { o.Units[1].Parent = ouProd }), "cycle"},
		{"self parent", mod(func(o *kmsemu.Organization) { o.Units[2].Parent = ouBig }), `units[2] (` + ouBig + `): its parents form a cycle`},
		{"six levels", mod(func(o *kmsemu.Organization) { o.Units = chain(6) }), "units[5] (ou-ex12-nest0005): nested 6 levels below the root; AWS allows 5"},
		{"unknown state", mod(func(o *kmsemu.Organization) { o.Accounts[0].State = "GONE" }), `accounts[0] (` + orgMember + `): state "GONE" is not one of ACTIVE, SUSPENDED`},
		{"delegated administrator outside", mod(func(o *kmsemu.Organization) { o.DelegatedAdministrators = []string{orgOutsider} }), `delegatedAdministrators[0]: "` + orgOutsider + `" is not an account`},
		{"delegated management account", mod(func(o *kmsemu.Organization) { o.DelegatedAdministrators = []string{emutest.Account} }), "is the management account"},
		{"bad email", mod(func(o *kmsemu.Organization) { o.Accounts[0].Email = "nobody" }), `email "nobody"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := kmsemu.New(kmsemu.Options{Account: emutest.Account})
			err := s.LoadOrganization(strings.NewReader(tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	t.Run("five levels load", func(t *testing.T) {
		s := kmsemu.New(kmsemu.Options{})
		if err := s.LoadOrganization(strings.NewReader(mod(func(o *kmsemu.Organization) { o.Units = chain(5); o.Accounts = nil; o.DelegatedAdministrators = nil }))); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a rejected file keeps the organization loaded before", func(t *testing.T) {
		e := startOrg(t)
		if err := e.emu.Server.LoadOrganization(strings.NewReader(cases[1].file)); err == nil {
			t.Fatal("bad file loaded")
		}
		out := must[*organizations.DescribeOrganizationOutput](t)(orgClient(e, nil).DescribeOrganization(e.ctx, &organizations.DescribeOrganizationInput{}))
		if aws.ToString(out.Organization.Id) != orgID {
			t.Fatalf("organization = %+v", out.Organization)
		}
	})
	t.Run("an unknown field is a warning", func(t *testing.T) {
		var log emutest.Buffer
		s := kmsemu.New(kmsemu.Options{Log: &log})
		if err := s.LoadOrganization(strings.NewReader(`{"id":"` + orgID + `","managementAccount":"` + orgMember + `","rootId":"` + orgRoot + `","colour":"blue"}`)); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(log.String(), `warning: organization: json: unknown field "colour"`) {
			t.Fatalf("log = %q", log.String())
		}
	})
}

// httpStatus is the HTTP status of an SDK error (0 when it has none).
func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
