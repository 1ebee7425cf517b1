package dialog

import (
	"log/slog"
	"time"

	"github.com/emiago/sipgo/sip"
)

// This file is the call's state machine: the states, the moves between
// them, and what each move does (what it sends, which timers it arms or
// stops, what it records). Every function here runs in the call's queue
// (see serial), except endCall and closeCall, which are events of their
// own and queue their work.
//
//	Idle ──establish──▶ Establishing ──activate──▶ Active ◀──hold──▶ Suspended
//	  │                      │                        │                 │
//	  └──────────────────────┴─────── terminate ──────┴─────────────────┘
//	                                      ▼
//	                                 Terminating ──close──▶ Closed

// State is where a call is in its life. Every call moves forward through
// these states only; Active and Suspended may alternate (hold and resume).
type State int

// The session states.
const (
	Idle State = iota
	Establishing
	Active
	Suspended
	Terminating
	Closed
)

var stateNames = [...]string{"idle", "establishing", "active", "suspended", "terminating", "closed"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// DialogState is where one leg's dialog is (RFC 3261 §12): early after a
// provisional response with a tag, confirmed once the 2xx is acknowledged,
// terminated when it ends.
type DialogState uint8

// The dialog states of a leg.
const (
	DialogNone DialogState = iota
	DialogEarly
	DialogConfirmed
	DialogTerminated
)

var dialogNames = [...]string{"none", "early", "confirmed", "terminated"}

func (d DialogState) String() string {
	if int(d) < len(dialogNames) {
		return dialogNames[d]
	}
	return "unknown"
}

// allowed lists each state's legal next states.
var allowed = map[State][]State{
	Idle:         {Establishing, Terminating, Closed},
	Establishing: {Active, Terminating, Closed},
	Active:       {Suspended, Terminating},
	Suspended:    {Active, Terminating},
	Terminating:  {Closed},
}

// canMove reports whether from→to is a legal transition.
func canMove(from, to State) bool {
	for _, s := range allowed[from] {
		if s == to {
			return true
		}
	}
	return false
}

// move changes the call's state, the one place that does: it refuses an
// illegal move, keeps the parley_calls gauge in step, tells the state
// observer, and logs the move at debug level.
func (s *Server) move(c *Call, to State) {
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
	if to == Establishing || to == Terminating || to == Active && from == Establishing {
		// Busy lamps and presence show ringing, answered and ended calls.
		s.changed(c.from, c.to)
	}
	if s.onState != nil {
		s.onState(c.ID, from, to)
	}
	if c.log.enabled(slog.LevelDebug) {
		c.log.Debug("call state", "from", from.String(), "to", to.String())
	}
}

// setDialog moves leg l's dialog forward (never back) and logs it.
func (l *leg) setDialog(d DialogState) {
	if d <= l.dialog {
		return
	}
	if l.call.log.enabled(slog.LevelDebug) {
		l.call.log.Debug("dialog state", "leg", l.role.String(), "from", l.dialog.String(), "to", d.String())
	}
	l.dialog = d
}

// establish is Idle → Establishing for a new call: the call is admitted
// against sessions.max_calls and max_calls_per_user and entered in the
// call table under its caller leg. It reports false, and the call stays
// Idle and unknown, when a limit refuses it.
func (s *Server) establish(c *Call) bool {
	if !s.calls.admit(c, c.account, s.cfg.Sessions.MaxCalls, s.cfg.Sessions.MaxCallsPerUser) {
		return false
	}
	s.calls.addLeg(c.caller)
	s.move(c, Establishing)
	return true
}

// activate is Establishing → Active: the caller has its 2xx. It records
// the answer time and the set-up time, and arms the callee leg's session
// timer (the caller's is armed with its 2xx, see answerOK) and the
// call's maximum duration.
func (s *Server) activate(c *Call) {
	c.answer = time.Now()
	s.move(c, Active)
	if c.callee != nil {
		s.armTimer(c.callee)
	}
	s.armMaxDuration(c)
	s.m.setup.Observe(c.answer.Sub(c.start).Seconds())
}

// hold is Active ⇄ Suspended after a completed offer/answer: sendonly,
// inactive or a 0.0.0.0 address hold the call, anything else resumes it.
func (s *Server) hold(c *Call) {
	if c.media == nil {
		return
	}
	held := c.media.OnHold()
	switch {
	case held && c.state == Active:
		s.move(c, Suspended)
		c.log.Info("call on hold")
	case !held && c.state == Suspended:
		s.move(c, Active)
		c.log.Info("call resumed")
	}
	s.checkpoint(c)
}

// terminate is any state → Terminating: every 2xx waiting for its ACK
// stops being retransmitted, and every leg but from (the one the hangup
// came from) gets its BYE, returned to be sent once the queue is free. A
// callee that answered but has not been sent its ACK gets it first (RFC
// 3261 §15), written here so nothing can overtake it. ok is false when
// the call was ending already.
func (s *Server) terminate(c *Call, from *leg, result string) (byes []*sip.Request, res string, ok bool) {
	if c.state >= Terminating {
		return nil, result, false
	}
	if c.answer.IsZero() && result == resultAnswered {
		result = resultFailed
	}
	s.move(c, Terminating)
	for _, l := range c.legs() {
		if l == nil {
			continue
		}
		l.stopAwaitingAck()
		if l == from || l.gone {
			continue
		}
		if l.uac && l.dialog != DialogConfirmed && l.remoteTag != "" {
			ack := s.newRequest(l, sip.ACK, l.inviteCSeq)
			ack.SetBody(nil)
			_ = s.write(ack)
		}
		if l.uac && l.remoteTag == "" {
			continue
		}
		l.localCSeq++
		bye := s.newRequest(l, sip.BYE, l.localCSeq)
		bye.SetBody(nil)
		byes = append(byes, bye)
	}
	return byes, result, true
}

// finish is Terminating → Closed: the session timers and the maximum
// duration stop, both dialogs end, and c.closed is closed. It returns what
// closeCall frees outside the queue; ok is false when the call was closed
// already.
func (s *Server) finish(c *Call, result, reason string) (legs []*leg, svc ServiceSession, ms MediaSession, ok bool) {
	if c.state == Closed {
		return nil, nil, nil, false
	}
	if c.state != Terminating {
		s.move(c, Terminating)
	}
	s.move(c, Closed)
	c.end = time.Now()
	c.result, c.reason = result, reason
	for _, l := range c.legs() {
		if l != nil {
			l.st.stop()
			l.stopAwaitingAck()
			l.setDialog(DialogTerminated)
			legs = append(legs, l)
		}
	}
	if c.maxTimer != nil {
		c.maxTimer.Stop()
	}
	close(c.closed)
	return legs, c.svc, c.media, true
}

// endCall hangs up a call: BYE to every leg but from, then the call is
// closed with result and reason. It is an event of its own: call it from
// outside the call's queue (inside, post it).
func (s *Server) endCall(c *Call, from *leg, result, reason string) {
	var byes []*sip.Request
	var ok bool
	c.do(func() { byes, result, ok = s.terminate(c, from, result) })
	if !ok {
		return
	}
	for _, b := range byes {
		s.send(c, b)
	}
	s.closeCall(c, result, reason)
}

// closeCall closes a call (see finish), then frees its media, takes it
// out of the call table and records how it ended. Call it from outside
// the call's queue.
func (s *Server) closeCall(c *Call, result, reason string) {
	var legs []*leg
	var svc ServiceSession
	var ms MediaSession
	var ok bool
	var answer, end time.Time
	var checkpointed bool
	var rec CallRecord
	c.do(func() {
		legs, svc, ms, ok = s.finish(c, result, reason)
		answer, end, checkpointed = c.answer, c.end, c.checkpointed
		if ok && s.record != nil {
			rec = s.callRecord(c)
		}
	})
	if !ok {
		return
	}
	if checkpointed && !s.detached.Load() {
		s.ckpt.del(c.ID)
	}
	var quality *MediaQuality
	if svc != nil {
		if qr, ok := svc.(QualityReporter); ok {
			q := qr.Quality()
			quality = &q
		}
		_ = svc.Close()
	}
	if ms != nil {
		q := ms.Quality()
		quality = &q
		_ = ms.Close()
	}
	for _, l := range legs {
		s.calls.removeLeg(l)
	}
	s.calls.release(c, c.account)
	s.m.callsTotal.WithLabelValues(result).Inc()
	args := []any{"result", result, "reason", reason}
	if !answer.IsZero() {
		args = append(args, "duration_s", end.Sub(answer).Round(time.Millisecond).Seconds())
	}
	if quality != nil && quality.Packets > 0 {
		args = append(args, "codec", quality.Codec, "rtp_packets", quality.Packets, "rtp_lost", quality.Lost, "jitter_ms", float64(quality.Jitter.Microseconds())/1000)
	}
	c.log.Info("call ended", args...)
	if s.record != nil && result != resultDetached {
		rec.Media = quality
		s.record(rec)
	}
}
