package gossip

import (
	"bytes"
	"crypto/ed25519"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/gossip-dev/gossip/internal/pow"
)

type seedPeer struct {
	degree       int
	level        int // its level in the eager tree, as it reported it (0: unknown)
	registeredAt time.Time
	key          []byte // its Ed25519 public key, as last registered
}

// probe is a seed's own check of a peer reported dead.
type probe struct {
	first     int64 // stamp of the first request; any later echo counts
	attempts  int
	deadline  time.Time
	reporters []string
}

// seedCounters are read concurrently through Seed.Stats.
type seedCounters struct {
	registrations, reports, refuted, removed atomic.Uint64
}

// seedState is the pure protocol core of a Seed.
type seedState struct {
	cfg    *config
	self   string
	others []string // the other seeds
	rng    *rand.Rand
	fx     effects
	log    *slog.Logger
	ctr    *seedCounters
	rep    *reputation
	// reporters scores the credibility of dead-node reporters: refuted
	// reports lower it, and reports from a reporter at the threshold are
	// ignored for the ban duration (its registration is not affected).
	reporters *reputation
	// issuer issues and redeems proof-of-work challenges; nil if disabled.
	issuer *pow.Issuer
	// reportLim caps dead-node reports per reporter; bounded by maxTracked.
	reportLim map[string]*rate.Limiter

	peers  map[string]*seedPeer
	probes map[string]*probe
	votes  map[string]map[string]time.Time // peer → seed → when its probes failed
	view   atomic.Pointer[[]string]        // registered peers, for Seed.Peers

	restored  []wirePeer // loaded from the persist file, added at start
	dirty     bool       // the list changed since it was last persisted
	persistAt time.Time  // when to persist it
	now       time.Time  // of the current step, for scheduling
}

func newSeedState(cfg *config, self string, seeds []string, ctr *seedCounters, rep *reputation) *seedState {
	s := &seedState{
		rep:       rep,
		reporters: newReputation(cfg),
		issuer:    newIssuer(cfg),
		reportLim: make(map[string]*rate.Limiter),
		cfg:       cfg,
		self:      self,
		rng:       newRand(cfg),
		log:       cfg.logger.With("node", self),
		ctr:       ctr,
		peers:     make(map[string]*seedPeer),
		probes:    make(map[string]*probe),
		votes:     make(map[string]map[string]time.Time),
	}
	for _, a := range seeds {
		if a != self {
			s.others = append(s.others, a)
		}
	}
	s.view.Store(&[]string{})
	return s
}

func (s *seedState) effects() *effects { return &s.fx }

func (s *seedState) emit(ev Event) {
	ev.Node = s.self
	s.fx.events = append(s.fx.events, ev)
}

func (s *seedState) isSeed(addr string) bool { return slices.Contains(s.others, addr) }

func (s *seedState) start(now time.Time) {
	for _, p := range s.restored {
		if p.Addr != s.self && !s.isSeed(p.Addr) && len(s.peers) < s.cfg.maxPeers {
			s.peers[p.Addr] = &seedPeer{degree: p.Degree, level: clampLevel(p.Level), registeredAt: now}
		}
	}
	if len(s.restored) > 0 {
		s.log.Info("restored peer list from file", "peers", len(s.peers), "path", s.cfg.persistPath)
		v := slices.Sorted(maps.Keys(s.peers))
		s.view.Store(&v)
	}
	s.restored = nil
}

// stop writes a pending change of the peer list.
func (s *seedState) stop(time.Time) {
	if s.dirty {
		s.save()
	}
}

func (s *seedState) save() {
	s.dirty = false
	s.fx.save = true
	s.fx.persist = make([]wirePeer, 0, len(s.peers))
	for _, a := range slices.Sorted(maps.Keys(s.peers)) {
		s.fx.persist = append(s.fx.persist, wirePeer{Addr: a, Degree: s.peers[a].degree, Level: s.peers[a].level})
	}
}

func (s *seedState) listChanged() []string {
	v := slices.Sorted(maps.Keys(s.peers))
	s.view.Store(&v)
	if s.cfg.persistPath != "" && !s.dirty {
		s.dirty = true
		s.persistAt = s.now.Add(time.Second)
	}
	return slices.Clone(v)
}

func (s *seedState) receive(from string, m *wireMsg, now time.Time) {
	s.now = now
	switch m.K {
	case kindRegister:
		s.onRegister(from, m, now)
	case kindPeerListReq:
		if _, ok := s.peers[from]; !ok {
			s.fx.send(from, &wireMsg{K: kindRegisterReject, Reason: "not registered"})
			return
		}
		s.fx.send(from, &wireMsg{K: kindPeerList, Peers: s.peerList(from)})
		s.emit(Event{Kind: EventPeerListServed, Time: now, Addr: from})
	case kindDegree:
		if p, ok := s.peers[from]; ok {
			p.degree, p.level = m.Degree, clampLevel(m.Hops)
		}
	case kindDeadReport:
		if s.reporters.isBanned(from, now) {
			s.log.Debug("ignoring dead-node report from a discredited reporter", "reporter", from)
			return
		}
		if !s.allowReport(from, now) {
			s.rep.add(from, penaltyRate, now)
			return
		}
		s.ctr.reports.Add(1)
		s.emit(Event{Kind: EventDeadReportReceived, Time: now, Addr: m.Addr, From: from, Stamp: time.Unix(0, m.Stamp)})
		if _, ok := s.peers[m.Addr]; !ok {
			s.log.Debug("dead-node report about an unregistered peer", "peer", m.Addr, "reporter", from)
			return
		}
		s.startProbe(m.Addr, from, now)
	case kindSeedDead:
		// Another seed's probes of m.Addr failed: count its vote, and
		// probe for ourselves so that we can vote too. A vote names the
		// key the peer had registered with at that seed: one about an
		// earlier incarnation of a restarted peer, which has registered
		// here since with a new key, counts for nothing.
		if s.isSeed(from) {
			if p, ok := s.peers[m.Addr]; ok && len(m.Key) > 0 && len(p.key) > 0 && !bytes.Equal(m.Key, p.key) {
				s.log.Debug("ignoring a seed's vote about an earlier incarnation", "peer", m.Addr, "seed", from)
				return
			}
			if decided := s.vote(m.Addr, from, now); decided {
				return
			}
			if _, voted := s.votes[m.Addr][s.self]; !voted {
				s.startProbe(m.Addr, from, now)
			}
		}
	case kindLeave:
		if _, ok := s.peers[from]; ok {
			s.remove(from, "left", now)
		}
	case kindPing:
		s.fx.send(from, &wireMsg{K: kindPong, Stamp: m.Stamp, Addr: from})
		if _, ok := s.peers[from]; !ok && !s.isSeed(from) {
			// A peer that believes it is registered (it pings its seeds
			// every liveness round) but that this seed does not know,
			// e.g. after a restart: ask it to register again.
			s.fx.send(from, &wireMsg{K: kindRegisterReject, Reason: "not registered"})
		}
	case kindPong:
		if p, ok := s.probes[from]; ok && m.Addr == s.self && m.Stamp >= p.first {
			delete(s.probes, from)
			delete(s.votes[from], s.self)
			s.ctr.refuted.Add(1)
			s.log.Info("dead-node report refuted: peer answered", "peer", from, "reporters", p.reporters)
			for _, r := range p.reporters {
				if !s.isSeed(r) {
					s.reporters.add(r, penaltyRefuted, now)
				}
			}
			s.emit(Event{Kind: EventDeadReportRefuted, Time: now, Addr: from, Peers: p.reporters})
		}
	default:
		s.log.Debug("dropping unexpected message", "from", from, "kind", m.K)
	}
}

func (s *seedState) onRegister(from string, m *wireMsg, now time.Time) {
	if s.isSeed(from) {
		return
	}
	p, ok := s.peers[from]
	if !ok || (len(m.Key) > 0 && !bytes.Equal(m.Key, p.key)) {
		// A new address or key must prove work; a renewal need not.
		if !s.admit(from, m, now) {
			return
		}
	}
	if !ok {
		if len(s.peers) >= s.cfg.maxPeers {
			s.fx.send(from, &wireMsg{K: kindRegisterReject, Reason: "seed full"})
			return
		}
		group, n := addrGroup(from, s.cfg.groupPrefix), 0
		for a := range s.peers {
			if addrGroup(a, s.cfg.groupPrefix) == group {
				n++
			}
		}
		if n >= s.cfg.groupLimit {
			s.log.Info("registration refused: address group full", "peer", from, "group", group)
			s.fx.send(from, &wireMsg{K: kindRegisterReject, Reason: "address group full"})
			return
		}
		p = &seedPeer{registeredAt: now}
		s.peers[from] = p
		s.ctr.registrations.Add(1)
		s.emit(Event{Kind: EventPeerRegistered, Time: now, Addr: from, Peers: s.listChanged()})
	}
	p.degree, p.level = m.Degree, clampLevel(m.Hops)
	if len(m.Key) == ed25519.PublicKeySize {
		// The latest registration wins: a restarted peer has a new key.
		if ok && !bytes.Equal(p.key, m.Key) {
			// A new incarnation is alive: probes of the old one, and
			// votes about it, no longer apply.
			delete(s.probes, from)
			delete(s.votes, from)
		}
		p.key = m.Key
	}
	s.fx.send(from, &wireMsg{K: kindRegisterAck, Peers: s.peerList(from)})
}

func newIssuer(cfg *config) *pow.Issuer {
	if cfg.powDifficulty == 0 {
		return nil
	}
	return pow.NewIssuer(pow.IssuerConfig{
		Difficulty:    uint8(cfg.powDifficulty),
		MaxDifficulty: uint8(max(cfg.powDifficulty, 24)),
	})
}

// admit checks a registration's proof of work, bound to the registrant's
// key and address, and its signature of the challenge nonce, which proves
// that the registrant holds the key: without a solution it sends a fresh
// challenge; a wrong, expired or replayed one, or a bad signature, is
// refused. It reports whether to register.
func (s *seedState) admit(from string, m *wireMsg, now time.Time) bool {
	if s.issuer == nil {
		return true
	}
	if len(m.Key) != ed25519.PublicKeySize {
		s.fx.send(from, &wireMsg{K: kindRegisterReject, Reason: "registration needs a public key"})
		return false
	}
	if len(m.Nonce) == 0 {
		ch := s.issuer.Issue(now)
		s.fx.send(from, &wireMsg{K: kindChallenge, Nonce: ch.Nonce[:], Diff: ch.Difficulty, Stamp: ch.Expires})
		return false
	}
	var sol pow.Solution
	copy(sol.Nonce[:], m.Nonce)
	sol.Counter = m.Counter
	if len(m.Nonce) != len(sol.Nonce) {
		s.fx.send(from, &wireMsg{K: kindRegisterReject, Reason: "proof of work: malformed nonce"})
		return false
	}
	if len(m.Sig) != ed25519.SignatureSize || !ed25519.Verify(m.Key, registrationBytes(m.Nonce, from, s.self), m.Sig) {
		s.rep.add(from, penaltyMalformed, now)
		s.fx.send(from, &wireMsg{K: kindRegisterReject, Reason: "registration not signed by its key"})
		return false
	}
	if err := s.issuer.Redeem(sol, m.Key, []byte(from), now); err != nil {
		s.rep.add(from, penaltyMalformed, now)
		s.log.Info("registration refused", "peer", from, "err", err)
		s.fx.send(from, &wireMsg{K: kindRegisterReject, Reason: err.Error()})
		return false
	}
	return true
}

// peerList returns the registered peers but the asker in random order,
// at most the configured limit, and no address group with more than a
// tenth of the entries (or 8, if more): Sybils crowded into one group
// cannot fill the lists.
func (s *seedState) peerList(asker string) []wirePeer {
	all := make([]wirePeer, 0, len(s.peers))
	for _, a := range slices.Sorted(maps.Keys(s.peers)) {
		if a != asker {
			all = append(all, wirePeer{Addr: a, Degree: s.peers[a].degree, Key: s.peers[a].key, Level: s.peers[a].level})
		}
	}
	s.rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	perGroup := max(8, min(len(all), s.cfg.peerListLimit)/10)
	groups := make(map[string]int)
	out := all[:0]
	for _, p := range all {
		if len(out) == s.cfg.peerListLimit {
			break
		}
		g := addrGroup(p.Addr, s.cfg.groupPrefix)
		if groups[g] < perGroup {
			groups[g]++
			out = append(out, p)
		}
	}
	return out
}

// allowReport applies the per-reporter limit on dead-node reports.
func (s *seedState) allowReport(from string, now time.Time) bool {
	lim := s.reportLim[from]
	if lim == nil {
		if len(s.reportLim) >= maxTracked {
			clear(s.reportLim)
		}
		lim = rate.NewLimiter(rate.Limit(s.cfg.reportRate), s.cfg.reportBurst)
		s.reportLim[from] = lim
	}
	return lim.AllowN(now, 1)
}

// ban drops a node whose reputation fell to the threshold.
func (s *seedState) ban(addr string, now time.Time) {
	s.emit(Event{Kind: EventBanned, Time: now, Addr: addr})
	if _, ok := s.peers[addr]; ok {
		s.remove(addr, "banned", now)
	}
}

// startProbe checks a reported peer with the seed's own liveness requests.
func (s *seedState) startProbe(addr, reporter string, now time.Time) {
	if p, ok := s.probes[addr]; ok {
		if !slices.Contains(p.reporters, reporter) {
			p.reporters = append(p.reporters, reporter)
		}
		return
	}
	if len(s.probes) >= maxProbes {
		s.log.Warn("too many probes in progress; ignoring report", "peer", addr, "reporter", reporter)
		return
	}
	p := &probe{first: now.UnixNano(), attempts: 1, deadline: now.Add(s.cfg.probeTimeout), reporters: []string{reporter}}
	s.probes[addr] = p
	s.fx.send(addr, &wireMsg{K: kindPing, Stamp: p.first})
}

func (s *seedState) tick(now time.Time) {
	s.now = now
	for _, r := range s.reporters.drainBanned() {
		s.log.Warn("ignoring dead-node reports from a reporter whose reports keep being refuted", "reporter", r, "for", s.cfg.banDuration)
	}
	if s.dirty && !now.Before(s.persistAt) {
		s.save()
	}
	for _, addr := range slices.Sorted(maps.Keys(s.probes)) {
		p := s.probes[addr]
		if now.Before(p.deadline) {
			continue
		}
		if p.attempts < s.cfg.probeAttempts {
			p.attempts++
			p.deadline = now.Add(s.cfg.probeTimeout)
			s.fx.send(addr, &wireMsg{K: kindPing, Stamp: now.UnixNano()})
			continue
		}
		delete(s.probes, addr)
		s.log.Info("peer failed probes; voting for its removal", "peer", addr, "reporters", p.reporters)
		s.emit(Event{Kind: EventDeadReportConfirmed, Time: now, Addr: addr, Peers: p.reporters})
		var key []byte
		if p, ok := s.peers[addr]; ok {
			key = p.key
		}
		for _, o := range s.others {
			s.fx.send(o, &wireMsg{K: kindSeedDead, Addr: addr, Stamp: now.UnixNano(), Key: key})
		}
		s.vote(addr, s.self, now)
	}
	// Forget votes that are too old to combine with new ones.
	for addr, vs := range s.votes {
		maps.DeleteFunc(vs, func(_ string, at time.Time) bool { return now.Sub(at) >= s.voteWindow() })
		if len(vs) == 0 {
			delete(s.votes, addr)
		}
	}
}

// maxProbes bounds the probes a seed runs at once.
const maxProbes = 4096

// voteWindow is how long a failed-probe vote counts: long enough for every
// seed to finish its own probes after hearing of the first failure.
func (s *seedState) voteWindow() time.Duration {
	return 3 * time.Duration(s.cfg.probeAttempts) * s.cfg.probeTimeout
}

// vote records that seed's probes of addr failed, and removes addr once a
// majority of all seeds agree: no single seed, and no minority cut off
// from a live peer, can evict it. It reports whether the majority was
// reached.
func (s *seedState) vote(addr, seed string, now time.Time) bool {
	vs := s.votes[addr]
	if vs == nil {
		if len(s.votes) >= maxProbes {
			return false
		}
		vs = make(map[string]time.Time)
		s.votes[addr] = vs
	}
	vs[seed] = now
	if len(vs) < (len(s.others)+1)/2+1 {
		return false
	}
	delete(s.votes, addr)
	delete(s.probes, addr)
	if _, ok := s.peers[addr]; ok {
		s.log.Info("majority of seeds failed to reach peer; removing", "peer", addr, "seeds", slices.Sorted(maps.Keys(vs)))
		s.remove(addr, "dead", now)
	}
	return true
}

func (s *seedState) remove(addr, reason string, now time.Time) {
	delete(s.peers, addr)
	delete(s.probes, addr)
	s.ctr.removed.Add(1)
	s.emit(Event{Kind: EventPeerRemoved, Time: now, Addr: addr, Reason: reason, Peers: s.listChanged()})
}

func (s *seedState) next() time.Time {
	var t time.Time
	if s.dirty {
		t = s.persistAt
	}
	for _, p := range s.probes {
		if t.IsZero() || p.deadline.Before(t) {
			t = p.deadline
		}
	}
	for _, vs := range s.votes {
		for _, at := range vs {
			if exp := at.Add(s.voteWindow()); t.IsZero() || exp.Before(t) {
				t = exp
			}
		}
	}
	return t
}
