package rotator

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// Every Reason the package declares has one row in the reasons table, so a
// new reason cannot ship without its outcome and next step.
func TestEveryReasonHasOneRow(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	declared := map[Reason]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Reason" {
					continue
				}
				for _, n := range vs.Names {
					declared[Reason(constString(t, vs, n))] = n.Name
				}
			}
		}
	}
	rows := map[Reason]int{}
	for _, ri := range Reasons() {
		rows[ri.Reason]++
		if ri.Next == "" || ri.Outcome == "" {
			t.Errorf("reason %q: row without an outcome or next step", ri.Reason)
		}
	}
	for r, name := range declared {
		if r == ReasonNone {
			continue
		}
		if rows[r] != 1 {
			t.Errorf("%s (%q) has %d rows in the reasons table, want 1", name, r, rows[r])
		}
	}
	if len(rows) != len(declared)-1 {
		t.Errorf("the table has %d reasons, the package declares %d", len(rows), len(declared)-1)
	}
}

// constString is the string literal a Reason constant is declared with.
func constString(t *testing.T, vs *ast.ValueSpec, n *ast.Ident) string {
	t.Helper()
	for i, name := range vs.Names {
		if name == n && i < len(vs.Values) {
			if lit, ok := vs.Values[i].(*ast.BasicLit); ok {
				return lit.Value[1 : len(lit.Value)-1]
			}
		}
	}
	t.Fatalf("%s: not a string literal", n.Name)
	return ""
}
