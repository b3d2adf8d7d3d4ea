package rotator

import (
	"slices"

	"github.com/kms-rotator/kms-rotator/lambda/emf"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// emitMetrics writes the run's EMF lines: one with dimension [Mode], then
// one per reason with [Mode, Reason] for skipped and failed keys. Never a
// per-key dimension: each dimension value is a billed custom metric.
func (e *Engine) emitMetrics(r *run, rep *Report, res runResult) {
	cfg := e.cfg
	mode := string(r.req.Mode)
	// The same count as Decide and the report entries (Facts.Budget),
	// gathered from the entries as they were recorded (tally).
	t := &r.out.tally.counts
	low, exhausted, minRemaining, maxAge := t.low, t.exhausted, t.minRemaining, t.maxAge
	s := rep.Summary
	ms := []emf.Metric{
		{Name: settings.MetricKeysCandidate, Unit: emf.Count, Value: float64(s.Candidates)},
		{Name: settings.MetricKeysRotated, Unit: emf.Count, Value: float64(s.Rotated)},
		{Name: settings.MetricKeysWouldRotate, Unit: emf.Count, Value: float64(s.WouldRotate)},
		{Name: settings.MetricKeysSkipped, Unit: emf.Count, Value: float64(s.Skipped)},
		{Name: settings.MetricKeysFailed, Unit: emf.Count, Value: float64(s.Failed)},
		{Name: settings.MetricKeysDeferred, Unit: emf.Count, Value: float64(s.Deferred)},
		{Name: settings.MetricKeysBudgetLow, Unit: emf.Count, Value: float64(low)},
		{Name: settings.MetricKeysBudgetExhausted, Unit: emf.Count, Value: float64(exhausted)},
		{Name: settings.MetricKeysOverdue, Unit: emf.Count, Value: float64(s.Overdue)},
		{Name: settings.MetricKeysOverdueAction, Unit: emf.Count, Value: float64(s.OverdueAction)},
		{Name: settings.MetricKeysOverdueByPolicy, Unit: emf.Count, Value: float64(s.OverdueByPolicy)},
		{Name: settings.MetricKeysDueSoon, Unit: emf.Count, Value: float64(s.DueSoon)},
		{Name: settings.MetricMaterialExpiringSoon, Unit: emf.Count, Value: float64(s.MaterialExpiringSoon)},
		{Name: settings.MetricRotationsStuck, Unit: emf.Count, Value: float64(t.stuck)},
	}
	// No key's budget or age known: no value rather than a made-up one.
	if minRemaining >= 0 {
		ms = append(ms, emf.Metric{Name: settings.MetricMinOnDemandRemaining, Unit: emf.Count, Value: float64(minRemaining)})
	}
	if maxAge >= 0 {
		ms = append(ms, emf.Metric{Name: settings.MetricMaxMaterialAgeDays, Unit: emf.Count, Value: float64(maxAge)})
	}
	completed, failedRun := 1.0, 0.0
	if res.listErr != nil || res.noProgress {
		// A sweep whose listing failed part-way, or that deferred every
		// key, still reports what it did, but it is not a completed run
		// (the silence alarm counts those).
		completed, failedRun = 0, 1
	}
	ms = append(ms,
		emf.Metric{Name: settings.MetricRunDuration, Unit: emf.Milliseconds, Value: float64(e.now().Sub(r.out.start).Milliseconds())},
		emf.Metric{Name: settings.MetricRunsCompleted, Unit: emf.Count, Value: completed},
		emf.Metric{Name: settings.MetricContinuations, Unit: emf.Count, Value: r.out.continuationCount()},
	)
	if failedRun > 0 {
		ms = append(ms, emf.Metric{Name: settings.MetricRunsFailed, Unit: emf.Count, Value: failedRun})
	}
	if res.evidence != nil {
		failed := 0.0
		if res.evidence.Error != "" {
			failed = 1
		}
		ms = append(ms, emf.Metric{Name: settings.MetricEvidenceFailed, Unit: emf.Count, Value: failed})
	}
	if res.published != nil {
		failedPub := 0.0
		if !*res.published {
			failedPub = 1
		}
		ms = append(ms, emf.Metric{Name: settings.MetricResultEventsFailed, Unit: emf.Count, Value: failedPub})
	}
	ts := e.now()
	lines := [][]byte{}
	// Organization mode also publishes the run's figures per account
	// ([Mode, Account]): one dimension value per member account.
	var account [][2]string
	if e.organization() {
		account = [][2]string{{settings.DimAccount, r.scope.Account}}
	}
	if b, err := emf.Line(cfg.MetricsNamespace, ts, [][2]string{{settings.DimMode, mode}}, ms, account...); err == nil {
		lines = append(lines, b)
	}
	// Per reason, in a stable order.
	skipped, failed := t.skipped, t.failed
	for _, group := range []struct {
		metric string
		counts map[Reason]int
	}{{settings.MetricKeysSkipped, skipped}, {settings.MetricKeysFailed, failed}} {
		reasons := make([]Reason, 0, len(group.counts))
		for rsn := range group.counts {
			reasons = append(reasons, rsn)
		}
		slices.Sort(reasons)
		for _, rsn := range reasons {
			b, err := emf.Line(cfg.MetricsNamespace, ts, [][2]string{{settings.DimMode, mode}, {settings.DimReason, string(rsn)}},
				[]emf.Metric{{Name: group.metric, Unit: emf.Count, Value: float64(group.counts[rsn])}})
			if err == nil {
				lines = append(lines, b)
			}
		}
	}
	e.writeMetrics(lines)
}

// emitRunFailed records a run whose candidates could not be listed.
func (e *Engine) emitRunFailed(r *run) {
	b, err := emf.Line(e.cfg.MetricsNamespace, e.now(), [][2]string{{settings.DimMode, string(r.req.Mode)}},
		[]emf.Metric{{Name: settings.MetricRunsFailed, Unit: emf.Count, Value: 1}})
	if err == nil {
		e.writeMetrics([][]byte{b})
	}
}

// writeMetrics writes whole lines under a lock so concurrent runs never
// interleave them.
func (e *Engine) writeMetrics(lines [][]byte) {
	e.out.metricsMu.Lock()
	defer e.out.metricsMu.Unlock()
	for _, l := range lines {
		if _, err := e.out.metrics.Write(l); err != nil {
			return
		}
	}
}
