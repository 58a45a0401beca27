package client

import (
	"fmt"
	"path/filepath"

	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/msg"
)

// DefaultKeyFile is the key file a client uses when none is given: the
// first development client key braid init writes, keys/client-0.key in the
// configuration file's directory.
func DefaultKeyFile(cfg *config.Config) string {
	return filepath.Join(cfg.Dir(), "keys", "client-0.key")
}

// FindClientID returns the id cfg's clients.keys gives the public key pub,
// or an error wrapping ErrNotAdmitted if no entry lists it.
func FindClientID(cfg *config.Config, pub auth.PublicKey) (msg.ClientID, error) {
	for i, k := range cfg.Clients.Keys {
		key, err := auth.ParsePublicKey(k.PublicKey)
		if err != nil {
			return 0, fmt.Errorf("client: clients.keys[%d].public_key: %w", i, err)
		}
		if key.Equal(pub) {
			return msg.ClientID(k.ID), nil
		}
	}
	return 0, fmt.Errorf("%w: public key %s is not in clients.keys", ErrNotAdmitted, pub)
}

// LoadIdentity loads the cluster configuration at cfgPath and the client
// private key in keyFile (DefaultKeyFile if empty), and finds the key's
// client id in the configuration. The results are New's arguments.
func LoadIdentity(cfgPath, keyFile string) (*config.Config, msg.ClientID, auth.PrivateKey, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, 0, nil, err
	}
	if keyFile == "" {
		keyFile = DefaultKeyFile(cfg)
	}
	key, err := auth.ReadPrivateKeyFile(keyFile)
	if err != nil {
		return nil, 0, nil, err
	}
	id, err := FindClientID(cfg, key.Public())
	if err != nil {
		return nil, 0, nil, fmt.Errorf("key file %s is not admitted by %s: %w", keyFile, cfgPath, err)
	}
	return cfg, id, key, nil
}
