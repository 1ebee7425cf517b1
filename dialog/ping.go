package dialog

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// Ping sends an OPTIONS outside any dialog to a registered contact (its
// Contact URI as Request-URI, sent to dest over transport, the path the
// phone registered on) and returns the round-trip time. Any final response
// counts, even 404 or 501 from a phone that does not implement OPTIONS;
// only a timeout or a transport error is an error. Over UDP the pings
// double as NAT keepalives.
func (s *Server) Ping(ctx context.Context, contact, dest, transport string) (time.Duration, error) {
	var u sip.Uri
	if err := sip.ParseUri(contact, &u); err != nil {
		return 0, fmt.Errorf("contact %q: %w", contact, err)
	}
	transport = strings.ToLower(transport)
	ln := s.listenerFor(transport, dest)
	if ln == nil {
		return 0, fmt.Errorf("no %s listener", transport)
	}
	l := &leg{
		callID:    sipmsg.NewID() + "@parley",
		localTag:  sipmsg.NewTag(),
		local:     sip.Uri{Scheme: "sip", User: "parley", Host: s.cfg.SIP.Realm},
		remote:    sip.Uri{Scheme: "sip", User: u.User, Host: s.cfg.SIP.Realm},
		target:    u,
		dest:      dest,
		transport: transport,
	}
	req := s.newRequest(l, sip.OPTIONS, 1)
	req.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	req.SetBody(nil)
	start := time.Now()
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tx, err := s.request(tctx, req)
	if err != nil {
		return 0, err
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.StatusCode >= 200 {
				return time.Since(start), nil
			}
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return 0, err
			}
			return 0, fmt.Errorf("no answer")
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}
