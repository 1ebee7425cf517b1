package dialog

import (
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
	"github.com/parley-sip/parley/dialog/transport"
)

// prebuilt tells sipgo's client that a request is complete as it is.
func prebuilt(*sipgo.Client, *sip.Request) error { return nil }

// newRequest builds a request on leg l (RFC 3261 §12.2.1.1): the remote
// target as Request-URI, the route set, the dialog's tags and Call-ID, and
// parley's own Via and Contact. It is sent to the leg's next hop.
func (s *Server) newRequest(l *leg, method sip.RequestMethod, cseq uint32) *sip.Request {
	req := sip.NewRequest(method, *l.target.Clone())
	ln := s.listenerFor(l.transport, l.dest)
	host := s.advertise.Host(ln, l.dest)
	via := &sip.ViaHeader{
		ProtocolName:    "SIP",
		ProtocolVersion: "2.0",
		Transport:       sipmsg.UpperTransport(l.transport),
		Host:            host,
		Port:            ln.PortNumber(),
		Params:          sip.NewParams(),
	}
	via.Params.Add("branch", sipmsg.NewBranch())
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
func (s *Server) route(req *sip.Request, l *leg, ln *transport.Listener) {
	req.SetTransport(sipmsg.UpperTransport(l.transport))
	req.SetDestination(l.dest)
	if ln.UDP != nil {
		req.Laddr = sip.Addr{IP: ln.IP(), Port: ln.PortNumber()}
	}
}

// oneHopFewer gives out, a request parley sends on behalf of in, in's
// Max-Forwards less one (RFC 3261 §16.6 step 3, as a B2BUA passes it on).
func oneHopFewer(out, in *sip.Request) {
	if mf := in.MaxForwards(); mf != nil {
		v := sip.MaxForwardsHeader(mf.Val() - 1)
		out.ReplaceHeader(&v)
	}
}

// contact is parley's Contact for messages sent over ln.
func (s *Server) contact(ln *transport.Listener, host string) *sip.ContactHeader {
	u := sip.Uri{Scheme: "sip", User: "parley", Host: host, Port: ln.PortNumber()}
	if ln.Network == "tcp" || ln.Network == "tls" {
		u.UriParams = sip.NewParams()
		u.UriParams.Add("transport", ln.Network)
	}
	return &sip.ContactHeader{Address: u}
}

// recordRoutes returns the Record-Route URIs of m in order.
func recordRoutes(m sip.Message) []sip.Uri {
	var out []sip.Uri
	for _, h := range sipmsg.HeadersNamed(m, "Record-Route") {
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
