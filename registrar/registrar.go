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
// HandleRegister, Lookup, All, RemoveUser and Apply are safe for concurrent
// use.
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
	// observe is told of users whose bindings changed (WithBindingObserver).
	observe func(user string)
	// byReach holds contacts' children for reachable, unreachable and
	// unknown, looked up once: setGauges runs on every REGISTER.
	byReach [3]prometheus.Gauge
	// transports is parley_contacts_by_transport (TLS, part 10), and
	// byTransport its children in the order of Transports.
	transports  *prometheus.GaugeVec
	byTransport [len(Transports)]prometheus.Gauge

	// pinger and qualifyEvery are set by WithQualify; nil turns
	// qualification off.
	pinger       Pinger
	qualifyEvery time.Duration

	minExpires, maxExpires int
	flushDelay, sweepEvery time.Duration

	// node and nodeAddr are this node's ID and SIP address (WithNode,
	// WithNodeAddr), stamped on the bindings it writes.
	node, nodeAddr string

	// dirty holds users whose bindings changed since the last flush; kick
	// wakes Run when the first one arrives. flushing holds those of the
	// write in progress. missed holds users whose change from another node
	// Apply passed over because one of theirs was dirty or flushing: they
	// are read again once written (see Watcher.Refresh).
	dirtyMu  sync.Mutex
	dirty    map[string]struct{}
	flushing map[string]struct{}
	missed   map[string]struct{}
	kick     chan struct{}
	// storeBack wakes Run when a shared Store has (re)connected, so writes
	// that failed meanwhile are retried at once rather than after the
	// backoff.
	storeBack chan struct{}

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
		transports: newTransportsGauge(),
		rtt:        newContactRTT(),
		minExpires: DefaultMinExpires,
		maxExpires: DefaultMaxExpires,
		flushDelay: DefaultFlushDelay,
		sweepEvery: DefaultSweepInterval,
		dirty:      map[string]struct{}{},
		flushing:   map[string]struct{}{},
		missed:     map[string]struct{}{},
		kick:       make(chan struct{}, 1),
		storeBack:  make(chan struct{}, 1),
	}
	for i, reach := range []string{"reachable", "unreachable", "unknown"} {
		r.byReach[i] = r.contacts.WithLabelValues(reach)
	}
	for i, tr := range Transports {
		r.byTransport[i] = r.transports.WithLabelValues(tr)
	}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	if r.metricsReg != nil {
		collectors := map[string]prometheus.Collector{
			metricRegistrations: r.gauge,
			metricContacts:      r.contacts,
			metricTransports:    r.transports,
			metricContactRTT:    r.rtt,
		}
		if ms, ok := store.(storeMetrics); ok {
			collectors[metricStoreErrors] = ms.errorCounter()
		}
		for name, c := range collectors {
			if err := r.metricsReg.Register(c); err != nil {
				return nil, fmt.Errorf("registrar: register %s: %w", name, err)
			}
		}
	}
	r.loc = newLocation(r.setGauges)
	r.loc.maxContacts = r.maxContacts
	r.loc.node, r.loc.nodeAddr = r.node, r.nodeAddr
	r.loc.onChange = func(user string) {
		r.markDirty(user)
		if r.observe != nil {
			r.observe(user)
		}
	}
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

// storeMetrics is a Store with metrics of its own, which New registers with
// the Registrar's (WithMetrics).
type storeMetrics interface {
	errorCounter() *prometheus.CounterVec
}

// Apply replaces user's bindings with bs (none: the user is gone), as
// another node wrote them to the shared Store; a [Watcher] calls it. Unlike
// a REGISTER it writes nothing back to the Store. Expired bindings in bs are
// dropped, and what qualification knew of a binding bs keeps over the same
// path is kept. A user with a change of this node's own still on its way to
// the Store is left alone: that change is newer, and once it is written the
// user is read again (see [Watcher]).
func (r *Registrar) Apply(user string, bs []Binding) {
	r.loc.replace(user, bs, r.now(), r.holdBack)
}

// holdBack reports whether user has a change of this node's not yet
// written to the Store, and if so remembers to read user again after the
// write. Apply calls it under the location's lock.
func (r *Registrar) holdBack(user string) bool {
	r.dirtyMu.Lock()
	defer r.dirtyMu.Unlock()
	_, dirty := r.dirty[user]
	_, flushing := r.flushing[user]
	if dirty || flushing {
		r.missed[user] = struct{}{}
		return true
	}
	return false
}

// reclaim marks for writing every user with an unexpired binding this node
// took, and wakes Run: a shared Store calls it when it has (re)connected,
// since the store may have come back empty and Watch is about to apply what
// it holds.
func (r *Registrar) reclaim() {
	if users := r.loc.owned(r.node, r.now()); len(users) > 0 {
		r.markDirty(users...)
	}
	select {
	case r.storeBack <- struct{}{}:
	default:
	}
}

// owns reports whether b was written by this node (or by one without an
// ID, before nodes shared a store), so that this node qualifies it.
func (r *Registrar) owns(b *Binding) bool { return b.Node == "" || b.Node == r.node }

// setGauges publishes the binding counts; the location calls it under its
// lock whenever they change.
func (r *Registrar) setGauges(t tally) {
	r.gauge.Set(float64(t.total()))
	r.byReach[0].Set(float64(t.reachable))
	r.byReach[1].Set(float64(t.unreachable))
	r.byReach[2].Set(float64(t.unknown))
	for i := range Transports {
		r.byTransport[i].Set(float64(t.transport[i]))
	}
}

// How Run retries a failed write to the Store: after flushRetryMin,
// doubling up to flushRetryMax, or at once when a shared Store says it has
// reconnected.
const (
	flushRetryMin = 500 * time.Millisecond
	flushRetryMax = 5 * time.Second
)

// Run removes expired bindings on time, writes changes to the Store in
// batches (retrying failed writes until they succeed) and, with
// [WithQualify], pings the contacts, until ctx is done. When the Store is a
// [Watcher] Run also runs its Watch, applying what other nodes write. When
// ctx is done Run flushes what is pending, waits for pings in flight and
// for Watch (their context is ctx, so they end at once) and returns (nil,
// or the error of that last flush). Call it once, in a goroutine the caller
// owns.
func (r *Registrar) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: Run called twice", ErrBadOption)
	}
	defer r.running.Store(false)
	var wg sync.WaitGroup
	defer wg.Wait()
	if r.pinger != nil {
		wg.Go(func() { r.qualify(ctx) })
	}
	if w, ok := r.store.(Watcher); ok {
		w.OnResync(r.reclaim)
		wg.Go(func() {
			if err := w.Watch(ctx, r.Apply); err != nil {
				r.log.Error("registrar: watching the shared store stopped", "err", err)
			}
		})
	}
	sweep := time.NewTicker(r.sweepEvery)
	defer sweep.Stop()
	var (
		flushT *time.Timer
		flushC <-chan time.Time
		// retry is the wait before the next attempt after a failed write;
		// 0 while writes succeed.
		retry time.Duration
	)
	arm := func(d time.Duration) {
		if flushT != nil {
			flushT.Stop()
		}
		flushT = time.NewTimer(d)
		flushC = flushT.C
	}
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
				arm(r.flushDelay)
			}
		case <-r.storeBack:
			if retry > 0 {
				arm(r.flushDelay)
			}
		case <-flushC:
			flushC, flushT = nil, nil
			err := r.flush()
			switch {
			case err == nil && retry > 0:
				r.log.Info("registrar: writing bindings to the store works again")
				retry = 0
			case err != nil && retry == 0:
				retry = flushRetryMin
				r.log.Warn("registrar: writing bindings to the store failed; will retry", "err", err, "in", retry)
			case err != nil:
				retry = min(2*retry, flushRetryMax)
				r.log.Debug("registrar: writing bindings to the store failed again", "err", err, "in", retry)
			}
			if err != nil {
				arm(retry)
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
	for u := range users {
		r.flushing[u] = struct{}{}
	}
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
	var refresh []string
	r.dirtyMu.Lock()
	for u := range users {
		delete(r.flushing, u)
		if err != nil {
			// Merge back so nothing is lost; newer changes may have arrived.
			r.dirty[u] = struct{}{}
			continue
		}
		if _, ok := r.missed[u]; ok {
			if _, again := r.dirty[u]; !again {
				delete(r.missed, u)
				refresh = append(refresh, u)
			}
		}
	}
	r.dirtyMu.Unlock()
	if err != nil {
		return err
	}
	if w, ok := r.store.(Watcher); ok && len(refresh) > 0 {
		w.Refresh(refresh...)
	}
	r.log.Debug("registrar: bindings written to store", "users", len(batch))
	return nil
}
