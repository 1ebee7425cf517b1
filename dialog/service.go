package dialog

import (
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/parley-sip/parley/dialog/sipmsg"
)

// Service is a built-in callee, such as the echo service: parley answers
// the call itself and the service handles its media.
type Service interface {
	// Start answers an SDP offer and starts the media session.
	Start(offer []byte) (answer []byte, sess ServiceSession, err error)
}

// ServiceSession is one running service call.
type ServiceSession interface {
	// Done is closed when the session ends on its own (media timeout).
	Done() <-chan struct{}
	// Close stops the session and frees what it holds.
	Close() error
}

// WithService makes calls to user reach svc.
func WithService(user string, svc Service) Option {
	return func(s *Server) error {
		if user != "" && svc != nil {
			s.services[user] = svc
		}
		return nil
	}
}

// serve answers a call to a built-in service.
func (s *Server) serve(c *Call, req *sip.Request, tx sip.ServerTransaction, svc Service) {
	offer := req.Body()
	if len(offer) == 0 {
		s.failCall(c, req, tx, &sipmsg.Error{Code: 488, Reason: "Not Acceptable Here", Warning: "this service needs an SDP offer in the INVITE"})
		return
	}
	answer, sess, err := svc.Start(offer)
	if err != nil {
		s.failCall(c, req, tx, sipmsg.As(err, 500, "Server Internal Error"))
		return
	}
	caller := c.caller
	ok := sipmsg.NewResponse(req, 200, "OK", caller.localTag)
	ln := s.listenerFor(caller.transport)
	ok.AppendHeader(s.contact(ln, s.advertise.Host(ln, caller.dest)))
	ok.AppendHeader(sip.NewHeader("Allow", allowHeader))
	ok.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	ok.SetBody(answer)

	c.mu.Lock()
	timerHeaders(ok, caller)
	c.svc, c.svcAnswer = sess, answer
	c.answer = time.Now()
	s.moveLocked(c, Active)
	s.armTimer(caller)
	s.armMaxDuration(c)
	s.awaitAck(caller, tx, ok, req.CSeq().SeqNo, nil)
	c.mu.Unlock()
	s.m.setup.Observe(c.answer.Sub(c.start).Seconds())
	c.log.Info("call answered by service", "service", c.to)
	_ = tx.Respond(ok)

	s.goOwned(func() {
		select {
		case <-sess.Done():
			s.endCall(c, nil, resultAnswered, "media timeout")
		case <-c.closed:
		}
	})
}
