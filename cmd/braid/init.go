package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/config"
)

// clusterFile is the configuration's name inside an init directory.
const clusterFile = "cluster.json"

const initUsage = `Usage: braid init --dir DIR [--n 4] [--m N] [--base-port 7000] [--clients 4] [--http-clients 4] [--kv-scope per-client] [--host 127.0.0.1] [--force]
       braid init --dir DIR --hosts H0,H1,H2,H3 [--m N] [--base-port 7000] [--clients 4] [--http-clients 0] [--kv-scope per-client] [--force]

Writes DIR/cluster.json (the cluster configuration, see docs/config.md),
DIR/keys/replica-I.key for every replica, DIR/keys/client-J.key for
development clients (ids 0…J−1) and DIR/keys/http-I-K.key, the client
keys through which replica I serves the kv/bank HTTP API on its http_addr
(ids after the clients'); the configuration admits every client key.
Replica i listens on host:base-port+i (replicas), base-port+n+i (clients)
and base-port+2n+i (HTTP). braid gateway and the kv HTTP routes need
--kv-scope shared; the gateway serves as many requests at once as it has
client keys (every client key but client-0's): e.g. --clients 65 for 64.

With --hosts, one replica per host for separate machines (n = number of
hosts, 3f+1 of them): every replica listens on its host at base-port
(replicas), base-port+1 (clients) and base-port+2 (HTTP), and DIR/host-I/
holds what host I needs — cluster.json, its own replica key and its HTTP
client keys, never another replica's key — while DIR/clients/ holds
cluster.json and the client keys. A replica binds the addresses as
written, so each host name must resolve, on that host too, to an address
of one of its interfaces (docs/operations.md).

`

// maxHTTPClients bounds --http-clients: keys per replica, each an SDK
// client with a connection to every replica.
const maxHTTPClients = 256

// keyOut is one private key braid init writes.
type keyOut struct {
	path string
	priv auth.PrivateKey
}

// runInit implements `braid init`: a configuration, replica keys, HTTP
// client keys and development client keys, for a cluster on one host or
// (--hosts) one directory per host.
func runInit(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("braid init", initUsage, stderr)
	n := fs.Int("n", 4, "number of replicas; n = 3f+1 tolerates f Byzantine replicas")
	m := fs.Int("m", 0, "number of parallel instances, 1 ≤ m ≤ n (default n − f, so crashed primaries are replaced)")
	dir := fs.String("dir", "", "directory to create the cluster in (required)")
	basePort := fs.Int("base-port", config.DefaultBasePort, "first port; the cluster uses 3n consecutive ports (with --hosts, 3 on every host)")
	clients := fs.Int("clients", 4, "development client keys to generate and admit")
	httpClients := fs.Int("http-clients", 4, fmt.Sprintf("client keys per replica for its kv/bank HTTP API, 0…%d (0: the replicas serve none; the default is 0 with --hosts)", maxHTTPClients))
	host := fs.String("host", config.DefaultHost, "host or IP address every replica listens on")
	hostList := fs.String("hosts", "", "comma-separated hosts or IP addresses, one replica each (replica i on the i-th), for separate machines: a directory per host")
	scope := fs.String("kv-scope", string(config.DefaultKVScope), `kv keyspace: "per-client" (each client key its own) or "shared" (one for all clients; braid gateway and the kv HTTP routes need it)`)
	force := fs.Bool("force", false, "overwrite an existing configuration and key files")
	if stop, err := parseFlagsOnly(fs, args, "braid init"); stop {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var hosts []string
	if set["hosts"] {
		var err error
		if hosts, err = parseHosts(*hostList); err != nil {
			return fmt.Errorf("--hosts: %w", err)
		}
		switch f := (len(hosts) - 1) / 3; {
		case set["host"]:
			return errors.New("--host and --hosts exclude each other: --hosts names every replica's host")
		case set["n"] && *n != len(hosts):
			return fmt.Errorf("--n %d but --hosts names %d hosts: n is the number of hosts (leave --n out)", *n, len(hosts))
		case len(hosts) < 4 || len(hosts) != 3*f+1:
			return fmt.Errorf("--hosts names %d hosts; separate machines need n = 3f+1 ≥ 4 of them (4, 7, 10, …) to tolerate f Byzantine ones, and more than 3f+1 add no tolerance", len(hosts))
		}
		*n = len(hosts)
		if !set["http-clients"] {
			// On real networks the unauthenticated write API is served
			// only when asked for.
			*httpClients = 0
		}
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
	case *httpClients < 0 || *httpClients > maxHTTPClients:
		return fmt.Errorf("--http-clients %d: need 0 ≤ K ≤ %d", *httpClients, maxHTTPClients)
	case *host == "":
		return errors.New("--host cannot be empty")
	}
	if err := config.KVScope(*scope).Check(); err != nil {
		return fmt.Errorf("--kv-scope %w", err)
	}

	cfg := config.Default(*n, *m)
	cfg.KVScope = config.KVScope(*scope)
	if hosts == nil {
		if err := cfg.SetLocalAddresses(*host, *basePort); err != nil {
			return fmt.Errorf("--base-port %d: %w", *basePort, err)
		}
	} else {
		if *basePort < 1 || *basePort+2 > 65535 {
			return fmt.Errorf("--base-port %d: ports %d…%d are outside 1…65535", *basePort, *basePort, *basePort+2)
		}
		for i, h := range hosts {
			r := &cfg.Replicas[i]
			r.Addr = net.JoinHostPort(h, strconv.Itoa(*basePort))
			r.ClientAddr = net.JoinHostPort(h, strconv.Itoa(*basePort+1))
			r.HTTPAddr = net.JoinHostPort(h, strconv.Itoa(*basePort+2))
		}
	}

	// Where everything goes: one directory, or one per host and one for
	// the clients, each with the same configuration and only its own keys.
	replicaDir := func(int) string { return *dir }
	clientDir := *dir
	if hosts != nil {
		replicaDir = func(i int) string { return filepath.Join(*dir, fmt.Sprintf("host-%d", i)) }
		clientDir = filepath.Join(*dir, "clients")
	}
	var cfgPaths []string
	if hosts == nil {
		cfgPaths = []string{filepath.Join(*dir, clusterFile)}
	} else {
		for i := range *n {
			cfgPaths = append(cfgPaths, filepath.Join(replicaDir(i), clusterFile))
		}
		cfgPaths = append(cfgPaths, filepath.Join(clientDir, clusterFile))
	}
	keyPath := func(d, name string) string { return filepath.Join(d, "keys", name) }

	// Keys in memory first, so a failure leaves nothing half-written.
	var keys []keyOut
	replicaPriv, replicaPub, err := generateKeys(*n)
	if err != nil {
		return err
	}
	for i, pub := range replicaPub {
		cfg.Replicas[i].PublicKey = pub
		keys = append(keys, keyOut{keyPath(replicaDir(i), fmt.Sprintf("replica-%d.key", i)), replicaPriv[i]})
	}
	clientPriv, clientPub, err := generateKeys(*clients)
	if err != nil {
		return err
	}
	for j, pub := range clientPub {
		cfg.Clients.Keys = append(cfg.Clients.Keys, config.ClientKey{ID: uint64(j), PublicKey: pub})
		keys = append(keys, keyOut{keyPath(clientDir, fmt.Sprintf("client-%d.key", j)), clientPriv[j]})
	}
	// Each replica's HTTP keys are its own (ids after the clients',
	// replica by replica): a key used by two processes at once would have
	// their request numbers collide.
	if *httpClients > 0 {
		for i := range *n {
			privs, pubs, err := generateKeys(*httpClients)
			if err != nil {
				return err
			}
			for j, pub := range pubs {
				id := uint64(*clients + i**httpClients + j)
				cfg.Clients.Keys = append(cfg.Clients.Keys, config.ClientKey{ID: id, PublicKey: pub})
				keys = append(keys, keyOut{keyPath(replicaDir(i), fmt.Sprintf("http-%d-%d.key", i, j)), privs[j]})
			}
			cfg.Replicas[i].HTTPClientKeys = "keys/http-{id}-*.key"
		}
	}
	if err := cfg.Validate(); err != nil {
		return err // a bug: Default plus flags checked above should always validate
	}

	// Refuse before writing anything: never overwrite a configuration or a
	// private key by accident.
	if !*force {
		var existing []string
		for _, p := range cfgPaths {
			if _, err := os.Lstat(p); err == nil {
				existing = append(existing, p)
			}
		}
		for _, k := range keys {
			if _, err := os.Lstat(k.path); err == nil {
				existing = append(existing, k.path)
			}
		}
		if len(existing) > 0 {
			return fmt.Errorf("%s already exists (%d file(s) would be overwritten); use --force to replace them, or another --dir",
				existing[0], len(existing))
		}
	}
	// Under --force, HTTP client keys of an earlier init that this one
	// does not rewrite (it asked for more, or had other keys) would match
	// the http_client_keys glob yet not be admitted: remove them.
	if *force {
		writing := map[string]bool{}
		for _, k := range keys {
			writing[k.path] = true
		}
		for i := range *n {
			stale, err := filepath.Glob(keyPath(replicaDir(i), fmt.Sprintf("http-%d-*.key", i)))
			if err != nil {
				return err
			}
			for _, p := range stale {
				if !writing[p] {
					if err := os.Remove(p); err != nil {
						return fmt.Errorf("removing the stale HTTP client key %s: %w", p, err)
					}
				}
			}
		}
	}
	for _, k := range keys {
		if err := os.MkdirAll(filepath.Dir(k.path), 0o700); err != nil {
			return err
		}
		if err := auth.WritePrivateKeyFile(k.path, k.priv); err != nil {
			return err
		}
	}
	// The configuration last: it only ever names keys that exist.
	for _, p := range cfgPaths {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := cfg.Save(p); err != nil {
			return err
		}
	}
	if hosts != nil {
		printHosts(stdout, cfg, *dir, hosts, *clients, *httpClients)
	} else {
		printInit(stdout, cfg, cfgPaths[0], *clients, *httpClients)
	}
	return nil
}

// parseHosts splits --hosts: host names or IP addresses (IPv6 without
// brackets), distinct, without ports — the ports come from --base-port.
func parseHosts(list string) ([]string, error) {
	var hosts []string
	seen := map[string]bool{}
	for _, h := range strings.Split(list, ",") {
		h = strings.TrimSpace(h)
		switch {
		case h == "":
			return nil, fmt.Errorf("%q has an empty host: want H0,H1,…", list)
		case len(hosts) == config.MaxReplicas:
			return nil, fmt.Errorf("more than %d hosts", config.MaxReplicas)
		case net.ParseIP(h) == nil && !validHostName(h):
			return nil, fmt.Errorf("%q is neither an IP address nor a host name (letters, digits, '-' and '.'; no port: ports come from --base-port)", h)
		case seen[strings.ToLower(h)]:
			return nil, fmt.Errorf("%q is named twice: one replica per host (for several replicas on one host use --host)", h)
		}
		seen[strings.ToLower(h)] = true
		hosts = append(hosts, h)
	}
	return hosts, nil
}

// validHostName reports whether h is a DNS name: dot-separated labels of
// letters, digits and inner hyphens, at most 253 bytes.
func validHostName(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
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

func printInit(w io.Writer, cfg *config.Config, cfgPath string, clients, httpClients int) {
	dir := filepath.Dir(cfgPath)
	keys := filepath.Join(dir, "keys")
	fmt.Fprintf(w, "Initialised a %d-replica cluster in %s: f = %d, quorum %d, m = %d instances, failure policy %q.\n\n",
		cfg.N, dir, cfg.F(), cfg.Quorum(), cfg.M, cfg.FailurePolicy)
	fmt.Fprintf(w, "  configuration  %s\n", cfgPath)
	fmt.Fprintf(w, "  replica keys   %s (0600; each belongs on its replica's host only)\n", filepath.Join(keys, fmt.Sprintf("replica-{0..%d}.key", cfg.N-1)))
	if clients > 0 {
		fmt.Fprintf(w, "  client keys    %s (admitted in clients.keys; client j has id j)\n", filepath.Join(keys, fmt.Sprintf("client-{0..%d}.key", clients-1)))
	}
	if httpClients > 0 {
		fmt.Fprintf(w, "  HTTP keys      %s (replica I's kv/bank HTTP API submits through its own; http_client_keys)\n", filepath.Join(keys, fmt.Sprintf("http-I-{0..%d}.key", httpClients-1)))
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

// printHosts says what braid init --hosts wrote and how to deploy it:
// which directory goes to which host, the command to run there, and which
// ports must be reachable from where.
func printHosts(w io.Writer, cfg *config.Config, dir string, hosts []string, clients, httpClients int) {
	fmt.Fprintf(w, "Initialised a %d-replica cluster for %d hosts in %s: f = %d, quorum %d, m = %d instances, failure policy %q.\n\n",
		cfg.N, len(hosts), dir, cfg.F(), cfg.Quorum(), cfg.M, cfg.FailurePolicy)
	fmt.Fprintf(w, "  %-3s %-28s %-28s %-28s %s\n", "id", "addr", "client_addr", "http_addr", "directory")
	for i, r := range cfg.Replicas {
		fmt.Fprintf(w, "  %-3d %-28s %-28s %-28s %s\n", r.ID, r.Addr, r.ClientAddr, r.HTTPAddr, filepath.Join(dir, fmt.Sprintf("host-%d", i)))
	}
	fmt.Fprintf(w, "\nEach host-I directory holds cluster.json, replica I's key (keys/replica-I.key, 0600)")
	if httpClients > 0 {
		fmt.Fprintf(w, " and its %d HTTP client keys (keys/http-I-*.key)", httpClients)
	}
	fmt.Fprintf(w, ", and no other replica's key.\n")
	fmt.Fprintf(w, "%s holds cluster.json and %d client keys (keys/client-J.key) for braid kv, bank, gateway and status.\n",
		filepath.Join(dir, "clients"), clients)
	if warns := cfg.Warnings(); len(warns) > 0 {
		fmt.Fprintf(w, "\n%s\n", strings.Join(warns, "\n"))
	}
	fmt.Fprintf(w, "\nCopy each directory to its host only, then start the replica there:\n")
	for i, h := range hosts {
		target := h
		if strings.Contains(h, ":") {
			target = "[" + h + "]" // scp's IPv6 form
		}
		fmt.Fprintf(w, "  scp -r %s %s:   then on %s:   cd host-%d && braid replica --config %s --id %d\n",
			filepath.Join(dir, fmt.Sprintf("host-%d", i)), target, h, i, clusterFile, i)
	}
	_, p, _ := net.SplitHostPort(cfg.Replicas[0].Addr)
	_, cp, _ := net.SplitHostPort(cfg.Replicas[0].ClientAddr)
	_, hp, _ := net.SplitHostPort(cfg.Replicas[0].HTTPAddr)
	fmt.Fprintf(w, "\nPorts on every host: %s from the other replicas (protocol), %s from clients and the other replicas (their HTTP APIs are clients), %s from operators and monitoring (HTTP: metrics, status, dashboard, kv/bank API; no authentication).\n", p, cp, hp)
	fmt.Fprintf(w, "Each replica binds its addresses as written: every host name must resolve, on its own host too, to one of that host's addresses (docs/operations.md).\n")
	fmt.Fprintf(w, "Then: braid status --config %s\n", filepath.Join(dir, "clients", clusterFile))
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
