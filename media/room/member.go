package room

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/parley-sip/parley/media"
	"github.com/parley-sip/parley/media/audio"
)

// Jitter buffer bounds, in frames of 20 ms: playout starts once jitterStart
// frames wait, and past jitterMax the oldest samples are dropped so a
// member who sends too fast (or a flood) cannot grow the delay or memory.
const (
	jitterStart = 2
	jitterMax   = 8
)

// maxKeysPerSecond bounds the RFC 4733 keys of one member a room reports.
const maxKeysPerSecond = 10

// Member is one phone in a room: its RTP port pair, its codec state and
// the goroutine that reads its RTP.
type Member struct {
	room       *Room
	user, call string

	port      int
	rtp, rtcp *net.UDPConn
	neg       media.Negotiated
	codec     string
	rate      int // the codec's sampling rate
	dec       audio.Decoder
	enc       audio.Encoder
	ssrc      uint32

	muted     atomic.Bool
	talking   atomic.Bool
	lastVoice atomic.Int64 // unix nanoseconds of the last frame with voice

	remoteMu sync.Mutex
	remote   netip.AddrPort // where RTP goes: learnt from what arrives (symmetric RTP), else the SDP's

	// The jitter buffer: decoded samples at rate, filled by the reader,
	// drained by the ticker.
	jmu     sync.Mutex
	fifo    []int16
	playing bool
	lastSeq uint16
	haveSeq bool
	lastKey uint32 // RTP timestamp of the last key reported
	haveKey bool
	// keyWindow starts the second in which keysInWindow keys came.
	keyWindow    time.Time
	keysInWindow int
	received     atomic.Uint64

	// Owned by the ticker (cue under the room's lock).
	cue    cuePlayer
	cueNow bool
	cueb   []int16
	st     mixState
	sink   func(pkt []byte) // tests: takes what would be sent

	// answered is set once the member takes part in the mix (after Answer
	// for a member parley made the offer to).
	answered bool
	offered  bool            // made by OfferFor
	offerDir media.Direction // what OfferFor offered
	done     chan struct{}
	err      error
	stopped  chan struct{}
	started  bool
	closing  sync.Once
}

// User returns the user the member called as.
func (m *Member) User() string { return m.user }

// Call returns the ID of the member's call.
func (m *Member) Call() string { return m.call }

// Codec returns the member's codec (PCMU, PCMA or G722).
func (m *Member) Codec() string { return m.codec }

// LocalAddr returns where the member's RTP port is bound.
func (m *Member) LocalAddr() netip.AddrPort { return m.rtp.LocalAddr().(*net.UDPAddr).AddrPort() }

// SetMuted mutes or unmutes the member: a muted member's audio is mixed
// into nobody's.
func (m *Member) SetMuted(v bool) { m.muted.Store(v) }

// Muted reports whether the member is muted.
func (m *Member) Muted() bool { return m.muted.Load() }

// Talking reports whether the member's last frame carried voice.
func (m *Member) Talking() bool { return m.talking.Load() }

// LastVoice returns when the member last sent a frame with voice, or the
// zero time.
func (m *Member) LastVoice() time.Time {
	if n := m.lastVoice.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Info returns what the admin API shows of m.
func (m *Member) Info() MemberInfo {
	return MemberInfo{User: m.user, Call: m.call, Muted: m.Muted(), Talking: m.Talking()}
}

// Done is closed when the member's media ends on its own: no RTP for the
// room's timeout, or a socket error. The service then hangs up and Closes.
func (m *Member) Done() <-chan struct{} { return m.done }

// Close leaves the room, stops reading, frees the ports. It is safe to
// call more than once.
func (m *Member) Close() error {
	m.closing.Do(func() {
		// Stop reading first: a key that arrives while the member leaves
		// must not reach the service after its leave (a floor granted to
		// a member already gone would never be released).
		m.rtp.Close()
		m.rtcp.Close()
		if m.started {
			<-m.stopped
		}
		m.room.remove(m)
		m.room.pool.Release(m.port)
	})
	return nil
}

func (r *Room) newMember(user, call string, port int, rtpConn, rtcpConn *net.UDPConn) *Member {
	_ = rtcpConn.SetReadBuffer(1) // RTCP is not read: see media.EchoSession
	return &Member{
		room: r, user: user, call: call,
		port: port, rtp: rtpConn, rtcp: rtcpConn,
		ssrc:    rand.Uint32(),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
}

// setCodec takes what the offer/answer settled.
func (m *Member) setCodec(neg media.Negotiated) error {
	dec, err := audio.NewDecoder(neg.Codec)
	if err != nil {
		return err
	}
	enc, _ := audio.NewEncoder(neg.Codec)
	m.neg, m.codec, m.rate, m.dec, m.enc = neg, neg.Codec, audio.RateOf(neg.Codec), dec, enc
	if neg.Remote.Addr().IsValid() && neg.Remote.Port() != 0 {
		m.remote = neg.Remote
	}
	return nil
}

// start begins reading RTP.
func (m *Member) start() {
	m.started = true
	go m.read()
}

func (m *Member) end(err error) {
	m.err = err
	close(m.done)
}

// Err returns why the member's media ended on its own, or nil.
func (m *Member) Err() error {
	select {
	case <-m.done:
		return m.err
	default:
		return nil
	}
}

// read is the member's goroutine: it reads RTP until Close, decodes audio
// into the jitter buffer and reports keys.
func (m *Member) read() {
	defer close(m.stopped)
	timeout := m.room.timeout
	watch := timeout > 0 && m.neg.Direction.Receives()
	last := time.Now()
	buf := make([]byte, 2048)
	var pkt rtp.Packet
	var pcm []int16
	for {
		if watch {
			_ = m.rtp.SetReadDeadline(last.Add(timeout))
		}
		n, from, err := m.rtp.ReadFromUDPAddrPort(buf)
		if err != nil {
			switch {
			case errors.Is(err, net.ErrClosed):
			case errors.Is(err, os.ErrDeadlineExceeded):
				m.room.log.Info("room member timed out: no RTP", "user", m.user, "timeout", timeout)
				m.end(media.ErrMediaTimeout)
			default:
				m.room.log.Warn("room member failed reading RTP", "user", m.user, "err", err)
				m.end(err)
			}
			return
		}
		if n == len(buf) || n < 12 || buf[0]>>6 != 2 || pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		last = time.Now()
		m.remoteMu.Lock()
		m.remote = from
		m.remoteMu.Unlock()
		m.received.Add(1)
		switch {
		case m.neg.TelephoneEvent >= 0 && int(pkt.PayloadType) == m.neg.TelephoneEvent:
			m.key(&pkt)
		case pkt.PayloadType == m.neg.PayloadType:
			// At most 200 ms of audio per packet: a larger payload is not
			// what was negotiated and is dropped rather than decoded.
			if len(pkt.Payload) > 1600 {
				continue
			}
			pcm = m.dec.Decode(pcm[:0], pkt.Payload)
			m.push(pkt.SequenceNumber, pcm)
		}
	}
}

// key reports an RFC 4733 event once: its packets share a timestamp
// (RFC 4733 §2.5.1.2), and the end packets are sent three times.
func (m *Member) key(pkt *rtp.Packet) {
	if len(pkt.Payload) < 4 || pkt.Payload[0] > media.MaxEventCode {
		return
	}
	m.jmu.Lock()
	fresh := !m.haveKey || pkt.Timestamp != m.lastKey
	m.lastKey, m.haveKey = pkt.Timestamp, true
	fresh = fresh && m.allowKey(time.Now())
	m.jmu.Unlock()
	if fresh && m.room.onKey != nil {
		m.room.onKey(m, pkt.Payload[0])
	}
}

// allowKey counts a key against the member's bound: at most
// maxKeysPerSecond keys a second reach the service, so a phone that floods
// them cannot flood the floor's log. The caller holds m.jmu.
func (m *Member) allowKey(now time.Time) bool {
	if now.Sub(m.keyWindow) >= time.Second {
		m.keyWindow, m.keysInWindow = now, 0
	}
	m.keysInWindow++
	return m.keysInWindow <= maxKeysPerSecond
}

// Key takes a key the member pressed that came another way than RFC 4733
// events in its RTP: in a SIP INFO, which the B2BUA hands on (DTMF
// interworking). The same bound applies as to events.
func (m *Member) Key(code uint8) {
	if code > media.MaxEventCode {
		return
	}
	m.jmu.Lock()
	ok := m.allowKey(time.Now())
	m.jmu.Unlock()
	if ok && m.room.onKey != nil {
		m.room.onKey(m, code)
	}
}

// maxBehind is how far behind the last sequence number a packet may be
// and still count as late; further back, the phone restarted its
// sequence (a new SSRC after a re-INVITE, a restart) and the stream
// resynchronises on it rather than being dropped until it wraps.
const maxBehind = 100

// push adds a packet's samples to the jitter buffer. A packet a little
// older than the last one (reordered or duplicated) is dropped: it is too
// late.
func (m *Member) push(seq uint16, pcm []int16) {
	m.jmu.Lock()
	defer m.jmu.Unlock()
	if d := int16(seq - m.lastSeq); m.haveSeq && d <= 0 && d > -maxBehind {
		return
	}
	m.lastSeq, m.haveSeq = seq, true
	m.fifo = append(m.fifo, pcm...)
	if limit := jitterMax * m.rate / 50; len(m.fifo) > limit {
		m.fifo = m.fifo[len(m.fifo)-limit:]
	}
}

// pull takes the next 20 ms from the jitter buffer into dst, or reports
// false when it has run dry (and waits to refill before playing again).
func (m *Member) pull(dst []int16) bool {
	n := len(dst)
	m.jmu.Lock()
	defer m.jmu.Unlock()
	if !m.playing && len(m.fifo) >= jitterStart*n {
		m.playing = true
	}
	if !m.playing || len(m.fifo) < n {
		m.playing = false
		return false
	}
	copy(dst, m.fifo[:n])
	rest := copy(m.fifo, m.fifo[n:])
	m.fifo = m.fifo[:rest]
	return true
}

// send writes one RTP packet with payload to the member.
func (m *Member) send(payload []byte) {
	m.remoteMu.Lock()
	to := m.remote
	m.remoteMu.Unlock()
	if !to.IsValid() || to.Port() == 0 {
		return
	}
	st := &m.st
	pkt := st.pkt[:0]
	pkt = append(pkt, 0x80, m.neg.PayloadType&0x7F)
	if !st.sent {
		pkt[1] |= 0x80 // marker: the first packet of a talkspurt
		st.seq = uint16(rand.Uint32())
		st.ts = rand.Uint32()
		st.sent = true
	}
	pkt = binary.BigEndian.AppendUint16(pkt, st.seq)
	pkt = binary.BigEndian.AppendUint32(pkt, st.ts)
	pkt = binary.BigEndian.AppendUint32(pkt, m.ssrc)
	pkt = append(pkt, payload...)
	st.pkt = pkt
	st.seq++
	st.sentPackets++
	// Every codec a room speaks has an 8 kHz RTP clock (G.722 too,
	// RFC 3551 §4.5.2): 160 ticks per 20 ms.
	st.ts += 160
	if m.sink != nil {
		m.sink(pkt)
		return
	}
	_, _ = m.rtp.WriteToUDPAddrPort(pkt, to)
}

func (m *Member) cueBuf(rate int) []int16 {
	n := rate / 50
	if cap(m.cueb) < n {
		m.cueb = make([]int16, n)
	}
	m.cueb = m.cueb[:n]
	return m.cueb
}
