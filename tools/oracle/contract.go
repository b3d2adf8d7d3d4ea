package oracle

// The vocabulary of docs/design.md "Decisions: outcomes and reasons".
const (
	Rotated     = "rotated"
	WouldRotate = "would-rotate"
	Skipped     = "skipped"
	Failed      = "failed"
	Deferred    = "deferred"
)

// Outcomes are docs/design.md's outcomes, and OutcomeOfReason pairs each
// reason with its outcome (docs/design.md "Decisions: outcomes and
// reasons"); tests/doccheck holds it against the engine's reasons table.
var (
	Outcomes        = []string{Rotated, WouldRotate, Skipped, Failed, Deferred}
	OutcomeOfReason = map[string]string{
		"not-opted-in": Skipped, "aws-managed": Skipped, "unsupported-key-spec": Skipped,
		"custom-key-store": Skipped, "multi-region-replica": Skipped,
		"key-not-enabled": Skipped, "rotation-in-progress": Skipped, "budget-exhausted": Skipped,
		"budget-reserved": Skipped, "not-due": Skipped, "recently-rotated": Skipped,
		"automatic-rotation-soon": Skipped, "material-not-staged": Skipped,
		"material-pending-replica-import": Skipped, "idle": Skipped,
		"not-found": Failed, "access-denied": Failed, "throttled": Failed, "error": Failed,
		"unconfirmed": Failed, "ledger-unavailable": Failed,
		"deadline": Deferred,
	}
)

// ineligibleReasons are the reasons that say the key cannot be rotated by
// this product at all: such an entry has no cryptoperiod to be overdue on.
// not-found is one when the key could not be read at all; a key read, then
// not found by RotateKeyOnDemand (deleted meanwhile), has an age like any
// other.
var ineligibleReasons = []string{"not-opted-in", "aws-managed", "unsupported-key-spec",
	"custom-key-store", "multi-region-replica", "key-not-enabled", "not-found"}

// OverdueByPolicyReasons are the reasons an overdue key is overdue by
// policy (overdueFor "policy", KeysOverdueByPolicy): the product keeps it
// so on purpose. Every other overdue key needs someone to act.
var OverdueByPolicyReasons = []string{"budget-reserved", "budget-exhausted", "material-not-staged", "material-pending-replica-import", "idle"}

// The modes a report can carry (docs/design.md "Invocation payloads").
const (
	ModeScheduled = "scheduled"
	ModePlan      = "plan"
	ModeIncident  = "incident"
	ModeReport    = "report"
)

// reportModes are the modes whose run answers a report.
var reportModes = []string{ModeScheduled, ModePlan, ModeIncident, ModeReport}

// The EMF names of docs/design.md "Metrics and logs" that the checks read.
const (
	mKeysCandidate        = "KeysCandidate"
	mKeysRotated          = "KeysRotated"
	mKeysWouldRotate      = "KeysWouldRotate"
	mKeysSkipped          = "KeysSkipped"
	mKeysFailed           = "KeysFailed"
	mKeysDeferred         = "KeysDeferred"
	mRunsCompleted        = "RunsCompleted"
	mKeysOverdue          = "KeysOverdue"
	mKeysOverdueAction    = "KeysOverdueAction"
	mKeysOverdueByPolicy  = "KeysOverdueByPolicy"
	mKeysBudgetLow        = "KeysBudgetLow"
	mKeysBudgetExhausted  = "KeysBudgetExhausted"
	mMinOnDemandRemaining = "MinOnDemandRemaining"
	mRotationsStuck       = "RotationsStuck"
	mMaxMaterialAgeDays   = "MaxMaterialAgeDays"
	mKeysDueSoon          = "KeysDueSoon"
	mMaterialExpiringSoon = "MaterialExpiringSoon"
	mEvidenceFailed       = "EvidenceFailed"

	dimMode    = "Mode"
	dimReason  = "Reason"
	dimAccount = "Account"
)

// checkedMetrics are the metrics CheckMetrics reads (names_test.go pins
// them to the function's).
var checkedMetrics = []string{mKeysCandidate, mKeysRotated, mKeysWouldRotate, mKeysSkipped, mKeysFailed, mKeysDeferred,
	mRunsCompleted, mKeysOverdue, mKeysOverdueAction, mKeysOverdueByPolicy, mKeysBudgetLow, mKeysBudgetExhausted,
	mMinOnDemandRemaining, mRotationsStuck, mMaxMaterialAgeDays, mKeysDueSoon, mMaterialExpiringSoon, mEvidenceFailed}

// The result event's source and detail-type (docs/design.md "The result
// event").
const (
	ResultEventSource     = "kms-rotator"
	ResultEventDetailType = "KMS Rotation Run Completed"
)

// maxEventEntryBytes is EventBridge's PutEvents entry size limit the
// result event is cut to fit.
const maxEventEntryBytes = 256 * 1024

// Contract holds the figures a check depends on that a deployment (or an
// engine test) may set: Documented has docs/design.md's.
type Contract struct {
	// MaxListed is the number of candidates beyond which the report may
	// leave the not-due entries out (omittedNotDue).
	MaxListed int
	// Reserve is ROTATOR_RESERVE: KeysBudgetLow counts the entries with
	// at most this many rotations left.
	Reserve int
	// Namespace is ROTATOR_METRICS_NAMESPACE.
	Namespace string
}

// Documented is the contract with docs/design.md's figures and the
// settings' defaults (docs/design.md "Configuration").
var Documented = Contract{MaxListed: 2000, Reserve: 2, Namespace: "KMSRotator"}
