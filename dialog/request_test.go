package dialog

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// TestNewResponseMatchesSipgo checks parley's response builder against
// sip.NewResponseFromRequest, which it replaces: the same headers in the
// same order, apart from the random To tag.
func TestNewResponseMatchesSipgo(t *testing.T) {
	for _, method := range []sip.RequestMethod{sip.INVITE, sip.BYE, sip.REGISTER} {
		for _, code := range []int{100, 180, 183, 200, 404, 487} {
			t.Run(fmt.Sprint(method, code), func(t *testing.T) {
				req := parseFile(t, "invite_rr.sip")
				req.Method = method
				req.CSeq().MethodName = method
				req.SetSource("127.0.0.1:5062")
				want := sip.NewResponseFromRequest(req, code, "Reason", nil)
				got := newResponse(req, code, "Reason", "")
				if w, g := withoutTag(want), withoutTag(got); w != g {
					t.Fatalf("got\n%s\nwant\n%s", g, w)
				}
				if got.Destination() != want.Destination() || got.Transport() != want.Transport() {
					t.Fatalf("sent to %s over %s, want %s over %s", got.Destination(), got.Transport(), want.Destination(), want.Transport())
				}
				_, hasTag := got.To().Params.Get("tag")
				if hasTag != (code != 100) {
					t.Fatalf("To tag present %v for %d", hasTag, code)
				}
				if code != 100 {
					tagged := newResponse(req, code, "Reason", "abc123")
					if tag, _ := tagged.To().Params.Get("tag"); tag != "abc123" {
						t.Fatalf("To tag %q, want abc123", tag)
					}
				}
			})
		}
	}
}

// TestNewResponseKeepsRequestTag checks that a request inside a dialog
// keeps its To tag, and that the request's headers are not changed.
func TestNewResponseKeepsRequestTag(t *testing.T) {
	req := parseFile(t, "invite_rr.sip")
	req.To().Params.Add("tag", "b2")
	req.SetSource("127.0.0.1:5062")
	before := req.String()
	res := newResponse(req, 200, "OK", "")
	if tag, _ := res.To().Params.Get("tag"); tag != "b2" {
		t.Fatalf("To tag %q, want b2", tag)
	}
	if v := res.Via(); v.Params.GetOr("rport", "") != "5062" || v.Params.GetOr("received", "") != "127.0.0.1" {
		t.Fatalf("top Via %s: want rport=5062 and received=127.0.0.1", v.Value())
	}
	if req.String() != before {
		t.Fatalf("request changed:\n%s", req.String())
	}
}

// withoutTag is the response's text with its To tag taken out.
func withoutTag(res *sip.Response) string {
	var b strings.Builder
	for _, h := range res.Headers() {
		if to, ok := h.(*sip.ToHeader); ok {
			c := sip.HeaderClone(to).(*sip.ToHeader)
			c.Params.Remove("tag")
			h = c
		}
		b.WriteString(h.Name() + ": " + h.Value() + "\r\n")
	}
	return res.StartLine() + "\r\n" + b.String()
}
