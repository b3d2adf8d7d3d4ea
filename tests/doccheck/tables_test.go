package doccheck

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kms-rotator/kms-rotator/lambda/rotator"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/harness"
)

// The facts the documents restate — every reason with its outcome, every
// variable with its default, every context key with the variable it sets
// and its default in cdk.json — are declared once in code (rotator's
// reasons table, the settings table: settings.Table, from which
// settings.DefaultConfig and settings.Environment are derived); these
// tests fail when a copy in README.md, docs/design.md, docs/deploy.md,
// cdk.json or the harness's report checker disagrees.

var (
	rowRE  = regexp.MustCompile(`^\|(.*)\|\s*$`)
	codeRE = regexp.MustCompile("`([^`]*)`")
)

// tableRows returns the cells of the markdown table rows in the section
// of doc whose heading is heading (up to the next heading of the same or a
// higher level).
func tableRows(t *testing.T, doc, heading string) [][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), doc))
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]string
	in, level := false, 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#") {
			l := len(line) - len(strings.TrimLeft(line, "#"))
			if in && l <= level {
				break
			}
			if strings.TrimSpace(strings.TrimLeft(line, "#")) == heading {
				in, level = true, l
			}
			continue
		}
		if m := rowRE.FindStringSubmatch(line); in && m != nil && !strings.HasPrefix(strings.TrimSpace(m[1]), "---") {
			cells := strings.Split(m[1], " | ")
			for i := range cells {
				cells[i] = strings.TrimSpace(cells[i])
			}
			rows = append(rows, cells)
		}
	}
	if len(rows) == 0 {
		t.Fatalf("%s: no table under %q", doc, heading)
	}
	return rows
}

// variables returns the ROTATOR_* variables backticked in a cell.
func variables(cell string) []string {
	return slices.DeleteFunc(codes(cell), func(s string) bool { return !strings.HasPrefix(s, "ROTATOR_") })
}

// codes returns the backticked words of a cell.
func codes(cell string) []string {
	var out []string
	for _, m := range codeRE.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestDesignReasonTableMatchesTheCode(t *testing.T) {
	doc := map[string]string{}
	for _, row := range tableRows(t, "docs/design.md", "Decisions: outcomes and reasons")[1:] {
		c := codes(row[0])
		if len(c) != 1 {
			continue // the outcome-only rows (— | rotated)
		}
		if prev, ok := doc[c[0]]; ok && prev != row[1] {
			t.Errorf("docs/design.md pairs %s with %s and %s", c[0], prev, row[1])
		}
		doc[c[0]] = row[1]
	}
	code := map[string]string{}
	for _, ri := range rotator.Reasons() {
		code[string(ri.Reason)] = string(ri.Outcome)
	}
	if !maps.Equal(doc, code) {
		t.Errorf("docs/design.md's reasons %v\ndiffer from the engine's table %v", doc, code)
	}
	if !maps.Equal(harness.OutcomeOfReason, code) {
		t.Errorf("the harness's OutcomeOfReason %v\ndiffers from the engine's table %v", harness.OutcomeOfReason, code)
	}
}

// defaults are the function's variables at their defaults, as the stack
// sets them.
func defaults() map[string]string { return settings.Environment(settings.DefaultConfig()) }

// sameValue says whether a documented value means the default: durations
// compare as durations (1h and 1h0m0s), numbers as numbers, "empty" and
// "none" as the empty string.
func sameValue(doc, want string) bool {
	switch doc {
	case "empty", "none", `""`:
		doc = ""
	}
	if doc == want {
		return true
	}
	if a, err := time.ParseDuration(doc); err == nil {
		b, err := time.ParseDuration(want)
		return err == nil && a == b
	}
	if a, err := strconv.ParseFloat(doc, 64); err == nil {
		b, err := strconv.ParseFloat(want, 64)
		return err == nil && a == b
	}
	return false
}

// checkVariables compares a table's variables and defaults with the code:
// varCol and defCol are the columns of the variable names and defaults.
// Rows whose default is the stack's own (no backticked value) are skipped.
func checkVariables(t *testing.T, doc, heading string, varCol, defCol int) {
	t.Helper()
	want := defaults()
	seen := map[string]bool{}
	for _, row := range tableRows(t, doc, heading)[1:] {
		vars := variables(row[varCol])
		if len(vars) == 0 {
			continue
		}
		vals := codes(row[defCol])
		if strings.HasPrefix(row[defCol], "the stack's") {
			vals = nil // the stack's own value (the ledger table, the results bus)
		}
		if len(vals) == 0 && strings.HasPrefix(row[defCol], "empty") {
			vals = []string{""}
		}
		for i, v := range vars {
			seen[v] = true
			d, known := want[v]
			if !known {
				t.Errorf("%s: %s is not a variable of the function", doc, v)
				continue
			}
			if len(vals) == 0 {
				continue // the stack's own value (the ledger table, the results bus)
			}
			val := vals[min(i, len(vals)-1)]
			if !sameValue(val, d) {
				t.Errorf("%s: %s defaults to %q, the function's default is %q", doc, v, val, d)
			}
		}
	}
	for _, v := range slices.Sorted(maps.Keys(want)) {
		if !seen[v] {
			t.Errorf("%s: no row for %s", doc, v)
		}
	}
}

func TestConfigurationTablesMatchTheDefaults(t *testing.T) {
	checkVariables(t, "docs/design.md", "Configuration", 0, 1)
	checkVariables(t, "README.md", "Configuration", 0, 2)
}

// docs/deploy.md's context table says which variable each context key
// sets and its default; cdk.json ships the same default.
func TestContextDefaultsMatchTheFunction(t *testing.T) {
	cdk := cdkContext(t)
	want := defaults()
	mapped := 0
	for _, row := range tableRows(t, "docs/deploy.md", "Settings (CDK context)")[1:] {
		if len(row) < 3 {
			continue
		}
		keys := codes(row[0])
		vars := variables(row[2])
		if len(vars) == 0 {
			vars = variables(row[1] + " " + row[2])
		}
		if len(keys) == 0 || len(vars) != len(keys) {
			continue // a stack-only setting
		}
		vals := codes(row[1])
		for i, k := range keys {
			mapped++
			d := want[vars[i]]
			if i < len(vals) && !sameValue(vals[i], d) {
				t.Errorf("docs/deploy.md: %s defaults to %q, %s's default is %q", k, vals[i], vars[i], d)
			}
			v, ok := cdk[k]
			if !ok {
				t.Errorf("cdk.json: no default for %s (%s)", k, vars[i])
				continue
			}
			if s := strings.Trim(string(mustJSON(t, v)), `"`); !sameValue(s, d) {
				t.Errorf("cdk.json: %s = %s, %s's default is %q", k, s, vars[i], d)
			}
		}
	}
	if mapped < 15 {
		t.Fatalf("docs/deploy.md maps only %d context keys to variables; is the table still under its heading?", mapped)
	}
}

// TestContextKeysMatchTheTable: README.md's configuration table and
// docs/deploy.md's context table pair each variable with the context key
// of its row in the settings table, or with none where the stack sets the
// variable itself; every context key of the table has a row in
// docs/deploy.md and a default in cdk.json.
func TestContextKeysMatchTheTable(t *testing.T) {
	keyOf, envOf := map[string]string{}, map[string]string{}
	for _, s := range settings.Table() {
		keyOf[s.Env] = s.Context
		if s.Context != "" {
			envOf[s.Context] = s.Env
		}
	}

	// README.md: variable | context key | default | meaning; "none" when
	// the stack sets the variable itself.
	for _, row := range tableRows(t, "README.md", "Configuration")[1:] {
		vars, keys := variables(row[0]), codes(row[1])
		if len(keys) == 0 {
			keys = make([]string, len(vars))
		}
		if len(keys) != len(vars) {
			t.Errorf("README.md: variables %v, context keys %v: want one key each", vars, keys)
			continue
		}
		for i, v := range vars {
			if want, known := keyOf[v]; known && keys[i] != want {
				t.Errorf("README.md: %s has context key %q, the settings table's is %q", v, keys[i], want)
			}
		}
	}

	// docs/deploy.md: context key | default | what it sets. A row that
	// names no variable is the stack's own setting or a list of keys
	// (organization mode's, whose empty default cell leaves two cells).
	listed := map[string]bool{}
	for _, row := range tableRows(t, "docs/deploy.md", "Settings (CDK context)")[1:] {
		keys, vars := codes(row[0]), variables(row[len(row)-1])
		for i, k := range keys {
			listed[k] = true
			want, known := envOf[k]
			switch {
			case len(vars) == 0:
			case len(vars) != len(keys):
				t.Errorf("docs/deploy.md: context keys %v, variables %v: want one variable each", keys, vars)
			case !known:
				t.Errorf("docs/deploy.md: %s sets %s, but the settings table has no context key %s", k, vars[i], k)
			case vars[i] != want:
				t.Errorf("docs/deploy.md: %s sets %s, the settings table says %s", k, vars[i], want)
			}
		}
	}
	cdk := cdkContext(t)
	for _, k := range slices.Sorted(maps.Keys(envOf)) {
		if !listed[k] {
			t.Errorf("docs/deploy.md: no row for %s (%s)", k, envOf[k])
		}
		if _, ok := cdk[k]; !ok {
			t.Errorf("cdk.json: no default for %s (%s)", k, envOf[k])
		}
	}
}

// cdkContext is cdk.json's context.
func cdkContext(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "cdk.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cdk struct {
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(b, &cdk); err != nil {
		t.Fatal(err)
	}
	return cdk.Context
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
