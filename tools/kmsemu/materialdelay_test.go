package kmsemu_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

// TestMaterialDelaySplitsCompletion checks the two phases AWS shows: the
// rotation leaves "in progress" after RotationDelay, and its key material
// becomes current MaterialDelay later.
func TestMaterialDelaySplitsCompletion(t *testing.T) {
	e := start(t, kmsemu.Options{RotationDelay: 10 * time.Second, MaterialDelay: time.Minute}, testFleet)
	status := func() *kms.GetKeyRotationStatusOutput {
		t.Helper()
		return must[*kms.GetKeyRotationStatusOutput](t)(e.kms.GetKeyRotationStatus(e.ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(keyB)}))
	}
	all := func() []types.RotationsListEntry {
		t.Helper()
		return must[*kms.ListKeyRotationsOutput](t)(e.kms.ListKeyRotations(e.ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(keyB), IncludeKeyMaterial: types.IncludeKeyMaterialAllKeyMaterial})).Rotations
	}
	encryptsWith := func() string {
		t.Helper()
		c := must[*kms.EncryptOutput](t)(e.kms.Encrypt(e.ctx, &kms.EncryptInput{KeyId: aws.String(keyB), Plaintext: []byte("x")}))
		return aws.ToString(must[*kms.DecryptOutput](t)(e.kms.Decrypt(e.ctx, &kms.DecryptInput{CiphertextBlob: c.CiphertextBlob})).KeyMaterialId)
	}
	before := aws.ToString(describe(t, e, keyB).KeyMetadata.CurrentKeyMaterialId)
	must[*kms.RotateKeyOnDemandOutput](t)(e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyB)}))

	e.clock.Advance(10 * time.Second)
	t.Run("after RotationDelay the status is clear and the rotation is listed, its material not yet current", func(t *testing.T) {
		if st := status(); st.OnDemandRotationStartDate != nil {
			t.Fatalf("still in progress: %v", st.OnDemandRotationStartDate)
		}
		if cur := aws.ToString(describe(t, e, keyB).KeyMetadata.CurrentKeyMaterialId); cur != before {
			t.Fatalf("CurrentKeyMaterialId changed to %s before MaterialDelay", cur)
		}
		l := all()
		if len(l) != 2 || aws.ToString(l[0].KeyMaterialId) != before || l[0].KeyMaterialState != types.KeyMaterialStateCurrent ||
			l[1].RotationType != types.RotationTypeOnDemand || l[1].KeyMaterialState != types.KeyMaterialStateNonCurrent {
			t.Fatalf("rotations %+v, want the old material CURRENT and the new ON_DEMAND entry NON_CURRENT", l)
		}
		if got := encryptsWith(); got != before {
			t.Fatalf("Encrypt used %s, want the old material %s", got, before)
		}
	})
	e.clock.Advance(time.Minute - time.Second)
	t.Run("one second before MaterialDelay nothing has switched", func(t *testing.T) {
		if cur := aws.ToString(describe(t, e, keyB).KeyMetadata.CurrentKeyMaterialId); cur != before {
			t.Fatalf("CurrentKeyMaterialId %s", cur)
		}
	})
	e.clock.Advance(time.Second)
	t.Run("after MaterialDelay the new material is current everywhere", func(t *testing.T) {
		l := all()
		next := aws.ToString(l[1].KeyMaterialId)
		if cur := aws.ToString(describe(t, e, keyB).KeyMetadata.CurrentKeyMaterialId); cur != next || cur == before {
			t.Fatalf("CurrentKeyMaterialId %s, want %s", cur, next)
		}
		if l[0].KeyMaterialState != types.KeyMaterialStateNonCurrent || l[1].KeyMaterialState != types.KeyMaterialStateCurrent {
			t.Fatalf("rotations %+v", l)
		}
		if got := encryptsWith(); got != next {
			t.Fatalf("Encrypt used %s, want %s", got, next)
		}
	})
	t.Run("a rotation started in the gap is accepted and makes the earlier material current when it completes", func(t *testing.T) {
		e := start(t, kmsemu.Options{RotationDelay: 10 * time.Second, MaterialDelay: time.Minute}, testFleet)
		rotate := func() {
			must[*kms.RotateKeyOnDemandOutput](t)(e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyB)}))
		}
		rotate()
		e.clock.Advance(10 * time.Second)
		rotate() // status cleared: KMS takes another rotation
		e.clock.Advance(10 * time.Second)
		l := must[*kms.ListKeyRotationsOutput](t)(e.kms.ListKeyRotations(e.ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(keyB)})).Rotations
		cur := aws.ToString(describe(t, e, keyB).KeyMetadata.CurrentKeyMaterialId)
		if len(l) != 2 || cur != aws.ToString(l[0].KeyMaterialId) || l[1].KeyMaterialState != types.KeyMaterialStateNonCurrent {
			t.Fatalf("rotations %+v, current %s", l, cur)
		}
	})
	t.Run("the lifetime count includes rotations whose material is not yet current", func(t *testing.T) {
		e := start(t, kmsemu.Options{RotationDelay: time.Second, MaterialDelay: time.Hour, OnDemandLimit: 1}, testFleet)
		must[*kms.RotateKeyOnDemandOutput](t)(e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyB)}))
		e.clock.Advance(2 * time.Second)
		_, err := e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyB)})
		wantCode(t, err, "LimitExceededException")
	})
}
