// Package dynalite runs dynalite — an in-memory implementation of the
// DynamoDB API on Node, written by a third party (npm dynalite, pinned in
// package.json) — as a child process on 127.0.0.1, and creates the
// rotation ledger's table in it. The engine's tests, the harness, make demo
// and make bench use it, so the function's conditional writes and
// consistent reads meet a DynamoDB nobody here wrote.
//
// It imports neither the engine nor the harness: the engine's own tests
// import it.
//
//	srv := dynalite.StartTB(t)
//	if err := srv.CreateLedgerTable(ctx, "kms-rotator-ledger"); err != nil { … }
//	db := srv.Client(ctx) // or AWS_ENDPOINT_URL_DYNAMODB=srv.URL for a process
package dynalite

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// Region, AccessKeyID and SecretAccessKey are what Client signs with.
// dynalite checks that requests are signed but not with what, so any
// static pair works; these are the harness's, so one set of fake
// credentials serves every local process.
const (
	Region          = "us-east-1"
	AccessKeyID     = "AKIDEXAMPLE"
	SecretAccessKey = "secret"
)

// stopGrace is how long Close waits after SIGTERM before SIGKILL; Node
// exits on SIGTERM at once.
const stopGrace = 3 * time.Second

// script starts dynalite through its JavaScript API rather than its CLI.
// The CLI can bind a host (--host) but not port 0: `argv.port || 4567`
// turns 0 into 4567, so a free port would have to be picked here and
// raced for. Listening on port 0 and printing the port the kernel gave
// leaves no race. The table delays (createTableMs, …; 500 ms each by
// default) come in as JSON. The process ends when its stdin closes, so
// it cannot outlive the Go process that started it even where there is
// no parent-death signal (anything but Linux).
const script = `
const [dir, options] = process.argv.slice(1);
const server = require(dir)(JSON.parse(options));
server.on('error', (e) => { console.error('dynalite: ' + e.message); process.exit(1); });
server.listen(0, '127.0.0.1', () => console.log('dynalite listening on 127.0.0.1:' + server.address().port));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`

var listening = regexp.MustCompile(`dynalite listening on (127\.0\.0\.1:\d+)`)

// Options configure Start. The zero value runs the repository's pinned
// dynalite with the repository's Node.
type Options struct {
	// Root is the directory whose node_modules holds dynalite; empty: the
	// module root, found by walking up from the working directory to
	// go.mod.
	Root string
	// Node is the node binary; empty: <Root>/node_modules/.bin/node (Node
	// 22, the node devDependency), else node on PATH.
	Node string
	// Log, if not nil, receives dynalite's output as it runs.
	Log io.Writer
	// StartTimeout bounds the wait for dynalite to answer; 0 = 30s.
	StartTimeout time.Duration
}

// Server is a running dynalite.
type Server struct {
	// URL is the endpoint, e.g. http://127.0.0.1:40123: the BaseEndpoint
	// of a client, AWS_ENDPOINT_URL_DYNAMODB of a process.
	URL string
	// Addr is the listen address, e.g. 127.0.0.1:40123.
	Addr string

	cmd   *exec.Cmd
	stdin io.Closer
	done  chan struct{} // closed when the process has exited
	out   *tailBuffer   // both streams, for error messages

	// transport serves every client Client makes, so Close can drop
	// their idle connections before it stops the process.
	transport *http.Transport
	closeOnce sync.Once
}

// Start runs dynalite on 127.0.0.1 and a free port, with no table
// creation, update or deletion delays, and returns once it answers a
// ListTables. Close it when done.
func Start(ctx context.Context, opts Options) (*Server, error) {
	root := opts.Root
	if root == "" {
		r, err := moduleRoot()
		if err != nil {
			return nil, err
		}
		root = r
	}
	pkg := filepath.Join(root, "node_modules", "dynalite")
	if _, err := os.Stat(filepath.Join(pkg, "package.json")); err != nil {
		return nil, fmt.Errorf("dynalite: not installed in %s: run `npm ci` there (package.json pins dynalite)", filepath.Join(root, "node_modules"))
	}
	node, err := nodeBinary(root, opts.Node)
	if err != nil {
		return nil, err
	}
	delays, _ := json.Marshal(map[string]int{"createTableMs": 0, "deleteTableMs": 0, "updateTableMs": 0})

	cmd := exec.Command(node, "-e", script, pkg, string(delays))
	cmd.Dir = root
	// Only what Node needs: nothing of the caller's AWS settings.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = stopGrace
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("dynalite: %w", err)
	}
	s := &Server{cmd: cmd, stdin: stdin, done: make(chan struct{}), out: &tailBuffer{max: 8 << 10}}
	var log io.Writer = s.out
	if opts.Log != nil {
		log = io.MultiWriter(s.out, opts.Log)
	}
	addr := make(chan string, 1)
	cmd.Stdout = &lineWatcher{w: log, match: func(line string) {
		if m := listening.FindStringSubmatch(line); m != nil {
			select {
			case addr <- m[1]:
			default:
			}
		}
	}}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("dynalite: start %s: %w", node, err)
	}
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()

	ctx, cancel := context.WithTimeout(ctx, cmp.Or(opts.StartTimeout, 30*time.Second))
	defer cancel()
	select {
	case a := <-addr:
		s.Addr, s.URL = a, "http://"+a
	case <-s.done:
		return nil, fmt.Errorf("dynalite: exited before listening: %v\n%s", cmd.ProcessState, s.out.String())
	case <-ctx.Done():
		s.Close()
		return nil, fmt.Errorf("dynalite: not listening: %w\n%s", ctx.Err(), s.out.String())
	}
	s.transport = http.DefaultTransport.(*http.Transport).Clone()
	if _, err := s.Client(ctx).ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		s.Close()
		return nil, fmt.Errorf("dynalite: not answering on %s: %w\n%s", s.Addr, err, s.out.String())
	}
	return s, nil
}

// StartTB is Start for tests: it fails tb when dynalite cannot start (not
// installed: run `npm ci`) and stops it in tb.Cleanup.
func StartTB(tb testing.TB) *Server {
	tb.Helper()
	s, err := Start(tb.Context(), Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("dynalite output (tail):\n%s", s.out.String())
		}
		_ = s.Close()
	})
	return s
}

// Config returns an SDK configuration for dynalite: static fake
// credentials, Region and the server as base endpoint.
func (s *Server) Config() aws.Config {
	return aws.Config{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
		BaseEndpoint: aws.String(s.URL),
		HTTPClient:   &http.Client{Transport: s.transport},
	}
}

// Client returns a real DynamoDB client against dynalite. Building it does
// no I/O; ctx is taken so that callers read alike whether their client
// comes from here or from config.LoadDefaultConfig.
func (s *Server) Client(context.Context) *dynamodb.Client {
	return dynamodb.NewFromConfig(s.Config())
}

// CreateLedgerTable creates the rotation ledger's table as the stack does
// (the key schema of lambda/settings: LedgerPartitionKey string HASH,
// LedgerSortKey string RANGE; on-demand capacity) and returns once it is
// ACTIVE. It does not enable TTL on settings.LedgerTTLAttribute as the
// stack does: dynalite 4.0.0 has no UpdateTimeToLive (it answers
// UnknownOperationException; its DescribeTimeToLive always says
// DISABLED), and local runs are too short for expiry to matter.
func (s *Server) CreateLedgerTable(ctx context.Context, name string) error {
	db := s.Client(ctx)
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(settings.LedgerPartitionKey), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(settings.LedgerSortKey), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(settings.LedgerPartitionKey), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(settings.LedgerSortKey), KeyType: types.KeyTypeRange},
		},
		BillingMode: types.BillingModePayPerRequest,
	})
	if err != nil {
		return fmt.Errorf("dynalite: create table %s: %w", name, err)
	}
	// Start passes createTableMs 0, so the table turns ACTIVE on dynalite's
	// next tick; the SDK's TableExistsWaiter would sleep 20 s between
	// looks, so poll here.
	for {
		out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		if err != nil {
			return fmt.Errorf("dynalite: describe table %s: %w", name, err)
		}
		if out.Table.TableStatus == types.TableStatusActive {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dynalite: table %s not ACTIVE (%s): %w", name, out.Table.TableStatus, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// ClaimPrefix begins the sort key of every claim record the function's
// ledger writes (pk "key#<key ARN>", sk "claim#<time>#<run ID>", one per
// claim before a RotateKeyOnDemand; lambda/ledger/ledger.go, which does
// not export it). A key's head ("head") and incident request records
// ("request") have other sort keys.
const ClaimPrefix = "claim#"

// CountClaims counts the claim records in a ledger table with a
// consistent Scan, so the claims of a run that just ended are in.
func (s *Server) CountClaims(ctx context.Context, table string) (int, error) {
	p := dynamodb.NewScanPaginator(s.Client(ctx), &dynamodb.ScanInput{
		TableName:                 aws.String(table),
		FilterExpression:          aws.String("begins_with(#sk, :claim)"),
		ExpressionAttributeNames:  map[string]string{"#sk": settings.LedgerSortKey},
		ExpressionAttributeValues: map[string]types.AttributeValue{":claim": &types.AttributeValueMemberS{Value: ClaimPrefix}},
		Select:                    types.SelectCount,
		ConsistentRead:            aws.Bool(true),
	})
	n := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, fmt.Errorf("dynalite: count claims in %s: %w", table, err)
		}
		n += int(page.Count)
	}
	return n, nil
}

// Close stops dynalite (SIGTERM to its process group, SIGKILL after a
// grace period) and waits for it to exit. Everything it stored is gone.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.transport != nil {
			s.transport.CloseIdleConnections()
		}
		_ = s.stdin.Close()
		pid := s.cmd.Process.Pid
		_ = signalGroup(pid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(stopGrace):
			_ = signalGroup(pid, syscall.SIGKILL)
			<-s.done
		}
	})
	return nil
}

// Done is closed once the dynalite process has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// Output returns the tail of dynalite's output, for error messages.
func (s *Server) Output() string { return s.out.String() }

// nodeBinary picks the Node that runs dynalite: the one given, else the
// repository's pinned Node 22, else whatever node is on PATH (dynalite
// needs Node 20 or later).
func nodeBinary(root, given string) (string, error) {
	if given != "" {
		return given, nil
	}
	pinned := filepath.Join(root, "node_modules", ".bin", "node")
	if _, err := os.Stat(pinned); err == nil {
		return pinned, nil
	}
	p, err := exec.LookPath("node")
	if err != nil {
		return "", fmt.Errorf("dynalite: no Node: neither %s nor node on PATH; run `npm ci` in %s", pinned, root)
	}
	return p, nil
}

// moduleRoot walks up from the working directory to the first directory
// with a go.mod: the repository root, whose node_modules npm ci fills.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("dynalite: %w", err)
	}
	for d := wd; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("dynalite: no go.mod above " + wd + ": set Options.Root")
		}
		d = parent
	}
}

// lineWatcher passes output on to w and shows match each complete line.
type lineWatcher struct {
	w       io.Writer
	match   func(line string)
	partial []byte
}

func (l *lineWatcher) Write(p []byte) (int, error) {
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.match(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	return l.w.Write(p)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(t.buf.String())
}
