package rotator

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	tagging "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/kms-rotator/kms-rotator/lambda/hub"
)

// MemberClients returns the KMS and tagging clients of a member account of
// the organization, acting through its member role (organization mode).
// region is where the role is assumed (STS's regional endpoint); session
// names the run in the member account's CloudTrail.
type MemberClients func(ctx context.Context, partition, account, region, session string) (KMSAPI, TaggingAPI, error)

// SetMembers turns on organization mode: requests may then name a target
// account, and incidents key ARNs of member accounts. Call it before the
// first Run.
func (e *Engine) SetMembers(f MemberClients) { e.members = f }

// AssumeMemberRole is the production MemberClients: it assumes
// arn:PARTITION:iam::ACCOUNT:role/ROLENAME through STS in the target's
// Region and builds clients on those credentials, refreshed by the SDK's
// cache as they near expiry
// (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html).
// The first credentials are fetched at once, so a role that cannot be
// assumed fails the run before any KMS call.
func AssumeMemberRole(base aws.Config, roleName string) MemberClients {
	return func(ctx context.Context, partition, account, region, session string) (KMSAPI, TaggingAPI, error) {
		roleARN := "arn:" + partition + ":iam::" + account + ":role/" + roleName
		stsCfg := base.Copy()
		stsCfg.Region = region
		creds := aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(stsCfg), roleARN,
			func(o *stscreds.AssumeRoleOptions) { o.RoleSessionName = session }))
		if _, err := creds.Retrieve(ctx); err != nil {
			return nil, nil, fmt.Errorf("assume role %s: %w", roleARN, compactSTSError(err))
		}
		cfg := base.Copy()
		cfg.Credentials = creds
		return kms.NewFromConfig(cfg), tagging.NewFromConfig(cfg), nil
	}
}

// stsError is an AssumeRole failure told in a line: the error code, STS's
// request ID (to find the call in CloudTrail) and what to check. The SDK's
// own text repeats the operation, the HTTP status and, for AccessDenied,
// both role ARNs; a failed target's error lands in the organization sweep's
// output, where every byte counts against Step Functions' 256 KiB
// (docs/design.md "Organization mode"). Unwrap keeps the SDK's error.
type stsError struct {
	msg string
	err error
}

func (e *stsError) Error() string { return e.msg }
func (e *stsError) Unwrap() error { return e.err }

// compactSTSError shortens an AssumeRole error from STS; any other error
// (no answer, a cancelled context) is returned as it is.
func compactSTSError(err error) error {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return err
	}
	msg := ae.ErrorCode()
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.ServiceRequestID() != "" {
		msg += " (STS request " + re.ServiceRequestID() + ")"
	}
	switch ae.ErrorCode() {
	case "AccessDenied":
		// https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html#API_AssumeRole_Errors
		msg += ": the member role is missing in that account, or does not trust this function's role"
	default:
		if m := ae.ErrorMessage(); m != "" {
			msg += ": " + m
		}
	}
	return &stsError{msg: msg, err: err}
}

// ErrRegionNotEnabled is in the error of a run whose target's Region its
// account has not enabled; the handler turns it into a notSwept answer
// (lambda/org).
var ErrRegionNotEnabled = errors.New("the target's Region is not enabled in its account")

// regionDisabled reports whether err is STS refusing the member role
// credentials in a Region its account has not enabled
// (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html#API_AssumeRole_Errors,
// RegionDisabled).
func regionDisabled(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "RegionDisabledException"
}

// accountClients are one account's clients, made once per run.
type accountClients struct {
	kms     KMSAPI
	tagging TaggingAPI
}

// organization reports whether the engine works across accounts.
func (e *Engine) organization() bool { return e.members != nil }

// connect makes the clients of every account the request works in other
// than the function's own — the target's, or those of an incident's key
// ARNs — before any KMS call: a role that cannot be assumed fails the run
// and touches nothing. Credentials are cached per account for the run.
func (f *fetcher) connect(ctx context.Context) error {
	r := f.r
	own := r.inv.Scope.Account
	regions := map[string]string{} // account → Region to assume the role in
	if r.scope.Account != own {
		regions[r.scope.Account] = r.scope.Region
	}
	for _, k := range r.req.Keys {
		if k.IsARN() && k.Account != own {
			if _, ok := regions[k.Account]; !ok {
				regions[k.Account] = k.Region
			}
		}
	}
	if len(regions) == 0 {
		return nil
	}
	if r.e.members == nil {
		return fmt.Errorf("the request names account(s) other than %s, and organization mode is off", own)
	}
	accounts := make([]string, 0, len(regions))
	for a := range regions {
		accounts = append(accounts, a)
	}
	sort.Strings(accounts)
	session := "kms-rotator-" + r.id // run IDs use only characters a session name allows
	f.accounts = map[string]accountClients{}
	for _, a := range accounts {
		k, t, err := r.e.members(ctx, r.inv.Scope.Partition, a, regions[a], session)
		if err != nil {
			if a == r.scope.Account {
				return err // a target run works in that account only
			}
			// An incident naming keys in several accounts: only this
			// account's keys fail, the others' proceed.
			r.log.Error("member account not reachable; its keys fail", "account", a, "error", err.Error())
			k = unreachable{err: err}
		}
		f.accounts[a] = accountClients{k, t}
	}
	return nil
}

// unreachable is the KMS client of a member account whose role could not
// be assumed: every call fails with why.
type unreachable struct{ err error }

// memberError is a key call in an account whose member role could not be
// assumed (classify: access-denied).
type memberError struct{ unreachable }

// Error is the AssumeRole failure, which names the role, the account and
// what to check (AssumeMemberRole).
func (e *memberError) Error() string { return e.err.Error() }

func (e *memberError) Unwrap() error { return e.err }

func (u unreachable) fail() error { return &memberError{u} }

func (u unreachable) DescribeKey(context.Context, *kms.DescribeKeyInput, ...func(*kms.Options)) (*kms.DescribeKeyOutput, error) {
	return nil, u.fail()
}
func (u unreachable) ListKeyRotations(context.Context, *kms.ListKeyRotationsInput, ...func(*kms.Options)) (*kms.ListKeyRotationsOutput, error) {
	return nil, u.fail()
}
func (u unreachable) GetKeyRotationStatus(context.Context, *kms.GetKeyRotationStatusInput, ...func(*kms.Options)) (*kms.GetKeyRotationStatusOutput, error) {
	return nil, u.fail()
}
func (u unreachable) RotateKeyOnDemand(context.Context, *kms.RotateKeyOnDemandInput, ...func(*kms.Options)) (*kms.RotateKeyOnDemandOutput, error) {
	return nil, u.fail()
}
func (u unreachable) ListAliases(context.Context, *kms.ListAliasesInput, ...func(*kms.Options)) (*kms.ListAliasesOutput, error) {
	return nil, u.fail()
}
func (u unreachable) ListResourceTags(context.Context, *kms.ListResourceTagsInput, ...func(*kms.Options)) (*kms.ListResourceTagsOutput, error) {
	return nil, u.fail()
}
func (u unreachable) GetKeyLastUsage(context.Context, *kms.GetKeyLastUsageInput, ...func(*kms.Options)) (*kms.GetKeyLastUsageOutput, error) {
	return nil, u.fail()
}

// kmsFor is the KMS client of account (the function's own when not a member).
func (f *fetcher) kmsFor(account string) KMSAPI {
	if c, ok := f.accounts[account]; ok {
		return c.kms
	}
	return f.r.e.kms
}

// taggingFor is the tagging client of account.
func (f *fetcher) taggingFor(account string) TaggingAPI {
	if c, ok := f.accounts[account]; ok {
		return c.tagging
	}
	return f.r.e.tagging
}

// kmsOf is the KMS client of the item's account.
func (f *fetcher) kmsOf(it *item) KMSAPI { return f.kmsFor(accountOf(it.arn)) }

// accountOf returns the account of a key ARN ("" when not an ARN).
func accountOf(arn string) string {
	var n int
	start := -1
	for i := 0; i < len(arn); i++ {
		if arn[i] != ':' {
			continue
		}
		n++
		switch n {
		case 4:
			start = i + 1
		case 5:
			return arn[start:i]
		}
	}
	return ""
}

// AssumeMemberHub returns the Security Hub client of a member account,
// through its member role: a finding is imported from the account it
// belongs to.
func AssumeMemberHub(base aws.Config, roleName string) func(ctx context.Context, partition, account, region string) (SecurityHubAPI, error) {
	return func(ctx context.Context, partition, account, region string) (SecurityHubAPI, error) {
		roleARN := "arn:" + partition + ":iam::" + account + ":role/" + roleName
		stsCfg := base.Copy()
		stsCfg.Region = region
		creds := aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(stsCfg), roleARN,
			func(o *stscreds.AssumeRoleOptions) { o.RoleSessionName = "kms-rotator-findings" }))
		if _, err := creds.Retrieve(ctx); err != nil {
			return nil, fmt.Errorf("assume role %s: %w", roleARN, compactSTSError(err))
		}
		cfg := base.Copy()
		cfg.Region, cfg.Credentials = region, creds
		return hub.New(cfg), nil
	}
}
