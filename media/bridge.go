package media

import (
	"net/netip"
	"sync"
	"time"
)

// Indexes of a side's two sockets.
const (
	rtpSock  = 0
	rtcpSock = 1
)

// Bridge relays one call's media: it holds parley's RTP and RTCP ports
// facing each side and forwards what one side sends to the other. A Relay
// makes bridges with Open; the owner must Close them.
//
// All methods are safe for concurrent use, also while the relay forwards.
type Bridge struct {
	r *Relay
	w *worker

	done      chan struct{}
	closeOnce sync.Once

	// Guarded by w.mu: the worker reads and writes them while it forwards.
	sides    [2]sideState
	hold     bool
	activity int64 // relay clock of the last RTP from either side, open or end of hold
	idle     bool  // done is closed
	onIdle   func()
	widx     int // index in w.bridges, -1 when not registered
	// convert says DTMF is converted on this bridge (dtmf.go): route
	// looks at telephone-events and sequence numbers only then.
	convert bool
	dtmf    *dtmfState
	// events is what each side negotiated of telephone-event; onEvent
	// takes the keys the bridge reports (dtmf.go).
	events  [2]bridgeEvents
	onEvent func(from Side, ev Event)
}

// sideState is what a bridge knows about one side. Guarded by the worker's
// mutex.
type sideState struct {
	port  int             // parley's RTP port facing the side
	fam   Family          // IPv4 or IPv6: what socks are bound on; set at open, never changed
	socks [2]relaySocket  // rtpSock, rtcpSock
	mux   bool            // RTCP shares the RTP port (RFC 5761)
	peer  [2]endpoint     // per socket: where SDP says the side listens
	src   [2]endpoint     // per socket: latched source, invalid until latched
	soft  [2]bool         // per socket: src came from SetLatched; the next packet latches again
	recv  rtpReceiver     // loss and jitter
	rr    receptionReport // latest report the side sent
	count struct {
		packets, bytes, forwarded, dropped, rtcp uint64
	}
	last int64 // relay clock of the last accepted RTP packet
	// sec is the side's SRTP (srtp_relay.go), nil for plain RTP.
	sec *srtpSide

	// refuse holds, per socket, the source of the phone that had the side
	// before another took its place (PhoneChanged): until refuseUntil
	// (relay clock) its last packets are dropped and do not latch.
	refuse      [2]endpoint
	refuseUntil int64
}

// endpoint is a peer address together with its ready-made socket address,
// so sending needs no conversion. The zero endpoint is no address.
type endpoint struct {
	ap netip.AddrPort
	sa sockaddr
}

func (e *endpoint) valid() bool { return e.ap.IsValid() }

// Port returns parley's RTP port facing side s; RTCP is the port after it.
func (b *Bridge) Port(s Side) int { return b.sides[s].port }

// Family returns the family side s's sockets are bound on, IPv4 or IPv6:
// the side sends to and latches addresses of that family only.
func (b *Bridge) Family(s Side) Family { return b.sides[s].fam }

// SetPeer says where to send to side s until a packet from s is seen: rtp
// and rtcp are the addresses from the side's SDP, and mux says the side
// multiplexes RTCP on its RTP port (RFC 5761), in which case rtcp is
// ignored. An invalid rtcp without mux means the port after rtp
// (RFC 3550 §11). An invalid or unspecified rtp (0.0.0.0 on hold) means
// nowhere until the side sends. So does an address of the other family
// than the side's (Family).
//
// Calling it again, for a re-INVITE, forgets the side's latched source: the
// next packet from the side latches again.
func (b *Bridge) SetPeer(s Side, rtp, rtcp netip.AddrPort, mux bool) {
	if !mux && !rtcp.IsValid() && rtp.IsValid() {
		rtcp = netip.AddrPortFrom(rtp.Addr(), rtp.Port()+1)
	}
	if mux {
		rtcp = rtp
	}
	st := &b.sides[s]
	erp, erc := st.endpoint(rtp), st.endpoint(rtcp)
	b.w.mu.Lock()
	defer b.w.mu.Unlock()
	st.mux = mux
	st.peer = [2]endpoint{erp, erc}
	st.src = [2]endpoint{}
}

// Latched returns the sources the bridge latched for side s, of RTP and of
// RTCP; an address is invalid until the side sent from it. With
// SetLatched they carry a call's media over to another process.
func (b *Bridge) Latched(s Side) (rtp, rtcp netip.AddrPort) {
	b.w.mu.Lock()
	defer b.w.mu.Unlock()
	st := &b.sides[s]
	return st.src[rtpSock].ap, st.src[rtcpSock].ap
}

// SetLatched makes the bridge send to side s at rtp and rtcp as if it had
// latched them, for a call rebuilt from a checkpoint: media reaches a phone
// behind NAT at once, before the phone sends. Unlike a latch the bridge saw
// itself, the side's next packet latches again, to the same source or a
// new one, since a phone behind NAT may reach new ports from a new source.
// An invalid address latches nothing. Call it after SetPeer, which forgets
// latched sources.
func (b *Bridge) SetLatched(s Side, rtp, rtcp netip.AddrPort) {
	st := &b.sides[s]
	erp, erc := st.endpoint(rtp), st.endpoint(rtcp)
	b.w.mu.Lock()
	defer b.w.mu.Unlock()
	st.src = [2]endpoint{erp, erc}
	st.soft = [2]bool{erp.valid(), erc.valid()}
}

// PhoneChanged says another phone took side s's place (a call transfer):
// the side's latched sources are forgotten, and for d the old phone's last
// packets, still on their way, are dropped rather than latched, so the new
// phone's media is the one the side latches.
func (b *Bridge) PhoneChanged(s Side, d time.Duration) {
	b.w.mu.Lock()
	defer b.w.mu.Unlock()
	st := &b.sides[s]
	st.refuse = st.src
	st.refuseUntil = b.r.now() + int64(d)
	st.src = [2]endpoint{}
	st.soft = [2]bool{}
}

// refused reports whether a packet from on socket sock of side st comes
// from the phone that had the side before, within the time PhoneChanged
// gave it. It is only asked before latching. The caller holds the
// worker's mutex.
func (st *sideState) refused(sock int, from netip.AddrPort, now int64) bool {
	return now < st.refuseUntil && from == st.refuse[sock].ap
}

// SetHold says whether the call is on hold. While it is, silence does not
// close Done; when the hold ends the inactivity timeout starts over.
func (b *Bridge) SetHold(onHold bool) {
	b.w.mu.Lock()
	defer b.w.mu.Unlock()
	if b.hold && !onHold {
		b.activity = b.r.now()
	}
	b.hold = onHold
}

// SetClockRate sets the RTP clock rate of the media side s sends, which
// jitter is measured in. It is 8000 Hz until set; hz <= 0 means 8000.
func (b *Bridge) SetClockRate(s Side, hz int) {
	b.w.mu.Lock()
	defer b.w.mu.Unlock()
	b.sides[s].recv.setRate(hz)
}

// Stats returns what the bridge has seen so far. It may be called after
// Close, for the final numbers.
func (b *Bridge) Stats() BridgeStats {
	b.w.mu.Lock()
	defer b.w.mu.Unlock()
	return BridgeStats{A: b.sides[SideA].stats(b.r), B: b.sides[SideB].stats(b.r)}
}

// Done is closed when neither side sent RTP for the relay's timeout (see
// WithRelayTimeout), unless the call is on hold, and never before the
// bridge has been open that long. The owner should then hang up and Close
// the bridge. Close does not close Done.
func (b *Bridge) Done() <-chan struct{} { return b.done }

// OnIdle registers f to run, in a goroutine of its own, when the bridge
// times out as Done does (at once if it already has). It spares the owner a
// goroutine per call waiting on Done. A later call replaces f.
func (b *Bridge) OnIdle(f func()) {
	b.w.mu.Lock()
	if b.idle {
		b.w.mu.Unlock()
		go f()
		return
	}
	b.onIdle = f
	b.w.mu.Unlock()
}

// Close stops forwarding, closes the bridge's sockets and returns its ports
// to the pool. It is safe to call more than once, from several goroutines
// and while the relay forwards; it always returns nil.
func (b *Bridge) Close() error {
	b.closeOnce.Do(func() { b.r.closeBridge(b) })
	return nil
}

func (st *sideState) stats(r *Relay) SideStats {
	s := SideStats{
		Packets:        st.count.packets,
		Bytes:          st.count.bytes,
		Forwarded:      st.count.forwarded,
		Dropped:        st.count.dropped,
		RTCPPackets:    st.count.rtcp,
		Lost:           st.recv.lost(),
		Jitter:         st.recv.jitterDuration(),
		Source:         st.src[rtpSock].ap,
		RemoteFraction: st.rr.fraction,
		RemoteLost:     st.rr.lost,
		RemoteJitter:   st.rr.jitter,
	}
	if st.sec != nil {
		s.SRTP, s.SRTPFailures = st.sec.suite, st.sec.failures
	}
	if st.count.packets > 0 {
		s.Last = r.base.Add(time.Duration(st.last))
	}
	return s
}

// rtpDest is where RTP for the side goes: its latched source, else the
// address from SDP, else nil.
func (st *sideState) rtpDest() *endpoint {
	if st.src[rtpSock].valid() {
		return &st.src[rtpSock]
	}
	if st.peer[rtpSock].valid() {
		return &st.peer[rtpSock]
	}
	return nil
}

// rtcpDest is where RTCP for the side goes and out of which of the side's
// sockets.
func (st *sideState) rtcpDest() (*endpoint, int) {
	if st.mux {
		return st.rtpDest(), rtpSock
	}
	if st.src[rtcpSock].valid() {
		return &st.src[rtcpSock], rtcpSock
	}
	if st.peer[rtcpSock].valid() {
		return &st.peer[rtcpSock], rtcpSock
	}
	return nil, rtcpSock
}

// drop counts a datagram from side in that goes nowhere.
func (b *Bridge) drop(in Side) {
	b.sides[in].count.dropped++
	b.w.count.dropped++
}

// route applies the forwarding rules to datagram pkt, which arrived from
// from on side in's socket sock at relay clock now. It returns the side and
// socket to send it out of and to whom, or a nil dst (already counted as
// dropped). rtp says whether pkt is RTP rather than RTCP, and send is the
// datagram to send: pkt itself, or for a side speaking SRTP pkt decrypted
// and encrypted again in place, within pkt's capacity. The caller holds the
// worker's mutex. Between plain RTP sides it does not allocate.
func (b *Bridge) route(in Side, sock int, pkt []byte, from netip.AddrPort, now int64) (out *sideState, outSock int, dst *endpoint, rtp bool, send []byte) {
	st := &b.sides[in]
	other := &b.sides[in.Other()]
	if sock == rtcpSock || (st.mux && looksLikeRTCP(pkt)) {
		if !looksLikeRTCP(pkt) {
			b.drop(in)
			return nil, 0, nil, false, nil
		}
		// RTCP latches on its own socket; on a muxed RTP port it must come
		// from where RTP does.
		src := &st.src[sock]
		relatch := sock == rtcpSock && st.soft[rtcpSock]
		latch := false
		switch {
		case src.valid() && from != src.ap && !relatch:
			b.drop(in)
			return nil, 0, nil, false, nil
		case (!src.valid() || relatch) && sock == rtcpSock:
			if st.refused(rtcpSock, from, now) {
				b.drop(in)
				return nil, 0, nil, false, nil
			}
			latch = true
		}
		// SRTCP authenticates before it latches: a forged packet moves
		// nothing.
		if st.sec != nil {
			var err error
			var clear []byte
			if clear, err = st.sec.decryptRTCP(pkt); err != nil {
				b.srtpFailed(in, true, pkt, err)
				return nil, 0, nil, false, nil
			}
			pkt = clear
		}
		if latch {
			*src = st.endpoint(from)
			st.soft[rtcpSock] = false
		}
		st.count.rtcp++
		if rr, ok := parseReceptionReport(pkt); ok {
			st.rr = rr
		}
		dst, outSock = other.rtcpDest()
		if dst == nil {
			b.drop(in)
			return nil, 0, nil, false, nil
		}
		if other.sec != nil {
			var ok bool
			if pkt, ok = other.sec.encryptRTCP(pkt); !ok {
				b.drop(in)
				return nil, 0, nil, false, nil
			}
		}
		return other, outSock, dst, false, pkt
	}

	if !looksLikeRTP(pkt) {
		b.drop(in)
		return nil, 0, nil, false, nil
	}
	// Symmetric RTP (RFC 4961): the first packet tells where the side
	// really is, behind NAT or not; after that only that source counts.
	src := &st.src[rtpSock]
	latch := false
	if src.valid() && !st.soft[rtpSock] {
		if from != src.ap {
			b.drop(in)
			return nil, 0, nil, false, nil
		}
	} else {
		if st.refused(rtpSock, from, now) {
			b.drop(in)
			return nil, 0, nil, false, nil
		}
		latch = true
	}
	// SRTP authenticates before it latches (srtp_relay.go).
	if st.sec != nil {
		var err error
		var clear []byte
		if clear, err = st.sec.decryptRTP(pkt); err != nil {
			b.srtpFailed(in, false, pkt, err)
			return nil, 0, nil, false, nil
		}
		pkt = clear
	}
	if latch {
		*src = st.endpoint(from)
		st.soft[rtpSock] = false
	}
	st.count.packets++
	st.count.bytes += uint64(len(pkt))
	b.w.count.packets++
	b.w.count.bytes += uint64(len(pkt))
	st.last, b.activity = now, now
	seq, ts, ssrc := rtpHeader(pkt)
	st.recv.update(ssrc, seq, ts, now/1000)
	if b.convert && b.takeEvent(in, pkt, now) {
		return nil, 0, nil, false, nil // a key, reported for SIP INFO
	}

	if dst = other.rtpDest(); dst == nil {
		b.drop(in)
		return nil, 0, nil, false, nil
	}
	if b.convert {
		b.dtmf.forwarded(in.Other(), pkt, now)
	}
	if other.sec != nil {
		var ok bool
		if pkt, ok = other.sec.encryptRTP(pkt); !ok {
			b.drop(in)
			return nil, 0, nil, false, nil
		}
	}
	return other, rtpSock, dst, true, pkt
}

// forwarded counts n RTP packets from side in as sent on.
func (b *Bridge) forwarded(in Side, n int) {
	b.sides[in].count.forwarded += uint64(n)
	b.w.count.forwarded += uint64(n)
}

// checkIdle closes done if the bridge has been silent for timeout at relay
// clock now. The caller holds the worker's mutex.
func (b *Bridge) checkIdle(now, timeout int64) {
	if b.idle || b.hold || now-b.activity < timeout {
		return
	}
	b.idle = true
	close(b.done)
	if f := b.onIdle; f != nil {
		b.onIdle = nil
		go f()
	}
	b.r.log.Info("media timeout: no RTP from either side",
		"port_a", b.sides[SideA].port, "port_b", b.sides[SideB].port, "timeout", time.Duration(timeout))
}
