package rotator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

// hookKMS is the real emulator client with some calls replaced: a fake of
// function fields, only where the emulator cannot produce the answer.
type hookKMS struct {
	KMSAPI
	rotate   func(ctx context.Context, in *kms.RotateKeyOnDemandInput, optFns ...func(*kms.Options)) (*kms.RotateKeyOnDemandOutput, error)
	describe func(ctx context.Context, in *kms.DescribeKeyInput, optFns ...func(*kms.Options)) (*kms.DescribeKeyOutput, error)
	aliases  func(ctx context.Context, in *kms.ListAliasesInput, optFns ...func(*kms.Options)) (*kms.ListAliasesOutput, error)
}

func (h *hookKMS) ListAliases(ctx context.Context, in *kms.ListAliasesInput, optFns ...func(*kms.Options)) (*kms.ListAliasesOutput, error) {
	if h.aliases != nil {
		return h.aliases(ctx, in, optFns...)
	}
	return h.KMSAPI.ListAliases(ctx, in, optFns...)
}

func (h *hookKMS) RotateKeyOnDemand(ctx context.Context, in *kms.RotateKeyOnDemandInput, optFns ...func(*kms.Options)) (*kms.RotateKeyOnDemandOutput, error) {
	if h.rotate != nil {
		return h.rotate(ctx, in, optFns...)
	}
	return h.KMSAPI.RotateKeyOnDemand(ctx, in, optFns...)
}

func (h *hookKMS) DescribeKey(ctx context.Context, in *kms.DescribeKeyInput, optFns ...func(*kms.Options)) (*kms.DescribeKeyOutput, error) {
	if h.describe != nil {
		return h.describe(ctx, in, optFns...)
	}
	return h.KMSAPI.DescribeKey(ctx, in, optFns...)
}

func apiErr(code string, fault smithy.ErrorFault) error {
	return &smithy.GenericAPIError{Code: code, Message: code + " from the test", Fault: fault}
}

func TestClassify(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	for _, tc := range []struct {
		name      string
		err       error
		outcome   Outcome
		reason    Reason
		ambiguous bool
	}{
		{"ConflictException → skipped rotation-in-progress", &kmstypes.ConflictException{Message: str("busy")}, Skipped, ReasonRotationInProgress, false},
		{"LimitExceededException → skipped budget-exhausted", &kmstypes.LimitExceededException{Message: str("limit")}, Skipped, ReasonBudgetExhausted, false},
		{"AccessDeniedException → failed access-denied", apiErr("AccessDeniedException", smithy.FaultClient), Failed, ReasonAccessDenied, false},
		{"NotFoundException → failed not-found", &kmstypes.NotFoundException{Message: str("gone")}, Failed, ReasonNotFound, false},
		{"ThrottlingException → failed throttled", apiErr("ThrottlingException", smithy.FaultClient), Failed, ReasonThrottled, false},
		{"tagging ThrottledException → failed throttled", apiErr("ThrottledException", smithy.FaultClient), Failed, ReasonThrottled, false},
		{"KMSInternalException → ambiguous error", &kmstypes.KMSInternalException{Message: str("oops")}, Failed, ReasonError, true},
		{"DependencyTimeoutException → ambiguous error", &kmstypes.DependencyTimeoutException{Message: str("slow")}, Failed, ReasonError, true},
		{"unmodeled server fault → ambiguous error", apiErr("InternalFailure", smithy.FaultServer), Failed, ReasonError, true},
		{"KMSInvalidStateException → error with code", &kmstypes.KMSInvalidStateException{Message: str("state")}, Failed, ReasonError, false},
		{"connection reset → ambiguous error", fmt.Errorf("send: %w", reset), Failed, ReasonError, true},
		{"dial failure → error, provably not sent", fmt.Errorf("send: %w", dial), Failed, ReasonError, false},
		{"deadline → ambiguous error", fmt.Errorf("call: %w", context.DeadlineExceeded), Failed, ReasonError, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := classify(tc.err)
			if c.outcome != tc.outcome || c.reason != tc.reason || c.ambiguous != tc.ambiguous {
				t.Fatalf("classify = %+v, want %s/%s ambiguous=%v", c, tc.outcome, tc.reason, tc.ambiguous)
			}
			if c.outcome == Failed && c.detail == "" {
				t.Fatalf("failed without detail")
			}
		})
	}
	t.Run("access denied carries the hint", func(t *testing.T) {
		c := classify(apiErr("AccessDeniedException", smithy.FaultClient))
		if !strings.Contains(c.detail, "AccessDeniedException: ") || !strings.Contains(c.detail, "opt-in tag") || !strings.Contains(c.detail, "key policy") {
			t.Fatalf("detail %q lacks code or hint", c.detail)
		}
	})
}

func str(s string) *string { return &s }

// oneDueKey is a fleet with one due, opted-in key (and one not due).
const oneDueKey = `[
 {"keyId":"11111111-1111-4111-8111-111111111111","alias":"alias/due","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"}},
 {"keyId":"22222222-2222-4222-8222-222222222222","alias":"alias/fresh","createdDaysAgo":5,"tags":{"kms-rotator":"enabled"}}]`

// noBackoff retries at once, so throttling tests do not sleep.
var noBackoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })

func TestRotateFailures(t *testing.T) {
	type hookFn = func(real KMSAPI, calls *atomic.Int32) func(ctx context.Context, in *kms.RotateKeyOnDemandInput, optFns ...func(*kms.Options)) (*kms.RotateKeyOnDemandOutput, error)
	fail := func(err error) hookFn {
		return func(_ KMSAPI, calls *atomic.Int32) func(ctx context.Context, in *kms.RotateKeyOnDemandInput, optFns ...func(*kms.Options)) (*kms.RotateKeyOnDemandOutput, error) {
			return func(context.Context, *kms.RotateKeyOnDemandInput, ...func(*kms.Options)) (*kms.RotateKeyOnDemandOutput, error) {
				calls.Add(1)
				return nil, err
			}
		}
	}
	// applyThenFail applies the rotation and loses the answer, n times.
	applyThenFail := func(n int32) hookFn {
		return func(real KMSAPI, calls *atomic.Int32) func(ctx context.Context, in *kms.RotateKeyOnDemandInput, optFns ...func(*kms.Options)) (*kms.RotateKeyOnDemandOutput, error) {
			return func(ctx context.Context, in *kms.RotateKeyOnDemandInput, optFns ...func(*kms.Options)) (*kms.RotateKeyOnDemandOutput, error) {
				if calls.Add(1) <= n {
					if _, err := real.RotateKeyOnDemand(ctx, in); err != nil {
						return nil, err
					}
					return nil, fmt.Errorf("read response: %w", &net.OpError{Op: "read", Err: errors.New("connection reset by peer")})
				}
				return real.RotateKeyOnDemand(ctx, in, optFns...)
			}
		}
	}
	// applyThenErr applies the rotation, then returns err (a timeout).
	applyThenErr := func(err error) hookFn {
		return func(real KMSAPI, calls *atomic.Int32) func(ctx context.Context, in *kms.RotateKeyOnDemandInput, optFns ...func(*kms.Options)) (*kms.RotateKeyOnDemandOutput, error) {
			return func(ctx context.Context, in *kms.RotateKeyOnDemandInput, optFns ...func(*kms.Options)) (*kms.RotateKeyOnDemandOutput, error) {
				calls.Add(1)
				if _, rerr := real.RotateKeyOnDemand(ctx, in); rerr != nil {
					return nil, rerr
				}
				return nil, err
			}
		}
	}
	// failThenPass fails before any change n times, then passes.
	failThenPass := func(n int32, err error) hookFn {
		return func(real KMSAPI, calls *atomic.Int32) func(ctx context.Context, in *kms.RotateKeyOnDemandInput, optFns ...func(*kms.Options)) (*kms.RotateKeyOnDemandOutput, error) {
			return func(ctx context.Context, in *kms.RotateKeyOnDemandInput, optFns ...func(*kms.Options)) (*kms.RotateKeyOnDemandOutput, error) {
				if calls.Add(1) <= n {
					return nil, err
				}
				return real.RotateKeyOnDemand(ctx, in, optFns...)
			}
		}
	}
	internal := &kmstypes.KMSInternalException{Message: str("internal")}
	for _, tc := range []struct {
		name      string
		delay     time.Duration
		hook      hookFn
		outcome   Outcome
		reason    Reason
		calls     int32 // RotateKeyOnDemand calls the hook saw
		rotations int   // new on-demand rotations KMS shows
	}{
		{"lost response, rotation completed → rotated once", 0, applyThenFail(1), Rotated, ReasonNone, 1, 1},
		{"lost response, rotation in progress → rotated once", time.Hour, applyThenFail(1), Rotated, ReasonNone, 1, 1},
		// KMS promises no read-after-write consistency for the rotation
		// status, so a look that shows nothing never licenses a second call.
		{"5xx before any change → failed unconfirmed, never a second call, nothing spent", 0, failThenPass(1, internal), Failed, ReasonUnconfirmed, 1, 0},
		{"5xx on every call → failed unconfirmed after one call", 0, failThenPass(9, internal), Failed, ReasonUnconfirmed, 1, 0},
		{"deadline exceeded after the rotation applied → rotated once", 0, applyThenErr(context.DeadlineExceeded), Rotated, ReasonNone, 1, 1},
		{"ConflictException → skipped rotation-in-progress", 0, fail(&kmstypes.ConflictException{Message: str("x")}), Skipped, ReasonRotationInProgress, 1, 0},
		{"LimitExceededException → skipped budget-exhausted, not retried", 0, fail(&kmstypes.LimitExceededException{Message: str("x")}), Skipped, ReasonBudgetExhausted, 1, 0},
		{"AccessDeniedException → failed access-denied", 0, fail(apiErr("AccessDeniedException", smithy.FaultClient)), Failed, ReasonAccessDenied, 1, 0},
		{"NotFoundException → failed not-found", 0, fail(&kmstypes.NotFoundException{Message: str("x")}), Failed, ReasonNotFound, 1, 0},
		{"DisabledException → failed error with code", 0, fail(&kmstypes.DisabledException{Message: str("x")}), Failed, ReasonError, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, kmsemu.Options{RotationDelay: tc.delay}, oneDueKey, fastConfig())
			var calls atomic.Int32
			hk := &hookKMS{KMSAPI: h.kms}
			hk.rotate = tc.hook(h.kms, &calls)
			h.engine.kms = hk
			h.engine.rotateOpt = noBlindRetry(newRotateRetryer(4, noBackoff))
			before := h.snapshot(t, testRegion)
			rep := h.run(t, request.Request{Mode: request.ModeScheduled})
			k := byAlias(rep)["alias/due"]
			if k.Outcome != tc.outcome || k.Reason != tc.reason {
				t.Fatalf("due key %s/%s (%s), want %s/%s", k.Outcome, k.Reason, k.Error, tc.outcome, tc.reason)
			}
			if got := calls.Load(); got != tc.calls {
				t.Errorf("RotateKeyOnDemand called %d times, want %d", got, tc.calls)
			}
			after := h.snapshot(t, testRegion)
			arn := k.KeyARN
			spent := after[arn].Started() - before[arn].Started()
			if spent != tc.rotations {
				t.Errorf("KMS shows %d new rotations, want %d", spent, tc.rotations)
			}
			checkAgainstEmulator(t, rep, before, after)
		})
	}
}

// wireFaults sits between the SDK and the emulator and answers the first n
// RotateKeyOnDemand requests itself with an error, so the SDK's retryer (the
// real no-blind-retry configuration) sees it on the wire.
type wireFaults struct {
	next   http.Handler
	n      int32
	status int
	code   string
	calls  atomic.Int32 // RotateKeyOnDemand requests that arrived
}

func (w *wireFaults) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Amz-Target") == "TrentService.RotateKeyOnDemand" && w.calls.Add(1) <= w.n {
		rw.Header().Set("Content-Type", "application/x-amz-json-1.1")
		rw.WriteHeader(w.status)
		fmt.Fprintf(rw, `{"__type":%q,"message":"injected by the test"}`, w.code)
		return
	}
	w.next.ServeHTTP(rw, r)
}

func TestRotateRetryOnTheWire(t *testing.T) {
	for _, tc := range []struct {
		name     string
		n        int32
		status   int
		code     string
		outcome  Outcome
		reason   Reason
		requests int32
		spent    int
	}{
		{"throttled twice, then accepted → SDK retries, rotated once", 2, 400, "ThrottlingException", Rotated, ReasonNone, 3, 1},
		{"throttled on every attempt → failed throttled after 4 attempts, nothing spent", 99, 400, "ThrottlingException", Failed, ReasonThrottled, 4, 0},
		{"500 once → no SDK retry, no second request; failed unconfirmed, nothing spent", 1, 500, "KMSInternalException", Failed, ReasonUnconfirmed, 1, 0},
		{"503 every time → one request in all, failed unconfirmed", 99, 503, "ServiceUnavailable", Failed, ReasonUnconfirmed, 1, 0},
		{"LimitExceededException is not a throttle → one request, budget-exhausted", 99, 400, "LimitExceededException", Skipped, ReasonBudgetExhausted, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, kmsemu.Options{}, oneDueKey, fastConfig())
			wf := &wireFaults{next: h.emu.Server, n: tc.n, status: tc.status, code: tc.code}
			srv := httptest.NewServer(wf)
			t.Cleanup(srv.Close)
			cfg := h.emu.Config(testRegion)
			cfg.BaseEndpoint = &srv.URL
			h.engine.kms = kms.NewFromConfig(cfg)
			h.engine.rotateOpt = noBlindRetry(newRotateRetryer(4, noBackoff))
			before := h.snapshot(t, testRegion)
			rep := h.run(t, request.Request{Mode: request.ModeScheduled})
			k := byAlias(rep)["alias/due"]
			if k.Outcome != tc.outcome || k.Reason != tc.reason {
				t.Fatalf("due key %s/%s (%s), want %s/%s", k.Outcome, k.Reason, k.Error, tc.outcome, tc.reason)
			}
			if got := wf.calls.Load(); got != tc.requests {
				t.Errorf("%d RotateKeyOnDemand requests, want %d", got, tc.requests)
			}
			after := h.snapshot(t, testRegion)
			if spent := after[k.KeyARN].OnDemand - before[k.KeyARN].OnDemand; spent != tc.spent {
				t.Errorf("KMS shows %d new rotations, want %d", spent, tc.spent)
			}
			checkAgainstEmulator(t, rep, before, after)
		})
	}
}

// The emulator's own fault injection, through the real SDK retryer
// configuration the function uses: the invariants hold whatever the dice say.
func TestEmulatorFaultsKeepInvariants(t *testing.T) {
	fleet := `[{"alias":"alias/due","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"},"count":20},
	           {"alias":"alias/fresh","createdDaysAgo":5,"tags":{"kms-rotator":"enabled"},"count":20}]`
	for _, tc := range []struct {
		name string
		opts kmsemu.Options
	}{
		{"every rotation response lost", kmsemu.Options{DropRate: 1, Seed: 1}},
		{"half the rotation responses lost, rotations in progress", kmsemu.Options{DropRate: 0.5, RotationDelay: time.Hour, Seed: 2}},
		{"10% of all requests fail before any change", kmsemu.Options{FailRate: 0.1, Seed: 3}},
		{"failures and lost responses together", kmsemu.Options{FailRate: 0.1, DropRate: 0.3, Seed: 4}},
	} {
		t.Run(tc.name+" → no double rotation, rotated ⇔ new rotation", func(t *testing.T) {
			h := newHarness(t, tc.opts, fleet, fastConfig())
			// Reads retry like production (adaptive mode, 10 attempts).
			reads := kms.NewFromConfig(h.emu.Config(testRegion), func(o *kms.Options) {
				o.Retryer = retry.NewAdaptiveMode(func(a *retry.AdaptiveModeOptions) {
					a.StandardOptions = append(a.StandardOptions, func(so *retry.StandardOptions) {
						so.MaxAttempts = 10
						so.Backoff = noBackoff
					})
				})
			})
			h.engine.kms = reads
			before := h.snapshot(t, testRegion)
			rep := h.run(t, request.Request{Mode: request.ModeScheduled})
			checkAgainstEmulator(t, rep, before, h.snapshot(t, testRegion))
			if rep.Summary.Candidates != 40 {
				t.Fatalf("%d candidates, want 40", rep.Summary.Candidates)
			}
			if tc.opts.FailRate == 0 && rep.Summary.Rotated != 20 {
				t.Errorf("%d rotated, want all 20 due keys (lost responses are rotations)", rep.Summary.Rotated)
			}
		})
	}
}

func TestReadFailuresMapToReasons(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		reason Reason
	}{
		{"DescribeKey access denied → failed access-denied", apiErr("AccessDeniedException", smithy.FaultClient), ReasonAccessDenied},
		{"DescribeKey throttled → failed throttled", apiErr("ThrottlingException", smithy.FaultClient), ReasonThrottled},
		{"DescribeKey validation error → failed error", apiErr("ValidationException", smithy.FaultClient), ReasonError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, kmsemu.Options{}, oneDueKey, fastConfig())
			h.engine.kms = &hookKMS{KMSAPI: h.kms, describe: func(context.Context, *kms.DescribeKeyInput, ...func(*kms.Options)) (*kms.DescribeKeyOutput, error) {
				return nil, tc.err
			}}
			rep := h.run(t, request.Request{Mode: request.ModeScheduled})
			for _, k := range rep.Keys {
				if k.Outcome != Failed || k.Reason != tc.reason || !strings.Contains(k.Error, "DescribeKey: ") {
					t.Errorf("%s: %s/%s %q, want failed/%s naming DescribeKey", k.Alias, k.Outcome, k.Reason, k.Error, tc.reason)
				}
			}
		})
	}
}

func TestAutomaticRotationImminentIsConflict(t *testing.T) {
	// Automatic rotation due in ~7 minutes: KMS answers ConflictException.
	// The entry says why and when (nextRotationDate), so the responder
	// knows when to try again.
	fleet := `[{"alias":"alias/auto","createdDaysAgo":400,"automaticRotation":true,"rotationPeriodInDays":90,
	  "tags":{"kms-rotator":"enabled","kms-rotator:interval-days":"30"},"rotations":[{"type":"AUTOMATIC","daysAgo":89.995}]}]`
	check := func(t *testing.T, k KeyReport) {
		t.Helper()
		if k.Outcome != Skipped || k.Reason != ReasonRotationInProgress {
			t.Fatalf("%s/%s %q, want skipped rotation-in-progress", k.Outcome, k.Reason, k.Error)
		}
		if !strings.Contains(k.Error, "RotateKeyOnDemand: ConflictException: ") || !strings.Contains(k.Error, "20 minutes") {
			t.Errorf("error %q does not carry KMS's message", k.Error)
		}
		next, err := time.Parse(time.RFC3339, aws.ToString(k.NextRotationDate))
		if err != nil || time.Until(next) > 20*time.Minute || time.Until(next) < 0 {
			t.Errorf("nextRotationDate %v, want within the next 20 minutes", aws.ToString(k.NextRotationDate))
		}
	}
	t.Run("incident → rotation-in-progress with nextRotationDate and KMS's message", func(t *testing.T) {
		h := newHarness(t, kmsemu.Options{}, fleet, fastConfig())
		ref, _ := request.ParseKeyRef("alias/auto")
		rep := h.run(t, request.Request{Mode: request.ModeIncident, Reason: "INC", Keys: []request.KeyRef{ref}})
		check(t, rep.Keys[0])
	})
	t.Run("sweep with the grace off → the same", func(t *testing.T) {
		cfg := fastConfig()
		cfg.AutoRotationGraceDays = 0
		h := newHarness(t, kmsemu.Options{}, fleet, cfg)
		rep := h.run(t, request.Request{Mode: request.ModeScheduled})
		check(t, byAlias(rep)["alias/auto"])
	})
	t.Run("sweep with the default grace → automatic-rotation-soon, no RotateKeyOnDemand", func(t *testing.T) {
		h := newHarness(t, kmsemu.Options{}, fleet, fastConfig())
		rep := h.run(t, request.Request{Mode: request.ModeScheduled})
		k := byAlias(rep)["alias/auto"]
		if k.Outcome != Skipped || k.Reason != ReasonAutomaticRotationSoon || k.NextRotationDate == nil {
			t.Fatalf("%s/%s nextRotationDate %v, want skipped automatic-rotation-soon with the date", k.Outcome, k.Reason, k.NextRotationDate)
		}
		if n := h.emu.Server.Stats().Op("RotateKeyOnDemand").Calls; n != 0 {
			t.Errorf("%d RotateKeyOnDemand calls, want 0", n)
		}
	})
}

func TestKMSLimitIsAuthoritative(t *testing.T) {
	// We assume 30 rotations; KMS (the emulator) allows 25 and says so.
	fleet := `[{"alias":"alias/k","createdDaysAgo":2000,"tags":{"kms-rotator":"enabled"},"rotations":[` +
		strings.TrimSuffix(strings.Repeat(`{"type":"ON_DEMAND","daysAgo":1000},`, 25), ",") + `]}]`
	cfg := fastConfig()
	cfg.OnDemandLimit = 30
	h := newHarness(t, kmsemu.Options{OnDemandLimit: 25}, fleet, cfg)
	before := h.snapshot(t, testRegion)
	rep := h.run(t, request.Request{Mode: request.ModeScheduled})
	k := byAlias(rep)["alias/k"]
	if k.Outcome != Skipped || k.Reason != ReasonBudgetExhausted {
		t.Fatalf("%s/%s %q, want skipped budget-exhausted", k.Outcome, k.Reason, k.Error)
	}
	checkAgainstEmulator(t, rep, before, h.snapshot(t, testRegion))
	if !strings.Contains(h.metrics.String(), `"KeysBudgetExhausted":1`) {
		t.Errorf("KeysBudgetExhausted not 1: %s", h.metrics.String())
	}
}

func TestIntervalTag(t *testing.T) {
	fleet := `[
	 {"alias":"alias/bad","createdDaysAgo":200,"tags":{"kms-rotator":"enabled","kms-rotator:interval-days":"90d"}},
	 {"alias":"alias/zero","createdDaysAgo":200,"tags":{"kms-rotator":"enabled","kms-rotator:interval-days":"0"}},
	 {"alias":"alias/long","createdDaysAgo":200,"tags":{"kms-rotator":"enabled","kms-rotator:interval-days":"3650"}},
	 {"alias":"alias/short","createdDaysAgo":2,"tags":{"kms-rotator":"enabled","kms-rotator:interval-days":"1"}},
	 {"alias":"alias/month","createdDaysAgo":40,"tags":{"kms-rotator":"enabled","kms-rotator:interval-days":"30"}}]`
	h := newHarness(t, kmsemu.Options{}, fleet, fastConfig())
	before := h.snapshot(t, testRegion)
	rep := h.run(t, request.Request{Mode: request.ModeScheduled})
	checkEntries(t, rep, map[string]want{
		"alias/bad":   {Failed, ReasonError},
		"alias/zero":  {Failed, ReasonError},
		"alias/long":  {Skipped, ReasonNotDue},
		"alias/short": {Failed, ReasonError}, // below ROTATOR_MIN_INTERVAL_DAYS: tagging is not a right to rotate daily
		"alias/month": {Rotated, ReasonNone},
	})
	if e := byAlias(rep)["alias/short"].Error; !strings.Contains(e, settings.IntervalTagKey) || !strings.Contains(e, "floor of 30 days") {
		t.Errorf("error %q does not name the tag and the floor", e)
	}
	if e := byAlias(rep)["alias/bad"].Error; !strings.Contains(e, settings.IntervalTagKey) {
		t.Errorf("error %q does not name the tag", e)
	}
	checkAgainstEmulator(t, rep, before, h.snapshot(t, testRegion))
	// An incident ignores the interval, so a bad tag does not stop it.
	ref, _ := request.ParseKeyRef("alias/bad")
	inc := h.run(t, request.Request{Mode: request.ModeIncident, Reason: "INC", Keys: []request.KeyRef{ref}})
	if k := inc.Keys[0]; k.Outcome != Rotated {
		t.Errorf("incident on a key with a bad interval tag: %s/%s %q, want rotated", k.Outcome, k.Reason, k.Error)
	}
}

func TestOverlappingSweepsRotateEachKeyOnce(t *testing.T) {
	fleet := `[{"alias":"alias/due","createdDaysAgo":200,"tags":{"kms-rotator":"enabled"},"count":30},
	           {"alias":"alias/fresh","createdDaysAgo":5,"tags":{"kms-rotator":"enabled"},"count":30}]`
	// Rotations stay in progress, as KMS's do for a while: the status
	// re-check and ConflictException are what keep the sweeps apart.
	h := newHarness(t, kmsemu.Options{RotationDelay: time.Hour}, fleet, fastConfig())
	before := h.snapshot(t, testRegion)
	const runs = 3
	reports := make([]*Report, runs)
	var wg sync.WaitGroup
	for i := range runs {
		// Separate engines and clients, as separate Lambda processes would have.
		e := h.newEngine(fastConfig())
		wg.Go(func() {
			rep, err := e.Run(context.Background(), request.Request{Mode: request.ModeScheduled}, Invocation{Scope: testScope})
			if err != nil {
				t.Errorf("run %d: %v", i, err)
				return
			}
			reports[i] = rep
		})
	}
	wg.Wait()
	after := h.snapshot(t, testRegion)
	var judged []*oracle.Report
	for _, rep := range reports {
		if rep == nil {
			t.FailNow()
		}
		judged = append(judged, judge(t, oracle.Documented, rep))
		for _, k := range rep.Keys {
			if k.Outcome == Failed {
				t.Errorf("%s failed: %s", k.Alias, k.Error)
			}
		}
	}
	// At most one rotation per key from the overlapping sweeps, each
	// reported rotated by exactly one of them.
	for _, p := range oracle.CheckRotations(before, after, judged...) {
		t.Errorf("overlapping sweeps: %s", p)
	}
	due := 0
	for arn, a := range after {
		due += a.Started() - before[arn].Started()
	}
	if due != 30 {
		t.Errorf("%d keys rotated across the sweeps, want each of the 30 due keys once", due)
	}
}

func TestAliasListingDeniedDoesNotStopTheRun(t *testing.T) {
	h := newHarness(t, kmsemu.Options{}, oneDueKey, fastConfig())
	h.engine.kms = &hookKMS{KMSAPI: h.kms, aliases: func(context.Context, *kms.ListAliasesInput, ...func(*kms.Options)) (*kms.ListAliasesOutput, error) {
		return nil, apiErr("AccessDeniedException", smithy.FaultClient)
	}}
	t.Run("sweep reports without aliases", func(t *testing.T) {
		rep := h.run(t, request.Request{Mode: request.ModeScheduled})
		if rep.Summary.Candidates != 2 || rep.Summary.Rotated != 1 {
			t.Fatalf("summary %+v, want 2 candidates, 1 rotated", rep.Summary)
		}
		for _, k := range rep.Keys {
			if k.Alias != "" {
				t.Errorf("alias %q without a listing", k.Alias)
			}
		}
	})
	t.Run("incident alias fails access-denied, key ID still rotates", func(t *testing.T) {
		a, _ := request.ParseKeyRef("alias/fresh")
		id, _ := request.ParseKeyRef("22222222-2222-4222-8222-222222222222")
		rep := h.run(t, request.Request{Mode: request.ModeIncident, Reason: "INC", Keys: []request.KeyRef{a, id}})
		got := map[string]KeyReport{}
		for _, k := range rep.Keys {
			got[k.Alias+k.KeyID] = k
		}
		if k := got["alias/fresh"]; k.Outcome != Failed || k.Reason != ReasonAccessDenied || !strings.Contains(k.Error, "ListAliases") {
			t.Errorf("alias entry %+v, want failed access-denied naming ListAliases", k)
		}
		if k := got["22222222-2222-4222-8222-222222222222"]; k.Outcome != Rotated {
			t.Errorf("key ID entry %s/%s %q, want rotated", k.Outcome, k.Reason, k.Error)
		}
	})
}
