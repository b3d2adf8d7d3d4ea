package kmsemu_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

func TestFleetSeedsImportedKeys(t *testing.T) {
	const (
		fresh   = "10000000-0000-4000-8000-000000000001"
		staged  = "10000000-0000-4000-8000-000000000002"
		expires = "10000000-0000-4000-8000-000000000003"
		deleted = "10000000-0000-4000-8000-000000000004"
		plain   = "10000000-0000-4000-8000-000000000005"
		mrkImp  = "mrk-10000000000000000000000000000006"
		mrkAll  = "mrk-10000000000000000000000000000007"
	)
	fleet := `[
	 {"keyId":"` + fresh + `","origin":"EXTERNAL","importedMaterial":false},
	 {"keyId":"` + staged + `","origin":"EXTERNAL","stagedMaterial":true,"rotations":[{"type":"ON_DEMAND","daysAgo":30}]},
	 {"keyId":"` + expires + `","origin":"EXTERNAL","materialExpiresInDays":2},
	 {"keyId":"` + deleted + `","origin":"EXTERNAL","keyState":"PendingImport","importedMaterial":true},
	 {"keyId":"` + plain + `","origin":"EXTERNAL"},
	 {"keyId":"` + mrkImp + `","alias":"alias/mi","region":"eu-west-1","multiRegionKeyType":"PRIMARY","origin":"EXTERNAL","stagedMaterial":true},
	 {"region":"us-east-1","multiRegionKeyType":"REPLICA","primaryAlias":"alias/mi","pendingReplicaImport":true},
	 {"region":"ap-southeast-2","multiRegionKeyType":"REPLICA","primaryAlias":"alias/mi"},
	 {"keyId":"` + mrkAll + `","alias":"alias/ma","region":"eu-west-1","multiRegionKeyType":"PRIMARY","origin":"EXTERNAL","stagedMaterial":true,"pendingReplicaImport":true},
	 {"region":"us-east-1","multiRegionKeyType":"REPLICA","primaryAlias":"alias/ma"}
	]`
	e := start(t, kmsemu.Options{}, fleet)
	eu := kmsClient(e.emu, "eu-west-1")
	t.Run("importedMaterial false is a key waiting for its first import", func(t *testing.T) {
		md := describe(t, e, fresh).KeyMetadata
		if md.KeyState != types.KeyStatePendingImport || md.CurrentKeyMaterialId != nil || md.ExpirationModel != "" {
			t.Fatalf("metadata %+v", md)
		}
		importInto(t, e, e.kms, fresh, newMaterial(t, 32), kms.ImportKeyMaterialInput{})
		if s := describe(t, e, fresh).KeyMetadata.KeyState; s != types.KeyStateEnabled {
			t.Fatalf("after import %s", s)
		}
	})
	t.Run("an EXTERNAL key has imported material that does not expire by default", func(t *testing.T) {
		md := describe(t, e, plain).KeyMetadata
		l := rotations(t, e.kms, e, plain)
		if md.KeyState != types.KeyStateEnabled || md.ExpirationModel != types.ExpirationModelTypeKeyMaterialDoesNotExpire ||
			len(l) != 1 || l[0].ImportState != types.ImportStateImported || aws.ToString(l[0].KeyMaterialId) != aws.ToString(md.CurrentKeyMaterialId) {
			t.Fatalf("metadata %+v, materials %+v", md, l)
		}
	})
	t.Run("stagedMaterial waits in PENDING_ROTATION and the key rotates to it", func(t *testing.T) {
		l := rotations(t, e.kms, e, staged)
		if len(l) != 3 || l[1].KeyMaterialState != types.KeyMaterialStateCurrent || l[2].KeyMaterialState != types.KeyMaterialStatePendingRotation {
			t.Fatalf("materials %+v", l)
		}
		must[*kms.RotateKeyOnDemandOutput](t)(e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(staged)}))
		if cur := aws.ToString(describe(t, e, staged).KeyMetadata.CurrentKeyMaterialId); cur != aws.ToString(l[2].KeyMaterialId) {
			t.Fatalf("current %s, want the staged %s", cur, aws.ToString(l[2].KeyMaterialId))
		}
	})
	t.Run("materialExpiresInDays expires the current material", func(t *testing.T) {
		md := describe(t, e, expires).KeyMetadata
		if md.ExpirationModel != types.ExpirationModelTypeKeyMaterialExpires || !md.ValidTo.Equal(e.clock.Now().Add(48*time.Hour)) {
			t.Fatalf("metadata %+v", md)
		}
	})
	t.Run("PendingImport with importedMaterial is a key whose material was deleted", func(t *testing.T) {
		md := describe(t, e, deleted).KeyMetadata
		if md.KeyState != types.KeyStatePendingImport || md.CurrentKeyMaterialId == nil || md.ExpirationModel != "" {
			t.Fatalf("metadata %+v", md)
		}
	})
	t.Run("pendingReplicaImport on a replica leaves the staged material out of it", func(t *testing.T) {
		if l := rotations(t, eu, e, mrkImp); l[1].KeyMaterialState != types.KeyMaterialStatePendingMultiRegionImportAndRotation {
			t.Fatalf("materials %+v", l)
		}
		if l := rotations(t, kmsClient(e.emu, "ap-southeast-2"), e, mrkImp); l[1].ImportState != types.ImportStateImported {
			t.Fatalf("the other replica's materials %+v", l)
		}
		if l := rotations(t, e.kms, e, mrkImp); l[1].ImportState != types.ImportStatePendingImport || l[0].ImportState != types.ImportStateImported {
			t.Fatalf("replica materials %+v", l)
		}
		_, err := eu.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(mrkImp)})
		wantCode(t, err, "KMSInvalidStateException")
	})
	t.Run("pendingReplicaImport on the primary leaves it out of every replica", func(t *testing.T) {
		if l := rotations(t, e.kms, e, mrkAll); l[1].ImportState != types.ImportStatePendingImport || l[1].KeyMaterialState != types.KeyMaterialStatePendingMultiRegionImportAndRotation {
			t.Fatalf("replica materials %+v", l)
		}
	})
	t.Run("after the expiry the key is PendingImport", func(t *testing.T) {
		e.clock.Advance(48 * time.Hour)
		if s := describe(t, e, expires).KeyMetadata.KeyState; s != types.KeyStatePendingImport {
			t.Fatalf("state %s", s)
		}
	})
}

func TestFleetRejectsBadImportAndUsageFields(t *testing.T) {
	cases := []struct{ name, fleet, want string }{
		{"stagedMaterial on a key generated by KMS", `[{"stagedMaterial":true}]`, "need origin EXTERNAL"},
		{"stagedMaterial without material", `[{"origin":"EXTERNAL","importedMaterial":false,"stagedMaterial":true}]`, "need importedMaterial"},
		{"stagedMaterial on an HMAC key", `[{"origin":"EXTERNAL","keySpec":"HMAC_256","stagedMaterial":true}]`, "SYMMETRIC_DEFAULT"},
		{"pendingReplicaImport without staged material", `[{"origin":"EXTERNAL","pendingReplicaImport":true}]`, "needs stagedMaterial"},
		{"stagedMaterial on a replica", `[{"alias":"alias/p","region":"eu-west-1","multiRegionKeyType":"PRIMARY","origin":"EXTERNAL"},{"multiRegionKeyType":"REPLICA","primaryAlias":"alias/p","stagedMaterial":true}]`, "belongs on the primary"},
		{"import fields on a replica of a KMS key", `[{"alias":"alias/p","region":"eu-west-1","multiRegionKeyType":"PRIMARY"},{"multiRegionKeyType":"REPLICA","primaryAlias":"alias/p","importedMaterial":true}]`, "primary with origin EXTERNAL"},
		{"an expiry over 365 days", `[{"origin":"EXTERNAL","materialExpiresInDays":400}]`, "0-365"},
		{"an unknown last-used operation", `[{"lastUsedDaysAgo":1,"lastUsedOperation":"Rotate"}]`, "lastUsedOperation"},
		{"a last-used operation without a date", `[{"lastUsedOperation":"Encrypt"}]`, "needs lastUsedDaysAgo"},
	}
	for _, c := range cases {
		t.Run(c.name+" is an error naming the problem", func(t *testing.T) {
			err := kmsemu.New(kmsemu.Options{}).LoadFleet(strings.NewReader(c.fleet))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}
