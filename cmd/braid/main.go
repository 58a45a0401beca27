// Command braid is Braid's command line: simulator, cluster setup, replica
// processes, a local cluster, and ledger tools.
package main

import (
	"fmt"
	"os"
)

const usage = `braid — a Byzantine-fault-tolerant replicated ledger on wait-free parallel consensus

Usage:
  braid sim [flags]     run the deterministic simulator (braid sim --help)
  braid init [flags]    create a cluster: configuration and keys (braid init --help)
  braid keygen [flags]  write one key pair and print its public key (braid keygen --help)
  braid ledger CMD      verify or export a replica's ledger (braid ledger --help)
  braid replica [flags] run one replica (braid replica --config FILE --id I)
  braid local [flags]   run a persistent local cluster of replica processes (braid local --n 4)
  braid kv CMD          put, get, delete or scan keys as a client (braid kv --help)
  braid bank CMD        open accounts, deposit, transfer, check balances as a client (braid bank --help)
  braid demo            4 replica processes, a live workload, a primary killed and restarted, ledgers verified
  braid bench [flags]   benchmark a local cluster of replica processes: req/s, latency, CPU per request (braid bench --help)

`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "sim":
		err = runSim(os.Args[2:], os.Stdout, os.Stderr)
	case "init":
		err = runInit(os.Args[2:], os.Stdout, os.Stderr)
	case "keygen":
		err = runKeygen(os.Args[2:], os.Stdout, os.Stderr)
	case "ledger":
		err = runLedger(os.Args[2:], os.Stdout, os.Stderr)
	case "replica":
		err = runReplica(os.Args[2:], os.Stdout, os.Stderr)
	case "local":
		err = runLocal(os.Args[2:], os.Stdout, os.Stderr)
	case "kv":
		err = runKV(os.Args[2:], os.Stdout, os.Stderr)
	case "bank":
		err = runBank(os.Args[2:], os.Stdout, os.Stderr)
	case "demo":
		err = runDemo(os.Args[2:], os.Stdout, os.Stderr)
	case "bench":
		err = runBench(os.Args[2:], os.Stdout, os.Stderr)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "braid: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		if code, ok := err.(exitCode); ok {
			os.Exit(int(code))
		}
		fmt.Fprintf(os.Stderr, "braid %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// exitCode ends the program with a status and no further message.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
