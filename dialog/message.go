package dialog

import (
	"context"
	"errors"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// Page-mode instant messages (RFC 3428) between parley's users. A MESSAGE
// outside a dialog is authenticated as an INVITE is, its target resolved
// as a call's (a registered user's contacts, through the node that holds
// each one, or a route), and parley sends each contact a MESSAGE of its
// own: a new Call-ID, From tag and branch, From the sender at the realm,
// the body as it came. The sender hears the first 2xx, or the best
// failure. A MESSAGE inside a call goes to the other leg (relayInDialog).

// messageWait bounds how long parley waits for a contact to answer a
// MESSAGE: 20·T1, 10 s with RFC 3261's timers. The sender gives up at its
// own Timer F (64·T1), so it still hears the 408 parley sends then.
func messageWait() time.Duration { return 20 * sip.T1 }

// messageHeaders are the headers of a MESSAGE that go on with it, besides
// the body's.
var messageHeaders = []string{"Subject", "Priority", "Date", "Expires", "In-Reply-To"}

// onMessage delivers a MESSAGE outside a dialog, or passes one inside a
// dialog to the other leg.
func (s *Server) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	if sipmsg.HasToTag(req) {
		s.relayInDialog(req, tx)
		return
	}
	res, err := s.deliverMessage(req)
	if err != nil {
		s.reply(req, tx, err)
		return
	}
	_ = tx.Respond(res)
}

// messageAnswer is how one contact answered: its final response, or why
// there is none.
type messageAnswer struct {
	res *sip.Response
	err error
}

// deliverMessage sends req to every place its target can be reached and
// returns the response for the sender: the challenge when the sender must
// authenticate, or the first 2xx. A failure is returned as an error that
// carries its status: 404 for an unknown user, 480 for a user with no
// registration, the best final response of the contacts (RFC 3261 §16.7),
// or 408 when none answered in time.
func (s *Server) deliverMessage(req *sip.Request) (*sip.Response, error) {
	user := req.From().Address.User
	if s.auth != nil {
		u, res, ok := s.auth.Authenticate(req, 407)
		if !ok {
			return res, nil
		}
		user = u
	}
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 {
		return nil, ErrTooManyHops
	}
	if len(req.Body()) > 0 && sipmsg.HeaderNamed(req, "Content-Type") == nil {
		// RFC 3261 §7.4.1: a body says what it is.
		return nil, badRequest("MESSAGE has a body but no Content-Type")
	}
	targets, err := s.resolve(req.Recipient)
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(s.context(), messageWait())
	defer cancel() // ends the branches still waiting
	// Buffered for every branch, so that none blocks once the sender has
	// its answer.
	answers := make(chan messageAnswer, len(targets))
	callID := sipmsg.NewID() + sipmsg.NewID() + "@parley"
	fromTag := sipmsg.NewTag()
	pending := 0
	var lastErr error
	for _, t := range targets {
		out := s.newMessage(req, user, t, callID, fromTag)
		sendCtx, sendCancel := context.WithTimeout(ctx, 5*time.Second)
		otx, err := s.request(sendCtx, out)
		sendCancel()
		if err != nil {
			s.log.Debug("MESSAGE not sent", "to", t.uri.String(), "dest", t.dest, "error", err)
			lastErr = err
			continue
		}
		pending++
		s.goOwned(func() { answers <- awaitFinal(ctx, otx) })
	}

	var best *sip.Response
	for ; pending > 0; pending-- {
		a := <-answers
		switch {
		case a.res == nil:
			lastErr = a.err
		case a.res.StatusCode < 300:
			s.log.Info("message delivered", "from", user, "to", req.Recipient.User, "status", a.res.StatusCode)
			return sipmsg.NewResponse(req, a.res.StatusCode, a.res.Reason, ""), nil
		default:
			best = betterFinal(best, a.res)
		}
	}
	var se *sipmsg.Error
	switch {
	case best != nil:
		se = finalFor(best)
	case errors.Is(lastErr, context.DeadlineExceeded), errors.Is(lastErr, sip.ErrTransactionTimeout):
		se = &sipmsg.Error{Code: 408, Reason: "Request Timeout", Warning: "no contact answered the MESSAGE"}
	case errors.Is(lastErr, context.Canceled):
		se = ErrServerBusy // parley is shutting down
	default:
		se = &sipmsg.Error{Code: 480, Reason: "Temporarily Unavailable", Warning: errText(lastErr)}
	}
	s.log.Info("message not delivered", "from", user, "to", req.Recipient.User, "status", se.Code, "detail", se.Warning)
	return nil, se
}

// awaitFinal waits for the final response of tx, a MESSAGE's client
// transaction, until ctx ends; it ends the transaction either way.
func awaitFinal(ctx context.Context, tx sip.ClientTransaction) messageAnswer {
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.StatusCode >= 200 {
				return messageAnswer{res: res}
			}
		case <-tx.Done():
			return messageAnswer{err: tx.Err()}
		case <-ctx.Done():
			return messageAnswer{err: ctx.Err()}
		}
	}
}

// newMessage builds the MESSAGE parley sends to t for req, sent by user:
// a request of its own, as on a leg that carries one request (RFC 3261
// §8.1.1), with the sender's display name, one hop fewer, and req's body.
func (s *Server) newMessage(req *sip.Request, user string, t target, callID, fromTag string) *sip.Request {
	l := leg{
		role:       roleCallee,
		callID:     callID,
		localTag:   fromTag,
		local:      sip.Uri{Scheme: "sip", User: user, Host: s.cfg.SIP.Realm},
		localName:  req.From().DisplayName,
		remote:     t.to,
		remoteName: req.To().DisplayName,
		target:     t.uri,
		dest:       t.dest,
		transport:  t.transport,
	}
	out := s.newRequest(&l, sip.MESSAGE, 1)
	// RFC 3428 §4: a MESSAGE makes no dialog and carries no Contact.
	out.RemoveHeader("Contact")
	oneHopFewer(out, req)
	sipmsg.CopyHeaders(out, req, messageHeaders...)
	// deliverMessage refused a body without a Content-Type, so withBody
	// copies the sender's and adds none.
	withBody(out, req, req.Body())
	return out
}
