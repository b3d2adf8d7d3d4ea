package rotator

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kms-rotator/kms-rotator/lambda/ledger"
	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// item is one candidate key of a run and, once decided, its report entry.
type item struct {
	arn    string // key ARN; empty when the caller's identifier did not resolve
	keyID  string
	region string
	ref    string // the caller's identifier, for entries that did not resolve
	alias  string
	facts  Facts

	// Filled when the key is decided.
	outcome Outcome
	reason  Reason
	detail  string
	// unread: a call reading the key's state failed (evidence.go).
	unread bool
	// claim is this run's claim on the key in the ledger, once written;
	// held the standing claim that refused it.
	claim, held *ledger.Claim
}

// sortKey orders entries: by key ARN, so a continuation can resume from a
// cursor; unresolved identifiers (no ARN) sort by what the caller gave.
func (it *item) sortKey() string {
	if it.arn != "" {
		return it.arn
	}
	return "~" + it.ref
}

// resolveKeys turns the incident's key identifiers into entries, one per key
// ARN: key IDs and key ARNs directly, aliases through the Region's alias list.
// An alias that does not exist becomes a not-found entry of its own.
func (r *run) resolveKeys(home *aliasSet) []*item {
	sc := r.scope
	var items []*item
	byARN := map[string]bool{}
	byAlias := map[string]bool{}
	for _, ref := range r.req.Keys {
		it := &item{ref: ref.Raw, facts: r.baseFacts()}
		switch ref.Kind {
		case request.KeyID:
			it.keyID, it.region = ref.ID, sc.Region
			it.arn = keyARN(sc.Partition, sc.Region, sc.Account, ref.ID)
		case request.KeyARN:
			it.keyID, it.region = ref.ID, ref.Region
			it.arn = keyARN(ref.Partition, ref.Region, ref.Account, ref.ID)
		case request.AliasName, request.AliasARN:
			as := home
			region := sc.Region
			if ref.Kind == request.AliasARN && ref.Region != "" && ref.Region != sc.Region {
				// The request package rejects other Regions; resolve
				// correctly anyway rather than in the wrong Region.
				region = ref.Region
				as = r.aliasSet(r.ctx, region)
			}
			target, ok := as.byName[ref.Alias]
			if !ok {
				if byAlias[ref.Alias] {
					continue
				}
				byAlias[ref.Alias] = true
				it.alias = ref.Alias
				it.outcome, it.reason = Failed, ReasonNotFound
				it.detail = fmt.Sprintf("alias %s does not exist in %s", ref.Alias, region)
				if as.err != nil { // could not look: say why, not "not found"
					c := classify(as.err)
					if c.outcome != Failed {
						c.outcome, c.reason = Failed, ReasonError
					}
					it.apply(opListAliases, c)
				}
				items = append(items, it)
				continue
			}
			it.keyID, it.region = target, region
			it.arn = keyARN(sc.Partition, region, sc.Account, target)
		default:
			it.outcome, it.reason = Failed, ReasonError
			it.detail = fmt.Sprintf("unsupported key identifier %q", ref.Raw)
			items = append(items, it)
			continue
		}
		if byARN[it.arn] {
			continue // the same key named twice (e.g. by ID and by alias)
		}
		byARN[it.arn] = true
		items = append(items, it)
	}
	return items
}

// baseFacts are the facts every entry of this run starts with.
func (r *run) baseFacts() Facts {
	return Facts{Mode: r.req.Mode, DryRun: r.dry, Force: r.req.Force, IntervalDays: r.e.cfg.IntervalDays, WantUsage: r.req.Usage}
}

// wantTag says whether a tag key is one the run reads: the opt-in tag, the
// interval tag, the owner tag.
func (r *run) wantTag(k string) bool {
	return k == r.e.cfg.TagKey || k == settings.IntervalTagKey || (r.e.cfg.OwnerTagKey != "" && k == r.e.cfg.OwnerTagKey)
}

// applyTags records what the key's tags say: opted in, its interval, its
// owner.
func (r *run) applyTags(it *item, tags map[string]string) {
	f := &it.facts
	f.TagsKnown = true
	if r.e.cfg.OwnerTagKey != "" {
		f.Owner = tags[r.e.cfg.OwnerTagKey]
	}
	v, ok := tags[r.e.cfg.TagKey]
	f.OptedIn = ok && v == r.e.cfg.TagValue
	f.IntervalDays = r.e.cfg.IntervalDays
	f.IntervalErr = ""
	if v, ok := tags[settings.IntervalTagKey]; ok {
		n, err := settings.ParseIntervalTag(v, r.e.cfg.MinIntervalDays)
		if err != nil {
			f.IntervalErr = err.Error()
		} else {
			f.IntervalDays = n
		}
	}
}

// markSeen records an incident's key ARNs, so a replica's primary is added
// only when the request did not name it already.
func (r *run) markSeen(items []*item) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, it := range items {
		if it.arn != "" {
			r.seen[it.arn] = true
		}
	}
}

// addPrimary adds a replica's primary as an entry of its own (incident
// mode), unless the run already has it.
func (r *run) addPrimary(primaryARN string) {
	region, keyID, ok := parseKeyARN(primaryARN)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[primaryARN] {
		return
	}
	r.seen[primaryARN] = true
	r.extras = append(r.extras, &item{arn: primaryARN, keyID: keyID, region: region, facts: r.baseFacts()})
}

// takeExtras returns the added primaries and forgets them.
func (r *run) takeExtras() []*item {
	r.mu.Lock()
	defer r.mu.Unlock()
	x := r.extras
	r.extras = nil
	return x
}

// aliasSet is one Region's aliases, listed once per run.
type aliasSet struct {
	once   sync.Once
	byKey  idMap             // key ID → first alias name
	byName map[string]string // alias name → target key ID, for the aliases the request names
	err    error
}

// aliasSet lists the Region's aliases once per run (ListAliases, all pages).
func (r *run) aliasSet(ctx context.Context, region string) *aliasSet {
	r.aliasMu.Lock()
	as, ok := r.aliases[region]
	if !ok {
		as = &aliasSet{}
		r.aliases[region] = as
	}
	r.aliasMu.Unlock()
	as.once.Do(func() {
		as.byKey, as.byName = newIDMap(), map[string]string{}
		in := &kms.ListAliasesInput{Limit: aws.Int32(100)}
		for {
			if err := r.fetch.call(ctx, opListAliases); err != nil {
				as.err = err
				return
			}
			out, err := r.fetch.kmsFor(r.scope.Account).ListAliases(ctx, in, inRegion(region))
			if err != nil {
				as.err = err
				return
			}
			for _, a := range out.Aliases {
				name, target := aws.ToString(a.AliasName), aws.ToString(a.TargetKeyId)
				if target == "" {
					continue // a predefined AWS alias with no key yet
				}
				// Copies: a string of the response would keep its whole
				// page in memory. byName holds only the aliases an
				// incident names; a sweep needs key → alias alone.
				if r.wantAlias[name] {
					as.byName[strings.Clone(name)] = strings.Clone(target)
				}
				if cur, ok := as.byKey.get(target); !ok || name < cur {
					as.byKey.set(target, strings.Clone(name))
				}
			}
			if !out.Truncated || aws.ToString(out.NextMarker) == "" {
				return
			}
			in.Marker = out.NextMarker
		}
	})
	return as
}

// aliasOf returns the key's first alias by name in its Region ("" if none).
func (r *run) aliasOf(region, keyID string) string {
	as := r.aliasSet(r.ctx, region)
	if as.err != nil {
		return ""
	}
	alias, _ := as.byKey.get(keyID)
	return alias
}

// inRegion sends one call to region: KMS keys are regional, and a
// multi-Region primary may live outside the function's Region.
func inRegion(region string) func(*kms.Options) {
	return func(o *kms.Options) {
		if region != "" {
			o.Region = region
		}
	}
}

// keyARN builds a key ARN
// (https://docs.aws.amazon.com/kms/latest/developerguide/concepts.html#key-id-key-ARN).
func keyARN(partition, region, account, keyID string) string {
	return "arn:" + partition + ":kms:" + region + ":" + account + ":key/" + keyID
}

// parseKeyARN returns the Region and key ID of a key ARN.
func parseKeyARN(arn string) (region, keyID string, ok bool) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "kms" {
		return "", "", false
	}
	id, found := strings.CutPrefix(parts[5], "key/")
	if !found || id == "" {
		return "", "", false
	}
	return parts[3], id, true
}
