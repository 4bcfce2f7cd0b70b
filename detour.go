package gossip

import (
	"strings"
	"time"
)

// Holding detoured copies (lazy push).
//
// A push lost on a tree link at 5 % loss leaves the subtree below it to
// get the message another way: over a second link still pushing to one of
// its peers, often one on a much longer path, or by a pull. The first of
// them relays the copy it got at once, and its whole subtree inherits the
// detour: in the simulator the deepest deliveries came over eager chains
// that wandered back towards the origin, peers 3 hops from it reached
// after 7 and more. Its lazy neighbours, though, announce the same
// message with their hop counts within a flush interval.
//
// So a peer that gets a message over a path at least detourSlack hops
// longer than the one it relayed the origin's previous message with holds
// it back from its eager links (it is delivered here at once, and
// announced at once on the lazy links): the first announcement of a path
// at least detourSlack hops shorter gets it pulled with a want, and that
// copy, with its hop count, is what the peer pushes. Without one it
// pushes what it has after two flush intervals. Only the hops it relayed
// with count as its usual path, not those announced: with several origins
// sharing one tree, a peer's path for one origin can be longer than its
// shortest for good, and judging by announcements held and pulled nearly
// every message of that origin (1.095-1.118 payloads per delivery with 10
// origins at n=1000 without loss, against 1.007-1.011).
//
// Measured on 2026-12-03 (simulator, one origin, 5 % loss; README,
// Performance): at n=10 000 11, 12 hops to the last peer (-rand 1, 3),
// against 12, 24 for the code before; at n=1000, see the README. A form
// that also held back the announcements, and pulled any shorter path,
// gave 17 and 13 at n=10 000 (-rand 1, 2), probably (not verified)
// because peers whose neighbours all held heard of the message late and
// pulled it, and the pulls regrafted the tree.

// originBest is, for one origin, the newest message this peer relayed and
// the fewest hops it relayed it with.
type originBest struct {
	seq  uint64
	hops int
}

// heldFwd is a message held back from this peer's links.
type heldFwd struct {
	msg   *wireMsg  // as it is to be relayed, and cached
	from  string    // the neighbour it came from, not relayed to
	skip  []string  // neighbours that announced it, not relayed to
	until time.Time // when it is relayed anyway
	asked bool      // a shorter copy was asked for
	// announced are the lazy links it was announced on when held.
	announced []string
}

const (
	// detourSlack is how many hops longer than the origin's previous
	// message a message must have come for it to be held.
	detourSlack = 2
	// maxHeld bounds the messages held at once; beyond it they are
	// relayed at once.
	maxHeld = 64
)

// noteBest records that this peer relayed origin's message seq with hops.
func (s *peerState) noteBest(origin string, seq uint64, hops int) {
	b, ok := s.bestHops[origin]
	if !ok {
		if len(s.bestHops) >= maxPulledOrigins {
			// Start over rather than never track a newer origin: a
			// forgotten origin's next message is relayed as it comes.
			clear(s.bestHops)
		}
		if s.bestHops == nil {
			s.bestHops = make(map[string]originBest)
		}
		s.bestHops[strings.Clone(origin)] = originBest{seq, hops}
		return
	}
	switch {
	case seq > b.seq:
		b = originBest{seq, hops}
	case seq == b.seq && hops < b.hops:
		b.hops = hops
	default:
		return
	}
	s.bestHops[origin] = b
}

// detoured reports whether origin's message seq, reaching this peer with
// hops, came over a detour: a path detourSlack hops longer than that of
// an earlier message of the origin as this peer relayed it.
func (s *peerState) detoured(origin string, seq uint64, hops int) bool {
	b, ok := s.bestHops[origin]
	return ok && b.seq < seq && hops >= b.hops+detourSlack
}

// hold holds m back from this peer's links, and reports false if too
// many messages are held already.
func (s *peerState) hold(id msgID, m *wireMsg, from string, skip []string, now time.Time) bool {
	if len(s.held) >= maxHeld {
		return false
	}
	if s.held == nil {
		s.held = make(map[msgID]*heldFwd)
	}
	h := &heldFwd{msg: m, from: from, skip: skip, until: now.Add(2 * s.cfg.lazyFlush)}
	s.held[id] = h
	// Announced at once on the lazy links; the links that are lazy by the
	// release and were not then are announced to then.
	h.announced = s.pushTo(id, m, from, skip, true, nil, now)
	if s.heldDue.IsZero() || h.until.Before(s.heldDue) {
		s.heldDue = h.until
	}
	return true
}

// releaseHeld relays held message id.
func (s *peerState) releaseHeld(id msgID, h *heldFwd, now time.Time) {
	delete(s.held, id)
	s.noteBest(h.msg.Origin, h.msg.Seq, h.msg.Hops)
	s.push(id, h.msg, h.from, append(h.skip, h.announced...), 0, now)
}

// tickHeld relays the held messages whose time is up.
func (s *peerState) tickHeld(now time.Time) {
	if s.heldDue.IsZero() || now.Before(s.heldDue) {
		return
	}
	s.heldDue = time.Time{}
	for id, h := range s.held {
		if !now.Before(h.until) {
			s.releaseHeld(id, h, now)
			continue
		}
		if s.heldDue.IsZero() || h.until.Before(s.heldDue) {
			s.heldDue = h.until
		}
	}
	if len(s.held) == 0 {
		s.held = nil
	}
}

// heldAnnounced asks from, which announced ids with hops, for those held
// here that it has over a shorter path, each of one announcer only.
func (s *peerState) heldAnnounced(from string, ids []uint64, hops []byte) {
	if len(hops) != len(ids) {
		return
	}
	for i, raw := range ids {
		id := msgID(raw)
		h := s.held[id]
		if h == nil || h.asked || int(hops[i])+1+detourSlack > h.msg.Hops {
			continue
		}
		h.asked = true
		s.fx.send(from, &wireMsg{K: kindWant, IDs: []uint64{raw}})
	}
}

// heldCopy relays a held message at once when a copy of it comes, from
// from, over a shorter path than the held one, with that copy's hops.
func (s *peerState) heldCopy(id msgID, from string, hops int, now time.Time) {
	h := s.held[id]
	if h == nil || hops >= h.msg.Hops {
		return
	}
	h.msg.Hops = hops
	h.skip = append(h.skip, from)
	s.releaseHeld(id, h, now)
}
