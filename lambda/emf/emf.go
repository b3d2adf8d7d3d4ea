// Package emf renders CloudWatch Embedded Metric Format lines: the
// function's metrics are JSON lines on stdout that CloudWatch Logs turns
// into metrics, with no PutMetricData call.
package emf

import (
	"encoding/json"
	"slices"
	"time"
)

// Units of the function's metrics.
const (
	Count        = "Count"
	Milliseconds = "Milliseconds"
)

// Metric is one metric of a directive and its value at the root.
type Metric struct {
	Name, Unit string
	Value      float64
}

// Line renders one EMF object: a single directive with one dimension set,
// dimension values and metric values as members of the root
// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
//
// extra, when set, is one more dimension (name, value) the metrics are also
// published under, as a second dimension set: [dims…, extra].
func Line(namespace string, ts time.Time, dims [][2]string, metrics []Metric, extra ...[2]string) ([]byte, error) {
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
		defs = append(defs, metricDef{Name: m.Name, Unit: m.Unit})
		root[m.Name] = m.Value
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
