package chaos

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// echoTarget is a target that answers every line it reads with "ok\n".
func echoTarget(t *testing.T) (addr string, got chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got = make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					got <- line
					if _, err := io.WriteString(c, "ok\n"); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), got
}

func recvWithin(ch chan string, d time.Duration) (string, bool) {
	select {
	case s := <-ch:
		return s, true
	case <-time.After(d):
		return "", false
	}
}

// The proxy forwards both ways; a one-way cut discards only the cut
// direction's bytes; a partition closes the connection and refuses new
// ones; healing lets new connections through.
func TestProxyCuts(t *testing.T) {
	target, got := echoTarget(t)
	nw := newNetwork()
	defer nw.close()
	l, err := nw.addLink(0, 1, target)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", l.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	replies := make(chan string, 16)
	go func() {
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				close(replies)
				return
			}
			replies <- line
		}
	}()
	send := func(s string) {
		if _, err := io.WriteString(c, s); err != nil {
			t.Fatalf("write %q: %v", s, err)
		}
	}
	send("one\n")
	if s, ok := recvWithin(got, 5*time.Second); !ok || s != "one\n" {
		t.Fatalf("target got %q, %v; want one", s, ok)
	}
	if s, ok := recvWithin(replies, 5*time.Second); !ok || s != "ok\n" {
		t.Fatalf("dialer got %q, %v; want ok", s, ok)
	}

	// 1 → 0 cut: the target still hears the dialer, its answers vanish.
	nw.setCut(1, 0, true)
	send("two\n")
	if s, ok := recvWithin(got, 5*time.Second); !ok || s != "two\n" {
		t.Fatalf("with 1→0 cut the target got %q, %v; want two", s, ok)
	}
	if s, ok := recvWithin(replies, 300*time.Millisecond); ok {
		t.Fatalf("with 1→0 cut the dialer still got %q", s)
	}
	// 0 → 1 cut as well: a partition closes the connection.
	nw.setCut(0, 1, true)
	if _, ok := <-replies; ok {
		t.Fatal("the partitioned connection delivered data")
	}
	c2, err := net.Dial("tcp", l.addr())
	if err == nil {
		c2.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, rerr := c2.Read(make([]byte, 1)); rerr == nil {
			t.Fatal("a new connection across the partition stayed open")
		}
		c2.Close()
	}
	nw.healAll()
	c3, err := net.Dial("tcp", l.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	io.WriteString(c3, "three\n")
	if s, ok := recvWithin(got, 5*time.Second); !ok || s != "three\n" {
		t.Fatalf("after healing the target got %q, %v; want three", s, ok)
	}
}
