package trunk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/parley-sip/parley/config"
	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/dialog/resolve"
	"github.com/parley-sip/parley/dialog/sipmsg"
)

// Bounds on one attempt.
const (
	// attemptTimeout bounds one attempt, every round of it (Timer F is 32 s).
	attemptTimeout = 32 * time.Second
	// unregisterTimeout bounds the unregistration on shutdown.
	unregisterTimeout = 2 * time.Second
	// maxRounds bounds the REGISTERs of one attempt: a challenge (maybe a
	// stale one) and a 423 each take one more.
	maxRounds = 4
)

// registration is one trunk's registration: its config, its state (the
// machine, under mu) and what the REGISTERs share (RFC 3261 §10.2: one
// Call-ID, From tag and rising CSeq for every REGISTER to the registrar).
type registration struct {
	cfg    config.Trunk
	dns    *resolve.Resolver // sip.dns's resolver; nil: the system's
	domain string
	log    *slog.Logger
	m      *metrics
	jitter func() float64

	callID, tag string
	cseq        uint32

	mu  sync.Mutex
	mac machine
	// dest is the registrar's address as last resolved, contact the
	// Contact registered.
	dest    netip.AddrPort
	contact sip.Uri
	// chal is the registrar's last challenge, answered again (nc counting
	// up) on the next REGISTER so that a refresh needs no new challenge.
	chal   *digest.Challenge
	answer string
	nc     int
}

func newRegistration(cfg config.Trunk, log *slog.Logger, m *metrics, dns *resolve.Resolver) *registration {
	host, _, _ := config.SplitRegistrar(cfg.Registrar)
	domain := cfg.Domain
	if domain == "" {
		domain = host
		if strings.Contains(host, ":") {
			domain = "[" + host + "]"
		}
	}
	return &registration{
		cfg:    cfg,
		dns:    dns,
		domain: domain,
		log:    log.With("trunk", cfg.Name),
		m:      m,
		jitter: rand.Float64,
		callID: sipmsg.NewID() + "@parley",
		tag:    sipmsg.NewTag(),
		mac:    newMachine(time.Duration(cfg.Expires)*time.Second, cfg.Retry),
	}
}

// aor is the trunk's address of record: its user at the provider's domain.
func (r *registration) aor() sip.Uri {
	return sip.Uri{Scheme: "sip", User: r.cfg.Username, Host: r.domain}
}

// run registers, refreshes and retries until ctx ends, then unregisters.
func (r *registration) run(ctx context.Context, c dialog.TrunkClient) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			r.unregister(c)
			return
		case <-timer.C:
		}
		next := r.attempt(ctx, c)
		timer.Reset(time.Until(next))
	}
}

// maxErrorText bounds the error a trunk shows: a provider's reason
// phrase is the network's text.
const maxErrorText = 200

// attempt registers once and returns when the next attempt is due.
func (r *registration) attempt(stopping context.Context, c dialog.TrunkClient) time.Time {
	ctx, cancel := context.WithTimeout(stopping, attemptTimeout)
	defer cancel()
	granted, err := r.register(ctx, c, false)
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if err != nil && stopping.Err() != nil {
		return now // shutting down: no failure to show, run unregisters
	}
	if err != nil {
		was := r.mac.state
		why := err.Error()
		if len(why) > maxErrorText {
			why = why[:maxErrorText]
		}
		next := r.mac.failed(now, why, r.jitter())
		r.m.failure(r.cfg.Name)
		// Shown as failed from now on, though the provider may still
		// hold the last registration until it expires.
		r.m.set(r.cfg.Name, false)
		level := slog.LevelWarn
		if was == StateFailed {
			level = slog.LevelDebug // said already
		}
		r.log.Log(context.Background(), level, "trunk registration failed", "registrar", r.cfg.Registrar, "user", r.cfg.Username,
			"error", err, "retry_in", next.Sub(now).Round(time.Second).String())
		return next
	}
	was := r.mac.state
	next := r.mac.registered(now, granted)
	r.m.set(r.cfg.Name, true)
	if was != StateRegistered {
		r.log.Info("trunk registered", "registrar", r.cfg.Registrar, "user", r.cfg.Username, "expires", granted.String())
	}
	return next
}

// unregister removes parley's Contact (Expires: 0) when it is
// registered, bounded by unregisterTimeout.
func (r *registration) unregister(c dialog.TrunkClient) {
	r.mu.Lock()
	registered := r.mac.registeredAt(time.Now())
	r.mu.Unlock()
	if registered {
		ctx, cancel := context.WithTimeout(context.Background(), unregisterTimeout)
		_, err := r.register(ctx, c, true)
		cancel()
		if err != nil {
			r.log.Info("trunk not unregistered", "registrar", r.cfg.Registrar, "error", err)
		} else {
			r.log.Info("trunk unregistered", "registrar", r.cfg.Registrar)
		}
	}
	r.mu.Lock()
	r.mac.unregistered()
	r.mu.Unlock()
	r.m.set(r.cfg.Name, false)
}

// register sends REGISTERs until the registrar accepts one (a 2xx), or
// refuses for good; it answers its challenges and a 423. It returns the
// lifetime granted.
func (r *registration) register(ctx context.Context, c dialog.TrunkClient, remove bool) (time.Duration, error) {
	dst, err := destination(ctx, r.dns, r.cfg.Registrar)
	if err != nil {
		return 0, err
	}
	dest := dst.String()
	host, port, err := c.Local(dest)
	if err != nil {
		return 0, err
	}
	contact := sip.Uri{Scheme: "sip", User: r.cfg.Username, Host: host, Port: port}
	r.mu.Lock()
	r.dest, r.contact = dst, contact
	r.mu.Unlock()

	answered := false // the last REGISTER answered a fresh challenge
	for range maxRounds {
		req, err := r.request(contact, host, port, remove)
		if err != nil {
			return 0, err
		}
		res, err := c.Exchange(ctx, req, dest)
		if err != nil {
			return 0, fmt.Errorf("no answer from %s: %w", dest, err)
		}
		switch code := res.StatusCode; {
		case code >= 200 && code < 300:
			if remove {
				return 0, nil
			}
			return r.granted(res, contact)
		case code == 401 || code == 407:
			chal, answer, err := challengeOf(res)
			if err != nil {
				return 0, err
			}
			// A second challenge right after an answer refuses the
			// credentials, unless it says the nonce was only stale
			// (RFC 7616 §3.3).
			if answered && !chal.Stale {
				r.forget()
				return 0, fmt.Errorf("%w: %d %s", ErrRefused, code, res.Reason)
			}
			r.mu.Lock()
			r.chal, r.answer, r.nc = chal, answer, 0
			r.mu.Unlock()
			answered = true
		case code == 423:
			min := headerSeconds(res, "Min-Expires")
			r.mu.Lock()
			ok := !remove && r.mac.tooBrief(time.Duration(min)*time.Second)
			r.mu.Unlock()
			if !ok {
				return 0, fmt.Errorf("423 with Min-Expires %d parley cannot meet", min)
			}
			answered = false
		case code == 403:
			r.forget()
			return 0, fmt.Errorf("%w: 403 %s", ErrRefused, res.Reason)
		default:
			return 0, fmt.Errorf("registrar answered %d %s", code, res.Reason)
		}
	}
	return 0, errors.New("registrar kept asking")
}

// forget drops the registrar's challenge after it refused the answer.
func (r *registration) forget() {
	r.mu.Lock()
	r.chal = nil
	r.mu.Unlock()
}

// request builds the next REGISTER (RFC 3261 §10.2): the registrar's
// domain as Request-URI, the address of record in From and To, parley's
// Contact, and the answer to the registrar's last challenge.
func (r *registration) request(contact sip.Uri, host string, port int, remove bool) (*sip.Request, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cseq++
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: r.domain})
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: host, Port: port, Params: sip.NewParams()}
	via.Params.Add("branch", sipmsg.NewBranch())
	via.Params.Add("rport", "")
	req.AppendHeader(via)
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	from := &sip.FromHeader{Address: r.aor(), Params: sip.NewParams()}
	from.Params.Add("tag", r.tag)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: r.aor(), Params: sip.NewParams()})
	cid := sip.CallIDHeader(r.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: r.cseq, MethodName: sip.REGISTER})
	expires := int(r.mac.want / time.Second)
	if remove {
		expires = 0
	}
	req.AppendHeader(&sip.ContactHeader{Address: contact})
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	req.AppendHeader(sip.NewHeader("User-Agent", "parley"))
	if r.chal != nil {
		r.nc++
		h, err := authorization(r.chal, r.answer, req, r.cfg.Username, r.cfg.Password, r.nc)
		if err != nil {
			return nil, err
		}
		req.AppendHeader(h)
	}
	req.SetBody(nil)
	return req, nil
}

// granted reads the lifetime a 2xx gave parley's contact (RFC 3261
// §10.2.4): its Contact's expires parameter, else the Expires header,
// else what parley asked for. A 2xx that lists contacts but not parley's
// did not keep it.
func (r *registration) granted(res *sip.Response, contact sip.Uri) (time.Duration, error) {
	r.mu.Lock()
	want := r.mac.want
	r.mu.Unlock()
	secs := -1
	listed := false
	for i, h := range sipmsg.HeadersNamed(res, "Contact") {
		if i == maxChallenges*4 {
			break
		}
		ct, ok := h.(*sip.ContactHeader)
		if !ok {
			continue
		}
		listed = true
		if ct.Address.User != contact.User || !strings.EqualFold(ct.Address.Host, contact.Host) || ct.Address.Port != contact.Port {
			continue
		}
		secs = int(want / time.Second)
		if v, ok := ct.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				secs = n
			}
		}
		break
	}
	if secs < 0 {
		if listed {
			return 0, ErrNotRegistered
		}
		secs = int(want / time.Second)
		if n := headerSeconds(res, "Expires"); n >= 0 {
			secs = n
		}
	}
	if secs == 0 {
		return 0, ErrNotRegistered
	}
	return min(time.Duration(secs)*time.Second, maxExpires), nil
}

// headerSeconds reads a header of delta-seconds (Expires, Min-Expires);
// -1 when it is missing or not a number.
func headerSeconds(m sip.Message, name string) int {
	h := sipmsg.HeaderNamed(m, name)
	if h == nil {
		return -1
	}
	v := strings.TrimSpace(h.Value())
	if len(v) > 10 {
		return -1
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// status is the registration's snapshot.
func (r *registration) status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := Status{
		Name:      r.cfg.Name,
		Registrar: r.cfg.Registrar,
		Username:  r.cfg.Username,
		State:     r.mac.state,
		Failures:  r.mac.failures,
		LastError: r.mac.lastErr,
		Expires:   r.mac.expiresAt,
		Next:      r.mac.next,
	}
	if r.contact.Host != "" {
		st.Contact = r.contact.String()
	}
	return st
}
