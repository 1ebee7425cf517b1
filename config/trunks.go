package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Trunk is an upstream provider parley registers with as a client and
// routes calls through (trunks[], issue 15).
type Trunk struct {
	// Name names the trunk in routes[].trunk, the metrics and the API.
	Name string `yaml:"name"`
	// Registrar is the provider's registrar and outbound proxy, host or
	// host:port (5060 when left out); calls through the trunk go there too.
	Registrar string `yaml:"registrar"`
	// Username and Password are the digest credentials the provider gave.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Expires is the registration's lifetime parley asks for, in seconds;
	// 0 asks for 3600.
	Expires int `yaml:"expires"`
	// Domain is the provider's domain, the host of the address of record
	// and of From (added by this build); empty: Registrar's host.
	Domain string `yaml:"domain"`
	// Inbound is the local user calls from the provider go to (added by
	// this build); empty: the Request-URI's user, or To's when the
	// Request-URI is the Contact parley registered.
	Inbound string `yaml:"inbound"`
	// Retry is the first wait after the provider refused the credentials
	// (added by this build); it doubles on each refusal up to 10m. 0: 30s.
	Retry time.Duration `yaml:"retry"`
}

// maxTrunkExpires bounds trunks[].expires: one day.
const maxTrunkExpires = 86400

// validateTrunks checks trunks[] and the routes' trunk names.
func (c *Config) validateTrunks(users map[string]bool) error {
	names := map[string]bool{}
	for i, t := range c.Trunks {
		key := fmt.Sprintf("trunks[%d]", i)
		if !validUser(t.Name) || len(t.Name) > 64 {
			return bad(key+".name", "%q: want 1 to 64 letters, digits or -_.", t.Name)
		}
		if names[t.Name] {
			return bad(key+".name", "%q is listed twice", t.Name)
		}
		names[t.Name] = true
		if _, _, err := SplitRegistrar(t.Registrar); err != nil {
			return bad(key+".registrar", "%q: %v", t.Registrar, err)
		}
		if !validUser(t.Username) {
			return bad(key+".username", "%q: want letters, digits or -_.!~*'()&=+$,;?/ and no spaces", t.Username)
		}
		if t.Password == "" || strings.ContainsAny(t.Password, "\r\n\"") {
			return bad(key+".password", "want a non-empty password on one line, without double quotes")
		}
		if t.Expires < 0 || t.Expires > maxTrunkExpires {
			return bad(key+".expires", "%d: want 1 to %d seconds (0: 3600)", t.Expires, maxTrunkExpires)
		}
		if d := t.Domain; d != "" && (strings.ContainsAny(d, "\" \t\r\n@;<>") || len(d) > 255) {
			return bad(key+".domain", "%q: want a domain without spaces", d)
		}
		if u := t.Inbound; u != "" && !users[u] {
			return bad(key+".inbound", "%q is not a user", u)
		}
		if t.Retry < 0 || t.Retry > 10*time.Minute {
			return bad(key+".retry", "%v: want 0 to 10m (0: 30s)", t.Retry)
		}
	}
	for i, r := range c.Routes {
		if r.Trunk != "" && !names[r.Trunk] {
			return bad(fmt.Sprintf("routes[%d].trunk", i), "%q is not a trunk (trunks[].name)", r.Trunk)
		}
	}
	return nil
}

// SplitRegistrar splits trunks[].registrar, host or host:port, into its
// host and port (5060 when left out).
func SplitRegistrar(s string) (host string, port int, err error) {
	if s == "" {
		return "", 0, fmt.Errorf("want host or host:port")
	}
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		// No port: a bare host name or IP address (an IPv6 one maybe in
		// brackets).
		host, p = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), "5060"
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not 1..65535", p)
	}
	if host == "" || len(host) > 255 || strings.ContainsAny(host, " \t\r\n\"@;<>/") {
		return "", 0, fmt.Errorf("want host or host:port")
	}
	return host, port, nil
}
