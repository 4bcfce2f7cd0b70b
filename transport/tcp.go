package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Default settings of a TCP transport.
const (
	defaultMaxFrameSize     = 1 << 20
	defaultQueueSize        = 4096
	defaultQueueBytes       = 4 << 20
	defaultInboxSize        = 4096
	defaultInboxBytes       = 64 << 20
	defaultDialTimeout      = 2 * time.Second
	defaultHandshakeTimeout = 5 * time.Second
	defaultIdleTimeout      = 2 * time.Minute
	defaultMaxConns         = 1024
	defaultInboxWait        = time.Second
	defaultParkAfter        = time.Second
	defaultWriterWait       = 100 * time.Millisecond

	// maxFrameSizeLimit is the largest accepted WithMaxFrameSize.
	maxFrameSizeLimit = 1 << 30
	// Accept loop backoff on errors.
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

// TCPOption configures a TCP transport. Later options override earlier ones;
// a nil option is skipped. An option returns an error for invalid input.
type TCPOption func(*tcpConfig) error

type tcpConfig struct {
	maxFrame         int
	queueSize        int
	queueBytes       int
	inboxSize        int
	inboxBytes       int
	inboxWait        time.Duration
	dialTimeout      time.Duration
	handshakeTimeout time.Duration
	idleTimeout      time.Duration
	advertise        string
	logger           *slog.Logger
	maxConns         int
	maxConnsPerIP    int
	linger           time.Duration
	parkAfter        time.Duration
	writerWait       time.Duration
	noPoller         bool // tests: run as where there is no poller
	hooks            tcpHooks
}

// tcpHooks lets tests observe events that have no other synchronisation
// point. Every field may be nil. They are called from the transport's
// goroutines, never under its lock.
type tcpHooks struct {
	beforeDial func(addr string)              // a writer is about to dial addr
	afterBatch func(addr string, n int)       // n frames were written to addr
	peerClosed func(addr string)              // the peer closed the conn to addr
	peerGone   func(addr string)              // the poller saw the peer of the conn to addr close it
	writerDone func(addr string)              // the writer for addr retired (idle or failed)
	writerRun  func(addr string)              // a writer goroutine for addr started
	writerWait func(addr string)              // the writer for addr waits for a frame (WithWriterWait)
	writerEnd  func(addr string)              // the writer goroutine for addr found its queue empty and ended
	readerDone func(from string)              // the reader of a conn from from ended
	rejected   func(remote string, err error) // an inbound conn was refused
	inboxWait  func(from string)              // a reader waits for room in the inbox
}

// WithMaxFrameSize sets the largest frame, in bytes, that Send accepts and
// that a peer may announce (default 1 MiB, at most 1 GiB). A peer announcing
// a larger frame has its connection closed before anything is allocated.
func WithMaxFrameSize(n int) TCPOption {
	return func(c *tcpConfig) error {
		if n < 1 || n > maxFrameSizeLimit {
			return fmt.Errorf("transport: max frame size must be in 1..%d, got %d", maxFrameSizeLimit, n)
		}
		c.maxFrame = n
		return nil
	}
}

// WithQueueSize sets the capacity, in frames, of the send queue kept per
// destination (default 4096). Send drops a frame and counts it in
// [TCPStats.Dropped] when its destination's queue is full. The queue
// holds frames in pooled 16 KiB chunks only while they wait, so the bound
// costs nothing until a destination falls behind; 4096 frames ride out a
// stall of about 0.8 s on a link carrying 5000 frames a second. With 1024,
// the flooding load generator at 5000 messages a second delivered 100 %
// in 4 of 8 runs, one of them losing whole messages to the origin's own
// full queues; with 4096, in 13 of 14 runs, and no origin queue
// overflowed. [WithQueueBytes] bounds the same queue in bytes.
func WithQueueSize(n int) TCPOption {
	return func(c *tcpConfig) error {
		if n < 1 {
			return fmt.Errorf("transport: queue size must be at least 1, got %d", n)
		}
		c.queueSize = n
		return nil
	}
}

// WithQueueBytes bounds, in bytes (frame headers included), the send
// queue kept per destination (default 4 MiB, at least 1). It goes with
// [WithQueueSize]: a frame is dropped, and counted in [TCPStats.Dropped],
// when either bound would be passed, except that an empty queue takes any
// frame Send accepts. Like the frame bound, it counts the frames waiting,
// not the batch the writer has taken and is writing. The frame bound
// alone lets a destination that has stopped reading hold its queue size
// times the largest frame: 4 GiB at the defaults, 256 MiB with gossip's
// largest messages. The load generator's 4096 queued gossip frames of a
// 256-byte message take 1.3 MB, so the byte bound does not bite there.
func WithQueueBytes(n int) TCPOption {
	return func(c *tcpConfig) error {
		if n < 1 {
			return fmt.Errorf("transport: queue bytes must be at least 1, got %d", n)
		}
		c.queueBytes = n
		return nil
	}
}

// WithInboxSize bounds the inbox, the inbound frames received but not yet
// taken from [TCP.Packets] (default 4096). The channel Packets returns
// holds up to 16 of them; the rest wait in a queue that grows with the
// backlog and is released once the inbox is idle, so an idle transport
// does not pay for the bound. [WithInboxBytes] bounds the queue in bytes
// as well. An inbound frame that finds the inbox full waits as
// [WithInboxWait] says, then is dropped and counted in [TCPStats.Dropped].
func WithInboxSize(n int) TCPOption {
	return func(c *tcpConfig) error {
		if n < 1 {
			return fmt.Errorf("transport: inbox size must be at least 1, got %d", n)
		}
		c.inboxSize = n
		return nil
	}
}

// WithInboxBytes bounds, in payload bytes, the queue part of the inbox
// (default 64 MiB, at least 1). It goes with [WithInboxSize]: the inbox
// is full for a frame when the queue holds its size in frames, or when
// the frame would take the queue's bytes past n; a frame that finds the
// queue empty is taken whatever its size. A full inbox is handled as
// WithInboxSize says. The channel Packets returns, at most 16 frames,
// comes on top. The frame bound alone would let a backlog of frames of
// the largest size hold 4 GiB at the defaults.
func WithInboxBytes(n int) TCPOption {
	return func(c *tcpConfig) error {
		if n < 1 {
			return fmt.Errorf("transport: inbox bytes must be at least 1, got %d", n)
		}
		c.inboxBytes = n
		return nil
	}
}

// WithInboxWait sets how long inbound frames may wait for room in a full
// inbox before they are dropped (default 1s; 0 drops a frame that finds
// the inbox full at once, as before this option existed).
//
// While a frame waits, its connection's reader reads nothing more, so TCP
// flow control pushes back on that sender: its socket buffers fill, then
// its own send queue, where it drops frames itself (see WithQueueSize)
// instead of this node dropping them. A burst that the consumer of Packets
// catches up with within the wait is thus delivered whole, and in order.
//
// The wait is bounded per overload, not per frame: once the inbox has
// been full for d, frames that find it full are dropped at once, without
// waiting, until the consumer has taken half of the backlog. Under
// sustained overload the readers therefore keep draining their
// connections, and frames do not pile up, for ever longer, in socket
// buffers behind a blocked reader; the added delay stays near d.
//
// Each connection has one reader, so at most one frame per connection
// waits. Waiting frames get room in the order they began waiting, except
// that a connection holding less than its fair share of the inbox (an
// equal part for each connection with frames in it or waiting) goes first,
// and once waits are over a frame from a connection over its share is
// dropped even if there is room: a connection that floods the inbox cannot
// starve the others. The inbox bound (WithInboxSize) never grows. Frames
// that waited count in [TCPStats.InboxWaits], frames dropped in
// [TCPStats.Dropped]. Close ends every wait at once, dropping the frames.
func WithInboxWait(d time.Duration) TCPOption {
	return func(c *tcpConfig) error {
		if d < 0 {
			return fmt.Errorf("transport: inbox wait must not be negative, got %v", d)
		}
		c.inboxWait = d
		return nil
	}
}

// WithDialTimeout bounds how long a writer waits to connect to a
// destination (default 2s).
func WithDialTimeout(d time.Duration) TCPOption {
	return func(c *tcpConfig) error {
		if d <= 0 {
			return fmt.Errorf("transport: dial timeout must be positive, got %v", d)
		}
		c.dialTimeout = d
		return nil
	}
}

// WithHandshakeTimeout bounds how long an accepted connection may take to
// send its hello frame (default 5s); a slower one is closed.
func WithHandshakeTimeout(d time.Duration) TCPOption {
	return func(c *tcpConfig) error {
		if d <= 0 {
			return fmt.Errorf("transport: handshake timeout must be positive, got %v", d)
		}
		c.handshakeTimeout = d
		return nil
	}
}

// WithIdleTimeout sets how long a connection may stay unused (default 2m).
// An inbound connection that delivers no frame for that long is closed; an
// outbound connection with nothing to send for that long is closed (the
// next Send to its destination dials a new one). It also bounds a single
// write blocked on a peer that stopped reading.
func WithIdleTimeout(d time.Duration) TCPOption {
	return func(c *tcpConfig) error {
		if d <= 0 {
			return fmt.Errorf("transport: idle timeout must be positive, got %v", d)
		}
		c.idleTimeout = d
		return nil
	}
}

// WithParkAfter sets how quiet an inbound connection must be to give up
// its reader goroutine (default 1s; 0: never). A connection that waited
// for a frame fewer than two times per d, over a window at least d long,
// is quiet: the next time it runs out of frames its reader ends, and one
// goroutine per transport waits for all such parked connections, starting
// a reader again as soon as one of them has data. A node's idle links
// thus cost it a file descriptor and a few hundred bytes each, not a
// goroutine and its stack. A busy link keeps its reader and pays nothing;
// one that turns busy is busy again after 8 quick waits. A frame that
// ends a park waits for a goroutine to start: a few microseconds. Parking
// needs Linux (epoll); elsewhere every inbound connection keeps its
// reader, whatever d. On Linux that goroutine runs whatever d: it also
// watches outbound connections for their peers' closes, which saves the
// writers a check before each batch.
func WithParkAfter(d time.Duration) TCPOption {
	return func(c *tcpConfig) error {
		if d < 0 {
			return fmt.Errorf("transport: park delay must not be negative, got %v", d)
		}
		c.parkAfter = d
		return nil
	}
}

// WithWriterWait sets how long the goroutine that writes to a
// destination waits for its next frame once it has written everything
// queued, before it ends (default 100ms; 0: it ends at once). A link that
// carries a frame every few milliseconds keeps its writer, and with it
// the stack the write system call grew; one that ends starts again, at a
// small stack, for the next frame: growing those stacks took a fifteenth
// of the load generator's CPU with flooding at 500 messages a second.
// Waiting cut a lone frame's cost by about a tenth (BenchmarkTCPPairOneAtATime),
// though not, beyond the noise, the load generator's CPU per delivery.
// An idle link's writer ends after d, so idle links cost no goroutine.
func WithWriterWait(d time.Duration) TCPOption {
	return func(c *tcpConfig) error {
		if d < 0 {
			return fmt.Errorf("transport: writer wait must not be negative, got %v", d)
		}
		c.writerWait = d
		return nil
	}
}

// WithAdvertiseAddr sets the host:port announced to other nodes, which they
// use to reach this one and which tags this node's frames in their
// [Packet.From] (default: the bound listener address). It is required when
// listening on an unspecified IP such as 0.0.0.0. When its host is an IP
// literal, it must be the source IP of this node's outbound connections, or
// peers reject the handshake.
func WithAdvertiseAddr(addr string) TCPOption {
	return func(c *tcpConfig) error {
		if err := validAddr(addr); err != nil {
			return fmt.Errorf("transport: advertise address: %w", err)
		}
		host, _, _ := net.SplitHostPort(addr)
		if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
			return fmt.Errorf("transport: advertise address %q is unspecified", addr)
		}
		c.advertise = addr
		return nil
	}
}

// WithLogger sets the logger (default slog.Default().With("component",
// "transport")). Per-frame events go at Debug, degraded conditions such as
// rejected connections at Warn.
func WithLogger(l *slog.Logger) TCPOption {
	return func(c *tcpConfig) error {
		if l == nil {
			return errors.New("transport: nil logger")
		}
		c.logger = l
		return nil
	}
}

// WithMaxConnsPerIP caps the simultaneous inbound connections from one
// source IP address (default 32), so that one host cannot take every slot of
// WithMaxConns. Connections over the cap are closed at once and counted in
// [TCPStats.RejectedConns].
func WithMaxConnsPerIP(n int) TCPOption {
	return func(c *tcpConfig) error {
		if n < 1 {
			return fmt.Errorf("transport: max conns per IP must be at least 1, got %d", n)
		}
		c.maxConnsPerIP = n
		return nil
	}
}

// WithCloseLinger sets how long Close lets each writer flush the frames
// still queued on an open connection, such as a node's goodbye, before
// closing it (default 500ms; 0 drops them at once, counted in
// [TCPStats.Dropped]). A writer without a connection (closed as idle, or
// released: see [TCP.Release]) dials a new one to flush, within the same
// deadline.
func WithCloseLinger(d time.Duration) TCPOption {
	return func(c *tcpConfig) error {
		if d < 0 {
			return fmt.Errorf("transport: close linger must not be negative, got %v", d)
		}
		c.linger = d
		return nil
	}
}

// WithMaxConns caps the number of simultaneous inbound connections (default
// 1024). Connections accepted over the cap are closed at once and counted
// in [TCPStats.RejectedConns].
func WithMaxConns(n int) TCPOption {
	return func(c *tcpConfig) error {
		if n < 1 {
			return fmt.Errorf("transport: max conns must be at least 1, got %d", n)
		}
		c.maxConns = n
		return nil
	}
}

// TCPStats is a snapshot of a TCP transport's counters. Each counter is
// monotonic over the transport's life.
type TCPStats struct {
	// FramesSent counts frames written to outbound connections (the
	// handshake excluded). A written frame may still be lost if the peer
	// dies before reading it.
	FramesSent uint64
	// BytesSent counts the bytes of FramesSent, including the 4-byte
	// length headers.
	BytesSent uint64
	// FramesReceived counts frames read from inbound connections (the
	// handshake excluded), including those then dropped on a full inbox.
	FramesReceived uint64
	// BytesReceived counts the bytes of FramesReceived, including the
	// 4-byte length headers.
	BytesReceived uint64
	// Dropped counts frames discarded locally: a full send queue, a failed
	// dial or write, frames still queued at Close (outbound, or inbound
	// and not yet taken from Packets), and inbound frames that found the
	// inbox full for longer than WithInboxWait.
	Dropped uint64
	// InboxWaits counts inbound frames that found the inbox full and made
	// their connection's reader wait for room (see WithInboxWait),
	// whether or not room came in time.
	InboxWaits uint64
	// RejectedConns counts inbound connections closed before carrying any
	// frame: over the WithMaxConns cap or failing the handshake (bad magic,
	// bad or spoofed address, timeout).
	RejectedConns uint64
	// Dials counts outbound connection attempts, failed ones included.
	Dials uint64
	// ParkedConns is the number of inbound connections parked now: quiet,
	// without a reader goroutine (see WithParkAfter). Unlike the other
	// fields it is a gauge, not a counter.
	ParkedConns int
}

type tcpCounters struct {
	framesSent, bytesSent, framesRecv, bytesRecv, dropped, rejected, inboxWaits, dials atomic.Uint64
}

// TCP is a [Transport] over TCP. Frames are length-prefixed on the wire.
// Connections are one-directional: a node dials a peer to send to it and
// accepts the peer's own connection to receive from it. Each destination has
// a bounded queue, drained by a writer goroutine that runs only while the
// queue is non-empty; each accepted connection has one reader goroutine,
// which holds a read buffer only while data is arriving, and which a quiet
// connection gives up on Linux (see [WithParkAfter]): one goroutine per
// transport then waits for all of them. An idle link thus costs no
// goroutine and no buffer, only its two sockets, until its idle timeout
// or a [TCP.Release] closes it. A TCP is safe for concurrent
// use. Close stops every goroutine it started and waits for them.
type TCP struct {
	cfg       tcpConfig
	log       *slog.Logger
	ln        net.Listener
	addr      string       // advertised address
	localAddr *net.TCPAddr // source address for dials, nil for any
	inbox     *inbox

	ctx    context.Context // cancelled by Close; aborts backoff waits
	cancel context.CancelFunc
	// dialCtx is cancelled once Close has let the writers flush: it
	// aborts the dials still running then.
	dialCtx    context.Context
	dialCancel context.CancelFunc
	wg         sync.WaitGroup
	writing    sync.WaitGroup // the writer goroutines, which Close lets flush first
	timers     sync.WaitGroup // the idle sweep while it is set or runs (see idle.go)

	epoch time.Time // origin of the times connections record their use at

	sweepMu     sync.Mutex
	sweep       *time.Timer   // calls sweepIdle; created on first use
	sweepArmed  bool          // sweep is set, for sweepAt, and counted in timers
	sweepAt     time.Duration // since epoch
	sweepClosed bool

	mu      sync.RWMutex
	closed  bool
	ending  bool // Close is closing every conn: no new one is tracked
	writers map[string]*writer
	conns   map[net.Conn]*inConn // every open conn: inbound, or outbound (nil)
	inbound int                  // open accepted conns
	perIP   map[netip.Addr]int   // open accepted conns by source IP

	// poller waits for data on parked inbound connections (see park),
	// and for the peers of outbound connections to close them (see
	// watch); nil where there is none. parked and watched hold those
	// connections by token, under mu; both are nil once the poller has
	// failed.
	poller  *poller
	parked  map[uint64]*inConn
	watched map[uint64]*outConn
	parkSeq uint64

	stats tcpCounters
}

var (
	_ Transport = (*TCP)(nil)
	_ Releaser  = (*TCP)(nil)
)

// ListenTCP binds addr and starts accepting connections. Binding here, not
// later, means [TCP.Addr] is known at once even for port 0; Close releases
// the port.
//
// An empty host (":0", ":7946") binds 127.0.0.1. An unspecified IP (0.0.0.0,
// [::]) listens on every interface and requires [WithAdvertiseAddr], since
// it cannot be announced. When the bound IP is specific, outbound
// connections are dialled from it, so peers see the announced IP. A port
// already taken returns an error matching both [ErrAddrInUse] and
// syscall.EADDRINUSE.
func ListenTCP(addr string, opts ...TCPOption) (*TCP, error) {
	cfg := tcpConfig{
		maxFrame:         defaultMaxFrameSize,
		queueSize:        defaultQueueSize,
		queueBytes:       defaultQueueBytes,
		inboxSize:        defaultInboxSize,
		inboxBytes:       defaultInboxBytes,
		inboxWait:        defaultInboxWait,
		dialTimeout:      defaultDialTimeout,
		handshakeTimeout: defaultHandshakeTimeout,
		idleTimeout:      defaultIdleTimeout,
		maxConns:         defaultMaxConns,
		maxConnsPerIP:    32,
		linger:           500 * time.Millisecond,
		parkAfter:        defaultParkAfter,
		writerWait:       defaultWriterWait,
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default().With("component", "transport")
	}

	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen %q: %w", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() && cfg.advertise == "" {
		return nil, fmt.Errorf("transport: listen %q: unspecified IP cannot be announced to peers; use WithAdvertiseAddr or a specific IP", addr)
	}
	bind := net.JoinHostPort(host, port)
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", bind)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("transport: listen %s: %w: %w", bind, ErrAddrInUse, err)
		}
		return nil, fmt.Errorf("transport: listen %s: %w", bind, err)
	}

	t := &TCP{
		cfg:     cfg,
		ln:      ln,
		addr:    cfg.advertise,
		writers: make(map[string]*writer),
		conns:   make(map[net.Conn]*inConn),
		epoch:   time.Now(),
		perIP:   make(map[netip.Addr]int),
	}
	bound, _ := ln.Addr().(*net.TCPAddr)
	if t.addr == "" {
		t.addr = ln.Addr().String()
	}
	if bound != nil && !bound.IP.IsUnspecified() {
		t.localAddr = &net.TCPAddr{IP: bound.IP, Zone: bound.Zone}
	}
	t.log = cfg.logger.With("addr", t.addr)
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.dialCtx, t.dialCancel = context.WithCancel(context.Background())
	t.inbox = newInbox(t.ctx, cfg.inboxSize, cfg.inboxBytes, cfg.inboxWait)
	t.inbox.start, t.inbox.onWait = t.wg.Go, cfg.hooks.inboxWait
	t.inbox.dropped, t.inbox.waits = &t.stats.dropped, &t.stats.inboxWaits
	if !cfg.noPoller {
		if p, err := newPoller(); err == nil {
			t.poller, t.parked, t.watched = p, make(map[uint64]*inConn), make(map[uint64]*outConn)
			t.wg.Go(t.poll)
		} else {
			t.log.Debug("transport: idle connections keep their readers; writers check their connections before each batch", "err", err)
		}
	}
	t.wg.Go(t.acceptLoop)
	return t, nil
}

// Addr returns the advertised address of this transport.
func (t *TCP) Addr() string { return t.addr }

// Packets returns the channel of inbound frames. It is never closed.
func (t *TCP) Packets() <-chan Packet { return t.inbox.ch }

// Stats returns a snapshot of the transport's counters.
func (t *TCP) Stats() TCPStats {
	return TCPStats{
		FramesSent:     t.stats.framesSent.Load(),
		BytesSent:      t.stats.bytesSent.Load(),
		FramesReceived: t.stats.framesRecv.Load(),
		BytesReceived:  t.stats.bytesRecv.Load(),
		Dropped:        t.stats.dropped.Load(),
		InboxWaits:     t.stats.inboxWaits.Load(),
		RejectedConns:  t.stats.rejected.Load(),
		Dials:          t.stats.dials.Load(),
		ParkedConns:    t.parkedConns(),
	}
}

func (t *TCP) parkedConns() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.parked)
}

// Send queues a copy of frame for addr and returns without waiting on the
// network. It returns ErrClosed after Close, ErrFrameTooLarge for a frame over
// the WithMaxFrameSize limit, and ctx's error if ctx is already done. A full
// queue drops the frame, counts it in [TCPStats.Dropped] and returns nil:
// delivery is best effort.
func (t *TCP) Send(ctx context.Context, addr string, frame []byte) error {
	if len(frame) > t.cfg.maxFrame {
		return fmt.Errorf("transport: send %d bytes to %s (limit %d): %w", len(frame), addr, t.cfg.maxFrame, ErrFrameTooLarge)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	t.mu.RLock()
	if t.closed {
		t.mu.RUnlock()
		return ErrClosed
	}
	w := t.writers[addr]
	if w != nil {
		w.enqueue(frame)
		t.mu.RUnlock()
		return nil
	}
	t.mu.RUnlock()

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	w = t.writers[addr]
	if w == nil {
		w = &writer{t: t, addr: addr}
		t.writers[addr] = w
	}
	w.enqueue(frame)
	return nil
}

// Release closes the outbound connection to addr once the frames queued
// for addr are written: at once if none are, else as soon as the writer
// finds its queue empty. Its reader at the other end then ends. A later
// Send to addr dials a new connection. See [Releaser].
func (t *TCP) Release(addr string) {
	var done *outConn
	t.mu.RLock()
	// Under t.mu: the idle sweep takes writers out of the map under it,
	// and only then touches their connections.
	w := t.writers[addr]
	if w != nil {
		w.mu.Lock()
		if w.running {
			w.release = true
			if w.waiting {
				w.waiting = false
				w.signal()
			}
		} else {
			done, w.oc = w.oc, nil
		}
		w.mu.Unlock()
	}
	t.mu.RUnlock()
	if done != nil {
		w.closeConn(done)
	}
}

// Close stops accepting, closes every connection, drops queued frames and
// waits for every goroutine of the transport. It is idempotent: later calls
// wait the same way and return nil.
func (t *TCP) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		t.wg.Wait()
		return nil
	}
	t.closed = true
	t.mu.Unlock()

	t.cancel()
	err := t.ln.Close()
	// Writers flush what is queued on open connections, each bounded by
	// the linger deadline; then every connection is closed.
	flushed := make(chan struct{})
	go func() { t.writing.Wait(); close(flushed) }()
	if t.cfg.linger > 0 {
		timer := time.NewTimer(t.cfg.linger + 100*time.Millisecond)
		select {
		case <-flushed:
		case <-timer.C:
		}
		timer.Stop()
	}
	t.dialCancel()
	t.mu.Lock()
	t.ending = true
	conns := make([]net.Conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	parked := t.takeParked()
	t.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	if t.poller != nil {
		t.poller.close()
	}
	for _, ic := range parked {
		t.parkedEnded(ic)
	}
	<-flushed
	t.stopSweep()
	t.timers.Wait()
	t.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("transport: close listener: %w", err)
	}
	return nil
}

// track registers c so that Close closes it. It returns false, and c must be
// closed by the caller, once Close is closing every conn.
func (t *TCP) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ending {
		return false
	}
	t.conns[c] = nil
	return true
}

// rawConn returns c's syscall.RawConn, or nil if it has no socket.
func rawConn(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// acceptLoop accepts inbound connections until the listener is closed.
func (t *TCP) acceptLoop() {
	var backoff time.Duration
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || t.ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, minAcceptBackoff), maxAcceptBackoff)
			t.log.Warn("transport: accept failed; retrying", "err", err, "backoff", backoff)
			timer := time.NewTimer(backoff)
			select {
			case <-timer.C:
			case <-t.ctx.Done():
				timer.Stop()
				return
			}
			continue
		}
		backoff = 0

		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			_ = c.Close()
			return
		}
		if t.inbound >= t.cfg.maxConns {
			t.mu.Unlock()
			_ = c.Close()
			t.reject(c, fmt.Errorf("transport: over the limit of %d inbound connections", t.cfg.maxConns))
			continue
		}
		var ip netip.Addr
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			ip = ta.AddrPort().Addr().Unmap()
		}
		if t.perIP[ip] >= t.cfg.maxConnsPerIP {
			t.mu.Unlock()
			_ = c.Close()
			t.reject(c, fmt.Errorf("transport: over the limit of %d inbound connections from %v", t.cfg.maxConnsPerIP, ip))
			continue
		}
		t.inbound++
		t.perIP[ip]++
		ic := &inConn{t: t, conn: c, ip: ip}
		ic.fr.src = c
		t.conns[c] = ic
		t.wg.Go(func() { t.serve(ic) })
		t.mu.Unlock()
	}
}

// reject counts and logs an inbound connection refused before any frame.
func (t *TCP) reject(c net.Conn, err error) {
	t.stats.rejected.Add(1)
	// Debug, not Warn: a connection closed during its handshake is normal
	// at shutdown, and a flood of rejects must not flood the log.
	t.log.Debug("transport: rejected inbound connection", "remote", c.RemoteAddr().String(), "err", err)
	if h := t.cfg.hooks.rejected; h != nil {
		h(c.RemoteAddr().String(), err)
	}
}

// inConn is an accepted connection.
type inConn struct {
	t    *TCP
	conn net.Conn
	ip   netip.Addr
	from string // the announced address, once the handshake is done
	fr   frameReader
	// last is when the reader last started a read from the connection,
	// as time since t.epoch; the idle sweep closes the connection
	// idleTimeout after it. Reads of buffered frames need no mark: the
	// reader is busy, and comes back to the connection soon.
	last atomic.Int64
	src  inboxSource
	// While parked (see TCP.park), token names the park, under t.mu;
	// armed says the socket is in the poller's set; rc is the socket's,
	// kept from the first park.
	token uint64
	armed bool
	rc    syscall.RawConn
}

// markReady records that the reader is about to read from the connection,
// and returns the time.
func (ic *inConn) markReady() time.Duration {
	now := ic.t.now()
	ic.last.Store(int64(now))
	return now
}

// serve runs the handshake on an accepted connection, then hands the
// connection to a goroutine of its own that delivers its frames. The
// handshake, with its deadline and parsing, may grow this goroutine's
// stack; it ends once the handshake does, and the reader starts afresh
// with the smallest stack. There is one reader per inbound connection.
func (t *TCP) serve(ic *inConn) {
	from, err := t.handshake(ic)
	if err == nil {
		// The idle sweep, not a read deadline, bounds the wait for
		// frames from now on: see receive.
		err = ic.conn.SetReadDeadline(time.Time{})
	}
	if err != nil {
		if t.ctx.Err() == nil {
			t.reject(ic.conn, err)
		}
		t.endConn(ic)
		return
	}
	now := t.now()
	ic.last.Store(int64(now))
	ic.fr.ready = ic.markReady
	setRawAhead(&ic.fr, ic.conn)
	if t.poller != nil && ic.fr.ahead != nil {
		ic.fr.parkAfter, ic.fr.windowStart = t.cfg.parkAfter, now
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		t.endConn(ic)
		return
	}
	ic.from = from // under t.mu: the sweep reads it
	t.wg.Add(1)    // serve itself is counted, so Close cannot be waiting on zero
	t.mu.Unlock()
	t.wantSweep(now + t.cfg.idleTimeout)
	go t.receive(ic)
}

// handshake reads and checks the hello of an accepted connection and
// returns the address it announces.
func (t *TCP) handshake(ic *inConn) (string, error) {
	_ = ic.conn.SetReadDeadline(time.Now().Add(t.cfg.handshakeTimeout))
	from, err := checkHello(ic.fr.next(maxHelloLen))
	if err != nil {
		return "", err
	}
	var remote netip.Addr
	if ta, ok := ic.conn.RemoteAddr().(*net.TCPAddr); ok {
		remote = ta.AddrPort().Addr()
	}
	if err := checkAnnounced(remote, from); err != nil {
		return "", err
	}
	return from, nil
}

// receive delivers the frames of an inbound connection to the inbox until
// the connection fails, idles out or the transport closes.
//
// It is the entry point of the connection's long-lived goroutine, and
// everything it calls on the way to a blocking read is kept shallow: the
// goroutine then stays at the runtime's 2 KiB minimum stack, where one
// that ever needed more would keep at least 4 KiB while idle, since the
// runtime shrinks a stack only while less than a quarter of it is in use
// beyond its guard. Hence no read deadline (setting one goes deep into the
// runtime's timers): the idle sweep closes the connection instead. Only
// rare paths go deeper: waiting for room in a full inbox, and the logging
// as the connection ends.
func (t *TCP) receive(ic *inConn) {
	defer t.wg.Done()
	for {
		p, err := ic.fr.next(t.cfg.maxFrame)
		if err == errWouldBlock {
			if t.park(ic) {
				return
			}
			continue
		}
		if err != nil {
			t.readFailed(ic, err)
			return
		}
		t.stats.framesRecv.Add(1)
		t.stats.bytesRecv.Add(uint64(headerLen + len(p)))
		if !t.inbox.put(Packet{From: ic.from, Payload: p}, &ic.src) {
			t.inboxDropped(ic.from)
		}
	}
}

// park ends the reader of a quiet connection that has run out of frames
// (see WithParkAfter): it arms the connection's socket in the poller and
// reports true, and the caller, the reader, returns without touching ic
// again; the poller starts a new reader when data arrives (resume). It
// reports false, and the reader goes on waiting itself, if the transport
// is closing, the idle sweep has just closed the connection (the reader's
// next read fails), or the socket cannot be armed.
//
//go:noinline
func (t *TCP) park(ic *inConn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.parked == nil {
		ic.fr.parkAfter = 0 // the poller failed
		return false
	}
	if t.closed || t.conns[ic.conn] != ic {
		ic.fr.quiet = false // the reader waits, and its read fails
		return false
	}
	if ic.rc == nil {
		if ic.rc = rawConn(ic.conn); ic.rc == nil {
			ic.fr.parkAfter = 0
			return false
		}
	}
	t.parkSeq++
	if err := t.poller.arm(ic.rc, t.parkSeq, ic.armed); err != nil {
		t.log.Debug("transport: cannot park connection", "from", ic.from, "err", err)
		ic.fr.parkAfter = 0
		return false
	}
	ic.armed, ic.token = true, t.parkSeq
	t.parked[ic.token] = ic
	return true
}

// resume starts a reader for the parked connection named by tok, which
// has data (or was closed by its peer). A token no longer parked, its
// connection ended by the sweep or by Close, is ignored.
func (t *TCP) resume(tok uint64) {
	if tok&watchToken != 0 {
		t.noticeGone(tok)
		return
	}
	t.mu.Lock()
	ic := t.parked[tok]
	if ic == nil || t.closed {
		t.mu.Unlock()
		return
	}
	delete(t.parked, tok)
	ic.token = 0
	t.wg.Add(1)
	t.mu.Unlock()
	go t.receive(ic)
}

// takeParked empties the parked set, under t.mu, and returns what it held:
// connections without a reader, which the caller ends with parkedEnded.
func (t *TCP) takeParked() []*inConn {
	var ics []*inConn
	for tok, ic := range t.parked {
		delete(t.parked, tok)
		ic.token = 0
		ics = append(ics, ic)
	}
	return ics
}

// parkedEnded ends a connection taken out of the parked set, as its
// reader would have.
func (t *TCP) parkedEnded(ic *inConn) {
	t.endConn(ic)
	if h := t.cfg.hooks.readerDone; h != nil {
		h(ic.from)
	}
}

// poll runs the poller until Close. Should it fail, parking stops and
// every parked connection gets its reader back.
func (t *TCP) poll() {
	err := t.poller.run(t.resume)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	parked := t.takeParked()
	t.parked = nil // park sees no poller from now on
	for _, oc := range t.watched {
		oc.watch.CompareAndSwap(watchOn, watchOff) // its writer checks before each batch again
	}
	t.watched = nil // nor does watch
	t.wg.Add(len(parked))
	t.mu.Unlock()
	t.log.Error("transport: poller failed; idle connections keep their readers", "err", err)
	for _, ic := range parked {
		ic.fr.parkAfter = 0
		go t.receive(ic)
	}
}

// readFailed logs why an inbound connection ended and closes it.
//
//go:noinline
func (t *TCP) readFailed(ic *inConn, err error) {
	switch {
	case t.ctx.Err() != nil:
	case errors.Is(err, ErrFrameTooLarge):
		t.log.Warn("transport: closing inbound connection", "from", ic.from, "err", err)
	default:
		t.log.LogAttrs(t.ctx, slog.LevelDebug, "transport: inbound connection ended",
			slog.String("from", ic.from), slog.Any("err", err))
	}
	t.endConn(ic)
	if h := t.cfg.hooks.readerDone; h != nil {
		h(ic.from)
	}
}

// inboxDropped counts and logs an inbound frame the inbox had no room for.
//
//go:noinline
func (t *TCP) inboxDropped(from string) {
	t.stats.dropped.Add(1)
	if t.ctx.Err() == nil {
		t.log.LogAttrs(t.ctx, slog.LevelDebug, "transport: inbox full; frame dropped", slog.String("from", from))
	}
}

// endConn closes an inbound connection and forgets it.
func (t *TCP) endConn(ic *inConn) {
	ic.fr.release()
	_ = ic.conn.Close()
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, ic.conn)
	t.inbound--
	if t.perIP[ic.ip]--; t.perIP[ic.ip] <= 0 {
		delete(t.perIP, ic.ip)
	}
}

// writer owns the outbound connection to one destination and its queue.
//
// The queue holds the frames as they go on the wire, each after its length
// header, packed into fixed-size chunks borrowed from a pool (see
// queueChunks); a frame too large for a chunk gets a chunk of its own.
// Send copies a frame straight into the last chunk, and the writer hands
// the whole queue to the socket in one vectored write, then gives the
// chunks back. A busy link thus allocates nothing per frame: a queue of
// one allocated copy per frame cost a third of the bytes the load
// generator allocated at 5000 messages a second. The queue grows with the
// backlog, up to the queue size in frames. A goroutine runs only while
// the queue is non-empty: it takes the whole queue at once, writes it, and
// exits when it finds the queue empty; the idle sweep closes the
// connection if it stays idle. An idle destination thus costs no goroutine
// and no buffer, only its open connection.
type writer struct {
	t    *TCP
	addr string

	mu        sync.Mutex
	queue     [][]byte      // chunks of queued frames, with headers
	queued    int           // frames in queue, at most t.cfg.queueSize
	qbytes    int           // bytes in queue, headers included: at most t.cfg.queueBytes, or one frame
	running   bool          // a goroutine runs run; set by enqueue, cleared by run
	waiting   bool          // run waits for a frame on wake (see WithWriterWait)
	wake      chan struct{} // enqueue's signal to a waiting run, capacity 1
	timer     *time.Timer   // run's, for WithWriterWait
	release   bool          // close oc once the queue is empty (see TCP.Release)
	oc        *outConn      // the open connection: run's while running, else under mu
	idleSince time.Duration // since t.epoch: when run last found the queue empty
	iov       net.Buffers   // run's scratch for the vectored write
	wv        net.Buffers   // what of iov the vectored write has left to write
}

// chunkSize is the size of the queue chunks.
const chunkSize = 16 << 10

// maxKeptChunks bounds the chunk list a running writer keeps between
// batches (not the chunks, which go back to the pool), and
// maxIdleChunkList the chunk list and the write vector an idle writer
// keeps.
const (
	maxKeptChunks    = 64
	maxIdleChunkList = 4
)

// queueChunks holds the chunks of the writers' queues.
var queueChunks = sync.Pool{New: func() any { return new([chunkSize]byte) }}

// freeChunks gives the pool's chunks among q back to it and clears q.
func freeChunks(q [][]byte) {
	for i, c := range q {
		if cap(c) == chunkSize {
			queueChunks.Put((*[chunkSize]byte)(c[:chunkSize]))
		}
		q[i] = nil
	}
}

// enqueue adds frame to the queue without blocking, dropping it when full,
// and starts the writer goroutine unless it runs. The caller holds t.mu
// (read or write) and has checked that t is not closed, which keeps the
// writer in the map and orders the start before Close waits for writers.
func (w *writer) enqueue(frame []byte) {
	need := headerLen + len(frame)
	w.mu.Lock()
	if w.queued >= w.t.cfg.queueSize || (w.queued > 0 && w.qbytes+need > w.t.cfg.queueBytes) {
		w.mu.Unlock()
		w.t.stats.dropped.Add(1)
		w.t.log.LogAttrs(w.t.ctx, slog.LevelDebug, "transport: send queue full; frame dropped", slog.String("to", w.addr))
		return
	}
	last := len(w.queue) - 1
	switch {
	case last >= 0 && cap(w.queue[last])-len(w.queue[last]) >= need:
		w.queue[last] = appendFrame(w.queue[last], frame)
	case need <= chunkSize:
		w.queue = append(w.queue, appendFrame(queueChunks.Get().(*[chunkSize]byte)[:0], frame))
	default:
		w.queue = append(w.queue, appendFrame(make([]byte, 0, need), frame))
	}
	w.queued++
	w.qbytes += need
	start := !w.running
	w.running = true
	wake := w.waiting
	w.waiting = false
	w.mu.Unlock()
	switch {
	case start:
		w.t.writing.Add(1)
		go w.runTracked()
	case wake:
		w.signal()
	}
}

// signal wakes run from await. The caller has cleared w.waiting under
// w.mu; run made w.wake before it set w.waiting.
func (w *writer) signal() {
	select {
	case w.wake <- struct{}{}:
	default: // a signal is pending already
	}
}

// await waits up to d for enqueue to signal a frame, or for the transport
// to close, and reports whether a frame came. The caller has set
// w.waiting under w.mu and found the queue empty.
func (w *writer) await(d time.Duration) bool {
	if w.timer == nil {
		w.timer = time.NewTimer(d)
	} else {
		w.timer.Reset(d)
	}
	select {
	case <-w.wake:
		w.timer.Stop()
		return true
	case <-w.timer.C:
	case <-w.t.ctx.Done():
		w.timer.Stop()
	}
	w.mu.Lock()
	w.waiting = false
	w.mu.Unlock()
	return false
}

// runTracked runs run as the writer goroutine, counted in t.writing. A go
// statement on a method allocates nothing, where WaitGroup.Go(w.run)
// allocated the method value and a closure on every start.
func (w *writer) runTracked() {
	defer w.t.writing.Done()
	if h := w.t.cfg.hooks.writerRun; h != nil {
		h(w.addr) // here, not in enqueue, whose caller holds t.mu
	}
	w.run()
}

// retire removes w from the writers map after a failure, discarding and
// counting whatever is queued, so that the next Send starts a fresh
// writer. Send enqueues only under t.mu, so no frame can land in a retired
// writer.
func (w *writer) retire() {
	t := w.t
	t.mu.Lock()
	w.mu.Lock()
	t.stats.dropped.Add(uint64(w.queued))
	freeChunks(w.queue)
	w.queue, w.queued, w.qbytes = nil, 0, 0
	w.running = false
	if t.writers[w.addr] == w {
		delete(t.writers, w.addr)
	}
	w.mu.Unlock()
	t.mu.Unlock()
	if h := t.cfg.hooks.writerDone; h != nil {
		h(w.addr)
	}
}

// outConn is a live outbound connection.
type outConn struct {
	conn     net.Conn
	addr     string
	check    *closeCheck // nil where the system has none
	hello    []byte      // the hello frame until the first batch goes out
	deadline time.Time   // the write deadline last set on conn
	// watch says whether the poller watches the socket for the peer's
	// close (see TCP.watch), and whether it saw it; token names the
	// watch, under t.mu.
	watch atomic.Int32
	token uint64
}

// The states of outConn.watch.
const (
	watchOff  = iota // not watched: the writer checks before each batch
	watchOn          // watched, and the peer has not closed
	watchGone        // the poller saw the peer close, reset or write
)

// watchToken marks the poller tokens of watched outbound connections,
// set apart from those of parked inbound ones.
const watchToken = 1 << 63

// peerGone reports whether the peer has closed or reset the connection,
// or written to it. A watched connection answers from what the poller
// saw, with no system call: the check a write before each batch cost was
// a third of the read system calls of the flooding load generator, one
// per frame on a link that carries a frame every few milliseconds. A
// close the poller has not yet seen goes unnoticed, as one that comes
// just after the check always could; the batch then fails on the dead
// socket or is lost with it.
func (oc *outConn) peerGone() bool {
	switch oc.watch.Load() {
	case watchOn:
		return false
	case watchGone:
		return true
	}
	return oc.check.peerGone()
}

// watch arms oc's socket in the poller, if there is one, for the peer's
// close (an end of stream, a reset, or data, which the peer never sends
// on this connection).
func (t *TCP) watch(oc *outConn) {
	rc := oc.check.raw()
	if rc == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.watched == nil || t.closed {
		return
	}
	t.parkSeq++
	tok := t.parkSeq | watchToken
	if err := t.poller.arm(rc, tok, false); err != nil {
		t.log.Debug("transport: cannot watch connection", "to", oc.addr, "err", err)
		return
	}
	oc.token = tok
	oc.watch.Store(watchOn)
	t.watched[tok] = oc
}

// noticeGone records that the peer of the watched connection named by
// tok has closed it; its writer redials before the next batch.
func (t *TCP) noticeGone(tok uint64) {
	t.mu.Lock()
	oc := t.watched[tok]
	delete(t.watched, tok)
	t.mu.Unlock()
	if oc == nil {
		return // closed meanwhile
	}
	oc.watch.Store(watchGone)
	if h := t.cfg.hooks.peerGone; h != nil {
		h(oc.addr)
	}
}

// run drains the queue, batch by batch, and returns when it finds it
// empty. Once the transport is closing it flushes what is queued on an
// open connection within the linger deadline and drops the rest.
func (w *writer) run() {
	t := w.t
	var spare [][]byte
	waited := false
	for {
		w.mu.Lock()
		if w.queued == 0 && !waited && !w.release && t.cfg.writerWait > 0 && t.ctx.Err() == nil {
			// Wait a little for the next frame rather than end: a busy
			// link keeps its goroutine and the stack it grew.
			if w.wake == nil {
				w.wake = make(chan struct{}, 1)
			}
			w.waiting = true
			w.mu.Unlock()
			if h := t.cfg.hooks.writerWait; h != nil {
				h(w.addr)
			}
			waited = !w.await(t.cfg.writerWait)
			continue
		}
		waited = false
		if w.queued == 0 {
			w.running = false
			// An idle writer keeps no chunk, only a short list for the
			// chunk of its next frame, which would otherwise be
			// allocated again for every lone frame.
			q := w.queue
			if cap(q) == 0 {
				q = spare
			}
			w.queue = nil
			if cap(q) <= maxIdleChunkList {
				w.queue = q[:0]
			}
			if cap(w.iov) > maxIdleChunkList {
				w.iov = nil
			}
			var done *outConn
			if w.release {
				done, w.oc, w.release = w.oc, nil, false
			}
			now := t.now()
			w.idleSince = now
			w.mu.Unlock()
			if done != nil {
				w.closeConn(done)
			}
			// The sweep closes the connection, or, if released, forgets
			// the writer.
			t.wantSweep(now + t.cfg.idleTimeout)
			if h := t.cfg.hooks.writerEnd; h != nil {
				h(w.addr)
			}
			return
		}
		b := batch{chunks: w.queue, frames: w.queued}
		w.queue, w.queued, w.qbytes = spare[:0], 0, 0
		w.mu.Unlock()

		var ok bool
		if t.ctx.Err() != nil {
			ok = w.flushClosing(&b)
		} else {
			ok = w.sendBatch(&b)
		}
		spare = b.chunks
		freeChunks(spare)
		if cap(spare) > maxKeptChunks {
			spare = nil
		}
		if !ok {
			w.retire()
			return
		}
	}
}

// batch is the queue a writer took: chunks of frames as they go on the
// wire, each after its header. Frames never span chunks. What is left to
// write starts at chunks[next][off:].
type batch struct {
	chunks    [][]byte
	next, off int
	frames    int // frames left to write
}

// left appends the bytes left to write to bufs and returns it with their
// length.
func (b *batch) left(bufs net.Buffers) (net.Buffers, int) {
	n := 0
	for i, c := range b.chunks[b.next:] {
		if i == 0 {
			c = c[b.off:]
		}
		bufs = append(bufs, c)
		n += len(c)
	}
	return bufs, n
}

// advance moves past the whole frames among the next n bytes and returns
// their bytes and count. A frame cut short by n stays, to be written
// whole again.
func (b *batch) advance(n int) (bytes, frames int) {
chunks:
	for ; b.next < len(b.chunks); b.next, b.off = b.next+1, 0 {
		c := b.chunks[b.next]
		for b.off+headerLen <= len(c) {
			size := headerLen + int(binary.BigEndian.Uint32(c[b.off:]))
			if bytes+size > n {
				break chunks
			}
			b.off += size
			bytes += size
			frames++
		}
	}
	b.frames -= frames
	return bytes, frames
}

// flushClosing writes batch, queued when the transport closed, on the open
// connection within the linger deadline, and counts what it cannot write
// as dropped. Without a connection it dials one, within the same deadline:
// a node's goodbye to a seed it released (see TCP.Release) goes out
// that way. It reports false if it dropped anything.
func (w *writer) flushClosing(b *batch) bool {
	t := w.t
	if t.cfg.linger <= 0 {
		t.stats.dropped.Add(uint64(b.frames))
		return false
	}
	deadline := time.Now().Add(t.cfg.linger)
	if w.oc == nil {
		oc, err := w.dial(deadline)
		if err != nil {
			t.stats.dropped.Add(uint64(b.frames))
			return false
		}
		w.oc = oc
	}
	if err := w.write(w.oc, b, deadline, 0); err != nil {
		t.stats.dropped.Add(uint64(b.frames))
		w.closeConn(w.oc)
		w.oc = nil
		return false
	}
	return true
}

// sendBatch writes batch to the destination, dialling if needed. On a write
// error it redials once and resends the frames not yet handed to the socket.
// It reports false, with the unsent frames counted as dropped, if a dial or
// the retry fails.
func (w *writer) sendBatch(b *batch) bool {
	t := w.t
	if w.oc != nil && w.oc.peerGone() {
		// The peer closed the connection, or reset it, since the last
		// batch: redial rather than lose this batch on a dead socket.
		w.peerClosed(w.oc)
		w.oc = nil
	}
	for attempt := 0; ; attempt++ {
		if w.oc == nil {
			oc, err := w.dial(time.Time{})
			if err != nil {
				t.stats.dropped.Add(uint64(b.frames))
				if t.ctx.Err() == nil {
					t.log.LogAttrs(t.ctx, slog.LevelDebug, "transport: dial failed; queued frames dropped",
						slog.String("to", w.addr), slog.Any("err", err))
				}
				return false
			}
			w.oc = oc
		}
		err := w.write(w.oc, b, time.Now().Add(t.cfg.idleTimeout), t.cfg.idleTimeout/4)
		if err == nil {
			return true
		}
		w.closeConn(w.oc)
		w.oc = nil
		if attempt > 0 || t.ctx.Err() != nil {
			t.stats.dropped.Add(uint64(b.frames))
			if t.ctx.Err() == nil {
				t.log.Warn("transport: write failed after redial; queued frames dropped", "to", w.addr, "err", err)
			}
			return false
		}
		t.log.LogAttrs(t.ctx, slog.LevelDebug, "transport: write failed; redialling",
			slog.String("to", w.addr), slog.Any("err", err))
	}
}

// write hands b to the socket in one vectored write, after the hello on a
// new connection, and advances b past the frames written in whole; those
// are counted as sent and not retried, the rest stay in b.
//
// The write must end by deadline, or up to slack before it: a deadline
// set earlier that is no more than slack earlier stands. Setting one goes
// deep into the runtime's timers, which grew the new writer goroutine's
// stack on every batch of a link that carries one frame at a time; that
// cost a twentieth of the load generator's CPU.
func (w *writer) write(oc *outConn, b *batch, deadline time.Time, slack time.Duration) error {
	t := w.t
	if deadline.Before(oc.deadline) || deadline.Sub(oc.deadline) > slack {
		_ = oc.conn.SetWriteDeadline(deadline)
		oc.deadline = deadline
	}
	bufs := w.iov[:0]
	if oc.hello != nil {
		bufs = append(bufs, oc.hello)
	}
	hello := len(oc.hello)
	bufs, size := b.left(bufs)
	w.iov = bufs
	// If this fails the connection is closed, and a new one sends its
	// own hello.
	oc.hello = nil
	// WriteTo consumes the slice it is called on: w.wv, not w.iov. A
	// local slice would escape to the heap, an allocation per batch.
	w.wv = bufs
	n64, err := w.wv.WriteTo(oc.conn)
	w.wv = nil
	clear(w.iov)
	if cap(w.iov) > maxKeptChunks {
		w.iov = nil
	}
	n := size
	if err != nil {
		n = max(int(n64)-hello, 0)
	}
	bytes, frames := b.advance(n)
	t.stats.framesSent.Add(uint64(frames))
	t.stats.bytesSent.Add(uint64(bytes))
	if err != nil {
		return err
	}
	if h := t.cfg.hooks.afterBatch; h != nil {
		h(w.addr, frames)
	}
	return nil
}

// dial connects to the destination, giving up at deadline if that is not
// zero and sooner than the dial timeout. The hello goes out with the
// first batch's first flush.
func (w *writer) dial(deadline time.Time) (*outConn, error) {
	t := w.t
	if h := t.cfg.hooks.beforeDial; h != nil {
		h(w.addr)
	}
	t.stats.dials.Add(1)
	d := net.Dialer{Timeout: t.cfg.dialTimeout, Deadline: deadline}
	if t.localAddr != nil {
		d.LocalAddr = t.localAddr
	}
	c, err := d.DialContext(t.dialCtx, "tcp", w.addr)
	if err != nil {
		return nil, fmt.Errorf("transport: dial %s: %w", w.addr, err)
	}
	if !t.track(c) {
		_ = c.Close()
		return nil, ErrClosed
	}
	oc := &outConn{conn: c, addr: w.addr, check: newCloseCheck(c), hello: appendFrame(nil, helloPayload(t.addr))}
	t.watch(oc)
	return oc, nil
}

// peerClosed drops a connection the peer has closed.
func (w *writer) peerClosed(oc *outConn) {
	w.closeConn(oc)
	w.t.log.LogAttrs(w.t.ctx, slog.LevelDebug, "transport: peer closed connection", slog.String("to", w.addr))
	if h := w.t.cfg.hooks.peerClosed; h != nil {
		h(w.addr)
	}
}

// closeConn closes oc, which also takes it out of the poller's set.
func (w *writer) closeConn(oc *outConn) {
	_ = oc.conn.Close()
	t := w.t
	t.mu.Lock()
	delete(t.conns, oc.conn)
	if oc.token != 0 {
		delete(t.watched, oc.token)
	}
	t.mu.Unlock()
}
