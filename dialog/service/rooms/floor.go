package rooms

import (
	"slices"
	"time"
)

// maxQueue bounds the members waiting for the floor of one room; a request
// past it is refused with a tone.
const maxQueue = 16

// Outcome is what a floor request did.
type Outcome int

// Outcomes of Floor.Request.
const (
	// Granted: the floor was free and is now the requester's.
	Granted Outcome = iota
	// Queued: someone else holds it; the requester waits in line.
	Queued
	// Holding: the requester held it already.
	Holding
	// Refused: the line is full.
	Refused
)

// Release reasons, also the reason label of parley_room_floor_releases_total.
const (
	ReasonReleased = "released" // the holder pressed the release key
	ReasonHangup   = "hangup"   // the holder left the room
	ReasonSilence  = "silence"  // no voice for floor_timeout
	ReasonMaxTalk  = "max_talk" // held for max_talk
)

// Change is what a floor operation changed: the floor went from one
// member to another (or to nobody).
type Change[K comparable] struct {
	Released    bool
	From        K
	Reason      string
	Granted     bool
	To          K
	WasQueued   bool // To waited in the queue
	Unqueued    bool // From only left the queue
	Interrupted bool // From lost the floor to a timeout
}

// Floor is the token of a push-to-talk room: who holds it, since when,
// and who waits. It is a plain value with no clock of its own: the
// caller passes the time, so its tests need no sleeping. Not safe for
// concurrent use: the room's service locks around it.
type Floor[K comparable] struct {
	// FloorTimeout releases the floor after that long without voice from
	// its holder; MaxTalk after that long held. 0 turns either off.
	FloorTimeout, MaxTalk time.Duration

	holder K
	held   bool
	since  time.Time
	queue  []K
}

// Holder returns who holds the floor, if anyone.
func (f *Floor[K]) Holder() (K, bool) { return f.holder, f.held }

// Queue returns the members waiting, first first.
func (f *Floor[K]) Queue() []K { return slices.Clone(f.queue) }

// Request asks for the floor for k at now.
func (f *Floor[K]) Request(k K, now time.Time) (Outcome, Change[K]) {
	switch {
	case f.held && f.holder == k:
		return Holding, Change[K]{}
	case !f.held:
		f.grant(k, now)
		return Granted, Change[K]{Granted: true, To: k}
	case slices.Contains(f.queue, k):
		return Queued, Change[K]{}
	case len(f.queue) >= maxQueue:
		return Refused, Change[K]{}
	}
	f.queue = append(f.queue, k)
	return Queued, Change[K]{}
}

// Release gives up k's floor (or k's place in the queue) for reason;
// the first in the queue then gets the floor.
func (f *Floor[K]) Release(k K, reason string, now time.Time) Change[K] {
	if i := slices.Index(f.queue, k); i >= 0 {
		f.queue = slices.Delete(f.queue, i, i+1)
		return Change[K]{Unqueued: true, From: k, Reason: reason}
	}
	if !f.held || f.holder != k {
		return Change[K]{}
	}
	return f.pass(reason, now)
}

// Check releases the floor if its holder has been silent for FloorTimeout
// (lastVoice tells when the holder last sent voice) or has held it for
// MaxTalk.
func (f *Floor[K]) Check(now time.Time, lastVoice func(K) time.Time) Change[K] {
	if !f.held {
		return Change[K]{}
	}
	if f.MaxTalk > 0 && now.Sub(f.since) >= f.MaxTalk {
		c := f.pass(ReasonMaxTalk, now)
		c.Interrupted = true
		return c
	}
	if f.FloorTimeout > 0 {
		quiet := f.since
		if v := lastVoice(f.holder); v.After(quiet) {
			quiet = v
		}
		if now.Sub(quiet) >= f.FloorTimeout {
			c := f.pass(ReasonSilence, now)
			c.Interrupted = true
			return c
		}
	}
	return Change[K]{}
}

func (f *Floor[K]) grant(k K, now time.Time) {
	f.holder, f.held, f.since = k, true, now
}

// pass releases the holder's floor and grants it to the first waiting.
func (f *Floor[K]) pass(reason string, now time.Time) Change[K] {
	c := Change[K]{Released: true, From: f.holder, Reason: reason}
	var zero K
	f.holder, f.held = zero, false
	if len(f.queue) > 0 {
		next := f.queue[0]
		f.queue = slices.Delete(f.queue, 0, 1)
		f.grant(next, now)
		c.Granted, c.To, c.WasQueued = true, next, true
	}
	return c
}
