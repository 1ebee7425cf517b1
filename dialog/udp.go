package dialog

import (
	"bytes"
	"errors"
	"hash/maphash"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// udpPort is one UDP listener. parley reads the socket itself: requests go
// to its own server transactions (servertx.go) and responses to sipgo,
// which owns the client transactions and reads them through the port's
// net.PacketConn face. Whatever sipgo sends goes out of the same socket.
type udpPort struct {
	conn *net.UDPConn
	s    *Server

	seed      maphash.Seed
	toSipgo   chan datagram
	closed    chan struct{}
	closeOnce sync.Once
}

type datagram struct {
	b    []byte
	from *net.UDPAddr
}

// maxDatagram is the largest SIP message read over UDP.
const maxDatagram = 65535

func newUDPPort(conn *net.UDPConn, s *Server) *udpPort {
	return &udpPort{
		conn: conn, s: s, seed: maphash.MakeSeed(),
		toSipgo: make(chan datagram, 1024),
		closed:  make(chan struct{}),
	}
}

// read serves the socket until it is closed. Reading stays on one
// goroutine; parsing and what follows run on one goroutine per CPU, and
// every message of one Call-ID goes to the same one, so a call's messages
// are taken in the order they came (an ACK before the BYE after it).
func (u *udpPort) read() {
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
	buf := make([]byte, maxDatagram)
	for {
		n, src, err := u.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				u.Close()
				return
			}
			u.s.log.Debug("SIP UDP read failed", "error", err)
			continue
		}
		data := buf[:n]
		if len(bytes.Trim(data, "\r\n\x00")) == 0 {
			continue // keepalive
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
func (u *udpPort) take(data []byte, src netip.AddrPort, names *sourceNames) {
	msg, err := u.s.parser.ParseSIP(data)
	if err != nil && !bytes.HasPrefix(data, []byte("SIP/")) {
		// A request with a header line the parser refuses: parse it again
		// with that line marked, so the handlers can answer 400.
		if marked, _ := markMalformedLines(sip.TransportReadProps{Transport: "UDP"}, data); len(marked) != len(data) {
			data = marked
			msg, err = u.s.parser.ParseSIP(data)
		}
	}
	if err != nil {
		u.s.log.Debug("unparsable SIP datagram dropped", "source", src.String(), "error", err)
		return
	}
	msg.SetTransport("UDP")
	msg.SetSource(names.name(src))
	switch m := msg.(type) {
	case *sip.Request:
		u.s.stx.receive(u, m, src)
	case *sip.Response:
		if !u.s.ctxs.receive(m) {
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
func (u *udpPort) passResponse(data []byte, src netip.AddrPort) {
	select {
	case u.toSipgo <- datagram{b: bytes.Clone(data), from: net.UDPAddrFromAddrPort(src)}:
	case <-u.closed:
	}
}

// send writes one message to dst.
func (u *udpPort) send(b []byte, dst netip.AddrPort) error {
	_, err := u.conn.WriteToUDPAddrPort(b, dst)
	return err
}

// ReadFrom gives sipgo the next response.
func (u *udpPort) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case d := <-u.toSipgo:
		return copy(p, d.b), d.from, nil
	case <-u.closed:
		return 0, nil, net.ErrClosed
	}
}

// WriteTo sends what sipgo writes.
func (u *udpPort) WriteTo(p []byte, addr net.Addr) (int, error) {
	return u.conn.WriteTo(p, addr)
}

// Close ends sipgo's reading; the socket itself is closed by the Server.
func (u *udpPort) Close() error {
	u.closeOnce.Do(func() { close(u.closed) })
	return nil
}

func (u *udpPort) LocalAddr() net.Addr                { return u.conn.LocalAddr() }
func (u *udpPort) SetDeadline(t time.Time) error      { return nil }
func (u *udpPort) SetReadDeadline(t time.Time) error  { return nil }
func (u *udpPort) SetWriteDeadline(t time.Time) error { return nil }
