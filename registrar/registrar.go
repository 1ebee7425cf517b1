package registrar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Registrar answers REGISTER requests and keeps the location service.
// HandleRegister, Lookup, All and RemoveUser are safe for concurrent use.
// Run owns the background work (expiry sweep, store writes and, with
// WithQualify, the keepalive pings); Close flushes and releases the Store.
type Registrar struct {
	digest     *Digest
	store      Store
	loc        *location
	log        *slog.Logger
	now        func() time.Time
	metricsReg prometheus.Registerer
	gauge      prometheus.Gauge
	contacts   *prometheus.GaugeVec
	rtt        prometheus.Histogram
	// maxContacts bounds one user's bindings (WithMaxContacts).
	maxContacts int
	// byReach holds contacts' children for reachable, unreachable and
	// unknown, looked up once: setGauges runs on every REGISTER.
	byReach [3]prometheus.Gauge

	// pinger and qualifyEvery are set by WithQualify; nil turns
	// qualification off.
	pinger       Pinger
	qualifyEvery time.Duration

	minExpires, maxExpires int
	flushDelay, sweepEvery time.Duration

	// dirty holds users whose bindings changed since the last flush; kick
	// wakes Run when the first one arrives.
	dirtyMu sync.Mutex
	dirty   map[string]struct{}
	kick    chan struct{}

	// flushMu serialises writes to the store, so Run and Close may both
	// flush.
	flushMu     sync.Mutex
	storeClosed bool

	lastDate atomic.Pointer[formattedDate]

	running   atomic.Bool
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// New builds a Registrar that authenticates with d and persists to store,
// loading the bindings store already holds. The Registrar owns store from
// now on and closes it in Close.
func New(d *Digest, store Store, opts ...Option) (*Registrar, error) {
	if d == nil {
		return nil, ErrNoDigest
	}
	if store == nil {
		return nil, fmt.Errorf("%w: nil Store", ErrBadOption)
	}
	r := &Registrar{
		digest:     d,
		store:      store,
		log:        slog.New(slog.DiscardHandler),
		now:        time.Now,
		gauge:      newRegistrationsGauge(),
		contacts:   newContactsGauge(),
		rtt:        newContactRTT(),
		minExpires: DefaultMinExpires,
		maxExpires: DefaultMaxExpires,
		flushDelay: DefaultFlushDelay,
		sweepEvery: DefaultSweepInterval,
		dirty:      map[string]struct{}{},
		kick:       make(chan struct{}, 1),
	}
	for i, reach := range []string{"reachable", "unreachable", "unknown"} {
		r.byReach[i] = r.contacts.WithLabelValues(reach)
	}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	if r.metricsReg != nil {
		for name, c := range map[string]prometheus.Collector{
			metricRegistrations: r.gauge,
			metricContacts:      r.contacts,
			metricContactRTT:    r.rtt,
		} {
			if err := r.metricsReg.Register(c); err != nil {
				return nil, fmt.Errorf("registrar: register %s: %w", name, err)
			}
		}
	}
	r.loc = newLocation(r.setGauges)
	r.loc.maxContacts = r.maxContacts
	r.loc.onRestore = func(user, contact string) {
		r.log.Info("registrar: contact reachable again", "user", user, "contact", contact, "by", "REGISTER")
	}
	bs, err := store.Load()
	if err != nil {
		return nil, err
	}
	r.loc.load(bs, r.now())
	return r, nil
}

// Lookup returns the bindings of user that calls may go to, newest first:
// unexpired ones not marked unreachable by qualification (see
// [WithQualify]; unknown counts as reachable). The slice is the caller's to
// keep.
func (r *Registrar) Lookup(user string) []Binding {
	return r.loc.lookup(user, r.now())
}

// setGauges publishes the binding counts; the location calls it under its
// lock whenever they change.
func (r *Registrar) setGauges(t tally) {
	r.gauge.Set(float64(t.total()))
	r.byReach[0].Set(float64(t.reachable))
	r.byReach[1].Set(float64(t.unreachable))
	r.byReach[2].Set(float64(t.unknown))
}

// Run removes expired bindings on time, writes changes to the Store in
// batches and, with [WithQualify], pings the contacts, until ctx is done;
// then it flushes what is pending, waits for pings in flight (their context
// is ctx, so they end at once) and returns (nil, or the error of that last
// flush). Call it once, in a goroutine the caller owns.
func (r *Registrar) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: Run called twice", ErrBadOption)
	}
	defer r.running.Store(false)
	if r.pinger != nil {
		var wg sync.WaitGroup
		wg.Go(func() { r.qualify(ctx) })
		defer wg.Wait()
	}
	sweep := time.NewTicker(r.sweepEvery)
	defer sweep.Stop()
	var (
		flushT *time.Timer
		flushC <-chan time.Time
	)
	defer func() {
		if flushT != nil {
			flushT.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return r.flush()
		case <-sweep.C:
			if users := r.loc.sweep(r.now()); len(users) > 0 {
				r.markDirty(users...)
			}
		case <-r.kick:
			if flushC == nil {
				flushT = time.NewTimer(r.flushDelay)
				flushC = flushT.C
			}
		case <-flushC:
			flushC, flushT = nil, nil
			if err := r.flush(); err != nil {
				r.log.Warn("registrar: writing bindings to the store failed; will retry", "err", err)
			}
		}
	}
}

// Close stops answering registrations (later REGISTERs get 503), writes
// pending changes and closes the Store. It does not stop Run: cancel Run's
// context for that. Calling Close again returns the first result.
func (r *Registrar) Close() error {
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		ferr := r.flush()
		r.flushMu.Lock()
		r.storeClosed = true
		cerr := r.store.Close()
		r.flushMu.Unlock()
		r.closeErr = errors.Join(ferr, cerr)
	})
	return r.closeErr
}

// markDirty queues users for the next store write and wakes Run.
func (r *Registrar) markDirty(users ...string) {
	r.dirtyMu.Lock()
	for _, u := range users {
		r.dirty[u] = struct{}{}
	}
	r.dirtyMu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// flush writes the current bindings of every dirty user to the store: one
// transaction when the store is a BatchStore. On failure the users stay
// dirty for the next attempt.
func (r *Registrar) flush() error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	if r.storeClosed {
		return nil
	}
	r.dirtyMu.Lock()
	users := r.dirty
	r.dirty = make(map[string]struct{}, len(users))
	r.dirtyMu.Unlock()
	if len(users) == 0 {
		return nil
	}
	batch := make(map[string][]Binding, len(users))
	for u := range users {
		batch[u] = r.loc.snapshot(u)
	}
	var err error
	if bs, ok := r.store.(BatchStore); ok {
		err = bs.SaveBatch(batch)
	} else {
		for u, b := range batch {
			if e := r.store.Save(u, b); e != nil {
				err = e
				break
			}
		}
	}
	if err != nil {
		// Merge back so nothing is lost; newer changes may have arrived.
		r.dirtyMu.Lock()
		for u := range users {
			r.dirty[u] = struct{}{}
		}
		r.dirtyMu.Unlock()
		return err
	}
	r.log.Debug("registrar: bindings written to store", "users", len(batch))
	return nil
}
