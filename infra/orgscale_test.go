package main

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/harness"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

// The organization of TestOrgStateMachineSweepsAnOrganizationOf2000Accounts:
// scaleOUs OUs of scaleAccountsPerOU active accounts each, one suspended
// account more in each, swept in scaleRegions.
const (
	scaleOUs           = 4
	scaleAccountsPerOU = 500
	// scaleFunctions RIEs serve the children's invocations, and the Map
	// runs as many children at once: Lambda would run that many execution
	// environments for a sweep function reserving as many.
	scaleFunctions = 24
)

var scaleRegions = []string{"us-east-1", "eu-west-1", "ap-southeast-2"}

// scaleAccount is the i-th active account of OU o.
func scaleAccount(o, i int) string { return fmt.Sprintf("%012d", 200000000000+o*10000+i) }

// TestOrgStateMachineSweepsAnOrganizationOf2000Accounts resolves and sweeps
// 2,000 accounts × 3 Regions — 6,000 targets — end to end with the built
// function: the targets run lists
// the 4 OUs through kmslocal's Organizations API and writes the targets to
// moto's S3; the Distributed Map runs 6,000 child executions, at most 24 at
// once on 24 Runtime Interface Emulators; the org-summary run reads the
// ResultWriter's files. A few targets hold keys (due ones, and one that is
// not due); the suspended account of each OU holds due keys too and is
// excluded; 8 accounts have not enabled the third Region, where their
// targets are left out (not swept) rather than failed. Checked: every target's result, the org-summary answer and its
// EMF record against the results, kmslocal's per-account counters (every
// due key of a swept account rotated once, no rotation anywhere else), and
// the rotation history of every key that exists.
func TestOrgStateMachineSweepsAnOrganizationOf2000Accounts(t *testing.T) {
	if testing.Short() {
		t.Skip("a few minutes: 6,000 child executions")
	}
	org := &kmsemu.Organization{
		ID: "o-a1b2c3d4e5", ManagementAccount: flowManagement, DelegatedAdministrators: []string{harness.Account}, RootID: flowRoot,
		Accounts: []kmsemu.OrganizationAccount{{ID: harness.Account}},
	}
	var orgTargets, accounts, suspended []string
	for o := range scaleOUs {
		ou := fmt.Sprintf("ou-ab12-scale%03d", o)
		orgTargets = append(orgTargets, ou)
		org.Units = append(org.Units, kmsemu.OrganizationUnit{ID: ou, Name: ou, Parent: flowRoot})
		for i := range scaleAccountsPerOU {
			a := scaleAccount(o, i)
			accounts = append(accounts, a)
			org.Accounts = append(org.Accounts, kmsemu.OrganizationAccount{ID: a, Parent: ou})
		}
		s := scaleAccount(o, 9999)
		suspended = append(suspended, s)
		org.Accounts = append(org.Accounts, kmsemu.OrganizationAccount{ID: s, Parent: ou, State: "SUSPENDED"})
	}
	// Keys in a few targets, spread over the OUs and Regions; the rest
	// empty.
	due := map[orgTarget]int{}
	for k := range 12 {
		a := accounts[(k*397)%len(accounts)]
		due[orgTarget{a, scaleRegions[k%len(scaleRegions)]}] = 1 + k%3
	}
	// A few accounts have not enabled the opt-in Region: their targets
	// there are left out, not failed.
	notEnabled := map[orgTarget]bool{}
	for i := 5; i < len(accounts); i += 250 {
		tg := orgTarget{accounts[i], scaleRegions[2]}
		if _, ok := due[tg]; ok {
			continue
		}
		notEnabled[tg] = true
		for j, a := range org.Accounts {
			if a.ID == tg.Account {
				org.Accounts[j].DisabledRegions = []string{tg.Region}
			}
		}
	}
	for _, s := range suspended {
		due[orgTarget{s, scaleRegions[0]}] = 2
	}
	targets := crossTargets(accounts, scaleRegions)

	start := time.Now()
	// kmslocal's default member roles: every ACTIVE account of the
	// organization but its management account.
	env := startFlowEnvWith(t, due, nil, org, time.Minute, scaleFunctions, map[string]string{settings.EnvContinuationMax: "0"})
	t.Logf("%d functions started in %s (%d CPUs)", scaleFunctions, time.Since(start).Round(time.Millisecond), runtime.NumCPU())
	def := flowDefinitionWith(t, orgTargets, scaleRegions, scaleFunctions, env.Bucket)
	run := runFlow(t, flowDriver{Definition: def, URLs: flowUrls(env.Env), S3: env.S3}, targets)
	var resultBytes int64
	for _, files := range run.Manifest.ResultFiles {
		for _, f := range files {
			resultBytes += f.Size
		}
	}
	t.Logf("%d targets swept in %s: %d invocations, at most %d children at once, longest child history %d events, %d result files of %d bytes, output %d bytes",
		len(run.Results), run.Took.Round(time.Millisecond), run.Invocations, run.MaxChildren, run.MaxEvents, len(run.Manifest.ResultFiles["SUCCEEDED"]), resultBytes, run.OutputBytes)

	// The figure docs/performance.md prices a sweep with: how long one
	// target's run takes (RunDuration of the scheduled runs' EMF records).
	var durations []float64
	for _, f := range env.Functions {
		recs, err := oracle.ParseEMFLines(f.Proc.Stdout.Lines())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if d, ok := r.Fields[settings.MetricRunDuration].(float64); ok && r.Fields[settings.DimMode] == "scheduled" {
				durations = append(durations, d)
			}
		}
	}
	if len(durations) > 0 {
		slices.Sort(durations)
		sum := 0.0
		for _, d := range durations {
			sum += d
		}
		t.Logf("target runs: %d, RunDuration mean %.0f ms, median %.0f ms, p95 %.0f ms", len(durations), sum/float64(len(durations)),
			durations[len(durations)/2], durations[len(durations)*95/100])
	}

	for _, r := range run.Results {
		tg := orgTarget{r.Account, r.Region}
		if notEnabled[tg] {
			if r.Status != "excluded" || r.NotSwept != "region-not-enabled" || r.Links != 1 || r.Rotated != 0 {
				t.Errorf("%s/%s: %+v; want excluded, region-not-enabled", tg.Account, tg.Region, r)
			}
			continue
		}
		if r.Status != "swept" || r.Links != 1 || r.Rotated != due[tg] || r.Failed != 0 || r.Deferred != 0 || r.RunID == "" {
			t.Errorf("%s/%s: %+v; want swept in one link with %d rotated", tg.Account, tg.Region, r, due[tg])
		}
	}
	if want := len(targets) + 2; run.Invocations != want {
		t.Errorf("%d invocations, want %d (the targets run, one per target, the summary)", run.Invocations, want)
	}
	if run.MaxChildren > scaleFunctions {
		t.Errorf("%d children ran at once, over MaxConcurrency %d", run.MaxChildren, scaleFunctions)
	}
	if got := run.Output.Resolved; got.Accounts != len(accounts) || got.Targets != len(targets) || got.Excluded != len(suspended) {
		t.Errorf("resolved %+v, want %d accounts, %d targets, %d excluded", got, len(accounts), len(targets), len(suspended))
	}
	excluded := []string{}
	for _, e := range run.Output.Excluded {
		excluded = append(excluded, e.Account)
		if e.Reason != "not-active" || e.State != "SUSPENDED" {
			t.Errorf("excluded %+v, want not-active SUSPENDED", e)
		}
	}
	if slices.Sort(excluded); !slices.Equal(excluded, suspended) {
		t.Errorf("excluded %v, want the suspended accounts %v", excluded, suspended)
	}
	checkSummary(t, env, run, 1)
	if s := run.Output.Summary.Summary; s.Targets != len(targets) || s.Swept != len(targets)-len(notEnabled) || s.NotSwept != len(notEnabled) || len(notEnabled) == 0 || s.Rotated == 0 {
		t.Errorf("summary %+v: want %d targets, %d not swept, the rest swept, keys rotated", s, len(targets), len(notEnabled))
	}

	// Every account's rotations: kmslocal counts them per account.
	st, err := env.KMS.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for _, a := range accounts {
		want[a] = 0
	}
	for tg, n := range due {
		if slices.Contains(suspended, tg.Account) {
			n = 0 // excluded: its keys must stay untouched
		}
		want[tg.Account] += n
	}
	for a, n := range want {
		op := st.Accounts[a]["RotateKeyOnDemand"]
		if op.Calls != int64(n) || op.Errors != 0 {
			t.Errorf("account %s: %d RotateKeyOnDemand calls (%d errors), want %d and none", a, op.Calls, op.Errors, n)
		}
	}
	if total := st.Op("RotateKeyOnDemand").Calls; total != int64(run.Output.Summary.Summary.Rotated) {
		t.Errorf("%d rotations in kmslocal, %d in the summary", total, run.Output.Summary.Summary.Rotated)
	}
	// And every key that exists, read through its member role: each due
	// key of a swept account has one on-demand rotation, every other key
	// none. The suspended accounts have no member role; kmslocal's counters
	// above show them untouched.
	for tg, n := range due {
		if slices.Contains(suspended, tg.Account) {
			continue
		}
		old := 0
		for arn, k := range memberRotations(t, env.Env, tg.Account, tg.Region) {
			w := 0
			if k.due {
				old++
				w = 1
			}
			if k.onDemand != w {
				t.Errorf("%s (due %t): %d on-demand rotations, want %d", arn, k.due, k.onDemand, w)
			}
		}
		if old != n {
			t.Errorf("%s/%s: %d due keys, want %d", tg.Account, tg.Region, old, n)
		}
	}
}
