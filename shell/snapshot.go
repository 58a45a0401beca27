package shell

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/braid-bft/braid/msg"
)

// A replica snapshot is the executed state at a checkpoint round: the
// application's snapshot and the exactly-once table (per client, the last
// executed request number and its result). The table is part of the
// snapshot so that after a restart — or after a state transfer, which
// replays certified blocks on top of it — a retransmitted request that
// executed just before is answered from the cache instead of never getting
// f+1 matching replies. The table is a deterministic function of the
// certified block history (every block binds its requests and their results
// digest), so checkpoints certify it through the blocks they cover.

// Version 2 also keeps the application's digest lanes (mux.App.DigestLanes):
// restoring then need not rehash every record, which was most of a restart
// after the ten-minute benchmark; a worker rehashes them after the replica
// is up and stops it if they lied (see restore).
var (
	snapshotTag   = []byte("braid/replica-snapshot/v1")
	snapshotTagV2 = []byte("braid/replica-snapshot/v2")
)

// maxSnapshotLanes bounds the digest lanes a snapshot may carry.
const maxSnapshotLanes = 1 << 16

// maxSnapshotClients bounds the decoded table (hostile disk input).
const maxSnapshotClients = 1 << 24

// minClientBytes is one table entry with an empty result: client, number,
// view, outcome, instance, result length.
const minClientBytes = 8 + 8 + 8 + 1 + 4 + 4

// executed is the exactly-once table: per client, the last executed request
// and the reply it got.
type executed map[msg.ClientID]*msg.Reply

func (t executed) lastNums() map[msg.ClientID]uint64 {
	out := make(map[msg.ClientID]uint64, len(t))
	for c, r := range t {
		out[c] = r.Number
	}
	return out
}

func (t executed) last(c msg.ClientID) uint64 {
	if r := t[c]; r != nil {
		return r.Number
	}
	return 0
}

func (t executed) clone() executed {
	out := make(executed, len(t))
	for c, r := range t {
		out[c] = r
	}
	return out
}

// encodeSnapshot writes version 2 when lanes is non-nil, else version 1.
func encodeSnapshot(app, lanes []byte, table executed) []byte {
	tag := snapshotTag
	if lanes != nil {
		tag = snapshotTagV2
	}
	b := append([]byte(nil), tag...)
	b = binary.BigEndian.AppendUint64(b, uint64(len(app)))
	b = append(b, app...)
	if lanes != nil {
		b = binary.BigEndian.AppendUint32(b, uint32(len(lanes)))
		b = append(b, lanes...)
	}
	ids := make([]msg.ClientID, 0, len(table))
	for c := range table {
		ids = append(ids, c)
	}
	slices.Sort(ids)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ids)))
	for _, c := range ids {
		r := table[c]
		b = binary.BigEndian.AppendUint64(b, uint64(c))
		b = binary.BigEndian.AppendUint64(b, r.Number)
		b = binary.BigEndian.AppendUint64(b, r.View)
		b = append(b, byte(r.Outcome))
		b = binary.BigEndian.AppendUint32(b, r.Instance)
		b = binary.BigEndian.AppendUint32(b, uint32(len(r.Result)))
		b = append(b, r.Result...)
	}
	return b
}

var errSnapshot = errors.New("replica snapshot")

// decodeSnapshot parses a snapshot written by encodeSnapshot (lanes is nil
// for version 1). It never panics on hostile input and bounds every length
// by what is left.
func decodeSnapshot(p []byte, self msg.ReplicaID) (app, lanes []byte, table executed, err error) {
	v2 := false
	switch {
	case len(p) >= len(snapshotTag) && string(p[:len(snapshotTag)]) == string(snapshotTag):
	case len(p) >= len(snapshotTagV2) && string(p[:len(snapshotTagV2)]) == string(snapshotTagV2):
		v2 = true
	default:
		return nil, nil, nil, fmt.Errorf("%w: bad header", errSnapshot)
	}
	p = p[len(snapshotTag):] // both versions' tags are the same length
	u64 := func() (uint64, bool) {
		if len(p) < 8 {
			return 0, false
		}
		v := binary.BigEndian.Uint64(p)
		p = p[8:]
		return v, true
	}
	bytesN := func(n uint64) ([]byte, bool) {
		if n > uint64(len(p)) {
			return nil, false
		}
		out := p[:n:n]
		p = p[n:]
		return out, true
	}
	n, ok := u64()
	if !ok {
		return nil, nil, nil, fmt.Errorf("%w: truncated application length", errSnapshot)
	}
	if app, ok = bytesN(n); !ok {
		return nil, nil, nil, fmt.Errorf("%w: application snapshot of %d bytes, %d left", errSnapshot, n, len(p))
	}
	if v2 {
		if len(p) < 4 {
			return nil, nil, nil, fmt.Errorf("%w: truncated digest lanes length", errSnapshot)
		}
		ln := binary.BigEndian.Uint32(p)
		p = p[4:]
		if lanes, ok = bytesN(uint64(ln)); !ok || ln > maxSnapshotLanes {
			return nil, nil, nil, fmt.Errorf("%w: digest lanes of %d bytes, %d left", errSnapshot, ln, len(p))
		}
		lanes = append([]byte{}, lanes...)
	}
	if len(p) < 4 {
		return nil, nil, nil, fmt.Errorf("%w: truncated client count", errSnapshot)
	}
	count := binary.BigEndian.Uint32(p)
	p = p[4:]
	if count > maxSnapshotClients || uint64(count)*minClientBytes > uint64(len(p)) {
		return nil, nil, nil, fmt.Errorf("%w: %d clients do not fit in %d bytes", errSnapshot, count, len(p))
	}
	table = make(executed, count)
	var prev uint64
	for i := uint32(0); i < count; i++ {
		c, ok1 := u64()
		num, ok2 := u64()
		view, ok3 := u64()
		if !ok1 || !ok2 || !ok3 {
			return nil, nil, nil, fmt.Errorf("%w: truncated client entry %d", errSnapshot, i)
		}
		if len(p) < 5 {
			return nil, nil, nil, fmt.Errorf("%w: truncated outcome", errSnapshot)
		}
		outcome, inst := msg.Outcome(p[0]), binary.BigEndian.Uint32(p[1:5])
		p = p[5:]
		if outcome > msg.NotMoved {
			return nil, nil, nil, fmt.Errorf("%w: client %d: outcome %d", errSnapshot, c, outcome)
		}
		if i > 0 && c <= prev {
			return nil, nil, nil, fmt.Errorf("%w: client ids not strictly ascending at %d", errSnapshot, c)
		}
		prev = c
		if len(p) < 4 {
			return nil, nil, nil, fmt.Errorf("%w: truncated result length", errSnapshot)
		}
		rl := binary.BigEndian.Uint32(p)
		p = p[4:]
		res, ok := bytesN(uint64(rl))
		if !ok || rl > msg.MaxMessageBytes {
			return nil, nil, nil, fmt.Errorf("%w: result of %d bytes, %d left", errSnapshot, rl, len(p))
		}
		table[msg.ClientID(c)] = &msg.Reply{Client: msg.ClientID(c), Number: num, View: view,
			Outcome: outcome, Instance: inst, Result: append([]byte(nil), res...), From: self, Primary: msg.NoReplica}
	}
	if len(p) != 0 {
		return nil, nil, nil, fmt.Errorf("%w: %d trailing bytes", errSnapshot, len(p))
	}
	return app, lanes, table, nil
}
