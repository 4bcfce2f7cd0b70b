package transport

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// TestTCPCloseFlushesQueue sends frames and closes at once: with the
// default linger they are written before the connection closes.
func TestTCPCloseFlushesQueue(t *testing.T) {
	b, err := ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, err := ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Establish the connection first, as a node's neighbour link would be.
	if err := a.Send(ctx, b.Addr(), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.Packets():
	case <-ctx.Done():
		t.Fatal("first frame not delivered")
	}
	const n = 100
	for i := range n {
		if err := a.Send(ctx, b.Addr(), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		select {
		case p := <-b.Packets():
			if p.Payload[0] != byte(i) {
				t.Fatalf("frame %d carries %d", i, p.Payload[0])
			}
		case <-ctx.Done():
			t.Fatalf("only %d of %d queued frames arrived after Close", i, n)
		}
	}
	if d := a.Stats().Dropped; d != 0 {
		t.Errorf("%d frames dropped at Close", d)
	}
}

// TestTCPMaxConnsPerIP: connections from one source IP over the cap are
// refused, while another IP still gets in.
func TestTCPMaxConnsPerIP(t *testing.T) {
	const perIP = 3
	srv, err := ListenTCP("127.0.0.1:0", WithMaxConnsPerIP(perIP))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dial := func(from string) net.Conn {
		d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatalf("dial from %s: %v", from, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closed reports whether the server closed c without reading from it.
	closed := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		return err != nil && !(errors.As(err, &ne) && ne.Timeout())
	}
	var conns []net.Conn
	for range perIP + 5 {
		conns = append(conns, dial("127.0.1.1"))
	}
	open := 0
	for _, c := range conns {
		if !closed(c) {
			open++
		}
	}
	if open != perIP {
		t.Errorf("%d connections from 127.0.1.1 stayed open, want %d", open, perIP)
	}
	if other := dial("127.0.2.1"); closed(other) {
		t.Error("a connection from another IP was refused")
	}
	if got := srv.Stats().RejectedConns; got != 5 {
		t.Errorf("RejectedConns = %d, want 5", got)
	}
}
