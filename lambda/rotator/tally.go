package rotator

import (
	"slices"
	"strings"
	"sync"
)

// tally is what a run keeps of its finished keys: the counters of the
// summary and the metrics, the entries its response can hold, and one mark
// per key for the continuation cursor. A key's facts are dropped once its
// entry is recorded, so a sweep's memory does not grow with the fleet beyond
// a few dozen bytes a key.
type tally struct {
	mu                    sync.Mutex
	maxListed, maxEntries int

	summary Summary
	// per reason, for the [Mode, Reason] metrics
	skipped, failed map[Reason]int
	// budget and cryptoperiod metrics, from the entries (Facts.Budget);
	// lowAt is the reserve (KeysBudgetLow counts remaining ≤ it)
	low, exhausted, minRemaining, maxAge, lowAt int
	stuck                                       int

	kept []keptEntry
	// listedOther counts the entries that are not not-due; skippedOther
	// the skipped ones among them.
	listedOther, skippedOther   int
	omittedNotDue, omittedOther int
	dropSkipped, dropDeferred   bool
	// The continuation cursor needs every key's place and whether it was
	// deferred: packed key IDs under prefix (the sweep's ARN prefix),
	// other sort keys as strings. Not kept for incidents (no continuation).
	prefix string
	packed []packedMark
	marks  []mark
}

type packedMark struct {
	id       packedID
	deferred bool
}

type keptEntry struct {
	key   string // the item's sort key
	entry KeyReport
}

type mark struct {
	key      string
	deferred bool
}

// newTally makes the tally of one run; prefix is the ARN prefix of the
// sweep's keys ("" for an incident: its keys need no marks).
func newTally(maxListed, maxEntries, reserve int, prefix string) *tally {
	return &tally{maxListed: maxListed, maxEntries: maxEntries, lowAt: reserve, minRemaining: -1, maxAge: -1, prefix: prefix,
		summary: Summary{Reasons: map[Reason]int{}}, skipped: map[Reason]int{}, failed: map[Reason]int{}}
}

// add records one finished key: exactly once per candidate.
func (t *tally) add(key string, k KeyReport) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := &t.summary
	s.Candidates++
	switch k.Outcome {
	case Rotated:
		s.Rotated++
	case WouldRotate:
		s.WouldRotate++
	case Skipped:
		s.Skipped++
		t.skipped[k.Reason]++
	case Failed:
		s.Failed++
		t.failed[k.Reason]++
	case Deferred:
		s.Deferred++
	}
	if k.Reason != ReasonNone {
		s.Reasons[k.Reason]++
	}
	if k.Overdue != nil && *k.Overdue {
		s.Overdue++
		if k.OverdueFor == OverdueByPolicy {
			s.OverdueByPolicy++
		} else {
			s.OverdueAction++
		}
	}
	if k.Stuck {
		t.stuck++
	}
	if k.OnDemandRemaining != nil {
		rem := *k.OnDemandRemaining
		if rem <= t.reserve() {
			t.low++
		}
		if rem == 0 {
			t.exhausted++
		}
		if t.minRemaining < 0 || rem < t.minRemaining {
			t.minRemaining = rem
		}
	}
	if k.MaterialAgeDays != nil {
		t.maxAge = max(t.maxAge, *k.MaterialAgeDays)
	}
	if t.prefix != "" {
		deferred := k.Outcome == Deferred
		if id, ok := strings.CutPrefix(key, t.prefix); ok {
			if p, ok := packID(id); ok {
				t.packed = append(t.packed, packedMark{p, deferred})
			} else {
				t.marks = append(t.marks, mark{key, deferred})
			}
		} else {
			t.marks = append(t.marks, mark{key, deferred})
		}
	}
	t.keep(key, k)
}

func (t *tally) reserve() int { return t.lowAt }

// keep applies docs/design.md "The report" while the keys arrive: beyond
// maxListed candidates only the entries that are not not-due are listed;
// beyond maxEntries such entries, skipped ones go first, then deferred
// ones, then the list is cut in key order. Each rule is applied as soon as
// it is certain, so at most about 2 × maxEntries entries are ever held.
func (t *tally) keep(key string, k KeyReport) {
	notDue := k.Reason == ReasonNotDue
	if !notDue {
		t.listedOther++
		if k.Outcome == Skipped {
			t.skippedOther++
		}
	}
	trimming := t.summary.Candidates > t.maxListed
	if trimming && t.keptNotDue() > 0 {
		t.purge(func(e keptEntry) bool { return e.entry.Reason == ReasonNotDue }, &t.omittedNotDue)
	}
	switch {
	case notDue && trimming:
		t.omittedNotDue++
		return
	case t.dropSkipped && k.Outcome == Skipped, t.dropDeferred && k.Outcome == Deferred:
		t.omittedOther++
		return
	}
	t.kept = append(t.kept, keptEntry{key, k})
	if !trimming {
		return // the rules below are decided once the list is trimmed (finish decides otherwise)
	}
	if !t.dropSkipped && t.listedOther > t.maxEntries {
		t.dropSkipped = true
		t.purge(func(e keptEntry) bool { return e.entry.Outcome == Skipped }, &t.omittedOther)
	}
	if t.dropSkipped && !t.dropDeferred && t.listedOther-t.skippedOther > t.maxEntries {
		t.dropDeferred = true
		t.purge(func(e keptEntry) bool { return e.entry.Outcome == Deferred }, &t.omittedOther)
	}
	if t.dropDeferred && len(t.kept) > 2*t.maxEntries {
		t.cut()
	}
}

func (t *tally) keptNotDue() int {
	n := 0
	for _, e := range t.kept {
		if e.entry.Reason == ReasonNotDue {
			n++
		}
	}
	return n
}

// purge drops the kept entries drop selects, counting them in *omitted.
func (t *tally) purge(drop func(keptEntry) bool, omitted *int) {
	kept := t.kept[:0]
	for _, e := range t.kept {
		if drop(e) {
			*omitted++
			continue
		}
		kept = append(kept, e)
	}
	clear(t.kept[len(kept):])
	t.kept = kept
}

// cut keeps the first maxEntries entries in key order: a later key cannot
// come before them in the final list unless it sorts before them.
func (t *tally) cut() {
	slices.SortFunc(t.kept, func(a, b keptEntry) int { return strings.Compare(a.key, b.key) })
	if len(t.kept) > t.maxEntries {
		t.omittedOther += len(t.kept) - t.maxEntries
		clear(t.kept[t.maxEntries:])
		t.kept = t.kept[:t.maxEntries]
	}
}

// candidates is the number of keys recorded so far.
func (t *tally) candidates() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.summary.Candidates
}

// sortedMarks returns the keys' marks in key order (built when a
// continuation needs them).
func (t *tally) sortedMarks() []mark {
	t.mu.Lock()
	defer t.mu.Unlock()
	all := make([]mark, 0, len(t.packed)+len(t.marks))
	for _, p := range t.packed {
		all = append(all, mark{t.prefix + p.id.String(), p.deferred})
	}
	all = append(all, t.marks...)
	slices.SortFunc(all, func(a, b mark) int { return strings.Compare(a.key, b.key) })
	return all
}

// finish applies the rules to what is kept, for lists that were never
// trimmed (maxEntries below maxListed, as tests set them), and returns the
// entries in key order.
func (t *tally) finish() []KeyReport {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.kept) > t.maxEntries {
		if !t.dropSkipped {
			t.dropSkipped = true
			t.purge(func(e keptEntry) bool { return e.entry.Outcome == Skipped }, &t.omittedOther)
		}
		if len(t.kept) > t.maxEntries && !t.dropDeferred {
			t.dropDeferred = true
			t.purge(func(e keptEntry) bool { return e.entry.Outcome == Deferred }, &t.omittedOther)
		}
	}
	t.cut()
	out := make([]KeyReport, len(t.kept))
	for i, e := range t.kept {
		out[i] = e.entry
	}
	return out
}
