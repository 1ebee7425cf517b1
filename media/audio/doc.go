// Package audio turns RTP payloads into 16-bit linear PCM and back: the
// G.711 codecs (PCMU and PCMA, 8 kHz) and G.722 (sub-band ADPCM, 16 kHz),
// a resampler between the two rates, and the tone and level helpers the
// rooms and playback need.
//
// It owns no sockets and no goroutines: each Decoder and Encoder keeps the
// state of one stream and is used by one goroutine at a time.
package audio
