package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// defaultMemInbox is the default capacity of a Mem transport's Packets channel.
const defaultMemInbox = 4096

// Fault describes how a directed link misbehaves. The zero Fault is a
// perfect link.
type Fault struct {
	// Drop is the probability, from 0 to 1, that a frame is lost. Values
	// outside that range are clamped; NaN counts as 0.
	Drop float64
	// Latency delays every frame by this much. Negative values count as 0;
	// values above about 73 years are capped.
	Latency time.Duration
	// Jitter adds a uniformly random extra delay in [0, Jitter] to each
	// frame. Frames on a link with jitter may be reordered.
	Jitter time.Duration
}

type link struct{ from, to string }

// Network is an in-process network of [Mem] transports with injectable
// faults: per-link loss, latency and jitter, partitions, crashed nodes and a
// frame filter. It is built only on channels, a mutex and time.AfterFunc,
// so it runs under testing/synctest with virtual time; create the Network
// inside the synctest bubble. All randomness comes from one generator seeded
// by NewNetwork and used under the network's lock, so for a given order of
// sends the loss and delay decisions are reproducible.
//
// A frame is lost, silently as on a real network, if its link is cut
// (partition or crash) when it is sent or when it arrives, if the fault's
// Drop chance says so, if the filter rejects it, or if the destination is
// closed. A Network is safe for concurrent use.
type Network struct {
	mu        sync.Mutex
	rng       *rand.Rand
	nodes     map[string]*Mem // latest transport per address, open or closed
	faults    map[link]Fault
	def       Fault
	groups    map[string]int // partition group per listed addr; nil when healed
	crashed   map[string]bool
	filter    func(from, to string, frame []byte) bool
	inboxSize int

	delivered atomic.Uint64
}

// NewNetwork returns an empty network whose random decisions are drawn from
// a PCG generator seeded with seed.
func NewNetwork(seed uint64) *Network {
	return &Network{
		rng:       rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		nodes:     make(map[string]*Mem),
		faults:    make(map[link]Fault),
		crashed:   make(map[string]bool),
		inboxSize: defaultMemInbox,
	}
}

// SetInboxSize sets the Packets channel capacity of transports created after
// the call (default 4096). Sizes below 1 count as 1.
func (n *Network) SetInboxSize(size int) {
	n.mu.Lock()
	n.inboxSize = max(size, 1)
	n.mu.Unlock()
}

// NewTransport attaches a transport at addr. It returns an error wrapping
// ErrAddrInUse if a transport at addr is open. The address of a closed
// transport can be reused, which models a node restart; frames still in
// flight to the old transport are lost.
func (n *Network) NewTransport(addr string) (*Mem, error) {
	if addr == "" {
		return nil, errors.New("transport: empty address")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if old, ok := n.nodes[addr]; ok && !old.closed {
		return nil, fmt.Errorf("transport: new transport %q: %w", addr, ErrAddrInUse)
	}
	m := &Mem{net: n, addr: addr, inbox: make(chan Packet, n.inboxSize)}
	n.nodes[addr] = m
	return m, nil
}

// SetFault sets the fault of the directed link from → to, overriding the
// default fault for that link.
func (n *Network) SetFault(from, to string, f Fault) {
	n.mu.Lock()
	n.faults[link{from, to}] = f.normalize()
	n.mu.Unlock()
}

// ClearFault removes the fault set by SetFault for from → to, so the link
// follows the default fault again.
func (n *Network) ClearFault(from, to string) {
	n.mu.Lock()
	delete(n.faults, link{from, to})
	n.mu.Unlock()
}

// SetDefaultFault sets the fault of every link without its own SetFault.
func (n *Network) SetDefaultFault(f Fault) {
	n.mu.Lock()
	n.def = f.normalize()
	n.mu.Unlock()
}

// Partition splits the network: nodes in different groups cannot exchange
// frames, and nodes not listed in any group form one more group. It replaces
// any earlier partition. An address listed twice belongs to its last group.
func (n *Network) Partition(groups ...[]string) {
	g := make(map[string]int)
	for i, group := range groups {
		for _, addr := range group {
			g[addr] = i + 1 // unlisted addresses read as group 0
		}
	}
	n.mu.Lock()
	n.groups = g
	n.mu.Unlock()
}

// Heal removes the partition.
func (n *Network) Heal() {
	n.mu.Lock()
	n.groups = nil
	n.mu.Unlock()
}

// Crash makes addr unreachable: frames to and from it are silently lost,
// though its transport stays open, as for a frozen process or a cut cable.
func (n *Network) Crash(addr string) {
	n.mu.Lock()
	n.crashed[addr] = true
	n.mu.Unlock()
}

// Restore undoes Crash for addr.
func (n *Network) Restore(addr string) {
	n.mu.Lock()
	delete(n.crashed, addr)
	n.mu.Unlock()
}

// SetFilter installs fn, called for every frame that survived loss,
// partitions and crashes, just before it is scheduled for delivery; if fn
// returns false the frame is dropped. fn is called on the sender's goroutine,
// outside the network's lock, possibly from many goroutines at once, so it
// must be safe for concurrent use; it must not retain or modify frame. A nil
// fn removes the filter.
func (n *Network) SetFilter(fn func(from, to string, frame []byte) bool) {
	n.mu.Lock()
	n.filter = fn
	n.mu.Unlock()
}

// Frames returns how many frames the network has placed in Packets channels.
func (n *Network) Frames() uint64 { return n.delivered.Load() }

// maxDelay caps Latency and Jitter so that their sum cannot overflow.
const maxDelay = time.Duration(math.MaxInt64 / 4)

func (f Fault) normalize() Fault {
	if math.IsNaN(f.Drop) {
		f.Drop = 0
	}
	f.Drop = min(max(f.Drop, 0), 1)
	f.Latency = min(max(f.Latency, 0), maxDelay)
	f.Jitter = min(max(f.Jitter, 0), maxDelay)
	return f
}

// cut reports whether from and to cannot talk. The caller holds n.mu.
func (n *Network) cut(from, to string) bool {
	return n.crashed[from] || n.crashed[to] || (n.groups != nil && n.groups[from] != n.groups[to])
}

func (n *Network) send(src *Mem, to string, frame []byte) error {
	n.mu.Lock()
	if src.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	dst, ok := n.nodes[to]
	if !ok {
		n.mu.Unlock()
		return fmt.Errorf("transport: send to %q: %w", to, ErrUnknownAddr)
	}
	src.sent.Add(1)
	lost := dst.closed || n.cut(src.addr, to)
	var delay time.Duration
	if !lost {
		f, ok := n.faults[link{src.addr, to}]
		if !ok {
			f = n.def
		}
		if f.Drop > 0 && n.rng.Float64() < f.Drop {
			lost = true
		} else {
			delay = f.Latency
			if f.Jitter > 0 {
				delay += time.Duration(n.rng.Int64N(int64(f.Jitter) + 1))
			}
		}
	}
	filter := n.filter
	n.mu.Unlock()

	if lost {
		src.lost.Add(1)
		return nil
	}
	pkt := Packet{From: src.addr, Payload: bytes.Clone(frame)}
	if filter != nil && !filter(src.addr, to, pkt.Payload) {
		src.lost.Add(1)
		return nil
	}
	if delay == 0 {
		n.arrive(src, dst, pkt)
		return nil
	}
	time.AfterFunc(delay, func() {
		n.mu.Lock()
		lost := dst.closed || n.cut(src.addr, dst.addr)
		n.mu.Unlock()
		if lost {
			src.lost.Add(1)
			return
		}
		n.arrive(src, dst, pkt)
	})
	return nil
}

// arrive puts pkt in dst's inbox without blocking. It is never called with
// n.mu held.
func (n *Network) arrive(src, dst *Mem, pkt Packet) {
	dst.received.Add(1)
	select {
	case dst.inbox <- pkt:
		n.delivered.Add(1)
	default:
		dst.dropped.Add(1)
	}
}

// MemStats is a snapshot of a Mem transport's counters.
type MemStats struct {
	// Sent counts frames accepted by Send.
	Sent uint64
	// Lost counts frames sent by this transport that the network discarded:
	// loss, partitions, crashes, the filter, or a closed destination.
	Lost uint64
	// Received counts frames that reached this transport, including those
	// then dropped on a full inbox.
	Received uint64
	// Dropped counts frames that reached this transport but found its
	// Packets channel full.
	Dropped uint64
}

// Mem is a [Transport] on a [Network]. It starts no goroutines; delayed
// frames are delivered by timers. Mem is safe for concurrent use.
type Mem struct {
	net   *Network
	addr  string
	inbox chan Packet

	closed bool // guarded by net.mu

	sent, lost, received, dropped atomic.Uint64
}

var _ Transport = (*Mem)(nil)

// Addr returns the address the transport was created with.
func (m *Mem) Addr() string { return m.addr }

// Packets returns the channel of inbound frames. It is never closed.
func (m *Mem) Packets() <-chan Packet { return m.inbox }

// Send hands a copy of frame to the network for addr and returns at once. It
// returns ErrClosed after Close, an error wrapping ErrUnknownAddr if no
// transport was ever created at addr, and ctx's error if ctx is already
// done. Frames to a closed, crashed or partitioned address are lost
// silently. Mem has no frame size limit.
func (m *Mem) Send(ctx context.Context, addr string, frame []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.net.send(m, addr, frame)
}

// Close detaches the transport: later sends fail with ErrClosed and frames
// still in flight to it are lost. Packets is not closed. Close is idempotent
// and always returns nil.
func (m *Mem) Close() error {
	m.net.mu.Lock()
	m.closed = true
	m.net.mu.Unlock()
	return nil
}

// Stats returns a snapshot of the transport's counters.
func (m *Mem) Stats() MemStats {
	return MemStats{
		Sent:     m.sent.Load(),
		Lost:     m.lost.Load(),
		Received: m.received.Load(),
		Dropped:  m.dropped.Load(),
	}
}
