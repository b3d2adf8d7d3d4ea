// Command demo is `make demo`: it builds the host-arch bootstrap, starts the
// local KMS emulator seeded with events/fleet.json, dynalite with the
// rotation ledger's table, and the function under the AWS Lambda Runtime
// Interface Emulator (all on 127.0.0.1 only), invokes the sample payloads
// through the runtime emulator's invoke URL, prints each report as a table
// and the result event the run published on EventBridge (recorded by the
// emulator), then how many claims the ledger holds, and stops everything —
// also on Ctrl-C. No AWS account is needed; Go, and the Node 22 and
// dynalite that `npm ci` installs into node_modules (make demo runs it).
//
// Usage:
//
//	go run ./tools/demo [-fleet events/fleet.json] [-events a.json,b.json]
//	    [-env ROTATOR_NAME=value]... [-timeout 60s] [-keep] [-v]
//
// -env and -timeout rehearse a deployment's settings: any ROTATOR_*
// variable the function reads (a misspelt name is refused with the closest
// known one, a bad value as the function would refuse it) and the function
// timeout (AWS_LAMBDA_FUNCTION_TIMEOUT). The warnings kmslocal prints while
// loading the fleet (an unknown field, a value it corrected) are printed
// before the first invocation.
//
// It exits 1 with a message naming the step when anything fails: a build,
// a process that does not start, an invocation that answers a handler error,
// a report that breaks docs/design.md "The report" (a summary that does not add
// up, an unknown reason), a report the emulator, the metrics or the ledger
// disagree with, or a result event that does not match its report (the
// checks of tools/oracle).
// An incident run without a result event only says so: the event is the
// function's to publish.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kms-rotator/kms-rotator/lambda/request"
	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/harness"
	"github.com/kms-rotator/kms-rotator/tools/moto"
	"github.com/kms-rotator/kms-rotator/tools/oracle"
)

// defaultEvents is the docs/design.md "Build and run" sequence: what a dry run
// would do, the sweep itself, then an incident.
const defaultEvents = "events/plan.json,events/scheduled.json,events/incident.json"

func main() {
	// run handles SIGINT/SIGTERM itself (and exits 130); the harness
	// only stops the processes. Set here, not in run, so tests of run
	// keep the harness's default.
	harness.CallerHandlesSignals()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	fleet    string
	events   []string
	keep     bool
	verbose  bool
	emuFlags []string
	// env are the function's ROTATOR_* variables from -env; timeout is
	// its timeout (0: the harness's 60s).
	env     map[string]string
	timeout time.Duration
	// config is what the function makes of env.
	config settings.Config
}

// maxTimeout is Lambda's largest function timeout (900 seconds,
// https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html).
const maxTimeout = 15 * time.Minute

// rotatorVariables are the names of every ROTATOR_* variable the function
// reads: the settings package's Env* names, as the stack sets them.
func rotatorVariables() []string {
	var names []string
	for name := range settings.Environment(settings.DefaultConfig()) {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// envFlag collects repeated -env NAME=value flags.
type envFlag map[string]string

func (e envFlag) String() string {
	var kv []string
	for k, v := range e {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, " ")
}

func (e envFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("%q is not NAME=value (e.g. %s=30)", s, settings.EnvIntervalDays)
	}
	known := rotatorVariables()
	for _, k := range known {
		if k == name {
			if prev, dup := e[name]; dup && prev != value {
				return fmt.Errorf("%s given twice (%q and %q)", name, prev, value)
			}
			e[name] = value
			return nil
		}
	}
	if hint := didYouMean(name, known); hint != "" {
		return fmt.Errorf("%s is not a variable the function reads; did you mean %s?", name, hint)
	}
	return fmt.Errorf("%s is not a variable the function reads; it reads %s", name, strings.Join(known, ", "))
}

// didYouMean returns the known name closest to name (case, - for _ and a
// missing ROTATOR_ prefix forgiven), or "" when none is close.
func didYouMean(name string, known []string) string {
	n := strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(name), "-", "_"))
	if !strings.HasPrefix(n, "ROTATOR_") {
		n = "ROTATOR_" + n
	}
	best, bestDist := "", 0
	for _, k := range known {
		if d := request.EditDistance(n, k); best == "" || d < bestDist {
			best, bestDist = k, d
		}
	}
	// A third of the name may differ: ROTATOR_INTERVAL_DAY, ROTATOR_DRYRUN
	// and INTERVAL_DAYS find theirs; ROTATOR_COLOUR finds nothing.
	if best == "" || bestDist > (len(best)-len("ROTATOR_"))/3+1 {
		return ""
	}
	return best
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := options{env: map[string]string{}}
	var events, emuFlags string
	fs.StringVar(&o.fleet, "fleet", "events/fleet.json", "fleet file seeding the KMS emulator")
	fs.StringVar(&events, "events", defaultEvents, "comma-separated payload files to invoke, in order")
	fs.BoolVar(&o.keep, "keep", false, "leave kmslocal and the function running and print how to reach them (Ctrl-C stops them)")
	fs.BoolVar(&o.verbose, "v", false, "stream the emulator's and the function's output")
	fs.StringVar(&emuFlags, "emu-flags", "", `extra kmslocal flags, e.g. "-rotation-delay=0 -latency=20ms"`)
	fs.Var(envFlag(o.env), "env", "`NAME=value` of a ROTATOR_* variable for the function, e.g. "+settings.EnvIntervalDays+"=30; repeat for more")
	fs.DurationVar(&o.timeout, "timeout", 0, "the function timeout (AWS_LAMBDA_FUNCTION_TIMEOUT), whole seconds up to 15m; 0 = 60s")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.timeout != 0 && (o.timeout < time.Second || o.timeout > maxTimeout || o.timeout%time.Second != 0) {
		return o, fmt.Errorf("-timeout %v: a Lambda timeout is whole seconds from 1s to %v", o.timeout, maxTimeout)
	}
	// The function refuses a bad value at its cold start; say so now,
	// before anything is built. The demo sets the ledger's table itself
	// unless -env names one.
	var err error
	if o.config, err = settings.LoadConfig(func(name string) string {
		if v, ok := o.env[name]; ok || name != settings.EnvLedgerTable {
			return v
		}
		return harness.LedgerTable
	}); err != nil {
		return o, fmt.Errorf("-env: %w", err)
	}
	for _, e := range strings.Split(events, ",") {
		if e = strings.TrimSpace(e); e != "" {
			o.events = append(o.events, e)
		}
	}
	if len(o.events) == 0 && !o.keep {
		return o, errors.New("-events: no payload files")
	}
	o.emuFlags = strings.Fields(emuFlags)
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "demo:", err)
		return 2
	}
	// Ctrl-C ends the demo early (and ends -keep). The harness stops every
	// process it started on the same signal (they live in their own
	// process groups, out of reach of the terminal's Ctrl-C); the demo
	// then reports and exits itself.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = demo(ctx, o, stdout)
	switch {
	case o.keep && err == nil:
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "demo: interrupted; stopped every process it started")
		return 130
	case err != nil:
		fmt.Fprintln(stderr, "demo: FAILED:", err)
		return 1
	}
	return 0
}

// evidenceBucket is the demo's evidence bucket (ROTATOR_EVIDENCE_BUCKET).
const evidenceBucket = "kms-rotator-evidence"

func demo(ctx context.Context, o options, out io.Writer) error {
	begin := time.Now()
	root, err := harness.FindRoot("")
	if err != nil {
		return fmt.Errorf("find the repository: %w", err)
	}
	payloads := make([][]byte, len(o.events))
	for i, e := range o.events {
		if payloads[i], err = os.ReadFile(resolve(root, e)); err != nil {
			return fmt.Errorf("read payload: %w", err)
		}
	}
	fleet := resolve(root, o.fleet)
	if _, err := os.Stat(fleet); err != nil {
		return fmt.Errorf("fleet: %w", err)
	}

	fmt.Fprintf(out, "building bootstrap (host arch, -tags lambda.norpc), kmslocal and aws-lambda-rie … ")
	bins, err := harness.Build(ctx, harness.BuildOptions{Root: root})
	if err != nil {
		fmt.Fprintln(out)
		return fmt.Errorf("build: %w", err)
	}
	buildTime := time.Since(begin)
	fmt.Fprintf(out, "%v\n", buildTime.Round(10*time.Millisecond))

	var logw io.Writer
	if o.verbose {
		logw = &prefixWriter{w: os.Stderr}
	}
	startBegin := time.Now()
	// Each run's evidence record goes to an S3 bucket of moto's server (a
	// third party's S3 on 127.0.0.1), as the stack's evidence bucket.
	s3srv, err := moto.Start(ctx)
	if err != nil {
		return fmt.Errorf("start moto's S3: %w", err)
	}
	defer s3srv.Close()
	if _, err := s3srv.S3().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(evidenceBucket)}); err != nil {
		return fmt.Errorf("create the evidence bucket: %w", err)
	}
	fnEnv := map[string]string{settings.EnvEvidenceBucket: evidenceBucket, "AWS_ENDPOINT_URL_S3": s3srv.URL}
	maps.Copy(fnEnv, o.env)
	env, err := harness.Start(ctx, harness.Options{
		Binaries: bins,
		KMSLocal: harness.KMSLocalOptions{Fleet: fleet, Args: o.emuFlags, Log: logw},
		Function: harness.FunctionOptions{Name: "kms-rotator", Log: logw, Env: fnEnv, Timeout: o.timeout},
		// A rehearsed ROTATOR_LEDGER_TABLE is the table the demo makes.
		LedgerTable: o.env[settings.EnvLedgerTable],
	})
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer env.Close()
	startTime := time.Since(startBegin)
	fmt.Fprintf(out, "started kmslocal %s (fleet %s) and the function at http://%s in %v\n",
		env.KMS.URL, rel(root, fleet), env.Function.Addr, startTime.Round(time.Millisecond))
	fmt.Fprintf(out, "ledger: table %s in dynalite %s\n", env.LedgerTable, env.Ledger.URL)
	fmt.Fprintf(out, "evidence: bucket %s in moto's S3 %s\n", fnEnv[settings.EnvEvidenceBucket], s3srv.URL)
	writeSettings(out, o)
	if err := writeFleetWarnings(ctx, out, env.KMS.Proc.Stderr); err != nil {
		return err
	}

	// Each run is judged from outside by the report oracle, against the
	// emulator's keys (in the Regions the fleet uses) and the ledger's
	// claims before and after it.
	contract := demoContract(o)
	regions, err := fleetRegions(fleet, env.KMS.Region)
	if err != nil {
		return err
	}
	var clients []*kms.Client
	for _, region := range regions {
		clients = append(clients, env.KMS.KMS(region))
	}
	state := func() (oracle.Snapshot, oracle.Claims, error) {
		s, err := oracle.Read(ctx, clients...)
		if err != nil {
			return nil, nil, fmt.Errorf("read the emulator's keys: %w", err)
		}
		c, err := oracle.ReadClaims(ctx, env.Ledger.Client(ctx), env.LedgerTable)
		if err != nil {
			return nil, nil, fmt.Errorf("read the ledger: %w", err)
		}
		return s, c, nil
	}
	before, claimsBefore, err := state()
	if err != nil {
		return err
	}

	var failures []string
	seen := 0 // events of earlier invocations
	for i, name := range o.events {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fmt.Fprintf(out, "\n=== %s\n", rel(root, resolve(root, name)))
		r, inv, err := env.Function.InvokeReport(ctx, payloads[i])
		if ctx.Err() != nil {
			return ctx.Err()
		}
		evs, evErr := env.KMS.Events(ctx)
		if evErr != nil {
			return fmt.Errorf("read the events kmslocal recorded: %w", evErr)
		}
		fresh := evs[min(seen, len(evs)):]
		seen = len(evs)
		after, claimsAfter, stateErr := state()
		if stateErr != nil {
			return stateErr
		}
		if err != nil {
			fmt.Fprintf(out, "    %v\n", err)
			failures = append(failures, fmt.Sprintf("%s: %v", name, err))
			before, claimsBefore = after, claimsAfter
			continue
		}
		if err := harness.WriteTable(out, r); err != nil {
			return err
		}
		fmt.Fprintf(out, "(invoke %v, request %s)\n", inv.Duration.Round(time.Millisecond), inv.RequestID)
		switch ev := r.Evidence; {
		case ev == nil:
			failures = append(failures, name+": no evidence record")
		case ev.Error != "":
			fmt.Fprintf(out, "evidence: not written: %s\n", ev.Error)
			failures = append(failures, name+": evidence: "+ev.Error)
		default:
			fmt.Fprintf(out, "evidence: s3://%s/%s\n", ev.Bucket, ev.Key)
		}
		for _, p := range judge(contract, r, inv, before, after, claimsAfter.Since(claimsBefore)) {
			failures = append(failures, fmt.Sprintf("%s: %s", name, p))
		}
		if problems := writeResultEvents(out, fresh, r, inv.RequestID, requestReason(payloads[i])); len(problems) > 0 {
			failures = append(failures, fmt.Sprintf("%s: result event: %s", name, strings.Join(problems, "; ")))
		}
		before, claimsBefore = after, claimsAfter
	}

	// One claim per RotateKeyOnDemand the function was about to send.
	claims, err := env.Ledger.CountClaims(ctx, env.LedgerTable)
	if err != nil {
		return fmt.Errorf("read the ledger: %w", err)
	}
	fmt.Fprintf(out, "\nledger: %d claim(s) in table %s\n", claims, env.LedgerTable)

	fmt.Fprintf(out, "\ndemo: %d invocation(s), %d failed, in %v (build %v, start %v)\n",
		len(o.events), len(failures), time.Since(begin).Round(10*time.Millisecond),
		buildTime.Round(10*time.Millisecond), startTime.Round(time.Millisecond))
	if o.keep {
		printEndpoints(out, root, env)
		<-ctx.Done()
	}
	if len(failures) > 0 {
		return errors.New(strings.Join(failures, "; "))
	}
	return nil
}

// writeSettings prints the function's timeout and the ROTATOR_* variables
// set with -env (every other one takes its default).
func writeSettings(out io.Writer, o options) {
	timeout := "60s (default)"
	if o.timeout > 0 {
		timeout = o.timeout.String()
	}
	vars := "none set, all defaults"
	if len(o.env) > 0 {
		vars = envFlag(o.env).String()
	}
	fmt.Fprintf(out, "function: timeout %s; ROTATOR_* variables: %s\n", timeout, vars)
}

// fleetWarning starts each warning kmslocal prints while loading a fleet
// (kmsemu's LoadFleet: an unknown field, a value it had to correct).
const fleetWarning = "kmslocal: warning: "

// writeFleetWarnings prints the warnings kmslocal wrote while loading the
// fleet, which precede its "listening on" line on its stderr: the demo
// must not hide that a fleet entry was read differently from what it says.
func writeFleetWarnings(ctx context.Context, out io.Writer, stderr *harness.Output) error {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if !stderr.WaitContains(wctx, "listening on") {
		return fmt.Errorf("kmslocal never logged \"listening on\":\n%s", stderr.String())
	}
	n := 0
	for _, l := range stderr.Lines() {
		if strings.HasPrefix(l, "kmslocal: listening on") {
			break
		}
		if strings.HasPrefix(l, fleetWarning) {
			fmt.Fprintln(out, l)
			n++
		}
	}
	if n > 0 {
		fmt.Fprintf(out, "(%d fleet warning(s): kmslocal loaded the fleet, reading those entries as the warnings say)\n", n)
	}
	return nil
}

func printEndpoints(out io.Writer, root string, env *harness.Env) {
	k, f := env.KMS, env.Function
	fmt.Fprintf(out, `
Left running (Ctrl-C stops everything). In another shell, from %s:

  export AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_REGION=%s AWS_DEFAULT_REGION=%s
  aws kms list-aliases --endpoint-url %s
  aws kms list-key-rotations --endpoint-url %s --key-id 1234abcd-12ab-34cd-56ef-1234567890ab
  aws lambda invoke --endpoint-url http://%s --function-name function \
      --cli-binary-format raw-in-base64-out --payload file://events/incident.json out.json && cat out.json
  curl -s -d @events/plan.json %s
  curl -s %s/_kmslocal/events    # the result events the function published
  aws dynamodb scan --endpoint-url %s --table-name %s    # the ledger's claims

(--cli-binary-format is for AWS CLI v2; leave it out with v1.)
`, root, harness.AccessKeyID, harness.SecretAccessKey, k.Region, k.Region, k.URL, k.URL, f.Addr, f.URL, k.URL, env.Ledger.URL, env.LedgerTable)
}

// judge returns what the report oracle finds wrong with one run: its
// report against docs/design.md "The report", against the emulator's keys
// and the ledger's claims (new ones) before and after it, and its metrics.
// A repeat (repeatOf) answers an earlier run's report and emits no metrics.
func judge(c oracle.Contract, r *oracle.Report, inv *harness.Invocation, before, after oracle.Snapshot, claims oracle.Claims) []string {
	var problems []string
	add := func(what string, ps []string) {
		if len(ps) > 0 {
			problems = append(problems, what+": "+strings.Join(ps, "; "))
		}
	}
	add("report", c.CheckReport(inv.Raw))
	add("emulator", oracle.CheckRotations(before, after, r))
	add("key material", oracle.CheckMaterial(before, after, r))
	add("ledger", oracle.CheckClaims(claims, before, after, r))
	if r.RepeatOf == "" {
		recs, err := inv.EMF()
		if err != nil {
			add("metrics", []string{err.Error()})
		}
		add("metrics", c.CheckMetrics(recs, r))
	}
	return problems
}

// demoContract is the report contract with the function's settings as
// -env sets them (the reserve, the metrics namespace).
func demoContract(o options) oracle.Contract {
	c := oracle.Documented
	c.Reserve, c.Namespace = o.config.Reserve, o.config.MetricsNamespace
	return c
}

// fleetRegions lists the Regions a fleet file places keys in, home (the
// emulator's default Region) first.
func fleetRegions(path, home string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	var entries []struct {
		Region string `json:"region"`
	}
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf("fleet %s: %w", path, err)
	}
	regions := []string{home}
	for _, e := range entries {
		if e.Region != "" && !slices.Contains(regions, e.Region) {
			regions = append(regions, e.Region)
		}
	}
	return regions, nil
}

// requestReason is the incident reason a payload gives (a request
// object's, or an EventBridge event's detail's): what the result event
// must carry. Other modes carry none.
func requestReason(payload []byte) string {
	type req struct {
		Mode   string `json:"mode"`
		Reason string `json:"reason"`
	}
	var p struct {
		req
		Detail *req `json:"detail"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return ""
	}
	if p.Detail != nil {
		p.req = *p.Detail
	}
	if p.Mode != oracle.ModeIncident {
		return ""
	}
	return p.Reason
}

// writeResultEvents prints the result events (docs/design.md "The result
// event") among evs, the events the emulator recorded during one
// invocation whose report is r, and returns how the report oracle finds
// them to disagree with r, the invocation's request ID and the incident's
// reason. An incident run that published none gets a line saying so;
// other runs publish one only when keys failed.
func writeResultEvents(out io.Writer, evs []harness.Event, r *oracle.Report, requestID, reason string) []string {
	var problems []string
	n := 0
	for _, ev := range evs {
		if ev.DetailType != oracle.ResultEventDetailType {
			continue
		}
		n++
		fmt.Fprintf(out, "result event: source %s, detail-type %q, bus %s (%s, account %s), %s\n",
			ev.Source, ev.DetailType, ev.EventBusName, ev.Region, ev.Account, ev.Time.UTC().Format(time.RFC3339))
		problems = append(problems, oracle.CheckResultEvent(ev.Source, ev.DetailType, ev.Detail, r, requestID, reason)...)
		var d oracle.ResultDetail
		if err := json.Unmarshal([]byte(ev.Detail), &d); err != nil {
			problems = append(problems, fmt.Sprintf("detail: %v", err))
			continue
		}
		// SummaryLine renders a report; the detail carries the report's
		// mode, dry-run flag and summary.
		line := "  " + harness.SummaryLine(&oracle.Report{Mode: d.Mode, DryRun: d.DryRun, Summary: d.Summary}) +
			fmt.Sprintf("; %d key entries", len(d.Keys))
		if d.Truncated {
			line += " (truncated)"
		}
		if d.Reason != "" {
			line += fmt.Sprintf("; reason %q", d.Reason)
		}
		fmt.Fprintf(out, "%s; run %s, request %s\n", line, d.RunID, dash(d.RequestID))
	}
	if n == 0 && r.Mode == oracle.ModeIncident {
		fmt.Fprintln(out, "no result event (the function published none for this incident run)")
	}
	return problems
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// resolve makes a path given on the command line absolute: as given when it
// exists relative to the working directory, otherwise relative to the
// repository root (so the defaults work from any directory).
func resolve(root, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	if _, err := os.Stat(p); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	return filepath.Join(root, p)
}

func rel(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

// prefixWriter marks streamed process output so it stands apart from the
// tables. Several processes write to it; it prefixes each line once even
// when a line arrives in several writes.
type prefixWriter struct {
	mu        sync.Mutex
	w         io.Writer
	midOfLine bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if l == "" {
			continue
		}
		if !p.midOfLine {
			l = "  | " + l
		}
		if _, err := io.WriteString(p.w, l); err != nil {
			return 0, err
		}
		p.midOfLine = !strings.HasSuffix(l, "\n")
	}
	return len(b), nil
}
