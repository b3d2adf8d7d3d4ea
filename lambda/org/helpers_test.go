package org

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/kms-rotator/kms-rotator/lambda/ledger"
	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu/emutest"
	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

const testAccount = "012345678912"

var testScope = request.Scope{Partition: "aws", Account: testAccount, Region: "us-east-1", Organization: true}

// buffer collects log or EMF lines.
type buffer struct{ emutest.Buffer }

// lines returns the buffer's JSON lines, decoded.
func (b *buffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

// fakeS3 is a bucket in memory.
type fakeS3 struct {
	mu      sync.Mutex
	bucket  string
	objects map[string][]byte
	fail    error // every call fails with it
}

func (f *fakeS3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	if aws.ToString(in.Bucket) != f.bucket {
		return nil, &smithy.GenericAPIError{Code: "AccessDenied", Message: "not the organization bucket"}
	}
	b, _ := io.ReadAll(in.Body)
	if f.objects == nil {
		f.objects = map[string][]byte{}
	}
	f.objects[aws.ToString(in.Key)] = b
	return &s3.PutObjectOutput{}, nil
}

func (f *fakeS3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	b, ok := f.objects[aws.ToString(in.Key)]
	if !ok || aws.ToString(in.Bucket) != f.bucket {
		return nil, &smithy.GenericAPIError{Code: "NoSuchKey", Message: "The specified key does not exist."}
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(b))}, nil
}

func (f *fakeS3) putJSON(t *testing.T, key string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.objects == nil {
		f.objects = map[string][]byte{}
	}
	f.objects[key] = b
}

// fakeLedger keeps the targets record in memory.
type fakeLedger struct {
	mu   sync.Mutex
	res  *ledger.Resolution
	fail error
}

func (f *fakeLedger) RecordTargets(_ context.Context, res ledger.Resolution) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.res = &res
	return nil
}

func (f *fakeLedger) Targets(context.Context) (*ledger.Resolution, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.res, f.fail
}

// fakeEvents records the result events.
type fakeEvents struct {
	mu      sync.Mutex
	details []string
}

func (f *fakeEvents) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range in.Entries {
		f.details = append(f.details, aws.ToString(e.Detail))
	}
	return &eventbridge.PutEventsOutput{Entries: []ebtypes.PutEventsResultEntry{{EventId: aws.String("e-1")}}}, nil
}

// newService is a Service over the given clients; bucket sets
// ROTATOR_ORG_BUCKET.
func newService(c Clients, bucket string) (*Service, *buffer, *buffer) {
	logs, metrics := &buffer{}, &buffer{}
	cfg := settings.DefaultConfig()
	cfg.OrgBucket = bucket
	return New(cfg, c, slog.New(slog.NewJSONHandler(logs, nil)), metrics), logs, metrics
}

// emfRecords parses every line of metrics as an EMF record (failing on one
// that breaks the specification) in namespace, and returns their fields.
func emfRecords(t *testing.T, metrics *buffer, namespace string) []map[string]any {
	t.Helper()
	recs, err := oracle.ParseEMFLines(strings.Split(strings.TrimSpace(metrics.String()), "\n"))
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, r := range recs {
		if len(r.Directives) != 1 || r.Directives[0].Namespace != namespace {
			t.Fatalf("EMF directives %+v; want one in %s", r.Directives, namespace)
		}
		out = append(out, r.Fields)
	}
	return out
}
