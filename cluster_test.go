package gossip

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gossip-dev/gossip/codec"
)

const (
	clusterSeeds = 3
	clusterPeers = 30
	joinGap      = 100 * time.Millisecond
)

type msgKey struct {
	origin string
	seq    uint64
}

type linkKey struct {
	from, to string
	id       msgID
}

// gossipCounter counts gossip frames per directed link and message, as
// the transport carries them.
type gossipCounter struct {
	mu    sync.Mutex
	sends map[linkKey]int
	bad   int
}

func (g *gossipCounter) filter(from, to string, frame []byte) bool {
	var m wireMsg
	if err := codec.Msgpack().Unmarshal(frame, &m); err != nil {
		g.mu.Lock()
		g.bad++
		g.mu.Unlock()
		return true
	}
	if m.K == kindGossip {
		g.mu.Lock()
		g.sends[linkKey{from, to, gossipID(m.Origin, m.Seq, m.Stamp, m.Payload)}]++
		g.mu.Unlock()
	}
	return true
}

// TestClusterGossip runs the spec's scenario with its default timings:
// 3 seeds, 30 peers, 10 messages each every 5 s, liveness every 13 s.
func TestClusterGossip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, clusterSeeds)
		counter := &gossipCounter{sends: make(map[linkKey]int)}
		c.net.SetFilter(counter.filter)
		c.startSeeds()
		peers := c.startPeers(clusterPeers, joinGap)
		// 10 messages 5 s apart, plus time to spread them.
		time.Sleep(DefaultMessages*DefaultGossipInterval + 20*time.Second)
		synctest.Wait()

		want := (clusterPeers - 1) * DefaultMessages
		relayed := 0
		for _, p := range peers {
			msgs := c.rec.of(p, EventMessage)
			got := make(map[msgKey]int)
			for _, ev := range msgs {
				got[msgKey{ev.Origin, ev.Seq}]++
				if ev.Origin != ev.From {
					relayed++
				}
				if ev.Origin == p {
					t.Errorf("%s delivered its own message %d", p, ev.Seq)
				}
				// Never sent back over the link it came in on.
				id := gossipID(ev.Origin, ev.Seq, ev.Stamp.UnixNano(), ev.Payload)
				if n := counter.sends[linkKey{p, ev.From, id}]; n != 0 {
					t.Errorf("%s sent %s#%d back to %s, where it came from", p, ev.Origin, ev.Seq, ev.From)
				}
			}
			if len(msgs) != want || len(got) != want {
				t.Errorf("%s delivered %d messages (%d distinct), want %d exactly once", p, len(msgs), len(got), want)
			}
			for k, n := range got {
				if n != 1 {
					t.Errorf("%s delivered %s#%d %d times", p, k.origin, k.seq, n)
				}
			}
			if o := c.rec.of(p, EventOriginated); len(o) != DefaultMessages {
				t.Errorf("%s originated %d messages, want %d", p, len(o), DefaultMessages)
			}
		}
		for k, n := range counter.sends {
			if n > 1 {
				t.Errorf("%s sent a message %d times to %s", k.from, n, k.to)
			}
		}
		if counter.bad != 0 {
			t.Errorf("%d undecodable frames on the wire", counter.bad)
		}
		if relayed == 0 {
			t.Error("no delivery was relayed (origin == relayer everywhere)")
		}
		if rm := c.rec.kind(EventPeerRemoved); len(rm) != 0 {
			t.Errorf("live peers removed: %v", rm)
		}
		t.Logf("%d peers x %d messages delivered exactly once; %d of %d deliveries relayed",
			clusterPeers, want, relayed, clusterPeers*want)
	})
}

// Bounds of the crash scenario (default timings).
const (
	// crashSettle is how long the cluster runs before the crash.
	crashSettle = 30 * time.Second
	// crashVictim is the index of the peer that crashes.
	crashVictim = 7
	// probeTime is a seed's own check of a reported peer: every attempt
	// unanswered.
	probeTime = DefaultProbeAttempts * DefaultProbeTimeout
	// removalSlack covers the seeds' vote and frame delivery, which take
	// no virtual time on the in-memory network.
	removalSlack = time.Second
	// removalBound is how long after a crash every seed that had the
	// victim registered may take to remove it: maxMisses missed rounds,
	// one more interval for the phase of the first unanswered request,
	// then the seed's probes.
	removalBound = (DefaultMaxMisses+1)*DefaultLivenessInterval + probeTime + removalSlack
	// healTime is how long the former neighbours get, after the last
	// removal, to be back at the minimum degree: a few connect timeouts
	// and one maintain round.
	healTime = DefaultMaintainInterval + 2*DefaultConnectTimeout
)

// deadLineRE is the protocol's dead-node line
// "Dead Node:<IP>:<Port>:<timestamp>:<reporter>", the reporter being the
// reporting peer's host:port address; Event.String may follow it with the
// seeds it went to.
var deadLineRE = regexp.MustCompile(`^(Dead Node:(\d+\.\d+\.\d+\.\d+):(\d+):(\d+\.\d{3}):(\d+\.\d+\.\d+\.\d+:\d+))(?: sent to seeds \[(.*)\])?$`)

// checkDeadLine checks that ev, an EventDeadReportSent, renders as the
// spec's dead-node line about dead, reported by ev.Node at ev.Stamp.
func checkDeadLine(t *testing.T, ev Event, dead string) {
	t.Helper()
	s := ev.String()
	m := deadLineRE.FindStringSubmatch(s)
	if m == nil {
		t.Errorf("dead report by %s renders as %q, want %q", ev.Node, s, deadLineRE)
		return
	}
	if got := m[2] + ":" + m[3]; got != dead {
		t.Errorf("dead-node line %q names %s, want the crashed peer %s", s, got, dead)
	}
	if m[5] != ev.Node {
		t.Errorf("dead-node line %q names reporter %s, want %s", s, m[5], ev.Node)
	}
	if want := FormatStamp(ev.Stamp); m[4] != want {
		t.Errorf("dead-node line %q has timestamp %s, want %s", s, m[4], want)
	}
	if d := ev.Stamp.Sub(ev.Time).Abs(); d > time.Millisecond {
		t.Errorf("dead report stamped %v from the time it was sent", d)
	}
	if want := DeadNodeLine(dead, ev.Stamp, ev.Node); m[1] != want {
		t.Errorf("dead-node line %q, want %q", m[1], want)
	}
	if m[6] != "" && m[6] != strings.Trim(fmt.Sprint(ev.Peers), "[]") {
		t.Errorf("dead-node line %q lists seeds %q, want %v", s, m[6], ev.Peers)
	}
}

// TestClusterCrash crashes one peer silently and checks that exactly its
// neighbours report it after three missed liveness rounds, with the spec's
// dead-node line; that every seed it registered with removes it within
// removalBound, and nobody else; and that its former neighbours are back
// at the minimum degree.
func TestClusterCrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, clusterSeeds)
		peers := c.startNetwork(clusterPeers, crashSettle)

		victim := peers[crashVictim]
		nbrs := c.peers[victim].Neighbors()
		if len(nbrs) == 0 {
			t.Fatalf("victim %s has no neighbours", victim)
		}
		joined := c.rec.of(victim, EventJoined)
		if len(joined) != 1 {
			t.Fatalf("victim joined %d times", len(joined))
		}
		regSeeds := joined[0].Peers
		before := make(map[string][]string)
		for a, s := range c.seedsBy {
			before[a] = s.Peers()
		}
		crashAt := time.Now()
		c.net.Crash(victim) // vanishes: its leave messages are lost too
		c.stop(victim)

		const L = DefaultLivenessInterval
		time.Sleep(removalBound)
		synctest.Wait()

		reports := c.rec.filter(func(ev Event) bool { return ev.Kind == EventDeadReportSent && ev.Addr == victim })
		if len(reports) == 0 {
			t.Fatalf("nobody reported %s within %v of the crash", victim, removalBound)
		}
		var reporters []string
		for _, ev := range reports {
			reporters = append(reporters, ev.Node)
			// Three missed rounds: the first unanswered request went out
			// within L after the crash, the report three rounds later.
			if d := ev.Time.Sub(crashAt); d <= DefaultMaxMisses*L || d > (DefaultMaxMisses+1)*L {
				t.Errorf("%s reported %s %v after the crash, want in (%v, %v]", ev.Node, victim, d, DefaultMaxMisses*L, (DefaultMaxMisses+1)*L)
			}
			if !slices.Equal(ev.Peers, c.rec.of(ev.Node, EventJoined)[0].Peers) {
				t.Errorf("%s reported to %v, want its seeds", ev.Node, ev.Peers)
			}
			checkDeadLine(t, ev, victim)
		}
		slices.Sort(reporters)
		if !slices.Equal(reporters, nbrs) {
			t.Errorf("reporters = %v, want the victim's neighbours %v", reporters, nbrs)
		}
		var removers []string
		var slowest time.Duration
		for _, ev := range c.rec.kind(EventPeerRemoved) {
			if ev.Addr != victim {
				t.Errorf("seed %s removed live peer %s (%s)", ev.Node, ev.Addr, ev.Reason)
				continue
			}
			if ev.Reason != "dead" {
				t.Errorf("seed %s removed %s for %q, want dead", ev.Node, victim, ev.Reason)
			}
			d := ev.Time.Sub(crashAt)
			if d > removalBound {
				t.Errorf("seed %s removed %s %v after the crash, want within %v", ev.Node, victim, d, removalBound)
			}
			slowest = max(slowest, d)
			removers = append(removers, ev.Node)
		}
		slices.Sort(removers)
		want := slices.Sorted(slices.Values(regSeeds))
		if !slices.Equal(removers, want) {
			t.Errorf("removed by seeds %v, want the seeds it registered with %v", removers, want)
		}
		for a, s := range c.seedsBy {
			if slices.Contains(before[a], victim) && !slices.Contains(removers, a) {
				t.Errorf("seed %s had %s registered and did not remove it within %v", a, victim, removalBound)
			}
			want := slices.DeleteFunc(before[a], func(p string) bool { return p == victim })
			if got := s.Peers(); !slices.Equal(got, want) {
				t.Errorf("seed %s lists %v, want %v (the list before the crash, less the victim)", a, got, want)
			}
		}

		// Self-healing: the former neighbours replaced the lost link.
		time.Sleep(healTime)
		synctest.Wait()
		for _, nb := range nbrs {
			links := c.peers[nb].Links()
			if len(links) < DefaultMinDegree {
				t.Errorf("former neighbour %s has %d links %v %v after the crash, want at least %d",
					nb, len(links), links, time.Since(crashAt), DefaultMinDegree)
			}
			if slices.ContainsFunc(links, func(l Link) bool { return l.Addr == victim }) {
				t.Errorf("former neighbour %s still links to the crashed %s", nb, victim)
			}
		}
		t.Logf("%d neighbours reported %s, e.g. %q; removed by %v, the slowest %v after the crash (bound %v)",
			len(reporters), victim, reports[0], removers, slowest, removalBound)
	})
}

// TestForgedDeadReport sends a dead-node report about a live peer from a
// node that is not even registered: the seeds probe, get an answer, and
// remove nobody.
func TestForgedDeadReport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, clusterSeeds)
		c.startSeeds()
		peers := c.startPeers(5, joinGap)
		time.Sleep(5 * time.Second)
		synctest.Wait()

		evil := c.transport("10.66.0.1:6666")
		for _, victim := range peers {
			frame, _ := codec.Msgpack().Marshal(&wireMsg{V: 1, K: kindDeadReport, Addr: victim, Stamp: time.Now().UnixNano()})
			for _, s := range c.seeds {
				if err := evil.Send(t.Context(), s, frame); err != nil {
					t.Fatal(err)
				}
			}
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if rm := c.rec.kind(EventPeerRemoved); len(rm) != 0 {
			t.Errorf("forged reports removed peers: %v", rm)
		}
		refuted := c.rec.kind(EventDeadReportRefuted)
		registrations := 0
		for _, s := range c.seedsBy {
			registrations += len(s.Peers())
		}
		if len(refuted) != registrations {
			t.Errorf("%d refutations, want one per registration (%d)", len(refuted), registrations)
		}
	})
}

// TestRegistrationMajority covers 1 to 5 seeds with some of them down.
func TestRegistrationMajority(t *testing.T) {
	for n := 1; n <= 5; n++ {
		for down := 0; down <= n; down++ {
			t.Run(fmt.Sprintf("seeds=%d/down=%d", n, down), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					c := newCluster(t, n)
					c.startSeeds(c.seeds[down:]...)
					for _, a := range c.seeds[:down] {
						c.transport(a) // the address exists but nobody answers
					}
					p := peerAddr(0)
					c.startPeer(p, WithJoinTimeout(time.Minute), WithRandSeed(uint64(n*10+down)))
					time.Sleep(2 * time.Minute)
					synctest.Wait()

					need := n/2 + 1
					joined := c.rec.of(p, EventJoined)
					if n-down >= need {
						if len(joined) != 1 || len(joined[0].Peers) != need {
							t.Fatalf("joined events %v, want one with %d seeds", joined, need)
						}
						for _, s := range joined[0].Peers {
							if slices.Index(c.seeds, s) < down {
								t.Errorf("registered with down seed %s", s)
							}
						}
						if err := c.runErr(p); err != nil {
							t.Errorf("Run returned %v while running", err)
						}
						return
					}
					if len(joined) != 0 {
						t.Fatalf("joined without a majority: %v", joined)
					}
					if len(c.rec.of(p, EventRegisterFailed)) == 0 {
						t.Error("no EventRegisterFailed")
					}
					err := c.runErr(p)
					var je *JoinError
					if !errors.Is(err, ErrNoMajority) || !errors.As(err, &je) || je.Need != need {
						t.Fatalf("Run = %v, want a *JoinError wrapping ErrNoMajority", err)
					}
				})
			})
		}
	}
}

// Timings of the registration retry scenario, small so that the seeds stay
// down for many rounds at the backoff cap.
const (
	retrySeeds   = 3
	retryMin     = 100 * time.Millisecond
	retryMax     = time.Second
	retryTimeout = 200 * time.Millisecond // per-seed registration timeout
	// retryDown keeps every seed down well past the point where the
	// backoff reaches retryMax.
	retryDown = 20 * retryMax
	// retrySlack covers the frames and the proof of work, which take no
	// virtual time.
	retrySlack = 10 * time.Millisecond
	// retryGapBound bounds the time between two failed rounds: the backoff
	// at its cap, then one registration timeout per seed tried.
	retryGapBound = retryMax + retrySeeds*retryTimeout + retrySlack
)

// TestRegistrationRetry keeps the seeds down for many backoff periods: the
// peer reports every failed round, never waiting longer than the capped
// backoff plus its registration timeouts between two reports, and joins
// within one such period once the seeds are up.
func TestRegistrationRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, retrySeeds)
		p := peerAddr(0)
		start := time.Now()
		c.startPeer(p, WithRetryBackoff(retryMin, retryMax), WithRegisterTimeout(retryTimeout))
		time.Sleep(retryDown)
		synctest.Wait()

		failed := c.rec.of(p, EventRegisterFailed)
		if len(failed) < 2 {
			t.Fatalf("%d EventRegisterFailed in %v with every seed down, want several", len(failed), retryDown)
		}
		if d := failed[0].Time.Sub(start); d > retrySeeds*retryTimeout+retrySlack {
			t.Errorf("first failed round reported %v after the start, want within %v", d, retrySeeds*retryTimeout+retrySlack)
		}
		var longest time.Duration
		for i, ev := range failed {
			if !errors.Is(ev.Err, ErrNoMajority) {
				t.Errorf("EventRegisterFailed #%d: Err = %v, want one wrapping ErrNoMajority", i, ev.Err)
			}
			if i == 0 {
				continue
			}
			gap := ev.Time.Sub(failed[i-1].Time)
			if gap > retryGapBound {
				t.Errorf("%v between failed rounds %d and %d, want at most %v", gap, i-1, i, retryGapBound)
			}
			longest = max(longest, gap)
		}
		// The seeds were down long enough for the backoff to reach its cap.
		if longest < retryMax {
			t.Errorf("longest gap between failed rounds %v, want the backoff to reach its cap %v", longest, retryMax)
		}
		if last := time.Since(failed[len(failed)-1].Time); last > retryGapBound {
			t.Errorf("no failed round reported in the last %v, want one at least every %v", last, retryGapBound)
		}
		if j := c.rec.of(p, EventJoined); len(j) != 0 {
			t.Fatalf("joined with every seed down: %v", j)
		}

		up := time.Now()
		c.startSeeds()
		time.Sleep(retryGapBound)
		synctest.Wait()
		joined := c.rec.of(p, EventJoined)
		if len(joined) != 1 {
			t.Fatalf("joined %d times within %v of the seeds coming up, want once", len(joined), retryGapBound)
		}
		if need := retrySeeds/2 + 1; len(joined[0].Peers) != need {
			t.Errorf("joined with seeds %v, want %d", joined[0].Peers, need)
		}
		after := c.rec.filter(func(ev Event) bool {
			return ev.Node == p && ev.Kind == EventRegisterFailed && ev.Time.After(joined[0].Time)
		})
		if len(after) != 0 {
			t.Errorf("%d failed rounds reported after joining", len(after))
		}
		if err := c.runErr(p); err != nil {
			t.Errorf("Run returned %v", err)
		}
		t.Logf("%d failed rounds in %v, longest gap %v (bound %v); joined %v after the seeds came up",
			len(failed), retryDown, longest, retryGapBound, joined[0].Time.Sub(up))
	})
}
