// Command bench is the scale benchmark of kms-rotator (`make bench`). For
// fleets of 1,000, 10,000 and 100,000 (KMS's per-Region maximum) opted-in
// keys it runs one scheduled sweep of the engine against the KMS emulator
// with scaled KMS request quotas,
// latency and instant rotations, and compares the wall time with the floor
// the quotas allow, max(due / RotateKeyOnDemand rate, keys /
// ListKeyRotations rate). It also runs a naive sweep (ListKeys, then four
// calls per key, one key at a time) on a fresh copy of the same fleet,
// measures the function's cold-start init and the size of the deployable
// bootstrap, and ends with one JSON line holding every figure.
//
// The sweep runs in a child process (the binary re-executes itself with
// -sweep) so its peak RSS is the engine's, not the emulator's.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kms-rotator/kms-rotator/lambda/settings"
	"github.com/kms-rotator/kms-rotator/tools/dynalite"
	"github.com/kms-rotator/kms-rotator/tools/kmsemu"
)

// ledgerTable names the rotation ledger's table of each sweep: every
// fleet's sweep, and the organization's, runs against a fresh dynalite.
const ledgerTable = "kms-rotator-bench-ledger"

// The identity of local runs (docs/design.md "Configuration"): account and Region the Lambda
// Runtime Interface Emulator reports.
const (
	benchAccount = "012345678912"
	benchRegion  = "us-east-1"
)

// KMS's default request quotas the floor is computed from, per second
// (https://docs.aws.amazon.com/kms/latest/developerguide/requests-per-second.html).
const (
	quotaRotateKeyOnDemand = 5
	quotaListKeyRotations  = 100
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	sizes          []int
	quotaScale     float64
	latency        time.Duration
	baselineSample int
	initRuns       int
	skipBuild      bool
	dueFraction    float64
	cpuProfile     string
	memProfile     string
	sweepLog       string
	// orgTargets member accounts of orgKeys keys each, swept side by side
	// (0 = no organization figure).
	orgTargets, orgKeys int
	// resolveAccounts: the accounts of the organization targets figure
	// (0 = none).
	resolveAccounts int
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var (
		sweep    = fs.Bool("sweep", false, "internal: run one sweep as the child process")
		out      = fs.String("out", "", "internal: where the -sweep child writes its result")
		sizes    = fs.String("sizes", "1000,10000,100000", "comma-separated fleet sizes (opted-in keys)")
		scale    = fs.Float64("quota-scale", 10, "emulator request quotas as a multiple of KMS's defaults")
		latency  = fs.Duration("latency", 5*time.Millisecond, "emulator latency added to every response")
		sample   = fs.Int("baseline-sample", 1200, "keys the naive baseline walks; larger fleets are extrapolated from this sample")
		initRuns = fs.Int("init-runs", 15, "cold starts to time")
		noBuild  = fs.Bool("skip-build", false, "skip the bootstrap size and init measurements")
		cpuProf  = fs.String("cpuprofile", "", "write the sweep child's CPU profile to `file` (go tool pprof)")
		memProf  = fs.String("memprofile", "", "write the sweep child's allocation profile to `file` after its run (go tool pprof)")
		sweepLog = fs.String("sweep-log", "", "write the sweep child's log and EMF lines to `file` instead of discarding them")
		due      = fs.Float64("due-fraction", 0.10, "fraction of the opted-in keys that are due")
		target   = fs.String("target", "", "internal: the member account the -sweep child works in")
		orgN     = fs.Int("org-targets", 4, "member accounts of the organization figure, swept side by side (0 = none)")
		orgKeys  = fs.Int("org-keys", 5000, "opted-in keys in each member account of the organization figure")
		resolveN = fs.Int("resolve-accounts", 10000, "accounts of the organization targets figure (one targets run written to S3; 0 = none)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *sweep {
		return runSweep(*out, *cpuProf, *memProf, *target)
	}
	o := options{quotaScale: *scale, latency: *latency, baselineSample: *sample, initRuns: *initRuns, skipBuild: *noBuild, dueFraction: *due, cpuProfile: *cpuProf, memProfile: *memProf, sweepLog: *sweepLog,
		orgTargets: *orgN, orgKeys: *orgKeys, resolveAccounts: *resolveN}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 20 {
			return fmt.Errorf("-sizes: %q is not a fleet size of at least 20", s)
		}
		o.sizes = append(o.sizes, n)
	}
	if o.dueFraction < 0 || o.dueFraction > 0.9 {
		return errors.New("-due-fraction must be between 0 and 0.9")
	}
	if o.quotaScale <= 0 {
		return errors.New("-quota-scale must be positive: the floor is defined by the quotas")
	}
	return bench(context.Background(), o, stdout)
}

// fleetResult is one fleet's line in the final JSON object.
type fleetResult struct {
	Keys              int                `json:"keys"`
	Due               int                `json:"due"`
	Ineligible        int                `json:"ineligible"`
	NotOptedIn        int                `json:"notOptedIn"`
	FloorSeconds      float64            `json:"floorSeconds"`
	WallSeconds       float64            `json:"wallSeconds"`
	Ratio             float64            `json:"ratio"`
	CallsPerKey       map[string]float64 `json:"callsPerKey"`
	CallsPerDueKey    float64            `json:"callsPerDueKey"`
	CallsPerNotDueKey float64            `json:"callsPerNotDueKey"`
	Calls             int64              `json:"calls"`
	CallTarget        int64              `json:"callTarget"`
	Throttled         int64              `json:"throttled"`
	Rotated           int                `json:"rotated"`
	Failed            int                `json:"failed"`
	Deferred          int                `json:"deferred"`
	PeakRSSMB         float64            `json:"peakRSSMB"`
	// LedgerCalls are the sweep's DynamoDB requests (claims, settles);
	// LedgerBusySeconds the wall time during which at least one was in
	// flight; LedgerRatioBound = LedgerBusySeconds / FloorSeconds, the
	// most the ledger can add to Ratio (all of that time on the critical
	// path). Claims is the claim records the table holds afterwards.
	LedgerCalls         int64   `json:"ledgerCalls"`
	LedgerBusySeconds   float64 `json:"ledgerBusySeconds"`
	LedgerRatioBound    float64 `json:"ledgerRatioBound"`
	Claims              int     `json:"claims"`
	BaselineWallSeconds float64 `json:"baselineWallSeconds"`
	BaselineSampled     bool    `json:"baselineSampled"`
	BaselineCheckedKeys int     `json:"baselineCheckedKeys"`
	Speedup             float64 `json:"speedup"`
}

// summary is the final JSON line.
type summary struct {
	Fleets      map[string]fleetResult `json:"fleets"`
	InitMs      float64                `json:"initMs,omitempty"`
	InitMsMin   float64                `json:"initMsMin,omitempty"`
	InitMsMax   float64                `json:"initMsMax,omitempty"`
	BootstrapMB float64                `json:"bootstrapMB,omitempty"`
	Settings    map[string]any         `json:"settings"`
	Org         *orgResult             `json:"org,omitempty"`
	Resolve     *resolveResult         `json:"resolve,omitempty"`
}

func bench(ctx context.Context, o options, w io.Writer) error {
	rotateRate := quotaRotateKeyOnDemand * o.quotaScale
	listRate := quotaListKeyRotations * o.quotaScale
	// The sweeps' settings, as the children will read them (the ledger's
	// table is the bench's own).
	cfg, err := settings.LoadConfig(func(k string) string {
		if k == settings.EnvLedgerTable {
			return ledgerTable
		}
		return os.Getenv(k)
	})
	if err != nil {
		return err
	}
	cfg.RotateRPS = rotateRate
	fmt.Fprintf(w, "kms-rotator bench: emulator -quota-scale %g -latency %s -rotation-delay 0s; ROTATOR_ROTATE_RPS=%g, ROTATOR_CONCURRENCY=%d\n",
		o.quotaScale, o.latency, rotateRate, cfg.Concurrency)
	fmt.Fprintf(w, "scaled quotas: RotateKeyOnDemand %g/s, ListKeyRotations %g/s; floor = max(due / %g, keys / %g)\n",
		rotateRate, listRate, rotateRate, listRate)
	sum := summary{Fleets: map[string]fleetResult{}, Settings: map[string]any{
		"quotaScale": o.quotaScale, "latencyMs": float64(o.latency) / float64(time.Millisecond),
		"rotateRPS": rotateRate, "concurrency": cfg.Concurrency, "goMaxProcs": runtime.GOMAXPROCS(0),
	}}
	tmp, err := os.MkdirTemp("", "kms-rotator-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	for _, n := range o.sizes {
		shape := shapeOf(n, o.dueFraction)
		fmt.Fprintf(w, "\n== fleet: %d opted-in keys (%d due, %d ineligible, %d not due) + %d not opted in\n",
			shape.OptedIn, shape.Due, shape.Ineligible, shape.NotDue, shape.NotOptedIn)
		fr, err := benchFleet(ctx, o, cfg, shape, tmp, w)
		if err != nil {
			return fmt.Errorf("fleet %d: %w", n, err)
		}
		sum.Fleets[strconv.Itoa(n)] = fr
	}

	if o.orgTargets > 0 {
		or, err := benchOrg(ctx, o, tmp, w)
		if err != nil {
			return fmt.Errorf("organization: %w", err)
		}
		sum.Org = &or
	}
	if o.resolveAccounts > 0 {
		rr, err := benchResolve(ctx, o, w)
		if err != nil {
			return fmt.Errorf("organization targets: %w", err)
		}
		sum.Resolve = &rr
	}

	if !o.skipBuild {
		root, err := moduleRoot()
		if err != nil {
			return err
		}
		fmt.Fprintln(w, "\n== function")
		arm, err := buildBootstrap(ctx, root, tmp, "arm64", true)
		if err != nil {
			return err
		}
		st, err := os.Stat(arm)
		if err != nil {
			return err
		}
		sum.BootstrapMB = round(float64(st.Size())/(1<<20), 2)
		fmt.Fprintf(w, "bootstrap (make build: linux/arm64, static, -s -w, lambda.norpc): %.2f MB (target <= 15 MB)\n", sum.BootstrapMB)
		host, err := buildBootstrap(ctx, root, tmp, runtime.GOARCH, false)
		if err != nil {
			return err
		}
		inits, err := measureInit(ctx, host, o.initRuns)
		if err != nil {
			return err
		}
		sum.InitMs = round(ms(inits[len(inits)/2]), 1)
		sum.InitMsMin = round(ms(inits[0]), 1)
		sum.InitMsMax = round(ms(inits[len(inits)-1]), 1)
		fmt.Fprintf(w, "init (exec to first Runtime API poll, %s build, %d cold starts): median %.1f ms, min %.1f ms, max %.1f ms (target <= 50 ms; a busy host inflates it)\n",
			runtime.GOARCH, len(inits), sum.InitMs, sum.InitMsMin, sum.InitMsMax)
	}

	b, err := json.Marshal(sum)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%s\n", b)
	return nil
}

// benchFleet runs the engine sweep (child process) and the baseline, each
// on its own fresh emulator seeded with the same fleet.
func benchFleet(ctx context.Context, o options, cfg settings.Config, shape fleetShape, tmp string, w io.Writer) (fleetResult, error) {
	fleet := fleetJSON(shape)
	fr := fleetResult{Keys: shape.OptedIn, Due: shape.Due, Ineligible: shape.Ineligible, NotOptedIn: shape.NotOptedIn}
	rotateRate := quotaRotateKeyOnDemand * o.quotaScale
	listRate := quotaListKeyRotations * o.quotaScale
	fr.FloorSeconds = round(math.Max(float64(shape.Due)/rotateRate, float64(shape.OptedIn)/listRate), 3)

	emu, err := startEmulator(o, fleet)
	if err != nil {
		return fr, err
	}
	ldb, err := startLedger(ctx)
	if err != nil {
		emu.close()
		return fr, err
	}
	defer ldb.Close()
	emu.srv.ResetStats()
	res, rss, err := runChild(ctx, emu.url, ldb.URL, rotateRate, filepath.Join(tmp, "sweep.json"), "", o.cpuProfile, o.memProfile, o.sweepLog)
	stats := emu.srv.Stats()
	emu.close()
	if err != nil {
		return fr, err
	}
	if fr.Claims, err = ldb.CountClaims(ctx, ledgerTable); err != nil {
		return fr, err
	}
	fr.LedgerCalls, fr.LedgerBusySeconds = res.LedgerCalls, round(res.LedgerBusySeconds, 3)
	fr.LedgerRatioBound = round(res.LedgerBusySeconds/fr.FloorSeconds, 3)
	fr.WallSeconds = round(res.WallSeconds, 3)
	fr.Ratio = round(res.WallSeconds/fr.FloorSeconds, 3)
	fr.Rotated, fr.Failed, fr.Deferred = res.Summary.Rotated, res.Summary.Failed, res.Summary.Deferred
	fr.PeakRSSMB = round(rss, 1)
	fr.CallsPerKey = map[string]float64{}
	ops := make([]string, 0, len(stats.Operations))
	for op := range stats.Operations {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	for _, op := range ops {
		st := stats.Operations[op]
		fr.CallsPerKey[op] = round(float64(st.Calls)/float64(shape.OptedIn), 4)
		fr.Calls += st.Calls
		fr.Throttled += st.Throttled
	}
	fr.CallsPerKey["total"] = round(float64(fr.Calls)/float64(shape.OptedIn), 4)
	// The call target: 2 per not-due key, 4 per due key, 1
	// GetResources per 100 keys; ineligible keys stop after DescribeKey
	// (allowed 2 like a not-due key); one ListAliases page per 100 aliases
	// (docs/design.md). The team decided on a 5th call per due key (the
	// ListKeyRotations re-read guarding overlapping runs), shown apart.
	pages := int64((shape.OptedIn + 99) / 100)
	aliasPages := int64((shape.Total() + 99) / 100)
	fr.CallTarget = 2*int64(shape.NotDue+shape.Ineligible) + 4*int64(shape.Due) + pages + aliasPages
	fr.CallsPerDueKey, fr.CallsPerNotDueKey = perKind(stats, shape)

	fmt.Fprintf(w, "engine:   wall %.2fs, floor %.2fs, ratio %.3f (target <= 1.1 at 10,000 keys)\n", fr.WallSeconds, fr.FloorSeconds, fr.Ratio)
	fmt.Fprintf(w, "          rotated %d of %d due, failed %d, deferred %d, skipped %d %v\n",
		fr.Rotated, shape.Due, fr.Failed, fr.Deferred, res.Summary.Skipped, res.Summary.Reasons)
	fmt.Fprintf(w, "ledger:   %d DynamoDB calls (%.2f per rotated key), %d claims; a call in flight %.2fs of the %.2fs wall: at most %.3f of the ratio %.3f\n",
		fr.LedgerCalls, float64(fr.LedgerCalls)/float64(max(fr.Rotated, 1)), fr.Claims, fr.LedgerBusySeconds, fr.WallSeconds, fr.LedgerRatioBound, fr.Ratio)
	fmt.Fprintf(w, "          sweep process CPU %.2fs (%.0f%% of one core over the wall time)\n", res.CPUSeconds, 100*res.CPUSeconds/res.WallSeconds)
	fmt.Fprintf(w, "          KMS calls %d (issue target <= %d at 4 per due key), throttled %d, peak RSS %.1f MB (sweep process)\n", fr.Calls, fr.CallTarget, fr.Throttled, fr.PeakRSSMB)
	fmt.Fprintf(w, "          per key: %.2f per due key (issue target 4; 5 by design: status + history re-read before rotating), %.2f per other key (target 2), +%.3f GetResources, +%.3f ListAliases\n",
		fr.CallsPerDueKey, fr.CallsPerNotDueKey, fr.CallsPerKey["GetResources"], fr.CallsPerKey["ListAliases"])
	for _, op := range ops {
		st := stats.Operations[op]
		fmt.Fprintf(w, "            %-22s %7d calls  %.3f/key  throttled %d\n", op, st.Calls, fr.CallsPerKey[op], st.Throttled)
	}

	// The baseline on a fresh copy of the same fleet (it rotates too).
	emu2, err := startEmulator(o, fleet)
	if err != nil {
		return fr, err
	}
	defer emu2.close()
	sample := o.baselineSample
	if sample >= shape.Total() {
		sample = 0
	}
	bl, err := runBaseline(ctx, kmsClient(emu2.url), cfg.TagKey, cfg.TagValue, cfg.IntervalDays, cfg.OnDemandLimit, cfg.Reserve, sample)
	if err != nil {
		return fr, err
	}
	fr.BaselineWallSeconds = round(bl.EstimatedSeconds, 2)
	fr.BaselineSampled = bl.Sampled
	fr.BaselineCheckedKeys = bl.Checked
	fr.Speedup = round(bl.EstimatedSeconds/res.WallSeconds, 1)
	if bl.Sampled {
		fmt.Fprintf(w, "baseline: SAMPLED: walked %d of %d keys in %.2fs (+ListKeys %.2fs); whole fleet EXTRAPOLATED to %.1fs\n",
			bl.Checked, bl.Keys, bl.WallSeconds-bl.ListSeconds, bl.ListSeconds, bl.EstimatedSeconds)
	} else {
		fmt.Fprintf(w, "baseline: walked all %d keys one at a time in %.2fs, rotated %d\n", bl.Keys, bl.WallSeconds, bl.Rotated)
	}
	fmt.Fprintf(w, "speed-up: %.1fx over the baseline (target >= 10x)\n", fr.Speedup)
	return fr, nil
}

// emulator is an in-process kmsemu server on a loopback port.
type emulator struct {
	srv   *kmsemu.Server
	url   string
	close func()
}

func startEmulator(o options, fleet []byte) (*emulator, error) {
	srv := kmsemu.New(kmsemu.Options{
		Account: benchAccount, Region: benchRegion, RotationDelay: 0,
		Latency: o.latency, QuotaScale: o.quotaScale, Seed: 1, Log: io.Discard,
	})
	if err := srv.LoadFleet(bytes.NewReader(fleet)); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	return &emulator{srv: srv, url: "http://" + ln.Addr().String(), close: func() { _ = hs.Close() }}, nil
}

// startLedger runs a fresh dynalite with the ledger's table, from the
// repository's node_modules (npm ci; make bench runs it).
func startLedger(ctx context.Context) (*dynalite.Server, error) {
	s, err := dynalite.Start(ctx, dynalite.Options{})
	if err != nil {
		return nil, err
	}
	if err := s.CreateLedgerTable(ctx, ledgerTable); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// runChild re-executes this binary with -sweep against the emulator at url
// and the ledger at ledgerURL, and returns its result and its peak RSS in
// MB (getrusage of the child).
func runChild(ctx context.Context, url, ledgerURL string, rotateRate float64, out, target, cpuProfile, memProfile, logFile string) (sweepResult, float64, error) {
	var res sweepResult
	self, err := os.Executable()
	if err != nil {
		return res, 0, err
	}
	if logFile == "" {
		logFile = os.DevNull
	}
	devnull, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return res, 0, err
	}
	defer devnull.Close()
	args := []string{"-sweep", "-out", out}
	if target != "" {
		args = append(args, "-target", target)
	}
	if memProfile != "" {
		args = append(args, "-memprofile", memProfile)
	}
	if cpuProfile != "" {
		args = append(args, "-cpuprofile", cpuProfile)
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Env = append(os.Environ(),
		"AWS_ENDPOINT_URL="+url,
		"AWS_REGION="+benchRegion,
		"AWS_ACCESS_KEY_ID=AKIDEXAMPLE",
		"AWS_SECRET_ACCESS_KEY=secret",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE="+os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE="+os.DevNull,
		settings.EnvRotateRPS+"="+strconv.FormatFloat(rotateRate, 'f', -1, 64),
		settings.EnvLedgerTable+"="+ledgerTable,
		"AWS_ENDPOINT_URL_DYNAMODB="+ledgerURL,
	)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = devnull, &stderr
	if err := cmd.Run(); err != nil {
		return res, 0, fmt.Errorf("sweep child: %w\n%s", err, stderr.String())
	}
	res.CPUSeconds = cmd.ProcessState.UserTime().Seconds() + cmd.ProcessState.SystemTime().Seconds()
	b, err := os.ReadFile(out)
	if err != nil {
		return res, 0, err
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return res, 0, err
	}
	rss := res.PeakRSSMB
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && rss == 0 {
		rss = float64(ru.Maxrss) / 1024 // Linux reports kilobytes; an upper bound (see peakRSSMB)
	}
	return res, rss, nil
}

// kmsClient is a plain SDK client (default retryer) for the baseline.
func kmsClient(url string) *kms.Client {
	return kms.NewFromConfig(aws.Config{
		Region:      benchRegion,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
	}, func(o *kms.Options) { o.BaseEndpoint = aws.String(url) })
}

// moduleRoot walks up from the working directory to go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// goCommand is the go command: $GO (the Makefile's), else go on PATH.
func goCommand() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// perKind splits the per-key KMS calls between due keys and the others,
// from the emulator's per-operation counts and the fleet's composition:
// every opted-in key gets one DescribeKey; every eligible key one
// ListKeyRotations; a due key also its status, a history re-read and the
// rotation. So the ListKeyRotations beyond one per eligible key are due
// keys' re-reads.
func perKind(st kmsemu.Stats, s fleetShape) (due, other float64) {
	c := func(op string) float64 { return float64(st.Op(op).Calls) }
	perKey := c("DescribeKey") + c("ListKeyRotations") + c("GetKeyRotationStatus") + c("RotateKeyOnDemand") + c("ListResourceTags")
	eligible := float64(s.OptedIn - s.Ineligible)
	dueCalls := 2*float64(s.Due) + c("GetKeyRotationStatus") + c("RotateKeyOnDemand") + max(0, c("ListKeyRotations")-eligible)
	if s.Due > 0 {
		due = round(dueCalls/float64(s.Due), 3)
	}
	if n := s.OptedIn - s.Due; n > 0 {
		other = round((perKey-dueCalls)/float64(n), 3)
	}
	return due, other
}
