package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/rotator"
)

// handler adapts a Lambda invocation to rotator.Engine.Run.
type handler struct {
	engine *rotator.Engine
	log    *slog.Logger
}

// Handle decodes the payload (every shape of DESIGN.md "Invocation
// payloads"), runs the engine and returns its report. Bad input is rejected
// before any AWS call with the request package's error, which names the
// field; the function's own account and Region come from the invoked
// function ARN, not from an STS call.
func (h *handler) Handle(ctx context.Context, payload json.RawMessage) (*rotator.Report, error) {
	lc, ok := lambdacontext.FromContext(ctx)
	if !ok {
		return nil, errors.New("no Lambda context: the invoked function ARN is needed to know the account and Region")
	}
	log := h.log.With("requestId", lc.AwsRequestID)
	scope, err := request.ScopeFromFunctionARN(lc.InvokedFunctionArn)
	if err != nil {
		log.Error("invalid invoked function ARN", "error", err.Error())
		return nil, err
	}
	req, err := request.Decode(payload, scope)
	if err != nil {
		log.Error("invalid request", "error", err.Error())
		return nil, err
	}
	return h.engine.Run(ctx, req, rotator.Invocation{RequestID: lc.AwsRequestID, Scope: scope, FunctionARN: lc.InvokedFunctionArn})
}
