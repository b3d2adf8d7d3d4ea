package request

import (
	"strings"
	"testing"
)

func TestParseKeyRefAccepts(t *testing.T) {
	long := "alias/" + strings.Repeat("a", 250)
	for _, tc := range []struct {
		name string
		in   string
		want KeyRef
	}{
		{"key ID", "1234abcd-12ab-34cd-56ef-1234567890ab",
			KeyRef{Kind: KeyID, ID: "1234abcd-12ab-34cd-56ef-1234567890ab"}},
		{"multi-Region key ID", "mrk-1234abcd12ab34cd56ef1234567890ab",
			KeyRef{Kind: KeyID, ID: "mrk-1234abcd12ab34cd56ef1234567890ab"}},
		{"key ARN", "arn:aws:kms:us-east-1:012345678912:key/0987dcba-09fe-87dc-65ba-ab0987654321",
			KeyRef{Kind: KeyARN, Partition: "aws", Region: "us-east-1", Account: "012345678912", ID: "0987dcba-09fe-87dc-65ba-ab0987654321"}},
		{"multi-Region key ARN", "arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
			KeyRef{Kind: KeyARN, Partition: "aws", Region: "eu-west-1", Account: "111122223333", ID: "mrk-1234abcd12ab34cd56ef1234567890ab"}},
		{"alias name", "alias/payments", KeyRef{Kind: AliasName, Alias: "alias/payments"}},
		{"alias name with every allowed character", "alias/Team_1/pay-ments", KeyRef{Kind: AliasName, Alias: "alias/Team_1/pay-ments"}},
		{"AWS managed alias name", "alias/aws/ebs", KeyRef{Kind: AliasName, Alias: "alias/aws/ebs"}},
		{"alias name of 256 characters", long, KeyRef{Kind: AliasName, Alias: long}},
		{"alias ARN", "arn:aws:kms:us-east-1:012345678912:alias/payments",
			KeyRef{Kind: AliasARN, Partition: "aws", Region: "us-east-1", Account: "012345678912", Alias: "alias/payments"}},
		{"aws-cn key ARN", "arn:aws-cn:kms:cn-north-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
			KeyRef{Kind: KeyARN, Partition: "aws-cn", Region: "cn-north-1", Account: "111122223333", ID: "1234abcd-12ab-34cd-56ef-1234567890ab"}},
		{"aws-us-gov alias ARN", "arn:aws-us-gov:kms:us-gov-west-1:111122223333:alias/x",
			KeyRef{Kind: AliasARN, Partition: "aws-us-gov", Region: "us-gov-west-1", Account: "111122223333", Alias: "alias/x"}},
		{"aws-iso key ARN", "arn:aws-iso:kms:us-iso-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
			KeyRef{Kind: KeyARN, Partition: "aws-iso", Region: "us-iso-east-1", Account: "111122223333", ID: "1234abcd-12ab-34cd-56ef-1234567890ab"}},
		{"aws-iso-b key ARN", "arn:aws-iso-b:kms:us-isob-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
			KeyRef{Kind: KeyARN, Partition: "aws-iso-b", Region: "us-isob-east-1", Account: "111122223333", ID: "1234abcd-12ab-34cd-56ef-1234567890ab"}},
		{"aws-iso-e key ARN", "arn:aws-iso-e:kms:eu-isoe-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
			KeyRef{Kind: KeyARN, Partition: "aws-iso-e", Region: "eu-isoe-west-1", Account: "111122223333", ID: "1234abcd-12ab-34cd-56ef-1234567890ab"}},
		{"aws-iso-f key ARN", "arn:aws-iso-f:kms:us-isof-south-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
			KeyRef{Kind: KeyARN, Partition: "aws-iso-f", Region: "us-isof-south-1", Account: "111122223333", ID: "1234abcd-12ab-34cd-56ef-1234567890ab"}},
		{"aws-eusc key ARN", "arn:aws-eusc:kms:eusc-de-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
			KeyRef{Kind: KeyARN, Partition: "aws-eusc", Region: "eusc-de-east-1", Account: "111122223333", ID: "1234abcd-12ab-34cd-56ef-1234567890ab"}},
	} {
		t.Run(tc.name+" parses", func(t *testing.T) {
			got, err := ParseKeyRef(tc.in)
			if err != nil {
				t.Fatalf("ParseKeyRef(%q): %v", tc.in, err)
			}
			tc.want.Raw = tc.in
			if got != tc.want {
				t.Fatalf("ParseKeyRef(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseKeyRefRejects(t *testing.T) {
	const id = "1234abcd-12ab-34cd-56ef-1234567890ab"
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", `empty key identifier`},
		{"too long", strings.Repeat("a", 3000), `"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa…" is 3000 bytes; a key identifier is at most 2048`},
		{"white space", " " + id, `" 1234abcd-12ab-34cd-56ef-1234567890ab" has leading or trailing white space`},
		{"uppercase key ID", strings.ToUpper(id), `"1234ABCD-12AB-34CD-56EF-1234567890AB" is not a key ID, key ARN, alias name or alias ARN (a key ID is 8-4-4-4-12 lowercase hex digits or mrk- and 32 lowercase hex digits)`},
		{"short key ID", id[:35], `"1234abcd-12ab-34cd-56ef-1234567890a" is not a key ID, key ARN, alias name or alias ARN (a key ID is 8-4-4-4-12 lowercase hex digits or mrk- and 32 lowercase hex digits)`},
		{"mrk with 31 hex digits", "mrk-1234abcd12ab34cd56ef1234567890a", `"mrk-1234abcd12ab34cd56ef1234567890a" is not a key ID, key ARN, alias name or alias ARN (a key ID is 8-4-4-4-12 lowercase hex digits or mrk- and 32 lowercase hex digits)`},
		{"bare alias prefix", "alias/", `"alias/" has an empty alias name after "alias/"`},
		{"alias with a space", "alias/pay ments", `"alias/pay ments" contains ' '; alias names use only letters, digits, '/', '_' and '-'`},
		{"alias of 257 characters", "alias/" + strings.Repeat("a", 251), `"alias/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa…" is an alias name of 257 characters; at most 256 including "alias/"`},
		{"ARN with too few fields", "arn:aws:kms:us-east-1", `"arn:aws:kms:us-east-1" is not a KMS ARN (want arn:PARTITION:kms:REGION:ACCOUNT:key/ID or arn:PARTITION:kms:REGION:ACCOUNT:alias/NAME)`},
		{"unknown partition", "arn:aws-xx:kms:us-east-1:111122223333:key/" + id, `"arn:aws-xx:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab" has unknown partition "aws-xx" (want one of aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b, aws-iso-e, aws-iso-f, aws-eusc)`},
		{"another service", "arn:aws:s3:us-east-1:111122223333:key/" + id, `"arn:aws:s3:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab" is not a KMS ARN (service "s3")`},
		{"malformed region", "arn:aws:kms:US-EAST-1:111122223333:key/" + id, `"arn:aws:kms:US-EAST-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab" has a malformed region "US-EAST-1"`},
		{"empty region", "arn:aws:kms::111122223333:key/" + id, `"arn:aws:kms::111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab" has a malformed region ""`},
		{"region of another partition", "arn:aws:kms:cn-north-1:111122223333:key/" + id, `"arn:aws:kms:cn-north-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab" names region cn-north-1 of partition aws-cn in partition aws`},
		{"short account", "arn:aws:kms:us-east-1:1234:key/" + id, `"arn:aws:kms:us-east-1:1234:key/1234abcd-12ab-34cd-56ef-1234567890ab" has a malformed account "1234" (want 12 digits)`},
		{"malformed key ID in ARN", "arn:aws:kms:us-east-1:111122223333:key/abc", `"arn:aws:kms:us-east-1:111122223333:key/abc" has a malformed key ID "abc" (a key ID is 8-4-4-4-12 lowercase hex digits or mrk- and 32 lowercase hex digits)`},
		{"alias ARN with bad name", "arn:aws:kms:us-east-1:111122223333:alias/a:b", `"arn:aws:kms:us-east-1:111122223333:alias/a:b" contains ':'; alias names use only letters, digits, '/', '_' and '-'`},
		{"unknown resource type", "arn:aws:kms:us-east-1:111122223333:grant/x", `"arn:aws:kms:us-east-1:111122223333:grant/x" names resource "grant/x"; want key/ID or alias/NAME`},
		{"control character", "alias/a\x00", `"alias/a\x00" contains '\x00'; alias names use only letters, digits, '/', '_' and '-'`},
		{"invalid UTF-8", "alias/\xff", `"alias/\xff" is not valid UTF-8`},
	} {
		t.Run(tc.name+" is rejected", func(t *testing.T) {
			got, err := ParseKeyRef(tc.in)
			if err == nil {
				t.Fatalf("ParseKeyRef(%q) = %+v, want error %q", tc.in, got, tc.want)
			}
			if err.Error() != tc.want {
				t.Fatalf("ParseKeyRef(%q) error:\n got %s\nwant %s", tc.in, err, tc.want)
			}
		})
	}
}

func TestScopeFromFunctionARN(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Scope
		wantErr  string
	}{
		{name: "unqualified ARN gives its scope", in: "arn:aws:lambda:us-east-1:012345678912:function:test_function",
			want: Scope{Partition: "aws", Region: "us-east-1", Account: "012345678912"}},
		{name: "version qualifier is accepted", in: "arn:aws:lambda:us-east-1:012345678912:function:kms-rotator:42",
			want: Scope{Partition: "aws", Region: "us-east-1", Account: "012345678912"}},
		{name: "$LATEST qualifier is accepted", in: "arn:aws:lambda:us-east-1:012345678912:function:kms-rotator:$LATEST",
			want: Scope{Partition: "aws", Region: "us-east-1", Account: "012345678912"}},
		{name: "alias qualifier in aws-us-gov is accepted", in: "arn:aws-us-gov:lambda:us-gov-west-1:111122223333:function:kms-rotator:live",
			want: Scope{Partition: "aws-us-gov", Region: "us-gov-west-1", Account: "111122223333"}},
		{name: "empty string is rejected", in: "",
			wantErr: `function ARN "" is not arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`},
		{name: "KMS ARN is rejected", in: "arn:aws:kms:us-east-1:012345678912:key/x",
			wantErr: `function ARN "arn:aws:kms:us-east-1:012345678912:key/x" is not arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`},
		{name: "bad account is rejected", in: "arn:aws:lambda:us-east-1:0123:function:f",
			wantErr: `function ARN "arn:aws:lambda:us-east-1:0123:function:f": malformed account "0123" (want 12 digits)`},
		{name: "unknown partition is rejected", in: "arn:aws-xx:lambda:us-east-1:012345678912:function:f",
			wantErr: `function ARN "arn:aws-xx:lambda:us-east-1:012345678912:function:f": unknown partition "aws-xx" (want one of aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b, aws-iso-e, aws-iso-f, aws-eusc)`},
		{name: "bad function name is rejected", in: "arn:aws:lambda:us-east-1:012345678912:function:a.b",
			wantErr: `function ARN "arn:aws:lambda:us-east-1:012345678912:function:a.b" has a malformed function name "a.b"`},
		{name: "empty qualifier is rejected", in: "arn:aws:lambda:us-east-1:012345678912:function:f:",
			wantErr: `function ARN "arn:aws:lambda:us-east-1:012345678912:function:f:" has an empty qualifier`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ScopeFromFunctionARN(tc.in)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("ScopeFromFunctionARN(%q) = %+v, %v; want error %s", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ScopeFromFunctionARN(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestKeyRefMethods(t *testing.T) {
	for _, tc := range []struct {
		in                           string
		arn, multiRegion, awsManaged bool
		kind                         string
	}{
		{"mrk-1234abcd12ab34cd56ef1234567890ab", false, true, false, "key ID"},
		{"arn:aws:kms:us-east-1:012345678912:key/mrk-1234abcd12ab34cd56ef1234567890ab", true, true, false, "key ARN"},
		{"alias/aws/ebs", false, false, true, "alias name"},
		{"arn:aws:kms:us-east-1:012345678912:alias/payments", true, false, false, "alias ARN"},
	} {
		t.Run(tc.in+" reports its kind", func(t *testing.T) {
			k, err := ParseKeyRef(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if k.IsARN() != tc.arn || k.MultiRegion() != tc.multiRegion || k.AWSManagedAlias() != tc.awsManaged ||
				k.Kind.String() != tc.kind || k.String() != tc.in {
				t.Fatalf("%q: IsARN=%v MultiRegion=%v AWSManagedAlias=%v Kind=%s String=%q", tc.in,
					k.IsARN(), k.MultiRegion(), k.AWSManagedAlias(), k.Kind, k.String())
			}
		})
	}
}
