package chaos

import (
	"net"
	"sync"
)

// The network between replica processes is a set of loopback TCP proxies
// that braid chaos owns: every replica dials its peers at a proxy port
// (the generated configuration of each process points there), and the
// proxy forwards to the peer's real listener. Cutting bytes at a proxy
// needs no privileges, leaves nothing behind on the machine if braid chaos
// dies, and gives each direction of each link its own switch:
//
//   - a one-way cut a→b discards every byte a sends to b on their
//     connection while b's bytes still reach a. The TLS stream then breaks
//     for good (a record is missing), so when the cut heals the receiver
//     drops the connection and the dialer reconnects, as after a real outage;
//   - a partition (both directions cut) closes the link's connections and
//     closes every new one at once: the dialer sees a reset, as with a
//     firewall's reject.

// network holds the cut switches, one per ordered pair of processes.
type network struct {
	mu    sync.Mutex
	cut   map[[2]int]bool // [from, to] → from's bytes to to are discarded
	links []*link
}

func newNetwork() *network { return &network{cut: map[[2]int]bool{}} }

// cutOff reports whether bytes from process a to process b are discarded.
func (nw *network) cutOff(a, b int) bool {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return nw.cut[[2]int{a, b}]
}

// setCut switches the direction a→b; a link cut in both directions drops
// its open connections.
func (nw *network) setCut(a, b int, on bool) {
	nw.mu.Lock()
	nw.cut[[2]int{a, b}] = on
	both := nw.cut[[2]int{a, b}] && nw.cut[[2]int{b, a}]
	links := append([]*link(nil), nw.links...)
	nw.mu.Unlock()
	if both {
		for _, l := range links {
			if (l.from == a && l.to == b) || (l.from == b && l.to == a) {
				l.closeConns()
			}
		}
	}
}

// healAll removes every cut.
func (nw *network) healAll() {
	nw.mu.Lock()
	clear(nw.cut)
	nw.mu.Unlock()
}

// close stops every proxy and its connections.
func (nw *network) close() {
	nw.mu.Lock()
	links := nw.links
	nw.links = nil
	nw.mu.Unlock()
	for _, l := range links {
		l.ln.Close()
		l.mu.Lock()
		for c := range l.conns {
			c.Close()
		}
		l.conns = nil // later connections are closed by track
		l.mu.Unlock()
	}
}

// link is the proxy process from uses to reach process to. A link with
// to < 0 is a black hole: it accepts and closes at once (twins' halves use
// one for every replica of the other half).
type link struct {
	nw       *network
	from, to int
	target   string // to's real address
	ln       net.Listener

	mu    sync.Mutex
	conns map[net.Conn]bool
}

// addLink starts a proxy on a free loopback port for from's connections to
// the process to at target.
func (nw *network) addLink(from, to int, target string) (*link, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &link{nw: nw, from: from, to: to, target: target, ln: ln, conns: map[net.Conn]bool{}}
	nw.mu.Lock()
	nw.links = append(nw.links, l)
	nw.mu.Unlock()
	go l.serve()
	return l, nil
}

func (l *link) addr() string { return l.ln.Addr().String() }

func (l *link) partitioned() bool {
	return l.to < 0 || (l.nw.cutOff(l.from, l.to) && l.nw.cutOff(l.to, l.from))
}

func (l *link) serve() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		if l.partitioned() {
			c.Close()
			continue
		}
		go l.forward(c)
	}
}

// forward connects c to the target and pumps bytes both ways, each
// direction through its cut switch.
func (l *link) forward(c net.Conn) {
	up, err := net.Dial("tcp", l.target)
	if err != nil {
		c.Close()
		return
	}
	if !l.track(c, up) {
		return
	}
	done := make(chan struct{}, 2)
	go l.pump(c, up, l.from, l.to, done)
	go l.pump(up, c, l.to, l.from, done)
	<-done
	c.Close()
	up.Close()
	<-done
	l.untrack(c, up)
}

// pump copies src (bytes of process a) to dst (towards process b),
// discarding them while a→b is cut.
func (l *link) pump(src, dst net.Conn, a, b int, done chan<- struct{}) {
	defer func() { done <- struct{}{} }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !l.nw.cutOff(a, b) {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// track registers a connection pair; false (both closed) if the proxy
// closed meanwhile.
func (l *link) track(cs ...net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns == nil {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		l.conns[c] = true
	}
	return true
}

func (l *link) untrack(cs ...net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range cs {
		delete(l.conns, c)
	}
}

func (l *link) closeConns() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.Close()
		delete(l.conns, c)
	}
}
