package dialog

import (
	"errors"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// fakeTrunks is one trunk "prov" whose registrar is 192.0.2.1:5060 and
// whose calls come from 192.0.2.1.
type fakeTrunks struct{}

func (fakeTrunks) Run(stop <-chan struct{}, _ TrunkClient) { <-stop }

func (fakeTrunks) Outbound(name string) (string, sip.Uri, error) {
	if name != "prov" {
		return "", sip.Uri{}, errors.New("no such trunk")
	}
	return "192.0.2.1:5060", sip.Uri{Scheme: "sip", User: "trunkuser", Host: "provider.example"}, nil
}

func (fakeTrunks) Inbound(req *sip.Request) (string, string, bool) {
	if req.Source() == "192.0.2.1:5060" {
		return "prov", req.Recipient.User, true
	}
	return "", "", false
}

func (fakeTrunks) Authorize(string, *sip.Request, *sip.Response) (sip.Header, error) {
	return sip.NewHeader("Proxy-Authorization", "Digest x"), nil
}

// TestResolveThroughTrunk: a route with a trunk goes to the trunk's
// registrar over UDP, whatever its target's host, from the trunk's user;
// a call from a trunk reaches local users only, never a route.
func TestResolveThroughTrunk(t *testing.T) {
	s := newTestServer(t, `
users: [{username: "1001", password: x}]
trunks: [{name: prov, registrar: 192.0.2.1, username: trunkuser, password: pw}]
routes:
  - {match: '^0(\d+)$', target: 'sip:$1@provider.example;transport=tcp', trunk: prov}
  - {match: '^9(\d+)$', target: 'sip:$1@127.0.0.1:5070'}
`,
		WithAuthenticator(fakeAuth{users: map[string]bool{"1001": true}}),
		WithLocator(fakeLocator{"1001": {{URI: "sip:1001@192.168.1.5:5062", Dest: "203.0.113.7:40000", Transport: "udp"}}}),
		WithTrunks(fakeTrunks{}),
	)
	got, err := s.resolve(sip.Uri{Scheme: "sip", User: "0301234", Host: "parley.lab"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].dest != "192.0.2.1:5060" || got[0].transport != "udp" || got[0].trunk != "prov" ||
		got[0].from.User != "trunkuser" || got[0].uri.User != "301234" || got[0].uri.Host != "provider.example" {
		t.Errorf("through the trunk: %+v", got)
	}

	if got, err := s.resolveInbound(sip.Uri{Scheme: "sip", User: "1001", Host: "parley.lab"}); err != nil || len(got) != 1 || got[0].dest != "203.0.113.7:40000" {
		t.Errorf("inbound to 1001: %+v, %v", got, err)
	}
	for _, user := range []string{"9555", "0301234", "4444"} {
		if got, err := s.resolveInbound(sip.Uri{Scheme: "sip", User: user, Host: "parley.lab"}); sipmsg.ErrorFor(err).Code != 404 {
			t.Errorf("inbound to %s: %+v, %v; want 404, never a route", user, got, err)
		}
	}

	from := func(src string) *sip.Request {
		req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "1001", Host: "parley.lab"})
		req.SetSource(src)
		return req
	}
	if !s.trunkCall(from("192.0.2.1:5060")) || s.trunkCall(from("198.51.100.9:5060")) {
		t.Error("trunkCall does not tell the provider's INVITE from a stranger's")
	}
}
