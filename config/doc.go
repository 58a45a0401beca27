// Package config is Braid's cluster configuration: one file that describes
// the replicas, their addresses and public keys, the admitted clients and
// every protocol parameter. Every replica of a cluster loads the same file
// (each also reads its own private key from the path the file names), and
// clients and tools read it to find the replicas and their keys.
//
// # Format
//
// The file is JSON, read and written with the standard library's
// encoding/json. JSON was chosen over TOML or YAML because it needs no
// dependency, because Save followed by Load reproduces a Config exactly
// (every field is an int, a string or a list of those; durations are kept as
// the strings the operator wrote, so "1s" stays "1s"), and because every
// language and tool can read and write it. The price is that JSON has no
// comments; the documentation lives in the field doc comments below, in
// docs/config.md, and in the annotated example (*Config).Annotated generates.
//
// Loading is strict: unknown fields, field names in the wrong case,
// duplicate fields and trailing data are errors, so a typo never silently
// leaves a parameter at its default.
//
// # Defaults and validation
//
// A field that is absent or zero takes its default (ApplyDefaults); several
// defaults derive from other fields (m from n, failure_policy from m and n,
// window from checkpoint_interval, sigma from window, epsilon from sigma), so
// changing one parameter keeps the derived ones consistent. Load applies the
// defaults and then validates. Validate reports every problem at once
// (errors.Join of *FieldError values), each naming the field it is about in
// the file's own spelling, e.g.
//
//	config: replicas[2].addr: "x" is not host:port
//
// Conditions that are legal but probably not what the operator wants (fewer
// than four replicas, no client keys, ...) are not errors; Warnings lists
// them.
//
// # Paths
//
// Relative paths in the file (data_dir, key_file) are relative to the
// directory holding the file, so a cluster directory can be moved as a
// whole. Use ReplicaDataDir and ReplicaKeyFile to get them resolved.
package config
