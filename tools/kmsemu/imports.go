package kmsemu

import (
	"bytes"
	"crypto/aes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// Imported key material (Origin EXTERNAL), as KMS documents it:
// https://docs.aws.amazon.com/kms/latest/developerguide/importing-keys.html and
// the GetParametersForImport, ImportKeyMaterial and DeleteImportedKeyMaterial
// pages of the API reference.
//
// A key's materials live in its material (shared by a multi-Region key and
// its replicas); whether a material is imported is recorded per Region,
// because each key of a multi-Region set imports it on its own. A key is
// usable (Enabled) only while every material associated with it (the first
// one and each rotation's) is imported into its Region; new material waiting
// for a rotation (staged) is not associated yet.

// importedMaterial is one key material imported into a key (set).
type importedMaterial struct {
	id          string
	description string
	in          map[string]*importRecord // Region → its import there
}

// importRecord is one import of a material into one Region's key.
type importRecord struct {
	expires bool      // ExpirationModel KEY_MATERIAL_EXPIRES
	validTo time.Time // when the material is deleted, if expires
}

func (r *importRecord) expirationModel() string {
	if r.expires {
		return "KEY_MATERIAL_EXPIRES"
	}
	return "KEY_MATERIAL_DOES_NOT_EXPIRE"
}

// associated lists the materials permanently associated with a key: the
// first one and each completed rotation's, oldest first.
func (m *material) associated() []string {
	var ids []string
	if m.initial != "" {
		ids = append(ids, m.initial)
	}
	for _, r := range m.rotations {
		ids = append(ids, r.materialID)
	}
	return ids
}

// record returns the import of material id into region, or nil.
func (m *material) record(id, region string) *importRecord {
	if im := m.imported[id]; im != nil {
		return im.in[region]
	}
	return nil
}

// allImportedIn reports whether every associated material is imported into region.
func (m *material) allImportedIn(region string) bool {
	ids := m.associated()
	if len(ids) == 0 {
		return false
	}
	for _, id := range ids {
		if m.record(id, region) == nil {
			return false
		}
	}
	return true
}

// setRegions lists the Regions of k's multi-Region key set (just k's Region
// for a single-Region key), primary first.
func setRegions(k *key) []string {
	p := k
	if k.primary != nil {
		p = k.primary
	}
	regions := []string{p.region}
	for _, r := range p.replicas {
		regions = append(regions, r.region)
	}
	return regions
}

// stagedState is the KeyMaterialState of k's staged material:
// PENDING_MULTI_REGION_IMPORT_AND_ROTATION until it is imported into every
// key of a multi-Region set, then PENDING_ROTATION; missing lists the
// Regions still without it.
func stagedState(k *key) (state string, missing []string) {
	for _, r := range setRegions(k) {
		if k.mat.record(k.mat.staged, r) == nil {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		return "PENDING_MULTI_REGION_IMPORT_AND_ROTATION", missing
	}
	return "PENDING_ROTATION", nil
}

// refreshImportState moves an imported key between Enabled/Disabled and
// PendingImport as its materials come and go in its Region ("When any key
// material for an imported key is deleted or it expires, then the state
// changes from Enabled to PendingImport", key-state.html; a successful import
// makes it Enabled). Pending deletion and transient states do not change.
func refreshImportState(k *key) {
	if k.origin != "EXTERNAL" {
		return
	}
	all := k.mat.allImportedIn(k.region)
	switch {
	case !all && (k.state == "Enabled" || k.state == "Disabled"):
		k.state = "PendingImport"
	case all && k.state == "PendingImport":
		k.state = "Enabled"
	}
}

// expireImports deletes the imports of k's Region whose ValidTo has passed:
// "When the key material expires, KMS deletes the key material from the KMS
// key" (ImportKeyMaterial, ValidTo).
func expireImports(k *key, now time.Time) {
	if k.origin != "EXTERNAL" {
		return
	}
	for _, im := range k.mat.imported {
		if r := im.in[k.region]; r != nil && r.expires && !now.Before(r.validTo) {
			delete(im.in, k.region)
		}
	}
	refreshImportState(k)
}

// materialIDFor derives a key material ID from the key ID and the material:
// "KMS assigns a unique identifier to the key material based on the KMS key
// ID and the imported key material" (ImportKeyMaterial, KeyMaterialId), so
// importing the same bytes again, or into a replica, gives the same ID.
func (s *Server) materialIDFor(keyID string, material []byte) string {
	mac := hmac.New(sha256.New, s.secret[:])
	mac.Write([]byte("key-material\x00" + keyID + "\x00"))
	mac.Write(material)
	return hex.EncodeToString(mac.Sum(nil))
}

// wrappingKeys holds one RSA key pair per wrapping key spec for the whole
// process: KMS makes a new pair for every GetParametersForImport call, but an
// RSA_4096 key takes seconds to generate and the emulator only needs the
// import token to bind the key, algorithm and expiry.
var wrappingKeys struct {
	sync.Mutex
	byBits map[int]*rsa.PrivateKey
}

func wrappingKey(bits int) (*rsa.PrivateKey, error) {
	wrappingKeys.Lock()
	defer wrappingKeys.Unlock()
	if k := wrappingKeys.byBits[bits]; k != nil {
		return k, nil
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, err
	}
	if wrappingKeys.byBits == nil {
		wrappingKeys.byBits = map[int]*rsa.PrivateKey{}
	}
	wrappingKeys.byBits[bits] = k
	return k, nil
}

var wrappingKeySpecs = map[string]int{"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}

// wrappingHash is the OAEP hash of each wrapping algorithm the emulator
// unwraps (MGF1 uses the same hash, as KMS's do).
var wrappingHash = map[string]func() hash.Hash{
	"RSAES_OAEP_SHA_1":         sha1.New,
	"RSAES_OAEP_SHA_256":       sha256.New,
	"RSA_AES_KEY_WRAP_SHA_1":   sha1.New,
	"RSA_AES_KEY_WRAP_SHA_256": sha256.New,
}

// importTokenValidity is how long a public key and import token stay valid
// (GetParametersForImport: "Each public key and import token set is valid for
// 24 hours").
const importTokenValidity = 24 * time.Hour

// importToken is what an import token carries; the token is its JSON
// followed by an HMAC under the server secret, so it cannot be forged or
// moved to another key.
type importToken struct {
	KeyARN    string `json:"k"`
	Spec      string `json:"s"`
	Algorithm string `json:"a"`
	ValidTo   int64  `json:"t"` // Unix milliseconds
	Nonce     string `json:"n"`
}

func (s *Server) sealToken(t importToken) []byte {
	body, _ := json.Marshal(t)
	mac := hmac.New(sha256.New, s.secret[:])
	mac.Write([]byte("import-token\x00"))
	mac.Write(body)
	return append(body, mac.Sum(nil)...)
}

func (s *Server) openToken(b []byte) (importToken, bool) {
	var t importToken
	if len(b) <= sha256.Size {
		return t, false
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	mac := hmac.New(sha256.New, s.secret[:])
	mac.Write([]byte("import-token\x00"))
	mac.Write(body)
	if !hmac.Equal(sum, mac.Sum(nil)) || json.Unmarshal(body, &t) != nil {
		return t, false
	}
	return t, true
}

// errOrigin is KMS's answer when an import operation names a key whose
// material is not imported (recorded 2023-10 and 2025-11 for AWS_KMS).
func errOrigin(k *key) *apiError {
	return errUnsupported("%s origin is %s which is not valid for this operation.", k.arn, k.origin)
}

// checkImportable is the key-state table's answer for GetParametersForImport
// and ImportKeyMaterial: allowed on Enabled, Disabled and PendingImport keys.
func checkImportable(k *key) *apiError {
	if k.origin != "EXTERNAL" {
		return errOrigin(k)
	}
	switch k.state {
	case "Enabled", "Disabled", "PendingImport":
		return nil
	}
	return stateError(k)
}

// GetParametersForImport: https://docs.aws.amazon.com/kms/latest/APIReference/API_GetParametersForImport.html
// WrappingKeySpec RSA_2048/3072/4096 and WrappingAlgorithm RSAES_OAEP_SHA_1,
// RSAES_OAEP_SHA_256, RSA_AES_KEY_WRAP_SHA_1 or RSA_AES_KEY_WRAP_SHA_256; the
// public key is DER (SubjectPublicKeyInfo), the token and key expire 24 hours
// later by the emulator's clock.
func (s *Server) getParametersForImport(c *call, body []byte) (any, *apiError) {
	var in struct {
		KeyID             *string `json:"KeyId"`
		WrappingAlgorithm *string `json:"WrappingAlgorithm"`
		WrappingKeySpec   *string `json:"WrappingKeySpec"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	k, err := s.resolve(c, in.KeyID, lookupOpts{})
	if err != nil {
		return nil, err
	}
	if in.WrappingAlgorithm == nil {
		return nil, errValidation("1 validation error detected: Value null at 'wrappingAlgorithm' failed to satisfy constraint: Member must not be null")
	}
	if in.WrappingKeySpec == nil {
		return nil, errValidation("1 validation error detected: Value null at 'wrappingKeySpec' failed to satisfy constraint: Member must not be null")
	}
	alg, spec := *in.WrappingAlgorithm, *in.WrappingKeySpec
	switch alg {
	case "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256":
	case "RSAES_PKCS1_V1_5":
		return nil, errUnsupported("The RSAES_PKCS1_V1_5 wrapping algorithm is no longer supported.")
	case "SM2PKE":
		return nil, errUnsupported("The SM2PKE wrapping algorithm is supported only in China Regions.")
	default:
		return nil, errValidation("1 validation error detected: Value '%s' at 'wrappingAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [RSAES_PKCS1_V1_5, RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, RSA_AES_KEY_WRAP_SHA_1, RSA_AES_KEY_WRAP_SHA_256, SM2PKE]", alg)
	}
	bits, ok := wrappingKeySpecs[spec]
	if !ok {
		if spec == "SM2" {
			return nil, errUnsupported("The SM2 wrapping key spec is supported only in China Regions.")
		}
		return nil, errValidation("1 validation error detected: Value '%s' at 'wrappingKeySpec' failed to satisfy constraint: Member must satisfy enum value set: [RSA_2048, RSA_3072, RSA_4096, SM2]", spec)
	}
	if err := checkImportable(k); err != nil {
		return nil, err
	}
	priv, gerr := wrappingKey(bits)
	if gerr != nil {
		return nil, errf(500, "KMSInternalException", "generate the wrapping key: %v", gerr)
	}
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	validTo := c.now.Add(importTokenValidity)
	token := s.sealToken(importToken{KeyARN: k.arn, Spec: spec, Algorithm: alg, ValidTo: validTo.UnixMilli(), Nonce: uuidFrom(s.idRNG)})
	return struct {
		KeyID             string   `json:"KeyId"`
		ImportToken       []byte   `json:"ImportToken"`
		PublicKey         []byte   `json:"PublicKey"`
		ParametersValidTo *float64 `json:"ParametersValidTo"`
	}{k.arn, token, der, epoch(validTo)}, nil
}

var (
	materialIDPattern   = regexp.MustCompile(`^[a-f0-9]{64}$`)
	materialDescPattern = regexp.MustCompile(`^[a-zA-Z0-9:/_\s.-]+$`)
)

// ImportKeyMaterial: https://docs.aws.amazon.com/kms/latest/APIReference/API_ImportKeyMaterial.html
//
// The material is unwrapped with the private key the token names.
// Symmetric encryption keys take 32 bytes and several materials: the first
// import makes the key Enabled; NEW_KEY_MATERIAL after that stages new
// material for RotateKeyOnDemand (PENDING_ROTATION, or
// PENDING_MULTI_REGION_IMPORT_AND_ROTATION until every replica has it: new
// material goes into the primary, replicas import the same bytes as
// EXISTING_KEY_MATERIAL); EXISTING_KEY_MATERIAL re-imports a material the key
// already has (after deletion or expiry, or to change its expiration). HMAC
// and asymmetric keys take one material of their kind, once.
//
// Errors, with KMS's types: a token that is not one, or is for another key,
// InvalidImportTokenException; a token older than 24 hours
// ExpiredImportTokenException; material that does not unwrap
// InvalidCiphertextException; material of the wrong size or kind, new
// material the key already has, or existing material it does not have,
// IncorrectKeyMaterialException; a KeyMaterialId the key does not have
// NotFoundException; new material while other material waits for a rotation
// KMSInvalidStateException (AWS's words, recorded 2025-11).
func (s *Server) importKeyMaterial(c *call, body []byte) (any, *apiError) {
	var in struct {
		KeyID                  *string  `json:"KeyId"`
		ImportToken            []byte   `json:"ImportToken"`
		EncryptedKeyMaterial   []byte   `json:"EncryptedKeyMaterial"`
		ValidTo                *float64 `json:"ValidTo"`
		ExpirationModel        *string  `json:"ExpirationModel"`
		ImportType             *string  `json:"ImportType"`
		KeyMaterialDescription *string  `json:"KeyMaterialDescription"`
		KeyMaterialID          *string  `json:"KeyMaterialId"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	k, err := s.resolve(c, in.KeyID, lookupOpts{})
	if err != nil {
		return nil, err
	}
	if len(in.ImportToken) == 0 {
		return nil, errValidation("1 validation error detected: Value null at 'importToken' failed to satisfy constraint: Member must not be null")
	}
	if len(in.EncryptedKeyMaterial) == 0 {
		return nil, errValidation("1 validation error detected: Value null at 'encryptedKeyMaterial' failed to satisfy constraint: Member must not be null")
	}
	if err := checkImportable(k); err != nil {
		return nil, err
	}
	// The expiration: KEY_MATERIAL_EXPIRES (the default) needs a ValidTo in
	// the next 365 days; KEY_MATERIAL_DOES_NOT_EXPIRE takes none.
	rec := &importRecord{expires: true}
	if in.ExpirationModel != nil {
		switch *in.ExpirationModel {
		case "KEY_MATERIAL_EXPIRES":
		case "KEY_MATERIAL_DOES_NOT_EXPIRE":
			rec.expires = false
		default:
			return nil, errValidation("1 validation error detected: Value '%s' at 'expirationModel' failed to satisfy constraint: Member must satisfy enum value set: [KEY_MATERIAL_EXPIRES, KEY_MATERIAL_DOES_NOT_EXPIRE]", *in.ExpirationModel)
		}
	}
	switch {
	case rec.expires && in.ValidTo == nil:
		// AWS's words (recorded 2025-11).
		return nil, errValidation("A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES")
	case !rec.expires && in.ValidTo != nil:
		return nil, errValidation("A validTo date must not be set if the ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE")
	case rec.expires:
		rec.validTo = time.UnixMilli(int64(*in.ValidTo * 1000)).UTC()
		if !rec.validTo.After(c.now) || rec.validTo.After(c.now.AddDate(0, 0, 365)) {
			return nil, errValidation("ValidTo must be a future date and time no more than 365 days from now.")
		}
	}
	importType := ""
	if in.ImportType != nil {
		importType = *in.ImportType
		if importType != "NEW_KEY_MATERIAL" && importType != "EXISTING_KEY_MATERIAL" {
			return nil, errValidation("1 validation error detected: Value '%s' at 'importType' failed to satisfy constraint: Member must satisfy enum value set: [NEW_KEY_MATERIAL, EXISTING_KEY_MATERIAL]", importType)
		}
	}
	if in.KeyMaterialDescription != nil {
		d := *in.KeyMaterialDescription
		if len(d) > 256 || (d != "" && !materialDescPattern.MatchString(d)) {
			return nil, errValidation("1 validation error detected: Value '%s' at 'keyMaterialDescription' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_\\s.-]+$ and have length less than or equal to 256", d)
		}
	}
	if in.KeyMaterialID != nil {
		if !materialIDPattern.MatchString(*in.KeyMaterialID) {
			return nil, errValidation("1 validation error detected: Value '%s' at 'keyMaterialId' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-f0-9]+$ and have length 64", *in.KeyMaterialID)
		}
		if importType == "NEW_KEY_MATERIAL" {
			return nil, errValidation("You cannot specify a key material ID with ImportType set to NEW_KEY_MATERIAL.")
		}
	}

	// The token, then the material.
	tok, ok := s.openToken(in.ImportToken)
	if !ok || tok.KeyARN != k.arn {
		return nil, errf(400, "InvalidImportTokenException", "The import token is invalid or is associated with a different KMS key.")
	}
	if !c.now.Before(time.UnixMilli(tok.ValidTo)) {
		return nil, errf(400, "ExpiredImportTokenException", "The import token expired at %s. Use GetParametersForImport to get a new public key and import token.", time.UnixMilli(tok.ValidTo).UTC().Format(time.RFC3339))
	}
	priv, gerr := wrappingKey(wrappingKeySpecs[tok.Spec])
	if gerr != nil {
		return nil, errf(500, "KMSInternalException", "wrapping key: %v", gerr)
	}
	material, uerr := unwrapKeyMaterial(priv, tok.Algorithm, in.EncryptedKeyMaterial)
	if uerr != nil {
		return nil, errf(400, "InvalidCiphertextException", "The key material could not be unwrapped with the %s wrapping key and the %s algorithm of this import token: %v.", tok.Spec, tok.Algorithm, uerr)
	}
	if err := checkMaterial(k.spec, material); err != nil {
		return nil, errf(400, "IncorrectKeyMaterialException", "The key material is not valid for a %s key: %v.", k.spec, err)
	}

	m := k.mat
	id := s.materialIDFor(k.id, material)
	if in.KeyMaterialID != nil {
		if m.imported[*in.KeyMaterialID] == nil {
			return nil, errNotFound("Key material (id: %s) is not associated with KMS key %s.", *in.KeyMaterialID, k.arn)
		}
		if *in.KeyMaterialID != id {
			return nil, errf(400, "IncorrectKeyMaterialException", "The key material being imported is not key material %s of KMS key %s.", *in.KeyMaterialID, k.arn)
		}
	}
	if importType == "" {
		// "If no key material has ever been imported into the KMS key, and
		// this parameter is omitted, the parameter defaults to
		// NEW_KEY_MATERIAL. After the first key material is imported, ...
		// EXISTING_KEY_MATERIAL." A replica only ever takes its primary's.
		importType = "EXISTING_KEY_MATERIAL"
		if len(m.imported) == 0 && k.mrType != "REPLICA" {
			importType = "NEW_KEY_MATERIAL"
		}
	}
	im := m.imported[id]
	switch importType {
	case "NEW_KEY_MATERIAL":
		switch {
		case k.mrType == "REPLICA":
			return nil, errUnsupported("New key material can be imported into the primary Region key only; import the same key material into %s with ImportType EXISTING_KEY_MATERIAL.", k.arn)
		case m.staged != "":
			// AWS's words (recorded 2025-11).
			return nil, errInvalidState("New key material (id: %s) cannot be imported into KMS key %s, because another key material (id: %s) is pending rotation.", id, k.arn, m.staged)
		case im != nil:
			return nil, errf(400, "IncorrectKeyMaterialException", "Key material (id: %s) is already associated with KMS key %s: import it with ImportType EXISTING_KEY_MATERIAL.", id, k.arn)
		case m.initial != "" && !isSymmetricEncryption(k):
			return nil, errf(400, "IncorrectKeyMaterialException", "%s already has key material: a %s key cannot take new key material.", k.arn, k.spec)
		}
		im = &importedMaterial{id: id, in: map[string]*importRecord{}}
		if m.imported == nil {
			m.imported = map[string]*importedMaterial{}
		}
		m.imported[id] = im
		if m.initial == "" {
			m.initial, m.current = id, id
		} else {
			m.staged = id
		}
	case "EXISTING_KEY_MATERIAL":
		if im == nil {
			return nil, errf(400, "IncorrectKeyMaterialException", "The key material is not the same as key material previously imported into KMS key %s.", k.arn)
		}
	}
	if in.KeyMaterialDescription != nil {
		im.description = *in.KeyMaterialDescription
	}
	im.in[k.region] = rec
	refreshImportState(k)
	return struct {
		KeyID         string `json:"KeyId"`
		KeyMaterialID string `json:"KeyMaterialId"`
	}{k.arn, id}, nil
}

// DeleteImportedKeyMaterial: https://docs.aws.amazon.com/kms/latest/APIReference/API_DeleteImportedKeyMaterial.html
// Deletes the current material, or the one KeyMaterialId names, from the
// key's Region; the key becomes PendingImport (unless pending deletion) and
// keeps its CurrentKeyMaterialId (recorded 2025-11). Staged material deleted
// from the primary is gone from the whole set (it was never associated with
// the key, so the key's state does not change); from a replica, only that
// replica's copy goes.
func (s *Server) deleteImportedKeyMaterial(c *call, body []byte) (any, *apiError) {
	var in struct {
		KeyID         *string `json:"KeyId"`
		KeyMaterialID *string `json:"KeyMaterialId"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	k, err := s.resolve(c, in.KeyID, lookupOpts{})
	if err != nil {
		return nil, err
	}
	if k.origin != "EXTERNAL" {
		return nil, errOrigin(k)
	}
	switch k.state {
	case "Enabled", "Disabled", "PendingImport", "PendingDeletion":
	default:
		return nil, stateError(k)
	}
	m := k.mat
	id := m.current
	if in.KeyMaterialID != nil {
		id = *in.KeyMaterialID
		if !materialIDPattern.MatchString(id) {
			return nil, errValidation("1 validation error detected: Value '%s' at 'keyMaterialId' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-f0-9]+$ and have length 64", id)
		}
		if m.imported[id] == nil {
			return nil, errNotFound("Key material (id: %s) is not associated with KMS key %s.", id, k.arn)
		}
	}
	type output struct {
		KeyID         string `json:"KeyId"`
		KeyMaterialID string `json:"KeyMaterialId,omitempty"`
	}
	if id == "" { // no material was ever imported: nothing to delete
		return output{KeyID: k.arn}, nil
	}
	if id == m.staged && k.mrType != "REPLICA" {
		if m.onDemandPending == id {
			return nil, errInvalidState("Key material (id: %s) of %s cannot be deleted while the on-demand rotation to it is in progress.", id, k.arn)
		}
		delete(m.imported, id)
		m.staged = ""
		return output{k.arn, id}, nil
	}
	if im := m.imported[id]; im != nil {
		delete(im.in, k.region)
	}
	if id != m.staged && k.state != "PendingDeletion" {
		// DeleteImportedKeyMaterial: "Otherwise, it changes the KMS key's
		// state to PendingImport."
		k.state = "PendingImport"
	}
	refreshImportState(k)
	return output{k.arn, id}, nil
}

// checkMaterial checks that unwrapped material fits the key spec: 256 bits
// for symmetric encryption keys, the HMAC key lengths KMS accepts, a PKCS#8
// private key of the right kind and size for RSA and NIST ECC keys
// (https://docs.aws.amazon.com/kms/latest/developerguide/importing-keys-conceptual.html#importing-keys-supported-key-specs).
// Other key specs are taken as they come (the emulator does no cryptography
// with them).
func checkMaterial(spec string, b []byte) error {
	hmacLen := map[string][2]int{"HMAC_224": {28, 64}, "HMAC_256": {32, 64}, "HMAC_384": {48, 128}, "HMAC_512": {64, 128}}
	switch {
	case spec == "SYMMETRIC_DEFAULT":
		if len(b) != 32 {
			return fmt.Errorf("it is %d bytes, not 32 (256 bits)", len(b))
		}
	case strings.HasPrefix(spec, "HMAC_"):
		r := hmacLen[spec]
		if len(b) < r[0] || len(b) > r[1] {
			return fmt.Errorf("it is %d bytes, not %d-%d", len(b), r[0], r[1])
		}
	case strings.HasPrefix(spec, "RSA_"), strings.HasPrefix(spec, "ECC_NIST_P"):
		priv, err := x509.ParsePKCS8PrivateKey(b)
		if err != nil {
			return fmt.Errorf("it is not a PKCS#8 private key: %v", err)
		}
		want := map[string]elliptic.Curve{"ECC_NIST_P256": elliptic.P256(), "ECC_NIST_P384": elliptic.P384(), "ECC_NIST_P521": elliptic.P521()}
		switch p := priv.(type) {
		case *rsa.PrivateKey:
			if fmt.Sprintf("RSA_%d", p.N.BitLen()) != spec {
				return fmt.Errorf("it is a %d-bit RSA key", p.N.BitLen())
			}
		case *ecdsa.PrivateKey:
			if want[spec] != p.Curve {
				return fmt.Errorf("it is a key on curve %s", p.Curve.Params().Name)
			}
		default:
			return fmt.Errorf("it is a %T", priv)
		}
	case len(b) == 0:
		return errors.New("it is empty")
	}
	return nil
}

// unwrapKeyMaterial undoes the wrapping of alg with priv: RSA-OAEP of the
// material itself, or (RSA_AES_KEY_WRAP_*) RSA-OAEP of an ephemeral AES key
// followed by the material wrapped with that key by AES key wrap with padding
// (RFC 5649)
// (https://docs.aws.amazon.com/kms/latest/developerguide/importing-keys-get-public-key-and-token.html#select-wrapping-algorithm).
func unwrapKeyMaterial(priv *rsa.PrivateKey, alg string, wrapped []byte) ([]byte, error) {
	h := wrappingHash[alg]
	if h == nil {
		return nil, fmt.Errorf("unknown wrapping algorithm %s", alg)
	}
	if !strings.HasPrefix(alg, "RSA_AES_KEY_WRAP_") {
		return rsa.DecryptOAEP(h(), nil, priv, wrapped, nil)
	}
	n := priv.Size()
	if len(wrapped) <= n {
		return nil, fmt.Errorf("%d bytes is too short for an RSA-wrapped AES key followed by wrapped material", len(wrapped))
	}
	aesKey, err := rsa.DecryptOAEP(h(), nil, priv, wrapped[:n], nil)
	if err != nil {
		return nil, fmt.Errorf("the AES key: %w", err)
	}
	return aesKeyUnwrapPad(aesKey, wrapped[n:])
}

// kwpIV is the alternative initial value of RFC 5649, section 3.
var kwpIV = []byte{0xA6, 0x59, 0x59, 0xA6}

// aesKeyUnwrapPad is AES key unwrap with padding (RFC 5649, section 4.2).
func aesKeyUnwrapPad(kek, c []byte) ([]byte, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(c) < 16 || len(c)%8 != 0 {
		return nil, fmt.Errorf("wrapped key of %d bytes: not a multiple of 8 of at least 16", len(c))
	}
	n := len(c)/8 - 1
	var a [8]byte
	r := make([]byte, 8*n)
	var b [16]byte
	if n == 1 {
		block.Decrypt(b[:], c)
		copy(a[:], b[:8])
		copy(r, b[8:])
	} else {
		// The unwrapping process W^-1 of RFC 3394, section 2.2.2.
		copy(a[:], c[:8])
		copy(r, c[8:])
		for j := 5; j >= 0; j-- {
			for i := n; i >= 1; i-- {
				t := uint64(n*j + i)
				binary.BigEndian.PutUint64(b[:8], binary.BigEndian.Uint64(a[:])^t)
				copy(b[8:], r[8*(i-1):8*i])
				block.Decrypt(b[:], b[:])
				copy(a[:], b[:8])
				copy(r[8*(i-1):], b[8:])
			}
		}
	}
	if !bytes.Equal(a[:4], kwpIV) {
		return nil, errors.New("integrity check failed (wrong AES key or not RFC 5649 wrapped)")
	}
	mli := int(binary.BigEndian.Uint32(a[4:]))
	if mli <= 8*(n-1) || mli > 8*n {
		return nil, errors.New("integrity check failed (bad length)")
	}
	for _, p := range r[mli:] {
		if p != 0 {
			return nil, errors.New("integrity check failed (non-zero padding)")
		}
	}
	return r[:mli], nil
}

// sortedRegions is for messages.
func sortedRegions(rs []string) string {
	rs = append([]string(nil), rs...)
	sort.Strings(rs)
	return strings.Join(rs, ", ")
}
