package rooms

import (
	"log/slog"
	"sync"
	"time"

	"github.com/parley-sip/parley/media/room"
)

// The floor keys (RFC 4733 event codes): * asks for the floor, # gives it
// back (or leaves the queue).
const (
	KeyRequest = 10 // *
	KeyRelease = 11 // #
)

// ptt is a push-to-talk room's floor, fed by the room engine's keys,
// ticks and leaves.
type ptt struct {
	number  string
	log     *slog.Logger
	metrics *metrics
	r       *room.Room // set after the room is built

	mu    sync.Mutex
	floor Floor[*room.Member]
}

// state returns the holder's user and the queue's, for the admin API.
func (p *ptt) state() (string, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	holder := ""
	if h, ok := p.floor.Holder(); ok {
		holder = h.User()
	}
	queue := []string{}
	for _, m := range p.floor.Queue() {
		queue = append(queue, m.User())
	}
	return holder, queue
}

// key handles a member's key press (the member's reading goroutine).
func (p *ptt) key(m *room.Member, code uint8) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch code {
	case KeyRequest:
		out, c := p.floor.Request(m, now)
		switch out {
		case Granted:
			p.apply(c)
		case Queued:
			p.log.Info("floor requested: queued", "room", p.number, "user", m.User(), "queue", len(p.floor.Queue()))
			p.r.Play(m, room.CueQueued)
		case Refused:
			p.log.Info("floor requested: refused, the queue is full", "room", p.number, "user", m.User())
			p.r.Play(m, room.CueRefused)
		case Holding:
			p.r.Play(m, room.CueGrant)
		}
	case KeyRelease:
		p.apply(p.floor.Release(m, ReasonReleased, now))
	}
}

// tick checks the floor's timeouts (the room's ticker goroutine).
func (p *ptt) tick(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.apply(p.floor.Check(now, (*room.Member).LastVoice))
}

// leave releases a leaving member's floor or place in the queue.
func (p *ptt) leave(m *room.Member) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.apply(p.floor.Release(m, ReasonHangup, time.Now()))
}

// apply makes a floor change heard, logged and counted. p.mu is held.
func (p *ptt) apply(c Change[*room.Member]) {
	if c.Unqueued {
		p.log.Info("floor request withdrawn", "room", p.number, "user", c.From.User(), "reason", c.Reason)
		return
	}
	if c.Released {
		p.log.Info("floor released", "room", p.number, "user", c.From.User(), "reason", c.Reason)
		p.metrics.release(p.number, c.Reason)
		if c.Interrupted {
			p.r.Play(c.From, room.CueRefused)
		}
	}
	if c.Granted {
		p.log.Info("floor granted", "room", p.number, "user", c.To.User(), "from_queue", c.WasQueued)
		p.metrics.grant(p.number)
		p.r.Play(c.To, room.CueGrant)
		p.r.SetTalker(c.To)
	} else if c.Released {
		p.r.SetTalker(nil)
	}
}
