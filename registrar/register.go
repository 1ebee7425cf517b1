package registrar

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// HandleRegister is the sipgo handler for REGISTER. It processes the
// request as RFC 3261 §10.3 describes and always responds before it
// returns.
func (r *Registrar) HandleRegister(req *sip.Request, tx sip.ServerTransaction) {
	res := r.register(req)
	if err := tx.Respond(res); err != nil {
		r.log.Debug("registrar: sending response failed", "status", res.StatusCode, "err", err)
	}
}

// register returns the response to a REGISTER.
func (r *Registrar) register(req *sip.Request) *sip.Response {
	if r.closed.Load() {
		return sipmsg.NewResponse(req, 503, "Service Unavailable", "")
	}
	if req.Method != sip.REGISTER {
		return r.errorResponse(req, &sipmsg.Error{Code: 405, Reason: "Method Not Allowed", Allow: "REGISTER"})
	}
	to, callID, cseq := req.To(), req.CallID(), req.CSeq()
	if to == nil || callID == nil || cseq == nil {
		return r.errorResponse(req, errBadRequest("Missing To, Call-ID or CSeq"))
	}
	// Step 2: we support no extension a REGISTER could require.
	if required := sipmsg.ListTags(req, "Require"); len(required) > 0 {
		return r.errorResponse(req, &sipmsg.Error{Code: 420, Reason: "Bad Extension", Unsupported: strings.Join(required, ", ")})
	}
	// Step 3: authenticate.
	id, res, ok := r.digest.Authenticate(req, 401)
	if !ok {
		return res
	}
	// Steps 4-5: only the user itself may change its bindings (no
	// third-party registration), and only for a local account. The host of
	// To is not checked: phones set up with the server's IP address put that
	// there, and parley serves one domain.
	aor := to.Address.User
	if !id.Trusted && id.User != aor {
		r.log.Info("registrar: REGISTER for another user refused", "user", id.User, "aor", aor)
		return sipmsg.NewResponse(req, 403, "Forbidden", "")
	}
	if !r.digest.IsUser(aor) {
		return sipmsg.NewResponse(req, 404, "Not Found", "")
	}
	u, err := r.parseRegister(req, aor)
	if err != nil {
		return r.errorResponse(req, err)
	}
	now := r.now()
	bs, before, changed, err := r.loc.apply(u, now)
	if err != nil {
		return r.errorResponse(req, err)
	}
	if changed {
		r.markDirty(aor)
		// Info only when the set of contacts grows or shrinks; refreshes
		// (thousands a second) stay at Debug.
		level := slog.LevelDebug
		if len(bs) != before {
			level = slog.LevelInfo
		}
		r.log.Log(context.Background(), level, "registrar: bindings updated", "user", aor,
			"bindings", len(bs), "was", before, "source", u.source, "transport", u.transport)
	}
	return r.okResponse(req, bs, now)
}

// parseRegister validates the Contact and Expires headers (RFC 3261 §10.3
// step 6) without touching any binding.
func (r *Registrar) parseRegister(req *sip.Request, aor string) (*registerUpdate, error) {
	u := &registerUpdate{
		user:      aor,
		callID:    req.CallID().Value(),
		cseq:      req.CSeq().SeqNo,
		source:    req.Source(),
		transport: sipmsg.LowerTransport(req.Transport()),
	}
	// One pass over the headers; the first User-Agent and Expires count.
	hdrExpires, hasHdr, hasUA := -1, false, false
	var contacts []*sip.ContactHeader
	for _, h := range req.Headers() {
		switch name := h.Name(); {
		case strings.EqualFold(name, "Contact"):
			c, ok := h.(*sip.ContactHeader)
			if !ok {
				return nil, errBadRequest("Malformed Contact")
			}
			contacts = append(contacts, c)
		case !hasUA && strings.EqualFold(name, "User-Agent"):
			u.userAgent, hasUA = h.Value(), true
		case !hasHdr && strings.EqualFold(name, "Expires"):
			hdrExpires, hasHdr = parseExpires(h.Value()), true
		}
	}
	for _, c := range contacts {
		if c.Address.Wildcard {
			// §10.3 step 6: "*" only alone and only with Expires: 0.
			if len(contacts) != 1 || !hasHdr || hdrExpires != 0 {
				return nil, errBadRequest("Contact * Needs Expires: 0 And No Other Contact")
			}
			u.wildcard = true
			return u, nil
		}
	}
	for _, c := range contacts {
		e := hdrExpires
		if v, ok := param(c.Params, "expires"); ok {
			// A per-contact expires beats the Expires header (§10.2.1.1).
			e = parseExpires(v)
		}
		if e < 0 {
			e = defaultExpires
		}
		switch {
		case e == 0:
		case e < r.minExpires:
			return nil, &sipmsg.Error{Code: 423, Reason: "Interval Too Brief", MinExpires: r.minExpires}
		case e > r.maxExpires:
			e = r.maxExpires
		}
		q := 1.0
		if v, ok := param(c.Params, "q"); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && f <= 1 {
				q = f
			}
		}
		uri := c.Address
		u.contacts = append(u.contacts, contactUpdate{
			key:     contactKey(&uri),
			contact: uri.String(),
			expires: e,
			q:       q,
		})
	}
	return u, nil
}

// parseExpires reads delta-seconds. A malformed value counts as absent (-1),
// which becomes the default of 3600 (RFC 3261 §20.19 says to treat it so);
// values past 2^32-1 are capped as §20.19 and §10.2.1.1 allow.
func parseExpires(v string) int {
	v = strings.TrimSpace(v)
	if v == "" {
		return -1
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return math.MaxUint32
		}
		return -1
	}
	if n > math.MaxUint32 {
		return math.MaxUint32
	}
	return int(n)
}

// param finds a header parameter by case-insensitive name.
func param(p sip.HeaderParams, name string) (string, bool) {
	for _, kv := range p {
		if strings.EqualFold(kv.K, name) {
			return kv.V, true
		}
	}
	return "", false
}

// okResponse is the 200 of §10.3 step 8: every current binding with its
// remaining time, and a Date header.
func (r *Registrar) okResponse(req *sip.Request, bs []Binding, now time.Time) *sip.Response {
	res := sipmsg.NewResponse(req, 200, "OK", "")
	for _, b := range bs {
		left := int(math.Ceil(b.Expires.Sub(now).Seconds()))
		var v strings.Builder
		v.Grow(len(b.Contact) + 16)
		v.WriteByte('<')
		v.WriteString(b.Contact)
		v.WriteString(">;expires=")
		v.WriteString(strconv.Itoa(left))
		res.AppendHeader(sip.NewHeader("Contact", v.String()))
	}
	res.AppendHeader(sip.NewHeader("Date", r.date(now)))
	return res
}

// date formats now for the Date header, reusing the string within a
// second.
func (r *Registrar) date(now time.Time) string {
	sec := now.Unix()
	if d := r.lastDate.Load(); d != nil && d.sec == sec {
		return d.text
	}
	d := &formattedDate{sec: sec, text: now.UTC().Format(http.TimeFormat)}
	r.lastDate.Store(d)
	return d.text
}

type formattedDate struct {
	sec  int64
	text string
}

// errorResponse is the response for err: the status and headers of the
// *sipmsg.Error it carries, or a 500, which should not happen.
func (r *Registrar) errorResponse(req *sip.Request, err error) *sip.Response {
	var se *sipmsg.Error
	if !errors.As(err, &se) {
		r.log.Error("registrar: REGISTER failed", "err", err)
	}
	return sipmsg.Response(req, err, "")
}
