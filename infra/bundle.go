package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3assets"
	"github.com/aws/jsii-runtime-go"
)

// functionPackage is the function's package main, relative to the module root
// (docs/design.md "Build and run").
const functionPackage = "./lambda"

// goBuildFlags build the deployable bootstrap the way `make build` does:
// static, without the RPC shim that provided.al2023 does not need, trimmed.
var goBuildFlags = []string{"build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o"}

// dockerGoImage is the fallback builder for machines without Go; the
// function's go.mod asks for Go 1.26.
const dockerGoImage = "public.ecr.aws/docker/library/golang:1.26"

// goBundler builds the function's bootstrap on the machine that runs the
// synth (CDK "local bundling"), so a fresh clone deploys with only Go and
// Node installed. It must be passed to CDK as a pointer: jsii calls TryBundle
// through reflection and a value receiver panics there.
type goBundler struct {
	// moduleDir holds go.mod; pkg is built relative to it.
	moduleDir string
	pkg       string
}

// errNoGo means there is no Go toolchain here, so CDK should try Docker.
var errNoGo = errors.New("no go toolchain on PATH")

// TryBundle implements awscdk.ILocalBundling. It returns false only when Go
// is missing (CDK then bundles in Docker); a failed build panics with the
// compiler's output, so the synth stops loudly instead of deploying an old
// or empty asset.
func (b *goBundler) TryBundle(outputDir *string, _ *awscdk.BundlingOptions) *bool {
	err := b.build(*outputDir)
	if errors.Is(err, errNoGo) {
		fmt.Fprintln(os.Stderr, "kms-rotator: Go is not on PATH; building the function in Docker instead")
		return jsii.Bool(false)
	}
	if err != nil {
		panic(err)
	}
	return jsii.Bool(true)
}

// build runs go build for linux/arm64 into outputDir/bootstrap.
func (b *goBundler) build(outputDir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return errNoGo
	}
	out := filepath.Join(outputDir, "bootstrap")
	cmd := exec.Command(goBin, append(append([]string{}, goBuildFlags...), out, b.pkg)...)
	cmd.Dir = b.moduleDir
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building the function (go %s in %s) failed: %v\n%s",
			strings.Join(cmd.Args[1:], " "), b.moduleDir, err, output.String())
	}
	return nil
}

// assetExclude keeps the big and generated folders out of the source folder
// the Docker fallback mounts. CDK applies the same patterns when it
// fingerprints the bundle's output (AssetHashType_OUTPUT), so a pattern that
// matched "bootstrap" would freeze the asset hash and a changed function
// would never be uploaded.
var assetExclude = []string{"node_modules", "cdk.out", ".git"}

// functionCode is the Lambda asset: bootstrap built from moduleDir, locally
// with Go or else in Docker. The asset hash is taken from the built binary, so
// an unchanged function does not re-upload.
func functionCode(moduleDir string) awslambda.Code {
	shell := fmt.Sprintf("GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go %s /asset-output/bootstrap %s",
		strings.Join(quoteAll(goBuildFlags), " "), functionPackage)
	return awslambda.Code_FromAsset(jsii.String(moduleDir), &awss3assets.AssetOptions{
		AssetHashType: awscdk.AssetHashType_OUTPUT,
		Exclude:       jsii.Strings(assetExclude...),
		Bundling: &awscdk.BundlingOptions{
			Local:   &goBundler{moduleDir: moduleDir, pkg: functionPackage},
			Image:   awscdk.DockerImage_FromRegistry(jsii.String(dockerGoImage)),
			Command: jsii.Strings("bash", "-c", shell),
			// The image's GOPATH is root-owned; CDK runs the container as the
			// calling user.
			Environment: &map[string]*string{
				"GOCACHE":    jsii.String("/tmp/go-cache"),
				"GOMODCACHE": jsii.String("/tmp/go-mod"),
			},
		},
	})
}

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " '") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return out
}

// findModuleRoot walks up from dir to the folder holding go.mod: `cdk synth`
// runs the app from the repository root, `go test` from infra/.
func findModuleRoot(dir string) (string, error) {
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod in %s or above", dir)
		}
		d = parent
	}
}
