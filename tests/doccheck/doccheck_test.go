package doccheck

import (
	"bufio"
	"bytes"
	"fmt"
	"go/scanner"
	"go/token"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// TestGoCommentsCiteExistingDocs fails for every Go comment that cites a
// Markdown file missing from the repository, or a quoted section of one
// that has no such heading.
func TestGoCommentsCiteExistingDocs(t *testing.T) {
	root := repoRoot(t)
	files := goFiles(t, root)
	if len(files) == 0 {
		t.Fatalf("no Go files found under %s", root)
	}
	var problems []string
	headings := map[string][]string{} // by absolute path of a cited Markdown file
	for _, rel := range files {
		src, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range citations(src) {
			target, ok := resolveCitation(root, filepath.Dir(rel), c.name)
			if !ok {
				problems = append(problems, fmt.Sprintf("%s:%d: cites %s, which is not in the repository", rel, c.line, c.name))
				continue
			}
			if c.section == "" {
				continue
			}
			hs, ok := headings[target]
			if !ok {
				hs = readHeadings(t, target)
				headings[target] = hs
			}
			if !hasSection(hs, c.section) {
				problems = append(problems, fmt.Sprintf("%s:%d: cites %s %q, which has no heading %q", rel, c.line, c.name, c.section, c.section))
			}
		}
	}
	if len(problems) > 0 {
		t.Errorf("%d Go comment citation(s) of documents that are not in the repository (cite a file under docs/, or an AWS documentation URL):\n%s",
			len(problems), strings.Join(problems, "\n"))
	}
}

// TestMarkdownLinksResolve fails for every relative link in README.md and
// docs/ whose file does not exist, or whose #anchor names no heading of the
// target.
func TestMarkdownLinksResolve(t *testing.T) {
	root := repoRoot(t)
	docs := markdownFiles(t, root)
	var problems []string
	anchorCache := map[string]map[string]bool{}
	anchorsOf := func(abs string) map[string]bool {
		if a, ok := anchorCache[abs]; ok {
			return a
		}
		a := anchors(readFile(t, abs))
		anchorCache[abs] = a
		return a
	}
	for _, rel := range docs {
		abs := filepath.Join(root, rel)
		for _, l := range links(readFile(t, abs)) {
			target, frag, ok := splitLink(l.dest)
			if !ok {
				continue // absolute URL, mailto:, …
			}
			targetAbs := abs
			if target != "" {
				targetAbs = filepath.Join(filepath.Dir(abs), filepath.FromSlash(target))
				if !inside(root, targetAbs) {
					problems = append(problems, fmt.Sprintf("%s:%d: link %q leaves the repository", rel, l.line, l.dest))
					continue
				}
				if _, err := os.Stat(targetAbs); err != nil {
					problems = append(problems, fmt.Sprintf("%s:%d: link %q: %s does not exist", rel, l.line, l.dest, relTo(root, targetAbs)))
					continue
				}
			}
			if frag == "" || !strings.EqualFold(filepath.Ext(targetAbs), ".md") {
				continue
			}
			if !anchorsOf(targetAbs)[frag] {
				problems = append(problems, fmt.Sprintf("%s:%d: link %q: %s has no heading with anchor #%s", rel, l.line, l.dest, relTo(root, targetAbs), frag))
			}
		}
	}
	if len(problems) > 0 {
		t.Errorf("%d broken link(s) in the Markdown documentation:\n%s", len(problems), strings.Join(problems, "\n"))
	}
}

func TestSlug(t *testing.T) {
	for _, c := range []struct{ heading, want string }{
		{"Quick start (no AWS account needed)", "quick-start-no-aws-account-needed"},
		{"Try it locally: `make demo`", "try-it-locally-make-demo"},
		{"The local KMS emulator (`kmslocal`)", "the-local-kms-emulator-kmslocal"},
		{"Decisions: outcomes and reasons", "decisions-outcomes-and-reasons"},
		{"What `unconfirmed` means — and what to do", "what-unconfirmed-means--and-what-to-do"},
		{"snake_case and kebab-case", "snake_case-and-kebab-case"},
		{"[Linked](other.md) **bold** *it*", "linked-bold-it"},
		{"Keys ≤ 2,000 / ROTATOR_*", "keys--2000--rotator_"},
	} {
		if got := slug(headingText(c.heading)); got != c.want {
			t.Errorf("slug(%q) = %q, want %q", c.heading, got, c.want)
		}
	}
}

func TestAnchorsNumberRepeatedHeadings(t *testing.T) {
	a := anchors([]byte("# Tests\n\n```\n# not a heading\n```\n## Tests\n### Tests\n<a id=\"custom\"></a>\n"))
	for _, want := range []string{"tests", "tests-1", "tests-2", "custom"} {
		if !a[want] {
			t.Errorf("anchor #%s missing from %v", want, a)
		}
	}
	if a["not-a-heading"] {
		t.Error("a line in a fenced code block was taken for a heading")
	}
}

func TestCitationsInComments(t *testing.T) {
	// {md} keeps names of files that do not exist out of this file's own
	// lines, which other checks of the repository read as citations.
	src := []byte(strings.ReplaceAll(`package p

// Config follows docs/design.md "Configuration"; see also
// README.md and the AWS page https://example.com/x/CHANGELOG{md}.
var s = "strings.md are not comments"

/* A block comment citing
   docs/kmslocal.md "The
   fleet file" over two lines. */
func f() {} // trailing: OTHER{md}'s rule
`, "{md}", ".md"))
	got := citations(src)
	want := []citation{
		{line: 3, name: "docs/design.md", section: "Configuration"},
		{line: 4, name: "README.md"},
		{line: 8, name: "docs/kmslocal.md", section: "The fleet file"},
		{line: 10, name: "OTHER.md"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("citations =\n %+v\nwant\n %+v", got, want)
	}
}

func TestLinksSkipCode(t *testing.T) {
	md := []byte("See [design](docs/design.md#the-report) and `[not](a-link.md)`.\n\n```sh\n[nor](this.md)\n```\n[ref]: ../README.md\n![img](x.png \"title\")\n")
	var got []string
	for _, l := range links(md) {
		got = append(got, fmt.Sprintf("%d:%s", l.line, l.dest))
	}
	want := []string{"1:docs/design.md#the-report", "6:../README.md", "7:x.png"}
	if !slices.Equal(got, want) {
		t.Errorf("links = %q, want %q", got, want)
	}
}

// repoRoot walks up from the working directory to the folder holding go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			t.Fatalf("no go.mod in %s or above", dir)
		}
		d = parent
	}
}

// skipDir reports whether a folder holds no project sources: installed npm
// packages (the CDK CLI ships Go templates), CDK output, and hidden folders
// (.git, build caches).
func skipDir(name string) bool {
	return name == "node_modules" || name == "cdk.out" || strings.HasPrefix(name, ".")
}

// goFiles lists the repository's Go files, relative to root, tracked or not.
func goFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && skipDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".go") {
			files = append(files, relTo(root, p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// markdownFiles lists README.md and every Markdown file under docs/.
func markdownFiles(t *testing.T, root string) []string {
	t.Helper()
	files := []string{"README.md"}
	if _, err := os.Stat(filepath.Join(root, "README.md")); err != nil {
		t.Fatalf("README.md: %v", err)
	}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.EqualFold(filepath.Ext(p), ".md") {
			files = append(files, relTo(root, p))
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return files
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func relTo(root, p string) string {
	r, err := filepath.Rel(root, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(r)
}

func inside(root, p string) bool {
	r, err := filepath.Rel(root, p)
	return err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator))
}

// citation is a Markdown file named in a Go comment, with the section that
// follows it in quotes, if any.
type citation struct {
	line    int
	name    string
	section string
}

var (
	// A file name ending in .md, optionally with folders: README.md,
	// docs/design.md, docs/kmslocal.md.
	mdNameRE = regexp.MustCompile(`(?:^|[^\w./-])((?:[\w.-]+/)*[\w.-]*\w\.md)\b`)
	// A quoted section right after the name: docs/design.md "The report".
	sectionRE = regexp.MustCompile(`^\s+"([^"]+)"`)
	urlRE     = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://\S+`)
)

// commentLine is one line of comment text and where it is.
type commentLine struct {
	line int
	text string
}

// citations finds the Markdown files cited in the comments of one Go
// source file. Consecutive comment lines are read as one text, so a section
// name may wrap; URLs are not citations.
func citations(src []byte) []citation {
	fset := token.NewFileSet()
	file := fset.AddFile("x.go", -1, len(src))
	var s scanner.Scanner
	s.Init(file, src, func(token.Position, string) {}, scanner.ScanComments)
	var groups [][]commentLine
	lastLine := -2
	for {
		pos, tok, lit := s.Scan()
		if tok == token.EOF {
			break
		}
		if tok != token.COMMENT {
			continue
		}
		start := fset.Position(pos).Line
		var lines []commentLine
		if strings.HasPrefix(lit, "//") {
			lines = []commentLine{{start, strings.TrimPrefix(lit, "//")}}
		} else {
			body := strings.TrimSuffix(strings.TrimPrefix(lit, "/*"), "*/")
			for i, l := range strings.Split(body, "\n") {
				lines = append(lines, commentLine{start + i, l})
			}
		}
		if len(groups) > 0 && start == lastLine+1 {
			groups[len(groups)-1] = append(groups[len(groups)-1], lines...)
		} else {
			groups = append(groups, lines)
		}
		lastLine = lines[len(lines)-1].line
	}
	var out []citation
	for _, g := range groups {
		var text strings.Builder
		offsets := make([]int, len(g)) // where each line starts in text
		for i, l := range g {
			offsets[i] = text.Len()
			text.WriteString(l.text)
			text.WriteByte('\n')
		}
		// Blank out URLs, keeping offsets.
		plain := urlRE.ReplaceAllStringFunc(text.String(), func(u string) string { return strings.Repeat(" ", len(u)) })
		for _, m := range mdNameRE.FindAllStringSubmatchIndex(plain, -1) {
			c := citation{name: plain[m[2]:m[3]]}
			i, _ := slices.BinarySearch(offsets, m[2]+1)
			c.line = g[i-1].line
			if sm := sectionRE.FindStringSubmatch(plain[m[3]:]); sm != nil {
				c.section = strings.Join(strings.Fields(sm[1]), " ")
			}
			out = append(out, c)
		}
	}
	return out
}

// resolveCitation finds a cited file relative to the repository root or to
// the citing file's folder (dir, relative to root).
func resolveCitation(root, dir, name string) (string, bool) {
	for _, base := range []string{root, filepath.Join(root, dir)} {
		p := filepath.Join(base, filepath.FromSlash(name))
		if !inside(root, p) {
			continue
		}
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, true
		}
	}
	return "", false
}

func readHeadings(t *testing.T, p string) []string {
	t.Helper()
	var hs []string
	forEachLine(readFile(t, p), func(_ int, line string, inFence bool) {
		if h, ok := atxHeading(line); ok && !inFence {
			hs = append(hs, headingText(h))
		}
	})
	return hs
}

// hasSection reports whether a heading is the section or starts with it
// followed by a colon ("Decisions" names "Decisions: outcomes and reasons").
func hasSection(headings []string, section string) bool {
	for _, h := range headings {
		if h == section || strings.HasPrefix(h, section+":") {
			return true
		}
	}
	return false
}

var (
	atxRE        = regexp.MustCompile(`^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$`)
	fenceRE      = regexp.MustCompile("^ {0,3}(```+|~~~+)")
	htmlAnchorRE = regexp.MustCompile(`<a\s+(?:[^>]*\s)?(?:id|name)="([^"]+)"`)
	codeSpanRE   = regexp.MustCompile("`+[^`]*`+")
	inlineLinkRE = regexp.MustCompile(`!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+"[^"]*")?\s*\)`)
	refDefRE     = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)`)
	htmlTagRE    = regexp.MustCompile(`<[^>]+>`)
	emphasisRE   = regexp.MustCompile(`\*+|(?:^|\s)_+|_+(?:\s|$)`)
)

// forEachLine calls fn for every line with whether it is inside a fenced
// code block (fence lines count as inside).
func forEachLine(md []byte, fn func(n int, line string, inFence bool)) {
	sc := bufio.NewScanner(bytes.NewReader(md))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	fence := ""
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if m := fenceRE.FindStringSubmatch(line); m != nil {
			switch {
			case fence == "":
				fence = m[1]
				fn(n, line, true)
				continue
			case m[1][0] == fence[0] && len(m[1]) >= len(fence):
				fence = ""
				fn(n, line, true)
				continue
			}
		}
		fn(n, line, fence != "")
	}
}

func atxHeading(line string) (string, bool) {
	m := atxRE.FindStringSubmatch(line)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// headingText is a heading's text as GitHub renders it: code spans keep
// their content, links their text, emphasis markers and HTML tags go.
func headingText(h string) string {
	h = inlineLinkRE.ReplaceAllString(h, "$1")
	h = strings.ReplaceAll(h, "`", "")
	h = htmlTagRE.ReplaceAllString(h, "")
	h = emphasisRE.ReplaceAllStringFunc(h, func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '*' || r == '_' {
				return -1
			}
			return r
		}, s)
	})
	return strings.TrimSpace(h)
}

// slug is GitHub's anchor for a heading text: lowercase; letters, marks,
// numbers, _ and - kept, other characters dropped; each space becomes -.
func slug(text string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsMark(r) || unicode.IsNumber(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors lists the anchors of a Markdown file: one per heading (a repeated
// slug gets -1, -2, … as on GitHub) and every <a id="…"> or <a name="…">.
func anchors(md []byte) map[string]bool {
	out := map[string]bool{}
	count := map[string]int{}
	forEachLine(md, func(_ int, line string, inFence bool) {
		if inFence {
			return
		}
		if h, ok := atxHeading(line); ok {
			s := slug(headingText(h))
			if n := count[s]; n > 0 {
				out[fmt.Sprintf("%s-%d", s, n)] = true
			} else {
				out[s] = true
			}
			count[s]++
		}
		for _, m := range htmlAnchorRE.FindAllStringSubmatch(line, -1) {
			out[m[1]] = true
		}
	})
	return out
}

// link is one link destination in a Markdown file.
type link struct {
	line int
	dest string
}

// links lists inline links, images and reference definitions outside code.
func links(md []byte) []link {
	var out []link
	forEachLine(md, func(n int, line string, inFence bool) {
		if inFence {
			return
		}
		line = codeSpanRE.ReplaceAllString(line, "")
		if m := refDefRE.FindStringSubmatch(line); m != nil {
			out = append(out, link{n, strings.Trim(m[1], "<>")})
			return
		}
		for _, m := range inlineLinkRE.FindAllStringSubmatch(line, -1) {
			out = append(out, link{n, strings.Trim(m[2], "<>")})
		}
	})
	return out
}

var schemeRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)

// splitLink splits a relative link into its path (unescaped; empty for a
// link into the same file) and anchor; ok is false for absolute URLs.
func splitLink(dest string) (path, frag string, ok bool) {
	if schemeRE.MatchString(dest) || strings.HasPrefix(dest, "//") {
		return "", "", false
	}
	path, frag, _ = strings.Cut(dest, "#")
	path, _, _ = strings.Cut(path, "?")
	if p, err := url.PathUnescape(path); err == nil {
		path = p
	}
	if f, err := url.PathUnescape(frag); err == nil {
		frag = f
	}
	return path, frag, true
}
