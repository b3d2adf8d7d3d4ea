package e2e

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kms-rotator/kms-rotator/tools/harness"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/moto"
)

// The targets request (docs/design.md "The targets request") from the built
// function, against kmslocal's Organizations API: the function's account
// (harness.Account) is a delegated administrator of an organization whose
// OUs nest, hold a suspended account and, through the root, the management
// account.

const (
	tgtManagement = "999900000000"
	tgtProd       = "222200000001"
	tgtNested     = "222200000002"
	tgtSuspended  = "222200000003"
	tgtExplicit   = "111100000001" // named by ID, outside the OUs
)

func exampleOrganization(delegated string) *kmsemu.Organization {
	return &kmsemu.Organization{
		ID: "o-exampleorg1", ManagementAccount: tgtManagement, RootID: "r-ex12",
		DelegatedAdministrators: []string{delegated},
		Units: []kmsemu.OrganizationUnit{
			{ID: "ou-ex12-aaaaaaaa", Name: "Workloads", Parent: "r-ex12"},
			{ID: "ou-ex12-bbbbbbbb", Name: "Prod", Parent: "ou-ex12-aaaaaaaa"},
		},
		Accounts: []kmsemu.OrganizationAccount{
			{ID: harness.Account, Name: "security", Parent: "r-ex12"},
			{ID: tgtProd, Name: "prod", Parent: "ou-ex12-aaaaaaaa"},
			{ID: tgtNested, Name: "prod-eu", Parent: "ou-ex12-bbbbbbbb"},
			{ID: tgtSuspended, Name: "old", Parent: "ou-ex12-aaaaaaaa", State: "SUSPENDED"},
		},
	}
}

func targetsEnv(t *testing.T, delegated string) (*harness.Env, *moto.Server) {
	t.Helper()
	fnEnv, s3 := orgEnvS3(t)
	return harness.StartTB(t, harness.Options{
		KMSLocal: harness.KMSLocalOptions{FleetJSON: orgFleet, Organization: exampleOrganization(delegated), Args: completeAtOnce},
		Function: harness.FunctionOptions{Env: fnEnv},
	}), s3
}

// targetsAnswer is the part of the answer (and of the resolution it
// names) this test reads.
type targetsAnswer struct {
	Mode       string `json:"mode"`
	Account    string `json:"account"`
	Items      struct{ Bucket, Key string }
	Resolution struct{ Bucket, Key string }
	Targets    []struct{ Account, Region string }
	Accounts   []struct{ Account, From, Name string }
	Excluded   []struct{ Account, From, Reason, State string }
	Summary    struct{ Accounts, Targets, Excluded int }
}

// readJSON reads one object of the organization bucket into v.
func readJSON(t *testing.T, s3srv *moto.Server, key string, v any) {
	t.Helper()
	out, err := s3srv.S3().GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(orgBucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("s3://%s/%s: %v", orgBucket, key, err)
	}
	defer out.Body.Close()
	if err := json.NewDecoder(out.Body).Decode(v); err != nil {
		t.Fatalf("s3://%s/%s: %v", orgBucket, key, err)
	}
}

func TestTargetsRequestListsTheOrganizationFromTheBuiltFunction(t *testing.T) {
	env, s3srv := targetsEnv(t, harness.Account)
	out, err := env.Function.Invoke(t.Context(), []byte(`{"mode":"targets","orgTargets":["`+tgtExplicit+`","ou-ex12-aaaaaaaa","r-ex12"],"orgRegions":["us-east-1","eu-west-1"],"execution":"e2e-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	var answer targetsAnswer
	if err := json.Unmarshal(out, &answer); err != nil {
		t.Fatalf("answer %s: %v", out, err)
	}
	if answer.Items.Key != "runs/e2e-1/targets.json" || answer.Resolution.Key != "runs/e2e-1/resolution.json" || answer.Targets != nil {
		t.Fatalf("answer %s: want the targets in S3, under the execution", out)
	}
	var items []struct{ Account, Region string }
	readJSON(t, s3srv, answer.Items.Key, &items)
	var a targetsAnswer
	readJSON(t, s3srv, answer.Resolution.Key, &a)
	if !reflect.DeepEqual(items, a.Targets) {
		t.Fatalf("targets.json %v differs from the resolution's %v", items, a.Targets)
	}
	var accounts []string
	for _, x := range a.Accounts {
		accounts = append(accounts, x.Account+"<"+x.From)
	}
	// Sorted by ID; the function's own account comes through the root.
	want := []string{harness.Account + "<r-ex12", tgtExplicit + "<" + tgtExplicit, tgtProd + "<ou-ex12-aaaaaaaa", tgtNested + "<ou-ex12-aaaaaaaa"}
	if !reflect.DeepEqual(accounts, want) {
		t.Fatalf("accounts %v, want %v\n%s", accounts, want, out)
	}
	var excluded []string
	for _, x := range a.Excluded {
		excluded = append(excluded, x.Account+":"+x.Reason+":"+x.State)
	}
	wantExcluded := []string{tgtSuspended + ":not-active:SUSPENDED", tgtManagement + ":management-account:"}
	if !reflect.DeepEqual(excluded, wantExcluded) {
		t.Fatalf("excluded %v, want %v", excluded, wantExcluded)
	}
	if a.Mode != "targets" || a.Account != harness.Account || len(a.Targets) != 8 || a.Summary.Targets != 8 || a.Summary.Excluded != 2 ||
		a.Targets[0].Account != harness.Account || a.Targets[0].Region != "us-east-1" || a.Targets[1].Region != "eu-west-1" {
		t.Fatalf("answer %s", out)
	}
	// No key was touched: the request calls Organizations only.
	st, err := env.KMS.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"GetResources", "ListKeyRotations", "RotateKeyOnDemand", "DescribeKey", "AssumeRole"} {
		if n := st.Op(op).Calls; n != 0 {
			t.Errorf("%s called %d times by a targets request", op, n)
		}
	}
	// Workloads, Prod and the root: one page of accounts and one of OUs
	// each (the root's OU is listed once), after one DescribeOrganization.
	if d, a, u := st.Op("DescribeOrganization").Calls, st.Op("ListAccountsForParent").Calls, st.Op("ListOrganizationalUnitsForParent").Calls; d != 1 || a != 3 || u != 3 {
		t.Errorf("Organizations calls: %d DescribeOrganization, %d ListAccountsForParent, %d ListOrganizationalUnitsForParent; want 1, 3, 3", d, a, u)
	}
}

func TestTargetsRequestFailsWithoutDelegation(t *testing.T) {
	env, _ := targetsEnv(t, tgtProd) // the function's account is not the delegated administrator
	_, err := env.Function.Invoke(t.Context(), []byte(`{"mode":"targets","orgTargets":["ou-ex12-aaaaaaaa"],"orgRegions":["us-east-1"]}`))
	var he *harness.HandlerError
	if !errors.As(err, &he) || !strings.Contains(err.Error(), "needs account "+harness.Account+" to be the organization's management account or a delegated administrator") {
		t.Fatalf("error %v; want a handler error naming the delegation", err)
	}
	env, _ = targetsEnv(t, harness.Account)
	_, err = env.Function.Invoke(t.Context(), []byte(`{"mode":"targets","orgTargets":["ou-ex12-zzzzzzzz"],"orgRegions":["us-east-1"]}`))
	if !errors.As(err, &he) || !strings.Contains(err.Error(), "ou-ex12-zzzzzzzz is not a root or OU of the organization") {
		t.Fatalf("unknown OU: error %v", err)
	}
}
