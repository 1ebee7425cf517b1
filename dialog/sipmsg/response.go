package sipmsg

import (
	"net"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// NewResponse builds a response to req as RFC 3261 §8.2.6 asks: Via
// (with rport and received filled in, RFC 3581), From, To, Call-ID and
// CSeq copied; Record-Route copied into the 18x and 2xx of a request that
// may create a dialog (§12.1.1); Timestamp into a 100 (§8.2.6.1). The To
// of anything but a 100 gets tag, or a new tag when tag is empty and the
// request had none.
//
// It is sip.NewResponseFromRequest without the lower-cased copy of every
// unknown header name that sipgo's header lookup allocates.
func NewResponse(req *sip.Request, code int, reason string, tag string) *sip.Response {
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
			to.Params.Add("tag", NewTag())
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
		if h := HeaderNamed(req, "Timestamp"); h != nil {
			res.AppendHeader(sip.HeaderClone(h))
		}
	}
	res.SetBody(nil) // Content-Length: 0
	res.SetTransport(req.Transport())
	res.SetDestination(req.Source())
	return res
}
