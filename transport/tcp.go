package transport

import (
	"bufio"
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
	defaultQueueSize        = 1024
	defaultInboxSize        = 4096
	defaultDialTimeout      = 2 * time.Second
	defaultHandshakeTimeout = 5 * time.Second
	defaultIdleTimeout      = 2 * time.Minute
	defaultMaxConns         = 1024

	// maxFrameSizeLimit is the largest accepted WithMaxFrameSize.
	maxFrameSizeLimit = 1 << 30
	// writeBufSize sizes the write buffers, which writers borrow from a
	// pool for each batch; readBufSize sizes each inbound connection's
	// read buffer.
	writeBufSize = 64 << 10
	readBufSize  = 16 << 10
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
	inboxSize        int
	dialTimeout      time.Duration
	handshakeTimeout time.Duration
	idleTimeout      time.Duration
	advertise        string
	logger           *slog.Logger
	maxConns         int
	maxConnsPerIP    int
	linger           time.Duration
	hooks            tcpHooks
}

// tcpHooks lets tests observe events that have no other synchronisation
// point. Every field may be nil. They are called from the transport's
// goroutines, never under its lock.
type tcpHooks struct {
	beforeDial func(addr string)              // a writer is about to dial addr
	afterBatch func(addr string, n int)       // n frames were written to addr
	peerClosed func(addr string)              // the peer closed the conn to addr
	writerDone func(addr string)              // the writer for addr exited
	rejected   func(remote string, err error) // an inbound conn was refused
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
// destination (default 1024). Send drops a frame and counts it in
// [TCPStats.Dropped] when its destination's queue is full.
func WithQueueSize(n int) TCPOption {
	return func(c *tcpConfig) error {
		if n < 1 {
			return fmt.Errorf("transport: queue size must be at least 1, got %d", n)
		}
		c.queueSize = n
		return nil
	}
}

// WithInboxSize sets the capacity of the channel returned by
// [TCP.Packets] (default 4096). An inbound frame that finds it full is
// dropped and counted in [TCPStats.Dropped].
func WithInboxSize(n int) TCPOption {
	return func(c *tcpConfig) error {
		if n < 1 {
			return fmt.Errorf("transport: inbox size must be at least 1, got %d", n)
		}
		c.inboxSize = n
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
// outbound writer with nothing to send for that long closes its connection
// and exits (the next Send starts a new one). It also bounds a single write
// blocked on a peer that stopped reading.
func WithIdleTimeout(d time.Duration) TCPOption {
	return func(c *tcpConfig) error {
		if d <= 0 {
			return fmt.Errorf("transport: idle timeout must be positive, got %v", d)
		}
		c.idleTimeout = d
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
// [TCPStats.Dropped]). Close never dials to flush.
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
	// dial or write, frames still queued at Close, and inbound frames that
	// found the Packets channel full.
	Dropped uint64
	// RejectedConns counts inbound connections closed before carrying any
	// frame: over the WithMaxConns cap or failing the handshake (bad magic,
	// bad or spoofed address, timeout).
	RejectedConns uint64
}

type tcpCounters struct {
	framesSent, bytesSent, framesRecv, bytesRecv, dropped, rejected atomic.Uint64
}

// TCP is a [Transport] over TCP. Frames are length-prefixed on the wire.
// Connections are one-directional: a node dials a peer to send to it and
// accepts the peer's own connection to receive from it. Each destination has
// one writer goroutine with a bounded queue; each accepted connection has one
// reader goroutine. A TCP is safe for concurrent use. Close stops every
// goroutine it started and waits for them.
type TCP struct {
	cfg       tcpConfig
	log       *slog.Logger
	ln        net.Listener
	addr      string       // advertised address
	localAddr *net.TCPAddr // source address for dials, nil for any
	inbox     chan Packet

	ctx     context.Context // cancelled by Close; aborts dials and backoff waits
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	writing sync.WaitGroup // the writer goroutines, which Close lets flush first

	mu      sync.RWMutex
	closed  bool
	writers map[string]*writer
	conns   map[net.Conn]struct{} // every open conn, inbound and outbound
	inbound int                   // open accepted conns
	perIP   map[netip.Addr]int    // open accepted conns by source IP

	stats tcpCounters
}

var _ Transport = (*TCP)(nil)

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
		inboxSize:        defaultInboxSize,
		dialTimeout:      defaultDialTimeout,
		handshakeTimeout: defaultHandshakeTimeout,
		idleTimeout:      defaultIdleTimeout,
		maxConns:         defaultMaxConns,
		maxConnsPerIP:    32,
		linger:           500 * time.Millisecond,
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
		inbox:   make(chan Packet, cfg.inboxSize),
		writers: make(map[string]*writer),
		conns:   make(map[net.Conn]struct{}),
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
	t.wg.Go(t.acceptLoop)
	return t, nil
}

// Addr returns the advertised address of this transport.
func (t *TCP) Addr() string { return t.addr }

// Packets returns the channel of inbound frames. It is never closed.
func (t *TCP) Packets() <-chan Packet { return t.inbox }

// Stats returns a snapshot of the transport's counters.
func (t *TCP) Stats() TCPStats {
	return TCPStats{
		FramesSent:     t.stats.framesSent.Load(),
		BytesSent:      t.stats.bytesSent.Load(),
		FramesReceived: t.stats.framesRecv.Load(),
		BytesReceived:  t.stats.bytesRecv.Load(),
		Dropped:        t.stats.dropped.Load(),
		RejectedConns:  t.stats.rejected.Load(),
	}
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
	buf := make([]byte, len(frame))
	copy(buf, frame)

	t.mu.RLock()
	if t.closed {
		t.mu.RUnlock()
		return ErrClosed
	}
	w := t.writers[addr]
	if w != nil {
		w.enqueue(buf)
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
		w = newWriter(t, addr)
		t.writers[addr] = w
		t.writing.Go(w.run)
	}
	w.enqueue(buf)
	return nil
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
	t.mu.Lock()
	conns := make([]net.Conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	<-flushed
	t.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("transport: close listener: %w", err)
	}
	return nil
}

// track registers c so that Close closes it. It returns false, and c must be
// closed by the caller, if the transport is already closed.
func (t *TCP) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *TCP) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
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
		t.conns[c] = struct{}{}
		t.wg.Go(func() { t.serve(c, ip) })
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

// serve runs the handshake on an accepted connection, then delivers its
// frames until it fails, idles out or the transport closes.
func (t *TCP) serve(c net.Conn, ip netip.Addr) {
	defer func() {
		_ = c.Close()
		t.mu.Lock()
		delete(t.conns, c)
		t.inbound--
		if t.perIP[ip]--; t.perIP[ip] <= 0 {
			delete(t.perIP, ip)
		}
		t.mu.Unlock()
	}()

	br := bufio.NewReaderSize(c, readBufSize)
	hdr := new([headerLen]byte)
	_ = c.SetReadDeadline(time.Now().Add(t.cfg.handshakeTimeout))
	from, err := readHello(br, hdr)
	if err == nil {
		var remote netip.Addr
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			remote = ta.AddrPort().Addr()
		}
		err = checkAnnounced(remote, from)
	}
	if err != nil {
		if t.ctx.Err() == nil {
			t.reject(c, err)
		}
		return
	}

	for {
		// Refresh the idle deadline whenever the next read may reach the
		// socket. Frames already buffered arrived moments ago, so skipping
		// the refresh for them saves a clock read and a timer update per
		// frame under load without changing the idle semantics.
		if br.Buffered() < headerLen {
			_ = c.SetReadDeadline(time.Now().Add(t.cfg.idleTimeout))
		}
		p, err := readFrame(br, hdr, t.cfg.maxFrame)
		if err != nil {
			switch {
			case t.ctx.Err() != nil:
			case errors.Is(err, ErrFrameTooLarge):
				t.log.Warn("transport: closing inbound connection", "from", from, "err", err)
			default:
				t.log.LogAttrs(t.ctx, slog.LevelDebug, "transport: inbound connection ended",
					slog.String("from", from), slog.Any("err", err))
			}
			return
		}
		t.stats.framesRecv.Add(1)
		t.stats.bytesRecv.Add(uint64(headerLen + len(p)))
		select {
		case t.inbox <- Packet{From: from, Payload: p}:
		default:
			t.stats.dropped.Add(1)
			t.log.LogAttrs(t.ctx, slog.LevelDebug, "transport: inbox full; frame dropped", slog.String("from", from))
		}
	}
}

// writer owns the outbound connection to one destination.
//
// Its queue is a slice that grows with the backlog, up to the queue size,
// rather than a channel of that capacity: a channel allocated queueSize
// slots (24 KiB at the default 1024) per destination for the writer's
// whole life, idle or not. The writer takes the whole queue at once,
// swapping it for its emptied previous batch.
type writer struct {
	t    *TCP
	addr string
	wake chan struct{} // capacity 1: "the queue may be non-empty"

	mu    sync.Mutex
	queue [][]byte // at most t.cfg.queueSize frames
}

// maxKeptBatch bounds the batch buffer a writer keeps between bursts.
const maxKeptBatch = 64

func newWriter(t *TCP, addr string) *writer {
	return &writer{t: t, addr: addr, wake: make(chan struct{}, 1)}
}

// enqueue adds frame to the queue without blocking, dropping it when full.
// The caller holds t.mu (read or write), which keeps the writer in the map.
func (w *writer) enqueue(frame []byte) {
	w.mu.Lock()
	if len(w.queue) >= w.t.cfg.queueSize {
		w.mu.Unlock()
		w.t.stats.dropped.Add(1)
		w.t.log.LogAttrs(w.t.ctx, slog.LevelDebug, "transport: send queue full; frame dropped", slog.String("to", w.addr))
		return
	}
	w.queue = append(w.queue, frame)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// take returns the queued frames and leaves spare, emptied, as the queue.
func (w *writer) take(spare [][]byte) [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	batch := w.queue
	w.queue = spare[:0]
	return batch
}

// retire removes w from the writers map if its queue is empty, so that the
// next Send starts a fresh writer. With drop set it discards (and counts)
// whatever is queued and always retires. It reports whether w retired.
// Send enqueues only under t.mu, so no frame can land in a retired writer.
func (w *writer) retire(drop bool) bool {
	t := w.t
	t.mu.Lock()
	defer t.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !drop && len(w.queue) > 0 {
		return false
	}
	t.stats.dropped.Add(uint64(len(w.queue)))
	clear(w.queue)
	w.queue = w.queue[:0]
	if t.writers[w.addr] == w {
		delete(t.writers, w.addr)
	}
	return true
}

// outConn is a live outbound connection.
type outConn struct {
	conn  net.Conn
	hello []byte        // the hello frame until the first batch goes out
	dead  chan struct{} // closed when the peer closes or resets the conn
}

// writeBufs holds the write buffers. A writer holds one only while it
// writes a batch, so an idle connection costs no buffer: with the buffer
// owned per connection, each outbound link pinned writeBufSize bytes for
// its whole life.
var writeBufs = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufSize) }}

func (w *writer) run() {
	t := w.t
	var oc *outConn
	defer func() {
		if oc != nil {
			w.closeConn(oc)
		}
		if h := t.cfg.hooks.writerDone; h != nil {
			h(w.addr)
		}
	}()

	idle := time.NewTimer(t.cfg.idleTimeout)
	defer idle.Stop()
	var batch [][]byte
	for {
		var dead <-chan struct{}
		if oc != nil {
			dead = oc.dead
		}
		select {
		case <-t.ctx.Done():
			// Closing: flush what is queued on an open connection,
			// within the linger deadline, then drop the rest.
			if batch = w.take(batch); len(batch) > 0 && oc != nil && t.cfg.linger > 0 {
				if n, err := w.write(oc, batch, time.Now().Add(t.cfg.linger)); err != nil {
					t.stats.dropped.Add(uint64(len(batch) - n))
				}
			} else {
				t.stats.dropped.Add(uint64(len(batch)))
			}
			w.retire(true)
			return
		case <-dead:
			w.peerClosed(oc)
			oc = nil
		case <-idle.C:
			if w.retire(false) {
				return
			}
			idle.Reset(t.cfg.idleTimeout)
		case <-w.wake:
			batch = w.take(batch)
			if len(batch) == 0 {
				continue // taken with an earlier wake-up
			}
			ok := w.sendBatch(&oc, batch)
			clear(batch)
			if cap(batch) > maxKeptBatch {
				batch = nil // let a burst's buffer go
			}
			if !ok {
				w.retire(true)
				return
			}
			idle.Reset(t.cfg.idleTimeout)
		}
	}
}

// sendBatch writes batch to the destination, dialling if needed. On a write
// error it redials once and resends the frames not yet handed to the socket.
// It reports false, with the unsent frames counted as dropped, if a dial or
// the retry fails.
func (w *writer) sendBatch(ocp **outConn, batch [][]byte) bool {
	t := w.t
	for attempt := 0; ; attempt++ {
		if oc := *ocp; oc != nil {
			select {
			case <-oc.dead:
				w.peerClosed(oc)
				*ocp = nil
			default:
			}
		}
		if *ocp == nil {
			oc, err := w.dial()
			if err != nil {
				t.stats.dropped.Add(uint64(len(batch)))
				if t.ctx.Err() == nil {
					t.log.LogAttrs(t.ctx, slog.LevelDebug, "transport: dial failed; queued frames dropped",
						slog.String("to", w.addr), slog.Any("err", err))
				}
				return false
			}
			*ocp = oc
		}
		n, err := w.write(*ocp, batch, time.Now().Add(t.cfg.idleTimeout))
		batch = batch[n:]
		if err == nil {
			return true
		}
		w.closeConn(*ocp)
		*ocp = nil
		if attempt > 0 || t.ctx.Err() != nil {
			t.stats.dropped.Add(uint64(len(batch)))
			if t.ctx.Err() == nil {
				t.log.Warn("transport: write failed after redial; queued frames dropped", "to", w.addr, "err", err)
			}
			return false
		}
		t.log.LogAttrs(t.ctx, slog.LevelDebug, "transport: write failed; redialling",
			slog.String("to", w.addr), slog.Any("err", err))
	}
}

// write frames batch into a pooled buffer and flushes once at the end (and
// whenever the buffer fills). It returns how many frames were flushed to the
// socket before an error; those are counted as sent and not retried.
func (w *writer) write(oc *outConn, batch [][]byte, deadline time.Time) (int, error) {
	t := w.t
	_ = oc.conn.SetWriteDeadline(deadline)
	bw := writeBufs.Get().(*bufio.Writer)
	bw.Reset(oc.conn)
	defer func() {
		bw.Reset(nil) // drop the conn and any error state
		writeBufs.Put(bw)
	}()
	if oc.hello != nil {
		// The hello cannot fail: bufio only reports errors on flush. It
		// goes out with the batch's first flush; if that fails the
		// connection is closed, and a new one sends its own hello.
		_, _ = bw.Write(oc.hello)
		oc.hello = nil
	}
	var hdr [headerLen]byte
	flushed, pending := 0, 0 // frames known flushed; bytes of frames since then
	account := func(upto int) {
		t.stats.framesSent.Add(uint64(upto - flushed))
		t.stats.bytesSent.Add(uint64(pending))
		flushed, pending = upto, 0
	}
	for i, f := range batch {
		if bw.Buffered() > 0 && bw.Available() < headerLen+len(f) {
			if err := bw.Flush(); err != nil {
				return flushed, err
			}
			account(i)
		}
		binary.BigEndian.PutUint32(hdr[:], uint32(len(f)))
		if _, err := bw.Write(hdr[:]); err != nil {
			return flushed, err
		}
		if _, err := bw.Write(f); err != nil {
			return flushed, err
		}
		pending += headerLen + len(f)
	}
	if err := bw.Flush(); err != nil {
		return flushed, err
	}
	account(len(batch))
	if h := t.cfg.hooks.afterBatch; h != nil {
		h(w.addr, len(batch))
	}
	return len(batch), nil
}

// dial connects to the destination. The hello goes out with the first
// batch's first flush.
func (w *writer) dial() (*outConn, error) {
	t := w.t
	if h := t.cfg.hooks.beforeDial; h != nil {
		h(w.addr)
	}
	d := net.Dialer{Timeout: t.cfg.dialTimeout}
	if t.localAddr != nil {
		d.LocalAddr = t.localAddr
	}
	c, err := d.DialContext(t.ctx, "tcp", w.addr)
	if err != nil {
		return nil, fmt.Errorf("transport: dial %s: %w", w.addr, err)
	}
	if !t.track(c) {
		_ = c.Close()
		return nil, ErrClosed
	}
	oc := &outConn{conn: c, hello: appendFrame(nil, helloPayload(t.addr)), dead: make(chan struct{})}
	// The peer never writes on this conn, so a read returns only when it
	// closes or resets it; that tells the writer to redial before the next
	// batch instead of losing it on a dead socket. The read ends when the
	// writer (or Close) closes the conn.
	t.wg.Go(func() {
		var b [1]byte
		_, _ = c.Read(b[:])
		close(oc.dead)
	})
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

func (w *writer) closeConn(oc *outConn) {
	_ = oc.conn.Close()
	w.t.untrack(oc.conn)
}
