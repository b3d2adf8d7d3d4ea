package rotator

import (
	"slices"
	"strings"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// ReasonInfo is one row of the reasons table: a reason, the outcome it goes
// with (docs/design.md "Decisions: outcomes and reasons") and the short
// next step an entry with it carries (the entry's "next").
type ReasonInfo struct {
	Reason  Reason
	Outcome Outcome
	// Next is what to do about it; TAG stands for the opt-in tag.
	Next string
}

// reasons is the one table of reasons: tests hold the documentation's
// decision table and the report checkers against it (tests/doccheck), so
// adding a reason is one row here plus its behaviour.
var reasons = []ReasonInfo{
	{ReasonNotOptedIn, Skipped, "add the opt-in tag TAG to the key if it should be rotated, wait five minutes (KMS's tag authorisation), then send the request again"},
	{ReasonAWSManaged, Skipped, "nothing to do here: AWS rotates AWS managed keys itself every year"},
	{ReasonUnsupportedKeySpec, Skipped, "only symmetric encryption keys rotate on demand: if the key is compromised, replace it (a new key, its users re-pointed)"},
	{ReasonCustomKeyStore, Skipped, "rotate the key material in its custom key store (CloudHSM or external); KMS cannot rotate it on demand"},
	{ReasonMultiRegionReplica, Skipped, "rotate the primary (primaryKeyArn): that rotates every replica"},
	{ReasonKeyNotEnabled, Skipped, "enable the key (aws kms enable-key) if it should be rotated, then send the request again"},
	{ReasonRotationInProgress, Skipped, "wait for the rotation in progress (aws kms get-key-rotation-status), then check the key's material"},
	{ReasonBudgetExhausted, Skipped, "no on-demand rotation is left in the key's lifetime: if it is compromised, replace the key (a new key, data re-encrypted)"},
	{ReasonBudgetReserved, Skipped, "the rotations left are kept for incidents: an incident request can still rotate the key"},
	{ReasonNotDue, Skipped, "nothing to do: the key is rotated when due (nextDue)"},
	{ReasonRecentlyRotated, Skipped, "already rotated (lastRotation, claim): to rotate again now, send a new request with force and a new reason or requestId"},
	{ReasonAutomaticRotationSoon, Skipped, "nothing to do: the key's free automatic rotation comes first (nextRotationDate)"},
	{ReasonMaterialNotStaged, Skipped, "import new key material for the key (ImportKeyMaterial, ImportType NEW_KEY_MATERIAL), then send the request again"},
	{ReasonMaterialPendingReplicaImport, Skipped, "import the staged material (stagedKeyMaterialId) into every replica, then send the request again"},
	{ReasonIdle, Skipped, "nothing to do: the key has not been used since its current material; it is rotated once it is used again"},
	{ReasonNotFound, Failed, "check the key ID or alias, its account and its Region"},
	{ReasonAccessDenied, Failed, "check the key's opt-in tag, its key policy and the member role (see error)"},
	{ReasonThrottled, Failed, "KMS throttled the calls: the next run tries again; if it persists, lower ROTATOR_ROTATE_RPS or raise the account's KMS quota"},
	{ReasonError, Failed, "read error: the next run tries again; a key interval tag error needs the tag fixed"},
	{ReasonUnconfirmed, Failed, "the rotation may have been applied: check the key first (see error), never retry blindly"},
	{ReasonLedgerUnavailable, Failed, "nothing was rotated: check the ledger table named in error (reachable, not throttled, writable by the function's role)"},
	{ReasonDeadline, Deferred, "nothing to do: the next run, or the next link of a continuation, picks the key up"},
}

// Reasons returns the reasons table.
func Reasons() []ReasonInfo { return slices.Clone(reasons) }

// nextStep is a reason's next step.
func nextStep(r Reason) string {
	for _, ri := range reasons {
		if ri.Reason == r {
			return ri.Next
		}
	}
	return ""
}

// next is the entry's next step: for skipped and failed entries, and for
// an incident dry run's would-rotate key whose local count shows no
// on-demand rotation left (KMS will likely refuse it).
func next(outcome Outcome, reason Reason, noneLeft bool, cfg settings.Config) string {
	switch outcome {
	case Skipped, Failed:
		return strings.ReplaceAll(nextStep(reason), "TAG", cfg.TagKey+"="+cfg.TagValue)
	case WouldRotate:
		if noneLeft {
			return "the local count shows no on-demand rotation left: KMS will likely refuse it (LimitExceededException); if it is compromised, plan to replace the key"
		}
	}
	return ""
}
