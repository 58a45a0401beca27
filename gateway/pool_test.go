package gateway

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/braid-bft/braid/app/bank"
	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/client"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/internal/testcluster"
	"github.com/braid-bft/braid/msg"
)

// stalledCluster is a configuration whose replicas accept TCP connections
// and never answer, so every request stays in flight until its context
// ends; with keys admitted client keys.
func stalledCluster(t *testing.T, keys int) (*config.Config, []Key) {
	t.Helper()
	cfg, _ := testcluster.Config(t, 4, false)
	cfg.KVScope = config.KVShared
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	for i := range cfg.Replicas {
		cfg.Replicas[i].ClientAddr = ln.Addr().String()
	}
	cfg.Clients.Keys = nil
	var out []Key
	for i := range keys {
		pub, priv, err := auth.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Clients.Keys = append(cfg.Clients.Keys, config.ClientKey{ID: uint64(10 - i), PublicKey: auth.MarshalPublicKey(pub)})
		out = append(out, Key{ID: msg.ClientID(10 - i), Private: priv})
	}
	return cfg, out
}

// waitFor polls cond (a channel length the pool changes) until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPoolBusyAndOwner: with every client in flight a further operation
// waits and fails with ErrBusy at its deadline; caller-bound bank ops use
// the lowest id's client, the others the rest.
func TestPoolBusyAndOwner(t *testing.T) {
	cfg, keys := stalledCluster(t, 2)
	p, err := NewPool(cfg, keys, client.Options{DialTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Size() != 2 || p.OwnerID() != 9 || !slices.Equal(p.IDs(), []msg.ClientID{9, 10}) {
		t.Fatalf("size %d, owner %d, ids %v; want 2, the lowest id 9, 9 and 10", p.Size(), p.OwnerID(), p.IDs())
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	hold := func(op []byte) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = p.Execute(ctx, op)
		}()
	}
	hold(kv.Get([]byte("k"))) // takes the one non-owner client
	waitFor(t, "the general client to be taken", func() bool { return len(p.free) == 0 })
	if len(p.owner) != 1 {
		t.Fatal("a kv op took the owner's client")
	}
	short, cancelShort := context.WithTimeout(context.Background(), 20*time.Millisecond)
	_, err = p.Execute(short, kv.Put([]byte("k"), nil))
	cancelShort()
	if !errors.Is(err, ErrBusy) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Execute with every client busy: %v, want ErrBusy and the deadline", err)
	}
	hold(bank.Open("alice")) // the owner's client, though the general one is busy
	waitFor(t, "the owner's client to be taken", func() bool { return len(p.owner) == 0 })
	cancel()
	wg.Wait()
	if len(p.free) != 1 || len(p.owner) != 1 {
		t.Fatalf("clients not given back: %d general, %d owner", len(p.free), len(p.owner))
	}
}

func TestNewPoolErrors(t *testing.T) {
	cfg, keys := stalledCluster(t, 2)
	if _, err := NewPool(cfg, nil, client.Options{}); err == nil {
		t.Error("a pool without keys")
	}
	if _, err := NewPool(cfg, []Key{keys[0], keys[0]}, client.Options{}); err == nil {
		t.Error("a key given twice")
	}
	if _, err := NewPool(cfg, []Key{{ID: 99, Private: keys[0].Private}}, client.Options{}); !errors.Is(err, client.ErrNotAdmitted) {
		t.Errorf("an unadmitted key: %v", err)
	}
}
