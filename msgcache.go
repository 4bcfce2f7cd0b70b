package gossip

import "time"

// msgCache keeps recent gossip messages for anti-entropy, with the
// neighbour each one came from. It is bounded in entries and age; entries
// are kept in arrival order so eviction pops the oldest. Like seenSet, it
// starts empty and gives back a burst's memory once the burst has expired.
//
// With lazy push it also answers grafts, which come up to a few graft
// timeouts after a message: an entry younger than hold is not evicted to
// make room, so the cache may then grow past max, up to hard entries.
// Without that floor, a burst faster than max per graft timeout evicted
// the messages before their grafts came, and the peers that had missed
// them never got them (the load generator at 5000 messages a second).
type msgCache struct {
	max   int
	hard  int           // bound on entries, with those younger than hold
	hold  time.Duration // entries younger than this stay beyond max
	ttl   time.Duration
	byID  map[msgID]*cacheEntry
	order []*cacheEntry // FIFO; order[head:] are live
	head  int
	peak  int // most live entries since byID was last built
}

type cacheEntry struct {
	id   msgID
	at   time.Time
	msg  *wireMsg // as this peer forwards it (Hops included)
	from string   // the neighbour of the shortest copy; "" if originated here
	hops int      // hops of that copy on arrival here
}

// cacheHoldFactor bounds a cache holding entries for a repair window:
// at most cacheHoldFactor times its size.
const cacheHoldFactor = 4

// newMsgCache returns a cache of max entries kept for ttl; entries
// younger than hold stay beyond max, up to cacheHoldFactor×max.
func newMsgCache(max int, ttl, hold time.Duration) *msgCache {
	return &msgCache{max: max, hard: cacheHoldFactor * max, hold: min(hold, ttl), ttl: ttl,
		byID: make(map[msgID]*cacheEntry)}
}

func (c *msgCache) add(id msgID, m *wireMsg, from string, now time.Time) {
	if c.max == 0 {
		return
	}
	if _, ok := c.byID[id]; ok {
		return
	}
	c.expire(now)
	if len(c.byID) >= c.hard || (len(c.byID) >= c.max && !c.oldestHeld(now)) {
		c.pop()
	}
	e := &cacheEntry{id: id, at: now, msg: m, from: from, hops: m.Hops}
	c.byID[id] = e
	c.order = append(c.order, e)
	c.peak = max(c.peak, len(c.byID))
}

func (c *msgCache) get(id msgID) *cacheEntry { return c.byID[id] }

// ids returns the IDs of the cached messages, oldest first, at most limit
// of the newest.
func (c *msgCache) ids(limit int) []uint64 {
	live := c.order[c.head:]
	live = live[max(0, len(live)-limit):]
	out := make([]uint64, len(live))
	for i, e := range live {
		out[i] = uint64(e.id)
	}
	return out
}

// entries returns the cached entries that arrived at or before cutoff.
func (c *msgCache) entries(cutoff time.Time) []*cacheEntry {
	live := c.order[c.head:]
	end := len(live)
	for end > 0 && live[end-1].at.After(cutoff) {
		end--
	}
	return live[:end]
}

// expire drops the entries older than ttl, and those beyond max older
// than hold.
func (c *msgCache) expire(now time.Time) {
	for c.head < len(c.order) && now.Sub(c.order[c.head].at) >= c.ttl {
		c.pop()
	}
	for len(c.byID) > c.max && !c.oldestHeld(now) {
		c.pop()
	}
}

// oldestHeld reports whether the oldest entry is younger than hold.
func (c *msgCache) oldestHeld(now time.Time) bool {
	return c.head < len(c.order) && now.Sub(c.order[c.head].at) < c.hold
}

func (c *msgCache) pop() {
	delete(c.byID, c.order[c.head].id)
	c.order[c.head] = nil
	c.head++
	if c.head > 256 && c.head*2 > len(c.order) {
		n := copy(c.order, c.order[c.head:])
		clear(c.order[n:])
		c.order = c.order[:n]
		c.head = 0
	}
	if c.peak >= shrinkMin && len(c.byID) < c.peak/4 {
		c.shrink()
	}
}

// shrink rebuilds the map and the queue at the live size (see seenSet).
func (c *msgCache) shrink() {
	byID := make(map[msgID]*cacheEntry, len(c.byID))
	for id, e := range c.byID {
		byID[id] = e
	}
	c.byID = byID
	c.order = append([]*cacheEntry(nil), c.order[c.head:]...)
	c.head = 0
	c.peak = len(byID)
}
