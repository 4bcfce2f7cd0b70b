package transport_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/gossip-dev/gossip/transport"
	"github.com/gossip-dev/gossip/transport/transporttest"
)

// parkAtOnce parks a connection as soon as it runs out of frames.
var parkAtOnce = transport.WithParkAfter(time.Nanosecond)

func needParking(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("connections park only on Linux")
	}
}

func readersDone() (chan string, transport.TCPOption) {
	ch := make(chan string, 16)
	return ch, transport.WithHooks(transport.Hooks{ReaderDone: func(from string) { ch <- from }})
}

func parked(n int) func(transport.TCPStats) bool {
	return func(st transport.TCPStats) bool { return st.ParkedConns == n }
}

// TestTCPConformanceParked runs the transport suite with connections that
// park whenever they run out of frames.
func TestTCPConformanceParked(t *testing.T) {
	transporttest.RunWithOptions(t, func(t *testing.T) (transport.Transport, transport.Transport) {
		return listen(t, parkAtOnce), listen(t, parkAtOnce)
	}, transporttest.Options{MaxFrame: 1 << 20})
}

// TestTCPParkQuietConn: a quiet connection parks, without a reader, and
// each frame that arrives then is delivered, after which it parks again; a
// burst arrives whole and in order; the peer's close ends it.
func TestTCPParkQuietConn(t *testing.T) {
	needParking(t)
	done, hook := readersDone()
	b := listen(t, parkAtOnce, hook)
	c := rawDial(t, b.Addr())
	write(t, c, transport.HelloFrame("127.0.0.1:1"))
	for i := range 50 {
		want := fmt.Sprint(i)
		write(t, c, transport.Frame([]byte(want)))
		if p := recvOne(t, b); string(p.Payload) != want {
			t.Fatalf("frame %d: got %q", i, p.Payload)
		}
		pollStats(t, b, "the connection parked", parked(1))
	}
	var burst []byte
	for i := range 500 {
		burst = append(burst, transport.Frame(fmt.Appendf(nil, "b%d", i))...)
	}
	write(t, c, burst)
	for i := range 500 {
		if p, want := recvOne(t, b), fmt.Sprintf("b%d", i); string(p.Payload) != want {
			t.Fatalf("burst frame %d: got %q, want %q", i, p.Payload, want)
		}
	}
	pollStats(t, b, "the connection parked again", parked(1))
	_ = c.Close()
	if from := wait(t, done, "the reader to end"); from != "127.0.0.1:1" {
		t.Errorf("reader of %q ended", from)
	}
	pollStats(t, b, "no parked connection", parked(0))
}

// TestTCPParkedIdleTimeout: the idle sweep closes a parked connection,
// which has no reader to see the close, and cleans up after it.
func TestTCPParkedIdleTimeout(t *testing.T) {
	needParking(t)
	done, hook := readersDone()
	b := listen(t, parkAtOnce, transport.WithIdleTimeout(100*time.Millisecond), hook)
	c := rawDial(t, b.Addr())
	write(t, c, transport.HelloFrame("127.0.0.1:1"), transport.Frame([]byte("x")))
	recvOne(t, b)
	pollStats(t, b, "the connection parked", parked(1))
	expectClosed(t, c)
	wait(t, done, "the parked connection to end")
	pollStats(t, b, "no parked connection", parked(0))
	// A new connection from the same address is accepted and read.
	c = rawDial(t, b.Addr())
	write(t, c, transport.HelloFrame("127.0.0.1:1"), transport.Frame([]byte("y")))
	if p := recvOne(t, b); string(p.Payload) != "y" {
		t.Fatalf("got %q", p.Payload)
	}
}

// TestTCPCloseWithParked: Close ends parked connections, which have no
// reader, and the poller; goleak in TestMain checks that nothing is left.
func TestTCPCloseWithParked(t *testing.T) {
	needParking(t)
	const n = 5
	done, hook := readersDone()
	tr, err := transport.ListenTCP("127.0.0.1:0", transport.WithLogger(testLogger(t)), parkAtOnce, hook)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		c := rawDial(t, tr.Addr())
		write(t, c, transport.HelloFrame(fmt.Sprintf("127.0.0.1:%d", i+1)), transport.Frame([]byte("x")))
		recvOne(t, tr)
	}
	pollStats(t, tr, "every connection parked", parked(n))
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	for range n {
		wait(t, done, "a parked connection to end")
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestTCPParkOff: with WithParkAfter(0) no connection parks (the poller,
// on Linux, still watches outbound connections); by default, on Linux,
// quiet ones do.
func TestTCPParkOff(t *testing.T) {
	a, b := listen(t), listen(t, transport.WithParkAfter(0))
	if transport.Parks(b) {
		t.Fatal("WithParkAfter(0): the transport parks connections")
	}
	if want := runtime.GOOS == "linux"; transport.Parks(a) != want {
		t.Fatalf("default: parks = %v, want %v", transport.Parks(a), want)
	}
	for i := range 3 {
		if err := a.Send(context.Background(), b.Addr(), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		recvOne(t, b)
	}
	if st := b.Stats(); st.ParkedConns != 0 {
		t.Fatalf("%d parked connections", st.ParkedConns)
	}
	if _, err := transport.ListenTCP("127.0.0.1:0", transport.WithParkAfter(-time.Second)); err == nil {
		t.Fatal("a negative park delay was accepted")
	}
}

// TestTCPIdleLinksPark: links between transports park once quiet, and
// carry frames again at once.
func TestTCPIdleLinksPark(t *testing.T) {
	needParking(t)
	const links = 10
	a := listen(t)
	dsts := make([]*transport.TCP, links)
	for i := range dsts {
		dsts[i] = listen(t, parkAtOnce)
	}
	for round := range 3 {
		for _, d := range dsts {
			if err := a.Send(context.Background(), d.Addr(), []byte{byte(round)}); err != nil {
				t.Fatal(err)
			}
		}
		for _, d := range dsts {
			if p := recvOne(t, d); p.Payload[0] != byte(round) {
				t.Fatalf("round %d: got %v", round, p.Payload)
			}
			pollStats(t, d, "the link parked", parked(1))
		}
	}
}
