// Package faults holds kms-rotator's fault suite: tests that run the real
// rotation engine, with the real aws-sdk-go-v2 clients, against the local KMS
// emulator while it throttles, fails, loses responses, answers slowly, while
// the deadline arrives, while several sweeps of the same fleet run at once
// (as separate Lambda processes under the Runtime Interface Emulator), while
// an incident arrives during a sweep, and after a sweep crashed half-way.
//
// Every scenario checks the same invariants from outside the engine, against
// the emulator's own rotation history read through the SDK:
//
//  1. no key gets two on-demand rotations from one intended rotation;
//  2. every candidate appears in each report exactly once, and "rotated" in
//     a report ⇔ a new rotation in the emulator ("unconfirmed" may go
//     either way: the function could not tell);
//  3. scheduled runs never spend the incident reserve, and no key exceeds
//     the lifetime limit of 25 on-demand rotations;
//  4. a run that meets its deadline returns a report with deferred keys;
//  5. the outcomes add up to the candidates, and the EMF metrics (counts,
//     budgets, overdue keys, material age) agree with the report;
//  6. no key gets a second RotateKeyOnDemand from one run after an
//     ambiguous failure (only throttled requests are retried);
//  7. every rotated entry names the key material it replaced, and an
//     incident that waited reports each rotation complete with its new
//     material; sweeps never report a completion.
//
// The package has no non-test code; the fault schedules are a table in
// faults_test.go so a new one is one line.
package faults
