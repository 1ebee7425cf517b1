package transport

import (
	"bytes"
	"errors"
	"hash/maphash"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// Sink takes the messages a UDPPort reads: in parley, the transaction
// layer.
type Sink interface {
	// Request takes a request read on port from src.
	Request(port *UDPPort, req *sip.Request, src netip.AddrPort)
	// Response takes a response; false when no transaction of the sink's
	// matches it, and the port hands it to sipgo.
	Response(res *sip.Response) bool
}

// UDPPort is one UDP listener. parley reads the socket itself: requests
// and responses go to its Sink (parley's own transactions), and responses
// the sink does not know to sipgo, which reads them through the port's
// net.PacketConn face. Whatever sipgo sends goes out of the same socket.
type UDPPort struct {
	conn   *net.UDPConn
	parser *sip.Parser
	sink   Sink
	log    *slog.Logger
	// tap sees every datagram read and sent (nil: none); local is the
	// socket's address, as the tap is told it.
	tap   Tap
	local netip.AddrPort

	seed      maphash.Seed
	maxSize   int // sip.max_message_size; larger datagrams are dropped
	toSipgo   chan datagram
	closed    chan struct{}
	closeOnce sync.Once
}

// UDPOption configures a UDPPort.
type UDPOption func(*UDPPort)

// WithMaxMessageSize drops datagrams larger than n bytes unread
// (sip.max_message_size); the default is the largest UDP datagram.
func WithMaxMessageSize(n int) UDPOption {
	return func(u *UDPPort) {
		if n > 0 && n < maxDatagram {
			u.maxSize = n
		}
	}
}

type datagram struct {
	b    []byte
	from *net.UDPAddr
}

// maxDatagram is the largest SIP message read over UDP.
const maxDatagram = 65535

// NewUDPPort reads conn with parser and gives what it reads to sink.
func NewUDPPort(conn *net.UDPConn, parser *sip.Parser, sink Sink, log *slog.Logger, opts ...UDPOption) *UDPPort {
	u := &UDPPort{
		conn: conn, parser: parser, sink: sink, log: log, seed: maphash.MakeSeed(),
		maxSize: maxDatagram,
		toSipgo: make(chan datagram, 1024),
		closed:  make(chan struct{}),
	}
	for _, o := range opts {
		o(u)
	}
	u.local = addrPortOf(conn.LocalAddr())
	return u
}

// Serve reads the socket until it is closed. Reading stays on one
// goroutine; parsing and what follows run on one goroutine per CPU, and
// every message of one Call-ID goes to the same one, so a call's messages
// are taken in the order they came (an ACK before the BYE after it).
func (u *UDPPort) Serve() {
	n := min(max(runtime.GOMAXPROCS(0), 1), 8)
	shards := make([]chan datagramIn, n)
	var wg sync.WaitGroup
	for i := range shards {
		shards[i] = make(chan datagramIn, 4096)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var names sourceNames
			for in := range shards[i] {
				u.take(in.data, in.src, &names)
			}
		}()
	}
	defer func() {
		for _, c := range shards {
			close(c)
		}
		wg.Wait()
	}()
	// One byte more than the limit: a datagram that fills it is too large
	// (the kernel truncates what does not fit, silently).
	buf := make([]byte, u.maxSize+1)
	for {
		n, src, err := u.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				u.Close()
				return
			}
			u.log.Debug("SIP UDP read failed", "error", err)
			continue
		}
		if n > u.maxSize {
			u.log.Debug("SIP datagram larger than sip.max_message_size dropped", "source", src.String(), "limit", u.maxSize)
			continue
		}
		data := buf[:n]
		if len(bytes.Trim(data, "\r\n\x00")) == 0 {
			continue // keepalive
		}
		if u.tap != nil {
			u.tap.Seen(TapUDP, src, u.local, data)
		}
		shard := 0
		if len(shards) > 1 {
			shard = int(maphash.Bytes(u.seed, callIDBytes(data)) % uint64(len(shards)))
		}
		shards[shard] <- datagramIn{data: bytes.Clone(data), src: src}
	}
}

type datagramIn struct {
	data []byte
	src  netip.AddrPort
}

// sourceNames remembers the text of recent source addresses, which every
// message carries (sip.Message.Source) and which would otherwise be
// formatted anew for each. One parsing goroutine owns each.
type sourceNames struct{ m map[netip.AddrPort]string }

// maxSourceNames bounds the cache; past it, it starts again empty.
const maxSourceNames = 4096

func (n *sourceNames) name(ap netip.AddrPort) string {
	if s, ok := n.m[ap]; ok {
		return s
	}
	if n.m == nil || len(n.m) >= maxSourceNames {
		n.m = make(map[netip.AddrPort]string)
	}
	s := ap.String()
	n.m[ap] = s
	return s
}

// take parses one datagram and gives it to the transactions.
func (u *UDPPort) take(data []byte, src netip.AddrPort, names *sourceNames) {
	msg, err := u.parser.ParseSIP(data)
	if err != nil {
		msg, err = u.salvage(data, msg, err)
	}
	if err != nil {
		u.log.Debug("unparsable SIP datagram dropped", "source", src.String(), "error", err)
		return
	}
	msg.SetTransport("UDP")
	msg.SetSource(names.name(src))
	switch m := msg.(type) {
	case *sip.Request:
		// Without a Via there is nowhere a response could correctly go
		// (RFC 3261 §18.2.2).
		if sipmsg.HeaderNamed(m, "Via") == nil {
			u.log.Debug("SIP request without Via dropped", "source", src.String(), "method", string(m.Method))
			return
		}
		u.sink.Request(u, m, src)
	case *sip.Response:
		if !u.sink.Response(m) {
			// Not one of parley's transactions: sipgo's, or a stray.
			u.passResponse(data, src)
		}
	}
}

// callIDBytes finds the Call-ID (or its compact form i) in a raw message
// without parsing it; nil when there is none.
func callIDBytes(data []byte) []byte {
	head := data
	if end := bytes.Index(data, []byte("\r\n\r\n")); end >= 0 {
		head = data[:end]
	}
	for len(head) > 0 {
		i := bytes.Index(head, []byte("\r\n"))
		if i < 0 {
			return nil
		}
		head = head[i+2:]
		name, value, ok := bytes.Cut(head, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimRight(name, " \t")
		if bytes.EqualFold(name, []byte("Call-ID")) || bytes.EqualFold(name, []byte("i")) {
			if j := bytes.Index(value, []byte("\r\n")); j >= 0 {
				value = value[:j]
			}
			return bytes.TrimSpace(value)
		}
	}
	return nil
}

// passResponse hands a response to sipgo's read loop.
func (u *UDPPort) passResponse(data []byte, src netip.AddrPort) {
	select {
	case u.toSipgo <- datagram{b: bytes.Clone(data), from: net.UDPAddrFromAddrPort(src)}:
	case <-u.closed:
	}
}

// Send writes one message to dst.
func (u *UDPPort) Send(b []byte, dst netip.AddrPort) error {
	_, err := u.conn.WriteToUDPAddrPort(b, dst)
	if err == nil && u.tap != nil {
		u.tap.Seen(TapUDP, u.local, dst, b)
	}
	return err
}

// ReadFrom gives sipgo the next response.
func (u *UDPPort) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case d := <-u.toSipgo:
		return copy(p, d.b), d.from, nil
	case <-u.closed:
		return 0, nil, net.ErrClosed
	}
}

// WriteTo sends what sipgo writes.
func (u *UDPPort) WriteTo(p []byte, addr net.Addr) (int, error) {
	n, err := u.conn.WriteTo(p, addr)
	if err == nil && u.tap != nil {
		u.tap.Seen(TapUDP, u.local, addrPortOf(addr), p)
	}
	return n, err
}

// Close ends sipgo's reading; the socket itself is closed by its Listener.
func (u *UDPPort) Close() error {
	u.closeOnce.Do(func() { close(u.closed) })
	return nil
}

// LocalAddr is the socket's address.
func (u *UDPPort) LocalAddr() net.Addr { return u.conn.LocalAddr() }

// SetDeadline and its siblings do nothing: sipgo's reads end with Close.
func (u *UDPPort) SetDeadline(t time.Time) error      { return nil }
func (u *UDPPort) SetReadDeadline(t time.Time) error  { return nil }
func (u *UDPPort) SetWriteDeadline(t time.Time) error { return nil }
