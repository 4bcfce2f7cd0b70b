package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gossip-dev/gossip"
	"github.com/gossip-dev/gossip/transport"
)

// config is one load test; main fills it from the flags.
type config struct {
	Peers     int           `json:"n"`
	Seeds     int           `json:"seeds"`
	Messages  int           `json:"m"`
	Size      int           `json:"size"`
	Rate      float64       `json:"rate"`
	MinDegree int           `json:"min_degree"`
	MaxDegree int           `json:"max_degree"`
	Exponent  float64       `json:"degree_exponent"`
	Stagger   time.Duration `json:"-"`
	Drain     time.Duration `json:"-"`
	Timeout   time.Duration `json:"-"`
	// Slow > 0 logs every delivery slower than it to SlowLog.
	Slow      time.Duration `json:"-"`
	SlowLog   io.Writer     `json:"-"`
	QueueSize int           `json:"tcp_queue"`
	InboxSize int           `json:"tcp_inbox"`
	// QueueBytes and InboxBytes are the transport's byte bounds
	// (transport.WithQueueBytes, WithInboxBytes).
	QueueBytes int    `json:"tcp_queue_bytes"`
	InboxBytes int    `json:"tcp_inbox_bytes"`
	RandSeed   uint64 `json:"rand_seed"`
	// LazyFlush > 0 turns on gossip.WithLazyPush(LazyFlush, LazyGraft);
	// 0 floods.
	LazyFlush time.Duration `json:"lazy_flush_ns"`
	LazyGraft time.Duration `json:"lazy_graft_ns"`
	// EagerLinks is gossip.WithEagerLinks, with lazy push.
	EagerLinks int `json:"eager_links"`
	// SelfPrune is gossip.WithSelfPruning, with flooding.
	SelfPrune bool `json:"self_prune"`
	// RelayWait is gossip.WithRelayWait, with flooding (0: relay at once).
	RelayWait time.Duration `json:"relay_wait_ns"`
	// Signatures is gossip.WithSignatures (the library's default is on).
	Signatures bool `json:"signatures"`
	// PoW is gossip.WithProofOfWork: the registration puzzle's difficulty
	// (0 disables it). It costs CPU while peers join, not during the
	// workload.
	PoW    int          `json:"pow_difficulty"`
	Logger *slog.Logger `json:"-"`
	// HeapProfile, if set, is where a heap profile is written when the
	// workload ends.
	HeapProfile string `json:"-"`
}

// minSize is the smallest payload: the 8-byte sequence number.
const minSize = 8

func defaultConfig() config {
	return config{
		Peers: 50, Seeds: 3, Messages: 1000, Size: 256, Rate: 500,
		MinDegree: gossip.DefaultMinDegree, MaxDegree: 8, Exponent: gossip.DefaultDegreeExponent,
		Stagger: 10 * time.Millisecond, Drain: 10 * time.Second, Timeout: 60 * time.Second,
		QueueSize: 4096, InboxSize: 4096, QueueBytes: 4 << 20, InboxBytes: 64 << 20, RandSeed: 1, LazyGraft: time.Second, EagerLinks: gossip.DefaultEagerLinks, Signatures: true, PoW: gossip.DefaultPoWDifficulty,
	}
}

func (c *config) validate() error {
	switch {
	case c.Peers < 2:
		return errors.New("need at least 2 peers")
	case c.Seeds < 1:
		return errors.New("need at least 1 seed")
	case c.Messages < 1:
		return errors.New("need at least 1 message")
	case c.Size < minSize:
		return fmt.Errorf("size must be at least %d bytes (the sequence number)", minSize)
	case !(c.Rate > 0):
		return errors.New("rate must be positive")
	case c.Timeout <= 0:
		return errors.New("timeout must be positive")
	}
	return nil
}

// result is what the load test prints, as JSON.
type result struct {
	Config config `json:"config"`

	// Delivered is the fraction of (receiver, message) pairs delivered.
	Delivered  float64 `json:"delivered"`
	Deliveries int     `json:"deliveries"`
	Expected   int     `json:"expected"`
	Sent       int     `json:"sent"`

	LatencyP50 float64 `json:"latency_p50_ms"`
	LatencyP99 float64 `json:"latency_p99_ms"`
	LatencyMax float64 `json:"latency_max_ms"`
	// SpanMS is the time from the first send to the last delivery.
	SpanMS float64 `json:"first_send_to_last_delivery_ms"`
	// SendMS is how long peer 0 took to originate every message.
	SendMS float64 `json:"send_duration_ms"`
	// CPUMS is the process's CPU time (user and system, all threads) from
	// the first send to the end of the workload; CPUPerDeliveryUS divides
	// it by the deliveries.
	CPUMS            float64 `json:"cpu_ms"`
	CPUPerDeliveryUS float64 `json:"cpu_per_delivery_us"`

	Duplicates uint64 `json:"duplicates"`
	// Bytes and frames written by every transport during the workload
	// (first send to last delivery), then over the whole run.
	Bytes             uint64  `json:"bytes"`
	Frames            uint64  `json:"frames"`
	BytesPerDelivery  float64 `json:"bytes_per_delivery"`
	FramesPerDelivery float64 `json:"frames_per_delivery"`
	TotalBytes        uint64  `json:"total_bytes"`
	TotalFrames       uint64  `json:"total_frames"`
	TransportDropped  uint64  `json:"transport_dropped"`
	// OriginDropped is the part of TransportDropped at the origin's
	// transport (its full send queues, its full inbox), over the whole run.
	OriginDropped uint64 `json:"origin_dropped"`
	// Dials counts outbound connection attempts during the workload, then
	// over the whole run.
	Dials      uint64 `json:"dials"`
	TotalDials uint64 `json:"total_dials"`
	// LinksDown counts neighbour links that went down (EventNeighborDown,
	// either end) during the workload.
	LinksDown uint64 `json:"links_down"`
	// Incomplete counts the peers that missed at least one message, and
	// Unreached the messages that reached no peer at all.
	Incomplete int `json:"incomplete_peers"`
	Unreached  int `json:"unreached_messages"`

	// MaxHops is the largest hop count of a first arrival.
	MaxHops    int     `json:"max_hops"`
	MeanDegree float64 `json:"mean_degree"`
	MaxDeg     int     `json:"max_degree_seen"`
	ConnectMS  float64 `json:"connect_ms"`

	PeakHeap        uint64 `json:"peak_heap_bytes"`
	IdleHeapPerPeer uint64 `json:"idle_heap_per_node_bytes"`
	Goroutines      int    `json:"goroutines"`
	PeakGoroutines  int    `json:"peak_goroutines"`

	TimedOut bool `json:"timed_out"`
}

// receiver records first arrivals at one peer: arrival[i] is the arrival
// time of message i in nanoseconds since the test's base time, 0 if none.
type receiver struct {
	arrival []atomic.Int64
	maxHops atomic.Int64
	// via[i], kept only with -slow, is how message i first arrived.
	via []atomic.Pointer[arrivalPath]
}

// arrivalPath is the neighbour a first arrival came from and its hops.
type arrivalPath struct {
	from string
	hops int
}

// node is one running seed or peer.
type node struct {
	tr     *transport.TCP
	peer   *gossip.Peer // nil for a seed
	cancel context.CancelFunc
	done   chan struct{}
}

// runner owns everything one load test starts.
type runner struct {
	cfg   config
	base  time.Time
	nodes []*node // seeds first
	peers []*node
	recv  []*receiver // per peer; recv[0] unused (the origin)

	delivered atomic.Int64
	linksDown atomic.Uint64
	expected  int64
	complete  chan struct{}
	once      sync.Once
}

func run(ctx context.Context, cfg config) (res result, err error) {
	if err := cfg.validate(); err != nil {
		return res, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	res.Config = cfg
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	r := &runner{
		cfg:      cfg,
		base:     time.Now(),
		expected: int64(cfg.Peers-1) * int64(cfg.Messages),
		complete: make(chan struct{}),
	}
	defer r.shutdown()

	mon := startMonitor()
	defer mon.stop()

	if err := r.start(); err != nil {
		return res, err
	}
	connectStart := time.Now()
	if err := r.waitConnected(ctx); err != nil {
		res.TimedOut = true
		return res, err
	}
	res.ConnectMS = ms(time.Since(connectStart))
	degs := r.degrees()
	sum := 0
	for _, d := range degs {
		sum += d
		res.MaxDeg = max(res.MaxDeg, d)
	}
	res.MeanDegree = float64(sum) / float64(len(degs))
	res.IdleHeapPerPeer = idleHeap() / uint64(len(r.nodes))

	before, down0 := r.tcpStats(), r.linksDown.Load()
	cpu0 := cpuTime()
	sendAt, sent, sendErr := r.originate(ctx)
	res.Sent = sent
	if sent > 0 {
		res.SendMS = ms(sendAt[sent-1].Sub(sendAt[0]))
	}
	// Wait for every delivery, or the drain period after the last send.
	drain := time.NewTimer(cfg.Drain)
	select {
	case <-r.complete:
	case <-drain.C:
	case <-ctx.Done():
		res.TimedOut = true
	}
	drain.Stop()
	after := r.tcpStats()
	res.LinksDown = r.linksDown.Load() - down0
	res.CPUMS = ms(cpuTime() - cpu0)
	if cfg.HeapProfile != "" {
		if err := writeHeapProfile(cfg.HeapProfile); err != nil {
			return res, err
		}
	}

	r.collect(&res, sendAt[:sent])
	res.Bytes = after.BytesSent - before.BytesSent
	res.Frames = after.FramesSent - before.FramesSent
	res.TotalBytes, res.TotalFrames, res.TransportDropped = after.BytesSent, after.FramesSent, after.Dropped
	res.OriginDropped = r.peers[0].tr.Stats().Dropped
	res.Dials, res.TotalDials = after.Dials-before.Dials, after.Dials
	if res.Deliveries > 0 {
		res.BytesPerDelivery = float64(res.Bytes) / float64(res.Deliveries)
		res.FramesPerDelivery = float64(res.Frames) / float64(res.Deliveries)
		res.CPUPerDeliveryUS = res.CPUMS * 1000 / float64(res.Deliveries)
	}
	for _, p := range r.peers {
		res.Duplicates += p.peer.Stats().Duplicates
	}
	res.Goroutines = runtime.NumGoroutine()
	res.PeakHeap, res.PeakGoroutines = mon.stop()
	if sendErr != nil {
		return res, sendErr
	}
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// start listens and runs the seeds, then the peers, one every Stagger.
func (r *runner) start() error {
	cfg := r.cfg
	topts := []transport.TCPOption{
		transport.WithLogger(cfg.Logger),
		transport.WithQueueSize(cfg.QueueSize),
		transport.WithInboxSize(cfg.InboxSize),
		transport.WithQueueBytes(cfg.QueueBytes),
		transport.WithInboxBytes(cfg.InboxBytes),
		// Every node connects from 127.0.0.1: lift the per-IP cap on
		// inbound connections (a DoS defence).
		transport.WithMaxConnsPerIP(1 << 20),
	}
	var seedTrs []*transport.TCP
	var seeds []string
	for range cfg.Seeds {
		tr, err := transport.ListenTCP("127.0.0.1:0", topts...)
		if err != nil {
			return err
		}
		seedTrs = append(seedTrs, tr)
		seeds = append(seeds, tr.Addr())
	}
	common := []gossip.Option{
		gossip.WithLogger(cfg.Logger),
		gossip.WithMessages(0),
		gossip.WithLivenessInterval(time.Hour),
		gossip.WithRefreshInterval(time.Hour),
		gossip.WithAntiEntropy(0),
		gossip.WithSilenceCheck(0, 1),
		// Every node is on 127.0.0.1: one address group, which the
		// Sybil defences would cap at a few peers.
		gossip.WithAddressGroups(32, 1<<20, 1<<20),
		// The workload, not the DoS limits, is measured.
		gossip.WithRateLimit(1<<20, 1<<30),
		gossip.WithOriginRate(max(100, int(2*cfg.Rate))),
		gossip.WithMaintainInterval(500 * time.Millisecond),
		gossip.WithMinDegree(cfg.MinDegree),
		gossip.WithMaxDegree(cfg.MaxDegree),
		gossip.WithDegreeExponent(cfg.Exponent),
		gossip.WithMaxPayload(max(cfg.Size, gossip.DefaultMaxPayload)),
	}
	common = append(common, gossip.WithProofOfWork(cfg.PoW))
	if !cfg.Signatures {
		common = append(common, gossip.WithSignatures(false))
	}
	if cfg.LazyFlush > 0 {
		common = append(common, gossip.WithLazyPush(cfg.LazyFlush, cfg.LazyGraft), gossip.WithEagerLinks(cfg.EagerLinks))
	}
	if cfg.SelfPrune {
		common = append(common, gossip.WithSelfPruning(true))
	}
	if cfg.RelayWait > 0 {
		common = append(common, gossip.WithRelayWait(cfg.RelayWait))
	}
	for i, tr := range seedTrs {
		s, err := gossip.NewSeed(tr, seeds, append(common, gossip.WithRandSeed(cfg.RandSeed+uint64(i)))...)
		if err != nil {
			_ = tr.Close()
			for _, t := range seedTrs[i+1:] {
				_ = t.Close()
			}
			return err
		}
		r.launch(&node{tr: tr}, s.Run)
	}
	r.recv = make([]*receiver, cfg.Peers)
	var origin string
	for i := range cfg.Peers {
		tr, err := transport.ListenTCP("127.0.0.1:0", topts...)
		if err != nil {
			return err
		}
		opts := append(slices.Clone(common), gossip.WithRandSeed(cfg.RandSeed*1000+uint64(i)))
		if i > 0 {
			rc := &receiver{arrival: make([]atomic.Int64, cfg.Messages)}
			if cfg.Slow > 0 {
				rc.via = make([]atomic.Pointer[arrivalPath], cfg.Messages)
			}
			r.recv[i] = rc
			opts = append(opts, gossip.WithEventHandler(r.handler(rc, origin)))
		}
		p, err := gossip.NewPeer(tr, seeds, opts...)
		if err != nil {
			_ = tr.Close()
			return err
		}
		if i == 0 {
			origin = p.Addr()
		}
		n := &node{tr: tr, peer: p}
		r.peers = append(r.peers, n)
		r.launch(n, p.Run)
		time.Sleep(cfg.Stagger)
	}
	return nil
}

func (r *runner) launch(n *node, fn func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan struct{})
	r.nodes = append(r.nodes, n)
	go func() {
		defer close(n.done)
		if err := fn(ctx); err != nil {
			r.cfg.Logger.Error("node stopped", "err", err)
		}
	}()
}

// handler records the first arrival of each message of the origin (peer
// 0) at one peer.
func (r *runner) handler(rc *receiver, origin string) func(gossip.Event) {
	return func(ev gossip.Event) {
		if ev.Kind == gossip.EventNeighborDown {
			r.linksDown.Add(1)
		}
		if ev.Kind != gossip.EventMessage || ev.Origin != origin || len(ev.Payload) < minSize {
			return
		}
		seq := binary.BigEndian.Uint64(ev.Payload)
		if seq >= uint64(len(rc.arrival)) {
			return
		}
		at := max(int64(ev.Time.Sub(r.base)), 1)
		if rc.arrival[seq].CompareAndSwap(0, at) {
			if h := int64(ev.Hops); h > rc.maxHops.Load() {
				rc.maxHops.Store(h) // only this peer's handler writes it
			}
			if rc.via != nil {
				rc.via[seq].Store(&arrivalPath{from: ev.From, hops: ev.Hops})
			}
			if r.delivered.Add(1) == r.expected {
				r.once.Do(func() { close(r.complete) })
			}
		}
	}
}

// shutdown stops the peers, then the seeds, and closes every transport
// once its node has returned.
func (r *runner) shutdown() {
	for _, group := range [][]*node{r.nodes[min(r.cfg.Seeds, len(r.nodes)):], r.nodes[:min(r.cfg.Seeds, len(r.nodes))]} {
		for _, n := range group {
			n.cancel()
		}
		for _, n := range group {
			<-n.done
		}
	}
	for _, n := range r.nodes {
		_ = n.tr.Close()
	}
}

// waitConnected polls until every peer has a neighbour and the graph of
// links that both ends list is connected.
func (r *runner) waitConnected(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, isolated, reached := r.connected()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("overlay not connected (%d of %d peers without a neighbour, %d reachable from peer 0 over mutual links): %w",
				isolated, len(r.peers), reached, ctx.Err())
		case <-tick.C:
		}
	}
}

// connected reports whether every peer has a neighbour and the graph of
// mutual links is connected, with how many peers have no neighbour and
// how many peer 0 reaches.
func (r *runner) connected() (ok bool, isolated, reached int) {
	lists := make(map[string][]string, len(r.peers))
	for _, p := range r.peers {
		nb := p.peer.Neighbors()
		if len(nb) == 0 {
			isolated++
		}
		lists[p.peer.Addr()] = nb
	}
	seen := map[string]bool{r.peers[0].peer.Addr(): true}
	stack := []string{r.peers[0].peer.Addr()}
	for len(stack) > 0 {
		a := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, b := range lists[a] {
			if !seen[b] && slices.Contains(lists[b], a) {
				seen[b] = true
				stack = append(stack, b)
			}
		}
	}
	return isolated == 0 && len(seen) == len(r.peers), isolated, len(seen)
}

func (r *runner) degrees() []int {
	out := make([]int, len(r.peers))
	for i, p := range r.peers {
		out[i] = len(p.peer.Neighbors())
	}
	return out
}

// originate broadcasts the messages from peer 0, message i at
// start + i/rate, and returns when each was handed to the peer.
func (r *runner) originate(ctx context.Context) ([]time.Time, int, error) {
	cfg := r.cfg
	origin := r.peers[0].peer
	sendAt := make([]time.Time, cfg.Messages)
	payload := make([]byte, cfg.Size)
	for i := minSize; i < len(payload); i++ {
		payload[i] = byte('a' + i%26)
	}
	period := float64(time.Second) / cfg.Rate
	start := time.Now()
	for i := range cfg.Messages {
		if d := time.Until(start.Add(time.Duration(float64(i) * period))); d > 0 {
			time.Sleep(d)
		}
		binary.BigEndian.PutUint64(payload, uint64(i))
		sendAt[i] = time.Now()
		if err := origin.Broadcast(ctx, payload); err != nil {
			return sendAt, i, fmt.Errorf("broadcast %d: %w", i, err)
		}
	}
	return sendAt, cfg.Messages, nil
}

// collect fills the delivery and latency figures.
func (r *runner) collect(res *result, sendAt []time.Time) {
	res.Expected = int(r.expected)
	lat := make([]time.Duration, 0, r.expected)
	var last time.Duration
	reached := make([]bool, len(sendAt))
	for _, rc := range r.recv[1:] {
		res.MaxHops = max(res.MaxHops, int(rc.maxHops.Load()))
		missed := false
		for i := range rc.arrival {
			at := rc.arrival[i].Load()
			if at == 0 || i >= len(sendAt) {
				missed = missed || i < len(sendAt)
				continue
			}
			reached[i] = true
			arrived := r.base.Add(time.Duration(at))
			lat = append(lat, arrived.Sub(sendAt[i]))
			if r.cfg.Slow > 0 && r.cfg.SlowLog != nil && arrived.Sub(sendAt[i]) > r.cfg.Slow {
				fmt.Fprintf(r.cfg.SlowLog, "slow delivery: message %d reached peer %d after %v", i, slices.Index(r.recv, rc), arrived.Sub(sendAt[i]))
				if v := rc.via[i].Load(); v != nil {
					fmt.Fprintf(r.cfg.SlowLog, " (%d hops, from %s)", v.hops, v.from)
				}
				fmt.Fprintln(r.cfg.SlowLog)
			}
			last = max(last, arrived.Sub(sendAt[0]))
		}
		if missed {
			res.Incomplete++
		}
	}
	for _, ok := range reached {
		if !ok {
			res.Unreached++
		}
	}
	res.Deliveries = len(lat)
	res.Delivered = float64(len(lat)) / float64(r.expected)
	res.SpanMS = ms(last)
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return ms(lat[min(len(lat)-1, int(p*float64(len(lat))))]) }
	res.LatencyP50, res.LatencyP99, res.LatencyMax = pct(0.50), pct(0.99), ms(lat[len(lat)-1])
}

func (r *runner) tcpStats() transport.TCPStats {
	var s transport.TCPStats
	for _, n := range r.nodes {
		st := n.tr.Stats()
		s.BytesSent += st.BytesSent
		s.FramesSent += st.FramesSent
		s.Dropped += st.Dropped
		s.Dials += st.Dials
	}
	return s
}

// idleHeap returns the live heap after a collection.
func idleHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// monitor samples the heap and the goroutine count every 100ms.
type monitor struct {
	stopc   chan struct{}
	done    chan struct{}
	heap    uint64
	gor     int
	stopped bool
}

func startMonitor() *monitor {
	m := &monitor{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			m.sample()
			select {
			case <-m.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return m
}

func (m *monitor) sample() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.heap = max(m.heap, ms.HeapAlloc)
	m.gor = max(m.gor, runtime.NumGoroutine())
}

// stop ends sampling (idempotent) and returns the peaks.
func (m *monitor) stop() (heap uint64, goroutines int) {
	if !m.stopped {
		m.stopped = true
		close(m.stopc)
		<-m.done
		m.sample()
	}
	return m.heap, m.gor
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
