package kmsemu

import (
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// AWS Organizations, as far as organization mode reads it: the function
// learns the management account (DescribeOrganization) and walks target OUs
// (ListOrganizationalUnitsForParent, ListAccountsForParent) to find the
// accounts to sweep. The operations speak the AWS JSON 1.1 protocol with
// X-Amz-Target AWSOrganizationsV20161128.<Operation>, as the Organizations
// API reference documents them
// (https://docs.aws.amazon.com/organizations/latest/APIReference/), and are
// answered for the account of the signing credentials (sts.go), so a test
// can call them as the management account, a delegated administrator or any
// other account. One organization is loaded from a file
// (LoadOrganization); without one every call is
// AWSOrganizationsNotInUseException.

// Organization is an organization file (kmslocal -organization,
// docs/kmslocal.md "Organizations"): one organization, its root, its OUs and
// its accounts.
type Organization struct {
	// ID is the organization ID, o- and 10–32 lowercase letters or digits.
	ID string `json:"id"`
	// ManagementAccount is the 12-digit management account. It is a member
	// of the organization, in the root unless Accounts lists it elsewhere.
	ManagementAccount string `json:"managementAccount"`
	// DelegatedAdministrators are member accounts that, besides the
	// management account, may call the List operations.
	DelegatedAdministrators []string `json:"delegatedAdministrators,omitempty"`
	// RootID is the root's ID, r- and 4–32 lowercase letters or digits.
	RootID string `json:"rootId"`
	// Units are the organizational units.
	Units []OrganizationUnit `json:"units,omitempty"`
	// Accounts are the member accounts.
	Accounts []OrganizationAccount `json:"accounts,omitempty"`
}

// OrganizationUnit is one OU of an organization file.
type OrganizationUnit struct {
	// ID is ou-, 4–32 lowercase letters or digits, -, 8–32 more.
	ID string `json:"id"`
	// Name is the OU's friendly name (default: its ID).
	Name string `json:"name,omitempty"`
	// Parent is the root's ID or another OU's.
	Parent string `json:"parent"`
}

// OrganizationAccount is one account of an organization file.
type OrganizationAccount struct {
	// ID is the 12-digit account ID.
	ID string `json:"id"`
	// Name is the account's friendly name (default account-ID; for the
	// management account, management).
	Name string `json:"name,omitempty"`
	// Email is the account's email address (default aws+ID@example.com).
	Email string `json:"email,omitempty"`
	// Parent is the root's ID (the default) or an OU's.
	Parent string `json:"parent,omitempty"`
	// State is ACTIVE (the default), SUSPENDED, PENDING_CLOSURE, CLOSED or
	// PENDING_ACTIVATION, in any case.
	State string `json:"state,omitempty"`
	// DisabledRegions are opt-in Regions the account has not enabled: STS
	// refuses to issue its roles' credentials there (AssumeRole answers
	// RegionDisabledException).
	DisabledRegions []string `json:"disabledRegions,omitempty"`
}

// maxOUDepth is how deep OUs nest under the root: "You can nest OUs up to
// five levels deep" (Organizations quotas,
// https://docs.aws.amazon.com/organizations/latest/userguide/orgs_reference_limits.html).
const maxOUDepth = 5

var (
	// The ID patterns of the Organizations API reference.
	orgIDPattern  = regexp.MustCompile(`^o-[a-z0-9]{10,32}$`)
	rootIDPattern = regexp.MustCompile(`^r-[0-9a-z]{4,32}$`)
	ouIDPattern   = regexp.MustCompile(`^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$`)
	emailPattern  = regexp.MustCompile(`^[^\s@]+@[^\s@]+\.[^\s@]+$`)
	accountStates = []string{"ACTIVE", "SUSPENDED", "PENDING_CLOSURE", "CLOSED", "PENDING_ACTIVATION"}
)

// org is a loaded organization.
type org struct {
	id, mgmt, rootID string
	delegated        map[string]bool
	units            map[string]*OrganizationUnit
	accounts         map[string]*OrganizationAccount
	// Children of the root and of each OU, sorted by ID: the stable order
	// the List operations answer in.
	childUnits    map[string][]*OrganizationUnit
	childAccounts map[string][]*OrganizationAccount
	joined        time.Time
}

// LoadOrganizationFile loads the organization of a file; see LoadOrganization.
func (s *Server) LoadOrganizationFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("organization: %w", err)
	}
	defer f.Close()
	if err := s.LoadOrganization(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// LoadOrganization loads an organization file (a JSON Organization),
// replacing any organization loaded before. It checks the whole file first
// and changes nothing when it is invalid; the error names the bad entry. An
// unknown field is reported on the log and ignored. The organization's
// ACTIVE accounts other than the management account get DefaultMemberRole
// when Options.Roles is nil.
func (s *Server) LoadOrganization(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("organization: %w", err)
	}
	var in Organization
	if err := s.decodeLenient(data, &in, "organization", "a JSON organization object"); err != nil {
		return err
	}
	o, err := buildOrg(&in)
	if err != nil {
		return fmt.Errorf("organization: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o.joined = s.opts.Now().UTC().Truncate(time.Second)
	s.org = o
	return nil
}

// buildOrg checks an organization file and indexes it.
func buildOrg(in *Organization) (*org, error) {
	switch {
	case !orgIDPattern.MatchString(in.ID):
		return nil, fmt.Errorf("id %q must be o- and 10 to 32 lowercase letters or digits", in.ID)
	case !accountPattern.MatchString(in.ManagementAccount):
		return nil, fmt.Errorf("managementAccount %q must be 12 digits", in.ManagementAccount)
	case !rootIDPattern.MatchString(in.RootID):
		return nil, fmt.Errorf("rootId %q must be r- and 4 to 32 lowercase letters or digits", in.RootID)
	}
	o := &org{
		id: in.ID, mgmt: in.ManagementAccount, rootID: in.RootID,
		delegated:     map[string]bool{},
		units:         map[string]*OrganizationUnit{},
		accounts:      map[string]*OrganizationAccount{},
		childUnits:    map[string][]*OrganizationUnit{},
		childAccounts: map[string][]*OrganizationAccount{},
	}
	for i := range in.Units {
		u := in.Units[i]
		where := fmt.Sprintf("units[%d] (%s)", i, u.ID)
		switch {
		case !ouIDPattern.MatchString(u.ID):
			return nil, fmt.Errorf("units[%d]: id %q must be ou-, 4 to 32 lowercase letters or digits, -, then 8 to 32 more", i, u.ID)
		case o.units[u.ID] != nil:
			return nil, fmt.Errorf("%s: duplicate OU ID", where)
		case len(u.Name) > 128:
			return nil, fmt.Errorf("%s: name longer than 128 characters", where)
		}
		if u.Name == "" {
			u.Name = u.ID
		}
		o.units[u.ID] = &u
	}
	for i, u := range in.Units {
		if u.Parent != o.rootID && o.units[u.Parent] == nil {
			return nil, fmt.Errorf("units[%d] (%s): unknown parent %q (neither rootId nor a unit)", i, u.ID, u.Parent)
		}
	}
	for i := range in.Units {
		u := o.units[in.Units[i].ID]
		where := fmt.Sprintf("units[%d] (%s)", i, u.ID)
		depth, p := 1, u.Parent
		for p != o.rootID {
			if p == u.ID || depth > len(in.Units) {
				return nil, fmt.Errorf("%s: its parents form a cycle that never reaches the root", where)
			}
			p = o.units[p].Parent
			depth++
		}
		if depth > maxOUDepth {
			return nil, fmt.Errorf("%s: nested %d levels below the root; AWS allows %d", where, depth, maxOUDepth)
		}
		o.childUnits[u.Parent] = append(o.childUnits[u.Parent], u)
	}
	for i := range in.Accounts {
		a := in.Accounts[i]
		where := fmt.Sprintf("accounts[%d] (%s)", i, a.ID)
		if a.Parent == "" {
			a.Parent = o.rootID
		}
		a.State = canon(strings.TrimSpace(a.State), accountStates...)
		if a.State == "" {
			a.State = "ACTIVE"
		}
		switch {
		case !accountPattern.MatchString(a.ID):
			return nil, fmt.Errorf("accounts[%d]: id %q must be 12 digits", i, a.ID)
		case o.accounts[a.ID] != nil:
			return nil, fmt.Errorf("%s: duplicate account ID", where)
		case a.Parent != o.rootID && o.units[a.Parent] == nil:
			return nil, fmt.Errorf("%s: unknown parent %q (neither rootId nor a unit)", where, a.Parent)
		case len(a.Name) > 50:
			return nil, fmt.Errorf("%s: name longer than 50 characters", where)
		case a.Email != "" && (!emailPattern.MatchString(a.Email) || len(a.Email) < 6 || len(a.Email) > 64):
			return nil, fmt.Errorf("%s: email %q is not an email address of 6 to 64 characters", where, a.Email)
		}
		if err := oneOf("state", a.State, accountStates...); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		for j, r := range a.DisabledRegions {
			if !validRegion.MatchString(r) {
				return nil, fmt.Errorf("%s: disabledRegions[%d] %q is not a Region name", where, j, r)
			}
		}
		o.accounts[a.ID] = &a
	}
	if o.accounts[o.mgmt] == nil {
		o.accounts[o.mgmt] = &OrganizationAccount{ID: o.mgmt, Parent: o.rootID, State: "ACTIVE"}
	}
	for _, a := range o.accounts {
		if a.Name == "" {
			a.Name = "account-" + a.ID
			if a.ID == o.mgmt {
				a.Name = "management"
			}
		}
		if a.Email == "" {
			a.Email = "aws+" + a.ID + "@example.com"
		}
		o.childAccounts[a.Parent] = append(o.childAccounts[a.Parent], a)
	}
	for i, d := range in.DelegatedAdministrators {
		switch {
		case o.accounts[d] == nil:
			return nil, fmt.Errorf("delegatedAdministrators[%d]: %q is not an account of the organization", i, d)
		case d == o.mgmt:
			return nil, fmt.Errorf("delegatedAdministrators[%d]: %s is the management account, which cannot be a delegated administrator", i, d)
		}
		o.delegated[d] = true
	}
	for _, l := range o.childUnits {
		sort.Slice(l, func(i, j int) bool { return l[i].ID < l[j].ID })
	}
	for _, l := range o.childAccounts {
		sort.Slice(l, func(i, j int) bool { return l[i].ID < l[j].ID })
	}
	return o, nil
}

// memberAccounts returns the accounts that get DefaultMemberRole by
// default: the ACTIVE ones but the management account, where a
// service-managed StackSet deploys the member role.
func (o *org) memberAccounts() []string {
	var out []string
	for id, a := range o.accounts {
		if a.State == "ACTIVE" && id != o.mgmt {
			out = append(out, id)
		}
	}
	return out
}

func (o *org) arn(kind, id string) string {
	if kind == "organization" {
		return fmt.Sprintf("arn:aws:organizations::%s:organization/%s", o.mgmt, o.id)
	}
	return fmt.Sprintf("arn:aws:organizations::%s:%s/%s/%s", o.mgmt, kind, o.id, id)
}

// The Organizations errors the emulator answers: the service's own error
// codes (each operation's "Errors" section), HTTP 400, with Message (and
// InvalidInputException's Reason) as the service sends them.
func errOrgNotInUse() *apiError {
	return errf(400, "AWSOrganizationsNotInUseException", "Your account is not a member of an organization.")
}

func errOrgAccessDenied() *apiError {
	return errf(400, "AccessDeniedException", "You don't have permissions to access this resource.")
}

func errOrgInput(reason, format string, args ...any) *apiError {
	e := errf(400, "InvalidInputException", format, args...)
	e.reason = reason
	return e
}

// orgCaller returns the organization for a call from c.account. Any member
// account may describe its organization; only the management account and
// delegated administrators may list (admin). An account outside the
// organization is not a member of any: AWSOrganizationsNotInUseException.
func (s *Server) orgCaller(c *call, admin bool) (*org, *apiError) {
	o := s.org
	if o == nil || o.accounts[c.account] == nil {
		return nil, errOrgNotInUse()
	}
	if admin && c.account != o.mgmt && !o.delegated[c.account] {
		return nil, errOrgAccessDenied()
	}
	return o, nil
}

// orgListInput is the input of the List operations.
type orgListInput struct {
	ParentID   *string `json:"ParentId"`
	NextToken  *string `json:"NextToken"`
	MaxResults *int    `json:"MaxResults"`
}

// orgMaxResults is the documented range of MaxResults; without it a page
// has the most.
const orgMaxResults = 20

// page picks the part of n items a request asks for: from its NextToken
// (opaque; bound to the organization, the operation and the parent, so a
// token of another list is INVALID_NEXT_TOKEN), at most MaxResults. next is
// the token of the rest, "" at the end.
func (in *orgListInput) page(o *org, op, parent string, n int) (from, to int, next string, err *apiError) {
	size := orgMaxResults
	if in.MaxResults != nil {
		switch m := *in.MaxResults; {
		case m < 1:
			return 0, 0, "", errOrgInput("MIN_VALUE_EXCEEDED", "MaxResults %d is below the minimum of 1.", m)
		case m > orgMaxResults:
			return 0, 0, "", errOrgInput("MAX_VALUE_EXCEEDED", "MaxResults %d is above the maximum of %d.", m, orgMaxResults)
		default:
			size = m
		}
	}
	scope := o.id + "/" + op + "/" + parent + "/"
	if in.NextToken != nil {
		raw, derr := base64.RawURLEncoding.DecodeString(*in.NextToken)
		rest, ok := strings.CutPrefix(string(raw), scope)
		off, aerr := strconv.Atoi(rest)
		if derr != nil || !ok || aerr != nil || off <= 0 || off >= n {
			return 0, 0, "", errOrgInput("INVALID_NEXT_TOKEN", "The NextToken is not one this operation returned for this parent.")
		}
		from = off
	}
	to = min(from+size, n)
	if to < n {
		next = base64.RawURLEncoding.EncodeToString([]byte(scope + strconv.Itoa(to)))
	}
	return from, to, next, nil
}

// parent checks the ParentId of a List request and returns it.
func (in *orgListInput) parent(c *call, o *org) (string, *apiError) {
	if in.ParentID == nil || *in.ParentID == "" {
		return "", errOrgInput("INPUT_REQUIRED", "ParentId is required.")
	}
	p := *in.ParentID
	c.key = p
	if !rootIDPattern.MatchString(p) && !ouIDPattern.MatchString(p) {
		return "", errOrgInput("INVALID_PATTERN", "ParentId %q is not a root ID (r-…) or an OU ID (ou-…-…).", p)
	}
	if p != o.rootID && o.units[p] == nil {
		return "", errf(400, "ParentNotFoundException", "We can't find a root or OU with the ParentId that you specified.")
	}
	return p, nil
}

// orgList decodes a List request of an administrator and returns the
// organization, the checked parent (none for ListRoots) and the input.
func (s *Server) orgList(c *call, body []byte, withParent bool) (*org, string, *orgListInput, *apiError) {
	o, err := s.orgCaller(c, true)
	if err != nil {
		return nil, "", nil, err
	}
	var in orgListInput
	if err := decode(body, &in); err != nil {
		return nil, "", nil, err
	}
	parent := ""
	if withParent {
		if parent, err = in.parent(c, o); err != nil {
			return nil, "", nil, err
		}
	}
	return o, parent, &in, nil
}

// DescribeOrganization:
// https://docs.aws.amazon.com/organizations/latest/APIReference/API_DescribeOrganization.html
func (s *Server) describeOrganization(c *call, _ []byte) (any, *apiError) {
	o, err := s.orgCaller(c, false)
	if err != nil {
		return nil, err
	}
	type organization struct {
		Arn                  string   `json:"Arn"`
		AvailablePolicyTypes []string `json:"AvailablePolicyTypes"`
		FeatureSet           string   `json:"FeatureSet"`
		ID                   string   `json:"Id"`
		MasterAccountArn     string   `json:"MasterAccountArn"`
		MasterAccountEmail   string   `json:"MasterAccountEmail"`
		MasterAccountID      string   `json:"MasterAccountId"`
	}
	return struct {
		Organization organization `json:"Organization"`
	}{organization{
		Arn: o.arn("organization", ""), AvailablePolicyTypes: []string{}, FeatureSet: "ALL", ID: o.id,
		MasterAccountArn: o.arn("account", o.mgmt), MasterAccountEmail: o.accounts[o.mgmt].Email, MasterAccountID: o.mgmt,
	}}, nil
}

// ListRoots: https://docs.aws.amazon.com/organizations/latest/APIReference/API_ListRoots.html
// An organization has one root.
func (s *Server) listRoots(c *call, body []byte) (any, *apiError) {
	o, _, in, err := s.orgList(c, body, false)
	if err != nil {
		return nil, err
	}
	from, to, next, err := in.page(o, c.op, "", 1)
	if err != nil {
		return nil, err
	}
	type root struct {
		Arn         string   `json:"Arn"`
		ID          string   `json:"Id"`
		Name        string   `json:"Name"`
		PolicyTypes []string `json:"PolicyTypes"`
	}
	all := []root{{Arn: o.arn("root", o.rootID), ID: o.rootID, Name: "Root", PolicyTypes: []string{}}}
	return struct {
		Roots     []root `json:"Roots"`
		NextToken string `json:"NextToken,omitempty"`
	}{all[from:to], next}, nil
}

// ListAccountsForParent:
// https://docs.aws.amazon.com/organizations/latest/APIReference/API_ListAccountsForParent.html
// The accounts directly in the parent, in every state, by account ID.
// Account.Status was retired on 2026-09-09: only State is answered.
func (s *Server) listAccountsForParent(c *call, body []byte) (any, *apiError) {
	o, parent, in, err := s.orgList(c, body, true)
	if err != nil {
		return nil, err
	}
	all := o.childAccounts[parent]
	from, to, next, err := in.page(o, c.op, parent, len(all))
	if err != nil {
		return nil, err
	}
	type account struct {
		Arn             string   `json:"Arn"`
		Email           string   `json:"Email"`
		ID              string   `json:"Id"`
		JoinedMethod    string   `json:"JoinedMethod"`
		JoinedTimestamp *float64 `json:"JoinedTimestamp"`
		Name            string   `json:"Name"`
		State           string   `json:"State"`
	}
	out := make([]account, 0, to-from)
	for _, a := range all[from:to] {
		out = append(out, account{o.arn("account", a.ID), a.Email, a.ID, "CREATED", epoch(o.joined), a.Name, a.State})
	}
	return struct {
		Accounts  []account `json:"Accounts"`
		NextToken string    `json:"NextToken,omitempty"`
	}{out, next}, nil
}

// ListOrganizationalUnitsForParent:
// https://docs.aws.amazon.com/organizations/latest/APIReference/API_ListOrganizationalUnitsForParent.html
// The OUs directly in the parent, by OU ID.
func (s *Server) listOrganizationalUnitsForParent(c *call, body []byte) (any, *apiError) {
	o, parent, in, err := s.orgList(c, body, true)
	if err != nil {
		return nil, err
	}
	all := o.childUnits[parent]
	from, to, next, err := in.page(o, c.op, parent, len(all))
	if err != nil {
		return nil, err
	}
	type unit struct {
		Arn  string `json:"Arn"`
		ID   string `json:"Id"`
		Name string `json:"Name"`
	}
	out := make([]unit, 0, to-from)
	for _, u := range all[from:to] {
		out = append(out, unit{o.arn("ou", u.ID), u.ID, u.Name})
	}
	return struct {
		OrganizationalUnits []unit `json:"OrganizationalUnits"`
		NextToken           string `json:"NextToken,omitempty"`
	}{out, next}, nil
}
