package dialog

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/parley-sip/parley/dialog/sipmsg"
)

// move changes a call's state, keeping the gauge in step.
func (s *Server) move(c *Call, to State) {
	c.mu.Lock()
	s.moveLocked(c, to)
	c.mu.Unlock()
}

func (s *Server) moveLocked(c *Call, to State) {
	from := c.state
	if from == to {
		return
	}
	if !canMove(from, to) {
		c.log.Warn("illegal state change refused", "from", from.String(), "to", to.String())
		return
	}
	c.state = to
	s.m.state(from, to)
	if c.log.enabled(slog.LevelDebug) {
		c.log.Debug("call state", "from", from.String(), "to", to.String())
	}
}

// awaitAck records a 2xx sent on leg l that waits for its ACK, and over
// UDP retransmits it (RFC 3261 §13.3.1.4) until the ACK comes or 64*T1
// passes, after which the call is hung up. Call with c.mu held.
func (s *Server) awaitAck(l *leg, tx sip.ServerTransaction, res *sip.Response, cseq uint32, onAck func(*sip.Request)) {
	l.okTx, l.okRes, l.okCSeq, l.ackedFor = tx, res, cseq, onAck
	l.okSent = time.Now()
	if l.transport != "udp" {
		return
	}
	l.okWait = sip.T1
	l.okTimer = time.AfterFunc(l.okWait, func() { s.retransmitOK(l) })
}

func (s *Server) retransmitOK(l *leg) {
	c := l.call
	c.mu.Lock()
	if l.okRes == nil {
		c.mu.Unlock()
		return
	}
	if time.Since(l.okSent) >= 64*sip.T1 {
		l.okRes, l.ackedFor = nil, nil
		c.mu.Unlock()
		c.log.Info("no ACK for 2xx; hanging up", "leg", l.role.String())
		s.endCall(c, nil, resultFailed, "no ACK")
		return
	}
	tx, res := l.okTx, l.okRes
	l.okWait = min(2*l.okWait, sip.T2)
	l.okTimer.Reset(l.okWait)
	c.mu.Unlock()
	if err := tx.Respond(res); err != nil {
		c.log.Debug("2xx retransmission failed", "error", err)
	}
}

// onAck takes the ACK for a 2xx parley sent and passes it on.
func (s *Server) onAck(req *sip.Request, tx sip.ServerTransaction) {
	l := s.calls.lookup(sipmsg.CallID(req), sipmsg.Tag(req.To().Params))
	if l == nil {
		s.log.Debug("ACK for no dialog dropped", "call_id", sipmsg.CallID(req))
		return
	}
	c := l.call
	c.mu.Lock()
	if l.okRes == nil || req.CSeq().SeqNo != l.okCSeq {
		c.mu.Unlock()
		return // a retransmitted ACK
	}
	if l.okTimer != nil {
		l.okTimer.Stop()
		l.okTimer = nil
	}
	fn := l.ackedFor
	l.okRes, l.okTx, l.ackedFor = nil, nil, nil
	l.setDialog(DialogConfirmed)
	if ct := req.Contact(); ct != nil {
		l.target = keptURI(&ct.Address)
	}
	c.mu.Unlock()
	if fn != nil {
		fn(req)
	}
}

// ackLeg sends the ACK for the 2xx to the INVITE with CSeq cseq on leg l,
// carrying the body of the ACK that came from the other side, if any.
func (s *Server) ackLeg(c *Call, l *leg, cseq uint32, from *sip.Request) {
	var body []byte
	if from != nil {
		body = from.Body()
	}
	s.ackLegBody(c, l, cseq, from, body)
}

// ackLegBody is ackLeg with the body given (rewritten for the relay).
func (s *Server) ackLegBody(c *Call, l *leg, cseq uint32, from *sip.Request, body []byte) {
	c.mu.Lock()
	if c.state >= Terminating {
		// endCall got there first and sent this leg its ACK and BYE.
		c.mu.Unlock()
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
	defer c.mu.Unlock()
	// Written under the lock: endCall must not send a BYE ahead of it.
	if err := s.write(ack); err != nil {
		c.log.Info("ACK not sent", "leg", l.role.String(), "error", err)
	}
}

// ackAndBye acknowledges a 2xx from a branch that lost the race and ends
// that dialog at once (RFC 3261 §13.2.2.4).
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
	_ = tx.Respond(sipmsg.NewResponse(req, 200, "OK", ""))
	s.endCall(l.call, l, resultAnswered, "BYE from "+l.role.String())
}

// onCancel answers a CANCEL that matched no transaction (sipgo handles the
// ones that do).
func (s *Server) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	s.reply(req, tx, ErrNoDialog)
}

// endCall hangs up an established call: BYE to every leg but the one the
// hangup came from, then the call is closed.
func (s *Server) endCall(c *Call, from *leg, result, reason string) {
	c.mu.Lock()
	if c.state >= Terminating {
		c.mu.Unlock()
		return
	}
	if c.answer.IsZero() && result == resultAnswered {
		result = resultFailed
	}
	s.moveLocked(c, Terminating)
	var byes []*sip.Request
	for _, l := range []*leg{c.caller, c.callee} {
		if l == nil {
			continue
		}
		if l.okTimer != nil {
			l.okTimer.Stop()
			l.okTimer = nil
		}
		l.okRes, l.ackedFor = nil, nil
		if l == from {
			continue
		}
		if l.role == roleCallee && l.dialog != DialogConfirmed && l.remoteTag != "" {
			// A callee hung up before the caller's ACK came: it still
			// needs its ACK before the BYE (RFC 3261 §15).
			ack := s.newRequest(l, sip.ACK, l.inviteCSeq)
			ack.SetBody(nil)
			_ = s.write(ack)
		}
		if l.role == roleCallee && l.remoteTag == "" {
			continue
		}
		l.localCSeq++
		bye := s.newRequest(l, sip.BYE, l.localCSeq)
		bye.SetBody(nil)
		byes = append(byes, bye)
	}
	c.mu.Unlock()
	for _, b := range byes {
		s.send(c, b)
	}
	s.closeCall(c, result, reason)
}

// closeCall removes a call from the table and records how it ended.
func (s *Server) closeCall(c *Call, result, reason string) {
	c.mu.Lock()
	if c.state == Closed {
		c.mu.Unlock()
		return
	}
	if c.state != Terminating {
		s.moveLocked(c, Terminating)
	}
	s.moveLocked(c, Closed)
	c.end = time.Now()
	c.result, c.reason = result, reason
	legs := []*leg{c.caller, c.callee}
	for _, l := range legs {
		if l != nil {
			l.st.stop()
			l.setDialog(DialogTerminated)
		}
	}
	if c.maxTimer != nil {
		c.maxTimer.Stop()
	}
	svc, ms := c.svc, c.media
	close(c.closed)
	c.mu.Unlock()
	if svc != nil {
		_ = svc.Close()
	}
	var quality *MediaQuality
	if ms != nil {
		q := ms.Quality()
		quality = &q
		_ = ms.Close()
	}
	for _, l := range legs {
		if l != nil {
			s.calls.removeLeg(l)
		}
	}
	s.calls.release(c, c.account)
	s.m.callsTotal.WithLabelValues(result).Inc()
	args := []any{"result", result, "reason", reason}
	if !c.answer.IsZero() {
		args = append(args, "duration_s", c.end.Sub(c.answer).Round(time.Millisecond).Seconds())
	}
	if quality != nil && quality.Packets > 0 {
		args = append(args, "codec", quality.Codec, "rtp_packets", quality.Packets, "rtp_lost", quality.Lost, "jitter_ms", float64(quality.Jitter.Microseconds())/1000)
	}
	c.log.Info("call ended", args...)
}

// send starts a non-INVITE client transaction and reads it to its end in
// a goroutine the Server owns.
func (s *Server) send(c *Call, req *sip.Request) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	tx, err := s.request(ctx, req)
	cancel()
	if err != nil {
		c.log.Info("request not sent", "method", string(req.Method), "error", err)
		return
	}
	s.goOwned(func() {
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
					c.log.Debug("request answered", "method", string(req.Method), "status", res.StatusCode)
					return
				}
			case <-tx.Done():
				c.log.Debug("request got no answer", "method", string(req.Method), "error", tx.Err())
				return
			}
		}
	})
}

// relayInDialog passes a request inside a dialog (re-INVITE, UPDATE, INFO,
// MESSAGE, NOTIFY, REFER, OPTIONS) to the other leg and its response back.
func (s *Server) relayInDialog(req *sip.Request, tx sip.ServerTransaction) {
	l := s.calls.lookup(sipmsg.CallID(req), sipmsg.Tag(req.To().Params))
	if l == nil {
		s.reply(req, tx, ErrNoDialog)
		return
	}
	c := l.call
	c.mu.Lock()
	if c.svc != nil && c.state < Terminating {
		c.mu.Unlock()
		s.answerForService(c, l, req, tx)
		return
	}
	other := c.other(l)
	if other == nil || other.remoteTag == "" || c.state >= Terminating {
		c.mu.Unlock()
		s.reply(req, tx, ErrNoDialog)
		return
	}
	// RFC 3261 §12.2.2: a CSeq lower than the last one is an error.
	if seq := req.CSeq().SeqNo; l.remoteCSeq != 0 && seq <= l.remoteCSeq {
		c.mu.Unlock()
		s.reply(req, tx, &sipmsg.Error{Code: 500, Reason: "Server Internal Error", Warning: "CSeq out of order"})
		return
	}
	l.remoteCSeq = req.CSeq().SeqNo
	offering := req.IsInvite() || (req.Method == sip.UPDATE && isSDP(req))
	if offering && (c.negotiating || l.okRes != nil || other.okRes != nil) {
		c.mu.Unlock()
		s.reply(req, tx, ErrPendingRequest)
		return
	}
	if ct := req.Contact(); ct != nil && (req.IsInvite() || req.Method == sip.UPDATE) {
		l.target = keptURI(&ct.Address)
	}
	fromCaller := l.role == roleCaller
	if req.IsInvite() || req.Method == sip.UPDATE {
		if err := s.negotiateUAS(l, req); err != nil {
			c.mu.Unlock()
			s.reply(req, tx, err)
			return
		}
		// A refresh that changes nothing (an UPDATE without SDP, or SDP
		// with the o= version the phone sent last) is answered here: the
		// two legs' session timers are independent (RFC 4028).
		refreshOnly := (req.Method == sip.UPDATE && len(req.Body()) == 0) ||
			(c.media != nil && isSDP(req) && c.media.Unchanged(fromCaller, req.Body()))
		if refreshOnly {
			res := sipmsg.NewResponse(req, 200, "OK", l.localTag)
			ln := s.listenerFor(l.transport)
			res.AppendHeader(s.contact(ln, s.advertise.Host(ln, l.dest)))
			res.AppendHeader(sip.NewHeader("Allow", allowHeader))
			timerHeaders(res, l)
			if isSDP(req) {
				withBody(res, req, c.media.Current(fromCaller))
			}
			if req.IsInvite() {
				s.awaitAck(l, tx, res, req.CSeq().SeqNo, nil)
			}
			s.armTimer(l)
			c.mu.Unlock()
			c.log.Debug("session refreshed", "leg", l.role.String(), "method", string(req.Method))
			_ = tx.Respond(res)
			return
		}
	}
	if offering {
		// Claimed in the same critical section as the check above, so two
		// crossing offers cannot both pass (RFC 3261 §14.1).
		c.negotiating = true
		defer func() {
			c.mu.Lock()
			c.negotiating = false
			c.mu.Unlock()
		}()
	}
	c.mu.Unlock()
	// An INVITE or UPDATE with SDP is an offer; a re-INVITE without one
	// asks the other side for an offer (answered in the ACK).
	sdpOffer := (req.IsInvite() || req.Method == sip.UPDATE) && isSDP(req)
	body := req.Body()
	if sdpOffer {
		var err error
		if body, err = s.rewrite(c, true, fromCaller, req); err != nil {
			s.reply(req, tx, err)
			return
		}
	}
	c.mu.Lock()
	other.localCSeq++
	cseq := other.localCSeq
	out := s.newRequest(other, req.Method, cseq)
	if req.IsInvite() || req.Method == sip.UPDATE {
		s.timerRequestHeaders(out, other, true)
	}
	c.mu.Unlock()
	sipmsg.CopyHeaders(out, req, "Event", "Subscription-State", "Refer-To", "Referred-By", "Info-Package", "Recv-Info", "Subject")
	withBody(out, req, body)

	ctx, cancel := context.WithTimeout(s.context(), 5*time.Second)
	otx, err := s.request(ctx, out)
	cancel()
	if err != nil {
		s.reply(req, tx, &sipmsg.Error{Code: 503, Reason: "Service Unavailable", Warning: err.Error()})
		return
	}
	// RFC 3261 Timer C bounds how long the other side may take to answer.
	timerC := time.NewTimer(3 * time.Minute)
	defer timerC.Stop()
	for {
		select {
		case <-timerC.C:
			otx.Terminate()
			s.reply(req, tx, &sipmsg.Error{Code: 408, Reason: "Request Timeout", Warning: "no final response from the other leg"})
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
					r := sipmsg.NewResponse(req, res.StatusCode, res.Reason, l.localTag)
					_ = tx.Respond(r)
				}
				continue
			}
			if req.IsInvite() && res.StatusCode < 300 {
				// The INVITE transaction lives on to Timer M; each 2xx
				// retransmission gets the ACK sent for it again.
				c.mu.Lock()
				slot := other.ackSlot()
				c.mu.Unlock()
				otx.OnRetransmission(func(*sip.Response) { slot.resend(s, cseq) })
			} else {
				otx.Terminate()
			}
			s.relayFinal(c, l, other, req, tx, res, cseq, sdpOffer)
			return
		case <-otx.Done():
			se := &sipmsg.Error{Code: 408, Reason: "Request Timeout"}
			if !strings.Contains(errText(otx.Err()), "timeout") {
				se = &sipmsg.Error{Code: 503, Reason: "Service Unavailable", Warning: errText(otx.Err())}
			}
			s.reply(req, tx, se)
			return
		}
	}
}

// relayFinal answers an in-dialog request with the other leg's final
// response.
func (s *Server) relayFinal(c *Call, l, other *leg, req *sip.Request, tx sip.ServerTransaction, res *sip.Response, cseq uint32, sdpOffer bool) {
	out := sipmsg.NewResponse(req, res.StatusCode, res.Reason, l.localTag)
	sipmsg.CopyHeaders(out, res, "Retry-After", "Unsupported", "Allow", "Accept")
	ok := res.StatusCode < 300
	fromCaller := l.role == roleCaller
	body := res.Body()
	negotiating := ok && (req.IsInvite() || req.Method == sip.UPDATE) && isSDP(res)
	if negotiating {
		// The 2xx carries the answer to the offer, or (re-INVITE without
		// SDP) the other side's offer, answered in the ACK.
		var err error
		body, err = s.rewrite(c, !sdpOffer, !fromCaller, res)
		if err != nil {
			c.log.Info("SDP in 2xx refused", "error", err)
			body = nil
		}
	}
	withBody(out, res, body)
	if ok && (req.IsInvite() || req.Method == sip.UPDATE) {
		ln := s.listenerFor(l.transport)
		out.AppendHeader(s.contact(ln, s.advertise.Host(ln, l.dest)))
		c.mu.Lock()
		if ct := res.Contact(); ct != nil {
			other.target = keptURI(&ct.Address)
		}
		// Both legs were refreshed: the phone's request on one, parley's
		// on the other.
		s.negotiateUAC(other, res)
		s.armTimer(other)
		timerHeaders(out, l)
		s.armTimer(l)
		c.mu.Unlock()
	}
	if ok && req.IsInvite() {
		c.mu.Lock()
		s.awaitAck(l, tx, out, req.CSeq().SeqNo, func(ack *sip.Request) {
			if sdpOffer || !isSDP(ack) {
				s.ackLeg(c, other, cseq, nil)
				return
			}
			answer, err := s.rewrite(c, false, fromCaller, ack)
			if err != nil {
				c.log.Info("answer in ACK refused", "error", err)
				answer = nil
			}
			s.ackLegBody(c, other, cseq, ack, answer)
			s.holdState(c)
		})
		c.mu.Unlock()
	}
	_ = tx.Respond(out)
	if negotiating && sdpOffer {
		s.holdState(c)
	}
	if res.StatusCode == 481 || res.StatusCode == 408 {
		// RFC 3261 §12.2.1.2: the dialog is gone on the other side.
		s.endCall(c, other, resultAnswered, "in-dialog request answered "+res.Reason)
	}
}

// HangupAll ends every call: BYE to both legs of established calls, a
// final error to calls still being set up.
func (s *Server) HangupAll(reason string) {
	for _, c := range s.calls.all() {
		s.hangup(c, reason)
	}
}

func (s *Server) hangup(c *Call, reason string) {
	c.mu.Lock()
	st := c.state
	c.mu.Unlock()
	if st == Establishing {
		c.abortOnce.Do(func() { close(c.aborted) })
		return
	}
	s.endCall(c, nil, resultAnswered, reason)
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

// answerForService answers an in-dialog request on a call a built-in
// service answered: a re-INVITE gets the session's unchanged answer (same
// o= version, RFC 3264 §8), anything else a plain 200.
func (s *Server) answerForService(c *Call, l *leg, req *sip.Request, tx sip.ServerTransaction) {
	if req.IsInvite() || req.Method == sip.UPDATE {
		c.mu.Lock()
		err := s.negotiateUAS(l, req)
		c.mu.Unlock()
		if err != nil {
			s.reply(req, tx, err)
			return
		}
	}
	res := sipmsg.NewResponse(req, 200, "OK", l.localTag)
	if req.IsInvite() || req.Method == sip.UPDATE {
		c.mu.Lock()
		timerHeaders(res, l)
		s.armTimer(l)
		c.mu.Unlock()
	}
	if req.IsInvite() {
		ln := s.listenerFor(l.transport)
		res.AppendHeader(s.contact(ln, s.advertise.Host(ln, l.dest)))
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		c.mu.Lock()
		res.SetBody(c.svcAnswer)
		s.awaitAck(l, tx, res, req.CSeq().SeqNo, nil)
		c.mu.Unlock()
	}
	_ = tx.Respond(res)
}
