// Package simnet is the bottom layer of Braid's deterministic simulator: a
// discrete-event scheduler running in virtual time and a message-passing
// network model with latency, jitter, loss, duplication, bandwidth limits,
// partitions and crashed nodes.
//
// A simulation run must be a pure function of its seed, so that any failure
// found by a randomized run can be replayed exactly from the seed alone. The
// package enforces this with a few rules, and code built on top of it (the
// protocol harness, the replicas under test) must follow them too:
//
//   - One PRNG. [Scheduler.Rand] is the only source of randomness in a run.
//     It is a math/rand/v2 PCG generator seeded from the run's seed. Never
//     use the global math/rand functions, crypto/rand or a second generator.
//     The network draws a fixed number of values per Send that depends only
//     on the link configuration, never on the current connectivity, so that
//     toggling a partition does not shift the random stream of the rest of
//     the run.
//
//   - Virtual time. [Scheduler.Now] is the only clock. Nothing reads the wall
//     clock and nothing sleeps; time jumps from one event to the next.
//
//   - Stable tie-breaking. Events are ordered by time and, for equal times,
//     by the order in which they were scheduled (a monotonically increasing
//     sequence number). The order never depends on map iteration, goroutine
//     scheduling or pointer values.
//
//   - Single-threaded. Callbacks run one at a time on the caller's goroutine
//     from [Scheduler.Step] and friends. The package starts no goroutines and
//     is not safe for concurrent use.
//
//   - Everything traced. Every network event (send, delivery, drop) and every
//     record the harness reports with [Scheduler.Trace] is folded, together
//     with the virtual time, into a running SHA-256. Two runs with the same
//     seed must end with the same [Scheduler.TraceHash]; a mismatch is a
//     determinism bug, and [Scheduler.SetTraceHook] helps find the first
//     diverging record.
//
// Typical use:
//
//	s := simnet.New(seed)
//	var nodes []*Replica
//	net := simnet.NewNetwork(s, n, func(from, to int, msg []byte) {
//		nodes[to].Receive(from, msg)
//	})
//	net.SetDefaultLink(simnet.Link{Latency: 10 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.01})
//	// ... create nodes that call net.Send and s.After ...
//	s.RunUntil(simnet.FromDuration(time.Minute))
//	fmt.Printf("seed=%d trace=%x\n", seed, s.TraceHash())
package simnet
