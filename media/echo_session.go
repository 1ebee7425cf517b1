package media

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// maxDatagram is the read buffer size. Audio RTP is far below an Ethernet
// MTU; a larger datagram would be truncated and is dropped as not RTP.
const maxDatagram = 2048

// EchoSession is one call to the echo service: an RTP/RTCP port pair and
// the goroutine that echoes what arrives on it.
type EchoSession struct {
	pool    *PortPool
	port    int
	neg     Negotiated
	rtp     *net.UDPConn
	rtcp    *net.UDPConn
	timeout time.Duration
	log     *slog.Logger
	ssrc    uint32

	packets atomic.Uint64
	bytes   atomic.Uint64
	dropped atomic.Uint64

	done      chan struct{} // closed when the session ends on its own
	err       error         // why; written once before done is closed
	stopped   chan struct{} // closed when run returns
	closeOnce sync.Once
}

// EchoStats counts what a session has done so far.
type EchoStats struct {
	// Packets is the number of RTP packets echoed.
	Packets uint64
	// Bytes is the size of those packets, RTP header included.
	Bytes uint64
	// Dropped is the number of datagrams that were not RTP, or RTP that
	// the negotiated direction does not let parley send back.
	Dropped uint64
}

func newEchoSession(e *Echo, port int, rtpConn, rtcpConn *net.UDPConn, neg Negotiated) *EchoSession {
	// Nobody reads RTCP in this version: the socket is bound so peers get
	// no ICMP port unreachable, and its buffer is shrunk to the kernel's
	// minimum so unread reports cost next to nothing.
	_ = rtcpConn.SetReadBuffer(1)
	return &EchoSession{
		pool:    e.pool,
		port:    port,
		neg:     neg,
		rtp:     rtpConn,
		rtcp:    rtcpConn,
		timeout: e.timeout,
		log:     e.log.With("rtp_port", port, "codec", neg.Codec),
		ssrc:    rand.Uint32(),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
}

// Port returns the session's RTP port; RTCP is the next one.
func (s *EchoSession) Port() int { return s.port }

// LocalAddr returns the address and port RTP is bound to.
func (s *EchoSession) LocalAddr() netip.AddrPort { return s.rtp.LocalAddr().(*net.UDPAddr).AddrPort() }

// Negotiated returns what the offer/answer settled.
func (s *EchoSession) Negotiated() Negotiated { return s.neg }

// Stats returns the session's counters. It is safe to call at any time.
func (s *EchoSession) Stats() EchoStats {
	return EchoStats{Packets: s.packets.Load(), Bytes: s.bytes.Load(), Dropped: s.dropped.Load()}
}

// Done is closed when the session ends on its own: no RTP for the echo
// timeout, or its socket failed. The owner should then hang up and Close
// it. Close itself does not close Done.
func (s *EchoSession) Done() <-chan struct{} { return s.done }

// Err returns why the session ended on its own (ErrMediaTimeout, or a
// socket error), or nil while Done is open.
func (s *EchoSession) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Close stops echoing, closes the sockets, waits for the session's
// goroutine to return and gives the port back to the pool. It is safe to
// call more than once and from several goroutines.
func (s *EchoSession) Close() error {
	s.closeOnce.Do(func() {
		s.rtp.Close()
		s.rtcp.Close()
		<-s.stopped
		s.pool.Release(s.port)
		st := s.Stats()
		s.log.Debug("echo session closed", "packets", st.Packets, "bytes", st.Bytes, "dropped", st.Dropped)
	})
	return nil
}

// end records why the session ended on its own and closes done. Only run
// calls it, once.
func (s *EchoSession) end(err error) {
	s.err = err
	close(s.done)
}

// run is the session's one goroutine: it reads RTP and sends each packet
// back to the address it came from until Close closes the socket.
func (s *EchoSession) run() {
	defer close(s.stopped)
	// The peer sends nothing on hold (inactive) or when parley only sends,
	// so silence then is no reason to hang up.
	watch := s.timeout > 0 && s.neg.Direction.Receives()
	lastRTP := time.Now()
	buf := make([]byte, maxDatagram)
	var pkt rtp.Packet
	for {
		if watch {
			// Only valid RTP moves the deadline: stray datagrams must not
			// keep a dead call up.
			_ = s.rtp.SetReadDeadline(lastRTP.Add(s.timeout))
		}
		n, from, err := s.rtp.ReadFromUDPAddrPort(buf)
		if err != nil {
			switch {
			case errors.Is(err, net.ErrClosed):
			case errors.Is(err, os.ErrDeadlineExceeded):
				s.log.Info("echo session timed out: no RTP", "timeout", s.timeout)
				s.end(ErrMediaTimeout)
			default:
				s.log.Warn("echo session failed reading RTP", "err", err)
				s.end(err)
			}
			return
		}
		if n == len(buf) || !isRTP(&pkt, buf[:n]) {
			s.dropped.Add(1)
			continue
		}
		lastRTP = time.Now()
		if !s.neg.Direction.Sends() {
			s.dropped.Add(1)
			continue
		}
		// Send back with parley's own SSRC: a peer that receives its own
		// SSRC from another address takes it for a collision or a loop
		// (RFC 3550 §8.2) and may change SSRC or drop the packets.
		binary.BigEndian.PutUint32(buf[8:12], s.ssrc)
		// Symmetric RTP (RFC 4961): reply to the packet's real source,
		// which behind NAT is not the address the SDP gave.
		if _, err := s.rtp.WriteToUDPAddrPort(buf[:n], from); err != nil {
			s.log.Debug("echo send failed", "to", from, "err", err)
			continue
		}
		s.packets.Add(1)
		s.bytes.Add(uint64(n))
	}
}

// isRTP reports whether b is an RTP packet (RFC 3550 §5.1) and not RTCP
// multiplexed onto the RTP port, whose packet types 200-204 read as RTP
// payload types 72-76 (RFC 5761 §4).
func isRTP(pkt *rtp.Packet, b []byte) bool {
	if len(b) < 12 || b[0]>>6 != 2 {
		return false
	}
	if err := pkt.Unmarshal(b); err != nil {
		return false
	}
	return pkt.PayloadType < 72 || pkt.PayloadType > 76
}
