package dialog

import (
	"net/netip"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
	"github.com/parley-sip/parley/dialog/transaction"
)

// Guard decides which sources parley talks to: cmd/parley plugs in
// dialog/guard, which also hears how each source fares with
// authentication.
type Guard interface {
	// Allow is false while src is banned: its requests are dropped.
	Allow(src netip.Addr) bool
	// Scanner reports a known scanner's User-Agent: dropped.
	Scanner(src netip.Addr, userAgent string) bool
	// Stranger takes one request without valid credentials from src;
	// false when src is over its rate: dropped.
	Stranger(src netip.Addr) bool
}

// WithGuard makes g decide which sources are dropped.
func WithGuard(g Guard) Option {
	return func(s *Server) error { s.guard = g; return nil }
}

// refused reports whether the guard drops req: its source is banned, or
// its User-Agent is a scanner's.
func (s *Server) refused(req *sip.Request) bool {
	if s.guard == nil {
		return false
	}
	src, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return false
	}
	ip := src.Addr().Unmap()
	if !s.guard.Allow(ip) {
		return true
	}
	if h := sipmsg.HeaderNamed(req, "User-Agent"); h != nil && s.guard.Scanner(ip, h.Value()) {
		s.log.Debug("scanner dropped", "source", src.String(), "user_agent", h.Value())
		return true
	}
	return false
}

// stateless sees every UDP request before the transaction layer makes a
// transaction for it (transaction.WithStateless). It drops what the guard
// refuses (a banned source, a scanner, a stranger over its rate), and
// challenges a stranger's INVITE, MESSAGE, SUBSCRIBE or REGISTER without a
// transaction: the 407 or 401 goes out once and nothing is kept, so a
// flood of them costs no memory and is not answered with retransmissions
// (RFC 3261 §8.2.7 lets a UAS answer statelessly). Credentials that cannot be valid are
// challenged the same way; the phone's answer to a real challenge takes
// the usual way.
func (s *Server) stateless(port transaction.Port, req *sip.Request, src netip.AddrPort) bool {
	ip := src.Addr().Unmap()
	if s.refused(req) {
		return true
	}
	code, credentials := 0, ""
	switch req.Method {
	case sip.INVITE, sip.MESSAGE, sip.SUBSCRIBE:
		// A MESSAGE and a SUBSCRIBE are authenticated as a call is (see
		// onMessage, onSubscribe).
		code, credentials = 407, "Proxy-Authorization"
	case sip.REGISTER:
		code, credentials = 401, "Authorization"
	default:
		return false
	}
	if s.auth == nil || sipmsg.HasToTag(req) || s.trunkCall(req) {
		return false
	}
	if pkg, _ := eventOf(req); req.Method == sip.SUBSCRIBE && watchPackages[pkg] == "" {
		return false // a package parley does not serve gets its 489 first
	}
	stranger := sipmsg.HeaderNamed(req, credentials) == nil
	// What the handlers would refuse first (a malformed request, an
	// extension parley does not do) takes the usual way to its 400 or 420.
	if validate(req) != nil || sipmsg.HeaderNamed(req, "Require") != nil {
		return false
	}
	if stranger && s.guard != nil && !s.guard.Stranger(ip) {
		return true
	}
	// Credentials that cannot be valid (a nonce not issued for this source
	// and call, say) are challenged the same way: only an answer to a
	// challenge parley sent to this very address takes a transaction.
	res, ok := s.auth.Precheck(req, code)
	if ok {
		return false // a trusted network, or credentials to check in full
	}
	method := string(req.Method)
	s.m.request(method)
	s.m.response(method, res.StatusCode)
	if err := s.tx.RespondStateless(port, req, src, res); err != nil {
		s.log.Debug("stateless challenge not sent", "source", src.String(), "error", err)
	}
	return true
}
