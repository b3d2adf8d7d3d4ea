package oracle

import (
	"encoding/json"
	"fmt"
	"strings"
)

// EMF is one CloudWatch Embedded Metric Format record, checked against the
// specification's structure
// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
type EMF struct {
	// Timestamp is _aws.Timestamp, milliseconds since the epoch.
	Timestamp int64
	// Directives are _aws.CloudWatchMetrics.
	Directives []EMFDirective
	// Fields are the record's top-level members: dimension values and
	// metric values among them.
	Fields map[string]any
}

// EMFDirective is one MetricDirective: a namespace, its dimension sets and
// metrics.
type EMFDirective struct {
	Namespace  string
	Dimensions [][]string
	Metrics    []EMFMetric
}

// EMFMetric is a MetricDefinition.
type EMFMetric struct {
	Name string
	Unit string
}

// ParseEMF parses line as an EMF record. ok is false when the line is not
// one (not a JSON object with an _aws member); err is set when it claims to
// be one but breaks the specification.
func ParseEMF(line string) (rec EMF, ok bool, err error) {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "{") || !strings.Contains(line, `"_aws"`) {
		return EMF{}, false, nil
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(line), &fields); err != nil {
		return EMF{}, false, nil
	}
	meta, isEMF := fields["_aws"]
	if !isEMF {
		return EMF{}, false, nil
	}
	var aws struct {
		Timestamp         *int64 `json:"Timestamp"`
		CloudWatchMetrics []struct {
			Namespace  *string     `json:"Namespace"`
			Dimensions [][]string  `json:"Dimensions"`
			Metrics    []EMFMetric `json:"Metrics"`
		} `json:"CloudWatchMetrics"`
	}
	b, _ := json.Marshal(meta)
	if err := json.Unmarshal(b, &aws); err != nil {
		return EMF{}, true, fmt.Errorf("emf: _aws: %w", err)
	}
	if aws.Timestamp == nil {
		return EMF{}, true, fmt.Errorf("emf: _aws.Timestamp missing")
	}
	if len(aws.CloudWatchMetrics) == 0 {
		return EMF{}, true, fmt.Errorf("emf: _aws.CloudWatchMetrics empty")
	}
	rec = EMF{Timestamp: *aws.Timestamp, Fields: fields}
	for i, d := range aws.CloudWatchMetrics {
		if d.Namespace == nil || *d.Namespace == "" {
			return EMF{}, true, fmt.Errorf("emf: directive %d: Namespace missing", i)
		}
		if len(d.Metrics) == 0 || len(d.Metrics) > 100 {
			return EMF{}, true, fmt.Errorf("emf: directive %d: %d metrics (1 to 100 allowed)", i, len(d.Metrics))
		}
		for _, set := range d.Dimensions {
			if len(set) > 30 {
				return EMF{}, true, fmt.Errorf("emf: directive %d: %d dimensions in a set (30 allowed)", i, len(set))
			}
			for _, dim := range set {
				if _, ok := fields[dim].(string); !ok {
					return EMF{}, true, fmt.Errorf("emf: dimension %q has no string member", dim)
				}
			}
		}
		for _, m := range d.Metrics {
			if m.Name == "" {
				return EMF{}, true, fmt.Errorf("emf: directive %d: metric without Name", i)
			}
			if !isMetricValue(fields[m.Name]) {
				return EMF{}, true, fmt.Errorf("emf: metric %q has no numeric member", m.Name)
			}
		}
		rec.Directives = append(rec.Directives, EMFDirective{Namespace: *d.Namespace, Dimensions: d.Dimensions, Metrics: d.Metrics})
	}
	return rec, true, nil
}

// isMetricValue reports whether v is a number or an array of numbers
// (up to 100), the two forms the specification allows.
func isMetricValue(v any) bool {
	switch v := v.(type) {
	case float64:
		return true
	case []any:
		if len(v) == 0 || len(v) > 100 {
			return false
		}
		for _, x := range v {
			if _, ok := x.(float64); !ok {
				return false
			}
		}
		return true
	}
	return false
}

// Value returns the numeric member name (the first element of an array).
func (e EMF) Value(name string) (float64, bool) {
	switch v := e.Fields[name].(type) {
	case float64:
		return v, true
	case []any:
		if len(v) > 0 {
			f, ok := v[0].(float64)
			return f, ok
		}
	}
	return 0, false
}

// Dimension returns the string member name (a dimension value).
func (e EMF) Dimension(name string) string {
	s, _ := e.Fields[name].(string)
	return s
}

// ParseEMFLines returns the EMF records among lines; other lines are
// ignored.
func ParseEMFLines(lines []string) ([]EMF, error) {
	var out []EMF
	for i, l := range lines {
		rec, ok, err := ParseEMF(l)
		if err != nil {
			return out, fmt.Errorf("line %d: %w: %s", i+1, err, truncate(l, 300))
		}
		if ok {
			out = append(out, rec)
		}
	}
	return out, nil
}
