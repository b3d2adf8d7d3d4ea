// Package hub is a small AWS Security Hub client: the two operations the
// function calls (BatchImportFindings, GetFindings) over Security Hub's
// REST-JSON protocol, signed with the SDK's Signature Version 4 signer. The
// SDK's generated Security Hub client adds about 3 MB to bootstrap for
// hundreds of types the function never uses
// (https://docs.aws.amazon.com/securityhub/1.0/APIReference/API_BatchImportFindings.html,
// https://docs.aws.amazon.com/securityhub/1.0/APIReference/API_GetFindings.html).
package hub

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Client calls Security Hub in one account and Region.
type Client struct {
	http     aws.HTTPClient
	creds    aws.CredentialsProvider
	region   string
	endpoint string
	signer   *v4.Signer
}

// New returns a client on cfg's credentials, Region and HTTP client. The
// endpoint follows the SDK's standard settings: AWS_ENDPOINT_URL_SECURITYHUB,
// else AWS_ENDPOINT_URL (cfg.BaseEndpoint), else Security Hub's regional
// endpoint of the Region's partition.
func New(cfg aws.Config) *Client {
	endpoint := os.Getenv("AWS_ENDPOINT_URL_SECURITYHUB")
	if endpoint == "" && cfg.BaseEndpoint != nil {
		endpoint = *cfg.BaseEndpoint
	}
	if endpoint == "" {
		endpoint = "https://securityhub." + cfg.Region + "." + dnsSuffix(cfg.Region)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{http: hc, creds: cfg.Credentials, region: cfg.Region, endpoint: strings.TrimRight(endpoint, "/"), signer: v4.NewSigner()}
}

// dnsSuffix is the DNS suffix of a Region's partition.
func dnsSuffix(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "amazonaws.com.cn"
	case strings.HasPrefix(region, "eusc-"):
		return "amazonaws.eu"
	}
	return "amazonaws.com"
}

// Finding is a finding in the AWS Security Finding Format, the members the
// function writes and reads
// (https://docs.aws.amazon.com/securityhub/latest/userguide/securityhub-findings-format.html).
type Finding struct {
	SchemaVersion string      `json:"SchemaVersion"`
	ID            string      `json:"Id"`
	ProductArn    string      `json:"ProductArn"`
	GeneratorID   string      `json:"GeneratorId"`
	AwsAccountID  string      `json:"AwsAccountId"`
	Region        string      `json:"Region,omitempty"`
	Types         []string    `json:"Types"`
	CreatedAt     string      `json:"CreatedAt"`
	UpdatedAt     string      `json:"UpdatedAt"`
	Severity      Severity    `json:"Severity"`
	Title         string      `json:"Title"`
	Description   string      `json:"Description"`
	Resources     []Resource  `json:"Resources"`
	Compliance    *Compliance `json:"Compliance,omitempty"`
	Workflow      *Workflow   `json:"Workflow,omitempty"`
	RecordState   string      `json:"RecordState,omitempty"`
}

// Severity is a finding's severity label (INFORMATIONAL … CRITICAL).
type Severity struct {
	Label string `json:"Label"`
}

// Resource is the resource a finding is about.
type Resource struct {
	Type      string `json:"Type"`
	ID        string `json:"Id"`
	Partition string `json:"Partition,omitempty"`
	Region    string `json:"Region,omitempty"`
}

// Compliance is a finding's compliance status and related requirements.
type Compliance struct {
	Status              string   `json:"Status"`
	RelatedRequirements []string `json:"RelatedRequirements,omitempty"`
}

// Workflow is a finding's investigation status.
type Workflow struct {
	Status string `json:"Status"`
}

// StringFilter is one value of a GetFindings filter.
type StringFilter struct {
	Value      string `json:"Value"`
	Comparison string `json:"Comparison"` // EQUALS, PREFIX, …
}

// Filters are the GetFindings filters the function uses.
type Filters struct {
	GeneratorID  []StringFilter `json:"GeneratorId,omitempty"`
	RecordState  []StringFilter `json:"RecordState,omitempty"`
	AwsAccountID []StringFilter `json:"AwsAccountId,omitempty"`
}

// Failed is a finding BatchImportFindings refused.
type Failed struct {
	ID           string `json:"Id"`
	ErrorCode    string `json:"ErrorCode"`
	ErrorMessage string `json:"ErrorMessage"`
}

// Error is Security Hub's answer to a refused request.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("Security Hub: %s (HTTP %d): %s", e.Code, e.Status, e.Message)
}

// BatchImportFindings imports at most 100 findings.
func (c *Client) BatchImportFindings(ctx context.Context, findings []Finding) (success int, failed []Failed, err error) {
	var out struct {
		SuccessCount   int      `json:"SuccessCount"`
		FailedFindings []Failed `json:"FailedFindings"`
	}
	err = c.call(ctx, "/findings/import", map[string]any{"Findings": findings}, &out)
	return out.SuccessCount, out.FailedFindings, err
}

// GetFindings returns one page of findings and the next page's token
// ("" at the end).
func (c *Client) GetFindings(ctx context.Context, filters Filters, nextToken string) ([]Finding, string, error) {
	in := map[string]any{"Filters": filters, "MaxResults": 100}
	if nextToken != "" {
		in["NextToken"] = nextToken
	}
	var out struct {
		Findings  []Finding `json:"Findings"`
		NextToken string    `json:"NextToken"`
	}
	err := c.call(ctx, "/findings", in, &out)
	return out.Findings, out.NextToken, err
}

// call POSTs a signed JSON request and decodes the answer.
func (c *Client) call(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	creds, err := c.creds.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("security hub: credentials: %w", err)
	}
	sum := sha256.Sum256(body)
	if err := c.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "securityhub", c.region, time.Now()); err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Code    string `json:"Code"`
			Message string `json:"Message"`
			Msg     string `json:"message"`
		}
		_ = json.Unmarshal(b, &e)
		code := e.Code
		if code == "" {
			code = resp.Header.Get("X-Amzn-Errortype")
		}
		msg := e.Message + e.Msg
		if msg == "" {
			msg = strings.TrimSpace(string(b))
		}
		return &Error{Status: resp.StatusCode, Code: code, Message: msg}
	}
	if len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, out)
}
