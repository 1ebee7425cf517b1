package audio

import (
	"math"
	"testing"
)

// Every A-law code decodes to a value that encodes back to it, and so does
// every µ-law code but the negative zero (0x7F), which encodes as +0.
func TestG711RoundTrip(t *testing.T) {
	for i := range 256 {
		c := uint8(i)
		if got := LinearToAlaw(AlawToLinear(c)); got != c {
			t.Errorf("A-law %#02x: decodes to %d, encodes to %#02x", c, AlawToLinear(c), got)
		}
		if c == 0x7F {
			continue
		}
		if got := LinearToUlaw(UlawToLinear(c)); got != c {
			t.Errorf("µ-law %#02x: decodes to %d, encodes to %#02x", c, UlawToLinear(c), got)
		}
	}
}

// Known points of G.711's tables: silence, full scale and a mid value.
func TestG711Vectors(t *testing.T) {
	for _, tc := range []struct {
		pcm  int16
		u, a uint8
	}{
		{0, 0xFF, 0xD5},
		{-1, 0x7F, 0x55},
		{32767, 0x80, 0xAA},
		{-32768, 0x00, 0x2A},
		{1000, 0xCE, 0xFA},
	} {
		if got := LinearToUlaw(tc.pcm); got != tc.u {
			t.Errorf("µ-law(%d) = %#02x, want %#02x", tc.pcm, got, tc.u)
		}
		if got := LinearToAlaw(tc.pcm); got != tc.a {
			t.Errorf("A-law(%d) = %#02x, want %#02x", tc.pcm, got, tc.a)
		}
	}
	if UlawToLinear(0x80) != 32124 || AlawToLinear(0xAA) != 32256 {
		t.Errorf("full scale decodes to %d (µ) and %d (A)", UlawToLinear(0x80), AlawToLinear(0xAA))
	}
}

// snr returns the signal to noise ratio in dB of out against in, trying
// every delay up to maxLag (the codec's filters delay the signal).
func snr(in, out []int16, maxLag int) (float64, int) {
	best, bestLag := math.Inf(-1), 0
	for lag := 0; lag <= maxLag; lag++ {
		var sig, noise float64
		for i := 400; i+lag < len(out) && i < len(in); i++ {
			d := float64(out[i+lag]) - float64(in[i])
			sig += float64(in[i]) * float64(in[i])
			noise += d * d
		}
		if v := 10 * math.Log10(sig/noise); v > best {
			best, bestLag = v, lag
		}
	}
	return best, bestLag
}

func sine(hz float64, rate, n int, amp float64) []int16 {
	pcm := make([]int16, n)
	NewTone(hz, rate, amp).Fill(pcm)
	return pcm
}

// G.722 at 64 kbit/s codes a sine in the low band and one in the high
// band with a good SNR, through frames of 20 ms as RTP carries them.
func TestG722SineSNR(t *testing.T) {
	for _, tc := range []struct {
		hz     float64
		minSNR float64
	}{
		{440, 45},
		{1000, 40},
		{3000, 35},
		{5500, 20},
	} {
		in := sine(tc.hz, 16000, 16000, 10000)
		enc, dec := NewG722Encoder(), NewG722Decoder()
		var out []int16
		for f := 0; f < len(in); f += 320 {
			payload := enc.Encode(nil, in[f:f+320])
			if len(payload) != 160 {
				t.Fatalf("20 ms encodes to %d bytes, want 160", len(payload))
			}
			out = dec.Decode(out, payload)
		}
		got, lag := snr(in, out, 64)
		t.Logf("%v Hz: SNR %.1f dB at a delay of %d samples", tc.hz, got, lag)
		if got < tc.minSNR {
			t.Errorf("%v Hz: SNR %.1f dB, want at least %v", tc.hz, got, tc.minSNR)
		}
	}
}

// Every codec carries a 1 kHz tone through a round trip, at its own rate.
func TestCodecsCarryTone(t *testing.T) {
	for _, name := range []string{"PCMU", "PCMA", "G722", "g722"} {
		enc, err := NewEncoder(name)
		if err != nil {
			t.Fatal(err)
		}
		dec, _ := NewDecoder(name)
		rate := RateOf(name)
		in := sine(1000, rate, rate/2, 8000)
		out := dec.Decode(nil, enc.Encode(nil, in))
		if len(out) != len(in) {
			t.Fatalf("%s: %d samples out of %d", name, len(out), len(in))
		}
		if p, q := Goertzel(out, 1000, rate), Goertzel(out, 700, rate); p < 100*q {
			t.Errorf("%s: 1000 Hz power %.0f, 700 Hz %.0f", name, p, q)
		}
	}
	if _, err := NewEncoder("opus"); err != ErrUnknownCodec {
		t.Errorf("opus: %v", err)
	}
}

// Resampling keeps a tone's frequency: 8 kHz up to 16 and back.
func TestResample(t *testing.T) {
	in := sine(700, 8000, 1600, 8000)
	var u Upsampler
	up := u.Upsample(nil, in)
	if len(up) != 3200 || Goertzel(up, 700, 16000) < 100*Goertzel(up, 1500, 16000) {
		t.Fatalf("upsampled: %d samples", len(up))
	}
	var d Downsampler
	down := d.Downsample(nil, up)
	if got, _ := snr(in, down, 4); got < 20 {
		t.Errorf("8k -> 16k -> 8k: SNR %.1f dB", got)
	}
}

func BenchmarkG722Encode(b *testing.B) {
	in := sine(1000, 16000, 320, 8000)
	enc := NewG722Encoder()
	buf := make([]byte, 0, 160)
	for b.Loop() {
		buf = enc.Encode(buf[:0], in)
	}
}
