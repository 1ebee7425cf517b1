package media

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/pion/sdp/v3"
)

func TestNewSessionsChecks(t *testing.T) {
	open := func() (bridge, error) { return newFakeBridge(), nil }
	tests := []struct {
		name  string
		open  func() (bridge, error)
		addr  netip.Addr
		prefs []string
		opts  []SessionsOption
	}{
		{name: "no opener", addr: relayAddr, prefs: defaultPrefs},
		{name: "no address", open: open, prefs: defaultPrefs},
		{name: "no codec", open: open, addr: relayAddr},
		{name: "only telephone-event", open: open, addr: relayAddr, prefs: []string{"telephone-event"}},
		{name: "nil logger", open: open, addr: relayAddr, prefs: defaultPrefs, opts: []SessionsOption{WithSessionsLogger(nil)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewSessions(tc.open, tc.addr, tc.prefs, tc.opts...); err == nil {
				t.Error("accepted")
			}
		})
	}
	if _, err := NewSessions(open, relayAddr, defaultPrefs, WithSessionsLogger(slog.New(slog.DiscardHandler))); err != nil {
		t.Error(err)
	}
	if _, err := NewSessions(open, netip.IPv4Unspecified(), defaultPrefs); err != nil {
		t.Errorf("every address (per-side SDP addresses) refused: %v", err)
	}
	if _, err := NewRelaySessions(nil, relayAddr, defaultPrefs); err == nil {
		t.Error("nil relay accepted")
	}
}

func TestSessionsNewErrors(t *testing.T) {
	ss, err := NewSessions(func() (bridge, error) { return nil, ErrPortsExhausted }, relayAddr, defaultPrefs)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ss.New()
	if !errors.Is(err, ErrPortsExhausted) {
		t.Fatalf("err = %v, want ErrPortsExhausted", err)
	}
	checkStatus(t, err, 503)

	ss, err = NewSessions(func() (bridge, error) { return nil, nil }, relayAddr, defaultPrefs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.New(); err == nil {
		t.Error("a nil bridge made a session")
	}
}

func TestSessionsDistinctIDs(t *testing.T) {
	ss, err := NewSessions(func() (bridge, error) { return newFakeBridge(), nil }, relayAddr, defaultPrefs)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ss.New()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.legs[SideA].id == s.legs[SideB].id {
		t.Errorf("both legs have session id %d", s.legs[SideA].id)
	}
}

// TestRelaySessions runs Sessions on a real relay: the SDP carries the
// bridge's ports, and a relay out of ports gives 503.
func TestRelaySessions(t *testing.T) {
	// Two RTP/RTCP pairs: one bridge's worth.
	pool, err := NewPortPool(23100, 23103)
	if err != nil {
		t.Fatal(err)
	}
	loopback := netip.MustParseAddr("127.0.0.1")
	r, err := NewRelay(pool, loopback, WithRelayWorkers(1))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Error(err)
		}
	}()

	ss, err := NewRelaySessions(r, loopback, defaultPrefs)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ss.New()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	out, err := s.Offer(SideA, readB2B(t, "sipp_uac_offer.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(out); err != nil {
		t.Fatal(err)
	}
	if got, want := sd.MediaDescriptions[0].MediaName.Port.Value, s.br.Port(SideB); got != want || got < 23100 || got > 23102 {
		t.Errorf("offer to the callee has port %d, want the bridge's %d", got, want)
	}

	_, err = ss.New()
	if !errors.Is(err, ErrPortsExhausted) {
		t.Fatalf("err = %v, want ErrPortsExhausted", err)
	}
	checkStatus(t, err, 503)
}
