package registrar

import (
	"context"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type testEnv struct {
	clock *fakeClock
	d     *Digest
	r     *Registrar
	reg   *prometheus.Registry
}

func newTestEnv(t *testing.T, store Store, opts ...Option) *testEnv {
	t.Helper()
	e := &testEnv{clock: newFakeClock(), reg: prometheus.NewPedanticRegistry()}
	e.d = newTestDigest(t, e.clock, WithAuthMetrics(e.reg))
	if store == nil {
		store = NewMemoryStore()
	}
	opts = append([]Option{WithClock(e.clock.Now), WithExpires(60, 3600), WithMetrics(e.reg)}, opts...)
	r, err := New(e.d, store, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	e.r = r
	return e
}

// send runs req through HandleRegister and returns the one response.
func (e *testEnv) send(t *testing.T, req *sip.Request) *sip.Response {
	t.Helper()
	tx := newRecordingTx()
	e.r.HandleRegister(req, tx)
	return tx.last(t)
}

// registerAs sends testdata file as user with a correct SHA-256 answer.
func (e *testEnv) registerAs(t *testing.T, file string, v msgVars) *sip.Response {
	t.Helper()
	req := loadRequest(t, file, v)
	authorize(t, e.d, req, v.User, testUsers[v.User], "SHA-256")
	return e.send(t, req)
}

// contacts returns the Contact header values of res.
func contacts(res *sip.Response) []string {
	var out []string
	for _, h := range res.GetHeaders("Contact") {
		out = append(out, h.Value())
	}
	return out
}

func contactsOf(bs []Binding) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.Contact)
	}
	return out
}

func TestRegisterFullAuthFlow(t *testing.T) {
	e := newTestEnv(t, nil)
	req := loadRequest(t, "register.sip", msgVars{User: "1001"})
	res := e.send(t, req)
	if res.StatusCode != 401 {
		t.Fatalf("first REGISTER: %d, want 401", res.StatusCode)
	}
	for i, alg := range []string{"MD5", "SHA-256"} {
		if i > 0 {
			// One nonce answers once with a given nonce count (RFC 7616
			// §3.4): the next answer takes a new challenge.
			res = e.send(t, loadRequest(t, "register.sip", msgVars{User: "1001", CSeq: 3, CallID: "call-again"}))
		}
		chal := challengeFor(t, res, "WWW-Authenticate", alg)
		retry := loadRequest(t, "register.sip", msgVars{User: "1001", CSeq: 2, CallID: "call-" + alg})
		retry.AppendHeader(sip.NewHeader("Authorization", answer(t, retry, chal, "1001", "secret").String()))
		ok := e.send(t, retry)
		if ok.StatusCode != 200 {
			t.Fatalf("%s answer: %d %s", alg, ok.StatusCode, ok.Reason)
		}
		date := ok.GetHeader("Date")
		if date == nil {
			t.Fatal("200 without Date")
		}
		if _, err := time.Parse(http.TimeFormat, date.Value()); err != nil {
			t.Errorf("Date %q: %v", date.Value(), err)
		}
		if got := contacts(ok); !slices.Equal(got, []string{"<sip:1001@192.168.1.20:5062;transport=udp>;expires=3600"}) {
			t.Errorf("Contacts = %q", got)
		}
	}
	bs := e.r.Lookup("1001")
	if len(bs) != 1 {
		t.Fatalf("bindings = %+v", bs)
	}
	b := bs[0]
	// RFC 3581: where the REGISTER came from, not what Contact says.
	if b.Source != "203.0.113.9:40123" || b.Transport != "udp" || b.UserAgent != "TestPhone/1.0" || b.Q != 1 || b.CallID != "call-SHA-256" || b.CSeq != 2 {
		t.Errorf("binding = %+v", b)
	}
	if got := testutil.ToFloat64(e.r.gauge); got != 1 {
		t.Errorf("%s = %v, want 1", metricRegistrations, got)
	}
}

// step is one REGISTER of a scenario and what must come back.
type step struct {
	file string
	v    msgVars
	// wantCode is the status; wantContacts, when not nil, the exact Contact
	// values of a 200 in order.
	wantCode     int
	wantContacts []string
	wantHeader   [2]string // name, value that must be present
}

func TestRegisterScenarios(t *testing.T) {
	const c1 = "<sip:1001@192.168.1.20:5062;transport=udp>"
	for _, tc := range []struct {
		name  string
		steps []step
		// wantBindings is the Lookup("1001") result at the end, as Contacts.
		wantBindings []string
	}{
		{
			name:         "423 below min-expires, with Min-Expires",
			steps:        []step{{file: "register.sip", v: msgVars{Expires: "10"}, wantCode: 423, wantHeader: [2]string{"Min-Expires", "60"}}},
			wantBindings: nil,
		},
		{
			name:         "above max-expires is clamped",
			steps:        []step{{file: "register.sip", v: msgVars{Expires: "999999999999"}, wantCode: 200, wantContacts: []string{c1 + ";expires=3600"}}},
			wantBindings: []string{"sip:1001@192.168.1.20:5062;transport=udp"},
		},
		{
			name:         "malformed Expires counts as 3600",
			steps:        []step{{file: "register.sip", v: msgVars{Expires: "soon"}, wantCode: 200, wantContacts: []string{c1 + ";expires=3600"}}},
			wantBindings: []string{"sip:1001@192.168.1.20:5062;transport=udp"},
		},
		{
			name: "several contacts, per-contact expires beats the header, newest first",
			steps: []step{{file: "register_multi.sip", v: msgVars{Expires: "120"}, wantCode: 200, wantContacts: []string{
				"<sip:1001@192.168.1.22:5070;transport=tcp>;expires=300",
				"<sip:1001@192.168.1.21:5060>;expires=120",
				c1 + ";expires=600",
			}}},
			wantBindings: []string{"sip:1001@192.168.1.22:5070;transport=tcp", "sip:1001@192.168.1.21:5060", "sip:1001@192.168.1.20:5062;transport=udp"},
		},
		{
			name: "a per-contact expires below min fails the whole request",
			steps: []step{
				{file: "register.sip", v: msgVars{Expires: "3600"}, wantCode: 200},
				{file: "register_multi.sip", v: msgVars{Expires: "30", CSeq: 2}, wantCode: 423, wantHeader: [2]string{"Min-Expires", "60"}},
			},
			wantBindings: []string{"sip:1001@192.168.1.20:5062;transport=udp"},
		},
		{
			name: "Expires: 0 removes that contact only",
			steps: []step{
				{file: "register_multi.sip", v: msgVars{Expires: "120"}, wantCode: 200},
				{file: "register.sip", v: msgVars{Expires: "0", CSeq: 2}, wantCode: 200, wantContacts: []string{
					"<sip:1001@192.168.1.22:5070;transport=tcp>;expires=300",
					"<sip:1001@192.168.1.21:5060>;expires=120",
				}},
			},
			wantBindings: []string{"sip:1001@192.168.1.22:5070;transport=tcp", "sip:1001@192.168.1.21:5060"},
		},
		{
			name: "Contact: * with Expires: 0 removes everything",
			steps: []step{
				{file: "register_multi.sip", v: msgVars{Expires: "120"}, wantCode: 200},
				{file: "register_wildcard.sip", v: msgVars{Expires: "0", CSeq: 2}, wantCode: 200, wantContacts: []string{}},
			},
			wantBindings: nil,
		},
		{
			name: "Contact: * with another contact is 400",
			steps: []step{
				{file: "register.sip", wantCode: 200},
				{file: "register_wildcard_mixed.sip", v: msgVars{CSeq: 2}, wantCode: 400},
			},
			wantBindings: []string{"sip:1001@192.168.1.20:5062;transport=udp"},
		},
		{
			name: "Contact: * with a non-zero Expires is 400",
			steps: []step{
				{file: "register.sip", wantCode: 200},
				{file: "register_wildcard.sip", v: msgVars{Expires: "60", CSeq: 2}, wantCode: 400},
			},
			wantBindings: []string{"sip:1001@192.168.1.20:5062;transport=udp"},
		},
		{
			name: "same Call-ID, lower or equal CSeq is refused; higher is taken",
			steps: []step{
				{file: "register.sip", v: msgVars{CSeq: 5, Expires: "600"}, wantCode: 200},
				{file: "register.sip", v: msgVars{CSeq: 4, Expires: "0"}, wantCode: 400},
				{file: "register.sip", v: msgVars{CSeq: 5, Expires: "0"}, wantCode: 400},
				{file: "register_wildcard.sip", v: msgVars{CSeq: 3, Expires: "0"}, wantCode: 400},
				{file: "register.sip", v: msgVars{CSeq: 6, Expires: "900"}, wantCode: 200, wantContacts: []string{c1 + ";expires=900"}},
			},
			wantBindings: []string{"sip:1001@192.168.1.20:5062;transport=udp"},
		},
		{
			name: "another Call-ID may update whatever its CSeq",
			steps: []step{
				{file: "register.sip", v: msgVars{CSeq: 50}, wantCode: 200},
				{file: "register.sip", v: msgVars{CallID: "after-reboot", CSeq: 1, Expires: "0"}, wantCode: 200, wantContacts: []string{}},
			},
			wantBindings: nil,
		},
		{
			name: "a REGISTER without Contact lists the bindings",
			steps: []step{
				{file: "register_multi.sip", v: msgVars{Expires: "120"}, wantCode: 200},
				{file: "register_query.sip", v: msgVars{CSeq: 2}, wantCode: 200, wantContacts: []string{
					"<sip:1001@192.168.1.22:5070;transport=tcp>;expires=300",
					"<sip:1001@192.168.1.21:5060>;expires=120",
					c1 + ";expires=600",
				}},
			},
			wantBindings: []string{"sip:1001@192.168.1.22:5070;transport=tcp", "sip:1001@192.168.1.21:5060", "sip:1001@192.168.1.20:5062;transport=udp"},
		},
		{
			name:  "an unsupported Require is 420",
			steps: []step{{file: "register_require.sip", wantCode: 420, wantHeader: [2]string{"Unsupported", "gin"}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, nil)
			for i, s := range tc.steps {
				s.v.User = "1001"
				res := e.registerAs(t, s.file, s.v)
				if res.StatusCode != s.wantCode {
					t.Fatalf("step %d: %d %s, want %d\n%s", i, res.StatusCode, res.Reason, s.wantCode, res)
				}
				if s.wantContacts != nil {
					got := contacts(res)
					if !slices.Equal(got, s.wantContacts) && !(len(got) == 0 && len(s.wantContacts) == 0) {
						t.Errorf("step %d: Contacts\n got %q\nwant %q", i, got, s.wantContacts)
					}
				}
				if name := s.wantHeader[0]; name != "" {
					if h := res.GetHeader(name); h == nil || h.Value() != s.wantHeader[1] {
						t.Errorf("step %d: %s = %v, want %q", i, name, h, s.wantHeader[1])
					}
				}
			}
			got := contactsOf(e.r.Lookup("1001"))
			if !slices.Equal(got, tc.wantBindings) {
				t.Errorf("bindings\n got %q\nwant %q", got, tc.wantBindings)
			}
			if g := testutil.ToFloat64(e.r.gauge); int(g) != len(tc.wantBindings) {
				t.Errorf("%s = %v, want %d", metricRegistrations, g, len(tc.wantBindings))
			}
		})
	}
}

func TestRegisterIdentity(t *testing.T) {
	for _, tc := range []struct {
		name     string
		toUser   string
		authUser string // "" sends from a trusted network without credentials
		wantCode int
	}{
		{"own AOR", "1001", "1001", 200},
		{"someone else's AOR is 403", "1002", "1001", 403},
		{"unknown AOR, authenticated as another user, is 403", "9999", "1001", 403},
		{"trusted network, local user", "1002", "", 200},
		{"trusted network, unknown user is 404", "9999", "", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, nil)
			v := msgVars{User: tc.toUser}
			if tc.authUser == "" {
				v.Source = "10.0.0.5:5060"
			}
			req := loadRequest(t, "register.sip", v)
			if tc.authUser != "" {
				authorize(t, e.d, req, tc.authUser, testUsers[tc.authUser], "MD5")
			}
			if res := e.send(t, req); res.StatusCode != tc.wantCode {
				t.Fatalf("%d %s, want %d", res.StatusCode, res.Reason, tc.wantCode)
			}
		})
	}
}

func TestRegisterRejectsWhenClosed(t *testing.T) {
	e := newTestEnv(t, nil)
	if err := e.r.Close(); err != nil {
		t.Fatal(err)
	}
	if res := e.registerAs(t, "register.sip", msgVars{User: "1001"}); res.StatusCode != 503 {
		t.Fatalf("after Close: %d, want 503", res.StatusCode)
	}
}

func TestLookupHidesExpired(t *testing.T) {
	e := newTestEnv(t, nil)
	e.registerAs(t, "register.sip", msgVars{User: "1001", Expires: "60"})
	e.clock.Advance(59 * time.Second)
	if n := len(e.r.Lookup("1001")); n != 1 {
		t.Fatalf("at 59s: %d bindings", n)
	}
	e.clock.Advance(time.Second)
	if n := len(e.r.Lookup("1001")); n != 0 {
		t.Fatalf("at 60s: %d bindings, want 0", n)
	}
}

// TestSweepExpires runs Run in a synctest bubble: a binding disappears from
// the gauge and the store once its time is up, without real waiting.
func TestSweepExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := NewMemoryStore()
		reg := prometheus.NewPedanticRegistry()
		d, err := NewDigest(testRealm, testUsers, testTrusted)
		if err != nil {
			t.Fatal(err)
		}
		r, err := New(d, store, WithExpires(60, 3600), WithMetrics(reg))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()

		tx := newRecordingTx()
		r.HandleRegister(loadRequest(t, "register.sip", msgVars{Expires: "60", Source: "10.0.0.7:5060"}), tx)
		if res := tx.last(t); res.StatusCode != 200 {
			t.Fatalf("%d %s", res.StatusCode, res.Reason)
		}
		time.Sleep(time.Second) // past the flush delay
		synctest.Wait()
		if bs, _ := store.Load(); len(bs) != 1 {
			t.Fatalf("store holds %d bindings after flush, want 1", len(bs))
		}
		if g := testutil.ToFloat64(r.gauge); g != 1 {
			t.Fatalf("gauge %v, want 1", g)
		}
		time.Sleep(61 * time.Second)
		synctest.Wait()
		if g := testutil.ToFloat64(r.gauge); g != 0 {
			t.Fatalf("gauge %v after expiry, want 0", g)
		}
		if bs, _ := store.Load(); len(bs) != 0 {
			t.Fatalf("store holds %d bindings after expiry, want 0", len(bs))
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestBoltStoreSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "not-yet", "location.db")
	store, err := OpenBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t, store)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.r.Run(ctx) }()
	e.registerAs(t, "register_multi.sip", msgVars{User: "1001", Expires: "120"})
	e.registerAs(t, "register.sip", msgVars{User: "1002", Source: "198.51.100.2:6000", Transport: "TCP"})
	cancel() // Run flushes before it returns
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want1, want2 := e.r.Lookup("1001"), e.r.Lookup("1002")
	if err := e.r.Close(); err != nil {
		t.Fatal(err)
	}

	store, err = OpenBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := New(e.d, store, WithClock(e.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	for user, want := range map[string][]Binding{"1001": want1, "1002": want2} {
		got := r2.Lookup(user)
		if len(got) != len(want) {
			t.Fatalf("%s after reopen: %d bindings, want %d", user, len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			if g.Contact != w.Contact || g.Source != w.Source || g.Transport != w.Transport || !g.Expires.Equal(w.Expires) || g.CallID != w.CallID || g.CSeq != w.CSeq || g.Q != w.Q {
				t.Errorf("%s[%d]: got %+v, want %+v", user, i, g, w)
			}
		}
	}
	if got := r2.Lookup("1002"); got[0].Transport != "tcp" || got[0].Source != "198.51.100.2:6000" {
		t.Errorf("1002 binding = %+v", got[0])
	}
	// The reloaded bindings keep the CSeq ordering: an old CSeq is refused.
	tx := newRecordingTx()
	req := loadRequest(t, "register.sip", msgVars{User: "1002", Expires: "0", Source: "10.0.0.1:5060"})
	r2.HandleRegister(req, tx)
	if res := tx.last(t); res.StatusCode != 400 {
		t.Errorf("replayed CSeq after reopen: %d, want 400", res.StatusCode)
	}
}

func TestCloseFlushesWithoutRun(t *testing.T) {
	store := NewMemoryStore().(*memoryStore)
	e := newTestEnv(t, store)
	e.registerAs(t, "register.sip", msgVars{User: "1001"})
	if bs, _ := store.Load(); len(bs) != 0 {
		t.Fatalf("store written on the request path: %d bindings", len(bs))
	}
	// Close flushes then closes: read the map directly.
	if err := e.r.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(store.users["1001"]); n != 1 {
		t.Fatalf("after Close the store holds %d bindings for 1001, want 1", n)
	}
}

func TestNewErrors(t *testing.T) {
	d := newTestDigest(t, newFakeClock())
	for _, tc := range []struct {
		name string
		opt  Option
	}{
		{"min 0", WithExpires(0, 10)},
		{"max below min", WithExpires(100, 10)},
		{"nil logger", WithLogger(nil)},
		{"nil clock", WithClock(nil)},
		{"nil registerer", WithMetrics(nil)},
		{"negative flush delay", WithFlushDelay(-1)},
		{"zero sweep", WithSweepInterval(0)},
	} {
		if _, err := New(d, NewMemoryStore(), tc.opt); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if _, err := New(nil, NewMemoryStore()); err != ErrNoDigest {
		t.Errorf("nil digest: %v", err)
	}
	if !strings.Contains(ErrBadExpires.Error(), "min") {
		t.Error("ErrBadExpires text")
	}
}

// TestMaxContacts checks registrar.max_contacts: a REGISTER that would
// leave a user more bindings than allowed fails whole with 403 and a
// Warning naming the limit, and leaves the bindings as they were; within
// the limit, refreshing works.
func TestMaxContacts(t *testing.T) {
	e := newTestEnv(t, nil, WithMaxContacts(2))
	if res := e.registerAs(t, "register.sip", msgVars{User: "1001", CallID: "one"}); res.StatusCode != 200 {
		t.Fatalf("first contact: %d", res.StatusCode)
	}
	res := e.registerAs(t, "register_multi.sip", msgVars{User: "1001", CallID: "three"})
	if res.StatusCode != 403 {
		t.Fatalf("three more contacts: %d, want 403", res.StatusCode)
	}
	if w := res.GetHeader("Warning"); w == nil || !strings.Contains(w.Value(), "registrar.max_contacts is 2") {
		t.Fatalf("403 without a Warning naming the limit:\n%s", res)
	}
	if n := len(e.r.Lookup("1001")); n != 1 {
		t.Fatalf("%d bindings after the refused REGISTER, want the 1 before it", n)
	}
	if res := e.registerAs(t, "register.sip", msgVars{User: "1001", CallID: "one", CSeq: 2}); res.StatusCode != 200 {
		t.Fatalf("refreshing within the limit: %d", res.StatusCode)
	}
}
