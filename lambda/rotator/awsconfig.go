package rotator

import (
	"context"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// LoadAWSConfig loads the SDK configuration the function runs with, from
// the SDK's standard sources (AWS_REGION, AWS_ENDPOINT_URL, credentials, …),
// plus two settings the engine's pace depends on:
//
//   - ReadRetryer for every call (RotateKeyOnDemand overrides it per call);
//   - an HTTP connection pool that keeps one idle connection per pipeline.
//     The SDK's default keeps 10 per host, so with more keys in flight
//     every extra request would open (and TLS-handshake) a new connection.
//
// The bench's sweep process uses it too, so it measures what Lambda runs.
func LoadAWSConfig(ctx context.Context, cfg settings.Config, optFns ...func(*config.LoadOptions) error) (aws.Config, error) {
	conns := readPipelines(cfg) + cfg.Concurrency + 8 // + listing, aliases, the look after a failure
	// The client's timeout bounds each attempt (each HTTP request) of every
	// call: a hung RotateKeyOnDemand or ListAliases must not hold a run
	// until its deadline (ROTATOR_CALL_TIMEOUT). A timed-out
	// RotateKeyOnDemand is ambiguous and is looked for, never repeated.
	httpClient := awshttp.NewBuildableClient().WithTimeout(cfg.CallTimeout).WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = max(t.MaxIdleConns, conns)
		t.MaxIdleConnsPerHost = max(t.MaxIdleConnsPerHost, conns)
	})
	opts := append([]func(*config.LoadOptions) error{
		config.WithRetryer(ReadRetryer),
		config.WithHTTPClient(httpClient),
	}, optFns...)
	return config.LoadDefaultConfig(ctx, opts...)
}

// ReadRetryer is the retry mode of every call except RotateKeyOnDemand (the
// engine overrides that one per call: no blind retry). Adaptive mode slows
// the client down when KMS throttles; more attempts than the default 3 and
// no retry token bucket, so a throttling storm is absorbed rather than
// turned into failed keys
// (https://docs.aws.amazon.com/sdk-for-go/v2/developer-guide/configure-retries-timeouts.html).
func ReadRetryer() aws.Retryer {
	return retry.NewAdaptiveMode(func(o *retry.AdaptiveModeOptions) {
		o.StandardOptions = append(o.StandardOptions, func(so *retry.StandardOptions) {
			so.MaxAttempts = 10
			so.MaxBackoff = 5 * time.Second
			so.RateLimiter = ratelimit.None
		})
	})
}

// gcPercent is the garbage collector's target the function runs with: the
// engine keeps little per key (tens of bytes) but every AWS call allocates
// tens of kilobytes that die at once, so with Go's default of 100 the heap
// doubles its small live set between collections. At 50, a 100,000-key
// sweep peaked at 55 MB instead of 75 MB (make bench, 1 % due) for a few
// per cent more CPU in a run whose pace the KMS quotas set.
const gcPercent = 50

// ConfigureRuntime applies the engine's runtime settings to the process
// (main and the bench's sweep call it), unless GOGC is set in the
// environment, which then wins.
func ConfigureRuntime(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}
