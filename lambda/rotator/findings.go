package rotator

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"golang.org/x/time/rate"

	"github.com/kms-rotator/kms-rotator/lambda/hub"
)

// SecurityHubAPI is the part of the Security Hub client (lambda/hub) the
// engine calls.
type SecurityHubAPI interface {
	BatchImportFindings(ctx context.Context, findings []hub.Finding) (success int, failed []hub.Failed, err error)
	GetFindings(ctx context.Context, filters hub.Filters, nextToken string) ([]hub.Finding, string, error)
}

// SetSecurityHub gives the engine the Security Hub client of the function's
// own account (ROTATOR_SECURITY_HUB): keys that need action become
// findings. In organization mode a member account's findings go through
// its member role: Security Hub takes a finding only from the account it
// belongs to (or its administrator)
// (https://docs.aws.amazon.com/securityhub/latest/userguide/finding-update-batchimportfindings.html).
// own gives the client of the function's own account in a Region (a
// target run of the own account may work in another Region than the
// function's).
func (e *Engine) SetSecurityHub(own func(region string) SecurityHubAPI, member func(ctx context.Context, partition, account, region string) (SecurityHubAPI, error)) {
	e.out.hub, e.out.memberHub = own, member
}

// Finding conditions: a key that needs someone's action.
const (
	condOverdue  = "overdue"
	condBudget   = "budget-exhausted"
	condStuck    = "stuck"
	condMaterial = "material-expiring"
)

// generatorPrefix starts every finding's GeneratorId and Id.
const generatorPrefix = "kms-rotator/"

// findingBatch is BatchImportFindings' largest batch (100 findings), and
// findingsRPS its pace: the operation allows 10 requests a second, with a
// burst of 30
// (https://docs.aws.amazon.com/securityhub/1.0/APIReference/API_BatchImportFindings.html).
const (
	findingBatch = 100
	findingsRPS  = 5
)

var findingsLimiter = rate.NewLimiter(findingsRPS, 1)

// conditions returns the finding conditions an entry holds, each with its
// severity and sentence.
func conditions(k KeyReport) [][3]string {
	var out [][3]string
	if k.Overdue != nil && *k.Overdue && k.OverdueFor == OverdueForAction {
		out = append(out, [3]string{condOverdue, "MEDIUM", "the key's material is older than its rotation interval and kms-rotator could not rotate it: " + string(k.Outcome) + "/" + string(k.Reason)})
	}
	if k.Reason == ReasonBudgetExhausted {
		out = append(out, [3]string{condBudget, "MEDIUM", "the key has no on-demand rotation left in its lifetime: it can only be replaced"})
	}
	if k.Stuck {
		out = append(out, [3]string{condStuck, "HIGH", "an on-demand rotation of the key has been in progress for longer than ROTATOR_STUCK_AFTER"})
	}
	if k.MaterialExpiringSoon {
		out = append(out, [3]string{condMaterial, "HIGH", "the key's imported material expires within ROTATOR_NOTICE_DAYS (or has): the key becomes unusable"})
	}
	return out
}

// findingBook gathers the run's evaluated keys and their conditions, and
// publishes them when the keys are done.
type findingBook struct {
	r    *run
	mu   sync.Mutex
	seen map[string]bool // key ARNs this run evaluated
	want []hub.Finding
}

func (b *findingBook) add(k KeyReport) {
	r := b.r
	if k.KeyARN == "" {
		return
	}
	now := fmtTime(r.e.now())
	partition, region, account := partitionOf(k.KeyARN), regionOf(k.KeyARN), accountOf(k.KeyARN)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seen[k.KeyARN] = true
	for _, c := range conditions(k) {
		b.want = append(b.want, hub.Finding{
			SchemaVersion: "2018-10-08",
			ID:            findingID(c[0], k.KeyARN),
			ProductArn:    productARN(partition, region, account),
			GeneratorID:   generatorPrefix + c[0],
			AwsAccountID:  account,
			Region:        region,
			Types:         []string{"Software and Configuration Checks/Industry and Regulatory Standards/PCI-DSS"},
			CreatedAt:     now,
			UpdatedAt:     now,
			Severity:      hub.Severity{Label: c[1]},
			Title:         "KMS key needs action: " + c[0],
			Description:   c[2],
			Resources:     []hub.Resource{{Type: "AwsKmsKey", ID: k.KeyARN, Partition: partition, Region: region}},
			Compliance: &hub.Compliance{Status: "FAILED",
				// Cryptographic keys changed at the end of their
				// cryptoperiod (PCI DSS v4.0 3.6.4 / 3.7.4).
				RelatedRequirements: []string{"PCI DSS 3.6.4", "PCI DSS 3.7.4"}},
			Workflow:    &hub.Workflow{Status: "NEW"},
			RecordState: recordActive,
		})
	}
}

// Record states of a finding.
const (
	recordActive   = "ACTIVE"
	recordArchived = "ARCHIVED"
)

// findingID is a finding's Id: one per key and condition, so a condition
// that persists updates its finding instead of adding one each run.
func findingID(cond, keyARN string) string { return generatorPrefix + cond + "/" + keyARN }

// productARN is the default product of an account's own findings.
func productARN(partition, region, account string) string {
	return "arn:" + partition + ":securityhub:" + region + ":" + account + ":product/" + account + "/default"
}

// publish imports the run's findings and archives this product's
// active findings of keys this run evaluated whose condition cleared, per
// account (its own client, or the member's). Failures are logged; they
// never fail the run.
func (b *findingBook) publish(ctx context.Context) {
	if b == nil {
		return
	}
	r := b.r
	byAccount := map[string][]hub.Finding{}
	for _, f := range b.want {
		byAccount[f.AwsAccountID] = append(byAccount[f.AwsAccountID], f)
	}
	accounts := map[string]bool{r.scope.Account: true}
	for arn := range b.seen {
		accounts[accountOf(arn)] = true
	}
	for _, account := range slices.Sorted(func(yield func(string) bool) {
		for a := range accounts {
			if !yield(a) {
				return
			}
		}
	}) {
		client, err := b.hubFor(ctx, account)
		if err != nil {
			r.log.Error("Security Hub findings not published", "account", account, "error", err.Error())
			continue
		}
		want := byAccount[account]
		current := map[string]bool{}
		for _, f := range want {
			current[f.ID] = true
		}
		archive, err := b.cleared(ctx, client, account, current)
		if err != nil {
			r.log.Error("active Security Hub findings not read; cleared conditions stay active", "account", account, "error", err.Error())
		}
		all := append(want, archive...)
		imported := 0
		for i := 0; i < len(all); i += findingBatch {
			batch := all[i:min(i+findingBatch, len(all))]
			if err := findingsLimiter.Wait(ctx); err != nil {
				r.log.Error("Security Hub findings not published: the run's time is up", "account", account)
				break
			}
			n, failed, err := client.BatchImportFindings(ctx, batch)
			if err != nil {
				r.log.Error("Security Hub findings not published", "account", account, "error", err.Error())
				break
			}
			imported += n
			for _, f := range failed {
				r.log.Error("Security Hub refused a finding", "account", account, "id", f.ID, "error", f.ErrorCode+": "+f.ErrorMessage)
			}
		}
		r.log.Info("Security Hub findings published", "account", account, "active", len(want), "archived", len(archive), "imported", imported)
	}
}

// cleared lists this product's active findings in account whose key
// this run evaluated and whose condition no longer holds, as archived.
func (b *findingBook) cleared(ctx context.Context, client SecurityHubAPI, account string, current map[string]bool) ([]hub.Finding, error) {
	r := b.r
	filters := hub.Filters{
		GeneratorID:  []hub.StringFilter{{Value: generatorPrefix, Comparison: "PREFIX"}},
		RecordState:  []hub.StringFilter{{Value: recordActive, Comparison: "EQUALS"}},
		AwsAccountID: []hub.StringFilter{{Value: account, Comparison: "EQUALS"}},
	}
	var out []hub.Finding
	now := fmtTime(r.e.now())
	next := ""
	for {
		page, token, err := client.GetFindings(ctx, filters, next)
		if err != nil {
			return out, err
		}
		for _, f := range page {
			// The filters again: not every implementation applies them.
			if !strings.HasPrefix(f.ID, generatorPrefix) || f.RecordState != recordActive ||
				f.AwsAccountID != account || current[f.ID] || len(f.Resources) == 0 || !b.seen[f.Resources[0].ID] {
				continue
			}
			f.RecordState, f.UpdatedAt = recordArchived, now
			out = append(out, f)
		}
		if token == "" {
			return out, nil
		}
		next = token
	}
}

// hubFor is the Security Hub client of account.
func (b *findingBook) hubFor(ctx context.Context, account string) (SecurityHubAPI, error) {
	r := b.r
	if account == r.inv.Scope.Account || r.e.out.memberHub == nil {
		if account != r.inv.Scope.Account {
			return nil, fmt.Errorf("no Security Hub client for member account %s", account)
		}
		return r.e.out.hub(r.scope.Region), nil
	}
	return r.e.out.memberHub(ctx, r.inv.Scope.Partition, account, r.scope.Region)
}

// partitionOf and regionOf read a key ARN's partition and Region.
func partitionOf(arn string) string { return arnPart(arn, 1) }
func regionOf(arn string) string    { return arnPart(arn, 3) }

func arnPart(arn string, i int) string {
	p := strings.SplitN(arn, ":", 6)
	if len(p) < 6 {
		return ""
	}
	return p[i]
}
