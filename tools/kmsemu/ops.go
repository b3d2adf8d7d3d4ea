package kmsemu

import (
	"sort"
	"strings"
	"time"
)

type keyIDInput struct {
	KeyID *string `json:"KeyId"`
}

type keyIDOutput struct {
	KeyID string `json:"KeyId"`
}

// DescribeKey: https://docs.aws.amazon.com/kms/latest/APIReference/API_DescribeKey.html
func (s *Server) describeKey(c *call, body []byte) (any, *apiError) {
	var in keyIDInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	k, err := s.resolve(c, in.KeyID, lookupOpts{alias: true})
	if err != nil {
		return nil, err
	}
	return struct {
		KeyMetadata *keyMetadataJSON `json:"KeyMetadata"`
	}{s.metadata(k)}, nil
}

type listInput struct {
	KeyID  *string `json:"KeyId"`
	Limit  *int    `json:"Limit"`
	Marker *string `json:"Marker"`
}

// ListKeys: https://docs.aws.amazon.com/kms/latest/APIReference/API_ListKeys.html
// Limit 1–1000, default 100; every key of the region, AWS managed ones and
// keys pending deletion included.
func (s *Server) listKeys(c *call, body []byte) (any, *apiError) {
	var in listInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	n, err := limit(in.Limit, 1000, 100)
	if err != nil {
		return nil, err
	}
	last, ok := parseMarker("keys", in.Marker)
	if !ok {
		return nil, errMarker()
	}
	rs := s.region(c.account, c.region)
	keys := rs.sortedKeys()
	i := 0
	if in.Marker != nil {
		i = sort.Search(len(keys), func(i int) bool { return keys[i].id > last })
	}
	type entry struct {
		KeyID  string `json:"KeyId"`
		KeyArn string `json:"KeyArn"`
	}
	out := struct {
		Keys       []entry `json:"Keys"`
		NextMarker string  `json:"NextMarker,omitempty"`
		Truncated  bool    `json:"Truncated"`
	}{Keys: []entry{}}
	var gone []*key
	for ; i < len(keys) && len(out.Keys) < n; i++ {
		k := keys[i]
		if k.state == "PendingDeletion" && !k.deletionDate.IsZero() && !c.now.Before(k.deletionDate) {
			gone = append(gone, k)
			continue
		}
		out.Keys = append(out.Keys, entry{k.id, k.arn})
	}
	if i < len(keys) && len(out.Keys) > 0 {
		out.Truncated = true
		out.NextMarker = marker("keys", out.Keys[len(out.Keys)-1].KeyID)
	}
	for _, k := range gone {
		s.settle(k, c.now)
	}
	return out, nil
}

// ListAliases: https://docs.aws.amazon.com/kms/latest/APIReference/API_ListAliases.html
// Limit 1–100, default 50; optionally only the aliases of one key.
func (s *Server) listAliases(c *call, body []byte) (any, *apiError) {
	var in listInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	n, err := limit(in.Limit, 100, 50)
	if err != nil {
		return nil, err
	}
	var only *key
	if in.KeyID != nil {
		if only, err = s.resolve(c, in.KeyID, lookupOpts{}); err != nil {
			return nil, err
		}
	}
	last, ok := parseMarker("aliases", in.Marker)
	if !ok {
		return nil, errMarker()
	}
	type entry struct {
		AliasName       string   `json:"AliasName"`
		AliasArn        string   `json:"AliasArn"`
		TargetKeyID     string   `json:"TargetKeyId"`
		CreationDate    *float64 `json:"CreationDate,omitempty"`
		LastUpdatedDate *float64 `json:"LastUpdatedDate,omitempty"`
	}
	out := struct {
		Aliases    []entry `json:"Aliases"`
		NextMarker string  `json:"NextMarker,omitempty"`
		Truncated  bool    `json:"Truncated"`
	}{Aliases: []entry{}}
	rs := s.region(c.account, c.region)
	aliases := rs.sortedAliases()
	i := 0
	if in.Marker != nil {
		i = sort.Search(len(aliases), func(i int) bool { return aliases[i].name > last })
	}
	for ; i < len(aliases); i++ {
		a := aliases[i]
		if only != nil && a.target != only {
			continue
		}
		if len(out.Aliases) == n {
			out.Truncated = true
			out.NextMarker = marker("aliases", out.Aliases[n-1].AliasName)
			break
		}
		out.Aliases = append(out.Aliases, entry{a.name, aliasARN(c.account, c.region, a.name), a.target.id, epoch(a.created), epoch(a.updated)})
	}
	return out, nil
}

// ListResourceTags: https://docs.aws.amazon.com/kms/latest/APIReference/API_ListResourceTags.html
// Limit 1–50, default 50; key ID or key ARN only.
func (s *Server) listResourceTags(c *call, body []byte) (any, *apiError) {
	var in listInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	k, err := s.resolve(c, in.KeyID, lookupOpts{})
	if err != nil {
		return nil, err
	}
	n, err := limit(in.Limit, 50, 50)
	if err != nil {
		return nil, err
	}
	last, ok := parseMarker("tags", in.Marker)
	if !ok {
		return nil, errMarker()
	}
	out := struct {
		Tags       []tagJSON `json:"Tags"`
		NextMarker string    `json:"NextMarker,omitempty"`
		Truncated  bool      `json:"Truncated"`
	}{Tags: []tagJSON{}}
	for _, tk := range sortedKeys(k.tags) {
		if in.Marker != nil && tk <= last {
			continue
		}
		if len(out.Tags) == n {
			out.Truncated = true
			out.NextMarker = marker("tags", out.Tags[n-1].TagKey)
			break
		}
		out.Tags = append(out.Tags, tagJSON{tk, k.tags[tk]})
	}
	return out, nil
}

// GetKeyRotationStatus: https://docs.aws.amazon.com/kms/latest/APIReference/API_GetKeyRotationStatus.html
// Symmetric encryption keys only (UnsupportedOperationException otherwise,
// custom key stores included); OnDemandRotationStartDate only while an
// on-demand rotation is in progress.
func (s *Server) getKeyRotationStatus(c *call, body []byte) (any, *apiError) {
	var in keyIDInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	k, err := s.resolve(c, in.KeyID, lookupOpts{})
	if err != nil {
		return nil, err
	}
	if !isSymmetricEncryption(k) || inCustomKeyStore(k) {
		return nil, errUnsupported("%s is not a symmetric encryption key with key material in KMS: rotation does not apply.", k.arn)
	}
	if k.state == "PendingImport" || k.state == "Unavailable" {
		return nil, stateError(k)
	}
	out := struct {
		KeyID                     string   `json:"KeyId"`
		KeyRotationEnabled        bool     `json:"KeyRotationEnabled"`
		RotationPeriodInDays      *int     `json:"RotationPeriodInDays,omitempty"`
		NextRotationDate          *float64 `json:"NextRotationDate,omitempty"`
		OnDemandRotationStartDate *float64 `json:"OnDemandRotationStartDate,omitempty"`
	}{KeyID: k.arn, KeyRotationEnabled: k.mat.autoEnabled}
	// "While a KMS key is pending deletion, its key rotation status is
	// false"; cancelling the deletion brings the setting back (same page).
	if k.state == "PendingDeletion" {
		out.KeyRotationEnabled = false
	}
	if out.KeyRotationEnabled {
		p := k.mat.period
		out.RotationPeriodInDays = &p
		out.NextRotationDate = epoch(k.mat.nextAuto)
	}
	out.OnDemandRotationStartDate = epoch(k.mat.onDemandStart)
	return out, nil
}

// ListKeyRotations: https://docs.aws.amazon.com/kms/latest/APIReference/API_ListKeyRotations.html
// Completed rotations, oldest first; Limit 1–1000, default 100. A rotation in
// progress is not listed until it completes (RotationDate is the completion);
// under Options.ListAfterMaterial, not until its material is current.
// With IncludeKeyMaterial ALL_KEY_MATERIAL the list also has the first key
// material (no date or type) and, for imported keys, the staged one. Entries
// of imported keys carry ImportState, ExpirationModel and ValidTo (of the
// import into this Region) and KeyMaterialDescription.
func (s *Server) listKeyRotations(c *call, body []byte) (any, *apiError) {
	var in struct {
		listInput
		IncludeKeyMaterial *string `json:"IncludeKeyMaterial"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	k, err := s.resolve(c, in.KeyID, lookupOpts{})
	if err != nil {
		return nil, err
	}
	if in.IncludeKeyMaterial != nil && *in.IncludeKeyMaterial != "ALL_KEY_MATERIAL" && *in.IncludeKeyMaterial != "ROTATIONS_ONLY" {
		return nil, errValidation("1 validation error detected: Value '%s' at 'includeKeyMaterial' failed to satisfy constraint: Member must satisfy enum value set: [ALL_KEY_MATERIAL, ROTATIONS_ONLY]", *in.IncludeKeyMaterial)
	}
	n, err := limit(in.Limit, 1000, 100)
	if err != nil {
		return nil, err
	}
	if !isSymmetricEncryption(k) || inCustomKeyStore(k) {
		return nil, errUnsupported("%s is not a symmetric encryption key with key material in KMS: it has no rotations.", k.arn)
	}
	m := k.mat
	all := in.IncludeKeyMaterial != nil && *in.IncludeKeyMaterial == "ALL_KEY_MATERIAL"
	rot := m.rotations
	if n := len(rot); s.opts.ListAfterMaterial && n > 0 && m.nextCurrent != "" && rot[n-1].materialID == m.nextCurrent {
		// The last rotation's material is not current yet: leave it out
		// (with ALL_KEY_MATERIAL too), before paging, so markers only
		// name listed entries.
		rot = rot[:n-1]
	}
	if all {
		listed := rot
		rot = nil
		if m.initial != "" {
			rot = append(rot, rotation{materialID: m.initial})
		}
		rot = append(rot, listed...)
		if m.staged != "" {
			rot = append(rot, rotation{materialID: m.staged})
		}
	}
	start := 0
	if in.Marker != nil {
		last, ok := parseMarker("rotations:"+k.id, in.Marker)
		if !ok {
			return nil, errMarker()
		}
		i := 0
		for i < len(rot) && rot[i].materialID != last {
			i++
		}
		if i == len(rot) {
			return nil, errMarker()
		}
		start = i + 1
	}
	type entry struct {
		KeyID                  string   `json:"KeyId"`
		KeyMaterialID          string   `json:"KeyMaterialId"`
		KeyMaterialState       string   `json:"KeyMaterialState"`
		KeyMaterialDescription string   `json:"KeyMaterialDescription,omitempty"`
		ImportState            string   `json:"ImportState,omitempty"`
		ExpirationModel        string   `json:"ExpirationModel,omitempty"`
		ValidTo                *float64 `json:"ValidTo,omitempty"`
		RotationDate           *float64 `json:"RotationDate,omitempty"`
		RotationType           string   `json:"RotationType,omitempty"`
	}
	out := struct {
		Rotations  []entry `json:"Rotations"`
		NextMarker string  `json:"NextMarker,omitempty"`
		Truncated  bool    `json:"Truncated"`
	}{Rotations: []entry{}}
	for i := start; i < len(rot); i++ {
		if len(out.Rotations) == n {
			out.Truncated = true
			out.NextMarker = marker("rotations:"+k.id, rot[i-1].materialID)
			break
		}
		id := rot[i].materialID
		e := entry{KeyID: k.arn, KeyMaterialID: id, KeyMaterialState: "NON_CURRENT", RotationDate: epoch(rot[i].date), RotationType: rot[i].typ}
		switch id {
		case m.current:
			e.KeyMaterialState = "CURRENT"
		case m.staged:
			e.KeyMaterialState, _ = stagedState(k)
		}
		if k.origin == "EXTERNAL" {
			e.ImportState = "PENDING_IMPORT"
			if im := m.imported[id]; im != nil {
				e.KeyMaterialDescription = im.description
				if r := im.in[k.region]; r != nil {
					e.ImportState, e.ExpirationModel = "IMPORTED", r.expirationModel()
					if r.expires {
						e.ValidTo = epoch(r.validTo)
					}
				}
			}
		}
		out.Rotations = append(out.Rotations, e)
	}
	return out, nil
}

// RotateKeyOnDemand: https://docs.aws.amazon.com/kms/latest/APIReference/API_RotateKeyOnDemand.html
// Key ID or key ARN; customer managed symmetric encryption keys outside
// custom key stores, not replicas (rotate the primary: it rotates the whole
// set). The key state is checked first, as AWS does (a disabled RSA key
// answers DisabledException, an imported key without material "… is pending
// import."), then the kind of key; an imported key needs new key material in
// PENDING_ROTATION. The rotation stays in progress for Options.RotationDelay.
// The answer's KeyId is the key ARN (recorded 2025-11).
func (s *Server) rotateKeyOnDemand(c *call, body []byte) (any, *apiError) {
	var in keyIDInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	k, err := s.resolve(c, in.KeyID, lookupOpts{})
	if err != nil {
		return nil, err
	}
	if err := checkEnabled(k); err != nil {
		return nil, err
	}
	switch {
	case k.manager != "CUSTOMER":
		// Not settled which error KMS returns for an AWS managed key (its key
		// policy does not allow the call either); UnsupportedOperation is the
		// documented family for keys on which on-demand rotation is not possible.
		return nil, errUnsupported("%s is an AWS managed key: KMS rotates it every year and it cannot be rotated on demand.", k.arn)
	case !isSymmetricEncryption(k):
		// AWS answers this one without any message (recorded 2025-03).
		return nil, errUnsupported("")
	case inCustomKeyStore(k):
		return nil, errUnsupported("%s is in a custom key store (origin %s): it cannot be rotated on demand.", k.arn, k.origin)
	case k.mrType == "REPLICA":
		primary := "its primary key"
		if k.primary != nil {
			primary = k.primary.arn
		}
		return nil, errUnsupported("%s is a multi-Region replica key: rotate %s instead.", k.arn, primary)
	}
	m := k.mat
	next := ""
	if k.origin == "EXTERNAL" {
		// Imported keys rotate to new material imported beforehand, staged
		// in PENDING_ROTATION in every key of the set
		// (https://docs.aws.amazon.com/kms/latest/developerguide/rotate-keys-on-demand.html).
		if m.staged == "" {
			// AWS's words (recorded 2025-11).
			return nil, errInvalidState("No available key material pending rotation for the key: %s.", k.arn)
		}
		if st, missing := stagedState(k); st != "PENDING_ROTATION" {
			return nil, errInvalidState("Key material (id: %s) of %s is pending import into the replica keys in %s: import it into every replica before rotating.", m.staged, k.arn, sortedRegions(missing))
		}
		next = m.staged
	}
	if !m.onDemandStart.IsZero() {
		// Not settled which error a second call returns while an on-demand
		// rotation is in progress; ConflictException is the one KMS documents
		// for a rotation in progress.
		return nil, errf(400, "ConflictException", "An on-demand rotation of %s started at %s is still in progress.", k.arn, m.onDemandStart.UTC().Format(time.RFC3339))
	}
	if m.autoEnabled && !m.nextAuto.IsZero() && m.nextAuto.Sub(c.now) < 20*time.Minute {
		return nil, errf(400, "ConflictException", "An automatic rotation of %s is scheduled to begin within the next 20 minutes.", k.arn)
	}
	if m.onDemandUsed() >= s.opts.OnDemandLimit {
		return nil, errf(400, "LimitExceededException", "The on-demand rotations limit has been reached for the given keyId. No more on-demand rotations can be performed for this key: %s", k.arn)
	}
	if next == "" {
		next = s.newMaterialID()
	}
	m.onDemandStart = c.now
	m.onDemandPending = next
	s.settle(k, c.now) // completes at once when RotationDelay is 0
	return keyIDOutput{k.arn}, nil
}

type tagsInput struct {
	KeyID   *string    `json:"KeyId"`
	Tags    []tagInput `json:"Tags"`
	TagKeys []string   `json:"TagKeys"`
}

type tagInput struct {
	TagKey   *string `json:"TagKey"`
	TagValue *string `json:"TagValue"`
}

// checkTags validates tags as TagResource and CreateKey do
// (https://docs.aws.amazon.com/kms/latest/developerguide/tagging-keys.html),
// with AWS's messages (recorded 2025-01): a key over 128 or a value over 256
// characters is a ValidationException naming the member (tags.N, 1-based); a
// repeated key in one request, an aws: prefix in any case, and more than 50
// tags in CreateKey are TagException; more than 50 tags on a key after
// TagResource is LimitExceededException (documented, not recorded).
func checkTags(existing map[string]string, tags []tagInput, create bool) (map[string]string, *apiError) {
	out := map[string]string{}
	for k, v := range existing {
		out[k] = v
	}
	seen := map[string]bool{}
	for i, t := range tags {
		if t.TagKey == nil || t.TagValue == nil {
			return nil, errValidation("1 validation error detected: Value null at 'tags.%d.member.tagKey' failed to satisfy constraint: Member must not be null", i+1)
		}
		if len(*t.TagKey) < 1 {
			return nil, errValidation("1 validation error detected: Value '' at 'tags.%d.member.tagKey' failed to satisfy constraint: Member must have length greater than or equal to 1", i+1)
		}
		if len(*t.TagKey) > 128 {
			return nil, errValidation("1 validation error detected: Value '%s' at 'tags.%d.member.tagKey' failed to satisfy constraint: Member must have length less than or equal to 128", *t.TagKey, i+1)
		}
		if len(*t.TagValue) > 256 {
			return nil, errValidation("1 validation error detected: Value '%s' at 'tags.%d.member.tagValue' failed to satisfy constraint: Member must have length less than or equal to 256", *t.TagValue, i+1)
		}
	}
	for _, t := range tags {
		if seen[*t.TagKey] {
			return nil, errf(400, "TagException", "Duplicate tag keys")
		}
		seen[*t.TagKey] = true
		if strings.HasPrefix(strings.ToLower(*t.TagKey), "aws:") {
			return nil, errf(400, "TagException", "Tags beginning with aws: are reserved")
		}
		out[*t.TagKey] = *t.TagValue
	}
	if len(out) > 50 {
		if create {
			return nil, errf(400, "TagException", "Too many tags")
		}
		return nil, errf(400, "LimitExceededException", "A KMS key can have at most 50 tags.")
	}
	return out, nil
}

// TagResource: https://docs.aws.amazon.com/kms/latest/APIReference/API_TagResource.html
func (s *Server) tagResource(c *call, body []byte) (any, *apiError) {
	var in tagsInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	k, err := s.resolve(c, in.KeyID, lookupOpts{})
	if err != nil {
		return nil, err
	}
	if in.Tags == nil {
		return nil, errValidation("1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null")
	}
	if k.manager != "CUSTOMER" {
		return nil, errUnsupported("%s is an AWS managed key: it cannot be tagged.", k.arn)
	}
	if err := checkManageable(k); err != nil {
		return nil, err
	}
	tags, err := checkTags(k.tags, in.Tags, false)
	if err != nil {
		return nil, err
	}
	k.tags = tags
	return struct{}{}, nil
}

// UntagResource: https://docs.aws.amazon.com/kms/latest/APIReference/API_UntagResource.html
func (s *Server) untagResource(c *call, body []byte) (any, *apiError) {
	var in tagsInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	k, err := s.resolve(c, in.KeyID, lookupOpts{})
	if err != nil {
		return nil, err
	}
	if in.TagKeys == nil {
		return nil, errValidation("1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: Member must not be null")
	}
	if k.manager != "CUSTOMER" {
		return nil, errUnsupported("%s is an AWS managed key: it cannot be untagged.", k.arn)
	}
	if err := checkManageable(k); err != nil {
		return nil, err
	}
	tags := map[string]string{}
	for tk, v := range k.tags {
		tags[tk] = v
	}
	for _, tk := range in.TagKeys {
		delete(tags, tk)
	}
	k.tags = tags
	return struct{}{}, nil
}
