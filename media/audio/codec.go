package audio

import (
	"errors"
	"strings"
)

// ErrUnknownCodec means a codec name audio cannot decode or encode.
var ErrUnknownCodec = errors.New("audio: codec not supported")

// Decoder turns one stream's RTP payloads into linear PCM at Rate.
type Decoder interface {
	// Decode appends the samples of payload to dst and returns it.
	Decode(dst []int16, payload []byte) []int16
	// Rate is the sampling rate of what Decode returns, in Hz.
	Rate() int
}

// Encoder turns linear PCM at Rate into one stream's RTP payloads.
type Encoder interface {
	// Encode appends the payload of pcm to dst and returns it.
	Encode(dst []byte, pcm []int16) []byte
	// Rate is the sampling rate Encode expects, in Hz.
	Rate() int
}

// Supported reports whether name (PCMU, PCMA or G722, in any case) is a
// codec this package decodes and encodes.
func Supported(name string) bool {
	switch strings.ToUpper(name) {
	case "PCMU", "PCMA", "G722":
		return true
	}
	return false
}

// RateOf returns the sampling rate of codec name (not its RTP clock: G.722
// samples at 16 kHz on an 8 kHz RTP clock, RFC 3551 §4.5.2), or 0.
func RateOf(name string) int {
	switch strings.ToUpper(name) {
	case "PCMU", "PCMA":
		return 8000
	case "G722":
		return 16000
	}
	return 0
}

// NewDecoder returns a decoder for codec name.
func NewDecoder(name string) (Decoder, error) {
	switch strings.ToUpper(name) {
	case "PCMU":
		return ulawDecoder{}, nil
	case "PCMA":
		return alawDecoder{}, nil
	case "G722":
		return NewG722Decoder(), nil
	}
	return nil, ErrUnknownCodec
}

// NewEncoder returns an encoder for codec name.
func NewEncoder(name string) (Encoder, error) {
	switch strings.ToUpper(name) {
	case "PCMU":
		return ulawEncoder{}, nil
	case "PCMA":
		return alawEncoder{}, nil
	case "G722":
		return NewG722Encoder(), nil
	}
	return nil, ErrUnknownCodec
}
