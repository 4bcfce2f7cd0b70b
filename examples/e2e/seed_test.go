//go:build linux

package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSeedStartsEveryConfiguredSeed runs the seed program without -addr
// and checks that it starts every seed of the config in one process: each
// has its output file, accepts a TCP connection and takes part in a
// peer's registration; Ctrl-C then stops them all with status 0.
func TestSeedStartsEveryConfiguredSeed(t *testing.T) {
	b := binaries(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	var addrs []string
	for _, p := range freePorts(t, 3) {
		addrs = append(addrs, localAddr(p))
	}
	config := writeConfig(t, dir, addrs)
	seed := startProc(t, dir, "seeds", b.seed, "", "-config", config, "-out", out)

	waitFor(t, "every seed of the config to listen", func() (bool, string, error) {
		var missing strings.Builder
		for _, a := range addrs {
			if !strings.Contains(readText(outFile(out, "seed", a)), "seed listening on "+a) {
				fmt.Fprintf(&missing, "%s has no \"seed listening on %s\" line\n", outFile(out, "seed", a), a)
			}
		}
		var err error
		if seed.exited() {
			err = fmt.Errorf("seed program exited (%v); stderr:\n%s", seed.cmd.ProcessState, seed.stderrText())
		}
		return missing.Len() == 0, missing.String(), err
	})
	for _, a := range addrs {
		conn, err := net.DialTimeout("tcp", a, 5*time.Second)
		if err != nil {
			t.Errorf("seed %s does not accept connections: %v", a, err)
			continue
		}
		conn.Close()
	}
	if files, _ := filepath.Glob(filepath.Join(out, "*.txt")); len(files) != len(addrs) {
		t.Errorf("output files %v, want one per seed", files)
	}

	// A peer registers with a majority (2 of 3), chosen at random; the
	// seeds it chose record the registration.
	peerAddr := localAddr(freePorts(t, 1)[0])
	peer := startProc(t, dir, "peer", b.peer, "", "-addr", peerAddr, "-config", config, "-out", out,
		"-gossip-interval", "200ms", "-liveness-interval", "500ms")
	var chosen []string
	waitFor(t, "the peer to register with a majority of the seeds", func() (bool, string, error) {
		p := readPeer(outFile(out, "peer", peerAddr))
		var err error
		if peer.exited() {
			err = fmt.Errorf("peer exited (%v); stderr:\n%s", peer.cmd.ProcessState, peer.stderrText())
		}
		chosen = p.seeds
		return p.joined, "no \"joined:\" line in the peer's file", err
	})
	if len(chosen) != 2 {
		t.Errorf("peer joined with seeds %v, want 2 of %v", chosen, addrs)
	}
	for _, a := range chosen {
		if !slices.Contains(readSeed(outFile(out, "seed", a)).registered, peerAddr) {
			t.Errorf("seed %s: no \"registered peer %s\" line", a, peerAddr)
		}
	}

	stopAt := time.Now()
	peer.signal(t, os.Interrupt)
	if code, ok := peer.waitExit(10 * time.Second); !ok || code != 0 {
		t.Errorf("peer after SIGINT: exited=%v status %d, want 0", ok, code)
	}
	seed.signal(t, os.Interrupt)
	code, ok := seed.waitExit(10 * time.Second)
	if !ok {
		t.Fatal("seed program still running 10s after SIGINT")
	}
	t.Logf("peer and seeds stopped after %v", time.Since(stopAt).Round(time.Millisecond))
	if code != 0 {
		t.Errorf("seed program exited with status %d after SIGINT, want 0; stderr:\n%s", code, seed.stderrText())
	}
	for _, a := range addrs {
		if ls := lines(outFile(out, "seed", a)); len(ls) == 0 || !strings.HasPrefix(ls[len(ls)-1], "seed stopped: ") {
			t.Errorf("%s does not end with a \"seed stopped:\" line", outFile(out, "seed", a))
		}
	}
	checkNoCrash(t, seed, peer)
}

// TestSeedBadAddr runs the seed program with an -addr it cannot start: not
// in the config, malformed, or on a port already in use. Each exits with
// status 2 and a message that says why, without a stack trace or an output
// file.
func TestSeedBadAddr(t *testing.T) {
	b := binaries(t)
	dir := t.TempDir()
	ports := freePorts(t, 3)
	busy, err := net.Listen("tcp", localAddr(ports[2]))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	config := writeConfig(t, dir, []string{localAddr(ports[0]), localAddr(ports[2])})
	notSeed := localAddr(ports[1])

	for i, tc := range []struct {
		name, addr, want string
	}{
		{"not in config", notSeed, "-addr " + notSeed + " is not a seed in " + config},
		{"malformed", "127.0.0.1", "-addr"},
		{"port in use", localAddr(ports[2]), "seed " + localAddr(ports[2]) + ": port already in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, fmt.Sprintf("out%d", i))
			p := startProc(t, dir, fmt.Sprintf("seed%d", i), b.seed, "", "-addr", tc.addr, "-config", config, "-out", out)
			code, ok := p.waitExit(10 * time.Second)
			if !ok {
				t.Fatalf("seed -addr %s still running after 10s", tc.addr)
			}
			stderr := p.stderrText()
			if code != 2 {
				t.Errorf("exit status %d, want 2; stderr:\n%s", code, stderr)
			}
			if !strings.HasPrefix(stderr, "seed: ") || !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q, want a \"seed: \" line containing %q", stderr, tc.want)
			}
			if n := strings.Count(strings.TrimSpace(stderr), "\n"); n > 0 {
				t.Errorf("stderr has %d lines, want one message:\n%s", n+1, stderr)
			}
			if files, _ := filepath.Glob(filepath.Join(out, "*")); len(files) > 0 {
				t.Errorf("output files written: %v", files)
			}
			checkNoCrash(t, p)
		})
	}
}
