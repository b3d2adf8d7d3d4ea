package faults

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/kms-rotator/kms-rotator/lambda/rotator"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/harness"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
	"github.com/kms-rotator/kms-rotator/tools/moto"
	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

// The rotation ledger under overlapping and failing runs of the built
// function (docs/design.md "The rotation ledger", "Safety rules"): a ledger
// that cannot be reached fails every due key closed, and a sweep, an
// incident and a retried target racing for the same keys spend one
// rotation per key between them. Both run against both readings of KMS's
// eventual consistency: a rotation listed as soon as its status clears, and
// (kmslocal -list-after-material) only once its new material is current,
// where no read of KMS shows a rotation that just completed and only the
// ledger's claims keep a second run from a second rotation.

// kmsModel is one reading of KMS's eventual consistency.
type kmsModel struct {
	name              string
	listAfterMaterial bool
}

var kmsModels = []kmsModel{
	{name: "KMS lists a rotation once its status clears"},
	{name: "KMS lists a rotation only once its material is current", listAfterMaterial: true},
}

// The emulator's delays in this file: rotations complete at once (no
// rotation-in-progress status to guard anything) and their material
// becomes current materialDelay later.
const materialDelay = 3 * time.Second

// modelEnv starts kmslocal with fleet under model m, and n functions.
func modelEnv(t *testing.T, m kmsModel, fleet string, fn harness.FunctionOptions, n int) *harness.Env {
	t.Helper()
	return harness.StartTB(t, harness.Options{
		KMSLocal: harness.KMSLocalOptions{FleetJSON: fleet, ListAfterMaterial: m.listAfterMaterial,
			Args: []string{"-rotation-delay=0", "-material-delay=" + materialDelay.String(), "-quiet"}},
		Function:  fn,
		Functions: n,
	})
}

// settleHistory waits until the rotations started so far are listed under
// model m, so the emulator's history can be counted: a lower bound on
// time, never an upper one.
func settleHistory(m kmsModel) {
	if m.listAfterMaterial {
		time.Sleep(materialDelay + 100*time.Millisecond)
	}
}

// rotateCallCount returns how many RotateKeyOnDemand requests the emulator
// received, from its own counters.
func rotateCallCount(t *testing.T, env *harness.Env) int64 {
	t.Helper()
	st, err := env.KMS.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st.Op("RotateKeyOnDemand").Calls
}

// TestLedgerUnreachableFailsEveryDueKeyClosed: the function's DynamoDB
// endpoint is a closed port. A sweep still answers a report, but without a
// claim no RotateKeyOnDemand goes out: every key the sweep would rotate is
// failed/ledger-unavailable with an error naming the ledger's table, the
// other keys keep their reasons, and the emulator counts no rotation call.
func TestLedgerUnreachableFailsEveryDueKeyClosed(t *testing.T) {
	cs := classes(4)
	for _, m := range kmsModels {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			closed, err := harness.FreeAddr() // free a moment ago, and never handed to anyone again
			if err != nil {
				t.Fatal(err)
			}
			// Each ledger call retries the refused connection for about
			// ten seconds (the SDK's retries); 120 s leave the sweep room.
			env := modelEnv(t, m, fleetJSON(t, cs), harness.FunctionOptions{Timeout: 120 * time.Second,
				Env: scheduledEnv(map[string]string{"AWS_ENDPOINT_URL_DYNAMODB": "http://" + closed})}, 1)
			obs := oracle.Observer(env.KMS.Config(region))
			before := snapshot(t, obs)
			payload, err := env.ReadFile("events/scheduled.json")
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			r, err := invoke(t.Context(), env.Function, payload)
			if err != nil {
				t.Fatalf("the sweep returned no report: %v", err)
			}
			t.Logf("sweep without its ledger: %s (wall %v)", harness.SummaryLine(r.judged), time.Since(start).Round(100*time.Millisecond))
			for _, p := range oracle.CheckReport(r.judged.Raw) {
				t.Errorf("report: %s", p)
			}
			if n := rotateCallCount(t, env); n != 0 {
				t.Errorf("%d RotateKeyOnDemand calls without a ledger, want 0", n)
			}
			checkRuns(t, before, snapshot(t, obs), []run{r}, nil, true)
			failedClosed := 0
			for _, k := range r.report.Keys {
				c, _ := classOf(cs, before[k.KeyARN].Alias)
				want, wantReason := c.outcome, c.reason
				if want == rotator.Rotated {
					want, wantReason = rotator.Failed, rotator.ReasonLedgerUnavailable
					failedClosed++
					if !strings.Contains(k.Error, env.LedgerTable) || !strings.Contains(k.Error, "no RotateKeyOnDemand was sent") {
						t.Errorf("%s: error %q, want it to name the table %s and say no rotation was sent", before[k.KeyARN].Alias, k.Error, env.LedgerTable)
					}
				}
				if k.Outcome != want || k.Reason != wantReason {
					t.Errorf("%s (%s): %s/%s, want %s/%s (error %q)", before[k.KeyARN].Alias, c.name, k.Outcome, k.Reason, want, wantReason, k.Error)
				}
			}
			if failedClosed == 0 {
				t.Error("no key was due: the scenario tests nothing")
			}
		})
	}
}

// raceMember owns the keys the organization race is about; kmslocal lets
// anyone assume its kms-rotator-member role (the default -roles).
const raceMember = "555566667777"

// memberObserver is an observer (see observer) acting in account through
// its kms-rotator-member role, as the function does.
func memberObserver(t *testing.T, env *harness.Env, account string) *kms.Client {
	t.Helper()
	cfg := env.KMS.Config(region)
	out, err := sts.NewFromConfig(cfg).AssumeRole(t.Context(), &sts.AssumeRoleInput{
		RoleArn: aws.String("arn:aws:iam::" + account + ":role/" + kmsemu.DefaultMemberRole), RoleSessionName: aws.String("faults-observer"),
	})
	if err != nil {
		t.Fatalf("assume the member role of %s: %v", account, err)
	}
	c := out.Credentials
	cfg.Credentials = credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))
	return oracle.Observer(cfg)
}

// TestSweepIncidentAndRetryRaceForOneRotationPerKey: in organization mode
// the schedule's sweep of a member account, an incident naming that
// account's due keys by ARN, and the state machine's retry of the same
// target start together in three execution environments. Each due key gets
// exactly one RotateKeyOnDemand between them; the runs that lose a key find
// the winner's claim (recently-rotated), its listed rotation (not-due, or
// inside the incident cooldown) — and the function's own account is not
// touched.
func TestSweepIncidentAndRetryRaceForOneRotationPerKey(t *testing.T) {
	const due = 4
	optedIn := map[string]string{"kms-rotator": "enabled"}
	fleet, err := json.Marshal([]kmsemu.FleetKey{
		{Alias: "alias/own-due", CreatedDaysAgo: days(200), Tags: optedIn},
		{Account: raceMember, Alias: "alias/due", Count: due, CreatedDaysAgo: days(200), Tags: optedIn},
		{Account: raceMember, Alias: "alias/fresh", Count: 2, CreatedDaysAgo: days(5), Tags: optedIn},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range kmsModels {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			// 10 s of Lambda time keep the sweeps' start jitter (1 % of it)
			// short, so they meet the incident at the keys; a call's
			// timeout and the confirm window still fit.
			env := modelEnv(t, m, string(fleet), harness.FunctionOptions{Timeout: 10 * time.Second,
				Env: scheduledEnv(orgBucketEnv(t, map[string]string{settings.EnvMemberRoleName: kmsemu.DefaultMemberRole,
					settings.EnvCallTimeout: "2s", settings.EnvConfirmWait: "1s"}))}, 3)
			obs, own := memberObserver(t, env, raceMember), oracle.Observer(env.KMS.Config(region))
			before, ownBefore := snapshot(t, obs), snapshot(t, own)
			var dueARNs []string
			for arn, k := range before {
				if strings.HasPrefix(k.Alias, "alias/due-") {
					dueARNs = append(dueARNs, arn)
				}
			}
			slices.Sort(dueARNs)
			if len(dueARNs) != due {
				t.Fatalf("%d due keys in %s, want %d", len(dueARNs), raceMember, due)
			}
			// The targets run the organization sweep starts with records the
			// member account; a request naming another is refused.
			if _, err := env.InvokeFree(t.Context(), []byte(`{"mode":"targets","orgTargets":["`+raceMember+`"],"orgRegions":["`+region+`"]}`)); err != nil {
				t.Fatalf("targets run: %v", err)
			}
			target := []byte(`{"mode":"scheduled","target":{"account":"` + raceMember + `","region":"` + region + `"}}`)
			incident, err := json.Marshal(map[string]any{"mode": "incident", "keys": dueARNs, "reason": "INC-77 member keys exposed", "wait": false})
			if err != nil {
				t.Fatal(err)
			}
			names := []string{"sweep", "incident", "retry"} // runs[0] and runs[2] are the target's
			payloads := [][]byte{target, incident, target}
			runs := make([]run, len(payloads))
			errs := make([]error, len(payloads))
			var ready sync.WaitGroup
			ready.Add(1)
			var wg sync.WaitGroup
			for i, p := range payloads {
				wg.Go(func() {
					ready.Wait()
					inv, err := env.InvokeFree(t.Context(), p)
					if err != nil {
						errs[i] = err
						return
					}
					runs[i], errs[i] = decodeRun(names[i], inv)
				})
			}
			ready.Done()
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("%s: %v", names[i], err)
				}
			}
			runs[1].want = dueARNs
			for _, r := range runs {
				for _, p := range oracle.CheckReport(r.judged.Raw) {
					t.Errorf("%s report: %s", r.name, p)
				}
			}
			// A delivery of the target's sweep that finds the other one
			// running may answer at once, rotating nothing, with repeatOf
			// naming the run that holds the target; the other run's
			// report is then the sweep's.
			for i, j := range map[int]int{0: 2, 2: 0} {
				if r := runs[i].report; r.RepeatOf != "" {
					if r.RepeatOf != runs[j].report.RunID || r.Summary.Rotated != 0 || len(r.Keys) != 0 {
						t.Errorf("%s: repeatOf %q, %s; a duplicate of the target's sweep must name %s and rotate nothing",
							runs[i].name, r.RepeatOf, harness.SummaryLine(runs[i].judged), runs[j].report.RunID)
					}
					t.Logf("%s answered as a duplicate of %s", runs[i].name, runs[j].name)
				}
			}
			runs = slices.DeleteFunc(runs, func(r run) bool { return r.report.RepeatOf != "" })

			if n := rotateCallCount(t, env); n != due {
				t.Errorf("%d RotateKeyOnDemand calls between the three runs, want %d (one per due key)", n, due)
			}
			for _, arn := range dueARNs {
				var rotatedBy []string
				for _, r := range runs {
					for _, k := range r.report.Keys {
						if k.KeyARN != arn {
							continue
						}
						switch {
						case k.Outcome == rotator.Rotated:
							rotatedBy = append(rotatedBy, r.name)
						case k.Outcome == rotator.Skipped && k.Reason == rotator.ReasonRecentlyRotated:
						case k.Outcome == rotator.Skipped && k.Reason == rotator.ReasonNotDue && r.report.Mode != "incident":
						default:
							t.Errorf("%s: %s %s/%s (error %q): a run that lost the key must find the other's claim or rotation",
								r.name, before[arn].Alias, k.Outcome, k.Reason, k.Error)
						}
					}
				}
				if len(rotatedBy) != 1 {
					t.Errorf("%s reported rotated by %v, want exactly one run", before[arn].Alias, rotatedBy)
				}
			}
			settleHistory(m)
			checkRuns(t, before, snapshot(t, obs), runs, nil, true)
			for arn, k := range snapshot(t, own) {
				if k.Started() != ownBefore[arn].Started() {
					t.Errorf("%s of the function's own account was rotated by runs for %s", k.Alias, raceMember)
				}
			}
			for _, r := range runs {
				t.Logf("%s outcomes:\n%s", r.name, outcomes(r.report, before))
			}
		})
	}
}

// decodeRun is invoke's second half, for an invocation made through
// Env.InvokeFree: the report, its EMF lines and its key lines.
func decodeRun(name string, inv *harness.Invocation) (run, error) {
	emf, err := inv.EMF()
	if err != nil {
		return run{}, err
	}
	return newRun(fmt.Sprintf("%s (%s)", name, inv.Function.Name), nil, inv.Raw, emf, inv.Logs)
}

// orgBucketEnv adds the organization bucket (in moto's S3), which the
// targets run the organization sweep starts with writes to, to env.
func orgBucketEnv(t *testing.T, env map[string]string) map[string]string {
	t.Helper()
	const bucket = "kms-rotator-faults-org"
	maps.Copy(env, moto.BucketTB(t, bucket).Env())
	env[settings.EnvOrgBucket] = bucket
	return env
}
