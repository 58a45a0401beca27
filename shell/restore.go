package shell

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/braid-bft/braid/app"
	"github.com/braid-bft/braid/app/mux"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/storage"
)

// restore rebuilds the replica from its data directory: the application
// and the exactly-once table from the latest snapshot, then the blocks
// after it re-executed on top (each block and its round's paradigm state
// were written in one atomic batch, so they agree), the paradigm state, and
// the consensus core from its write-ahead records — so it never contradicts
// what it sent before the crash. It reads only what lies above the latest
// snapshot; compaction keeps the log above the last stable checkpoint.
func (s *Shell) restore() error {
	height, err := s.disk.Height()
	if err != nil {
		return err
	}
	var snapRound uint64
	if round, snap, err := s.disk.LatestSnapshot(); err == nil {
		if round > height {
			return fmt.Errorf("snapshot of round %d is above the ledger height %d", round, height)
		}
		appSnap, lanes, table, err := decodeSnapshot(snap, s.id)
		if err != nil {
			return fmt.Errorf("snapshot %d: %w", round, err)
		}
		if lanes == nil {
			err = s.app.Restore(appSnap)
		} else {
			s.checkRestored, err = s.app.RestoreWithDigest(appSnap, lanes)
		}
		if err != nil {
			return fmt.Errorf("snapshot %d: %w", round, err)
		}
		b, err := s.disk.Block(round)
		if err != nil {
			return fmt.Errorf("block %d of the snapshot: %w", round, err)
		}
		s.table, snapRound = table, round
		s.snapshotted(len(snap), 0)
		s.round, s.head = round, b.Hash()
		s.recent[round] = [2]msg.Digest{s.head, b.StateDigest}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("snapshot: %w", err)
	}
	for h := snapRound + 1; h <= height; h++ {
		b, err := s.disk.Block(h)
		if err != nil {
			return fmt.Errorf("block %d: %w", h, err)
		}
		if b.Prev != s.head {
			return fmt.Errorf("block %d does not chain to block %d", h, h-1)
		}
		if _, err := replayBlock(s.app, s.table, b, s.id); err != nil {
			return fmt.Errorf("block %d: %w", h, err)
		}
		s.round, s.head = h, b.Hash()
		s.recent[h] = [2]msg.Digest{s.head, b.StateDigest}
		s.sinceSnapshot += blockWeight(b.Requests)
	}
	if state, err := s.disk.GetMeta(paradigmMeta); err == nil && len(state) > 0 {
		if err := s.node.SetState(state); err != nil {
			return fmt.Errorf("paradigm state: %w", err)
		}
		s.lastParadigm = state
	} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("paradigm state: %w", err)
	}
	if v, err := s.disk.GetMeta(compactedMeta); err == nil {
		if len(v) != 8 {
			return fmt.Errorf("%s: %d bytes, want 8", compactedMeta, len(v))
		}
		s.compactedAt = binary.BigEndian.Uint64(v)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%s: %w", compactedMeta, err)
	}
	raw, err := s.disk.Records()
	if err != nil {
		return fmt.Errorf("records: %w", err)
	}
	records := make([]msg.Message, 0, len(raw))
	s.wal = make([]walRecord, 0, len(raw))
	for i, p := range raw {
		m, err := msg.Unmarshal(p)
		if err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
		records = append(records, m)
		s.wal = append(s.wal, walRecord{m: m, raw: p})
	}
	s.node.Restore(records, s.round, s.table.lastNums())
	if height > 0 || len(records) > 0 {
		s.log.Info("restored", "height", height, "snapshot", snapRound, "replayed", height-snapRound, "records", len(records))
	}
	return nil
}

// replayBlock re-executes an executed block's requests on a and records
// them in the exactly-once table, returning their results in order. Restart
// and state transfer both use it, and must reach what live execution did.
func replayBlock(a *mux.App, table executed, b *ledger.Block, self msg.ReplicaID) ([][]byte, error) {
	results := make([][]byte, 0, len(b.Requests))
	for i, req := range b.Requests {
		if req.Number <= table.last(req.Client) {
			return nil, fmt.Errorf("request %d of client %d executed twice", req.Number, req.Client)
		}
		o := b.Ordering(i)
		op := req.Op
		if o.Outcome != msg.Executed { // an instance change executes the operation it carries
			_, inner, ok := msg.ParseInstanceChange(req.Op)
			if !ok {
				return nil, fmt.Errorf("request %d of client %d has outcome %v but is no instance change", req.Number, req.Client, o.Outcome)
			}
			op = inner
		}
		res := a.Execute(app.CallerID(uint64(req.Client)), op)
		table[req.Client] = &msg.Reply{Client: req.Client, Number: req.Number, Outcome: o.Outcome, Instance: o.Instance,
			Result: res, From: self, Primary: msg.NoReplica}
		results = append(results, res)
	}
	return results, nil
}
