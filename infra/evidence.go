package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// The evidence bucket: every run writes its evidence record there
// (docs/design.md "Evidence"), under evidence/. The stack creates it, in
// the central stack only, and sets ROTATOR_EVIDENCE_BUCKET to its name.

// Context keys of the evidence bucket. cdk.json lists each with its default.
const (
	ctxEvidenceRetentionDays  = "evidenceRetentionDays"
	ctxEvidenceObjectLockDays = "evidenceObjectLockDays"
	ctxEvidenceObjectLockMode = "evidenceObjectLockMode"
)

// evidenceContextKeys are the keys above (ContextKeys).
var evidenceContextKeys = []string{ctxEvidenceRetentionDays, ctxEvidenceObjectLockDays, ctxEvidenceObjectLockMode}

// EvidenceSettings are the evidence bucket's lifecycle and Object Lock.
type EvidenceSettings struct {
	// RetentionDays is how long a record is kept: its current version
	// expires this many days after it was written, and a version that was
	// overwritten or deleted (noncurrent) this many days after that.
	RetentionDays int
	// ObjectLockDays is the bucket's default Object Lock retention of each
	// new record; 0 = none.
	ObjectLockDays int
	// ObjectLockMode is GOVERNANCE or COMPLIANCE.
	ObjectLockMode string
}

// Object Lock retention modes
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html#object-lock-retention-modes):
// in GOVERNANCE mode a principal allowed s3:BypassGovernanceRetention may
// still delete a locked version or shorten its retention; in COMPLIANCE
// mode nobody can, the account's root user included, until the retention
// ends.
const (
	objectLockGovernance = "GOVERNANCE"
	objectLockCompliance = "COMPLIANCE"
)

// Bounds of the evidence settings.
//
// minEvidenceRetentionDays is 13 months (13 × 30.44 days, rounded up):
// PCI DSS v4.0 10.5.1 keeps audit logs 12 months, and an assessment of the
// last 12 months held a month after its period still finds its first
// record. maxEvidenceRetentionDays is ten years, as ledgerRetention's
// bound.
//
// maxObjectLockDays is S3's longest default retention, 100 years
// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_DefaultRetention.html);
// the stack also keeps it within the retention, below.
const (
	minEvidenceRetentionDays = 396
	maxEvidenceRetentionDays = 3650
	maxObjectLockDays        = 36500
)

// defaultEvidenceSettings are cdk.json's: 400 days, as ledgerRetention's
// default, and no Object Lock retention.
func defaultEvidenceSettings() EvidenceSettings {
	return EvidenceSettings{RetentionDays: 400, ObjectLockMode: objectLockGovernance}
}

// evidence reads the evidence bucket's settings into s.
func (r *ctxReader) evidence(s *Settings) {
	e := defaultEvidenceSettings()
	e.RetentionDays = r.integer(ctxEvidenceRetentionDays, e.RetentionDays, minEvidenceRetentionDays, maxEvidenceRetentionDays)
	e.ObjectLockDays = r.integer(ctxEvidenceObjectLockDays, e.ObjectLockDays, 0, maxObjectLockDays)
	if v := r.str(ctxEvidenceObjectLockMode); v != "" {
		switch m := strings.ToUpper(v); m {
		case objectLockGovernance, objectLockCompliance:
			e.ObjectLockMode = m
		default:
			r.fail(ctxEvidenceObjectLockMode, v, "%s or %s", objectLockGovernance, objectLockCompliance)
		}
	}
	if !r.failed[ctxEvidenceObjectLockDays] && !r.failed[ctxEvidenceRetentionDays] && e.ObjectLockDays > e.RetentionDays {
		// A version locked past its expiry is not deleted by the lifecycle
		// rule until the lock ends: the retention would say one thing and
		// the bucket keep another.
		r.fail(ctxEvidenceObjectLockDays, strconv.Itoa(e.ObjectLockDays), "at most %s (%d): a record is kept that long, and locking it longer would keep it past its retention",
			ctxEvidenceRetentionDays, e.RetentionDays)
	}
	s.Evidence = e
}

// evidencePrefix is where the function writes its records, and all the
// function's role may write to (policy/evidence-write.json).
const evidencePrefix = "evidence/"

// newEvidenceBucket creates the evidence bucket:
//
//   - versioned, so a record that is overwritten or deleted stays as a
//     noncurrent version for RetentionDays;
//   - encrypted with S3-managed keys (SSE-S3). The function asks for SSE-S3
//     on each put (lambda/rotator/evidence.go), which needs no permission
//     beyond s3:PutObject. SSE-KMS with a customer managed key would give
//     the function's role kms:GenerateDataKey on a key — its only KMS
//     write is RotateKeyOnDemand, and it should stay so — and every
//     assessor who reads the records kms:Decrypt on it; the AWS managed key
//     aws/s3 cannot be shared with another account at all. The records hold
//     key ARNs and rotation metadata, no key material;
//   - TLS only: the bucket policy denies every request without
//     aws:SecureTransport and every one below TLS 1.2 (s3:TlsVersion)
//     (https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html);
//   - all public access blocked, and ACLs off (bucket owner enforced): the
//     bucket owns every record, whoever wrote it
//     (https://docs.aws.amazon.com/AmazonS3/latest/userguide/about-object-ownership.html);
//   - a lifecycle rule that expires a record RetentionDays after it was
//     written, removes noncurrent versions RetentionDays after they became
//     noncurrent, and aborts incomplete multipart uploads after a day;
//   - Object Lock enabled at creation, always, and a default retention of
//     ObjectLockDays in ObjectLockMode when that is set: Object Lock cannot
//     be turned off once on, so the template never asks to, and turning a
//     retention on later changes the bucket in place
//     (https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock-configure.html).
//     A put to a bucket with a default retention must carry a checksum,
//     which the AWS SDK for Go v2 sends by default (CRC32);
//   - retained when the stack is deleted, with a name CloudFormation makes
//     up, so a new stack creates a new bucket beside a kept one.
func newEvidenceBucket(stack awscdk.Stack, s Settings) awss3.Bucket {
	days := func(n int) awscdk.Duration { return awscdk.Duration_Days(jsii.Number(float64(n))) }
	props := &awss3.BucketProps{
		Versioned:         jsii.Bool(true),
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		MinimumTLSVersion: jsii.Number(1.2),
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		ObjectLockEnabled: jsii.Bool(true),
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Id:                                  jsii.String("evidence-retention"),
			Enabled:                             jsii.Bool(true),
			Expiration:                          days(s.Evidence.RetentionDays),
			NoncurrentVersionExpiration:         days(s.Evidence.RetentionDays),
			AbortIncompleteMultipartUploadAfter: days(1),
		}},
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	}
	if n := s.Evidence.ObjectLockDays; n > 0 {
		if s.Evidence.ObjectLockMode == objectLockCompliance {
			props.ObjectLockDefaultRetention = awss3.ObjectLockRetention_Compliance(days(n))
		} else {
			props.ObjectLockDefaultRetention = awss3.ObjectLockRetention_Governance(days(n))
		}
	}
	bucket := awss3.NewBucket(stack, jsii.String("EvidenceBucket"), props)
	cdknag.NagSuppressions_AddResourceSuppressions(bucket, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-S1"),
		Reason: jsii.String("Server access logs would need a second bucket, itself unlogged. The only writer is the function's role, which may only put objects under " +
			evidencePrefix + " (policy/evidence-write.json) and logs each record it writes (bucket, key, bytes) in its retained log group; versioning keeps any overwrite, " +
			"and CloudTrail data events on this bucket, where a team wants every read and write recorded, are the account's to turn on."),
	}}, jsii.Bool(false))
	return bucket
}

// evidenceSummary describes the bucket's retention for the output.
func evidenceSummary(e EvidenceSettings) string {
	lock := "no Object Lock retention"
	if e.ObjectLockDays > 0 {
		lock = fmt.Sprintf("Object Lock %s %d days", e.ObjectLockMode, e.ObjectLockDays)
	}
	return fmt.Sprintf("records kept %d days, %s", e.RetentionDays, lock)
}
