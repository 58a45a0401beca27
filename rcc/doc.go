// Package rcc is the parallel paradigm of wait-free parallelized consensus
// (RCC): m PBFT instances (package pbft) run side by side, each with its own
// primary, and every replica weaves their decisions into one deterministic
// order. It is pure, like pbft: no goroutines, clocks, randomness or I/O.
//
// Its parts, one file each:
//   - node.go: Node, the m instances behind one interface (Step, Tick,
//     Request, Checkpoint, Ready), buffering decisions per round, and the
//     failure detector (Definition 4.3's σ gap, acted on through the lagging
//     instance's own view change).
//   - execute.go: executing a round once all m instances decided it,
//     applying failure decisions and skips, and the paradigm state the
//     shell persists and checkpoints (State, SetState).
//   - order.go: round seeds and Figure 3's deterministic execution order of
//     a round's batches.
//   - failures.go: who is each instance's primary after failures: unified
//     primary replacement (m ≤ n − f) or in-place recovery with a doubling
//     skip (Figure 4, Section 4.1).
//   - clients.go: client assignment (instance id(c) mod m, msg.HomeInstance)
//     and instance changes (Section 4.2).
//
// docs/protocol.md Part II states each rule with its argument.
package rcc
