package main

import (
	"errors"
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

const initUsage = `Usage: braid init --dir DIR [--n 4] [--m N] [--base-port 7000] [--clients 4] [--kv-scope per-client] [--host 127.0.0.1] [--force]

Writes DIR/cluster.json (the cluster configuration, see docs/config.md),
DIR/keys/replica-I.key for every replica and DIR/keys/client-J.key for
development clients, whose public keys the configuration admits. Replica i
listens on host:base-port+i (replicas), base-port+n+i (clients) and
base-port+2n+i (HTTP). braid gateway needs --kv-scope shared, and serves as
many requests at once as it has client keys (it uses every client key but
client-0's): e.g. --clients 65 for 64.

`

// runInit implements `braid init`: a configuration, replica keys and
// development client keys for a cluster on one host.
func runInit(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("braid init", initUsage, stderr)
	n := fs.Int("n", 4, "number of replicas; n = 3f+1 tolerates f Byzantine replicas")
	m := fs.Int("m", 0, "number of parallel instances, 1 ≤ m ≤ n (default n − f, so crashed primaries are replaced)")
	dir := fs.String("dir", "", "directory to create the cluster in (required)")
	basePort := fs.Int("base-port", config.DefaultBasePort, "first port; the cluster uses 3n consecutive ports")
	clients := fs.Int("clients", 4, "development client keys to generate and admit")
	host := fs.String("host", config.DefaultHost, "host or IP address every replica listens on")
	scope := fs.String("kv-scope", string(config.DefaultKVScope), `kv keyspace: "per-client" (each client key its own) or "shared" (one for all clients; braid gateway needs it)`)
	force := fs.Bool("force", false, "overwrite an existing configuration and key files")
	if stop, err := parseFlagsOnly(fs, args, "braid init"); stop {
		return err
	}
	switch {
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
	if err := config.KVScope(*scope).Check(); err != nil {
		return fmt.Errorf("--kv-scope %w", err)
	}

	cfg := config.Default(*n, *m)
	cfg.KVScope = config.KVScope(*scope)
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
	replicaPriv, replicaPub, err := generateKeys(*n)
	if err != nil {
		return err
	}
	for i, pub := range replicaPub {
		cfg.Replicas[i].PublicKey = pub
	}
	clientPriv, clientPub, err := generateKeys(*clients)
	if err != nil {
		return err
	}
	for j, pub := range clientPub {
		cfg.Clients.Keys = append(cfg.Clients.Keys, config.ClientKey{ID: uint64(j), PublicKey: pub})
	}
	if err := cfg.Validate(); err != nil {
		return err // a bug: Default plus flags checked above should always validate
	}

	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		return err
	}
	if err := writeKeyFiles(replicaPriv, replicaKey); err != nil {
		return err
	}
	if err := writeKeyFiles(clientPriv, clientKey); err != nil {
		return err
	}
	// The configuration last: it only ever names keys that exist.
	if err := cfg.Save(cfgPath); err != nil {
		return err
	}

	printInit(stdout, cfg, cfgPath, *clients)
	return nil
}

// generateKeys generates k key pairs: the private keys, and the public
// keys in the configuration's format.
func generateKeys(k int) (privs []auth.PrivateKey, pubs []string, err error) {
	privs, pubs = make([]auth.PrivateKey, k), make([]string, k)
	for i := range privs {
		pub, priv, err := auth.GenerateKey(nil)
		if err != nil {
			return nil, nil, err
		}
		privs[i], pubs[i] = priv, auth.MarshalPublicKey(pub)
	}
	return privs, pubs, nil
}

// writeKeyFiles writes private key i to the file path(i).
func writeKeyFiles(privs []auth.PrivateKey, path func(i int) string) error {
	for i, priv := range privs {
		if err := auth.WritePrivateKeyFile(path(i), priv); err != nil {
			return err
		}
	}
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
	if a := cfg.Replicas[0].HTTPAddr; a != "" {
		fmt.Fprintf(w, "\n  dashboard      http://%s/ (every replica serves its own at its http_addr)\n", a)
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

const keygenUsage = `Usage: braid keygen --out FILE [--force]

Writes a new Ed25519 private key to FILE (permissions 0600) and prints its
public key, as used in the configuration's public_key fields, on stdout.

`

// runKeygen implements `braid keygen`: one Ed25519 key pair. The private
// key goes to --out (0600); the public key, in the configuration's hex
// format, to stdout.
func runKeygen(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("braid keygen", keygenUsage, stderr)
	out := fs.String("out", "", "private key file to write (required)")
	force := fs.Bool("force", false, "overwrite FILE if it exists")
	if stop, err := parseFlagsOnly(fs, args, "braid keygen"); stop {
		return err
	}
	if *out == "" {
		return errors.New("--out is required: the file to write the private key to")
	}
	if err := refuseOverwrite(*out, *force); err != nil {
		return err
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
