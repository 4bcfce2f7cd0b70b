//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// node is one seed or peer address and its current process.
type node struct {
	role string // "seed" or "peer"
	addr string
	dir  string // the -out directory of the current process
	proc *proc
}

// file returns the path of the node's current output file.
func (n *node) file() string { return outFile(n.dir, n.role, n.addr) }

// cluster is a gossip network of separate seed and peer processes.
type cluster struct {
	t      *testing.T
	bins   bins
	dir    string // per-test temp dir: config, logs, output dirs
	out    string // default -out of every node
	config string
	seeds  []*node
	peers  []*node
	starts int     // process counter, for unique log names
	all    []*proc // every process started, restarted ones included
}

// newCluster starts nSeeds seed processes, one per seed address (-addr),
// and waits until each is listening. If one cannot bind its port (taken
// since it was picked), it starts over once on new ports.
func newCluster(t *testing.T, nSeeds int) *cluster {
	t.Helper()
	c := &cluster{t: t, bins: binaries(t), dir: t.TempDir()}
	c.out = filepath.Join(c.dir, "out")
	// Registered before any process starts, so it runs after every
	// process was killed (cleanups run last-in first-out).
	c.dumpOnFailure()
	for attempt := 1; ; attempt++ {
		var addrs []string
		for _, p := range freePorts(t, nSeeds) {
			addrs = append(addrs, localAddr(p))
		}
		c.config = writeConfig(t, c.dir, addrs)
		c.seeds = nil
		ok := true
		for _, a := range addrs {
			n := &node{role: "seed", addr: a, dir: c.out}
			c.seeds = append(c.seeds, n)
			if err := c.startSeed(n, c.out); err != nil {
				if attempt == 2 {
					t.Fatal(err)
				}
				t.Logf("retrying on new ports: %v", err)
				ok = false
				break
			}
		}
		if ok {
			return c
		}
		for _, n := range c.seeds {
			if n.proc != nil {
				n.proc.kill()
			}
		}
	}
}

func (c *cluster) logName(n *node) string {
	c.starts++
	return fmt.Sprintf("%s-%s-%d", n.role, strings.ReplaceAll(n.addr, ":", "-"), c.starts)
}

// startSeed starts (or restarts) seed n writing into outDir and waits
// until it listens.
func (c *cluster) startSeed(n *node, outDir string) error {
	n.dir = outDir
	n.proc = startProc(c.t, c.dir, c.logName(n), c.bins.seed, "",
		"-addr", n.addr, "-config", c.config, "-out", outDir)
	c.all = append(c.all, n.proc)
	return c.waitListening(n, "seed listening on "+n.addr)
}

// startPeer starts (or restarts) peer n writing into outDir and waits
// until it listens.
func (c *cluster) startPeer(n *node, outDir string, args []string) error {
	n.dir = outDir
	n.proc = startProc(c.t, c.dir, c.logName(n), c.bins.peer, "",
		append([]string{"-addr", n.addr, "-config", c.config, "-out", outDir}, args...)...)
	c.all = append(c.all, n.proc)
	return c.waitListening(n, "peer listening on "+n.addr)
}

// waitListening waits until n's output file has its first line, or its
// process ends, which is an error.
func (c *cluster) waitListening(n *node, line string) error {
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		if strings.Contains(readText(n.file()), line) {
			return nil
		}
		if n.proc.exited() {
			return fmt.Errorf("%s %s exited before listening (%v); stderr:\n%s",
				n.role, n.addr, n.proc.cmd.ProcessState, n.proc.stderrText())
		}
		time.Sleep(pollInterval / 3)
	}
	return fmt.Errorf("%s %s not listening after %v", n.role, n.addr, waitTimeout)
}

// addPeers starts count peers with the given extra flags, on new ports;
// a peer whose port was taken meanwhile is retried once on another.
func (c *cluster) addPeers(count int, args ...string) []*node {
	c.t.Helper()
	var added []*node
	for _, port := range freePorts(c.t, count) {
		n := &node{role: "peer", addr: localAddr(port)}
		if err := c.startPeer(n, c.out, args); err != nil {
			c.t.Logf("retrying on a new port: %v", err)
			n.proc.kill()
			n.addr = localAddr(freePorts(c.t, 1)[0])
			if err := c.startPeer(n, c.out, args); err != nil {
				c.t.Fatal(err)
			}
		}
		added = append(added, n)
	}
	c.peers = append(c.peers, added...)
	return added
}

// aliveErr returns an error if a process of nodes has ended.
func aliveErr(nodes []*node) error {
	for _, n := range nodes {
		if n.proc.exited() {
			return fmt.Errorf("%s %s exited unexpectedly (%v); stderr:\n%s",
				n.role, n.addr, n.proc.cmd.ProcessState, n.proc.stderrText())
		}
	}
	return nil
}

// waitJoined waits until every peer of nodes has joined, has at least two
// neighbours and has received a few messages.
func (c *cluster) waitJoined(nodes []*node) {
	c.t.Helper()
	waitFor(c.t, "every peer joined, with 2 neighbours, and delivered messages", func() (bool, string, error) {
		var b strings.Builder
		for _, n := range nodes {
			p := readPeer(n.file())
			if !p.joined || len(p.neighbours) < 2 || len(p.received) < 3 {
				fmt.Fprintf(&b, "%s: joined=%v, %d neighbours, %d messages received\n", n.addr, p.joined, len(p.neighbours), len(p.received))
			}
		}
		return b.Len() == 0, b.String(), aliveErr(nodes)
	})
}

// Output lines, after the "15:04:05.000 " time prefix.
var (
	// <ts>:<host>:<port>:<n> from <relayer>
	reMessage = regexp.MustCompile(`^(\d+\.\d{3}:(\S+:\d+):\d+) from (\S+)$`)
	// originated <ts>:<host>:<port>:<n> to N neighbours
	reOriginated = regexp.MustCompile(`^originated (\d+\.\d{3}:(\S+:\d+):\d+) to (\d+) neighbours$`)
	// joined: registered with 2 seeds [a b]
	reJoined = regexp.MustCompile(`^joined: registered with (\d+) seeds \[(.*)\]$`)
	// registered with seed <addr>
	reRegisteredWith = regexp.MustCompile(`^registered with seed (\S+)$`)
	// neighbour connected: <addr> (inbound) / neighbour lost: <addr> (left)
	reNeighbour = regexp.MustCompile(`^neighbour (connected|lost): (\S+) \(`)
	// Dead Node:<IP>:<Port>:<timestamp>:<reporter> sent to seeds [a b]
	reDeadSent = regexp.MustCompile(`^Dead Node:([^:\s]+:\d+):(\d+\.\d{3}):([^:\s]+:\d+) sent to seeds \[(.*)\]$`)
	// Dead Node:<IP>:<Port>:<timestamp>:<reporter> received from <reporter>; probing
	reDeadReceived = regexp.MustCompile(`^Dead Node:([^:\s]+:\d+):(\d+\.\d{3}):([^:\s]+:\d+) received from (\S+); probing$`)
	// registered peer <addr>; peer list [...]
	reRegisteredPeer = regexp.MustCompile(`^registered peer (\S+); peer list \[.*\]$`)
	// removed peer <addr> (<reason>); peer list [...]
	reRemoved = regexp.MustCompile(`^removed peer (\S+) \(([^)]*)\); peer list \[.*\]$`)
)

// lines returns the complete lines of an output file without their time
// prefix. A last line without its newline (being written) is left out.
func lines(path string) []string {
	text := readText(path)
	if i := strings.LastIndexByte(text, '\n'); i >= 0 {
		text = text[:i]
	} else {
		return nil
	}
	var out []string
	for _, l := range strings.Split(text, "\n") {
		// "15:04:05.000 text"
		if len(l) > 13 && l[12] == ' ' {
			out = append(out, l[13:])
		}
	}
	return out
}

// deadReport is a parsed "Dead Node:<IP>:<Port>:<timestamp>:<reporter>".
type deadReport struct {
	dead, reporter string
	stamp          time.Time
	to             []string // peer file: the seeds it was sent to
	from           string   // seed file: who sent it
}

func parseStamp(s string) time.Time {
	f, _ := strconv.ParseFloat(s, 64)
	return time.UnixMilli(int64(f*1000 + 0.5))
}

// peerOut is what a peer's output file says.
type peerOut struct {
	joined     bool
	seeds      []string            // from the joined line
	registered []string            // every "registered with seed" line
	originated []string            // message texts, in order
	received   map[string]string   // message text → relayer
	byOrigin   map[string][]string // origin → texts received
	neighbours map[string]bool     // current neighbours
	dead       []deadReport
}

func readPeer(path string) *peerOut {
	p := &peerOut{received: map[string]string{}, byOrigin: map[string][]string{}, neighbours: map[string]bool{}}
	for _, l := range lines(path) {
		if m := reMessage.FindStringSubmatch(l); m != nil {
			p.received[m[1]] = m[3]
			p.byOrigin[m[2]] = append(p.byOrigin[m[2]], m[1])
		} else if m := reOriginated.FindStringSubmatch(l); m != nil {
			p.originated = append(p.originated, m[1])
		} else if m := reJoined.FindStringSubmatch(l); m != nil && !p.joined {
			p.joined = true
			p.seeds = strings.Fields(m[2])
		} else if m := reNeighbour.FindStringSubmatch(l); m != nil {
			if m[1] == "connected" {
				p.neighbours[m[2]] = true
			} else {
				delete(p.neighbours, m[2])
			}
		} else if m := reRegisteredWith.FindStringSubmatch(l); m != nil {
			p.registered = append(p.registered, m[1])
		} else if m := reDeadSent.FindStringSubmatch(l); m != nil {
			p.dead = append(p.dead, deadReport{dead: m[1], stamp: parseStamp(m[2]), reporter: m[3], to: strings.Fields(m[4])})
		}
	}
	return p
}

// seedOut is what a seed's output file says.
type seedOut struct {
	registered []string            // "registered peer" subjects, in order
	removed    map[string][]string // peer → removal reasons
	dead       []deadReport
}

func readSeed(path string) *seedOut {
	s := &seedOut{removed: map[string][]string{}}
	for _, l := range lines(path) {
		if m := reRegisteredPeer.FindStringSubmatch(l); m != nil {
			s.registered = append(s.registered, m[1])
		} else if m := reRemoved.FindStringSubmatch(l); m != nil {
			s.removed[m[1]] = append(s.removed[m[1]], m[2])
		} else if m := reDeadReceived.FindStringSubmatch(l); m != nil {
			s.dead = append(s.dead, deadReport{dead: m[1], stamp: parseStamp(m[2]), reporter: m[3], from: m[4]})
		}
	}
	return s
}

// missingMessages returns, for each receiver among nodes, the messages
// originated by the other nodes (according to their own files) that it
// has not received, as text for a failure message, and whether every
// originator has sent want messages.
func missingMessages(nodes []*node, want int) (allSent bool, missing string) {
	outs := make(map[string]*peerOut, len(nodes))
	for _, n := range nodes {
		outs[n.addr] = readPeer(n.file())
	}
	var b strings.Builder
	allSent = true
	for _, n := range nodes {
		if got := len(outs[n.addr].originated); got < want {
			allSent = false
			fmt.Fprintf(&b, "%s originated %d of %d messages\n", n.addr, got, want)
		}
	}
	for _, rcv := range nodes {
		for _, org := range nodes {
			if org == rcv {
				continue
			}
			var lost []string
			for _, text := range outs[org.addr].originated {
				if _, ok := outs[rcv.addr].received[text]; !ok {
					lost = append(lost, text)
				}
			}
			if len(lost) > 0 {
				fmt.Fprintf(&b, "%s lacks %d of %d messages from %s, e.g. %s\n",
					rcv.addr, len(lost), len(outs[org.addr].originated), org.addr, lost[0])
			}
		}
	}
	return allSent, b.String()
}

// addrsOf returns the addresses of nodes.
func addrsOf(nodes []*node) []string {
	var a []string
	for _, n := range nodes {
		a = append(a, n.addr)
	}
	return a
}

// without returns nodes less those in drop.
func without(nodes []*node, drop ...*node) []*node {
	return slices.DeleteFunc(slices.Clone(nodes), func(n *node) bool { return slices.Contains(drop, n) })
}

// seedFiles returns the output files of every seed process started, in
// every directory used (a restarted seed writes a new file elsewhere).
func seedFiles(dirs ...string) []string {
	var files []string
	seen := map[string]bool{}
	for _, d := range dirs {
		if seen[d] {
			continue
		}
		seen[d] = true
		m, _ := filepath.Glob(filepath.Join(d, "seed-*.txt"))
		files = append(files, m...)
	}
	slices.Sort(files)
	return files
}

// dumpOnFailure copies the per-test directory into $E2E_KEEP/<test name>,
// if E2E_KEEP is set, so the output files can be inspected: when the test
// fails, or always with E2E_KEEP_ALL=1.
func (c *cluster) dumpOnFailure() {
	c.t.Cleanup(func() {
		keep := os.Getenv("E2E_KEEP")
		if keep == "" || !c.t.Failed() && os.Getenv("E2E_KEEP_ALL") != "1" {
			return
		}
		dst := filepath.Join(keep, strings.ReplaceAll(c.t.Name(), "/", "_"))
		if err := os.CopyFS(dst, os.DirFS(c.dir)); err != nil {
			c.t.Logf("keeping %s: %v", c.dir, err)
			return
		}
		c.t.Logf("output kept in %s", dst)
	})
}
