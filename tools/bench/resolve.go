package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kms-rotator/kms-rotator/lambda/ledger"
	"github.com/kms-rotator/kms-rotator/lambda/org"
	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/moto"
)

// resolveResult is the organization targets figure: one targets run over
// an organization of many accounts, written to S3 for the Distributed Map.
type resolveResult struct {
	Accounts          int     `json:"accounts"`
	Excluded          int     `json:"excluded"`
	Regions           int     `json:"regions"`
	Targets           int     `json:"targets"`
	Seconds           float64 `json:"seconds"`
	OrganizationCalls int     `json:"organizationCalls"`
	ItemsBytes        int64   `json:"itemsBytes"`
	ResolutionBytes   int64   `json:"resolutionBytes"`
	AnswerBytes       int     `json:"answerBytes"`
}

// resolveRegions are the Regions of the figure: four, as in the cost figure
// of docs/performance.md.
var resolveRegions = []string{"us-east-1", "eu-west-1", "eu-central-1", "ap-southeast-2"}

// benchOrganization is a root with 10 OUs of 10 OUs each (three levels),
// the accounts spread over the 100 leaf OUs, one in 100 suspended, and the
// management account (the caller) in the root.
func benchOrganization(accounts int) kmsemu.Organization {
	o := kmsemu.Organization{ID: "o-bench12345", ManagementAccount: benchAccount, RootID: "r-be12"}
	var leaves []string
	for i := range 10 {
		top := fmt.Sprintf("ou-be12-top%05d", i)
		o.Units = append(o.Units, kmsemu.OrganizationUnit{ID: top, Parent: o.RootID})
		for j := range 10 {
			leaf := fmt.Sprintf("ou-be12-leaf%02d%02d", i, j)
			o.Units = append(o.Units, kmsemu.OrganizationUnit{ID: leaf, Parent: top})
			leaves = append(leaves, leaf)
		}
	}
	for i := range accounts {
		a := kmsemu.OrganizationAccount{ID: fmt.Sprintf("7%011d", i), Parent: leaves[i%len(leaves)]}
		if i%100 == 99 {
			a.State = "SUSPENDED"
		}
		o.Accounts = append(o.Accounts, a)
	}
	return o
}

// countingOrgs counts the Organizations calls of a walk.
type countingOrgs struct {
	org.OrganizationsAPI
	n atomic.Int64
}

func (c *countingOrgs) DescribeOrganization(ctx context.Context, in *organizations.DescribeOrganizationInput, opts ...func(*organizations.Options)) (*organizations.DescribeOrganizationOutput, error) {
	c.n.Add(1)
	return c.OrganizationsAPI.DescribeOrganization(ctx, in, opts...)
}

func (c *countingOrgs) ListAccountsForParent(ctx context.Context, in *organizations.ListAccountsForParentInput, opts ...func(*organizations.Options)) (*organizations.ListAccountsForParentOutput, error) {
	c.n.Add(1)
	return c.OrganizationsAPI.ListAccountsForParent(ctx, in, opts...)
}

func (c *countingOrgs) ListOrganizationalUnitsForParent(ctx context.Context, in *organizations.ListOrganizationalUnitsForParentInput, opts ...func(*organizations.Options)) (*organizations.ListOrganizationalUnitsForParentOutput, error) {
	c.n.Add(1)
	return c.OrganizationsAPI.ListOrganizationalUnitsForParent(ctx, in, opts...)
}

// benchResolve runs one targets request over an organization of
// o.resolveAccounts accounts in four Regions, as the organization sweep's
// first state does: the function's own code (lambda/org) with the SDK's
// clients, against kmslocal's Organizations API, moto's S3 and dynalite's
// ledger. kmslocal does not throttle Organizations, so the time is the
// walk's own; AWS's request quota adds waits (retried, lambda/org.Retryer).
func benchResolve(ctx context.Context, o options, w io.Writer) (resolveResult, error) {
	r := resolveResult{Regions: len(resolveRegions)}
	fmt.Fprintf(w, "\n== organization targets: %d accounts in 100 OUs × %d Regions, written to S3\n", o.resolveAccounts, len(resolveRegions))
	emu := kmsemu.New(kmsemu.Options{Account: benchAccount, Region: benchRegion, Log: io.Discard})
	orgJSON, err := json.Marshal(benchOrganization(o.resolveAccounts))
	if err != nil {
		return r, err
	}
	if err := emu.LoadOrganization(bytes.NewReader(orgJSON)); err != nil {
		return r, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return r, err
	}
	hs := &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	s3srv, err := moto.Start(ctx)
	if err != nil {
		return r, fmt.Errorf("moto's server (S3): %w", err)
	}
	defer s3srv.Close()
	store := s3srv.S3()
	const bucket = "kms-rotator-bench-org"
	if _, err := store.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return r, err
	}
	ldb, err := startLedger(ctx)
	if err != nil {
		return r, err
	}
	defer ldb.Close()
	orgs := &countingOrgs{OrganizationsAPI: organizations.New(organizations.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		BaseEndpoint: aws.String("http://" + ln.Addr().String()),
		Retryer:      org.Retryer(),
	})}
	cfg := settings.DefaultConfig()
	cfg.OrgBucket = bucket
	db := dynamodb.New(dynamodb.Options{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		BaseEndpoint: aws.String(ldb.URL)})
	svc := org.New(cfg, org.Clients{Organizations: orgs, S3: store, Ledger: ledger.New(db, ledgerTable, cfg.LedgerRetention)},
		slog.New(slog.DiscardHandler), io.Discard)
	scope := request.Scope{Partition: "aws", Account: benchAccount, Region: benchRegion, Organization: true}
	start := time.Now()
	rep, err := svc.Resolve(ctx, request.Org{Mode: request.ModeTargets, OrgTargets: []string{"r-be12"}, OrgRegions: resolveRegions, Execution: "bench"},
		org.Invocation{RequestID: "bench", Scope: scope})
	if err != nil {
		return r, err
	}
	r.Seconds = round(time.Since(start).Seconds(), 3)
	r.Accounts, r.Excluded, r.Targets = rep.Summary.Accounts, rep.Summary.Excluded, rep.Summary.Targets
	r.OrganizationCalls = int(orgs.n.Load())
	answer, _ := json.Marshal(rep)
	r.AnswerBytes = len(answer)
	for _, obj := range []struct {
		key  string
		size *int64
	}{{rep.Items.Key, &r.ItemsBytes}, {rep.Resolution.Key, &r.ResolutionBytes}} {
		head, err := store.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(obj.key)})
		if err != nil {
			return r, err
		}
		*obj.size = aws.ToInt64(head.ContentLength)
	}
	fmt.Fprintf(w, "resolve: %d accounts (%d excluded) × %d Regions = %d targets in %.2fs; %d Organizations calls; S3: targets.json %d bytes, resolution.json %d bytes; answer %d bytes\n",
		r.Accounts, r.Excluded, r.Regions, r.Targets, r.Seconds, r.OrganizationCalls, r.ItemsBytes, r.ResolutionBytes, r.AnswerBytes)
	return r, nil
}
