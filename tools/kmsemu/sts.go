package kmsemu

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// STS AssumeRole, so one emulator can stand for several accounts: the
// credentials it issues sign later KMS and tagging requests, which are then
// served for the role's account. It speaks the AWS Query protocol as the
// STS API reference documents it
// (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html):
// a form-encoded POST (Action=AssumeRole&Version=2011-06-15&RoleArn=…), an
// XML answer, and XML errors
// (https://docs.aws.amazon.com/STS/latest/APIReference/CommonErrors.html).

// DefaultMemberRole is the role name AssumeRole accepts in every account that
// has fleet keys when Options.Roles is nil: the role organization mode
// assumes by default (ROTATOR_MEMBER_ROLE_NAME, CDK context memberRoleName).
const DefaultMemberRole = "kms-rotator-member"

var (
	accountPattern = regexp.MustCompile(`^\d{12}$`)
	// roleARNPattern is an IAM role ARN: arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME
	// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-arns).
	roleARNPattern = regexp.MustCompile(`^arn:(aws|aws-cn|aws-us-gov):iam::(\d{12}):role/(?:[\x21-\x7e]*/)?([\w+=,.@-]{1,64})$`)
	// sessionNamePattern is RoleSessionName's documented pattern.
	sessionNamePattern = regexp.MustCompile(`^[\w+=,.@-]*$`)
	credentialKeyID    = regexp.MustCompile(`Credential=([^/,\s]+)/`)
)

// CheckRoleARN reports whether arn is an IAM role ARN, for the -roles flag.
func CheckRoleARN(arn string) error {
	if !roleARNPattern.MatchString(arn) {
		return fmt.Errorf("%q is not an IAM role ARN like arn:aws:iam::111122223333:role/%s", arn, DefaultMemberRole)
	}
	return nil
}

// session is what AssumeRole issued: the access key ID identifies it on the
// requests it signs.
type session struct {
	account string
	roleARN string
	arn     string // the assumed-role ARN
	expires time.Time
}

// stsError is an STS error: HTTP status, Type (Sender or Receiver), Code.
type stsError struct {
	status  int
	code    string
	message string
}

func stsValidation(format string, args ...any) *stsError {
	return &stsError{400, "ValidationError", fmt.Sprintf(format, args...)}
}

// constraint is the ValidationError of one parameter constraint, e.g. "1
// validation error detected: Value 'x' at 'roleSessionName' failed to
// satisfy constraint: Member must have length greater than or equal to 2".
func constraint(value, member, must string) *stsError {
	return stsValidation("1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must %s", value, member, must)
}

// isQueryRequest tells an AWS Query protocol request (STS) from the JSON
// protocol ones: it has no X-Amz-Target and a form-encoded body.
func isQueryRequest(r *http.Request) bool {
	return r.Header.Get("X-Amz-Target") == "" && r.Method == http.MethodPost &&
		strings.HasPrefix(strings.ToLower(r.Header.Get("Content-Type")), "application/x-www-form-urlencoded")
}

// accessKeyID returns the access key ID of the SigV4 Authorization header.
func accessKeyID(r *http.Request) string {
	if m := credentialKeyID.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		return m[1]
	}
	return ""
}

// accountOf returns the account a request acts in: the role's account for
// credentials AssumeRole issued, Options.Account for any other credentials.
// Expiry is not checked: the SDKs refresh credentials before they expire, and
// tests that move the clock by days would otherwise lose their sessions.
func (s *Server) accountOf(r *http.Request) string {
	if id := accessKeyID(r); id != "" {
		s.mu.Lock()
		sess := s.sessions[id]
		s.mu.Unlock()
		if sess != nil {
			return sess.account
		}
	}
	return s.opts.Account
}

// callerOf names the caller in AccessDenied messages: the assumed-role ARN
// of credentials AssumeRole issued, else a user of the -account account.
func (s *Server) callerOf(r *http.Request) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess := s.sessions[accessKeyID(r)]; sess != nil {
		return sess.arn
	}
	return fmt.Sprintf("arn:aws:iam::%s:user/kmslocal", s.opts.Account)
}

// Roles returns the role ARNs AssumeRole accepts, sorted: Options.Roles, or
// when it is nil DefaultMemberRole in every account that has fleet keys and
// in every ACTIVE account of the organization but the management account
// (where a service-managed StackSet deploys the role).
func (s *Server) Roles() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.roles()
}

func (s *Server) roles() []string {
	var out []string
	if s.opts.Roles != nil {
		out = append(out, s.opts.Roles...)
	} else {
		accts := map[string]bool{}
		for acct := range s.fleetAccounts {
			accts[acct] = true
		}
		if s.org != nil {
			for _, acct := range s.org.memberAccounts() {
				accts[acct] = true
			}
		}
		for acct := range accts {
			out = append(out, fmt.Sprintf("arn:aws:iam::%s:role/%s", acct, DefaultMemberRole))
		}
	}
	sort.Strings(out)
	return out
}

// serveSTS serves one AWS Query protocol request; only AssumeRole is known.
func (s *Server) serveSTS(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	c := &call{op: "AssumeRole", region: s.regionOf(r), account: s.accountOf(r), requestID: s.requestID()}
	var out []byte
	status := 200
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	var form url.Values
	if err == nil && len(body) <= maxBody {
		form, err = url.ParseQuery(string(body))
	}
	var serr *stsError
	switch {
	case err != nil || len(body) > maxBody:
		serr = &stsError{400, "MalformedInput", "cannot read the form-encoded request"}
	case form.Get("Action") != "AssumeRole":
		c.op = "Unknown"
		serr = &stsError{400, "InvalidAction", fmt.Sprintf("Could not find operation %s for version %s", form.Get("Action"), form.Get("Version"))}
	default:
		var res *assumeRoleResult
		res, serr = s.assumeRole(c, form, s.callerOf(r))
		if serr == nil {
			out, _ = xml.Marshal(assumeRoleResponse{Result: *res, RequestID: c.requestID})
		}
	}
	st := OpStats{Calls: 1}
	if serr != nil {
		st.Errors++
	}
	s.mu.Lock()
	s.statsFor(c.op).add(st)
	if c.op == "AssumeRole" {
		s.accountStatsFor(c.account, c.op).add(st)
	}
	s.mu.Unlock()
	if serr != nil {
		status = serr.status
		typ := "Sender"
		if status >= 500 {
			typ = "Receiver"
		}
		var e errorResponse
		e.Error.Type, e.Error.Code, e.Error.Message, e.RequestID = typ, serr.code, serr.message, c.requestID
		out, _ = xml.Marshal(e)
	}
	s.delay(r)
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-RequestId", c.requestID)
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(out)
	code := "OK"
	if serr != nil {
		code = serr.code
	}
	s.writeLogLine(c, status, code, time.Since(start))
}

// assumeRole validates the request as STS does, then issues credentials for
// a role of Options.Roles (or the default member roles); any other role is
// AccessDenied, as when a role does not exist or does not trust the caller.
func (s *Server) assumeRole(c *call, form url.Values, caller string) (*assumeRoleResult, *stsError) {
	roleARN, name := form.Get("RoleArn"), form.Get("RoleSessionName")
	c.key = roleARN
	if !form.Has("RoleArn") {
		return nil, stsValidation("1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null")
	}
	if !form.Has("RoleSessionName") {
		return nil, stsValidation("1 validation error detected: Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null")
	}
	// The messages are STS's (as clients have reported them), in the AWS
	// validation wording: one constraint at a time.
	switch n := len(roleARN); {
	case n < 20:
		return nil, constraint(roleARN, "roleArn", "have length greater than or equal to 20")
	case n > 2048:
		return nil, constraint(roleARN, "roleArn", "have length less than or equal to 2048")
	}
	switch n := len(name); {
	case n < 2:
		return nil, constraint(name, "roleSessionName", "have length greater than or equal to 2")
	case n > 64:
		return nil, constraint(name, "roleSessionName", "have length less than or equal to 64")
	case !sessionNamePattern.MatchString(name):
		return nil, constraint(name, "roleSessionName", `satisfy regular expression pattern: [\w+=,.@-]*`)
	}
	duration := 3600
	if form.Has("DurationSeconds") {
		v := form.Get("DurationSeconds")
		d, err := strconv.Atoi(v)
		switch {
		case err != nil:
			return nil, stsValidation("Value '%s' for parameter DurationSeconds is not a valid integer", v)
		case d < 900:
			return nil, constraint(v, "durationSeconds", "have value greater than or equal to 900")
		case d > 43200:
			// Every emulated role has the largest MaxSessionDuration, 12 hours.
			return nil, stsValidation("The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
		}
		duration = d
	}
	m := roleARNPattern.FindStringSubmatch(roleARN)
	if m == nil {
		return nil, stsValidation("%s is invalid", roleARN)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	c.now = s.opts.Now()
	allowed := false
	for _, r := range s.roles() {
		if r == roleARN {
			allowed = true
		}
	}
	if !allowed {
		return nil, &stsError{403, "AccessDenied", fmt.Sprintf("User: %s is not authorized to perform: sts:AssumeRole on resource: %s", caller, roleARN)}
	}
	account, roleName := m[2], m[3]
	// A Region the role's account has not enabled: STS there issues it no
	// credentials
	// (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html#API_AssumeRole_Errors,
	// RegionDisabled).
	if s.org != nil && s.org.accounts[account] != nil && slices.Contains(s.org.accounts[account].DisabledRegions, c.region) {
		return nil, &stsError{403, "RegionDisabledException", fmt.Sprintf("STS is not activated in this region for account:%s. Your account administrator can activate STS in this region using the IAM Console.", account)}
	}
	sess := &session{
		account: account,
		roleARN: roleARN,
		arn:     fmt.Sprintf("arn:%s:sts::%s:assumed-role/%s/%s", m[1], account, roleName, name),
		expires: c.now.Add(time.Duration(duration) * time.Second).UTC(),
	}
	akid := "ASIA" + s.randomString(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	if s.sessions == nil {
		s.sessions = map[string]*session{}
	}
	s.sessions[akid] = sess
	c.note = "account=" + account
	return &assumeRoleResult{
		Credentials: stsCredentials{
			AccessKeyID:     akid,
			SecretAccessKey: s.randomString(40, b64),
			SessionToken:    "kmslocal/" + s.randomString(120, b64),
			Expiration:      sess.expires.Format("2006-01-02T15:04:05Z"),
		},
		AssumedRoleUser: assumedRoleUser{
			AssumedRoleID: "AROA" + roleID(roleARN) + ":" + name,
			Arn:           sess.arn,
		},
	}, nil
}

func (s *Server) randomString(n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[s.idRNG.IntN(len(alphabet))]
	}
	return string(b)
}

// roleID derives a stable 17-character unique ID for a role (AWS's role IDs
// are AROA and 17 characters).
func roleID(roleARN string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	var h uint64 = 14695981039346656037
	for i := 0; i < len(roleARN); i++ {
		h ^= uint64(roleARN[i])
		h *= 1099511628211
	}
	b := make([]byte, 17)
	for i := range b {
		b[i] = alphabet[h%32]
		h = h/32 ^ (h << 7) ^ uint64(i)*0x9e3779b97f4a7c15
	}
	return string(b)
}

type assumeRoleResponse struct {
	XMLName   xml.Name         `xml:"https://sts.amazonaws.com/doc/2011-06-15/ AssumeRoleResponse"`
	Result    assumeRoleResult `xml:"AssumeRoleResult"`
	RequestID string           `xml:"ResponseMetadata>RequestId"`
}

type assumeRoleResult struct {
	Credentials     stsCredentials  `xml:"Credentials"`
	AssumedRoleUser assumedRoleUser `xml:"AssumedRoleUser"`
}

type stsCredentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

type assumedRoleUser struct {
	AssumedRoleID string `xml:"AssumedRoleId"`
	Arn           string `xml:"Arn"`
}

type errorResponse struct {
	XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ ErrorResponse"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}
