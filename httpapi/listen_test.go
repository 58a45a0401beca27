package httpapi

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestListenConnLimit: with MaxConns 2, two idle connections hold the
// listener; a third is not served until one of them closes.
func TestListenConnLimit(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	srv, err := Listen("127.0.0.1:0", h, Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	addr := srv.Addr().String()
	var idle []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	get := func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")); err != nil {
			return err
		}
		_, err = http.ReadResponse(bufio.NewReader(c), nil)
		return err
	}
	if err := get(); err == nil {
		t.Fatal("a third connection was served while two were open (MaxConns 2)")
	}
	idle[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := get()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not served after a connection closed: %v", err)
		}
	}
}

// TestAllowedHosts: with AllowedHosts set (as a replica sets it from its
// http_addr), a request whose Host is another name — a DNS-rebinding
// page's — gets 421; the listener's own address and loopback names pass.
func TestAllowedHosts(t *testing.T) {
	h := New(&fakeSource{snap: testSnapshot()}, Options{AllowedHosts: AllowedHostsFor("10.1.2.3:7008")})
	for host, want := range map[string]int{
		"10.1.2.3:7008": 200, "localhost:7008": 200, "LOCALHOST:7008": 200, "127.0.0.1:7008": 200, "[::1]:7008": 200,
		"evil.example:7008": 421, "10.1.2.3:7009": 421, "localhost": 421, "10.1.2.4:7008": 421, "": 421,
	} {
		req := httptest.NewRequest("GET", PathStatus, nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Host %q: %d %s, want %d", host, rec.Code, rec.Body.String(), want)
		}
	}
	h = New(&fakeSource{snap: testSnapshot()}, Options{AllowedHosts: AllowedHostsFor("0.0.0.0:7008", "alpha.example.org:7006")})
	for host, want := range map[string]int{"alpha.example.org:7008": 200, "alpha.example.org:7006": 421, "192.168.1.9:7008": 200, "[fe80::1]:7008": 200, "localhost:7008": 200, "evil.example:7008": 421, "192.168.1.9:80": 421} {
		req := httptest.NewRequest("GET", PathStatus, nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("wildcard bind, Host %q: %d %s, want %d", host, rec.Code, rec.Body.String(), want)
		}
	}
}
