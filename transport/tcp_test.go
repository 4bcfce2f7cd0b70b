package transport_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gossip-dev/gossip/transport"
	"github.com/gossip-dev/gossip/transport/transporttest"
)

// guard bounds every wait in these tests. It only catches hangs.
const guard = 10 * time.Second

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// listen starts a TCP transport on 127.0.0.1:0 that is closed at cleanup.
func listen(t testing.TB, opts ...transport.TCPOption) *transport.TCP {
	t.Helper()
	return listenAt(t, "127.0.0.1:0", opts...)
}

func listenAt(t testing.TB, addr string, opts ...transport.TCPOption) *transport.TCP {
	t.Helper()
	opts = append([]transport.TCPOption{transport.WithLogger(testLogger(t))}, opts...)
	tr, err := transport.ListenTCP(addr, opts...)
	if err != nil {
		t.Fatalf("ListenTCP(%q): %v", addr, err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tr
}

func TestTCPConformance(t *testing.T) {
	transporttest.RunWithOptions(t, func(t *testing.T) (transport.Transport, transport.Transport) {
		return listen(t), listen(t)
	}, transporttest.Options{MaxFrame: 1 << 20})
}

func TestTCPConformanceSmallLimit(t *testing.T) {
	transporttest.RunWithOptions(t, func(t *testing.T) (transport.Transport, transport.Transport) {
		return listen(t, transport.WithMaxFrameSize(100)), listen(t, transport.WithMaxFrameSize(100))
	}, transporttest.Options{MaxFrame: 100})
}

// recvOne waits for one packet on tr.
func recvOne(t *testing.T, tr transport.Transport) transport.Packet {
	t.Helper()
	select {
	case p := <-tr.Packets():
		return p
	case <-time.After(guard):
		t.Fatalf("no packet at %s within %v", tr.Addr(), guard)
		return transport.Packet{}
	}
}

// wait blocks until ch yields a value.
func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		var zero T
		t.Fatalf("timed out waiting for %s", what)
		return zero
	}
}

// rawDial opens a plain TCP connection to addr with a guard deadline.
func rawDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	_ = c.SetDeadline(time.Now().Add(guard))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func write(t *testing.T, c net.Conn, chunks ...[]byte) {
	t.Helper()
	for _, b := range chunks {
		if _, err := c.Write(b); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
}

// expectClosed reads from c until the transport closes it. It fails if the
// guard deadline expires first or if the transport sends any data.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	var b [64]byte
	n, err := c.Read(b[:])
	if n > 0 {
		t.Fatalf("transport wrote %d bytes to an inbound conn", n)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("transport did not close the connection")
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read on closed conn: %v", err)
	}
}

// rejections returns a hook that reports rejected inbound connections.
func rejections() (chan error, transport.TCPOption) {
	ch := make(chan error, 16)
	return ch, transport.WithHooks(transport.Hooks{Rejected: func(_ string, err error) { ch <- err }})
}

func header(n uint32) []byte { return []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)} }

func TestTCPOversizedLengthPrefix(t *testing.T) {
	const limit = 1 << 20
	for _, n := range []uint32{0xFFFFFFFF, limit + 1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			b := listen(t, transport.WithMaxFrameSize(limit))
			c := rawDial(t, b.Addr())
			write(t, c, transport.HelloFrame("127.0.0.1:1"), transport.Frame([]byte("ok")))
			if p := recvOne(t, b); string(p.Payload) != "ok" || p.From != "127.0.0.1:1" {
				t.Fatalf("got %q from %q", p.Payload, p.From)
			}

			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			write(t, c, header(n), []byte("some trailing bytes"))
			expectClosed(t, c)
			runtime.ReadMemStats(&after)
			if d := after.TotalAlloc - before.TotalAlloc; d >= limit {
				t.Errorf("allocated %d bytes after a %d-byte length prefix, want < %d", d, n, limit)
			}
			if got := b.Stats().FramesReceived; got != 1 {
				t.Errorf("FramesReceived = %d, want 1", got)
			}
		})
	}
}

func TestTCPBadHandshake(t *testing.T) {
	hello := func(payload string) []byte { return transport.Frame([]byte(payload)) }
	tests := []struct {
		name string
		data []byte
	}{
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"empty frame", hello("")},
		{"bad magic", hello("XSPT1\x00127.0.0.1:1")},
		{"bad version", hello("GSPT9\x00127.0.0.1:1")},
		{"no address", hello("GSPT1\x00")},
		{"no port", hello("GSPT1\x00127.0.0.1")},
		{"port zero", hello("GSPT1\x00127.0.0.1:0")},
		{"empty host", hello("GSPT1\x00:7000")},
		{"control bytes", hello("GSPT1\x00127.0.0.1:1\n")},
		{"long hello", hello("GSPT1\x00" + strings.Repeat("a", 1000) + ":1")},
		{"spoofed IP", transport.HelloFrame("10.9.9.9:1")},
		{"half closed in hello", []byte{0, 0, 0, 20, 'G', 'S'}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rejected, hook := rejections()
			b := listen(t, hook)
			c := rawDial(t, b.Addr())
			write(t, c, tc.data)
			_ = c.(*net.TCPConn).CloseWrite()
			expectClosed(t, c)
			if err := wait(t, rejected, "rejection"); !errors.Is(err, transport.ErrHandshake) {
				t.Errorf("rejection error = %v, want ErrHandshake", err)
			}
			if st := b.Stats(); st.RejectedConns != 1 || st.FramesReceived != 0 {
				t.Errorf("stats = %+v, want 1 rejected conn and no frames", st)
			}
		})
	}
}

func TestTCPHandshakeTimeout(t *testing.T) {
	rejected, hook := rejections()
	b := listen(t, hook, transport.WithHandshakeTimeout(50*time.Millisecond))
	c := rawDial(t, b.Addr())
	write(t, c, []byte{0, 0}) // half a header, then silence
	expectClosed(t, c)
	err := wait(t, rejected, "rejection")
	var ne net.Error
	if !errors.Is(err, transport.ErrHandshake) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("rejection error = %v, want a timeout wrapping ErrHandshake", err)
	}
}

func TestTCPAnnouncedHostName(t *testing.T) {
	b := listen(t)
	c := rawDial(t, b.Addr())
	write(t, c, transport.HelloFrame("localhost:7000"), transport.Frame([]byte("hi")))
	if p := recvOne(t, b); p.From != "localhost:7000" || string(p.Payload) != "hi" {
		t.Fatalf("got %q from %q, want \"hi\" from localhost:7000", p.Payload, p.From)
	}
}

func TestTCPInboundIdleTimeout(t *testing.T) {
	b := listen(t, transport.WithIdleTimeout(100*time.Millisecond))
	c := rawDial(t, b.Addr())
	write(t, c, transport.HelloFrame("127.0.0.1:1"), transport.Frame([]byte("x")))
	recvOne(t, b)
	expectClosed(t, c)
}

func TestTCPWriterIdleExit(t *testing.T) {
	done := make(chan string, 1)
	a := listen(t, transport.WithIdleTimeout(50*time.Millisecond),
		transport.WithHooks(transport.Hooks{WriterDone: func(addr string) { done <- addr }}))
	b := listen(t)
	if err := a.Send(context.Background(), b.Addr(), []byte("1")); err != nil {
		t.Fatal(err)
	}
	recvOne(t, b)
	if addr := wait(t, done, "idle writer to exit"); addr != b.Addr() {
		t.Fatalf("writer for %s exited, want %s", addr, b.Addr())
	}
	// The next Send starts a fresh writer and conn.
	if err := a.Send(context.Background(), b.Addr(), []byte("2")); err != nil {
		t.Fatal(err)
	}
	if p := recvOne(t, b); string(p.Payload) != "2" {
		t.Fatalf("got %q, want \"2\"", p.Payload)
	}
	if d := a.Stats().Dropped; d != 0 {
		t.Fatalf("Dropped = %d, want 0", d)
	}
}

func TestTCPHalfClosedMidFrame(t *testing.T) {
	b := listen(t)
	c := rawDial(t, b.Addr())
	write(t, c, transport.HelloFrame("127.0.0.1:1"), header(100), []byte("only ten.."))
	_ = c.(*net.TCPConn).CloseWrite()
	expectClosed(t, c)
	if st := b.Stats(); st.FramesReceived != 0 || st.RejectedConns != 0 {
		t.Fatalf("stats = %+v, want nothing received or rejected", st)
	}
	select {
	case p := <-b.Packets():
		t.Fatalf("truncated frame delivered: %q", p.Payload)
	default:
	}
}

func TestTCPMaxConns(t *testing.T) {
	rejected, hook := rejections()
	b := listen(t, hook, transport.WithMaxConns(1))
	c1 := rawDial(t, b.Addr())
	write(t, c1, transport.HelloFrame("127.0.0.1:1"), transport.Frame([]byte("first")))
	recvOne(t, b) // c1 is served, so it holds the only slot
	c2 := rawDial(t, b.Addr())
	expectClosed(t, c2)
	wait(t, rejected, "rejection")
	write(t, c1, transport.Frame([]byte("still open")))
	if p := recvOne(t, b); string(p.Payload) != "still open" {
		t.Fatalf("got %q", p.Payload)
	}
	if got := b.Stats().RejectedConns; got != 1 {
		t.Fatalf("RejectedConns = %d, want 1", got)
	}
}

func TestTCPAddrInUse(t *testing.T) {
	a := listen(t)
	_, err := transport.ListenTCP(a.Addr(), transport.WithLogger(testLogger(t)))
	if !errors.Is(err, transport.ErrAddrInUse) || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("ListenTCP on a taken port = %v, want ErrAddrInUse and EADDRINUSE", err)
	}
}

func TestListenTCPAddresses(t *testing.T) {
	if a := listenAt(t, ":0"); !strings.HasPrefix(a.Addr(), "127.0.0.1:") {
		t.Errorf(`ListenTCP(":0").Addr() = %q, want 127.0.0.1:port`, a.Addr())
	}
	if _, err := transport.ListenTCP("0.0.0.0:0"); err == nil || !strings.Contains(err.Error(), "WithAdvertiseAddr") {
		t.Errorf("ListenTCP(0.0.0.0:0) without advertise address = %v, want an error naming WithAdvertiseAddr", err)
	}
	if a := listenAt(t, "0.0.0.0:0", transport.WithAdvertiseAddr("127.0.0.1:7000")); a.Addr() != "127.0.0.1:7000" {
		t.Errorf("Addr() = %q, want the advertised 127.0.0.1:7000", a.Addr())
	}
	listenAt(t, "127.0.0.1:0", nil) // a nil option is skipped

	bad := map[string]transport.TCPOption{
		"max frame 0":         transport.WithMaxFrameSize(0),
		"max frame 2GiB":      transport.WithMaxFrameSize(1 << 31),
		"queue 0":             transport.WithQueueSize(0),
		"queue bytes 0":       transport.WithQueueBytes(0),
		"inbox bytes 0":       transport.WithInboxBytes(0),
		"inbox 0":             transport.WithInboxSize(0),
		"dial timeout 0":      transport.WithDialTimeout(0),
		"handshake timeout 0": transport.WithHandshakeTimeout(-time.Second),
		"idle timeout 0":      transport.WithIdleTimeout(0),
		"max conns 0":         transport.WithMaxConns(0),
		"nil logger":          transport.WithLogger(nil),
		"advertise no port":   transport.WithAdvertiseAddr("example.com"),
		"advertise 0.0.0.0":   transport.WithAdvertiseAddr("0.0.0.0:7000"),
		"advertise port 0":    transport.WithAdvertiseAddr("10.0.0.1:0"),
	}
	for name, opt := range bad {
		if tr, err := transport.ListenTCP("127.0.0.1:0", opt); err == nil {
			_ = tr.Close()
			t.Errorf("%s: ListenTCP succeeded, want an error", name)
		} else if !strings.HasPrefix(err.Error(), "transport: ") {
			t.Errorf("%s: error %q lacks the package prefix", name, err)
		}
	}
	if _, err := transport.ListenTCP("no-port"); err == nil {
		t.Error("ListenTCP(no-port) succeeded")
	}
}

func TestTCPDialsFromListenIP(t *testing.T) {
	a, err := transport.ListenTCP("127.0.0.2:0", transport.WithLogger(testLogger(t)))
	if err != nil {
		t.Skipf("cannot bind 127.0.0.2: %v", err)
	}
	t.Cleanup(func() { _ = a.Close() })
	b := listen(t)
	// b rejects the handshake unless a dials from 127.0.0.2, its announced IP.
	if err := a.Send(context.Background(), b.Addr(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if p := recvOne(t, b); p.From != a.Addr() {
		t.Fatalf("From = %q, want %q", p.From, a.Addr())
	}
}

// TestTCPReconnectAfterPeerRestart: a writer whose peer closed its
// connection redials for the next batch instead of losing it on the dead
// socket, whether the poller saw the close (on Linux) or the writer's
// check before the batch does (elsewhere, and without a poller).
func TestTCPReconnectAfterPeerRestart(t *testing.T) {
	if !transport.PeerCloseDetected {
		t.Skip("a writer cannot tell that its peer closed the connection on " + runtime.GOOS)
	}
	for _, poller := range []bool{true, false} {
		t.Run(fmt.Sprintf("poller=%v", poller), func(t *testing.T) {
			if poller && runtime.GOOS != "linux" {
				t.Skip("no poller on " + runtime.GOOS)
			}
			testReconnectAfterPeerRestart(t, poller)
		})
	}
}

func testReconnectAfterPeerRestart(t *testing.T, poller bool) {
	peerClosed, peerGone := make(chan string, 4), make(chan string, 4)
	opts := []transport.TCPOption{transport.WithHooks(transport.Hooks{
		PeerClosed: func(addr string) { peerClosed <- addr },
		PeerGone:   func(addr string) { peerGone <- addr },
	})}
	if !poller {
		opts = append(opts, transport.WithoutPoller())
	}
	a := listen(t, opts...)
	b, err := transport.ListenTCP("127.0.0.1:0", transport.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	if err := a.Send(context.Background(), addr, []byte("before")); err != nil {
		t.Fatal(err)
	}
	recvOne(t, b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if poller {
		// The poller sees the close as it happens; a batch written
		// before it did would be lost like one written just before the
		// close.
		if got := wait(t, peerGone, "the poller to see the peer close"); got != addr {
			t.Errorf("PeerGone(%s), want %s", got, addr)
		}
	}

	// a still holds its connection to the old b. It finds it closed before
	// writing the next batch, and redials instead of losing the batch.
	b2 := listenAt(t, addr)
	for i := range 3 {
		if err := a.Send(context.Background(), addr, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if p := recvOne(t, b2); !bytes.Equal(p.Payload, []byte{byte(i)}) || p.From != a.Addr() {
			t.Fatalf("after restart got %v from %q, want [%d] from %q", p.Payload, p.From, i, a.Addr())
		}
	}
	if got := wait(t, peerClosed, "a to notice the peer closing"); got != addr {
		t.Errorf("PeerClosed(%s), want %s", got, addr)
	}
	if d := a.Stats().Dropped; d != 0 {
		t.Fatalf("Dropped = %d, want 0", d)
	}
	if !poller {
		select {
		case got := <-peerGone:
			t.Errorf("PeerGone(%s) without a poller", got)
		default:
		}
	}
}

// freeAddr returns a loopback address with nothing listening.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestTCPStats(t *testing.T) {
	batches := make(chan int, 100)
	done := make(chan string, 4)
	a := listen(t, transport.WithHooks(transport.Hooks{
		AfterBatch: func(_ string, n int) { batches <- n },
		WriterDone: func(addr string) { done <- addr },
	}))
	b := listen(t)
	const n, size = 10, 100
	for range n {
		if err := a.Send(context.Background(), b.Addr(), make([]byte, size)); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		recvOne(t, b)
	}
	for sent := 0; sent < n; {
		sent += wait(t, batches, "batch")
	}
	const wantBytes = n * (4 + size)
	if st := a.Stats(); st.FramesSent != n || st.BytesSent != wantBytes || st.Dropped != 0 || st.Dials != 1 {
		t.Errorf("a stats = %+v, want %d frames and %d bytes sent over 1 dial, none dropped", st, n, wantBytes)
	}
	if st := b.Stats(); st.FramesReceived != n || st.BytesReceived != wantBytes {
		t.Errorf("b stats = %+v, want %d frames and %d bytes received", st, n, wantBytes)
	}

	// A failed dial drops what was queued for that destination.
	dead := freeAddr(t)
	if err := a.Send(context.Background(), dead, []byte("lost")); err != nil {
		t.Fatal(err)
	}
	if got := wait(t, done, "writer to the dead address to exit"); got != dead {
		t.Fatalf("writer for %s exited, want %s", got, dead)
	}
	if st := a.Stats(); st.Dropped != 1 || st.Dials != 2 {
		t.Errorf("after a failed dial: Dropped = %d, Dials = %d; want 1 and 2", st.Dropped, st.Dials)
	}
}

// stalledSender is a transport, with opts, whose writer to the second
// transport it returns stalls in its dial until unblock is called (or the
// test ends), so that frames sent meanwhile wait in the queue. dialing
// receives once the writer has taken its first batch and is dialling.
type stalledSender struct {
	a, b    *transport.TCP
	dialing chan struct{}
	unblock func()
}

func newStalledSender(t *testing.T, opts ...transport.TCPOption) *stalledSender {
	t.Helper()
	dialing, release := make(chan struct{}, 1), make(chan struct{})
	a := listen(t, append(opts, transport.WithHooks(transport.Hooks{
		BeforeDial: func(string) { dialing <- struct{}{}; <-release },
	}))...)
	var once sync.Once
	s := &stalledSender{a: a, b: listen(t), dialing: dialing, unblock: func() { once.Do(func() { close(release) }) }}
	t.Cleanup(s.unblock)
	return s
}

func (s *stalledSender) send(t *testing.T, p []byte) {
	t.Helper()
	if err := s.a.Send(context.Background(), s.b.Addr(), p); err != nil {
		t.Fatal(err)
	}
}

func TestTCPQueueFullDrops(t *testing.T) {
	s := newStalledSender(t, transport.WithQueueSize(1))
	a, b := s.a, s.b
	send := func(p string) { s.send(t, []byte(p)) }
	send("1")
	wait(t, s.dialing, "writer to dial") // the writer holds frame 1
	send("2")                            // fills the queue of one
	send("3")                            // dropped
	send("4")                            // dropped
	if d := a.Stats().Dropped; d != 2 {
		t.Errorf("Dropped = %d, want 2", d)
	}
	s.unblock()
	for _, want := range []string{"1", "2"} {
		if p := recvOne(t, b); string(p.Payload) != want {
			t.Fatalf("got %q, want %q", p.Payload, want)
		}
	}
}

// TestTCPQueueBytesDrops checks the byte bound on a send queue: a frame
// that would take the queue past it is dropped while smaller ones still
// fit, and an empty queue takes a frame larger than the bound.
func TestTCPQueueBytesDrops(t *testing.T) {
	// Each frame costs its length plus a 4-byte header: two of 100 bytes
	// fit in 215, a third does not, one of 1 still does.
	s := newStalledSender(t, transport.WithQueueBytes(215))
	a, b := s.a, s.b
	send := func(p []byte) { s.send(t, p) }
	big := bytes.Repeat([]byte("x"), 500) // larger than the bound
	frame := func(c byte) []byte { return bytes.Repeat([]byte{c}, 100) }
	send(big)
	wait(t, s.dialing, "writer to dial") // the writer holds big; the queue is empty
	send(frame('a'))
	send(frame('b'))
	send(frame('c')) // 312 bytes: dropped
	send([]byte("d"))
	if d := a.Stats().Dropped; d != 1 {
		t.Errorf("Dropped = %d, want 1", d)
	}
	s.unblock()
	for _, want := range [][]byte{big, frame('a'), frame('b'), []byte("d")} {
		if p := recvOne(t, b); !bytes.Equal(p.Payload, want) {
			t.Fatalf("got %d bytes %.8q, want %d bytes %.8q", len(p.Payload), p.Payload, len(want), want)
		}
	}
	// The queue was emptied: a frame larger than the bound goes again.
	send(big)
	if p := recvOne(t, b); !bytes.Equal(p.Payload, big) {
		t.Fatalf("got %d bytes, want the %d-byte frame", len(p.Payload), len(big))
	}
	if d := a.Stats().Dropped; d != 1 {
		t.Errorf("Dropped = %d after the queue emptied, want 1", d)
	}
}

func TestTCPBurstIsCoalesced(t *testing.T) {
	release := make(chan struct{})
	batches := make(chan int, 1000)
	a := listen(t, transport.WithHooks(transport.Hooks{
		BeforeDial: func(string) { <-release },
		AfterBatch: func(_ string, n int) { batches <- n },
	}))
	b := listen(t)
	const n = 1000
	for i := range n {
		if err := a.Send(context.Background(), b.Addr(), []byte(fmt.Sprintf("frame %04d", i))); err != nil {
			close(release)
			t.Fatal(err)
		}
	}
	close(release)
	for i := range n {
		if p := recvOne(t, b); string(p.Payload) != fmt.Sprintf("frame %04d", i) {
			t.Fatalf("frame %d = %q", i, p.Payload)
		}
	}
	calls := 0
	for sent := 0; sent < n; calls++ {
		sent += wait(t, batches, "batch")
	}
	if st := a.Stats(); st.FramesSent != n || st.Dropped != 0 {
		t.Errorf("stats = %+v, want %d frames sent and none dropped", st, n)
	}
	// The first frame is taken before the dial blocks; the other 999 wait
	// in the queue and must go out as one batch.
	if calls > 2 {
		t.Errorf("%d frames written in %d batches, want at most 2", n, calls)
	}
}

func TestTCPCloseDuringSends(t *testing.T) {
	a := listen(t)
	b := listen(t)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			<-start
			for {
				err := a.Send(context.Background(), b.Addr(), []byte("spam"))
				if errors.Is(err, transport.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Send: %v", err)
					return
				}
			}
		})
	}
	close(start)
	recvOne(t, b)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

func TestTCPSendCanceledContext(t *testing.T) {
	a := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Send(ctx, a.Addr(), []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send with a canceled context = %v, want context.Canceled", err)
	}
}

// helloFrames returns the wire bytes of a hello announcing from, then of
// frames numbered first..first+n-1 ("f0007").
func helloFrames(from string, first, n int) []byte {
	b := transport.HelloFrame(from)
	for i := first; i < first+n; i++ {
		b = append(b, transport.Frame(fmt.Appendf(nil, "f%04d", i))...)
	}
	return b
}

// inboxWaits returns a hook reporting the senders whose frames wait for
// room in the inbox.
func inboxWaits() (chan string, transport.TCPOption) {
	ch := make(chan string, 1024)
	return ch, transport.WithInboxWaitHook(func(from string) {
		select {
		case ch <- from:
		default:
		}
	})
}

// pollStats waits until cond holds for tr's stats. The guard only
// catches hangs.
func pollStats(t *testing.T, tr *transport.TCP, what string, cond func(transport.TCPStats) bool) transport.TCPStats {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		st := tr.Stats()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; stats %+v", what, st)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestTCPInboxWaitAbsorbsBurst: a burst larger than the inbox, arriving
// while nobody reads Packets, blocks the connection's reader instead of
// being dropped, and is delivered whole and in order once the consumer
// reads.
func TestTCPInboxWaitAbsorbsBurst(t *testing.T) {
	const size, burst = 24, 200 // 16 in the channel, 8 queued
	waiting, hook := inboxWaits()
	b := listen(t, transport.WithInboxSize(size), transport.WithInboxWait(time.Hour), hook)
	c := rawDial(t, b.Addr())
	write(t, c, helloFrames("127.0.0.1:1", 0, burst))
	wait(t, waiting, "the reader to wait for room") // the inbox is full; nothing read yet
	if st := b.Stats(); st.Dropped != 0 || st.FramesReceived != size+1 {
		t.Fatalf("stats with a full inbox = %+v, want %d frames received (the last waiting) and none dropped", st, size+1)
	}
	for i := range burst {
		if p := recvOne(t, b); string(p.Payload) != fmt.Sprintf("f%04d", i) {
			t.Fatalf("frame %d = %q", i, p.Payload)
		}
	}
	if st := b.Stats(); st.Dropped != 0 || st.InboxWaits == 0 {
		t.Errorf("stats = %+v, want waits and no drops", st)
	}
}

// TestTCPInboxWaitBounded: once the inbox has stayed full for the wait,
// the waiting frame and those after it are dropped, without waiting
// again, so the reader keeps draining its connection; the frames that had
// room are delivered in order. Once the consumer has caught up, the next
// burst waits again.
func TestTCPInboxWaitBounded(t *testing.T) {
	const size, burst = 24, 40
	waiting, hook := inboxWaits()
	b := listen(t, transport.WithInboxSize(size), transport.WithInboxWait(500*time.Millisecond), hook)
	c := rawDial(t, b.Addr())
	write(t, c, helloFrames("127.0.0.1:1", 0, burst))
	st := pollStats(t, b, "the overflow to be dropped", func(st transport.TCPStats) bool {
		return st.FramesReceived == burst && st.Dropped == burst-size
	})
	if st.InboxWaits != 1 {
		t.Errorf("InboxWaits = %d, want 1: only the first frame to find the inbox full waits", st.InboxWaits)
	}
	for i := range size {
		if p := recvOne(t, b); string(p.Payload) != fmt.Sprintf("f%04d", i) {
			t.Fatalf("frame %d = %q", i, p.Payload)
		}
	}
	wait(t, waiting, "the first wait")

	more := helloFrames("127.0.0.1:1", 100, size+1)[len(transport.HelloFrame("127.0.0.1:1")):]
	write(t, c, more)
	wait(t, waiting, "a frame of the second burst to wait")
	for i := range size + 1 {
		if p := recvOne(t, b); string(p.Payload) != fmt.Sprintf("f%04d", 100+i) {
			t.Fatalf("frame %d of the second burst = %q", i, p.Payload)
		}
	}
	if st := b.Stats(); st.Dropped != burst-size || st.InboxWaits != 2 {
		t.Errorf("stats = %+v, want %d dropped and 2 waits", st, burst-size)
	}
}

// TestTCPInboxWaitNoWait: WithInboxWait(0) drops a frame that finds the
// inbox full at once.
func TestTCPInboxWaitNoWait(t *testing.T) {
	const size, burst = 4, 10 // no queue: the channel is the whole inbox
	b := listen(t, transport.WithInboxSize(size), transport.WithInboxWait(0))
	c := rawDial(t, b.Addr())
	write(t, c, helloFrames("127.0.0.1:1", 0, burst))
	st := pollStats(t, b, "the overflow to be dropped", func(st transport.TCPStats) bool {
		return st.FramesReceived == burst && st.Dropped == burst-size
	})
	if st.InboxWaits != 0 {
		t.Errorf("InboxWaits = %d, want 0", st.InboxWaits)
	}
}

// TestTCPInboxBytes: the inbox's queue also holds at most WithInboxBytes
// of payload. With no wait, a frame that would pass the bound is dropped
// while a smaller one after it still fits; the channel's frames do not
// count.
func TestTCPInboxBytes(t *testing.T) {
	const size = 16 + 8 // 16 in the channel, 8 queued
	b := listen(t, transport.WithInboxSize(size), transport.WithInboxBytes(250), transport.WithInboxWait(0))
	c := rawDial(t, b.Addr())
	big := func(c byte) []byte { return bytes.Repeat([]byte{c}, 100) }
	frames := helloFrames("127.0.0.1:1", 0, 16) // these fill the channel
	for _, p := range [][]byte{big('a'), big('b'), big('c'), []byte("d")} {
		frames = append(frames, transport.Frame(p)...)
	}
	write(t, c, frames)
	st := pollStats(t, b, "the frames to be read", func(st transport.TCPStats) bool { return st.FramesReceived == 20 })
	if st.Dropped != 1 {
		t.Errorf("Dropped = %d, want 1: only the frame that would take the queue to 300 bytes", st.Dropped)
	}
	for i := range 16 {
		if p := recvOne(t, b); string(p.Payload) != fmt.Sprintf("f%04d", i) {
			t.Fatalf("frame %d = %q", i, p.Payload)
		}
	}
	for _, want := range [][]byte{big('a'), big('b'), []byte("d")} {
		if p := recvOne(t, b); !bytes.Equal(p.Payload, want) {
			t.Fatalf("got %.8q (%d bytes), want %.8q (%d bytes)", p.Payload, len(p.Payload), want, len(want))
		}
	}
}

// TestTCPInboxBytesWait: a frame that finds the queue full by bytes waits
// for room like one that finds it full by frames, and is admitted only
// once enough bytes have been delivered: here after both frames ahead of
// it, since one delivery frees too little. Nothing is dropped and order
// is kept.
func TestTCPInboxBytesWait(t *testing.T) {
	const size = 16 + 8
	waiting, hook := inboxWaits()
	b := listen(t, transport.WithInboxSize(size), transport.WithInboxBytes(250), transport.WithInboxWait(time.Hour), hook)
	c := rawDial(t, b.Addr())
	fill := func(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }
	frames := helloFrames("127.0.0.1:1", 0, 16)
	for _, p := range [][]byte{fill('a', 100), fill('b', 100), fill('w', 200), []byte("z")} {
		frames = append(frames, transport.Frame(p)...)
	}
	write(t, c, frames)
	wait(t, waiting, "the 200-byte frame to wait for room")
	if st := b.Stats(); st.FramesReceived != 19 || st.Dropped != 0 {
		t.Fatalf("stats with the queue full by bytes = %+v, want 19 frames received (the last waiting) and none dropped", st)
	}
	for i := range 16 {
		if p := recvOne(t, b); string(p.Payload) != fmt.Sprintf("f%04d", i) {
			t.Fatalf("frame %d = %q", i, p.Payload)
		}
	}
	for _, want := range [][]byte{fill('a', 100), fill('b', 100), fill('w', 200), []byte("z")} {
		if p := recvOne(t, b); !bytes.Equal(p.Payload, want) {
			t.Fatalf("got %.8q (%d bytes), want %.8q (%d bytes)", p.Payload, len(p.Payload), want, len(want))
		}
	}
	if st := b.Stats(); st.Dropped != 0 || st.InboxWaits != 1 {
		t.Errorf("stats = %+v, want one wait and no drops", st)
	}
}

// TestTCPCloseWhileReaderWaits: Close ends a reader's wait for room at
// once; goleak (TestMain) checks that no goroutine is left behind.
func TestTCPCloseWhileReaderWaits(t *testing.T) {
	for _, size := range []int{4, 40} { // without and with a queue
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			waiting, hook := inboxWaits()
			b, err := transport.ListenTCP("127.0.0.1:0", transport.WithLogger(testLogger(t)),
				transport.WithInboxSize(size), transport.WithInboxWait(time.Hour), hook)
			if err != nil {
				t.Fatal(err)
			}
			c := rawDial(t, b.Addr())
			write(t, c, helloFrames("127.0.0.1:1", 0, 2*size))
			wait(t, waiting, "the reader to wait for room")
			closed := make(chan error, 1)
			go func() { closed <- b.Close() }()
			if err := wait(t, closed, "Close with a reader waiting"); err != nil {
				t.Fatal(err)
			}
			if st := b.Stats(); st.Dropped == 0 {
				t.Errorf("stats after Close = %+v, want the waiting frame dropped", st)
			}
			expectClosed(t, c)
		})
	}
}

// TestTCPInboxFairShare: a connection that floods the inbox cannot starve
// another. The flooder fills the inbox and waits; the frames of a second
// connection then get the room that frees ahead of the flooder's, which
// waited first, as long as the flooder holds more than its share of the
// queue (half of it, with two connections).
func TestTCPInboxFairShare(t *testing.T) {
	const size, honest = 80, 20 // 16 in the channel, 64 queued; 20 < 64/2
	const floodFrom, honestFrom = "127.0.0.1:1", "127.0.0.1:2"
	waiting, hook := inboxWaits()
	b := listen(t, transport.WithInboxSize(size), transport.WithInboxWait(time.Hour), hook)
	waitFor := func(from string) {
		t.Helper()
		for got := ""; got != from; {
			got = wait(t, waiting, from+" to wait for room")
		}
	}
	flooder := rawDial(t, b.Addr())
	write(t, flooder, helloFrames(floodFrom, 0, 1000))
	waitFor(floodFrom)
	other := rawDial(t, b.Addr())
	write(t, other, helloFrames(honestFrom, 0, honest))
	waitFor(honestFrom)
	// Both wait, the flooder first. Each frame taken frees room for one:
	// take one at a time, letting the other connection wait again, until
	// it has had room for every frame.
	var order []string
	for range honest - 1 {
		order = append(order, recvOne(t, b).From)
		waitFor(honestFrom)
	}
	for n := 0; n < honest; {
		p := recvOne(t, b)
		order = append(order, p.From)
		if p.From == honestFrom {
			if want := fmt.Sprintf("f%04d", n); string(p.Payload) != want {
				t.Fatalf("got %q from %s, want %q", p.Payload, honestFrom, want)
			}
			n++
		}
	}
	// Only the frames the inbox held when the other connection came are
	// the flooder's; every frame after them is the other's.
	if flood := len(order) - honest; flood != size {
		t.Errorf("%d flooder frames delivered before the other connection's %d, want the %d the inbox held", flood, honest, size)
	}
	if st := b.Stats(); st.Dropped != 0 {
		t.Errorf("Dropped = %d, want 0", st.Dropped)
	}
}

// TestTCPIdleLinksHoldNoWriter: once its frames are written, an outbound
// link keeps its connection but no goroutine; only the receiving end's
// reader remains.
func TestTCPIdleLinksHoldNoWriter(t *testing.T) {
	const links = 10
	a := listen(t)
	dsts := make([]*transport.TCP, links)
	for i := range dsts {
		dsts[i] = listen(t)
	}
	before := runtime.NumGoroutine() // the accept loops, and anything else running
	for _, d := range dsts {
		if err := a.Send(context.Background(), d.Addr(), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range dsts {
		recvOne(t, d)
	}
	// A reader per link, and no writer: the count must fall to that (it
	// may fall lower if goroutines of an earlier test end meanwhile).
	want := before + links
	deadline := time.Now().Add(guard)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, want at most %d", runtime.NumGoroutine(), want)
		}
		time.Sleep(time.Millisecond)
	}
	// The idle links still carry frames, on the same connections.
	for _, d := range dsts {
		if err := a.Send(context.Background(), d.Addr(), []byte("y")); err != nil {
			t.Fatal(err)
		}
		if p := recvOne(t, d); string(p.Payload) != "y" {
			t.Fatalf("got %q", p.Payload)
		}
	}
	if st := a.Stats(); st.Dropped != 0 {
		t.Errorf("Dropped = %d", st.Dropped)
	}
}

// TestTCPRelease: Release closes a connection once what is queued on it
// is written, which ends the reader at the other end; frames sent later
// go over a new connection.
func TestTCPRelease(t *testing.T) {
	readers := make(chan string, 4)
	b := listen(t, transport.WithHooks(transport.Hooks{ReaderDone: func(from string) { readers <- from }}))
	a := listen(t)
	const n = 50
	for i := range n {
		if err := a.Send(context.Background(), b.Addr(), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Released with frames likely still queued: they go out first.
	a.Release(b.Addr())
	for i := range n {
		if p := recvOne(t, b); p.Payload[0] != byte(i) {
			t.Fatalf("frame %d: got %d", i, p.Payload[0])
		}
	}
	if from := wait(t, readers, "reader of the released connection to end"); from != a.Addr() {
		t.Fatalf("reader of a connection from %s ended, want %s", from, a.Addr())
	}
	// An idle connection is closed at once; Release of an address with no
	// connection, or of one already released, does nothing.
	if err := a.Send(context.Background(), b.Addr(), []byte("again")); err != nil {
		t.Fatal(err)
	}
	if p := recvOne(t, b); string(p.Payload) != "again" {
		t.Fatalf("got %q", p.Payload)
	}
	pollStats(t, a, "the second batch to be written", func(s transport.TCPStats) bool { return s.FramesSent == n+1 })
	a.Release(b.Addr())
	a.Release(b.Addr())
	a.Release("127.0.0.1:1")
	wait(t, readers, "reader of the second connection to end")
	if st := a.Stats(); st.Dials != 2 || st.Dropped != 0 {
		t.Errorf("stats %+v: want 2 dials, nothing dropped", st)
	}
}

// TestTCPCloseFlushesToReleased: a frame queued just before Close, to a
// destination whose connection was released, is still delivered: the
// writer dials to flush it within the linger deadline.
func TestTCPCloseFlushesToReleased(t *testing.T) {
	readers := make(chan string, 4)
	b := listen(t, transport.WithHooks(transport.Hooks{ReaderDone: func(from string) { readers <- from }}))
	a, err := transport.ListenTCP("127.0.0.1:0", transport.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Send(context.Background(), b.Addr(), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	recvOne(t, b)
	pollStats(t, a, "the frame to be written", func(s transport.TCPStats) bool { return s.FramesSent == 1 })
	a.Release(b.Addr())
	wait(t, readers, "reader of the released connection to end")
	if err := a.Send(context.Background(), b.Addr(), []byte("bye")); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if p := recvOne(t, b); string(p.Payload) != "bye" {
		t.Fatalf("got %q, want \"bye\"", p.Payload)
	}
	if st := a.Stats(); st.Dropped != 0 || st.Dials != 2 {
		t.Errorf("stats %+v: want 2 dials, nothing dropped", st)
	}
}

// TestTCPWriterWaits: a writer that has written everything queued waits
// for the next frame (WithWriterWait) instead of ending, so the next frame
// needs no new goroutine; Release and Close end the wait at once, and with
// a wait of 0 every lone frame starts a writer.
func TestTCPWriterWaits(t *testing.T) {
	for _, d := range []time.Duration{time.Hour, 0} {
		t.Run(fmt.Sprint(d), func(t *testing.T) {
			runs, waits, ends := make(chan string, 8), make(chan string, 8), make(chan string, 8)
			readers := make(chan string, 4)
			b := listen(t, transport.WithHooks(transport.Hooks{ReaderDone: func(from string) { readers <- from }}))
			a := listen(t, transport.WithWriterWait(d), transport.WithHooks(transport.Hooks{
				WriterRun:  func(addr string) { runs <- addr },
				WriterWait: func(addr string) { waits <- addr },
				WriterEnd:  func(addr string) { ends <- addr },
			}))
			for i := range 3 {
				if err := a.Send(context.Background(), b.Addr(), []byte{byte(i)}); err != nil {
					t.Fatal(err)
				}
				if p := recvOne(t, b); p.Payload[0] != byte(i) {
					t.Fatalf("frame %d: got %d", i, p.Payload[0])
				}
				if d > 0 {
					wait(t, waits, "the writer to wait")
				} else {
					wait(t, ends, "the writer to end")
				}
			}
			want := 3
			if d > 0 {
				want = 1
			}
			if got := len(runs); got != want {
				t.Errorf("%d writer goroutines started for 3 lone frames; want %d", got, want)
			}
			if d > 0 {
				// A waiting writer does not delay a release: the
				// connection closes at once, not after the wait.
				a.Release(b.Addr())
				wait(t, ends, "the released writer to end")
				if from := wait(t, readers, "reader of the released connection to end"); from != a.Addr() {
					t.Fatalf("reader of a connection from %s ended, want %s", from, a.Addr())
				}
			}
			// Close ends a waiting writer (goleak in TestMain checks).
		})
	}
}

func TestWithWriterWaitRejectsNegative(t *testing.T) {
	if _, err := transport.ListenTCP("127.0.0.1:0", transport.WithWriterWait(-time.Second)); err == nil {
		t.Fatal("negative writer wait accepted")
	}
}
