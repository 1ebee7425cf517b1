package registrar

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// newResponse builds a response to req as RFC 3261 §8.2.6 asks: the Via
// headers, From, To (with a tag of ours unless it has one), Call-ID and
// CSeq copied, and rport/received filled in for RFC 3581. A REGISTER's
// response never carries Record-Route (§20, table 3), and a registrar
// never sends 100 to a REGISTER, so neither is handled here.
//
// It does what sip.NewResponseFromRequest does for these messages, without
// the string that sipgo's header lookup allocates for every header name it
// passes that it does not know.
func newResponse(req *sip.Request, code int, reason string) *sip.Response {
	res := sip.NewResponse(code, reason)
	res.SipVersion = req.SipVersion
	first := true
	for _, h := range req.Headers() {
		v, ok := h.(*sip.ViaHeader)
		if !ok {
			continue
		}
		v = v.Clone()
		if first {
			if rp, ok := v.Params.Get("rport"); ok && rp == "" {
				host, port, _ := net.SplitHostPort(req.Source())
				v.Params.Add("rport", port)
				v.Params.Add("received", host)
			}
			first = false
		}
		res.AppendHeader(v)
	}
	if h := req.From(); h != nil {
		res.AppendHeader(sip.HeaderClone(h))
	}
	if h := req.To(); h != nil {
		to := sip.HeaderClone(h).(*sip.ToHeader)
		if !to.Params.Has("tag") {
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
	res.SetBody(nil) // Content-Length: 0
	res.SetTransport(req.Transport())
	res.SetDestination(req.Source())
	return res
}

// newTag is a To tag: 64 random bits in lower-case hex (RFC 3261 §19.3
// asks for at least 32).
func newTag() string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], rand.Uint64())
	return hex.EncodeToString(b[:])
}

// header returns the first header of m called name, compared without
// regard to case. sipgo's GetHeader lower-cases, with an allocation, the
// name of every header it passes that it does not know.
func header(m interface{ Headers() []sip.Header }, name string) sip.Header {
	for _, h := range m.Headers() {
		if strings.EqualFold(h.Name(), name) {
			return h
		}
	}
	return nil
}
