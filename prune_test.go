package gossip

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gossip-dev/gossip/transport"
)

// claims is neighbour list number v, listing addrs.
func claims(v uint64, addrs ...string) *wireMsg {
	m := &wireMsg{K: kindNeighbors, Seq: v}
	for _, a := range addrs {
		m.Peers = append(m.Peers, wirePeer{Addr: a})
	}
	return m
}

// forwarded is lazyMsg(seq, 1) as forwarded under list number nv.
func forwarded(seq, nv uint64) *wireMsg {
	m := lazyMsg(seq, 1)
	m.NV = nv
	return m
}

// A message from a is not forwarded to b while a and b both say they are
// linked, in the list a forwarded it under, and is forwarded to b again
// once b says it dropped a. A claim one end makes alone, a list of a's that
// did not arrive, a repair or the option off prunes nothing.
func TestSelfPruningSkipsSharedNeighbors(t *testing.T) {
	s := joinedPeer(t, []string{"a", "b", "c", "o"}, WithSelfPruning(true))
	s.receive("a", claims(1, "p:1", "b", "c", "o"), t0)
	s.receive("b", claims(1, "a", "p:1"), t0)
	s.receive("c", claims(1, "p:1"), t0) // c does not confirm a's claim
	wantSent(t, s, "claims")

	s.receive("a", forwarded(1, 1), t0)
	var nvs []uint64
	for _, o := range s.fx.sends {
		nvs = append(nvs, o.msg.NV)
	}
	wantSent(t, s, "b shares a", "c gossip")
	if got := s.ctr.pruned.Load(); got != 1 {
		t.Errorf("pruned %d copies, want 1", got)
	}
	if len(nvs) != 1 || nvs[0] == 0 || nvs[0] != s.listVersion {
		t.Errorf("forwarded under list numbers %v, want [%d]", nvs, s.listVersion)
	}

	s.receive("b", claims(2, "p:1"), t0) // b dropped a
	s.receive("a", forwarded(2, 1), t0)
	wantSent(t, s, "b dropped a", "b gossip", "c gossip")

	s.receive("b", claims(3, "a", "p:1"), t0)
	s.receive("a", forwarded(3, 2), t0) // a's list 2 was lost
	wantSent(t, s, "a's list lost", "b gossip", "c gossip")

	s.receive("a", forwarded(4, 0), t0) // a repair
	wantSent(t, s, "repair", "b gossip", "c gossip")

	s.receive("a", forwarded(5, 1), t0)
	wantSent(t, s, "list 1 again", "c gossip")

	off := joinedPeer(t, []string{"a", "b", "c", "o"})
	off.receive("a", claims(1, "p:1", "b", "c", "o"), t0)
	off.receive("b", claims(1, "a", "p:1"), t0)
	off.receive("a", forwarded(1, 1), t0)
	wantSent(t, off, "option off", "b gossip", "c gossip")
}

// Anti-entropy sends cached copies without a list number, so that the
// receiver prunes nothing for them.
func TestSelfPruningRepairsUnnumbered(t *testing.T) {
	s := joinedPeer(t, []string{"a", "b"}, WithSelfPruning(true))
	s.originate([]byte("x"), t0)
	for _, o := range s.fx.sends {
		if o.msg.K == kindGossip && o.msg.NV != s.listVersion {
			t.Errorf("originated under list %d, want %d", o.msg.NV, s.listVersion)
		}
	}
	sent(&s.fx)
	s.receive("a", &wireMsg{K: kindWant, IDs: []uint64{uint64(s.cache.entries(t0.Add(time.Hour))[0].id)}}, t0)
	if len(s.fx.sends) != 1 || s.fx.sends[0].msg.K != kindGossip || s.fx.sends[0].msg.NV != 0 {
		t.Fatalf("repair sent %v, want one gossip without a list number", sent(&s.fx))
	}
}

// A peer tells its neighbours its links when they change: a new inbound
// neighbour after its connect-ack, so that the list is not dropped as
// coming from a non-neighbour.
func TestSelfPruningTellsNeighbors(t *testing.T) {
	s := joinedPeer(t, []string{"a", "b"}, WithSelfPruning(true))
	s.receive("d", link(kindConnect, "d", "p:1"), t0)
	wantSent(t, s, "inbound link", "s3 degree", "s1 degree", "a neighbors", "b neighbors", "d connect-ack", "d neighbors")
	s.receive("a", &wireMsg{K: kindDisconnect}, t0)
	var told []string
	for _, o := range s.fx.sends {
		if o.msg.K != kindNeighbors {
			continue
		}
		told = append(told, o.to)
		var addrs []string
		for _, p := range o.msg.Peers {
			addrs = append(addrs, p.Addr)
		}
		if !slices.Equal(addrs, []string{"b", "d"}) {
			t.Errorf("after the drop told %s %v, want [b d]", o.to, addrs)
		}
	}
	if !slices.Equal(told, []string{"b", "d"}) {
		t.Errorf("after the drop told %v, want b and d", told)
	}
	sent(&s.fx)

	// A list from a non-neighbour is ignored, and one beyond the max
	// degree keeps only links to this peer's neighbours.
	s.receive("x", claims(1, "b"), t0)
	if _, ok := s.nbrs["x"]; ok {
		t.Fatal("x became a neighbour")
	}
	long := make([]string, DefaultMaxDegree+5)
	for i := range long {
		long[i] = fmt.Sprintf("q%d", i)
	}
	long[7] = "d"
	s.receive("b", claims(9, long...), t0)
	if got := s.nbrs["b"].claims; !slices.Equal(got, []string{"d"}) {
		t.Errorf("claims kept from an oversized list: %v, want [d]", got)
	}
}

// floodRun runs prunePeers peers, each originating pruneMessages messages
// while links lose a fraction loss of the frames, and returns the
// deliveries and the gossip frames the network carried, after every
// delivery (with loss, anti-entropy's repairs) could have happened.
func floodRun(t *testing.T, loss float64, opts ...Option) (delivered, frames int, exactlyOnce bool, repaired uint64) {
	const prunePeers, pruneMessages = 40, 5
	var n *atomic.Int64
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3, append([]Option{WithMessages(0)}, opts...)...)
		peers := c.startNetwork(prunePeers, 30*time.Second)
		if loss > 0 {
			c.net.SetDefaultFault(transport.Fault{Drop: loss, Latency: 5 * time.Millisecond, Jitter: 5 * time.Millisecond})
		}
		n = c.countGossip()
		for i := range pruneMessages {
			for _, p := range peers {
				_ = c.peers[p].Broadcast(t.Context(), fmt.Appendf(nil, "%s-%d", p, i))
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(3 * time.Minute) // anti-entropy every 20 s
		synctest.Wait()
		exactlyOnce = true
		for _, p := range peers {
			got := map[msgKey]int{}
			for _, ev := range c.rec.of(p, EventMessage) {
				got[msgKey{ev.Origin, ev.Seq}]++
			}
			if len(got) != pruneMessages*(prunePeers-1) {
				exactlyOnce = false
			}
			for _, k := range got {
				if k != 1 {
					exactlyOnce = false
				}
			}
		}
		for _, p := range peers {
			repaired += c.peers[p].Stats().Repaired
		}
		delivered = len(c.rec.kind(EventMessage))
		if want := pruneMessages * prunePeers * (prunePeers - 1); delivered != want {
			t.Errorf("%d deliveries, want %d", delivered, want)
		}
	})
	return delivered, int(n.Load()), exactlyOnce, repaired
}

// Over the in-memory network, self-pruning delivers every message to every
// peer, as flooding does, with fewer frames.
func TestSelfPruningDelivers(t *testing.T) {
	pd, pf, pOnce, _ := floodRun(t, 0, WithSelfPruning(true))
	fd, ff, fOnce, _ := floodRun(t, 0)
	t.Logf("self-pruning: %d deliveries, %.2f frames each; flooding: %d, %.2f", pd, float64(pf)/float64(pd), fd, float64(ff)/float64(fd))
	if !pOnce || !fOnce {
		t.Errorf("not every message delivered exactly once: self-pruning %v, flooding %v", pOnce, fOnce)
	}
	if pf >= ff {
		t.Errorf("self-pruning sent %d gossip frames, flooding %d: nothing pruned", pf, ff)
	}
}

// With 5% of the frames lost, neighbour lists among them, every message
// still reaches every peer exactly once, pushed or repaired by
// anti-entropy.
func TestSelfPruningDeliversUnderLoss(t *testing.T) {
	d, f, once, repaired := floodRun(t, 0.05, WithSelfPruning(true))
	t.Logf("self-pruning at 5%% loss: %d deliveries, %.2f frames each, %d repairs", d, float64(f)/float64(d), repaired)
	if !once {
		t.Errorf("not every message delivered exactly once")
	}
	if repaired == 0 {
		t.Errorf("no repairs: the loss did not bite")
	}
}
