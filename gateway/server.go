package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Defaults for zero Options fields.
const (
	DefaultTimeout  = 10 * time.Second
	DefaultMaxConns = 1024
)

// Options tunes a Server. The zero value is usable.
type Options struct {
	// Timeout bounds one cluster request, waiting for a free client
	// included (default 10s). A command that needs several requests
	// (MGET, MSET, DEL and EXISTS of several keys) gives each its own.
	Timeout time.Duration
	// MaxConns bounds the open connections (default 1024); beyond it a
	// new connection is told "-ERR max number of clients reached" and
	// closed. With each connection's memory bounded (see MaxCommandBytes)
	// this bounds the gateway's.
	MaxConns int
	// Logger receives connection errors; nil discards them.
	Logger *slog.Logger
}

// Server serves the Redis protocol (RESP2) over an Executor: every command
// becomes one or more cluster requests, answered once f+1 replicas agree
// (the Pool's SDK clients do the matching). Each connection runs its own
// goroutine and has at most one command executing, as RESP requires replies
// in order; concurrency comes from many connections, bounded by the
// Executor's capacity (a Pool's size).
type Server struct {
	exec     Executor
	timeout  time.Duration
	maxConns int
	log      *slog.Logger
	cursors  *cursorTable

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewServer returns a server that runs commands through exec.
func NewServer(exec Executor, opts Options) *Server {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{exec: exec, timeout: opts.Timeout, maxConns: opts.MaxConns, log: log,
		cursors: newCursorTable(), conns: make(map[net.Conn]struct{})}
}

// Serve accepts connections on ln until ctx ends, then closes ln and every
// connection (commands in flight are cancelled) and returns once every
// connection's goroutine has ended. It returns nil after ctx ends, else
// the listener's error.
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
			// Out of file descriptors and the like: wait and retry rather
			// than stop serving everyone.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "err", err, "in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			continue
		}
		backoff = 0
		if !s.track(ctx, c) {
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			s.serveConn(ctx, c)
		}()
	}
	cancel()
	<-stopped
	s.wg.Wait()
	if ctx.Err() != nil && errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// track registers c, or refuses it when the server is full or stopping.
func (s *Server) track(ctx context.Context, c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ctx.Err() != nil {
		c.Close()
		return false
	}
	if len(s.conns) >= s.maxConns {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = io.WriteString(c, "-ERR max number of clients reached\r\n")
		c.Close()
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

// serveConn reads and runs commands in order. Replies are flushed when no
// further command is already buffered, so a pipelined burst is answered
// with few writes.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	r, w := NewReader(c), NewWriter(c)
	for {
		args, err := r.ReadCommand()
		if err != nil {
			var pe *ProtocolError
			if errors.As(err, &pe) {
				w.Error("ERR " + pe.Error())
				_ = w.Flush()
				s.log.Info("protocol error, closing connection", "remote", c.RemoteAddr().String(), "err", pe.Msg)
			}
			return
		}
		quit := s.dispatch(ctx, w, args)
		if quit || !r.Buffered() {
			if err := w.Flush(); err != nil || quit {
				return
			}
		}
	}
}
