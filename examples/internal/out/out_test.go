package out

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gossip-dev/gossip"
	"github.com/gossip-dev/gossip/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// at is 15:04:05.125 local time.
var at = time.Date(2025, 11, 25, 15, 4, 5, 125_000_000, time.Local)

func TestFormatLine(t *testing.T) {
	tests := []struct {
		node, text, want string
	}{
		{"", "registered with seed 127.0.0.1:7001", "15:04:05.125 registered with seed 127.0.0.1:7001\n"},
		{"127.0.0.1:7004", "hello", "15:04:05.125 127.0.0.1:7004 hello\n"},
		{"", "", "15:04:05.125 \n"},
	}
	for _, tt := range tests {
		if got := FormatLine(at, tt.node, tt.text); got != tt.want {
			t.Errorf("FormatLine(%q, %q) = %q, want %q", tt.node, tt.text, got, tt.want)
		}
	}
}

func TestFileName(t *testing.T) {
	tests := []struct{ role, addr, want string }{
		{"seed", "127.0.0.1:7001", "seed-127.0.0.1-7001.txt"},
		{"peer", "[::1]:7004", "peer-__1-7004.txt"},
		{"peer", "example.com:80", "peer-example.com-80.txt"},
		{"peer", "no-port", "peer-no-port.txt"},
	}
	for _, tt := range tests {
		if got := FileName(tt.role, tt.addr); got != tt.want {
			t.Errorf("FileName(%q, %q) = %q, want %q", tt.role, tt.addr, got, tt.want)
		}
	}
}

func TestWriterEvents(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b") // created by Create
	var console bytes.Buffer
	w, err := Create(dir, "peer", "127.0.0.1:7004", NewConsole(&console))
	if err != nil {
		t.Fatal(err)
	}
	stamp := time.UnixMilli(1764081234125)
	evs := []gossip.Event{
		{Kind: gossip.EventMessage, Time: at, Node: "127.0.0.1:7004", From: "127.0.0.1:7005",
			Payload: gossip.SpecMessage(stamp, "127.0.0.1:7006", 3)},
		{Kind: gossip.EventDeadReportSent, Time: at, Node: "127.0.0.1:7004", Addr: "127.0.0.1:7005",
			Stamp: stamp, Peers: []string{"127.0.0.1:7001"}},
		// Seed events, in one file for the test's sake.
		{Kind: gossip.EventDeadReportRefuted, Time: at, Node: "127.0.0.1:7001", Addr: "127.0.0.1:7006",
			Peers: []string{"127.0.0.1:7004"}},
		{Kind: gossip.EventDeadReportConfirmed, Time: at, Node: "127.0.0.1:7001", Addr: "127.0.0.1:7005",
			Peers: []string{"127.0.0.1:7004"}},
		{Kind: gossip.EventPeerRemoved, Time: at, Node: "127.0.0.1:7001", Addr: "127.0.0.1:7005",
			Reason: "dead", Peers: []string{"127.0.0.1:7006"}},
		{Kind: gossip.EventPeerRemoved, Time: at, Node: "127.0.0.1:7001", Addr: "127.0.0.1:7006",
			Reason: "left", Peers: []string{}},
	}
	for _, ev := range evs {
		w.Handle(ev)
	}
	w.Line(at, "text with newline\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.Line(at, "after close") // dropped, no panic
	if err := w.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}

	wantFile := "15:04:05.125 1764081234.125:127.0.0.1:7006:3 from 127.0.0.1:7005\n" +
		"15:04:05.125 Dead Node:127.0.0.1:7005:1764081234.125:127.0.0.1:7004 sent to seeds [127.0.0.1:7001]\n" +
		"15:04:05.125 dead-node report about 127.0.0.1:7006 refuted: it answered the probe (reporters [127.0.0.1:7004])\n" +
		"15:04:05.125 dead-node report about 127.0.0.1:7005 confirmed: it failed this seed's probes; voting for its removal (reporters [127.0.0.1:7004])\n" +
		"15:04:05.125 removed peer 127.0.0.1:7005 (dead); peer list [127.0.0.1:7006]\n" +
		"15:04:05.125 removed peer 127.0.0.1:7006 (left); peer list []\n" +
		"15:04:05.125 text with newline\n"
	got, err := os.ReadFile(filepath.Join(dir, "peer-127.0.0.1-7004.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != wantFile {
		t.Errorf("file =\n%s\nwant\n%s", got, wantFile)
	}
	wantConsole := strings.ReplaceAll(wantFile, "15:04:05.125 ", "15:04:05.125 127.0.0.1:7004 ")
	if console.String() != wantConsole {
		t.Errorf("console =\n%s\nwant\n%s", console.String(), wantConsole)
	}
}

func TestWriterConcurrent(t *testing.T) {
	dir := t.TempDir()
	console := NewConsole(new(bytes.Buffer))
	w, err := Create(dir, "seed", "127.0.0.1:7001", console)
	if err != nil {
		t.Fatal(err)
	}
	const writers, lines = 8, 100
	done := make(chan struct{})
	for i := range writers {
		go func() {
			defer func() { done <- struct{}{} }()
			for j := range lines {
				w.Printf("writer %d line %d", i, j)
			}
		}()
	}
	for range writers {
		<-done
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	if len(all) != writers*lines {
		t.Fatalf("%d lines, want %d", len(all), writers*lines)
	}
	for _, l := range all {
		if !strings.Contains(l, " writer ") {
			t.Fatalf("torn line %q", l)
		}
	}
}

func TestParseHost(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"", "127.0.0.1", true},
		{"  ", "127.0.0.1", true},
		{"10.0.0.7", "10.0.0.7", true},
		{"localhost", "localhost", true},
		{"[::1]", "::1", true},
		{"::1", "::1", true},
		{"bad host", "", false},
		{"a:b", "", false},
		{"host,7000", "", false},
	}
	for _, tt := range tests {
		got, err := ParseHost(tt.in, "127.0.0.1")
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseHost(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParsePort(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"7004", 7004, true},
		{" 1 ", 1, true},
		{"65535", 65535, true},
		{"", 0, false},
		{"0", 0, false},
		{"65536", 0, false},
		{"-1", 0, false},
		{"+80", 0, false},
		{"80a", 0, false},
		{"seven", 0, false},
	}
	for _, tt := range tests {
		got, err := ParsePort(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParsePort(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseAddr(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"127.0.0.1:7004", "127.0.0.1:7004", true},
		{"[::1]:7004", "[::1]:7004", true},
		{"localhost:7004", "localhost:7004", true},
		{"127.0.0.1", "", false},
		{":7004", "", false},
		{"127.0.0.1:0", "", false},
		{"127.0.0.1:http", "", false},
		{"bad host:1", "", false},
	}
	for _, tt := range tests {
		got, err := ParseAddr(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseAddr(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// fakeUse accepts every address but those in refuse, and records the
// addresses it was asked for.
type fakeUse struct {
	asked  []string
	refuse map[string]error
}

func (f *fakeUse) use(addr string) (string, error) {
	f.asked = append(f.asked, addr)
	if err := f.refuse[addr]; err != nil {
		return "", err
	}
	return addr, nil
}

func TestPromptAddr(t *testing.T) {
	seedErr := errors.New("it is a seed address")
	tests := []struct {
		name      string
		input     string
		refuse    map[string]error
		want      string
		wantErr   error
		wantAsked int
		wantOut   []string // substrings of the prompt's output
	}{
		{name: "valid", input: "10.0.0.7\n7004\n", want: "10.0.0.7:7004", wantAsked: 1,
			wantOut: []string{"Host [127.0.0.1]: ", "Port: "}},
		{name: "empty host is default", input: "\n7004\n", want: "127.0.0.1:7004", wantAsked: 1},
		{name: "windows line endings", input: "\r\n7004\r\n", want: "127.0.0.1:7004", wantAsked: 1},
		{name: "last line without newline", input: "\n7004", want: "127.0.0.1:7004", wantAsked: 1},
		{name: "invalid port asked again", input: "\nseven\n70000\n\n7004\n", want: "127.0.0.1:7004", wantAsked: 1,
			wantOut: []string{`Invalid port: "seven" is not a port number`, "Invalid port: port 70000 is out of range", "Invalid port: a port is required"}},
		{name: "invalid host asked again", input: "no such host\n\n7004\n", want: "127.0.0.1:7004", wantAsked: 1,
			wantOut: []string{"Invalid host:"}},
		{name: "refused address asked again", input: "\n7001\n\n7004\n", want: "127.0.0.1:7004", wantAsked: 2,
			refuse:  map[string]error{"127.0.0.1:7001": seedErr},
			wantOut: []string{"Cannot use 127.0.0.1:7001: it is a seed address. Try again."}},
		{name: "empty input", input: "", wantErr: ErrNoInput},
		{name: "input ends at port", input: "\n", wantErr: ErrNoInput},
		{name: "input ends after invalid port", input: "\nabc\n", wantErr: ErrNoInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeUse{refuse: tt.refuse}
			var w bytes.Buffer
			got, err := PromptAddr(bufio.NewReader(strings.NewReader(tt.input)), &w, DefaultHost, f.use)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("PromptAddr = %q, %v; want %q, %v\noutput:\n%s", got, err, tt.want, tt.wantErr, w.String())
			}
			if len(f.asked) != tt.wantAsked {
				t.Errorf("use called with %v, want %d calls", f.asked, tt.wantAsked)
			}
			for _, s := range tt.wantOut {
				if !strings.Contains(w.String(), s) {
					t.Errorf("output does not contain %q:\n%s", s, w.String())
				}
			}
			if tt.wantErr != nil && ExitCode(err) != 2 {
				t.Errorf("ExitCode(%v) = %d, want 2", err, ExitCode(err))
			}
		})
	}
}

// TestPromptAddrPortInUse answers with a port that is taken, then with a
// free one, against the real TCP transport.
func TestPromptAddrPortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port

	// A port that was free a moment ago; good enough for a test.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freePort := l.Addr().(*net.TCPAddr).Port
	l.Close()

	input := fmt.Sprintf("\n%d\n127.0.0.1\n%d\n", busyPort, freePort)
	var w bytes.Buffer
	tr, err := PromptAddr(bufio.NewReader(strings.NewReader(input)), &w, DefaultHost,
		func(addr string) (*transport.TCP, error) { return transport.ListenTCP(addr) })
	if err != nil {
		t.Fatalf("PromptAddr: %v\noutput:\n%s", err, w.String())
	}
	defer tr.Close()
	if want := "127.0.0.1:" + strconv.Itoa(freePort); tr.Addr() != want {
		t.Errorf("Addr = %s, want %s", tr.Addr(), want)
	}
	wantMsg := fmt.Sprintf("Cannot use 127.0.0.1:%d: the port is already in use. Choose another.", busyPort)
	if !strings.Contains(w.String(), wantMsg) {
		t.Errorf("output does not contain %q:\n%s", wantMsg, w.String())
	}
}

func TestExitCode(t *testing.T) {
	_, cfgErr := gossip.ParseSeeds(strings.NewReader("nonsense\n"))
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("boom"), 1},
		{Usagef("bad flag"), 2},
		{fmt.Errorf("wrapped: %w", Usagef("bad flag")), 2},
		{ErrNoInput, 2},
		{cfgErr, 2},
	}
	for _, tt := range tests {
		if got := ExitCode(tt.err); got != tt.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:7001": true, "127.1.2.3:80": true, "[::1]:7001": true, "localhost:7001": true,
		"127.0.0.1": true, "[::ffff:127.0.0.1]:1": true,
		"10.0.0.1:7001": false, "0.0.0.0:7001": false, "[::]:7001": false, "example.com:7001": false, "": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestGroupLimits(t *testing.T) {
	for _, tt := range []struct {
		perSeed, inbound int
		ok               bool
	}{
		{0, 0, true}, {1, 1, true}, {MaxGroupLimit, MaxInboundGroupLimit, true},
		{-1, 0, false}, {0, -1, false}, {MaxGroupLimit + 1, 0, false}, {0, MaxInboundGroupLimit + 1, false},
	} {
		err := CheckGroupLimits(tt.perSeed, tt.inbound)
		if (err == nil) != tt.ok || (err != nil && ExitCode(err) != 2) {
			t.Errorf("CheckGroupLimits(%d, %d) = %v, want ok=%v and a usage error otherwise", tt.perSeed, tt.inbound, err, tt.ok)
		}
		if !tt.ok {
			continue
		}
		// Every value CheckGroupLimits accepts is one the library accepts,
		// on loopback and public addresses alike.
		for _, addr := range []string{"127.0.0.1:7001", "192.0.2.1:7001"} {
			if _, err := gossip.NewSeed(nopTransport{addr}, []string{addr}, AddressGroups(addr, tt.perSeed, tt.inbound)); err != nil {
				t.Errorf("NewSeed with AddressGroups(%s, %d, %d): %v", addr, tt.perSeed, tt.inbound, err)
			}
		}
	}
}

// TestTCPOptions checks that a node on loopback accepts more inbound
// connections from 127.0.0.1 than the transport's default cap of 32 per IP:
// 40 nodes each send it one frame, and all 40 frames arrive.
func TestTCPOptions(t *testing.T) {
	if got := len(TCPOptions("192.0.2.1:7001")); got != 0 {
		t.Errorf("public address: %d options, want the transport's defaults", got)
	}
	srv, err := transport.ListenTCP("127.0.0.1:0", TCPOptions("127.0.0.1:0")...)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	const clients = 40
	for i := range clients {
		c, err := transport.ListenTCP("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Send(t.Context(), srv.Addr(), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	from := map[string]bool{}
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for len(from) < clients {
		select {
		case p := <-srv.Packets():
			from[p.From] = true
		case <-timeout.C:
			t.Fatalf("frames from %d of %d nodes on 127.0.0.1 after 10s; stats %+v", len(from), clients, srv.Stats())
		}
	}
}

// nopTransport is never run: NewSeed does no I/O.
type nopTransport struct{ addr string }

func (n nopTransport) Addr() string                             { return n.addr }
func (nopTransport) Send(context.Context, string, []byte) error { return transport.ErrClosed }
func (nopTransport) Packets() <-chan transport.Packet           { return nil }
func (nopTransport) Close() error                               { return nil }

func TestNewLogger(t *testing.T) {
	var b bytes.Buffer
	log := NewLogger(&b, slog.LevelInfo)
	log.Debug("hidden")
	log.Info("shown", "k", "v")
	got := b.String()
	if strings.Contains(got, "hidden") {
		t.Errorf("debug record shown at info level: %q", got)
	}
	re := regexp.MustCompile(`^time=\d\d:\d\d:\d\d\.\d{3} level=INFO msg=shown k=v\n$`)
	if !re.MatchString(got) {
		t.Errorf("log line %q does not match %v", got, re)
	}
}
