package pow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

var t0 = time.Unix(1_700_000_000, 123_456_789)

func mustSolve(t testing.TB, ch Challenge, identity, bound []byte) Solution {
	t.Helper()
	s, err := Solve(context.Background(), ch, identity, bound)
	if err != nil {
		t.Fatalf("Solve: %v", err)
	}
	return s
}

// failingCounter returns a counter, other than c, that does not solve ch.
func failingCounter(t testing.TB, ch Challenge, identity, bound []byte, c uint64) uint64 {
	t.Helper()
	for x := c + 1; x < c+1000; x++ {
		if Verify(ch, identity, bound, Solution{ch.Nonce, x}) != nil {
			return x
		}
	}
	t.Fatal("no failing counter")
	return 0
}

// nearMissCounter returns a counter whose hash for ch has at least lo but
// fewer than ch.Difficulty leading zero bits: the work of an easier puzzle.
func nearMissCounter(t testing.TB, ch Challenge, identity, bound []byte, lo int) uint64 {
	t.Helper()
	for c := range uint64(1 << 24) {
		z := LeadingZeroBits(hash(&ch.Nonce, ch.Difficulty, identity, bound, c))
		if z >= lo && z < int(ch.Difficulty) {
			return c
		}
	}
	t.Fatal("no near-miss counter")
	return 0
}

// attempt is one redemption: what is redeemed, by whom, when.
type attempt struct {
	s               Solution
	identity, bound []byte
	now             time.Time
}

func TestRedeemRejects(t *testing.T) {
	const d = 10
	for _, tc := range []struct {
		name string
		// bad turns the honest attempt into the wrong one; it may also
		// act on the issuer (replay, evict, expire).
		bad  func(t *testing.T, is *Issuer, ch Challenge, a *attempt)
		want error
		// retry: the honest attempt still succeeds afterwards, i.e. the
		// failure did not consume the challenge.
		retry bool
	}{
		{"unknown nonce", func(t *testing.T, is *Issuer, ch Challenge, a *attempt) {
			a.s.Nonce[3] ^= 1
		}, ErrUnknownChallenge, true},
		{"never issued", func(t *testing.T, is *Issuer, ch Challenge, a *attempt) {
			a.s = Solution{}
		}, ErrUnknownChallenge, true},
		{"wrong identity", func(t *testing.T, is *Issuer, ch Challenge, a *attempt) {
			a.identity = append([]byte(nil), a.identity...)
			a.identity[0] ^= 0x80
		}, ErrInsufficientWork, true},
		{"wrong bound", func(t *testing.T, is *Issuer, ch Challenge, a *attempt) {
			a.bound = []byte("198.51.100.24:7946")
		}, ErrInsufficientWork, true},
		{"byte moved from identity to bound", func(t *testing.T, is *Issuer, ch Challenge, a *attempt) {
			n := len(a.identity) - 1
			a.identity, a.bound = a.identity[:n], append([]byte{a.identity[n]}, a.bound...)
		}, ErrInsufficientWork, true},
		{"wrong counter", func(t *testing.T, is *Issuer, ch Challenge, a *attempt) {
			a.s.Counter = failingCounter(t, ch, a.identity, a.bound, a.s.Counter)
		}, ErrInsufficientWork, true},
		{"expired by 1ns", func(t *testing.T, is *Issuer, ch Challenge, a *attempt) {
			a.now = time.Unix(0, ch.Expires+1)
		}, ErrExpired, true},
		{"replayed", func(t *testing.T, is *Issuer, ch Challenge, a *attempt) {
			if err := is.Redeem(a.s, a.identity, a.bound, a.now); err != nil {
				t.Fatalf("first Redeem: %v", err)
			}
			a.now = a.now.Add(time.Millisecond)
		}, ErrReplayed, false},
		{"replayed after expiry", func(t *testing.T, is *Issuer, ch Challenge, a *attempt) {
			if err := is.Redeem(a.s, a.identity, a.bound, a.now); err != nil {
				t.Fatalf("first Redeem: %v", err)
			}
			a.now = time.Unix(0, ch.Expires+1)
		}, ErrExpired, false},
		{"replayed after being forgotten", func(t *testing.T, is *Issuer, ch Challenge, a *attempt) {
			if err := is.Redeem(a.s, a.identity, a.bound, a.now); err != nil {
				t.Fatalf("first Redeem: %v", err)
			}
			a.now = time.Unix(0, ch.Expires+1)
			is.Issue(a.now) // forgets expired challenges
		}, ErrUnknownChallenge, false},
		{"difficulty too low (work for an easier puzzle)", func(t *testing.T, is *Issuer, ch Challenge, a *attempt) {
			a.s.Counter = nearMissCounter(t, ch, a.identity, a.bound, d-4)
		}, ErrInsufficientWork, true},
		{"solution of an easier challenge", func(t *testing.T, is *Issuer, ch Challenge, a *attempt) {
			easy := NewIssuer(IssuerConfig{Difficulty: 2, Rand: &detReader{seed: 99}}).Issue(a.now)
			a.s = mustSolve(t, easy, a.identity, a.bound)
			a.s.Nonce = ch.Nonce
			if Verify(ch, a.identity, a.bound, a.s) == nil {
				t.Skip("the easy counter happens to solve the real challenge")
			}
		}, ErrInsufficientWork, true},
		{"tampered difficulty (lowered)", func(t *testing.T, is *Issuer, ch Challenge, a *attempt) {
			ch.Difficulty -= 4
			a.s = mustSolve(t, ch, a.identity, a.bound)
		}, ErrInsufficientWork, true},
		{"tampered difficulty (raised)", func(t *testing.T, is *Issuer, ch Challenge, a *attempt) {
			ch.Difficulty++
			a.s = mustSolve(t, ch, a.identity, a.bound)
		}, ErrInsufficientWork, true},
		{"nonce evicted by MaxOutstanding", func(t *testing.T, is *Issuer, ch Challenge, a *attempt) {
			for range 4 { // MaxOutstanding is 4
				is.Issue(a.now)
			}
		}, ErrUnknownChallenge, false},
		{"nonce forgotten after expiry", func(t *testing.T, is *Issuer, ch Challenge, a *attempt) {
			is.Issue(time.Unix(0, ch.Expires+1))
		}, ErrUnknownChallenge, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := NewIssuer(IssuerConfig{Difficulty: d, TTL: time.Second, MaxOutstanding: 4, Rand: &detReader{seed: 7}})
			is.Issue(t0) // an unrelated outstanding challenge
			ch := is.Issue(t0)
			if ch.Difficulty != d || ch.Expires != t0.Add(time.Second).UnixNano() {
				t.Fatalf("Issue = %+v", ch)
			}
			honest := attempt{mustSolve(t, ch, testIdentity, testBound), testIdentity, testBound, t0.Add(time.Millisecond)}
			a := honest
			tc.bad(t, is, ch, &a)
			if err := is.Redeem(a.s, a.identity, a.bound, a.now); !errors.Is(err, tc.want) {
				t.Fatalf("Redeem = %v, want %v", err, tc.want)
			}
			if tc.retry {
				if err := is.Redeem(honest.s, honest.identity, honest.bound, honest.now); err != nil {
					t.Fatalf("honest Redeem after the failure = %v", err)
				}
			}
		})
	}
}

func TestRedeemSuccess(t *testing.T) {
	is := NewIssuer(IssuerConfig{Difficulty: 8, TTL: time.Second, Rand: &detReader{seed: 3}})
	ch := is.Issue(t0)
	s := mustSolve(t, ch, testIdentity, testBound)
	if err := Verify(ch, testIdentity, testBound, s); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// Valid up to and including the Expires instant.
	if err := is.Redeem(s, testIdentity, testBound, time.Unix(0, ch.Expires)); err != nil {
		t.Fatalf("Redeem at Expires: %v", err)
	}
	if err := is.Redeem(s, testIdentity, testBound, time.Unix(0, ch.Expires)); !errors.Is(err, ErrReplayed) {
		t.Fatalf("second Redeem = %v, want ErrReplayed", err)
	}
}

func TestIssueDeterministic(t *testing.T) {
	a := NewIssuer(IssuerConfig{Rand: &detReader{seed: 5}})
	b := NewIssuer(IssuerConfig{Rand: &detReader{seed: 5}})
	seen := map[[16]byte]bool{}
	for i := range 100 {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		ca, cb := a.Issue(now), b.Issue(now)
		if ca != cb {
			t.Fatalf("issue %d: %+v != %+v", i, ca, cb)
		}
		if seen[ca.Nonce] {
			t.Fatalf("issue %d: nonce repeated", i)
		}
		seen[ca.Nonce] = true
		if ca.Difficulty != defaultDifficulty || ca.Expires != now.Add(defaultTTL).UnixNano() {
			t.Fatalf("issue %d: %+v, want the defaults", i, ca)
		}
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestIssueBrokenRandPanics(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: no panic", name)
			}
		}()
		f()
	}
	is := NewIssuer(IssuerConfig{Rand: zeroReader{}})
	is.Issue(t0)
	mustPanic("repeated nonce", func() { is.Issue(t0) })
	is = NewIssuer(IssuerConfig{Rand: io.LimitReader(zeroReader{}, 8)})
	mustPanic("short read", func() { is.Issue(t0) })
}

func TestAdaptiveDifficulty(t *testing.T) {
	const (
		base      = 2
		maxD      = 7
		threshold = 10
		window    = time.Minute
	)
	is := NewIssuer(IssuerConfig{
		Difficulty: base, MaxDifficulty: maxD, FloodThreshold: threshold, Window: window,
		TTL: time.Hour, MaxOutstanding: 1000, Rand: &detReader{seed: 11},
	})
	// expect[n] is the difficulty after n successful redemptions.
	expect := map[int]uint8{
		0: base, 10: base, // not more than the threshold
		11: base + 1, 20: base + 1, // up to one doubling
		21: base + 2, 40: base + 2,
		41: base + 3, 80: base + 3,
		81: base + 4, 160: base + 4,
		161: base + 5, 320: base + 5, // base+5 = maxD
		321: maxD, 400: maxD, // capped
	}
	var early Challenge // issued at base, redeemed once the difficulty rose
	var earlySol Solution
	now := t0
	for n := 0; n <= 400; n++ {
		if want, ok := expect[n]; ok {
			if got := is.Difficulty(now); got != want {
				t.Fatalf("after %d redemptions: Difficulty = %d, want %d", n, got, want)
			}
		}
		ch := is.Issue(now)
		if ch.Difficulty != is.Difficulty(now) {
			t.Fatalf("Issue gave difficulty %d, Difficulty says %d", ch.Difficulty, is.Difficulty(now))
		}
		if n == 0 {
			early, earlySol = ch, mustSolve(t, ch, testIdentity, testBound)
			ch = is.Issue(now)
		}
		if err := is.Redeem(mustSolve(t, ch, testIdentity, testBound), testIdentity, testBound, now); err != nil {
			t.Fatalf("redemption %d: %v", n+1, err)
		}
		now = now.Add(10 * time.Millisecond)
	}
	last := now.Add(-10 * time.Millisecond) // time of the last redemption
	// A challenge is redeemed at the difficulty of its issue, not the
	// current one.
	if err := is.Redeem(earlySol, testIdentity, testBound, last); err != nil {
		t.Fatalf("redeeming a base-difficulty challenge during the flood: %v", err)
	}
	if LeadingZeroBits(hash(&early.Nonce, early.Difficulty, testIdentity, testBound, earlySol.Counter)) >= maxD {
		t.Fatal("the early solution meets the raised difficulty too; pick another seed")
	}
	if got := is.Difficulty(last.Add(window / 2)); got != maxD {
		t.Fatalf("half a window after the flood: Difficulty = %d, want %d", got, maxD)
	}
	if got := is.Difficulty(last.Add(window)); got != base {
		t.Fatalf("a window after the flood: Difficulty = %d, want %d", got, base)
	}
	if got := is.Issue(last.Add(window)).Difficulty; got != base {
		t.Fatalf("a window after the flood: Issue difficulty = %d, want %d", got, base)
	}
}

func TestAdaptiveDifficultySlides(t *testing.T) {
	const window = time.Minute
	is := NewIssuer(IssuerConfig{Difficulty: 1, FloodThreshold: 10, Window: window, TTL: time.Hour, Rand: &detReader{seed: 12}})
	redeem := func(n int, now time.Time) {
		for range n {
			ch := is.Issue(now)
			if err := is.Redeem(mustSolve(t, ch, testIdentity, testBound), testIdentity, testBound, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	redeem(30, t0)               // 30 → +2
	redeem(15, t0.Add(window/2)) // 45 → +3
	if got := is.Difficulty(t0.Add(window / 2)); got != 1+3 {
		t.Fatalf("45 in the window: Difficulty = %d, want 4", got)
	}
	if got := is.Difficulty(t0.Add(window)); got != 1+1 {
		t.Fatalf("15 in the window: Difficulty = %d, want 2", got)
	}
	if got := is.Difficulty(t0.Add(window * 3 / 2)); got != 1 {
		t.Fatalf("none in the window: Difficulty = %d, want 1", got)
	}
}

func TestDifficultyConfig(t *testing.T) {
	is := NewIssuer(IssuerConfig{Difficulty: 30, MaxDifficulty: 20})
	if is.base != 30 || is.max != 30 {
		t.Fatalf("MaxDifficulty below Difficulty: base %d max %d, want 30 30", is.base, is.max)
	}
	is = NewIssuer(IssuerConfig{})
	if is.base != defaultDifficulty || is.max != defaultMaxDifficulty || is.limit != defaultMaxOutstanding ||
		is.ttl != int64(defaultTTL) || is.threshold != defaultFloodThreshold ||
		is.rate.width != int64(defaultWindow)/rateSlots {
		t.Fatalf("defaults not applied: %+v", is)
	}
}

func TestMemoryBound(t *testing.T) {
	const limit = 1000
	is := NewIssuer(IssuerConfig{Difficulty: 1, TTL: time.Hour, MaxOutstanding: limit, Rand: &detReader{seed: 13}})
	var firstSol Solution
	now := t0
	for i := range 100_000 {
		ch := is.Issue(now)
		if i == 0 {
			firstSol = mustSolve(t, ch, testIdentity, testBound)
		}
		if i%100 == 50 { // some redeemed-but-unexpired ones too
			if err := is.Redeem(mustSolve(t, ch, testIdentity, testBound), testIdentity, testBound, now); err != nil {
				t.Fatalf("issue %d: %v", i, err)
			}
		}
		if len(is.records) > limit || is.order.len() > limit || len(is.order.buf) > limit {
			t.Fatalf("issue %d: %d records, %d queued, %d slots; limit %d",
				i, len(is.records), is.order.len(), len(is.order.buf), limit)
		}
		now = now.Add(time.Microsecond)
	}
	if len(is.records) != limit || is.order.len() != limit {
		t.Fatalf("%d records, %d queued; want %d", len(is.records), is.order.len(), limit)
	}
	if err := is.Redeem(firstSol, testIdentity, testBound, now); !errors.Is(err, ErrUnknownChallenge) {
		t.Fatalf("redeeming the evicted first challenge = %v, want ErrUnknownChallenge", err)
	}
	// The newest are all still remembered.
	last := is.Issue(now)
	if err := is.Redeem(mustSolve(t, last, testIdentity, testBound), testIdentity, testBound, now); err != nil {
		t.Fatalf("redeeming the newest challenge: %v", err)
	}
	// Expiry frees memory too.
	is.Issue(now.Add(2 * time.Hour))
	if len(is.records) != 1 || is.order.len() != 1 {
		t.Fatalf("after everything expired: %d records, %d queued; want 1", len(is.records), is.order.len())
	}
}

func Example() {
	seed := NewIssuer(IssuerConfig{Difficulty: 8})
	identity, addr := []byte("registrant public key"), []byte("203.0.113.5:7946")

	ch := seed.Issue(time.Now()) // sent to the registrant
	ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, ch.Expires))
	defer cancel()
	s, err := Solve(ctx, ch, identity, addr) // the registrant's work
	if err != nil {
		panic(err)
	}
	fmt.Println(seed.Redeem(s, identity, addr, time.Now()))
	fmt.Println(seed.Redeem(s, identity, addr, time.Now()))
	// Output:
	// <nil>
	// pow: challenge already redeemed
}
