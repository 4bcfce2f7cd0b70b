package pow

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"
)

// testIdentity and testBound are the shapes the seed will pass: an
// ed25519 public key and an advertised address.
var (
	testIdentity = bytes.Repeat([]byte{0x5a}, 32)
	testBound    = []byte("198.51.100.23:7946")
)

// detReader is a deterministic stand-in for crypto/rand: SHA-256 of a seed
// and a block counter.
type detReader struct {
	seed  uint64
	block uint64
	buf   []byte
}

func (r *detReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.buf) == 0 {
			var in [16]byte
			binary.BigEndian.PutUint64(in[:8], r.seed)
			binary.BigEndian.PutUint64(in[8:], r.block)
			r.block++
			h := sha256.Sum256(in[:])
			r.buf = h[:]
		}
		c := copy(p[n:], r.buf)
		r.buf = r.buf[c:]
		n += c
	}
	return n, nil
}

func TestLeadingZeroBits(t *testing.T) {
	withByte := func(i int, b byte) (h [32]byte) {
		h[i] = b
		return h
	}
	ones := [32]byte{}
	for i := range ones {
		ones[i] = 0xff
	}
	for _, tc := range []struct {
		name string
		h    [32]byte
		want int
	}{
		{"all zero", [32]byte{}, 256},
		{"all ones", ones, 0},
		{"top bit", withByte(0, 0x80), 0},
		{"second bit", withByte(0, 0x40), 1},
		{"low bit of byte 0", withByte(0, 0x01), 7},
		{"top bit of byte 1", withByte(1, 0x80), 8},
		{"low bit of byte 7", withByte(7, 0x01), 63},
		{"top bit of byte 8", withByte(8, 0x80), 64},
		{"byte 8 0x10", withByte(8, 0x10), 67},
		{"low bit of byte 15", withByte(15, 0x01), 127},
		{"byte 20 0x03", withByte(20, 0x03), 166},
		{"top bit of byte 31", withByte(31, 0x80), 248},
		{"last bit", withByte(31, 0x01), 255},
	} {
		if got := LeadingZeroBits(tc.h); got != tc.want {
			t.Errorf("%s: LeadingZeroBits = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestHashLayout pins the preimage so the wire format cannot drift.
func TestHashLayout(t *testing.T) {
	nonce := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	var want []byte
	want = append(want, "gossip-pow-v1"...)
	want = append(want, nonce[:]...)
	want = append(want, 17, 3, 'k', 'e', 'y', 4, 'a', 'd', 'd', 'r')
	want = append(want, 0, 0, 0, 0, 0, 0, 0x01, 0x02)
	if got := hash(&nonce, 17, []byte("key"), []byte("addr"), 0x0102); got != sha256.Sum256(want) {
		t.Fatalf("hash does not match the documented layout")
	}
}

func TestSolveVerify(t *testing.T) {
	r := &detReader{seed: 1}
	for d := range uint8(13) {
		var ch Challenge
		r.Read(ch.Nonce[:])
		ch.Difficulty = d
		s, err := Solve(context.Background(), ch, testIdentity, testBound)
		if err != nil {
			t.Fatalf("difficulty %d: Solve: %v", d, err)
		}
		if s.Nonce != ch.Nonce {
			t.Fatalf("difficulty %d: solution nonce %x, want %x", d, s.Nonce, ch.Nonce)
		}
		if err := Verify(ch, testIdentity, testBound, s); err != nil {
			t.Fatalf("difficulty %d: Verify: %v", d, err)
		}
		h := hash(&ch.Nonce, d, testIdentity, testBound, s.Counter)
		if LeadingZeroBits(h) < int(d) {
			t.Fatalf("difficulty %d: hash has %d zero bits", d, LeadingZeroBits(h))
		}
		// Solve returns the first counter that works.
		for c := range s.Counter {
			if Verify(ch, testIdentity, testBound, Solution{ch.Nonce, c}) == nil {
				t.Fatalf("difficulty %d: counter %d also works but Solve returned %d", d, c, s.Counter)
			}
		}
	}
}

func TestVerifyNonceMismatch(t *testing.T) {
	ch := Challenge{Nonce: [16]byte{1}, Difficulty: 0}
	if err := Verify(ch, nil, nil, Solution{Nonce: [16]byte{2}}); !errors.Is(err, ErrUnknownChallenge) {
		t.Fatalf("Verify with another nonce = %v, want ErrUnknownChallenge", err)
	}
	if err := Verify(ch, nil, nil, Solution{Nonce: [16]byte{1}}); err != nil {
		t.Fatalf("Verify at difficulty 0 = %v, want nil", err)
	}
}

func TestSolveCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	_, err := Solve(ctx, Challenge{Difficulty: 40}, testIdentity, testBound)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Solve with a cancelled ctx = %v, want context.Canceled", err)
	}
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Fatalf("Solve with a cancelled ctx took %v", el)
	}
}

func TestSolveDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Solve(ctx, Challenge{Difficulty: 40}, testIdentity, testBound)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Solve past its deadline = %v, want context.DeadlineExceeded", err)
	}
	// A few thousand hashes are well under a millisecond; allow for a
	// loaded machine and the race detector.
	if el := time.Since(start); el > time.Second {
		t.Fatalf("Solve returned %v after its 30ms deadline", el)
	}
}

func FuzzVerify(f *testing.F) {
	f.Add([]byte{}, uint8(0), []byte{}, []byte{}, []byte{}, uint64(0))
	f.Add(bytes.Repeat([]byte{7}, 16), uint8(4), testIdentity, testBound, bytes.Repeat([]byte{7}, 16), uint64(3))
	f.Add(bytes.Repeat([]byte{7}, 16), uint8(255), testIdentity, testBound, bytes.Repeat([]byte{7}, 16), ^uint64(0))
	f.Add([]byte("short"), uint8(1), []byte("ab"), []byte("c"), []byte("other"), uint64(1))
	f.Add(bytes.Repeat([]byte{0xff}, 40), uint8(8), bytes.Repeat([]byte{1}, 300), bytes.Repeat([]byte{2}, 300), []byte{}, uint64(1<<63))
	f.Fuzz(func(t *testing.T, chNonce []byte, difficulty uint8, identity, bound, sNonce []byte, counter uint64) {
		var ch Challenge
		copy(ch.Nonce[:], chNonce)
		ch.Difficulty = difficulty
		s := Solution{Counter: counter}
		copy(s.Nonce[:], sNonce)
		err := Verify(ch, identity, bound, s)
		switch {
		case s.Nonce != ch.Nonce:
			if !errors.Is(err, ErrUnknownChallenge) {
				t.Fatalf("nonce mismatch: Verify = %v", err)
			}
		case LeadingZeroBits(hash(&ch.Nonce, difficulty, identity, bound, counter)) >= int(difficulty):
			if err != nil {
				t.Fatalf("enough work: Verify = %v", err)
			}
		default:
			if !errors.Is(err, ErrInsufficientWork) {
				t.Fatalf("too little work: Verify = %v", err)
			}
		}
	})
}

// benchChallenge returns a challenge whose nonce depends on i.
func benchChallenge(i int, d uint8) Challenge {
	ch := Challenge{Difficulty: d}
	binary.BigEndian.PutUint64(ch.Nonce[:], uint64(i))
	ch.Nonce[15] = 0xbe
	return ch
}

func BenchmarkVerify(b *testing.B) {
	ch := benchChallenge(0, 8)
	s, err := Solve(context.Background(), ch, testIdentity, testBound)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(ch, testIdentity, testBound, s); err != nil {
			b.Fatal(err)
		}
	}
}

// benchSolve solves b.N distinct challenges at difficulty d. ns/op is the
// mean wall time of one solve; hashes/op and ns/hash are reported too.
func benchSolve(b *testing.B, d uint8) {
	var hashes uint64
	start := time.Now()
	for i := 0; i < b.N; i++ {
		s, err := Solve(context.Background(), benchChallenge(i, d), testIdentity, testBound)
		if err != nil {
			b.Fatal(err)
		}
		hashes += s.Counter + 1
	}
	el := time.Since(start)
	b.ReportMetric(float64(hashes)/float64(b.N), "hashes/op")
	b.ReportMetric(float64(el.Nanoseconds())/float64(hashes), "ns/hash")
	b.ReportMetric(float64(el.Nanoseconds())/float64(b.N)/1e6, "ms/solve")
}

// BenchmarkSolve measures a solve at difficulty 18.
func BenchmarkSolve(b *testing.B) { benchSolve(b, 18) }

// BenchmarkSolveDifficulty is the calibration run behind the default
// difficulty: go test -run=^$ -bench=SolveDifficulty -benchtime=100x -cpu=1.
func BenchmarkSolveDifficulty(b *testing.B) {
	for _, d := range []uint8{16, 18, 19, 20} {
		b.Run(fmt.Sprintf("d=%d", d), func(b *testing.B) { benchSolve(b, d) })
	}
}
