// Command kmslocal runs the local KMS emulator (package kmsemu): AWS KMS, the
// Resource Groups Tagging API GetResources, EventBridge PutEvents, STS
// AssumeRole and the AWS Organizations operations that list an
// organization's accounts on one loopback port, seeded from a fleet file, for tests, the demo and
// rehearsing a rotation with the AWS CLI or any AWS SDK
// (AWS_ENDPOINT_URL=http://127.0.0.1:4599).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "kmslocal:", err)
		os.Exit(1)
	}
}

const usage = `Usage: kmslocal [flags]

kmslocal is an in-memory AWS KMS emulator speaking the real AWS JSON 1.1
protocol (KMS: X-Amz-Target TrentService.*; tagging: GetResources;
EventBridge: PutEvents on the default bus). Point any AWS SDK or the AWS CLI
at it:

  kmslocal -fleet events/fleet.json -account 012345678912 &
  AWS_ENDPOINT_URL=http://127.0.0.1:4599 AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=secret \
    aws kms list-keys

Imported key material works as in KMS: create a key with --origin EXTERNAL,
get-parameters-for-import, wrap the material (openssl or any SDK), then
import-key-material; new material staged with --import-type NEW_KEY_MATERIAL
rotates in with rotate-key-on-demand.

Requests are served for the region in their SigV4 signature, and for the
account of their credentials: STS AssumeRole (same port) issues credentials
for the roles of -roles, which then act in the role's account; any other
credentials act in the -account account. Fleet entries name their account
with "account". -organization loads one AWS Organizations organization
(DescribeOrganization, ListRoots, ListAccountsForParent,
ListOrganizationalUnitsForParent on the same port). One log line
per request goes to stderr. GET /_kmslocal/stats shows per-operation
counters; POST /_kmslocal/stats/reset zeroes them. GET /_kmslocal/events
lists the events PutEvents accepted (Source, DetailType, Detail as sent,
EventBusName, Time, ...); POST /_kmslocal/events/reset forgets them.
SIGINT/SIGTERM stop it.

Flags:
`

// run parses args and serves until ctx ends (SIGINT/SIGTERM in main), then
// shuts down cleanly, letting requests in flight finish.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("kmslocal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	var (
		addr     = fs.String("addr", "127.0.0.1:4599", "listen `address`; loopback only (127.0.0.1, ::1 or localhost), port 0 picks a free one")
		fleet    = fs.String("fleet", "", "JSON fleet `file` to seed keys from (see events/fleet.json)")
		account  = fs.String("account", "111122223333", "AWS account `ID` in ARNs (local Lambda runs use 012345678912)")
		region   = fs.String("region", "us-east-1", "default `region`: of fleet keys without one and of unsigned requests; signed requests are served for the region they are signed for")
		delay    = fs.Duration("rotation-delay", 2*time.Second, "how long an on-demand rotation stays in progress (0 = completes at once)")
		limit    = fs.Int("on-demand-limit", 25, "lifetime on-demand rotations per key, then LimitExceededException")
		matDelay = fs.Duration("material-delay", 0, "how long after a rotation leaves \"in progress\" its new key material becomes current (CurrentKeyMaterialId, encryption); AWS takes about a minute")
		listLate = fs.Bool("list-after-material", false, "list an on-demand rotation in ListKeyRotations only once its key material is current (after -material-delay), not when GetKeyRotationStatus clears: the unfavourable reading of KMS's eventual consistency")
		replica  = fs.Duration("replica-delay", time.Second, "how long a replica made by ReplicateKey stays in the Creating key state (0 = usable from the next request)")
		latency  = fs.Duration("latency", 0, "added to every response")
		scale    = fs.Float64("quota-scale", 0, "request quotas: 0 = no throttling, 1 = the default per-operation quotas (KMS's; EventBridge's for PutEvents), 10 = ten times them")
		failRate = fs.Float64("fail-rate", 0, "`fraction` of requests answered HTTP 500 before any change (KMSInternalException; the tagging API's and EventBridge's internal errors for theirs)")
		dropRate = fs.Float64("drop-rate", 0, "`fraction` of RotateKeyOnDemand requests applied and then answered HTTP 500 (lost response)")
		roles    = fs.String("roles", "", "comma-separated IAM role `ARNs` STS AssumeRole accepts; its credentials act in the role's account (default: role/"+kmsemu.DefaultMemberRole+" in every account with fleet keys and every ACTIVE account of -organization but its management account)")
		orgFile  = fs.String("organization", "", "JSON `file` describing one AWS Organizations organization (root, OUs, accounts) that the Organizations API serves; none: no organization")
		seed     = fs.Int64("seed", 1, "seed for the fault dice and generated IDs, to replay a run")
		quiet    = fs.Bool("quiet", false, "no per-request log lines")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (flags only; -h lists them)", fs.Args())
	}
	for name, v := range map[string]float64{"fail-rate": *failRate, "drop-rate": *dropRate} {
		if v < 0 || v > 1 {
			return fmt.Errorf("-%s %g: must be between 0 and 1", name, v)
		}
	}
	if *scale < 0 {
		return fmt.Errorf("-quota-scale %g: must not be negative", *scale)
	}
	if *limit < 1 {
		return fmt.Errorf("-on-demand-limit %d: must be at least 1", *limit)
	}
	if *delay < 0 || *latency < 0 || *replica < 0 || *matDelay < 0 {
		return errors.New("-rotation-delay, -material-delay, -replica-delay and -latency must not be negative")
	}
	var roleARNs []string // nil: the default member roles
	if strings.TrimSpace(*roles) != "" {
		for _, r := range strings.Split(*roles, ",") {
			r = strings.TrimSpace(r)
			if err := kmsemu.CheckRoleARN(r); err != nil {
				return fmt.Errorf("-roles: %w", err)
			}
			roleARNs = append(roleARNs, r)
		}
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", *addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-addr %q: kmslocal listens on loopback only (127.0.0.1, ::1 or localhost)", *addr)
	}

	var logw io.Writer = stderr
	if *quiet {
		logw = nil
	}
	srv := kmsemu.New(kmsemu.Options{
		Account: *account, Region: *region, RotationDelay: *delay, MaterialDelay: *matDelay, ListAfterMaterial: *listLate, ReplicaDelay: *replica, OnDemandLimit: *limit,
		Latency: *latency, QuotaScale: *scale, FailRate: *failRate, DropRate: *dropRate,
		Roles: roleARNs, Seed: *seed, Log: logw,
	})
	if *fleet != "" {
		if err := srv.LoadFleetFile(*fleet); err != nil {
			return err
		}
	}
	if *orgFile != "" {
		if err := srv.LoadOrganizationFile(*orgFile); err != nil {
			return fmt.Errorf("-organization: %w", err)
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	// Timeouts so a client that stalls mid-request cannot hold a connection forever.
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	fmt.Fprintf(stderr, "kmslocal: listening on http://%s (account %s, default region %s, %d keys from %q)\n", ln.Addr(), *account, *region, srv.KeyCount(), *fleet)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintln(stderr, "kmslocal: shutting down")
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdown); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
