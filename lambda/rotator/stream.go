package rotator

import (
	"sync"
)

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
