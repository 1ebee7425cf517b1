package room

import (
	"time"

	"github.com/parley-sip/parley/media/audio"
)

// voiceLevel is the mean square above which a frame counts as voice:
// about -36 dBFS (RMS 500), above a quiet room's noise and G.711's idle
// pattern, below any speech or test tone.
const voiceLevel = 500 * 500

// mixState is what the ticker keeps per member between frames.
type mixState struct {
	native []int16 // a frame at the member's own rate
	in     []int16 // the member's frame at the mixing rate
	has    bool    // in holds audio that went into the mix
	out    []int16 // what the member hears, at the mixing rate
	nout   []int16 // the same at the member's rate
	up     audio.Upsampler
	down   audio.Downsampler
	// outDown resamples what the member hears when the room mixes at
	// 16 kHz and the member speaks G.711.
	outDown     audio.Downsampler
	payload     []byte
	pkt         []byte
	seq         uint16
	ts          uint32
	sent        bool
	sentPackets uint64
}

// mixer holds the ticker's shared buffers.
type mixer struct {
	sum []int32
	// shared is what a member who put nothing into the mix and has no cue
	// hears: the whole mix. G.711 is stateless, so its payload is encoded
	// once per codec and tick for all such members.
	shared map[string][]byte
	common []int16
	down   audio.Downsampler
	nat    []int16
}

func grow[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}

func clamp(v int32) int16 {
	return int16(max(-32768, min(32767, v)))
}

// mixFrame mixes one 20 ms frame at rate for members and sends each its
// own. In a gated room only talker's audio goes into the mix.
func (x *mixer) mixFrame(members []*Member, rate int, gated bool, talker *Member, now time.Time) {
	n := rate / 50
	x.sum = grow(x.sum, n)
	clear(x.sum)
	for _, m := range members {
		st := &m.st
		st.has = false
		if !m.answered {
			continue
		}
		st.native = grow(st.native, m.rate/50)
		if !m.pull(st.native) {
			m.talking.Store(false)
			continue
		}
		if audio.Energy(st.native) > voiceLevel {
			m.talking.Store(true)
			m.lastVoice.Store(now.UnixNano())
		} else {
			m.talking.Store(false)
		}
		if m.Muted() || (gated && m != talker) {
			continue
		}
		if m.rate == rate {
			st.in = append(st.in[:0], st.native...)
		} else {
			st.in = st.up.Upsample(st.in[:0], st.native)
		}
		for i, v := range st.in {
			x.sum[i] += int32(v)
		}
		st.has = true
	}

	if x.shared == nil {
		x.shared = map[string][]byte{}
	}
	clear(x.shared)
	x.common = grow(x.common, n)
	for i, v := range x.sum {
		x.common[i] = clamp(v)
	}
	for _, m := range members {
		if !m.answered || !m.neg.Direction.Sends() {
			continue
		}
		st := &m.st
		if !st.has && !m.cueNow && m.codec != "G722" {
			p, ok := x.shared[m.codec]
			if !ok {
				pcm := x.common
				if rate != m.rate {
					x.nat = x.down.Downsample(x.nat[:0], x.common)
					pcm = x.nat
				}
				p = m.enc.Encode(nil, pcm)
				x.shared[m.codec] = p
			}
			m.send(p)
			continue
		}
		st.out = grow(st.out, n)
		for i := range n {
			v := x.sum[i]
			if st.has {
				v -= int32(st.in[i])
			}
			if m.cueNow {
				v += int32(m.cueb[i])
			}
			st.out[i] = clamp(v)
		}
		pcm := st.out
		if rate != m.rate {
			st.nout = st.outDown.Downsample(st.nout[:0], st.out)
			pcm = st.nout
		}
		st.payload = m.enc.Encode(st.payload[:0], pcm)
		m.send(st.payload)
	}
}
