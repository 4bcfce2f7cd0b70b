package gossip

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// Parameters of the reputation tests, chosen apart from the defaults so
// that a test cannot pass by reading a default by mistake.
const (
	repHalfLife  = time.Minute
	repThreshold = -60
	repBanFor    = 3 * time.Minute
	repTolerance = 1e-9 // float error allowed in a decayed score
)

func repConfig(t *testing.T, opts ...Option) *config {
	t.Helper()
	return testConfig(t, append([]Option{WithReputation(repHalfLife, repThreshold, repBanFor)}, opts...)...)
}

// repKey is the identity of the remote nodes in these tests.
var repKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x52}, ed25519.SeedSize))

// repConnect is a connect from from to to, signed by repKey, stamped now
// with a nonce unique to now, as a real dialer's.
func repConnect(from, to string, now time.Time) *wireMsg {
	nonce := binary.BigEndian.AppendUint64(make([]byte, 8), uint64(now.UnixNano()))
	return &wireMsg{K: kindConnect, Stamp: now.UnixNano(), Nonce: nonce, Key: repKey.Public().(ed25519.PublicKey),
		Sig: ed25519.Sign(repKey, linkBytes(kindConnect, from, to, now.UnixNano(), nonce))}
}

// repGossip is origin's seq-th message, signed by repKey and stamped now.
func repGossip(origin string, seq uint64, now time.Time) *wireMsg {
	m := &wireMsg{K: kindGossip, Origin: origin, Seq: seq, Stamp: now.UnixNano(), Payload: fmt.Appendf(nil, "m%d", seq)}
	m.Key = repKey.Public().(ed25519.PublicKey)
	m.Sig = ed25519.Sign(repKey, signedBytes(m))
	return m
}

// TestReputationDecay: a score, negative or positive, halves every
// half-life.
func TestReputationDecay(t *testing.T) {
	r := newReputation(repConfig(t))
	r.add("bad", -40, t0)
	r.add("good", 40, t0)
	for _, tt := range []struct {
		after time.Duration
		want  float64
	}{
		{0, 40},
		{repHalfLife / 2, 40 / math.Sqrt2},
		{repHalfLife, 20},
		{2 * repHalfLife, 10},
		{5 * repHalfLife, 40.0 / 32},
	} {
		now := t0.Add(tt.after)
		if got := r.score("bad", now); math.Abs(got+tt.want) > repTolerance {
			t.Errorf("negative score after %v = %v, want %v", tt.after, got, -tt.want)
		}
		if got := r.score("good", now); math.Abs(got-tt.want) > repTolerance {
			t.Errorf("positive score after %v = %v, want %v", tt.after, got, tt.want)
		}
	}
	// A penalty adds to the decayed score, not the original one.
	r = newReputation(repConfig(t))
	r.add("x", -40, t0)
	r.add("x", -10, t0.Add(repHalfLife))
	if got := r.score("x", t0.Add(repHalfLife)); math.Abs(got+30) > repTolerance {
		t.Errorf("score = %v, want -20 decayed from -40 plus -10 = -30", got)
	}
}

// TestReputationBan: reaching the threshold bans the node once, its frames
// are refused for the ban duration and admitted again afterwards, on
// probation with a fresh score.
func TestReputationBan(t *testing.T) {
	r := newReputation(repConfig(t))
	const step = penaltyMalformed
	steps := int(math.Ceil(repThreshold / step))
	for i := range steps - 1 {
		if r.add("x", step, t0) {
			t.Fatalf("banned after %d penalties of %v, threshold %v", i+1, step, repThreshold)
		}
	}
	if !r.admit("x", 10, t0) || len(r.drainBanned()) != 0 {
		t.Fatal("refused or banned above the threshold")
	}
	if !r.add("x", step, t0) {
		t.Fatalf("not banned at score %v, threshold %v", r.score("x", t0), repThreshold)
	}
	if got := r.drainBanned(); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("newly banned = %v, want [x]", got)
	}
	for _, at := range []time.Duration{0, time.Second, repBanFor - time.Nanosecond} {
		if !r.isBanned("x", t0.Add(at)) || r.admit("x", 10, t0.Add(at)) {
			t.Errorf("frame admitted %v into the %v ban", at, repBanFor)
		}
	}
	if r.isBanned("y", t0) || !r.admit("y", 10, t0) {
		t.Error("another node suffers x's ban")
	}
	end := t0.Add(repBanFor)
	if r.isBanned("x", end) || !r.admit("x", 10, end) {
		t.Errorf("still banned at the end of the %v ban", repBanFor)
	}
	if got := r.score("x", end); got != 0 {
		t.Errorf("score after the ban = %v, want 0 (probation)", got)
	}

	// Penalties during a ban neither extend it nor ban again. (The node
	// refuses a banned source's frames before they can cost anything, so
	// this matters only to direct callers.)
	r = newReputation(repConfig(t))
	r.add("x", repThreshold, t0)
	r.drainBanned()
	r.add("x", 10*repThreshold, t0.Add(time.Second))
	if got := r.drainBanned(); len(got) != 0 {
		t.Errorf("banned again during the ban: %v", got)
	}
	if r.isBanned("x", end) {
		t.Error("a penalty during the ban extended it")
	}
}

// TestNodeRefusesBannedFrames: a running peer bans a source that keeps
// sending undecodable frames once the penalties reach the threshold, then
// refuses its frames before decoding them until the ban ends.
func TestNodeRefusesBannedFrames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1, WithReputation(repHalfLife, repThreshold, repBanFor), WithMessages(0))
		c.startSeeds()
		p := c.startPeer(peerAddr(0))
		time.Sleep(5 * time.Second)
		synctest.Wait()
		bad := c.transport("10.66.0.1:6666")
		junk := []byte{0xff, 0x00, 0x13}
		sendJunk := func(n int) {
			for range n {
				_ = bad.Send(t.Context(), p.Addr(), junk)
			}
			time.Sleep(time.Millisecond)
			synctest.Wait()
		}
		toBan := int(math.Ceil(repThreshold / penaltyMalformed))
		before := p.Stats()
		sendJunk(toBan)
		mid := p.Stats()
		if n := mid.BadFrames - before.BadFrames; n != uint64(toBan) {
			t.Fatalf("%d of %d junk frames counted bad", n, toBan)
		}
		bans := c.rec.filter(func(ev Event) bool { return ev.Kind == EventBanned && ev.Addr == bad.Addr() })
		if len(bans) != 1 || bans[0].Node != p.Addr() {
			t.Fatalf("bans of the junk sender: %v, want one by the peer", bans)
		}
		const more = 50
		sendJunk(more)
		after := p.Stats()
		if after.BadFrames != mid.BadFrames || after.Refused-mid.Refused != more {
			t.Errorf("during the ban: %d more bad frames, %d refused; want 0 and %d", after.BadFrames-mid.BadFrames, after.Refused-mid.Refused, more)
		}
		time.Sleep(repBanFor)
		sendJunk(1)
		if got := p.Stats().BadFrames - after.BadFrames; got != 1 {
			t.Errorf("after the %v ban, %d of 1 frame decoded, want it admitted", repBanFor, got)
		}
	})
}

// TestBanDropsNeighbour: a peer disconnects a neighbour it bans, tells it,
// and forgets it as a candidate.
func TestBanDropsNeighbour(t *testing.T) {
	s := joinedPeer(t, []string{"a", "b"})
	for range int(math.Ceil(DefaultBanThreshold / penaltyBadSig)) {
		s.rep.add("a", penaltyBadSig, t0)
	}
	banned := s.rep.drainBanned()
	if !slices.Equal(banned, []string{"a"}) {
		t.Fatalf("banned %v, want [a]", banned)
	}
	s.ban("a", t0) // as the node's loop does with each newly banned address
	if slices.Contains(s.neighborsSorted(), "a") {
		t.Error("banned neighbour still linked")
	}
	if got := sent(&s.fx); !slices.Contains(got, "a disconnect") {
		t.Errorf("sent %v, want a disconnect to a", got)
	}
	if _, ok := s.known["a"]; ok {
		t.Error("banned neighbour still a candidate")
	}
	if kinds := kindsOf(drainEvents(&s.fx)); !slices.Contains(kinds, EventBanned) || !slices.Contains(kinds, EventNeighborDown) {
		t.Errorf("events %v, want banned and neighbour-down", kinds)
	}
}

// TestReputationSurvivesReconnect: a neighbour's score is kept by address,
// not by link: after it disconnects and reconnects, its penalty is still
// there, only decayed.
func TestReputationSurvivesReconnect(t *testing.T) {
	s := joinedPeer(t, []string{"a", "b"})
	// Unsigned gossip from a neighbour is malformed.
	s.receive("a", &wireMsg{K: kindGossip, Origin: "o", Seq: 1, Stamp: t0.UnixNano(), Payload: []byte("x")}, t0)
	if got := s.rep.score("a", t0); got != penaltyMalformed {
		t.Fatalf("score after unsigned gossip = %v, want %v", got, penaltyMalformed)
	}
	s.receive("a", &wireMsg{K: kindDisconnect}, t0.Add(time.Second))
	if slices.Contains(s.neighborsSorted(), "a") {
		t.Fatal("a still a neighbour after disconnecting")
	}
	back := t0.Add(time.Minute)
	s.receive("a", repConnect("a", s.self, back), back)
	if !slices.Contains(s.neighborsSorted(), "a") {
		t.Fatalf("reconnect refused: sent %v", sent(&s.fx))
	}
	want := penaltyMalformed * math.Exp2(-time.Minute.Seconds()/DefaultHalfLife.Seconds())
	if got := s.rep.score("a", back); math.Abs(got-want) > repTolerance {
		t.Errorf("score after the reconnect = %v, want %v (the penalty, decayed)", got, want)
	}
}

// TestReputationRewardsFirstDelivery: a neighbour that brings a message
// first gains rewardDelivery; a duplicate earns nothing; rewards saturate at
// maxScore.
func TestReputationRewardsFirstDelivery(t *testing.T) {
	s := joinedPeer(t, []string{"a", "b"})
	m := repGossip("o:1", 1, t0)
	s.receive("a", m, t0)
	s.receive("b", m, t0)
	if got := s.rep.score("a", t0); got != rewardDelivery {
		t.Errorf("first deliverer's score = %v, want %v", got, rewardDelivery)
	}
	if got := s.rep.score("b", t0); got != 0 {
		t.Errorf("duplicate's score = %v, want 0", got)
	}
	n := int(maxScore/rewardDelivery) + 20
	for i := range n {
		s.receive("a", repGossip("o:1", uint64(i+2), t0), t0)
	}
	if got := s.rep.score("a", t0); got != maxScore {
		t.Errorf("after %d more first deliveries the score is %v, want the cap %v", n, got, maxScore)
	}
}

// TestInboundGroupCap: a peer accepts at most inboundPerPeer inbound
// neighbours from one address group (WithAddressGroups) and refuses the
// extra ones, while another group still gets in. Loopback addresses group
// by their /24 like any others, so 127.0.1.x is one group and 127.0.2.x
// another.
func TestInboundGroupCap(t *testing.T) {
	const perPeer = 2
	s := joinedPeer(t, []string{"a", "b"}, WithAddressGroups(DefaultGroupPrefix, DefaultGroupLimit, perPeer))
	dial := func(from string) (accepted bool, reason string) {
		t.Helper()
		s.receive(from, repConnect(from, s.self, t0), t0)
		for _, o := range s.fx.sends {
			if o.to == from && o.msg.K == kindConnectReject {
				reason = o.msg.Reason
			}
		}
		sent(&s.fx)
		return slices.Contains(s.neighborsSorted(), from), reason
	}
	for i := range perPeer {
		if ok, why := dial(fmt.Sprintf("127.0.1.%d:7000", i+1)); !ok {
			t.Fatalf("inbound link %d of group 127.0.1.0/24 refused (%q), cap %d", i+1, why, perPeer)
		}
	}
	for _, extra := range []string{"127.0.1.200:7000", "127.0.1.3:7001"} {
		if ok, why := dial(extra); ok || why != "address group full" {
			t.Errorf("extra inbound link %s: accepted %v, reason %q; want refused, address group full", extra, ok, why)
		}
	}
	if ok, why := dial("127.0.2.1:7000"); !ok {
		t.Errorf("inbound link from group 127.0.2.0/24 refused (%q)", why)
	}
	// Outbound links are not capped per group: they are chosen by the
	// peer itself (and spread over groups when it dials).
}

// TestAddrGroupLoopback: loopback addresses group by their /24, as others
// do, so tests can simulate address groups with 127.0.x.y.
func TestAddrGroupLoopback(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		same bool
	}{
		{"127.0.1.1:7000", "127.0.1.254:9000", true},
		{"127.0.1.1:7000", "127.0.2.1:7000", false},
		{"127.0.2.1:7000", "127.0.2.9:7001", true},
		{"127.0.1.1:7000", "127.1.1.1:7000", false},
		{"10.0.0.1:7000", "10.0.0.2:7000", true},
		{"[::ffff:127.0.1.1]:7000", "127.0.1.2:7000", true},
		{"[2001:db8:1::1]:7000", "[2001:db8:1:ffff::2]:7000", true},
		{"[2001:db8:1::1]:7000", "[2001:db8:2::1]:7000", false},
	} {
		ga, gb := addrGroup(tt.a, DefaultGroupPrefix), addrGroup(tt.b, DefaultGroupPrefix)
		if (ga == gb) != tt.same {
			t.Errorf("addrGroup(%s) = %s, addrGroup(%s) = %s; same group = %v, want %v", tt.a, ga, tt.b, gb, ga == gb, tt.same)
		}
	}
	if g := addrGroup("127.0.1.77:7000", DefaultGroupPrefix); g != "127.0.1.0/24" {
		t.Errorf("group of 127.0.1.77 = %s, want 127.0.1.0/24", g)
	}
}

// TestReporterCredibility: a seed lowers a reporter's credibility for
// every report its probe refutes; at the threshold it ignores the
// reporter's reports, without probing, for the ban duration.
func TestReporterCredibility(t *testing.T) {
	s := newSeedState(repConfig(t), "s1", []string{"s1"}, new(seedCounters), newReputation(repConfig(t)))
	s.start(t0)
	s.receive("p:1", &wireMsg{K: kindRegister}, t0)
	sent(&s.fx)
	report := func(now time.Time) (probed bool) {
		s.receive("liar:1", &wireMsg{K: kindDeadReport, Addr: "p:1", Stamp: now.UnixNano()}, now)
		var ping *wireMsg
		for _, o := range s.fx.sends {
			if o.to == "p:1" && o.msg.K == kindPing {
				ping = o.msg
			}
		}
		sent(&s.fx)
		if ping != nil {
			s.receive("p:1", &wireMsg{K: kindPong, Stamp: ping.Stamp, Addr: "s1"}, now) // alive
			sent(&s.fx)
		}
		return ping != nil
	}
	// Reports at one instant, within the per-reporter burst: no decay.
	toDiscredit := int(math.Ceil(repThreshold / penaltyRefuted))
	now := t0.Add(time.Second)
	for i := range toDiscredit {
		if s.reporters.isBanned("liar:1", now) {
			t.Fatalf("discredited after %d refuted reports, want %d", i, toDiscredit)
		}
		if !report(now) {
			t.Fatalf("report %d not probed", i+1)
		}
	}
	if !s.reporters.isBanned("liar:1", now) {
		t.Fatalf("reporter credibility %v after %d refuted reports, threshold %v: not discredited", s.reporters.score("liar:1", now), toDiscredit, repThreshold)
	}
	if report(now.Add(time.Second)) {
		t.Error("a discredited reporter's report was probed")
	}
	if !slices.Contains(*s.view.Load(), "p:1") {
		t.Error("the live peer was removed")
	}
	if !report(now.Add(repBanFor)) {
		t.Errorf("reports still ignored after the %v ban", repBanFor)
	}
}
