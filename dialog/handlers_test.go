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
	if strings.Join(got, ",") != "100rel,foo" {
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
