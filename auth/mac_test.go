package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func TestMAC(t *testing.T) {
	// RFC 4231 test case 2.
	tag := MAC([]byte("Jefe"), []byte("what do ya want for nothing?"))
	if got := hex.EncodeToString(tag[:]); got != "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" {
		t.Fatalf("MAC = %s", got)
	}
	key, msg := []byte("k"), []byte("m")
	tag = MAC(key, msg)
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	if !hmac.Equal(tag[:], h.Sum(nil)) {
		t.Error("MAC differs from crypto/hmac")
	}
	if !CheckMAC(key, msg, tag[:]) {
		t.Error("valid tag rejected")
	}
	for name, bad := range map[string][]byte{
		"flipped": flip(tag[:], 7), "short": tag[:31], "long": append(tag[:], 0), "nil": nil,
	} {
		if CheckMAC(key, msg, bad) {
			t.Errorf("%s tag accepted", name)
		}
	}
	if CheckMAC([]byte("other"), msg, tag[:]) || CheckMAC(key, []byte("n"), tag[:]) {
		t.Error("tag accepted under wrong key or message")
	}
}
