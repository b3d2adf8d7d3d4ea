package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// The evidence bucket (evidence.go) and the function's permissions on it
// and on Security Hub, in the synthesized templates.

// evidenceBucket is the template's evidence bucket: its logical ID and
// resource. Organization mode adds the organization sweep's bucket
// (orgbucket.go), and no other.
func evidenceBucket(t *testing.T, j map[string]any) (string, map[string]any) {
	t.Helper()
	var id string
	var bucket map[string]any
	for rid, r := range resources(t, j, "AWS::S3::Bucket") {
		switch {
		case strings.HasPrefix(rid, "EvidenceBucket") && bucket == nil:
			id, bucket = rid, r
		case strings.HasPrefix(rid, "OrgSweepBucket"):
		default:
			t.Fatalf("bucket %s besides the evidence bucket and the organization sweep's", rid)
		}
	}
	if bucket == nil {
		t.Fatal("no evidence bucket")
	}
	return id, bucket
}

func TestEvidenceBucket(t *testing.T) {
	_, _, single := synth(t)
	_, _, org := orgSynth(t)
	for _, mode := range []struct {
		name string
		tmpl map[string]any
	}{{"single account", single}, {"organization (central stack)", org}} {
		t.Run(mode.name, func(t *testing.T) {
			id, r := evidenceBucket(t, mode.tmpl)
			p := r["Properties"].(map[string]any)
			for _, tc := range []struct {
				name      string
				got, want any
			}{
				{"versioned", p["VersioningConfiguration"], map[string]any{"Status": "Enabled"}},
				{"encrypted with S3-managed keys, as the function asks on each put", p["BucketEncryption"], map[string]any{"ServerSideEncryptionConfiguration": []any{
					map[string]any{"ServerSideEncryptionByDefault": map[string]any{"SSEAlgorithm": "AES256"}}}}},
				{"all public access blocked", p["PublicAccessBlockConfiguration"], map[string]any{
					"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true}},
				{"ACLs off: the bucket owns every object", p["OwnershipControls"], map[string]any{"Rules": []any{map[string]any{"ObjectOwnership": "BucketOwnerEnforced"}}}},
				{"Object Lock enabled at creation, so a retention can be turned on later in place", p["ObjectLockEnabled"], true},
				{"no default retention unless evidenceObjectLockDays is set", p["ObjectLockConfiguration"], nil},
				{"records and their overwritten versions kept 400 days (13 months and more)", p["LifecycleConfiguration"], map[string]any{"Rules": []any{map[string]any{
					"Id": "evidence-retention", "Status": "Enabled", "ExpirationInDays": 400.0,
					"NoncurrentVersionExpiration":    map[string]any{"NoncurrentDays": 400.0},
					"AbortIncompleteMultipartUpload": map[string]any{"DaysAfterInitiation": 1.0}}}}},
				// A retained bucket with a fixed name would make the next
				// stack's creation fail.
				{"named by CloudFormation", p["BucketName"], nil},
				{"kept when the stack is deleted", r["DeletionPolicy"], "Retain"},
				{"kept when CloudFormation would replace it", r["UpdateReplacePolicy"], "Retain"},
				{"the output names it", mode.tmpl["Outputs"].(map[string]any)["EvidenceBucketName"].(map[string]any)["Value"], map[string]any{"Ref": id}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					if !reflect.DeepEqual(tc.got, tc.want) {
						t.Errorf("got %s, want %s", mustJSON(tc.got), mustJSON(tc.want))
					}
				})
			}
			t.Run("both functions write their evidence there", func(t *testing.T) {
				for _, name := range []string{"kms-rotator", "kms-rotator-sweep"} {
					_, fn := lambdaFunction(t, mode.tmpl, name)
					got := fn["Environment"].(map[string]any)["Variables"].(map[string]any)[settings.EnvEvidenceBucket]
					if !reflect.DeepEqual(got, map[string]any{"Ref": id}) {
						t.Errorf("%s: %s = %v, want the bucket", name, settings.EnvEvidenceBucket, got)
					}
				}
			})
		})
	}
	t.Run("the member template holds no bucket and no S3 permission", func(t *testing.T) {
		body := memberTemplateOf(t, org)
		if strings.Contains(body, "AWS::S3::") || strings.Contains(body, `"s3:`) {
			t.Errorf("member template: %s", body)
		}
	})
}

// TestEvidenceBucketOnlyTakesTheFunctionsRecords puts S3 requests through
// the synthesized templates of both modes — the function role's inline
// policy and the bucket's policy, resolved as CloudFormation would — with
// the IAM simulator: the function's role may put a record under evidence/
// over TLS 1.2 or later, and not read, list, delete or unlock one, nor
// write elsewhere; a request without TLS, or below TLS 1.2, is refused to
// anyone; the member role may do nothing in the bucket.
func TestEvidenceBucketOnlyTakesTheFunctionsRecords(t *testing.T) {
	_, _, single := synth(t)
	_, _, org := orgSynth(t)
	for _, mode := range []struct {
		name string
		tmpl map[string]any
	}{{"single account", single}, {"organization", org}} {
		t.Run(mode.name, func(t *testing.T) {
			values := cfnValues(mode.tmpl)
			bucketID, _ := evidenceBucket(t, mode.tmpl)
			bucket := values[bucketID]
			var bp map[string]any
			for _, p := range resources(t, mode.tmpl, "AWS::S3::BucketPolicy") {
				if p := p["Properties"].(map[string]any); resolve(t, p["Bucket"], values) == bucket {
					bp = p
				}
			}
			if bp == nil {
				t.Fatalf("no bucket policy on the evidence bucket %s", bucket)
			}
			bucketPolicy := resolve(t, bp["PolicyDocument"], values)
			roleID := functionRoleID(t, mode.tmpl)
			roleARN := values[roleID+".Arn"]
			role := mode.tmpl["Resources"].(map[string]any)[roleID].(map[string]any)["Properties"].(map[string]any)
			var identity []any
			for _, p := range role["Policies"].([]any) {
				identity = append(identity, resolve(t, p.(map[string]any)["PolicyDocument"], values))
			}
			record := "arn:aws:s3:::" + bucket + "/evidence/" + simAccount + "/" + simRegion + "/2026/11/26/20261126T030000Z-1a2b3c4d.json"
			tls := func(version string) map[string]any {
				return map[string]any{"aws:SecureTransport": "true", "s3:TlsVersion": version}
			}
			req := func(name, principal string, identity []any, action, resource string, ctx map[string]any, want string) iamCase {
				return iamCase{Name: name, Principal: principal, Action: action, Resource: resource, Account: simAccount,
					Context: ctx, IdentityPolicies: identity, ResourcePolicy: bucketPolicy, want: want}
			}
			plain := map[string]any{"aws:SecureTransport": "false"}
			admin := []any{map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}}}
			other := "arn:aws:iam::" + simAccount + ":role/admin"
			// The member role of the organization's template, in a member
			// account (the central account's bucket is foreign to it).
			var member []any
			if mode.tmpl["Resources"].(map[string]any)["MemberRoleStackSet"] != nil {
				member = memberIdentity(t, mode.tmpl, simOtherAccount)
			}
			cases := []iamCase{
				req("the function's role puts a record over TLS 1.2", roleARN, identity, "s3:PutObject", record, tls("1.2"), "Allowed"),
				req("the function's role puts a record over TLS 1.3", roleARN, identity, "s3:PutObject", record, tls("1.3"), "Allowed"),
				req("the function's role puts a record without TLS", roleARN, identity, "s3:PutObject", record, plain, "ExplicitlyDenied"),
				req("the function's role puts a record over TLS 1.1", roleARN, identity, "s3:PutObject", record, tls("1.1"), "ExplicitlyDenied"),
				req("the function's role reads a record", roleARN, identity, "s3:GetObject", record, tls("1.3"), "ImplicitlyDenied"),
				req("the function's role deletes a record", roleARN, identity, "s3:DeleteObject", record, tls("1.3"), "ImplicitlyDenied"),
				req("the function's role deletes a record's version", roleARN, identity, "s3:DeleteObjectVersion", record, tls("1.3"), "ImplicitlyDenied"),
				req("the function's role bypasses a record's governance retention", roleARN, identity, "s3:BypassGovernanceRetention", record, tls("1.3"), "ImplicitlyDenied"),
				req("the function's role shortens a record's retention", roleARN, identity, "s3:PutObjectRetention", record, tls("1.3"), "ImplicitlyDenied"),
				req("the function's role lists the bucket", roleARN, identity, "s3:ListBucket", "arn:aws:s3:::"+bucket, tls("1.3"), "ImplicitlyDenied"),
				req("the function's role puts an object outside evidence/", roleARN, identity, "s3:PutObject", "arn:aws:s3:::"+bucket+"/notes.json", tls("1.3"), "ImplicitlyDenied"),
				req("the function's role changes the bucket's lifecycle", roleARN, identity, "s3:PutLifecycleConfiguration", "arn:aws:s3:::"+bucket, tls("1.3"), "ImplicitlyDenied"),
				req("an administrator of the account reads a record over TLS", other, admin, "s3:GetObject", record, tls("1.3"), "Allowed"),
				req("an administrator of the account reads a record without TLS", other, admin, "s3:GetObject", record, plain, "ExplicitlyDenied"),
			}
			if member != nil {
				cases = append(cases,
					req("the member role puts a record into the central bucket", memberRoleARN(simOtherAccount), member, "s3:PutObject", record, tls("1.3"), "ImplicitlyDenied"),
					req("the member role reads a record of the central bucket", memberRoleARN(simOtherAccount), member, "s3:GetObject", record, tls("1.3"), "ImplicitlyDenied"))
			}
			simulateIAM(t, cases)
		})
	}
}

// memberRoleARN is orgContext's member role in account.
func memberRoleARN(account string) string { return "arn:aws:iam::" + account + ":role/sec-kms-rotator" }

// memberIdentity is the member role's identity policy of the template's
// MemberRoleStackSet, rendered for account: its Fn::Sub texts with the
// partition and the account filled in.
func memberIdentity(t *testing.T, j map[string]any, account string) []any {
	t.Helper()
	var member map[string]any
	if err := json.Unmarshal([]byte(memberTemplateOf(t, j)), &member); err != nil {
		t.Fatal(err)
	}
	_, role := only(t, member, "AWS::IAM::Role")
	text := string(mustJSON(unsub(role["Policies"])))
	text = strings.NewReplacer("${AWS::Partition}", "aws", "${AWS::AccountId}", account).Replace(text)
	var policies []any
	if err := json.Unmarshal([]byte(text), &policies); err != nil {
		t.Fatal(err)
	}
	var out []any
	for _, p := range policies {
		out = append(out, p.(map[string]any)["PolicyDocument"])
	}
	return out
}

// TestEvidenceSettings: the retention and Object Lock context keys, their
// bounds and what they synthesize.
func TestEvidenceSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  map[string]any
		want string
	}{
		{"a retention under 13 months", map[string]any{ctxEvidenceRetentionDays: "395"}, "-c evidenceRetentionDays=395: must be between 396 and 3650"},
		{"a retention of no whole days", map[string]any{ctxEvidenceRetentionDays: "400.5"}, "-c evidenceRetentionDays=400.5: not a whole number"},
		{"a negative lock", map[string]any{ctxEvidenceObjectLockDays: -1}, "-c evidenceObjectLockDays=-1: must be between 0 and 36500"},
		{"a lock longer than the retention", map[string]any{ctxEvidenceObjectLockDays: "401"},
			"-c evidenceObjectLockDays=401: at most evidenceRetentionDays (400)"},
		{"an unknown mode", map[string]any{ctxEvidenceObjectLockMode: "LEGAL_HOLD"}, "-c evidenceObjectLockMode=LEGAL_HOLD: GOVERNANCE or COMPLIANCE"},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			_, err := SettingsFromContext(func(k string) any { return tc.ctx[k] })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	t.Run("a mode in lower case is read", func(t *testing.T) {
		s, err := SettingsFromContext(func(k string) any {
			return map[string]any{ctxEvidenceObjectLockMode: "compliance", ctxEvidenceObjectLockDays: 30}[k]
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := (EvidenceSettings{RetentionDays: 400, ObjectLockDays: 30, ObjectLockMode: "COMPLIANCE"}); s.Evidence != want {
			t.Errorf("%+v, want %+v", s.Evidence, want)
		}
	})
	t.Run("retention and a COMPLIANCE lock reach the bucket", func(t *testing.T) {
		// dressedContext: two years, locked a year in COMPLIANCE mode.
		_, j := dressedApp(t)
		_, r := evidenceBucket(t, j)
		p := r["Properties"].(map[string]any)
		want := map[string]any{"ObjectLockEnabled": "Enabled", "Rule": map[string]any{"DefaultRetention": map[string]any{"Mode": "COMPLIANCE", "Days": 365.0}}}
		if !reflect.DeepEqual(p["ObjectLockConfiguration"], want) || p["ObjectLockEnabled"] != true {
			t.Errorf("Object Lock %s / %v, want %s", mustJSON(p["ObjectLockConfiguration"]), p["ObjectLockEnabled"], mustJSON(want))
		}
		rule := p["LifecycleConfiguration"].(map[string]any)["Rules"].([]any)[0].(map[string]any)
		if rule["ExpirationInDays"] != 731.0 || rule["NoncurrentVersionExpiration"].(map[string]any)["NoncurrentDays"] != 731.0 {
			t.Errorf("lifecycle %s, want 731 days", mustJSON(rule))
		}
	})
	t.Run("a GOVERNANCE lock, the default mode, reaches the bucket", func(t *testing.T) {
		app := newApp(t, map[string]any{ctxEvidenceObjectLockDays: 90})
		if err := addStacks(app, fakeCode(t)); err != nil {
			t.Fatal(err)
		}
		assertions.Template_FromStack(onlyStack(t, app), nil).HasResourceProperties(jsii.String("AWS::S3::Bucket"), map[string]any{
			"ObjectLockEnabled":       true,
			"ObjectLockConfiguration": map[string]any{"ObjectLockEnabled": "Enabled", "Rule": map[string]any{"DefaultRetention": map[string]any{"Mode": "GOVERNANCE", "Days": 90}}},
		})
	})
}

// TestSecurityHubPermissions: with securityHub the function role may import
// and read its own account's findings in its Region (in organization mode
// also in every orgRegions Region), and in organization mode each member
// role its own account's in every orgRegions Region; with
// securityHub off neither role has any Security Hub permission. Judged by
// the IAM simulator on the synthesized templates, resolved.
func TestSecurityHubPermissions(t *testing.T) {
	_, _, off := synth(t)
	_, _, orgOff := orgSynth(t)
	on := func() map[string]any {
		app := newApp(t, map[string]any{functionKey(settings.EnvSecurityHub): true})
		if err := addStacks(app, fakeCode(t)); err != nil {
			t.Fatal(err)
		}
		return templateOf(t, app)
	}()
	orgOn := orgSynthWith(t, map[string]any{functionKey(settings.EnvSecurityHub): true})
	product := func(region, account string) string {
		return "arn:aws:securityhub:" + region + ":" + account + ":product/" + account + "/default"
	}
	hub := func(region, account string) string {
		return "arn:aws:securityhub:" + region + ":" + account + ":hub/default"
	}
	var cases []iamCase
	for _, mode := range []struct {
		name string
		tmpl map[string]any
		on   bool
		org  bool
	}{{"single account, on", on, true, false}, {"single account, off", off, false, false},
		{"organization, on", orgOn, true, true}, {"organization, off", orgOff, false, true}} {
		values := cfnValues(mode.tmpl)
		roleID := functionRoleID(t, mode.tmpl)
		role := mode.tmpl["Resources"].(map[string]any)[roleID].(map[string]any)["Properties"].(map[string]any)
		var identity []any
		for _, p := range role["Policies"].([]any) {
			identity = append(identity, resolve(t, p.(map[string]any)["PolicyDocument"], values))
		}
		allowed := "ImplicitlyDenied"
		if mode.on {
			allowed = "Allowed"
		}
		ask := func(name, principal, account string, identity []any, action, resource, want string) {
			cases = append(cases, iamCase{Name: mode.name + ": " + name, Principal: principal, Action: action, Resource: resource,
				Account: account, IdentityPolicies: identity, want: want})
		}
		fn := values[roleID+".Arn"]
		ask("the function role imports its account's finding", fn, simAccount, identity, "securityhub:BatchImportFindings", product(simRegion, simAccount), allowed)
		ask("the function role reads its account's findings", fn, simAccount, identity, "securityhub:GetFindings", hub(simRegion, simAccount), allowed)
		ask("the function role imports a member account's finding itself", fn, simOtherAccount, identity, "securityhub:BatchImportFindings",
			product(simRegion, simOtherAccount), "ImplicitlyDenied")
		// In organization mode a target run of the own account works in
		// each orgRegions Region through the function's role.
		inSwept := "ImplicitlyDenied"
		if mode.org {
			inSwept = allowed
		}
		ask("the function role imports in a swept Region", fn, simAccount, identity, "securityhub:BatchImportFindings", product("eu-west-1", simAccount), inSwept)
		ask("the function role imports in a Region not swept", fn, simAccount, identity, "securityhub:BatchImportFindings", product("ap-southeast-2", simAccount), "ImplicitlyDenied")
		ask("the function role updates findings", fn, simAccount, identity, "securityhub:BatchUpdateFindings", hub(simRegion, simAccount), "ImplicitlyDenied")
		if !mode.org {
			continue
		}
		member := memberIdentity(t, mode.tmpl, simOtherAccount)
		m := memberRoleARN(simOtherAccount)
		for _, region := range []string{"eu-west-1", "us-east-1"} { // orgContext's orgRegions
			ask("the member role imports its account's finding in "+region, m, simOtherAccount, member, "securityhub:BatchImportFindings", product(region, simOtherAccount), allowed)
			ask("the member role reads its account's findings in "+region, m, simOtherAccount, member, "securityhub:GetFindings", hub(region, simOtherAccount), allowed)
		}
		ask("the member role imports in a Region not swept", m, simOtherAccount, member, "securityhub:BatchImportFindings", product("ap-southeast-2", simOtherAccount), "ImplicitlyDenied")
		ask("the member role imports another account's finding", m, simAccount, member, "securityhub:BatchImportFindings", product("eu-west-1", simAccount), "ImplicitlyDenied")
		ask("the member role disables Security Hub", m, simOtherAccount, member, "securityhub:DisableSecurityHub", hub("eu-west-1", simOtherAccount), "ImplicitlyDenied")
	}
	simulateIAM(t, cases)
	t.Run("the member template's Security Hub resources are substituted per account", func(t *testing.T) {
		body := memberTemplateOf(t, orgOn)
		for _, want := range []string{`{"Fn::Sub":"arn:${AWS::Partition}:securityhub:eu-west-1:${AWS::AccountId}:product/${AWS::AccountId}/default"}`,
			`{"Fn::Sub":"arn:${AWS::Partition}:securityhub:us-east-1:${AWS::AccountId}:hub/default"}`} {
			if !strings.Contains(body, want) {
				t.Errorf("member template lacks %s", want)
			}
		}
		if strings.Contains(memberTemplateOf(t, orgOff), "securityhub") {
			t.Error("Security Hub off: the member template names securityhub")
		}
	})
}
