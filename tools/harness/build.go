package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// ModulePath is the module whose root Build looks for.
const ModulePath = "github.com/kms-rotator/kms-rotator"

// rieModule is the Runtime Interface Emulator's main package, pinned by the
// `tool` line in go.mod so the build works offline from the module cache.
const rieModule = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"

// Binaries are the paths of the three programs a local run needs.
type Binaries struct {
	// Bootstrap is the function, built for the host (not linux/arm64) with
	// -tags lambda.norpc, as the Runtime Interface Emulator executes it.
	Bootstrap string
	// KMSLocal is the KMS emulator command.
	KMSLocal string
	// RIE is the AWS Lambda Runtime Interface Emulator.
	RIE string
	// Root is the module root the binaries were built from; relative
	// paths such as "events/fleet.json" resolve against it.
	Root string
}

// BuildOptions tune Build. The zero value builds from the module containing
// the working directory into <root>/.cache/harness.
type BuildOptions struct {
	// Root is the module root; empty means: walk up from the working
	// directory to the go.mod of ModulePath.
	Root string
	// Dir receives the binaries; empty means <Root>/.cache/harness.
	Dir string
	// Log receives the go command's output; nil discards it (it is still
	// part of the returned error when a build fails).
	Log io.Writer
}

// Build builds bootstrap, kmslocal and the Runtime Interface Emulator into
// one directory. It is cheap when nothing changed: `go build -o` leaves an
// up-to-date binary alone, and a file lock serialises concurrent builders
// (several test packages run at once under `go test ./...`).
func Build(ctx context.Context, opts BuildOptions) (*Binaries, error) {
	root := opts.Root
	if root == "" {
		r, err := FindRoot("")
		if err != nil {
			return nil, err
		}
		root = r
	}
	dir := opts.Dir
	if dir == "" {
		dir = filepath.Join(root, ".cache", "harness", runtime.GOOS+"_"+runtime.GOARCH)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("harness: build dir: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("harness: lock build dir %s: %w", dir, err)
	}
	defer unlock()

	bins := &Binaries{
		Bootstrap: filepath.Join(dir, "bootstrap"),
		KMSLocal:  filepath.Join(dir, "kmslocal"),
		RIE:       filepath.Join(dir, "aws-lambda-rie"),
		Root:      root,
	}
	// One go command for the three: loading the package graph once makes
	// the usual case (nothing changed, `go build -o` leaves up-to-date
	// binaries alone) two to five times faster than three commands.
	// lambda.norpc drops the RPC shim aws-lambda-go otherwise compiles in:
	// the RIE speaks the Runtime API, and the deployable binary (Makefile
	// `build`) is built the same way; the other two do not use the tag.
	pkgs := []string{"./lambda", "./tools/kmslocal", rieModule}
	args := append([]string{"build", "-tags", "lambda.norpc", "-o", dir + string(filepath.Separator)}, pkgs...)
	cmd := exec.CommandContext(ctx, goCommand(), args...)
	cmd.Dir = root
	// Host architecture on purpose: the RIE runs the bootstrap as a local
	// process. CGO off keeps it as static as the deployed one.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err = cmd.Run()
	if opts.Log != nil && out.Len() > 0 {
		_, _ = opts.Log.Write(out.Bytes())
	}
	if err != nil {
		return nil, fmt.Errorf("harness: go build %s: %w\n%s", strings.Join(pkgs, " "), err, strings.TrimSpace(out.String()))
	}
	// go build names the function's binary after its directory; the RIE
	// and Lambda call it bootstrap.
	if target, err := os.Readlink(bins.Bootstrap); err != nil || target != "lambda" {
		_ = os.Remove(bins.Bootstrap)
		if err := os.Symlink("lambda", bins.Bootstrap); err != nil {
			return nil, fmt.Errorf("harness: %w", err)
		}
	}
	return bins, nil
}

var shared struct {
	once sync.Once
	bins *Binaries
	err  error
}

// Shared builds the binaries with the default BuildOptions once per
// process and returns the same result to every caller, so all tests of a
// package share one build.
func Shared(ctx context.Context) (*Binaries, error) {
	shared.once.Do(func() {
		shared.bins, shared.err = Build(ctx, BuildOptions{})
	})
	return shared.bins, shared.err
}

// FindRoot walks up from dir (the working directory when empty) to the
// directory whose go.mod declares ModulePath.
func FindRoot(dir string) (string, error) {
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", fmt.Errorf("harness: %w", err)
		}
		dir = wd
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("harness: %w", err)
	}
	for d := dir; ; {
		if mod, err := modulePathOf(filepath.Join(d, "go.mod")); err == nil && mod == ModulePath {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("harness: no go.mod for %s above %s", ModulePath, dir)
		}
		d = parent
	}
}

// modulePathOf returns the module path declared in a go.mod file.
func modulePathOf(goMod string) (string, error) {
	f, err := os.Open(goMod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("no module line")
}

// goCommand prefers the go binary of the toolchain that started us (the go
// command exports GOROOT to `go run` and `go test` children), so the
// builds use the same Go version as the caller.
func goCommand() string {
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", "go")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return "go"
}
