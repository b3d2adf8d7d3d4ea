// Package org answers the organization sweep's own requests, which act on
// no key: mode targets (the state machine's first state) resolves
// orgTargets into (account, Region) targets and records them, mode
// org-summary (its last state) reads the Distributed Map's results and
// reports organization-wide figures once per execution. It also refuses a
// key request that names a member account the last targets run did not
// resolve (Check). See docs/design.md "Organization mode".
package org

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kms-rotator/kms-rotator/lambda/emf"
	"github.com/kms-rotator/kms-rotator/lambda/ledger"
	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// OrganizationsAPI is the part of the AWS Organizations client a targets run
// calls. Organizations answers these only to the organization's management
// account or a delegated administrator
// (https://docs.aws.amazon.com/organizations/latest/APIReference/API_ListAccountsForParent.html).
type OrganizationsAPI interface {
	DescribeOrganization(ctx context.Context, params *organizations.DescribeOrganizationInput, optFns ...func(*organizations.Options)) (*organizations.DescribeOrganizationOutput, error)
	ListAccountsForParent(ctx context.Context, params *organizations.ListAccountsForParentInput, optFns ...func(*organizations.Options)) (*organizations.ListAccountsForParentOutput, error)
	ListOrganizationalUnitsForParent(ctx context.Context, params *organizations.ListOrganizationalUnitsForParentInput, optFns ...func(*organizations.Options)) (*organizations.ListOrganizationalUnitsForParentOutput, error)
}

// S3API is the part of the S3 client that writes the targets and reads the
// sweep's results, in the organization bucket only.
type S3API interface {
	PutObject(ctx context.Context, params *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetObject(ctx context.Context, params *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// EventsAPI publishes the organization sweep's result event.
type EventsAPI interface {
	PutEvents(ctx context.Context, params *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// TargetsLedger keeps the last targets run's resolution (*ledger.Ledger).
type TargetsLedger interface {
	RecordTargets(ctx context.Context, res ledger.Resolution) error
	Targets(ctx context.Context) (*ledger.Resolution, error)
}

// Clients are the AWS clients of the organization requests. A nil
// Organizations client fails every OU and root; a nil S3 client answers
// targets inline and fails org-summary; nil Events publishes nothing.
type Clients struct {
	Organizations OrganizationsAPI
	S3            S3API
	Events        EventsAPI
	Ledger        TargetsLedger
}

// Invocation is what the handler knows of the invocation.
type Invocation struct {
	RequestID string
	// Scope is the function's partition, account and Region.
	Scope request.Scope
}

// Service answers the organization requests. Build it once per process.
type Service struct {
	cfg     settings.Config
	c       Clients
	log     *slog.Logger
	out     io.Writer
	outMu   sync.Mutex
	now     func() time.Time
	maxKeep int // failed targets and excluded accounts an answer lists
}

// New returns a Service. log receives JSON lines, out the EMF lines.
func New(cfg settings.Config, c Clients, log *slog.Logger, out io.Writer) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if out == nil {
		out = io.Discard
	}
	return &Service{cfg: cfg, c: c, log: log, out: out, now: time.Now, maxKeep: maxListed}
}

// maxListed bounds the excluded accounts and failed targets an answer
// lists (their counts are whole): the answers pass through Step Functions
// states of at most 256 KiB
// (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html).
const maxListed = 100

// answers refuses an organization request where ROTATOR_ORG_BUCKET is not
// set: the stack sets it on the sweep function only, the one the state
// machine invokes, so a caller allowed to invoke the incident function
// cannot re-resolve the targets (and with them the accounts requests may
// name) or replay a summary.
func (s *Service) answers(m request.Mode) error {
	if s.cfg.OrgBucket == "" || s.c.S3 == nil {
		return &request.ValidationError{Field: "mode", Msg: fmt.Sprintf("%s is answered only by the organization sweep's function, where %s is set (the stack sets it on <functionName>-sweep)",
			m, settings.EnvOrgBucket)}
	}
	return nil
}

// emit writes one EMF line with dimension [Mode].
func (s *Service) emit(mode request.Mode, metrics []emf.Metric) {
	b, err := emf.Line(s.cfg.MetricsNamespace, s.now(), [][2]string{{settings.DimMode, string(mode)}}, metrics)
	if err != nil {
		return
	}
	s.outMu.Lock()
	defer s.outMu.Unlock()
	_, _ = s.out.Write(b)
}

// withDeadline keeps the end of the invocation for the answer: calls stop
// half the engine's margin (10 % of the time left, 2–30 s) before it.
func withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	margin := min(max(time.Until(dl)/10, 2*time.Second), 30*time.Second)
	return context.WithDeadline(ctx, dl.Add(-margin/2))
}

func newRunID(t time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Retryer is the Organizations client's retry mode: Organizations answers
// TooManyRequestsException when its request quota is exceeded ("try again
// later", https://docs.aws.amazon.com/organizations/latest/APIReference/API_ListAccountsForParent.html),
// and the walk of a large organization makes hundreds of calls in a row.
// Standard mode (exponential backoff with jitter, up to 5 s) and 10
// attempts, without the retry token bucket, so a throttled page is waited
// for rather than failed; not adaptive mode, whose client-side rate would
// drop towards 0.5 requests a second after one throttle and leave a walk
// of thousands of accounts no time to finish.
func Retryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = 10
		o.MaxBackoff = 5 * time.Second
		o.RateLimiter = ratelimit.None
	})
}
