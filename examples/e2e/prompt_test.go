//go:build linux

package e2e

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestPeerPrompt runs the peer program without -addr, answering its host
// and port prompts on standard input, and with -addr on a taken port.
func TestPeerPrompt(t *testing.T) {
	b := binaries(t)
	dir := t.TempDir()
	// Seeds that are not running: the peer starts, and keeps retrying to
	// register until it is stopped.
	seedPorts := freePorts(t, 2)
	config := writeConfig(t, dir, []string{localAddr(seedPorts[0]), localAddr(seedPorts[1])})

	// A port held by the test for the whole run.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	busyPort := busy.Addr().(*net.TCPAddr).Port

	n := 0
	run := func(t *testing.T, stdin string, args ...string) (*proc, string) {
		t.Helper()
		n++
		out := fmt.Sprintf("%s/out%d", dir, n)
		args = append([]string{"-config", config, "-out", out}, args...)
		return startProc(t, dir, fmt.Sprintf("peer%d", n), b.peer, stdin, args...), out
	}
	// starts checks that p comes up on port after answering the prompts,
	// then stops it with SIGINT and checks that it exits with status 0.
	starts := func(t *testing.T, p *proc, out string, port int) {
		t.Helper()
		addr := localAddr(port)
		file := outFile(out, "peer", addr)
		waitFor(t, "the peer to listen on "+addr, func() (bool, string, error) {
			if strings.Contains(readText(file), "peer listening on "+addr) {
				return true, "", nil
			}
			if p.exited() {
				return false, "", fmt.Errorf("peer exited (%v)\nstdout:\n%s\nstderr:\n%s", p.cmd.ProcessState, p.stdoutText(), p.stderrText())
			}
			return false, file + " has no \"peer listening on\" line", nil
		})
		p.signal(t, os.Interrupt)
		code, ok := p.waitExit(10 * time.Second)
		if !ok {
			t.Fatalf("peer still running 10s after SIGINT")
		}
		if code != 0 {
			t.Errorf("exit status %d after SIGINT, want 0\nstderr:\n%s", code, p.stderrText())
		}
		if !strings.Contains(readText(file), "peer left:") {
			t.Errorf("%s has no \"peer left:\" line after SIGINT:\n%s", file, readText(file))
		}
		checkNoCrash(t, p)
	}
	// fails checks that p exits with status 2 and a clean message on
	// stderr containing want.
	fails := func(t *testing.T, p *proc, want string) {
		t.Helper()
		code, ok := p.waitExit(10 * time.Second)
		if !ok {
			t.Fatalf("peer still running after 10s; stdout:\n%s", p.stdoutText())
		}
		stderr := p.stderrText()
		if code != 2 {
			t.Errorf("exit status %d, want 2; stderr:\n%s", code, stderr)
		}
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not contain %q:\n%s", want, stderr)
		}
		if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
			t.Errorf("stderr has a stack trace or panic:\n%s", stderr)
		}
	}
	// prompts checks the prompts and messages on p's stdout, in order.
	prompts := func(t *testing.T, p *proc, want ...string) {
		t.Helper()
		stdout := p.stdoutText()
		rest := stdout
		for _, w := range want {
			i := strings.Index(rest, w)
			if i < 0 {
				t.Errorf("stdout lacks %q (in this order: %q):\n%s", w, want, stdout)
				return
			}
			rest = rest[i+len(w):]
		}
	}

	t.Run("default host and free port", func(t *testing.T) {
		port := freePorts(t, 1)[0]
		p, out := run(t, fmt.Sprintf("\n%d\n", port))
		starts(t, p, out, port)
		prompts(t, p, "Host [127.0.0.1]: ", "Port: ", "peer listening on 127.0.0.1:"+fmt.Sprint(port))
		if c := strings.Count(p.stdoutText(), "Port: "); c != 1 {
			t.Errorf("asked for the port %d times, want 1", c)
		}
	})

	t.Run("invalid ports then a valid one", func(t *testing.T) {
		port := freePorts(t, 1)[0]
		p, out := run(t, fmt.Sprintf("127.0.0.1\nabc\n70000\n%d\n", port))
		starts(t, p, out, port)
		prompts(t, p,
			"Host [127.0.0.1]: ", "Port: ",
			`Invalid port: "abc" is not a port number (1-65535). Try again.`, "Port: ",
			"Invalid port: port 70000 is out of range 1-65535. Try again.", "Port: ",
			"peer listening on 127.0.0.1:"+fmt.Sprint(port))
	})

	t.Run("port in use then a free one", func(t *testing.T) {
		port := freePorts(t, 1)[0]
		p, out := run(t, fmt.Sprintf("\n%d\n\n%d\n", busyPort, port))
		starts(t, p, out, port)
		prompts(t, p,
			"Host [127.0.0.1]: ", "Port: ",
			fmt.Sprintf("Cannot use 127.0.0.1:%d: the port is already in use. Choose another.", busyPort),
			"Host [127.0.0.1]: ", "Port: ",
			"peer listening on 127.0.0.1:"+fmt.Sprint(port))
		if _, err := os.Stat(outFile(out, "peer", localAddr(busyPort))); err == nil {
			t.Errorf("an output file was created for the busy port %d", busyPort)
		}
	})

	t.Run("end of input", func(t *testing.T) {
		p, _ := run(t, "")
		fails(t, p, "peer: standard input ended before an address was entered")
		prompts(t, p, "Host [127.0.0.1]: ")
	})

	t.Run("end of input after an invalid port", func(t *testing.T) {
		p, _ := run(t, "\nabc\n")
		fails(t, p, "peer: standard input ended before an address was entered")
	})

	t.Run("addr flag with a port in use", func(t *testing.T) {
		p, _ := run(t, "", "-addr", localAddr(busyPort))
		fails(t, p, fmt.Sprintf("peer: -addr 127.0.0.1:%d: port already in use; choose another", busyPort))
	})
}
