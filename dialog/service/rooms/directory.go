package rooms

import (
	"errors"
	"slices"

	"github.com/parley-sip/parley/media/room"
)

// Errors of Directory.SetMuted; the admin API answers both with 404.
var (
	ErrNoRoom   = errors.New("rooms: no such room")
	ErrNoMember = errors.New("rooms: no such member in the room")
)

// Directory is every configured room by number: what the admin API lists
// and mutes through.
type Directory struct {
	rooms   map[string]*Service
	numbers []string // sorted
}

// Rooms returns every room, by number, with its members.
func (d *Directory) Rooms() []room.Info {
	out := make([]room.Info, 0, len(d.numbers))
	for _, n := range d.numbers {
		out = append(out, d.rooms[n].Info(n))
	}
	return out
}

// Room returns the room of number, or nil.
func (d *Directory) Room(number string) *Service { return d.rooms[number] }

// SetMuted mutes or unmutes user in room number (every call of the user
// in the room, if it joined twice).
func (d *Directory) SetMuted(number, user string, muted bool) error {
	s, ok := d.rooms[number]
	if !ok {
		return ErrNoRoom
	}
	found := false
	for _, m := range s.r.Members() {
		if m.User() == user {
			m.SetMuted(muted)
			found = true
		}
	}
	if !found {
		return ErrNoMember
	}
	return nil
}

func (d *Directory) add(number string, s *Service) {
	d.rooms[number] = s
	d.numbers = append(d.numbers, number)
	slices.Sort(d.numbers)
}
