package org

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/kms-rotator/kms-rotator/lambda/emf"
	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
)

// SummaryReport is an org-summary run's answer: the organization-wide
// figures of one execution of the organization sweep, read from the
// Distributed Map's results. Every resolved target is counted exactly once:
// one with no result (a child that never ran) counts as failed.
type SummaryReport struct {
	RunID     string       `json:"runId"`
	Mode      request.Mode `json:"mode"`
	Account   string       `json:"account"`
	Execution string       `json:"execution"`
	MapRunARN string       `json:"mapRunArn,omitempty"`
	Summary   OrgSummary   `json:"summary"`
	// FailedTargets lists the first failed targets by account and Region
	// (summary.failed counts them all).
	FailedTargets []FailedTarget `json:"failedTargets"`
	// NotSwept lists the first targets left out (summary.notSwept counts
	// them): Regions their account has not enabled.
	NotSwept []NotSweptTarget `json:"notSwept"`
}

// NotSweptTarget is a target left out of the sweep, and why
// (ReasonRegionNotEnabled).
type NotSweptTarget struct {
	Account string `json:"account"`
	Region  string `json:"region"`
	Reason  string `json:"reason"`
}

// OrgSummary are the organization-wide figures. Targets are swept (every
// candidate handled), incomplete (keys deferred to the next schedule) or
// failed, or not swept at all (an opt-in Region the account has not
// enabled); the key counts add up the targets' reports.
type OrgSummary struct {
	Targets    int `json:"targets"`
	Swept      int `json:"swept"`
	Incomplete int `json:"incomplete"`
	Failed     int `json:"failed"`
	NotSwept   int `json:"notSwept"`
	Rotated    int `json:"rotated"`
	KeysFailed int `json:"keysFailed"`
	Skipped    int `json:"skipped"`
	Overdue    int `json:"overdue"`
	Excluded   int `json:"excluded"`
}

// FailedTarget is a target whose sweep failed, and why.
type FailedTarget struct {
	Account string `json:"account"`
	Region  string `json:"region"`
	Error   string `json:"error"`
}

// manifest is the Distributed Map's ResultWriter manifest
// (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html):
// the result files by the status of the child executions they hold.
type manifest struct {
	DestinationBucket string `json:"DestinationBucket"`
	MapRunArn         string `json:"MapRunArn"`
	ResultFiles       struct {
		FAILED, PENDING, SUCCEEDED []struct {
			Key  string `json:"Key"`
			Size int64  `json:"Size"`
		}
	} `json:"ResultFiles"`
}

// childExecution is one child workflow execution in a result file.
type childExecution struct {
	ExecutionArn string `json:"ExecutionArn"`
	Input        string `json:"Input"`
	Output       string `json:"Output"`
	Status       string `json:"Status"`
	Error        string `json:"Error"`
	Cause        string `json:"Cause"`
}

// targetResult is the child workflow's output for one target
// (infra/orgflow.go): status swept, incomplete or failed.
type targetResult struct {
	Account  string          `json:"account"`
	Region   string          `json:"region"`
	Status   string          `json:"status"`
	Rotated  int             `json:"rotated"`
	Failed   int             `json:"failed"`
	Skipped  int             `json:"skipped"`
	Overdue  int             `json:"overdue"`
	Deferred int             `json:"deferred"`
	Error    json.RawMessage `json:"error"`
	// NotSwept is why an excluded target was left out.
	NotSwept string `json:"notSwept"`
}

// The statuses of a target's result.
const (
	statusSwept      = "swept"
	statusIncomplete = "incomplete"
	statusFailed     = "failed"
	statusExcluded   = "excluded"
)

// maxErrorText bounds one failed target's error in the answer and the event.
const maxErrorText = 300

// Summarize runs an org-summary request: it reads the execution's
// resolution and the Distributed Map's results, and reports, once per
// execution, the organization-wide figures (EMF, a log line, the answer)
// and one result event naming the failed accounts. It fails when the
// results cannot be read: the figures would be wrong.
func (s *Service) Summarize(ctx context.Context, req request.Org, inv Invocation) (*SummaryReport, error) {
	if err := s.answers(req.Mode); err != nil {
		return nil, err
	}
	rep := &SummaryReport{RunID: newRunID(s.now()), Mode: request.ModeOrgSummary, Account: inv.Scope.Account,
		Execution: req.Execution, FailedTargets: []FailedTarget{}, NotSwept: []NotSweptTarget{}}
	log := s.log.With("runId", rep.RunID, "mode", string(request.ModeOrgSummary), "requestId", inv.RequestID, "execution", req.Execution)
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	results, err := s.readResults(ctx, req, rep)
	if err != nil {
		log.Error("organization sweep not summarized", "error", err.Error())
		s.emit(request.ModeOrgSummary, []emf.Metric{{Name: settings.MetricRunsFailed, Unit: emf.Count, Value: 1}})
		return nil, fmt.Errorf("org-summary run: %w", err)
	}
	var failed []FailedTarget
	for _, r := range results {
		sm := &rep.Summary
		sm.Targets++
		sm.Rotated += r.Rotated
		sm.KeysFailed += r.Failed
		sm.Skipped += r.Skipped
		sm.Overdue += r.Overdue
		switch r.Status {
		case statusSwept:
			sm.Swept++
		case statusIncomplete:
			sm.Incomplete++
		case statusExcluded:
			sm.NotSwept++
			if len(rep.NotSwept) < s.maxKeep {
				rep.NotSwept = append(rep.NotSwept, NotSweptTarget{Account: r.Account, Region: r.Region, Reason: r.NotSwept})
			}
			log.Info("target not swept", "account", r.Account, "region", r.Region, "reason", r.NotSwept)
		default:
			sm.Failed++
			failed = append(failed, FailedTarget{Account: r.Account, Region: r.Region, Error: errorText(r)})
		}
	}
	for _, f := range failed {
		log.Warn("target failed", "account", f.Account, "region", f.Region, "error", f.Error)
	}
	rep.FailedTargets = append(rep.FailedTargets, failed[:min(len(failed), s.maxKeep)]...)
	sm := rep.Summary
	log.Info("organization sweep summarized", "targets", sm.Targets, "swept", sm.Swept, "incomplete", sm.Incomplete,
		"failed", sm.Failed, "notSwept", sm.NotSwept, "rotated", sm.Rotated, "keysFailed", sm.KeysFailed, "overdue", sm.Overdue, "excluded", sm.Excluded)
	s.emit(request.ModeOrgSummary, []emf.Metric{
		{Name: settings.MetricRunsCompleted, Unit: emf.Count, Value: 1},
		{Name: settings.MetricOrgTargets, Unit: emf.Count, Value: float64(sm.Targets)},
		{Name: settings.MetricOrgTargetsSwept, Unit: emf.Count, Value: float64(sm.Swept)},
		{Name: settings.MetricOrgTargetsIncomplete, Unit: emf.Count, Value: float64(sm.Incomplete)},
		{Name: settings.MetricOrgTargetsFailed, Unit: emf.Count, Value: float64(sm.Failed)},
		{Name: settings.MetricOrgTargetsNotSwept, Unit: emf.Count, Value: float64(sm.NotSwept)},
		{Name: settings.MetricOrgKeysRotated, Unit: emf.Count, Value: float64(sm.Rotated)},
		{Name: settings.MetricOrgKeysFailed, Unit: emf.Count, Value: float64(sm.KeysFailed)},
		{Name: settings.MetricOrgKeysOverdue, Unit: emf.Count, Value: float64(sm.Overdue)},
	})
	s.publish(ctx, log, rep, failed)
	return rep, nil
}

// readResults reads the resolution and every result file of the execution
// and returns one result per resolved target, in target order.
func (s *Service) readResults(ctx context.Context, req request.Org, rep *SummaryReport) ([]targetResult, error) {
	dir := request.OrgPrefix(req.Execution)
	var res TargetsReport
	if err := s.get(ctx, dir+resolutionObject, &res); err != nil {
		return nil, fmt.Errorf("the execution's resolution: %w", err)
	}
	rep.Summary.Excluded = res.Summary.Excluded
	var m manifest
	if err := s.get(ctx, req.Manifest, &m); err != nil {
		return nil, fmt.Errorf("the Distributed Map's manifest: %w", err)
	}
	rep.MapRunARN = m.MapRunArn
	byTarget := map[request.Target]targetResult{}
	// Failed and pending children first: a child that a redrive ran again
	// and that succeeded then is counted by its success.
	for _, group := range []struct {
		files []struct {
			Key  string `json:"Key"`
			Size int64  `json:"Size"`
		}
		status string
	}{{m.ResultFiles.PENDING, "PENDING"}, {m.ResultFiles.FAILED, "FAILED"}, {m.ResultFiles.SUCCEEDED, "SUCCEEDED"}} {
		for _, f := range group.files {
			// The function reads nothing of the bucket outside the
			// execution's folder, whatever a manifest names.
			if !strings.HasPrefix(f.Key, dir) || strings.Contains(f.Key, "/../") {
				return nil, fmt.Errorf("the manifest names %s, outside the execution's folder %s", f.Key, dir)
			}
			var children []childExecution
			if err := s.get(ctx, f.Key, &children); err != nil {
				return nil, fmt.Errorf("a result file: %w", err)
			}
			for _, c := range children {
				r, err := resultOf(c)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", f.Key, err)
				}
				byTarget[request.Target{Account: r.Account, Region: r.Region}] = r
			}
		}
	}
	out := make([]targetResult, 0, len(res.Targets))
	for _, t := range res.Targets {
		r, ok := byTarget[t]
		if !ok {
			r = targetResult{Account: t.Account, Region: t.Region, Status: statusFailed,
				Error: errorJSON("NoResult", "the Distributed Map wrote no result for this target (the map run stopped before it)")}
		}
		delete(byTarget, t)
		out = append(out, r)
	}
	if len(byTarget) > 0 {
		extra := make([]string, 0, len(byTarget))
		for t := range byTarget {
			extra = append(extra, t.Account+"/"+t.Region)
		}
		slices.Sort(extra)
		return nil, fmt.Errorf("results for %d target(s) the execution did not resolve (%s)", len(extra), strings.Join(extra[:min(len(extra), 5)], ", "))
	}
	return out, nil
}

// resultOf reads one child execution: a succeeded child's output is the
// target's result; a failed, timed-out or aborted child (whose own Catch
// did not run) is a failed target named by its input.
func resultOf(c childExecution) (targetResult, error) {
	var r targetResult
	if c.Status == "SUCCEEDED" {
		if err := json.Unmarshal([]byte(c.Output), &r); err != nil || r.Account == "" || r.Region == "" {
			return r, fmt.Errorf("child execution %s: output %.200q is not a target's result", c.ExecutionArn, c.Output)
		}
		switch r.Status {
		case statusSwept, statusIncomplete, statusFailed, statusExcluded:
			return r, nil
		}
		return r, fmt.Errorf("child execution %s: unknown status %q", c.ExecutionArn, r.Status)
	}
	var in struct {
		Target request.Target `json:"target"`
	}
	if err := json.Unmarshal([]byte(c.Input), &in); err != nil || in.Target.Account == "" || in.Target.Region == "" {
		return r, fmt.Errorf("child execution %s (%s): input %.200q names no target", c.ExecutionArn, c.Status, c.Input)
	}
	status := c.Status
	if status == "" {
		status = "PENDING"
	}
	return targetResult{Account: in.Target.Account, Region: in.Target.Region, Status: statusFailed,
		Error: errorJSON("Child"+titleCase(status), c.Error+": "+c.Cause)}, nil
}

// titleCase turns a Step Functions status (TIMED_OUT) into a name (TimedOut).
func titleCase(s string) string {
	var b strings.Builder
	for _, w := range strings.Split(s, "_") {
		if w != "" {
			b.WriteString(w[:1] + strings.ToLower(w[1:]))
		}
	}
	return b.String()
}

func errorJSON(name, cause string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"Error": name, "Cause": cause})
	return b
}

// errorText is a failed target's error in one line: "Error: Cause".
func errorText(r targetResult) string {
	var e struct{ Error, Cause string }
	if json.Unmarshal(r.Error, &e) != nil || e.Error == "" {
		if len(r.Error) == 0 {
			return "failed"
		}
		e.Error = string(r.Error)
	}
	text := e.Error
	if e.Cause != "" {
		text += ": " + e.Cause
	}
	if len(text) > maxErrorText {
		text = text[:maxErrorText] + "…"
	}
	return text
}

// summaryDetail is the organization sweep's result event.
type summaryDetail struct {
	RunID          string         `json:"runId"`
	Mode           request.Mode   `json:"mode"`
	RequestID      string         `json:"requestId,omitempty"`
	Execution      string         `json:"execution"`
	Summary        OrgSummary     `json:"summary"`
	FailedAccounts []string       `json:"failedAccounts"`
	FailedTargets  []FailedTarget `json:"failedTargets"`
}

// maxEventAccounts bounds the failed accounts the result event names; an
// event entry holds 256 KB
// (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html).
const maxEventAccounts = 1000

// publish puts one result event per execution on the results bus; a
// failure is logged and counted (ResultEventsFailed).
func (s *Service) publish(ctx context.Context, log *slog.Logger, rep *SummaryReport, failed []FailedTarget) {
	if s.c.Events == nil {
		return
	}
	d := summaryDetail{RunID: rep.RunID, Mode: rep.Mode, Execution: rep.Execution, Summary: rep.Summary,
		FailedAccounts: []string{}, FailedTargets: rep.FailedTargets}
	for _, f := range failed {
		if !slices.Contains(d.FailedAccounts, f.Account) && len(d.FailedAccounts) < maxEventAccounts {
			d.FailedAccounts = append(d.FailedAccounts, f.Account)
		}
	}
	slices.Sort(d.FailedAccounts)
	detail, err := json.Marshal(d)
	var out *eventbridge.PutEventsOutput
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
		defer cancel()
		out, err = s.c.Events.PutEvents(pctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{
			Source:       aws.String(settings.ResultEventSource),
			DetailType:   aws.String(settings.ResultEventDetailType),
			Detail:       aws.String(string(detail)),
			EventBusName: aws.String(s.cfg.ResultBus),
		}}})
	}
	if err == nil && (out.FailedEntryCount > 0 || len(out.Entries) == 0) {
		err = errors.New("PutEvents took no entry")
		if len(out.Entries) > 0 {
			err = fmt.Errorf("%s: %s", aws.ToString(out.Entries[0].ErrorCode), aws.ToString(out.Entries[0].ErrorMessage))
		}
	}
	if err != nil {
		log.Error("result event not published", "bus", s.cfg.ResultBus, "error", err.Error())
		s.emit(request.ModeOrgSummary, []emf.Metric{{Name: settings.MetricResultEventsFailed, Unit: emf.Count, Value: 1}})
		return
	}
	log.Info("result event published", "eventId", aws.ToString(out.Entries[0].EventId), "detailBytes", len(detail))
}
