package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/smithy-go/logging"
)

// sdkLogger routes the AWS SDK's own log lines (for example "failed to
// discard remaining HTTP response body") through the function's slog JSON
// handler. The SDK's default logger writes plain text to stderr, which
// breaks docs/design.md's "logs are JSON" contract and the Logs Insights queries
// of the dashboard.
type sdkLogger struct{ log *slog.Logger }

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
