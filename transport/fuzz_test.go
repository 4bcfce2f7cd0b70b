package transport

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzReadStream feeds arbitrary bytes to the inbound connection parser: a
// hello, then frames under a small limit. It must never panic, never return
// a frame over the limit, and every byte it accepts must re-encode to exactly
// the input consumed so far.
func FuzzReadStream(f *testing.F) {
	const limit = 64
	valid := append(appendFrame(nil, helloPayload("127.0.0.1:7000")), appendFrame(nil, []byte("payload"))...)
	f.Add(valid)
	f.Add(append(appendFrame(nil, helloPayload("[::1]:1")), appendFrame(nil, nil)...))
	f.Add(append(appendFrame(nil, helloPayload("node-1.example:9")), 0xff, 0xff, 0xff, 0xff))
	f.Add(append(appendFrame(nil, helloPayload("127.0.0.1:7000")), 0, 0, 0, limit+1))
	f.Add(append(appendFrame(nil, helloPayload("127.0.0.1:7000")), 0, 0, 0, 10, 'a'))
	f.Add(appendFrame(nil, helloPayload("127.0.0.1")))
	f.Add(appendFrame(nil, helloPayload("127.0.0.1:0")))
	f.Add(appendFrame(nil, []byte("GSPT2\x00127.0.0.1:1")))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0})
	f.Add([]byte{0, 0, 0, 0})

	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		hdr := new([headerLen]byte)
		addr, err := readHello(r, hdr)
		if err != nil {
			if !errors.Is(err, ErrHandshake) {
				t.Fatalf("readHello error %v does not wrap ErrHandshake", err)
			}
			return
		}
		if err := validAddr(addr); err != nil {
			t.Fatalf("readHello accepted invalid address %q: %v", addr, err)
		}
		rebuilt := appendFrame(nil, helloPayload(addr))
		for {
			p, err := readFrame(r, hdr, limit)
			if err != nil {
				return
			}
			if len(p) > limit {
				t.Fatalf("readFrame returned %d bytes over limit %d", len(p), limit)
			}
			rebuilt = appendFrame(rebuilt, p)
			if consumed := data[:len(data)-r.Len()]; !bytes.Equal(rebuilt, consumed) {
				t.Fatalf("re-encoding %x differs from consumed input %x", rebuilt, consumed)
			}
		}
	})
}
