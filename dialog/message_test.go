package dialog

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// msgRig is a Server between a sender and the phones a MESSAGE can reach:
// 1002 registered twice (a and b), 1004 registered through another node
// (node), 1003 a local user with no registration, and the route 9… to
// trunk.
type msgRig struct {
	s                         *Server
	parley                    *net.UDPAddr
	sender, a, b, node, trunk *peer
}

func newMsgRig(t *testing.T, opts ...Option) *msgRig {
	t.Helper()
	r := &msgRig{
		sender: newPeer(t, "sender"),
		a:      newPeer(t, "a"),
		b:      newPeer(t, "b"),
		node:   newPeer(t, "node"),
		trunk:  newPeer(t, "trunk"),
	}
	contact := func(p *peer, user string) Contact {
		return Contact{URI: "sip:" + user + "@" + p.hostport(), Dest: p.hostport(), Transport: "udp"}
	}
	remote := contact(r.node, "1004")
	remote.Node, remote.NodeAddr = "n2", r.node.hostport()
	yaml := fmt.Sprintf("sip:\n  listen: [udp://127.0.0.1:0]\n  realm: parley.lab\nroutes:\n  - {match: '^9(\\d+)$', target: 'sip:$1@127.0.0.1:%d'}\n", r.trunk.port())
	opts = append([]Option{
		WithLogger(slog.New(&logHandler{})),
		WithNode("n1"),
		WithAuthenticator(fakeAuth{users: map[string]bool{"1001": true, "1002": true, "1003": true, "1004": true}}),
		WithLocator(fakeLocator{
			"1002": {contact(r.a, "1002"), contact(r.b, "1002")},
			"1004": {remote},
		}),
	}, opts...)
	r.s = startServer(t, yaml, opts...)
	addr, err := net.ResolveUDPAddr("udp", r.s.Addr("udp"))
	if err != nil {
		t.Fatal(err)
	}
	r.parley = addr
	t.Cleanup(func() {
		time.Sleep(50 * time.Millisecond)
		if t.Failed() {
			t.Logf("sender received:\n%sa:\n%sb:\n%snode:\n%strunk:\n%s", r.sender.dump(), r.a.dump(), r.b.dump(), r.node.dump(), r.trunk.dump())
		}
	})
	return r
}

// send sends the sender's MESSAGE to user with extra headers and a
// text/plain body, and returns its Call-ID.
func (r *msgRig) send(t *testing.T, user, toTag, extra, body string) string {
	callID := sipmsg.NewTag() + "@sender"
	to := "<sip:" + user + "@parley.lab>"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	msg := "MESSAGE sip:" + user + "@parley.lab SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + r.sender.hostport() + ";branch=" + branch() + ";rport\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: \"Alice\" <sip:1001@parley.lab>;tag=" + sipmsg.NewTag() + "\r\n" +
		"To: " + to + "\r\n" +
		"Call-ID: " + callID + "\r\n" +
		"CSeq: 1 MESSAGE\r\n" +
		extra +
		"Content-Type: text/plain\r\n" +
		"Content-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body
	r.sender.send(t, r.parley, msg)
	return callID
}

// answer waits for the sender's final response and checks its status.
func (r *msgRig) answer(t *testing.T, code int) *sip.Response {
	t.Helper()
	in := r.sender.expect(t, "final response to MESSAGE", 5*time.Second, isResponse(sip.MESSAGE))
	if in == nil {
		t.FailNow()
	}
	if in.res().StatusCode != code {
		t.Fatalf("sender got %s, want %d:\n%s", in.res().StartLine(), code, in.res())
	}
	return in.res()
}

// TestMessageDelivered: a MESSAGE to a user registered twice reaches both
// contacts as parley's own MESSAGE (RFC 3428 §4: no Contact; a new
// Call-ID; From the sender at the realm; the body and its type as they
// came; one hop fewer), and the sender hears the first 2xx.
func TestMessageDelivered(t *testing.T) {
	r := newMsgRig(t)
	senderCallID := r.send(t, "1002", "", "Subject: lunch\r\n", "hello, 1002")
	var got []*inbound
	for _, p := range []*peer{r.a, r.b} {
		in := p.expect(t, "MESSAGE", 5*time.Second, isRequest(sip.MESSAGE))
		if in == nil {
			t.FailNow()
		}
		got = append(got, in)
		req := in.req()
		if want := "sip:1002@" + p.hostport(); req.Recipient.String() != want {
			t.Errorf("%s: Request-URI %s, want %s", p.name, req.Recipient.String(), want)
		}
		if f := req.From(); f.DisplayName != "Alice" || f.Address.String() != "sip:1001@parley.lab" {
			t.Errorf("%s: From %s, want \"Alice\" <sip:1001@parley.lab>", p.name, f.Value())
		}
		if to := req.To(); to.Address.String() != "sip:1002@parley.lab" || sipmsg.HasToTag(req) {
			t.Errorf("%s: To %s, want <sip:1002@parley.lab> without a tag", p.name, to.Value())
		}
		if sipmsg.CallID(req) == senderCallID {
			t.Errorf("%s: parley passed on the sender's Call-ID", p.name)
		}
		if req.Contact() != nil {
			t.Errorf("%s: MESSAGE carries a Contact (RFC 3428 §4)", p.name)
		}
		if mf := req.MaxForwards(); mf == nil || mf.Val() != 69 {
			t.Errorf("%s: Max-Forwards %v, want 69", p.name, mf)
		}
		if string(req.Body()) != "hello, 1002" || req.ContentType() == nil || req.ContentType().Value() != "text/plain" {
			t.Errorf("%s: body %q of type %v, want \"hello, 1002\" text/plain", p.name, req.Body(), req.ContentType())
		}
		if h := sipmsg.HeaderNamed(req, "Subject"); h == nil || h.Value() != "lunch" {
			t.Errorf("%s: Subject not passed on", p.name)
		}
	}
	if a, b := got[0].req(), got[1].req(); branchOf(a) == branchOf(b) || sipmsg.CallID(a) != sipmsg.CallID(b) {
		t.Errorf("branches %s and %s, Call-IDs %s and %s: want one message, two branches",
			branchOf(a), branchOf(b), sipmsg.CallID(a), sipmsg.CallID(b))
	}
	r.b.reply(t, got[1], 100, "Trying", "", "")
	r.b.reply(t, got[1], 202, "Accepted", "b1", "")
	res := r.answer(t, 202)
	if sipmsg.Tag(res.To().Params) == "" {
		t.Errorf("202 to the sender has no To tag:\n%s", res)
	}
	// The other contact answers later: nothing more for the sender.
	r.a.reply(t, got[0], 200, "OK", "a1", "")
	if extra := r.sender.poll(300*time.Millisecond, isResponse(sip.MESSAGE)); extra != nil {
		t.Errorf("sender got a second final response: %s", extra)
	}
}

// TestMessageFailures: the sender hears why a MESSAGE went nowhere, as a
// caller would.
func TestMessageFailures(t *testing.T) {
	r := newMsgRig(t)
	t.Run("unknown user", func(t *testing.T) {
		r.send(t, "4444", "", "", "hi")
		r.answer(t, 404)
	})
	t.Run("user not registered", func(t *testing.T) {
		r.send(t, "1003", "", "", "hi")
		r.answer(t, 480)
	})
	t.Run("best failure of the contacts", func(t *testing.T) {
		r.send(t, "1002", "", "", "hi")
		ina := r.a.expect(t, "MESSAGE", 5*time.Second, isRequest(sip.MESSAGE))
		inb := r.b.expect(t, "MESSAGE", 5*time.Second, isRequest(sip.MESSAGE))
		if ina == nil || inb == nil {
			t.FailNow()
		}
		r.a.reply(t, ina, 500, "Server Internal Error", "a1", "")
		r.b.reply(t, inb, 486, "Busy Here", "b1", "")
		r.answer(t, 486)
	})
	t.Run("inside a dialog parley does not have", func(t *testing.T) {
		r.send(t, "1002", "nosuchtag", "", "hi")
		r.answer(t, 481)
	})
}

// TestMessageTooManyHops: a MESSAGE out of hops is answered 483 and goes
// nowhere.
func TestMessageTooManyHops(t *testing.T) {
	r := newMsgRig(t)
	msg := "MESSAGE sip:1002@parley.lab SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + r.sender.hostport() + ";branch=" + branch() + ";rport\r\n" +
		"Max-Forwards: 0\r\nFrom: <sip:1001@parley.lab>;tag=x1\r\nTo: <sip:1002@parley.lab>\r\n" +
		"Call-ID: hops@sender\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
	r.sender.send(t, r.parley, msg)
	r.answer(t, 483)
	if in := r.a.poll(200*time.Millisecond, isRequest(sip.MESSAGE)); in != nil {
		t.Errorf("a MESSAGE out of hops was delivered: %s", in)
	}
}

// TestMessageThroughNodeAndRoute: a contact held by another node of the
// cluster is reached through that node, as a call is (Request-URI marked
// parley-node), and a route target gets the MESSAGE as a trunk gets calls.
func TestMessageThroughNodeAndRoute(t *testing.T) {
	r := newMsgRig(t)
	r.send(t, "1004", "", "", "via n2")
	in := r.node.expect(t, "MESSAGE", 5*time.Second, isRequest(sip.MESSAGE))
	if in == nil {
		t.FailNow()
	}
	if v, ok := in.req().Recipient.UriParams.Get(nodeParam); !ok || v != "n2" {
		t.Errorf("Request-URI %s is not marked for node n2", in.req().Recipient.String())
	}
	r.node.reply(t, in, 200, "OK", "n", "")
	r.answer(t, 200)

	r.send(t, "9555", "", "", "to the trunk")
	in = r.trunk.expect(t, "MESSAGE", 5*time.Second, isRequest(sip.MESSAGE))
	if in == nil {
		t.FailNow()
	}
	if want := fmt.Sprintf("sip:555@127.0.0.1:%d", r.trunk.port()); in.req().Recipient.String() != want {
		t.Errorf("Request-URI %s, want %s", in.req().Recipient.String(), want)
	}
	r.trunk.reply(t, in, 200, "OK", "t", "")
	r.answer(t, 200)
}

// challengeAuth challenges every request, as the registrar does a
// stranger's.
type challengeAuth struct{ fakeAuth }

func (challengeAuth) Authenticate(req *sip.Request, code int) (string, *sip.Response, bool) {
	res := sipmsg.NewResponse(req, code, "Proxy Authentication Required", "")
	res.AppendHeader(sip.NewHeader("Proxy-Authenticate", `Digest realm="parley.lab", nonce="n", qop="auth"`))
	return "", res, false
}

// TestMessageChallenged: a MESSAGE without credentials is challenged with
// 407, as an INVITE is, and goes nowhere.
func TestMessageChallenged(t *testing.T) {
	r := newMsgRig(t, WithAuthenticator(challengeAuth{fakeAuth{users: map[string]bool{"1002": true}}}))
	r.send(t, "1002", "", "", "hi")
	res := r.answer(t, 407)
	if sipmsg.HeaderNamed(res, "Proxy-Authenticate") == nil {
		t.Errorf("407 without Proxy-Authenticate:\n%s", res)
	}
	if in := r.a.poll(200*time.Millisecond, isRequest(sip.MESSAGE)); in != nil {
		t.Errorf("an unauthenticated MESSAGE was delivered: %s", in)
	}
}

// TestMessageNoAnswer: when no contact answers, the sender hears 408
// after messageWait (20·T1), well before its own Timer F. It runs with
// small timers (see inSmallT1).
func TestMessageNoAnswer(t *testing.T) {
	if !inSmallT1(t) {
		return
	}
	r := newMsgRig(t)
	start := time.Now()
	r.send(t, "1002", "", "", "anyone?")
	in := r.sender.expect(t, "final response to MESSAGE", 10*time.Second, isResponse(sip.MESSAGE))
	if in == nil {
		t.FailNow()
	}
	if in.res().StatusCode != 408 {
		t.Fatalf("got %s, want 408", in.res().StartLine())
	}
	if took := time.Since(start); took < messageWait() || took > messageWait()+2*time.Second {
		t.Errorf("408 after %v, want after messageWait (%v)", took, messageWait())
	}
	if !strings.Contains(in.res().String(), "no contact answered") {
		t.Errorf("408 does not say why:\n%s", in.res())
	}
}
