package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gossip-dev/gossip"
	"github.com/gossip-dev/gossip/examples/internal/out"
	"github.com/gossip-dev/gossip/transport"
)

// Phases of the story, in order.
const (
	phaseStart  = "start"  // starting seeds and peers
	phaseJoin   = "join"   // waiting for registrations and a connected overlay
	phaseGossip = "gossip" // every peer sends its messages
	phaseKill   = "kill"   // a peer was killed; waiting for its detection
	phaseDone   = "done"
)

type seedNode struct {
	tr *transport.TCP
	s  *gossip.Seed
	w  *out.Writer
}

type peerNode struct {
	tr     *transport.TCP
	p      *gossip.Peer
	w      *out.Writer
	cancel context.CancelFunc // stops this peer's Run alone (the victim)
}

// network is one run of the story.
type network struct {
	cfg    config
	stdout io.Writer
	log    *slog.Logger
	col    *collector
	t0     time.Time

	// Set by the story goroutine before the goroutines that read them
	// are started, or read after the errgroup's Wait.
	seeds   []*seedNode
	seedSet []string // the seeds' addresses: the network's seed list
	peers   []*peerNode
	victim  *peerNode
	killAt  time.Time

	mu       sync.Mutex // guards the fields below
	curPhase string
	final    *snapshot
	checks   []check
}

// snapshot is the state of the network when the story ended, before the
// nodes were stopped (stopping makes peers leave, which changes lists).
type snapshot struct {
	at         time.Time
	seedPeers  map[string][]string
	neighbors  map[string][]string
	stats      map[string]gossip.PeerStats
	seedStats  map[string]gossip.SeedStats
	removals   []gossip.Event
	reports    []gossip.Event // sent by peers
	received   []gossip.Event // received by seeds
	refuted    []gossip.Event
	registered map[string][]string
	delivered  map[string]int
	originated map[string]int
	ownEchoes  int
}

type check struct {
	ok   bool
	text string
}

func newNetwork(c config, stdout io.Writer, log *slog.Logger) *network {
	return &network{cfg: c, stdout: &lockedWriter{w: stdout}, log: log, col: newCollector(), curPhase: phaseStart}
}

// lockedWriter serialises the writes of the goroutines that print
// progress and phases, so that their lines never interleave (and a
// caller's writer need not be safe for concurrent use).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (n *network) phase() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.curPhase
}

func (n *network) setPhase(p, detail string) {
	n.mu.Lock()
	n.curPhase = p
	n.mu.Unlock()
	fmt.Fprintf(n.stdout, "[%6.2fs] == %s: %s\n", time.Since(n.t0).Seconds(), p, detail)
}

func (n *network) expected() int { return n.cfg.peers * (n.cfg.peers - 1) * n.cfg.messages }

// run starts every node and plays the story. Every Run has returned when it
// returns; transports and files are closed later by close.
func (n *network) run(ctx context.Context) error {
	n.t0 = time.Now()
	tm := n.cfg.timing
	fmt.Fprintf(n.stdout, "network: %d seeds, %d peers, %d messages each; gossip every %v, liveness every %v (%d misses), probes %dx%v; output in %s\n",
		len(n.cfg.seeds), n.cfg.peers, n.cfg.messages, tm.gossip, tm.liveness, tm.misses, tm.probeAttempts, tm.probeTimeout, n.cfg.Out)
	if err := n.listenSeeds(); err != nil {
		return err
	}
	runCtx, stopAll := context.WithCancel(ctx)
	defer stopAll()
	g, gctx := errgroup.WithContext(runCtx)
	for _, s := range n.seeds {
		g.Go(func() error { return s.s.Run(gctx) })
	}
	progressDone := make(chan struct{})
	g.Go(func() error { n.progress(gctx, progressDone); return nil })
	g.Go(func() error {
		defer stopAll()
		defer close(progressDone)
		err := n.story(gctx, g)
		n.takeSnapshot()
		return err
	})
	return g.Wait()
}

// listenSeeds binds every seed first, so that the seed list holds the
// bound addresses even for port 0, then creates the seeds.
func (n *network) listenSeeds() error {
	for _, addr := range n.cfg.seeds {
		tr, err := transport.ListenTCP(addr, out.TCPOptions(addr, transport.WithLogger(n.log.With("component", "transport")))...)
		if err != nil {
			if errors.Is(err, transport.ErrAddrInUse) {
				return out.Usagef("seed %s: port already in use (is examples/seed running?)", addr)
			}
			return fmt.Errorf("seed %s: %w", addr, err)
		}
		n.seeds = append(n.seeds, &seedNode{tr: tr})
		n.seedSet = append(n.seedSet, tr.Addr())
	}
	for _, sn := range n.seeds {
		w, err := out.Create(n.cfg.Out, "seed", sn.tr.Addr(), nil)
		if err != nil {
			return err
		}
		sn.w = w
		s, err := gossip.NewSeed(sn.tr, n.seedSet,
			gossip.WithLogger(n.log.With("component", "gossip")),
			gossip.WithProbe(n.cfg.timing.probeAttempts, n.cfg.timing.probeTimeout),
			out.AddressGroups(sn.tr.Addr(), n.cfg.groupLimit, 0),
			n.powOption(),
			gossip.WithEventHandler(n.handler(w)))
		if err != nil {
			return err
		}
		sn.s = s
		w.Printf("seed listening on %s; seeds %v", sn.tr.Addr(), n.seedSet)
	}
	return nil
}

// powOption returns the tests' proof-of-work override, or nil (skipped by
// the library: its default applies).
func (n *network) powOption() gossip.Option {
	if n.cfg.powDifficulty <= 0 {
		return nil
	}
	return gossip.WithProofOfWork(n.cfg.powDifficulty)
}

func (n *network) handler(w *out.Writer) func(gossip.Event) {
	return func(ev gossip.Event) {
		w.Handle(ev)
		n.col.handle(ev)
	}
}

// startPeer binds a free port on 127.0.0.1 and runs a peer on it in g.
func (n *network) startPeer(ctx context.Context, g *errgroup.Group, i int) error {
	tr, err := transport.ListenTCP("127.0.0.1:0", out.TCPOptions("127.0.0.1:0", transport.WithLogger(n.log.With("component", "transport")))...)
	if err != nil {
		return fmt.Errorf("peer %d: %w", i, err)
	}
	pn := &peerNode{tr: tr}
	n.peers = append(n.peers, pn) // closed by close even if the rest fails
	if pn.w, err = out.Create(n.cfg.Out, "peer", tr.Addr(), nil); err != nil {
		return err
	}
	tm := n.cfg.timing
	pn.p, err = gossip.NewPeer(tr, n.seedSet,
		gossip.WithLogger(n.log.With("component", "gossip")),
		// The story originates the messages itself, once the overlay is
		// connected: see gossipPhase.
		gossip.WithMessages(0),
		gossip.WithGossipInterval(tm.gossip),
		gossip.WithLivenessInterval(tm.liveness),
		gossip.WithMaxMisses(tm.misses),
		gossip.WithMaintainInterval(tm.maintain),
		out.AddressGroups(tr.Addr(), 0, n.cfg.inboundGroupLimit),
		gossip.WithEventHandler(n.handler(pn.w)))
	if err != nil {
		return err
	}
	pn.w.Printf("peer %d of %d listening on %s; seeds %v", i+1, n.cfg.peers, tr.Addr(), n.seedSet)
	pctx, cancel := context.WithCancel(ctx)
	pn.cancel = cancel
	g.Go(func() error {
		defer cancel()
		return pn.p.Run(pctx)
	})
	return nil
}

// story plays the phases in order. It waits on events, with ctx as the
// only bound.
func (n *network) story(ctx context.Context, g *errgroup.Group) error {
	n.setPhase(phaseStart, fmt.Sprintf("%d seeds %v; starting %d peers %v apart", len(n.seeds), n.seedSet, n.cfg.peers, n.cfg.stagger))
	for i := range n.cfg.peers {
		if i > 0 && n.cfg.stagger > 0 {
			// Staggered starts are part of the scenario: early peers are
			// in the peer lists later ones receive.
			select {
			case <-time.After(n.cfg.stagger):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := n.startPeer(ctx, g, i); err != nil {
			return err
		}
	}

	n.setPhase(phaseJoin, "waiting until every peer has joined a majority of seeds and the overlay is connected")
	if err := n.col.await(ctx, n.overlayReady); err != nil {
		return fmt.Errorf("phase %s: %w", phaseJoin, err)
	}
	n.setPhase(phaseGossip, fmt.Sprintf("overlay connected (%d links); each peer sends %d messages, one every %v",
		n.links(), n.cfg.messages, n.cfg.timing.gossip))
	if err := n.gossipPhase(ctx); err != nil {
		return fmt.Errorf("phase %s: %w", phaseGossip, err)
	}
	if !n.cfg.kill {
		n.setPhase(phaseDone, "every message delivered (-kill=false: no peer killed)")
		return n.settle(ctx)
	}

	n.victim = n.pickVictim()
	v := n.victim.tr.Addr()
	var regs []string
	n.col.view(func() { regs = slices.Clone(n.col.registered[v]) })
	n.setPhase(phaseKill, fmt.Sprintf("every message delivered; killing %s (neighbours %v, registered with %v) without letting it leave",
		v, n.victim.p.Neighbors(), regs))
	n.victim.w.Printf("KILLED by the harness: transport closed before Run was stopped, so no goodbye")
	n.killAt = time.Now()
	// Close the transport first: the peer can no longer send anything,
	// not even the goodbye Run sends when stopped just after.
	if err := n.victim.tr.Close(); err != nil {
		return fmt.Errorf("kill %s: %w", v, err)
	}
	n.victim.cancel()
	err := n.col.await(ctx, func() bool {
		// Only what happened after the kill: on a machine too busy to
		// answer in time, the victim may have been suspected before.
		reported := slices.ContainsFunc(n.col.reports, func(ev gossip.Event) bool {
			return ev.Addr == v && !ev.Time.Before(n.killAt)
		})
		if !reported {
			return false
		}
		for _, s := range regs {
			if _, ok := n.col.removedBy(s, v, n.killAt); !ok {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("phase %s: %w", phaseKill, err)
	}
	n.setPhase(phaseDone, fmt.Sprintf("%s reported dead and removed by every seed it registered with, after %.2fs",
		v, time.Since(n.killAt).Seconds()))
	return n.settle(ctx)
}

// settle waits, within a bound, until the seeds' probes have refuted every
// dead-node report about a live peer (see unrefuted), so that the check on
// them does not catch a probe in flight. On the bound it returns nil and
// leaves the verdict to the check.
func (n *network) settle(ctx context.Context) error {
	victim := ""
	if n.victim != nil {
		victim = n.victim.tr.Addr()
	}
	open := func() int { // the collector is locked
		return len(unrefuted(n.col.received, n.col.refuted, n.col.removals, n.col.registered, victim, n.killAt))
	}
	pending := 0
	n.col.view(func() { pending = open() })
	if pending == 0 {
		return nil
	}
	tm := n.cfg.timing
	bound := 3*time.Duration(tm.probeAttempts)*tm.probeTimeout + 2*tm.liveness
	fmt.Fprintf(n.stdout, "[%6.2fs]    waiting up to %v for the seeds' probes of %d dead-node report(s) about live peers\n",
		time.Since(n.t0).Seconds(), bound, pending)
	sctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	if err := n.col.await(sctx, func() bool { return open() == 0 }); err != nil && ctx.Err() != nil {
		return err
	}
	return nil
}

// overlayReady reports whether every peer has joined and the graph of
// neighbour links that both ends agree on connects every peer: then a
// message flooded by any peer reaches all of them. The collector is locked.
func (n *network) overlayReady() bool {
	if len(n.peers) < n.cfg.peers {
		return false
	}
	for _, pn := range n.peers {
		if !n.col.joined[pn.tr.Addr()] {
			return false
		}
	}
	adj := n.mutualLinks()
	seen := map[string]bool{n.peers[0].tr.Addr(): true}
	queue := []string{n.peers[0].tr.Addr()}
	for len(queue) > 0 {
		a := queue[0]
		queue = queue[1:]
		for _, b := range adj[a] {
			if !seen[b] {
				seen[b] = true
				queue = append(queue, b)
			}
		}
	}
	return len(seen) == len(n.peers)
}

// mutualLinks returns, for each peer, the neighbours that also list it.
func (n *network) mutualLinks() map[string][]string {
	nbrs := make(map[string][]string, len(n.peers))
	for _, pn := range n.peers {
		nbrs[pn.tr.Addr()] = pn.p.Neighbors()
	}
	adj := make(map[string][]string, len(nbrs))
	for a, list := range nbrs {
		for _, b := range list {
			if slices.Contains(nbrs[b], a) {
				adj[a] = append(adj[a], b)
			}
		}
	}
	return adj
}

func (n *network) links() int {
	total := 0
	for _, l := range n.mutualLinks() {
		total += len(l)
	}
	return total / 2
}

// gossipPhase makes every peer originate its messages with Broadcast,
// spread over the gossip interval, and waits until every peer has
// received every other peer's messages.
//
// The story drives origination itself, rather than with WithMessages,
// because a peer starts its own messages one gossip interval after Run
// starts, whether or not the later peers have joined; a peer that joins
// afterwards can never receive them, and the check "every peer delivered
// every message" would then fail by construction.
func (n *network) gossipPhase(ctx context.Context) error {
	var g errgroup.Group
	for i, pn := range n.peers {
		offset := n.cfg.timing.gossip * time.Duration(i) / time.Duration(len(n.peers))
		g.Go(func() error { return n.originate(ctx, pn, offset) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	want := n.expected()
	return n.col.await(ctx, func() bool { return n.col.deliveries >= want })
}

// originate sends pn's messages, one per gossip interval after offset,
// with the protocol's text "<timestamp>:<IP>:<Port>:<Msg#>".
func (n *network) originate(ctx context.Context, pn *peerNode, offset time.Duration) error {
	select {
	case <-time.After(offset):
	case <-ctx.Done():
		return ctx.Err()
	}
	tick := time.NewTicker(n.cfg.timing.gossip)
	defer tick.Stop()
	for seq := 1; seq <= n.cfg.messages; {
		err := pn.p.Broadcast(ctx, gossip.SpecMessage(time.Now(), pn.tr.Addr(), seq))
		switch {
		case err == nil:
			seq++
		case errors.Is(err, gossip.ErrNoNeighbors):
			// Lost its neighbours for a moment: try again next tick.
		default:
			return fmt.Errorf("%s: broadcast: %w", pn.tr.Addr(), err)
		}
		if seq > n.cfg.messages {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// pickVictim returns the peer with the most neighbours, so that several
// peers must detect it; ties go to the earliest started.
func (n *network) pickVictim() *peerNode {
	adj := n.mutualLinks()
	best := n.peers[0]
	for _, pn := range n.peers[1:] {
		if len(adj[pn.tr.Addr()]) > len(adj[best.tr.Addr()]) {
			best = pn
		}
	}
	return best
}

// progress prints one status line a second until done is closed or ctx
// ends.
func (n *network) progress(ctx context.Context, done <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-done:
			return
		case <-ctx.Done():
			return
		}
		var joined, delivered, reports, received, removed int
		n.col.view(func() {
			joined, delivered = len(n.col.joined), n.col.deliveries
			reports, received = len(n.col.reports), len(n.col.received)
			for _, ev := range n.col.removals {
				if ev.Reason == "dead" {
					removed++
				}
			}
		})
		fmt.Fprintf(n.stdout, "[%6.2fs] %-6s joined %d/%d  delivered %d/%d  dead reports sent %d, received %d  removals %d\n",
			time.Since(n.t0).Seconds(), n.phase(), joined, n.cfg.peers, delivered, n.expected(), reports, received, removed)
	}
}

// takeSnapshot records the final state before the nodes are stopped.
func (n *network) takeSnapshot() {
	s := &snapshot{
		at:        time.Now(),
		seedPeers: make(map[string][]string),
		neighbors: make(map[string][]string),
		stats:     make(map[string]gossip.PeerStats),
		seedStats: make(map[string]gossip.SeedStats),
		delivered: make(map[string]int),
	}
	for _, sn := range n.seeds {
		s.seedPeers[sn.tr.Addr()] = sn.s.Peers()
		s.seedStats[sn.tr.Addr()] = sn.s.Stats()
	}
	for _, pn := range n.peers {
		if pn.p == nil {
			continue
		}
		s.neighbors[pn.tr.Addr()] = pn.p.Neighbors()
		s.stats[pn.tr.Addr()] = pn.p.Stats()
	}
	n.col.view(func() {
		s.removals = slices.Clone(n.col.removals)
		s.reports = slices.Clone(n.col.reports)
		s.received = slices.Clone(n.col.received)
		s.refuted = slices.Clone(n.col.refuted)
		s.registered = make(map[string][]string, len(n.col.registered))
		for k, v := range n.col.registered {
			s.registered[k] = slices.Clone(v)
		}
		for k, m := range n.col.delivered {
			s.delivered[k] = len(m)
		}
		s.originated = make(map[string]int, len(n.col.originated))
		for k, v := range n.col.originated {
			s.originated[k] = v
		}
		s.ownEchoes = n.col.ownEchoes
	})
	n.mu.Lock()
	n.final = s
	n.mu.Unlock()
}

// close closes every transport (idempotent for the victim's), then every
// output file. It runs after every Run has returned.
func (n *network) close() error {
	var errs []error
	for _, sn := range n.seeds {
		errs = append(errs, sn.tr.Close())
	}
	for _, pn := range n.peers {
		errs = append(errs, pn.tr.Close())
	}
	var ws []*out.Writer
	for _, sn := range n.seeds {
		ws = append(ws, sn.w)
	}
	for _, pn := range n.peers {
		ws = append(ws, pn.w)
	}
	errs = append(errs, out.CloseAll(ws))
	return errors.Join(errs...)
}
