package config

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// Room modes (services.rooms[].mode).
const (
	// RoomConference mixes everyone: each member hears all the others.
	RoomConference = "conference"
	// RoomPTT is push-to-talk: only the member holding the floor is heard.
	RoomPTT = "ptt"
)

// Room is one room of services.rooms.
type Room struct {
	// Mode is conference or ptt.
	Mode string `yaml:"mode"`
	// FloorTimeout (ptt) releases the floor when its holder has sent no
	// voice for that long; 0 never does.
	FloorTimeout time.Duration `yaml:"floor_timeout"`
	// MaxTalk (ptt) releases the floor when its holder has held it that
	// long; 0 never does.
	MaxTalk time.Duration `yaml:"max_talk"`
}

// TonePrefix starts a services.playback value that names a tone,
// tone:HZ, instead of a WAV file.
const TonePrefix = "tone:"

// validateRooms checks services.rooms and services.playback: numbers that
// are user parts, and not a user's or the echo's.
func (c *Config) validateRooms(users map[string]bool) error {
	taken := func(key, n string) error {
		if !validUser(n) {
			return bad(key, "%q is not a valid user part", n)
		}
		if users[n] {
			return bad(key, "%q is also a user", n)
		}
		if n == c.Services.Echo {
			return bad(key, "%q is also services.echo", n)
		}
		return nil
	}
	for _, n := range sortedKeys(c.Services.Rooms) {
		r := c.Services.Rooms[n]
		key := "services.rooms." + n
		if err := taken(key, n); err != nil {
			return err
		}
		switch r.Mode {
		case RoomConference, RoomPTT:
		default:
			return bad(key+".mode", "%q: want conference or ptt", r.Mode)
		}
		if r.FloorTimeout < 0 {
			return bad(key+".floor_timeout", "must not be negative")
		}
		if r.MaxTalk < 0 {
			return bad(key+".max_talk", "must not be negative")
		}
		if r.Mode != RoomPTT && (r.FloorTimeout != 0 || r.MaxTalk != 0) {
			return bad(key+".mode", "floor_timeout and max_talk need mode ptt")
		}
	}
	for _, n := range sortedKeys(c.Services.Playback) {
		v := c.Services.Playback[n]
		key := "services.playback." + n
		if err := taken(key, n); err != nil {
			return err
		}
		if _, ok := c.Services.Rooms[n]; ok {
			return bad(key, "%q is also a room", n)
		}
		if hz, ok := strings.CutPrefix(v, TonePrefix); ok {
			f, err := strconv.ParseFloat(hz, 64)
			if err != nil || f < 20 || f > 7000 {
				return bad(key, "%q: want tone:HZ with HZ from 20 to 7000", v)
			}
			continue
		}
		if v == "" {
			return bad(key, "want a WAV file path or tone:HZ")
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
