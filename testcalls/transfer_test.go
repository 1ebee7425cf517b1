package testcalls

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/sdp/v3"
)

var (
	rangeTransferLeaves   = rangeOf(31400)
	rangeTransferBlind    = rangeOf(31000)
	rangeTransferBusy     = rangeOf(31100)
	rangeTransferAttended = rangeOf(31200)
	rangeTransferReplaces = rangeOf(31300)
)

// party is a test phone with RTP of its own: a flow that sends packets of
// SSRC ssrc to wherever the phone's last SDP exchange said, and stops
// (as a phone stops on BYE) when stop is called.
type party struct {
	p    *phone
	f    *flow
	ssrc uint32
	stop context.CancelFunc
	// backlog keeps the events want read past: a transfer's NOTIFYs,
	// BYEs and ACKs reach a phone on goroutines of their own, in any
	// order.
	backlog []event
}

// want returns the next event of kind the phone got, within d, leaving
// the others for later calls.
func (x *party) want(t *testing.T, kind eventKind, d time.Duration) event {
	t.Helper()
	for i, e := range x.backlog {
		if e.Kind == kind {
			x.backlog = append(x.backlog[:i], x.backlog[i+1:]...)
			return e
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case e := <-x.p.events:
			if e.Kind == kind {
				return e
			}
			x.backlog = append(x.backlog, e)
		case <-timer.C:
			t.Fatalf("phone %s: no %s within %v", x.p.User, kind, d)
		}
	}
}

// none asserts that no event of kind arrives within d.
func (x *party) none(t *testing.T, kind eventKind, d time.Duration) {
	t.Helper()
	for _, e := range x.backlog {
		if e.Kind == kind {
			t.Errorf("phone %s: unexpected %s:\n%s", x.p.User, kind, e.Req)
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case e := <-x.p.events:
			if e.Kind == kind {
				t.Errorf("phone %s: unexpected %s:\n%s", x.p.User, kind, e.Req)
			}
			x.backlog = append(x.backlog, e)
		case <-timer.C:
			return
		}
	}
}

// newParty starts user's phone at parley pl with its own flow. The phone
// offers and answers with the flow's address, and a re-INVITE's offer
// points the flow at the address it names; a re-INVITE without one is
// answered with an offer.
func newParty(t *testing.T, pl *parley, user string, ssrc uint32) *party {
	t.Helper()
	x := &party{p: newPhone(t, user, pl.SIPAddr, "udp"), f: newFlow(t), ssrc: ssrc}
	x.useFlow(x.f)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	x.stop = cancel
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	x.f.run(ctx, &wg, ssrc)
	return x
}

// useFlow makes the phone's SDP name f (for a second call of one phone).
func (x *party) useFlow(f *flow) {
	port := f.port()
	x.p.setSDP(func(offer []byte) []byte {
		if len(offer) == 0 {
			return mediaOffer("127.0.0.1", port, "0", "8", "101")
		}
		return mediaAnswer(offer, "127.0.0.1", port)
	})
	x.p.mu.Lock()
	x.p.reinvite = func(req *sip.Request) []byte {
		if a, ok := audioAddr(req.Body()); ok {
			f.setDst(a)
			return mediaAnswer(req.Body(), "127.0.0.1", port)
		}
		return mediaOffer("127.0.0.1", port, "0", "8", "101")
	}
	x.p.mu.Unlock()
}

// audioAddr reads where an SDP's audio stream receives.
func audioAddr(body []byte) (netip.AddrPort, bool) {
	var sd sdp.SessionDescription
	if len(body) == 0 || sd.Unmarshal(body) != nil {
		return netip.AddrPort{}, false
	}
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media != "audio" {
			continue
		}
		c := sd.ConnectionInformation
		if m.ConnectionInformation != nil {
			c = m.ConnectionInformation
		}
		if c == nil || c.Address == nil {
			return netip.AddrPort{}, false
		}
		a, err := netip.ParseAddr(c.Address.Address)
		if err != nil {
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(a, uint16(m.MediaName.Port.Value)), true
	}
	return netip.AddrPort{}, false
}

// ackWithSDP waits for an ACK carrying SDP on x's phone (the answer to the
// offer its 2xx made) and points x's flow at it.
func (x *party) ackWithSDP(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(callTimeout)
	for {
		e := x.want(t, evAck, time.Until(deadline))
		if a, ok := audioAddr(e.Req.Body()); ok {
			x.f.setDst(a)
			return
		}
	}
}

// hears waits until x's flow received packets of from's SSRC, new ones
// since n were counted.
func (x *party) hears(t *testing.T, from *party, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for x.f.fromSSRC(from.ssrc) < n+5 {
		if time.Now().After(deadline) {
			t.Fatalf("phone %s heard %d packets of phone %s's RTP within %v (had %d before)", x.p.User, x.f.fromSSRC(from.ssrc)-n, from.p.User, d, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// notifies collects the NOTIFYs of a transfer's subscription that x's
// phone gets until one ends it, and checks each: Event refer with the
// REFER's CSeq as id, and a message/sipfrag status line. It returns the
// status lines.
func (x *party) notifies(t *testing.T, id uint32) []string {
	t.Helper()
	// The phone handles each request on a goroutine of its own, so they
	// reach the test in any order: the NOTIFYs are put back in parley's
	// order, their CSeq's.
	type notify struct {
		cseq uint32
		line string
	}
	var got []notify
	lines := func() []string {
		slices.SortFunc(got, func(a, b notify) int { return cmp.Compare(a.cseq, b.cseq) })
		out := make([]string, len(got))
		for i, n := range got {
			out[i] = n.line
		}
		return out
	}
	deadline := time.Now().Add(2 * callTimeout)
	for {
		n := x.want(t, evNotify, time.Until(deadline)).Req
		if ev := n.GetHeader("Event"); ev == nil || strings.ReplaceAll(ev.Value(), " ", "") != fmt.Sprintf("refer;id=%d", id) {
			t.Errorf("NOTIFY Event %v, want refer;id=%d", ev, id)
		}
		if ct := n.GetHeader("Content-Type"); ct == nil || !strings.HasPrefix(ct.Value(), "message/sipfrag") {
			t.Errorf("NOTIFY Content-Type %v, want message/sipfrag", ct)
		}
		got = append(got, notify{n.CSeq().SeqNo, strings.TrimSpace(string(n.Body()))})
		if ss := n.GetHeader("Subscription-State"); ss != nil && strings.HasPrefix(ss.Value(), "terminated") {
			// An earlier one still on its way is waited for a moment.
			for _, e := range x.p.drainNotifies(200 * time.Millisecond) {
				got = append(got, notify{e.CSeq().SeqNo, strings.TrimSpace(string(e.Body()))})
			}
			return lines()
		}
	}
}

// drainNotifies returns the NOTIFYs the phone gets within d, leaving other
// events in the queue's order for later.
func (p *phone) drainNotifies(d time.Duration) []*sip.Request {
	var out []*sip.Request
	var others []event
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case e := <-p.events:
			if e.Kind == evNotify {
				out = append(out, e.Req)
				continue
			}
			others = append(others, e)
		case <-timer.C:
			for _, e := range others {
				p.emit(e)
			}
			return out
		}
	}
}

// refer sends a REFER with Refer-To referTo on a dialog and wants 202.
func refer(t *testing.T, do func(context.Context, *sip.Request) (*sip.Response, error), target sip.Uri, referTo string) uint32 {
	t.Helper()
	req := sip.NewRequest(sip.REFER, target)
	req.AppendHeader(sip.NewHeader("Refer-To", referTo))
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	res, err := do(ctx, req)
	if err != nil || res.StatusCode != 202 {
		t.Fatalf("REFER: %v %v; want 202", res, err)
	}
	return req.CSeq().SeqNo
}

// threeParties starts parley on rng and the phones of 1001 (A), 1002 (B)
// and 1003 (C), B and C registered (C set up first by prepare when it is
// not nil), and has A call B with RTP both ways.
func threeParties(t *testing.T, rng rtpRange, prepare func(c *phone)) (pl *parley, a, b, c *party, mc *mediaCall) {
	t.Helper()
	pl = startParley(t, parleyConfig{Extra: rng.yaml(nil, "")})
	a = newParty(t, pl, "1001", 0xA)
	b = newParty(t, pl, "1002", 0xB)
	c = newParty(t, pl, "1003", 0xC)
	b.p.mustRegister()
	c.p.mustRegister()
	if prepare != nil {
		prepare(c.p)
	}
	mc = mustMediaCall(t, a.p, b.p)
	a.f.setDst(mc.CallerSees.Addr)
	b.f.setDst(mc.CalleeSees.Addr)
	return pl, a, b, c, mc
}

// TestTransferBlind: A calls B with RTP both ways; B transfers A to C
// with a REFER. parley answers 202, tells B how it goes in NOTIFYs (100,
// 180, 200), calls C itself as A (no offer, Referred-By B), hangs B up and
// re-INVITEs A onto C's media. A and C hear each other, B is gone, parley
// lists one call, and C's hangup ends it on both sides.
func TestTransferBlind(t *testing.T) {
	t.Parallel()
	pl, a, b, c, mc := threeParties(t, rangeTransferBlind, nil)
	a.hears(t, b, 0, 3*time.Second)
	b.hears(t, a, 0, 3*time.Second)

	id := refer(t, mc.In.Call.Session.Do, mc.In.Req.Contact().Address, "<sip:1003@parley.lab>")
	inv := c.want(t, evInvite, callTimeout)
	if len(inv.Req.Body()) != 0 {
		t.Errorf("parley's INVITE to the transfer target carries an offer; it asks C for one:\n%s", inv.Req.Body())
	}
	if u := inv.Req.From().Address.User; u != "1001" {
		t.Errorf("transfer target sees a call from %q, want the transferee 1001", u)
	}
	if rb := inv.Req.GetHeader("Referred-By"); rb == nil || !strings.Contains(rb.Value(), "1002") {
		t.Errorf("INVITE to the target: Referred-By %v, want the transferor 1002", rb)
	}
	c.ackWithSDP(t)
	lines := b.notifies(t, id)
	if len(lines) < 2 || lines[0] != "SIP/2.0 100 Trying" || lines[len(lines)-1] != "SIP/2.0 200 OK" {
		t.Errorf("transferor's NOTIFYs: %q, want 100 Trying first and 200 OK last", lines)
	}
	b.want(t, evBye, callTimeout)
	b.stop()

	heardA, heardC := c.f.fromSSRC(a.ssrc), a.f.fromSSRC(c.ssrc)
	c.hears(t, a, heardA, 3*time.Second)
	a.hears(t, c, heardC, 3*time.Second)
	calls := pl.apiCalls(t)
	if len(calls) != 1 || calls[0].From != "1001" || calls[0].To != "1003" {
		t.Fatalf("calls after the transfer: %+v; want one, 1001 to 1003", calls)
	}
	a.none(t, evBye, 200*time.Millisecond)

	inv.Call.hangup(t)
	a.want(t, evBye, callTimeout)
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
	pl.waitMetric(t, time.Second, equals(1), "parley_transfers_total", "result", "done")
}

// TestTransferBlindTransferorLeaves: the caller A transfers its callee B
// to C and hangs up at once, before C answers, as some phones do. A's BYE
// ends only A's leg: parley goes on calling C, and when C answers, B is
// moved onto C's media. B never gets a BYE.
func TestTransferBlindTransferorLeaves(t *testing.T) {
	t.Parallel()
	pl, a, b, c, mc := threeParties(t, rangeTransferLeaves, func(c *phone) {
		c.mu.Lock()
		c.ring = 500 * time.Millisecond
		c.mu.Unlock()
	})
	b.hears(t, a, 0, 3*time.Second)

	refer(t, mc.Out.Session.Do, mc.Out.Session.InviteResponse.Contact().Address, "<sip:1003@parley.lab>")
	mc.Out.hangup(t)
	a.stop()
	inv := c.want(t, evInvite, callTimeout)
	if u := inv.Req.From().Address.User; u != "1002" {
		t.Errorf("transfer target sees a call from %q, want the transferee 1002", u)
	}
	c.ackWithSDP(t)
	heardB, heardC := c.f.fromSSRC(b.ssrc), b.f.fromSSRC(c.ssrc)
	c.hears(t, b, heardB, 3*time.Second)
	b.hears(t, c, heardC, 3*time.Second)
	b.none(t, evBye, 100*time.Millisecond)
	calls := pl.apiCalls(t)
	if len(calls) != 1 || calls[0].From != "1003" || calls[0].To != "1002" {
		t.Fatalf("calls after the transfer: %+v; want one, between 1003 and 1002", calls)
	}
	mc.In.Call.hangup(t)
	c.want(t, evBye, callTimeout)
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
}

// TestTransferBlindBusy: a blind transfer to a busy phone fails. The
// transferor hears why (NOTIFY with the 486), nobody is hung up, and its
// call with the transferee goes on, media and all.
func TestTransferBlindBusy(t *testing.T) {
	t.Parallel()
	pl, a, b, _, mc := threeParties(t, rangeTransferBusy, func(c *phone) {
		c.setMode(answerBusy)
	})

	id := refer(t, mc.In.Call.Session.Do, mc.In.Req.Contact().Address, "<sip:1003@parley.lab>")
	lines := b.notifies(t, id)
	if last := lines[len(lines)-1]; last != "SIP/2.0 486 Busy Here" {
		t.Errorf("transferor's last NOTIFY says %q, want SIP/2.0 486 Busy Here", last)
	}
	a.none(t, evBye, 300*time.Millisecond)
	b.none(t, evBye, 10*time.Millisecond)
	heardA, heardB := b.f.fromSSRC(a.ssrc), a.f.fromSSRC(b.ssrc)
	b.hears(t, a, heardA, 2*time.Second)
	a.hears(t, b, heardB, 2*time.Second)
	if n := len(pl.apiCalls(t)); n != 1 {
		t.Fatalf("%d calls after a failed transfer, want the one call", n)
	}
	mc.Out.hangup(t)
	b.want(t, evBye, callTimeout)
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
	pl.waitMetric(t, time.Second, equals(1), "parley_transfers_total", "result", "failed")
}

// TestTransferAttended: A calls B, then C, and transfers B to C with a
// REFER whose Refer-To carries Replaces naming A's dialog of the second
// call. parley joins B and C into one call (C is asked for an offer, which
// goes to B), both of A's legs get BYE, B and C hear each other, and one
// call is left; B's hangup ends it.
func TestTransferAttended(t *testing.T) {
	t.Parallel()
	pl, a, b, c, mc1 := threeParties(t, rangeTransferAttended, nil)
	// A's second call has media of its own.
	a2 := newFlow(t)
	a.useFlow(a2)
	mc2 := mustMediaCall(t, a.p, c.p)
	c.f.setDst(mc2.CalleeSees.Addr)
	b.hears(t, a, 0, 3*time.Second)
	a.useFlow(a.f)

	s2 := mc2.Out.Session
	replaces := fmt.Sprintf("%s;to-tag=%s;from-tag=%s", s2.InviteRequest.CallID().Value(),
		tagOf(s2.InviteResponse.To().Params), tagOf(s2.InviteRequest.From().Params))
	referTo := "<sip:1003@parley.lab?Replaces=" + escapeURIHeader(replaces) + ">"
	id := refer(t, mc1.Out.Session.Do, mc1.Out.Session.InviteResponse.Contact().Address, referTo)
	lines := a.notifies(t, id)
	if last := lines[len(lines)-1]; last != "SIP/2.0 200 OK" {
		t.Errorf("transferor's last NOTIFY says %q, want SIP/2.0 200 OK", last)
	}
	// A's two legs end.
	a.want(t, evBye, callTimeout)
	a.want(t, evBye, callTimeout)
	a.stop()
	// C offered in its 2xx to the re-INVITE; the ACK brings B's answer.
	c.ackWithSDP(t)

	heardB, heardC := c.f.fromSSRC(b.ssrc), b.f.fromSSRC(c.ssrc)
	c.hears(t, b, heardB, 3*time.Second)
	b.hears(t, c, heardC, 3*time.Second)
	calls := pl.apiCalls(t)
	if len(calls) != 1 || calls[0].From != "1003" || calls[0].To != "1002" {
		t.Fatalf("calls after the attended transfer: %+v; want one, between 1003 and 1002", calls)
	}
	mc1.In.Call.hangup(t)
	c.want(t, evBye, callTimeout)
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
	pl.waitMetric(t, time.Second, equals(1), "parley_transfers_total", "result", "done")
	// Both calls leave a record (cdr.path's default, in parley's working
	// directory): the one joined into the other says so.
	recs := readRecords(t, filepath.Join(filepath.Dir(pl.ConfigPath), "data", "cdr.csv"), 2, 3*time.Second)
	if !strings.HasPrefix(recs[0][colReason], "joined to call "+recs[1][colUniqueID]) || recs[0][colDisposition] != "ANSWERED" ||
		recs[1][colReason] != "BYE from callee" {
		t.Errorf("records after the attended transfer: %q", recs)
	}
}

// TestInviteReplaces: a second phone of user 1001 takes over 1001's call
// with B by an INVITE with Replaces (RFC 3891): parley hangs up the first
// phone, re-INVITEs B with the new phone's offer and answers the new phone
// with B's answer. Another user's INVITE with the same Replaces gets 403.
// A third phone of 1001 then takes over without an offer of its own.
func TestInviteReplaces(t *testing.T) {
	t.Parallel()
	pl := startParley(t, parleyConfig{Extra: rangeTransferReplaces.yaml(nil, "")})
	a := newParty(t, pl, "1001", 0xA)
	b := newParty(t, pl, "1002", 0xB)
	b.p.mustRegister()
	mc := mustMediaCall(t, a.p, b.p)
	a.f.setDst(mc.CallerSees.Addr)
	b.f.setDst(mc.CalleeSees.Addr)
	b.hears(t, a, 0, 3*time.Second)

	s := mc.Out.Session
	replaces := fmt.Sprintf("%s;to-tag=%s;from-tag=%s", s.InviteRequest.CallID().Value(),
		tagOf(s.InviteResponse.To().Params), tagOf(s.InviteRequest.From().Params))

	other := newParty(t, pl, "1003", 0xD)
	if res := other.inviteReplacing(t, "1002", replaces, true); res.Final == nil || res.Final.StatusCode != 403 {
		t.Fatalf("another user's INVITE with Replaces: %v (%v); want 403", res.codes(), res.Err)
	}
	a2 := newParty(t, pl, "1001", 0xA2)
	res := a2.inviteReplacing(t, "1002", replaces, true)
	res.mustAnswered(t)
	a2.f.setDst(parseAudio(t, "200 to the replacing INVITE", res.Final.Body()).Addr)
	a.want(t, evBye, callTimeout)
	a.stop()

	heardA2, heardB := b.f.fromSSRC(a2.ssrc), a2.f.fromSSRC(b.ssrc)
	b.hears(t, a2, heardA2, 3*time.Second)
	a2.hears(t, b, heardB, 3*time.Second)
	if n := len(pl.apiCalls(t)); n != 1 {
		t.Fatalf("%d calls after the INVITE with Replaces, want 1", n)
	}

	// A third phone of 1001 takes the call over from the second with an
	// INVITE without an offer: B is asked for one, which reaches the new
	// phone in the 200, and the answer in its ACK goes back to B.
	s2 := res.Session
	replaces = fmt.Sprintf("%s;to-tag=%s;from-tag=%s", s2.InviteRequest.CallID().Value(),
		tagOf(s2.InviteResponse.To().Params), tagOf(s2.InviteRequest.From().Params))
	a3 := newParty(t, pl, "1001", 0xA3)
	res = a3.inviteReplacing(t, "1002", replaces, false)
	res.mustAnswered(t)
	a3.f.setDst(parseAudio(t, "200 to the replacing INVITE without an offer", res.Final.Body()).Addr)
	a2.want(t, evBye, callTimeout)
	a2.stop()
	heardA3, heardB := b.f.fromSSRC(a3.ssrc), a3.f.fromSSRC(b.ssrc)
	b.hears(t, a3, heardA3, 3*time.Second)
	a3.hears(t, b, heardB, 3*time.Second)

	res.hangup(t)
	b.want(t, evBye, callTimeout)
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
}

// inviteReplacing places a call from x's phone to user with a Replaces
// header, answering parley's challenge, and ACKs a 2xx. With offer unset
// the INVITE carries no SDP, and the ACK answers the 2xx's offer.
func (x *party) inviteReplacing(t *testing.T, user, replaces string, offer bool) *outboundCall {
	t.Helper()
	p := x.p
	req := p.newRequest(sip.INVITE, user, sip.Uri{Scheme: "sip", User: user, Host: "parley.lab"})
	req.AppendHeader(sip.NewHeader("Replaces", replaces))
	if offer {
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(p.sdpBody(nil))
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	sess, err := p.calls.WriteInvite(ctx, req)
	if err != nil {
		t.Fatalf("INVITE with Replaces: %v", err)
	}
	c := &outboundCall{Session: sess}
	c.Err = sess.WaitAnswer(ctx, sipgo.AnswerOptions{Username: p.User, Password: p.Password,
		OnResponse: func(res *sip.Response) error {
			c.Responses = append(c.Responses, res)
			if !res.IsProvisional() {
				c.Final = res
			}
			return nil
		}})
	switch {
	case c.Err != nil:
	case offer:
		if err := sess.Ack(ctx); err != nil {
			t.Errorf("ACK: %v", err)
		}
	default:
		res := sess.InviteResponse
		ack := sip.NewRequest(sip.ACK, res.Contact().Address)
		ack.AppendHeader(sip.HeaderClone(sess.InviteRequest.From()))
		ack.AppendHeader(sip.HeaderClone(res.To()))
		ack.AppendHeader(sip.HeaderClone(sess.InviteRequest.CallID()))
		ack.AppendHeader(&sip.CSeqHeader{SeqNo: sess.InviteRequest.CSeq().SeqNo, MethodName: sip.ACK})
		ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		ack.SetBody(p.sdpBody(res.Body()))
		if err := sess.WriteAck(ctx, ack); err != nil {
			t.Errorf("ACK with the answer: %v", err)
		}
	}
	return c
}

// tagOf is the tag parameter of a From or To.
func tagOf(p sip.HeaderParams) string {
	v, _ := p.Get("tag")
	return v
}

// escapeURIHeader escapes a header value for a URI's ?headers part (RFC
// 3261 §19.1.1): the ; = @ and such of a Replaces value.
func escapeURIHeader(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		ch := v[i]
		if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || strings.IndexByte("-_.!~*'()", ch) >= 0 {
			b.WriteByte(ch)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", ch)
	}
	return b.String()
}
