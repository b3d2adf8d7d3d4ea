package emutest

import (
	"context"
	"crypto/aes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"hash"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// WrapKeyMaterial wraps key material for ImportKeyMaterial the way a client
// does with the public key GetParametersForImport returned (DER,
// SubjectPublicKeyInfo): RSA-OAEP with SHA-1 or SHA-256 (RSAES_OAEP_SHA_*),
// or RSA-OAEP of a fresh 256-bit AES key followed by the material wrapped
// with it by AES key wrap with padding, RFC 5649 (RSA_AES_KEY_WRAP_SHA_*)
// (https://docs.aws.amazon.com/kms/latest/developerguide/importing-keys-get-public-key-and-token.html).
func WrapKeyMaterial(publicKeyDER []byte, algorithm types.AlgorithmSpec, material []byte) ([]byte, error) {
	pub, err := x509.ParsePKIXPublicKey(publicKeyDER)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key is a %T, not RSA", pub)
	}
	var h func() hash.Hash
	switch algorithm {
	case types.AlgorithmSpecRsaesOaepSha1, types.AlgorithmSpecRsaAesKeyWrapSha1:
		h = sha1.New
	case types.AlgorithmSpecRsaesOaepSha256, types.AlgorithmSpecRsaAesKeyWrapSha256:
		h = sha256.New
	default:
		return nil, fmt.Errorf("wrapping algorithm %s is not supported here", algorithm)
	}
	if algorithm == types.AlgorithmSpecRsaesOaepSha1 || algorithm == types.AlgorithmSpecRsaesOaepSha256 {
		return rsa.EncryptOAEP(h(), rand.Reader, rsaPub, material, nil)
	}
	aesKey := make([]byte, 32)
	if _, err := rand.Read(aesKey); err != nil {
		return nil, err
	}
	wrappedKey, err := rsa.EncryptOAEP(h(), rand.Reader, rsaPub, aesKey, nil)
	if err != nil {
		return nil, err
	}
	wrapped, err := AESKeyWrapPad(aesKey, material)
	if err != nil {
		return nil, err
	}
	return append(wrappedKey, wrapped...), nil
}

// AESKeyWrapPad is AES key wrap with padding (RFC 5649, section 4.1).
func AESKeyWrapPad(kek, plaintext []byte) ([]byte, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(plaintext) == 0 {
		return nil, fmt.Errorf("nothing to wrap")
	}
	n := (len(plaintext) + 7) / 8
	r := make([]byte, 8*n) // zero padded
	copy(r, plaintext)
	var a [8]byte
	copy(a[:], []byte{0xA6, 0x59, 0x59, 0xA6})
	binary.BigEndian.PutUint32(a[4:], uint32(len(plaintext)))
	var b [16]byte
	if n == 1 {
		copy(b[:8], a[:])
		copy(b[8:], r)
		block.Encrypt(b[:], b[:])
		return b[:], nil
	}
	// The wrapping process W of RFC 3394, section 2.2.1.
	for j := 0; j <= 5; j++ {
		for i := 1; i <= n; i++ {
			copy(b[:8], a[:])
			copy(b[8:], r[8*(i-1):8*i])
			block.Encrypt(b[:], b[:])
			binary.BigEndian.PutUint64(a[:], binary.BigEndian.Uint64(b[:8])^uint64(n*j+i))
			copy(r[8*(i-1):], b[8:])
		}
	}
	return append(a[:], r...), nil
}

// ImportKeyMaterial runs a whole import into keyID with c: GetParametersForImport
// with params (WrappingKeySpec RSA_4096 and WrappingAlgorithm
// RSA_AES_KEY_WRAP_SHA_256 when empty), WrapKeyMaterial with the public key
// it returns, then ImportKeyMaterial with the token, the wrapped material and
// in's other fields (ImportType, ExpirationModel, ValidTo,
// KeyMaterialDescription, KeyMaterialId; ExpirationModel is
// KEY_MATERIAL_DOES_NOT_EXPIRE when in sets neither it nor ValidTo). It
// returns the KeyMaterialId KMS assigned.
func ImportKeyMaterial(ctx context.Context, c *kms.Client, keyID string, material []byte, params kms.GetParametersForImportInput, in kms.ImportKeyMaterialInput) (string, error) {
	params.KeyId = aws.String(keyID)
	if params.WrappingKeySpec == "" {
		params.WrappingKeySpec = types.WrappingKeySpecRsa4096
	}
	if params.WrappingAlgorithm == "" {
		params.WrappingAlgorithm = types.AlgorithmSpecRsaAesKeyWrapSha256
	}
	p, err := c.GetParametersForImport(ctx, &params)
	if err != nil {
		return "", err
	}
	wrapped, err := WrapKeyMaterial(p.PublicKey, params.WrappingAlgorithm, material)
	if err != nil {
		return "", err
	}
	in.KeyId, in.ImportToken, in.EncryptedKeyMaterial = aws.String(keyID), p.ImportToken, wrapped
	if in.ExpirationModel == "" && in.ValidTo == nil {
		in.ExpirationModel = types.ExpirationModelTypeKeyMaterialDoesNotExpire
	}
	out, err := c.ImportKeyMaterial(ctx, &in)
	if err != nil {
		return "", err
	}
	return aws.ToString(out.KeyMaterialId), nil
}
