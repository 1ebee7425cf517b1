package dialog

import "sync"

// serial runs one call's events one at a time, in the order they were
// given. It is the call's only owner: every change to a call (a request,
// a response, a timer, a media timeout, an admin hangup, shutdown) is a
// function run through it, and nothing touches a call's fields outside
// one. The idea is Pion's task loop, without a goroutine of its own: an
// idle call costs a struct, and its events run on the goroutine that
// brings them (do) or on the shared workers (post).
//
// A function run through the queue must not call do on the same call (it
// would wait for itself); it calls the call's other functions directly,
// or posts.
type serial struct {
	mu      sync.Mutex
	running bool
	queue   []func()
}

// do runs f in turn and returns once f has run. When nothing else of the
// call is running or waiting, f runs at once on the calling goroutine.
func (q *serial) do(work *workers, f func()) {
	q.mu.Lock()
	if !q.running {
		q.running = true
		q.mu.Unlock()
		f()
		q.handOff(work)
		return
	}
	done := make(chan struct{})
	q.queue = append(q.queue, func() {
		defer close(done)
		f()
	})
	q.mu.Unlock()
	<-done
}

// post queues f to run in turn and returns at once; f runs on a worker.
func (q *serial) post(work *workers, f func()) {
	q.mu.Lock()
	if q.running {
		q.queue = append(q.queue, f)
		q.mu.Unlock()
		return
	}
	q.running = true
	q.mu.Unlock()
	work.Go(func() {
		f()
		q.drain()
	})
}

// handOff gives what queued up while the caller's f ran to a worker, so
// do returns without running other events' work on its caller's time.
func (q *serial) handOff(work *workers) {
	q.mu.Lock()
	if len(q.queue) == 0 {
		q.running = false
		q.mu.Unlock()
		return
	}
	q.mu.Unlock()
	work.Go(q.drain)
}

// drain runs the queued functions until none is left.
func (q *serial) drain() {
	for {
		q.mu.Lock()
		if len(q.queue) == 0 {
			q.running = false
			q.queue = nil
			q.mu.Unlock()
			return
		}
		f := q.queue[0]
		q.queue[0] = nil
		q.queue = q.queue[1:]
		q.mu.Unlock()
		f()
	}
}
