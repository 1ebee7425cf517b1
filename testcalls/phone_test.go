package testcalls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/pion/sdp/v3"

	"github.com/parley-sip/parley/dialog/transport/tlstest"
)

// callTimeout bounds every single SIP exchange a phone waits for.
const callTimeout = 10 * time.Second

// ringTime is how long an auto-answering phone rings before it answers.
const ringTime = 50 * time.Millisecond

// answerMode says what a phone does with an incoming INVITE.
type answerMode int

const (
	// answerAuto sends 180, then 200 with an SDP answer.
	answerAuto answerMode = iota
	// answerBusy sends 486 Busy Here.
	answerBusy
	// answerRing sends 180 and never answers (until CANCEL or timeout).
	answerRing
)

// eventKind names what a phone saw.
type eventKind string

const (
	evInvite eventKind = "INVITE"
	evAck    eventKind = "ACK"
	evBye    eventKind = "BYE"
	evCancel eventKind = "CANCEL"
	evNotify eventKind = "NOTIFY"
)

// event is one request a phone received.
type event struct {
	Kind eventKind
	Req  *sip.Request
	// Call is the dialog an INVITE created (nil for other kinds).
	Call *inboundCall
}

// inboundCall is an INVITE a phone received.
type inboundCall struct {
	Req     *sip.Request
	Session *sipgo.DialogServerSession
	// Answered is closed once the 200 was sent and ACKed.
	Answered chan struct{}
}

// phone is a sipgo user agent that registers with parley, calls and answers.
type phone struct {
	t         *testing.T
	User      string
	Password  string
	Transport string // "udp", "tcp" or "tls"
	// Addr is the host:port the phone listens on (its Contact).
	Addr string
	// Proxy is parley's host:port.
	Proxy string

	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	cli     *sipgo.Client
	contact sip.ContactHeader
	calls   *sipgo.DialogClientCache
	answers *sipgo.DialogServerCache
	closer  func()

	mu   sync.Mutex
	mode answerMode
	// ring, when set, is how long an auto-answering phone rings instead
	// of ringTime.
	ring time.Duration
	// sdp, when set, writes the phone's SDP bodies (see setSDP).
	sdp func(offer []byte) []byte
	// reinvite, when set, answers an INVITE inside one of the phone's
	// dialogs: it returns the SDP answer to the request's offer.
	reinvite func(req *sip.Request) []byte
	// answerWith is the status the phone answers an in-dialog NOTIFY or
	// INFO with (200 when absent), to play a phone whose usage is gone.
	answerWith map[sip.RequestMethod]int

	events chan event
	// infos holds the in-dialog INFOs the phone received, in order.
	infos chan *sip.Request
	// messages holds the MESSAGEs the phone received (each answered 200).
	messages chan *sip.Request
}

// newPhone starts a phone for user listening on a free loopback port.
func newPhone(t *testing.T, user, proxy, transport string) *phone {
	t.Helper()
	return newPhoneAt(t, user, proxy, transport, "127.0.0.1")
}

// newPhoneAt is newPhone on the loopback address host (127.0.0.1, ::1).
func newPhoneAt(t *testing.T, user, proxy, transport, host string) *phone {
	t.Helper()
	return newPhoneCA(t, user, proxy, transport, host, nil)
}

// newPhoneCA is newPhoneAt for any transport; a "tls" phone trusts ca
// (and only it) and listens with a certificate ca issued (tls_test.go).
func newPhoneCA(t *testing.T, user, proxy, transport, host string, ca *tlstest.CA) *phone {
	t.Helper()
	p := &phone{
		t:         t,
		User:      user,
		Password:  testUsers[user],
		Transport: transport,
		Proxy:     proxy,
		events:    make(chan event, 1024),
		infos:     make(chan *sip.Request, 64),
		messages:  make(chan *sip.Request, 64),
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	if os.Getenv("PARLEY_TEST_SIPDEBUG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	uaOpts := []sipgo.UserAgentOption{sipgo.WithUserAgent(user), sipgo.WithUserAgentHostname(host)}
	if ca != nil {
		uaOpts = append(uaOpts, sipgo.WithUserAgenTLSConfig(ca.ClientConfig()))
	}
	ua, err := sipgo.NewUA(uaOpts...)
	if err != nil {
		t.Fatal(err)
	}
	p.ua = ua
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	p.srv = srv

	var clientOpts []sipgo.ClientOption
	clientOpts = append(clientOpts, sipgo.WithClientHostname(host), sipgo.WithClientLogger(logger))
	// The phone serves only once its handlers are in place: a request
	// that came earlier would race with their registration.
	var serve func()
	switch transport {
	case "udp":
		conn, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		p.Addr = conn.LocalAddr().String()
		// Send from the listening socket, so that Via, Contact and the
		// source address agree (as a real phone's would).
		clientOpts = append(clientOpts, sipgo.WithClientConnectionAddr(p.Addr))
		serve = func() {
			go srv.ServeUDP(conn)
			// Requests name the listener as their local address, so it
			// must be in sipgo's connection pool before the first one is
			// sent.
			deadline := time.Now().Add(2 * time.Second)
			for {
				if c, _ := ua.TransportLayer().GetConnection("udp", p.Addr); c != nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("phone %s: sipgo did not start serving %s", user, p.Addr)
				}
				time.Sleep(time.Millisecond)
			}
		}
		p.closer = func() { conn.Close() }
	case "tcp":
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		p.Addr = l.Addr().String()
		serve = func() { go srv.ServeTCP(l) }
		p.closer = func() { l.Close() }
	case "tls":
		l, err := tls.Listen("tcp", net.JoinHostPort(host, "0"), ca.ServerConfig(t, 1000))
		if err != nil {
			t.Fatal(err)
		}
		p.Addr = l.Addr().String()
		serve = func() { go srv.ServeTLS(l) }
		p.closer = func() { l.Close() }
	default:
		t.Fatalf("unknown transport %q", transport)
	}
	cli, err := sipgo.NewClient(ua, clientOpts...)
	if err != nil {
		t.Fatal(err)
	}
	p.cli = cli

	host, port, _ := net.SplitHostPort(p.Addr)
	p.contact = sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: host, Port: atoi(port)}}
	if transport == "tcp" || transport == "tls" {
		p.contact.Address.UriParams = sip.NewParams()
		p.contact.Address.UriParams.Add("transport", transport)
	}
	p.calls = sipgo.NewDialogClientCache(cli, p.contact)
	p.answers = sipgo.NewDialogServerCache(cli, p.contact)

	srv.OnInvite(p.onInvite)
	srv.OnAck(p.onAck)
	srv.OnBye(p.onBye)
	srv.OnNotify(p.onUsage)
	srv.OnInfo(p.onUsage)
	srv.OnCancel(func(req *sip.Request, tx sip.ServerTransaction) {
		// A CANCEL matching a pending INVITE is answered by sipgo's
		// transaction layer; this one matched nothing.
		p.emit(event{Kind: evCancel, Req: req})
		tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	})
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		select {
		case p.messages <- req:
		default:
			p.t.Errorf("phone %s: message queue full", user)
		}
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	serve()
	t.Cleanup(p.close)
	return p
}

func (p *phone) close() {
	p.closer()
	p.ua.Close()
}

func atoi(s string) int {
	n := 0
	fmt.Sscan(s, &n)
	return n
}

// setMode changes how the phone answers incoming INVITEs.
func (p *phone) setMode(m answerMode) {
	p.mu.Lock()
	p.mode = m
	p.mu.Unlock()
}

func (p *phone) emit(e event) {
	select {
	case p.events <- e:
	default:
		p.t.Errorf("phone %s: event queue full, dropped %s", p.User, e.Kind)
	}
}

// waitEvent waits for the next event of kind, skipping others, within d.
func (p *phone) waitEvent(kind eventKind, d time.Duration) (event, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case e := <-p.events:
			if e.Kind == kind {
				return e, nil
			}
		case <-timer.C:
			return event{}, fmt.Errorf("phone %s: no %s within %v", p.User, kind, d)
		}
	}
}

// mustEvent is waitEvent that fails the test.
func (p *phone) mustEvent(kind eventKind) event {
	p.t.Helper()
	e, err := p.waitEvent(kind, callTimeout)
	if err != nil {
		p.t.Fatal(err)
	}
	return e
}

// noEvent asserts that no event of kind arrives within d.
func (p *phone) noEvent(kind eventKind, d time.Duration) {
	p.t.Helper()
	if e, err := p.waitEvent(kind, d); err == nil {
		p.t.Errorf("phone %s: unexpected %s:\n%s", p.User, kind, e.Req)
	}
}

func (p *phone) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	p.mu.Lock()
	reinvite := p.reinvite
	p.mu.Unlock()
	if reinvite != nil && req.To() != nil && req.To().Params.Has("tag") {
		p.onReinvite(req, tx, reinvite)
		return
	}
	sess, err := p.answers.ReadInvite(req, tx)
	if err != nil {
		p.t.Errorf("phone %s: bad INVITE from parley: %v\n%s", p.User, err, req)
		tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad Request", nil))
		return
	}
	call := &inboundCall{Req: req, Session: sess, Answered: make(chan struct{})}
	tx.OnCancel(func(r *sip.Request) { p.emit(event{Kind: evCancel, Req: r}) })
	p.emit(event{Kind: evInvite, Req: req, Call: call})

	p.mu.Lock()
	mode, ring := p.mode, p.ring
	p.mu.Unlock()
	if ring == 0 {
		ring = ringTime
	}
	switch mode {
	case answerBusy:
		if err := sess.Respond(486, "Busy Here", nil); err != nil {
			p.t.Logf("phone %s: 486: %v", p.User, err)
		}
		sess.Close()
	case answerRing:
		if err := sess.Respond(180, "Ringing", nil); err != nil {
			p.t.Logf("phone %s: 180: %v", p.User, err)
		}
		select {
		case <-sess.Context().Done():
		case <-time.After(callTimeout):
			sess.Respond(480, "Temporarily Unavailable", nil)
		}
		sess.Close()
	default:
		if err := sess.Respond(180, "Ringing", nil); err != nil {
			p.t.Logf("phone %s: 180: %v", p.User, err)
			return
		}
		// Ring a little, as a person would: sipgo (in parley as here)
		// handles each message on its own goroutine, so a 200 sent right
		// after the 180 may overtake it, and the caller would never see
		// the 180.
		time.Sleep(ring)
		// RespondSDP returns once the ACK arrived (or after 64*T1).
		if err := sess.RespondSDP(p.sdpBody(req.Body())); err != nil {
			p.t.Logf("phone %s: 200: %v", p.User, err)
			return
		}
		close(call.Answered)
	}
}

// onReinvite answers an INVITE inside one of the phone's dialogs with 200
// and answer's SDP, and takes its Contact as the dialog's new remote target
// (RFC 3261 §12.2.2: a re-INVITE refreshes it), so that the phone's BYE
// goes where the re-INVITE came from.
func (p *phone) onReinvite(req *sip.Request, tx sip.ServerTransaction, answer func(*sip.Request) []byte) {
	body := answer(req)
	res := sip.NewResponseFromRequest(req, 200, "OK", body)
	res.AppendHeader(sip.HeaderClone(&p.contact))
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	if ct := req.Contact(); ct != nil {
		if cs, err := p.calls.MatchRequestDialog(req); err == nil {
			cs.InviteResponse.ReplaceHeader(sip.HeaderClone(ct))
		} else if ss, err := p.answers.MatchDialogRequest(req); err == nil {
			ss.InviteRequest.ReplaceHeader(sip.HeaderClone(ct))
		}
	}
	if err := tx.Respond(res); err != nil {
		p.t.Logf("phone %s: 200 to re-INVITE: %v", p.User, err)
	}
}

// onUsage answers an in-dialog NOTIFY or INFO with the status set in
// answerWith for its method, 200 by default.
func (p *phone) onUsage(req *sip.Request, tx sip.ServerTransaction) {
	p.mu.Lock()
	code := p.answerWith[req.Method]
	p.mu.Unlock()
	if code == 0 {
		code = 200
	}
	if req.Method == sip.INFO {
		select {
		case p.infos <- req:
		default:
		}
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, code, sipReason(code), nil))
	if req.Method == sip.NOTIFY {
		p.emit(event{Kind: evNotify, Req: req})
	}
}

// sipReason is the reason phrase of the few codes test phones send.
func sipReason(code int) string {
	switch code {
	case 200:
		return "OK"
	case 481:
		return "Call/Transaction Does Not Exist"
	}
	return "Whatever"
}

func (p *phone) onAck(req *sip.Request, tx sip.ServerTransaction) {
	p.emit(event{Kind: evAck, Req: req})
	if err := p.answers.ReadAck(req, tx); err != nil && !errors.Is(err, sipgo.ErrDialogDoesNotExists) {
		p.t.Logf("phone %s: ACK: %v", p.User, err)
	}
}

func (p *phone) onBye(req *sip.Request, tx sip.ServerTransaction) {
	p.emit(event{Kind: evBye, Req: req})
	err := p.answers.ReadBye(req, tx)
	if errors.Is(err, sipgo.ErrDialogDoesNotExists) || errors.Is(err, sipgo.ErrDialogOutsideDialog) {
		err = p.calls.ReadBye(req, tx)
	}
	if err != nil {
		p.t.Logf("phone %s: BYE matches no dialog: %v", p.User, err)
		tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	}
}

// uri builds a SIP URI for user at parley, with the phone's transport.
func (p *phone) uri(user string) sip.Uri {
	host, port, _ := net.SplitHostPort(p.Proxy)
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // sipgo dials the Host as it is
	}
	u := sip.Uri{Scheme: "sip", User: user, Host: host, Port: atoi(port)}
	if p.Transport == "tcp" || p.Transport == "tls" {
		u.UriParams = sip.NewParams()
		u.UriParams.Add("transport", p.Transport)
	}
	return u
}

// aor is the phone's address of record in the realm.
func (p *phone) aor() sip.Uri {
	return sip.Uri{Scheme: "sip", User: p.User, Host: "parley.lab"}
}

// newRequest builds an out-of-dialog request to user@parley (or to parley
// itself when user is empty), From this phone.
func (p *phone) newRequest(method sip.RequestMethod, user string, to sip.Uri) *sip.Request {
	req := sip.NewRequest(method, p.uri(user))
	req.SetTransport(strings.ToUpper(p.Transport))
	from := &sip.FromHeader{Address: p.aor(), Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: to})
	return req
}

// registerResult is what a REGISTER exchange produced.
type registerResult struct {
	// Challenge is the first (401) response.
	Challenge *sip.Response
	// Final is the response to the authenticated REGISTER (nil when the
	// first response was not a 401).
	Final *sip.Response
}

// register sends REGISTER with the given expiry, answers a 401 with the
// given password using algorithm alg ("" takes the first challenge offered).
func (p *phone) register(password, alg string, expires int) (registerResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req := p.newRequest(sip.REGISTER, "", p.aor())
	req.AppendHeader(&p.contact)
	req.AppendHeader(sip.NewHeader("Expires", fmt.Sprint(expires)))
	req.SetBody(nil)

	var out registerResult
	res, err := p.cli.Do(ctx, req)
	if err != nil {
		return out, fmt.Errorf("REGISTER: %w", err)
	}
	out.Challenge = res
	if res.StatusCode != 401 {
		return out, nil
	}
	chal, err := pickChallenge(res.GetHeaders("WWW-Authenticate"), alg)
	if err != nil {
		return out, err
	}
	cred, err := digest.Digest(chal, digest.Options{
		Method:   "REGISTER",
		URI:      req.Recipient.Addr(),
		Username: p.User,
		Password: password,
		Count:    1,
	})
	if err != nil {
		return out, fmt.Errorf("digest: %w", err)
	}
	auth := req.Clone()
	auth.RemoveHeader("Via")
	auth.RemoveHeader("Authorization")
	auth.AppendHeader(sip.NewHeader("Authorization", cred.String()))
	auth.CSeq().SeqNo++
	res, err = p.cli.Do(ctx, auth, sipgo.ClientRequestAddVia)
	if err != nil {
		return out, fmt.Errorf("authenticated REGISTER: %w", err)
	}
	out.Final = res
	return out, nil
}

// mustRegister registers the phone with its own password and expects 200.
func (p *phone) mustRegister() {
	p.t.Helper()
	r, err := p.register(p.Password, "", 3600)
	if err != nil {
		p.t.Fatalf("phone %s: %v", p.User, err)
	}
	if r.Challenge.StatusCode != 401 {
		p.t.Fatalf("phone %s: REGISTER without credentials got %d, want 401:\n%s", p.User, r.Challenge.StatusCode, r.Challenge)
	}
	if r.Final.StatusCode != 200 {
		p.t.Fatalf("phone %s: authenticated REGISTER got %d, want 200:\n%s", p.User, r.Final.StatusCode, r.Final)
	}
}

// pickChallenge returns the challenge using alg (case-insensitive; "" or
// "MD5" also match a challenge without algorithm), or the first when alg is "".
func pickChallenge(hdrs []sip.Header, alg string) (*digest.Challenge, error) {
	if len(hdrs) == 0 {
		return nil, errors.New("401 without WWW-Authenticate")
	}
	var offered []string
	for _, h := range hdrs {
		chal, err := digest.ParseChallenge(h.Value())
		if err != nil {
			return nil, fmt.Errorf("bad challenge %q: %w", h.Value(), err)
		}
		a := strings.ToUpper(chal.Algorithm)
		chal.Algorithm = a
		if alg == "" || a == strings.ToUpper(alg) || (a == "" && strings.EqualFold(alg, "MD5")) {
			return chal, nil
		}
		offered = append(offered, a)
	}
	return nil, fmt.Errorf("no %s challenge among %v", alg, offered)
}

// outboundCall is a call the phone placed.
type outboundCall struct {
	Session *sipgo.DialogClientSession
	// Responses lists every response to the INVITE(s), in order.
	Responses []*sip.Response
	// Final is the final response (nil if none came).
	Final *sip.Response
	// Err is WaitAnswer's error (nil when answered).
	Err error
}

// codes returns the status codes of c.Responses.
func (c *outboundCall) codes() []int {
	var out []int
	for _, r := range c.Responses {
		out = append(out, int(r.StatusCode))
	}
	return out
}

// call places a call to user at parley and waits, within ctx, for the final
// response, authenticating a 407 with the phone's credentials. On 2xx it
// sends the ACK.
func (p *phone) call(ctx context.Context, user string) *outboundCall {
	p.t.Helper()
	req := p.newRequest(sip.INVITE, user, sip.Uri{Scheme: "sip", User: user, Host: "parley.lab"})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(p.sdpBody(nil))
	sess, err := p.calls.WriteInvite(ctx, req)
	if err != nil {
		p.t.Fatalf("phone %s: INVITE %s: %v", p.User, user, err)
	}
	c := &outboundCall{Session: sess}
	var mu sync.Mutex
	err = sess.WaitAnswer(ctx, sipgo.AnswerOptions{
		Username: p.User,
		Password: p.Password,
		OnResponse: func(res *sip.Response) error {
			mu.Lock()
			c.Responses = append(c.Responses, res)
			if !res.IsProvisional() {
				c.Final = res
			}
			mu.Unlock()
			return nil
		},
	})
	mu.Lock()
	defer mu.Unlock()
	// After a CANCEL, sipgo reads the 487 itself, past OnResponse.
	if r := sess.InviteResponse; r != nil && !r.IsProvisional() && r != c.Final {
		c.Responses = append(c.Responses, r)
		c.Final = r
	}
	c.Err = err
	if err == nil {
		if err := sess.Ack(ctx); err != nil {
			p.t.Errorf("phone %s: ACK: %v", p.User, err)
		}
	}
	return c
}

// mustAnswered asserts c was answered with a 2xx carrying a valid SDP.
func (c *outboundCall) mustAnswered(t *testing.T) {
	t.Helper()
	if c.Err != nil || c.Final == nil || !c.Final.IsSuccess() {
		t.Fatalf("call not answered: err=%v responses=%v final:\n%v", c.Err, c.codes(), c.Final)
	}
	checkSDP(t, "200 to the caller", c.Final.Body())
}

// hangup sends BYE on an answered outbound call and wants 200.
func (c *outboundCall) hangup(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := c.Session.Bye(ctx); err != nil {
		t.Fatalf("caller BYE: %v", err)
	}
	c.Session.Close()
}

// hangup sends BYE from the callee on an answered inbound call.
func (c *inboundCall) hangup(t *testing.T) {
	t.Helper()
	select {
	case <-c.Answered:
	case <-time.After(callTimeout):
		t.Fatal("callee: the 200 was never ACKed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := c.Session.Bye(ctx); err != nil {
		t.Fatalf("callee BYE: %v", err)
	}
	c.Session.Close()
}

// sdpOffer returns a G.711 audio offer for a phone at addr.
func sdpOffer(addr string) []byte {
	host, _, _ := net.SplitHostPort(addr)
	id := rand.Uint32()
	rtpPort := 20000 + 2*rand.IntN(5000)
	return []byte(fmt.Sprintf("v=0\r\n"+
		"o=- %d %d IN IP4 %s\r\n"+
		"s=parley-test\r\n"+
		"c=IN IP4 %s\r\n"+
		"t=0 0\r\n"+
		"m=audio %d RTP/AVP 0 8 101\r\n"+
		"a=rtpmap:0 PCMU/8000\r\n"+
		"a=rtpmap:8 PCMA/8000\r\n"+
		"a=rtpmap:101 telephone-event/8000\r\n"+
		"a=fmtp:101 0-16\r\n"+
		"a=ptime:20\r\n"+
		"a=sendrecv\r\n", id, id, host, host, rtpPort))
}

// checkSDP asserts body is an SDP with an audio stream on a port and an
// address; parley may rewrite it, so nothing more is compared.
func checkSDP(t *testing.T, what string, body []byte) {
	t.Helper()
	if len(body) == 0 {
		t.Errorf("%s: no SDP body", what)
		return
	}
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		t.Errorf("%s: SDP does not parse: %v\n%s", what, err, body)
		return
	}
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media != "audio" {
			continue
		}
		if m.MediaName.Port.Value <= 0 {
			t.Errorf("%s: audio stream without a port:\n%s", what, body)
		}
		if m.ConnectionInformation == nil && sd.ConnectionInformation == nil {
			t.Errorf("%s: no c= line:\n%s", what, body)
		}
		if len(m.MediaName.Formats) == 0 {
			t.Errorf("%s: audio stream without formats:\n%s", what, body)
		}
		return
	}
	t.Errorf("%s: SDP has no audio stream:\n%s", what, body)
}

// statusOf returns the status code of the final response of c, or 0.
func (c *outboundCall) status() int {
	if c.Final == nil {
		return 0
	}
	return int(c.Final.StatusCode)
}
