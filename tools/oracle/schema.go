package oracle

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// CheckReport checks a raw report against docs/design.md "The report" with
// the documented figures (Documented.CheckReport).
func CheckReport(raw []byte) []string { return Documented.CheckReport(raw) }

// CheckReport checks a raw report against docs/design.md "The report",
// from its JSON: required members and their JSON types, no member the
// contract does not name, the outcome and reason vocabulary, every
// candidate once, a summary that counts the entries (entries plus
// omittedNotDue and omittedOther are the candidates; not-due entries only
// left out beyond c.MaxListed candidates), an incident's notRotated, and
// each entry's budget, cryptoperiod, key material, next step and claim.
func (c Contract) CheckReport(raw []byte) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var r map[string]any
	if err := json.Unmarshal(raw, &r); err != nil {
		return []string{fmt.Sprintf("report is not a JSON object: %v: %s", err, truncate(string(raw), 300))}
	}
	str := func(m map[string]any, k, where string) string {
		s, ok := m[k].(string)
		if !ok {
			bad("%s.%s = %#v, want a string", where, k, m[k])
		}
		return s
	}
	timeOrNull := func(m map[string]any, k, where string) {
		v, present := m[k]
		switch s, isStr := v.(string); {
		case !present:
			bad("%s.%s missing (want RFC 3339 or null)", where, k)
		case v == nil:
		case !isStr:
			bad("%s.%s = %#v, want RFC 3339 or null", where, k, v)
		default:
			if _, err := time.Parse(time.RFC3339, s); err != nil {
				bad("%s.%s = %q: %v", where, k, s, err)
			}
		}
	}
	runStart, _ := time.Parse(time.RFC3339, fmt.Sprint(r["startedAt"]))
	runEnd, _ := time.Parse(time.RFC3339, fmt.Sprint(r["finishedAt"]))
	checkEvidence(r["evidence"], bad)
	for _, m := range unknownMembers(raw) {
		bad("%s is not a member of the report (docs/design.md \"The report\")", m)
	}
	if str(r, "runId", "report") == "" {
		bad("report.runId is empty")
	}
	if mode := str(r, "mode", "report"); !slices.Contains(reportModes, mode) {
		bad("report.mode = %q", mode)
	}
	if _, ok := r["dryRun"].(bool); !ok {
		bad("report.dryRun = %#v, want a bool", r["dryRun"])
	}
	for _, k := range []string{"startedAt", "finishedAt"} {
		if _, err := time.Parse(time.RFC3339, str(r, k, "report")); err != nil {
			bad("report.%s: %v", k, err)
		}
	}
	summary, ok := r["summary"].(map[string]any)
	if !ok {
		bad("report.summary = %#v, want an object", r["summary"])
		return problems
	}
	counts := map[string]float64{}
	for _, k := range []string{"candidates", "rotated", "wouldRotate", "skipped", "failed", "deferred", "overdue", "dueSoon", "materialExpiringSoon"} {
		n, ok := summary[k].(float64)
		if !ok {
			bad("summary.%s = %#v, want a number", k, summary[k])
		}
		counts[k] = n
	}
	if sum := counts["rotated"] + counts["wouldRotate"] + counts["skipped"] + counts["failed"] + counts["deferred"]; sum != counts["candidates"] {
		bad("summary outcomes add up to %v, candidates %v", sum, counts["candidates"])
	}
	if a, p := summary["overdueAction"], summary["overdueByPolicy"]; a != nil || p != nil {
		an, _ := a.(float64)
		pn, _ := p.(float64)
		if an+pn != counts["overdue"] {
			bad("summary.overdueAction %v + overdueByPolicy %v ≠ overdue %v", a, p, counts["overdue"])
		}
	}
	reasons, ok := summary["reasons"].(map[string]any)
	if !ok {
		bad("summary.reasons = %#v, want an object", summary["reasons"])
	}
	keys, ok := r["keys"].([]any)
	if !ok {
		bad("report.keys = %#v, want an array", r["keys"])
		return problems
	}
	byOutcome := map[string]float64{}
	byReason := map[string]float64{}
	overdue := 0.0
	notices := map[string]float64{} // dueSoon, materialExpiringSoon
	seen := map[string]bool{}
	// A report run reads last use only when asked ("usage": true): then
	// every eligible entry carries lastUsedAt, else none need to.
	usageRead := false
	for _, e := range keys {
		if k, ok := e.(map[string]any); ok && k["reason"] != "idle" {
			if _, has := k["lastUsedAt"]; has {
				usageRead = true
			}
		}
	}
	for i, e := range keys {
		where := fmt.Sprintf("keys[%d]", i)
		k, ok := e.(map[string]any)
		if !ok {
			bad("%s is not an object", where)
			continue
		}
		// A key is its ARN; an alias that did not resolve has none and is
		// the name the request gave.
		id, keyID, alias := str(k, "keyArn", where), str(k, "keyId", where), str(k, "alias", where)
		if id == "" {
			id = "unresolved:" + alias + keyID
		}
		if seen[id] {
			bad("%s: %s listed twice", where, id)
		}
		seen[id] = true
		if alias != "" && !strings.HasPrefix(alias, "alias/") {
			bad("%s.alias = %q", where, alias)
		}
		outcome, reason := str(k, "outcome", where), str(k, "reason", where)
		byOutcome[outcome]++
		if reason != "" {
			byReason[reason]++
		}
		switch {
		case !slices.Contains(Outcomes, outcome):
			bad("%s: unknown outcome %q", where, outcome)
		case outcome == "rotated" || outcome == "would-rotate":
			if reason != "" {
				bad("%s: %s with reason %q", where, outcome, reason)
			}
		default:
			if want, known := OutcomeOfReason[reason]; !known || want != outcome {
				bad("%s: outcome %q with reason %q (docs/design.md pairs the reason with %q)", where, outcome, reason, want)
			}
		}
		// Every skipped or failed entry says what to do next.
		if n, _ := k["next"].(string); (outcome == "skipped" || outcome == "failed") && n == "" {
			bad("%s: %s/%s without a next step", where, outcome, reason)
		}
		for _, f := range []string{"onDemandUsed", "onDemandRemaining"} {
			v, present := k[f]
			if _, isNum := v.(float64); !present || (v != nil && !isNum) {
				bad("%s.%s = %#v, want a number or null", where, f, v)
			}
		}
		timeOrNull(k, "lastRotation", where)
		timeOrNull(k, "nextDue", where)
		// error: the AWS code and message of a failed entry; also KMS's
		// message on a rotation-in-progress entry that a ConflictException
		// explained (an automatic rotation within 20 minutes).
		switch e, has := k["error"]; {
		case outcome == "failed" && (!has || e == ""):
			bad("%s: failed entry without an error (%#v)", where, e)
		case has && outcome != "failed" && reason != "rotation-in-progress":
			bad("%s: error member present for %s/%s", where, outcome, reason)
		}
		if _, has := k["primaryKeyArn"]; has != (reason == "multi-region-replica") {
			bad("%s: primaryKeyArn present %v for reason %q", where, has, reason)
		}
		if reason == "budget-exhausted" {
			// One budget count: exhausted, by the local count or by
			// KMS's LimitExceededException, means nothing left.
			if rem, isNum := k["onDemandRemaining"].(float64); isNum && rem != 0 {
				bad("%s: budget-exhausted with onDemandRemaining %v", where, rem)
			}
		}
		if reason == "recently-rotated" && k["lastRotation"] == nil && k["claim"] == nil {
			bad("%s: recently-rotated without lastRotation (the rotation that started the cooldown) or the ledger's claim", where)
		}
		// nextRotationDate: the key's next automatic rotation (issues 9 and 10).
		if v, has := k["nextRotationDate"]; has && v != nil {
			timeOrNull(k, "nextRotationDate", where)
		} else if reason == "automatic-rotation-soon" {
			bad("%s: automatic-rotation-soon without nextRotationDate", where)
		}
		overdue += checkCryptoperiod(k, where, outcome, reason, runStart, runEnd, bad)
		checkNotices(k, where, outcome, notices, bad)
		checkKeyMaterial(k, where, fmt.Sprint(r["mode"]), outcome, reason, usageRead, runStart, runEnd, bad)
	}
	// Beyond MaxListed candidates the list may leave out not-due entries
	// (omittedNotDue); a list that would still be too long drops more
	// (omittedOther: skipped, then deferred, then the tail). Every
	// candidate is an entry or counted as left out.
	omitted := map[string]float64{}
	for _, f := range []string{"omittedNotDue", "omittedOther"} {
		v, has := r[f]
		n, ok := v.(float64)
		if has && (!ok || n < 1 || n != float64(int64(n))) {
			bad("report.%s = %#v, want a whole number ≥ 1 (absent when none)", f, v)
		}
		omitted[f] = n
	}
	notDue, other := omitted["omittedNotDue"], omitted["omittedOther"]
	if n := float64(len(keys)) + notDue + other; n != counts["candidates"] {
		bad("%d entries in keys + %v omittedNotDue + %v omittedOther = %v, summary.candidates %v", len(keys), notDue, other, n, counts["candidates"])
	}
	if notDue > 0 && counts["candidates"] <= float64(c.MaxListed) {
		bad("omittedNotDue %v with %v candidates: not-due entries are left out only beyond %d", notDue, counts["candidates"], c.MaxListed)
	}
	// The entries left out are skipped/not-due ones (omittedNotDue), or
	// any (omittedOther): then the entries count no more than the summary.
	for outcome, field := range map[string]string{"rotated": "rotated", "would-rotate": "wouldRotate", "skipped": "skipped", "failed": "failed", "deferred": "deferred"} {
		want := counts[field]
		if outcome == "skipped" {
			want -= notDue
		}
		if byOutcome[outcome] != want && (other == 0 || byOutcome[outcome] > want) {
			bad("summary.%s = %v, entries with outcome %s: %v (omittedNotDue %v, omittedOther %v)", field, counts[field], outcome, byOutcome[outcome], notDue, other)
		}
	}
	for reason, n := range reasons {
		want, _ := n.(float64)
		if reason == "not-due" {
			want -= notDue
		}
		if byReason[reason] != want && (other == 0 || byReason[reason] > want) {
			bad("summary.reasons[%s] = %v, entries: %v (omittedNotDue %v, omittedOther %v)", reason, n, byReason[reason], notDue, other)
		}
	}
	// An incident's notRotated: the keys it named that were not rotated.
	nr, hasNR := summary["notRotated"]
	switch want := counts["candidates"] - counts["rotated"] - counts["wouldRotate"]; {
	case r["mode"] == ModeIncident && nr != want:
		bad("incident summary.notRotated = %#v, want candidates − rotated − wouldRotate = %v", nr, want)
	case r["mode"] != ModeIncident && hasNR:
		bad("%v summary has notRotated %#v (incidents only)", r["mode"], nr)
	}
	for reason, n := range byReason {
		if _, ok := reasons[reason]; !ok {
			bad("summary.reasons lacks %s (%v entries)", reason, n)
		}
	}
	// Entries left out beyond 2,000 candidates are not-due ones, never
	// overdue; only a list cut further (omittedOther) may hide some.
	if other == 0 && overdue != counts["overdue"] {
		bad("summary.overdue = %v, entries with overdue true: %v", counts["overdue"], overdue)
	}
	// A key falling due soon may be a not-due entry left out.
	for _, f := range []string{"dueSoon", "materialExpiringSoon"} {
		if n := notices[f]; n > counts[f] || (n != counts[f] && notDue+other == 0) {
			bad("summary.%s = %v, entries with %s true: %v", f, counts[f], f, n)
		}
	}
	return problems
}

// checkNotices checks an entry's notices (docs/design.md "The report"):
// dueSoon and materialExpiringSoon are true when present, a key this run
// rotated or would rotate, or one already overdue, is not due soon, and
// owner is the owner tag's value. It counts the notices in n.
func checkNotices(k map[string]any, where, outcome string, n map[string]float64, bad func(string, ...any)) {
	for _, f := range []string{"dueSoon", "materialExpiringSoon"} {
		v, has := k[f]
		if !has {
			continue
		}
		if v != true {
			bad("%s.%s = %#v, want true (absent when not)", where, f, v)
			continue
		}
		n[f]++
	}
	if k["dueSoon"] == true && (outcome == Rotated || outcome == WouldRotate || k["overdue"] == true) {
		bad("%s: dueSoon on a %s entry (overdue %v): only a key left to fall due is", where, outcome, k["overdue"])
	}
	if v, has := k["owner"]; has {
		if s, ok := v.(string); !ok || s == "" {
			bad("%s.owner = %#v, want the owner tag's value", where, v)
		}
	}
}

// checkCryptoperiod checks an entry's materialAgeDays and overdue (issue
// 10): both on every entry whose budget was read (an eligible key), never
// overdue for a key this product cannot rotate, nor for one this run
// rotated, would rotate or left for later on purpose (deferred, or waiting
// for its free automatic rotation: automatic-rotation-soon); otherwise
// overdue exactly when the material is older than the interval, i.e.
// nextDue (material date + interval) passed before the run (a nextDue
// inside the run may go either way). It returns 1 for an overdue entry.
func checkCryptoperiod(k map[string]any, where, outcome, reason string, runStart, runEnd time.Time, bad func(string, ...any)) float64 {
	age, hasAge := k["materialAgeDays"]
	od, hasOverdue := k["overdue"]
	if hasAge {
		if n, ok := age.(float64); !ok || n < 0 || n != float64(int64(n)) {
			bad("%s.materialAgeDays = %#v, want a whole number of days ≥ 0", where, age)
		}
	}
	isOverdue, ok := od.(bool)
	if hasOverdue && !ok {
		bad("%s.overdue = %#v, want a bool", where, od)
	}
	if k["onDemandUsed"] != nil && (!hasAge || !hasOverdue) {
		bad("%s: eligible entry (budget read) without materialAgeDays or overdue", where)
	}
	switch {
	case !isOverdue:
	case slices.Contains(ineligibleReasons, reason) && (reason != "not-found" || k["onDemandUsed"] == nil):
		bad("%s: overdue for %s, a key this product cannot rotate", where, reason)
	case notOverdue(outcome, reason):
		bad("%s: overdue although %s %s", where, outcome, reason)
	}
	// overdueFor: "policy" for the reasons the product keeps overdue on
	// purpose, "action" for every other overdue key; absent otherwise.
	of, _ := k["overdueFor"].(string)
	switch {
	case isOverdue && slices.Contains(OverdueByPolicyReasons, reason) && of != "policy",
		isOverdue && !slices.Contains(OverdueByPolicyReasons, reason) && of != "action":
		bad("%s: overdue %s/%s with overdueFor %q", where, outcome, reason, of)
	case !isOverdue && of != "":
		bad("%s: overdueFor %q on an entry that is not overdue", where, of)
	}
	nextDue, _ := k["nextDue"].(string)
	due, err := time.Parse(time.RFC3339, nextDue)
	// A deferred key, or one waiting for its automatic rotation, becomes
	// overdue only some time after its interval, never before it.
	if isOverdue && overdueLater(outcome, reason) && err == nil && !runEnd.IsZero() && due.After(runEnd) {
		bad("%s: overdue although %s %s (nextDue %s is after the run)", where, outcome, reason, nextDue)
	}
	// An idle key is skipped on purpose, like one waiting for
	// its automatic rotation, but whether its age still counts as overdue
	// is the engine's call: either answer passes here.
	// A key refused by another run's claim may have been rotated by it
	// though KMS does not list that rotation yet: its overdue follows the
	// claim, not nextDue.
	_, claimed := k["claim"]
	if hasOverdue && err == nil && !runStart.IsZero() && !notOverdue(outcome, reason) && !overdueLater(outcome, reason) && reason != "idle" && !claimed &&
		(due.Before(runStart) || due.After(runEnd)) && isOverdue != due.Before(runStart) {
		bad("%s: overdue %v, but nextDue %s is %s the run (%s)", where, isOverdue, nextDue,
			map[bool]string{true: "before", false: "after"}[due.Before(runStart)], runStart.Format(time.RFC3339))
	}
	if isOverdue {
		return 1
	}
	return 0
}

// checkKeyMaterial checks the key-material members of an entry:
//   - keyMaterialIdBefore (the current material before the rotation) on
//     every rotated entry; keyMaterialId (current, or the new one once a
//     rotation completed) and stagedKeyMaterialId (new material waiting in
//     PENDING_ROTATION) are non-empty strings when present;
//   - an imported key skipped for its material names its current material,
//     and material-not-staged has none staged;
//   - completion ("complete" or "pending") only on rotated incident entries
//     (sweeps do not wait); "complete" ⇔ completedAt, a time inside the run
//     and not before the rotation started, with keyMaterialId the new
//     material (not keyMaterialIdBefore);
//   - stuck is a bool, true only on a key this run did not rotate;
//   - materialExpiresAt and completedAt are RFC 3339, lastUsedAt RFC 3339
//     or null; lastUsedAt is present on idle entries and, in a report run
//     that read usage ("usage": true: some entry has it), on
//     every entry whose history was read.
func checkKeyMaterial(k map[string]any, where, mode, outcome, reason string, usageRead bool, runStart, runEnd time.Time, bad func(string, ...any)) {
	ids := map[string]string{}
	for _, f := range []string{"keyMaterialIdBefore", "keyMaterialId", "stagedKeyMaterialId"} {
		v, has := k[f]
		if !has {
			continue
		}
		if s, ok := v.(string); !ok || s == "" {
			bad("%s.%s = %#v, want a key material ID", where, f, v)
			continue
		}
		ids[f] = v.(string)
	}
	if outcome == "rotated" && ids["keyMaterialIdBefore"] == "" {
		bad("%s: rotated entry without keyMaterialIdBefore", where)
	}
	switch reason {
	case "material-not-staged":
		if _, has := k["stagedKeyMaterialId"]; has {
			bad("%s: material-not-staged with stagedKeyMaterialId %#v", where, k["stagedKeyMaterialId"])
		}
		fallthrough
	case "material-pending-replica-import":
		if ids["keyMaterialId"] == "" {
			bad("%s: %s without keyMaterialId (the imported key's current material)", where, reason)
		}
	}
	if outcome != "rotated" && ids["stagedKeyMaterialId"] != "" && ids["stagedKeyMaterialId"] == ids["keyMaterialId"] {
		bad("%s: stagedKeyMaterialId %s is the current material (keyMaterialId)", where, ids["stagedKeyMaterialId"])
	}
	parse := func(f string, nullable bool) (time.Time, bool) {
		v, has := k[f]
		if !has || (nullable && v == nil) {
			return time.Time{}, false
		}
		s, ok := v.(string)
		t, err := time.Parse(time.RFC3339, s)
		if !ok || err != nil {
			bad("%s.%s = %#v, want RFC 3339%s", where, f, v, map[bool]string{true: " or null", false: ""}[nullable])
			return time.Time{}, false
		}
		return t, true
	}
	parse("materialExpiresAt", false)
	if _, has := k["lastUsedAt"]; has {
		parse("lastUsedAt", true)
	} else if reason == "idle" || (mode == "report" && usageRead && k["onDemandUsed"] != nil) {
		bad("%s: no lastUsedAt (RFC 3339 or null) on a %s entry", where, map[bool]string{true: "idle", false: "report-mode"}[reason == "idle"])
	}
	if v, has := k["stuck"]; has {
		if stuck, ok := v.(bool); !ok {
			bad("%s.stuck = %#v, want a bool", where, v)
		} else if stuck && (outcome == "rotated" || outcome == "would-rotate") {
			bad("%s: stuck (another rotation in progress too long) yet %s", where, outcome)
		}
	}
	completedAt, hasCompletedAt := parse("completedAt", false)
	c, hasCompletion := k["completion"]
	if !hasCompletion {
		if hasCompletedAt {
			bad("%s: completedAt without completion", where)
		}
		return
	}
	switch {
	case c != "complete" && c != "pending":
		bad("%s.completion = %#v, want \"complete\" or \"pending\"", where, c)
	case outcome != "rotated":
		bad("%s: completion %v on a %s entry", where, c, outcome)
	case mode != "incident":
		bad("%s: completion %v in a %s run (only incidents wait for a rotation)", where, c, mode)
	}
	if (c == "complete") != hasCompletedAt {
		bad("%s: completion %v with completedAt %#v", where, c, k["completedAt"])
	}
	if c == "complete" && ids["keyMaterialId"] == ids["keyMaterialIdBefore"] {
		bad("%s: completion complete, but keyMaterialId %q is the material before the rotation", where, ids["keyMaterialId"])
	}
	if !hasCompletedAt || runStart.IsZero() {
		return
	}
	if completedAt.Before(runStart) || completedAt.After(runEnd) {
		bad("%s: completedAt %s outside the run (%s to %s)", where, k["completedAt"], runStart.Format(time.RFC3339Nano), runEnd.Format(time.RFC3339Nano))
	}
	if last, ok := parse("lastRotation", true); ok && completedAt.Before(last) {
		bad("%s: completedAt %s before the rotation started (lastRotation %s)", where, k["completedAt"], k["lastRotation"])
	}
}

// notOverdue reports whether an entry is never overdue whatever its age:
// rotated or would rotate in this run, or left for later on purpose.
func notOverdue(outcome, reason string) bool {
	return outcome == "rotated" || outcome == "would-rotate"
}

// overdueLater reports whether an entry becomes overdue only some time
// after its interval: a deferred key (two days later) and one waiting for
// its automatic rotation (the grace days later, when it was missed).
func overdueLater(outcome, reason string) bool {
	return outcome == "deferred" || reason == "automatic-rotation-soon"
}

// truncate shortens s to at most n bytes for a problem's text.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// checkEvidence checks the report's evidence member (docs/design.md "The
// report", "Evidence"): where the record went (bucket and key), or why it
// could not be written (error), never both.
func checkEvidence(v any, bad func(string, ...any)) {
	if v == nil {
		return
	}
	e, ok := v.(map[string]any)
	if !ok {
		bad("report.evidence = %#v, want an object", v)
		return
	}
	bucket, _ := e["bucket"].(string)
	key, _ := e["key"].(string)
	msg, _ := e["error"].(string)
	if (msg == "") == (bucket == "" || key == "") {
		bad("report.evidence = %v: want bucket and key, or an error", e)
	}
}
