package gossip

import "time"

// seenSet remembers message IDs for a bounded time and count. Entries are
// kept in arrival order, so expiry and eviction both pop the oldest.
type seenSet struct {
	max   int
	ttl   time.Duration
	ids   map[msgID]struct{}
	order []seenEntry // FIFO; order[head:] are live
	head  int
}

type seenEntry struct {
	id msgID
	at time.Time
}

func newSeenSet(max int, ttl time.Duration) *seenSet {
	return &seenSet{max: max, ttl: ttl, ids: make(map[msgID]struct{})}
}

// add records id and reports whether it was new.
func (s *seenSet) add(id msgID, now time.Time) bool {
	if _, ok := s.ids[id]; ok {
		return false
	}
	s.expire(now)
	if len(s.ids) >= s.max {
		s.pop()
	}
	s.ids[id] = struct{}{}
	s.order = append(s.order, seenEntry{id, now})
	return true
}

func (s *seenSet) contains(id msgID) bool {
	_, ok := s.ids[id]
	return ok
}

func (s *seenSet) len() int { return len(s.ids) }

// expire drops entries older than the ttl.
func (s *seenSet) expire(now time.Time) {
	for s.head < len(s.order) && now.Sub(s.order[s.head].at) >= s.ttl {
		s.pop()
	}
}

func (s *seenSet) pop() {
	delete(s.ids, s.order[s.head].id)
	s.order[s.head] = seenEntry{}
	s.head++
	// Compact once the dead prefix dominates, keeping appends amortised O(1).
	if s.head > 1024 && s.head*2 > len(s.order) {
		n := copy(s.order, s.order[s.head:])
		clear(s.order[n:])
		s.order = s.order[:n]
		s.head = 0
	}
}
