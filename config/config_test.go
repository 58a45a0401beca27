package config

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/quorum"
)

var update = flag.Bool("update", false, "rewrite the generated example in ../docs/config.md")

// testKey derives a deterministic key pair from a label.
func testKey(t testing.TB, label string) (auth.PublicKey, auth.PrivateKey) {
	t.Helper()
	seed := sha256.Sum256([]byte("braid config example " + label))
	priv, err := auth.NewKeyFromSeed(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return priv.Public(), priv
}

// validConfig is Default(n, m) with deterministic replica keys and the
// given number of admitted clients.
func validConfig(t testing.TB, n, m, clients int) *Config {
	t.Helper()
	c := Default(n, m)
	for i := range c.Replicas {
		pub, _ := testKey(t, fmt.Sprintf("replica-%d", i))
		c.Replicas[i].PublicKey = auth.MarshalPublicKey(pub)
	}
	for j := range clients {
		pub, _ := testKey(t, fmt.Sprintf("client-%d", j))
		c.Clients.Keys = append(c.Clients.Keys, ClientKey{ID: uint64(j), PublicKey: auth.MarshalPublicKey(pub)})
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("validConfig(%d, %d): %v", n, m, err)
	}
	return c
}

func fieldsOf(err error) []string {
	var fs []string
	for _, p := range Problems(err) {
		fs = append(fs, p.Field)
	}
	return fs
}

func TestDefault(t *testing.T) {
	tests := []struct {
		n, m    int
		wantM   int
		wantPol FailurePolicy
	}{
		{4, 0, 3, Replace}, // default m = n−f: crashed primaries are replaced
		{4, 4, 4, InPlace}, // RCC's usual m = n > n−f
		{4, 3, 3, Replace}, // m = n−f: a spare replica exists
		{4, 1, 1, Replace}, // plain PBFT
		{7, 6, 6, InPlace}, // n−f = 5
		{7, 5, 5, Replace}, // m = n−f
		{1, 0, 1, Replace}, // f = 0
		{10, 0, 7, Replace},
		{10, 10, 10, InPlace},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("n=%d,m=%d", tt.n, tt.m), func(t *testing.T) {
			c := validConfig(t, tt.n, tt.m, 1)
			if c.M != tt.wantM || c.FailurePolicy != tt.wantPol {
				t.Errorf("m, failure_policy = %d, %q; want %d, %q", c.M, c.FailurePolicy, tt.wantM, tt.wantPol)
			}
			if c.BatchSize != 100 || c.CheckpointInterval != 16 || c.Window != 64 || c.Sigma != 32 || c.Epsilon != 8 ||
				c.Tick != "10ms" || c.RequestTimeout != 40 || c.ProgressTimeout != 40 || c.ViewChangeTimeout != 40 ||
				c.Fsync != FsyncPerBatch || c.GroupCommitInterval != "2ms" || c.DataDir != "data/replica-{id}" ||
				c.KVScope != KVPerClient || c.Clients.Admission != AdmissionList {
				t.Errorf("defaults not applied: %+v", c)
			}
			for i, r := range c.Replicas {
				if r.ID != i || r.KeyFile != "keys/replica-{id}.key" {
					t.Errorf("replicas[%d] = %+v", i, r)
				}
			}
			if r, _ := c.Replica(0); r.Addr != "127.0.0.1:7000" || r.ClientAddr != fmt.Sprintf("127.0.0.1:%d", 7000+tt.n) ||
				r.HTTPAddr != fmt.Sprintf("127.0.0.1:%d", 7000+2*tt.n) {
				t.Errorf("replica 0 addresses = %+v", r)
			}
		})
	}
}

func TestApplyDefaultsDerived(t *testing.T) {
	c := &Config{N: 4, CheckpointInterval: 32}
	c.ApplyDefaults()
	if c.Window != 128 || c.Sigma != 64 || c.Epsilon != 16 {
		t.Errorf("window, sigma, epsilon = %d, %d, %d; want 128, 64, 16", c.Window, c.Sigma, c.Epsilon)
	}
	c = &Config{N: 4, Window: 48, CheckpointInterval: 8, Sigma: 5}
	c.ApplyDefaults()
	if c.Window != 48 || c.Sigma != 5 || c.Epsilon != 4 {
		t.Errorf("explicit values overwritten: window, sigma, epsilon = %d, %d, %d", c.Window, c.Sigma, c.Epsilon)
	}
	// Tiny windows still get a usable sigma.
	c = &Config{N: 4, CheckpointInterval: 1, Window: 4}
	c.ApplyDefaults()
	if c.Sigma != 2 {
		t.Errorf("sigma = %d, want 2", c.Sigma)
	}
	// Idempotent.
	before := *validConfig(t, 4, 0, 2)
	after := before
	after.ApplyDefaults()
	if !reflect.DeepEqual(before, after) {
		t.Error("ApplyDefaults changed a defaulted config")
	}
}

func TestValidateNamesField(t *testing.T) {
	otherKey := func(label string) string {
		pub, _ := testKey(t, label)
		return auth.MarshalPublicKey(pub)
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
		field  string
		want   string // substring of the message
	}{
		{"n zero", func(c *Config) { c.N = 0; c.M = 0 }, "n", "at least 1"},
		{"n too large", func(c *Config) { c.N = 2000; c.M = 1 }, "n", "at most 1024"},
		{"m zero", func(c *Config) { c.M = 0 }, "m", "1 ≤ m ≤ n"},
		{"m above n", func(c *Config) { c.M = 5 }, "m", "1 ≤ m ≤ n = 4"},
		{"failure_policy unknown", func(c *Config) { c.FailurePolicy = "retry" }, "failure_policy", `"retry"`},
		{"replace with m > n-f", func(c *Config) { c.FailurePolicy = Replace }, "failure_policy", "m ≤ n − f = 3"},
		{"in-place with m ≤ f", func(c *Config) { c.M = 1; c.FailurePolicy = InPlace }, "failure_policy", "m > f = 1"},
		{"checkpoint_interval zero", func(c *Config) { c.CheckpointInterval = 0 }, "checkpoint_interval", "at least 1"},
		{"window not a multiple", func(c *Config) { c.Window = 40 }, "window", "multiple of checkpoint_interval"},
		{"window below 2K", func(c *Config) { c.Window = 16 }, "window", "at least twice"},
		{"window above max", func(c *Config) { c.Window = 8192 }, "window", "at most 4096"},
		{"sigma too large", func(c *Config) { c.Sigma = 48 }, "sigma", "below window − checkpoint_interval = 64 − 16 = 48"},
		{"sigma zero", func(c *Config) { c.Sigma = 0 }, "sigma", "at least 1"},
		{"epsilon zero", func(c *Config) { c.Epsilon = 0 }, "epsilon", "at least 1"},
		{"batch_size zero", func(c *Config) { c.BatchSize = 0 }, "batch_size", "1 ≤ batch_size ≤ 4096"},
		{"batch_size too large", func(c *Config) { c.BatchSize = 4097 }, "batch_size", "4096"},
		{"tick no unit", func(c *Config) { c.Tick = "10" }, "tick", "not a duration"},
		{"tick negative", func(c *Config) { c.Tick = "-1s" }, "tick", "positive"},
		{"tick missing", func(c *Config) { c.Tick = "" }, "tick", "missing"},
		{"request_timeout", func(c *Config) { c.RequestTimeout = 0 }, "request_timeout", "at least 1 tick"},
		{"progress_timeout", func(c *Config) { c.ProgressTimeout = -3 }, "progress_timeout", "at least 1 tick"},
		{"view_change_timeout", func(c *Config) { c.ViewChangeTimeout = 0 }, "view_change_timeout", "at least 1 tick"},
		{"fsync unknown", func(c *Config) { c.Fsync = "always" }, "fsync", `"always"`},
		{"group_commit_interval zero", func(c *Config) { c.Fsync = FsyncGroup; c.GroupCommitInterval = "0s" }, "group_commit_interval", "positive"},
		{"group_commit_interval garbage", func(c *Config) { c.GroupCommitInterval = "soon" }, "group_commit_interval", "not a duration"},
		{"data_dir empty", func(c *Config) { c.DataDir = "" }, "data_dir", "missing"},
		{"kv_scope unknown", func(c *Config) { c.KVScope = "global" }, "kv_scope", `"global"`},
		{"too few replicas", func(c *Config) { c.Replicas = c.Replicas[:3] }, "replicas", "lists 3 replicas, but n is 4"},
		{"replica id out of range", func(c *Config) { c.Replicas[3].ID = 4 }, "replicas[3].id", "outside 0…3"},
		{"replica id duplicate", func(c *Config) { c.Replicas[3].ID = 1 }, "replicas[3].id", "also the id of replicas[1]"},
		{"addr not host:port", func(c *Config) { c.Replicas[2].Addr = "x" }, "replicas[2].addr", `"x" is not host:port`},
		{"addr no host", func(c *Config) { c.Replicas[2].Addr = ":7000" }, "replicas[2].addr", "no host"},
		{"addr port zero", func(c *Config) { c.Replicas[2].Addr = "h:0" }, "replicas[2].addr", "1…65535"},
		{"addr port text", func(c *Config) { c.Replicas[2].Addr = "h:http" }, "replicas[2].addr", "1…65535"},
		{"addr missing", func(c *Config) { c.Replicas[0].Addr = "" }, "replicas[0].addr", "missing"},
		{"client_addr missing", func(c *Config) { c.Replicas[1].ClientAddr = "" }, "replicas[1].client_addr", "missing"},
		{"client_addr reuses addr", func(c *Config) { c.Replicas[1].ClientAddr = c.Replicas[0].Addr }, "replicas[1].client_addr", "already used by replicas[0].addr"},
		{"http_addr bad", func(c *Config) { c.Replicas[0].HTTPAddr = "localhost" }, "replicas[0].http_addr", "not host:port"},
		{"public_key missing", func(c *Config) { c.Replicas[1].PublicKey = "" }, "replicas[1].public_key", "missing"},
		{"public_key short", func(c *Config) { c.Replicas[1].PublicKey = "abcd" }, "replicas[1].public_key", "want 64"},
		{"public_key not hex", func(c *Config) { c.Replicas[1].PublicKey = strings.Repeat("zz", 32) }, "replicas[1].public_key", "not valid hex"},
		{"public_key duplicate", func(c *Config) { c.Replicas[2].PublicKey = c.Replicas[0].PublicKey }, "replicas[2].public_key", "also the key of replicas[0]"},
		{"key_file empty", func(c *Config) { c.Replicas[0].KeyFile = "" }, "replicas[0].key_file", "missing"},
		{"http_client_keys bad glob", func(c *Config) { c.Replicas[1].HTTPClientKeys = "keys/http-[{id}.key" }, "replicas[1].http_client_keys", "not a valid glob"},
		{"http_client_keys too long", func(c *Config) { c.Replicas[1].HTTPClientKeys = strings.Repeat("a", 4097) }, "replicas[1].http_client_keys", "at most 4096"},
		{"admission unknown", func(c *Config) { c.Clients.Admission = "closed" }, "clients.admission", `"closed"`},
		{"admission open", func(c *Config) { c.Clients.Admission = "open" }, "clients.admission", "list every client's key in clients.keys"},
		{"client id duplicate", func(c *Config) {
			c.Clients.Keys = append(c.Clients.Keys, ClientKey{ID: 0, PublicKey: otherKey("x")})
		}, "clients.keys[2].id", "also the id of clients.keys[0]"},
		{"client key bad", func(c *Config) { c.Clients.Keys[1].PublicKey = "00" }, "clients.keys[1].public_key", "want 64"},
		{"client key missing", func(c *Config) { c.Clients.Keys[1].PublicKey = "" }, "clients.keys[1].public_key", "missing"},
		{"client key duplicate", func(c *Config) { c.Clients.Keys[1].PublicKey = c.Clients.Keys[0].PublicKey }, "clients.keys[1].public_key", "also the key of clients.keys[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig(t, 4, 4, 2)
			tt.mutate(c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate accepted an invalid config")
			}
			if got := fieldsOf(err); !slices.Equal(got, []string{tt.field}) {
				t.Fatalf("problems in fields %q, want exactly [%q]; error:\n%v", got, tt.field, err)
			}
			prefix := "config: " + tt.field + ": "
			if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q: want prefix %q and to contain %q", err, prefix, tt.want)
			}
		})
	}
}

func TestValidateAcceptsBoundaries(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
	}{
		{"sigma just below bound", func(c *Config) { c.Sigma = 47 }},
		{"window exactly 2K", func(c *Config) { c.Window = 32; c.Sigma = 15 }},
		{"window at max", func(c *Config) { c.Window = 4096 }},
		{"batch_size max", func(c *Config) { c.BatchSize = 4096 }},
		{"in-place at m = f+1", func(c *Config) { c.M = 2; c.FailurePolicy = InPlace }},
		{"replace at m = n−f", func(c *Config) { c.M = 3; c.FailurePolicy = Replace }},
		{"group fsync", func(c *Config) { c.Fsync = FsyncGroup; c.GroupCommitInterval = "500us" }},
		{"no http_addr", func(c *Config) { c.Replicas[0].HTTPAddr = "" }},
		{"ipv6 and names", func(c *Config) { c.Replicas[0].Addr = "[::1]:9000"; c.Replicas[1].Addr = "replica-1.example:7000" }},
		{"shared kv", func(c *Config) { c.KVScope = KVShared }},
		{"replicas listed out of order", func(c *Config) { c.Replicas[0], c.Replicas[3] = c.Replicas[3], c.Replicas[0] }},
		{"huge client ids", func(c *Config) { c.Clients.Keys[0].ID = 1<<64 - 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig(t, 4, 4, 2)
			tt.mutate(c)
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := validConfig(t, 4, 4, 2)
	c.M = 9
	c.Window = 50
	c.Epsilon = -1
	c.Tick = "fast"
	c.Replicas[2].Addr = "x"
	c.Replicas[3].PublicKey = "nope"
	c.Clients.Admission = "maybe"
	err := c.Validate()
	want := []string{"m", "window", "epsilon", "tick", "replicas[2].addr", "replicas[3].public_key", "clients.admission"}
	if got := fieldsOf(err); !slices.Equal(got, want) {
		t.Fatalf("fields %q, want %q; error:\n%v", got, want, err)
	}
	// One line per problem, each naming its field.
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%v", len(lines), len(want), err)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, "config: "+want[i]+": ") {
			t.Errorf("line %d = %q", i, l)
		}
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "m" {
		t.Errorf("errors.As: %v", fe)
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name   string
		c      func() *Config
		fields []string
	}{
		{"n=4 with keys", func() *Config { return validConfig(t, 4, 0, 2) }, nil},
		{"n=7", func() *Config { return validConfig(t, 7, 0, 2) }, nil},
		{"n=1", func() *Config { return validConfig(t, 1, 0, 2) }, []string{"n"}},
		{"n=3", func() *Config { return validConfig(t, 3, 0, 2) }, []string{"n"}},
		{"n=5", func() *Config { return validConfig(t, 5, 0, 2) }, []string{"n"}},
		{"no clients", func() *Config { return validConfig(t, 4, 0, 0) }, []string{"clients.keys"}},
		{"epsilon < sigma, sigma 1", func() *Config {
			c := validConfig(t, 4, 0, 1)
			c.Sigma, c.Epsilon = 1, 1
			return c
		}, []string{"sigma"}},
		{"shared data_dir", func() *Config { c := validConfig(t, 4, 0, 1); c.DataDir = "/var/lib/braid"; return c }, []string{"data_dir"}},
		{"http_client_keys", func() *Config { return exampleConfig(t) }, nil},
		{"http_client_keys shared", func() *Config {
			c := exampleConfig(t)
			c.Replicas[2].HTTPClientKeys = "keys/http-*.key"
			return c
		}, []string{"replicas[2].http_client_keys"}},
		{"http_client_keys without http_addr", func() *Config {
			c := exampleConfig(t)
			c.Replicas[0].HTTPAddr = ""
			return c
		}, []string{"replicas[0].http_client_keys"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c()
			if err := c.Validate(); err != nil {
				t.Fatalf("warnings must not be errors: %v", err)
			}
			var got []string
			for _, w := range c.Warnings() {
				rest, ok := strings.CutPrefix(w, "warning: ")
				if !ok {
					t.Errorf("warning %q lacks the prefix", w)
				}
				f, _, _ := strings.Cut(rest, ": ")
				got = append(got, f)
			}
			if !slices.Equal(got, tt.fields) {
				t.Errorf("warnings %q, want fields %q", c.Warnings(), tt.fields)
			}
		})
	}
}

func TestHelpers(t *testing.T) {
	for n := 1; n <= 130; n++ {
		c := &Config{N: n}
		if c.F() != quorum.Faults(n) || c.Quorum() != quorum.Size(n) {
			t.Fatalf("n=%d: F, Quorum = %d, %d; quorum says %d, %d", n, c.F(), c.Quorum(), quorum.Faults(n), quorum.Size(n))
		}
	}
	if c := (&Config{N: 4}); c.F() != 1 || c.Quorum() != 3 {
		t.Errorf("n=4: f=%d quorum=%d", c.F(), c.Quorum())
	}
	c := validConfig(t, 4, 0, 3)
	c.Replicas[0], c.Replicas[2] = c.Replicas[2], c.Replicas[0]
	if r, ok := c.Replica(2); !ok || r.ID != 2 || r.Addr != "127.0.0.1:7002" {
		t.Errorf("Replica(2) = %+v, %v", r, ok)
	}
	if _, ok := c.Replica(4); ok {
		t.Error("Replica(4) found")
	}
	keys, err := c.ReplicaPublicKeys()
	if err != nil {
		t.Fatal(err)
	}
	for id, k := range keys {
		if want, _ := testKey(t, fmt.Sprintf("replica-%d", id)); !k.Equal(want) {
			t.Errorf("ReplicaPublicKeys()[%d] is not replica %d's key", id, id)
		}
	}
	ck, err := c.ClientPublicKeys()
	if err != nil || len(ck) != 3 {
		t.Fatalf("ClientPublicKeys = %v, %v", ck, err)
	}
	c.SetDir("/srv/cluster")
	if got := c.ReplicaDataDir(3); got != filepath.FromSlash("/srv/cluster/data/replica-3") {
		t.Errorf("ReplicaDataDir(3) = %q", got)
	}
	if got := c.ReplicaKeyFile(1); got != filepath.FromSlash("/srv/cluster/keys/replica-1.key") {
		t.Errorf("ReplicaKeyFile(1) = %q", got)
	}
	c.DataDir = "/abs/{id}"
	if got := c.ReplicaDataDir(0); got != "/abs/0" {
		t.Errorf("absolute ReplicaDataDir(0) = %q", got)
	}
	if err := c.SetLocalAddresses("::1", 65530); err == nil {
		t.Error("SetLocalAddresses accepted ports beyond 65535")
	}
	if err := c.SetLocalAddresses("::1", 9000); err != nil {
		t.Fatal(err)
	}
	if r, _ := c.Replica(1); r.Addr != "[::1]:9001" || r.ClientAddr != "[::1]:9005" || r.HTTPAddr != "[::1]:9009" {
		t.Errorf("SetLocalAddresses: %+v", r)
	}
}

func TestReplicaKey(t *testing.T) {
	dir := t.TempDir()
	c := validConfig(t, 4, 0, 0)
	if err := os.Mkdir(filepath.Join(dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, priv1 := testKey(t, "replica-1")
	if err := auth.WritePrivateKeyFile(filepath.Join(dir, "keys", "replica-1.key"), priv1); err != nil {
		t.Fatal(err)
	}
	if err := auth.WritePrivateKeyFile(filepath.Join(dir, "keys", "replica-2.key"), priv1); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "cluster.json")
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.ReplicaKey(1)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Public().Equal(priv1.Public()) {
		t.Error("ReplicaKey(1) returned another key")
	}
	if _, err := c.ReplicaKey(2); err == nil || !strings.Contains(err.Error(), "does not hold replica 2's key") {
		t.Errorf("ReplicaKey(2) with replica 1's key: %v", err)
	}
	if _, err := c.ReplicaKey(3); err == nil {
		t.Error("ReplicaKey(3) without a key file succeeded")
	}
	if _, err := c.ReplicaKey(9); err == nil {
		t.Error("ReplicaKey(9) succeeded")
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	c := validConfig(t, 7, 5, 3)
	c.Tick = "1s" // kept as written, not normalised to "1s0ms" or nanoseconds
	c.Fsync, c.GroupCommitInterval = FsyncGroup, "1500us"
	c.Replicas[4].HTTPAddr = ""
	c.Clients.Keys[2].ID = 1<<64 - 1
	path := filepath.Join(dir, "cluster.json")
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("config file mode %v, want 0644", st.Mode().Perm())
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("round trip changed the config:\n got %+v\nwant %+v", got, c)
	}
	if got.Dir() != dir {
		t.Errorf("Dir() = %q, want %q", got.Dir(), dir)
	}
	first, _ := os.ReadFile(path)
	path2 := filepath.Join(dir, "again.json")
	if err := got.Save(path2); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(path2)
	if !bytes.Equal(first, second) {
		t.Errorf("Save∘Load∘Save is not byte-identical:\n%s\n%s", first, second)
	}
	if strings.Contains(string(first), "null") {
		t.Errorf("lists written as null:\n%s", first)
	}
	// Save refuses an invalid config and leaves the old file alone.
	c.Window = 3
	if err := c.Save(path); err == nil {
		t.Error("Save wrote an invalid config")
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, first) {
		t.Error("failed Save changed the file")
	}
}

func TestLoadMinimalFileGetsDefaults(t *testing.T) {
	full := validConfig(t, 4, 0, 1)
	minimal := fmt.Sprintf(`{"n": 4, "replicas": [%s], "clients": {"keys": [{"id": 0, "public_key": %q}]}}`,
		func() string {
			var rs []string
			for _, r := range full.Replicas {
				rs = append(rs, fmt.Sprintf(`{"id": %d, "addr": %q, "client_addr": %q, "http_addr": %q, "public_key": %q}`,
					r.ID, r.Addr, r.ClientAddr, r.HTTPAddr, r.PublicKey))
			}
			return strings.Join(rs, ",")
		}(), full.Clients.Keys[0].PublicKey)
	got, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, full) {
		t.Errorf("minimal file with defaults:\n got %+v\nwant %+v", got, full)
	}
}

func TestLoadRejects(t *testing.T) {
	good, err := validConfig(t, 4, 0, 1).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	replace := func(old, new string) string {
		s := strings.Replace(string(good), old, new, 1)
		if s == string(good) {
			t.Fatalf("%q not in the config", old)
		}
		return s
	}
	tests := []struct {
		name string
		data string
		want string // substring of the error
	}{
		{"unknown field", replace(`"window"`, `"windw"`), "config: windw: unknown field"},
		{"unknown nested field", replace(`"client_addr"`, `"clientaddr"`), "config: clientaddr: unknown field"},
		{"wrong case", replace(`"window"`, `"Window"`), "config: Window: unknown field (field names are lowercase: window)"},
		{"wrong case nested", replace(`"admission"`, `"Admission"`), "config: clients.Admission: unknown field"},
		{"duplicate field", replace(`"window": 64,`, `"window": 64, "window": 32,`), "config: window: given more than once"},
		{"duplicate nested field", replace(`"addr": "127.0.0.1:7001",`, `"addr": "127.0.0.1:7001", "addr": "x:1",`), "config: replicas[1].addr: given more than once"},
		{"type", replace(`"n": 4`, `"n": "4"`), "config: n: a JSON string, want an integer (line 2"},
		{"negative client id", replace(`"id": 0,
        "public_key"`, `"id": -1,
        "public_key"`), "config: clients.keys[0].id: a JSON number -1, want a non-negative integer"},
		{"syntax", replace(`"m": 3,`, `"m": 3,,`), "config: line 3, column"},
		{"trailing data", string(good) + "{}", "unexpected data after the configuration object"},
		{"empty", "", "empty"},
		{"truncated", string(good[:len(good)/2]), "ends in the middle"},
		{"invalid value", replace(`"sigma": 32`, `"sigma": 60`), "invalid configuration:\nconfig: sigma: 60"},
		{"not an object", "[1,2]", "config: (top level)"},
		{"type in a list", replace(`"id": 2,`, `"id": "2",`), "config: replicas[2].id: a JSON string, want an integer"},
		{"object for a string", replace(`"tick": "10ms"`, `"tick": {"ms": 10}`), "config: tick: a JSON object, want a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.json")
			if err := os.WriteFile(path, []byte(tt.data), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if err == nil {
				t.Fatal("Load accepted it")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), path+": ") {
				t.Errorf("error:\n%v\nwant it to start with the path and contain %q", err, tt.want)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// jsonPaths lists the field paths of t as the file spells them.
func jsonPaths(t reflect.Type, prefix string) []string {
	var out []string
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		out = append(out, path)
		switch {
		case f.Type.Kind() == reflect.Struct:
			out = append(out, jsonPaths(f.Type, path)...)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			out = append(out, jsonPaths(f.Type.Elem(), path+"[]")...)
		}
	}
	return out
}

func TestFieldDocsComplete(t *testing.T) {
	paths := jsonPaths(reflect.TypeFor[Config](), "")
	for _, p := range paths {
		if FieldDocs[p] == "" {
			t.Errorf("FieldDocs has no entry for %q", p)
		}
	}
	for p := range FieldDocs {
		if !slices.Contains(paths, p) {
			t.Errorf("FieldDocs documents %q, which is not a field", p)
		}
	}
	// docs/config.md describes every field.
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		leaf := p[strings.LastIndexAny(p, ".")+1:]
		if !strings.Contains(string(doc), "`"+leaf+"`") {
			t.Errorf("docs/config.md does not mention `%s`", leaf)
		}
	}
}

// exampleConfig is the example in docs/config.md: what braid init --n 4
// --clients 2 --http-clients 1 writes, one HTTP client key per replica
// (ids 2…5) after the two development clients.
func exampleConfig(t testing.TB) *Config {
	c := validConfig(t, 4, 0, 2)
	for i := range c.Replicas {
		pub, _ := testKey(t, fmt.Sprintf("http-%d-0", i))
		c.Clients.Keys = append(c.Clients.Keys, ClientKey{ID: uint64(2 + i), PublicKey: auth.MarshalPublicKey(pub)})
		c.Replicas[i].HTTPClientKeys = "keys/http-{id}-*.key"
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// ReplicaHTTPClientKeys resolves the glob like key_file: {id} replaced,
// relative to the file's directory; absent is "".
func TestReplicaHTTPClientKeys(t *testing.T) {
	c := exampleConfig(t)
	c.SetDir("/etc/braid")
	if got, want := c.ReplicaHTTPClientKeys(3), "/etc/braid/keys/http-3-*.key"; got != want {
		t.Errorf("ReplicaHTTPClientKeys(3) = %q, want %q", got, want)
	}
	c.Replicas[1].HTTPClientKeys = "/abs/k-*.key"
	if got := c.ReplicaHTTPClientKeys(1); got != "/abs/k-*.key" {
		t.Errorf("absolute glob resolved to %q", got)
	}
	c.Replicas[1].HTTPClientKeys = ""
	if got := c.ReplicaHTTPClientKeys(1); got != "" {
		t.Errorf("absent glob = %q", got)
	}
	if got := c.ReplicaHTTPClientKeys(9); got != "" {
		t.Errorf("no replica 9 = %q", got)
	}
}

const (
	beginExample = "<!-- BEGIN GENERATED EXAMPLE (go test ./config -run TestDocExample -update) -->\n"
	endExample   = "<!-- END GENERATED EXAMPLE -->\n"
)

// TestDocExample keeps the annotated example in docs/config.md generated
// from the code, and checks that it is Save's output plus comments.
func TestDocExample(t *testing.T) {
	c := exampleConfig(t)
	ann, err := c.Annotated()
	if err != nil {
		t.Fatal(err)
	}
	// Removing the comment lines gives exactly what Save writes, and that
	// loads back to the same config.
	var plain []string
	comments := 0
	for _, l := range strings.SplitAfter(ann, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "//") {
			comments++
			continue
		}
		plain = append(plain, l)
	}
	data, _ := c.Marshal()
	if strings.Join(plain, "") != string(data) {
		t.Fatalf("annotated example minus comments is not Save's output:\n%s", ann)
	}
	if comments != len(FieldDocs) {
		t.Errorf("%d comments, want one per field (%d):\n%s", comments, len(FieldDocs), ann)
	}
	back, err := Parse(data)
	if err != nil || !reflect.DeepEqual(back, c) {
		t.Fatalf("example does not load back: %v", err)
	}

	block := beginExample + "```jsonc\n" + ann + "```\n" + endExample
	const path = "../docs/config.md"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(doc, []byte(beginExample))
	end := bytes.Index(doc, []byte(endExample))
	if start < 0 || end < start {
		t.Fatalf("%s lacks the generated-example markers", path)
	}
	current := string(doc[start : end+len(endExample)])
	if current == block {
		return
	}
	if !*update {
		t.Fatalf("%s's example is stale; run go test ./config -run TestDocExample -update\nwant:\n%s", path, block)
	}
	out := append(append(append([]byte{}, doc[:start]...), block...), doc[end+len(endExample):]...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Keyring holds every replica's key and every listed client's, under their
// ids, and nothing else; a bad client key is reported by field.
func TestKeyring(t *testing.T) {
	c := validConfig(t, 4, 0, 3)
	ring, err := c.Keyring()
	if err != nil {
		t.Fatal(err)
	}
	pubs, _ := c.ReplicaPublicKeys()
	if len(ring.Replicas) != 4 || len(ring.Clients) != 3 {
		t.Fatalf("keyring: %d replicas, %d clients; want 4, 3", len(ring.Replicas), len(ring.Clients))
	}
	for i, k := range pubs {
		if !bytes.Equal(ring.Replicas[msg.ReplicaID(i)], k) {
			t.Fatalf("replica %d: wrong key", i)
		}
	}
	for _, k := range c.Clients.Keys {
		if _, ok := ring.Clients[msg.ClientID(k.ID)]; !ok {
			t.Fatalf("client %d missing", k.ID)
		}
	}
	c.Clients.Keys[1].PublicKey = "not a key"
	if _, err := c.Keyring(); err == nil || !strings.Contains(err.Error(), "clients.keys[1].public_key") {
		t.Fatalf("bad client key: %v, want an error naming clients.keys[1].public_key", err)
	}
}

// TestDocDefaults checks the default column of docs/config.md's protocol
// table against the code: the constants by value, the derived defaults by
// applying them (so a formula in the table that the code no longer follows
// fails here).
func TestDocDefaults(t *testing.T) {
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(doc), "\n") {
		cols := strings.Split(line, "|")
		if len(cols) < 5 || !strings.HasPrefix(strings.TrimSpace(cols[1]), "`") {
			continue
		}
		field := strings.Trim(strings.TrimSpace(cols[1]), "`")
		if _, dup := got[field]; !dup {
			got[field] = strings.TrimSpace(cols[3])
		}
	}
	want := map[string]string{
		"m":                   "n − f",
		"sigma":               "max(window/2, 2)",
		"epsilon":             "max(checkpoint_interval/2, 1)",
		"batch_size":          fmt.Sprint(DefaultBatchSize),
		"window":              fmt.Sprintf("%d × checkpoint_interval", DefaultWindowIntervals),
		"checkpoint_interval": fmt.Sprint(DefaultCheckpointInterval),
		"tick":                fmt.Sprintf("`%q`", string(DefaultTick)),
		"request_timeout":     fmt.Sprint(DefaultRequestTimeout),
		"progress_timeout":    fmt.Sprint(DefaultProgressTimeout),
		"view_change_timeout": fmt.Sprint(DefaultViewChangeTimeout),
	}
	for field, w := range want {
		if got[field] != w {
			t.Errorf("docs/config.md: %s's default is %q, the code's is %q", field, got[field], w)
		}
	}
	// The formulas above, as the code applies them.
	for _, tc := range []struct{ n, k, w int }{{4, 16, 0}, {7, 8, 0}, {10, 16, 32}} {
		c := &Config{N: tc.n, CheckpointInterval: tc.k, Window: tc.w}
		c.ApplyDefaults()
		if c.M != quorum.Correct(tc.n) || c.Sigma != max(c.Window/2, 2) || c.Epsilon != max(tc.k/2, 1) ||
			(tc.w == 0 && c.Window != DefaultWindowIntervals*tc.k) {
			t.Errorf("n=%d k=%d w=%d: defaults m=%d window=%d sigma=%d epsilon=%d do not follow the documented formulas",
				tc.n, tc.k, tc.w, c.M, c.Window, c.Sigma, c.Epsilon)
		}
	}
}
