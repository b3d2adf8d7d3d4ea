package main

import (
	"bytes"
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
// -buildvcs=false keeps the git revision, commit time and dirty flag out of
// the binary: the asset hash is the binary's (AssetHashType_OUTPUT), so with
// them every commit, even one touching only docs, would redeploy the
// function. The flag on the command line wins over any GOFLAGS.
var goBuildFlags = []string{"build", "-buildvcs=false", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o"}

// goBundler builds the function's bootstrap on the machine that runs the
// synth (CDK "local bundling"). The app itself runs with `go run ./infra`, so
// Go is always there; there is no Docker fallback. It must be passed to CDK
// as a pointer: jsii calls TryBundle through reflection and a value receiver
// panics there.
type goBundler struct {
	// moduleDir holds go.mod; pkg is built relative to it.
	moduleDir string
	pkg       string
}

// TryBundle implements awscdk.ILocalBundling. It never returns false, as
// false would make CDK run the bundling options' Docker image: a failed or
// impossible build panics with the reason (the compiler's output), which
// stops the synth instead of deploying an old or empty asset.
func (b *goBundler) TryBundle(outputDir *string, _ *awscdk.BundlingOptions) *bool {
	if err := b.build(*outputDir); err != nil {
		// jsii turns the panic into CDK's "Failed to bundle asset" error, and
		// the JavaScript runtime's own noise may come first: say it here too.
		fmt.Fprintln(os.Stderr, "kms-rotator:", err)
		panic(err)
	}
	return jsii.Bool(true)
}

// build runs go build for linux/arm64 into outputDir/bootstrap.
func (b *goBundler) build(outputDir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("building the function needs Go (the version in go.mod) on PATH, and there is no Docker fallback: %w", err)
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

// unusedImage fills BundlingOptions.Image, which CDK requires even with a
// Local bundler. CDK runs the image only when TryBundle returns false
// (aws-cdk-lib AssetStaging.bundle; "If false is returned, docker bundling
// will be done" in the BundlingOptions.local doc), and goBundler never does,
// so it is never pulled or run. The name is not a valid image reference (it
// has spaces), so if it ever were used Docker would refuse it rather than
// pull whatever someone published under a plausible name.
const unusedImage = "none: kms-rotator builds the function with local Go only"

// functionCode is the Lambda asset: bootstrap built from moduleDir by
// goBundler. The asset hash is the built binary's, so a commit that leaves
// the function's code alone does not re-upload or redeploy it. moduleDir is
// named as the asset's source only because CDK wants one: local bundling
// neither copies nor fingerprints it.
func functionCode(moduleDir string) awslambda.Code {
	return awslambda.Code_FromAsset(jsii.String(moduleDir), &awss3assets.AssetOptions{
		AssetHashType: awscdk.AssetHashType_OUTPUT,
		Bundling: &awscdk.BundlingOptions{
			Local: &goBundler{moduleDir: moduleDir, pkg: functionPackage},
			Image: awscdk.DockerImage_FromRegistry(jsii.String(unusedImage)),
		},
	})
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
