package transaction

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
	"github.com/parley-sip/parley/dialog/transport"
)

// handlers serves the methods it has; any other request gets no answer
// from it, so the layer's own 500 is what goes out.
type handlers map[sip.RequestMethod]func(*sip.Request, sip.ServerTransaction)

func (h handlers) Handle(req *sip.Request, tx sip.ServerTransaction) {
	if f := h[req.Method]; f != nil && tx != nil {
		f(req, tx)
	}
}

func (h handlers) Inline(sip.RequestMethod) bool { return false }

// sink gives what a transport port reads to the layer, as dialog does.
type sink struct{ l *Layer }

func (s sink) Request(p *transport.UDPPort, req *sip.Request, src netip.AddrPort) {
	s.l.Receive(p, req, src)
}
func (s sink) Response(res *sip.Response) bool { return s.l.ReceiveResponse(res) }

// stack is a transaction layer on a real UDP socket of parley's transport.
type stack struct {
	layer *Layer
	port  *transport.UDPPort
	conn  *net.UDPConn
}

func (s *stack) addr() string { return s.conn.LocalAddr().String() }

func startStack(t *testing.T, h handlers) *stack {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	layer := New(h, WithLogger(log))
	port := transport.NewUDPPort(conn, transport.NewLenientParser(), sink{layer}, log)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); port.Serve() }()
	go func() { defer wg.Done(); layer.Run(done) }()
	t.Cleanup(func() {
		close(done)
		conn.Close()
		wg.Wait()
	})
	return &stack{layer: layer, port: port, conn: conn}
}

// request is a request outside any dialog, as a phone would send it.
func request(method, extra string) string {
	return method + " sip:parley.lab SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-" + method + "-" + sipmsg.NewTag() + ";rport\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:1001@parley.lab>;tag=f1\r\nTo: <sip:parley.lab>\r\n" +
		"Call-ID: " + sipmsg.NewTag() + "\r\nCSeq: 1 " + method + "\r\n" + extra + "Content-Length: 0\r\n\r\n"
}
