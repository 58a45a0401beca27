package config

import (
	"strings"
)

// FieldDocs gives a one-line summary of every field of the file, keyed by
// its path ("replicas[].addr" stands for every replica's addr). The doc
// comments on Config and the types it contains are the full documentation;
// a test keeps this table complete.
var FieldDocs = map[string]string{
	"n":                           "replicas; tolerates f = ⌊(n−1)/3⌋ Byzantine ones (required, 1…1024)",
	"m":                           "parallel PBFT instances, 1 ≤ m ≤ n (default n − f: primary replacement; n: in-place recovery; 1 = plain PBFT)",
	"failure_policy":              `"replace" (needs m ≤ n−f) or "in-place" (needs m > f); default from m`,
	"sigma":                       "soft-failure gap in rounds; < window − checkpoint_interval (default window/2)",
	"epsilon":                     "rounds a failed instance skips, ≥ 1 (default checkpoint_interval/2)",
	"batch_size":                  "most requests per batch, 1…4096 (default 100)",
	"window":                      "outstanding rounds per instance; multiple of, and ≥ 2×, checkpoint_interval (default 4×)",
	"checkpoint_interval":         "rounds between checkpoints, ≥ 1 (default 16)",
	"tick":                        `length of one protocol tick, a Go duration (default "10ms")`,
	"request_timeout":             "ticks a backup waits for a relayed request before suspecting the primary (default 40)",
	"progress_timeout":            "ticks a backup waits for an accepted proposal to commit (default 40)",
	"view_change_timeout":         "ticks to wait for a new view, doubled per failed attempt (default 40)",
	"fsync":                       `log durability: "per-batch" or "group" (default "per-batch")`,
	"group_commit_interval":       `how long "group" fsync collects records (default "2ms")`,
	"data_dir":                    `data directory template, {id} = replica id, relative to this file (default "data/replica-{id}")`,
	"kv_scope":                    `kv application keyspace: "shared" or "per-client" (default "per-client")`,
	"replicas":                    "exactly n replicas",
	"replicas[].id":               "0 … n−1, each once",
	"replicas[].addr":             "host:port for replica-to-replica traffic",
	"replicas[].client_addr":      "host:port clients send requests to",
	"replicas[].http_addr":        "host:port of the HTTP API and metrics (optional)",
	"replicas[].public_key":       "Ed25519 public key, 64 hex characters (braid keygen prints one)",
	"replicas[].key_file":         `private key file, relative to this file (default "keys/replica-{id}.key")`,
	"replicas[].http_client_keys": `glob of admitted client key files its HTTP kv/bank API submits through, {id} = replica id, relative to this file (optional)`,
	"clients":                     "client admission",
	"clients.admission":           `"list": only the keys in clients.keys, the one supported mode (default "list")`,
	"clients.keys":                "admitted clients; ids and keys distinct",
	"clients.keys[].id":           "client id; instance id mod m serves it",
	"clients.keys[].public_key":   "Ed25519 public key, 64 hex characters",
}

// Annotated returns c as Save would write it, with a "//" comment above the
// first occurrence of every field saying what it is (from FieldDocs). The
// result is for reading: JSON has no comments, so it is not loadable as is;
// deleting the comment lines gives exactly what Save writes.
func (c *Config) Annotated() (string, error) {
	data, err := c.Marshal()
	if err != nil {
		return "", err
	}
	var out strings.Builder
	var stack []string // path of each open object or array; arrays end in "[]"
	seen := map[string]bool{}
	for _, line := range strings.SplitAfter(string(data), "\n") {
		t := strings.TrimSpace(line)
		indent := line[:len(line)-len(strings.TrimLeft(line, " "))]
		switch {
		case strings.HasPrefix(t, `"`):
			key, _, _ := strings.Cut(t[1:], `"`)
			prefix := ""
			if len(stack) > 0 {
				prefix = stack[len(stack)-1]
			}
			path := key
			if prefix != "" {
				path = prefix + "." + key
			}
			if doc, ok := FieldDocs[path]; ok && !seen[path] {
				seen[path] = true
				out.WriteString(indent + "// " + doc + "\n")
			}
			switch {
			case strings.HasSuffix(t, "{"):
				stack = append(stack, path)
			case strings.HasSuffix(t, "["):
				stack = append(stack, path+"[]")
			}
		case t == "{" || t == "[":
			top := ""
			if len(stack) > 0 {
				top = stack[len(stack)-1]
			}
			stack = append(stack, top)
		case strings.HasPrefix(t, "}") || strings.HasPrefix(t, "]"):
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		}
		out.WriteString(line)
	}
	return out.String(), nil
}
