package kmsemu

import (
	"encoding/base64"
	"sort"
	"strings"
)

// The JSON shapes of the KMS API reference
// (https://docs.aws.amazon.com/kms/latest/APIReference/API_KeyMetadata.html and
// the operation pages). Timestamps are *float64 epoch seconds.

type keyMetadataJSON struct {
	AWSAccountID                string     `json:"AWSAccountId"`
	KeyID                       string     `json:"KeyId"`
	Arn                         string     `json:"Arn"`
	CreationDate                *float64   `json:"CreationDate,omitempty"`
	Enabled                     bool       `json:"Enabled"`
	Description                 string     `json:"Description"`
	KeyUsage                    string     `json:"KeyUsage"`
	KeyState                    string     `json:"KeyState"`
	DeletionDate                *float64   `json:"DeletionDate,omitempty"`
	PendingDeletionWindowInDays *int       `json:"PendingDeletionWindowInDays,omitempty"`
	Origin                      string     `json:"Origin"`
	CustomKeyStoreID            string     `json:"CustomKeyStoreId,omitempty"`
	CloudHsmClusterID           string     `json:"CloudHsmClusterId,omitempty"`
	ExpirationModel             string     `json:"ExpirationModel,omitempty"`
	ValidTo                     *float64   `json:"ValidTo,omitempty"`
	KeyManager                  string     `json:"KeyManager"`
	CustomerMasterKeySpec       string     `json:"CustomerMasterKeySpec"`
	KeySpec                     string     `json:"KeySpec"`
	EncryptionAlgorithms        []string   `json:"EncryptionAlgorithms,omitempty"`
	SigningAlgorithms           []string   `json:"SigningAlgorithms,omitempty"`
	MacAlgorithms               []string   `json:"MacAlgorithms,omitempty"`
	KeyAgreementAlgorithms      []string   `json:"KeyAgreementAlgorithms,omitempty"`
	MultiRegion                 bool       `json:"MultiRegion"`
	MultiRegionConfiguration    *mrConfig  `json:"MultiRegionConfiguration,omitempty"`
	CurrentKeyMaterialID        string     `json:"CurrentKeyMaterialId,omitempty"`
	XksKeyConfiguration         *xksConfig `json:"XksKeyConfiguration,omitempty"`
}

type xksConfig struct {
	ID string `json:"Id"`
}

type mrConfig struct {
	MultiRegionKeyType string  `json:"MultiRegionKeyType"`
	PrimaryKey         *mrKey  `json:"PrimaryKey,omitempty"`
	ReplicaKeys        []mrKey `json:"ReplicaKeys"`
}

type mrKey struct {
	Arn    string `json:"Arn"`
	Region string `json:"Region"`
}

type tagJSON struct {
	TagKey   string `json:"TagKey"`
	TagValue string `json:"TagValue"`
}

func (s *Server) metadata(k *key) *keyMetadataJSON {
	md := &keyMetadataJSON{
		AWSAccountID:          k.account,
		KeyID:                 k.id,
		Arn:                   k.arn,
		CreationDate:          epoch(k.created),
		Enabled:               k.state == "Enabled",
		Description:           k.description,
		KeyUsage:              k.usage,
		KeyState:              k.state,
		Origin:                k.origin,
		KeyManager:            k.manager,
		CustomerMasterKeySpec: k.spec,
		KeySpec:               k.spec,
		MultiRegion:           k.multiRegion,
	}
	if k.state == "PendingDeletion" {
		md.DeletionDate = epoch(k.deletionDate)
	}
	// PendingDeletionWindowInDays is shown only for a multi-Region primary
	// waiting for its replicas to be deleted (PendingReplicaDeletion).
	if k.state == "PendingReplicaDeletion" && k.pendingWindow > 0 {
		w := k.pendingWindow
		md.PendingDeletionWindowInDays = &w
	}
	switch k.origin {
	case "AWS_CLOUDHSM":
		md.CustomKeyStoreID = k.customKeyStore
		md.CloudHsmClusterID = "cluster-" + strings.TrimPrefix(k.customKeyStore, "cks-")
	case "EXTERNAL_KEY_STORE":
		md.CustomKeyStoreID = k.customKeyStore
		md.XksKeyConfiguration = &xksConfig{ID: "xks-" + k.id}
	case "EXTERNAL":
		// ExpirationModel (and ValidTo) describe the import of the current
		// key material into this key: absent before the first import and
		// after the material is deleted (recorded 2025-11).
		if r := k.mat.record(k.mat.current, k.region); r != nil && k.state != "Creating" {
			md.ExpirationModel = r.expirationModel()
			if r.expires {
				md.ValidTo = epoch(r.validTo)
			}
		}
	}
	md.EncryptionAlgorithms, md.SigningAlgorithms, md.MacAlgorithms, md.KeyAgreementAlgorithms = algorithms(k.spec, k.usage)
	// CurrentKeyMaterialId is present for symmetric encryption keys outside
	// custom key stores, the keys that rotate
	// (https://docs.aws.amazon.com/kms/latest/APIReference/API_KeyMetadata.html).
	// A replica being created shows none yet (recorded 2025-11).
	if isSymmetricEncryption(k) && !inCustomKeyStore(k) && k.state != "Creating" && k.mat.current != "" {
		md.CurrentKeyMaterialID = k.mat.current
	}
	if k.multiRegion {
		md.MultiRegionConfiguration = s.mrConfiguration(k)
	}
	return md
}

func (s *Server) mrConfiguration(k *key) *mrConfig {
	primary := k
	if k.mrType == "REPLICA" {
		primary = k.primary
	}
	cfg := &mrConfig{MultiRegionKeyType: k.mrType, ReplicaKeys: []mrKey{}}
	if primary == nil { // the primary was deleted
		return cfg
	}
	cfg.PrimaryKey = &mrKey{Arn: primary.arn, Region: primary.region}
	for _, r := range primary.replicas {
		cfg.ReplicaKeys = append(cfg.ReplicaKeys, mrKey{Arn: r.arn, Region: r.region})
	}
	sort.Slice(cfg.ReplicaKeys, func(i, j int) bool { return cfg.ReplicaKeys[i].Region < cfg.ReplicaKeys[j].Region })
	return cfg
}

// keySpecUsages lists the key usages valid for each key spec
// (https://docs.aws.amazon.com/kms/latest/developerguide/symm-asymm-choose-key-spec.html).
var keySpecUsages = map[string][]string{
	"SYMMETRIC_DEFAULT":     {"ENCRYPT_DECRYPT"},
	"RSA_2048":              {"ENCRYPT_DECRYPT", "SIGN_VERIFY"},
	"RSA_3072":              {"ENCRYPT_DECRYPT", "SIGN_VERIFY"},
	"RSA_4096":              {"ENCRYPT_DECRYPT", "SIGN_VERIFY"},
	"ECC_NIST_P256":         {"SIGN_VERIFY", "KEY_AGREEMENT"},
	"ECC_NIST_P384":         {"SIGN_VERIFY", "KEY_AGREEMENT"},
	"ECC_NIST_P521":         {"SIGN_VERIFY", "KEY_AGREEMENT"},
	"ECC_SECG_P256K1":       {"SIGN_VERIFY"},
	"ECC_NIST_EDWARDS25519": {"SIGN_VERIFY"},
	"HMAC_224":              {"GENERATE_VERIFY_MAC"},
	"HMAC_256":              {"GENERATE_VERIFY_MAC"},
	"HMAC_384":              {"GENERATE_VERIFY_MAC"},
	"HMAC_512":              {"GENERATE_VERIFY_MAC"},
	"SM2":                   {"ENCRYPT_DECRYPT", "SIGN_VERIFY", "KEY_AGREEMENT"},
	"ML_DSA_44":             {"SIGN_VERIFY"},
	"ML_DSA_65":             {"SIGN_VERIFY"},
	"ML_DSA_87":             {"SIGN_VERIFY"},
	"ML_KEM_512":            {"ENCAPSULATE_DECAPSULATE"},
	"ML_KEM_768":            {"ENCAPSULATE_DECAPSULATE"},
	"ML_KEM_1024":           {"ENCAPSULATE_DECAPSULATE"},
}

func validUsage(spec, usage string) bool {
	for _, u := range keySpecUsages[spec] {
		if u == usage {
			return true
		}
	}
	return false
}

// defaultUsage is the fleet file's default key usage for a spec: the first
// listed, so an entry can say only "keySpec":"HMAC_256".
func defaultUsage(spec string) string {
	if u := keySpecUsages[spec]; len(u) > 0 {
		return u[0]
	}
	return "ENCRYPT_DECRYPT"
}

func algorithms(spec, usage string) (enc, sign, mac, agree []string) {
	switch {
	case spec == "SYMMETRIC_DEFAULT":
		enc = []string{"SYMMETRIC_DEFAULT"}
	case strings.HasPrefix(spec, "HMAC_"):
		mac = []string{"HMAC_SHA_" + strings.TrimPrefix(spec, "HMAC_")}
	case usage == "KEY_AGREEMENT":
		agree = []string{"ECDH"}
	case strings.HasPrefix(spec, "RSA_") && usage == "ENCRYPT_DECRYPT":
		enc = []string{"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"}
	case strings.HasPrefix(spec, "RSA_"):
		sign = []string{"RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512", "RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512"}
	case spec == "ECC_NIST_P256" || spec == "ECC_SECG_P256K1":
		sign = []string{"ECDSA_SHA_256"}
	case spec == "ECC_NIST_P384":
		sign = []string{"ECDSA_SHA_384"}
	case spec == "ECC_NIST_P521":
		sign = []string{"ECDSA_SHA_512"}
	case spec == "ECC_NIST_EDWARDS25519":
		sign = []string{"ED25519_SHA_512", "ED25519_PH_SHA_512"}
	case spec == "SM2" && usage == "ENCRYPT_DECRYPT":
		enc = []string{"SM2PKE"}
	case spec == "SM2":
		sign = []string{"SM2DSA"}
	case strings.HasPrefix(spec, "ML_DSA_"):
		sign = []string{"ML_DSA_SHAKE_256"}
	}
	return enc, sign, mac, agree
}

// Pagination markers are opaque to clients; ours carry the list they belong
// to and the last item returned, so they stay valid while the list changes.
func marker(kind, last string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + "\x00" + last))
}

func parseMarker(kind string, m *string) (string, bool) {
	if m == nil {
		return "", true
	}
	b, err := base64.RawURLEncoding.DecodeString(*m)
	if err != nil {
		return "", false
	}
	k, last, ok := strings.Cut(string(b), "\x00")
	if !ok || k != kind {
		return "", false
	}
	return last, true
}

func errMarker() *apiError {
	return errf(400, "InvalidMarkerException", "The request was rejected because the marker that specifies where pagination should next begin is not valid.")
}

// limit validates an optional Limit parameter against KMS's range for the operation.
func limit(v *int, max, def int) (int, *apiError) {
	if v == nil {
		return def, nil
	}
	if *v < 1 || *v > max {
		return 0, errValidation("1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: Member must have value between 1 and %d", *v, max)
	}
	return *v, nil
}
