package rotator

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// EventsAPI is the part of the EventBridge client the engine calls.
type EventsAPI interface {
	PutEvents(ctx context.Context, params *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// SetEvents gives the engine the EventBridge client it publishes result
// events with. Call it before the first Run; without it no event is sent.
func (e *Engine) SetEvents(api EventsAPI) { e.out.events = api }

// maxEventBytes bounds the result event: an entry's size (the source, the
// detail-type and the detail) must be less than 256 KB
// (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html).
const maxEventBytes = 256*1024 - 1

// ResultDetail is the detail of the result event.
type ResultDetail struct {
	RunID  string       `json:"runId"`
	Mode   request.Mode `json:"mode"`
	DryRun bool         `json:"dryRun"`
	// Reason is the incident's reason (empty for other modes).
	Reason    string  `json:"reason"`
	RequestID string  `json:"requestId"`
	Summary   Summary `json:"summary"`
	// Keys are the report's entries that are not not-due.
	Keys []KeyReport `json:"keys"`
	// Truncated says that Keys leaves entries out to fit the event size
	// limit (or that the report itself had left some out); Summary counts
	// every key.
	Truncated bool `json:"truncated"`
	// Notice says that imported key material expires within
	// ROTATOR_NOTICE_DAYS (the entries carry materialExpiringSoon).
	Notice string `json:"notice,omitempty"`
	// Error is why an incident run failed as a whole (its keys could not
	// be listed, its tag selected none): the event says so rather than
	// staying silent.
	Error string `json:"error,omitempty"`
}

// publishResult sends the result event after an incident run (dry runs
// included) and after any run with failed keys. A failed publish never fails
// the run: it is logged and counted (ResultEventsFailed). It returns nil
// when no event was due.
func (o *outputs) publishResult(ctx context.Context, rep *Report) *bool {
	r := o.r
	// Imported material about to expire is a notice of its own: the key
	// stops working when it expires.
	if r.e.out.events == nil || (!r.req.Mode.Rules().Publishes && rep.Summary.Failed == 0 && rep.Summary.MaterialExpiringSoon == 0) {
		return nil
	}
	detail, err := o.resultDetail(rep, maxEventBytes-len(settings.ResultEventSource)-len(settings.ResultEventDetailType))
	ok := o.putResult(ctx, detail, err)
	return &ok
}

// publishFailure sends the result event of an incident run that failed as
// a whole (every incident run publishes one, failed ones included): the
// summary of what it handled and the error.
func (o *outputs) publishFailure(ctx context.Context, runErr error) {
	r := o.r
	if r.e.out.events == nil || !r.req.Mode.Rules().Publishes {
		return
	}
	d := ResultDetail{RunID: r.id, Mode: r.req.Mode, DryRun: r.dry, Reason: r.req.Reason, RequestID: r.inv.RequestID,
		Summary: o.tally.counts.summary, Keys: []KeyReport{}, Error: runErr.Error()}
	detail, err := json.Marshal(d)
	o.putResult(ctx, detail, err)
}

// putResult puts one result event on the results bus; a failure is logged.
func (o *outputs) putResult(ctx context.Context, detail []byte, err error) bool {
	r := o.r
	ok := false
	if err == nil {
		pctx, cancel := r.afterKeys(ctx, r.e.cfg.CallTimeout)
		defer cancel()
		var out *eventbridge.PutEventsOutput
		out, err = r.e.out.events.PutEvents(pctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{
			Source:       aws.String(settings.ResultEventSource),
			DetailType:   aws.String(settings.ResultEventDetailType),
			Detail:       aws.String(string(detail)),
			EventBusName: aws.String(r.e.cfg.ResultBus),
		}}})
		if err == nil && out.FailedEntryCount > 0 && len(out.Entries) > 0 {
			err = fmt.Errorf("%s: %s", aws.ToString(out.Entries[0].ErrorCode), aws.ToString(out.Entries[0].ErrorMessage))
		}
		if err == nil && len(out.Entries) > 0 {
			ok = true
			r.log.Info("result event published", "eventId", aws.ToString(out.Entries[0].EventId), "detailBytes", len(detail))
		}
	}
	if !ok {
		msg := "no entry in the PutEvents response"
		if err != nil {
			msg = err.Error()
		}
		r.log.Error("result event not published", "bus", r.e.cfg.ResultBus, "error", msg)
	}
	return ok
}

// resultDetail encodes the event detail within limit bytes: when the
// entries do not all fit, the report's trim policy (fit) keeps failed ones
// first, then rotated and would-rotate ones, then the rest, and the list
// stays in report order.
func (o *outputs) resultDetail(rep *Report, limit int) ([]byte, error) {
	r := o.r
	d := ResultDetail{
		RunID: rep.RunID, Mode: rep.Mode, DryRun: rep.DryRun, Reason: r.req.Reason,
		RequestID: r.inv.RequestID, Summary: rep.Summary,
		Truncated: rep.OmittedOther > 0,
	}
	if n := rep.Summary.MaterialExpiringSoon; n > 0 {
		d.Notice = fmt.Sprintf("the imported key material of %d key(s) expires within %d days (materialExpiresAt): import new material before it does, or the key becomes unusable",
			n, r.e.cfg.NoticeDays)
	}
	var keys []KeyReport
	for _, k := range rep.Keys {
		// Not-due keys are left out, unless a notice is about them: an
		// owner's rule must see the material that expires.
		if k.Reason != ReasonNotDue || k.MaterialExpiringSoon {
			keys = append(keys, k)
		}
	}
	d.Keys = keys
	b, err := json.Marshal(d)
	if err != nil || len(b) <= limit {
		return b, err
	}
	d.Keys, d.Truncated = []KeyReport{}, true
	base, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	// The whole detail did not fit, so neither do the entries alone:
	// fitBytes trims them.
	if kept, _, _ := fitBytes(keys, limit-len(base)); len(kept) > 0 {
		d.Keys = kept
	}
	return json.Marshal(d)
}
