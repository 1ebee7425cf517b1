package registrar

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// observed records what an AuthObserver hears.
type observed struct {
	mu                            sync.Mutex
	challenged, failed, succeeded []string
}

func (o *observed) Challenged(src netip.Addr) {
	o.mu.Lock()
	o.challenged = append(o.challenged, src.String())
	o.mu.Unlock()
}

func (o *observed) Failed(src netip.Addr, user string) {
	o.mu.Lock()
	o.failed = append(o.failed, src.String()+" "+user)
	o.mu.Unlock()
}

func (o *observed) Succeeded(src netip.Addr) {
	o.mu.Lock()
	o.succeeded = append(o.succeeded, src.String())
	o.mu.Unlock()
}

// answerNC is answer with a chosen nonce count.
func answerNC(t *testing.T, req *sip.Request, chal *digest.Challenge, nc int) *digest.Credentials {
	t.Helper()
	cred, err := digest.Digest(chal, digest.Options{Method: string(req.Method), URI: req.Recipient.String(), Username: "1001", Password: "secret", Count: nc})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// TestReplayedAuthorizationRefused checks RFC 7616 §3.4's nonce count and
// the nonce's binding: an Authorization taken from one request is refused
// in a new request from the same address (same nonce count), from another
// address, and, for a call, with another Call-ID or From tag; the same
// nonce with a higher count is taken. Each refusal is logged once for
// fail2ban and reported to the observer.
func TestReplayedAuthorizationRefused(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		code       int
		hdr, auth  string
	}{
		{"REGISTER", "register.sip", 401, "WWW-Authenticate", "Authorization"},
		{"INVITE", "invite.sip", 407, "Proxy-Authenticate", "Proxy-Authorization"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			obs := &observed{}
			d := newTestDigest(t, newFakeClock(), WithAuthObserver(obs),
				WithDigestLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			first := loadRequest(t, tc.file, msgVars{CallID: "c1"})
			chal := challengeFor(t, d.challenge(first, tc.code, false), tc.hdr, "SHA-256")
			captured := answerNC(t, first, chal, 1).String()
			first.AppendHeader(sip.NewHeader(tc.auth, captured))
			if _, res, ok := d.Authenticate(first, tc.code); !ok {
				t.Fatalf("the genuine request was refused: %v", res)
			}
			replays := []struct {
				what string
				v    msgVars
			}{
				{"same address, same nonce count", msgVars{CallID: "c1", CSeq: 2}},
				{"another address", msgVars{CallID: "c1", CSeq: 2, Source: "198.51.100.66:5060"}},
			}
			if tc.code == 407 {
				replays = append(replays, struct {
					what string
					v    msgVars
				}{"another call", msgVars{CallID: "c2", CSeq: 1}})
			}
			for _, r := range replays {
				req := loadRequest(t, tc.file, r.v)
				req.AppendHeader(sip.NewHeader(tc.auth, captured))
				_, res, ok := d.Authenticate(req, tc.code)
				if ok {
					t.Fatalf("%s: a replayed Authorization was accepted", r.what)
				}
				if res.StatusCode != tc.code {
					t.Fatalf("%s: %d, want a new challenge %d", r.what, res.StatusCode, tc.code)
				}
			}
			if len(obs.failed) != 1 || obs.failed[0] != "203.0.113.9 1001" {
				t.Errorf("observer heard failures %v, want the same-address replay once", obs.failed)
			}
			if n := strings.Count(logs.String(), `msg="auth failed" source_ip=203.0.113.9 user=1001`); n != 1 {
				t.Errorf("%d fail2ban lines, want 1:\n%s", n, logs.String())
			}
			// The phone itself counts up: nonce count 2 is taken.
			next := loadRequest(t, tc.file, msgVars{CallID: "c1", CSeq: 3})
			next.AppendHeader(sip.NewHeader(tc.auth, answerNC(t, next, chal, 2).String()))
			if _, res, ok := d.Authenticate(next, tc.code); !ok {
				t.Fatalf("nonce count 2 refused: %v", res)
			}
			if len(obs.succeeded) != 2 || len(obs.challenged) == 0 {
				t.Errorf("observer: %d successes, %d challenges", len(obs.succeeded), len(obs.challenged))
			}
		})
	}
}

// TestRegisterNonceDoesNotAnswerCalls checks that a REGISTER's nonce is no
// good for an INVITE from the same address.
func TestRegisterNonceDoesNotAnswerCalls(t *testing.T) {
	d := newTestDigest(t, newFakeClock())
	reg := loadRequest(t, "register.sip", msgVars{})
	chal := challengeFor(t, d.challenge(reg, 401, false), "WWW-Authenticate", "MD5")
	inv := loadRequest(t, "invite.sip", msgVars{})
	inv.AppendHeader(sip.NewHeader("Proxy-Authorization", answerNC(t, inv, chal, 1).String()))
	if _, _, ok := d.Authenticate(inv, 407); ok {
		t.Fatal("a REGISTER's nonce authenticated an INVITE")
	}
}

// TestNonceCountsBounded checks that a full table forgets every count and
// makes every nonce issued so far stale, so none can be replayed, and that
// counts of nonces older than two lifetimes go.
func TestNonceCountsBounded(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := nonceCounts{lifetime: 30 * time.Second}
	var mac [nonceMACLen]byte
	if got := c.use(mac, now, 1, now); got != nonceCounted {
		t.Fatalf("first use: %v", got)
	}
	if got := c.use(mac, now, 1, now); got != nonceReplay {
		t.Fatalf("same count again: %v, want replay", got)
	}
	if got := c.use(mac, now, 2, now.Add(40*time.Second)); got != nonceCounted {
		t.Fatalf("higher count in the next generation: %v", got)
	}
	if got := c.use(mac, now, 2, now.Add(50*time.Second)); got != nonceReplay {
		t.Fatalf("the previous generation forgot the count: %v", got)
	}
	later := now.Add(2 * time.Minute)
	c.use([nonceMACLen]byte{1}, later, 1, later)
	c.use([nonceMACLen]byte{2}, later, 1, later.Add(40*time.Second))
	if n := c.len(); n != 2 {
		t.Fatalf("%d counts kept after two lifetimes, want 2", n)
	}
	// Fill it: the last entry empties it and raises the floor.
	c.cur = make(map[[nonceMACLen]byte]uint32, maxNonceCounts)
	for i := range maxNonceCounts {
		c.cur[[nonceMACLen]byte{byte(i), byte(i >> 8), byte(i >> 16), 9}] = 1
	}
	c.prev = nil
	t0 := c.curStart
	if got := c.use([nonceMACLen]byte{7, 7}, t0, 1, t0); got != nonceTooOld {
		t.Fatalf("use with a full table: %v, want too old", got)
	}
	if n := c.len(); n != 0 {
		t.Fatalf("%d counts kept after the table filled", n)
	}
	if got := c.use(mac, now, 3, t0); got != nonceTooOld {
		t.Fatalf("a nonce from before the floor: %v, want too old (stale)", got)
	}
}

// TestHA1Users checks users given by their digest hashes: each algorithm
// with its own hash, and an algorithm without one refused.
func TestHA1Users(t *testing.T) {
	ha1 := hashJoin(md5.New(), "2001", testRealm, "s3cret")
	ha1sha := hashJoin(sha256.New(), "2002", testRealm, "s3cret")
	d := newTestDigest(t, newFakeClock(), WithHA1("2001", strings.ToUpper(ha1), ""), WithHA1("2002", "", ha1sha))
	for _, tc := range []struct {
		user, alg string
		ok        bool
	}{
		{"2001", "MD5", true}, {"2001", "SHA-256", false}, {"2002", "SHA-256", true}, {"2002", "MD5", false},
	} {
		req := loadRequest(t, "register.sip", msgVars{User: tc.user, CallID: tc.user + tc.alg})
		chal := challengeFor(t, d.challenge(req, 401, false), "WWW-Authenticate", tc.alg)
		req.AppendHeader(sip.NewHeader("Authorization", answer(t, req, chal, tc.user, "s3cret").String()))
		if _, _, ok := d.Authenticate(req, 401); ok != tc.ok {
			t.Errorf("user %s with %s: ok %v, want %v", tc.user, tc.alg, ok, tc.ok)
		}
	}
	if !d.IsUser("2001") || !d.IsUser("2002") {
		t.Error("HA1 users are not users")
	}
	if _, err := NewDigest(testRealm, map[string]string{"2001": "pw"}, nil, WithHA1("2001", ha1, "")); err == nil {
		t.Error("a user with a password and an HA1 was taken")
	}
}

// TestPrecheck: without state, a request with no credentials, a forged
// nonce or a nonce issued to another address is challenged at once; one
// answering a real challenge (right password or not) is left for
// Authenticate, and Precheck counts no failure nor uses up its nonce
// count.
func TestPrecheck(t *testing.T) {
	obs := &observed{}
	d := newTestDigest(t, newFakeClock(), WithAuthObserver(obs))
	bare := loadRequest(t, "invite.sip", msgVars{})
	if res, ok := d.Precheck(bare, 407); ok || res.StatusCode != 407 {
		t.Fatalf("no credentials: ok %v, %v", ok, res)
	}
	chal := challengeFor(t, d.challenge(bare, 407, false), "Proxy-Authenticate", "MD5")
	for _, tc := range []struct {
		what   string
		source string
		nonce  string
		pass   string
		ok     bool
	}{
		{"forged nonce", "", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "secret", false},
		{"nonce for another address", "198.51.100.1:5060", "", "secret", false},
		{"wrong password", "", "", "guess", true},
		{"right password", "", "", "secret", true},
	} {
		req := loadRequest(t, "invite.sip", msgVars{Source: tc.source})
		cred := answerNC(t, req, chal, 1)
		if tc.pass != "secret" {
			cred, _ = digest.Digest(chal, digest.Options{Method: "INVITE", URI: req.Recipient.String(), Username: "1001", Password: tc.pass, Count: 1})
		}
		if tc.nonce != "" {
			cred.Nonce = tc.nonce
		}
		req.AppendHeader(sip.NewHeader("Proxy-Authorization", cred.String()))
		if _, ok := d.Precheck(req, 407); ok != tc.ok {
			t.Errorf("%s: ok %v, want %v", tc.what, ok, tc.ok)
		}
	}
	if len(obs.failed) != 0 {
		t.Errorf("Precheck counted failures: %v", obs.failed)
	}
	right := loadRequest(t, "invite.sip", msgVars{})
	right.AppendHeader(sip.NewHeader("Proxy-Authorization", answerNC(t, right, chal, 1).String()))
	if _, res, ok := d.Authenticate(right, 407); !ok {
		t.Fatalf("Authenticate after Precheck refused the right answer: %v", res)
	}
}

// TestSHA256FirstForKnownAgents: a client known to take SHA-256 gets it
// first; others keep the configured order (MD5 first by default).
func TestSHA256FirstForKnownAgents(t *testing.T) {
	d := newTestDigest(t, newFakeClock())
	for ua, first := range map[string]string{"Linphone-Desktop/5.1 (belle-sip/5.1)": "SHA-256", "": "MD5", "Some Desk Phone": "MD5"} {
		req := loadRequest(t, "register.sip", msgVars{CallID: "ua-" + ua})
		req.RemoveHeader("User-Agent")
		if ua != "" {
			req.AppendHeader(sip.NewHeader("User-Agent", ua))
		}
		hs := d.challenge(req, 401, false).GetHeaders("WWW-Authenticate")
		if len(hs) != 2 || !strings.Contains(hs[0].Value(), "algorithm="+first) {
			t.Errorf("User-Agent %q: challenges %v, want %s first of two", ua, hs, first)
		}
	}
}
