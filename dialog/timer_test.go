package dialog

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

func invite(headers ...string) *sip.Request {
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "1002", Host: "parley.lab"})
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ": ")
		req.AppendHeader(sip.NewHeader(name, value))
	}
	return req
}

func TestSessionExpiresParsing(t *testing.T) {
	tests := []struct {
		header    string
		secs      int
		refresher string
		ok, bad   bool
	}{
		{"Session-Expires: 1800", 1800, "", true, false},
		{"Session-Expires: 300;refresher=uac", 300, "uac", true, false},
		{"x: 600 ; refresher=UAS", 600, "uas", true, false},
		{"Session-Expires: soon", 0, "", false, true},
		{"Session-Expires: -5", 0, "", false, true},
		{"Subject: nothing", 0, "", false, false},
	}
	for _, tt := range tests {
		secs, ref, ok, err := sessionExpires(invite(tt.header))
		if secs != tt.secs || ref != tt.refresher || ok != tt.ok || (err != nil) != tt.bad {
			t.Errorf("%q: got %d %q %v %v", tt.header, secs, ref, ok, err)
		}
	}
	if got := minSEOf(invite("Min-SE: 120")); got != 120 {
		t.Errorf("Min-SE = %d", got)
	}
	if !supportsTimer(invite("k: 100rel, timer")) || supportsTimer(invite("Supported: replaces")) {
		t.Error("Supported: timer detection")
	}
}

// RFC 4028 §9 as parley applies it to the caller's INVITE.
func TestNegotiateUAS(t *testing.T) {
	s := newTestServer(t, "sessions:\n  expires: 1800\n  min_se: 120\n")
	tests := []struct {
		name     string
		headers  []string
		code     int // 422 or 400 expected, 0 for success
		interval time.Duration
		parley   bool
		require  bool // Require: timer in the 2xx
	}{
		{"no timer support: parley refreshes", nil, 0, 1800 * time.Second, true, false},
		{"supported, no refresher: phone refreshes", []string{"Supported: timer", "Session-Expires: 600"}, 0, 600 * time.Second, false, true},
		{"refresher=uas: parley", []string{"Supported: timer", "Session-Expires: 600;refresher=uas"}, 0, 600 * time.Second, true, false},
		{"refresher=uac: phone", []string{"Supported: timer", "Session-Expires: 600;refresher=uac"}, 0, 600 * time.Second, false, true},
		{"too small with support: 422", []string{"Supported: timer", "Session-Expires: 90"}, 422, 0, false, false},
		{"too small without support: raised", []string{"Session-Expires: 90"}, 0, 120 * time.Second, true, false},
		{"compact x", []string{"k: timer", "x: 300"}, 0, 300 * time.Second, false, true},
		{"malformed", []string{"Session-Expires: never"}, 400, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &leg{}
			err := s.negotiateUAS(l, invite(tt.headers...))
			if tt.code != 0 {
				se := sipmsg.ErrorFor(err)
				if err == nil || se.Code != tt.code {
					t.Fatalf("got %v, want %d", err, tt.code)
				}
				if tt.code == 422 && se.MinSE != 120 {
					t.Fatalf("422 carries Min-SE %d, want 120", se.MinSE)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.st.interval != tt.interval || l.st.parley != tt.parley {
				t.Fatalf("interval %v parley %v, want %v %v", l.st.interval, l.st.parley, tt.interval, tt.parley)
			}
			res := sip.NewResponse(200, "OK")
			timerHeaders(res, l)
			if got := res.GetHeader("Require") != nil; got != tt.require {
				t.Fatalf("Require: timer present = %v, want %v", got, tt.require)
			}
			want := "refresher=uac"
			if tt.parley {
				want = "refresher=uas"
			}
			if h := res.GetHeader("Session-Expires"); h == nil || !strings.Contains(h.Value(), want) {
				t.Fatalf("Session-Expires %v, want %s", h, want)
			}
		})
	}
}

func TestNegotiateUAC(t *testing.T) {
	s := newTestServer(t, "sessions:\n  expires: 1800\n  min_se: 90\n")
	res := func(h ...string) *sip.Response {
		r := sip.NewResponse(200, "OK")
		for _, x := range h {
			n, v, _ := strings.Cut(x, ": ")
			r.AppendHeader(sip.NewHeader(n, v))
		}
		return r
	}
	l := &leg{}
	s.negotiateUAC(l, res())
	if !l.st.parley || l.st.interval != 1800*time.Second {
		t.Fatalf("callee without timers: %+v", l.st)
	}
	l = &leg{}
	s.negotiateUAC(l, res("Session-Expires: 900;refresher=uas", "Allow: INVITE, UPDATE"))
	if l.st.parley || l.st.interval != 900*time.Second || !l.st.update {
		t.Fatalf("callee refreshes: %+v", l.st)
	}
	l = &leg{}
	s.negotiateUAC(l, res("Session-Expires: 900;refresher=uac"))
	if !l.st.parley {
		t.Fatalf("refresher=uac in the 2xx means parley: %+v", l.st)
	}
}

// When the phone is the refresher and stays silent, the call ends at
// SE − min(32 s, SE/3); a refresh in time re-arms the timer.
func TestSessionTimerExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestServer(t, "")
		c := &Call{ID: "t", work: s.work, state: Active, closed: make(chan struct{}), log: callLog{l: s.log, id: "t"}}
		// A callee leg without a remote tag gets no BYE, so the test needs
		// no network.
		l := &leg{call: c, role: roleCallee, uac: true, st: sessionTimer{interval: 90 * time.Second}}
		c.callee = l
		s.calls.admit(c, "", 0, 0)
		s.m.calls.WithLabelValues("active").Inc()
		c.do(func() { s.armTimer(l) })

		time.Sleep(50 * time.Second) // a refresh arrives at 50 s
		c.do(func() { s.armTimer(l) })
		time.Sleep(59 * time.Second) // 109 s: the first timer would have fired at 60 s
		synctest.Wait()
		if st := c.Snapshot().State; st != "active" {
			t.Fatalf("state %s after a timely refresh", st)
		}
		time.Sleep(2 * time.Second) // 111 s = 50 + 60 + 1
		synctest.Wait()
		if st := c.Snapshot().State; st != "closed" {
			t.Fatalf("state %s, want closed after the session expired", st)
		}
	})
}
