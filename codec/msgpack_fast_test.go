package codec

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// The fast path must be indistinguishable from go-msgpack: these tests
// compare the two on the shapes the gossip protocol uses and on random
// and fuzzed input.

type fkind uint8

type fpeer struct {
	Addr   string `codec:"a"`
	Degree int    `codec:"d,omitempty"`
}

// fwire mirrors the gossip wire message: omitempty everywhere but the
// version and kind.
type fwire struct {
	V       uint8    `codec:"v"`
	K       fkind    `codec:"k"`
	Addr    string   `codec:"a,omitempty"`
	Degree  int      `codec:"d,omitempty"`
	Peers   []fpeer  `codec:"p,omitempty"`
	Origin  string   `codec:"o,omitempty"`
	Seq     uint64   `codec:"s,omitempty"`
	Stamp   int64    `codec:"t,omitempty"`
	Hops    int      `codec:"h,omitempty"`
	Payload []byte   `codec:"b,omitempty"`
	Reason  string   `codec:"r,omitempty"`
	IDs     []uint64 `codec:"i,omitempty"`
}

type fnested struct {
	Name string `codec:"name"`
	N    uint16 `codec:"n"`
}

// fall has every field shape the fast path handles, without omitempty, so
// that nil and zero values are written too.
type fall struct {
	S   string    `codec:"s"`
	B   bool      `codec:"b"`
	I   int       `codec:"i"`
	I8  int8      `codec:"i8"`
	I16 int16     `codec:"i16"`
	I32 int32     `codec:"i32"`
	I64 int64     `codec:"i64"`
	U   uint      `codec:"u"`
	U8  uint8     `codec:"u8"`
	U16 uint16    `codec:"u16"`
	U32 uint32    `codec:"u32"`
	U64 uint64    `codec:"u64"`
	Bs  []byte    `codec:"bs"`
	Ss  []string  `codec:"ss"`
	Is  []int16   `codec:"is"`
	Us  []uint32  `codec:"us"`
	Ps  []fnested `codec:"ps"`
	P   *fnested  `codec:"p"`
	N   fnested   `codec:"nest"`
	NoT string    // no tag: its Go name
	low int       // unexported: ignored
}

func slowMarshal(t testing.TB, v any) []byte {
	t.Helper()
	var b []byte
	if err := codec.NewEncoderBytes(&b, msgpackHandle).Encode(v); err != nil {
		t.Fatalf("go-msgpack encode: %v", err)
	}
	return b
}

func slowUnmarshal(data []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	d := codec.NewDecoderBytes(data, msgpackHandle)
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.NumBytesRead() != len(data) {
		return fmt.Errorf("trailing bytes")
	}
	return nil
}

func TestFastPlans(t *testing.T) {
	for _, v := range []any{fwire{}, fall{}, fpeer{}} {
		if planFor(reflect.TypeOf(v)) == nil {
			t.Errorf("%T has no fast plan", v)
		}
	}
	type withMap struct {
		M map[string]int `codec:"m"`
	}
	type withFloat struct {
		F float64 `codec:"f"`
	}
	type withTime struct {
		T time.Time `codec:"t"`
	}
	type embedded struct{ fpeer }
	type toArray struct {
		A int `codec:"a,toarray"`
	}
	type omitStruct struct {
		N fnested `codec:"n,omitempty"`
	}
	type dup struct {
		A int `codec:"x"`
		B int `codec:"x"`
	}
	type recursive struct {
		Next *recursive `codec:"n"`
	}
	type named []byte
	type withNamed struct {
		B named `codec:"b"`
	}
	for _, v := range []any{withMap{}, withFloat{}, withTime{}, embedded{}, toArray{}, omitStruct{}, dup{}, recursive{}, withNamed{}, failing{}} {
		if planFor(reflect.TypeOf(v)) != nil {
			t.Errorf("%T has a fast plan", v)
		}
	}
}

// failing implements encoding.BinaryMarshaler, which go-msgpack honours.
type failing struct{ X int }

func (failing) MarshalBinary() ([]byte, error) { return []byte{1}, nil }

// boundaryInts are values at every edge of the msgpack integer formats.
var boundaryInts = []int64{
	0, 1, 31, 32, 127, 128, 255, 256, 32767, 32768, 65535, 65536,
	math.MaxInt32, math.MaxInt32 + 1, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64,
	-1, -31, -32, -33, -127, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64,
}

var boundaryLens = []int{0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536}

func randInt(r *rand.Rand) int64 {
	if r.IntN(2) == 0 {
		return boundaryInts[r.IntN(len(boundaryInts))]
	}
	return int64(r.Uint64()) >> r.IntN(64)
}

func randLen(r *rand.Rand, big bool) int {
	if big && r.IntN(20) == 0 {
		return boundaryLens[r.IntN(len(boundaryLens))]
	}
	return boundaryLens[r.IntN(6)]
}

func randStr(r *rand.Rand, big bool) string { return strings.Repeat("x", randLen(r, big)) }

func randBytes(r *rand.Rand) []byte {
	switch r.IntN(4) {
	case 0:
		return nil
	case 1:
		return []byte{}
	}
	b := make([]byte, randLen(r, true))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func randWire(r *rand.Rand) *fwire {
	m := &fwire{V: uint8(r.Uint32()), K: fkind(r.Uint32())}
	if r.IntN(2) == 0 {
		m.Addr = randStr(r, true)
	}
	if r.IntN(2) == 0 {
		m.Degree = int(randInt(r))
	}
	if r.IntN(3) == 0 {
		n := randLen(r, false)
		if r.IntN(5) == 0 {
			n = 0
		}
		m.Peers = make([]fpeer, n)
		for i := range m.Peers {
			m.Peers[i] = fpeer{Addr: randStr(r, false), Degree: int(randInt(r))}
		}
	}
	if r.IntN(2) == 0 {
		m.Origin = randStr(r, false)
	}
	m.Seq = uint64(randInt(r))
	m.Stamp = randInt(r)
	m.Hops = int(randInt(r))
	m.Payload = randBytes(r)
	if r.IntN(3) == 0 {
		m.Reason = randStr(r, false)
	}
	if r.IntN(3) == 0 {
		m.IDs = make([]uint64, randLen(r, false))
		for i := range m.IDs {
			m.IDs[i] = uint64(randInt(r))
		}
	}
	return m
}

func randAll(r *rand.Rand) *fall {
	v := &fall{
		S: randStr(r, true), B: r.IntN(2) == 0,
		I: int(randInt(r)), I8: int8(randInt(r)), I16: int16(randInt(r)), I32: int32(randInt(r)), I64: randInt(r),
		U: uint(randInt(r)), U8: uint8(randInt(r)), U16: uint16(randInt(r)), U32: uint32(randInt(r)), U64: uint64(randInt(r)),
		Bs: randBytes(r), NoT: randStr(r, false), N: fnested{Name: randStr(r, false), N: uint16(randInt(r))},
	}
	if r.IntN(3) > 0 {
		v.Ss = make([]string, randLen(r, false))
		for i := range v.Ss {
			v.Ss[i] = randStr(r, false)
		}
	}
	if r.IntN(3) > 0 {
		v.Is = make([]int16, randLen(r, false))
		for i := range v.Is {
			v.Is[i] = int16(randInt(r))
		}
	}
	if r.IntN(3) > 0 {
		v.Us = make([]uint32, randLen(r, false))
		for i := range v.Us {
			v.Us[i] = uint32(randInt(r))
		}
	}
	if r.IntN(3) > 0 {
		v.Ps = make([]fnested, r.IntN(4))
		for i := range v.Ps {
			v.Ps[i] = fnested{Name: randStr(r, false), N: uint16(randInt(r))}
		}
	}
	if r.IntN(2) == 0 {
		v.P = &fnested{Name: randStr(r, false), N: uint16(randInt(r))}
	}
	return v
}

// TestFastMatchesGoMsgpack checks, for random values, that the fast
// encoder writes go-msgpack's exact bytes and that the fast decoder reads
// go-msgpack's output back to what go-msgpack reads.
func TestFastMatchesGoMsgpack(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cd := Msgpack()
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := range n {
		for _, v := range []any{randWire(r), randAll(r)} {
			want := slowMarshal(t, v)
			got, ok := fastMarshal(v)
			if !ok {
				t.Fatalf("%T not encoded by the fast path", v)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("case %d: %T %+v:\nfast      %x\ngo-msgpack %x", i, v, v, got, want)
			}
			fast := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			slow := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if handled, ok := fastUnmarshal(want, fast); !handled || !ok {
				t.Fatalf("case %d: fast decoder gave up on go-msgpack output %x", i, want)
			}
			if err := slowUnmarshal(want, slow); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("case %d: decoded\nfast       %+v\ngo-msgpack %+v", i, fast, slow)
			}
			// And the codec as a whole round-trips.
			again := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := cd.Unmarshal(got, again); err != nil || !reflect.DeepEqual(again, slow) {
				t.Fatalf("case %d: Unmarshal: %v", i, err)
			}
		}
	}
}

// compareDecode decodes data with the codec and with go-msgpack alone,
// both into copies of start, and fails if the outcomes differ.
func compareDecode(t *testing.T, data []byte, start any) {
	t.Helper()
	typ := reflect.TypeOf(start).Elem()
	fast := reflect.New(typ)
	fast.Elem().Set(reflect.ValueOf(start).Elem())
	slow := reflect.New(typ)
	slow.Elem().Set(reflect.ValueOf(start).Elem())
	// Deep copies of the slices and pointers, so the two do not share them.
	deepCopy(fast.Elem())
	deepCopy(slow.Elem())
	errFast := Msgpack().Unmarshal(data, fast.Interface())
	errSlow := slowUnmarshal(data, slow.Interface())
	if (errFast == nil) != (errSlow == nil) {
		t.Fatalf("input %x: codec error %v, go-msgpack error %v", data, errFast, errSlow)
	}
	if errFast == nil && !reflect.DeepEqual(fast.Interface(), slow.Interface()) {
		t.Fatalf("input %x: decoded\ncodec      %+v\ngo-msgpack %+v", data, fast.Interface(), slow.Interface())
	}
}

func deepCopy(v reflect.Value) {
	switch v.Kind() {
	case reflect.Slice:
		if v.IsNil() {
			return
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Cap())
		reflect.Copy(c, v)
		for i := range c.Len() {
			deepCopy(c.Index(i))
		}
		v.Set(c)
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		c := reflect.New(v.Type().Elem())
		c.Elem().Set(v.Elem())
		deepCopy(c.Elem())
		v.Set(c)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				deepCopy(v.Field(i))
			}
		}
	}
}

// fastSeeds are encodings of the two test types, for the fuzz targets.
func fastSeeds(t testing.TB) [][]byte {
	r := rand.New(rand.NewPCG(3, 4))
	var out [][]byte
	for range 8 {
		out = append(out, slowMarshal(t, randWire(r)))
		out = append(out, slowMarshal(t, randAll(r)))
	}
	// Shapes the fast path gives up on: nil fields, duplicate keys, other
	// integer formats, an array-form struct, trailing bytes.
	out = append(out,
		[]byte{0x82, 0xa1, 'p', 0xc0, 0xa1, 'b', 0xc0},
		[]byte{0x82, 0xa1, 'i', 0x91, 0x01, 0xa1, 'i', 0x91, 0x02},
		[]byte{0x81, 0xa1, 's', 0xd0, 0x05},
		[]byte{0x92, 0x01, 0x02},
		[]byte{0x81, 0xa1, 'v', 0x01, 0x00},
		[]byte{0x81, 0xa1, 'b', 0xa3, 'a', 'b', 'c'},
		[]byte{0x81, 0xa1, 'o', 0xc4, 0x01, 'x'},
	)
	return out
}

// TestFastDecodeEdgeCases runs the fuzz seeds against empty and prefilled
// targets.
func TestFastDecodeEdgeCases(t *testing.T) {
	for _, data := range fastSeeds(t) {
		for i := range len(data) + 1 {
			for _, start := range fastStarts() {
				compareDecode(t, data[:i], start)
			}
		}
	}
}

// fastStarts are the targets decoded into: zero values and values whose
// slices and pointers already exist.
func fastStarts() []any {
	return []any{
		&fwire{},
		&fwire{Addr: "old", Peers: []fpeer{{Addr: "p", Degree: 9}, {Addr: "q"}}, Payload: []byte("old"), IDs: []uint64{1, 2, 3}},
		&fall{},
		&fall{P: &fnested{Name: "kept", N: 7}, Ps: []fnested{{Name: "a", N: 1}}, Bs: []byte{}, Ss: []string{"z"}, N: fnested{N: 3}},
	}
}

// FuzzMsgpackFastPath decodes arbitrary input with the codec (fast path
// first) and with go-msgpack alone: same error-ness, same value.
func FuzzMsgpackFastPath(f *testing.F) {
	for _, s := range fastSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, start := range fastStarts() {
			compareDecode(t, data, start)
		}
	})
}

// benchGossip is a gossip frame with a 256-byte payload.
func benchGossip() *fwire {
	return &fwire{V: 1, K: 14, Origin: "127.0.0.1:40001", Seq: 12345, Stamp: 1764081234125000000, Hops: 3, Payload: bytes.Repeat([]byte{'x'}, 256)}
}

// BenchmarkMsgpackGossipFrame encodes and decodes a gossip frame through
// the codec (the fast path) and through go-msgpack alone, for comparison.
func BenchmarkMsgpackGossipFrame(b *testing.B) {
	m := benchGossip()
	cd := Msgpack()
	frame, _ := cd.Marshal(m)
	b.Run("op=marshal/path=fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cd.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("op=unmarshal/path=fast", func(b *testing.B) {
		b.ReportAllocs()
		var out fwire
		for b.Loop() {
			out = fwire{}
			if err := cd.Unmarshal(frame, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("op=marshal/path=go-msgpack", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		enc := codec.NewEncoderBytes(&buf, msgpackHandle)
		for b.Loop() {
			buf = buf[:0]
			enc.ResetBytes(&buf)
			if err := enc.Encode(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("op=unmarshal/path=go-msgpack", func(b *testing.B) {
		b.ReportAllocs()
		dec := codec.NewDecoderBytes(frame, msgpackHandle)
		var out fwire
		for b.Loop() {
			out = fwire{}
			dec.ResetBytes(frame)
			if err := dec.Decode(&out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
