package gossip

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gossip-dev/gossip/transport"
)

const (
	slowConns    = 200
	capDials     = 1000
	slowDeadline = 5 * time.Second // the TCP transport's default handshake timeout
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
	wg.Go(func() { _ = seed.Run(runCtx) })

	dial := func(from string) (net.Conn, error) {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		return d.DialContext(ctx, "tcp", seedTr.Addr())
	}
	// The slow connections: a plausible hello header (64 bytes to come),
	// then one byte a second, never a whole hello.
	attackStart := time.Now()
	closedAt := make(chan time.Duration, slowConns)
	for i := range slowConns {
		c, err := dial(fmt.Sprintf("127.0.3.%d", i+1))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer c.Close()
			header := []byte{0, 0, 0, 64}
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
			closedAt <- time.Since(attackStart)
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
	stillOpen := len(closedAt) == 0
	// Only the flood has been refused so far: the slow connections are
	// still within their handshake deadline.
	rejected := seedTr.Stats().RejectedConns

	var first, last time.Duration
	for i := range slowConns {
		select {
		case d := <-closedAt:
			if i == 0 {
				first = d
			}
			last = d
		case <-ctx.Done():
			t.Fatalf("only %d of %d slow connections closed", i, slowConns)
		}
	}
	if first < slowDeadline {
		t.Errorf("a slow connection was closed after %v, before the %v handshake deadline", first, slowDeadline)
	}
	if !stillOpen {
		t.Errorf("the honest peer joined only after slow connections were closed")
	}
	if rejected < capDials-32 {
		t.Errorf("%d connections rejected, want at least %d of the %d from 127.0.1.1", rejected, capDials-32, capDials)
	}
	if got := seed.Peers(); len(got) != 1 || got[0] != p.Addr() {
		t.Errorf("seed lists %v, want the honest peer", got)
	}
	t.Logf("honest peer joined in %v (proof of work included) while %d slow connections hung; they were closed %v-%v after opening (deadline %v); %d of %d connections from one address rejected",
		joinTook.Round(time.Millisecond), slowConns, first.Round(time.Millisecond), last.Round(time.Millisecond), slowDeadline, rejected, capDials)
}
