package transport

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// The default sipgo parser drops a message with a malformed From; the
// lenient one keeps it so parley can answer 400.
func TestLenientParserKeepsMalformedHeaders(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "invite_bad_from.sip"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sip.NewParser().ParseSIP(data); err == nil {
		t.Fatal("sipgo's own parser accepted a bad From; this test no longer shows why the lenient parser exists")
	}
	msg, err := NewLenientParser().ParseSIP(data)
	if err != nil {
		t.Fatalf("the lenient parser refused it: %v", err)
	}
	req := msg.(*sip.Request)
	if req.From() != nil {
		t.Fatal("a malformed From parsed as valid")
	}
	if req.GetHeader("From") == nil {
		t.Fatal("the malformed From was lost; a response could not echo it")
	}
	if req.Via() == nil || req.CSeq() == nil || req.CallID() == nil {
		t.Fatal("good headers lost")
	}
}

func TestLenientParserKeepsCommaLists(t *testing.T) {
	raw := "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bK-1, SIP/2.0/UDP 5.6.7.8:5060;branch=z9hG4bK-2\r\n" +
		"From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
	msg, err := NewLenientParser().ParseSIP([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(msg.GetHeaders("Via")); n != 2 {
		t.Fatalf("got %d Via headers, want 2", n)
	}
}

// TestMarkMalformedLines checks the read filter on its own: a good
// datagram passes untouched and uncopied, a header line without a colon
// becomes an X-Parley-Malformed header that parses, body lines and TCP
// are left alone. (dialog's test of the same name checks the 400 that
// follows.)
func TestMarkMalformedLines(t *testing.T) {
	udp := sip.TransportReadProps{Transport: "UDP"}
	good, err := os.ReadFile(filepath.Join("testdata", "invite_ok.sip"))
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := MarkMalformedLines(udp, good); &out[0] != &good[0] {
		t.Fatal("a good datagram was copied")
	}
	bad := []byte(strings.Replace(string(good), "Max-Forwards: 70\r\n", "Max-Forwards: 70\r\nThis line is not a header\r\n", 1))
	out, _ := MarkMalformedLines(udp, bad)
	msg, err := NewLenientParser().ParseSIP(out)
	if err != nil {
		t.Fatalf("marked datagram does not parse: %v\n%s", err, out)
	}
	if h := msg.(*sip.Request).GetHeader(MalformedHeader); h == nil || h.Value() != "This line is not a header" {
		t.Fatalf("marked line: %v", h)
	}
	withBody := []byte(strings.Replace(string(good), "Content-Length: 0\r\n\r\n", "Content-Length: 9\r\n\r\nv=0\r\nxyz\r\n", 1))
	if out, _ := MarkMalformedLines(udp, withBody); !bytes.Equal(out, withBody) {
		t.Fatal("body lines were marked")
	}
	if out, _ := MarkMalformedLines(sip.TransportReadProps{Transport: "TCP"}, bad); !bytes.Equal(out, bad) {
		t.Fatal("TCP stream chunk was rewritten")
	}
}

func TestTidyLWS(t *testing.T) {
	tests := []struct{ in, want string }{
		{"SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1;rport", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1;rport"},
		{"SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw", "SIP/2.0/UDP 192.0.2.2;branch=390skdjuw"},
		{"SIP  / 2.0  / TCP     spindle.example.com   ; branch  =   z9hG4bK9ikj8  , SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239",
			"SIP/2.0/TCP spindle.example.com;branch=z9hG4bK9ikj8,SIP/2.0/UDP 192.168.255.111;branch=z9hG4bK30239"},
		{"sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n", "sip:vivekg@chair-dnrc.example.com;tag=1918181833n"},
		{`"J Rosenberg \\\""       <sip:jdrosen@example.com> ; tag = 98asjd8`, `"J Rosenberg \\\"" <sip:jdrosen@example.com>;tag=98asjd8`},
		{`"Quoted string \"\"" <sip:jdrosen@example.com> ; newparam = newvalue ; secondparam ; q = 0.33`, `"Quoted string \"\"" <sip:jdrosen@example.com>;newparam=newvalue;secondparam;q=0.33`},
		{`"a ; b = c" <sip:x@y;  lr>`, `"a ; b = c" <sip:x@y;  lr>`},
		{"\"Alice\"\t<sip:a@b>", `"Alice" <sip:a@b>`},
	}
	for _, tt := range tests {
		if got := tidyLWS(tt.in); got != tt.want {
			t.Errorf("tidyLWS(%q)\n = %q\nwant %q", tt.in, got, tt.want)
		}
	}
}
