package kmsemu_test

import (
	"context"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	tagging "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu/emutest"
)

const (
	memberA = "222233334444"
	memberB = "555566667777"
	// keys of the two-account fleet
	keyHome = "aaaaaaaa-0000-4000-8000-000000000001"
	keyMemA = "aaaaaaaa-0000-4000-8000-000000000002"
	keyMemB = "aaaaaaaa-0000-4000-8000-000000000003"
	mrkMemA = "mrk-aaaaaaaa00004000800000000000000a"
)

// twoAccountFleet has a key in the default account and in two member
// accounts; member A has a multi-Region key with a replica, and an alias
// name used in two accounts.
const twoAccountFleet = `[
  {"keyId": "` + keyHome + `", "alias": "alias/shared", "tags": {"kms-rotator": "enabled"}},
  {"keyId": "` + keyMemA + `", "account": "` + memberA + `", "alias": "alias/shared", "tags": {"kms-rotator": "enabled"}},
  {"keyId": "` + keyMemB + `", "account": "` + memberB + `", "tags": {"kms-rotator": "enabled"}},
  {"keyId": "` + mrkMemA + `", "account": "` + memberA + `", "alias": "alias/global", "region": "eu-west-1", "multiRegionKeyType": "PRIMARY", "tags": {"kms-rotator": "enabled"}},
  {"account": "` + memberA + `", "region": "us-east-1", "multiRegionKeyType": "REPLICA", "primaryAlias": "alias/global", "tags": {"kms-rotator": "enabled"}}
]`

func listKeyIDs(t *testing.T, c *kms.Client) []string {
	t.Helper()
	out, err := c.ListKeys(context.Background(), &kms.ListKeysInput{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range out.Keys {
		ids = append(ids, aws.ToString(k.KeyId))
	}
	sort.Strings(ids)
	return ids
}

func TestAssumedRoleActsInTheRolesAccount(t *testing.T) {
	e := emutest.Start(t, kmsemu.Options{RotationDelay: time.Hour}, twoAccountFleet)
	ctx := context.Background()
	cfgA := e.AssumeRole(t, "us-east-1", emutest.MemberRole(memberA))
	kmsA := kms.NewFromConfig(cfgA)

	t.Run("ListKeys lists only the role's account's keys", func(t *testing.T) {
		if got := strings.Join(listKeyIDs(t, kmsA), ","); got != keyMemA+","+mrkMemA {
			t.Fatalf("member A lists %s", got)
		}
		if got := strings.Join(listKeyIDs(t, e.KMS("us-east-1")), ","); got != keyHome {
			t.Fatalf("the default account lists %s", got)
		}
	})
	t.Run("DescribeKey answers the role's account in the ARN and AWSAccountId", func(t *testing.T) {
		out, err := kmsA.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/shared")})
		if err != nil {
			t.Fatal(err)
		}
		md := out.KeyMetadata
		if aws.ToString(md.KeyId) != keyMemA || aws.ToString(md.AWSAccountId) != memberA ||
			aws.ToString(md.Arn) != "arn:aws:kms:us-east-1:"+memberA+":key/"+keyMemA {
			t.Fatalf("got %s %s %s", aws.ToString(md.KeyId), aws.ToString(md.AWSAccountId), aws.ToString(md.Arn))
		}
		rep, err := kmsA.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(mrkMemA)})
		if err != nil {
			t.Fatal(err)
		}
		if p := aws.ToString(rep.KeyMetadata.MultiRegionConfiguration.PrimaryKey.Arn); p != "arn:aws:kms:eu-west-1:"+memberA+":key/"+mrkMemA {
			t.Fatalf("replica's primary %s", p)
		}
	})
	t.Run("another account's key is not found by ID and denied by ARN", func(t *testing.T) {
		_, err := kmsA.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyHome)})
		wantCode(t, err, "NotFoundException")
		_, err = kmsA.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("arn:aws:kms:us-east-1:" + emutest.Account + ":key/" + keyHome)})
		wantCode(t, err, "AccessDeniedException")
	})
	t.Run("GetResources returns the role's account's ARNs", func(t *testing.T) {
		out, err := tagging.NewFromConfig(cfgA).GetResources(ctx, &tagging.GetResourcesInput{})
		if err != nil {
			t.Fatal(err)
		}
		var arns []string
		for _, m := range out.ResourceTagMappingList {
			arns = append(arns, aws.ToString(m.ResourceARN))
		}
		sort.Strings(arns)
		want := "arn:aws:kms:us-east-1:" + memberA + ":key/" + keyMemA + ",arn:aws:kms:us-east-1:" + memberA + ":key/" + mrkMemA
		if strings.Join(arns, ",") != want {
			t.Fatalf("got %v", arns)
		}
	})
	t.Run("RotateKeyOnDemand rotates the role's account's key only", func(t *testing.T) {
		if _, err := kmsA.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyMemA)}); err != nil {
			t.Fatal(err)
		}
		st, err := kmsA.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(keyMemA)})
		if err != nil {
			t.Fatal(err)
		}
		if st.OnDemandRotationStartDate == nil {
			t.Fatal("member A's key is not rotating")
		}
		home, err := e.KMS("us-east-1").GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(keyHome)})
		if err != nil {
			t.Fatal(err)
		}
		if home.OnDemandRotationStartDate != nil {
			t.Fatal("the default account's key rotates too")
		}
	})
	t.Run("PutEvents records the role's account", func(t *testing.T) {
		_, err := eventbridge.NewFromConfig(cfgA).PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{
			{Source: aws.String("kms-rotator"), DetailType: aws.String("Test"), Detail: aws.String("{}")}}})
		if err != nil {
			t.Fatal(err)
		}
		evs := e.Server.Events()
		if len(evs) != 1 || evs[0].Account != memberA || !strings.Contains(evs[0].EventBusARN, ":"+memberA+":") {
			t.Fatalf("events %+v", evs)
		}
	})
	t.Run("a second role's credentials act in its own account", func(t *testing.T) {
		kmsB := kms.NewFromConfig(e.AssumeRole(t, "eu-west-1", emutest.MemberRole(memberB)))
		if got := listKeyIDs(t, kmsB); len(got) != 0 {
			t.Fatalf("member B lists %v in eu-west-1", got)
		}
		kmsB = kms.NewFromConfig(e.AssumeRole(t, "us-east-1", emutest.MemberRole(memberB)))
		if got := strings.Join(listKeyIDs(t, kmsB), ","); got != keyMemB {
			t.Fatalf("member B lists %s", got)
		}
	})
	t.Run("stats count requests by account", func(t *testing.T) {
		st := e.Server.Stats()
		if got := st.Accounts[memberA]["RotateKeyOnDemand"].Calls; got != 1 {
			t.Fatalf("member A RotateKeyOnDemand calls %d (%+v)", got, st.Accounts)
		}
		if got := st.Accounts[emutest.Account]["AssumeRole"].Calls; got < 1 {
			t.Fatalf("AssumeRole calls by the default account %d", got)
		}
		if _, ok := st.Accounts[emutest.Account]["RotateKeyOnDemand"]; ok {
			t.Fatal("the default account rotated")
		}
	})
	t.Run("unknown credentials act in the -account account", func(t *testing.T) {
		cfg := e.Config("us-east-1")
		cfg.Credentials = aws.NewCredentialsCache(aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "ASIANOTISSUEDBYSTS0", SecretAccessKey: "x", SessionToken: "y"}, nil
		}))
		if got := strings.Join(listKeyIDs(t, kms.NewFromConfig(cfg)), ","); got != keyHome {
			t.Fatalf("unknown credentials list %s", got)
		}
	})
}

func TestAssumeRole(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	e := emutest.Start(t, kmsemu.Options{Now: func() time.Time { return now }}, twoAccountFleet)
	c := e.STS("us-east-1")

	t.Run("answers credentials and the assumed-role user", func(t *testing.T) {
		out, err := c.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(emutest.MemberRole(memberA)), RoleSessionName: aws.String("run-42"), DurationSeconds: aws.Int32(900)})
		if err != nil {
			t.Fatal(err)
		}
		cr := out.Credentials
		if !strings.HasPrefix(aws.ToString(cr.AccessKeyId), "ASIA") || len(aws.ToString(cr.AccessKeyId)) != 20 ||
			len(aws.ToString(cr.SecretAccessKey)) != 40 || aws.ToString(cr.SessionToken) == "" {
			t.Fatalf("credentials %+v", cr)
		}
		if !aws.ToTime(cr.Expiration).Equal(now.Add(900 * time.Second)) {
			t.Fatalf("expiration %v", cr.Expiration)
		}
		u := out.AssumedRoleUser
		if aws.ToString(u.Arn) != "arn:aws:sts::"+memberA+":assumed-role/kms-rotator-member/run-42" ||
			!strings.HasPrefix(aws.ToString(u.AssumedRoleId), "AROA") || !strings.HasSuffix(aws.ToString(u.AssumedRoleId), ":run-42") {
			t.Fatalf("assumed role user %s %s", aws.ToString(u.Arn), aws.ToString(u.AssumedRoleId))
		}
	})
	t.Run("default duration is one hour", func(t *testing.T) {
		out, err := c.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(emutest.MemberRole(memberB)), RoleSessionName: aws.String("s1")})
		if err != nil {
			t.Fatal(err)
		}
		if !aws.ToTime(out.Credentials.Expiration).Equal(now.Add(time.Hour)) {
			t.Fatalf("expiration %v", out.Credentials.Expiration)
		}
	})

	cases := []struct {
		name, role, session string
		duration            *int32
		want, message       string
	}{
		{"a role not listed is AccessDenied", "arn:aws:iam::" + memberA + ":role/other", "s1", nil, "AccessDenied",
			"User: arn:aws:iam::" + emutest.Account + ":user/kmslocal is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::" + memberA + ":role/other"},
		{"the member role of an account without fleet keys is AccessDenied", emutest.MemberRole("999988887777"), "s1", nil, "AccessDenied", ""},
		{"a one-character session name is a ValidationError", emutest.MemberRole(memberA), "x", nil, "ValidationError", ""},
		{"a 65-character session name is a ValidationError", emutest.MemberRole(memberA), strings.Repeat("s", 65), nil, "ValidationError",
			"1 validation error detected: Value '" + strings.Repeat("s", 65) + "' at 'roleSessionName' failed to satisfy constraint: Member must have length less than or equal to 64"},
		{"a session name with a space is a ValidationError", emutest.MemberRole(memberA), "run 42", nil, "ValidationError", `Member must satisfy regular expression pattern: [\w+=,.@-]*`},
		{"a duration under 900 s is a ValidationError", emutest.MemberRole(memberA), "s1", aws.Int32(899), "ValidationError", ""},
		{"a duration over 12 h is a ValidationError", emutest.MemberRole(memberA), "s1", aws.Int32(43201), "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."},
		{"a malformed role ARN is a ValidationError", "arn:aws:iam::1:role/kms-rotator-member", "s1", nil, "ValidationError", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(tc.role), RoleSessionName: aws.String(tc.session), DurationSeconds: tc.duration})
			if got := code(t, err); got != tc.want {
				t.Fatalf("got %s (%v), want %s", got, err, tc.want)
			}
			if tc.message != "" && !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("message %v, want %q", err, tc.message)
			}
		})
	}

	if got := e.Server.Stats().Op("AssumeRole"); got.Calls != int64(2+len(cases)) || got.Errors != int64(len(cases)) {
		t.Fatalf("stats %+v", got)
	}
}

func TestAssumeRoleDefaultRoles(t *testing.T) {
	s := kmsemu.New(kmsemu.Options{Account: emutest.Account})
	if got := s.Roles(); len(got) != 0 {
		t.Fatalf("no fleet: roles %v", got)
	}
	if err := s.LoadFleet(strings.NewReader(twoAccountFleet)); err != nil {
		t.Fatal(err)
	}
	want := []string{emutest.MemberRole(emutest.Account), emutest.MemberRole(memberA), emutest.MemberRole(memberB)}
	sort.Strings(want)
	if got := s.Roles(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("roles %v, want %v", got, want)
	}
	listed := kmsemu.New(kmsemu.Options{Roles: []string{"arn:aws:iam::" + memberA + ":role/custom"}})
	if err := listed.LoadFleet(strings.NewReader(twoAccountFleet)); err != nil {
		t.Fatal(err)
	}
	if got := listed.Roles(); len(got) != 1 || got[0] != "arn:aws:iam::"+memberA+":role/custom" {
		t.Fatalf("-roles given: roles %v", got)
	}
}

// TestAssumeRoleWire checks the raw Query protocol answers against the
// shapes of the STS API reference.
func TestAssumeRoleWire(t *testing.T) {
	e := emutest.Start(t, kmsemu.Options{}, twoAccountFleet)
	post := func(form url.Values) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, e.URL+"/", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := post(url.Values{"Action": {"AssumeRole"}, "Version": {"2011-06-15"}, "RoleArn": {emutest.MemberRole(memberA)}, "RoleSessionName": {"wire"}})
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/xml") {
		t.Fatalf("status %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var ok struct {
		XMLName xml.Name
		Arn     string `xml:"AssumeRoleResult>AssumedRoleUser>Arn"`
		Key     string `xml:"AssumeRoleResult>Credentials>AccessKeyId"`
		Exp     string `xml:"AssumeRoleResult>Credentials>Expiration"`
		ReqID   string `xml:"ResponseMetadata>RequestId"`
	}
	if err := xml.Unmarshal([]byte(body), &ok); err != nil {
		t.Fatal(err)
	}
	if ok.XMLName.Space != "https://sts.amazonaws.com/doc/2011-06-15/" || ok.XMLName.Local != "AssumeRoleResponse" ||
		ok.Arn == "" || ok.Key == "" || ok.ReqID != resp.Header.Get("X-Amzn-RequestId") {
		t.Fatalf("answer %s", body)
	}
	if _, err := time.Parse(time.RFC3339, ok.Exp); err != nil {
		t.Fatalf("expiration %q: %v", ok.Exp, err)
	}

	resp, body = post(url.Values{"Action": {"AssumeRole"}, "Version": {"2011-06-15"}, "RoleArn": {"arn:aws:iam::" + memberA + ":role/nope"}, "RoleSessionName": {"wire"}})
	var fail struct {
		XMLName xml.Name
		Type    string `xml:"Error>Type"`
		Code    string `xml:"Error>Code"`
		Message string `xml:"Error>Message"`
		ReqID   string `xml:"RequestId"`
	}
	if err := xml.Unmarshal([]byte(body), &fail); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 403 || fail.XMLName.Local != "ErrorResponse" || fail.Type != "Sender" || fail.Code != "AccessDenied" ||
		!strings.Contains(fail.Message, "sts:AssumeRole") || fail.ReqID == "" {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}

	resp, body = post(url.Values{"Action": {"GetCallerIdentity"}, "Version": {"2011-06-15"}})
	if resp.StatusCode != 400 || !strings.Contains(body, "<Code>InvalidAction</Code>") {
		t.Fatalf("unknown action: %d %s", resp.StatusCode, body)
	}
}

func TestFleetAccounts(t *testing.T) {
	cases := []struct {
		name, fleet, want string
	}{
		{"an account that is not 12 digits is refused", `[{"account": "12345"}]`, `fleet entry 0: account "12345" is not an account ID`},
		{"a replica in another account than its primary is refused",
			`[{"alias": "alias/g", "region": "eu-west-1", "multiRegionKeyType": "PRIMARY"},
			  {"account": "` + memberA + `", "multiRegionKeyType": "REPLICA", "primaryAlias": "alias/g"}]`,
			"fleet entry 1: a replica must be in the account of its primary"},
		{"the same key ID in two accounts is allowed",
			`[{"keyId": "` + keyHome + `"}, {"keyId": "` + keyHome + `", "account": "` + memberA + `"}]`, ""},
		{"the same key ID twice in one account is refused",
			`[{"keyId": "` + keyHome + `", "account": "` + memberA + `"}, {"keyId": "` + keyHome + `", "account": "` + memberA + `"}]`,
			"fleet entry 1: key " + keyHome + " already exists in us-east-1 of account " + memberA},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := kmsemu.New(kmsemu.Options{Account: emutest.Account}).LoadFleet(strings.NewReader(tc.fleet))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRequestQuotasArePerAccount(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	// ListKeys: 500/s × 0.002 = one request per second per account and region.
	e := emutest.Start(t, kmsemu.Options{QuotaScale: 0.002, Now: func() time.Time { return now }}, twoAccountFleet)
	noRetry := func(o *kms.Options) { o.RetryMaxAttempts = 1 }
	member := kms.NewFromConfig(e.AssumeRole(t, "us-east-1", emutest.MemberRole(memberA)), noRetry)
	home := kms.NewFromConfig(e.Config("us-east-1"), noRetry)
	ctx := context.Background()
	_, err := member.ListKeys(ctx, &kms.ListKeysInput{})
	wantCode(t, err, "")
	_, err = member.ListKeys(ctx, &kms.ListKeysInput{})
	wantCode(t, err, "ThrottlingException")
	_, err = home.ListKeys(ctx, &kms.ListKeysInput{})
	wantCode(t, err, "")
}

// FuzzAssumeRole checks that any form-encoded body gets an STS answer: 200
// with credentials or an XML ErrorResponse, never a panic or another shape.
func FuzzAssumeRole(f *testing.F) {
	f.Add("Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A" + memberA + "%3Arole%2Fkms-rotator-member&RoleSessionName=s1")
	f.Add("Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fx&RoleSessionName=a%20b&DurationSeconds=12")
	f.Add("Action=GetCallerIdentity")
	f.Add("%zz")
	e := emutest.Start(f, kmsemu.Options{Log: io.Discard}, twoAccountFleet)
	f.Fuzz(func(t *testing.T, body string) {
		req, _ := http.NewRequest(http.MethodPost, e.URL+"/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var out struct {
			XMLName xml.Name
			Key     string `xml:"AssumeRoleResult>Credentials>AccessKeyId"`
			Code    string `xml:"Error>Code"`
		}
		if err := xml.Unmarshal(b, &out); err != nil {
			t.Fatalf("status %d, not XML: %q", resp.StatusCode, b)
		}
		switch {
		case resp.StatusCode == 200 && out.XMLName.Local == "AssumeRoleResponse" && out.Key != "":
		case (resp.StatusCode == 400 || resp.StatusCode == 403) && out.XMLName.Local == "ErrorResponse" && out.Code != "":
		default:
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
	})
}

// TestAssumeRoleInARegionTheAccountHasNotEnabled: an organization account's
// disabledRegions are opt-in Regions it has not enabled, where STS issues
// its roles no credentials (RegionDisabledException); its other Regions
// and other accounts are served.
func TestAssumeRoleInARegionTheAccountHasNotEnabled(t *testing.T) {
	e := emutest.Start(t, kmsemu.Options{}, twoAccountFleet)
	org := `{"id":"o-abcdefghij","managementAccount":"` + emutest.Account + `","rootId":"r-ab12",
	 "accounts":[{"id":"` + memberA + `","disabledRegions":["ap-east-1"]},{"id":"` + memberB + `"}]}`
	if err := e.Server.LoadOrganization(strings.NewReader(org)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	assume := func(region, account string) error {
		_, err := e.STS(region).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(emutest.MemberRole(account)), RoleSessionName: aws.String("test")})
		return err
	}
	err := assume("ap-east-1", memberA)
	wantCode(t, err, "RegionDisabledException")
	if !strings.Contains(err.Error(), "STS is not activated in this region for account:"+memberA) {
		t.Fatalf("message: %v", err)
	}
	for _, c := range [][2]string{{"us-east-1", memberA}, {"ap-east-1", memberB}} {
		if err := assume(c[0], c[1]); err != nil {
			t.Errorf("%s in %s: %v", c[1], c[0], err)
		}
	}
	bad := `{"id":"o-abcdefghij","managementAccount":"` + emutest.Account + `","rootId":"r-ab12","accounts":[{"id":"` + memberA + `","disabledRegions":["Mars"]}]}`
	if err := e.Server.LoadOrganization(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), `disabledRegions[0] "Mars" is not a Region name`) {
		t.Fatalf("a bad Region: %v", err)
	}
}
