package rotator

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/kms-rotator/kms-rotator/lambda/request"
)

// LambdaAPI is the part of *lambda.Client the engine calls: one
// asynchronous Invoke of its own function to continue a run.
type LambdaAPI interface {
	Invoke(ctx context.Context, params *lambda.InvokeInput, optFns ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

// SetLambda gives the engine the Lambda client it continues runs with. Call
// it before the first Run; without it (or with ROTATOR_CONTINUATION_MAX=0)
// runs that do not finish defer their remaining keys to the next schedule.
func (e *Engine) SetLambda(api LambdaAPI) { e.out.lambda = api }

// ContinuationReport is the report's "continuation" object: where this run
// sits in its chain and whether it handed the rest to a next link. Present
// when the run continues an earlier one, or deferred keys in a mode that
// continues (scheduled, plan, report).
type ContinuationReport struct {
	// RunID is the run ID of the chain's first run.
	RunID string `json:"runId"`
	// Chain is this run's place in the chain: 0 for the first run.
	Chain int `json:"chain"`
	// After is the cursor this run started from: it handled keys whose
	// ARN sorts after it (absent for the first run).
	After string `json:"after,omitempty"`
	// Next is the cursor to continue from: the ARN of the last key before
	// the first deferred one (absent when nothing was deferred, or when no
	// key finished: "no-progress").
	Next string `json:"next,omitempty"`
	// Deferred counts the keys left to the next link.
	Deferred int `json:"deferred"`
	// Started says whether this run invoked the next link.
	Started bool `json:"started"`
	// NotStarted says why keys were deferred without a next link:
	// "chain-limit" (ROTATOR_CONTINUATION_MAX reached), "disabled",
	// "no-progress" (not one key finished in this run), "no-function-arn",
	// or "invoke-failed: …".
	NotStarted string `json:"notStarted,omitempty"`
}

// continuationTimeout bounds the Invoke call; it runs inside the deadline
// margin, after the keys.
const continuationTimeout = 5 * time.Second

// continueChain starts the next link of the chain when keys were deferred
// in a mode that continues, within ROTATOR_CONTINUATION_MAX links, and
// records the outcome in o.cont. The next link starts after the last key
// before the first deferred one; a key after that cursor that this run
// finished anyway (a due key whose rotation could not start in time holds
// the cursor back) is looked at again there — reads only: it is not due
// any more, or its rotation shows as in progress.
func (o *outputs) continueChain(ctx context.Context) {
	r := o.r
	if !r.req.Mode.Rules().Continues {
		return
	}
	prev := r.req.Continuation
	if o.tally.counts.summary.Deferred == 0 && prev == nil {
		return
	}
	marks := o.tally.sortedMarks()
	first := slices.IndexFunc(marks, func(m mark) bool { return m.deferred })
	c := &ContinuationReport{RunID: r.id}
	if prev != nil {
		c.RunID, c.Chain, c.After = prev.RunID, prev.Chain, prev.After
	}
	o.cont = c
	if first < 0 {
		return
	}
	for _, m := range marks[first:] {
		if m.deferred {
			c.Deferred++
		}
	}
	if first == 0 {
		c.NotStarted = "no-progress"
		return
	}
	// The cursor is reported whether or not this run starts the next link
	// itself: an organization's state machine continues a target from it
	// (ROTATOR_CONTINUATION_MAX=0 there), and an operator can too.
	c.Next = marks[first-1].key
	switch {
	case r.e.cfg.ContinuationMax == 0 || r.e.out.lambda == nil:
		c.NotStarted = "disabled"
		return
	case c.Chain >= r.e.cfg.ContinuationMax:
		c.NotStarted = "chain-limit"
		return
	case r.inv.FunctionARN == "":
		c.NotStarted = "no-function-arn"
		return
	}
	payload, err := request.ContinuationPayload(r.req.Mode, r.req.DryRun && !r.req.Mode.Rules().Dry, r.req.Usage, r.req.Target,
		request.Continuation{RunID: c.RunID, After: c.Next, Chain: c.Chain + 1})
	if err == nil {
		// The run's own context may be over; the invocation's is not yet.
		// A Lambda API that does not answer (a function in a VPC without a
		// Lambda endpoint) must not hold the report past the deadline.
		ictx, cancel := r.afterKeys(ctx, continuationTimeout)
		defer cancel()
		_, err = r.e.out.lambda.Invoke(ictx, &lambda.InvokeInput{
			FunctionName:   aws.String(unqualified(r.inv.FunctionARN)),
			InvocationType: lambdatypes.InvocationTypeEvent,
			Payload:        payload,
		})
	}
	if err != nil {
		c.NotStarted = "invoke-failed: " + strings.TrimSpace(err.Error())
		r.log.Error("continuation not started; deferred keys wait for the next schedule",
			"deferred", c.Deferred, "next", c.Next, "error", err.Error())
		return
	}
	c.Started = true
	r.log.Info("continuation started", "chainRunId", c.RunID, "chain", c.Chain+1, "after", c.Next, "deferred", c.Deferred)
}

// continuationCount is the Continuations metric: 1 when this run started
// the next link.
func (o *outputs) continuationCount() float64 {
	if o.cont != nil && o.cont.Started {
		return 1
	}
	return 0
}

// unqualified drops a version or alias qualifier from a function ARN
// (arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]): the function's
// IAM policy allows it to invoke only its own unqualified ARN, so a run
// invoked through an alias continues on the function itself
// (https://docs.aws.amazon.com/lambda/latest/dg/lambda-api-permissions-ref.html).
func unqualified(functionARN string) string {
	parts := strings.SplitN(functionARN, ":", 8)
	if len(parts) == 8 && parts[5] == "function" {
		return strings.Join(parts[:7], ":")
	}
	return functionARN
}
