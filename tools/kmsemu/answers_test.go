package kmsemu_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

// wantAPIError checks that err is the SDK's typed error T (so a caller's
// errors.As works as against AWS), with the HTTP status and the exact message
// AWS answers ("" when AWS sends none).
func wantAPIError[T smithy.APIError](t *testing.T, err error, status int, message string) {
	t.Helper()
	var typed T
	if !errors.As(err, &typed) {
		t.Fatalf("error %v is not a %T", err, typed)
	}
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != status {
		t.Fatalf("error %v: HTTP status is not %d", err, status)
	}
	if got := typed.ErrorMessage(); got != message {
		t.Fatalf("%s message = %q, want %q", typed.ErrorCode(), got, message)
	}
}

// The tests below pin the answers AWS KMS gave in public recordings (the
// conformance suite in conformance/ replays them call for call); each names
// what it checks.

func TestRotateKeyOnDemandAnswersLikeAWS(t *testing.T) {
	e := start(t, kmsemu.Options{OnDemandLimit: 2}, testFleet)
	rotate := func(id string) (*kms.RotateKeyOnDemandOutput, error) {
		return e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(id)})
	}
	t.Run("KeyId in the answer is the key ARN, whichever identifier was sent", func(t *testing.T) {
		out := must[*kms.RotateKeyOnDemandOutput](t)(rotate(keyB))
		if aws.ToString(out.KeyId) != arn("us-east-1", keyB) {
			t.Fatalf("KeyId %q", aws.ToString(out.KeyId))
		}
	})
	t.Run("a disabled RSA_4096 key is DisabledException: the state is checked before the key spec", func(t *testing.T) {
		k := must[*kms.CreateKeyOutput](t)(e.kms.CreateKey(e.ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecRsa4096, KeyUsage: types.KeyUsageTypeEncryptDecrypt})).KeyMetadata
		must[*kms.DisableKeyOutput](t)(e.kms.DisableKey(e.ctx, &kms.DisableKeyInput{KeyId: k.KeyId}))
		_, err := rotate(*k.KeyId)
		wantAPIError[*types.DisabledException](t, err, 400, *k.Arn+" is disabled.")
	})
	t.Run("an enabled RSA_4096 key is UnsupportedOperationException without a message", func(t *testing.T) {
		k := must[*kms.CreateKeyOutput](t)(e.kms.CreateKey(e.ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecRsa4096, KeyUsage: types.KeyUsageTypeEncryptDecrypt})).KeyMetadata
		_, err := rotate(*k.KeyId)
		wantAPIError[*types.UnsupportedOperationException](t, err, 400, "")
	})
	t.Run("an unknown key is NotFoundException naming its ARN", func(t *testing.T) {
		_, err := rotate("1234abcd-12ab-34cd-56ef-1234567890ac")
		wantAPIError[*types.NotFoundException](t, err, 400, "Key '"+arn("us-east-1", "1234abcd-12ab-34cd-56ef-1234567890ac")+"' does not exist")
	})
	t.Run("the lifetime limit is LimitExceededException in AWS's words", func(t *testing.T) {
		e.clock.Advance(time.Hour)
		must[*kms.RotateKeyOnDemandOutput](t)(rotate(keyB))
		e.clock.Advance(time.Hour)
		_, err := rotate(keyB)
		wantAPIError[*types.LimitExceededException](t, err, 400,
			"The on-demand rotations limit has been reached for the given keyId. No more on-demand rotations can be performed for this key: "+arn("us-east-1", keyB))
	})
	t.Run("an imported key with material but nothing staged is KMSInvalidStateException", func(t *testing.T) {
		_, err := rotate(keyExt)
		wantAPIError[*types.KMSInvalidStateException](t, err, 400, "No available key material pending rotation for the key: "+arn("us-east-1", keyExt)+".")
	})
}

func TestKeyIdentifierErrorsAnswerLikeAWS(t *testing.T) {
	e := start(t, kmsemu.Options{}, testFleet)
	cases := []struct {
		name, id, message string
	}{
		{"a malformed key ID is quoted", "fake-key-id", "Invalid keyId 'fake-key-id'"},
		{"a UUID without dashes is malformed", "134f2428cec14b25a1ae9048164dba47", "Invalid keyId '134f2428cec14b25a1ae9048164dba47'"},
		{"a malformed multi-Region key ID is quoted", "mrk-fake-key-id", "Invalid keyId 'mrk-fake-key-id'"},
		{"a key ARN of another Region names that Region", arn("us-west-2", keyA), "Invalid arn us-west-2"},
		{"an unknown key ID names the ARN it would have", "134f2428-cec1-4b25-a1ae-9048164dba47", "Key '" + arn("us-east-1", "134f2428-cec1-4b25-a1ae-9048164dba47") + "' does not exist"},
		{"an unknown key ARN names it", arn("us-east-1", "134f2428-cec1-4b25-a1ae-9048164dba47"), "Key '" + arn("us-east-1", "134f2428-cec1-4b25-a1ae-9048164dba47") + "' does not exist"},
		{"an unknown multi-Region key ID names its ARN", "mrk-d3b95762d3b95762d3b95762d3b95762", "Key '" + arn("us-east-1", "mrk-d3b95762d3b95762d3b95762d3b95762") + "' does not exist"},
		{"a key of another Region is not found by its ID", "alias/global", "Alias arn:aws:kms:us-east-1:" + acct + ":alias/global is not found."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.kms.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String(c.id)})
			wantAPIError[*types.NotFoundException](t, err, 400, c.message)
		})
	}
}

func TestCryptoErrorsAnswerLikeAWS(t *testing.T) {
	e := start(t, kmsemu.Options{}, testFleet)
	enc := must[*kms.EncryptOutput](t)(e.kms.Encrypt(e.ctx, &kms.EncryptInput{KeyId: aws.String(keyA), Plaintext: []byte("x"), EncryptionContext: map[string]string{"a": "b"}}))
	t.Run("a ciphertext with bytes appended is InvalidCiphertextException without a message", func(t *testing.T) {
		_, err := e.kms.Decrypt(e.ctx, &kms.DecryptInput{KeyId: aws.String(keyA), CiphertextBlob: append(append([]byte(nil), enc.CiphertextBlob...), "bad_data"...), EncryptionContext: map[string]string{"a": "b"}})
		wantAPIError[*types.InvalidCiphertextException](t, err, 400, "")
	})
	t.Run("a missing encryption context is InvalidCiphertextException without a message", func(t *testing.T) {
		_, err := e.kms.Decrypt(e.ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
		wantAPIError[*types.InvalidCiphertextException](t, err, 400, "")
	})
	t.Run("another key named is IncorrectKeyException", func(t *testing.T) {
		_, err := e.kms.Decrypt(e.ctx, &kms.DecryptInput{KeyId: aws.String(keyB), CiphertextBlob: enc.CiphertextBlob, EncryptionContext: map[string]string{"a": "b"}})
		wantAPIError[*types.IncorrectKeyException](t, err, 400, "The key ID in the request does not identify a CMK that can perform this operation.")
	})
	t.Run("a signing key is InvalidKeyUsageException naming the operation", func(t *testing.T) {
		_, err := e.kms.Encrypt(e.ctx, &kms.EncryptInput{KeyId: aws.String(keyRSA), Plaintext: []byte("x")})
		wantAPIError[*types.InvalidKeyUsageException](t, err, 400, arn("us-east-1", keyRSA)+" key usage is SIGN_VERIFY which is not valid for Encrypt.")
	})
	t.Run("plaintext over 4096 bytes is ValidationException", func(t *testing.T) {
		_, err := e.kms.Encrypt(e.ctx, &kms.EncryptInput{KeyId: aws.String(keyA), Plaintext: make([]byte, 4097)})
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "ValidationException" ||
			ae.ErrorMessage() != "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length less than or equal to 4096" {
			t.Fatalf("err %v", err)
		}
	})
}

func TestReplicaStartsCreating(t *testing.T) {
	e := start(t, kmsemu.Options{ReplicaDelay: 30 * time.Second}, testFleet)
	eu := kmsClient(e.emu, "eu-west-1")
	out := must[*kms.ReplicateKeyOutput](t)(eu.ReplicateKey(e.ctx, &kms.ReplicateKeyInput{KeyId: aws.String(mrk), ReplicaRegion: aws.String("ap-southeast-1")}))
	md := out.ReplicaKeyMetadata
	if md.KeyState != types.KeyStateCreating || md.Enabled || md.CurrentKeyMaterialId != nil || aws.ToString(md.Description) != "" {
		t.Fatalf("new replica: state %s, enabled %v, material %v, description %q; want Creating, false, none, empty",
			md.KeyState, md.Enabled, md.CurrentKeyMaterialId, aws.ToString(md.Description))
	}
	ap := kmsClient(e.emu, "ap-southeast-1")
	t.Run("while Creating it refuses cryptographic operations", func(t *testing.T) {
		_, err := ap.Encrypt(e.ctx, &kms.EncryptInput{KeyId: aws.String(mrk), Plaintext: []byte("x")})
		wantAPIError[*types.KMSInvalidStateException](t, err, 400, arn("ap-southeast-1", mrk)+" is creating.")
	})
	t.Run("after ReplicaDelay it is Enabled with the primary's key material", func(t *testing.T) {
		e.clock.Advance(30 * time.Second)
		md := must[*kms.DescribeKeyOutput](t)(ap.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String(mrk)})).KeyMetadata
		p := must[*kms.DescribeKeyOutput](t)(eu.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String(mrk)})).KeyMetadata
		if md.KeyState != types.KeyStateEnabled || !md.Enabled || aws.ToString(md.CurrentKeyMaterialId) != aws.ToString(p.CurrentKeyMaterialId) {
			t.Fatalf("replica after the delay: %s %v %v", md.KeyState, md.Enabled, md.CurrentKeyMaterialId)
		}
	})
	t.Run("with no delay the replica is usable from the next request", func(t *testing.T) {
		e := start(t, kmsemu.Options{}, testFleet)
		eu := kmsClient(e.emu, "eu-west-1")
		out := must[*kms.ReplicateKeyOutput](t)(eu.ReplicateKey(e.ctx, &kms.ReplicateKeyInput{KeyId: aws.String(mrk), ReplicaRegion: aws.String("ap-southeast-1")}))
		if out.ReplicaKeyMetadata.KeyState != types.KeyStateCreating {
			t.Fatalf("ReplicateKey answered %s, want Creating", out.ReplicaKeyMetadata.KeyState)
		}
		ap := kmsClient(e.emu, "ap-southeast-1")
		must[*kms.EncryptOutput](t)(ap.Encrypt(e.ctx, &kms.EncryptInput{KeyId: aws.String(mrk), Plaintext: []byte("x")}))
	})
	t.Run("replicating a replica is UnsupportedOperationException", func(t *testing.T) {
		_, err := e.kms.ReplicateKey(e.ctx, &kms.ReplicateKeyInput{KeyId: aws.String(mrk), ReplicaRegion: aws.String("eu-central-1")})
		wantAPIError[*types.UnsupportedOperationException](t, err, 400, arn("us-east-1", mrk)+" is not a multi-region primary key.")
	})
}

func TestTagAndAliasErrorsAnswerLikeAWS(t *testing.T) {
	e := start(t, kmsemu.Options{}, testFleet)
	tag := func(k, v string) types.Tag { return types.Tag{TagKey: aws.String(k), TagValue: aws.String(v)} }
	many := make([]types.Tag, 51)
	for i := range many {
		many[i] = tag("key"+strings.Repeat("x", i), "v")
	}
	create := []struct {
		name    string
		tags    []types.Tag
		code    string
		message string
	}{
		{"too many tags is TagException", many, "TagException", "Too many tags"},
		{"aws: prefix is TagException", []types.Tag{tag("aws:key1", "v")}, "TagException", "Tags beginning with aws: are reserved"},
		{"AWS: prefix in capitals is TagException too", []types.Tag{tag("AWS:key1", "v")}, "TagException", "Tags beginning with aws: are reserved"},
		{"a tag key over 128 characters is ValidationException naming the member", []types.Tag{tag(strings.Repeat("a", 129), "v")}, "ValidationException",
			"1 validation error detected: Value '" + strings.Repeat("a", 129) + "' at 'tags.1.member.tagKey' failed to satisfy constraint: Member must have length less than or equal to 128"},
		{"a tag value over 256 characters is ValidationException naming the member", []types.Tag{tag("tag1", strings.Repeat("v", 257))}, "ValidationException",
			"1 validation error detected: Value '" + strings.Repeat("v", 257) + "' at 'tags.1.member.tagValue' failed to satisfy constraint: Member must have length less than or equal to 256"},
	}
	for _, c := range create {
		t.Run("CreateKey: "+c.name, func(t *testing.T) {
			_, err := e.kms.CreateKey(e.ctx, &kms.CreateKeyInput{Tags: c.tags})
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != c.code || ae.ErrorMessage() != c.message {
				t.Fatalf("err %v, want %s %q", err, c.code, c.message)
			}
		})
	}
	t.Run("TagResource: a repeated tag key is TagException", func(t *testing.T) {
		_, err := e.kms.TagResource(e.ctx, &kms.TagResourceInput{KeyId: aws.String(keyB), Tags: []types.Tag{tag("tag1", "a"), tag("tag1", "b")}})
		wantAPIError[*types.TagException](t, err, 400, "Duplicate tag keys")
	})
	t.Run("CreateAlias: a name without alias/ is ValidationException in AWS's words", func(t *testing.T) {
		_, err := e.kms.CreateAlias(e.ctx, &kms.CreateAliasInput{AliasName: aws.String("mine"), TargetKeyId: aws.String(keyB)})
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "ValidationException" ||
			ae.ErrorMessage() != `Alias must start with the prefix "alias/". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html` {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("CreateKey: an HMAC key spec without KeyUsage is ValidationException in AWS's words", func(t *testing.T) {
		_, err := e.kms.CreateKey(e.ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecHmac256})
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorMessage() != "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys." {
			t.Fatalf("err %v", err)
		}
	})
}
