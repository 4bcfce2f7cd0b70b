//go:build linux

package e2e

import (
	"flag"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

var orderSeed = flag.Uint64("e2e.order-seed", 0, "seed of TestGracefulStopAnyOrder's stop order (0: random, logged)")

// TestGracefulStopAnyOrder stops every process of a network of 3 seeds and
// 5 peers with SIGINT, one after the other in a random order, and checks
// that each exits cleanly with status 0, that a peer that leaves is
// removed as "left" by its seeds still running (before the next process
// stops), and that nobody is removed as dead.
func TestGracefulStopAnyOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 8 processes")
	}
	c := newCluster(t, 3)
	peers := c.addPeers(5, "-gossip-interval", "200ms", "-liveness-interval", "500ms", "-messages", "20")
	c.waitJoined(peers)

	seed := *orderSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	order := append(slices.Clone(c.seeds), c.peers...)
	rand.New(rand.NewPCG(seed, seed)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	var names []string
	for _, n := range order {
		names = append(names, n.role+" "+n.addr)
	}
	t.Logf("stop order (-e2e.order-seed=%d): %s", seed, strings.Join(names, ", "))

	stoppedAt := map[string]int{} // address → position in order
	for i, n := range order {
		start := time.Now()
		n.proc.signal(t, os.Interrupt)
		code, ok := n.proc.waitExit(5 * time.Second)
		if !ok {
			t.Fatalf("%s %s still running 5s after SIGINT", n.role, n.addr)
		}
		if code != 0 {
			t.Errorf("%s %s exited with status %d after SIGINT, want 0; stderr:\n%s", n.role, n.addr, code, n.proc.stderrText())
		}
		t.Logf("%s %s exited %d after %v", n.role, n.addr, code, time.Since(start).Round(time.Millisecond))
		stoppedAt[n.addr] = i
		if n.role == "peer" {
			// Its leave is on the wire when it exits; give its seeds still
			// running the time to handle it before the next stop, which
			// may be theirs.
			waitLeft(t, n, c.seeds, stoppedAt)
		}
	}
	checkNoCrash(t, c.all...)

	// Each file ends with the program's goodbye line.
	for _, n := range order {
		want := map[string]string{"seed": "seed stopped: ", "peer": "peer left: "}[n.role]
		if ls := lines(n.file()); len(ls) == 0 || !strings.HasPrefix(ls[len(ls)-1], want) {
			t.Errorf("%s does not end with a %q line", n.file(), want)
		}
	}

	seedOuts := map[string]*seedOut{}
	for _, s := range c.seeds {
		seedOuts[s.addr] = readSeed(s.file())
		for addr, reasons := range seedOuts[s.addr].removed {
			if slices.Contains(reasons, "dead") {
				t.Errorf("seed %s removed %s as dead", s.addr, addr)
			}
		}
	}
	for _, n := range peers {
		p := readPeer(n.file())
		for _, s := range c.seeds {
			registered := slices.Contains(p.seeds, s.addr) || slices.Contains(p.registered, s.addr)
			if !registered || stoppedAt[s.addr] < stoppedAt[n.addr] {
				continue // not its seed, or stopped before the peer left
			}
			if !slices.Contains(seedOuts[s.addr].removed[n.addr], "left") {
				t.Errorf("seed %s (stopped after peer %s) has no \"removed peer %s (left)\" line", s.addr, n.addr, n.addr)
			}
		}
	}
}

// waitLeft waits until every seed that peer n registered with, and that is
// not stopped yet, has removed n as "left".
func waitLeft(t *testing.T, n *node, seeds []*node, stoppedAt map[string]int) {
	t.Helper()
	p := readPeer(n.file())
	var running []*node
	for _, s := range seeds {
		_, stopped := stoppedAt[s.addr]
		if !stopped && (slices.Contains(p.seeds, s.addr) || slices.Contains(p.registered, s.addr)) {
			running = append(running, s)
		}
	}
	waitFor(t, "seeds of "+n.addr+" removing it as left", func() (bool, string, error) {
		var missing []string
		for _, s := range running {
			if !slices.Contains(readSeed(s.file()).removed[n.addr], "left") {
				missing = append(missing, s.addr)
			}
		}
		return len(missing) == 0, strings.Join(missing, " "), nil
	})
}
