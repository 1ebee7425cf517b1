package dialog

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestWorkersReuse checks that a job runs on a parked worker when one is
// idle, so no new goroutine is started for it.
func TestWorkersReuse(t *testing.T) {
	p := newWorkers(time.Minute)
	defer func() { p.Close(); p.Wait() }()
	for range 100 {
		p.Run(func() {})
	}
	if n := p.idle(); n != 1 {
		t.Errorf("%d idle workers after 100 jobs one at a time, want 1", n)
	}
}

// TestWorkersRetire checks that idle workers end after idleFor and that
// Close ends the rest: Wait returns.
func TestWorkersRetire(t *testing.T) {
	p := newWorkers(time.Minute)
	release := make(chan struct{})
	var ran atomic.Int32
	for range 5 {
		p.Go(func() { <-release; ran.Add(1) })
	}
	close(release)
	for deadline := time.Now().Add(5 * time.Second); p.idle() < 5; {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle workers, want 5", p.idle())
		}
		time.Sleep(time.Millisecond)
	}
	p.retire(time.Now()) // none has waited a minute
	if n := p.idle(); n != 5 {
		t.Fatalf("%d idle after an early retire, want 5", n)
	}
	p.retire(time.Now().Add(2 * time.Minute))
	if n := p.idle(); n != 0 {
		t.Fatalf("%d idle after they waited two minutes, want 0", n)
	}
	p.Close()
	done := make(chan struct{})
	go func() { p.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after the workers retired")
	}
	if ran.Load() != 5 {
		t.Errorf("%d jobs ran, want 5", ran.Load())
	}
	// After Close a job still runs.
	p.Run(func() { ran.Add(1) })
	if ran.Load() != 6 {
		t.Error("a job given after Close did not run")
	}
}
