package gossip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gossip-dev/gossip/codec"
)

// wireSamples has one message of every kind, with the fields it uses.
func wireSamples() []*wireMsg {
	return []*wireMsg{
		{V: 1, K: kindRegister, Degree: 3},
		{V: 1, K: kindRegisterAck, Peers: []wirePeer{{Addr: "127.0.0.1:8001", Degree: 2}, {Addr: "127.0.0.1:8002"}}},
		{V: 1, K: kindRegisterReject, Reason: "seed full"},
		{V: 1, K: kindPeerListReq},
		{V: 1, K: kindPeerList, Peers: []wirePeer{{Addr: "[::1]:8001", Degree: 7}}},
		{V: 1, K: kindDegree, Degree: 12},
		{V: 1, K: kindDeadReport, Addr: "127.0.0.1:8003", Stamp: 1764081234125000000},
		{V: 1, K: kindSeedDead, Addr: "127.0.0.1:8003", Stamp: 1764081234125000000},
		{V: 1, K: kindLeave},
		{V: 1, K: kindConnect},
		{V: 1, K: kindConnectAck},
		{V: 1, K: kindConnectReject, Reason: "full"},
		{V: 1, K: kindDisconnect},
		{V: 1, K: kindGossip, Origin: "127.0.0.1:8001", Seq: 10, Stamp: -5, Hops: 3, Payload: []byte("1764081234.125:127.0.0.1:8001:10")},
		{V: 1, K: kindGossip, Origin: "o", Seq: 1 << 63, Payload: []byte{0, 0xff, 0x80}},
		{V: 1, K: kindPing, Stamp: 1764081234125000001},
		{V: 1, K: kindPong, Stamp: 1764081234125000001, Addr: "127.0.0.1:8001"},
		{V: 1, K: kindDigest, IDs: []uint64{1, 1 << 63, 42}},
		{V: 1, K: kindWant, IDs: []uint64{7}},
		{V: 1, K: kindIHave, IDs: []uint64{7, 8}, IDHops: []byte{2, 3}},
		{V: 1, K: kindGraft, IDs: []uint64{9}},
		{V: 1, K: kindPrune},
		{V: 1, K: kindChallenge, Nonce: make([]byte, 16), Diff: 18, Stamp: 1},
		{V: 1, K: kindRegister, Key: make([]byte, 32), Nonce: make([]byte, 16), Counter: 12345},
		{V: 1, K: kindNeighbors, Seq: 3, Peers: []wirePeer{{Addr: "127.0.0.1:8001"}, {Addr: "127.0.0.1:8002"}}},
		{V: 1, K: kindGossip, Origin: "o", Seq: 2, Payload: []byte("r"), NV: 7},
	}
}

func TestWireRoundTrip(t *testing.T) {
	covered := map[kind]bool{}
	for _, cd := range []codec.Codec{codec.Msgpack(), codec.JSON()} {
		for _, m := range wireSamples() {
			covered[m.K] = true
			b, err := cd.Marshal(m)
			if err != nil {
				t.Fatalf("%s marshal %v: %v", cd.Name(), m.K, err)
			}
			var got wireMsg
			if err := cd.Unmarshal(b, &got); err != nil {
				t.Fatalf("%s unmarshal %v: %v", cd.Name(), m.K, err)
			}
			if diff := cmp.Diff(m, &got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s %v (-want +got):\n%s", cd.Name(), m.K, diff)
			}
			if err := got.validate(DefaultMaxPayload); err != nil {
				t.Errorf("%s %v: valid message rejected: %v", cd.Name(), m.K, err)
			}
		}
	}
	for k := kind(1); k < kindMax; k++ {
		if !covered[k] {
			t.Errorf("no round-trip sample for %v", k)
		}
	}
}

func TestWireValidate(t *testing.T) {
	bad := []*wireMsg{
		{V: 0, K: kindPing},
		{V: 1, K: 0},
		{V: 1, K: kindMax},
		{V: 1, K: 200},
		{V: 1, K: kindDeadReport},
		{V: 1, K: kindGossip, Payload: []byte("x")},
		{V: 1, K: kindGossip, Origin: "o", Payload: make([]byte, 11)},
		{V: 1, K: kindRegister, Degree: -1},
		{V: 1, K: kindGossip, Origin: "o", Hops: -1},
		{V: 1, K: kindDigest, IDs: make([]uint64, maxDigest+1)},
		{V: 1, K: kindIHave, IDs: []uint64{1, 2}, IDHops: []byte{1}},
		{V: 1, K: kindNeighbors, Peers: make([]wirePeer, MaxDegreeLimit+1)},
	}
	for i, m := range bad {
		if err := m.validate(10); err == nil {
			t.Errorf("%d: %+v accepted", i, m)
		}
	}
	if err := (&wireMsg{V: 1, K: kindGossip, Origin: "o", Payload: make([]byte, 11)}).validate(10); !errors.Is(err, ErrPayloadTooLarge) {
		t.Errorf("oversized payload: %v, want ErrPayloadTooLarge", err)
	}
	// Newer versions are accepted (fields they add are ignored).
	if err := (&wireMsg{V: 9, K: kindPing}).validate(10); err != nil {
		t.Errorf("newer version rejected: %v", err)
	}
}

func TestGossipIDDistinguishes(t *testing.T) {
	base := gossipID("a:1", 1, 2, []byte("x"))
	for name, id := range map[string]msgID{
		"origin":  gossipID("a:2", 1, 2, []byte("x")),
		"seq":     gossipID("a:1", 2, 2, []byte("x")),
		"stamp":   gossipID("a:1", 1, 3, []byte("x")),
		"payload": gossipID("a:1", 1, 2, []byte("y")),
		"shift":   gossipID("a:", 1, 2, []byte("1x")),
	} {
		if id == base {
			t.Errorf("changing the %s does not change the id", name)
		}
	}
}

// FuzzDecodeMessage feeds arbitrary frames to the decoder and validator the
// node runs on every inbound frame: no panic, and what passes must
// re-encode to an equal message.
func FuzzDecodeMessage(f *testing.F) {
	cd := codec.Msgpack()
	for _, m := range wireSamples() {
		b, _ := cd.Marshal(m)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xc6, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, frame []byte) {
		var m wireMsg
		if err := cd.Unmarshal(frame, &m); err != nil {
			if !errors.Is(err, codec.ErrMalformed) {
				t.Fatalf("decode error %v does not wrap codec.ErrMalformed", err)
			}
			return
		}
		if m.validate(DefaultMaxPayload) != nil {
			return
		}
		b, err := cd.Marshal(&m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		var again wireMsg
		if err := cd.Unmarshal(b, &again); err != nil {
			t.Fatalf("decode of re-encoded: %v", err)
		}
		if diff := cmp.Diff(&m, &again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

// fxMachine is a machine that does nothing but hold effects, so that a
// test can queue sends and have the node flush them.
type fxMachine struct{ fx effects }

func (*fxMachine) start(time.Time)                     {}
func (*fxMachine) receive(string, *wireMsg, time.Time) {}
func (*fxMachine) tick(time.Time)                      {}
func (*fxMachine) next() time.Time                     { return time.Time{} }
func (*fxMachine) ban(string, time.Time)               {}
func (*fxMachine) stop(time.Time)                      {}
func (m *fxMachine) effects() *effects                 { return &m.fx }

// copyingTransport records a copy of every frame sent, as a transport
// must: it may not keep the frame itself.
type copyingTransport struct {
	discardTransport
	to     []string
	frames [][]byte
}

func (c *copyingTransport) Send(_ context.Context, addr string, frame []byte) error {
	c.to = append(c.to, addr)
	c.frames = append(c.frames, bytes.Clone(frame))
	return nil
}

// marshalOnly hides the AppendMarshal of the codec it wraps.
type marshalOnly struct{ codec.Codec }

// TestFlushFrames: flush sends every message encoded exactly as the codec's
// Marshal encodes it, whether the codec appends into the reused frame
// buffer or not, across messages of different sizes (the buffer grows, and
// a shorter frame follows a longer one) and across flushes.
func TestFlushFrames(t *testing.T) {
	small := benchGossip()
	small.Payload = []byte("s")
	large := benchGossip()
	large.Payload = bytes.Repeat([]byte{'L'}, 3000)
	huge := benchGossip()
	huge.Payload = bytes.Repeat([]byte{'H'}, maxPooledFrame+1)
	for _, cd := range []codec.Codec{codec.Msgpack(), marshalOnly{codec.Msgpack()}, codec.JSON()} {
		cfg, err := newConfig([]Option{WithLogger(quietLogger(t)), WithCodec(cd)})
		if err != nil {
			t.Fatal(err)
		}
		m := &fxMachine{}
		tr := &copyingTransport{}
		n := newNode(tr, cfg, m, newReputation(cfg))
		if _, ok := cd.(codec.AppendMarshaler); ok != (n.app != nil) {
			t.Fatalf("%T: node app %v", cd, n.app)
		}
		d := newDispatcher(nil)
		var want []*wireMsg
		for round := range 3 {
			for i, msg := range []*wireMsg{benchGossip(), benchGossip(), large, small, huge, small, wireSamples()[1]} {
				m.fx.send(fmt.Sprintf("%d-%d", round, i), msg)
				m.fx.send(fmt.Sprintf("%d-%d-again", round, i), msg)
				want = append(want, msg, msg)
			}
			if err := n.flush(t.Context(), d); err != nil {
				t.Fatal(err)
			}
		}
		if len(tr.frames) != len(want) {
			t.Fatalf("%s: %d frames sent, want %d", cd.Name(), len(tr.frames), len(want))
		}
		for i, msg := range want {
			frame, err := cd.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(tr.frames[i], frame) {
				t.Errorf("%T: frame %d to %s:\ngot  %.80x\nwant %.80x", cd, i, tr.to[i], tr.frames[i], frame)
			}
		}
	}
}

// TestDetachCopiesByteFields: a message decoded in place keeps nothing of
// its frame once detached, so that a key kept from a peer list does not
// pin the whole list's frame.
func TestDetachCopiesByteFields(t *testing.T) {
	in := &wireMsg{V: 1, K: kindRegisterAck, Nonce: bytes.Repeat([]byte{1}, 16), Key: bytes.Repeat([]byte{2}, 32),
		Peers: []wirePeer{{Addr: "a:1", Key: bytes.Repeat([]byte{3}, 32)}, {Addr: "b:1"}}}
	frame, err := codec.Msgpack().Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var m wireMsg
	if err := codec.Msgpack().(codec.AliasUnmarshaler).UnmarshalAlias(frame, &m); err != nil {
		t.Fatal(err)
	}
	inFrame := func(b []byte) bool {
		return len(b) > 0 && uintptr(unsafe.Pointer(&b[0])) >= uintptr(unsafe.Pointer(&frame[0])) &&
			uintptr(unsafe.Pointer(&b[0])) < uintptr(unsafe.Pointer(&frame[0]))+uintptr(len(frame))
	}
	if !inFrame(m.Peers[0].Key) {
		t.Fatal("UnmarshalAlias copied the peer key: this test checks nothing")
	}
	m.detach()
	if inFrame(m.Nonce) || inFrame(m.Key) || inFrame(m.Peers[0].Key) {
		t.Fatal("a byte field still shares the frame after detach")
	}
	if diff := cmp.Diff(in, &m); diff != "" {
		t.Fatalf("detach changed the message (-want +got):\n%s", diff)
	}
}
