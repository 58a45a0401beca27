package config

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/defaults"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/quorum"
)

// FailurePolicy says how the cluster recovers an instance whose primary
// failed (the paper's Section 4.1; docs/protocol.md R4).
type FailurePolicy string

const (
	// Replace is unified primary replacement (Figure 4 of the paper): a
	// failed primary is replaced by the smallest-id replica that is neither
	// failed nor already a primary. It needs a spare non-faulty replica, so
	// it is valid only when m ≤ n − f.
	Replace FailurePolicy = "replace"
	// InPlace is in-place recovery (Section 3.2.1): the failed instance skips
	// rounds and is handed back to its primary after a delay that doubles
	// after each repeated failure. It is the only choice when m > n − f
	// (e.g. RCC's usual m = n) and needs m > f: with m ≤ f the f faulty
	// replicas could be every instance's primary, and would stay so.
	InPlace FailurePolicy = "in-place"
)

// Fsync is the durability policy of the replica's write-ahead log.
type Fsync string

const (
	// FsyncPerBatch fsyncs before anything that depends on a batch's records
	// is sent: the safest and slowest choice.
	FsyncPerBatch Fsync = "per-batch"
	// FsyncGroup collects records for up to group_commit_interval and
	// fsyncs them together; nothing that depends on a record is sent before
	// its group is durable, so safety is unchanged and latency grows by at
	// most the interval.
	FsyncGroup Fsync = "group"
)

// Admission says which clients replicas accept requests from.
type Admission string

const (
	// AdmissionList admits only the keys in clients.keys. It is the only
	// supported mode.
	AdmissionList Admission = "list"
	// AdmissionOpen was "admit any key". Validate rejects it: a request
	// carries only its client id, so a replica cannot verify the signature
	// of a client whose key the configuration does not list.
	//
	// Deprecated: list every client in clients.keys. The constant remains
	// so that Validate can name it in its error.
	AdmissionOpen Admission = "open"
)

// KVScope is the key-value application's keyspace sharing (app/kv.Scope).
type KVScope string

const (
	// KVShared: all clients read and write one keyspace.
	KVShared KVScope = "shared"
	// KVPerClient: each client has a private keyspace; no client can read or
	// overwrite another's keys.
	KVPerClient KVScope = "per-client"
)

// Check reports whether s is a known scope, with an error naming the
// choices if not: the one rule Validate and braid init apply.
func (s KVScope) Check() error {
	switch s {
	case KVShared, KVPerClient:
		return nil
	}
	return fmt.Errorf("%q: want %q or %q", string(s), KVShared, KVPerClient)
}

// Duration is a duration written as a Go duration string ("10ms", "1.5s").
// It is kept as written, so a file round-trips exactly; Validate checks that
// it parses, and Value returns the parsed value.
type Duration string

// Parse parses d.
func (d Duration) Parse() (time.Duration, error) { return time.ParseDuration(string(d)) }

// Value returns d parsed, or 0 if it does not parse (Validate rejects such
// a configuration, so Value is safe on a validated Config).
func (d Duration) Value() time.Duration {
	v, err := d.Parse()
	if err != nil {
		return 0
	}
	return v
}

// Defaults. The protocol parameters come from package defaults, which the
// pbft and rcc cores use too (σ and ε derive from the window and the
// checkpoint interval as defaults.Sigma and defaults.Epsilon say);
// docs/config.md's table is checked against them by TestDocDefaults.
const (
	DefaultBatchSize           = defaults.MaxBatch
	DefaultCheckpointInterval  = defaults.CheckpointInterval
	DefaultWindowIntervals     = defaults.WindowIntervals // window = 4 × checkpoint_interval
	DefaultTick                = Duration("10ms")
	DefaultRequestTimeout      = defaults.RequestTimeout    // ticks
	DefaultProgressTimeout     = defaults.ProgressTimeout   // ticks
	DefaultViewChangeTimeout   = defaults.ViewChangeTimeout // ticks
	DefaultFsync               = FsyncPerBatch
	DefaultGroupCommitInterval = Duration("2ms")
	DefaultDataDir             = "data/replica-{id}"
	DefaultKeyFile             = "keys/replica-{id}.key"
	DefaultAdmission           = AdmissionList
	DefaultKVScope             = KVPerClient
	DefaultHost                = "127.0.0.1"
	DefaultBasePort            = 7000
)

// MaxReplicas bounds n: a certificate carries at most a quorum of messages
// and the wire format bounds that at 1024 (msg.MaxQuorumMsgs).
const MaxReplicas = 1024

// IDPlaceholder is replaced by a replica's id in data_dir, key_file and
// http_client_keys.
const IDPlaceholder = "{id}"

// Config is the cluster configuration file. The JSON field names are the
// product interface; see docs/config.md.
type Config struct {
	// N is the number of replicas. It tolerates f = ⌊(n−1)/3⌋ Byzantine
	// replicas; n < 4 tolerates none (a warning, not an error). Required;
	// 1 ≤ n ≤ 1024, and replicas must list exactly n replicas.
	N int `json:"n"`
	// M is the number of parallel PBFT instances, 1 ≤ m ≤ n; m = 1 is plain
	// PBFT, m = n is RCC's usual setting. Default n.
	M int `json:"m"`
	// FailurePolicy is "replace" (unified primary replacement, valid only
	// when m ≤ n − f) or "in-place" (in-place recovery with a doubling
	// restart penalty, required when m > n − f). Default "replace" if
	// m ≤ n − f, else "in-place".
	FailurePolicy FailurePolicy `json:"failure_policy"`
	// Sigma (σ) is the soft-failure gap of Definition 4.3, in rounds: an
	// instance whose last decided round trails the most advanced instance by
	// σ is suspected and driven through a view change to a failure decision.
	//
	// It must be below window − checkpoint_interval. While one instance is
	// stuck at round ρ nothing from ρ on executes, so no new checkpoint
	// becomes stable; the last stable checkpoint can be as low as
	// ρ − checkpoint_interval, and the healthy instances can run at most
	// window rounds past it. Their lead over the stuck instance therefore
	// tops out near window − checkpoint_interval: with σ at or above that the
	// gap might never be observed and the cluster would stall instead of
	// skipping the stuck instance. Default window/2, at least 2 (measured: docs/protocol.md).
	Sigma int `json:"sigma"`
	// Epsilon (ε) is the skip size, in rounds: a failed instance's next ε
	// rounds become agreed no-ops, so execution never waits for them.
	// Must be ≥ 1. Default checkpoint_interval/2, at least 1: a short skip
	// costs the recovered instance little, and under in-place recovery it
	// doubles with each repeated failure.
	Epsilon int `json:"epsilon"`
	// BatchSize is the most requests a primary puts in one batch,
	// 1 ≤ batch_size ≤ 4096. Default 100.
	BatchSize int `json:"batch_size"`
	// Window is the number of rounds each instance may have outstanding
	// above its last stable checkpoint (the PBFT watermark window). It must
	// be a multiple of checkpoint_interval and at least twice it, so a
	// primary can keep proposing while a checkpoint becomes stable; at most
	// 4096. Default 4 × checkpoint_interval.
	Window int `json:"window"`
	// CheckpointInterval (K) is the number of rounds between checkpoints;
	// 2f+1 signed checkpoints make one stable and garbage-collect the logs
	// below it. Must be ≥ 1. Default 16.
	CheckpointInterval int `json:"checkpoint_interval"`
	// Tick is the length of one protocol clock tick, a positive Go duration
	// string. The protocol core counts ticks; all timeouts below are in
	// ticks. Default "10ms".
	Tick Duration `json:"tick"`
	// RequestTimeout is how many ticks a backup waits for a client request
	// it relayed to be ordered before it suspects the primary. ≥ 1;
	// default 40.
	RequestTimeout int `json:"request_timeout"`
	// ProgressTimeout is how many ticks a backup waits for an accepted
	// pre-prepare to commit before it suspects the primary. ≥ 1; default 40.
	ProgressTimeout int `json:"progress_timeout"`
	// ViewChangeTimeout is how many ticks a replica waits for a new view
	// before moving to the next one; doubled after each failed attempt.
	// ≥ 1; default 40.
	ViewChangeTimeout int `json:"view_change_timeout"`
	// Fsync is the log's durability policy: "per-batch" or "group".
	// Default "per-batch".
	Fsync Fsync `json:"fsync"`
	// GroupCommitInterval is how long "group" fsync collects records before
	// one fsync, a positive Go duration string. Ignored with "per-batch".
	// Default "2ms".
	GroupCommitInterval Duration `json:"group_commit_interval"`
	// DataDir is each replica's data directory, a template in which "{id}"
	// is replaced by the replica's id. Relative paths are relative to the
	// configuration file's directory. Default "data/replica-{id}".
	DataDir string `json:"data_dir"`
	// KVScope is the key-value application's key sharing: "shared" (one
	// keyspace for all clients) or "per-client" (each client its own).
	// Default "per-client".
	KVScope KVScope `json:"kv_scope"`
	// Replicas lists the n replicas.
	Replicas []Replica `json:"replicas"`
	// Clients says which clients are admitted.
	Clients Clients `json:"clients"`

	// dir is the directory of the file the Config was loaded from or saved
	// to; relative paths resolve against it. Empty means the working
	// directory.
	dir string
}

// Replica is one replica's entry in the configuration.
type Replica struct {
	// ID is the replica's id; the ids of the n replicas are 0 … n−1, each
	// exactly once.
	ID int `json:"id"`
	// Addr is the host:port other replicas connect to for protocol traffic.
	// Required; every address in the file must be distinct.
	Addr string `json:"addr"`
	// ClientAddr is the host:port clients send requests to. Required.
	ClientAddr string `json:"client_addr"`
	// HTTPAddr is the host:port of the HTTP API, metrics and dashboard.
	// Optional: empty means no HTTP listener.
	HTTPAddr string `json:"http_addr,omitempty"`
	// PublicKey is the replica's Ed25519 public key as 64 hex characters
	// (auth.MarshalPublicKey). Required; distinct across replicas.
	PublicKey string `json:"public_key"`
	// KeyFile is the path of the replica's private key file (written by
	// braid init or braid keygen; only that replica's host needs it). "{id}"
	// is replaced by the id; relative paths are relative to the
	// configuration file's directory. Default "keys/replica-{id}.key".
	KeyFile string `json:"key_file"`
	// HTTPClientKeys is a glob of client private key files (each admitted
	// in clients.keys) through which this replica's HTTP listener submits
	// the kv and bank API's requests (docs/gateway.md's routes, mounted on
	// http_addr). The listener is a client of the whole cluster like any
	// other, so its answers carry f+1 matching replies, not this replica's
	// word alone; it needs keys of its own because a key must never be used
	// by two processes at once. "{id}" is replaced by the id; relative to the
	// configuration file's directory. Optional: empty means the replica
	// serves no kv or bank routes (braid replica --http-keys overrides).
	HTTPClientKeys string `json:"http_client_keys,omitempty"`
}

// Clients is the client admission policy.
type Clients struct {
	// Admission is "list" (only the keys below may submit requests) or
	// "open" (any key may; development only). Default "list".
	Admission Admission `json:"admission"`
	// Keys are the admitted clients. Ids and keys must be distinct. With
	// "open" admission they are optional; listing a client still fixes its id
	// (which picks its instance: id mod m).
	Keys []ClientKey `json:"keys"`
}

// ClientKey is one admitted client.
type ClientKey struct {
	// ID is the client's id (msg.ClientID); client id mod m is the
	// instance that serves it.
	ID uint64 `json:"id"`
	// PublicKey is the client's Ed25519 public key, 64 hex characters.
	PublicKey string `json:"public_key"`
}

// DefaultM is n − f: the largest m for which unified primary replacement
// works, so a crashed primary is replaced and its clients keep being served
// without client action. (m = n, the paper's usual setting, uses in-place
// recovery, where clients of a dead primary must move by instance change;
// measured slow in this version — see docs/protocol.md.)
func DefaultM(n int) int {
	if n < 1 {
		return n
	}
	return defaults.Instances(n)
}

// Default returns a configuration for n replicas and m instances (m ≤ 0
// means n − f, see DefaultM) on 127.0.0.1 with ports from 7000 (see SetLocalAddresses), with
// every default applied. Public keys are left empty: fill them in (braid
// init does) before the result validates.
func Default(n, m int) *Config {
	if m <= 0 {
		m = DefaultM(n)
	}
	c := &Config{N: n, M: m}
	c.Replicas = make([]Replica, max(n, 0))
	for i := range c.Replicas {
		c.Replicas[i].ID = i
	}
	c.SetLocalAddresses(DefaultHost, DefaultBasePort)
	c.ApplyDefaults()
	return c
}

// SetLocalAddresses gives the replicas consecutive ports on host: replica
// i's addr is basePort+i, its client_addr basePort+n+i and its http_addr
// basePort+2n+i. It fails, changing nothing, if a port would exceed 65535.
func (c *Config) SetLocalAddresses(host string, basePort int) error {
	n := len(c.Replicas)
	if basePort < 1 || basePort+3*n-1 > 65535 {
		return fmt.Errorf("config: ports %d…%d for %d replicas are outside 1…65535", basePort, basePort+3*n-1, n)
	}
	for i := range c.Replicas {
		r := &c.Replicas[i]
		r.Addr = net.JoinHostPort(host, strconv.Itoa(basePort+i))
		r.ClientAddr = net.JoinHostPort(host, strconv.Itoa(basePort+n+i))
		r.HTTPAddr = net.JoinHostPort(host, strconv.Itoa(basePort+2*n+i))
	}
	return nil
}

// ApplyDefaults sets every absent (zero) field to its default. Derived
// defaults are computed in dependency order, so e.g. a file that sets only
// checkpoint_interval gets a matching window, sigma and epsilon. It is
// idempotent and never overwrites a non-zero field.
func (c *Config) ApplyDefaults() {
	if c.M == 0 {
		c.M = DefaultM(c.N)
	}
	if c.FailurePolicy == "" {
		if c.M <= c.N-c.F() {
			c.FailurePolicy = Replace
		} else {
			c.FailurePolicy = InPlace
		}
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = DefaultCheckpointInterval
	}
	if c.Window == 0 && c.CheckpointInterval > 0 && c.CheckpointInterval <= MaxWindow/DefaultWindowIntervals {
		c.Window = DefaultWindowIntervals * c.CheckpointInterval
	}
	if c.Sigma == 0 {
		c.Sigma = int(defaults.Sigma(uint64(max(c.Window, 0)))) // an invalid window is reported by Validate
	}
	if c.Epsilon == 0 {
		c.Epsilon = int(defaults.Epsilon(uint64(max(c.CheckpointInterval, 0))))
	}
	if c.Tick == "" {
		c.Tick = DefaultTick
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.ProgressTimeout == 0 {
		c.ProgressTimeout = DefaultProgressTimeout
	}
	if c.ViewChangeTimeout == 0 {
		c.ViewChangeTimeout = DefaultViewChangeTimeout
	}
	if c.Fsync == "" {
		c.Fsync = DefaultFsync
	}
	if c.GroupCommitInterval == "" {
		c.GroupCommitInterval = DefaultGroupCommitInterval
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.KVScope == "" {
		c.KVScope = DefaultKVScope
	}
	for i := range c.Replicas {
		if c.Replicas[i].KeyFile == "" {
			c.Replicas[i].KeyFile = DefaultKeyFile
		}
	}
	if c.Clients.Admission == "" {
		c.Clients.Admission = DefaultAdmission
	}
	// Lists are written as [] rather than null.
	if c.Replicas == nil {
		c.Replicas = []Replica{}
	}
	if c.Clients.Keys == nil {
		c.Clients.Keys = []ClientKey{}
	}
}

// F returns f = ⌊(n−1)/3⌋, the number of Byzantine replicas tolerated.
func (c *Config) F() int {
	if c.N < 1 {
		return 0
	}
	return quorum.Faults(c.N)
}

// Quorum returns the Byzantine quorum size: any two quorums intersect in at
// least f+1 replicas. It is 2f+1 when n = 3f+1 and ⌊(n+f)/2⌋+1 in general,
// the same as pbft.Quorum.
func (c *Config) Quorum() int { return quorum.Size(c.N) }

// Replica returns the replica with the given id.
func (c *Config) Replica(id int) (Replica, bool) {
	for _, r := range c.Replicas {
		if r.ID == id {
			return r, true
		}
	}
	return Replica{}, false
}

// Dir returns the directory relative paths in the file resolve against
// (the loaded or saved file's directory; empty for the working directory).
func (c *Config) Dir() string { return c.dir }

// SetDir sets the directory relative paths resolve against.
func (c *Config) SetDir(dir string) { c.dir = dir }

func (c *Config) resolve(template string, id int) string {
	p := strings.ReplaceAll(template, IDPlaceholder, strconv.Itoa(id))
	if p == "" || filepath.IsAbs(p) || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}

// ReplicaDataDir returns replica id's data directory: data_dir with "{id}"
// replaced, resolved against Dir.
func (c *Config) ReplicaDataDir(id int) string {
	t := c.DataDir
	if t == "" {
		t = DefaultDataDir
	}
	return c.resolve(t, id)
}

// ReplicaKeyFile returns replica id's private key file path (key_file with
// "{id}" replaced, resolved against Dir), or "" if there is no replica id.
func (c *Config) ReplicaKeyFile(id int) string {
	r, ok := c.Replica(id)
	if !ok {
		return ""
	}
	kf := r.KeyFile
	if kf == "" {
		kf = DefaultKeyFile
	}
	return c.resolve(kf, id)
}

// ReplicaHTTPClientKeys returns the glob of replica id's HTTP client key
// files (http_client_keys with "{id}" replaced, resolved against Dir), or
// "" if it has none.
func (c *Config) ReplicaHTTPClientKeys(id int) string {
	r, ok := c.Replica(id)
	if !ok || r.HTTPClientKeys == "" {
		return ""
	}
	return c.resolve(r.HTTPClientKeys, id)
}

// ReplicaPublicKeys returns the replicas' public keys indexed by id. It
// fails if a key does not parse or an id is out of range (Validate would
// have said so).
func (c *Config) ReplicaPublicKeys() ([]auth.PublicKey, error) {
	keys := make([]auth.PublicKey, c.N)
	for i, r := range c.Replicas {
		if r.ID < 0 || r.ID >= c.N {
			return nil, &FieldError{Field: fmt.Sprintf("replicas[%d].id", i), Msg: fmt.Sprintf("%d is outside 0…%d", r.ID, c.N-1)}
		}
		pk, err := auth.ParsePublicKey(r.PublicKey)
		if err != nil {
			return nil, &FieldError{Field: fmt.Sprintf("replicas[%d].public_key", i), Msg: err.Error()}
		}
		keys[r.ID] = pk
	}
	return keys, nil
}

// ClientPublicKeys returns the admitted clients' public keys by client id.
func (c *Config) ClientPublicKeys() (map[uint64]auth.PublicKey, error) {
	keys := make(map[uint64]auth.PublicKey, len(c.Clients.Keys))
	for i, k := range c.Clients.Keys {
		pk, err := auth.ParsePublicKey(k.PublicKey)
		if err != nil {
			return nil, &FieldError{Field: fmt.Sprintf("clients.keys[%d].public_key", i), Msg: err.Error()}
		}
		keys[k.ID] = pk
	}
	return keys, nil
}

// Keyring is the verifier for the cluster's signatures: every replica's
// key and every admitted client's. Replicas, the ledger verifier and the
// demo all build it here, so they cannot disagree on who is admitted.
func (c *Config) Keyring() (auth.Keyring, error) {
	replicas, err := c.ReplicaPublicKeys()
	if err != nil {
		return auth.Keyring{}, err
	}
	clients, err := c.ClientPublicKeys()
	if err != nil {
		return auth.Keyring{}, err
	}
	ring := auth.Keyring{
		Replicas: make(map[msg.ReplicaID]auth.PublicKey, len(replicas)),
		Clients:  make(map[msg.ClientID]auth.PublicKey, len(clients)),
	}
	for i, k := range replicas {
		ring.Replicas[msg.ReplicaID(i)] = k
	}
	for id, k := range clients {
		ring.Clients[msg.ClientID(id)] = k
	}
	return ring, nil
}

// ReplicaKey reads replica id's private key from its key_file and checks
// that it belongs to the public key the configuration lists for id, so a
// replica never starts with a key its peers would not accept.
func (c *Config) ReplicaKey(id int) (auth.PrivateKey, error) {
	r, ok := c.Replica(id)
	if !ok {
		return nil, fmt.Errorf("config: no replica with id %d", id)
	}
	path := c.ReplicaKeyFile(id)
	priv, err := auth.ReadPrivateKeyFile(path)
	if err != nil {
		return nil, err
	}
	want, err := auth.ParsePublicKey(r.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("config: replica %d public_key: %w", id, err)
	}
	if !priv.Public().Equal(want) {
		return nil, fmt.Errorf("config: key file %s does not hold replica %d's key: its public key is %s, the configuration says %s",
			path, id, auth.MarshalPublicKey(priv.Public()), auth.MarshalPublicKey(want))
	}
	return priv, nil
}
