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
	"strings"
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
	flagEager    = flag.Int("eager-links", gossip.DefaultEagerLinks, "gossip.WithEagerLinks: dialed links that start eager with lazy push (0: all)")
	flagPrune    = flag.Bool("self-prune", false, "gossip.WithSelfPruning: a flooding peer skips the neighbours it shares with the sender")
	flagWait     = flag.Duration("relay-wait", 0, "gossip.WithRelayWait: a flooding peer waits this long before relaying (0: at once)")
	flagPoW      = flag.Int("pow", 0, "gossip.WithProofOfWork difficulty at the seeds, 0 (off) to 24; the library's default is 19. Puzzles burn real CPU, not virtual time, and the seeds add a bit per doubling of the join rate above 100 a minute (about 6 at the default -stagger)")
	flagSigs     = flag.Bool("signatures", true, "gossip.WithSignatures: sign and verify every message")
	flagSilence  = flag.Duration("silence-window", gossip.DefaultSilenceWindow, "gossip.WithSilenceCheck window (0: no silent-neighbour check)")
	flagSilMin   = flag.Int("silence-min", 5, "gossip.WithSilenceCheck: new messages in a window that arm the check (the library's default is 5)")
	flagHeap     = flag.String("heapprofile", "", "write a heap profile of the idle network (before the broadcasts) to this file")
	flagSlow     = flag.Duration("slow", 0, "log every delivery that took longer than this after its broadcast (0: none)")
	flagDeepest  = flag.Bool("deepest", false, "log the path of each message's deepest delivery: every hop's peer, hop count, shortest distance from the origin, the fewest hops a neighbour's copy would have given, and delay")
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
	SilenceS    float64 `json:"silence_window_s"` // 0: no silent-neighbour check
	SilenceMin  int     `json:"silence_min"`
	LazyMS      float64 `json:"lazy_flush_ms"` // 0: flooding
	GraftMS     float64 `json:"lazy_graft_ms"`
	EagerLinks  int     `json:"eager_links"`
	SelfPrune   bool    `json:"self_prune"`
	RelayWaitMS float64 `json:"relay_wait_ms"` // 0: relay at once
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
		PoW: *flagPoW, Signatures: *flagSigs, SilenceS: flagSilence.Seconds(), SilenceMin: *flagSilMin,
		LazyMS: ms(*flagLazy), GraftMS: ms(*flagGraft), EagerLinks: *flagEager, SelfPrune: *flagPrune, RelayWaitMS: ms(*flagWait), lazy: *flagLazy, graft: *flagGraft,
		latency: *flagLatency, jitter: *flagJitter, interval: *flagInterval,
		stagger: *flagStagger, settle: *flagSettle, spread: *flagSpread,
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// report is what the simulation measured; it is written as sim.json.
type report struct {
	Params params `json:"params"`

	// Targets restates the figures the performance targets are about,
	// each with its verdict.
	Targets targets `json:"targets"`

	// Wall-clock seconds: the whole run, and its phases (peers joining,
	// the settle time, the broadcasts and their spread).
	WallSeconds         float64 `json:"wall_seconds"`
	WallGrowSeconds     float64 `json:"wall_grow_seconds"`
	WallSettleSeconds   float64 `json:"wall_settle_seconds"`
	WallWorkloadSeconds float64 `json:"wall_workload_seconds"`
	VirtualSeconds      float64 `json:"virtual_seconds"`

	// The overlay when the broadcasts start. A peer's degree is the
	// number of neighbours it lists (Peer.Neighbors); a link is mutual
	// when both ends list each other, one-sided otherwise.
	Connected      bool        `json:"connected"`
	Reachable      int         `json:"reachable_from_first_peer"`
	MeanDegree     float64     `json:"mean_degree"`
	MedianDegree   int         `json:"median_degree"`
	MinDegreeSeen  int         `json:"min_degree_seen"`
	MaxDegreeSeen  int         `json:"max_degree_seen"`
	MutualLinks    int         `json:"mutual_links"`
	OneSidedLinks  int         `json:"one_sided_links"`
	MeanDegreeEnd  float64     `json:"mean_degree_after_workload"`
	FittedExponent float64     `json:"fitted_exponent"`
	DegreeHist     map[int]int `json:"degree_histogram"`

	Messages int `json:"messages"`
	// Coverage is the fraction of the other peers that delivered a
	// message, over all messages.
	CoverageMin  float64 `json:"coverage_min"`
	CoverageMean float64 `json:"coverage_mean"`
	FullCoverage int     `json:"messages_fully_covered"`
	// CoverageFlood is the mean coverage one second after the broadcast:
	// what the first push achieved, before grafts and anti-entropy.
	CoverageFlood float64 `json:"coverage_after_1s_mean"`
	// Virtual time from a message's broadcast to its last delivery, over
	// the fully covered messages.
	TimeToFullP50MS float64 `json:"time_to_full_coverage_p50_ms"`
	TimeToFullMaxMS float64 `json:"time_to_full_coverage_max_ms"`
	// HopsMax is the largest hop count of any delivery; HopsLastMean the
	// mean over messages of the largest hop count of that message.
	HopsMax      int     `json:"hops_to_last_max"`
	HopsLastMean float64 `json:"hops_to_last_mean"`
	// HopsMaxPush is the largest hop count of the deliveries within a
	// second of the broadcast (the first push, before grafts and
	// anti-entropy); HopsHist counts all deliveries by hop count.
	HopsMaxPush int         `json:"hops_to_last_within_1s_max"`
	HopsHist    map[int]int `json:"hops_histogram"`
	// HopsByMessage is each message's hops to the last peer.
	HopsByMessage []int `json:"hops_to_last_by_message"`

	// Deliveries counts first receipts (EventMessage) of the simulated
	// messages; a fully covered message has n-1.
	Deliveries int `json:"deliveries"`
	// Payload frames are the gossip frames (wire kind "gossip", the only
	// kind that carries a message's payload) of the simulated messages:
	// sent counts every one a node handed to the network, lost ones
	// included; carried counts those the network delivered.
	PayloadSent    uint64 `json:"payload_frames_sent"`
	PayloadCarried uint64 `json:"payload_frames_carried"`
	// TxPerDelivery is payload frames sent per delivery: the cost the
	// targets are about. CarriedPerDelivery counts the delivered ones.
	TxPerDelivery      float64 `json:"payload_tx_per_delivery"`
	CarriedPerDelivery float64 `json:"payload_carried_per_delivery"`
	// The same split by message: the first round (each origin's first
	// message) and the later ones, and each message on its own.
	TxPerDeliveryFirst float64   `json:"payload_tx_per_delivery_first_round"`
	TxPerDeliveryLater float64   `json:"payload_tx_per_delivery_later_rounds"`
	TxByMessage        []float64 `json:"payload_tx_per_delivery_by_message"`
	// FloodBound is what pure flooding sends per delivery on this overlay:
	// every peer but the origin forwards to all its neighbours but the
	// sender, the origin to all of them, over the n-1 deliveries:
	// (Σ degrees − (n−1)) / (n−1) = mean degree × n/(n−1) − 1.
	FloodBound float64 `json:"flood_bound_tx_per_delivery"`
	// Forwarded and Repaired add up the peers' own counters (PeerStats)
	// over the workload; their sum must equal PayloadSent, which checks
	// the frame classification.
	Forwarded  uint64 `json:"peer_stats_forwarded"`
	Repaired   uint64 `json:"peer_stats_repaired"`
	Duplicates uint64 `json:"duplicates"`
	// DupByMessage counts, per message, the payload frames the network
	// delivered to a peer that already had the message (counted by link:
	// every copy but the one the receiver delivered).
	DupByMessage []int `json:"duplicate_copies_by_message"`
	// InboxOverflow counts the frames lost to full inboxes during the
	// workload (on top of -loss).
	InboxOverflow uint64 `json:"inbox_overflow_drops"`
	// Redundancy explains the duplicate copies of the later rounds.
	Redundancy redundancyReport `json:"duplicates_later_rounds"`
	// Every frame sent during the workload, by wire kind.
	FramesWorkload uint64            `json:"frames_sent_during_workload"`
	FramesByKind   map[string]uint64 `json:"frames_sent_by_kind"`
	// Events counts the peers' events during the workload other than
	// deliveries, by kind and reason (neighbour-down: why a link ended).
	Events map[string]int `json:"events_during_workload"`

	// Heap after a collection, per peer: everything the network added,
	// and the part added by the running nodes alone (the in-memory
	// transports excluded).
	HeapPerPeer         uint64  `json:"heap_per_peer_bytes"`
	HeapPerPeerNodes    uint64  `json:"heap_per_peer_nodes_only_bytes"`
	StackPerPeer        uint64  `json:"stack_per_peer_bytes"`
	GoroutinesPerPeer   float64 `json:"goroutines_per_peer"`
	TransportHeapPerPer uint64  `json:"heap_per_transport_bytes"`

	// Stretch compares each delivery's hop count with the shortest path
	// from the origin over the mutual links when the broadcasts started:
	// the mean excess per message, and the largest.
	StretchByMessage []float64 `json:"hop_excess_over_shortest_path_mean_by_message"`
	StretchMax       int       `json:"hop_excess_over_shortest_path_max"`

	curves   []curve // per message, for the plot
	lists    map[string][]string
	origins  []string // by message
	degrees  []int
	coverage []float64
}

// targets are the performance issue's targets for the simulator, with
// the measured figures they are checked against.
type targets struct {
	// Coverage: every message reaches every peer.
	CoverageMin float64 `json:"coverage_min"`
	CoverageOK  bool    `json:"coverage_100_percent"`
	// Hops to the last peer: at most 10.
	HopsToLast int  `json:"hops_to_last_max"`
	HopsOK     bool `json:"hops_to_last_le_10"`
	// Payload frames sent per delivery: at most mean degree − 1 when
	// flooding (Limit is then FloodBound, mean degree − 1 counted over
	// the n−1 deliveries), at most 1.3 in lazy-push mode.
	Mode    string  `json:"mode"`
	Tx      float64 `json:"payload_tx_per_delivery"`
	TxLimit float64 `json:"payload_tx_per_delivery_limit"`
	TxOK    bool    `json:"payload_tx_per_delivery_ok"`
	// MeanDegreeMinus1 is the plain reference for flooding.
	MeanDegreeMinus1 float64 `json:"mean_degree_minus_1"`
	Met              bool    `json:"all_met"`
}

// lazyTxLimit is the target for payload frames per delivery with lazy push.
const lazyTxLimit = 1.3

// maxHopsTarget is the target for hops to the last peer.
const maxHopsTarget = 10

func (rep *report) checkTargets(p params) {
	tg := targets{
		CoverageMin: rep.CoverageMin, CoverageOK: rep.Messages > 0 && rep.FullCoverage == rep.Messages,
		HopsToLast: rep.HopsMax, HopsOK: rep.HopsMax <= maxHopsTarget,
		Mode: "flood", Tx: rep.TxPerDelivery, TxLimit: rep.FloodBound,
		MeanDegreeMinus1: rep.MeanDegree - 1,
	}
	if p.lazy > 0 {
		tg.Mode, tg.TxLimit = "lazy", lazyTxLimit
	}
	// The figures are printed with two decimals; compare at that precision.
	tg.TxOK = math.Round(tg.Tx*100) <= math.Round(tg.TxLimit*100)
	tg.Met = tg.CoverageOK && tg.HopsOK && tg.TxOK
	rep.Targets = tg
}

// delivery is one first receipt of a message by a peer.
type delivery struct {
	at         time.Time
	hops       int
	node, from string // the receiver and the neighbour it first got it from
}

// tracker records deliveries from every peer's event handler, and counts
// the other events (link changes by reason) while on.
type tracker struct {
	on     atomic.Bool
	mu     sync.Mutex
	msgs   [][]delivery // by message index
	events map[string]int
}

func (tr *tracker) handler() func(gossip.Event) {
	return func(ev gossip.Event) {
		if ev.Kind != gossip.EventMessage {
			if tr.on.Load() && ev.Kind != gossip.EventOriginated {
				key := ev.Kind.String()
				if ev.Reason != "" {
					key += ": " + ev.Reason
				}
				tr.mu.Lock()
				tr.events[key]++
				tr.mu.Unlock()
			}
			return
		}
		if len(ev.Payload) < 8 {
			return
		}
		i := binary.BigEndian.Uint64(ev.Payload)
		tr.mu.Lock()
		if i < uint64(len(tr.msgs)) {
			tr.msgs[i] = append(tr.msgs[i], delivery{ev.Time, ev.Hops, ev.Node, ev.From})
		}
		tr.mu.Unlock()
	}
}

// frameHead mirrors the wire message's kind ("k") and payload ("b")
// fields; the codec skips every other field.
type frameHead struct {
	K uint8    `codec:"k"`
	B []byte   `codec:"b"`
	I []uint64 `codec:"i"`
}

// Wire kinds are append-only, never renumbered (wire.go); the names are
// the library's own (kind.String).
var kindNames = []string{
	1: "register", 2: "register-ack", 3: "register-reject", 4: "peer-list-req",
	5: "peer-list", 6: "degree", 7: "dead-report", 8: "seed-dead", 9: "leave",
	10: "connect", 11: "connect-ack", 12: "connect-reject", 13: "disconnect",
	14: "gossip", 15: "ping", 16: "pong", 17: "digest", 18: "want",
	19: "ihave", 20: "graft", 21: "prune", 22: "challenge",
}

// Wire kinds the counter looks into. Gossip is the only kind that carries
// a payload.
const (
	kindConnect    = 10
	kindConnectAck = 11
	kindGossip     = 14
	kindDigest     = 17
	kindGraft      = 20
	kindPrune      = 21
)

func kindName(k int) string {
	if k > 0 && k < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// link is a directed link: frames sent by from to to.
type link struct{ from, to string }

// ctlEvent is a control frame sent on a directed link during the
// workload, at a virtual time; lost if the network dropped it.
type ctlEvent struct {
	at   time.Time
	lost bool
}

// ctlLog is the control frames sent on one directed link during the
// workload, in order: the ones that decide whether the sender pushes
// payloads on it (lazy push) or pushes repairs.
type ctlLog struct {
	prunes, grafts, undos, digests, connects []ctlEvent
}

// copyEvent is a payload frame a link carried.
type copyEvent struct {
	msg int32
	at  time.Time
}

// counter counts the frames nodes hand to the network (through
// countingTr) while on: by kind, the payload frames by message and
// whether the network lost them, and, per directed link, the payload
// frames it carried and the control frames sent on it.
type counter struct {
	on           atomic.Bool
	cd           codec.Codec
	byKind       [256]atomic.Uint64 // frames sent, by wire kind
	sentByMsg    []atomic.Uint64    // payload frames sent, by message index
	carriedByMsg []atomic.Uint64    // of which the network did not lose

	mu     sync.Mutex
	copies map[link][]copyEvent // payload frames each link carried
	ctl    map[link]*ctlLog
}

func newCounter(msgs int) *counter {
	return &counter{
		cd: codec.Msgpack(), sentByMsg: make([]atomic.Uint64, msgs), carriedByMsg: make([]atomic.Uint64, msgs),
		copies: map[link][]copyEvent{}, ctl: map[link]*ctlLog{},
	}
}

// classify returns a frame's wire kind, for a gossip frame of a simulated
// message its index (else -1), and the number of message IDs it lists.
func (c *counter) classify(frame []byte) (kind, msg, ids int) {
	var h frameHead
	if c.cd.Unmarshal(frame, &h) != nil {
		return 0, -1, 0
	}
	if h.K == kindGossip && len(h.B) >= 8 {
		if i := binary.BigEndian.Uint64(h.B); i < uint64(len(c.sentByMsg)) {
			return int(h.K), int(i), 0
		}
	}
	return int(h.K), -1, len(h.I)
}

// countingTr is a node's transport: the in-memory one, with every frame
// handed to it counted.
type countingTr struct {
	*transport.Mem
	c *counter
}

func (t countingTr) Send(ctx context.Context, addr string, frame []byte) error {
	c := t.c
	if !c.on.Load() {
		return t.Mem.Send(ctx, addr, frame)
	}
	k, i, ids := c.classify(frame)
	c.byKind[k].Add(1)
	// The network decides a frame's loss inside Send and counts it at the
	// sender; only this node's loop sends on this transport.
	lost := t.Mem.Stats().Lost
	err := t.Mem.Send(ctx, addr, frame)
	ev := ctlEvent{time.Now(), err != nil || t.Mem.Stats().Lost != lost}
	l := link{t.Addr(), addr}
	if i >= 0 {
		c.sentByMsg[i].Add(1)
		if !ev.lost {
			c.carriedByMsg[i].Add(1)
			c.mu.Lock()
			c.copies[l] = append(c.copies[l], copyEvent{int32(i), ev.at})
			c.mu.Unlock()
		}
		return err
	}
	switch k {
	case kindPrune:
		c.note(l, func(cl *ctlLog) { cl.prunes = append(cl.prunes, ev) })
	case kindGraft:
		// A graft that lists no message only makes the link eager
		// again (it undoes a prune).
		c.note(l, func(cl *ctlLog) {
			if ids == 0 {
				cl.undos = append(cl.undos, ev)
			} else {
				cl.grafts = append(cl.grafts, ev)
			}
		})
	case kindDigest:
		c.note(l, func(cl *ctlLog) { cl.digests = append(cl.digests, ev) })
	case kindConnect, kindConnectAck:
		c.note(l, func(cl *ctlLog) { cl.connects = append(cl.connects, ev) })
	}
	return err
}

func (c *counter) note(l link, fn func(*ctlLog)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.ctl[l]
	if cl == nil {
		cl = &ctlLog{}
		c.ctl[l] = cl
	}
	fn(cl)
}

// wallClock is the real time, read inside the synctest bubble, where
// time.Now is virtual: a goroutine outside the bubble stores it every few
// milliseconds.
type wallClock struct {
	ns   atomic.Int64
	done chan struct{}
}

func startWallClock() *wallClock {
	w := &wallClock{done: make(chan struct{})}
	w.ns.Store(time.Now().UnixNano())
	go func() {
		tk := time.NewTicker(10 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case now := <-tk.C:
				w.ns.Store(now.UnixNano())
			case <-w.done:
				return
			}
		}
	}()
	return w
}

func (w *wallClock) now() time.Time { return time.Unix(0, w.ns.Load()) }
func (w *wallClock) stop()          { close(w.done) }

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
	clock := startWallClock()
	defer clock.stop()
	var rep report
	synctest.Test(t, func(t *testing.T) { rep = simulate(t, p, clock) })
	rep.WallSeconds = time.Since(wall).Seconds()
	rep.Params = p
	rep.checkTargets(p)

	mode := "flooding"
	if p.lazy > 0 {
		mode = fmt.Sprintf("lazy push (flush %v, graft %v)", p.lazy, p.graft)
	} else if p.SelfPrune {
		mode = "flooding with self-pruning"
	}
	if p.lazy == 0 && p.RelayWaitMS > 0 {
		mode += fmt.Sprintf(", relay wait %gms", p.RelayWaitMS)
	}
	t.Logf("n=%d seeds=%d loss=%.3g %s, signatures=%v, proof of work %d, silence check %gs/%d", p.N, p.Seeds, p.Loss, mode, p.Signatures, p.PoW, p.SilenceS, p.SilenceMin)
	t.Logf("overlay: connected=%v; degree mean %.2f median %d min %d max %d (fitted exponent %.2f); %d mutual and %d one-sided links; mean %.2f after the workload",
		rep.Connected, rep.MeanDegree, rep.MedianDegree, rep.MinDegreeSeen, rep.MaxDegreeSeen, rep.FittedExponent,
		rep.MutualLinks, rep.OneSidedLinks, rep.MeanDegreeEnd)
	t.Logf("coverage min %.4f mean %.4f (%.4f after 1s), %d/%d messages fully covered in p50 %.0fms max %.0fms (virtual)",
		rep.CoverageMin, rep.CoverageMean, rep.CoverageFlood, rep.FullCoverage, rep.Messages, rep.TimeToFullP50MS, rep.TimeToFullMaxMS)
	t.Logf("hops to last: max %d mean %.2f, max within 1s of the broadcast %d; by message %v; deliveries by hops %v",
		rep.HopsMax, rep.HopsLastMean, rep.HopsMaxPush, rep.HopsByMessage, rep.HopsHist)
	t.Logf("hops over the shortest path from the origin: mean by message %s; max %d", fmtFloats(rep.StretchByMessage), rep.StretchMax)
	t.Logf("payload frames sent per delivery %.3f (carried %.3f; flood bound %.3f, mean degree − 1 = %.3f); first round %.3f, later rounds %.3f; %d sent over %d deliveries; %d duplicates",
		rep.TxPerDelivery, rep.CarriedPerDelivery, rep.FloodBound, rep.MeanDegree-1, rep.TxPerDeliveryFirst, rep.TxPerDeliveryLater,
		rep.PayloadSent, rep.Deliveries, rep.Duplicates)
	t.Logf("payload frames sent per delivery by message: %s", fmtFloats(rep.TxByMessage))
	t.Logf("duplicate copies delivered by message: %v; %d frames lost to full inboxes", rep.DupByMessage, rep.InboxOverflow)
	t.Logf("frames sent during the workload: %d %v", rep.FramesWorkload, rep.FramesByKind)
	t.Logf("events during the workload: %v", rep.Events)
	if rr := rep.Redundancy; p.lazy > 0 {
		t.Logf("lazy push: %d prunes sent (%d lost; %d by a peer to its own tree child), %d grafts (%d lost), %d empty grafts; %d duplicate copies of the later messages: answers to a graft %d, to a digest %d; eager pushes on links the receiver never pruned %d, whose last prune was lost %d, pruned then undone %d, then grafted %d, then relayed first %d, then reconnected %d, unexplained %d; %d links carried a duplicate of every later message (%d after a lost prune)",
			rr.PrunesSent, rr.PrunesLost, rr.ParentPrunes, rr.GraftsSent, rr.GraftsLost, rr.UndosSent, rr.Copies, rr.GraftAnswer, rr.DigestAnswer,
			rr.NeverPruned, rr.PruneLost, rr.PrunedThenUndone, rr.PrunedThenGrafted, rr.PrunedThenRelayed, rr.PrunedThenLinked, rr.PrunedUnexplained,
			rr.Persistent, rr.PersistentPruneLost)
	}
	t.Logf("heap per peer %d B (nodes only %d B, transport %d B), stack per peer %d B, %.1f goroutines per peer",
		rep.HeapPerPeer, rep.HeapPerPeerNodes, rep.TransportHeapPerPer, rep.StackPerPeer, rep.GoroutinesPerPeer)
	t.Logf("wall %.1fs (grow %.1fs, settle %.1fs, workload %.1fs), virtual %.0fs",
		rep.WallSeconds, rep.WallGrowSeconds, rep.WallSettleSeconds, rep.WallWorkloadSeconds, rep.VirtualSeconds)
	t.Logf("degree histogram: %v", rep.DegreeHist)
	tg := rep.Targets
	t.Logf("targets: coverage 100%% %s (min %.4f); hops to last ≤ %d %s (%d); payload frames sent per delivery ≤ %.3f (%s) %s (%.3f)",
		verdict(tg.CoverageOK), tg.CoverageMin, maxHopsTarget, verdict(tg.HopsOK), tg.HopsToLast,
		tg.TxLimit, tg.Mode, verdict(tg.TxOK), tg.Tx)

	if err := writeOutputs(out, &rep); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", out)

	// The simulator's own sanity: every message reached some peer, the
	// payload frames were classified right, and on perfect links every
	// message reaches every peer. Missed targets are reported, not failed:
	// they are measurements.
	if rep.Deliveries == 0 || rep.PayloadSent == 0 {
		t.Errorf("nothing was delivered: %+v", rep)
	}
	if rep.PayloadSent != rep.Forwarded+rep.Repaired {
		t.Errorf("payload frames sent %d != forwarded %d + repaired %d counted by the peers", rep.PayloadSent, rep.Forwarded, rep.Repaired)
	}
	if p.Loss == 0 && rep.Connected && rep.CoverageMin < 1 {
		t.Errorf("coverage %.4f < 1 on loss-free links of a connected overlay", rep.CoverageMin)
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT MET"
}

func fmtFloats(xs []float64) string {
	var b []byte
	for i, x := range xs {
		if i > 0 {
			b = append(b, ' ')
		}
		b = fmt.Appendf(b, "%.2f", x)
	}
	return string(b)
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
func simulate(t *testing.T, p params, clock *wallClock) report {
	var rep report
	start := time.Now()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	rng := rand.New(rand.NewPCG(p.Rand, p.Rand+1))

	msgs := p.Origins * p.Msgs
	cnt := newCounter(msgs)
	net := transport.NewNetwork(p.Rand)
	net.SetInboxSize(p.Inbox)
	net.SetDefaultFault(transport.Fault{Drop: p.Loss, Latency: p.latency, Jitter: p.jitter})

	trk := &tracker{msgs: make([][]delivery, msgs), events: map[string]int{}}

	m0 := snapshot()
	g0 := runtime.NumGoroutine()
	var seeds []string
	for i := range p.Seeds {
		seeds = append(seeds, fmt.Sprintf("10.0.0.%d:7000", i+1))
	}
	var trs []*transport.Mem
	newTr := func(addr string) countingTr {
		tr, err := net.NewTransport(addr)
		if err != nil {
			t.Fatal(err)
		}
		trs = append(trs, tr)
		return countingTr{tr, cnt}
	}
	seedTrs := make([]countingTr, p.Seeds)
	for i, a := range seeds {
		seedTrs[i] = newTr(a)
	}
	addrs := make([]string, p.N)
	peerTrs := make([]countingTr, p.N)
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
	opts = append(opts, gossip.WithProofOfWork(p.PoW), gossip.WithSignatures(p.Signatures),
		gossip.WithSilenceCheck(time.Duration(p.SilenceS*float64(time.Second)), p.SilenceMin))
	if p.lazy > 0 {
		opts = append(opts, gossip.WithLazyPush(p.lazy, p.graft), gossip.WithEagerLinks(p.EagerLinks))
	}
	if p.SelfPrune {
		opts = append(opts, gossip.WithSelfPruning(true))
	}
	if p.RelayWaitMS > 0 {
		opts = append(opts, gossip.WithRelayWait(time.Duration(p.RelayWaitMS*float64(time.Millisecond))))
	}
	if rate := int(2 * time.Second / max(p.interval, time.Microsecond)); rate > gossip.DefaultOriginRate {
		// Short intervals are a load test: the origins send faster than
		// the per-origin and per-link limits allow by default.
		opts = append(opts, gossip.WithOriginRate(rate), gossip.WithRateLimit(1<<20, 1<<30))
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
	w0 := clock.now()
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
		if p.N >= 1000 && (i+1)%(p.N/10) == 0 {
			t.Logf("%d of %d peers started (virtual %.0fs, wall %.0fs)", i+1, p.N, time.Since(start).Seconds(), clock.now().Sub(w0).Seconds())
		}
	}
	w1 := clock.now()
	time.Sleep(p.settle)
	synctest.Wait()
	w2 := clock.now()
	rep.WallGrowSeconds, rep.WallSettleSeconds = w1.Sub(w0).Seconds(), w2.Sub(w1).Seconds()

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
	t.Logf("idle network after %.0fs virtual, %.0fs wall: mean degree %.2f, connected %v",
		time.Since(start).Seconds(), w2.Sub(w0).Seconds(), rep.MeanDegree, rep.Connected)

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
	var before gossip.PeerStats
	for _, pr := range peers {
		addStats(&before, pr.Stats())
	}
	var overflow0 uint64
	for _, tr := range trs {
		overflow0 += tr.Stats().Dropped
	}
	cnt.on.Store(true)
	trk.on.Store(true)
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
	trk.on.Store(false)
	rep.WallWorkloadSeconds = clock.now().Sub(w2).Seconds()
	var after gossip.PeerStats
	deg := 0
	for _, pr := range peers {
		addStats(&after, pr.Stats())
		deg += len(pr.Neighbors())
	}
	rep.MeanDegreeEnd = float64(deg) / float64(p.N)
	rep.Forwarded = after.Forwarded - before.Forwarded
	rep.Repaired = after.Repaired - before.Repaired
	rep.Duplicates = after.Duplicates - before.Duplicates
	rep.FramesByKind = map[string]uint64{}
	for k := range cnt.byKind {
		if n := cnt.byKind[k].Load(); n > 0 {
			rep.FramesByKind[kindName(k)] = n
			rep.FramesWorkload += n
		}
	}
	rep.PayloadSent = cnt.byKind[kindGossip].Load()
	for _, tr := range trs {
		rep.InboxOverflow += tr.Stats().Dropped
	}
	rep.InboxOverflow -= overflow0
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
	for k := range msgs {
		rep.origins = append(rep.origins, addrs[origins[k%len(origins)]])
	}
	rep.Events = trk.events
	measure(&rep, p, trk.msgs, sentAt, cnt)
	if *flagSlow > 0 {
		for i, ds := range trk.msgs {
			for _, d := range ds {
				if d.at.Sub(sentAt[i]) > *flagSlow {
					t.Logf("slow delivery: message %d (sent at +%v) reached %s from %s after %v, %d hops",
						i, sentAt[i].Sub(sentAt[0]), d.node, d.from, d.at.Sub(sentAt[i]), d.hops)
				}
			}
		}
	}
	stretch(&rep, trk.msgs)
	if *flagDeepest {
		logDeepest(t, &rep, trk.msgs, sentAt)
	}
	redundancy(&rep, p, trk.msgs, cnt)
	return rep
}

// logDeepest logs, for each message, the path its deepest delivery came
// by, from the origin on: each peer's hop count, its shortest distance
// from the origin, the fewest hops a neighbour's copy would have given it,
// and when it got the message after the one before it.
// A delay far over the link latency is a repair (a pull after a loss).
func logDeepest(t *testing.T, rep *report, msgs [][]delivery, sentAt []time.Time) {
	for i, ds := range msgs {
		if len(ds) == 0 {
			continue
		}
		dist := bfs(rep.lists, rep.origins[i])
		byNode := make(map[string]delivery, len(ds))
		deepest := ds[0]
		for _, d := range ds {
			byNode[d.node] = d
			if d.hops > deepest.hops {
				deepest = d
			}
		}
		var path []string
		d, ok := deepest, true
		for ok && len(path) < 64 {
			prev, found := byNode[d.from]
			at := sentAt[i]
			if found {
				at = prev.at
			}
			best := 0
			for _, nb := range rep.lists[d.node] {
				if x, ok := byNode[nb]; ok && (best == 0 || x.hops+1 < best) {
					best = x.hops + 1
				} else if nb == rep.origins[i] {
					best = 1
				}
			}
			path = append(path, fmt.Sprintf("%s:%d/%d/%d+%v", d.node, d.hops, dist[d.node], best, d.at.Sub(at).Round(time.Millisecond)))
			d, ok = prev, found
		}
		slices.Reverse(path)
		t.Logf("deepest of message %d: %d hops, shortest %d: %s", i, deepest.hops, dist[deepest.node], strings.Join(path, " "))
	}
}

func addStats(sum *gossip.PeerStats, st gossip.PeerStats) {
	sum.Forwarded += st.Forwarded
	sum.Repaired += st.Repaired
	sum.Duplicates += st.Duplicates
}

// overlay fills the degree figures and checks that the graph of mutual
// links is connected.
func overlay(rep *report, peers []*gossip.Peer) {
	lists := make(map[string][]string, len(peers))
	rep.lists = lists
	rep.DegreeHist = map[int]int{}
	sum := 0
	for _, pr := range peers {
		nb := pr.Neighbors()
		lists[pr.Addr()] = nb
		rep.degrees = append(rep.degrees, len(nb))
		rep.DegreeHist[len(nb)]++
		sum += len(nb)
	}
	n := len(peers)
	rep.MeanDegree = float64(sum) / float64(n)
	sorted := slices.Sorted(slices.Values(rep.degrees))
	rep.MinDegreeSeen, rep.MaxDegreeSeen, rep.MedianDegree = sorted[0], sorted[n-1], sorted[n/2]
	// Flooding: the origin sends to all its neighbours, every other peer
	// to all but the one it got the message from.
	rep.FloodBound = float64(sum-(n-1)) / float64(n-1)
	rep.FittedExponent = powerLawMLE(rep.degrees, max(1, rep.MinDegreeSeen))
	for a, nb := range lists {
		for _, b := range nb {
			if slices.Contains(lists[b], a) {
				if a < b {
					rep.MutualLinks++
				}
			} else {
				rep.OneSidedLinks++
			}
		}
	}
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

func measure(rep *report, p params, msgs [][]delivery, sentAt []time.Time, cnt *counter) {
	sentBy := make([]uint64, len(msgs))
	for i := range sentBy {
		sentBy[i] = cnt.sentByMsg[i].Load()
		rep.PayloadCarried += cnt.carriedByMsg[i].Load()
	}
	others := float64(p.N - 1)
	rep.Messages = len(msgs)
	rep.CoverageMin = 1
	rep.HopsHist = map[int]int{}
	var full []float64
	hopsSum := 0
	var firstSent, firstDel, laterSent, laterDel uint64
	for i, ds := range msgs {
		sort.Slice(ds, func(a, b int) bool { return ds[a].at.Before(ds[b].at) })
		cov := float64(len(ds)) / others
		rep.coverage = append(rep.coverage, cov)
		rep.CoverageMin = min(rep.CoverageMin, cov)
		rep.CoverageMean += cov / float64(len(msgs))
		rep.Deliveries += len(ds)
		rep.TxByMessage = append(rep.TxByMessage, ratio(sentBy[i], uint64(len(ds))))
		if i < p.Origins {
			firstSent, firstDel = firstSent+sentBy[i], firstDel+uint64(len(ds))
		} else {
			laterSent, laterDel = laterSent+sentBy[i], laterDel+uint64(len(ds))
		}
		hops := 0
		var c curve
		for j, d := range ds {
			if d.at.Sub(sentAt[i]) <= time.Second {
				rep.CoverageFlood += 1 / others / float64(len(msgs))
			}
			hops = max(hops, d.hops)
			rep.HopsHist[d.hops]++
			if d.at.Sub(sentAt[i]) <= time.Second {
				rep.HopsMaxPush = max(rep.HopsMaxPush, d.hops)
			}
			c.t = append(c.t, ms(d.at.Sub(sentAt[i])))
			c.cov = append(c.cov, float64(j+1)/others)
		}
		rep.curves = append(rep.curves, c)
		hopsSum += hops
		rep.HopsByMessage = append(rep.HopsByMessage, hops)
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
	rep.TxPerDelivery = ratio(rep.PayloadSent, uint64(rep.Deliveries))
	rep.CarriedPerDelivery = ratio(rep.PayloadCarried, uint64(rep.Deliveries))
	rep.TxPerDeliveryFirst = ratio(firstSent, firstDel)
	rep.TxPerDeliveryLater = ratio(laterSent, laterDel)
}

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
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

// redundancyReport explains the duplicate payload copies of the later
// rounds (every message but each origin's first): copies that a link
// carried to a peer that already had the message. In lazy-push mode a
// receiver prunes a link that brings a duplicate, so each such copy is
// classified by why its sender still sent it.
type redundancyReport struct {
	// Copies is the number of duplicate copies of the later messages.
	Copies int `json:"copies"`
	// Answers to a request: a graft or want the receiver sent on the
	// link shortly before (the message then arrived another way first),
	// or a push answering the receiver's anti-entropy digest.
	GraftAnswer  int `json:"graft_answer"`
	DigestAnswer int `json:"digest_answer"`
	// Eager pushes, by the receiver's last prune of the link before the
	// copy: none (the link was eager from the start; the receiver's
	// first copy now comes another way, after a graft changed its tree),
	// lost by the network and not sent again, or delivered and the link
	// made eager again since: undone by the receiver (an empty graft,
	// sent when the pruned link delivered a message first), by a graft
	// for missing messages either way, by a message the sender first got
	// through the receiver, or by a new connection.
	NeverPruned       int `json:"eager_never_pruned"`
	PruneLost         int `json:"eager_last_prune_lost"`
	PrunedThenUndone  int `json:"eager_pruned_then_undone"`
	PrunedThenGrafted int `json:"eager_pruned_then_grafted"`
	PrunedThenRelayed int `json:"eager_pruned_then_relayed_first"`
	PrunedThenLinked  int `json:"eager_pruned_then_reconnected"`
	PrunedUnexplained int `json:"eager_pruned_unexplained"`
	// Links that carried a duplicate of every later message.
	Persistent          int `json:"links_duplicate_in_every_later_message"`
	PersistentPruneLost int `json:"persistent_with_prune_lost"`
	// Prunes and grafts over the workload, and those the network lost.
	PrunesSent int `json:"prunes_sent"`
	PrunesLost int `json:"prunes_lost"`
	GraftsSent int `json:"grafts_sent"`
	GraftsLost int `json:"grafts_lost"`
	UndosSent  int `json:"empty_grafts_sent"`
	// ParentPrunes counts prunes a peer sent to a neighbour it was the
	// tree parent of: it had delivered that neighbour's latest message
	// before the prune. A prune makes the link lazy both ways, so the
	// child loses its parent and keeps only the links it grafted.
	ParentPrunes int `json:"prunes_of_own_child"`
}

// answerWindow is how soon after a request its answer counts as one.
const answerWindow = 200 * time.Millisecond

// lastBefore returns the last event strictly before t, if any.
func lastBefore(evs []ctlEvent, t time.Time) (ctlEvent, bool) {
	i, _ := slices.BinarySearchFunc(evs, t, func(e ctlEvent, t time.Time) int { return e.at.Compare(t) })
	if i == 0 {
		return ctlEvent{}, false
	}
	return evs[i-1], true
}

// anyIn reports whether an event (delivered if carriedOnly) falls in (from, to).
func anyIn(evs []ctlEvent, from, to time.Time, carriedOnly bool) bool {
	for _, e := range evs {
		if e.at.After(from) && e.at.Before(to) && (!carriedOnly || !e.lost) {
			return true
		}
	}
	return false
}

// redundancy counts the duplicate copies of every message and explains
// those of the later rounds (see redundancyReport).
func redundancy(rep *report, p params, msgs [][]delivery, cnt *counter) {
	firstFrom := make([]map[string]string, len(msgs))
	through := map[link][]time.Time{} // relayer → receiver: first deliveries
	for i, ds := range msgs {
		firstFrom[i] = make(map[string]string, len(ds))
		for _, d := range ds {
			firstFrom[i][d.node] = d.from
			l := link{d.from, d.node}
			through[l] = append(through[l], d.at)
		}
	}
	later := len(msgs) - p.Origins
	var rr redundancyReport
	none := &ctlLog{}
	rep.DupByMessage = make([]int, len(msgs))
	for l, cps := range cnt.copies {
		back, fwd := cnt.ctl[link{l.to, l.from}], cnt.ctl[l] // by the receiver, by the sender
		if back == nil {
			back = none
		}
		if fwd == nil {
			fwd = none
		}
		var got []int32 // messages whose delivering copy this link carried
		dupLater, pruneLost := 0, false
		for _, cp := range cps {
			if firstFrom[cp.msg][l.to] == l.from && !slices.Contains(got, cp.msg) {
				got = append(got, cp.msg)
				continue
			}
			rep.DupByMessage[cp.msg]++
			if int(cp.msg) < p.Origins {
				continue
			}
			dupLater++
			rr.Copies++
			recent := cp.at.Add(-answerWindow)
			pr, pruned := lastBefore(back.prunes, cp.at)
			switch {
			case anyIn(back.grafts, recent, cp.at, true):
				rr.GraftAnswer++
			case anyIn(back.digests, recent, cp.at, true):
				rr.DigestAnswer++
			case !pruned:
				rr.NeverPruned++
			case pr.lost:
				rr.PruneLost++
				pruneLost = true
			case anyIn(back.undos, pr.at, cp.at, true):
				rr.PrunedThenUndone++
			case anyIn(back.grafts, pr.at, cp.at, true) || anyIn(fwd.grafts, pr.at, cp.at, false):
				rr.PrunedThenGrafted++
			case slices.ContainsFunc(through[link{l.to, l.from}], func(t time.Time) bool { return t.After(pr.at) && t.Before(cp.at) }):
				rr.PrunedThenRelayed++
			case anyIn(back.connects, pr.at, cp.at, true) || anyIn(fwd.connects, pr.at, cp.at, true):
				rr.PrunedThenLinked++
			default:
				rr.PrunedUnexplained++
			}
		}
		if later > 0 && dupLater >= later {
			rr.Persistent++
			if pruneLost {
				rr.PersistentPruneLost++
			}
		}
	}
	// Each peer's deliveries in time order, to find its parent at a prune.
	byNode := map[string][]delivery{}
	for _, ds := range msgs {
		for _, d := range ds {
			byNode[d.node] = append(byNode[d.node], d)
		}
	}
	for _, ds := range byNode {
		slices.SortFunc(ds, func(a, b delivery) int { return a.at.Compare(b.at) })
	}
	for l, cl := range cnt.ctl {
		ds := byNode[l.to]
		for _, e := range cl.prunes {
			i, _ := slices.BinarySearchFunc(ds, e.at, func(d delivery, t time.Time) int { return d.at.Compare(t) })
			if i > 0 && ds[i-1].from == l.from {
				rr.ParentPrunes++
			}
		}
	}
	for _, cl := range cnt.ctl {
		rr.PrunesSent += len(cl.prunes)
		rr.GraftsSent += len(cl.grafts)
		rr.UndosSent += len(cl.undos)
		for _, e := range cl.prunes {
			if e.lost {
				rr.PrunesLost++
			}
		}
		for _, e := range cl.grafts {
			if e.lost {
				rr.GraftsLost++
			}
		}
	}
	rep.Redundancy = rr
}

// stretch fills the hop excess over the shortest paths (see report).
func stretch(rep *report, msgs [][]delivery) {
	dist := map[string]map[string]int{}
	for i, ds := range msgs {
		o := rep.origins[i]
		d := dist[o]
		if d == nil {
			d = bfs(rep.lists, o)
			dist[o] = d
		}
		sum, n := 0, 0
		for _, dl := range ds {
			if sp, ok := d[dl.node]; ok {
				sum += dl.hops - sp
				n++
				rep.StretchMax = max(rep.StretchMax, dl.hops-sp)
			}
		}
		rep.StretchByMessage = append(rep.StretchByMessage, ratio(uint64(max(sum, 0)), uint64(n)))
	}
}

// bfs returns the hop distances from src over the mutual links.
func bfs(lists map[string][]string, src string) map[string]int {
	d := map[string]int{src: 0}
	q := []string{src}
	for len(q) > 0 {
		a := q[0]
		q = q[1:]
		for _, b := range lists[a] {
			if _, ok := d[b]; !ok && slices.Contains(lists[b], a) {
				d[b] = d[a] + 1
				q = append(q, b)
			}
		}
	}
	return d
}
