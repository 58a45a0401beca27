package msg

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

// fakeSig is the test signature scheme: a keyed hash, distinct for replicas
// and clients.
func fakeSig(role byte, id uint64, payload []byte) []byte {
	h := sha256.New()
	h.Write([]byte{role})
	h.Write(binary.BigEndian.AppendUint64(nil, id))
	h.Write(payload)
	return h.Sum(nil)
}

const (
	roleReplica = 'r'
	roleClient  = 'c'
)

type verifyCall struct {
	role    byte
	id      uint64
	payload string
}

// fakeVerifier checks fakeSig signatures, records every call, and rejects
// the chosen (role, id, payload) even when correctly signed.
type fakeVerifier struct {
	calls []verifyCall
	bad   *verifyCall
}

func (v *fakeVerifier) check(role byte, id uint64, payload, sig []byte) bool {
	c := verifyCall{role, id, string(payload)}
	v.calls = append(v.calls, c)
	if v.bad != nil && *v.bad == c {
		return false
	}
	return bytes.Equal(sig, fakeSig(role, id, payload))
}

func (v *fakeVerifier) Replica(id ReplicaID, payload, sig []byte) bool {
	return v.check(roleReplica, uint64(id), payload, sig)
}

func (v *fakeVerifier) Client(id ClientID, payload, sig []byte) bool {
	return v.check(roleClient, uint64(id), payload, sig)
}

// Signing helpers, bottom-up so that outer signatures cover nested ones.

func signRequest(r *Request) { r.Sig = fakeSig(roleClient, uint64(r.Client), r.SignedBytes()) }

func signPrePrepare(p *PrePrepare) {
	for i := range p.Batch.Requests {
		signRequest(&p.Batch.Requests[i])
	}
	p.Digest = p.Batch.Digest()
	p.Sig = fakeSig(roleReplica, uint64(p.From), SignedBytes(p))
}

func signViewChange(vc *ViewChange) {
	for i := range vc.CheckpointProof {
		c := &vc.CheckpointProof[i]
		c.Sig = fakeSig(roleReplica, uint64(c.From), SignedBytes(c))
	}
	for i := range vc.Prepared {
		p := &vc.Prepared[i]
		signPrePrepare(&p.PrePrepare)
		for j := range p.Prepares {
			q := &p.Prepares[j]
			q.Digest = p.PrePrepare.Digest
			q.Sig = fakeSig(roleReplica, uint64(q.From), SignedBytes(q))
		}
	}
	vc.Sig = fakeSig(roleReplica, uint64(vc.From), SignedBytes(vc))
}

func signNewView(nv *NewView) {
	for i := range nv.ViewChanges {
		signViewChange(&nv.ViewChanges[i])
	}
	for i := range nv.PrePrepares {
		if !nv.PrePrepares[i].Null {
			signPrePrepare(&nv.PrePrepares[i])
		} else {
			p := &nv.PrePrepares[i]
			p.Sig = fakeSig(roleReplica, uint64(p.From), SignedBytes(p))
		}
	}
	nv.Sig = fakeSig(roleReplica, uint64(nv.From), SignedBytes(nv))
}

func signedSamples() []sample {
	cr := &ClientRequest{Instance: 1, Request: testRequest(9, 3, 20)}
	signRequest(&cr.Request)
	pp := ptr(testPrePrepare(1, 2, 3, testBatch(4, 10), 1))
	signPrePrepare(pp)
	null := ptr(testNullPrePrepare(1, 2, 4, 1))
	null.Sig = fakeSig(roleReplica, 1, SignedBytes(null))
	prep := ptr(testPrepare(1, 2, 3, pp.Digest, 2))
	prep.Sig = fakeSig(roleReplica, 2, SignedBytes(prep))
	cp := ptr(testCheckpoint(1, 100, 3))
	cp.Sig = fakeSig(roleReplica, 3, SignedBytes(cp))
	vc := ptr(testViewChange(1, 4, 2))
	signViewChange(vc)
	nv := ptr(testNewView(1, 4, 0))
	signNewView(nv)
	return []sample{
		{"request", cr}, {"preprepare", pp}, {"preprepare/null", null}, {"prepare", prep},
		{"checkpoint", cp}, {"viewchange", vc}, {"newview", nv},
	}
}

// expectedCalls counts the signatures a message carries.
func expectedCalls(m Message) int {
	switch m := m.(type) {
	case *ClientRequest:
		return 1
	case *PrePrepare:
		return 1 + len(m.Batch.Requests)
	case *Prepare, *Checkpoint:
		return 1
	case *ViewChange:
		n := 1 + len(m.CheckpointProof)
		for _, p := range m.Prepared {
			n += expectedCalls(&p.PrePrepare) + len(p.Prepares)
		}
		return n
	case *NewView:
		n := 1
		for i := range m.ViewChanges {
			n += expectedCalls(&m.ViewChanges[i])
		}
		for i := range m.PrePrepares {
			n += expectedCalls(&m.PrePrepares[i])
		}
		return n
	}
	return 0
}

func TestVerifyAcceptsValid(t *testing.T) {
	for _, s := range signedSamples() {
		v := &fakeVerifier{}
		if err := Verify(s.m, v); err != nil {
			t.Errorf("%s: %v", s.name, err)
		}
		if got, want := len(v.calls), expectedCalls(s.m); got != want {
			t.Errorf("%s: %d signature checks, want %d", s.name, got, want)
		}
		// Round-tripped messages verify too.
		m, err := Unmarshal(Marshal(s.m))
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(m, &fakeVerifier{}); err != nil {
			t.Errorf("%s after round trip: %v", s.name, err)
		}
	}
	// The view change and new view samples really exercise every nested kind.
	vc := signedSamples()[5].m.(*ViewChange)
	if len(vc.CheckpointProof) == 0 || len(vc.Prepared) == 0 || len(vc.Prepared[0].Prepares) == 0 || len(vc.Prepared[0].PrePrepare.Batch.Requests) == 0 {
		t.Fatal("view change sample lacks nested messages")
	}
}

// Each signature check Verify makes, failed on its own, fails the whole
// message with ErrBadSignature.
func TestVerifyEverySingleFailure(t *testing.T) {
	for _, s := range signedSamples() {
		rec := &fakeVerifier{}
		if err := Verify(s.m, rec); err != nil {
			t.Fatal(err)
		}
		var sawRole = map[byte]bool{}
		for i, c := range rec.calls {
			sawRole[c.role] = true
			c := c
			err := Verify(s.m, &fakeVerifier{bad: &c})
			if !errors.Is(err, ErrBadSignature) {
				t.Errorf("%s: failing check %d (role %c id %d) gave %v, want ErrBadSignature", s.name, i, c.role, c.id, err)
			}
		}
		if _, isReq := s.m.(*ClientRequest); !isReq && !sawRole[roleReplica] {
			t.Errorf("%s: outer signature never checked", s.name)
		}
	}
}

// The checks cover the right payloads: the outer message, every nested
// message and every client request, each under its signer's identity.
func TestVerifyChecksNestedPayloads(t *testing.T) {
	nv := signedSamples()[6].m.(*NewView)
	v := &fakeVerifier{}
	if err := Verify(nv, v); err != nil {
		t.Fatal(err)
	}
	seen := map[verifyCall]bool{}
	for _, c := range v.calls {
		seen[c] = true
	}
	want := func(what string, role byte, id uint64, payload []byte) {
		t.Helper()
		if !seen[verifyCall{role, id, string(payload)}] {
			t.Errorf("Verify did not check %s", what)
		}
	}
	want("new view", roleReplica, uint64(nv.From), SignedBytes(nv))
	for i := range nv.ViewChanges {
		vc := &nv.ViewChanges[i]
		want(fmt.Sprintf("view change %d", i), roleReplica, uint64(vc.From), SignedBytes(vc))
		for j := range vc.CheckpointProof {
			c := &vc.CheckpointProof[j]
			want("checkpoint", roleReplica, uint64(c.From), SignedBytes(c))
		}
		for j := range vc.Prepared {
			p := &vc.Prepared[j]
			want("proof pre-prepare", roleReplica, uint64(p.PrePrepare.From), SignedBytes(&p.PrePrepare))
			for k := range p.PrePrepare.Batch.Requests {
				r := &p.PrePrepare.Batch.Requests[k]
				want("proof request", roleClient, uint64(r.Client), r.SignedBytes())
			}
			for k := range p.Prepares {
				q := &p.Prepares[k]
				want("proof prepare", roleReplica, uint64(q.From), SignedBytes(q))
			}
		}
	}
	for i := range nv.PrePrepares {
		p := &nv.PrePrepares[i]
		want("new-view pre-prepare", roleReplica, uint64(p.From), SignedBytes(p))
		for k := range p.Batch.Requests {
			r := &p.Batch.Requests[k]
			want("new-view request", roleClient, uint64(r.Client), r.SignedBytes())
		}
	}
}

// Tampering with one nested signature, then re-signing the outer message so
// its own signature is valid, still fails verification.
func TestVerifyTamperedNestedSig(t *testing.T) {
	tamper := map[string]func(*NewView){
		"view change":        func(nv *NewView) { nv.ViewChanges[1].Sig[0] ^= 1 },
		"checkpoint":         func(nv *NewView) { nv.ViewChanges[0].CheckpointProof[2].Sig[0] ^= 1 },
		"proof pre-prepare":  func(nv *NewView) { nv.ViewChanges[2].Prepared[1].PrePrepare.Sig[0] ^= 1 },
		"proof request":      func(nv *NewView) { nv.ViewChanges[2].Prepared[1].PrePrepare.Batch.Requests[2].Sig[0] ^= 1 },
		"proof prepare":      func(nv *NewView) { nv.ViewChanges[0].Prepared[0].Prepares[1].Sig = nil },
		"new-view pp":        func(nv *NewView) { nv.PrePrepares[2].Sig[0] ^= 1 },
		"new-view request":   func(nv *NewView) { nv.PrePrepares[1].Batch.Requests[0].Sig[0] ^= 1 },
		"request op changed": func(nv *NewView) { nv.PrePrepares[0].Batch.Requests[0].Op[0] ^= 1 },
	}
	for name, f := range tamper {
		nv := signedSamples()[6].m.(*NewView)
		f(nv)
		nv.Sig = fakeSig(roleReplica, uint64(nv.From), SignedBytes(nv))
		if err := Verify(nv, &fakeVerifier{}); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: got %v, want ErrBadSignature", name, err)
		}
	}
	// Without re-signing, the outer signature itself no longer matches.
	nv := signedSamples()[6].m.(*NewView)
	nv.ViewChanges[0].CheckpointProof[0].Sig[0] ^= 1
	v := &fakeVerifier{}
	if err := Verify(nv, v); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("got %v", err)
	}
	// A signature moved to another sender does not verify.
	pp := signedSamples()[1].m.(*PrePrepare)
	pp.From++
	if err := Verify(pp, &fakeVerifier{}); !errors.Is(err, ErrBadSignature) {
		t.Errorf("pre-prepare with changed sender: %v", err)
	}
}

// Commits, Status and Reply carry no signature: Verify accepts them without
// consulting the verifier.
func TestVerifyUnsignedKinds(t *testing.T) {
	for _, m := range []Message{
		&Commit{Instance: 1, View: 2, Seq: 3, From: 1},
		&Commit{Instance: 1, View: 2, Seq: 3, From: 1, Sig: []byte("junk")},
		&Status{From: 2},
		&Reply{Client: 1, Number: 2, Result: []byte("x")},
	} {
		v := &fakeVerifier{bad: &verifyCall{}}
		if err := Verify(m, rejectAll{v}); err != nil {
			t.Errorf("%v: %v", m.Kind(), err)
		}
		if len(v.calls) != 0 {
			t.Errorf("%v: verifier consulted %d times", m.Kind(), len(v.calls))
		}
	}
}

type rejectAll struct{ v *fakeVerifier }

func (r rejectAll) Replica(id ReplicaID, p, s []byte) bool { r.v.Replica(id, p, s); return false }
func (r rejectAll) Client(id ClientID, p, s []byte) bool   { r.v.Client(id, p, s); return false }

func TestBatchDigest(t *testing.T) {
	base := testBatch(3, 8)
	d := base.Digest()
	if d != base.Digest() {
		t.Fatal("digest not deterministic")
	}
	clone := func() Batch {
		var b Batch
		for _, r := range base.Requests {
			b.Requests = append(b.Requests, Request{r.Client, r.Number, append([]byte(nil), r.Op...), append([]byte(nil), r.Sig...)})
		}
		return b
	}
	if c := clone(); c.Digest() != d {
		t.Fatal("equal batches have different digests")
	}
	changes := map[string]func(*Batch){
		"client":        func(b *Batch) { b.Requests[1].Client++ },
		"number":        func(b *Batch) { b.Requests[1].Number++ },
		"op byte":       func(b *Batch) { b.Requests[1].Op[0] ^= 1 },
		"op longer":     func(b *Batch) { b.Requests[1].Op = append(b.Requests[1].Op, 0) },
		"op empty":      func(b *Batch) { b.Requests[1].Op = nil },
		"sig byte":      func(b *Batch) { b.Requests[2].Sig[63] ^= 1 },
		"sig shorter":   func(b *Batch) { b.Requests[2].Sig = b.Requests[2].Sig[:63] },
		"swap order":    func(b *Batch) { b.Requests[0], b.Requests[2] = b.Requests[2], b.Requests[0] },
		"drop last":     func(b *Batch) { b.Requests = b.Requests[:2] },
		"append empty":  func(b *Batch) { b.Requests = append(b.Requests, Request{}) },
		"op/sig shift":  func(b *Batch) { r := &b.Requests[0]; r.Op, r.Sig = append(r.Op, r.Sig[0]), r.Sig[1:] },
		"op→next shift": func(b *Batch) { b.Requests[0].Op = b.Requests[0].Op[:7] },
	}
	for name, f := range changes {
		b := clone()
		f(&b)
		if b.Digest() == d {
			t.Errorf("digest unchanged after changing %s", name)
		}
	}
	empty := (&Batch{}).Digest()
	if empty != (&Batch{Requests: []Request{}}).Digest() {
		t.Error("nil and empty batches differ")
	}
	if empty == NullDigest {
		t.Error("NullDigest equals the empty batch digest")
	}
	if (&Batch{Requests: []Request{{}}}).Digest() == empty {
		t.Error("one zero request digests like the empty batch")
	}
	if (&Batch{Requests: []Request{{}}}).Digest() == NullDigest {
		t.Error("one zero request digests like the null batch")
	}
	// The digest survives a round trip of the pre-prepare carrying it.
	pp := ptr(testPrePrepare(1, 1, 1, base, 0))
	got, err := Unmarshal(Marshal(pp))
	if err != nil {
		t.Fatal(err)
	}
	if g := got.(*PrePrepare); g.Batch.Digest() != d || g.Digest != d {
		t.Error("digest changed across round trip")
	}
}
