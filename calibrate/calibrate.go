// Package calibrate measures, on the machine it runs on, what the
// simulator's cost model (sim.Machine) charges for: a signature check
// alone and per signature in batches, a signature, a hashed byte, encoding
// and decoding a message, sealing a TLS record, an fsync. `braid bench
// --calibrate` writes the result to a file that `braid bench --sim` and
// `braid sim --costs` read, so simulated figures come from measured costs
// rather than guesses.
//
// Every figure is the best of a few passes, per operation, on one core:
// the best pass is the one least disturbed by whatever else the machine
// was doing, and the model charges one core's work per operation.
package calibrate

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/internal/atomicfile"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/sim"
)

// passes is how many times each figure is measured; the best one counts.
const passes = 3

// Measure runs every measurement, saying what it does on progress, and
// returns the model. dir is where the fsync test writes (it must be on
// the disk the replicas would use: a tmpfs makes fsyncs free).
func Measure(dir string, progress io.Writer) (sim.Machine, error) {
	m := sim.Machine{Cores: runtime.NumCPU()}
	step := func(what string, f func() (time.Duration, error), into *time.Duration) error {
		fmt.Fprintf(progress, "  %-44s", what)
		d, err := f()
		if err != nil {
			fmt.Fprintln(progress, "failed")
			return fmt.Errorf("%s: %w", what, err)
		}
		*into = d
		fmt.Fprintf(progress, "%v\n", d)
		return nil
	}
	items, err := SignedRequests(2048)
	if err != nil {
		return m, err
	}
	for _, s := range []struct {
		what string
		f    func() (time.Duration, error)
		into *time.Duration
	}{
		{"signature check, alone", func() (time.Duration, error) { return verifyAlone(items[:512]) }, &m.Verification},
		{"per signature, batch of 16", func() (time.Duration, error) { return BatchVerify(items, 16) }, &m.Batch16},
		{"per signature, batch of 64", func() (time.Duration, error) { return BatchVerify(items, 64) }, &m.Batch64},
		{"per signature, batch of 256", func() (time.Duration, error) { return BatchVerify(items, 256) }, &m.Batch256},
		{"replica signature", sign, &m.Sign},
		{"SHA-256 per byte", hashByte, &m.PerByte},
		{"encode or decode one message (prepare)", message, &m.Message},
		{"TLS record, fixed part (AES-GCM seal)", func() (time.Duration, error) { f, _, err := record(); return f, err }, &m.Record},
		{"TLS record, per byte", func() (time.Duration, error) { _, b, err := record(); return b, err }, &m.RecordByte},
		{"fsync of a 4 KiB append in " + dir, func() (time.Duration, error) { return fsync(dir) }, &m.Fsync},
	} {
		if err := step(s.what, s.f, s.into); err != nil {
			return m, err
		}
	}
	m.Source = fmt.Sprintf("calibrated %s on %s, %d cores, %s", time.Now().UTC().Format("2006-01-02"), cpuModel(), m.Cores, runtime.Version())
	return m, m.Validate()
}

// best runs f passes times and returns the shortest time per operation.
func best(ops int, f func() error) (time.Duration, error) {
	b := time.Duration(1<<63 - 1)
	for range passes {
		start := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		b = min(b, time.Since(start)/time.Duration(ops))
	}
	return max(b, 1), nil
}

// SignedRequests makes n client requests signed by 64 clients, like the
// bench's load (the bench's floor measures on them too).
func SignedRequests(n int) ([]auth.BatchItem, error) {
	const keys = 64
	pubs := make([]auth.PublicKey, keys)
	signers := make([]auth.Signer, keys)
	for i := range keys {
		pub, priv, err := auth.GenerateKey(nil)
		if err != nil {
			return nil, err
		}
		pubs[i], signers[i] = pub, auth.ClientSigner(priv)
	}
	items := make([]auth.BatchItem, n)
	for i := range items {
		req := msg.Request{Client: msg.ClientID(i % keys), Number: uint64(i + 1), Op: kv.Put(fmt.Appendf(nil, "w%07d", i), make([]byte, 64))}
		b := req.SignedBytes()
		items[i] = auth.BatchItem{Key: pubs[i%keys], Context: auth.ContextClient, Msg: b, Sig: signers[i%keys].Sign(b)}
	}
	return items, nil
}

func verifyAlone(items []auth.BatchItem) (time.Duration, error) {
	return best(len(items), func() error {
		for i := range items {
			if !auth.Verify(items[i].Key, items[i].Context, items[i].Msg, items[i].Sig) {
				return errors.New("a valid signature failed to verify")
			}
		}
		return nil
	})
}

// BatchVerify is the time per signature of batch verification in batches
// of size on a one-worker auth.Pool, as a replica verifies.
func BatchVerify(items []auth.BatchItem, size int) (time.Duration, error) {
	pool := auth.NewPool(1, 0)
	defer pool.Close()
	return best(len(items), func() error {
		for lo := 0; lo < len(items); lo += size {
			valid, err := pool.Verify(context.Background(), items[lo:min(lo+size, len(items))])
			if err != nil {
				return err
			}
			if slices.Contains(valid, false) {
				return errors.New("batch verification rejected a valid signature")
			}
		}
		return nil
	})
}

func sign() (time.Duration, error) {
	_, priv, err := auth.GenerateKey(nil)
	if err != nil {
		return 0, err
	}
	s := auth.ReplicaSigner(priv)
	p := &msg.Prepare{Instance: 1, View: 2, Seq: 3, From: 1}
	payload := msg.SignedBytes(p)
	const ops = 512
	return best(ops, func() error {
		for range ops {
			s.Sign(payload)
		}
		return nil
	})
}

func hashByte() (time.Duration, error) {
	buf := make([]byte, 1<<16)
	const ops = 64
	d, err := best(ops, func() error {
		for range ops {
			sha256.Sum256(buf)
		}
		return nil
	})
	return max(d/time.Duration(len(buf)), 1), err // the model counts whole nanoseconds: SHA-NI hashes a byte in less
}

// message is half of one encode-and-decode round trip of a prepare, the
// most common message: the per-message cost beside the bytes.
func message() (time.Duration, error) {
	p := &msg.Prepare{Instance: 1, View: 2, Seq: 3, From: 1, Sig: make([]byte, 64)}
	const ops = 20000
	d, err := best(ops, func() error {
		for range ops {
			if _, err := msg.Unmarshal(msg.Marshal(p)); err != nil {
				return err
			}
		}
		return nil
	})
	return max(d/2, 1), err
}

// record seals records with AES-128-GCM, TLS 1.3's usual cipher: the
// fixed cost from a 64-byte record, the per-byte cost from a 16 KiB one.
// It is the cipher alone, not crypto/tls's framing and locking.
func record() (fixed, perByte time.Duration, err error) {
	block, err := aes.NewCipher(make([]byte, 16))
	if err != nil {
		return 0, 0, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return 0, 0, err
	}
	nonce := make([]byte, aead.NonceSize())
	seal := func(size, ops int) (time.Duration, error) {
		pt := make([]byte, size)
		out := make([]byte, 0, size+aead.Overhead())
		return best(ops, func() error {
			for range ops {
				out = aead.Seal(out[:0], nonce, pt, nil)
			}
			return nil
		})
	}
	small, err := seal(64, 20000)
	if err != nil {
		return 0, 0, err
	}
	large, err := seal(16384, 2000)
	if err != nil {
		return 0, 0, err
	}
	perByte = max((large-small)/(16384-64), 0)
	if perByte == 0 && large > small {
		perByte = 1 // below a nanosecond per byte; charge the least the model can
	}
	return small, perByte, nil
}

// fsync appends 4 KiB and fdatasyncs it, the shape of a journal commit.
func fsync(dir string) (time.Duration, error) {
	f, err := os.CreateTemp(dir, "braid-calibrate-*")
	if err != nil {
		return 0, err
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	buf := make([]byte, 4096)
	const ops = 64
	return best(ops, func() error {
		for range ops {
			if _, err := f.Write(buf); err != nil {
				return err
			}
			if err := f.Sync(); err != nil {
				return err
			}
		}
		return nil
	})
}

func cpuModel() string {
	raw, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// Write saves the model as indented JSON at path, atomically.
func Write(path string, m sim.Machine) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, 0o644, append(b, '\n'))
}
