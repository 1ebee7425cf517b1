package audio

import "math/bits"

// G.711 (ITU-T G.711, 1988): each 8 kHz sample is one byte, µ-law (PCMU,
// RTP payload type 0) or A-law (PCMA, 8). Decoding is a table lookup;
// encoding follows the segment search of the recommendation's tables.

var (
	ulawTable [256]int16
	alawTable [256]int16
)

func init() {
	for i := range 256 {
		ulawTable[i] = ulawToLinear(uint8(i))
		alawTable[i] = alawToLinear(uint8(i))
	}
}

const (
	ulawBias = 0x84
	ulawClip = 32635
)

// LinearToUlaw encodes one sample in µ-law.
func LinearToUlaw(s int16) uint8 {
	v := int(s)
	var sign int
	if v < 0 {
		sign, v = 0x80, -v
	}
	v = min(v, ulawClip) + ulawBias
	exp := bits.Len16(uint16(v>>7)) - 1
	mant := (v >> (exp + 3)) & 0x0F
	return ^uint8(sign | exp<<4 | mant)
}

func ulawToLinear(u uint8) int16 {
	u = ^u
	t := (int(u&0x0F)<<3 + ulawBias) << ((u & 0x70) >> 4)
	if u&0x80 != 0 {
		return int16(ulawBias - t)
	}
	return int16(t - ulawBias)
}

// UlawToLinear decodes one µ-law sample.
func UlawToLinear(u uint8) int16 { return ulawTable[u] }

// aSegEnd are the upper bounds of A-law's eight segments, on 13 bits.
var aSegEnd = [8]int{0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF}

// LinearToAlaw encodes one sample in A-law.
func LinearToAlaw(s int16) uint8 {
	v := int(s) >> 3
	mask := 0xD5
	if v < 0 {
		mask, v = 0x55, -v-1
	}
	seg := 0
	for seg < 8 && v > aSegEnd[seg] {
		seg++
	}
	if seg >= 8 {
		return uint8(0x7F ^ mask)
	}
	a := seg << 4
	if seg < 2 {
		a |= (v >> 1) & 0x0F
	} else {
		a |= (v >> seg) & 0x0F
	}
	return uint8(a ^ mask)
}

func alawToLinear(a uint8) int16 {
	a ^= 0x55
	t := int(a&0x0F) << 4
	switch seg := int(a&0x70) >> 4; seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t = (t + 0x108) << (seg - 1)
	}
	if a&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}

// AlawToLinear decodes one A-law sample.
func AlawToLinear(a uint8) int16 { return alawTable[a] }

type ulawDecoder struct{}

func (ulawDecoder) Rate() int { return 8000 }
func (ulawDecoder) Decode(dst []int16, p []byte) []int16 {
	for _, b := range p {
		dst = append(dst, ulawTable[b])
	}
	return dst
}

type ulawEncoder struct{}

func (ulawEncoder) Rate() int { return 8000 }
func (ulawEncoder) Encode(dst []byte, pcm []int16) []byte {
	for _, s := range pcm {
		dst = append(dst, LinearToUlaw(s))
	}
	return dst
}

type alawDecoder struct{}

func (alawDecoder) Rate() int { return 8000 }
func (alawDecoder) Decode(dst []int16, p []byte) []int16 {
	for _, b := range p {
		dst = append(dst, alawTable[b])
	}
	return dst
}

type alawEncoder struct{}

func (alawEncoder) Rate() int { return 8000 }
func (alawEncoder) Encode(dst []byte, pcm []int16) []byte {
	for _, s := range pcm {
		dst = append(dst, LinearToAlaw(s))
	}
	return dst
}
