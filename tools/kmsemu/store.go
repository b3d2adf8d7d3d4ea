package kmsemu

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"sort"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// key is one KMS key in one region. The replicas of a multi-Region key share
// the key ID and the key material (and so the rotation history) with their
// primary: https://docs.aws.amazon.com/kms/latest/developerguide/multi-region-keys-overview.html.
type key struct {
	id, arn, region string
	account         string // the account that owns the key (Options.Account unless the fleet says)
	spec, usage     string
	origin, manager string
	state           string
	description     string
	created         time.Time
	deletionDate    time.Time
	readyAt         time.Time // when a Creating replica becomes usable
	used            *lastUse  // last cryptographic use (GetKeyLastUsage)
	trackingStart   time.Time // TrackingStartDate when set (fleet); see trackingStart
	pendingWindow   int
	customKeyStore  string
	tags            map[string]string
	deny            map[string]bool // operations answered AccessDeniedException (fleet "deny")

	multiRegion bool
	mrType      string // PRIMARY or REPLICA when multiRegion
	primary     *key   // for a replica
	replicas    []*key // for a primary

	mat *material // shared by a multi-Region key and its replicas
}

// material is a key's key material and rotation state.
type material struct {
	initial   string // material ID of the original key material
	current   string
	rotations []rotation // completed rotations, oldest first

	onDemandStart   time.Time // set while an on-demand rotation is in progress
	onDemandPending string    // the material ID it will make current

	// nextCurrent is the material of a completed on-demand rotation that
	// becomes current at currentAt (Options.MaterialDelay).
	nextCurrent string
	currentAt   time.Time

	// imported holds the materials of a key with imported key material
	// (Origin EXTERNAL), by material ID; staged is the one waiting in
	// PENDING_ROTATION (or PENDING_MULTI_REGION_IMPORT_AND_ROTATION) for an
	// on-demand rotation. See imports.go.
	imported map[string]*importedMaterial
	staged   string

	autoEnabled bool
	period      int       // RotationPeriodInDays while autoEnabled
	nextAuto    time.Time // next automatic rotation while autoEnabled
}

type rotation struct {
	materialID string
	date       time.Time
	typ        string // AUTOMATIC or ON_DEMAND
}

func (m *material) onDemandUsed() int {
	n := 0
	for _, r := range m.rotations {
		if r.typ == "ON_DEMAND" {
			n++
		}
	}
	if !m.onDemandStart.IsZero() {
		n++
	}
	return n
}

func (m *material) has(id string) bool {
	if id == m.initial {
		return true
	}
	for _, r := range m.rotations {
		if r.materialID == id {
			return true
		}
	}
	return false
}

type alias struct {
	name    string
	target  *key
	created time.Time
	updated time.Time
}

// regionStore holds the keys and aliases of one account in one region, and
// the request quotas, which KMS counts per account and region.
type regionStore struct {
	account    string
	name       string
	keys       map[string]*key
	keyOrder   []*key // sorted by key ID, rebuilt when dirty
	keysDirty  bool
	aliases    map[string]*alias
	aliasOrder []*alias
	aliasDirty bool
	limiters   map[string]*rate.Limiter
}

// region returns the store of an account in a region, made on first use.
func (s *Server) region(account, name string) *regionStore {
	id := account + "/" + name
	rs := s.regions[id]
	if rs == nil {
		rs = &regionStore{account: account, name: name, keys: map[string]*key{}, aliases: map[string]*alias{}, limiters: map[string]*rate.Limiter{}}
		s.regions[id] = rs
	}
	return rs
}

// place is where a key lives, account/region: key IDs and alias names are
// unique there.
func (k *key) place() string { return k.account + "/" + k.region }

// placeName names the key's region in a message, and its account when that
// is not the default one (so single-account messages read as before).
func (k *key) placeName(s *Server) string {
	if k.account == s.opts.Account {
		return k.region
	}
	return k.region + " of account " + k.account
}

func (rs *regionStore) sortedKeys() []*key {
	if rs.keysDirty || len(rs.keyOrder) != len(rs.keys) {
		rs.keyOrder = rs.keyOrder[:0]
		for _, k := range rs.keys {
			rs.keyOrder = append(rs.keyOrder, k)
		}
		sort.Slice(rs.keyOrder, func(i, j int) bool { return rs.keyOrder[i].id < rs.keyOrder[j].id })
		rs.keysDirty = false
	}
	return rs.keyOrder
}

func (rs *regionStore) sortedAliases() []*alias {
	if rs.aliasDirty || len(rs.aliasOrder) != len(rs.aliases) {
		rs.aliasOrder = rs.aliasOrder[:0]
		for _, a := range rs.aliases {
			rs.aliasOrder = append(rs.aliasOrder, a)
		}
		sort.Slice(rs.aliasOrder, func(i, j int) bool { return rs.aliasOrder[i].name < rs.aliasOrder[j].name })
		rs.aliasDirty = false
	}
	return rs.aliasOrder
}

func (rs *regionStore) addKey(k *key) {
	rs.keys[k.id] = k
	rs.keysDirty = true
}

func (rs *regionStore) removeKey(k *key) {
	delete(rs.keys, k.id)
	rs.keysDirty = true
	for name, a := range rs.aliases {
		if a.target == k {
			delete(rs.aliases, name)
			rs.aliasDirty = true
		}
	}
}

func (rs *regionStore) addAlias(a *alias) {
	rs.aliases[a.name] = a
	rs.aliasDirty = true
}

// allow takes a token from the bucket of (account, region, operation).
// Buckets hold one second's worth of requests, as KMS's quotas are per second.
func (s *Server) allow(account, region string, op operation, now time.Time) bool {
	if s.opts.QuotaScale <= 0 {
		return true
	}
	rs := s.region(account, region)
	name := op.name
	base := op.quota
	switch base {
	case cryptoQuota:
		name = "cryptographic"
		base = cryptoRate(region)
	case putEventsQuota:
		base = putEventsRate(region)
	}
	if base <= 0 {
		return true // no figure (a KMS operation missing from settings.KMSRequestQuotas)
	}
	l := rs.limiters[name]
	if l == nil {
		r := base * s.opts.QuotaScale
		burst := int(r)
		if burst < 1 {
			burst = 1
		}
		l = rate.NewLimiter(rate.Limit(r), burst)
		rs.limiters[name] = l
	}
	return l.AllowN(now, 1)
}

func partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

func keyARN(account, region, id string) string {
	return fmt.Sprintf("arn:%s:kms:%s:%s:key/%s", partition(region), region, account, id)
}

func aliasARN(account, region, name string) string {
	return fmt.Sprintf("arn:%s:kms:%s:%s:%s", partition(region), region, account, name)
}

func uuidFrom(r *rand.Rand) string {
	var b [16]byte
	for i := 0; i < 16; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// newKeyID returns a key ID: a UUID, or mrk- and 32 hex digits for a
// multi-Region key (https://docs.aws.amazon.com/kms/latest/developerguide/multi-region-keys-overview.html#mrk-concepts).
func (s *Server) newKeyID(multiRegion bool) string {
	if multiRegion {
		return fmt.Sprintf("mrk-%016x%016x", s.idRNG.Uint64(), s.idRNG.Uint64())
	}
	return uuidFrom(s.idRNG)
}

// newMaterialID returns a key material ID: 64 hex digits, as DescribeKey's
// CurrentKeyMaterialId and ListKeyRotations' KeyMaterialId show them.
func (s *Server) newMaterialID() string {
	return fmt.Sprintf("%016x%016x%016x%016x", s.idRNG.Uint64(), s.idRNG.Uint64(), s.idRNG.Uint64(), s.idRNG.Uint64())
}

var (
	keyIDPattern = regexp.MustCompile(`^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$`)
	kmsARN       = regexp.MustCompile(`^arn:(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b):kms:([a-z0-9-]+):(\d{12}):(key/[^/]+|alias/.+)$`)
	aliasPattern = regexp.MustCompile(`^alias/[a-zA-Z0-9/_-]+$`)
)

// lookupOpts says which identifier forms an operation accepts.
type lookupOpts struct {
	alias bool // alias names and alias ARNs (DescribeKey, Encrypt, …)
}

// resolve finds the key a KeyId parameter names in the call's region. It
// settles the key (completes due rotations, removes keys past their deletion
// date) before returning it.
//
// Errors follow the KMS API reference, with the messages AWS answers
// (recorded, see conformance/testdata): a missing or empty KeyId is a
// ValidationException; a malformed ARN an InvalidArnException; an ARN of
// another account than the caller's an AccessDeniedException (the emulator
// has no key policies, so a key in another account is one the caller has no
// permission for). The rest are
// NotFoundException: a malformed ID ("Invalid keyId 'fake-key-id'"), an ARN
// of another region ("Invalid arn us-west-2": KMS looks keys up in the
// endpoint's region only), an unknown key ("Key '<arn>' does not exist"), an
// unknown alias, and an alias where only key IDs and key ARNs are accepted.
func (s *Server) resolve(c *call, id *string, o lookupOpts) (*key, *apiError) {
	if id == nil {
		return nil, errValidation("1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null")
	}
	v := *id
	c.key = v
	if v == "" || len(v) > 2048 {
		return nil, errValidation("1 validation error detected: Value at 'keyId' failed to satisfy constraint: Member must have length between 1 and 2048")
	}
	region := c.region
	name := v
	if strings.HasPrefix(v, "arn:") {
		m := kmsARN.FindStringSubmatch(v)
		if m == nil {
			return nil, errf(400, "InvalidArnException", "Invalid arn %s", v)
		}
		if m[3] != c.account {
			return nil, errf(400, "AccessDeniedException", "User is not authorized to access %s: it belongs to account %s", v, m[3])
		}
		if m[2] != region {
			return nil, errNotFound("Invalid arn %s", m[2])
		}
		name = m[4]
	}
	rs := s.region(c.account, region)
	var k *key
	if strings.HasPrefix(name, "alias/") {
		if !o.alias {
			return nil, errNotFound("Invalid keyId '%s'", v)
		}
		a := rs.aliases[name]
		if a == nil {
			return nil, errNotFound("Alias %s is not found.", aliasARN(c.account, region, name))
		}
		k = a.target
	} else {
		idPart := strings.TrimPrefix(name, "key/")
		if !keyIDPattern.MatchString(idPart) {
			return nil, errNotFound("Invalid keyId '%s'", v)
		}
		k = rs.keys[idPart]
		if k == nil {
			return nil, errNotFound("Key '%s' does not exist", keyARN(c.account, region, idPart))
		}
	}
	if !s.settle(k, c.now) {
		return nil, errNotFound("Key '%s' does not exist", k.arn)
	}
	c.key = k.id
	if k.deny[c.op] {
		// KMS's wording when neither IAM nor the key policy allows the call.
		return nil, errf(400, "AccessDeniedException",
			"User: arn:aws:sts::%s:assumed-role/kms-rotator/caller is not authorized to perform: kms:%s on resource: %s because no resource-based policy allows the kms:%s action",
			k.account, c.op, k.arn, c.op)
	}
	return k, nil
}

// settle applies what happened in the background up to now: a finished
// on-demand rotation, due automatic rotations, the end of a deletion waiting
// period. It reports false when the key has been deleted.
func (s *Server) settle(k *key, now time.Time) bool {
	if k.mrType == "PRIMARY" && k.state == "PendingReplicaDeletion" {
		for _, r := range append([]*key(nil), k.replicas...) {
			s.settle(r, now)
		}
	}
	if k.state == "PendingDeletion" && !k.deletionDate.IsZero() && !now.Before(k.deletionDate) {
		s.deleteKey(k, now)
		return false
	}
	if k.state == "Creating" && !k.readyAt.IsZero() && !now.Before(k.readyAt) {
		// "When the replicate process completes, the replica key is in the
		// Enabled or PendingImport state"
		// (https://docs.aws.amazon.com/kms/latest/developerguide/key-state.html).
		k.state, k.readyAt = "Enabled", time.Time{}
		if k.origin == "EXTERNAL" {
			k.state = "PendingImport"
		}
	}
	m := k.mat
	if !m.onDemandStart.IsZero() && !now.Before(m.onDemandStart.Add(s.opts.RotationDelay)) {
		// The rotation leaves "in progress" and is listed; its material
		// becomes current MaterialDelay later (the two phases AWS shows).
		done := m.onDemandStart.Add(s.opts.RotationDelay)
		m.promote()
		m.rotations = append(m.rotations, rotation{materialID: m.onDemandPending, date: done, typ: "ON_DEMAND"})
		if m.staged == m.onDemandPending {
			m.staged = "" // the imported material is now associated with the key
		}
		m.nextCurrent, m.currentAt = m.onDemandPending, done.Add(s.opts.MaterialDelay)
		m.onDemandStart, m.onDemandPending = time.Time{}, ""
	}
	if m.nextCurrent != "" && !now.Before(m.currentAt) {
		m.promote()
	}
	expireImports(k, now)
	// Automatic rotation happens only while the key is enabled; a key that
	// was disabled past its date rotates when it is enabled again
	// (https://docs.aws.amazon.com/kms/latest/developerguide/rotate-keys.html#rotate-keys-how-it-works).
	owner := k
	if k.primary != nil {
		owner = k.primary
	}
	for m.autoEnabled && owner.state == "Enabled" && !m.nextAuto.IsZero() && !now.Before(m.nextAuto) {
		s.completeRotation(m, rotation{materialID: s.newMaterialID(), date: m.nextAuto, typ: "AUTOMATIC"})
		m.nextAuto = m.nextAuto.AddDate(0, 0, m.period)
	}
	return true
}

// completeRotation adds a completed rotation whose material is current at once.
func (s *Server) completeRotation(m *material, r rotation) {
	m.promote()
	m.rotations = append(m.rotations, r)
	m.current = r.materialID
}

// promote makes the material of the last completed on-demand rotation
// current, if it is not yet.
func (m *material) promote() {
	if m.nextCurrent != "" {
		m.current, m.nextCurrent, m.currentAt = m.nextCurrent, "", time.Time{}
	}
}

// deleteKey removes a key whose deletion waiting period has ended. A deleted
// primary leaves its replicas without a primary; a primary waiting in
// PendingReplicaDeletion starts its own waiting period once its last replica
// is gone (https://docs.aws.amazon.com/kms/latest/developerguide/multi-region-keys-delete.html).
func (s *Server) deleteKey(k *key, now time.Time) {
	s.region(k.account, k.region).removeKey(k)
	if k.primary != nil {
		p := k.primary
		for i, r := range p.replicas {
			if r == k {
				p.replicas = append(p.replicas[:i:i], p.replicas[i+1:]...)
				break
			}
		}
		if len(p.replicas) == 0 && p.state == "PendingReplicaDeletion" {
			p.state = "PendingDeletion"
			gone := now
			if !k.deletionDate.IsZero() {
				gone = k.deletionDate
			}
			p.deletionDate = gone.AddDate(0, 0, p.pendingWindow)
		}
	}
	for _, r := range k.replicas {
		r.primary = nil
	}
}

// stateError is KMS's answer when a key's state does not allow an operation
// (https://docs.aws.amazon.com/kms/latest/developerguide/key-state.html):
// DisabledException "<arn> is disabled." for a disabled key,
// KMSInvalidStateException "<arn> is pending import." / "… is pending
// deletion." (recorded) or the like for the others.
func stateError(k *key) *apiError {
	switch k.state {
	case "Disabled":
		return errf(400, "DisabledException", "%s is disabled.", k.arn)
	case "PendingImport":
		return errInvalidState("%s is pending import.", k.arn)
	case "PendingDeletion":
		return errInvalidState("%s is pending deletion.", k.arn)
	case "PendingReplicaDeletion":
		return errInvalidState("%s is pending replica deletion.", k.arn)
	case "Unavailable":
		return errInvalidState("%s is unavailable.", k.arn)
	case "Creating":
		return errInvalidState("%s is creating.", k.arn)
	case "Updating":
		return errInvalidState("%s is updating.", k.arn)
	}
	return errInvalidState("%s is %s.", k.arn, k.state)
}

// checkEnabled answers the key-state errors for an operation that needs an
// enabled key (cryptographic operations, RotateKeyOnDemand, rotation settings).
func checkEnabled(k *key) *apiError {
	if k.state == "Enabled" {
		return nil
	}
	return stateError(k)
}

// checkManageable answers for the management operations the key-state table
// allows on enabled, disabled and PendingImport keys (and on unavailable keys
// of a disconnected custom key store): TagResource, UntagResource,
// CreateAlias, ReplicateKey. Pending deletion, creating and updating keys
// refuse them.
func checkManageable(k *key) *apiError {
	switch k.state {
	case "Enabled", "Disabled", "PendingImport", "Unavailable":
		return nil
	}
	return stateError(k)
}

// checkNotPending rejects the states in which KMS allows neither EnableKey
// nor DisableKey: pending deletion, pending replica deletion, pending import,
// unavailable, creating and updating.
func checkNotPending(k *key) *apiError {
	switch k.state {
	case "Enabled", "Disabled":
		return nil
	}
	return stateError(k)
}

func isSymmetricEncryption(k *key) bool {
	return k.spec == "SYMMETRIC_DEFAULT" && k.usage == "ENCRYPT_DECRYPT"
}

func inCustomKeyStore(k *key) bool {
	return k.origin == "AWS_CLOUDHSM" || k.origin == "EXTERNAL_KEY_STORE"
}
