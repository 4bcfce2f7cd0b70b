package transport

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// inboxChanSize is the capacity of the channel that Packets returns. The
// rest of the inbox bound is a queue that grows with the backlog.
const inboxChanSize = 16

// inbox holds inbound frames until the consumer takes them from ch. It
// holds at most cap(ch) frames in the channel plus limit in an overflow
// queue, which grows with the backlog and is released once the inbox is
// idle (see maxKeptRing). A channel of the whole bound would keep a slot
// (40 bytes) per frame allocated, idle or not: 160 KiB at the default
// 4096.
//
// Order is kept per connection: a frame goes straight into ch only while
// the queue is empty, and the queue is drained into ch in order by a pump
// goroutine that runs only while the queue is non-empty.
//
// The queue is full when it holds limit frames, or when the next frame
// would take the payload bytes it holds past maxBytes; an empty queue
// takes any frame, so one larger than maxBytes is not shut out. The
// channel's frames are outside both bounds.
//
// When the queue is full, readers wait for room (see WithInboxWait): in
// the order they began waiting, except that room goes first to a waiting
// connection holding less than its fair share of the queue (limit divided
// by the connections with frames queued or waiting). The wait is bounded
// per episode of a full queue, not per frame: once the queue has been
// full for the wait, frames that find it full are dropped at once (and
// one from a connection over its share even when there is room) until the
// backlog falls to half the queue. A burst is absorbed whole if the
// consumer catches up within the wait; under sustained overload, readers
// keep draining their sockets, so frames do not pile up, unbounded in
// time, in socket buffers behind a blocked reader.
type inbox struct {
	ch       chan Packet
	limit    int           // frames the queue may hold
	maxBytes int           // payload bytes the queue may hold (see fits)
	wait     time.Duration // the bound on an episode's waits (WithInboxWait)
	ctx      context.Context
	start    func(func()) // runs the pump on a goroutine the transport tracks
	// dropped counts the frames the pump discards when ctx ends; waits
	// counts the puts that had to wait, and onWait, if set, is called as
	// one starts waiting.
	dropped, waits *atomic.Uint64
	onWait         func(from string)

	mu        sync.Mutex
	ring      []queued // the queue: ring[head], ... (n frames, wrapping)
	head, n   int
	pending   int         // n, plus the frame in the pump's hands
	bytes     int         // the payload bytes of those pending frames
	pumping   bool        // the pump goroutine runs
	active    int         // sources with frames in the queue
	waiters   []waitEntry // FIFO: the sources whose reader waits, with their frame
	fullSince time.Time   // start of the current episode of a full inbox; zero if none
}

type queued struct {
	p   Packet
	src *inboxSource
}

type waitEntry struct {
	src *inboxSource
	p   Packet
}

// inboxSource is an inbound connection as the inbox sees it. Its fields
// are under the inbox's mu, except ready.
type inboxSource struct {
	queued  int           // its frames in the queue
	waiting bool          // its reader waits for room, in waiters
	ready   chan struct{} // capacity 1: its waiting frame was queued; created on first wait
}

// newInbox returns an inbox of size frames, of which the channel holds
// up to inboxChanSize. When ctx ends, put stops waiting and the pump
// discards the queue. The caller sets the counters and start.
func newInbox(ctx context.Context, size, maxBytes int, wait time.Duration) *inbox {
	c := min(size, inboxChanSize)
	return &inbox{ch: make(chan Packet, c), limit: size - c, maxBytes: maxBytes, wait: wait, ctx: ctx}
}

// fits reports whether the queue has room for a frame of size payload
// bytes. The caller holds mu.
func (in *inbox) fits(size int) bool {
	return in.pending < in.limit && (in.pending == 0 || in.bytes+size <= in.maxBytes)
}

// put adds p, from src, to the inbox and reports whether it did. When the
// inbox is full it may wait for room (see inbox), blocking the calling
// connection's reader, so that TCP flow control slows its sender. The
// caller counts a drop.
func (in *inbox) put(p Packet, src *inboxSource) bool {
	in.mu.Lock()
	if in.pending == 0 {
		select {
		case in.ch <- p:
			in.fullSince = time.Time{}
			in.mu.Unlock()
			return true
		default:
		}
	}
	if in.limit == 0 {
		in.mu.Unlock()
		return in.waitChan(p)
	}
	if in.fits(len(p.Payload)) {
		if !in.fullSince.IsZero() && !in.fair(src) && in.shedding(time.Now()) {
			in.mu.Unlock()
			return false
		}
		in.enqueue(p, src)
		in.mu.Unlock()
		return true
	}
	now := time.Now()
	if in.fullSince.IsZero() {
		in.fullSince = now
	}
	left := in.wait - now.Sub(in.fullSince)
	if left <= 0 {
		in.mu.Unlock()
		return false
	}
	if src.ready == nil {
		src.ready = make(chan struct{}, 1)
	}
	src.waiting = true
	in.waiters = append(in.waiters, waitEntry{src, p})
	in.mu.Unlock()
	return in.await(src, left, p.From)
}

// await waits up to d for admit to queue the frame src waits with, and
// reports whether it did. It is out of put, off the reader's usual path,
// because its timer and select take stack.
//
//go:noinline
func (in *inbox) await(src *inboxSource, d time.Duration, from string) bool {
	in.waits.Add(1)
	if in.onWait != nil {
		in.onWait(from)
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-src.ready:
		return true
	case <-timer.C:
	case <-in.ctx.Done():
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if !src.waiting {
		<-src.ready // admitted as the wait ended
		return true
	}
	src.waiting = false
	in.waiters = slices.DeleteFunc(in.waiters, func(w waitEntry) bool { return w.src == src })
	if len(in.waiters) == 0 {
		in.waiters = nil
	}
	return false
}

// waitChan handles a full inbox without a queue (a size up to
// inboxChanSize): it waits on the channel itself, whose blocked senders
// are served in order, with the same bound per episode.
//
//go:noinline
func (in *inbox) waitChan(p Packet) bool {
	in.mu.Lock()
	now := time.Now()
	if in.fullSince.IsZero() {
		in.fullSince = now
	}
	left := in.wait - now.Sub(in.fullSince)
	in.mu.Unlock()
	if left <= 0 {
		return false
	}
	in.waits.Add(1)
	if in.onWait != nil {
		in.onWait(p.From)
	}
	timer := time.NewTimer(left)
	defer timer.Stop()
	select {
	case in.ch <- p:
		in.mu.Lock()
		if len(in.ch) < cap(in.ch)/2+1 {
			in.fullSince = time.Time{}
		}
		in.mu.Unlock()
		return true
	case <-timer.C:
	case <-in.ctx.Done():
	}
	return false
}

// fair reports whether src holds less than its share of the queue. The
// caller holds mu.
func (in *inbox) fair(src *inboxSource) bool {
	return src.queued == 0 || src.queued < in.limit/max(in.active, 1)
}

// shedding reports whether the current episode of a full inbox has
// lasted the wait. The caller holds mu.
func (in *inbox) shedding(now time.Time) bool {
	return !in.fullSince.IsZero() && now.Sub(in.fullSince) >= in.wait
}

// enqueue appends p, from src, to the queue and starts the pump unless it
// runs. The caller holds mu and has checked that there is room.
func (in *inbox) enqueue(p Packet, src *inboxSource) {
	if in.n == len(in.ring) {
		grown := make([]queued, max(2*len(in.ring), 8))
		k := copy(grown, in.ring[in.head:])
		copy(grown[k:], in.ring[:in.head])
		in.ring, in.head = grown, 0
	}
	in.ring[(in.head+in.n)%len(in.ring)] = queued{p, src}
	in.n++
	in.pending++
	in.bytes += len(p.Payload)
	if src.queued++; src.queued == 1 {
		in.active++
	}
	if !in.pumping {
		in.pumping = true
		in.start(in.pump)
	}
}

// admit gives the room freed by a delivery to a waiting source: the
// first holding less than its share of the queue, or else the first. The
// share divides the queue among the sources that have frames queued or
// waiting. It reports whether it queued a frame: not when the one picked
// does not fit, which then waits for more deliveries (once the queue is
// empty, any frame fits). The caller holds mu.
func (in *inbox) admit() bool {
	contenders := in.active
	for _, w := range in.waiters {
		if w.src.queued == 0 {
			contenders++
		}
	}
	share := in.limit / max(contenders, 1)
	pick := 0
	for i, w := range in.waiters {
		if w.src.queued < share {
			pick = i
			break
		}
	}
	w := in.waiters[pick]
	if !in.fits(len(w.p.Payload)) {
		return false
	}
	in.waiters = slices.Delete(in.waiters, pick, pick+1)
	if len(in.waiters) == 0 {
		in.waiters = nil
	}
	w.src.waiting = false
	in.enqueue(w.p, w.src)
	w.src.ready <- struct{}{}
	return true
}

// maxKeptRing bounds, in frames, the queue's buffer that the pump keeps
// when the backlog drains, for the next one; the idle sweep releases it
// once the inbox has stayed idle (see trim). A larger one is released at
// once.
const maxKeptRing = 1024

// pump moves the queue into ch in order and exits once it is empty. When
// the context ends it discards the queue, counting it as dropped.
func (in *inbox) pump() {
	in.mu.Lock()
	for {
		if in.n == 0 {
			in.pumping = false
			if len(in.ring) > maxKeptRing {
				in.ring, in.head = nil, 0
			}
			in.mu.Unlock()
			return
		}
		q := in.ring[in.head]
		in.ring[in.head] = queued{}
		in.head = (in.head + 1) % len(in.ring)
		in.n--
		in.mu.Unlock()
		select {
		case in.ch <- q.p:
		default:
			select {
			case in.ch <- q.p:
			case <-in.ctx.Done():
				in.dropped.Add(uint64(in.discard()))
				return
			}
		}
		in.mu.Lock()
		in.pending--
		in.bytes -= len(q.p.Payload)
		if q.src.queued--; q.src.queued == 0 {
			in.active--
		}
		// A delivery frees one frame's room, and its bytes may make room
		// for several smaller frames.
		for len(in.waiters) > 0 && in.admit() {
		}
		if in.pending <= in.limit/2 && in.bytes <= in.maxBytes/2 {
			in.fullSince = time.Time{}
		}
	}
}

// trim releases the queue's buffer if the inbox holds nothing in it. The
// idle sweep calls it.
func (in *inbox) trim() {
	in.mu.Lock()
	if !in.pumping && in.n == 0 {
		in.ring, in.head = nil, 0
	}
	in.mu.Unlock()
}

// discard empties the queue when the transport closes and reports how
// many frames it held, the one in the pump's hands included.
func (in *inbox) discard() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	dropped := in.pending
	clear(in.ring)
	in.ring, in.head, in.n, in.pending, in.bytes, in.pumping = nil, 0, 0, 0, 0, false
	return dropped
}
