package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/config"
)

// clusterFile is the configuration's name inside an init directory.
const clusterFile = "cluster.json"

// runInit implements `braid init`: a configuration, replica keys and
// development client keys for a cluster on one host.
func runInit(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("braid init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: braid init --dir DIR [--n 4] [--m N] [--base-port 7000] [--clients 4] [--host 127.0.0.1] [--force]

Writes DIR/cluster.json (the cluster configuration, see docs/config.md),
DIR/keys/replica-I.key for every replica and DIR/keys/client-J.key for
development clients, whose public keys the configuration admits. Replica i
listens on host:base-port+i (replicas), base-port+n+i (clients) and
base-port+2n+i (HTTP).

`)
		fs.PrintDefaults()
	}
	n := fs.Int("n", 4, "number of replicas; n = 3f+1 tolerates f Byzantine replicas")
	m := fs.Int("m", 0, "number of parallel instances, 1 ≤ m ≤ n (default n − f, so crashed primaries are replaced)")
	dir := fs.String("dir", "", "directory to create the cluster in (required)")
	basePort := fs.Int("base-port", config.DefaultBasePort, "first port; the cluster uses 3n consecutive ports")
	clients := fs.Int("clients", 4, "development client keys to generate and admit")
	host := fs.String("host", config.DefaultHost, "host or IP address every replica listens on")
	force := fs.Bool("force", false, "overwrite an existing configuration and key files")
	if stop, err := parseFlags(fs, args); stop {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q (flags only; see braid init --help)", fs.Arg(0))
	case *dir == "":
		return errors.New("--dir is required: the directory to write the cluster into")
	case *n < 1 || *n > config.MaxReplicas:
		return fmt.Errorf("--n %d: need 1 ≤ n ≤ %d", *n, config.MaxReplicas)
	case *m < 0 || *m > *n:
		return fmt.Errorf("--m %d: need 1 ≤ m ≤ n = %d", *m, *n)
	case *clients < 0:
		return fmt.Errorf("--clients %d: cannot be negative", *clients)
	case *host == "":
		return errors.New("--host cannot be empty")
	}

	cfg := config.Default(*n, *m)
	if err := cfg.SetLocalAddresses(*host, *basePort); err != nil {
		return fmt.Errorf("--base-port %d: %w", *basePort, err)
	}

	cfgPath := filepath.Join(*dir, clusterFile)
	keyDir := filepath.Join(*dir, "keys")
	replicaKey := func(i int) string { return filepath.Join(keyDir, fmt.Sprintf("replica-%d.key", i)) }
	clientKey := func(j int) string { return filepath.Join(keyDir, fmt.Sprintf("client-%d.key", j)) }

	// Refuse before writing anything: never overwrite a configuration or a
	// private key by accident.
	if !*force {
		var existing []string
		check := func(p string) {
			if _, err := os.Lstat(p); err == nil {
				existing = append(existing, p)
			}
		}
		check(cfgPath)
		for i := range *n {
			check(replicaKey(i))
		}
		for j := range *clients {
			check(clientKey(j))
		}
		if len(existing) > 0 {
			return fmt.Errorf("%s already exists (%d file(s) would be overwritten); use --force to replace them, or another --dir",
				existing[0], len(existing))
		}
	}

	// Keys in memory first, so a failure leaves nothing half-written.
	replicaPriv := make([]auth.PrivateKey, *n)
	for i := range replicaPriv {
		pub, priv, err := auth.GenerateKey(nil)
		if err != nil {
			return err
		}
		replicaPriv[i] = priv
		cfg.Replicas[i].PublicKey = auth.MarshalPublicKey(pub)
	}
	clientPriv := make([]auth.PrivateKey, *clients)
	for j := range clientPriv {
		pub, priv, err := auth.GenerateKey(nil)
		if err != nil {
			return err
		}
		clientPriv[j] = priv
		cfg.Clients.Keys = append(cfg.Clients.Keys, config.ClientKey{ID: uint64(j), PublicKey: auth.MarshalPublicKey(pub)})
	}
	if err := cfg.Validate(); err != nil {
		return err // a bug: Default plus flags checked above should always validate
	}

	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		return err
	}
	for i, priv := range replicaPriv {
		if err := auth.WritePrivateKeyFile(replicaKey(i), priv); err != nil {
			return err
		}
	}
	for j, priv := range clientPriv {
		if err := auth.WritePrivateKeyFile(clientKey(j), priv); err != nil {
			return err
		}
	}
	// The configuration last: it only ever names keys that exist.
	if err := cfg.Save(cfgPath); err != nil {
		return err
	}

	printInit(stdout, cfg, cfgPath, *clients)
	return nil
}

func printInit(w io.Writer, cfg *config.Config, cfgPath string, clients int) {
	dir := filepath.Dir(cfgPath)
	keys := filepath.Join(dir, "keys")
	fmt.Fprintf(w, "Initialised a %d-replica cluster in %s: f = %d, quorum %d, m = %d instances, failure policy %q.\n\n",
		cfg.N, dir, cfg.F(), cfg.Quorum(), cfg.M, cfg.FailurePolicy)
	fmt.Fprintf(w, "  configuration  %s\n", cfgPath)
	fmt.Fprintf(w, "  replica keys   %s (0600; each belongs on its replica's host only)\n", filepath.Join(keys, fmt.Sprintf("replica-{0..%d}.key", cfg.N-1)))
	if clients > 0 {
		fmt.Fprintf(w, "  client keys    %s (admitted in clients.keys; client j has id j)\n", filepath.Join(keys, fmt.Sprintf("client-{0..%d}.key", clients-1)))
	}
	fmt.Fprintf(w, "  data           %s (created by each replica)\n\n", filepath.Join(dir, cfg.DataDir))

	fmt.Fprintf(w, "  %-3s %-22s %-22s %s\n", "id", "addr", "client_addr", "http_addr")
	for _, r := range cfg.Replicas {
		fmt.Fprintf(w, "  %-3d %-22s %-22s %s\n", r.ID, r.Addr, r.ClientAddr, r.HTTPAddr)
	}
	if warns := cfg.Warnings(); len(warns) > 0 {
		fmt.Fprintf(w, "\n%s\n", strings.Join(warns, "\n"))
	}
	fmt.Fprintf(w, "\nNext, start every replica (one terminal each):\n")
	for id := range cfg.N {
		if cfg.N > 5 && id == 3 {
			fmt.Fprintf(w, "  ...\n")
			id = cfg.N - 1
		} else if cfg.N > 5 && id > 3 {
			break
		}
		fmt.Fprintf(w, "  braid replica --config %s --id %d\n", cfgPath, id)
	}
	fmt.Fprintf(w, "Edit %s to change protocol parameters (every field: docs/config.md).\n", cfgPath)
}

// runKeygen implements `braid keygen`: one Ed25519 key pair. The private
// key goes to --out (0600); the public key, in the configuration's hex
// format, to stdout.
func runKeygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("braid keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: braid keygen --out FILE [--force]

Writes a new Ed25519 private key to FILE (permissions 0600) and prints its
public key, as used in the configuration's public_key fields, on stdout.

`)
		fs.PrintDefaults()
	}
	out := fs.String("out", "", "private key file to write (required)")
	force := fs.Bool("force", false, "overwrite FILE if it exists")
	if stop, err := parseFlags(fs, args); stop {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q (flags only; see braid keygen --help)", fs.Arg(0))
	case *out == "":
		return errors.New("--out is required: the file to write the private key to")
	}
	if _, err := os.Lstat(*out); err == nil && !*force {
		return fmt.Errorf("%s already exists; use --force to replace it", *out)
	}
	pub, priv, err := auth.GenerateKey(nil)
	if err != nil {
		return err
	}
	if err := auth.WritePrivateKeyFile(*out, priv); err != nil {
		return err
	}
	fmt.Fprintln(stdout, auth.MarshalPublicKey(pub))
	fmt.Fprintf(stderr, "wrote private key %s; the public key above goes in the configuration\n", *out)
	return nil
}
