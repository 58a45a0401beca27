package kv

import (
	"fmt"
	"sync"
	"testing"
)

// TestConcurrentReadersAndWriter exercises the locking (run with -race):
// read-only ops, Digest and Snapshot may be served while ordered writes
// execute.
func TestConcurrentReadersAndWriter(t *testing.T) {
	s := New(Config{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 300 {
			s.Execute(alice, Put([]byte(fmt.Sprintf("k%03d", i%50)), []byte(fmt.Sprint(i))))
			if i%7 == 0 {
				s.Execute(alice, Delete([]byte(fmt.Sprintf("k%03d", i%50))))
			}
		}
	}()
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				s.Execute(bob, Get([]byte(fmt.Sprintf("k%03d", i%50))))
				if _, err := DecodeScan(s.Execute(bob, Scan(nil, nil, 20))); err != nil {
					t.Error(err)
					return
				}
				_ = s.Digest()
				if i%20 == 0 {
					if _, err := s.Snapshot(); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	checkDigest(t, s)
}
