package registrar

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestDigestChallenge(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		code       int
		header     string
		reason     string
	}{
		{"REGISTER gets 401", "register.sip", 401, "WWW-Authenticate", "Unauthorized"},
		{"INVITE gets 407", "invite.sip", 407, "Proxy-Authenticate", "Proxy Authentication Required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestDigest(t, newFakeClock())
			req := loadRequest(t, tc.file, msgVars{})
			_, res, ok := d.Authenticate(req, tc.code)
			if ok || res == nil {
				t.Fatalf("request without credentials accepted")
			}
			if res.StatusCode != tc.code || res.Reason != tc.reason {
				t.Fatalf("got %d %s, want %d %s", res.StatusCode, res.Reason, tc.code, tc.reason)
			}
			hs := res.GetHeaders(tc.header)
			if len(hs) != 2 {
				t.Fatalf("want 2 %s headers, got %d", tc.header, len(hs))
			}
			var nonce string
			for i, want := range DefaultAlgorithms() {
				c, err := digest.ParseChallenge(hs[i].Value())
				if err != nil {
					t.Fatal(err)
				}
				if c.Algorithm != want || c.Realm != testRealm || !c.SupportsQOP("auth") || c.Stale {
					t.Errorf("challenge %d = %+v, want algorithm %s, realm %s, qop auth, not stale", i, c, want, testRealm)
				}
				if i > 0 && c.Nonce != nonce {
					t.Errorf("challenges carry different nonces")
				}
				nonce = c.Nonce
			}
			if res.CallID().Value() != req.CallID().Value() || res.CSeq().SeqNo != req.CSeq().SeqNo {
				t.Errorf("response does not match the request's Call-ID/CSeq")
			}
			if v, _ := res.Via().Params.Get("received"); v != "203.0.113.9" {
				t.Errorf("Via received = %q, want the source address (RFC 3581)", v)
			}
		})
	}
}

func TestDigestAlgorithmOrderOption(t *testing.T) {
	d := newTestDigest(t, newFakeClock(), WithAlgorithms("sha-256", "md5"))
	_, res, _ := d.Authenticate(loadRequest(t, "register.sip", msgVars{}), 401)
	hs := res.GetHeaders("WWW-Authenticate")
	if len(hs) != 2 || !strings.Contains(hs[0].Value(), "algorithm=SHA-256") || !strings.Contains(hs[1].Value(), "algorithm=MD5") {
		t.Fatalf("want SHA-256 then MD5, got %v", hs)
	}
	if _, err := NewDigest(testRealm, testUsers, nil, WithAlgorithms("SHA-512")); !errors.Is(err, ErrBadOption) {
		t.Fatalf("SHA-512: err = %v, want ErrBadOption", err)
	}
}

func TestDigestAuthenticate(t *testing.T) {
	otherSecret := []byte("another secret, another server!!")
	for _, tc := range []struct {
		name     string
		file     string
		code     int
		alg      string
		user     string
		password string
		// before runs ahead of answering, e.g. to age the nonce.
		advance time.Duration
		// issuer, when set, issues the nonce instead of the Digest under test.
		issuer []byte
		// mutate changes the credentials after they are computed.
		mutate func(c *digest.Credentials)

		wantOK       bool
		wantCode     int
		wantStale    bool
		wantFailures float64
	}{
		{name: "good MD5", alg: "MD5", user: "1001", password: "secret", wantOK: true},
		{name: "good SHA-256", alg: "SHA-256", user: "1001", password: "secret", wantOK: true},
		{name: "good SHA-256 on INVITE (407)", file: "invite.sip", code: 407, alg: "SHA-256", user: "1001", password: "secret", wantOK: true},
		{name: "wrong password", alg: "MD5", user: "1001", password: "guess", wantCode: 401, wantFailures: 1},
		{name: "wrong password SHA-256", alg: "SHA-256", user: "1001", password: "guess", wantCode: 401, wantFailures: 1},
		{name: "unknown user answered like a wrong password", alg: "MD5", user: "9999", password: "secret", wantCode: 401, wantFailures: 1},
		{name: "stale nonce, right password", alg: "MD5", user: "1001", password: "secret", advance: 40 * time.Second, wantCode: 401, wantStale: true},
		{name: "stale nonce, wrong password", alg: "SHA-256", user: "1001", password: "guess", advance: 6 * time.Minute, wantCode: 401, wantFailures: 1},
		{name: "nonce still fresh at 30 seconds", alg: "MD5", user: "1001", password: "secret", advance: 30 * time.Second, wantOK: true},
		{name: "nonce from another secret", alg: "MD5", user: "1001", password: "secret", issuer: otherSecret, wantCode: 401},
		{name: "forged nonce", alg: "MD5", user: "1001", password: "secret", mutate: func(c *digest.Credentials) { c.Nonce = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }, wantCode: 401},
		{name: "other realm is not ours", alg: "MD5", user: "1001", password: "secret", mutate: func(c *digest.Credentials) { c.Realm = "elsewhere" }, wantCode: 401},
		{name: "digest uri is not the Request-URI", alg: "MD5", user: "1001", password: "secret", mutate: func(c *digest.Credentials) { c.URI = "sip:other.test" }, wantCode: 400},
		{name: "no qop", alg: "MD5", user: "1001", password: "secret", mutate: func(c *digest.Credentials) { c.QOP = "" }, wantCode: 400},
		{name: "no cnonce", alg: "MD5", user: "1001", password: "secret", mutate: func(c *digest.Credentials) { c.Cnonce = "" }, wantCode: 400},
		{name: "algorithm not offered", alg: "MD5", user: "1001", password: "secret", mutate: func(c *digest.Credentials) { c.Algorithm = "SHA-512" }, wantCode: 401},
		{name: "tampered response", alg: "SHA-256", user: "1001", password: "secret", mutate: func(c *digest.Credentials) { c.Response = strings.Repeat("0", 64) }, wantCode: 401, wantFailures: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.file == "" {
				tc.file = "register.sip"
			}
			if tc.code == 0 {
				tc.code = 401
			}
			clock := newFakeClock()
			reg := prometheus.NewPedanticRegistry()
			d := newTestDigest(t, clock, WithAuthMetrics(reg))
			issuer := d
			if tc.issuer != nil {
				issuer = newTestDigest(t, clock, WithSecret(tc.issuer))
			}
			req := loadRequest(t, tc.file, msgVars{})
			hdr, authHdr := "WWW-Authenticate", "Authorization"
			if tc.code == 407 {
				hdr, authHdr = "Proxy-Authenticate", "Proxy-Authorization"
			}
			chal := challengeFor(t, issuer.challenge(req, tc.code, false), hdr, tc.alg)
			clock.Advance(tc.advance)
			cred := answer(t, req, chal, tc.user, tc.password)
			if tc.mutate != nil {
				tc.mutate(cred)
			}
			req.AppendHeader(sip.NewHeader(authHdr, cred.String()))

			id, res, ok := d.Authenticate(req, tc.code)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v (response %v)", ok, tc.wantOK, res)
			}
			if ok {
				if id.User != tc.user || id.Trusted {
					t.Errorf("identity = %+v, want user %s untrusted", id, tc.user)
				}
				return
			}
			if res.StatusCode != tc.wantCode {
				t.Fatalf("status %d, want %d:\n%s", res.StatusCode, tc.wantCode, res)
			}
			if tc.wantCode == 401 || tc.wantCode == 407 {
				for _, h := range res.GetHeaders(hdr) {
					c, _ := digest.ParseChallenge(h.Value())
					if c.Stale != tc.wantStale {
						t.Errorf("stale = %v, want %v", c.Stale, tc.wantStale)
					}
				}
			}
			method := methodLabel(req.Method)
			if got := testutil.ToFloat64(d.failures.WithLabelValues(method)); got != tc.wantFailures {
				t.Errorf("%s{method=%s} = %v, want %v", metricAuthFailures, method, got, tc.wantFailures)
			}
		})
	}
}

func TestDigestStaleAnswerThenFreshNonceSucceeds(t *testing.T) {
	clock := newFakeClock()
	d := newTestDigest(t, clock, WithNonceLifetime(time.Minute))
	req := loadRequest(t, "register.sip", msgVars{})
	chal := challengeFor(t, d.challenge(req, 401, false), "WWW-Authenticate", "SHA-256")
	clock.Advance(2 * time.Minute)
	req.AppendHeader(sip.NewHeader("Authorization", answer(t, req, chal, "1001", "secret").String()))
	_, res, ok := d.Authenticate(req, 401)
	if ok {
		t.Fatal("stale nonce accepted")
	}
	chal = challengeFor(t, res, "WWW-Authenticate", "SHA-256")
	if !chal.Stale {
		t.Fatal("want stale=true")
	}
	retry := loadRequest(t, "register.sip", msgVars{CSeq: 2})
	retry.AppendHeader(sip.NewHeader("Authorization", answer(t, retry, chal, "1001", "secret").String()))
	if _, res, ok := d.Authenticate(retry, 401); !ok {
		t.Fatalf("retry with the fresh nonce refused: %v", res)
	}
}

func TestDigestTrustedNetwork(t *testing.T) {
	d := newTestDigest(t, newFakeClock())
	for _, tc := range []struct {
		source      string
		wantTrusted bool
	}{
		{"10.1.2.3:5060", true},
		{"[::ffff:10.9.9.9]:5060", true},
		{"203.0.113.9:5060", false},
		{"not an address", false},
	} {
		req := loadRequest(t, "register.sip", msgVars{Source: tc.source})
		id, _, ok := d.Authenticate(req, 401)
		if ok != tc.wantTrusted || id.Trusted != tc.wantTrusted {
			t.Errorf("%s: ok=%v id=%+v, want trusted=%v", tc.source, ok, id, tc.wantTrusted)
		}
		if tc.wantTrusted && id.User != "1001" {
			t.Errorf("%s: trusted identity user %q, want the From user 1001", tc.source, id.User)
		}
	}
}

func TestNewDigestErrors(t *testing.T) {
	if _, err := NewDigest("", testUsers, nil); !errors.Is(err, ErrNoRealm) {
		t.Errorf("empty realm: %v", err)
	}
	if _, err := NewDigest(testRealm, map[string]string{"1001": ""}, nil); !errors.Is(err, ErrBadOption) {
		t.Errorf("empty password: %v", err)
	}
	if _, err := NewDigest(testRealm, testUsers, nil, WithNonceLifetime(0)); !errors.Is(err, ErrBadOption) {
		t.Errorf("zero lifetime: %v", err)
	}
	if _, err := NewDigest(testRealm, testUsers, nil, WithSecret([]byte("short"))); !errors.Is(err, ErrBadOption) {
		t.Errorf("short secret: %v", err)
	}
	d := newTestDigest(t, newFakeClock())
	if !d.IsUser("1001") || d.IsUser("9999") {
		t.Error("IsUser wrong")
	}
}

// FuzzAuthorization feeds arbitrary Authorization values through the whole
// check: it must never panic and never accept.
func FuzzAuthorization(f *testing.F) {
	clock := newFakeClock()
	d := newTestDigest(f, clock)
	req := loadRequest(f, "register.sip", msgVars{})
	for _, alg := range []string{"MD5", "SHA-256"} {
		chal := challengeFor(f, d.challenge(req, 401, false), "WWW-Authenticate", alg)
		f.Add(answer(f, req, chal, "1001", "wrong").String())
		long := answer(f, req, chal, "1001", "secret")
		long.Response += strings.Repeat("0", 40) // longer than any hash
		f.Add(long.String())
	}
	f.Add(`Digest username="1001", realm="parley.test", nonce="x", uri="sip:parley.test", response="00", qop=auth, nc=00000001, cnonce="a"`)
	f.Add(`Digest username="1001", realm="parley.test", nonce="`)
	f.Add(`Digest ,,,`)
	f.Add(`Basic MTAwMTpzZWNyZXQ=`)
	f.Add(`Digest nc=zz`)
	f.Fuzz(func(t *testing.T, v string) {
		r := loadRequest(t, "register.sip", msgVars{})
		r.AppendHeader(sip.NewHeader("Authorization", v))
		_, res, ok := d.Authenticate(r, 401)
		if ok {
			t.Fatalf("accepted %q", v)
		}
		if res == nil {
			t.Fatalf("no response for %q", v)
		}
	})
}

func TestSameURI(t *testing.T) {
	tests := []struct {
		digest, req string
		ok          bool
	}{
		{"sip:1002@parley.lab", "sip:1002@parley.lab", true},
		{"sip:1002@PARLEY.lab;transport=udp", "sip:1002@parley.lab", true},
		{"sip:127.0.0.1:5060", "sip:9002@127.0.0.1:5060", true}, // SIPp 3.6
		{"sip:1003@parley.lab", "sip:1002@parley.lab", false},
		{"sip:127.0.0.1:5061", "sip:9002@127.0.0.1:5060", false},
		{"sips:1002@parley.lab", "sip:1002@parley.lab", false},
		{"sip:other.lab", "sip:1002@parley.lab", false},
	}
	for _, tt := range tests {
		var a, b sip.Uri
		if err := sip.ParseUri(tt.digest, &a); err != nil {
			t.Fatal(err)
		}
		if err := sip.ParseUri(tt.req, &b); err != nil {
			t.Fatal(err)
		}
		if got := sameURI(&a, &b); got != tt.ok {
			t.Errorf("sameURI(%s, %s) = %v, want %v", tt.digest, tt.req, got, tt.ok)
		}
	}
}

// A client that retries without credentials on the same Call-ID after a
// challenge with both algorithms (baresip 1.0) is then offered MD5 alone;
// other sources and other Call-IDs keep both.
func TestSingleChallengeFallback(t *testing.T) {
	d, err := NewDigest(testRealm, testUsers, nil)
	if err != nil {
		t.Fatal(err)
	}
	algs := func(res *sip.Response) []string {
		var out []string
		for _, h := range res.GetHeaders("WWW-Authenticate") {
			ch, err := digest.ParseChallenge(h.Value())
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, ch.Algorithm)
		}
		return out
	}
	reg := func(source, callID string) []string {
		req := loadRequest(t, "register.sip", msgVars{Source: source, CallID: callID})
		_, res, ok := d.Authenticate(req, 401)
		if ok || res == nil || res.StatusCode != 401 {
			t.Fatalf("want a 401 challenge, got %v", res)
		}
		return algs(res)
	}
	if got := reg("127.0.0.1:5062", "c1"); len(got) != 2 {
		t.Fatalf("first challenge offers %v, want two algorithms", got)
	}
	if got := reg("127.0.0.1:5064", "c9"); len(got) != 2 {
		t.Fatalf("another source: %v", got)
	}
	// The same source and Call-ID again without credentials: fallback.
	if got := reg("127.0.0.1:5062", "c1"); len(got) != 1 || got[0] != AlgorithmMD5 {
		t.Fatalf("after an unanswered challenge: %v, want [MD5]", got)
	}
	if got := reg("127.0.0.1:5062", "c2"); len(got) != 1 {
		t.Fatalf("the source stays on MD5 alone, got %v", got)
	}
	if got := reg("127.0.0.1:5064", "c10"); len(got) != 2 {
		t.Fatalf("other sources keep both: %v", got)
	}
}

func TestSingleChallengeForKnownAgents(t *testing.T) {
	d, err := NewDigest(testRealm, testUsers, nil)
	if err != nil {
		t.Fatal(err)
	}
	for ua, want := range map[string]int{"baresip v1.0.0 (x86_64/linux)": 1, "Linphone/5.2": 2, "": 2} {
		req := loadRequest(t, "register.sip", msgVars{CallID: "ua-" + ua})
		req.RemoveHeader("User-Agent")
		if ua != "" {
			req.AppendHeader(sip.NewHeader("User-Agent", ua))
		}
		_, res, _ := d.Authenticate(req, 401)
		if got := len(res.GetHeaders("WWW-Authenticate")); got != want {
			t.Errorf("User-Agent %q: %d challenges, want %d", ua, got, want)
		}
	}
}

// TestResponseOKAgainstLibrary checks parley's digest arithmetic against
// icholy/digest as a client computes it, for both algorithms, several nonce
// counts and either case of hex.
func TestResponseOKAgainstLibrary(t *testing.T) {
	d := newTestDigest(t, newFakeClock())
	req := loadRequest(t, "register.sip", msgVars{})
	for _, alg := range []string{AlgorithmMD5, AlgorithmSHA256} {
		chal := challengeFor(t, d.challenge(req, 401, false), "WWW-Authenticate", alg)
		for _, nc := range []int{1, 0x1f, 0xabcdef, 0x7fffffff} {
			cred, err := digest.Digest(chal, digest.Options{
				Method: "REGISTER", URI: req.Recipient.String(),
				Username: "1001", Password: "secret", Count: nc,
			})
			if err != nil {
				t.Fatal(err)
			}
			keys := d.users["1001"]
			if !d.responseOK(req, cred, alg, keys) {
				t.Fatalf("%s nc=%x: right answer refused", alg, nc)
			}
			upper := *cred
			upper.Response = strings.ToUpper(cred.Response)
			if !d.responseOK(req, &upper, alg, keys) {
				t.Fatalf("%s nc=%x: upper-case hex refused", alg, nc)
			}
			for _, bad := range []string{cred.Response[:len(cred.Response)-2], cred.Response + "00", "zz" + cred.Response[2:], flipHex(cred.Response)} {
				wrong := *cred
				wrong.Response = bad
				if d.responseOK(req, &wrong, alg, keys) {
					t.Fatalf("%s nc=%x: wrong response %q accepted", alg, nc, bad)
				}
			}
			otherNC := *cred
			otherNC.Nc = nc + 1
			if d.responseOK(req, &otherNC, alg, keys) {
				t.Fatalf("%s nc=%x: answer accepted with another nc", alg, nc)
			}
		}
	}
}

// flipHex changes the last hex digit of s.
func flipHex(s string) string {
	last := byte('0')
	if s[len(s)-1] == '0' {
		last = '1'
	}
	return s[:len(s)-1] + string(last)
}
