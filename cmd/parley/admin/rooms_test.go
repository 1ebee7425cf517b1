package admin_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/parley-sip/parley/cmd/parley/admin"
	"github.com/parley-sip/parley/cmd/parley/admin/admintest"
	"github.com/parley-sip/parley/media/room"
)

// fakeRooms is one push-to-talk room with two members.
type fakeRooms struct{ info []room.Info }

func (f *fakeRooms) Rooms() []room.Info { return f.info }

func (f *fakeRooms) SetMuted(number, user string, muted bool) error {
	for i := range f.info {
		if f.info[i].Number != number {
			continue
		}
		for j := range f.info[i].Members {
			if f.info[i].Members[j].User == user {
				f.info[i].Members[j].Muted = muted
				return nil
			}
		}
	}
	return errors.New("no such member")
}

func newFakeRooms() *fakeRooms {
	return &fakeRooms{info: []room.Info{{
		Number: "801", Mode: "ptt", Floor: "1001", Queue: []string{"1002"},
		Members: []room.MemberInfo{{User: "1001", Call: "c1", Talking: true}, {User: "1002", Call: "c2"}},
	}}}
}

func post(t *testing.T, h http.Handler, path, body, auth string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	req.Host = "localhost:9060"
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestAPIRooms(t *testing.T) {
	rooms := newFakeRooms()
	h, _ := newTestAdmin(t, admintest.NewCalls(), admintest.NewRegistrations(), admin.WithRooms(rooms))
	rec := do(t, h, "GET", "/api/rooms")
	if rec.Code != 200 {
		t.Fatalf("GET /api/rooms: %d %s", rec.Code, rec.Body)
	}
	want := `[{"number":"801","mode":"ptt","members":[{"user":"1001","call":"c1","muted":false,"talking":true},{"user":"1002","call":"c2","muted":false,"talking":false}],"floor":"1001","queue":["1002"]}]`
	var compact bytes.Buffer
	if err := json.Compact(&compact, rec.Body.Bytes()); err != nil {
		t.Fatal(err)
	}
	if got := compact.String(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}

	path := "/api/rooms/801/members/1002/mute"
	if rec := post(t, h, path, `{"muted":true}`, ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("mute without the token: %d", rec.Code)
	}
	if rec := post(t, h, path, `{"muted":true}`, "Bearer "+testToken); rec.Code != http.StatusNoContent {
		t.Fatalf("mute: %d %s", rec.Code, rec.Body)
	}
	if !rooms.info[0].Members[1].Muted {
		t.Error("1002 is not muted")
	}
	if rec := post(t, h, path, `{"mute":true}`, "Bearer "+testToken); rec.Code != http.StatusBadRequest {
		t.Errorf("bad body: %d", rec.Code)
	}
	if rec := post(t, h, "/api/rooms/801/members/9/mute", `{"muted":false}`, "Bearer "+testToken); rec.Code != http.StatusNotFound {
		t.Errorf("unknown member: %d", rec.Code)
	}
}

// TestAPIRoomsEmptyIsArray: rooms configured but none with members list
// as []; a parley with no rooms configured does not serve /api/rooms (404),
// so the dashboard shows no rooms section.
func TestAPIRoomsEmptyIsArray(t *testing.T) {
	h, _ := newTestAdmin(t, admintest.NewCalls(), admintest.NewRegistrations(), admin.WithRooms(&fakeRooms{}))
	rec := do(t, h, "GET", "/api/rooms")
	if rec.Code != 200 || strings.Join(strings.Fields(rec.Body.String()), "") != "[]" {
		t.Errorf("GET /api/rooms with no room: %d %s", rec.Code, rec.Body)
	}
	h, _ = newTestAdmin(t, admintest.NewCalls(), admintest.NewRegistrations())
	if rec := do(t, h, "GET", "/api/rooms"); rec.Code != http.StatusNotFound {
		t.Errorf("GET /api/rooms with no rooms configured: %d %s, want 404", rec.Code, rec.Body)
	}
}
