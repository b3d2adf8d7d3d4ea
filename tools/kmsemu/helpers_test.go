package kmsemu_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
	"github.com/aws/smithy-go"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu/emutest"
)

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is an emulator with a fake clock and clients that do not retry, so a
// test sees every error the emulator answers.
type env struct {
	emu   *emutest.Emu
	clock *clock
	kms   *kms.Client
	tag   *resourcegroupstaggingapi.Client
	ctx   context.Context
}

func start(t *testing.T, opts kmsemu.Options, fleet string) *env {
	t.Helper()
	c := newClock()
	if opts.Now == nil {
		opts.Now = c.Now
	}
	e := emutest.Start(t, opts, fleet)
	return &env{emu: e, clock: c, kms: kmsClient(e, "us-east-1"), tag: taggingClient(e, "us-east-1"), ctx: context.Background()}
}

func kmsClient(e *emutest.Emu, region string) *kms.Client {
	return kms.NewFromConfig(e.Config(region), func(o *kms.Options) { o.RetryMaxAttempts = 1 })
}

func taggingClient(e *emutest.Emu, region string) *resourcegroupstaggingapi.Client {
	return resourcegroupstaggingapi.NewFromConfig(e.Config(region), func(o *resourcegroupstaggingapi.Options) { o.RetryMaxAttempts = 1 })
}

// code returns the AWS error code of err ("" for nil).
func code(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("not an API error: %v", err)
	}
	return ae.ErrorCode()
}

func wantCode(t *testing.T, err error, want string) {
	t.Helper()
	if got := code(t, err); got != want {
		t.Fatalf("error code = %q, want %q (err: %v)", got, want, err)
	}
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return v
	}
}

func describe(t *testing.T, e *env, id string) *kms.DescribeKeyOutput {
	t.Helper()
	return must[*kms.DescribeKeyOutput](t)(e.kms.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)}))
}

const (
	acct    = emutest.Account
	keyA    = "1234abcd-12ab-34cd-56ef-1234567890ab"
	keyB    = "0987dcba-09fe-87dc-65ba-ab0987654321"
	keyHMAC = "22222222-2222-4222-8222-222222222222"
	keyRSA  = "33333333-3333-4333-8333-333333333333"
	keyExt  = "44444444-4444-4444-8444-444444444444"
	keyHSM  = "55555555-5555-4555-8555-555555555555"
	keyAWS  = "66666666-6666-4666-8666-666666666666"
	keyDis  = "77777777-7777-4777-8777-777777777777"
	keyDel  = "88888888-8888-4888-8888-888888888888"
	keyFull = "99999999-9999-4999-8999-999999999999"
	keyXKS  = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
	mrk     = "mrk-00000000000000000000000000000001"
)

func arn(region, id string) string { return "arn:aws:kms:" + region + ":" + acct + ":key/" + id }

// testFleet has one key of each kind the tests need.
const testFleet = `[
 {"keyId":"` + keyA + `","alias":"alias/a","createdDaysAgo":100,"tags":{"kms-rotator":"enabled","team":"payments"},"rotations":[{"type":"ON_DEMAND","daysAgo":50},{"type":"AUTOMATIC","daysAgo":80}]},
 {"keyId":"` + keyB + `","alias":"alias/b","tags":{"kms-rotator":"enabled","team":"search"}},
 {"keyId":"` + keyHMAC + `","keySpec":"HMAC_256","tags":{"kms-rotator":"enabled"}},
 {"keyId":"` + keyRSA + `","keySpec":"RSA_2048","keyUsage":"SIGN_VERIFY","tags":{"kms-rotator":"disabled"}},
 {"keyId":"` + keyExt + `","origin":"EXTERNAL"},
 {"keyId":"` + keyHSM + `","origin":"AWS_CLOUDHSM","customKeyStoreId":"cks-1234567890abcdef0"},
 {"keyId":"` + keyXKS + `","origin":"EXTERNAL_KEY_STORE"},
 {"keyId":"` + keyAWS + `","alias":"alias/aws/s3","keyManager":"AWS","createdDaysAgo":400},
 {"keyId":"` + keyDis + `","keyState":"Disabled","tags":{"team":"payments"}},
 {"keyId":"` + keyDel + `","keyState":"PendingDeletion","deletionInDays":7},
 {"keyId":"` + keyFull + `","rotations":[{"type":"ON_DEMAND","daysAgo":3},{"type":"ON_DEMAND","daysAgo":2},{"type":"ON_DEMAND","daysAgo":1}]},
 {"keyId":"` + mrk + `","alias":"alias/global","region":"eu-west-1","multiRegionKeyType":"PRIMARY","tags":{"kms-rotator":"enabled"}},
 {"region":"us-east-1","multiRegionKeyType":"REPLICA","primaryAlias":"alias/global","alias":"alias/global-replica","tags":{"kms-rotator":"enabled"}}
]`
