package media

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// defaultClockRate is the RTP timestamp rate jitter is computed in until
// Bridge.SetClockRate says otherwise: 8000 Hz, the rate of G.711, G.729 and
// telephone-event at narrowband (RFC 3551 §6).
const defaultClockRate = 8000

// Sequence number limits of RFC 3550 Appendix A.1: a jump forward of less
// than maxDropout is loss, a jump back of less than maxMisorder is
// reordering, anything else is a restarted source.
const (
	maxDropout  = 3000
	maxMisorder = 100
	seqMod      = 1 << 16
)

// BridgeStats is what a bridge has seen so far, per side.
type BridgeStats struct {
	// A and B describe what parley received from side A and side B.
	A, B SideStats
}

// Side returns the stats of side s.
func (bs BridgeStats) Side(s Side) SideStats {
	if s == SideA {
		return bs.A
	}
	return bs.B
}

// SideStats describes the media parley received from one side of a bridge.
type SideStats struct {
	// SRTP is the crypto suite the side speaks SRTP with (RFC 4568), ""
	// for plain RTP; SRTPFailures counts its packets that did not
	// authenticate, dropped.
	SRTP         string
	SRTPFailures uint64
	// Packets and Bytes count the RTP packets accepted from the side (from
	// its latched source), RTP header included.
	Packets, Bytes uint64
	// Forwarded counts the accepted RTP packets sent on to the other side.
	Forwarded uint64
	// Dropped counts datagrams from the side that were not forwarded: not
	// RTP or RTCP, from a source other than the latched one, nowhere to send
	// them yet, or the send failed.
	Dropped uint64
	// RTCPPackets counts the RTCP packets accepted from the side.
	RTCPPackets uint64
	// Lost is the number of RTP packets the side sent that never reached
	// parley, from the gaps in the sequence numbers (RFC 3550 A.3).
	Lost uint64
	// Jitter is the interarrival jitter of the side's RTP at parley
	// (RFC 3550 §6.4.1, computed as in A.8).
	Jitter time.Duration
	// Last is when the last RTP packet arrived from the side; zero if none
	// has.
	Last time.Time
	// Source is the address the side's RTP was latched to; invalid until
	// the first packet.
	Source netip.AddrPort
	// RemoteFraction, RemoteLost and RemoteJitter are the fraction lost
	// (in 1/256), cumulative number of packets lost and interarrival jitter
	// (in timestamp units) of the latest RTCP reception report the side
	// sent: what the side says about the media it receives through parley.
	// A negative cumulative loss (duplicates) reads as 0.
	RemoteFraction uint8
	RemoteLost     uint32
	RemoteJitter   uint32
}

// rtpReceiver tracks the sequence numbers and timestamps of one side's RTP
// to compute loss and jitter as RFC 3550 Appendix A.1 and A.8 do. It allows
// no probation: the source was already accepted by latching.
type rtpReceiver struct {
	rate     int64 // clock rate in Hz
	started  bool
	ssrc     uint32
	maxSeq   uint16
	cycles   uint64 // count of sequence number wraps, shifted left 16
	baseSeq  uint64
	badSeq   uint64
	received uint64
	lostPrev uint64 // loss counted for earlier sources or restarts

	haveTransit bool
	transit     int32
	jitter      uint32 // RFC 3550 A.8: scaled by 16
}

// reset starts counting a new source at seq, keeping the loss so far.
func (r *rtpReceiver) reset(ssrc uint32, seq uint16) {
	if r.started {
		r.lostPrev += r.currentLost()
	}
	r.started = true
	r.ssrc = ssrc
	r.maxSeq = seq
	r.cycles = 0
	r.baseSeq = uint64(seq)
	r.badSeq = seqMod + 1
	r.received = 0
	r.haveTransit = false
}

// update accounts for a packet with the given header fields that arrived
// at micros (microseconds on any monotonic clock).
func (r *rtpReceiver) update(ssrc uint32, seq uint16, ts uint32, micros int64) {
	if !r.started || ssrc != r.ssrc {
		r.reset(ssrc, seq)
	} else {
		udelta := seq - r.maxSeq
		switch {
		case udelta < maxDropout:
			if seq < r.maxSeq {
				r.cycles += seqMod
			}
			r.maxSeq = seq
		case int(udelta) <= seqMod-maxMisorder:
			// A very large jump: the source restarted, or the packet is
			// stray. Two sequential such packets mean restart (A.1).
			if uint64(seq) != r.badSeq {
				r.badSeq = uint64(seq+1) & (seqMod - 1)
				return
			}
			r.reset(ssrc, seq)
		default:
			// Duplicate or reordered packet: counted, maxSeq stays.
		}
	}
	r.received++

	rate := r.rate
	if rate <= 0 {
		rate = defaultClockRate
	}
	arrival := uint32(micros * rate / 1_000_000)
	transit := int32(arrival - ts)
	if !r.haveTransit {
		r.haveTransit, r.transit = true, transit
		return
	}
	d := transit - r.transit
	r.transit = transit
	if d < 0 {
		d = -d
	}
	r.jitter += uint32(d) - ((r.jitter + 8) >> 4)
}

// currentLost is the loss of the current source: expected minus received,
// never negative (duplicates can make received exceed expected).
func (r *rtpReceiver) currentLost() uint64 {
	if !r.started {
		return 0
	}
	expected := r.cycles + uint64(r.maxSeq) - r.baseSeq + 1
	if r.received >= expected {
		return 0
	}
	return expected - r.received
}

// lost is the loss over every source the side has sent.
func (r *rtpReceiver) lost() uint64 { return r.lostPrev + r.currentLost() }

// jitterDuration converts the jitter estimate to a duration.
func (r *rtpReceiver) jitterDuration() time.Duration {
	rate := r.rate
	if rate <= 0 {
		rate = defaultClockRate
	}
	return time.Duration(int64(r.jitter) * int64(time.Second) / (16 * rate))
}

// setRate sets the clock rate; jitter starts over since transit times in
// the old rate mean nothing in the new one.
func (r *rtpReceiver) setRate(hz int) {
	if hz <= 0 {
		hz = defaultClockRate
	}
	if int64(hz) == r.rate {
		return
	}
	r.rate = int64(hz)
	r.haveTransit = false
	r.jitter = 0
}

// looksLikeRTP reports whether b looks like an RTP packet (RFC 3550 §5.1):
// version 2, a full fixed header and not one of the payload types 72-76
// that RFC 3551 §6 reserves because they read as RTCP packet types 200-204.
// It does not allocate.
func looksLikeRTP(b []byte) bool {
	if len(b) < 12 || b[0]>>6 != 2 {
		return false
	}
	pt := b[1] & 0x7f
	return pt < 72 || pt > 76
}

// looksLikeRTCP reports whether b looks like an RTCP packet: version 2, a
// full header and a packet type in 192-223, the range RFC 5761 §4 sets
// apart so RTCP can be told from RTP on a shared port (RTP payload types
// 64-95, with or without the marker bit, are never used for that reason).
func looksLikeRTCP(b []byte) bool {
	return len(b) >= 8 && b[0]>>6 == 2 && b[1] >= 192 && b[1] <= 223
}

// rtpHeader reads the fields loss and jitter need from an RTP packet that
// passed looksLikeRTP.
func rtpHeader(b []byte) (seq uint16, ts, ssrc uint32) {
	return binary.BigEndian.Uint16(b[2:4]), binary.BigEndian.Uint32(b[4:8]), binary.BigEndian.Uint32(b[8:12])
}

// receptionReport is the part of an RTCP report block (RFC 3550 §6.4.1)
// parley keeps.
type receptionReport struct {
	fraction uint8
	lost     uint32
	jitter   uint32
}

// RTCP packet types that carry reception report blocks.
const (
	rtcpSR = 200
	rtcpRR = 201
)

// parseReceptionReport returns the first reception report block of a
// compound RTCP packet (RFC 3550 §6.1), in a sender or receiver report. It
// does not allocate.
func parseReceptionReport(b []byte) (receptionReport, bool) {
	for len(b) >= 4 && b[0]>>6 == 2 {
		n := (int(binary.BigEndian.Uint16(b[2:4])) + 1) * 4
		if n > len(b) {
			return receptionReport{}, false
		}
		pkt := b[:n]
		b = b[n:]
		count := int(pkt[0] & 0x1f)
		var off int
		switch pkt[1] {
		case rtcpSR:
			off = 28 // header, SSRC, 20 bytes of sender info
		case rtcpRR:
			off = 8 // header, SSRC
		default:
			continue
		}
		if count == 0 || len(pkt) < off+24 {
			continue
		}
		blk := pkt[off : off+24]
		rr := receptionReport{fraction: blk[4], jitter: binary.BigEndian.Uint32(blk[12:16])}
		// Cumulative loss is a signed 24-bit number.
		if lost := uint32(blk[5])<<16 | uint32(blk[6])<<8 | uint32(blk[7]); lost&0x800000 == 0 {
			rr.lost = lost
		}
		return rr, true
	}
	return receptionReport{}, false
}
