package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// buildBootstrap builds the function for goarch into dir, static with
// -tags lambda.norpc and stripped. deployable adds -trimpath, giving exactly
// `make build`'s binary (for its size); without it the host build reuses the
// compile cache of the harness and the tests (same packages, same tags), so
// timing the init does not cost the bench a full rebuild.
func buildBootstrap(ctx context.Context, root, dir, goarch string, deployable bool) (string, error) {
	out := filepath.Join(dir, "bootstrap-"+goarch)
	args := []string{"build", "-tags", "lambda.norpc", "-ldflags=-s -w", "-o", out, "./lambda"}
	if deployable {
		args = append(args[:1], append([]string{"-trimpath"}, args[1:]...)...)
	}
	cmd := exec.CommandContext(ctx, goCommand(), args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+goarch, "CGO_ENABLED=0")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./lambda (%s): %w\n%s", goarch, err, buf.String())
	}
	return out, nil
}

// measureInit runs bin as Lambda would, against a stub Runtime API, and
// returns the init durations of runs cold starts: from exec to the
// function's first GET /2018-06-01/runtime/invocation/next, which is where
// Lambda's init phase ends (configuration read, SDK clients built).
func measureInit(ctx context.Context, bin string, runs int) ([]time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ready := make(chan time.Time, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/2018-06-01/runtime/invocation/next" {
			select {
			case ready <- time.Now():
			default:
			}
			<-r.Context().Done() // hold the long poll until the process dies
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	var out []time.Duration
	for range runs {
		cmd := exec.CommandContext(ctx, bin)
		cmd.Env = []string{
			"AWS_LAMBDA_RUNTIME_API=" + ln.Addr().String(),
			"AWS_LAMBDA_FUNCTION_NAME=kms-rotator-bench",
			"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256",
			"AWS_REGION=" + benchRegion,
			"AWS_ACCESS_KEY_ID=AKIDEXAMPLE",
			"AWS_SECRET_ACCESS_KEY=secret",
			"AWS_SESSION_TOKEN=token",
			"AWS_EC2_METADATA_DISABLED=true",
			"AWS_CONFIG_FILE=" + os.DevNull,
			"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
			"AWS_ENDPOINT_URL=http://127.0.0.1:1",
			// Required by the cold start; init makes no DynamoDB call.
			settings.EnvLedgerTable + "=" + ledgerTable,
		}
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		var d time.Duration
		select {
		case t := <-ready:
			d = t.Sub(start)
		case <-time.After(10 * time.Second):
			err = fmt.Errorf("%s did not reach the Runtime API within 10s", bin)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	slices.Sort(out)
	return out, nil
}
