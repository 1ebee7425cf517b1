package play

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/parley-sip/parley/media/audio"
)

// maxWAV bounds the WAV file a playback number may play (64 MiB, some
// 35 minutes of 16 kHz mono): the file is read into memory at start.
const maxWAV = 64 << 20

// Sound is what a playback number plays: a tone or a WAV file's samples.
type Sound struct {
	// Loop plays the sound until the caller hangs up; otherwise the call
	// ends when it has played once.
	Loop bool
	hz   float64
	pcm  []int16 // a WAV's samples, mono at 16 kHz
}

// Tone returns a sound that plays a sine of hz, looping.
func Tone(hz float64) Sound { return Sound{Loop: true, hz: hz} }

// ParseSound reads a services.playback value: tone:HZ (looping), or the
// path of a WAV file (16-bit PCM, mono or stereo, any rate) played once.
func ParseSound(v string) (Sound, error) {
	if hz, ok := strings.CutPrefix(v, "tone:"); ok {
		f, err := strconv.ParseFloat(hz, 64)
		if err != nil || f <= 0 {
			return Sound{}, fmt.Errorf("%q is not tone:HZ", v)
		}
		return Tone(f), nil
	}
	f, err := os.Open(v)
	if err != nil {
		return Sound{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxWAV+1))
	if err != nil {
		return Sound{}, err
	}
	if len(data) > maxWAV {
		return Sound{}, fmt.Errorf("%s: larger than %d MiB", v, maxWAV>>20)
	}
	pcm, err := decodeWAV(data)
	if err != nil {
		return Sound{}, fmt.Errorf("%s: %w", v, err)
	}
	return Sound{pcm: pcm}, nil
}

// ErrNotWAV means a file that is not a 16-bit PCM WAV.
var ErrNotWAV = errors.New("not a 16-bit PCM WAV file")

// decodeWAV returns a RIFF WAVE file's samples, mono, at 16 kHz.
func decodeWAV(b []byte) ([]int16, error) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, ErrNotWAV
	}
	var rate, channels int
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), int(binary.LittleEndian.Uint32(b[off+4:off+8]))
		body := off + 8
		if size < 0 || size > len(b)-body {
			size = len(b) - body // a size left unwritten by a recorder
		}
		switch id {
		case "fmt ":
			if size < 16 {
				return nil, ErrNotWAV
			}
			format := binary.LittleEndian.Uint16(b[body:])
			channels = int(binary.LittleEndian.Uint16(b[body+2:]))
			rate = int(binary.LittleEndian.Uint32(b[body+4:]))
			bits := binary.LittleEndian.Uint16(b[body+14:])
			if format != 1 || bits != 16 || channels < 1 || channels > 8 || rate < 8000 || rate > 192000 {
				return nil, fmt.Errorf("%w: format %d, %d bits, %d channels, %d Hz", ErrNotWAV, format, bits, channels, rate)
			}
		case "data":
			if rate == 0 {
				return nil, ErrNotWAV
			}
			data := b[body : body+size]
			n := len(data) / (2 * channels)
			mono := make([]int16, n)
			for i := range n {
				var sum int
				for c := range channels {
					sum += int(int16(binary.LittleEndian.Uint16(data[2*(i*channels+c):])))
				}
				mono[i] = int16(sum / channels)
			}
			return resample(mono, rate, 16000), nil
		}
		off = body + size + size%2
	}
	return nil, fmt.Errorf("%w: no data chunk", ErrNotWAV)
}

// resample converts pcm from rate in to rate out by linear
// interpolation: good enough for prompts and tones, done once per file.
func resample(pcm []int16, in, out int) []int16 {
	if in == out || len(pcm) == 0 {
		return pcm
	}
	n := int(int64(len(pcm)) * int64(out) / int64(in))
	res := make([]int16, n)
	for i := range n {
		pos := float64(i) * float64(in) / float64(out)
		j := int(pos)
		frac := pos - float64(j)
		a := float64(pcm[j])
		b := a
		if j+1 < len(pcm) {
			b = float64(pcm[j+1])
		}
		res[i] = int16(a + (b-a)*frac)
	}
	return res
}

// source is one call's position in a Sound.
type source struct {
	s    Sound
	tone *audio.Tone
	pos  int
	down audio.Downsampler
	buf  []int16
}

func (s Sound) source(rate int) *source {
	src := &source{s: s}
	if s.hz > 0 {
		src.tone = audio.NewTone(s.hz, rate, 0.35*32767)
	}
	return src
}

// fill writes the next frame (len(dst) samples at rate) into dst and
// reports whether the sound had any left.
func (src *source) fill(dst []int16, rate int) bool {
	if src.tone != nil {
		src.tone.Fill(dst)
		return true
	}
	if src.pos >= len(src.s.pcm) {
		return false
	}
	need := len(dst) * 16000 / rate
	src.buf = append(src.buf[:0], src.s.pcm[src.pos:min(src.pos+need, len(src.s.pcm))]...)
	src.pos += need
	for len(src.buf) < need {
		src.buf = append(src.buf, 0)
	}
	if rate == 16000 {
		copy(dst, src.buf)
	} else {
		copy(dst, src.down.Downsample(nil, src.buf))
	}
	return true
}
