package org

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/organizations"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/rotator"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// throttlingOrg serves Organizations' JSON 1.1 protocol for a root with 45
// accounts and answers TooManyRequestsException to the first throttle
// requests of ListAccountsForParent for each page (or to all of them when
// throttle < 0), as Organizations does under its request quota
// (https://docs.aws.amazon.com/organizations/latest/APIReference/API_ListAccountsForParent.html).
type throttlingOrg struct {
	mu       sync.Mutex
	throttle int
	seen     map[string]int // requests per page token
	calls    int
}

func (o *throttlingOrg) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls++
	var in struct {
		ParentId  string
		NextToken string
	}
	_ = json.NewDecoder(r.Body).Decode(&in)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	op := r.Header.Get("X-Amz-Target")
	switch {
	case strings.HasSuffix(op, ".DescribeOrganization"):
		fmt.Fprint(w, `{"Organization":{"Id":"o-ab12cd34ef","MasterAccountId":"999999999999"}}`)
	case strings.HasSuffix(op, ".ListOrganizationalUnitsForParent"):
		fmt.Fprint(w, `{"OrganizationalUnits":[]}`)
	case strings.HasSuffix(op, ".ListAccountsForParent"):
		if o.seen == nil {
			o.seen = map[string]int{}
		}
		o.seen[in.NextToken]++
		if o.throttle < 0 || o.seen[in.NextToken] <= o.throttle {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"__type":"TooManyRequestsException","Message":"AWS Organizations can't complete your request because another request is already in progress. Try again later."}`)
			return
		}
		page := 0
		if in.NextToken != "" {
			fmt.Sscanf(in.NextToken, "page-%d", &page)
		}
		var accounts []string
		for i := page * 20; i < min(45, (page+1)*20); i++ {
			accounts = append(accounts, fmt.Sprintf(`{"Id":"5%011d","Name":"a%d","State":"ACTIVE"}`, i, i))
		}
		next := ""
		if (page+1)*20 < 45 {
			next = fmt.Sprintf(`,"NextToken":"page-%d"`, page+1)
		}
		fmt.Fprintf(w, `{"Accounts":[%s]%s}`, strings.Join(accounts, ","), next)
	default:
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"__type":"InvalidInputException","Message":"unexpected %s"}`, op)
	}
}

// throttledClient is the Organizations client the function builds (its
// retryer, Retryer: 10 attempts) against srv, with the backoff shortened so
// the test does not wait for it.
func throttledClient(t *testing.T, srv *httptest.Server) *organizations.Client {
	t.Helper()
	cfg, err := rotator.LoadAWSConfig(context.Background(), settings.DefaultConfig(),
		config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")),
		config.WithBaseEndpoint(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	return organizations.NewFromConfig(cfg, func(o *organizations.Options) {
		o.Retryer = retry.AddWithMaxBackoffDelay(Retryer(), 5*time.Millisecond)
	})
}

func TestResolveRetriesOrganizationsThrottling(t *testing.T) {
	o := &throttlingOrg{throttle: 3}
	srv := httptest.NewServer(o)
	defer srv.Close()
	s, _, _ := newService(Clients{Organizations: throttledClient(t, srv), Ledger: &fakeLedger{}, S3: &fakeS3{bucket: bucket}}, bucket)
	rep, err := s.Resolve(context.Background(), request.Org{Mode: request.ModeTargets, OrgTargets: []string{"r-ab12"}, OrgRegions: []string{"us-east-1"}},
		Invocation{Scope: testScope})
	if err != nil {
		t.Fatalf("three throttled answers a page: %v", err)
	}
	// Three pages, each refused three times before its answer.
	if rep.Summary.Accounts != 45 || o.seen[""] != 4 || o.seen["page-1"] != 4 || o.seen["page-2"] != 4 {
		t.Fatalf("%d accounts; requests per page %v; want 45 accounts and 4 requests a page", rep.Summary.Accounts, o.seen)
	}
}

func TestResolveFailsNamingTheOUWhenThrottlingNeverEnds(t *testing.T) {
	o := &throttlingOrg{throttle: -1}
	srv := httptest.NewServer(o)
	defer srv.Close()
	s, logs, _ := newService(Clients{Organizations: throttledClient(t, srv), Ledger: &fakeLedger{}, S3: &fakeS3{bucket: bucket}}, bucket)
	_, err := s.Resolve(context.Background(), request.Org{Mode: request.ModeTargets, OrgTargets: []string{"r-ab12"}, OrgRegions: []string{"us-east-1"}},
		Invocation{Scope: testScope})
	if err == nil || !strings.Contains(err.Error(), "listing the accounts of r-ab12") || !strings.Contains(err.Error(), "TooManyRequestsException") {
		t.Fatalf("error %v; want one naming r-ab12 and the throttling", err)
	}
	if o.seen[""] != 10 {
		t.Fatalf("%d requests of the first page; want the retryer's 10 attempts", o.seen[""])
	}
	if !strings.Contains(logs.String(), "targets not resolved; nothing is swept") {
		t.Fatalf("no failure line in %s", logs)
	}
}
