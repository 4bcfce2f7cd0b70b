package gossip

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gossip-dev/gossip/transport"
)

const (
	slowConns = 200
	capDials  = 1000
	// The TCP transport's defaults, which the seed below runs with.
	slowDeadline     = 5 * time.Second // handshake timeout
	tcpMaxConnsPerIP = 32              // inbound connections per source IP
	// slowCloseSlack is how late after the handshake deadline a slow
	// connection may be closed: the accept loop's lag behind 1200 dials,
	// the timer and the close reaching the client, on 2 cores under -race.
	slowCloseSlack = 500 * time.Millisecond
	// slowHelloLen is the hello length the slow connections announce in
	// their frame header and never send.
	slowHelloLen = 64
)

// TestTCPUnderConnectionAttack runs a seed over real TCP while 200 slow
// connections (one byte a second, each from its own 127.0.3.x address) hang
// in the handshake and 1000 connections come from 127.0.1.1: the slow ones
// are closed at the handshake deadline, the flood from one address is
// capped while another address still connects, and an honest peer joins
// meanwhile, with the default proof of work.
func TestTCPUnderConnectionAttack(t *testing.T) {
	if testing.Short() {
		t.Skip("1200 loopback connections")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	w := newWaiter()
	seedTr, err := transport.ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer seedTr.Close()
	seeds := []string{seedTr.Addr()}
	seed, err := NewSeed(seedTr, seeds, WithLogger(quietLogger(t)), WithEventHandler(w.handler()))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	seedDone := make(chan error, 1)
	wg.Go(func() { seedDone <- seed.Run(runCtx) })

	dial := func(from string) (net.Conn, error) {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		return d.DialContext(ctx, "tcp", seedTr.Addr())
	}
	// The slow connections: a plausible hello header (64 bytes to come),
	// then one byte a second, never a whole hello.
	// Each one's life is timed from just before its dial, which is before
	// the seed accepts it and starts its handshake deadline.
	closedAfter := make(chan time.Duration, slowConns)
	for i := range slowConns {
		opened := time.Now()
		c, err := dial(fmt.Sprintf("127.0.3.%d", i+1))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer c.Close()
			header := binary.BigEndian.AppendUint32(nil, slowHelloLen)
			for n := 0; ; n++ {
				b := []byte{'G'}
				if n < len(header) {
					b[0] = header[n]
				}
				if _, err := c.Write(b); err != nil {
					break
				}
				_ = c.SetReadDeadline(time.Now().Add(time.Second))
				if _, err := c.Read(make([]byte, 1)); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						continue
					}
					break
				}
			}
			closedAfter <- time.Since(opened)
		})
	}
	// The flood from one address.
	var flood []net.Conn
	for range capDials {
		c, err := dial("127.0.1.1")
		if err != nil {
			t.Fatal(err)
		}
		flood = append(flood, c)
	}
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()

	// An honest peer joins meanwhile, from yet another address.
	peerTr, err := transport.ListenTCP("127.0.2.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peerTr.Close()
	p, err := NewPeer(peerTr, seeds, WithLogger(quietLogger(t)), WithEventHandler(w.handler()))
	if err != nil {
		t.Fatal(err)
	}
	joinStart := time.Now()
	wg.Go(func() { _ = p.Run(runCtx) })
	w.until(ctx, t, "the honest peer to join", func() bool { return len(w.rec.of(p.Addr(), EventJoined)) == 1 })
	joinTook := time.Since(joinStart)
	stillOpen := len(closedAfter) == 0
	// Only the flood has been refused so far: the slow connections are
	// still within their handshake deadline.
	rejected := seedTr.Stats().RejectedConns

	first, last := time.Duration(1<<62), time.Duration(0)
	for i := range slowConns {
		select {
		case d := <-closedAfter:
			first, last = min(first, d), max(last, d)
		case <-ctx.Done():
			t.Fatalf("only %d of %d slow connections closed", i, slowConns)
		}
	}
	if first < slowDeadline {
		t.Errorf("a slow connection was closed %v after its dial, before the %v handshake deadline", first, slowDeadline)
	}
	if last > slowDeadline+slowCloseSlack {
		t.Errorf("a slow connection was closed only %v after its dial, want by the %v handshake deadline + %v", last, slowDeadline, slowCloseSlack)
	}
	// How long the join took is logged, not bounded: its proof of work
	// (19 bits by default) takes a random time, several times longer
	// under the race detector, and a bound of 1 s failed at 1.012 s on a
	// clean CI run. What the defence must give is order: the honest peer
	// is in before any slow connection's handshake deadline, so they did
	// not hold it up.
	if !stillOpen {
		t.Errorf("the honest peer joined only after slow connections were closed")
	}
	if rejected < capDials-tcpMaxConnsPerIP {
		t.Errorf("%d connections rejected, want at least %d of the %d from 127.0.1.1", rejected, capDials-tcpMaxConnsPerIP, capDials)
	}
	if got := seed.Peers(); len(got) != 1 || got[0] != p.Addr() {
		t.Errorf("seed lists %v, want the honest peer", got)
	}
	select {
	case err := <-seedDone:
		t.Fatalf("the seed stopped during the attack: %v", err)
	default:
	}
	t.Logf("honest peer joined in %v (proof of work included) while %d slow connections hung; they were closed %v-%v after their dial (deadline %v + %v); %d of %d connections from one address rejected (cap %d per IP); the seed stayed up",
		joinTook.Round(time.Millisecond), slowConns, first.Round(time.Millisecond), last.Round(time.Millisecond), slowDeadline, slowCloseSlack, rejected, capDials, tcpMaxConnsPerIP)
}
