// Package room is the audio engine of parley's rooms: a Room is a set of
// members, each on an RTP port of its own, whose audio is decoded,
// mixed and encoded again per member in that member's codec (PCMU, PCMA or
// G722) every 20 ms by one ticker goroutine per room.
//
// A conference room mixes everyone: each member hears all the others but
// not itself. A gated room (push-to-talk, and later paging) forwards only
// the talker's audio: everyone else hears the talker, the talker hears
// nothing. Who the talker is, and what a key press means, is the
// service's business (dialog/service/rooms): the engine reports RFC 4733
// keys (OnKey), calls back every tick (OnTick) and takes a talker
// (SetTalker).
//
// A member joins by answering its phone's offer (Join), or by parley
// making the offer (OfferFor, then Member.Answer) as a page does.
//
// The room owns its ticker, started with the first member and stopped
// when the last leaves; each member owns the goroutine that reads its
// RTP, stopped by Member.Close.
package room
