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
