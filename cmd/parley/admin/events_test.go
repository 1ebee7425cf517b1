package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/parley-sip/parley/cmd/parley/admin"
	"github.com/parley-sip/parley/cmd/parley/admin/admintest"
)

// sseEvent is one server-sent event.
type sseEvent struct {
	Name string
	Data string
}

// stream is an open GET /api/events.
type stream struct {
	res    *http.Response
	events chan sseEvent
	done   chan error
	cancel context.CancelFunc
}

// openStream GETs url (an /api/events) and parses its events in the
// background until the body ends; close ends it.
func openStream(t *testing.T, url string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", url, err)
	}
	s := &stream{res: res, events: make(chan sseEvent, 64), done: make(chan error, 1), cancel: cancel}
	if res.StatusCode != http.StatusOK {
		close(s.events)
		s.done <- nil
		return s
	}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<16), 1<<22)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Name != "" || ev.Data != "" {
					s.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.Name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.Data += strings.TrimPrefix(line, "data: ")
			}
		}
		s.done <- sc.Err()
	}()
	return s
}

func (s *stream) close() {
	s.cancel()
	s.res.Body.Close()
	<-s.done
}

// next returns the next snapshot within d.
func (s *stream) next(t *testing.T, d time.Duration) admin.DashboardState {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatalf("the event stream ended")
			}
			if ev.Name != "snapshot" {
				continue
			}
			var st admin.DashboardState
			if err := json.Unmarshal([]byte(ev.Data), &st); err != nil {
				t.Fatalf("snapshot is not a DashboardState (%v): %s", err, ev.Data)
			}
			var raw map[string]json.RawMessage
			_ = json.Unmarshal([]byte(ev.Data), &raw)
			if _, ok := raw["rooms"]; ok && st.Rooms == nil {
				t.Errorf("snapshot has rooms: null; want the key absent without rooms: %s", ev.Data)
			}
			return st
		case <-timeout:
			t.Fatalf("no snapshot within %v", d)
		}
	}
}

// TestEventsSnapshot: GET /api/events is a text/event-stream whose first
// event is a snapshot of the calls (oldest first) and registrations (by
// user) with the server's time and no rooms (parley has no /api/rooms
// here); a change is sent within an interval, and nothing else comes
// while nothing changes.
func TestEventsSnapshot(t *testing.T) {
	calls := admintest.SampleCalls()
	srv, err := admin.New("", admin.WithCalls(calls), admin.WithRegistrations(admintest.SampleRegistrations(time.Now())), admin.WithToken("tok"))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	s := openStream(t, ts.URL+"/api/events")
	defer s.close()
	if s.res.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/events: %d", s.res.StatusCode)
	}
	if ct := s.res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q, want text/event-stream", ct)
	}
	if cc := s.res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	st := s.next(t, 2*time.Second)
	if d := time.Since(st.Time); d < 0 || d > 2*time.Second {
		t.Errorf("snapshot time %v is not the server's clock now", st.Time)
	}
	if st.CallsTotal != 2 || len(st.Calls) != 2 || st.Calls[0].ID != "aaaa" || st.Calls[1].ID != "bbbb" {
		t.Errorf("snapshot calls: total %d %+v; want aaaa then bbbb", st.CallsTotal, st.Calls)
	}
	if m := st.Calls[0].Media; m == nil || m.Codec != "PCMU" || m.Lost != 5 || m.Jitter != 2500*time.Microsecond {
		t.Errorf("snapshot call aaaa media %+v; want PCMU, 5 lost, 2.5ms jitter", m)
	}
	if st.RegistrationsTotal != 2 || len(st.Registrations) != 2 || st.Registrations[0].User != "1001" || st.Registrations[1].User != "1002" {
		t.Errorf("snapshot registrations: total %d %+v; want 1001 then 1002", st.RegistrationsTotal, st.Registrations)
	}
	if st.Rooms != nil {
		t.Errorf("snapshot rooms %s without GET /api/rooms; want none", st.Rooms)
	}

	// No change, no event (the keepalive is 10 s away).
	select {
	case ev := <-s.events:
		t.Errorf("an event without a change: %+v", ev)
	case <-time.After(1200 * time.Millisecond):
	}

	changed := time.Now()
	calls.Hangup("aaaa")
	st = s.next(t, 2*time.Second)
	if d := time.Since(changed); d > time.Second {
		t.Errorf("the change came after %v; want it within an interval (500 ms)", d)
	}
	if st.CallsTotal != 1 || len(st.Calls) != 1 || st.Calls[0].ID != "bbbb" {
		t.Errorf("snapshot after the hangup: %+v; want only bbbb", st.Calls)
	}
}

// TestEventsBounded: at most 16 streams are open at once; the next gets
// 503 with Retry-After and a JSON error, and a stream that closes frees
// its slot.
func TestEventsBounded(t *testing.T) {
	srv, err := admin.New("", admin.WithCalls(admintest.SampleCalls()))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	var open []*stream
	defer func() {
		for _, s := range open {
			s.close()
		}
	}()
	for i := range 16 {
		s := openStream(t, ts.URL+"/api/events")
		open = append(open, s)
		if s.res.StatusCode != http.StatusOK {
			t.Fatalf("stream %d: %d, want 200", i+1, s.res.StatusCode)
		}
		s.next(t, 2*time.Second)
	}
	over := openStream(t, ts.URL+"/api/events")
	body, _ := io.ReadAll(over.res.Body)
	over.close()
	if over.res.StatusCode != http.StatusServiceUnavailable || over.res.Header.Get("Retry-After") == "" {
		t.Errorf("stream 17: %d Retry-After %q; want 503 with Retry-After", over.res.StatusCode, over.res.Header.Get("Retry-After"))
	}
	var e admin.ErrorBody
	if json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, "16") {
		t.Errorf("stream 17: body %s; want a JSON error naming the limit", body)
	}

	open[0].close()
	open = open[1:]
	deadline := time.Now().Add(2 * time.Second)
	for {
		s := openStream(t, ts.URL+"/api/events")
		if s.res.StatusCode == http.StatusOK {
			open = append(open, s)
			break
		}
		s.close()
		if time.Now().After(deadline) {
			t.Fatalf("a closed stream's slot was not freed: %d", s.res.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEventsEndOnShutdown: when Serve's context ends, every open stream
// ends at once (the body reaches EOF) and Serve returns well before its
// two seconds of grace; a stream asked for afterwards is refused. The
// goroutine-leak check of TestMain sees that nothing stays behind.
func TestEventsEndOnShutdown(t *testing.T) {
	srv, err := admin.New("127.0.0.1:0", admin.WithCalls(admintest.SampleCalls()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()

	var streams []*stream
	for range 3 {
		s := openStream(t, "http://"+srv.Addr()+"/api/events")
		if s.res.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/events: %d", s.res.StatusCode)
		}
		s.next(t, 2*time.Second)
		streams = append(streams, s)
	}
	stop := time.Now()
	cancel()
	for i, s := range streams {
		select {
		case err := <-s.done:
			if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Logf("stream %d ended with %v", i, err)
			}
			s.done <- err // for close
		case <-time.After(time.Second):
			t.Errorf("stream %d still open a second after shutdown", i)
		}
		s.close()
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		if d := time.Since(stop); d > time.Second {
			t.Errorf("Serve returned %v after its context ended; the streams held it", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}

// TestEventsStreamsOfHandlerEnd: without an address, Serve's end still
// ends the streams that Handler serves elsewhere.
func TestEventsStreamsOfHandlerEnd(t *testing.T) {
	srv, err := admin.New("")
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	s := openStream(t, ts.URL+"/api/events")
	s.next(t, 2*time.Second)
	cancel()
	select {
	case err := <-s.done:
		s.done <- err
	case <-time.After(2 * time.Second):
		t.Error("the stream did not end with Serve")
	}
	s.close()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	after := openStream(t, ts.URL+"/api/events")
	after.close()
	if after.res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a stream after shutdown: %d, want 503", after.res.StatusCode)
	}
}

// TestEventsMethods: /api/events takes GET and HEAD (the headers alone, at
// once); another method (with the token) is 405 naming what it takes, and
// without the token 401 first. A foreign Host gets 403, as everywhere.
func TestEventsMethods(t *testing.T) {
	srv, err := admin.New("", admin.WithToken("tok"))
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	for _, tc := range []struct {
		auth string
		code int
	}{{"Bearer tok", http.StatusMethodNotAllowed}, {"", http.StatusUnauthorized}} {
		rec := doWith(t, h, http.MethodPost, "/api/events", "localhost:9060", tc.auth)
		if rec.Code != tc.code {
			t.Errorf("POST /api/events (Authorization %q): %d %s, want %d", tc.auth, rec.Code, rec.Body, tc.code)
		}
		if tc.code == http.StatusMethodNotAllowed && rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("POST /api/events: Allow %q", rec.Header().Get("Allow"))
		}
	}
	if rec := doWith(t, h, http.MethodHead, "/api/events", "localhost:9060", ""); rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/event-stream" {
		t.Errorf("HEAD /api/events: %d %q, want 200 text/event-stream at once", rec.Code, rec.Header().Get("Content-Type"))
	}
	if rec := doWith(t, h, http.MethodGet, "/api/events", "evil.example:80", ""); rec.Code != http.StatusForbidden {
		t.Errorf("GET /api/events with a foreign Host: %d, want 403", rec.Code)
	}
}
