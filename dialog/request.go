package dialog

import (
	"net"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// prebuilt tells sipgo's client that a request is complete as it is.
func prebuilt(*sipgo.Client, *sip.Request) error { return nil }

// newRequest builds a request on leg l (RFC 3261 §12.2.1.1): the remote
// target as Request-URI, the route set, the dialog's tags and Call-ID, and
// parley's own Via and Contact. It is sent to the leg's next hop.
func (s *Server) newRequest(l *leg, method sip.RequestMethod, cseq uint32) *sip.Request {
	req := sip.NewRequest(method, *l.target.Clone())
	ln := s.listenerFor(l.transport)
	host := s.advertise(ln, l.dest)
	via := &sip.ViaHeader{
		ProtocolName:    "SIP",
		ProtocolVersion: "2.0",
		Transport:       upperTransport(l.transport),
		Host:            host,
		Port:            ln.port(),
		Params:          sip.NewParams(),
	}
	via.Params.Add("branch", newBranch())
	via.Params.Add("rport", "")
	req.AppendHeader(via)
	for _, r := range l.routes {
		req.AppendHeader(&sip.RouteHeader{Address: *r.Clone()})
	}
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	from := &sip.FromHeader{DisplayName: l.localName, Address: *l.local.Clone(), Params: sip.NewParams()}
	from.Params.Add("tag", l.localTag)
	req.AppendHeader(from)
	to := &sip.ToHeader{DisplayName: l.remoteName, Address: *l.remote.Clone(), Params: sip.NewParams()}
	if l.remoteTag != "" {
		to.Params.Add("tag", l.remoteTag)
	}
	req.AppendHeader(to)
	cid := sip.CallIDHeader(l.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: method})
	if method != sip.ACK && method != sip.CANCEL && method != sip.BYE {
		req.AppendHeader(s.contact(ln, host))
	}
	if method == sip.INVITE || method == sip.UPDATE {
		req.AppendHeader(sip.NewHeader("Allow", allowHeader))
	}
	req.AppendHeader(sip.NewHeader("User-Agent", "parley"))
	s.route(req, l, ln)
	return req
}

// route sets where a request built for leg l goes: its next hop, over the
// listener's own socket for UDP so replies come back to the port parley
// announced.
func (s *Server) route(req *sip.Request, l *leg, ln *listener) {
	req.SetTransport(upperTransport(l.transport))
	req.SetDestination(l.dest)
	if ln.udp != nil {
		req.Laddr = sip.Addr{IP: ln.addr.IP, Port: ln.addr.Port}
	}
}

// upperTransport is the transport as a Via spells it ("UDP"), without an
// allocation for the usual ones.
func upperTransport(t string) string {
	switch t {
	case "udp", "UDP":
		return "UDP"
	case "tcp", "TCP":
		return "TCP"
	case "tls", "TLS":
		return "TLS"
	}
	return strings.ToUpper(t)
}

// lowerTransport is the transport in parley's own spelling ("udp").
func lowerTransport(t string) string {
	switch t {
	case "udp", "UDP":
		return "udp"
	case "tcp", "TCP":
		return "tcp"
	case "tls", "TLS":
		return "tls"
	}
	return strings.ToLower(t)
}

// contact is parley's Contact for messages sent over ln.
func (s *Server) contact(ln *listener, host string) *sip.ContactHeader {
	u := sip.Uri{Scheme: "sip", User: "parley", Host: host, Port: ln.port()}
	if ln.network == "tcp" {
		u.UriParams = sip.NewParams()
		u.UriParams.Add("transport", "tcp")
	}
	return &sip.ContactHeader{Address: u}
}

// response builds a response to req on a leg whose local tag is tag.
func (s *Server) response(req *sip.Request, code int, reason string, tag string) *sip.Response {
	return newResponse(req, code, reason, tag)
}

// newResponse builds a response to req as RFC 3261 §8.2.6 asks: Via
// (with rport and received filled in, RFC 3581), From, To, Call-ID and
// CSeq copied; Record-Route copied into the 18x and 2xx of a request that
// may create a dialog (§12.1.1); Timestamp into a 100 (§8.2.6.1). The To
// of anything but a 100 gets tag, or a new tag when tag is empty and the
// request had none.
//
// It is sip.NewResponseFromRequest without the lower-cased copy of every
// unknown header name that sipgo's header lookup allocates.
func newResponse(req *sip.Request, code int, reason string, tag string) *sip.Response {
	res := sip.NewResponse(code, reason)
	res.SipVersion = req.SipVersion
	copyRR := req.Method != sip.REGISTER && req.Method != sip.ACK &&
		((code > 100 && code < 200 && req.Method == sip.INVITE) ||
			(code >= 180 && code < 190) || (code >= 200 && code < 300))
	if copyRR {
		for _, h := range req.Headers() {
			if strings.EqualFold(h.Name(), "Record-Route") {
				res.AppendHeader(sip.HeaderClone(h))
			}
		}
	}
	top := true
	for _, h := range req.Headers() {
		v, ok := h.(*sip.ViaHeader)
		if !ok {
			continue
		}
		v = v.Clone()
		if rp, ok := v.Params.Get("rport"); top && ok && rp == "" {
			host, port, _ := net.SplitHostPort(req.Source())
			v.Params.Add("rport", port)
			v.Params.Add("received", host)
		}
		top = false
		res.AppendHeader(v)
	}
	if h := req.From(); h != nil {
		res.AppendHeader(sip.HeaderClone(h))
	}
	if h := req.To(); h != nil {
		to := sip.HeaderClone(h).(*sip.ToHeader)
		switch {
		case code == 100:
		case tag != "":
			to.Params.Add("tag", tag)
		case !to.Params.Has("tag"):
			to.Params.Add("tag", newTag())
		}
		res.AppendHeader(to)
	}
	if h := req.CallID(); h != nil {
		res.AppendHeader(sip.HeaderClone(h))
	}
	if h := req.CSeq(); h != nil {
		res.AppendHeader(sip.HeaderClone(h))
	}
	if code == 100 {
		if h := headerNamed(req, "Timestamp"); h != nil {
			res.AppendHeader(sip.HeaderClone(h))
		}
	}
	res.SetBody(nil) // Content-Length: 0
	res.SetTransport(req.Transport())
	res.SetDestination(req.Source())
	return res
}

// copyHeaders copies end-to-end headers a B2BUA should pass between legs.
func copyHeaders(dst, src sip.Message, names ...string) {
	for _, n := range names {
		for _, h := range headersNamed(src, n) {
			dst.AppendHeader(sip.NewHeader(h.Name(), h.Value()))
		}
	}
}

// recordRoutes returns the Record-Route URIs of m in order.
func recordRoutes(m sip.Message) []sip.Uri {
	var out []sip.Uri
	for _, h := range headersNamed(m, "Record-Route") {
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			out = append(out, keptURI(&rr.Address))
			continue
		}
		// A header with several comma-separated values is parsed into
		// several headers; an unparsed one is skipped.
	}
	return out
}

func reversed(u []sip.Uri) []sip.Uri {
	out := make([]sip.Uri, len(u))
	for i := range u {
		out[len(u)-1-i] = u[i]
	}
	return out
}

func tagOf(params sip.HeaderParams) string {
	t, _ := params.Get("tag")
	return t
}
