package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/braid-bft/braid/app"
	"github.com/braid-bft/braid/app/bank"
	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/calibrate"
	"github.com/braid-bft/braid/client"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/internal/loopback"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/sim"
	"github.com/braid-bft/braid/storage"
)

const benchUsage = `Usage: braid bench [flags]

Starts a local cluster of --n separate braid replica processes (a fresh
braid init-style configuration in a temporary directory), drives it with
--clients SDK clients for --warmup plus --duration, and reports executed
requests per second, latency percentiles, CPU seconds per request across the
replica processes, and the floor: n client-signature verifications per
request at the batch-verification speed measured in the same run. With
--config it runs only the clients, against an existing cluster.

With --plain it runs the same clients and workloads against one
non-replicated server process instead (braid plain-server, n = 1, f = 0):
it receives the signed request over the same client transport, batch-
verifies the signature, executes it on the same application, makes it
durable in the same store with one fsync per group of requests, and
replies. The difference to the replicated run is the cost of replication
and agreement; the output and the JSON ("mode": "plain") say which ran.

Requests are signed inline by the load generator (client.Submit signs each
one), on the same machine as the replicas: that CPU competes with them.

Workloads:
  write    put of a random key with a --payload byte value
  ycsb-a   50% read / 50% update of a small per-client record set (uniform keys)
  ycsb-b   95% read / 5% update
  ycsb-c   read only
  bank     transfers of 1 unit from the client's account to a random other one

Reads are kv gets; like writes they are ordered through consensus.

Flags:
`

// benchWorkloads are the --workload names, in help order.
var benchWorkloads = []string{"write", "ycsb-a", "ycsb-b", "ycsb-c", "bank"}

// benchOptions are the parsed flags of braid bench.
type benchOptions struct {
	n, m         int
	batch        int
	payload      int
	clients      int
	duration     time.Duration
	warmup       time.Duration
	workload     string
	config       string
	json         bool
	compareM     int
	openLoopRate float64
	dir          string
	seed         uint64
	broadcast    bool
	plain        bool // one non-replicated server instead of a cluster

	calibrate  bool    // measure the cost model and write it to costs
	costs      string  // the cost file --sim reads
	simulate   bool    // run on the simulator instead of processes
	nicGbps    float64 // --sim: each replica's NIC
	cores      int     // --sim: verification cores per replica (0: the cost file's)
	scenario   string  // --sim: the fault scenario
	cpuProfile string  // --sim: CPU profile of the simulation
	wan        bool    // --sim: the six-region WAN
	experiment string  // --sim: a report experiment
	out        string  // --experiment: where results go
	maxN       int     // --experiment scale: largest n
	renderOnly bool    // --experiment: no runs
	memProfile string  // --sim: heap profile at the end
	maxMemory  int64   // --sim: heap limit
	costsSet   bool    // --costs was given (then the file must exist)
	clientSet  bool    // --clients was given
}

// parseBenchFlags parses and validates braid bench's flags. done with a
// nil error means --help was asked for.
func parseBenchFlags(args []string, stderr io.Writer) (o *benchOptions, done bool, err error) {
	fs := newFlagSet("braid bench", benchUsage, stderr)
	o = &benchOptions{}
	fs.IntVar(&o.n, "n", 4, "replicas (n = 3f+1; at least 4)")
	fs.IntVar(&o.m, "m", 0, "parallel instances, 1 ≤ m ≤ n (default n − f, the configuration default)")
	fs.IntVar(&o.batch, "batch", config.DefaultBatchSize, fmt.Sprintf("most requests per batch (batch_size), 1…%d", config.MaxBatchSize))
	fs.IntVar(&o.payload, "payload", 64, fmt.Sprintf("value bytes of a put, 0…%d (ignored by bank)", kv.MaxValueLen))
	fs.IntVar(&o.clients, "clients", 64, "clients, each with one request outstanding (closed loop) or the pool open-loop requests go to")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured window")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "load before the window, not measured")
	fs.StringVar(&o.workload, "workload", "write", "one of "+strings.Join(benchWorkloads, ", "))
	fs.StringVar(&o.config, "config", "", "run the clients against this existing cluster file instead of starting a cluster")
	fs.BoolVar(&o.json, "json", false, "print the results as one JSON object on the last line of stdout (the readable summary goes to stderr)")
	fs.IntVar(&o.compareM, "compare-m", 0, "after the main run, run again on a fresh cluster with this m and report the throughput ratio main/compare (0: no comparison)")
	fs.Float64Var(&o.openLoopRate, "open-loop-rate", 0, "offer this many requests/s in total, spread over the clients, instead of closed-loop load (0: closed loop)")
	fs.StringVar(&o.dir, "dir", "", "directory for the cluster(s), kept afterwards (default: a temporary directory, removed afterwards)")
	fs.Uint64Var(&o.seed, "seed", 0, "seed of the operation mix and keys (0: random; the seed used is printed)")
	fs.BoolVar(&o.broadcast, "broadcast", false, "clients send every request to all replicas instead of to their instance's primary")
	fs.BoolVar(&o.plain, "plain", false, "benchmark the non-replicated baseline instead: one braid plain-server process (verify, execute, group commit, reply; no replication or agreement), same clients, workloads and measurements")
	fs.BoolVar(&o.calibrate, "calibrate", false, "measure the simulator's cost model on this machine (signature checks, signing, hashing, encoding, TLS records, fsync in --dir) and write it to --costs")
	fs.StringVar(&o.costs, "costs", defaultCosts, "cost model file: written by --calibrate, read by --sim")
	fs.BoolVar(&o.simulate, "sim", false, "run the real runtime on the deterministic simulator under the --costs model instead of starting processes (closed-loop clients, or open-loop load at --open-loop-rate)")
	fs.Float64Var(&o.nicGbps, "nic", 1, "--sim: each replica's network card, Gbit/s of egress")
	fs.IntVar(&o.cores, "cores", 0, "--sim: verification cores per replica, 1…256, instead of the cost file's (the costs per signature stay the measured ones)")
	fs.StringVar(&o.scenario, "scenario", "fault-free", "--sim: one of braid sim's fault scenarios (braid sim --list)")
	fs.StringVar(&o.experiment, "experiment", "", "--sim: run one of the report's experiments (scale, failures, wan), keeping results in --out and writing its table and SVG plot there")
	fs.StringVar(&o.out, "out", "docs/sim", "--experiment: directory of the results, tables and plots")
	fs.BoolVar(&o.renderOnly, "render-only", false, "--experiment: only write the table and plot from the results already in --out")
	fs.IntVar(&o.maxN, "max-n", 128, "--experiment scale: the largest n to run")
	fs.BoolVar(&o.wan, "wan", false, "--sim: replicas spread over six AWS regions with measured round-trip times instead of one LAN")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "--sim: write a CPU profile of the simulation to this file (go tool pprof)")
	fs.Int64Var(&o.maxMemory, "max-memory", 8<<30, "--sim: stop the simulation with an error once its heap exceeds this many bytes (0: no limit)")
	fs.StringVar(&o.memProfile, "memprofile", "", "--sim: write a heap profile at the end of the simulation to this file (go tool pprof)")
	if stop, err := parseFlagsOnly(fs, args, "braid bench"); stop {
		return nil, true, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := o.validate(set); err != nil {
		return nil, true, err
	}
	o.costsSet, o.clientSet = set["costs"], set["clients"]
	return o, false, nil
}

// validate checks the flags that need no I/O. set names the flags given
// on the command line.
func (o *benchOptions) validate(set map[string]bool) error {
	if !slices.Contains(benchWorkloads, o.workload) {
		return fmt.Errorf("--workload %q: want one of %s", o.workload, strings.Join(benchWorkloads, ", "))
	}
	if o.plain {
		for _, name := range []string{"n", "m", "compare-m", "config", "sim", "calibrate"} {
			if set[name] {
				return fmt.Errorf("--%s cannot be used with --plain: the baseline is one non-replicated server process the bench starts (n = 1, no instances)", name)
			}
		}
		if o.batch < 1 || o.batch > config.MaxBatchSize {
			return fmt.Errorf("--batch %d: need 1 ≤ batch ≤ %d", o.batch, config.MaxBatchSize)
		}
	} else if o.config != "" {
		for _, name := range []string{"n", "m", "batch", "dir", "compare-m"} {
			if set[name] {
				return fmt.Errorf("--%s cannot be used with --config: the bench then runs only clients against the existing cluster, whose n, m and batch_size its file fixes", name)
			}
		}
	} else {
		switch {
		case o.n < 4:
			return fmt.Errorf("--n %d: need n ≥ 4 (n = 3f+1; fewer than 4 replicas tolerate no fault)", o.n)
		case o.n > config.MaxReplicas:
			return fmt.Errorf("--n %d: need n ≤ %d", o.n, config.MaxReplicas)
		case o.m < 0 || o.m > o.n:
			return fmt.Errorf("--m %d: need 1 ≤ m ≤ n = %d (or 0 for the default n − f = %d)", o.m, o.n, config.DefaultM(o.n))
		case o.batch < 1 || o.batch > config.MaxBatchSize:
			return fmt.Errorf("--batch %d: need 1 ≤ batch ≤ %d", o.batch, config.MaxBatchSize)
		case o.compareM < 0 || o.compareM > o.n:
			return fmt.Errorf("--compare-m %d: need 1 ≤ m ≤ n = %d (or 0 for no comparison run)", o.compareM, o.n)
		}
	}
	if !o.simulate && (o.experiment != "" || o.wan || o.cpuProfile != "" || o.memProfile != "") {
		return errors.New("--experiment, --wan, --cpuprofile and --memprofile are for the simulator: add --sim")
	}
	if o.maxN < 4 {
		return fmt.Errorf("--max-n %d: need at least 4", o.maxN)
	}
	if o.calibrate && o.simulate {
		return errors.New("--calibrate and --sim: calibrate first, then simulate with the file it wrote")
	}
	if o.simulate {
		switch {
		case o.config != "" || o.compareM != 0 || o.broadcast:
			return errors.New("--sim runs the simulator: --config, --compare-m and --broadcast are for real clusters")
		case o.workload != "write":
			return fmt.Errorf("--sim --workload %s: the simulated load is writes only so far", o.workload)
		case o.nicGbps <= 0 || math.IsNaN(o.nicGbps) || math.IsInf(o.nicGbps, 0) || o.nicGbps > 1000:
			return fmt.Errorf("--nic %v: want a bandwidth in (0, 1000] Gbit/s", o.nicGbps)
		case o.cores < 0 || o.cores > 256:
			return fmt.Errorf("--cores %d: want 1…256 verification cores (0: the cost file's)", o.cores)
		case !slices.Contains(sim.ScenarioNames(), o.scenario):
			return fmt.Errorf("--scenario %q: want one of braid sim --list", o.scenario)
		}
	}
	switch {
	case o.payload < 0 || o.payload > kv.MaxValueLen:
		return fmt.Errorf("--payload %d: need 0 ≤ payload ≤ %d bytes", o.payload, kv.MaxValueLen)
	case o.clients < 1 || (!o.simulate && o.clients > maxBenchClients) || o.clients > maxSimClients:
		most := maxBenchClients
		if o.simulate {
			most = maxSimClients
		}
		return fmt.Errorf("--clients %d: need 1 ≤ clients ≤ %d", o.clients, most)
	case o.duration <= 0:
		return fmt.Errorf("--duration %v: must be positive", o.duration)
	case o.warmup < 0:
		return fmt.Errorf("--warmup %v: cannot be negative", o.warmup)
	case o.openLoopRate < 0 || math.IsNaN(o.openLoopRate) || math.IsInf(o.openLoopRate, 0):
		return fmt.Errorf("--open-loop-rate %v: need a rate ≥ 0 requests/s (0: closed loop)", o.openLoopRate)
	}
	return nil
}

// maxBenchClients bounds --clients: each is a goroutine with n connections.
const maxBenchClients = 10000

// maxSimClients bounds --sim --clients: a simulated client is a few
// hundred bytes, and saturating n = 128 takes four full batches for each
// of its 86 instances (34,400 clients at batch 100).
const maxSimClients = 200000

// opKind is what one benchmark request does.
type opKind uint8

const (
	opWrite    opKind = iota // put of a random key
	opRead                   // get of a record
	opUpdate                 // put of a record
	opTransfer               // bank transfer
)

func (k opKind) String() string {
	return [...]string{"write", "read", "update", "transfer"}[k]
}

// drawOp picks the next operation of workload w.
func drawOp(w string, rng *mrand.Rand) opKind {
	switch w {
	case "ycsb-a":
		return readOr(rng, 0.50)
	case "ycsb-b":
		return readOr(rng, 0.95)
	case "ycsb-c":
		return opRead
	case "bank":
		return opTransfer
	}
	return opWrite
}

func readOr(rng *mrand.Rand, readFrac float64) opKind {
	if rng.Float64() < readFrac {
		return opRead
	}
	return opUpdate
}

// ycsbRecords is each client's record set for the ycsb workloads, written
// before the warmup. Keys are drawn uniformly (YCSB's default is zipfian;
// with per-client keyspaces and every op ordered through consensus the key
// distribution changes little here).
const ycsbRecords = 16

// writeKeys is the key space of the write workload, per client.
const writeKeys = 1 << 20

// benchClient is one load-generating client.
type benchClient struct {
	c       *client.Client
	idx     int
	rng     *mrand.Rand
	value   []byte
	prefix  string // key prefix: unique per run, so runs against one cluster do not mix
	acct    string
	accts   []string // every client's account (bank)
	workKey []byte
}

func (bc *benchClient) recordKey(i int) []byte {
	return fmt.Appendf(bc.workKey[:0], "%suser%04d", bc.prefix, i)
}

// nextOp returns the next operation to submit and its kind.
func (bc *benchClient) nextOp(workload string) ([]byte, opKind) {
	k := drawOp(workload, bc.rng)
	switch k {
	case opRead:
		return kv.Get(bc.recordKey(bc.rng.IntN(ycsbRecords))), k
	case opUpdate:
		return kv.Put(bc.recordKey(bc.rng.IntN(ycsbRecords)), bc.value), k
	case opTransfer:
		return bank.Transfer(bc.acct, bc.accts[bc.rng.IntN(len(bc.accts))], 0, 1), k
	}
	key := fmt.Appendf(bc.workKey[:0], "%sw%07d", bc.prefix, bc.rng.IntN(writeKeys))
	return kv.Put(key, bc.value), k
}

// checkResult reports whether the application refused op (a result that
// is not OK); the request still executed.
func checkResult(k opKind, res []byte) error {
	var err error
	switch k {
	case opRead:
		_, _, err = kv.DecodeGet(res)
	case opTransfer:
		_, err = bank.DecodeTransfer(res)
	default:
		err = kv.DecodePut(res)
	}
	return err
}

// benchPercentile returns the q-th percentile (0 < q ≤ 100) of sorted by
// the nearest-rank method: the smallest sample with at least q% of the
// samples at or below it. Zero for no samples.
func benchPercentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// sample is one request that executed: when Submit returned, and how long
// it took.
type sample struct {
	end int64 // UnixNano
	lat time.Duration
}

// recorder collects samples from every client.
type recorder struct {
	mu      sync.Mutex
	samples []sample
	failed  []int64 // end times of Submits that failed while the load ran
	appErrs []int64 // end times of requests the application refused
	done    atomic.Int64
}

func (r *recorder) add(end time.Time, lat time.Duration, err, appErr error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.failed = append(r.failed, end.UnixNano())
		return
	}
	r.samples = append(r.samples, sample{end.UnixNano(), lat})
	if appErr != nil {
		r.appErrs = append(r.appErrs, end.UnixNano())
	}
	r.done.Add(1)
}

// window returns the latencies of the requests that returned in [from, to),
// sorted, and the failures and application refusals in it.
func (r *recorder) window(from, to int64) (lat []time.Duration, failed, appErrs int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.samples {
		if s.end >= from && s.end < to {
			lat = append(lat, s.lat)
		}
	}
	in := func(ts []int64) (k int) {
		for _, t := range ts {
			if t >= from && t < to {
				k++
			}
		}
		return k
	}
	slices.Sort(lat)
	return lat, in(r.failed), in(r.appErrs)
}

// benchResult is one run's outcome; its JSON names are the interface.
type benchResult struct {
	// Mode is "bft" for a replicated cluster and "plain" for the
	// non-replicated baseline (--plain: n = 1, one server process).
	Mode            string  `json:"mode"`
	Workload        string  `json:"workload"`
	N               int     `json:"n"`
	M               int     `json:"m"`
	Batch           int     `json:"batch"`
	Payload         int     `json:"payload"`
	Clients         int     `json:"clients"`
	OpenLoopRate    float64 `json:"open_loop_rate"`
	DurationSeconds float64 `json:"duration_seconds"`
	WarmupSeconds   float64 `json:"warmup_seconds"`
	Seed            uint64  `json:"seed"`
	Signing         string  `json:"signing"`
	Cores           int     `json:"cores"`

	Executed          int     `json:"executed"`
	Failed            int     `json:"failed"`
	AppErrors         int     `json:"app_errors"`
	OpenLoopMissed    int64   `json:"open_loop_missed,omitempty"`
	ExecutedPerSecond float64 `json:"executed_per_second"`
	P50ms             float64 `json:"p50_ms"`
	P95ms             float64 `json:"p95_ms"`
	P99ms             float64 `json:"p99_ms"`
	MaxMs             float64 `json:"max_ms"`
	MeanMs            float64 `json:"mean_ms"`

	// CPU over the window. Nil when the replica processes are not known
	// (--config with replicas that are not local processes of this host).
	ReplicaProcesses          int      `json:"replica_processes"`
	ReplicaCPUSeconds         *float64 `json:"replica_cpu_seconds"`
	CPUSecondsPerRequest      *float64 `json:"cpu_seconds_per_request"`
	LoadgenCPUSecondsPerReq   *float64 `json:"loadgen_cpu_seconds_per_request"`
	VerifySecondsPerSignature float64  `json:"verify_seconds_per_signature"`
	FloorCPUSecondsPerRequest float64  `json:"floor_cpu_seconds_per_request"`
	FloorOverCPU              *float64 `json:"floor_fraction_of_cpu,omitempty"`

	// From replica 0's ledger after the run (only for clusters the bench
	// started: the replicas expose no live per-instance counters).
	Rounds    *uint64         `json:"rounds,omitempty"`
	Instances []instanceStats `json:"instances,omitempty"`

	Compare *benchResult `json:"compare,omitempty"`
	Ratio   *float64     `json:"ratio,omitempty"`
}

// instanceStats is what one instance ordered in the window.
type instanceStats struct {
	Instance int `json:"instance"`
	// DecidedRounds is the rounds in the window in which the instance's
	// batch carried requests. (Every instance decides a batch in every
	// executed round; empty ones leave no trace in the ledger.)
	DecidedRounds int `json:"decided_rounds"`
	Requests      int `json:"requests"`
}

// runBench implements `braid bench`.
func runBench(args []string, stdout, stderr io.Writer) error {
	o, done, err := parseBenchFlags(args, stderr)
	if done {
		return err
	}
	switch {
	case o.calibrate:
		return runCalibrate(o, stdout)
	case o.simulate:
		stopProfile, err := record("--cpuprofile", o.cpuProfile, "", "", pprof.StartCPUProfile, pprof.StopCPUProfile)
		if err != nil {
			return err
		}
		defer stopProfile()
		if o.experiment != "" {
			return runExperiment(o, stdout, stderr)
		}
		return runBenchSim(o, stdout, stderr)
	}
	if o.seed == 0 {
		o.seed = mrand.Uint64() | 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Readable output: stdout, or stderr when stdout carries the JSON.
	human := stdout
	if o.json {
		human = stderr
	}

	batch := o.batch
	if o.config != "" {
		cfg, err := config.Load(o.config)
		if err != nil {
			return err
		}
		batch = cfg.BatchSize
	}
	secPerSig, err := measureVerify(batch)
	if err != nil {
		return err
	}

	var res *benchResult
	if o.config != "" {
		res, err = benchExisting(ctx, o, secPerSig, human, stderr)
	} else {
		res, err = benchFresh(ctx, o, o.m, "main", secPerSig, human, stderr)
	}
	if err != nil {
		return err
	}
	printBenchSummary(human, res)
	if o.compareM > 0 {
		cmp, err := benchFresh(ctx, o, o.compareM, "compare", secPerSig, human, stderr)
		if err != nil {
			return fmt.Errorf("comparison run (m=%d): %w", o.compareM, err)
		}
		printBenchSummary(human, cmp)
		res.Compare = cmp
		if cmp.ExecutedPerSecond > 0 {
			ratio := res.ExecutedPerSecond / cmp.ExecutedPerSecond
			res.Ratio = &ratio
			fmt.Fprintf(human, "\nratio m=%d / m=%d: %.0f / %.0f executed req/s = %.2f×\n",
				res.M, cmp.M, res.ExecutedPerSecond, cmp.ExecutedPerSecond, ratio)
		} else {
			fmt.Fprintf(human, "\nratio: the m=%d run executed nothing\n", cmp.M)
		}
	}
	if o.json {
		b, err := json.Marshal(res)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", b)
	}
	return nil
}

// benchFresh creates a cluster with m instances (0: the default), runs the
// replicas as processes of this binary, benchmarks them and tears them
// down.
func benchFresh(ctx context.Context, o *benchOptions, m int, name string, secPerSig float64, human, stderr io.Writer) (res *benchResult, err error) {
	parent := o.dir
	if parent == "" {
		parent, err = os.MkdirTemp("", "braid-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(parent)
	}
	dir := filepath.Join(parent, name)
	n := o.n
	if o.plain {
		n, m, dir = 1, 1, filepath.Join(parent, "plain")
	}
	cfgPath, err := benchInit(dir, n, m, o.batch, o.clients)
	if err != nil {
		return nil, err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	cl, err := newCluster(cfgPath, cfg.N)
	if err != nil {
		return nil, err
	}
	defer cl.stop() // before the directory is removed (defers run last-in first-out)
	if o.plain {
		cl.plain = true
		fmt.Fprintf(human, "\nbraid bench --plain: starting 1 non-replicated server process (the baseline: no replication or agreement; verify, execute, group commit, reply; blocks of up to %d requests) in %s\n", cfg.BatchSize, dir)
	} else {
		fmt.Fprintf(human, "\nbraid bench: starting %d replica processes (m=%d, batch %d, policy %s) in %s\n", cfg.N, cfg.M, cfg.BatchSize, cfg.FailurePolicy, dir)
	}
	for i := range cfg.N {
		if err := cl.start(i); err != nil {
			return nil, err
		}
	}
	pids := make([]int, cfg.N)
	for i, p := range cl.procs {
		pids[i] = p.Process.Pid
	}
	res, wnd, err := benchRun(ctx, o, cfg, pids, secPerSig, human, stderr)
	if err != nil {
		if ctx.Err() == nil {
			dumpLogs(stderr, cl, cfg.N)
		}
		return nil, err
	}
	// A replica that died mid-run leaves the others to carry the load: the
	// numbers are then of a degraded cluster, and why it died matters more.
	if gone := cl.exited(); len(gone) > 0 {
		for id, why := range gone {
			fmt.Fprintf(stderr, "braid bench: warning: replica %d exited during the run (%v); its log: %s\n", id, why, cl.logFile(id))
		}
		dumpLogs(stderr, cl, cfg.N)
	}
	cl.stop()
	if o.plain {
		return res, nil // no rounds or instances: nothing is agreed
	}
	if rounds, insts, err := ledgerRounds(cfg, 0, wnd[0], wnd[1]); err != nil {
		fmt.Fprintf(human, "per-instance rounds unavailable: %v\n", err)
	} else {
		res.Rounds, res.Instances = &rounds, insts
	}
	return res, nil
}

// benchInit writes a cluster for the bench the way braid init does, on
// free loopback ports, with batch_size batch, and returns its path.
func benchInit(dir string, n, m, batch, clients int) (string, error) {
	base, err := loopback.FreeBase(3 * n)
	if err != nil {
		return "", err
	}
	// No HTTP client keys: the replicas' kv/bank API would warm its pool
	// during the run and admit clients the load generator does not drive
	// (the instance-change rules count admitted clients), so numbers stay
	// comparable with runs before it existed.
	args := []string{"--n", strconv.Itoa(n), "--dir", dir, "--base-port", strconv.Itoa(base), "--clients", strconv.Itoa(clients), "--http-clients", "0"}
	if m > 0 {
		args = append(args, "--m", strconv.Itoa(m))
	}
	var errBuf strings.Builder
	if err := runInit(args, io.Discard, &errBuf); err != nil {
		return "", fmt.Errorf("braid init: %w %s", err, errBuf.String())
	}
	cfgPath := filepath.Join(dir, clusterFile)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return "", err
	}
	if cfg.BatchSize != batch {
		cfg.BatchSize = batch
		if err := cfg.Save(cfgPath); err != nil {
			return "", err
		}
	}
	return cfgPath, nil
}

// benchExisting benchmarks the cluster in o.config with clients only. The
// replicas' CPU is counted if they run as local processes of this host.
func benchExisting(ctx context.Context, o *benchOptions, secPerSig float64, human, stderr io.Writer) (*benchResult, error) {
	cfg, err := config.Load(o.config)
	if err != nil {
		return nil, err
	}
	pids := findReplicaPIDs(o.config)
	fmt.Fprintf(human, "\nbraid bench: existing cluster %s (n=%d, m=%d, batch %d); %d local replica processes found for CPU accounting\n",
		o.config, cfg.N, cfg.M, cfg.BatchSize, len(pids))
	res, _, err := benchRun(ctx, o, cfg, pids, secPerSig, human, stderr)
	return res, err
}

// benchRun drives the load against cfg's cluster and measures it. pids are
// the replica processes whose CPU is counted. It returns the window as
// UnixNano bounds.
func benchRun(ctx context.Context, o *benchOptions, cfg *config.Config, pids []int, secPerSig float64, human, stderr io.Writer) (*benchResult, [2]int64, error) {
	var wnd [2]int64
	clients, err := openBenchClients(cfg, o)
	if err != nil {
		return nil, wnd, err
	}
	defer func() {
		for _, bc := range clients {
			bc.c.Close()
		}
	}()
	loop := fmt.Sprintf("%d closed-loop clients", len(clients))
	if o.openLoopRate > 0 {
		loop = fmt.Sprintf("open loop at %.0f req/s over %d clients", o.openLoopRate, len(clients))
	}
	fmt.Fprintf(human, "workload %s, payload %d B, %s; %v warmup, %v measured; seed %d\n", o.workload, o.payload, loop, o.warmup, o.duration, o.seed)
	fmt.Fprintf(human, "requests signed inline by the load generator (client SDK), on the same %d cores as the replicas\n", runtime.NumCPU())

	// Setup, unmeasured: it also waits for the cluster to come up and opens
	// every client's connections.
	if err := benchSetup(ctx, o.workload, clients, human); err != nil {
		return nil, wnd, err
	}

	rec := &recorder{}
	var winStart, winEnd atomic.Int64 // UnixNano, 0 until known
	work, stopWork := context.WithCancel(ctx)
	defer stopWork()
	var missed atomic.Int64
	var jobs chan struct{}
	if o.openLoopRate > 0 {
		jobs = make(chan struct{}) // unbuffered: a request goes out only if a client is free
	}
	var wg sync.WaitGroup
	for _, bc := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for work.Err() == nil {
				if jobs != nil {
					select {
					case <-jobs:
					case <-work.Done():
						return
					}
				}
				op, kind := bc.nextOp(o.workload)
				rctx, cancel := context.WithTimeout(work, 30*time.Second)
				start := time.Now()
				out, err := bc.c.Submit(rctx, op)
				end := time.Now()
				cancel()
				if work.Err() != nil {
					return // cut off by the end of the run: neither success nor failure
				}
				var appErr error
				if err == nil {
					appErr = checkResult(kind, out)
				}
				rec.add(end, end.Sub(start), err, appErr)
			}
		}()
	}
	if jobs != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			openLoop(work, jobs, o.openLoopRate, &missed, &winStart, &winEnd)
		}()
	}

	// Progress, once a second, on stderr.
	progressDone := make(chan struct{})
	begin := time.Now()
	go func() {
		defer close(progressDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		last := rec.done.Load()
		for {
			select {
			case <-work.Done():
				fmt.Fprintln(stderr)
				return
			case <-tick.C:
			}
			cur := rec.done.Load()
			from, label := int64(0), "warmup"
			if ws := winStart.Load(); ws != 0 {
				from, label = ws, "measured"
			}
			lat, _, _ := rec.window(from, math.MaxInt64)
			fmt.Fprintf(stderr, "\r%5.0fs %-8s %7d req/s   p50 %7.1f ms   p99 %7.1f ms   ",
				time.Since(begin).Seconds(), label, cur-last, ms(benchPercentile(lat, 50)), ms(benchPercentile(lat, 99)))
			last = cur
		}
	}()

	sleep := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return errors.New("interrupted")
		case <-time.After(d):
			return nil
		}
	}
	// markAfter waits d, then marks a bound of the measured window and
	// publishes its time in bound for the open loop and the progress line.
	markAfter := func(d time.Duration, bound *atomic.Int64) (benchMark, error) {
		if err := sleep(d); err != nil {
			return benchMark{}, err
		}
		m := markBench(pids)
		bound.Store(m.at.UnixNano())
		return m, nil
	}
	// Warm up, then measure for o.duration. The load stops either way, an
	// interrupt (ctx ending) included.
	begun, err := markAfter(o.warmup, &winStart)
	var ended benchMark
	if err == nil {
		ended, err = markAfter(o.duration, &winEnd)
	}
	stopWork()
	wg.Wait()
	<-progressDone
	if err != nil {
		return nil, wnd, err
	}
	wnd = [2]int64{begun.at.UnixNano(), ended.at.UnixNano()}

	lat, failed, appErrs := rec.window(wnd[0], wnd[1])
	secs := ended.at.Sub(begun.at).Seconds()
	mode := "bft"
	if o.plain {
		mode = "plain"
	}
	res := &benchResult{
		Mode: mode, Workload: o.workload, N: cfg.N, M: cfg.M, Batch: cfg.BatchSize, Payload: o.payload, Clients: len(clients),
		OpenLoopRate: o.openLoopRate, DurationSeconds: secs, WarmupSeconds: o.warmup.Seconds(), Seed: o.seed,
		Signing: "requests signed inline by the load generator", Cores: runtime.NumCPU(),
		Executed: len(lat), Failed: failed, AppErrors: appErrs, OpenLoopMissed: missed.Load(),
		ExecutedPerSecond: float64(len(lat)) / secs,
		P50ms:             ms(benchPercentile(lat, 50)), P95ms: ms(benchPercentile(lat, 95)), P99ms: ms(benchPercentile(lat, 99)),
		ReplicaProcesses:          len(pids),
		VerifySecondsPerSignature: secPerSig,
		FloorCPUSecondsPerRequest: float64(cfg.N) * secPerSig,
	}
	if len(lat) > 0 {
		res.MaxMs = ms(lat[len(lat)-1])
		var sum time.Duration
		for _, d := range lat {
			sum += d
		}
		res.MeanMs = ms(sum / time.Duration(len(lat)))
	}
	if len(pids) > 0 && begun.replicaErr == nil && ended.replicaErr == nil {
		c := ended.replicaCPU - begun.replicaCPU
		res.ReplicaCPUSeconds = &c
		if len(lat) > 0 {
			per := c / float64(len(lat))
			res.CPUSecondsPerRequest = &per
			frac := res.FloorCPUSecondsPerRequest / per
			res.FloorOverCPU = &frac
		}
	} else if begun.replicaErr != nil || ended.replicaErr != nil {
		fmt.Fprintf(human, "replica CPU unavailable: %v\n", errors.Join(begun.replicaErr, ended.replicaErr))
	}
	if len(lat) > 0 {
		per := (ended.selfCPU - begun.selfCPU) / float64(len(lat))
		res.LoadgenCPUSecondsPerReq = &per
	}
	return res, wnd, nil
}

// benchMark is one bound of the measured window: the CPU seconds used so
// far by the replica processes and by this one (the load generator), and
// the wall time. Subtracting the start's from the end's gives the window's.
type benchMark struct {
	replicaCPU float64
	replicaErr error // the replicas' CPU could not be read
	selfCPU    float64
	at         time.Time
}

func markBench(pids []int) benchMark {
	var m benchMark
	m.replicaCPU, m.replicaErr = procCPU(pids)
	m.selfCPU = selfCPU()
	m.at = time.Now()
	return m
}

// openLoop offers rate requests/s on jobs until ctx ends. A request whose
// time comes while no client is free is not sent; those in the window are
// counted in missed.
func openLoop(ctx context.Context, jobs chan<- struct{}, rate float64, missed, winStart, winEnd *atomic.Int64) {
	interval := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		now := time.Now()
		for !next.After(now) {
			select {
			case jobs <- struct{}{}:
			default:
				t := now.UnixNano()
				if ws := winStart.Load(); ws != 0 && t >= ws && winEnd.Load() == 0 {
					missed.Add(1)
				}
			}
			next = next.Add(interval)
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
}

// openBenchClients opens o.clients SDK clients with the cluster's
// development client keys (keys/client-J.key next to the configuration).
func openBenchClients(cfg *config.Config, o *benchOptions) ([]*benchClient, error) {
	if len(cfg.Clients.Keys) < o.clients {
		return nil, fmt.Errorf("--clients %d: the cluster admits only %d client keys", o.clients, len(cfg.Clients.Keys))
	}
	var runID [4]byte
	_, _ = rand.Read(runID[:])
	prefix := "bench-" + hex.EncodeToString(runID[:]) + "/"
	accts := make([]string, o.clients)
	for i := range accts {
		accts[i] = fmt.Sprintf("bench-%x-%d", runID, i)
	}
	out := make([]*benchClient, 0, o.clients)
	fail := func(err error) ([]*benchClient, error) {
		for _, bc := range out {
			bc.c.Close()
		}
		return nil, err
	}
	for i := range o.clients {
		ck := cfg.Clients.Keys[i]
		keyFile := filepath.Join(cfg.Dir(), "keys", fmt.Sprintf("client-%d.key", ck.ID))
		key, err := auth.ReadPrivateKeyFile(keyFile)
		if err != nil {
			return fail(fmt.Errorf("client %d of %d: %w", i+1, o.clients, err))
		}
		c, err := client.New(cfg, msg.ClientID(ck.ID), key, client.Options{Timeout: time.Second, Broadcast: o.broadcast})
		if err != nil {
			return fail(err)
		}
		value := make([]byte, o.payload)
		for j := range value {
			value[j] = byte('a' + (i+j)%26)
		}
		out = append(out, &benchClient{
			c: c, idx: i, rng: mrand.New(mrand.NewPCG(o.seed, uint64(i))), value: value,
			prefix: prefix, acct: accts[i], accts: accts, workKey: make([]byte, 0, 64),
		})
	}
	return out, nil
}

// benchSetup prepares every client's state (records for ycsb, an account
// for bank, one put otherwise), retrying while the cluster comes up.
func benchSetup(ctx context.Context, workload string, clients []*benchClient, human io.Writer) error {
	start := time.Now()
	deadline := start.Add(60 * time.Second)
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, bc := range clients {
		var ops [][]byte
		switch workload {
		case "ycsb-a", "ycsb-b", "ycsb-c":
			for r := range ycsbRecords {
				ops = append(ops, kv.Put(slices.Clone(bc.recordKey(r)), bc.value))
			}
		case "bank":
			ops = [][]byte{bank.Open(bc.acct), bank.Deposit(bc.acct, 1<<40)}
		default:
			ops = [][]byte{kv.Put([]byte(bc.prefix+"ready"), []byte("1"))}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, op := range ops {
				for {
					sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					res, err := bc.c.Submit(sctx, op)
					cancel()
					if err == nil {
						if _, perr := app.Payload(res); perr != nil {
							errs[i] = fmt.Errorf("setup of client %d: %w", bc.idx, perr)
							return
						}
						break
					}
					if ctx.Err() != nil || time.Now().After(deadline) {
						errs[i] = fmt.Errorf("cluster did not serve client %d within %v: %w", bc.idx, deadline.Sub(start).Round(time.Second), err)
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintf(human, "cluster up, %d clients ready after %.1fs\n", len(clients), time.Since(start).Seconds())
	return nil
}

// measureVerify measures the seconds per client signature of batch
// verification on one core: 2048 freshly signed requests, verified in
// batches of min(batch, 256) (the replica's auth.Pool never verifies more
// than 256 in one equation) on a one-worker auth.Pool, the best of three
// passes (calibrate.BatchVerify, which `braid bench --calibrate` uses too).
func measureVerify(batch int) (float64, error) {
	items, err := calibrate.SignedRequests(2048)
	if err != nil {
		return 0, err
	}
	d, err := calibrate.BatchVerify(items, min(batch, 256))
	return d.Seconds(), err
}

// selfCPU returns this process's user plus system CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// clkTck is the kernel's USER_HZ, the unit of /proc/PID/stat times
// (`getconf CLK_TCK`), 100 on Linux.
const clkTck = 100

// procCPU returns the summed user plus system CPU seconds of pids, from
// /proc/PID/stat.
func procCPU(pids []int) (float64, error) {
	var total float64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, err
		}
		t, err := parseProcStatCPU(string(b))
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		total += t
	}
	return total, nil
}

// parseProcStatCPU returns utime+stime in seconds from a /proc/PID/stat
// line. The command name (field 2) is in parentheses and may contain
// spaces, so fields are counted after the last ')'.
func parseProcStatCPU(stat string) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed")
	}
	f := strings.Fields(stat[i+1:])
	// After the name: state(3) ppid(4) … utime(14) stime(15).
	if len(f) < 13 {
		return 0, errors.New("malformed: too few fields")
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("malformed: %w", err)
	}
	return float64(utime+stime) / clkTck, nil
}

// findReplicaPIDs returns the local processes running `braid replica
// --config cfgPath` (the same file, however named), best effort.
func findReplicaPIDs(cfgPath string) []int {
	want, err := filepath.Abs(cfgPath)
	if err != nil {
		return nil
	}
	if w, err := filepath.EvalSymlinks(want); err == nil {
		want = w
	}
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) < 2 || args[1] != "replica" {
			continue
		}
		for j := 2; j < len(args); j++ {
			var p string
			switch {
			case (args[j] == "--config" || args[j] == "-config") && j+1 < len(args):
				p = args[j+1]
			case strings.HasPrefix(args[j], "--config="):
				p = strings.TrimPrefix(args[j], "--config=")
			default:
				continue
			}
			if !filepath.IsAbs(p) {
				cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
				if err != nil {
					continue
				}
				p = filepath.Join(cwd, p)
			}
			if r, err := filepath.EvalSymlinks(p); err == nil {
				p = r
			}
			if p == want {
				pids = append(pids, pid)
			}
			break
		}
	}
	return pids
}

// ledgerRounds reads replica id's ledger (the replica must be stopped) and
// returns the rounds executed in the window [from, to) (UnixNano) and what
// each instance ordered in them. The window is located by request numbers,
// which the client SDK takes from the wall clock at submission, so a block
// is in the window if it holds a request submitted in it; empty blocks
// between such blocks count too.
func ledgerRounds(cfg *config.Config, id int, from, to int64) (uint64, []instanceStats, error) {
	st, err := storage.Open(cfg.ReplicaDataDir(id), storage.Options{})
	if err != nil {
		return 0, nil, err
	}
	defer st.Close()
	height, err := st.Height()
	if err != nil {
		return 0, nil, err
	}
	insts := make([]instanceStats, cfg.M)
	for i := range insts {
		insts[i].Instance = i
	}
	var lo, hi uint64
	outside := 0 // blocks in a row, going back, with requests from before the window only
	for h := height; h >= 1; h-- {
		b, err := st.Block(h)
		if err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				break // compacted away
			}
			return 0, nil, err
		}
		var in, before bool
		seen := make([]bool, cfg.M)
		for i := range b.Requests {
			num := int64(b.Requests[i].Number)
			switch {
			case num >= from && num < to:
				in = true
				if inst := int(b.Ordering(i).Instance); inst < len(insts) {
					insts[inst].Requests++
					seen[inst] = true
				}
			case num < from:
				before = true
			}
		}
		if in {
			if hi == 0 {
				hi = h
			}
			lo = h
			for i, s := range seen {
				if s {
					insts[i].DecidedRounds++
				}
			}
		}
		if in {
			outside = 0
		} else if before {
			// A request submitted just before the window may be ordered
			// after some submitted in it: stop only well clear of it.
			outside++
			if outside > 64 {
				break
			}
		}
	}
	if hi == 0 {
		return 0, insts, nil
	}
	return hi - lo + 1, insts, nil
}

// dumpLogs prints the end of every replica's log, for a run that failed.
func dumpLogs(w io.Writer, cl *cluster, n int) {
	for i := range n {
		b, err := os.ReadFile(cl.logFile(i))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 10 {
			lines = lines[len(lines)-10:]
		}
		fmt.Fprintf(w, "--- %s (last lines)\n%s\n", cl.logFile(i), strings.Join(lines, "\n"))
	}
}

func printBenchSummary(w io.Writer, r *benchResult) {
	what := ""
	if r.Mode == "plain" {
		what = " of the PLAIN NON-REPLICATED BASELINE (one server, no replication or agreement, f = 0)"
	}
	fmt.Fprintf(w, "\nresults%s: n=%d m=%d batch=%d payload=%dB clients=%d workload=%s", what, r.N, r.M, r.Batch, r.Payload, r.Clients, r.Workload)
	if r.OpenLoopRate > 0 {
		fmt.Fprintf(w, " open-loop %.0f req/s (%d not sent: no free client)", r.OpenLoopRate, r.OpenLoopMissed)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  executed      %d requests in %.1fs = %.1f req/s (%d failed, %d refused by the application)\n",
		r.Executed, r.DurationSeconds, r.ExecutedPerSecond, r.Failed, r.AppErrors)
	fmt.Fprintf(w, "  latency       p50 %.1f ms   p95 %.1f ms   p99 %.1f ms   max %.1f ms   mean %.1f ms (Submit call to return)\n",
		r.P50ms, r.P95ms, r.P99ms, r.MaxMs, r.MeanMs)
	if r.CPUSecondsPerRequest != nil {
		label := "replica CPU "
		if r.Mode == "plain" {
			label = "server CPU  "
		}
		fmt.Fprintf(w, "  %s  %.1f µs/request (%.2f CPU-s over the window, %d processes)\n",
			label, *r.CPUSecondsPerRequest*1e6, *r.ReplicaCPUSeconds, r.ReplicaProcesses)
	} else {
		fmt.Fprintf(w, "  replica CPU   unknown (no local replica processes)\n")
	}
	fmt.Fprintf(w, "  floor         %.1f µs/request = %d client-signature verifications × %.1f µs (batch verification, one core, this run)",
		r.FloorCPUSecondsPerRequest*1e6, r.N, r.VerifySecondsPerSignature*1e6)
	if r.FloorOverCPU != nil {
		fmt.Fprintf(w, "; %.0f%% of the replica CPU", *r.FloorOverCPU*100)
	}
	fmt.Fprintln(w)
	if r.LoadgenCPUSecondsPerReq != nil {
		fmt.Fprintf(w, "  load gen CPU  %.1f µs/request (requests signed inline by the load generator, on the same %d cores)\n", *r.LoadgenCPUSecondsPerReq*1e6, r.Cores)
	}
	if r.Rounds != nil {
		fmt.Fprintf(w, "  rounds        %d executed by replica 0 in the window; per instance, rounds with requests / requests:", *r.Rounds)
		for _, in := range r.Instances {
			fmt.Fprintf(w, "  [%d] %d/%d", in.Instance, in.DecidedRounds, in.Requests)
		}
		fmt.Fprintln(w)
	}
}
