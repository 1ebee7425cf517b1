package media

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
)

// Sessions makes the media Sessions of relayed calls: each opens a bridge
// and rewrites the call's SDP so that both sides send their RTP to parley.
type Sessions struct {
	open func() (bridge, error)
	// addr is announced in the SDP of every side of family fam, the
	// family of NewSessions' addr; invalid when the relay binds every
	// address and each side's is set (Session.SetAddress).
	addr netip.Addr
	fam  Family
	// addr6 is announced to IPv6 sides when fam is IPv4
	// (WithSessionsAddress6); invalid when none is fixed.
	addr6 netip.Addr
	prefs []string
	log   *slog.Logger
	// newID returns o= session ids; tests make it predictable.
	newID func() uint64
	// openAt opens a bridge on given ports, for Restore; nil when the
	// bridges' maker cannot.
	openAt func(ports [2]int) (bridge, error)
	// openFor and openAtFor are open and openAt with each side's family,
	// for NewFor and for checkpoints of mixed-family calls; nil when the
	// bridges' maker knows one family only.
	openFor   func(fams [2]Family) (bridge, error)
	openAtFor func(ports [2]int, fams [2]Family) (bridge, error)
	// policy is rtp.srtp (WithSRTP).
	policy SRTPPolicy
}

// SessionsOption configures Sessions. Options check their value and may
// fail.
type SessionsOption func(*Sessions) error

// WithSessionsLogger sets the logger sessions log to. The default discards.
func WithSessionsLogger(l *slog.Logger) SessionsOption {
	return func(s *Sessions) error {
		if l == nil {
			return errors.New("media: nil logger")
		}
		s.log = l
		return nil
	}
}

// withOpenAt lets Restore open bridges on given ports with openAt. It is
// not exported since only this package can write a bridge.
func withOpenAt(openAt func(ports [2]int) (bridge, error)) SessionsOption {
	return func(s *Sessions) error {
		if openAt == nil {
			return errors.New("media: nil openAt")
		}
		s.openAt = openAt
		return nil
	}
}

// WithSessionsAddress6 sets the address the SDP announces to a side whose
// bridge sockets are IPv6 (Sessions.NewFor), when NewSessions' addr is
// IPv4: normally the relay's WithRelayAddress6 address. The unspecified
// :: fixes none: each such side then announces what Session.SetAddress
// gave for it. NewRelaySessions sets the relay's.
func WithSessionsAddress6(addr netip.Addr) SessionsOption {
	return func(s *Sessions) error {
		if !addr.IsValid() || !addr.Is6() || addr.Is4In6() {
			return fmt.Errorf("media: relay IPv6 address %v is not an IPv6 address", addr)
		}
		s.addr6 = addr.WithZone("")
		if addr.IsUnspecified() {
			s.addr6 = netip.Addr{}
		}
		return nil
	}
}

// withOpenFor lets NewFor, Restore and Move open bridges whose sides are
// of given families.
func withOpenFor(openFor func(fams [2]Family) (bridge, error), openAtFor func(ports [2]int, fams [2]Family) (bridge, error)) SessionsOption {
	return func(s *Sessions) error {
		if openFor == nil || openAtFor == nil {
			return errors.New("media: nil openFor")
		}
		s.openFor, s.openAtFor = openFor, openAtFor
		return nil
	}
}

// NewSessions returns Sessions whose bridges come from open, announced at
// addr in the SDP parley writes, relaying the codecs of prefs (codec names,
// telephone-event among them, as in rtp.codecs). The unspecified address
// (0.0.0.0, for a relay bound to every address) fixes none: each Session
// then announces to each side the address SetAddress gave for it.
func NewSessions(open func() (bridge, error), addr netip.Addr, prefs []string, opts ...SessionsOption) (*Sessions, error) {
	if open == nil {
		return nil, errors.New("media: sessions need a way to open bridges")
	}
	addr = addr.Unmap()
	if !addr.IsValid() {
		return nil, fmt.Errorf("media: relay address %v is not an address", addr)
	}
	fam := FamilyOf(addr)
	if addr.IsUnspecified() {
		addr = netip.Addr{}
	}
	if !slices.ContainsFunc(prefs, func(p string) bool { return !strings.EqualFold(p, TelephoneEvent) }) {
		return nil, errors.New("media: relay needs at least one audio codec besides telephone-event")
	}
	s := &Sessions{
		open:  open,
		addr:  addr,
		fam:   fam,
		prefs: append([]string(nil), prefs...),
		log:   slog.New(slog.DiscardHandler),
		// Session ids stay below 2^62 so that parsers reading them as
		// signed 64-bit numbers cope (RFC 4566 §5.2 suggests NTP time).
		newID: func() uint64 { return rand.Uint64N(1 << 62) },
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// NewRelaySessions returns Sessions whose bridges r opens. See NewSessions
// for addr and prefs; addr is normally the relay's own address, 0.0.0.0
// for a relay bound to every address. IPv6 sides (NewFor) announce the
// relay's WithRelayAddress6 address unless WithSessionsAddress6 says
// another.
func NewRelaySessions(r *Relay, addr netip.Addr, prefs []string, opts ...SessionsOption) (*Sessions, error) {
	if r == nil {
		return nil, errors.New("media: sessions need a relay")
	}
	pre := []SessionsOption{withOpenFor(func(fams [2]Family) (bridge, error) {
		b, err := r.OpenFamily(fams[SideA], fams[SideB])
		if err != nil {
			return nil, err // its SIPStatus (503) stays visible
		}
		return b, nil
	}, func(ports [2]int, fams [2]Family) (bridge, error) {
		b, err := r.OpenAtFamily(ports, fams)
		if err != nil {
			return nil, err
		}
		return b, nil
	})}
	if r.addr6.IsValid() {
		pre = append(pre, WithSessionsAddress6(r.addr6))
	}
	openAt := withOpenAt(func(ports [2]int) (bridge, error) {
		b, err := r.OpenAt(ports)
		if err != nil {
			return nil, err
		}
		return b, nil
	})
	return NewSessions(func() (bridge, error) {
		b, err := r.Open()
		if err != nil {
			// Not wrapped: ErrPortsExhausted must keep its SIPStatus.
			return nil, err
		}
		return b, nil
	}, addr, prefs, append(append(pre, openAt), opts...)...)
}

// New opens a bridge for a call and returns its Session, which the caller
// must Close. When the relay is out of ports the error is the relay's, whose
// SIPStatus says 503.
func (s *Sessions) New() (*Session, error) {
	return s.newSession(s.open())
}

// NewFor is New for a call between phones at caller and callee: each side
// of the bridge binds on its phone's family (Relay.OpenFor), and its SDP
// announces an address of that family, IN IP4 or IN IP6. An invalid
// address, or a family the relay has no address of, gets the relay's own.
// Sessions whose bridges know one family only open as New does.
func (s *Sessions) NewFor(caller, callee netip.Addr) (*Session, error) {
	if s.openFor == nil {
		return s.New()
	}
	return s.newSession(s.openFor([2]Family{FamilyOf(caller), FamilyOf(callee)}))
}

// newSession makes the Session of a newly opened bridge.
func (s *Sessions) newSession(br bridge, err error) (*Session, error) {
	if err != nil {
		return nil, err
	}
	if br == nil {
		return nil, errors.New("media: relay opened no bridge")
	}
	sess := s.session(br)
	sess.legs[SideA].id = s.newID()
	sess.legs[SideB].id = s.newID()
	return sess, nil
}

// session makes a Session on br, each side announcing the fixed address
// for the family of its bridge sockets, if any.
func (s *Sessions) session(br bridge) *Session {
	sess := &Session{br: br, prefs: s.prefs, log: s.log, events: [2]sideEvents{noEvents, noEvents}, policy: [2]SRTPPolicy{s.policy, s.policy}}
	sess.dtmfMode = [2]DTMFMode{DTMFAuto, DTMFAuto}
	for side := range sess.fixed {
		sess.fixed[side] = s.fixedFor(br.Family(Side(side)))
	}
	return sess
}

// fixedFor returns the address announced to sides of family f, invalid if
// none is fixed.
func (s *Sessions) fixedFor(f Family) netip.Addr {
	switch {
	case f == FamilyDefault || f == s.fam:
		return s.addr
	case f == IPv6:
		return s.addr6
	}
	return netip.Addr{}
}
