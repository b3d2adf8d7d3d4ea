package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/kms-rotator/kms-rotator/lambda/org"
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
	// org answers the organization sweep's own requests and checks the
	// accounts a key request names (organization mode).
	org *org.Service
	log *slog.Logger
	// organization: ROTATOR_MEMBER_ROLE_NAME is set, so requests may name
	// member accounts.
	organization bool
}

// decode validates the payload against the function's scope.
func (h *handler) decode(ctx context.Context, payload []byte) (request.Payload, rotator.Invocation, error) {
	lc, ok := lambdacontext.FromContext(ctx)
	if !ok {
		return request.Payload{}, rotator.Invocation{}, errors.New("no Lambda context: the invoked function ARN is needed to know the account and Region")
	}
	log := h.log.With("requestId", lc.AwsRequestID)
	scope, err := request.ScopeFromFunctionARN(lc.InvokedFunctionArn)
	if err != nil {
		log.Error("invalid invoked function ARN", "error", err.Error())
		return request.Payload{}, rotator.Invocation{}, err
	}
	scope.Organization = h.organization
	p, err := request.Parse(payload, scope)
	if err != nil {
		log.Error("invalid request", "error", err.Error())
		return request.Payload{}, rotator.Invocation{}, err
	}
	return p, rotator.Invocation{RequestID: lc.AwsRequestID, Scope: scope, FunctionARN: lc.InvokedFunctionArn}, nil
}

// Invoke is the handler's one entry point (aws-lambda-go's lambda.Handler):
// it decodes the payload (every shape of docs/design.md "Invocation
// payloads"), rejecting bad input before any AWS call with the request
// package's error, which names the field, runs the engine and returns the
// report's JSON. The organization sweep's own requests (targets,
// org-summary) go to package org instead, and in organization mode a key
// request naming a member account the last targets run did not resolve is
// refused before the engine runs. A request.ValidationError reaches the
// caller as errorType "ValidationError" (aws-lambda-go names an error by
// its Go type).
func (h *handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	p, inv, err := h.decode(ctx, payload)
	if err != nil {
		return nil, err
	}
	var out any
	switch {
	case p.Org != nil && p.Org.Mode == request.ModeOrgSummary:
		out, err = h.org.Summarize(ctx, *p.Org, org.Invocation{RequestID: inv.RequestID, Scope: inv.Scope})
	case p.Org != nil:
		out, err = h.org.Resolve(ctx, *p.Org, org.Invocation{RequestID: inv.RequestID, Scope: inv.Scope})
	default:
		if h.organization {
			if err := h.org.Check(ctx, *p.Request, org.Invocation{RequestID: inv.RequestID, Scope: inv.Scope}); err != nil {
				return nil, err
			}
		}
		out, err = h.engine.Run(ctx, *p.Request, inv)
		if t := p.Request.Target; t != nil && errors.Is(err, rotator.ErrRegionNotEnabled) {
			// The engine logged it (a warning); the target is left out, not failed.
			out, err = org.RegionNotEnabled(*t, p.Request.Mode, time.Now()), nil
		}
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}
