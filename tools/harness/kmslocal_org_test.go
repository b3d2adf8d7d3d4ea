package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/organizations"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

// kmslocalOnly builds only the kmslocal command (Build also builds the
// function and the Runtime Interface Emulator, which these tests do not
// run).
func kmslocalOnly(t *testing.T) *Binaries {
	t.Helper()
	root, err := FindRoot("")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "kmslocal")
	cmd := exec.CommandContext(t.Context(), goCommand(), "build", "-o", bin, "./tools/kmslocal")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build kmslocal: %v\n%s", err, out)
	}
	return &Binaries{KMSLocal: bin, Root: root}
}

func TestKMSLocalOrganizationOption(t *testing.T) {
	bins := kmslocalOnly(t)
	org := &kmsemu.Organization{
		ID: "o-exampleorg1", ManagementAccount: Account, RootID: "r-ex12",
		Units:    []kmsemu.OrganizationUnit{{ID: "ou-ex12-aaaaaaaa", Name: "Workloads", Parent: "r-ex12"}},
		Accounts: []kmsemu.OrganizationAccount{{ID: "111111111111", Parent: "ou-ex12-aaaaaaaa"}},
	}

	t.Run("the organization is served, next to an inline fleet, and its file removed on Close", func(t *testing.T) {
		k, err := StartKMSLocal(t.Context(), bins, KMSLocalOptions{Organization: org, FleetJSON: `[{"alias": "alias/home"}]`})
		if err != nil {
			t.Fatal(err)
		}
		defer k.Close()
		out, err := k.Organizations().ListAccountsForParent(t.Context(), &organizations.ListAccountsForParentInput{ParentId: aws.String("ou-ex12-aaaaaaaa")})
		if err != nil || len(out.Accounts) != 1 || aws.ToString(out.Accounts[0].Id) != "111111111111" {
			t.Fatalf("ListAccountsForParent: %+v, %v", out, err)
		}
		if _, err := k.KMS("").DescribeKey(t.Context(), &kms.DescribeKeyInput{KeyId: aws.String("alias/home")}); err != nil {
			t.Fatalf("the fleet is not loaded alongside: %v", err)
		}
		file := k.OrganizationFile
		if _, err := os.Stat(file); err != nil {
			t.Fatalf("OrganizationFile %q: %v", file, err)
		}
		k.Close()
		if _, err := os.Stat(file); !os.IsNotExist(err) {
			t.Fatalf("OrganizationFile %q after Close: %v", file, err)
		}
	})
	t.Run("without the option there is no organization", func(t *testing.T) {
		k, err := StartKMSLocal(t.Context(), bins, KMSLocalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer k.Close()
		_, err = k.Organizations().DescribeOrganization(t.Context(), &organizations.DescribeOrganizationInput{})
		if err == nil || !strings.Contains(err.Error(), "AWSOrganizationsNotInUseException") || k.OrganizationFile != "" {
			t.Fatalf("DescribeOrganization: %v (file %q)", err, k.OrganizationFile)
		}
	})
	t.Run("an invalid organization fails the start with kmslocal's error", func(t *testing.T) {
		bad := *org
		bad.Accounts = []kmsemu.OrganizationAccount{{ID: "111111111111", Parent: "ou-ex12-zzzzzzzz"}}
		k, err := StartKMSLocal(t.Context(), bins, KMSLocalOptions{Organization: &bad})
		if err == nil {
			k.Close()
			t.Fatal("started")
		}
		if !strings.Contains(err.Error(), `unknown parent "ou-ex12-zzzzzzzz"`) {
			t.Fatalf("error %v does not name the bad entry", err)
		}
	})
}
