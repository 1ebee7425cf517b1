package dialog

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// This file is parley's call transfer, done as a B2BUA does it: neither
// phone of a call ever sees the other's REFER or Replaces.
//
//   - Blind (RFC 3515, RFC 5589 §6): a phone's REFER gets 202, parley calls
//     the Refer-To target itself on behalf of the other phone (the
//     transferee), reports progress to the transferor in NOTIFYs of
//     message/sipfrag, and once the target answers, hangs the transferor up
//     and moves the transferee's media onto the target with a re-INVITE.
//   - Attended (RFC 5589 §7): a REFER whose Refer-To carries Replaces names
//     another of parley's dialogs. The two phones the transferor talks to
//     are joined in one call, and the transferor's two legs end.
//   - An INVITE with Replaces (RFC 3891) naming one of parley's dialogs
//     takes that leg's place in its call.
//
// In every case one leg of a call gives its place to a new one (replaceLeg)
// and the new phone's offer is taken to the phone that stays, whose answer
// comes back (splice): third party call control (RFC 3725), through the
// call's own relay ports, so the phone that stays keeps its ports.

// transfer is a transfer in progress on a call, or a call held for one
// (the other call of an attended transfer, or the call an INVITE with
// Replaces joins). One at a time: a second REFER meanwhile gets 491.
type transfer struct {
	// from is the leg that leaves the call: the transferor's, or the one
	// a Replaces names.
	from *leg
	// id is the REFER's CSeq, the id of its implicit subscription (RFC
	// 3515 §2.4.6); notify is unset when the transferor asked for none
	// (RFC 4488 Refer-Sub: false).
	id     uint32
	notify bool
	// decided is closed once a blind transfer's target answered or failed;
	// won is the branch that answered.
	decided chan struct{}
	won     *fork
}

// errCallEnded stops a transfer whose call ended under it.
var errCallEnded = errors.New("the call ended")

// replaces is a Replaces header's dialog (RFC 3891 §6.1): the Call-ID and
// the tags as the recipient sees them, its own tag in to-tag.
type replaces struct {
	callID, toTag, fromTag string
	earlyOnly              bool
}

// parseReplaces reads a Replaces value: callid;to-tag=..;from-tag=..
func parseReplaces(v string) (replaces, error) {
	var r replaces
	parts := strings.Split(v, ";")
	r.callID = strings.TrimSpace(parts[0])
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "to-tag":
			r.toTag = strings.TrimSpace(val)
		case "from-tag":
			r.fromTag = strings.TrimSpace(val)
		case "early-only":
			r.earlyOnly = true
		}
	}
	if r.callID == "" || r.toTag == "" || r.fromTag == "" {
		return r, fmt.Errorf("Replaces %q lacks a Call-ID, to-tag or from-tag", v)
	}
	return r, nil
}

// referTarget reads a REFER's one Refer-To: the target URI, and the
// dialog it replaces for an attended transfer.
func referTarget(req *sip.Request) (sip.Uri, *replaces, error) {
	var u sip.Uri
	hs := append(sipmsg.HeadersNamed(req, "Refer-To"), sipmsg.HeadersNamed(req, "r")...)
	if len(hs) != 1 {
		return u, nil, badRequest("REFER needs exactly one Refer-To")
	}
	v := strings.TrimSpace(hs[0].Value())
	if i := strings.IndexByte(v, '<'); i >= 0 {
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return u, nil, badRequest("Refer-To %q has no closing >", v)
		}
		v = v[i+1 : i+j]
	}
	if err := sip.ParseUri(v, &u); err != nil {
		return u, nil, badRequest("Refer-To %q is not a URI", v)
	}
	if s := strings.ToLower(u.Scheme); s != "sip" && s != "sips" {
		return u, nil, sipmsg.Warn(416, "Unsupported URI Scheme", "Refer-To must be a sip: URI")
	}
	if u.User == "" {
		return u, nil, badRequest("Refer-To %q names no user", v)
	}
	var rp *replaces
	if u.Headers != nil {
		for _, kv := range u.Headers {
			switch strings.ToLower(kv.K) {
			case "method":
				if !strings.EqualFold(kv.V, "INVITE") {
					return u, nil, sipmsg.Warn(501, "Not Implemented", "Refer-To asks for method "+kv.V+"; parley transfers calls only")
				}
			case "replaces":
				raw, err := url.PathUnescape(kv.V)
				if err != nil {
					return u, nil, badRequest("Refer-To's Replaces is badly escaped")
				}
				r, err := parseReplaces(raw)
				if err != nil {
					return u, nil, badRequest("%v", err)
				}
				rp = &r
			}
		}
	}
	return u, rp, nil
}

// onRefer takes a REFER on leg l: a transfer of l's call by l's phone.
// It is answered 202 once parley knows it can try, and carried on by a
// goroutine of the server's.
func (s *Server) onRefer(l *leg, req *sip.Request, tx sip.ServerTransaction) {
	c := l.call
	to, rp, err := referTarget(req)
	if err != nil {
		s.reply(req, tx, err)
		return
	}
	x := &transfer{from: l, id: req.CSeq().SeqNo, notify: !referSubFalse(req), decided: make(chan struct{})}
	c.do(func() { err = s.takeTransfer(c, l, req, x) })
	if err != nil {
		s.reply(req, tx, err)
		return
	}
	var y *Call
	var yl *leg
	if rp != nil {
		y, yl, err = s.holdReplaced(*rp, l)
		if err != nil {
			c.do(func() { s.endTransfer(c, x) })
			s.reply(req, tx, err)
			return
		}
	}
	res := sipmsg.NewResponse(req, 202, "Accepted", l.localTag)
	ln := s.listenerFor(l.transport, l.dest)
	res.AppendHeader(s.contact(ln, s.advertise.Host(ln, l.dest)))
	if !x.notify {
		res.AppendHeader(sip.NewHeader("Refer-Sub", "false"))
	}
	// The 202 goes before the first NOTIFY, over the same socket, so the
	// transferor never sees a NOTIFY for a REFER it has no answer to.
	_ = tx.Respond(res)
	s.notifyRefer(c, x, 100, "Trying", false)
	referredBy := ""
	if h := sipmsg.HeaderNamed(req, "Referred-By"); h != nil {
		referredBy = h.Value()
	} else if h := sipmsg.HeaderNamed(req, "b"); h != nil {
		referredBy = h.Value()
	}
	if y != nil {
		c.log.Info("attended transfer", "to_call", y.ID)
		s.goOwned(func() { s.attendedTransfer(c, x, y, yl) })
		return
	}
	c.log.Info("blind transfer", "to", to.User)
	s.goOwned(func() { s.blindTransfer(c, x, to, referredBy) })
}

// referSubFalse reports whether a REFER asks for no subscription (RFC 4488).
func referSubFalse(req *sip.Request) bool {
	h := sipmsg.HeaderNamed(req, "Refer-Sub")
	return h != nil && strings.EqualFold(strings.TrimSpace(h.Value()), "false")
}

// takeTransfer checks that leg l's call can be transferred now and holds
// it for transfer x. Run it in the call's queue.
func (s *Server) takeTransfer(c *Call, l *leg, req *sip.Request, x *transfer) error {
	if l.gone || c.state >= Terminating {
		return ErrNoDialog
	}
	seq := req.CSeq().SeqNo
	if l.remoteCSeq != 0 && seq <= l.remoteCSeq {
		return sipmsg.Warn(500, "Server Internal Error", "CSeq out of order")
	}
	l.remoteCSeq = seq
	if c.svc != nil {
		return sipmsg.Warn(501, "Not Implemented", "a call answered by a service cannot be transferred")
	}
	other := c.other(l)
	if (c.state != Active && c.state != Suspended) || other == nil || other.dialog != DialogConfirmed || l.dialog != DialogConfirmed {
		return sipmsg.Warn(491, "Request Pending", "the call is not established yet")
	}
	if c.xfer != nil {
		return sipmsg.Warn(491, "Request Pending", "a transfer of this call is in progress")
	}
	c.xfer = x
	return nil
}

// endTransfer lets call c go once transfer x is over. Run it in the
// call's queue.
func (s *Server) endTransfer(c *Call, x *transfer) {
	if c.xfer == x {
		c.xfer = nil
	}
}

// holdReplaced finds the dialog a Replaces names among parley's own legs,
// checks that the phone of leg by (the transferor, or nil for an INVITE
// with Replaces from user) may take it, and holds its call. It returns the
// call and the leg that leaves it.
func (s *Server) holdReplaced(rp replaces, by *leg) (*Call, *leg, error) {
	l := s.calls.lookup(rp.callID, rp.toTag)
	if l == nil {
		return nil, nil, sipmsg.Warn(481, "Call/Transaction Does Not Exist", "Replaces names no dialog of parley's")
	}
	y := l.call
	if by != nil && y == by.call {
		return nil, nil, sipmsg.Warn(403, "Forbidden", "Replaces names the call being transferred")
	}
	var err error
	y.do(func() {
		switch {
		case l.gone || l.remoteTag != rp.fromTag || y.state >= Terminating:
			err = sipmsg.Warn(481, "Call/Transaction Does Not Exist", "Replaces names no dialog of parley's")
		case rp.earlyOnly || y.state == Establishing:
			err = sipmsg.Warn(486, "Busy Here", "Replaces names a call not yet answered")
		case y.svc != nil:
			err = sipmsg.Warn(501, "Not Implemented", "Replaces names a call answered by a service")
		case y.other(l) == nil || y.other(l).dialog != DialogConfirmed:
			err = sipmsg.Warn(491, "Request Pending", "the call Replaces names is not established")
		case y.xfer != nil:
			err = sipmsg.Warn(491, "Request Pending", "the call Replaces names is being transferred")
		case by != nil && by.remote.User != l.remote.User && by.dest != l.dest:
			// RFC 3891 §6.1: only the phone that holds a dialog may hand
			// it over.
			err = sipmsg.Warn(403, "Forbidden", "Replaces names a dialog of another phone")
		default:
			y.xfer = &transfer{from: l}
		}
	})
	return y, l, err
}

// notifyRefer tells transferor of transfer x how it goes: a NOTIFY in its
// dialog with the status line of the new call as message/sipfrag (RFC
// 3515 §2.4.5); final ends the subscription. Nothing is sent to a
// transferor that hung up or wanted no NOTIFYs.
func (s *Server) notifyRefer(c *Call, x *transfer, code int, reason string, final bool) {
	var req *sip.Request
	c.do(func() {
		t := x.from
		if !x.notify || t.gone || c.state >= Terminating {
			return
		}
		t.localCSeq++
		req = s.newRequest(t, sip.NOTIFY, t.localCSeq)
		req.AppendHeader(sip.NewHeader("Event", fmt.Sprintf("refer;id=%d", x.id)))
		state := "active;expires=60"
		if final {
			state = "terminated;reason=noresource"
		}
		req.AppendHeader(sip.NewHeader("Subscription-State", state))
		req.AppendHeader(sip.NewHeader("Content-Type", "message/sipfrag;version=2.0"))
		req.SetBody(fmt.Appendf(nil, "SIP/2.0 %d %s\r\n", code, reason))
	})
	if req != nil {
		s.send(c, req)
	}
}

// failTransfer ends transfer x that did not happen: the transferor hears
// why, and keeps its call; or, when it hung up meanwhile, the transferee
// is left with nobody, and the call ends.
func (s *Server) failTransfer(c *Call, x *transfer, se *sipmsg.Error) {
	c.log.Info("transfer failed", "status", se.Code, "reason", se.Reason, "detail", se.Warning)
	s.m.transfer(false)
	s.notifyRefer(c, x, se.Code, se.Reason, true)
	var left bool
	c.do(func() {
		s.endTransfer(c, x)
		left = x.from.gone
	})
	if left {
		s.endCall(c, nil, resultAnswered, "transfer failed after the transferor left")
	}
}

// blindTransfer calls to on behalf of the transferee and, once it answers,
// puts it in the transferor's place in call c.
func (s *Server) blindTransfer(c *Call, x *transfer, to sip.Uri, referredBy string) {
	targets, err := s.resolve(to)
	if err != nil {
		s.failTransfer(c, x, sipmsg.ErrorFor(err))
		return
	}
	var base leg
	c.do(func() {
		e := c.other(x.from)
		if referredBy == "" {
			by := sip.Uri{Scheme: "sip", User: x.from.remote.User, Host: s.cfg.SIP.Realm}
			referredBy = "<" + by.String() + ">"
		}
		// The target sees the transferee calling (as Asterisk and
		// FreeSWITCH show it).
		base = s.uacLeg(c, x.from.role, e.remote.User, e.remoteName)
	})
	events := make(chan forkEvent)
	var forks []*fork
	var lastErr error
	for _, t := range targets {
		l := base
		l.target, l.remote, l.dest, l.transport = t.uri, t.to, t.dest, t.transport
		out := s.newRequest(&l, sip.INVITE, 1)
		out.AppendHeader(sip.NewHeader("Referred-By", referredBy))
		s.timerRequestHeaders(out, &l, false)
		// No offer: the target's 2xx brings one, which goes on to the
		// transferee (RFC 3725 §4.2).
		out.SetBody(nil)
		ctx, cancel := context.WithTimeout(s.context(), 5*time.Second)
		tx, err := s.request(ctx, out)
		cancel()
		if err != nil {
			lastErr = err
			continue
		}
		l.dest = out.Destination()
		f := &fork{leg: &l, req: out, tx: tx}
		forks = append(forks, f)
		s.goOwned(func() { s.watchFork(c, f, tx, events, x.decided, func() bool { return x.won == f }) })
	}
	if len(forks) == 0 {
		s.failTransfer(c, x, sipmsg.As(lastErr, 503, "Service Unavailable"))
		return
	}
	win, res, se := s.ringTransfer(c, x, forks, events)
	if se != nil {
		if se != errEndedStatus {
			s.failTransfer(c, x, se)
		}
		return
	}
	n := win.leg
	if !isSDP(res) {
		// RFC 3264 §5: the 2xx to an INVITE without an offer carries one.
		s.ackAndBye(c, win, res)
		s.failTransfer(c, x, sipmsg.Warn(488, "Not Acceptable Here", "the target's answer carried no offer"))
		return
	}
	cseq := res.CSeq().SeqNo
	var slot *ackSlot
	c.do(func() {
		n.remoteTag = strings.Clone(sipmsg.Tag(res.To().Params))
		if ct := res.Contact(); ct != nil {
			n.target = keptURI(&ct.Address)
		}
		n.routes = reversed(recordRoutes(res))
		n.localCSeq = max(n.localCSeq, cseq)
		n.inviteCSeq = cseq
		n.setDialog(DialogEarly)
		s.negotiateUAC(n, res)
		slot = n.ackSlot()
	})
	win.tx.OnRetransmission(func(*sip.Response) { slot.resend(s, 0) })
	s.notifyRefer(c, x, 200, "OK", true)
	if err := s.replaceLeg(c, x.from, n); err != nil {
		s.ackAndBye(c, win, res)
		return
	}
	err = s.splice(c, n, res, func(answer []byte, from sip.Message) { s.sendAck(n, cseq, from, answer) })
	c.do(func() { s.endTransfer(c, x) })
	if err != nil {
		s.m.transfer(false)
		c.log.Info("transfer failed joining the media", "error", err)
		s.endCall(c, nil, resultAnswered, "transfer failed: "+err.Error())
		return
	}
	s.m.transfer(true)
	c.log.Info("call transferred", "to", n.remote.User)
}

// errEndedStatus is what ringTransfer returns when the call ended while
// the target rang: nothing is left to report.
var errEndedStatus = sipmsg.Status(487, "Request Terminated")

// ringTransfer waits for a blind transfer's branches until one answers,
// all fail, the target rings too long or the call ends. The transferor
// hears of each new provisional status.
func (s *Server) ringTransfer(c *Call, x *transfer, forks []*fork, events <-chan forkEvent) (*fork, *sip.Response, *sipmsg.Error) {
	ring := time.NewTimer(s.ringTimeout)
	defer ring.Stop()
	var best *sip.Response
	var lastErr error
	reported := 100
	for pending := len(forks); pending > 0; {
		select {
		case e := <-events:
			if e.res == nil {
				pending--
				lastErr = e.err
				continue
			}
			switch code := e.res.StatusCode; {
			case code < 200:
				if code > 100 && code != reported {
					reported = code
					s.notifyRefer(c, x, code, e.res.Reason, false)
				}
			case code < 300:
				c.do(func() { x.won = e.f })
				s.decideIn(c, x.decided, forks, e.f)
				return e.f, e.res, nil
			default:
				pending--
				best = betterFinal(best, e.res)
			}
		case <-ring.C:
			s.decideIn(c, x.decided, forks, nil)
			return nil, nil, &sipmsg.Error{Code: 480, Reason: "No Answer", Warning: "the transfer target did not answer within the ring timeout"}
		case <-c.closed:
			s.decideIn(c, x.decided, forks, nil)
			return nil, nil, errEndedStatus
		}
	}
	s.decideIn(c, x.decided, forks, nil)
	if best != nil {
		return nil, nil, finalFor(best)
	}
	if errors.Is(lastErr, sip.ErrTransactionTimeout) {
		return nil, nil, sipmsg.Warn(408, "Request Timeout", "the transfer target did not answer")
	}
	return nil, nil, sipmsg.Warn(503, "Service Unavailable", errText(lastErr))
}

// attendedTransfer joins the transferee of call c with the phone at the
// far end of leg yl's call y, the call the transferor made to it; the
// transferor's legs of both calls end. Call c goes on with the two.
func (s *Server) attendedTransfer(c *Call, x *transfer, y *Call, yl *leg) {
	s.notifyRefer(c, x, 200, "OK", true)
	var r *leg
	y.do(func() {
		if y.state >= Terminating {
			return
		}
		old := y.other(yl)
		r = old.detached()
		if y.caller == old {
			y.caller = nil
		} else {
			y.callee = nil
		}
	})
	if r == nil {
		c.do(func() { s.endTransfer(c, x) })
		s.m.transfer(false)
		c.log.Info("attended transfer failed: the other call ended")
		return
	}
	err := s.replaceLeg(c, x.from, r)
	if err != nil {
		// Call c ended meanwhile: the phone taken from y is hung up here,
		// since y gives it no BYE now.
		r.localCSeq++
		bye := s.newRequest(r, sip.BYE, r.localCSeq)
		bye.SetBody(nil)
		s.send(y, bye)
	}
	// The transferor's leg of the other call ends with it; its far phone,
	// now in call c, gets no BYE.
	s.endCall(y, nil, resultTransferred, "joined to call "+c.ID+" by an attended transfer")
	if err == nil {
		err = s.joinAsking(c, r)
	}
	c.do(func() { s.endTransfer(c, x) })
	if err != nil {
		s.m.transfer(false)
		c.log.Info("attended transfer failed", "error", err)
		s.endCall(c, nil, resultAnswered, "transfer failed: "+err.Error())
		return
	}
	s.m.transfer(true)
	c.log.Info("call transferred", "to", r.remote.User, "from_call", y.ID)
}

// joinAsking joins leg n, now in call c, to the other leg when n's phone
// has made no offer: a re-INVITE without one asks it for its offer, which
// then goes to the other phone (RFC 3725 §4.2).
func (s *Server) joinAsking(c *Call, n *leg) error {
	res, cseq, err := s.reinvite(c, n, nil, nil)
	if err != nil {
		return err
	}
	if !isSDP(res) {
		c.do(func() { s.sendAck(n, cseq, nil, nil) })
		return errors.New("the phone's answer to a re-INVITE without an offer carried none")
	}
	c.do(func() {
		if ct := res.Contact(); ct != nil {
			n.target = keptURI(&ct.Address)
		}
		s.negotiateUAC(n, res)
	})
	return s.splice(c, n, res, func(answer []byte, from sip.Message) { s.sendAck(n, cseq, from, answer) })
}

// detached returns a copy of leg l for another call, and takes l out of
// its own: l is gone, its timers stopped. Run it in l's call's queue.
func (l *leg) detached() *leg {
	l.gone = true
	l.st.stop()
	l.stopAwaitingAck()
	n := *l
	n.call, n.gone = nil, false
	n.st.timer = nil
	return &n
}

// replaceLeg puts leg n in the place of leg old in call c. old's phone
// gets its BYE first, and parley waits (up to 2 s) for its answer: once
// the phone has stopped sending, the relay latches the new phone's media
// and not the old one's last packets. The old leg stays in the call table
// for 64*T1, so its phone's own BYE is answered 200.
func (s *Server) replaceLeg(c *Call, old, n *leg) error {
	var bye *sip.Request
	var err error
	c.do(func() {
		if c.state >= Terminating {
			err = errCallEnded
			return
		}
		if !old.gone {
			old.gone = true
			old.st.stop()
			old.stopAwaitingAck()
			old.localCSeq++
			bye = s.newRequest(old, sip.BYE, old.localCSeq)
			bye.SetBody(nil)
		}
	})
	if err != nil {
		return err
	}
	if bye != nil {
		wait := time.NewTimer(2 * time.Second)
		select {
		case <-s.send(c, bye):
		case <-wait.C:
		}
		wait.Stop()
	}
	s.forgetLater(old)
	c.do(func() {
		if c.state >= Terminating {
			err = errCallEnded
			return
		}
		n.call, n.role = c, old.role
		s.changed(c.from, c.to)
		if c.caller == old {
			c.caller = n
			c.from = n.remote.User
		} else {
			c.callee = n
			c.to = n.remote.User
		}
		s.changed(c.from, c.to)
		// The offer/answer that joins the media is parley's: a phone's
		// offer meanwhile gets 491.
		c.negotiating = true
		if pc, ok := c.media.(phoneChanger); ok {
			pc.PhoneChanged(n.role == roleCaller)
		}
		if dm, ok := c.media.(dtmfMedia); ok {
			// The new phone's user may send keys another way.
			dm.SetDTMFMode(n.role == roleCaller, s.dtmfMode(n.remote.User))
		}
		if sm, ok := c.media.(srtpMedia); ok {
			sm.SetSRTP(n.role == roleCaller, s.srtpPolicy(n.remote.User)) // srtp.go
		}
	})
	if err != nil {
		return err
	}
	s.calls.addLeg(n)
	return nil
}

// splice takes offer, the SDP offer of leg n's phone (in its INVITE or
// its 2xx), to the other phone of call c in a re-INVITE, and gives that
// phone's answer to deliver (which puts it in n's ACK or 2xx), in the
// call's queue. The call's media follow the new phone.
func (s *Server) splice(c *Call, n *leg, offer sip.Message, deliver func(answer []byte, from sip.Message)) error {
	var e *leg
	var body []byte
	var err error
	c.do(func() {
		e = c.other(n)
		if e == nil || c.state >= Terminating {
			err = errCallEnded
			return
		}
		body, err = rewrite(c.media, true, n.role == roleCaller, offer)
	})
	if err != nil {
		return err
	}
	res, cseq, err := s.reinvite(c, e, body, offer)
	if err != nil {
		return err
	}
	c.do(func() {
		if c.state >= Terminating {
			err = errCallEnded
			return
		}
		if ct := res.Contact(); ct != nil {
			e.target = keptURI(&ct.Address)
		}
		s.negotiateUAC(e, res)
		s.sendAck(e, cseq, nil, nil)
		if !isSDP(res) {
			err = errors.New("the answer to the joining re-INVITE carried no SDP")
			return
		}
		var answer []byte
		if answer, err = rewrite(c.media, false, e.role == roleCaller, res); err != nil {
			return
		}
		deliver(answer, res)
		s.armTimer(e)
		s.armTimer(n)
		c.negotiating = false
		s.hold(c)
	})
	return err
}

// spliceAsked joins leg n, which took a leg's place in call c with req, an
// INVITE without an offer, to the other leg: that phone is asked for an
// offer (a re-INVITE without one), the offer goes to n's phone in the 2xx
// to req, which it returns, and the answer in n's ACK goes back to the
// other phone in the ACK of its re-INVITE (RFC 3725 §4.2, reversed).
func (s *Server) spliceAsked(c *Call, n *leg, req *sip.Request, tx sip.ServerTransaction) (*sip.Response, error) {
	var e *leg
	c.do(func() { e = c.other(n) })
	if e == nil {
		return nil, errCallEnded
	}
	res, cseq, err := s.reinvite(c, e, nil, nil)
	if err != nil {
		return nil, err
	}
	var ok *sip.Response
	c.do(func() {
		if c.state >= Terminating {
			err = errCallEnded
			return
		}
		if ct := res.Contact(); ct != nil {
			e.target = keptURI(&ct.Address)
		}
		s.negotiateUAC(e, res)
		if !isSDP(res) {
			s.sendAck(e, cseq, nil, nil)
			err = errors.New("the phone's answer to a re-INVITE without an offer carried none")
			return
		}
		var offer []byte
		if offer, err = rewrite(c.media, true, e.role == roleCaller, res); err != nil {
			s.sendAck(e, cseq, nil, nil)
			return
		}
		ok = s.answerOK(n, req, tx, okSpec{body: offer, bodyFrom: res, allow: true, onAck: func(ack *sip.Request) {
			answer, err := rewrite(c.media, false, n.role == roleCaller, ack)
			if err != nil || !isSDP(ack) {
				c.log.Info("no usable answer in the ACK of an INVITE with Replaces; hanging up", "error", err)
				s.sendAck(e, cseq, nil, nil)
				s.goOwned(func() { s.endCall(c, nil, resultFailed, "no answer in the ACK") })
				return
			}
			s.sendAck(e, cseq, ack, answer)
			s.armTimer(e)
			c.negotiating = false
			s.hold(c)
		}})
	})
	return ok, err
}

// reinvite sends leg l of call c a re-INVITE with body (an offer, with
// bodyFrom's body headers; none asks the phone for an offer) and waits for
// its final response. A 491 is tried again twice after a pause (RFC 3261
// §14.1). On a 2xx the transaction lives on, so each retransmission of the
// 2xx gets the ACK parley sends for it (see sendAck); cseq is the
// re-INVITE's.
func (s *Server) reinvite(c *Call, l *leg, body []byte, bodyFrom sip.Message) (res *sip.Response, cseq uint32, err error) {
	for attempt := 0; ; attempt++ {
		var req *sip.Request
		var slot *ackSlot
		c.do(func() {
			if c.state >= Terminating || l.gone {
				return
			}
			l.localCSeq++
			req = s.newRequest(l, sip.INVITE, l.localCSeq)
			s.timerRequestHeaders(req, l, true)
			if len(body) > 0 {
				withBody(req, bodyFrom, body)
			} else {
				req.SetBody(nil)
			}
			slot = l.ackSlot()
		})
		if req == nil {
			return nil, 0, errCallEnded
		}
		ctx, cancel := context.WithTimeout(s.context(), 5*time.Second)
		tx, err := s.request(ctx, req)
		cancel()
		if err != nil {
			return nil, 0, err
		}
		res, err := s.finalOf(c, tx)
		if err != nil {
			tx.Terminate()
			return nil, 0, err
		}
		cseq = req.CSeq().SeqNo
		if res.StatusCode < 300 {
			tx.OnRetransmission(func(*sip.Response) { slot.resend(s, cseq) })
			return res, cseq, nil
		}
		tx.Terminate()
		if res.StatusCode != 491 || attempt == 2 {
			return nil, 0, fmt.Errorf("re-INVITE answered %d %s", res.StatusCode, res.Reason)
		}
		pause := time.NewTimer(500*time.Millisecond + rand.N(1500*time.Millisecond))
		select {
		case <-pause.C:
		case <-c.closed:
			pause.Stop()
			return nil, 0, errCallEnded
		}
	}
}

// finalOf waits for the final response of client transaction tx of call
// c: at most Timer C's 3 minutes for an INVITE that rings, less when the
// call ends or the server stops.
func (s *Server) finalOf(c *Call, tx sip.ClientTransaction) (*sip.Response, error) {
	timerC := time.NewTimer(3 * time.Minute)
	defer timerC.Stop()
	for {
		select {
		case res := <-tx.Responses():
			if res.StatusCode >= 200 {
				return res, nil
			}
		case <-tx.Done():
			return nil, fmt.Errorf("no answer: %v", tx.Err())
		case <-timerC.C:
			return nil, errors.New("no final answer within Timer C")
		case <-c.closed:
			return nil, errCallEnded
		case <-s.context().Done():
			return nil, errCallEnded
		}
	}
}

// inviteReplaces takes an INVITE with Replaces (RFC 3891) from user: the
// new dialog takes the place of the leg it names in that leg's call.
func (s *Server) inviteReplaces(req *sip.Request, tx sip.ServerTransaction, user, value string) {
	rp, err := parseReplaces(value)
	if err != nil {
		s.reply(req, tx, badRequest("%v", err))
		return
	}
	c, old, err := s.holdReplaced(rp, nil)
	if err != nil {
		s.reply(req, tx, err)
		return
	}
	// The leg joins the call in replaceLeg, in the call's queue.
	n := uasLeg(nil, old.role, req, req.Contact())
	var x *transfer
	c.do(func() {
		x = c.xfer
		if s.auth != nil && user != old.remote.User {
			// RFC 3891 §6.1: the phone of the leg, or its user on
			// another phone, may take its place; nobody else.
			err = sipmsg.Warn(403, "Forbidden", "Replaces names a dialog of another user")
			s.endTransfer(c, x)
			return
		}
		err = s.negotiateUAS(n, req)
		if err != nil {
			s.endTransfer(c, x)
		}
	})
	if err != nil {
		s.reply(req, tx, err)
		return
	}
	_ = tx.Respond(sipmsg.NewResponse(req, 100, "Trying", ""))
	c.log.Info("INVITE with Replaces", "from", user, "replaces", old.role.String())
	if err := s.replaceLeg(c, old, n); err != nil {
		c.do(func() { s.endTransfer(c, x) })
		s.reply(req, tx, sipmsg.Warn(481, "Call/Transaction Does Not Exist", "the call ended"))
		return
	}
	var ok *sip.Response
	if isSDP(req) {
		err = s.splice(c, n, req, func(answer []byte, from sip.Message) {
			ok = s.answerOK(n, req, tx, okSpec{body: answer, bodyFrom: from, allow: true})
		})
	} else {
		ok, err = s.spliceAsked(c, n, req, tx)
	}
	c.do(func() { s.endTransfer(c, x) })
	if err != nil {
		s.m.transfer(false)
		c.log.Info("INVITE with Replaces failed", "error", err)
		_ = tx.Respond(sipmsg.Response(req, sipmsg.As(err, 500, "Server Internal Error"), n.localTag))
		s.endCall(c, n, resultAnswered, "replacing failed: "+err.Error())
		return
	}
	s.m.transfer(true)
	_ = tx.Respond(ok)
}
