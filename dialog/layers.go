package dialog

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/emiago/sipgo/sip"

	"github.com/parley-sip/parley/dialog/sipmsg"
	"github.com/parley-sip/parley/dialog/transaction"
	"github.com/parley-sip/parley/dialog/transport"
)

// The B2BUA's seams with the layers below it: what the transaction layer
// hands up (txHandler), what the transport hands the transaction layer
// (txSink), and how a request parley sends finds its way down (request,
// write): parley's own transactions over UDP to an address, sipgo's for
// TCP and host names.

// txHandler is the B2BUA as the transaction layer's Handler.
type txHandler struct{ s *Server }

func (h txHandler) Handle(req *sip.Request, tx sip.ServerTransaction) {
	h.s.handle(h.s.handlerFor(req.Method), req, tx)
}

func (h txHandler) Inline(m sip.RequestMethod) bool { return h.s.quick[m] }

// txSink gives what a UDP port reads to the transaction layer.
type txSink struct{ l *transaction.Layer }

func (t txSink) Request(p *transport.UDPPort, req *sip.Request, src netip.AddrPort) {
	t.l.Receive(p, req, src)
}

func (t txSink) Response(res *sip.Response) bool { return t.l.ReceiveResponse(res) }

// udpTarget returns the UDP port and address req goes to when parley
// sends it itself: over UDP, from a UDP listener, to an IP address.
func (s *Server) udpTarget(req *sip.Request) (*transport.UDPPort, netip.AddrPort, bool) {
	if req.Transport() != "UDP" {
		return nil, netip.AddrPort{}, false
	}
	dst, err := netip.ParseAddrPort(req.Destination())
	if err != nil {
		return nil, netip.AddrPort{}, false
	}
	// The listener route chose (listenerFor): its port and, with an IPv4
	// and an IPv6 listener on one port, its address.
	for _, ln := range s.listeners {
		if ln.Port != nil && ln.PortNumber() == req.Laddr.Port && (req.Laddr.IP == nil || ln.IP().Equal(req.Laddr.IP)) {
			return ln.Port, dst, true
		}
	}
	return nil, netip.AddrPort{}, false
}

// request sends req, which newRequest built, in a client transaction.
//
// Over TCP and TLS, parley first sends on the phone's flow: the connection its
// REGISTER or INVITE came over, at its source address. When that flow is
// gone (parley restarted, the phone's NAT or its connection closed),
// parley opens a new connection to the phone's Contact, the Request-URI,
// unless the phone asked for RFC 5626 outbound (";ob" in its Contact):
// such a phone is reached only over its own flows (§5.3), and the request
// fails with 480 until it connects again; so does a phone that answers
// neither way. The failure is never a 503: parley is fine, the phone is
// unreachable.
func (s *Server) request(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	port, dst, ok := s.udpTarget(req)
	if ok {
		return s.tx.Request(ctx, port, dst, req)
	}
	tx, err := s.client.TransactionRequest(ctx, req, prebuilt)
	if err == nil || (req.Transport() != "TCP" && req.Transport() != "TLS") {
		return tx, err
	}
	unreachable := func(why string) error {
		return &sipmsg.Error{Code: 480, Reason: "Temporarily Unavailable", Warning: why}
	}
	if req.Recipient.UriParams != nil && req.Recipient.UriParams.Has("ob") {
		return nil, unreachable("the phone's outbound flow is gone (RFC 5626): " + errText(err))
	}
	alt := uriDest(req.Recipient)
	// A Request-URI naming a host (a route resolved by DNS) is no phone's
	// Contact to fall back on: its targets are tried by placeCall.
	if _, perr := netip.ParseAddrPort(alt); perr != nil || alt == req.Destination() {
		return nil, unreachable(errText(err))
	}
	flowErr := err
	req.SetDestination(alt)
	if tx, err = s.client.TransactionRequest(ctx, req, prebuilt); err != nil {
		return nil, unreachable(fmt.Sprintf("its flow: %s; its Contact %s: %s", errText(flowErr), alt, errText(err)))
	}
	return tx, nil
}

// write sends a request outside any transaction: an ACK to a 2xx.
func (s *Server) write(req *sip.Request) error {
	port, dst, ok := s.udpTarget(req)
	if !ok {
		return s.client.WriteRequest(req, prebuilt)
	}
	return transaction.Write(port, dst, req)
}
