// Package codec converts gossip wire messages to and from bytes.
//
// A [Codec] is independent of the transport: the gossip node marshals a
// message, hands the bytes to its transport, and unmarshals what arrives.
// [Msgpack] (the default) is compact and fast; [JSON] is readable for
// debugging. All nodes of one network must use the same codec.
package codec

import "errors"

// Codec converts values to and from bytes. Implementations must be safe for
// concurrent use and must never panic on malformed input: Unmarshal returns an
// error wrapping ErrMalformed instead.
type Codec interface {
	// Name identifies the codec, e.g. "msgpack".
	Name() string
	// Marshal encodes v. The caller owns the returned slice.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, which must be a non-nil pointer. It
	// does not retain data.
	Unmarshal(data []byte, v any) error
}

// ErrMalformed is wrapped by Unmarshal errors caused by bad input.
var ErrMalformed = errors.New("codec: malformed input")

// AppendMarshaler is an optional interface of a [Codec] that can encode
// into a buffer the caller provides, so that a caller encoding many values
// one after another can reuse one buffer instead of allocating a result
// for each. [Msgpack] implements it; the gossip node uses it, when its
// codec does, to encode outbound frames.
type AppendMarshaler interface {
	// AppendMarshal appends the encoding of v to dst and returns the
	// extended slice, which may have been reallocated. The appended bytes
	// are exactly those Marshal(v) returns. On error, dst is returned
	// unchanged in length (the bytes past it may have been written).
	// The spare capacity of dst must not hold any of v's data.
	AppendMarshal(dst []byte, v any) ([]byte, error)
}

// AliasUnmarshaler is an optional interface of a [Codec] that can decode
// without copying: the byte slices it sets in v may share data's memory.
// A caller that owns data, and changes none of it while v is in use,
// saves a copy and an allocation per value. [Msgpack] implements it; the
// gossip node uses it, when its codec does, for inbound frames, which the
// transport hands over to it.
type AliasUnmarshaler interface {
	// UnmarshalAlias decodes data into v as Unmarshal does, except that
	// v may retain data.
	UnmarshalAlias(data []byte, v any) error
}
