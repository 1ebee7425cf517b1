package dialog

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// Trunks are the upstream providers parley registers with and calls
// through (trunks[], routes[].trunk). cmd/parley plugs in dialog/trunk;
// the B2BUA only asks it where a trunk's calls go, whether a new INVITE
// comes from one, and how to answer a provider's challenge.
type Trunks interface {
	// Run keeps every trunk registered through c until stop is closed,
	// then unregisters them and returns. Serve runs it once its listeners
	// are bound and waits for it before closing them.
	Run(stop <-chan struct{}, c TrunkClient)
	// Outbound is where calls through trunk name go: the next hop
	// ("ip:port", over UDP) and the From address, the trunk's user at the
	// provider's domain.
	Outbound(name string) (dest string, from sip.Uri, err error)
	// Inbound reports whether req, a new INVITE, comes from a trunk: from
	// its registrar's address, or to the Contact parley registered. user
	// is the local user the call is for.
	Inbound(req *sip.Request) (trunk, user string, ok bool)
	// Authorize answers res, a provider's 401 or 407 to req sent through
	// trunk name, with the header to add to the request sent again.
	Authorize(name string, req *sip.Request, res *sip.Response) (sip.Header, error)
}

// TrunkClient is what a trunk needs of the Server to send its REGISTERs.
type TrunkClient interface {
	// Local returns the host and port parley announces (Via, Contact) to
	// dest, "ip:port" over UDP.
	Local(dest string) (host string, port int, err error)
	// Exchange sends req to dest ("ip:port") over UDP in a client
	// transaction of parley's and returns its final response, or an error
	// when none came before ctx ended or the transaction timed out.
	Exchange(ctx context.Context, req *sip.Request, dest string) (*sip.Response, error)
}

// WithTrunks makes the Server register to t's providers, send the calls of
// routes with a trunk through them, and accept their calls unchallenged.
func WithTrunks(t Trunks) Option {
	return func(s *Server) error { s.trunks = t; return nil }
}

// runTrunks starts the trunks' registrations; the function it returns
// stops them and waits until they have unregistered.
func (s *Server) runTrunks() (stop func()) {
	if s.trunks == nil {
		return func() {}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		s.trunks.Run(quit, trunkClient{s})
	}()
	return func() {
		close(quit)
		<-done
	}
}

// trunkClient is the Server as a TrunkClient.
type trunkClient struct{ s *Server }

func (c trunkClient) Local(dest string) (string, int, error) {
	ln := c.s.listenerFor("udp", dest)
	if ln == nil || ln.UDP == nil {
		return "", 0, errors.New("no udp listener to reach " + dest)
	}
	return c.s.advertise.Host(ln, dest), ln.PortNumber(), nil
}

func (c trunkClient) Exchange(ctx context.Context, req *sip.Request, dest string) (*sip.Response, error) {
	ln := c.s.listenerFor("udp", dest)
	if ln == nil || ln.UDP == nil {
		return nil, errors.New("no udp listener to reach " + dest)
	}
	req.SetTransport("UDP")
	req.SetDestination(dest)
	req.Laddr = sip.Addr{IP: ln.IP(), Port: ln.PortNumber()}
	tx, err := c.s.request(ctx, req)
	if err != nil {
		return nil, err
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.StatusCode >= 200 {
				return res, nil
			}
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return nil, err
			}
			return nil, errors.New("transaction ended without a final response")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// trunkCall reports whether req, a new INVITE, comes from a trunk: such a
// call is not challenged (parley cannot challenge its provider).
func (s *Server) trunkCall(req *sip.Request) bool {
	if s.trunks == nil || req.Method != sip.INVITE || sipmsg.HasToTag(req) {
		return false
	}
	_, _, ok := s.trunks.Inbound(req)
	return ok
}

// resolveInbound finds where a call from a trunk for user goes: a local
// user's phones only, never a route (which could send it back out, at the
// provider's or someone else's expense).
func (s *Server) resolveInbound(ruri sip.Uri) ([]target, error) {
	if s.auth != nil && !s.auth.IsUser(ruri.User) {
		return nil, ErrNotFound
	}
	return s.resolve(ruri)
}

// throughTrunk sends t, a route's target, through trunk name: to the
// trunk's registrar, over UDP, from the trunk's user.
func (s *Server) throughTrunk(t *target, name string) error {
	dest, from, err := s.trunks.Outbound(name)
	if err != nil {
		return &sipmsg.Error{Code: 503, Reason: "Service Unavailable", Warning: "trunk " + name + ": " + err.Error()}
	}
	t.dest, t.transport, t.trunk, t.from = dest, "udp", name, from
	return nil
}

// retryTrunkAuth sends a trunk branch's INVITE again with the trunk's
// credentials after the provider challenged it with 401 or 407 (RFC 3261
// §22.2): once, in a new transaction with the next CSeq. It reports
// whether it did; otherwise the challenge is the branch's final answer.
func (s *Server) retryTrunkAuth(c *Call, f *fork, res *sip.Response, events chan<- forkEvent) bool {
	if f.trunk == "" || f.authed || s.trunks == nil {
		return false
	}
	f.authed = true
	var out, old *sip.Request
	c.do(func() {
		old = f.req
		f.leg.localCSeq = old.CSeq().SeqNo + 1
		out = s.newRequest(f.leg, sip.INVITE, f.leg.localCSeq)
		if mf := old.MaxForwards(); mf != nil {
			v := sip.MaxForwardsHeader(mf.Val())
			out.ReplaceHeader(&v)
		}
		sipmsg.CopyHeaders(out, old, "Subject", "Priority", "Alert-Info", "Call-Info")
		s.timerRequestHeaders(out, f.leg, false)
	})
	out.RemoveHeader("Supported")
	out.AppendHeader(sip.NewHeader("Supported", "timer, 100rel"))
	h, err := s.trunks.Authorize(f.trunk, out, res)
	if err != nil {
		c.log.Info("trunk's challenge not answered", "trunk", f.trunk, "status", res.StatusCode, "error", err)
		return false
	}
	out.AppendHeader(h)
	withBody(out, old, old.Body())
	ctx, cancel := context.WithTimeout(s.context(), 5*time.Second)
	tx, err := s.request(ctx, out)
	cancel()
	if err != nil {
		c.log.Info("authenticated INVITE not sent", "trunk", f.trunk, "error", err)
		return false
	}
	c.log.Debug("trunk challenged the call; answered", "trunk", f.trunk, "status", strconv.Itoa(res.StatusCode))
	c.do(func() { f.req, f.tx, f.provisional = out, tx, false })
	s.goOwned(func() { s.watchFork(c, f, tx, events, c.decided, func() bool { return c.callee == f.leg }) })
	return true
}
