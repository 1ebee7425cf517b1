package transport

import (
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestUDPPortSalvage sends datagrams the parser refuses, or that parley
// refuses to read, and checks what reaches the transactions: a request
// marked with the answer it gets (Problem), or nothing.
func TestUDPPortSalvage(t *testing.T) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	sk := &sink{reqs: make(chan *sip.Request, 10), srcs: make(chan netip.AddrPort, 10), ress: make(chan *sip.Response, 10)}
	p := NewUDPPort(conn, NewLenientParser(), sk, slog.New(slog.DiscardHandler), WithMaxMessageSize(1500))
	done := make(chan struct{})
	go func() { defer close(done); p.Serve() }()
	defer func() { conn.Close(); <-done }()
	peer, err := net.DialUDP("udp", nil, conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()

	ok := msg("OPTIONS sip:c@d SIP/2.0", "salvage", 1)
	tests := []struct {
		name, datagram string
		code           int    // 0: read as it came; -1: dropped
		warning        string // part of the Warning
	}{
		{"good", ok, 0, ""},
		{"no empty line at the end", strings.TrimSuffix(ok, "\r\n"), 0, ""},
		{"Content-Length past the datagram", strings.Replace(ok, "Content-Length: 0", "Content-Length: 9999", 1) + "v=0\r\n", 400, "Content-Length 9999 is larger than the 5 bytes"},
		{"Content-Length far past the datagram", strings.Replace(ok, "Content-Length: 0", "Content-Length: 4000000000", 1), 400, "Content-Length 4000000000"},
		{"two spaces in the request line", strings.Replace(ok, "OPTIONS sip", "OPTIONS  sip", 1), 400, "malformed Request-Line"},
		{"space after the version", strings.Replace(ok, "SIP/2.0\r\n", "SIP/2.0  \r\n", 1), 400, "malformed Request-Line"},
		{"Request-URI in angle brackets", strings.Replace(ok, "sip:c@d", "<sip:c@d>", 1), 400, "malformed Request-URI"},
		{"atypical scheme", strings.Replace(ok, "sip:c@d", "soap.beep://192.0.2.103:3002", 1), 416, "soap.beep"},
		{"no Via", strings.Replace(ok, "Via:", "X-Via:", 1), -1, ""},
		{"larger than sip.max_message_size", strings.Replace(ok, "\r\n\r\n", "\r\nX-Pad: "+strings.Repeat("p", 1500)+"\r\n\r\n", 1), -1, ""},
		{"no SIP version", "INVITE sip:c@d\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-x\r\n\r\n", -1, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			callID := "salvage-" + strings.ReplaceAll(tt.name, " ", "-")
			d := strings.Replace(tt.datagram, "Call-ID: salvage", "Call-ID: "+callID, 1)
			if _, err := peer.Write([]byte(d)); err != nil {
				t.Fatal(err)
			}
			wait := 2 * time.Second
			if tt.code < 0 {
				wait = 200 * time.Millisecond
			}
			select {
			case req := <-sk.reqs:
				<-sk.srcs
				if tt.code < 0 {
					t.Fatalf("read %s; want it dropped", req.StartLine())
				}
				perr := Problem(req)
				switch {
				case tt.code == 0 && perr != nil:
					t.Fatalf("marked %v; want it read as it came", perr)
				case tt.code > 0 && (perr == nil || perr.Code != tt.code || !strings.Contains(perr.Warning, tt.warning)):
					t.Fatalf("Problem = %v; want %d with %q", perr, tt.code, tt.warning)
				}
				if req.CallID() == nil || req.CallID().Value() != callID {
					t.Fatalf("Call-ID %v; want %s (the response must echo it)", req.CallID(), callID)
				}
			case <-time.After(wait):
				if tt.code >= 0 {
					t.Fatalf("datagram %d never reached the transactions", i)
				}
			}
		})
	}
}

func TestHasBareControl(t *testing.T) {
	tests := []struct {
		value string
		bad   bool
	}{
		{"plain value", false},
		{"tab\tis fine", false},
		{"utf-8 работающий 大停電", false},
		{"nul\x00here", true},
		{"bell\x07", true},
		{"del\x7f", true},
		{`"BEL:\` + "\x07" + ` NUL:\` + "\x00" + ` DEL:\` + "\x7f" + `" <sip:a@b>`, false}, // RFC 4475 intmeth: quoted-pairs
		{`"unescaped ` + "\x00" + `" <sip:a@b>`, true},
		{`\` + "\x00" + ` outside quotes`, true},
		{`"J Rosenberg \\\"" <sip:a@b>`, false},
	}
	for _, tt := range tests {
		if got := HasBareControl(tt.value); got != tt.bad {
			t.Errorf("HasBareControl(%q) = %v, want %v", tt.value, got, tt.bad)
		}
	}
}

// TestLenientParserDisplayNames: a From or To whose display name is
// neither tokens nor quoted is kept as text (RFC 4475 baddn), so
// validate answers 400; the usual forms parse.
func TestLenientParserDisplayNames(t *testing.T) {
	p := NewLenientParser()
	for from, good := range map[string]bool{
		`Bell, Alexander <sip:a.g.bell@example.com>;tag=43`:   false,
		`A. Bell <sip:a.g.bell@example.com>;tag=43`:           true,
		`"Bell, Alexander" <sip:a.g.bell@example.com>;tag=43`: true,
		`caller<sip:caller@example.com>;tag=323`:              true,
		`sip:caller@example.com;tag=323`:                      true,
		`<sip:caller@example.com>;tag=323`:                    true,
	} {
		raw := "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-1\r\nFrom: " + from +
			"\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
		m, err := p.ParseSIP([]byte(raw))
		if err != nil {
			t.Fatalf("%s: %v", from, err)
		}
		// sip.Request.From would parse a header kept as text again, and
		// leniently; dialog's validate refuses it as text.
		if _, parsed := m.(*sip.Request).GetHeader("From").(*sip.FromHeader); parsed != good {
			t.Errorf("From: %s parsed=%v, want %v", from, parsed, good)
		}
	}
}
