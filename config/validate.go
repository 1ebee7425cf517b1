package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Listener is one parsed entry of sip.listen.
type Listener struct {
	// Network is udp, tcp or tls.
	Network string
	// Addr is host:port.
	Addr string
}

// KnownCodecs are the codec names rtp.codecs accepts.
var KnownCodecs = []string{"PCMU", "PCMA", "G722", "opus", "telephone-event"}

// Error names the key a configuration problem is about.
type Error struct {
	Key    string
	Reason string
}

func (e *Error) Error() string { return e.Key + ": " + e.Reason }

func bad(key, format string, args ...any) error {
	return &Error{Key: key, Reason: fmt.Sprintf(format, args...)}
}

// Listeners parses sip.listen. It assumes Validate passed.
func (c *Config) Listeners() []Listener {
	out := make([]Listener, 0, len(c.SIP.Listen))
	for _, l := range c.SIP.Listen {
		ln, _ := parseListen(l)
		out = append(out, ln)
	}
	return out
}

// TrustedPrefixes parses sip.trusted. It assumes Validate passed.
func (c *Config) TrustedPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(c.SIP.Trusted))
	for _, t := range c.SIP.Trusted {
		p, _ := parsePrefix(t)
		out = append(out, p)
	}
	return out
}

func parseListen(s string) (Listener, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Listener{}, err
	}
	network := strings.ToLower(u.Scheme)
	if network != "udp" && network != "tcp" && network != "tls" {
		return Listener{}, fmt.Errorf("scheme %q: want udp://, tcp:// or tls://", u.Scheme)
	}
	if network == "tls" && u.Port() == "" && u.Host != "" && !strings.HasSuffix(u.Host, ":") {
		u.Host = net.JoinHostPort(strings.Trim(u.Host, "[]"), DefaultTLSPort) // RFC 3261 §19.1.2
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return Listener{}, fmt.Errorf("want scheme://host:port: %v", err)
	}
	if host != "" && net.ParseIP(strings.Trim(host, "[]")) == nil {
		return Listener{}, fmt.Errorf("host %q is not an IP address", host)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return Listener{}, fmt.Errorf("port %q is not 0..65535", port)
	}
	if u.Path != "" || u.RawQuery != "" {
		return Listener{}, fmt.Errorf("want only scheme://host:port")
	}
	return Listener{Network: network, Addr: u.Host}, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither a CIDR network nor an IP address", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Validate checks every key and returns an *Error naming the first bad one.
func (c *Config) Validate() error {
	if len(c.SIP.Listen) == 0 {
		return bad("sip.listen", "at least one transport is needed")
	}
	for i, l := range c.SIP.Listen {
		if _, err := parseListen(l); err != nil {
			return bad(fmt.Sprintf("sip.listen[%d]", i), "%q: %v", l, err)
		}
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	if c.SIP.Realm == "" || strings.ContainsAny(c.SIP.Realm, "\" \t\r\n") {
		return bad("sip.realm", "must be a non-empty domain without spaces or quotes")
	}
	if a := c.SIP.PublicAddress; a != "" && net.ParseIP(a) == nil {
		return bad("sip.public_address", "%q is not an IP address", a)
	}
	for i, t := range c.SIP.Trusted {
		if _, err := parsePrefix(t); err != nil {
			return bad(fmt.Sprintf("sip.trusted[%d]", i), "%v", err)
		}
	}

	if err := c.validateDNS(); err != nil {
		return err
	}

	if len(c.SIP.AuthAlgorithms) == 0 {
		return bad("sip.auth_algorithms", "at least one of MD5, SHA-256 is needed")
	}
	for i, a := range c.SIP.AuthAlgorithms {
		if a != "MD5" && a != "SHA-256" {
			return bad(fmt.Sprintf("sip.auth_algorithms[%d]", i), "%q: want MD5 or SHA-256", a)
		}
	}

	if m := c.SIP.MaxMessageSize; m < 1500 || m > 1<<20 {
		return bad("sip.max_message_size", "%d: want 1500 to 1048576 bytes", m)
	}
	t := c.SIP.TCP
	if t.MaxConnections < 1 {
		return bad("sip.tcp.max_connections", "%d: want at least 1", t.MaxConnections)
	}
	if t.MaxPerSource < 1 || t.MaxPerSource > t.MaxConnections {
		return bad("sip.tcp.max_per_source", "%d: want 1 to sip.tcp.max_connections (%d)", t.MaxPerSource, t.MaxConnections)
	}
	// 0 turns a TCP deadline off; under a second it would cut phones off.
	if d := t.IdleTimeout; d != 0 && d < time.Second {
		return bad("sip.tcp.idle_timeout", "%s: want 0 (never) or at least 1s", d)
	}
	if d := t.FirstMessageTimeout; d != 0 && d < time.Second {
		return bad("sip.tcp.first_message_timeout", "%s: want 0 (no limit) or at least 1s", d)
	}

	if a := c.RTP.Address; a != "" && net.ParseIP(a) == nil {
		return bad("rtp.address", "%q is not an IP address (\"\": every address)", a)
	}
	if a := c.RTP.Address6; a != "" {
		if ip, err := netip.ParseAddr(a); err != nil || !ip.Is6() || ip.Is4In6() {
			return bad("rtp.address6", "%q is not an IPv6 address (\"\": every IPv6 address when rtp.address is \"\")", a)
		}
	}
	if c.RTP.PortMin < 1024 || c.RTP.PortMin > 65534 || c.RTP.PortMin%2 != 0 {
		return bad("rtp.port_min", "%d: want an even port from 1024 to 65534", c.RTP.PortMin)
	}
	if c.RTP.PortMax > 65535 || c.RTP.PortMax < c.RTP.PortMin+1 {
		return bad("rtp.port_max", "%d: want a port above rtp.port_min (%d), at most 65535", c.RTP.PortMax, c.RTP.PortMin)
	}
	if len(c.RTP.Codecs) == 0 {
		return bad("rtp.codecs", "at least one codec is needed")
	}
	for i, name := range c.RTP.Codecs {
		if canonicalCodec(name) == "" {
			return bad(fmt.Sprintf("rtp.codecs[%d]", i), "%q: known codecs are %s", name, strings.Join(KnownCodecs, ", "))
		}
	}
	if c.RTP.Timeout < 0 {
		return bad("rtp.timeout", "must not be negative (0: never)")
	}
	switch c.RTP.SRTP {
	case SRTPOff, SRTPOptional, SRTPMandatory:
	default:
		return bad("rtp.srtp", "%q: want off, optional or mandatory", c.RTP.SRTP)
	}

	s := c.Sessions
	if s.MinSE < 90 {
		return bad("sessions.min_se", "%d: RFC 4028 forbids a Min-SE under 90 seconds", s.MinSE)
	}
	if s.Expires < s.MinSE {
		return bad("sessions.expires", "%d: must be at least sessions.min_se (%d)", s.Expires, s.MinSE)
	}
	if s.MaxDuration < 0 {
		return bad("sessions.max_duration", "must not be negative (0: no limit)")
	}
	if s.MaxCalls < 0 {
		return bad("sessions.max_calls", "must not be negative (0 means no limit)")
	}
	if s.MaxCallsPerUser < 0 {
		return bad("sessions.max_calls_per_user", "must not be negative (0 means no limit)")
	}
	if s.DrainGrace < 0 {
		return bad("sessions.drain_grace", "must not be negative (0: hang up at once)")
	}

	if err := c.validateCluster(); err != nil {
		return err
	}
	if err := c.validateCapture(); err != nil {
		return err
	}

	r := c.Registrar
	if r.MinExpires < 1 {
		return bad("registrar.min_expires", "%d: must be at least 1 second", r.MinExpires)
	}
	if r.MaxExpires < r.MinExpires {
		return bad("registrar.max_expires", "%d: must be at least registrar.min_expires (%d)", r.MaxExpires, r.MinExpires)
	}
	if r.Qualify < 0 {
		return bad("registrar.qualify", "must not be negative (0 turns it off)")
	}
	if r.MaxContacts < 1 {
		return bad("registrar.max_contacts", "%d: want at least 1", r.MaxContacts)
	}

	if c.Admin.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Admin.Listen); err != nil {
			return bad("admin.listen", "%q: want host:port", c.Admin.Listen)
		}
	}

	if tok := c.Admin.Token; tok != "" && (len(tok) < 16 || strings.ContainsAny(tok, " \t\r\n")) {
		return bad("admin.token", "want at least 16 characters without spaces")
	}

	sec := c.Security
	if sec.BanAfter < 0 {
		return bad("security.ban_after", "must not be negative (0 turns bans off)")
	}
	if sec.BanAfter > 0 && sec.BanWindow <= 0 {
		return bad("security.ban_window", "must be positive when security.ban_after is set")
	}
	if sec.BanAfter > 0 && sec.BanTime <= 0 {
		return bad("security.ban_time", "must be positive when security.ban_after is set")
	}
	if sec.Rate < 0 {
		return bad("security.rate", "must not be negative (0: no limit)")
	}
	if sec.Burst < 0 || (sec.Rate > 0 && sec.Burst < 1) {
		return bad("security.burst", "%d: want at least 1 when security.rate is set", sec.Burst)
	}
	for i, ua := range sec.DropUserAgents {
		if strings.TrimSpace(ua) == "" {
			return bad(fmt.Sprintf("security.drop_user_agents[%d]", i), "must not be empty")
		}
	}

	seen := map[string]bool{}
	for i, u := range c.Users {
		key := fmt.Sprintf("users[%d]", i)
		if !validUser(u.Username) {
			return bad(key+".username", "%q: want letters, digits or -_.!~*'()&=+$,;?/ and no spaces", u.Username)
		}
		if seen[u.Username] {
			return bad(key+".username", "%q is listed twice", u.Username)
		}
		seen[u.Username] = true
		if strings.ContainsAny(u.Password, "\r\n") {
			return bad(key+".password", "must be on one line")
		}
		if h := u.HA1; h != "" && !isHex(h, 32) {
			return bad(key+".ha1", "want 32 hex digits: MD5(username:realm:password)")
		}
		if h := u.HA1SHA256; h != "" && !isHex(h, 64) {
			return bad(key+".ha1_sha256", "want 64 hex digits: SHA-256(username:realm:password)")
		}
		if u.Password != "" && (u.HA1 != "" || u.HA1SHA256 != "") {
			return bad(key+".password", "give a password or ha1/ha1_sha256, not both")
		}
		switch u.DTMFMode {
		case "", DTMFAuto, DTMFRFC4733, DTMFInfo:
		default:
			return bad(key+".dtmf_mode", "%q: want auto, rfc4733 or info", u.DTMFMode)
		}
		switch u.SRTP {
		case "", SRTPOff, SRTPOptional, SRTPMandatory:
		default:
			return bad(key+".srtp", "%q: want off, optional or mandatory (empty: rtp.srtp)", u.SRTP)
		}
	}
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		if _, err := regexp.Compile(r.Match); err != nil || r.Match == "" {
			return bad(key+".match", "%q is not a regular expression: %v", r.Match, err)
		}
		if !strings.HasPrefix(r.Target, "sip:") && !strings.HasPrefix(r.Target, "sips:") {
			return bad(key+".target", "%q: want a sip: URI", r.Target)
		}
	}
	if e := c.Services.Echo; e != "" {
		if !validUser(e) {
			return bad("services.echo", "%q is not a valid user part", e)
		}
		if seen[e] {
			return bad("services.echo", "%q is also a user", e)
		}
	}
	if err := c.validatePaging(seen); err != nil {
		return err
	}
	if err := c.validateTrunks(seen); err != nil {
		return err
	}

	if p := c.CDR.Path; p != "" && (strings.HasSuffix(p, "/") || strings.ContainsRune(p, 0)) {
		return bad("cdr.path", "%q: want a file name", p)
	}
	if err := c.validateRooms(seen); err != nil {
		return err
	}

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return bad("log.format", "%q: want text or json", c.Log.Format)
	}
	return nil
}

func canonicalCodec(name string) string {
	for _, k := range KnownCodecs {
		if strings.EqualFold(k, name) {
			return k
		}
	}
	return ""
}

// validUser accepts the unreserved and user-unreserved characters of RFC 3261
// §25.1 for a user part (escapes are not needed for account names).
func validUser(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("-_.!~*'()&=+$,;?/", r):
		default:
			return false
		}
	}
	return true
}

// isHex reports whether s is n hex digits.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}

// validateCluster checks store.redis, node.id and node.heartbeat.
func (c *Config) validateCluster() error {
	if u := c.Store.Redis; u != "" {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "redis" && p.Scheme != "rediss") || p.Host == "" {
			return bad("store.redis", "%q: want redis://host:port/db", u)
		}
	}
	if id := c.Node.ID; len(id) > 64 || strings.ContainsAny(id, " \t\r\n:*?[]") {
		return bad("node.id", "%q: want at most 64 characters, no spaces, colons or glob characters", id)
	}
	if h := c.Node.Heartbeat; h < 100*time.Millisecond || h > time.Minute {
		return bad("node.heartbeat", "%v: want between 100ms and 1m", h)
	}
	return nil
}

// maxPagingMembers bounds one paging group: each member's phones are
// called at once.
const maxPagingMembers = 100

// validatePaging checks services.paging: each number a valid user part
// that is no user and no other service, each member a local user.
func (c *Config) validatePaging(users map[string]bool) error {
	numbers := make([]string, 0, len(c.Services.Paging))
	for n := range c.Services.Paging {
		numbers = append(numbers, n)
	}
	slices.Sort(numbers)
	for _, n := range numbers {
		key := "services.paging." + n
		switch {
		case !validUser(n):
			return bad("services.paging", "%q is not a valid user part", n)
		case users[n]:
			return bad(key, "%q is also a user", n)
		case n == c.Services.Echo:
			return bad(key, "%q is also services.echo", n)
		}
		if _, ok := c.Services.Rooms[n]; ok {
			return bad(key, "%q is also a room (services.rooms)", n)
		}
		if _, ok := c.Services.Playback[n]; ok {
			return bad(key, "%q is also services.playback", n)
		}
		members := c.Services.Paging[n]
		if len(members) == 0 || len(members) > maxPagingMembers {
			return bad(key, "a paging group needs 1 to %d members, has %d", maxPagingMembers, len(members))
		}
		for i, m := range members {
			if !users[m] {
				return bad(fmt.Sprintf("%s[%d]", key, i), "%q is not a user", m)
			}
		}
	}
	return nil
}
