package gateway

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
)

func readAll(t *testing.T, in string) ([][][]byte, error) {
	t.Helper()
	r := NewReader(strings.NewReader(in))
	var cmds [][][]byte
	for {
		args, err := r.ReadCommand()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return cmds, nil
			}
			return cmds, err
		}
		cmds = append(cmds, args)
	}
}

func words(cmds [][][]byte) string {
	var parts []string
	for _, c := range cmds {
		var w []string
		for _, a := range c {
			w = append(w, strconv.Quote(string(a)))
		}
		parts = append(parts, strings.Join(w, " "))
	}
	return strings.Join(parts, " | ")
}

func TestReadCommand(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"*1\r\n$4\r\nPING\r\n", `"PING"`},
		{"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n", `"SET" "k" ""`},
		{"*2\r\n$3\r\nGET\r\n$4\r\na\r\nb\r\n", `"GET" "a\r\nb"`}, // binary-safe
		{"PING\r\n", `"PING"`},
		{"PING\n", `"PING"`},
		{"set  k\tv \r\n", `"set" "k" "v"`},
		{"\r\n\n*0\r\n*-1\r\nPING\r\n", `"PING"`}, // blank lines and empty arrays are skipped
		{"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nQUIT\r\n", `"PING" | "ECHO" "hi" | "QUIT"`},
		{"", ``},
	} {
		cmds, err := readAll(t, tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got := words(cmds); got != tc.want {
			t.Errorf("%q: got %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestReadCommandErrors(t *testing.T) {
	big := strconv.Itoa(MaxBulkLen + 1)
	for _, tc := range []struct {
		in    string
		proto string // "" means io.ErrUnexpectedEOF
	}{
		{"*x\r\n", "invalid multibulk length"},
		{"*-2\r\n", "invalid multibulk length"},
		{"*99999999999\r\n", "invalid multibulk length"},
		{"*" + strconv.Itoa(MaxArgs+1) + "\r\n", "multibulk length"},
		{"*1\r\n+PING\r\n", "expected '$', got '+'"},
		{"*1\r\n\r\n", "expected '$', got end of line"},
		{"*1\r\n$-1\r\n", "invalid bulk length"},
		{"*1\r\n$" + big + "\r\n", "bulk length"},
		{"*1\r\n$2\r\nabcd\r\n", "not terminated by CRLF"},
		{"*5\r\n" + strings.Repeat("$1000000\r\n"+strings.Repeat("x", 1000000)+"\r\n", 5), "command larger than"},
		{strings.Repeat("a", MaxInlineLen+1) + "\r\n", "line longer than"},
		{"*2\r\n$3\r\nGET\r\n", ""},
		{"*1\r\n$3\r\nGE", ""},
		{"PING", ""},
	} {
		_, err := readAll(t, tc.in)
		var pe *ProtocolError
		switch {
		case tc.proto == "" && !errors.Is(err, io.ErrUnexpectedEOF):
			t.Errorf("%.40q: err %v, want unexpected EOF", tc.in, err)
		case tc.proto != "" && (!errors.As(err, &pe) || !strings.Contains(pe.Error(), tc.proto)):
			t.Errorf("%.40q: err %v, want protocol error %q", tc.in, err, tc.proto)
		}
	}
}

func TestWriter(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	w.Simple("OK")
	w.Error("ERR bad\r\nthing")
	w.Int(-7)
	w.Bulk([]byte("a\r\nb"))
	w.Null()
	w.Array(2)
	w.Bulk(nil)
	w.Int(0)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "+OK\r\n-ERR bad  thing\r\n:-7\r\n$4\r\na\r\nb\r\n$-1\r\n*2\r\n$0\r\n\r\n:0\r\n"
	if b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
}

// FuzzReadCommand feeds arbitrary bytes to the reader: it must never panic,
// never return an empty command or one above the limits, and a command it
// accepts must re-encode to a stream it reads back identically.
func FuzzReadCommand(f *testing.F) {
	f.Add([]byte("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"))
	f.Add([]byte("PING\r\nECHO hi\n"))
	f.Add([]byte("*1\r\n$-1\r\n"))
	f.Add([]byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nshort\r\n"))
	f.Add([]byte("*-1\r\n*0\r\n\r\n"))
	f.Add([]byte("*1\r\n$4\r\nPI"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		for range 64 {
			args, err := r.ReadCommand()
			if err != nil {
				var pe *ProtocolError
				if !errors.As(err, &pe) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				return
			}
			if len(args) == 0 || len(args) > MaxArgs {
				t.Fatalf("%d arguments", len(args))
			}
			total := 0
			var enc bytes.Buffer
			enc.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
			for _, a := range args {
				total += len(a)
				enc.WriteString("$" + strconv.Itoa(len(a)) + "\r\n")
				enc.Write(a)
				enc.WriteString("\r\n")
			}
			if total > MaxCommandBytes {
				t.Fatalf("command of %d bytes", total)
			}
			again, err := NewReader(&enc).ReadCommand()
			if err != nil || len(again) != len(args) {
				t.Fatalf("re-encoded command reads back as %q, %v", again, err)
			}
			for i := range args {
				if !bytes.Equal(again[i], args[i]) {
					t.Fatalf("argument %d: %q, want %q", i, again[i], args[i])
				}
			}
		}
	})
}
