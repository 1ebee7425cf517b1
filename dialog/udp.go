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
	conn *net.UDPConn
	s    *Server

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
		conn: conn, s: s,
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
			u.s.log.Debug("SIP UDP read failed", "error", err)
			continue
		}
		data := buf[:n]
		if len(bytes.Trim(data, "\r\n\x00")) == 0 {
			continue // keepalive
		}
		isResponse := bytes.HasPrefix(data, []byte("SIP/"))
		if !isResponse {
			data, _ = markMalformedLines(sip.TransportReadProps{Transport: "UDP"}, data)
		}
		msg, err := u.s.parser.ParseSIP(data)
		if err != nil {
			u.s.log.Debug("unparsable SIP datagram dropped", "source", src.String(), "error", err)
			continue
		}
		msg.SetTransport("UDP")
		msg.SetSource(src.String())
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
