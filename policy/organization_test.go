package policy

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// Organization mode with an OU or root target: the function's role lists
// the accounts of the target OUs and roots, and does nothing else in AWS
// Organizations.

// The organization's resources belong to its management account. The
// simulation places them in the function's own account, so that it judges
// the identity policy alone: a delegated administrator's access in another
// account is Organizations' to grant, and not simulated.
const (
	orgManagement = simAccount
	orgTargetOU   = "arn:aws:organizations::" + orgManagement + ":ou/o-a1b2c3d4e5/ou-ab12-cdefgh34"
	orgRoot       = "arn:aws:organizations::" + orgManagement + ":root/o-a1b2c3d4e5/r-ab12"
)

func TestOrganizationReadIsExactlyThis(t *testing.T) {
	doc, err := OrganizationRead(testParams)
	if err != nil {
		t.Fatal(err)
	}
	want := []Statement{{Sid: "ListAccountsOfTargetOUs", Effect: "Allow",
		Action:   []string{"organizations:DescribeOrganization", "organizations:ListAccountsForParent", "organizations:ListOrganizationalUnitsForParent"},
		Resource: []string{"*"}}}
	if doc.Version != "2012-10-17" || !reflect.DeepEqual(doc.Statement, want) {
		t.Errorf("\n got %+v\nwant %+v", doc, want)
	}
	t.Run("its statement is not one the member role may pick", func(t *testing.T) {
		for _, st := range doc.Statement {
			for _, sid := range MemberRoleSids {
				if st.Sid == sid {
					t.Errorf("Sid %s is a member role statement", sid)
				}
			}
		}
		member, err := MemberRole(memberParams())
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range member.Statement {
			for _, a := range st.Action {
				if strings.HasPrefix(a, "organizations:") {
					t.Errorf("the member role's %s grants %s", st.Sid, a)
				}
			}
		}
	})
}

// orgArnValues fill the placeholders of the Organizations resource ARNs of
// the simulator's action list; any other becomes "x1".
var orgArnValues = map[string]string{
	"Partition": "aws", "Account": orgManagement, "OrganizationId": "a1b2c3d4e5", "RootId": "ab12",
	"OrganizationalUnitId": "ab12-cdefgh34", "AccountId": memberAccount,
}

// TestSimulateOrganizationRead asks the simulator's own action list for
// every Organizations action: the function's role in organization mode
// (function-role.json, the assume statement and organization-read.json)
// may call the three reads that list a target OU's accounts, and no other
// Organizations action — no write (MoveAccount, CreateAccount,
// LeaveOrganization, …) and no other read (ListAccounts, DescribeAccount,
// ListRoots, …).
func TestSimulateOrganizationRead(t *testing.T) {
	read, err := OrganizationRead(testParams)
	if err != nil {
		t.Fatal(err)
	}
	fn, err := FunctionRole(testParams)
	if err != nil {
		t.Fatal(err)
	}
	assume, err := AssumeMemberRole(Params{Partition: "aws", MemberRoleName: "kms-rotator-member", OrgID: "o-a1b2c3d4e5"})
	if err != nil {
		t.Fatal(err)
	}
	fn.Statement = append(fn.Statement, assume)
	identity := []any{fn.Map(), read.Map()}
	allowed := map[string]bool{
		"organizations:DescribeOrganization": true, "organizations:ListAccountsForParent": true, "organizations:ListOrganizationalUnitsForParent": true,
	}
	var actions []struct {
		Action       string   `json:"action"`
		ResourceArns []string `json:"resourceArns"`
	}
	runSimulator(t, nil, &actions, "actions", "organizations")
	placeholder := regexp.MustCompile(`\$\{([A-Za-z]+)\}`)
	var cases []simCase
	seen := map[string]bool{}
	for _, a := range actions {
		seen[a.Action] = true
		want := "ImplicitlyDenied"
		if allowed[a.Action] {
			want = "Allowed"
		}
		resources := []string{"*"}
		if len(a.ResourceArns) > 0 {
			resources = nil
			for _, arn := range a.ResourceArns {
				resources = append(resources, placeholder.ReplaceAllStringFunc(arn, func(m string) string {
					if v, ok := orgArnValues[placeholder.FindStringSubmatch(m)[1]]; ok {
						return v
					}
					return "x1"
				}))
			}
		}
		for _, r := range resources {
			cases = append(cases, simCase{Name: a.Action + " on " + r, Principal: simRole, Action: a.Action, Resource: r,
				Account: orgManagement, IdentityPolicies: identity, want: want})
		}
	}
	for _, must := range []string{"organizations:MoveAccount", "organizations:CreateAccount", "organizations:LeaveOrganization",
		"organizations:ListAccounts", "organizations:DescribeAccount", "organizations:ListRoots"} {
		if !seen[must] || allowed[must] {
			t.Errorf("%s: in the simulator's list %t, allowed %t; want listed and denied", must, seen[must], allowed[must])
		}
	}
	for a := range allowed {
		if !seen[a] {
			t.Errorf("the simulator's action list lacks %s", a)
		}
	}
	// The target OU and root, by name, as the function calls them.
	cases = append(cases,
		simCase{Name: "list the accounts of the target OU", Principal: simRole, Action: "organizations:ListAccountsForParent", Resource: orgTargetOU,
			Account: orgManagement, IdentityPolicies: identity, want: "Allowed"},
		simCase{Name: "list the OUs of the root", Principal: simRole, Action: "organizations:ListOrganizationalUnitsForParent", Resource: orgRoot,
			Account: orgManagement, IdentityPolicies: identity, want: "Allowed"},
		simCase{Name: "without organization-read.json, list the accounts of the target OU", Principal: simRole, Action: "organizations:ListAccountsForParent",
			Resource: orgTargetOU, Account: orgManagement, IdentityPolicies: []any{fn.Map()}, want: "ImplicitlyDenied"},
	)
	simulate(t, cases)
}
