package kmsemu_test

import (
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

// TestImportMaterialWrappedByOtherClients imports material wrapped the way
// the KMS Developer Guide shows it with OpenSSL, and with Python's
// cryptography package, when they are installed (skipped otherwise): the
// emulator must take what real clients send.
func TestImportMaterialWrappedByOtherClients(t *testing.T) {
	e := start(t, kmsemu.Options{}, "")
	importWith := func(t *testing.T, alg types.AlgorithmSpec, wrap func(dir, pub, material string) []byte) {
		t.Helper()
		k := createExternal(t, e, e.kms, kms.CreateKeyInput{})
		p := must[*kms.GetParametersForImportOutput](t)(e.kms.GetParametersForImport(e.ctx, &kms.GetParametersForImportInput{KeyId: k.KeyId, WrappingKeySpec: types.WrappingKeySpecRsa2048, WrappingAlgorithm: alg}))
		dir := t.TempDir()
		pub, material := filepath.Join(dir, "WrappingPublicKey.bin"), filepath.Join(dir, "PlaintextKeyMaterial.bin")
		if err := os.WriteFile(pub, p.PublicKey, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(material, newMaterial(t, 32), 0o600); err != nil {
			t.Fatal(err)
		}
		wrapped := wrap(dir, pub, material)
		must[*kms.ImportKeyMaterialOutput](t)(e.kms.ImportKeyMaterial(e.ctx, &kms.ImportKeyMaterialInput{KeyId: k.KeyId, ImportToken: p.ImportToken, EncryptedKeyMaterial: wrapped, ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire}))
		if s := describe(t, e, *k.KeyId).KeyMetadata.KeyState; s != types.KeyStateEnabled {
			t.Fatalf("state %s after import", s)
		}
		must[*kms.EncryptOutput](t)(e.kms.Encrypt(e.ctx, &kms.EncryptInput{KeyId: k.KeyId, Plaintext: []byte("x")}))
	}
	run := func(t *testing.T, name string, args ...string) []byte {
		t.Helper()
		out, err := exec.Command(name, args...).Output()
		if err != nil {
			t.Fatalf("%s %v: %v", name, args, err)
		}
		return out
	}
	read := func(t *testing.T, path string) []byte {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Run("OpenSSL", func(t *testing.T) {
		if _, err := exec.LookPath("openssl"); err != nil {
			t.Skip("openssl is not installed")
		}
		for _, c := range []struct {
			alg types.AlgorithmSpec
			md  string
		}{{types.AlgorithmSpecRsaesOaepSha1, "sha1"}, {types.AlgorithmSpecRsaesOaepSha256, "sha256"}} {
			t.Run(string(c.alg), func(t *testing.T) {
				importWith(t, c.alg, func(dir, pub, material string) []byte {
					out := filepath.Join(dir, "EncryptedKeyMaterial.bin")
					run(t, "openssl", "pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", pub, "-in", material, "-out", out,
						"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:"+c.md, "-pkeyopt", "rsa_mgf1_md:"+c.md)
					return read(t, out)
				})
			})
		}
		t.Run("RSA_AES_KEY_WRAP_SHA_256", func(t *testing.T) {
			importWith(t, types.AlgorithmSpecRsaAesKeyWrapSha256, func(dir, pub, material string) []byte {
				aesKey, wrappedKey, wrappedMaterial := filepath.Join(dir, "aes-key.bin"), filepath.Join(dir, "EncryptedAESKey.bin"), filepath.Join(dir, "EncryptedMaterial.bin")
				run(t, "openssl", "rand", "-out", aesKey, "32")
				run(t, "openssl", "enc", "-id-aes256-wrap-pad", "-K", hex.EncodeToString(read(t, aesKey)), "-iv", "A65959A6", "-in", material, "-out", wrappedMaterial)
				run(t, "openssl", "pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", pub, "-in", aesKey, "-out", wrappedKey,
					"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256")
				return append(read(t, wrappedKey), read(t, wrappedMaterial)...)
			})
		})
	})
	t.Run("Python cryptography", func(t *testing.T) {
		if _, err := exec.LookPath("python3"); err != nil {
			t.Skip("python3 is not installed")
		}
		if err := exec.Command("python3", "-c", "import cryptography").Run(); err != nil {
			t.Skip("Python's cryptography package is not installed")
		}
		const script = `import os, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding
pub = serialization.load_der_public_key(open(sys.argv[1], "rb").read())
material = open(sys.argv[2], "rb").read()
oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
if sys.argv[3] == "RSAES_OAEP_SHA_256":
    out = pub.encrypt(material, oaep)
else:
    aes_key = os.urandom(32)
    out = pub.encrypt(aes_key, oaep) + aes_key_wrap_with_padding(aes_key, material)
sys.stdout.buffer.write(out)
`
		for _, alg := range []types.AlgorithmSpec{types.AlgorithmSpecRsaesOaepSha256, types.AlgorithmSpecRsaAesKeyWrapSha256} {
			t.Run(string(alg), func(t *testing.T) {
				importWith(t, alg, func(dir, pub, material string) []byte {
					return run(t, "python3", "-c", script, pub, material, string(alg))
				})
			})
		}
	})
}
