package dialog

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// sessionTimer is the RFC 4028 session timer of one leg. parley keeps one
// per leg, negotiated with that leg's phone alone. It belongs to the
// call's queue.
type sessionTimer struct {
	// interval is the session interval; 0 means no session timer.
	interval time.Duration
	// parley is set when parley refreshes this leg; otherwise the phone
	// must, and parley hangs up when it does not.
	parley bool
	// supported records that the phone advertised Supported: timer.
	supported bool
	// update records that the phone allows UPDATE, the cheaper refresh.
	update bool
	timer  *time.Timer
	// due is when timer fires, for the call's checkpoint.
	due time.Time
}

func (t *sessionTimer) stop() {
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
}

// sessionExpires reads Session-Expires (or its compact form x) of m.
func sessionExpires(m sip.Message) (secs int, refresher string, ok bool, err error) {
	var hs []sip.Header
	hs = append(hs, sipmsg.HeadersNamed(m, "Session-Expires")...)
	hs = append(hs, sipmsg.HeadersNamed(m, "x")...)
	if len(hs) == 0 {
		return 0, "", false, nil
	}
	parts := strings.Split(hs[0].Value(), ";")
	secs, err = strconv.Atoi(strings.TrimSpace(parts[0]))
	if err != nil || secs <= 0 {
		return 0, "", false, fmt.Errorf("malformed Session-Expires %q", hs[0].Value())
	}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(k), "refresher") {
			refresher = strings.ToLower(strings.TrimSpace(v))
		}
	}
	return secs, refresher, true, nil
}

// minSEOf reads Min-SE of m (0 when absent or malformed).
func minSEOf(m sip.Message) int {
	for _, h := range sipmsg.HeadersNamed(m, "Min-SE") {
		v, _, _ := strings.Cut(h.Value(), ";")
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
			return n
		}
	}
	return 0
}

func supportsTimer(m sip.Message) bool {
	return sipmsg.HasTag(m, "timer", "Supported", "k", "Require")
}

func allowsUpdate(m sip.Message) bool { return sipmsg.HasTag(m, "UPDATE", "Allow") }

// negotiateUAS applies RFC 4028 §9 to a request parley answers (an INVITE
// or a refresh) on leg l. It returns a 422 error when the phone, knowing
// session timers, asks for less than sessions.min_se; without Supported:
// timer the interval is raised instead. Run it in the call's queue.
func (s *Server) negotiateUAS(l *leg, req *sip.Request) error {
	minSE := s.cfg.Sessions.MinSE
	secs, refresher, ok, err := sessionExpires(req)
	if err != nil {
		return badRequest("%v", err)
	}
	supported := supportsTimer(req)
	if ok && secs < minSE {
		if supported {
			return &sipmsg.Error{Code: 422, Reason: "Session Interval Too Small", MinSE: minSE}
		}
		secs = minSE
	}
	if !ok {
		if l.st.interval > 0 {
			secs = int(l.st.interval / time.Second)
		} else {
			secs = max(s.cfg.Sessions.Expires, minSE, minSEOf(req))
		}
	}
	l.st.interval = time.Duration(secs) * time.Second
	l.st.supported = supported
	l.st.update = allowsUpdate(req) || l.st.update
	switch {
	case !supported:
		l.st.parley = true // the phone cannot refresh: parley does
	case refresher == "uas":
		l.st.parley = true
	case refresher == "uac":
		l.st.parley = false
	default:
		// RFC 4028 §9: the UAS chooses; the phone that knows session
		// timers refreshes its own session.
		l.st.parley = false
	}
	return nil
}

// timerHeaders adds the session timer headers of leg l to a 2xx parley
// sends on it: Session-Expires with the refresher seen from the request
// (uac: the phone, uas: parley), and Require: timer when the phone refreshes
// (RFC 4028 §9).
func timerHeaders(res *sip.Response, l *leg) {
	res.AppendHeader(sip.NewHeader("Supported", "timer"))
	if l.st.interval == 0 {
		return
	}
	who := "uas"
	if !l.st.parley {
		who = "uac"
	}
	res.AppendHeader(sip.NewHeader("Session-Expires", fmt.Sprintf("%d;refresher=%s", int(l.st.interval/time.Second), who)))
	if who == "uac" && l.st.supported {
		res.AppendHeader(sip.NewHeader("Require", "timer"))
	}
}

// timerRequestHeaders adds parley's session timer offer to a request it
// sends on leg l: the second leg's INVITE (no refresher: the callee
// chooses), or a request inside the dialog, which names the refresher as
// the leg has it (uac: parley, which sends this request).
func (s *Server) timerRequestHeaders(req *sip.Request, l *leg, inDialog bool) {
	req.AppendHeader(sip.NewHeader("Supported", "timer"))
	secs := s.cfg.Sessions.Expires
	if l.st.interval > 0 {
		secs = int(l.st.interval / time.Second)
	}
	v := strconv.Itoa(secs)
	if inDialog {
		if l.st.parley {
			v += ";refresher=uac"
		} else {
			v += ";refresher=uas"
		}
	}
	req.AppendHeader(sip.NewHeader("Session-Expires", v))
	req.AppendHeader(sip.NewHeader("Min-SE", strconv.Itoa(s.cfg.Sessions.MinSE)))
}

// negotiateUAC reads the session timer a phone chose in its 2xx to a
// request parley sent on leg l (RFC 4028 §7.2). A phone that does not do
// session timers still gets refreshes from parley, which then notices a
// dead peer. Run it in the call's queue.
func (s *Server) negotiateUAC(l *leg, res *sip.Response) {
	secs, refresher, ok, _ := sessionExpires(res)
	l.st.update = allowsUpdate(res) || l.st.update
	if !ok {
		if l.st.interval == 0 {
			l.st.interval = time.Duration(s.cfg.Sessions.Expires) * time.Second
		}
		l.st.parley = true
		return
	}
	l.st.supported = true
	l.st.interval = time.Duration(max(secs, s.cfg.Sessions.MinSE)) * time.Second
	l.st.parley = refresher != "uas"
}

// armTimer (re)starts leg l's session timer: when parley refreshes, a
// refresh at half the interval; when the phone does, a hangup at
// SE − min(32 s, SE/3) (RFC 4028 §10). Run it in the call's queue; the
// timers bring their events to the queue when they fire.
func (s *Server) armTimer(l *leg) {
	l.st.stop()
	if l.st.interval <= 0 {
		return
	}
	if l.st.parley {
		s.armTimerIn(l, l.st.interval/2, func() { s.refresh(l) })
	} else {
		grace := min(32*time.Second, l.st.interval/3)
		s.armTimerIn(l, l.st.interval-grace, func() { s.sessionExpired(l) })
	}
	s.checkpoint(l.call)
}

// armTimerIn arms leg l's session timer to run f in d. Run it in the
// call's queue.
func (s *Server) armTimerIn(l *leg, d time.Duration, f func()) {
	l.st.stop()
	l.st.due = time.Now().Add(d)
	l.st.timer = time.AfterFunc(d, f)
}

// sessionExpired is the event of a phone that did not refresh its session
// in time: the call ends (RFC 4028 §10).
func (s *Server) sessionExpired(l *leg) {
	l.call.log.Info("session timer expired: no refresh from the phone", "leg", l.role.String())
	s.endCall(l.call, nil, resultAnswered, "session timer expired ("+l.role.String()+")")
}

// refreshLater arms leg l's timer to try its refresh again in 2 s. Run it
// in the call's queue.
func (s *Server) refreshLater(l *leg) {
	s.armTimerIn(l, 2*time.Second, func() { s.refresh(l) })
}

// refresh is the event of parley's session refresh on leg l: UPDATE
// without a body when the phone allows it, else a re-INVITE carrying the
// SDP the phone already has, so nothing changes but the timer (RFC 4028
// §10). The request is built in the call's queue and its answer awaited
// outside it.
func (s *Server) refresh(l *leg) { s.sendRefresh(l, false) }

// reoffer is the event of parley offering leg l the SDP it holds now in a
// re-INVITE: the new relay ports of a call adopted from a dead node. It is
// a session refresh too.
func (s *Server) reoffer(l *leg) { s.sendRefresh(l, true) }

// sendRefresh sends parley's refresh on leg l (see refresh); withSDP
// makes it a re-INVITE with the current SDP even when the phone allows
// UPDATE.
func (s *Server) sendRefresh(l *leg, withSDP bool) {
	c := l.call
	var req *sip.Request
	c.do(func() { req = s.refreshRequest(l, withSDP) })
	if req == nil {
		return
	}
	invite := req.IsInvite()
	c.log.Debug("session refresh", "leg", l.role.String(), "method", string(req.Method))

	ctx, cancel := context.WithTimeout(s.context(), 5*time.Second)
	tx, err := s.request(ctx, req)
	cancel()
	if err != nil {
		if invite {
			c.do(func() { c.negotiating = false })
		}
		s.endCall(c, nil, resultAnswered, "session refresh not sent: "+err.Error())
		return
	}
	s.goOwned(func() {
		if invite {
			defer c.do(func() { c.negotiating = false })
		}
		for {
			select {
			case res := <-tx.Responses():
				if res.StatusCode < 200 {
					continue
				}
				s.refreshAnswered(l, req, tx, res)
				return
			case <-tx.Done():
				c.log.Info("session refresh got no answer; hanging up", "leg", l.role.String())
				s.endCall(c, nil, resultAnswered, "session refresh timed out ("+l.role.String()+")")
				return
			case <-c.closed:
				tx.Terminate()
				return
			}
		}
	})
}

// refreshRequest builds parley's refresh on leg l, or returns nil when
// there is none to send now: the call is not established, or an offer is
// crossing between the legs (then the refresh comes a little later rather
// than cause a 491). Run it in the call's queue.
func (s *Server) refreshRequest(l *leg, withSDP bool) *sip.Request {
	c := l.call
	if c.state != Active && c.state != Suspended {
		return nil
	}
	method := sip.INVITE
	if l.st.update && !withSDP {
		method = sip.UPDATE
	}
	var body []byte
	if method == sip.INVITE {
		if c.negotiating {
			if withSDP {
				// The offer must go, once the one crossing (often the
				// other leg's own move) is answered: soon.
				s.armTimerIn(l, 20*time.Millisecond, func() { s.reoffer(l) })
				return nil
			}
			s.refreshLater(l)
			return nil
		}
		c.negotiating = true
		switch {
		case c.media != nil:
			body = c.media.Current(l.role == roleCaller)
		case c.svc != nil:
			body = c.svcAnswer
		}
	}
	l.localCSeq++
	req := s.newRequest(l, method, l.localCSeq)
	l.st.parley = true
	s.timerRequestHeaders(req, l, true)
	if len(body) > 0 {
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	req.SetBody(body)
	return req
}

// refreshAnswered handles the final response to parley's refresh.
func (s *Server) refreshAnswered(l *leg, req *sip.Request, tx sip.ClientTransaction, res *sip.Response) {
	c := l.call
	code := res.StatusCode
	switch {
	case code < 300:
		if !req.IsInvite() {
			tx.Terminate()
		}
		var ack *sip.Request
		c.do(func() {
			s.negotiateUAC(l, res)
			if req.IsInvite() && c.media != nil && isSDP(res) {
				// The phone's answer to the SDP parley re-offered.
				if r, ok := c.media.(mediaReofferer); ok {
					if err := r.Reoffered(l.role == roleCaller, res.Body()); err != nil {
						c.log.Info("answer to parley's re-INVITE refused", "error", err)
					}
				}
			}
			if req.IsInvite() {
				ack = s.newRequest(l, sip.ACK, req.CSeq().SeqNo)
				ack.SetBody(nil)
				l.ackSlot().p.Store(ack)
				_ = s.write(ack)
			}
			s.armTimer(l)
		})
		if ack != nil {
			tx.OnRetransmission(func(*sip.Response) { _ = s.write(ack) })
		}
	case code == 408 || code == 481:
		// RFC 4028 §10: the session is gone.
		tx.Terminate()
		c.log.Info("session refresh refused; hanging up", "leg", l.role.String(), "status", code)
		s.endCall(c, nil, resultAnswered, fmt.Sprintf("session refresh answered %d (%s)", code, l.role.String()))
	case req.Method == sip.UPDATE && (code == 405 || code == 501):
		tx.Terminate()
		c.do(func() { l.st.update = false })
		s.refresh(l)
	case code == 422:
		tx.Terminate()
		c.do(func() {
			if m := minSEOf(res); m > 0 {
				l.st.interval = time.Duration(m) * time.Second
			}
		})
		s.refresh(l)
	default:
		// 491 glare and other failures leave the session as it was
		// (RFC 4028 §10); try again shortly.
		tx.Terminate()
		c.do(func() { s.refreshLater(l) })
	}
}

// armMaxDuration ends the call once it is sessions.max_duration old. Run
// it in the call's queue.
func (s *Server) armMaxDuration(c *Call) {
	d := s.cfg.Sessions.MaxDuration
	if d <= 0 || c.maxTimer != nil {
		return
	}
	c.maxTimer = time.AfterFunc(d-time.Since(c.start), func() {
		c.log.Info("call reached sessions.max_duration; hanging up", "max_duration", d.String())
		s.endCall(c, nil, resultAnswered, "max duration "+d.String())
	})
}

// retry422 sends a branch's INVITE again after its callee answered 422
// Session Interval Too Small, asking for the callee's Min-SE (RFC 4028
// §7.4). It reports whether it did; a branch is retried once.
func (s *Server) retry422(c *Call, f *fork, res *sip.Response, events chan<- forkEvent) bool {
	minSE := minSEOf(res)
	if f.retried || minSE <= 0 || minSE > 86400 {
		return false
	}
	f.retried = true
	var out, old *sip.Request
	c.do(func() {
		f.leg.st.interval = time.Duration(max(minSE, s.cfg.Sessions.Expires)) * time.Second
		old = f.req
		f.leg.localCSeq = old.CSeq().SeqNo + 1
		out = s.newRequest(f.leg, sip.INVITE, f.leg.localCSeq)
		if mf := old.MaxForwards(); mf != nil {
			v := sip.MaxForwardsHeader(mf.Val())
			out.ReplaceHeader(&v)
		}
		sipmsg.CopyHeaders(out, old, "Subject", "Priority", "Alert-Info", "Call-Info")
		s.timerRequestHeaders(out, f.leg, false)
	})
	out.RemoveHeader("Min-SE")
	out.AppendHeader(sip.NewHeader("Min-SE", strconv.Itoa(max(minSE, s.cfg.Sessions.MinSE))))
	withBody(out, old, old.Body())
	ctx, cancel := context.WithTimeout(s.context(), 5*time.Second)
	tx, err := s.request(ctx, out)
	cancel()
	if err != nil {
		c.log.Info("422 retry not sent", "error", err)
		return false
	}
	c.log.Info("callee wants a longer session interval; retrying", "min_se", minSE)
	c.do(func() { f.req, f.tx, f.provisional = out, tx, false })
	s.goOwned(func() { s.watchFork(c, f, tx, events, c.decided, func() bool { return c.callee == f.leg }) })
	return true
}
