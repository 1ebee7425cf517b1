package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/parley-sip/parley/media/room"
)

// Rooms is what the API reads and changes of the conference and
// push-to-talk rooms (dialog/service/rooms.Directory).
type Rooms interface {
	// Rooms lists every room by number, with its members, floor and queue.
	Rooms() []room.Info
	// SetMuted mutes or unmutes a user in a room; an error means no such
	// room or no such member.
	SetMuted(number, user string, muted bool) error
}

// MuteBody is the body of POST /api/rooms/{number}/members/{user}/mute.
type MuteBody struct {
	Muted *bool `json:"muted"`
}

// WithRooms makes /api/rooms list the rooms of r and mute their members.
// Without it (no rooms configured) /api/rooms is not served: 404, and the
// dashboard shows no rooms section.
func WithRooms(r Rooms) Option {
	return func(s *Server) error {
		if r == nil {
			return fmt.Errorf("%w: nil Rooms", ErrBadOption)
		}
		s.rooms = r
		return nil
	}
}

// maxMuteBody bounds the mute request's body.
const maxMuteBody = 1024

// registerRooms adds the rooms to the API:
//
//	GET  /api/rooms                                rooms by number: members, floor, queue
//	POST /api/rooms/{number}/members/{user}/mute   {"muted":true|false}: 204, 404, or 400
//
// The POST changes state, so it needs the admin token (checkAccess).
func registerRooms(mux *http.ServeMux, rooms Rooms) {
	if rooms == nil {
		return
	}
	mux.HandleFunc("GET /api/rooms", func(w http.ResponseWriter, _ *http.Request) {
		list := rooms.Rooms()
		if list == nil {
			list = []room.Info{}
		}
		writeJSON(w, http.StatusOK, list)
	})
	mux.HandleFunc("POST /api/rooms/{number}/members/{user}/mute", func(w http.ResponseWriter, r *http.Request) {
		var body MuteBody
		data, err := io.ReadAll(io.LimitReader(r.Body, maxMuteBody+1))
		if err != nil || len(data) > maxMuteBody || json.Unmarshal(data, &body) != nil || body.Muted == nil {
			writeError(w, http.StatusBadRequest, `want a JSON body {"muted":true} or {"muted":false}`)
			return
		}
		number, user := r.PathValue("number"), r.PathValue("user")
		if err := rooms.SetMuted(number, user, *body.Muted); err != nil {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no member %q in room %q", user, number))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
