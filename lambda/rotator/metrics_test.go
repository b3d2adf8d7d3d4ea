package rotator

import (
	"testing"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

// cloudWatchUnits are the units EMF accepts (CloudWatch MetricDatum.Unit).
var cloudWatchUnits = map[string]bool{"Seconds": true, "Microseconds": true, "Milliseconds": true, "Bytes": true,
	"Kilobytes": true, "Megabytes": true, "Gigabytes": true, "Terabytes": true, "Bits": true, "Kilobits": true,
	"Megabits": true, "Gigabits": true, "Terabits": true, "Percent": true, "Count": true, "Bytes/Second": true,
	"Kilobytes/Second": true, "Megabytes/Second": true, "Gigabytes/Second": true, "Terabytes/Second": true,
	"Bits/Second": true, "Kilobits/Second": true, "Megabits/Second": true, "Gigabits/Second": true,
	"Terabits/Second": true, "Count/Second": true, "None": true}

// validateEMF checks one line against the EMF specification's structure
// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html)
// and returns its dimension values and metric values.
func validateEMF(t *testing.T, line map[string]any, namespace string) (dims map[string]string, values map[string]float64) {
	t.Helper()
	awsMeta, ok := line["_aws"].(map[string]any)
	if !ok {
		t.Fatalf("no _aws object: %v", line)
	}
	if ts, ok := awsMeta["Timestamp"].(float64); !ok || ts < 1e12 || ts != float64(int64(ts)) {
		t.Fatalf("_aws.Timestamp %v is not epoch milliseconds", awsMeta["Timestamp"])
	}
	directives, ok := awsMeta["CloudWatchMetrics"].([]any)
	if !ok || len(directives) == 0 {
		t.Fatalf("_aws.CloudWatchMetrics missing: %v", awsMeta)
	}
	dims, values = map[string]string{}, map[string]float64{}
	for _, d := range directives {
		dir := d.(map[string]any)
		if dir["Namespace"] != namespace {
			t.Errorf("Namespace %v, want %s", dir["Namespace"], namespace)
		}
		sets, ok := dir["Dimensions"].([]any)
		if !ok {
			t.Fatalf("Dimensions missing")
		}
		for _, s := range sets {
			set := s.([]any)
			if len(set) > 30 {
				t.Errorf("dimension set of %d > 30", len(set))
			}
			for _, n := range set {
				name := n.(string)
				v, ok := line[name].(string)
				if !ok || v == "" {
					t.Errorf("dimension %s has no string value at the root", name)
				}
				dims[name] = v
			}
		}
		metrics := dir["Metrics"].([]any)
		if len(metrics) == 0 || len(metrics) > 100 {
			t.Errorf("%d metrics in a directive, want 1–100", len(metrics))
		}
		for _, m := range metrics {
			md := m.(map[string]any)
			name, _ := md["Name"].(string)
			if name == "" {
				t.Errorf("metric without a name: %v", md)
			}
			if u, _ := md["Unit"].(string); !cloudWatchUnits[u] {
				t.Errorf("metric %s has unit %q", name, md["Unit"])
			}
			v, ok := line[name].(float64)
			if !ok {
				t.Errorf("metric %s has no numeric value at the root: %v", name, line[name])
			}
			values[name] = v
		}
	}
	return dims, values
}

func TestMetricsAreValidEMFAndAgreeWithTheReport(t *testing.T) {
	cfg := fastConfig()
	cfg.MetricsNamespace = "Test/KMSRotator"
	h := newHarness(t, kmsemu.Options{}, demoFleet(t), cfg)
	rep := h.run(t, request.Request{Mode: request.ModeScheduled})
	lines := h.metrics.lines(t)
	if len(lines) < 2 {
		t.Fatalf("%d EMF lines, want the [Mode] line and per-reason lines", len(lines))
	}
	byReason := map[string]map[string]float64{}
	var mode map[string]float64
	for _, l := range lines {
		dims, values := validateEMF(t, l, "Test/KMSRotator")
		if dims["Mode"] != "scheduled" {
			t.Errorf("Mode dimension %q", dims["Mode"])
		}
		if r, ok := dims["Reason"]; ok {
			byReason[r] = values
		} else {
			mode = values
		}
		for d := range dims {
			if d != "Mode" && d != "Reason" {
				t.Errorf("unexpected dimension %s (never per key)", d)
			}
		}
	}
	s := rep.Summary
	for name, want := range map[string]int{
		"KeysCandidate": s.Candidates, "KeysRotated": s.Rotated, "KeysSkipped": s.Skipped, "KeysFailed": s.Failed,
		"KeysDeferred": s.Deferred, "RunsCompleted": 1,
		// fraud-model (2 left), ml-features (1), legacy-billing (0).
		"KeysBudgetLow": 3, "KeysBudgetExhausted": 1, "MinOnDemandRemaining": 0,
	} {
		if got, ok := mode[name]; !ok || got != float64(want) {
			t.Errorf("%s = %v (present %v), want %d", name, got, ok, want)
		}
	}
	if _, ok := mode["RunDuration"]; !ok {
		t.Errorf("RunDuration missing")
	}
	for reason, n := range s.Reasons {
		v := byReason[string(reason)]
		if v["KeysSkipped"]+v["KeysFailed"] != float64(n) {
			t.Errorf("[Mode, Reason=%s] = %v, want %d", reason, v, n)
		}
	}
}

func TestLogLines(t *testing.T) {
	h := newHarness(t, kmsemu.Options{}, demoFleet(t), fastConfig())
	rep := h.run(t, payload(t, "incident.json"))
	lines := h.logs.lines(t)
	keys, summaries := 0, 0
	for _, l := range lines {
		if l["requestId"] != "req-1" || l["runId"] != rep.RunID || l["mode"] != "incident" {
			t.Errorf("line without requestId/runId/mode: %v", l)
		}
		switch l["msg"] {
		case "key decision":
			keys++
			for _, f := range []string{"keyId", "keyArn", "outcome", "reason", "onDemandUsed", "onDemandRemaining", "onDemandLimit", "reserve", "incidentReason"} {
				if _, ok := l[f]; !ok {
					t.Errorf("key line lacks %s: %v", f, l)
				}
			}
			if l["incidentReason"] != "INC-4711 suspected exposure" {
				t.Errorf("incidentReason %v", l["incidentReason"])
			}
		case "run summary":
			summaries++
			if l["candidates"] != float64(rep.Summary.Candidates) {
				t.Errorf("summary candidates %v, want %d", l["candidates"], rep.Summary.Candidates)
			}
		}
	}
	if keys != rep.Summary.Candidates || summaries != 1 {
		t.Errorf("%d key lines, %d summary lines; want %d and 1", keys, summaries, rep.Summary.Candidates)
	}
	if lines[len(lines)-1]["msg"] != "report" {
		t.Errorf("last line is %v, want the report", lines[len(lines)-1]["msg"])
	}
}
