package request

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Bounds on key identifiers.
const (
	// maxKeyRefLen is the KeyId length limit of the KMS API
	// (https://docs.aws.amazon.com/kms/latest/APIReference/API_DescribeKey.html#API_DescribeKey_RequestSyntax:
	// "Length Constraints: Minimum length of 1. Maximum length of 2048").
	maxKeyRefLen = 2048
	// maxAliasNameLen is the AliasName limit, "alias/" included
	// (https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateAlias.html:
	// "Length Constraints: Minimum length of 1. Maximum length of 256.
	// Pattern: ^alias/[a-zA-Z0-9/_-]+$").
	maxAliasNameLen = 256
	aliasPrefix     = "alias/"
	// awsAliasPrefix marks aliases of AWS managed keys; customers cannot
	// create them (https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html).
	awsAliasPrefix = "alias/aws/"
	mrkPrefix      = "mrk-"
	accountDigits  = 12
)

// partitions lists the AWS partitions an ARN may name
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html and
// the partition list of the AWS SDKs' endpoints ruleset). A region of one
// partition in an ARN of another is malformed (see partitionOfRegion).
var partitions = []string{"aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f", "aws-eusc"}

// partitionNames is the list above as text, for error messages.
var partitionNames = strings.Join(partitions, ", ")

// partitionOfRegion names the partition a well-formed region name belongs to,
// from the region-name patterns of the SDKs' partitions.json
// (cn-*, us-gov-*, us-iso-*, us-isob-*, eu-isoe-*, us-isof-*, eusc-*; the
// rest is aws).
func partitionOfRegion(r string) string {
	switch {
	case strings.HasPrefix(r, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(r, "us-gov-"):
		return "aws-us-gov"
	case strings.HasPrefix(r, "eusc-"):
		return "aws-eusc"
	case strings.Contains(r, "-iso-"):
		return "aws-iso"
	case strings.Contains(r, "-isob-"):
		return "aws-iso-b"
	case strings.Contains(r, "-isoe-"):
		return "aws-iso-e"
	case strings.Contains(r, "-isof-"):
		return "aws-iso-f"
	}
	return "aws"
}

// knownPartition reports whether p is a partition of the list above.
func knownPartition(p string) bool {
	return slices.Contains(partitions, p)
}

// validRegion reports whether r has the shape of a region name: lowercase
// words joined by dashes, the last one a number of one or two digits, the
// first 2–4 letters (us-east-1, us-gov-west-1, eu-isoe-west-1, eusc-de-east-1).
func validRegion(r string) bool {
	parts := strings.Split(r, "-")
	if len(parts) < 3 {
		return false
	}
	first, last := parts[0], parts[len(parts)-1]
	if len(first) < 2 || len(first) > 4 || !allLower(first) {
		return false
	}
	for _, p := range parts[1 : len(parts)-1] {
		if p == "" || len(p) > 16 || !allLower(p) {
			return false
		}
	}
	if len(last) < 1 || len(last) > 2 || !allDigits(last) || last[0] == '0' {
		return false
	}
	return true
}

// validAccount reports whether a is an AWS account ID: exactly 12 digits.
func validAccount(a string) bool {
	return len(a) == accountDigits && allDigits(a)
}

// validKeyID reports whether id is a KMS key ID: a lowercase UUID
// (1234abcd-12ab-34cd-56ef-1234567890ab) or a multi-Region key ID, "mrk-"
// and 32 lowercase hex digits
// (https://docs.aws.amazon.com/kms/latest/developerguide/concepts.html#key-id-key-id
// and https://docs.aws.amazon.com/kms/latest/developerguide/multi-region-keys-overview.html#mrk-concepts).
func validKeyID(id string) bool {
	if rest, ok := strings.CutPrefix(id, mrkPrefix); ok {
		return len(rest) == 32 && allHex(rest)
	}
	if len(id) != 36 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch i {
		case 8, 13, 18, 23:
			if id[i] != '-' {
				return false
			}
		default:
			if !isHex(id[i]) {
				return false
			}
		}
	}
	return true
}

// aliasNameProblem says what is wrong with an alias name ("alias/…"), or ""
// when it follows the CreateAlias rules (see maxAliasNameLen).
func aliasNameProblem(name string) string {
	rest := strings.TrimPrefix(name, aliasPrefix)
	if rest == "" {
		return "has an empty alias name after \"alias/\""
	}
	if len(name) > maxAliasNameLen {
		return fmt.Sprintf("is an alias name of %d characters; at most %d including \"alias/\"", len(name), maxAliasNameLen)
	}
	for _, c := range rest {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '/' || c == '_' || c == '-') {
			return fmt.Sprintf("contains %q; alias names use only letters, digits, '/', '_' and '-'", c)
		}
	}
	return ""
}

const keyIDShape = "a key ID is 8-4-4-4-12 lowercase hex digits or mrk- and 32 lowercase hex digits"

// ParseKeyRef parses one key identifier in any of the four forms KMS accepts
// for a KeyId (https://docs.aws.amazon.com/kms/latest/developerguide/concepts.html#key-id):
// a key ID (a UUID, or "mrk-" + 32 hex digits for a multi-Region key), a key
// ARN, an alias name ("alias/…") or an alias ARN. ARNs must name a known
// partition, the kms service, a region of that partition and a 12-digit
// account. Aliases of AWS managed keys ("alias/aws/…") parse: the engine
// reports them as skipped rather than the request failing. It checks shape
// only; whether the ARN is in the function's own account and region is
// Decode's job (see Scope).
//
// Errors start with the identifier, quoted and shortened, e.g.
// `"arn:aws:kms:us-east-1:1234:key/…" has a malformed account "1234" (want 12 digits)`.
func ParseKeyRef(s string) (KeyRef, error) {
	if s == "" {
		return KeyRef{}, errors.New("empty key identifier")
	}
	if len(s) > maxKeyRefLen {
		return KeyRef{}, fmt.Errorf("%s is %d bytes; a key identifier is at most %d", quote(s), len(s), maxKeyRefLen)
	}
	if !utf8.ValidString(s) {
		return KeyRef{}, fmt.Errorf("%s is not valid UTF-8", quote(s))
	}
	if strings.TrimSpace(s) != s {
		return KeyRef{}, fmt.Errorf("%s has leading or trailing white space", quote(s))
	}
	switch {
	case strings.HasPrefix(s, "arn:"):
		return parseARN(s)
	case strings.HasPrefix(s, aliasPrefix):
		if p := aliasNameProblem(s); p != "" {
			return KeyRef{}, fmt.Errorf("%s %s", quote(s), p)
		}
		return KeyRef{Raw: s, Kind: AliasName, Alias: s}, nil
	case validKeyID(s):
		return KeyRef{Raw: s, Kind: KeyID, ID: s}, nil
	}
	return KeyRef{}, fmt.Errorf("%s is not a key ID, key ARN, alias name or alias ARN (%s)", quote(s), keyIDShape)
}

// parseARN parses arn:PARTITION:kms:REGION:ACCOUNT:key/ID or …:alias/NAME.
func parseARN(s string) (KeyRef, error) {
	f := strings.SplitN(s, ":", 6)
	if len(f) != 6 {
		return KeyRef{}, fmt.Errorf("%s is not a KMS ARN (want arn:PARTITION:kms:REGION:ACCOUNT:key/ID or arn:PARTITION:kms:REGION:ACCOUNT:alias/NAME)", quote(s))
	}
	partition, service, region, account, resource := f[1], f[2], f[3], f[4], f[5]
	if !knownPartition(partition) {
		return KeyRef{}, fmt.Errorf("%s has unknown partition %s (want one of %s)", quote(s), quote(partition), partitionNames)
	}
	if service != "kms" {
		return KeyRef{}, fmt.Errorf("%s is not a KMS ARN (service %s)", quote(s), quote(service))
	}
	if !validRegion(region) {
		return KeyRef{}, fmt.Errorf("%s has a malformed region %s", quote(s), quote(region))
	}
	if got := partitionOfRegion(region); got != partition {
		return KeyRef{}, fmt.Errorf("%s names region %s of partition %s in partition %s", quote(s), region, got, partition)
	}
	if !validAccount(account) {
		return KeyRef{}, fmt.Errorf("%s has a malformed account %s (want 12 digits)", quote(s), quote(account))
	}
	ref := KeyRef{Raw: s, Partition: partition, Region: region, Account: account}
	switch {
	case strings.HasPrefix(resource, "key/"):
		id := strings.TrimPrefix(resource, "key/")
		if !validKeyID(id) {
			return KeyRef{}, fmt.Errorf("%s has a malformed key ID %s (%s)", quote(s), quote(id), keyIDShape)
		}
		ref.Kind, ref.ID = KeyARN, id
	case strings.HasPrefix(resource, aliasPrefix):
		if p := aliasNameProblem(resource); p != "" {
			return KeyRef{}, fmt.Errorf("%s %s", quote(s), p)
		}
		ref.Kind, ref.Alias = AliasARN, resource
	default:
		return KeyRef{}, fmt.Errorf("%s names resource %s; want key/ID or alias/NAME", quote(s), quote(resource))
	}
	return ref, nil
}

// IsARN reports whether k is a key ARN or an alias ARN.
func (k KeyRef) IsARN() bool { return k.Kind == KeyARN || k.Kind == AliasARN }

// MultiRegion reports whether k names a multi-Region key by its ID (key ID or
// key ARN with an "mrk-" ID). Such a key may legitimately live in another
// region: its primary and replicas share the ID
// (https://docs.aws.amazon.com/kms/latest/developerguide/multi-region-keys-overview.html).
func (k KeyRef) MultiRegion() bool { return strings.HasPrefix(k.ID, mrkPrefix) }

// AWSManagedAlias reports whether k is an alias of an AWS managed key
// ("alias/aws/…"); such keys cannot be rotated on demand.
func (k KeyRef) AWSManagedAlias() bool { return strings.HasPrefix(k.Alias, awsAliasPrefix) }

// String returns the identifier as the caller gave it.
func (k KeyRef) String() string { return k.Raw }

// String names the identifier form, as KMS's documentation does.
func (r RefKind) String() string {
	switch r {
	case KeyID:
		return "key ID"
	case KeyARN:
		return "key ARN"
	case AliasName:
		return "alias name"
	case AliasARN:
		return "alias ARN"
	}
	return fmt.Sprintf("RefKind(%d)", int(r))
}

// ScopeFromFunctionARN learns the function's partition, account and region
// from its invoked function ARN (lambdacontext.InvokedFunctionArn):
// arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME, optionally followed by
// ":QUALIFIER" (a version, $LATEST or an alias) when the caller invoked a
// qualified ARN (https://docs.aws.amazon.com/lambda/latest/dg/configuration-versions.html).
// The qualifier is not checked beyond being non-empty: the function must
// never refuse to run because Lambda added a qualifier form we do not know.
func ScopeFromFunctionARN(arn string) (Scope, error) {
	f := strings.Split(arn, ":")
	if len(f) < 7 || len(f) > 8 || f[0] != "arn" || f[2] != "lambda" || f[5] != "function" {
		return Scope{}, fmt.Errorf("function ARN %s is not arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]", quote(arn))
	}
	sc := Scope{Partition: f[1], Region: f[3], Account: f[4]}
	if err := sc.Validate(); err != nil {
		return Scope{}, fmt.Errorf("function ARN %s: %w", quote(arn), err)
	}
	if name := f[6]; name == "" || len(name) > 64 || !allWord(name) {
		return Scope{}, fmt.Errorf("function ARN %s has a malformed function name %s", quote(arn), quote(name))
	}
	if len(f) == 8 && f[7] == "" {
		return Scope{}, fmt.Errorf("function ARN %s has an empty qualifier", quote(arn))
	}
	return sc, nil
}

// Validate reports whether sc names a known partition, a region of that
// partition and a 12-digit account.
func (sc Scope) Validate() error {
	switch {
	case !knownPartition(sc.Partition):
		return fmt.Errorf("unknown partition %s (want one of %s)", quote(sc.Partition), partitionNames)
	case !validRegion(sc.Region):
		return fmt.Errorf("malformed region %s", quote(sc.Region))
	case partitionOfRegion(sc.Region) != sc.Partition:
		return fmt.Errorf("region %s is not in partition %s", sc.Region, sc.Partition)
	case !validAccount(sc.Account):
		return fmt.Errorf("malformed account %s (want 12 digits)", quote(sc.Account))
	}
	return nil
}

// maxQuoted bounds how much of a caller's value an error message repeats, so
// a 1 MB string does not come back as a 1 MB error.
const maxQuoted = 80

// quote returns s as a Go-quoted string (control and non-printable
// characters escaped), shortened to maxQuoted runes with "…".
func quote(s string) string {
	if utf8.RuneCountInString(s) <= maxQuoted {
		return fmt.Sprintf("%q", s)
	}
	n := 0
	for i := range s {
		if n == maxQuoted {
			return fmt.Sprintf("%q", s[:i]+"…")
		}
		n++
	}
	return fmt.Sprintf("%q", s)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func allLower(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return s != ""
}

func allHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

// isHex accepts lowercase hex only: KMS key IDs are lowercase.
func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

// allWord reports whether s is only letters, digits, '-' and '_' (a Lambda
// function name, https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunction.html).
func allWord(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
