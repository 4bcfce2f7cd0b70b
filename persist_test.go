package gossip

import (
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPeerFileRoundTrip(t *testing.T) {
	for _, peers := range [][]wirePeer{nil, {{Addr: "127.0.0.1:8001", Degree: 3}, {Addr: "[::1]:8002"}}} {
		got, err := decodePeerFile(encodePeerFile(peers))
		if err != nil {
			t.Fatal(err)
		}
		if !cmp.Equal(peers, got) && !(len(peers) == 0 && len(got) == 0) {
			t.Fatalf("round trip: %v -> %v", peers, got)
		}
	}
}

func TestPeerFileCorrupt(t *testing.T) {
	good := encodePeerFile([]wirePeer{{Addr: "127.0.0.1:8001", Degree: 3}, {Addr: "127.0.0.1:8002", Degree: 1}})
	// Every torn write (every proper prefix) is rejected.
	for n := range len(good) {
		if _, err := decodePeerFile(good[:n]); !errors.Is(err, ErrCorruptState) {
			t.Fatalf("prefix of %d bytes: %v, want ErrCorruptState", n, err)
		}
	}
	// Every single flipped bit is caught.
	for i := range good {
		bad := slices.Clone(good)
		bad[i] ^= 0x10
		if _, err := decodePeerFile(bad); !errors.Is(err, ErrCorruptState) {
			t.Fatalf("bit flip at %d: %v, want ErrCorruptState", i, err)
		}
	}
	for name, body := range map[string]string{
		"header":    "something else\n",
		"duplicate": persistHeader + "\na:1 1\na:1 2\n",
		"negative":  persistHeader + "\na:1 -1\n",
		"no degree": persistHeader + "\na:1\n",
	} {
		data := encodePeerFileRaw(body)
		if _, err := decodePeerFile(data); !errors.Is(err, ErrCorruptState) {
			t.Errorf("%s: %v, want ErrCorruptState", name, err)
		}
	}
}

// encodePeerFileRaw appends a valid checksum trailer to an arbitrary body.
func encodePeerFileRaw(body string) []byte {
	return fmt.Appendf([]byte(body), "crc32c %08x\n", crc32.Checksum([]byte(body), crcTable))
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "peers")
	for _, content := range []string{"one\n", "two\n"} {
		if err := writeFileAtomic(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		if string(got) != content {
			t.Fatalf("file = %q, want %q", got, content)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
	if err := writeFileAtomic(filepath.Join(dir, "missing", "peers"), nil); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

func FuzzDecodePeerFile(f *testing.F) {
	f.Add(encodePeerFile([]wirePeer{{Addr: "a:1", Degree: 2}}))
	f.Add([]byte(persistHeader + "\ncrc32c 00000000\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		peers, err := decodePeerFile(data)
		if err != nil {
			if !errors.Is(err, ErrCorruptState) {
				t.Fatalf("error %v does not wrap ErrCorruptState", err)
			}
			return
		}
		again, err := decodePeerFile(encodePeerFile(peers))
		if err != nil || len(again) != len(peers) {
			t.Fatalf("re-encode: %v, %v", again, err)
		}
	})
}

// TestSeedPersistence restarts a seed that keeps its list in a file: the
// list is complete at once, before any peer refreshes; a corrupt file
// gives an empty start, and the refresh then restores the list.
func TestSeedPersistence(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(dir, "seed.peers")
		c := newCluster(t, 3, WithMessages(0))
		s0 := c.seeds[0]
		persist := WithPersistFile(path)
		start := func() {
			s, err := NewSeed(c.transport(s0), c.seeds, append(slices.Clone(c.opts), persist)...)
			if err != nil {
				t.Fatal(err)
			}
			c.seedsBy[s0] = s
			c.run(s0, s.Run)
		}
		start()
		c.startSeeds(c.seeds[1:]...)
		c.startPeers(20, joinGap)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		before := c.seedsBy[s0].Peers()
		if len(before) == 0 {
			t.Fatal("seed has no peers")
		}

		c.crash(s0)
		start()
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if got := c.seedsBy[s0].Peers(); !slices.Equal(got, before) {
			t.Fatalf("restored list %v, want %v", got, before)
		}

		c.crash(s0)
		if err := os.WriteFile(path, []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
		start()
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if got := c.seedsBy[s0].Peers(); len(got) != 0 {
			t.Fatalf("corrupt file gave %d peers, want an empty start", len(got))
		}
		time.Sleep(DefaultRefreshInterval + time.Second)
		synctest.Wait()
		if got := c.seedsBy[s0].Peers(); !slices.Equal(got, before) {
			t.Fatalf("after one refresh interval the list is %v, want %v", got, before)
		}
	})
}
