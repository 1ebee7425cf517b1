package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Relay anchors the media of relayed calls: each call is a Bridge, two
// pairs of RTP/RTCP ports (one facing each side) between which the relay
// forwards packets, latching to where each side really sends from.
//
// Forwarding is done by a few workers, one per CPU by default, each an
// event loop over the sockets of the bridges it was given (epoll on Linux),
// reading and sending packets in batches without allocating. Run drives
// them.
type Relay struct {
	pool     *PortPool
	addr     netip.Addr
	addr6    netip.Addr // IPv6 sides' address (WithRelayAddress6); invalid without
	log      *slog.Logger
	timeout  time.Duration
	reg      prometheus.Registerer
	nworkers int
	base     time.Time // the relay clock: nanoseconds since base
	metrics  *relayMetrics

	workers []*worker
	open    atomic.Int64 // bridges open

	mu      sync.Mutex
	state   relayState
	bridges map[*Bridge]struct{}
	// parked holds the bound sockets of ports the pool has back: a port
	// handed out again reuses them, drained, instead of a socket, bind and
	// close per port and call. Guarded by mu.
	parked map[int]parkedSide
}

// parkedSide is a closed bridge side's sockets, kept for its port's next
// bridge, and the family they are bound on.
type parkedSide struct {
	socks [2]relaySocket
	fam   Family
}

type relayState int

const (
	relayIdle relayState = iota
	relayRunning
	relayStopped
)

// relayCounts are a worker's running totals for the metrics. They are
// plain integers guarded by the worker's mutex, which the worker holds
// anyway while it forwards: counting costs no atomic operation.
type relayCounts struct {
	packets, bytes, forwarded, dropped uint64
	// srtpFailures counts SRTP and SRTCP packets that did not
	// authenticate (srtp_relay.go), dropped as well.
	srtpFailures uint64
}

// workerBase is the part of a worker that does not depend on the platform.
type workerBase struct {
	// mu guards the bridges' state. The worker holds it while it handles
	// the packets of one wake-up, never while it waits.
	mu      sync.Mutex
	count   relayCounts
	bridges []*Bridge
	load    atomic.Int64 // len(bridges), readable without mu

	lastScan int64 // relay clock of the last idle scan; worker goroutine only
}

// NewRelay returns a relay that takes ports from pool and binds them on
// addr, the address parley's SDP announces for relayed media, or on every
// address of its family when addr is unspecified (0.0.0.0: IPv4 only); the
// SDP then announces, per side, the address facing the phone. With
// WithRelayAddress6 it binds IPv6 sides too (see OpenFamily). Nothing is
// forwarded until Run runs.
func NewRelay(pool *PortPool, addr netip.Addr, opts ...RelayOption) (*Relay, error) {
	if pool == nil {
		return nil, errors.New("media: relay needs a port pool")
	}
	addr = addr.Unmap()
	if !addr.IsValid() {
		return nil, fmt.Errorf("media: relay address %v is not an address", addr)
	}
	r := &Relay{
		pool:     pool,
		addr:     addr,
		log:      slog.New(slog.DiscardHandler),
		nworkers: runtime.GOMAXPROCS(0),
		base:     time.Now(),
		bridges:  map[*Bridge]struct{}{},
		parked:   map[int]parkedSide{},
	}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	for range r.nworkers {
		w, err := newWorker(r)
		if err != nil {
			return nil, err
		}
		r.workers = append(r.workers, w)
	}
	if r.reg != nil {
		m, err := registerRelayMetrics(r, r.reg)
		if err != nil {
			return nil, err
		}
		r.metrics = m
	}
	return r, nil
}

// now reads the relay clock, which is monotonic.
func (r *Relay) now() int64 { return int64(time.Since(r.base)) }

// Run forwards packets until ctx ends, then closes every bridge still open
// and returns nil. A relay runs once: Open fails after Run returned, and a
// second Run returns ErrRelayClosed. The relay's own descriptors (epoll)
// exist only while Run runs.
func (r *Relay) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.state != relayIdle {
		r.mu.Unlock()
		return ErrRelayClosed
	}
	r.state = relayRunning
	var err error
	started := 0
	for _, w := range r.workers {
		if err = w.start(); err != nil {
			break
		}
		started++
	}
	r.mu.Unlock()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	if err == nil {
		for _, w := range r.workers {
			wg.Go(func() {
				if err := w.loop(); err != nil {
					cancel(err)
				}
			})
		}
		r.log.Info("RTP relay running", "addr", r.addr, "addr6", r.addr6, "workers", len(r.workers), "timeout", r.timeout)
		<-ctx.Done()
		for _, w := range r.workers {
			w.wake()
		}
		wg.Wait()
	}

	r.mu.Lock()
	r.state = relayStopped
	open := make([]*Bridge, 0, len(r.bridges))
	for b := range r.bridges {
		open = append(open, b)
	}
	r.mu.Unlock()
	for _, b := range open {
		b.Close()
	}
	r.mu.Lock()
	for port, p := range r.parked {
		closeSocket(p.socks[rtpSock])
		closeSocket(p.socks[rtcpSock])
		delete(r.parked, port)
	}
	r.mu.Unlock()
	for _, w := range r.workers[:started] {
		w.stop()
	}
	if err != nil {
		return err
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return cause
	}
	r.log.Info("RTP relay stopped")
	return nil
}

// Open makes a bridge: it takes two ports of the pool, one per side, and
// binds RTP on each and RTCP on the port after it, both sides on the
// relay's own address (NewRelay's addr). When the pool has not two ports
// left it fails with ErrPortsExhausted (carrying SIP status 503) and holds
// on to nothing. The caller owns the bridge and must Close it.
func (r *Relay) Open() (*Bridge, error) {
	return r.OpenFamily(FamilyDefault, FamilyDefault)
}

// OpenFor is OpenFamily for a call between phones at a and b, the caller's
// and the callee's addresses: each side binds on the family of its phone's
// address (FamilyOf), so an IPv4 phone can call an IPv6 one.
func (r *Relay) OpenFor(a, b netip.Addr) (*Bridge, error) {
	return r.OpenFamily(FamilyOf(a), FamilyOf(b))
}

// OpenFamily is Open with side A's sockets bound on family a and side B's
// on family b. IPv6 binds on WithRelayAddress6's address, unless the
// relay's own address is IPv6; a family the relay has no address of, and
// FamilyDefault, bind on the relay's own address. Bridge.Family says which
// family a side got. The pool's ports serve both families: a port taken by
// one side is taken for both.
func (r *Relay) OpenFamily(a, b Family) (*Bridge, error) {
	br := &Bridge{r: r, done: make(chan struct{}), widx: -1}
	for s, f := range [2]Family{a, b} {
		addr, fam := r.bindAddr(f)
		port, socks, err := r.bindSide(addr, fam)
		if err != nil {
			if s == int(SideB) {
				r.unbind(&br.sides[SideA])
			}
			return nil, err
		}
		br.sides[s].port, br.sides[s].socks, br.sides[s].fam = port, socks, fam
	}
	br.activity = r.now()
	return r.register(br)
}

// OpenAt makes a bridge on the given RTP ports, ports[SideA] facing the
// caller and ports[SideB] the callee, to rebuild a call where it was: it
// takes them from the pool and binds them as Open does, reusing a parked
// port's sockets. It fails with ErrPortNotInPool if a port is not one of
// the pool's, and with ErrPortTaken if one is in use or another socket
// holds it; then it holds on to nothing. The caller owns the bridge and
// must Close it.
func (r *Relay) OpenAt(ports [2]int) (*Bridge, error) {
	return r.OpenAtFamily(ports, [2]Family{})
}

// OpenAtFamily is OpenAt with each side bound on its family, fams[SideA]
// and fams[SideB], as OpenFamily binds them: a mixed-family call rebuilt
// where it was.
func (r *Relay) OpenAtFamily(ports [2]int, fams [2]Family) (*Bridge, error) {
	b := &Bridge{r: r, done: make(chan struct{}), widx: -1}
	for s := range b.sides {
		addr, fam := r.bindAddr(fams[s])
		socks, err := r.bindAt(ports[s], addr, fam)
		if err != nil {
			if s == int(SideB) {
				r.unbind(&b.sides[SideA])
			}
			return nil, fmt.Errorf("media: opening a bridge on ports %d and %d: %w", ports[SideA], ports[SideB], err)
		}
		b.sides[s].port, b.sides[s].socks, b.sides[s].fam = ports[s], socks, fam
	}
	b.activity = r.now()
	return r.register(b)
}

// bindAddr returns the address a side asking for family f binds on, and
// that address's family.
func (r *Relay) bindAddr(f Family) (netip.Addr, Family) {
	if f == IPv6 && r.addr.Is4() && r.addr6.IsValid() {
		return r.addr6, IPv6
	}
	return r.addr, FamilyOf(r.addr)
}

// unbind closes the sockets of a side bound but not registered and releases
// its port.
func (r *Relay) unbind(st *sideState) {
	closeSocket(st.socks[rtpSock])
	closeSocket(st.socks[rtcpSock])
	r.pool.Release(st.port)
}

// bindAt takes port from the pool and binds RTP on it and RTCP on the next
// one on addr, of family fam, or reuses its parked sockets.
func (r *Relay) bindAt(port int, addr netip.Addr, fam Family) ([2]relaySocket, error) {
	if err := r.pool.Take(port); err != nil {
		return [2]relaySocket{}, err
	}
	if socks, ok := r.unpark(port, fam); ok {
		return socks, nil
	}
	rtp, rtcp, err := openSockets(addr, port)
	if err != nil {
		r.pool.Release(port)
		if errors.Is(err, syscall.EADDRINUSE) {
			return [2]relaySocket{}, fmt.Errorf("%w: %w", ErrPortTaken, err)
		}
		return [2]relaySocket{}, fmt.Errorf("media: binding RTP on %v: %w", addr, err)
	}
	return [2]relaySocket{rtp, rtcp}, nil
}

// register hands b, whose sides are bound, to the least loaded worker. If
// that fails it closes b's sockets and releases its ports.
func (r *Relay) register(b *Bridge) (*Bridge, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var err error
	if r.state == relayStopped {
		err = ErrRelayClosed
		for s := range b.sides {
			closeSocket(b.sides[s].socks[rtpSock])
			closeSocket(b.sides[s].socks[rtcpSock])
		}
	} else {
		b.w = r.leastLoaded()
		err = b.w.add(b) // closes the sockets if it fails
	}
	if err != nil {
		r.pool.Release(b.sides[SideA].port)
		r.pool.Release(b.sides[SideB].port)
		return nil, err
	}
	r.bridges[b] = struct{}{}
	r.open.Add(1)
	return b, nil
}

// InUse returns how many bridges are open.
func (r *Relay) InUse() int { return int(r.open.Load()) }

// bindSide acquires a port and binds RTP on it and RTCP on the next one on
// addr, of family fam, trying another port when one the pool found free was
// taken meanwhile.
func (r *Relay) bindSide(addr netip.Addr, fam Family) (int, [2]relaySocket, error) {
	var failed []int
	defer func() {
		for _, p := range failed {
			r.pool.Release(p)
		}
	}()
	var lastErr error
	for range bindAttempts(r.pool) {
		port, err := r.pool.Acquire()
		if err != nil {
			// Returned as is so its SIPStatus (503) stays visible.
			return 0, [2]relaySocket{}, err
		}
		if socks, ok := r.unpark(port, fam); ok {
			return port, socks, nil
		}
		rtp, rtcp, err := openSockets(addr, port)
		if err != nil {
			failed, lastErr = append(failed, port), err
			continue
		}
		return port, [2]relaySocket{rtp, rtcp}, nil
	}
	return 0, [2]relaySocket{}, fmt.Errorf("media: binding RTP on %v: %w", addr, lastErr)
}

// unpark returns the parked sockets of port, drained of what came while
// they waited, if they are of family fam; parked sockets of the other
// family are closed, so that the port can be bound anew.
func (r *Relay) unpark(port int, fam Family) ([2]relaySocket, bool) {
	r.mu.Lock()
	p, ok := r.parked[port]
	delete(r.parked, port)
	r.mu.Unlock()
	if !ok {
		return [2]relaySocket{}, false
	}
	if p.fam != fam {
		closeSocket(p.socks[rtpSock])
		closeSocket(p.socks[rtcpSock])
		return [2]relaySocket{}, false
	}
	drainSocket(p.socks[rtpSock])
	drainSocket(p.socks[rtcpSock])
	return p.socks, true
}

// park keeps the sockets of a closed bridge's side for the next bridge
// that gets its port, while Run runs; otherwise they are closed.
func (r *Relay) park(port int, socks [2]relaySocket, fam Family) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != relayRunning {
		closeSocket(socks[rtpSock])
		closeSocket(socks[rtcpSock])
		return
	}
	r.parked[port] = parkedSide{socks: socks, fam: fam}
}

// leastLoaded picks the worker with the fewest bridges.
func (r *Relay) leastLoaded() *worker {
	best := r.workers[0]
	for _, w := range r.workers[1:] {
		if w.load.Load() < best.load.Load() {
			best = w
		}
	}
	return best
}

// closeBridge is Bridge.Close, once.
func (r *Relay) closeBridge(b *Bridge) {
	w := b.w
	w.mu.Lock()
	w.remove(b, true)
	if b.dtmf != nil {
		b.dtmf.close()
	}
	st := BridgeStats{A: b.sides[SideA].stats(r), B: b.sides[SideB].stats(r)}
	w.mu.Unlock()

	r.mu.Lock()
	delete(r.bridges, b)
	r.mu.Unlock()
	for s := range b.sides {
		r.park(b.sides[s].port, b.sides[s].socks, b.sides[s].fam)
		b.sides[s].socks[rtpSock].fd, b.sides[s].socks[rtcpSock].fd = -1, -1
	}
	r.pool.Release(b.sides[SideA].port)
	r.pool.Release(b.sides[SideB].port)
	r.open.Add(-1)
	r.metrics.bridgeClosed(st)
	r.log.Debug("bridge closed",
		"port_a", b.sides[SideA].port, "port_b", b.sides[SideB].port,
		"packets_a", st.A.Packets, "packets_b", st.B.Packets,
		"lost_a", st.A.Lost, "lost_b", st.B.Lost,
		"jitter_a", st.A.Jitter, "jitter_b", st.B.Jitter)
}

// counts sums the workers' totals.
func (r *Relay) counts() relayCounts {
	var c relayCounts
	for _, w := range r.workers {
		w.mu.Lock()
		c.packets += w.count.packets
		c.bytes += w.count.bytes
		c.forwarded += w.count.forwarded
		c.dropped += w.count.dropped
		c.srtpFailures += w.count.srtpFailures
		w.mu.Unlock()
	}
	return c
}

// endpoint turns a peer address into an endpoint the side's sockets can
// send to; the zero endpoint if they cannot (invalid, unspecified, port 0 or
// not of the family the side's sockets are bound on).
func (st *sideState) endpoint(ap netip.AddrPort) endpoint {
	a := ap.Addr().Unmap()
	if !a.IsValid() || a.IsUnspecified() || ap.Port() == 0 || a.Is4() != (st.fam == IPv4) {
		return endpoint{}
	}
	ap = netip.AddrPortFrom(a, ap.Port())
	return endpoint{ap: ap, sa: makeSockaddr(ap)}
}

// attach records b as one of w's bridges. The caller holds w.mu.
func (w *workerBase) attach(b *Bridge) {
	b.widx = len(w.bridges)
	w.bridges = append(w.bridges, b)
	w.load.Store(int64(len(w.bridges)))
}

// detach forgets b. The caller holds w.mu.
func (w *workerBase) detach(b *Bridge) {
	if b.widx < 0 {
		return
	}
	last := len(w.bridges) - 1
	w.bridges[b.widx] = w.bridges[last]
	w.bridges[b.widx].widx = b.widx
	w.bridges[last] = nil
	w.bridges = w.bridges[:last]
	b.widx = -1
	w.load.Store(int64(len(w.bridges)))
}

// scanIdle closes Done of the bridges silent for timeout. The caller holds
// w.mu.
func (w *workerBase) scanIdle(now, timeout int64) {
	for _, b := range w.bridges {
		b.checkIdle(now, timeout)
	}
}

// idleTick is how often a worker checks for silent bridges: a quarter of
// the timeout, so Done closes at most 25% late, within sane bounds.
func idleTick(timeout time.Duration) time.Duration {
	return min(max(timeout/4, 10*time.Millisecond), time.Second)
}
