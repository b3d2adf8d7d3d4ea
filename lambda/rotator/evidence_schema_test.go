package rotator

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
)

// validateEvidence checks an evidence record against docs/evidence.schema.json
// with the part of JSON Schema that file uses: type (one or a list),
// required, properties, items, enum and const. It returns the problems.
func validateEvidence(doc []byte) []string {
	raw, err := os.ReadFile("../../docs/evidence.schema.json")
	if err != nil {
		return []string{err.Error()}
	}
	var schema, v any
	if err := json.Unmarshal(raw, &schema); err != nil {
		return []string{"schema: " + err.Error()}
	}
	if err := json.Unmarshal(doc, &v); err != nil {
		return []string{"record: " + err.Error()}
	}
	var problems []string
	validate(schema.(map[string]any), v, "$", &problems)
	return problems
}

func validate(s map[string]any, v any, at string, problems *[]string) {
	if t, ok := s["type"]; ok {
		var types []string
		switch t := t.(type) {
		case string:
			types = []string{t}
		case []any:
			for _, x := range t {
				types = append(types, x.(string))
			}
		}
		if !slices.Contains(types, jsonType(v)) && !(jsonType(v) == "integer" && slices.Contains(types, "number")) {
			*problems = append(*problems, fmt.Sprintf("%s: %s, want %v", at, jsonType(v), types))
			return
		}
	}
	if c, ok := s["const"]; ok && c != v {
		*problems = append(*problems, fmt.Sprintf("%s: %v, want %v", at, v, c))
	}
	if e, ok := s["enum"].([]any); ok && !slices.Contains(e, v) {
		*problems = append(*problems, fmt.Sprintf("%s: %v not one of %v", at, v, e))
	}
	if obj, ok := v.(map[string]any); ok {
		for _, r := range asList(s["required"]) {
			if _, has := obj[r]; !has {
				*problems = append(*problems, fmt.Sprintf("%s: no %s", at, r))
			}
		}
		props, _ := s["properties"].(map[string]any)
		for name, sub := range props {
			if x, has := obj[name]; has {
				validate(sub.(map[string]any), x, at+"."+name, problems)
			}
		}
	}
	if arr, ok := v.([]any); ok {
		if items, ok := s["items"].(map[string]any); ok {
			for i, x := range arr {
				validate(items, x, fmt.Sprintf("%s[%d]", at, i), problems)
			}
		}
	}
}

func asList(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		out = append(out, x.(string))
	}
	return out
}

func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		if x == math.Trunc(x) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "unknown"
}
