package audio

// Upsampler doubles the rate of one stream (8 to 16 kHz) by linear
// interpolation, keeping the last sample between calls so frames join
// without a click. Images above 4 kHz are weak for speech and tones and a
// G.722 listener's ear is the low-pass; a phone's own codec band-limits
// them again.
type Upsampler struct{ last int16 }

// Upsample appends two samples per sample of in to dst.
func (u *Upsampler) Upsample(dst, in []int16) []int16 {
	prev := int32(u.last)
	for _, s := range in {
		v := int32(s)
		dst = append(dst, int16((prev+v)/2), s)
		prev = v
	}
	u.last = int16(prev)
	return dst
}

// Downsampler halves the rate of one stream (16 to 8 kHz) with a short
// low-pass filter ([1 2 1]/4 over the input, one output sample late) before dropping every other
// sample, so that a 5 kHz tone does not fold back into the telephone band
// at full strength.
type Downsampler struct{ a, b int32 }

// Downsample appends len(in)/2 samples to dst; in must have an even length.
func (d *Downsampler) Downsample(dst, in []int16) []int16 {
	for i := 0; i+1 < len(in); i += 2 {
		// Centred on the previous pair's second sample: one output
		// sample of delay, no half-sample shift.
		a, b := int32(in[i]), int32(in[i+1])
		dst = append(dst, int16((d.a+2*d.b+a)/4))
		d.a, d.b = a, b
	}
	return dst
}
