package dialog

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
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
			s.log.Error("panic in SIP handler", "method", method, "call_id", callIDOf(req), "panic", r, "stack", string(debug.Stack()))
			if tx != nil && !req.IsAck() {
				_ = tx.Respond(newResponse(req, 500, "Server Internal Error", ""))
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
			res := newResponse(req, 420, "Bad Extension", "")
			res.AppendHeader(sip.NewHeader("Unsupported", strings.Join(bad, ", ")))
			_ = tx.Respond(res)
			return
		}
	}
	h(req, tx)
}

// validate checks what every request needs before parley acts on it.
func validate(req *sip.Request) error {
	if h := headerNamed(req, malformedHeader); h != nil {
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
	if h := headerNamed(req, "Max-Forwards"); h != nil && req.MaxForwards() == nil {
		return badRequest("malformed Max-Forwards header")
	}
	if h := headerNamed(req, "Contact"); h != nil && req.Contact() == nil {
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
	for _, tag := range listTags(req, "Require") {
		if !supported[tag] {
			bad = append(bad, tag)
		}
	}
	return bad
}

// listTags returns the comma-separated values of the list headers names of
// m (Require, Supported, Allow and their compact forms), trimmed.
func listTags(m sip.Message, names ...string) []string {
	var out []string
	for _, n := range names {
		for _, h := range headersNamed(m, n) {
			for _, t := range strings.Split(h.Value(), ",") {
				if t = strings.TrimSpace(t); t != "" {
					out = append(out, t)
				}
			}
		}
	}
	return out
}

// reply answers req with the response err maps to.
func (s *Server) reply(req *sip.Request, tx sip.ServerTransaction, err error) {
	se := asSIPError(err)
	res := newResponse(req, se.Code, se.Reason, "")
	if se.RetryAfter > 0 {
		res.AppendHeader(sip.NewHeader("Retry-After", fmt.Sprint(se.RetryAfter)))
	}
	if se.Warning != "" {
		res.AppendHeader(sip.NewHeader("Warning", fmt.Sprintf("399 parley %q", se.Warning)))
	}
	if se.Code == 405 {
		res.AppendHeader(sip.NewHeader("Allow", allowHeader))
	}
	if se.MinSE > 0 {
		res.AppendHeader(sip.NewHeader("Min-SE", fmt.Sprint(se.MinSE)))
	}
	if err := tx.Respond(res); err != nil {
		s.log.Debug("respond failed", "status", se.Code, "error", err)
	}
}

func (s *Server) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	if hasToTag(req) {
		s.onOther(req, tx)
		return
	}
	res := newResponse(req, 200, "OK", "")
	res.AppendHeader(sip.NewHeader("Allow", allowHeader))
	res.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	_ = tx.Respond(res)
}

// onOther passes in-dialog requests to the other leg and refuses what
// arrives outside a dialog.
func (s *Server) onOther(req *sip.Request, tx sip.ServerTransaction) {
	if hasToTag(req) {
		s.relayInDialog(req, tx)
		return
	}
	switch req.Method {
	case sip.SUBSCRIBE:
		// RFC 6665 §4.2.2.1: no event package is supported here.
		res := newResponse(req, 489, "Bad Event", "")
		_ = tx.Respond(res)
	case sip.PRACK, sip.UPDATE, sip.INFO, sip.NOTIFY, sip.BYE:
		s.reply(req, tx, ErrNoDialog)
	default:
		s.reply(req, tx, errStatus(405, "Method Not Allowed"))
	}
}

func hasToTag(req *sip.Request) bool {
	if to := req.To(); to != nil {
		_, ok := to.Params.Get("tag")
		return ok
	}
	return false
}
