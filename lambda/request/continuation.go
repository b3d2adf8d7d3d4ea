package request

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
)

// Continuation is the cursor of a run that continues an earlier one. When a
// scheduled, plan or report run cannot finish its keys before the Lambda
// deadline, it invokes its own function asynchronously with the next
// cursor; keys are handled in key ARN order, so the next link takes the
// keys after the cursor and none is handled twice. Only the function sends
// it; people never need to.
type Continuation struct {
	// RunID is the run ID of the chain's first run, so every link's logs
	// can be tied together.
	RunID string
	// After is the key ARN of the last key the chain has finished: this
	// run handles the opted-in keys whose ARN sorts after it.
	After string
	// Chain is this run's place in the chain: 1 for the first continuation.
	Chain int
}

// MaxChain bounds Continuation.Chain whatever the configuration says; the
// function's own bound (ROTATOR_CONTINUATION_MAX) is lower.
const MaxChain = 100

var (
	continuationFields = []string{"runId", "after", "chain"}
	// runIDPattern matches the engine's run IDs (20260102T030405Z-1a2b3c4d)
	// and leaves room for other printable IDs, never for control characters.
	runIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)
)

// decodeContinuation reads {"runId":…, "after":<key ARN>, "chain":N}. The
// cursor must be a key ARN in the function's partition, account and
// Region: the keys a sweep lists are the Region's own.
func decodeContinuation(raw json.RawMessage, path string, scope Scope) (*Continuation, error) {
	fs, err := readObject(raw, path, false)
	if err != nil {
		return nil, err
	}
	if err := checkNames(fs, path+".", continuationFields, "unknown field"); err != nil {
		return nil, err
	}
	for _, name := range continuationFields {
		if _, ok := find(fs, name); !ok {
			return nil, invalid(join(path, name), "required")
		}
	}
	c := &Continuation{}
	v, _ := find(fs, "runId")
	if c.RunID, err = readString(v, join(path, "runId")); err != nil {
		return nil, err
	}
	if !runIDPattern.MatchString(c.RunID) {
		return nil, invalid(join(path, "runId"), "%s is not a run ID (1 to 64 letters, digits and . _ : -)", quote(c.RunID))
	}
	v, _ = find(fs, "after")
	if c.After, err = readString(v, join(path, "after")); err != nil {
		return nil, err
	}
	ref, perr := ParseKeyRef(c.After)
	switch {
	case perr != nil:
		return nil, invalid(join(path, "after"), "%s", perr)
	case ref.Kind != KeyARN:
		return nil, invalid(join(path, "after"), "%s is not a key ARN", quote(c.After))
	}
	if p := inScope(ref, scope); p != "" {
		return nil, invalid(join(path, "after"), "%s", p)
	}
	if ref.Account != scope.Account {
		return nil, invalid(join(path, "after"), "%s is in account %s, the run works in %s", quote(c.After), ref.Account, scope.Account)
	}
	if ref.Region != scope.Region {
		return nil, invalid(join(path, "after"), "%s is in region %s, the function runs in %s", quote(c.After), ref.Region, scope.Region)
	}
	v, _ = find(fs, "chain")
	if t := jsonType(v); t != "number" {
		return nil, invalid(join(path, "chain"), "want an integer, got %s", t)
	}
	n, cerr := strconv.Atoi(string(v))
	if cerr != nil || n < 1 || n > MaxChain {
		return nil, invalid(join(path, "chain"), "%s: want an integer from 1 to %d", quote(string(v)), MaxChain)
	}
	c.Chain = n
	return c, nil
}

// ContinuationPayload is the payload a run sends to continue itself: a
// direct invoke of mode with the cursor (dryRun carried for scheduled dry
// runs, usage for report runs that read it). Decode accepts exactly this shape.
func ContinuationPayload(mode Mode, dryRun, usage bool, target *Target, c Continuation) ([]byte, error) {
	type cont struct {
		RunID string `json:"runId"`
		After string `json:"after"`
		Chain int    `json:"chain"`
	}
	p := struct {
		Mode         Mode    `json:"mode"`
		DryRun       *bool   `json:"dryRun,omitempty"`
		Usage        bool    `json:"usage,omitempty"`
		Target       *Target `json:"target,omitempty"`
		Continuation cont    `json:"continuation"`
	}{Mode: mode, Usage: usage && mode == ModeReport, Target: target, Continuation: cont(c)}
	if mode == ModeIncident {
		return nil, fmt.Errorf("mode incident does not continue")
	}
	if dryRun && mode == ModeScheduled {
		p.DryRun = &dryRun
	}
	return json.Marshal(p)
}
