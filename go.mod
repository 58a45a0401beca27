module github.com/braid-bft/braid

go 1.26.8

require (
	filippo.io/edwards25519 v1.2.0 // indirect
	github.com/hdevalence/ed25519consensus v0.2.0 // indirect
)
