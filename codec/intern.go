package codec

import (
	"hash/maphash"
	"sync/atomic"
)

// The fast decoder turns short strings into Go strings through a small,
// fixed-size cache of recently decoded ones. The strings of the gossip
// protocol are mostly addresses (the origin of a message, the peers of a
// list) drawn from a small set, so most decodes find their string in the
// cache and allocate nothing; without it every frame allocated its origin
// anew.
//
// Sharing is invisible to callers: Go strings are immutable, and a cached
// string is only ever returned for input bytes equal to it. The cache holds
// at most internSlots strings of at most internMaxLen bytes (its memory is
// bounded whatever the input), never holds the caller's input itself, and
// is safe for concurrent use. A string enters the cache the second time in
// a row it misses its slot, so that input made of ever new strings (which
// would only churn the cache) costs the one allocation it always did, plus
// a hash.

const (
	internSlots  = 1024 // a power of two
	internMaxLen = 64
)

type internSlot struct {
	s    atomic.Pointer[string]
	last atomic.Uint32 // tag of the last string that missed this slot
}

var (
	internSeed  = maphash.MakeSeed()
	internTable [internSlots]internSlot
)

// internBytes returns string(b), from the cache when it holds it.
func internBytes(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > internMaxLen {
		return string(b)
	}
	h := maphash.Bytes(internSeed, b)
	slot := &internTable[h&(internSlots-1)]
	if p := slot.s.Load(); p != nil && *p == string(b) {
		return *p
	}
	s := string(b)
	tag := uint32(h>>32) | 1 // never 0, the initial value
	if slot.last.Load() == tag {
		// Seen twice in a row: keep it.
		p := new(string)
		*p = s
		slot.s.Store(p)
	} else {
		slot.last.Store(tag)
	}
	return s
}
