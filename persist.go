package gossip

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrCorruptState is wrapped by errors about a seed's persisted peer list
// that is torn, corrupt or of an unknown format.
var ErrCorruptState = errors.New("gossip: corrupt persisted state")

const persistHeader = "gossip-seed-peers v1"

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// encodePeerFile renders peers as the persisted format: a header line, one
// "addr degree" line per peer, and a trailer with the CRC-32C of
// everything before it.
func encodePeerFile(peers []wirePeer) []byte {
	var b bytes.Buffer
	b.WriteString(persistHeader + "\n")
	for _, p := range peers {
		fmt.Fprintf(&b, "%s %d\n", p.Addr, p.Degree)
	}
	fmt.Fprintf(&b, "crc32c %08x\n", crc32.Checksum(b.Bytes(), crcTable))
	return b.Bytes()
}

// decodePeerFile parses what encodePeerFile wrote. Anything else, a torn
// write included, gives an error wrapping ErrCorruptState.
func decodePeerFile(data []byte) ([]wirePeer, error) {
	body, trailer, ok := cutLastLine(data)
	if !ok {
		return nil, fmt.Errorf("%w: no checksum trailer", ErrCorruptState)
	}
	sum, found := strings.CutPrefix(trailer, "crc32c ")
	want, err := strconv.ParseUint(sum, 16, 32)
	if !found || err != nil || len(sum) != 8 {
		return nil, fmt.Errorf("%w: bad checksum trailer %q", ErrCorruptState, trailer)
	}
	if got := crc32.Checksum(body, crcTable); got != uint32(want) {
		return nil, fmt.Errorf("%w: checksum %08x, want %08x", ErrCorruptState, got, want)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, maxConfigLine)
	if !sc.Scan() || sc.Text() != persistHeader {
		return nil, fmt.Errorf("%w: unknown header", ErrCorruptState)
	}
	var peers []wirePeer
	seen := map[string]bool{}
	for line := 2; sc.Scan(); line++ {
		addr, deg, ok := strings.Cut(sc.Text(), " ")
		d, err := strconv.Atoi(deg)
		if !ok || err != nil || d < 0 || addr == "" || seen[addr] {
			return nil, fmt.Errorf("%w: line %d %q", ErrCorruptState, line, sc.Text())
		}
		seen[addr] = true
		peers = append(peers, wirePeer{Addr: addr, Degree: d})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptState, err)
	}
	return peers, nil
}

// cutLastLine splits data before its last newline-terminated line.
func cutLastLine(data []byte) (body []byte, last string, ok bool) {
	if len(data) == 0 || data[len(data)-1] != '\n' {
		return nil, "", false
	}
	i := bytes.LastIndexByte(data[:len(data)-1], '\n')
	if i < 0 {
		return nil, "", false
	}
	return data[:i+1], string(data[i+1 : len(data)-1]), true
}

// writeFileAtomic replaces path with data: it writes a temporary file in
// the same directory, syncs it, and renames it over path, so a crash
// leaves either the old or the new content.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// loadPeerFile reads a persisted peer list. A missing file is an empty
// list, not an error.
func loadPeerFile(path string) ([]wirePeer, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodePeerFile(data)
}
