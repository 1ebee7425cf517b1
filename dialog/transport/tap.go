package transport

import (
	"net"
	"net/netip"
)

// Tap sees every SIP message a listener reads or writes, as the bytes on
// the wire, with the addresses it went between: a UDP datagram parley
// reads (keepalives and oversized ones aside) or sends, its own
// retransmissions included, and each complete message framed on an
// accepted TCP connection or written to one. Connections sipgo dials
// itself (a request to a TCP phone whose own connection is gone) pass by
// no tap.
//
// Seen runs on the path of the message: it must not block, and must copy
// b if it keeps it. For a message read, src is the peer and dst the
// listener's address; for one written, the other way round. A listener
// bound to every address (0.0.0.0 or ::) gives that unspecified address
// as its own.
type Tap interface {
	Seen(network string, src, dst netip.AddrPort, b []byte)
}

// Networks a Tap is told about.
const (
	TapUDP = "udp"
	TapTCP = "tcp"
)

// WithTap shows every datagram the port reads or sends to t.
func WithTap(t Tap) UDPOption {
	return func(u *UDPPort) { u.tap = t }
}

// GuardOption configures a GuardedListener.
type GuardOption func(*GuardedListener)

// WithStreamTap shows every message framed on an accepted connection,
// and every write parley makes to one, to t.
func WithStreamTap(t Tap) GuardOption {
	return func(l *GuardedListener) { l.tap = t }
}

// addrPortOf is the address of a UDP or TCP socket's end; the zero
// AddrPort for any other.
func addrPortOf(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort()
	case *net.TCPAddr:
		return a.AddrPort()
	}
	return netip.AddrPort{}
}
