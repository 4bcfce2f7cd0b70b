package codec_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gossip-dev/gossip/codec"
)

// seedCorpus adds valid encodings of every round-trip case, their prefixes
// and some junk to f.
func seedCorpus(f *testing.F, c codec.Codec, junk ...[]byte) {
	for _, tc := range roundTripCases() {
		if len(tc.in.Payload) > 1024 || len(tc.in.Peers) > 16 {
			continue // keep seeds small so the fuzzer mutates them well
		}
		b, err := c.Marshal(tc.in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	v2, err := c.Marshal(messageV2{Extra: map[string][]int{"a": {1}}, Note: "n"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(v2)
	f.Add([]byte{})
	for _, j := range junk {
		f.Add(j)
	}
}

// fuzzUnmarshal checks the properties every codec must have on arbitrary
// input: Unmarshal never panics, every failure wraps ErrMalformed, and a
// value it accepts survives another encode/decode round trip unchanged.
func fuzzUnmarshal(t *testing.T, c codec.Codec, data []byte) {
	var first message
	if err := c.Unmarshal(data, &first); err != nil {
		if !errors.Is(err, codec.ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		return
	}
	b, err := c.Marshal(&first)
	if err != nil {
		t.Fatalf("re-encoding an accepted value: %v", err)
	}
	var second message
	if err := c.Unmarshal(b, &second); err != nil {
		t.Fatalf("decoding a re-encoded value: %v\n% x", err, b)
	}
	if !reflect.DeepEqual(first, second) {
		t.Fatalf("value changed across a round trip (-first +second):\n%s", cmp.Diff(first, second))
	}
}

func FuzzMsgpackUnmarshal(f *testing.F) {
	seedCorpus(f, codec.Msgpack(),
		[]byte{0xc0},                         // nil
		[]byte{0xc1},                         // never used
		[]byte{0x80},                         // empty map
		[]byte{0x90},                         // empty array
		[]byte{0x81, 0xc0, 0x01},             // nil map key
		[]byte{0x81, 0xa1, 'k', 0xcd, 1, 44}, // kind = 300 overflows uint8
		[]byte{0xdd, 0xff, 0xff, 0xff, 0xff}, // array32 of 4 Gi elements
		[]byte{0xdf, 0xff, 0xff, 0xff, 0xff}, // map32 of 4 Gi entries
		[]byte{0x81, 0xa7, 'p', 'a', 'y', 'l', 'o', 'a', 'd', 0xc6, 0xff, 0xff, 0xff, 0xff},
		[]byte{0x81, 0xa1, 'z', 0x91, 0x91, 0x91, 0x91, 0x91, 0x91}, // nested unknown field
		[]byte{0xd6, 0xff, 0, 0, 0, 0},                              // timestamp extension
		[]byte{0x92, 0x01, 0xa1, 'x'},                               // struct as an array
		[]byte("not msgpack at all"),
	)
	c := codec.Msgpack()
	f.Fuzz(func(t *testing.T, data []byte) { fuzzUnmarshal(t, c, data) })
}

func FuzzJSONUnmarshal(f *testing.F) {
	seedCorpus(f, codec.JSON(),
		[]byte("null"),
		[]byte("{}"),
		[]byte("[]"),
		[]byte(`"a string"`),
		[]byte(`{"k":300}`),
		[]byte(`{"seq":-1}`),
		[]byte(`{"delta":1e3}`),
		[]byte(`{"payload":"!!"}`),
		[]byte(`{"payload":"aGVsbG8="} trailing`),
		[]byte(`{"from":"\ud800"}`),
		[]byte(`{"peers":[{"addr":1}]}`),
		[]byte(`{"origin":{"node":"n","origin":{}}}`),
		[]byte(`{"K":1,"SEQ":2}`), // encoding/json matches names case-insensitively
		[]byte(`{"z":[[[[[[{}]]]]]]}`),
		[]byte("\xff\xfe junk"),
	)
	c := codec.JSON()
	f.Fuzz(func(t *testing.T, data []byte) { fuzzUnmarshal(t, c, data) })
}
