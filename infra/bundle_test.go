package main

import (
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"

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

func TestBundlerFallsBackToDockerWithoutGo(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	b := &goBundler{moduleDir: t.TempDir(), pkg: functionPackage}
	if ok := b.TryBundle(jsii.String(t.TempDir()), nil); ok == nil || *ok {
		t.Errorf("TryBundle = %v, want false so CDK bundles in Docker", ok)
	}
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

func TestAssetExcludeKeepsTheBootstrapInTheAssetHash(t *testing.T) {
	for _, pattern := range assetExclude {
		if matched, _ := filepath.Match(pattern, "bootstrap"); matched || strings.Contains(pattern, "bootstrap") {
			t.Errorf("exclude pattern %q hides bootstrap from the asset hash", pattern)
		}
	}
}
