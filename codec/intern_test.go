package codec

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

func TestInternBytes(t *testing.T) {
	if got := internBytes(nil); got != "" {
		t.Errorf("internBytes(nil) = %q", got)
	}
	for _, s := range []string{"a", "127.0.0.1:40001", strings.Repeat("x", internMaxLen)} {
		b := []byte(s)
		first := internBytes(b)
		second := internBytes(b) // the second miss in a row caches it
		third := internBytes(b)
		if first != s || second != s || third != s {
			t.Fatalf("internBytes(%q) = %q, %q, %q", s, first, second, third)
		}
		if unsafe.StringData(second) != unsafe.StringData(third) {
			t.Errorf("%q: not cached after two decodes", s)
		}
		// The cached string does not share memory with the input.
		b[0]++
		if third != s {
			t.Errorf("%q: cached string changed with its input", s)
		}
		if got := internBytes(b); got != string(b) {
			t.Errorf("internBytes(%q) = %q", b, got)
		}
	}
	long := []byte(strings.Repeat("y", internMaxLen+1))
	internBytes(long)
	a, b := internBytes(long), internBytes(long)
	if a != string(long) || unsafe.StringData(a) == unsafe.StringData(b) {
		t.Errorf("a string longer than internMaxLen was cached")
	}
}

func TestInternBytesAllocs(t *testing.T) {
	b := []byte("10.0.0.1:7946")
	internBytes(b)
	internBytes(b)
	if n := testing.AllocsPerRun(100, func() { internBytes(b) }); n != 0 {
		t.Errorf("cached string: %v allocations, want 0", n)
	}
	// Ever new strings cost one allocation each, as without the cache.
	var i int
	buf := make([]byte, 0, 32)
	if n := testing.AllocsPerRun(100, func() {
		i++
		internBytes(fmt.Appendf(buf[:0], "new-%d", i))
	}); n != 1 {
		t.Errorf("new strings: %v allocations, want 1", n)
	}
}

// TestInternConcurrent interns colliding and repeated strings from several
// goroutines; run with -race.
func TestInternConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 5000 {
				want := fmt.Sprintf("10.0.%d.%d:7946", (i+g)%7, i%(3*internSlots))
				if got := internBytes([]byte(want)); got != want {
					errs <- fmt.Sprintf("got %q, want %q", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
