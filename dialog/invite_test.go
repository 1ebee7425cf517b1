package dialog

import (
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/config"
	"github.com/parley-sip/parley/dialog/sipmsg"
	"github.com/parley-sip/parley/dialog/transport"
)

type fakeAuth struct{ users map[string]bool }

func (f fakeAuth) Authenticate(req *sip.Request, code int) (string, *sip.Response, bool) {
	return req.From().Address.User, nil, true
}
func (f fakeAuth) Precheck(*sip.Request, int) (*sip.Response, bool) { return nil, true }
func (f fakeAuth) IsUser(u string) bool                             { return f.users[u] }

type fakeLocator map[string][]Contact

func (f fakeLocator) Lookup(u string) []Contact { return f[u] }

func newTestServer(t testing.TB, yaml string, opts ...Option) *Server {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	// Pretend both transports are bound, as resolve checks for them.
	s.listeners = []*transport.Listener{{Network: "udp"}, {Network: "tcp"}}
	return s
}

func TestResolve(t *testing.T) {
	s := newTestServer(t, `
users: [{username: "1001", password: x}, {username: "1002", password: y}]
routes:
  - {match: '^9(\d+)$', target: 'sip:$1@127.0.0.1:5070'}
  - {match: '^0(\d+)$', target: 'sip:$1@10.0.0.1;transport=tcp'}
  - {match: '^7(\d+)$', target: 'sip:$1@10.0.0.2;transport=tls'}
`,
		WithAuthenticator(fakeAuth{users: map[string]bool{"1001": true, "1002": true}}),
		WithLocator(fakeLocator{"1002": {
			{URI: "sip:1002@192.168.1.5:5062", Dest: "203.0.113.7:40000", Transport: "udp"},
			{URI: "sip:1002@10.1.1.1:5080;transport=tcp", Dest: "198.51.100.2:50123", Transport: "tcp"},
		}}),
	)
	tests := []struct {
		user  string
		code  int // expected error status, 0 for success
		dests []string
		uris  []string
	}{
		{user: "1002", dests: []string{"203.0.113.7:40000", "198.51.100.2:50123"}, uris: []string{"sip:1002@192.168.1.5:5062", "sip:1002@10.1.1.1:5080;transport=tcp"}},
		{user: "1001", code: 480},
		{user: "9123", dests: []string{"127.0.0.1:5070"}, uris: []string{"sip:123@127.0.0.1:5070"}},
		{user: "0555", dests: []string{"10.0.0.1:5060"}, uris: []string{"sip:555@10.0.0.1;transport=tcp"}},
		{user: "7555", code: 503},
		{user: "4444", code: 404},
		{user: "", code: 404},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: tt.user, Host: "parley.lab"})
			got, err := s.resolve(req.Recipient)
			if tt.code != 0 {
				if err == nil || sipmsg.ErrorFor(err).Code != tt.code {
					t.Fatalf("got %v, %v; want status %d", got, err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.dests) {
				t.Fatalf("got %d targets, want %d", len(got), len(tt.dests))
			}
			for i := range got {
				if got[i].dest != tt.dests[i] || got[i].uri.String() != tt.uris[i] {
					t.Errorf("target %d = %s via %s, want %s via %s", i, got[i].uri.String(), got[i].dest, tt.uris[i], tt.dests[i])
				}
			}
		})
	}
}

func TestBetterFinal(t *testing.T) {
	res := func(code int) *sip.Response { return sip.NewResponse(code, "x") }
	tests := []struct {
		codes []int
		want  int
	}{
		{[]int{486}, 486},
		{[]int{503, 486}, 486},
		{[]int{408, 404}, 404},
		{[]int{486, 603}, 603},
		{[]int{480, 486}, 480},
		{[]int{500, 503}, 500},
	}
	for _, tt := range tests {
		var best *sip.Response
		for _, c := range tt.codes {
			best = betterFinal(best, res(c))
		}
		if best.StatusCode != tt.want {
			t.Errorf("%v: got %d, want %d", tt.codes, best.StatusCode, tt.want)
		}
	}
}

func TestFinalFor(t *testing.T) {
	r := sip.NewResponse(503, "Busy Here Later")
	r.AppendHeader(sip.NewHeader("Retry-After", "30;duration=60"))
	if se := finalFor(r); se.Code != 503 || se.RetryAfter != 30 {
		t.Fatalf("503 mapped to %+v", se)
	}
	if se := finalFor(sip.NewResponse(407, "Proxy Authentication Required")); se.Code != 403 {
		t.Fatalf("407 from callee mapped to %d, want 403", se.Code)
	}
	if se := finalFor(sip.NewResponse(486, "Busy Here")); se.Code != 486 || se.Reason != "Busy Here" {
		t.Fatalf("486 mapped to %+v", se)
	}
}

func TestResultFor(t *testing.T) {
	tests := map[int]string{200: resultAnswered, 486: resultBusy, 600: resultBusy, 487: resultCancelled, 404: resultNotFound,
		480: resultUnavailable, 408: resultUnavailable, 503: resultRejected, 500: resultFailed}
	for code, want := range tests {
		if got := resultFor(code); got != want {
			t.Errorf("resultFor(%d) = %s, want %s", code, got, want)
		}
	}
}

func TestTableLimits(t *testing.T) {
	tb := newTable()
	c1, c2, c3 := &Call{ID: "1"}, &Call{ID: "2"}, &Call{ID: "3"}
	if !tb.admit(c1, "alice", 2, 1) {
		t.Fatal("first call refused")
	}
	if tb.admit(c2, "alice", 2, 1) {
		t.Fatal("per-user limit not applied")
	}
	if !tb.admit(c2, "bob", 2, 1) {
		t.Fatal("other user refused")
	}
	if tb.admit(c3, "", 2, 0) {
		t.Fatal("global limit not applied")
	}
	tb.release(c1, "alice")
	tb.release(c1, "alice") // twice is harmless
	if !tb.admit(c3, "alice", 2, 1) {
		t.Fatal("released slot not reused")
	}
	if tb.len() != 2 || tb.perUser["alice"] != 1 {
		t.Fatalf("len=%d perUser=%v", tb.len(), tb.perUser)
	}
}

func TestTableLegs(t *testing.T) {
	tb := newTable()
	l := &leg{callID: "abc@host", localTag: "t1"}
	tb.addLeg(l)
	if tb.lookup("abc@host", "t1") != l {
		t.Fatal("leg not found")
	}
	if tb.lookup("abc@host", "t2") != nil {
		t.Fatal("wrong tag matched")
	}
	tb.removeLeg(l)
	if tb.lookup("abc@host", "t1") != nil {
		t.Fatal("removed leg still found")
	}
}
