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

// handler adapts a Lambda invocation to rotator.Engine.Run. It implements
// aws-lambda-go's lambda.Handler so that request.Decode sees the payload's
// raw bytes: a typed handler argument would let aws-lambda-go decode only
// the first JSON value, so trailing data would be ignored and an empty or
// malformed payload would fail with encoding/json's bare error instead of one
// naming the field.
type handler struct {
	engine *rotator.Engine
	log    *slog.Logger
	// organization: ROTATOR_MEMBER_ROLE_NAME is set, so requests may name
	// member accounts.
	organization bool
}

// decode validates the payload against the function's scope.
func (h *handler) decode(ctx context.Context, payload []byte) (request.Request, rotator.Invocation, error) {
	lc, ok := lambdacontext.FromContext(ctx)
	if !ok {
		return request.Request{}, rotator.Invocation{}, errors.New("no Lambda context: the invoked function ARN is needed to know the account and Region")
	}
	log := h.log.With("requestId", lc.AwsRequestID)
	scope, err := request.ScopeFromFunctionARN(lc.InvokedFunctionArn)
	if err != nil {
		log.Error("invalid invoked function ARN", "error", err.Error())
		return request.Request{}, rotator.Invocation{}, err
	}
	scope.Organization = h.organization
	req, err := request.Decode(payload, scope)
	if err != nil {
		log.Error("invalid request", "error", err.Error())
		return request.Request{}, rotator.Invocation{}, err
	}
	return req, rotator.Invocation{RequestID: lc.AwsRequestID, Scope: scope, FunctionARN: lc.InvokedFunctionArn}, nil
}

// Invoke is the handler's one entry point (aws-lambda-go's lambda.Handler):
// it decodes the payload (every shape of docs/design.md "Invocation
// payloads"), rejecting bad input before any AWS call with the request
// package's error, which names the field, runs the engine and returns the
// report's JSON (a targets request's answer is the organization sweep's target
// list instead). A request.ValidationError reaches the caller as errorType
// "ValidationError" (aws-lambda-go names an error by its Go type).
func (h *handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	req, inv, err := h.decode(ctx, payload)
	if err != nil {
		return nil, err
	}
	var out any
	if req.Mode == request.ModeTargets {
		out, err = h.engine.ResolveTargets(ctx, req, inv)
	} else {
		out, err = h.engine.Run(ctx, req, inv)
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}
