package replica

import (
	"errors"
	"fmt"

	"github.com/braid-bft/braid/app"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/rcc"
	"github.com/braid-bft/braid/storage"
)

// restore rebuilds the replica from its data directory: the application
// from the latest snapshot plus the blocks after it, the reply-cache floor
// (per-client request numbers) from every block, the paradigm state, and the
// consensus core from its write-ahead records — so it never contradicts
// what it sent before the crash.
func (r *Replica) restore() error {
	height, err := r.store.Height()
	if err != nil {
		return err
	}
	var snapRound uint64
	if round, snap, err := r.store.LatestSnapshot(); err == nil {
		if round <= height {
			if err := r.app.Restore(snap); err != nil {
				return fmt.Errorf("snapshot %d: %w", round, err)
			}
			snapRound = round
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("snapshot: %w", err)
	}
	for h := uint64(1); h <= height; h++ {
		b, err := r.store.Block(h)
		if err != nil {
			return fmt.Errorf("block %d: %w", h, err)
		}
		for _, req := range b.Requests {
			if req.Number > r.lastNum[req.Client] {
				r.lastNum[req.Client] = req.Number
			}
			if h > snapRound {
				if _, ctl := rcc.ParseInstanceChange(req.Op); !ctl {
					r.app.Execute(app.CallerID(uint64(req.Client)), req.Op)
				}
			}
		}
		r.round, r.head = h, b.Hash()
	}
	if state, err := r.store.GetMeta("paradigm"); err == nil && len(state) > 0 {
		if err := r.node.SetState(state); err != nil {
			return fmt.Errorf("paradigm state: %w", err)
		}
	}
	raw, err := r.store.Records()
	if err != nil {
		return fmt.Errorf("records: %w", err)
	}
	records := make([]msg.Message, 0, len(raw))
	for i, p := range raw {
		m, err := msg.Unmarshal(p)
		if err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
		records = append(records, m)
	}
	r.node.Restore(records, r.round, r.lastNum)
	r.progress.Store(r.round)
	if height > 0 || len(records) > 0 {
		r.log.Info("restored", "height", height, "snapshot", snapRound, "records", len(records))
	}
	return nil
}
