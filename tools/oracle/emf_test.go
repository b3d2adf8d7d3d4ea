package oracle

import (
	"strings"
	"testing"
)

func TestParseEMF(t *testing.T) {
	const valid = `{"_aws":{"Timestamp":1764136800000,"CloudWatchMetrics":[{"Namespace":"KMSRotator","Dimensions":[["Mode"]],"Metrics":[{"Name":"KeysRotated","Unit":"Count"}]}]},"Mode":"scheduled","KeysRotated":3}`
	tests := []struct {
		name    string
		line    string
		wantOK  bool
		wantErr string
	}{
		{name: "valid record parses", line: valid, wantOK: true},
		{name: "array metric value parses", line: strings.Replace(valid, `"KeysRotated":3`, `"KeysRotated":[3,4]`, 1), wantOK: true},
		{name: "slog line is not EMF", line: `{"level":"INFO","msg":"key","keyId":"k"}`},
		{name: "plain text is not EMF", line: "START RequestId: x"},
		{name: "missing timestamp is an error", line: strings.Replace(valid, `"Timestamp":1764136800000,`, "", 1), wantOK: true, wantErr: "Timestamp"},
		{name: "missing namespace is an error", line: strings.Replace(valid, `"Namespace":"KMSRotator",`, "", 1), wantOK: true, wantErr: "Namespace"},
		{name: "metric without member is an error", line: strings.Replace(valid, `,"KeysRotated":3`, "", 1), wantOK: true, wantErr: "KeysRotated"},
		{name: "string metric value is an error", line: strings.Replace(valid, `"KeysRotated":3`, `"KeysRotated":"3"`, 1), wantOK: true, wantErr: "KeysRotated"},
		{name: "dimension without member is an error", line: strings.Replace(valid, `"Mode":"scheduled",`, "", 1), wantOK: true, wantErr: "Mode"},
		{name: "no directives is an error", line: `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[]}}`, wantOK: true, wantErr: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, ok, err := ParseEMF(tt.line)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if ok {
				if v, _ := rec.Value("KeysRotated"); v != 3 || rec.Dimension("Mode") != "scheduled" || rec.Directives[0].Namespace != "KMSRotator" {
					t.Fatalf("record = %+v", rec)
				}
			}
		})
	}
}
