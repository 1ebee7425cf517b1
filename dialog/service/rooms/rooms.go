// Package rooms is the conference and push-to-talk rooms service
// (services.rooms): everyone who dials a room's number joins it. A
// conference mixes everyone; a push-to-talk room forwards only the member
// who holds the floor. The audio engine is package media/room; this
// package holds the rooms' setup, the floor and the directory the admin
// API reads. See README.md.
package rooms

import (
	"net/netip"

	"github.com/parley-sip/parley/config"
	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/media/room"
)

// Service is one room's number: it joins callers to the room.
type Service struct {
	mode string
	r    *room.Room
	ptt  *ptt // nil in a conference
}

// App is the room's name in call records (lastapp).
func (s *Service) App() string {
	if s.mode == config.RoomPTT {
		return "PTT"
	}
	return "Conference"
}

// Room returns the room's engine (paging builds on it).
func (s *Service) Room() *room.Room { return s.r }

// Start joins the caller of offer to the room; without a caller's user
// and call, as StartCall has them.
func (s *Service) Start(offer []byte) ([]byte, dialog.ServiceSession, error) {
	return s.StartCall(dialog.ServiceCall{Offer: offer})
}

// StartCall answers the caller's offer and joins them to the room. Its
// errors carry the SIP status the caller gets (400 bad SDP, 488 no codec
// the room mixes, 503 no free port, 486 the room is full).
func (s *Service) StartCall(c dialog.ServiceCall) ([]byte, dialog.ServiceSession, error) {
	local := c.Local
	if !local.IsValid() {
		local = netip.IPv4Unspecified()
	}
	answer, m, err := s.r.Join(c.Offer, local, c.From, c.CallID)
	if err != nil {
		return nil, nil, err
	}
	return answer, m, nil
}

// Info returns what the admin API shows of the room.
func (s *Service) Info(number string) room.Info {
	info := room.Info{Number: number, Mode: s.mode, Members: []room.MemberInfo{}, Queue: []string{}}
	for _, m := range s.r.Members() {
		info.Members = append(info.Members, m.Info())
	}
	if s.ptt != nil {
		info.Floor, info.Queue = s.ptt.state()
	}
	return info
}
