package rotator

import (
	"strings"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// nextSteps is the short next step of every reason that leaves a key
// unrotated (the entry's "next"), so a responder or a playbook reading a
// skipped or failed entry knows what to do without the documentation.
// TAG stands for the opt-in tag.
var nextSteps = map[Reason]string{
	ReasonNotOptedIn:                   "add the opt-in tag TAG to the key if it should be rotated, wait five minutes (KMS's tag authorisation), then send the request again",
	ReasonAWSManaged:                   "nothing to do here: AWS rotates AWS managed keys itself every year",
	ReasonUnsupportedKeySpec:           "only symmetric encryption keys rotate on demand: if the key is compromised, replace it (a new key, its users re-pointed)",
	ReasonCustomKeyStore:               "rotate the key material in its custom key store (CloudHSM or external); KMS cannot rotate it on demand",
	ReasonMultiRegionReplica:           "rotate the primary (primaryKeyArn): that rotates every replica",
	ReasonKeyNotEnabled:                "enable the key (aws kms enable-key) if it should be rotated, then send the request again",
	ReasonRotationInProgress:           "wait for the rotation in progress (aws kms get-key-rotation-status), then check the key's material",
	ReasonBudgetExhausted:              "no on-demand rotation is left in the key's lifetime: if it is compromised, replace the key (a new key, data re-encrypted)",
	ReasonBudgetReserved:               "the rotations left are kept for incidents: an incident request can still rotate the key",
	ReasonNotDue:                       "nothing to do: the key is rotated when due (nextDue)",
	ReasonRecentlyRotated:              "already rotated (lastRotation, claim): to rotate again now, send a new request with force and a new reason or requestId",
	ReasonAutomaticRotationSoon:        "nothing to do: the key's free automatic rotation comes first (nextRotationDate)",
	ReasonMaterialNotStaged:            "import new key material for the key (ImportKeyMaterial, ImportType NEW_KEY_MATERIAL), then send the request again",
	ReasonMaterialPendingReplicaImport: "import the staged material (stagedKeyMaterialId) into every replica, then send the request again",
	ReasonIdle:                         "nothing to do: the key has not been used since its current material; it is rotated once it is used again",
	ReasonNotFound:                     "check the key ID or alias, its account and its Region",
	ReasonAccessDenied:                 "check the key's opt-in tag, its key policy and the member role (see error)",
	ReasonThrottled:                    "KMS throttled the calls: the next run tries again; if it persists, lower ROTATOR_ROTATE_RPS or raise the account's KMS quota",
	ReasonError:                        "read error: the next run tries again; a key interval tag error needs the tag fixed",
	ReasonUnconfirmed:                  "the rotation may have been applied: check the key first (see error), never retry blindly",
	ReasonLedgerUnavailable:            "nothing was rotated: check the ledger table named in error (reachable, not throttled, writable by the function's role)",
}

// next is the entry's next step: for skipped and failed entries, and for
// an incident dry run's would-rotate key whose local count shows no
// on-demand rotation left (KMS will likely refuse it).
func next(outcome Outcome, reason Reason, noneLeft bool, cfg settings.Config) string {
	switch outcome {
	case Skipped, Failed:
		return strings.ReplaceAll(nextSteps[reason], "TAG", cfg.TagKey+"="+cfg.TagValue)
	case WouldRotate:
		if noneLeft {
			return "the local count shows no on-demand rotation left: KMS will likely refuse it (LimitExceededException); if it is compromised, plan to replace the key"
		}
	}
	return ""
}
