package transport

import (
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func TestCallIDBytes(t *testing.T) {
	tests := []struct{ msg, want string }{
		{"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP x\r\nCall-ID: abc@h\r\nCSeq: 1 INVITE\r\n\r\nv=0\r\n", "abc@h"},
		{"SIP/2.0 200 OK\r\ncall-id :  xyz \r\n\r\n", "xyz"},
		{"BYE sip:a@b SIP/2.0\r\ni: compact\r\n\r\n", "compact"},
		{"BYE sip:a@b SIP/2.0\r\nVia: x\r\n\r\nCall-ID: in-body\r\n", ""},
		{"garbage", ""},
	}
	for _, tc := range tests {
		if got := string(callIDBytes([]byte(tc.msg))); got != tc.want {
			t.Errorf("callIDBytes(%q) = %q, want %q", tc.msg, got, tc.want)
		}
	}
}

// sink records what a port reads; it takes the responses whose Call-ID
// is "ours" and leaves the others to sipgo.
type sink struct {
	reqs chan *sip.Request
	srcs chan netip.AddrPort
	ress chan *sip.Response
}

func (s *sink) Request(_ *UDPPort, req *sip.Request, src netip.AddrPort) {
	s.reqs <- req
	s.srcs <- src
}

func (s *sink) Response(res *sip.Response) bool {
	if res.CallID().Value() != "ours" {
		return false
	}
	s.ress <- res
	return true
}

func startPort(t *testing.T) (*UDPPort, *sink, *net.UDPConn) {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	sk := &sink{reqs: make(chan *sip.Request, 100), srcs: make(chan netip.AddrPort, 100), ress: make(chan *sip.Response, 100)}
	p := NewUDPPort(conn, NewLenientParser(), sk, slog.New(slog.DiscardHandler))
	done := make(chan struct{})
	go func() { defer close(done); p.Serve() }()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	peer, err := net.DialUDP("udp", nil, conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	return p, sk, peer
}

func msg(first, callID string, cseq int) string {
	return first + "\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-" + strconv.Itoa(cseq) + "\r\n" +
		"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: " + callID + "\r\nCSeq: " + strconv.Itoa(cseq) + " OPTIONS\r\nContent-Length: 0\r\n\r\n"
}

// TestUDPPortDelivers checks what the port does with what it reads:
// requests go to the sink with their source, in the order one Call-ID's
// messages came; keepalives and garbage are dropped; a response the sink
// takes stays there, and one it does not is read by sipgo through the
// port's net.PacketConn face, from the same source.
func TestUDPPortDelivers(t *testing.T) {
	p, sk, peer := startPort(t)
	send := func(s string) {
		if _, err := peer.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	send("\r\n\r\n")           // keepalive
	send("not SIP at all\r\n") // garbage
	for i := 1; i <= 50; i++ {
		send(msg("OPTIONS sip:c@d SIP/2.0", "order", i))
	}
	for i := 1; i <= 50; i++ {
		select {
		case req := <-sk.reqs:
			src := <-sk.srcs
			if int(req.CSeq().SeqNo) != i {
				t.Fatalf("request %d arrived as number %d: one Call-ID's order was lost", req.CSeq().SeqNo, i)
			}
			if src.String() != peer.LocalAddr().String() || req.Source() != src.String() || req.Transport() != "UDP" {
				t.Fatalf("source %s (%s over %s), want %s", src, req.Source(), req.Transport(), peer.LocalAddr())
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("request %d never reached the sink", i)
		}
	}
	send(msg("SIP/2.0 200 OK", "ours", 1))
	select {
	case <-sk.ress:
	case <-time.After(2 * time.Second):
		t.Fatal("the sink's response did not reach it")
	}
	send(msg("SIP/2.0 200 OK", "sipgos", 2))
	done := make(chan struct{})
	var got string
	var from net.Addr
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		n, addr, err := p.ReadFrom(buf)
		if err == nil {
			got, from = string(buf[:n]), addr
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("the response the sink left never reached sipgo's side")
	}
	if !strings.Contains(got, "Call-ID: sipgos") || from.String() != peer.LocalAddr().String() {
		t.Fatalf("sipgo read %q from %v", got, from)
	}
	select {
	case req := <-sk.reqs:
		t.Fatalf("keepalive or garbage reached the sink: %v", req)
	default:
	}
}
