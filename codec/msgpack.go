package codec

import (
	"fmt"
	"sync"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// Msgpack returns the MessagePack codec, named "msgpack", built on
// github.com/hashicorp/go-msgpack/v2. It is the default codec of the gossip
// protocol: compact and fast.
//
// Struct fields are named on the wire by their `codec:"..."` tag only (a
// `json` tag is not consulted); a field without a codec tag uses its Go name.
// Structs are encoded as maps keyed by those names, so a decoder ignores
// fields it does not know and leaves fields missing from the input at their
// current value; old and new nodes can therefore talk to each other.
//
// Unmarshal rejects, with an error wrapping [ErrMalformed], empty input,
// truncated input, values of the wrong type, integers that overflow the
// target field, nesting deeper than 1024 levels and any bytes left over after
// the first value. Strings and []byte round-trip exactly, including the
// difference between a nil and an empty (non-nil) slice.
//
// Memory use is bounded by the input: whatever length a prefix claims, the
// decoder provisions up front at most 256 KiB or 4096 elements (whichever is
// larger) for each container it is filling, grows it only as real elements
// are read, and fails as soon as the input runs out.
//
// The returned codec is safe for concurrent use.
func Msgpack() Codec { return msgpackCodec{} }

// msgpackHandle holds the settings shared by every encoder and decoder. It is
// configured once here and is read-only afterwards: go-msgpack allows a
// handle to be shared by concurrent encoders and decoders only while nobody
// modifies it. The frozen settings are:
//
//   - WriteExt = true: use the current MessagePack spec, so strings are
//     written as str and []byte as bin. With the old spec both would be raw
//     bytes and could not be told apart on decode.
//   - RawToString = false (default), deliberately. With WriteExt set, a str
//     already decodes as a Go string, into typed fields and into interface{}
//     alike, so strings round-trip without it. In go-msgpack v2.1.5 its only
//     remaining effect would be to turn bin into string when decoding into an
//     interface{}, so []byte held in an `any` would come back as a string.
//   - TypeInfos keyed on the "codec" tag only, so the wire names are governed
//     by exactly one tag and changing a `json` tag for debugging output never
//     changes the msgpack wire format.
//   - MapType = nil (default): a map decoded into an interface{} becomes a
//     map[interface{}]interface{}. Protocol messages decode into concrete
//     structs, so this only affects ad-hoc untyped decoding.
//   - StructToArray = false (default): structs are maps keyed by field name,
//     which is what makes unknown and missing fields harmless.
//   - ErrorIfNoField = false (default): unknown fields are skipped, for
//     forward compatibility.
//   - MaxInitLen = 0 (default): go-msgpack caps the initial allocation for a
//     decoded container at about 256 KiB / element size (at least 4096
//     elements) whatever length the input claims; the container only grows
//     further as real elements are read.
//   - MaxDepth = 1024: nested containers, including unknown fields being
//     skipped, may not go deeper, so hostile input cannot exhaust the stack.
var msgpackHandle = newMsgpackHandle()

func newMsgpackHandle() *codec.MsgpackHandle {
	h := new(codec.MsgpackHandle)
	h.WriteExt = true
	h.TypeInfos = codec.NewTypeInfos([]string{"codec"})
	h.MaxDepth = 1024
	return h
}

// Encoders and decoders keep per-type state, so reusing them is faster than
// building one per call: measured on the benchmark message, pooling cut
// Marshal from 4 allocations (1272 B) to 1 (480 B, the result) and about
// 3.5 µs to 2 µs, and Unmarshal from 13 allocations (952 B) to 11 (600 B)
// and about 4.3 µs to 3.3 µs. Neither is safe for concurrent use: each one is
// owned by exactly one goroutine between Get and Put. An encoder or decoder that reported an error is dropped rather than
// pooled, so no state from a failed call can leak into a later one.

// maxPooledBuf bounds the scratch buffer kept by a pooled encoder, so that one
// unusually large message does not pin its buffer forever.
const maxPooledBuf = 64 << 10

type msgpackEncoder struct {
	enc *codec.Encoder
	buf []byte
}

var msgpackEncoders = sync.Pool{New: func() any {
	e := &msgpackEncoder{buf: make([]byte, 0, 1024)}
	e.enc = codec.NewEncoderBytes(&e.buf, msgpackHandle)
	return e
}}

// noInput is what a pooled decoder is pointed at while idle, so that it does
// not keep the caller's last input reachable. It must be non-nil:
// Decoder.ResetBytes ignores a nil slice.
var noInput = []byte{}

var msgpackDecoders = sync.Pool{New: func() any {
	return codec.NewDecoderBytes(noInput, msgpackHandle)
}}

type msgpackCodec struct{}

// Name returns "msgpack".
func (msgpackCodec) Name() string { return "msgpack" }

// Marshal encodes v as MessagePack. The returned slice is freshly allocated
// and owned by the caller.
func (msgpackCodec) Marshal(v any) ([]byte, error) {
	if out, ok := fastMarshal(v); ok {
		return out, nil
	}
	return appendGoMsgpack(nil, v)
}

// AppendMarshal appends the MessagePack encoding of v to dst, the same
// bytes Marshal returns, and returns the extended slice; it implements
// [AppendMarshaler]. Encoded through the fast path into a dst with room
// for the result, it allocates nothing.
func (msgpackCodec) AppendMarshal(dst []byte, v any) ([]byte, error) {
	if out, ok := fastAppend(dst, v); ok {
		return out, nil
	}
	return appendGoMsgpack(dst, v)
}

// appendGoMsgpack appends go-msgpack's encoding of v to dst, through a
// pooled encoder; on error it returns dst unchanged.
func appendGoMsgpack(dst []byte, v any) ([]byte, error) {
	e := msgpackEncoders.Get().(*msgpackEncoder)
	e.buf = e.buf[:0]
	e.enc.ResetBytes(&e.buf)
	if err := e.enc.Encode(v); err != nil {
		return dst, fmt.Errorf("codec: msgpack encode %T: %w", v, wrapMsgpackError(err))
	}
	dst = append(dst, e.buf...)
	if cap(e.buf) <= maxPooledBuf {
		msgpackEncoders.Put(e)
	}
	return dst, nil
}

// Unmarshal decodes exactly one MessagePack value from data into v, which
// must be a non-nil pointer. Bad input yields an error wrapping ErrMalformed;
// it never panics. data is not retained.
func (msgpackCodec) Unmarshal(data []byte, v any) error { return unmarshal(data, v, false) }

// UnmarshalAlias is Unmarshal, except that on the fast path the byte
// slices set in v share data's memory instead of copying it (see
// [AliasUnmarshaler]); each has its capacity cut at its end, so an append
// to it copies.
func (msgpackCodec) UnmarshalAlias(data []byte, v any) error { return unmarshal(data, v, true) }

func unmarshal(data []byte, v any, alias bool) (err error) {
	// A plan is only found for a pointer to a struct: with a non-nil one,
	// v is a valid target.
	p, base := lookupPlan(v)
	if p == nil || base == nil {
		if err := checkTarget("msgpack", v); err != nil {
			return err
		}
		p = nil
	}
	if len(data) == 0 {
		return malformed("msgpack", v, errEmptyInput)
	}
	// go-msgpack already turns its internal panics into errors; this catches
	// anything that would still escape (e.g. from a user type's hooks).
	defer recoverMalformed("msgpack", v, &err)

	if p != nil && p.unmarshal(data, base, alias) {
		return nil
	}
	// No plan for v's type, or the fast path gave up: go-msgpack decodes
	// the whole input, setting every field it holds (see msgpack_fast.go).
	d := msgpackDecoders.Get().(*codec.Decoder)
	d.ResetBytes(data)
	if err := d.Decode(v); err != nil {
		return malformed("msgpack", v, wrapMsgpackError(err))
	}
	n := d.NumBytesRead()
	d.ResetBytes(noInput)
	msgpackDecoders.Put(d)
	if n != len(data) {
		return malformed("msgpack", v, fmt.Errorf("%d trailing bytes after value", len(data)-n))
	}
	return nil
}
