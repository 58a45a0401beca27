package gateway

import (
	"bytes"
	"testing"

	"github.com/braid-bft/braid/app/kv"
)

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true}, {"*", "anything", true}, {"", "", true}, {"", "a", false},
		{"user:*", "user:1", true}, {"user:*", "use", false}, {"*:1", "user:1", true},
		{"h?llo", "hello", true}, {"h?llo", "hllo", false},
		{"h[ae]llo", "hallo", true}, {"h[ae]llo", "hillo", false},
		{"h[^e]llo", "hallo", true}, {"h[^e]llo", "hello", false},
		{"h[a-c]llo", "hbllo", true}, {"h[c-a]llo", "hbllo", true}, {"h[a-c]llo", "hdllo", false},
		{`h\*llo`, "h*llo", true}, {`h\*llo`, "hallo", false}, {`[\]]`, "]", true},
		{"a*b*c", "aXbYc", true}, {"a*b*c", "aXbY", false}, {"**a", "ba", true},
		{"a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false}, // no exponential blow-up
		{"[abc", "b", true}, {"x\\", "x\\", true}, {"[a-]", "-", true},
	} {
		if got := globMatch([]byte(tc.pattern), []byte(tc.s)); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func TestLiteralPrefix(t *testing.T) {
	for _, tc := range []struct{ pattern, prefix string }{
		{"user:*", "user:"}, {"*", ""}, {"abc", "abc"}, {`a\*b*`, "a*b"}, {"a?c", "a"}, {"ab[c]", "ab"},
	} {
		if got := literalPrefix([]byte(tc.pattern)); string(got) != tc.prefix {
			t.Errorf("literalPrefix(%q) = %q, want %q", tc.pattern, got, tc.prefix)
		}
	}
}

// naiveGlob is the obvious exponential recursion, the reference for
// FuzzGlobMatch (which keeps inputs short).
func naiveGlob(p, s []byte) bool {
	if len(p) == 0 {
		return len(s) == 0
	}
	if p[0] == '*' {
		for i := 0; i <= len(s); i++ {
			if naiveGlob(p[1:], s[i:]) {
				return true
			}
		}
		return false
	}
	if len(s) == 0 {
		return false
	}
	ok, next := matchToken(p, 0, s[0])
	return ok && naiveGlob(p[next:], s[1:])
}

func FuzzGlobMatch(f *testing.F) {
	f.Add([]byte("a*b?[c-e]"), []byte("axxbyd"))
	f.Add([]byte(`*\*[^x]`), []byte("**y"))
	f.Fuzz(func(t *testing.T, p, s []byte) {
		if len(p) > 12 || len(s) > 24 {
			return
		}
		if got, want := globMatch(p, s), naiveGlob(p, s); got != want {
			t.Fatalf("globMatch(%q, %q) = %v, reference %v", p, s, got, want)
		}
		// Every key a pattern matches starts with its literal prefix and
		// sorts below the prefix's end.
		if globMatch(p, s) {
			pre := literalPrefix(p)
			if !bytes.HasPrefix(s, pre) {
				t.Fatalf("%q matches %q without its prefix %q", p, s, pre)
			}
			if end := kv.PrefixEnd(pre); end != nil && bytes.Compare(s, end) >= 0 {
				t.Fatalf("%q matches %q at or past the prefix end %q", p, s, end)
			}
		}
	})
}
