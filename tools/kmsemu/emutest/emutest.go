// Package emutest starts the KMS emulator (kmsemu) for a test, on a loopback
// port, and builds real aws-sdk-go-v2 clients (KMS, tagging, EventBridge,
// STS, Organizations) pointed at it.
package emutest

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

// Account is the account emulated keys belong to when Options.Account is
// empty: the one the Lambda Runtime Interface Emulator reports.
const Account = "012345678912"

// Emu is a running emulator.
type Emu struct {
	// URL is the endpoint, http://127.0.0.1:PORT.
	URL string
	// Server is the emulator, for Stats, LoadFleet and the like.
	Server *kmsemu.Server
}

// Start runs an emulator with opts and the keys of fleetJSON (a fleet file's
// content; "" for none) until the test ends. An empty opts.Account becomes
// Account; with no opts.Log, the emulator's request log goes to t.Log (shown
// when the test fails or with -v).
func Start(t testing.TB, opts kmsemu.Options, fleetJSON string) *Emu {
	t.Helper()
	if opts.Account == "" {
		opts.Account = Account
	}
	var lw *testLog
	if opts.Log == nil {
		lw = &testLog{t: t}
		opts.Log = lw
	}
	s := kmsemu.New(opts)
	if strings.TrimSpace(fleetJSON) != "" {
		if err := s.LoadFleet(strings.NewReader(fleetJSON)); err != nil {
			t.Fatalf("emutest: load fleet: %v", err)
		}
	}
	hs := httptest.NewServer(s) // listens on 127.0.0.1:0
	t.Cleanup(func() {
		hs.Close()
		if lw != nil {
			lw.stop()
		}
	})
	return &Emu{URL: hs.URL, Server: s}
}

// Config returns an aws.Config for region with static fake credentials
// (AKIDEXAMPLE/secret) and the emulator as BaseEndpoint. It reads no
// environment variables or shared config files.
func (e *Emu) Config(region string) aws.Config {
	return aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		BaseEndpoint: aws.String(e.URL),
	}
}

// KMS returns a KMS client for region.
func (e *Emu) KMS(region string) *kms.Client {
	return kms.NewFromConfig(e.Config(region))
}

// Tagging returns a Resource Groups Tagging API client for region.
func (e *Emu) Tagging(region string) *resourcegroupstaggingapi.Client {
	return resourcegroupstaggingapi.NewFromConfig(e.Config(region))
}

// EventBridge returns an EventBridge client for region; the emulator serves
// PutEvents and records what it accepts (Server.Events).
func (e *Emu) EventBridge(region string) *eventbridge.Client {
	return eventbridge.NewFromConfig(e.Config(region))
}

// Organizations returns an AWS Organizations client signed with the static
// credentials (acting in Options.Account); for another account build one
// with organizations.NewFromConfig(e.AssumeRole(…)). The emulator serves
// the organization Server.LoadOrganization loaded.
func (e *Emu) Organizations() *organizations.Client {
	return organizations.NewFromConfig(e.Config("us-east-1"))
}

// STS returns an STS client for region; the emulator serves AssumeRole for
// the roles of Options.Roles (by default kmsemu.DefaultMemberRole in every
// account with fleet keys).
func (e *Emu) STS(region string) *sts.Client {
	return sts.NewFromConfig(e.Config(region))
}

// AssumeRole assumes roleARN (session name "emutest") and returns an
// aws.Config for region signed with the temporary credentials, so clients
// built from it act in the role's account. The test fails if the emulator
// refuses the role.
func (e *Emu) AssumeRole(t testing.TB, region, roleARN string) aws.Config {
	t.Helper()
	out, err := e.STS(region).AssumeRole(context.Background(), &sts.AssumeRoleInput{
		RoleArn: aws.String(roleARN), RoleSessionName: aws.String("emutest"),
	})
	if err != nil {
		t.Fatalf("emutest: assume role %s: %v", roleARN, err)
	}
	cfg := e.Config(region)
	c := out.Credentials
	cfg.Credentials = credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))
	return cfg
}

// MemberRole is the ARN of kmsemu.DefaultMemberRole in account.
func MemberRole(account string) string {
	return "arn:aws:iam::" + account + ":role/" + kmsemu.DefaultMemberRole
}

// testLog forwards log lines to t.Log until the test's cleanup, after which
// t.Log must not be called.
type testLog struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testLog) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}

// Buffer is an io.Writer that concurrent writers may share (the engine's
// pipelines writing logs and metrics, a server's request log) and that a
// test may read at any time.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
