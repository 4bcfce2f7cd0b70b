package codec

import (
	"encoding"
	"encoding/binary"
	"math"
	"reflect"
	"sort"
	"strings"
	"sync"
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
// codec.MissingFielder), has embedded fields, a codec tag option other
// than omitempty, omitempty on a struct-valued field, duplicate names, a
// recursive type, or a field of any other type (maps, interfaces, floats,
// arrays...).

type fieldOp uint8

const (
	opString fieldOp = iota + 1
	opBool
	opInt // signed integer of size bytes
	opUint
	opBytes       // []byte
	opSliceString // []string
	opSliceInt    // []intN, elem size in elemSize
	opSliceUint
	opSliceStruct // []T, T with a plan
	opPtrStruct   // *T, T with a plan
	opStruct      // T with a plan, by value
)

type fastField struct {
	name      string
	offset    uintptr
	op        fieldOp
	size      uintptr // of an integer field, or of a slice element
	omitEmpty bool
	typ       reflect.Type // the field's type (slices, pointers)
	sub       *fastPlan    // element or pointee plan
}

// fastPlan lists a struct's encoded fields, sorted by name as go-msgpack
// writes them.
type fastPlan struct {
	typ    reflect.Type
	fields []fastField
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
	p := &fastPlan{typ: t}
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
		if names[name] {
			return nil
		}
		names[name] = true
		f := fastField{name: name, offset: sf.Offset, omitEmpty: opts == "omitempty", typ: sf.Type}
		if !fieldKind(&f, sf.Type, busy) {
			return nil
		}
		if f.omitEmpty && f.op == opStruct {
			return nil
		}
		p.fields = append(p.fields, f)
	}
	sort.Slice(p.fields, func(i, j int) bool { return p.fields[i].name < p.fields[j].name })
	return p
}

// fieldKind fills f.op, f.size and f.sub for a field of type t, or
// reports false if the fast path does not handle t.
func fieldKind(f *fastField, t reflect.Type, busy map[reflect.Type]bool) bool {
	if t.Name() != "" && special(t) {
		return false
	}
	switch t.Kind() {
	case reflect.String:
		f.op = opString
	case reflect.Bool:
		f.op = opBool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		f.op, f.size = opInt, t.Size()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		f.op, f.size = opUint, t.Size()
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
		switch e.Kind() {
		case reflect.String:
			f.op = opSliceString
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			f.op, f.size = opSliceInt, e.Size()
		case reflect.Uint, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.op, f.size = opSliceUint, e.Size()
		case reflect.Struct:
			f.op, f.size = opSliceStruct, e.Size()
			f.sub = compilePlan(e, busy)
			return f.sub != nil
		default:
			return false
		}
	case reflect.Pointer:
		if t.Name() != "" || t.Elem().Kind() != reflect.Struct {
			return false
		}
		f.op = opPtrStruct
		f.sub = compilePlan(t.Elem(), busy)
		return f.sub != nil
	case reflect.Struct:
		f.op = opStruct
		f.sub = compilePlan(t, busy)
		return f.sub != nil
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

func fieldPtr(base unsafe.Pointer, f *fastField) unsafe.Pointer { return unsafe.Add(base, f.offset) }

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
	case opBool:
		return !*(*bool)(p)
	case opInt:
		return readInt(p, f.size) == 0
	case opUint:
		return readUint(p, f.size) == 0
	case opPtrStruct:
		return *(*unsafe.Pointer)(p) == nil
	case opStruct:
		return false
	default: // slices
		return (*sliceHeader)(p).len == 0
	}
}

// Encoding, with go-msgpack's choices of formats.

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

func appendStr(b []byte, s string) []byte {
	return append(appendLen(b, len(s), 0xa0, 32, 0xd9, 0xda), s...)
}

func appendArrayLen(b []byte, n int) []byte { return appendLen(b, n, 0x90, 16, 0, 0xdc) }

func (p *fastPlan) encode(b []byte, base unsafe.Pointer) []byte {
	if len(p.fields) < 16 {
		// At most 15 fields: a fixmap, whose one-byte header is patched
		// once the fields are written.
		at := len(b)
		b = append(b, 0x80)
		n := 0
		for i := range p.fields {
			f := &p.fields[i]
			fp := fieldPtr(base, f)
			if f.omitEmpty && f.empty(fp) {
				continue
			}
			b = f.encode(appendStr(b, f.name), fp)
			n++
		}
		b[at] = 0x80 | byte(n)
		return b
	}
	n := 0
	for i := range p.fields {
		f := &p.fields[i]
		if !f.omitEmpty || !f.empty(fieldPtr(base, f)) {
			n++
		}
	}
	b = appendLen(b, n, 0x80, 16, 0, 0xde)
	for i := range p.fields {
		f := &p.fields[i]
		fp := fieldPtr(base, f)
		if f.omitEmpty && f.empty(fp) {
			continue
		}
		b = f.encode(appendStr(b, f.name), fp)
	}
	return b
}

func (f *fastField) encode(b []byte, p unsafe.Pointer) []byte {
	switch f.op {
	case opString:
		return appendStr(b, *(*string)(p))
	case opBool:
		if *(*bool)(p) {
			return append(b, 0xc3)
		}
		return append(b, 0xc2)
	case opInt:
		return appendInt(b, readInt(p, f.size))
	case opUint:
		return appendUint(b, readUint(p, f.size))
	case opBytes:
		bs := *(*[]byte)(p)
		if bs == nil {
			return append(b, 0xc0)
		}
		return append(appendLen(b, len(bs), 0, 0, 0xc4, 0xc5), bs...)
	case opPtrStruct:
		q := *(*unsafe.Pointer)(p)
		if q == nil {
			return append(b, 0xc0)
		}
		return f.sub.encode(b, q)
	case opStruct:
		return f.sub.encode(b, p)
	}
	// Slices.
	h := (*sliceHeader)(p)
	if h.data == nil {
		return append(b, 0xc0)
	}
	b = appendArrayLen(b, h.len)
	for i := range h.len {
		e := unsafe.Add(h.data, uintptr(i)*f.elemSize())
		switch f.op {
		case opSliceString:
			b = appendStr(b, *(*string)(e))
		case opSliceInt:
			b = appendInt(b, readInt(e, f.size))
		case opSliceUint:
			b = appendUint(b, readUint(e, f.size))
		case opSliceStruct:
			b = f.sub.encode(b, e)
		}
	}
	return b
}

func (f *fastField) elemSize() uintptr {
	if f.op == opSliceString {
		return unsafe.Sizeof("")
	}
	return f.size
}

// Decoding. Every method returns ok=false to give up.

type fastDecoder struct {
	b   []byte
	pos int
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

func (d *fastDecoder) be(n int) (uint64, bool) {
	s, ok := d.take(n)
	if !ok {
		return 0, false
	}
	var v uint64
	for _, c := range s {
		v = v<<8 | uint64(c)
	}
	return v, true
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
		c, ok := d.byte1()
		if !ok {
			return false
		}
		kl, ok := d.strLen(c)
		if !ok {
			return false
		}
		key, ok := d.take(kl)
		if !ok {
			return false
		}
		f := p.field(key)
		if f == nil {
			if !d.skip(0) {
				return false
			}
			continue
		}
		if !f.decode(d, fieldPtr(base, f)) {
			return false
		}
	}
	return true
}

func (p *fastPlan) field(key []byte) *fastField {
	if len(key) == 0 {
		for i := range p.fields {
			if p.fields[i].name == "" {
				return &p.fields[i]
			}
		}
		return nil
	}
	for i := range p.fields {
		// Names are mostly one byte long: test the first byte before
		// calling into the string comparison.
		if n := p.fields[i].name; len(n) == len(key) && n[0] == key[0] && n == string(key) {
			return &p.fields[i]
		}
	}
	return nil
}

func (f *fastField) decode(d *fastDecoder, p unsafe.Pointer) bool {
	if d.pos < len(d.b) && d.b[d.pos] == 0xc0 {
		// nil sets the field to its zero value, as go-msgpack does.
		d.pos++
		typedmemclr(f.typ, p)
		return true
	}
	switch f.op {
	case opPtrStruct:
		q := (*unsafe.Pointer)(p)
		if *q == nil {
			*q = reflect.New(f.sub.typ).UnsafePointer()
		}
		return f.sub.decode(d, *q)
	case opStruct:
		return f.sub.decode(d, p)
	}
	c, ok := d.byte1()
	if !ok {
		return false
	}
	switch f.op {
	case opString:
		n, ok := d.strLen(c)
		if !ok {
			return false
		}
		s, ok := d.take(n)
		if !ok {
			return false
		}
		*(*string)(p) = string(s)
		return true
	case opBool:
		if c != 0xc2 && c != 0xc3 {
			return false
		}
		*(*bool)(p) = c == 0xc3
		return true
	case opInt:
		v, ok := d.int64v(c)
		return ok && writeInt(p, f.size, v)
	case opUint:
		v, ok := d.uint64v(c)
		return ok && writeUint(p, f.size, v)
	case opBytes:
		if c < 0xc4 || c > 0xc6 || *(*[]byte)(p) != nil {
			// go-msgpack may reuse an existing slice: leave it that case.
			return false
		}
		n, ok := d.be(1 << (c - 0xc4))
		if !ok {
			return false
		}
		s, ok := d.take(int(n))
		if !ok {
			return false
		}
		out := make([]byte, len(s))
		copy(out, s)
		*(*[]byte)(p) = out
		return true
	}
	// Slices: only into a nil slice (go-msgpack decodes into the elements
	// of an existing one, keeping what the input leaves out).
	h := (*sliceHeader)(p)
	if h.data != nil {
		return false
	}
	n, ok := d.arrayLen(c)
	if !ok {
		return false
	}
	s := reflect.MakeSlice(f.typ, n, n)
	data := s.UnsafePointer()
	for i := range n {
		e := unsafe.Add(data, uintptr(i)*f.elemSize())
		var ok bool
		switch f.op {
		case opSliceString:
			var c byte
			if c, ok = d.byte1(); ok {
				var l int
				if l, ok = d.strLen(c); ok {
					var b []byte
					if b, ok = d.take(l); ok {
						*(*string)(e) = string(b)
					}
				}
			}
		case opSliceInt:
			var c byte
			if c, ok = d.byte1(); ok {
				var v int64
				v, ok = d.int64v(c)
				ok = ok && writeInt(e, f.size, v)
			}
		case opSliceUint:
			var c byte
			if c, ok = d.byte1(); ok {
				var v uint64
				v, ok = d.uint64v(c)
				ok = ok && writeUint(e, f.size, v)
			}
		case opSliceStruct:
			ok = f.sub.decode(d, e)
		}
		if !ok {
			return false
		}
	}
	*h = sliceHeader{data: data, len: n, cap: n}
	return true
}

// typedmemclr sets the value of type t at p to its zero value.
func typedmemclr(t reflect.Type, p unsafe.Pointer) {
	reflect.NewAt(t, p).Elem().SetZero()
}

// fastBufs holds the fast path encoder's scratch buffers.
var fastBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// fastMarshal encodes v through the fast path when v is a non-nil pointer
// to a struct with a plan. The result is freshly allocated.
func fastMarshal(v any) ([]byte, bool) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return nil, false
	}
	p := planFor(rv.Type().Elem())
	if p == nil {
		return nil, false
	}
	bp := fastBufs.Get().(*[]byte)
	b := p.encode((*bp)[:0], rv.UnsafePointer())
	out := make([]byte, len(b))
	copy(out, b)
	if cap(b) <= maxPooledBuf {
		*bp = b
		fastBufs.Put(bp)
	}
	return out, true
}

// fastUnmarshal decodes data into v (a non-nil pointer) through the fast
// path. handled is false when v's type has no plan; ok is false when the
// fast path gave up, possibly after setting some fields.
func fastUnmarshal(data []byte, v any) (handled, ok bool) {
	rv := reflect.ValueOf(v)
	p := planFor(rv.Type().Elem())
	if p == nil {
		return false, false
	}
	d := fastDecoder{b: data}
	return true, p.decode(&d, rv.UnsafePointer()) && d.pos == len(data)
}
