package testcalls

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// messageResult is what a MESSAGE exchange produced.
type messageResult struct {
	// First is the response to the MESSAGE as sent, without credentials.
	First *sip.Response
	// Final is the response to the retry with credentials (nil when the
	// first response was not a 407, or the phone was told not to answer).
	Final *sip.Response
}

// sendMessage sends a text/plain MESSAGE to user at parley, From the
// phone with display name "Alice <user>", and answers a 407 with the
// phone's credentials when authenticate is set.
func (p *phone) sendMessage(user, body string, authenticate bool) (messageResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout+5*time.Second)
	defer cancel()
	req := p.newRequest(sip.MESSAGE, user, sip.Uri{Scheme: "sip", User: user, Host: "parley.lab"})
	req.From().DisplayName = "Phone " + p.User
	req.AppendHeader(sip.NewHeader("Content-Type", "text/plain;charset=UTF-8"))
	req.SetBody([]byte(body))

	var out messageResult
	res, err := p.cli.Do(ctx, req)
	if err != nil {
		return out, fmt.Errorf("MESSAGE: %w", err)
	}
	out.First = res
	if res.StatusCode != 407 || !authenticate {
		return out, nil
	}
	h := res.GetHeader("Proxy-Authenticate")
	if h == nil {
		return out, fmt.Errorf("407 without Proxy-Authenticate:\n%s", res)
	}
	chal, err := pickChallenge([]sip.Header{h}, "")
	if err != nil {
		return out, err
	}
	cred, err := digest.Digest(chal, digest.Options{
		Method:   "MESSAGE",
		URI:      req.Recipient.Addr(),
		Username: p.User,
		Password: p.Password,
		Count:    1,
	})
	if err != nil {
		return out, fmt.Errorf("digest: %w", err)
	}
	auth := req.Clone()
	auth.RemoveHeader("Via")
	auth.AppendHeader(sip.NewHeader("Proxy-Authorization", cred.String()))
	auth.CSeq().SeqNo++
	res, err = p.cli.Do(ctx, auth, sipgo.ClientRequestAddVia)
	if err != nil {
		return out, fmt.Errorf("authenticated MESSAGE: %w", err)
	}
	out.Final = res
	return out, nil
}

// mustMessage sends an authenticated MESSAGE and wants the 407 first,
// then final.
func (p *phone) mustMessage(user, body string, final int) *sip.Response {
	p.t.Helper()
	r, err := p.sendMessage(user, body, true)
	if err != nil {
		p.t.Fatalf("phone %s: %v", p.User, err)
	}
	if r.First.StatusCode != 407 {
		p.t.Fatalf("MESSAGE without credentials got %d, want 407:\n%s", r.First.StatusCode, r.First)
	}
	if r.Final == nil || r.Final.StatusCode != final {
		p.t.Fatalf("authenticated MESSAGE to %s got %v, want %d", user, r.Final, final)
	}
	return r.Final
}

// waitMessage returns the next MESSAGE the phone received, within d.
func (p *phone) waitMessage(d time.Duration) *sip.Request {
	p.t.Helper()
	select {
	case m := <-p.messages:
		return m
	case <-time.After(d):
		p.t.Fatalf("phone %s: no MESSAGE within %v", p.User, d)
		return nil
	}
}

// noMessage asserts the phone receives no MESSAGE within d.
func (p *phone) noMessage(d time.Duration) {
	p.t.Helper()
	select {
	case m := <-p.messages:
		p.t.Errorf("phone %s: unexpected MESSAGE:\n%s", p.User, m)
	case <-time.After(d):
	}
}

// checkDelivered asserts m is the MESSAGE from phone from with body, as
// parley delivers it (RFC 3428): From the sender at the realm with its
// display name, the body and its type as sent, no Contact.
func checkDelivered(t *testing.T, m *sip.Request, from *phone, body string) {
	t.Helper()
	if f := m.From(); f == nil || f.Address.User != from.User || f.Address.Host != "parley.lab" || f.DisplayName != "Phone "+from.User {
		t.Errorf("delivered MESSAGE From %v, want \"Phone %s\" <sip:%s@parley.lab>", m.From(), from.User, from.User)
	}
	if string(m.Body()) != body {
		t.Errorf("delivered body %q, want %q", m.Body(), body)
	}
	if ct := m.ContentType(); ct == nil || ct.Value() != "text/plain;charset=UTF-8" {
		t.Errorf("delivered Content-Type %v, want text/plain;charset=UTF-8", ct)
	}
	if m.Contact() != nil {
		t.Errorf("delivered MESSAGE carries a Contact (RFC 3428 §4):\n%s", m)
	}
}

// TestMessage: MESSAGE (RFC 3428) between registered users, out of
// dialog: challenged like a call (407, then the digest), delivered to
// every registered contact of the target as parley's own MESSAGE, with
// 404 and 480 as calls get them, over UDP and TCP.
func TestMessage(t *testing.T) {
	pl := startParley(t, parleyConfig{})
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	bob.mustRegister()
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")

	t.Run("delivered after the digest", func(t *testing.T) {
		alice.mustMessage("1002", "hello bob", 200)
		checkDelivered(t, bob.waitMessage(callTimeout), alice, "hello bob")
	})

	t.Run("no credentials from an untrusted source", func(t *testing.T) {
		r, err := alice.sendMessage("1002", "let me in", false)
		if err != nil {
			t.Fatal(err)
		}
		if r.First.StatusCode != 407 || r.First.GetHeader("Proxy-Authenticate") == nil {
			t.Fatalf("MESSAGE without credentials: %d, want 407 with Proxy-Authenticate:\n%s", r.First.StatusCode, r.First)
		}
		bob.noMessage(300 * time.Millisecond)
	})

	t.Run("local user not registered", func(t *testing.T) {
		alice.mustMessage("1003", "anyone?", 480)
	})

	t.Run("unknown user", func(t *testing.T) {
		alice.mustMessage("4444", "anyone?", 404)
	})

	t.Run("from a TCP phone", func(t *testing.T) {
		carol := newPhone(t, "1003", pl.SIPAddr, "tcp")
		carol.mustMessage("1002", "over tcp", 200)
		checkDelivered(t, bob.waitMessage(callTimeout), carol, "over tcp")
	})

	t.Run("every contact of a user registered twice", func(t *testing.T) {
		bob2 := newPhone(t, "1002", pl.SIPAddr, "udp")
		bob2.mustRegister()
		alice.mustMessage("1002", "to both", 200)
		checkDelivered(t, bob.waitMessage(callTimeout), alice, "to both")
		checkDelivered(t, bob2.waitMessage(callTimeout), alice, "to both")
	})

	pl.waitMetric(t, 3*time.Second, atLeast(4), "parley_sip_responses_total", "method", "MESSAGE", "code", "407")
	pl.waitMetric(t, 3*time.Second, atLeast(3), "parley_sip_responses_total", "method", "MESSAGE", "code", "200")
	pl.waitMetric(t, 3*time.Second, atLeast(1), "parley_sip_responses_total", "method", "MESSAGE", "code", "480")
	pl.waitMetric(t, 3*time.Second, atLeast(1), "parley_sip_responses_total", "method", "MESSAGE", "code", "404")
}

// TestMessageTrusted: from a trusted network a MESSAGE is not challenged,
// as a call is not.
func TestMessageTrusted(t *testing.T) {
	pl := startParley(t, parleyConfig{Trusted: []string{"127.0.0.0/8"}})
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	// A trusted REGISTER is not challenged either.
	if r, err := bob.register(bob.Password, "", 3600); err != nil || r.Challenge.StatusCode != 200 {
		t.Fatalf("trusted REGISTER: %v %v, want 200", r.Challenge, err)
	}
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	r, err := alice.sendMessage("1002", "trusted", false)
	if err != nil {
		t.Fatal(err)
	}
	if r.First.StatusCode != 200 {
		t.Fatalf("MESSAGE from a trusted network: %d, want 200:\n%s", r.First.StatusCode, r.First)
	}
	checkDelivered(t, bob.waitMessage(callTimeout), alice, "trusted")
}

// portsMessageBaresip is the RTP block of the baresip that receives a
// MESSAGE (it places no call; baresip needs the setting).
var portsMessageBaresip = phonePorts{27940, 27959}

// TestMessageToBaresip: a real phone takes the MESSAGE parley builds.
// baresip 1.0 shows a received message only on its terminal, so what is
// checked is that baresip answered it 200, which the sender hears.
func TestMessageToBaresip(t *testing.T) {
	pl := startParley(t, parleyConfig{})
	startBaresip(t, pl, baresipConfig{Name: "receiver", User: "1002", Source: "ausine,440", RTP: portsMessageBaresip})
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	alice.mustMessage("1002", "hello baresip", 200)
}

// allowEventsOf returns the packages a response's Allow-Events lists.
func allowEventsOf(res *sip.Response) []string {
	var out []string
	for _, h := range res.Headers() {
		if !strings.EqualFold(h.Name(), "Allow-Events") && !strings.EqualFold(h.Name(), "u") {
			continue
		}
		for _, p := range strings.Split(h.Value(), ",") {
			out = append(out, strings.TrimSpace(p))
		}
	}
	return out
}

// TestSubscribeBadEvent: a SUBSCRIBE outside a dialog for a package
// parley does not serve (message-summary) gets 489 whose Allow-Events
// lists the packages it serves, dialog and presence; OPTIONS lists the
// same.
func TestSubscribeBadEvent(t *testing.T) {
	pl := startParley(t, parleyConfig{})
	p := newPhone(t, "1001", pl.SIPAddr, "udp")
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req := p.newRequest(sip.SUBSCRIBE, "1002", sip.Uri{Scheme: "sip", User: "1002", Host: "parley.lab"})
	req.AppendHeader(&p.contact)
	req.AppendHeader(sip.NewHeader("Event", "message-summary"))
	req.AppendHeader(sip.NewHeader("Expires", "3600"))
	req.SetBody(nil)
	res, err := p.cli.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 489 {
		t.Fatalf("SUBSCRIBE: %d, want 489:\n%s", res.StatusCode, res)
	}
	events := allowEventsOf(res)
	if strings.Join(events, ",") != "dialog,presence" {
		t.Errorf("489 lists Allow-Events %q, want dialog, presence", events)
	}
	opts := options(t, p)
	if got, want := strings.Join(allowEventsOf(opts), ","), strings.Join(events, ","); got != want {
		t.Errorf("OPTIONS lists Allow-Events %q, the 489 %q", got, want)
	}
	t.Logf("489 Allow-Events: %q", events)
}

// options sends OPTIONS to parley from p, with extra headers, and returns
// the response.
func options(t *testing.T, p *phone, extra ...sip.Header) *sip.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req := p.newRequest(sip.OPTIONS, "", sip.Uri{Scheme: "sip", Host: "parley.lab"})
	for _, h := range extra {
		req.AppendHeader(h)
	}
	req.SetBody(nil)
	res, err := p.cli.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestOptionsAllow: Allow lists only what parley does: the methods it
// serves and those it relays inside a call, MESSAGE now that it delivers
// messages, SUBSCRIBE now that it serves dialog and presence, PRACK only
// when it takes Require: 100rel, and not PUBLISH, which it refuses.
func TestOptionsAllow(t *testing.T) {
	pl := startParley(t, parleyConfig{})
	p := newPhone(t, "1001", pl.SIPAddr, "udp")
	res := options(t, p)
	if res.StatusCode != 200 {
		t.Fatalf("OPTIONS: %d, want 200:\n%s", res.StatusCode, res)
	}
	allow := map[string]bool{}
	if h := res.GetHeader("Allow"); h != nil {
		for _, m := range strings.Split(h.Value(), ",") {
			allow[strings.TrimSpace(m)] = true
		}
	}
	for _, m := range []string{"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "UPDATE", "INFO", "MESSAGE", "NOTIFY", "REFER", "SUBSCRIBE", "REGISTER"} {
		if !allow[m] {
			t.Errorf("Allow lacks %s:\n%s", m, res)
		}
	}
	for _, m := range []string{"PUBLISH"} {
		if allow[m] {
			t.Errorf("Allow lists %s, which parley refuses:\n%s", m, res)
		}
	}
	rel := options(t, p, sip.NewHeader("Require", "100rel"))
	if does := rel.StatusCode != 420; allow["PRACK"] != does {
		t.Errorf("Allow lists PRACK: %v, but OPTIONS with Require: 100rel got %d", allow["PRACK"], rel.StatusCode)
	}
	// The 405 to a method parley knows and does not serve carries the
	// same list (RFC 3261 §21.4.6).
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req := p.newRequest(sip.PUBLISH, "1001", p.aor())
	req.AppendHeader(sip.NewHeader("Event", "presence"))
	req.SetBody(nil)
	nope, err := p.cli.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if nope.StatusCode != 405 || nope.GetHeader("Allow") == nil || nope.GetHeader("Allow").Value() != res.GetHeader("Allow").Value() {
		t.Errorf("PUBLISH: want 405 with the OPTIONS' Allow:\n%s", nope)
	}
}
