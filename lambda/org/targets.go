package org

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"
	"github.com/aws/smithy-go"

	"github.com/kms-rotator/kms-rotator/lambda/emf"
	"github.com/kms-rotator/kms-rotator/lambda/ledger"
	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// TargetsReport is a targets run's answer (docs/design.md "Organization
// mode"): the (account, Region) pairs the organization sweep covers, where
// each account came from, and the accounts of the targeted OUs and roots
// that were left out. Every array is present, empty or not, since the state
// machine selects them by path.
//
// The targets and the accounts go to S3 (Items: the Distributed Map's item
// file; Resolution: this whole report), and the answer keeps only the
// first excluded accounts: an organization of thousands of accounts does
// not fit a Step Functions state (256 KiB), a file in S3 does.
type TargetsReport struct {
	RunID      string            `json:"runId"`
	Mode       request.Mode      `json:"mode"`
	Account    string            `json:"account"`
	Items      *Object           `json:"items,omitempty"`
	Resolution *Object           `json:"resolution,omitempty"`
	Targets    []request.Target  `json:"targets,omitempty"`
	Accounts   []TargetAccount   `json:"accounts,omitempty"`
	Excluded   []ExcludedAccount `json:"excluded"`
	Summary    TargetsSummary    `json:"summary"`
}

// Object is an S3 object of the organization bucket.
type Object struct {
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
}

// TargetAccount is an account the sweep covers; From is the orgTargets entry
// that named it (the account ID itself, or the OU or root it was found under).
type TargetAccount struct {
	Account string `json:"account"`
	From    string `json:"from"`
	Name    string `json:"name,omitempty"`
}

// ExcludedAccount is an account found under a targeted OU or root that the
// sweep leaves out, and why.
type ExcludedAccount struct {
	Account string `json:"account"`
	From    string `json:"from"`
	Name    string `json:"name,omitempty"`
	Reason  string `json:"reason"`
	// State is the account's Organizations state, for not-active.
	State string `json:"state,omitempty"`
}

// TargetsSummary counts the report's arrays.
type TargetsSummary struct {
	Accounts int `json:"accounts"`
	Targets  int `json:"targets"`
	Excluded int `json:"excluded"`
}

// Why an account of a targeted OU or root is left out.
const (
	// ExcludedNotActive: suspended, closing, closed or not yet activated;
	// its keys cannot be used, nor its role assumed.
	ExcludedNotActive = "not-active"
	// ExcludedManagementAccount: a service-managed StackSet never deploys
	// to the management account, so it has no member role
	// (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/stacksets-getting-started-create.html#stacksets-orgs-considerations).
	// Name it by account ID to sweep it anyway.
	ExcludedManagementAccount = "management-account"
)

// orgPageSize is ListAccountsForParent's and
// ListOrganizationalUnitsForParent's largest MaxResults (20).
const orgPageSize = 20

// Resolve runs a targets request: account IDs are kept as given; OUs
// and roots are walked recursively (ListAccountsForParent,
// ListOrganizationalUnitsForParent) and their ACTIVE accounts kept, except
// the management account (DescribeOrganization). The targets are the
// accounts, by ID, each in every orgRegions Region in the given order,
// written to the organization bucket for the Distributed Map. It touches
// no key. It fails — so the sweep fails loudly instead of sweeping less —
// when an OU or root cannot be listed, when nothing is left to sweep, or
// when the resolution cannot be recorded or written.
func (s *Service) Resolve(ctx context.Context, req request.Org, inv Invocation) (*TargetsReport, error) {
	if err := s.answers(req.Mode); err != nil {
		return nil, err
	}
	start := time.Now()
	rep := &TargetsReport{RunID: newRunID(s.now()), Mode: request.ModeTargets, Account: inv.Scope.Account,
		Targets: []request.Target{}, Accounts: []TargetAccount{}, Excluded: []ExcludedAccount{}}
	log := s.log.With("runId", rep.RunID, "mode", string(request.ModeTargets), "requestId", inv.RequestID)
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	fail := func(err error) (*TargetsReport, error) {
		log.Error("targets not resolved; nothing is swept", "error", err.Error())
		s.emitTargets(nil)
		return nil, fmt.Errorf("targets run: %w", err)
	}
	w := &orgWalk{api: s.c.Organizations, self: inv.Scope.Account, seen: map[string]bool{}, rep: rep}
	for _, t := range req.OrgTargets {
		if !request.IsParentID(t) && !w.seen[t] {
			w.seen[t] = true
			rep.Accounts = append(rep.Accounts, TargetAccount{Account: t, From: t})
		}
	}
	for _, t := range req.OrgTargets {
		if !request.IsParentID(t) {
			continue
		}
		if w.api == nil {
			return fail(errors.New("organization mode has no Organizations client"))
		}
		if err := w.walk(ctx, t); err != nil {
			return fail(err)
		}
	}
	sort.Slice(rep.Accounts, func(i, j int) bool { return rep.Accounts[i].Account < rep.Accounts[j].Account })
	sort.Slice(rep.Excluded, func(i, j int) bool { return rep.Excluded[i].Account < rep.Excluded[j].Account })
	for _, a := range rep.Accounts {
		for _, region := range req.OrgRegions {
			rep.Targets = append(rep.Targets, request.Target{Account: a.Account, Region: region})
		}
	}
	rep.Summary = TargetsSummary{Accounts: len(rep.Accounts), Targets: len(rep.Targets), Excluded: len(rep.Excluded)}
	for _, x := range rep.Excluded {
		log.Info("account excluded", "account", x.Account, "from", x.From, "reason", x.Reason, "state", x.State)
	}
	if len(rep.Targets) == 0 {
		return fail(fmt.Errorf("orgTargets %v hold no active account to sweep (%d excluded): check the OU and root IDs", req.OrgTargets, len(rep.Excluded)))
	}
	// Recorded before anything is swept: a sweep request naming an account
	// is checked against this record (Check).
	if err := s.record(ctx, rep, req.OrgRegions); err != nil {
		return fail(err)
	}
	if err := s.writeTargets(ctx, rep, req.Execution); err != nil {
		return fail(err)
	}
	log.Info("targets resolved", "accounts", rep.Summary.Accounts, "targets", rep.Summary.Targets,
		"excluded", rep.Summary.Excluded, "organizationCalls", w.calls, "durationMs", time.Since(start).Milliseconds(),
		"items", rep.Items)
	s.emitTargets(rep)
	return rep, nil
}

// record keeps the resolved accounts and Regions in the ledger.
func (s *Service) record(ctx context.Context, rep *TargetsReport, regions []string) error {
	if s.c.Ledger == nil {
		return errors.New("no ledger to record the targets in")
	}
	accounts := make([]string, len(rep.Accounts))
	for i, a := range rep.Accounts {
		accounts[i] = a.Account
	}
	return s.c.Ledger.RecordTargets(ctx, ledger.Resolution{RunID: rep.RunID, At: s.now().UTC(), Accounts: accounts, Regions: regions})
}

// orgWalk lists the accounts under targeted OUs and roots.
type orgWalk struct {
	api  OrganizationsAPI
	self string // the function's account, for error messages
	// management is the management account ("" until asked).
	management string
	seen       map[string]bool // accounts already in the report
	visited    map[string]bool // OUs and roots already listed
	rep        *TargetsReport
	calls      int
}

// walk lists from's accounts and those of every OU below it, breadth first.
func (w *orgWalk) walk(ctx context.Context, from string) error {
	if w.management == "" {
		w.calls++
		out, err := w.api.DescribeOrganization(ctx, &organizations.DescribeOrganizationInput{})
		if err != nil {
			return w.explain(from, from, err)
		}
		if out.Organization != nil {
			w.management = aws.ToString(out.Organization.MasterAccountId)
		}
	}
	if w.visited == nil {
		w.visited = map[string]bool{}
	}
	queue := []string{from}
	for len(queue) > 0 {
		parent := queue[0]
		queue = queue[1:]
		if w.visited[parent] {
			continue
		}
		w.visited[parent] = true
		accounts := organizations.NewListAccountsForParentPaginator(w.api, &organizations.ListAccountsForParentInput{
			ParentId: aws.String(parent), MaxResults: aws.Int32(orgPageSize)})
		for accounts.HasMorePages() {
			w.calls++
			page, err := accounts.NextPage(ctx)
			if err != nil {
				return w.explain(from, parent, err)
			}
			for _, a := range page.Accounts {
				w.account(a, from)
			}
		}
		units := organizations.NewListOrganizationalUnitsForParentPaginator(w.api, &organizations.ListOrganizationalUnitsForParentInput{
			ParentId: aws.String(parent), MaxResults: aws.Int32(orgPageSize)})
		for units.HasMorePages() {
			w.calls++
			page, err := units.NextPage(ctx)
			if err != nil {
				return w.explain(from, parent, err)
			}
			for _, u := range page.OrganizationalUnits {
				queue = append(queue, aws.ToString(u.Id))
			}
		}
	}
	return nil
}

// account files one listed account as a target or as excluded; the first
// orgTargets entry that reaches an account names it.
func (w *orgWalk) account(a orgtypes.Account, from string) {
	id := aws.ToString(a.Id)
	if id == "" || w.seen[id] {
		return
	}
	w.seen[id] = true
	name := aws.ToString(a.Name)
	switch {
	case id == w.management:
		w.rep.Excluded = append(w.rep.Excluded, ExcludedAccount{Account: id, From: from, Name: name, Reason: ExcludedManagementAccount})
	case a.State != orgtypes.AccountStateActive:
		// Account.State replaced Account.Status (retired 2026-09-09,
		// https://docs.aws.amazon.com/organizations/latest/APIReference/API_Account.html).
		w.rep.Excluded = append(w.rep.Excluded, ExcludedAccount{Account: id, From: from, Name: name, Reason: ExcludedNotActive, State: string(a.State)})
	default:
		w.rep.Accounts = append(w.rep.Accounts, TargetAccount{Account: id, From: from, Name: name})
	}
}

// explain turns an Organizations error into one naming the orgTargets entry
// and what to fix.
func (w *orgWalk) explain(from, parent string, err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ParentNotFoundException":
			return fmt.Errorf("orgTargets: %s is not a root or OU of the organization (%s: %s)", parent, ae.ErrorCode(), ae.ErrorMessage())
		case "AccessDeniedException", "AWSOrganizationsNotInUseException":
			return fmt.Errorf("listing the accounts of %s needs account %s to be the organization's management account or a delegated administrator, and the function's role to allow organizations:DescribeOrganization, organizations:ListAccountsForParent and organizations:ListOrganizationalUnitsForParent (%s: %s)",
				from, w.self, ae.ErrorCode(), ae.ErrorMessage())
		}
	}
	if parent != from {
		return fmt.Errorf("listing the accounts of %s (under %s): %w", parent, from, err)
	}
	return fmt.Errorf("listing the accounts of %s: %w", from, err)
}

// emitTargets writes a targets run's EMF line (dimension [Mode]): the
// counts of a resolved run, or RunsFailed when rep is nil.
func (s *Service) emitTargets(rep *TargetsReport) {
	metrics := []emf.Metric{{Name: settings.MetricRunsFailed, Unit: emf.Count, Value: 1}}
	if rep != nil {
		metrics = []emf.Metric{
			{Name: settings.MetricRunsCompleted, Unit: emf.Count, Value: 1},
			{Name: settings.MetricTargetsResolved, Unit: emf.Count, Value: float64(rep.Summary.Targets)},
			{Name: settings.MetricAccountsExcluded, Unit: emf.Count, Value: float64(rep.Summary.Excluded)},
		}
	}
	s.emit(request.ModeTargets, metrics)
}
