package kmsemu_test

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu/emutest"
)

// bigFleet is n opted-in keys with some history, through the count extension.
func bigFleet(n int) string {
	return fmt.Sprintf(`[{"alias":"alias/k","count":%d,"createdDaysAgo":400,"tags":{"kms-rotator":"enabled","team":"bench"},
	  "rotations":[{"type":"ON_DEMAND","daysAgo":200},{"type":"AUTOMATIC","daysAgo":100}]}]`, n)
}

// BenchmarkLoadFleet10000 measures loading a 10,000-key fleet (target < 2 s).
func BenchmarkLoadFleet10000(b *testing.B) {
	fleet := bigFleet(10000)
	for b.Loop() {
		s := kmsemu.New(kmsemu.Options{})
		if err := s.LoadFleet(strings.NewReader(fleet)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDescribeKey measures DescribeKey through the real SDK client over
// loopback HTTP against a 10,000-key fleet with quotas off (target ≥ 5,000/s).
func BenchmarkDescribeKey(b *testing.B) {
	e := emutest.Start(b, kmsemu.Options{Log: io.Discard}, bigFleet(10000))
	c := e.KMS("us-east-1")
	var n atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	began, cpu0 := time.Now(), cpuTime(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, err := c.DescribeKey(b.Context(), &kms.DescribeKeyInput{KeyId: aws.String(fmt.Sprintf("alias/k-%05d", i%10000+1))}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	// req/s depends on what else runs on the machine; the process CPU time
	// per request (client and server together) does much less, and
	// GOMAXPROCS / cpu-µs/req is the rate the machine sustains when idle.
	cpu := (cpuTime(b) - cpu0).Seconds() / float64(n.Load())
	b.ReportMetric(float64(n.Load())/time.Since(began).Seconds(), "req/s")
	b.ReportMetric(cpu*1e6, "cpu-µs/req")
	b.ReportMetric(float64(runtime.GOMAXPROCS(0))/cpu, "idle-req/s")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkServeDescribeKey measures the handler alone (no SDK, no network):
// the emulator's own share of a DescribeKey request.
func BenchmarkServeDescribeKey(b *testing.B) {
	s := kmsemu.New(kmsemu.Options{})
	if err := s.LoadFleet(strings.NewReader(bigFleet(10000))); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			body := []byte(fmt.Sprintf(`{"KeyId":"alias/k-%05d"}`, i%10000+1))
			if status, _, _ := post(b, s, "TrentService.DescribeKey", "", body); status != 200 {
				b.Errorf("status %d", status)
				return
			}
		}
	})
}
