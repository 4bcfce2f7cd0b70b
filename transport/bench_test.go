package transport_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/gossip-dev/gossip/transport"
)

// BenchmarkTCPPairOneWay sends b.N frames of 256 bytes from one transport to
// another over loopback. The sender keeps at most window frames in flight,
// below the queue and inbox sizes, so no frame is dropped and the figure is
// the transport's sustained throughput.
func BenchmarkTCPPairOneWay(b *testing.B) {
	const size, window = 256, 512
	quiet := transport.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	a, err := transport.ListenTCP("127.0.0.1:0", quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	dst, err := transport.ListenTCP("127.0.0.1:0", quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer dst.Close()

	frame := make([]byte, size)
	ctx := context.Background()
	guard := time.NewTimer(time.Minute)
	defer guard.Stop()
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	sent, recvd := 0, 0
	for recvd < b.N {
		if sent < b.N && sent-recvd < window {
			if err := a.Send(ctx, dst.Addr(), frame); err != nil {
				b.Fatal(err)
			}
			sent++
			continue
		}
		select {
		case <-dst.Packets():
			recvd++
		case <-guard.C:
			b.Fatalf("received %d of %d frames; dropped %d", recvd, b.N, a.Stats().Dropped+dst.Stats().Dropped)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "frames/s")
}

// BenchmarkMemSend measures one Send and receive on an in-memory network
// without faults.
func BenchmarkMemSend(b *testing.B) {
	n := transport.NewNetwork(1)
	a, _ := n.NewTransport("a")
	dst, _ := n.NewTransport("b")
	frame := make([]byte, 256)
	ctx := context.Background()
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Send(ctx, "b", frame); err != nil {
			b.Fatal(err)
		}
		<-dst.Packets()
	}
}
