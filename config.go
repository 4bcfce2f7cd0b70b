package gossip

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
)

// ConfigError describes a bad line of a seed list. It wraps ErrBadConfig.
type ConfigError struct {
	// Line is the 1-based line number, or 0 for the list as a whole.
	Line int
	// Text is the offending line, trimmed.
	Text string
	// Msg says what is wrong.
	Msg string
}

// Error describes the bad line, e.g. `gossip: seed config line 2 "x": want host:port or host,port`.
func (e *ConfigError) Error() string {
	if e.Line == 0 {
		return "gossip: seed config: " + e.Msg
	}
	return fmt.Sprintf("gossip: seed config line %d %q: %s", e.Line, e.Text, e.Msg)
}

// Unwrap makes errors.Is(err, ErrBadConfig) true.
func (e *ConfigError) Unwrap() error { return ErrBadConfig }

// maxConfigLine bounds one line of a seed list.
const maxConfigLine = 4096

// ParseSeeds reads a seed list: one seed address per line, as "host:port"
// or "host,port" (an IPv6 host in brackets, "[::1]:7000"). Blank lines and
// lines starting with '#' are ignored, as is anything after a '#'. It
// returns the addresses as "host:port" in file order, or a *ConfigError for
// the first bad line, a duplicate, or a list without seeds.
func ParseSeeds(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxConfigLine)
	var seeds []string
	seen := make(map[string]int)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		addr, msg := parseSeedLine(text)
		if msg != "" {
			return nil, &ConfigError{Line: line, Text: text, Msg: msg}
		}
		if first, dup := seen[addr]; dup {
			return nil, &ConfigError{Line: line, Text: text, Msg: fmt.Sprintf("duplicate of line %d", first)}
		}
		seen[addr] = line
		seeds = append(seeds, addr)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &ConfigError{Line: line + 1, Msg: fmt.Sprintf("line longer than %d bytes", maxConfigLine)}
		}
		return nil, fmt.Errorf("gossip: read seed config: %w", err)
	}
	if len(seeds) == 0 {
		return nil, &ConfigError{Msg: "no seed addresses"}
	}
	return seeds, nil
}

// parseSeedLine returns the canonical "host:port" of one line, or a
// message saying what is wrong with it.
func parseSeedLine(text string) (addr, msg string) {
	host, port, err := net.SplitHostPort(text)
	if err != nil {
		// "host,port" form.
		h, p, ok := strings.Cut(text, ",")
		if !ok {
			return "", "want host:port or host,port"
		}
		host, port = strings.TrimSpace(h), strings.TrimSpace(p)
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	if host == "" {
		return "", "missing host"
	}
	if !validHost(host) {
		return "", "bad host " + strconv.Quote(host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || port == "" || port[0] == '+' || port[0] == '-' {
		return "", "bad port " + strconv.Quote(port)
	}
	if n < 1 || n > 65535 {
		return "", fmt.Sprintf("port %d out of range 1-65535", n)
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), ""
}

// validHost accepts an IP address or a DNS name (letters, digits, '-',
// '_' and dots).
func validHost(host string) bool {
	if net.ParseIP(host) != nil {
		return true
	}
	if len(host) > 253 {
		return false
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// LoadSeeds reads a seed list from the file at path; see ParseSeeds.
func LoadSeeds(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gossip: seed config: %w", err)
	}
	defer f.Close()
	seeds, err := ParseSeeds(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return seeds, nil
}
