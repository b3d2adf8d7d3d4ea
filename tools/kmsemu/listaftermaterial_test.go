package kmsemu_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

// listRotations pages through ListKeyRotations one entry a page, so a
// marker naming an unlisted rotation would show as an error.
func listRotations(t *testing.T, e *env, keyID string, include types.IncludeKeyMaterial) []types.RotationsListEntry {
	t.Helper()
	var all []types.RotationsListEntry
	in := &kms.ListKeyRotationsInput{KeyId: aws.String(keyID), IncludeKeyMaterial: include, Limit: aws.Int32(1)}
	for {
		out := must[*kms.ListKeyRotationsOutput](t)(e.kms.ListKeyRotations(e.ctx, in))
		all = append(all, out.Rotations...)
		if !out.Truncated {
			return all
		}
		in.Marker = out.NextMarker
	}
}

// TestListAfterMaterialListsARotationOnceItsMaterialIsCurrent follows one
// on-demand rotation of a key with two earlier rotations through its two
// phases (status clears after RotationDelay, material current
// MaterialDelay later), with and without ListAfterMaterial.
func TestListAfterMaterialListsARotationOnceItsMaterialIsCurrent(t *testing.T) {
	for _, tt := range []struct {
		name              string
		listAfterMaterial bool
		// listed is how many rotations ListKeyRotations shows between
		// the two phases (two before the call).
		listedInGap int
	}{
		{"without it the rotation is listed as soon as the status clears", false, 3},
		{"with it the rotation is not listed until its material is current", true, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, kmsemu.Options{RotationDelay: 10 * time.Second, MaterialDelay: time.Minute, ListAfterMaterial: tt.listAfterMaterial}, testFleet)
			before := aws.ToString(describe(t, e, keyA).KeyMetadata.CurrentKeyMaterialId)
			called := e.clock.Now()
			must[*kms.RotateKeyOnDemandOutput](t)(e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyA)}))

			e.clock.Advance(10 * time.Second)
			st := must[*kms.GetKeyRotationStatusOutput](t)(e.kms.GetKeyRotationStatus(e.ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(keyA)}))
			if st.OnDemandRotationStartDate != nil {
				t.Fatalf("after RotationDelay OnDemandRotationStartDate is still %v", st.OnDemandRotationStartDate)
			}
			if got := len(listRotations(t, e, keyA, "")); got != tt.listedInGap {
				t.Fatalf("after RotationDelay %d rotations listed, want %d", got, tt.listedInGap)
			}
			// ALL_KEY_MATERIAL adds the first material to the rotations.
			if got := len(listRotations(t, e, keyA, types.IncludeKeyMaterialAllKeyMaterial)); got != tt.listedInGap+1 {
				t.Fatalf("after RotationDelay %d materials listed with ALL_KEY_MATERIAL, want %d", got, tt.listedInGap+1)
			}
			if cur := aws.ToString(describe(t, e, keyA).KeyMetadata.CurrentKeyMaterialId); cur != before {
				t.Fatalf("CurrentKeyMaterialId changed to %s before MaterialDelay", cur)
			}

			e.clock.Advance(time.Minute - time.Second)
			if got := len(listRotations(t, e, keyA, "")); got != tt.listedInGap {
				t.Fatalf("a second before MaterialDelay %d rotations listed, want %d", got, tt.listedInGap)
			}

			e.clock.Advance(time.Second)
			l := listRotations(t, e, keyA, "")
			if len(l) != 3 {
				t.Fatalf("after MaterialDelay %d rotations listed, want 3", len(l))
			}
			last := l[2]
			cur := aws.ToString(describe(t, e, keyA).KeyMetadata.CurrentKeyMaterialId)
			if last.RotationType != types.RotationTypeOnDemand || last.KeyMaterialState != types.KeyMaterialStateCurrent || aws.ToString(last.KeyMaterialId) != cur || cur == before {
				t.Fatalf("newest entry %+v with CurrentKeyMaterialId %s, want the ON_DEMAND rotation, CURRENT", last, cur)
			}
			// Dated when it left "in progress", with the flag or without.
			if d := aws.ToTime(last.RotationDate); !d.Equal(called.Add(10 * time.Second)) {
				t.Fatalf("RotationDate %v, want %v", d, called.Add(10*time.Second))
			}
		})
	}
}

func TestListAfterMaterialHidesOnlyTheRotationWhoseMaterialIsPending(t *testing.T) {
	t.Run("a rotation started in the gap lists the earlier one once it makes that material current", func(t *testing.T) {
		e := start(t, kmsemu.Options{RotationDelay: 10 * time.Second, MaterialDelay: time.Minute, ListAfterMaterial: true}, testFleet)
		rotate := func() {
			must[*kms.RotateKeyOnDemandOutput](t)(e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyB)}))
		}
		rotate()
		e.clock.Advance(10 * time.Second)
		if l := listRotations(t, e, keyB, ""); len(l) != 0 {
			t.Fatalf("first rotation in its gap: listed %+v, want nothing", l)
		}
		rotate() // the status cleared: KMS takes another rotation
		e.clock.Advance(10 * time.Second)
		l := listRotations(t, e, keyB, "")
		cur := aws.ToString(describe(t, e, keyB).KeyMetadata.CurrentKeyMaterialId)
		if len(l) != 1 || aws.ToString(l[0].KeyMaterialId) != cur || l[0].KeyMaterialState != types.KeyMaterialStateCurrent {
			t.Fatalf("rotations %+v with CurrentKeyMaterialId %s, want only the first rotation, CURRENT", l, cur)
		}
	})
	t.Run("an unlisted rotation already counts against the lifetime limit", func(t *testing.T) {
		e := start(t, kmsemu.Options{RotationDelay: time.Second, MaterialDelay: time.Hour, OnDemandLimit: 1, ListAfterMaterial: true}, testFleet)
		must[*kms.RotateKeyOnDemandOutput](t)(e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyB)}))
		e.clock.Advance(2 * time.Second)
		if l := listRotations(t, e, keyB, ""); len(l) != 0 {
			t.Fatalf("listed %+v before the material is current", l)
		}
		_, err := e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyB)})
		wantCode(t, err, "LimitExceededException")
	})
}
