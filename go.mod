module github.com/braid-bft/braid

go 1.26.8

require (
	filippo.io/edwards25519 v1.2.0
	github.com/cockroachdb/datadriven v1.0.3
	github.com/hdevalence/ed25519consensus v0.2.0
	go.etcd.io/bbolt v1.5.0
)

require (
	github.com/pmezard/go-difflib v1.0.0 // indirect
	golang.org/x/sys v0.45.0 // indirect
)
