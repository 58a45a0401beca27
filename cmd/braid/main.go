// Command braid is Braid's command line: simulator, cluster setup, replica
// processes, a local cluster, and ledger tools.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// A command is one `braid NAME ...`: run gets the arguments after NAME.
type command struct {
	name, args, about string
	run               func(args []string, stdout, stderr io.Writer) error
	// hidden leaves the command out of the usage text: it is machinery of
	// another command (plain-server is the process braid bench --plain
	// starts), documented where that command is.
	hidden bool
}

// commands is the command table: dispatch and the usage text both come
// from it, so a command cannot be listed without being runnable or the
// other way round.
var commands = []command{
	{"sim", "[flags]", "run the deterministic simulator (braid sim --help)", runSim, false},
	{"init", "[flags]", "create a cluster: configuration and keys (braid init --help)", runInit, false},
	{"keygen", "[flags]", "write one key pair and print its public key (braid keygen --help)", runKeygen, false},
	{"ledger", "CMD", "show, verify or export a replica's ledger (braid ledger --help)", runLedger, false},
	{"status", "[flags]", "one line per replica: up or down, round, lag, views, primaries (braid status --help)", runStatus, false},
	{"replica", "[flags]", "run one replica (braid replica --config FILE --id I)", runReplica, false},
	{"local", "[flags]", "run a persistent local cluster of replica processes (braid local --n 4)", runLocal, false},
	{"kv", "CMD", "put, get, delete or scan keys as a client (braid kv --help)", runKV, false},
	{"bank", "CMD", "open accounts, deposit, transfer, check balances as a client (braid bank --help)", runBank, false},
	{"gateway", "[flags]", "serve the Redis protocol and the kv/bank HTTP API for a cluster (braid gateway --help)", runGateway, false},
	{"demo", "", "4 replica processes, a live workload, a primary killed and restarted, ledgers verified", runDemo, false},
	{"chaos", "[flags]", "a real cluster under random kills, pauses, partitions and Byzantine replicas; every result checked (braid chaos --help)", runChaos, false},
	{"bench", "[flags]", "benchmark a local cluster of replica processes: req/s, latency, CPU per request (braid bench --help)", runBench, false},
	{"plain-server", "--config FILE", "the non-replicated baseline server braid bench --plain starts (benchmarks only)", runPlainServer, true},
}

func usage() string {
	var b strings.Builder
	b.WriteString("braid — a Byzantine-fault-tolerant replicated ledger on wait-free parallel consensus\n\nUsage:\n")
	for _, c := range commands {
		if c.hidden {
			continue
		}
		fmt.Fprintf(&b, "  %-21s %s\n", strings.TrimSpace("braid "+c.name+" "+c.args), c.about)
	}
	b.WriteString("\n")
	return b.String()
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage())
		os.Exit(2)
	}
	name := os.Args[1]
	if name == "help" || name == "-h" || name == "--help" {
		fmt.Print(usage())
		return
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == name })
	if i < 0 {
		fmt.Fprintf(os.Stderr, "braid: unknown command %q\n\n%s", name, usage())
		os.Exit(2)
	}
	if err := commands[i].run(os.Args[2:], os.Stdout, os.Stderr); err != nil {
		if code, ok := err.(exitCode); ok {
			os.Exit(int(code))
		}
		fmt.Fprintf(os.Stderr, "braid %s: %v\n", name, err)
		os.Exit(1)
	}
}

// newFlagSet returns the flag set of the command called name. It reports
// to stderr and never exits the process (parseFlags turns the outcome into
// an error), so that tests can run commands in-process. A non-empty usage
// is printed before the flag defaults on --help and after a bad flag;
// without one the flag package's own "Usage of NAME:" heading stays.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if usage != "" {
		fs.Usage = func() {
			fmt.Fprint(stderr, usage)
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses a command's flags. stop says the command is done
// before it began: --help printed the usage (err is nil), or a flag was bad
// and the flag set printed why (err is exit status 2).
func parseFlags(fs *flag.FlagSet, args []string) (stop bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return true, exitCode(2)
	}
	return false, nil
}

// parseFlagsOnly is parseFlags for a command that takes flags and no
// arguments. Parsing stops at the first argument that is not a flag, so
// one left over is an error (pointing at `help --help`) rather than
// ignored together with every flag after it.
func parseFlagsOnly(fs *flag.FlagSet, args []string, help string) (stop bool, err error) {
	if stop, err := parseFlags(fs, args); stop {
		return true, err
	}
	if fs.NArg() > 0 {
		return true, fmt.Errorf("unexpected argument %q (flags only; see %s --help)", fs.Arg(0), help)
	}
	return false, nil
}

// refuseOverwrite is the check of the commands that write one file with
// --force: without it, an existing path is an error, never replaced.
func refuseOverwrite(path string, force bool) error {
	if _, err := os.Lstat(path); err == nil && !force {
		return fmt.Errorf("%s already exists; use --force to replace it", path)
	}
	return nil
}

// exitCode ends the program with a status and no further message.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
