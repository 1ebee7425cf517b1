package dialog

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSerialOrder checks that events given from many goroutines never run
// at the same time, and that the events one goroutine gives run in the
// order it gave them, whether it waits for them (do) or not (post).
func TestSerialOrder(t *testing.T) {
	w := newWorkers(time.Minute)
	defer func() { w.Close(); w.Wait() }()
	var q serial
	var inside atomic.Int32
	var mu sync.Mutex
	seen := map[int][]int{}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				f := func() {
					if inside.Add(1) != 1 {
						t.Error("two events of one call ran at once")
					}
					mu.Lock()
					seen[g] = append(seen[g], i)
					mu.Unlock()
					inside.Add(-1)
				}
				if i%2 == 0 {
					q.do(w, f)
				} else {
					q.post(w, f)
				}
			}
		}()
	}
	wg.Wait()
	// The posts left may still be running: wait for them with a do.
	q.do(w, func() {})
	for g := range 8 {
		if len(seen[g]) != 200 || !slices.IsSorted(seen[g]) {
			t.Fatalf("goroutine %d: events ran as %v", g, seen[g])
		}
	}
}

// TestSerialPostDoesNotWait checks that post returns while an earlier
// event of the call is still running.
func TestSerialPostDoesNotWait(t *testing.T) {
	w := newWorkers(time.Minute)
	defer func() { w.Close(); w.Wait() }()
	var q serial
	release := make(chan struct{})
	started := make(chan struct{})
	q.post(w, func() { close(started); <-release })
	<-started
	ran := make(chan struct{})
	q.post(w, func() { close(ran) }) // must not block
	select {
	case <-ran:
		t.Fatal("second event ran before the first ended")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case <-ran:
	case <-time.After(2 * time.Second):
		t.Fatal("second event never ran")
	}
}
