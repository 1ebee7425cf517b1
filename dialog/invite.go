package dialog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// target is one place the second leg of a call is sent.
type target struct {
	uri       sip.Uri // Request-URI
	to        sip.Uri // To address
	dest      string  // next hop ip:port
	transport string  // udp, tcp or tls
	// trunk names the trunk a route sends the call through (trunk.go),
	// and from is then the From address, the trunk's user.
	trunk string
	from  sip.Uri
	// alts are the targets to try in turn when this one fails (RFC 3263
	// §4.3): the other addresses DNS gave for a route's host name.
	alts []target
}

// fork is one branch of a call's second leg.
type fork struct {
	leg *leg
	req *sip.Request
	tx  sip.ClientTransaction

	// guarded by the call's mu
	retried      bool // after a 422 (RFC 4028)
	provisional  bool
	cancelWanted bool
	cancelled    bool
	// rackSeq is the RSeq of the last reliable provisional response PRACKed
	// on this branch (RFC 3262).
	rackSeq uint32
	// trunk is the trunk the branch goes through; authed is set once its
	// challenge was answered (retryTrunkAuth, trunk.go).
	trunk  string
	authed bool

	// alts are the targets behind this branch's (target.alts); gaveUp
	// marks a branch placeCall left for the next of them. placeCall's
	// own: no other code reads them.
	alts   []target
	gaveUp bool
}

type forkEvent struct {
	f   *fork
	res *sip.Response
	err error
}

// onInvite takes a new call, or passes a re-INVITE to the other leg.
func (s *Server) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if sipmsg.HasToTag(req) {
		s.relayInDialog(req, tx)
		return
	}
	if s.draining.Load() {
		s.reply(req, tx, ErrServerBusy)
		return
	}
	user := req.From().Address.User
	// A call from a trunk is not challenged and goes to a local user
	// only (trunk.go).
	dialled := req.Recipient
	var fromTrunk bool
	if s.trunks != nil {
		var trunkUser string
		if _, trunkUser, fromTrunk = s.trunks.Inbound(req); fromTrunk {
			dialled.User = trunkUser
		}
	}
	if s.auth != nil && !fromTrunk {
		u, res, ok := s.auth.Authenticate(req, 407)
		if !ok {
			_ = tx.Respond(res)
			return
		}
		user = u
	}
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 {
		s.reply(req, tx, ErrTooManyHops)
		return
	}
	contact := req.Contact()
	if contact == nil {
		s.reply(req, tx, badRequest("INVITE has no Contact header"))
		return
	}
	if h := sipmsg.HeaderNamed(req, "Replaces"); h != nil {
		s.inviteReplaces(req, tx, user, h.Value())
		return
	}

	c := &Call{
		ID:        sipmsg.NewID(),
		work:      s.work,
		from:      user,
		to:        dialled.User,
		start:     time.Now(),
		cancelled: make(chan struct{}),
		aborted:   make(chan struct{}),
		decided:   make(chan struct{}),
		closed:    make(chan struct{}),
	}
	c.log = callLog{l: s.log, id: c.ID}
	c.rel.on = wants100rel(req)
	c.caller = uasLeg(c, roleCaller, req, contact)
	// The per-user limit counts local accounts only: a trusted peer (a
	// SIPp rig, a trunk) may put any user in From.
	if s.auth != nil && s.auth.IsUser(user) {
		c.account = user
	}
	var admitted bool
	c.do(func() { admitted = s.establish(c) })
	if !admitted {
		c.log.Info("call refused: limit reached", "from", user, "to", c.to)
		s.reply(req, tx, ErrServerBusy)
		return
	}
	if c.log.enabled(slog.LevelInfo) {
		c.log.Info("call started", "from", user, "to", c.to, "source", req.Source(), "transport", c.caller.transport)
	}
	tx.OnCancel(func(*sip.Request) {
		// The transaction layer answers a matching CANCEL itself (200,
		// and 487 to the INVITE), so it is counted here.
		s.m.request("CANCEL")
		s.m.response("CANCEL", 200)
		c.cancelOnce.Do(func() { close(c.cancelled) })
	})
	_ = tx.Respond(sipmsg.NewResponse(req, 100, "Trying", ""))

	var err error
	c.do(func() { err = s.negotiateUAS(c.caller, req) })
	if err != nil {
		s.failCall(c, req, tx, err)
		return
	}
	if svc, ok := s.services[dialled.User]; ok {
		s.serve(c, req, tx, svc)
		return
	}
	var targets []target
	if fromTrunk {
		targets, err = s.resolveInbound(dialled)
	} else {
		targets, err = s.resolve(req.Recipient)
	}
	if err != nil {
		s.failCall(c, req, tx, err)
		return
	}
	var ms MediaSession
	if s.media != nil {
		if ms, err = s.newMediaSession(req.Source(), targets[0].dest); err != nil {
			s.failCall(c, req, tx, sipmsg.As(err, 503, "Service Unavailable"))
			return
		}
	}
	// Each leg's SDP announces the local address facing its phone; the
	// callee's is the first branch's until a branch wins (answer).
	s.faceMedia(ms, true, sipmsg.LowerTransport(req.Transport()), req.Source())
	s.faceMedia(ms, false, targets[0].transport, targets[0].dest)
	s.dtmfModes(ms, c.account, req.Recipient.User)
	s.srtpPolicies(ms, c.account, req.Recipient.User) // users[].srtp (srtp.go)
	c.do(func() {
		c.lateOffer = len(req.Body()) == 0
		c.media = ms
	})
	offer, err := rewrite(ms, true, true, req)
	if err != nil {
		s.failCall(c, req, tx, err)
		return
	}
	s.placeCall(c, req, tx, user, targets, offer, ms)
}

// uasLeg is the leg a phone's INVITE req (with Contact contact) makes
// with parley, which answers it, in call c's place r.
func uasLeg(c *Call, r role, req *sip.Request, contact *sip.ContactHeader) *leg {
	return &leg{
		call:       c,
		role:       r,
		callID:     sipmsg.CallID(req),
		localTag:   sipmsg.NewTag(),
		remoteTag:  strings.Clone(sipmsg.Tag(req.From().Params)),
		local:      keptURI(&req.To().Address),
		localName:  strings.Clone(req.To().DisplayName),
		remote:     keptURI(&req.From().Address),
		remoteName: strings.Clone(req.From().DisplayName),
		target:     keptURI(&contact.Address),
		routes:     recordRoutes(req),
		dest:       req.Source(),
		transport:  sipmsg.LowerTransport(req.Transport()),
		remoteCSeq: req.CSeq().SeqNo,
	}
}

// uacLeg is a leg parley places in call c's place r, From user (with
// display name) at the realm, with a dialog of its own not yet sent
// anywhere: a callee's, a transfer target's, a page member's.
func (s *Server) uacLeg(c *Call, r role, user, name string) leg {
	return leg{
		call: c, role: r, uac: true,
		callID:    sipmsg.NewID() + sipmsg.NewID() + "@parley",
		localTag:  sipmsg.NewTag(),
		local:     sip.Uri{Scheme: "sip", User: user, Host: s.cfg.SIP.Realm},
		localName: name,
		localCSeq: 1,
	}
}

// resolve finds where a call goes: a registered user's contacts, a route,
// or nowhere (404, or 480 for a local user with no registration).
// nodeParam is the Request-URI parameter that marks a call one node sends
// another for a phone registered through it (see throughNode); its value
// names the node it is for.
const nodeParam = "parley-node"

// throughNode is the target of a call for user's phone registered through
// another node of the cluster: that node, over UDP, which holds the phone's
// flow (behind NAT the only way in) and calls the phone itself.
func (s *Server) throughNode(user string, ct Contact) target {
	host, port, _ := net.SplitHostPort(ct.NodeAddr)
	u := sip.Uri{Scheme: "sip", User: user, Host: host, UriParams: sip.NewParams()}
	u.Port, _ = strconv.Atoi(port)
	u.UriParams.Add(nodeParam, ct.Node)
	return target{uri: u, to: sip.Uri{Scheme: "sip", User: user, Host: s.cfg.SIP.Realm}, dest: ct.NodeAddr, transport: "udp"}
}

func (s *Server) resolve(ruri sip.Uri) ([]target, error) {
	user := ruri.User
	if user == "" {
		return nil, ErrNotFound
	}
	local := s.auth != nil && s.auth.IsUser(user)
	if local || s.loc != nil {
		var contacts []Contact
		if s.loc != nil {
			contacts = s.loc.Lookup(user)
		}
		// A call another node sent here for a phone whose flow this node
		// holds goes to this node's phones only, so it cannot loop.
		forwarded := ruri.UriParams != nil && ruri.UriParams.Has(nodeParam)
		var out []target
		viaNode := map[string]bool{}
		for _, ct := range contacts {
			if ct.Node != "" && ct.Node != s.node {
				if forwarded || ct.NodeAddr == "" || viaNode[ct.Node] {
					continue
				}
				viaNode[ct.Node] = true
				out = append(out, s.throughNode(user, ct))
				continue
			}
			var u sip.Uri
			if err := sip.ParseUri(ct.URI, &u); err != nil {
				continue
			}
			t := target{uri: u, to: sip.Uri{Scheme: "sip", User: user, Host: s.cfg.SIP.Realm}, dest: ct.Dest, transport: strings.ToLower(ct.Transport)}
			if t.transport == "" {
				t.transport = uriTransport(u)
			}
			if t.dest == "" {
				t.dest = uriDest(u)
			}
			if s.listenerFor(t.transport, t.dest) == nil {
				continue
			}
			out = append(out, t)
		}
		if len(out) > 0 {
			return out, nil
		}
		if local {
			return nil, ErrNotRegistered
		}
	}
	for _, r := range s.routes {
		m := r.re.FindStringSubmatchIndex(user)
		if m == nil {
			continue
		}
		raw := string(r.re.ExpandString(nil, r.target, user, m))
		var u sip.Uri
		if err := sip.ParseUri(raw, &u); err != nil {
			return nil, &sipmsg.Error{Code: 500, Reason: "Server Internal Error", Warning: "route target " + raw + " is not a SIP URI"}
		}
		var t target
		if r.trunk != "" && s.trunks != nil {
			// A trunk's call goes to the trunk's registrar, which the
			// trunk resolves: the target's host is the provider's domain.
			t = target{uri: u, to: u, dest: uriDest(u), transport: uriTransport(u)}
			if err := s.throughTrunk(&t, r.trunk); err != nil {
				return nil, err
			}
			if s.listenerFor(t.transport, t.dest) == nil {
				return nil, &sipmsg.Error{Code: 503, Reason: "Service Unavailable", Warning: "no " + t.transport + " listener for route"}
			}
		} else {
			var err error
			if t, err = s.routeTarget(u); err != nil {
				return nil, err
			}
		}
		return []target{t}, nil
	}
	return nil, ErrNotFound
}

func uriTransport(u sip.Uri) string {
	if v, ok := u.UriParams.Get("transport"); ok && v != "" {
		return strings.ToLower(v)
	}
	return "udp"
}

func uriDest(u sip.Uri) string {
	port := u.Port
	if port == 0 {
		port = 5060
	}
	// An IPv6 reference keeps its brackets in sipgo's Uri.Host.
	return net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(u.Host, "["), "]"), strconv.Itoa(port))
}

// placeCall sends the second leg to every target and relays what comes
// back, until one answers, all fail, the caller cancels or it rings too
// long. It returns once the caller has its final response. offer is what
// ms made of the caller's offer; a branch whose phone faces another local
// address gets it re-addressed.
func (s *Server) placeCall(c *Call, req *sip.Request, tx sip.ServerTransaction, user string, targets []target, offer []byte, ms MediaSession) {
	from := req.From()
	base := s.uacLeg(c, roleCallee, user, from.DisplayName)
	// Unbuffered: a branch's response is either taken by this loop or, once
	// the call is decided, handled by the branch's own watcher; never lost
	// in between.
	events := make(chan forkEvent)
	var forks []*fork
	var lastErr error
	ma, _ := ms.(mediaAddresser)
	readdress := ma != nil && (len(targets) > 1 || len(targets[0].alts) > 0) && isSDP(req)
	branch := func(t target) (*fork, error) {
		body := offer
		if readdress {
			if a := s.facing(t.transport, t.dest); a.IsValid() {
				body = ma.Addressed(false, a)
			}
		}
		l := base
		l.target, l.remote, l.dest, l.transport = t.uri, t.to, t.dest, t.transport
		if t.trunk != "" {
			l.local = t.from // the provider knows the call by its trunk's user
		}
		out := s.newRequest(&l, sip.INVITE, 1)
		oneHopFewer(out, req)
		sipmsg.CopyHeaders(out, req, "Subject", "Priority", "Alert-Info", "Call-Info")
		s.timerRequestHeaders(out, &l, false)
		// parley PRACKs the callee's reliable provisionals itself.
		out.RemoveHeader("Supported")
		out.AppendHeader(sip.NewHeader("Supported", "timer, 100rel"))
		withBody(out, req, body)
		ctx, cancel := context.WithTimeout(s.context(), 5*time.Second)
		ctx2tx, err := s.request(ctx, out)
		cancel()
		if err != nil {
			c.log.Info("second leg not sent", "dest", t.dest, "error", err)
			return nil, err
		}
		// Over TCP a new connection to the phone's Contact may have taken
		// the place of its flow: the leg goes on over it.
		l.dest = out.Destination()
		f := &fork{leg: &l, req: out, tx: ctx2tx, trunk: t.trunk, alts: t.alts}
		s.goOwned(func() { s.watchFork(c, f, f.tx, events, c.decided, func() bool { return c.callee == f.leg }) })
		return f, nil
	}
	// A branch with alternatives behind it that stays silent is given up
	// after failoverAfter (waiting is that branch).
	noReply := time.NewTimer(failoverAfter)
	noReply.Stop()
	defer noReply.Stop()
	var waiting *fork
	// send starts a branch to t or, failing that, to each of its
	// alternatives in turn (RFC 3263 §4.3); it reports whether one went.
	send := func(t target) bool {
		for {
			f, err := branch(t)
			if err == nil {
				forks = append(forks, f)
				if len(f.alts) > 0 {
					waiting = f
					noReply.Reset(failoverAfter)
				}
				return true
			}
			lastErr = err
			if len(t.alts) == 0 {
				return false
			}
			c.log.Info("target failed; trying the next", "dest", t.dest, "why", errText(err))
			t = nextTarget(t)
		}
	}
	// failover gives branch f up for its next alternative.
	failover := func(f *fork, why string) bool {
		f.gaveUp = true
		if waiting == f {
			waiting = nil
			noReply.Stop()
		}
		c.log.Info("target failed; trying the next", "dest", f.leg.dest, "why", why)
		return send(nextTarget(target{alts: f.alts}))
	}
	for _, t := range targets {
		send(t)
	}
	if len(forks) == 0 {
		var se *sipmsg.Error
		if !errors.As(lastErr, &se) {
			se = &sipmsg.Error{Code: 503, Reason: "Service Unavailable", Warning: errText(lastErr)}
		}
		s.failCall(c, req, tx, se)
		return
	}

	ring := time.NewTimer(s.ringTimeout)
	defer ring.Stop()
	var best *sip.Response
	pending := len(forks)
	for pending > 0 {
		select {
		case e := <-events:
			if e.f.gaveUp {
				// A target given up for silence that answers after all
				// is hung up: the call has moved on.
				if e.res != nil && e.res.StatusCode >= 200 && e.res.StatusCode < 300 {
					f, res := e.f, e.res
					s.goOwned(func() { s.ackAndBye(c, f, res) })
				}
				continue
			}
			if e.f == waiting && e.res != nil {
				waiting = nil
				noReply.Stop()
			}
			if e.res == nil {
				lastErr = e.err
				if len(e.f.alts) == 0 || !failover(e.f, errText(e.err)) {
					pending--
				}
				continue
			}
			code := e.res.StatusCode
			switch {
			case code < 200:
				if code > 100 {
					s.relayProvisional(c, req, tx, e.res)
				}
			case code < 300:
				s.answer(c, req, tx, forks, e.f, e.res)
				return
			default:
				if code == 422 && s.retry422(c, e.f, e.res, events) {
					continue
				}
				if (code == 401 || code == 407) && s.retryTrunkAuth(c, e.f, e.res, events) {
					continue
				}
				best = betterFinal(best, e.res)
				// RFC 3263 §4.3: a 503 sends the request to the next target.
				if code == 503 && len(e.f.alts) > 0 && failover(e.f, "503 "+e.res.Reason) {
					continue
				}
				pending--
			}
		case <-noReply.C:
			if f := waiting; f != nil && !f.gaveUp {
				f.tx.Terminate()
				lastErr = fmt.Errorf("no response from %s within %v", f.leg.dest, failoverAfter)
				if !failover(f, "no response") {
					pending--
				}
			}
		case <-c.cancelled:
			s.decide(c, forks, nil)
			// sipgo has answered the CANCEL with 200 and the INVITE with 487.
			c.log.Info("call cancelled by caller")
			s.m.response(string(sip.INVITE), 487)
			s.closeCall(c, resultCancelled, "cancelled by caller")
			return
		case <-c.aborted:
			s.decide(c, forks, nil)
			s.failCall(c, req, tx, ErrServerBusy)
			return
		case <-ring.C:
			s.decide(c, forks, nil)
			s.failCall(c, req, tx, &sipmsg.Error{Code: 480, Reason: "No Answer", Warning: "no answer within ring timeout"})
			return
		}
	}
	s.decide(c, forks, nil)
	if best != nil {
		s.failCall(c, req, tx, finalFor(best))
		return
	}
	se := &sipmsg.Error{Code: 503, Reason: "Service Unavailable", Warning: errText(lastErr)}
	if errors.Is(lastErr, sip.ErrTransactionTimeout) {
		se = &sipmsg.Error{Code: 408, Reason: "Request Timeout", Warning: "callee did not answer"}
	}
	s.failCall(c, req, tx, se)
}

func errText(err error) string {
	if err == nil {
		return "no destination reachable"
	}
	return err.Error()
}

// betterFinal picks the final response to give the caller when every
// branch failed (RFC 3261 §16.7 step 6, simplified): 6xx wins, then the
// lowest class, preferring specific answers over 408/503 timeouts.
func betterFinal(cur, next *sip.Response) *sip.Response {
	if cur == nil {
		return next
	}
	rank := func(r *sip.Response) int {
		switch c := r.StatusCode; {
		case c >= 600:
			return 0
		case c == 408 || c == 503 || c == 500:
			return 900 + c
		default:
			return c
		}
	}
	if rank(next) < rank(cur) {
		return next
	}
	return cur
}

// finalFor maps a callee's failure to what the caller hears. Challenges for
// credentials parley does not have are not passed on.
func finalFor(res *sip.Response) *sipmsg.Error {
	switch res.StatusCode {
	case 401, 407:
		return &sipmsg.Error{Code: 403, Reason: "Forbidden", Warning: "callee asked for credentials"}
	case 487:
		return sipmsg.Status(487, "Request Terminated")
	}
	se := &sipmsg.Error{Code: res.StatusCode, Reason: res.Reason}
	if ra := sipmsg.HeaderNamed(res, "Retry-After"); ra != nil {
		se.RetryAfter, _ = strconv.Atoi(strings.TrimSpace(strings.SplitN(ra.Value(), ";", 2)[0]))
	}
	return se
}

// watchFork reads one branch's responses and hands them to events until
// decided is closed (placeCall's c.decided, or a transfer's); after that it
// cleans up on its own: it sends a CANCEL that had to wait for a
// provisional response, and ACKs and hangs up a 2xx that lost the race.
// won reports, in the call's queue, whether f is the winning branch.
func (s *Server) watchFork(c *Call, f *fork, tx sip.ClientTransaction, events chan<- forkEvent, decidedCh <-chan struct{}, won func() bool) {
	// Once the call is decided, a branch that was CANCELled gets 64*T1 to
	// send its final response; then its transaction is given up (RFC 3261
	// §9.1), so a callee that never answers leaks nothing.
	decided := decidedCh
	var giveUp <-chan time.Time
	done := s.context().Done()
	for {
		select {
		case <-decided:
			decided = nil
			if !s.isWinner(c, won) {
				t := time.NewTimer(64 * sip.T1)
				defer t.Stop()
				giveUp = t.C
			}
			continue
		case <-giveUp:
			c.log.Debug("branch never answered its CANCEL; giving it up")
			tx.Terminate()
			return
		case <-done:
			tx.Terminate()
			return
		case res := <-tx.Responses():
			final := res.StatusCode >= 200
			var cancel *sip.Request
			c.do(func() {
				if !final && !f.provisional {
					f.provisional = true
					if f.cancelWanted && !f.cancelled {
						f.cancelled = true
						cancel = f.req
					}
				}
			})
			if cancel != nil {
				s.sendCancel(c, f.leg, cancel)
			}
			if rseq := reliableRSeq(res); rseq != 0 && !s.prackCallee(c, f, res, rseq) {
				continue // a retransmission, PRACKed already
			}
			select {
			case events <- forkEvent{f: f, res: res}:
			case <-decidedCh:
				if res.StatusCode >= 200 && res.StatusCode < 300 && !s.isWinner(c, won) {
					s.ackAndBye(c, f, res)
				}
			}
			if final {
				return
			}
		case <-tx.Done():
			select {
			case events <- forkEvent{f: f, err: tx.Err()}:
			case <-decidedCh:
			}
			return
		}
	}
}

func (s *Server) isWinner(c *Call, won func() bool) bool {
	var ok bool
	c.do(func() { ok = won() })
	return ok
}

// decide marks the call's second leg as settled and cancels every branch
// but the winner (RFC 3261 §9.1: a CANCEL waits for a provisional response).
func (s *Server) decide(c *Call, forks []*fork, winner *fork) {
	s.decideIn(c, c.decided, forks, winner)
}

// decideIn closes decided, the channel the branches in forks watch, and
// cancels every branch but the winner. Call it from outside c's queue.
func (s *Server) decideIn(c *Call, decided chan struct{}, forks []*fork, winner *fork) {
	type cancel struct {
		l   *leg
		inv *sip.Request
	}
	var now []cancel
	c.do(func() {
		select {
		case <-decided:
		default:
			close(decided)
		}
		for _, f := range forks {
			if f == winner || f.cancelled {
				continue
			}
			if f.provisional {
				f.cancelled = true
				now = append(now, cancel{f.leg, f.req})
			} else {
				f.cancelWanted = true
			}
		}
	})
	for _, x := range now {
		s.sendCancel(c, x.l, x.inv)
	}
}

// sendCancel CANCELs inv, a branch's INVITE on leg l (RFC 3261 §9.1). A
// branch's leg keeps its Call-ID and next hop for its life, so they are
// read here outside the call's queue.
func (s *Server) sendCancel(c *Call, l *leg, inv *sip.Request) {
	cancel := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	cancel.AppendHeader(inv.Via().Clone())
	sipmsg.CopyHeaders(cancel, inv, "Route")
	mf := sip.MaxForwardsHeader(70)
	cancel.AppendHeader(&mf)
	cancel.AppendHeader(sip.HeaderClone(inv.From()))
	cancel.AppendHeader(sip.HeaderClone(inv.To()))
	cid := sip.CallIDHeader(l.callID)
	cancel.AppendHeader(&cid)
	cancel.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	cancel.SetBody(nil)
	s.route(cancel, l, s.listenerFor(l.transport, l.dest))
	s.send(c, cancel)
}

// relayProvisional passes a 18x to the caller on the caller's early dialog.
func (s *Server) relayProvisional(c *Call, req *sip.Request, tx sip.ServerTransaction, res *sip.Response) {
	var out *sip.Response
	c.do(func() {
		out = sipmsg.NewResponse(req, res.StatusCode, res.Reason, c.caller.localTag)
		ln := s.listenerFor(c.caller.transport, c.caller.dest)
		out.AppendHeader(s.contact(ln, s.advertise.Host(ln, c.caller.dest)))
		c.caller.setDialog(DialogEarly)
		// Early media: the SDP of a 18x is the answer (or, after a
		// late-offer INVITE, an offer) and is rewritten for the relay like
		// a 2xx's.
		body, err := rewrite(c.media, c.lateOffer, false, res)
		if err != nil {
			c.log.Info("SDP of provisional response dropped", "status", res.StatusCode, "error", err)
			body = nil
		}
		withBody(out, res, body)
		s.sendProvisional(c, tx, out)
	})
}

// answer completes the call with the winning branch's 2xx.
func (s *Server) answer(c *Call, req *sip.Request, tx sip.ServerTransaction, forks []*fork, win *fork, res *sip.Response) {
	callee := win.leg
	inviteCSeq := res.CSeq().SeqNo
	var slot *ackSlot
	var ms MediaSession
	var late bool
	c.do(func() {
		callee.remoteTag = strings.Clone(sipmsg.Tag(res.To().Params))
		if ct := res.Contact(); ct != nil {
			callee.target = keptURI(&ct.Address)
		}
		callee.routes = reversed(recordRoutes(res))
		// PRACKs may have moved the CSeq past the INVITE's.
		callee.localCSeq = max(callee.localCSeq, inviteCSeq)
		callee.inviteCSeq = inviteCSeq
		callee.setDialog(DialogEarly)
		s.negotiateUAC(callee, res)
		c.callee = callee
		slot = callee.ackSlot()
		ms, late = c.media, c.lateOffer
		// The winning branch's local address is the callee's from now on.
		s.faceMedia(ms, false, callee.transport, callee.dest)
	})
	s.decide(c, forks, win)
	s.calls.addLeg(callee)
	// The callee retransmits its 2xx until it sees our ACK; answer each
	// retransmission with the ACK we sent, once we have sent one.
	win.tx.OnRetransmission(func(*sip.Response) { slot.resend(s, 0) })

	select {
	case <-c.cancelled:
		// The caller's CANCEL crossed the callee's 2xx: the caller already
		// has its 487, so the callee is acknowledged and hung up.
		c.do(func() { s.sendAck(callee, inviteCSeq, nil, nil) })
		c.log.Info("answer crossed caller's CANCEL; hanging up callee")
		s.m.response(string(sip.INVITE), 487)
		// The caller has a 487 and no dialog: no BYE for it.
		s.endCall(c, c.caller, resultCancelled, "cancelled by caller")
		return
	default:
	}

	body, err := rewrite(ms, late, false, res)
	if err != nil {
		// The callee answered with SDP parley cannot relay: it is
		// acknowledged and hung up, and the caller hears why.
		var bye *sip.Request
		c.do(func() {
			s.sendAck(callee, inviteCSeq, nil, nil)
			callee.localCSeq++
			bye = s.newRequest(callee, sip.BYE, callee.localCSeq)
		})
		bye.SetBody(nil)
		s.send(c, bye)
		s.failCall(c, req, tx, err)
		return
	}
	var ok *sip.Response
	c.do(func() {
		ok = s.answerOK(c.caller, req, tx, okSpec{
			code: res.StatusCode, reason: res.Reason, body: body, bodyFrom: res, allow: true,
			onAck: func(ack *sip.Request) {
				if !late {
					s.sendAck(callee, inviteCSeq, nil, nil)
					return
				}
				// Late offer: the caller's ACK carries the answer for the
				// callee.
				answer, err := rewrite(ms, false, true, ack)
				if err != nil {
					c.log.Info("caller's answer in ACK refused; hanging up", "error", err)
					s.sendAck(callee, inviteCSeq, nil, nil)
					s.goOwned(func() { s.endCall(c, nil, resultFailed, "bad SDP answer in ACK") })
					return
				}
				s.sendAck(callee, inviteCSeq, ack, answer)
			},
		})
		s.activate(c)
		s.hold(c)
	})
	s.watchMedia(c, ms)
	c.log.Info("call answered", "setup_ms", time.Since(c.start).Milliseconds())
	if err := tx.Respond(ok); err != nil {
		c.log.Info("2xx to caller failed", "error", err)
	}
	select {
	case <-c.cancelled:
		// The CANCEL reached the transaction before the 2xx: it sent 487
		// and dropped the 2xx (the cancel hook runs under the transaction's
		// lock, in parley's transactions and in sipgo's, so it has run by
		// the time Respond returns).
		c.log.Info("caller's CANCEL won over the answer; hanging up callee")
		c.do(func() { s.sendAck(callee, inviteCSeq, nil, nil) })
		s.endCall(c, c.caller, resultCancelled, "cancelled by caller")
	default:
	}
}

// failCall gives the caller a final error and closes the call. The
// caller leg's tag is set when the call is made and never changes, so it
// is read here outside the call's queue.
func (s *Server) failCall(c *Call, req *sip.Request, tx sip.ServerTransaction, err error) {
	se := sipmsg.ErrorFor(err)
	_ = tx.Respond(sipmsg.Response(req, err, c.caller.localTag))
	c.log.Info("call failed", "status", se.Code, "reason", se.Reason, "detail", se.Warning)
	c.do(func() { c.code = se.Code }) // for the call's record
	s.closeCall(c, resultFor(se.Code), strconv.Itoa(se.Code)+" "+se.Reason)
}
