package kmsemu

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"sort"
)

// The emulated ciphertext names its key and key material, as KMS's does
// (https://docs.aws.amazon.com/kms/latest/developerguide/rotate-keys.html:
// "KMS uses the key material that was used to encrypt the ciphertext"), so
// data encrypted before a rotation still decrypts after it:
//
//	version(1) | len(keyID)(1) | keyID | materialID(32) | nonce(12) | AES-GCM(plaintext)
//
// The AES key is derived from the server secret, the key ID and the material
// ID; the encryption context is the additional authenticated data. It is an
// emulation: not a secure key store.
const ciphertextVersion = 1

func (s *Server) aead(keyID string, materialID []byte) cipher.AEAD {
	mac := hmac.New(sha256.New, s.secret[:])
	mac.Write([]byte(keyID))
	mac.Write(materialID)
	block, _ := aes.NewCipher(mac.Sum(nil)) // a 32-byte key cannot fail
	gcm, _ := cipher.NewGCM(block)
	return gcm
}

func contextAAD(ec map[string]string) []byte {
	keys := make([]string, 0, len(ec))
	for k := range ec {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []byte
	for _, k := range keys {
		out = append(out, k...)
		out = append(out, 0)
		out = append(out, ec[k]...)
		out = append(out, 0)
	}
	return out
}

func checkAlgorithm(alg *string) *apiError {
	if alg != nil && *alg != "SYMMETRIC_DEFAULT" {
		return errf(400, "InvalidKeyUsageException", "Encryption algorithm %s is not supported by a symmetric encryption key.", *alg)
	}
	return nil
}

// usableForEncryption checks key usage, spec and state for Encrypt/Decrypt
// (op names the operation in KMS's message).
func usableForEncryption(k *key, op string) *apiError {
	if k.usage != "ENCRYPT_DECRYPT" {
		return errf(400, "InvalidKeyUsageException", "%s key usage is %s which is not valid for %s.", k.arn, k.usage, op)
	}
	if k.spec != "SYMMETRIC_DEFAULT" {
		// A limitation of the emulator, not of KMS: no asymmetric cryptography here.
		return errUnsupported("the emulator encrypts with symmetric keys only, not %s", k.spec)
	}
	return checkEnabled(k)
}

// Encrypt: https://docs.aws.amazon.com/kms/latest/APIReference/API_Encrypt.html
// Plaintext 1–4096 bytes, with the key's current key material.
func (s *Server) encrypt(c *call, body []byte) (any, *apiError) {
	var in struct {
		KeyID               *string           `json:"KeyId"`
		Plaintext           []byte            `json:"Plaintext"`
		EncryptionContext   map[string]string `json:"EncryptionContext"`
		EncryptionAlgorithm *string           `json:"EncryptionAlgorithm"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	k, err := s.resolve(c, in.KeyID, lookupOpts{alias: true})
	if err != nil {
		return nil, err
	}
	if len(in.Plaintext) < 1 {
		return nil, errValidation("1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	if len(in.Plaintext) > 4096 {
		return nil, errValidation("1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length less than or equal to 4096")
	}
	if err := checkAlgorithm(in.EncryptionAlgorithm); err != nil {
		return nil, err
	}
	if err := usableForEncryption(k, c.op); err != nil {
		return nil, err
	}
	mat, _ := hex.DecodeString(k.mat.current)
	nonce := make([]byte, 12)
	for i := range nonce {
		nonce[i] = byte(s.idRNG.Uint32())
	}
	blob := []byte{ciphertextVersion, byte(len(k.id))}
	blob = append(blob, k.id...)
	blob = append(blob, mat...)
	blob = append(blob, nonce...)
	blob = s.aead(k.id, mat).Seal(blob, nonce, in.Plaintext, contextAAD(in.EncryptionContext))
	s.recordUse(c, k)
	return struct {
		CiphertextBlob      []byte `json:"CiphertextBlob"`
		KeyID               string `json:"KeyId"`
		EncryptionAlgorithm string `json:"EncryptionAlgorithm"`
	}{blob, k.arn, "SYMMETRIC_DEFAULT"}, nil
}

// Decrypt: https://docs.aws.amazon.com/kms/latest/APIReference/API_Decrypt.html
// The key comes from the ciphertext; a KeyId, when given, must name the same
// key (IncorrectKeyException). A ciphertext that is not ours, was altered or
// has another encryption context is InvalidCiphertextException.
func (s *Server) decrypt(c *call, body []byte) (any, *apiError) {
	var in struct {
		CiphertextBlob      []byte            `json:"CiphertextBlob"`
		KeyID               *string           `json:"KeyId"`
		EncryptionContext   map[string]string `json:"EncryptionContext"`
		EncryptionAlgorithm *string           `json:"EncryptionAlgorithm"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if len(in.CiphertextBlob) < 1 || len(in.CiphertextBlob) > 6144 {
		return nil, errValidation("1 validation error detected: Value at 'ciphertextBlob' failed to satisfy constraint: Member must have length between 1 and 6144")
	}
	if err := checkAlgorithm(in.EncryptionAlgorithm); err != nil {
		return nil, err
	}
	// AWS answers InvalidCiphertextException without any message (recorded
	// 2025-09 and 2026-02): it does not say what is wrong.
	invalid := errf(400, "InvalidCiphertextException", "")
	b := in.CiphertextBlob
	if len(b) < 2 || b[0] != ciphertextVersion || len(b) < 2+int(b[1])+32+12+16 {
		return nil, invalid
	}
	keyID := string(b[2 : 2+int(b[1])])
	rest := b[2+int(b[1]):]
	mat, nonce, sealed := rest[:32], rest[32:44], rest[44:]
	if !keyIDPattern.MatchString(keyID) {
		return nil, invalid
	}
	var k *key
	if in.KeyID != nil {
		named, err := s.resolve(c, in.KeyID, lookupOpts{alias: true})
		if err != nil {
			return nil, err
		}
		if named.id != keyID {
			return nil, errf(400, "IncorrectKeyException", "The key ID in the request does not identify a CMK that can perform this operation.")
		}
		k = named
	} else {
		var err *apiError
		if k, err = s.resolve(c, &keyID, lookupOpts{}); err != nil {
			return nil, err
		}
	}
	if err := usableForEncryption(k, c.op); err != nil {
		return nil, err
	}
	if !k.mat.has(hex.EncodeToString(mat)) {
		return nil, invalid
	}
	plain, err := s.aead(k.id, mat).Open(nil, nonce, sealed, contextAAD(in.EncryptionContext))
	if err != nil {
		return nil, invalid
	}
	s.recordUse(c, k)
	return struct {
		KeyID               string `json:"KeyId"`
		Plaintext           []byte `json:"Plaintext"`
		EncryptionAlgorithm string `json:"EncryptionAlgorithm"`
		KeyMaterialID       string `json:"KeyMaterialId"`
	}{k.arn, plain, "SYMMETRIC_DEFAULT", hex.EncodeToString(mat)}, nil
}
