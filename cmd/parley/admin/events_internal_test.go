package admin

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDashboardRooms: a snapshot carries the body of GET /api/rooms when
// that endpoint answers 200 with JSON, compacted, and has no rooms when it
// answers anything else, is not JSON or is larger than maxRoomsBody.
func TestDashboardRooms(t *testing.T) {
	const list = `[ {"number": "700", "mode": "ptt", "members": [{"user": "1001", "call": "c1", "muted": false, "talking": true}], "floor": "1001", "queue": ["1002"]} ]`
	tests := []struct {
		name string
		code int
		body string
		want string
	}{
		{"200 with a list", http.StatusOK, list, `[{"number":"700","mode":"ptt","members":[{"user":"1001","call":"c1","muted":false,"talking":true}],"floor":"1001","queue":["1002"]}]`},
		{"200 with none", http.StatusOK, `[]`, `[]`},
		{"404", http.StatusNotFound, `{"error":"no API endpoint /api/rooms"}`, ""},
		{"500", http.StatusInternalServerError, `{"error":"x"}`, ""},
		{"not JSON", http.StatusOK, `[{"number":`, ""},
		{"too large", http.StatusOK, `["` + strings.Repeat("x", maxRoomsBody) + `"]`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New("")
			if err != nil {
				t.Fatal(err)
			}
			mux := http.NewServeMux()
			mux.HandleFunc("GET /api/rooms", func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.code)
				_, _ = w.Write([]byte(tc.body))
			})
			s.api = mux
			st := s.dashboardState()
			if string(st.Rooms) != tc.want {
				t.Errorf("rooms %.200s, want %q", st.Rooms, tc.want)
			}
		})
	}
	// Without the endpoint, the API's own 404.
	s, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	if st := s.dashboardState(); st.Rooms != nil || st.Calls == nil || st.Registrations == nil {
		t.Errorf("a parley without /api/rooms: rooms %s calls %v registrations %v; want no rooms and empty lists", st.Rooms, st.Calls, st.Registrations)
	}
}

// TestSnapshotEvent: the snapshot event puts the server time first in the
// state's JSON object and ends with the blank line that ends an event.
func TestSnapshotEvent(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 30, 0, 5e8, time.UTC)
	got := string(snapshotEvent(now, []byte(`{"calls":[]}`)))
	want := "event: snapshot\ndata: {\"time\":\"2026-12-06T10:30:00.5Z\",\"calls\":[]}\n\n"
	if got != want {
		t.Errorf("snapshotEvent:\n%q\nwant\n%q", got, want)
	}
	if got := string(snapshotEvent(now, []byte(`{}`))); got != "event: snapshot\ndata: {\"time\":\"2026-12-06T10:30:00.5Z\"}\n\n" {
		t.Errorf("snapshotEvent of {}: %q", got)
	}
}
