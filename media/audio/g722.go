package audio

// G.722 (ITU-T G.722, 2012) at 64 kbit/s: the 16 kHz signal is split by a
// 24-tap quadrature mirror filter into a low band (0-4 kHz) coded with 6-bit
// ADPCM and a high band (4-8 kHz) coded with 2-bit ADPCM, one byte per pair
// of input samples (ihigh in the top two bits). Only mode 1 (64 kbit/s) is
// implemented: it is the one SIP phones use as payload type 9.
//
// The code follows the recommendation's block diagram (block names in
// the comments: SUBTRA, QUANTL, INVQAL, LOGSCL, SCALEL, and block 4, the
// adaptive predictor shared by both bands) in fixed point, as the
// recommendation specifies it. No Go module on the proxy implements G.722,
// so it is written here.

// g722Band is the ADPCM state of one sub-band.
type g722Band struct {
	s   int    // predictor output
	sp  int    // pole section output
	sz  int    // zero section output
	r   [3]int // reconstructed signal, r[0] newest
	a   [3]int // pole coefficients
	ap  [3]int
	p   [3]int // partially reconstructed signal
	d   [7]int // quantised differences
	b   [7]int // zero coefficients
	bp  [7]int
	nb  int // log scale factor
	det int // scale factor
}

func sat16(v int) int {
	return max(-32768, min(32767, v))
}

// Tables of the recommendation (Tables 6-9 and 14-17 of G.722).
var (
	g722Q6   = [32]int{0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940, 1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0, 0}
	g722ILN  = [32]int{0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 0}
	g722ILP  = [32]int{0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39, 38, 37, 36, 35, 34, 33, 32, 0}
	g722WL   = [8]int{-60, -30, 58, 172, 334, 538, 1198, 3042}
	g722RL42 = [16]int{0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0}
	g722ILB  = [32]int{2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834, 2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008}
	g722QM4  = [16]int{0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584, 1200, 0}
	g722QM6  = [64]int{
		-136, -136, -136, -136, -24808, -21904, -19008, -16704,
		-14984, -13512, -12280, -11192, -10232, -9360, -8576, -7856,
		-7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576,
		-3168, -2776, -2400, -2032, -1688, -1360, -1040, -728,
		24808, 21904, 19008, 16704, 14984, 13512, 12280, 11192,
		10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456,
		4944, 4464, 4008, 3576, 3168, 2776, 2400, 2032,
		1688, 1360, 1040, 728, 432, 136, -432, -136,
	}
	g722QM2 = [4]int{-7408, -1616, 7408, 1616}
	g722IHN = [3]int{0, 1, 0}
	g722IHP = [3]int{0, 3, 2}
	g722WH  = [3]int{0, -214, 798}
	g722RH2 = [4]int{2, 1, 2, 1}
	// g722QMF are the QMF coefficients h0..h11 (Table 11); h23-i = hi.
	g722QMF = [12]int{3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11}
)

// scale is LOGSCL/SCALEL (and LOGSCH/SCALEH): it adapts the log scale
// factor by w, bounds it at limit and turns it into det.
func (b *g722Band) scale(w, limit, shift int) {
	nb := (b.nb*127)>>7 + w
	b.nb = max(0, min(limit, nb))
	i := (b.nb >> 6) & 31
	sh := shift - b.nb>>11
	var v int
	if sh < 0 {
		v = g722ILB[i] << -sh
	} else {
		v = g722ILB[i] >> sh
	}
	b.det = v << 2
}

// adapt is block 4: RECONS, PARREC, UPPOL2, UPPOL1, UPZERO, DELAYA,
// FILTEP, FILTEZ and PREDIC for one quantised difference d.
func (b *g722Band) adapt(d int) {
	b.d[0] = d
	b.r[0] = sat16(b.s + d)
	b.p[0] = sat16(b.sz + d)

	// UPPOL2
	var sg [3]int
	for i := range 3 {
		sg[i] = b.p[i] >> 15
	}
	wd1 := sat16(b.a[1] << 2)
	wd2 := wd1
	if sg[0] == sg[1] {
		wd2 = -wd1
	}
	wd2 = min(wd2, 32767)
	ap2 := wd2 >> 7
	if sg[0] == sg[2] {
		ap2 += 128
	} else {
		ap2 -= 128
	}
	ap2 += (b.a[2] * 32512) >> 15
	b.ap[2] = max(-12288, min(12288, ap2))

	// UPPOL1
	wd1 = -192
	if sg[0] == sg[1] {
		wd1 = 192
	}
	ap1 := sat16(wd1 + (b.a[1]*32640)>>15)
	lim := sat16(15360 - b.ap[2])
	b.ap[1] = max(-lim, min(lim, ap1))

	// UPZERO
	step := 128
	if d == 0 {
		step = 0
	}
	sg0 := d >> 15
	for i := 1; i < 7; i++ {
		w := step
		if b.d[i]>>15 != sg0 {
			w = -step
		}
		b.bp[i] = sat16(w + (b.b[i]*32640)>>15)
	}

	// DELAYA and FILTEZ
	sz := 0
	for i := 6; i > 0; i-- {
		b.d[i] = b.d[i-1]
		b.b[i] = b.bp[i]
		sz += (b.b[i] * sat16(b.d[i]+b.d[i])) >> 15
	}
	b.sz = sz
	for i := 2; i > 0; i-- {
		b.r[i] = b.r[i-1]
		b.p[i] = b.p[i-1]
		b.a[i] = b.ap[i]
	}

	// FILTEP and PREDIC
	w1 := (b.a[1] * sat16(b.r[1]+b.r[1])) >> 15
	w2 := (b.a[2] * sat16(b.r[2]+b.r[2])) >> 15
	b.sp = sat16(w1 + w2)
	b.s = sat16(b.sp + b.sz)
}

// G722Encoder encodes 16 kHz PCM into G.722 at 64 kbit/s.
type G722Encoder struct {
	band [2]g722Band
	x    [24]int // transmit QMF delay line
	odd  int16   // a sample left over from an odd-length Encode
	has  bool
}

// NewG722Encoder returns an encoder in its reset state.
func NewG722Encoder() *G722Encoder {
	e := &G722Encoder{}
	e.band[0].det, e.band[1].det = 32, 8
	return e
}

// Rate is 16000.
func (*G722Encoder) Rate() int { return 16000 }

// Encode appends one byte per two samples of pcm to dst. An odd sample
// waits for the next call.
func (e *G722Encoder) Encode(dst []byte, pcm []int16) []byte {
	for _, s := range pcm {
		if !e.has {
			e.odd, e.has = s, true
			continue
		}
		e.has = false
		dst = append(dst, e.pair(int(e.odd), int(s)))
	}
	return dst
}

func (e *G722Encoder) pair(s0, s1 int) byte {
	// Transmit QMF: the even and odd taps give the two bands.
	copy(e.x[:22], e.x[2:])
	e.x[22], e.x[23] = s0, s1
	var even, odd int
	for i := range 12 {
		odd += e.x[2*i] * g722QMF[i]
		even += e.x[2*i+1] * g722QMF[11-i]
	}
	xlow := (even + odd) >> 14
	xhigh := (even - odd) >> 14

	// Low band: SUBTRA, QUANTL, INVQAL, LOGSCL, SCALEL, block 4.
	lo := &e.band[0]
	el := sat16(xlow - lo.s)
	wd := el
	if el < 0 {
		wd = -(el + 1)
	}
	i := 1
	for ; i < 30; i++ {
		if wd < (g722Q6[i]*lo.det)>>12 {
			break
		}
	}
	ilow := g722ILP[i]
	if el < 0 {
		ilow = g722ILN[i]
	}
	ril := ilow >> 2
	dlow := (lo.det * g722QM4[ril]) >> 15
	lo.scale(g722WL[g722RL42[ril]], 18432, 8)
	lo.adapt(dlow)

	// High band: SUBTRA, QUANTH, INVQAH, LOGSCH, SCALEH, block 4.
	hi := &e.band[1]
	eh := sat16(xhigh - hi.s)
	wd = eh
	if eh < 0 {
		wd = -(eh + 1)
	}
	mih := 1
	if wd >= (564*hi.det)>>12 {
		mih = 2
	}
	ihigh := g722IHP[mih]
	if eh < 0 {
		ihigh = g722IHN[mih]
	}
	dhigh := (hi.det * g722QM2[ihigh]) >> 15
	hi.scale(g722WH[g722RH2[ihigh]], 22528, 10)
	hi.adapt(dhigh)
	return byte(ihigh<<6 | ilow)
}

// G722Decoder decodes G.722 at 64 kbit/s into 16 kHz PCM.
type G722Decoder struct {
	band [2]g722Band
	x    [24]int // receive QMF delay line
}

// NewG722Decoder returns a decoder in its reset state.
func NewG722Decoder() *G722Decoder {
	d := &G722Decoder{}
	d.band[0].det, d.band[1].det = 32, 8
	return d
}

// Rate is 16000.
func (*G722Decoder) Rate() int { return 16000 }

// Decode appends two samples per byte of payload to dst.
func (d *G722Decoder) Decode(dst []int16, payload []byte) []int16 {
	for _, code := range payload {
		c := int(code)
		ilow, ihigh := c&0x3F, c>>6

		// Low band: INVQBL, RECONS, LIMIT, then adapt with the 4-bit code.
		lo := &d.band[0]
		rlow := max(-16384, min(16383, lo.s+(lo.det*g722QM6[ilow])>>15))
		ril := ilow >> 2
		dlow := (lo.det * g722QM4[ril]) >> 15
		lo.scale(g722WL[g722RL42[ril]], 18432, 8)
		lo.adapt(dlow)

		// High band: INVQAH, RECONS, LIMIT, adapt.
		hi := &d.band[1]
		dhigh := (hi.det * g722QM2[ihigh]) >> 15
		rhigh := max(-16384, min(16383, dhigh+hi.s))
		hi.scale(g722WH[g722RH2[ihigh]], 22528, 10)
		hi.adapt(dhigh)

		// Receive QMF.
		copy(d.x[:22], d.x[2:])
		d.x[22], d.x[23] = rlow+rhigh, rlow-rhigh
		var x1, x2 int
		for i := range 12 {
			x2 += d.x[2*i] * g722QMF[i]
			x1 += d.x[2*i+1] * g722QMF[11-i]
		}
		dst = append(dst, int16(sat16(x1>>11)), int16(sat16(x2>>11)))
	}
	return dst
}
