package kmsemu_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	tagging "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

// fleetOf is n opted-in symmetric keys with fixed IDs.
func fleetOf(n int) (string, []string) {
	var entries, ids []string
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		ids = append(ids, id)
		entries = append(entries, fmt.Sprintf(`{"keyId":%q,"tags":{"kms-rotator":"enabled"}}`, id))
	}
	return "[" + strings.Join(entries, ",") + "]", ids
}

func TestQuotas(t *testing.T) {
	fleet, ids := fleetOf(8)
	t.Run("RotateKeyOnDemand is throttled after 5 a second, then refills", func(t *testing.T) {
		e := start(t, kmsemu.Options{QuotaScale: 1}, fleet)
		for i, id := range ids[:6] {
			_, err := e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(id)})
			want := ""
			if i == 5 {
				want = "ThrottlingException"
			}
			wantCode(t, err, want)
		}
		e.clock.Advance(time.Second)
		must[*kms.RotateKeyOnDemandOutput](t)(e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(ids[5])}))
		if st := e.emu.Server.Stats().Op("RotateKeyOnDemand"); st.Calls != 7 || st.Throttled != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("GetKeyLastUsage is throttled after 5 a second, KMS's published quota", func(t *testing.T) {
		// The clock stands still: ten calls in one instant, no retries.
		e := start(t, kmsemu.Options{QuotaScale: 1}, fleet)
		ok, throttled := 0, 0
		for i := 0; i < 10; i++ {
			_, err := e.kms.GetKeyLastUsage(e.ctx, &kms.GetKeyLastUsageInput{KeyId: aws.String(ids[i%8])})
			switch code(t, err) {
			case "":
				ok++
			case "ThrottlingException":
				throttled++
			default:
				t.Fatalf("call %d: %v", i, err)
			}
		}
		if ok != 5 || throttled != 5 {
			t.Fatalf("%d answered, %d throttled; want 5 and 5", ok, throttled)
		}
	})
	t.Run("quota scale 2 doubles the rate; other operations have their own bucket", func(t *testing.T) {
		e := start(t, kmsemu.Options{QuotaScale: 2}, fleet)
		throttled := 0
		for i := 0; i < 12; i++ {
			_, err := e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(ids[i%8])})
			if code(t, err) == "ThrottlingException" {
				throttled++
			}
		}
		if throttled != 2 {
			t.Fatalf("%d of 12 throttled, want 2", throttled)
		}
		must[*kms.DescribeKeyOutput](t)(e.kms.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String(ids[0])}))
	})
	t.Run("each region has its own bucket", func(t *testing.T) {
		e := start(t, kmsemu.Options{QuotaScale: 0.1}, fleet) // ListKeys 50/s
		west := kmsClient(e.emu, "us-west-2")
		for i := 0; i < 50; i++ {
			must[*kms.ListKeysOutput](t)(e.kms.ListKeys(e.ctx, &kms.ListKeysInput{}))
		}
		_, err := e.kms.ListKeys(e.ctx, &kms.ListKeysInput{})
		wantCode(t, err, "ThrottlingException")
		must[*kms.ListKeysOutput](t)(west.ListKeys(e.ctx, &kms.ListKeysInput{}))
	})
	t.Run("GetResources is throttled with ThrottledException", func(t *testing.T) {
		e := start(t, kmsemu.Options{QuotaScale: 1}, fleet)
		var err error
		for i := 0; i < 11 && err == nil; i++ {
			_, err = e.tag.GetResources(e.ctx, &tagging.GetResourcesInput{})
		}
		wantCode(t, err, "ThrottledException")
	})
	t.Run("quota scale 0 never throttles", func(t *testing.T) {
		e := start(t, kmsemu.Options{}, fleet)
		for i := 0; i < 30; i++ {
			must[*kms.GetKeyRotationStatusOutput](t)(e.kms.GetKeyRotationStatus(e.ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(ids[0])}))
		}
	})
}

func TestFaults(t *testing.T) {
	fleet, ids := fleetOf(20)
	t.Run("fail-rate errors change nothing", func(t *testing.T) {
		e := start(t, kmsemu.Options{FailRate: 0.5, Seed: 7}, fleet)
		// reads retry at once until they get through the injected failures
		reader := kms.NewFromConfig(e.emu.Config("us-east-1"), func(o *kms.Options) {
			o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = 60
				so.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
				so.RateLimiter = ratelimit.None
			})
		})
		ok, failed := map[string]bool{}, 0
		for _, id := range ids {
			_, err := e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(id)})
			switch code(t, err) {
			case "":
				ok[id] = true
			case "KMSInternalException":
				failed++
			default:
				t.Fatalf("unexpected error %v", err)
			}
		}
		if failed == 0 || len(ok) == 0 {
			t.Fatalf("%d failed, %d succeeded: want some of each at rate 0.5", failed, len(ok))
		}
		for _, id := range ids {
			l := must[*kms.ListKeyRotationsOutput](t)(reader.ListKeyRotations(e.ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(id)}))
			if rotated := len(l.Rotations) == 1; rotated != ok[id] {
				t.Fatalf("key %s rotated=%v but the call succeeded=%v", id, rotated, ok[id])
			}
		}
		if st := e.emu.Server.Stats().Op("RotateKeyOnDemand"); st.Failed != int64(failed) {
			t.Fatalf("stats %+v, want %d failed", st, failed)
		}
	})
	t.Run("drop-rate applies the rotation, then answers 500", func(t *testing.T) {
		e := start(t, kmsemu.Options{DropRate: 1}, fleet)
		_, err := e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(ids[0])})
		wantCode(t, err, "KMSInternalException")
		l := must[*kms.ListKeyRotationsOutput](t)(e.kms.ListKeyRotations(e.ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(ids[0])}))
		if len(l.Rotations) != 1 {
			t.Fatalf("%d rotations after a dropped response, want 1", len(l.Rotations))
		}
		if st := e.emu.Server.Stats().Op("RotateKeyOnDemand"); st.Dropped != 1 {
			t.Fatalf("stats %+v", st)
		}
		// reads are never dropped
		must[*kms.DescribeKeyOutput](t)(e.kms.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String(ids[0])}))
	})
	t.Run("latency delays every response", func(t *testing.T) {
		e := start(t, kmsemu.Options{Latency: 30 * time.Millisecond}, fleet)
		began := time.Now()
		must[*kms.DescribeKeyOutput](t)(e.kms.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String(ids[0])}))
		if d := time.Since(began); d < 30*time.Millisecond {
			t.Fatalf("answered after %v, want at least 30ms", d)
		}
	})
	t.Run("the same seed replays the same faults", func(t *testing.T) {
		pattern := func(seed int64) string {
			e := start(t, kmsemu.Options{FailRate: 0.5, Seed: seed}, fleet)
			var b strings.Builder
			for _, id := range ids {
				_, err := e.kms.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
				b.WriteString(map[bool]string{true: "x", false: "."}[err != nil])
			}
			return b.String()
		}
		if a, b := pattern(42), pattern(42); a != b {
			t.Fatalf("seed 42 gave %s then %s", a, b)
		}
	})
}

func TestStatsAndLog(t *testing.T) {
	var mu sync.Mutex
	var logBuf bytes.Buffer
	fleet, ids := fleetOf(1)
	e := start(t, kmsemu.Options{Log: writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logBuf.Write(p)
	})}, fleet)
	must[*kms.DescribeKeyOutput](t)(e.kms.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String(ids[0])}))
	_, err := e.kms.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/none")})
	wantCode(t, err, "NotFoundException")

	t.Run("one log line per request with op, key, code and latency", func(t *testing.T) {
		mu.Lock()
		lines := strings.Split(strings.TrimSpace(logBuf.String()), "\n")
		mu.Unlock()
		if len(lines) != 2 {
			t.Fatalf("%d log lines, want 2: %q", len(lines), lines)
		}
		for i, want := range []string{"key=" + ids[0] + " status=200 code=OK", "key=alias/none status=400 code=NotFoundException"} {
			if !strings.Contains(lines[i], "op=DescribeKey") || !strings.Contains(lines[i], want) || !strings.Contains(lines[i], "latency=") {
				t.Fatalf("line %q lacks %q", lines[i], want)
			}
		}
	})
	t.Run("GET /_kmslocal/stats serves the counters", func(t *testing.T) {
		resp, err := http.Get(e.emu.URL + "/_kmslocal/stats")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st kmsemu.Stats
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		if d := st.Op("DescribeKey"); d.Calls != 2 || d.Errors != 1 || st.Total.Calls != 2 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("POST /_kmslocal/stats/reset zeroes them", func(t *testing.T) {
		resp, err := http.Post(e.emu.URL+"/_kmslocal/stats/reset", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if st := e.emu.Server.Stats(); st.Total.Calls != 0 || len(st.Operations) != 0 {
			t.Fatalf("stats after reset %+v", st)
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestConcurrentClients(t *testing.T) {
	fleet, ids := fleetOf(10)
	e := start(t, kmsemu.Options{RotationDelay: time.Second, OnDemandLimit: 100}, fleet)
	var wg sync.WaitGroup
	errs := make(chan error, 80)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				id := aws.String(ids[(w+i)%len(ids)])
				if _, err := e.kms.DescribeKey(e.ctx, &kms.DescribeKeyInput{KeyId: id}); err != nil {
					errs <- err
				}
				_, _ = e.kms.RotateKeyOnDemand(e.ctx, &kms.RotateKeyOnDemandInput{KeyId: id})
				if _, err := e.tag.GetResources(e.ctx, &tagging.GetResourcesInput{}); err != nil {
					errs <- err
				}
				e.clock.Advance(100 * time.Millisecond)
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if st := e.emu.Server.Stats(); st.Total.Calls != 240 {
		t.Fatalf("%d calls counted, want 240", st.Total.Calls)
	}
}
