// Command bootstrap is the kms-rotator Lambda function: it rotates the KMS
// keys that opted in by tag on a schedule, and named keys on demand during an
// incident. This package is a thin adapter: configuration and AWS clients are
// built once at cold start, and each invocation goes through handler.Invoke
// to rotator.Engine.Run (see lambda/rotator for the rules about keys).
package main

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	lambdasvc "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	tagging "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kms-rotator/kms-rotator/lambda/hub"
	"github.com/kms-rotator/kms-rotator/lambda/ledger"
	"github.com/kms-rotator/kms-rotator/lambda/org"
	"github.com/kms-rotator/kms-rotator/lambda/rotator"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

func main() {
	rotator.ConfigureRuntime(os.Getenv)
	h, err := newHandler(context.Background(), os.Getenv, os.Stdout)
	if err != nil {
		log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
		// Invalid configuration stops the cold start; the message names
		// the variable (docs/design.md "Configuration").
		log.Error("cold start failed", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h)
}

// newHandler reads the configuration and builds the SDK clients and the
// engine, once per process. JSON log lines and EMF lines go to out (stdout
// in Lambda, where CloudWatch Logs picks up both). Endpoints, Region and credentials come from the
// SDK's standard configuration (AWS_REGION, AWS_ENDPOINT_URL,
// AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL_RESOURCE_GROUPS_TAGGING_API, …).
func newHandler(ctx context.Context, getenv func(string) string, out io.Writer) (*handler, error) {
	cfg, err := settings.LoadConfig(getenv)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewJSONHandler(out, nil))
	// The read retryer and a connection pool sized for the pipelines; the
	// SDK's own log lines go through the same JSON logger.
	awsCfg, err := rotator.LoadAWSConfig(ctx, cfg, config.WithLogger(sdkLogger{log}))
	if err != nil {
		return nil, err
	}
	engine := rotator.New(cfg, kms.NewFromConfig(awsCfg), tagging.NewFromConfig(awsCfg), log, out)
	// The rotation ledger: a claim in DynamoDB before every
	// RotateKeyOnDemand (AWS_ENDPOINT_URL_DYNAMODB locally).
	// Three attempts, not the reads' ten: an unreachable ledger fails the
	// keys closed, and should say so within seconds rather than after a
	// long retry per key (a claim write retried after a lost answer is
	// refused by its own claim: the key is skipped, never rotated twice).
	lg := ledger.New(dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) { o.RetryMaxAttempts = 3 }),
		cfg.LedgerTable, cfg.LedgerRetention)
	engine.SetLedger(lg)
	// A sweep that does not fit before the deadline continues by invoking
	// this function again, asynchronously (ROTATOR_CONTINUATION_MAX).
	engine.SetLambda(lambdasvc.NewFromConfig(awsCfg))
	// Keys that need action become Security Hub findings (member accounts'
	// through their member role).
	if cfg.SecurityHub {
		var member func(context.Context, string, string, string) (rotator.SecurityHubAPI, error)
		if cfg.MemberRoleName != "" {
			member = rotator.AssumeMemberHub(awsCfg, cfg.MemberRoleName)
		}
		engine.SetSecurityHub(func(region string) rotator.SecurityHubAPI {
			c := awsCfg.Copy()
			c.Region = region
			return hub.New(c)
		}, member)
	}
	// Each run's evidence record goes to the evidence bucket, when the
	// stack names one (AWS_ENDPOINT_URL_S3 locally).
	if cfg.EvidenceBucket != "" {
		engine.SetEvidence(newS3(awsCfg, getenv))
	}
	// Incident runs and runs with failed keys announce their result on the
	// default event bus (source kms-rotator).
	engine.SetEvents(eventbridge.NewFromConfig(awsCfg))
	h := &handler{engine: engine, log: log, organization: cfg.MemberRoleName != ""}
	if h.organization {
		// Organization mode: member accounts through their member role.
		engine.SetMembers(rotator.AssumeMemberRole(awsCfg, cfg.MemberRoleName))
		// The sweep's first state lists the accounts of target OUs with
		// the function's own credentials (a delegated administrator). The
		// client reaches Organizations' one endpoint of the partition
		// (organizations.us-east-1.amazonaws.com for aws) whatever the
		// function's Region. The targets go to the organization bucket,
		// and the accounts they cover to the ledger.
		c := org.Clients{
			Organizations: organizations.NewFromConfig(awsCfg, func(o *organizations.Options) { o.Retryer = org.Retryer() }),
			Events:        eventbridge.NewFromConfig(awsCfg),
			Ledger:        lg,
		}
		if cfg.OrgBucket != "" {
			c.S3 = newS3(awsCfg, getenv)
		}
		h.org = org.New(cfg, c, log, out)
	}
	return h, nil
}

// newS3 is the S3 client of the evidence and organization buckets. A local
// S3 stand-in (AWS_ENDPOINT_URL_S3) serves one host: path-style addressing
// there; AWS's own endpoints take virtual-hosted style.
func newS3(awsCfg aws.Config, getenv func(string) string) *s3.Client {
	local := getenv("AWS_ENDPOINT_URL_S3") != ""
	return s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = local })
}
