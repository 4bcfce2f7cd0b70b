package codec

import (
	"errors"
	"fmt"
	"io"
	"reflect"
)

// errEmptyInput is wrapped (together with ErrMalformed) when Unmarshal is
// given no bytes at all.
var errEmptyInput = errors.New("empty input")

// checkTarget reports a programming error (not bad input, so it does not wrap
// ErrMalformed) when v is not a non-nil pointer.
func checkTarget(name string, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("codec: %s decode: target must be a non-nil pointer, got %T", name, v)
	}
	return nil
}

// malformed wraps cause so that errors.Is(err, ErrMalformed) and
// errors.Is(err, cause) both hold. All input was supposed to form one whole
// value, so running out of it is reported as io.ErrUnexpectedEOF.
func malformed(name string, v any, cause error) error {
	if cause == io.EOF {
		cause = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("codec: %s decode %T: %w: %w", name, v, ErrMalformed, cause)
}

// msgpackError exposes the cause of a go-msgpack error to errors.Is and
// errors.As. go-msgpack's errors report it through a Cause method (the
// github.com/pkg/errors convention) rather than Unwrap. The message is kept
// as go-msgpack wrote it, since it includes the failing position.
type msgpackError struct{ err error }

func (e msgpackError) Error() string { return e.err.Error() }

func (e msgpackError) Unwrap() error {
	if c, ok := e.err.(interface{ Cause() error }); ok {
		return c.Cause()
	}
	return nil
}

// wrapMsgpackError wraps err in a msgpackError when it has a cause to expose.
func wrapMsgpackError(err error) error {
	if _, ok := err.(interface{ Cause() error }); ok {
		return msgpackError{err}
	}
	return err
}

// recoverMalformed is deferred by Unmarshal as the last line of defence: a
// panic escaping the underlying decoder becomes an ErrMalformed error.
func recoverMalformed(name string, v any, err *error) {
	if r := recover(); r != nil {
		*err = malformed(name, v, fmt.Errorf("decoder panic: %v", r))
	}
}
