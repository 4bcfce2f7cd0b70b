package gossip

import (
	"math"
	"net"
	"net/netip"
	"time"

	"golang.org/x/time/rate"
)

// Reputation weights: what one observation adds to a remote node's score.
// Scores decay towards zero with a half-life (WithReputation); a node whose
// score falls to the ban threshold is disconnected and ignored for the ban
// duration.
const (
	penaltyMalformed  = -10 // undecodable or invalid frame
	penaltyRate       = -1  // frame over the per-source rate limit
	penaltyOriginRate = -1  // own message over the per-origin rate limit
	penaltyRefuted    = -20 // dead-node report refuted by the seed's probe (reporter credibility only)
	penaltyBadSig     = -50 // gossip whose signature does not verify
	penaltyForged     = -20 // own gossip signed with a key other than the seeds list for it
	penaltyStale      = -5  // gossip stamped outside the replay window
	rewardDelivery    = 0.5 // first delivery of a message
	maxScore          = 50  // rewards saturate here
	maxTracked        = 8192
)

type repEntry struct {
	score       float64
	at          time.Time // when score was last decayed
	bannedUntil time.Time
	// Per-source token buckets, made on the first frame admitted from
	// the source: a dead-node reporter's entry never needs them.
	limiter *rate.Limiter // frames per second from this source
	bytes   *rate.Limiter // bytes per second from this source
}

// reputation scores remote nodes from observed behaviour and enforces
// per-source rate limits and bans. It is owned by the node's loop
// goroutine and uses only the times it is given.
type reputation struct {
	cfg     *config
	entries map[string]*repEntry
	banned  []string // newly banned since the last drain
}

func newReputation(cfg *config) *reputation {
	return &reputation{cfg: cfg, entries: make(map[string]*repEntry)}
}

func (r *reputation) entry(addr string, now time.Time) *repEntry {
	e := r.entries[addr]
	if e == nil {
		if len(r.entries) >= maxTracked {
			r.prune(now)
		}
		e = &repEntry{at: now}
		r.entries[addr] = e
	}
	if dt := now.Sub(e.at); dt > 0 {
		e.score *= math.Exp2(-dt.Seconds() / r.cfg.halfLife.Seconds())
		e.at = now
	}
	return e
}

// add changes addr's score by delta and bans it when the score reaches the
// threshold. It reports whether addr is banned now.
func (r *reputation) add(addr string, delta float64, now time.Time) bool {
	e := r.entry(addr, now)
	e.score = min(e.score+delta, maxScore)
	if e.score <= r.cfg.banThreshold && !now.Before(e.bannedUntil) {
		e.bannedUntil = now.Add(r.cfg.banDuration)
		e.score = 0 // after the ban it starts afresh, on probation
		r.banned = append(r.banned, addr)
	}
	return now.Before(e.bannedUntil)
}

// isBanned reports whether frames from addr are to be ignored.
func (r *reputation) isBanned(addr string, now time.Time) bool {
	e := r.entries[addr]
	return e != nil && now.Before(e.bannedUntil)
}

// admit applies the per-source rate limits to a frame of size bytes,
// penalising a source over them. It reports whether to process the frame.
func (r *reputation) admit(addr string, size int, now time.Time) bool {
	e := r.entry(addr, now)
	if now.Before(e.bannedUntil) {
		return false
	}
	if e.limiter == nil {
		e.limiter = rate.NewLimiter(rate.Limit(r.cfg.frameRate), r.cfg.frameBurst)
		e.bytes = rate.NewLimiter(rate.Limit(r.cfg.byteRate), r.cfg.byteBurst)
	}
	if !e.limiter.AllowN(now, 1) || !e.bytes.AllowN(now, size) {
		r.add(addr, penaltyRate, now)
		return false
	}
	return true
}

func (r *reputation) score(addr string, now time.Time) float64 {
	if _, ok := r.entries[addr]; !ok {
		return 0
	}
	return r.entry(addr, now).score
}

// drainBanned returns the nodes banned since the last call.
func (r *reputation) drainBanned() []string {
	b := r.banned
	r.banned = nil
	return b
}

// prune forgets unbanned sources whose score has decayed to near zero,
// then, if still over capacity, those nearest zero, so that memory stays
// bounded however many addresses send.
func (r *reputation) prune(now time.Time) {
	for a, e := range r.entries {
		if now.Before(e.bannedUntil) {
			continue
		}
		e = r.entry(a, now)
		if math.Abs(e.score) < 1 {
			delete(r.entries, a)
		}
	}
	for a, e := range r.entries {
		if len(r.entries) < maxTracked*3/4 {
			break
		}
		if !now.Before(e.bannedUntil) {
			delete(r.entries, a)
		}
	}
}

// addrGroup returns the network group of host:port addr: its IPv4 /prefix
// (default /24) or IPv6 /48, or the host name itself. Loopback addresses
// are grouped like any other, so tests can simulate groups with 127.0.x.y.
func addrGroup(addr string, prefix4 int) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	bits := 48
	if ip.Unmap().Is4() {
		ip, bits = ip.Unmap(), prefix4
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return host
	}
	return p.String()
}
