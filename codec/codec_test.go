package codec_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/gossip-dev/gossip/codec"
)

// kind mirrors the uint8 message kind of the gossip protocol.
type kind uint8

// peer mirrors a membership entry.
type peer struct {
	Addr   string `codec:"addr" json:"addr"`
	Degree int    `codec:"degree" json:"degree"`
}

// origin is reached through a pointer from message.
type origin struct {
	Node  string `codec:"node" json:"node"`
	Epoch uint64 `codec:"epoch" json:"epoch"`
}

// message has the field shapes the gossip protocol uses.
type message struct {
	Kind    kind    `codec:"k" json:"k"`
	Seq     uint64  `codec:"seq" json:"seq"`
	Delta   int64   `codec:"delta" json:"delta"`
	From    string  `codec:"from" json:"from"`
	Payload []byte  `codec:"payload" json:"payload"`
	Peers   []peer  `codec:"peers" json:"peers"`
	Ack     bool    `codec:"ack" json:"ack"`
	Origin  *origin `codec:"origin" json:"origin"`
}

// messageV2 is a later version of message with an extra field that older
// nodes do not know.
type messageV2 struct {
	message
	Extra map[string][]int `codec:"extra" json:"extra"`
	Note  string           `codec:"note" json:"note"`
}

func codecs() []codec.Codec { return []codec.Codec{codec.Msgpack(), codec.JSON()} }

func TestNames(t *testing.T) {
	if got := codec.Msgpack().Name(); got != "msgpack" {
		t.Errorf("Msgpack().Name() = %q", got)
	}
	if got := codec.JSON().Name(); got != "json" {
		t.Errorf("JSON().Name() = %q", got)
	}
}

func roundTripCases() []struct {
	name string
	in   message
} {
	return []struct {
		name string
		in   message
	}{
		{"zero", message{}},
		{"full", message{
			Kind: 7, Seq: 42, Delta: -3, From: "10.0.0.1:7946",
			Payload: []byte("hello"),
			Peers:   []peer{{Addr: "a:1", Degree: 3}, {Addr: "b:2", Degree: -1}},
			Ack:     true,
			Origin:  &origin{Node: "n1", Epoch: 9},
		}},
		{"extremes", message{
			Kind: math.MaxUint8, Seq: math.MaxUint64, Delta: math.MinInt64,
			Peers: []peer{{Degree: math.MaxInt}, {Degree: math.MinInt}},
		}},
		{"max int64", message{Delta: math.MaxInt64}},
		{"nil payload and peers", message{Payload: nil, Peers: nil}},
		{"empty payload and peers", message{Payload: []byte{}, Peers: []peer{}}},
		{"binary payload", message{Payload: []byte{0, 0xff, 0xc1, 0x80, '"', '\\'}}},
		{"unicode and odd strings", message{From: "héllo, 世界 \x00 \"q\" <&> \u2028"}},
		{"empty origin", message{Origin: &origin{}}},
		{"large payload", message{Payload: bytes.Repeat([]byte{0xab}, 70000)}},
		{"many peers", message{Peers: manyPeers(300)}},
	}
}

func manyPeers(n int) []peer {
	ps := make([]peer, n)
	for i := range ps {
		ps[i] = peer{Addr: fmt.Sprintf("10.0.%d.%d:7946", i/256, i%256), Degree: i}
	}
	return ps
}

// TestRoundTrip checks that decode(encode(x)) == x. Both codecs preserve the
// distinction between nil and empty slices ([]byte and []peer): msgpack
// writes nil and a zero-length bin/array, JSON writes null and ""/[]. So the
// comparison is strict, without cmpopts.EquateEmpty.
func TestRoundTrip(t *testing.T) {
	for _, c := range codecs() {
		for _, tc := range roundTripCases() {
			t.Run(c.Name()+"/"+tc.name, func(t *testing.T) {
				b, err := c.Marshal(&tc.in)
				if err != nil {
					t.Fatalf("Marshal: %v", err)
				}
				var out message
				if err := c.Unmarshal(b, &out); err != nil {
					t.Fatalf("Unmarshal: %v", err)
				}
				if diff := cmp.Diff(tc.in, out); diff != "" {
					t.Errorf("round trip mismatch (-want +got):\n%s", diff)
				}
				// Marshalling a value rather than a pointer gives the same bytes.
				b2, err := c.Marshal(tc.in)
				if err != nil {
					t.Fatalf("Marshal value: %v", err)
				}
				if !bytes.Equal(b, b2) {
					t.Errorf("Marshal(&v) and Marshal(v) differ")
				}
			})
		}
	}
}

// TestNilVersusEmpty pins down what each codec preserves. If a future
// change makes a codec collapse nil and empty, the strict round trip above
// fails; this test says which way.
func TestNilVersusEmpty(t *testing.T) {
	for _, c := range codecs() {
		for _, in := range []message{{}, {Payload: []byte{}, Peers: []peer{}}} {
			b, err := c.Marshal(in)
			if err != nil {
				t.Fatal(err)
			}
			var out message
			if err := c.Unmarshal(b, &out); err != nil {
				t.Fatal(err)
			}
			if (in.Payload == nil) != (out.Payload == nil) || (in.Peers == nil) != (out.Peers == nil) {
				t.Errorf("%s: nil-ness not preserved: in payload nil=%v peers nil=%v, out payload nil=%v peers nil=%v",
					c.Name(), in.Payload == nil, in.Peers == nil, out.Payload == nil, out.Peers == nil)
			}
			// Either way, nothing distinguishes them semantically.
			if diff := cmp.Diff(in, out, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s: mismatch (-want +got):\n%s", c.Name(), diff)
			}
		}
	}
}

func TestTopLevelShapes(t *testing.T) {
	for _, c := range codecs() {
		t.Run(c.Name(), func(t *testing.T) {
			checkRT(t, c, "a string")
			checkRT(t, c, []byte{1, 2, 3})
			checkRT(t, c, uint64(math.MaxUint64))
			checkRT(t, c, []peer{{"x", 1}})
			checkRT(t, c, map[string]int{"a": 1, "b": 2})
		})
	}
}

func checkRT[T any](t *testing.T, c codec.Codec, in T) {
	t.Helper()
	b, err := c.Marshal(in)
	if err != nil {
		t.Fatalf("Marshal(%T): %v", in, err)
	}
	var out T
	if err := c.Unmarshal(b, &out); err != nil {
		t.Fatalf("Unmarshal(%T): %v", in, err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("%T mismatch (-want +got):\n%s", in, diff)
	}
}

// TestMsgpackUntypedStrings checks the WriteExt/RawToString settings: decoded
// into an interface{}, a string comes back as a string and a []byte as a
// []byte.
func TestMsgpackUntypedStrings(t *testing.T) {
	c := codec.Msgpack()
	b, err := c.Marshal(map[string]any{"s": "text", "b": []byte("bin")})
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := c.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	m, ok := out.(map[any]any) // MapType is left nil.
	if !ok {
		t.Fatalf("decoded %T, want map[interface{}]interface{}", out)
	}
	if s, ok := m["s"].(string); !ok || s != "text" {
		t.Errorf(`m["s"] = %#v, want "text"`, m["s"])
	}
	if b, ok := m["b"].([]byte); !ok || string(b) != "bin" {
		t.Errorf(`m["b"] = %#v, want []byte("bin")`, m["b"])
	}
}

// TestMsgpackUsesCodecTagOnly checks that the wire names come from the codec
// tag and that a json tag is not consulted.
func TestMsgpackUsesCodecTagOnly(t *testing.T) {
	type tagged struct {
		A int `codec:"a" json:"jsonA"`
		B int `json:"jsonB"`
	}
	b, err := codec.Msgpack().Marshal(tagged{A: 1, B: 2})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]int
	if err := codec.Msgpack().Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"a": 1, "B": 2}, m); diff != "" {
		t.Errorf("wire names (-want +got):\n%s", diff)
	}
}

func TestUnknownFieldsIgnored(t *testing.T) {
	for _, c := range codecs() {
		t.Run(c.Name(), func(t *testing.T) {
			in := messageV2{
				message: message{Kind: 3, Seq: 5, From: "x", Peers: []peer{{"p", 2}}, Origin: &origin{Node: "o"}},
				Extra:   map[string][]int{"deep": {1, 2, 3}, "none": nil},
				Note:    "from the future",
			}
			b, err := c.Marshal(in)
			if err != nil {
				t.Fatal(err)
			}
			var out message
			if err := c.Unmarshal(b, &out); err != nil {
				t.Fatalf("Unmarshal into older type: %v", err)
			}
			if diff := cmp.Diff(in.message, out); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMissingFieldsKeepZero(t *testing.T) {
	type v0 struct {
		Kind kind `codec:"k" json:"k"`
	}
	for _, c := range codecs() {
		b, err := c.Marshal(v0{Kind: 4})
		if err != nil {
			t.Fatal(err)
		}
		var out message
		if err := c.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s: %v", c.Name(), err)
		}
		if diff := cmp.Diff(message{Kind: 4}, out); diff != "" {
			t.Errorf("%s: mismatch (-want +got):\n%s", c.Name(), diff)
		}
	}
}

func validEncoding(t testing.TB, c codec.Codec) []byte {
	t.Helper()
	b, err := c.Marshal(roundTripCases()[1].in)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMalformed feeds bad input to both codecs: each must fail with an
// error wrapping ErrMalformed, and never panic.
func TestMalformed(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range codecs() {
		valid := validEncoding(t, c)
		wrongType, err := c.Marshal("a string where a struct belongs")
		if err != nil {
			t.Fatal(err)
		}
		badField, err := c.Marshal(map[string]any{"k": "not a number"})
		if err != nil {
			t.Fatal(err)
		}
		overflow, err := c.Marshal(map[string]any{"k": 300}) // kind is a uint8
		if err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name string
			in   []byte
		}{
			{"nil", nil},
			{"empty", []byte{}},
			{"truncated by one", valid[:len(valid)-1]},
			{"truncated to half", valid[:len(valid)/2]},
			{"first byte only", valid[:1]},
			{"wrong type", wrongType},
			{"wrong field type", badField},
			{"overflowing field", overflow},
			{"trailing garbage", append(bytes.Clone(valid), 0x01)},
			{"two values", append(bytes.Clone(valid), valid...)},
		}
		if c.Name() == "msgpack" {
			cases = append(cases,
				struct {
					name string
					in   []byte
				}{"reserved byte 0xc1", []byte{0xc1}},
				struct {
					name string
					in   []byte
				}{"map with nil key", []byte{0x81, 0xc0, 0x01}},
				struct {
					name string
					in   []byte
				}{"str32 claiming 4 GiB", []byte{0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}},
			)
		} else {
			cases = append(cases,
				struct {
					name string
					in   []byte
				}{"trailing word", append(bytes.Clone(valid), []byte(" x")...)},
				struct {
					name string
					in   []byte
				}{"whitespace only", []byte(" \n\t")},
				struct {
					name string
					in   []byte
				}{"bad base64", []byte(`{"payload":"!!!"}`)},
			)
		}
		for i := range 20 {
			junk := make([]byte, 1+rng.IntN(64))
			for j := range junk {
				junk[j] = byte(rng.Uint32())
			}
			cases = append(cases, struct {
				name string
				in   []byte
			}{fmt.Sprintf("random %d", i), junk})
		}
		for _, tc := range cases {
			t.Run(c.Name()+"/"+tc.name, func(t *testing.T) {
				var out message
				err := c.Unmarshal(tc.in, &out)
				if strings.HasPrefix(tc.name, "random") && err == nil {
					// Random bytes may, rarely, form a valid value.
					return
				}
				if !errors.Is(err, codec.ErrMalformed) {
					t.Fatalf("Unmarshal(%x) error = %v, want one wrapping ErrMalformed", tc.in, err)
				}
			})
		}
	}
}

// TestTrailingWhitespaceJSON: JSON allows whitespace after the value.
func TestTrailingWhitespaceJSON(t *testing.T) {
	b := append(validEncoding(t, codec.JSON()), " \n\t\r"...)
	var out message
	if err := codec.JSON().Unmarshal(b, &out); err != nil {
		t.Fatalf("Unmarshal with trailing whitespace: %v", err)
	}
}

func TestTruncationIsUnexpectedEOF(t *testing.T) {
	valid := validEncoding(t, codec.Msgpack())
	var out message
	err := codec.Msgpack().Unmarshal(valid[:len(valid)-1], &out)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, codec.ErrMalformed) {
		t.Errorf("error = %v, want io.ErrUnexpectedEOF and ErrMalformed", err)
	}
}

// TestEveryPrefixFails checks every proper prefix of a valid message: none
// may panic, and each must be rejected since the value is incomplete.
func TestEveryPrefixFails(t *testing.T) {
	for _, c := range codecs() {
		valid := validEncoding(t, c)
		for i := range len(valid) {
			var out message
			if err := c.Unmarshal(valid[:i], &out); !errors.Is(err, codec.ErrMalformed) {
				t.Errorf("%s: prefix of %d/%d bytes: error = %v, want ErrMalformed", c.Name(), i, len(valid), err)
			}
		}
	}
}

func TestBadTarget(t *testing.T) {
	for _, c := range codecs() {
		valid := validEncoding(t, c)
		var nilPtr *message
		for _, target := range []any{nil, message{}, nilPtr} {
			err := c.Unmarshal(valid, target)
			if err == nil {
				t.Errorf("%s: Unmarshal into %T: no error", c.Name(), target)
			} else if errors.Is(err, codec.ErrMalformed) {
				t.Errorf("%s: Unmarshal into %T: %v wraps ErrMalformed; a bad target is not bad input", c.Name(), target, err)
			}
		}
	}
}

// failing cannot be encoded by either codec.
type failing struct{}

var errFailing = errors.New("failing on purpose")

func (failing) MarshalBinary() ([]byte, error) { return nil, errFailing }
func (failing) MarshalJSON() ([]byte, error)   { return nil, errFailing }

// go-msgpack uses BinaryMarshaler only on types that also implement
// BinaryUnmarshaler.
func (*failing) UnmarshalBinary([]byte) error { return errFailing }
func (*failing) UnmarshalJSON([]byte) error   { return errFailing }

// panicky panics while being decoded, standing in for any bug that would make
// a decoder panic.
type panicky struct{}

func (panicky) MarshalBinary() ([]byte, error) { return []byte{1}, nil }
func (panicky) MarshalJSON() ([]byte, error)   { return []byte("1"), nil }
func (*panicky) UnmarshalBinary([]byte) error  { panic("boom") }
func (*panicky) UnmarshalJSON([]byte) error    { panic("boom") }

// TestDecodeErrorCause: the error a type's own decoding hook returns stays
// reachable through errors.Is, next to ErrMalformed.
func TestDecodeErrorCause(t *testing.T) {
	for _, c := range codecs() {
		b, err := c.Marshal("x") // a str feeds both UnmarshalBinary and UnmarshalJSON
		if err != nil {
			t.Fatal(err)
		}
		var out failing
		err = c.Unmarshal(b, &out)
		if !errors.Is(err, codec.ErrMalformed) || !errors.Is(err, errFailing) {
			t.Errorf("%s: error = %v, want ErrMalformed and errFailing", c.Name(), err)
		}
	}
}

func TestDecodePanicBecomesError(t *testing.T) {
	for _, c := range codecs() {
		b, err := c.Marshal(panicky{})
		if err != nil {
			t.Fatal(err)
		}
		var out panicky
		if err := c.Unmarshal(b, &out); !errors.Is(err, codec.ErrMalformed) {
			t.Errorf("%s: error = %v, want ErrMalformed", c.Name(), err)
		}
		checkRT(t, c, message{Seq: 2}) // still usable afterwards
	}
}

func TestMarshalError(t *testing.T) {
	for _, c := range codecs() {
		if _, err := c.Marshal(failing{}); !errors.Is(err, errFailing) {
			t.Errorf("%s: Marshal error = %v, want one wrapping errFailing", c.Name(), err)
		}
		// The codec still works after a failed Marshal.
		checkRT(t, c, message{Seq: 1})
	}
}

// TestDoesNotRetainInput: overwriting the input after Unmarshal must not
// change the decoded value.
func TestDoesNotRetainInput(t *testing.T) {
	for _, c := range codecs() {
		want := roundTripCases()[1].in
		b := validEncoding(t, c)
		var out message
		if err := c.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		clear(b)
		if diff := cmp.Diff(want, out); diff != "" {
			t.Errorf("%s: decoded value changed with its input (-want +got):\n%s", c.Name(), diff)
		}
	}
}

// TestMarshalResultIsOwned: the slice returned by Marshal must not be reused
// by a later call.
func TestMarshalResultIsOwned(t *testing.T) {
	for _, c := range codecs() {
		first, err := c.Marshal(message{From: "first"})
		if err != nil {
			t.Fatal(err)
		}
		keep := bytes.Clone(first)
		for range 10 {
			if _, err := c.Marshal(message{From: "second, and longer"}); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(first, keep) {
			t.Errorf("%s: an earlier Marshal result was overwritten", c.Name())
		}
	}
}

// TestDeepNesting: deeply nested input, whether as an unknown field that is
// skipped or into an untyped target, is rejected rather than exhausting the
// stack.
func TestDeepNesting(t *testing.T) {
	const depth = 200000
	t.Run("msgpack", func(t *testing.T) {
		// {"junk": [[[[...]]]]} with fixarray(1) headers.
		in := append([]byte{0x81, 0xa4, 'j', 'u', 'n', 'k'}, bytes.Repeat([]byte{0x91}, depth)...)
		in = append(in, 0x01)
		var m message
		if err := codec.Msgpack().Unmarshal(in, &m); !errors.Is(err, codec.ErrMalformed) {
			t.Errorf("into struct: error = %v, want ErrMalformed", err)
		}
		var a any
		if err := codec.Msgpack().Unmarshal(in, &a); !errors.Is(err, codec.ErrMalformed) {
			t.Errorf("into any: error = %v, want ErrMalformed", err)
		}
	})
	t.Run("json", func(t *testing.T) {
		in := `{"junk":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`
		var m message
		if err := codec.JSON().Unmarshal([]byte(in), &m); !errors.Is(err, codec.ErrMalformed) {
			t.Errorf("into struct: error = %v, want ErrMalformed", err)
		}
	})
}

// TestHugeLengthPrefix: a few bytes claiming a 4 GiB container must fail
// quickly without allocating anywhere near the claimed size.
func TestHugeLengthPrefix(t *testing.T) {
	const limit = 1 << 20 // bytes per Unmarshal call
	cases := []struct {
		name   string
		in     []byte
		target func() any
	}{
		{"array32 into []peer", []byte{0x81, 0xa5, 'p', 'e', 'e', 'r', 's', 0xdd, 0xff, 0xff, 0xff, 0xff}, func() any { return new(message) }},
		{"bin32 into []byte", []byte{0x81, 0xa7, 'p', 'a', 'y', 'l', 'o', 'a', 'd', 0xc6, 0xff, 0xff, 0xff, 0xff, 0x00}, func() any { return new(message) }},
		{"str32 into string", []byte{0x81, 0xa4, 'f', 'r', 'o', 'm', 0xdb, 0xff, 0xff, 0xff, 0xff, 'x'}, func() any { return new(message) }},
		{"array32 top level", []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0x01}, func() any { return new([]uint64) }},
		{"bin32 top level", []byte{0xc6, 0xff, 0xff, 0xff, 0xff, 0x01}, func() any { return new([]byte) }},
		{"str32 top level", []byte{0xdb, 0xff, 0xff, 0xff, 0xff, 0x01}, func() any { return new(string) }},
		{"map32 into any", []byte{0xdf, 0xff, 0xff, 0xff, 0xff, 0x01}, func() any { return new(any) }},
		{"array32 into any", []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0x01}, func() any { return new(any) }},
		{"map32 into map", []byte{0xdf, 0xff, 0xff, 0xff, 0xff, 0x01}, func() any { return new(map[string]string) }},
		{"unknown field bin32", []byte{0x81, 0xa1, 'z', 0xc6, 0xff, 0xff, 0xff, 0xff, 0x00}, func() any { return new(message) }},
		{"nested array32 into [][]byte", []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0xc6, 0xff, 0xff, 0xff, 0xff}, func() any { return new([][]byte) }},
	}
	c := codec.Msgpack()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Warm up pools and type caches, then measure.
			if err := c.Unmarshal(tc.in, tc.target()); !errors.Is(err, codec.ErrMalformed) {
				t.Fatalf("error = %v, want ErrMalformed", err)
			}
			const runs = 20
			targets := make([]any, runs)
			for i := range targets {
				targets[i] = tc.target()
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for i := range runs {
				_ = c.Unmarshal(tc.in, targets[i])
			}
			runtime.ReadMemStats(&after)
			perCall := (after.TotalAlloc - before.TotalAlloc) / runs
			t.Logf("%d bytes allocated per call", perCall)
			if perCall > limit {
				t.Errorf("allocated %d bytes per call for a %d-byte input, want <= %d", perCall, len(tc.in), limit)
			}
		})
	}
}

// TestConcurrent runs marshal and unmarshal from several goroutines at once
// on shared codec values; run with -race.
func TestConcurrent(t *testing.T) {
	const goroutines, iterations = 8, 200
	cases := roundTripCases()
	for _, c := range codecs() {
		t.Run(c.Name(), func(t *testing.T) {
			var wg sync.WaitGroup
			errs := make(chan error, goroutines)
			for g := range goroutines {
				wg.Go(func() {
					for i := range iterations {
						in := cases[(g+i)%len(cases)].in
						in.Seq = uint64(g*iterations + i)
						b, err := c.Marshal(&in)
						if err != nil {
							errs <- err
							return
						}
						// Interleave failures so that pooled state is
						// exercised on the error path too.
						if i%7 == 0 {
							var junk message
							if err := c.Unmarshal(b[:len(b)/2], &junk); !errors.Is(err, codec.ErrMalformed) {
								errs <- fmt.Errorf("truncated: %v", err)
								return
							}
						}
						var out message
						if err := c.Unmarshal(b, &out); err != nil {
							errs <- err
							return
						}
						// reflect.DeepEqual first: cmp is slow on large
						// slices and only needed to explain a mismatch.
						if !reflect.DeepEqual(in, out) {
							errs <- fmt.Errorf("goroutine %d iteration %d: mismatch (-want +got):\n%s", g, i, cmp.Diff(in, out))
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// TestJSONIsJSON: the JSON codec output is plain encoding/json output.
func TestJSONIsJSON(t *testing.T) {
	in := roundTripCases()[1].in
	got, err := codec.JSON().Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("got %s, want %s", got, want)
	}
}
