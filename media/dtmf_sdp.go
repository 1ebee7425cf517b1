package media

import "slices"

// This file is the SDP half of DTMF interworking: which side negotiates
// telephone-event (RFC 4733) with parley, as each side's DTMFMode says,
// and what the bridge is told of it. parley offers and answers
// telephone-event to each phone on its own terms, not only as the other
// phone did, so that a phone that sends events keeps sending them when the
// other phone lacks them; the bridge converts.

// eventBridge is the part of the relay's Bridge that converts DTMF. A
// bridge without it (a test's fake) relays events as they come.
type eventBridge interface {
	SetEvents(pts, clocks [2]int)
	SendEvent(to Side, ev Event) error
	OnEvent(f func(from Side, ev Event))
}

// sideEvents is the telephone-event a side negotiated: its payload type,
// -1 for none, and its clock rate.
type sideEvents struct {
	pt    int
	clock int
}

var noEvents = sideEvents{pt: -1, clock: 8000}

// splitEvents returns formats without telephone-event, and the
// telephone-event ones.
func splitEvents(formats []format) (codecs, events []format) {
	for _, f := range formats {
		if f.matches(TelephoneEvent) {
			events = append(events, f)
		} else {
			codecs = append(codecs, f)
		}
	}
	return codecs, events
}

// eventsOffered returns the formats parley offers side to, given the
// offerer's formats: without telephone-event for a side in DTMFInfo, with
// it added for a side in DTMFEvents whose offerer had none (one per codec
// clock rate, on free dynamic payload types, 101 first), as they are for
// DTMFAuto. The caller holds s.mu.
func (s *Session) eventsOffered(to Side, formats []format) []format {
	codecs, events := splitEvents(formats)
	switch s.dtmfMode[to] {
	case DTMFInfo:
		return codecs
	case DTMFEvents:
		if len(events) > 0 || !hasPref(s.prefs, TelephoneEvent) {
			return formats
		}
		// One per codec clock rate, as Linphone offers them: the answerer
		// keeps the one at its codec's rate (RFC 4733 §2.1).
		out := slices.Clone(formats)
		var clocks []int
		for _, f := range codecs {
			if slices.Contains(clocks, f.clock) {
				continue
			}
			clocks = append(clocks, f.clock)
			pt, ok := freeDynamicPT(out)
			if !ok {
				break
			}
			out = append(out, format{pt: pt, name: TelephoneEvent, clock: f.clock, fmtp: "0-16"})
		}
		return out
	}
	return formats
}

// freeDynamicPT returns a dynamic payload type formats do not use, 101
// first as most phones use it.
func freeDynamicPT(formats []format) (uint8, bool) {
	used := func(pt uint8) bool {
		return slices.ContainsFunc(formats, func(f format) bool { return f.pt == pt })
	}
	if !used(101) {
		return 101, true
	}
	for pt := uint8(96); pt <= 127; pt++ {
		if !used(pt) {
			return pt, true
		}
	}
	return 0, false
}

// eventsAnswered settles telephone-event for the exchange of ro and ra:
// the answerer uses what its answer kept; the offerer gets its own
// telephone-event back in parley's answer whenever it offered one and is
// not in DTMFInfo, even if the answerer's answer lacked it (parley then
// converts). It returns the formats of parley's answer to the offerer. The
// caller holds s.mu.
func (s *Session) eventsAnswered(ro *relayOffer, ra *relayAnswer) []format {
	codecs, answered := splitEvents(ra.formats)
	answerer := ro.from.Other()
	s.events[answerer] = noEvents
	if len(answered) > 0 {
		s.events[answerer] = sideEvents{pt: int(answered[0].pt), clock: answered[0].clock}
	}
	s.events[ro.from] = noEvents
	if s.dtmfMode[ro.from] == DTMFInfo || len(ro.events) == 0 {
		return codecs
	}
	// Linphone offers one per clock rate: the codec's is the one that fits.
	te := ro.events[0]
	for _, f := range ro.events {
		if f.clock == ra.clock {
			te = f
			break
		}
	}
	s.events[ro.from] = sideEvents{pt: int(te.pt), clock: te.clock}
	return append(codecs, te)
}

// tellEvents tells the bridge what each side negotiated. The caller holds
// s.mu.
func (s *Session) tellEvents() {
	eb, ok := s.br.(eventBridge)
	if !ok {
		return
	}
	eb.SetEvents([2]int{s.events[SideA].pt, s.events[SideB].pt}, [2]int{s.events[SideA].clock, s.events[SideB].clock})
}

// SetDTMFMode sets how side's phone sends and receives keys (its user's
// dtmf_mode); it applies from the next offer. The default is DTMFAuto.
func (s *Session) SetDTMFMode(side Side, m DTMFMode) {
	if side != SideA && side != SideB {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dtmfMode[side] = ParseDTMFMode(string(m))
}

// UsesEvents reports whether side negotiated telephone-event in the last
// completed offer/answer, so keys go to it as RFC 4733 events rather than
// SIP INFO.
func (s *Session) UsesEvents(side Side) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.events[side].pt >= 0
}

// SendDTMF sends key ev to side to as RFC 4733 events (Bridge.SendEvent).
func (s *Session) SendDTMF(to Side, ev Event) error {
	eb, ok := s.br.(eventBridge)
	if !ok {
		return ErrNoEvents
	}
	return eb.SendEvent(to, ev)
}

// OnDTMF registers f to be told each key that arrives as RFC 4733 events
// from a side whose other side does not use them (Bridge.OnEvent).
func (s *Session) OnDTMF(f func(from Side, ev Event)) {
	if eb, ok := s.br.(eventBridge); ok {
		eb.OnEvent(f)
	}
}
