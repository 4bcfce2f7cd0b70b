package gossip

import (
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/gossip-dev/gossip/codec"
	"github.com/gossip-dev/gossip/transport"
)

// runDone reports whether the Run of the node at addr has returned.
func (c *cluster) runDone(addr string) bool {
	c.mu.Lock()
	done := c.done[addr]
	c.mu.Unlock()
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// TestRunTwice: a Seed or Peer runs at most once, whether the first Run is
// still going or has returned.
func TestRunTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1)
		c.startSeeds()
		s := c.seedsBy[c.seeds[0]]
		p := c.startPeer(peerAddr(0))
		time.Sleep(time.Second)
		synctest.Wait()

		if err := s.Run(t.Context()); !errors.Is(err, ErrAlreadyRunning) {
			t.Errorf("second Seed.Run while running = %v, want ErrAlreadyRunning", err)
		}
		if err := p.Run(t.Context()); !errors.Is(err, ErrAlreadyRunning) {
			t.Errorf("second Peer.Run while running = %v, want ErrAlreadyRunning", err)
		}
		c.stop(c.seeds[0])
		c.stop(p.Addr())
		synctest.Wait()
		if !c.runDone(c.seeds[0]) || !c.runDone(p.Addr()) {
			t.Fatal("Run did not return after its context was cancelled")
		}
		for _, a := range []string{c.seeds[0], p.Addr()} {
			if err := c.runErr(a); err != nil {
				t.Errorf("first Run of %s = %v, want nil", a, err)
			}
		}
		if err := s.Run(t.Context()); !errors.Is(err, ErrAlreadyRunning) {
			t.Errorf("Seed.Run after it returned = %v, want ErrAlreadyRunning", err)
		}
		if err := p.Run(t.Context()); !errors.Is(err, ErrAlreadyRunning) {
			t.Errorf("Peer.Run after it returned = %v, want ErrAlreadyRunning", err)
		}
	})
}

// TestBroadcastErrors: Broadcast fails with ErrNoNeighbors on a peer that
// has none, ErrPayloadTooLarge over the limit, and ErrStopped after Run
// returned.
func TestBroadcastErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const limit = 16
		c := newCluster(t, 1, WithMaxPayload(limit))
		c.startSeeds()
		a := peerAddr(0)
		p := c.startPeer(a) // alone: registered, but nobody to link to
		time.Sleep(time.Second)
		synctest.Wait()
		if len(c.rec.of(a, EventJoined)) != 1 {
			t.Fatal("peer did not join its only seed")
		}
		if err := p.Broadcast(t.Context(), []byte("hello")); !errors.Is(err, ErrNoNeighbors) {
			t.Errorf("Broadcast without neighbours = %v, want ErrNoNeighbors", err)
		}
		if err := p.Broadcast(t.Context(), make([]byte, limit+1)); !errors.Is(err, ErrPayloadTooLarge) {
			t.Errorf("Broadcast over the payload limit = %v, want ErrPayloadTooLarge", err)
		}
		c.stop(a)
		synctest.Wait()
		if !c.runDone(a) {
			t.Fatal("Run did not return after its context was cancelled")
		}
		if err := p.Broadcast(t.Context(), []byte("hello")); !errors.Is(err, ErrStopped) {
			t.Errorf("Broadcast after Run returned = %v, want ErrStopped", err)
		}
	})
}

// TestNewPeerNoSeeds: a peer needs at least one seed address.
func TestNewPeerNoSeeds(t *testing.T) {
	net := transport.NewNetwork(1)
	tr, err := net.NewTransport(peerAddr(0))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for _, seeds := range [][]string{nil, {}} {
		if p, err := NewPeer(tr, seeds); !errors.Is(err, ErrNoSeeds) || p != nil {
			t.Errorf("NewPeer(tr, %#v) = %v, %v; want nil, ErrNoSeeds", seeds, p, err)
		}
	}
}

// Slow-handler scenario.
const (
	slowPeers = 10
	slowIndex = 3 // the peer whose event handler blocks
	// slowBlocked is how long its handler stays blocked: every spec
	// message sent and spread, and longer than it takes to find a dead
	// neighbour and remove it, so that a stalled protocol would show.
	slowBlocked = DefaultMessages*DefaultGossipInterval + (DefaultMaxMisses+1)*DefaultLivenessInterval + probeTime
)

// TestSlowEventHandler blocks one peer's event handler from its first
// event until the test releases it. The protocol does not wait for it:
// gossip reaches every peer, the blocked peer included, it keeps answering
// liveness checks and is neither reported dead nor removed; its events are
// all delivered in order after the release; and Run, cancelled while the
// handler is blocked, returns only once the queued events are delivered.
func TestSlowEventHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		c := newCluster(t, clusterSeeds)
		release := make(chan struct{})
		record := c.rec.handler()
		var first atomic.Int64 // when the handler first got an event, Unix ns
		blocking := func(ev Event) {
			first.CompareAndSwap(0, time.Now().UnixNano())
			<-release
			record(ev)
		}
		c.startSeeds()
		var peers []string
		for i := range slowPeers {
			opts := []Option{WithRandSeed(uint64(i + 100))}
			if i == slowIndex {
				opts = append(opts, WithEventHandler(blocking))
			}
			peers = append(peers, peerAddr(i))
			c.startPeer(peerAddr(i), opts...)
			time.Sleep(joinGap)
		}
		slow := peers[slowIndex]
		others := slices.Delete(slices.Clone(peers), slowIndex, slowIndex+1)
		time.Sleep(slowBlocked)
		synctest.Wait()

		if first.Load() == 0 {
			t.Fatal("the blocking handler never got an event")
		}
		if evs := c.rec.filter(func(ev Event) bool { return ev.Node == slow }); len(evs) != 0 {
			t.Fatalf("%d events of the blocked peer recorded before the release", len(evs))
		}
		st := c.peers[slow].Stats()
		if want := uint64((slowPeers - 1) * DefaultMessages); st.Delivered != want || st.Originated != DefaultMessages {
			t.Errorf("blocked peer delivered %d and originated %d messages, want %d and %d", st.Delivered, st.Originated, want, DefaultMessages)
		}
		if nb := c.peers[slow].Neighbors(); len(nb) < DefaultMinDegree {
			t.Errorf("blocked peer has neighbours %v", nb)
		}
		checkDelivery(t, c.rec, others)
		for _, p := range others {
			got := c.rec.filter(func(ev Event) bool { return ev.Node == p && ev.Kind == EventMessage && ev.Origin == slow })
			if len(got) != DefaultMessages {
				t.Errorf("%s delivered %d messages of the blocked peer, want %d", p, len(got), DefaultMessages)
			}
		}
		if r := c.rec.filter(func(ev Event) bool {
			return (ev.Kind == EventDeadReportSent || ev.Kind == EventPeerRemoved) && ev.Addr == slow
		}); len(r) != 0 {
			t.Errorf("the blocked peer was reported or removed: %v", r)
		}
		listed := 0
		for _, s := range c.seedsBy {
			if slices.Contains(s.Peers(), slow) {
				listed++
			}
		}
		if listed < clusterSeeds/2+1 {
			t.Errorf("%d seeds list the blocked peer, want a majority", listed)
		}

		// Cancelled while blocked, Run waits for the queued events.
		c.stop(slow)
		synctest.Wait()
		if c.runDone(slow) {
			t.Fatal("Run returned with events still queued for the blocked handler")
		}
		close(release)
		synctest.Wait()
		if !c.runDone(slow) {
			t.Fatal("Run did not return after the handler was released")
		}
		if err := c.runErr(slow); err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
		evs := c.rec.filter(func(ev Event) bool { return ev.Node == slow })
		if !slices.IsSortedFunc(evs, func(a, b Event) int { return a.Time.Compare(b.Time) }) {
			t.Error("the blocked peer's events were delivered out of order")
		}
		msgs := c.rec.of(slow, EventMessage)
		if uint64(len(msgs)) != st.Delivered {
			t.Errorf("after the release the handler got %d message events, want %d", len(msgs), st.Delivered)
		}
		if len(c.rec.of(slow, EventJoined)) != 1 {
			t.Error("the blocked peer's EventJoined was not delivered after the release")
		}
		t.Logf("handler blocked for %v from %v; %d events then delivered; %d messages delivered meanwhile",
			slowBlocked, time.Unix(0, first.Load()).Sub(start), len(evs), st.Delivered)
	})
	goleak.VerifyNone(t)
}

// seedsOf returns the seeds the peer at addr joined with, from its
// EventJoined.
func seedsOf(c *cluster, addr string) []string {
	j := c.rec.of(addr, EventJoined)
	if len(j) == 0 {
		return nil
	}
	return j[0].Peers
}

// Graceful-leave scenario.
const (
	leavePeers = 8
	leaveIndex = 2 // the peer that leaves
	// leaveSettle is how long the network runs before the leave.
	leaveSettle = 30 * time.Second
	// leaveBound is how soon after its context is cancelled a leaving
	// peer must be gone from its seeds and neighbours: a leave is one
	// message, with no detection or probing.
	leaveBound = time.Second
	// leaveWatch is how long the test then watches for a dead-node report
	// about the peer: longer than a silent peer takes to be reported
	// ((maxMisses+1) liveness intervals) and probed.
	leaveWatch = (DefaultMaxMisses+2)*DefaultLivenessInterval + probeTime
)

// TestGracefulLeave cancels one peer's context: every seed it registered
// with removes it with reason "left" at once, its neighbours drop it with
// reason "left", Run returns nil, and nobody ever reports it dead.
func TestGracefulLeave(t *testing.T) {
	if leaveBound*10 > removalBound {
		t.Fatalf("leaveBound %v is not much less than the detection time %v", leaveBound, removalBound)
	}
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, clusterSeeds, WithMessages(0))
		peers := c.startNetwork(leavePeers, leaveSettle)

		leaver := peers[leaveIndex]
		nbrs := c.peers[leaver].Neighbors()
		if len(nbrs) == 0 {
			t.Fatalf("%s has no neighbours", leaver)
		}
		regSeeds := slices.Sorted(slices.Values(seedsOf(c, leaver)))
		var holders []string
		for _, a := range c.seeds {
			if slices.Contains(c.seedsBy[a].Peers(), leaver) {
				holders = append(holders, a)
			}
		}
		if len(regSeeds) != clusterSeeds/2+1 || !slices.Equal(holders, regSeeds) {
			t.Fatalf("%s joined with %v, listed by %v; want the same majority", leaver, regSeeds, holders)
		}

		leftAt := time.Now()
		c.stop(leaver)
		time.Sleep(leaveBound)
		synctest.Wait()

		if !c.runDone(leaver) {
			t.Fatalf("Run did not return within %v of the cancel", leaveBound)
		}
		if err := c.runErr(leaver); err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
		removals := c.rec.filter(func(ev Event) bool { return ev.Kind == EventPeerRemoved && ev.Addr == leaver })
		var removers []string
		for _, ev := range removals {
			removers = append(removers, ev.Node)
			if ev.Reason != "left" {
				t.Errorf("seed %s removed %s for %q, want left", ev.Node, leaver, ev.Reason)
			}
			if d := ev.Time.Sub(leftAt); d > leaveBound {
				t.Errorf("seed %s removed %s %v after it left, want within %v", ev.Node, leaver, d, leaveBound)
			}
		}
		slices.Sort(removers)
		if !slices.Equal(removers, holders) {
			t.Errorf("removed by %v, want once by each seed it registered with %v", removers, holders)
		}
		for _, a := range c.seeds {
			if slices.Contains(c.seedsBy[a].Peers(), leaver) {
				t.Errorf("seed %s still lists %s after it left", a, leaver)
			}
		}
		for _, nb := range nbrs {
			downs := c.rec.filter(func(ev Event) bool {
				return ev.Node == nb && ev.Kind == EventNeighborDown && ev.Addr == leaver
			})
			if len(downs) != 1 || downs[0].Reason != "left" || downs[0].Time.Sub(leftAt) > leaveBound {
				t.Errorf("neighbour %s: EventNeighborDown about %s = %v, want one with reason left within %v", nb, leaver, downs, leaveBound)
			}
		}

		time.Sleep(leaveWatch)
		synctest.Wait()
		if r := c.rec.filter(func(ev Event) bool {
			return (ev.Kind == EventDeadReportSent || ev.Kind == EventDeadReportReceived) && ev.Addr == leaver
		}); len(r) != 0 {
			t.Errorf("%s left gracefully but was reported dead: %v", leaver, r)
		}
		if n := len(c.rec.filter(func(ev Event) bool { return ev.Kind == EventPeerRemoved && ev.Addr == leaver })); n != len(holders) {
			t.Errorf("%d removals of %s, want %d (one per seed, reason left)", n, leaver, len(holders))
		}
		if rm := c.rec.filter(func(ev Event) bool { return ev.Kind == EventPeerRemoved && ev.Addr != leaver }); len(rm) != 0 {
			t.Errorf("live peers removed: %v", rm)
		}
		for _, p := range peers {
			if p != leaver && slices.Contains(c.peers[p].Neighbors(), leaver) {
				t.Errorf("%s links to %s after it left", p, leaver)
			}
		}
		t.Logf("%s left: removed by %v and dropped by %d neighbours within %v; no dead report in the next %v",
			leaver, removers, len(nbrs), leaveBound, leaveWatch)
	})
}

// TestStopHandlesReceivedFrames: frames already in a seed's inbox when its
// context ends are handled before it stops, so a peer's leave that
// arrived just before the seed's own stop still removes that peer. The
// leaves are queued and the seed cancelled in one step of its loop. Without
// the drain, the loop's select chooses at random between the cancel and
// the next waiting leave, so the seed stops with leaves unhandled: all 10
// runs without it failed.
func TestStopHandlesReceivedFrames(t *testing.T) {
	const leavers = 20
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, WithMessages(0))
		c.startSeeds()
		peers := c.startPeers(leavers, joinGap)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		seed := c.seedsBy[c.seeds[0]]
		if got := len(seed.Peers()); got != leavers {
			t.Fatalf("seed lists %d peers, want %d", got, leavers)
		}
		// The peers vanish without a goodbye; fresh transports at their
		// addresses then send the leaves.
		leave, err := codec.Msgpack().Marshal(&wireMsg{V: wireVersion, K: kindLeave})
		if err != nil {
			t.Fatal(err)
		}
		var raws []transport.Transport
		for _, p := range peers {
			c.crash(p)
			raws = append(raws, c.transport(p))
		}
		err = seed.n.do(t.Context(), func(time.Time) {
			for _, tr := range raws {
				if err := tr.Send(t.Context(), c.seeds[0], leave); err != nil {
					t.Errorf("send leave from %s: %v", tr.Addr(), err)
				}
			}
			c.stop(c.seeds[0])
		})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if !c.runDone(c.seeds[0]) {
			t.Fatal("seed still running after its cancel")
		}
		if got := seed.Peers(); len(got) != 0 {
			t.Errorf("seed stopped still listing %d of the %d peers that left before it: %v", len(got), leavers, got)
		}
		if n := len(c.rec.filter(func(ev Event) bool { return ev.Kind == EventPeerRemoved && ev.Reason == "left" })); n != leavers {
			t.Errorf("%d removals with reason left, want %d", n, leavers)
		}
	})
}
