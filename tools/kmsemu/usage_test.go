package kmsemu_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

func lastUsage(t *testing.T, c *kms.Client, e *env, id string) *kms.GetKeyLastUsageOutput {
	t.Helper()
	return must[*kms.GetKeyLastUsageOutput](t)(c.GetKeyLastUsage(e.ctx, &kms.GetKeyLastUsageInput{KeyId: aws.String(id)}))
}

func TestGetKeyLastUsage(t *testing.T) {
	const fleet = `[
	 {"keyId":"` + keyA + `","createdDaysAgo":400,"lastUsedDaysAgo":3,"lastUsedOperation":"decrypt"},
	 {"keyId":"` + keyB + `","createdDaysAgo":10},
	 {"keyId":"` + keyDis + `","createdDaysAgo":400,"lastUsedDaysAgo":300},
	 {"keyId":"` + mrk + `","alias":"alias/global","region":"eu-west-1","multiRegionKeyType":"PRIMARY"},
	 {"region":"us-east-1","multiRegionKeyType":"REPLICA","primaryAlias":"alias/global"}
	]`
	e := start(t, kmsemu.Options{}, fleet)
	t.Run("a key not used since it was created has an empty KeyLastUsage and tracking from its creation", func(t *testing.T) {
		u := lastUsage(t, e.kms, e, keyB)
		if aws.ToString(u.KeyId) != keyB || u.KeyLastUsage == nil || u.KeyLastUsage.Timestamp != nil || u.KeyLastUsage.Operation != "" ||
			!u.TrackingStartDate.Equal(*u.KeyCreationDate) || !u.KeyCreationDate.Equal(e.clock.Now().Add(-10*24*time.Hour)) {
			t.Fatalf("usage %+v %+v", u, u.KeyLastUsage)
		}
	})
	t.Run("the fleet's last use shows, with tracking from when KMS began it", func(t *testing.T) {
		u := lastUsage(t, e.kms, e, keyA)
		lu := u.KeyLastUsage
		if lu.Operation != types.KeyLastUsageTrackingOperationDecrypt || !lu.Timestamp.Equal(e.clock.Now().Add(-3*24*time.Hour)) ||
			aws.ToString(lu.KmsRequestId) == "" || aws.ToString(lu.CloudTrailEventId) == "" || !u.TrackingStartDate.Equal(kmsemu.UsageTrackingBegan) {
			t.Fatalf("usage %+v %+v", u, lu)
		}
		if u := lastUsage(t, e.kms, e, keyDis); !u.TrackingStartDate.Equal(*u.KeyLastUsage.Timestamp) {
			t.Fatalf("a use before 2026-04-27 moves the tracking start back to it: %+v", u)
		}
	})
	t.Run("Encrypt and Decrypt are recorded with their request IDs", func(t *testing.T) {
		e.clock.Advance(time.Hour)
		enc := must[*kms.EncryptOutput](t)(e.kms.Encrypt(e.ctx, &kms.EncryptInput{KeyId: aws.String(keyB), Plaintext: []byte("x")}))
		reqID, _ := awsmiddleware.GetRequestIDMetadata(enc.ResultMetadata)
		lu := lastUsage(t, e.kms, e, keyB).KeyLastUsage
		if lu.Operation != types.KeyLastUsageTrackingOperationEncrypt || !lu.Timestamp.Equal(e.clock.Now()) || aws.ToString(lu.KmsRequestId) != reqID || reqID == "" {
			t.Fatalf("after Encrypt: %+v (request %s)", lu, reqID)
		}
		e.clock.Advance(time.Minute)
		must[*kms.DecryptOutput](t)(e.kms.Decrypt(e.ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}))
		if lu := lastUsage(t, e.kms, e, keyB).KeyLastUsage; lu.Operation != types.KeyLastUsageTrackingOperationDecrypt || !lu.Timestamp.Equal(e.clock.Now()) {
			t.Fatalf("after Decrypt: %+v", lu)
		}
	})
	t.Run("a failed operation is not a use", func(t *testing.T) {
		before := lastUsage(t, e.kms, e, keyB).KeyLastUsage.Timestamp
		e.clock.Advance(time.Minute)
		_, err := e.kms.Decrypt(e.ctx, &kms.DecryptInput{KeyId: aws.String(keyB), CiphertextBlob: []byte("garbage")})
		wantCode(t, err, "InvalidCiphertextException")
		if lu := lastUsage(t, e.kms, e, keyB).KeyLastUsage; !lu.Timestamp.Equal(*before) {
			t.Fatalf("failed Decrypt recorded: %+v", lu)
		}
	})
	t.Run("primary and replica track their use independently", func(t *testing.T) {
		eu := kmsClient(e.emu, "eu-west-1")
		must[*kms.EncryptOutput](t)(eu.Encrypt(e.ctx, &kms.EncryptInput{KeyId: aws.String(mrk), Plaintext: []byte("x")}))
		if lu := lastUsage(t, eu, e, mrk).KeyLastUsage; lu.Timestamp == nil {
			t.Fatal("primary use not recorded")
		}
		if lu := lastUsage(t, e.kms, e, mrk).KeyLastUsage; lu.Timestamp != nil {
			t.Fatalf("replica shows the primary's use: %+v", lu)
		}
	})
	t.Run("an alias is NotFoundException: key ID or ARN only", func(t *testing.T) {
		_, err := e.kms.GetKeyLastUsage(e.ctx, &kms.GetKeyLastUsageInput{KeyId: aws.String("alias/global")})
		wantCode(t, err, "NotFoundException")
	})
}
