package transport_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gossip-dev/gossip/transport"
	"github.com/gossip-dev/gossip/transport/transporttest"
)

func TestMemConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T) (transport.Transport, transport.Transport) {
		n := transport.NewNetwork(1)
		return newMem(t, n, "a"), newMem(t, n, "b")
	})
}

func newMem(t *testing.T, n *transport.Network, addr string) *transport.Mem {
	t.Helper()
	m, err := n.NewTransport(addr)
	if err != nil {
		t.Fatalf("NewTransport(%q): %v", addr, err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func mustSend(t *testing.T, from transport.Transport, to string, frame []byte) {
	t.Helper()
	if err := from.Send(context.Background(), to, frame); err != nil {
		t.Fatalf("Send %s→%s: %v", from.Addr(), to, err)
	}
}

// drain returns what is in tr's inbox right now, without blocking. Inside
// a synctest bubble call it after synctest.Wait.
func drain(tr transport.Transport) []transport.Packet {
	var got []transport.Packet
	for {
		select {
		case p := <-tr.Packets():
			got = append(got, p)
		default:
			return got
		}
	}
}

func TestMemLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := transport.NewNetwork(1)
		a, b := newMem(t, n, "a"), newMem(t, n, "b")
		const latency = 50 * time.Millisecond
		n.SetFault("a", "b", transport.Fault{Latency: latency})

		start := time.Now()
		mustSend(t, a, "b", []byte("slow"))
		mustSend(t, b, "a", []byte("fast")) // the reverse link has no fault
		synctest.Wait()
		if got := drain(b); len(got) != 0 {
			t.Fatalf("b got %d frames before the latency elapsed", len(got))
		}
		if got := drain(a); len(got) != 1 || string(got[0].Payload) != "fast" {
			t.Fatalf("a got %v, want the undelayed frame at once", got)
		}

		time.Sleep(latency - time.Nanosecond)
		synctest.Wait()
		if got := drain(b); len(got) != 0 {
			t.Fatalf("b got %d frames 1ns before the latency elapsed", len(got))
		}
		p := <-b.Packets()
		if d := time.Since(start); d != latency {
			t.Errorf("frame arrived after %v, want exactly %v", d, latency)
		}
		if p.From != "a" || string(p.Payload) != "slow" {
			t.Errorf("got %q from %q", p.Payload, p.From)
		}
	})
}

func TestMemJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := transport.NewNetwork(3)
		a, b := newMem(t, n, "a"), newMem(t, n, "b")
		const latency, jitter = 10 * time.Millisecond, 5 * time.Millisecond
		n.SetDefaultFault(transport.Fault{Latency: latency, Jitter: jitter})
		start := time.Now()
		for i := range 100 {
			mustSend(t, a, "b", []byte{byte(i)})
		}
		distinct := map[time.Duration]bool{}
		for range 100 {
			<-b.Packets()
			d := time.Since(start)
			if d < latency || d > latency+jitter {
				t.Fatalf("delay %v outside [%v, %v]", d, latency, latency+jitter)
			}
			distinct[d] = true
		}
		if len(distinct) < 2 {
			t.Errorf("jitter produced a single delay %v", distinct)
		}
	})
}

// deliveredWithDrop sends frames over a link with the given drop chance and
// returns how many arrived.
func deliveredWithDrop(t *testing.T, seed uint64, drop float64, frames int) int {
	var got int
	synctest.Test(t, func(t *testing.T) {
		n := transport.NewNetwork(seed)
		a, b := newMem(t, n, "a"), newMem(t, n, "b")
		n.SetFault("a", "b", transport.Fault{Drop: drop})
		for range frames {
			mustSend(t, a, "b", []byte("x"))
		}
		synctest.Wait()
		got = len(drain(b))
		if st := a.Stats(); st.Sent != uint64(frames) || st.Lost != uint64(frames-got) {
			t.Errorf("a stats = %+v, want %d sent and %d lost", st, frames, frames-got)
		}
	})
	return got
}

func TestMemDrop(t *testing.T) {
	if got := deliveredWithDrop(t, 1, 1, 100); got != 0 {
		t.Errorf("Drop=1 delivered %d of 100", got)
	}
	if got := deliveredWithDrop(t, 1, 0, 100); got != 100 {
		t.Errorf("Drop=0 delivered %d of 100", got)
	}
	first := deliveredWithDrop(t, 42, 0.5, 1000)
	second := deliveredWithDrop(t, 42, 0.5, 1000)
	if first != second {
		t.Errorf("same seed delivered %d then %d frames", first, second)
	}
	if first < 400 || first > 600 {
		t.Errorf("Drop=0.5 delivered %d of 1000", first)
	}
	t.Logf("seed 42, Drop=0.5: %d of 1000 delivered", first)
}

func TestMemDefaultAndLinkFault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := transport.NewNetwork(1)
		a, b, c := newMem(t, n, "a"), newMem(t, n, "b"), newMem(t, n, "c")
		n.SetDefaultFault(transport.Fault{Drop: 1})
		n.SetFault("a", "c", transport.Fault{}) // a perfect link overrides the default
		mustSend(t, a, "b", []byte("lost"))
		mustSend(t, a, "c", []byte("kept"))
		synctest.Wait()
		if len(drain(b)) != 0 || len(drain(c)) != 1 {
			t.Fatal("link fault did not override the default fault")
		}
		n.ClearFault("a", "c")
		mustSend(t, a, "c", []byte("lost"))
		synctest.Wait()
		if len(drain(c)) != 0 {
			t.Fatal("after ClearFault the default fault did not apply")
		}
	})
}

// reach reports, for each ordered pair of transports, whether a frame got
// through. The result lists "from>to" pairs that delivered.
func reach(t *testing.T, nodes ...*transport.Mem) map[string]bool {
	t.Helper()
	for _, from := range nodes {
		for _, to := range nodes {
			if from != to {
				mustSend(t, from, to.Addr(), []byte(from.Addr()))
			}
		}
	}
	synctest.Wait()
	ok := map[string]bool{}
	for _, to := range nodes {
		for _, p := range drain(to) {
			ok[p.From+">"+to.Addr()] = true
		}
	}
	return ok
}

func TestMemPartition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := transport.NewNetwork(1)
		a, b, c, d := newMem(t, n, "a"), newMem(t, n, "b"), newMem(t, n, "c"), newMem(t, n, "d")
		n.Partition([]string{"a", "b"}, []string{"c"}) // d is unlisted: its own group
		got := reach(t, a, b, c, d)
		want := map[string]bool{"a>b": true, "b>a": true}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("partitioned reachability = %v, want %v", got, want)
		}

		n.Partition([]string{"a"}) // b, c, d are unlisted: one group
		got = reach(t, a, b, c, d)
		if len(got) != 6 || got["a>b"] || got["b>a"] {
			t.Errorf("reachability = %v, want b, c, d connected and a isolated", got)
		}

		n.Heal()
		if got := reach(t, a, b, c, d); len(got) != 12 {
			t.Errorf("after Heal %d of 12 links work: %v", len(got), got)
		}

		// A frame in flight when the partition starts is lost.
		n.SetFault("a", "b", transport.Fault{Latency: time.Second})
		mustSend(t, a, "b", []byte("in flight"))
		n.Partition([]string{"a"}, []string{"b"})
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := drain(b); len(got) != 0 {
			t.Errorf("frame in flight crossed a new partition: %v", got)
		}
	})
}

func TestMemCrashRestore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := transport.NewNetwork(1)
		a, b, c := newMem(t, n, "a"), newMem(t, n, "b"), newMem(t, n, "c")
		n.Crash("b")
		if err := b.Send(context.Background(), "a", []byte("x")); err != nil {
			t.Fatalf("Send from a crashed node = %v, want nil (it does not know)", err)
		}
		got := reach(t, a, b, c)
		want := map[string]bool{"a>c": true, "c>a": true}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("with b crashed reachability = %v, want %v", got, want)
		}
		n.Restore("b")
		if got := reach(t, a, b, c); len(got) != 6 {
			t.Errorf("after Restore %d of 6 links work: %v", len(got), got)
		}
	})
}

func TestMemFilter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := transport.NewNetwork(1)
		a, b := newMem(t, n, "a"), newMem(t, n, "b")
		var seen, rejected atomic.Int64
		n.SetFilter(func(from, to string, frame []byte) bool {
			seen.Add(1)
			if bytes.HasPrefix(frame, []byte("drop")) {
				rejected.Add(1)
				return false
			}
			return true
		})
		n.SetFault("a", "b", transport.Fault{Drop: 1})
		mustSend(t, a, "b", []byte("lost before the filter"))
		n.ClearFault("a", "b")

		const senders, each = 4, 50
		var wg sync.WaitGroup
		for i := range senders {
			wg.Go(func() {
				for j := range each {
					frame := []byte(fmt.Sprintf("keep %d/%d", i, j))
					if j%2 == 1 {
						frame = []byte("drop")
					}
					if err := a.Send(context.Background(), "b", frame); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		synctest.Wait()
		if s, r := seen.Load(), rejected.Load(); s != senders*each || r != senders*each/2 {
			t.Errorf("filter saw %d and rejected %d, want %d and %d", s, r, senders*each, senders*each/2)
		}
		if got := len(drain(b)); got != senders*each/2 {
			t.Errorf("b got %d frames, want %d", got, senders*each/2)
		}
		n.SetFilter(nil)
		mustSend(t, a, "b", []byte("drop? no filter"))
		synctest.Wait()
		if got := len(drain(b)); got != 1 {
			t.Errorf("after removing the filter b got %d frames, want 1", got)
		}
	})
}

func TestMemInboxOverflow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := transport.NewNetwork(1)
		n.SetInboxSize(5)
		a, b := newMem(t, n, "a"), newMem(t, n, "b")
		for i := range 8 {
			mustSend(t, a, "b", []byte{byte(i)})
		}
		synctest.Wait()
		got := drain(b)
		if len(got) != 5 {
			t.Fatalf("b got %d frames, want 5", len(got))
		}
		for i, p := range got {
			if p.Payload[0] != byte(i) {
				t.Fatalf("frame %d = %v, want the first five in order", i, p.Payload)
			}
		}
		if st := b.Stats(); st.Received != 8 || st.Dropped != 3 {
			t.Errorf("b stats = %+v, want 8 received and 3 dropped", st)
		}
		if f := n.Frames(); f != 5 {
			t.Errorf("Frames() = %d, want 5", f)
		}
	})
}

func TestMemRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := transport.NewNetwork(1)
		a, b := newMem(t, n, "a"), newMem(t, n, "b")
		if _, err := n.NewTransport("b"); !errors.Is(err, transport.ErrAddrInUse) {
			t.Fatalf("NewTransport on a live address = %v, want ErrAddrInUse", err)
		}
		n.SetFault("a", "b", transport.Fault{Latency: time.Second})
		mustSend(t, a, "b", []byte("to the old b"))
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		mustSend(t, a, "b", []byte("to nobody")) // a dead host: silent loss

		b2 := newMem(t, n, "b")
		n.ClearFault("a", "b")
		mustSend(t, a, "b", []byte("to the new b"))
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := drain(b2); len(got) != 1 || string(got[0].Payload) != "to the new b" {
			t.Errorf("restarted b got %v, want only the frame sent after restart", got)
		}
		if got := drain(b); len(got) != 0 {
			t.Errorf("closed b got %d frames", len(got))
		}
		if st := a.Stats(); st.Lost != 2 {
			t.Errorf("a lost %d frames, want 2", st.Lost)
		}
	})
}

func TestMemSendErrors(t *testing.T) {
	n := transport.NewNetwork(1)
	a := newMem(t, n, "a")
	if err := a.Send(context.Background(), "nowhere", nil); !errors.Is(err, transport.ErrUnknownAddr) {
		t.Errorf("Send to an unknown address = %v, want ErrUnknownAddr", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Send(ctx, "a", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Send with a canceled context = %v, want context.Canceled", err)
	}
	if _, err := n.NewTransport(""); err == nil {
		t.Error("NewTransport(\"\") succeeded")
	}
}

func TestMemExtremeFaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := transport.NewNetwork(1)
		a, b := newMem(t, n, "a"), newMem(t, n, "b")
		n.SetFault("a", "b", transport.Fault{Drop: math.NaN(), Latency: math.MaxInt64, Jitter: math.MaxInt64})
		n.SetDefaultFault(transport.Fault{Drop: -3, Latency: -time.Second, Jitter: -time.Second})
		mustSend(t, a, "b", []byte("far future"))
		mustSend(t, b, "a", []byte("now"))
		synctest.Wait()
		if got := drain(a); len(got) != 1 {
			t.Errorf("negative fault values delayed or dropped the frame: got %d", len(got))
		}
	})
}
