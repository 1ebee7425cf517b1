package transport

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/parley-sip/parley/config"
)

// UDPReadBuffer is the socket receive buffer asked for on UDP listeners,
// so bursts at high call rates are not dropped by the kernel
// (RcvbufErrors).
const UDPReadBuffer = 8 << 20

// Listener is one bound SIP transport: a UDP socket, which parley reads
// itself (UDPPort), or a TCP listener, which sipgo serves (as SIP over
// TCP, or over TLS once the guard does the handshake, tls.go).
type Listener struct {
	// Network is "udp", "tcp" or "tls".
	Network string
	// UDP is the socket of a UDP listener; TCP the listener of a TCP or
	// TLS one.
	UDP *net.UDPConn
	TCP *net.TCPListener
	// Port reads UDP once the listener serves (see NewUDPPort).
	Port *UDPPort
	// guard is what sipgo accepts TCP connections from (see Guard).
	guard *GuardedListener

	ip   net.IP
	port int
}

// Bind binds the listener l of sip.listen. An error names the key.
func Bind(l config.Listener) (*Listener, error) {
	switch l.Network {
	case "udp":
		addr, err := net.ResolveUDPAddr("udp", l.Addr)
		if err != nil {
			return nil, fmt.Errorf("sip.listen udp://%s: %w", l.Addr, err)
		}
		network := "udp6"
		if addr.IP == nil || addr.IP.To4() != nil {
			network = "udp4"
		}
		conn, err := net.ListenUDP(network, addr)
		if err != nil {
			return nil, fmt.Errorf("sip.listen udp://%s: %w", l.Addr, err)
		}
		GrowBuffers(conn, UDPReadBuffer)
		a := conn.LocalAddr().(*net.UDPAddr)
		return &Listener{Network: "udp", UDP: conn, ip: a.IP, port: a.Port}, nil
	case "tcp", "tls":
		addr, err := net.ResolveTCPAddr("tcp", l.Addr)
		if err != nil {
			return nil, fmt.Errorf("sip.listen %s://%s: %w", l.Network, l.Addr, err)
		}
		network := "tcp6"
		if addr.IP == nil || addr.IP.To4() != nil {
			network = "tcp4"
		}
		ln, err := net.ListenTCP(network, addr)
		if err != nil {
			return nil, fmt.Errorf("sip.listen %s://%s: %w", l.Network, l.Addr, err)
		}
		a := ln.Addr().(*net.TCPAddr)
		return &Listener{Network: l.Network, TCP: ln, ip: a.IP, port: a.Port}, nil
	}
	return nil, fmt.Errorf("sip.listen: unsupported transport %q", l.Network)
}

// IP is the bound address (unspecified when bound to all).
func (l *Listener) IP() net.IP { return l.ip }

// PortNumber is the bound port.
func (l *Listener) PortNumber() int { return l.port }

// Addr is the bound "ip:port".
func (l *Listener) Addr() string { return net.JoinHostPort(l.ip.String(), strconv.Itoa(l.port)) }

// Guard returns the TCP listener wrapped in a GuardedListener with lim:
// the one to hand sipgo, so every accepted connection is bounded. A TLS
// listener is given WithTLS among opts.
func (l *Listener) Guard(lim TCPLimits, log *slog.Logger, opts ...GuardOption) *GuardedListener {
	if l.guard == nil {
		l.guard = NewGuardedListener(l.TCP, lim, log, opts...)
	}
	return l.guard
}

// Close closes the socket or listener.
func (l *Listener) Close() error {
	if l.UDP != nil {
		return l.UDP.Close()
	}
	if l.guard != nil {
		return l.guard.Close()
	}
	return l.TCP.Close()
}
