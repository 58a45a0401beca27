package auth

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

// mixedItems returns n items, roughly one in seven invalid.
func mixedItems(t testing.TB, n int, seed uint64) []BatchItem {
	rng := rand.New(rand.NewPCG(seed, 5))
	items := honestItems(t, n, seed)
	for i := range items {
		if rng.IntN(7) == 0 {
			items[i] = corrupt(rng, items[i])
		}
	}
	return items
}

func TestPoolConcurrent(t *testing.T) {
	p := NewPool(2, 2)
	defer p.Close()
	var inputs [][]BatchItem
	for i, n := range []int{0, 1, 7, 8, 9, 33, 100, 300} {
		inputs = append(inputs, mixedItems(t, n, uint64(i+1)))
	}
	wants := make([][]bool, len(inputs))
	for i, in := range inputs {
		wants[i] = singleResults(in)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 10 {
		wg.Go(func() {
			for k := range 3 {
				i := (g + k) % len(inputs)
				got, err := p.Verify(context.Background(), inputs[i])
				if err != nil {
					errs <- err
					return
				}
				for j := range got {
					if got[j] != wants[i][j] {
						errs <- errors.New("pool result differs from Verify")
						return
					}
				}
				if len(got) != len(wants[i]) {
					errs <- errors.New("wrong result length")
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Signatures == 0 || st.Invalid == 0 || st.Fallbacks == 0 || st.Batches == 0 {
		t.Errorf("stats not recorded: %+v", st)
	}
}

func TestPoolDefaults(t *testing.T) {
	p := NewPool(0, -1)
	defer p.Close()
	if p.nworkers != runtime.GOMAXPROCS(0) || cap(p.jobs) != p.nworkers {
		t.Errorf("workers %d queue %d, want %d each", p.nworkers, cap(p.jobs), runtime.GOMAXPROCS(0))
	}
	got, err := p.Verify(context.Background(), nil)
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("Verify(nil) = %v, %v; want empty, nil", got, err)
	}
}

func TestPoolChunking(t *testing.T) {
	for _, tc := range []struct{ n, workers, want int }{
		{1, 4, minChunk}, {100, 4, 25}, {100, 1, 100}, {10000, 2, maxChunk}, {20, 8, minChunk},
	} {
		if got := chunkSize(tc.n, tc.workers); got != tc.want {
			t.Errorf("chunkSize(%d, %d) = %d, want %d", tc.n, tc.workers, got, tc.want)
		}
	}
}

// blockedPool returns a one-worker pool whose worker blocks before each
// chunk until release is closed, and a channel that receives each time the
// worker picks up a chunk.
func blockedPool(queue int) (p *Pool, picked chan struct{}, release chan struct{}) {
	picked = make(chan struct{}, 100)
	release = make(chan struct{})
	p = newPool(1, queue, func() {
		picked <- struct{}{}
		<-release
	})
	return p, picked, release
}

func TestPoolBackpressure(t *testing.T) {
	p, picked, release := blockedPool(1)
	defer p.Close()
	items := mixedItems(t, 3*maxChunk, 9) // three chunks for one worker
	type result struct {
		got []bool
		err error
	}
	res := make(chan result, 1)
	go func() {
		got, err := p.Verify(context.Background(), items)
		res <- result{got, err}
	}()
	<-picked // worker holds chunk 1, chunk 2 fills the queue, chunk 3 waits
	select {
	case r := <-res:
		t.Fatalf("Verify returned while the worker was blocked: %v", r.err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	checkAgree(t, items, r.got)
}

func TestPoolCancelWhileQueueing(t *testing.T) {
	p, picked, release := blockedPool(1)
	items := honestItems(t, 3*maxChunk, 10)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := p.Verify(ctx, items)
		errc <- err
	}()
	<-picked
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Verify did not return after cancellation")
	}
	close(release)
	p.Close()
	// Chunks of the abandoned call, including the one the worker held
	// when ctx was canceled, were skipped rather than verified.
	if st := p.Stats(); st.Signatures != 0 {
		t.Errorf("verified %d signatures of a canceled call", st.Signatures)
	}
}

func TestPoolCancelWhileWaiting(t *testing.T) {
	p, picked, release := blockedPool(4)
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := p.Verify(ctx, honestItems(t, 4, 11))
		errc <- err
	}()
	<-picked
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	close(release)
}

func TestPoolCanceledContext(t *testing.T) {
	p := NewPool(1, 1)
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Verify(ctx, honestItems(t, 2, 12)); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := p.Verify(ctx, honestItems(t, 2, 12)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
}

func TestPoolClose(t *testing.T) {
	p, picked, release := blockedPool(1)
	items := honestItems(t, 3*maxChunk, 13)
	// A caller whose chunks are all queued gets its results despite Close.
	queued := honestItems(t, 2, 14)
	qres := make(chan error, 1)
	go func() {
		got, err := p.Verify(context.Background(), queued)
		if err == nil {
			for _, ok := range got {
				if !ok {
					err = errors.New("valid item rejected")
				}
			}
		}
		qres <- err
	}()
	<-picked // worker holds the queued caller's only chunk
	// A caller blocked on a full queue fails with ErrPoolClosed.
	bres := make(chan error, 1)
	go func() {
		_, err := p.Verify(context.Background(), items)
		bres <- err
	}()
	time.Sleep(20 * time.Millisecond) // let it fill the queue and block
	closed := make(chan struct{})
	go func() {
		p.Close()
		close(closed)
	}()
	if err := <-bres; !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("blocked caller: err = %v, want ErrPoolClosed", err)
	}
	close(release)
	<-closed
	if err := <-qres; err != nil {
		t.Fatalf("queued caller: %v", err)
	}
	if _, err := p.Verify(context.Background(), queued); !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("after Close: err = %v, want ErrPoolClosed", err)
	}
	p.Close() // idempotent
}

// TestPoolCloseRace closes a pool while many callers are verifying; run
// under -race. Every call must either succeed with correct results or
// fail with ErrPoolClosed.
func TestPoolCloseRace(t *testing.T) {
	p := NewPool(2, 1)
	items := mixedItems(t, 40, 15)
	want := singleResults(items)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				got, err := p.Verify(context.Background(), items)
				if errors.Is(err, ErrPoolClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				for i := range want {
					if got[i] != want[i] {
						t.Error("wrong result")
						return
					}
				}
			}
		})
	}
	time.Sleep(30 * time.Millisecond)
	p.Close()
	wg.Wait()
}
