package shell

import (
	"fmt"
	"slices"

	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/pbft"
	"github.com/braid-bft/braid/rcc"
)

// FromConfig derives replica id's shell configuration and the cluster's
// keyring from a cluster file: the admitted clients and their keys, the
// replicas' keys, this replica's signing key, and the protocol settings.
func FromConfig(cfg *config.Config, id int) (Config, auth.Keyring, error) {
	key, err := cfg.ReplicaKey(id)
	if err != nil {
		return Config{}, auth.Keyring{}, fmt.Errorf("key: %w", err)
	}
	keyring, err := cfg.Keyring()
	if err != nil {
		return Config{}, auth.Keyring{}, err
	}
	admitted := make([]msg.ClientID, 0, len(keyring.Clients))
	for cid := range keyring.Clients {
		admitted = append(admitted, cid)
	}
	slices.Sort(admitted)
	policy := rcc.Replace
	if cfg.FailurePolicy == config.InPlace {
		policy = rcc.InPlace
	}
	scope := kv.Shared
	if cfg.KVScope == config.KVPerClient {
		scope = kv.PerClient
	}
	return Config{
		Core: rcc.Config{
			ID: msg.ReplicaID(id), N: cfg.N, M: cfg.M, Policy: policy,
			Sigma: uint64(cfg.Sigma), Epsilon: uint64(cfg.Epsilon), Clients: admitted,
			Instance: pbft.Config{
				Signer: auth.ReplicaSigner(key), MaxBatch: cfg.BatchSize, Window: uint64(cfg.Window),
				CheckpointInterval: uint64(cfg.CheckpointInterval), RequestTimeout: cfg.RequestTimeout,
				ProgressTimeout: cfg.ProgressTimeout, ViewChangeTimeout: cfg.ViewChangeTimeout, PadToCheckpoint: true,
			},
		},
		Scope: scope,
	}, keyring, nil
}
