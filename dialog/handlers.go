package dialog

import (
	"runtime/debug"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
	"github.com/parley-sip/parley/dialog/transport"
)

// allowHeader lists the methods parley accepts.
const allowHeader = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, MESSAGE, NOTIFY, REFER, PRACK, REGISTER"

// supported lists the option tags parley implements (RFC 3261 §8.2.2.3).
var supported = map[string]bool{"timer": true}

func (s *Server) routeHandlers() {
	s.handlers = map[sip.RequestMethod]sipgo.RequestHandler{
		sip.INVITE:  s.onInvite,
		sip.ACK:     s.onAck,
		sip.BYE:     s.onBye,
		sip.CANCEL:  s.onCancel,
		sip.OPTIONS: s.onOptions,
	}
	for m, h := range s.extra {
		s.handlers[m] = h
	}
	// TCP requests come through sipgo's server.
	for m, h := range s.handlers {
		s.srv.OnRequest(m, s.wrap(h))
	}
	s.srv.OnNoRoute(s.wrap(s.onOther))
}

// handlerFor returns the handler of method m: onOther for the methods
// parley answers without a handler of their own (UPDATE, INFO and the
// rest, and the unknown ones).
func (s *Server) handlerFor(m sip.RequestMethod) sipgo.RequestHandler {
	if h, ok := s.handlers[m]; ok {
		return h
	}
	return s.onOther
}

// countingTx counts every response sent through it.
type countingTx struct {
	sip.ServerTransaction
	m      *metrics
	method string
}

func (t countingTx) Respond(res *sip.Response) error {
	t.m.response(t.method, res.StatusCode)
	return t.ServerTransaction.Respond(res)
}

// wrap puts every handler behind the checks all requests share: metrics,
// validation of the headers RFC 3261 §8.1.1 requires, the Require check of
// §8.2.2.3, and recovery from a panic (answered 500, never a crash). The
// handler runs on a worker (see workers) and sipgo's goroutine waits for
// it, so every response is sent before sipgo sees the handler return.
func (s *Server) wrap(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		s.work.Run(func() { s.handle(h, req, tx) })
	}
}

// handle is wrap's work for one request.
func (s *Server) handle(h sipgo.RequestHandler, req *sip.Request, tx sip.ServerTransaction) {
	method := string(req.Method)
	s.m.request(method)
	if tx != nil {
		tx = countingTx{ServerTransaction: tx, m: s.m, method: method}
	}
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in SIP handler", "method", method, "call_id", sipmsg.CallID(req), "panic", r, "stack", string(debug.Stack()))
			if tx != nil && !req.IsAck() {
				_ = tx.Respond(sipmsg.NewResponse(req, 500, "Server Internal Error", ""))
			}
		}
	}()
	if err := validate(req); err != nil {
		if req.IsAck() {
			s.log.Debug("dropped malformed ACK", "error", err)
			return
		}
		s.log.Info("bad request", "method", method, "source", req.Source(), "error", err)
		s.reply(req, tx, err)
		return
	}
	if !req.IsAck() && !req.IsCancel() {
		if bad := unsupported(req); len(bad) > 0 {
			s.reply(req, tx, &sipmsg.Error{Code: 420, Reason: "Bad Extension", Unsupported: strings.Join(bad, ", ")})
			return
		}
	}
	h(req, tx)
}

// validate checks what every request needs before parley acts on it.
func validate(req *sip.Request) error {
	if h := sipmsg.HeaderNamed(req, transport.MalformedHeader); h != nil {
		return badRequest("malformed header line %q", h.Value())
	}
	if req.From() == nil {
		return badRequest("missing or malformed From header")
	}
	if req.To() == nil {
		return badRequest("missing or malformed To header")
	}
	if req.CallID() == nil {
		return badRequest("missing Call-ID header")
	}
	cseq := req.CSeq()
	if cseq == nil {
		return badRequest("missing or malformed CSeq header")
	}
	if cseq.MethodName != req.Method {
		return badRequest("CSeq method %s does not match request method %s", cseq.MethodName, req.Method)
	}
	if h := sipmsg.HeaderNamed(req, "Max-Forwards"); h != nil && req.MaxForwards() == nil {
		return badRequest("malformed Max-Forwards header")
	}
	if h := sipmsg.HeaderNamed(req, "Contact"); h != nil && req.Contact() == nil {
		return badRequest("malformed Contact header")
	}
	if _, ok := req.From().Params.Get("tag"); !ok {
		return badRequest("From header has no tag")
	}
	return nil
}

// unsupported returns the Require option tags parley does not implement.
func unsupported(req *sip.Request) []string {
	var bad []string
	for _, tag := range sipmsg.ListTags(req, "Require") {
		if !supported[tag] {
			bad = append(bad, tag)
		}
	}
	return bad
}

// reply answers req with the response err maps to (sipmsg.Response).
func (s *Server) reply(req *sip.Request, tx sip.ServerTransaction, err error) {
	if rerr := tx.Respond(sipmsg.Response(req, err, "")); rerr != nil {
		s.log.Debug("respond failed", "status", sipmsg.ErrorFor(err).Code, "error", rerr)
	}
}

func (s *Server) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	if sipmsg.HasToTag(req) {
		s.onOther(req, tx)
		return
	}
	res := sipmsg.NewResponse(req, 200, "OK", "")
	res.AppendHeader(sip.NewHeader("Allow", allowHeader))
	res.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	_ = tx.Respond(res)
}

// onOther passes in-dialog requests to the other leg and refuses what
// arrives outside a dialog.
func (s *Server) onOther(req *sip.Request, tx sip.ServerTransaction) {
	if sipmsg.HasToTag(req) {
		s.relayInDialog(req, tx)
		return
	}
	switch req.Method {
	case sip.SUBSCRIBE:
		// RFC 6665 §4.2.2.1: no event package is supported here.
		res := sipmsg.NewResponse(req, 489, "Bad Event", "")
		_ = tx.Respond(res)
	case sip.PRACK, sip.UPDATE, sip.INFO, sip.NOTIFY, sip.BYE:
		s.reply(req, tx, ErrNoDialog)
	default:
		s.reply(req, tx, ErrMethodNotAllowed)
	}
}
