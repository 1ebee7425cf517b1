package room

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parley-sip/parley/dialog/sipmsg"
	"github.com/parley-sip/parley/media"
	"github.com/parley-sip/parley/media/audio"
)

// frameDur is the mixing tick and the packetisation of what rooms send.
const frameDur = 20 * time.Millisecond

// MaxMembers bounds a room: past it a join is refused with 486 Busy Here
// (ErrRoomFull). The benchmark (testcalls/bench/RESULTS.md) tells how many
// one core mixes; this is far below.
const MaxMembers = 64

// Errors of joining a room.
var (
	// ErrRoomFull means the room has MaxMembers members: 486 Busy Here.
	ErrRoomFull error = sipmsg.Warn(486, "Busy Here", "room: the room is full")
	// ErrNoCodec means the room was given no codec it can mix.
	ErrNoCodec = errors.New("room: none of the codecs is one the room mixes (PCMU, PCMA, G722)")
)

// Room is one room's members and the ticker that mixes them.
type Room struct {
	number  string
	pool    *media.PortPool
	addr    netip.Addr
	prefs   []string
	timeout time.Duration
	log     *slog.Logger
	gated   bool
	quiet   bool

	onKey   func(m *Member, code uint8)
	onTick  func(now time.Time)
	onLeave func(m *Member)

	// life serialises joins and leaves, so that the ticker a leave stops
	// has returned before a join starts the next one.
	life sync.Mutex

	mu      sync.Mutex
	members []*Member
	talker  *Member
	stop    chan struct{}
	stopped chan struct{}

	// The ticker's own buffers, touched by nothing else.
	mix    mixer
	scrach []*Member
}

// Option configures a Room.
type Option func(*Room) error

// WithTimeout makes a member whose RTP stopped for d leave (its Done is
// closed and the service hangs up). Zero, the default, never does.
func WithTimeout(d time.Duration) Option {
	return func(r *Room) error {
		if d < 0 {
			return errors.New("room: timeout must not be negative")
		}
		r.timeout = d
		return nil
	}
}

// WithLogger sets the logger. The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(r *Room) error {
		if l == nil {
			return errors.New("room: nil logger")
		}
		r.log = l
		return nil
	}
}

// WithGate makes the room forward only the talker's audio (SetTalker):
// push-to-talk, and paging with a fixed talker.
func WithGate() Option {
	return func(r *Room) error { r.gated = true; return nil }
}

// WithQuiet plays no cue when members join or leave: a page, whose
// listeners should hear the pager and nothing else.
func WithQuiet() Option {
	return func(r *Room) error { r.quiet = true; return nil }
}

// WithKeys calls f with each RFC 4733 key a member presses (event code: 0-9,
// 10 for *, 11 for #), once per key, from the member's reading goroutine.
func WithKeys(f func(m *Member, code uint8)) Option {
	return func(r *Room) error { r.onKey = f; return nil }
}

// WithTick calls f every tick after the mix, from the ticker goroutine.
// It must not join or leave members.
func WithTick(f func(now time.Time)) Option {
	return func(r *Room) error { r.onTick = f; return nil }
}

// WithLeave calls f when a member has left, after the room dropped it.
func WithLeave(f func(m *Member)) Option {
	return func(r *Room) error { r.onLeave = f; return nil }
}

// New returns the empty room number, whose members take ports from pool,
// bound on addr (the unspecified address binds every address and each
// answer announces the one facing the caller), and whose answers choose
// among prefs, of which only PCMU, PCMA, G722 and telephone-event are
// kept.
func New(number string, pool *media.PortPool, addr netip.Addr, prefs []string, opts ...Option) (*Room, error) {
	if pool == nil {
		return nil, errors.New("room: needs a port pool")
	}
	addr = addr.Unmap()
	if !addr.IsValid() {
		return nil, fmt.Errorf("room: %v is not an address", addr)
	}
	r := &Room{number: number, pool: pool, addr: addr, log: slog.New(slog.DiscardHandler)}
	for _, p := range prefs {
		if audio.Supported(p) {
			r.prefs = append(r.prefs, strings.ToUpper(p))
		}
	}
	if len(r.prefs) == 0 {
		return nil, ErrNoCodec
	}
	// Keys are how a push-to-talk member asks for the floor: always offer
	// to take them.
	r.prefs = append(r.prefs, media.TelephoneEvent)
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Number returns the room's number.
func (r *Room) Number() string { return r.number }

// Gated reports whether only the talker is heard.
func (r *Room) Gated() bool { return r.gated }

// SetTalker makes m the member a gated room forwards; nil silences it.
func (r *Room) SetTalker(m *Member) {
	r.mu.Lock()
	r.talker = m
	r.mu.Unlock()
}

// Talker returns the member a gated room forwards, or nil.
func (r *Room) Talker() *Member {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.talker
}

// Members returns the members, in the order they joined.
func (r *Room) Members() []*Member {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.members)
}

// Member returns the first member who is user, or nil.
func (r *Room) Member(user string) *Member {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.members {
		if m.user == user {
			return m
		}
	}
	return nil
}

// Play queues cue for m, over what m hears.
func (r *Room) Play(m *Member, c Cue) {
	r.mu.Lock()
	m.cue.queue(c)
	r.mu.Unlock()
}

// add makes m a member and starts the ticker with the first one.
func (r *Room) add(m *Member) error {
	r.life.Lock()
	defer r.life.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.members) >= MaxMembers {
		return ErrRoomFull
	}
	r.members = append(r.members, m)
	for _, o := range r.members {
		if !r.quiet {
			o.cue.queue(CueJoin)
		}
	}
	if r.stop == nil {
		r.stop, r.stopped = make(chan struct{}), make(chan struct{})
		go r.run(r.stop, r.stopped)
	}
	r.log.Info("room member joined", "user", m.user, "call_id", m.call, "codec", m.codec, "members", len(r.members))
	return nil
}

// remove drops m; the last member out stops the ticker and waits for it.
func (r *Room) remove(m *Member) {
	r.life.Lock()
	defer r.life.Unlock()
	r.mu.Lock()
	i := slices.Index(r.members, m)
	if i < 0 {
		r.mu.Unlock()
		return
	}
	r.members = slices.Delete(r.members, i, i+1)
	if r.talker == m {
		r.talker = nil
	}
	for _, o := range r.members {
		if !r.quiet {
			o.cue.queue(CueLeave)
		}
	}
	n := len(r.members)
	var stop, stopped chan struct{}
	if n == 0 {
		stop, stopped = r.stop, r.stopped
		r.stop, r.stopped = nil, nil
	}
	r.mu.Unlock()
	r.log.Info("room member left", "user", m.user, "call_id", m.call, "members", n)
	if stop != nil {
		close(stop)
		<-stopped
	}
	if r.onLeave != nil {
		r.onLeave(m)
	}
}

// run is the room's ticker goroutine.
func (r *Room) run(stop, stopped chan struct{}) {
	defer close(stopped)
	t := time.NewTicker(frameDur)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			r.tick(now)
			if r.onTick != nil {
				r.onTick(now)
			}
		}
	}
}

// tick mixes one frame for every member and sends it.
func (r *Room) tick(now time.Time) {
	r.mu.Lock()
	members := append(r.scrach[:0], r.members...)
	r.scrach = members
	talker := r.talker
	rate := rateOf(members)
	// Cues are taken under the lock that queues them.
	for _, m := range members {
		m.cueNow = m.cue.next(m.cueBuf(rate), rate)
	}
	r.mu.Unlock()
	r.mix.mixFrame(members, rate, r.gated, talker, now)
}

// rateOf returns the mixing rate: 16 kHz when a member speaks G.722, or 8.
func rateOf(members []*Member) int {
	for _, m := range members {
		if m.rate == 16000 {
			return 16000
		}
	}
	return 8000
}
