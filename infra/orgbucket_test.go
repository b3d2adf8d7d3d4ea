package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// TestOrgSweepBucket checks the organization sweep's bucket as synthesized:
// SSE-S3, all public access blocked, ACLs off, no versioning, every object
// expired after orgRunsExpiryDays and incomplete uploads after a day,
// retained with the stack; the sweep function alone gets its name (the
// function answers targets and org-summary requests only where it is set);
// a single-account stack has none.
func TestOrgSweepBucket(t *testing.T) {
	_, _, j := orgSynth(t)
	var id string
	var props map[string]any
	var deletion any
	for rid, r := range resources(t, j, "AWS::S3::Bucket") {
		if strings.HasPrefix(rid, "OrgSweepBucket") {
			id, props, deletion = rid, r["Properties"].(map[string]any), r["DeletionPolicy"]
		}
	}
	if props == nil {
		t.Fatal("no organization sweep bucket")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"SSE-S3", props["BucketEncryption"], map[string]any{"ServerSideEncryptionConfiguration": []any{
			map[string]any{"ServerSideEncryptionByDefault": map[string]any{"SSEAlgorithm": "AES256"}}}}},
		{"all public access blocked", props["PublicAccessBlockConfiguration"], map[string]any{
			"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true}},
		{"ACLs off", props["OwnershipControls"], map[string]any{"Rules": []any{map[string]any{"ObjectOwnership": "BucketOwnerEnforced"}}}},
		{"no versioning", props["VersioningConfiguration"], nil},
		{"objects expire, uploads are aborted", props["LifecycleConfiguration"], map[string]any{"Rules": []any{map[string]any{
			"Id": "org-sweep-runs", "Status": "Enabled", "ExpirationInDays": float64(orgRunsExpiryDays),
			"AbortIncompleteMultipartUpload": map[string]any{"DaysAfterInitiation": 1.0}}}}},
		{"no fixed name", props["BucketName"], nil},
		{"retained with the stack", deletion, "Retain"},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("got %s, want %s", mustJSON(c.got), mustJSON(c.want))
			}
		})
	}
	t.Run("the sweep function reads it as ROTATOR_ORG_BUCKET, the incident function does not", func(t *testing.T) {
		_, sweep := lambdaFunction(t, j, "kms-rotator-sweep")
		if got := sweep["Environment"].(map[string]any)["Variables"].(map[string]any)[settings.EnvOrgBucket]; !reflect.DeepEqual(got, map[string]any{"Ref": id}) {
			t.Errorf("sweep function: %s = %v, want the bucket", settings.EnvOrgBucket, got)
		}
		_, fn := lambdaFunction(t, j, "kms-rotator")
		if got := fn["Environment"].(map[string]any)["Variables"].(map[string]any)[settings.EnvOrgBucket]; got != "" {
			t.Errorf("incident function: %s = %v, want empty (it refuses targets and org-summary requests)", settings.EnvOrgBucket, got)
		}
	})
	t.Run("a single-account stack has no organization sweep bucket", func(t *testing.T) {
		_, _, single := synth(t)
		for rid := range resources(t, single, "AWS::S3::Bucket") {
			if strings.HasPrefix(rid, "OrgSweepBucket") {
				t.Errorf("bucket %s", rid)
			}
		}
	})
}

// TestOrgSweepBucketTakesOnlyTheSweepsFiles simulates the synthesized
// template — the function's role, the state machine's Distributed Map
// policy and the bucket's policy, resolved as CloudFormation would — with
// the IAM simulator: the function's role puts an execution's targets and
// resolution and reads its results over TLS 1.2 or later; the state machine
// reads the targets and writes the results; neither deletes or lists, nor
// writes the other's files; a request without TLS, or below TLS 1.2, is
// refused to anyone; the member role may do nothing in the bucket.
func TestOrgSweepBucketTakesOnlyTheSweepsFiles(t *testing.T) {
	_, _, j := orgSynth(t)
	values := cfnValues(j)
	// The state machine's default policy invokes the sweep function.
	for rid, r := range resources(t, j, "AWS::Lambda::Function") {
		values[rid+".Arn"] = "arn:aws:lambda:" + simRegion + ":" + simAccount + ":function:" + r["Properties"].(map[string]any)["FunctionName"].(string)
	}
	// The Distributed Map's policy names the state machine.
	for rid := range resources(t, j, "AWS::StepFunctions::StateMachine") {
		values[rid] = "arn:aws:states:" + simRegion + ":" + simAccount + ":stateMachine:" + rid
		values[rid+".Name"] = rid
	}
	var bucketID string
	for rid := range resources(t, j, "AWS::S3::Bucket") {
		if strings.HasPrefix(rid, "OrgSweepBucket") {
			bucketID = rid
		}
	}
	bucket := values[bucketID]
	var bucketPolicy any
	for _, p := range resources(t, j, "AWS::S3::BucketPolicy") {
		if p := p["Properties"].(map[string]any); resolve(t, p["Bucket"], values) == bucket {
			bucketPolicy = resolve(t, p["PolicyDocument"], values)
		}
	}
	if bucketPolicy == nil {
		t.Fatal("no bucket policy on the organization sweep bucket")
	}
	fnRoleID := functionRoleID(t, j)
	fnRole := values[fnRoleID+".Arn"]
	var fnIdentity []any
	for _, p := range j["Resources"].(map[string]any)[fnRoleID].(map[string]any)["Properties"].(map[string]any)["Policies"].([]any) {
		fnIdentity = append(fnIdentity, resolve(t, p.(map[string]any)["PolicyDocument"], values))
	}
	// The state machine's role and every policy attached to it.
	var smRoleID string
	for rid, r := range resources(t, j, "AWS::IAM::Role") {
		if strings.Contains(mustString(r["Properties"].(map[string]any)["AssumeRolePolicyDocument"]), "states.") {
			smRoleID = rid
		}
	}
	smRole := values[smRoleID+".Arn"]
	var smIdentity []any
	for _, p := range resources(t, j, "AWS::IAM::Policy") {
		if p := p["Properties"].(map[string]any); strings.Contains(mustString(p["Roles"]), `"`+smRoleID+`"`) {
			smIdentity = append(smIdentity, resolve(t, p["PolicyDocument"], values))
		}
	}
	if smRoleID == "" || len(smIdentity) != 2 {
		t.Fatalf("state machine role %q with %d policies, want its default policy and the Distributed Map's", smRoleID, len(smIdentity))
	}
	member := memberIdentity(t, j, simOtherAccount)
	obj := func(key string) string { return "arn:aws:s3:::" + bucket + "/runs/sweep-1/" + key }
	targets, resolution := obj("targets.json"), obj("resolution.json")
	manifest, result := obj("results/5c1e9f2a/manifest.json"), obj("results/5c1e9f2a/SUCCEEDED_0.json")
	tls := map[string]any{"aws:SecureTransport": "true", "s3:TlsVersion": "1.2"}
	plain := map[string]any{"aws:SecureTransport": "false"}
	tls11 := map[string]any{"aws:SecureTransport": "true", "s3:TlsVersion": "1.1"}
	req := func(name, principal string, identity []any, action, resource string, ctx map[string]any, want string) iamCase {
		return iamCase{Name: name, Principal: principal, Action: action, Resource: resource, Account: simAccount,
			Context: ctx, IdentityPolicies: identity, ResourcePolicy: bucketPolicy, want: want}
	}
	simulateIAM(t, []iamCase{
		req("the function's role puts the targets", fnRole, fnIdentity, "s3:PutObject", targets, tls, "Allowed"),
		req("the function's role puts the resolution", fnRole, fnIdentity, "s3:PutObject", resolution, tls, "Allowed"),
		req("the function's role reads the manifest", fnRole, fnIdentity, "s3:GetObject", manifest, tls, "Allowed"),
		req("the function's role reads a result file", fnRole, fnIdentity, "s3:GetObject", result, tls, "Allowed"),
		req("the function's role puts the targets without TLS", fnRole, fnIdentity, "s3:PutObject", targets, plain, "ExplicitlyDenied"),
		req("the function's role puts the targets over TLS 1.1", fnRole, fnIdentity, "s3:PutObject", targets, tls11, "ExplicitlyDenied"),
		req("the function's role writes a result file", fnRole, fnIdentity, "s3:PutObject", result, tls, "ImplicitlyDenied"),
		req("the function's role deletes the targets", fnRole, fnIdentity, "s3:DeleteObject", targets, tls, "ImplicitlyDenied"),
		req("the function's role lists the bucket", fnRole, fnIdentity, "s3:ListBucket", "arn:aws:s3:::"+bucket, tls, "ImplicitlyDenied"),
		req("the state machine reads the targets", smRole, smIdentity, "s3:GetObject", targets, tls, "Allowed"),
		req("the state machine writes a result file", smRole, smIdentity, "s3:PutObject", result, tls, "Allowed"),
		req("the state machine aborts a result upload", smRole, smIdentity, "s3:AbortMultipartUpload", result, tls, "Allowed"),
		req("the state machine writes a result file without TLS", smRole, smIdentity, "s3:PutObject", result, plain, "ExplicitlyDenied"),
		req("the state machine overwrites the targets", smRole, smIdentity, "s3:PutObject", targets, tls, "ImplicitlyDenied"),
		req("the state machine reads the resolution", smRole, smIdentity, "s3:GetObject", resolution, tls, "ImplicitlyDenied"),
		req("the state machine deletes a result file", smRole, smIdentity, "s3:DeleteObject", result, tls, "ImplicitlyDenied"),
		req("the member role reads the targets", memberRoleARN(simOtherAccount), member, "s3:GetObject", targets, tls, "ImplicitlyDenied"),
		req("the member role writes a result file", memberRoleARN(simOtherAccount), member, "s3:PutObject", result, tls, "ImplicitlyDenied"),
	})
}
