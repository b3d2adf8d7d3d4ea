package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/smithy-go/logging"
)

// sdkLogger routes the AWS SDK's own log lines (for example "failed to
// discard remaining HTTP response body") through the function's slog JSON
// handler. The SDK's default logger writes plain text to stderr, which
// breaks docs/design.md's "logs are JSON" contract and the Logs Insights queries
// of the dashboard.
type sdkLogger struct{ log *slog.Logger }

// WithContext implements logging.ContextLogger: the SDK asks for a logger
// per call, so its lines carry the Lambda request ID like every other line.
func (l sdkLogger) WithContext(ctx context.Context) logging.Logger {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		return sdkLogger{l.log.With("requestId", lc.AwsRequestID)}
	}
	return l
}

// Logf implements logging.Logger.
func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelInfo
	switch c {
	case logging.Warn:
		level = slog.LevelWarn
	case logging.Debug:
		level = slog.LevelDebug
	}
	l.log.Log(context.Background(), level, "aws sdk", "sdkMessage", fmt.Sprintf(format, v...))
}
