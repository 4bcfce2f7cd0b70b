package codec

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
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
	Key    []byte `codec:"k,omitempty"`
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
	Key     []byte   `codec:"pk,omitempty"`
	Sig     []byte   `codec:"sg,omitempty"`
	Nonce   []byte   `codec:"n,omitempty"`
	Diff    uint8    `codec:"df,omitempty"`
	Counter uint64   `codec:"c,omitempty"`
}

// fomit has every field shape that may be omitempty, all omitempty.
type fomit struct {
	S   string    `codec:"s,omitempty"`
	B   bool      `codec:"b,omitempty"`
	I   int       `codec:"i,omitempty"`
	I8  int8      `codec:"i8,omitempty"`
	I16 int16     `codec:"i16,omitempty"`
	I32 int32     `codec:"i32,omitempty"`
	I64 int64     `codec:"i64,omitempty"`
	U   uint      `codec:"u,omitempty"`
	U8  uint8     `codec:"u8,omitempty"`
	U16 uint16    `codec:"u16,omitempty"`
	U32 uint32    `codec:"u32,omitempty"`
	U64 uint64    `codec:"u64,omitempty"`
	Bs  []byte    `codec:"bs,omitempty"`
	Ss  []string  `codec:"ss,omitempty"`
	Is  []int16   `codec:"is,omitempty"`
	Us  []uint32  `codec:"us,omitempty"`
	Ps  []fnested `codec:"ps,omitempty"`
	P   *fnested  `codec:"p,omitempty"`
}

// randOmit is randAll with each field zero half the time.
func randOmit(r *rand.Rand) *fomit {
	a := randAll(r)
	v := &fomit{
		S: a.S, B: a.B, I: a.I, I8: a.I8, I16: a.I16, I32: a.I32, I64: a.I64,
		U: a.U, U8: a.U8, U16: a.U16, U32: a.U32, U64: a.U64,
		Bs: a.Bs, Ss: a.Ss, Is: a.Is, Us: a.Us, Ps: a.Ps, P: a.P,
	}
	rv := reflect.ValueOf(v).Elem()
	for i := range rv.NumField() {
		if r.IntN(2) == 0 {
			rv.Field(i).SetZero()
		}
	}
	return v
}

// fbins has []byte fields at every level: by value, through a pointer and
// in slice elements, so that the shared allocation of decoded []byte
// values meets nil, duplicate and nested fields.
type fbins struct {
	A  []byte    `codec:"a"`
	B  []byte    `codec:"b,omitempty"`
	In fbinsIn   `codec:"in"`
	P  *fbinsIn  `codec:"p"`
	S  []fbinsIn `codec:"s"`
	Z  string    `codec:"z,omitempty"`
}

type fbinsIn struct {
	X []byte `codec:"x"`
	Y []byte `codec:"yy,omitempty"`
	N int    `codec:"n,omitempty"`
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
	// Names too long to be kept inline in the plan, the second one also
	// too long for a fixstr.
	Long  string `codec:"a_longer_name"`
	Long2 uint16 `codec:"a_name_longer_than_thirty_one_bytes"`
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
	for _, v := range []any{fwire{}, fall{}, fpeer{}, fbins{}, fomit{}} {
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
	if r.IntN(2) == 0 {
		m.Key, m.Sig = randBytes(r), randBytes(r)
	}
	if r.IntN(4) == 0 {
		m.Nonce = randBytes(r)
	}
	m.Diff = uint8(randInt(r))
	m.Counter = uint64(randInt(r))
	for i := range m.Peers {
		if r.IntN(2) == 0 {
			m.Peers[i].Key = randBytes(r)
		}
	}
	return m
}

func randBinsIn(r *rand.Rand) fbinsIn {
	return fbinsIn{X: randBytes(r), Y: randBytes(r), N: int(randInt(r))}
}

func randBins(r *rand.Rand) *fbins {
	v := &fbins{A: randBytes(r), B: randBytes(r), In: randBinsIn(r)}
	if r.IntN(2) == 0 {
		in := randBinsIn(r)
		v.P = &in
	}
	if r.IntN(2) == 0 {
		v.S = make([]fbinsIn, r.IntN(12))
		for i := range v.S {
			v.S[i] = randBinsIn(r)
		}
	}
	if r.IntN(2) == 0 {
		v.Z = randStr(r, false)
	}
	return v
}

func randAll(r *rand.Rand) *fall {
	v := &fall{
		S: randStr(r, true), B: r.IntN(2) == 0,
		I: int(randInt(r)), I8: int8(randInt(r)), I16: int16(randInt(r)), I32: int32(randInt(r)), I64: randInt(r),
		U: uint(randInt(r)), U8: uint8(randInt(r)), U16: uint16(randInt(r)), U32: uint32(randInt(r)), U64: uint64(randInt(r)),
		Bs: randBytes(r), NoT: randStr(r, false), N: fnested{Name: randStr(r, false), N: uint16(randInt(r))},
		Long: randStr(r, false), Long2: uint16(randInt(r)),
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
		for _, v := range []any{randWire(r), randAll(r), randBins(r), randOmit(r)} {
			want := slowMarshal(t, v)
			got, ok := fastMarshal(v)
			if !ok {
				t.Fatalf("%T not encoded by the fast path", v)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("case %d: %T %+v:\nfast      %x\ngo-msgpack %x", i, v, v, got, want)
			}
			if app, ok := fastAppend(got[:1:1], v); !ok || !bytes.Equal(app[1:], want) {
				t.Fatalf("case %d: %T %+v:\nappended   %x\ngo-msgpack %x", i, v, v, app[1:], want)
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
	alias := reflect.New(typ)
	alias.Elem().Set(reflect.ValueOf(start).Elem())
	deepCopy(alias.Elem())
	errFast := Msgpack().Unmarshal(data, fast.Interface())
	errAlias := Msgpack().(AliasUnmarshaler).UnmarshalAlias(slices.Clone(data), alias.Interface())
	errSlow := slowUnmarshal(data, slow.Interface())
	if (errFast == nil) != (errAlias == nil) || errFast == nil && !reflect.DeepEqual(fast.Interface(), alias.Interface()) {
		t.Fatalf("input %x: Unmarshal %+v, %v; UnmarshalAlias %+v, %v", data, fast.Interface(), errFast, alias.Interface(), errAlias)
	}
	if errSlow != nil && strings.Contains(errSlow.Error(), "runtime error:") {
		// go-msgpack itself crashed (it recovers its own panics into an
		// error), so it is no oracle for this input: for example
		// testdata/fuzz/FuzzMsgpackFastPath/e6a25c2fc1e89d03, a valid map
		// of seven unknown keys, two of them empty, fails with "index out
		// of range [0] with length 0". The codec has not panicked either.
		t.Logf("input %x: go-msgpack failed internally (%v); codec error %v", data, errSlow, errFast)
		return
	}
	if errFast == nil && hasEmptyExt8(data) {
		// go-msgpack v2.1.5 mis-skips an ext8 of length 0 (c7 00 type) in
		// an unknown field: at the end of the input it reports EOF, before
		// another field it reads that field's bytes as the ext's data (an
		// error, or another value). The spec allows the length 0, and the
		// fast path skips the 3 bytes, so go-msgpack is no oracle here
		// whatever it returns: for example
		// testdata/fuzz/FuzzMsgpackFastPath/56fdbc2b0bf22571.
		t.Logf("input %x: go-msgpack mis-skips an empty ext8 (its error: %v); codec decoded it", data, errSlow)
		return
	}
	if (errFast == nil) != (errSlow == nil) {
		t.Fatalf("input %x: codec error %v, go-msgpack error %v", data, errFast, errSlow)
	}
	if errFast == nil && !reflect.DeepEqual(fast.Interface(), slow.Interface()) {
		t.Fatalf("input %x: decoded\ncodec      %+v\ngo-msgpack %+v", data, fast.Interface(), slow.Interface())
	}
	if errFast == nil {
		// Whatever was decoded encodes back to go-msgpack's bytes.
		want := slowMarshal(t, slow.Interface())
		got, err := Msgpack().(AppendMarshaler).AppendMarshal([]byte{0xc1}, fast.Interface())
		if err != nil || !bytes.Equal(got[1:], want) {
			t.Fatalf("input %x: %v; re-encoded\ncodec      %x\ngo-msgpack %x", data, err, got[1:], want)
		}
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
		// Small ones only: every prefix of a seed is tested (large values
		// are in TestFastMatchesGoMsgpack).
		for _, v := range []any{randWire(r), randAll(r), randBins(r), randOmit(r)} {
			if b := slowMarshal(t, v); len(b) <= 1024 {
				out = append(out, b)
			}
		}
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
	return append(out, binSeeds()...)
}

// Hand-written msgpack, for the seeds below.
func mpMap(n int) []byte    { return []byte{0x80 | byte(n)} }
func mpArray(n int) []byte  { return []byte{0x90 | byte(n)} }
func mpStr(s string) []byte { return append([]byte{0xa0 | byte(len(s))}, s...) }
func mpBin(s string) []byte { return append([]byte{0xc4, byte(len(s))}, s...) }
func mpNil() []byte         { return []byte{0xc0} }
func mp(parts ...[]byte) []byte {
	return bytes.Join(parts, nil)
}

// binSeeds are inputs for fbins that test the deferred copying of []byte
// values: a nil after a value (which must win), duplicates (which the fast
// path leaves to go-msgpack), nested values cleared by a nil, and more
// values than share one allocation.
func binSeeds() [][]byte {
	in := func(x string) []byte { return mp(mpMap(1), mpStr("x"), mpBin(x)) }
	many := mp(mpMap(1), mpStr("s"), mpArray(10))
	for i := range 10 {
		many = append(many, mp(mpMap(2), mpStr("x"), mpBin(strings.Repeat("x", i)), mpStr("yy"), mpBin("y"))...)
	}
	return [][]byte{
		mp(mpMap(2), mpStr("a"), mpBin("1"), mpStr("a"), mpNil()),
		mp(mpMap(2), mpStr("a"), mpNil(), mpStr("a"), mpBin("2")),
		mp(mpMap(2), mpStr("a"), mpBin("1"), mpStr("a"), mpBin("2")),
		mp(mpMap(3), mpStr("a"), mpBin("1"), mpStr("b"), mpBin(""), mpStr("a"), mpNil()),
		mp(mpMap(2), mpStr("in"), in("1"), mpStr("in"), mpNil()),
		mp(mpMap(2), mpStr("in"), in("1"), mpStr("in"), in("2")),
		mp(mpMap(2), mpStr("in"), in("1"), mpStr("in"), mp(mpMap(1), mpStr("yy"), mpBin("2"))),
		mp(mpMap(3), mpStr("in"), in("1"), mpStr("in"), mpNil(), mpStr("in"), in("3")),
		mp(mpMap(2), mpStr("p"), in("1"), mpStr("p"), mpNil()),
		mp(mpMap(3), mpStr("p"), in("1"), mpStr("p"), mpNil(), mpStr("p"), in("3")),
		mp(mpMap(2), mpStr("s"), mpArray(2), in("1"), in("2"), mpStr("s"), mpNil()),
		mp(mpMap(3), mpStr("a"), mpBin("1"), mpStr("s"), mpArray(1), in("2"), mpStr("z"), mpStr("end")),
		many,
	}
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

// hasEmptyExt8 reports whether data is one complete msgpack value with an
// ext8 of length 0 somewhere in it.
func hasEmptyExt8(data []byte) bool {
	d := &fastDecoder{b: data}
	found := false
	var walk func(depth int) bool
	walk = func(depth int) bool {
		if depth > maxSkipDepth || d.pos >= len(d.b) {
			return false
		}
		c := d.b[d.pos]
		var n int
		var ok bool
		switch {
		case c == 0xc7 && d.pos+1 < len(d.b) && d.b[d.pos+1] == 0:
			found = true
			return d.skip(depth)
		case c&0xf0 == 0x90, c == 0xdc, c == 0xdd:
			d.pos++
			if n, ok = d.arrayLen(c); !ok {
				return false
			}
		case c&0xf0 == 0x80, c == 0xde, c == 0xdf:
			d.pos++
			if n, ok = d.mapLen(c); !ok {
				return false
			}
			n *= 2
		default:
			return d.skip(depth)
		}
		for range n {
			if !walk(depth + 1) {
				return false
			}
		}
		return true
	}
	return walk(0) && d.pos == len(d.b) && found
}

// TestHasEmptyExt8 checks the guard of the oracle in compareDecode.
func TestHasEmptyExt8(t *testing.T) {
	for _, c := range []struct {
		data []byte
		want bool
	}{
		{[]byte{0x81, 0xa1, 'x', 0xc7, 0x00, 0x30}, true},
		{[]byte{0x92, 0x01, 0xc7, 0x00, 0x30}, true},
		{[]byte{0x81, 0xa1, 'x', 0xc7, 0x01, 0x30, 0x00}, false}, // length 1
		{[]byte{0x81, 0xa2, 0xc7, 0x00, 0x01}, false},            // inside a string
		{[]byte{0x82, 0xa1, 'x', 0xc7, 0x00, 0x30}, false},       // truncated
		{[]byte{0x81, 0xa1, 'x', 0xc7, 0x00, 0x30, 0x01}, false}, // trailing byte
	} {
		if got := hasEmptyExt8(c.data); got != c.want {
			t.Errorf("%x: %v, want %v", c.data, got, c.want)
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
		&fbins{},
		&fbins{B: []byte("old"), In: fbinsIn{Y: []byte{}}, P: &fbinsIn{X: []byte("px")}},
		&fomit{},
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

// benchSignedGossip is benchGossip signed: with a public key and a
// signature.
func benchSignedGossip() *fwire {
	m := benchGossip()
	m.Key = bytes.Repeat([]byte{'k'}, 32)
	m.Sig = bytes.Repeat([]byte{'s'}, 64)
	return m
}

// benchRoundTrip is what the root package's BenchmarkWireRoundTrip does:
// encode m, then decode the frame into a fresh value.
func benchRoundTrip(b *testing.B, m *fwire) {
	cd := Msgpack()
	b.ReportAllocs()
	for b.Loop() {
		frame, err := cd.Marshal(m)
		if err != nil {
			b.Fatal(err)
		}
		var got fwire
		if err := cd.Unmarshal(frame, &got); err != nil {
			b.Fatal(err)
		}
	}
}

// benchAppendRoundTrip encodes m into a reused buffer with AppendMarshal,
// then decodes the frame with decode into a fresh value.
func benchAppendRoundTrip(b *testing.B, m *fwire, decode func([]byte, any) error) {
	app := Msgpack().(AppendMarshaler)
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = app.AppendMarshal(buf[:0], m); err != nil {
			b.Fatal(err)
		}
		var got fwire
		if err := decode(buf, &got); err != nil {
			b.Fatal(err)
		}
	}
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
	b.Run("op=roundtrip/path=fast", func(b *testing.B) {
		benchRoundTrip(b, m)
	})
	b.Run("op=roundtrip/path=fast/signed", func(b *testing.B) {
		benchRoundTrip(b, benchSignedGossip())
	})
	b.Run("op=roundtrip/path=fast/append", func(b *testing.B) {
		// As the gossip node encodes: into a reused buffer.
		benchAppendRoundTrip(b, m, cd.Unmarshal)
	})
	b.Run("op=roundtrip/path=fast/append+alias", func(b *testing.B) {
		// As the gossip node encodes, and decodes the frames its
		// transport hands over: without copying the byte fields.
		benchAppendRoundTrip(b, m, cd.(AliasUnmarshaler).UnmarshalAlias)
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

// TestFastMarshalExactSize: the fast encoder allocates its result at
// exactly its length, on both of its paths (built on the stack and
// copied, or measured first), around the size that separates them.
func TestFastMarshalExactSize(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var vals []any
	crossed := 0
	for n := smallFrame - 250; n <= smallFrame; n++ {
		m := benchSignedGossip()
		m.Payload = bytes.Repeat([]byte{'p'}, n)
		vals = append(vals, m)
		if len(slowMarshal(t, m)) == smallFrame {
			crossed++
		}
	}
	if crossed != 1 {
		t.Fatalf("no test frame of exactly smallFrame bytes")
	}
	for range 300 {
		vals = append(vals, randWire(r), randAll(r), randBins(r), randOmit(r))
	}
	for _, v := range vals {
		got, ok := fastMarshal(v)
		if !ok {
			t.Fatalf("%T not encoded by the fast path", v)
		}
		if want := slowMarshal(t, v); !bytes.Equal(got, want) {
			t.Fatalf("%T %+v:\nfast       %x\ngo-msgpack %x", v, v, got, want)
		}
		if cap(got) != len(got) {
			t.Fatalf("%T: result of %d bytes has capacity %d", v, len(got), cap(got))
		}
	}
}

// TestFastDecodedBytes: the []byte fields of one message share an
// allocation but behave as separate copies: each is capped at its length,
// none shares memory with the input, and changing one changes no other.
func TestFastDecodedBytes(t *testing.T) {
	in := benchSignedGossip()
	in.Nonce = []byte("0123456789abcdef")
	in.Peers = []fpeer{{Addr: "a", Key: []byte("peer key")}, {Addr: "b"}}
	frame := slowMarshal(t, in)
	var got fwire
	if err := Msgpack().Unmarshal(frame, &got); err != nil {
		t.Fatal(err)
	}
	clear(frame)
	if !reflect.DeepEqual(&got, in) {
		t.Fatalf("decoded %+v, want %+v", got, in)
	}
	fields := [][]byte{got.Payload, got.Key, got.Sig, got.Nonce, got.Peers[0].Key}
	for i, f := range fields {
		if cap(f) != len(f) {
			t.Errorf("field %d: length %d, capacity %d", i, len(f), cap(f))
		}
		clear(f)
		_ = append(f, 'x')
	}
	for j, f := range fields {
		if j < len(fields)-1 && bytes.Count(f, []byte{0}) != len(f) {
			t.Errorf("field %d changed with another one", j)
		}
	}
	// An empty value among others is empty but not nil, as go-msgpack
	// decodes it.
	var bins fbins
	if err := Msgpack().Unmarshal(slowMarshal(t, &fbins{A: []byte{}, B: []byte("b")}), &bins); err != nil {
		t.Fatal(err)
	}
	if bins.A == nil || len(bins.A) != 0 || string(bins.B) != "b" {
		t.Errorf("decoded A %#v, B %q", bins.A, bins.B)
	}
}

// TestFastAllocations pins down the allocations of the gossip frame, the
// reason for the fast path: one to encode (the result), one to decode (the
// []byte fields together; strings come from the cache).
func TestFastAllocations(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts differ under -cover and -race")
	}
	cd := Msgpack()
	bigSigned := benchSignedGossip()
	bigSigned.Payload = make([]byte, coallocMax+1)
	for _, tc := range []struct {
		name           string
		m              *fwire
		encode, decode float64
	}{
		{"gossip", benchGossip(), 1, 1},
		{"signed", benchSignedGossip(), 1, 1},
		{"signed-large", bigSigned, 1, 2}, // the payload alone
		{"peer-list", &fwire{V: 1, K: 2, Peers: []fpeer{{Addr: "10.0.0.1:1"}, {Addr: "10.0.0.2:1", Degree: 3}}}, 1, 1},
	} {
		frame, err := cd.Marshal(tc.m)
		if err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = cd.Marshal(tc.m) }); n != tc.encode {
			t.Errorf("%s: Marshal made %v allocations, want %v", tc.name, n, tc.encode)
		}
		var out fwire
		if n := testing.AllocsPerRun(100, func() {
			out = fwire{}
			if err := cd.Unmarshal(frame, &out); err != nil {
				t.Fatal(err)
			}
		}); n != tc.decode {
			t.Errorf("%s: Unmarshal made %v allocations, want %v", tc.name, n, tc.decode)
		}
		if !reflect.DeepEqual(&out, tc.m) {
			t.Errorf("%s: decoded %+v", tc.name, out)
		}
	}
}

// TestPlanCache looks up more types than the plan cache has slots, so
// that they evict each other, and checks each gets its own plan.
func TestPlanCache(t *testing.T) {
	var types []reflect.Type
	for i := range 3 << planCacheBits {
		types = append(types, reflect.StructOf([]reflect.StructField{
			{Name: "A", Type: reflect.TypeFor[int](), Tag: reflect.StructTag(fmt.Sprintf(`codec:"a%d"`, i))},
		}))
	}
	for range 3 {
		for _, typ := range types {
			v := reflect.New(typ)
			p, base := lookupPlan(v.Interface())
			if p == nil || p.typ != typ || base != v.UnsafePointer() {
				t.Fatalf("%v: plan %v, base %v", typ, p, base)
			}
		}
	}
	for _, v := range []any{nil, 1, fwire{}, (*fwire)(nil), new(int), new(*fwire), new(map[string]int)} {
		p, base := lookupPlan(v)
		if v == (*fwire)(nil) {
			if p == nil || base != nil {
				t.Errorf("%#v: plan %v, base %v", v, p, base)
			}
			continue
		}
		if p != nil {
			t.Errorf("%#v (%T): has a plan", v, v)
		}
	}
}

// TestAppendMarshal: AppendMarshal appends exactly what Marshal returns,
// whatever dst holds and whatever room it has, on the fast path (written
// in place, or grown after a measure) and through go-msgpack, and leaves
// the bytes before len(dst) alone.
func TestAppendMarshal(t *testing.T) {
	cd := Msgpack().(AppendMarshaler)
	r := rand.New(rand.NewPCG(7, 8))
	vals := []any{
		benchGossip(), benchSignedGossip(),
		map[string]any{"no": "plan"}, "a string", []int{1, 2, 3}, // go-msgpack
		&fall{}, (*fwire)(nil),
	}
	for _, n := range []int{0, 1, 200, smallFrame - 100, smallFrame, 3000} {
		m := benchSignedGossip()
		m.Payload = bytes.Repeat([]byte{'p'}, n)
		vals = append(vals, m)
	}
	for range 200 {
		vals = append(vals, randWire(r), randAll(r), randBins(r), randOmit(r))
	}
	prefix := []byte("prefix")
	for _, v := range vals {
		want, err := Msgpack().Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		for _, room := range []int{0, 2, 3, len(want) - 1, len(want), len(want) + 2, 4096} {
			if room < 0 {
				continue
			}
			dst := append(make([]byte, 0, len(prefix)+room), prefix...)
			got, err := cd.AppendMarshal(dst, v)
			if err != nil {
				t.Fatalf("%T, room %d: %v", v, room, err)
			}
			if !bytes.Equal(got[:len(prefix)], prefix) || !bytes.Equal(got[len(prefix):], want) {
				t.Fatalf("%T, room %d:\nappended %x\nMarshal  %x", v, room, got, want)
			}
			if room >= len(want) && &got[0] != &dst[:1][0] {
				t.Errorf("%T: reallocated although dst had room for %d bytes", v, len(want))
			}
		}
		got, err := cd.AppendMarshal(nil, v)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%T into nil: %x, %v; want %x", v, got, err, want)
		}
	}
	// A failing encoding (go-msgpack has no format for complex numbers)
	// leaves dst's length alone.
	dst := append([]byte(nil), prefix...)
	got, err := cd.AppendMarshal(dst, complex(1, 2))
	if err == nil || len(got) != len(prefix) || !bytes.Equal(got, prefix) {
		t.Errorf("AppendMarshal(complex) = %q, %v; want %q and an error", got, err, prefix)
	}
}

// TestUnmarshalAlias: the byte fields decoded by UnmarshalAlias share the
// input's memory, up to their own end, and decoding a gossip frame into
// a value allocates only its one string, the origin (strings are copied:
// they must never change).
func TestUnmarshalAlias(t *testing.T) {
	cd := Msgpack().(AliasUnmarshaler)
	data, err := Msgpack().Marshal(benchSignedGossip())
	if err != nil {
		t.Fatal(err)
	}
	var got fwire
	if err := cd.UnmarshalAlias(data, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, benchSignedGossip()) {
		t.Fatalf("decoded %+v", got)
	}
	for name, b := range map[string][]byte{"payload": got.Payload, "key": got.Key, "sig": got.Sig} {
		i := bytes.Index(data, b)
		if i < 0 || &data[i] != &b[0] {
			t.Errorf("%s does not share the input's memory", name)
		}
		if cap(b) != len(b) {
			t.Errorf("%s has capacity %d past its length %d: an append would overwrite the input", name, cap(b), len(b))
		}
	}
	if testing.CoverMode() != "" || raceEnabled {
		return // allocation counts differ
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := cd.UnmarshalAlias(data, &got); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Errorf("UnmarshalAlias made %v allocations, want 1", n)
	}
}

// TestAppendMarshalAllocations: into a buffer with room, the fast path
// allocates nothing; the buffer is reused for each frame.
func TestAppendMarshalAllocations(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts differ under -cover and -race")
	}
	cd := Msgpack().(AppendMarshaler)
	buf := make([]byte, 0, 1024)
	for _, m := range []*fwire{benchGossip(), benchSignedGossip(), {V: 1, K: 2, Peers: []fpeer{{Addr: "10.0.0.1:1"}}}} {
		if n := testing.AllocsPerRun(100, func() {
			var err error
			if buf, err = cd.AppendMarshal(buf[:0], m); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%+v: AppendMarshal made %v allocations, want 0", m, n)
		}
	}
}
