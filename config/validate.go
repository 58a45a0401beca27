package config

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/msg"
)

// Limits imposed by the wire format.
const (
	MaxBatchSize = msg.MaxBatchSize // batch_size
	MaxWindow    = msg.MaxProofs    // window: a view change carries up to one proof per outstanding round
)

// FieldError is one problem with one field. Field is spelled as in the file,
// e.g. "replicas[2].addr" or "clients.keys[0].public_key".
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return "config: " + e.Field + ": " + e.Msg }

// Problems returns the FieldErrors inside err (as returned by Validate, Load
// or Parse), in order.
func Problems(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if fe, ok := err.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

type problems []error

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Validate checks c as it is (call ApplyDefaults first for a hand-built
// Config; Load does) and returns every problem found, joined with
// errors.Join, or nil. Each problem is a *FieldError naming its field.
func (c *Config) Validate() error {
	var p problems
	c.validateProtocol(&p)
	c.validateShell(&p)
	c.validateReplicas(&p)
	c.validateClients(&p)
	return errors.Join(p...)
}

func (c *Config) validateProtocol(p *problems) {
	switch {
	case c.N < 1:
		p.add("n", "%d: need at least 1 replica (n is required)", c.N)
	case c.N > MaxReplicas:
		p.add("n", "%d: at most %d replicas are supported", c.N, MaxReplicas)
	}
	// With n itself wrong, checks relative to n would only repeat that.
	nOK := c.nOK()
	nMinusF := c.N - c.F()
	if nOK && (c.M < 1 || c.M > c.N) {
		p.add("m", "%d: need 1 ≤ m ≤ n = %d", c.M, c.N)
	}
	switch c.FailurePolicy {
	case Replace:
		if nOK && c.M > nMinusF && c.M <= c.N {
			p.add("failure_policy", "%q needs a spare non-faulty replica, so m ≤ n − f = %d; m is %d: use %q or lower m", Replace, nMinusF, c.M, InPlace)
		}
	case InPlace:
		if nOK && c.M >= 1 && c.M <= c.F() {
			p.add("failure_policy", "%q hands a failed instance back to its own primary, so it needs m > f = %d, or the f faulty replicas can be every instance's primary for good; m is %d: use %q or raise m", InPlace, c.F(), c.M, Replace)
		}
	default:
		p.add("failure_policy", "%q: want %q or %q", c.FailurePolicy, Replace, InPlace)
	}

	kOK := c.CheckpointInterval >= 1
	if !kOK {
		p.add("checkpoint_interval", "%d: must be at least 1", c.CheckpointInterval)
	}
	wOK := true
	if kOK && (c.Window < 2*c.CheckpointInterval || c.Window%c.CheckpointInterval != 0) {
		p.add("window", "%d: must be a multiple of checkpoint_interval (%d) and at least twice it (%d), so proposals continue while a checkpoint becomes stable",
			c.Window, c.CheckpointInterval, 2*c.CheckpointInterval)
		wOK = false
	}
	if c.Window > MaxWindow {
		p.add("window", "%d: at most %d (a view change carries one proof per outstanding round)", c.Window, MaxWindow)
		wOK = false
	}
	if c.Window < 1 {
		wOK = false
	}
	if c.Sigma < 1 {
		p.add("sigma", "%d: must be at least 1", c.Sigma)
	} else if kOK && wOK && c.Sigma >= c.Window-c.CheckpointInterval {
		p.add("sigma", "%d: must be below window − checkpoint_interval = %d − %d = %d: while an instance is stuck no checkpoint becomes stable, so the healthy instances can get at most about that far ahead and a larger gap would never be detected",
			c.Sigma, c.Window, c.CheckpointInterval, c.Window-c.CheckpointInterval)
	}
	if c.Epsilon < 1 {
		p.add("epsilon", "%d: must be at least 1", c.Epsilon)
	}
	if c.BatchSize < 1 || c.BatchSize > MaxBatchSize {
		p.add("batch_size", "%d: need 1 ≤ batch_size ≤ %d", c.BatchSize, MaxBatchSize)
	}
	positiveDuration(p, "tick", c.Tick)
	for _, t := range []struct {
		name string
		v    int
	}{
		{"request_timeout", c.RequestTimeout},
		{"progress_timeout", c.ProgressTimeout},
		{"view_change_timeout", c.ViewChangeTimeout},
	} {
		if t.v < 1 {
			p.add(t.name, "%d: must be at least 1 tick", t.v)
		}
	}
}

func (c *Config) nOK() bool { return c.N >= 1 && c.N <= MaxReplicas }

func positiveDuration(p *problems, field string, d Duration) {
	v, err := d.Parse()
	switch {
	case d == "":
		p.add(field, "missing: want a duration such as \"10ms\"")
	case err != nil:
		p.add(field, "%q is not a duration (want e.g. \"10ms\", \"1.5s\")", string(d))
	case v <= 0:
		p.add(field, "%q: must be positive", string(d))
	}
}

func (c *Config) validateShell(p *problems) {
	switch c.Fsync {
	case FsyncPerBatch:
		if c.GroupCommitInterval != "" {
			if _, err := c.GroupCommitInterval.Parse(); err != nil {
				p.add("group_commit_interval", "%q is not a duration (want e.g. \"2ms\")", string(c.GroupCommitInterval))
			}
		}
	case FsyncGroup:
		positiveDuration(p, "group_commit_interval", c.GroupCommitInterval)
	default:
		p.add("fsync", "%q: want %q or %q", c.Fsync, FsyncPerBatch, FsyncGroup)
	}
	if strings.TrimSpace(c.DataDir) == "" {
		p.add("data_dir", "missing: want a directory template such as %q", DefaultDataDir)
	}
	if err := c.KVScope.Check(); err != nil {
		p.add("kv_scope", "%v", err)
	}
}

func (c *Config) validateReplicas(p *problems) {
	nOK := c.nOK()
	if nOK && len(c.Replicas) != c.N {
		p.add("replicas", "lists %d replicas, but n is %d", len(c.Replicas), c.N)
	}
	ids := map[int]int{}         // id → index
	keys := map[string]int{}     // normalised public key → index
	addrs := map[string]string{} // address → field that uses it
	for i, r := range c.Replicas {
		field := func(name string) string { return fmt.Sprintf("replicas[%d].%s", i, name) }
		if nOK && (r.ID < 0 || r.ID >= c.N) {
			p.add(field("id"), "%d is outside 0…%d (ids are 0 … n−1)", r.ID, c.N-1)
		} else if j, dup := ids[r.ID]; dup {
			p.add(field("id"), "%d is also the id of replicas[%d]", r.ID, j)
		} else {
			ids[r.ID] = i
		}
		for _, a := range []struct {
			name, v  string
			optional bool
		}{{"addr", r.Addr, false}, {"client_addr", r.ClientAddr, false}, {"http_addr", r.HTTPAddr, true}} {
			if a.v == "" && a.optional {
				continue
			}
			if bad := checkHostPort(a.v); bad != "" {
				p.add(field(a.name), "%s", bad)
				continue
			}
			if other, dup := addrs[a.v]; dup {
				p.add(field(a.name), "%q is already used by %s", a.v, other)
			} else {
				addrs[a.v] = field(a.name)
			}
		}
		p.checkPublicKey(field("public_key"), r.PublicKey, i, keys,
			"the replica's Ed25519 public key in hex (braid keygen prints one)",
			"is also the key of replicas[%d]: each replica needs its own key")
		if strings.TrimSpace(r.KeyFile) == "" {
			p.add(field("key_file"), "missing: want the path of the replica's private key file")
		}
		if r.HTTPClientKeys != "" {
			if len(r.HTTPClientKeys) > maxGlobLen {
				p.add(field("http_client_keys"), "%d bytes long; at most %d", len(r.HTTPClientKeys), maxGlobLen)
			} else if _, err := filepath.Match(r.HTTPClientKeys, ""); err != nil {
				p.add(field("http_client_keys"), "%q is not a valid glob pattern (Go's filepath.Match syntax: *, ?, [a-z])", r.HTTPClientKeys)
			}
		}
	}
}

// checkPublicKey checks the hex public key that entry i gives at field. It
// must be present (want completes "missing: want …"), parse, and differ from
// every key in seen, which maps the normalised keys met so far to the entry
// holding each; a repeat is reported with dupFormat and the earlier entry's
// index, a new key joins seen. Replicas and clients share this because a key
// identifies its holder: two entries with one key would be indistinguishable.
func (p *problems) checkPublicKey(field, hexKey string, i int, seen map[string]int, want, dupFormat string) {
	if hexKey == "" {
		p.add(field, "missing: want %s", want)
		return
	}
	pk, err := auth.ParsePublicKey(hexKey)
	if err != nil {
		p.add(field, "%s", strings.TrimPrefix(err.Error(), "auth: "))
		return
	}
	if j, dup := seen[string(pk)]; dup {
		p.add(field, dupFormat, j)
		return
	}
	seen[string(pk)] = i
}

// maxGlobLen bounds http_client_keys, a path pattern: far beyond any
// real path, short enough that matching it costs nothing.
const maxGlobLen = 4096

// checkHostPort returns "" if s is host:port with a non-empty host and a
// port in 1…65535, else what is wrong with it.
func checkHostPort(s string) string {
	if s == "" {
		return "missing: want host:port"
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("%q is not host:port", s)
	}
	if host == "" {
		return fmt.Sprintf("%q has no host: peers need an address to dial", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("%q: port must be a number in 1…65535", s)
	}
	return ""
}

func (c *Config) validateClients(p *problems) {
	switch c.Clients.Admission {
	case AdmissionList:
	case AdmissionOpen:
		p.add("clients.admission", "%q is not supported: a request carries only its client id, so replicas can verify only clients whose keys they know; list every client's key in clients.keys and use %q", AdmissionOpen, AdmissionList)
	default:
		p.add("clients.admission", "%q: want %q (the only admission mode: list every client's key in clients.keys)", c.Clients.Admission, AdmissionList)
	}
	ids := map[uint64]int{}
	keys := map[string]int{}
	for i, k := range c.Clients.Keys {
		field := func(name string) string { return fmt.Sprintf("clients.keys[%d].%s", i, name) }
		if j, dup := ids[k.ID]; dup {
			p.add(field("id"), "%d is also the id of clients.keys[%d]", k.ID, j)
		} else {
			ids[k.ID] = i
		}
		p.checkPublicKey(field("public_key"), k.PublicKey, i, keys,
			"the client's Ed25519 public key in hex",
			"is also the key of clients.keys[%d]: a client is its key, so one key cannot have two ids")
	}
}

// Warnings lists conditions that are valid but probably unintended, such as
// n < 4 (no fault tolerance) or no admitted clients. Each is one line,
// "warning: FIELD: what", naming its field as a FieldError does. It does not
// repeat Validate's errors.
func (c *Config) Warnings() []string {
	var w []string
	add := func(field, format string, args ...any) {
		w = append(w, "warning: "+field+": "+fmt.Sprintf(format, args...))
	}
	f := c.F()
	switch {
	case c.N >= 1 && c.N < 4:
		add("n", "%d replica(s) tolerate no Byzantine faults (f = 0); use n ≥ 4 (3f+1) for fault tolerance", c.N)
	case c.N >= 4 && c.N != 3*f+1:
		add("n", "%d replicas tolerate f = %d, as %d do; the extra replicas add no fault tolerance", c.N, f, 3*f+1)
	}
	if c.Sigma == 1 {
		add("sigma", "1: an instance one round behind is suspected, which normal pipelining causes constantly; prefer ≥ 2")
	}
	if c.N > 1 && c.DataDir != "" && !strings.Contains(c.DataDir, IDPlaceholder) {
		add("data_dir", "%q has no %q: replicas on one host would share a data directory", c.DataDir, IDPlaceholder)
	}
	for i, r := range c.Replicas {
		field := fmt.Sprintf("replicas[%d].http_client_keys", i)
		switch {
		case r.HTTPClientKeys != "" && r.HTTPAddr == "":
			add(field, "set without http_addr: the keys serve the HTTP listener, which this replica does not start")
		case r.HTTPClientKeys != "" && c.N > 1 && !strings.Contains(r.HTTPClientKeys, IDPlaceholder):
			add(field, "%q has no %q: replicas on one host would share client keys, and two processes must never submit with one key", r.HTTPClientKeys, IDPlaceholder)
		}
	}
	if c.Clients.Admission == AdmissionList && len(c.Clients.Keys) == 0 {
		add("clients.keys", "empty with admission %q: no client can submit requests", AdmissionList)
	}
	return w
}
