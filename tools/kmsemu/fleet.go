package kmsemu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// FleetKey is one entry of a fleet file: a JSON array of these objects
// (docs/design.md "The local KMS emulator"). Omitted fields take KMS's defaults for
// a customer managed symmetric encryption key created now in the default
// region.
type FleetKey struct {
	// KeyID fixes the key ID (extension), so sample payloads can name keys;
	// generated when empty. Multi-Region keys need an mrk- ID.
	KeyID string `json:"keyId"`
	// Alias is the key's alias name (alias/…), in the key's region.
	Alias string `json:"alias"`
	// Region is the key's region (default Options.Region).
	Region string `json:"region"`
	// Account is the 12-digit ID of the account that owns the key (default
	// Options.Account). Requests signed with credentials AssumeRole issued
	// for a role of that account see it (sts.go); a replica is in its
	// primary's account.
	Account string `json:"account"`
	// KeySpec (default SYMMETRIC_DEFAULT).
	KeySpec string `json:"keySpec"`
	// KeyUsage (default: the first usage valid for the spec, ENCRYPT_DECRYPT
	// for symmetric keys, GENERATE_VERIFY_MAC for HMAC, SIGN_VERIFY for ECC).
	KeyUsage string `json:"keyUsage"`
	// Origin: AWS_KMS (default), EXTERNAL, AWS_CLOUDHSM, EXTERNAL_KEY_STORE.
	Origin string `json:"origin"`
	// CustomKeyStoreID for AWS_CLOUDHSM and EXTERNAL_KEY_STORE keys (default generated).
	CustomKeyStoreID string `json:"customKeyStoreId"`
	// KeyManager: CUSTOMER (default) or AWS.
	KeyManager string `json:"keyManager"`
	// KeyState (default Enabled).
	KeyState string `json:"keyState"`
	// DeletionInDays is how far in the future a PendingDeletion key is
	// deleted (default 30).
	DeletionInDays float64 `json:"deletionInDays"`
	// MultiRegionKeyType is PRIMARY or REPLICA (empty: single-Region).
	MultiRegionKeyType string `json:"multiRegionKeyType"`
	// PrimaryAlias names a replica's primary by its alias (in the primary's region).
	PrimaryAlias string `json:"primaryAlias"`
	// PrimaryKeyID names a replica's primary by key ID (extension; replicas
	// share their primary's key ID anyway).
	PrimaryKeyID string `json:"primaryKeyId"`
	// CreatedDaysAgo is the key's age (default 0, or just before its oldest rotation).
	CreatedDaysAgo *float64 `json:"createdDaysAgo"`
	// Description of the key.
	Description string `json:"description"`
	// Tags on the key; numbers and booleans are taken as their text.
	Tags FleetTags `json:"tags"`
	// Rotations is the completed rotation history (a replica's comes from its primary).
	Rotations []FleetRotation `json:"rotations"`
	// AutomaticRotation enables automatic rotation (AWS managed keys always rotate yearly).
	AutomaticRotation bool `json:"automaticRotation"`
	// RotationPeriodInDays of automatic rotation, 90–2560 (default 365; setting it enables automatic rotation).
	RotationPeriodInDays int `json:"rotationPeriodInDays"`
	// Count repeats the entry (extension, for big synthetic fleets); the
	// alias of copy n gets the suffix -00001, -00002, …; a fixed KeyID is
	// not allowed with Count > 1. Copy n of a counted replica entry pairs
	// with copy n of the counted primary its primaryAlias names.
	Count int `json:"count"`
	// Deny lists KMS operations (e.g. "RotateKeyOnDemand") the caller may
	// not call on this key (extension). They answer AccessDeniedException,
	// as KMS does when the key policy neither delegates to IAM nor names the
	// caller (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html),
	// so the function's access-denied path can be rehearsed.
	Deny []string `json:"deny"`

	// Imported key material (origin EXTERNAL); see docs/kmslocal.md.

	// ImportedMaterial says whether an EXTERNAL key has key material: true
	// (the default, unless keyState is PendingImport) imports its material,
	// and each rotation's, into the key; false leaves it PendingImport with
	// no material, as CreateKey does. true with keyState PendingImport is a
	// key whose material was deleted (it keeps its CurrentKeyMaterialId). On a
	// replica it says whether the primary's material is imported into it.
	ImportedMaterial *bool `json:"importedMaterial"`
	// StagedMaterial imports new key material that waits in PENDING_ROTATION
	// for RotateKeyOnDemand (a symmetric EXTERNAL key with material; on a
	// multi-Region key, the primary).
	StagedMaterial bool `json:"stagedMaterial"`
	// PendingReplicaImport leaves the staged material out of replicas, so it
	// is PENDING_MULTI_REGION_IMPORT_AND_ROTATION and the primary cannot be
	// rotated yet: on a REPLICA entry, that replica; on the PRIMARY, all of
	// its replicas.
	PendingReplicaImport bool `json:"pendingReplicaImport"`
	// MaterialExpiresInDays makes the import of the key's current material
	// expire (ExpirationModel KEY_MATERIAL_EXPIRES, ValidTo) this many days
	// from now, at most 365; 0 (the default): it does not expire. When it
	// expires the material is deleted and the key becomes PendingImport.
	MaterialExpiresInDays float64 `json:"materialExpiresInDays"`

	// Key usage (GetKeyLastUsage), any key.

	// LastUsedDaysAgo is the key's last successful cryptographic operation;
	// absent: none since tracking began. Encrypt and Decrypt calls to the
	// emulator update it.
	LastUsedDaysAgo *float64 `json:"lastUsedDaysAgo"`
	// LastUsedOperation is that operation (default Encrypt).
	LastUsedOperation string `json:"lastUsedOperation"`
	// TrackingStartedDaysAgo sets TrackingStartDate (default: the later of
	// 2026-04-27, when KMS began tracking, and the key's creation; moved back
	// to lastUsedDaysAgo if that is older).
	TrackingStartedDaysAgo *float64 `json:"trackingStartedDaysAgo"`
}

// FleetTags are a fleet key's tags. KMS tag values are strings; a number or
// boolean in the file ("kms-rotator:interval-days": 30) is taken as its text.
type FleetTags map[string]string

// UnmarshalJSON accepts string, number and boolean values.
func (t *FleetTags) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	out := make(FleetTags, len(raw))
	for k, v := range raw {
		var str string
		if err := json.Unmarshal(v, &str); err == nil {
			out[k] = str
			continue
		}
		var scalar any
		if err := json.Unmarshal(v, &scalar); err != nil {
			return err
		}
		switch scalar.(type) {
		case float64, bool:
			out[k] = strings.TrimSpace(string(v))
		default:
			return fmt.Errorf("tag %q: value %s is not a string, number or boolean", k, v)
		}
	}
	*t = out
	return nil
}

// FleetRotation is one completed rotation of a fleet key.
type FleetRotation struct {
	// Type is ON_DEMAND or AUTOMATIC.
	Type string `json:"type"`
	// DaysAgo is when the rotation completed.
	DaysAgo float64 `json:"daysAgo"`
}

// LoadFleetFile seeds the keys of a fleet file; see LoadFleet.
func (s *Server) LoadFleetFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	defer f.Close()
	if err := s.LoadFleet(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// LoadFleet seeds keys from a fleet file (a JSON array of FleetKey). It
// checks the whole file first and adds nothing when an entry is invalid; the
// error names the entry. An unknown field (a typo?) is reported on the log
// and ignored.
func (s *Server) LoadFleet(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	var entries []FleetKey
	if err := s.decodeLenient(data, &entries, "fleet", "a JSON array of keys"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()

	var warnings []string
	type pending struct {
		k     *key
		alias string
		fk    *FleetKey
		where string
		copy  int // 1-based copy number of a counted entry, 0 otherwise
	}
	var keys []pending
	seen := map[string]bool{} // region/id and region/alias taken in this file
	for i := range entries {
		e := &entries[i]
		n := e.Count
		if n < 0 {
			return fmt.Errorf("fleet entry %d: count must not be negative", i)
		}
		if n == 0 {
			n = 1
		}
		if n > 1 && e.KeyID != "" {
			return fmt.Errorf("fleet entry %d: keyId cannot be combined with count > 1", i)
		}
		for j := 0; j < n; j++ {
			where := fmt.Sprintf("fleet entry %d", i)
			if e.Count > 1 {
				where = fmt.Sprintf("fleet entry %d (copy %d)", i, j+1)
			}
			k, err := s.fleetKey(e, now, func(msg string) {
				if j == 0 {
					warnings = append(warnings, where+": "+msg)
				}
			})
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			al := e.Alias
			if al != "" && e.Count > 1 {
				al = fmt.Sprintf("%s-%05d", al, j+1)
			}
			if al != "" && !aliasPattern.MatchString(al) {
				return fmt.Errorf("%s: alias %q must look like alias/name (letters, digits, / _ -)", where, al)
			}
			if seen[k.place()+"/"+k.id] || s.region(k.account, k.region).keys[k.id] != nil {
				return fmt.Errorf("%s: key %s already exists in %s", where, k.id, k.placeName(s))
			}
			seen[k.place()+"/"+k.id] = true
			if al != "" {
				if seen[k.place()+"/"+al] || s.region(k.account, k.region).aliases[al] != nil {
					return fmt.Errorf("%s: alias %s already exists in %s", where, al, k.placeName(s))
				}
				seen[k.place()+"/"+al] = true
			}
			cp := 0
			if e.Count > 1 {
				cp = j + 1
			}
			keys = append(keys, pending{k, al, e, where, cp})
		}
	}

	// Link replicas to primaries (by alias or key ID, in this file or
	// already loaded) before anything is added.
	byAlias := map[string][]*key{} // alias → keys (any region)
	byID := map[string][]*key{}
	for _, p := range keys {
		if p.alias != "" {
			byAlias[p.alias] = append(byAlias[p.alias], p.k)
		}
		byID[p.k.id] = append(byID[p.k.id], p.k)
	}
	for _, rs := range s.regions {
		for _, a := range rs.aliases {
			byAlias[a.name] = append(byAlias[a.name], a.target)
		}
		for _, k := range rs.keys {
			byID[k.id] = append(byID[k.id], k)
		}
	}
	type link struct {
		p       pending
		primary *key
	}
	primaryEntry := map[*key]*FleetKey{} // primaries of this file
	for _, p := range keys {
		if p.k.mrType == "PRIMARY" {
			primaryEntry[p.k] = p.fk
		}
	}
	var links []link
	replicaIn := map[string]bool{} // primary ID/region of replicas in this file
	for _, p := range keys {
		if p.k.mrType != "REPLICA" {
			continue
		}
		var cands []*key
		ref := p.fk.PrimaryKeyID
		if p.fk.PrimaryAlias != "" {
			ref = p.fk.PrimaryAlias
			if p.copy > 0 {
				// copy n of a counted replica entry belongs to copy n of
				// its counted primary entry
				ref = fmt.Sprintf("%s-%05d", ref, p.copy)
			}
			cands = byAlias[ref]
		} else if ref != "" {
			cands = byID[ref]
		} else {
			return fmt.Errorf("%s: a REPLICA needs primaryAlias (or primaryKeyId)", p.where)
		}
		var primary, elsewhere *key
		for _, c := range cands {
			if c.mrType != "PRIMARY" {
				continue
			}
			if c.account == p.k.account {
				primary = c
			} else {
				elsewhere = c
			}
		}
		if primary == nil && elsewhere != nil {
			// Replicas are in the primary's account
			// (https://docs.aws.amazon.com/kms/latest/developerguide/multi-region-keys-overview.html).
			return fmt.Errorf("%s: a replica must be in the account of its primary %s (%s), not %s", p.where, ref, elsewhere.account, p.k.account)
		}
		if primary == nil {
			return fmt.Errorf("%s: no multi-Region PRIMARY key named %s", p.where, ref)
		}
		if primary.region == p.k.region {
			return fmt.Errorf("%s: a replica must be in another region than its primary (%s)", p.where, primary.region)
		}
		for _, r := range primary.replicas {
			if r.region == p.k.region {
				return fmt.Errorf("%s: the primary already has a replica in %s", p.where, p.k.region)
			}
		}
		if replicaIn[primary.account+"/"+primary.id+"/"+p.k.region] {
			return fmt.Errorf("%s: the primary already has a replica in %s", p.where, p.k.region)
		}
		replicaIn[primary.account+"/"+primary.id+"/"+p.k.region] = true
		if p.fk.KeyID != "" && p.fk.KeyID != primary.id {
			return fmt.Errorf("%s: a replica has its primary's key ID %s, not %s", p.where, primary.id, p.fk.KeyID)
		}
		if seen[p.k.place()+"/"+primary.id] && p.k.id != primary.id {
			return fmt.Errorf("%s: key %s already exists in %s", p.where, primary.id, p.k.region)
		}
		if len(p.fk.Rotations) > 0 {
			warnings = append(warnings, p.where+": a replica shares its primary's rotations; its own are ignored")
		}
		if err := checkReplicaImports(p.fk, primary); err != nil {
			return fmt.Errorf("%s: %w", p.where, err)
		}
		delete(seen, p.k.place()+"/"+p.k.id)
		seen[p.k.place()+"/"+primary.id] = true
		links = append(links, link{p, primary})
	}
	for _, l := range links {
		p, primary := l.p, l.primary
		// A replica shares its primary's key ID, key material, key spec,
		// origin and rotation settings.
		p.k.id = primary.id
		p.k.arn = keyARN(p.k.account, p.k.region, primary.id)
		p.k.spec, p.k.usage, p.k.origin, p.k.manager = primary.spec, primary.usage, primary.origin, primary.manager
		p.k.mat = primary.mat
		p.k.primary = primary
		primary.replicas = append(primary.replicas, p.k)
		if primary.origin == "EXTERNAL" {
			fleetReplicaImports(p.k, p.fk, primaryEntry[primary], now)
		}
	}
	for _, w := range warnings {
		s.logMu.Lock()
		fmt.Fprintf(s.opts.Log, "kmslocal: warning: %s\n", w)
		s.logMu.Unlock()
	}
	for _, p := range keys {
		rs := s.region(p.k.account, p.k.region)
		rs.addKey(p.k)
		s.fleetAccounts[p.k.account] = true
		if p.alias != "" {
			rs.addAlias(&alias{name: p.alias, target: p.k, created: p.k.created, updated: p.k.created})
		}
	}
	return nil
}

var (
	keyStates             = []string{"Enabled", "Disabled", "PendingDeletion", "PendingImport", "PendingReplicaDeletion", "Unavailable", "Creating", "Updating"}
	specNames, usageNames = func() (specs, usages []string) {
		seen := map[string]bool{}
		for sp, us := range keySpecUsages {
			specs = append(specs, sp)
			for _, u := range us {
				if !seen[u] {
					seen[u] = true
					usages = append(usages, u)
				}
			}
		}
		sort.Strings(specs)
		sort.Strings(usages)
		return specs, usages
	}()
)

// canon returns the allowed value v names regardless of case and of - or _
// ("enabled", "on-demand"), or v unchanged, for oneOf to reject.
func canon(v string, allowed ...string) string {
	norm := func(x string) string { return strings.ToLower(strings.ReplaceAll(x, "-", "_")) }
	for _, a := range allowed {
		if norm(a) == norm(v) {
			return a
		}
	}
	return v
}

func oneOf(field, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%s %q is not one of %s", field, v, strings.Join(allowed, ", "))
}

func days(d float64) time.Duration { return time.Duration(d * float64(24*time.Hour)) }

// fleetKey builds one key from a fleet entry, with KMS's defaults.
func (s *Server) fleetKey(e *FleetKey, now time.Time, warn func(string)) (*key, error) {
	k := &key{
		region: e.Region, spec: canon(e.KeySpec, specNames...), usage: canon(e.KeyUsage, usageNames...),
		origin:  canon(e.Origin, "AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"),
		manager: canon(e.KeyManager, "CUSTOMER", "AWS"), state: canon(e.KeyState, keyStates...),
		description: e.Description, customKeyStore: e.CustomKeyStoreID, tags: map[string]string{},
	}
	mrType := canon(e.MultiRegionKeyType, "PRIMARY", "REPLICA")
	for _, op := range e.Deny {
		if _, ok := operations[kmsPrefix+op]; !ok {
			return nil, fmt.Errorf("deny: %q is not a KMS operation the emulator serves (e.g. RotateKeyOnDemand, DescribeKey)", op)
		}
		if k.deny == nil {
			k.deny = map[string]bool{}
		}
		k.deny[op] = true
	}
	if k.region == "" {
		k.region = s.opts.Region
	}
	k.account = e.Account
	if k.account == "" {
		k.account = s.opts.Account
	} else if !accountPattern.MatchString(k.account) {
		return nil, fmt.Errorf("account %q is not an account ID (12 digits)", k.account)
	}
	if !validRegion.MatchString(k.region) {
		return nil, fmt.Errorf("region %q is not a region name like us-east-1", k.region)
	}
	if k.spec == "" {
		k.spec = "SYMMETRIC_DEFAULT"
	}
	if _, ok := keySpecUsages[k.spec]; !ok {
		return nil, fmt.Errorf("keySpec %q is not one of %s", k.spec, strings.Join(specNames, ", "))
	}
	if k.usage == "" {
		k.usage = defaultUsage(k.spec)
	}
	if !validUsage(k.spec, k.usage) {
		return nil, fmt.Errorf("keyUsage %q is not valid for keySpec %s (valid: %s)", k.usage, k.spec, strings.Join(keySpecUsages[k.spec], ", "))
	}
	if k.origin == "" {
		k.origin = "AWS_KMS"
	}
	if err := oneOf("origin", k.origin, "AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"); err != nil {
		return nil, err
	}
	if inCustomKeyStore(k) {
		if k.spec != "SYMMETRIC_DEFAULT" {
			return nil, fmt.Errorf("a key in a custom key store must be SYMMETRIC_DEFAULT")
		}
		if k.customKeyStore == "" {
			k.customKeyStore = fmt.Sprintf("cks-%016x%x", s.idRNG.Uint64(), s.idRNG.Uint32()&0xf)
		}
	} else if k.customKeyStore != "" {
		return nil, fmt.Errorf("customKeyStoreId needs origin AWS_CLOUDHSM or EXTERNAL_KEY_STORE")
	}
	if k.manager == "" {
		k.manager = "CUSTOMER"
	}
	if err := oneOf("keyManager", k.manager, "CUSTOMER", "AWS"); err != nil {
		return nil, err
	}
	if k.state == "" {
		k.state = "Enabled"
	}
	if err := oneOf("keyState", k.state, keyStates...); err != nil {
		return nil, err
	}
	if k.state == "PendingDeletion" {
		d := e.DeletionInDays
		if d == 0 {
			d = 30
		}
		if d < 0 {
			return nil, fmt.Errorf("deletionInDays must be positive")
		}
		k.deletionDate = now.Add(days(d))
	} else if e.DeletionInDays != 0 {
		return nil, fmt.Errorf("deletionInDays needs keyState PendingDeletion")
	}
	switch mrType {
	case "":
		if e.PrimaryAlias != "" || e.PrimaryKeyID != "" {
			return nil, fmt.Errorf("primaryAlias/primaryKeyId need multiRegionKeyType REPLICA")
		}
	case "PRIMARY", "REPLICA":
		k.multiRegion, k.mrType = true, mrType
		if inCustomKeyStore(k) {
			return nil, fmt.Errorf("multi-Region keys cannot be in a custom key store")
		}
		if mrType == "PRIMARY" && (e.PrimaryAlias != "" || e.PrimaryKeyID != "") {
			return nil, fmt.Errorf("primaryAlias/primaryKeyId need multiRegionKeyType REPLICA")
		}
	default:
		return nil, oneOf("multiRegionKeyType", e.MultiRegionKeyType, "PRIMARY", "REPLICA")
	}
	k.id = e.KeyID
	if k.id == "" {
		k.id = s.newKeyID(k.multiRegion)
	} else if !keyIDPattern.MatchString(k.id) {
		return nil, fmt.Errorf("keyId %q is not a key ID (a lowercase UUID, or mrk- and 32 hex digits)", k.id)
	} else if k.multiRegion != strings.HasPrefix(k.id, "mrk-") {
		return nil, fmt.Errorf("keyId %q: multi-Region keys and only they have mrk- key IDs", k.id)
	}
	k.arn = keyARN(k.account, k.region, k.id)
	for tk, v := range e.Tags {
		if tk == "" || len(tk) > 128 || len(v) > 256 {
			return nil, fmt.Errorf("tag %q: keys are 1-128 characters, values 0-256", tk)
		}
		k.tags[tk] = v
	}

	// History: the oldest rotation bounds the creation date.
	oldest := 0.0
	for i, r := range e.Rotations {
		e.Rotations[i].Type = canon(r.Type, "ON_DEMAND", "AUTOMATIC")
		if err := oneOf(fmt.Sprintf("rotations[%d].type", i), e.Rotations[i].Type, "ON_DEMAND", "AUTOMATIC"); err != nil {
			return nil, err
		}
		if r.DaysAgo < 0 {
			return nil, fmt.Errorf("rotations[%d].daysAgo must not be negative", i)
		}
		if r.DaysAgo > oldest {
			oldest = r.DaysAgo
		}
	}
	if len(e.Rotations) > 0 && (!isSymmetricEncryption(k) || inCustomKeyStore(k)) && mrType != "REPLICA" {
		return nil, errors.New("only symmetric encryption keys outside custom key stores have rotations")
	}
	age := 0.0
	if len(e.Rotations) > 0 {
		age = oldest + 1
	}
	if e.CreatedDaysAgo != nil {
		if *e.CreatedDaysAgo < 0 {
			return nil, fmt.Errorf("createdDaysAgo must not be negative")
		}
		age = *e.CreatedDaysAgo
		if age < oldest && mrType != "REPLICA" {
			warn(fmt.Sprintf("createdDaysAgo %g is younger than its oldest rotation (%g days ago); created %g days ago instead", age, oldest, oldest+1))
			age = oldest + 1
		}
	}
	k.created = now.Add(-days(age))
	m := &material{initial: s.newMaterialID()}
	m.current = m.initial
	rots := append([]FleetRotation(nil), e.Rotations...)
	if mrType == "REPLICA" {
		rots = nil // the replica takes its primary's material when linked
	}
	sort.SliceStable(rots, func(i, j int) bool { return rots[i].DaysAgo > rots[j].DaysAgo })
	for _, r := range rots {
		s.completeRotation(m, rotation{materialID: s.newMaterialID(), date: now.Add(-days(r.DaysAgo)), typ: r.Type})
	}
	k.mat = m
	if err := s.fleetUsage(k, e, now); err != nil {
		return nil, err
	}
	if k.origin == "EXTERNAL" && mrType != "REPLICA" {
		if err := s.fleetImports(k, e, now); err != nil {
			return nil, err
		}
	} else if mrType != "REPLICA" && (e.ImportedMaterial != nil || e.StagedMaterial || e.PendingReplicaImport || e.MaterialExpiresInDays != 0) {
		return nil, errors.New("importedMaterial, stagedMaterial, pendingReplicaImport and materialExpiresInDays need origin EXTERNAL")
	}

	// Automatic rotation: AWS managed keys rotate every year
	// (https://docs.aws.amazon.com/kms/latest/developerguide/rotate-keys.html).
	period := e.RotationPeriodInDays
	auto := e.AutomaticRotation || period != 0
	if auto && mrType == "REPLICA" {
		warn("automatic rotation is set on the primary and shared by its replicas; ignored on the replica")
		auto = false
	}
	if k.manager == "AWS" {
		auto, period = true, 365
	}
	if auto {
		if period == 0 {
			period = 365
		}
		if period < 90 || period > 2560 {
			return nil, fmt.Errorf("rotationPeriodInDays %d is not within 90-2560", period)
		}
		if !isSymmetricEncryption(k) || inCustomKeyStore(k) || k.origin == "EXTERNAL" {
			return nil, errors.New("automatic rotation needs a symmetric encryption key with key material generated by KMS")
		}
		m.autoEnabled, m.period = true, period
		// The next automatic rotation is a period after the last one (or the
		// creation); one that would already be past is rolled forward rather
		// than invented in the history.
		base := k.created
		for _, r := range m.rotations {
			if r.typ == "AUTOMATIC" {
				base = r.date
			}
		}
		next := base.AddDate(0, 0, period)
		for !next.After(now) {
			next = next.AddDate(0, 0, period)
		}
		m.nextAuto = next
	}
	return k, nil
}

// fleetImports seeds the imported materials of an EXTERNAL key (single-Region
// or primary): its first material and each rotation's, imported into its
// Region unless it is PendingImport, and the staged one.
func (s *Server) fleetImports(k *key, e *FleetKey, now time.Time) error {
	m := k.mat
	has := k.state != "PendingImport"
	if e.ImportedMaterial != nil {
		has = *e.ImportedMaterial
	}
	if e.MaterialExpiresInDays < 0 || e.MaterialExpiresInDays > 365 {
		return errors.New("materialExpiresInDays must be within 0-365")
	}
	if !has {
		if len(e.Rotations) > 0 || e.StagedMaterial || e.MaterialExpiresInDays != 0 {
			return errors.New("rotations, stagedMaterial and materialExpiresInDays need importedMaterial")
		}
		m.initial, m.current = "", ""
		if k.state == "Enabled" || k.state == "Disabled" {
			k.state = "PendingImport"
		}
		return nil
	}
	m.imported = map[string]*importedMaterial{}
	for _, id := range m.associated() {
		im := &importedMaterial{id: id, in: map[string]*importRecord{}}
		if k.state != "PendingImport" {
			im.in[k.region] = fleetRecord(id == m.current, e.MaterialExpiresInDays, now)
		}
		m.imported[id] = im
	}
	if e.StagedMaterial {
		if !isSymmetricEncryption(k) {
			return errors.New("stagedMaterial needs a SYMMETRIC_DEFAULT key (only they rotate)")
		}
		m.staged = s.newMaterialID()
		m.imported[m.staged] = &importedMaterial{id: m.staged, in: map[string]*importRecord{k.region: {}}}
	} else if e.PendingReplicaImport {
		return errors.New("pendingReplicaImport needs stagedMaterial on the primary")
	}
	return nil
}

func fleetRecord(current bool, expiresInDays float64, now time.Time) *importRecord {
	if current && expiresInDays > 0 {
		return &importRecord{expires: true, validTo: now.Add(days(expiresInDays))}
	}
	return &importRecord{}
}

// checkReplicaImports checks a replica entry's import fields against its primary.
func checkReplicaImports(e *FleetKey, primary *key) error {
	fields := e.ImportedMaterial != nil || e.StagedMaterial || e.PendingReplicaImport || e.MaterialExpiresInDays != 0
	switch {
	case primary.origin != "EXTERNAL" && fields:
		return errors.New("importedMaterial, stagedMaterial, pendingReplicaImport and materialExpiresInDays need a primary with origin EXTERNAL")
	case e.StagedMaterial:
		return errors.New("stagedMaterial belongs on the primary: new key material is imported there first")
	case e.PendingReplicaImport && primary.mat.staged == "":
		return errors.New("pendingReplicaImport needs stagedMaterial on the primary")
	case e.MaterialExpiresInDays < 0 || e.MaterialExpiresInDays > 365:
		return errors.New("materialExpiresInDays must be within 0-365")
	}
	return nil
}

// fleetReplicaImports imports the primary's materials into a replica of an
// EXTERNAL key, as its entry (and the primary's pendingReplicaImport) say.
func fleetReplicaImports(r *key, e, primaryEntry *FleetKey, now time.Time) {
	m := r.mat
	has := r.state != "PendingImport" && m.initial != ""
	if e.ImportedMaterial != nil && m.initial != "" {
		has = *e.ImportedMaterial
	}
	if !has {
		if r.state == "Enabled" || r.state == "Disabled" {
			r.state = "PendingImport"
		}
	} else {
		for _, id := range m.associated() {
			if im := m.imported[id]; im != nil {
				im.in[r.region] = fleetRecord(id == m.current, e.MaterialExpiresInDays, now)
			}
		}
	}
	pendingAll := primaryEntry != nil && primaryEntry.PendingReplicaImport
	if im := m.imported[m.staged]; im != nil && has && !e.PendingReplicaImport && !pendingAll {
		im.in[r.region] = &importRecord{}
	}
}

// fleetUsage seeds a key's last cryptographic use and tracking start.
func (s *Server) fleetUsage(k *key, e *FleetKey, now time.Time) error {
	if e.TrackingStartedDaysAgo != nil {
		if *e.TrackingStartedDaysAgo < 0 {
			return errors.New("trackingStartedDaysAgo must not be negative")
		}
		k.trackingStart = now.Add(-days(*e.TrackingStartedDaysAgo))
	}
	if e.LastUsedDaysAgo == nil {
		if e.LastUsedOperation != "" {
			return errors.New("lastUsedOperation needs lastUsedDaysAgo")
		}
		return nil
	}
	if *e.LastUsedDaysAgo < 0 {
		return errors.New("lastUsedDaysAgo must not be negative")
	}
	op := "Encrypt"
	if e.LastUsedOperation != "" {
		op = canon(e.LastUsedOperation, usageOperations...)
		if err := oneOf("lastUsedOperation", op, usageOperations...); err != nil {
			return err
		}
	}
	k.used = &lastUse{at: now.Add(-days(*e.LastUsedDaysAgo)), op: op, requestID: uuidFrom(s.idRNG), eventID: uuidFrom(s.idRNG)}
	if k.used.at.Before(trackingStart(k)) {
		k.trackingStart = k.used.at
	}
	return nil
}

// usageOperations are GetKeyLastUsage's operations (KeyLastUsageTrackingOperation).
var usageOperations = []string{"Decrypt", "DeriveSharedSecret", "Encrypt", "GenerateDataKey", "GenerateDataKeyPair",
	"GenerateDataKeyPairWithoutPlaintext", "GenerateDataKeyWithoutPlaintext", "GenerateMac", "ReEncrypt", "Sign",
	"Verify", "VerifyMac", "Encapsulate", "Decapsulate"}

// decodeLenient parses a seed file (fleet, organization) into v. An unknown
// field is most likely a typo, but a file written for another version should
// still load: it is warned about on the log and ignored.
func (s *Server) decodeLenient(data []byte, v any, what, shape string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return nil
	}
	if !strings.Contains(err.Error(), "unknown field") {
		return fmt.Errorf("%s: not %s: %w", what, shape, err)
	}
	if err2 := json.Unmarshal(data, v); err2 != nil {
		return fmt.Errorf("%s: not %s: %w", what, shape, err2)
	}
	s.logMu.Lock()
	fmt.Fprintf(s.opts.Log, "kmslocal: warning: %s: %v (ignored)\n", what, err)
	s.logMu.Unlock()
	return nil
}
