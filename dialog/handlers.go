package dialog

import (
	"runtime/debug"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
	"github.com/parley-sip/parley/dialog/transport"
)

// allowHeader lists the methods parley accepts (RFC 3261 §20.5): those it
// serves itself (INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, REGISTER,
// SUBSCRIBE for the packages in allowEvents, and REFER inside a call: a
// transfer, see transfer.go), and those it takes inside a call and passes
// to the other phone, which answers them (UPDATE, INFO and NOTIFY). PRACK
// is listed only while parley does RFC 3262 (100rel in supported);
// without it a Require: 100rel gets 420.
var allowHeader = allowedMethods()

func allowedMethods() string {
	methods := "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, MESSAGE, NOTIFY, REFER, SUBSCRIBE, REGISTER"
	if supported["100rel"] {
		methods += ", PRACK"
	}
	return methods
}

// allowEvents lists the event packages parley serves as a notifier, for
// the Allow-Events header of a 489 and of OPTIONS (RFC 6665 §8.2.2,
// §8.3.2): see presence.go. The "refer" subscription a REFER implies (RFC
// 3515) is parley's too, but it exists only with its REFER.
var allowEvents = []string{"dialog", "presence"}

// supported lists the option tags parley implements (RFC 3261 §8.2.2.3).
var supported = map[string]bool{"timer": true, "100rel": true, "replaces": true, "norefersub": true}

func (s *Server) routeHandlers() {
	s.handlers = map[sip.RequestMethod]sipgo.RequestHandler{
		sip.INVITE:    s.onInvite,
		sip.ACK:       s.onAck,
		sip.BYE:       s.onBye,
		sip.CANCEL:    s.onCancel,
		sip.OPTIONS:   s.onOptions,
		sip.MESSAGE:   s.onMessage,
		sip.SUBSCRIBE: s.onSubscribe,
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
	if req.Transport() != "UDP" && s.refused(req) {
		return // a banned source or a scanner, over TCP (UDP: see stateless)
	}
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

// validate checks what every request needs before parley acts on it, in
// the order of RFC 3261 §8.2: what the transport could not read, the
// version, the headers every request needs, the method (§8.2.1), the
// Request-URI (§8.2.2.1), the rest of the headers, and for a new INVITE
// its body and Accept (§8.2.3). It runs before authentication (the
// stateless challenge too), so a request parley could not take anyway
// learns why at once.
func validate(req *sip.Request) error {
	if err := transport.Problem(req); err != nil {
		return err
	}
	if !strings.EqualFold(req.SipVersion, "SIP/2.0") {
		return sipmsg.Warn(505, "Version Not Supported", "parley speaks SIP/2.0, not "+req.SipVersion)
	}
	if err := checkHeaders(req); err != nil {
		return err
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
	if !knownMethods[string(req.Method)] {
		// RFC 3261 §8.2.1: a method parley does not know at all (metrics.go
		// lists the known ones); a known one it does not serve gets 405.
		return errNotImplemented
	}
	if cseq.MethodName != req.Method {
		return badRequest("CSeq method %s does not match request method %s", cseq.MethodName, req.Method)
	}
	if !transport.KnownScheme(req.Recipient.Scheme) {
		return &sipmsg.Error{Code: 416, Reason: "Unsupported URI Scheme", Warning: "Request-URI scheme " + req.Recipient.Scheme + " is not supported"}
	}
	if req.Recipient.Headers.Length() > 0 {
		// RFC 3261 §19.1.5 allows headers in a URI, never in a Request-URI.
		return badRequest("Request-URI carries headers")
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
	if req.Method == sip.REGISTER && !isSIPScheme(req.To().Address.Scheme) {
		// RFC 3261 §10.2: the To of a REGISTER is an address-of-record,
		// a SIP or SIPS URI (RFC 4475 §3.3.4).
		return badRequest("REGISTER To is not a SIP or SIPS URI")
	}
	if req.Method == sip.INVITE && !sipmsg.HasToTag(req) {
		return offerAcceptable(req)
	}
	return nil
}

// checkHeaders checks every header line at once: no control characters
// outside a quoted-pair, no Via, From, To or Content-Length that did not
// parse, no single-valued header twice (RFC 3261 §7.3.1: only lists may
// repeat; RFC 4475 mcl01 and multi01).
func checkHeaders(req *sip.Request) error {
	var seen [7]string // the single-valued headers met so far
	n := 0
	for _, h := range req.Headers() {
		switch h.(type) {
		case *sip.ViaHeader, *sip.ContactHeader, *sip.RouteHeader, *sip.RecordRouteHeader,
			*sip.ReferToHeader, *sip.ReferredByHeader:
		case *sip.FromHeader, *sip.ToHeader, *sip.CallIDHeader, *sip.CSeqHeader,
			*sip.MaxForwardsHeader, *sip.ContentLengthHeader, *sip.ContentTypeHeader:
			// A parsed header's name is its canonical one, whatever the
			// message spelt ("l" and "Content-Length" alike).
			name := h.Name()
			for _, s := range seen[:n] {
				if s == name {
					return badRequest("more than one %s header", name)
				}
			}
			if n < len(seen) {
				seen[n] = name
				n++
			}
		default:
			// A header kept as text: unknown to the parser, or one it
			// could not parse (see transport.NewLenientParser).
			name := h.Name()
			if transport.HasBareControl(h.Value()) {
				return badRequest("control character in %s header", name)
			}
			switch {
			case strings.EqualFold(name, "Via"), strings.EqualFold(name, "From"), strings.EqualFold(name, "To"):
				// (sip.Request.From and To would parse it again, and
				// take what the lenient parser refused.)
				return badRequest("malformed %s header %q", name, h.Value())
			case strings.EqualFold(name, "Content-Length"):
				return badRequest("malformed Content-Length %q", h.Value())
			}
		}
	}
	return nil
}

func isSIPScheme(scheme string) bool {
	return strings.EqualFold(scheme, "sip") || strings.EqualFold(scheme, "sips")
}

// offerAcceptable checks a new INVITE's body and Accept against what
// parley can take and answer with: SDP (RFC 3261 §8.2.3; RFC 4475
// §3.3.6 and §3.3.15).
func offerAcceptable(req *sip.Request) error {
	if len(req.Body()) > 0 && !isSDP(req) {
		return errUnsupportedMedia
	}
	accepts := sipmsg.HeadersNamed(req, "Accept")
	if len(accepts) == 0 {
		return nil // RFC 3261 §20.1: no Accept means application/sdp
	}
	for _, h := range accepts {
		for _, r := range strings.Split(h.Value(), ",") {
			r, _, _ = strings.Cut(r, ";")
			switch strings.ToLower(strings.TrimSpace(r)) {
			case "application/sdp", "application/*", "*/*":
				return nil
			}
		}
	}
	return errNotAcceptable
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

// reply answers req with the response err maps to (sipmsg.Response). The
// response is SIP/2.0 whatever version the request named (a 505 too), and
// a 415 lists what parley accepts (RFC 3261 §21.4.13).
func (s *Server) reply(req *sip.Request, tx sip.ServerTransaction, err error) {
	res := sipmsg.Response(req, err, "")
	res.SipVersion = "SIP/2.0"
	if res.StatusCode == 415 {
		res.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	}
	if rerr := tx.Respond(res); rerr != nil {
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
	addAllowEvents(res)
	_ = tx.Respond(res)
}

// addAllowEvents lists allowEvents in res, when parley serves any.
func addAllowEvents(res *sip.Response) {
	if len(allowEvents) > 0 {
		res.AppendHeader(sip.NewHeader("Allow-Events", strings.Join(allowEvents, ", ")))
	}
}

// onOther passes in-dialog requests to the other leg and refuses what
// arrives outside a dialog.
func (s *Server) onOther(req *sip.Request, tx sip.ServerTransaction) {
	if sipmsg.HasToTag(req) {
		s.relayInDialog(req, tx)
		return
	}
	switch req.Method {
	case sip.PRACK, sip.UPDATE, sip.INFO, sip.NOTIFY, sip.BYE:
		s.reply(req, tx, ErrNoDialog)
	default:
		s.reply(req, tx, ErrMethodNotAllowed)
	}
}
