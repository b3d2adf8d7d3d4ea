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

// entries are what the report lists (docs/design.md "The report"): beyond
// maxListed candidates only the entries that are not not-due; beyond
// maxEntries such entries, those the trim policy (fit) keeps. The policy is
// applied whenever more than 2 × maxEntries entries are held, so no more
// are ever held.
type entries struct {
	maxListed, maxEntries       int
	kept                        []keptEntry
	omittedNotDue, omittedOther int
}

type keptEntry struct {
	key   string // the item's sort key
	entry KeyReport
}

// keep takes one entry; candidates counts the keys so far, this one
// included.
func (e *entries) keep(key string, k KeyReport, candidates int) {
	trimming := candidates > e.maxListed
	if trimming && e.keptNotDue() > 0 {
		e.purge(func(x keptEntry) bool { return x.entry.Reason == ReasonNotDue }, &e.omittedNotDue)
	}
	if trimming && k.Reason == ReasonNotDue {
		e.omittedNotDue++
		return
	}
	e.kept = append(e.kept, keptEntry{key, k})
	if trimming && len(e.kept) > 2*e.maxEntries {
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

// cut sorts the kept entries by key and keeps the maxEntries the trim
// policy keeps. An entry cut now stays cut: maxEntries entries the policy
// prefers to it are kept, and later ones can only be preferred to those.
func (e *entries) cut() {
	slices.SortFunc(e.kept, func(a, b keptEntry) int { return strings.Compare(a.key, b.key) })
	keep := fit(len(e.kept), func(i int) Outcome { return e.kept[i].entry.Outcome }, func(int) int { return 1 }, e.maxEntries)
	i := -1 // purge asks in list order
	e.purge(func(keptEntry) bool { i++; return !keep[i] }, &e.omittedOther)
}

// finish applies the policy once more and returns the entries in key
// order.
func (e *entries) finish() []KeyReport {
	e.cut()
	out := make([]KeyReport, len(e.kept))
	for i, x := range e.kept {
		out[i] = x.entry
	}
	return out
}

// fit is the one trim policy of a list of entries, used by the report's
// entries (by count), fitBytes (by size) and the result event (by size):
// when the list must be shorter, skipped entries give way first, then
// deferred ones, then rotated and would-rotate ones, then failed ones,
// each the last in the list first. It returns which of the n entries (in
// list order) to keep so that their sizes add up to at most budget.
func fit(n int, outcome func(i int) Outcome, size func(i int) int, budget int) []bool {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	// Kept first: the entries that give way last, in list order.
	slices.SortStableFunc(order, func(a, b int) int { return giveWay(outcome(b)) - giveWay(outcome(a)) })
	keep := make([]bool, n)
	for _, i := range order {
		if size(i) > budget {
			break
		}
		budget -= size(i)
		keep[i] = true
	}
	return keep
}

// giveWay ranks outcomes by how soon their entries give way under fit:
// failed ones need someone's action and stay longest.
func giveWay(o Outcome) int {
	switch o {
	case Skipped:
		return 0
	case Deferred:
		return 1
	case Failed:
		return 3
	}
	return 2 // rotated, would-rotate
}
