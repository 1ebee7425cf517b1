package registrar

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"hash"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// AuthObserver hears how each source fares with authentication: the
// guard that bans password guessers and sources that never answer their
// challenges plugs in here (cmd/parley wires it).
type AuthObserver interface {
	// Challenged: src was sent a challenge.
	Challenged(src netip.Addr)
	// Failed: src answered with a wrong digest, for an unknown user or a
	// replayed nonce count.
	Failed(src netip.Addr, user string)
	// Succeeded: src answered a challenge correctly.
	Succeeded(src netip.Addr)
}

// Identity is who sent a request.
type Identity struct {
	// User is the authenticated user name, or for a trusted request the user
	// part of From.
	User string
	// Trusted is true when the request came from a trusted network and was
	// not challenged.
	Trusted bool
}

// Digest authenticates SIP requests with HTTP digest (RFC 3261 §22 with the
// algorithms of RFC 7616 and RFC 8760). It is safe for concurrent use.
type Digest struct {
	realm      string
	users      map[string]userKeys
	trusted    []netip.Prefix
	algorithms []string
	nonces     nonces
	counts     nonceCounts
	now        func() time.Time
	log        *slog.Logger
	observer   AuthObserver
	metricsReg prometheus.Registerer
	failures   *prometheus.CounterVec
	fallback   fallbacks
}

// userKeys holds H(username:realm:password) for each algorithm, computed
// once so a REGISTER costs two hashes, not three, or given in the config
// (users[].ha1, users[].ha1_sha256); an empty one never matches.
type userKeys struct {
	md5, sha256 string
}

// NewDigest builds the authenticator for realm. users maps user name to
// password; requests whose source address lies in one of trusted are not
// challenged.
func NewDigest(realm string, users map[string]string, trusted []netip.Prefix, opts ...DigestOption) (*Digest, error) {
	if realm == "" {
		return nil, ErrNoRealm
	}
	d := &Digest{
		realm:      realm,
		users:      make(map[string]userKeys, len(users)),
		trusted:    append([]netip.Prefix(nil), trusted...),
		algorithms: DefaultAlgorithms(),
		nonces:     nonces{lifetime: DefaultNonceLifetime},
		now:        time.Now,
		log:        slog.New(slog.DiscardHandler),
		failures:   newAuthFailures(),
	}
	for u, pw := range users {
		if pw == "" {
			return nil, fmt.Errorf("%w: user %q has an empty password", ErrBadOption, u)
		}
		d.users[u] = userKeys{
			md5:    hashJoin(md5.New(), u, realm, pw),
			sha256: hashJoin(sha256.New(), u, realm, pw),
		}
	}
	for _, o := range opts {
		if err := o(d); err != nil {
			return nil, err
		}
	}
	d.counts.lifetime = d.nonces.lifetime
	if d.nonces.secret == nil {
		d.nonces.secret = make([]byte, 32)
		if _, err := rand.Read(d.nonces.secret); err != nil {
			return nil, fmt.Errorf("registrar: nonce secret: %w", err)
		}
	}
	if d.metricsReg != nil {
		if err := d.metricsReg.Register(d.failures); err != nil {
			return nil, fmt.Errorf("registrar: register %s: %w", metricAuthFailures, err)
		}
	}
	return d, nil
}

// Realm returns the digest realm, which is also the local domain.
func (d *Digest) Realm() string { return d.realm }

// IsUser reports whether user is a local account.
func (d *Digest) IsUser(user string) bool {
	_, ok := d.users[user]
	return ok
}

// IsTrusted reports whether a request from source ("ip:port" or "ip") comes
// from a trusted network.
func (d *Digest) IsTrusted(source string) bool {
	if len(d.trusted) == 0 {
		return false
	}
	var addr netip.Addr
	if ap, err := netip.ParseAddrPort(source); err == nil {
		addr = ap.Addr()
	} else if a, err := netip.ParseAddr(source); err == nil {
		addr = a
	} else {
		return false
	}
	addr = addr.Unmap()
	for _, p := range d.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Authenticate checks the Authorization (code 401) or Proxy-Authorization
// (code 407) header of req.
//
// With ok true, id is the authenticated user, or for a request from a
// trusted network the From user with Trusted set. With ok false, res is the
// complete response to send: a 401/407 challenge offering every configured
// algorithm (stale=true when a correct answer used an expired nonce), or 400
// for malformed credentials or a digest uri that is not the Request-URI.
func (d *Digest) Authenticate(req *sip.Request, code int) (id Identity, res *sip.Response, ok bool) {
	if code != 407 {
		code = 401
	}
	if d.IsTrusted(req.Source()) {
		user := ""
		if f := req.From(); f != nil {
			user = f.Address.User
		}
		return Identity{User: user, Trusted: true}, nil, true
	}
	cred := d.credentials(req, code)
	if cred == nil {
		if len(d.algorithms) > 1 {
			d.fallback.unanswered(req.Source(), sipmsg.CallID(req), d.now())
		}
		return Identity{}, d.challenge(req, code, false), false
	}
	return d.check(req, code, cred)
}

// check checks credentials answering one of our challenges: their fields,
// the nonce (ours, issued for this source and call, fresh), the digest, and
// that the nonce count was not answered before.
func (d *Digest) check(req *sip.Request, code int, cred *digest.Credentials) (Identity, *sip.Response, bool) {
	if len(d.algorithms) > 1 {
		d.fallback.answered(req.Source())
	}
	if err := d.checkFields(req, cred); err != nil {
		return Identity{}, sipmsg.Response(req, err, ""), false
	}
	keys, known := d.users[cred.Username]
	alg := canonicalAlgorithm(cred.Algorithm)
	if !d.offers(alg) {
		return Identity{}, d.challenge(req, code, false), false
	}
	now := d.now()
	state, mac, issued := d.nonces.check(cred.Nonce, now, d.binding(req, code))
	if state == nonceBad {
		// Not a nonce we issued for this source and call: a forgery, a
		// captured header replayed elsewhere, or what a phone holds
		// across our restart. The answer proves nothing; challenge again.
		return Identity{}, d.challenge(req, code, false), false
	}
	if !known || !d.responseOK(req, cred, alg, keys) {
		d.failed(req, cred.Username, "wrong password or unknown user")
		return Identity{}, d.challenge(req, code, false), false
	}
	if state == nonceStale {
		// RFC 7616 §3.3: stale only when the digest was right for the old
		// nonce, so the client retries without asking its user.
		return Identity{}, d.challenge(req, code, true), false
	}
	switch d.counts.use(mac, issued, cred.Nc, now) {
	case nonceReplay:
		// The same nonce and count again: a replayed Authorization
		// (RFC 7616 §3.4), since a phone counts up.
		d.failed(req, cred.Username, "nonce count replayed")
		return Identity{}, d.challenge(req, code, false), false
	case nonceTooOld:
		return Identity{}, d.challenge(req, code, true), false
	}
	if d.observer != nil {
		d.observer.Succeeded(sourceIP(req))
	}
	if d.log.Enabled(context.Background(), slog.LevelDebug) {
		d.log.Debug("auth ok", "source", req.Source(), "user", cred.Username, "algorithm", alg, "method", string(req.Method))
	}
	return Identity{User: cred.Username}, nil, true
}

// failed records an authentication failure: the metric, the observer (for
// bans), and one log line a fail2ban filter can match (see
// testcalls/fail2ban/parley.conf):
//
//	level=WARN msg="auth failed" source_ip=192.0.2.7 user=1001 method=REGISTER reason="..."
func (d *Digest) failed(req *sip.Request, user, reason string) {
	d.failures.WithLabelValues(methodLabel(req.Method)).Inc()
	ip := sourceIP(req)
	if d.observer != nil {
		d.observer.Failed(ip, user)
	}
	d.log.Warn("auth failed", "source_ip", ip.String(), "user", user, "method", string(req.Method), "reason", reason)
}

// binding is what a nonce is issued for and checked against: the status
// of the challenge (a REGISTER's nonce does not answer a call's), the
// source address (RFC 7616 leaves it to the server; it makes a captured
// header useless from anywhere else), and for a call (407) its Call-ID and
// From tag, so a nonce answers one call only.
func (d *Digest) binding(req *sip.Request, code int) []byte {
	b := make([]byte, 0, 64)
	b = append(b, byte(code>>8), byte(code))
	ip := sourceIP(req).As16()
	b = append(b, ip[:]...)
	if code == 407 {
		b = append(b, sipmsg.CallID(req)...)
		b = append(b, 0)
		if f := req.From(); f != nil {
			b = append(b, sipmsg.Tag(f.Params)...)
		}
	}
	return b
}

// sourceIP is the address req came from (the zero Addr when unknown).
func sourceIP(req *sip.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(req.Source()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// Precheck answers what needs no state and no password: whether req,
// which has not been authenticated yet, can possibly carry valid
// credentials. With ok false, res is a challenge to send (no credentials,
// a nonce we did not issue for this source and call, an algorithm we do
// not offer), and the caller may send it without a transaction. With ok
// true, Authenticate must still check the credentials; Precheck counts no
// failure and uses up no nonce count, so it may run before it.
func (d *Digest) Precheck(req *sip.Request, code int) (res *sip.Response, ok bool) {
	if code != 407 {
		code = 401
	}
	if d.IsTrusted(req.Source()) {
		return nil, true
	}
	cred := d.credentials(req, code)
	if cred == nil {
		if len(d.algorithms) > 1 {
			d.fallback.unanswered(req.Source(), sipmsg.CallID(req), d.now())
		}
		return d.challenge(req, code, false), false
	}
	if d.checkFields(req, cred) != nil {
		return nil, true // Authenticate answers 400
	}
	if !d.offers(canonicalAlgorithm(cred.Algorithm)) {
		return d.challenge(req, code, false), false
	}
	if state, _, _ := d.nonces.check(cred.Nonce, d.now(), d.binding(req, code)); state == nonceBad {
		return d.challenge(req, code, false), false
	}
	return nil, true
}

// credentials returns the first digest credentials of req for our realm, or
// nil when there are none (which calls for a challenge, not an error).
func (d *Digest) credentials(req *sip.Request, code int) *digest.Credentials {
	name := "Authorization"
	if code == 407 {
		name = "Proxy-Authorization"
	}
	var first *digest.Credentials
	for _, h := range req.Headers() {
		if !strings.EqualFold(h.Name(), name) {
			continue
		}
		v := h.Value()
		if !digest.IsDigest(v) {
			continue
		}
		c, err := parseCredentials(v)
		if err != nil {
			// Keep something so checkFields can answer 400.
			if first == nil {
				first = &digest.Credentials{Realm: d.realm}
			}
			continue
		}
		if c.Realm == d.realm {
			return c
		}
	}
	return first
}

// checkFields enforces what RFC 7616 §3.4 requires of an answer to our
// challenge (we always send qop=auth) and RFC 7616 §3.4.6 / RFC 2617
// §3.2.2.5: the digest uri must be the Request-URI, else 400.
func (d *Digest) checkFields(req *sip.Request, c *digest.Credentials) *sipmsg.Error {
	switch {
	case c.Username == "" || c.Nonce == "" || c.URI == "" || c.Response == "":
		return errBadRequest("Incomplete Authorization")
	case !strings.EqualFold(c.QOP, "auth"):
		return errBadRequest("Authorization Needs qop=auth")
	case c.Nc <= 0 || c.Cnonce == "":
		return errBadRequest("Authorization Needs nc and cnonce")
	}
	var u sip.Uri
	if err := sip.ParseUri(c.URI, &u); err != nil || !sameURI(&u, &req.Recipient) {
		return errBadRequest("Authorization URI Mismatch")
	}
	return nil
}

func (d *Digest) offers(alg string) bool {
	for _, a := range d.algorithms {
		if a == alg {
			return true
		}
	}
	return false
}

// responseOK recomputes the qop=auth response of RFC 7616 §3.4.1 with the
// stored H(A1) and compares it in constant time:
//
//	response = H(H(A1) ":" nonce ":" nc ":" cnonce ":" "auth" ":" H(method ":" uri))
//
// It hashes into stack buffers; the unit tests check it against
// icholy/digest.
func (d *Digest) responseOK(req *sip.Request, c *digest.Credentials, alg string, keys userKeys) bool {
	sha, ha1 := alg == AlgorithmSHA256, keys.md5
	if sha {
		ha1 = keys.sha256
	}
	if ha1 == "" {
		return false // a user given only the other algorithm's HA1
	}
	sum := func(dst, p []byte) []byte {
		if sha {
			s := sha256.Sum256(p)
			return append(dst, s[:]...)
		}
		s := md5.Sum(p)
		return append(dst, s[:]...)
	}
	var got [sha256.Size]byte
	if len(c.Response) > 2*len(got) {
		return false
	}
	n, err := hex.Decode(got[:], []byte(c.Response))
	if err != nil {
		return false
	}
	var buf [512]byte
	b := append(buf[:0], req.Method...)
	b = append(b, ':')
	b = append(b, c.URI...)
	var ha2 [2 * sha256.Size]byte
	h2 := sum(ha2[:0], b)
	b = append(buf[:0], ha1...)
	b = append(b, ':')
	b = append(b, c.Nonce...)
	b = append(b, ':')
	b = appendNC(b, c.Nc)
	b = append(b, ':')
	b = append(b, c.Cnonce...)
	b = append(b, ":auth:"...)
	b = hex.AppendEncode(b, h2)
	var want [sha256.Size]byte
	w := sum(want[:0], b)
	return n == len(w) && subtle.ConstantTimeCompare(got[:n], w) == 1
}

// appendNC appends the nonce count as the eight hex digits the response
// hash covers.
func appendNC(b []byte, nc int) []byte {
	var d [8]byte
	for i := len(d) - 1; i >= 0; i-- {
		d[i] = "0123456789abcdef"[nc&0xf]
		nc >>= 4
	}
	return append(b, d[:]...)
}

// challenge builds a 401/407 with one WWW-Authenticate (or
// Proxy-Authenticate) header per algorithm, in the configured order, all
// with the same nonce.
func (d *Digest) challenge(req *sip.Request, code int, stale bool) *sip.Response {
	reason, name := "Unauthorized", "WWW-Authenticate"
	if code == 407 {
		reason, name = "Proxy Authentication Required", "Proxy-Authenticate"
	}
	res := sipmsg.NewResponse(req, code, reason, "")
	now := d.now()
	nonce := d.nonces.issue(now, d.binding(req, code))
	if d.observer != nil {
		d.observer.Challenged(sourceIP(req))
	}
	algs := d.algorithms
	if len(algs) > 1 {
		ua := userAgent(req)
		switch {
		case d.fallback.single(req.Source(), now) || md5OnlyAgent(ua):
			algs = []string{d.singleAlgorithm()}
		case sha256FirstAgent(ua) && d.offers(AlgorithmSHA256) && algs[0] != AlgorithmSHA256:
			algs = append([]string{AlgorithmSHA256}, slices.DeleteFunc(slices.Clone(algs), func(a string) bool { return a == AlgorithmSHA256 })...)
			d.fallback.challenged(req.Source(), sipmsg.CallID(req), now)
		default:
			d.fallback.challenged(req.Source(), sipmsg.CallID(req), now)
		}
	}
	for _, alg := range algs {
		res.AppendHeader(sip.NewHeader(name, challengeValue(d.realm, nonce, alg, stale)))
	}
	return res
}

// canonicalAlgorithm maps the algorithm parameter to our names; absent
// means MD5 (RFC 7616 §3.3).
func canonicalAlgorithm(a string) string {
	switch strings.ToUpper(a) {
	case "", AlgorithmMD5:
		return AlgorithmMD5
	case AlgorithmSHA256:
		return AlgorithmSHA256
	}
	return a
}

// sameURI compares the digest uri with the Request-URI loosely after RFC
// 3261 §19.1.4: scheme and host case-insensitively, port exactly.
// Parameters are ignored, because clients disagree on whether the digest uri
// carries them, and so is a digest uri without a user part: SIPp 3.6 always
// sends uri="sip:host:port" for an INVITE to sip:user@host:port, as do some
// desk phones. The response hash covers the uri as sent, so this loosening
// only decides which uris are acceptable to hash, not whether the password
// is right.
func sameURI(digestURI, reqURI *sip.Uri) bool {
	return strings.EqualFold(scheme(digestURI), scheme(reqURI)) &&
		(digestURI.User == reqURI.User || digestURI.User == "") &&
		strings.EqualFold(strings.Trim(digestURI.Host, "[]"), strings.Trim(reqURI.Host, "[]")) &&
		digestURI.Port == reqURI.Port
}

func scheme(u *sip.Uri) string {
	if u.Scheme == "" {
		return "sip"
	}
	return u.Scheme
}

func hashJoin(h hash.Hash, parts ...string) string {
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{':'})
		}
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// singleAlgorithm is what a client that cannot take several challenges is
// offered: MD5 when configured, as the one every client knows.
func (d *Digest) singleAlgorithm() string {
	if d.offers(AlgorithmMD5) {
		return AlgorithmMD5
	}
	return d.algorithms[0]
}

func userAgent(req *sip.Request) string {
	if h := sipmsg.HeaderNamed(req, "User-Agent"); h != nil {
		return h.Value()
	}
	return ""
}
