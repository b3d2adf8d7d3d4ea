package request

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// Bounds on a targets request (docs/design.md "Organization mode").
const (
	// MaxOrgTargets bounds orgTargets: accounts, OUs and roots as given.
	MaxOrgTargets = 1000
	// MaxOrgRegions bounds orgRegions; no partition has more Regions.
	MaxOrgRegions = 50
)

// The ID formats of AWS Organizations
// (https://docs.aws.amazon.com/organizations/latest/APIReference/API_ListAccountsForParent.html,
// ParentId: a root is r- and 4–32 lowercase letters or digits, an OU is
// ou-, its root's 4–32 characters, - and 8–32 more).
var (
	ouIDPattern   = regexp.MustCompile(`^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$`)
	rootIDPattern = regexp.MustCompile(`^r-[0-9a-z]{4,32}$`)
)

// IsParentID reports whether id names an organizational unit or a root,
// whose accounts a targets run lists; anything else in a valid request is an
// account ID. The CDK app checks orgTargets with the same functions.
func IsParentID(id string) bool { return ouIDPattern.MatchString(id) || IsRootID(id) }

// IsRootID reports whether id is an organization root's ID (r-…).
func IsRootID(id string) bool { return rootIDPattern.MatchString(id) }

// IsAccountID reports whether id is an AWS account ID (12 digits).
func IsAccountID(id string) bool { return validAccount(id) }

// Org is an organization request: the organization sweep's state machine
// asks mode targets first (resolve orgTargets into (account, Region)
// targets) and mode org-summary last (read the sweep's results). Neither
// acts on a key, so neither is a Request; the handler routes them to
// package org (docs/design.md "Organization mode").
type Org struct {
	Mode Mode
	// OrgTargets (targets) are the account, OU and root IDs to resolve, as
	// given, textual duplicates removed.
	OrgTargets []string
	// OrgRegions (targets) are the Regions every account is swept in, in
	// the given order, duplicates removed.
	OrgRegions []string
	// Execution is the Step Functions execution that asks (its name): the
	// sweep's objects in the organization bucket are kept under it.
	Execution string
	// Manifest (org-summary) is the key of the Distributed Map's result
	// manifest, inside the execution's folder.
	Manifest string
}

// Bounds of the organization requests' names.
const (
	// MaxExecutionName is the longest Step Functions execution name
	// (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html).
	MaxExecutionName = 80
	// maxManifestKey is S3's longest object key
	// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html).
	maxManifestKey = 1024
)

// executionPattern is the subset of execution names that are safe as one
// S3 key segment: Step Functions' own names (UUIDs) and any name a person
// gives with letters, digits and _ . = + @ -.
var executionPattern = regexp.MustCompile(`^[A-Za-z0-9_.=+@-]{1,80}$`)

// OrgPrefix is the folder of one execution's objects in the organization
// bucket: the resolved targets, the resolution and the Map's results.
func OrgPrefix(execution string) string { return "runs/" + execution + "/" }

// decodeOrg reads an organization request. Only organization mode takes
// them, and only the fields of the mode (Rules.Fields).
func decodeOrg(fs []field, prefix string, m Mode, scope Scope) (*Org, error) {
	if !scope.Organization {
		return nil, invalid(prefix+"mode", "%s is accepted only in organization mode (ROTATOR_MEMBER_ROLE_NAME set)", m)
	}
	allowed := append([]string{"mode"}, m.Rules().Fields...)
	for _, f := range fs {
		if !contains(allowed, f.name) {
			return nil, invalid(join(strings.TrimSuffix(prefix, "."), f.name), "not accepted in mode %s (it takes %s)", m, strings.Join(m.Rules().Fields, ", "))
		}
	}
	org := &Org{Mode: m}
	var err error
	if raw, ok := find(fs, "execution"); ok {
		if org.Execution, err = readString(raw, prefix+"execution"); err != nil {
			return nil, err
		}
		if !executionPattern.MatchString(org.Execution) || strings.Trim(org.Execution, ".") == "" {
			return nil, invalid(prefix+"execution", "%s: want the Step Functions execution name, 1 to %d letters, digits and _ . = + @ -", quote(org.Execution), MaxExecutionName)
		}
	}
	if m == ModeOrgSummary {
		return org, decodeSummary(fs, prefix, org)
	}
	raw, ok := find(fs, "orgTargets")
	if !ok {
		return nil, invalid(prefix+"orgTargets", "required in mode targets: account IDs, OU IDs (ou-…) or root IDs (r-…)")
	}
	if org.OrgTargets, err = decodeIDList(raw, prefix+"orgTargets", MaxOrgTargets, func(s string) string {
		if validAccount(s) || IsParentID(s) {
			return ""
		}
		return "not an account ID (12 digits), an OU ID (ou-xxxx-yyyyyyyy) or a root ID (r-xxxx)"
	}); err != nil {
		return nil, err
	}
	if raw, ok = find(fs, "orgRegions"); !ok {
		return nil, invalid(prefix+"orgRegions", "required in mode targets: the Regions to sweep each account in")
	}
	if org.OrgRegions, err = decodeIDList(raw, prefix+"orgRegions", MaxOrgRegions, func(s string) string {
		switch {
		case !validRegion(s):
			return "not a Region name such as us-east-1"
		case partitionOfRegion(s) != scope.Partition:
			return fmt.Sprintf("not in partition %s, where the function runs (roles and STS do not cross partitions)", scope.Partition)
		}
		return ""
	}); err != nil {
		return nil, err
	}
	return org, nil
}

// decodeSummary reads org-summary's fields: the execution, and its result
// manifest, which must lie in the execution's folder, so the function
// reads nothing of the bucket but that execution's objects.
func decodeSummary(fs []field, prefix string, org *Org) error {
	if org.Execution == "" {
		return invalid(prefix+"execution", "required in mode org-summary: the Step Functions execution name")
	}
	raw, ok := find(fs, "manifest")
	if !ok {
		return invalid(prefix+"manifest", "required in mode org-summary: the key of the Distributed Map's manifest.json")
	}
	var err error
	if org.Manifest, err = readString(raw, prefix+"manifest"); err != nil {
		return err
	}
	dir := OrgPrefix(org.Execution)
	switch {
	case len(org.Manifest) > maxManifestKey:
		return invalid(prefix+"manifest", "%d bytes; at most %d", len(org.Manifest), maxManifestKey)
	case !strings.HasPrefix(org.Manifest, dir) || !strings.HasSuffix(org.Manifest, "/manifest.json"):
		return invalid(prefix+"manifest", "%s: want %s…/manifest.json, the result manifest of this execution", quote(org.Manifest), dir)
	case strings.Contains(org.Manifest, "/../") || strings.Contains(org.Manifest, "//"):
		return invalid(prefix+"manifest", "%s: a key with empty or .. segments", quote(org.Manifest))
	}
	return nil
}

// decodeIDList reads a non-empty array of at most limit strings, each
// accepted by check (which says what is wrong, or ""), textual duplicates
// dropped, order kept.
func decodeIDList(raw json.RawMessage, path string, limit int, check func(string) string) ([]string, error) {
	list, err := readStrings(raw, path)
	if err != nil {
		return nil, err
	}
	switch {
	case len(list) == 0:
		return nil, invalid(path, "empty; give 1 to %d", limit)
	case len(list) > limit:
		return nil, invalid(path, "%d entries; at most %d", len(list), limit)
	}
	out := make([]string, 0, len(list))
	for i, s := range list {
		if msg := check(s); msg != "" {
			return nil, invalid(fmt.Sprintf("%s[%d]", path, i), "%s: %s", quote(s), msg)
		}
		if !contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}
