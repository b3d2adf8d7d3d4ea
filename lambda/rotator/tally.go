package rotator

import (
	"slices"
	"strings"
	"sync"
)

// tally is what a run keeps of its finished keys, in three parts that each
// answer one question: counts (the summary and the metrics), entries (what
// the report lists, trimmed by one policy) and marks (each key's place, for
// the continuation cursor). A key's facts are dropped once its entry is
// recorded, so a sweep's memory does not grow with the fleet beyond a few
// dozen bytes a key.
type tally struct {
	mu      sync.Mutex
	counts  counts
	entries entries
	marks   marks
}

// newTally makes the tally of one run; prefix is the ARN prefix of the
// sweep's keys ("" for an incident: its keys need no marks).
func newTally(maxListed, maxEntries, reserve int, prefix string) *tally {
	return &tally{
		counts: counts{lowAt: reserve, minRemaining: -1, maxAge: -1,
			summary: Summary{Reasons: map[Reason]int{}}, skipped: map[Reason]int{}, failed: map[Reason]int{}},
		entries: entries{maxListed: maxListed, maxEntries: maxEntries},
		marks:   marks{prefix: prefix},
	}
}

// add records one finished key: exactly once per candidate.
func (t *tally) add(key string, k KeyReport) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.counts.add(k)
	t.marks.add(key, k.Outcome == Deferred)
	t.entries.keep(key, k, t.counts.summary.Candidates)
}

// candidates is the number of keys recorded so far.
func (t *tally) candidates() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counts.summary.Candidates
}

// sortedMarks returns the keys' marks in key order (built when a
// continuation needs them).
func (t *tally) sortedMarks() []mark {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.marks.sorted()
}

// finish returns the entries the report lists, in key order.
func (t *tally) finish() []KeyReport {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.entries.finish()
}

// counts are the summary and the metrics' aggregates of the recorded
// entries (one budget count: Facts.Budget, as the entries state it).
type counts struct {
	summary Summary
	// per reason, for the [Mode, Reason] metrics
	skipped, failed map[Reason]int
	// lowAt is the reserve: KeysBudgetLow counts remaining ≤ it.
	low, exhausted, minRemaining, maxAge, lowAt, stuck int
}

func (c *counts) add(k KeyReport) {
	s := &c.summary
	s.Candidates++
	switch k.Outcome {
	case Rotated:
		s.Rotated++
	case WouldRotate:
		s.WouldRotate++
	case Skipped:
		s.Skipped++
		c.skipped[k.Reason]++
	case Failed:
		s.Failed++
		c.failed[k.Reason]++
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
		c.stuck++
	}
	if k.DueSoon {
		s.DueSoon++
	}
	if k.MaterialExpiringSoon {
		s.MaterialExpiringSoon++
	}
	if k.OnDemandRemaining != nil {
		rem := *k.OnDemandRemaining
		if rem <= c.lowAt {
			c.low++
		}
		if rem == 0 {
			c.exhausted++
		}
		if c.minRemaining < 0 || rem < c.minRemaining {
			c.minRemaining = rem
		}
	}
	if k.MaterialAgeDays != nil {
		c.maxAge = max(c.maxAge, *k.MaterialAgeDays)
	}
}

// marks are every key's place and whether it was deferred: packed key IDs
// under prefix (the sweep's ARN prefix), other sort keys as strings. Not
// kept for incidents (no continuation).
type marks struct {
	prefix string
	packed []packedMark
	other  []mark
}

type packedMark struct {
	id       packedID
	deferred bool
}

type mark struct {
	key      string
	deferred bool
}

func (m *marks) add(key string, deferred bool) {
	if m.prefix == "" {
		return
	}
	if id, ok := strings.CutPrefix(key, m.prefix); ok {
		if p, ok := packID(id); ok {
			m.packed = append(m.packed, packedMark{p, deferred})
			return
		}
	}
	m.other = append(m.other, mark{key, deferred})
}

func (m *marks) sorted() []mark {
	all := make([]mark, 0, len(m.packed)+len(m.other))
	for _, p := range m.packed {
		all = append(all, mark{m.prefix + p.id.String(), p.deferred})
	}
	all = append(all, m.other...)
	slices.SortFunc(all, func(a, b mark) int { return strings.Compare(a.key, b.key) })
	return all
}

// entries are what the report lists, under docs/design.md "The report"'s
// one trim policy: beyond maxListed candidates only the entries that are
// not not-due; beyond maxEntries such entries, skipped ones go first, then
// deferred ones, then the list is cut in key order. Each rule is applied
// as soon as it is certain, so at most about 2 × maxEntries entries are
// ever held. dropOrder is the same policy for lists cut by size (fitBytes,
// the result event).
type entries struct {
	maxListed, maxEntries int
	kept                  []keptEntry
	// listedOther counts the entries that are not not-due; skippedOther
	// the skipped ones among them.
	listedOther, skippedOther   int
	omittedNotDue, omittedOther int
	dropSkipped, dropDeferred   bool
}

type keptEntry struct {
	key   string // the item's sort key
	entry KeyReport
}

// keep takes one entry; candidates counts the keys so far, this one
// included.
func (e *entries) keep(key string, k KeyReport, candidates int) {
	notDue := k.Reason == ReasonNotDue
	if !notDue {
		e.listedOther++
		if k.Outcome == Skipped {
			e.skippedOther++
		}
	}
	trimming := candidates > e.maxListed
	if trimming && e.keptNotDue() > 0 {
		e.purge(func(x keptEntry) bool { return x.entry.Reason == ReasonNotDue }, &e.omittedNotDue)
	}
	switch {
	case notDue && trimming:
		e.omittedNotDue++
		return
	case e.dropSkipped && k.Outcome == Skipped, e.dropDeferred && k.Outcome == Deferred:
		e.omittedOther++
		return
	}
	e.kept = append(e.kept, keptEntry{key, k})
	if !trimming {
		return // the rules below are decided once the list is trimmed (finish decides otherwise)
	}
	if !e.dropSkipped && e.listedOther > e.maxEntries {
		e.dropSkipped = true
		e.purge(func(x keptEntry) bool { return x.entry.Outcome == Skipped }, &e.omittedOther)
	}
	if e.dropSkipped && !e.dropDeferred && e.listedOther-e.skippedOther > e.maxEntries {
		e.dropDeferred = true
		e.purge(func(x keptEntry) bool { return x.entry.Outcome == Deferred }, &e.omittedOther)
	}
	if e.dropDeferred && len(e.kept) > 2*e.maxEntries {
		e.cut()
	}
}

func (e *entries) keptNotDue() int {
	n := 0
	for _, x := range e.kept {
		if x.entry.Reason == ReasonNotDue {
			n++
		}
	}
	return n
}

// purge drops the kept entries drop selects, counting them in *omitted.
func (e *entries) purge(drop func(keptEntry) bool, omitted *int) {
	kept := e.kept[:0]
	for _, x := range e.kept {
		if drop(x) {
			*omitted++
			continue
		}
		kept = append(kept, x)
	}
	clear(e.kept[len(kept):])
	e.kept = kept
}

// cut keeps the first maxEntries entries in key order: a later key cannot
// come before them in the final list unless it sorts before them.
func (e *entries) cut() {
	slices.SortFunc(e.kept, func(a, b keptEntry) int { return strings.Compare(a.key, b.key) })
	if len(e.kept) > e.maxEntries {
		e.omittedOther += len(e.kept) - e.maxEntries
		clear(e.kept[e.maxEntries:])
		e.kept = e.kept[:e.maxEntries]
	}
}

// finish applies the rules to what is kept, for lists that were never
// trimmed (maxEntries below maxListed, as tests set them), and returns the
// entries in key order.
func (e *entries) finish() []KeyReport {
	if len(e.kept) > e.maxEntries {
		if !e.dropSkipped {
			e.dropSkipped = true
			e.purge(func(x keptEntry) bool { return x.entry.Outcome == Skipped }, &e.omittedOther)
		}
		if len(e.kept) > e.maxEntries && !e.dropDeferred {
			e.dropDeferred = true
			e.purge(func(x keptEntry) bool { return x.entry.Outcome == Deferred }, &e.omittedOther)
		}
	}
	e.cut()
	out := make([]KeyReport, len(e.kept))
	for i, x := range e.kept {
		out[i] = x.entry
	}
	return out
}
