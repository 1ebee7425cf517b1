package registrar

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Contacts of register_multi.sip and register.sip.
const (
	contact20 = "sip:1001@192.168.1.20:5062;transport=udp"
	contact21 = "sip:1001@192.168.1.21:5060"
	contact22 = "sip:1001@192.168.1.22:5070;transport=tcp"
)

// fakePinger answers after rtt, except for contacts marked down, which it
// leaves unanswered until the ping's context ends, as an unanswered UDP
// transaction would.
type fakePinger struct {
	rtt time.Duration

	mu          sync.Mutex
	down        map[string]bool
	calls       []pingCall
	inflight    int
	maxInflight int
}

// pingCall is one Ping as the fake saw it.
type pingCall struct {
	contact string
	at      time.Time
	timeout time.Duration // deadline - at
}

func newFakePinger() *fakePinger {
	return &fakePinger{rtt: 20 * time.Millisecond, down: map[string]bool{}}
}

func (p *fakePinger) Ping(ctx context.Context, b Binding) (time.Duration, error) {
	now := time.Now()
	dl, _ := ctx.Deadline()
	p.mu.Lock()
	p.calls = append(p.calls, pingCall{contact: b.Contact, at: now, timeout: dl.Sub(now)})
	p.inflight++
	p.maxInflight = max(p.maxInflight, p.inflight)
	down := p.down[b.Contact]
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inflight--
		p.mu.Unlock()
	}()
	if down {
		<-ctx.Done()
		return 0, fmt.Errorf("no answer: %w", ctx.Err())
	}
	select {
	case <-time.After(p.rtt):
		return p.rtt, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (p *fakePinger) setDown(contact string, down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down[contact] = down
}

func (p *fakePinger) snapshot() (calls []pingCall, inflight, maxInflight int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls), p.inflight, p.maxInflight
}

// syncBuffer is a log sink the test reads while Run writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines returns the log lines that contain every one of parts.
func (s *syncBuffer) lines(parts ...string) []string {
	var out []string
	for l := range strings.Lines(s.String()) {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// runQualify starts Run in the bubble and returns a stop function that
// cancels it and checks it returned cleanly.
func runQualify(t *testing.T, r *Registrar) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
}

// at sleeps until d after the bubble's start and lets everything settle.
func at(start time.Time, d time.Duration) {
	time.Sleep(time.Until(start.Add(d)))
	synctest.Wait()
}

// reach returns user's bindings as contact → reachability, from All.
func reach(r *Registrar, user string) map[string]string {
	out := map[string]string{}
	for _, b := range r.All() {
		if b.User == user {
			out[b.Contact] = b.Reachable
		}
	}
	return out
}

func contactGauges(t *testing.T, r *Registrar) [3]int {
	t.Helper()
	return [3]int{
		int(testutil.ToFloat64(r.contacts.WithLabelValues("reachable"))),
		int(testutil.ToFloat64(r.contacts.WithLabelValues("unreachable"))),
		int(testutil.ToFloat64(r.contacts.WithLabelValues("unknown"))),
	}
}

func rttSamples(t *testing.T, reg *prometheus.Registry) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == metricContactRTT {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("%s not gathered", metricContactRTT)
	return 0
}

// TestQualifyUnreachableAndBack follows one contact through a round of
// answers, a missed ping (still reachable), a second one (unreachable,
// skipped by Lookup) and an answer again (restored).
func TestQualifyUnreachableAndBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		const every = 30 * time.Second
		p := newFakePinger()
		logs := &syncBuffer{}
		e := newTestEnv(t, nil, WithQualify(every, p), WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
		stop := runQualify(t, e.r)
		e.registerAs(t, "register_multi.sip", msgVars{User: "1001", Expires: "120"})
		e.registerAs(t, "register.sip", msgVars{User: "1002", Source: "198.51.100.2:6000"})

		// Not pinged yet: unknown, and routed to.
		if got := reach(e.r, "1001"); got[contact21] != ReachableUnknown || len(got) != 3 {
			t.Fatalf("before the first round: %v", got)
		}
		if n := len(e.r.Lookup("1001")); n != 3 {
			t.Fatalf("Lookup before the first round: %d bindings, want 3", n)
		}
		if g := contactGauges(t, e.r); g != [3]int{0, 0, 4} {
			t.Fatalf("gauges (reachable, unreachable, unknown) = %v", g)
		}

		// Round 1 (30 s to 60 s): everyone answers.
		at(start, 59*time.Second)
		for _, b := range e.r.All() {
			if b.Reachable != ReachableYes || b.RTT != p.rtt || !b.LastPing.Equal(e.clock.Now()) {
				t.Errorf("after round 1: %s %s rtt %v last %v", b.User, b.Reachable, b.RTT, b.LastPing)
			}
		}
		if g := contactGauges(t, e.r); g != [3]int{4, 0, 0} {
			t.Errorf("gauges after round 1 = %v", g)
		}
		if n := rttSamples(t, e.reg); n != 4 {
			t.Errorf("%s has %d samples, want 4", metricContactRTT, n)
		}

		// Round 2: contact21 misses one ping. One is not enough.
		p.setDown(contact21, true)
		at(start, 89*time.Second)
		if got := reach(e.r, "1001")[contact21]; got != ReachableYes {
			t.Errorf("after one missed ping: %s, want still yes", got)
		}
		if n := len(e.r.Lookup("1001")); n != 3 {
			t.Errorf("Lookup after one missed ping: %d, want 3", n)
		}

		// Round 3: the second miss marks it unreachable.
		at(start, 119*time.Second)
		if got := contactsOf(e.r.Lookup("1001")); slices.Contains(got, contact21) || len(got) != 2 {
			t.Errorf("Lookup with contact21 unreachable = %q", got)
		}
		var seen bool
		for _, b := range e.r.All() {
			if b.Contact == contact21 {
				seen = true
				if b.Reachable != ReachableNo || b.RTT != 0 {
					t.Errorf("All shows %s rtt %v, want no and 0", b.Reachable, b.RTT)
				}
			}
		}
		if !seen {
			t.Error("All leaves out the unreachable contact")
		}
		if g := contactGauges(t, e.r); g != [3]int{3, 1, 0} {
			t.Errorf("gauges after round 3 = %v", g)
		}
		if l := logs.lines("level=INFO", "contact unreachable", "user=1001", "contact="+contact21); len(l) != 1 {
			t.Errorf("Info lines for the transition: %q\nall logs:\n%s", l, logs)
		}

		// Round 4: it answers again and is back.
		p.setDown(contact21, false)
		at(start, 149*time.Second)
		if got := contactsOf(e.r.Lookup("1001")); !slices.Contains(got, contact21) {
			t.Errorf("Lookup after the answer = %q, want contact21 back", got)
		}
		if g := contactGauges(t, e.r); g != [3]int{4, 0, 0} {
			t.Errorf("gauges after round 4 = %v", g)
		}
		if l := logs.lines("level=INFO", "contact reachable again", "user=1001", "contact="+contact21); len(l) != 1 {
			t.Errorf("Info lines for the restore: %q", l)
		}
		stop()
	})
}

// TestQualifyRegisterRestores checks that a REGISTER from an unreachable
// contact brings it back at once, and that a new binding starts unknown.
func TestQualifyRegisterRestores(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		const every = 20 * time.Second
		p := newFakePinger()
		p.setDown(contact20, true)
		logs := &syncBuffer{}
		e := newTestEnv(t, nil, WithQualify(every, p), WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
		stop := runQualify(t, e.r)
		e.registerAs(t, "register.sip", msgVars{User: "1001", CSeq: 1})

		at(start, 39*time.Second)
		if got := reach(e.r, "1001")[contact20]; got != ReachableUnknown {
			t.Fatalf("after one missed ping: %s, want unknown", got)
		}
		at(start, 59*time.Second)
		if got := reach(e.r, "1001")[contact20]; got != ReachableNo {
			t.Fatalf("after two missed pings: %s, want no", got)
		}
		if n := len(e.r.Lookup("1001")); n != 0 {
			t.Fatalf("Lookup: %d bindings, want 0", n)
		}

		// The phone refreshes: it obviously reached us.
		if res := e.registerAs(t, "register.sip", msgVars{User: "1001", CSeq: 2}); res.StatusCode != 200 {
			t.Fatalf("refresh: %d", res.StatusCode)
		}
		bs := e.r.Lookup("1001")
		if len(bs) != 1 || bs[0].Reachable != ReachableYes {
			t.Fatalf("after the refresh: %+v", bs)
		}
		if l := logs.lines("level=INFO", "contact reachable again", "user=1001", "by=REGISTER"); len(l) != 1 {
			t.Errorf("Info lines for the restore by REGISTER: %q", l)
		}
		if g := contactGauges(t, e.r); g != [3]int{1, 0, 0} {
			t.Errorf("gauges = %v", g)
		}

		// Still not answering pings: the count starts again from zero.
		at(start, 79*time.Second)
		if got := reach(e.r, "1001")[contact20]; got != ReachableYes {
			t.Errorf("one miss after the refresh: %s, want yes", got)
		}
		at(start, 99*time.Second)
		if got := reach(e.r, "1001")[contact20]; got != ReachableNo {
			t.Errorf("two misses after the refresh: %s, want no", got)
		}

		// A refresh from another address is a new path: unknown, routed.
		if res := e.registerAs(t, "register.sip", msgVars{User: "1001", CSeq: 3, Source: "203.0.113.9:50000"}); res.StatusCode != 200 {
			t.Fatalf("refresh from elsewhere: %d", res.StatusCode)
		}
		if bs := e.r.Lookup("1001"); len(bs) != 1 || bs[0].Reachable != ReachableUnknown || !bs[0].LastPing.IsZero() {
			t.Errorf("after a refresh from another source: %+v", bs)
		}
		// A contact registered for the first time starts unknown.
		e.registerAs(t, "register_multi.sip", msgVars{User: "1002"})
		for c, s := range reach(e.r, "1002") {
			if s != ReachableUnknown {
				t.Errorf("new binding %s is %s, want unknown", c, s)
			}
		}
		stop()
	})
}

// TestQualifyPacing checks that a round spreads its pings over the
// interval, bounds the pings in flight and each ping's time, and that
// shutdown ends pings in flight without counting them as failures.
func TestQualifyPacing(t *testing.T) {
	t.Run("spread over the interval", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			const every, n = 60 * time.Second, 10
			p := newFakePinger()
			r := newLoadedRegistrar(t, n, WithQualify(every, p))
			stop := runQualify(t, r)
			at(start, every+every-time.Second)
			calls, _, _ := p.snapshot()
			if len(calls) != n {
				t.Fatalf("%d pings in the first round, want %d", len(calls), n)
			}
			for i, c := range calls {
				if want := every + time.Duration(i)*every/n; c.at.Sub(start) != want {
					t.Errorf("ping %d at %v, want %v", i, c.at.Sub(start), want)
				}
				if c.timeout != qualifyTimeout {
					t.Errorf("ping %d timeout %v, want %v", i, c.timeout, qualifyTimeout)
				}
			}
			stop()
		})
	})
	t.Run("timeout no longer than the interval", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := newFakePinger()
			r := newLoadedRegistrar(t, 1, WithQualify(2*time.Second, p))
			stop := runQualify(t, r)
			time.Sleep(3 * time.Second)
			synctest.Wait()
			calls, _, _ := p.snapshot()
			if len(calls) == 0 || calls[0].timeout != 2*time.Second {
				t.Fatalf("calls = %+v, want a 2s timeout", calls)
			}
			stop()
		})
	})
	t.Run("bounded in flight, cancelled cleanly", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			const every, n = 30 * time.Second, 1000
			p := newFakePinger()
			r := newLoadedRegistrar(t, n, WithQualify(every, p))
			for _, b := range r.All() {
				p.setDown(b.Contact, true)
			}
			stop := runQualify(t, r)
			// 30 ms apart and 5 s each, 166 pings would be in flight.
			at(start, every+3*time.Second)
			_, inflight, maxInflight := p.snapshot()
			if maxInflight != qualifyConcurrency || inflight != qualifyConcurrency {
				t.Errorf("in flight %d, at most %d; want %d", inflight, maxInflight, qualifyConcurrency)
			}
			stop()
			if _, inflight, _ := p.snapshot(); inflight != 0 {
				t.Errorf("%d pings still in flight after Run returned", inflight)
			}
			// Pings cut short by shutdown say nothing about the contacts.
			for _, b := range r.All() {
				if b.Reachable != ReachableUnknown || !b.LastPing.IsZero() {
					t.Fatalf("after shutdown: %+v", b)
				}
			}
		})
	})
}

// newLoadedRegistrar returns a Registrar whose store held n bindings, one
// per user u0000, u0001, ..., so All (and the round) is in that order. Its
// store also claims reachability, which New must not believe.
func newLoadedRegistrar(t *testing.T, n int, opts ...Option) *Registrar {
	t.Helper()
	store := NewMemoryStore()
	batch := map[string][]Binding{}
	for i := range n {
		u := fmt.Sprintf("u%04d", i)
		batch[u] = []Binding{{
			User: u, Contact: fmt.Sprintf("sip:%s@192.0.2.1:%d", u, 10000+i), Source: fmt.Sprintf("192.0.2.1:%d", 10000+i),
			Transport: "udp", Expires: time.Now().Add(time.Hour), Reachable: ReachableNo, RTT: time.Second, LastPing: time.Now(),
		}}
	}
	if err := store.(BatchStore).SaveBatch(batch); err != nil {
		t.Fatal(err)
	}
	d, err := NewDigest(testRealm, testUsers, testTrusted)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(d, store, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestQualifyOff(t *testing.T) {
	for _, tc := range []struct {
		name  string
		every time.Duration
		nilP  bool
	}{
		{"zero interval", 0, false},
		{"negative interval", -time.Second, false},
		{"nil pinger", time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newFakePinger()
				var pinger Pinger = p
				if tc.nilP {
					pinger = nil
				}
				r := newLoadedRegistrar(t, 3, WithQualify(tc.every, pinger))
				stop := runQualify(t, r)
				time.Sleep(10 * time.Minute)
				synctest.Wait()
				if calls, _, _ := p.snapshot(); len(calls) != 0 {
					t.Errorf("%d pings with qualification off", len(calls))
				}
				if n := len(r.Lookup("u0001")); n != 1 {
					t.Errorf("Lookup: %d bindings, want 1", n)
				}
				stop()
			})
		})
	}
}

// TestQualifyNotPersisted checks that what pings learn stays in memory:
// the Store never sees it and a restart starts from unknown.
func TestQualifyNotPersisted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		p := newFakePinger()
		r := newLoadedRegistrar(t, 2, WithQualify(10*time.Second, p))
		for _, b := range r.All() {
			if b.Reachable != ReachableUnknown || b.RTT != 0 || !b.LastPing.IsZero() {
				t.Fatalf("loaded binding keeps stored reachability: %+v", b)
			}
		}
		stop := runQualify(t, r)
		at(start, 19*time.Second)
		if got := reach(r, "u0000")["sip:u0000@192.0.2.1:10000"]; got != ReachableYes {
			t.Fatalf("after a round: %s", got)
		}
		stop()
		r.markDirty("u0000", "u0001")
		if err := r.flush(); err != nil {
			t.Fatal(err)
		}
		bs, err := r.store.Load()
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			if b.Reachable != "" || b.RTT != 0 || !b.LastPing.IsZero() {
				t.Errorf("stored binding carries reachability: %+v", b)
			}
		}
	})
}

// TestQualifiedStates drives the per-binding state machine directly.
func TestQualifiedStates(t *testing.T) {
	errNoAnswer := errors.New("no answer")
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		results []error // nil: answered
		want    []string
	}{
		{"answers", []error{nil, nil}, []string{ReachableYes, ReachableYes}},
		{"never answers", []error{errNoAnswer, errNoAnswer, errNoAnswer}, []string{ReachableUnknown, ReachableNo, ReachableNo}},
		{"one miss is forgiven", []error{nil, errNoAnswer, nil, errNoAnswer, nil}, []string{ReachableYes, ReachableYes, ReachableYes, ReachableYes, ReachableYes}},
		{"down and back", []error{nil, errNoAnswer, errNoAnswer, nil}, []string{ReachableYes, ReachableYes, ReachableNo, ReachableYes}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var last tally
			l := newLocation(func(c tally) { last = c })
			b := Binding{User: "1001", Contact: contact20, Source: "203.0.113.9:40123", Transport: "udp", Expires: now.Add(time.Hour)}
			l.load([]Binding{b}, now)
			b.key = keyOf(b.Contact)
			for i, err := range tc.results {
				if _, is := l.qualified(&b, time.Millisecond, err, now); is != tc.want[i] {
					t.Fatalf("result %d: %s, want %s", i, is, tc.want[i])
				}
			}
			if last.total() != 1 {
				t.Errorf("tally %+v, want one binding", last)
			}
		})
	}
	t.Run("result for a moved or removed binding is dropped", func(t *testing.T) {
		l := newLocation(func(tally) {})
		b := Binding{User: "1001", Contact: contact20, Source: "203.0.113.9:40123", Transport: "udp", Expires: now.Add(time.Hour)}
		l.load([]Binding{b}, now)
		b.key = keyOf(b.Contact)
		moved := b
		moved.Source = "203.0.113.9:50000"
		if was, is := l.qualified(&moved, 0, errNoAnswer, now); was != "" || is != "" {
			t.Errorf("ping to the old source counted: %s → %s", was, is)
		}
		l.remove("1001", now)
		if was, _ := l.qualified(&b, 0, nil, now); was != "" {
			t.Error("ping of a removed binding counted")
		}
	})
}
