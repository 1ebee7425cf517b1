package testcalls

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

var rangePresence = rangeOf(31500)

// subscription is a subscription a test phone holds at parley.
type subscription struct {
	w     *watcherPhone
	p     *phone
	req   *sip.Request // the last SUBSCRIBE sent
	res   *sip.Response
	event string
}

// watcherPhone is a phone that holds subscriptions; NOTIFYs read for one
// subscription wait in held for the others.
type watcherPhone struct {
	*phone
	held []*sip.Request
}

// subscribe sends a SUBSCRIBE for user's event package with expires,
// answering parley's challenge, and returns the final response.
func (w *watcherPhone) subscribe(t *testing.T, user, event string, expires int) *subscription {
	t.Helper()
	p := w.phone
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req := p.newRequest(sip.SUBSCRIBE, user, sip.Uri{Scheme: "sip", User: user, Host: "parley.lab"})
	req.AppendHeader(&p.contact)
	req.AppendHeader(sip.NewHeader("Event", event))
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	req.SetBody(nil)
	res, err := p.cli.Do(ctx, req)
	if err != nil {
		t.Fatalf("SUBSCRIBE: %v", err)
	}
	if res.StatusCode == 407 {
		chal, err := pickChallenge([]sip.Header{res.GetHeader("Proxy-Authenticate")}, "")
		if err != nil {
			t.Fatal(err)
		}
		cred, err := digest.Digest(chal, digest.Options{Method: "SUBSCRIBE", URI: req.Recipient.Addr(), Username: p.User, Password: p.Password, Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		auth := req.Clone()
		auth.RemoveHeader("Via")
		auth.AppendHeader(sip.NewHeader("Proxy-Authorization", cred.String()))
		auth.CSeq().SeqNo++
		req = auth
		if res, err = p.cli.Do(ctx, req, sipgo.ClientRequestAddVia); err != nil {
			t.Fatalf("SUBSCRIBE with credentials: %v", err)
		}
	}
	return &subscription{w: w, p: p, req: req, res: res, event: event}
}

// again sends the subscription's SUBSCRIBE in its dialog with expires: a
// refresh, or with 0 its end.
func (s *subscription) again(t *testing.T, expires int) *sip.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req := s.req.Clone()
	req.RemoveHeader("Via")
	req.Recipient = s.res.Contact().Address
	req.ReplaceHeader(sip.HeaderClone(s.res.To()))
	req.ReplaceHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	req.CSeq().SeqNo++
	res, err := s.p.cli.Do(ctx, req, sipgo.ClientRequestAddVia)
	if err != nil {
		t.Fatalf("SUBSCRIBE in its dialog: %v", err)
	}
	s.req, s.res = req, res
	return res
}

// notify waits for the next NOTIFY of the subscription's package and
// checks it belongs to its dialog.
func (s *subscription) notify(t *testing.T) *sip.Request {
	t.Helper()
	mine := func(n *sip.Request) bool { return n.CallID().Value() == s.req.CallID().Value() }
	for i, n := range s.w.held {
		if mine(n) {
			s.w.held = append(s.w.held[:i], s.w.held[i+1:]...)
			return n
		}
	}
	for {
		e, err := s.p.waitEvent(evNotify, callTimeout)
		if err != nil {
			t.Fatalf("%s subscription: %v", s.event, err)
		}
		n := e.Req
		if !mine(n) {
			s.w.held = append(s.w.held, n) // another subscription's
			continue
		}
		if ev := n.GetHeader("Event"); ev == nil || ev.Value() != s.event {
			t.Errorf("NOTIFY Event %v, want %s", ev, s.event)
		}
		if tag, _ := n.From().Params.Get("tag"); tag != tagOf(s.res.To().Params) {
			t.Errorf("NOTIFY From tag %q, the 200's To tag %q", tag, tagOf(s.res.To().Params))
		}
		return n
	}
}

// notifyState waits for a NOTIFY whose Subscription-State begins with
// want.
func (s *subscription) notifyState(t *testing.T, want string) *sip.Request {
	t.Helper()
	for {
		n := s.notify(t)
		if ss := n.GetHeader("Subscription-State"); ss != nil && strings.HasPrefix(ss.Value(), want) {
			return n
		}
	}
}

// notifyUntil waits for a NOTIFY whose body contains want.
func (s *subscription) notifyUntil(t *testing.T, want string) *sip.Request {
	t.Helper()
	for {
		n := s.notify(t)
		if strings.Contains(string(n.Body()), want) {
			return n
		}
	}
}

var dialogVersion = regexp.MustCompile(`<dialog-info [^>]*version="(\d+)"`)

// TestPresence: parley is the notifier of the dialog package (busy lamps,
// RFC 4235) and of presence (RFC 3856) for its users. A watcher (1003)
// subscribes to 1002 with both, after a challenge; each subscription gets
// 200 and a first NOTIFY with the state as it is (no call; registered,
// so open). When 1001 calls 1002, the lamp shows the call ringing and
// then confirmed (1002 the recipient) and presence says on the phone;
// after the hangup both go back, and when 1002's phone unregisters,
// presence says closed. A refresh gets a NOTIFY; Expires 0 ends
// the subscription with a last NOTIFY. Too short an Expires gets 423, an
// unknown user 404.
func TestPresence(t *testing.T) {
	t.Parallel()
	pl := startParley(t, parleyConfig{Extra: rangePresence.yaml(nil, "")})
	a := newPhone(t, "1001", pl.SIPAddr, "udp")
	b := newPhone(t, "1002", pl.SIPAddr, "udp")
	w := &watcherPhone{phone: newPhone(t, "1003", pl.SIPAddr, "udp")}
	b.mustRegister()

	lamp := w.subscribe(t, "1002", "dialog", 600)
	if lamp.res.StatusCode != 200 || lamp.res.GetHeader("Expires") == nil || lamp.res.GetHeader("Expires").Value() != "600" {
		t.Fatalf("SUBSCRIBE dialog: want 200 with Expires 600:\n%s", lamp.res)
	}
	n := lamp.notify(t)
	if ss := n.GetHeader("Subscription-State"); ss == nil || !strings.HasPrefix(ss.Value(), "active;expires=") {
		t.Errorf("first NOTIFY: Subscription-State %v, want active;expires=", ss)
	}
	if ct := n.GetHeader("Content-Type"); ct == nil || ct.Value() != "application/dialog-info+xml" {
		t.Errorf("dialog NOTIFY Content-Type %v", ct)
	}
	body := string(n.Body())
	if !strings.Contains(body, `entity="sip:1002@parley.lab"`) || strings.Contains(body, "<dialog ") {
		t.Errorf("first dialog NOTIFY, 1002 idle:\n%s", body)
	}
	version := func(n *sip.Request) int {
		m := dialogVersion.FindStringSubmatch(string(n.Body()))
		if m == nil {
			t.Fatalf("dialog-info without a version:\n%s", n.Body())
		}
		v, _ := strconv.Atoi(m[1])
		return v
	}
	last := version(n)

	pres := w.subscribe(t, "1002", "presence", 600)
	if pres.res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE presence: %d", pres.res.StatusCode)
	}
	if body := string(pres.notify(t).Body()); !strings.Contains(body, "<basic>open</basic>") || !strings.Contains(body, "Available") {
		t.Errorf("first presence NOTIFY, 1002 registered and idle:\n%s", body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	call := a.call(ctx, "1002")
	call.mustAnswered(t)
	n = lamp.notifyUntil(t, "<state>confirmed</state>")
	if !strings.Contains(string(n.Body()), `direction="recipient"`) {
		t.Errorf("1002's answered call, as its lamp shows it:\n%s", n.Body())
	}
	if v := version(n); v <= last {
		t.Errorf("dialog-info version %d after %d; it must grow", v, last)
	} else {
		last = v
	}
	pres.notifyUntil(t, "on-the-phone")

	call.hangup(t)
	n = lamp.notifyUntil(t, "</dialog-info>")
	for strings.Contains(string(n.Body()), "<dialog ") {
		n = lamp.notify(t)
	}
	if v := version(n); v <= last {
		t.Errorf("dialog-info version %d after %d; it must grow", v, last)
	}
	pres.notifyUntil(t, "Available")

	if res := lamp.again(t, 300); res.StatusCode != 200 {
		t.Fatalf("refresh: %d", res.StatusCode)
	}
	// Earlier NOTIFYs still count down from 600; the refresh's from 300.
	for {
		ss := lamp.notifyState(t, "active;expires=").GetHeader("Subscription-State").Value()
		if secs, _ := strconv.Atoi(strings.TrimPrefix(ss, "active;expires=")); secs <= 300 && secs > 240 {
			break
		}
	}
	if res := lamp.again(t, 0); res.StatusCode != 200 {
		t.Fatalf("unsubscribe: %d", res.StatusCode)
	}
	lamp.notifyState(t, "terminated")
	if res := lamp.again(t, 300); res.StatusCode != 481 {
		t.Errorf("refresh of an ended subscription: %d, want 481", res.StatusCode)
	}

	// 1002's phone unregisters: presence says it is gone.
	if _, err := b.register(b.Password, "", 0); err != nil {
		t.Fatalf("unregister: %v", err)
	}
	pres.notifyUntil(t, "<basic>closed</basic>")

	if s := w.subscribe(t, "1002", "dialog", 10); s.res.StatusCode != 423 || s.res.GetHeader("Min-Expires") == nil {
		t.Errorf("Expires 10: want 423 with Min-Expires:\n%s", s.res)
	}
	if s := w.subscribe(t, "9999", "dialog", 600); s.res.StatusCode != 404 {
		t.Errorf("SUBSCRIBE to an unknown user: %d, want 404", s.res.StatusCode)
	}
	if got := fmt.Sprint(allowEventsOf(options(t, w.phone))); got != "[dialog presence]" {
		t.Errorf("OPTIONS Allow-Events %s", got)
	}
}

var (
	rangePresenceLinphone = rangeOf(31600)
	portsPresenceLinphone = phonePorts{27960, 27979}
)

// TestPresenceLinphone: linphonec (1003) adds 1002 as a friend, which has
// liblinphone subscribe to 1002's presence at parley. linphonec reports
// the friend online while 1002's phone is registered and idle, on the
// phone while it is in a call, and online again after the hangup.
func TestPresenceLinphone(t *testing.T) {
	t.Parallel()
	needParley(t)
	needPackage(t, "linphonec", "linphone-cli")
	pl := startParley(t, parleyConfig{Extra: rangePresenceLinphone.yaml(nil, "")})
	a := newPhone(t, "1001", pl.SIPAddr, "udp")
	b := newPhone(t, "1002", pl.SIPAddr, "udp")
	b.mustRegister()
	watcher := startLinphone(t, pl, "watcher", "1003", portsPresenceLinphone)
	watcher.send(t, `friend add "bob" sip:1002@parley.lab`)
	watcher.waitOutput(t, "<sip:1002@parley.lab> is Online", phoneEvent)

	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	call := a.call(ctx, "1002")
	call.mustAnswered(t)
	watcher.waitOutput(t, "<sip:1002@parley.lab> is On the phone", phoneEvent)
	call.hangup(t)
	waitOutputAfter(t, watcher, "<sip:1002@parley.lab> is Online", "<sip:1002@parley.lab> is On the phone", phoneEvent)
}

// waitOutputAfter waits until linphonec has printed want after the last
// time it printed before.
func waitOutputAfter(t *testing.T, l *linphone, want, before string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		out := readFileOrErr(l.OutPath)
		if b := strings.LastIndex(out, before); b >= 0 && strings.LastIndex(out, want) > b {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: linphonec did not print %q after %q within %v:\n%s", l.Name, want, before, d, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
