package gossip

import "time"

// msgCache keeps recent gossip messages for anti-entropy, with the
// neighbour each one came from. It is bounded in entries and age; entries
// are kept in arrival order so eviction pops the oldest. Like seenSet, it
// starts empty and gives back a burst's memory once the burst has expired.
type msgCache struct {
	max   int
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

func newMsgCache(max int, ttl time.Duration) *msgCache {
	return &msgCache{max: max, ttl: ttl, byID: make(map[msgID]*cacheEntry)}
}

func (c *msgCache) add(id msgID, m *wireMsg, from string, now time.Time) {
	if c.max == 0 {
		return
	}
	if _, ok := c.byID[id]; ok {
		return
	}
	c.expire(now)
	if len(c.byID) >= c.max {
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

func (c *msgCache) expire(now time.Time) {
	for c.head < len(c.order) && now.Sub(c.order[c.head].at) >= c.ttl {
		c.pop()
	}
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
