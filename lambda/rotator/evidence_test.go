package rotator

import (
	"context"
	"encoding/json"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/moto"
)

// One moto server (a third party's S3) for the package's evidence tests.
var motoS3 struct {
	once sync.Once
	srv  *moto.Server
	err  error
}

func evidenceS3(t *testing.T) *s3.Client {
	t.Helper()
	motoS3.once.Do(func() { motoS3.srv, motoS3.err = moto.Start(context.Background()) })
	if motoS3.err != nil {
		t.Fatal(motoS3.err)
	}
	return motoS3.srv.S3()
}

// withEvidence gives the harness's engine an evidence bucket; it returns
// the S3 client to read it with.
func withEvidence(t *testing.T, h *harness, bucket string, create bool) *s3.Client {
	t.Helper()
	c := evidenceS3(t)
	if create {
		if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
			t.Fatal(err)
		}
	}
	h.engine.cfg.EvidenceBucket = bucket
	h.engine.SetEvidence(c)
	return c
}

// readEvidence fetches a run's evidence record.
func readEvidence(t *testing.T, c *s3.Client, rep *Report) (Evidence, []KeyReport) {
	t.Helper()
	if rep.Evidence == nil || rep.Evidence.Error != "" || rep.Evidence.Key == "" {
		t.Fatalf("report evidence %+v, want a written object", rep.Evidence)
	}
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(rep.Evidence.Bucket), Key: aws.String(rep.Evidence.Key)})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	if problems := validateEvidence(b); len(problems) > 0 {
		t.Fatalf("evidence does not match docs/evidence.schema.json: %v", problems)
	}
	var ev Evidence
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	var keys []KeyReport
	if err := json.Unmarshal(ev.Keys, &keys); err != nil {
		t.Fatal(err)
	}
	return ev, keys
}

func TestSweepEvidenceListsEveryCandidateOnce(t *testing.T) {
	h := newHarness(t, kmsemu.Options{}, demoFleet(t), fastConfig())
	// The report lists only some entries beyond a few candidates; the
	// evidence lists them all.
	h.engine.limits.maxListed, h.engine.limits.maxEntries = 3, 3
	c := withEvidence(t, h, "evidence-sweep", true)
	rep := h.run(t, request.Request{Mode: request.ModeScheduled})
	ev, keys := readEvidence(t, c, rep)
	if !strings.HasPrefix(rep.Evidence.Key, "evidence/"+testAccount+"/"+testRegion+"/") || !strings.HasSuffix(rep.Evidence.Key, "/"+rep.RunID+".json") {
		t.Errorf("evidence key %s, want evidence/ACCOUNT/REGION/yyyy/mm/dd/RUN.json", rep.Evidence.Key)
	}
	if len(rep.Keys) >= rep.Summary.Candidates {
		t.Fatalf("the report lists %d of %d keys; the test wants it trimmed", len(rep.Keys), rep.Summary.Candidates)
	}
	arns := make([]string, len(keys))
	for i, k := range keys {
		arns[i] = k.KeyARN
	}
	sort.Strings(arns)
	for i := 1; i < len(arns); i++ {
		if arns[i] == arns[i-1] {
			t.Errorf("%s listed twice", arns[i])
		}
	}
	if len(keys) != rep.Summary.Candidates || ev.Collection.Candidates != rep.Summary.Candidates {
		t.Errorf("evidence lists %d keys (collection %d), the run had %d candidates", len(keys), ev.Collection.Candidates, rep.Summary.Candidates)
	}
	if !ev.CollectionSucceeded || ev.Collection.Read != len(keys) || len(ev.Collection.Unreadable) != 0 {
		t.Errorf("collection %+v succeeded %v, want every key read", ev.Collection, ev.CollectionSucceeded)
	}
	if ev.SchemaVersion != EvidenceSchemaVersion || ev.RunID != rep.RunID || ev.Settings.IntervalDays != 90 || ev.Initiator.LambdaRequestID != "req-1" {
		t.Errorf("evidence header %+v", ev)
	}
	if !strings.Contains(h.metrics.String(), `"EvidenceFailed":0`) {
		t.Error("no EvidenceFailed 0 metric")
	}
}

func TestEvidenceSaysCollectionFailedForAnUnreadableKey(t *testing.T) {
	fleet := `[{"alias":"alias/ok","createdDaysAgo":10,"tags":{"kms-rotator":"enabled"}},
	           {"alias":"alias/denied","createdDaysAgo":10,"tags":{"kms-rotator":"enabled"},"deny":["DescribeKey"]}]`
	h := newHarness(t, kmsemu.Options{}, fleet, fastConfig())
	c := withEvidence(t, h, "evidence-denied", true)
	rep := h.run(t, request.Request{Mode: request.ModeScheduled})
	ev, keys := readEvidence(t, c, rep)
	if ev.CollectionSucceeded || len(ev.Collection.Unreadable) != 1 || ev.Collection.Unreadable[0].Reason != ReasonAccessDenied || len(keys) != 2 {
		t.Fatalf("collection %+v succeeded %v with %d keys; want one unreadable key (access-denied), not succeeded, both listed",
			ev.Collection, ev.CollectionSucceeded, len(keys))
	}
}

func TestEvidenceThatCannotBeWrittenIsSaidAndCounted(t *testing.T) {
	h := newHarness(t, kmsemu.Options{}, oneDueKey, fastConfig())
	withEvidence(t, h, "no-such-evidence-bucket", false)
	rep := h.run(t, request.Request{Mode: request.ModeScheduled})
	if rep.Evidence == nil || !strings.Contains(rep.Evidence.Error, "no-such-evidence-bucket") {
		t.Fatalf("report evidence %+v, want the error naming the bucket", rep.Evidence)
	}
	if rep.Summary.Rotated != 1 {
		t.Errorf("the run rotated %d keys: evidence failing must not stop it", rep.Summary.Rotated)
	}
	if !strings.Contains(h.metrics.String(), `"EvidenceFailed":1`) {
		t.Error("no EvidenceFailed 1 metric")
	}
}
