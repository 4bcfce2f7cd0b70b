// Package pow is the proof-of-work admission puzzle that seeds require
// from registering peers, to make creating many identities (a Sybil
// attack) cost CPU time.
//
// A seed issues a Challenge: a random nonce, a difficulty and an expiry.
// The registrant searches for a counter such that
//
//	SHA-256("gossip-pow-v1" || nonce || difficulty ||
//	        uvarint(len(identity)) || identity ||
//	        uvarint(len(bound)) || bound ||
//	        counter as 8 bytes big-endian)
//
// starts with at least difficulty zero bits, and returns it as a Solution.
// identity is the registrant's public key and bound is the context the
// solution is tied to (the registrant's advertised address), so a solution
// cannot be reused for another identity or address. The lengths are
// prefixed so that no bytes can be moved between identity and bound.
// Checking a solution costs one hash.
//
// The Issuer is the seed's side: it issues challenges, redeems each at
// most once before it expires, keeps bounded memory, and raises the
// difficulty while many puzzles are being solved.
package pow

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/bits"
)

// domain separates these hashes from every other use of SHA-256.
const domain = "gossip-pow-v1"

// checkEvery is how many hashes Solve computes between looks at its
// context. It is a power of two so the test is a mask.
const checkEvery = 4096

// Errors returned by Verify and Issuer.Redeem. Compare with
// errors.Is.
var (
	// ErrUnknownChallenge means the solution's nonce is not that of an
	// outstanding challenge: it was never issued, it was forgotten
	// (evicted to keep memory bounded, or dropped after expiring), or,
	// from Verify, it is not the nonce of the challenge given.
	ErrUnknownChallenge = errors.New("pow: unknown challenge")
	// ErrExpired means the challenge's lifetime ended before redemption.
	ErrExpired = errors.New("pow: challenge expired")
	// ErrReplayed means the challenge was already redeemed successfully.
	ErrReplayed = errors.New("pow: challenge already redeemed")
	// ErrInsufficientWork means the solution's hash has fewer leading
	// zero bits than the challenge's difficulty, which is also what a
	// solution computed for another identity, bound, nonce or difficulty
	// gives.
	ErrInsufficientWork = errors.New("pow: insufficient work")
)

// errExhausted is returned by Solve if every counter failed, which takes
// 2^64 hashes and so never happens in practice.
var errExhausted = errors.New("pow: counter space exhausted")

// Challenge is what a seed issues to a registrant.
type Challenge struct {
	// Nonce is random, chosen by the issuer; it makes every puzzle fresh.
	Nonce [16]byte
	// Difficulty is the number of leading zero bits required of the hash.
	// Solving takes 2^Difficulty hashes on average.
	Difficulty uint8
	// Expires is when the challenge stops being redeemable, in unix
	// nanoseconds by the issuer's clock. It is informational for the
	// registrant: the issuer checks its own record, not this field.
	Expires int64
}

// Solution solves a challenge for one identity.
type Solution struct {
	// Nonce is the nonce of the challenge solved.
	Nonce [16]byte
	// Counter is the value found by Solve.
	Counter uint64
}

// preimage appends the hash input for counter 0 to dst. The counter is the
// last 8 bytes, so a solver can rewrite it in place.
func preimage(dst []byte, nonce *[16]byte, difficulty uint8, identity, bound []byte) []byte {
	dst = append(dst, domain...)
	dst = append(dst, nonce[:]...)
	dst = append(dst, difficulty)
	dst = binary.AppendUvarint(dst, uint64(len(identity)))
	dst = append(dst, identity...)
	dst = binary.AppendUvarint(dst, uint64(len(bound)))
	dst = append(dst, bound...)
	return binary.BigEndian.AppendUint64(dst, 0)
}

// Solve searches for a solution of ch for identity and bound, trying
// counters 0, 1, 2, ... in the calling goroutine; it starts none. It takes
// 2^ch.Difficulty hashes on average. It looks at ctx before starting and
// every few thousand hashes, and returns ctx.Err() once ctx is done. It
// does not look at ch.Expires; give ctx a deadline to bound the search.
func Solve(ctx context.Context, ch Challenge, identity, bound []byte) (Solution, error) {
	if err := ctx.Err(); err != nil {
		return Solution{}, err
	}
	done := ctx.Done()
	var stack [192]byte
	buf := preimage(stack[:0], &ch.Nonce, ch.Difficulty, identity, bound)
	ctr := buf[len(buf)-8:]
	need := int(ch.Difficulty)
	for c := uint64(0); ; c++ {
		if c&(checkEvery-1) == checkEvery-1 {
			select {
			case <-done:
				return Solution{}, ctx.Err()
			default:
			}
		}
		binary.BigEndian.PutUint64(ctr, c)
		if LeadingZeroBits(sha256.Sum256(buf)) >= need {
			return Solution{Nonce: ch.Nonce, Counter: c}, nil
		}
		if c == ^uint64(0) {
			return Solution{}, errExhausted
		}
	}
}

// Verify reports whether s solves ch for identity and bound. It checks
// only that s is for ch's nonce (else ErrUnknownChallenge) and that the
// hash has ch.Difficulty leading zero bits (else ErrInsufficientWork); it
// computes one hash and does not look at ch.Expires or at whether s was
// used before, which is the Issuer's job.
func Verify(ch Challenge, identity, bound []byte, s Solution) error {
	if s.Nonce != ch.Nonce {
		return ErrUnknownChallenge
	}
	if LeadingZeroBits(hash(&ch.Nonce, ch.Difficulty, identity, bound, s.Counter)) < int(ch.Difficulty) {
		return ErrInsufficientWork
	}
	return nil
}

// hash is the puzzle hash for one counter.
func hash(nonce *[16]byte, difficulty uint8, identity, bound []byte, counter uint64) [32]byte {
	var stack [192]byte
	buf := preimage(stack[:0], nonce, difficulty, identity, bound)
	binary.BigEndian.PutUint64(buf[len(buf)-8:], counter)
	return sha256.Sum256(buf)
}

// LeadingZeroBits returns the number of leading zero bits of h, read as a
// big-endian number: 0 if the first bit is set, 256 if h is all zeros.
func LeadingZeroBits(h [32]byte) int {
	for i := 0; i < len(h); i += 8 {
		if w := binary.BigEndian.Uint64(h[i:]); w != 0 {
			return i*8 + bits.LeadingZeros64(w)
		}
	}
	return 256
}
