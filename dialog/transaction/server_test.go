package transaction

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// udpPeer is a socket that sends raw requests to parley and reads replies.
type udpPeer struct {
	t *testing.T
	c *net.UDPConn
}

func newUDPPeer(t *testing.T, server string) *udpPeer {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpPeer{t: t, c: c}
}

func (p *udpPeer) send(msg string) {
	if _, err := p.c.Write([]byte(msg)); err != nil {
		p.t.Fatal(err)
	}
}

// read returns the next datagram, or "" after d.
func (p *udpPeer) read(d time.Duration) string {
	_ = p.c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 8192)
	n, err := p.c.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// TestServerTxRetransmission checks RFC 3261 §17.2.2: a retransmitted
// request is answered with the same response and the handler runs once.
func TestServerTxRetransmission(t *testing.T) {
	var calls atomic.Int32
	s := startStack(t, handlers{sip.PUBLISH: func(req *sip.Request, tx sip.ServerTransaction) {
		calls.Add(1)
		_ = tx.Respond(sip.NewResponseFromRequest(req, 202, "Accepted", nil))
	}})
	p := newUDPPeer(t, s.addr())
	msg := request("PUBLISH", "Event: presence\r\n")
	p.send(msg)
	first := p.read(2 * time.Second)
	if !strings.HasPrefix(first, "SIP/2.0 202") {
		t.Fatalf("first answer %q, want 202", first)
	}
	p.send(msg)
	if again := p.read(2 * time.Second); again != first {
		t.Fatalf("retransmission answered\n%q\nwant the same bytes as\n%q", again, first)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

// TestServerTxHandlerWithoutAnswer checks that a handler returning
// without a final response still gets the sender a 500.
func TestServerTxHandlerWithoutAnswer(t *testing.T) {
	s := startStack(t, handlers{sip.PUBLISH: func(*sip.Request, sip.ServerTransaction) {}})
	p := newUDPPeer(t, s.addr())
	p.send(request("PUBLISH", "Event: presence\r\n"))
	got := p.read(2 * time.Second)
	if !strings.HasPrefix(got, "SIP/2.0 500") {
		t.Fatalf("got %q, want 500", got)
	}
}

// TestServerTxNon2xxInvite checks RFC 3261 §17.2.1: a final non-2xx to
// INVITE is retransmitted on Timer G until the ACK, and not after it.
func TestServerTxNon2xxInvite(t *testing.T) {
	// The handler refuses the INVITE as parley refuses an unknown user.
	s := startStack(t, handlers{sip.INVITE: func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sipmsg.NewResponse(req, 100, "Trying", ""))
		_ = tx.Respond(sipmsg.NewResponse(req, 404, "Not Found", ""))
	}})
	p := newUDPPeer(t, s.addr())
	inv := strings.Replace(request("INVITE", "Contact: <sip:1001@127.0.0.1:9>\r\n"), "INVITE sip:parley.lab", "INVITE sip:nobody@parley.lab", 1)
	p.send(inv)
	var final string
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		m := p.read(time.Second)
		if strings.HasPrefix(m, "SIP/2.0 ") && !strings.HasPrefix(m, "SIP/2.0 1") {
			final = m
			break
		}
	}
	if final == "" {
		t.Fatal("no final response to the INVITE")
	}
	// Without an ACK the final comes again after T1 (500 ms).
	if again := p.read(2 * time.Second); again != final {
		t.Fatalf("no retransmission of the final response: got %q", again)
	}
	res, err := sip.ParseMessage([]byte(final))
	if err != nil {
		t.Fatal(err)
	}
	inviteReq, err := sip.ParseMessage([]byte(inv))
	if err != nil {
		t.Fatal(err)
	}
	ack := AckFor(inviteReq.(*sip.Request), res.(*sip.Response))
	p.send(ack.String())
	// Drain what was in flight, then nothing more may come.
	_ = p.read(100 * time.Millisecond)
	if m := p.read(2500 * time.Millisecond); m != "" {
		t.Fatalf("response retransmitted after the ACK: %q", m)
	}
}
