//go:build linux

package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// binDir holds the seed and peer binaries built for this test run.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gossip-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildErr  error
)

// bins are the paths of the built programs.
type bins struct{ seed, peer string }

// binaries builds examples/seed and examples/peer once per test run and
// returns their paths. With E2E_RACE=1 they are built with -race, and a
// data race they report fails the test (see checkNoCrash).
func binaries(t *testing.T) bins {
	t.Helper()
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		for _, name := range []string{"seed", "peer"} {
			args := []string{"build", "-o", filepath.Join(binDir, name)}
			if os.Getenv("E2E_RACE") == "1" {
				args = append(args, "-race") // slower programs that report data races
			}
			cmd := exec.Command(goTool(), append(args, "./examples/"+name)...)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build ./examples/%s: %v\n%s", name, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bins{seed: filepath.Join(binDir, "seed"), peer: filepath.Join(binDir, "peer")}
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if r := os.Getenv("GOROOT"); r != "" {
		return filepath.Join(r, "bin", "go")
	}
	return "go"
}

// moduleRoot walks up from the working directory (the package directory
// under go test) to the directory holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			if !bytes.Contains(data, []byte("module github.com/gossip-dev/gossip\n")) {
				return "", fmt.Errorf("%s/go.mod is not the gossip module", dir)
			}
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// freePorts returns n distinct ports of 127.0.0.1 that could be bound a
// moment ago.
//
// They are taken below the kernel's ephemeral range when there is room:
// the kernel never hands those out as the source port of an outbound
// connection, so a port stays free while the nodes dial each other, and a
// node restarted on the same address finds it free again. Otherwise they
// come from listening on 127.0.0.1:0.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	lo := ephemeralLow()
	var (
		lns   []net.Listener
		ports []int
	)
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	const base = 20000
	for tries := 0; len(ports) < n && lo-base > 1000 && tries < 50*n; tries++ {
		p := base + rand.IntN(lo-base)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		lns = append(lns, l)
		ports = append(ports, p)
	}
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// ephemeralLow returns the first port of the kernel's ephemeral range, or
// 0 if it is unknown.
func ephemeralLow() int {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) < 1 {
		return 0
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return lo
}

func localAddr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// writeConfig writes a seed list file for addrs in dir and returns its path.
func writeConfig(t *testing.T, dir string, addrs []string) string {
	t.Helper()
	path := filepath.Join(dir, "config.txt")
	text := "# written by the e2e test\n" + strings.Join(addrs, "\n") + "\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// outFile returns the path of a node's output file in dir, named as the
// programs document it: <role>-<host>-<port>.txt.
func outFile(dir, role, addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return filepath.Join(dir, role+"-"+host+"-"+port+".txt")
}

// proc is one started program.
type proc struct {
	name           string
	cmd            *exec.Cmd
	done           chan struct{} // closed once the process has been waited for
	stdout, stderr string        // paths of its captured streams
	frozen         atomic.Bool
}

// startProc starts bin with args. Its stdout and stderr go to files
// <name>.stdout and <name>.stderr in logDir; stdin is the text of stdin,
// or /dev/null if it is empty. The process is killed and waited for in
// t.Cleanup if it still runs then.
func startProc(t *testing.T, logDir, name, bin, stdin string, args ...string) *proc {
	t.Helper()
	p := &proc{
		name:   name,
		done:   make(chan struct{}),
		stdout: filepath.Join(logDir, name+".stdout"),
		stderr: filepath.Join(logDir, name+".stderr"),
	}
	outF, err := os.Create(p.stdout)
	if err != nil {
		t.Fatal(err)
	}
	defer outF.Close()
	errF, err := os.Create(p.stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer errF.Close()
	inPath := os.DevNull
	if stdin != "" {
		inPath = filepath.Join(logDir, name+".stdin")
		if err := os.WriteFile(inPath, []byte(stdin), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inF, err := os.Open(inPath)
	if err != nil {
		t.Fatal(err)
	}
	defer inF.Close()

	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = logDir // anything written to a relative path lands here
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = inF, outF, errF
	setDeathSignal(p.cmd)
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait() // *os.File streams: no copying goroutines
		close(p.done)
	}()
	t.Cleanup(p.kill)
	return p
}

// setDeathSignal makes the kernel kill the child if the test process dies
// (a timeout panic, a ^C), so that no program outlives the test run.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig unless the process has already ended.
func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if p.exited() {
		t.Fatalf("%s: cannot send %v: it already exited (%v)\nstderr:\n%s", p.name, sig, p.cmd.ProcessState, p.stderrText())
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: signal %v: %v", p.name, sig, err)
	}
}

// freeze stops the process with SIGSTOP; kill resumes it before killing.
func (p *proc) freeze(t *testing.T) {
	t.Helper()
	p.frozen.Store(true)
	p.signal(t, syscall.SIGSTOP)
}

// killNow sends SIGKILL and waits for the process to end.
func (p *proc) killNow(t *testing.T) {
	t.Helper()
	p.signal(t, syscall.SIGKILL)
	if _, ok := p.waitExit(10 * time.Second); !ok {
		t.Fatalf("%s did not end 10s after SIGKILL", p.name)
	}
}

// kill ends the process if it still runs and waits for it.
func (p *proc) kill() {
	if p.exited() {
		return
	}
	if p.frozen.Load() {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// waitExit waits up to d for the process to end and returns its exit
// status (-1 if a signal ended it).
func (p *proc) waitExit(d time.Duration) (int, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), true
	case <-timer.C:
		return 0, false
	}
}

func (p *proc) stdoutText() string { return readText(p.stdout) }
func (p *proc) stderrText() string { return readText(p.stderr) }

// readText returns the file's content, or "" if it cannot be read (yet).
func readText(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(data)
}

// pollInterval is how often the tests look at the output files.
const pollInterval = 75 * time.Millisecond

// waitTimeout bounds every wait; reaching it means the test failed.
const waitTimeout = 60 * time.Second

// waitFor polls cond until it reports done, and fails the test when
// waitTimeout (or the test's own deadline) comes first. cond returns
// whether the wait is over, a description of what is still missing for the
// failure message, and a non-nil error to fail at once (a process died).
func waitFor(t *testing.T, what string, cond func() (done bool, missing string, err error)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	if d, ok := t.Deadline(); ok && d.Add(-5*time.Second).Before(deadline) {
		deadline = d.Add(-5 * time.Second)
	}
	start := time.Now()
	for {
		done, missing, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if done {
			t.Logf("%s after %v", what, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; still missing:\n%s", time.Since(start).Round(time.Millisecond), what, missing)
		}
		time.Sleep(pollInterval)
	}
}

// badOutput returns the lines of text that show a crash, a data race or
// an error-level log record.
func badOutput(text string) []string {
	var bad []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, "panic") || strings.HasPrefix(l, "goroutine ") ||
			strings.Contains(l, "DATA RACE") || strings.Contains(l, "level=ERROR") {
			bad = append(bad, l)
		}
	}
	return bad
}

// checkNoCrash fails the test if any process's stdout or stderr shows a
// panic, a data race or an error-level log record.
func checkNoCrash(t *testing.T, procs ...*proc) {
	t.Helper()
	for _, p := range procs {
		for _, stream := range []string{p.stdout, p.stderr} {
			if bad := badOutput(readText(stream)); len(bad) > 0 {
				t.Errorf("%s (%s) has error output:\n%s", p.name, filepath.Base(stream), strings.Join(bad, "\n"))
			}
		}
	}
}
