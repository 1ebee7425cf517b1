package testcalls

import (
	"context"
	"strings"
	"testing"
	"time"
)

var (
	rangePaging        = rangeOf(31700)
	rangePagingBaresip = rangeOf(31800)
	portsPagingPager   = phonePorts{27340, 27359}
	portsPagingMemberA = phonePorts{27360, 27379}
	portsPagingMemberB = phonePorts{27380, 27399}
)

// TestPaging: 1001 dials paging group 700 (1001, 1002, 1003). parley calls
// every registered phone of 1002 and 1003 (not the pager) with the
// auto-answer hints and a sendonly offer of one codec; 1003's second phone
// is busy and is left out. The pager is answered recvonly; its RTP reaches
// both members who answered and nothing comes back to it. A member who
// hangs up leaves the page; the pager's hangup ends it for the rest.
func TestPaging(t *testing.T) {
	t.Parallel()
	pl := startParley(t, parleyConfig{Extra: rangePaging.yaml(nil, ""), Services: `{paging: {"700": ["1001", "1002", "1003"]}}`})
	pager := newParty(t, pl, "1001", 0xA)
	b := newParty(t, pl, "1002", 0xB)
	c := newParty(t, pl, "1003", 0xC)
	busy := newParty(t, pl, "1003", 0xD)
	busy.p.setMode(answerBusy)
	for _, x := range []*party{b, c, busy} {
		x.p.mustRegister()
	}

	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	call := pager.p.call(ctx, "700")
	call.mustAnswered(t)
	if body := string(call.Final.Body()); !strings.Contains(body, "a=recvonly") {
		t.Errorf("the pager is answered recvonly:\n%s", body)
	}
	pager.f.setDst(parseAudio(t, "200 to the pager", call.Final.Body()).Addr)
	calls := map[*party]*inboundCall{}
	for _, m := range []*party{b, c} {
		inv := m.want(t, evInvite, callTimeout)
		calls[m] = inv.Call
		req := inv.Req
		if ci := req.GetHeader("Call-Info"); ci == nil || !strings.Contains(ci.Value(), "answer-after=0") {
			t.Errorf("member %s: Call-Info %v, want answer-after=0", m.p.User, ci)
		}
		if ai := req.GetHeader("Alert-Info"); ai == nil || !strings.Contains(ai.Value(), "info=alert-autoanswer") {
			t.Errorf("member %s: Alert-Info %v, want info=alert-autoanswer", m.p.User, ai)
		}
		if u := req.From().Address.User; u != "1001" {
			t.Errorf("member %s: page from %q, want the pager 1001", m.p.User, u)
		}
		offer := string(req.Body())
		audio := parseAudio(t, "offer to a member", req.Body())
		if !strings.Contains(offer, "a=sendonly") || len(audio.Formats) != 1 {
			t.Errorf("member %s: offer, want one codec, sendonly:\n%s", m.p.User, offer)
		}
		m.f.setDst(audio.Addr)
	}
	busy.want(t, evInvite, callTimeout)
	pager.none(t, evInvite, 100*time.Millisecond)

	b.hears(t, pager, 0, 3*time.Second)
	c.hears(t, pager, 0, 3*time.Second)
	if n := pager.f.fromSSRC(b.ssrc) + pager.f.fromSSRC(c.ssrc); n != 0 {
		t.Errorf("the pager heard %d packets from the members; a page is one way", n)
	}

	// B hangs up: it leaves, the page goes on for C.
	calls[b].hangup(t)
	b.stop()
	pager.none(t, evBye, 300*time.Millisecond)
	c.hears(t, pager, c.f.fromSSRC(pager.ssrc), 2*time.Second)

	call.hangup(t)
	c.want(t, evBye, callTimeout)
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
}

// TestPagingPhones: real phones. A baresip pager plays a 440 Hz tone to
// group 700: a linphonec (auto-answering, recording what it hears) and a
// baresip (answermode auto) answer on their own. linphonec's recording
// carries the pager's tone; the baresip member receives the pager's RTP
// (told by the pager's SSRC in its RTP stack: baresip 1.0 records nothing
// of a recvonly stream); the pager receives no RTP at all.
func TestPagingPhones(t *testing.T) {
	t.Parallel()
	needParley(t)
	needSox(t)
	needBaresip(t)
	needLinphone(t)
	pl := startParley(t, parleyConfig{Extra: rangePagingBaresip.yaml([]string{"PCMU", "PCMA"}, ""), Services: `{paging: {"700": ["1002", "1003"]}}`})
	pager := startBaresip(t, pl, baresipConfig{Name: "pager", User: "1001", Source: "ausine,440", RTP: portsPagingPager})
	lin := startLinphone(t, pl, "member-1002", "1002", portsPagingMemberA)
	heard := linphoneAudio(t, lin, 1200)
	linphoneAutoAnswer(t, lin)
	bs := startBaresip(t, pl, baresipConfig{Name: "member-1003", User: "1003", Source: "ausine,1200", RTP: portsPagingMemberB})

	from, linFrom := pager.eventCount(), lin.outputLen()
	pager.command(t, "dial", "700")
	pager.waitEvent(t, from, "CALL_ESTABLISHED", nil)
	bs.waitEvent(t, 0, "CALL_ESTABLISHED", nil)
	linphoneAnswered(t, lin, linFrom)
	ssrc := pager.rtpSSRC(t)
	deadline := time.Now().Add(5 * time.Second)
	for bs.rtpReceivedFrom(t, ssrc) < 100 {
		if time.Now().After(deadline) {
			t.Fatalf("the baresip member received %d packets of the pager's RTP within 5 s", bs.rtpReceivedFrom(t, ssrc))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// baresip's report has no rcvd= before a stream received anything.
	if m := rtcpReceived.FindStringSubmatch(pager.command(t, "audio_debug", "")); m != nil && m[1] != "0" {
		t.Errorf("the pager received %s RTP packets; a page is one way", m[1])
	}
	from = pager.eventCount()
	pager.command(t, "hangup", "")
	pager.waitEvent(t, from, "CALL_CLOSED", nil)
	bs.waitEvent(t, 0, "CALL_CLOSED", nil)
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
	lin.send(t, "quit")
	select {
	case <-lin.exited:
	case <-time.After(5 * time.Second):
	}
	checkTone(t, "linphonec member hears the pager", readPCM(t, heard).measure(t, 0.5), 440, 1)
}
