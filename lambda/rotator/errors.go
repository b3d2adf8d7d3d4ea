package rotator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
)

// classification is an error mapped to an outcome and reason; classify
// makes it and item.apply puts it on an entry.
type classification struct {
	outcome Outcome
	reason  Reason
	detail  string
	// ambiguous: the request may have reached KMS and been applied (5xx,
	// timeout, connection reset, lost response). Only matters for
	// RotateKeyOnDemand, which has no idempotency token.
	ambiguous bool
	// deadline: the run's own context ended (nothing to blame on AWS).
	deadline bool
}

// accessDeniedHint is appended to access-denied entries: the usual causes.
// A tag just added authorises only after up to five minutes, as KMS's ABAC
// evaluation is eventually consistent
// (https://docs.aws.amazon.com/kms/latest/developerguide/abac.html).
const accessDeniedHint = "hint: the key may lack the opt-in tag the function's IAM policy requires " +
	"(a tag added in the last five minutes may not authorise yet), " +
	"or its key policy may not delegate to IAM " +
	"(https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html#key-policy-default-allow-root-enable-iam)"

// classify maps an SDK error to an outcome and reason (docs/design.md reason table).
func classify(err error) classification {
	var me *memberError
	if errors.As(err, &me) {
		return classification{outcome: Failed, reason: ReasonAccessDenied, detail: me.Error()}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return classification{outcome: Failed, reason: ReasonError, detail: err.Error(), ambiguous: true, deadline: true}
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		detail := code + ": " + ae.ErrorMessage()
		switch {
		// RotateKeyOnDemand answers ConflictException while a rotation is in
		// progress (https://docs.aws.amazon.com/kms/latest/APIReference/API_RotateKeyOnDemand.html).
		// It also answers it when an automatic rotation is due within 20
		// minutes: KMS's message says which, so the entry carries it.
		case code == "ConflictException":
			return classification{outcome: Skipped, reason: ReasonRotationInProgress, detail: detail}
		// The lifetime limit is authoritative when KMS says so, whatever
		// our count of ON_DEMAND entries said.
		case code == "LimitExceededException":
			return classification{outcome: Skipped, reason: ReasonBudgetExhausted}
		case code == "AccessDeniedException":
			return classification{outcome: Failed, reason: ReasonAccessDenied, detail: detail + " (" + accessDeniedHint + ")"}
		case code == "NotFoundException":
			return classification{outcome: Failed, reason: ReasonNotFound, detail: detail}
		case isThrottleCode(code):
			return classification{outcome: Failed, reason: ReasonThrottled, detail: detail}
		case code == "KMSInternalException" || code == "DependencyTimeoutException" ||
			ae.ErrorFault() == smithy.FaultServer || httpStatus(err) >= 500:
			return classification{outcome: Failed, reason: ReasonError, detail: detail, ambiguous: true}
		}
		return classification{outcome: Failed, reason: ReasonError, detail: detail}
	}
	// Not an answer from KMS: a transport error. The request may have been
	// applied unless it provably never left (dial failure).
	return classification{outcome: Failed, reason: ReasonError, detail: err.Error(), ambiguous: !notSent(err)}
}

// timedOut describes a call that timed out on all its attempts.
func timedOut(err error, perAttempt time.Duration) string {
	attempts := 1
	var me *retry.MaxAttemptsError
	if errors.As(err, &me) {
		attempts = me.Attempt
	}
	return fmt.Sprintf("timed out after %d attempts of ROTATOR_CALL_TIMEOUT (%s) each: %v", attempts, perAttempt, err)
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// throttleCodes are the throttling error codes. Unlike the SDK's default
// list this excludes LimitExceededException, which for RotateKeyOnDemand is
// the lifetime limit, not a rate limit.
var throttleCodes = map[string]struct{}{
	"ThrottlingException":       {}, // KMS
	"ThrottledException":        {}, // Resource Groups Tagging API
	"Throttling":                {},
	"TooManyRequestsException":  {},
	"RequestLimitExceeded":      {},
	"RequestThrottled":          {},
	"RequestThrottledException": {},
	"SlowDown":                  {},
}

func isThrottleCode(code string) bool {
	_, ok := throttleCodes[code]
	return ok
}

// notSent reports whether err proves the request never reached the server:
// the connection could not be made at all.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true
	}
	return strings.Contains(err.Error(), "connection refused")
}

// newRotateRetryer returns the retryer of RotateKeyOnDemand: it retries only
// where a retry cannot spend a second rotation — throttling (the request was
// refused) and connection failures before the request was sent. Everything
// else comes back to the engine, which looks at the key before deciding
// (docs/design.md "Safety rules"). The retry token bucket is off: under a
// throttling storm it would turn throttles into failures; pacing is the
// limiter's job. backoff nil means the SDK's exponential backoff with jitter.
func newRotateRetryer(maxAttempts int, backoff retry.BackoffDelayer) aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = maxAttempts
		o.MaxBackoff = 5 * time.Second
		if backoff != nil {
			o.Backoff = backoff
		}
		o.RateLimiter = ratelimit.None
		o.Throttles = []retry.IsErrorThrottle{retry.ThrottleErrorCode{Codes: throttleCodes}}
		o.Retryables = []retry.IsErrorRetryable{
			retry.NoRetryCanceledError{},
			retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
				var ae smithy.APIError
				if errors.As(err, &ae) {
					return aws.BoolTernary(isThrottleCode(ae.ErrorCode()))
				}
				return aws.BoolTernary(notSent(err))
			}),
		}
	})
}

// rotateAttempts bounds RotateKeyOnDemand attempts under throttling: with
// backoff capped at 5 s, about 25 s of throttling before the key is
// reported "throttled".
const rotateAttempts = 8

// noBlindRetry returns the per-call option installing retryer on a
// RotateKeyOnDemand call, whatever retryer the client was built with.
func noBlindRetry(retryer aws.Retryer) func(*kms.Options) {
	return func(o *kms.Options) {
		o.Retryer = retryer
		o.RetryMaxAttempts = 0
	}
}
