package gossip

import "time"

// Waiting before relaying (WithRelayWait).
//
// A flooding peer relays a message the moment its first copy comes, so
// the copies its other neighbours send it a moment later are spent: each
// is one this peer then sends back the other way, and each, with
// self-pruning, names neighbours this peer need not send to. Waiting a
// little lets those copies count. The message is delivered here at once;
// only the relay waits. When it goes, it skips every neighbour a copy
// came from, and, with self-pruning, every neighbour one of them shares
// with this peer under the list that copy was sent with.
//
// No delivery is lost while links hold, frames are not lost and no copy
// reaches the hop limit (WithMaxHops). Say a peer B never gets message m. Of the peers that got m
// and had B in their neighbour list when they relayed it, take the one
// that relayed first, Y (the origin relays as it sends). Y skips B only if
// B sent Y a copy, so B has m, or if some A sent Y a copy before Y relayed
// and A's list, as A relayed under it, holds B: then A relayed before Y,
// with B in its list, and Y was not the first. So Y sends B m. And some
// peer with B in its list gets m, or no neighbour of B ever does, which
// in a connected overlay means nobody did. pushTo's comment argues the
// case without a wait along the path m took instead.

// maxWaiting bounds the messages waiting to be relayed at once; beyond
// it a message is relayed as it comes.
const maxWaiting = 1024

// relayCopy is a copy of a waiting message: the neighbour it came from,
// and the list version it was relayed under (wireMsg.NV).
type relayCopy struct {
	from string
	nv   uint64
}

// waitFwd is a message waiting to be relayed.
type waitFwd struct {
	id     msgID
	msg    *wireMsg    // as it is to be relayed, and cached
	copies []relayCopy // the first copy's sender first
	until  time.Time
}

// relayWaits reports whether this peer waits before relaying.
func (s *peerState) relayWaits() bool { return s.cfg.relayWait > 0 && !s.cfg.lazy }

// wait queues m, which came first from neighbour from under list version
// nv, to be relayed after the relay wait. It reports false if the peer
// does not wait or too many messages wait already: m is to be relayed now.
func (s *peerState) wait(id msgID, m *wireMsg, from string, nv uint64, now time.Time) bool {
	if !s.relayWaits() || len(s.waiting) >= maxWaiting {
		return false
	}
	if s.waiting == nil {
		s.waiting = make(map[msgID]*waitFwd)
	}
	w := &waitFwd{id: id, msg: m, copies: []relayCopy{{from, nv}}, until: now.Add(s.cfg.relayWait)}
	s.waiting[id] = w
	// Every wait is as long, so the queue is in order of release.
	s.waitQ = append(s.waitQ, w)
	return true
}

// waitedCopy records another copy of message id, from neighbour from under
// list version nv, if the message is waiting.
func (s *peerState) waitedCopy(id msgID, from string, nv uint64) {
	if w := s.waiting[id]; w != nil && len(w.copies) < s.cfg.maxDegree {
		w.copies = append(w.copies, relayCopy{from, nv})
	}
}

// waitDue is when the first waiting message is due (zero: none waits).
func (s *peerState) waitDue() time.Time {
	if len(s.waitQ) == 0 {
		return time.Time{}
	}
	return s.waitQ[0].until
}

// tickWaiting relays the waiting messages whose time is up.
func (s *peerState) tickWaiting(now time.Time) {
	n := 0
	for _, w := range s.waitQ {
		if now.Before(w.until) {
			break
		}
		n++
		delete(s.waiting, w.id)
		s.pushTo(w.id, w.msg, w.copies[0].from, nil, false, w.copies, now)
	}
	if n == 0 {
		return
	}
	clear(s.waitQ[:n])
	s.waitQ = s.waitQ[n:]
	if len(s.waitQ) == 0 {
		s.waitQ, s.waiting = nil, nil
	}
}
