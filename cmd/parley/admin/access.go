package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// checkAccess puts the two checks every request passes before the routes: its
// Host must be one of the listener's own names (hostCheck), and a request
// that may change state, any method but GET and HEAD, must carry the
// admin token (bearer). /healthz and /readyz skip the Host check, so probes
// reach them by any address; they tell nothing a web page could misuse.
func (s *Server) checkAccess(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" && !s.hosts.allows(r.Host) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("Host %q is not a name of this admin server; use the address in admin.listen, localhost or 127.0.0.1", r.Host))
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if msg, ok := s.token.check(r); !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="parley"`)
				writeError(w, http.StatusUnauthorized, msg)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// bearer checks the token of requests that change state (RFC 6750 §2.1).
type bearer struct {
	// sum is the SHA-256 of the token: comparing sums of equal length
	// in constant time tells an attacker nothing, not even the length.
	sum [sha256.Size]byte
	set bool
}

func newBearer(token string) bearer {
	if token == "" {
		return bearer{}
	}
	return bearer{sum: sha256.Sum256([]byte(token)), set: true}
}

// check reports whether r carries the token, and if not, why, for an
// operator to read.
func (b bearer) check(r *http.Request) (string, bool) {
	if !b.set {
		return "this admin server takes no changes: it was given no admin token", false
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return "this request changes state and needs the admin token: Authorization: Bearer <admin.token, or the admin-token file in store.path>", false
	}
	scheme, tok, _ := strings.Cut(auth, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "the admin token goes in Authorization: Bearer <token>", false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	if subtle.ConstantTimeCompare(sum[:], b.sum[:]) != 1 {
		return "wrong admin token", false
	}
	return "", true
}

// hostCheck accepts a Host header naming the listener itself: a page that
// DNS rebinding points at the listener sends its own name, and is refused.
type hostCheck struct {
	// port is the port a Host must carry (80 when it gives none); empty
	// accepts any.
	port string
	// names are host names (lower case) and ips addresses accepted.
	names map[string]bool
	ips   map[netip.Addr]bool
	// anyLocal also accepts every address of this machine's interfaces,
	// for a listener on 0.0.0.0 or ::.
	anyLocal bool
}

// newHostCheck returns the check for a listener configured as addr
// (admin.listen) and bound to bound: the configured host, the bound
// address, localhost, 127.0.0.1 and ::1, each with the bound port, and
// with a wildcard address any local interface's. With bound nil (a Server
// that does not listen) it accepts the loopback names on any port.
func newHostCheck(addr string, bound net.Addr) hostCheck {
	h := hostCheck{
		names: map[string]bool{"localhost": true},
		ips:   map[netip.Addr]bool{netip.IPv6Loopback(): true, netip.AddrFrom4([4]byte{127, 0, 0, 1}): true},
	}
	tcp, ok := bound.(*net.TCPAddr)
	if !ok {
		return h
	}
	h.port = fmt.Sprint(tcp.Port)
	if ip, ok := netip.AddrFromSlice(tcp.IP); ok {
		h.addIP(ip)
	}
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip, err := netip.ParseAddr(host); err == nil {
			h.addIP(ip)
		} else if host != "" {
			h.names[strings.ToLower(host)] = true
		}
	}
	return h
}

// addIP accepts ip, or for a wildcard address every local one.
func (h *hostCheck) addIP(ip netip.Addr) {
	ip = ip.Unmap()
	if ip.IsUnspecified() {
		h.anyLocal = true
		return
	}
	h.ips[ip] = true
}

// allows reports whether the Host header host names the listener.
func (h hostCheck) allows(host string) bool {
	name, port, err := net.SplitHostPort(host)
	if err != nil {
		name, port = host, "80" // no port: HTTP's default
		if strings.HasPrefix(name, "[") && strings.HasSuffix(name, "]") {
			name = name[1 : len(name)-1]
		}
	}
	if name == "" || (h.port != "" && port != h.port) {
		return false
	}
	ip, err := netip.ParseAddr(name)
	if err != nil {
		return h.names[strings.ToLower(name)]
	}
	ip = ip.WithZone("").Unmap()
	if h.ips[ip] {
		return true
	}
	return h.anyLocal && isLocalAddr(ip)
}

// isLocalAddr reports whether ip is an address of one of this machine's
// interfaces. It asks each time, as addresses come and go.
func isLocalAddr(ip netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		if local, ok := netip.AddrFromSlice(n.IP); ok && local.Unmap() == ip {
			return true
		}
	}
	return false
}
