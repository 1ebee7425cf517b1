package dialog

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a checkpoint is not restored, the label of
// parley_calls_recovered_total{result="failed"}.
const (
	recoverUnreadable = "unreadable" // it does not parse, or names no dialog
	recoverMedia      = "media"      // its relay ports could not be bound again
	recoverDuplicate  = "duplicate"  // a call with its ID or dialog is live already
	recoverExpired    = "expired"    // past sessions.max_duration
)

func newRecoverMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	m := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_calls_recovered_total",
		Help: "Calls restored from checkpoints (at start, or adopted from a dead node), by result and, for failures, reason.",
	}, []string{"result", "reason"})
	if reg != nil {
		reg.MustRegister(m)
	}
	return m
}

// recoverError is why a checkpoint was not restored, with its metric label.
type recoverError struct {
	reason string
	err    error
}

func (e *recoverError) Error() string { return e.err.Error() }
func (e *recoverError) Unwrap() error { return e.err }

// recoverCalls restores every call whose checkpoint the store holds for
// this node: the start of a process after a crash or an upgrade. A
// checkpoint that cannot be restored ends its call cleanly (BYE on both
// legs when its dialogs are readable) and is deleted; it never stops the
// start. It returns how many calls were restored.
func (s *Server) recoverCalls() int {
	if s.ckpt == nil {
		return 0
	}
	recs, err := s.ckpt.store.Load()
	if err != nil {
		s.log.Error("checkpoints not loaded; no call restored", "error", err)
		return 0
	}
	if len(recs) == 0 {
		return 0
	}
	start := time.Now()
	n := 0
	for id, data := range recs {
		if _, err := s.restoreCall(id, data, false); err == nil {
			n++
		}
	}
	s.log.Info("calls restored from checkpoints", "restored", n, "failed", len(recs)-n,
		"took_ms", time.Since(start).Milliseconds())
	return n
}

// restoreCall rebuilds the call of one checkpoint: both legs with their
// CSeqs and timers, and its media, on the same relay ports (a restart) or,
// with move, on new ones (adopted from another node; the caller then
// re-INVITEs both legs). On failure the call is ended and the checkpoint
// deleted; the error says why, and has been logged.
func (s *Server) restoreCall(id string, data []byte, move bool) (*Call, error) {
	fail := func(reason string, err error) (*Call, error) {
		s.recovered.WithLabelValues("failed", reason).Inc()
		s.ckpt.del(id)
		s.log.Warn("call not restored", "call", id, "reason", reason, "error", err)
		return nil, &recoverError{reason: reason, err: err}
	}
	st, err := decodeCallState(data)
	if err != nil {
		return fail(recoverUnreadable, err)
	}
	if st.ID != id {
		return fail(recoverUnreadable, errors.New("checkpoint holds call "+st.ID))
	}
	c := &Call{
		ID: st.ID, work: s.work, from: st.From, to: st.To, account: st.Account,
		start: st.Start, answer: st.Answer,
		cancelled: make(chan struct{}), aborted: make(chan struct{}),
		decided: make(chan struct{}), closed: make(chan struct{}),
	}
	close(c.decided)
	c.log = callLog{l: s.log, id: c.ID}
	if c.caller, err = restoreLeg(c, roleCaller, st.Caller); err != nil {
		return fail(recoverUnreadable, err)
	}
	if c.callee, err = restoreLeg(c, roleCallee, st.Callee); err != nil {
		return fail(recoverUnreadable, err)
	}
	if s.calls.get(c.ID) != nil || s.calls.lookup(c.caller.callID, c.caller.localTag) != nil ||
		s.calls.lookup(c.callee.callID, c.callee.localTag) != nil {
		// Not deleted: the checkpoint is the live call's.
		s.recovered.WithLabelValues("failed", recoverDuplicate).Inc()
		return nil, &recoverError{reason: recoverDuplicate, err: errors.New("call is live already")}
	}

	// The call is entered first, so that a failure below ends it the way
	// any call ends: BYE on both legs, a record, and its checkpoint gone.
	s.ckpt.markStored(c.ID)
	c.checkpointed = true
	s.calls.admit(c, c.account, 0, 0)
	s.calls.addLeg(c.caller)
	s.calls.addLeg(c.callee)
	c.do(func() {
		s.move(c, Establishing)
		s.move(c, Active)
		if st.State == Suspended.String() {
			s.move(c, Suspended)
		}
	})
	if d := s.cfg.Sessions.MaxDuration; d > 0 && time.Since(c.start) >= d {
		s.recovered.WithLabelValues("failed", recoverExpired).Inc()
		c.log.Info("restored call is past sessions.max_duration; hanging up")
		s.endCall(c, nil, resultAnswered, "max duration "+d.String())
		return nil, &recoverError{reason: recoverExpired, err: errors.New("past sessions.max_duration")}
	}
	if len(st.Media) > 0 {
		ms, err := s.restoreMedia(st.Media, move)
		if err != nil {
			s.recovered.WithLabelValues("failed", recoverMedia).Inc()
			c.log.Warn("call not restored: media", "error", err)
			s.endCall(c, nil, resultAnswered, "not restored: "+err.Error())
			return nil, &recoverError{reason: recoverMedia, err: err}
		}
		c.do(func() {
			c.media = ms
			if move {
				// The re-INVITEs' SDP announces this node's addresses.
				s.faceMedia(ms, true, c.caller.transport, c.caller.dest)
				s.faceMedia(ms, false, c.callee.transport, c.callee.dest)
			}
		})
		s.watchMedia(c, ms)
	}
	c.do(func() {
		for _, l := range []*leg{c.caller, c.callee} {
			s.resumeTimer(l)
		}
		s.armMaxDuration(c)
		if !move {
			s.checkpoint(c)
		}
	})
	s.recovered.WithLabelValues("recovered", "").Inc()
	c.log.Info("call restored", "from", c.from, "to", c.to, "state", st.State,
		"checkpoint_age_ms", time.Since(st.Written).Milliseconds(), "moved", move)
	return c, nil
}

// restoreMedia rebuilds a media session from its checkpoint.
func (s *Server) restoreMedia(data []byte, move bool) (MediaSession, error) {
	mr, ok := s.media.(MediaRestorer)
	if !ok {
		return nil, errors.New("this build's media cannot restore sessions")
	}
	if move {
		return mr.Move(data)
	}
	return mr.Restore(data)
}

// resumeGrace is how long a restored leg whose phone refreshes the session
// waits for that refresh when its time passed while parley was down: the
// phone retransmits its re-INVITE or UPDATE for 32 s (Timer B/F), so a
// refresh sent into the gap arrives again within seconds.
const resumeGrace = 10 * time.Second

// resumeTimer arms a restored leg's session timer where the checkpoint left
// it (RFC 4028 §10): a refresh parley owes and missed while down goes out
// at once; a phone's refresh missed meanwhile gets resumeGrace to arrive
// again before the session ends. Run it in the call's queue.
func (s *Server) resumeTimer(l *leg) {
	if l.st.interval <= 0 {
		return
	}
	left := time.Until(l.st.due)
	if l.st.due.IsZero() {
		left = l.st.interval / 2
	}
	if l.st.parley {
		s.armTimerIn(l, max(left, 0), func() { s.refresh(l) })
		return
	}
	s.armTimerIn(l, max(left, resumeGrace), func() { s.sessionExpired(l) })
}

// Adopt takes over calls another node checkpointed (a dead node's, claimed
// through the shared store): each is restored on new relay ports of this
// node, and both legs get a re-INVITE carrying the new SDP, so that media
// and signalling move here (the re-INVITE's Contact makes this node the
// phones' remote target). It returns how many calls it adopted.
func (s *Server) Adopt(recs map[string][]byte) int {
	n := 0
	for id, data := range recs {
		c, err := s.restoreCall(id, data, true)
		if err != nil {
			continue
		}
		n++
		for _, l := range []*leg{c.caller, c.callee} {
			s.goOwned(func() { s.reoffer(l) })
		}
	}
	return n
}
