package testcalls

import (
	"context"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

var rangeLateOffer = rangeOf(21700)

// TestMediaLateOffer: the caller's INVITE has no SDP, so the callee's 200
// carries the offer and the caller's ACK the answer (RFC 3261 §13.2.1).
// parley rewrites both for the relay, and RTP flows both ways through it.
func TestMediaLateOffer(t *testing.T) {
	r := rangeLateOffer
	pl := startParley(t, parleyConfig{Extra: r.yaml(nil, "")})
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()
	aSock, bSock := newRTPSocket(t), newRTPSocket(t)
	bob.useRTPSocket(bSock)

	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req := alice.newRequest(sip.INVITE, "1002", sip.Uri{Scheme: "sip", User: "1002", Host: "parley.lab"})
	sess, err := alice.calls.WriteInvite(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.WaitAnswer(ctx, sipgo.AnswerOptions{Username: alice.User, Password: alice.Password}); err != nil {
		t.Fatalf("late-offer call not answered: %v", err)
	}
	in := bob.mustEvent(evInvite)
	if len(in.Req.Body()) != 0 {
		t.Fatalf("parley put SDP in a late-offer INVITE:\n%s", in.Req.Body())
	}
	offer := sess.InviteResponse.Body()
	callerSees := parseAudio(t, "offer in the 200 to the caller", offer)
	checkRelayed(t, "offer in the 200 to the caller", callerSees, r.Min, r.Max, bSock.Addr())

	ack := sip.NewRequest(sip.ACK, sess.InviteResponse.Contact().Address)
	ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	ack.SetBody(mediaAnswer(offer, "127.0.0.1", aSock.Port()))
	if err := sess.WriteAck(ctx, ack); err != nil {
		t.Fatal(err)
	}
	bobAck := bob.mustEvent(evAck)
	calleeSees := parseAudio(t, "answer in the ACK to the callee", bobAck.Req.Body())
	checkRelayed(t, "answer in the ACK to the callee", calleeSees, r.Min, r.Max, aSock.Addr())
	if t.Failed() {
		t.FailNow()
	}

	mc := &mediaCall{CallerSees: callerSees, CalleeSees: calleeSees}
	a := rtpStream{Tag: 0xA3, SSRC: 0x1001CCCC, PayloadType: firstPT(t, callerSees), Count: packetsPerSide, Interval: 10 * time.Millisecond}
	b := rtpStream{Tag: 0xB4, SSRC: 0x1002DDDD, PayloadType: firstPT(t, calleeSees), Count: packetsPerSide, Interval: 10 * time.Millisecond}
	aGot, bGot := exchange(t, aSock, bSock, mc, a, b)
	checkStream(t, "caller → callee", bGot, a, calleeSees.Addr)
	checkStream(t, "callee → caller", aGot, b, callerSees.Addr)

	if err := sess.Bye(ctx); err != nil {
		t.Fatalf("caller BYE: %v", err)
	}
	sess.Close()
	bob.mustEvent(evBye)
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_rtp_ports_in_use")
}

// TestMediaBadSDP: an INVITE whose SDP does not parse gets 400 with a
// Warning saying why, and reaches nobody.
func TestMediaBadSDP(t *testing.T) {
	pl := startParley(t, parleyConfig{Extra: rangeLateOffer.yaml(nil, "")})
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()
	alice.setSDP(func([]byte) []byte { return []byte("v=0\r\nthis is not SDP\r\n") })
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	c := alice.call(ctx, "1002")
	if c.Final == nil || c.Final.StatusCode != 400 {
		t.Fatalf("INVITE with broken SDP: final %v, want 400", c.Final)
	}
	if w := c.Final.GetHeader("Warning"); w == nil || w.Value() == "" {
		t.Fatalf("400 without a Warning:\n%s", c.Final)
	}
	bob.noEvent(evInvite, 300*time.Millisecond)
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_rtp_ports_in_use")
}
