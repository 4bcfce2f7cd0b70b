package out

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/gossip-dev/gossip/transport"
)

// DefaultHost is the host the examples bind when none is given.
const DefaultHost = "127.0.0.1"

// ErrNoInput is returned by PromptAddr when standard input ends before a
// usable address was entered.
var ErrNoInput = errors.New("standard input ended before an address was entered")

// ParseHost checks a host typed by the user: an IP address or a host name.
// An empty answer means def.
func ParseHost(s, def string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return def, nil
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if net.ParseIP(s) != nil {
		return s, nil
	}
	if len(s) > 253 {
		return "", fmt.Errorf("host name %.20q... is too long", s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return "", fmt.Errorf("%q is not an IP address or a host name", s)
		}
	}
	return s, nil
}

// ParsePort checks a port typed by the user: a decimal number 1-65535.
func ParsePort(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("a port is required (1-65535)")
	}
	n, err := strconv.Atoi(s)
	if err != nil || s[0] == '+' || s[0] == '-' {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d is out of range 1-65535", n)
	}
	return n, nil
}

// ParseAddr checks a host:port given on the command line and returns it
// in canonical form (an IPv6 host in brackets).
func ParseAddr(s string) (string, error) {
	host, port, err := net.SplitHostPort(strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("address %q: want host:port, such as 127.0.0.1:7004", s)
	}
	if host == "" {
		return "", fmt.Errorf("address %q: missing host, such as 127.0.0.1", s)
	}
	h, err := ParseHost(host, "")
	if err != nil {
		return "", fmt.Errorf("address %q: %w", s, err)
	}
	p, err := ParsePort(port)
	if err != nil {
		return "", fmt.Errorf("address %q: %w", s, err)
	}
	return net.JoinHostPort(h, strconv.Itoa(p)), nil
}

// PromptAddr asks on w for a host (default defHost) and a port, reading the
// answers from in, and passes the address to use, typically a function that
// listens on it. Invalid answers, and addresses use refuses, are explained
// on w and asked again. It returns what use returned for the first address
// it accepted, or an error wrapping ErrNoInput when in ends first.
func PromptAddr[T any](in *bufio.Reader, w io.Writer, defHost string, use func(addr string) (T, error)) (T, error) {
	var zero T
	for {
		var host string
		for {
			fmt.Fprintf(w, "Host [%s]: ", defHost)
			line, err := readLine(in, w)
			if err != nil {
				return zero, err
			}
			if host, err = ParseHost(line, defHost); err == nil {
				break
			}
			fmt.Fprintf(w, "Invalid host: %v. Try again.\n", err)
		}
		var port int
		for {
			fmt.Fprint(w, "Port: ")
			line, err := readLine(in, w)
			if err != nil {
				return zero, err
			}
			if port, err = ParsePort(line); err == nil {
				break
			}
			fmt.Fprintf(w, "Invalid port: %v. Try again.\n", err)
		}
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		v, err := use(addr)
		if err == nil {
			return v, nil
		}
		if errors.Is(err, transport.ErrAddrInUse) {
			fmt.Fprintf(w, "Cannot use %s: the port is already in use. Choose another.\n", addr)
		} else {
			fmt.Fprintf(w, "Cannot use %s: %v. Try again.\n", addr, err)
		}
	}
}

// readLine returns the next line of in without its line ending. A last
// line without a newline counts; after it, the error wraps ErrNoInput.
// On an error it ends the pending prompt on w with a newline.
func readLine(in *bufio.Reader, w io.Writer) (string, error) {
	line, err := in.ReadString('\n')
	if err != nil {
		if !errors.Is(err, io.EOF) {
			fmt.Fprintln(w)
			return "", fmt.Errorf("read standard input: %w", err)
		}
		if line == "" {
			fmt.Fprintln(w)
			return "", ErrNoInput
		}
	}
	return strings.TrimRight(line, "\r\n"), nil
}
