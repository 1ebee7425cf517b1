package dialog

import (
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// parley is the notifier (RFC 6665) of two event packages about its local
// users: dialog (RFC 4235), which desk phones' busy lamp fields subscribe
// to, and presence (RFC 3856, with a PIDF body, RFC 3863). Both say the
// same thing, drawn from the call table and the registrations: a user's
// calls (ringing or answered) and whether a phone of theirs is registered.
//
// A subscription is a dialog of its own, made by an authenticated
// SUBSCRIBE (challenged like an INVITE), with a queue of its own for its
// NOTIFYs, so that they leave in CSeq order. Every NOTIFY carries the
// full state. A call's state change wakes the subscriptions to its users.

// The bounds on subscriptions.
const (
	subMinExpires = 60    // a shorter subscription gets 423 (RFC 6665 §4.2.1.1)
	subMaxExpires = 3600  // a longer one is shortened, and the default
	subPerWatcher = 100   // subscriptions one user may hold
	subTotal      = 10000 // subscriptions parley holds
)

// watchPackages are the event packages parley serves, with the body type
// of each.
var watchPackages = map[string]string{
	"dialog":   "application/dialog-info+xml",
	"presence": "application/pidf+xml",
}

// subscription is one watcher's subscription to one user. Its fields
// below q belong to its queue.
type subscription struct {
	key     string
	event   string // "dialog" or "presence"
	eventID string // the Event header's id parameter, echoed
	user    string // the user watched
	watcher string // the user who subscribed
	q       serial

	l       leg // the subscription's dialog; l.call is nil
	expires time.Time
	timer   *time.Timer
	version uint64
	ended   bool
}

// notifier holds the subscriptions.
type notifier struct {
	mu         sync.Mutex
	subs       map[string]*subscription // by dialog (Call-ID, parley's tag)
	byUser     map[string]map[*subscription]struct{}
	perWatcher map[string]int
	// n is len(subs): a call's state change looks no further when it is 0.
	n atomic.Int32
}

func newNotifier() *notifier {
	return &notifier{subs: map[string]*subscription{}, byUser: map[string]map[*subscription]struct{}{}, perWatcher: map[string]int{}}
}

// add records sub unless a bound refuses it.
func (n *notifier) add(sub *subscription) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.subs) >= subTotal {
		return sipmsg.Warn(503, "Service Unavailable", "parley holds as many subscriptions as it takes")
	}
	if n.perWatcher[sub.watcher] >= subPerWatcher {
		return sipmsg.Warn(403, "Forbidden", fmt.Sprintf("a user may hold %d subscriptions", subPerWatcher))
	}
	n.subs[sub.key] = sub
	if n.byUser[sub.user] == nil {
		n.byUser[sub.user] = map[*subscription]struct{}{}
	}
	n.byUser[sub.user][sub] = struct{}{}
	n.perWatcher[sub.watcher]++
	n.n.Store(int32(len(n.subs)))
	return nil
}

// remove forgets sub.
func (n *notifier) remove(sub *subscription) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.subs[sub.key] != sub {
		return
	}
	delete(n.subs, sub.key)
	delete(n.byUser[sub.user], sub)
	if len(n.byUser[sub.user]) == 0 {
		delete(n.byUser, sub.user)
	}
	if n.perWatcher[sub.watcher] <= 1 {
		delete(n.perWatcher, sub.watcher)
	} else {
		n.perWatcher[sub.watcher]--
	}
	n.n.Store(int32(len(n.subs)))
}

func (n *notifier) get(key string) *subscription {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.subs[key]
}

// watchersOf returns the subscriptions to users.
func (n *notifier) watchersOf(users ...string) []*subscription {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*subscription
	for _, u := range users {
		for sub := range n.byUser[u] {
			out = append(out, sub)
		}
	}
	return out
}

// changed tells the subscribers of users that their state changed: each
// subscription sends a NOTIFY with the state as it is then. It may be
// called from a call's queue; it never waits.
func (s *Server) changed(users ...string) {
	if s.watch.n.Load() == 0 {
		return
	}
	for _, sub := range s.watch.watchersOf(users...) {
		sub.q.post(s.work, func() { s.notifyWatcher(sub, "") })
	}
}

// UserChanged tells the subscribers of user that its registrations
// changed: presence says whether a phone of the user is registered. It
// returns at once.
func (s *Server) UserChanged(user string) { s.changed(user) }

// onSubscribe takes a SUBSCRIBE: a new subscription, or the refresh or
// end of one.
func (s *Server) onSubscribe(req *sip.Request, tx sip.ServerTransaction) {
	if sipmsg.HasToTag(req) {
		s.resubscribe(req, tx)
		return
	}
	event, eventID := eventOf(req)
	ctype, ok := watchPackages[event]
	if !ok {
		s.badEvent(req, tx)
		return
	}
	watcher := req.From().Address.User
	if s.auth != nil {
		u, res, ok := s.auth.Authenticate(req, 407)
		if !ok {
			_ = tx.Respond(res)
			return
		}
		watcher = u
	}
	user := req.Recipient.User
	if s.auth == nil || !s.auth.IsUser(user) {
		s.reply(req, tx, sipmsg.Warn(404, "Not Found", "parley serves "+event+" state of its local users only"))
		return
	}
	if !accepts(req, ctype) {
		s.reply(req, tx, sipmsg.Warn(406, "Not Acceptable", "the "+event+" package's body is "+ctype))
		return
	}
	expires, err := subscribeExpires(req)
	if err != nil {
		s.reply(req, tx, err)
		return
	}
	contact := req.Contact()
	if contact == nil {
		s.reply(req, tx, badRequest("SUBSCRIBE has no Contact header"))
		return
	}
	sub := &subscription{event: event, eventID: eventID, user: user, watcher: watcher}
	sub.l = *uasLeg(nil, roleCaller, req, contact)
	sub.l.localCSeq = 0
	sub.key = sub.l.key()
	if expires > 0 {
		if err := s.watch.add(sub); err != nil {
			s.reply(req, tx, err)
			return
		}
	}
	_ = tx.Respond(s.subscribed(req, sub, expires))
	sub.q.post(s.work, func() {
		if expires == 0 {
			// A fetch (RFC 6665 §4.4.3): one NOTIFY, and no subscription.
			sub.ended = true
			s.notifyWatcher(sub, "terminated;reason=timeout")
			return
		}
		s.armSubscription(sub, expires)
		s.notifyWatcher(sub, "")
	})
	s.log.Debug("subscription", "event", event, "user", user, "watcher", watcher, "expires", expires)
}

// resubscribe refreshes (or with Expires: 0 ends) a subscription.
func (s *Server) resubscribe(req *sip.Request, tx sip.ServerTransaction) {
	sub := s.watch.get(sipmsg.CallID(req) + "\x00" + sipmsg.Tag(req.To().Params))
	if sub == nil {
		// Not one of parley's subscriptions: one inside a call goes to
		// the other phone, like any request in a call's dialog.
		s.relayInDialog(req, tx)
		return
	}
	expires, err := subscribeExpires(req)
	if err != nil {
		s.reply(req, tx, err)
		return
	}
	var res *sip.Response
	sub.q.do(s.work, func() {
		if sub.ended {
			err = ErrNoDialog
			return
		}
		seq := req.CSeq().SeqNo
		if seq <= sub.l.remoteCSeq {
			err = sipmsg.Warn(500, "Server Internal Error", "CSeq out of order")
			return
		}
		sub.l.remoteCSeq = seq
		if ct := req.Contact(); ct != nil {
			sub.l.target = keptURI(&ct.Address)
		}
		res = s.subscribed(req, sub, expires)
	})
	if err != nil {
		s.reply(req, tx, err)
		return
	}
	_ = tx.Respond(res)
	sub.q.post(s.work, func() {
		if expires == 0 {
			s.endSubscription(sub, "terminated;reason=timeout")
			return
		}
		s.armSubscription(sub, expires)
		s.notifyWatcher(sub, "")
	})
}

// subscribed is the 200 to a SUBSCRIBE of sub (RFC 6665 §4.2.1.1).
func (s *Server) subscribed(req *sip.Request, sub *subscription, expires int) *sip.Response {
	res := sipmsg.NewResponse(req, 200, "OK", sub.l.localTag)
	ln := s.listenerFor(sub.l.transport, sub.l.dest)
	res.AppendHeader(s.contact(ln, s.advertise.Host(ln, sub.l.dest)))
	res.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	return res
}

// badEvent answers a SUBSCRIBE for a package parley does not serve.
func (s *Server) badEvent(req *sip.Request, tx sip.ServerTransaction) {
	res := sipmsg.NewResponse(req, 489, "Bad Event", "")
	addAllowEvents(res)
	_ = tx.Respond(res)
}

// eventOf reads a request's Event header (or its compact form o): the
// package and its id parameter.
func eventOf(req *sip.Request) (pkg, id string) {
	h := sipmsg.HeaderNamed(req, "Event")
	if h == nil {
		h = sipmsg.HeaderNamed(req, "o")
	}
	if h == nil {
		return "", ""
	}
	parts := strings.Split(h.Value(), ";")
	pkg = strings.ToLower(strings.TrimSpace(parts[0]))
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "id") {
			id = strings.TrimSpace(v)
		}
	}
	return pkg, id
}

// accepts reports whether req's Accept (none: the package's default)
// takes ctype.
func accepts(req *sip.Request, ctype string) bool {
	hs := sipmsg.HeadersNamed(req, "Accept")
	if len(hs) == 0 {
		return true
	}
	for _, h := range hs {
		for _, v := range strings.Split(h.Value(), ",") {
			v, _, _ = strings.Cut(v, ";")
			v = strings.ToLower(strings.TrimSpace(v))
			if v == ctype || v == "*/*" || v == "application/*" {
				return true
			}
		}
	}
	return false
}

// subscribeExpires reads a SUBSCRIBE's Expires within parley's bounds: a
// request below subMinExpires (but not 0) gets 423 with Min-Expires.
func subscribeExpires(req *sip.Request) (int, error) {
	h := sipmsg.HeaderNamed(req, "Expires")
	if h == nil {
		return subMaxExpires, nil
	}
	v, err := strconv.Atoi(strings.TrimSpace(h.Value()))
	switch {
	case err != nil || v < 0:
		return 0, badRequest("malformed Expires %q", h.Value())
	case v == 0:
		return 0, nil
	case v < subMinExpires:
		return 0, &sipmsg.Error{Code: 423, Reason: "Interval Too Brief", MinExpires: subMinExpires}
	}
	return min(v, subMaxExpires), nil
}

// armSubscription sets when sub expires. Run it in sub's queue.
func (s *Server) armSubscription(sub *subscription, secs int) {
	sub.expires = time.Now().Add(time.Duration(secs) * time.Second)
	if sub.timer != nil {
		sub.timer.Stop()
	}
	sub.timer = time.AfterFunc(time.Duration(secs)*time.Second, func() {
		sub.q.post(s.work, func() {
			if time.Now().Before(sub.expires) {
				return // refreshed meanwhile
			}
			s.endSubscription(sub, "terminated;reason=timeout")
		})
	})
}

// endSubscription sends sub's last NOTIFY, with state, and forgets it.
// Run it in sub's queue.
func (s *Server) endSubscription(sub *subscription, state string) {
	if sub.ended {
		return
	}
	s.notifyWatcher(sub, state)
	s.dropSubscription(sub)
}

// dropSubscription forgets sub without a word. Run it in sub's queue.
func (s *Server) dropSubscription(sub *subscription) {
	sub.ended = true
	if sub.timer != nil {
		sub.timer.Stop()
	}
	s.watch.remove(sub)
}

// notifyWatcher sends sub a NOTIFY with its user's state now; state is
// the Subscription-State ("" for active with the time left). A NOTIFY the
// watcher answers 481 (or not at all) ends the subscription (RFC 6665
// §4.1.3). Run it in sub's queue.
func (s *Server) notifyWatcher(sub *subscription, state string) {
	if sub.ended && state == "" {
		return
	}
	if state == "" {
		state = fmt.Sprintf("active;expires=%d", max(0, int(time.Until(sub.expires).Round(time.Second)/time.Second)))
	}
	body, ctype := s.watchBody(sub)
	sub.version++
	sub.l.localCSeq++
	req := s.newRequest(&sub.l, sip.NOTIFY, sub.l.localCSeq)
	ev := sub.event
	if sub.eventID != "" {
		ev += ";id=" + sub.eventID
	}
	req.AppendHeader(sip.NewHeader("Event", ev))
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	req.AppendHeader(sip.NewHeader("Content-Type", ctype))
	req.SetBody(body)
	done := s.sendWith(callLog{l: s.log, id: "subscription"}, req)
	if strings.HasPrefix(state, "terminated") {
		return
	}
	s.goOwned(func() {
		res, ok := <-done
		if ok && res.StatusCode < 300 {
			return
		}
		// RFC 6665 §4.1.3: the watcher is gone, or its subscription is.
		sub.q.post(s.work, func() { s.dropSubscription(sub) })
	})
}

// watchBody is the body of a NOTIFY to sub: its user's dialogs, or its
// presence. Run it outside any call's queue.
func (s *Server) watchBody(sub *subscription) ([]byte, string) {
	ds := s.lineOf(sub.user)
	entity := "sip:" + sub.user + "@" + s.cfg.SIP.Realm
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	if sub.event == "dialog" {
		fmt.Fprintf(&b, `<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="%d" state="full" entity="%s">`+"\n", sub.version, xmlText(entity))
		for _, d := range ds {
			fmt.Fprintf(&b, `  <dialog id="%s" call-id="%s" direction="%s"><state>%s</state></dialog>`+"\n", xmlText(d.id), xmlText(d.callID), d.direction, d.state)
		}
		b.WriteString("</dialog-info>\n")
		return []byte(b.String()), watchPackages["dialog"]
	}
	basic, note, activity := "closed", "Offline", ""
	if s.loc != nil && len(s.loc.Lookup(sub.user)) > 0 {
		basic, note = "open", "Available"
	}
	for _, d := range ds {
		basic = "open"
		if d.state == "confirmed" {
			note, activity = "On the phone", "on-the-phone"
			break
		}
		note = "Ringing"
	}
	fmt.Fprintf(&b, `<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="%s">`+"\n", xmlText(entity))
	fmt.Fprintf(&b, `  <tuple id="parley"><status><basic>%s</basic></status><note>%s</note></tuple>`+"\n", basic, note)
	if activity != "" {
		fmt.Fprintf(&b, `  <dm:person id="p1"><rpid:activities><rpid:%s/></rpid:activities></dm:person>`+"\n", activity)
	}
	b.WriteString("</presence>\n")
	return []byte(b.String()), watchPackages["presence"]
}

func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// lineDialog is one of a user's calls as the dialog package shows it.
type lineDialog struct {
	id, callID string
	direction  string // initiator or recipient
	state      string // early or confirmed
}

// lineOf returns user's calls that ring or are answered. Run it outside
// any call's queue.
func (s *Server) lineOf(user string) []lineDialog {
	var out []lineDialog
	for _, c := range s.calls.all() {
		c.do(func() {
			state := ""
			switch c.state {
			case Establishing:
				state = "early"
			case Active, Suspended:
				state = "confirmed"
			default:
				return
			}
			if c.from == user && c.caller != nil {
				out = append(out, lineDialog{id: c.ID + "-a", callID: c.caller.callID, direction: "initiator", state: state})
			}
			if c.to == user {
				d := lineDialog{id: c.ID + "-b", direction: "recipient", state: state}
				if c.callee != nil {
					d.callID = c.callee.callID
				}
				out = append(out, d)
			}
		})
	}
	return out
}
