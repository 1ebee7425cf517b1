package dialog

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/resolve"
	"github.com/parley-sip/parley/dialog/sipmsg"
)

// fakeResolver answers from a map of host to targets or error, and
// records the hosts it was asked for.
type fakeResolver struct {
	targets map[string][]resolve.Target
	errs    map[string]error
	asked   []string
}

func (f *fakeResolver) Resolve(_ context.Context, u sip.Uri) ([]resolve.Target, error) {
	f.asked = append(f.asked, u.Host)
	if err := f.errs[u.Host]; err != nil {
		return nil, err
	}
	return f.targets[u.Host], nil
}

func tgt(transport, addr string) resolve.Target {
	return resolve.Target{Transport: transport, Addr: netip.MustParseAddrPort(addr)}
}

// A route's host name gives the first target with the others as its
// alternatives, less those parley cannot reach (no listener, another IP
// family than the first); DNS failures are a 404 or a 503 naming the name.
func TestRouteTargetDNS(t *testing.T) {
	dns := &fakeResolver{
		targets: map[string][]resolve.Target{
			"pbx.test": {
				tgt("udp", "10.0.0.1:5060"),
				tgt("tls", "10.0.0.3:5061"),
				tgt("tcp", "10.0.0.2:5070"),
				tgt("udp", "[2001:db8::1]:5060"),
			},
			"six.test": {tgt("udp", "[2001:db8::1]:5080")},
			"tls.test": {tgt("tls", "10.0.0.3:5061")},
		},
		errs: map[string]error{
			"nx.test":   &resolve.Error{Name: "nx.test", Err: resolve.ErrNoSuchName},
			"slow.test": &resolve.Error{Name: "slow.test", Err: resolve.ErrServerFailure},
		},
	}
	s := newTestServer(t, `
routes:
  - {match: '^1(\d+)$', target: 'sip:$1@pbx.test'}
  - {match: '^2(\d+)$', target: 'sip:$1@six.test'}
  - {match: '^3(\d+)$', target: 'sip:$1@nx.test'}
  - {match: '^4(\d+)$', target: 'sip:$1@slow.test'}
  - {match: '^5(\d+)$', target: 'sip:$1@tls.test'}
  - {match: '^6(\d+)$', target: 'sip:$1@127.0.0.1:5070'}
`, WithResolver(dns))
	tests := []struct {
		user    string
		code    int
		warning string
		dests   []string // the target, then its alternatives
	}{
		{user: "1100", dests: []string{"udp 10.0.0.1:5060", "tcp 10.0.0.2:5070"}},
		{user: "2100", dests: []string{"udp [2001:db8::1]:5080"}},
		{user: "3100", code: 404, warning: "nx.test"},
		{user: "4100", code: 503, warning: "slow.test"},
		{user: "5100", code: 503, warning: "tls.test"},
		{user: "6100", dests: []string{"udp 127.0.0.1:5070"}},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			got, err := s.resolve(sip.Uri{Scheme: "sip", User: tt.user, Host: "parley.lab"})
			if tt.code != 0 {
				se := sipmsg.ErrorFor(err)
				if err == nil || se.Code != tt.code || !strings.Contains(se.Warning, tt.warning) {
					t.Fatalf("got %v, %v; want status %d with a Warning naming %s", got, err, tt.code, tt.warning)
				}
				return
			}
			if err != nil || len(got) != 1 {
				t.Fatalf("got %v, %v; want one target", got, err)
			}
			var dests []string
			for _, x := range append([]target{got[0]}, got[0].alts...) {
				dests = append(dests, x.transport+" "+x.dest)
				if x.uri.User != tt.user[1:] || net.ParseIP(x.uri.Host) != nil && tt.user[0] != '6' {
					t.Errorf("target URI %s: want the route's URI, its host name kept", x.uri.String())
				}
			}
			if !slices.Equal(dests, tt.dests) {
				t.Errorf("targets %v, want %v", dests, tt.dests)
			}
		})
	}
	if slices.Contains(dns.asked, "127.0.0.1") {
		t.Error("a numeric host was given to the resolver")
	}
}
