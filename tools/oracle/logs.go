package oracle

import (
	"encoding/json"
	"fmt"
	"strings"
)

// CheckLogLines checks an invocation's log lines (docs/design.md "Metrics
// and logs"): there are some, each is a JSON object, and each that is not
// an EMF record carries the Lambda request ID. The AWS SDK's own default
// logger writes plain-text warnings ("SDK 2026/11/26 … WARN failed to
// discard remaining HTTP response body …") when a call's connection is
// closed under it; they come and go with timing and are not counted.
func CheckLogLines(lines []string, requestID string) []string {
	if len(lines) == 0 {
		return []string{"no log lines"}
	}
	var problems []string
	for _, l := range lines {
		if strings.HasPrefix(l, "SDK ") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			problems = append(problems, fmt.Sprintf("log line is not a JSON object: %v: %s", err, truncate(l, 200)))
			continue
		}
		if _, isEMF := m["_aws"]; !isEMF && m["requestId"] != requestID {
			problems = append(problems, fmt.Sprintf("log line without requestId %s: %s", requestID, truncate(l, 200)))
		}
	}
	return problems
}

// CheckKeyLines checks that the run logged one "key decision" line per
// entry of its report, and none for other keys.
func CheckKeyLines(lines []string, r *Report) []string {
	perKey := map[string]int{}
	for _, l := range lines {
		var m struct {
			Msg    string `json:"msg"`
			KeyARN string `json:"keyArn"`
		}
		if json.Unmarshal([]byte(l), &m) == nil && m.Msg == "key decision" {
			perKey[m.KeyARN]++
		}
	}
	var problems []string
	for _, k := range r.Keys {
		if n := perKey[k.KeyARN]; n != 1 {
			problems = append(problems, fmt.Sprintf("%d key decision log lines for %s, want 1", n, k.KeyARN))
		}
	}
	if len(perKey) != len(r.Keys) {
		problems = append(problems, fmt.Sprintf("key decision lines for %d keys, report has %d", len(perKey), len(r.Keys)))
	}
	return problems
}
