package gossip

// Internal micro-benchmarks of the hot paths (issue 5). Names are
// benchstat-friendly: compare runs with
//
//	go test -run '^$' -bench . -count 10 . > new.txt && benchstat old.txt new.txt

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/gossip-dev/gossip/codec"
	"github.com/gossip-dev/gossip/transport"
)

// benchConfig is the default configuration with a discarding logger, a
// fixed random seed and no rate limits.
func benchConfig(b *testing.B, opts ...Option) *config {
	b.Helper()
	cfg, err := newConfig(append([]Option{
		WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), WithRandSeed(1), WithMessages(0),
		// One origin sends every benchmark message: lift the per-origin
		// and per-source limits (DoS defences) out of the measurement.
		WithOriginRate(1 << 30), WithRateLimit(1<<30, 1<<30),
		// The relay benchmarks feed unsigned messages; signing costs are
		// measured separately.
		WithSignatures(false),
	}, opts...))
	if err != nil {
		b.Fatal(err)
	}
	if err := cfg.ensureIdentity(); err != nil {
		b.Fatal(err)
	}
	return cfg
}

// benchGossip is a relayed gossip message with a 256-byte payload, the
// load generator's default size.
func benchGossip() *wireMsg {
	return &wireMsg{
		V: wireVersion, K: kindGossip, Origin: "127.0.0.1:40001", Seq: 12345,
		Stamp: 1764081234125000000, Hops: 3, Payload: bytes.Repeat([]byte{'x'}, 256),
	}
}

// wireBenchCases names every sample of wireSamples by its kind (a repeated
// kind gets a suffix), plus the 256-byte gossip message.
func wireBenchCases() ([]string, []*wireMsg) {
	var names []string
	var msgs []*wireMsg
	seen := map[kind]int{}
	for _, m := range wireSamples() {
		seen[m.K]++
		name := m.K.String()
		if seen[m.K] > 1 {
			name = fmt.Sprintf("%s-%d", name, seen[m.K])
		}
		names = append(names, name)
		msgs = append(msgs, m)
	}
	names = append(names, "gossip-256B")
	msgs = append(msgs, benchGossip())
	return names, msgs
}

// BenchmarkWireEncode marshals one message of each kind with the default
// codec.
func BenchmarkWireEncode(b *testing.B) {
	cd := codec.Msgpack()
	names, msgs := wireBenchCases()
	for i, m := range msgs {
		b.Run("kind="+names[i], func(b *testing.B) {
			frame, err := cd.Marshal(m)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := cd.Marshal(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWireDecode unmarshals and validates one frame of each kind, as
// the node does for every inbound frame.
func BenchmarkWireDecode(b *testing.B) {
	cd := codec.Msgpack()
	names, msgs := wireBenchCases()
	for i, m := range msgs {
		b.Run("kind="+names[i], func(b *testing.B) {
			frame, err := cd.Marshal(m)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				var got wireMsg
				if err := cd.Unmarshal(frame, &got); err != nil {
					b.Fatal(err)
				}
				if err := got.validate(DefaultMaxPayload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWireRoundTrip is encode then decode of one message of each
// kind: the per-hop codec cost of a frame.
func BenchmarkWireRoundTrip(b *testing.B) {
	cd := codec.Msgpack()
	names, msgs := wireBenchCases()
	for i, m := range msgs {
		b.Run("kind="+names[i], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				frame, err := cd.Marshal(m)
				if err != nil {
					b.Fatal(err)
				}
				var got wireMsg
				if err := cd.Unmarshal(frame, &got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNodeFrameRoundTrip is the per-hop codec cost of a frame as the
// node pays it: encoded as flush encodes (into a reused buffer when the
// codec is a codec.AppendMarshaler, as the default is), then decoded
// (without copying its byte fields, the codec being a
// codec.AliasUnmarshaler) and validated as handle does.
func BenchmarkNodeFrameRoundTrip(b *testing.B) {
	cd := codec.Msgpack()
	app, al := cd.(codec.AppendMarshaler), cd.(codec.AliasUnmarshaler)
	m := benchGossip()
	b.Run("kind=gossip-256B", func(b *testing.B) {
		buf := make([]byte, 0, 1024)
		b.ReportAllocs()
		for b.Loop() {
			var err error
			if buf, err = app.AppendMarshal(buf[:0], m); err != nil {
				b.Fatal(err)
			}
			var got wireMsg
			if err := al.UnmarshalAlias(buf, &got); err != nil {
				b.Fatal(err)
			}
			if err := got.validate(DefaultMaxPayload); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGossipID hashes a gossip message's identity for payloads of
// several sizes.
func BenchmarkGossipID(b *testing.B) {
	for _, size := range []int{32, 256, 4096} {
		b.Run(fmt.Sprintf("payload=%d", size), func(b *testing.B) {
			payload := bytes.Repeat([]byte{'x'}, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			var seq uint64
			for b.Loop() {
				seq++
				_ = gossipID("127.0.0.1:40001", seq, 1764081234125000000, payload)
			}
		})
	}
}

const seenBenchSize = 100_000

// fullSeenSet returns a seen set at its default bound of 100k entries,
// filled with the ids of sequence numbers 1..100k, and those ids.
func fullSeenSet(now time.Time) (*seenSet, []msgID) {
	s := newSeenSet(seenBenchSize, DefaultSeenTTL)
	ids := make([]msgID, seenBenchSize)
	for i := range ids {
		ids[i] = gossipID("o", uint64(i+1), 0, nil)
		s.add(ids[i], now)
	}
	return s, ids
}

// BenchmarkSeenSet measures the seen set at 100k entries: adding a new id
// (which evicts the oldest), adding a known id (a duplicate), and
// looking up present and absent ids. Ids are precomputed, so hashing is
// not included.
func BenchmarkSeenSet(b *testing.B) {
	now := time.Unix(1_700_000_000, 0)
	b.Run("op=add-new/entries=100k", func(b *testing.B) {
		s, _ := fullSeenSet(now)
		// More fresh ids than the set holds: by the time they wrap around,
		// the first ones have been evicted, so every add is new.
		fresh := make([]msgID, 1<<18)
		for i := range fresh {
			fresh[i] = gossipID("p", uint64(i), 0, nil)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if !s.add(fresh[i&(len(fresh)-1)], now) {
				b.Fatal("fresh id reported seen")
			}
			i++
		}
		if s.len() != seenBenchSize {
			b.Fatalf("set holds %d entries, want %d", s.len(), seenBenchSize)
		}
	})
	b.Run("op=add-dup/entries=100k", func(b *testing.B) {
		s, ids := fullSeenSet(now)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if s.add(ids[i%len(ids)], now) {
				b.Fatal("duplicate reported new")
			}
			i++
		}
	})
	b.Run("op=lookup-hit/entries=100k", func(b *testing.B) {
		s, ids := fullSeenSet(now)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if !s.contains(ids[i%len(ids)]) {
				b.Fatal("miss")
			}
			i++
		}
	})
	b.Run("op=lookup-miss/entries=100k", func(b *testing.B) {
		s, _ := fullSeenSet(now)
		absent := make([]msgID, 1024)
		for i := range absent {
			absent[i] = gossipID("absent", uint64(i), 0, nil)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if s.contains(absent[i%len(absent)]) {
				b.Fatal("hit")
			}
			i++
		}
	})
}

// benchRelay returns a joined peer state with nbrs neighbours named
// n0..n{nbrs-1}, all connected inbound, with its effects drained.
func benchRelay(b *testing.B, nbrs int, opts ...Option) (*peerState, []string) {
	b.Helper()
	cfg := benchConfig(b, opts...)
	s := newPeerState(cfg, "127.0.0.1:50000", []string{"s1", "s2", "s3"}, new(peerCounters), newReputation(cfg))
	now := time.Unix(1_700_000_000, 0)
	s.start(now)
	for _, sd := range s.seeds[:2] {
		s.receive(sd, &wireMsg{K: kindRegisterAck}, now)
	}
	if !s.joined {
		b.Fatal("not joined")
	}
	names := make([]string, nbrs)
	for i := range names {
		names[i] = fmt.Sprintf("127.0.0.1:%d", 41000+i)
		s.receive(names[i], &wireMsg{K: kindConnect}, now)
	}
	if got := len(s.neighborsSorted()); got != nbrs {
		b.Fatalf("%d neighbours, want %d", got, nbrs)
	}
	s.fx.sends = s.fx.sends[:0]
	s.fx.events = nil
	return s, names
}

// BenchmarkPeerReceiveGossip is one first receipt of a gossip message by
// a peer with 8 neighbours: dedup (hash + seen set), the delivery event,
// and building the 7 relay sends (the origin is not a neighbour here, so
// the sender is the only one skipped). Effects are drained as the node's
// flush would, without encoding.
func BenchmarkPeerReceiveGossip(b *testing.B) {
	for _, nbrs := range []int{8} {
		b.Run(fmt.Sprintf("nbrs=%d", nbrs), func(b *testing.B) {
			s, names := benchRelay(b, nbrs)
			m := benchGossip()
			now := time.Unix(1_700_000_001, 0)
			b.ReportAllocs()
			for b.Loop() {
				m.Seq++
				s.receive(names[0], m, now)
				if len(s.fx.sends) != nbrs-1 {
					b.Fatalf("%d sends, want %d", len(s.fx.sends), nbrs-1)
				}
				clear(s.fx.sends)
				s.fx.sends = s.fx.sends[:0]
				s.fx.events = nil
			}
		})
	}
}

// BenchmarkPeerReceiveDuplicate is a repeated receipt: hash and seen-set
// hit only.
func BenchmarkPeerReceiveDuplicate(b *testing.B) {
	s, names := benchRelay(b, 8)
	m := benchGossip()
	now := time.Unix(1_700_000_001, 0)
	s.receive(names[0], m, now)
	s.fx.sends, s.fx.events = s.fx.sends[:0], nil
	b.ReportAllocs()
	for b.Loop() {
		s.receive(names[1], m, now)
	}
	if len(s.fx.sends) != 0 {
		b.Fatal("a duplicate was relayed")
	}
}

// discardTransport accepts every frame and drops it, so that flush
// benchmarks measure the node's own work.
type discardTransport struct {
	frames, bytes int
	inbox         chan transport.Packet
}

func (d *discardTransport) Addr() string { return "127.0.0.1:50000" }
func (d *discardTransport) Send(_ context.Context, _ string, frame []byte) error {
	d.frames++
	d.bytes += len(frame)
	return nil
}
func (d *discardTransport) Packets() <-chan transport.Packet { return d.inbox }
func (d *discardTransport) Close() error                     { return nil }

// BenchmarkNodeFlush carries out one relay of a 256-byte gossip message to
// 8 neighbours: the node's flush encodes each send and hands it to the
// transport (a discarding one here).
func BenchmarkNodeFlush(b *testing.B) {
	const sends = 8
	cfg := benchConfig(b)
	s, names := benchRelay(b, sends)
	tr := &discardTransport{}
	n := newNode(tr, cfg, s, s.rep)
	d := newDispatcher(nil)
	ctx := context.Background()
	m := benchGossip()
	b.Run(fmt.Sprintf("sends=%d", sends), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, a := range names {
				s.fx.send(a, m)
			}
			if err := n.flush(ctx, d); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRelayPath is the whole per-frame work of a relaying peer with 8
// neighbours, short of the transport: decode and validate the inbound
// frame, run the state machine, encode the 7 relayed frames.
func BenchmarkRelayPath(b *testing.B) {
	const nbrs = 8
	for _, prune := range []bool{false, true} {
		cfg := benchConfig(b, WithSelfPruning(prune))
		s, names := benchRelay(b, nbrs, WithSelfPruning(prune))
		m := benchGossip()
		if prune {
			// The sender shares 3 of this peer's other neighbours, which
			// confirm the links: 3 of the 7 copies are pruned.
			shared := []wirePeer{{Addr: names[1]}, {Addr: names[2]}, {Addr: names[3]}}
			s.receive(names[0], &wireMsg{K: kindNeighbors, Seq: 1, Peers: shared}, time.Unix(1_700_000_000, 0))
			for _, a := range names[1:4] {
				s.receive(a, &wireMsg{K: kindNeighbors, Seq: 1, Peers: []wirePeer{{Addr: names[0]}}}, time.Unix(1_700_000_000, 0))
			}
			s.fx.sends = s.fx.sends[:0]
			m.NV = 1
		}
		tr := &discardTransport{}
		n := newNode(tr, cfg, s, s.rep)
		d := newDispatcher(nil)
		ctx := context.Background()
		frames := make([][]byte, 1024)
		for i := range frames {
			m.Seq = uint64(i + 1)
			frames[i], _ = cfg.codec.Marshal(m)
		}
		b.Run(fmt.Sprintf("nbrs=%d/self-prune=%v", nbrs, prune), func(b *testing.B) {
			b.ReportAllocs()
			now := time.Unix(1_700_000_001, 0)
			i, frames0 := 0, tr.frames // -count runs this again on the same node
			for b.Loop() {
				var msg wireMsg
				if err := cfg.codec.Unmarshal(frames[i%len(frames)], &msg); err != nil {
					b.Fatal(err)
				}
				if err := msg.validate(cfg.maxPayload); err != nil {
					b.Fatal(err)
				}
				// Make every frame new: the seen set would drop a repeat.
				msg.Seq += uint64(i/len(frames)) << 32
				s.receive(names[0], &msg, now)
				if err := n.flush(ctx, d); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(tr.frames-frames0)/float64(i), "frames/op")
		})
	}
}
