package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/client"
)

const kvUsage = `Usage: braid kv COMMAND --config FILE [flags] ARGS

Reads and writes the cluster's key-value store.

Commands:
  put KEY VALUE          set KEY to VALUE
  get KEY                print KEY's value (exit status 1 if absent)
  del KEY                delete KEY (exit status 1 if absent)
  scan [--limit N] START [END]
                         print the keys in [START, END) with their values,
                         one "key<TAB>value" line each (END empty or omitted:
                         no upper bound); keys or values that are not plain
                         text are printed Go-quoted

Flags (every command; put them before the arguments, or end them with --):
  --config FILE      cluster configuration (DIR/cluster.json from braid init); required
  --key FILE         client private key (default DIR/keys/client-0.key next to the configuration)
  --timeout D        give up after D (default 10s)
  --retransmit D     re-send the request to every replica after D without a result (default 1s)
  --broadcast        send to every replica at once (default true; --broadcast=false: primary first)

Example:
  braid kv put --config mycluster/cluster.json greeting hello
  braid kv get --config mycluster/cluster.json greeting
`

// clientFlags are the flags of every command that talks to the cluster as
// a client.
type clientFlags struct {
	config     string
	key        string
	timeout    time.Duration
	retransmit time.Duration
	broadcast  bool
}

func (cf *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&cf.config, "config", "", "cluster configuration file (required)")
	fs.StringVar(&cf.key, "key", "", "client private key file (default DIR/keys/client-0.key, DIR the configuration's directory)")
	fs.DurationVar(&cf.timeout, "timeout", 10*time.Second, "give up after this long")
	fs.DurationVar(&cf.retransmit, "retransmit", client.DefaultTimeout, "re-send to every replica after this long without a result")
	fs.BoolVar(&cf.broadcast, "broadcast", true, "send the request to every replica at once (a one-shot client has no connections open yet, and replicas answer only on a connection that carried the request); --broadcast=false tries the primary first")
}

// subcommand is how a client subcommand (braid kv put, braid bank open,
// ...) is called: its flags are the client flags and its own, then come
// min to max positional arguments.
type subcommand struct {
	name     string              // "braid kv put"
	usage    string              // its usage line
	args     string              // its positional arguments, as usage names them
	min, max int                 // how many positional arguments it takes
	flags    func(*flag.FlagSet) // registers its own flags; nil if none
}

// parse parses the subcommand's flags and checks its number of arguments.
// done is true if the command should end with err (nil after --help).
func (sc subcommand) parse(args []string, stderr io.Writer) (fs *flag.FlagSet, cf *clientFlags, done bool, err error) {
	fs = newFlagSet(sc.name, "Usage: "+sc.usage+"\n\nFlags:\n", stderr)
	cf = &clientFlags{}
	cf.register(fs)
	if sc.flags != nil {
		sc.flags(fs)
	}
	if stop, err := parseFlags(fs, args); stop {
		return nil, nil, true, err
	}
	if n := fs.NArg(); n < sc.min || n > sc.max {
		return nil, nil, true, fmt.Errorf("got %d argument(s), want %s (flags go before arguments; see --help)", n, sc.args)
	}
	return fs, cf, false, nil
}

// check validates the flags that need no I/O.
func (cf *clientFlags) check() error {
	switch {
	case cf.config == "":
		return errors.New("--config is required: the cluster configuration file (DIR/cluster.json from braid init)")
	case cf.timeout <= 0:
		return fmt.Errorf("--timeout %v: must be positive", cf.timeout)
	case cf.retransmit <= 0:
		return fmt.Errorf("--retransmit %v: must be positive", cf.retransmit)
	}
	return nil
}

// open loads the configuration and key and returns a client for them.
func (cf *clientFlags) open() (*client.Client, error) {
	if err := cf.check(); err != nil {
		return nil, err
	}
	cfg, id, key, err := client.LoadIdentity(cf.config, cf.key)
	if err != nil {
		if cf.key == "" && errors.Is(err, os.ErrNotExist) {
			if _, statErr := os.Stat(cf.config); statErr == nil {
				return nil, fmt.Errorf("%w\n(without --key the client uses the first client key braid init writes, keys/client-0.key next to the configuration)", err)
			}
		}
		return nil, err
	}
	return client.New(cfg, id, key, client.Options{Timeout: cf.retransmit, Broadcast: cf.broadcast})
}

// run submits op and returns its result.
func (cf *clientFlags) run(op []byte) ([]byte, error) {
	c, err := cf.open()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	res, err := c.Submit(ctx, op)
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, client.ErrNoReplicas):
		return nil, fmt.Errorf("no replica reachable; is the cluster running? (%w)", err)
	case errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("no result within %v (--timeout): %w", cf.timeout, err)
	case errors.Is(err, context.Canceled):
		return nil, fmt.Errorf("interrupted: %w", err)
	}
	return nil, err
}

// runKV implements `braid kv`.
func runKV(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, kvUsage)
		return exitCode(2)
	}
	sub, rest := args[0], args[1:]
	if sub == "help" || sub == "-h" || sub == "--help" {
		fmt.Fprint(stdout, kvUsage)
		return nil
	}
	cmd, ok := kvCommandNamed(sub)
	if !ok {
		fmt.Fprintf(stderr, "braid kv: unknown command %q (want put, get, del or scan)\n\n%s", sub, kvUsage)
		return exitCode(2)
	}
	fs, cf, done, err := cmd.parse(rest, stderr)
	if done {
		return err
	}
	op, err := cmd.op(fs)
	if err != nil {
		return err
	}
	res, err := cf.run(op)
	if err != nil {
		return err
	}
	return cmd.print(stdout, stderr, fs, res)
}

// kvCommand is a `braid kv` subcommand: how it is called, the operation
// it submits and how it prints the operation's result.
type kvCommand struct {
	subcommand
	// op checks the arguments in fs further and returns the operation.
	op func(fs *flag.FlagSet) ([]byte, error)
	// print decodes res and prints it; a key that is not there is an
	// error, so that the command exits 1.
	print func(stdout, stderr io.Writer, fs *flag.FlagSet, res []byte) error
}

// kvCommandNamed returns the `braid kv` subcommand called name. It is made
// afresh on every call because scan's op reads its own --limit variable.
func kvCommandNamed(name string) (kvCommand, bool) {
	switch name {
	case "put":
		return kvCommand{
			subcommand: subcommand{name: "braid kv put", usage: "braid kv put --config FILE [flags] KEY VALUE", args: "KEY VALUE", min: 2, max: 2},
			op:         func(fs *flag.FlagSet) ([]byte, error) { return kv.Put([]byte(fs.Arg(0)), []byte(fs.Arg(1))), nil },
			print: func(stdout, _ io.Writer, _ *flag.FlagSet, res []byte) error {
				if err := kv.DecodePut(res); err != nil {
					return err
				}
				fmt.Fprintln(stdout, "ok")
				return nil
			},
		}, true
	case "get":
		return kvCommand{
			subcommand: subcommand{name: "braid kv get", usage: "braid kv get --config FILE [flags] KEY", args: "KEY", min: 1, max: 1},
			op:         func(fs *flag.FlagSet) ([]byte, error) { return kv.Get([]byte(fs.Arg(0))), nil },
			print: func(stdout, _ io.Writer, fs *flag.FlagSet, res []byte) error {
				value, found, err := kv.DecodeGet(res)
				if err != nil {
					return err
				}
				if !found {
					return fmt.Errorf("%q not found", fs.Arg(0))
				}
				stdout.Write(value)
				fmt.Fprintln(stdout)
				return nil
			},
		}, true
	case "del", "delete":
		return kvCommand{
			subcommand: subcommand{name: "braid kv del", usage: "braid kv del --config FILE [flags] KEY", args: "KEY", min: 1, max: 1},
			op:         func(fs *flag.FlagSet) ([]byte, error) { return kv.Delete([]byte(fs.Arg(0))), nil },
			print: func(stdout, _ io.Writer, fs *flag.FlagSet, res []byte) error {
				deleted, err := kv.DecodeDelete(res)
				if err != nil {
					return err
				}
				if !deleted {
					return fmt.Errorf("%q not found", fs.Arg(0))
				}
				fmt.Fprintln(stdout, "ok")
				return nil
			},
		}, true
	case "scan":
		var limit int
		return kvCommand{
			subcommand: subcommand{name: "braid kv scan", usage: "braid kv scan --config FILE [--limit N] [flags] START [END]", args: "START [END]", min: 1, max: 2,
				flags: func(fs *flag.FlagSet) {
					fs.IntVar(&limit, "limit", 100, fmt.Sprintf("most entries to print, 1…%d", kv.MaxScanLimit))
				}},
			op: func(fs *flag.FlagSet) ([]byte, error) {
				if limit < 1 || limit > kv.MaxScanLimit {
					return nil, fmt.Errorf("--limit %d: need 1 ≤ limit ≤ %d", limit, kv.MaxScanLimit)
				}
				return kv.Scan([]byte(fs.Arg(0)), []byte(fs.Arg(1)), limit), nil
			},
			print: func(stdout, stderr io.Writer, _ *flag.FlagSet, res []byte) error {
				kvs, more, err := kv.DecodeScanPage(res)
				if err != nil {
					return err
				}
				for _, e := range kvs {
					fmt.Fprintf(stdout, "%s\t%s\n", printable(e.Key), printable(e.Value))
				}
				if more && len(kvs) > 0 {
					fmt.Fprintf(stderr, "more keys may follow; continue after %s\n", strconv.Quote(string(kvs[len(kvs)-1].Key)))
				}
				return nil
			},
		}, true
	}
	return kvCommand{}, false
}

// printable returns b as is if it is plain text that cannot break the
// one-entry-per-line output, and Go-quoted otherwise.
func printable(b []byte) string {
	s := string(b)
	if s == "" || !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || r == '"' {
			return strconv.Quote(s)
		}
	}
	return s
}
