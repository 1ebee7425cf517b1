// Package play is the audio of the playback service: it answers a call,
// and sends a sound (a WAV file, once, or a tone, looping) to the caller
// in the caller's codec (PCMU, PCMA or G722), 20 ms a packet.
//
// Each Session owns two goroutines, one sending and one reading the
// caller's RTP (to learn where to send: symmetric RTP); Close stops both.
package play
