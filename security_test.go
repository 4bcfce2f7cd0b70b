package gossip

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gossip-dev/gossip/codec"
	"github.com/gossip-dev/gossip/internal/pow"
	"github.com/gossip-dev/gossip/transport"
)

// Thresholds of the [security] issue's acceptance tests.
// Under the race detector the Sybil scenario runs with 50 honest peers, the
// eclipse attack lasts 40 s instead of 120 s and the flood 2 s instead of
// 10 s.
var (
	sybilHonest    = scaled(100, 50)
	eclipseSeconds = scaled(120, 40)
	floodDuration  = time.Duration(scaled(10, 2)) * time.Second
)

const (
	// TestSilentSybils.
	sybilFraction    = 0.30
	sybilMinDelivery = 0.999

	// TestEclipseResistance.
	eclipseAttackers     = 200
	eclipseHonest        = 30
	eclipseGroups        = 2  // address groups of the attackers
	eclipseKeyedPerGroup = 20 // attackers with real keys, per group; the rest send junk
	eclipseJunkEvery     = 20 * time.Millisecond
	eclipseKeyedRedial   = 200 * time.Millisecond

	// TestFloodIsLimitedAndBanned.
	floodPeers         = 15
	floodHonest        = 5  // of floodPeers publish
	floodHonestRate    = 10 // messages a second each
	floodBanWithin     = 2 * time.Second
	floodRateTolerance = 0.10 // accepted vs the per-origin bucket, both sides
	floodSampleEvery   = 100 * time.Millisecond
	floodHeapBound     = 80 << 20

	// TestForgedReportsFlood.
	forgedReports  = 1000
	forgedPeers    = 10
	forgedEvery    = 10 * time.Millisecond
	forgedTakenMax = 3 * 20 // by the three seeds together
)

func sybilAddr(i int) string { return fmt.Sprintf("10.%d.%d.7:9000", 100+i/250, i%250) }

// silence makes the nodes in set accept links and answer liveness checks
// but never send gossip, digests or repairs.
func silence(net *transport.Network, set map[string]bool) {
	cd := codec.Msgpack()
	net.SetFilter(func(from, to string, frame []byte) bool {
		if !set[from] {
			return true
		}
		var m wireMsg
		if cd.Unmarshal(frame, &m) != nil {
			return false
		}
		return m.K != kindGossip && m.K != kindDigest && m.K != kindWant
	})
}

// TestSilentSybils: 100 honest peers and 30 Sybils (one per address group,
// so group caps do not stop them) that accept links but forward nothing.
func TestSilentSybils(t *testing.T) {
	if testing.Short() {
		t.Skip("long scenario")
	}
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3)
		nSybil := int(sybilFraction * float64(sybilHonest))
		sybils := map[string]bool{}
		for i := range nSybil {
			sybils[sybilAddr(i)] = true
		}
		silence(c.net, sybils)
		c.startSeeds()
		var honest []string
		for i := range sybilHonest + nSybil {
			// Interleave: every fourth or so joiner is a Sybil.
			if i%4 == 3 && len(sybils) > 0 && i/4 < nSybil {
				c.startPeer(sybilAddr(i/4), WithRandSeed(uint64(1000+i)))
			} else {
				a := peerAddr(len(honest))
				c.startPeer(a, WithRandSeed(uint64(i)))
				honest = append(honest, a)
			}
			time.Sleep(joinGap)
		}
		time.Sleep(6 * time.Minute)
		synctest.Wait()

		want, got := 0, 0
		originated := map[string]int{}
		for _, ev := range c.rec.kind(EventOriginated) {
			if !sybils[ev.Node] {
				originated[ev.Node]++
			}
		}
		delivered := map[string]map[msgKey]bool{}
		for _, ev := range c.rec.kind(EventMessage) {
			if sybils[ev.Node] || sybils[ev.Origin] {
				continue
			}
			if delivered[ev.Node] == nil {
				delivered[ev.Node] = map[msgKey]bool{}
			}
			delivered[ev.Node][msgKey{ev.Origin, ev.Seq}] = true
		}
		for _, p := range honest {
			for o, n := range originated {
				if o != p {
					want += n
				}
			}
			got += len(delivered[p])
		}
		frac := float64(got) / float64(want)
		silent := len(c.rec.filter(func(ev Event) bool {
			return ev.Kind == EventNeighborDown && sybils[ev.Addr] && ev.Reason == "silent: relayed nothing"
		}))
		t.Logf("honest delivery %d/%d = %.5f with %d silent Sybils; %d silent links dropped", got, want, frac, nSybil, silent)
		if frac < sybilMinDelivery {
			t.Errorf("honest delivery %.5f < %v", frac, sybilMinDelivery)
		}
	})
}

// keyedAttacker is an attacker with a real identity: it holds an Ed25519
// key, registers with the seeds (proof of work included), signs its
// connects, accepts every link, answers liveness requests and forwards
// nothing. Its frames are its own; serve answers what it must.
type keyedAttacker struct {
	tr     transport.Transport
	key    ed25519.PrivateKey
	linked atomic.Bool // the target accepted its link, as far as it knows
}

func (a *keyedAttacker) send(ctx context.Context, to string, m *wireMsg) {
	m.V = wireVersion
	frame, err := codec.Msgpack().Marshal(m)
	if err == nil {
		_ = a.tr.Send(ctx, to, frame)
	}
}

// link is a connect or connect-ack signed like a real peer's.
func (a *keyedAttacker) link(k kind, to string, nonce []byte) *wireMsg {
	stamp := time.Now().UnixNano()
	return &wireMsg{K: k, Stamp: stamp, Key: a.key.Public().(ed25519.PublicKey), Nonce: nonce,
		Sig: ed25519.Sign(a.key, linkBytes(k, a.tr.Addr(), to, stamp, nonce))}
}

// serve answers what a polite Sybil must answer until stop is closed.
func (a *keyedAttacker) serve(ctx context.Context, target string, stop <-chan struct{}) {
	self, pub := a.tr.Addr(), a.key.Public().(ed25519.PublicKey)
	for {
		var pkt transport.Packet
		select {
		case <-stop:
			return
		case pkt = <-a.tr.Packets():
		}
		var m wireMsg
		if codec.Msgpack().Unmarshal(pkt.Payload, &m) != nil {
			continue
		}
		switch m.K {
		case kindChallenge:
			ch := pow.Challenge{Difficulty: m.Diff, Expires: m.Stamp}
			copy(ch.Nonce[:], m.Nonce)
			sol, err := pow.Solve(ctx, ch, pub, []byte(self))
			if err != nil {
				continue
			}
			a.send(ctx, pkt.From, &wireMsg{K: kindRegister, Key: pub, Nonce: sol.Nonce[:], Counter: sol.Counter,
				Sig: ed25519.Sign(a.key, registrationBytes(sol.Nonce[:], self, pkt.From))})
		case kindPing:
			a.send(ctx, pkt.From, &wireMsg{K: kindPong, Stamp: m.Stamp, Addr: pkt.From})
		case kindConnect:
			a.send(ctx, pkt.From, a.link(kindConnectAck, pkt.From, m.Nonce))
			if pkt.From == target {
				a.linked.Store(true)
			}
		case kindConnectAck:
			if pkt.From == target {
				a.linked.Store(true)
			}
		case kindConnectReject, kindDisconnect, kindLeave:
			if pkt.From == target {
				a.linked.Store(false)
			}
		}
	}
}

// eclipseWatch follows the target's links from its own events, in order,
// and checks the eclipse invariants on every change.
type eclipseWatch struct {
	mu          sync.Mutex
	honest      map[string]bool
	groupOf     func(string) string // address group of an attacker, "" if honest
	links       map[string]bool     // neighbour → outbound
	changes     int                 // link changes since reached
	reached     time.Time           // when outbound honest links first reached the minimum
	worst       int                 // fewest outbound honest links since then
	violations  int
	firstBreach string
	maxOutAtk   int            // most outbound links to attackers at once
	maxInGroup  map[string]int // most inbound links from one attacker group at once
	maxInbound  int            // most inbound links at once
	outSeq      []int          // outbound honest links after each change
}

func (w *eclipseWatch) observe(ev Event, minOut int) {
	if ev.Kind != EventNeighborUp && ev.Kind != EventNeighborDown {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if ev.Kind == EventNeighborUp {
		w.links[ev.Addr] = ev.Reason == "outbound"
	} else {
		delete(w.links, ev.Addr)
	}
	outHonest, outAtk, inbound := 0, 0, 0
	inGroup := map[string]int{}
	for a, out := range w.links {
		switch {
		case out && w.honest[a]:
			outHonest++
		case out:
			outAtk++
		default:
			inbound++
			if g := w.groupOf(a); g != "" {
				inGroup[g]++
			}
		}
	}
	w.outSeq = append(w.outSeq, outHonest)
	w.maxOutAtk = max(w.maxOutAtk, outAtk)
	w.maxInbound = max(w.maxInbound, inbound)
	for g, n := range inGroup {
		w.maxInGroup[g] = max(w.maxInGroup[g], n)
	}
	if w.reached.IsZero() && outHonest >= minOut {
		w.reached, w.worst = ev.Time, outHonest
	}
	if !w.reached.IsZero() {
		w.changes++
		w.worst = min(w.worst, outHonest)
		if outHonest < minOut {
			w.violations++
			if w.firstBreach == "" {
				w.firstBreach = fmt.Sprintf("%d outbound honest neighbours at %v after %v", outHonest, ev.Time.Sub(w.reached), ev)
			}
		}
	}
}

// TestEclipseResistance: 200 attacker identities from two address groups
// dial one target over and over. 160 of them send unsigned connects and
// junk 50 times a second and are banned; 40 (20 per group) hold real keys,
// register with the seeds (which admit DefaultGroupLimit per group) with
// proof of work, sign their connects, accept every link, answer liveness
// requests and forward nothing. On every change of the target's links,
// from the moment it first has the minimum: it keeps its minimum of
// outbound honest neighbours, no attacker group holds more than
// DefaultInboundPerGroup inbound links or more than one outbound link, and
// the target delivers every honest message.
func TestEclipseResistance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3)
		c.startSeeds()
		honest := c.startPeers(eclipseHonest, joinGap)
		target := peerAddr(len(honest))
		attackerAddr := func(i int) string { return fmt.Sprintf("10.250.%d.%d:6666", 1+i%eclipseGroups, 1+i/eclipseGroups) }
		attackerGroups := map[string]bool{}
		for i := range eclipseGroups {
			attackerGroups[addrGroup(attackerAddr(i), DefaultGroupPrefix)] = true
		}
		stop := make(chan struct{})
		var serving sync.WaitGroup
		var junkers []transport.Transport
		var keyed []*keyedAttacker
		for i := range eclipseAttackers {
			tr := c.transport(attackerAddr(i))
			if i >= eclipseGroups*eclipseKeyedPerGroup {
				junkers = append(junkers, tr)
				continue
			}
			a := &keyedAttacker{tr: tr, key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{byte(i + 1)}, ed25519.SeedSize))}
			keyed = append(keyed, a)
			serving.Go(func() { a.serve(t.Context(), target, stop) })
			for _, sd := range c.seeds {
				a.send(t.Context(), sd, &wireMsg{K: kindRegister, Key: a.key.Public().(ed25519.PublicKey)})
			}
		}
		time.Sleep(5 * time.Second) // registrations and proofs of work
		synctest.Wait()
		for _, sd := range c.seeds {
			perGroup := map[string]int{}
			for _, p := range c.seedsBy[sd].Peers() {
				if g := addrGroup(p, DefaultGroupPrefix); attackerGroups[g] {
					perGroup[g]++
				}
			}
			for g := range attackerGroups {
				if perGroup[g] != DefaultGroupLimit {
					t.Errorf("seed %s registered %d attackers of %s, want the group cap %d (of %d keyed)", sd, perGroup[g], g, DefaultGroupLimit, eclipseKeyedPerGroup)
				}
			}
		}

		w := &eclipseWatch{
			honest: map[string]bool{}, links: map[string]bool{}, maxInGroup: map[string]int{},
			groupOf: func(a string) string {
				if g := addrGroup(a, DefaultGroupPrefix); attackerGroups[g] {
					return g
				}
				return ""
			},
		}
		for _, h := range honest {
			w.honest[h] = true
		}
		minOutbound := DefaultMinDegree
		record := c.rec.handler()
		connect, _ := codec.Msgpack().Marshal(&wireMsg{V: wireVersion, K: kindConnect})
		junk, _ := codec.Msgpack().Marshal(&wireMsg{V: wireVersion, K: kindGossip, Origin: "10.250.1.1:1", Seq: 1, Payload: []byte("junk")})
		attackDone := make(chan struct{})
		go func() {
			defer close(attackDone)
			for tick := 0; ; tick++ {
				// The junk senders dial and send junk 50 times a second.
				for _, a := range junkers {
					_ = a.Send(t.Context(), target, connect)
					_ = a.Send(t.Context(), target, junk)
				}
				// The keyed ones dial whenever the target has no link to
				// them, at a slower pace: each signed connect costs the
				// target a signature check, and this test seconds.
				if tick%int(eclipseKeyedRedial/eclipseJunkEvery) == 0 {
					for _, a := range keyed {
						if !a.linked.Load() {
							nonce := make([]byte, linkNonceSize)
							binary.BigEndian.PutUint64(nonce, uint64(tick))
							a.send(t.Context(), target, a.link(kindConnect, target, nonce))
						}
					}
				}
				select {
				case <-stop:
					return
				case <-time.After(eclipseJunkEvery):
				}
			}
		}()
		p := c.startPeer(target, WithRandSeed(99), WithEventHandler(func(ev Event) {
			record(ev)
			w.observe(ev, minOutbound)
		}))
		time.Sleep(time.Duration(eclipseSeconds) * time.Second)
		synctest.Wait()
		close(stop)
		<-attackDone
		serving.Wait()
		synctest.Wait()

		w.mu.Lock()
		defer w.mu.Unlock()
		// The links rebuilt from the events are the target's own.
		for _, l := range p.Links() {
			if out, ok := w.links[l.Addr]; !ok || out != l.Outbound {
				t.Errorf("link %s (outbound %v) missing from the events", l.Addr, l.Outbound)
			}
		}
		if len(p.Links()) != len(w.links) {
			t.Errorf("events show %d links, the target has %d", len(w.links), len(p.Links()))
		}
		if w.reached.IsZero() {
			t.Fatalf("the target never had %d outbound honest neighbours", minOutbound)
		}
		if w.violations > 0 {
			t.Errorf("outbound honest neighbours fell below %d on %d of %d link changes, first: %s", minOutbound, w.violations, w.changes, w.firstBreach)
		}
		if w.maxOutAtk > eclipseGroups {
			t.Errorf("%d outbound links to attackers at once, want at most one per attacker group (%d)", w.maxOutAtk, eclipseGroups)
		}
		if w.maxInbound > DefaultMaxDegree-DefaultMinDegree {
			t.Errorf("%d inbound links at once, cap %d", w.maxInbound, DefaultMaxDegree-DefaultMinDegree)
		}
		for g := range attackerGroups {
			if n := w.maxInGroup[g]; n != DefaultInboundPerGroup {
				t.Errorf("attacker group %s held up to %d inbound links, want exactly the cap %d (%d keyed attackers try)", g, n, DefaultInboundPerGroup, eclipseKeyedPerGroup)
			}
		}
		// Every honest message reached the target.
		got := map[msgKey]bool{}
		for _, ev := range c.rec.of(target, EventMessage) {
			if w.honest[ev.Origin] {
				got[msgKey{ev.Origin, ev.Seq}] = true
			}
		}
		want := 0
		for _, ev := range c.rec.kind(EventOriginated) {
			if w.honest[ev.Node] {
				want++
				if !got[msgKey{ev.Origin, ev.Seq}] {
					t.Errorf("target missed %s#%d", ev.Origin, ev.Seq)
				}
			}
		}
		if want == 0 {
			t.Error("no honest message originated")
		}
		banned := len(c.rec.filter(func(ev Event) bool { return ev.Node == target && ev.Kind == EventBanned }))
		// For the record: the fewest outbound honest links once the
		// target first had its most.
		most := slices.Max(w.outSeq)
		settled := slices.Min(w.outSeq[slices.Index(w.outSeq, most):])
		t.Logf("%d attacker identities (%d keyed, each seed registering %d per group) for %ds: over %d link changes since it first had the minimum, outbound honest neighbours never below %d (minimum %d), and never below %d once it first had %d; at most %d outbound links to attackers, %d inbound links from one attacker group (cap %d), %d inbound in all (cap %d); %d attackers banned; %d/%d honest messages delivered",
			eclipseAttackers, len(keyed), DefaultGroupLimit, eclipseSeconds, w.changes, w.worst, minOutbound, settled, most,
			w.maxOutAtk, max(w.maxInGroup[addrGroup(attackerAddr(0), DefaultGroupPrefix)], w.maxInGroup[addrGroup(attackerAddr(1), DefaultGroupPrefix)]),
			DefaultInboundPerGroup, w.maxInbound, DefaultMaxDegree-DefaultMinDegree, banned, len(got), want)
	})
}

// floodWindow is a span in which a peer took the flooder's own frames: from
// the flood's start, or from the link when the flooder found this peer
// later, to the peer's ban of it.
type floodWindow struct {
	node     string
	from, to time.Time
}

// originBucket replays the times at which a peer accepted an origin's
// messages through a model of that peer's per-origin token bucket
// (x/time/rate: full at first, at most burst tokens, refilled at rate; a
// refused message takes none). It returns the tokens the bucket held just
// before each acceptance.
func originBucket(accepted []time.Time, rate float64, burst int) []float64 {
	tokens, last := float64(burst), time.Time{}
	before := make([]float64, len(accepted))
	for i, t := range accepted {
		if !last.IsZero() {
			tokens = min(float64(burst), tokens+rate*t.Sub(last).Seconds())
		}
		before[i] = tokens
		tokens--
		last = t
	}
	return before
}

// TestFloodIsLimitedAndBanned: one peer broadcasts as fast as it can for
// 10 s while 5 honest peers publish 10 messages a second each. The
// flooder's messages are accepted at the per-origin limit (±10 %) while it
// is linked, it is banned within 2 s, every honest message is delivered,
// and the heap stays under a bound throughout.
func TestFloodIsLimitedAndBanned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3, WithMessages(0))
		c.startSeeds()
		peers := c.startPeers(floodPeers, joinGap)
		flooder := peerAddr(len(peers))
		// The recorder keeps every event; the flooder's 100 000
		// originated events would dominate the heap measured below, and
		// are not needed: its Stats count them.
		rec := c.rec.handler()
		f := c.startPeer(flooder, WithRandSeed(7), WithEventHandler(func(ev Event) {
			if ev.Kind != EventOriginated {
				rec(ev)
			}
		}))
		time.Sleep(30 * time.Second)
		synctest.Wait()

		// Sample the heap every floodSampleEvery of virtual time, from
		// just before the flood until the end of the drain below.
		runtime.GC() // no garbage of earlier tests in the figures
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		baseline, peak := ms.HeapAlloc, uint64(0)
		samples := 0
		stopSampling := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			for {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
				samples++
				select {
				case <-stopSampling:
					return
				case <-time.After(floodSampleEvery):
				}
			}
		}()

		start := time.Now()
		done := make(chan struct{}, 1+floodHonest)
		go func() { // the flood: 10 000 messages a second, attempted
			for i := 0; time.Since(start) < floodDuration; i++ {
				_ = f.Broadcast(t.Context(), fmt.Appendf(nil, "flood %d", i))
				if i%10 == 9 {
					time.Sleep(time.Millisecond)
				}
			}
			done <- struct{}{}
		}()
		for _, p := range peers[:floodHonest] {
			go func() {
				for i := 0; time.Since(start) < floodDuration; i++ {
					_ = c.peers[p].Broadcast(t.Context(), fmt.Appendf(nil, "%s honest %d", p, i))
					time.Sleep(time.Second / floodHonestRate)
				}
				done <- struct{}{}
			}()
		}
		for range 1 + floodHonest {
			<-done
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		close(stopSampling)
		<-sampled

		// Every peer that had the flooder as a neighbour during the flood
		// banned it within 2 s of the flood reaching it: of the flood's
		// start, or of the link, when the banned flooder found a new
		// neighbour later.
		bans := c.rec.filter(func(ev Event) bool { return ev.Kind == EventBanned && ev.Addr == flooder })
		if len(bans) == 0 {
			t.Fatal("flooder never banned")
		}
		var windows []floodWindow
		var slowest, slowestLater time.Duration // bans of links made during the flood, after it
		for _, b := range bans {
			from := start
			for _, up := range c.rec.filter(func(ev Event) bool {
				return ev.Node == b.Node && ev.Kind == EventNeighborUp && ev.Addr == flooder && !ev.Time.After(b.Time)
			}) {
				if up.Time.After(from) {
					from = up.Time
				}
			}
			windows = append(windows, floodWindow{b.Node, from, b.Time})
			d := b.Time.Sub(from)
			if from.Before(start.Add(floodDuration)) {
				slowest = max(slowest, d)
			} else {
				slowestLater = max(slowestLater, d)
			}
			if d > floodBanWithin {
				t.Errorf("%s banned the flooder %v after the flood reached it, want within %v", b.Node, d, floodBanWithin)
			}
		}

		// The flooder's accepted rate. Each peer's per-origin token bucket
		// (DefaultOriginRate, burst 2×) governs every copy of the
		// flooder's messages it accepts, from the flooder or relayed. So
		// (1) no peer may ever accept one without a token in the bucket,
		// and (2) from the first of the flooder's own frames a peer
		// accepted to its ban of the flooder (the flooder then offers far
		// more than the limit), a peer accepts what the bucket held plus
		// the rate times that time: burst + rate × time when the bucket was
		// full, less when relayed copies had drained it first. The sum of
		// (2) over every ban must be within ±10 % of that.
		rate, burst := float64(DefaultOriginRate), 2*DefaultOriginRate
		type acceptance struct {
			at     time.Time
			direct bool // from the flooder itself, not relayed
		}
		accepted := map[string][]acceptance{}
		distinct := map[uint64]bool{}
		for _, ev := range c.rec.kind(EventMessage) {
			if ev.Origin == flooder {
				accepted[ev.Node] = append(accepted[ev.Node], acceptance{ev.Time, ev.From == flooder})
				distinct[ev.Seq] = true
			}
		}
		tokens := map[string][]float64{}
		mostAtOnePeer := 0
		for p, as := range accepted {
			slices.SortStableFunc(as, func(a, b acceptance) int { return a.at.Compare(b.at) })
			ts := make([]time.Time, len(as))
			for i, a := range as {
				ts[i] = a.at
			}
			tokens[p] = originBucket(ts, rate, burst)
			mostAtOnePeer = max(mostAtOnePeer, len(as))
			for i, tk := range tokens[p] {
				if tk < 1-1e-6 {
					t.Errorf("%s accepted flood message %d at %v with %.3f tokens in its bucket: over the per-origin limit", p, i, ts[i].Sub(start), tk)
					break
				}
			}
		}
		var wantSum, gotSum float64
		for _, w := range windows {
			as := accepted[w.node]
			first := slices.IndexFunc(as, func(a acceptance) bool { return a.direct && !a.at.Before(w.from) && !a.at.After(w.to) })
			if first < 0 {
				continue // banned for relayed copies alone: no own frame admitted
			}
			got := 0
			for _, a := range as[first:] {
				if !a.at.After(w.to) {
					got++
				}
			}
			admitted := w.to.Sub(as[first].at)
			want := tokens[w.node][first] + rate*admitted.Seconds()
			wantSum += want
			gotSum += float64(got)
			t.Logf("%s admitted the flooder's frames %v..%v after the flood's start: accepted %d of its messages, the bucket allows %.1f",
				w.node, as[first].at.Sub(start), w.to.Sub(start), got, want)
		}
		if wantSum == 0 {
			t.Fatal("no peer admitted any of the flooder's own messages")
		}
		if math.Abs(gotSum-wantSum) > floodRateTolerance*wantSum {
			t.Errorf("accepted %.0f of the flooder's messages while admitting its frames, the per-origin bucket allows %.1f: off by more than %.0f %%",
				gotSum, wantSum, 100*floodRateTolerance)
		}

		// Honest delivery is complete.
		honestSent := map[msgKey]bool{}
		for _, ev := range c.rec.kind(EventOriginated) {
			if ev.Node != flooder {
				honestSent[msgKey{ev.Origin, ev.Seq}] = true
			}
		}
		if want := floodHonest * floodHonestRate * int(floodDuration/time.Second); len(honestSent) < want*9/10 {
			t.Errorf("only %d honest messages originated, want about %d", len(honestSent), want)
		}
		missing := 0
		for _, p := range peers {
			got := map[msgKey]bool{}
			for _, ev := range c.rec.of(p, EventMessage) {
				got[msgKey{ev.Origin, ev.Seq}] = true
			}
			for k := range honestSent {
				if k.origin != p && !got[k] {
					missing++
				}
			}
		}
		if missing > 0 {
			t.Errorf("%d honest deliveries missing", missing)
		}
		refused := uint64(0)
		for _, p := range peers {
			refused += c.peers[p].Stats().Refused
		}
		if refused == 0 {
			t.Error("no frame refused before decoding: the bans did not shed the flood")
		}
		if peak > floodHeapBound {
			t.Errorf("heap peaked at %d MiB during the flood, bound %d MiB", peak>>20, floodHeapBound>>20)
		}
		t.Logf("flooder sent %d messages in %v; while linked %.0f accepted, per-origin bucket allows %.1f (±%.0f %%); at most %d accepted by one peer over the test, %d distinct delivered anywhere; banned by %d peers, within %v of the flood reaching them (within %v of the link for those it linked to after the flood and pushed cached messages to); %d honest messages, %d missing; %d frames refused before decoding; heap peak %.1f MiB over %d samples (bound %d MiB; %.1f MiB before the flood)",
			f.Stats().Originated, floodDuration, gotSum, wantSum, 100*floodRateTolerance, mostAtOnePeer, len(distinct), len(bans), slowest, slowestLater,
			len(honestSent), missing, refused, float64(peak)/(1<<20), samples, floodHeapBound>>20, float64(baseline)/(1<<20))
	})
}

// TestForgedReportsFlood: one registered peer (a real key, proof of work
// solved for every seed) files 1000 dead-node reports about live peers.
// Every report a seed takes is refuted by its own probe, nobody is removed,
// and the seeds stop listening to the liar after a few.
func TestForgedReportsFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3, WithMessages(0))
		c.startSeeds()
		peers := c.startPeers(forgedPeers, joinGap)
		liar := &keyedAttacker{tr: c.transport("10.77.0.1:6666"), key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{77}, ed25519.SeedSize))}
		stop := make(chan struct{})
		var serving sync.WaitGroup
		defer serving.Wait()
		defer close(stop)
		serving.Go(func() { liar.serve(t.Context(), "", stop) })
		for _, s := range c.seeds {
			liar.send(t.Context(), s, &wireMsg{K: kindRegister, Key: liar.key.Public().(ed25519.PublicKey)})
		}
		time.Sleep(time.Second)
		synctest.Wait()
		for _, s := range c.seeds {
			if !slices.Contains(c.seedsBy[s].Peers(), liar.tr.Addr()) {
				t.Fatalf("the liar is not registered with seed %s", s)
			}
		}
		// Each peer registered with a majority of the seeds, not all.
		listed := map[string][]string{}
		for _, s := range c.seeds {
			listed[s] = c.seedsBy[s].Peers()
		}
		start := time.Now()
		for i := range forgedReports {
			victim := peers[i%len(peers)]
			for _, s := range c.seeds {
				liar.send(t.Context(), s, &wireMsg{K: kindDeadReport, Addr: victim, Stamp: time.Now().UnixNano()})
			}
			time.Sleep(forgedEvery)
		}
		time.Sleep(time.Minute)
		synctest.Wait()

		// No live peer removed; the liar itself may be, banned for its
		// reports over the rate limit.
		liarBanned := 0
		for _, ev := range c.rec.kind(EventPeerRemoved) {
			if ev.Addr == liar.tr.Addr() && ev.Reason == "banned" {
				liarBanned++
				continue
			}
			t.Errorf("forged reports removed a peer: %v", ev)
		}
		for _, s := range c.seeds {
			if got := c.seedsBy[s].Peers(); !slices.Equal(got, listed[s]) {
				t.Errorf("seed %s lists %v after the reports, %v before", s, got, listed[s])
			}
		}
		// Every report a seed took about a peer registered with it was
		// refuted by that seed's own probe of the victim, the liar named
		// among the reporters; a report about a peer it does not list is
		// dropped unprobed.
		ignored := 0
		taken := c.rec.filter(func(ev Event) bool { return ev.Kind == EventDeadReportReceived && !ev.Time.Before(start) })
		if len(taken) == 0 {
			t.Fatal("no forged report reached a seed: nothing tested")
		}
		refutations := c.rec.kind(EventDeadReportRefuted)
		for _, r := range taken {
			if r.From != liar.tr.Addr() {
				t.Errorf("report from %s, not the liar: %v", r.From, r)
				continue
			}
			if !slices.Contains(listed[r.Node], r.Addr) {
				ignored++
				continue
			}
			if !slices.ContainsFunc(refutations, func(ev Event) bool {
				return ev.Node == r.Node && ev.Addr == r.Addr && !ev.Time.Before(r.Time) && slices.Contains(ev.Peers, liar.tr.Addr())
			}) {
				t.Errorf("seed %s took a report about %s at %v that was never refuted", r.Node, r.Addr, r.Time.Sub(start))
			}
		}
		if len(taken) > forgedTakenMax {
			t.Errorf("seeds took %d of %d forged reports, want at most %d: the liar cut off quickly", len(taken), len(c.seeds)*forgedReports, forgedTakenMax)
		}
		t.Logf("%d forged reports from a registered peer to each of %d seeds: %d taken, %d of them about peers registered with that seed, probed and refuted (%d probes), %d about peers it does not list, dropped; 0 live peers removed; the liar removed %d times for rate-limit violations",
			forgedReports, len(c.seeds), len(taken), len(taken)-ignored, len(refutations), ignored, liarBanned)
	})
}
