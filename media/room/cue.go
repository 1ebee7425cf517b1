package room

import (
	"time"

	"github.com/parley-sip/parley/media/audio"
)

// A Cue is a short signal a room plays to a member over the mix: tones of
// given frequencies and lengths (a frequency of 0 is a pause).
type Cue []Tone

// Tone is one segment of a cue.
type Tone struct {
	Hz  float64
	Dur time.Duration
}

// The room's cues. They avoid the frequencies the tests' phones use as
// voices (400 to 1200 Hz in steps) only by being short: a cue is a few
// frames of a 20 ms tick.
var (
	// CueJoin is played to everyone when a member joins: rising.
	CueJoin = Cue{{660, 80 * time.Millisecond}, {0, 40 * time.Millisecond}, {990, 80 * time.Millisecond}}
	// CueLeave is played to the others when a member leaves: falling.
	CueLeave = Cue{{990, 80 * time.Millisecond}, {0, 40 * time.Millisecond}, {660, 80 * time.Millisecond}}
	// CueGrant tells a member it holds the floor: one high beep.
	CueGrant = Cue{{1400, 100 * time.Millisecond}}
	// CueQueued tells a member its request waits: two short low beeps.
	CueQueued = Cue{{500, 60 * time.Millisecond}, {0, 60 * time.Millisecond}, {500, 60 * time.Millisecond}}
	// CueRefused tells a member its request was refused (the queue is
	// full) or the floor was taken from it: one long low tone.
	CueRefused = Cue{{350, 300 * time.Millisecond}}
)

// cueAmp is the cues' peak amplitude, about -15 dBFS: audible over
// speech, not painful.
const cueAmp = 6000

// cuePlayer plays the cues queued for one member, a frame at a time.
type cuePlayer struct {
	segs   []cueSeg
	tone   *audio.Tone
	toneHz float64
	rate   int
}

type cueSeg struct {
	hz     float64
	frames int
}

// maxCueFrames bounds the cue a member may have queued (10 s): key
// presses that queue cues cannot grow it without bound.
const maxCueFrames = 500

func (p *cuePlayer) queue(c Cue) {
	total := 0
	for _, s := range p.segs {
		total += s.frames
	}
	for _, t := range c {
		f := max(1, int((t.Dur+frameDur-1)/frameDur))
		if total+f > maxCueFrames {
			return
		}
		total += f
		p.segs = append(p.segs, cueSeg{hz: t.Hz, frames: f})
	}
}

// next writes the next frame of the cue into dst (len(dst) samples at
// rate) and reports whether there was one.
func (p *cuePlayer) next(dst []int16, rate int) bool {
	if len(p.segs) == 0 {
		return false
	}
	s := &p.segs[0]
	if s.hz == 0 {
		clear(dst)
	} else {
		if p.tone == nil || p.toneHz != s.hz || p.rate != rate {
			p.tone, p.toneHz, p.rate = audio.NewTone(s.hz, rate, cueAmp), s.hz, rate
		}
		p.tone.Fill(dst)
	}
	s.frames--
	if s.frames == 0 {
		p.segs = p.segs[1:]
		p.tone = nil
	}
	return true
}
