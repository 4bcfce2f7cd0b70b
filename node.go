package gossip

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gossip-dev/gossip/codec"
	"github.com/gossip-dev/gossip/transport"
)

// outbound is one message the state machine asks the shell to send.
type outbound struct {
	to  string
	msg *wireMsg
}

// effects is what one step of a state machine asks the shell to do.
type effects struct {
	sends   []outbound
	events  []Event
	fatal   error      // non-nil ends Run with this error
	persist []wirePeer // seeds: the peer list to write to the persist file
	save    bool       // persist is due
	// async is CPU work (proof of work) to run off the loop; each returns
	// the step to apply on the loop when done.
	async []func(ctx context.Context) func(now time.Time)
}

func (fx *effects) send(to string, m *wireMsg) {
	m.V = wireVersion
	fx.sends = append(fx.sends, outbound{to, m})
}

// machine is the pure protocol core of a Seed or Peer. It does no I/O,
// starts no goroutines and never reads the clock: the shell passes now.
type machine interface {
	start(now time.Time)
	// receive handles m, from the neighbour or seed from. The machine owns
	// m from then on: it may keep or change it.
	receive(from string, m *wireMsg, now time.Time)
	tick(now time.Time)
	// next returns when tick must run next; the zero time means never.
	next() time.Time
	// ban drops addr, whose reputation fell to the ban threshold.
	ban(addr string, now time.Time)
	stop(now time.Time)
	effects() *effects
}

// node is the I/O shell shared by Seed and Peer: it owns the transport
// reads, the timer, the codec, and the event dispatcher, and runs the
// machine on a single goroutine.
type node struct {
	cfg      *config
	tr       transport.Transport
	m        machine
	log      *slog.Logger
	requests chan func(now time.Time)
	started  atomic.Bool
	done     chan struct{} // closed when the loop has exited
	stats    nodeStats
	prepare  func() // run on the loop goroutine before the machine starts
	rep      *reputation
	asyncCtx context.Context // the loop's; async work stops with it
	armed    time.Time       // deadline the loop's timer is set for; zero if stopped or fired
	asyncWG  sync.WaitGroup
	// app is the codec as a codec.AppendMarshaler, or nil if it is not
	// one: flush then encodes into a buffer from frameBufs.
	app codec.AppendMarshaler
	// alias is the codec as a codec.AliasUnmarshaler, or nil: handle then
	// decodes frames without copying their byte fields. A transport hands
	// each Packet's payload over to the node, which never changes it.
	alias codec.AliasUnmarshaler
	// rel is the transport as a transport.Releaser, or nil; oneShot, if
	// set, tells the destinations exchanged with only now and then (a
	// peer's seeds, a seed's peers), whose connections flush releases
	// after each send so that none stays open between exchanges.
	rel     transport.Releaser
	oneShot func(addr string) bool
}

// frameBufs holds the buffers flush encodes frames into when the codec is a
// codec.AppendMarshaler. A transport does not retain a frame after Send
// returns, so one buffer serves every frame of a flush, and the next flush
// (of any node) reuses it: no allocation per frame. Pooled rather than kept
// by each node, so that an idle node holds none.
var frameBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledFrame bounds the buffers kept in frameBufs, so that one unusually
// large frame does not pin its buffer.
const maxPooledFrame = 64 << 10

type nodeStats struct {
	framesIn, framesOut, badFrames, sendErrors, refused atomic.Uint64
}

// FrameStats are a node's counters of frames in and out, shared by
// PeerStats and SeedStats.
type FrameStats struct {
	// FramesIn counts inbound frames, FramesOut frames handed to the
	// transport.
	FramesIn, FramesOut uint64
	// BadFrames counts inbound frames that could not be decoded or were
	// invalid.
	BadFrames uint64
	// Refused counts inbound frames dropped before decoding: over a
	// per-source rate limit or from a banned node.
	Refused uint64
	// SendErrors counts frames the codec or the transport refused.
	SendErrors uint64
}

func (s *nodeStats) snapshot() FrameStats {
	return FrameStats{
		FramesIn: s.framesIn.Load(), FramesOut: s.framesOut.Load(), BadFrames: s.badFrames.Load(),
		Refused: s.refused.Load(), SendErrors: s.sendErrors.Load(),
	}
}

func newRand(cfg *config) *rand.Rand {
	if cfg.seeded {
		return rand.New(rand.NewPCG(cfg.seed, cfg.seed^0x9e3779b97f4a7c15))
	}
	return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
}

func newNode(tr transport.Transport, cfg *config, m machine, rep *reputation) *node {
	app, _ := cfg.codec.(codec.AppendMarshaler)
	alias, _ := cfg.codec.(codec.AliasUnmarshaler)
	rel, _ := tr.(transport.Releaser)
	return &node{
		rel:      rel,
		app:      app,
		alias:    alias,
		rep:      rep,
		cfg:      cfg,
		tr:       tr,
		m:        m,
		log:      cfg.logger.With("node", tr.Addr()),
		requests: make(chan func(time.Time)),
		done:     make(chan struct{}),
	}
}

// run is Seed.Run and Peer.Run.
func (n *node) run(ctx context.Context) error {
	if !n.started.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	d := newDispatcher(n.cfg.onEvent)
	// The loop runs on the caller's goroutine: one stack fewer per node.
	err := func() error {
		defer d.wait()
		defer close(n.done)
		return n.loop(ctx, d)
	}()
	return err
}

// do runs fn on the loop goroutine and waits for it. It returns ErrStopped
// once the loop has exited and ctx.Err() if ctx ends first.
func (n *node) do(ctx context.Context, fn func(now time.Time)) error {
	done := make(chan struct{})
	req := func(now time.Time) { fn(now); close(done) }
	select {
	case n.requests <- req:
	case <-n.done:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-n.done:
		return ErrStopped
	}
}

func (n *node) loop(ctx context.Context, d *dispatcher) error {
	ctx, cancel := context.WithCancel(ctx)
	defer n.asyncWG.Wait()
	defer cancel()
	n.asyncCtx = ctx
	if n.prepare != nil {
		n.prepare()
	}
	n.m.start(time.Now())
	if err := n.flush(ctx, d); err != nil {
		return err
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop() // armed is zero: arm sets the first deadline
	defer timer.Stop()
	for {
		n.arm(timer)
		select {
		case <-ctx.Done():
			// Leave gracefully: the sends are queued on the transport,
			// which does not wait on the network.
			n.drainInbox(ctx)
			n.m.stop(time.Now())
			_ = n.flush(context.WithoutCancel(ctx), d)
			return nil
		case pkt := <-n.tr.Packets():
			n.handle(ctx, pkt)
		case <-timer.C:
			n.armed = time.Time{}
			n.m.tick(time.Now())
		case req := <-n.requests:
			req(time.Now())
		}
		for _, addr := range n.rep.drainBanned() {
			n.log.Warn("banning node: reputation fell to the threshold", "addr", addr, "for", n.cfg.banDuration)
			n.m.ban(addr, time.Now())
		}
		if err := n.flush(ctx, d); err != nil {
			return err
		}
	}
}

// drainInbox handles the frames already waiting in the transport's inbox
// when the node stops, so that the state it stops with (and a seed
// persists) includes them: a peer's leave that arrived just before the
// seed's own stop still removes that peer. Frames that arrive later are
// not waited for.
func (n *node) drainInbox(ctx context.Context) {
	ch := n.tr.Packets()
	for range len(ch) {
		select {
		case pkt := <-ch:
			n.handle(ctx, pkt)
		default:
			return
		}
	}
}

// handle decodes one inbound frame and hands it to the machine. It is not
// inlined into loop so that the decoded message's frame does not stay on
// the stack of every idle node.
//
//go:noinline
func (n *node) handle(ctx context.Context, pkt transport.Packet) {
	n.stats.framesIn.Add(1)
	now := time.Now()
	// Shed work before decoding: banned and over-rate sources.
	if !n.rep.admit(pkt.From, len(pkt.Payload), now) {
		n.stats.refused.Add(1)
		return
	}
	var msg wireMsg
	var err error
	if n.alias != nil {
		err = n.alias.UnmarshalAlias(pkt.Payload, &msg)
		if err == nil && msg.K != kindGossip {
			msg.detach()
		}
	} else {
		err = n.cfg.codec.Unmarshal(pkt.Payload, &msg)
	}
	if err == nil {
		err = msg.validate(n.cfg.maxPayload)
	}
	if err != nil {
		n.stats.badFrames.Add(1)
		n.rep.add(pkt.From, penaltyMalformed, now)
		n.log.LogAttrs(ctx, slog.LevelDebug, "dropping bad frame",
			slog.String("from", pkt.From), slog.Any("err", err))
		return
	}
	n.m.receive(pkt.From, &msg, now)
}

// arm sets timer to fire at the machine's next deadline.
func (n *node) arm(t *time.Timer) {
	next := n.m.next()
	if next.Equal(n.armed) {
		return // already set for it: spare a timer reset per frame
	}
	n.armed = next
	if next.IsZero() {
		t.Stop()
		return
	}
	t.Reset(max(time.Until(next), 0))
}

// flush carries out the machine's pending effects.
func (n *node) flush(ctx context.Context, d *dispatcher) error {
	fx := n.m.effects()
	// The machines never change a message once queued, and one message
	// often goes to many neighbours: encode it once.
	var (
		last     *wireMsg
		frame    []byte
		frameErr error
		buf      *[]byte // from frameBufs, once a frame was encoded into it
	)
	for _, o := range fx.sends {
		if o.msg != last {
			last = o.msg
			if n.app != nil {
				if buf == nil {
					buf = frameBufs.Get().(*[]byte)
				}
				// The frames of earlier messages have been sent: the
				// buffer is free again.
				frame, frameErr = n.app.AppendMarshal((*buf)[:0], o.msg)
				if frameErr == nil {
					*buf = frame
				}
			} else {
				frame, frameErr = n.cfg.codec.Marshal(o.msg)
			}
		}
		err := frameErr
		if err == nil {
			err = n.tr.Send(ctx, o.to, frame)
		}
		if err != nil {
			n.stats.sendErrors.Add(1)
			n.log.LogAttrs(ctx, slog.LevelDebug, "send failed",
				slog.String("to", o.to), slog.String("kind", o.msg.K.String()), slog.Any("err", err))
			continue
		}
		n.stats.framesOut.Add(1)
		if n.rel != nil && n.oneShot != nil && n.oneShot(o.to) {
			n.rel.Release(o.to)
		}
	}
	if buf != nil && cap(*buf) <= maxPooledFrame {
		*buf = (*buf)[:0]
		frameBufs.Put(buf)
	}
	clear(fx.sends)
	fx.sends = fx.sends[:0]
	if len(fx.events) > 0 {
		d.push(fx.events) // copies them
		clear(fx.events)
		fx.events = fx.events[:0]
		if cap(fx.events) > maxKeptEvents {
			fx.events = nil
		}
	}
	for _, work := range fx.async {
		n.asyncWG.Go(func() {
			step := work(n.asyncCtx)
			select {
			case n.requests <- step:
			case <-n.asyncCtx.Done():
			}
		})
	}
	clear(fx.async)
	fx.async = fx.async[:0]
	if fx.save {
		if err := writeFileAtomic(n.cfg.persistPath, encodePeerFile(fx.persist)); err != nil {
			n.log.Warn("cannot persist peer list", "path", n.cfg.persistPath, "err", err)
		}
		fx.save, fx.persist = false, nil
	}
	err := fx.fatal
	fx.fatal = nil
	return err
}

// dispatcher delivers events to the user's handler, in order, through an
// unbounded FIFO so the protocol never waits for it. A goroutine runs the
// handler only while events are queued: push starts it, and it exits when
// it finds the queue empty, so that an idle node holds none (it was one of
// an idle node's ten). One runs at a time, and it takes the whole queue
// at once, so events are delivered in order and never concurrently.
//
// The FIFO is a list of fixed-size blocks of events taken from a pool and
// given back once delivered, so a steady stream of events allocates
// nothing and an idle node holds no block (a fresh slice per batch was a
// fifth of the bytes the load generator allocated at 5000 messages a
// second).
type dispatcher struct {
	fn      func(Event)
	mu      sync.Mutex
	queue   []*eventBlock
	spare   []*eventBlock // the last delivered list, cleared, for queue's next turn
	running bool          // a goroutine runs run; set by push, cleared by run
	wg      sync.WaitGroup
}

// eventBlock is a block of the dispatcher's FIFO: ev[:n] are queued.
type eventBlock struct {
	n  int
	ev [eventBlockSize]Event
}

const eventBlockSize = 32

// eventBlocks holds the free event blocks of every dispatcher.
var eventBlocks = sync.Pool{New: func() any { return new(eventBlock) }}

// maxKeptEvents bounds the event slice the loop keeps for reuse between
// steps, and maxKeptBlocks the block list a dispatcher keeps, so that a
// burst's slices go back to the collector.
const (
	maxKeptEvents = 8
	maxKeptBlocks = 64
)

func newDispatcher(fn func(Event)) *dispatcher {
	return &dispatcher{fn: fn}
}

// push queues copies of evs and starts the goroutine that delivers them
// unless it runs. Without a handler it drops them.
func (d *dispatcher) push(evs []Event) {
	if d.fn == nil {
		return
	}
	d.mu.Lock()
	for len(evs) > 0 {
		var b *eventBlock
		if last := len(d.queue) - 1; last >= 0 && d.queue[last].n < eventBlockSize {
			b = d.queue[last]
		} else {
			b = eventBlocks.Get().(*eventBlock)
			d.queue = append(d.queue, b)
		}
		c := copy(b.ev[b.n:], evs)
		b.n += c
		evs = evs[c:]
	}
	start := !d.running
	d.running = true
	d.mu.Unlock()
	if start {
		d.wg.Add(1)
		go d.runTracked()
	}
}

// wait returns once every event pushed so far has been delivered. The
// loop calls it as it exits, after its last push.
func (d *dispatcher) wait() { d.wg.Wait() }

// runTracked runs run, counted in wg. A go statement on a method
// allocates nothing; a closure for WaitGroup.Go would, on every start.
func (d *dispatcher) runTracked() {
	defer d.wg.Done()
	d.run()
}

// run delivers the queue, batch by batch, and returns when it finds it
// empty.
func (d *dispatcher) run() {
	for {
		d.mu.Lock()
		blocks := d.queue
		if len(blocks) == 0 {
			d.running = false
			d.mu.Unlock()
			return
		}
		d.queue, d.spare = d.spare, nil
		d.mu.Unlock()
		for _, b := range blocks {
			for _, ev := range b.ev[:b.n] {
				d.fn(ev)
			}
			clear(b.ev[:b.n])
			b.n = 0
			eventBlocks.Put(b)
		}
		clear(blocks)
		if cap(blocks) <= maxKeptBlocks {
			d.mu.Lock()
			d.spare = blocks[:0]
			d.mu.Unlock()
		}
	}
}
