// Package auth provides Braid's signatures (Ed25519 for replicas and
// clients), batch verification with a bounded worker pool, key file helpers,
// and HMAC-SHA256 for point-to-point links.
//
// # The verification rule
//
// Every signature in Braid is checked with exactly one rule: ZIP-215
// (https://zips.z.cash/zip-0215), as implemented by
// github.com/hdevalence/ed25519consensus. It applies to Verify, to
// VerifyBatch, to every Pool, and therefore to every replica and every code
// path. Nothing in Braid may verify a signature with crypto/ed25519 or any
// other library.
//
// Given a public key encoding A_bytes, a message M and a 64-byte signature
// R_bytes || s_bytes, ZIP-215 says:
//
//   - s_bytes must be the canonical little-endian encoding of an integer
//     s < L, where L = 2^252 + 27742317777372353535851937790883648493 is the
//     order of the prime-order subgroup. s >= L is rejected.
//   - A_bytes and R_bytes must each decode to a curve point, but they need
//     not be canonical: an unreduced y-coordinate (y >= p, p = 2^255 - 19)
//     and a set sign bit on a point whose x-coordinate is 0 are both
//     accepted. A and R may be points of small order or have a small-order
//     (torsion) component; they are not required to lie in the prime-order
//     subgroup. Encodings that are not on the curve are rejected.
//   - k = SHA-512(R_bytes || A_bytes || M) reduced mod L, hashing the bytes
//     exactly as received (never re-encoded).
//   - The signature is valid iff the cofactored equation holds:
//     [8][s]B = [8]R + [8][k]A.
//   - Keys must be 32 bytes and signatures 64 bytes; anything else is
//     rejected (never a panic).
//
// # Why
//
// Ed25519 as specified by RFC 8032 leaves implementations free to choose
// between the cofactored and cofactorless equations and to differ on
// non-canonical point encodings. crypto/ed25519 is cofactorless and rejects
// non-canonical encodings; batch verifiers are necessarily cofactored. A
// Byzantine client can therefore craft a signature (for example R' = R + T
// with T a point of order 8) that one code path accepts and another rejects.
// If one replica verified it singly and another in a batch, correct replicas
// would disagree about whether a request is valid, which is exactly the
// split a BFT protocol must never allow. ZIP-215 fixes one answer for every
// input, and that answer is the same for single and batch verification: a
// batch accepts iff every member satisfies the cofactored equation (up to a
// 2^-128 probability over the verifier's own randomness, which an attacker
// neither sees nor controls; and a batch that contains only valid
// signatures is always accepted). VerifyBatch only ever reports an item
// valid because a batch containing it passed, and only ever reports it
// invalid because Verify rejected it, so its per-item answers are Verify's.
//
// # Why ed25519consensus
//
// github.com/hdevalence/ed25519consensus (v0.2.0) implements ZIP-215 for
// both single verification and batch verification, written together so
// that they share decoding and the cofactored check; it is the
// implementation ZIP-215's authors use, and is built on
// filippo.io/edwards25519, whose point decoding accepts exactly the
// non-canonical encodings ZIP-215 requires. Braid requires
// filippo.io/edwards25519 v1.2.0, newer than the v1.0.0 that
// ed25519consensus asks for, to pick up upstream fixes. The batch
// verifier draws its random coefficients from crypto/rand; if that ever
// fails, the batch reports failure and VerifyBatch falls back to single
// verification, so results stay correct.
//
// # Domain separation
//
// Signatures are over len(context) || context || msg, where context is a
// short tag chosen by the caller per message type (for example
// "braid/request/v1") and len(context) is one byte. A signature made for one
// message type therefore never verifies as another, and the length prefix
// keeps the encoding unambiguous ("ab"+"c" and "a"+"bc" sign different
// bytes). Contexts must be 1 to 255 bytes long.
//
// # Cost of bad signatures
//
// A batch that contains an invalid signature costs more than one that does
// not: the batch equation fails and the bad items must be located
// (bisection, then single verification, bounded at about two extra batch
// passes plus one single verification per item). Callers should charge the
// sender of every invalid item (see InvalidBySigner and Stats) so that a
// Byzantine client cannot make replicas do this extra work for free.
package auth
