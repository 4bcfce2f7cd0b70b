package gossip

import "time"

// seenSet remembers message IDs for a bounded time and count. Entries are
// kept in arrival order, so expiry and eviction both pop the oldest.
//
// The map and the queue start empty and grow with the entries. A Go map
// never gives back the room its deletes free, so once a burst has expired
// (the live entries fell below a quarter of their peak) both are rebuilt
// at their live size: an idle peer does not keep a burst's memory.
type seenSet struct {
	max   int
	ttl   time.Duration
	ids   map[msgID]struct{}
	order []seenEntry // FIFO; order[head:] are live
	head  int
	peak  int // most live entries since ids was last built
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
	s.peak = max(s.peak, len(s.ids))
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
	if s.peak >= shrinkMin && len(s.ids) < s.peak/4 {
		s.shrink()
	}
}

// shrinkMin is the smallest peak, in entries, from which the seen set and
// the message cache shrink: below it the memory at stake is a few KiB.
const shrinkMin = 1024

// shrink rebuilds the map and the queue at the live size. It costs O(live)
// after at least three times as many pops: amortised O(1).
func (s *seenSet) shrink() {
	ids := make(map[msgID]struct{}, len(s.ids))
	for id := range s.ids {
		ids[id] = struct{}{}
	}
	s.ids = ids
	s.order = append([]seenEntry(nil), s.order[s.head:]...)
	s.head = 0
	s.peak = len(ids)
}
