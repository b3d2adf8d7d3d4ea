package main

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// orgRunsExpiryDays is how long the organization sweep's files are kept:
// a Map Run can be redriven for 14 days after its execution ends
// (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html,
// execution redrivable period), and a redrive reads the same targets and
// writes next to the same results; 30 days also leave a month of sweeps to
// compare when a target starts failing. The files are working data, not
// evidence: every rotation's record is in the evidence bucket and the
// function's log group.
const orgRunsExpiryDays = 30

// newOrgBucket creates the organization sweep's bucket (organization mode
// only), where each execution keeps its files under runs/<execution>/:
// the targets and the resolution the function writes, the results the
// Distributed Map writes. The function reads it as ROTATOR_ORG_BUCKET.
//
//   - encrypted with S3-managed keys (SSE-S3): the ResultWriter's multipart
//     uploads to a bucket encrypted with a KMS key need kms:Decrypt,
//     kms:Encrypt and kms:GenerateDataKey for the state machine
//     (https://docs.aws.amazon.com/step-functions/latest/dg/iam-policies-eg-dist-map.html),
//     and the function's role would need KMS permissions beyond
//     RotateKeyOnDemand. The files hold account IDs, Regions and counts;
//   - TLS only, TLS 1.2 at least, all public access blocked, ACLs off, as
//     the evidence bucket (newEvidenceBucket);
//   - no versioning: every file is written once under a key of its
//     execution, and nothing needs an old version;
//   - a lifecycle rule that expires every object orgRunsExpiryDays after
//     it was written and aborts incomplete multipart uploads (a Map Run
//     that stopped while writing results) after a day;
//   - retained when the stack is deleted, with a name CloudFormation makes
//     up: CloudFormation cannot delete a bucket that still holds objects,
//     and emptying it on delete (autoDeleteObjects) would add a custom
//     resource with a Lambda function of its own that may delete every
//     object. Kept, the bucket empties itself within orgRunsExpiryDays
//     and then costs nothing; docs/deploy.md says how to remove it.
func newOrgBucket(stack awscdk.Stack) awss3.Bucket {
	bucket := awss3.NewBucket(stack, jsii.String("OrgSweepBucket"), &awss3.BucketProps{
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		MinimumTLSVersion: jsii.Number(1.2),
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Id:                                  jsii.String("org-sweep-runs"),
			Enabled:                             jsii.Bool(true),
			Expiration:                          awscdk.Duration_Days(jsii.Number(orgRunsExpiryDays)),
			AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(1)),
		}},
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	cdknag.NagSuppressions_AddResourceSuppressions(bucket, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-S1"),
		Reason: jsii.String(fmt.Sprintf("Server access logs would need a second bucket, itself unlogged. The bucket holds each organization sweep's working files for "+
			"%d days: its only writers are the function's role (targets.json and resolution.json, policy/org-runs-function.json) and the state machine's "+
			"(results/, policy/org-state-machine.json); the rotations themselves are recorded in the evidence bucket and the function's log group, and "+
			"CloudTrail data events on this bucket are the account's to turn on.", orgRunsExpiryDays)),
	}}, jsii.Bool(false))
	return bucket
}
