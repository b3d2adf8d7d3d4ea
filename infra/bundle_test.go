package main

import (
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
)

// writeModule writes a one-file Go module with the given main.go.
func writeModule(t *testing.T, mainGo string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":         "module example.com/fn\n\ngo 1.22\n",
		"lambda/main.go": mainGo,
	} {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBundlerBuildsAStaticLinuxARM64Bootstrap(t *testing.T) {
	b := &goBundler{moduleDir: writeModule(t, "package main\n\nfunc main() {}\n"), pkg: functionPackage}
	out := t.TempDir()
	if ok := b.TryBundle(jsii.String(out), nil); ok == nil || !*ok {
		t.Fatalf("TryBundle = %v, want true", ok)
	}
	f, err := elf.Open(filepath.Join(out, "bootstrap"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 || f.Class != elf.ELFCLASS64 {
		t.Errorf("bootstrap is %v %v, want a 64-bit arm64 ELF", f.Class, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("bootstrap has an ELF interpreter: it must be static (CGO_ENABLED=0)")
		}
	}
	if f.Section(".symtab") != nil {
		t.Errorf("bootstrap has a symbol table: -ldflags='-s -w' was not applied")
	}
}

func TestBundlerFailsLoudlyOnACompileError(t *testing.T) {
	b := &goBundler{moduleDir: writeModule(t, "package main\n\nfunc main() { undefinedThing() }\n"), pkg: functionPackage}
	defer func() {
		r := recover()
		msg, _ := r.(error)
		if msg == nil || !strings.Contains(msg.Error(), "undefined: undefinedThing") || !strings.Contains(msg.Error(), "building the function") {
			t.Errorf("panic %v, want the compiler's message", r)
		}
	}()
	b.TryBundle(jsii.String(t.TempDir()), nil)
	t.Error("TryBundle returned after a failed build")
}

func TestBundlerFailsWithoutGoInsteadOfTryingDocker(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	b := &goBundler{moduleDir: t.TempDir(), pkg: functionPackage}
	defer func() {
		r := recover()
		msg, _ := r.(error)
		if msg == nil || !strings.Contains(msg.Error(), "needs Go") || !strings.Contains(msg.Error(), "no Docker fallback") {
			t.Errorf("panic %v, want one saying Go is needed and Docker is not used", r)
		}
	}()
	ok := b.TryBundle(jsii.String(t.TempDir()), nil)
	t.Errorf("TryBundle = %v without Go, want a panic (false would make CDK run the Docker image)", ok)
}

func TestFindModuleRoot(t *testing.T) {
	root := writeModule(t, "package main\n")
	tests := []struct {
		name, from string
		want       string
	}{
		{"from the root", root, root},
		{"from a sub-folder", filepath.Join(root, "lambda"), root},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := findModuleRoot(tc.from)
			if err != nil || got != tc.want {
				t.Errorf("findModuleRoot(%s) = %q, %v; want %q", tc.from, got, err, tc.want)
			}
		})
	}
	t.Run("without go.mod it is an error", func(t *testing.T) {
		if _, err := findModuleRoot(t.TempDir()); err == nil {
			t.Error("want an error")
		}
	})
}

// TestAssetHashIgnoresCommitsButNotCode builds the real function (./lambda of
// a clone of this repository's HEAD) through functionCode, as a synth does,
// and reads the asset hash CDK gives it. A docs-only commit must leave the
// hash alone, or every commit would redeploy the function; a change to the
// function's code must change it, or the change would never deploy.
//
// GOFLAGS asks for VCS stamping (-buildvcs=true, which also fails a build
// that cannot stamp), as a normal Go setup does in a git checkout: only the
// bundler's own -buildvcs=false keeps the revision out of the binary.
func TestAssetHashIgnoresCommitsButNotCode(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := findModuleRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("git", "-C", root, "rev-parse", "--is-inside-work-tree").CombinedOutput(); err != nil {
		t.Skipf("%s is not a git checkout: %s", root, out)
	}
	t.Setenv("GOFLAGS", goFlagsStampingVCS(t))
	repo := filepath.Join(t.TempDir(), "repo")
	git(t, "", "clone", "--quiet", root, repo)

	built := bundleAsset(t, repo)
	for _, s := range built.info.Settings {
		if strings.HasPrefix(s.Key, "vcs") {
			t.Errorf("bootstrap records %s=%s: the build stamps VCS information", s.Key, s.Value)
		}
	}

	appendTo(t, filepath.Join(repo, "README.md"), "\nA docs-only change.\n")
	git(t, repo, "commit", "--quiet", "-am", "docs only")
	if again := bundleAsset(t, repo); again.hash != built.hash {
		t.Errorf("a docs-only commit changed the asset hash from %s to %s", built.hash, again.hash)
	}

	appendTo(t, filepath.Join(repo, "lambda", "main.go"), "\nfunc init() { println(\"a change to the function\") }\n")
	git(t, repo, "commit", "--quiet", "-am", "code")
	if changed := bundleAsset(t, repo); changed.hash == built.hash {
		t.Errorf("a change to the function's code kept the asset hash %s: it would not deploy", built.hash)
	}
}

// bundledAsset is the function asset of one synth: CDK's hash and the
// staged bootstrap's build information.
type bundledAsset struct {
	hash string
	info *buildinfo.BuildInfo
}

// bundleAsset binds functionCode(moduleDir) to a fresh stack, which runs
// goBundler and stages the output under the app's outdir.
func bundleAsset(t *testing.T, moduleDir string) bundledAsset {
	t.Helper()
	// CDK keeps each source folder's staging for the life of the process;
	// the folder is the same every time here, its content is not.
	awscdk.AssetStaging_ClearAssetHashCache()
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	stack := awscdk.NewStack(app, jsii.String("Bundle"), nil)
	cfg := functionCode(moduleDir).Bind(stack)
	hash := strings.TrimSuffix(*cfg.S3Location.ObjectKey, ".zip")
	info, err := buildinfo.ReadFile(filepath.Join(*app.Outdir(), "asset."+hash, "bootstrap"))
	if err != nil {
		t.Fatal(err)
	}
	return bundledAsset{hash: hash, info: info}
}

// goFlagsStampingVCS is this machine's GOFLAGS with -buildvcs=true in place
// of any -buildvcs setting.
func goFlagsStampingVCS(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOFLAGS").Output()
	if err != nil {
		t.Fatal(err)
	}
	var flags []string
	for _, f := range strings.Fields(string(out)) {
		if !strings.HasPrefix(f, "-buildvcs") {
			flags = append(flags, f)
		}
	}
	return strings.Join(append(flags, "-buildvcs=true"), " ")
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=test", "GIT_COMMITTER_EMAIL=test@example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func appendTo(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
