package registrar

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// TestResponsesFollowRFC3261 checks every kind of response the registrar
// sends, through its handlers: each starts with exactly the headers
// sip.NewResponseFromRequest would give it (RFC 3261 §8.2.6: Via with
// rport and received filled in, From, To, Call-ID, CSeq; never
// Record-Route for a REGISTER), goes back where the request came from over
// the same transport, carries a To tag of 16 lower-case hex digits, and
// then only the headers its status asks for. The builder itself is tested
// in dialog/sipmsg.
func TestResponsesFollowRFC3261(t *testing.T) {
	hex16 := regexp.MustCompile(`^[0-9a-f]{16}$`)
	for _, tc := range []struct {
		name   string
		code   int
		reason string
		// extra are the headers after the §8.2.6 ones, by name, in order;
		// values, when not empty, must match.
		extra [][2]string
		// respond returns the request sent and the response it got.
		respond func(t *testing.T, e *testEnv) (*sip.Request, *sip.Response)
	}{
		{
			name: "REGISTER without credentials", code: 401, reason: "Unauthorized",
			extra: [][2]string{{"WWW-Authenticate"}, {"WWW-Authenticate"}},
			respond: func(t *testing.T, e *testEnv) (*sip.Request, *sip.Response) {
				req := loadRequest(t, "register.sip", msgVars{})
				return req, e.send(t, req)
			},
		},
		{
			name: "REGISTER accepted", code: 200, reason: "OK",
			extra: [][2]string{{"Contact", "<sip:1001@192.168.1.20:5062;transport=udp>;expires=3600"}, {"Date", "Sun, 01 Mar 2026 12:00:00 GMT"}},
			respond: func(t *testing.T, e *testEnv) (*sip.Request, *sip.Response) {
				req := loadRequest(t, "register.sip", msgVars{})
				authorize(t, e.d, req, "1001", testUsers["1001"], "MD5")
				return req, e.send(t, req)
			},
		},
		{
			name: "REGISTER below min-expires", code: 423, reason: "Interval Too Brief",
			extra: [][2]string{{"Min-Expires", "60"}},
			respond: func(t *testing.T, e *testEnv) (*sip.Request, *sip.Response) {
				req := loadRequest(t, "register.sip", msgVars{Expires: "10"})
				authorize(t, e.d, req, "1001", testUsers["1001"], "MD5")
				return req, e.send(t, req)
			},
		},
		{
			name: "REGISTER requiring an extension", code: 420, reason: "Bad Extension",
			extra: [][2]string{{"Unsupported", "gin"}},
			respond: func(t *testing.T, e *testEnv) (*sip.Request, *sip.Response) {
				req := loadRequest(t, "register_require.sip", msgVars{})
				return req, e.send(t, req)
			},
		},
		{
			name: "REGISTER for another user", code: 403, reason: "Forbidden",
			respond: func(t *testing.T, e *testEnv) (*sip.Request, *sip.Response) {
				req := loadRequest(t, "register.sip", msgVars{User: "1002"})
				authorize(t, e.d, req, "1001", testUsers["1001"], "MD5")
				return req, e.send(t, req)
			},
		},
		{
			name: "REGISTER with incomplete credentials", code: 400, reason: "Incomplete Authorization",
			respond: func(t *testing.T, e *testEnv) (*sip.Request, *sip.Response) {
				req := loadRequest(t, "register.sip", msgVars{})
				req.AppendHeader(sip.NewHeader("Authorization", `Digest username="1001", realm="`+testRealm+`"`))
				return req, e.send(t, req)
			},
		},
		{
			name: "REGISTER out of order", code: 400, reason: "Invalid CSeq Number",
			respond: func(t *testing.T, e *testEnv) (*sip.Request, *sip.Response) {
				if res := e.registerAs(t, "register.sip", msgVars{User: "1001", CSeq: 5}); res.StatusCode != 200 {
					t.Fatalf("first REGISTER: %d %s", res.StatusCode, res.Reason)
				}
				req := loadRequest(t, "register.sip", msgVars{CSeq: 4})
				authorize(t, e.d, req, "1001", testUsers["1001"], "MD5")
				return req, e.send(t, req)
			},
		},
		{
			name: "REGISTER after Close", code: 503, reason: "Service Unavailable",
			respond: func(t *testing.T, e *testEnv) (*sip.Request, *sip.Response) {
				if err := e.r.Close(); err != nil {
					t.Fatal(err)
				}
				req := loadRequest(t, "register.sip", msgVars{})
				return req, e.send(t, req)
			},
		},
		{
			name: "INVITE sent to the REGISTER handler", code: 405, reason: "Method Not Allowed",
			extra: [][2]string{{"Allow", "REGISTER"}},
			respond: func(t *testing.T, e *testEnv) (*sip.Request, *sip.Response) {
				req := loadRequest(t, "invite.sip", msgVars{})
				return req, e.send(t, req)
			},
		},
		{
			name: "INVITE challenged by a proxy", code: 407, reason: "Proxy Authentication Required",
			extra: [][2]string{{"Proxy-Authenticate"}, {"Proxy-Authenticate"}},
			respond: func(t *testing.T, e *testEnv) (*sip.Request, *sip.Response) {
				req := loadRequest(t, "invite.sip", msgVars{})
				_, res, _ := e.d.Authenticate(req, 407)
				return req, res
			},
		},
		{
			name: "INVITE challenged by a UAS", code: 401, reason: "Unauthorized",
			extra: [][2]string{{"WWW-Authenticate"}, {"WWW-Authenticate"}},
			respond: func(t *testing.T, e *testEnv) (*sip.Request, *sip.Response) {
				req := loadRequest(t, "invite.sip", msgVars{})
				_, res, _ := e.d.Authenticate(req, 401)
				return req, res
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, nil)
			req, got := tc.respond(t, e)
			if got == nil {
				t.Fatal("no response")
			}
			if got.StatusCode != tc.code || got.Reason != tc.reason {
				t.Fatalf("%d %s, want %d %s\n%s", got.StatusCode, got.Reason, tc.code, tc.reason, got)
			}
			want := sip.NewResponseFromRequest(req, tc.code, tc.reason, nil)
			base := len(want.Headers())
			if len(got.Headers()) < base {
				t.Fatalf("got\n%s\nwant at least the headers of\n%s", got, want)
			}
			if w, g := textWithoutToTag(want, want.Headers()), textWithoutToTag(got, got.Headers()[:base]); w != g {
				t.Fatalf("got\n%s\nwant\n%s", g, w)
			}
			if got.Destination() != want.Destination() || got.Transport() != want.Transport() {
				t.Fatalf("sent to %s over %s, want %s over %s", got.Destination(), got.Transport(), want.Destination(), want.Transport())
			}
			if tag, _ := got.To().Params.Get("tag"); !hex16.MatchString(tag) {
				t.Fatalf("To tag %q: want 16 lower-case hex digits", tag)
			}
			var extra []string
			for _, h := range got.Headers()[base:] {
				extra = append(extra, h.Name())
			}
			var wantExtra []string
			for _, x := range tc.extra {
				wantExtra = append(wantExtra, x[0])
			}
			if !slices.Equal(extra, wantExtra) {
				t.Fatalf("headers after §8.2.6 ones %q, want %q\n%s", extra, wantExtra, got)
			}
			for i, x := range tc.extra {
				if v := got.Headers()[base+i].Value(); x[1] != "" && v != x[1] {
					t.Errorf("%s = %q, want %q", x[0], v, x[1])
				}
			}
			if _, err := sip.ParseMessage([]byte(got.String())); err != nil {
				t.Fatalf("response does not parse: %v\n%s", err, got)
			}
		})
	}
}

// textWithoutToTag is the status line and hs, with the To tag taken out.
func textWithoutToTag(res *sip.Response, hs []sip.Header) string {
	var b strings.Builder
	b.WriteString(res.StartLine() + "\r\n")
	for _, h := range hs {
		if to, ok := h.(*sip.ToHeader); ok {
			c := sip.HeaderClone(to).(*sip.ToHeader)
			c.Params.Remove("tag")
			h = c
		}
		b.WriteString(h.Name() + ": " + h.Value() + "\r\n")
	}
	return b.String()
}
