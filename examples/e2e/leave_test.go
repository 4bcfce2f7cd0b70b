//go:build linux

package e2e

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// neighbour lost: <addr> (<reason>)
var reNeighbourLost = regexp.MustCompile(`^neighbour lost: (\S+) \((.*)\)$`)

// lostReasons returns the reasons of the "neighbour lost: addr (...)"
// lines of a peer's file.
func lostReasons(path, addr string) []string {
	var reasons []string
	for _, l := range lines(path) {
		if m := reNeighbourLost.FindStringSubmatch(l); m != nil && m[1] == addr {
			reasons = append(reasons, m[2])
		}
	}
	return reasons
}

// TestPeerCtrlCLeaves stops one peer of a running network with SIGINT
// (Ctrl-C) and keeps the others running for longer than it would take to
// detect it as dead. The README and the issue promise that a peer closed
// with Ctrl-C "tells its seeds and neighbours, so nobody has to detect it
// as dead": the peer exits 0, every neighbour it had writes "neighbour
// lost: <addr> (left)", every seed it registered with writes "removed peer
// <addr> (left)", and no file anywhere has a "Dead Node:<addr>:" line.
func TestPeerCtrlCLeaves(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 9 processes for ~10s")
	}
	const (
		gossipInterval   = 200 * time.Millisecond
		livenessInterval = 500 * time.Millisecond
		misses           = 3
	)
	c := newCluster(t, 3)
	peers := c.addPeers(6, "-gossip-interval", gossipInterval.String(), "-liveness-interval", livenessInterval.String(),
		"-misses", fmt.Sprint(misses), "-messages", "200")
	c.waitJoined(peers)

	leaver, stayed := peers[0], peers[1:]
	before := readPeer(leaver.file())
	seeds := slices.Compact(slices.Sorted(slices.Values(slices.Concat(before.seeds, before.registered))))
	leaver.proc.signal(t, os.Interrupt)
	code, ok := leaver.proc.waitExit(10 * time.Second)
	if !ok {
		t.Fatalf("peer %s still running 10s after SIGINT", leaver.addr)
	}
	if code != 0 {
		t.Fatalf("peer %s exited with status %d after SIGINT, want 0; stderr:\n%s", leaver.addr, code, leaver.proc.stderrText())
	}
	// What the peer had when it left, from its own complete file: it
	// sends its goodbye to these neighbours and seeds.
	after := readPeer(leaver.file())
	var nbrs []string
	for a := range after.neighbours {
		nbrs = append(nbrs, a)
	}
	slices.Sort(nbrs)
	if len(nbrs) == 0 {
		t.Fatalf("%s had no neighbour when it left", leaver.addr)
	}
	if ls := lines(leaver.file()); len(ls) == 0 || !strings.HasPrefix(ls[len(ls)-1], "peer left: ") {
		t.Errorf("%s does not end with a \"peer left:\" line", leaver.file())
	}
	t.Logf("%s left with neighbours %v, registered with seeds %v", leaver.addr, nbrs, seeds)

	byAddr := map[string]*node{}
	for _, n := range c.peers {
		byAddr[n.addr] = n
	}
	waitFor(t, "its neighbours and seeds to record the leave", func() (bool, string, error) {
		var b strings.Builder
		for _, a := range nbrs {
			if r := lostReasons(byAddr[a].file(), leaver.addr); !slices.Contains(r, "left") {
				fmt.Fprintf(&b, "neighbour %s has no \"neighbour lost: %s (left)\" line (reasons %v)\n", a, leaver.addr, r)
			}
		}
		for _, s := range c.seeds {
			if !slices.Contains(seeds, s.addr) {
				continue
			}
			if r := readSeed(s.file()).removed[leaver.addr]; !slices.Contains(r, "left") {
				fmt.Fprintf(&b, "seed %s has no \"removed peer %s (left)\" line (reasons %v)\n", s.addr, leaver.addr, r)
			}
		}
		return b.Len() == 0, b.String(), aliveErr(slices.Concat(stayed, c.seeds))
	})

	// Keep the network running for longer than a neighbour needs to
	// declare a silent peer dead (misses liveness rounds, plus one), as
	// measured by the messages every remaining peer keeps originating,
	// one per gossip interval: no wall-clock sleep.
	rounds := int((misses+1)*livenessInterval/gossipInterval) + 1
	base := map[string]int{}
	for _, n := range stayed {
		base[n.addr] = len(readPeer(n.file()).originated)
	}
	waitFor(t, fmt.Sprintf("every remaining peer to originate %d more messages (%v > %d x %v)",
		rounds, time.Duration(rounds)*gossipInterval, misses, livenessInterval), func() (bool, string, error) {
		var b strings.Builder
		for _, n := range stayed {
			if got := len(readPeer(n.file()).originated); got < base[n.addr]+rounds {
				fmt.Fprintf(&b, "%s originated %d, want %d\n", n.addr, got, base[n.addr]+rounds)
			}
		}
		return b.Len() == 0, b.String(), aliveErr(slices.Concat(stayed, c.seeds))
	})

	// Nobody detected it as dead.
	dead := "Dead Node:" + leaver.addr + ":"
	for _, n := range slices.Concat(c.peers, c.seeds) {
		for _, l := range lines(n.file()) {
			if strings.HasPrefix(l, dead) {
				t.Errorf("%s %s: %q", n.role, n.addr, l)
			}
		}
	}
	for _, n := range stayed {
		for _, r := range lostReasons(n.file(), leaver.addr) {
			if r != "left" {
				t.Errorf("peer %s lost %s with reason %q, want only \"left\"", n.addr, leaver.addr, r)
			}
		}
	}
	for _, s := range c.seeds {
		if r := readSeed(s.file()).removed[leaver.addr]; slices.Contains(r, "dead") {
			t.Errorf("seed %s removed %s as dead (reasons %v)", s.addr, leaver.addr, r)
		}
	}
	checkNoCrash(t, c.all...)
}
