package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// cfnLintIgnored are the cfn-lint rules the templates may break, each with
// the reason; every other error and warning fails TestTemplatesPassCfnLint.
var cfnLintIgnored = map[string]string{}

// TestTemplatesPassCfnLint runs cfn-lint on the central template of
// single-account mode, on the central template of organization mode (plain,
// and with a permissions boundary and tags) and on each StackSet's member
// template (a string inside the latter, which cfn-lint does not open): any
// error or warning fails the test with cfn-lint's output.
func TestTemplatesPassCfnLint(t *testing.T) {
	bin, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Fatalf("cfn-lint is not on PATH (%v): run make test, which installs the version pinned in the Makefile (CFN_LINT_VERSION) into .cache/cfn-lint, or pip install cfn-lint", err)
	}
	if v, err := exec.Command(bin, "--version").Output(); err == nil {
		t.Logf("%s", strings.TrimSpace(string(v)))
	}
	_, _, single := synth(t)
	_, _, org := orgSynth(t)
	// Every setting of the deployment's identity at once: another stack
	// name, a permissions boundary and tags on every resource.
	dressed := orgSynthWith(t, dressedContext)
	dir := t.TempDir()
	// Indented, so that cfn-lint's line numbers point somewhere.
	type template struct {
		name string
		body any
	}
	templates := []template{{"single-account.json", single}, {"organization.json", org}, {"dressed.json", dressed}}
	for name, j := range map[string]map[string]any{"organization": org, "dressed": dressed} {
		for id, r := range resources(t, j, "AWS::CloudFormation::StackSet") {
			member, ok := r["Properties"].(map[string]any)["TemplateBody"].(string)
			if !ok {
				t.Fatalf("%s: the StackSet %s's TemplateBody is %T, want the member template as a string", name, id, r["Properties"].(map[string]any)["TemplateBody"])
			}
			var memberJSON any
			if err := json.Unmarshal([]byte(member), &memberJSON); err != nil {
				t.Fatalf("%s: the member template of %s is not JSON: %v", name, id, err)
			}
			templates = append(templates, template{name + "-" + id + "-member.json", memberJSON})
		}
	}
	var ignore []string
	for rule := range cfnLintIgnored {
		ignore = append(ignore, rule)
	}
	sort.Strings(ignore)
	for _, tc := range templates {
		t.Run(tc.name, func(t *testing.T) {
			body, err := json.MarshalIndent(tc.body, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, tc.name)
			if err := os.WriteFile(file, body, 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"--format", "parseable"}
			if len(ignore) > 0 {
				args = append(args, "--ignore-checks", strings.Join(ignore, ","))
			}
			// rc 0: nothing found; 2 errors, 4 warnings, 8 informational
			// (bit flags), and 32 when cfn-lint itself failed.
			out, err := exec.Command(bin, append(args, "--", file)...).CombinedOutput()
			if err != nil {
				t.Errorf("cfn-lint %s: %v\n%s", tc.name, err, out)
			}
		})
	}
}
