package transport_test

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
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

// BenchmarkTCPFanOut8 sends each of b.N frames of 256 bytes from one
// transport to 8 others over loopback, as a peer relaying to 8 neighbours
// does: one op is 8 frames. Each receiver is drained by its own goroutine;
// the sender keeps at most window frames in flight per destination, so
// nothing is dropped.
func BenchmarkTCPFanOut8(b *testing.B) {
	const size, fanout, window = 256, 8, 512
	quiet := transport.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	src, err := transport.ListenTCP("127.0.0.1:0", quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	dsts := make([]*transport.TCP, fanout)
	recvd := make([]atomic.Int64, fanout)
	var wg sync.WaitGroup
	done := make(chan struct{})
	for i := range dsts {
		dsts[i], err = transport.ListenTCP("127.0.0.1:0", quiet)
		if err != nil {
			b.Fatal(err)
		}
		defer dsts[i].Close()
		wg.Go(func() {
			for {
				select {
				case <-dsts[i].Packets():
					recvd[i].Add(1)
				case <-done:
					return
				}
			}
		})
	}
	defer wg.Wait()
	defer close(done)

	frame := make([]byte, size)
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	slowest := func() int64 {
		m := recvd[0].Load()
		for i := range recvd {
			m = min(m, recvd[i].Load())
		}
		return m
	}
	b.SetBytes(size * fanout)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for sent := int64(0); sent < int64(b.N); sent++ {
		for sent-slowest() >= window {
			if time.Now().After(deadline) {
				b.Fatalf("stalled at %d of %d; dropped %d", slowest(), b.N, src.Stats().Dropped)
			}
			runtime.Gosched()
		}
		for _, d := range dsts {
			if err := src.Send(ctx, d.Addr(), frame); err != nil {
				b.Fatal(err)
			}
		}
	}
	for slowest() < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("received %d of %d; dropped %d", slowest(), b.N, src.Stats().Dropped)
		}
		runtime.Gosched()
	}
	b.ReportMetric(float64(b.N*fanout)/time.Since(start).Seconds(), "frames/s")
}
