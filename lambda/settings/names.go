package settings

// Metric names and units (docs/design.md "Metrics and logs"), for the function and the stack's alarms and dashboard.
const (
	MetricKeysCandidate        = "KeysCandidate"
	MetricKeysRotated          = "KeysRotated"
	MetricKeysWouldRotate      = "KeysWouldRotate"
	MetricKeysSkipped          = "KeysSkipped"
	MetricKeysFailed           = "KeysFailed"
	MetricKeysDeferred         = "KeysDeferred"
	MetricKeysBudgetLow        = "KeysBudgetLow"
	MetricKeysBudgetExhausted  = "KeysBudgetExhausted"
	MetricMinOnDemandRemaining = "MinOnDemandRemaining"
	MetricRunDuration          = "RunDuration"
	MetricRunsCompleted        = "RunsCompleted"
	MetricRunsFailed           = "RunsFailed"
	// MetricContinuations is 1 when the run handed its deferred keys to a
	// continuation (the function invoking itself), else 0.
	MetricContinuations = "Continuations"
	// MetricKeysOverdue counts eligible keys whose material is older than
	// their interval and that this run neither rotated nor would rotate.
	MetricKeysOverdue = "KeysOverdue"
	// MetricKeysOverdueAction counts the overdue keys someone must act on
	// (a failure, an unconfirmed or stuck rotation, a key deferred for
	// days, a missed automatic rotation): the keys-overdue alarm's metric.
	MetricKeysOverdueAction = "KeysOverdueAction"
	// MetricKeysOverdueByPolicy counts the overdue keys the product keeps
	// so on purpose (the reserve, an exhausted budget, material not
	// imported, an idle key).
	MetricKeysOverdueByPolicy = "KeysOverdueByPolicy"
	// MetricKeysDueSoon counts the keys that fall due within
	// ROTATOR_NOTICE_DAYS; MetricMaterialExpiringSoon the keys whose
	// imported material expires within them (an expired import makes the
	// key unusable: the material-expiring-soon alarm).
	MetricKeysDueSoon          = "KeysDueSoon"
	MetricMaterialExpiringSoon = "MaterialExpiringSoon"
	// MetricEvidenceFailed is 1 when the run's evidence record could not be
	// written to the evidence bucket (0 when it was; absent when none was
	// due): the evidence-failed alarm's metric.
	MetricEvidenceFailed = "EvidenceFailed"
	// MetricMaxMaterialAgeDays is the oldest material age among eligible keys.
	MetricMaxMaterialAgeDays = "MaxMaterialAgeDays"
	// MetricResultEventsFailed is 1 when the run's result event could not
	// be published on EventBridge (0 when it was; absent when none was due).
	MetricResultEventsFailed = "ResultEventsFailed"
	// MetricRotationsStuck counts the keys whose on-demand rotation has
	// been in progress longer than ROTATOR_STUCK_AFTER.
	MetricRotationsStuck = "RotationsStuck"
	// MetricTargetsResolved is how many (account, Region) targets a
	// targets run (organization mode) handed to the sweep.
	MetricTargetsResolved = "TargetsResolved"
	// MetricAccountsExcluded is how many accounts of the targeted OUs and
	// roots a targets run left out (not active, or the management account).
	MetricAccountsExcluded = "AccountsExcluded"
)

// Dimension names.
const (
	DimMode   = "Mode"
	DimReason = "Reason"
	// DimAccount is the account a run worked in (organization mode).
	DimAccount = "Account"
)

// The result event the function publishes on the account's default event
// bus after every incident run and every run with failed keys, so that
// nobody has to read the logs to learn that keys were rotated in an incident.
const (
	// ResultEventSource is the result event's source.
	ResultEventSource = "kms-rotator"
	// ResultEventDetailType is the result event's detail-type.
	ResultEventDetailType = "KMS Rotation Run Completed"
)

// The organization sweep's figures, once per execution (dimension Mode
// org-summary): its targets swept, incomplete, failed and not swept (a
// Region the account has not enabled), and the keys of all targets
// rotated, failed and overdue.
const (
	MetricOrgTargets           = "OrgTargets"
	MetricOrgTargetsSwept      = "OrgTargetsSwept"
	MetricOrgTargetsIncomplete = "OrgTargetsIncomplete"
	MetricOrgTargetsFailed     = "OrgTargetsFailed"
	MetricOrgTargetsNotSwept   = "OrgTargetsNotSwept"
	MetricOrgKeysRotated       = "OrgKeysRotated"
	MetricOrgKeysFailed        = "OrgKeysFailed"
	MetricOrgKeysOverdue       = "OrgKeysOverdue"
)
