package gossip

import "slices"

// Self-pruning (WithSelfPruning): a flooding peer that got a message from
// neighbour A does not forward it to the neighbours it shares with A,
// which A forwarded it to itself. Each peer tells its neighbours whom it is
// linked to (kindNeighbors) whenever that changes, numbering its lists,
// and stamps the gossip it sends with the number of its latest list (NV).
// A peer prunes for A's message only if it holds that very list of A's,
// so a list lost on the way (a full inbox drops frames) stops the pruning
// instead of misleading it; and a link counts only when both its ends
// claim it. See pushTo for why no delivery is lost.

// selfPruning reports whether this peer prunes its floods.
func (s *peerState) selfPruning() bool { return s.cfg.selfPruning && !s.cfg.lazy }

// linked reports whether neighbour nb claims a link to a.
func linked(nb *neighbor, a string) bool {
	if nb == nil {
		return false
	}
	_, ok := slices.BinarySearch(nb.claims, a)
	return ok
}

// tellNeighbors sends the sorted neighbour list v to every neighbour in it
// but except (a new inbound neighbour, told after its connect-ack: see
// tellNeighbor). It is called before anything else is sent after a change,
// so a neighbour never gets gossip sent without a link while it still
// believes the link is there.
func (s *peerState) tellNeighbors(v []string, except string) {
	if !s.selfPruning() {
		return
	}
	s.listVersion++
	m := s.neighborsMsg(v)
	for _, a := range v {
		if a != except {
			s.fx.send(a, m)
		}
	}
}

// tellNeighbor sends this peer's neighbour list to neighbour a alone.
func (s *peerState) tellNeighbor(a string) {
	if s.selfPruning() {
		s.fx.send(a, s.neighborsMsg(s.neighborsSorted()))
	}
}

func (s *peerState) neighborsMsg(v []string) *wireMsg {
	peers := make([]wirePeer, len(v))
	for i, a := range v {
		peers[i].Addr = a
	}
	return &wireMsg{K: kindNeighbors, Seq: s.listVersion, Peers: peers}
}

// onNeighbors records the links neighbour from claims. Beyond this peer's
// own maximum degree, only the claims of links to its current neighbours
// are kept: a missing claim costs a pruned copy, never a delivery. Claims
// from a non-neighbour (a list that crossed our connect-ack, or a stale
// view) are ignored.
func (s *peerState) onNeighbors(from string, m *wireMsg) {
	nb := s.nbrs[from]
	if nb == nil || !s.selfPruning() {
		return
	}
	keepAll := len(m.Peers) <= s.cfg.maxDegree
	claims := nb.claims[:0]
	for _, p := range m.Peers {
		if p.Addr == "" || p.Addr == from {
			continue
		}
		if !keepAll {
			if _, ok := s.nbrs[p.Addr]; !ok {
				continue
			}
		}
		claims = append(claims, p.Addr)
	}
	slices.Sort(claims)
	nb.claims = slices.Clip(slices.Compact(claims))
	nb.claimsVersion = m.Seq
	if len(nb.claims) > s.cfg.maxDegree {
		nb.claims = nb.claims[:s.cfg.maxDegree]
	}
}

// sendRepair sends cached message m to neighbour to for anti-entropy,
// without a list version: to, which may be the first to get it from this
// peer long after this peer forwarded it, must not take it that this peer
// forwarded it to their shared neighbours meanwhile.
func (s *peerState) sendRepair(to string, m *wireMsg) {
	if m.NV != 0 {
		r := *m
		r.NV = 0
		m = &r
	}
	s.fx.send(to, m)
	s.ctr.repaired.Add(1)
}
