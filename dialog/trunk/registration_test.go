package trunk

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"go.uber.org/goleak"

	"github.com/parley-sip/parley/config"
	"github.com/parley-sip/parley/dialog/sipmsg"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeRegistrar plays a provider's registrar as a dialog.TrunkClient:
// it challenges (SHA-256 and MD5, qop auth), checks the answer against
// password, refuses a short Expires with 423 Min-Expires minExpires and
// grants grant seconds in the 200's Contact. Every REGISTER it saw is
// kept, with the (fake) time it came.
type fakeRegistrar struct {
	password   string
	minExpires int
	grant      int

	mu    sync.Mutex
	seen  []seenRegister
	nonce int
	// ncs are the nonce counts answered, per nonce.
	ncs map[string]int
}

type seenRegister struct {
	at      time.Time
	req     *sip.Request
	expires int
	status  int
}

func (f *fakeRegistrar) Local(string) (string, int, error) { return "192.0.2.10", 5060, nil }

func (f *fakeRegistrar) Exchange(_ context.Context, req *sip.Request, dest string) (*sip.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if dest != "192.0.2.1:5060" {
		return nil, fmt.Errorf("sent to %s", dest)
	}
	expires, _ := strconv.Atoi(sipmsg.HeaderNamed(req, "Expires").Value())
	res := f.answer(req, expires)
	f.seen = append(f.seen, seenRegister{at: time.Now(), req: req, expires: expires, status: res.StatusCode})
	return res, nil
}

func (f *fakeRegistrar) answer(req *sip.Request, expires int) *sip.Response {
	h := sipmsg.HeaderNamed(req, "Authorization")
	if h == nil {
		return f.challenge(req, false)
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil {
		return sipmsg.NewResponse(req, 400, "Bad Request", "")
	}
	if f.ncs == nil {
		f.ncs = map[string]int{}
	}
	if last, ok := f.ncs[cred.Nonce]; ok && cred.Nc <= last {
		return f.challenge(req, true) // a count seen before: a new nonce
	}
	want, err := digest.Digest(&digest.Challenge{Realm: "provider", Nonce: cred.Nonce, Algorithm: cred.Algorithm, QOP: []string{"auth"}},
		digest.Options{Method: "REGISTER", URI: cred.URI, Username: "trunkuser", Password: f.password, Cnonce: cred.Cnonce, Count: cred.Nc})
	if err != nil || want.Response != cred.Response || cred.URI != req.Recipient.String() {
		return sipmsg.NewResponse(req, 403, "Forbidden", "")
	}
	f.ncs[cred.Nonce] = cred.Nc
	if expires > 0 && expires < f.minExpires {
		res := sipmsg.NewResponse(req, 423, "Interval Too Brief", "")
		res.AppendHeader(sip.NewHeader("Min-Expires", strconv.Itoa(f.minExpires)))
		return res
	}
	res := sipmsg.NewResponse(req, 200, "OK", "")
	if expires > 0 {
		ct := req.Contact().Clone()
		ct.Params = sip.NewParams()
		ct.Params.Add("expires", strconv.Itoa(f.grant))
		res.AppendHeader(ct)
	}
	return res
}

func (f *fakeRegistrar) challenge(req *sip.Request, stale bool) *sip.Response {
	f.nonce++
	res := sipmsg.NewResponse(req, 401, "Unauthorized", "")
	for _, alg := range []string{"MD5", "SHA-256"} {
		c := fmt.Sprintf(`Digest realm="provider", nonce="n%d-%s", algorithm=%s, qop="auth"`, f.nonce, alg, alg)
		if stale {
			c += ", stale=true"
		}
		res.AppendHeader(sip.NewHeader("WWW-Authenticate", c))
	}
	return res
}

func (f *fakeRegistrar) requests() []seenRegister {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRegister(nil), f.seen...)
}

func trunkConfig(expires int, retry time.Duration) config.Trunk {
	return config.Trunk{Name: "prov", Registrar: "192.0.2.1", Username: "trunkuser", Password: "secret", Expires: expires, Retry: retry}
}

// runSet runs a Set of the one trunk against f until stop.
func runSet(t *testing.T, cfg config.Trunk, f *fakeRegistrar) (s *Set, stop func()) {
	t.Helper()
	s, err := New([]config.Trunk{cfg})
	if err != nil {
		t.Fatal(err)
	}
	s.list[0].jitter = func() float64 { return 0 }
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		s.Run(quit, f)
	}()
	return s, func() {
		close(quit)
		<-done
	}
}

// TestRegistrationRefresh: the first REGISTER is challenged and answered
// (SHA-256 picked over MD5), the 423 raises the Expires asked to the
// registrar's Min-Expires, the 200's Contact expires is what counts, and
// the registration is refreshed at half of it with the same Call-ID, a
// rising CSeq and the last challenge answered again with the next nonce
// count; on stop it is removed with Expires 0.
func TestRegistrationRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeRegistrar{password: "secret", minExpires: 60, grant: 90}
		start := time.Now()
		s, stop := runSet(t, trunkConfig(30, 0), f)
		synctest.Wait()
		st := s.Trunks()[0]
		if st.State != StateRegistered {
			t.Fatalf("state %s (%s), want registered", st.State, st.LastError)
		}
		if got := st.Expires.Sub(start); got != 90*time.Second {
			t.Errorf("expires after %v, want the Contact's 90s", got)
		}
		seen := f.requests()
		var codes []int
		for _, r := range seen {
			codes = append(codes, r.status)
		}
		if fmt.Sprint(codes) != "[401 423 200]" {
			t.Fatalf("first attempt answered %v, want [401 423 200]", codes)
		}
		if seen[0].expires != 30 || seen[2].expires != 60 {
			t.Errorf("asked for %d then %d seconds, want 30 then 60", seen[0].expires, seen[2].expires)
		}
		if a := sipmsg.HeaderNamed(seen[1].req, "Authorization").Value(); !strings.Contains(a, "algorithm=SHA-256") {
			t.Errorf("answer %q does not use SHA-256", a)
		}

		time.Sleep(45*time.Second - time.Nanosecond)
		synctest.Wait()
		if n := len(f.requests()); n != 3 {
			t.Fatalf("%d REGISTERs before half the lifetime, want 3", n)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		seen = f.requests()
		if len(seen) != 4 || seen[3].status != 200 {
			t.Fatalf("refresh at 45s: %d REGISTERs, last %d; want a 4th answered 200 at once (the nonce answered again)", len(seen), seen[len(seen)-1].status)
		}
		for i, r := range seen {
			if sipmsg.CallID(r.req) != sipmsg.CallID(seen[0].req) || r.req.CSeq().SeqNo != uint32(i+1) {
				t.Errorf("REGISTER %d: Call-ID %s CSeq %d; want one Call-ID and CSeq %d", i, sipmsg.CallID(r.req), r.req.CSeq().SeqNo, i+1)
			}
		}
		if got := seen[3].at.Sub(start); got != 45*time.Second {
			t.Errorf("refreshed after %v, want 45s", got)
		}

		stop()
		seen = f.requests()
		last := seen[len(seen)-1]
		if last.expires != 0 || last.status != 200 {
			t.Errorf("on stop: Expires %d answered %d, want Expires 0 answered 200", last.expires, last.status)
		}
		if st := s.Trunks()[0]; st.State != StateUnregistered {
			t.Errorf("state %s after stop, want unregistered", st.State)
		}
	})
}

// TestRegistrationBackoff: a wrong password is refused (403 after the
// answer); the trunk shows failed, and tries again after retry, then
// twice that; no REGISTER goes out in between, and none on stop, as it
// holds no registration.
func TestRegistrationBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeRegistrar{password: "other", minExpires: 60, grant: 60}
		start := time.Now()
		s, stop := runSet(t, trunkConfig(60, 30*time.Second), f)
		synctest.Wait()
		st := s.Trunks()[0]
		if st.State != StateFailed || st.Failures != 1 || !strings.Contains(st.LastError, ErrRefused.Error()) {
			t.Fatalf("after a refusal: %+v", st)
		}
		if strings.Contains(st.LastError, "other") || strings.Contains(st.LastError, "secret") {
			t.Errorf("last error shows a password: %q", st.LastError)
		}
		time.Sleep(100 * time.Second)
		synctest.Wait()
		var attempts []time.Duration
		for _, r := range f.requests() {
			if sipmsg.HeaderNamed(r.req, "Authorization") == nil {
				attempts = append(attempts, r.at.Sub(start))
			}
		}
		if fmt.Sprint(attempts) != "[0s 30s 1m30s]" {
			t.Errorf("attempts at %v, want [0s 30s 1m30s] (30s, then 60s)", attempts)
		}
		n := len(f.requests())
		stop()
		if len(f.requests()) != n {
			t.Error("a failed trunk sent a REGISTER on stop")
		}
	})
}

// TestChallengeOf: the strongest challenge parley can answer is picked;
// one it cannot answer is an error, not a guess.
func TestChallengeOf(t *testing.T) {
	res := func(code int, hdrs ...string) *sip.Response {
		r := sip.NewResponse(code, "x")
		name := "WWW-Authenticate"
		if code == 407 {
			name = "Proxy-Authenticate"
		}
		for _, h := range hdrs {
			r.AppendHeader(sip.NewHeader(name, h))
		}
		return r
	}
	for _, tc := range []struct {
		res    *sip.Response
		alg    string
		answer string
		err    error
	}{
		{res(401, `Digest realm="a", nonce="1", qop="auth"`), "", "Authorization", nil},
		{res(407, `Digest realm="a", nonce="1", algorithm=MD5, qop="auth"`, `Digest realm="a", nonce="2", algorithm=SHA-256, qop="auth"`), "SHA-256", "Proxy-Authorization", nil},
		{res(401, `Digest realm="a", nonce="1", algorithm=SHA-512-256, qop="auth"`), "", "", ErrNoChallenge},
		{res(401, `Digest realm="a", nonce="1", qop="auth-int"`), "", "", ErrNoChallenge},
		{res(401, `Basic realm="a"`), "", "", ErrNoChallenge},
		{res(401, `Digest realm="a", nonce="`+strings.Repeat("x", maxChallengeLen)+`"`), "", "", ErrNoChallenge},
		{res(401), "", "", ErrNoChallenge},
	} {
		chal, answer, err := challengeOf(tc.res)
		if !errors.Is(err, tc.err) {
			t.Errorf("%v: error %v, want %v", tc.res.Headers(), err, tc.err)
			continue
		}
		if err == nil && (chal.Algorithm != tc.alg || answer != tc.answer) {
			t.Errorf("%v: picked %q answered in %s", tc.res.Headers(), chal.Algorithm, answer)
		}
	}
}

// TestInbound: an INVITE from the registrar's address, or to the Contact
// parley registered, is the trunk's; the call goes to trunks[].inbound,
// else the Request-URI's user, or To's when the Request-URI is the
// Contact. Anything else is not the trunk's.
func TestInbound(t *testing.T) {
	cfg := trunkConfig(60, 0)
	s, err := New([]config.Trunk{cfg})
	if err != nil {
		t.Fatal(err)
	}
	r := s.list[0]
	r.dest, _ = destination(context.Background(), nil, cfg.Registrar)
	r.contact = sip.Uri{Scheme: "sip", User: "trunkuser", Host: "192.0.2.10", Port: 5060}
	invite := func(ruri, to, src string) *sip.Request {
		var u, tu sip.Uri
		_ = sip.ParseUri(ruri, &u)
		_ = sip.ParseUri(to, &tu)
		req := sip.NewRequest(sip.INVITE, u)
		req.AppendHeader(&sip.ToHeader{Address: tu})
		req.SetSource(src)
		return req
	}
	for _, tc := range []struct {
		req  *sip.Request
		user string
		ok   bool
	}{
		{invite("sip:5551234@192.0.2.10", "sip:5551234@provider", "192.0.2.1:5060"), "5551234", true},
		{invite("sip:trunkuser@192.0.2.10:5060", "sip:1001@provider", "192.0.2.1:5080"), "1001", true},
		{invite("sip:trunkuser@192.0.2.10", "sip:1002@provider", "198.51.100.7:5060"), "1002", true},
		{invite("sip:1001@192.0.2.10", "sip:1001@provider", "198.51.100.7:5060"), "", false},
		{invite("sip:trunkuser@192.0.2.10:5070", "sip:1001@provider", "198.51.100.7:5060"), "", false},
	} {
		name, user, ok := s.Inbound(tc.req)
		if ok != tc.ok || user != tc.user || (ok && name != "prov") {
			t.Errorf("%s from %s: (%q, %q, %v), want user %q, %v", tc.req.Recipient.String(), tc.req.Source(), name, user, ok, tc.user, tc.ok)
		}
	}
	// Two trunks with one provider: the Contact tells them apart.
	other := cfg
	other.Name, other.Username, other.Inbound = "prov2", "seconduser", "1002"
	two, _ := New([]config.Trunk{cfg, other})
	for i, user := range []string{"trunkuser", "seconduser"} {
		two.list[i].dest = r.dest
		two.list[i].contact = sip.Uri{Scheme: "sip", User: user, Host: "192.0.2.10", Port: 5060}
	}
	if name, user, ok := two.Inbound(invite("sip:seconduser@192.0.2.10:5060", "sip:x@provider", "192.0.2.1:5060")); !ok || name != "prov2" || user != "1002" {
		t.Errorf("the second trunk's Contact: (%q, %q, %v), want prov2's 1002", name, user, ok)
	}

	cfg.Inbound = "1003"
	s2, _ := New([]config.Trunk{cfg})
	s2.list[0].dest = r.dest
	if _, user, ok := s2.Inbound(invite("sip:5551234@192.0.2.10", "sip:x@provider", "192.0.2.1:5060")); !ok || user != "1003" {
		t.Errorf("with inbound 1003 the call goes to %q (%v)", user, ok)
	}
}
