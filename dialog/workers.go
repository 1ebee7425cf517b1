package dialog

import (
	"sync"
	"time"
)

// workers runs parley's SIP handlers and per-call goroutines on goroutines
// that outlive one job. sipgo starts a fresh goroutine for every message,
// with a 2 KB stack, and the INVITE path (digest, routing, SDP rewriting,
// the second leg) is deep enough that each such goroutine grew its stack
// four or five times: at 1,000 calls/s stack copying took about 12% of
// parley's CPU. A worker keeps the stack it grew for the next job.
//
// Workers are taken last-parked first, so the warmest are reused, and one
// that has waited longer than idle for a job ends: after a burst the pool
// shrinks back and no goroutine is left behind once calls have ended.
type workers struct {
	idleFor time.Duration

	mu     sync.Mutex
	parked []*worker // oldest first
	closed bool
	wg     sync.WaitGroup // every worker goroutine
}

type worker struct {
	jobs   chan func() // buffered, 1: a job handed over never blocks
	parked time.Time
}

func newWorkers(idle time.Duration) *workers {
	return &workers{idleFor: idle}
}

// Go runs f on a worker and returns at once.
func (p *workers) Go(f func()) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		go f()
		return
	}
	if n := len(p.parked); n > 0 {
		w := p.parked[n-1]
		p.parked[n-1] = nil
		p.parked = p.parked[:n-1]
		p.mu.Unlock()
		w.jobs <- f
		return
	}
	p.wg.Add(1)
	p.mu.Unlock()
	go p.loop(&worker{jobs: make(chan func(), 1)}, f)
}

// Run runs f on a worker and returns when f has returned.
func (p *workers) Run(f func()) {
	done := make(chan struct{})
	p.Go(func() {
		defer close(done)
		f()
	})
	<-done
}

func (p *workers) loop(w *worker, f func()) {
	defer p.wg.Done()
	for f != nil {
		f()
		if !p.park(w) {
			return
		}
		f = <-w.jobs // nil once retired
	}
}

// park puts w back among the idle workers, unless the pool is closed.
func (p *workers) park(w *worker) bool {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	w.parked = now
	p.parked = append(p.parked, w)
	return true
}

// retire ends the workers idle since before now minus idleFor.
func (p *workers) retire(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for n < len(p.parked) && now.Sub(p.parked[n].parked) > p.idleFor {
		close(p.parked[n].jobs)
		p.parked[n] = nil
		n++
	}
	if n > 0 {
		p.parked = append(p.parked[:0], p.parked[n:]...)
	}
}

// idle returns how many workers wait for a job.
func (p *workers) idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.parked)
}

// Close ends the idle workers and makes the busy ones end after their job.
// Jobs given after Close still run, each on a goroutine of its own that
// Wait does not count.
func (p *workers) Close() {
	p.mu.Lock()
	p.closed = true
	for i, w := range p.parked {
		close(w.jobs)
		p.parked[i] = nil
	}
	p.parked = nil
	p.mu.Unlock()
}

// Wait waits for every worker goroutine to end; call it after Close.
func (p *workers) Wait() { p.wg.Wait() }

// janitor retires idle workers every half idleFor until done is closed.
func (p *workers) janitor(done <-chan struct{}) {
	t := time.NewTicker(p.idleFor / 2)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			p.retire(now)
		}
	}
}
