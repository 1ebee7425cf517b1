package dialog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// onAck takes the ACK for a 2xx parley sent and passes it on.
func (s *Server) onAck(req *sip.Request, tx sip.ServerTransaction) {
	l := s.calls.lookup(sipmsg.CallID(req), sipmsg.Tag(req.To().Params))
	if l == nil {
		s.log.Debug("ACK for no dialog dropped", "call_id", sipmsg.CallID(req))
		return
	}
	l.call.do(func() { s.acked(l, req) })
}

// sendAck sends the ACK for the 2xx to the INVITE with CSeq cseq on leg l,
// with body and from's body headers when from is set; it stays in the
// leg's slot for the 2xx's retransmissions. It is written from the call's
// queue, so a BYE cannot overtake it. Run it in the call's queue.
func (s *Server) sendAck(l *leg, cseq uint32, from sip.Message, body []byte) {
	c := l.call
	if c.state >= Terminating {
		// terminate got there first and sent this leg its ACK and BYE.
		return
	}
	ack := s.newRequest(l, sip.ACK, cseq)
	if from != nil {
		withBody(ack, from, body)
	} else {
		ack.SetBody(nil)
	}
	l.ackSlot().p.Store(ack)
	l.setDialog(DialogConfirmed)
	if err := s.write(ack); err != nil {
		c.log.Info("ACK not sent", "leg", l.role.String(), "error", err)
	}
}

// ackAndBye acknowledges a 2xx from a branch that lost the race and ends
// that dialog at once (RFC 3261 §13.2.2.4). The branch's leg is no part of
// the call any more, so a copy of it is used.
func (s *Server) ackAndBye(c *Call, f *fork, res *sip.Response) {
	l := *f.leg
	l.remoteTag = strings.Clone(sipmsg.Tag(res.To().Params))
	if ct := res.Contact(); ct != nil {
		l.target = keptURI(&ct.Address)
	}
	l.routes = reversed(recordRoutes(res))
	ack := s.newRequest(&l, sip.ACK, f.req.CSeq().SeqNo)
	ack.SetBody(nil)
	_ = s.write(ack)
	l.localCSeq++
	bye := s.newRequest(&l, sip.BYE, l.localCSeq)
	bye.SetBody(nil)
	s.send(c, bye)
}

// onBye ends a call from either side.
func (s *Server) onBye(req *sip.Request, tx sip.ServerTransaction) {
	l := s.calls.lookup(sipmsg.CallID(req), sipmsg.Tag(req.To().Params))
	if l == nil {
		s.reply(req, tx, ErrNoDialog)
		return
	}
	var leaves bool
	l.call.do(func() { leaves = l.leaves() || l.call.memberLeaves(l) })
	_ = tx.Respond(sipmsg.NewResponse(req, 200, "OK", ""))
	if leaves {
		s.forgetLater(l)
		return
	}
	s.endCall(l.call, l, resultAnswered, "BYE from "+l.role.String())
}

// leaves reports whether a BYE on leg l ends only that leg, not its call:
// a leg a transfer took out of the call already, or the transferor's (or
// the replaced) leg of a transfer in progress, which goes on without it.
// Run it in the call's queue.
func (l *leg) leaves() bool {
	if l.gone {
		return true
	}
	x := l.call.xfer
	if x == nil || x.from != l {
		return false
	}
	l.gone = true
	l.st.stop()
	l.stopAwaitingAck()
	return true
}

// onCancel answers a CANCEL that matched no transaction (the transaction
// layer handles the ones that do).
func (s *Server) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	s.reply(req, tx, ErrNoDialog)
}

// send starts a non-INVITE client transaction and reads it to its end in
// a goroutine the Server owns. The returned channel gets the final
// response, or is closed without one; nobody need read it.
func (s *Server) send(c *Call, req *sip.Request) <-chan *sip.Response {
	return s.sendWith(c.log, req)
}

// sendWith is send for a request of no call's, logged on log.
func (s *Server) sendWith(log callLog, req *sip.Request) <-chan *sip.Response {
	final := make(chan *sip.Response, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	tx, err := s.request(ctx, req)
	cancel()
	if err != nil {
		log.Info("request not sent", "method", string(req.Method), "error", err)
		close(final)
		return final
	}
	s.goOwned(func() {
		defer close(final)
		defer tx.Terminate()
		// On shutdown a peer gets 2 s more to answer, not Timer F's 32 s.
		done := s.context().Done()
		var stop <-chan time.Time
		for {
			select {
			case <-done:
				done = nil
				t := time.NewTimer(2 * time.Second)
				defer t.Stop()
				stop = t.C
			case <-stop:
				return
			case res := <-tx.Responses():
				if res.StatusCode >= 200 {
					log.Debug("request answered", "method", string(req.Method), "status", res.StatusCode)
					final <- res
					return
				}
			case <-tx.Done():
				log.Debug("request got no answer", "method", string(req.Method), "error", tx.Err())
				return
			}
		}
	})
	return final
}

// inDialog is what the call's queue decided about a request inside a
// dialog: answered there (res or err), or to be relayed (out) to the
// other leg.
type inDialog struct {
	res      *sip.Response
	err      error
	other    *leg
	out      *sip.Request
	cseq     uint32
	offering bool // an offer crossing between the legs: c.negotiating set
	sdpOffer bool // the request carries an SDP offer
}

// relayInDialog passes a request inside a dialog (re-INVITE, UPDATE, INFO,
// MESSAGE, NOTIFY, REFER, OPTIONS) to the other leg and its response back.
func (s *Server) relayInDialog(req *sip.Request, tx sip.ServerTransaction) {
	l := s.calls.lookup(sipmsg.CallID(req), sipmsg.Tag(req.To().Params))
	if l == nil {
		s.reply(req, tx, ErrNoDialog)
		return
	}
	switch req.Method {
	case sip.PRACK:
		// PRACK is per leg (RFC 3262): parley answers it, never relays it.
		s.onPrack(l, req, tx)
		return
	case sip.REFER:
		// parley transfers the call itself (transfer.go).
		s.onRefer(l, req, tx)
		return
	}
	c := l.call
	var d inDialog
	c.do(func() { d = s.takeInDialog(l, req, tx) })
	switch {
	case d.err != nil:
		s.reply(req, tx, d.err)
		return
	case d.res != nil:
		_ = tx.Respond(d.res)
		return
	}
	if d.offering {
		defer c.do(func() { c.negotiating = false })
	}

	ctx, cancel := context.WithTimeout(s.context(), 5*time.Second)
	otx, err := s.request(ctx, d.out)
	cancel()
	if err != nil {
		if _, ok := errors.AsType[*sipmsg.Error](err); !ok {
			err = sipmsg.Warn(503, "Service Unavailable", err.Error())
		}
		s.reply(req, tx, err)
		return
	}
	// RFC 3261 Timer C bounds how long the other side may take to answer.
	timerC := time.NewTimer(3 * time.Minute)
	defer timerC.Stop()
	for {
		select {
		case <-timerC.C:
			otx.Terminate()
			s.reply(req, tx, sipmsg.Warn(408, "Request Timeout", "no final response from the other leg"))
			return
		case <-s.context().Done():
			otx.Terminate()
			s.reply(req, tx, ErrServerBusy)
			return
		case <-c.closed:
			// The dialog ended under the request (RFC 3261 §15.1.2).
			otx.Terminate()
			s.reply(req, tx, sipmsg.Status(487, "Request Terminated"))
			return
		case res := <-otx.Responses():
			if res.StatusCode < 200 {
				if res.StatusCode > 100 && req.IsInvite() {
					_ = tx.Respond(sipmsg.NewResponse(req, res.StatusCode, res.Reason, l.localTag))
				}
				continue
			}
			if req.IsInvite() && res.StatusCode < 300 {
				// The INVITE transaction lives on to Timer M; each 2xx
				// retransmission gets the ACK sent for it again.
				var slot *ackSlot
				c.do(func() { slot = d.other.ackSlot() })
				cseq := d.cseq
				otx.OnRetransmission(func(*sip.Response) { slot.resend(s, cseq) })
			} else {
				otx.Terminate()
			}
			s.relayFinal(c, l, d.other, req, tx, res, d.cseq, d.sdpOffer)
			return
		case <-otx.Done():
			if !strings.Contains(errText(otx.Err()), "timeout") {
				s.reply(req, tx, sipmsg.Warn(503, "Service Unavailable", errText(otx.Err())))
				return
			}
			s.reply(req, tx, sipmsg.Status(408, "Request Timeout"))
			return
		}
	}
}

// takeInDialog is the call's part of a request inside a dialog on leg l:
// the CSeq order check (RFC 3261 §12.2.2), the 491 for an offer that
// crosses another (§14.1), the target refresh, the session timer
// (RFC 4028), the refreshes parley answers itself, and the request to
// relay. Run it in the call's queue.
func (s *Server) takeInDialog(l *leg, req *sip.Request, tx sip.ServerTransaction) inDialog {
	c := l.call
	if l.gone {
		return inDialog{err: ErrNoDialog}
	}
	if c.page != nil && c.page.members[l] != nil && c.state < Terminating {
		// A page's member: parley's side never changes.
		return inDialog{res: s.answerMember(c, l, req, tx)}
	}
	if c.svc != nil && c.state < Terminating {
		res, err := s.answerForService(c, l, req, tx)
		return inDialog{res: res, err: err}
	}
	other := c.other(l)
	if other == nil || other.remoteTag == "" || c.state >= Terminating {
		return inDialog{err: ErrNoDialog}
	}
	seq := req.CSeq().SeqNo
	if l.remoteCSeq != 0 && seq <= l.remoteCSeq {
		return inDialog{err: sipmsg.Warn(500, "Server Internal Error", "CSeq out of order")}
	}
	l.remoteCSeq = seq
	if d, ok := s.takeDTMF(l, other, req); ok {
		return d // a key for a leg that uses RFC 4733 (dtmf.go)
	}
	refresh := req.IsInvite() || req.Method == sip.UPDATE
	sdp := isSDP(req)
	offering := req.IsInvite() || (req.Method == sip.UPDATE && sdp)
	if offering && (c.negotiating || l.okRes != nil || other.okRes != nil) {
		return inDialog{err: ErrPendingRequest}
	}
	if ct := req.Contact(); ct != nil && refresh {
		l.target = keptURI(&ct.Address)
	}
	fromCaller := l.role == roleCaller
	if refresh {
		if err := s.negotiateUAS(l, req); err != nil {
			return inDialog{err: err}
		}
		// A refresh that changes nothing (an UPDATE without SDP, or SDP
		// with the o= version the phone sent last) is answered here: the
		// two legs' session timers are independent (RFC 4028).
		if (req.Method == sip.UPDATE && len(req.Body()) == 0) || (c.media != nil && sdp && c.media.Unchanged(fromCaller, req.Body())) {
			spec := okSpec{allow: true}
			if sdp {
				spec.body, spec.bodyFrom = c.media.Current(fromCaller), req
			}
			c.log.Debug("session refreshed", "leg", l.role.String(), "method", string(req.Method))
			return inDialog{res: s.answerOK(l, req, tx, spec)}
		}
	}
	// An INVITE or UPDATE with SDP is an offer; a re-INVITE without one
	// asks the other side for an offer (answered in the ACK).
	sdpOffer := refresh && sdp
	body := req.Body()
	if sdpOffer {
		var err error
		if body, err = rewrite(c.media, true, fromCaller, req); err != nil {
			return inDialog{err: err}
		}
	}
	// Claimed in the same event as the check above, so two crossing
	// offers cannot both pass (RFC 3261 §14.1).
	if offering {
		c.negotiating = true
	}
	other.localCSeq++
	out := s.newRequest(other, req.Method, other.localCSeq)
	if refresh {
		s.timerRequestHeaders(out, other, true)
	}
	sipmsg.CopyHeaders(out, req, "Event", "Subscription-State", "Refer-To", "Referred-By", "Info-Package", "Recv-Info", "Subject")
	withBody(out, req, body)
	return inDialog{other: other, out: out, cseq: other.localCSeq, offering: offering, sdpOffer: sdpOffer}
}

// relayFinal answers an in-dialog request with the other leg's final
// response.
func (s *Server) relayFinal(c *Call, l, other *leg, req *sip.Request, tx sip.ServerTransaction, res *sip.Response, cseq uint32, sdpOffer bool) {
	ok := res.StatusCode < 300
	fromCaller := l.role == roleCaller
	refresh := req.IsInvite() || req.Method == sip.UPDATE
	negotiated := ok && refresh && isSDP(res)
	var out *sip.Response
	c.do(func() {
		if ok {
			// The CSeqs moved on, and perhaps the media and the timers.
			defer s.checkpoint(c)
		}
		body := res.Body()
		if negotiated {
			// The 2xx carries the answer to the offer, or (re-INVITE
			// without SDP) the other side's offer, answered in the ACK.
			var err error
			if body, err = rewrite(c.media, !sdpOffer, !fromCaller, res); err != nil {
				c.log.Info("SDP in 2xx refused", "error", err)
				body = nil
			}
		}
		if !ok || !refresh {
			out = sipmsg.NewResponse(req, res.StatusCode, res.Reason, l.localTag)
			sipmsg.CopyHeaders(out, res, "Retry-After", "Unsupported", "Allow", "Accept")
			withBody(out, res, body)
			return
		}
		if ct := res.Contact(); ct != nil {
			other.target = keptURI(&ct.Address)
		}
		// Both legs were refreshed: the phone's request on one, parley's
		// on the other.
		s.negotiateUAC(other, res)
		s.armTimer(other)
		spec := okSpec{
			code: res.StatusCode, reason: res.Reason, body: body, bodyFrom: res,
			copyFrom: res, copy: []string{"Retry-After", "Unsupported", "Allow", "Accept"},
		}
		if req.IsInvite() {
			spec.onAck = func(ack *sip.Request) {
				if sdpOffer || !isSDP(ack) {
					s.sendAck(other, cseq, nil, nil)
					return
				}
				answer, err := rewrite(c.media, false, fromCaller, ack)
				if err != nil {
					c.log.Info("answer in ACK refused", "error", err)
					answer = nil
				}
				s.sendAck(other, cseq, ack, answer)
				s.hold(c)
			}
		}
		out = s.answerOK(l, req, tx, spec)
	})
	_ = tx.Respond(out)
	if negotiated && sdpOffer {
		c.do(func() { s.hold(c) })
	}
	if endsCall(req.Method, res.StatusCode) {
		// The other side's session is gone. Both legs get their BYE: the
		// phone that asked, and the other too, in case only the usage it
		// answered for is gone there (its BYE then draws a 481, harmless).
		s.endCall(c, nil, resultAnswered, fmt.Sprintf("%s answered %d %s", req.Method, res.StatusCode, res.Reason))
	}
}

// endsCall reports whether a final response to an in-dialog request ends
// the call: RFC 5057 §5.1, a 481 ends the usage the request belongs to,
// and only requests of the invite usage (re-INVITE, UPDATE, PRACK, INFO,
// BYE) belong to the call; a 481 to a NOTIFY, REFER, SUBSCRIBE, MESSAGE or
// OPTIONS ends at most a subscription (a transfer's, say), and the call
// goes on. A 408 to a session refresh (re-INVITE or UPDATE) ends the
// session too (RFC 4028 §10); to anything else it is the transaction's
// failure only.
func endsCall(method sip.RequestMethod, code int) bool {
	switch code {
	case 481:
		switch method {
		case sip.INVITE, sip.UPDATE, sip.PRACK, sip.INFO, sip.BYE:
			return true
		}
	case 408:
		return method == sip.INVITE || method == sip.UPDATE
	}
	return false
}

// HangupAll ends every call: BYE to both legs of established calls, a
// final error to calls still being set up.
//
// After Detach, established calls are instead dropped from memory without
// BYE: their checkpoints stay for the next process.
func (s *Server) HangupAll(reason string) {
	for _, c := range s.calls.all() {
		if s.detached.Load() {
			var established bool
			c.do(func() { established = c.state == Active || c.state == Suspended })
			if established {
				s.closeCall(c, resultDetached, "left to the next process")
				continue
			}
		}
		s.hangup(c, reason)
	}
}

// hangup is the event of parley ending a call itself (shutdown, admin):
// a call being set up is aborted (its caller gets 503), any other ended
// with BYE on both legs.
func (s *Server) hangup(c *Call, reason string) {
	var aborted bool
	c.do(func() {
		if c.state == Establishing {
			c.abortOnce.Do(func() { close(c.aborted) })
			aborted = true
		}
	})
	if !aborted {
		s.endCall(c, nil, resultAnswered, reason)
	}
}

// Hangup ends the call with the given ID, reporting whether it existed.
func (s *Server) Hangup(id string) bool {
	c := s.calls.get(id)
	if c == nil {
		return false
	}
	s.hangup(c, "hung up by admin")
	return true
}

// keyTaker is a service session that takes the keys its caller presses
// (a push-to-talk room's member).
type keyTaker interface {
	Key(code uint8)
}

// answerForService answers an in-dialog request on a call a built-in
// service answered: a re-INVITE gets the session's unchanged answer (same
// o= version, RFC 3264 §8), anything else a plain 200. Run it in the
// call's queue.
func (s *Server) answerForService(c *Call, l *leg, req *sip.Request, tx sip.ServerTransaction) (*sip.Response, error) {
	if kt, ok := c.svc.(keyTaker); ok && req.Method == sip.INFO {
		if ct := dtmfContentType(req); ct != "" {
			// A key in SIP INFO reaches the service as one in RFC 4733
			// events would (a push-to-talk room's floor keys).
			key, err := parseDTMFInfo(ct, req.Body())
			if err != nil {
				return nil, sipmsg.Warn(400, "Bad Request", err.Error())
			}
			kt.Key(key.code)
			s.m.dtmfKey(dtmfInfo, dtmfService)
			return sipmsg.NewResponse(req, 200, "OK", l.localTag), nil
		}
	}
	if !req.IsInvite() && req.Method != sip.UPDATE {
		return sipmsg.NewResponse(req, 200, "OK", l.localTag), nil
	}
	if err := s.negotiateUAS(l, req); err != nil {
		return nil, err
	}
	var spec okSpec
	if req.IsInvite() {
		spec.body = c.svcAnswer
	}
	return s.answerOK(l, req, tx, spec), nil
}
