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

// decodeTargetsMode reads {"mode":"targets","orgTargets":[…],"orgRegions":[…]}:
// the first state of the organization sweep asks which (account, Region)
// targets to sweep. Only organization mode lists them, and the request takes
// no other field: it names accounts, it does not act on keys.
func decodeTargetsMode(fs []field, prefix string, scope Scope) (Request, error) {
	if !scope.Organization {
		return Request{}, invalid(prefix+"mode", "targets is accepted only in organization mode (ROTATOR_MEMBER_ROLE_NAME set)")
	}
	allowed := append([]string{"mode"}, targetsFields...)
	for _, f := range fs {
		if !contains(allowed, f.name) {
			return Request{}, invalid(join(strings.TrimSuffix(prefix, "."), f.name), "not accepted in mode targets (it takes orgTargets and orgRegions)")
		}
	}
	req := Request{Mode: ModeTargets}
	var err error
	raw, ok := find(fs, "orgTargets")
	if !ok {
		return Request{}, invalid(prefix+"orgTargets", "required in mode targets: account IDs, OU IDs (ou-…) or root IDs (r-…)")
	}
	if req.OrgTargets, err = decodeIDList(raw, prefix+"orgTargets", MaxOrgTargets, func(s string) string {
		if validAccount(s) || IsParentID(s) {
			return ""
		}
		return "not an account ID (12 digits), an OU ID (ou-xxxx-yyyyyyyy) or a root ID (r-xxxx)"
	}); err != nil {
		return Request{}, err
	}
	if raw, ok = find(fs, "orgRegions"); !ok {
		return Request{}, invalid(prefix+"orgRegions", "required in mode targets: the Regions to sweep each account in")
	}
	if req.OrgRegions, err = decodeIDList(raw, prefix+"orgRegions", MaxOrgRegions, func(s string) string {
		switch {
		case !validRegion(s):
			return "not a Region name such as us-east-1"
		case partitionOfRegion(s) != scope.Partition:
			return fmt.Sprintf("not in partition %s, where the function runs (roles and STS do not cross partitions)", scope.Partition)
		}
		return ""
	}); err != nil {
		return Request{}, err
	}
	return req, nil
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
