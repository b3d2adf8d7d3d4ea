package oracle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// Report is a run's report as docs/design.md "The report" describes it,
// decoded from the JSON the function returned; null budget and time
// members (not read, not applicable) are nil.
type Report struct {
	RunID         string  `json:"runId"`
	Mode          string  `json:"mode"`
	Account       string  `json:"account,omitempty"`
	DryRun        bool    `json:"dryRun"`
	StartedAt     string  `json:"startedAt"`
	FinishedAt    string  `json:"finishedAt"`
	Summary       Summary `json:"summary"`
	Keys          []Entry `json:"keys"`
	OmittedNotDue int     `json:"omittedNotDue,omitempty"`
	OmittedOther  int     `json:"omittedOther,omitempty"`
	RepeatOf      string  `json:"repeatOf,omitempty"`
	// Evidence is where the run's evidence record went, or why not.
	Evidence *struct {
		Bucket string `json:"bucket,omitempty"`
		Key    string `json:"key,omitempty"`
		Error  string `json:"error,omitempty"`
	} `json:"evidence,omitempty"`
	Continuation *Continuation `json:"continuation,omitempty"`

	// Raw is the JSON the report was decoded from (Decode sets it).
	Raw []byte `json:"-"`
}

// Summary counts every candidate of a run by outcome and by reason.
type Summary struct {
	Candidates      int `json:"candidates"`
	Rotated         int `json:"rotated"`
	WouldRotate     int `json:"wouldRotate"`
	Skipped         int `json:"skipped"`
	Failed          int `json:"failed"`
	Deferred        int `json:"deferred"`
	Overdue         int `json:"overdue"`
	OverdueAction   int `json:"overdueAction"`
	OverdueByPolicy int `json:"overdueByPolicy"`
	// DueSoon and MaterialExpiringSoon count the entries that say so.
	DueSoon              int            `json:"dueSoon"`
	MaterialExpiringSoon int            `json:"materialExpiringSoon"`
	NotRotated           *int           `json:"notRotated,omitempty"`
	Reasons              map[string]int `json:"reasons"`
}

// Entry is one candidate key's entry.
type Entry struct {
	KeyID               string          `json:"keyId"`
	KeyARN              string          `json:"keyArn"`
	Account             string          `json:"account,omitempty"`
	Alias               string          `json:"alias"`
	Outcome             string          `json:"outcome"`
	Reason              string          `json:"reason"`
	KeyState            string          `json:"keyState,omitempty"`
	OnDemandUsed        *int            `json:"onDemandUsed"`
	OnDemandRemaining   *int            `json:"onDemandRemaining"`
	LastRotation        *string         `json:"lastRotation"`
	NextDue             *string         `json:"nextDue"`
	PrimaryKeyARN       string          `json:"primaryKeyArn,omitempty"`
	Error               string          `json:"error,omitempty"`
	NextRotationDate    *string         `json:"nextRotationDate,omitempty"`
	MaterialAgeDays     *int            `json:"materialAgeDays,omitempty"`
	Overdue             *bool           `json:"overdue,omitempty"`
	OverdueFor          string          `json:"overdueFor,omitempty"`
	KeyMaterialIDBefore string          `json:"keyMaterialIdBefore,omitempty"`
	KeyMaterialID       string          `json:"keyMaterialId,omitempty"`
	CompletedAt         *string         `json:"completedAt,omitempty"`
	Completion          string          `json:"completion,omitempty"`
	Stuck               bool            `json:"stuck,omitempty"`
	StagedKeyMaterialID string          `json:"stagedKeyMaterialId,omitempty"`
	MaterialExpiresAt   *string         `json:"materialExpiresAt,omitempty"`
	LastUsedAt          json.RawMessage `json:"lastUsedAt,omitempty"`
	Next                string          `json:"next,omitempty"`
	// Owner, DueSoon and MaterialExpiringSoon: the notice fields.
	Owner                  string  `json:"owner,omitempty"`
	DueSoon                bool    `json:"dueSoon,omitempty"`
	MaterialExpiringSoon   bool    `json:"materialExpiringSoon,omitempty"`
	Claim                  *Claim  `json:"claim,omitempty"`
	IntervalDays           *int    `json:"intervalDays,omitempty"`
	ScheduledRotationsLeft *int    `json:"scheduledRotationsLeft,omitempty"`
	BudgetRunsOutAt        *string `json:"budgetRunsOutAt,omitempty"`
}

// Claim is a ledger claim as an entry shows it (docs/design.md "The
// rotation ledger").
type Claim struct {
	RunID         string `json:"runId"`
	Mode          string `json:"mode"`
	ClaimedAt     string `json:"claimedAt"`
	Reason        string `json:"reason,omitempty"`
	Force         bool   `json:"force,omitempty"`
	Outcome       string `json:"outcome"`
	Request       string `json:"request,omitempty"`
	KeyMaterialID string `json:"keyMaterialId,omitempty"`
}

// Continuation is the report's place in a chain of continuations
// (docs/design.md "Continuations").
type Continuation struct {
	RunID      string `json:"runId"`
	Chain      int    `json:"chain"`
	After      string `json:"after,omitempty"`
	Next       string `json:"next,omitempty"`
	Deferred   int    `json:"deferred"`
	Started    bool   `json:"started"`
	NotStarted string `json:"notStarted,omitempty"`
}

// Evidence says where the run's evidence record went, or why it could not
// be written (docs/design.md "Evidence").
type Evidence struct {
	Bucket string `json:"bucket,omitempty"`
	Key    string `json:"key,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Decode decodes a report the function returned.
func Decode(raw []byte) (*Report, error) {
	var r Report
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("oracle: decode report: %w", err)
	}
	r.Raw = raw
	return &r, nil
}

// Encode turns a report of another type (the engine's, in its own tests)
// into the oracle's, through the JSON the function would return.
func Encode(v any) (*Report, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("oracle: encode report: %w", err)
	}
	return Decode(raw)
}

// unknownMembers lists the members of raw that the contract does not name
// (docs/design.md "The report"), as "keys[3].foo".
func unknownMembers(raw []byte) []string {
	var strict Report
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&strict); err == nil {
		return nil
	}
	// Which ones: decode each level generically and compare with the
	// members the types declare.
	var r map[string]json.RawMessage
	if json.Unmarshal(raw, &r) != nil {
		return nil
	}
	var out []string
	out = append(out, extra(r, Report{}, "report")...)
	var s map[string]json.RawMessage
	if json.Unmarshal(r["summary"], &s) == nil {
		out = append(out, extra(s, Summary{}, "summary")...)
	}
	var c map[string]json.RawMessage
	if json.Unmarshal(r["continuation"], &c) == nil {
		out = append(out, extra(c, Continuation{}, "continuation")...)
	}
	var ev map[string]json.RawMessage
	if json.Unmarshal(r["evidence"], &ev) == nil {
		out = append(out, extra(ev, Evidence{}, "evidence")...)
	}
	var keys []map[string]json.RawMessage
	if json.Unmarshal(r["keys"], &keys) == nil {
		for i, k := range keys {
			where := fmt.Sprintf("keys[%d]", i)
			out = append(out, extra(k, Entry{}, where)...)
			var cl map[string]json.RawMessage
			if json.Unmarshal(k["claim"], &cl) == nil {
				out = append(out, extra(cl, Claim{}, where+".claim")...)
			}
		}
	}
	return out
}

// extra returns where.member for each member of m that typ (a struct)
// does not declare, in name order.
func extra(m map[string]json.RawMessage, typ any, where string) []string {
	known := map[string]bool{}
	t := reflect.TypeOf(typ)
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			known[name] = true
		}
	}
	var out []string
	for _, name := range slices.Sorted(maps.Keys(m)) {
		if !known[name] {
			out = append(out, where+"."+name)
		}
	}
	return out
}
