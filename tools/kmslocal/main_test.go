package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu/emutest"
)

func TestHelpDocumentsEveryFlag(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"-h"}, &out); err != nil {
		t.Fatalf("-h: %v", err)
	}
	for _, f := range []string{"-addr", "-fleet", "-account", "-region", "-rotation-delay", "-material-delay", "-list-after-material", "-replica-delay", "-on-demand-limit", "-latency", "-quota-scale", "-fail-rate", "-drop-rate", "-seed", "-quiet", "-roles", "-organization", "AWS_ENDPOINT_URL"} {
		if !strings.Contains(out.String(), f) {
			t.Errorf("-h does not mention %s", f)
		}
	}
}

func TestBadArgumentsAreErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`[{"keySpec":"NOPE"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	badOrg := filepath.Join(t.TempDir(), "org.json")
	if err := os.WriteFile(badOrg, []byte(`{"id":"o-exampleorg1","managementAccount":"012345678912","rootId":"r-ex12","units":[{"id":"ou-ex12-aaaaaaaa","parent":"r-nope"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"non-loopback address is refused", []string{"-addr", "0.0.0.0:4599"}, "loopback only"},
		{"fail rate above 1 is refused", []string{"-fail-rate", "2"}, "between 0 and 1"},
		{"negative quota scale is refused", []string{"-quota-scale", "-1"}, "must not be negative"},
		{"zero on-demand limit is refused", []string{"-on-demand-limit", "0"}, "at least 1"},
		{"missing fleet file is an error", []string{"-fleet", "/nonexistent/fleet.json"}, "no such file"},
		{"invalid fleet names the entry", []string{"-fleet", bad}, "fleet entry 0"},
		{"missing organization file is an error", []string{"-organization", "/nonexistent/org.json"}, "-organization: organization: open"},
		{"invalid organization names the entry", []string{"-organization", badOrg}, `units[0] (ou-ex12-aaaaaaaa): unknown parent "r-nope"`},
		{"stray argument is refused", []string{"extra"}, "unexpected arguments"},
		{"unknown flag is refused", []string{"-nope"}, "not defined"},
		{"a role that is not a role ARN is refused", []string{"-roles", "arn:aws:iam::222233334444:role/a,kms-rotator-member"}, `-roles: "kms-rotator-member" is not an IAM role ARN`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out strings.Builder
			err := run(context.Background(), c.args, &out)
			if err == nil || !strings.Contains(err.Error()+out.String(), c.want) {
				t.Fatalf("error %v (output %q), want %q", err, out.String(), c.want)
			}
		})
	}
}

func TestServesTheDemoFleetAndStopsCleanly(t *testing.T) {
	const fleet = "../../events/fleet.json"
	// The demo fleet grows with the product; the log must name as many keys
	// as the emulator library loads from it.
	lib := kmsemu.New(kmsemu.Options{})
	if err := lib.LoadFleetFile(fleet); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr emutest.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-fleet", fleet, "-account", "012345678912", "-rotation-delay", "0"}, &stderr)
	}()
	addr := regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)
	var url string
	for deadline := time.Now().Add(30 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := addr.FindStringSubmatch(stderr.String()); m != nil {
			url = m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("exited early: %v\n%s", err, stderr.String())
		default:
		}
	}
	if url == "" {
		t.Fatalf("never listened: %s", stderr.String())
	}
	creds := credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")
	c := kms.New(kms.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), Credentials: creds})
	out, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/payments")})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(out.KeyMetadata.Arn); !strings.HasPrefix(got, "arn:aws:kms:us-east-1:012345678912:key/") {
		t.Fatalf("ARN %s", got)
	}
	if _, err := c.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: out.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	// EventBridge on the same port, signed for another region; the event
	// comes back from GET /_kmslocal/events.
	eb := eventbridge.New(eventbridge.Options{Region: "eu-west-1", BaseEndpoint: aws.String(url), Credentials: creds})
	put, err := eb.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{
		{Source: aws.String("kms-rotator"), DetailType: aws.String("KMS Rotation Run Completed"), Detail: aws.String(`{"runId":"r-1"}`)}}})
	if err != nil || put.FailedEntryCount != 0 {
		t.Fatalf("PutEvents: %v %+v", err, put)
	}
	resp, err := http.Get(url + "/_kmslocal/events")
	if err != nil {
		t.Fatal(err)
	}
	var evs []map[string]any
	err = json.NewDecoder(resp.Body).Decode(&evs)
	resp.Body.Close()
	if err != nil || len(evs) != 1 || evs[0]["Detail"] != `{"runId":"r-1"}` || evs[0]["EventBusName"] != "default" || evs[0]["Region"] != "eu-west-1" {
		t.Fatalf("GET /_kmslocal/events: %v %v", evs, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("did not stop")
	}
	log := stderr.String()
	for _, want := range []string{fmt.Sprintf("%d keys from", lib.KeyCount()), "op=PutEvents region=eu-west-1 key=- status=200 code=OK", "op=DescribeKey region=us-east-1 key=c0ffee00-5a1e-4b0b-9a7e-0000000000aa", "op=RotateKeyOnDemand", "code=OK", "shutting down"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	sc := bufio.NewScanner(strings.NewReader(log))
	n := 0
	for sc.Scan() {
		if strings.Contains(sc.Text(), " op=") {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d request log lines, want 3", n)
	}
}

// startCommand runs kmslocal with args on a free loopback port until the
// test ends and returns its URL.
func startCommand(t *testing.T, args ...string) (string, *emutest.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr emutest.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), &stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("did not stop")
		}
	})
	addr := regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := addr.FindStringSubmatch(stderr.String()); m != nil {
			return m[1], &stderr
		}
		select {
		case err := <-done:
			t.Fatalf("exited early: %v\n%s", err, stderr.String())
		default:
		}
	}
	t.Fatalf("never listened: %s", stderr.String())
	return "", nil
}

func TestRolesFlagServesMemberAccounts(t *testing.T) {
	const member = "222233334444"
	fleet := filepath.Join(t.TempDir(), "fleet.json")
	if err := os.WriteFile(fleet, []byte(`[
	  {"alias": "alias/home"},
	  {"alias": "alias/member", "account": "`+member+`"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	role := "arn:aws:iam::" + member + ":role/org/rotator"
	url, stderr := startCommand(t, "-fleet", fleet, "-account", "012345678912", "-roles", role)
	ctx := context.Background()
	creds := credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")
	stsc := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), Credentials: creds})

	if _, err := stsc.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(emutest.MemberRole(member)), RoleSessionName: aws.String("run-1")}); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("the default member role with -roles set: %v", err)
	}
	out, err := stsc.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("run-1")})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(out.AssumedRoleUser.Arn); got != "arn:aws:sts::"+member+":assumed-role/rotator/run-1" {
		t.Fatalf("assumed role ARN %s", got)
	}
	c := out.Credentials
	memberCreds := credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))
	for _, tc := range []struct {
		name  string
		creds aws.CredentialsProvider
		alias string
		arn   string
	}{
		{"assumed credentials act in the member account", memberCreds, "alias/member", "arn:aws:kms:us-east-1:" + member + ":key/"},
		{"other credentials act in the -account account", creds, "alias/home", "arn:aws:kms:us-east-1:012345678912:key/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := kms.New(kms.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), Credentials: tc.creds})
			d, err := k.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(tc.alias)})
			if err != nil {
				t.Fatal(err)
			}
			if got := aws.ToString(d.KeyMetadata.Arn); !strings.HasPrefix(got, tc.arn) {
				t.Fatalf("ARN %s, want %s…", got, tc.arn)
			}
		})
	}
	if log := stderr.String(); !strings.Contains(log, "op=AssumeRole") || !strings.Contains(log, "account="+member) {
		t.Errorf("log lacks the AssumeRole and member-account lines:\n%s", log)
	}
}

func TestOrganizationFlagServesTheOrganization(t *testing.T) {
	const member, suspended = "111111111111", "444444444444"
	org := filepath.Join(t.TempDir(), "org.json")
	if err := os.WriteFile(org, []byte(`{"id": "o-exampleorg1", "managementAccount": "012345678912", "rootId": "r-ex12",
	  "units": [{"id": "ou-ex12-aaaaaaaa", "name": "Workloads", "parent": "r-ex12"}],
	  "accounts": [{"id": "`+member+`", "parent": "ou-ex12-aaaaaaaa"},
	               {"id": "`+suspended+`", "parent": "ou-ex12-aaaaaaaa", "state": "SUSPENDED"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	url, stderr := startCommand(t, "-organization", org, "-account", "012345678912")
	ctx := context.Background()
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(url), Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")}
	oc := organizations.NewFromConfig(cfg)
	d, err := oc.DescribeOrganization(ctx, &organizations.DescribeOrganizationInput{})
	if err != nil || aws.ToString(d.Organization.MasterAccountId) != "012345678912" {
		t.Fatalf("DescribeOrganization: %+v, %v", d, err)
	}
	l, err := oc.ListAccountsForParent(ctx, &organizations.ListAccountsForParentInput{ParentId: aws.String("ou-ex12-aaaaaaaa")})
	if err != nil || len(l.Accounts) != 2 || aws.ToString(l.Accounts[0].Id) != member || l.Accounts[1].State != "SUSPENDED" {
		t.Fatalf("ListAccountsForParent: %+v, %v", l, err)
	}
	// The default roles: the ACTIVE member, not the suspended one nor the
	// management account.
	stsc := sts.NewFromConfig(cfg)
	for account, ok := range map[string]bool{member: true, suspended: false, "012345678912": false} {
		_, err := stsc.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(emutest.MemberRole(account)), RoleSessionName: aws.String("run-1")})
		if (err == nil) != ok || (err != nil && !strings.Contains(err.Error(), "AccessDenied")) {
			t.Errorf("AssumeRole in %s: %v, want allowed=%v", account, err, ok)
		}
	}
	if log := stderr.String(); !strings.Contains(log, "op=ListAccountsForParent region=us-east-1 key=ou-ex12-aaaaaaaa status=200") {
		t.Errorf("log lacks the ListAccountsForParent line:\n%s", log)
	}
}

func TestListAfterMaterialFlagListsARotationOnceItsMaterialIsCurrent(t *testing.T) {
	fleet := filepath.Join(t.TempDir(), "fleet.json")
	if err := os.WriteFile(fleet, []byte(`[{"alias": "alias/a"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		flags  []string
		listed int
	}{
		{"without the flag the rotation is listed once the status clears", nil, 1},
		{"with -list-after-material it is not listed while its material is pending", []string{"-list-after-material"}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The rotation leaves "in progress" at once, and its
			// material stays pending for the whole test.
			url, _ := startCommand(t, append([]string{"-fleet", fleet, "-rotation-delay", "0", "-material-delay", "1h", "-quiet"}, tt.flags...)...)
			ctx := context.Background()
			c := kms.New(kms.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")})
			d, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/a")})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: d.KeyMetadata.KeyId}); err != nil {
				t.Fatal(err)
			}
			st, err := c.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: d.KeyMetadata.KeyId})
			if err != nil || st.OnDemandRotationStartDate != nil {
				t.Fatalf("GetKeyRotationStatus: %v, OnDemandRotationStartDate %v: want the status clear", err, st.OnDemandRotationStartDate)
			}
			l, err := c.ListKeyRotations(ctx, &kms.ListKeyRotationsInput{KeyId: d.KeyMetadata.KeyId})
			if err != nil {
				t.Fatal(err)
			}
			if len(l.Rotations) != tt.listed {
				t.Fatalf("%d rotations listed, want %d", len(l.Rotations), tt.listed)
			}
		})
	}
}

// TestDocumentedConflictExample runs the "Start it" example of
// docs/kmslocal.md: kmslocal started with the documented flags, then
// rotate-key-on-demand, get-key-rotation-status and a second
// rotate-key-on-demand, which must be ConflictException on any machine.
// The AWS CLI takes a second or two a command on a slow machine, so the
// documented -rotation-delay must keep the rotation in progress far longer
// than the commands between the two calls take.
func TestDocumentedConflictExample(t *testing.T) {
	const root = "../../"
	doc, err := os.ReadFile(root + "docs/kmslocal.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, found := strings.Cut(string(doc), "## Start it")
	if !found {
		t.Fatal(`docs/kmslocal.md has no "## Start it" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var args []string
	for _, line := range strings.Split(section, "\n") {
		if rest, ok := strings.CutPrefix(line, "go run ./tools/kmslocal "); ok {
			rest, _, _ = strings.Cut(rest, "&")
			args = strings.Fields(rest)
			break
		}
	}
	if args == nil {
		t.Fatal(`"## Start it" has no "go run ./tools/kmslocal …" line`)
	}
	const keyID = "c0ffee00-5a1e-4b0b-9a7e-0000000000aa"
	var rotations []string // the documented rotate-key-on-demand lines for the key
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "aws kms rotate-key-on-demand --key-id "+keyID) {
			rotations = append(rotations, line)
		}
	}
	if len(rotations) != 2 || !strings.Contains(rotations[1], "ConflictException") {
		t.Fatalf("want two rotate-key-on-demand lines for %s, the second answering ConflictException: %q", keyID, rotations)
	}

	delay := 2 * time.Second // kmslocal's default
	for i, a := range args {
		v, ok := strings.CutPrefix(a, "-rotation-delay=")
		if a == "-rotation-delay" && i+1 < len(args) {
			v, ok = args[i+1], true
		}
		if ok {
			if delay, err = time.ParseDuration(v); err != nil {
				t.Fatalf("-rotation-delay %q: %v", v, err)
			}
		}
		if a == "-fleet" && i+1 < len(args) {
			args[i+1] = filepath.Join(root, args[i+1]) // the docs run from the repository root
		}
	}
	if delay < 30*time.Second {
		t.Errorf("the documented kmslocal keeps a rotation in progress for %v: two AWS CLI commands on a slow machine can outlast that, and the second rotate-key-on-demand then succeeds; give it -rotation-delay of at least 30s", delay)
	}

	url, _ := startCommand(t, append(args, "-quiet")...)
	ctx := context.Background()
	c := kms.New(kms.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""), RetryMaxAttempts: 1})
	if _, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/payments")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyID)}); err != nil {
		t.Fatal(err)
	}
	st, err := c.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(keyID)})
	if err != nil || st.OnDemandRotationStartDate == nil {
		t.Fatalf("GetKeyRotationStatus: %v, OnDemandRotationStartDate %v: want the rotation in progress", err, st)
	}
	_, err = c.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyID)})
	var conflict *kmstypes.ConflictException
	if !errors.As(err, &conflict) {
		t.Fatalf("second RotateKeyOnDemand: %v, want ConflictException", err)
	}
}
