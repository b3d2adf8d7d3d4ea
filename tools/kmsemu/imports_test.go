package kmsemu_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu/emutest"
)

func newMaterial(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func createExternal(t *testing.T, e *env, c *kms.Client, in kms.CreateKeyInput) *types.KeyMetadata {
	t.Helper()
	in.Origin = types.OriginTypeExternal
	return must[*kms.CreateKeyOutput](t)(c.CreateKey(e.ctx, &in)).KeyMetadata
}

// importInto imports material into id with c and returns its material ID.
func importInto(t *testing.T, e *env, c *kms.Client, id string, material []byte, in kms.ImportKeyMaterialInput) string {
	t.Helper()
	mid, err := emutest.ImportKeyMaterial(e.ctx, c, id, material, kms.GetParametersForImportInput{WrappingKeySpec: types.WrappingKeySpecRsa2048, WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256}, in)
	if err != nil {
		t.Fatalf("import into %s: %v", id, err)
	}
	return mid
}

func rotations(t *testing.T, c *kms.Client, e *env, id string) []types.RotationsListEntry {
	t.Helper()
	return must[*kms.ListKeyRotationsOutput](t)(c.ListKeyRotations(e.ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(id), IncludeKeyMaterial: types.IncludeKeyMaterialAllKeyMaterial})).Rotations
}

func TestAESKeyWrapPadRFC5649Vectors(t *testing.T) {
	kek, _ := hex.DecodeString("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
	for key, want := range map[string]string{
		"c37b7e6492584340bed12207808941155068f738": "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a",
		"466f7250617369": "afbeb0f07dfbf5419200f2ccb50bb24f",
	} {
		k, _ := hex.DecodeString(key)
		got, err := emutest.AESKeyWrapPad(kek, k)
		if err != nil || hex.EncodeToString(got) != want {
			t.Fatalf("wrap %s = %x, %v; want %s", key, got, err, want)
		}
	}
}

func TestImportWithEachWrappingAlgorithm(t *testing.T) {
	e := start(t, kmsemu.Options{}, "")
	cases := []struct {
		spec types.WrappingKeySpec
		alg  types.AlgorithmSpec
	}{
		{types.WrappingKeySpecRsa2048, types.AlgorithmSpecRsaesOaepSha1},
		{types.WrappingKeySpecRsa2048, types.AlgorithmSpecRsaesOaepSha256},
		{types.WrappingKeySpecRsa2048, types.AlgorithmSpecRsaAesKeyWrapSha1},
		{types.WrappingKeySpecRsa2048, types.AlgorithmSpecRsaAesKeyWrapSha256},
		{types.WrappingKeySpecRsa3072, types.AlgorithmSpecRsaesOaepSha256},
		{types.WrappingKeySpecRsa4096, types.AlgorithmSpecRsaAesKeyWrapSha256},
	}
	for _, c := range cases {
		t.Run(string(c.spec)+" "+string(c.alg)+" imports and the key encrypts", func(t *testing.T) {
			k := createExternal(t, e, e.kms, kms.CreateKeyInput{})
			p := must[*kms.GetParametersForImportOutput](t)(e.kms.GetParametersForImport(e.ctx, &kms.GetParametersForImportInput{KeyId: k.KeyId, WrappingKeySpec: c.spec, WrappingAlgorithm: c.alg}))
			if aws.ToString(p.KeyId) != *k.Arn || !p.ParametersValidTo.Equal(e.clock.Now().Add(24*time.Hour)) || len(p.ImportToken) == 0 {
				t.Fatalf("parameters %+v", p)
			}
			wrapped, err := emutest.WrapKeyMaterial(p.PublicKey, c.alg, newMaterial(t, 32))
			if err != nil {
				t.Fatal(err)
			}
			out := must[*kms.ImportKeyMaterialOutput](t)(e.kms.ImportKeyMaterial(e.ctx, &kms.ImportKeyMaterialInput{KeyId: k.KeyId, ImportToken: p.ImportToken,
				EncryptedKeyMaterial: wrapped, ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire}))
			if aws.ToString(out.KeyId) != *k.Arn || len(aws.ToString(out.KeyMaterialId)) != 64 {
				t.Fatalf("import answered %+v", out)
			}
			md := describe(t, e, *k.KeyId).KeyMetadata
			if md.KeyState != types.KeyStateEnabled || aws.ToString(md.CurrentKeyMaterialId) != aws.ToString(out.KeyMaterialId) {
				t.Fatalf("after import: %s, material %v", md.KeyState, md.CurrentKeyMaterialId)
			}
			must[*kms.EncryptOutput](t)(e.kms.Encrypt(e.ctx, &kms.EncryptInput{KeyId: k.KeyId, Plaintext: []byte("x")}))
		})
	}
	t.Run("the public key is DER of the requested size", func(t *testing.T) {
		k := createExternal(t, e, e.kms, kms.CreateKeyInput{})
		p := must[*kms.GetParametersForImportOutput](t)(e.kms.GetParametersForImport(e.ctx, &kms.GetParametersForImportInput{KeyId: k.KeyId, WrappingKeySpec: types.WrappingKeySpecRsa3072, WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha1}))
		// A 3072-bit SubjectPublicKeyInfo is 422 bytes.
		if len(p.PublicKey) != 422 {
			t.Fatalf("public key of %d bytes", len(p.PublicKey))
		}
	})
}

func TestImportKeyMaterialErrors(t *testing.T) {
	e := start(t, kmsemu.Options{}, testFleet)
	k := createExternal(t, e, e.kms, kms.CreateKeyInput{})
	other := createExternal(t, e, e.kms, kms.CreateKeyInput{})
	params := func(id string, alg types.AlgorithmSpec) *kms.GetParametersForImportOutput {
		t.Helper()
		return must[*kms.GetParametersForImportOutput](t)(e.kms.GetParametersForImport(e.ctx, &kms.GetParametersForImportInput{KeyId: aws.String(id), WrappingKeySpec: types.WrappingKeySpecRsa2048, WrappingAlgorithm: alg}))
	}
	wrap := func(p *kms.GetParametersForImportOutput, alg types.AlgorithmSpec, material []byte) []byte {
		t.Helper()
		w, err := emutest.WrapKeyMaterial(p.PublicKey, alg, material)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	imp := func(id string, token, wrapped []byte, mut func(*kms.ImportKeyMaterialInput)) error {
		in := &kms.ImportKeyMaterialInput{KeyId: aws.String(id), ImportToken: token, EncryptedKeyMaterial: wrapped, ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire}
		if mut != nil {
			mut(in)
		}
		_, err := e.kms.ImportKeyMaterial(e.ctx, in)
		return err
	}
	oaep := types.AlgorithmSpecRsaesOaepSha256
	t.Run("a token for another key is InvalidImportTokenException", func(t *testing.T) {
		p := params(*other.KeyId, oaep)
		err := imp(*k.KeyId, p.ImportToken, wrap(p, oaep, newMaterial(t, 32)), nil)
		wantAPIError[*types.InvalidImportTokenException](t, err, 400, "The import token is invalid or is associated with a different KMS key.")
	})
	t.Run("a token that is not one is InvalidImportTokenException", func(t *testing.T) {
		p := params(*k.KeyId, oaep)
		token := append([]byte(nil), p.ImportToken...)
		token[len(token)/2] ^= 1
		err := imp(*k.KeyId, token, wrap(p, oaep, newMaterial(t, 32)), nil)
		wantCode(t, err, "InvalidImportTokenException")
	})
	t.Run("a token 24 hours old is ExpiredImportTokenException", func(t *testing.T) {
		p := params(*k.KeyId, oaep)
		w := wrap(p, oaep, newMaterial(t, 32))
		e.clock.Advance(24 * time.Hour)
		err := imp(*k.KeyId, p.ImportToken, w, nil)
		wantAPIError[*types.ExpiredImportTokenException](t, err, 400, "The import token expired at "+p.ParametersValidTo.UTC().Format(time.RFC3339)+". Use GetParametersForImport to get a new public key and import token.")
	})
	t.Run("16 bytes of material for a symmetric key is IncorrectKeyMaterialException", func(t *testing.T) {
		p := params(*k.KeyId, oaep)
		err := imp(*k.KeyId, p.ImportToken, wrap(p, oaep, newMaterial(t, 16)), nil)
		wantAPIError[*types.IncorrectKeyMaterialException](t, err, 400, "The key material is not valid for a SYMMETRIC_DEFAULT key: it is 16 bytes, not 32 (256 bits).")
	})
	t.Run("material wrapped with another algorithm than the token's is InvalidCiphertextException", func(t *testing.T) {
		p := params(*k.KeyId, oaep)
		err := imp(*k.KeyId, p.ImportToken, wrap(p, types.AlgorithmSpecRsaesOaepSha1, newMaterial(t, 32)), nil)
		wantCode(t, err, "InvalidCiphertextException")
	})
	t.Run("KEY_MATERIAL_EXPIRES without ValidTo is ValidationException in AWS's words", func(t *testing.T) {
		p := params(*k.KeyId, oaep)
		err := imp(*k.KeyId, p.ImportToken, wrap(p, oaep, newMaterial(t, 32)), func(in *kms.ImportKeyMaterialInput) { in.ExpirationModel = "" })
		wantCode(t, err, "ValidationException")
		if !strings.Contains(err.Error(), "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES") {
			t.Fatal(err)
		}
	})
	first := newMaterial(t, 32)
	firstID := importInto(t, e, e.kms, *k.KeyId, first, kms.ImportKeyMaterialInput{})
	t.Run("a KeyMaterialId the key does not have is NotFoundException", func(t *testing.T) {
		p := params(*k.KeyId, oaep)
		err := imp(*k.KeyId, p.ImportToken, wrap(p, oaep, first), func(in *kms.ImportKeyMaterialInput) { in.KeyMaterialId = aws.String(strings.Repeat("ab", 32)) })
		wantAPIError[*types.NotFoundException](t, err, 400, "Key material (id: "+strings.Repeat("ab", 32)+") is not associated with KMS key "+*k.Arn+".")
	})
	t.Run("other bytes under an existing KeyMaterialId are IncorrectKeyMaterialException", func(t *testing.T) {
		p := params(*k.KeyId, oaep)
		err := imp(*k.KeyId, p.ImportToken, wrap(p, oaep, newMaterial(t, 32)), func(in *kms.ImportKeyMaterialInput) { in.KeyMaterialId = aws.String(firstID) })
		wantCode(t, err, "IncorrectKeyMaterialException")
	})
	t.Run("the same bytes again as NEW_KEY_MATERIAL are IncorrectKeyMaterialException", func(t *testing.T) {
		p := params(*k.KeyId, oaep)
		err := imp(*k.KeyId, p.ImportToken, wrap(p, oaep, first), func(in *kms.ImportKeyMaterialInput) { in.ImportType = types.ImportTypeNewKeyMaterial })
		wantCode(t, err, "IncorrectKeyMaterialException")
	})
	t.Run("new bytes as EXISTING_KEY_MATERIAL (the default after the first import) are IncorrectKeyMaterialException", func(t *testing.T) {
		p := params(*k.KeyId, oaep)
		err := imp(*k.KeyId, p.ImportToken, wrap(p, oaep, newMaterial(t, 32)), nil)
		wantCode(t, err, "IncorrectKeyMaterialException")
	})
	t.Run("new material while other material is pending rotation is KMSInvalidStateException in AWS's words", func(t *testing.T) {
		stagedID := importInto(t, e, e.kms, *k.KeyId, newMaterial(t, 32), kms.ImportKeyMaterialInput{ImportType: types.ImportTypeNewKeyMaterial})
		third := newMaterial(t, 32)
		p := params(*k.KeyId, oaep)
		err := imp(*k.KeyId, p.ImportToken, wrap(p, oaep, third), func(in *kms.ImportKeyMaterialInput) { in.ImportType = types.ImportTypeNewKeyMaterial })
		var ise *types.KMSInvalidStateException
		if !errors.As(err, &ise) {
			t.Fatalf("err %v, want KMSInvalidStateException", err)
		}
		want := "cannot be imported into KMS key " + *k.Arn + ", because another key material (id: " + stagedID + ") is pending rotation."
		if msg := ise.ErrorMessage(); !strings.HasPrefix(msg, "New key material (id: ") || !strings.HasSuffix(msg, want) {
			t.Fatalf("message %q", msg)
		}
	})
	t.Run("a key with key material generated by KMS is UnsupportedOperationException in AWS's words", func(t *testing.T) {
		_, err := e.kms.GetParametersForImport(e.ctx, &kms.GetParametersForImportInput{KeyId: aws.String(keyA), WrappingKeySpec: types.WrappingKeySpecRsa2048, WrappingAlgorithm: oaep})
		wantAPIError[*types.UnsupportedOperationException](t, err, 400, arn("us-east-1", keyA)+" origin is AWS_KMS which is not valid for this operation.")
		_, err = e.kms.DeleteImportedKeyMaterial(e.ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(keyA)})
		wantCode(t, err, "UnsupportedOperationException")
	})
	t.Run("RSAES_PKCS1_V1_5 is no longer supported", func(t *testing.T) {
		_, err := e.kms.GetParametersForImport(e.ctx, &kms.GetParametersForImportInput{KeyId: k.KeyId, WrappingKeySpec: types.WrappingKeySpecRsa2048, WrappingAlgorithm: types.AlgorithmSpecRsaesPkcs1V15})
		wantCode(t, err, "UnsupportedOperationException")
	})
	t.Run("a key pending deletion is KMSInvalidStateException", func(t *testing.T) {
		must[*kms.ScheduleKeyDeletionOutput](t)(e.kms.ScheduleKeyDeletion(e.ctx, &kms.ScheduleKeyDeletionInput{KeyId: other.KeyId}))
		_, err := e.kms.GetParametersForImport(e.ctx, &kms.GetParametersForImportInput{KeyId: other.KeyId, WrappingKeySpec: types.WrappingKeySpecRsa2048, WrappingAlgorithm: oaep})
		wantAPIError[*types.KMSInvalidStateException](t, err, 400, *other.Arn+" is pending deletion.")
	})
}

// TestImportedKeyLifecycle follows an imported key from creation through a
// rotation to new material, as KMS documents and the recordings show.
func TestImportedKeyLifecycle(t *testing.T) {
	e := start(t, kmsemu.Options{RotationDelay: 10 * time.Second, MaterialDelay: time.Minute}, "")
	k := createExternal(t, e, e.kms, kms.CreateKeyInput{Description: aws.String("byok")})
	id := *k.KeyId
	t.Run("a new key is PendingImport, disabled, without material or expiration model", func(t *testing.T) {
		md := describe(t, e, id).KeyMetadata
		if md.KeyState != types.KeyStatePendingImport || md.Enabled || md.CurrentKeyMaterialId != nil || md.ExpirationModel != "" {
			t.Fatalf("metadata %+v", md)
		}
		if l := rotations(t, e.kms, e, id); len(l) != 0 {
			t.Fatalf("materials %+v", l)
		}
	})
	t.Run("the key-state table allows naming and tagging it, not using it", func(t *testing.T) {
		must[*kms.CreateAliasOutput](t)(e.kms.CreateAlias(e.ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/byok"), TargetKeyId: aws.String(id)}))
		must[*kms.TagResourceOutput](t)(e.kms.TagResource(e.ctx, &kms.TagResourceInput{KeyId: aws.String(id), Tags: []types.Tag{{TagKey: aws.String("t"), TagValue: aws.String("v")}}}))
		must[*kms.UntagResourceOutput](t)(e.kms.UntagResource(e.ctx, &kms.UntagResourceInput{KeyId: aws.String(id), TagKeys: []string{"t"}}))
		pending := *k.Arn + " is pending import."
		_, err := e.kms.Encrypt(e.ctx, &kms.EncryptInput{KeyId: aws.String("alias/byok"), Plaintext: []byte("x")})
		wantAPIError[*types.KMSInvalidStateException](t, err, 400, pending)
		_, err = e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(id)})
		wantAPIError[*types.KMSInvalidStateException](t, err, 400, pending)
		_, err = e.kms.EnableKey(e.ctx, &kms.EnableKeyInput{KeyId: aws.String(id)})
		wantAPIError[*types.KMSInvalidStateException](t, err, 400, pending)
		_, err = e.kms.GetKeyRotationStatus(e.ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(id)})
		wantAPIError[*types.KMSInvalidStateException](t, err, 400, pending)
		_, err = e.kms.EnableKeyRotation(e.ctx, &kms.EnableKeyRotationInput{KeyId: aws.String(id)})
		wantAPIError[*types.UnsupportedOperationException](t, err, 400, *k.Arn+" origin is EXTERNAL which is not valid for this operation.")
	})
	first := importInto(t, e, e.kms, id, newMaterial(t, 32), kms.ImportKeyMaterialInput{KeyMaterialDescription: aws.String("first from the HSM")})
	var old []byte
	t.Run("the first import makes it Enabled with that material current and an expiration model", func(t *testing.T) {
		md := describe(t, e, id).KeyMetadata
		if md.KeyState != types.KeyStateEnabled || !md.Enabled || aws.ToString(md.CurrentKeyMaterialId) != first || md.ExpirationModel != types.ExpirationModelTypeKeyMaterialDoesNotExpire {
			t.Fatalf("metadata %+v", md)
		}
		l := rotations(t, e.kms, e, id)
		if len(l) != 1 || aws.ToString(l[0].KeyMaterialId) != first || l[0].KeyMaterialState != types.KeyMaterialStateCurrent || l[0].ImportState != types.ImportStateImported ||
			l[0].ExpirationModel != types.ExpirationModelTypeKeyMaterialDoesNotExpire || aws.ToString(l[0].KeyMaterialDescription) != "first from the HSM" || l[0].RotationDate != nil {
			t.Fatalf("materials %+v", l)
		}
		old = must[*kms.EncryptOutput](t)(e.kms.Encrypt(e.ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("old")})).CiphertextBlob
		_, err := e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(id)})
		wantAPIError[*types.KMSInvalidStateException](t, err, 400, "No available key material pending rotation for the key: "+*k.Arn+".")
	})
	staged := importInto(t, e, e.kms, id, newMaterial(t, 32), kms.ImportKeyMaterialInput{ImportType: types.ImportTypeNewKeyMaterial})
	t.Run("new material waits in PENDING_ROTATION; the key keeps using the current one", func(t *testing.T) {
		l := rotations(t, e.kms, e, id)
		if len(l) != 2 || aws.ToString(l[1].KeyMaterialId) != staged || l[1].KeyMaterialState != types.KeyMaterialStatePendingRotation || l[1].RotationType != "" || l[1].ImportState != types.ImportStateImported {
			t.Fatalf("materials %+v", l)
		}
		if cur := aws.ToString(describe(t, e, id).KeyMetadata.CurrentKeyMaterialId); cur != first {
			t.Fatalf("current %s", cur)
		}
		if only := must[*kms.ListKeyRotationsOutput](t)(e.kms.ListKeyRotations(e.ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(id)})).Rotations; len(only) != 0 {
			t.Fatalf("ROTATIONS_ONLY lists %+v", only)
		}
	})
	t.Run("rotating starts, and the material stays PENDING_ROTATION while in progress", func(t *testing.T) {
		out := must[*kms.RotateKeyOnDemandOutput](t)(e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(id)}))
		if aws.ToString(out.KeyId) != *k.Arn {
			t.Fatalf("KeyId %s", aws.ToString(out.KeyId))
		}
		st := must[*kms.GetKeyRotationStatusOutput](t)(e.kms.GetKeyRotationStatus(e.ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(id)}))
		if st.OnDemandRotationStartDate == nil || st.KeyRotationEnabled {
			t.Fatalf("status %+v", st)
		}
		if l := rotations(t, e.kms, e, id); l[1].KeyMaterialState != types.KeyMaterialStatePendingRotation {
			t.Fatalf("materials %+v", l)
		}
		_, err := e.kms.ImportKeyMaterial(e.ctx, &kms.ImportKeyMaterialInput{KeyId: aws.String(id)})
		if err == nil {
			t.Fatal("import accepted without token")
		}
	})
	e.clock.Advance(10*time.Second + time.Minute)
	t.Run("after the delays the staged material is current and old data still decrypts", func(t *testing.T) {
		md := describe(t, e, id).KeyMetadata
		if aws.ToString(md.CurrentKeyMaterialId) != staged {
			t.Fatalf("current %v, want %s", md.CurrentKeyMaterialId, staged)
		}
		l := rotations(t, e.kms, e, id)
		if len(l) != 2 || l[0].KeyMaterialState != types.KeyMaterialStateNonCurrent || l[1].KeyMaterialState != types.KeyMaterialStateCurrent || l[1].RotationType != types.RotationTypeOnDemand || l[1].RotationDate == nil {
			t.Fatalf("materials %+v", l)
		}
		dec := must[*kms.DecryptOutput](t)(e.kms.Decrypt(e.ctx, &kms.DecryptInput{CiphertextBlob: old}))
		if !bytes.Equal(dec.Plaintext, []byte("old")) || aws.ToString(dec.KeyMaterialId) != first {
			t.Fatalf("decrypted %q with %s", dec.Plaintext, aws.ToString(dec.KeyMaterialId))
		}
		c := must[*kms.EncryptOutput](t)(e.kms.Encrypt(e.ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("new")}))
		if m := aws.ToString(must[*kms.DecryptOutput](t)(e.kms.Decrypt(e.ctx, &kms.DecryptInput{CiphertextBlob: c.CiphertextBlob})).KeyMaterialId); m != staged {
			t.Fatalf("encrypted with %s", m)
		}
	})
	t.Run("deleting the current material: PendingImport, CurrentKeyMaterialId kept, ExpirationModel gone", func(t *testing.T) {
		out := must[*kms.DeleteImportedKeyMaterialOutput](t)(e.kms.DeleteImportedKeyMaterial(e.ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(id)}))
		if aws.ToString(out.KeyMaterialId) != staged || aws.ToString(out.KeyId) != *k.Arn {
			t.Fatalf("deleted %+v", out)
		}
		md := describe(t, e, id).KeyMetadata
		if md.KeyState != types.KeyStatePendingImport || md.Enabled || aws.ToString(md.CurrentKeyMaterialId) != staged || md.ExpirationModel != "" {
			t.Fatalf("metadata %+v", md)
		}
		l := rotations(t, e.kms, e, id)
		if l[1].ImportState != types.ImportStatePendingImport || l[1].ExpirationModel != "" || l[0].ImportState != types.ImportStateImported {
			t.Fatalf("materials %+v", l)
		}
		_, err := e.kms.Decrypt(e.ctx, &kms.DecryptInput{CiphertextBlob: old})
		wantAPIError[*types.KMSInvalidStateException](t, err, 400, *k.Arn+" is pending import.")
	})
	t.Run("deleting a material that does not exist is NotFoundException", func(t *testing.T) {
		_, err := e.kms.DeleteImportedKeyMaterial(e.ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(id), KeyMaterialId: aws.String(strings.Repeat("0", 64))})
		wantCode(t, err, "NotFoundException")
	})
}

func TestImportedMaterialReimportAndExpiry(t *testing.T) {
	e := start(t, kmsemu.Options{}, "")
	k := createExternal(t, e, e.kms, kms.CreateKeyInput{})
	id := *k.KeyId
	material := newMaterial(t, 32)
	validTo := e.clock.Now().Add(time.Hour)
	mid := importInto(t, e, e.kms, id, material, kms.ImportKeyMaterialInput{ExpirationModel: types.ExpirationModelTypeKeyMaterialExpires, ValidTo: &validTo})
	md := describe(t, e, id).KeyMetadata
	if md.ExpirationModel != types.ExpirationModelTypeKeyMaterialExpires || !md.ValidTo.Equal(validTo) {
		t.Fatalf("metadata %+v", md)
	}
	if l := rotations(t, e.kms, e, id); !l[0].ValidTo.Equal(validTo) || l[0].ExpirationModel != types.ExpirationModelTypeKeyMaterialExpires {
		t.Fatalf("materials %+v", l)
	}
	e.clock.Advance(time.Hour)
	t.Run("material past its ValidTo is deleted and the key is PendingImport", func(t *testing.T) {
		md := describe(t, e, id).KeyMetadata
		if md.KeyState != types.KeyStatePendingImport || md.ExpirationModel != "" || aws.ToString(md.CurrentKeyMaterialId) != mid {
			t.Fatalf("metadata %+v", md)
		}
	})
	t.Run("re-importing the same material by its KeyMaterialId brings the key back", func(t *testing.T) {
		got := importInto(t, e, e.kms, id, material, kms.ImportKeyMaterialInput{ImportType: types.ImportTypeExistingKeyMaterial, KeyMaterialId: aws.String(mid)})
		if got != mid || describe(t, e, id).KeyMetadata.KeyState != types.KeyStateEnabled {
			t.Fatalf("re-import gave %s, state %s", got, describe(t, e, id).KeyMetadata.KeyState)
		}
	})
	t.Run("a disabled key whose material is deleted is PendingImport, and Enabled after re-import", func(t *testing.T) {
		must[*kms.DisableKeyOutput](t)(e.kms.DisableKey(e.ctx, &kms.DisableKeyInput{KeyId: aws.String(id)}))
		must[*kms.DeleteImportedKeyMaterialOutput](t)(e.kms.DeleteImportedKeyMaterial(e.ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(id), KeyMaterialId: aws.String(mid)}))
		if s := describe(t, e, id).KeyMetadata.KeyState; s != types.KeyStatePendingImport {
			t.Fatalf("state %s", s)
		}
		importInto(t, e, e.kms, id, material, kms.ImportKeyMaterialInput{})
		if s := describe(t, e, id).KeyMetadata.KeyState; s != types.KeyStateEnabled {
			t.Fatalf("state %s", s)
		}
	})
	t.Run("deleting staged material leaves the key as it was", func(t *testing.T) {
		st := importInto(t, e, e.kms, id, newMaterial(t, 32), kms.ImportKeyMaterialInput{ImportType: types.ImportTypeNewKeyMaterial})
		must[*kms.DeleteImportedKeyMaterialOutput](t)(e.kms.DeleteImportedKeyMaterial(e.ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(id), KeyMaterialId: aws.String(st)}))
		if s := describe(t, e, id).KeyMetadata.KeyState; s != types.KeyStateEnabled {
			t.Fatalf("state %s", s)
		}
		if l := rotations(t, e.kms, e, id); len(l) != 1 {
			t.Fatalf("materials %+v", l)
		}
	})
	t.Run("an HMAC key takes material of an HMAC length, once", func(t *testing.T) {
		h := createExternal(t, e, e.kms, kms.CreateKeyInput{KeySpec: types.KeySpecHmac256, KeyUsage: types.KeyUsageTypeGenerateVerifyMac})
		_, err := emutest.ImportKeyMaterial(e.ctx, e.kms, *h.KeyId, newMaterial(t, 16), kms.GetParametersForImportInput{}, kms.ImportKeyMaterialInput{})
		wantCode(t, err, "IncorrectKeyMaterialException")
		importInto(t, e, e.kms, *h.KeyId, newMaterial(t, 48), kms.ImportKeyMaterialInput{})
		_, err = emutest.ImportKeyMaterial(e.ctx, e.kms, *h.KeyId, newMaterial(t, 48), kms.GetParametersForImportInput{}, kms.ImportKeyMaterialInput{ImportType: types.ImportTypeNewKeyMaterial})
		wantCode(t, err, "IncorrectKeyMaterialException")
		if md := describe(t, e, *h.KeyId).KeyMetadata; md.KeyState != types.KeyStateEnabled || md.CurrentKeyMaterialId != nil {
			t.Fatalf("metadata %+v", md)
		}
	})
}

// TestMultiRegionImportedKey: new material goes into the primary, then the
// same bytes into every replica; only then does the primary rotate.
func TestMultiRegionImportedKey(t *testing.T) {
	e := start(t, kmsemu.Options{}, "")
	eu := kmsClient(e.emu, "eu-west-1")
	k := createExternal(t, e, eu, kms.CreateKeyInput{MultiRegion: aws.Bool(true)})
	id := *k.KeyId
	first := newMaterial(t, 32)
	firstID := importInto(t, e, eu, id, first, kms.ImportKeyMaterialInput{})
	rep := must[*kms.ReplicateKeyOutput](t)(eu.ReplicateKey(e.ctx, &kms.ReplicateKeyInput{KeyId: aws.String(id), ReplicaRegion: aws.String("us-east-1")}))
	if rep.ReplicaKeyMetadata.KeyState != types.KeyStateCreating {
		t.Fatalf("replica %s", rep.ReplicaKeyMetadata.KeyState)
	}
	t.Run("a replica of an imported key becomes PendingImport and takes the primary's material", func(t *testing.T) {
		if s := describe(t, e, id).KeyMetadata.KeyState; s != types.KeyStatePendingImport {
			t.Fatalf("replica state %s", s)
		}
		_, err := emutest.ImportKeyMaterial(e.ctx, e.kms, id, first, kms.GetParametersForImportInput{}, kms.ImportKeyMaterialInput{ImportType: types.ImportTypeNewKeyMaterial})
		wantCode(t, err, "UnsupportedOperationException")
		if got := importInto(t, e, e.kms, id, first, kms.ImportKeyMaterialInput{}); got != firstID {
			t.Fatalf("replica material %s, primary %s", got, firstID)
		}
		if md := describe(t, e, id).KeyMetadata; md.KeyState != types.KeyStateEnabled || aws.ToString(md.CurrentKeyMaterialId) != firstID {
			t.Fatalf("replica %+v", md)
		}
	})
	next := newMaterial(t, 32)
	nextID := importInto(t, e, eu, id, next, kms.ImportKeyMaterialInput{ImportType: types.ImportTypeNewKeyMaterial})
	t.Run("new material in the primary only is PENDING_MULTI_REGION_IMPORT_AND_ROTATION and the primary cannot rotate", func(t *testing.T) {
		for _, c := range []*kms.Client{eu, e.kms} {
			l := rotations(t, c, e, id)
			if len(l) != 2 || l[1].KeyMaterialState != types.KeyMaterialStatePendingMultiRegionImportAndRotation {
				t.Fatalf("materials %+v", l)
			}
		}
		if l := rotations(t, e.kms, e, id); l[1].ImportState != types.ImportStatePendingImport {
			t.Fatalf("replica materials %+v", l)
		}
		_, err := eu.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(id)})
		wantCode(t, err, "KMSInvalidStateException")
	})
	t.Run("once every replica has it, it is PENDING_ROTATION and the primary rotates the set", func(t *testing.T) {
		importInto(t, e, e.kms, id, next, kms.ImportKeyMaterialInput{ImportType: types.ImportTypeExistingKeyMaterial})
		if l := rotations(t, eu, e, id); l[1].KeyMaterialState != types.KeyMaterialStatePendingRotation {
			t.Fatalf("materials %+v", l)
		}
		must[*kms.RotateKeyOnDemandOutput](t)(eu.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(id)}))
		for _, c := range []*kms.Client{eu, e.kms} {
			md := must[*kms.DescribeKeyOutput](t)(c.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})).KeyMetadata
			if aws.ToString(md.CurrentKeyMaterialId) != nextID {
				t.Fatalf("%s current %v", aws.ToString(md.Arn), md.CurrentKeyMaterialId)
			}
		}
	})
	t.Run("deleting material from a replica leaves the primary as it was", func(t *testing.T) {
		must[*kms.DeleteImportedKeyMaterialOutput](t)(e.kms.DeleteImportedKeyMaterial(e.ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(id)}))
		if s := describe(t, e, id).KeyMetadata.KeyState; s != types.KeyStatePendingImport {
			t.Fatalf("replica %s", s)
		}
		if md := must[*kms.DescribeKeyOutput](t)(eu.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})).KeyMetadata; md.KeyState != types.KeyStateEnabled {
			t.Fatalf("primary %s", md.KeyState)
		}
	})
}
