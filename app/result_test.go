package app

import (
	"errors"
	"strings"
	"testing"
)

func TestResultEncoding(t *testing.T) {
	long := strings.Repeat("r", MaxReasonLen+100)
	tests := []struct {
		name       string
		res        []byte
		wantStatus Status
		wantBody   string
		wantErr    bool
	}{
		{"ok empty", OK(nil), StatusOK, "", false},
		{"ok payload", OK([]byte("v")), StatusOK, "v", false},
		{"not found", Fail(StatusNotFound, "gone"), StatusNotFound, "gone", false},
		{"rejected", Failf(StatusRejected, "need %d", 3), StatusRejected, "need 3", false},
		{"bad op", Fail(StatusBadOp, "x"), StatusBadOp, "x", false},
		{"conflict", Fail(StatusConflict, "c"), StatusConflict, "c", false},
		{"fail with OK becomes bad op", Fail(StatusOK, "oops"), StatusBadOp, "oops", false},
		{"long reason truncated", Fail(StatusRejected, long), StatusRejected, long[:MaxReasonLen], false},
		{"empty result", nil, 0, "", true},
		{"unknown status", []byte{200, 'x'}, 0, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, body, err := DecodeResult(tc.res)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrMalformedResult) {
					t.Fatalf("err %v does not wrap ErrMalformedResult", err)
				}
				return
			}
			if st != tc.wantStatus || string(body) != tc.wantBody {
				t.Fatalf("got (%v, %q), want (%v, %q)", st, body, tc.wantStatus, tc.wantBody)
			}
			p, err := Payload(tc.res)
			if tc.wantStatus == StatusOK {
				if err != nil || string(p) != tc.wantBody {
					t.Fatalf("Payload = %q, %v", p, err)
				}
				return
			}
			var re *ResultError
			if !errors.As(err, &re) || re.Status != tc.wantStatus || re.Reason != tc.wantBody {
				t.Fatalf("Payload error = %v, want ResultError{%v, %q}", err, tc.wantStatus, tc.wantBody)
			}
		})
	}
}

func TestValidCaller(t *testing.T) {
	tests := []struct {
		c    Caller
		want bool
	}{
		{nil, false},
		{Caller{}, false},
		{make(Caller, 32), true},
		{make(Caller, MaxCallerLen), true},
		{make(Caller, MaxCallerLen+1), false},
	}
	for _, tc := range tests {
		if got := ValidCaller(tc.c); got != tc.want {
			t.Errorf("ValidCaller(len %d) = %v, want %v", len(tc.c), got, tc.want)
		}
	}
}
