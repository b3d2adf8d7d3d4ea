package oracle

import (
	"encoding/json"
	"fmt"
	"reflect"
)

// ResultDetail is the result event's detail (docs/design.md "The result
// event").
type ResultDetail struct {
	RunID     string  `json:"runId"`
	Mode      string  `json:"mode"`
	DryRun    bool    `json:"dryRun"`
	Reason    string  `json:"reason"`
	RequestID string  `json:"requestId"`
	Summary   Summary `json:"summary"`
	// Keys are the report's entries that are not not-due, and the
	// not-due ones with materialExpiringSoon.
	Keys      []Entry `json:"keys"`
	Truncated bool    `json:"truncated"`
	// Error is why an incident run failed as a whole.
	Error string `json:"error,omitempty"`
	// Notice says that imported key material expires soon.
	Notice string `json:"notice,omitempty"`
}

// CheckResultEvent checks one published result event (its source,
// detail-type and detail text as sent) against the run's report, the
// Lambda request ID and the incident reason (empty for other modes): the
// detail carries runId, mode, dryRun, reason, requestId, the summary as
// the report has it, and the report's entries that are not "not-due" (or
// are, with materialExpiringSoon: an owner's rule must see them), in
// the report's order and identical to them — all of them unless truncated
// is true, in which case some of them; the entry stays under 256 KB.
func CheckResultEvent(source, detailType, detail string, r *Report, requestID, reason string) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if source != ResultEventSource || detailType != ResultEventDetailType {
		bad("event source %q detail-type %q, want %q %q", source, detailType, ResultEventSource, ResultEventDetailType)
	}
	if len(source)+len(detailType)+len(detail) > maxEventEntryBytes {
		bad("event entry is %d bytes, over EventBridge's %d", len(source)+len(detailType)+len(detail), maxEventEntryBytes)
	}
	report := r.Raw
	if report == nil {
		report, _ = json.Marshal(r)
	}
	var rep, d map[string]json.RawMessage
	if err := json.Unmarshal(report, &rep); err != nil {
		return append(problems, fmt.Sprintf("report is not a JSON object: %v", err))
	}
	if err := json.Unmarshal([]byte(detail), &d); err != nil {
		return append(problems, fmt.Sprintf("event detail is not a JSON object: %v: %s", err, truncate(detail, 300)))
	}
	same := func(a, b json.RawMessage) bool {
		var x, y any
		return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
	}
	for _, f := range []string{"runId", "mode", "dryRun", "summary"} {
		if !same(d[f], rep[f]) {
			bad("event detail.%s = %s, report says %s", f, truncate(string(d[f]), 300), truncate(string(rep[f]), 300))
		}
	}
	str := func(f string) string {
		var s string
		_ = json.Unmarshal(d[f], &s)
		return s
	}
	if got := str("requestId"); got != requestID {
		bad("event detail.requestId = %q, want the invocation's %q", got, requestID)
	}
	if got := str("reason"); got != reason {
		bad("event detail.reason = %q, want %q", got, reason)
	}
	var truncated bool
	if v, ok := d["truncated"]; ok {
		if err := json.Unmarshal(v, &truncated); err != nil {
			bad("event detail.truncated = %s, want a bool", v)
		}
	}
	var repKeys, evKeys []json.RawMessage
	if err := json.Unmarshal(rep["keys"], &repKeys); err != nil {
		bad("report keys: %v", err)
	}
	if err := json.Unmarshal(d["keys"], &evKeys); err != nil {
		bad("event detail.keys = %s: %v", truncate(string(d["keys"]), 200), err)
	}
	var want []json.RawMessage
	for _, k := range repKeys {
		var e struct {
			Reason               string `json:"reason"`
			MaterialExpiringSoon bool   `json:"materialExpiringSoon"`
		}
		if json.Unmarshal(k, &e) == nil && (e.Reason != "not-due" || e.MaterialExpiringSoon) {
			want = append(want, k)
		}
	}
	if !truncated && len(evKeys) != len(want) {
		bad("event detail.keys has %d entries (not truncated), the report has %d that are not not-due or expire soon", len(evKeys), len(want))
		return problems
	}
	if !truncated {
		for i := range evKeys {
			if !same(evKeys[i], want[i]) {
				bad("event detail.keys[%d] = %s, report entry %s", i, truncate(string(evKeys[i]), 300), truncate(string(want[i]), 300))
			}
		}
		return problems
	}
	// Truncated: some entries left out (which ones is the engine's choice:
	// docs/design.md "The result event"), each of the rest a report entry,
	// none twice.
	used := make([]bool, len(want))
	for i, k := range evKeys {
		found := false
		for j := range want {
			if !used[j] && same(k, want[j]) {
				used[j], found = true, true
				break
			}
		}
		if !found {
			bad("event detail.keys[%d] = %s is not a report entry that is not not-due or expires soon (or is listed twice)", i, truncate(string(k), 300))
		}
	}
	return problems
}
