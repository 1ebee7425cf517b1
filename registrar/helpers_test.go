package registrar

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testRealm = "parley.test"

var testUsers = map[string]string{"1001": "secret", "1002": "hunter2"}

// recordingTx is a sip.ServerTransaction that keeps the responses sent.
type recordingTx struct {
	mu        sync.Mutex
	responses []*sip.Response
	done      chan struct{}
}

func newRecordingTx() *recordingTx { return &recordingTx{done: make(chan struct{})} }

func (tx *recordingTx) Respond(res *sip.Response) error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	tx.responses = append(tx.responses, res)
	return nil
}
func (tx *recordingTx) Terminate()                         {}
func (tx *recordingTx) OnTerminate(sip.FnTxTerminate) bool { return true }
func (tx *recordingTx) Done() <-chan struct{}              { return tx.done }
func (tx *recordingTx) Err() error                         { return nil }
func (tx *recordingTx) Acks() <-chan *sip.Request          { return nil }
func (tx *recordingTx) OnCancel(sip.FnTxCancel) bool       { return true }
func (tx *recordingTx) last(t *testing.T) *sip.Response {
	t.Helper()
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if len(tx.responses) != 1 {
		t.Fatalf("handler sent %d responses, want exactly 1", len(tx.responses))
	}
	return tx.responses[0]
}

// msgVars fills the {{...}} placeholders of a testdata message.
type msgVars struct {
	User, CallID, Expires, Source, Transport string
	CSeq                                     int
}

// loadRequest reads testdata/name, fills the placeholders, turns LF into
// CRLF and parses it with sipgo's parser, as the transport layer would.
func loadRequest(t testing.TB, name string, v msgVars) *sip.Request {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	def := func(s, d string) string {
		if s == "" {
			return d
		}
		return s
	}
	if v.CSeq == 0 {
		v.CSeq = 1
	}
	text := strings.NewReplacer(
		"{{USER}}", def(v.User, "1001"),
		"{{CALLID}}", def(v.CallID, "call-1"),
		"{{CSEQ}}", fmt.Sprint(v.CSeq),
		"{{EXPIRES}}", def(v.Expires, "3600"),
	).Replace(string(data))
	text = strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\n", "\r\n")
	msg, err := sip.ParseMessage([]byte(text))
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		t.Fatalf("%s is not a request", name)
	}
	req.SetSource(def(v.Source, "203.0.113.9:40123"))
	req.SetTransport(def(v.Transport, "UDP"))
	return req
}

// fakeClock is a settable clock shared by the Digest and the Registrar.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var testTrusted = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}

func newTestDigest(t testing.TB, clock *fakeClock, opts ...DigestOption) *Digest {
	t.Helper()
	opts = append([]DigestOption{WithDigestClock(clock.Now), WithSecret([]byte("0123456789abcdef0123456789abcdef"))}, opts...)
	d, err := NewDigest(testRealm, testUsers, testTrusted, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// challengeFor returns the parsed challenge of res for alg.
func challengeFor(t testing.TB, res *sip.Response, header, alg string) *digest.Challenge {
	t.Helper()
	for _, h := range res.GetHeaders(header) {
		c, err := digest.ParseChallenge(h.Value())
		if err != nil {
			t.Fatalf("bad challenge %q: %v", h.Value(), err)
		}
		if strings.EqualFold(c.Algorithm, alg) {
			return c
		}
	}
	t.Fatalf("no %s challenge for %s in\n%s", header, alg, res)
	return nil
}

// answer computes credentials for req from chal as a client would.
func answer(t testing.TB, req *sip.Request, chal *digest.Challenge, user, password string) *digest.Credentials {
	t.Helper()
	cred, err := digest.Digest(chal, digest.Options{
		Method:   string(req.Method),
		URI:      req.Recipient.String(),
		Username: user,
		Password: password,
		Count:    1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// authorize adds a correct Authorization header for user to req, answering
// a challenge d issues now.
func authorize(t testing.TB, d *Digest, req *sip.Request, user, password, alg string) {
	t.Helper()
	res := d.challenge(req, 401, false)
	chal := challengeFor(t, res, "WWW-Authenticate", alg)
	req.AppendHeader(sip.NewHeader("Authorization", answer(t, req, chal, user, password).String()))
}
