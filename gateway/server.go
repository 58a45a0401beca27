package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// Defaults for zero Options fields.
const (
	DefaultTimeout          = 10 * time.Second
	DefaultMaxConns         = 1024
	DefaultIdleTimeout      = 5 * time.Minute
	DefaultWriteTimeout     = 30 * time.Second
	DefaultMaxInflightBytes = 256 << 20
)

// connAllowance is what each connection's commands may hold without
// drawing on the shared budget (Options.MaxInflightBytes): every ordinary
// command (a SET of a 64 KiB value, an MGET of a few values) fits in it.
const connAllowance = 96 << 10

// Options tunes a Server (and, for Timeout and IdleTimeout, the HTTP API).
// The zero value is usable.
type Options struct {
	// Timeout bounds one command: all of its cluster requests together
	// (MGET, MSET, DEL and EXISTS of several keys share it), waiting for
	// free clients included (default 10s). For HTTP, one call.
	Timeout time.Duration
	// MaxConns bounds the open connections (default 1024); beyond it a
	// new connection is told "-ERR max number of clients reached" and
	// closed.
	MaxConns int
	// IdleTimeout closes a connection that sends no command for this long
	// (default 5 min): the read deadline set before each command is read.
	IdleTimeout time.Duration
	// WriteTimeout bounds each write of replies to a connection (default
	// 30s): a peer that stops reading is closed, not waited for forever.
	WriteTimeout time.Duration
	// RefusalTimeout bounds writing the refusal to a connection over
	// MaxConns (default 1 s); a test sets it long, so that a refusal that
	// stalled the server would be unmistakable.
	RefusalTimeout time.Duration
	// MaxInflightBytes bounds what large commands and MGET replies of all
	// connections hold at once beyond each connection's own allowance of
	// 96 KiB (default 256 MiB). A command that would exceed it is refused
	// ("-ERR gateway memory budget exhausted …"); one whose arguments
	// would, also closes its connection, as the rest of it is not read.
	// The gateway's memory for connections is then at most about
	// MaxConns × (96 KiB allowance + 20 KiB buffers + 64 SCAN cursors of
	// up to 1 KiB) + MaxInflightBytes.
	MaxInflightBytes int64
	// Logger receives connection errors; nil discards them.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.RefusalTimeout <= 0 {
		o.RefusalTimeout = time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.MaxInflightBytes <= 0 {
		o.MaxInflightBytes = DefaultMaxInflightBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Server serves the Redis protocol (RESP2) over an Executor: every command
// becomes one or more cluster requests, answered once f+1 replicas agree
// (the Pool's SDK clients do the matching). Each connection runs its own
// goroutine and has at most one command executing, as RESP requires replies
// in order; concurrency comes from many connections, bounded by the
// Executor's capacity (a Pool's size).
type Server struct {
	requester
	opts Options
	log  *slog.Logger
	mem  *budget

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewServer returns a server that runs commands through exec.
func NewServer(exec Executor, opts Options) *Server {
	opts = opts.withDefaults()
	return &Server{requester: requester{exec: exec, timeout: opts.Timeout}, opts: opts, log: opts.Logger,
		mem: &budget{max: opts.MaxInflightBytes}, conns: make(map[net.Conn]struct{})}
}

// Serve accepts connections on ln until ctx ends, then closes ln and every
// connection (commands in flight are cancelled) and returns once every
// connection's goroutine has ended. It returns nil after ctx ends. A
// listener closed otherwise ends Serve with the listener's error; other
// accept errors (out of file descriptors and the like) are logged and
// retried with a backoff, rather than stop serving everyone.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopped := make(chan struct{})
	go func() {
		<-ctx.Done()
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		close(stopped)
	}()
	var err error
	backoff := time.Duration(0)
	for {
		var c net.Conn
		c, err = ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "err", err, "in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			continue
		}
		backoff = 0
		switch s.track(ctx, c) {
		case refuseFull:
			// Written outside s.mu and off the accept loop: a peer that
			// does not read delays neither other connections nor shutdown.
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				_ = c.SetWriteDeadline(time.Now().Add(s.opts.RefusalTimeout))
				_, _ = io.WriteString(c, "-ERR max number of clients reached\r\n")
				c.Close()
			}()
			continue
		case refuseStopping:
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			s.serveConn(ctx, c)
		}()
	}
	stopping := ctx.Err() != nil // before cancel, which makes it always true
	cancel()
	<-stopped
	s.wg.Wait()
	if stopping {
		return nil
	}
	return err
}

type admission int

const (
	admitted admission = iota
	refuseFull
	refuseStopping
)

// track registers c, or says why it is refused; the caller writes the
// refusal and closes c, outside s.mu.
func (s *Server) track(ctx context.Context, c net.Conn) admission {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case ctx.Err() != nil:
		return refuseStopping
	case len(s.conns) >= s.opts.MaxConns:
		return refuseFull
	}
	s.conns[c] = struct{}{}
	return admitted
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

// deadlineWriter sets a write deadline before each write, so that every
// flush of replies gets its own WriteTimeout.
type deadlineWriter struct {
	c net.Conn
	d time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	if err := w.c.SetWriteDeadline(time.Now().Add(w.d)); err != nil {
		return 0, err
	}
	return w.c.Write(p)
}

// serveConn reads and runs commands in order. Replies are flushed when no
// further command is already buffered, so a pipelined burst is answered
// with few writes.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	r, w := NewReader(c), NewWriter(deadlineWriter{c, s.opts.WriteTimeout})
	r.mem = account{b: s.mem, free: connAllowance}
	defer r.Release()
	sess := s.newSession()
	for {
		_ = c.SetReadDeadline(time.Now().Add(s.opts.IdleTimeout))
		args, err := r.ReadCommand()
		if err != nil {
			var pe *ProtocolError
			switch {
			case errors.As(err, &pe):
				w.Error("ERR " + pe.Error())
				_ = w.Flush()
				s.log.Info("protocol error, closing connection", "remote", c.RemoteAddr().String(), "err", pe.Msg)
			case errors.Is(err, errMemory):
				w.Error("ERR " + errMemory.Error())
				_ = w.Flush()
				s.log.Warn("memory budget exhausted, closing connection", "remote", c.RemoteAddr().String())
			case errors.Is(err, os.ErrDeadlineExceeded):
				s.log.Info("idle connection closed", "remote", c.RemoteAddr().String(), "after", s.opts.IdleTimeout)
			}
			return
		}
		quit := sess.dispatch(ctx, w, args)
		r.Release()
		if quit || !r.Buffered() {
			if err := w.Flush(); err != nil || quit {
				return
			}
		}
	}
}
