package play

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/parley-sip/parley/media"
	"github.com/parley-sip/parley/media/audio"
)

// Player answers calls and plays one Sound to each.
type Player struct {
	pool  *media.PortPool
	addr  netip.Addr
	prefs []string
	sound Sound
	log   *slog.Logger
}

// New returns a player of sound on ports of pool bound at addr (the
// unspecified address binds every address), answering with the codecs of
// prefs it can encode (PCMU, PCMA, G722).
func New(pool *media.PortPool, addr netip.Addr, prefs []string, sound Sound, log *slog.Logger) (*Player, error) {
	p := &Player{pool: pool, addr: addr.Unmap(), sound: sound, log: log}
	for _, c := range prefs {
		if audio.Supported(c) {
			p.prefs = append(p.prefs, strings.ToUpper(c))
		}
	}
	if len(p.prefs) == 0 {
		return nil, errors.New("play: none of the codecs is one playback encodes (PCMU, PCMA, G722)")
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p, nil
}

// Start answers offer and starts playing. local is the address facing the
// caller, which the answer announces when the player binds every address.
func (p *Player) Start(offer []byte, local netip.Addr) ([]byte, *Session, error) {
	announce := p.addr
	if announce.IsUnspecified() {
		announce = local.Unmap()
		if !announce.IsValid() || announce.IsUnspecified() {
			return nil, nil, errors.New("play: bound to every address, needs the caller's local address")
		}
	}
	port, rtpConn, rtcpConn, err := media.BindPair(p.pool, p.addr)
	if err != nil {
		return nil, nil, err
	}
	answer, neg, err := media.Answer(offer, p.prefs, announce, port, rand.Uint64()>>1)
	var enc audio.Encoder
	if err == nil {
		enc, err = audio.NewEncoder(neg.Codec)
	}
	if err != nil {
		rtpConn.Close()
		rtcpConn.Close()
		p.pool.Release(port)
		return nil, nil, err
	}
	_ = rtcpConn.SetReadBuffer(1)
	s := &Session{
		p: p, port: port, rtp: rtpConn, rtcp: rtcpConn, neg: neg, enc: enc,
		rate: audio.RateOf(neg.Codec), src: p.sound.source(audio.RateOf(neg.Codec)),
		done: make(chan struct{}), stop: make(chan struct{}), ssrc: rand.Uint32(),
	}
	if neg.Remote.IsValid() && neg.Remote.Port() != 0 {
		s.remote = neg.Remote
	}
	s.wg.Add(2)
	go s.read()
	go s.send()
	return answer, s, nil
}

// Session is one call to a playback number.
type Session struct {
	p         *Player
	port      int
	rtp, rtcp *net.UDPConn
	neg       media.Negotiated
	enc       audio.Encoder
	rate      int
	src       *source
	ssrc      uint32

	mu     sync.Mutex
	remote netip.AddrPort

	done      chan struct{} // closed when a sound played once has ended
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Codec returns the caller's codec.
func (s *Session) Codec() string { return s.neg.Codec }

// Done is closed when the sound has played once (never for a loop): the
// dialog then hangs up.
func (s *Session) Done() <-chan struct{} { return s.done }

// Close stops playing and frees the ports. Safe to call more than once.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.rtp.Close()
		s.rtcp.Close()
		s.wg.Wait()
		s.p.pool.Release(s.port)
	})
	return nil
}

// read learns where the caller's RTP comes from (symmetric RTP).
func (s *Session) read() {
	defer s.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := s.rtp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.p.log.Debug("playback read failed", "err", err)
			}
			return
		}
		if n >= 12 && buf[0]>>6 == 2 {
			s.mu.Lock()
			s.remote = from
			s.mu.Unlock()
		}
	}
}

// send plays the sound, a packet every 20 ms.
func (s *Session) send() {
	defer s.wg.Done()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	pcm := make([]int16, s.rate/50)
	var payload, pkt []byte
	seq, ts := uint16(rand.Uint32()), rand.Uint32()
	first := true
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if !s.src.fill(pcm, s.rate) {
			s.p.log.Debug("playback played once", "codec", s.neg.Codec)
			close(s.done)
			return
		}
		if !s.neg.Direction.Sends() {
			continue
		}
		payload = s.enc.Encode(payload[:0], pcm)
		pkt = append(pkt[:0], 0x80, s.neg.PayloadType&0x7F)
		if first {
			pkt[1] |= 0x80
			first = false
		}
		pkt = binary.BigEndian.AppendUint16(pkt, seq)
		pkt = binary.BigEndian.AppendUint32(pkt, ts)
		pkt = binary.BigEndian.AppendUint32(pkt, s.ssrc)
		pkt = append(pkt, payload...)
		seq++
		ts += 160 // 8 kHz RTP clock for every codec here, G.722 too
		s.mu.Lock()
		to := s.remote
		s.mu.Unlock()
		if to.IsValid() && to.Port() != 0 {
			_, _ = s.rtp.WriteToUDPAddrPort(pkt, to)
		}
	}
}
