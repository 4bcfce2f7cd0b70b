package gossip

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gossip-dev/gossip/transport"
)

// lazyPeers is 60, or 30 under the race detector.
var lazyPeers = scaled(60, 30)

const (
	lazyMessages     = 200
	lazyLoss         = 0.05
	lazyMaxPerDeliv  = 1.3 // payload transmissions per delivery, lazy push
	floodMinPerDeliv = 2.0 // flooding sends clearly more
)

// runDissemination grows a network, has peers broadcast lazyMessages
// messages under 5% loss, and returns the delivered fraction and the
// payload transmissions (gossip frames sent) per delivery.
func runDissemination(t *testing.T, opts ...Option) (coverage, perDelivery float64) {
	var frames *atomic.Int64
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3, append([]Option{WithMessages(0)}, opts...)...)
		peers := c.startNetwork(lazyPeers, 30*time.Second)
		c.net.SetDefaultFault(transport.Fault{Drop: lazyLoss, Latency: 5 * time.Millisecond, Jitter: 5 * time.Millisecond})
		frames = c.countGossip()
		for i := range lazyMessages {
			_ = c.peers[peers[0]].Broadcast(t.Context(), fmt.Appendf(nil, "m%d", i))
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		var fwd, rep uint64
		for _, p := range peers {
			st := c.peers[p].Stats()
			fwd += st.Forwarded
			rep += st.Repaired
		}
		t.Logf("relayed in full %d, repaired %d, gossip frames delivered %d", fwd, rep, frames.Load())
		delivered := len(c.rec.kind(EventMessage))
		coverage = float64(delivered) / float64(lazyMessages*(lazyPeers-1))
		perDelivery = float64(frames.Load()) / float64(delivered)
	})
	return coverage, perDelivery
}

func TestLazyPushSavesTransmissions(t *testing.T) {
	if testing.Short() {
		t.Skip("two 60-peer runs")
	}
	lazyCov, lazyPer := runDissemination(t, WithLazyPush(50*time.Millisecond, time.Second))
	floodCov, floodPer := runDissemination(t)
	t.Logf("%d peers, 5%% loss, %d messages: lazy push coverage %.4f, %.2f payload sends per delivery; flooding coverage %.4f, %.2f",
		lazyPeers, lazyMessages, lazyCov, lazyPer, floodCov, floodPer)
	if lazyCov != 1 || floodCov != 1 {
		t.Errorf("coverage lazy %.4f, flood %.4f; want 1", lazyCov, floodCov)
	}
	if lazyPer > lazyMaxPerDeliv {
		t.Errorf("lazy push sent %.2f payloads per delivery, want <= %v", lazyPer, lazyMaxPerDeliv)
	}
	if floodPer < floodMinPerDeliv {
		t.Errorf("flooding sent only %.2f payloads per delivery; the comparison is meaningless", floodPer)
	}
}

// lazyPeer is a joined peer in lazy-push mode with neighbours a, b, c and
// the origin o, every link eager at the start (WithEagerLinks(0)), so
// that the tests below start from a flood and watch the prunes.
func lazyPeer(t *testing.T) *peerState {
	t.Helper()
	return joinedPeer(t, []string{"a", "b", "c", "o"}, WithLazyPush(50*time.Millisecond, time.Second), WithEagerLinks(0))
}

// announcingPeer is lazyPeer with its links from b and c pruned, so that
// b and c announce to it rather than push.
func announcingPeer(t *testing.T) *peerState {
	t.Helper()
	s := lazyPeer(t)
	s.nbrs["b"].prunedIn, s.nbrs["c"].prunedIn = true, true
	return s
}

// lazyMsg is origin o's message seq, relayed over hops hops before the
// sender.
func lazyMsg(seq uint64, hops int) *wireMsg {
	return signed(&wireMsg{K: kindGossip, Origin: "o", Seq: seq, Stamp: t0.UnixNano(), Hops: hops, Payload: fmt.Appendf(nil, "m%d", seq)}, testKey)
}

func wantSent(t *testing.T, s *peerState, what string, want ...string) {
	t.Helper()
	if got := sent(&s.fx); !slices.Equal(got, want) {
		t.Fatalf("%s: sent %q, want %q", what, got, want)
	}
}

// A prune is one-way: the peer that got the duplicate stops the sender's
// pushes to it, and goes on pushing to the sender until told otherwise.
func TestLazyPruneIsOneWay(t *testing.T) {
	s := lazyPeer(t)
	s.receive("a", lazyMsg(1, 0), t0)
	wantSent(t, s, "first copy", "b gossip", "c gossip")
	s.receive("b", lazyMsg(1, 0), t0)
	wantSent(t, s, "duplicate on a tie", "b prune")
	s.receive("c", &wireMsg{K: kindPrune}, t0)
	s.receive("a", lazyMsg(2, 0), t0)
	// b pruned its link to us, not ours to it; c pruned ours: announce,
	// the first time at once (see TestLazyFirstAnnouncementAtOnce).
	wantSent(t, s, "next message", "b gossip", "c ihave")
	s.receive("a", lazyMsg(3, 0), t0)
	wantSent(t, s, "the message after", "b gossip")
	s.tick(t0.Add(50 * time.Millisecond))
	wantSent(t, s, "flush", "c ihave")
	// A graft from c makes it eager again.
	s.receive("c", &wireMsg{K: kindGraft}, t0)
	s.receive("a", lazyMsg(4, 0), t0)
	wantSent(t, s, "after c's graft", "b gossip", "c gossip")
}

// Of two live links that both brought a message, the one on the longer
// path from the origin is pruned, whichever came first.
func TestLazyPrunesLongerPath(t *testing.T) {
	s := lazyPeer(t)
	s.receive("a", lazyMsg(1, 4), t0)
	sent(&s.fx)
	s.receive("b", lazyMsg(1, 1), t0)
	wantSent(t, s, "shorter copy second", "a prune")
	// A third, longer copy: its own link goes.
	s.receive("c", lazyMsg(1, 3), t0)
	wantSent(t, s, "longer third copy", "c prune")
}

// A copy that arrives first over a link already pruned was in flight: the
// live link that brings the duplicate is kept, so a peer is never left
// with no link pushing to it. A pruned link that keeps pushing is told
// again, at most once per flush interval.
func TestLazyKeepsLiveLink(t *testing.T) {
	s := lazyPeer(t)
	s.receive("a", lazyMsg(1, 0), t0)
	s.receive("b", lazyMsg(1, 0), t0)
	s.receive("c", lazyMsg(1, 0), t0)
	wantSent(t, s, "setup", "b gossip", "c gossip", "b prune", "c prune")
	s.receive("b", lazyMsg(2, 0), t0) // in flight from pruned b
	s.receive("a", lazyMsg(2, 0), t0) // a is the live link: kept
	wantSent(t, s, "in-flight first copy", "a gossip", "c gossip")
	s.receive("b", lazyMsg(3, 0), t0.Add(10*time.Millisecond))
	s.receive("a", lazyMsg(3, 0), t0.Add(10*time.Millisecond))
	wantSent(t, s, "within the flush interval", "a gossip", "c gossip")
	s.receive("a", lazyMsg(4, 0), t0.Add(time.Second))
	s.receive("b", lazyMsg(4, 0), t0.Add(time.Second))
	wantSent(t, s, "b still pushing a second later", "b gossip", "c gossip", "b prune")
}

// A missing message is requested first from the announcer closest to the
// origin; and a lazy neighbour that announces messages received here over
// a longer path, twice in a row, replaces the link they came on.
func TestLazyUsesAnnouncedHops(t *testing.T) {
	s := lazyPeer(t)
	m := lazyMsg(1, 0)
	id := uint64(m.id())
	s.receive("a", &wireMsg{K: kindIHave, IDs: []uint64{id}, IDHops: []byte{5}}, t0)
	s.receive("b", &wireMsg{K: kindIHave, IDs: []uint64{id}, IDHops: []byte{1}}, t0)
	s.receive("c", &wireMsg{K: kindIHave, IDs: []uint64{id}}, t0) // no hop counts
	wantSent(t, s, "announcements")
	s.tick(t0.Add(time.Second))
	wantSent(t, s, "first graft", "b graft")
	s.tick(t0.Add(2 * time.Second))
	wantSent(t, s, "second graft", "a graft")

	// Messages 2, 3 and 4 arrive from a after 5 hops.
	s = lazyPeer(t)
	var ids []uint64
	for seq := uint64(2); seq <= 4; seq++ {
		m = lazyMsg(seq, 4)
		s.receive("a", m, t0)
		ids = append(ids, uint64(m.id()))
	}
	sent(&s.fx)
	s.receive("b", &wireMsg{K: kindIHave, IDs: ids[:1], IDHops: []byte{4}}, t0)
	wantSent(t, s, "as long: no change")
	s.receive("c", &wireMsg{K: kindIHave, IDs: ids[:1], IDHops: []byte{3}}, t0)
	wantSent(t, s, "a hop shorter, once: no change")
	s.receive("c", &wireMsg{K: kindIHave, IDs: ids[1:2], IDHops: []byte{4}}, t0)
	s.receive("c", &wireMsg{K: kindIHave, IDs: ids[2:3], IDHops: []byte{3}}, t0)
	wantSent(t, s, "a hop shorter, then as long, then shorter: no change")
	s.receive("c", &wireMsg{K: kindIHave, IDs: ids[1:], IDHops: []byte{3, 3}}, t0)
	wantSent(t, s, "a hop shorter twice in a row", "c graft", "a prune")
	// Messages 5 and 6 come from c after 4 hops; a announces both as
	// after 1.
	ids = ids[:0]
	for seq := uint64(5); seq <= 6; seq++ {
		m = lazyMsg(seq, 3)
		s.receive("c", m, t0)
		ids = append(ids, uint64(m.id()))
	}
	sent(&s.fx)
	s.receive("a", &wireMsg{K: kindIHave, IDs: ids, IDHops: []byte{0, 0}}, t0)
	wantSent(t, s, "the pruned link announcing a shorter path", "a graft", "c prune")
}

// A link that recently brought the first copy of another origin's message
// is that origin's path: a duplicate of this origin's message on it does
// not prune it.
func TestLazyKeepsOtherOriginsPath(t *testing.T) {
	s := joinedPeer(t, []string{"a", "b", "o", "q"}, WithLazyPush(50*time.Millisecond, time.Second), WithEagerLinks(0))
	q := signed(&wireMsg{K: kindGossip, Origin: "q", Seq: 1, Stamp: t0.UnixNano(), Payload: []byte("q1")}, testKey)
	s.receive("b", q, t0)
	sent(&s.fx)
	s.receive("a", lazyMsg(1, 0), t0)
	s.receive("b", lazyMsg(1, 0), t0)
	wantSent(t, s, "duplicate on q's path", "b gossip", "q gossip")
	s.receive("a", lazyMsg(2, 0), t0.Add(3*time.Second))
	s.receive("b", lazyMsg(2, 0), t0.Add(3*time.Second))
	wantSent(t, s, "after q's path went quiet", "b gossip", "q gossip", "b prune")
}

// While links push to it, a peer pulls a message lost on the way with a
// want, which leaves the tree as it is; misses that recur are grafted.
func TestLazyPullsOneOffLossesWithWant(t *testing.T) {
	s := lazyPeer(t)
	s.receive("a", lazyMsg(1, 0), t0)
	sent(&s.fx)
	for i, want := range []string{"b want", "b graft"} {
		at := t0.Add(time.Duration(i) * 500 * time.Millisecond)
		m := lazyMsg(uint64(10+i), 0)
		s.receive("b", &wireMsg{K: kindIHave, IDs: []uint64{uint64(m.id())}, IDHops: []byte{1}}, at)
		s.tick(at.Add(time.Second))
		wantSent(t, s, fmt.Sprintf("miss %d", i+1), want)
	}
}

// A neighbour that ignores prunes (a flooding peer) is told again a bounded
// number of times, not once per flush interval for ever.
func TestLazyBoundsRepeatedPrunes(t *testing.T) {
	s := lazyPeer(t)
	s.receive("a", lazyMsg(1, 0), t0)
	s.receive("b", lazyMsg(1, 0), t0)
	wantSent(t, s, "first duplicate", "b gossip", "c gossip", "b prune")
	prunes := 0
	for i := range 20 {
		at := t0.Add(time.Duration(i+1) * time.Second)
		s.receive("a", lazyMsg(uint64(i+2), 0), at)
		s.receive("b", lazyMsg(uint64(i+2), 0), at)
		for _, x := range sent(&s.fx) {
			if x == "b prune" {
				prunes++
			}
		}
	}
	if prunes != maxPruneRepeats {
		t.Fatalf("%d prunes repeated to a neighbour that ignores them, want %d", prunes, maxPruneRepeats)
	}
}

// When the last neighbour pushing to a peer goes, the peer grafts the
// others at once instead of waiting for announcements and the graft
// timeout.
func TestLazyGraftsWhenLastPusherLeaves(t *testing.T) {
	s := lazyPeer(t)
	s.receive("a", lazyMsg(1, 0), t0)
	s.receive("b", lazyMsg(1, 0), t0)
	s.receive("c", lazyMsg(1, 0), t0)
	wantSent(t, s, "setup", "b gossip", "c gossip", "b prune", "c prune")
	s.receive("o", &wireMsg{K: kindLeave}, t0) // o never pushed a copy: a pusher, but a remains
	for _, x := range sent(&s.fx) {
		if strings.HasSuffix(x, " graft") {
			t.Fatalf("graft %q while a still pushes", x)
		}
	}
	s.receive("a", &wireMsg{K: kindLeave}, t0)
	var grafts []string
	for _, x := range sent(&s.fx) {
		if strings.HasSuffix(x, " graft") {
			grafts = append(grafts, x)
		}
	}
	if want := []string{"b graft", "c graft"}; !slices.Equal(grafts, want) {
		t.Fatalf("grafts after the last pusher left: %q, want %q", grafts, want)
	}
}

// With WithEagerLinks(k), the first connect a lazy-push peer sends asks
// for a link eager both ways, the next k−1 for links that push to it only,
// its other links start lazy both ways, and the acceptor takes the link as
// the connect asks.
func TestEagerLinksStartLazy(t *testing.T) {
	s := newPeerState(testConfig(t, WithLazyPush(50*time.Millisecond, time.Second), WithEagerLinks(2), WithMinDegree(4)),
		"p:1", []string{"s1", "s2", "s3"}, new(peerCounters), newReputation(testConfig(t)))
	s.start(t0)
	list := []wirePeer{{Addr: "a"}, {Addr: "b"}, {Addr: "c"}, {Addr: "d"}, {Addr: "o"}}
	for _, sd := range s.seeds[:2] {
		s.receive(sd, &wireMsg{K: kindRegisterAck, Peers: list}, t0)
	}
	modes := map[linkMode][]string{}
	for _, o := range s.fx.sends {
		if o.msg.K == kindConnect {
			modes[o.msg.Link] = append(modes[o.msg.Link], o.to)
		}
	}
	if len(modes[linkEager]) != 1 || len(modes[linkPushIn]) != 1 || len(modes[0]) < 2 || len(modes) != 3 {
		t.Fatalf("connects by link mode %v; want 1 eager both ways, 1 pushing in, at least 2 lazy", modes)
	}
	both, in := modes[linkEager][0], modes[linkPushIn][0]
	sent(&s.fx)
	for a, d := range s.dialing {
		ack := linkAt(kindConnectAck, a, "p:1", t0, d.nonce)
		ack.Link = d.mode.flip() // the acceptor takes what was asked
		s.receive(a, ack, t0)
	}
	sent(&s.fx)
	// An inbound link whose connect asks for pushes both ways.
	q := link(kindConnect, "q", "p:1")
	q.Link = linkEager
	s.receive("q", q, t0)
	if ack := ackTo(t, s, "q"); ack.Link != linkEager {
		t.Errorf("ack to q: link mode %d, want %d", ack.Link, linkEager)
	}
	sent(&s.fx)
	for a, nb := range s.nbrs {
		pushOut, pushIn := a == both || a == "q", a == both || a == "q" || a == in
		if nb.lazy == pushOut || nb.prunedIn == pushIn || nb.eager != pushIn {
			t.Errorf("%s: eager %v lazy %v prunedIn %v; want pushes out %v, in %v", a, nb.eager, nb.lazy, nb.prunedIn, pushOut, pushIn)
		}
	}
	// A message from the link pushing in only goes on in full over the
	// links eager both ways; the others are told of it, this first time
	// at once, then at the next flush.
	var lazy []string
	for _, a := range s.neighborsSorted() {
		if a != both && a != "q" && a != in {
			lazy = append(lazy, a+" ihave")
		}
	}
	for seq := uint64(1); seq <= 2; seq++ {
		m := signed(&wireMsg{K: kindGossip, Origin: "x", Seq: seq, Stamp: t0.UnixNano(), Payload: []byte("m")}, testKey)
		s.receive(in, m, t0)
		want := []string{both + " gossip", "q gossip"}
		if seq == 1 {
			want = append(want, lazy...)
		}
		slices.Sort(want)
		wantSent(t, s, fmt.Sprintf("message %d from the link pushing in", seq), want...)
	}
	s.tickMissing(t0.Add(time.Second))
	wantSent(t, s, "flush", lazy...)
}

// ackTo returns the connect-ack s sent to, failing the test if there is
// none.
func ackTo(t *testing.T, s *peerState, to string) *wireMsg {
	t.Helper()
	for _, o := range s.fx.sends {
		if o.to == to && o.msg.K == kindConnectAck {
			return o.msg
		}
	}
	t.Fatalf("no connect-ack to %s in %q", to, sent(&s.fx))
	return nil
}

// Both ends of crossing dials see both connects, so they agree on each
// direction: eager if either asked for it.
func TestEagerLinksCrossingDials(t *testing.T) {
	s := newPeerState(testConfig(t, WithLazyPush(50*time.Millisecond, time.Second), WithEagerLinks(1), WithMinDegree(1)),
		"p:1", []string{"s1", "s2", "s3"}, new(peerCounters), newReputation(testConfig(t)))
	s.start(t0)
	for _, sd := range s.seeds[:2] {
		s.receive(sd, &wireMsg{K: kindRegisterAck, Peers: []wirePeer{{Addr: "a"}}}, t0)
	}
	if d, ok := s.dialing["a"]; !ok || d.mode != linkEager {
		t.Fatalf("dialing a: %+v, %v; want a dial eager both ways", d, ok)
	}
	sent(&s.fx)
	s.receive("a", link(kindConnect, "a", "p:1"), t0) // a's own connect, asking for a lazy link
	if ack := ackTo(t, s, "a"); ack.Link != linkEager {
		t.Errorf("ack of the crossing connect: link mode %d; want %d (this end asked)", ack.Link, linkEager)
	}
	if nb := s.nbrs["a"]; nb == nil || !nb.eager || nb.lazy || nb.prunedIn {
		t.Fatalf("link to a after crossing dials: %+v; want eager", nb)
	}
}

// A flooding peer, or one with every link eager, says so in its connects
// and acks, so that a peer whose links start lazy does not take its pushes
// for a lost prune.
func TestEagerLinksWithFloodingPeer(t *testing.T) {
	s := joinedPeer(t, []string{"a"}, WithMinDegree(1))
	s.receive("b", link(kindConnect, "b", "p:1"), t0)
	if ack := ackTo(t, s, "b"); ack.Link != linkEager {
		t.Errorf("a flooding peer's ack: link mode %d, want %d", ack.Link, linkEager)
	}
}

// A peer pulls an announced message after a flush interval instead of a
// graft timeout before any link has pushed to it, and for a graft timeout
// after it moved its link (the old parent's last copies and the new one's
// first may both miss it).
func TestLazyPullsSoonAfterMovingLink(t *testing.T) {
	const flush = 50 * time.Millisecond
	s := announcingPeer(t)
	s.receive("b", &wireMsg{K: kindIHave, IDs: []uint64{999}, IDHops: []byte{0}}, t0)
	if d := s.missing[999].deadline; !d.Equal(t0.Add(flush)) {
		t.Fatalf("before any push: pulled at +%v, want +%v", d.Sub(t0), flush)
	}
	s.tick(t0.Add(flush))
	wantSent(t, s, "before any push", "b graft")

	s = announcingPeer(t)
	var ids []uint64
	for seq := uint64(2); seq <= 3; seq++ {
		m := lazyMsg(seq, 4)
		s.receive("a", m, t0)
		ids = append(ids, uint64(m.id()))
	}
	sent(&s.fx)
	s.receive("b", &wireMsg{K: kindIHave, IDs: []uint64{999}, IDHops: []byte{0}}, t0)
	if d := s.missing[999].deadline; !d.Equal(t0.Add(time.Second)) {
		t.Fatalf("while a pushes: pulled at +%v, want +1s", d.Sub(t0))
	}
	at := t0.Add(10 * time.Millisecond)
	s.receive("c", &wireMsg{K: kindIHave, IDs: append(ids, 998), IDHops: []byte{2, 2, 2}}, at)
	if g := s.fx.sends[0].msg; g.K != kindGraft || !slices.Equal(g.IDs, []uint64{998}) {
		t.Errorf("graft to the new parent: %v %v, want a graft asking for what it announced, [998]", g.K, g.IDs)
	}
	wantSent(t, s, "a shorter path twice", "c graft", "a prune")
	if d := s.missing[999].deadline; !d.Equal(at.Add(flush)) {
		t.Errorf("waiting when the link moved: pulled at +%v, want +%v", d.Sub(t0), at.Add(flush).Sub(t0))
	}
	s.receive("b", &wireMsg{K: kindIHave, IDs: []uint64{1000}, IDHops: []byte{0}}, at)
	if d := s.missing[1000].deadline; !d.Equal(at.Add(flush)) {
		t.Errorf("announced after the move: pulled at +%v, want +%v", d.Sub(t0), at.Add(flush).Sub(t0))
	}
	s.tick(at.Add(flush))
	wantSent(t, s, "after the move", "b want") // a want: a pushed since the last pull
	later := at.Add(2 * time.Second)
	s.receive("b", &wireMsg{K: kindIHave, IDs: []uint64{1001}, IDHops: []byte{0}}, later)
	if d := s.missing[1001].deadline; !d.Equal(later.Add(time.Second)) {
		t.Errorf("a graft timeout after the move: pulled at +%v, want +1s", d.Sub(later))
	}
}

// The first announcement to a lazy link goes out at once, not at the next
// flush: at the start of a network the eager links need not reach every
// peer, and one they miss learns of the first messages a flush interval
// sooner. Later announcements wait for the flush, batched.
func TestLazyFirstAnnouncementAtOnce(t *testing.T) {
	s := lazyPeer(t)
	s.receive("c", &wireMsg{K: kindPrune}, t0)
	m := lazyMsg(1, 0)
	s.receive("a", m, t0)
	wantSent(t, s, "first message", "b gossip", "c ihave")
	var ids []uint64
	for seq := uint64(2); seq <= 4; seq++ {
		m := lazyMsg(seq, 0)
		s.receive("a", m, t0)
		ids = append(ids, uint64(m.id()))
	}
	wantSent(t, s, "the next three", "b gossip", "b gossip", "b gossip")
	s.tick(t0.Add(50 * time.Millisecond))
	if len(s.fx.sends) != 1 || !slices.Equal(s.fx.sends[0].msg.IDs, ids) {
		t.Fatalf("flush: sent %q, want one ihave of the three", sent(&s.fx))
	}
	sent(&s.fx)
}

// A graft asks for every message the grafted neighbour announced that this
// peer lacks, not only the ones due: from the graft on it pushes, but what
// it announced before, it will not send unasked.
func TestLazyGraftAsksForAllAnnounced(t *testing.T) {
	const flush = 50 * time.Millisecond
	s := announcingPeer(t)
	s.receive("b", &wireMsg{K: kindIHave, IDs: []uint64{900}, IDHops: []byte{0}}, t0)
	s.receive("c", &wireMsg{K: kindIHave, IDs: []uint64{901}, IDHops: []byte{0}}, t0.Add(10*time.Millisecond))
	s.receive("b", &wireMsg{K: kindIHave, IDs: []uint64{902, 903}, IDHops: []byte{0, 0}}, t0.Add(20*time.Millisecond))
	s.tick(t0.Add(flush)) // 900 is due; 902 and 903 come from b too
	if len(s.fx.sends) != 1 {
		t.Fatalf("sent %q, want one graft to b", sent(&s.fx))
	}
	if g := s.fx.sends[0]; g.to != "b" || g.msg.K != kindGraft || !slices.Equal(g.msg.IDs, []uint64{900, 902, 903}) {
		t.Fatalf("sent %v to %s asking for %v; want a graft to b asking for [900 902 903]", g.msg.K, g.to, g.msg.IDs)
	}
	sent(&s.fx)
	s.tick(t0.Add(10*time.Millisecond + flush))
	wantSent(t, s, "901, announced by c alone, once due", "c graft")
	s.tick(t0.Add(20*time.Millisecond + flush))
	wantSent(t, s, "902 and 903 were asked for already")
}

// An announcement from a neighbour this peer has grafted crossed the
// graft: what it names will not be pushed, so it is asked for at once,
// of that neighbour, even when another announced it first.
func TestLazyAnnouncementCrossingGraft(t *testing.T) {
	const flush = 50 * time.Millisecond
	s := announcingPeer(t)
	s.receive("b", &wireMsg{K: kindIHave, IDs: []uint64{900}, IDHops: []byte{0}}, t0)
	s.receive("c", &wireMsg{K: kindIHave, IDs: []uint64{901}, IDHops: []byte{0}}, t0.Add(10*time.Millisecond))
	s.tick(t0.Add(flush))
	wantSent(t, s, "900 due", "b graft")
	at := t0.Add(flush + time.Millisecond)
	s.receive("b", &wireMsg{K: kindIHave, IDs: []uint64{901, 902}, IDHops: []byte{0, 0}}, at)
	if d := s.missing[902].deadline; !d.Equal(at) {
		t.Errorf("902, announced across the graft, due at +%v; want at once", d.Sub(at))
	}
	s.tick(at)
	if len(s.fx.sends) != 1 {
		t.Fatalf("sent %q, want one graft to b", sent(&s.fx))
	}
	if g := s.fx.sends[0]; g.to != "b" || !slices.Equal(g.msg.IDs, []uint64{901, 902}) {
		t.Fatalf("sent %v to %s asking for %v; want b asked for [901 902]", g.msg.K, g.to, g.msg.IDs)
	}
	sent(&s.fx)
	s.tick(t0.Add(10*time.Millisecond + flush))
	wantSent(t, s, "901 was asked of b already")
}

// A neighbour that grafts this peer gets the messages queued for
// announcement to it in full, at once.
func TestLazyGraftPushesQueued(t *testing.T) {
	s := lazyPeer(t)
	s.receive("b", &wireMsg{K: kindPrune}, t0)
	s.receive("a", lazyMsg(1, 0), t0)
	wantSent(t, s, "b pruned us", "b ihave", "c gossip") // the first announcement goes at once
	s.receive("a", lazyMsg(2, 0), t0)
	wantSent(t, s, "the next message", "c gossip")
	s.receive("b", &wireMsg{K: kindGraft}, t0)
	wantSent(t, s, "graft", "b gossip")
	s.tickMissing(t0.Add(time.Second))
	wantSent(t, s, "nothing left to announce")
}

// The eager links go to the shallowest in the tree of the peers a round of
// dials picks, by the level the seeds list for them (unknown last), the
// best connected on a tie: the tree they start is shallower. The link that
// pushes both ways hangs the peer one level under the peer it dialed, by
// the level its connect-ack carries, and the peer reports that level to
// its seeds with its degree.
func TestEagerLinksGoToShallowest(t *testing.T) {
	s := newPeerState(testConfig(t, WithLazyPush(50*time.Millisecond, time.Second), WithEagerLinks(2), WithMinDegree(4)),
		"p:1", []string{"s1", "s2", "s3"}, new(peerCounters), newReputation(testConfig(t)))
	s.start(t0)
	list := []wirePeer{{Addr: "a", Degree: 1, Level: 2}, {Addr: "b", Degree: 9}, {Addr: "c", Degree: 5, Level: 3}, {Addr: "d", Degree: 2, Level: 2}}
	for _, sd := range s.seeds[:2] {
		s.receive(sd, &wireMsg{K: kindRegisterAck, Peers: list}, t0)
	}
	var order []string
	modes := map[string]linkMode{}
	for _, o := range s.fx.sends {
		if o.msg.K == kindConnect {
			order = append(order, o.to)
			modes[o.to] = o.msg.Link
		}
	}
	if len(order) != 4 {
		t.Fatalf("dialed %v, want all 4", order)
	}
	if modes["d"] != linkEager || modes["a"] != linkPushIn || modes["c"] != 0 || modes["b"] != 0 {
		t.Errorf("link modes %v; want d (level 2, degree 2) eager both ways, a (level 2, degree 1) pushing in, c (level 3) and b (unknown) lazy", modes)
	}
	if s.level != 0 {
		t.Fatalf("level %d before any link; want 0 (unknown)", s.level)
	}
	sent(&s.fx)
	ack := linkAt(kindConnectAck, "d", "p:1", t0, s.dialing["d"].nonce)
	ack.Link, ack.Hops = linkEager, 2
	s.receive("d", ack, t0)
	if s.level != 3 {
		t.Errorf("level %d after the eager link to a level-2 peer; want 3", s.level)
	}
	reports := 0
	for _, o := range s.fx.sends {
		if o.msg.K == kindDegree {
			reports++
			if o.msg.Hops != 3 || o.msg.Degree != 1 {
				t.Errorf("degree report to %s: degree %d, level %d; want 1, 3", o.to, o.msg.Degree, o.msg.Hops)
			}
		}
	}
	if reports != 2 {
		t.Errorf("%d degree reports; want one per registered seed (2)", reports)
	}
	// Links that do not push both ways leave the level as it is.
	sent(&s.fx)
	ack = linkAt(kindConnectAck, "a", "p:1", t0, s.dialing["a"].nonce)
	ack.Link, ack.Hops = linkPushOut, 1
	s.receive("a", ack, t0)
	if s.level != 3 {
		t.Errorf("level %d after a link pushing in only; want 3 still", s.level)
	}
	// An inbound connect is answered with this peer's level.
	sent(&s.fx)
	s.receive("q", link(kindConnect, "q", "p:1"), t0)
	if ack := ackTo(t, s, "q"); ack.Hops != 3 {
		t.Errorf("connect-ack carries level %d; want 3", ack.Hops)
	}
}

// A lazy-push peer that joins with no one to dial is a root of the tree
// (level 1) and tells its seeds; a flooding peer keeps level 0.
func TestTreeRoot(t *testing.T) {
	for _, lazy := range []bool{true, false} {
		var opts []Option
		if lazy {
			opts = append(opts, WithLazyPush(50*time.Millisecond, time.Second))
		}
		s := newPeerState(testConfig(t, opts...), "p:1", []string{"s1", "s2", "s3"}, new(peerCounters), newReputation(testConfig(t)))
		s.start(t0)
		for _, sd := range s.seeds[:2] {
			s.receive(sd, &wireMsg{K: kindRegisterAck}, t0)
		}
		want := 0
		if lazy {
			want = 1
		}
		if s.level != want {
			t.Errorf("lazy %v: level %d; want %d", lazy, s.level, want)
		}
		for _, o := range s.fx.sends {
			if o.msg.K == kindDegree && o.msg.Hops != want {
				t.Errorf("lazy %v: degree report with level %d; want %d", lazy, o.msg.Hops, want)
			}
		}
	}
}

// TestFlushGrid: announcements queued at any instant go out at the next
// point of the peer's own grid of flush times, within one flush interval,
// and the grids of different peers are offset from one another, so that
// peers that receive a message together do not all announce it together.
func TestFlushGrid(t *testing.T) {
	const interval = 50 * time.Millisecond
	cfg := testConfig(t, WithLazyPush(interval, time.Second))
	phases := map[int64]bool{}
	lo, hi := int64(interval), int64(-1)
	for i := range 50 {
		s := newPeerState(cfg, peerAddr(i), []string{"10.0.0.1:7000"}, new(peerCounters), newReputation(cfg))
		p := s.flushPhase
		phases[p] = true
		lo, hi = min(lo, p), max(hi, p)
		var first time.Time
		for k := range 200 {
			now := t0.Add(time.Duration(k) * 3100 * time.Microsecond)
			at := s.flushTime(now)
			if d := at.Sub(now); d <= 0 || d > interval {
				t.Fatalf("peer %d at %v: flush after %v, want within (0, %v]", i, now, d, interval)
			}
			if first.IsZero() {
				first = at
			}
			if off := at.Sub(first) % interval; off != 0 {
				t.Fatalf("peer %d: flush at %v is off its grid by %v", i, at, off)
			}
		}
	}
	if len(phases) < 45 || time.Duration(hi-lo) < interval/2 {
		t.Errorf("50 peers have %d distinct flush phases spanning %v; want them spread over the %v interval", len(phases), time.Duration(hi-lo), interval)
	}
}

// Two messages of one origin pulled within two graft timeouts, while other
// messages are pushed: the tree does not reach this peer for that origin,
// and the neighbour that answered the second pull is grafted. Pulls of two
// different origins are random losses, and leave the links as they are.
func TestLazyGraftsOriginPulledTwice(t *testing.T) {
	msg := func(origin string, seq uint64) *wireMsg {
		return &wireMsg{K: kindGossip, Origin: origin, Seq: seq, Stamp: t0.UnixNano(), Hops: 1, Payload: fmt.Appendf(nil, "%s%d", origin, seq)}
	}
	grafts := func(s *peerState) []string {
		var out []string
		for _, x := range sent(&s.fx) {
			if strings.HasSuffix(x, " graft") || strings.HasSuffix(x, " want") {
				out = append(out, x)
			}
		}
		return out
	}
	for _, second := range []string{"y", "z"} {
		t.Run("then "+second, func(t *testing.T) {
			s := joinedPeer(t, []string{"a", "b", "c", "o"}, WithLazyPush(50*time.Millisecond, time.Second), WithEagerLinks(0), WithSignatures(false))
			s.nbrs["b"].prunedIn, s.nbrs["c"].prunedIn = true, true
			at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
			s.receive("a", msg("x", 1), at(0))
			sent(&s.fx)

			pull := func(m *wireMsg, ms int) []string {
				s.receive("b", &wireMsg{K: kindIHave, IDs: []uint64{uint64(m.id())}, IDHops: []byte{1}}, at(ms))
				s.tick(at(ms + 1000))
				asked := grafts(s)
				s.receive("b", m, at(ms+1010))
				return append(asked, grafts(s)...)
			}
			if got := pull(msg("y", 1), 0); !slices.Equal(got, []string{"b want"}) {
				t.Fatalf("first loss: sent %q, want a want to b", got)
			}
			s.receive("a", msg("x", 2), at(1100))
			s.receive("a", msg("x", 3), at(1150))
			got := pull(msg(second, 2), 1200)
			want := []string{"b want"}
			if second == "y" {
				want = append(want, "b graft")
			}
			if !slices.Equal(got, want) {
				t.Fatalf("second loss, of origin %s: sent %q, want %q", second, got, want)
			}
			if pruned := s.nbrs["b"].prunedIn; pruned != (second != "y") {
				t.Errorf("b's link pruned: %v after the second pull", pruned)
			}
		})
	}
}

// A message that reaches a peer over a path at least detourSlack hops
// longer than the previous message of its origin was relayed from here is
// held back from the peer's links: an announcement of a shorter path gets
// it pulled at once, and that copy, with its hop count, goes on. Without a
// shorter copy, it goes on after two flush intervals as it came.
func TestLazyHoldsDetouredCopy(t *testing.T) {
	s := lazyPeer(t)
	s.originated = s.cfg.messages // its own messages would go out on the ticks
	s.receive("a", lazyMsg(1, 1), t0)
	wantSent(t, s, "first message, 2 hops", "b gossip", "c gossip")
	drainEvents(&s.fx)
	at := t0.Add(5 * time.Second)
	m := lazyMsg(2, 3)
	id := uint64(m.id())
	s.receive("b", m, at)
	wantSent(t, s, "second message after 4 hops: held")
	if evs := drainEvents(&s.fx); len(evs) != 1 || evs[0].Kind != EventMessage {
		t.Fatalf("a held message is still delivered: events %v", kindsOf(evs))
	}
	s.receive("c", &wireMsg{K: kindIHave, IDs: []uint64{id}, IDHops: []byte{5}}, at)
	wantSent(t, s, "a longer path announced")
	s.receive("c", &wireMsg{K: kindIHave, IDs: []uint64{id}, IDHops: []byte{0}}, at)
	wantSent(t, s, "a shorter path announced", "c want")
	s.receive("a", &wireMsg{K: kindIHave, IDs: []uint64{id}, IDHops: []byte{0}}, at)
	wantSent(t, s, "announced by another: asked once")
	s.receive("c", lazyMsg(2, 0), at)
	if len(s.fx.sends) == 0 || s.fx.sends[0].msg.Hops != 1 {
		t.Fatalf("the shorter copy is not what goes on: %v", sent(&s.fx))
	}
	wantSent(t, s, "the shorter copy", "a gossip", "b prune")

	// Message 3 comes after 4 hops, 3 more than message 2 went on with,
	// and no shorter path is announced.
	at = at.Add(5 * time.Second)
	s.receive("c", lazyMsg(3, 3), at)
	wantSent(t, s, "third message: held")
	s.tick(at.Add(99 * time.Millisecond))
	wantSent(t, s, "before two flush intervals")
	s.tick(at.Add(100 * time.Millisecond))
	wantSent(t, s, "after two flush intervals", "a gossip", "b gossip")
	if len(s.held) != 0 || !s.heldDue.IsZero() {
		t.Fatalf("held %d, due %v after the release", len(s.held), s.heldDue)
	}
}

// The origins whose relayed hops are tracked are bounded; past the bound
// the table starts over, so a newer origin is tracked too.
func TestLazyDetourTrackingBounded(t *testing.T) {
	s := lazyPeer(t)
	for i := range maxPulledOrigins + 1 {
		s.noteBest(fmt.Sprintf("o%d", i), 1, 3)
	}
	if len(s.bestHops) > maxPulledOrigins || !s.detoured(fmt.Sprintf("o%d", maxPulledOrigins), 2, 5) {
		t.Fatalf("tracked %d origins; the newest tracked: %v", len(s.bestHops), s.detoured(fmt.Sprintf("o%d", maxPulledOrigins), 2, 5))
	}
	if s.detoured(fmt.Sprintf("o%d", maxPulledOrigins), 2, 4) {
		t.Fatal("a path one hop longer counted as a detour")
	}
}

// A held message is announced at once on the lazy links, and at its
// release on a link that went lazy while it was held: that link's peer
// would otherwise hear of it from neither side.
func TestLazyHeldCopyAnnounced(t *testing.T) {
	s := lazyPeer(t)
	s.originated = s.cfg.messages // its own messages would go out on the ticks
	s.receive("a", lazyMsg(1, 1), t0)
	wantSent(t, s, "first message, 2 hops", "b gossip", "c gossip")
	s.receive("b", &wireMsg{K: kindPrune}, t0)
	at := t0.Add(5 * time.Second)
	s.receive("c", lazyMsg(2, 3), at)
	wantSent(t, s, "second message after 4 hops: held, announced to lazy b", "b ihave")
	s.receive("a", &wireMsg{K: kindPrune}, at.Add(10*time.Millisecond))
	s.tick(at.Add(100 * time.Millisecond))
	wantSent(t, s, "released: a, lazy since, is told", "a ihave")
	s.tick(at.Add(time.Second))
	wantSent(t, s, "b is not told twice")
}
