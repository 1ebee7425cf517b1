package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/registrar"
)

// The limits of GET /api/events, the dashboard's live feed.
const (
	// eventInterval is how often a stream looks for a change and sends
	// the snapshot if there is one.
	eventInterval = 500 * time.Millisecond
	// eventKeepalive is how long a stream goes without a change before
	// it sends the snapshot anyway: the page learns the server's clock
	// and that the stream is alive, and a proxy sees traffic.
	eventKeepalive = 10 * time.Second
	// eventWriteTimeout bounds each write to a stream: a client that
	// stops reading is dropped instead of holding its slot.
	eventWriteTimeout = 5 * time.Second
	// maxEventStreams is how many streams may be open at once; one more
	// gets 503. Each is a goroutine and a snapshot every eventInterval.
	maxEventStreams = 16
	// maxDashboardRows bounds the calls and the registrations one
	// snapshot lists; the totals still count them all.
	maxDashboardRows = 500
	// maxRoomsBody bounds the GET /api/rooms answer a snapshot carries.
	maxRoomsBody = 1 << 20
	// eventRetry is the reconnection delay a stream asks EventSource
	// for (the SSE "retry:" field), in milliseconds.
	eventRetry = 1000
)

// DashboardState is the data of one snapshot event of GET /api/events:
// what the dashboard shows.
type DashboardState struct {
	// Time is the server's clock when the snapshot was sent, for the
	// page to show durations in the server's time.
	Time time.Time `json:"time,omitzero"`
	// Calls are the calls in progress, oldest first, at most
	// maxDashboardRows of them; CallsTotal counts them all.
	Calls      []dialog.Snapshot `json:"calls"`
	CallsTotal int               `json:"calls_total"`
	// Registrations are the live bindings by user, at most
	// maxDashboardRows of them; RegistrationsTotal counts them all.
	Registrations      []registrar.Binding `json:"registrations"`
	RegistrationsTotal int                 `json:"registrations_total"`
	// Rooms is the body of GET /api/rooms when that endpoint answers 200
	// with JSON, and absent when it does not: a parley without rooms.
	Rooms json.RawMessage `json:"rooms,omitempty"`
}

// feed owns the streams of GET /api/events: it bounds how many are open,
// shares one snapshot between them, and ends them all on close.
type feed struct {
	slots chan struct{}
	// quit is closed by close: every stream returns.
	quit chan struct{}
	// read builds a snapshot (Time unset).
	read func() DashboardState
	// writeTimeout is eventWriteTimeout, apart for tests.
	writeTimeout time.Duration

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
	// last is the snapshot most recently built, marshalled, and when.
	last   []byte
	lastAt time.Time
}

func newFeed(read func() DashboardState) *feed {
	return &feed{slots: make(chan struct{}, maxEventStreams), quit: make(chan struct{}), read: read, writeTimeout: eventWriteTimeout}
}

// join takes a slot for a new stream. It fails when all are taken or the
// feed is closed; otherwise the stream must call leave when it ends.
func (f *feed) join() (ok bool, why string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false, "the admin server is shutting down"
	}
	select {
	case f.slots <- struct{}{}:
	default:
		return false, fmt.Sprintf("%d event streams are open already, the most this admin server serves", maxEventStreams)
	}
	f.wg.Add(1)
	return true, ""
}

func (f *feed) leave() {
	<-f.slots
	f.wg.Done()
}

// close ends every stream and waits until they have returned. Streams
// asked for later are refused.
func (f *feed) close() {
	f.mu.Lock()
	if !f.closed {
		f.closed = true
		close(f.quit)
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// snapshot returns the current state, marshalled without its Time. The
// streams share it: one built less than half an interval ago is reused, so
// that sixteen streams cost about one snapshot per interval, not sixteen.
func (f *feed) snapshot() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.last != nil && time.Since(f.lastAt) < eventInterval/2 {
		return f.last
	}
	b, err := json.Marshal(f.read())
	if err != nil {
		b = []byte(`{"calls":[],"registrations":[],"error":` + fmt.Sprintf("%q", err.Error()) + `}`)
	}
	f.last, f.lastAt = b, time.Now()
	return b
}

// serveEvents is GET /api/events: a server-sent event stream (text/event-
// stream) of "snapshot" events, each a DashboardState in JSON. It sends
// one at once, then again whenever the state changed, looking every
// eventInterval, and at least every eventKeepalive. It ends when the
// client goes, a write stalls past eventWriteTimeout, or the server shuts
// down.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	ok, why := s.feed.join()
	if !ok {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, why)
		return
	}
	defer s.feed.leave()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // tell nginx not to buffer the stream
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return // a stream has no length to tell
	}
	// The deadlines are the stream's own: clear them for whatever the
	// connection carries next.
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	if !writeEvent(w, rc, s.feed.writeTimeout, fmt.Appendf(nil, "retry: %d\n\n", eventRetry)) {
		return
	}
	tick := time.NewTicker(eventInterval)
	defer tick.Stop()
	var sent []byte
	var sentAt time.Time
	for {
		state := s.feed.snapshot()
		if !bytes.Equal(state, sent) || time.Since(sentAt) >= eventKeepalive {
			if !writeEvent(w, rc, s.feed.writeTimeout, snapshotEvent(time.Now(), state)) {
				return
			}
			sent, sentAt = state, time.Now()
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.feed.quit:
			return
		case <-tick.C:
		}
	}
}

// snapshotEvent frames state (a JSON object without "time") as one SSE
// "snapshot" event whose data carries now as "time".
func snapshotEvent(now time.Time, state []byte) []byte {
	ts, _ := json.Marshal(now.UTC())
	b := make([]byte, 0, len(state)+64)
	b = append(b, "event: snapshot\ndata: {\"time\":"...)
	b = append(b, ts...)
	if len(state) > 2 { // more than "{}"
		b = append(b, ',')
	}
	b = append(b, state[1:]...) // JSON has no newline to escape: json.Marshal writes none
	return append(b, "\n\n"...)
}

// writeEvent writes b and flushes it within timeout, reporting whether the
// stream is still good.
func writeEvent(w http.ResponseWriter, rc *http.ResponseController, timeout time.Duration, b []byte) bool {
	if err := rc.SetWriteDeadline(time.Now().Add(timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return false
	}
	if _, err := w.Write(b); err != nil {
		return false
	}
	return rc.Flush() == nil
}

// dashboardState reads what the dashboard shows. Rooms come through the
// API itself (GET /api/rooms), as the page would fetch them: the
// dashboard needs no interface of its own to the rooms service, and a
// parley without that endpoint (404) simply has no rooms section.
func (s *Server) dashboardState() DashboardState {
	var st DashboardState
	st.Calls = s.calls.Calls()
	sort.SliceStable(st.Calls, func(i, j int) bool {
		if !st.Calls[i].Start.Equal(st.Calls[j].Start) {
			return st.Calls[i].Start.Before(st.Calls[j].Start)
		}
		return st.Calls[i].ID < st.Calls[j].ID
	})
	st.CallsTotal = len(st.Calls)
	st.Calls = st.Calls[:min(len(st.Calls), maxDashboardRows)]
	if st.Calls == nil {
		st.Calls = []dialog.Snapshot{}
	}
	st.Registrations = s.regs.All()
	sort.SliceStable(st.Registrations, func(i, j int) bool { return st.Registrations[i].User < st.Registrations[j].User })
	st.RegistrationsTotal = len(st.Registrations)
	st.Registrations = st.Registrations[:min(len(st.Registrations), maxDashboardRows)]
	if st.Registrations == nil {
		st.Registrations = []registrar.Binding{}
	}
	st.Rooms = s.roomsBody()
	return st
}

// roomsBody returns the body of GET /api/rooms if the API answers it with 200
// and valid JSON of at most maxRoomsBody bytes, and nil otherwise.
func (s *Server) roomsBody() json.RawMessage {
	if s.api == nil {
		return nil
	}
	req, err := http.NewRequest(http.MethodGet, "/api/rooms", nil)
	if err != nil {
		return nil
	}
	rec := &memResponse{header: http.Header{}}
	s.api.ServeHTTP(rec, req)
	if rec.code != http.StatusOK || rec.overflow || !json.Valid(rec.body.Bytes()) {
		return nil
	}
	var compact bytes.Buffer
	if json.Compact(&compact, rec.body.Bytes()) != nil {
		return nil
	}
	return compact.Bytes()
}

// memResponse is an http.ResponseWriter that keeps the response in
// memory, up to maxRoomsBody bytes of body.
type memResponse struct {
	header   http.Header
	code     int
	body     bytes.Buffer
	overflow bool
}

func (m *memResponse) Header() http.Header { return m.header }

func (m *memResponse) WriteHeader(code int) {
	if m.code == 0 {
		m.code = code
	}
}

func (m *memResponse) Write(b []byte) (int, error) {
	m.WriteHeader(http.StatusOK)
	if m.body.Len()+len(b) > maxRoomsBody {
		m.overflow = true
		return 0, errors.New("response too large")
	}
	return m.body.Write(b)
}
