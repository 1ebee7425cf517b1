package registrar

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// TestNewResponseMatchesSipgo checks the registrar's response builder
// against sip.NewResponseFromRequest, which it replaces: the same headers,
// destination and transport, apart from the random To tag.
func TestNewResponseMatchesSipgo(t *testing.T) {
	for _, name := range []string{"register.sip", "invite.sip"} {
		for _, code := range []int{200, 401, 403, 407, 423} {
			t.Run(fmt.Sprint(name, code), func(t *testing.T) {
				req := loadRequest(t, name, msgVars{})
				want := sip.NewResponseFromRequest(req, code, "Reason", nil)
				got := newResponse(req, code, "Reason")
				if w, g := textWithoutToTag(want), textWithoutToTag(got); w != g {
					t.Fatalf("got\n%s\nwant\n%s", g, w)
				}
				if got.Destination() != want.Destination() || got.Transport() != want.Transport() {
					t.Fatalf("sent to %s over %s, want %s over %s", got.Destination(), got.Transport(), want.Destination(), want.Transport())
				}
				if tag, ok := got.To().Params.Get("tag"); !ok || len(tag) != 16 {
					t.Fatalf("To tag %q: want 16 hex digits", tag)
				}
			})
		}
	}
}

func textWithoutToTag(res *sip.Response) string {
	var b strings.Builder
	b.WriteString(res.StartLine() + "\r\n")
	for _, h := range res.Headers() {
		if to, ok := h.(*sip.ToHeader); ok {
			c := sip.HeaderClone(to).(*sip.ToHeader)
			c.Params.Remove("tag")
			h = c
		}
		b.WriteString(h.Name() + ": " + h.Value() + "\r\n")
	}
	return b.String()
}

// TestResponseOKAgainstLibrary checks parley's digest arithmetic against
// icholy/digest as a client computes it, for both algorithms, several nonce
// counts and either case of hex.
func TestResponseOKAgainstLibrary(t *testing.T) {
	d := newTestDigest(t, newFakeClock())
	req := loadRequest(t, "register.sip", msgVars{})
	for _, alg := range []string{AlgorithmMD5, AlgorithmSHA256} {
		chal := challengeFor(t, d.challenge(req, 401, false), "WWW-Authenticate", alg)
		for _, nc := range []int{1, 0x1f, 0xabcdef, 0x7fffffff} {
			cred, err := digest.Digest(chal, digest.Options{
				Method: "REGISTER", URI: req.Recipient.String(),
				Username: "1001", Password: "secret", Count: nc,
			})
			if err != nil {
				t.Fatal(err)
			}
			keys := d.users["1001"]
			if !d.responseOK(req, cred, alg, keys) {
				t.Fatalf("%s nc=%x: right answer refused", alg, nc)
			}
			upper := *cred
			upper.Response = strings.ToUpper(cred.Response)
			if !d.responseOK(req, &upper, alg, keys) {
				t.Fatalf("%s nc=%x: upper-case hex refused", alg, nc)
			}
			for _, bad := range []string{cred.Response[:len(cred.Response)-2], cred.Response + "00", "zz" + cred.Response[2:], flipHex(cred.Response)} {
				wrong := *cred
				wrong.Response = bad
				if d.responseOK(req, &wrong, alg, keys) {
					t.Fatalf("%s nc=%x: wrong response %q accepted", alg, nc, bad)
				}
			}
			otherNC := *cred
			otherNC.Nc = nc + 1
			if d.responseOK(req, &otherNC, alg, keys) {
				t.Fatalf("%s nc=%x: answer accepted with another nc", alg, nc)
			}
		}
	}
}

// flipHex changes the last hex digit of s.
func flipHex(s string) string {
	last := byte('0')
	if s[len(s)-1] == '0' {
		last = '1'
	}
	return s[:len(s)-1] + string(last)
}
