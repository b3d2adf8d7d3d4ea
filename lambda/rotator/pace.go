package rotator

import (
	"context"
	"math"

	"golang.org/x/time/rate"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// opRPS is the pace of a KMS operation: ROTATOR_ROTATE_RPS says what share
// of the account's RotateKeyOnDemand quota this function may use (4 of 5
// by default), and every other call is paced at the same share of its own
// quota (settings.KMSRequestQuotas: ListKeyRotations 80 of 100,
// GetKeyLastUsage 4 of 5, …). Pacing on the client keeps reads from being
// throttled at all, so the adaptive retryer — shared by every read of the
// client — never slows the status checks in front of the rotations. Every
// sweep reads one ListKeyRotations per eligible key, so after the
// rotations themselves that quota is what bounds a sweep; GetKeyLastUsage's
// 5 per second bounds idle checks and usage reports.
func opRPS(cfg settings.Config, op operation) float64 {
	return cfg.RotateRPS / settings.KMSRequestQuotas[opRotateKeyOnDemand.String()] * settings.KMSRequestQuotas[op.String()]
}

func listRotationsRPS(cfg settings.Config) float64 { return opRPS(cfg, opListKeyRotations) }

// pacedOps are the KMS calls with a limiter of their own (pacer.wait); the
// rotation has its own limiter (pacer.rotate).
var pacedOps = []operation{opListKeyRotations, opGetKeyLastUsage, opGetKeyRotationStatus, opDescribeKey, opListResourceTags, opListAliases}

// pacer paces the KMS calls of every run of this process, each operation
// at its share of its quota.
type pacer struct {
	// rotate paces RotateKeyOnDemand at ROTATOR_ROTATE_RPS. Its burst is
	// a fifth of a second of calls (1 at the default 4/s): enough for the
	// rotation stage to catch up after a stall (a busy host, a slow
	// response) instead of losing that time for good, and far inside
	// KMS's per-second quota.
	rotate *rate.Limiter
	// ops has one limiter per paced operation (nil: not paced); each
	// burst is a tenth of a second of calls, well inside KMS's per-second
	// bucket.
	ops [numOps]*rate.Limiter
}

func newPacer(cfg settings.Config) *pacer {
	p := &pacer{rotate: rate.NewLimiter(rate.Limit(cfg.RotateRPS), max(1, int(cfg.RotateRPS/5)))}
	for _, op := range pacedOps {
		r := opRPS(cfg, op)
		p.ops[op] = rate.NewLimiter(rate.Limit(r), max(1, int(math.Ceil(r/10))))
	}
	return p
}

// wait waits for op's turn at its pace.
func (p *pacer) wait(ctx context.Context, op operation) error {
	if l := p.ops[op]; l != nil {
		return l.Wait(ctx)
	}
	return nil
}

// readPipelines is how many keys are read at once: ROTATOR_CONCURRENCY when
// the operator set it; otherwise its default (16), or more when the
// ListKeyRotations pace needs more calls in flight. A key
// takes two sequential reads (DescribeKey, ListKeyRotations); with up to
// 50 ms per call (100 ms per key: a distant Region, a busy account)
// reaching the pace takes rate/10 pipelines. Idle pipelines cost a
// goroutine each; the limiter, not the pipeline count, sets the read rate.
func readPipelines(cfg settings.Config) int {
	if !cfg.ConcurrencyAuto {
		return cfg.Concurrency
	}
	return max(cfg.Concurrency, min(maxReadPipelines, int(math.Ceil(listRotationsRPS(cfg)/10))))
}

// maxReadPipelines bounds the read pipelines whatever the pace.
const maxReadPipelines = 256
