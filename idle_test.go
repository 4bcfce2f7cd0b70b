package gossip

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gossip-dev/gossip/transport"
)

// idleFigures is the memory an idle overlay holds, per node (seeds
// included), over a baseline taken before any node started.
type idleFigures struct {
	nodes      int
	heap       float64 // HeapInuse bytes per node
	live       float64 // HeapAlloc bytes per node: the live objects
	stack      float64 // StackInuse bytes per node
	goroutines float64 // goroutines per node
	links      int     // mutual neighbour links
}

func (f idleFigures) bytes() float64 { return f.heap + f.stack }

func (f idleFigures) String() string {
	return fmt.Sprintf("%d nodes, %d links: %.0f bytes/node (heap %.0f, of it live %.0f; stacks %.0f), %.1f goroutines/node",
		f.nodes, f.links, f.bytes(), f.heap, f.live, f.stack, f.goroutines)
}

// idleOverlay is seeds and peers over real TCP on 127.0.0.1, formed and
// then left idle: no application traffic, only the protocol's own
// liveness checks at their default interval.
type idleOverlay struct {
	peers []*Peer
	trs   []*transport.TCP
	stop  func()

	wake   chan struct{} // capacity 1: an event arrived
	joined atomic.Int64
}

// startIdleOverlay starts nSeeds seeds and nPeers peers. Everything it
// starts is stopped by the returned overlay's stop, also registered as a
// cleanup.
func startIdleOverlay(tb testing.TB, nSeeds, nPeers int) *idleOverlay {
	tb.Helper()
	o := &idleOverlay{wake: make(chan struct{}, 1)}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	topts := []transport.TCPOption{
		transport.WithLogger(quiet),
		// Every node connects from 127.0.0.1: lift the per-IP cap on
		// inbound connections (a DoS defence), as examples/loadtest does.
		transport.WithMaxConnsPerIP(1 << 10),
	}
	onEvent := func(ev Event) {
		if ev.Kind == EventJoined {
			o.joined.Add(1)
		}
		select {
		case o.wake <- struct{}{}:
		default:
		}
	}
	opts := []Option{
		WithLogger(quiet), WithEventHandler(onEvent),
		WithMessages(0), WithProofOfWork(0),
		// All nodes share one address group on 127.0.0.1.
		WithAddressGroups(32, 1<<20, 1<<20),
		WithRegisterTimeout(time.Second), WithConnectTimeout(time.Second),
		WithRetryBackoff(50*time.Millisecond, time.Second),
		WithMaintainInterval(100 * time.Millisecond),
	}

	var (
		wg      sync.WaitGroup
		cancels []context.CancelFunc
	)
	o.stop = sync.OnceFunc(func() {
		for _, c := range cancels {
			c()
		}
		wg.Wait()
		for _, tr := range o.trs {
			_ = tr.Close()
		}
	})
	tb.Cleanup(o.stop)
	run := func(fn func(context.Context) error) {
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		wg.Go(func() {
			if err := fn(ctx); err != nil {
				tb.Errorf("Run: %v", err)
			}
		})
	}
	listen := func() *transport.TCP {
		tr, err := transport.ListenTCP("127.0.0.1:0", topts...)
		if err != nil {
			tb.Fatal(err)
		}
		o.trs = append(o.trs, tr)
		return tr
	}

	var seeds []string
	var seedTrs []*transport.TCP
	for range nSeeds {
		tr := listen()
		seedTrs = append(seedTrs, tr)
		seeds = append(seeds, tr.Addr())
	}
	for i, tr := range seedTrs {
		s, err := NewSeed(tr, seeds, append(opts, WithRandSeed(uint64(i+1)))...)
		if err != nil {
			tb.Fatal(err)
		}
		run(s.Run)
	}
	for i := range nPeers {
		p, err := NewPeer(listen(), seeds, append(opts, WithRandSeed(uint64(1000+i)))...)
		if err != nil {
			tb.Fatal(err)
		}
		o.peers = append(o.peers, p)
		run(p.Run)
	}
	return o
}

// formed reports whether every peer has joined and has at least the
// minimum number of neighbours, and the graph of links both ends list is
// connected; it returns the number of such links.
func (o *idleOverlay) formed() (bool, int) {
	if int(o.joined.Load()) < len(o.peers) {
		return false, 0
	}
	lists := make(map[string][]string, len(o.peers))
	for _, p := range o.peers {
		nb := p.Neighbors()
		if len(nb) < DefaultMinDegree {
			return false, 0
		}
		lists[p.Addr()] = nb
	}
	links := 0
	start := o.peers[0].Addr()
	seen := map[string]bool{start: true}
	stack := []string{start}
	for len(stack) > 0 {
		a := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, b := range lists[a] {
			if !slices.Contains(lists[b], a) {
				continue
			}
			if a < b {
				links++
			}
			if !seen[b] {
				seen[b] = true
				stack = append(stack, b)
			}
		}
	}
	if len(seen) != len(o.peers) {
		return false, 0
	}
	return true, links
}

// waitFormed blocks until the overlay is formed, re-checking on every
// event and, since a neighbour list can change without one, on a slow
// poll. The timeout only catches hangs.
func (o *idleOverlay) waitFormed(tb testing.TB, timeout time.Duration) int {
	tb.Helper()
	guard := time.NewTimer(timeout)
	defer guard.Stop()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		if ok, links := o.formed(); ok {
			return links
		}
		select {
		case <-o.wake:
		case <-poll.C:
		case <-guard.C:
			tb.Fatalf("overlay of %d peers not formed within %v (%d joined)", len(o.peers), timeout, o.joined.Load())
			return 0
		}
	}
}

// waitParked waits until the overlay's transports have parked at least
// want inbound connections (see transport.WithParkAfter), which takes a
// liveness round or so after the formation: a connection parks once a
// wait for a frame has lasted the park delay and the next frame has come.
// It returns how many are parked. On a system where connections do not
// park it returns 0 at once.
func (o *idleOverlay) waitParked(tb testing.TB, want int, timeout time.Duration) int {
	tb.Helper()
	if runtime.GOOS != "linux" {
		return 0
	}
	deadline := time.Now().Add(timeout)
	for {
		n := 0
		for _, tr := range o.trs {
			n += tr.Stats().ParkedConns
		}
		if n >= want {
			return n
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d inbound connections parked within %v, want %d", n, timeout, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type memSample struct {
	heap, live, stack uint64
	goroutines        int
}

func sampleMem() memSample {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memSample{heap: m.HeapInuse, live: m.HeapAlloc, stack: m.StackInuse, goroutines: runtime.NumGoroutine()}
}

func (s memSample) per(base memSample, nodes, links int) idleFigures {
	n := float64(nodes)
	return idleFigures{
		nodes:      nodes,
		links:      links,
		heap:       (float64(s.heap) - float64(base.heap)) / n,
		live:       (float64(s.live) - float64(base.live)) / n,
		stack:      (float64(s.stack) - float64(base.stack)) / n,
		goroutines: float64(s.goroutines-base.goroutines) / n,
	}
}

var idleHeapProfile = flag.String("idle.heapprofile", "", "BenchmarkIdlePeerMemory writes a heap profile of the idle overlay to this file")

// writeIdleProfile writes the live heap, as of a fresh collection, to the
// file named by -idle.heapprofile, if any.
func writeIdleProfile(tb testing.TB) {
	if *idleHeapProfile == "" {
		return
	}
	f, err := os.Create(*idleHeapProfile)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		tb.Fatal(err)
	}
}

const (
	idleSeeds = 3
	idlePeers = 50
)

// BenchmarkIdlePeerMemory measures the memory of an idle overlay over
// real TCP: 3 seeds and 50 peers on 127.0.0.1 with the default transport
// settings, formed (every peer joined, with at least the minimum degree,
// mutual links connected) and then idle. It reports, per node (seeds
// included), HeapInuse+StackInuse after a collection and the goroutine
// count, both over a baseline taken before any node started. Each
// iteration is one collection and sample; the figures are those of the
// last one. The time per op is that of a collection and means nothing.
//
//	go test -run '^$' -bench IdlePeerMemory -count 5 .
//	go test -run '^$' -bench IdlePeerMemory -benchtime 1x -memprofilerate 1 -args -idle.heapprofile idle.pprof
//	go tool pprof -sample_index=inuse_space -top idle.pprof
func BenchmarkIdlePeerMemory(b *testing.B) {
	base := sampleMem()
	o := startIdleOverlay(b, idleSeeds, idlePeers)
	links := o.waitFormed(b, time.Minute)
	parked := o.waitParked(b, 2*links, time.Minute) // each link is a connection each way
	var s memSample
	for b.Loop() {
		s = sampleMem()
	}
	writeIdleProfile(b)
	f := s.per(base, idleSeeds+idlePeers, links)
	b.ReportMetric(f.bytes(), "bytes/peer")
	b.ReportMetric(f.heap, "heap-bytes/peer")
	b.ReportMetric(f.live, "live-heap-bytes/peer")
	b.ReportMetric(f.stack, "stack-bytes/peer")
	b.ReportMetric(f.goroutines, "goroutines/peer")
	b.ReportMetric(float64(links), "links")
	b.ReportMetric(float64(parked), "parked-conns")
}

// TestIdlePeerMemory logs the idle figures of BenchmarkIdlePeerMemory
// (run with -v to see them) and checks that stopping the overlay gives
// every goroutine back. It asserts no memory figure: the race detector
// and a busy machine move them.
func TestIdlePeerMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 53 nodes over TCP")
	}
	base := sampleMem()
	o := startIdleOverlay(t, idleSeeds, idlePeers)
	links := o.waitFormed(t, time.Minute)
	f := sampleMem().per(base, idleSeeds+idlePeers, links)
	t.Logf("idle over TCP: %v", f)
	o.stop()
	// goleak in TestMain checks the goroutines once every test is done.
}

// TestGuardBucket checks the per-source token buckets (x/time/rate): a
// burst, then refusal with a penalty, the byte limit, and no limiter for
// an entry that never admits a frame (a dead-node reporter's).
func TestGuardBucket(t *testing.T) {
	cfg, err := newConfig([]Option{WithRateLimit(2, 100)}) // bursts of 4 frames, 200 bytes
	if err != nil {
		t.Fatal(err)
	}
	r := newReputation(cfg)
	for i := range 4 {
		if !r.admit("a", 10, t0) {
			t.Fatalf("frame %d refused", i)
		}
	}
	if r.admit("a", 10, t0) || r.score("a", t0) != penaltyRate {
		t.Fatalf("fifth frame admitted or not penalised (score %v)", r.score("a", t0))
	}
	if !r.admit("b", 150, t0) || r.admit("b", 60, t0) || !r.admit("b", 50, t0) {
		t.Fatal("byte limit not applied")
	}
	// Reporters' entries never use the buckets: they must not cost them.
	if n := testing.AllocsPerRun(10, func() { newReputation(cfg).add("x", -1, t0) }); n > 3 {
		t.Errorf("a reputation entry costs %v allocations", n)
	}
}

// TestSeenSetShrinks: once a burst has expired, the seen set gives back
// its memory, and keeps the entries still live, in order.
func TestSeenSetShrinks(t *testing.T) {
	const n, ttl = 20000, 5 * time.Second
	s := newSeenSet(DefaultSeenSize, ttl)
	id := func(i int) msgID { return gossipID("o", uint64(i), 0, nil) }
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Millisecond / 4) }
	for i := range n {
		s.add(id(i), at(i))
	}
	keep := 1000
	s.expire(at(n - keep).Add(ttl - 1)) // the last keep entries are younger than ttl
	if s.len() != keep || s.contains(id(n-keep-1)) || !s.contains(id(n-keep)) || !s.contains(id(n-1)) {
		t.Fatalf("after expiry: len %d", s.len())
	}
	if cap(s.order) >= 2*keep || s.peak >= 2*keep {
		t.Errorf("after expiry to %d entries: queue capacity %d, peak %d; want them rebuilt near the live size", keep, cap(s.order), s.peak)
	}
	for i := n - keep; i < n; i++ {
		if got := s.order[s.head+i-(n-keep)].id; got != id(i) {
			t.Fatalf("queue position %d holds the wrong entry", i)
		}
	}
	s.expire(at(n).Add(ttl))
	if s.len() != 0 || cap(s.order) >= shrinkMin {
		t.Errorf("empty set: len %d, queue capacity %d", s.len(), cap(s.order))
	}
	if !s.add(id(1), at(n).Add(ttl)) || !s.contains(id(1)) {
		t.Error("add after shrinking failed")
	}
}

// TestMsgCacheHoldsRepairWindow: with lazy push the cache keeps every
// message younger than the repair window, beyond its size and up to
// cacheHoldFactor times it, so that grafts of a fast burst find them; once
// they are older it is back to its size.
func TestMsgCacheHoldsRepairWindow(t *testing.T) {
	const size, hold = 4, time.Second
	c := newMsgCache(size, time.Minute, hold)
	id := func(i int) msgID { return gossipID("o", uint64(i), 0, nil) }
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Millisecond) }
	for i := range 10 {
		c.add(id(i), &wireMsg{Seq: uint64(i)}, "nb", at(i))
	}
	if len(c.byID) != 10 || c.get(id(0)) == nil {
		t.Fatalf("%d entries within the window, want all 10", len(c.byID))
	}
	for i := 10; i < 30; i++ {
		c.add(id(i), &wireMsg{Seq: uint64(i)}, "nb", at(i))
	}
	if len(c.byID) != cacheHoldFactor*size || c.get(id(13)) != nil || c.get(id(14)) == nil {
		t.Fatalf("%d entries, want the newest %d (the hard bound)", len(c.byID), cacheHoldFactor*size)
	}
	c.expire(t0.Add(hold + 25*time.Millisecond))
	if ids := c.ids(100); len(ids) != size || ids[0] != uint64(id(26)) {
		t.Fatalf("after the window: %d entries, want the newest %d", len(ids), size)
	}
	// Without a window (flooding), the size is a plain bound.
	c = newMsgCache(size, time.Minute, 0)
	for i := range 10 {
		c.add(id(i), &wireMsg{Seq: uint64(i)}, "nb", at(i))
	}
	if len(c.byID) != size {
		t.Fatalf("%d entries without a window, want %d", len(c.byID), size)
	}
}

// TestMsgCacheShrinks: the message cache too gives back a burst's memory
// and keeps its live entries.
func TestMsgCacheShrinks(t *testing.T) {
	const n, ttl = 8000, time.Minute
	c := newMsgCache(n, ttl, 0)
	id := func(i int) msgID { return gossipID("o", uint64(i), 0, nil) }
	for i := range n {
		c.add(id(i), &wireMsg{Seq: uint64(i)}, "nb", t0.Add(time.Duration(i)*time.Millisecond))
	}
	const keep = 100
	c.expire(t0.Add(time.Duration(n-keep) * time.Millisecond).Add(ttl - 1))
	ids := c.ids(10 * keep)
	if len(ids) != keep || ids[0] != uint64(id(n-keep)) || ids[keep-1] != uint64(id(n-1)) {
		t.Fatalf("after expiry: %d ids", len(ids))
	}
	if e := c.get(id(n - 1)); e == nil || e.msg.Seq != n-1 || c.get(id(n-keep-1)) != nil {
		t.Fatal("get after shrinking")
	}
	if cap(c.order) >= shrinkMin || c.peak >= shrinkMin {
		t.Errorf("queue capacity %d, peak %d after expiry to %d entries", cap(c.order), c.peak, keep)
	}
}
