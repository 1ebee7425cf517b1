package dialog

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
	"github.com/parley-sip/parley/dialog/transport"
)

func parseFile(t testing.TB, name string) *sip.Request {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := transport.NewLenientParser().ParseSIP(data)
	if err != nil {
		t.Fatalf("%s: lenient parser refused it: %v", name, err)
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		t.Fatalf("%s is not a request", name)
	}
	return req
}

func TestValidate(t *testing.T) {
	tests := []struct {
		file    string
		problem string // "" when valid
	}{
		{"invite_ok.sip", ""},
		{"invite_bad_from.sip", "From"},
		{"invite_bad_to.sip", "To"},
		{"invite_cseq_mismatch.sip", "CSeq method"},
		{"invite_bad_maxfwd.sip", "Max-Forwards"},
		{"invite_bad_contact.sip", "Contact"},
		{"invite_no_from_tag.sip", "tag"},
		{"invite_no_callid.sip", "Call-ID"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			err := validate(parseFile(t, tt.file))
			if tt.problem == "" {
				if err != nil {
					t.Fatalf("valid request refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("malformed request accepted")
			}
			se := sipmsg.ErrorFor(err)
			if se.Code != 400 || !strings.Contains(se.Warning, tt.problem) {
				t.Fatalf("got %d %q, want 400 naming %s", se.Code, se.Warning, tt.problem)
			}
		})
	}
}

func TestUnsupportedRequire(t *testing.T) {
	got := unsupported(parseFile(t, "options_require.sip"))
	if strings.Join(got, ",") != "foo" { // 100rel is supported (RFC 3262)
		t.Fatalf("unsupported = %v", got)
	}
	if got := unsupported(parseFile(t, "invite_ok.sip")); len(got) != 0 {
		t.Fatalf("no Require, but unsupported = %v", got)
	}
}

func FuzzParseAndValidate(f *testing.F) {
	entries, _ := os.ReadDir("testdata")
	for _, e := range entries {
		if data, err := os.ReadFile(filepath.Join("testdata", e.Name())); err == nil {
			f.Add(data)
		}
	}
	p := transport.NewLenientParser()
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := p.ParseSIP(data)
		if err != nil {
			return
		}
		if req, ok := msg.(*sip.Request); ok {
			if validate(req) == nil {
				_ = unsupported(req)
				_ = recordRoutes(req)
				_ = sipmsg.HasToTag(req)
			}
		}
	})
}

func TestMarkMalformedLines(t *testing.T) {
	udp := sip.TransportReadProps{Transport: "UDP"}
	good, err := os.ReadFile(filepath.Join("testdata", "invite_ok.sip"))
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := transport.MarkMalformedLines(udp, good); &out[0] != &good[0] {
		t.Fatal("a good datagram was copied")
	}
	bad := []byte(strings.Replace(string(good), "Max-Forwards: 70\r\n", "Max-Forwards: 70\r\nThis line is not a header\r\n", 1))
	out, _ := transport.MarkMalformedLines(udp, bad)
	req, err := transport.NewLenientParser().ParseSIP(out)
	if err != nil {
		t.Fatalf("marked datagram does not parse: %v\n%s", err, out)
	}
	verr := validate(req.(*sip.Request))
	if verr == nil || !strings.Contains(sipmsg.ErrorFor(verr).Warning, "This line is not a header") {
		t.Fatalf("validate = %v", verr)
	}
	// A body line without a colon is not a header line.
	withBody := []byte(strings.Replace(string(good), "Content-Length: 0\r\n\r\n", "Content-Length: 9\r\n\r\nv=0\r\nxyz\r\n", 1))
	if out, _ := transport.MarkMalformedLines(udp, withBody); !bytes.Equal(out, withBody) {
		t.Fatal("body lines were marked")
	}
	if out, _ := transport.MarkMalformedLines(sip.TransportReadProps{Transport: "TCP"}, bad); !bytes.Equal(out, bad) {
		t.Fatal("TCP stream chunk was rewritten")
	}
}

// TestValidateStatus checks the answers other than 400 that validate
// gives, and the 400s of the header checks, on variants of a good INVITE:
// each row replaces one string of it.
func TestValidateStatus(t *testing.T) {
	tests := []struct {
		name, old, new string
		code           int
		warning        string
	}{
		{"SIP/3.0", "SIP/2.0\r\nVia", "SIP/3.0\r\nVia", 505, "SIP/3.0"},
		{"unknown method", "INVITE sip:", "FOO sip:", 501, ""},
		{"unknown method, CSeq mismatch too", "INVITE sip:", "NEWMETHOD sip:", 501, ""},
		{"unknown scheme", "INVITE sip:1002@parley.lab", "INVITE isbn:2983792873", 416, "isbn"},
		{"tel URI", "INVITE sip:1002@parley.lab", "INVITE tel:+15551234", 0, ""},
		{"headers in the Request-URI", "INVITE sip:1002@parley.lab", "INVITE sip:1002@parley.lab?Route=%3Csip:x%3E", 400, "headers"},
		{"two From", "To:", "From: <sip:x@y>;tag=2\r\nTo:", 400, "more than one From"},
		{"two Content-Length", "Content-Length: 0", "Content-Length: 0\r\nl: 0", 400, "more than one Content-Length"},
		{"NUL in a header", "Max-Forwards: 70", "Max-Forwards: 70\r\nSubject: a\x00b", 400, "control character in Subject"},
		{"DEL in the Call-ID", "Call-ID: call-1", "Call-ID: call\x7f1", 400, "control character in Call-ID"},
		{"display name neither quoted nor tokens", `"Alice" <sip:1001`, `Alice, Liddell <sip:1001`, 400, "malformed From"},
		{"malformed Via", "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-abc;rport", "Via: ;,,", 400, "malformed Via"},
		{"REGISTER To not SIP", "INVITE sip:1002@parley.lab SIP/2.0", "REGISTER sip:parley.lab SIP/2.0", 0, ""},
	}
	good, err := os.ReadFile(filepath.Join("testdata", "invite_ok.sip"))
	if err != nil {
		t.Fatal(err)
	}
	p := transport.NewLenientParser()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := strings.Replace(string(good), tt.old, tt.new, 1)
			if raw == string(good) {
				t.Fatalf("%q is not in the message", tt.old)
			}
			if strings.HasPrefix(tt.new, "REGISTER") {
				raw = strings.Replace(raw, "CSeq: 1 INVITE", "CSeq: 1 REGISTER", 1)
			}
			msg, err := p.ParseSIP([]byte(raw))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			err = validate(msg.(*sip.Request))
			if tt.code == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			se := sipmsg.ErrorFor(err)
			if err == nil || se.Code != tt.code || !strings.Contains(se.Warning, tt.warning) {
				t.Fatalf("validate = %v, want %d naming %q", err, tt.code, tt.warning)
			}
		})
	}
	reg := strings.Replace(strings.Replace(string(good), "INVITE sip:1002@parley.lab SIP/2.0", "REGISTER sip:parley.lab SIP/2.0", 1), "CSeq: 1 INVITE", "CSeq: 1 REGISTER", 1)
	reg = strings.Replace(reg, "To: <sip:1002@parley.lab>", "To: <isbn:2983792873>", 1)
	msg, err := p.ParseSIP([]byte(reg))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(msg.(*sip.Request)); sipmsg.ErrorFor(err).Code != 400 {
		t.Fatalf("REGISTER with To: isbn: got %v, want 400 (RFC 4475 unksm2)", err)
	}
}

func TestEndsCall(t *testing.T) {
	for _, tt := range []struct {
		method sip.RequestMethod
		code   int
		want   bool
	}{
		{sip.INVITE, 481, true}, {sip.UPDATE, 481, true}, {sip.INFO, 481, true}, {sip.PRACK, 481, true},
		{sip.NOTIFY, 481, false}, {sip.REFER, 481, false}, {sip.SUBSCRIBE, 481, false}, {sip.MESSAGE, 481, false},
		{sip.INVITE, 408, true}, {sip.UPDATE, 408, true}, {sip.INFO, 408, false}, {sip.NOTIFY, 408, false},
		{sip.INVITE, 500, false}, {sip.NOTIFY, 200, false},
	} {
		if got := endsCall(tt.method, tt.code); got != tt.want {
			t.Errorf("endsCall(%s, %d) = %v, want %v", tt.method, tt.code, got, tt.want)
		}
	}
}
