// Package doccheck holds tests that keep the repository's documentation
// self-contained; it has no code of its own and ships nowhere.
//
// The tests fail when
//
//   - a Go comment anywhere in the repository cites a Markdown file that is
//     not in the repository (a name such as docs/design.md is looked up
//     relative to the repository root and to the commented file's folder),
//     or cites a section of one — docs/design.md "The report" — that the
//     file has no heading for;
//   - a relative link in README.md or docs/ points to a file that does not
//     exist;
//   - a link's #anchor names no heading of its target, by GitHub's rules
//     for heading anchors (lowercase; punctuation other than - and _
//     removed; spaces become -; a repeated heading gets -1, -2, …).
//
// Run them with `go test ./tests/doccheck/`; they read files only, so they
// take well under a second.
package doccheck
