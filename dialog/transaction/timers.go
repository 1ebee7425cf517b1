package transaction

import (
	"sync"
	"time"
)

// txTimers ends transactions when their time is up: Timers B, F, H, J, L
// and M (64*T1), D (32 s), I and K (T4). Every entry of a queue waits the
// same time, so each queue is a FIFO and the oldest entry is always first:
// one sweep every 50 ms replaces a runtime timer per transaction.
type txTimers struct {
	mu     sync.Mutex
	queues [3]expiryQueue
}

const (
	queueLong  = iota // 64*T1
	queueShort        // T4
	queueD            // Timer D: 32 s, or 64*T1 if that is longer
)

// expirer is a transaction an entry ends; expire ignores an entry whose
// time is not the transaction's current one (it was rescheduled).
type expirer interface {
	expire(at time.Time)
}

type expiryQueue struct {
	q    []expiry
	head int
}

type expiry struct {
	tx expirer
	at time.Time
}

// timerD is how long an INVITE client transaction absorbs retransmitted
// final responses over UDP (RFC 3261 §17.1.1.2: at least 32 s).
func timerD(t1 time.Duration) time.Duration { return max(32*time.Second, 64*t1) }

func (t *txTimers) add(queue int, tx expirer, at time.Time) {
	t.mu.Lock()
	q := &t.queues[queue]
	if q.head > 0 && q.head == len(q.q) {
		q.q, q.head = q.q[:0], 0
	}
	q.q = append(q.q, expiry{tx: tx, at: at})
	t.mu.Unlock()
}

// sweep ends the transactions whose time has come.
func (t *txTimers) sweep(now time.Time, due []expiry) []expiry {
	due = due[:0]
	t.mu.Lock()
	for i := range t.queues {
		q := &t.queues[i]
		for q.head < len(q.q) && !q.q[q.head].at.After(now) {
			due = append(due, q.q[q.head])
			q.q[q.head] = expiry{}
			q.head++
		}
		// Let the array shrink once most of it is consumed.
		if q.head > 4096 && q.head*2 > len(q.q) {
			q.q = append([]expiry(nil), q.q[q.head:]...)
			q.head = 0
		}
	}
	t.mu.Unlock()
	for _, e := range due {
		e.tx.expire(e.at)
	}
	clear(due)
	return due
}

// run sweeps every 50 ms until done is closed.
func (t *txTimers) run(done <-chan struct{}) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var due []expiry
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			due = t.sweep(now, due)
		}
	}
}
