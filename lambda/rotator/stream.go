package rotator

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	tagging "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
	taggingtypes "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi/types"
)

// A sweep (scheduled, plan, report) starts on its keys while GetResources
// is still paging: listing 10,000 keys takes 100 sequential pages, time in
// which the ListKeyRotations and RotateKeyOnDemand quotas would otherwise
// sit idle. Pages arrive in key ARN order, so keys still start in that
// order and a deferred tail stays a tail (continuation.go). Should a page
// ever break the order, nothing is lost: the cursor is then the last key
// before the first deferred one in ARN order, so the next link may look at
// a few finished keys again (reads only) but never skips one.

// feed is the queue of candidates not yet started by one process call,
// possibly still growing while the listing pages arrive.
type feed struct {
	mu    sync.Mutex
	cond  *sync.Cond
	items []*item // not yet taken, in arrival order
	done  bool
}

// maxAhead bounds how far the listing may run ahead of the pipelines: ten
// GetResources pages. Without it a large fleet would sit in memory, listed
// but not yet started, while the quotas pace the reads.
const maxAhead = 1000

func newFeed() *feed {
	f := &feed{}
	f.cond = sync.NewCond(&f.mu)
	return f
}

// closedFeed is a complete list.
func closedFeed(items []*item) *feed {
	f := newFeed()
	f.items, f.done = items, true
	return f
}

// add appends items, first waiting while maxAhead are already waiting.
func (f *feed) add(items []*item) {
	f.mu.Lock()
	for len(f.items) >= maxAhead {
		f.cond.Wait()
	}
	f.items = append(f.items, items...)
	f.mu.Unlock()
	f.cond.Broadcast()
}

func (f *feed) close() {
	f.mu.Lock()
	f.done = true
	f.mu.Unlock()
	f.cond.Broadcast()
}

// next pops the first item, waiting for one; ok is false once the feed is
// closed and empty. The caller holds f.mu.
func (f *feed) next() (it *item, ok bool) {
	for len(f.items) == 0 && !f.done {
		f.cond.Wait()
	}
	if len(f.items) == 0 {
		return nil, false
	}
	it = f.items[0]
	f.items[0] = nil
	f.items = f.items[1:]
	f.cond.Broadcast() // room for the listing
	return it, true
}

// pageTagged pages through GetResources for keys with all the given tags
// (100 a page, tags included) and hands each page's new keys to onPage.
func (r *run) pageTagged(ctx context.Context, filters []taggingtypes.TagFilter, onPage func([]*item)) error {
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
			it.facts = r.baseFacts()
			tags := make(map[string]string, 2)
			for _, t := range m.Tags {
				k := aws.ToString(t.Key)
				if r.wantTag(k) {
					tags[k] = strings.Clone(aws.ToString(t.Value))
				}
			}
			r.applyTags(it, tags)
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

// list feeds f with the run's candidates and closes it: the keys an
// incident names (resolved, aliases through the Region's list), or the
// opted-in keys (with the incident's extra tag) as GetResources pages
// arrive. It is the one selection path of every mode.
func (r *run) list(ctx context.Context, f *feed) error {
	defer f.close()
	add := f.add
	if !r.req.Mode.Rules().Sweep {
		add = func(items []*item) {
			r.markSeen(items)
			f.add(items)
		}
	}
	if len(r.req.Keys) > 0 {
		add(r.resolveKeys(r.aliasSet(ctx, r.scope.Region)))
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
	return r.pageTagged(ctx, filters, func(page []*item) {
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
func (r *run) setAlias(it *item) {
	if it.alias == "" && it.keyID != "" {
		it.alias = r.aliasOf(it.region, it.keyID)
	}
}
