package cdr

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-sip/parley/dialog"
)

// Sink is where records go: a file, a Redis stream. A Writer calls a
// sink's methods from one goroutine only.
type Sink interface {
	// Name names the sink in logs and in the sink label of
	// parley_cdr_records_total ("file", "redis").
	Name() string
	// Write writes one record, line being its CSV (newline included).
	Write(r Record, line []byte) error
	// Close frees what the sink holds.
	Close() error
}

// Reopener is a Sink that can let go of its file and open it again at
// its path, after a log rotation renamed it.
type Reopener interface {
	Reopen() error
}

// DefaultQueue is how many records wait for a sink before new ones are
// dropped: minutes of calls at a lab's rate, seconds at a load test's.
const DefaultQueue = 4096

// logEvery is how often a sink that keeps failing, or a queue that keeps
// overflowing, is logged again.
const logEvery = time.Minute

// Writer hands every record to its sinks without ever blocking the caller:
// each sink has a bounded queue and a goroutine of its own that the Writer
// owns (Close waits for them). A record that finds a queue full is
// dropped; one whose write fails is lost. Both are logged (the first time,
// then at most once a minute) and counted in parley_cdr_records_total.
type Writer struct {
	log     *slog.Logger
	size    int
	records *prometheus.CounterVec
	reg     prometheus.Registerer
	queues  []*queue
	wg      sync.WaitGroup
	closing sync.Once
}

// queue is one sink's waiting records and the goroutine draining them.
type queue struct {
	w    *Writer
	sink Sink
	recs chan *entry
	done chan struct{}
	// reopen is set by a reopen that found the queue full: the loop
	// reopens after the record it is writing.
	reopen atomic.Bool
	// written, failed and dropped are the sink's series of
	// parley_cdr_records_total.
	written, failed, dropped prometheus.Counter
	// dropMu guards lastDrop, when a drop was last logged.
	dropMu   sync.Mutex
	lastDrop time.Time
}

// Option configures a Writer.
type Option func(*Writer) error

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option {
	return func(w *Writer) error { w.log = l; return nil }
}

// WithQueue sets how many records wait for each sink (DefaultQueue).
func WithQueue(n int) Option {
	return func(w *Writer) error {
		if n < 1 {
			return errors.New("cdr: queue must hold at least one record")
		}
		w.size = n
		return nil
	}
}

// WithRegisterer registers parley_cdr_records_total on reg.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(w *Writer) error { w.reg = reg; return nil }
}

// NewWriter starts a Writer over sinks. Close stops it.
func NewWriter(sinks []Sink, opts ...Option) (*Writer, error) {
	w := &Writer{log: slog.Default(), size: DefaultQueue}
	for _, o := range opts {
		if err := o(w); err != nil {
			return nil, err
		}
	}
	w.records = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_cdr_records_total",
		Help: "Call detail records by sink and outcome: written, failed (the write failed, the record is lost) or dropped (the sink's queue was full).",
	}, []string{"sink", "outcome"})
	if w.reg != nil {
		if err := w.reg.Register(w.records); err != nil {
			return nil, err
		}
	}
	for _, s := range sinks {
		q := &queue{
			w: w, sink: s, recs: make(chan *entry, w.size),
			done:    make(chan struct{}),
			written: w.records.WithLabelValues(s.Name(), "written"),
			failed:  w.records.WithLabelValues(s.Name(), "failed"),
			dropped: w.records.WithLabelValues(s.Name(), "dropped"),
		}
		w.queues = append(w.queues, q)
		w.wg.Go(q.run)
	}
	return w, nil
}

// Record queues the record of call c for every sink and returns at once.
// It is the B2BUA's recorder (dialog.WithRecorder).
func (w *Writer) Record(c dialog.CallRecord) {
	w.Write(FromCall(c))
}

// Write queues r for every sink and returns at once.
func (w *Writer) Write(r Record) {
	line := r.AppendCSV(nil)
	for _, q := range w.queues {
		q.offer(r, line)
	}
}

// Reopen asks every sink that can to reopen its file (SIGHUP, after a log
// rotation). It returns at once; the reopen happens in the sink's turn,
// after the records queued before it.
func (w *Writer) Reopen() {
	for _, q := range w.queues {
		select {
		case q.recs <- &entry{reopen: true}:
		default:
			q.reopen.Store(true)
		}
	}
}

// Close writes what is queued, stops the goroutines, closes the sinks and
// waits for all of it. Records handed over after Close are dropped.
func (w *Writer) Close() error {
	w.closing.Do(func() {
		for _, q := range w.queues {
			close(q.done)
		}
	})
	w.wg.Wait()
	var errs []error
	for _, q := range w.queues {
		errs = append(errs, q.sink.Close())
	}
	return errors.Join(errs...)
}

// entry is a record waiting for a sink, with its CSV line, or a request
// to reopen the sink's file, in its turn among the records.
type entry struct {
	r      Record
	line   []byte
	reopen bool
}

// offer queues one record, or drops it when the queue is full or closed.
func (q *queue) offer(r Record, line []byte) {
	select {
	case <-q.done:
		q.drop("the record writer is closed")
		return
	default:
	}
	select {
	case q.recs <- &entry{r: r, line: line}:
	default:
		q.drop("the sink's queue is full")
	}
}

func (q *queue) drop(why string) {
	q.dropped.Inc()
	q.dropMu.Lock()
	now := time.Now()
	log := now.Sub(q.lastDrop) >= logEvery
	if log {
		q.lastDrop = now
	}
	q.dropMu.Unlock()
	if log {
		q.w.log.Warn("call record dropped", "sink", q.sink.Name(), "reason", why)
	}
}

// run writes the queue's records until done is closed, then what is left.
func (q *queue) run() {
	var failing bool
	var lastLog time.Time
	reopen := func() {
		ro, ok := q.sink.(Reopener)
		if !ok {
			return
		}
		if err := ro.Reopen(); err != nil {
			q.w.log.Error("call record file not reopened; retrying with the next record", "sink", q.sink.Name(), "error", err)
			return
		}
		q.w.log.Info("call record file reopened", "sink", q.sink.Name())
	}
	write := func(e *entry) {
		if e.reopen {
			q.reopen.Store(false)
			reopen()
			return
		}
		if q.reopen.CompareAndSwap(true, false) {
			reopen()
		}
		r := e.r
		err := q.sink.Write(r, e.line)
		if err == nil {
			q.written.Inc()
			if failing {
				failing = false
				q.w.log.Info("call records are written again", "sink", q.sink.Name())
			}
			return
		}
		q.failed.Inc()
		if !failing || time.Since(lastLog) >= logEvery {
			lastLog = time.Now()
			q.w.log.Error("call record not written", "sink", q.sink.Name(), "call", r.UniqueID, "error", err)
		}
		failing = true
	}
	for {
		select {
		case e := <-q.recs:
			write(e)
		case <-q.done:
			for n := len(q.recs); n > 0; n-- {
				write(<-q.recs)
			}
			return
		}
	}
}
