package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

// The identity of every local run (docs/design.md "Configuration"): the
// Runtime Interface Emulator reports account 012345678912 in the invoked
// function ARN, so kmslocal must mint ARNs in that account.
const (
	Account         = "012345678912"
	Region          = "us-east-1"
	AccessKeyID     = "AKIDEXAMPLE"
	SecretAccessKey = "secret"
)

// KMSLocalOptions configure StartKMSLocal.
type KMSLocalOptions struct {
	// Fleet is a fleet file (relative paths resolve against the module
	// root); FleetJSON is inline fleet JSON, written to a temporary file.
	// At most one may be set; neither starts an empty emulator.
	Fleet     string
	FleetJSON string
	// Organization, if not nil, is the AWS Organizations organization the
	// emulator serves: written to a temporary file and passed as
	// -organization (docs/kmslocal.md "Organizations"). Without it there is
	// no organization.
	Organization *kmsemu.Organization
	// Account and Region default to Account and Region.
	Account, Region string
	// ListAfterMaterial passes -list-after-material: an on-demand
	// rotation is listed by ListKeyRotations only once its key material
	// is current (-material-delay after the status cleared), the
	// unfavourable reading of KMS's eventual consistency
	// (docs/kmslocal.md "Flags").
	ListAfterMaterial bool
	// Args are extra kmslocal flags, e.g. "-rotation-delay=0",
	// "-fail-rate=0.05", "-seed=7".
	Args []string
	// Log, if not nil, receives kmslocal's output as it runs.
	Log io.Writer
	// StartTimeout bounds the wait for the emulator to answer; 0 = 30s.
	StartTimeout time.Duration
}

// KMSLocal is a running kmslocal process.
type KMSLocal struct {
	// URL is the endpoint, e.g. http://127.0.0.1:40123 (AWS_ENDPOINT_URL).
	URL string
	// Addr is the listen address, e.g. 127.0.0.1:40123.
	Addr string
	// Account and Region are what the emulator was started with.
	Account, Region string
	// Proc is the process; Proc.Stderr holds its request log.
	Proc *Process
	// OrganizationFile is the -organization file written from
	// KMSLocalOptions.Organization ("" without one); it is removed by Close.
	OrganizationFile string

	tmpDir string
	// transport serves every client the harness makes for the emulator,
	// so Close can drop their idle connections first: the SDK dials
	// spare connections it may never use, and an HTTP server shutting
	// down waits seconds for such never-used ones.
	transport *http.Transport
	client    *http.Client
}

// StartKMSLocal starts kmslocal on a free loopback port and waits until it
// answers HTTP. Close it when done.
func StartKMSLocal(ctx context.Context, bins *Binaries, opts KMSLocalOptions) (*KMSLocal, error) {
	if opts.Fleet != "" && opts.FleetJSON != "" {
		return nil, fmt.Errorf("harness: kmslocal: set Fleet or FleetJSON, not both")
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	k := &KMSLocal{Account: opts.Account, Region: opts.Region, transport: transport, client: &http.Client{Transport: transport}}
	if k.Account == "" {
		k.Account = Account
	}
	if k.Region == "" {
		k.Region = Region
	}
	fleet := opts.Fleet
	if fleet != "" && !filepath.IsAbs(fleet) {
		fleet = filepath.Join(bins.Root, fleet)
	}
	var seedArgs []string
	if opts.FleetJSON != "" {
		f, err := k.writeTemp("fleet.json", []byte(opts.FleetJSON))
		if err != nil {
			return nil, err
		}
		fleet = f
	}
	if fleet != "" {
		seedArgs = append(seedArgs, "-fleet", fleet)
	}
	if opts.Organization != nil {
		data, err := json.Marshal(opts.Organization)
		if err == nil {
			k.OrganizationFile, err = k.writeTemp("organization.json", data)
		}
		if err != nil {
			k.cleanupTmp()
			return nil, fmt.Errorf("harness: kmslocal: organization: %w", err)
		}
		seedArgs = append(seedArgs, "-organization", k.OrganizationFile)
	}
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var lastErr error
	// Retry only when another program took the port between FreeAddr
	// and the bind.
	for range 3 {
		addr, err := FreeAddr()
		if err != nil {
			k.cleanupTmp()
			return nil, err
		}
		args := []string{"-addr", addr, "-account", k.Account, "-region", k.Region}
		args = append(args, seedArgs...)
		if opts.ListAfterMaterial {
			args = append(args, "-list-after-material")
		}
		args = append(args, opts.Args...)
		p, err := startProcess("kmslocal", bins.KMSLocal, args, baseEnv(), bins.Root, opts.Log)
		if err != nil {
			k.cleanupTmp()
			return nil, err
		}
		k.Proc, k.Addr, k.URL = p, addr, "http://"+addr
		if lastErr = k.waitReady(ctx); lastErr == nil {
			return k, nil
		}
		p.Stop(StopGrace)
		if !addrInUse(p) {
			break
		}
	}
	k.cleanupTmp()
	return nil, lastErr
}

// waitReady waits for the port, then for one HTTP answer (any status: the
// stats path is the emulator's, but a 404 proves it serves HTTP too).
func (k *KMSLocal) waitReady(ctx context.Context) error {
	if err := waitListening(ctx, k.Proc, k.Addr); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.URL+"/_kmslocal/stats", nil)
	if err != nil {
		return err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("harness: kmslocal not answering on %s: %w\n%s", k.Addr, err, k.Proc.Stderr.tail(2000))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil
}

// Config returns an SDK configuration for the emulator in region (the
// emulator's own region when empty): static fake credentials and the
// emulator as base endpoint, as the function itself sees it.
func (k *KMSLocal) Config(region string) aws.Config {
	if region == "" {
		region = k.Region
	}
	return aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
		BaseEndpoint: aws.String(k.URL),
		HTTPClient:   k.client,
	}
}

// KMS returns a real KMS client against the emulator.
func (k *KMSLocal) KMS(region string) *kms.Client {
	return kms.NewFromConfig(k.Config(region))
}

// Organizations returns a real AWS Organizations client against the
// emulator, acting in the emulator's account (the management account when
// KMSLocalOptions.Organization names it so).
func (k *KMSLocal) Organizations() *organizations.Client {
	return organizations.NewFromConfig(k.Config(""))
}

// Tagging returns a real Resource Groups Tagging API client against the
// emulator.
func (k *KMSLocal) Tagging(region string) *resourcegroupstaggingapi.Client {
	return resourcegroupstaggingapi.NewFromConfig(k.Config(region))
}

// Stats returns the emulator's per-operation request counters
// (GET /_kmslocal/stats).
func (k *KMSLocal) Stats(ctx context.Context) (kmsemu.Stats, error) {
	var st kmsemu.Stats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.URL+"/_kmslocal/stats", nil)
	if err != nil {
		return st, err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return st, fmt.Errorf("harness: kmslocal stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("harness: kmslocal stats: HTTP %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("harness: kmslocal stats: %w", err)
	}
	return st, nil
}

// ResetStats zeroes the emulator's counters (POST /_kmslocal/stats/reset).
func (k *KMSLocal) ResetStats(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, k.URL+"/_kmslocal/stats/reset", nil)
	if err != nil {
		return err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("harness: kmslocal stats reset: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("harness: kmslocal stats reset: HTTP %d", resp.StatusCode)
	}
	return nil
}

// Event is one EventBridge PutEvents entry the emulator accepted: Source,
// DetailType, Detail (as sent), EventBusName, Time, Account, Region, ….
type Event = kmsemu.Event

// Events returns the PutEvents entries the emulator accepted since it
// started or since ResetEvents, oldest first (GET /_kmslocal/events): the
// function's result events, for instance.
func (k *KMSLocal) Events(ctx context.Context) ([]Event, error) {
	var evs []Event
	if err := k.admin(ctx, http.MethodGet, "/_kmslocal/events", &evs); err != nil {
		return nil, err
	}
	return evs, nil
}

// ResetEvents makes the emulator forget the events it recorded
// (POST /_kmslocal/events/reset), so the next Events shows only what
// follows.
func (k *KMSLocal) ResetEvents(ctx context.Context) error {
	return k.admin(ctx, http.MethodPost, "/_kmslocal/events/reset", nil)
}

// admin calls one of the emulator's /_kmslocal/ paths and decodes its JSON
// answer into out (nil: discard it).
func (k *KMSLocal) admin(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, k.URL+path, nil)
	if err != nil {
		return err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("harness: kmslocal %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return fmt.Errorf("harness: kmslocal %s %s: HTTP %d", method, path, resp.StatusCode)
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	} else {
		err = json.NewDecoder(resp.Body).Decode(out)
	}
	if err != nil {
		return fmt.Errorf("harness: kmslocal %s %s: %w", method, path, err)
	}
	return nil
}

// Close stops the emulator and removes its temporary fleet and organization
// files.
func (k *KMSLocal) Close() error {
	k.transport.CloseIdleConnections()
	if k.Proc != nil {
		k.Proc.Stop(StopGrace)
	}
	k.cleanupTmp()
	return nil
}

// writeTemp writes one of the files the emulator is started with into the
// KMSLocal's temporary directory, made on first use, and returns its path.
func (k *KMSLocal) writeTemp(name string, data []byte) (string, error) {
	if k.tmpDir == "" {
		dir, err := os.MkdirTemp("", "kmslocal-")
		if err != nil {
			return "", fmt.Errorf("harness: kmslocal: %w", err)
		}
		k.tmpDir = dir
	}
	path := filepath.Join(k.tmpDir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		k.cleanupTmp()
		return "", fmt.Errorf("harness: kmslocal: %w", err)
	}
	return path, nil
}

func (k *KMSLocal) cleanupTmp() {
	if k.tmpDir != "" {
		os.RemoveAll(k.tmpDir)
		k.tmpDir = ""
	}
}
