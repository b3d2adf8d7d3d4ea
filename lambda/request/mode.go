package request

// Rules are what a mode does: the one table that decoding, deciding,
// rotating and reporting consult instead of asking for a mode by name
// (docs/design.md "Invocation payloads").
type Rules struct {
	// Sweep: the run takes every opted-in key (GetResources) and follows
	// the schedule's rules — the interval, the reserve, the local budget
	// count, free automatic rotations first. Otherwise the run takes the
	// keys the request names and KMS judges the lifetime limit.
	Sweep bool
	// Dry: the mode never rotates (plan, report).
	Dry bool
	// Inventory: every eligible key's status is read, and its newest
	// claim and (when asked) its last use shown (report).
	Inventory bool
	// Continues: a run whose keys do not fit before its deadline hands
	// the rest to a new invocation; it keeps the marks its cursor needs.
	Continues bool
	// Jitter: a run that rotates waits a random moment before its first
	// rotation, so duplicate deliveries of one firing do not walk the
	// keys in lockstep; Lease: it takes its target's sweep lease.
	Jitter, Lease bool
	// Identity: requests have an identity (requestId, or their content);
	// a repeat answers the first run's report.
	Identity bool
	// Waits: a run that rotates waits for each rotation's new material.
	Waits bool
	// Publishes: every run publishes a result event (else only runs with
	// failed keys do).
	Publishes bool
	// Org: an organization request (Org, not Request), asked by the
	// organization sweep's state machine as a direct invoke; it acts on
	// no key.
	Org bool
	// Fields are the request fields the mode takes besides mode.
	Fields []string
}

var modeRules = map[Mode]Rules{
	ModeScheduled: {Sweep: true, Continues: true, Jitter: true, Lease: true,
		Fields: []string{"dryRun", "target", "continuation"}},
	ModePlan: {Sweep: true, Dry: true, Continues: true,
		Fields: []string{"target", "continuation"}},
	ModeReport: {Sweep: true, Dry: true, Inventory: true, Continues: true,
		Fields: []string{"usage", "target", "continuation"}},
	ModeIncident: {Identity: true, Waits: true, Publishes: true,
		Fields: []string{"keys", "tag", "reason", "dryRun", "force", "wait", "requestId", "target"}},
	ModeTargets:    {Org: true, Fields: []string{"orgTargets", "orgRegions", "execution"}},
	ModeOrgSummary: {Org: true, Fields: []string{"execution", "manifest"}},
}

// Rules returns the mode's rules (zero for an unknown mode).
func (m Mode) Rules() Rules { return modeRules[m] }
