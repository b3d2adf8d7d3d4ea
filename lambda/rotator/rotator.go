// Package rotator is the rotation engine of kms-rotator: it selects the KMS
// keys a request covers, decides per key whether to rotate it (Decide, a pure
// function), rotates the due ones on demand with bounded concurrency and
// client-side pacing, and reports every candidate exactly once (JSON report,
// slog lines, CloudWatch EMF metrics). It has no Lambda imports; the handler
// in package main is a thin adapter around Engine.Run.
//
// A run is a story in stages, each a type that owns its state, and the
// files read in flow order: rotator.go (Engine.Run, the run and its job;
// deadline.go, when it stops starting keys) → select.go (the selection:
// every mode's candidates, listed as the pages arrive, and their aliases)
// → pipeline.go (the read stage asks fetch.go's fetcher for facts until
// decide.go's Decide is final; the rotation stage re-checks the key, has
// claim.go's ledger guard claim it and calls RotateKeyOnDemand) →
// complete.go (after the call: an ambiguous failure confirmed, an
// incident's new material awaited) → entry.go and tally.go (each key's
// entry; the run's counts and the one trim policy) → report.go (the
// outputs, with metrics.go, events.go, evidence.go, findings.go,
// continuation.go and next.go). repeat.go holds the ledger guard's request
// record and sweep lease; errors.go maps AWS errors to outcomes.
package rotator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	tagging "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"

	"github.com/kms-rotator/kms-rotator/lambda/ledger"
	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// KMSAPI is the part of *kms.Client the engine calls. optFns carry the
// per-call Region for keys in other Regions (a multi-Region primary) and the
// no-blind-retry retryer of RotateKeyOnDemand.
type KMSAPI interface {
	DescribeKey(ctx context.Context, params *kms.DescribeKeyInput, optFns ...func(*kms.Options)) (*kms.DescribeKeyOutput, error)
	ListKeyRotations(ctx context.Context, params *kms.ListKeyRotationsInput, optFns ...func(*kms.Options)) (*kms.ListKeyRotationsOutput, error)
	GetKeyRotationStatus(ctx context.Context, params *kms.GetKeyRotationStatusInput, optFns ...func(*kms.Options)) (*kms.GetKeyRotationStatusOutput, error)
	RotateKeyOnDemand(ctx context.Context, params *kms.RotateKeyOnDemandInput, optFns ...func(*kms.Options)) (*kms.RotateKeyOnDemandOutput, error)
	ListAliases(ctx context.Context, params *kms.ListAliasesInput, optFns ...func(*kms.Options)) (*kms.ListAliasesOutput, error)
	ListResourceTags(ctx context.Context, params *kms.ListResourceTagsInput, optFns ...func(*kms.Options)) (*kms.ListResourceTagsOutput, error)
	GetKeyLastUsage(ctx context.Context, params *kms.GetKeyLastUsageInput, optFns ...func(*kms.Options)) (*kms.GetKeyLastUsageOutput, error)
}

// TaggingAPI is the part of the Resource Groups Tagging API client the engine
// calls to find opted-in keys.
type TaggingAPI interface {
	GetResources(ctx context.Context, params *tagging.GetResourcesInput, optFns ...func(*tagging.Options)) (*tagging.GetResourcesOutput, error)
}

// Invocation is what the caller knows about the invocation beyond the request.
type Invocation struct {
	// RequestID is the Lambda request ID, put on every log line.
	RequestID string
	// Scope is the function's partition, account and Region (from the
	// invoked function ARN); key IDs resolve to ARNs inside it.
	Scope request.Scope
	// FunctionARN is the invoked function ARN (with its qualifier, if
	// any): a run that does not finish continues by invoking it.
	FunctionARN string
}

// Engine runs rotation requests. Build it once per process with New; Run is
// safe for concurrent use (each run keeps its own state).
type Engine struct {
	cfg     settings.Config
	log     *slog.Logger
	kms     KMSAPI
	tagging TaggingAPI
	// ledger holds the claims written before every RotateKeyOnDemand
	// (claim.go); nil fails every rotation closed.
	ledger *ledger.Ledger
	// pace paces the KMS calls of all runs of this process (pace.go).
	pace *pacer
	// rotateOpt installs the no-blind-retry retryer on RotateKeyOnDemand.
	rotateOpt func(*kms.Options)
	// members gives the clients of member accounts (members.go); nil
	// outside organization mode.
	members MemberClients
	// out is where a run's results go besides its report.
	out outlets
	// now is the clock of decisions (tests set it); deadlines use real time.
	now func() time.Time
	// margin is how much of the Lambda's remaining time is kept back: no key
	// is started once less than this remains.
	margin func(remaining time.Duration) time.Duration
	// limits bound the report's entries (tests lower them).
	limits entryLimits
}

// outlets are where a run's results go besides the returned report: the EMF
// lines, the next link of a chain, the result event, the evidence record
// and the Security Hub findings. A nil outlet is off.
type outlets struct {
	metricsMu sync.Mutex
	metrics   io.Writer // the EMF lines (stdout in Lambda)
	// lambda invokes the function itself to continue a run (continuation.go).
	lambda LambdaAPI
	// events publishes the result event (events.go).
	events EventsAPI
	// evidence writes each run's evidence record (evidence.go).
	evidence EvidenceAPI
	// hub imports findings of the own account, memberHub gives a member
	// account's client (findings.go); nil hub imports none.
	hub       func(region string) SecurityHubAPI
	memberHub func(ctx context.Context, partition, account, region string) (SecurityHubAPI, error)
}

// entryLimits are MaxListedKeys and MaxReportEntries.
type entryLimits struct{ maxListed, maxEntries int }

// New returns an Engine. log receives JSON lines (one per key, a summary and
// the report); metricsOut receives the EMF lines (stdout in Lambda).
func New(cfg settings.Config, kmsClient KMSAPI, taggingClient TaggingAPI, log *slog.Logger, metricsOut io.Writer) *Engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if metricsOut == nil {
		metricsOut = io.Discard
	}
	return &Engine{
		cfg:       cfg,
		kms:       kmsClient,
		tagging:   taggingClient,
		log:       log,
		out:       outlets{metrics: metricsOut},
		pace:      newPacer(cfg),
		now:       time.Now,
		margin:    DeadlineMargin,
		limits:    entryLimits{maxListed: MaxListedKeys, maxEntries: MaxReportEntries},
		rotateOpt: noBlindRetry(newRotateRetryer(rotateAttempts, nil)),
	}
}

// DeadlineMargin is the default safety margin before the Lambda deadline:
// 10 % of the time left when the run starts, at least 2 s (to write the report
// and metrics) and at most 30 s (a 15-minute run keeps working until 30 s
// before its end).
func DeadlineMargin(remaining time.Duration) time.Duration {
	return min(max(remaining/10, 2*time.Second), 30*time.Second)
}

// Run executes one request and returns its report. It returns an error when
// the candidates could not be listed (so Lambda's retry and failure
// destination apply); per-key failures are entries in the report. A sweep
// whose listing fails part-way still writes the metrics, the per-key lines
// and the report line of the keys it handled before returning its error.
func (e *Engine) Run(ctx context.Context, req request.Request, inv Invocation) (*Report, error) {
	if err := e.checkAge(req); err != nil {
		e.log.Error("incident refused", "requestId", inv.RequestID, "error", err.Error())
		return nil, err
	}
	r, cancel := e.newRun(ctx, req, inv)
	defer cancel()
	if rep, ok := r.guard.beginRequest(r.ctx); ok {
		return rep, nil
	}
	if rep, ok := r.guard.takeLease(r.ctx); ok {
		return rep, nil
	}
	if r.out.evidenceOn() {
		r.out.book = &evidenceBook{}
	}
	if e.cfg.SecurityHub && e.out.hub != nil {
		r.out.findings = &findingBook{r: r, seen: map[string]bool{}}
	}
	defer r.guard.releaseLease(ctx)
	if err := r.fetch.connect(r.ctx); err != nil {
		if regionDisabled(err) {
			// Not a failure: the account never enabled the Region, so it
			// has nothing there to rotate; the handler answers notSwept.
			r.log.Warn("the target's Region is not enabled in its account; nothing was touched", "error", err.Error())
			return nil, fmt.Errorf("%s run: %w: %w", req.Mode, ErrRegionNotEnabled, err)
		}
		r.log.Error("member account not reachable; nothing was touched", "error", err.Error())
		e.emitRunFailed(r)
		r.out.publishFailure(ctx, err)
		return nil, fmt.Errorf("%s run: %w", req.Mode, err)
	}
	// Per-key calls use the run's context, which ends margin/2 before the
	// Lambda deadline; the listings (keys, aliases) may go on until lookBy,
	// a quarter margin before it, since without them there is no report.
	// No call outlives that, and each attempt is also bounded by
	// ROTATOR_CALL_TIMEOUT (LoadAWSConfig). A sweep starts on its keys
	// while the listing pages arrive (select.go).
	listCtx, cancelList := r.listContext(ctx)
	defer cancelList()
	r.guard.loadOpen(listCtx)
	home := r.scope.Region
	f := newFeed()
	listed := make(chan error, 1)
	go func() { listed <- r.sel.list(listCtx, f) }()
	// The Region's aliases label the entries: one paginated ListAliases,
	// listed while the first GetResources page arrives. Keys start once
	// they are known, so no line waits in memory for them.
	if as := r.sel.aliasSet(listCtx, home); as.err != nil {
		r.log.Warn("aliases not listed; entries carry no alias", "region", home, "error", as.err.Error())
	}
	r.processFeed(r.ctx, f) // returns once the feed is closed and every key is done
	listErr := <-listed
	if listErr == nil && r.req.Tag != nil && r.out.tally.candidates() == 0 {
		// An empty answer would read as success to a playbook: a tag
		// that selects nothing is almost always a typo.
		err := fmt.Errorf("incident run: tag %s=%s matches no key that carries the opt-in tag %s=%s; nothing was rotated",
			r.req.Tag.Key, r.req.Tag.Value, e.cfg.TagKey, e.cfg.TagValue)
		r.log.Error("incident tag matches no opted-in key", "error", err.Error())
		e.emitRunFailed(r)
		r.out.publishFailure(ctx, err)
		return nil, err
	}
	if listErr != nil && r.out.tally.candidates() == 0 {
		r.log.Error("listing candidates failed", "error", listErr.Error())
		e.emitRunFailed(r)
		err := fmt.Errorf("%s run: %w", req.Mode, listErr)
		r.out.publishFailure(ctx, err)
		return nil, err
	}
	// Incident mode adds the primaries of replicas as entries of their own;
	// they are processed after the keys that named them.
	if extra := r.sel.takeExtras(); len(extra) > 0 {
		r.process(r.ctx, extra)
	}
	r.completion.awaitCompletion(ctx)
	if listErr == nil {
		// After a failed listing the keys past the failure are unknown:
		// no cursor can hand them on, the next schedule lists again.
		r.out.continueChain(ctx)
	}
	rep := r.out.report()
	rep.Continuation = r.out.cont
	rep.Evidence = r.out.writeEvidence(ctx, rep, listErr)
	if listErr == nil {
		fctx, cancel := r.afterKeys(ctx, 4*e.cfg.CallTimeout)
		r.out.findings.publish(fctx)
		cancel()
	}
	if listErr == nil {
		r.guard.completeRequest(ctx, rep)
	}
	var published *bool
	if r.guard.repeatOf == "" {
		published = r.out.publishResult(ctx, rep)
	}
	// A sweep that deferred every key made no progress: whatever the
	// cause (a KMS that does not answer, a timeout too short for one
	// call), the next run would do the same, so the invocation fails
	// (function-errors alarm) instead of looking like a quiet success.
	noProgress := listErr == nil && r.req.Mode.Rules().Sweep && rep.Summary.Candidates > 0 &&
		rep.Summary.Deferred == rep.Summary.Candidates
	res := runResult{listErr: listErr, published: published, noProgress: noProgress, evidence: rep.Evidence}
	e.emitMetrics(r, rep, res)
	r.out.logSummary(rep)
	if noProgress {
		r.log.Error("no progress: every candidate was deferred", "deferred", rep.Summary.Deferred)
		return nil, fmt.Errorf("%s run: no progress: all %d candidates were deferred before the run's deadline "+
			"(is KMS answering? does the function's timeout leave room for ROTATOR_CALL_TIMEOUT and ROTATOR_CONFIRM_WAIT?)",
			req.Mode, rep.Summary.Candidates)
	}
	if listErr != nil {
		n := rep.Summary.Candidates
		r.log.Error("listing candidates failed part-way; the report covers the keys handled before", "error", listErr.Error(),
			"handled", n)
		return nil, fmt.Errorf("%s run: listing failed after %d keys: %w", req.Mode, n, listErr)
	}
	return rep, nil
}

// runResult is how a run ended, for its metrics.
type runResult struct {
	// listErr is set when the listing failed part-way.
	listErr error
	// published is nil when no result event was due, else whether it
	// was published.
	published *bool
	// noProgress: a sweep deferred every candidate.
	noProgress bool
	// evidence is where the evidence went (nil: none was due).
	evidence *EvidenceReport
}

// run is the state of one Run: what it was asked (job), by when
// (deadlines), and one value per stage, each owning its state.
type run struct {
	e *Engine
	job
	log *slog.Logger
	ctx context.Context // calls; ends margin/2 before the Lambda deadline
	// deadlines: when keys stop starting, calls end, the look after an
	// ambiguous rotation and the report's last calls end (deadline.go).
	deadlines

	sel        *selection   // the candidates and their aliases (select.go)
	fetch      *fetcher     // the keys' facts, paced and counted (fetch.go)
	guard      *ledgerGuard // the ledger: claims, request record, lease (claim.go)
	completion *completion  // after the call: confirm, wait for material (complete.go)
	out        *outputs     // entries, tally, report, event, evidence (report.go)
}

// job is what a run was asked to do, and where.
type job struct {
	req request.Request
	inv Invocation
	id  string
	// scope is where the run works: the function's account and Region, or
	// the request's target.
	scope request.Scope
	// dry: the run makes no KMS mutation (a dry run, a plan or report, or
	// a repeat that reads its keys' claims).
	dry bool
}

// newRun returns the state of one run and the cancel of its calls' context.
func (e *Engine) newRun(ctx context.Context, req request.Request, inv Invocation) (*run, context.CancelFunc) {
	r := &run{e: e, job: job{req: req, inv: inv, id: newRunID(e.now()), scope: inv.Scope.In(req.Target)}}
	r.out = &outputs{r: r, start: e.now(),
		tally: newTally(e.limits.maxListed, e.limits.maxEntries, e.cfg.Reserve, sweepPrefix(req, r.scope))}
	r.fetch = &fetcher{r: r}
	r.sel = newSelection(r)
	r.completion = &completion{r: r}
	r.dry = req.DryRun || e.cfg.DryRun || req.Mode.Rules().Dry
	r.guard = &ledgerGuard{r: r}
	if !r.dry {
		r.guard.identity = req.Identity()
	}
	r.log = e.log.With("runId", r.id, "mode", string(req.Mode), "requestId", inv.RequestID)
	var cancel context.CancelFunc
	if dl, ok := ctx.Deadline(); ok {
		r.deadlines = newDeadlines(dl, e.margin(time.Until(dl)))
		r.ctx, cancel = context.WithDeadline(ctx, r.callsEnd)
	} else {
		r.ctx, cancel = context.WithCancel(ctx)
	}
	return r, cancel
}

// sweepPrefix is the ARN prefix of a sweep's keys: GetResources lists the
// function's own Region and account. Incidents keep no marks.
func sweepPrefix(req request.Request, sc request.Scope) string {
	if !req.Mode.Rules().Continues {
		return ""
	}
	return keyARN(sc.Partition, sc.Region, sc.Account, "")
}

func newRunID(t time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}
