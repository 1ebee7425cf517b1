package config

import (
	"errors"
	"strings"
	"testing"
)

// trunkYAML is a valid trunk with a route through it; the tests below
// change one key.
const trunkYAML = "users:\n  - {username: '1001', password: x}\n" +
	"trunks:\n  - {name: prov, registrar: 'sip.example.net:5070', username: '4930111', password: 's3cret-pw', expires: 600, inbound: '1001', retry: 1m}\n" +
	"routes:\n  - {match: '^0(\\d+)$', target: 'sip:$1@example.net', trunk: prov}\n"

func TestTrunksAccepted(t *testing.T) {
	c, err := Parse([]byte(trunkYAML), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Trunks) != 1 || c.Trunks[0].Registrar != "sip.example.net:5070" || c.Routes[0].Trunk != "prov" {
		t.Errorf("parsed %+v, routes %+v", c.Trunks, c.Routes)
	}
	for _, r := range []string{"192.0.2.1", "[2001:db8::1]:5060", "2001:db8::1", "provider.example"} {
		if _, _, err := SplitRegistrar(r); err != nil {
			t.Errorf("registrar %q refused: %v", r, err)
		}
	}
}

func TestBadTrunkNamesKey(t *testing.T) {
	for _, tt := range []struct{ name, from, to, key string }{
		{"unknown key", "retry: 1m}", "retry: 1m, proxy: x}", "trunks[0].proxy"},
		{"no name", "name: prov,", "name: '',", "trunks[0].name"},
		{"no registrar", "registrar: 'sip.example.net:5070'", "registrar: ''", "trunks[0].registrar"},
		{"bad port", "registrar: 'sip.example.net:5070'", "registrar: 'sip.example.net:99999'", "trunks[0].registrar"},
		{"registrar a URI", "registrar: 'sip.example.net:5070'", "registrar: 'sip:a@b'", "trunks[0].registrar"},
		{"no username", "username: '4930111'", "username: ''", "trunks[0].username"},
		{"no password", "password: 's3cret-pw'", "password: ''", "trunks[0].password"},
		{"negative expires", "expires: 600", "expires: -1", "trunks[0].expires"},
		{"inbound not a user", "inbound: '1001'", "inbound: '1009'", "trunks[0].inbound"},
		{"retry too long", "retry: 1m", "retry: 1h", "trunks[0].retry"},
		{"route to no trunk", "trunk: prov}", "trunk: nope}", "routes[0].trunk"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(strings.Replace(trunkYAML, tt.from, tt.to, 1)), "test.yaml")
			if err == nil {
				t.Fatal("accepted a bad config")
			}
			if !strings.Contains(err.Error(), tt.key+":") {
				t.Fatalf("error %q does not name %s", err, tt.key)
			}
			var ce *Error
			if errors.As(err, &ce) && ce.Key != tt.key {
				t.Fatalf("Error.Key = %q, want %q", ce.Key, tt.key)
			}
			if strings.Contains(err.Error(), "s3cret-pw") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
	dup := strings.Replace(trunkYAML, "trunks:\n", "trunks:\n  - {name: prov, registrar: 192.0.2.1, username: a, password: b}\n", 1)
	if _, err := Parse([]byte(dup), "test.yaml"); err == nil || !strings.Contains(err.Error(), "trunks[1].name:") {
		t.Errorf("a trunk listed twice: %v", err)
	}
}
