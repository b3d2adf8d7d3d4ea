package org

import (
	"time"

	"github.com/kms-rotator/kms-rotator/lambda/request"
)

// ReasonRegionNotEnabled says a target was not swept because its Region is
// an opt-in Region its account has not enabled: STS issues the member role
// no credentials there (RegionDisabledException,
// https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html#API_AssumeRole_Errors),
// and the account has no keys there either
// (https://docs.aws.amazon.com/accounts/latest/reference/manage-acct-regions.html).
const ReasonRegionNotEnabled = "region-not-enabled"

// NotSwept is a target run's answer when the target is left out rather than
// failed: the organization sweep's child workflow marks the target
// "excluded" (notSwept present) and org-summary lists it, with no function
// error, since an account that never enabled a Region of orgRegions is a
// fact of the organization, not a fault to page on.
type NotSwept struct {
	RunID    string       `json:"runId"`
	Mode     request.Mode `json:"mode"`
	Account  string       `json:"account"`
	Region   string       `json:"region"`
	NotSwept string       `json:"notSwept"`
	Error    string       `json:"error"`
	// Summary has the report's counts the child workflow adds up, all 0.
	Summary struct {
		Candidates int `json:"candidates"`
		Rotated    int `json:"rotated"`
		Failed     int `json:"failed"`
		Skipped    int `json:"skipped"`
		Deferred   int `json:"deferred"`
		Overdue    int `json:"overdue"`
	} `json:"summary"`
}

// RegionNotEnabled is the NotSwept answer of a target run whose Region
// its account has not enabled (the engine's ErrRegionNotEnabled).
func RegionNotEnabled(t request.Target, mode request.Mode, now time.Time) *NotSwept {
	return &NotSwept{RunID: newRunID(now), Mode: mode, Account: t.Account, Region: t.Region,
		NotSwept: ReasonRegionNotEnabled,
		Error:    "Region " + t.Region + " is not enabled in account " + t.Account + " (STS RegionDisabledException): enable it there, or leave it out of orgRegions"}
}
