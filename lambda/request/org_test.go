package request

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

var orgScope = Scope{Partition: "aws", Account: "012345678912", Region: "us-east-1", Organization: true}

func TestDecodeTargetsMode(t *testing.T) {
	req, err := Decode([]byte(`{"mode":"targets","orgTargets":["111111111111","ou-ab12-cdefgh34","r-ab12","111111111111"],"orgRegions":["eu-west-1","us-east-1","eu-west-1"]}`), orgScope)
	if err != nil {
		t.Fatal(err)
	}
	want := Request{Mode: ModeTargets, OrgTargets: []string{"111111111111", "ou-ab12-cdefgh34", "r-ab12"},
		OrgRegions: []string{"eu-west-1", "us-east-1"}, Source: SourceDirect}
	if !reflect.DeepEqual(req, want) {
		t.Fatalf("got %+v\nwant %+v", req, want)
	}
}

func TestDecodeTargetsModeRejects(t *testing.T) {
	many := make([]string, MaxOrgTargets+1)
	for i := range many {
		many[i] = fmt.Sprintf(`"%012d"`, i)
	}
	for _, tc := range []struct {
		name, payload string
		scope         Scope
		want          string
	}{
		{"outside organization mode", `{"mode":"targets","orgTargets":["111111111111"],"orgRegions":["us-east-1"]}`, testScope,
			"mode: targets is accepted only in organization mode (ROTATOR_MEMBER_ROLE_NAME set)"},
		{"no orgTargets", `{"mode":"targets","orgRegions":["us-east-1"]}`, orgScope,
			"orgTargets: required in mode targets: account IDs, OU IDs (ou-…) or root IDs (r-…)"},
		{"no orgRegions", `{"mode":"targets","orgTargets":["111111111111"]}`, orgScope,
			"orgRegions: required in mode targets: the Regions to sweep each account in"},
		{"empty orgTargets", `{"mode":"targets","orgTargets":[],"orgRegions":["us-east-1"]}`, orgScope,
			"orgTargets: empty; give 1 to 1000"},
		{"too many orgTargets", `{"mode":"targets","orgTargets":[` + strings.Join(many, ",") + `],"orgRegions":["us-east-1"]}`, orgScope,
			"orgTargets: 1001 entries; at most 1000"},
		{"bad target", `{"mode":"targets","orgTargets":["111111111111","ou-AB12-x"],"orgRegions":["us-east-1"]}`, orgScope,
			`orgTargets[1]: "ou-AB12-x": not an account ID (12 digits), an OU ID (ou-xxxx-yyyyyyyy) or a root ID (r-xxxx)`},
		{"target not a string", `{"mode":"targets","orgTargets":[111111111111],"orgRegions":["us-east-1"]}`, orgScope,
			"orgTargets[0]: want a string, got number"},
		{"bad region", `{"mode":"targets","orgTargets":["111111111111"],"orgRegions":["us-east-1","Mars"]}`, orgScope,
			`orgRegions[1]: "Mars": not a Region name such as us-east-1`},
		{"region of another partition", `{"mode":"targets","orgTargets":["111111111111"],"orgRegions":["cn-north-1"]}`, orgScope,
			`orgRegions[0]: "cn-north-1": not in partition aws, where the function runs (roles and STS do not cross partitions)`},
		{"a sweep field", `{"mode":"targets","orgTargets":["111111111111"],"orgRegions":["us-east-1"],"target":{"account":"111111111111","region":"us-east-1"}}`, orgScope,
			"target: not accepted in mode targets (it takes orgTargets and orgRegions)"},
		{"orgTargets in a sweep", `{"mode":"scheduled","orgTargets":["111111111111"]}`, orgScope,
			"orgTargets: not accepted in mode scheduled (only targets takes orgTargets)"},
		{"in a custom event", `{"source":"kms-rotator","detail-type":"Rotate KMS Keys","detail":{"mode":"targets","orgTargets":["r-ab12"],"orgRegions":["us-east-1"],"dryRun":true}}`, orgScope,
			"detail.dryRun: not accepted in mode targets (it takes orgTargets and orgRegions)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.payload), tc.scope)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Decode error:\n got %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestIsParentID(t *testing.T) {
	for id, want := range map[string]bool{
		"r-ab12": true, "ou-ab12-cdefgh34": true, "r-": false, "ou-ab12-cdefgh3": false,
		"111111111111": false, "o-abcdefghij": false, "R-AB12": false,
	} {
		if got := IsParentID(id); got != want {
			t.Errorf("IsParentID(%q) = %v, want %v", id, got, want)
		}
	}
}
