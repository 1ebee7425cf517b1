package dialog

import (
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// okSpec is what a 2xx parley sends on a leg carries beyond the basics.
type okSpec struct {
	// code and reason default to 200 OK.
	code   int
	reason string
	// body is the SDP (or other body) to send, with bodyFrom's body
	// headers (Content-Type and friends); bodyFrom nil means SDP.
	body     []byte
	bodyFrom sip.Message
	// allow adds parley's Allow header.
	allow bool
	// copyFrom and copy name headers copied from another message (the
	// other leg's response) before the body.
	copyFrom sip.Message
	copy     []string
	// onAck runs in the call's queue when the ACK for a 2xx to INVITE
	// arrives.
	onAck func(ack *sip.Request)
}

// answerOK is the one way parley answers a phone's INVITE, re-INVITE or
// UPDATE with a 2xx: for the B2BUA's answered calls, the services, the
// refreshes it answers itself and the relayed answers of the other leg.
// The response to req on leg l gets parley's Contact (both are target
// refresh requests, RFC 3261 §12.2 and RFC 3311 §5.2), the leg's session
// timer headers (RFC 4028 §9), Allow when asked, and the body; the leg's
// session timer is (re)armed; and a 2xx to INVITE waits for its ACK (see
// awaitAck). Run it in the call's queue, and send what it returns.
func (s *Server) answerOK(l *leg, req *sip.Request, tx sip.ServerTransaction, spec okSpec) *sip.Response {
	code, reason := spec.code, spec.reason
	if code == 0 {
		code, reason = 200, "OK"
	}
	res := sipmsg.NewResponse(req, code, reason, l.localTag)
	if spec.copyFrom != nil {
		sipmsg.CopyHeaders(res, spec.copyFrom, spec.copy...)
	}
	ln := s.listenerFor(l.transport, l.dest)
	res.AppendHeader(s.contact(ln, s.advertise.Host(ln, l.dest)))
	if spec.allow {
		res.AppendHeader(sip.NewHeader("Allow", allowHeader))
	}
	switch {
	case len(spec.body) == 0:
		res.SetBody(nil)
	case spec.bodyFrom != nil:
		withBody(res, spec.bodyFrom, spec.body)
	default:
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		res.SetBody(spec.body)
	}
	timerHeaders(res, l)
	s.armTimer(l)
	if req.IsInvite() {
		l.setDialog(DialogEarly)
		s.awaitAck(l, tx, res, req.CSeq().SeqNo, spec.onAck)
	}
	return res
}

// awaitAck records a 2xx sent on leg l that waits for its ACK, and over
// UDP retransmits it (RFC 3261 §13.3.1.4) until the ACK comes or 64*T1
// passes, after which the call is hung up. Run it in the call's queue.
func (s *Server) awaitAck(l *leg, tx sip.ServerTransaction, res *sip.Response, cseq uint32, onAck func(*sip.Request)) {
	l.okTx, l.okRes, l.okCSeq, l.ackedFor = tx, res, cseq, onAck
	l.okSent = time.Now()
	if l.transport != "udp" {
		return
	}
	l.okWait = sip.T1
	c := l.call
	l.okTimer = time.AfterFunc(l.okWait, func() { c.post(func() { s.retransmitOK(l) }) })
}

// retransmitOK is the 2xx retransmission timer's event: the 2xx goes again
// after a doubled wait (at most T2), or, after 64*T1 without an ACK, the
// call ends.
func (s *Server) retransmitOK(l *leg) {
	c := l.call
	if l.okRes == nil {
		return
	}
	if time.Since(l.okSent) >= 64*sip.T1 {
		l.okRes, l.ackedFor = nil, nil
		c.log.Info("no ACK for 2xx; hanging up", "leg", l.role.String())
		// A new event: endCall runs through the queue this runs in.
		s.goOwned(func() { s.endCall(c, nil, resultFailed, "no ACK") })
		return
	}
	l.okWait = min(2*l.okWait, sip.T2)
	l.okTimer.Reset(l.okWait)
	if err := l.okTx.Respond(l.okRes); err != nil {
		c.log.Debug("2xx retransmission failed", "error", err)
	}
}

// acked takes the ACK for the 2xx leg l waits on: the retransmissions
// stop, the dialog is confirmed, a new Contact becomes the remote target,
// and the hook of the 2xx runs. False for an ACK that matches nothing (a
// retransmitted one). Run it in the call's queue.
func (s *Server) acked(l *leg, ack *sip.Request) bool {
	if l.okRes == nil || ack.CSeq().SeqNo != l.okCSeq {
		return false
	}
	fn := l.ackedFor
	l.stopAwaitingAck()
	l.setDialog(DialogConfirmed)
	if ct := ack.Contact(); ct != nil {
		l.target = keptURI(&ct.Address)
	}
	if fn != nil {
		fn(ack)
	}
	s.checkpoint(l.call)
	return true
}

// stopAwaitingAck forgets the 2xx leg l waits on and stops its
// retransmission.
func (l *leg) stopAwaitingAck() {
	if l.okTimer != nil {
		l.okTimer.Stop()
		l.okTimer = nil
	}
	l.okRes, l.okTx, l.ackedFor = nil, nil, nil
}
