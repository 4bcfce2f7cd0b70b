package transport_test

import (
	"context"
	"crypto/sha256"
	"fmt"
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
func BenchmarkTCPPairOneWay(b *testing.B) { benchTCPPair(b, 512) }

// BenchmarkTCPPairOneAtATime is BenchmarkTCPPairOneWay with one frame in
// flight: each is sent once the one before it has arrived. Nothing
// coalesces, so every frame pays the whole path alone (the writer's start,
// its write, the reader's wake-up and reads), as on a link that carries a
// frame every few milliseconds; the time per operation is that path's
// latency.
func BenchmarkTCPPairOneAtATime(b *testing.B) { benchTCPPair(b, 1) }

// BenchmarkTCPPairOneAtATimeParked is BenchmarkTCPPairOneAtATime with a
// receiver whose connection parks whenever it runs out of frames
// (transport.WithParkAfter of a nanosecond): every frame wakes the
// poller, which starts a reader. The difference from
// BenchmarkTCPPairOneAtATime is the cost of a park and a wake-up, paid by
// a frame on a quiet link.
func BenchmarkTCPPairOneAtATimeParked(b *testing.B) {
	benchTCPPair(b, 1, transport.WithParkAfter(time.Nanosecond))
}

func benchTCPPair(b *testing.B, window int, dstOpts ...transport.TCPOption) {
	const size = 256
	quiet := transport.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	a, err := transport.ListenTCP("127.0.0.1:0", quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	dst, err := transport.ListenTCP("127.0.0.1:0", append([]transport.TCPOption{quiet}, dstOpts...)...)
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

// BenchmarkTCPIdleLinks measures what idle links cost: one transport
// sends a frame to each of 200 others and every frame is received, then
// nothing more is sent. It reports the heap and goroutine stacks in use
// (after a collection) and the goroutines, over a baseline taken with the
// transports listening but unconnected, per link: each link is one
// outbound connection at the sender and one inbound at its receiver.
// Each iteration is one sample; the time per op means nothing.
func BenchmarkTCPIdleLinks(b *testing.B) {
	const links = 200
	quiet := transport.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	src, err := transport.ListenTCP("127.0.0.1:0", quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	dsts := make([]*transport.TCP, links)
	for i := range dsts {
		if dsts[i], err = transport.ListenTCP("127.0.0.1:0", quiet, transport.WithMaxConnsPerIP(links)); err != nil {
			b.Fatal(err)
		}
		defer dsts[i].Close()
	}
	sample := func() (heap, stack uint64, goroutines int) {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse, m.StackInuse, runtime.NumGoroutine()
	}
	heap0, stack0, g0 := sample()
	ctx := context.Background()
	for _, d := range dsts {
		if err := src.Send(ctx, d.Addr(), []byte("hello")); err != nil {
			b.Fatal(err)
		}
	}
	guard := time.NewTimer(time.Minute)
	defer guard.Stop()
	for _, d := range dsts {
		select {
		case <-d.Packets():
		case <-guard.C:
			b.Fatal("frames not delivered")
		}
	}
	var heap, stack uint64
	var g int
	for b.Loop() {
		heap, stack, g = sample()
	}
	b.ReportMetric((float64(heap)-float64(heap0))/links, "heap-bytes/link")
	b.ReportMetric((float64(stack)-float64(stack0))/links, "stack-bytes/link")
	b.ReportMetric(float64(g-g0)/links, "goroutines/link")
}

// BenchmarkTCPInboxBurst sends bursts of 20000 frames of 256 bytes, five
// times the default inbox, to a consumer that spends about a microsecond
// or two on each (hashing it), with the inbox dropping a frame that finds
// it full at once (wait=0, as before WithInboxWait existed) and with the
// default wait. One op is one burst, from the first Send to the last frame
// taken or dropped; it reports the share of the burst dropped. The
// sender's queue holds a whole burst, so that every drop is the
// receiver's.
func BenchmarkTCPInboxBurst(b *testing.B) {
	const size, burst = 256, 20000
	for _, w := range []time.Duration{0, time.Second} {
		b.Run(fmt.Sprintf("wait=%v", w), func(b *testing.B) {
			quiet := transport.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
			src, err := transport.ListenTCP("127.0.0.1:0", quiet, transport.WithQueueSize(burst))
			if err != nil {
				b.Fatal(err)
			}
			defer src.Close()
			dst, err := transport.ListenTCP("127.0.0.1:0", quiet, transport.WithInboxWait(w))
			if err != nil {
				b.Fatal(err)
			}
			defer dst.Close()
			var taken atomic.Uint64
			done := make(chan struct{})
			var wg sync.WaitGroup
			defer wg.Wait()
			defer close(done)
			wg.Go(func() {
				for {
					select {
					case p := <-dst.Packets():
						for range 4 {
							sha256.Sum256(p.Payload)
						}
						taken.Add(1)
					case <-done:
						return
					}
				}
			})

			frame := make([]byte, size)
			ctx := context.Background()
			deadline := time.Now().Add(time.Minute)
			var sent uint64
			for b.Loop() {
				for range burst {
					if err := src.Send(ctx, dst.Addr(), frame); err != nil {
						b.Fatal(err)
					}
				}
				sent += burst
				for taken.Load()+dst.Stats().Dropped < sent {
					if time.Now().After(deadline) {
						b.Fatalf("stalled: %d taken, %+v", taken.Load(), dst.Stats())
					}
					time.Sleep(100 * time.Microsecond)
				}
			}
			st := dst.Stats()
			if d := src.Stats().Dropped; d != 0 {
				b.Fatalf("the sender dropped %d frames", d)
			}
			b.ReportMetric(100*float64(st.Dropped)/float64(sent), "%dropped")
		})
	}
}
