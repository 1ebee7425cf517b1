package dialog

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// Paging (simplex, the session layer's one-way mode): a call to a paging
// group's number is answered by parley, which calls every registered
// contact of the group's members at once with the usual auto-answer hints
// and an offer that only sends. The pager's audio reaches every member
// who answered; nothing flows back. The page ends when the pager hangs up;
// a member who hangs up leaves it; members who are busy or unreachable
// are left out, and the page goes to the rest.
//
// A page is one call: the pager's leg, and a member leg for each member's
// phone that answered, each a dialog of its own in the call table.

// Pager is a Service that pages: Start answers the pager, and its session
// must be a PageSession, which makes the offer for each member.
type Pager interface {
	Service
	// Members are the users the group pages.
	Members() []string
}

// PageSession is a page's media: the ServiceSession Start returns.
type PageSession interface {
	ServiceSession
	// Offer makes the offer for one more member's phone, facing local.
	Offer(local netip.Addr) ([]byte, PageMember, error)
}

// PageMember is one member's media in a page.
type PageMember interface {
	// Answered takes the member's answer; an error leaves it out.
	Answered(answer []byte) error
	Close() error
}

// pageCall is what a page holds beyond a call: its members' legs, with
// their media and the offer each was sent (the answer to a re-INVITE of
// theirs).
type pageCall struct {
	sess    PageSession
	members map[*leg]*pageMember
}

type pageMember struct {
	media PageMember
	offer []byte
}

// legs returns c's legs: the caller's and callee's, and a page's members.
// Run it in the call's queue.
func (c *Call) legs() []*leg {
	out := []*leg{c.caller, c.callee}
	if c.page != nil {
		for l := range c.page.members {
			out = append(out, l)
		}
	}
	return out
}

// page answers a call to a paging group and calls its members.
func (s *Server) page(c *Call, req *sip.Request, tx sip.ServerTransaction, pg Pager, answer []byte, svc ServiceSession) {
	sess, ok := svc.(PageSession)
	if !ok {
		_ = svc.Close()
		s.failCall(c, req, tx, sipmsg.Warn(500, "Server Internal Error", "the paging service's session cannot page"))
		return
	}
	c.do(func() {
		c.svc, c.svcAnswer = sess, answer
		c.page = &pageCall{sess: sess, members: map[*leg]*pageMember{}}
		c.app = "Page"
		if a, ok := pg.(Application); ok {
			c.app = a.App()
		}
	})
	type member struct {
		user string
		t    target
	}
	var targets []member
	for _, u := range pg.Members() {
		if u == c.from {
			continue // the pager is not paged
		}
		ts, err := s.resolve(sip.Uri{Scheme: "sip", User: u, Host: s.cfg.SIP.Realm})
		if err != nil {
			c.log.Info("page: member skipped", "member", u, "reason", sipmsg.ErrorFor(err).Reason)
			continue
		}
		for _, t := range ts {
			targets = append(targets, member{u, t})
		}
	}
	// Each branch reports once: joined or not.
	results := make(chan bool, len(targets))
	sent := 0
	for _, m := range targets {
		if s.callMember(c, req, m.t, results) {
			sent++
		}
	}
	if sent == 0 {
		s.failCall(c, req, tx, sipmsg.Warn(480, "Temporarily Unavailable", "no member of the paging group is reachable"))
		return
	}
	ring := time.NewTimer(s.ringTimeout)
	defer ring.Stop()
	for failed := 0; ; {
		select {
		case joined := <-results:
			if !joined {
				if failed++; failed < sent {
					continue
				}
				s.failCall(c, req, tx, sipmsg.Warn(480, "Temporarily Unavailable", "no member of the paging group answered"))
				return
			}
		case <-c.cancelled:
			c.log.Info("page cancelled by the pager")
			s.m.response(string(sip.INVITE), 487)
			s.endCall(c, c.caller, resultCancelled, "cancelled by caller")
			return
		case <-c.aborted:
			s.failCall(c, req, tx, ErrServerBusy)
			return
		case <-ring.C:
			s.failCall(c, req, tx, sipmsg.Warn(480, "Temporarily Unavailable", "no member of the paging group answered within the ring timeout"))
			return
		}
		break
	}
	var ok200 *sip.Response
	c.do(func() {
		ok200 = s.answerOK(c.caller, req, tx, okSpec{body: answer, allow: true})
		s.activate(c)
	})
	c.log.Info("page answered", "group", c.to)
	_ = tx.Respond(ok200)
	s.endWhenDone(c, sess, "the pager's media stopped")
}

// callMember sends one member's phone (at t) parley's INVITE for page c,
// and watches it in a goroutine of the server's, which reports on results
// whether the member joined. It reports whether the INVITE went out.
func (s *Server) callMember(c *Call, req *sip.Request, t target, results chan<- bool) bool {
	var sess PageSession
	c.do(func() { sess = c.page.sess })
	offer, media, err := sess.Offer(s.facing(t.transport, t.dest))
	if err != nil {
		c.log.Info("page: member skipped", "dest", t.dest, "error", err)
		return false
	}
	member := s.uacLeg(c, roleCallee, c.from, req.From().DisplayName)
	l := &member
	l.target, l.remote, l.dest, l.transport = t.uri, t.to, t.dest, t.transport
	out := s.newRequest(l, sip.INVITE, 1)
	oneHopFewer(out, req)
	sipmsg.CopyHeaders(out, req, "Subject", "Priority")
	// The auto-answer hints phones look for: Call-Info's answer-after
	// (Polycom, Yealink, Snom, baresip), Alert-Info's alert-autoanswer
	// (Cisco, Grandstream) and RFC 5373's Answer-Mode.
	out.AppendHeader(sip.NewHeader("Call-Info", "<sip:"+s.cfg.SIP.Realm+">;answer-after=0"))
	out.AppendHeader(sip.NewHeader("Alert-Info", "<http://"+s.cfg.SIP.Realm+"/autoanswer>;info=alert-autoanswer"))
	out.AppendHeader(sip.NewHeader("Answer-Mode", "Auto"))
	out.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	out.SetBody(offer)
	ctx, cancel := context.WithTimeout(s.context(), 5*time.Second)
	tx, err := s.request(ctx, out)
	cancel()
	if err != nil {
		_ = media.Close()
		c.log.Info("page: member not called", "dest", t.dest, "error", err)
		return false
	}
	l.dest = out.Destination()
	f := &fork{leg: l, req: out, tx: tx}
	s.goOwned(func() { results <- s.watchMember(c, f, media, offer) })
	return true
}

// watchMember reads a member's INVITE transaction to its end and reports
// whether the member joined the page. A branch still ringing when the
// page ends is CANCELled (once it has sent a provisional, RFC 3261 §9.1),
// and a 2xx that comes after is acknowledged and hung up.
func (s *Server) watchMember(c *Call, f *fork, media PageMember, offer []byte) bool {
	tx := f.tx
	provisional, cancelled := false, false
	closed := c.closed
	giveUp := time.NewTimer(3 * time.Minute) // Timer C
	defer giveUp.Stop()
	for {
		select {
		case res := <-tx.Responses():
			switch {
			case res.StatusCode < 200:
				provisional = provisional || res.StatusCode > 100
				if provisional && closed == nil && !cancelled {
					cancelled = true
					s.sendCancel(c, f.leg, f.req)
				}
			case res.StatusCode < 300:
				return s.memberJoined(c, f, media, offer, res)
			default:
				tx.Terminate()
				_ = media.Close()
				c.log.Info("page: member left out", "dest", f.leg.dest, "status", res.StatusCode)
				return false
			}
		case <-tx.Done():
			_ = media.Close()
			return false
		case <-closed:
			// The page ended while this member rang.
			closed = nil
			if provisional && !cancelled {
				cancelled = true
				s.sendCancel(c, f.leg, f.req)
			}
			giveUp.Reset(64 * sip.T1)
		case <-giveUp.C:
			tx.Terminate()
			_ = media.Close()
			return false
		}
	}
}

// memberJoined takes a member's 2xx: the member's leg joins the page (its
// ACK goes out, its answer goes to the media), or, when the page ended
// meanwhile or the answer does not take the pager's codec, the member is
// acknowledged and hung up.
func (s *Server) memberJoined(c *Call, f *fork, media PageMember, offer []byte, res *sip.Response) bool {
	l := f.leg
	cseq := res.CSeq().SeqNo
	var slot *ackSlot
	var joined bool
	c.do(func() {
		if c.state >= Terminating || c.page == nil {
			return
		}
		l.remoteTag = strings.Clone(sipmsg.Tag(res.To().Params))
		if ct := res.Contact(); ct != nil {
			l.target = keptURI(&ct.Address)
		}
		l.routes = reversed(recordRoutes(res))
		l.inviteCSeq = cseq
		l.setDialog(DialogEarly)
		s.sendAck(l, cseq, nil, nil)
		slot = l.ackSlot()
		c.page.members[l] = &pageMember{media: media, offer: offer}
		joined = true
	})
	if !joined {
		s.ackAndBye(c, f, res)
		_ = media.Close()
		return false
	}
	f.tx.OnRetransmission(func(*sip.Response) { slot.resend(s, cseq) })
	s.calls.addLeg(l)
	if err := media.Answered(res.Body()); err != nil {
		c.log.Info("page: member's answer refused; hanging it up", "member", l.remote.User, "error", err)
		s.dropMember(c, l)
		return false
	}
	c.log.Info("page: member joined", "member", l.remote.User, "dest", l.dest)
	return true
}

// dropMember hangs a member up and takes it out of its page.
func (s *Server) dropMember(c *Call, l *leg) {
	var bye *sip.Request
	var m *pageMember
	c.do(func() {
		if c.page == nil || c.page.members[l] == nil || c.state >= Terminating {
			return
		}
		m = c.page.members[l]
		delete(c.page.members, l)
		l.gone = true
		l.localCSeq++
		bye = s.newRequest(l, sip.BYE, l.localCSeq)
		bye.SetBody(nil)
	})
	if m == nil {
		return
	}
	_ = m.media.Close()
	s.send(c, bye)
	s.forgetLater(l)
}

// forgetLater takes leg l out of the call table after 64*T1, so that its
// phone's retransmitted BYE still finds it.
func (s *Server) forgetLater(l *leg) {
	time.AfterFunc(64*sip.T1, func() { s.calls.removeLeg(l) })
}

// memberLeaves takes member l out of its page when its phone hung up. Run
// it in the call's queue; it reports whether l was a member.
func (c *Call) memberLeaves(l *leg) bool {
	if c.page == nil {
		return false
	}
	m := c.page.members[l]
	if m == nil {
		return false
	}
	delete(c.page.members, l)
	l.gone = true
	_ = m.media.Close()
	c.log.Info("page: member left", "member", l.remote.User)
	return true
}

// answerMember answers a member's re-INVITE or UPDATE with the offer it
// was sent: parley's side of a page never changes. Run it in the call's
// queue.
func (s *Server) answerMember(c *Call, l *leg, req *sip.Request, tx sip.ServerTransaction) *sip.Response {
	if !req.IsInvite() && req.Method != sip.UPDATE {
		return sipmsg.NewResponse(req, 200, "OK", l.localTag)
	}
	var spec okSpec
	if req.IsInvite() || isSDP(req) {
		spec.body = c.page.members[l].offer
	}
	return s.answerOK(l, req, tx, spec)
}
