package gossip

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSeeds(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
		line int // for errors; -1 means no error
	}{
		{"colon", "127.0.0.1:7001\n127.0.0.1:7002\n", []string{"127.0.0.1:7001", "127.0.0.1:7002"}, -1},
		{"comma", "127.0.0.1,7001\n 127.0.0.1 , 7002 \n", []string{"127.0.0.1:7001", "127.0.0.1:7002"}, -1},
		{"comments and blanks", "# seeds\n\n127.0.0.1:7001 # first\n\t\n", []string{"127.0.0.1:7001"}, -1},
		{"hostname", "localhost:7001", []string{"localhost:7001"}, -1},
		{"ipv6", "[::1]:7001\n[::1],7002", []string{"[::1]:7001", "[::1]:7002"}, -1},
		{"crlf", "127.0.0.1:7001\r\n127.0.0.1:7002\r\n", []string{"127.0.0.1:7001", "127.0.0.1:7002"}, -1},
		{"leading zeros", "127.0.0.1:07001", []string{"127.0.0.1:7001"}, -1},
		{"empty", "", nil, 0},
		{"only comments", "# nothing\n\n", nil, 0},
		{"no port", "127.0.0.1\n", nil, 1},
		{"empty port", "127.0.0.1:\n", nil, 1},
		{"bad port", "127.0.0.1:http\n", nil, 1},
		{"port zero", "127.0.0.1:0\n", nil, 1},
		{"port too big", "127.0.0.1:65536\n", nil, 1},
		{"negative port", "127.0.0.1:-1\n", nil, 1},
		{"plus port", "127.0.0.1:+80\n", nil, 1},
		{"missing host", ":7001\n", nil, 1},
		{"comma missing host", ",7001\n", nil, 1},
		{"two commas", "127.0.0.1,7001,7002\n", nil, 1},
		{"space in host", "127.0.0.1:7001\nmy host:7002\n", nil, 2},
		{"bare ipv6", "::1:7001\n", nil, 1},
		{"bracket in host", "[]0,1\n", nil, 1},
		{"unicode host", "hôst:7001\n", nil, 1},
		{"duplicate", "127.0.0.1:7001\n127.0.0.1,7001\n", nil, 2},
		{"garbage", "127.0.0.1:7001\n\n\x00\x01\n", nil, 3},
		{"too long", strings.Repeat("a", 5000), nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSeeds(strings.NewReader(tt.in))
			if tt.line < 0 {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Fatalf("(-want +got):\n%s", diff)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || !errors.Is(err, ErrBadConfig) {
				t.Fatalf("error %v (%T), want a *ConfigError wrapping ErrBadConfig", err, err)
			}
			if ce.Line != tt.line {
				t.Fatalf("error on line %d, want %d: %v", ce.Line, tt.line, err)
			}
		})
	}
}

func TestLoadSeeds(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.txt")
	if err := os.WriteFile(path, []byte("127.0.0.1:7001\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSeeds(path)
	if err != nil || len(got) != 1 {
		t.Fatalf("LoadSeeds = %v, %v", got, err)
	}
	if _, err := LoadSeeds(filepath.Join(dir, "missing.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v, want os.ErrNotExist", err)
	}
	bad := filepath.Join(dir, "bad.txt")
	os.WriteFile(bad, []byte("nonsense\n"), 0o644)
	if _, err := LoadSeeds(bad); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("bad file: %v", err)
	}
}

func FuzzParseSeeds(f *testing.F) {
	for _, s := range []string{"127.0.0.1:7001\n", "a,1\n#x\n", "[::1]:7\n", ":\n", ",,\n", "h:99999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		seeds, err := ParseSeeds(strings.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrBadConfig) {
				t.Fatalf("error %v does not wrap ErrBadConfig", err)
			}
			return
		}
		// Whatever parses must parse again to the same list.
		again, err := ParseSeeds(strings.NewReader(strings.Join(seeds, "\n")))
		if err != nil || !cmp.Equal(seeds, again) {
			t.Fatalf("reparse of %q = %v, %v", seeds, again, err)
		}
	})
}
