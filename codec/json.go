package codec

import (
	"encoding/json"
	"fmt"
)

// JSON returns the JSON codec, named "json", built on encoding/json. It is
// larger and slower than [Msgpack] but human-readable, which helps when
// debugging.
//
// Struct fields are named by their `json:"..."` tag, as with
// encoding/json. Unknown fields in the input are ignored (forward
// compatibility); fields missing from the input keep their current value.
// []byte is carried as base64. nil and empty slices stay distinct (null
// versus [] or ""), unless the field is tagged omitempty.
//
// Unmarshal rejects, with an error wrapping [ErrMalformed], empty input,
// invalid or truncated JSON, values of the wrong type, numbers that overflow
// the target field, nesting deeper than encoding/json allows and anything
// but whitespace after the value.
//
// The returned codec is safe for concurrent use.
func JSON() Codec { return jsonCodec{} }

type jsonCodec struct{}

// Name returns "json".
func (jsonCodec) Name() string { return "json" }

// Marshal encodes v as JSON. The returned slice is owned by the caller.
func (jsonCodec) Marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("codec: json encode %T: %w", v, err)
	}
	return b, nil
}

// Unmarshal decodes exactly one JSON value from data into v, which must be a
// non-nil pointer. Bad input yields an error wrapping ErrMalformed; it never
// panics. data is not retained.
func (jsonCodec) Unmarshal(data []byte, v any) (err error) {
	if err := checkTarget("json", v); err != nil {
		return err
	}
	if len(data) == 0 {
		return malformed("json", v, errEmptyInput)
	}
	defer recoverMalformed("json", v, &err)
	// json.Unmarshal validates the whole input before decoding, so trailing
	// non-whitespace ("{} x", "{}{}") is a syntax error here.
	if err := json.Unmarshal(data, v); err != nil {
		return malformed("json", v, err)
	}
	return nil
}
