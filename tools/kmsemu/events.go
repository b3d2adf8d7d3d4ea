package kmsemu

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// Event is one PutEvents entry the emulator accepted, as Server.Events and
// GET /_kmslocal/events return it.
type Event struct {
	// EventID is the ID the PutEvents response gave the entry.
	EventID string `json:"EventId"`
	// Source, DetailType and Detail are the entry's, as sent (Detail is the
	// JSON object's text, not re-encoded).
	Source     string `json:"Source"`
	DetailType string `json:"DetailType"`
	Detail     string `json:"Detail"`
	// EventBusName is the bus's name ("default" when the entry named none),
	// also when the entry named it by ARN; EventBusARN is its ARN.
	EventBusName string `json:"EventBusName"`
	EventBusARN  string `json:"EventBusArn"`
	// Resources are the entry's resource ARNs (empty when none).
	Resources []string `json:"Resources"`
	// Time is the entry's Time, or the time of the PutEvents call when the
	// entry has none, as EventBridge sets it; RFC 3339 in JSON.
	Time time.Time `json:"Time"`
	// Account is the account of the request's credentials (the emulator's
	// account unless AssumeRole issued them) and Region the region the
	// request was signed for: where the event bus lives.
	Account string `json:"Account"`
	Region  string `json:"Region"`
}

// PutEvents limits from the EventBridge API reference
// (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html
// and API_PutEventsRequestEntry.html on the same site).
const (
	maxPutEventsEntries = 10
	maxDetailTypeChars  = 128
	// maxEntriesBytes is the total entry size a request must stay below,
	// computed as "Calculating PutEvents event entry size" describes
	// (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html):
	// 256 KB, the limit this project sizes its result event for.
	// The current API reference says 1 MB for PutEvents; keeping the older,
	// smaller limit means whatever the emulator accepts, EventBridge accepts.
	maxEntriesBytes = 256 * 1024
	// timeEntryBytes is what an entry's Time counts towards the size.
	timeEntryBytes = 14
	defaultBus     = "default"
)

// putEventsEntry is one PutEventsRequestEntry. Missing members are nil, so
// an absent member and an empty one can both be told from a present one.
type putEventsEntry struct {
	Source       *string  `json:"Source"`
	DetailType   *string  `json:"DetailType"`
	Detail       *string  `json:"Detail"`
	EventBusName *string  `json:"EventBusName"`
	Resources    []string `json:"Resources"`
	Time         *float64 `json:"Time"` // epoch seconds, as AWS JSON 1.1 sends timestamps
	TraceHeader  *string  `json:"TraceHeader"`
}

type putEventsResult struct {
	EventID      string `json:"EventId,omitempty"`
	ErrorCode    string `json:"ErrorCode,omitempty"`
	ErrorMessage string `json:"ErrorMessage,omitempty"`
}

// putEvents is EventBridge PutEvents
// (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html):
//
//   - 1 to 10 entries, else ValidationException for the whole request;
//   - the entries' total size (Time 14 bytes when set, the UTF-8 bytes of
//     Source, DetailType, Detail and each of Resources) under 256 KB, else
//     ValidationException for the whole request, as EventBridge answers
//     ("Total size of the entries in the request is over the limit.");
//   - Source, DetailType and Detail are needed for an event: an entry
//     without one of them fails alone, a request in which no entry has all
//     three fails as a whole (API_PutEventsRequestEntry.html);
//   - per entry, in the order of the request, either an EventId or an
//     ErrorCode and ErrorMessage (codes from API_PutEventsResultEntry.html:
//     InvalidArgument, MalformedDetail), and FailedEntryCount
//     (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevents.html).
//
// EventBusName is a name or an ARN; empty or absent is the default bus. The
// emulator has only the default bus of each region: an entry for another
// bus fails with ResourceNotFoundException. That is stricter than
// EventBridge, which has been seen to accept and drop events for a bus that
// does not exist (https://github.com/aws/aws-cli/issues/9186) — a test
// should learn about a wrong bus name rather than lose the event quietly.
// Every accepted entry is recorded for Server.Events.
func (s *Server) putEvents(c *call, body []byte) (any, *apiError) {
	var in struct {
		Entries []putEventsEntry `json:"Entries"`
		// EndpointId selects a global endpoint; one region serves here.
		EndpointID *string `json:"EndpointId"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	switch n := len(in.Entries); {
	case in.Entries == nil:
		return nil, errValidation("1 validation error detected: Value null at 'entries' failed to satisfy constraint: Member must not be null")
	case n < 1:
		return nil, errValidation("1 validation error detected: Value '[]' at 'entries' failed to satisfy constraint: Member must have length greater than or equal to 1")
	case n > maxPutEventsEntries:
		return nil, errValidation("1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length less than or equal to %d (got %d)", maxPutEventsEntries, n)
	}
	size, complete := 0, 0
	for _, e := range in.Entries {
		size += entrySize(e)
		if present(e.Source) && present(e.DetailType) && present(e.Detail) {
			complete++
		}
	}
	if size >= maxEntriesBytes {
		return nil, errValidation("Total size of the entries in the request is over the limit. (%d bytes; the limit is less than %d)", size, maxEntriesBytes)
	}
	if complete == 0 {
		return nil, errValidation("No entry has all of Source, DetailType and Detail, which EventBridge needs to send an event.")
	}

	out := struct {
		FailedEntryCount int               `json:"FailedEntryCount"`
		Entries          []putEventsResult `json:"Entries"`
	}{Entries: make([]putEventsResult, 0, len(in.Entries))}
	for _, e := range in.Entries {
		res := s.putEvent(c, e)
		if res.ErrorCode != "" {
			out.FailedEntryCount++
		}
		out.Entries = append(out.Entries, res)
	}
	c.note = fmt.Sprintf("entries=%d failed=%d", len(in.Entries), out.FailedEntryCount)
	return out, nil
}

// putEvent validates one entry and records it when it is valid.
func (s *Server) putEvent(c *call, e putEventsEntry) putEventsResult {
	fail := func(code, format string, args ...any) putEventsResult {
		return putEventsResult{ErrorCode: code, ErrorMessage: fmt.Sprintf(format, args...)}
	}
	for _, m := range []struct {
		name  string
		value *string
	}{{"Source", e.Source}, {"DetailType", e.DetailType}, {"Detail", e.Detail}} {
		if !present(m.value) {
			return fail("InvalidArgument", "Parameter %s is not valid. Reason: %s is a required argument.", m.name, m.name)
		}
	}
	if n := utf8.RuneCountInString(*e.DetailType); n > maxDetailTypeChars {
		return fail("InvalidArgument", "Parameter DetailType is not valid. Reason: DetailType is %d characters long; at most %d are allowed.", n, maxDetailTypeChars)
	}
	// "A valid JSON object" (API_PutEventsRequestEntry.html): valid JSON
	// whose first token is "{" is an object.
	if d := strings.TrimLeft(*e.Detail, " \t\r\n"); !strings.HasPrefix(d, "{") || !json.Valid([]byte(d)) {
		return fail("MalformedDetail", "Detail is malformed: it must be a JSON object.")
	}
	bus, busARN, ok := s.eventBus(c.account, c.region, e.EventBusName)
	if !ok {
		return fail("ResourceNotFoundException", "Event bus %s does not exist.", *e.EventBusName)
	}
	t := c.now
	if e.Time != nil {
		t = time.UnixMilli(int64(math.Round(*e.Time * 1000)))
	}
	resources := e.Resources
	if resources == nil {
		resources = []string{}
	}
	ev := Event{
		EventID: uuidFrom(s.idRNG), Source: *e.Source, DetailType: *e.DetailType, Detail: *e.Detail,
		EventBusName: bus, EventBusARN: busARN, Resources: resources,
		Time: t.UTC(), Account: c.account, Region: c.region,
	}
	s.events = append(s.events, ev)
	return putEventsResult{EventID: ev.EventID}
}

// eventBus resolves an entry's EventBusName (absent, empty, a name or an
// ARN) in region to the bus's name and ARN; ok is false for a bus the
// emulator does not have: anything but the region's default bus.
func (s *Server) eventBus(account, region string, nameOrARN *string) (name, arn string, ok bool) {
	arn = fmt.Sprintf("arn:%s:events:%s:%s:event-bus/%s", partition(region), region, account, defaultBus)
	switch {
	case nameOrARN == nil || *nameOrARN == "" || *nameOrARN == defaultBus || *nameOrARN == arn:
		return defaultBus, arn, true
	}
	return "", "", false
}

// entrySize is an entry's size as EventBridge counts it against the
// request limit (eb-putevent-size.html): Time 14 bytes when set, the UTF-8
// bytes of Source, DetailType, Detail and each resource. Go strings hold
// the UTF-8 bytes the JSON carried, so len is the byte count.
func entrySize(e putEventsEntry) int {
	n := 0
	if e.Time != nil {
		n += timeEntryBytes
	}
	for _, p := range []*string{e.Source, e.DetailType, e.Detail} {
		if p != nil {
			n += len(*p)
		}
	}
	for _, r := range e.Resources {
		n += len(r)
	}
	return n
}

func present(p *string) bool { return p != nil && *p != "" }

// Events returns the PutEvents entries accepted so far, oldest first.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Event, len(s.events))
	copy(out, s.events)
	return out
}

// ResetEvents forgets the recorded events.
func (s *Server) ResetEvents() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = nil
}
