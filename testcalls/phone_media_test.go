package testcalls

import (
	"context"
	"net"
	"testing"
	"time"
)

// setSDP makes the phone write its SDP with fn: fn(nil) is the offer of a
// call it places, fn(offer) its answer to an INVITE carrying offer. A nil
// fn restores the default G.711 offer on a port nothing listens on.
func (p *phone) setSDP(fn func(offer []byte) []byte) {
	p.mu.Lock()
	p.sdp = fn
	p.mu.Unlock()
}

// sdpBody is the phone's SDP offer (offer nil) or answer to offer.
func (p *phone) sdpBody(offer []byte) []byte {
	p.mu.Lock()
	fn := p.sdp
	p.mu.Unlock()
	if fn == nil {
		return sdpOffer(p.Addr)
	}
	return fn(offer)
}

// useRTPSocket makes the phone offer, and answer with, sock's address, so
// that RTP sent to it reaches the test.
func (p *phone) useRTPSocket(sock *rtpSocket) {
	host, _, _ := net.SplitHostPort(p.Addr)
	p.setSDP(func(offer []byte) []byte {
		if offer == nil {
			return mediaOffer(host, sock.Port(), "0", "8", "101")
		}
		return mediaAnswer(offer, host, sock.Port())
	})
}

// mediaCall is an answered call between two phones, with what each side's
// SDP said.
type mediaCall struct {
	Out *outboundCall
	In  event
	// CallerSees is the audio stream of the answer the caller got: where
	// the caller sends RTP.
	CallerSees sdpAudio
	// CalleeSees is the audio stream of the offer the callee got: where
	// the callee sends RTP.
	CalleeSees sdpAudio
}

// mustMediaCall has caller call callee's user and waits for the answer and
// the callee's ACK.
func mustMediaCall(t *testing.T, caller, callee *phone) *mediaCall {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	c := caller.call(ctx, callee.User)
	c.mustAnswered(t)
	in := callee.mustEvent(evInvite)
	select {
	case <-in.Call.Answered:
	case <-time.After(callTimeout):
		t.Fatalf("callee %s: the 200 was never ACKed", callee.User)
	}
	return &mediaCall{
		Out:        c,
		In:         in,
		CallerSees: parseAudio(t, "200 to the caller", c.Final.Body()),
		CalleeSees: parseAudio(t, "INVITE to the callee", in.Req.Body()),
	}
}
