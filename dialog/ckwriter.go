package dialog

import (
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ckWriter takes checkpoints from the calls' queues and writes them in
// batches from its own goroutine (Server.runCheckpoints), so neither the
// store's latency nor a disk sync is ever on the signalling path. A call's
// later checkpoint replaces an earlier one still waiting, and its end
// replaces both with a delete.
type ckWriter struct {
	store Checkpoints

	mu      sync.Mutex
	pending map[string]*callState // nil: delete the call's checkpoint
	// stored are the calls whose checkpoint is in the store, and inflight
	// the batch being written: a call that ends before its checkpoint left
	// pending (a short call) costs the store nothing.
	stored   map[string]struct{}
	inflight map[string]*callState
	// frozen stops all writes: parley is stopping without hanging up
	// (Detach), and the calls' checkpoints must stay as they are.
	frozen bool
	wake   chan struct{}

	writes  *prometheus.CounterVec
	latency prometheus.Histogram
	waiting prometheus.GaugeFunc
	// failing is set while the store refuses writes (for /readyz).
	failing error
	lastLog time.Time
}

// ckBatchWait is how long the writer collects checkpoints after the first
// one before it writes them: a burst of answers costs one write.
const ckBatchWait = 20 * time.Millisecond

// ckMinorEvery is how often the minor sync point (the media counters) of
// an established call is written when they moved. The calls are spread
// over ckMinorSlices ticks within it, so the store takes a slice of them at
// a time rather than all at once.
const (
	ckMinorEvery  = 5 * time.Second
	ckMinorSlices = 5
)

// ckRefreshEvery is how often a call's checkpoint is written even when
// nothing in it moved: it keeps Redis's expiry (5 minutes) of a live node's
// checkpoints from running out.
const ckRefreshEvery = time.Minute

func newCkWriter(store Checkpoints) *ckWriter {
	w := &ckWriter{store: store, pending: map[string]*callState{}, stored: map[string]struct{}{}, wake: make(chan struct{}, 1)}
	w.writes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_checkpoint_writes_total",
		Help: "Checkpoint batches written to the store, by result.",
	}, []string{"result"})
	w.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "parley_checkpoint_write_seconds",
		Help:    "Time to write one batch of checkpoints to the store.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
	w.waiting = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "parley_checkpoints_pending",
		Help: "Checkpoints taken but not yet written (they pile up while the store is away).",
	}, func() float64 {
		w.mu.Lock()
		defer w.mu.Unlock()
		return float64(len(w.pending))
	})
	return w
}

func (w *ckWriter) register(reg prometheus.Registerer) {
	if reg != nil {
		reg.MustRegister(w.writes, w.latency, w.waiting)
	}
}

// put queues call id's checkpoint.
func (w *ckWriter) put(id string, st *callState) { w.queue(id, st) }

// del queues the deletion of call id's checkpoint.
func (w *ckWriter) del(id string) { w.queue(id, nil) }

func (w *ckWriter) queue(id string, st *callState) {
	w.mu.Lock()
	if w.frozen {
		w.mu.Unlock()
		return
	}
	if st == nil && w.pending[id] != nil {
		_, stored := w.stored[id]
		_, writing := w.inflight[id]
		if !stored && !writing {
			// Its checkpoint never reached the store: nothing to delete.
			delete(w.pending, id)
			w.mu.Unlock()
			return
		}
	}
	w.pending[id] = st
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// markStored records that call id's checkpoint is in the store already
// (a restored or adopted call), so that its end deletes it.
func (w *ckWriter) markStored(id string) {
	w.mu.Lock()
	w.stored[id] = struct{}{}
	w.mu.Unlock()
}

// healthy returns the store's last write error, nil once a write
// succeeded again.
func (w *ckWriter) healthy() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failing
}

// flush writes what is pending in one batch. On failure the batch goes
// back, under anything newer for the same calls, for the next try.
func (w *ckWriter) flush(log *slog.Logger) error {
	w.mu.Lock()
	batch := w.pending
	if len(batch) == 0 {
		w.mu.Unlock()
		return nil
	}
	w.pending = make(map[string]*callState, len(batch))
	w.inflight = batch
	w.mu.Unlock()

	put := make(map[string][]byte, len(batch))
	var del []string
	for id, st := range batch {
		if st == nil {
			del = append(del, id)
			continue
		}
		var err error
		if st.media != nil {
			st.Media, err = json.Marshal(st.media)
		}
		var data []byte
		if err == nil {
			data, err = json.Marshal(st)
		}
		if err != nil {
			log.Warn("checkpoint not written", "call", id, "error", err)
			continue
		}
		put[id] = data
	}
	start := time.Now()
	err := w.store.Write(put, del)
	w.latency.Observe(time.Since(start).Seconds())

	w.mu.Lock()
	defer w.mu.Unlock()
	w.inflight = nil
	if err == nil {
		for id := range put {
			w.stored[id] = struct{}{}
		}
		for _, id := range del {
			delete(w.stored, id)
		}
		w.writes.WithLabelValues("ok").Inc()
		if w.failing != nil {
			log.Info("checkpoint store writes again", "written", len(batch))
		}
		w.failing = nil
		return nil
	}
	w.writes.WithLabelValues("error").Inc()
	w.failing = err
	for id, st := range batch {
		if _, newer := w.pending[id]; !newer {
			w.pending[id] = st
		}
	}
	if time.Since(w.lastLog) > 10*time.Second {
		w.lastLog = time.Now()
		log.Warn("checkpoint store write failed; will retry", "pending", len(w.pending), "error", err)
	}
	return err
}

// freeze writes what is pending and then stops every later write.
func (w *ckWriter) freeze(log *slog.Logger) error {
	err := w.flush(log)
	w.mu.Lock()
	w.frozen = true
	w.pending = map[string]*callState{}
	w.mu.Unlock()
	return err
}

// runCheckpoints is the checkpoint writer's goroutine: it writes batches
// as checkpoints come, retries a failed batch every second, and takes the
// minor sync points. It returns when done is closed, after a last write.
func (s *Server) runCheckpoints(done <-chan struct{}) {
	w := s.ckpt
	minor := time.NewTicker(ckMinorEvery / ckMinorSlices)
	slice := 0
	defer minor.Stop()
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		select {
		case <-done:
			_ = w.flush(s.log)
			return
		case <-w.wake:
			t := time.NewTimer(ckBatchWait)
			select {
			case <-t.C:
			case <-done:
				t.Stop()
			}
			_ = w.flush(s.log)
		case <-retry.C:
			if w.healthy() != nil {
				_ = w.flush(s.log)
			}
		case <-minor.C:
			s.minorSync(slice)
			slice = (slice + 1) % ckMinorSlices
		}
	}
}

// minorSync is the minor sync point of one slice of the established
// calls: each call whose media counters moved since its last checkpoint,
// or whose checkpoint is older than ckRefreshEvery, is checkpointed again
// with its counters. It runs each call's part in that call's queue, one
// call after another on the writer's goroutine (posting them all would
// wake a worker goroutine per call).
func (s *Server) minorSync(slice int) {
	if !s.cfg.Sessions.Checkpoint {
		return
	}
	for _, c := range s.calls.all() {
		if ckSlice(c.ID) != slice {
			continue
		}
		c.do(func() {
			if !c.checkpointed {
				return
			}
			var q MediaQuality
			if c.media != nil {
				q = c.media.Quality()
			}
			if q == c.ckQuality && time.Since(c.ckAt) < ckRefreshEvery {
				return
			}
			st, ok := s.callState(c)
			if !ok {
				return
			}
			st.Quality = &q
			c.ckQuality, c.ckAt = q, time.Now()
			s.ckpt.put(c.ID, st)
		})
	}
}

// ckSlice is the minor sync slice of call id.
func ckSlice(id string) int { return int(fnv1a(id) % ckMinorSlices) }

// CheckpointsHealthy reports the checkpoint store's last write failure, or
// nil (also when calls are not checkpointed).
func (s *Server) CheckpointsHealthy() error {
	if s.ckpt == nil {
		return nil
	}
	return s.ckpt.healthy()
}
