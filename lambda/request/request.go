// Package request turns an invocation payload into a validated Request: it
// accepts every payload shape in docs/design.md (EventBridge Scheduled Event, the
// kms-rotator custom event, a direct invoke, an EventBridge Scheduler input) and
// rejects bad input before any AWS call with an error that names the field.
package request

import "time"

// Mode says what a run does.
type Mode string

// The modes of docs/design.md "Invocation payloads".
const (
	// ModeScheduled is the periodic sweep of every opted-in key that is due.
	ModeScheduled Mode = "scheduled"
	// ModePlan is a dry run of the scheduled sweep.
	ModePlan Mode = "plan"
	// ModeIncident rotates the listed (or tag-selected) keys now.
	ModeIncident Mode = "incident"
	// ModeReport is the budget and material-age inventory; it rotates nothing.
	ModeReport Mode = "report"
	// ModeTargets lists the (account, Region) targets of an organization
	// sweep, resolving OUs and roots to their active accounts (organization
	// mode only); it touches no key.
	ModeTargets Mode = "targets"
	// ModeOrgSummary reads an organization sweep's results (the Distributed
	// Map's result files) and reports organization-wide figures once per
	// execution (organization mode only); it touches no key.
	ModeOrgSummary Mode = "org-summary"
)

// Tag is a tag key and value.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Request is one validated invocation.
type Request struct {
	Mode Mode
	// Keys are the incident keys as the caller gave them (key IDs, key ARNs,
	// alias names, alias ARNs), parsed and validated, in the caller's order,
	// textual duplicates removed (duplicates after resolution are the
	// engine's to remove).
	Keys []KeyRef
	// Tag selects incident keys by an extra tag instead of Keys.
	Tag *Tag
	// Reason is the incident reason, recorded in logs; required for incidents.
	Reason string
	// DryRun decides and reports without rotating (always true for plan).
	DryRun bool
	// Force (incident only) rotates keys inside ROTATOR_INCIDENT_COOLDOWN
	// of their newest on-demand rotation; it never bypasses the budget.
	Force bool
	// NoWait (incident only, payload "wait": false) returns once the
	// rotations are accepted instead of waiting for the new key material
	// to become current (ROTATOR_INCIDENT_WAIT).
	NoWait bool
	// Continuation is set when the run continues an earlier run of a
	// chain (scheduled, plan and report only); see Continuation.
	Continuation *Continuation
	// Target names the member account and Region the run works in
	// (organization mode only); nil means the function's own.
	Target *Target
	// Usage (report only, payload "usage": true) reads every key's last
	// use (GetKeyLastUsage, 5 per second per account and Region).
	Usage bool
	// RequestID (incident only, payload "requestId") is the identity a
	// caller gives its request; a repeat within ROTATOR_IDEMPOTENCY_WINDOW
	// answers the first run's report (Identity).
	RequestID string
	// EventTime and EventAccount are the envelope's time and account of a
	// kms-rotator EventBridge event (zero and empty otherwise).
	EventTime    time.Time
	EventAccount string
	// Source names the payload shape that carried the request:
	// "aws.events" (Scheduled Event), "kms-rotator" (custom EventBridge
	// event), "direct" (direct invoke or EventBridge Scheduler input).
	Source string
}

// Valid reports whether m is one of the known modes.
func (m Mode) Valid() bool {
	_, ok := modeRules[m]
	return ok
}

// Scope is where the function runs, learned from the invoked function ARN; it
// bounds which key ARNs a request may name.
type Scope struct {
	Partition string // "aws", "aws-cn", "aws-us-gov", …
	Account   string
	Region    string
	// Organization is set when the function may work in member accounts
	// (ROTATOR_MEMBER_ROLE_NAME): a request may then name a target, and an
	// incident key ARNs of any account of the partition.
	Organization bool
}

// Target is a member account and Region of an organization.
type Target struct {
	Account string `json:"account"`
	Region  string `json:"region"`
}

// In returns the scope of the target: its account and Region.
func (sc Scope) In(t *Target) Scope {
	if t == nil {
		return sc
	}
	sc.Account, sc.Region = t.Account, t.Region
	return sc
}

// RefKind says which of the four KMS key identifier forms a KeyRef is.
type RefKind int

// The key identifier forms KMS accepts
// (https://docs.aws.amazon.com/kms/latest/developerguide/concepts.html#key-id).
const (
	KeyID     RefKind = iota + 1 // 1234abcd-12ab-34cd-56ef-1234567890ab or mrk-…
	KeyARN                       // arn:aws:kms:us-east-1:111122223333:key/…
	AliasName                    // alias/payments
	AliasARN                     // arn:aws:kms:us-east-1:111122223333:alias/payments
)

// KeyRef is one parsed key identifier.
type KeyRef struct {
	Raw       string // exactly as given
	Kind      RefKind
	Partition string // ARN forms only
	Region    string // ARN forms only
	Account   string // ARN forms only
	ID        string // key ID, for KeyID and KeyARN
	Alias     string // "alias/…", for AliasName and AliasARN
}
