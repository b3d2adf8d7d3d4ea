// Package oracle judges a run of kms-rotator from outside, against the
// contract in docs/design.md, and never against the engine's own code: it
// imports the AWS SDK but not lambda/rotator (nor tools/harness), so a bug
// in the engine cannot also be in its judge.
//
// It holds every check of a report:
//
//   - the report itself (CheckReport): members and their JSON types, the
//     outcome and reason vocabulary, every candidate once, a summary that
//     counts the entries, the budget, overdue, key material, next step and
//     claim rules of docs/design.md "The report";
//   - the report against the emulator (Read takes a Snapshot through the
//     real SDK; CheckRotations, CheckCandidates, CheckMaterial): rotations
//     spent are rotations reported, a repeat counts nothing;
//   - the EMF metrics against the report (CheckMetrics), the log lines
//     (CheckLogLines, CheckKeyLines), the result event (CheckResultEvent)
//     and the rotation ledger (ReadClaims, CheckClaims).
//
// A check returns the problems it found as sentences; none means the run
// passed. The engine's tests, tests/e2e, tests/faults and tools/demo call
// the same checks, so a rule written here holds everywhere.
//
// The contract's names (outcomes, reasons, metric names, the result
// event's source) are written out here on purpose, as docs/design.md
// states them: tests pin them to the engine's tables (tests/doccheck,
// names_test.go), so a rename is noticed instead of followed.
package oracle
