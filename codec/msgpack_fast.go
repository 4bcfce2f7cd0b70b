package codec

import (
	"encoding"
	"encoding/binary"
	"math"
	"math/bits"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// A fast path for the common case of the gossip protocol: a pointer to a
// flat struct of strings, integers, booleans, []byte, slices and pointers
// of such structs. go-msgpack walks such a struct by reflection on every
// call, which costs about 1 µs to encode and 1.5–2 µs to decode a gossip
// frame; this path compiles a plan per type once and then reads and writes
// the fields directly.
//
// It produces exactly the bytes go-msgpack produces with msgpackHandle
// (fields as a map sorted by name, omitempty honoured, the smallest integer
// and length encodings go-msgpack picks, str for strings and bin for
// []byte), so the wire format does not change; the tests check that
// byte for byte against go-msgpack. Decoding accepts only the well-formed
// encodings of each field's type. On anything else (another encoding go-
// msgpack would still accept, an error, an overflow, trailing bytes) it
// gives up and the caller decodes the whole input again with go-msgpack,
// which sets the same fields to the same values and reports its own
// errors: the result is always what go-msgpack alone would have produced.
//
// A type gets no plan, and so always goes through go-msgpack, if it or any
// type it contains implements an interface go-msgpack gives special
// treatment (codec.Selfer, encoding.BinaryMarshaler or BinaryUnmarshaler,
// codec.MissingFielder), has embedded fields, more than 64 encoded fields,
// a codec tag option other than omitempty, omitempty on a struct-valued
// field, duplicate names, a recursive type, or a field of any other type
// (maps, interfaces, floats, arrays...).
//
// What keeps it fast (a gossip frame with a 256-byte payload takes one
// allocation to encode, the frame, and one to decode, the payload):
//
//   - The plan of a type is found through a small lock-free cache keyed by
//     the interface's type word, with no reflection per call.
//   - The hot part of a field's plan is packed in 16 bytes, its key
//     pre-encoded; integer fields have an op per size.
//   - Encoding writes a flat message of up to smallFrame bytes to a stack
//     buffer in one pass and copies it out at its exact size; a larger
//     one, or one with struct fields, is measured first, then written
//     straight into its exact-size result. AppendMarshal writes in one
//     pass straight into the caller's buffer when it has room, and so
//     allocates nothing: the gossip node encodes its frames so, into a
//     reused buffer.
//   - Decoding finds a field from a one-byte key by a table lookup.
//   - Short strings come from a bounded cache of recent ones (intern.go).
//   - The []byte fields of one message share one allocation, copied from
//     the input once the whole input has been checked (see pendingBin);
//     each is capped at its length, so appending to one reallocates rather
//     than overwriting the next. Decoded values never alias the input.

type fieldOp uint8

// The ops up to opBytes are the scalars of encodeScalar; the order matters.
const (
	opString fieldOp = iota + 1
	opBool
	opInt8
	opInt16
	opInt32
	opInt64
	opUint8
	opUint16
	opUint32
	opUint64
	opBytes       // []byte
	opSliceString // []string
	opSliceInt    // []intN, elem size in elemSize
	opSliceUint
	opSliceStruct // []T, T with a plan
	opPtrStruct   // *T, T with a plan
	opStruct      // T with a plan, by value
)

// fastField is what the encoder and decoder read of a field on every
// call, packed in 16 bytes; the rest is in fieldInfo.
type fastField struct {
	offset    uint32
	op        fieldOp
	omitEmpty bool
	keyLen    uint8   // of key, or 0 when the key is too long for it
	key       [9]byte // the name encoded as a msgpack str
}

// fieldInfo is the rest of a field's plan.
type fieldInfo struct {
	name     string
	key      string       // the name encoded as a msgpack str
	typ      reflect.Type // the field's type
	elemSize uintptr      // of a slice element
	sub      *fastPlan    // element or pointee plan
}

// maxPlanFields bounds the fields of a type with a plan: the encoder
// records which are present in a uint64.
const maxPlanFields = 64

// fastPlan lists a struct's encoded fields, sorted by name as go-msgpack
// writes them.
type fastPlan struct {
	typ    reflect.Type
	fields []fastField
	info   []fieldInfo // info[i] goes with fields[i]
	// byte1[c] is 1 + the index of the field named by the single byte c,
	// or 0; long lists the fields whose names are longer.
	byte1 [256]uint8
	long  []uint8
}

// fastPlans caches a *fastPlan, or a nil one for types without a plan, per
// struct type.
var fastPlans sync.Map

var (
	selferType       = reflect.TypeFor[codec.Selfer]()
	missingFielderTy = reflect.TypeFor[codec.MissingFielder]()
	binMarshalerType = reflect.TypeFor[encoding.BinaryMarshaler]()
	binUnmarshalType = reflect.TypeFor[encoding.BinaryUnmarshaler]()
	bytesType        = reflect.TypeFor[[]byte]()
)

// planFor returns the plan of struct type t, or nil.
func planFor(t reflect.Type) *fastPlan {
	if p, ok := fastPlans.Load(t); ok {
		return p.(*fastPlan)
	}
	p := compilePlan(t, map[reflect.Type]bool{})
	fastPlans.Store(t, p)
	return p
}

// eface is the layout of an interface value with no methods.
type eface struct {
	typ, data unsafe.Pointer
}

// planEntry maps the type word of an interface holding a pointer to a
// struct to that struct's plan (nil when it has none, or for any other
// type).
type planEntry struct {
	typ  unsafe.Pointer
	plan *fastPlan
}

const planCacheBits = 6

// planCache is a direct-mapped cache in front of fastPlans: a hit costs an
// atomic load and a comparison.
var planCache [1 << planCacheBits]atomic.Pointer[planEntry]

// lookupPlan returns the plan for v, which must hold a pointer to a struct
// with a plan, and that pointer (possibly nil); or a nil plan.
func lookupPlan(v any) (*fastPlan, unsafe.Pointer) {
	e := (*eface)(unsafe.Pointer(&v))
	if e.typ == nil {
		return nil, nil
	}
	slot := &planCache[(uint64(uintptr(e.typ))*0x9e3779b97f4a7c15)>>(64-planCacheBits)]
	if c := slot.Load(); c != nil && c.typ == e.typ {
		return c.plan, e.data
	}
	var p *fastPlan
	if t := reflect.TypeOf(v); t.Kind() == reflect.Pointer {
		p = planFor(t.Elem())
	}
	slot.Store(&planEntry{typ: e.typ, plan: p})
	return p, e.data
}

// special reports whether go-msgpack treats t (or *t) other than by its
// kind.
func special(t reflect.Type) bool {
	for _, x := range []reflect.Type{t, reflect.PointerTo(t)} {
		if x.Implements(selferType) || x.Implements(missingFielderTy) ||
			x.Implements(binMarshalerType) || x.Implements(binUnmarshalType) {
			return true
		}
	}
	return false
}

func compilePlan(t reflect.Type, busy map[reflect.Type]bool) *fastPlan {
	if t.Kind() != reflect.Struct || busy[t] || special(t) {
		return nil
	}
	if p, ok := fastPlans.Load(t); ok {
		return p.(*fastPlan)
	}
	busy[t] = true
	defer delete(busy, t)
	type field struct {
		fastField
		fieldInfo
	}
	var fields []field
	names := map[string]bool{}
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.Anonymous {
			return nil
		}
		if !sf.IsExported() {
			continue // go-msgpack ignores unexported fields
		}
		name, opts, _ := strings.Cut(sf.Tag.Get("codec"), ",")
		if name == "-" || (opts != "" && opts != "omitempty") {
			return nil
		}
		if name == "" {
			name = sf.Name
		}
		if names[name] || sf.Offset > math.MaxUint32 {
			return nil
		}
		names[name] = true
		f := field{
			fastField: fastField{offset: uint32(sf.Offset), omitEmpty: opts == "omitempty"},
			fieldInfo: fieldInfo{name: name, key: string(appendStr(nil, name)), typ: sf.Type},
		}
		if len(f.fieldInfo.key) <= len(f.fastField.key) {
			f.keyLen = uint8(copy(f.fastField.key[:], f.fieldInfo.key))
		}
		if !fieldKind(&f.fastField, &f.fieldInfo, sf.Type, busy) {
			return nil
		}
		if f.omitEmpty && f.op == opStruct {
			return nil
		}
		fields = append(fields, f)
	}
	if len(fields) > maxPlanFields {
		return nil
	}
	sort.Slice(fields, func(i, j int) bool { return fields[i].name < fields[j].name })
	p := &fastPlan{typ: t}
	for i, f := range fields {
		p.fields = append(p.fields, f.fastField)
		p.info = append(p.info, f.fieldInfo)
		if len(f.name) == 1 {
			p.byte1[f.name[0]] = uint8(i + 1)
		} else {
			p.long = append(p.long, uint8(i))
		}
	}
	return p
}

// fieldKind fills in the op, elemSize and sub of a field of type t, or
// reports false if the fast path does not handle t.
func fieldKind(f *fastField, fi *fieldInfo, t reflect.Type, busy map[reflect.Type]bool) bool {
	if t.Name() != "" && special(t) {
		return false
	}
	switch t.Kind() {
	case reflect.String:
		f.op = opString
	case reflect.Bool:
		f.op = opBool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		f.op = [9]fieldOp{1: opInt8, 2: opInt16, 4: opInt32, 8: opInt64}[t.Size()]
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		f.op = [9]fieldOp{1: opUint8, 2: opUint16, 4: opUint32, 8: opUint64}[t.Size()]
	case reflect.Slice:
		if t == bytesType {
			f.op = opBytes
			return true
		}
		if t.Name() != "" {
			return false
		}
		e := t.Elem()
		if e.Name() != "" && special(e) {
			return false
		}
		fi.elemSize = e.Size()
		switch e.Kind() {
		case reflect.String:
			f.op = opSliceString
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			f.op = opSliceInt
		case reflect.Uint, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.op = opSliceUint
		case reflect.Struct:
			f.op = opSliceStruct
			fi.sub = compilePlan(e, busy)
			return fi.sub != nil
		default:
			return false
		}
	case reflect.Pointer:
		if t.Name() != "" || t.Elem().Kind() != reflect.Struct {
			return false
		}
		f.op = opPtrStruct
		fi.sub = compilePlan(t.Elem(), busy)
		return fi.sub != nil
	case reflect.Struct:
		f.op = opStruct
		fi.sub = compilePlan(t, busy)
		return fi.sub != nil
	default:
		return false
	}
	return true
}

// sliceHeader is the layout of a Go slice.
type sliceHeader struct {
	data     unsafe.Pointer
	len, cap int
}

func fieldPtr(base unsafe.Pointer, f *fastField) unsafe.Pointer {
	return unsafe.Add(base, uintptr(f.offset))
}

func readInt(p unsafe.Pointer, size uintptr) int64 {
	switch size {
	case 1:
		return int64(*(*int8)(p))
	case 2:
		return int64(*(*int16)(p))
	case 4:
		return int64(*(*int32)(p))
	default:
		return *(*int64)(p)
	}
}

func readUint(p unsafe.Pointer, size uintptr) uint64 {
	switch size {
	case 1:
		return uint64(*(*uint8)(p))
	case 2:
		return uint64(*(*uint16)(p))
	case 4:
		return uint64(*(*uint32)(p))
	default:
		return *(*uint64)(p)
	}
}

// empty reports whether go-msgpack's omitempty would leave the field out.
func (f *fastField) empty(p unsafe.Pointer) bool {
	switch f.op {
	case opString:
		return len(*(*string)(p)) == 0
	case opBool, opInt8, opUint8:
		return *(*uint8)(p) == 0
	case opInt16, opUint16:
		return *(*uint16)(p) == 0
	case opInt32, opUint32:
		return *(*uint32)(p) == 0
	case opInt64, opUint64:
		return *(*uint64)(p) == 0
	case opPtrStruct:
		return *(*unsafe.Pointer)(p) == nil
	case opStruct:
		return false
	default: // slices
		return (*sliceHeader)(p).len == 0
	}
}

// Encoding, with go-msgpack's choices of formats.

func uintLen(v uint64) int {
	switch {
	case v <= math.MaxInt8:
		return 1
	case v <= math.MaxUint8:
		return 2
	case v <= math.MaxUint16:
		return 3
	case v <= math.MaxUint32:
		return 5
	default:
		return 9
	}
}

func intLen(v int64) int {
	switch {
	case v > math.MaxInt8:
		switch {
		case v <= math.MaxInt16:
			return 3
		case v <= math.MaxInt32:
			return 5
		default:
			return 9
		}
	case v >= -32:
		return 1
	case v >= math.MinInt8:
		return 2
	case v >= math.MinInt16:
		return 3
	case v >= math.MinInt32:
		return 5
	default:
		return 9
	}
}

func appendUint(b []byte, v uint64) []byte {
	switch {
	case v <= math.MaxInt8:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(v))
	default:
		return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
	}
}

func appendInt(b []byte, v int64) []byte {
	switch {
	case v > math.MaxInt8:
		switch {
		case v <= math.MaxInt16:
			return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(v))
		case v <= math.MaxInt32:
			return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(v))
		default:
			return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
		}
	case v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, 0xd0, byte(v))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(v))
	default:
		return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
	}
}

// lenLen is the size of a container length header written by appendLen.
func lenLen(n, fixMax int, has8 bool) int {
	switch {
	case n < fixMax:
		return 1
	case has8 && n < 256:
		return 2
	case n < 65536:
		return 3
	default:
		return 5
	}
}

// appendLen writes a container length: fix (when fixMax > 0), 8-bit (when
// b8 != 0), 16- or 32-bit.
func appendLen(b []byte, n int, fixMin byte, fixMax int, b8, b16 byte) []byte {
	switch {
	case n < fixMax:
		return append(b, fixMin|byte(n))
	case b8 != 0 && n < 256:
		return append(b, b8, byte(n))
	case n < 65536:
		return binary.BigEndian.AppendUint16(append(b, b16), uint16(n))
	default:
		return binary.BigEndian.AppendUint32(append(b, b16+1), uint32(n))
	}
}

func strLen(n int) int   { return lenLen(n, 32, true) + n }
func binLen(n int) int   { return lenLen(n, 0, true) + n }
func arrayLen(n int) int { return lenLen(n, 16, false) }
func mapLen(n int) int   { return lenLen(n, 16, false) }

func appendStr(b []byte, s string) []byte {
	return append(appendLen(b, len(s), 0xa0, 32, 0xd9, 0xda), s...)
}

func appendArrayLen(b []byte, n int) []byte { return appendLen(b, n, 0x90, 16, 0, 0xdc) }

// measure returns the encoded size of the struct at base, how many fields
// it writes and which (bit i for p.fields[i]).
func (p *fastPlan) measure(base unsafe.Pointer) (size, n int, present uint64) {
	for i := range p.fields {
		if s := p.measureField(i, base); s > 0 {
			size += s
			present |= 1 << i
			n++
		}
	}
	return size + mapLen(n), n, present
}

// mark is measure without the size.
func (p *fastPlan) mark(base unsafe.Pointer) (n int, present uint64) {
	for i := range p.fields {
		f := &p.fields[i]
		if f.omitEmpty && f.empty(fieldPtr(base, f)) {
			continue
		}
		present |= 1 << i
		n++
	}
	return n, present
}

// measureField returns the encoded size of field i of the struct at base,
// key included, or 0 when omitempty leaves it out.
func (p *fastPlan) measureField(i int, base unsafe.Pointer) int {
	f := &p.fields[i]
	fp := fieldPtr(base, f)
	var n int
	switch f.op {
	case opString:
		l := len(*(*string)(fp))
		if l == 0 && f.omitEmpty {
			return 0
		}
		n = strLen(l)
	case opBool:
		if !*(*bool)(fp) && f.omitEmpty {
			return 0
		}
		n = 1
	case opInt8:
		v := *(*int8)(fp)
		if v == 0 && f.omitEmpty {
			return 0
		}
		n = intLen(int64(v))
	case opInt16:
		v := *(*int16)(fp)
		if v == 0 && f.omitEmpty {
			return 0
		}
		n = intLen(int64(v))
	case opInt32:
		v := *(*int32)(fp)
		if v == 0 && f.omitEmpty {
			return 0
		}
		n = intLen(int64(v))
	case opInt64:
		v := *(*int64)(fp)
		if v == 0 && f.omitEmpty {
			return 0
		}
		n = intLen(v)
	case opUint8:
		v := *(*uint8)(fp)
		if v == 0 && f.omitEmpty {
			return 0
		}
		n = uintLen(uint64(v))
	case opUint16:
		v := *(*uint16)(fp)
		if v == 0 && f.omitEmpty {
			return 0
		}
		n = uintLen(uint64(v))
	case opUint32:
		v := *(*uint32)(fp)
		if v == 0 && f.omitEmpty {
			return 0
		}
		n = uintLen(uint64(v))
	case opUint64:
		v := *(*uint64)(fp)
		if v == 0 && f.omitEmpty {
			return 0
		}
		n = uintLen(v)
	case opBytes:
		bs := *(*[]byte)(fp)
		switch {
		case len(bs) == 0 && f.omitEmpty:
			return 0
		case bs == nil:
			n = 1
		default:
			n = binLen(len(bs))
		}
	case opPtrStruct:
		q := *(*unsafe.Pointer)(fp)
		switch {
		case q == nil && f.omitEmpty:
			return 0
		case q == nil:
			n = 1
		default:
			n, _, _ = p.info[i].sub.measure(q)
		}
	case opStruct:
		n, _, _ = p.info[i].sub.measure(fp)
	default:
		h := (*sliceHeader)(fp)
		switch {
		case h.len == 0 && f.omitEmpty:
			return 0
		case h.data == nil:
			n = 1
		default:
			n = measureElems(f.op, &p.info[i], h)
		}
	}
	return p.keySize(i) + n
}

// keySize is the length of field i's encoded key.
func (p *fastPlan) keySize(i int) int {
	if n := p.fields[i].keyLen; n > 0 {
		return int(n)
	}
	return len(p.info[i].key)
}

// measureElems returns the encoded size of a non-nil slice.
func measureElems(op fieldOp, fi *fieldInfo, h *sliceHeader) int {
	n := arrayLen(h.len)
	for i := range h.len {
		e := unsafe.Add(h.data, uintptr(i)*fi.elemSize)
		switch op {
		case opSliceString:
			n += strLen(len(*(*string)(e)))
		case opSliceInt:
			n += intLen(readInt(e, fi.elemSize))
		case opSliceUint:
			n += uintLen(readUint(e, fi.elemSize))
		case opSliceStruct:
			s, _, _ := fi.sub.measure(e)
			n += s
		}
	}
	return n
}

// encodeSmall writes the struct at base to b in one pass, without ever
// growing b: ok is false if the encoding might not fit in cap(b).
func (p *fastPlan) encodeSmall(b []byte, base unsafe.Pointer) (_ []byte, ok bool) {
	// The map header takes one byte for up to 15 fields and three for
	// more: one is written now and patched at the end, two more are kept
	// free in case.
	if cap(b)-len(b) < 3 {
		return b, false
	}
	at := len(b)
	b = append(b, 0x80)
	n := 0
	for i := range p.fields {
		f := &p.fields[i]
		fp := fieldPtr(base, f)
		var need int // at most, key included
		switch f.op {
		case opString:
			l := len(*(*string)(fp))
			if l == 0 && f.omitEmpty {
				continue
			}
			need = p.keySize(i) + 5 + l
		case opBytes:
			l := len(*(*[]byte)(fp))
			if l == 0 && f.omitEmpty {
				continue
			}
			need = p.keySize(i) + 5 + l
		case opBool, opInt8, opInt16, opInt32, opInt64, opUint8, opUint16, opUint32, opUint64:
			if f.omitEmpty && f.empty(fp) {
				continue
			}
			need = p.keySize(i) + 9
		case opSliceString, opSliceInt, opSliceUint:
			need = p.measureField(i, base)
			if need == 0 {
				continue
			}
		default:
			// Structs: encoded by recursion, which the stack buffer must
			// not enter (it would be moved to the heap).
			if f.omitEmpty && f.empty(fp) {
				continue
			}
			return b, false
		}
		if cap(b)-len(b)-2 < need {
			return b, false
		}
		if f.keyLen > 0 {
			b = append(b, f.key[:f.keyLen]...)
		} else {
			b = append(b, p.info[i].key...)
		}
		if f.op < opSliceString {
			b = encodeScalar(b, f.op, fp)
		} else {
			b = encodeFlatSlice(b, f.op, p.info[i].elemSize, (*sliceHeader)(fp))
		}
		n++
	}
	if n < 16 {
		b[at] = 0x80 | byte(n)
		return b, true
	}
	// map16, with the fields moved up by two bytes.
	b = b[:len(b)+2]
	copy(b[at+3:], b[at+1:len(b)-2])
	b[at], b[at+1], b[at+2] = 0xde, byte(n>>8), byte(n)
	return b, true
}

// encode writes the struct at base: the n fields marked in present.
func (p *fastPlan) encode(b []byte, base unsafe.Pointer, n int, present uint64) []byte {
	b = appendLen(b, n, 0x80, 16, 0, 0xde)
	for present != 0 {
		i := bits.TrailingZeros64(present)
		present &= present - 1
		f := &p.fields[i]
		if f.keyLen > 0 {
			b = append(b, f.key[:f.keyLen]...)
		} else {
			b = append(b, p.info[i].key...)
		}
		b = p.encodeField(b, i, fieldPtr(base, f))
	}
	return b
}

// encodeField writes the value of field i, at fp.
func (p *fastPlan) encodeField(b []byte, i int, fp unsafe.Pointer) []byte {
	switch op := p.fields[i].op; op {
	case opPtrStruct:
		q := *(*unsafe.Pointer)(fp)
		if q == nil {
			return append(b, 0xc0)
		}
		sub := p.info[i].sub
		n, present := sub.mark(q)
		return sub.encode(b, q, n, present)
	case opStruct:
		sub := p.info[i].sub
		n, present := sub.mark(fp)
		return sub.encode(b, fp, n, present)
	case opSliceStruct:
		h := (*sliceHeader)(fp)
		if h.data == nil {
			return append(b, 0xc0)
		}
		fi := &p.info[i]
		b = appendArrayLen(b, h.len)
		for j := range h.len {
			e := unsafe.Add(h.data, uintptr(j)*fi.elemSize)
			n, present := fi.sub.mark(e)
			b = fi.sub.encode(b, e, n, present)
		}
		return b
	case opSliceString, opSliceInt, opSliceUint:
		return encodeFlatSlice(b, op, p.info[i].elemSize, (*sliceHeader)(fp))
	default:
		return encodeScalar(b, op, fp)
	}
}

// encodeScalar writes the value at fp of a field that is neither a slice
// (but []byte) nor a struct. It is apart from encodeField, and so is
// encodeFlatSlice, because it does not recurse: a caller's stack buffer
// passed to it stays on the stack.
func encodeScalar(b []byte, op fieldOp, fp unsafe.Pointer) []byte {
	switch op {
	case opString:
		return appendStr(b, *(*string)(fp))
	case opBool:
		if *(*bool)(fp) {
			return append(b, 0xc3)
		}
		return append(b, 0xc2)
	case opInt8:
		return appendInt(b, int64(*(*int8)(fp)))
	case opInt16:
		return appendInt(b, int64(*(*int16)(fp)))
	case opInt32:
		return appendInt(b, int64(*(*int32)(fp)))
	case opInt64:
		return appendInt(b, *(*int64)(fp))
	case opUint8:
		return appendUint(b, uint64(*(*uint8)(fp)))
	case opUint16:
		return appendUint(b, uint64(*(*uint16)(fp)))
	case opUint32:
		return appendUint(b, uint64(*(*uint32)(fp)))
	case opUint64:
		return appendUint(b, *(*uint64)(fp))
	default: // opBytes
		bs := *(*[]byte)(fp)
		if bs == nil {
			return append(b, 0xc0)
		}
		return append(appendLen(b, len(bs), 0, 0, 0xc4, 0xc5), bs...)
	}
}

// encodeFlatSlice writes a slice of strings or integers.
func encodeFlatSlice(b []byte, op fieldOp, elemSize uintptr, h *sliceHeader) []byte {
	if h.data == nil {
		return append(b, 0xc0)
	}
	b = appendArrayLen(b, h.len)
	for j := range h.len {
		e := unsafe.Add(h.data, uintptr(j)*elemSize)
		switch op {
		case opSliceString:
			b = appendStr(b, *(*string)(e))
		case opSliceInt:
			b = appendInt(b, readInt(e, elemSize))
		default: // opSliceUint
			b = appendUint(b, readUint(e, elemSize))
		}
	}
	return b
}

// Decoding. Every method returns ok=false to give up.

// pendingBin is a []byte value read from the input and not yet copied out
// of it: dst gets b[off:off+n] once the whole input has decoded.
type pendingBin struct {
	dst    *[]byte
	off, n int
}

const (
	// maxPending bounds the []byte values that share one allocation;
	// more get one each, as do values that would make it larger than
	// coallocMax. A caller that keeps one value of a message and drops
	// the rest (say, a public key) thus keeps at most coallocMax bytes
	// alive.
	maxPending = 8
	coallocMax = 4096
)

type fastDecoder struct {
	b     []byte
	pos   int
	alias bool // byte fields share b's memory (UnmarshalAlias)
	npend int
	total int // bytes in pend
	pend  [maxPending]pendingBin
}

func (d *fastDecoder) byte1() (byte, bool) {
	if d.pos >= len(d.b) {
		return 0, false
	}
	c := d.b[d.pos]
	d.pos++
	return c, true
}

func (d *fastDecoder) take(n int) ([]byte, bool) {
	if n < 0 || n > len(d.b)-d.pos {
		return nil, false
	}
	s := d.b[d.pos : d.pos+n]
	d.pos += n
	return s, true
}

// be reads a big-endian unsigned integer of n = 1, 2, 4 or 8 bytes.
func (d *fastDecoder) be(n int) (uint64, bool) {
	if n > len(d.b)-d.pos {
		return 0, false
	}
	s := d.b[d.pos:]
	d.pos += n
	switch n {
	case 1:
		return uint64(s[0]), true
	case 2:
		return uint64(binary.BigEndian.Uint16(s)), true
	case 4:
		return uint64(binary.BigEndian.Uint32(s)), true
	default:
		return binary.BigEndian.Uint64(s), true
	}
}

// strLen reads a str header.
func (d *fastDecoder) strLen(c byte) (int, bool) {
	switch {
	case c >= 0xa0 && c <= 0xbf:
		return int(c & 0x1f), true
	case c == 0xd9:
		v, ok := d.be(1)
		return int(v), ok
	case c == 0xda:
		v, ok := d.be(2)
		return int(v), ok
	case c == 0xdb:
		v, ok := d.be(4)
		return int(v), ok
	}
	return 0, false
}

// containerLen reads an array header: fixarray (fix 0x90), array16 or
// array32.
func (d *fastDecoder) containerLen(c, fix byte) (int, bool) {
	switch {
	case c&0xf0 == fix:
		return int(c & 0x0f), true
	case c == fix+0x4c: // array16 (0xdc)
		v, ok := d.be(2)
		return int(v), ok
	case c == fix+0x4d: // array32 (0xdd)
		v, ok := d.be(4)
		return int(v), ok
	}
	return 0, false
}

func (d *fastDecoder) arrayLen(c byte) (int, bool) {
	n, ok := d.containerLen(c, 0x90)
	// Every element takes at least a byte: a longer claim is malformed.
	return n, ok && n <= len(d.b)-d.pos
}

func (d *fastDecoder) mapLen(c byte) (int, bool) {
	var n int
	var ok bool
	switch {
	case c&0xf0 == 0x80:
		n, ok = int(c&0x0f), true
	case c == 0xde:
		var v uint64
		v, ok = d.be(2)
		n = int(v)
	case c == 0xdf:
		var v uint64
		v, ok = d.be(4)
		n = int(v)
	}
	return n, ok && n <= (len(d.b)-d.pos)/2
}

// int64v reads any integer; ok is false for other types and for a uint64
// above MaxInt64.
func (d *fastDecoder) int64v(c byte) (int64, bool) {
	switch {
	case c <= 0x7f:
		return int64(c), true
	case c >= 0xe0:
		return int64(int8(c)), true
	}
	switch c {
	case 0xcc, 0xcd, 0xce, 0xcf:
		v, ok := d.be(1 << (c - 0xcc))
		return int64(v), ok && v <= math.MaxInt64
	case 0xd0:
		v, ok := d.be(1)
		return int64(int8(v)), ok
	case 0xd1:
		v, ok := d.be(2)
		return int64(int16(v)), ok
	case 0xd2:
		v, ok := d.be(4)
		return int64(int32(v)), ok
	case 0xd3:
		v, ok := d.be(8)
		return int64(v), ok
	}
	return 0, false
}

// uint64v reads an unsigned integer (positive fixint or uint8..64).
func (d *fastDecoder) uint64v(c byte) (uint64, bool) {
	if c <= 0x7f {
		return uint64(c), true
	}
	if c >= 0xcc && c <= 0xcf {
		return d.be(1 << (c - 0xcc))
	}
	return 0, false
}

func writeInt(p unsafe.Pointer, size uintptr, v int64) bool {
	switch size {
	case 1:
		if v != int64(int8(v)) {
			return false
		}
		*(*int8)(p) = int8(v)
	case 2:
		if v != int64(int16(v)) {
			return false
		}
		*(*int16)(p) = int16(v)
	case 4:
		if v != int64(int32(v)) {
			return false
		}
		*(*int32)(p) = int32(v)
	default:
		*(*int64)(p) = v
	}
	return true
}

func writeUint(p unsafe.Pointer, size uintptr, v uint64) bool {
	switch size {
	case 1:
		if v > math.MaxUint8 {
			return false
		}
		*(*uint8)(p) = uint8(v)
	case 2:
		if v > math.MaxUint16 {
			return false
		}
		*(*uint16)(p) = uint16(v)
	case 4:
		if v > math.MaxUint32 {
			return false
		}
		*(*uint32)(p) = uint32(v)
	default:
		*(*uint64)(p) = v
	}
	return true
}

// maxSkipDepth bounds the nesting of unknown fields the fast path skips;
// deeper input is left to go-msgpack and its depth limit.
const maxSkipDepth = 64

// skip passes over one value of any type.
func (d *fastDecoder) skip(depth int) bool {
	if depth > maxSkipDepth {
		return false
	}
	c, ok := d.byte1()
	if !ok {
		return false
	}
	switch {
	case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
		return true
	case c >= 0xa0 && c <= 0xbf, c == 0xd9, c == 0xda, c == 0xdb:
		n, ok := d.strLen(c)
		if ok {
			_, ok = d.take(n)
		}
		return ok
	case c&0xf0 == 0x90, c == 0xdc, c == 0xdd:
		n, ok := d.arrayLen(c)
		for i := 0; ok && i < n; i++ {
			ok = d.skip(depth + 1)
		}
		return ok
	case c&0xf0 == 0x80, c == 0xde, c == 0xdf:
		n, ok := d.mapLen(c)
		for i := 0; ok && i < 2*n; i++ {
			ok = d.skip(depth + 1)
		}
		return ok
	}
	var n int
	switch c {
	case 0xc4, 0xc5, 0xc6: // bin
		v, ok := d.be(1 << (c - 0xc4))
		if !ok {
			return false
		}
		n = int(v)
	case 0xc7, 0xc8, 0xc9: // ext
		v, ok := d.be(1 << (c - 0xc7))
		if !ok {
			return false
		}
		n = int(v) + 1
	case 0xca:
		n = 4
	case 0xcb:
		n = 8
	case 0xcc, 0xcd, 0xce, 0xcf:
		n = 1 << (c - 0xcc)
	case 0xd0, 0xd1, 0xd2, 0xd3:
		n = 1 << (c - 0xd0)
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext
		n = 1 + 1<<(c-0xd4)
	default: // 0xc1, never used
		return false
	}
	_, ok = d.take(n)
	return ok
}

// decode reads a map into the struct at base.
func (p *fastPlan) decode(d *fastDecoder, base unsafe.Pointer) bool {
	c, ok := d.byte1()
	if !ok {
		return false
	}
	n, ok := d.mapLen(c)
	if !ok {
		return false
	}
	for range n {
		var i int
		if pos := d.pos; pos+1 < len(d.b) && d.b[pos] == 0xa1 {
			// A one-byte name, as most are.
			d.pos = pos + 2
			i = int(p.byte1[d.b[pos+1]]) - 1
		} else if i, ok = p.readKey(d); !ok {
			return false
		}
		if i < 0 {
			if !d.skip(0) {
				return false
			}
			continue
		}
		if !p.decodeField(d, i, fieldPtr(base, &p.fields[i])) {
			return false
		}
	}
	return true
}

// readKey reads a map key and returns the index of its field, or -1 for a
// name the plan does not have.
func (p *fastPlan) readKey(d *fastDecoder) (int, bool) {
	c, ok := d.byte1()
	if !ok {
		return 0, false
	}
	kl, ok := d.strLen(c)
	if !ok {
		return 0, false
	}
	key, ok := d.take(kl)
	if !ok {
		return 0, false
	}
	if len(key) == 1 {
		return int(p.byte1[key[0]]) - 1, true
	}
	for _, i := range p.long {
		if p.info[i].name == string(key) {
			return int(i), true
		}
	}
	return -1, true
}

// pending reports whether a value is already waiting for dst.
func (d *fastDecoder) pending(dst *[]byte) bool {
	for i := range d.npend {
		if d.pend[i].dst == dst {
			return true
		}
	}
	return false
}

// cancel drops the values waiting for []byte fields in the size bytes at
// p, which a nil has just cleared.
func (d *fastDecoder) cancel(p unsafe.Pointer, size uintptr) {
	lo, hi := uintptr(p), uintptr(p)+size
	for i := 0; i < d.npend; {
		if a := uintptr(unsafe.Pointer(d.pend[i].dst)); a >= lo && a < hi {
			d.total -= d.pend[i].n
			d.npend--
			d.pend[i] = d.pend[d.npend]
			d.pend[d.npend] = pendingBin{}
			continue
		}
		i++
	}
}

// bin sets dst to the next n bytes of input (already checked to be
// there): later, sharing an allocation, if it can wait; now otherwise.
func (d *fastDecoder) bin(dst *[]byte, n int) {
	off := d.pos
	d.pos += n
	if d.alias {
		*dst = d.b[off : off+n : off+n] // an append copies rather than overwrite b
		return
	}
	if d.npend < maxPending && n <= coallocMax-d.total {
		d.pend[d.npend] = pendingBin{dst: dst, off: off, n: n}
		d.npend++
		d.total += n
		return
	}
	*dst = clone(d.b[off : off+n])
}

// clone returns a copy of b, never nil. Written so, the compiler allocates
// the copy without zeroing it first.
func clone(b []byte) []byte {
	out := make([]byte, len(b))
	copy(out, b)
	return out
}

// flush copies the pending values out of the input.
func (d *fastDecoder) flush() {
	if d.npend == 1 {
		e := d.pend[0]
		*e.dst = clone(d.b[e.off : e.off+e.n])
		return
	}
	block := make([]byte, d.total)
	at := 0
	for _, e := range d.pend[:d.npend] {
		copy(block[at:], d.b[e.off:e.off+e.n])
		*e.dst = block[at : at+e.n : at+e.n]
		at += e.n
	}
}

// decodeField reads the value of field i into fp.
func (p *fastPlan) decodeField(d *fastDecoder, i int, fp unsafe.Pointer) bool {
	op := p.fields[i].op
	if d.pos < len(d.b) && d.b[d.pos] == 0xc0 {
		// nil sets the field to its zero value, as go-msgpack does.
		d.pos++
		t := p.info[i].typ
		if d.npend > 0 {
			d.cancel(fp, t.Size())
		}
		typedmemclr(t, fp)
		return true
	}
	switch op {
	case opPtrStruct:
		sub := p.info[i].sub
		q := (*unsafe.Pointer)(fp)
		if *q == nil {
			*q = reflect.New(sub.typ).UnsafePointer()
		}
		return sub.decode(d, *q)
	case opStruct:
		return p.info[i].sub.decode(d, fp)
	}
	c, ok := d.byte1()
	if !ok {
		return false
	}
	switch op {
	case opString:
		n, ok := d.strLen(c)
		if !ok {
			return false
		}
		s, ok := d.take(n)
		if !ok {
			return false
		}
		*(*string)(fp) = internBytes(s)
		return true
	case opBool:
		if c != 0xc2 && c != 0xc3 {
			return false
		}
		*(*bool)(fp) = c == 0xc3
		return true
	case opInt8, opInt16, opInt32, opInt64:
		v, ok := d.int64v(c)
		return ok && writeInt(fp, 1<<(op-opInt8), v)
	case opUint8, opUint16, opUint32, opUint64:
		v, ok := d.uint64v(c)
		return ok && writeUint(fp, 1<<(op-opUint8), v)
	case opBytes:
		dst := (*[]byte)(fp)
		if c < 0xc4 || c > 0xc6 || *dst != nil || d.pending(dst) {
			// go-msgpack may reuse an existing slice: leave it that case.
			return false
		}
		n, ok := d.be(1 << (c - 0xc4))
		if !ok || n > uint64(len(d.b)-d.pos) {
			return false
		}
		d.bin(dst, int(n))
		return true
	}
	// Slices: only into a nil slice (go-msgpack decodes into the elements
	// of an existing one, keeping what the input leaves out).
	h := (*sliceHeader)(fp)
	if h.data != nil {
		return false
	}
	n, ok := d.arrayLen(c)
	if !ok {
		return false
	}
	fi := &p.info[i]
	data := makeSlice(fi.typ, fp, n)
	for j := range n {
		e := unsafe.Add(data, uintptr(j)*fi.elemSize)
		var ok bool
		switch op {
		case opSliceString:
			var c byte
			if c, ok = d.byte1(); ok {
				var l int
				if l, ok = d.strLen(c); ok {
					var b []byte
					if b, ok = d.take(l); ok {
						*(*string)(e) = internBytes(b)
					}
				}
			}
		case opSliceInt:
			var c byte
			if c, ok = d.byte1(); ok {
				var v int64
				v, ok = d.int64v(c)
				ok = ok && writeInt(e, fi.elemSize, v)
			}
		case opSliceUint:
			var c byte
			if c, ok = d.byte1(); ok {
				var v uint64
				v, ok = d.uint64v(c)
				ok = ok && writeUint(e, fi.elemSize, v)
			}
		case opSliceStruct:
			ok = fi.sub.decode(d, e)
		}
		if !ok {
			*h = sliceHeader{}
			return false
		}
	}
	h.len = n
	return true
}

// emptyArray is where empty slices point: they are not nil.
var emptyArray [0]uint64

// makeSlice points the nil slice of type t at p to a new array of n
// elements, leaves its length 0 and returns the array. (reflect.MakeSlice
// would also allocate the slice header it returns.)
func makeSlice(t reflect.Type, p unsafe.Pointer, n int) unsafe.Pointer {
	if n == 0 {
		*(*sliceHeader)(p) = sliceHeader{data: unsafe.Pointer(&emptyArray)}
	} else {
		reflect.NewAt(t, p).Elem().Grow(n)
	}
	return (*sliceHeader)(p).data
}

// typedmemclr sets the value of type t at p to its zero value.
func typedmemclr(t reflect.Type, p unsafe.Pointer) {
	reflect.NewAt(t, p).Elem().SetZero()
}

// smallFrame is the largest encoding fastMarshal builds on the stack and
// copies out at its exact size in one pass; larger ones are measured
// first. It holds a signed gossip frame with a payload of 400 bytes.
const smallFrame = 512

// fastMarshal encodes v through the fast path when v is a non-nil pointer
// to a struct with a plan. The result is freshly allocated, at its exact
// size.
func fastMarshal(v any) ([]byte, bool) {
	p, base := lookupPlan(v)
	if p == nil || base == nil {
		return nil, false
	}
	var buf [smallFrame]byte
	if b, ok := p.encodeSmall(buf[:0], base); ok {
		out := make([]byte, len(b))
		copy(out, b)
		return out, true
	}
	size, n, present := p.measure(base)
	return p.encode(make([]byte, 0, size), base, n, present), true
}

// fastAppend appends the encoding of v to dst through the fast path when v
// is a non-nil pointer to a struct with a plan. It writes in one pass when
// dst has room for the result, and grows dst to exactly the room needed
// otherwise.
func fastAppend(dst []byte, v any) ([]byte, bool) {
	p, base := lookupPlan(v)
	if p == nil || base == nil {
		return dst, false
	}
	if b, ok := p.encodeSmall(dst, base); ok {
		return b, true
	}
	size, n, present := p.measure(base)
	return p.encode(slices.Grow(dst, size), base, n, present), true
}

// fastUnmarshal decodes data into v (a non-nil pointer) through the fast
// path. handled is false when v's type has no plan; ok is false when the
// fast path gave up, possibly after setting some fields.
func fastUnmarshal(data []byte, v any) (handled, ok bool) {
	p, base := lookupPlan(v)
	if p == nil || base == nil {
		return false, false
	}
	return true, p.unmarshal(data, base, false)
}

// unmarshal decodes data into the struct at base, or reports false.
func (p *fastPlan) unmarshal(data []byte, base unsafe.Pointer, alias bool) bool {
	d := fastDecoder{b: data, alias: alias}
	if !p.decode(&d, base) || d.pos != len(data) {
		return false
	}
	if d.npend > 0 {
		d.flush()
	}
	return true
}
