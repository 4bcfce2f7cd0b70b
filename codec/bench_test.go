package codec_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/gossip-dev/gossip/codec"
)

// benchMessage is a representative gossip message carrying a 256-byte
// payload and a handful of peers.
func benchMessage() *message {
	peers := make([]peer, 4)
	for i := range peers {
		peers[i] = peer{Addr: fmt.Sprintf("10.0.0.%d:7946", i+1), Degree: 8 + i}
	}
	return &message{
		Kind:    2,
		Seq:     1<<40 + 12345,
		Delta:   -42,
		From:    "10.0.0.254:7946",
		Payload: bytes.Repeat([]byte("gossip!!"), 32), // 256 bytes
		Peers:   peers,
		Ack:     true,
		Origin:  &origin{Node: "node-17", Epoch: 3},
	}
}

func benchMarshal(b *testing.B, c codec.Codec) {
	m := benchMessage()
	out, err := c.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Marshal(m); err != nil {
			b.Fatal(err)
		}
	}
}

func benchUnmarshal(b *testing.B, c codec.Codec) {
	data, err := c.Marshal(benchMessage())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var m message
		if err := c.Unmarshal(data, &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMsgpackMarshal(b *testing.B)   { benchMarshal(b, codec.Msgpack()) }
func BenchmarkMsgpackUnmarshal(b *testing.B) { benchUnmarshal(b, codec.Msgpack()) }
func BenchmarkJSONMarshal(b *testing.B)      { benchMarshal(b, codec.JSON()) }
func BenchmarkJSONUnmarshal(b *testing.B)    { benchUnmarshal(b, codec.JSON()) }

// BenchmarkMsgpackParallel measures the pooled encoders and decoders under
// contention.
func BenchmarkMsgpackParallel(b *testing.B) {
	c := codec.Msgpack()
	m := benchMessage()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			data, err := c.Marshal(m)
			if err != nil {
				b.Error(err)
				return
			}
			var out message
			if err := c.Unmarshal(data, &out); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
