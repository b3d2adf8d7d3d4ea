// Package moto runs moto's server (a third party's implementation of AWS
// APIs in Python, on these machines' image: `moto_server`) on 127.0.0.1 for
// tests that need S3: the evidence bucket. Nothing of it ships.
package moto

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Server is a running moto_server.
type Server struct {
	// URL is http://127.0.0.1:PORT.
	URL  string
	cmd  *exec.Cmd
	once sync.Once
}

// Start runs moto_server on a free loopback port and waits until it answers.
func Start(ctx context.Context) (*Server, error) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return nil, fmt.Errorf("moto: moto_server not found (pip install 'moto[server]'): %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=secret")
	// Its own process group, so Close stops the server and its children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{URL: "http://127.0.0.1:" + strconv.Itoa(port), cmd: cmd}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/moto-api/")
		if err == nil {
			_ = resp.Body.Close()
			return s, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.Close()
			return nil, errors.Join(errors.New("moto: moto_server did not answer in 30 s"), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// StartTB is Start for tests, stopped in tb.Cleanup.
func StartTB(tb testing.TB) *Server {
	tb.Helper()
	s, err := Start(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// S3 is an S3 client of the server (path-style addressing: moto serves one
// host).
func (s *Server) S3() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		BaseEndpoint: aws.String(s.URL),
		UsePathStyle: true,
	})
}

// Close stops the server.
func (s *Server) Close() {
	s.once.Do(func() {
		if s.cmd.Process != nil {
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			_, _ = s.cmd.Process.Wait()
		}
	})
}

// BucketTB is StartTB with one bucket created: the S3 of a test that runs
// the function with a bucket setting (ROTATOR_ORG_BUCKET,
// ROTATOR_EVIDENCE_BUCKET).
func BucketTB(tb testing.TB, bucket string) *Server {
	tb.Helper()
	s := StartTB(tb)
	if _, err := s.S3().CreateBucket(tb.Context(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		tb.Fatalf("moto: create bucket %s: %v", bucket, err)
	}
	return s
}

// Env points the function's S3 client at the server (the SDK's
// service-specific endpoint variable).
func (s *Server) Env() map[string]string { return map[string]string{"AWS_ENDPOINT_URL_S3": s.URL} }
