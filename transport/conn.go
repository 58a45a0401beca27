package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Buffer sizes for connections. The write buffer is what lets many small
// frames (votes, acks) share one TLS record and one syscall.
const (
	writeBufSize = 64 << 10
	readBufSize  = 64 << 10
)

// Hello protocol. The dialer sends helloLen bytes as one frame right after
// the TLS handshake; the acceptor answers with an ack frame once it has
// authorised the claimed identity. Waiting for the ack means a dialer never
// queues traffic into a connection the acceptor is about to reject.
const (
	helloMagic  = "BRD1"
	roleReplica = byte(1)
	roleClient  = byte(2)
	helloLen    = len(helloMagic) + 1 + 4
	ackLen      = len(helloMagic) + 1
	ackOK       = byte(0)
	maxHelloLen = 64 // read limit for hello and ack frames
)

type hello struct {
	role byte
	id   uint32 // replica id; zero for clients
}

func encodeHello(h hello) []byte {
	b := make([]byte, 0, frameHeaderLen+helloLen)
	b = binary.BigEndian.AppendUint32(b, uint32(helloLen))
	b = append(b, helloMagic...)
	b = append(b, h.role)
	return binary.BigEndian.AppendUint32(b, h.id)
}

func decodeHello(p []byte) (hello, error) {
	if len(p) != helloLen || string(p[:len(helloMagic)]) != helloMagic {
		return hello{}, errors.New("transport: malformed hello")
	}
	h := hello{role: p[len(helloMagic)], id: binary.BigEndian.Uint32(p[len(helloMagic)+1:])}
	if h.role != roleReplica && h.role != roleClient {
		return hello{}, fmt.Errorf("transport: hello with unknown role %d", h.role)
	}
	return h, nil
}

func encodeAck() []byte {
	b := make([]byte, 0, frameHeaderLen+ackLen)
	b = binary.BigEndian.AppendUint32(b, uint32(ackLen))
	b = append(b, helloMagic...)
	return append(b, ackOK)
}

func readAck(br *bufio.Reader) error {
	p, err := ReadFrame(br, maxHelloLen)
	if err != nil {
		return fmt.Errorf("transport: read hello ack: %w", err)
	}
	if len(p) != ackLen || string(p[:len(helloMagic)]) != helloMagic || p[len(helloMagic)] != ackOK {
		return errors.New("transport: malformed hello ack")
	}
	return nil
}

// writeLoop drains q into w until a write fails or stop or done is closed.
// Frames are written into a bufio.Writer and flushed only when the queue is
// empty (bufio itself flushes whenever its buffer fills), so a burst of small
// frames becomes a few large writes. sent is called after each successful
// flush with the number of frames and payload bytes it completed.
//
// On a write error it also reports lost: frames taken from the queue that
// were not confirmed flushed. It is an upper bound (bufio may have pushed
// some of them to the socket before the error), which is the best we can
// know without acknowledgements.
func writeLoop(w io.Writer, q *sendQueue, stop, done <-chan struct{}, sent func(frames, bytes int)) (lost int, err error) {
	bw := bufio.NewWriterSize(w, writeBufSize)
	var batch [][]byte
	for {
		select {
		case <-q.ready:
		case <-stop:
			return 0, nil
		case <-done:
			return 0, nil
		}
		frames, payload := 0, 0
		for {
			batch = q.popAll(batch)
			if len(batch) == 0 {
				break
			}
			cost := 0
			for i, f := range batch {
				if err := WriteFrame(bw, f); err != nil {
					q.release(remainingCost(batch))
					clear(batch)
					return frames + len(batch) - i, err
				}
				frames++
				payload += len(f)
				cost += frameCost(f)
			}
			q.release(cost)
			clear(batch) // drop references so frames can be collected
		}
		if frames == 0 {
			continue
		}
		if err := bw.Flush(); err != nil {
			return frames, fmt.Errorf("transport: flush: %w", err)
		}
		if sent != nil {
			sent(frames, payload)
		}
	}
}

func remainingCost(fs [][]byte) int {
	n := 0
	for _, f := range fs {
		n += frameCost(f)
	}
	return n
}
