package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/braid-bft/braid/app/bank"
)

const bankUsage = `Usage: braid bank COMMAND --config FILE [flags] ARGS

Uses the cluster's bank ledger (the paper's conditional-transfer example).

Commands:
  open NAME                    open account NAME, owned by this client, balance 0
  deposit NAME AMOUNT          add AMOUNT to NAME (anyone may deposit)
  balance NAME                 print NAME's balance
  transfer FROM TO N M         if balance(FROM) > N, move M from FROM to TO;
                               prints whether it executed (only FROM's owner
                               may transfer; M > balance(FROM) is rejected)

Flags (every command; put them before the arguments, or end them with --):
  --config FILE      cluster configuration (DIR/cluster.json from braid init); required
  --key FILE         client private key (default DIR/keys/client-0.key next to the configuration)
  --timeout D        give up after D (default 10s)
  --retransmit D     re-send the request to every replica after D without a result (default 1s)
  --broadcast        send the request to every replica at once, not to the primary first

Example:
  braid bank open --config mycluster/cluster.json alice
  braid bank deposit --config mycluster/cluster.json alice 100
  braid bank transfer --config mycluster/cluster.json alice bob 50 30
`

// runBank implements `braid bank`.
func runBank(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, bankUsage)
		return exitCode(2)
	}
	sub, rest := args[0], args[1:]
	var sc subcommand
	switch sub {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, bankUsage)
		return nil
	case "open":
		sc = bankSubcommand(sub, "NAME")
	case "deposit":
		sc = bankSubcommand(sub, "NAME AMOUNT")
	case "balance":
		sc = bankSubcommand(sub, "NAME")
	case "transfer":
		sc = bankSubcommand(sub, "FROM TO N M")
	default:
		fmt.Fprintf(stderr, "braid bank: unknown command %q (want open, deposit, balance or transfer)\n\n%s", sub, bankUsage)
		return exitCode(2)
	}
	fs, cf, done, err := sc.parse(rest, stderr)
	if done {
		return err
	}
	if err := bank.ValidName(fs.Arg(0)); err != nil {
		return err
	}
	switch sub {
	case "open":
		res, err := cf.run(bank.Open(fs.Arg(0)))
		if err != nil {
			return err
		}
		if err := bank.DecodeOpen(res); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "opened account %s\n", fs.Arg(0))
	case "deposit":
		amt, err := parseAmount("AMOUNT", fs.Arg(1))
		if err != nil {
			return err
		}
		res, err := cf.run(bank.Deposit(fs.Arg(0), amt))
		if err != nil {
			return err
		}
		if err := bank.DecodeDeposit(res); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deposited %d into %s\n", amt, fs.Arg(0))
	case "balance":
		res, err := cf.run(bank.Balance(fs.Arg(0)))
		if err != nil {
			return err
		}
		bal, err := bank.DecodeBalance(res)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, bal)
	case "transfer":
		from, to := fs.Arg(0), fs.Arg(1)
		if err := bank.ValidName(to); err != nil {
			return err
		}
		n, err := parseAmount("N", fs.Arg(2))
		if err != nil {
			return err
		}
		m, err := parseAmount("M", fs.Arg(3))
		if err != nil {
			return err
		}
		res, err := cf.run(bank.Transfer(from, to, n, m))
		if err != nil {
			return err
		}
		executed, err := bank.DecodeTransfer(res)
		if err != nil {
			return err
		}
		if executed {
			fmt.Fprintf(stdout, "executed: balance(%s) > %d, moved %d from %s to %s\n", from, n, m, from, to)
		} else {
			fmt.Fprintf(stdout, "not executed: balance(%s) ≤ %d, nothing moved\n", from, n)
		}
	}
	return nil
}

// bankSubcommand is braid bank NAME, which takes exactly the arguments args
// names.
func bankSubcommand(name, args string) subcommand {
	n := len(strings.Fields(args))
	return subcommand{name: "braid bank " + name, usage: "braid bank " + name + " --config FILE [flags] " + args, args: args, min: n, max: n}
}

func parseAmount(what, s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q: not a whole number in 0…%d", what, s, uint64(1<<64-1))
	}
	return v, nil
}
