package registrar

import (
	"reflect"
	"testing"

	"github.com/icholy/digest"
)

// TestParseCredentialsMatchesLibrary checks the fast path against the
// library on what phones send, and on what only the library can read.
func TestParseCredentialsMatchesLibrary(t *testing.T) {
	inputs := []string{
		// SIPp 3.6
		`Digest username="1001",realm="parley.lab",cnonce="6b8b4567",nc=00000001,qop=auth,uri="sip:127.0.0.1:5060",nonce="GOo8G2Jp-ltV",response="a4f2c3",algorithm=MD5`,
		// baresip
		`Digest username="1001", realm="parley.lab", nonce="abc", uri="sip:parley.lab", response="0123", algorithm=MD5, qop=auth, cnonce="0a4f113b", nc=00000001`,
		// linphone, with opaque and SHA-256
		`Digest realm="parley.lab", nonce="n1", algorithm=SHA-256, opaque="op", username="1002",  uri="sip:parley.lab", response="ff", cnonce="c", nc=0000000a, qop=auth`,
		`Digest username="a",realm="r",nonce="n",uri="sip:x",response="r",userhash=true`,
		// escapes and odd spacing: the library's path
		`Digest username="a\"b", realm="r", nonce="n", uri="sip:x", response="r"`,
		`Digest username = "a" , realm = "r"`,
		`Digest username="a", unknown-param=token, realm="r"`,
	}
	for _, in := range inputs {
		want, werr := digest.ParseCredentials(in)
		got, gerr := parseCredentials(in)
		if (werr != nil) != (gerr != nil) || !reflect.DeepEqual(got, want) {
			t.Errorf("parseCredentials(%q)\n got %+v, %v\nwant %+v, %v", in, got, gerr, want, werr)
		}
	}
	// What the library refuses, the fast path must not accept.
	for _, in := range []string{`Basic abc`, `Digest username="a`, `Digest nc=zz`} {
		if _, werr := digest.ParseCredentials(in); werr == nil {
			continue
		}
		if c, err := parseCredentials(in); err == nil {
			t.Errorf("parseCredentials(%q) = %+v, want an error like the library's", in, c)
		}
	}
}

func TestChallengeValueMatchesLibrary(t *testing.T) {
	for _, tc := range []struct {
		realm, nonce, alg string
		stale             bool
	}{
		{"parley.lab", "GOo8G2Jp-ltV", "MD5", false},
		{"parley.lab", "x", "SHA-256", true},
		{`odd"realm`, "x", "MD5", false},
	} {
		ch := digest.Challenge{Realm: tc.realm, Nonce: tc.nonce, Algorithm: tc.alg, QOP: []string{"auth"}, Stale: tc.stale}
		if got, want := challengeValue(tc.realm, tc.nonce, tc.alg, tc.stale), ch.String(); got != want {
			t.Errorf("challengeValue = %q, want %q", got, want)
		}
	}
}
