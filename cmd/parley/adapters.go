package main

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/media"
	"github.com/parley-sip/parley/registrar"
)

// The adapters below plug the registrar's, media's and dialog's types into
// the small interfaces the other packages define, so that none of the three
// imports another.

// authenticator adapts the registrar's Digest to dialog.Authenticator.
type authenticator struct{ d *registrar.Digest }

func (a authenticator) Authenticate(req *sip.Request, code int) (string, *sip.Response, bool) {
	id, res, ok := a.d.Authenticate(req, code)
	return id.User, res, ok
}

func (a authenticator) Precheck(req *sip.Request, code int) (*sip.Response, bool) {
	return a.d.Precheck(req, code)
}

func (a authenticator) IsUser(user string) bool { return a.d.IsUser(user) }

// relayMedia adapts media.Sessions to dialog.Media.
type relayMedia struct{ s *media.Sessions }

func (m relayMedia) NewSession() (dialog.MediaSession, error) {
	sess, err := m.s.New()
	if err != nil {
		return nil, err
	}
	return mediaSession{sess}, nil
}

// NewSessionFor opens a session whose sides are in the IP families of the
// caller's and the callee's phone.
func (m relayMedia) NewSessionFor(caller, callee netip.Addr) (dialog.MediaSession, error) {
	sess, err := m.s.NewFor(caller, callee)
	if err != nil {
		return nil, err
	}
	return mediaSession{sess}, nil
}

// Restore rebuilds a session from its checkpoint on the same relay ports.
func (m relayMedia) Restore(data []byte) (dialog.MediaSession, error) {
	sess, err := m.s.Restore(data)
	if err != nil {
		return nil, err
	}
	return mediaSession{sess}, nil
}

// Move rebuilds a session from its checkpoint on new relay ports.
func (m relayMedia) Move(data []byte) (dialog.MediaSession, error) {
	sess, err := m.s.Move(data)
	if err != nil {
		return nil, err
	}
	return mediaSession{sess}, nil
}

// mediaSession adapts media.Session to dialog.MediaSession.
type mediaSession struct{ s *media.Session }

func side(fromCaller bool) media.Side {
	if fromCaller {
		return media.SideA
	}
	return media.SideB
}

func (m mediaSession) Offer(fromCaller bool, sdp []byte) ([]byte, error) {
	return m.s.Offer(side(fromCaller), sdp)
}

func (m mediaSession) Answer(fromCaller bool, sdp []byte) ([]byte, error) {
	return m.s.Answer(side(fromCaller), sdp)
}

func (m mediaSession) OnHold() bool { return m.s.OnHold() }
func (m mediaSession) Current(toCaller bool) []byte {
	return m.s.Current(side(toCaller))
}
func (m mediaSession) Unchanged(fromCaller bool, sdp []byte) bool {
	return m.s.Unchanged(side(fromCaller), sdp)
}
func (m mediaSession) OnTimeout(f func())            { m.s.OnTimeout(f) }
func (m mediaSession) CheckpointState() (any, error) { return m.s.State() }
func (m mediaSession) Reoffered(fromCaller bool, answer []byte) error {
	return m.s.Reoffered(side(fromCaller), answer)
}
func (m mediaSession) Close() error { return m.s.Close() }

// PhoneChanged tells the relay another phone took a leg's place.
func (m mediaSession) PhoneChanged(toCaller bool) { m.s.PhoneChanged(side(toCaller)) }

// SetDTMFMode, UsesEvents, SendDTMF and OnDTMF convert keys between RFC
// 4733 events and SIP INFO (media.Session.SendDTMF and friends).
func (m mediaSession) SetDTMFMode(toCaller bool, mode string) {
	m.s.SetDTMFMode(side(toCaller), media.ParseDTMFMode(mode))
}
func (m mediaSession) UsesEvents(caller bool) bool { return m.s.UsesEvents(side(caller)) }
func (m mediaSession) SendDTMF(toCaller bool, code uint8, d time.Duration) error {
	return m.s.SendDTMF(side(toCaller), media.Event{Code: code, Duration: d})
}
func (m mediaSession) OnDTMF(f func(fromCaller bool, code uint8, d time.Duration)) {
	m.s.OnDTMF(func(from media.Side, ev media.Event) { f(from == media.SideA, ev.Code, ev.Duration) })
}

// SetSRTP sets one leg's users[].srtp; "" keeps rtp.srtp's
// (media.Session.SetSRTPPolicy).
func (m mediaSession) SetSRTP(toCaller bool, policy string) {
	if p, ok := media.ParseSRTPPolicy(policy); ok && policy != "" {
		m.s.SetSRTPPolicy(side(toCaller), p)
	}
}

// SetAddress and Addressed announce, per leg, the local address facing
// its phone when rtp.address is "" (media.Session.SetAddress).
func (m mediaSession) SetAddress(toCaller bool, addr netip.Addr) {
	m.s.SetAddress(side(toCaller), addr)
}
func (m mediaSession) Addressed(toCaller bool, addr netip.Addr) []byte {
	return m.s.Addressed(side(toCaller), addr)
}

func (m mediaSession) Quality() dialog.MediaQuality {
	st := m.s.Stats()
	return dialog.MediaQuality{
		Codec:   m.s.Codec(),
		Packets: st.A.Packets + st.B.Packets,
		Lost:    st.A.Lost + st.B.Lost,
		Jitter:  max(st.A.Jitter, st.B.Jitter),
		// SRTP per leg (rtp.srtp).
		CallerSRTP:   st.A.SRTP,
		CalleeSRTP:   st.B.SRTP,
		SRTPFailures: st.A.SRTPFailures + st.B.SRTPFailures,
	}
}

// pinger adapts dialog.Server.Ping to registrar.Pinger.
type pinger struct {
	mu sync.Mutex
	s  *dialog.Server
}

func (p *pinger) set(s *dialog.Server) {
	p.mu.Lock()
	p.s = s
	p.mu.Unlock()
}

func (p *pinger) Ping(ctx context.Context, b registrar.Binding) (time.Duration, error) {
	p.mu.Lock()
	s := p.s
	p.mu.Unlock()
	if s == nil {
		return 0, errors.New("SIP server not ready")
	}
	return s.Ping(ctx, b.Contact, b.Source, b.Transport)
}

// BindingsChanged tells the SIP server's subscribers that user's
// registrations changed (registrar.WithBindingObserver).
func (p *pinger) BindingsChanged(user string) {
	p.mu.Lock()
	s := p.s
	p.mu.Unlock()
	if s != nil {
		s.UserChanged(user)
	}
}

// locator adapts the registrar to dialog.Locator. In a cluster (cluster
// set: store.redis) it says which node holds each phone's flow.
type locator struct {
	r       *registrar.Registrar
	cluster bool
}

func (l locator) Lookup(user string) []dialog.Contact {
	bs := l.r.Lookup(user)
	out := make([]dialog.Contact, 0, len(bs))
	for _, b := range bs {
		ct := dialog.Contact{URI: b.Contact, Dest: b.Source, Transport: b.Transport}
		if l.cluster {
			ct.Node, ct.NodeAddr = b.Node, b.NodeAddr
		}
		out = append(out, ct)
	}
	return out
}
