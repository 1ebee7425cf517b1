package transaction

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// clientPeer is a UAS socket that parley's client transactions talk to.
type clientPeer struct {
	t *testing.T
	c *net.UDPConn
}

func newClientPeer(t *testing.T) *clientPeer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &clientPeer{t: t, c: c}
}

// read returns the next request and where it came from, or nil after d.
func (p *clientPeer) read(d time.Duration) (*sip.Request, *net.UDPAddr) {
	_ = p.c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 8192)
	n, from, err := p.c.ReadFromUDP(buf)
	if err != nil {
		return nil, nil
	}
	msg, err := sip.ParseMessage(buf[:n])
	if err != nil {
		p.t.Fatalf("parley sent something unparsable: %v\n%s", err, buf[:n])
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		p.t.Fatalf("parley sent a response: %s", buf[:n])
	}
	return req, from
}

func (p *clientPeer) respond(req *sip.Request, to *net.UDPAddr, code int, tag string) {
	res := sip.NewResponseFromRequest(req, code, "Test", nil)
	if tag != "" {
		res.To().Params.Add("tag", tag)
	}
	if _, err := p.c.WriteToUDP([]byte(res.String()), to); err != nil {
		p.t.Fatal(err)
	}
}

// clientRequest builds a request from s's UDP listener to the peer.
func clientRequest(s *stack, p *clientPeer, method sip.RequestMethod) *sip.Request {
	dst := p.c.LocalAddr().(*net.UDPAddr)
	req := sip.NewRequest(method, sip.Uri{Scheme: "sip", User: "peer", Host: "127.0.0.1", Port: dst.Port})
	local := s.conn.LocalAddr().(*net.UDPAddr)
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "127.0.0.1", Port: local.Port, Params: sip.NewParams()}
	via.Params.Add("branch", sip.GenerateBranchN(16))
	req.AppendHeader(via)
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "parley", Host: "127.0.0.1"}, Params: sip.NewParams()}
	from.Params.Add("tag", sipmsg.NewTag())
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: "peer", Host: "127.0.0.1"}, Params: sip.NewParams()})
	cid := sip.CallIDHeader(sipmsg.NewTag())
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: method})
	req.SetTransport("UDP")
	req.SetDestination(dst.String())
	req.Laddr = sip.Addr{IP: local.IP, Port: local.Port}
	return req
}

// TestClientTxNonInvite checks Timer E (the request again after T1 while
// unanswered) and that the final response reaches the handler once and
// stops the retransmissions.
func TestClientTxNonInvite(t *testing.T) {
	s := startStack(t, nil)
	p := newClientPeer(t)
	tx, err := s.send(clientRequest(s, p, sip.OPTIONS))
	if err != nil {
		t.Fatal(err)
	}
	first, from := p.read(2 * time.Second)
	if first == nil {
		t.Fatal("no OPTIONS")
	}
	if again, _ := p.read(2 * time.Second); again == nil || again.Via().Params.GetOr("branch", "") != first.Via().Params.GetOr("branch", "x") {
		t.Fatal("no retransmission of the unanswered OPTIONS (Timer E)")
	}
	p.respond(first, from, 200, "t1")
	wantFinal(t, tx, 200)
	if more, _ := p.read(1500 * time.Millisecond); more != nil {
		t.Fatalf("request sent again after its final response: %s", more.StartLine())
	}
}

// TestClientTxInvite checks RFC 3261 §17.1.1.3 (the transaction ACKs a
// non-2xx final, and again when it comes again) and RFC 6026 (a 2xx after
// the first goes to OnRetransmission, not to Responses).
func TestClientTxInvite(t *testing.T) {
	s := startStack(t, nil)
	p := newClientPeer(t)

	t.Run("486 gets an ACK", func(t *testing.T) {
		tx, err := s.send(clientRequest(s, p, sip.INVITE))
		if err != nil {
			t.Fatal(err)
		}
		inv, from := p.read(2 * time.Second)
		if inv == nil {
			t.Fatal("no INVITE")
		}
		for range 2 { // the 486, then its retransmission
			p.respond(inv, from, 486, "busy1")
			ack, _ := p.read(2 * time.Second)
			if ack == nil || !ack.IsAck() {
				t.Fatalf("no ACK for the 486, got %v", ack)
			}
			if ack.Via().Params.GetOr("branch", "") != inv.Via().Params.GetOr("branch", "x") || sipmsg.Tag(ack.To().Params) != "busy1" {
				t.Fatalf("ACK not in the INVITE's transaction:\n%s", ack)
			}
		}
		wantFinal(t, tx, 486)
		select {
		case res := <-tx.Responses():
			t.Fatalf("the retransmitted 486 reached the handler too (%d)", res.StatusCode)
		case <-time.After(200 * time.Millisecond):
		}
	})

	t.Run("2xx retransmission", func(t *testing.T) {
		tx, err := s.send(clientRequest(s, p, sip.INVITE))
		if err != nil {
			t.Fatal(err)
		}
		var again atomic.Int32
		tx.OnRetransmission(func(*sip.Response) { again.Add(1) })
		inv, from := p.read(2 * time.Second)
		if inv == nil {
			t.Fatal("no INVITE")
		}
		p.respond(inv, from, 200, "ok1")
		wantFinal(t, tx, 200)
		p.respond(inv, from, 200, "ok1")
		for deadline := time.Now().Add(2 * time.Second); again.Load() == 0; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the retransmitted 200 did not reach OnRetransmission")
			}
		}
		select {
		case res := <-tx.Responses():
			t.Fatalf("the retransmitted 200 reached Responses too (%d)", res.StatusCode)
		default:
		}
		if m, _ := p.read(700 * time.Millisecond); m != nil && !strings.HasPrefix(m.StartLine(), "ACK") {
			t.Fatalf("INVITE retransmitted after its 2xx: %s", m.StartLine())
		}
		tx.Terminate()
	})
}

// wantFinal waits for the handler's copy of the final response, which must
// have status code.
func wantFinal(t *testing.T, tx sip.ClientTransaction, code int) {
	t.Helper()
	select {
	case res := <-tx.Responses():
		if res.StatusCode != code {
			t.Fatalf("handler got %d, want %d", res.StatusCode, code)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("the %d did not reach the handler", code)
	}
}

// send starts a client transaction for req, to its destination.
func (s *stack) send(req *sip.Request) (sip.ClientTransaction, error) {
	return s.layer.Request(context.Background(), s.port, netip.MustParseAddrPort(req.Destination()), req)
}
