package config

import (
	"strings"
	"testing"
	"time"
)

func TestRoomsAndPlayback(t *testing.T) {
	c, err := Parse([]byte(`services:
  rooms:
    "800": {mode: conference}
    "801": {mode: ptt, floor_timeout: 30s, max_talk: 60s}
  playback:
    "601": "tone:440"
    "602": /usr/share/sounds/hello.wav
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Services.Rooms["801"]; r.Mode != RoomPTT || r.FloorTimeout != 30*time.Second || r.MaxTalk != time.Minute {
		t.Errorf("801 = %+v", r)
	}
	if c.Services.Playback["601"] != "tone:440" || len(c.Services.Rooms) != 2 {
		t.Errorf("services = %+v", c.Services)
	}
}

func TestBadRoomNamesKey(t *testing.T) {
	for _, tt := range []struct{ name, yaml, key string }{
		{"bad mode", "services:\n  rooms:\n    '800': {mode: party}\n", "services.rooms.800.mode"},
		{"no mode", "services:\n  rooms:\n    '800': {}\n", "services.rooms.800.mode"},
		{"negative timeout", "services:\n  rooms:\n    '801': {mode: ptt, floor_timeout: -1s}\n", "services.rooms.801.floor_timeout"},
		{"floor keys in a conference", "services:\n  rooms:\n    '800': {mode: conference, max_talk: 10s}\n", "services.rooms.800.mode"},
		{"unknown room key", "services:\n  rooms:\n    '800': {mode: ptt, floor: 3}\n", "services.rooms.800.floor"},
		{"room is a user", "users:\n  - username: '800'\nservices:\n  rooms:\n    '800': {mode: ptt}\n", "services.rooms.800"},
		{"room is the echo", "services:\n  echo: '800'\n  rooms:\n    '800': {mode: ptt}\n", "services.rooms.800"},
		{"bad room number", "services:\n  rooms:\n    'a b': {mode: ptt}\n", "services.rooms.a b"},
		{"bad tone", "services:\n  playback:\n    '601': tone:loud\n", "services.playback.601"},
		{"tone too high", "services:\n  playback:\n    '601': tone:20000\n", "services.playback.601"},
		{"empty playback", "services:\n  playback:\n    '601': ''\n", "services.playback.601"},
		{"playback is a room", "services:\n  rooms:\n    '601': {mode: ptt}\n  playback:\n    '601': tone:440\n", "services.playback.601"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "test.yaml")
			if err == nil {
				t.Fatal("accepted a bad config")
			}
			if !strings.Contains(err.Error(), tt.key+":") && !strings.Contains(err.Error(), tt.key) {
				t.Fatalf("error %q does not name %s", err, tt.key)
			}
		})
	}
}

// A bare 0 turns a push-to-talk timeout off, as for every duration.
func TestRoomTimeoutsAcceptZero(t *testing.T) {
	c, err := Parse([]byte("services:\n  rooms:\n    '801': {mode: ptt, floor_timeout: 0, max_talk: 0}\n"), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Services.Rooms["801"]; r.FloorTimeout != 0 || r.MaxTalk != 0 {
		t.Errorf("801 = %+v", r)
	}
}
