// Package echo is the echo service: parley answers the call itself,
// negotiates a codec, and sends every RTP packet back to the caller. See
// README.md.
package echo

import (
	"fmt"
	"net/netip"

	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/dialog/service"
	"github.com/parley-sip/parley/media"
)

func init() { service.Register("echo", setup) }

// setup reads services.echo (the number; empty turns the service off)
// and the rtp keys, and builds the service on the relay's port pool.
func setup(env service.Env) ([]service.Binding, error) {
	number := env.Config.Services.Echo
	if number == "" {
		return nil, nil
	}
	e, err := media.NewEcho(env.Ports, env.RTPAddress, env.Config.RTP.Codecs,
		media.WithEchoTimeout(env.Config.RTP.Timeout),
		media.WithEchoLogger(env.Log.With("component", "echo")))
	if err != nil {
		return nil, fmt.Errorf("services.echo: %w", err)
	}
	return []service.Binding{{Number: number, Service: Service{e}}}, nil
}

// Service answers calls with media.Echo.
type Service struct{ e *media.Echo }

// Start answers offer and starts echoing. Its errors carry the SIP status
// the caller gets (400 for bad SDP, 488 with no codec in common, 503 when
// the ports run out).
func (s Service) Start(offer []byte) ([]byte, dialog.ServiceSession, error) {
	answer, sess, err := s.e.Start(offer)
	if err != nil {
		return nil, nil, err
	}
	return answer, session{sess}, nil
}

// StartAt is Start for a caller facing local address local, which the
// answer announces when the echo binds every address (rtp.address "").
func (s Service) StartAt(offer []byte, local netip.Addr) ([]byte, dialog.ServiceSession, error) {
	answer, sess, err := s.e.StartAt(offer, local)
	if err != nil {
		return nil, nil, err
	}
	return answer, session{sess}, nil
}

// App names the echo service in call records (lastapp), as Asterisk's
// Echo application.
func (Service) App() string { return "Echo" }

// session is one echo call: media.EchoSession, telling the call's record
// its codec and the packets it echoed.
type session struct{ *media.EchoSession }

// Quality returns the codec and the RTP packets echoed so far.
func (s session) Quality() dialog.MediaQuality {
	return dialog.MediaQuality{Codec: s.Negotiated().Codec, Packets: s.Stats().Packets}
}
