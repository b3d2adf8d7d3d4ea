package rotator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"
	"github.com/aws/smithy-go"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// OrganizationsAPI is the part of the AWS Organizations client a targets run
// calls. Organizations answers these only to the organization's management
// account or a delegated administrator
// (https://docs.aws.amazon.com/organizations/latest/APIReference/API_ListAccountsForParent.html).
type OrganizationsAPI interface {
	DescribeOrganization(ctx context.Context, params *organizations.DescribeOrganizationInput, optFns ...func(*organizations.Options)) (*organizations.DescribeOrganizationOutput, error)
	ListAccountsForParent(ctx context.Context, params *organizations.ListAccountsForParentInput, optFns ...func(*organizations.Options)) (*organizations.ListAccountsForParentOutput, error)
	ListOrganizationalUnitsForParent(ctx context.Context, params *organizations.ListOrganizationalUnitsForParentInput, optFns ...func(*organizations.Options)) (*organizations.ListOrganizationalUnitsForParentOutput, error)
}

// SetOrganizations gives the engine the Organizations client a targets run
// lists OUs and roots with (organization mode). Call it before the first Run.
func (e *Engine) SetOrganizations(api OrganizationsAPI) { e.orgs = api }

// TargetsReport is a targets run's answer (docs/design.md "Organization
// mode"): the (account, Region) pairs the organization sweep covers, where
// each account came from, and the accounts of the targeted OUs and roots
// that were left out. Every array is present, empty or not, since the state
// machine selects them by path.
type TargetsReport struct {
	RunID    string            `json:"runId"`
	Mode     request.Mode      `json:"mode"`
	Account  string            `json:"account"`
	Targets  []request.Target  `json:"targets"`
	Accounts []TargetAccount   `json:"accounts"`
	Excluded []ExcludedAccount `json:"excluded"`
	Summary  TargetsSummary    `json:"summary"`
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

// Step Functions passes at most 256 KiB between states
// (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html#service-limits-task-executions).
// The sweep's largest state is its output, one result of up to about 200
// bytes per swept target (infra/orgflow.go), so a sweep holds at most
// MaxSweepTargets targets; and this answer itself must fit, with room for
// the Lambda integration's envelope.
const (
	MaxSweepTargets       = 1000
	maxTargetsReportBytes = 250 << 10
)

// orgPageSize is ListAccountsForParent's and
// ListOrganizationalUnitsForParent's largest MaxResults (20).
const orgPageSize = 20

// ResolveTargets runs a targets request: account IDs are kept as given; OUs
// and roots are walked recursively (ListAccountsForParent,
// ListOrganizationalUnitsForParent) and their ACTIVE accounts kept, except
// the management account (DescribeOrganization). The targets are the
// accounts, by ID, each in every orgRegions Region in the given order. It
// touches no key. It fails — so the sweep fails loudly instead of sweeping
// less — when an OU or root cannot be listed, when nothing is left to
// sweep, or when the targets would not fit the sweep's Step Functions
// states.
func (e *Engine) ResolveTargets(ctx context.Context, req request.Request, inv Invocation) (*TargetsReport, error) {
	start := time.Now()
	rep := &TargetsReport{RunID: newRunID(e.now()), Mode: request.ModeTargets, Account: inv.Scope.Account,
		Targets: []request.Target{}, Accounts: []TargetAccount{}, Excluded: []ExcludedAccount{}}
	log := e.log.With("runId", rep.RunID, "mode", string(request.ModeTargets), "requestId", inv.RequestID)
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-e.margin(time.Until(dl))/2))
		defer cancel()
	}
	fail := func(err error) (*TargetsReport, error) {
		log.Error("targets not resolved; nothing is swept", "error", err.Error())
		e.emitTargets(nil)
		return nil, fmt.Errorf("targets run: %w", err)
	}
	w := &orgWalk{api: e.orgs, self: inv.Scope.Account, seen: map[string]bool{}, rep: rep}
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
	if n := len(rep.Targets); n > MaxSweepTargets {
		return fail(fmt.Errorf("%d targets (%d accounts × %d Regions) are more than one sweep carries (%d; a Step Functions state holds 256 KiB): split orgTargets across deployments or sweep fewer Regions",
			n, len(rep.Accounts), len(req.OrgRegions), MaxSweepTargets))
	}
	if b, err := json.Marshal(rep); err == nil && len(b) > maxTargetsReportBytes {
		return fail(fmt.Errorf("%d targets (%d accounts × %d Regions) take %d bytes, more than a Step Functions state carries (256 KiB): split orgTargets across deployments or sweep fewer Regions",
			len(rep.Targets), len(rep.Accounts), len(req.OrgRegions), len(b)))
	}
	log.Info("targets resolved", "accounts", rep.Summary.Accounts, "targets", rep.Summary.Targets,
		"excluded", rep.Summary.Excluded, "organizationCalls", w.calls, "durationMs", time.Since(start).Milliseconds())
	e.emitTargets(rep)
	return rep, nil
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
func (e *Engine) emitTargets(rep *TargetsReport) {
	dims := [][2]string{{settings.DimMode, string(request.ModeTargets)}}
	metrics := []emfMetric{{settings.MetricRunsFailed, unitCount, 1}}
	if rep != nil {
		metrics = []emfMetric{
			{settings.MetricRunsCompleted, unitCount, 1},
			{settings.MetricTargetsResolved, unitCount, float64(rep.Summary.Targets)},
			{settings.MetricAccountsExcluded, unitCount, float64(rep.Summary.Excluded)},
		}
	}
	if b, err := emfLine(e.cfg.MetricsNamespace, e.now(), dims, metrics); err == nil {
		e.writeMetrics([][]byte{b})
	}
}
