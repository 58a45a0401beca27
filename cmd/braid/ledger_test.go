package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/internal/storetest"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/ledger/ledgertest"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/quorum"
	"github.com/braid-bft/braid/storage"
)

// testCluster is a cluster made by `braid init`, with the private keys init
// wrote.
type testCluster struct {
	dir      string
	cfgPath  string
	cfg      *config.Config
	replicas []auth.PrivateKey
	clients  []auth.PrivateKey
}

func newTestCluster(t *testing.T) *testCluster {
	t.Helper()
	const n, clients = 4, 3
	dir := filepath.Join(t.TempDir(), "cluster")
	if _, stderr, err := runCmd(runInit, "--dir", dir, "--n", fmt.Sprint(n), "--clients", fmt.Sprint(clients), "--base-port", "17300"); err != nil {
		t.Fatalf("init: %v\n%s", err, stderr)
	}
	c := &testCluster{dir: dir, cfgPath: filepath.Join(dir, clusterFile)}
	var err error
	if c.cfg, err = config.Load(c.cfgPath); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		priv, err := c.cfg.ReplicaKey(i)
		if err != nil {
			t.Fatal(err)
		}
		c.replicas = append(c.replicas, priv)
	}
	for j := range clients {
		priv, err := auth.ReadPrivateKeyFile(filepath.Join(dir, "keys", fmt.Sprintf("client-%d.key", j)))
		if err != nil {
			t.Fatal(err)
		}
		c.clients = append(c.clients, priv)
	}
	return c
}

// chain builds a valid ledger of height blocks signed with the cluster's
// keys: block h holds 1 + h%3 requests (request i's op is ledgertest.Op(h,
// i), unique bytes to find it in a file), and every certEvery-th block has a
// certificate signed by a quorum of replicas.
func (c *testCluster) chain(height uint64, certEvery int) *ledgertest.Chain {
	ch := &ledgertest.Chain{Certs: make(map[uint64]*ledger.Certificate)}
	var prev, state msg.Digest
	for h := uint64(1); h <= height; h++ {
		b := &ledger.Block{Height: h, Prev: prev, Round: h}
		var results [][]byte
		for i := 0; i < 1+int(h%3); i++ {
			j := (int(h) + i) % len(c.clients)
			r := msg.Request{Client: msg.ClientID(j), Number: h, Op: ledgertest.Op(h, i)}
			r.Sig = auth.ClientSigner(c.clients[j]).Sign(r.SignedBytes())
			b.Requests = append(b.Requests, r)
			sum := sha256.Sum256(r.Op)
			results = append(results, sum[:])
		}
		b.ResultsDigest = ledger.ResultsDigest(results)
		state = sha256.Sum256(append(state[:], b.ResultsDigest[:]...))
		b.StateDigest = state
		ch.Blocks = append(ch.Blocks, b)
		hash := b.Hash()
		if certEvery > 0 && h%uint64(certEvery) == 0 {
			cert := &ledger.Certificate{Round: h, BlockHash: hash, StateDigest: b.StateDigest}
			for id := range quorum.Size(c.cfg.N) {
				cp := msg.Checkpoint{Seq: h, State: ledger.CheckpointDigest(hash, b.StateDigest), From: msg.ReplicaID(id)}
				cp.Sig = auth.ReplicaSigner(c.replicas[id]).Sign(msg.SignedBytes(&cp))
				cert.Signatures = append(cert.Signatures, cp)
			}
			ch.Certs[h] = cert
		}
		prev = hash
	}
	return ch
}

func headHex(ch *ledgertest.Chain) string {
	h := ch.Blocks[len(ch.Blocks)-1].Hash()
	return hex.EncodeToString(h[:])
}

// wantFailedAt checks that a verify run reported a break at exactly height h
// and exits 1.
func wantFailedAt(t *testing.T, stdout string, err error, h uint64) {
	t.Helper()
	if code, ok := err.(exitCode); !ok || code != 1 {
		t.Fatalf("error %v, want exit code 1 (stdout %q)", err, stdout)
	}
	if want := fmt.Sprintf("FAILED at height %d: ", h); !strings.HasPrefix(stdout, want) {
		t.Fatalf("output %q, want prefix %q", stdout, want)
	}
}

func TestLedgerVerifyStore(t *testing.T) {
	c := newTestCluster(t)
	ch := c.chain(24, 5)
	storetest.Write(t, c.cfg.ReplicaDataDir(0), ch)

	want := fmt.Sprintf("ok: height 24, head %s, 4 certificates, certified up to height 20\n"+
		"note: blocks 21 to 24 are hash-chained but not yet covered by a certificate\n", headHex(ch))
	for _, args := range [][]string{
		{"verify", "--dir", c.cfg.ReplicaDataDir(0), "--config", c.cfgPath},
		{"verify", "--config", c.cfgPath, "--id", "0"},
		{"verify", "--dir", c.cfg.ReplicaDataDir(0), "--config", c.cfgPath, "--id", "0"},
	} {
		stdout, stderr, err := runCmd(runLedger, args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s%s", args, err, stdout, stderr)
		}
		if stdout != want {
			t.Errorf("%v: output\n%s\nwant\n%s", args, stdout, want)
		}
	}
	t.Log(want)

	// A fully certified ledger prints no note.
	c2 := c.chain(10, 5)
	dir := t.TempDir()
	storetest.Write(t, dir, c2)
	stdout, _, err := runCmd(runLedger, "verify", "--dir", dir, "--config", c.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("ok: height 10, head %s, 2 certificates, certified up to height 10\n", headHex(c2)); stdout != want {
		t.Errorf("output %q, want %q", stdout, want)
	}

	// So does an empty one.
	empty := t.TempDir()
	storetest.Write(t, empty, &ledgertest.Chain{})
	stdout, _, err = runCmd(runLedger, "verify", "--dir", empty, "--config", c.cfgPath)
	if err != nil || stdout != "ok: height 0 (empty ledger)\n" {
		t.Errorf("empty ledger: %q, %v", stdout, err)
	}
}

// TestLedgerVerifyNamesCorruptBlockOnDisk flips ONE byte of one stored block
// in the database file and expects `braid ledger verify` to name exactly
// that block's height and exit 1. As in ledger's test of the same name,
// each stored copy of the block is flipped in turn (storetest.FlipEachCopy):
// stale copies change nothing, and exactly one (the live one) must break
// the ledger.
func TestLedgerVerifyNamesCorruptBlockOnDisk(t *testing.T) {
	c := newTestCluster(t)
	ch := c.chain(24, 5)
	for _, h := range []uint64{1, 11, 15, 24} { // first, uncertified, certified, last
		dir := t.TempDir()
		storetest.Write(t, dir, ch)
		broke := storetest.FlipEachCopy(t, filepath.Join(dir, storage.FileName), ledgertest.Op(h, 0), func() bool {
			stdout, stderr, err := runCmd(runLedger, "verify", "--dir", dir, "--config", c.cfgPath)
			if err == nil {
				if !strings.HasPrefix(stdout, "ok: height 24, ") {
					t.Fatalf("stale copy: output %q", stdout)
				}
				return false
			}
			wantFailedAt(t, stdout, err, h)
			if stderr != "" {
				t.Errorf("stderr %q", stderr)
			}
			t.Log(strings.TrimSpace(stdout))
			return true
		})
		if broke != 1 {
			t.Fatalf("block %d: %d flipped copies broke the ledger, want exactly 1", h, broke)
		}
	}
}

func TestLedgerExportThenVerify(t *testing.T) {
	c := newTestCluster(t)
	ch := c.chain(24, 5)
	data := c.cfg.ReplicaDataDir(1)
	storetest.Write(t, data, ch)
	out := filepath.Join(t.TempDir(), "ledger.braid")

	stdout, stderr, err := runCmd(runLedger, "export", "--dir", data, "--out", out)
	if err != nil {
		t.Fatalf("export: %v\n%s", err, stderr)
	}
	if !strings.HasPrefix(stdout, "exported 24 blocks and 4 certificates from "+filepath.Join(data, storage.FileName)+" to "+out+" (") {
		t.Errorf("export output %q", stdout)
	}
	t.Log(strings.TrimSpace(stdout))

	// Exporting over an existing file needs --force; --config --id works too.
	if _, _, err := runCmd(runLedger, "export", "--dir", data, "--out", out); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("export over an existing file: %v", err)
	}
	if _, _, err := runCmd(runLedger, "export", "--config", c.cfgPath, "--id", "1", "--out", out, "--force"); err != nil {
		t.Errorf("export --config --id --force: %v", err)
	}
	if matches, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*tmp*")); len(matches) > 0 {
		t.Errorf("temporary files left behind: %v", matches)
	}

	stdout, _, err = runCmd(runLedger, "verify", "--export", out, "--config", c.cfgPath)
	if err != nil {
		t.Fatalf("verify --export: %v\n%s", err, stdout)
	}
	if want := fmt.Sprintf("ok: height 24, head %s, 4 certificates, certified up to height 20\n", headHex(ch)); !strings.HasPrefix(stdout, want) {
		t.Errorf("verify --export output %q, want prefix %q", stdout, want)
	}

	orig, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	flipAt := func(t *testing.T, needle []byte) {
		t.Helper()
		i := bytes.Index(orig, needle)
		if i < 0 || bytes.Contains(orig[i+1:], needle) {
			t.Fatalf("%q not found exactly once in the export", needle)
		}
		data := bytes.Clone(orig)
		data[i+len(needle)-1] ^= 0x01
		if err := os.WriteFile(out, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range []uint64{1, 13, 24} {
		flipAt(t, ledgertest.Op(h, 0))
		stdout, _, err := runCmd(runLedger, "verify", "--export", out, "--config", c.cfgPath)
		wantFailedAt(t, stdout, err, h)
		t.Log(strings.TrimSpace(stdout))
	}
	// Deliberate tampering that also fixes the frame checksum: the CRC is no
	// security measure, the client signature is what catches it.
	{
		b := ch.Blocks[13-1]
		payload := b.Encode()
		i := bytes.Index(orig, payload)
		if i < 13 {
			t.Fatal("block 13 not found in the export")
		}
		data := bytes.Clone(orig)
		op := ledgertest.Op(13, 0)
		j := i + bytes.Index(payload, op)
		data[j+len(op)-1] ^= 0x01
		end := i + len(payload)
		tab := crc32.MakeTable(crc32.Castagnoli)
		crc := crc32.Update(crc32.Checksum(data[i-13:i], tab), tab, data[i:end]) // header is the 13 bytes before the payload
		binary.BigEndian.PutUint32(data[end:], crc)
		if err := os.WriteFile(out, data, 0o600); err != nil {
			t.Fatal(err)
		}
		stdout, _, err := runCmd(runLedger, "verify", "--export", out, "--config", c.cfgPath)
		wantFailedAt(t, stdout, err, 13)
		if !strings.Contains(stdout, "bad client signature") {
			t.Errorf("output %q, want a bad client signature", stdout)
		}
		t.Log(strings.TrimSpace(stdout))
	}

	// A byte of a certificate (a signature of the one at height 15).
	flipAt(t, ch.Certs[15].Signatures[1].Sig)
	stdout, _, err = runCmd(runLedger, "verify", "--export", out, "--config", c.cfgPath)
	wantFailedAt(t, stdout, err, 15)
	if !strings.Contains(stdout, "certificate") {
		t.Errorf("output %q does not mention the certificate", stdout)
	}
	t.Log(strings.TrimSpace(stdout))
}

func TestLedgerVerifyWrongCluster(t *testing.T) {
	c := newTestCluster(t)
	other := newTestCluster(t)
	ch := c.chain(12, 5)
	data := t.TempDir()
	storetest.Write(t, data, ch)

	// Entirely another cluster's keys: the first client signature fails.
	stdout, _, err := runCmd(runLedger, "verify", "--dir", data, "--config", other.cfgPath)
	wantFailedAt(t, stdout, err, 1)
	if !strings.Contains(stdout, "bad client signature") {
		t.Errorf("output %q", stdout)
	}
	t.Log(strings.TrimSpace(stdout))

	// The right clients but another cluster's replica keys: the blocks
	// check out, the first certificate does not.
	mixed, err := config.Load(c.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	for i := range mixed.Replicas {
		mixed.Replicas[i].PublicKey = other.cfg.Replicas[i].PublicKey
	}
	mixedPath := filepath.Join(t.TempDir(), "mixed.json")
	if err := mixed.Save(mixedPath); err != nil {
		t.Fatal(err)
	}
	stdout, _, err = runCmd(runLedger, "verify", "--dir", data, "--config", mixedPath)
	wantFailedAt(t, stdout, err, 5)
	if !strings.Contains(stdout, "certificate") || !strings.Contains(stdout, "does not verify") {
		t.Errorf("output %q does not report a certificate failure", stdout)
	}
	t.Log(strings.TrimSpace(stdout))
}

func TestLedgerUnreadableInput(t *testing.T) {
	c := newTestCluster(t)
	missing := filepath.Join(t.TempDir(), "no-such-replica")
	garbage := filepath.Join(t.TempDir(), "garbage.export")
	if err := os.WriteFile(garbage, []byte("this is not a ledger export at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyDir := t.TempDir()
	for _, tt := range []struct {
		args []string
		want string // in the error
	}{
		{[]string{"verify", "--dir", missing, "--config", c.cfgPath}, missing},
		{[]string{"verify", "--dir", emptyDir, "--config", c.cfgPath}, filepath.Join(emptyDir, storage.FileName)},
		{[]string{"verify", "--export", filepath.Join(missing, "x"), "--config", c.cfgPath}, filepath.Join(missing, "x")},
		{[]string{"verify", "--export", garbage, "--config", c.cfgPath}, garbage},
		{[]string{"verify", "--dir", emptyDir, "--config", filepath.Join(missing, "cluster.json")}, filepath.Join(missing, "cluster.json")},
		{[]string{"verify", "--dir", emptyDir}, "--config is required"},
		{[]string{"verify", "--config", c.cfgPath}, "nothing to verify"},
		{[]string{"verify", "--config", c.cfgPath, "--id", "4"}, "--id 4"},
		{[]string{"verify", "--config", c.cfgPath, "--export", garbage, "--dir", emptyDir}, "cannot be combined"},
		{[]string{"export", "--dir", missing, "--out", filepath.Join(t.TempDir(), "x")}, missing},
		{[]string{"export", "--dir", emptyDir}, "--out is required"},
	} {
		stdout, _, err := runCmd(runLedger, tt.args...)
		if err == nil {
			t.Errorf("%v: no error (output %q)", tt.args, stdout)
			continue
		}
		if _, ok := err.(exitCode); ok {
			t.Errorf("%v: bare exit code %v, want an error message", tt.args, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %q does not mention %q", tt.args, err, tt.want)
		}
	}
	// Nothing was created where there was nothing.
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: %v, want it still missing", missing, err)
	}
	if _, err := os.Stat(filepath.Join(emptyDir, storage.FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("verify created a store in %s", emptyDir)
	}
	// Usage errors exit 2.
	for _, args := range [][]string{nil, {"frobnicate"}, {"verify", "--bogus"}} {
		if _, _, err := runCmd(runLedger, args...); err != exitCode(2) {
			t.Errorf("%v: %v, want exit code 2", args, err)
		}
	}
}

// TestLedgerVerifyLockedStore checks the message when a replica (here, an
// open Store) holds the database.
func TestLedgerVerifyLockedStore(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for bbolt's one-second lock timeout")
	}
	c := newTestCluster(t)
	dir := t.TempDir()
	storetest.Write(t, dir, c.chain(3, 0))
	s, err := storage.Open(dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, _, err = runCmd(runLedger, "verify", "--dir", dir, "--config", c.cfgPath)
	if err == nil || !strings.Contains(err.Error(), "locked") || !strings.Contains(err.Error(), filepath.Join(dir, storage.FileName)) {
		t.Errorf("verify of a locked store: %v", err)
	}
}
