package transport

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"testing"
)

func TestReadFrame(t *testing.T) {
	hdr := new([headerLen]byte)
	tests := []struct {
		name    string
		in      []byte
		want    []byte
		wantErr error
	}{
		{"empty stream", nil, nil, io.EOF},
		{"zero length", []byte{0, 0, 0, 0}, []byte{}, nil},
		{"payload", []byte{0, 0, 0, 2, 'h', 'i'}, []byte("hi"), nil},
		{"at limit", append([]byte{0, 0, 0, 8}, "12345678"...), []byte("12345678"), nil},
		{"over limit", []byte{0, 0, 0, 9}, nil, ErrFrameTooLarge},
		{"huge", []byte{0xff, 0xff, 0xff, 0xff}, nil, ErrFrameTooLarge},
		{"short header", []byte{0, 0}, nil, io.ErrUnexpectedEOF},
		{"short payload", []byte{0, 0, 0, 5, 'a'}, nil, io.ErrUnexpectedEOF},
		{"missing payload", []byte{0, 0, 0, 5}, nil, io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readFrame(bytes.NewReader(tc.in), hdr, 8)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !bytes.Equal(got, tc.want) || (tc.want != nil && got == nil) {
				t.Fatalf("frame = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReadFrameOversizedAllocatesNothing(t *testing.T) {
	hdr := new([headerLen]byte)
	in := []byte{0xff, 0xff, 0xff, 0xff}
	r := bytes.NewReader(in)
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(in)
		if _, err := readFrame(r, hdr, 1<<20); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatal(err)
		}
	})
	// The error value itself allocates a little; the frame must not.
	if allocs > 5 {
		t.Fatalf("%v allocations per oversized frame", allocs)
	}
}

func TestCheckAnnounced(t *testing.T) {
	v4 := netip.MustParseAddr("127.0.0.1")
	tests := []struct {
		remote    netip.Addr
		announced string
		ok        bool
	}{
		{v4, "127.0.0.1:7000", true},
		{netip.MustParseAddr("::ffff:127.0.0.1"), "127.0.0.1:7000", true},
		{v4, "10.9.9.9:1", false},
		{v4, "[::1]:1", false},
		{netip.MustParseAddr("::1"), "[::1]:1", true},
		{v4, "localhost:1", true},
		{v4, "LocalHost:1", true},
		{netip.MustParseAddr("10.0.0.1"), "localhost:1", false},
		{netip.MustParseAddr("10.0.0.1"), "node-1.example.com:1", true},
		{v4, "nonsense", false},
	}
	for _, tc := range tests {
		err := checkAnnounced(tc.remote, tc.announced)
		if (err == nil) != tc.ok {
			t.Errorf("checkAnnounced(%s, %q) = %v, want ok=%v", tc.remote, tc.announced, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrHandshake) {
			t.Errorf("checkAnnounced error %v does not wrap ErrHandshake", err)
		}
	}
}
