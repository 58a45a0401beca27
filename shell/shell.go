// Package shell is the replica runtime: the one piece of code that drives a
// pure rcc core with a network, a disk, signatures, the application and the
// ledger around it — in production (package replica) and, unchanged, under
// the simulator (package sim). It is a single-threaded event loop in the
// style of TigerBeetle's: every slow operation (fsync, signature checks,
// serving a fetch) is submitted to a dependency and completes as an event on
// the loop, so the core keeps stepping while the disk and the other cores
// work. Its dependencies are the interfaces in deps.go.
//
// A pass of the loop: the driver hands the shell every event already
// waiting (frames, completions, ticks), then calls Flush once. Flush asks
// the core for Ready until it has none, stages each Ready's records on the
// disk, executes decided rounds, and asks for one group commit for all of
// it; messages and replies leave only once every record staged before them
// is durable, so a crash never makes this replica contradict what it sent.
package shell

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"

	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/app/mux"
	"github.com/braid-bft/braid/defaults"
	"github.com/braid-bft/braid/msg"
	"github.com/braid-bft/braid/rcc"
	"github.com/braid-bft/braid/storage"
)

// Config is what the shell is told about its replica.
type Config struct {
	// Core configures the rcc node (ID, N, M, policy, the pbft instances,
	// admitted clients).
	Core  rcc.Config
	Scope kv.Scope // the kv application's key scope
	// StagedLimit bounds a state transfer's staged bytes; 0 means
	// maxStagedBytes.
	StagedLimit int
	// FetchAnswerBytes is each peer's budget for answers to its Fetches,
	// refilled once per RetransmitTicks (see fetchBudget); 0 means
	// defaultFetchAnswerBytes.
	FetchAnswerBytes int
}

// Deps are the shell's dependencies (deps.go).
type Deps struct {
	Net      Network
	Disk     Disk
	Crypto   Crypto
	Worker   Worker
	Logger   *slog.Logger
	Observer Observer
}

// ErrFailStop is wrapped by Failed's error when the replica stopped because
// its storage failed. Going on after a failed write or fsync could make the
// replica contradict what it sent, or silently stop applying rounds; a
// supervisor restarts it from what is on disk.
var ErrFailStop = errors.New("fail-stop")

// Shell is one replica's runtime.
type Shell struct {
	cfg    Config
	id     msg.ReplicaID
	k      uint64 // checkpoint interval
	node   *rcc.Node
	net    Network
	disk   Disk
	crypto Crypto
	worker Worker

	checkRestored func() error // see verifyRestored
	wal           []walRecord  // the write-ahead log's records, mirrored (see compact)
	log           *slog.Logger
	obs           Observer

	// Executed state.
	app          *mux.App
	table        executed // exactly-once: last executed request and its reply, per client
	conns        map[msg.ClientID]ClientConn
	round        uint64
	head         msg.Digest
	recent       map[uint64][2]msg.Digest // round → (block hash, state digest), for certificates
	lastParadigm []byte                   // the paradigm state last written to storage
	xfer         *transfer                // state transfer under way
	ticks        int64
	// The latest snapshot's size and the weight of the blocks executed since
	// (see blockWeight): the next checkpoint snapshots once they match.
	snapshotBytes, sinceSnapshot int
	snapshot                     *snapshotJob // under way, nil if none
	views                        []viewState  // per instance, as last logged
	compactedAt                  uint64       // the stable checkpoint the WAL was last compacted at
	compactTo                    uint64       // a stable checkpoint to compact at
	badSource                    map[msg.ReplicaID]bool
	charged                      map[msg.ReplicaID]uint64 // invalid signatures each replica forwarded or served
	stagedLimit                  int
	fetches                      []fetchBudget // per peer (transfer.go)
	fetchBytes, retransmitTicks  int
	failed                       error // set once storage failed: the replica stops (fail-stop)

	// Persistence pipeline: applied counts batches staged on the disk,
	// asked the batches covered by the last commit asked for, durable those
	// a completed commit covers. held are outputs waiting for durability.
	applied, asked, durable uint64
	held                    []output

	// Ingress.
	verified    seen            // digests of peer frames whose signatures checked out
	sigs        *sigCache       // signatures that verified, inside any message
	clientQueue []clientArrival // client requests waiting for a batch verification (admission: ingress.go)
	clientJobs  int             // client batch verifications on the workers
	stats       Stats
	waiting     []waitingJob // verifications waiting for a core, in order (ingress.go)
	running     int          // verifications on the workers
	cores       int          // the workers' parallelism (Worker.Cores)
	executedBy  []uint64     // per instance: requests it ordered that this replica executed (Status)
}

// output is a frame waiting until every batch up to need is durable.
type output struct {
	need      uint64
	to        msg.ReplicaID // peer, unless broadcast or reply
	broadcast bool
	m         msg.Message // for the Sent observer (peer messages)
	reply     *msg.Reply
	frame     []byte
}

// New restores the replica from its disk and returns its shell; Announce
// then tells the cluster it is up.
func New(cfg Config, deps Deps) (*Shell, error) {
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Net == nil || deps.Disk == nil || deps.Crypto == nil || deps.Worker == nil {
		return nil, errors.New("shell: Net, Disk, Crypto and Worker are required")
	}
	if cfg.Core.Instance.CheckpointInterval == 0 {
		return nil, errors.New("shell: Core.Instance.CheckpointInterval must be set (snapshots and compaction follow it)")
	}
	node, err := rcc.New(cfg.Core)
	if err != nil {
		return nil, fmt.Errorf("shell: %w", err)
	}
	s := &Shell{
		cfg: cfg, id: cfg.Core.ID, node: node, k: cfg.Core.Instance.CheckpointInterval,
		net: deps.Net, disk: deps.Disk, crypto: deps.Crypto, worker: deps.Worker, cores: max(deps.Worker.Cores(), 1), log: deps.Logger, obs: deps.Observer,
		app: mux.New(cfg.Scope), table: executed{}, conns: map[msg.ClientID]ClientConn{},
		recent: map[uint64][2]msg.Digest{}, badSource: map[msg.ReplicaID]bool{}, charged: map[msg.ReplicaID]uint64{},
		stagedLimit: cfg.StagedLimit, verified: newSeen(verifiedFrames), sigs: newSigCache(verifiedSignatures),
	}
	if s.stagedLimit == 0 {
		s.stagedLimit = maxStagedBytes
	}
	s.fetches = make([]fetchBudget, cfg.Core.N)
	s.fetchBytes, s.retransmitTicks = cfg.FetchAnswerBytes, cfg.Core.Instance.RetransmitTicks
	if s.fetchBytes <= 0 {
		s.fetchBytes = defaultFetchAnswerBytes
	}
	if s.retransmitTicks <= 0 {
		s.retransmitTicks = defaults.RetransmitTicks
	}
	for i := range s.fetches {
		s.fetches[i].tokens = int64(s.fetchBytes)
	}
	if err := s.restore(); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	s.verifyRestored()
	return s, nil
}

// verifyRestored rehashes, on a worker, the records of the snapshot the
// replica restored from, whose digest it took from the snapshot's own
// lanes to start in a fraction of the time. The records were validated;
// only the lanes are the snapshot's word until this passes. If they lied
// (a file corrupted or edited behind its checksum), every digest since is
// wrong: stop. (Until then a checkpoint we sign over a wrong digest could
// never join a quorum of correct replicas', and certify would stop us at
// the first stable checkpoint anyway.)
func (s *Shell) verifyRestored() {
	check := s.checkRestored
	if check == nil {
		return
	}
	s.checkRestored = nil
	size := s.snapshotBytes
	var err error
	s.worker.Go(func() Cost {
		err = check()
		return Cost{Bytes: size}
	}, func() {
		switch {
		case err != nil && s.failed == nil:
			s.fail("verify the restored snapshot's digest", err)
		case err == nil:
			s.log.Info("verified the restored snapshot's digest against its records")
		}
	})
}

// Announce tells the peers how far this replica got, so they help it catch
// up: at start and whenever its links came back.
func (s *Shell) Announce() { s.node.Announce() }

// Round is the last executed round.
func (s *Shell) Round() uint64 { return s.round }

// Head is the hash of the last executed block.
func (s *Shell) Head() msg.Digest { return s.head }

// Node is the core (read-only use: stats, views).
func (s *Shell) Node() *rcc.Node { return s.node }

// Failed is the storage failure that stopped the replica, or nil.
func (s *Shell) Failed() error { return s.failed }

// Stats counts what ingress did with client requests.
func (s *Shell) Stats() Stats { return s.stats }

// Charged is how many invalid signatures each peer forwarded or served.
func (s *Shell) Charged() map[msg.ReplicaID]uint64 { return s.charged }

// Describe is a one-line summary of the protocol state.
func (s *Shell) Describe() string {
	out := fmt.Sprintf("round=%d durable=%d/%d held=%d %s", s.round, s.durable, s.applied, len(s.held), s.node.Debug())
	for i := 0; i < s.node.Config().M; i++ {
		p := s.node.Instance(i)
		v, ch := p.View()
		out += fmt.Sprintf(" [i%d v%d ch=%v ld=%d low=%d next=%d p=%d]", i, v, ch, p.LastDecided(), p.LowWatermark(), p.NextProposal(), p.Primary())
	}
	return out
}

// Tick advances the replica's logical clock by one tick.
func (s *Shell) Tick() {
	if s.failed != nil {
		return
	}
	s.ticks++
	s.node.Tick()
	s.onTickTransfer()
	s.onTickFetch()
	s.logViews()
}

// logViews says when an instance starts or finishes a view change: the one
// event an operator must see to explain a stall (the ten-minute benchmark's
// halt left no trace in the logs).
func (s *Shell) logViews() {
	m := s.node.Config().M
	if s.views == nil {
		s.views = make([]viewState, m)
	}
	for i := range m {
		p := s.node.Instance(i)
		v, changing := p.View()
		if was := s.views[i]; was.view == v && was.changing == changing {
			continue
		}
		if changing {
			s.log.Info("instance changing view", "instance", i, "to", v, "why", p.ViewChangeReason())
		} else {
			s.log.Info("instance in a new view", "instance", i, "view", v, "primary", p.Primary())
		}
		s.views[i] = viewState{v, changing}
	}
}

type viewState struct {
	view     uint64
	changing bool
}

// fail records the first storage failure; the driver stops the replica
// after the current event. Nothing that depends on the failed write is sent
// or applied.
func (s *Shell) fail(what string, err error) {
	if s.failed != nil {
		return
	}
	s.failed = fmt.Errorf("%w: %s: %w", ErrFailStop, what, err)
	s.held = nil
	s.log.Error("storage failed: stopping the replica (fail-stop); restart it to recover from its data directory",
		"what", what, "err", err)
}

// apply stages one batch on the disk; what leaves after it waits for it.
func (s *Shell) apply(what string, b *storage.Batch) bool {
	if err := s.disk.Apply(b); err != nil {
		s.fail(what, err)
		return false
	}
	s.applied++
	return true
}

// LoopPass bounds the events a driver's loop hands the shell in one pass
// before it calls Flush (production's replica.Run and the simulator's loop
// model both): enough that a burst becomes one batch and one commit, few
// enough that the core is not starved of its own progress.
const LoopPass = 1024

// Flush carries out everything the core asked for since the last Flush:
// records staged before anything that depends on them leaves, rounds
// executed, one commit asked for all of it.
func (s *Shell) Flush() {
	s.verifyClients()
	s.dispatch()
	s.node.ProposeQueued()
	for s.failed == nil && s.node.HasReady() {
		rd := s.node.Ready()
		var encoded map[msg.Message][]byte // what this pass both persists and sends is encoded once
		if len(rd.Persist) > 0 {
			recs := make([][]byte, len(rd.Persist))
			encoded = make(map[msg.Message][]byte, len(rd.Persist))
			for i, m := range rd.Persist {
				recs[i] = msg.Marshal(m)
				encoded[m] = recs[i]
			}
			if !s.apply("append consensus records", &storage.Batch{Records: recs}) {
				return
			}
			for i, m := range rd.Persist {
				s.wal = append(s.wal, walRecord{m: m, raw: recs[i]})
			}
		}
		for _, o := range rd.Messages {
			if !o.Broadcast && int(o.To) >= s.node.Config().N {
				continue
			}
			frame, ok := encoded[o.Msg]
			if !ok {
				frame = msg.Marshal(o.Msg)
			}
			s.send(output{to: o.To, broadcast: o.Broadcast, m: o.Msg, frame: frame})
		}
		for _, round := range rd.Rounds {
			s.execute(round)
			if s.failed != nil {
				return
			}
		}
		if rd.StateTransfer != nil {
			s.startTransfer(rd.StateTransfer)
		}
		for _, c := range rd.Certificates {
			s.certify(c)
			if s.failed != nil {
				return
			}
		}
		s.node.ProposeQueued() // decisions of this pass may have freed the pipeline
	}
	// Compaction's batch is staged after the stable checkpoint's proof, so
	// a crash keeps either both or the old log (the disk loses only a
	// suffix of what was applied).
	if s.failed == nil && s.compactTo > 0 {
		s.compact(s.compactTo)
		s.compactTo = 0
	}
	s.commit()
}

// send queues an output behind every batch applied so far.
func (s *Shell) send(o output) {
	o.need = s.applied
	if o.need <= s.durable && len(s.held) == 0 {
		s.emit(o)
		return
	}
	s.held = append(s.held, o)
}

func (s *Shell) emit(o output) {
	switch {
	case o.reply != nil:
		if c := s.conns[o.reply.Client]; c != nil {
			c.Send(o.frame)
		}
		if s.obs.Replied != nil {
			s.obs.Replied(o.reply)
		}
	default:
		if s.obs.Sent != nil && o.m != nil {
			s.obs.Sent(o.m)
		}
		if o.broadcast {
			s.net.Broadcast(o.frame)
		} else {
			s.net.Send(o.to, o.frame)
		}
	}
}

// commit asks for one group commit of everything applied and not yet
// covered by a commit under way.
func (s *Shell) commit() {
	if s.failed != nil || s.applied == s.asked {
		return
	}
	s.asked = s.applied
	upTo := s.asked
	s.disk.Commit(func(err error) {
		if s.failed != nil {
			return
		}
		if err != nil {
			s.fail("sync", err)
			return
		}
		s.durable = max(s.durable, upTo)
		s.release()
		s.startSnapshot()
	})
}

// release sends the held outputs whose batches are durable, in order.
func (s *Shell) release() {
	k := 0
	for k < len(s.held) && s.held[k].need <= s.durable {
		s.emit(s.held[k])
		k++
	}
	s.held = s.held[k:]
	if len(s.held) == 0 {
		s.held = nil
	}
}

// seen is a bounded set of frame digests: two generations, so memory stays
// bounded and recent entries are kept.
type seen struct {
	limit         int
	recent, older map[[32]byte]struct{}
}

func newSeen(limit int) seen {
	return seen{limit: limit, recent: map[[32]byte]struct{}{}, older: map[[32]byte]struct{}{}}
}

func (s *seen) has(d [32]byte) bool {
	if _, ok := s.recent[d]; ok {
		return true
	}
	_, ok := s.older[d]
	return ok
}

func (s *seen) add(d [32]byte) {
	if len(s.recent) >= s.limit {
		s.older, s.recent = s.recent, make(map[[32]byte]struct{}, s.limit)
	}
	s.recent[d] = struct{}{}
}

// verifiedFrames bounds the verified-frame cache per generation.
const verifiedFrames = 1 << 14

func frameDigest(frame []byte) [32]byte { return sha256.Sum256(frame) }
