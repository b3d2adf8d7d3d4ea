package rotator

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

const (
	unitCount        = "Count"
	unitMilliseconds = "Milliseconds"
)

// emfMetric is one metric of an EMF directive and its value at the root.
type emfMetric struct {
	name, unit string
	value      float64
}

// emfLine renders one CloudWatch Embedded Metric Format object: a single
// directive with one dimension set, dimension values and metric values as
// members of the root
// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
//
// extra, when set, is one more dimension (name, value) the metrics are also
// published under, as a second dimension set: [dims…, extra].
func emfLine(namespace string, ts time.Time, dims [][2]string, metrics []emfMetric, extra ...[2]string) ([]byte, error) {
	type metricDef struct {
		Name string `json:"Name"`
		Unit string `json:"Unit"`
	}
	type directive struct {
		Namespace  string      `json:"Namespace"`
		Dimensions [][]string  `json:"Dimensions"`
		Metrics    []metricDef `json:"Metrics"`
	}
	root := map[string]any{}
	dimNames := make([]string, 0, len(dims))
	for _, d := range dims {
		dimNames = append(dimNames, d[0])
		root[d[0]] = d[1]
	}
	sets := [][]string{dimNames}
	for _, x := range extra {
		root[x[0]] = x[1]
		sets = append(sets, append(slices.Clone(dimNames), x[0]))
	}
	defs := make([]metricDef, 0, len(metrics))
	for _, m := range metrics {
		defs = append(defs, metricDef{Name: m.name, Unit: m.unit})
		root[m.name] = m.value
	}
	root["_aws"] = map[string]any{
		"Timestamp": ts.UnixMilli(),
		"CloudWatchMetrics": []directive{{
			Namespace:  namespace,
			Dimensions: sets,
			Metrics:    defs,
		}},
	}
	b, err := json.Marshal(root)
	return append(b, '\n'), err
}

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
	ms := []emfMetric{
		{settings.MetricKeysCandidate, unitCount, float64(s.Candidates)},
		{settings.MetricKeysRotated, unitCount, float64(s.Rotated)},
		{settings.MetricKeysWouldRotate, unitCount, float64(s.WouldRotate)},
		{settings.MetricKeysSkipped, unitCount, float64(s.Skipped)},
		{settings.MetricKeysFailed, unitCount, float64(s.Failed)},
		{settings.MetricKeysDeferred, unitCount, float64(s.Deferred)},
		{settings.MetricKeysBudgetLow, unitCount, float64(low)},
		{settings.MetricKeysBudgetExhausted, unitCount, float64(exhausted)},
		{settings.MetricKeysOverdue, unitCount, float64(s.Overdue)},
		{settings.MetricKeysOverdueAction, unitCount, float64(s.OverdueAction)},
		{settings.MetricKeysOverdueByPolicy, unitCount, float64(s.OverdueByPolicy)},
		{settings.MetricKeysDueSoon, unitCount, float64(s.DueSoon)},
		{settings.MetricMaterialExpiringSoon, unitCount, float64(s.MaterialExpiringSoon)},
		{settings.MetricRotationsStuck, unitCount, float64(t.stuck)},
	}
	// No key's budget or age known: no value rather than a made-up one.
	if minRemaining >= 0 {
		ms = append(ms, emfMetric{settings.MetricMinOnDemandRemaining, unitCount, float64(minRemaining)})
	}
	if maxAge >= 0 {
		ms = append(ms, emfMetric{settings.MetricMaxMaterialAgeDays, unitCount, float64(maxAge)})
	}
	completed, failedRun := 1.0, 0.0
	if res.listErr != nil || res.noProgress {
		// A sweep whose listing failed part-way, or that deferred every
		// key, still reports what it did, but it is not a completed run
		// (the silence alarm counts those).
		completed, failedRun = 0, 1
	}
	ms = append(ms,
		emfMetric{settings.MetricRunDuration, unitMilliseconds, float64(e.now().Sub(r.out.start).Milliseconds())},
		emfMetric{settings.MetricRunsCompleted, unitCount, completed},
		emfMetric{settings.MetricContinuations, unitCount, r.out.continuationCount()},
	)
	if failedRun > 0 {
		ms = append(ms, emfMetric{settings.MetricRunsFailed, unitCount, failedRun})
	}
	if res.evidence != nil {
		failed := 0.0
		if res.evidence.Error != "" {
			failed = 1
		}
		ms = append(ms, emfMetric{settings.MetricEvidenceFailed, unitCount, failed})
	}
	if res.published != nil {
		failedPub := 0.0
		if !*res.published {
			failedPub = 1
		}
		ms = append(ms, emfMetric{settings.MetricResultEventsFailed, unitCount, failedPub})
	}
	ts := e.now()
	lines := [][]byte{}
	// Organization mode also publishes the run's figures per account
	// ([Mode, Account]): one dimension value per member account.
	var account [][2]string
	if e.organization() {
		account = [][2]string{{settings.DimAccount, r.scope.Account}}
	}
	if b, err := emfLine(cfg.MetricsNamespace, ts, [][2]string{{settings.DimMode, mode}}, ms, account...); err == nil {
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
			b, err := emfLine(cfg.MetricsNamespace, ts, [][2]string{{settings.DimMode, mode}, {settings.DimReason, string(rsn)}},
				[]emfMetric{{group.metric, unitCount, float64(group.counts[rsn])}})
			if err == nil {
				lines = append(lines, b)
			}
		}
	}
	e.writeMetrics(lines)
}

// emitRunFailed records a run whose candidates could not be listed.
func (e *Engine) emitRunFailed(r *run) {
	b, err := emfLine(e.cfg.MetricsNamespace, e.now(), [][2]string{{settings.DimMode, string(r.req.Mode)}},
		[]emfMetric{{settings.MetricRunsFailed, unitCount, 1}})
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
