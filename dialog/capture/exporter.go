package capture

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Bounds of the queue between the SIP paths and the sender: at most
// DefaultQueueMessages messages and DefaultQueueBytes bytes of them wait;
// past either, a message is dropped.
const (
	DefaultQueueMessages = 4096
	DefaultQueueBytes    = 8 << 20
)

// failureLogEvery bounds the log lines about failed sends to the
// collector: one at once, then one per interval with the count.
const failureLogEvery = time.Minute

// Exporter sends a copy of every SIP message it is shown to a HEPv3
// collector over UDP. It is a transport.Tap; Run sends.
type Exporter struct {
	conn *net.UDPConn
	to   string
	base Packet // AgentID, AuthKey, NodeName
	log  *slog.Logger

	maxMessages int
	maxBytes    int64
	q           chan record
	queued      atomic.Int64 // payload bytes waiting in q

	sent, dropped, failed prometheus.Counter
	reg                   prometheus.Registerer

	// Sender only: the local address towards a peer, for a listener bound
	// to every address; the failures since the last log line.
	routes   map[netip.Addr]route
	failures int
	loggedAt time.Time

	closeOnce sync.Once
}

// record is one message waiting to be sent.
type record struct {
	proto    uint8
	src, dst netip.AddrPort
	at       time.Time
	b        []byte
}

type route struct {
	local netip.Addr
	at    time.Time
}

// Bounds of the route cache: maxRoutes peers, each answer for routeTTL.
const (
	maxRoutes = 1024
	routeTTL  = time.Minute
)

// Option configures an Exporter.
type Option func(*Exporter)

// WithAgentID sets the capture node ID (capture.hep_id).
func WithAgentID(id uint32) Option { return func(e *Exporter) { e.base.AgentID = id } }

// WithAuthKey sets the collector's password (capture.hep_password).
func WithAuthKey(key string) Option { return func(e *Exporter) { e.base.AuthKey = key } }

// WithNodeName names this node in every packet (node.id).
func WithNodeName(name string) Option { return func(e *Exporter) { e.base.NodeName = name } }

// WithLogger logs send failures to log.
func WithLogger(log *slog.Logger) Option { return func(e *Exporter) { e.log = log } }

// WithRegisterer registers the exporter's counters on reg.
func WithRegisterer(reg prometheus.Registerer) Option { return func(e *Exporter) { e.reg = reg } }

// WithQueue bounds the messages waiting to be sent: at most messages of
// them, and bytes bytes in all.
func WithQueue(messages, bytes int) Option {
	return func(e *Exporter) {
		if messages > 0 {
			e.maxMessages = messages
		}
		if bytes > 0 {
			e.maxBytes = int64(bytes)
		}
	}
}

// NewHEP returns an Exporter that sends HEPv3 over UDP to addr
// ("host:port", capture.hep). The host is resolved once, now.
func NewHEP(addr string, opts ...Option) (*Exporter, error) {
	e := &Exporter{
		to: addr, log: slog.New(slog.DiscardHandler),
		maxMessages: DefaultQueueMessages, maxBytes: DefaultQueueBytes,
		routes: map[netip.Addr]route{},
	}
	e.base.Type = TypeSIP
	for _, o := range opts {
		o(e)
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("capture.hep %q: %w", addr, err)
	}
	if e.conn, err = net.DialUDP("udp", nil, ua); err != nil {
		return nil, fmt.Errorf("capture.hep %q: %w", addr, err)
	}
	e.q = make(chan record, e.maxMessages)
	counter := func(outcome string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "parley_hep_messages_total",
			Help:        "SIP messages copied to the HEP collector (capture.hep), by outcome: sent, dropped (the queue was full) or failed (not encodable or not sent).",
			ConstLabels: prometheus.Labels{"outcome": outcome},
		})
	}
	e.sent, e.dropped, e.failed = counter("sent"), counter("dropped"), counter("failed")
	if e.reg != nil {
		for _, c := range []prometheus.Collector{e.sent, e.dropped, e.failed} {
			if err := e.reg.Register(c); err != nil {
				e.conn.Close()
				return nil, err
			}
		}
	}
	return e, nil
}

// Seen queues a copy of a message read or written over network ("udp"
// or "tcp"), or drops it when the queue is full. It never blocks.
func (e *Exporter) Seen(network string, src, dst netip.AddrPort, b []byte) {
	if len(bytes.Trim(b, "\r\n\x00")) == 0 {
		return // a keepalive, or its answer
	}
	proto := uint8(ProtoUDP)
	if network == "tcp" {
		proto = ProtoTCP
	}
	n := int64(len(b))
	if e.queued.Add(n) > e.maxBytes {
		e.queued.Add(-n)
		e.dropped.Inc()
		return
	}
	select {
	case e.q <- record{proto: proto, src: src, dst: dst, at: time.Now(), b: bytes.Clone(b)}:
	default:
		e.queued.Add(-n)
		e.dropped.Inc()
	}
}

// Run sends what is queued until done is closed, then what is left, and
// closes the socket. Call it once.
func (e *Exporter) Run(done <-chan struct{}) {
	defer e.Close()
	buf := make([]byte, 0, 2048)
	for {
		select {
		case r := <-e.q:
			buf = e.send(buf[:0], r)
		case <-done:
			for {
				select {
				case r := <-e.q:
					buf = e.send(buf[:0], r)
				default:
					return
				}
			}
		}
	}
}

// Close closes the socket; Run does so when it ends.
func (e *Exporter) Close() error {
	var err error
	e.closeOnce.Do(func() { err = e.conn.Close() })
	return err
}

// send encodes and sends one record; it returns the buffer for reuse.
func (e *Exporter) send(buf []byte, r record) []byte {
	e.queued.Add(-int64(len(r.b)))
	p := e.base
	p.Protocol, p.Time, p.Payload = r.proto, r.at, r.b
	p.Src, p.Dst = e.addresses(r.src, r.dst)
	buf, err := AppendHEP(buf, &p)
	if err == nil {
		_, err = e.conn.Write(buf)
	}
	if err != nil {
		e.failed.Inc()
		e.logFailure(err)
		return buf
	}
	e.sent.Inc()
	return buf
}

// addresses makes a record's addresses fit HEP: IPv4-mapped IPv6 as IPv4,
// a listener's unspecified address as the local address towards the peer,
// and both of one family (IPv4 as IPv4-mapped IPv6 when the other is
// IPv6).
func (e *Exporter) addresses(src, dst netip.AddrPort) (netip.AddrPort, netip.AddrPort) {
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	if src.Addr().IsUnspecified() && dst.Addr().IsValid() {
		src = netip.AddrPortFrom(e.localFor(dst.Addr()), src.Port())
	}
	if dst.Addr().IsUnspecified() && src.Addr().IsValid() {
		dst = netip.AddrPortFrom(e.localFor(src.Addr()), dst.Port())
	}
	if src.Addr().Is4() != dst.Addr().Is4() {
		src = netip.AddrPortFrom(netip.AddrFrom16(src.Addr().As16()), src.Port())
		dst = netip.AddrPortFrom(netip.AddrFrom16(dst.Addr().As16()), dst.Port())
	}
	return src, dst
}

// localFor is the local address the kernel sends to peer from (a UDP
// "connect", which sends nothing), kept per peer for routeTTL; the
// unspecified address when there is no route.
func (e *Exporter) localFor(peer netip.Addr) netip.Addr {
	if peer.IsLoopback() {
		return peer
	}
	now := time.Now()
	if r, ok := e.routes[peer]; ok && now.Sub(r.at) < routeTTL {
		return r.local
	}
	local := netip.IPv4Unspecified()
	if peer.Is6() {
		local = netip.IPv6Unspecified()
	}
	if c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(peer, 9))); err == nil {
		local = c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
		c.Close()
	}
	if len(e.routes) >= maxRoutes {
		clear(e.routes)
	}
	e.routes[peer] = route{local: local, at: now}
	return local
}

// logFailure logs a failed send: the first at once, then at most one line
// per failureLogEvery with the count meanwhile.
func (e *Exporter) logFailure(err error) {
	e.failures++
	now := time.Now()
	if !e.loggedAt.IsZero() && now.Sub(e.loggedAt) < failureLogEvery {
		return
	}
	e.log.Warn("HEP capture: message not sent to the collector", "capture.hep", e.to, "error", err, "failed", e.failures)
	e.failures, e.loggedAt = 0, now
}
