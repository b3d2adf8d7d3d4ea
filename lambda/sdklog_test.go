package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/smithy-go/logging"
)

func TestSDKLogLinesAreJSON(t *testing.T) {
	for _, tc := range []struct {
		class logging.Classification
		level string
	}{
		{logging.Warn, "WARN"},
		{logging.Debug, "DEBUG"},
	} {
		t.Run(string(tc.class)+" → JSON line at level "+tc.level, func(t *testing.T) {
			var buf bytes.Buffer
			l := sdkLogger{slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
			l.Logf(tc.class, "failed to discard %d bytes: %s", 12, "use of closed network connection")
			var m map[string]any
			if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
				t.Fatalf("SDK log line is not JSON: %q", buf.String())
			}
			if m["level"] != tc.level || m["sdkMessage"] != "failed to discard 12 bytes: use of closed network connection" {
				t.Fatalf("line = %v", m)
			}
		})
	}
}

func TestSDKLogLinesCarryTheRequestID(t *testing.T) {
	var buf bytes.Buffer
	var l logging.Logger = sdkLogger{slog.New(slog.NewJSONHandler(&buf, nil))}
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-42"})
	logging.WithContext(ctx, l).Logf(logging.Warn, "retrying")
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("not JSON: %q", buf.String())
	}
	if m["requestId"] != "req-42" {
		t.Fatalf("line = %v, want requestId req-42", m)
	}
}
