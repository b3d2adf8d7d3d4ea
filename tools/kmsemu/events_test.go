package kmsemu_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu/emutest"
)

// ebClient is a real EventBridge client for region that does not retry, so
// a test sees every error the emulator answers.
func ebClient(e *emutest.Emu, region string) *eventbridge.Client {
	return eventbridge.NewFromConfig(e.Config(region), func(o *eventbridge.Options) { o.RetryMaxAttempts = 1 })
}

// entry is a valid entry for the default bus.
func entry(detail string) types.PutEventsRequestEntry {
	return types.PutEventsRequestEntry{Source: aws.String("kms-rotator"), DetailType: aws.String("KMS Rotation Run Completed"), Detail: aws.String(detail)}
}

func putEvents(t *testing.T, c *eventbridge.Client, entries ...types.PutEventsRequestEntry) *eventbridge.PutEventsOutput {
	t.Helper()
	return must[*eventbridge.PutEventsOutput](t)(c.PutEvents(t.Context(), &eventbridge.PutEventsInput{Entries: entries}))
}

// getEvents reads GET /_kmslocal/events as raw JSON objects, so the test
// sees the member names an outside tool sees.
func getEvents(t *testing.T, url string) []map[string]any {
	t.Helper()
	resp, err := http.Get(url + "/_kmslocal/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /_kmslocal/events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var out []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out == nil {
		t.Fatal("GET /_kmslocal/events is null, want an array")
	}
	return out
}

func TestPutEventsRecordsAcceptedEntries(t *testing.T) {
	e := start(t, kmsemu.Options{}, "")
	c := ebClient(e.emu, "us-east-1")
	const detail = `{ "runId": "r-1", "mode": "incident", "summary": {"rotated": 3} }`
	at := time.Date(2026, 11, 26, 11, 59, 30, 250e6, time.UTC)
	busARN := "arn:aws:events:us-east-1:" + acct + ":event-bus/default"

	first := entry(detail)
	second := entry(`{"n":2}`)
	second.EventBusName = aws.String(busARN)
	second.Time = aws.Time(at)
	second.Resources = []string{arn("us-east-1", keyA)}
	third := entry(`{"n":3}`)
	third.EventBusName = aws.String("default")
	out := putEvents(t, c, first, second, third)

	t.Run("every entry gets an event ID and none fails", func(t *testing.T) {
		if out.FailedEntryCount != 0 || len(out.Entries) != 3 {
			t.Fatalf("FailedEntryCount %d, %d entries", out.FailedEntryCount, len(out.Entries))
		}
		for i, r := range out.Entries {
			if aws.ToString(r.EventId) == "" || r.ErrorCode != nil {
				t.Errorf("entry %d: %+v", i, r)
			}
		}
	})
	t.Run("Server.Events returns them in order with bus, time, account and region", func(t *testing.T) {
		evs := e.emu.Server.Events()
		if len(evs) != 3 {
			t.Fatalf("%d events", len(evs))
		}
		for i, ev := range evs {
			if ev.EventID != aws.ToString(out.Entries[i].EventId) || ev.EventBusName != "default" || ev.EventBusARN != busARN ||
				ev.Account != acct || ev.Region != "us-east-1" || ev.Source != "kms-rotator" || ev.DetailType != "KMS Rotation Run Completed" {
				t.Errorf("event %d: %+v", i, ev)
			}
		}
		if evs[0].Detail != detail {
			t.Errorf("Detail %q, want it as sent %q", evs[0].Detail, detail)
		}
		if !evs[0].Time.Equal(e.clock.Now()) || !evs[1].Time.Equal(at) {
			t.Errorf("times %v %v, want the call's %v and the entry's %v", evs[0].Time, evs[1].Time, e.clock.Now(), at)
		}
		if len(evs[0].Resources) != 0 || len(evs[1].Resources) != 1 || evs[1].Resources[0] != arn("us-east-1", keyA) {
			t.Errorf("resources %q %q", evs[0].Resources, evs[1].Resources)
		}
	})
	t.Run("GET /_kmslocal/events returns the same, Time in RFC 3339", func(t *testing.T) {
		evs := getEvents(t, e.emu.URL)
		if len(evs) != 3 {
			t.Fatalf("%d events", len(evs))
		}
		ev := evs[0]
		for k, want := range map[string]string{"Source": "kms-rotator", "DetailType": "KMS Rotation Run Completed", "Detail": detail,
			"EventBusName": "default", "Account": acct, "Region": "us-east-1", "EventId": aws.ToString(out.Entries[0].EventId)} {
			if ev[k] != want {
				t.Errorf("%s = %v, want %q", k, ev[k], want)
			}
		}
		if ts, err := time.Parse(time.RFC3339, evs[1]["Time"].(string)); err != nil || !ts.Equal(at) {
			t.Errorf("Time %v (%v), want %v", evs[1]["Time"], err, at)
		}
	})
	t.Run("the region comes from the request's signature", func(t *testing.T) {
		eu := ebClient(e.emu, "eu-west-1")
		putEvents(t, eu, entry(`{}`))
		evs := e.emu.Server.Events()
		if ev := evs[len(evs)-1]; ev.Region != "eu-west-1" || ev.EventBusARN != "arn:aws:events:eu-west-1:"+acct+":event-bus/default" {
			t.Fatalf("%+v", ev)
		}
	})
	t.Run("the operation is counted and logged with its entries", func(t *testing.T) {
		if st := e.emu.Server.Stats().Op("PutEvents"); st.Calls != 2 || st.Errors != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("reset forgets them", func(t *testing.T) {
		resp, err := http.Post(e.emu.URL+"/_kmslocal/events/reset", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("reset: %d", resp.StatusCode)
		}
		if evs := getEvents(t, e.emu.URL); len(evs) != 0 {
			t.Fatalf("%d events after reset", len(evs))
		}
	})
}

func TestPutEventsEntryErrors(t *testing.T) {
	long := strings.Repeat("é", 129) // 129 characters, 258 bytes
	cases := []struct {
		name string
		bad  func(*types.PutEventsRequestEntry)
		code string
	}{
		{"missing Source is InvalidArgument", func(p *types.PutEventsRequestEntry) { p.Source = nil }, "InvalidArgument"},
		{"empty Source is InvalidArgument", func(p *types.PutEventsRequestEntry) { p.Source = aws.String("") }, "InvalidArgument"},
		{"missing DetailType is InvalidArgument", func(p *types.PutEventsRequestEntry) { p.DetailType = nil }, "InvalidArgument"},
		{"missing Detail is InvalidArgument", func(p *types.PutEventsRequestEntry) { p.Detail = nil }, "InvalidArgument"},
		{"DetailType over 128 characters is InvalidArgument", func(p *types.PutEventsRequestEntry) { p.DetailType = aws.String(long) }, "InvalidArgument"},
		{"Detail that is not JSON is MalformedDetail", func(p *types.PutEventsRequestEntry) { p.Detail = aws.String(`{"a":`) }, "MalformedDetail"},
		{"Detail that is a JSON array is MalformedDetail", func(p *types.PutEventsRequestEntry) { p.Detail = aws.String(`[{"a":1}]`) }, "MalformedDetail"},
		{"Detail that is a JSON string is MalformedDetail", func(p *types.PutEventsRequestEntry) { p.Detail = aws.String(`"{}"`) }, "MalformedDetail"},
		{"Detail with trailing garbage is MalformedDetail", func(p *types.PutEventsRequestEntry) { p.Detail = aws.String(`{} {}`) }, "MalformedDetail"},
		{"unknown bus name is ResourceNotFoundException", func(p *types.PutEventsRequestEntry) { p.EventBusName = aws.String("kms-rotator-incidents") }, "ResourceNotFoundException"},
		{"default bus ARN of another region is ResourceNotFoundException", func(p *types.PutEventsRequestEntry) {
			p.EventBusName = aws.String("arn:aws:events:eu-west-1:" + acct + ":event-bus/default")
		}, "ResourceNotFoundException"},
		{"default bus ARN of another account is ResourceNotFoundException", func(p *types.PutEventsRequestEntry) {
			p.EventBusName = aws.String("arn:aws:events:us-east-1:111122223333:event-bus/default")
		}, "ResourceNotFoundException"},
	}
	for _, tc := range cases {
		t.Run(tc.name+"; the good entry beside it is accepted", func(t *testing.T) {
			e := start(t, kmsemu.Options{}, "")
			bad := entry(`{"bad":true}`)
			tc.bad(&bad)
			out := putEvents(t, ebClient(e.emu, "us-east-1"), bad, entry(`{"good":true}`))
			if out.FailedEntryCount != 1 || len(out.Entries) != 2 {
				t.Fatalf("FailedEntryCount %d, %d entries", out.FailedEntryCount, len(out.Entries))
			}
			r := out.Entries[0]
			if aws.ToString(r.ErrorCode) != tc.code || aws.ToString(r.ErrorMessage) == "" || r.EventId != nil {
				t.Fatalf("bad entry's result: code %q message %q id %v, want %s", aws.ToString(r.ErrorCode), aws.ToString(r.ErrorMessage), r.EventId, tc.code)
			}
			if aws.ToString(out.Entries[1].EventId) == "" {
				t.Fatalf("good entry's result: %+v", out.Entries[1])
			}
			evs := e.emu.Server.Events()
			if len(evs) != 1 || evs[0].Detail != `{"good":true}` {
				t.Fatalf("recorded %+v, want only the good entry", evs)
			}
		})
	}
	t.Run("a DetailType of exactly 128 characters is accepted", func(t *testing.T) {
		e := start(t, kmsemu.Options{}, "")
		p := entry(`{}`)
		p.DetailType = aws.String(strings.Repeat("é", 128))
		if out := putEvents(t, ebClient(e.emu, "us-east-1"), p); out.FailedEntryCount != 0 {
			t.Fatalf("%+v", out.Entries)
		}
	})
	t.Run("the log line counts entries and failures", func(t *testing.T) {
		var log emutest.Buffer
		e := start(t, kmsemu.Options{Log: &log}, "")
		bad := entry(`[]`)
		putEvents(t, ebClient(e.emu, "us-east-1"), bad, entry(`{}`))
		if l := log.String(); !strings.Contains(l, "op=PutEvents region=us-east-1 key=- status=200 code=OK") || !strings.Contains(l, "entries=2 failed=1") {
			t.Fatalf("log %q", l)
		}
	})
}

// detailOfSize is an entry whose size as EventBridge counts it (Source 1 +
// DetailType 1 + Detail) is n bytes.
func detailOfSize(n int) types.PutEventsRequestEntry {
	pad := n - 2 - len(`{"p":""}`)
	return types.PutEventsRequestEntry{Source: aws.String("s"), DetailType: aws.String("t"), Detail: aws.String(`{"p":"` + strings.Repeat("x", pad) + `"}`)}
}

func TestPutEventsRequestErrors(t *testing.T) {
	const limit = 256 * 1024
	withTime := func(p types.PutEventsRequestEntry) types.PutEventsRequestEntry {
		p.Time = aws.Time(time.Unix(1e9, 0))
		return p
	}
	many := make([]types.PutEventsRequestEntry, 11)
	for i := range many {
		many[i] = entry(`{}`)
	}
	cases := []struct {
		name    string
		entries []types.PutEventsRequestEntry
		code    string // "" = accepted
	}{
		{"11 entries is ValidationException", many, "ValidationException"},
		{"10 entries are accepted", many[:10], ""},
		{"no entries is ValidationException", []types.PutEventsRequestEntry{}, "ValidationException"},
		{"one byte under 256 KB is accepted", []types.PutEventsRequestEntry{detailOfSize(limit - 1)}, ""},
		{"256 KB is ValidationException (the total must be less)", []types.PutEventsRequestEntry{detailOfSize(limit)}, "ValidationException"},
		{"Time counts 14 bytes", []types.PutEventsRequestEntry{withTime(detailOfSize(limit - 14))}, "ValidationException"},
		{"entries that fit alone but not together are ValidationException",
			[]types.PutEventsRequestEntry{detailOfSize(limit / 2), detailOfSize(limit / 2)}, "ValidationException"},
		{"resources count", []types.PutEventsRequestEntry{func() types.PutEventsRequestEntry {
			p := detailOfSize(limit - 10)
			p.Resources = []string{"0123456789"}
			return p
		}()}, "ValidationException"},
		{"no entry with Source, DetailType and Detail is ValidationException",
			[]types.PutEventsRequestEntry{{Source: aws.String("s"), DetailType: aws.String("t")}, {Detail: aws.String(`{}`)}}, "ValidationException"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, kmsemu.Options{}, "")
			out, err := ebClient(e.emu, "us-east-1").PutEvents(t.Context(), &eventbridge.PutEventsInput{Entries: tc.entries})
			wantCode(t, err, tc.code)
			n := len(e.emu.Server.Events())
			switch {
			case tc.code != "" && n != 0:
				t.Fatalf("a refused request recorded %d events", n)
			case tc.code == "" && (n != len(tc.entries) || out.FailedEntryCount != 0):
				t.Fatalf("recorded %d of %d entries, FailedEntryCount %d", n, len(tc.entries), out.FailedEntryCount)
			}
		})
	}
}

func TestPutEventsFaultsAndQuota(t *testing.T) {
	t.Run("quota is PutEvents' per-region rate times the scale", func(t *testing.T) {
		// 10,000/s in us-east-1 and 2,400/s in eu-central-1 (EventBridge
		// quotas); at scale 0.001 that is 10 and 2.4 (a burst of 2).
		e := start(t, kmsemu.Options{QuotaScale: 0.001}, "")
		for region, allowed := range map[string]int{"us-east-1": 10, "eu-central-1": 2} {
			c := ebClient(e.emu, region)
			for i := 0; i < allowed; i++ {
				putEvents(t, c, entry(`{}`))
			}
			_, err := c.PutEvents(t.Context(), &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{entry(`{}`)}})
			wantCode(t, err, "ThrottlingException")
		}
		if st := e.emu.Server.Stats().Op("PutEvents"); st.Calls != 14 || st.Throttled != 2 {
			t.Fatalf("stats %+v", st)
		}
		if n := len(e.emu.Server.Events()); n != 12 {
			t.Fatalf("%d events recorded, want the 12 accepted", n)
		}
	})
	t.Run("an injected failure is InternalException and records nothing", func(t *testing.T) {
		e := start(t, kmsemu.Options{FailRate: 1}, "")
		_, err := ebClient(e.emu, "us-east-1").PutEvents(t.Context(), &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{entry(`{}`)}})
		wantCode(t, err, "InternalException")
		if n := len(e.emu.Server.Events()); n != 0 {
			t.Fatalf("%d events", n)
		}
		if st := e.emu.Server.Stats().Op("PutEvents"); st.Failed != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
}
