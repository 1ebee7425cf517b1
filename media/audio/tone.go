package audio

import "math"

// Tone generates a sine wave frame by frame with a continuous phase.
type Tone struct {
	step, phase float64
	amp         float64
}

// NewTone returns a tone of hz at rate with peak amplitude amp (0-32767).
func NewTone(hz float64, rate int, amp float64) *Tone {
	return &Tone{step: 2 * math.Pi * hz / float64(rate), amp: amp}
}

// Fill writes the next len(dst) samples of the tone into dst.
func (t *Tone) Fill(dst []int16) {
	for i := range dst {
		dst[i] = int16(t.amp * math.Sin(t.phase))
		t.phase += t.step
		if t.phase > 2*math.Pi {
			t.phase -= 2 * math.Pi
		}
	}
}

// Goertzel returns the power of frequency hz in pcm sampled at rate,
// normalised by the frame length so frames of different sizes compare: a
// full-scale sine gives about 0.25*32767² (its power at that bin).
func Goertzel(pcm []int16, hz float64, rate int) float64 {
	if len(pcm) == 0 {
		return 0
	}
	k := 2 * math.Cos(2*math.Pi*hz/float64(rate))
	var s1, s2 float64
	for _, x := range pcm {
		s := float64(x) + k*s1 - s2
		s2, s1 = s1, s
	}
	p := s1*s1 + s2*s2 - k*s1*s2
	n := float64(len(pcm))
	return p / (n * n)
}

// Energy returns the mean square of pcm.
func Energy(pcm []int16) float64 {
	if len(pcm) == 0 {
		return 0
	}
	var e float64
	for _, x := range pcm {
		e += float64(x) * float64(x)
	}
	return e / float64(len(pcm))
}
