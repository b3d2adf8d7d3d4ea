package harness

import "github.com/kms-rotator/kms-rotator/tools/oracle"

// OutcomeOfReason is the report oracle's pairing of reasons with outcomes
// (tools/oracle), kept under this name for tests/doccheck, which holds it
// against the engine's reasons table.
var OutcomeOfReason = oracle.OutcomeOfReason
