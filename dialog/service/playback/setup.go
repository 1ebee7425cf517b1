// Package playback is the playback service (services.playback): parley
// answers a number itself and plays a WAV file or a tone to the caller.
// See README.md.
package playback

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/dialog/service"
	"github.com/parley-sip/parley/media/play"
)

func init() { service.Register("playback", setup) }

// setup reads services.playback (number to WAV path or tone:HZ); a WAV
// file that cannot be read is an error naming its key.
func setup(env service.Env) ([]service.Binding, error) {
	cfg := env.Config.Services.Playback
	numbers := make([]string, 0, len(cfg))
	for n := range cfg {
		numbers = append(numbers, n)
	}
	slices.Sort(numbers)
	var out []service.Binding
	for _, n := range numbers {
		key := "services.playback." + n
		sound, err := play.ParseSound(cfg[n])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		p, err := play.New(env.Ports, env.RTPAddress, env.Config.RTP.Codecs, sound,
			env.Log.With("component", "playback", "number", n))
		if err != nil {
			return nil, fmt.Errorf("%s: %w (rtp.codecs)", key, err)
		}
		out = append(out, service.Binding{Number: n, Service: Service{p}})
	}
	return out, nil
}

// Service answers calls to one playback number.
type Service struct{ p *play.Player }

// App is the service's name in call records (lastapp).
func (Service) App() string { return "Playback" }

// Start answers offer and starts playing (a player bound to one address).
func (s Service) Start(offer []byte) ([]byte, dialog.ServiceSession, error) {
	return s.StartAt(offer, netip.Addr{})
}

// StartAt answers offer, announcing local when the player binds every
// address, and starts playing. Errors carry the caller's SIP status.
func (s Service) StartAt(offer []byte, local netip.Addr) ([]byte, dialog.ServiceSession, error) {
	answer, sess, err := s.p.Start(offer, local)
	if err != nil {
		return nil, nil, err
	}
	return answer, sess, nil
}
