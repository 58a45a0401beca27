package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/braid-bft/braid/app"
	"github.com/braid-bft/braid/app/kv"
	"github.com/braid-bft/braid/client"
	"github.com/braid-bft/braid/msg"
)

// requester is what the RESP server and the HTTP API share: the Executor,
// the deadline of one command, and what a failed request means.
type requester struct {
	exec    Executor
	timeout time.Duration
}

// submit runs op on the cluster under ctx, which carries the deadline of
// the command op belongs to, after checking that op fits in a request.
func (q requester) submit(ctx context.Context, op []byte) ([]byte, error) {
	if len(op) > maxOp {
		return nil, fmt.Errorf("%w: the operation would be %d bytes, at most %d fit in a request", errTooLarge, len(op), maxOp)
	}
	return q.exec.Execute(ctx, op)
}

// maxOp is the largest operation a request carries: a request's op limit
// less what an instance change adds.
const maxOp = msg.MaxOpSize - msg.InstanceChangeOverhead

var (
	errTooLarge = errors.New("too large")
	errKeyLen   = fmt.Errorf("key longer than %d bytes", kv.MaxKeyLen)
	// errMemory is a command refused because the gateway's budget for
	// large commands and replies in flight (Options.MaxInflightBytes) is
	// spent.
	errMemory = errors.New("gateway memory budget exhausted by other large commands in flight: retry later or send smaller commands")
)

// failure classifies the error of a failed request, for both front ends:
// the HTTP status and the one-line message (RESP prefixes "ERR "). The
// pool was busy, the cluster did not answer in time, no replica could be
// reached, the gateway is shutting down, the op was too large, or the
// application refused it.
func (q requester) failure(err error) (status int, message string) {
	var re *app.ResultError
	switch {
	case errors.Is(err, ErrBusy):
		return http.StatusServiceUnavailable, fmt.Sprintf("gateway busy: every cluster client was in use for %v", q.timeout)
	case errors.Is(err, client.ErrNoReplicas):
		return http.StatusServiceUnavailable, "no replica reachable: is the cluster running?"
	case errors.Is(err, client.ErrClosed), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, "gateway shutting down or request cancelled"
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, fmt.Sprintf("the cluster did not answer within %v", q.timeout)
	case errors.Is(err, errMemory):
		return http.StatusServiceUnavailable, errMemory.Error()
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge, err.Error()
	case errors.Is(err, kv.ErrNotInteger):
		return http.StatusConflict, kv.ErrNotInteger.Error()
	case errors.Is(err, kv.ErrOverflow):
		return http.StatusConflict, kv.ErrOverflow.Error()
	case errors.Is(err, errKeyLen):
		return http.StatusBadRequest, errKeyLen.Error()
	case errors.As(err, &re):
		status := http.StatusInternalServerError
		switch re.Status {
		case app.StatusNotFound:
			status = http.StatusNotFound
		case app.StatusRejected, app.StatusConflict:
			status = http.StatusConflict
		case app.StatusBadOp:
			status = http.StatusBadRequest
		}
		return status, re.Reason
	}
	return http.StatusInternalServerError, err.Error()
}

// budget is a byte count shared by every connection: what large commands
// and MGET replies may hold at once beyond each connection's own
// allowance. A nil budget is unlimited.
type budget struct {
	mu        sync.Mutex
	used, max int64
}

// take reserves n bytes, or reports false if that would exceed the budget.
func (b *budget) take(n int64) bool {
	if b == nil || n <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

// give returns n bytes taken earlier.
func (b *budget) give(n int64) {
	if b == nil || n <= 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// account charges the bytes of one command (its arguments, its reply)
// against a budget: the first free bytes are the connection's own, the
// rest are taken from the budget.
type account struct {
	b     *budget
	free  int64
	used  int64 // bytes charged so far
	taken int64 // of them, taken from b
}

// charge adds n bytes; it fails with errMemory if the budget has no room.
func (a *account) charge(n int) error {
	a.used += int64(n)
	if over := a.used - a.free - a.taken; over > 0 {
		if !a.b.take(over) {
			a.used -= int64(n)
			return errMemory
		}
		a.taken += over
	}
	return nil
}

// reset gives back everything taken.
func (a *account) reset() {
	a.b.give(a.taken)
	a.used, a.taken = 0, 0
}
