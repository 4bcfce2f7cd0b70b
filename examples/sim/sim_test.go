package sim

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gossip-dev/gossip"
	"github.com/gossip-dev/gossip/codec"
	"github.com/gossip-dev/gossip/transport"
)

var (
	flagN        = flag.Int("n", 1000, "peers (default 1000; 200 under -short, -race or CI when not given)")
	flagSeeds    = flag.Int("seeds", 3, "seeds")
	flagLoss     = flag.Float64("loss", 0, "fraction of frames lost on every link")
	flagLatency  = flag.Duration("latency", 5*time.Millisecond, "link latency")
	flagJitter   = flag.Duration("jitter", 2*time.Millisecond, "extra random link delay, uniform in [0, jitter]")
	flagOrigins  = flag.Int("origins", 1, "peers that broadcast")
	flagMsgs     = flag.Int("msgs", 10, "messages each origin broadcasts")
	flagInterval = flag.Duration("interval", time.Second, "time between an origin's messages")
	flagSize     = flag.Int("size", 256, "payload bytes (at least 8)")
	flagStagger  = flag.Duration("stagger", 10*time.Millisecond, "time between peer joins")
	flagSettle   = flag.Duration("settle", 30*time.Second, "time after the last join before broadcasting")
	flagSpread   = flag.Duration("spread", 60*time.Second, "time after the last broadcast before measuring")
	flagMinDeg   = flag.Int("min-degree", gossip.DefaultMinDegree, "gossip.WithMinDegree")
	flagMaxDeg   = flag.Int("max-degree", gossip.DefaultMaxDegree, "gossip.WithMaxDegree")
	flagExponent = flag.Float64("degree-exponent", gossip.DefaultDegreeExponent, "gossip.WithDegreeExponent")
	flagInbox    = flag.Int("inbox", 256, "Packets channel capacity of each in-memory transport")
	flagRand     = flag.Uint64("rand", 1, "random seed of the network and the nodes")
	flagLazy     = flag.Duration("lazy", 0, "gossip.WithLazyPush flush interval (0: flooding)")
	flagGraft    = flag.Duration("lazy-graft", time.Second, "gossip.WithLazyPush graft timeout")
	flagPoW      = flag.Int("pow", 0, "gossip.WithProofOfWork difficulty of registration (library default 18; it burns real CPU, not virtual time)")
	flagSigs     = flag.Bool("signatures", true, "gossip.WithSignatures: sign and verify every message")
	flagHeap     = flag.String("heapprofile", "", "write a heap profile of the idle network (before the broadcasts) to this file")
	flagOut      = flag.String("out", "", "directory for sim.json and the SVG plots (default: a temporary one)")
)

// params is one simulation.
type params struct {
	N           int     `json:"n"`
	Seeds       int     `json:"seeds"`
	Loss        float64 `json:"loss"`
	LatencyMS   float64 `json:"latency_ms"`
	JitterMS    float64 `json:"jitter_ms"`
	Origins     int     `json:"origins"`
	Msgs        int     `json:"msgs_per_origin"`
	IntervalMS  float64 `json:"interval_ms"`
	Size        int     `json:"size"`
	StaggerMS   float64 `json:"stagger_ms"`
	SettleS     float64 `json:"settle_s"`
	SpreadS     float64 `json:"spread_s"`
	MinDegree   int     `json:"min_degree"`
	MaxDegree   int     `json:"max_degree"`
	Exponent    float64 `json:"degree_exponent"`
	Inbox       int     `json:"inbox"`
	Rand        uint64  `json:"rand"`
	PoW         int     `json:"pow_difficulty"`
	Signatures  bool    `json:"signatures"`
	LazyMS      float64 `json:"lazy_flush_ms"` // 0: flooding
	GraftMS     float64 `json:"lazy_graft_ms"`
	lazy, graft time.Duration
	latency     time.Duration
	jitter      time.Duration
	interval    time.Duration
	stagger     time.Duration
	settle      time.Duration
	spread      time.Duration
	coverageMax time.Duration // x range of the coverage plot
}

func paramsFromFlags() params {
	n := *flagN
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "n" })
	if !given && (testing.Short() || raceEnabled || os.Getenv("CI") != "") {
		n = 200
	}
	return params{
		N: n, Seeds: *flagSeeds, Loss: *flagLoss,
		LatencyMS: ms(*flagLatency), JitterMS: ms(*flagJitter),
		Origins: *flagOrigins, Msgs: *flagMsgs, IntervalMS: ms(*flagInterval), Size: *flagSize,
		StaggerMS: ms(*flagStagger), SettleS: flagSettle.Seconds(), SpreadS: flagSpread.Seconds(),
		MinDegree: *flagMinDeg, MaxDegree: *flagMaxDeg, Exponent: *flagExponent,
		Inbox: *flagInbox, Rand: *flagRand,
		PoW: *flagPoW, Signatures: *flagSigs,
		LazyMS: ms(*flagLazy), GraftMS: ms(*flagGraft), lazy: *flagLazy, graft: *flagGraft,
		latency: *flagLatency, jitter: *flagJitter, interval: *flagInterval,
		stagger: *flagStagger, settle: *flagSettle, spread: *flagSpread,
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// report is what the simulation measured; it is written as sim.json.
type report struct {
	Params params `json:"params"`

	WallSeconds    float64 `json:"wall_seconds"`
	VirtualSeconds float64 `json:"virtual_seconds"`

	Connected      bool        `json:"connected"`
	Reachable      int         `json:"reachable_from_first_peer"`
	MeanDegree     float64     `json:"mean_degree"`
	MaxDegreeSeen  int         `json:"max_degree_seen"`
	FittedExponent float64     `json:"fitted_exponent"`
	DegreeHist     map[int]int `json:"degree_histogram"`

	Messages int `json:"messages"`
	// Coverage is the fraction of the other peers that delivered a
	// message, over all messages.
	CoverageMin  float64 `json:"coverage_min"`
	CoverageMean float64 `json:"coverage_mean"`
	FullCoverage int     `json:"messages_fully_covered"`
	// CoverageFlood is the mean coverage one second after the broadcast:
	// what flooding alone achieved, before any anti-entropy repair.
	CoverageFlood float64 `json:"coverage_after_1s_mean"`
	// Virtual time from a message's broadcast to its last delivery, over
	// the fully covered messages.
	TimeToFullP50MS float64 `json:"time_to_full_coverage_p50_ms"`
	TimeToFullMaxMS float64 `json:"time_to_full_coverage_max_ms"`
	// HopsMax is the largest hop count of any delivery; HopsLastMean the
	// mean over messages of the largest hop count of that message.
	HopsMax      int     `json:"hops_to_last_max"`
	HopsLastMean float64 `json:"hops_to_last_mean"`

	Deliveries   int    `json:"deliveries"`
	GossipFrames uint64 `json:"gossip_frames"`
	// TxPerDelivery counts the gossip frames that the network carried
	// (after loss) per delivery; TxPerDeliveryEst adds back the frames
	// lost to -loss (divides by 1-loss).
	TxPerDelivery    float64 `json:"payload_tx_per_delivery"`
	TxPerDeliveryEst float64 `json:"payload_tx_per_delivery_incl_lost"`
	FramesWorkload   uint64  `json:"frames_during_workload"`
	Duplicates       uint64  `json:"duplicates"`

	// Heap after a collection, per peer: everything the network added,
	// and the part added by the running nodes alone (the in-memory
	// transports excluded).
	HeapPerPeer         uint64  `json:"heap_per_peer_bytes"`
	HeapPerPeerNodes    uint64  `json:"heap_per_peer_nodes_only_bytes"`
	StackPerPeer        uint64  `json:"stack_per_peer_bytes"`
	GoroutinesPerPeer   float64 `json:"goroutines_per_peer"`
	TransportHeapPerPer uint64  `json:"heap_per_transport_bytes"`

	curves   []curve // per message, for the plot
	degrees  []int
	coverage []float64
}

// delivery is one first receipt of a message by a peer.
type delivery struct {
	at   time.Time
	hops int
}

// tracker records deliveries from every peer's event handler.
type tracker struct {
	mu   sync.Mutex
	msgs [][]delivery // by message index
}

func (tr *tracker) handler() func(gossip.Event) {
	return func(ev gossip.Event) {
		if ev.Kind != gossip.EventMessage || len(ev.Payload) < 8 {
			return
		}
		i := binary.BigEndian.Uint64(ev.Payload)
		tr.mu.Lock()
		if i < uint64(len(tr.msgs)) {
			tr.msgs[i] = append(tr.msgs[i], delivery{ev.Time, ev.Hops})
		}
		tr.mu.Unlock()
	}
}

// frameKind mirrors the wire message's kind field ("k"); the codec skips
// every other field.
type frameKind struct {
	K uint8 `codec:"k"`
}

// kindGossip is the wire kind of a gossip message (wire kinds are never
// renumbered).
const kindGossip = 14

// counter counts frames as the network carries them.
type counter struct {
	on                   atomic.Bool
	frames, gossipFrames atomic.Uint64
	cd                   codec.Codec
}

func (c *counter) filter(_, _ string, frame []byte) bool {
	if !c.on.Load() {
		return true
	}
	c.frames.Add(1)
	var k frameKind
	if c.cd.Unmarshal(frame, &k) == nil && k.K == kindGossip {
		c.gossipFrames.Add(1)
	}
	return true
}

func TestSim(t *testing.T) {
	p := paramsFromFlags()
	if p.N < 2 || p.Seeds < 1 || p.Origins < 1 || p.Origins > p.N || p.Msgs < 1 || p.Size < 8 {
		t.Fatalf("bad parameters %+v", p)
	}
	out := *flagOut
	if out == "" {
		out = t.TempDir()
	} else if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	wall := time.Now()
	var rep report
	synctest.Test(t, func(t *testing.T) { rep = simulate(t, p) })
	rep.WallSeconds = time.Since(wall).Seconds()
	rep.Params = p

	t.Logf("n=%d loss=%.3g: connected=%v mean degree %.2f (max %d, fitted exponent %.2f)",
		p.N, p.Loss, rep.Connected, rep.MeanDegree, rep.MaxDegreeSeen, rep.FittedExponent)
	t.Logf("coverage min %.4f mean %.4f (%.4f after 1s), %d/%d messages fully covered in p50 %.0fms max %.0fms (virtual)",
		rep.CoverageMin, rep.CoverageMean, rep.CoverageFlood, rep.FullCoverage, rep.Messages, rep.TimeToFullP50MS, rep.TimeToFullMaxMS)
	t.Logf("hops to last: max %d mean %.2f; payload tx per delivery %.2f (%.2f with lost frames); %d duplicates",
		rep.HopsMax, rep.HopsLastMean, rep.TxPerDelivery, rep.TxPerDeliveryEst, rep.Duplicates)
	t.Logf("heap per peer %d B (nodes only %d B, transport %d B), stack per peer %d B, %.1f goroutines per peer; wall %.1fs, virtual %.0fs",
		rep.HeapPerPeer, rep.HeapPerPeerNodes, rep.TransportHeapPerPer, rep.StackPerPeer, rep.GoroutinesPerPeer, rep.WallSeconds, rep.VirtualSeconds)
	t.Logf("degree histogram: %v", rep.DegreeHist)

	if err := writeOutputs(out, &rep); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", out)

	// The simulator's own sanity: every message reached some peer, and on
	// perfect links every message reaches every peer.
	if rep.Deliveries == 0 || rep.GossipFrames == 0 {
		t.Errorf("nothing was delivered: %+v", rep)
	}
	if p.Loss == 0 && rep.Connected && rep.CoverageMin < 1 {
		t.Errorf("coverage %.4f < 1 on loss-free links of a connected overlay", rep.CoverageMin)
	}
}

type memSnap struct{ heap, stack uint64 }

func snapshot() memSnap {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memSnap{m.HeapAlloc, m.StackInuse}
}

func perPeer(after, before uint64, n int) uint64 {
	if after < before {
		return 0
	}
	return (after - before) / uint64(n)
}

// simulate runs inside the synctest bubble.
func simulate(t *testing.T, p params) report {
	var rep report
	start := time.Now()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	rng := rand.New(rand.NewPCG(p.Rand, p.Rand+1))

	net := transport.NewNetwork(p.Rand)
	net.SetInboxSize(p.Inbox)
	net.SetDefaultFault(transport.Fault{Drop: p.Loss, Latency: p.latency, Jitter: p.jitter})
	cnt := &counter{cd: codec.Msgpack()}
	net.SetFilter(cnt.filter)

	msgs := p.Origins * p.Msgs
	trk := &tracker{msgs: make([][]delivery, msgs)}

	m0 := snapshot()
	g0 := runtime.NumGoroutine()
	var seeds []string
	for i := range p.Seeds {
		seeds = append(seeds, fmt.Sprintf("10.0.0.%d:7000", i+1))
	}
	var trs []*transport.Mem
	newTr := func(addr string) *transport.Mem {
		tr, err := net.NewTransport(addr)
		if err != nil {
			t.Fatal(err)
		}
		trs = append(trs, tr)
		return tr
	}
	seedTrs := make([]*transport.Mem, p.Seeds)
	for i, a := range seeds {
		seedTrs[i] = newTr(a)
	}
	addrs := make([]string, p.N)
	peerTrs := make([]*transport.Mem, p.N)
	for i := range addrs {
		// One peer per /24, so that the seeds' address-group limits (a
		// Sybil defence) do not refuse honest peers.
		addrs[i] = fmt.Sprintf("%d.%d.%d.1:8000", 11+i/62500, i/250%250, i%250)
		peerTrs[i] = newTr(addrs[i])
	}
	mTr := snapshot()

	opts := []gossip.Option{
		gossip.WithLogger(quiet), gossip.WithMessages(0),
		gossip.WithMinDegree(p.MinDegree), gossip.WithMaxDegree(p.MaxDegree),
		gossip.WithDegreeExponent(p.Exponent), gossip.WithMaxPayload(max(p.Size, gossip.DefaultMaxPayload)),
	}
	opts = append(opts, gossip.WithProofOfWork(p.PoW), gossip.WithSignatures(p.Signatures))
	if p.lazy > 0 {
		opts = append(opts, gossip.WithLazyPush(p.lazy, p.graft))
	}
	var wg sync.WaitGroup
	var cancels []context.CancelFunc
	launch := func(run func(context.Context) error) {
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		wg.Go(func() {
			if err := run(ctx); err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	for i, tr := range seedTrs {
		s, err := gossip.NewSeed(tr, seeds, append(opts, gossip.WithRandSeed(p.Rand+uint64(i)))...)
		if err != nil {
			t.Fatal(err)
		}
		launch(s.Run)
	}
	peers := make([]*gossip.Peer, p.N)
	for i, tr := range peerTrs {
		pr, err := gossip.NewPeer(tr, seeds, append(opts,
			gossip.WithRandSeed(p.Rand*1_000_003+uint64(i)), gossip.WithEventHandler(trk.handler()))...)
		if err != nil {
			t.Fatal(err)
		}
		peers[i] = pr
		launch(pr.Run)
		time.Sleep(p.stagger)
	}
	time.Sleep(p.settle)
	synctest.Wait()

	// The idle network.
	mIdle := snapshot()
	if *flagHeap != "" {
		if err := writeHeapProfile(*flagHeap); err != nil {
			t.Error(err)
		}
	}
	rep.HeapPerPeer = perPeer(mIdle.heap, m0.heap, p.N)
	rep.HeapPerPeerNodes = perPeer(mIdle.heap, mTr.heap, p.N)
	rep.TransportHeapPerPer = perPeer(mTr.heap, m0.heap, len(trs))
	rep.StackPerPeer = perPeer(mIdle.stack, m0.stack, p.N)
	rep.GoroutinesPerPeer = float64(runtime.NumGoroutine()-g0) / float64(p.N+p.Seeds)
	overlay(&rep, peers)

	// Origins: distinct random peers that have neighbours.
	var origins []int
	for _, i := range rng.Perm(p.N) {
		if len(origins) == p.Origins {
			break
		}
		if len(peers[i].Neighbors()) > 0 {
			origins = append(origins, i)
		}
	}
	if len(origins) == 0 {
		t.Fatal("no peer has a neighbour")
	}
	cnt.on.Store(true)
	sentAt := make([]time.Time, msgs)
	payload := make([]byte, p.Size)
	ctx := context.Background()
	for k := range p.Msgs {
		for j, o := range origins {
			idx := k*p.Origins + j
			binary.BigEndian.PutUint64(payload, uint64(idx))
			sentAt[idx] = time.Now()
			if err := peers[o].Broadcast(ctx, payload); err != nil {
				t.Errorf("Broadcast from %s: %v", addrs[o], err)
			}
		}
		time.Sleep(p.interval)
	}
	time.Sleep(p.spread)
	synctest.Wait()
	cnt.on.Store(false)
	rep.FramesWorkload = cnt.frames.Load()
	rep.GossipFrames = cnt.gossipFrames.Load()
	for _, pr := range peers {
		st := pr.Stats()
		rep.Duplicates += st.Duplicates
	}
	rep.VirtualSeconds = time.Since(start).Seconds()

	for _, cancel := range cancels {
		cancel()
	}
	wg.Wait()
	for _, tr := range trs {
		_ = tr.Close()
	}

	trk.mu.Lock()
	defer trk.mu.Unlock()
	measure(&rep, p, trk.msgs, sentAt)
	return rep
}

// overlay fills the degree figures and checks that the graph of mutual
// links is connected.
func overlay(rep *report, peers []*gossip.Peer) {
	lists := make(map[string][]string, len(peers))
	rep.DegreeHist = map[int]int{}
	sum := 0
	for _, pr := range peers {
		nb := pr.Neighbors()
		lists[pr.Addr()] = nb
		rep.degrees = append(rep.degrees, len(nb))
		rep.DegreeHist[len(nb)]++
		sum += len(nb)
		rep.MaxDegreeSeen = max(rep.MaxDegreeSeen, len(nb))
	}
	rep.MeanDegree = float64(sum) / float64(len(peers))
	rep.FittedExponent = powerLawMLE(rep.degrees, max(1, slices.Min(rep.degrees)))
	first := peers[0].Addr()
	seen := map[string]bool{first: true}
	stack := []string{first}
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
	rep.Reachable = len(seen)
	rep.Connected = len(seen) == len(peers)
}

// powerLawMLE is the discrete power-law exponent estimate of Clauset et
// al. (approximation with kmin - 1/2) over the degrees >= kmin.
func powerLawMLE(deg []int, kmin int) float64 {
	n, s := 0, 0.0
	for _, k := range deg {
		if k >= kmin {
			n++
			s += math.Log(float64(k) / (float64(kmin) - 0.5))
		}
	}
	if n == 0 || s == 0 {
		return 0
	}
	return 1 + float64(n)/s
}

// curve is one message's coverage over time since its broadcast.
type curve struct {
	t   []float64 // ms since the broadcast, ascending
	cov []float64 // fraction of the other peers covered by then
}

func measure(rep *report, p params, msgs [][]delivery, sentAt []time.Time) {
	others := float64(p.N - 1)
	rep.Messages = len(msgs)
	rep.CoverageMin = 1
	var full []float64
	hopsSum := 0
	for i, ds := range msgs {
		sort.Slice(ds, func(a, b int) bool { return ds[a].at.Before(ds[b].at) })
		cov := float64(len(ds)) / others
		rep.coverage = append(rep.coverage, cov)
		rep.CoverageMin = min(rep.CoverageMin, cov)
		rep.CoverageMean += cov / float64(len(msgs))
		rep.Deliveries += len(ds)
		hops := 0
		var c curve
		for j, d := range ds {
			if d.at.Sub(sentAt[i]) <= time.Second {
				rep.CoverageFlood += 1 / others / float64(len(msgs))
			}
			hops = max(hops, d.hops)
			c.t = append(c.t, ms(d.at.Sub(sentAt[i])))
			c.cov = append(c.cov, float64(j+1)/others)
		}
		rep.curves = append(rep.curves, c)
		hopsSum += hops
		rep.HopsMax = max(rep.HopsMax, hops)
		if len(ds) == p.N-1 {
			rep.FullCoverage++
			full = append(full, ms(ds[len(ds)-1].at.Sub(sentAt[i])))
		}
	}
	rep.HopsLastMean = float64(hopsSum) / float64(len(msgs))
	if len(full) > 0 {
		slices.Sort(full)
		rep.TimeToFullP50MS = full[len(full)/2]
		rep.TimeToFullMaxMS = full[len(full)-1]
	}
	if rep.Deliveries > 0 {
		rep.TxPerDelivery = float64(rep.GossipFrames) / float64(rep.Deliveries)
		if p.Loss < 1 {
			rep.TxPerDeliveryEst = rep.TxPerDelivery / (1 - p.Loss)
		}
	}
}

func writeOutputs(dir string, rep *report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "sim.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "coverage.svg"), coverageSVG(rep), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "degree.svg"), degreeSVG(rep), 0o644)
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
