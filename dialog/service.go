package dialog

import (
	"net/netip"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// Service is a built-in callee, such as the echo service: parley answers
// the call itself and the service handles its media.
type Service interface {
	// Start answers an SDP offer and starts the media session.
	Start(offer []byte) (answer []byte, sess ServiceSession, err error)
}

// addressedService is a Service whose answer announces the local address
// it is given, the one facing the caller: the echo service bound to every
// address (rtp.address "").
type addressedService interface {
	StartAt(offer []byte, local netip.Addr) (answer []byte, sess ServiceSession, err error)
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
	var answer []byte
	var sess ServiceSession
	var err error
	if cs, ok := svc.(callerService); ok {
		answer, sess, err = cs.StartCall(ServiceCall{Offer: offer, Local: s.facing(sipmsg.LowerTransport(req.Transport()), req.Source()), From: c.from, CallID: c.ID})
	} else if as, ok := svc.(addressedService); ok {
		answer, sess, err = as.StartAt(offer, s.facing(sipmsg.LowerTransport(req.Transport()), req.Source()))
	} else {
		answer, sess, err = svc.Start(offer)
	}
	if err != nil {
		s.failCall(c, req, tx, sipmsg.As(err, 500, "Server Internal Error"))
		return
	}
	if pg, ok := svc.(Pager); ok {
		s.page(c, req, tx, pg, answer, sess)
		return
	}
	var ok *sip.Response
	c.do(func() {
		c.svc, c.svcAnswer = sess, answer
		c.app = c.to
		if a, ok := svc.(Application); ok {
			c.app = a.App()
		}
		ok = s.answerOK(c.caller, req, tx, okSpec{body: answer, allow: true})
		s.activate(c)
	})
	c.log.Info("call answered by service", "service", c.to)
	_ = tx.Respond(ok)

	s.endWhenDone(c, sess, "media timeout")
}

// endWhenDone hangs call c up with reason once its service session sess
// ends on its own (its media stopped).
func (s *Server) endWhenDone(c *Call, sess ServiceSession, reason string) {
	s.goOwned(func() {
		select {
		case <-sess.Done():
			s.endCall(c, nil, resultAnswered, reason)
		case <-c.closed:
		}
	})
}
