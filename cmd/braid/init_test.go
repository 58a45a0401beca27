package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/internal/testcluster"
)

func keyMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestInitWritesLoadableCluster(t *testing.T) {
	for _, tt := range []struct {
		n, m, clients int
		policy        config.FailurePolicy
	}{
		{4, 0, 4, config.Replace}, // default m = n−f
		{4, 4, 4, config.InPlace},
		{4, 1, 2, config.Replace},
		{7, 5, 0, config.Replace},
		{1, 0, 1, config.Replace},
	} {
		t.Run(fmt.Sprintf("n=%d,m=%d,clients=%d", tt.n, tt.m, tt.clients), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "cluster")
			args := []string{"--n", fmt.Sprint(tt.n), "--dir", dir, "--clients", fmt.Sprint(tt.clients), "--base-port", "17000", "--http-clients", "0"}
			if tt.m > 0 {
				args = append(args, "--m", fmt.Sprint(tt.m))
			}
			stdout, _, err := runCmd(runInit, args...)
			if err != nil {
				t.Fatal(err)
			}
			cfgPath := filepath.Join(dir, "cluster.json")
			cfg, err := config.Load(cfgPath)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			wantM := tt.m
			if wantM == 0 {
				wantM = config.DefaultM(tt.n)
			}
			if cfg.N != tt.n || cfg.M != wantM || cfg.FailurePolicy != tt.policy {
				t.Errorf("n, m, policy = %d, %d, %q", cfg.N, cfg.M, cfg.FailurePolicy)
			}
			for i := range tt.n {
				r, ok := cfg.Replica(i)
				if !ok {
					t.Fatalf("no replica %d", i)
				}
				if want := fmt.Sprintf("127.0.0.1:%d", 17000+i); r.Addr != want {
					t.Errorf("replica %d addr %q, want %q", i, r.Addr, want)
				}
				if want := fmt.Sprintf("127.0.0.1:%d", 17000+tt.n+i); r.ClientAddr != want {
					t.Errorf("replica %d client_addr %q, want %q", i, r.ClientAddr, want)
				}
				keyPath := filepath.Join(dir, "keys", fmt.Sprintf("replica-%d.key", i))
				if got := cfg.ReplicaKeyFile(i); got != keyPath {
					t.Errorf("ReplicaKeyFile(%d) = %q, want %q", i, got, keyPath)
				}
				priv, err := cfg.ReplicaKey(i) // reads the file and checks it against public_key
				if err != nil {
					t.Fatal(err)
				}
				if auth.MarshalPublicKey(priv.Public()) != r.PublicKey {
					t.Errorf("replica %d key file does not match the configuration", i)
				}
				if mode := keyMode(t, keyPath); mode != 0o600 {
					t.Errorf("%s has mode %v, want 0600", keyPath, mode)
				}
				if !strings.Contains(stdout, fmt.Sprintf("braid replica --config %s --id %d", cfgPath, i)) && tt.n <= 5 {
					t.Errorf("output lacks the command for replica %d:\n%s", i, stdout)
				}
			}
			if len(cfg.Clients.Keys) != tt.clients || cfg.Clients.Admission != config.AdmissionList {
				t.Fatalf("clients = %+v", cfg.Clients)
			}
			for j, k := range cfg.Clients.Keys {
				keyPath := filepath.Join(dir, "keys", fmt.Sprintf("client-%d.key", j))
				priv, err := auth.ReadPrivateKeyFile(keyPath)
				if err != nil {
					t.Fatal(err)
				}
				if k.ID != uint64(j) || auth.MarshalPublicKey(priv.Public()) != k.PublicKey {
					t.Errorf("clients.keys[%d] = %+v does not match %s", j, k, keyPath)
				}
				if mode := keyMode(t, keyPath); mode != 0o600 {
					t.Errorf("%s has mode %v, want 0600", keyPath, mode)
				}
			}
			if mode := keyMode(t, filepath.Join(dir, "keys")); mode != 0o700 {
				t.Errorf("keys directory mode %v, want 0700", mode)
			}
			if !strings.Contains(stdout, cfgPath) {
				t.Errorf("output does not say where the configuration is:\n%s", stdout)
			}
			if tt.n < 4 && !strings.Contains(stdout, "warning: n:") {
				t.Errorf("no fault-tolerance warning for n=%d:\n%s", tt.n, stdout)
			}
		})
	}
}

func TestInitRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := runCmd(runInit, "--dir", dir); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "cluster.json")
	before, _ := os.ReadFile(cfgPath)
	key0 := filepath.Join(dir, "keys", "replica-0.key")
	keyBefore, _ := os.ReadFile(key0)

	_, _, err := runCmd(runInit, "--dir", dir)
	if err == nil || !strings.Contains(err.Error(), "already exists") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second init without --force: %v", err)
	}
	if after, _ := os.ReadFile(cfgPath); !bytes.Equal(before, after) {
		t.Error("refused init changed cluster.json")
	}
	if after, _ := os.ReadFile(key0); !bytes.Equal(keyBefore, after) {
		t.Error("refused init changed a key")
	}

	// A lone key file is protected too (e.g. cluster.json was deleted).
	if err := os.Remove(cfgPath); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCmd(runInit, "--dir", dir); err == nil || !strings.Contains(err.Error(), "replica-0.key") {
		t.Fatalf("init over existing keys without --force: %v", err)
	}

	if _, _, err := runCmd(runInit, "--dir", dir, "--force", "--n", "7"); err != nil {
		t.Fatalf("--force: %v", err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.N != 7 {
		t.Errorf("--force did not replace the configuration: n = %d", cfg.N)
	}
	if after, _ := os.ReadFile(key0); bytes.Equal(keyBefore, after) {
		t.Error("--force kept the old replica-0 key")
	}
	for i := range 7 {
		if _, err := cfg.ReplicaKey(i); err != nil {
			t.Error(err)
		}
	}
}

func TestInitFlagErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{}, "--dir is required"},
		{[]string{"--dir", dir, "--n", "0"}, "--n 0"},
		{[]string{"--dir", dir, "--n", "4", "--m", "5"}, "--m 5"},
		{[]string{"--dir", dir, "--clients", "-1"}, "--clients -1"},
		{[]string{"--dir", dir, "--http-clients", "-1"}, "--http-clients -1"},
		{[]string{"--dir", dir, "--http-clients", "257"}, "--http-clients 257"},
		{[]string{"--dir", dir, "--hosts", "a,b,c"}, "3 hosts"},
		{[]string{"--dir", dir, "--hosts", "a,b,c,d,e"}, "5 hosts"},
		{[]string{"--dir", dir, "--hosts", "a,b,c,A"}, `"A" is named twice`},
		{[]string{"--dir", dir, "--hosts", "a,b,,d"}, "empty host"},
		{[]string{"--dir", dir, "--hosts", ""}, "empty host"},
		{[]string{"--dir", dir, "--hosts", "a:7000,b,c,d"}, `"a:7000" is neither`},
		{[]string{"--dir", dir, "--hosts", "a,b,c,-d"}, `"-d" is neither`},
		{[]string{"--dir", dir, "--hosts", "a,b,c,d", "--n", "7"}, "--n 7 but --hosts names 4"},
		{[]string{"--dir", dir, "--hosts", "a,b,c,d", "--host", "10.0.0.1"}, "--host and --hosts"},
		{[]string{"--dir", dir, "--hosts", "a,b,c,d", "--base-port", "65534"}, "--base-port 65534"},
		{[]string{"--dir", dir, "--base-port", "65530"}, "--base-port 65530"},
		{[]string{"--dir", dir, "--host", ""}, "--host"},
		{[]string{"--dir", dir, "--kv-scope", "global"}, `--kv-scope "global"`},
		{[]string{"--dir", dir, "extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, _, err := runCmd(runInit, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("a rejected init wrote %d entries", len(entries))
			}
		})
	}
	if _, stderr, err := runCmd(runInit, "--bogus"); err != exitCode(2) || !strings.Contains(stderr, "Usage: braid init") {
		t.Errorf("unknown flag: err %v, stderr %q", err, stderr)
	}
	if _, stderr, err := runCmd(runInit, "--help"); err != nil || !strings.Contains(stderr, "--base-port") {
		t.Errorf("--help: err %v, stderr %q", err, stderr)
	}
}

func TestInitHostAndIPv6(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := runCmd(runInit, "--dir", dir, "--host", "::1", "--base-port", "9000", "--clients", "1"); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(dir, "cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := cfg.Replica(3); r.Addr != "[::1]:9003" || r.ClientAddr != "[::1]:9007" || r.HTTPAddr != "[::1]:9011" {
		t.Errorf("replica 3 = %+v", r)
	}
}

func TestKeygen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "my.key")
	var out, errOut bytes.Buffer
	if err := runKeygen([]string{"--out", path}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	pub, err := auth.ParsePublicKey(out.String())
	if err != nil {
		t.Fatalf("stdout %q is not a public key: %v", out.String(), err)
	}
	priv, err := auth.ReadPrivateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !priv.Public().Equal(pub) {
		t.Error("printed public key does not match the key file")
	}
	if mode := keyMode(t, path); mode != 0o600 {
		t.Errorf("key file mode %v, want 0600", mode)
	}
	before, _ := os.ReadFile(path)
	if err := runKeygen([]string{"--out", path}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("keygen over an existing file: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("refused keygen changed the file")
	}
	out.Reset()
	if err := runKeygen([]string{"--out", path, "--force"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(path); bytes.Equal(before, after) {
		t.Error("--force did not replace the key")
	}
	if err := runKeygen(nil, &out, &errOut); err == nil || !strings.Contains(err.Error(), "--out is required") {
		t.Errorf("keygen without --out: %v", err)
	}
}

func TestInitKVScope(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want config.KVScope
	}{{nil, config.KVPerClient}, {[]string{"--kv-scope", "shared"}, config.KVShared}} {
		dir := filepath.Join(t.TempDir(), "c")
		if _, _, err := runCmd(runInit, append([]string{"--dir", dir, "--base-port", "7100"}, tc.args...)...); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(filepath.Join(dir, clusterFile))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.KVScope != tc.want {
			t.Errorf("%q: kv_scope %q, want %q", tc.args, cfg.KVScope, tc.want)
		}
	}
}

// Every replica gets its own --http-clients keys, admitted with ids after
// the development clients' and distinct across replicas, and its
// http_client_keys glob finds exactly its own; --http-clients 0 gives none.
func TestInitHTTPClients(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	if _, _, err := runCmd(runInit, "--dir", dir, "--clients", "3", "--http-clients", "2", "--base-port", "7200"); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(dir, clusterFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Clients.Keys) != 3+4*2 {
		t.Fatalf("%d admitted keys, want 3 clients + 4 replicas × 2", len(cfg.Clients.Keys))
	}
	owner := map[uint64]int{} // admitted id → replica whose HTTP key it is
	for i := range cfg.N {
		files, err := filepath.Glob(cfg.ReplicaHTTPClientKeys(i))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{filepath.Join(dir, "keys", fmt.Sprintf("http-%d-0.key", i)), filepath.Join(dir, "keys", fmt.Sprintf("http-%d-1.key", i))}
		if !slices.Equal(files, want) {
			t.Fatalf("replica %d's http_client_keys match %q, want %q", i, files, want)
		}
		keys, err := readPoolKeys(cfg, files)
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		for _, k := range keys {
			if k.ID < 3 {
				t.Errorf("replica %d's HTTP key has id %d, a development client's", i, k.ID)
			}
			if prev, dup := owner[uint64(k.ID)]; dup {
				t.Errorf("id %d belongs to replicas %d and %d", k.ID, prev, i)
			}
			owner[uint64(k.ID)] = i
		}
	}
	// braid gateway's default keys are the development clients' only.
	gw, err := gatewayKeys(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range gw {
		if _, ok := owner[uint64(k.ID)]; ok {
			t.Errorf("the gateway's default keys include replica %d's HTTP key %d", owner[uint64(k.ID)], k.ID)
		}
	}

	none := filepath.Join(t.TempDir(), "c")
	if _, _, err := runCmd(runInit, "--dir", none, "--http-clients", "0"); err != nil {
		t.Fatal(err)
	}
	cfg, err = config.Load(filepath.Join(none, clusterFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Clients.Keys) != 4 || cfg.ReplicaHTTPClientKeys(0) != "" {
		t.Errorf("--http-clients 0: %d keys, glob %q", len(cfg.Clients.Keys), cfg.ReplicaHTTPClientKeys(0))
	}
	if files, _ := filepath.Glob(filepath.Join(none, "keys", "http-*")); len(files) != 0 {
		t.Errorf("--http-clients 0 wrote %q", files)
	}
}

// braid init --hosts: one directory per host with the same configuration,
// that replica's key and its HTTP keys only — no file in it holds another
// replica's private key —, a clients directory without any replica key,
// every replica on its own host at the same three ports, and the
// instructions to deploy it.
func TestInitHosts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "prod")
	hosts := []string{"alpha.example.org", "beta.example.org", "10.1.2.3", "2001:db8::7"}
	stdout, _, err := runCmd(runInit, "--dir", dir, "--hosts", strings.Join(hosts, ","), "--base-port", "9100", "--kv-scope", "shared", "--http-clients", "4")
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{} // a replica's private key file contents → its name
	for i := range hosts {
		data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("host-%d", i), "keys", fmt.Sprintf("replica-%d.key", i)))
		if err != nil {
			t.Fatal(err)
		}
		secrets[strings.TrimSpace(string(data))] = fmt.Sprintf("replica-%d", i)
	}
	if len(secrets) != len(hosts) {
		t.Fatal("replica keys are not distinct")
	}
	var first []byte
	for i, h := range hosts {
		hostDir := filepath.Join(dir, fmt.Sprintf("host-%d", i))
		cfgPath := filepath.Join(hostDir, clusterFile)
		data, err := os.ReadFile(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = data
		} else if !bytes.Equal(data, first) {
			t.Errorf("%s differs from host-0's configuration", cfgPath)
		}
		cfg, err := config.Load(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.N != len(hosts) || cfg.F() != 1 {
			t.Fatalf("n = %d, f = %d", cfg.N, cfg.F())
		}
		r, _ := cfg.Replica(i)
		hp := func(port string) string { return net.JoinHostPort(h, port) }
		if r.Addr != hp("9100") || r.ClientAddr != hp("9101") || r.HTTPAddr != hp("9102") {
			t.Errorf("replica %d = %+v, want %s at ports 9100…9102", i, r, h)
		}
		if _, err := cfg.ReplicaKey(i); err != nil {
			t.Errorf("host-%d: its own key: %v", i, err)
		}
		for j := range hosts {
			if _, err := cfg.ReplicaKey(j); j != i && err == nil {
				t.Errorf("host-%d holds replica %d's key", i, j)
			}
		}
		// Its HTTP API starts from this directory alone.
		api, err := newReplicaAPI(cfg, i, "", testcluster.Logger())
		if err != nil {
			t.Fatalf("host-%d: %v", i, err)
		}
		if api.pool == nil || api.pool.Size() != 4 {
			t.Errorf("host-%d: HTTP pool %v, want 4 keys", i, api.pool)
		}
		api.close()
		// No file anywhere in the directory holds another replica's key.
		err = filepath.WalkDir(hostDir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for secret, name := range secrets {
				if name != fmt.Sprintf("replica-%d", i) && bytes.Contains(data, []byte(secret)) {
					t.Errorf("%s holds %s's private key", p, name)
				}
			}
			if strings.HasPrefix(filepath.Base(p), "client-") {
				t.Errorf("%s: development client keys belong in clients/", p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stdout, fmt.Sprintf("cd host-%d && braid replica --config cluster.json --id %d", i, i)) || !strings.Contains(stdout, "scp -r "+hostDir) {
			t.Errorf("output lacks host %d's instructions:\n%s", i, stdout)
		}
	}
	clientDir := filepath.Join(dir, "clients")
	if data, err := os.ReadFile(filepath.Join(clientDir, clusterFile)); err != nil || !bytes.Equal(data, first) {
		t.Errorf("clients/cluster.json differs or is missing: %v", err)
	}
	entries, err := os.ReadDir(filepath.Join(clientDir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"client-0.key", "client-1.key", "client-2.key", "client-3.key"}; !slices.Equal(names, want) {
		t.Errorf("clients/keys holds %q, want %q", names, want)
	}
	if mode := keyMode(t, filepath.Join(dir, "host-2", "keys")); mode != 0o700 {
		t.Errorf("host-2/keys mode %v, want 0700", mode)
	}
	// A second run refuses to overwrite any of it.
	if _, _, err := runCmd(runInit, "--dir", dir, "--hosts", strings.Join(hosts, ",")); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("second --hosts init: %v", err)
	}
}

// TestInitHostsNoHTTPClientsByDefault: braid init --hosts, for real
// networks, gives the replicas no HTTP client keys (no kv/bank write API)
// unless --http-clients asks for them.
func TestInitHostsNoHTTPClientsByDefault(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "prod")
	if _, _, err := runCmd(runInit, "--dir", dir, "--hosts", "a.example,b.example,c.example,d.example"); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(dir, "host-0", clusterFile))
	if err != nil {
		t.Fatal(err)
	}
	for i := range cfg.N {
		if r, _ := cfg.Replica(i); r.HTTPClientKeys != "" {
			t.Errorf("replica %d: http_client_keys %v, want none", i, r.HTTPClientKeys)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*", "keys", "http-*.key")); len(m) != 0 {
		t.Errorf("HTTP client key files written: %v", m)
	}
}

// TestInitForceRemovesStaleHTTPKeys: braid init --force with fewer
// --http-clients removes the HTTP key files it does not rewrite, which
// would otherwise match http_client_keys without being admitted and fail
// the replica's HTTP pool.
func TestInitForceRemovesStaleHTTPKeys(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := runCmd(runInit, "--dir", dir, "--kv-scope", "shared", "--http-clients", "4"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCmd(runInit, "--dir", dir, "--kv-scope", "shared", "--http-clients", "2", "--force"); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "keys", "http-0-*.key")); len(m) != 2 {
		t.Errorf("replica 0's HTTP key files after --force: %v, want 2", m)
	}
	cfg, err := config.Load(filepath.Join(dir, clusterFile))
	if err != nil {
		t.Fatal(err)
	}
	for i := range cfg.N {
		api, err := newReplicaAPI(cfg, i, "", testcluster.Logger())
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		if api.pool == nil || api.pool.Size() != 2 {
			t.Errorf("replica %d: HTTP pool %v, want 2 keys", i, api.pool)
		}
		api.close()
	}
	// --http-clients 0 under --force leaves none behind.
	if _, _, err := runCmd(runInit, "--dir", dir, "--http-clients", "0", "--force"); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "keys", "http-*.key")); len(m) != 0 {
		t.Errorf("HTTP key files after --force --http-clients 0: %v", m)
	}
}
