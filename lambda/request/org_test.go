package request

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

var orgScope = Scope{Partition: "aws", Account: "012345678912", Region: "us-east-1", Organization: true}

func TestDecodeTargetsMode(t *testing.T) {
	p, err := Parse([]byte(`{"mode":"targets","orgTargets":["111111111111","ou-ab12-cdefgh34","r-ab12","111111111111"],"orgRegions":["eu-west-1","us-east-1","eu-west-1"],"execution":"0f6c1a2e-4b5d-4e6f-8a9b-0c1d2e3f4a5b"}`), orgScope)
	if err != nil {
		t.Fatal(err)
	}
	want := Org{Mode: ModeTargets, OrgTargets: []string{"111111111111", "ou-ab12-cdefgh34", "r-ab12"},
		OrgRegions: []string{"eu-west-1", "us-east-1"}, Execution: "0f6c1a2e-4b5d-4e6f-8a9b-0c1d2e3f4a5b"}
	if p.Request != nil || p.Org == nil || !reflect.DeepEqual(*p.Org, want) {
		t.Fatalf("got %+v\nwant %+v", p, want)
	}
	// Decode is for key requests only: an organization request is not one.
	if _, err := Decode([]byte(`{"mode":"targets","orgTargets":["r-ab12"],"orgRegions":["us-east-1"]}`), orgScope); err == nil ||
		err.Error() != "mode: targets is an organization request (Parse), not a key request" {
		t.Fatalf("Decode of a targets request: %v", err)
	}
}

func TestDecodeOrgSummaryMode(t *testing.T) {
	p, err := Parse([]byte(`{"mode":"org-summary","execution":"e-1","manifest":"runs/e-1/results/0a1b/manifest.json"}`), orgScope)
	if err != nil {
		t.Fatal(err)
	}
	want := Org{Mode: ModeOrgSummary, Execution: "e-1", Manifest: "runs/e-1/results/0a1b/manifest.json"}
	if p.Org == nil || !reflect.DeepEqual(*p.Org, want) {
		t.Fatalf("got %+v\nwant %+v", p, want)
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
			"target: not accepted in mode targets (it takes orgTargets, orgRegions, execution)"},
		{"orgTargets in a sweep", `{"mode":"scheduled","orgTargets":["111111111111"]}`, orgScope,
			"orgTargets: not accepted in mode scheduled (only targets takes orgTargets)"},
		{"bad execution", `{"mode":"targets","orgTargets":["111111111111"],"orgRegions":["us-east-1"],"execution":"a/b"}`, orgScope,
			`execution: "a/b": want the Step Functions execution name, 1 to 80 letters, digits and _ . = + @ -`},
		{"dot execution", `{"mode":"targets","orgTargets":["111111111111"],"orgRegions":["us-east-1"],"execution":".."}`, orgScope,
			`execution: "..": want the Step Functions execution name, 1 to 80 letters, digits and _ . = + @ -`},
		{"summary outside organization mode", `{"mode":"org-summary","execution":"e","manifest":"runs/e/manifest.json"}`, testScope,
			"mode: org-summary is accepted only in organization mode (ROTATOR_MEMBER_ROLE_NAME set)"},
		{"summary without execution", `{"mode":"org-summary","manifest":"runs/e/manifest.json"}`, orgScope,
			"execution: required in mode org-summary: the Step Functions execution name"},
		{"summary without manifest", `{"mode":"org-summary","execution":"e"}`, orgScope,
			"manifest: required in mode org-summary: the key of the Distributed Map's manifest.json"},
		{"manifest of another execution", `{"mode":"org-summary","execution":"e","manifest":"runs/f/results/manifest.json"}`, orgScope,
			`manifest: "runs/f/results/manifest.json": want runs/e/…/manifest.json, the result manifest of this execution`},
		{"manifest climbing out", `{"mode":"org-summary","execution":"e","manifest":"runs/e/../f/manifest.json"}`, orgScope,
			`manifest: "runs/e/../f/manifest.json": a key with empty or .. segments`},
		{"summary with orgTargets", `{"mode":"org-summary","execution":"e","manifest":"runs/e/manifest.json","orgTargets":["r-ab12"]}`, orgScope,
			"orgTargets: not accepted in mode org-summary (it takes execution, manifest)"},
		{"in a custom event", `{"source":"kms-rotator","detail-type":"Rotate KMS Keys","detail":{"mode":"targets","orgTargets":["r-ab12"],"orgRegions":["us-east-1"],"dryRun":true}}`, orgScope,
			"detail.dryRun: not accepted in mode targets (it takes orgTargets, orgRegions, execution)"},
		{"as a custom event", `{"source":"kms-rotator","detail-type":"Rotate KMS Keys","detail":{"mode":"targets","orgTargets":["r-ab12"],"orgRegions":["us-east-1"]}}`, orgScope,
			"detail.mode: targets is accepted only as a direct invoke (the organization sweep's state machine asks it)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.payload), tc.scope)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Parse error:\n got %v\nwant %s", err, tc.want)
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
