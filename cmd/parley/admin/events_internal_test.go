package admin

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/registrar"
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

// TestEventsStalledClient: a client that stops reading is dropped once a
// write has waited writeTimeout, and its slot is free again; the server
// does not wait for it.
func TestEventsStalledClient(t *testing.T) {
	s, err := New("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Snapshots of 1 MB that change every time fill the socket buffers
	// after a few events.
	var n int
	big := strings.Repeat("x", 1<<20)
	s.feed = newFeed(func() DashboardState {
		n++
		return DashboardState{Calls: []dialog.Snapshot{{ID: fmt.Sprint(n), From: big}}, Registrations: []registrar.Binding{}}
	})
	s.feed.writeTimeout = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	defer func() {
		cancel()
		<-served
	}()

	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	fmt.Fprintf(conn, "GET /api/events HTTP/1.1\r\nHost: %s\r\n\r\n", s.Addr())
	deadline := time.Now().Add(5 * time.Second)
	for len(s.feed.slots) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // the stream has not started yet
	}
	if len(s.feed.slots) != 1 {
		t.Fatalf("the stream did not start: %d open", len(s.feed.slots))
	}
	start := time.Now()
	for len(s.feed.slots) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if len(s.feed.slots) != 0 {
		t.Fatalf("a client that reads nothing still holds its stream after %v", time.Since(start))
	}
	t.Logf("the stalled client was dropped %v after its stream started", time.Since(start).Round(10*time.Millisecond))
}
