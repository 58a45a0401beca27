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

// subcommandFlags parses a client subcommand's flags. done is true if the
// command should end with err (nil after --help).
func subcommandFlags(name, usage string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (fs *flag.FlagSet, cf *clientFlags, done bool, err error) {
	fs = flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	cf = &clientFlags{}
	cf.register(fs)
	if extra != nil {
		extra(fs)
	}
	if stop, err := parseFlags(fs, args); stop {
		return nil, nil, true, err
	}
	return fs, cf, false, nil
}

// wantArgs checks the number of positional arguments.
func wantArgs(fs *flag.FlagSet, usage string, lo, hi int) error {
	if n := fs.NArg(); n < lo || n > hi {
		return fmt.Errorf("got %d argument(s), want %s (flags go before arguments; see --help)", n, usage)
	}
	return nil
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
	switch sub {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, kvUsage)
		return nil
	case "put":
		const usage = "braid kv put --config FILE [flags] KEY VALUE"
		fs, cf, done, err := subcommandFlags("braid kv put", usage, rest, stderr, nil)
		if done {
			return err
		}
		if err := wantArgs(fs, "KEY VALUE", 2, 2); err != nil {
			return err
		}
		res, err := cf.run(kv.Put([]byte(fs.Arg(0)), []byte(fs.Arg(1))))
		if err != nil {
			return err
		}
		if err := kv.DecodePut(res); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "ok")
		return nil
	case "get":
		const usage = "braid kv get --config FILE [flags] KEY"
		fs, cf, done, err := subcommandFlags("braid kv get", usage, rest, stderr, nil)
		if done {
			return err
		}
		if err := wantArgs(fs, "KEY", 1, 1); err != nil {
			return err
		}
		res, err := cf.run(kv.Get([]byte(fs.Arg(0))))
		if err != nil {
			return err
		}
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
	case "del", "delete":
		const usage = "braid kv del --config FILE [flags] KEY"
		fs, cf, done, err := subcommandFlags("braid kv del", usage, rest, stderr, nil)
		if done {
			return err
		}
		if err := wantArgs(fs, "KEY", 1, 1); err != nil {
			return err
		}
		res, err := cf.run(kv.Delete([]byte(fs.Arg(0))))
		if err != nil {
			return err
		}
		deleted, err := kv.DecodeDelete(res)
		if err != nil {
			return err
		}
		if !deleted {
			return fmt.Errorf("%q not found", fs.Arg(0))
		}
		fmt.Fprintln(stdout, "ok")
		return nil
	case "scan":
		const usage = "braid kv scan --config FILE [--limit N] [flags] START [END]"
		var limit int
		fs, cf, done, err := subcommandFlags("braid kv scan", usage, rest, stderr, func(fs *flag.FlagSet) {
			fs.IntVar(&limit, "limit", 100, fmt.Sprintf("most entries to print, 1…%d", kv.MaxScanLimit))
		})
		if done {
			return err
		}
		if err := wantArgs(fs, "START [END]", 1, 2); err != nil {
			return err
		}
		if limit < 1 || limit > kv.MaxScanLimit {
			return fmt.Errorf("--limit %d: need 1 ≤ limit ≤ %d", limit, kv.MaxScanLimit)
		}
		res, err := cf.run(kv.Scan([]byte(fs.Arg(0)), []byte(fs.Arg(1)), limit))
		if err != nil {
			return err
		}
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
	}
	fmt.Fprintf(stderr, "braid kv: unknown command %q (want put, get, del or scan)\n\n%s", sub, kvUsage)
	return exitCode(2)
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
