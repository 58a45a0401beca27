package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/httpapi"
	"github.com/braid-bft/braid/internal/atomicfile"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/storage"
	berrors "go.etcd.io/bbolt/errors"
)

const ledgerUsage = `Usage:
  braid ledger show --config FILE --id I [--height H | --from A --to B] [--json] [--offline]
  braid ledger verify --config FILE (--dir DATA | --id I [--http] | --export FILE)
  braid ledger export (--dir DATA | --config FILE --id I) --out FILE [--force]

show prints blocks of replica I's ledger: height, round, hashes, the requests
in execution order (client, number, instance, operation) and the certificate's
signers; the last block if no height is given. --json prints the document the
HTTP API serves (GET /v1/blocks/{height}, or /v1/blocks?from=A&to=B for a
range). It asks the running replica over its http_addr, and reads its data
directory offline when it does not answer (or with --offline); stderr says
which.

verify checks a ledger offline with the cluster's public keys: the hash chain,
every client signature and every checkpoint certificate. It prints
  ok: height H, head HASH, C certificates, certified up to height K
and exits 0, or prints
  FAILED at height H: reason
and exits 1. Blocks above the last certificate are hash-chained but not yet
signed by a quorum.

export writes a replica's blocks and certificates to one portable file that
verify --export checks.

verify --http checks replica I's ledger while it runs, fetching its blocks
over its http_addr, up to the height it had when verify started.

DATA is a replica's data directory, the one holding ` + storage.FileName + `;
--id I stands for replica I's data directory as the configuration names it.
A replica holds its store locked while it runs: verify it with --http, or
stop it (or verify an export) first.
`

// runLedger implements `braid ledger`: offline ledger tools.
func runLedger(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, ledgerUsage)
		return exitCode(2)
	}
	switch args[0] {
	case "show":
		return runLedgerShow(args[1:], stdout, stderr)
	case "verify":
		return runLedgerVerify(args[1:], stdout, stderr)
	case "export":
		return runLedgerExport(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, ledgerUsage)
		return nil
	default:
		fmt.Fprintf(stderr, "braid ledger: unknown subcommand %q\n\n%s", args[0], ledgerUsage)
		return exitCode(2)
	}
}

func runLedgerVerify(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("braid ledger verify", ledgerUsage+"\n", stderr)
	cfgPath := fs.String("config", "", "cluster configuration with the replicas' and clients' public keys (required)")
	dir, id := replicaFlags(fs, "verify")
	export := fs.String("export", "", "ledger export file (braid ledger export) to verify instead of a data directory")
	overHTTP := fs.Bool("http", false, "verify replica --id while it runs, over its http_addr")
	timeout := fs.Duration("timeout", time.Minute, "with --http: how long the whole verification may take")
	if stop, err := parseFlagsOnly(fs, args, "braid ledger"); stop {
		return err
	}
	switch {
	case *cfgPath == "":
		return errors.New("--config is required: the cluster configuration holding the public keys")
	case *export != "" && (*dir != "" || *id >= 0):
		return errors.New("--export cannot be combined with --dir or --id")
	case *export == "" && *dir == "" && *id < 0:
		return errors.New("nothing to verify: give --dir DATA, --id I or --export FILE")
	case *overHTTP && (*id < 0 || *dir != "" || *export != ""):
		return errors.New("--http verifies a running replica: give --id I (not --dir or --export)")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	ring, err := cfg.Keyring()
	if err != nil {
		return fmt.Errorf("%s: %w", *cfgPath, err)
	}

	var src ledger.Source
	var what string
	if *overHTTP {
		addr, err := httpAddr(cfg, *id)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		if src, err = httpapi.NewClient(addr, nil).Ledger(ctx); err != nil {
			return fmt.Errorf("replica %d at %s: %w", *id, addr, err)
		}
		what = fmt.Sprintf("replica %d at %s", *id, addr)
		fmt.Fprintf(stderr, "verifying replica %d's ledger over HTTP (%s)\n", *id, addr)
	} else if *export != "" {
		src, err = openExportFile(*export)
		if err != nil {
			return err
		}
		what = *export
	} else {
		st, path, err := openReplicaStore(cfg, *dir, *id)
		if err != nil {
			return err
		}
		defer st.Close()
		src, what = st, path
	}

	rep, err := ledger.Verify(src, ring, cfg.N, ledger.VerifyOptions{})
	var be *ledger.BreakError
	switch {
	case errors.As(err, &be) && errors.Is(err, httpapi.ErrFetch):
		return fmt.Errorf("%s: could not check height %d: %w", what, be.Height, be.Err)
	case errors.As(err, &be):
		fmt.Fprintf(stdout, "FAILED at height %d: %s\n", be.Height, be.Reason)
		return exitCode(1)
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	}
	printReport(stdout, rep)
	return nil
}

func printReport(w io.Writer, rep ledger.Report) {
	if rep.Height == 0 {
		fmt.Fprintln(w, "ok: height 0 (empty ledger)")
		return
	}
	fmt.Fprintf(w, "ok: height %d, head %x, %d certificates, ", rep.Height, rep.Head[:], rep.Certificates)
	if rep.Certified == 0 {
		fmt.Fprintln(w, "no block certified")
	} else {
		fmt.Fprintf(w, "certified up to height %d\n", rep.Certified)
	}
	if rep.Height > rep.Certified {
		fmt.Fprintf(w, "note: blocks %d to %d are hash-chained but not yet covered by a certificate\n", rep.Certified+1, rep.Height)
	}
}

func runLedgerExport(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("braid ledger export", ledgerUsage+"\n", stderr)
	cfgPath := fs.String("config", "", "cluster configuration, to find replica --id's data directory")
	dir, id := replicaFlags(fs, "export")
	out := fs.String("out", "", "export file to write (required)")
	force := fs.Bool("force", false, "overwrite --out if it exists")
	if stop, err := parseFlagsOnly(fs, args, "braid ledger"); stop {
		return err
	}
	switch {
	case *out == "":
		return errors.New("--out is required: the export file to write")
	case *dir == "" && (*id < 0 || *cfgPath == ""):
		return errors.New("nothing to export: give --dir DATA, or --config FILE and --id I")
	}
	var cfg *config.Config
	if *dir == "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
	}
	if err := refuseOverwrite(*out, *force); err != nil {
		return err
	}
	st, path, err := openReplicaStore(cfg, *dir, *id)
	if err != nil {
		return err
	}
	defer st.Close()
	src := &countingSource{Source: st}
	size, err := writeExport(*out, src)
	if err != nil {
		return err
	}
	height, err := src.Height()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintf(stdout, "exported %d blocks and %d certificates from %s to %s (%d bytes)\n",
		height, src.certs, path, *out, size)
	return nil
}

// writeExport writes the export of src to path atomically: a temporary file
// in the same directory, synced and renamed over path (atomicfile), so a failed export
// never leaves a truncated file that looks like a short ledger.
func writeExport(path string, src ledger.Source) (size int64, err error) {
	err = atomicfile.Write(path, 0o644, func(w io.Writer) error {
		cw := &countingWriter{w: w}
		err := ledger.Export(cw, src)
		size = cw.n
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("writing %s: %w", path, err)
	}
	return size, nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// countingSource counts the certificates read through it.
type countingSource struct {
	ledger.Source
	certs int
}

func (c *countingSource) Certificate(h uint64) (*ledger.Certificate, error) {
	cert, err := c.Source.Certificate(h)
	if cert != nil {
		c.certs++
	}
	return cert, err
}

// dataDir returns the data directory to open: dir if given, else replica
// id's from cfg.
// replicaFlags declares --dir and --id, the two ways to name the replica
// data directory a ledger command reads (--id needs --config). An --id
// below -1 is refused when the directory is opened.
func replicaFlags(fs *flag.FlagSet, verb string) (dir *string, id *int) {
	dir = fs.String("dir", "", "replica data directory to "+verb)
	id = fs.Int("id", -1, "replica whose data directory (from --config) to "+verb+", if --dir is not given")
	return dir, id
}

// openReplicaStore opens the ledger of the data directory named by --dir or
// --id and returns it with its file's path, for messages.
func openReplicaStore(cfg *config.Config, dir string, id int) (*storage.Store, string, error) {
	if id < -1 {
		return nil, "", fmt.Errorf("--id %d: replica ids are ≥ 0", id)
	}
	data, err := dataDir(cfg, dir, id)
	if err != nil {
		return nil, "", err
	}
	st, err := openStore(data)
	if err != nil {
		return nil, "", err
	}
	return st, filepath.Join(data, storage.FileName), nil
}

func dataDir(cfg *config.Config, dir string, id int) (string, error) {
	if dir != "" {
		if cfg != nil && id >= cfg.N {
			return "", fmt.Errorf("--id %d: the cluster has replicas 0 to %d", id, cfg.N-1)
		}
		return dir, nil
	}
	if id >= cfg.N {
		return "", fmt.Errorf("--id %d: the cluster has replicas 0 to %d", id, cfg.N-1)
	}
	return cfg.ReplicaDataDir(id), nil
}

// openStore opens the store in an existing data directory. storage.Open
// would create a missing one, so a mistyped path is caught here instead of
// turning into an empty (and valid) ledger.
func openStore(dir string) (*storage.Store, error) {
	path := filepath.Join(dir, storage.FileName)
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return nil, fmt.Errorf("cannot read ledger: %w (is %s a replica data directory?)", err, dir)
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("cannot read ledger: %s is not a regular file", path)
	}
	s, err := storage.Open(dir, storage.Options{})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("cannot read ledger %s: it is locked by another process (a running replica?); stop it, or export and verify the export", path)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read ledger: %w", err) // names the path
	}
	return s, nil
}

// openExportFile reads a ledger export into memory.
func openExportFile(path string) (ledger.Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read export: %w", err)
	}
	defer f.Close()
	src, err := ledger.OpenExport(f)
	if err != nil {
		return nil, fmt.Errorf("cannot read export %s: %w", path, err)
	}
	return src, nil
}
