package kmsemu

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// CreateKey: https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateKey.html
// Every custom key store ID is taken to name a connected store (there are no
// custom key store operations here); EXTERNAL keys start PendingImport.
func (s *Server) createKey(c *call, body []byte) (any, *apiError) {
	var in struct {
		Description           *string    `json:"Description"`
		KeyUsage              *string    `json:"KeyUsage"`
		KeySpec               *string    `json:"KeySpec"`
		CustomerMasterKeySpec *string    `json:"CustomerMasterKeySpec"`
		Origin                *string    `json:"Origin"`
		CustomKeyStoreID      *string    `json:"CustomKeyStoreId"`
		XksKeyID              *string    `json:"XksKeyId"`
		MultiRegion           *bool      `json:"MultiRegion"`
		Tags                  []tagInput `json:"Tags"`
		Policy                *string    `json:"Policy"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	k := &key{account: c.account, region: c.region, spec: "SYMMETRIC_DEFAULT", usage: "ENCRYPT_DECRYPT", origin: "AWS_KMS", manager: "CUSTOMER", state: "Enabled", created: c.now}
	if in.KeySpec != nil && in.CustomerMasterKeySpec != nil {
		return nil, errValidation("KeySpec and CustomerMasterKeySpec cannot both be specified.")
	}
	if in.CustomerMasterKeySpec != nil {
		in.KeySpec = in.CustomerMasterKeySpec
	}
	if in.KeySpec != nil {
		k.spec = *in.KeySpec
		if _, ok := keySpecUsages[k.spec]; !ok {
			return nil, errValidation("1 validation error detected: Value '%s' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [%s]", k.spec, strings.Join(specNames, ", "))
		}
	}
	if in.KeyUsage != nil {
		k.usage = *in.KeyUsage
		if !slices.Contains(usageNames, k.usage) {
			return nil, errValidation("1 validation error detected: Value '%s' at 'keyUsage' failed to satisfy constraint: Member must satisfy enum value set: [%s]", k.usage, strings.Join(usageNames, ", "))
		}
	}
	if in.KeyUsage == nil && k.spec != "SYMMETRIC_DEFAULT" {
		// AWS's words (recorded 2023-04).
		return nil, errValidation("You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.")
	}
	if !validUsage(k.spec, k.usage) {
		return nil, errValidation("KeyUsage %s is not compatible with KeySpec %s.", k.usage, k.spec)
	}
	if in.Description != nil {
		if len(*in.Description) > 8192 {
			return nil, errValidation("1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 8192")
		}
		k.description = *in.Description
	}
	if in.Origin != nil {
		k.origin = *in.Origin
	}
	switch k.origin {
	case "AWS_KMS":
	case "EXTERNAL":
		k.state = "PendingImport"
	case "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE":
		if in.CustomKeyStoreID == nil || *in.CustomKeyStoreID == "" {
			return nil, errValidation("Origin %s requires a CustomKeyStoreId.", k.origin)
		}
		if k.spec != "SYMMETRIC_DEFAULT" {
			return nil, errUnsupported("Keys in custom key stores must be SYMMETRIC_DEFAULT.")
		}
		if k.origin == "EXTERNAL_KEY_STORE" && (in.XksKeyID == nil || *in.XksKeyID == "") {
			return nil, errValidation("Origin EXTERNAL_KEY_STORE requires an XksKeyId.")
		}
		k.customKeyStore = *in.CustomKeyStoreID
	default:
		return nil, errValidation("1 validation error detected: Value '%s' at 'origin' failed to satisfy constraint: Member must satisfy enum value set: [AWS_CLOUDHSM, EXTERNAL, EXTERNAL_KEY_STORE, AWS_KMS]", k.origin)
	}
	if in.CustomKeyStoreID != nil && !inCustomKeyStore(k) {
		return nil, errValidation("CustomKeyStoreId requires Origin AWS_CLOUDHSM or EXTERNAL_KEY_STORE.")
	}
	if in.MultiRegion != nil && *in.MultiRegion {
		if inCustomKeyStore(k) {
			return nil, errUnsupported("Multi-Region keys cannot be created in a custom key store.")
		}
		k.multiRegion, k.mrType = true, "PRIMARY"
	}
	tags, err := checkTags(nil, in.Tags, true)
	if err != nil {
		return nil, err
	}
	k.tags = tags
	k.id = s.newKeyID(k.multiRegion)
	k.arn = keyARN(k.account, k.region, k.id)
	k.mat = &material{}
	if k.origin != "EXTERNAL" { // imported keys start without key material
		k.mat.initial = s.newMaterialID()
		k.mat.current = k.mat.initial
	}
	s.region(c.account, c.region).addKey(k)
	c.key = k.id
	return struct {
		KeyMetadata *keyMetadataJSON `json:"KeyMetadata"`
	}{s.metadata(k)}, nil
}

type aliasInput struct {
	AliasName   *string `json:"AliasName"`
	TargetKeyID *string `json:"TargetKeyId"`
}

func checkAliasName(name *string) *apiError {
	if name == nil {
		return errValidation("1 validation error detected: Value null at 'aliasName' failed to satisfy constraint: Member must not be null")
	}
	if !strings.HasPrefix(*name, "alias/") {
		// AWS's words (recorded 2023-04).
		return errValidation("Alias must start with the prefix \"alias/\". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html")
	}
	if len(*name) < 1 || len(*name) > 256 || !aliasPattern.MatchString(*name) {
		return errValidation("1 validation error detected: Value '%s' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^alias/[a-zA-Z0-9/_-]+$", *name)
	}
	return nil
}

// CreateAlias: https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateAlias.html
// alias/aws/ is reserved for AWS managed keys; the target is a customer
// managed key given by key ID or key ARN.
func (s *Server) createAlias(c *call, body []byte) (any, *apiError) {
	var in aliasInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := checkAliasName(in.AliasName); err != nil {
		return nil, err
	}
	name := *in.AliasName
	if strings.HasPrefix(name, "alias/aws/") {
		return nil, errf(400, "AccessDeniedException", "Alias names beginning with alias/aws/ are reserved for AWS managed keys.")
	}
	k, err := s.resolve(c, in.TargetKeyID, lookupOpts{})
	if err != nil {
		return nil, err
	}
	if k.manager != "CUSTOMER" {
		return nil, errUnsupported("%s is an AWS managed key: it cannot be the target of an alias you create.", k.arn)
	}
	if err := checkManageable(k); err != nil {
		return nil, err
	}
	rs := s.region(c.account, c.region)
	if rs.aliases[name] != nil {
		return nil, errf(400, "AlreadyExistsException", "An alias with the name %s already exists", aliasARN(c.account, c.region, name))
	}
	rs.addAlias(&alias{name: name, target: k, created: c.now, updated: c.now})
	return struct{}{}, nil
}

// DeleteAlias: https://docs.aws.amazon.com/kms/latest/APIReference/API_DeleteAlias.html
func (s *Server) deleteAlias(c *call, body []byte) (any, *apiError) {
	var in aliasInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := checkAliasName(in.AliasName); err != nil {
		return nil, err
	}
	c.key = *in.AliasName
	if strings.HasPrefix(*in.AliasName, "alias/aws/") {
		return nil, errf(400, "AccessDeniedException", "Aliases of AWS managed keys cannot be deleted.")
	}
	rs := s.region(c.account, c.region)
	if rs.aliases[*in.AliasName] == nil {
		return nil, errNotFound("Alias %s is not found.", aliasARN(c.account, c.region, *in.AliasName))
	}
	delete(rs.aliases, *in.AliasName)
	rs.aliasDirty = true
	return struct{}{}, nil
}

// customerKey resolves a key ID or ARN for a management operation on a
// customer managed key. Not settled which error KMS gives for an AWS managed
// key (its key policy denies these calls); the emulator answers
// UnsupportedOperationException.
func (s *Server) customerKey(c *call, body []byte) (*key, *apiError) {
	var in keyIDInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	k, err := s.resolve(c, in.KeyID, lookupOpts{})
	if err != nil {
		return nil, err
	}
	if k.manager != "CUSTOMER" {
		return nil, errUnsupported("%s is an AWS managed key: this operation is not allowed on it.", k.arn)
	}
	return k, nil
}

// EnableKey: https://docs.aws.amazon.com/kms/latest/APIReference/API_EnableKey.html
func (s *Server) enableKey(c *call, body []byte) (any, *apiError) {
	k, err := s.customerKey(c, body)
	if err != nil {
		return nil, err
	}
	if err := checkNotPending(k); err != nil {
		return nil, err
	}
	k.state = "Enabled"
	s.settle(k, c.now) // an automatic rotation missed while disabled happens now
	return struct{}{}, nil
}

// DisableKey: https://docs.aws.amazon.com/kms/latest/APIReference/API_DisableKey.html
func (s *Server) disableKey(c *call, body []byte) (any, *apiError) {
	k, err := s.customerKey(c, body)
	if err != nil {
		return nil, err
	}
	if err := checkNotPending(k); err != nil {
		return nil, err
	}
	k.state = "Disabled"
	return struct{}{}, nil
}

// ScheduleKeyDeletion: https://docs.aws.amazon.com/kms/latest/APIReference/API_ScheduleKeyDeletion.html
// PendingWindowInDays 7–30 (default 30). A multi-Region primary that still
// has replicas goes to PendingReplicaDeletion and has no deletion date yet.
func (s *Server) scheduleKeyDeletion(c *call, body []byte) (any, *apiError) {
	var in struct {
		KeyID               *string `json:"KeyId"`
		PendingWindowInDays *int    `json:"PendingWindowInDays"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	k, err := s.customerKey(c, body)
	if err != nil {
		return nil, err
	}
	window := 30
	if in.PendingWindowInDays != nil {
		window = *in.PendingWindowInDays
		if window < 7 || window > 30 {
			return nil, errValidation("1 validation error detected: Value '%d' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value between 7 and 30", window)
		}
	}
	if k.state == "PendingDeletion" || k.state == "PendingReplicaDeletion" {
		return nil, errInvalidState("%s is pending deletion.", k.arn)
	}
	k.pendingWindow = window
	out := struct {
		KeyID               string   `json:"KeyId"`
		DeletionDate        *float64 `json:"DeletionDate,omitempty"`
		KeyState            string   `json:"KeyState"`
		PendingWindowInDays int      `json:"PendingWindowInDays"`
	}{KeyID: k.arn, PendingWindowInDays: window}
	if k.mrType == "PRIMARY" && len(k.replicas) > 0 {
		k.state = "PendingReplicaDeletion"
	} else {
		k.state = "PendingDeletion"
		k.deletionDate = c.now.AddDate(0, 0, window)
		out.DeletionDate = epoch(k.deletionDate)
	}
	out.KeyState = k.state
	return out, nil
}

// CancelKeyDeletion: https://docs.aws.amazon.com/kms/latest/APIReference/API_CancelKeyDeletion.html
// The key comes back Disabled.
func (s *Server) cancelKeyDeletion(c *call, body []byte) (any, *apiError) {
	k, err := s.customerKey(c, body)
	if err != nil {
		return nil, err
	}
	if k.state != "PendingDeletion" && k.state != "PendingReplicaDeletion" {
		return nil, errInvalidState("%s is not pending deletion.", k.arn)
	}
	k.state, k.deletionDate, k.pendingWindow = "Disabled", time.Time{}, 0
	return keyIDOutput{k.arn}, nil
}

// ReplicateKey: https://docs.aws.amazon.com/kms/latest/APIReference/API_ReplicateKey.html
// The replica shares the primary's key ID and key material. It starts in the
// Creating key state (Enabled false, no CurrentKeyMaterialId: recorded
// 2025-11) and becomes Enabled, or PendingImport for imported key material,
// after Options.ReplicaDelay. Its description is its own (default empty): the
// description is not a shared property of multi-Region keys.
func (s *Server) replicateKey(c *call, body []byte) (any, *apiError) {
	var in struct {
		KeyID         *string    `json:"KeyId"`
		ReplicaRegion *string    `json:"ReplicaRegion"`
		Description   *string    `json:"Description"`
		Tags          []tagInput `json:"Tags"`
		Policy        *string    `json:"Policy"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.ReplicaRegion == nil {
		return nil, errValidation("1 validation error detected: Value null at 'replicaRegion' failed to satisfy constraint: Member must not be null")
	}
	k, err := s.customerKey(c, body)
	if err != nil {
		return nil, err
	}
	region := *in.ReplicaRegion
	if !validRegion.MatchString(region) {
		return nil, errValidation("1 validation error detected: Value '%s' at 'replicaRegion' failed to satisfy constraint: Member must satisfy regular expression pattern: ^([a-z]+-){2,3}\\d+$", region)
	}
	if !k.multiRegion {
		return nil, errUnsupported("%s is not a multi-Region key.", k.arn)
	}
	if k.mrType != "PRIMARY" {
		return nil, errUnsupported("%s is not a multi-region primary key.", k.arn)
	}
	if err := checkManageable(k); err != nil {
		return nil, err
	}
	if region == k.region {
		return nil, errValidation("The replica region %s is the primary key's region.", region)
	}
	rs := s.region(k.account, region)
	if rs.keys[k.id] != nil {
		return nil, errf(400, "AlreadyExistsException", "A replica of %s already exists in %s.", k.arn, region)
	}
	tags, err := checkTags(nil, in.Tags, true)
	if err != nil {
		return nil, err
	}
	r := &key{
		id: k.id, arn: keyARN(k.account, region, k.id), region: region, account: k.account,
		spec: k.spec, usage: k.usage, origin: k.origin, manager: k.manager,
		state: "Creating", readyAt: c.now.Add(s.opts.ReplicaDelay), created: c.now, tags: tags,
		multiRegion: true, mrType: "REPLICA", primary: k, mat: k.mat,
	}
	if in.Description != nil {
		r.description = *in.Description
	}
	k.replicas = append(k.replicas, r)
	rs.addKey(r)
	out := struct {
		ReplicaKeyMetadata *keyMetadataJSON `json:"ReplicaKeyMetadata"`
		ReplicaPolicy      string           `json:"ReplicaPolicy"`
		ReplicaTags        []tagJSON        `json:"ReplicaTags"`
	}{ReplicaKeyMetadata: s.metadata(r), ReplicaPolicy: defaultPolicy(k.account), ReplicaTags: []tagJSON{}}
	if in.Policy != nil {
		out.ReplicaPolicy = *in.Policy
	}
	for _, tk := range sortedKeys(tags) {
		out.ReplicaTags = append(out.ReplicaTags, tagJSON{tk, tags[tk]})
	}
	return out, nil
}

func defaultPolicy(account string) string {
	return fmt.Sprintf(`{"Version":"2012-10-17","Id":"key-default-1","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::%s:root"},"Action":"kms:*","Resource":"*"}]}`, account)
}

// rotatable checks what Enable/DisableKeyRotation need: a customer managed
// symmetric encryption key with KMS-generated material, not a replica
// (https://docs.aws.amazon.com/kms/latest/developerguide/rotate-keys.html),
// enabled (DisabledException) and not pending (KMSInvalidStateException).
func rotatable(k *key) *apiError {
	switch {
	case !isSymmetricEncryption(k):
		return errUnsupported("%s has key spec %s: automatic rotation applies to symmetric encryption keys only.", k.arn, k.spec)
	case inCustomKeyStore(k):
		return errUnsupported("%s is in a custom key store: automatic rotation is not supported.", k.arn)
	case k.origin == "EXTERNAL":
		// The key-state table's answer for imported keys.
		return errOrigin(k)
	case k.mrType == "REPLICA":
		return errUnsupported("%s is a multi-Region replica: set rotation on its primary key.", k.arn)
	}
	return checkEnabled(k)
}

// EnableKeyRotation: https://docs.aws.amazon.com/kms/latest/APIReference/API_EnableKeyRotation.html
// RotationPeriodInDays 90–2560 (default 365); the next rotation is a period
// from now.
func (s *Server) enableKeyRotation(c *call, body []byte) (any, *apiError) {
	var in struct {
		KeyID                *string `json:"KeyId"`
		RotationPeriodInDays *int    `json:"RotationPeriodInDays"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	period := 365
	if in.RotationPeriodInDays != nil {
		period = *in.RotationPeriodInDays
		if period < 90 || period > 2560 {
			return nil, errValidation("1 validation error detected: Value '%d' at 'rotationPeriodInDays' failed to satisfy constraint: Member must have value between 90 and 2560", period)
		}
	}
	k, err := s.customerKey(c, body)
	if err != nil {
		return nil, err
	}
	if err := rotatable(k); err != nil {
		return nil, err
	}
	k.mat.autoEnabled, k.mat.period = true, period
	k.mat.nextAuto = c.now.AddDate(0, 0, period)
	return struct{}{}, nil
}

// DisableKeyRotation: https://docs.aws.amazon.com/kms/latest/APIReference/API_DisableKeyRotation.html
func (s *Server) disableKeyRotation(c *call, body []byte) (any, *apiError) {
	k, err := s.customerKey(c, body)
	if err != nil {
		return nil, err
	}
	if err := rotatable(k); err != nil {
		return nil, err
	}
	k.mat.autoEnabled, k.mat.period, k.mat.nextAuto = false, 0, time.Time{}
	return struct{}{}, nil
}
