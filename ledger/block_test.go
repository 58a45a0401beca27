package ledger

import (
	"testing"

	"github.com/braid-bft/braid/msg"
)

// minRequestBytes bounds the request count a decoder accepts; it must be
// exactly what the encoder spends on an empty request.
func TestMinRequestBytesMatchesEncoder(t *testing.T) {
	one := len((&Block{Requests: []msg.Request{{}}}).Encode())
	none := len((&Block{}).Encode())
	if one-none != minRequestBytes {
		t.Fatalf("an empty request encodes in %d bytes; minRequestBytes is %d", one-none, minRequestBytes)
	}
}
