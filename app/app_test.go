package app

import "testing"

func TestCallerIDIsBigEndianID(t *testing.T) {
	got := CallerID(0x0102030405060708)
	if string(got) != "\x01\x02\x03\x04\x05\x06\x07\x08" {
		t.Fatalf("CallerID = %x", []byte(got))
	}
}
