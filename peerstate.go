package gossip

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/gossip-dev/gossip/internal/pow"
)

// seedLinkState is where a peer's registration with one seed stands.
type seedLinkState uint8

const (
	seedIdle       seedLinkState = iota // not asked in this round
	seedPending                         // asked, waiting until deadline
	seedRegistered                      // accepted
	seedFailed                          // no answer or refused in this round
)

type seedLink struct {
	state    seedLinkState
	deadline time.Time
	solving  bool // a proof of work for this seed is being computed
}

// dial is a connect request in flight.
type dial struct {
	deadline time.Time
	nonce    []byte   // the connect's nonce, which the ack must sign
	mode     linkMode // lazy push: how the connect asks the link to start
}

// linkMode is how a link starts in lazy-push mode, from the point of view of
// the end that sends it in a connect or connect-ack.
type linkMode uint8

const (
	linkPushOut linkMode = 1 << iota // this end pushes messages to the other
	linkPushIn                       // this end asks the other to push to it
	linkEager   = linkPushOut | linkPushIn
)

// flip is m seen from the other end.
func (m linkMode) flip() linkMode { return (m&linkPushOut)<<1 | (m&linkPushIn)>>1 }

// linkStamp identifies a proven connect: its stamp and nonce. Two connects
// of one dialer can share a stamp (a coarse or virtual clock), never a
// nonce.
type linkStamp struct {
	stamp int64
	nonce [linkNonceSize]byte
}

// maxLinkStamps bounds peerState.linkStamps. When it is full of entries
// younger than the skew window, new inbound links wait (outbound links,
// which this peer chooses, are unaffected).
const maxLinkStamps = 4096

type neighbor struct {
	outbound     bool
	since        time.Time
	pingStamp    int64     // stamp of the unanswered liveness request, 0 if none
	misses       int       // consecutive unanswered requests
	gossipIn     int       // gossip frames received from it in this silence window
	lazy         bool      // lazy push: announce to it instead of pushing (it pruned us)
	prunedIn     bool      // lazy push: we asked it to stop pushing to us
	eager        bool      // lazy push: the link started pushing at least one way (see WithEagerLinks)
	shorter      int       // lazy push: messages in a row it announced over a shorter path
	firstOrigin  string    // origin of the last message it delivered first
	firstAt      time.Time // when
	prunedAt     time.Time // when we last sent it a prune
	pruneRepeats int       // prunes repeated since the last one decided
	ihave        []uint64
	ihaveHops    []byte // this peer's hops for each of ihave
	announced    bool   // lazy push: an announcement has been sent to it (the first goes at once)
	// claims are the neighbours it last said it has, sorted (self-pruning;
	// at most maxDegree of them), in its list numbered claimsVersion.
	claims        []string
	claimsVersion uint64
}

// knownPeer is what the seeds' lists say of a candidate peer.
type knownPeer struct {
	degree int32 // its degree, as it reported it
	level  int32 // its level in the eager tree (lazy push; 0: unknown)
}

// maxLevel bounds the tree levels peers report.
const maxLevel = 255

// clampLevel keeps a reported tree level in [0, maxLevel].
func clampLevel(l int) int { return min(max(l, 0), maxLevel) }

// levelRank orders tree levels for the choice of an eager link: the
// shallowest first, unknown last.
func levelRank(l int) int {
	if l == 0 {
		return maxLevel + 1
	}
	return l
}

// missing is a message this peer heard of (lazy push) but has not received.
// maxRequestTries bounds the grafts (or wants) sent for one missing message.
const maxRequestTries = 3

// treeShortcut is how many hops shorter a path through a neighbour must be
// before shortenTree moves this peer's link to it: any shorter path. Hop
// counts do not race, so this converges (to a shortest-path tree for one
// origin) instead of flapping.
const treeShortcut = 1

// shortcutVotes is how many messages in a row a neighbour must announce
// over a shorter path before shortenTree moves the link to it. A message
// that was lost and repaired on the way reaches this peer (and its subtree)
// over a detour, once: moving on that one message would rebuild the
// subtree after every loss.
// In the simulator at n=1000 one vote made the tree converge a message
// sooner with one origin, but cost 1.332 payloads per delivery with 10
// origins, against 1.089 (2026-12-02).
const shortcutVotes = 2

type missing struct {
	from     []string // neighbours that announced it, fewest hops first
	hops     []int    // their hops, for each of from
	deadline time.Time
	tries    int
}

// peerCounters are read concurrently through Peer.Stats.
type peerCounters struct {
	originated, delivered, duplicates, forwarded, dropped, deadReports, repaired, pruned atomic.Uint64
}

// peerState is the pure protocol core of a Peer.
type peerState struct {
	cfg  *config
	self string
	rng  *rand.Rand
	fx   effects
	log  *slog.Logger
	ctr  *peerCounters
	rep  *reputation
	// originLim caps new messages per origin; bounded by maxTracked.
	originLim map[string]*rate.Limiter
	// keys are the origins' public keys as the seeds list them; bounded
	// by maxTracked.
	keys map[string][]byte
	pub  []byte

	seeds   []string // random order, fixed at start
	need    int      // ⌊n/2⌋+1
	links   map[string]*seedLink
	joined  bool
	started time.Time
	retryAt time.Time // zero unless a failed round waits to retry
	backoff time.Duration

	known   map[string]knownPeer // candidate peers, as the seeds list them
	level   int                  // lazy push: this peer's level in the eager tree (0: unknown)
	nbrs    map[string]*neighbor
	dialing map[string]dial // connect requests in flight
	// linkStamps holds, per address, the newest proven connect it sent
	// within the skew window: an older one, or the same one again, is a
	// replay.
	linkStamps map[string]linkStamp
	refused    map[string]bool // candidates that refused or timed out since the last list
	target     int             // outbound neighbours this peer dials

	seen  *seenSet
	cache *msgCache
	seq   uint64
	// listVersion numbers the neighbour lists sent with self-pruning.
	listVersion uint64
	originated  int

	seedPing     int64     // stamp of this round's health ping to the seeds
	lastSeedPong time.Time // when a seed last answered one
	lastListReq  time.Time // when peer lists were last requested
	nextRetry    time.Time // when unanswered liveness requests are resent
	nextAE       time.Time // next periodic anti-entropy exchange

	// Silent-neighbour detection: a neighbour that relays nothing while
	// other neighbours bring new messages is replaced.
	silenceFrom time.Time // start of the current window
	newInWindow int       // new messages delivered in it
	// originsInWindow holds up to silenceOrigins distinct origins of
	// those messages.
	originsInWindow []string
	// originatedInWindow counts the messages this peer originated in it.
	originatedInWindow int
	shunned            map[string]time.Time // silent peers not to dial again until

	// Lazy push (WithLazyPush).
	missing map[msgID]*missing
	// missingDue is no later than the earliest deadline in missing (zero
	// when it is empty); it may be earlier after a message arrives, which
	// costs one early tick, never a late one.
	missingDue time.Time
	nextFlush  time.Time // zero when no announcement is queued
	// flushPhase places this peer's flushes on a grid of its own (see
	// flushTime), derived from its address.
	flushPhase int64
	lastPushAt time.Time // when a link pushing to it last brought a new message
	lastPullAt time.Time // when it last requested missing messages
	pullMark   uint64    // ctr.delivered at lastPullAt
	// pulledAt holds, for the origins of messages this peer pulled
	// lately, when the last one came (at most maxPulledOrigins).
	pulledAt map[string]time.Time
	gapUntil time.Time // lazy push: until then, missing messages are pulled sooner (expectGap)
	bestHops map[string]originBest
	held     map[msgID]*heldFwd
	heldDue  time.Time

	// Waiting before relaying (WithRelayWait): the messages that wait,
	// by ID and in order of release.
	waiting map[msgID]*waitFwd
	waitQ   []*waitFwd

	nextGossip, nextLiveness, nextMaintain, nextRefresh time.Time
	stopped                                             bool
	view                                                atomic.Pointer[[]string] // neighbours, for Peer.Neighbors
	linkView                                            atomic.Pointer[[]Link]   // neighbours, for Peer.Links
}

func newPeerState(cfg *config, self string, seeds []string, ctr *peerCounters, rep *reputation) *peerState {
	s := &peerState{
		rep:        rep,
		originLim:  make(map[string]*rate.Limiter),
		keys:       make(map[string][]byte),
		pub:        cfg.identity.Public().(ed25519.PublicKey),
		cfg:        cfg,
		self:       self,
		rng:        newRand(cfg),
		flushPhase: flushPhase(self, cfg.lazyFlush),
		log:        cfg.logger.With("node", self),
		ctr:        ctr,
		need:       len(seeds)/2 + 1,
		links:      make(map[string]*seedLink, len(seeds)),
		known:      make(map[string]knownPeer),
		nbrs:       make(map[string]*neighbor),
		dialing:    make(map[string]dial),
		linkStamps: make(map[string]linkStamp),
		refused:    make(map[string]bool),
		seen:       newSeenSet(cfg.seenSize, cfg.seenTTL),
		cache:      newMsgCache(cfg.cacheSize, cfg.cacheTTL, cfg.repairWindow()),
		shunned:    make(map[string]time.Time),
		missing:    make(map[msgID]*missing),
	}
	s.seeds = slices.Clone(seeds)
	s.rng.Shuffle(len(s.seeds), func(i, j int) { s.seeds[i], s.seeds[j] = s.seeds[j], s.seeds[i] })
	for _, a := range s.seeds {
		s.links[a] = &seedLink{}
	}
	s.view.Store(&[]string{})
	s.linkView.Store(&[]Link{})
	return s
}

func (s *peerState) effects() *effects { return &s.fx }

func (s *peerState) emit(ev Event) {
	ev.Node = s.self
	s.fx.events = append(s.fx.events, ev)
}

func (s *peerState) isSeed(addr string) bool { _, ok := s.links[addr]; return ok }

func (s *peerState) start(now time.Time) {
	s.started = now
	s.backoff = s.cfg.retryMin
	s.nextGossip = now.Add(s.cfg.gossipInterval)
	s.nextLiveness = now.Add(s.cfg.livenessInterval)
	s.nextMaintain = now.Add(s.cfg.maintainInterval)
	s.nextRefresh = now.Add(s.cfg.refreshInterval)
	if s.cfg.antiEntropy > 0 {
		s.nextAE = now.Add(s.cfg.antiEntropy)
	}
	s.lastSeedPong = now
	s.silenceFrom = now
	s.target = s.drawTarget()
	s.register(now)
}

// drawTarget draws how many neighbours this peer dials from the truncated
// discrete power law P(k) ∝ k^-γ on [minDegree, maxDegree].
func (s *peerState) drawTarget() int {
	lo, hi, g := s.cfg.minDegree, s.cfg.maxDegree, s.cfg.degreeExponent
	total := 0.0
	for k := lo; k <= hi; k++ {
		total += math.Pow(float64(k), -g)
	}
	u := s.rng.Float64() * total
	for k := lo; k <= hi; k++ {
		u -= math.Pow(float64(k), -g)
		if u <= 0 {
			return k
		}
	}
	return hi
}

// onChallenge solves a seed's proof-of-work challenge off the loop and
// registers again with the solution.
func (s *peerState) onChallenge(from string, m *wireMsg, now time.Time) {
	l, ok := s.links[from]
	if !ok || l.solving {
		return
	}
	var ch pow.Challenge
	copy(ch.Nonce[:], m.Nonce)
	ch.Difficulty, ch.Expires = m.Diff, m.Stamp
	l.solving = true
	if l.state == seedPending {
		l.deadline = now.Add(solveBudget) // the solve may take a while
	}
	key, self := s.pub, []byte(s.self)
	s.fx.async = append(s.fx.async, func(ctx context.Context) func(time.Time) {
		ctx, cancel := context.WithTimeout(ctx, solveBudget)
		defer cancel()
		sol, err := pow.Solve(ctx, ch, key, self)
		return func(now time.Time) {
			l.solving = false
			if err != nil || s.stopped {
				s.log.Warn("proof of work not solved", "seed", from, "err", err)
				return
			}
			msg := s.registerMsg()
			msg.Nonce, msg.Counter = sol.Nonce[:], sol.Counter
			msg.Sig = ed25519.Sign(s.cfg.identity, registrationBytes(msg.Nonce, s.self, from))
			l.state, l.deadline = seedPending, now.Add(s.cfg.registerTimeout)
			s.fx.send(from, msg)
		}
	})
}

// solveBudget bounds the time a peer spends on one proof of work.
const solveBudget = 30 * time.Second

// linkMsg builds a connect or connect-ack to peer to, signed with this
// peer's key over the two addresses and a timestamp, so that the receiver
// knows it talks to the holder of the key the seeds list for this address.
func (s *peerState) linkMsg(k kind, to string, nonce []byte, now time.Time) *wireMsg {
	m := &wireMsg{K: k, Stamp: now.UnixNano(), Hops: s.level}
	if s.cfg.signing {
		m.Key, m.Nonce = s.pub, nonce
		m.Sig = ed25519.Sign(s.cfg.identity, linkBytes(k, s.self, to, m.Stamp, nonce))
	}
	return m
}

// newLinkNonce draws a connect's nonce. It need not be secret: it makes
// each connect-ack's signature unique to one dial.
func (s *peerState) newLinkNonce() []byte {
	b := make([]byte, linkNonceSize)
	binary.LittleEndian.PutUint64(b, s.rng.Uint64())
	binary.LittleEndian.PutUint64(b[8:], s.rng.Uint64())
	return b
}

// linkProven checks a connect or connect-ack: signed by the key it carries,
// for this pair of addresses, stamped within a minute, and with the key
// the seeds list for the sender when they list one. A bad or missing
// signature costs the sender reputation. A key that differs from the
// seeds' may just be newer (the sender restarted): it is refused without
// penalty and this peer asks its seeds again, so a retry succeeds.
func (s *peerState) linkProven(from string, m *wireMsg, now time.Time) bool {
	if !s.cfg.signing {
		return true
	}
	why := ""
	switch {
	case len(m.Key) != ed25519.PublicKeySize || len(m.Sig) != ed25519.SignatureSize:
		why = "unsigned"
	case now.Sub(time.Unix(0, m.Stamp)).Abs() > maxSkew:
		why = "stale"
	case len(m.Nonce) != linkNonceSize:
		why = "no nonce"
	case !ed25519.Verify(m.Key, linkBytes(m.K, from, s.self, m.Stamp, m.Nonce), m.Sig):
		why = "bad signature"
	}
	if why == "" {
		// Genuine signatures, but not for a link now: refused without
		// penalty, since whoever replays a frame does so under its
		// signer's address, and an ack may answer an earlier dial of
		// this peer that timed out.
		stale := ""
		if m.K == kindConnect {
			if last, ok := s.linkStamps[from]; ok && (m.Stamp < last.stamp || m.Stamp == last.stamp && bytes.Equal(m.Nonce, last.nonce[:])) {
				stale = "replayed connect"
			}
		} else if d, ok := s.dialing[from]; ok && !bytes.Equal(d.nonce, m.Nonce) {
			stale = "ack of another connect"
		}
		if stale != "" {
			s.log.Debug("ignoring a link message", "peer", from, "kind", m.K, "why", stale)
			return false
		}
	}
	if why == "" && s.keys[from] != nil && !bytes.Equal(s.keys[from], m.Key) {
		s.refreshKeys(now)
		s.log.Info("refusing a link: key differs from the seeds'; asking them again", "peer", from)
		if m.K == kindConnect {
			s.fx.send(from, &wireMsg{K: kindConnectReject, Reason: "key not known yet"})
		}
		return false
	}
	if why == "" {
		return true
	}
	s.rep.add(from, penaltyForged, now)
	s.log.Info("refusing an unproven link", "peer", from, "kind", m.K, "why", why)
	return false
}

// refreshKeys asks the seeds for fresh peer lists, and so keys, at most
// once a second.
func (s *peerState) refreshKeys(now time.Time) {
	if now.Sub(s.lastListReq) >= time.Second {
		s.lastListReq = now
		for _, a := range s.registeredSeeds() {
			s.fx.send(a, &wireMsg{K: kindPeerListReq})
		}
	}
}

func (s *peerState) registerMsg() *wireMsg {
	return &wireMsg{K: kindRegister, Degree: s.degree(), Hops: s.level, Key: s.pub}
}

func (s *peerState) registeredSeeds() []string {
	var out []string
	for _, a := range s.seeds {
		if s.links[a].state == seedRegistered {
			out = append(out, a)
		}
	}
	return out
}

// register asks idle seeds, in this peer's random order, until registered
// plus pending seeds make a majority.
func (s *peerState) register(now time.Time) {
	active := 0
	for _, l := range s.links {
		if l.state == seedRegistered || l.state == seedPending {
			active++
		}
	}
	for _, a := range s.seeds {
		if active >= s.need {
			return
		}
		l := s.links[a]
		if l.state != seedIdle {
			continue
		}
		l.state, l.deadline = seedPending, now.Add(s.cfg.registerTimeout)
		s.fx.send(a, s.registerMsg())
		active++
	}
	if active < s.need && !s.anyPending() {
		s.roundFailed(now)
	}
}

func (s *peerState) anyPending() bool {
	for _, l := range s.links {
		if l.state == seedPending {
			return true
		}
	}
	return false
}

// roundFailed reports a round that found no majority and schedules the next.
func (s *peerState) roundFailed(now time.Time) {
	reg := s.registeredSeeds()
	var failed []string
	for _, a := range s.seeds {
		if s.links[a].state == seedFailed {
			failed = append(failed, a)
		}
	}
	err := &JoinError{Need: s.need, Registered: reg, Failed: failed}
	s.log.Warn("no majority of seeds reachable; retrying", "retry_in", s.backoff, "err", err)
	s.emit(Event{Kind: EventRegisterFailed, Time: now, Peers: failed, Err: err})
	s.retryAt = now.Add(s.backoff)
	s.backoff = min(2*s.backoff, s.cfg.retryMax)
}

func (s *peerState) degree() int { return len(s.nbrs) }

func (s *peerState) outboundCount() int {
	n := 0
	for _, nb := range s.nbrs {
		if nb.outbound {
			n++
		}
	}
	return n
}

func (s *peerState) receive(from string, m *wireMsg, now time.Time) {
	if s.stopped {
		return
	}
	switch m.K {
	case kindRegisterAck:
		s.onRegisterAck(from, m, now)
	case kindRegisterReject:
		if l, ok := s.links[from]; ok && l.state != seedRegistered {
			s.log.Warn("seed refused registration", "seed", from, "reason", m.Reason)
			l.state = seedFailed
			s.register(now)
		} else if ok {
			// The seed forgot us (a restart, or it removed us while we
			// were cut off): register with that same seed again.
			l.state, l.deadline = seedPending, now.Add(s.cfg.registerTimeout)
			s.fx.send(from, s.registerMsg())
		}
	case kindChallenge:
		s.onChallenge(from, m, now)
	case kindPeerList:
		if l, ok := s.links[from]; ok && l.state == seedRegistered {
			s.mergePeers(from, m.Peers, now)
			s.fill(now)
		}
	case kindConnect:
		if s.linkProven(from, m, now) && s.noteLinkStamp(from, m, now) {
			s.onConnect(from, m.Nonce, m.Link&linkEager, now)
		}
	case kindConnectAck:
		if s.linkProven(from, m, now) {
			s.onConnectAck(from, m.Link&linkEager, m.Hops, now)
		}
	case kindConnectReject:
		if _, ok := s.dialing[from]; ok {
			delete(s.dialing, from)
			s.refused[from] = true
			s.fill(now)
		}
	case kindDisconnect:
		s.dropNeighbor(from, "disconnected", now)
	case kindLeave:
		delete(s.known, from)
		s.dropNeighbor(from, "left", now)
	case kindGossip:
		s.onGossip(from, m, now)
	case kindPing:
		s.log.Debug("liveness request; replying", "from", from, "stamp", m.Stamp)
		s.fx.send(from, &wireMsg{K: kindPong, Stamp: m.Stamp, Addr: from})
		if _, ok := s.nbrs[from]; !ok && !s.isSeed(from) {
			// It believes we are neighbours; we do not: tell it.
			s.fx.send(from, &wireMsg{K: kindDisconnect})
		}
	case kindPong:
		if m.Addr != s.self || m.Stamp == 0 {
			return
		}
		if nb, ok := s.nbrs[from]; ok && m.Stamp == nb.pingStamp {
			s.log.Debug("liveness reply", "from", from, "stamp", m.Stamp, "misses_cleared", nb.misses)
			nb.pingStamp, nb.misses = 0, 0
		} else if s.isSeed(from) && m.Stamp == s.seedPing {
			s.lastSeedPong = now
		}
	case kindIHave:
		s.onIHave(from, m, now)
	case kindGraft:
		if nb, ok := s.nbrs[from]; ok {
			nb.lazy = false
			s.pushQueued(from, nb)
			s.onWant(from, m, now)
		}
	case kindPrune:
		if nb, ok := s.nbrs[from]; ok {
			nb.lazy = true
		}
	case kindNeighbors:
		s.onNeighbors(from, m)
	case kindDigest:
		s.onDigest(from, m, now)
	case kindWant:
		s.onWant(from, m, now)
	default:
		s.ctr.dropped.Add(1)
		s.log.Debug("dropping unexpected message", "from", from, "kind", m.K)
	}
}

func (s *peerState) onRegisterAck(from string, m *wireMsg, now time.Time) {
	l, ok := s.links[from]
	if !ok {
		s.log.Debug("register ack from a non-seed", "from", from)
		return
	}
	if l.state != seedRegistered {
		l.state = seedRegistered
		s.emit(Event{Kind: EventRegistered, Time: now, Addr: from})
	}
	s.mergePeers(from, m.Peers, now)
	if !s.joined && len(s.registeredSeeds()) >= s.need {
		s.joined = true
		s.retryAt = time.Time{}
		s.emit(Event{Kind: EventJoined, Time: now, Peers: s.registeredSeeds()})
	} else if !s.joined && s.retryAt.IsZero() {
		s.register(now) // schedules a retry if this round cannot succeed
	}
	s.fill(now)
}

func (s *peerState) mergePeers(seed string, peers []wirePeer, now time.Time) {
	list := make([]string, 0, len(peers))
	for _, p := range peers {
		if p.Addr == "" || p.Addr == s.self || s.isSeed(p.Addr) {
			continue
		}
		// 8 bytes an entry, as when only the degree was kept: a peer
		// knows up to every registered peer.
		s.known[p.Addr] = knownPeer{degree: int32(min(p.Degree, math.MaxInt32)), level: int32(clampLevel(p.Level))}
		if len(p.Key) == ed25519.PublicKeySize {
			if len(s.keys) >= maxTracked {
				clear(s.keys)
			}
			s.keys[p.Addr] = p.Key
		}
		list = append(list, p.Addr)
	}
	clear(s.refused)
	s.emit(Event{Kind: EventPeerList, Time: now, Addr: seed, Peers: list})
}

// fill dials new neighbours, chosen by preferential attachment, until the
// peer has its target of outbound neighbours and at least the minimum
// degree, within the maximum degree.
func (s *peerState) fill(now time.Time) {
	if !s.joined || s.stopped {
		return
	}
	want := max(s.target-s.outboundCount(), s.cfg.minDegree-s.degree()) - len(s.dialing)
	want = min(want, s.cfg.maxDegree-s.degree()-len(s.dialing))
	if want <= 0 {
		return
	}
	cands := s.candidates(now)
	if s.startsLazy() && len(cands) == 0 && len(s.nbrs) == 0 && len(s.dialing) == 0 && s.level == 0 {
		// No one to hang from: this peer is a root of the tree.
		s.level = 1
		s.reportDegree()
	}
	// Eclipse resistance: outbound links (and dials) per address group
	// are capped, and groups with none yet are preferred, so that one
	// group cannot take the links this peer chooses itself. A network of
	// one group (every node on loopback, say) has no other choice: there
	// the cap does not apply.
	group := func(a string) string { return addrGroup(a, s.cfg.groupPrefix) }
	count := make(map[string]int)
	for a, nb := range s.nbrs {
		if nb.outbound {
			count[group(a)]++
		}
	}
	for a := range s.dialing {
		count[group(a)]++
	}
	groupCap := outboundGroupCap(s.target)
	groups := make(map[string]bool, len(count)+1)
	for g := range count {
		groups[g] = true
	}
	for _, a := range cands {
		groups[group(a)] = true
	}
	oneGroup := len(groups) <= 1
	var picks []string
	for ; want > 0 && len(cands) > 0; want-- {
		i := s.pickWeighted(cands,
			func(a string) bool { return count[group(a)] == 0 },
			func(a string) bool { return oneGroup || count[group(a)] < groupCap })
		if i < 0 {
			break // every candidate's group is at the cap
		}
		count[group(cands[i])]++
		picks = append(picks, cands[i])
		cands = slices.Delete(cands, i, i+1)
	}
	if s.startsLazy() {
		// The eager links go to the shallowest in the tree of the peers
		// picked, by the level the seeds list (unknown last), the best
		// connected on a tie. With the best connected alone, in the
		// simulator at n=1000, the first message of 10 origins took 9 to
		// 14 hops to the last peer, against 6 or fewer with the
		// shortest path: a peer dialed hubs, but hubs that hung far
		// from the root (2026-12-03).
		slices.SortStableFunc(picks, func(a, b string) int {
			if c := cmp.Compare(levelRank(int(s.known[a].level)), levelRank(int(s.known[b].level))); c != 0 {
				return c
			}
			return cmp.Compare(s.known[b].degree, s.known[a].degree)
		})
	}
	for _, a := range picks {
		s.dialPeer(a, now)
	}
}

// candidates returns, sorted, the known peers this peer may dial now: not
// a neighbour, not being dialed, not refused since the last list, not
// full by the seeds' count, not shunned.
func (s *peerState) candidates(now time.Time) []string {
	cands := make([]string, 0, len(s.known))
	for _, a := range slices.Sorted(maps.Keys(s.known)) {
		_, nb := s.nbrs[a]
		_, d := s.dialing[a]
		until, shunned := s.shunned[a]
		if nb || d || s.refused[a] || int(s.known[a].degree) >= s.cfg.maxDegree || shunned && now.Before(until) {
			continue
		}
		cands = append(cands, a)
	}
	return cands
}

// dialPeer sends a connect to a and waits for its ack until the connect
// timeout.
func (s *peerState) dialPeer(a string, now time.Time) {
	nonce := s.newLinkNonce()
	mode := linkEager
	if s.startsLazy() {
		// The first eager link pushes both ways, the others only to this
		// peer: every peer reaches earlier ones, and is reached by them
		// over more than one link.
		switch n := s.eagerOut(); {
		case n >= s.cfg.eagerLinks:
			mode = 0
		case n > 0:
			mode = linkPushIn
		}
	}
	s.dialing[a] = dial{deadline: now.Add(s.cfg.connectTimeout), nonce: nonce, mode: mode}
	m := s.linkMsg(kindConnect, a, nonce, now)
	m.Link = mode
	s.fx.send(a, m)
}

// startsLazy reports whether new links start lazy both ways unless their
// connect asks for an eager one (lazy push with WithEagerLinks above 0).
func (s *peerState) startsLazy() bool { return s.cfg.lazy && s.cfg.eagerLinks > 0 }

// eagerOut counts the eager links this peer dialed and its eager dials in
// flight.
func (s *peerState) eagerOut() int {
	n := 0
	for _, nb := range s.nbrs {
		if nb.outbound && nb.eager {
			n++
		}
	}
	for _, d := range s.dialing {
		if d.mode != 0 {
			n++
		}
	}
	return n
}

// outboundGroupCap is how many outbound links a peer that dials target
// neighbours keeps in one address group: a quarter of them, at least 2 so
// that the minimum degree can always be met.
func outboundGroupCap(target int) int { return max(2, target/4) }

// pickWeighted returns an index into cands with probability proportional
// to the candidate's reported degree plus one (preferential attachment),
// among the candidates that satisfy prefer, if any does, else among those
// that satisfy allow; -1 if none does.
func (s *peerState) pickWeighted(cands []string, prefer, allow func(string) bool) int {
	ok := allow
	if slices.ContainsFunc(cands, prefer) {
		ok = prefer
	} else if !slices.ContainsFunc(cands, allow) {
		return -1
	}
	total := 0
	for _, a := range cands {
		if ok(a) {
			total += int(s.known[a].degree) + 1
		}
	}
	r := s.rng.IntN(total)
	for i, a := range cands {
		if !ok(a) {
			continue
		}
		r -= int(s.known[a].degree) + 1
		if r < 0 {
			return i
		}
	}
	return len(cands) - 1
}

// addNeighbor adds a link. With startsLazy, a link that is not eager
// starts lazy both ways: each end announces to the other, and a graft
// makes it push.
func (s *peerState) addNeighbor(addr string, outbound bool, mode linkMode, now time.Time) {
	nb := &neighbor{outbound: outbound, since: now}
	if s.startsLazy() {
		nb.eager = mode != 0
		nb.lazy, nb.prunedIn = mode&linkPushOut == 0, mode&linkPushIn == 0
	}
	s.nbrs[addr] = nb
	reason := "inbound"
	if outbound {
		reason = "outbound"
	}
	s.emit(Event{Kind: EventNeighborUp, Time: now, Addr: addr, Reason: reason})
	except := ""
	if !outbound {
		except = addr // told after the connect-ack (onConnect)
	}
	s.degreeChanged(except)
}

func (s *peerState) dropNeighbor(addr, reason string, now time.Time) {
	delete(s.dialing, addr)
	if _, ok := s.nbrs[addr]; !ok {
		return
	}
	delete(s.nbrs, addr)
	if s.cfg.lazy && s.pushers() == 0 {
		// The last link pushing to it is gone: ask the others to push
		// rather than wait for announcements and the graft timeout.
		for _, a := range s.neighborsSorted() {
			if nb := s.nbrs[a]; nb != nil && nb.prunedIn {
				nb.prunedIn = false
				s.fx.send(a, &wireMsg{K: kindGraft})
			}
		}
	}
	s.emit(Event{Kind: EventNeighborDown, Time: now, Addr: addr, Reason: reason})
	s.degreeChanged("")
	s.fill(now)
	s.heal(now)
}

// mode is how the link to nb stands, from this end.
func (nb *neighbor) mode() linkMode {
	var m linkMode
	if !nb.lazy {
		m |= linkPushOut
	}
	if !nb.prunedIn {
		m |= linkPushIn
	}
	return m
}

// pushers counts the neighbours that push messages to this peer in full.
func (s *peerState) pushers() int {
	n := 0
	for _, nb := range s.nbrs {
		if !nb.prunedIn {
			n++
		}
	}
	return n
}

// heal asks the seeds for fresh candidates when the known ones cannot
// restore the degree, and registers again when every neighbour is gone: a
// peer that was frozen or cut off may have been removed meanwhile.
func (s *peerState) heal(now time.Time) {
	if !s.joined || s.stopped {
		return
	}
	if s.degree() == 0 {
		for _, a := range s.registeredSeeds() {
			s.fx.send(a, s.registerMsg())
		}
		s.lastListReq = now
		return
	}
	short := s.outboundCount()+len(s.dialing) < s.target || s.degree()+len(s.dialing) < s.cfg.minDegree
	if short && now.Sub(s.lastListReq) >= time.Second {
		s.lastListReq = now
		for _, a := range s.registeredSeeds() {
			s.fx.send(a, &wireMsg{K: kindPeerListReq})
		}
	}
}

// reportDegree tells the seeds this peer's degree and tree level.
func (s *peerState) reportDegree() {
	for _, a := range s.registeredSeeds() {
		s.fx.send(a, &wireMsg{K: kindDegree, Degree: len(s.nbrs), Hops: s.level})
	}
}

// degreeChanged tells the seeds the new degree (they use it for
// preferential attachment), refreshes the published neighbour view and,
// with self-pruning, tells the neighbours but except.
func (s *peerState) degreeChanged(except string) {
	s.reportDegree()
	v := slices.Sorted(maps.Keys(s.nbrs))
	s.view.Store(&v)
	s.tellNeighbors(v, except)
	links := make([]Link, len(v))
	for i, a := range v {
		links[i] = Link{Addr: a, Outbound: s.nbrs[a].outbound, Since: s.nbrs[a].since}
	}
	s.linkView.Store(&links)
}

func (s *peerState) onConnect(from string, nonce []byte, theirs linkMode, now time.Time) {
	if s.isSeed(from) {
		return
	}
	if nb, ok := s.nbrs[from]; ok {
		// It dials again (it lost the link, or our ack): the ack tells it
		// how this end sees the link.
		ack := s.linkMsg(kindConnectAck, from, nonce, now)
		ack.Link = nb.mode()
		s.fx.send(from, ack)
		s.tellNeighbor(from)
		return
	}
	if !s.joined || s.degree() >= s.cfg.maxDegree {
		s.fx.send(from, &wireMsg{K: kindConnectReject, Reason: "full"})
		return
	}
	// Eclipse resistance: inbound links never take the slots kept for
	// the neighbours this peer chooses itself, nor crowd in from one
	// address group.
	inbound, sameGroup := 0, 0
	group := addrGroup(from, s.cfg.groupPrefix)
	for a, nb := range s.nbrs {
		if !nb.outbound {
			inbound++
			if addrGroup(a, s.cfg.groupPrefix) == group {
				sameGroup++
			}
		}
	}
	if inbound >= s.cfg.maxDegree-s.cfg.minDegree {
		s.fx.send(from, &wireMsg{K: kindConnectReject, Reason: "inbound full"})
		return
	}
	if sameGroup >= s.cfg.inboundPerGroup {
		s.fx.send(from, &wireMsg{K: kindConnectReject, Reason: "address group full"})
		return
	}
	// A crossing dial: its request arrived first, so it counts as inbound.
	// Each end sees both connects, so both take each direction as eager
	// if either asked.
	mode := theirs.flip()
	if d, ok := s.dialing[from]; ok {
		mode |= d.mode
		delete(s.dialing, from)
	}
	if !s.startsLazy() {
		mode = linkEager
	}
	s.addNeighbor(from, false, mode, now)
	ack := s.linkMsg(kindConnectAck, from, nonce, now)
	ack.Link = mode
	s.fx.send(from, ack)
	s.tellNeighbor(from)
}

// noteLinkStamp records a proven connect from addr, which linkProven has
// checked is not older than the last one, nor the same. It returns false,
// refusing the link, when the table is full of entries still inside the
// skew window.
func (s *peerState) noteLinkStamp(addr string, m *wireMsg, now time.Time) bool {
	if !s.cfg.signing {
		return true
	}
	if _, ok := s.linkStamps[addr]; !ok && len(s.linkStamps) >= maxLinkStamps {
		s.pruneLinkStamps(now)
		if len(s.linkStamps) >= maxLinkStamps {
			s.fx.send(addr, &wireMsg{K: kindConnectReject, Reason: "busy"})
			return false
		}
	}
	ls := linkStamp{stamp: m.Stamp}
	copy(ls.nonce[:], m.Nonce)
	s.linkStamps[addr] = ls
	return true
}

// pruneLinkStamps forgets stamps older than the skew window: connects
// that old are refused as stale anyway.
func (s *peerState) pruneLinkStamps(now time.Time) {
	oldest := now.Add(-maxSkew).UnixNano()
	for a, ls := range s.linkStamps {
		if ls.stamp < oldest {
			delete(s.linkStamps, a)
		}
	}
}

// onConnectAck completes a dial; theirs is the acceptor's view of the link,
// which this end takes.
func (s *peerState) onConnectAck(from string, theirs linkMode, level int, now time.Time) {
	_, wasDialing := s.dialing[from]
	delete(s.dialing, from)
	if _, ok := s.nbrs[from]; ok {
		return
	}
	// A late answer after we gave up: with signatures its nonce can no
	// longer be checked, and without them the slot may be gone.
	if !wasDialing && (s.cfg.signing || s.degree() >= s.cfg.maxDegree) {
		s.fx.send(from, &wireMsg{K: kindDisconnect})
		return
	}
	if s.startsLazy() && theirs.flip() == linkEager {
		// The link that pushes both ways hangs this peer in the tree,
		// one level under the peer it dialed.
		s.level = 0
		if level > 0 {
			s.level = clampLevel(level + 1)
		}
	}
	s.addNeighbor(from, true, theirs.flip(), now)
	s.sendDigest(from, now)
}

func (s *peerState) onGossip(from string, m *wireMsg, now time.Time) {
	if _, ok := s.nbrs[from]; !ok {
		// Views go stale after crashes and partitions: no penalty, but
		// tell it (the per-source rate limit bounds the replies).
		s.ctr.dropped.Add(1)
		s.fx.send(from, &wireMsg{K: kindDisconnect})
		s.log.Debug("dropping gossip from a non-neighbour", "from", from)
		return
	}
	nb := s.nbrs[from]
	nb.gossipIn++
	id := m.id()
	if s.seen.contains(id) {
		s.ctr.duplicates.Add(1)
		if s.waiting != nil {
			s.waitedCopy(id, from, m.NV)
		}
		if s.cfg.lazy {
			s.heldCopy(id, from, m.Hops+1, now)
			s.pruneRedundant(id, from, m.Origin, nb, m.Hops+1, now)
		}
		return
	}
	var announced []string // neighbours that told us they have it
	requested := false
	if ms := s.missing[id]; ms != nil {
		announced, requested = ms.from, ms.tries > 0
		delete(s.missing, id)
	}
	if s.cfg.signing && !s.authentic(from, m, now) {
		s.ctr.dropped.Add(1)
		return
	}
	if !s.allowOrigin(m.Origin, now) {
		s.ctr.dropped.Add(1)
		if from == m.Origin {
			s.rep.add(from, penaltyOriginRate, now)
		}
		return
	}
	s.seen.add(id, now)
	nb.firstOrigin, nb.firstAt = m.Origin, now
	switch {
	case !s.cfg.lazy:
	case requested:
		s.notePulled(from, nb, m.Origin, now)
	case !nb.prunedIn:
		s.lastPushAt = now
	case from != m.Origin:
		// Long after its prune it still pushes: the prune was lost.
		s.repeatPrune(from, nb, now)
	}
	s.rep.add(from, rewardDelivery, now)
	s.newInWindow++
	if len(s.originsInWindow) < silenceOrigins && !slices.Contains(s.originsInWindow, m.Origin) {
		s.originsInWindow = append(s.originsInWindow, m.Origin)
	}
	hops := m.Hops + 1
	s.ctr.delivered.Add(1)
	s.emit(Event{
		Kind: EventMessage, Time: now, Origin: m.Origin, From: from, Seq: m.Seq,
		Hops: hops, Stamp: time.Unix(0, m.Stamp), Payload: m.Payload,
	})
	if hops >= s.cfg.maxHops {
		return
	}
	// The copy to forward and cache reuses m, which receive's caller
	// hands over: one allocation fewer per delivery.
	fwd, nv := m, m.NV
	*fwd = wireMsg{K: kindGossip, Origin: m.Origin, Seq: m.Seq, Stamp: m.Stamp, Hops: hops, Payload: m.Payload, Key: m.Key, Sig: m.Sig}
	detour := s.cfg.lazy && s.detoured(m.Origin, m.Seq, hops)
	if !detour || !s.hold(id, fwd, from, announced, now) {
		if s.cfg.lazy {
			s.noteBest(m.Origin, m.Seq, hops)
		}
		if !s.wait(id, fwd, from, nv, now) {
			s.push(id, fwd, from, announced, nv, now)
		}
	}
	s.cache.add(id, fwd, from, now)
}

// pruneRedundant handles a second copy of message id, from neighbour from.
// Pruning is receiver-driven: this peer asks from to stop pushing to it,
// and only this peer's own prunes and grafts change what it is sent, so no
// neighbour can cut its supply (in Plumtree's symmetric form a prune also
// stops the pruner's own pushes, and with messages in flight two parents
// that take turns in delivering first each prune the child's link to the
// other, leaving it to learn of messages only by announcement). The link
// that delivered the first copy must still be pushing: if it was pruned
// already, that copy was in flight, and from is the live one, kept.
//
// Of two live links, the one on the longer path from the origin goes (the
// later on a tie). Copies in flight from a pruned link travel on, and a
// peer downstream that took the first of them for its fastest path would
// otherwise prune its real parent and keep a link to its own child: two
// peers each fed only by the other. Hop counts do not race: the tree left
// is a shortest-path tree, whatever order copies arrive in.
func (s *peerState) pruneRedundant(id msgID, from, origin string, nb *neighbor, hops int, now time.Time) {
	if nb.prunedIn {
		// In flight since the prune, or the prune was lost.
		s.repeatPrune(from, nb, now)
		return
	}
	drop := from
	if e := s.cache.get(id); e != nil && e.from != "" && e.from != from {
		first, ok := s.nbrs[e.from]
		switch {
		case hops < e.hops:
			drop = e.from
			e.from, e.hops = from, hops
			if !ok || first.prunedIn {
				return
			}
			nb = first
		case !ok || first.prunedIn:
			return
		}
	}
	if s.feedsOther(nb, origin, now) {
		return
	}
	s.pruneIn(drop, nb, now)
}

// pruneIn asks neighbour a to stop pushing to this peer.
func (s *peerState) pruneIn(a string, nb *neighbor, now time.Time) {
	nb.prunedIn, nb.prunedAt, nb.pruneRepeats = true, now, 0
	s.fx.send(a, &wireMsg{K: kindPrune})
}

// maxPruneRepeats bounds the prunes repeated to a neighbour that goes on
// pushing: a flooding peer ignores prunes, and a lazy one whose prunes were
// lost twice in a row is rare.
const maxPruneRepeats = 4

// repeatPrune tells a pruned neighbour that still pushes to stop again, at
// most once per flush interval and maxPruneRepeats times per prune.
func (s *peerState) repeatPrune(a string, nb *neighbor, now time.Time) {
	if now.Sub(nb.prunedAt) < s.cfg.lazyFlush || nb.pruneRepeats >= maxPruneRepeats {
		return
	}
	nb.prunedAt = now
	nb.pruneRepeats++
	s.fx.send(a, &wireMsg{K: kindPrune})
}

// feedsOther reports whether nb recently brought this peer the first copy
// of a message from an origin other than origin. Trees are shared by all
// origins, and a link redundant for one origin's messages may be the path
// of another's: it is kept while it serves one.
func (s *peerState) feedsOther(nb *neighbor, origin string, now time.Time) bool {
	return nb.firstOrigin != "" && nb.firstOrigin != origin && now.Sub(nb.firstAt) < 2*s.cfg.graftTimeout
}

// push sends m to every neighbour but from, the origin and those that
// announced having it: in full on eager links, as a queued announcement on
// lazy ones. With WithSelfPruning it also skips the neighbours from and
// this peer share, when from forwarded m under list version nv, the one
// this peer holds (see linked; nv 0: m was not forwarded under a list, or
// was sent as a repair).
//
// An origin announces its own messages on its lazy links too. Pushing them
// in full on every link instead (tried on 2026-12-03, n=1000) made the
// hops at 5 % loss no better (9-19 over 12 runs, against 9-14), and with
// 10 origins without loss the duplicates' prunes broke up the shared tree:
// 1.05-1.12 payloads per delivery, 17-19 hops and 97.7-99.1 % within 1 s,
// against 1.006-1.009, 9 and 100 %.
//
// A copy that came over a detour is held back first (see detour.go).
func (s *peerState) push(id msgID, m *wireMsg, from string, skip []string, nv uint64, now time.Time) {
	first := [1]relayCopy{{from, nv}}
	s.pushTo(id, m, from, skip, false, first[:], now)
}

// pushTo is push; with lazyOnly it only announces, on the lazy links, and
// returns those.
//
// Self-pruning loses no delivery while links hold and frames are not lost.
// Say this peer got m first from A and skips B, a neighbour of A. Let
// O = c0, c1, ..., ck = A be the path m took to A, each node forwarding to
// the next. Take the first c_j from which on every node of the path is
// linked to B. If j = 0, B is the origin's neighbour, and the origin skips
// nobody. Otherwise c_j got m from c_(j-1), which B is not linked to, so
// c_j did not skip B for it; or B is c_(j-1) and has m. Links change, so
// a peer tells its neighbours of a change before it sends them gossip
// under it (tellNeighbors, on the same ordered link), and the gossip names
// the list it was sent under, so that c_j judges by c_(j-1)'s links as
// they were when it sent m, or not at all; B's word is needed too, for a
// link B dropped and c_(j-1) has not yet heard of.
//
// copies are the copies of m this peer got before relaying it, each with
// its sender and the list number it came under, the first copy's first
// (more than one only with WithRelayWait: see relaywait.go, which argues
// the same for all of them). None of their senders is sent m, and with
// self-pruning each prunes as the first did above.
func (s *peerState) pushTo(id msgID, m *wireMsg, from string, skip []string, lazyOnly bool, copies []relayCopy, now time.Time) (announced []string) {
	// Self-pruning: the neighbours that sent m under the list of theirs
	// this peer holds.
	type sender struct {
		addr string
		nb   *neighbor
	}
	var buf [4]sender
	senders := buf[:0]
	if s.selfPruning() {
		m.NV = s.listVersion
		for _, c := range copies {
			if nb := s.nbrs[c.from]; nb != nil && c.nv != 0 && c.nv == nb.claimsVersion {
				senders = append(senders, sender{c.from, nb})
			}
		}
	}
next:
	for _, a := range s.neighborsSorted() {
		if a == from || a == m.Origin || slices.Contains(skip, a) {
			continue
		}
		nb := s.nbrs[a]
		for _, c := range copies {
			if c.from == a {
				continue next // it has m
			}
		}
		for _, c := range senders {
			if linked(c.nb, a) && linked(nb, c.addr) {
				s.ctr.pruned.Add(1)
				continue next
			}
		}
		if lazyOnly {
			if !s.cfg.lazy || !nb.lazy {
				continue
			}
			announced = append(announced, a)
		}
		if s.cfg.lazy && nb.lazy {
			nb.ihave = append(nb.ihave, uint64(id))
			nb.ihaveHops = append(nb.ihaveHops, byte(min(m.Hops, 255)))
			if s.nextFlush.IsZero() {
				s.nextFlush = s.flushTime(now)
			}
			// The first announcement to a link goes at once: a peer no
			// eager link reaches hears of the first message one link
			// latency after this peer, not a flush interval.
			if len(nb.ihave) >= maxDigest || !nb.announced {
				s.flushIHave(a)
			}
			continue
		}
		s.fx.send(a, m)
		s.ctr.forwarded.Add(1)
	}
	return announced
}

// flushTime returns when announcements queued at now go out: at the next
// point of this peer's flush grid, one flush interval apart and offset by
// its flushPhase, so within one interval. A flush one interval after the
// first queued announcement lined the flushes of every peer up, since
// they all receive each message within a few milliseconds: the whole
// overlay then sent its announcements in the same instant, every
// interval, and the messages that came meanwhile waited behind them.
func (s *peerState) flushTime(now time.Time) time.Time {
	p := int64(s.cfg.lazyFlush)
	off := (now.UnixNano() - s.flushPhase) % p
	if off < 0 {
		off += p
	}
	return now.Add(time.Duration(p - off))
}

// flushPhase is the offset of the flush grid of the peer at addr: a hash
// of the address, so that it differs from peer to peer without drawing
// from the peer's random source.
func flushPhase(addr string, interval time.Duration) int64 {
	if interval <= 0 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(addr))
	return int64(h.Sum64() % uint64(interval))
}

// pushQueued sends in full the messages queued for announcement to a
// neighbour that has just grafted this peer: it asked for pushes, and they
// are the ones it has least chance of having.
func (s *peerState) pushQueued(a string, nb *neighbor) {
	for _, id := range nb.ihave {
		if e := s.cache.get(msgID(id)); e != nil {
			s.fx.send(a, e.msg)
			s.ctr.forwarded.Add(1)
		}
	}
	nb.ihave, nb.ihaveHops = nil, nil
}

func (s *peerState) flushIHave(a string) {
	nb := s.nbrs[a]
	if len(nb.ihave) == 0 {
		return
	}
	s.fx.send(a, &wireMsg{K: kindIHave, IDs: nb.ihave, IDHops: nb.ihaveHops})
	nb.ihave, nb.ihaveHops = nil, nil
	nb.announced = true
}

// onIHave notes announced messages this peer lacks; a graft follows if
// they do not arrive in time.
func (s *peerState) onIHave(from string, m *wireMsg, now time.Time) {
	if _, ok := s.nbrs[from]; !ok {
		return
	}
	wait := s.cfg.graftTimeout
	if s.cfg.lazy && (s.lastPushAt.IsZero() || now.Before(s.gapUntil)) {
		// No link has pushed a message to this peer yet (the eager links
		// may not reach it at all), or it just moved its link (see
		// shortenTree): waiting the full timeout would cost every message
		// announced meanwhile. A flush interval is long enough for a
		// pushed copy on its way.
		//
		// Grafting at once instead, when no link has pushed yet, made the
		// 10 000-peer tree shallower (9 hops to the last peer instead of
		// 12) and ended a 100 ms wait in the load generator, but at the
		// start of a network nearly every peer grafts on the first message
		// while its pushed copy is on the way, and with several origins the
		// extra eager links stay, each being the first path of some origin:
		// 1.34 payloads per delivery with 10 origins in the simulator at
		// n=1000, against 1.02. Not done. A quarter of a flush interval
		// (12.5 ms) for a peer never pushed to was no better there: 1.17
		// payloads per delivery, 23 hops to the last peer against 16, and
		// 98.3 % delivered within 1 s against 100 % (2026-12-02). Nor
		// was grafting at once only when the origin itself announces
		// (hop count 0), which would end the load generator's startup
		// wait when the subtree the eager links miss hangs from one of
		// the origin's neighbours: with 10 origins, 1.12 payloads per
		// delivery and 99.9 % within 1 s. Nor half a flush interval, once
		// flushes were spread over the interval (flushTime): 1.195 there,
		// against 1.089, and 99.16 % within 1 s.
		wait = min(wait, s.cfg.lazyFlush)
	}
	s.noteMissing(from, m.IDs, m.IDHops, now.Add(wait))
	if nb := s.nbrs[from]; s.cfg.lazy && !nb.prunedIn {
		// A link that is to push to this peer announces: the
		// announcement crossed this peer's graft, and what it names will
		// not be pushed. Waiting for it would cost a flush interval at
		// least (the load generator's 100 ms tail): ask this neighbour
		// for it at once.
		s.askNow(from, m.IDs, now)
	}
	if s.cfg.lazy {
		s.heldAnnounced(from, m.IDs, m.IDHops)
		s.shortenTree(from, m.IDs, m.IDHops, now)
	}
}

// shortenTree moves this peer closer to the origin in the tree: when a
// neighbour that does not push to it announces, with its hop count, a
// message that reached this peer over a path at least treeShortcut hops
// longer than through that neighbour (the announcer's hops + 1), it
// grafts the neighbour and prunes the link the message came on
// (Plumtree's optimisation). Without it a tree only grows deeper as losses
// are repaired through whichever neighbour announced first.
//
// Only announcements that come after the message count: one that comes
// before it finds nothing cached. Counting those too, from the announcers
// noted as missing when the message came (tried on 2026-12-03), made the
// tree of one origin converge to shortest paths at n=1000 without loss
// (hop excess 0.00 by the 8th message, against 0.01-0.56), because an
// origin's first message then casts a vote; but it left the hops at 5 %
// loss as they were (8-15 over 10 runs, against 9-14 over 12), and with
// 10 origins each origin's first messages pulled the shared tree its way:
// 1.08-1.28 payloads per delivery and 12-19 hops without loss, against
// 1.006-1.009 and 9; 1.30-1.35 at 5 % loss, against 1.23-1.25. Part of
// that was feedsOther seeing the parent's link as this origin's path only,
// having just recorded this message on it; judged as before the message,
// the cost with 10 origins was 1.007-1.039 in 8 runs against 1.006-1.016,
// but 2 of them had 12 and 18 hops and 99.7-99.8 % within 1 s; with one
// origin at 5 % loss 8-12 hops in 12 runs (against 9-14), and 13 at
// n=10 000 (against 12 in 2 runs). Not kept.
//
// Nor, on 2026-12-04, re-announcing a message with the new, shorter hop
// count to the lazy links right after a move, so that the neighbours
// could move in the same message instead of the next (a wave instead of
// a level a message). At n=1000, one origin, 5 % loss, -rand 1-8: taken
// as one vote, 8-12 hops (mean of the maxima 10.5) and 1.18-1.23
// payloads per delivery, against 8-13 (10.4) and 1.18-1.21 without; taken
// as enough to move at once, 8-18 hops (12.0) and 1.24-1.30.
func (s *peerState) shortenTree(from string, ids []uint64, hops []byte, now time.Time) {
	if len(hops) != len(ids) {
		return
	}
	nb := s.nbrs[from]
	for i, raw := range ids {
		e := s.cache.get(msgID(raw))
		if e == nil || e.from == "" || e.from == from {
			continue
		}
		if int(hops[i])+1+treeShortcut > e.hops {
			nb.shorter = 0
			continue
		}
		parent, ok := s.nbrs[e.from]
		if !ok || parent.prunedIn || s.feedsOther(parent, e.msg.Origin, now) {
			continue
		}
		if nb.shorter++; nb.shorter < shortcutVotes {
			continue
		}
		nb.shorter = 0
		nb.prunedIn = false
		// The graft asks for what from announced and this peer still
		// lacks: it would otherwise wait for a pull.
		var want []uint64
		for id, ms := range s.missing {
			if len(want) < maxDigest && ms.tries < len(ms.from) && ms.from[ms.tries] == from {
				// Asked of from now, as tickMissing would: the next try,
				// if needed, goes to the next announcer.
				want = append(want, uint64(id))
				ms.tries++
				ms.deadline = now.Add(s.cfg.graftTimeout)
			}
		}
		slices.Sort(want)
		s.fx.send(from, &wireMsg{K: kindGraft, IDs: want})
		s.pruneIn(e.from, parent, now)
		e.from, e.hops = from, int(hops[i])+1
		s.expectGap(now)
		return // one change per announcement
	}
}

// expectGap is called when this peer moves its link from its parent to a
// neighbour that did not push to it: the messages the old parent had not
// pushed when the prune reached it, and the new one sent before the graft
// reached it, come to this peer by neither. They are announced, and for a
// graft timeout after the move, announced messages that do not arrive are
// pulled after a flush interval instead of a graft timeout, those already
// waiting too.
func (s *peerState) expectGap(now time.Time) {
	s.gapUntil = now.Add(s.cfg.graftTimeout)
	soon := now.Add(s.cfg.lazyFlush)
	for _, ms := range s.missing {
		if ms.tries == 0 && ms.deadline.After(soon) {
			ms.deadline = soon
		}
	}
	if len(s.missing) > 0 && (s.missingDue.IsZero() || soon.Before(s.missingDue)) {
		s.missingDue = soon
	}
}

// noteMissing records messages that from has and this peer lacks, to be
// requested from it at deadline unless they arrive first. hops, if not
// empty, gives from's hop count for each ID: requests go to the announcers
// closest to the origin first, so that a message repaired after a loss does
// not reach this peer (and its subtree) over a detour. Without hop counts
// (digests) an announcer ranks after those that gave one.
func (s *peerState) noteMissing(from string, ids []uint64, hops []byte, deadline time.Time) {
	for i, raw := range ids {
		id := msgID(raw)
		if s.seen.contains(id) {
			continue
		}
		ms := s.missing[id]
		if ms == nil {
			if len(s.missing) >= 4*maxDigest {
				continue
			}
			ms = &missing{deadline: deadline}
			s.missing[id] = ms
			if s.missingDue.IsZero() || deadline.Before(s.missingDue) {
				s.missingDue = deadline
			}
		}
		if len(ms.from) < 8 && !slices.Contains(ms.from, from) {
			h := 256
			if i < len(hops) {
				h = int(hops[i])
			}
			// Keep the tries already made in place; rank the rest.
			at := len(ms.from)
			for at > ms.tries && ms.hops[at-1] > h {
				at--
			}
			ms.from = slices.Insert(ms.from, at, from)
			ms.hops = slices.Insert(ms.hops, at, h)
		}
	}
}

// askNow makes the missing messages ids due now, from as the next
// announcer to ask for each.
func (s *peerState) askNow(from string, ids []uint64, now time.Time) {
	for _, raw := range ids {
		ms := s.missing[msgID(raw)]
		if ms == nil {
			continue
		}
		i := slices.Index(ms.from, from)
		if i < ms.tries || !ms.deadline.After(now) {
			// Already asked of from, or 8 announcers before it; or due
			// anyway.
			continue
		}
		if i > ms.tries {
			h := ms.hops[i]
			ms.from = slices.Insert(slices.Delete(ms.from, i, i+1), ms.tries, from)
			ms.hops = slices.Insert(slices.Delete(ms.hops, i, i+1), ms.tries, h)
		}
		ms.deadline = now
		if s.missingDue.IsZero() || now.Before(s.missingDue) {
			s.missingDue = now
		}
	}
}

// tickMissing flushes queued announcements and requests messages heard of
// but not received in time, trying each announcer in turn: a graft (which
// also makes the link eager again) in lazy-push mode, a want otherwise.
func (s *peerState) tickMissing(now time.Time) {
	if !s.nextFlush.IsZero() && !now.Before(s.nextFlush) {
		s.nextFlush = time.Time{}
		for _, a := range s.neighborsSorted() {
			s.flushIHave(a)
		}
	}
	if s.missingDue.IsZero() || now.Before(s.missingDue) {
		return
	}
	var due time.Time
	grafts := map[string][]uint64{}
	// While links still push messages to this peer (one came since its
	// last pull) and it has not had to pull another one lately, a missing
	// message was lost on the way, not cut off by a broken tree: it is
	// pulled with a want, which leaves the links as they are. A graft,
	// which also makes the link push from then on, would give this peer a
	// second parent, and the duplicates of the next message a round of
	// prunes. Misses that recur are grafted: no push between two pulls, or
	// two pulls within two graft timeouts with at most the first pulled
	// message and one other delivered between them. A tree that misses
	// this peer for one origin among others that still reach it is found
	// when the message comes (notePulled). Two pulls within the window
	// whatever came between, as before 2026-12-03, grafted at nearly
	// every loss once several origins broadcast: 1.31-1.34 payloads per
	// delivery with 10 origins at 5 % loss (n=1000), against 1.21-1.24.
	k := kindWant
	if s.cfg.lazy && (s.lastPushAt.IsZero() || !s.lastPushAt.After(s.lastPullAt) ||
		!s.lastPullAt.IsZero() && now.Sub(s.lastPullAt) < s.pullWindow() && s.ctr.delivered.Load()-s.pullMark <= maxRecurGap) {
		k = kindGraft
	}
	for id, ms := range s.missing {
		if now.Before(ms.deadline) {
			if due.IsZero() || ms.deadline.Before(due) {
				due = ms.deadline
			}
			continue
		}
		if ms.tries >= maxRequestTries {
			delete(s.missing, id) // anti-entropy remains the last resort
			continue
		}
		// Round robin over the announcers: with one announcer, a lost
		// graft or reply is retried instead of waiting for anti-entropy.
		a := ms.from[ms.tries%len(ms.from)]
		ms.tries++
		ms.deadline = now.Add(s.cfg.graftTimeout)
		if due.IsZero() || ms.deadline.Before(due) {
			due = ms.deadline
		}
		if nb, ok := s.nbrs[a]; ok {
			if k == kindGraft {
				nb.prunedIn = false // a graft asks it to push again
			}
			grafts[a] = append(grafts[a], uint64(id))
		}
	}
	if k == kindGraft && len(grafts) > 0 {
		s.askGrafted(grafts, now)
	}
	s.missingDue = due
	if len(grafts) > 0 {
		s.lastPullAt, s.pullMark = now, s.ctr.delivered.Load()
	}
	for _, a := range slices.Sorted(maps.Keys(grafts)) {
		ids := grafts[a]
		slices.Sort(ids)
		for len(ids) > 0 {
			n := min(len(ids), maxDigest)
			s.fx.send(a, &wireMsg{K: k, IDs: ids[:n]})
			ids = ids[n:]
		}
	}
}

// maxPulledOrigins bounds peerState.pulledAt.
const maxPulledOrigins = 64

// maxRecurGap is how many messages at most (the one pulled first among
// them) may be delivered between two pulls within pullWindow for the
// second to be a recurring miss, grafted at once (see tickMissing).
const maxRecurGap = 2

// pullWindow is how far back two pulls make a recurring miss: two graft
// timeouts.
func (s *peerState) pullWindow() time.Duration { return 2 * s.cfg.graftTimeout }

// notePulled records that a message of origin came to this peer pulled
// from neighbour from. Two pulls of one origin's messages within two graft
// timeouts are a tree that does not reach this peer for that origin, not
// random losses: from is grafted, to push from then on. Counting the pulls
// of all origins together grafted a link at nearly every loss once several
// origins broadcast, and each graft a second parent.
func (s *peerState) notePulled(from string, nb *neighbor, origin string, now time.Time) {
	last, ok := s.pulledAt[origin]
	if ok && now.Sub(last) < s.pullWindow() && nb.prunedIn {
		nb.prunedIn = false
		s.fx.send(from, &wireMsg{K: kindGraft})
	}
	if !ok && len(s.pulledAt) >= maxPulledOrigins {
		if s.expirePulled(now); len(s.pulledAt) >= maxPulledOrigins {
			return
		}
	}
	if s.pulledAt == nil {
		s.pulledAt = make(map[string]time.Time)
	}
	if !ok {
		origin = strings.Clone(origin) // it may point into the frame
	}
	s.pulledAt[origin] = now
}

// expirePulled forgets the pulls older than notePulled looks back, and
// the map once empty.
func (s *peerState) expirePulled(now time.Time) {
	for o, at := range s.pulledAt {
		if now.Sub(at) >= s.pullWindow() {
			delete(s.pulledAt, o)
		}
	}
	if len(s.pulledAt) == 0 {
		s.pulledAt = nil
	}
}

// askGrafted adds to each graft the messages not yet due that the grafted
// neighbour announced and nobody has been asked for: it will push from now
// on, but what it announced before the graft reached it, it will not. A
// peer that no eager link reached waited a flush interval for the first
// message's graft, and then another for the messages announced in the
// meantime (the load generator's 100 ms tail).
func (s *peerState) askGrafted(grafts map[string][]uint64, now time.Time) {
	for id, ms := range s.missing {
		if ms.tries > 0 || !now.Before(ms.deadline) {
			continue
		}
		for _, a := range ms.from {
			if _, ok := grafts[a]; ok {
				grafts[a] = append(grafts[a], uint64(id))
				ms.tries++
				ms.deadline = now.Add(s.cfg.graftTimeout)
				break
			}
		}
	}
}

func (s *peerState) neighborsSorted() []string { return *s.view.Load() }

// originate creates a gossip message with payload and sends it to every
// neighbour.
func (s *peerState) originate(payload []byte, now time.Time) {
	s.seq++
	m := &wireMsg{K: kindGossip, Origin: s.self, Seq: s.seq, Stamp: now.UnixNano(), Payload: payload}
	if s.cfg.signing {
		m.Key = s.pub
		m.Sig = ed25519.Sign(s.cfg.identity, signedBytes(m))
	}
	id := m.id()
	s.seen.add(id, now)
	s.originatedInWindow++
	to := s.neighborsSorted()
	s.push(id, m, "", nil, 0, now)
	s.cache.add(id, m, "", now)
	s.ctr.originated.Add(1)
	s.emit(Event{Kind: EventOriginated, Time: now, Origin: s.self, Seq: s.seq, Stamp: time.Unix(0, m.Stamp), Payload: payload, Peers: to})
}

// broadcast is Peer.Broadcast on the loop goroutine.
func (s *peerState) broadcast(payload []byte, now time.Time) error {
	if s.degree() == 0 {
		return ErrNoNeighbors
	}
	s.originate(payload, now)
	return nil
}

func (s *peerState) tick(now time.Time) {
	if s.stopped {
		return
	}
	s.tickRegistration(now)
	s.tickMissing(now)
	s.tickHeld(now)
	s.tickWaiting(now)
	if s.cfg.joinTimeout > 0 && !s.joined && !now.Before(s.started.Add(s.cfg.joinTimeout)) {
		var failed []string
		for _, a := range s.seeds {
			if s.links[a].state != seedRegistered {
				failed = append(failed, a)
			}
		}
		s.fx.fatal = &JoinError{Need: s.need, Registered: s.registeredSeeds(), Failed: failed}
		return
	}
	for a, d := range s.dialing {
		if !now.Before(d.deadline) {
			delete(s.dialing, a)
			s.refused[a] = true
		}
	}
	if !now.Before(s.nextGossip) {
		s.nextGossip = now.Add(s.cfg.gossipInterval)
		if s.originated < s.cfg.messages && s.degree() > 0 {
			s.originated++
			s.originate(s.cfg.messageFunc(now, s.self, s.originated), now)
		}
	}
	if !now.Before(s.nextLiveness) {
		s.nextLiveness = now.Add(s.cfg.livenessInterval)
		s.checkLiveness(now)
		s.seen.expire(now)
		s.cache.expire(now)
		s.expirePulled(now)
		if s.cfg.livenessRetry > 0 {
			s.nextRetry = now.Add(s.cfg.livenessRetry)
		}
	}
	if !s.nextRetry.IsZero() && !now.Before(s.nextRetry) {
		s.nextRetry = time.Time{}
		for _, a := range s.neighborsSorted() {
			if nb := s.nbrs[a]; nb.pingStamp != 0 {
				s.fx.send(a, &wireMsg{K: kindPing, Stamp: nb.pingStamp})
			}
		}
	}
	if !s.nextAE.IsZero() && !now.Before(s.nextAE) {
		s.nextAE = now.Add(s.cfg.antiEntropy)
		if nbrs := s.neighborsSorted(); len(nbrs) > 0 {
			s.sendDigest(nbrs[s.rng.IntN(len(nbrs))], now)
		}
	}
	if !now.Before(s.nextMaintain) {
		s.nextMaintain = now.Add(s.cfg.maintainInterval)
		if s.joined && s.degree() < s.cfg.minDegree {
			for _, a := range s.registeredSeeds() {
				s.fx.send(a, &wireMsg{K: kindPeerListReq})
			}
		}
		clear(s.refused)
		s.checkSilence(now)
		s.pruneLinkStamps(now)
	}
	if !now.Before(s.nextRefresh) {
		s.nextRefresh = now.Add(s.cfg.refreshInterval)
		for _, a := range s.registeredSeeds() {
			s.fx.send(a, s.registerMsg())
		}
	}
	s.fill(now)
}

func (s *peerState) tickRegistration(now time.Time) {
	expired := false
	for _, a := range s.seeds {
		l := s.links[a]
		if l.state == seedPending && !now.Before(l.deadline) {
			l.state = seedFailed
			expired = true
			s.log.Info("seed did not answer registration", "seed", a)
		}
	}
	if !s.retryAt.IsZero() && !now.Before(s.retryAt) {
		s.retryAt = time.Time{}
		for _, l := range s.links {
			if l.state == seedFailed {
				l.state = seedIdle
			}
		}
		expired = true
	}
	if expired && s.retryAt.IsZero() {
		s.register(now)
	}
}

// checkLiveness counts the unanswered requests of the last round and sends
// the next round.
//
// Local health, after Lifeguard: when most neighbours (at least two) miss
// at once and no seed answered this peer's own health check for two
// rounds, the likelier explanation is that this peer is cut off, so it
// accuses nobody and keeps checking.
func (s *peerState) checkLiveness(now time.Time) {
	var dying []string
	for _, a := range s.neighborsSorted() {
		nb := s.nbrs[a]
		if nb.pingStamp != 0 {
			nb.misses++
			s.log.Debug("liveness request unanswered", "peer", a, "misses", nb.misses)
			if nb.misses >= s.cfg.maxMisses {
				dying = append(dying, a)
			}
		}
		nb.pingStamp = now.UnixNano()
		s.log.Debug("liveness request", "to", a, "stamp", nb.pingStamp)
		s.fx.send(a, &wireMsg{K: kindPing, Stamp: nb.pingStamp})
	}
	isolated := now.Sub(s.lastSeedPong) > 2*s.cfg.livenessInterval
	if len(dying) >= 2 && 2*len(dying) > s.degree() && isolated {
		s.log.Warn("most neighbours and every seed silent: suspecting own link, reporting nobody",
			"silent", len(dying), "neighbours", s.degree())
		for _, a := range dying {
			s.nbrs[a].misses = s.cfg.maxMisses - 1
		}
		dying = nil
	}
	for _, a := range dying {
		s.declareDead(a, now)
	}
	// This round's health check of the seeds.
	if seeds := s.registeredSeeds(); len(seeds) > 0 {
		s.seedPing = now.UnixNano()
		for _, a := range seeds {
			s.fx.send(a, &wireMsg{K: kindPing, Stamp: s.seedPing})
		}
	}
}

// sendDigest offers to neighbour to the IDs of the messages this peer
// has held for a moment (newer ones may still be in flight to it).
func (s *peerState) sendDigest(to string, now time.Time) {
	if s.cfg.cacheSize == 0 {
		return
	}
	s.fx.send(to, &wireMsg{K: kindDigest, IDs: s.cache.ids(maxDigest)})
}

// digestGuard delays anti-entropy repairs of messages younger than this,
// both ways, so that a copy still in flight is not sent twice: a peer
// pushes only cached messages at least this old, and pulls a message it
// heard of in a digest only if it has not arrived this long after.
const digestGuard = time.Second

// checkSilence closes a silence window: when at least silenceMin new
// messages arrived in it, a neighbour linked for the whole window that
// sent no gossip frame at all (an honest one relays at least duplicates)
// is dropped and not dialed again for the ban duration. This defeats Sybils
// that accept links but forward nothing.
// explore dials one of the candidates, chosen uniformly, beyond its
// target, if the maximum degree allows.
func (s *peerState) explore(now time.Time) {
	if s.degree()+len(s.dialing) >= s.cfg.maxDegree {
		return
	}
	cands := s.candidates(now)
	if len(cands) == 0 {
		return
	}
	a := cands[s.rng.IntN(len(cands))]
	s.log.Info("no neighbour relays anything back; dialing one more", "peer", a)
	s.dialPeer(a, now)
}

// silenceOrigins is how many distinct origins the new messages of a
// window must have before silent neighbours are dropped.
const silenceOrigins = 3

func (s *peerState) checkSilence(now time.Time) {
	if s.cfg.silenceWindow == 0 || now.Sub(s.silenceFrom) < s.cfg.silenceWindow {
		return
	}
	// One or two origins are not enough to judge: a neighbour downstream
	// of this peer on every path from them relays nothing back to it,
	// honest or not (seen in the 10 000-peer simulator with one origin:
	// 11 % of the links dropped).
	if s.newInWindow >= s.cfg.silenceMin && len(s.originsInWindow) >= silenceOrigins {
		for _, a := range s.neighborsSorted() {
			nb := s.nbrs[a]
			if nb.gossipIn == 0 && !nb.since.After(s.silenceFrom) {
				s.log.Info("dropping a silent neighbour", "peer", a, "new_messages_from_others", s.newInWindow)
				s.shunned[a] = now.Add(s.cfg.banDuration)
				s.fx.send(a, &wireMsg{K: kindDisconnect})
				s.dropNeighbor(a, "silent: relayed nothing", now)
			}
		}
	}
	// Starvation: this peer sent messages of its own, yet no neighbour
	// sent it a single gossip frame, not even a duplicate. Every
	// neighbour may be silent, and then no new message from others ever
	// arrives to arm the check above: dial one more neighbour, chosen
	// uniformly, to reach the rest of the network. The check above drops
	// the silent ones once messages flow again.
	heard := 0
	for _, nb := range s.nbrs {
		heard += nb.gossipIn
	}
	if heard == 0 && s.originatedInWindow > 0 && s.degree() > 0 {
		s.explore(now)
	}
	for _, nb := range s.nbrs {
		nb.gossipIn = 0
	}
	s.silenceFrom, s.newInWindow, s.originatedInWindow = now, 0, 0
	clear(s.originsInWindow)
	s.originsInWindow = s.originsInWindow[:0]
	maps.DeleteFunc(s.shunned, func(_ string, until time.Time) bool { return !now.Before(until) })
}

// authentic checks a new signed message before it is delivered or
// forwarded: well-formed signature fields, a timestamp inside the replay
// window, the key the seeds list for its origin (when they list one), and
// a valid signature. A failure costs the sender reputation, since honest
// neighbours check the same before forwarding — except a key that merely
// disagrees with ours on a relayed message: the relayer may not know the
// origin's key at all, or know a newer one (the origin restarted). A
// disagreement makes this peer fetch fresh lists from its seeds.
func (s *peerState) authentic(from string, m *wireMsg, now time.Time) bool {
	reject := func(penalty float64, why string) bool {
		s.rep.add(from, penalty, now)
		s.log.Debug("dropping gossip", "from", from, "origin", m.Origin, "seq", m.Seq, "why", why)
		return false
	}
	if len(m.Key) != ed25519.PublicKeySize || len(m.Sig) != ed25519.SignatureSize {
		return reject(penaltyMalformed, "unsigned")
	}
	if age := now.Sub(time.Unix(0, m.Stamp)); age > s.cfg.maxAge() || age < -maxSkew {
		return reject(penaltyStale, "stamped outside the replay window")
	}
	if k, ok := s.keys[m.Origin]; ok && !bytes.Equal(k, m.Key) {
		s.refreshKeys(now)
		if from == m.Origin {
			return reject(penaltyForged, "own message signed with a key the seeds do not list")
		}
		return reject(0, "origin key differs from the seeds' (relayed)")
	}
	if !ed25519.Verify(m.Key, signedBytes(m), m.Sig) {
		return reject(penaltyBadSig, "bad signature")
	}
	return true
}

// allowOrigin applies the per-origin rate limit to a new message.
func (s *peerState) allowOrigin(origin string, now time.Time) bool {
	lim := s.originLim[origin]
	if lim == nil {
		if len(s.originLim) >= maxTracked {
			clear(s.originLim) // bounded; limits restart with a full burst
		}
		lim = rate.NewLimiter(rate.Limit(s.cfg.originRate), s.cfg.originBurst)
		s.originLim[origin] = lim
	}
	return lim.AllowN(now, 1)
}

// ban drops a node whose reputation fell to the threshold.
func (s *peerState) ban(addr string, now time.Time) {
	s.emit(Event{Kind: EventBanned, Time: now, Addr: addr})
	delete(s.known, addr)
	delete(s.dialing, addr)
	if _, ok := s.nbrs[addr]; ok {
		s.fx.send(addr, &wireMsg{K: kindDisconnect})
		s.dropNeighbor(addr, "banned", now)
	}
}

// onDigest pulls what the neighbour has and this peer lacks, and pushes
// what this peer has and the neighbour lacks (a copy sent earlier may have
// been lost), except what came from that neighbour.
func (s *peerState) onDigest(from string, m *wireMsg, now time.Time) {
	if _, ok := s.nbrs[from]; !ok {
		s.ctr.dropped.Add(1)
		s.fx.send(from, &wireMsg{K: kindDisconnect})
		return
	}
	has := make(map[msgID]bool, len(m.IDs))
	for _, id := range m.IDs {
		has[msgID(id)] = true
	}
	s.noteMissing(from, m.IDs, nil, now.Add(digestGuard))
	for _, e := range s.cache.entries(now.Add(-digestGuard)) {
		if !has[e.id] && e.from != from && e.msg.Origin != from {
			s.sendRepair(from, e.msg)
		}
	}
}

// onWant sends the requested messages that are still cached.
func (s *peerState) onWant(from string, m *wireMsg, now time.Time) {
	if _, ok := s.nbrs[from]; !ok {
		s.ctr.dropped.Add(1)
		return
	}
	for _, id := range m.IDs {
		if e := s.cache.get(msgID(id)); e != nil {
			s.sendRepair(from, e.msg)
		}
	}
}

func (s *peerState) declareDead(addr string, now time.Time) {
	seeds := s.registeredSeeds()
	for _, sd := range seeds {
		s.fx.send(sd, &wireMsg{K: kindDeadReport, Addr: addr, Stamp: now.UnixNano()})
	}
	s.ctr.deadReports.Add(1)
	s.log.Info("neighbour missed liveness checks; reported dead", "peer", addr, "misses", s.cfg.maxMisses)
	s.emit(Event{Kind: EventDeadReportSent, Time: now, Addr: addr, Stamp: now, Peers: seeds})
	delete(s.known, addr)
	s.dropNeighbor(addr, fmt.Sprintf("dead: %d liveness checks unanswered", s.cfg.maxMisses), now)
}

func (s *peerState) next() time.Time {
	if s.stopped {
		return time.Time{}
	}
	t := s.nextLiveness
	earliest := func(u time.Time) {
		if !u.IsZero() && u.Before(t) {
			t = u
		}
	}
	if s.originated < s.cfg.messages {
		earliest(s.nextGossip)
	}
	earliest(s.nextMaintain)
	earliest(s.nextRefresh)
	earliest(s.nextRetry)
	earliest(s.nextAE)
	earliest(s.nextFlush)
	earliest(s.missingDue)
	earliest(s.heldDue)
	earliest(s.waitDue())
	earliest(s.retryAt)
	for _, l := range s.links {
		if l.state == seedPending {
			earliest(l.deadline)
		}
	}
	for _, d := range s.dialing {
		earliest(d.deadline)
	}
	if s.cfg.joinTimeout > 0 && !s.joined {
		earliest(s.started.Add(s.cfg.joinTimeout))
	}
	return t
}

// stop leaves the network: seeds deregister the peer and neighbours drop
// it at once, so nobody has to detect it as dead.
func (s *peerState) stop(now time.Time) {
	if s.stopped {
		return
	}
	// A seed still answering a registration (a refresh, or a retry after
	// another seed went away) may accept it: tell it too.
	for _, a := range s.seeds {
		if st := s.links[a].state; st == seedRegistered || st == seedPending {
			s.fx.send(a, &wireMsg{K: kindLeave})
		}
	}
	for _, a := range s.neighborsSorted() {
		s.fx.send(a, &wireMsg{K: kindLeave})
	}
	// A peer still answering a connect may have taken the link already:
	// tell it too, or it would find this peer dead later.
	for _, a := range slices.Sorted(maps.Keys(s.dialing)) {
		s.fx.send(a, &wireMsg{K: kindLeave})
	}
	s.stopped = true
}
