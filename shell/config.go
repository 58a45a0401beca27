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
	pubs, err := cfg.ReplicaPublicKeys()
	if err != nil {
		return Config{}, auth.Keyring{}, err
	}
	clientKeys, err := cfg.ClientPublicKeys()
	if err != nil {
		return Config{}, auth.Keyring{}, err
	}
	keyring := auth.Keyring{Replicas: map[msg.ReplicaID]auth.PublicKey{}, Clients: map[msg.ClientID]auth.PublicKey{}}
	for i, k := range pubs {
		keyring.Replicas[msg.ReplicaID(i)] = k
	}
	admitted := make([]msg.ClientID, 0, len(clientKeys))
	for cid, k := range clientKeys {
		keyring.Clients[msg.ClientID(cid)] = k
		admitted = append(admitted, msg.ClientID(cid))
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
