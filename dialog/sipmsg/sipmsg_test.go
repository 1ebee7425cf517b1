package sipmsg

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func parseFile(t testing.TB, name string) *sip.Request {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := sip.NewParser().ParseSIP(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		t.Fatalf("%s is not a request", name)
	}
	return req
}

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
				got := NewResponse(req, code, "Reason", "")
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
					tagged := NewResponse(req, code, "Reason", "abc123")
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
	res := NewResponse(req, 200, "OK", "")
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

// TestResponseFromError checks the one mapping of errors to responses: the
// status of an Error and the headers it asks for, a 500 for any other
// error, and a Warning that always parses.
func TestResponseFromError(t *testing.T) {
	req := parseFile(t, "invite_rr.sip")
	req.SetSource("127.0.0.1:5062")
	tests := []struct {
		err     error
		code    int
		headers map[string]string
	}{
		{BadRequest(`bad "From"`), 400, map[string]string{"Warning": `399 parley "bad 'From'"`}},
		{&Error{Code: 503, Reason: "Service Unavailable", RetryAfter: 5}, 503, map[string]string{"Retry-After": "5"}},
		{&Error{Code: 422, Reason: "Session Interval Too Small", MinSE: 90}, 422, map[string]string{"Min-SE": "90"}},
		{&Error{Code: 423, Reason: "Interval Too Brief", MinExpires: 60}, 423, map[string]string{"Min-Expires": "60"}},
		{&Error{Code: 420, Reason: "Bad Extension", Unsupported: "foo"}, 420, map[string]string{"Unsupported": "foo"}},
		{&Error{Code: 405, Reason: "Method Not Allowed", Allow: "INVITE"}, 405, map[string]string{"Allow": "INVITE"}},
		{fmt.Errorf("wrapped: %w", Status(486, "Busy Here")), 486, nil},
		{errors.New("plain"), 500, nil},
	}
	for _, tt := range tests {
		res := Response(req, tt.err, "t1")
		if res.StatusCode != tt.code {
			t.Errorf("%v: status %d, want %d", tt.err, res.StatusCode, tt.code)
		}
		if tag, _ := res.To().Params.Get("tag"); tag != "t1" {
			t.Errorf("%v: To tag %q", tt.err, tag)
		}
		for name, want := range tt.headers {
			if h := HeaderNamed(res, name); h == nil || h.Value() != want {
				t.Errorf("%v: %s = %v, want %q", tt.err, name, h, want)
			}
		}
		// The response must parse again, Warning and all.
		if _, err := sip.NewParser().ParseSIP([]byte(res.String())); err != nil {
			t.Errorf("%v: response does not parse: %v\n%s", tt.err, err, res)
		}
	}
}

// TestAsKeepsCause checks that an error without a status gets the one
// asked for, with its text as the Warning, and that an Error's detail
// copy still matches its sentinel.
func TestAsKeepsCause(t *testing.T) {
	cause := errors.New("no route")
	se := As(cause, 503, "Service Unavailable")
	if se.Code != 503 || se.Warning != "no route" || !errors.Is(se, cause) {
		t.Fatalf("As gave %+v", se)
	}
	sentinel := Warn(488, "Not Acceptable Here", "media: no codec in common")
	d := sentinel.WithDetail("offer had only video")
	if !errors.Is(d, sentinel) || d.Code != 488 || !strings.HasSuffix(d.Warning, "only video") {
		t.Fatalf("WithDetail gave %+v", d)
	}
	if As(d, 500, "x") != d {
		t.Fatal("As did not return the Error itself")
	}
	if As(nil, 500, "x") != nil {
		t.Fatal("As(nil) is not nil")
	}
}
