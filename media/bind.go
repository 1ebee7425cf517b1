package media

import (
	"fmt"
	"net"
	"net/netip"
)

// BindPair takes a port of pool and binds RTP on it and RTCP on the next
// one, at addr. Ports another program holds are given back and the next
// one tried (bindAttempts of them). Running out of ports returns
// ErrPortsExhausted as is, so its SIP status (503) stays visible. The
// caller closes both sockets and releases the port.
func BindPair(pool *PortPool, addr netip.Addr) (int, *net.UDPConn, *net.UDPConn, error) {
	var failed []int
	defer func() {
		for _, p := range failed {
			pool.Release(p)
		}
	}()
	var lastErr error
	for range bindAttempts(pool) {
		port, err := pool.Acquire()
		if err != nil {
			return 0, nil, nil, err
		}
		rtpConn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, uint16(port))))
		if err != nil {
			failed, lastErr = append(failed, port), err
			continue
		}
		rtcpConn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, uint16(port+1))))
		if err != nil {
			rtpConn.Close()
			failed, lastErr = append(failed, port), err
			continue
		}
		return port, rtpConn, rtcpConn, nil
	}
	return 0, nil, nil, fmt.Errorf("media: binding RTP on %v: %w", addr, lastErr)
}
