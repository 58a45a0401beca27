// Package quorum is Braid's fault arithmetic, in one place: how many
// Byzantine replicas n replicas tolerate, and how many make a quorum or
// vouch for a fact. Every layer — the PBFT core, the RCC layer, the ledger
// verifier, the configuration and the client — asks here, so that a change
// to the replica count's rules cannot leave two layers disagreeing.
package quorum

// Faults is f, the number of Byzantine replicas n replicas tolerate:
// ⌊(n−1)/3⌋.
func Faults(n int) int { return (n - 1) / 3 }

// Size is the size of a Byzantine quorum: any two quorums intersect in at
// least f+1 replicas, so in at least one correct one. For n = 3f+1 it is
// 2f+1; for other n it is ⌊(n+f)/2⌋+1, which is what the intersection
// argument needs.
func Size(n int) int { return (n+Faults(n))/2 + 1 }

// Vouch is f+1: that many replicas agreeing on a fact include a correct
// one (a client accepting a result, a weak checkpoint certificate).
func Vouch(n int) int { return Faults(n) + 1 }

// Correct is n − f, the replicas that are certainly correct: the most
// instances RCC runs with replacement, and its default number.
func Correct(n int) int { return n - Faults(n) }
