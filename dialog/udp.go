package dialog

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// udpPort is one UDP listener. parley reads the socket itself: requests go
// to its own server transactions (servertx.go) and responses to sipgo,
// which owns the client transactions and reads them through the port's
// net.PacketConn face. Whatever sipgo sends goes out of the same socket.
type udpPort struct {
	conn   *net.UDPConn
	parser *sip.Parser
	txs    *serverTxs
	log    interface {
		Debug(msg string, args ...any)
	}

	toSipgo   chan datagram
	closed    chan struct{}
	closeOnce sync.Once
}

type datagram struct {
	b    *[]byte
	n    int
	from *net.UDPAddr
}

// maxDatagram is the largest SIP message read over UDP.
const maxDatagram = 65535

var datagramPool = sync.Pool{New: func() any { b := make([]byte, maxDatagram); return &b }}

func newUDPPort(conn *net.UDPConn, parser *sip.Parser, txs *serverTxs) *udpPort {
	return &udpPort{
		conn: conn, parser: parser, txs: txs, log: txs.s.log,
		toSipgo: make(chan datagram, 1024),
		closed:  make(chan struct{}),
	}
}

// read serves the socket until it is closed.
func (u *udpPort) read() {
	buf := make([]byte, maxDatagram)
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
		data := buf[:n]
		if len(bytes.Trim(data, "\r\n\x00")) == 0 {
			continue // keepalive
		}
		if bytes.HasPrefix(data, []byte("SIP/")) {
			u.passResponse(data, src)
			continue
		}
		data, _ = markMalformedLines(sip.TransportReadProps{Transport: "UDP"}, data)
		msg, err := u.parser.ParseSIP(data)
		if err != nil {
			u.log.Debug("unparsable SIP datagram dropped", "source", src.String(), "error", err)
			continue
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			continue
		}
		req.SetTransport("UDP")
		req.SetSource(src.String())
		u.txs.receive(u, req, src)
	}
}

// passResponse hands a response to sipgo's read loop.
func (u *udpPort) passResponse(data []byte, src netip.AddrPort) {
	b := datagramPool.Get().(*[]byte)
	n := copy(*b, data)
	select {
	case u.toSipgo <- datagram{b: b, n: n, from: net.UDPAddrFromAddrPort(src)}:
	case <-u.closed:
		datagramPool.Put(b)
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
		n := copy(p, (*d.b)[:d.n])
		datagramPool.Put(d.b)
		return n, d.from, nil
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
