package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"
)

// RESPClient (exported for the end-to-end test in package gateway_test)
// is the tests' own minimal RESP2 client: it sends commands as
// arrays of bulk strings and parses one reply at a time.
type RESPClient struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

// RESPError is an error reply.
type RESPError string

// Status is a simple-string reply.
type Status string

func DialRESP(t testing.TB, addr string) *RESPClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &RESPClient{t: t, c: c, br: bufio.NewReader(c)}
}

// send writes one command without reading its reply.
func (rc *RESPClient) send(args ...string) {
	rc.t.Helper()
	b := []byte("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b = append(b, "$"+strconv.Itoa(len(a))+"\r\n"+a+"\r\n"...)
	}
	if _, err := rc.c.Write(b); err != nil {
		rc.t.Fatal(err)
	}
}

// do sends a command and returns its reply: status, RESPError, int64,
// []byte, nil (null bulk) or []any.
func (rc *RESPClient) Do(args ...string) any {
	rc.t.Helper()
	rc.send(args...)
	return rc.reply()
}

func (rc *RESPClient) reply() any {
	rc.t.Helper()
	_ = rc.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	v, err := readReply(rc.br)
	if err != nil {
		rc.t.Fatalf("reading reply: %v", err)
	}
	return v
}

func readReply(br *bufio.Reader) (any, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("bad reply line %q", line)
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+':
		return Status(body), nil
	case '-':
		return RESPError(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, err
		}
		return b[:n], nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, err
		}
		out := make([]any, 0, n)
		for range n {
			v, err := readReply(br)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown reply type %q", line[0])
}
