package rotator

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	tagging "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
	taggingtypes "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi/types"

	"github.com/kms-rotator/kms-rotator/lambda/ledger"
	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// selection is the stage that finds a run's candidates: the keys an
// incident names or the opted-in keys of a sweep, the primaries of named
// replicas, and every Region's aliases that label the entries.
type selection struct {
	r *run

	mu     sync.Mutex
	seen   map[string]bool // an incident's key ARNs, to add each primary once
	extras []*item

	aliasMu sync.Mutex
	aliases map[string]*aliasSet // by Region
	// wantAlias names the aliases an incident request names.
	wantAlias map[string]bool
}

func newSelection(r *run) *selection {
	s := &selection{r: r, seen: map[string]bool{}, aliases: map[string]*aliasSet{}}
	for _, k := range r.req.Keys {
		if k.Alias != "" {
			if s.wantAlias == nil {
				s.wantAlias = map[string]bool{}
			}
			s.wantAlias[k.Alias] = true
		}
	}
	return s
}

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
	// held is the standing claim that refused this run's claim.
	held *ledger.Claim
	// rot is what this run's rotation of the key recorded.
	rot rotation
}

// rotation is what a run records of its rotation of a key, beyond the
// facts Decide reads.
type rotation struct {
	// claim is this run's claim on the key in the ledger, once written.
	claim *ledger.Claim
	// materialBefore is the current material right before this run's
	// RotateKeyOnDemand; materialAfter the new one once it is current, at
	// completedAt (an incident waits for it).
	materialBefore, materialAfter string
	completedAt                   *time.Time
	// expectOnDemand is the place of this run's rotation among the key's
	// ON_DEMAND rotations (1 = the first): its material is that entry's,
	// not merely one that differs from materialBefore (claim.go).
	expectOnDemand int
	// waited says the run waited for the completion (incidents).
	waited bool
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
func (s *selection) resolveKeys(home *aliasSet) []*item {
	r := s.r
	sc := r.scope
	var items []*item
	byARN := map[string]bool{}
	byAlias := map[string]bool{}
	for _, ref := range r.req.Keys {
		it := &item{ref: ref.Raw, facts: s.baseFacts()}
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
				as = s.aliasSet(r.ctx, region)
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
func (s *selection) baseFacts() Facts {
	r := s.r
	return Facts{Asked: Asked{Mode: r.req.Mode, DryRun: r.dry, Force: r.req.Force, WantUsage: r.req.Usage}, Tags: Tags{IntervalDays: r.e.cfg.IntervalDays}}
}

// wantTag says whether a tag key is one the run reads: the opt-in tag, the
// interval tag, the owner tag.
func (s *selection) wantTag(k string) bool {
	r := s.r
	return k == r.e.cfg.TagKey || k == settings.IntervalTagKey || (r.e.cfg.OwnerTagKey != "" && k == r.e.cfg.OwnerTagKey)
}

// applyTags records what the key's tags say: opted in, its interval, its
// owner.
func (s *selection) applyTags(it *item, tags map[string]string) {
	r := s.r
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
func (s *selection) markSeen(items []*item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range items {
		if it.arn != "" {
			s.seen[it.arn] = true
		}
	}
}

// addPrimary adds a replica's primary as an entry of its own (incident
// mode), unless the run already has it.
func (s *selection) addPrimary(primaryARN string) {
	region, keyID, ok := parseKeyARN(primaryARN)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[primaryARN] {
		return
	}
	s.seen[primaryARN] = true
	s.extras = append(s.extras, &item{arn: primaryARN, keyID: keyID, region: region, facts: s.baseFacts()})
}

// takeExtras returns the added primaries and forgets them.
func (s *selection) takeExtras() []*item {
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.extras
	s.extras = nil
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
func (s *selection) aliasSet(ctx context.Context, region string) *aliasSet {
	r := s.r
	s.aliasMu.Lock()
	as, ok := s.aliases[region]
	if !ok {
		as = &aliasSet{}
		s.aliases[region] = as
	}
	s.aliasMu.Unlock()
	as.once.Do(func() {
		as.byKey, as.byName = newIDMap(), map[string]string{}
		in := &kms.ListAliasesInput{Limit: aws.Int32(100)}
		as.err = r.fetch.pages(ctx, opListAliases, func(marker *string) (bool, *string, error) {
			in.Marker = marker
			out, err := r.fetch.kmsFor(r.scope.Account).ListAliases(ctx, in, inRegion(region))
			if err != nil {
				return false, nil, err
			}
			for _, a := range out.Aliases {
				name, target := aws.ToString(a.AliasName), aws.ToString(a.TargetKeyId)
				if target == "" {
					continue // a predefined AWS alias with no key yet
				}
				// Copies: a string of the response would keep its whole
				// page in memory. byName holds only the aliases an
				// incident names; a sweep needs key → alias alone.
				if s.wantAlias[name] {
					as.byName[strings.Clone(name)] = strings.Clone(target)
				}
				if cur, ok := as.byKey.get(target); !ok || name < cur {
					as.byKey.set(target, strings.Clone(name))
				}
			}
			return out.Truncated, out.NextMarker, nil
		})
	})
	return as
}

// aliasOf returns the key's first alias by name in its Region ("" if none).
func (s *selection) aliasOf(region, keyID string) string {
	as := s.aliasSet(s.r.ctx, region)
	if as.err != nil {
		return ""
	}
	alias, _ := as.byKey.get(keyID)
	return alias
}

// pageTagged pages through GetResources for keys with all the given tags
// (100 a page, tags included) and hands each page's new keys to onPage.
func (s *selection) pageTagged(ctx context.Context, filters []taggingtypes.TagFilter, onPage func([]*item)) error {
	r := s.r
	in := &tagging.GetResourcesInput{
		ResourceTypeFilters: []string{"kms:key"},
		TagFilters:          filters,
		ResourcesPerPage:    aws.Int32(100),
	}
	// A repeated page (a paging bug, a retried request) is skipped by
	// comparing with this page and the one before: a set of every ARN
	// would grow with the fleet.
	var prev map[string]bool
	for {
		r.fetch.calls.add(opGetResources)
		out, err := r.fetch.taggingFor(r.scope.Account).GetResources(ctx, in, func(o *tagging.Options) { o.Region = r.scope.Region })
		if err != nil {
			return fmt.Errorf("get resources tagged %s=%s: %w", r.e.cfg.TagKey, r.e.cfg.TagValue, err)
		}
		page := make([]*item, 0, len(out.ResourceTagMappingList))
		seen := make(map[string]bool, len(out.ResourceTagMappingList))
		for _, m := range out.ResourceTagMappingList {
			// A copy: a string of the response keeps its whole page alive.
			arn := strings.Clone(aws.ToString(m.ResourceARN))
			region, keyID, ok := parseKeyARN(arn)
			if !ok || seen[arn] || prev[arn] {
				continue // not a key ARN (defensive), or a page repeated
			}
			seen[arn] = true
			it := &item{arn: arn, keyID: keyID, region: region}
			it.facts = s.baseFacts()
			tags := make(map[string]string, 2)
			for _, t := range m.Tags {
				k := aws.ToString(t.Key)
				if s.wantTag(k) {
					tags[k] = strings.Clone(aws.ToString(t.Value))
				}
			}
			s.applyTags(it, tags)
			page = append(page, it)
		}
		prev = seen
		onPage(page)
		tok := aws.ToString(out.PaginationToken)
		if tok == "" {
			return nil
		}
		in.PaginationToken = aws.String(tok)
	}
}

// A sweep (scheduled, plan, report) starts on its keys while GetResources
// is still paging: listing 10,000 keys takes 100 sequential pages, time in
// which the ListKeyRotations and RotateKeyOnDemand quotas would otherwise
// sit idle. Pages arrive in key ARN order, so keys still start in that
// order and a deferred tail stays a tail (continuation.go). Should a page
// ever break the order, nothing is lost: the cursor is then the last key
// before the first deferred one in ARN order, so the next link may look at
// a few finished keys again (reads only) but never skips one.

// list feeds f with the run's candidates and closes it: the keys an
// incident names (resolved, aliases through the Region's list), or the
// opted-in keys (with the incident's extra tag) as GetResources pages
// arrive. It is the one selection path of every mode.
func (s *selection) list(ctx context.Context, f *feed) error {
	r := s.r
	defer f.close()
	add := f.add
	if !r.req.Mode.Rules().Sweep {
		add = func(items []*item) {
			s.markSeen(items)
			f.add(items)
		}
	}
	if len(r.req.Keys) > 0 {
		add(s.resolveKeys(s.aliasSet(ctx, r.scope.Region)))
		return nil
	}
	filters := []taggingtypes.TagFilter{{Key: aws.String(r.e.cfg.TagKey), Values: []string{r.e.cfg.TagValue}}}
	if t := r.req.Tag; t != nil {
		filters = append(filters, taggingtypes.TagFilter{Key: aws.String(t.Key), Values: []string{t.Value}})
	}
	last, unsorted := "", false
	after := ""
	if c := r.req.Continuation; c != nil {
		after = c.After
	}
	return s.pageTagged(ctx, filters, func(page []*item) {
		keep := page[:0]
		for _, it := range page {
			if it.arn <= after {
				continue // a continued chain handled it already
			}
			if it.arn < last && !unsorted {
				unsorted = true
				r.log.Warn("GetResources pages are not in key ARN order; a continuation may look at some keys twice")
			}
			last = max(last, it.arn)
			keep = append(keep, it)
		}
		add(keep)
	})
}

// setAlias labels the entry with the key's first alias in its Region. The
// function Region's aliases are listed before any key is processed (Run),
// so every line carries the alias the report shows, and no line waits.
func (s *selection) setAlias(it *item) {
	if it.alias == "" && it.keyID != "" {
		it.alias = s.aliasOf(it.region, it.keyID)
	}
}
