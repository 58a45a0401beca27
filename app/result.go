package app

import (
	"errors"
	"fmt"

	"github.com/braid-bft/braid/internal/enum"
)

// Status is the first byte of every result.
//
// Result binary format (shared by all applications):
//
//	result  = status(1 byte) payload
//	payload = application-defined bytes        if status == StatusOK
//	        = UTF-8 human-readable reason      otherwise
//
// Failures are ordinary replicated results rather than Go errors because
// every replica must return byte-identical answers for the same op: the
// client collects f+1 matching results, so the reason text is part of the
// replicated output and must itself be deterministic (no addresses, no
// timestamps, no echoing of unbounded input).
type Status byte

const (
	// StatusOK means the op was applied (or, for reads, answered); the
	// payload is op-specific.
	StatusOK Status = 0
	// StatusNotFound means the op referred to a key or account that does not
	// exist. State is unchanged.
	StatusNotFound Status = 1
	// StatusRejected means the op was well formed but refused by the
	// application's rules (authorization, insufficient funds, overflow,
	// duplicate account...). State is unchanged.
	StatusRejected Status = 2
	// StatusBadOp means the op could not be decoded or violated a size bound.
	// State is unchanged.
	StatusBadOp Status = 3
	// StatusConflict means a conditional write's precondition (e.g. a
	// compare-and-set's expected value) did not hold. State is unchanged.
	StatusConflict Status = 4

	maxStatus = StatusConflict
)

var statusNames = []string{
	StatusOK:       "ok",
	StatusNotFound: "not found",
	StatusRejected: "rejected",
	StatusBadOp:    "bad op",
	StatusConflict: "conflict",
}

// String returns the status name.
func (s Status) String() string { return enum.Name(statusNames, s, "status") }

// MaxReasonLen bounds failure reasons so a result can never be inflated by
// an attacker-influenced message. Fail truncates longer reasons.
const MaxReasonLen = 256

// OK encodes a successful result carrying payload.
func OK(payload []byte) []byte {
	out := make([]byte, 1+len(payload))
	out[0] = byte(StatusOK)
	copy(out[1:], payload)
	return out
}

// Fail encodes a failed result with status s and a reason (truncated to
// MaxReasonLen bytes). s must not be StatusOK; if it is, StatusBadOp is used
// so that a programming error can never masquerade as success.
func Fail(s Status, reason string) []byte {
	if s == StatusOK {
		s = StatusBadOp
	}
	if len(reason) > MaxReasonLen {
		reason = reason[:MaxReasonLen]
	}
	out := make([]byte, 1+len(reason))
	out[0] = byte(s)
	copy(out[1:], reason)
	return out
}

// Failf is Fail with fmt.Sprintf formatting. Arguments must be
// deterministic (integers, constant strings), never pointers or maps.
func Failf(s Status, format string, args ...any) []byte {
	return Fail(s, fmt.Sprintf(format, args...))
}

// ErrMalformedResult is returned when a result is empty or carries an
// unknown status byte.
var ErrMalformedResult = errors.New("app: malformed result")

// DecodeResult splits a result into its status and payload (for StatusOK)
// or reason (otherwise). The returned slice aliases res.
func DecodeResult(res []byte) (Status, []byte, error) {
	if len(res) == 0 {
		return 0, nil, fmt.Errorf("%w: empty", ErrMalformedResult)
	}
	s := Status(res[0])
	if s > maxStatus {
		return 0, nil, fmt.Errorf("%w: unknown status %d", ErrMalformedResult, res[0])
	}
	return s, res[1:], nil
}

// ResultError is the Go error form of a non-OK result, so clients can use
// errors.As to inspect the status.
type ResultError struct {
	Status Status
	Reason string
}

func (e *ResultError) Error() string {
	if e.Reason == "" {
		return e.Status.String()
	}
	return e.Status.String() + ": " + e.Reason
}

// Payload returns the payload of an OK result, or a *ResultError for a
// failed result, or an error wrapping ErrMalformedResult.
func Payload(res []byte) ([]byte, error) {
	s, body, err := DecodeResult(res)
	if err != nil {
		return nil, err
	}
	if s != StatusOK {
		return nil, &ResultError{Status: s, Reason: string(body)}
	}
	return body, nil
}

// StatusOf returns the status byte of a result, or an error if it is
// malformed.
func StatusOf(res []byte) (Status, error) {
	s, _, err := DecodeResult(res)
	return s, err
}
