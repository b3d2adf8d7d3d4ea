package request

import (
	"reflect"
	"testing"
)

func TestDecodeContinuation(t *testing.T) {
	want := &Continuation{RunID: "20260102T030405Z-1a2b3c4d", After: arn2, Chain: 3}
	for _, tc := range []struct {
		name, payload string
		want          Request
	}{
		{"scheduled continuation is accepted",
			`{"mode":"scheduled","continuation":{"runId":"20260102T030405Z-1a2b3c4d","after":"` + arn2 + `","chain":3}}`,
			Request{Mode: ModeScheduled, Continuation: want, Source: SourceDirect}},
		{"scheduled dry-run continuation keeps dryRun",
			`{"mode":"scheduled","dryRun":true,"continuation":{"runId":"20260102T030405Z-1a2b3c4d","after":"` + arn2 + `","chain":3}}`,
			Request{Mode: ModeScheduled, DryRun: true, Continuation: want, Source: SourceDirect}},
		{"plan continuation is a dry run",
			`{"mode":"plan","continuation":{"chain":3,"after":"` + arn2 + `","runId":"20260102T030405Z-1a2b3c4d"}}`,
			Request{Mode: ModePlan, DryRun: true, Continuation: want, Source: SourceDirect}},
		{"report continuation in a kms-rotator event is accepted",
			`{"source":"kms-rotator","detail-type":"Rotate KMS Keys","detail":{"mode":"report","continuation":{"runId":"20260102T030405Z-1a2b3c4d","after":"` + arn2 + `","chain":3}}}`,
			Request{Mode: ModeReport, Continuation: want, Source: SourceCustomEvent}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode([]byte(tc.payload), testScope)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Decode = %+v (continuation %+v), want %+v", got, got.Continuation, tc.want)
			}
		})
	}
}

func TestContinuationPayloadRoundTrips(t *testing.T) {
	c := Continuation{RunID: "20260102T030405Z-1a2b3c4d", After: arn2, Chain: 2}
	for _, tc := range []struct {
		name   string
		mode   Mode
		dryRun bool
		want   Request
	}{
		{"scheduled decodes to the same cursor", ModeScheduled, false, Request{Mode: ModeScheduled, Continuation: &c, Source: SourceDirect}},
		{"scheduled dry run stays a dry run", ModeScheduled, true, Request{Mode: ModeScheduled, DryRun: true, Continuation: &c, Source: SourceDirect}},
		{"plan stays plan", ModePlan, true, Request{Mode: ModePlan, DryRun: true, Continuation: &c, Source: SourceDirect}},
		{"report stays report", ModeReport, false, Request{Mode: ModeReport, Continuation: &c, Source: SourceDirect}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ContinuationPayload(tc.mode, tc.dryRun, false, nil, c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(p, testScope)
			if err != nil {
				t.Fatalf("Decode(%s): %v", p, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Decode(%s) = %+v, want %+v", p, got, tc.want)
			}
		})
	}
	t.Run("incident is refused", func(t *testing.T) {
		if _, err := ContinuationPayload(ModeIncident, false, false, nil, c); err == nil {
			t.Fatal("ContinuationPayload(incident) succeeded, want an error")
		}
	})
}
