package pow

import (
	"crypto/rand"
	"io"
	"math/bits"
	"time"
)

// Defaults of IssuerConfig.
const (
	defaultDifficulty     = 19
	defaultTTL            = 30 * time.Second
	defaultMaxOutstanding = 10000
	defaultFloodThreshold = 100
	defaultWindow         = time.Minute
	defaultMaxDifficulty  = 28
)

// rateSlots is the number of slots the flood window is divided into.
const rateSlots = 64

// IssuerConfig configures an Issuer. A zero field takes its default.
type IssuerConfig struct {
	// Difficulty is the base number of leading zero bits required;
	// default 19. A solve takes 2^Difficulty SHA-256 hashes on average
	// (geometrically distributed: one in 20 takes 3 times the mean), and
	// each further bit doubles it. Measured with Solve on one core of a
	// shared, busy 2-core AMD EPYC VM (SHA extensions), a 32-byte identity
	// and an 18-byte address, a hash took 250-330 ns and the mean solve
	// was 16-19 ms at 16 bits, 86-91 ms at 18 and 256-347 ms at 20; on
	// an idle one, 135 ns and 43 ms at 18 bits, 71 ms at 19 (go test
	// -run=^$ -bench=SolveDifficulty -benchtime=40x -cpu=1), so 19 keeps
	// a solve within 50-200 ms on both.
	// Difficulty 0 cannot be chosen; it means the default.
	Difficulty uint8
	// TTL is how long an issued challenge can be redeemed; default 30s.
	TTL time.Duration
	// MaxOutstanding bounds the challenges remembered, outstanding and
	// redeemed-but-unexpired together; default 10000. Issuing beyond it
	// forgets the oldest, whose solutions then get ErrUnknownChallenge.
	MaxOutstanding int
	// FloodThreshold, Window and MaxDifficulty adapt the difficulty: while
	// more than FloodThreshold (default 100) challenges were redeemed
	// successfully in the last Window (default 1 minute), new challenges
	// get one more bit per doubling above the threshold, up to
	// MaxDifficulty (default 28; raised to Difficulty if below it): n
	// redemptions add the smallest k with n ≤ FloodThreshold·2^k bits. The
	// window is kept in 64 slots; a redemption is counted for between
	// Window·63/64 and Window after it.
	//
	// Keep TTL in step with MaxDifficulty: by the figures above a mean
	// solve takes about 5 s at 24 bits and over a minute at 28, longer than
	// the default TTL.
	FloodThreshold int
	Window         time.Duration
	MaxDifficulty  uint8
	// Rand is where nonces come from; default crypto/rand.Reader. Tests
	// may inject a deterministic reader. It must not repeat itself.
	Rand io.Reader
}

// record is what the Issuer remembers of one issued challenge.
type record struct {
	expires    int64
	difficulty uint8
	redeemed   bool
}

// Issuer issues challenges and redeems solutions: each challenge at most
// once, before it expires, at the difficulty it was issued with. Memory is
// bounded by IssuerConfig.MaxOutstanding.
//
// An Issuer reads no clock: every method takes the time explicitly, and
// given the same Rand and the same calls it behaves identically. It is not
// safe for concurrent use; the seed's single loop goroutine owns it.
type Issuer struct {
	base, max uint8
	ttl       int64
	limit     int
	threshold uint64
	rnd       io.Reader

	records map[[16]byte]record
	order   fifo // issue order of the keys of records
	rate    rateWindow
}

// NewIssuer returns an Issuer configured by cfg, defaults filled in.
func NewIssuer(cfg IssuerConfig) *Issuer {
	if cfg.Difficulty == 0 {
		cfg.Difficulty = defaultDifficulty
	}
	if cfg.TTL <= 0 {
		cfg.TTL = defaultTTL
	}
	if cfg.MaxOutstanding <= 0 {
		cfg.MaxOutstanding = defaultMaxOutstanding
	}
	if cfg.FloodThreshold <= 0 {
		cfg.FloodThreshold = defaultFloodThreshold
	}
	if cfg.Window <= 0 {
		cfg.Window = defaultWindow
	}
	if cfg.MaxDifficulty == 0 {
		cfg.MaxDifficulty = defaultMaxDifficulty
	}
	if cfg.MaxDifficulty < cfg.Difficulty {
		cfg.MaxDifficulty = cfg.Difficulty
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	return &Issuer{
		base:      cfg.Difficulty,
		max:       cfg.MaxDifficulty,
		ttl:       int64(cfg.TTL),
		limit:     cfg.MaxOutstanding,
		threshold: uint64(cfg.FloodThreshold),
		rnd:       cfg.Rand,
		records:   make(map[[16]byte]record),
		rate:      newRateWindow(cfg.Window),
	}
}

// Issue returns a new challenge at the current difficulty, expiring TTL
// after now. It first forgets challenges that expired by now and, if
// MaxOutstanding are still remembered, the oldest ones.
//
// Issue panics if Rand fails or returns a nonce that is still remembered:
// either means the randomness is broken, and going on would let solutions
// be replayed.
func (is *Issuer) Issue(now time.Time) Challenge {
	t := now.UnixNano()
	for is.order.len() > 0 {
		oldest := is.order.front()
		if t <= is.records[oldest].expires && is.order.len() < is.limit {
			break
		}
		delete(is.records, oldest)
		is.order.pop()
	}
	var nonce [16]byte
	if _, err := io.ReadFull(is.rnd, nonce[:]); err != nil {
		panic("pow: reading nonce: " + err.Error())
	}
	if _, dup := is.records[nonce]; dup {
		panic("pow: Rand repeated a nonce")
	}
	expires := t + is.ttl
	if expires < t {
		expires = int64(^uint64(0) >> 1)
	}
	d := is.Difficulty(now)
	is.records[nonce] = record{expires: expires, difficulty: d}
	is.order.push(nonce, is.limit)
	return Challenge{Nonce: nonce, Difficulty: d, Expires: expires}
}

// Redeem verifies s for identity and bound against the remembered
// challenge with s's nonce, at the difficulty recorded when it was
// issued. It returns ErrUnknownChallenge if no such challenge is
// remembered, ErrExpired if now is after its expiry (a challenge is valid
// up to and including its Expires instant), ErrReplayed if it was already
// redeemed, and ErrInsufficientWork if the hash falls short. On success
// the challenge is consumed, and remembered as redeemed until it expires
// or is evicted; a failed attempt leaves it outstanding.
func (is *Issuer) Redeem(s Solution, identity, bound []byte, now time.Time) error {
	r, ok := is.records[s.Nonce]
	if !ok {
		return ErrUnknownChallenge
	}
	t := now.UnixNano()
	if t > r.expires {
		return ErrExpired
	}
	if r.redeemed {
		return ErrReplayed
	}
	if err := Verify(Challenge{Nonce: s.Nonce, Difficulty: r.difficulty}, identity, bound, s); err != nil {
		return err
	}
	r.redeemed = true
	is.records[s.Nonce] = r
	is.rate.add(t)
	return nil
}

// Difficulty returns the difficulty a challenge issued at now gets: the
// base difficulty plus one bit per doubling of the successful redemptions
// in the last Window above FloodThreshold, at most MaxDifficulty.
func (is *Issuer) Difficulty(now time.Time) uint8 {
	n := is.rate.count(now.UnixNano())
	if n <= is.threshold {
		return is.base
	}
	d := int(is.base) + bits.Len64((n-1)/is.threshold)
	if d > int(is.max) {
		return is.max
	}
	return uint8(d)
}

// fifo is a ring buffer of nonces that grows up to a limit.
type fifo struct {
	buf     [][16]byte
	head, n int
}

func (q *fifo) len() int { return q.n }

func (q *fifo) front() [16]byte { return q.buf[q.head] }

func (q *fifo) pop() {
	q.buf[q.head] = [16]byte{}
	q.head++
	if q.head == len(q.buf) {
		q.head = 0
	}
	q.n--
}

// push appends x, growing the buffer to at most limit slots; the caller
// keeps q.len() below limit.
func (q *fifo) push(x [16]byte, limit int) {
	if q.n == len(q.buf) {
		c := min(max(2*len(q.buf), 64), limit)
		buf := make([][16]byte, c)
		for i := range q.n {
			buf[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = buf, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = x
	q.n++
}

// rateWindow counts events in a sliding window kept as rateSlots slots of
// width window/rateSlots, in fixed memory.
type rateWindow struct {
	width int64
	tick  [rateSlots]int64 // which slot-width interval each slot counts
	n     [rateSlots]uint64
}

func newRateWindow(window time.Duration) rateWindow {
	w := rateWindow{width: max(int64(window)/rateSlots, 1)}
	for i := range w.tick {
		w.tick[i] = -1 << 63
	}
	return w
}

// at returns the interval that t falls in (floor division).
func (w *rateWindow) at(t int64) int64 {
	k := t / w.width
	if t%w.width != 0 && t < 0 {
		k--
	}
	return k
}

// add counts an event at t. An event older than its slot's interval (the
// clock went back) is counted in the newer interval.
func (w *rateWindow) add(t int64) {
	k := w.at(t)
	s := uint64(k) % rateSlots
	if k > w.tick[s] {
		w.tick[s], w.n[s] = k, 0
	}
	w.n[s]++
}

// count returns the events counted in the rateSlots intervals ending with
// the one t falls in.
func (w *rateWindow) count(t int64) uint64 {
	k := w.at(t)
	var n uint64
	for s := range rateSlots {
		if w.tick[s] <= k && uint64(k)-uint64(w.tick[s]) < rateSlots {
			n += w.n[s]
		}
	}
	return n
}
