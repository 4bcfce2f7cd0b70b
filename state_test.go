package gossip

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gossip-dev/gossip/internal/pow"
)

var t0 = time.Unix(1_700_000_000, 0)

func testConfig(t *testing.T, opts ...Option) *config {
	t.Helper()
	cfg, err := newConfig(append([]Option{WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), WithRandSeed(1), WithProofOfWork(0)}, opts...))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.ensureIdentity(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// testKey is a fixed identity for origins in state tests.
var testKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

// link is a connect or connect-ack from a neighbour holding testKey.
func link(k kind, from, to string) *wireMsg {
	return linkAt(k, from, to, t0, testNonce)
}

// testNonce is the link nonce of the test's connects.
var testNonce = bytes.Repeat([]byte{9}, linkNonceSize)

// linkAt is a connect or connect-ack signed by testKey, stamped at and
// carrying nonce.
func linkAt(k kind, from, to string, at time.Time, nonce []byte) *wireMsg {
	return &wireMsg{K: k, Stamp: at.UnixNano(), Nonce: nonce, Key: testKey.Public().(ed25519.PublicKey),
		Sig: ed25519.Sign(testKey, linkBytes(k, from, to, at.UnixNano(), nonce))}
}

// signed stamps m with its origin's signature by key.
func signed(m *wireMsg, key ed25519.PrivateKey) *wireMsg {
	m.Key = key.Public().(ed25519.PublicKey)
	m.Sig = ed25519.Sign(key, signedBytes(m))
	return m
}

// sent drains the machine's sends as "to kind" strings.
func sent(fx *effects) []string {
	var out []string
	for _, o := range fx.sends {
		out = append(out, o.to+" "+o.msg.K.String())
	}
	fx.sends = fx.sends[:0]
	return out
}

func drainEvents(fx *effects) []Event {
	evs := fx.events
	fx.events = nil
	return evs
}

func kindsOf(evs []Event) []EventKind {
	var out []EventKind
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}

// joinedPeer returns a peer state registered with seeds s1 and s2 (of s1,
// s2, s3) and with neighbours nbrs connected outbound.
func joinedPeer(t *testing.T, nbrs []string, opts ...Option) *peerState {
	t.Helper()
	s := newPeerState(testConfig(t, opts...), "p:1", []string{"s1", "s2", "s3"}, new(peerCounters), newReputation(testConfig(t)))
	s.start(t0)
	var list []wirePeer
	for _, n := range nbrs {
		list = append(list, wirePeer{Addr: n})
	}
	for _, sd := range s.seeds[:2] {
		s.receive(sd, &wireMsg{K: kindRegisterAck, Peers: list}, t0)
	}
	if !s.joined {
		t.Fatal("not joined")
	}
	for _, n := range nbrs {
		if _, ok := s.dialing[n]; !ok {
			s.receive(n, link(kindConnect, n, "p:1"), t0)
		} else {
			s.receive(n, linkAt(kindConnectAck, n, "p:1", t0, s.dialing[n].nonce), t0)
		}
	}
	if got := s.neighborsSorted(); !slices.Equal(got, nbrs) {
		t.Fatalf("neighbours %v, want %v", got, nbrs)
	}
	sent(&s.fx)
	drainEvents(&s.fx)
	return s
}

func TestPeerRegistersWithMajority(t *testing.T) {
	for n := 1; n <= 5; n++ {
		seeds := []string{"s1", "s2", "s3", "s4", "s5"}[:n]
		s := newPeerState(testConfig(t), "p:1", seeds, new(peerCounters), newReputation(testConfig(t)))
		s.start(t0)
		got := sent(&s.fx)
		if len(got) != n/2+1 {
			t.Errorf("%d seeds: first round asks %v, want %d seeds", n, got, n/2+1)
		}
	}
}

func TestPeerLivenessCountsConsecutiveMisses(t *testing.T) {
	const L = DefaultLivenessInterval
	s := joinedPeer(t, []string{"a", "b"})
	now := t0
	round := func() []string {
		now = now.Add(L)
		s.tick(now)
		return sent(&s.fx)
	}
	// Round 1: requests go out.
	if got := round(); !slices.Contains(got, "a ping") || !slices.Contains(got, "b ping") {
		t.Fatalf("round 1 sent %v", got)
	}
	// b answers rounds with the right echo; a answers once with a wrong
	// stamp, once addressed to someone else, then never.
	answer := func(from string, stamp int64, addr string) {
		s.receive(from, &wireMsg{K: kindPong, Stamp: stamp, Addr: addr}, now)
	}
	answer("b", s.nbrs["b"].pingStamp, "p:1")
	answer("a", s.nbrs["a"].pingStamp+1, "p:1")
	round() // a: 1 miss
	answer("b", s.nbrs["b"].pingStamp, "p:1")
	answer("a", s.nbrs["a"].pingStamp, "someone-else")
	round() // a: 2 misses
	answer("b", s.nbrs["b"].pingStamp, "p:1")
	if s.nbrs["a"].misses != 2 || s.nbrs["b"].misses != 0 {
		t.Fatalf("misses a=%d b=%d, want 2 and 0", s.nbrs["a"].misses, s.nbrs["b"].misses)
	}
	drainEvents(&s.fx)
	got := round() // a: 3 misses → dead
	reports := slices.DeleteFunc(slices.Clone(got), func(x string) bool { return x != s.seeds[0]+" dead-report" && x != s.seeds[1]+" dead-report" })
	if len(reports) != 2 {
		t.Fatalf("after 3 misses sent %v, want a dead report to each registered seed", got)
	}
	evs := drainEvents(&s.fx)
	if !slices.Contains(kindsOf(evs), EventDeadReportSent) {
		t.Fatalf("events %v, want EventDeadReportSent", kindsOf(evs))
	}
	if _, ok := s.nbrs["a"]; ok {
		t.Fatal("dead neighbour kept")
	}
}

func TestPeerLivenessReplyResetsCount(t *testing.T) {
	s := joinedPeer(t, []string{"a", "b"})
	now := t0
	for i := range 10 {
		now = now.Add(DefaultLivenessInterval)
		s.tick(now)
		sent(&s.fx)
		// a answers every other round: never three in a row missed.
		if i%2 == 0 {
			s.receive("a", &wireMsg{K: kindPong, Stamp: s.nbrs["a"].pingStamp, Addr: "p:1"}, now)
		}
		s.receive("b", &wireMsg{K: kindPong, Stamp: s.nbrs["b"].pingStamp, Addr: "p:1"}, now)
	}
	if _, ok := s.nbrs["a"]; !ok {
		t.Fatal("a was dropped though it never missed three in a row")
	}
}

func TestPeerGossipForwarding(t *testing.T) {
	s := joinedPeer(t, []string{"a", "b", "c", "o"})
	m := signed(&wireMsg{K: kindGossip, Origin: "o", Seq: 1, Stamp: t0.UnixNano(), Payload: []byte("hi")}, testKey)
	s.receive("a", m, t0)
	got := sent(&s.fx)
	// Not back to a (sender), not to o (origin).
	if want := []string{"b gossip", "c gossip"}; !slices.Equal(got, want) {
		t.Fatalf("forwarded to %v, want %v", got, want)
	}
	evs := drainEvents(&s.fx)
	if len(evs) != 1 || evs[0].Kind != EventMessage || evs[0].Origin != "o" || evs[0].From != "a" || evs[0].Hops != 1 {
		t.Fatalf("events %+v", evs)
	}
	// Second copy from b: dropped.
	s.receive("b", m, t0)
	if got := sent(&s.fx); len(got) != 0 {
		t.Fatalf("duplicate forwarded to %v", got)
	}
	if s.ctr.duplicates.Load() != 1 {
		t.Fatalf("duplicates = %d", s.ctr.duplicates.Load())
	}
	// Tampered payload is a different message (a new hash).
	s.receive("b", signed(&wireMsg{K: kindGossip, Origin: "o", Seq: 1, Stamp: t0.UnixNano(), Payload: []byte("HI")}, testKey), t0)
	if got := sent(&s.fx); !slices.Equal(got, []string{"a gossip", "c gossip"}) {
		t.Fatalf("a second message of the origin forwarded to %v", got)
	}
	// Gossip from a non-neighbour is dropped.
	s.receive("stranger", signed(&wireMsg{K: kindGossip, Origin: "x", Seq: 1, Stamp: t0.UnixNano(), Payload: []byte("x")}, testKey), t0)
	if got := sent(&s.fx); !slices.Equal(got, []string{"stranger disconnect"}) {
		t.Fatalf("gossip from a stranger: sent %v, want only a disconnect to it", got)
	}
	if s.ctr.dropped.Load() != 1 {
		t.Fatalf("dropped = %d", s.ctr.dropped.Load())
	}
}

func TestPeerOriginatesSpecMessages(t *testing.T) {
	s := joinedPeer(t, []string{"a"}, WithMessages(3))
	now := t0
	var texts []string
	for range 6 {
		now = now.Add(DefaultGossipInterval)
		s.tick(now)
		for _, o := range s.fx.sends {
			if o.msg.K == kindGossip {
				texts = append(texts, string(o.msg.Payload))
			}
		}
		sent(&s.fx)
	}
	want := []string{
		FormatStamp(t0.Add(5*time.Second)) + ":p:1:1",
		FormatStamp(t0.Add(10*time.Second)) + ":p:1:2",
		FormatStamp(t0.Add(15*time.Second)) + ":p:1:3",
	}
	if diff := cmp.Diff(want, texts); diff != "" {
		t.Fatalf("messages (-want +got):\n%s", diff)
	}
}

func TestPeerRefusesBeyondMaxDegree(t *testing.T) {
	s := joinedPeer(t, []string{"a", "b"}, WithMaxDegree(2))
	s.receive("c", link(kindConnect, "c", "p:1"), t0)
	if got := sent(&s.fx); !slices.Equal(got, []string{"c connect-reject"}) {
		t.Fatalf("sent %v, want a reject", got)
	}
}

func TestPeerLeaveDropsNeighbour(t *testing.T) {
	s := joinedPeer(t, []string{"a", "b"})
	s.receive("a", &wireMsg{K: kindLeave}, t0)
	if _, ok := s.nbrs["a"]; ok {
		t.Fatal("neighbour kept after leave")
	}
	if _, ok := s.known["a"]; ok {
		t.Fatal("left peer still a candidate")
	}
}

func newTestSeed(t *testing.T, opts ...Option) *seedState {
	s := newSeedState(testConfig(t, opts...), "s1", []string{"s1", "s2", "s3"}, new(seedCounters), newReputation(testConfig(t)))
	s.start(t0)
	for _, p := range []string{"a", "b", "c"} {
		s.receive(p, &wireMsg{K: kindRegister}, t0)
	}
	sent(&s.fx)
	drainEvents(&s.fx)
	return s
}

func TestSeedRegisterAndList(t *testing.T) {
	s := newTestSeed(t)
	s.receive("d", &wireMsg{K: kindRegister, Degree: 3}, t0)
	if len(s.fx.sends) != 1 || s.fx.sends[0].msg.K != kindRegisterAck {
		t.Fatalf("sent %v", sent(&s.fx))
	}
	want := []wirePeer{{Addr: "a"}, {Addr: "b"}, {Addr: "c"}}
	got := slices.SortedFunc(slices.Values(s.fx.sends[0].msg.Peers), func(a, b wirePeer) int { return strings.Compare(a.Addr, b.Addr) })
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("peer list (-want +got):\n%s", diff)
	}
	sent(&s.fx)
	// Peers' tree levels (lazy push) are listed as they last reported
	// them, at registration or with their degree.
	s.receive("b", &wireMsg{K: kindRegister, Hops: 4}, t0)
	s.receive("c", &wireMsg{K: kindDegree, Degree: 2, Hops: 300}, t0)
	sent(&s.fx)
	s.receive("d", &wireMsg{K: kindPeerListReq}, t0)
	want = []wirePeer{{Addr: "a"}, {Addr: "b", Level: 4}, {Addr: "c", Degree: 2, Level: maxLevel}}
	got = slices.SortedFunc(slices.Values(s.fx.sends[0].msg.Peers), func(a, b wirePeer) int { return strings.Compare(a.Addr, b.Addr) })
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("peer list with levels (-want +got):\n%s", diff)
	}
	sent(&s.fx)
	s.receive("zz", &wireMsg{K: kindPeerListReq}, t0)
	if got := sent(&s.fx); !slices.Equal(got, []string{"zz register-reject"}) {
		t.Fatalf("unregistered asker got %v", got)
	}
}

func TestSeedProbeRefutesLivePeer(t *testing.T) {
	s := newTestSeed(t)
	s.receive("a", &wireMsg{K: kindDeadReport, Addr: "b", Stamp: 1}, t0)
	s.receive("c", &wireMsg{K: kindDeadReport, Addr: "b", Stamp: 2}, t0)
	if got := sent(&s.fx); !slices.Equal(got, []string{"b ping"}) {
		t.Fatalf("sent %v, want one probe", got)
	}
	s.receive("b", &wireMsg{K: kindPong, Stamp: s.probes["b"].first, Addr: "s1"}, t0.Add(time.Second))
	evs := drainEvents(&s.fx)
	if diff := cmp.Diff([]EventKind{EventDeadReportReceived, EventDeadReportReceived, EventDeadReportRefuted}, kindsOf(evs)); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	if got := evs[2].Peers; !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("reporters %v", got)
	}
	s.tick(t0.Add(time.Hour))
	if !slices.Contains(*s.view.Load(), "b") {
		t.Fatal("live peer removed")
	}
}

func TestSeedProbeRemovesDeadPeerByMajority(t *testing.T) {
	s := newTestSeed(t, WithProbe(3, time.Second))
	s.receive("a", &wireMsg{K: kindDeadReport, Addr: "b", Stamp: 1}, t0)
	now := t0
	all := sent(&s.fx)
	for range 5 {
		now = now.Add(time.Second)
		s.tick(now)
		all = append(all, sent(&s.fx)...)
	}
	want := []string{"b ping", "b ping", "b ping", "s2 seed-dead", "s3 seed-dead"}
	if !slices.Equal(all, want) {
		t.Errorf("sent %v, want %v: three probes, then a vote to the other seeds", all, want)
	}
	evs := drainEvents(&s.fx)
	if diff := cmp.Diff([]EventKind{EventDeadReportReceived, EventDeadReportConfirmed}, kindsOf(evs)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	} else if ev := evs[1]; ev.Addr != "b" || !slices.Equal(ev.Peers, []string{"a"}) {
		t.Errorf("confirmation %+v, want b reported by [a]", ev)
	}
	// One seed of three is no majority.
	if !slices.Contains(*s.view.Load(), "b") {
		t.Fatal("removed on this seed's probes alone")
	}
	// A second seed's failed probes make a majority.
	s.receive("s2", &wireMsg{K: kindSeedDead, Addr: "b"}, now)
	if slices.Contains(*s.view.Load(), "b") {
		t.Fatal("dead peer kept after a majority of seeds failed to reach it")
	}
}

func TestSeedVoteStartsOwnProbeAndExpires(t *testing.T) {
	s := newTestSeed(t, WithProbe(3, time.Second))
	// Another seed failed to reach c: this seed probes for itself.
	s.receive("s2", &wireMsg{K: kindSeedDead, Addr: "c"}, t0)
	if got := sent(&s.fx); !slices.Equal(got, []string{"c ping"}) {
		t.Fatalf("sent %v, want a probe of c", got)
	}
	// c answers: no vote from this seed, c stays.
	s.receive("c", &wireMsg{K: kindPong, Stamp: s.probes["c"].first, Addr: "s1"}, t0.Add(time.Second))
	if !slices.Contains(*s.view.Load(), "c") || s.probes["c"] != nil {
		t.Fatal("c removed or still probed after answering")
	}
	// The lone vote expires; a later single vote is again no majority.
	now := t0.Add(time.Minute)
	s.tick(now)
	s.receive("s3", &wireMsg{K: kindSeedDead, Addr: "c"}, now)
	if !slices.Contains(*s.view.Load(), "c") {
		t.Fatal("removed on one vote after the first expired")
	}
	// Votes from a non-seed count for nothing.
	s.receive("mallory", &wireMsg{K: kindSeedDead, Addr: "a"}, now)
	if len(s.votes["a"]) != 0 {
		t.Fatal("non-seed vote counted")
	}
}

// TestSeedVotesAboutEarlierIncarnation: a peer crashes and restarts at the
// same address with a new key while the seeds' probes of its old
// incarnation run. Its registration cancels this seed's probe and vote,
// and other seeds' votes naming the old key count for nothing; votes
// about the new incarnation still remove it.
func TestSeedVotesAboutEarlierIncarnation(t *testing.T) {
	s := newTestSeed(t, WithProbe(3, time.Second))
	k1, k2 := bytes.Repeat([]byte{1}, ed25519.PublicKeySize), bytes.Repeat([]byte{2}, ed25519.PublicKeySize)
	s.receive("d", &wireMsg{K: kindRegister, Key: k1}, t0)
	s.receive("a", &wireMsg{K: kindDeadReport, Addr: "d", Stamp: 1}, t0)
	now := t0
	for range 3 {
		now = now.Add(time.Second)
		s.tick(now)
	}
	var votes []*wireMsg
	for _, o := range s.fx.sends {
		if o.msg.K == kindSeedDead {
			votes = append(votes, o.msg)
		}
	}
	if len(votes) != 2 || !bytes.Equal(votes[0].Key, k1) {
		t.Fatalf("votes %+v, want two naming the old key", votes)
	}
	sent(&s.fx)
	// d restarts with a new key and registers again.
	s.receive("d", &wireMsg{K: kindRegister, Key: k2}, now)
	if len(s.votes["d"]) != 0 || s.probes["d"] != nil {
		t.Fatal("this seed's vote or probe about the old incarnation kept")
	}
	s.receive("s2", &wireMsg{K: kindSeedDead, Addr: "d", Key: k1}, now)
	s.receive("s3", &wireMsg{K: kindSeedDead, Addr: "d", Key: k1}, now)
	if !slices.Contains(*s.view.Load(), "d") {
		t.Fatal("restarted peer removed on votes about its earlier incarnation")
	}
	s.receive("s2", &wireMsg{K: kindSeedDead, Addr: "d", Key: k2}, now)
	s.receive("s3", &wireMsg{K: kindSeedDead, Addr: "d", Key: k2}, now)
	if slices.Contains(*s.view.Load(), "d") {
		t.Fatal("peer kept after a majority of seeds failed to reach its current incarnation")
	}
}

func TestSeedIgnoresReportAboutUnknownPeer(t *testing.T) {
	s := newTestSeed(t)
	s.receive("a", &wireMsg{K: kindDeadReport, Addr: "nobody", Stamp: 1}, t0)
	if got := sent(&s.fx); len(got) != 0 {
		t.Fatalf("probed an unregistered address: %v", got)
	}
}

func TestSeenSetBounds(t *testing.T) {
	s := newSeenSet(3, time.Minute)
	id := func(i int) msgID { return gossipID("o", uint64(i), 0, nil) }
	for i := range 5 {
		if !s.add(id(i), t0) {
			t.Fatalf("id %d not new", i)
		}
	}
	if s.len() != 3 || s.contains(id(0)) || !s.contains(id(4)) {
		t.Fatalf("size bound: len %d", s.len())
	}
	if s.add(id(4), t0) {
		t.Fatal("duplicate accepted")
	}
	s.expire(t0.Add(time.Minute))
	if s.len() != 0 {
		t.Fatalf("ttl: len %d after expiry", s.len())
	}
	// Many entries exercise compaction.
	big := newSeenSet(10, time.Second)
	for i := range 5000 {
		big.add(id(i), t0.Add(time.Duration(i)*time.Millisecond))
	}
	if big.len() != 10 || len(big.order)-big.head != 10 {
		t.Fatalf("compaction: len %d, queue %d", big.len(), len(big.order)-big.head)
	}
}

func TestOptionValidation(t *testing.T) {
	bad := []Option{
		WithGossipInterval(0), WithLivenessInterval(-1), WithMaxMisses(0), WithMinDegree(0),
		WithMaxDegree(0), WithDegreeExponent(0.5), WithRegisterTimeout(0), WithRetryBackoff(0, 1),
		WithJoinTimeout(-1), WithConnectTimeout(0), WithSeenSet(0, time.Second), WithMaxPayload(0),
		WithProbe(0, time.Second), WithPeerListLimit(0), WithMaxPeers(0), WithMessages(-1),
		WithLogger(nil), WithCodec(nil), WithMessageFunc(nil), WithMaxHops(0),
		WithRefreshInterval(0), WithMaintainInterval(0),
		// Upper bounds: a huge degree made drawTarget loop for ever, a
		// huge rate overflowed its burst.
		WithMaxDegree(math.MaxInt), WithMinDegree(MaxDegreeLimit + 1), WithRateLimit(math.MaxInt, 1),
		WithRateLimit(1, math.MaxInt), WithOriginRate(math.MaxInt), WithSeenSet(math.MaxInt, time.Second),
		WithMessages(math.MaxInt), WithProbe(math.MaxInt, time.Second), WithMaxPayload(math.MaxInt),
	}
	for i, o := range bad {
		if _, err := newConfig([]Option{o}); err == nil {
			t.Errorf("option %d accepted", i)
		}
	}
	if _, err := newConfig([]Option{WithMinDegree(5), WithMaxDegree(4)}); err == nil {
		t.Error("min degree above max accepted")
	}
	if _, err := newConfig([]Option{nil, WithMessages(0)}); err != nil {
		t.Errorf("nil option: %v", err)
	}
}

// TestForgeriesDropped: forged origin, tampered payload, replayed old
// message, unsigned and future-stamped messages are dropped, neither
// delivered nor forwarded, and cost the sender reputation. (A spoofed
// transport handshake is covered by the transport's tests.)
func TestForgeriesDropped(t *testing.T) {
	mallory := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	good := func() *wireMsg {
		return signed(&wireMsg{K: kindGossip, Origin: "o", Seq: 1, Stamp: t0.UnixNano(), Payload: []byte("pay")}, testKey)
	}
	tests := []struct {
		name    string
		from    string
		msg     func() *wireMsg
		penalty float64
	}{
		// A relayer may not know the origin's key, or know a newer one:
		// dropped, and the seeds asked again, but no penalty.
		{"forged origin, relayed", "a", func() *wireMsg {
			return signed(&wireMsg{K: kindGossip, Origin: "o", Seq: 1, Stamp: t0.UnixNano(), Payload: []byte("pay")}, mallory)
		}, 0},
		{"forged origin, claimed by the sender", "o", func() *wireMsg {
			return signed(&wireMsg{K: kindGossip, Origin: "o", Seq: 2, Stamp: t0.UnixNano(), Payload: []byte("pay")}, mallory)
		}, penaltyForged},
		{"tampered payload", "a", func() *wireMsg { m := good(); m.Payload = []byte("PAY"); return m }, penaltyBadSig},
		{"tampered seq", "a", func() *wireMsg { m := good(); m.Seq = 9; return m }, penaltyBadSig},
		{"replayed old message", "a", func() *wireMsg {
			return signed(&wireMsg{K: kindGossip, Origin: "o", Seq: 1, Stamp: t0.Add(-9 * time.Minute).UnixNano(), Payload: []byte("pay")}, testKey)
		}, penaltyStale},
		{"stamped in the future", "a", func() *wireMsg {
			return signed(&wireMsg{K: kindGossip, Origin: "o", Seq: 1, Stamp: t0.Add(2 * time.Minute).UnixNano(), Payload: []byte("pay")}, testKey)
		}, penaltyStale},
		{"unsigned", "a", func() *wireMsg { m := good(); m.Sig = nil; return m }, penaltyMalformed},
		{"truncated key", "a", func() *wireMsg { m := good(); m.Key = m.Key[:16]; return m }, penaltyMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := joinedPeer(t, []string{"a", "b", "o"})
			// The seeds list o's key.
			s.receive(s.seeds[0], &wireMsg{K: kindPeerList, Peers: []wirePeer{{Addr: "o", Key: testKey.Public().(ed25519.PublicKey)}}}, t0)
			sent(&s.fx)
			drainEvents(&s.fx)
			s.receive(tt.from, tt.msg(), t0)
			for _, x := range sent(&s.fx) {
				if !strings.HasSuffix(x, "peer-list-req") {
					t.Errorf("sent %q", x)
				}
			}
			if evs := drainEvents(&s.fx); len(evs) != 0 {
				t.Errorf("events %v", kindsOf(evs))
			}
			if got := s.rep.score(tt.from, t0); got != tt.penalty {
				t.Errorf("sender's score %v, want %v", got, tt.penalty)
			}
			// The genuine message still gets through afterwards.
			s.receive("b", good(), t0)
			if evs := drainEvents(&s.fx); len(evs) != 1 || evs[0].Kind != EventMessage {
				t.Errorf("genuine message not delivered after the forgery: %v", kindsOf(evs))
			}
		})
	}
}

// TestSeedCapsAddressGroups: Sybils registering from one /24 group are
// capped, and a peer list holds at most a tenth of its entries from it.
func TestSeedCapsAddressGroups(t *testing.T) {
	const honest, sybils, maxShare = 100, 50, 0.10
	s := newTestSeed(t)
	for i := range honest {
		s.receive(peerAddr(i), &wireMsg{K: kindRegister}, t0)
	}
	refused := 0
	for i := range sybils {
		s.receive(fmt.Sprintf("10.66.6.%d:9000", i+1), &wireMsg{K: kindRegister}, t0)
		for _, o := range s.fx.sends {
			if o.msg.K == kindRegisterReject && o.msg.Reason == "address group full" {
				refused++
			}
		}
		s.fx.sends = s.fx.sends[:0]
	}
	if want := sybils - DefaultGroupLimit; refused != want {
		t.Errorf("%d Sybil registrations refused, want %d (cap %d per group)", refused, want, DefaultGroupLimit)
	}
	for range 20 {
		list := s.peerList(peerAddr(0))
		n := 0
		for _, p := range list {
			if strings.HasPrefix(p.Addr, "10.66.6.") {
				n++
			}
		}
		if share := float64(n) / float64(len(list)); share > maxShare {
			t.Fatalf("peer list of %d has %d (%.1f%%) entries from the Sybil group", len(list), n, 100*share)
		}
	}
}

// TestSeedRequiresProofOfWork: registration without a valid, unexpired,
// unreplayed proof of work bound to the registrant's key and address is
// refused; renewals by the same key need none.
func TestSeedRequiresProofOfWork(t *testing.T) {
	const diff = 8
	key := testKey.Public().(ed25519.PublicKey)
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	challenge := func(s *seedState, from string) pow.Challenge {
		s.receive(from, &wireMsg{K: kindRegister, Key: key}, t0)
		msgs := s.fx.sends
		s.fx.sends = nil
		if len(msgs) != 1 || msgs[0].msg.K != kindChallenge {
			t.Fatalf("first registration answered with %v, want a challenge", msgs)
		}
		var ch pow.Challenge
		copy(ch.Nonce[:], msgs[0].msg.Nonce)
		ch.Difficulty, ch.Expires = msgs[0].msg.Diff, msgs[0].msg.Stamp
		return ch
	}
	solve := func(ch pow.Challenge, k []byte, addr string) pow.Solution {
		sol, err := pow.Solve(context.Background(), ch, k, []byte(addr))
		if err != nil {
			t.Fatal(err)
		}
		return sol
	}
	reg := func(sol pow.Solution, k []byte) *wireMsg {
		return &wireMsg{K: kindRegister, Key: k, Nonce: sol.Nonce[:], Counter: sol.Counter,
			Sig: ed25519.Sign(testKey, registrationBytes(sol.Nonce[:], "p:1", "s1"))}
	}
	tests := []struct {
		name string
		do   func(s *seedState) (from string, m *wireMsg, now time.Time)
		ok   bool
	}{
		{"valid", func(s *seedState) (string, *wireMsg, time.Time) {
			return "p:1", reg(solve(challenge(s, "p:1"), key, "p:1"), key), t0
		}, true},
		{"no key", func(s *seedState) (string, *wireMsg, time.Time) {
			return "p:1", &wireMsg{K: kindRegister}, t0
		}, false},
		{"not signed by the key", func(s *seedState) (string, *wireMsg, time.Time) {
			m := reg(solve(challenge(s, "p:1"), key, "p:1"), key)
			m.Sig = nil
			return "p:1", m, t0
		}, false},
		{"someone else's key (cannot sign for it)", func(s *seedState) (string, *wireMsg, time.Time) {
			return "p:1", reg(solve(challenge(s, "p:1"), other, "p:1"), other), t0
		}, false},
		{"wrong counter", func(s *seedState) (string, *wireMsg, time.Time) {
			sol := solve(challenge(s, "p:1"), key, "p:1")
			sol.Counter++
			return "p:1", reg(sol, key), t0
		}, false},
		{"solved for another key", func(s *seedState) (string, *wireMsg, time.Time) {
			return "p:1", reg(solve(challenge(s, "p:1"), other, "p:1"), key), t0
		}, false},
		{"solved for another address", func(s *seedState) (string, *wireMsg, time.Time) {
			return "p:1", reg(solve(challenge(s, "p:1"), key, "p:2"), key), t0
		}, false},
		{"unknown nonce", func(s *seedState) (string, *wireMsg, time.Time) {
			return "p:1", reg(solve(pow.Challenge{Difficulty: diff}, key, "p:1"), key), t0
		}, false},
		{"expired", func(s *seedState) (string, *wireMsg, time.Time) {
			return "p:1", reg(solve(challenge(s, "p:1"), key, "p:1"), key), t0.Add(time.Hour)
		}, false},
		{"replayed", func(s *seedState) (string, *wireMsg, time.Time) {
			sol := solve(challenge(s, "p:1"), key, "p:1")
			s.receive("p:1", reg(sol, key), t0)
			s.receive("p:1", &wireMsg{K: kindLeave}, t0)
			s.fx.sends = nil
			return "p:1", reg(sol, key), t0
		}, false},
		{"too easy", func(s *seedState) (string, *wireMsg, time.Time) {
			ch := challenge(s, "p:1")
			easy := ch
			easy.Difficulty = 1
			for {
				sol := solve(easy, key, "p:1")
				if pow.Verify(ch, key, []byte("p:1"), sol) != nil {
					return "p:1", reg(sol, key), t0
				}
				easy.Nonce[15]++ // unlikely to need: find a too-weak one
			}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSeedState(testConfig(t, WithProofOfWork(diff)), "s1", []string{"s1"}, new(seedCounters), newReputation(testConfig(t)))
			s.start(t0)
			from, m, now := tt.do(s)
			s.receive(from, m, now)
			registered := slices.Contains(*s.view.Load(), from)
			if registered != tt.ok {
				t.Fatalf("registered = %v, want %v (sent %v)", registered, tt.ok, sent(&s.fx))
			}
		})
	}
	// A renewal by the registered key needs no new work.
	s := newSeedState(testConfig(t, WithProofOfWork(diff)), "s1", []string{"s1"}, new(seedCounters), newReputation(testConfig(t)))
	s.start(t0)
	sol, _ := pow.Solve(context.Background(), challenge(s, "p:1"), key, []byte("p:1"))
	s.receive("p:1", reg(sol, key), t0)
	sent(&s.fx)
	s.receive("p:1", &wireMsg{K: kindRegister, Key: key}, t0.Add(time.Minute))
	if got := sent(&s.fx); !slices.Equal(got, []string{"p:1 register-ack"}) {
		t.Fatalf("renewal answered with %v, want an ack", got)
	}
}

// TestLinkNeedsKeyProof: a connect must be signed, for this pair of
// addresses, recently, by the key the seeds list for the sender. A key
// other than the seeds' is refused without penalty (it may be newer) and
// the seeds are asked again; once they list it, the link is accepted.
func TestLinkNeedsKeyProof(t *testing.T) {
	mallory := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, ed25519.SeedSize))
	tests := map[string]*wireMsg{
		"unsigned":         {K: kindConnect, Stamp: t0.UnixNano()},
		"for another peer": linkAt(kindConnect, "x", "p:2", t0, testNonce),
		"without a nonce":  linkAt(kindConnect, "x", "p:1", t0, nil),
		"replayed later":   link(kindConnect, "x", "p:1"),
	}
	for name, m := range tests {
		t.Run(name, func(t *testing.T) {
			s := joinedPeer(t, []string{"a", "b"})
			s.receive(s.seeds[0], &wireMsg{K: kindPeerList, Peers: []wirePeer{{Addr: "x", Key: testKey.Public().(ed25519.PublicKey)}}}, t0)
			sent(&s.fx)
			now := t0
			if name == "replayed later" {
				now = t0.Add(2 * time.Minute)
			}
			s.receive("x", m, now)
			if _, ok := s.nbrs["x"]; ok {
				t.Fatal("accepted an unproven link")
			}
			if s.rep.score("x", now) >= 0 {
				t.Fatal("sender not penalised")
			}
		})
	}
	s := joinedPeer(t, []string{"a", "b"})
	s.receive("x", link(kindConnect, "x", "p:1"), t0)
	if _, ok := s.nbrs["x"]; !ok {
		t.Fatal("a proven link was refused")
	}

	// x restarted with a new key the seeds listed after this peer's list.
	s = joinedPeer(t, []string{"a", "b"})
	s.receive(s.seeds[0], &wireMsg{K: kindPeerList, Peers: []wirePeer{{Addr: "x", Key: testKey.Public().(ed25519.PublicKey)}}}, t0)
	sent(&s.fx)
	now := t0.Add(time.Minute)
	renewed := &wireMsg{K: kindConnect, Stamp: now.UnixNano(), Nonce: testNonce, Key: mallory.Public().(ed25519.PublicKey),
		Sig: ed25519.Sign(mallory, linkBytes(kindConnect, "x", "p:1", now.UnixNano(), testNonce))}
	s.receive("x", renewed, now)
	got := sent(&s.fx)
	if _, ok := s.nbrs["x"]; ok || !slices.Contains(got, "x connect-reject") || !slices.Contains(got, s.seeds[0]+" peer-list-req") {
		t.Fatalf("new key: sent %v, want a reject and a list request", got)
	}
	if s.rep.score("x", now) != 0 {
		t.Fatal("a newer key was penalised")
	}
	s.receive(s.seeds[0], &wireMsg{K: kindPeerList, Peers: []wirePeer{{Addr: "x", Key: mallory.Public().(ed25519.PublicKey)}}}, now)
	s.receive("x", renewed, now)
	if _, ok := s.nbrs["x"]; !ok {
		t.Fatal("link refused after the seeds listed the new key")
	}

	// A connect seen once is not accepted again: after x's link ends, a
	// replay of the same signed connect (same stamp and nonce) is refused.
	s = joinedPeer(t, []string{"a", "b"})
	first := link(kindConnect, "x", "p:1")
	s.receive("x", first, t0)
	s.receive("x", &wireMsg{K: kindDisconnect}, t0)
	s.receive("x", first, t0.Add(time.Second))
	if _, ok := s.nbrs["x"]; ok {
		t.Fatal("a replayed connect was accepted")
	}
	// No penalty: a replay comes under its signer's address, whoever sent it.
	if s.rep.score("x", t0.Add(time.Second)) != 0 {
		t.Fatal("the replayed connect's signer was penalised")
	}
	// A second connect with the same stamp (a coarse or virtual clock) but
	// a new nonce is not a replay.
	s.receive("x", linkAt(kindConnect, "x", "p:1", t0, bytes.Repeat([]byte{3}, linkNonceSize)), t0.Add(time.Second))
	if _, ok := s.nbrs["x"]; !ok {
		t.Fatal("a new connect with the same stamp was refused")
	}
	s.receive("x", &wireMsg{K: kindDisconnect}, t0.Add(time.Second))
	s.receive("x", linkAt(kindConnect, "x", "p:1", t0.Add(2*time.Second), testNonce), t0.Add(2*time.Second))
	if _, ok := s.nbrs["x"]; !ok {
		t.Fatal("a fresh connect after a replay was refused")
	}

	// A connect-ack must sign the nonce of this peer's own connect.
	s = joinedPeer(t, nil)
	s.receive(s.seeds[0], &wireMsg{K: kindPeerList, Peers: []wirePeer{{Addr: "y"}}}, t0)
	d, ok := s.dialing["y"]
	if !ok {
		t.Fatal("did not dial y")
	}
	other := bytes.Repeat([]byte{1}, linkNonceSize)
	s.receive("y", linkAt(kindConnectAck, "y", "p:1", t0, other), t0)
	if _, ok := s.nbrs["y"]; ok {
		t.Fatal("an ack for another connect was accepted")
	}
	// No penalty: it may answer an earlier dial that timed out.
	if s.rep.score("y", t0) != 0 {
		t.Fatal("an ack of another connect was penalised")
	}
	s.receive("y", linkAt(kindConnectAck, "y", "p:1", t0, d.nonce), t0)
	if _, ok := s.nbrs["y"]; !ok {
		t.Fatal("the ack of this peer's own connect was refused")
	}
}

// TestSilenceCheckNeedsSeveralOrigins: a neighbour that relays nothing is
// dropped only when the window's new messages came from several origins.
// With a single origin, a neighbour downstream of this peer never sends it
// anything, honest or not.
func TestSilenceCheckNeedsSeveralOrigins(t *testing.T) {
	window := time.Minute
	for _, origins := range []int{1, silenceOrigins - 1, silenceOrigins} {
		t.Run(fmt.Sprintf("%d origins", origins), func(t *testing.T) {
			s := joinedPeer(t, []string{"a", "b", "c"}, WithSignatures(false), WithSilenceCheck(window, 5))
			for i := range 10 {
				s.receive("a", &wireMsg{K: kindGossip, Origin: fmt.Sprintf("o%d", i%origins), Seq: uint64(i + 1),
					Stamp: t0.UnixNano(), Payload: []byte("x")}, t0.Add(time.Second))
			}
			drainEvents(&s.fx)
			s.tick(t0.Add(window + time.Second))
			got := s.neighborsSorted()
			want := []string{"a", "b", "c"}
			if origins >= silenceOrigins {
				want = []string{"a"} // b and c relayed nothing
			}
			if !slices.Equal(got, want) {
				t.Fatalf("neighbours after the window %v, want %v", got, want)
			}
		})
	}
}

// TestPeerStopTellsEveryone: a stopping peer tells its registered seeds,
// a seed whose answer to a registration it still awaits (it may accept it),
// its neighbours and the peers it is still dialing (one may have accepted
// the link already). The third seed, never asked, is not told.
func TestPeerStopTellsEveryone(t *testing.T) {
	s := joinedPeer(t, []string{"a", "b"})
	s.receive(s.seeds[0], &wireMsg{K: kindPeerList, Peers: []wirePeer{{Addr: "c"}}}, t0)
	if _, ok := s.dialing["c"]; !ok {
		t.Fatal("did not dial c")
	}
	// The second seed forgot this peer (a restart): it registers again.
	s.receive(s.seeds[1], &wireMsg{K: kindRegisterReject, Reason: "not registered"}, t0)
	if st := s.links[s.seeds[1]].state; st != seedPending {
		t.Fatalf("seed %s is in state %d after forgetting the peer, want pending", s.seeds[1], st)
	}
	sent(&s.fx)
	s.stop(t0)
	got := sent(&s.fx)
	slices.Sort(got)
	want := []string{"a leave", "b leave", "c leave", s.seeds[0] + " leave", s.seeds[1] + " leave"}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("stop sent %v, want %v", got, want)
	}
}

// TestOutboundGroupCap: a peer dials at most outboundGroupCap(target)
// neighbours of one address group while other groups have candidates, and
// any number on a network of a single group.
func TestOutboundGroupCap(t *testing.T) {
	const target = 8 // min = max degree: the drawn target is 8
	groupCap := outboundGroupCap(target)
	dialedIn := func(s *peerState, prefix string) int {
		n := 0
		for a := range s.dialing {
			if strings.HasPrefix(a, prefix) {
				n++
			}
		}
		return n
	}
	list := func(addrs ...string) *wireMsg {
		m := &wireMsg{K: kindPeerList}
		for _, a := range addrs {
			m.Peers = append(m.Peers, wirePeer{Addr: a})
		}
		return m
	}
	var crowd []string
	for i := range 10 {
		crowd = append(crowd, fmt.Sprintf("10.9.9.%d:1", i+1))
	}

	s := joinedPeer(t, nil, WithMinDegree(target), WithMaxDegree(target))
	s.receive(s.seeds[0], list(append([]string{"10.1.1.1:1", "10.2.2.1:1"}, crowd...)...), t0)
	if n := dialedIn(s, "10.9.9."); n != groupCap {
		t.Errorf("dialed %d of one group, want the cap %d", n, groupCap)
	}
	if dialedIn(s, "10.1.1.") != 1 || dialedIn(s, "10.2.2.") != 1 {
		t.Errorf("dialing %v: want both peers of the other groups", slices.Sorted(maps.Keys(s.dialing)))
	}

	s = joinedPeer(t, nil, WithMinDegree(target), WithMaxDegree(target))
	s.receive(s.seeds[0], list(crowd...), t0)
	if n := dialedIn(s, "10.9.9."); n != target {
		t.Errorf("one-group network: dialed %d, want %d", n, target)
	}
}

// TestStarvedPeerExplores: a peer whose own messages bring no gossip
// frame back from any neighbour (all of them may be silent Sybils, so no
// new message ever arms the silence check) dials one more neighbour at
// the end of the window; a peer that sent nothing does not.
func TestStarvedPeerExplores(t *testing.T) {
	window := time.Minute
	for _, sent := range []bool{false, true} {
		s := joinedPeer(t, []string{"a", "b"}, WithSignatures(false), WithSilenceCheck(window, 5), WithMessages(0),
			WithMinDegree(2), WithMaxDegree(8), WithDegreeExponent(10))
		s.receive(s.seeds[0], &wireMsg{K: kindPeerList, Peers: []wirePeer{{Addr: "a"}, {Addr: "b"}, {Addr: "c"}}}, t0)
		if len(s.dialing) != 0 {
			t.Fatalf("dialing %v before the window ends", s.dialing)
		}
		if sent {
			if err := s.broadcast([]byte("hello"), t0.Add(time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		s.tick(t0.Add(window + time.Second))
		if _, dialed := s.dialing["c"]; dialed != sent {
			t.Errorf("sent a message: %v; dialing %v", sent, slices.Sorted(maps.Keys(s.dialing)))
		}
	}
}
