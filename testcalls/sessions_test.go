package testcalls

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Relay port blocks of the mid-call tests (see rtpRange).
var (
	rangeHold        = rangeOf(23000)
	rangeGlare       = rangeOf(23100)
	rangeMaxDuration = rangeOf(23200)
)

// Kinds of in-dialog request a phone that answers them reports.
const (
	evReinvite eventKind = "re-INVITE"
	evUpdate   eventKind = "UPDATE"
)

// inDialog is how a phone answers re-INVITEs and UPDATEs (see answerInDialog).
type inDialog struct {
	mu sync.Mutex
	// gate, when set, holds every answer until it is closed.
	gate chan struct{}
}

// hold makes the phone's answers wait until the returned function runs.
func (d *inDialog) hold() (release func()) {
	g := make(chan struct{})
	d.mu.Lock()
	d.gate = g
	d.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			d.mu.Lock()
			d.gate = nil
			d.mu.Unlock()
			close(g)
		})
	}
}

// answerInDialog makes p answer re-INVITEs and UPDATEs (RFC 3311) inside
// its calls with 200: an SDP offer gets the phone's answer (see setSDP) in
// the direction that mirrors the offer's (RFC 3264 §6.1), a re-INVITE
// without SDP gets an offer. Each is reported as evReinvite or evUpdate.
// The phone's first INVITE handler still takes new calls. Call it before
// the phone sends anything: sipgo's handler map has no lock, and the
// phone's first request is what orders this write before the reads of the
// requests that arrive.
func (p *phone) answerInDialog() *inDialog {
	d := &inDialog{}
	p.srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		if to := req.To(); to != nil && to.Params != nil && to.Params.Has("tag") {
			p.onInDialog(d, evReinvite, req, tx)
			return
		}
		p.onInvite(req, tx)
	})
	p.srv.OnUpdate(func(req *sip.Request, tx sip.ServerTransaction) {
		p.onInDialog(d, evUpdate, req, tx)
	})
	return d
}

func (p *phone) onInDialog(d *inDialog, kind eventKind, req *sip.Request, tx sip.ServerTransaction) {
	p.emit(event{Kind: kind, Req: req})
	d.mu.Lock()
	gate := d.gate
	d.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-time.After(callTimeout):
		}
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.AppendHeader(p.contact.Clone())
	switch {
	case len(req.Body()) > 0:
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		res.SetBody(mirrorDirection(req.Body(), p.sdpBody(req.Body())))
	case kind == evReinvite:
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		res.SetBody(p.sdpBody(nil))
	}
	// An answer that cannot be sent shows at parley's side; logging here
	// could outlive the test (a held answer is released at its end).
	_ = tx.Respond(res)
}

// sdpDirection is the audio stream's direction attribute (sendrecv when
// there is none, RFC 3264 §5.1).
func sdpDirection(body []byte) string {
	for _, line := range strings.Split(string(body), "\n") {
		switch a := strings.TrimSpace(line); a {
		case "a=sendonly", "a=recvonly", "a=inactive", "a=sendrecv":
			return strings.TrimPrefix(a, "a=")
		}
	}
	return "sendrecv"
}

// withDirection replaces the direction attribute of body with dir.
func withDirection(body []byte, dir string) []byte {
	s := string(body)
	for _, d := range []string{"sendrecv", "sendonly", "recvonly", "inactive"} {
		s = strings.ReplaceAll(s, "a="+d+"\r\n", "a="+dir+"\r\n")
	}
	return []byte(s)
}

// mirrorDirection gives answer the direction that answers offer's.
func mirrorDirection(offer, answer []byte) []byte {
	dir := map[string]string{"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive", "sendrecv": "sendrecv"}[sdpDirection(offer)]
	return withDirection(answer, dir)
}

// dialogSession is what the phones' two kinds of sipgo dialog share.
type dialogSession interface {
	Do(ctx context.Context, req *sip.Request) (*sip.Response, error)
	WriteRequest(req *sip.Request) error
}

// sendInDialog sends method (INVITE or UPDATE) with an SDP body (nil for
// none) to target inside the dialog s, and ACKs a 2xx to an INVITE.
func sendInDialog(s dialogSession, target sip.Uri, method sip.RequestMethod, body []byte) (*sip.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req := sip.NewRequest(method, target)
	if body != nil {
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(body)
	}
	res, err := s.Do(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	if method == sip.INVITE && res.IsSuccess() {
		if err := s.WriteRequest(sip.NewRequest(sip.ACK, target)); err != nil {
			return res, fmt.Errorf("ACK: %w", err)
		}
	}
	return res, nil
}

// mustInDialog is sendInDialog that wants a 2xx, with SDP when body had one.
func mustInDialog(t *testing.T, who string, s dialogSession, target sip.Uri, method sip.RequestMethod, body []byte) *sip.Response {
	t.Helper()
	res, err := sendInDialog(s, target, method, body)
	if err != nil {
		t.Fatalf("%s's %s: %v", who, method, err)
	}
	if !res.IsSuccess() {
		t.Fatalf("%s's %s: %d %s, want 2xx:\n%s", who, method, res.StatusCode, res.Reason, res)
	}
	if body != nil && len(res.Body()) == 0 {
		t.Fatalf("%s's %s carried an offer; its 200 has no answer:\n%s", who, method, res)
	}
	return res
}

// callerDialog and calleeDialog return the sipgo session and the remote
// target (parley's Contact) of each side of a mediaCall.
func (mc *mediaCall) callerDialog() (dialogSession, sip.Uri) {
	return mc.Out.Session, mc.Out.Session.InviteResponse.Contact().Address
}

func (mc *mediaCall) calleeDialog() (dialogSession, sip.Uri) {
	return mc.In.Call.Session, mc.In.Req.Contact().Address
}

// waitCallState waits until parley's one call is in state, by both
// GET /api/calls and parley_calls{state}.
func waitCallState(t *testing.T, pl *parley, state string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	var calls []apiCall
	for {
		calls = pl.apiCalls(t)
		if len(calls) == 1 && calls[0].State == state {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("GET /api/calls: %+v; want one call in state %q within %v", calls, state, d)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	pl.waitMetric(t, d, equals(1), "parley_calls", "state", state)
	for _, other := range []string{"active", "suspended"} {
		if other != state {
			pl.waitMetric(t, d, equals(0), "parley_calls", "state", other)
		}
	}
}

// flows sends n packets each way, the caller to callerSees and the callee
// to calleeSees, and checks both arrive intact.
func flows(t *testing.T, what string, aSock, bSock *rtpSocket, callerSees, calleeSees sdpAudio, n int) {
	t.Helper()
	mc := &mediaCall{CallerSees: callerSees, CalleeSees: calleeSees}
	tag := byte(len(what))
	a := rtpStream{Tag: 0xC0 ^ tag, SSRC: 0xC0C0C000 | uint32(tag), PayloadType: firstPT(t, callerSees), Count: n, Interval: 10 * time.Millisecond}
	b := rtpStream{Tag: 0xD0 ^ tag, SSRC: 0xD0D0D000 | uint32(tag), PayloadType: firstPT(t, calleeSees), Count: n, Interval: 10 * time.Millisecond}
	aGot, bGot := exchange(t, aSock, bSock, mc, a, b)
	checkStream(t, what+": caller → callee", bGot, a, netip.AddrPort{})
	checkStream(t, what+": callee → caller", aGot, b, netip.AddrPort{})
}

// TestHoldResume: either side puts the call on hold and takes it off again,
// with re-INVITE or UPDATE. parley passes each offer to the other leg with
// its own relay address, the call moves to "suspended" (a=sendonly or
// a=inactive) and back to "active" in GET /api/calls and parley_calls, and
// RTP flows again after the resume. A re-INVITE that changes the codec
// mid-call works too.
func TestHoldResume(t *testing.T) {
	t.Parallel()
	r := rangeHold
	pl := startParley(t, parleyConfig{Extra: r.yaml(nil, "") + "sessions:\n  drain_grace: 1s\n"})
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	// Handlers before the first request: sipgo's handler map has no lock,
	// and the REGISTER orders these writes before any request arrives.
	alice.answerInDialog()
	bob.answerInDialog()
	alice.mustRegister()
	bob.mustRegister()
	aSock, bSock := newRTPSocket(t), newRTPSocket(t)
	alice.useRTPSocket(aSock)
	bob.useRTPSocket(bSock)
	const host = "127.0.0.1"

	mc := mustMediaCall(t, alice, bob)
	flows(t, "before hold", aSock, bSock, mc.CallerSees, mc.CalleeSees, 20)
	waitCallState(t, pl, "active", 3*time.Second)
	aSess, aTarget := mc.callerDialog()
	bSess, bTarget := mc.calleeDialog()
	callerSees, calleeSees := mc.CallerSees, mc.CalleeSees

	t.Run("caller holds with re-INVITE sendonly", func(t *testing.T) {
		res := mustInDialog(t, "caller", aSess, aTarget, sip.INVITE, withDirection(mediaOffer(host, aSock.Port(), "0", "8", "101"), "sendonly"))
		if dir := sdpDirection(res.Body()); dir != "recvonly" && dir != "inactive" {
			t.Errorf("answer to the caller's sendonly offer is %s, want recvonly (or inactive):\n%s", dir, res.Body())
		}
		checkRelayed(t, "answer to the hold", parseAudio(t, "answer to the hold", res.Body()), r.Min, r.Max, bSock.Addr())
		e := bob.mustEvent(evReinvite)
		if dir := sdpDirection(e.Req.Body()); dir != "sendonly" {
			t.Errorf("callee got the hold offer as %s, want sendonly:\n%s", dir, e.Req.Body())
		}
		checkRelayed(t, "hold offer to the callee", parseAudio(t, "hold offer to the callee", e.Req.Body()), r.Min, r.Max, aSock.Addr())
		waitCallState(t, pl, "suspended", 3*time.Second)
	})

	t.Run("caller resumes with re-INVITE sendrecv", func(t *testing.T) {
		res := mustInDialog(t, "caller", aSess, aTarget, sip.INVITE, mediaOffer(host, aSock.Port(), "0", "8", "101"))
		if dir := sdpDirection(res.Body()); dir != "sendrecv" {
			t.Errorf("answer to the resume is %s, want sendrecv:\n%s", dir, res.Body())
		}
		e := bob.mustEvent(evReinvite)
		if dir := sdpDirection(e.Req.Body()); dir != "sendrecv" {
			t.Errorf("callee got the resume offer as %s, want sendrecv", dir)
		}
		waitCallState(t, pl, "active", 3*time.Second)
		callerSees = parseAudio(t, "answer to the resume", res.Body())
		calleeSees = parseAudio(t, "resume offer to the callee", e.Req.Body())
		flows(t, "after the caller's resume", aSock, bSock, callerSees, calleeSees, 50)
	})

	t.Run("callee holds with UPDATE inactive", func(t *testing.T) {
		res := mustInDialog(t, "callee", bSess, bTarget, sip.UPDATE, withDirection(mediaOffer(host, bSock.Port(), "0", "101"), "inactive"))
		if dir := sdpDirection(res.Body()); dir != "inactive" {
			t.Errorf("answer to the callee's inactive offer is %s, want inactive:\n%s", dir, res.Body())
		}
		e, err := alice.waitEvent(evUpdate, callTimeout)
		if err != nil {
			// parley may pass an UPDATE on as a re-INVITE.
			e, err = alice.waitEvent(evReinvite, 100*time.Millisecond)
		}
		if err != nil {
			t.Fatalf("the callee's UPDATE did not reach the caller as UPDATE or re-INVITE: %v", err)
		}
		if dir := sdpDirection(e.Req.Body()); dir != "inactive" {
			t.Errorf("caller got the hold offer as %s, want inactive:\n%s", dir, e.Req.Body())
		}
		waitCallState(t, pl, "suspended", 3*time.Second)
	})

	t.Run("callee resumes with re-INVITE", func(t *testing.T) {
		res := mustInDialog(t, "callee", bSess, bTarget, sip.INVITE, mediaOffer(host, bSock.Port(), "0", "101"))
		e := alice.mustEvent(evReinvite)
		if dir := sdpDirection(e.Req.Body()); dir != "sendrecv" {
			t.Errorf("caller got the resume offer as %s, want sendrecv", dir)
		}
		waitCallState(t, pl, "active", 3*time.Second)
		calleeSees = parseAudio(t, "answer to the callee's resume", res.Body())
		callerSees = parseAudio(t, "resume offer to the caller", e.Req.Body())
		flows(t, "after the callee's resume", aSock, bSock, callerSees, calleeSees, 50)
	})

	t.Run("caller changes the codec to PCMA", func(t *testing.T) {
		res := mustInDialog(t, "caller", aSess, aTarget, sip.INVITE, mediaOffer(host, aSock.Port(), "8", "101"))
		e := bob.mustEvent(evReinvite)
		offered := parseAudio(t, "codec change offer to the callee", e.Req.Body())
		if slices.Contains(offered.Formats, "0") || !slices.Contains(offered.Formats, "8") {
			t.Errorf("callee was offered %v after the caller offered only PCMA (8) and 101", offered.Formats)
		}
		callerSees = parseAudio(t, "answer to the codec change", res.Body())
		if len(callerSees.Formats) == 0 || callerSees.Formats[0] != "8" {
			t.Errorf("answer to the caller's PCMA offer has formats %v, want PCMA (8) first", callerSees.Formats)
		}
		calleeSees = offered
		waitCallState(t, pl, "active", 3*time.Second)
		flows(t, "after the codec change", aSock, bSock, callerSees, calleeSees, 50)
		if calls := pl.apiCalls(t); len(calls) == 1 && calls[0].Media != nil && !strings.EqualFold(calls[0].Media.Codec, "PCMA") {
			t.Errorf("GET /api/calls media.codec = %q after the change to PCMA", calls[0].Media.Codec)
		}
	})

	mc.Out.hangup(t)
	bob.mustEvent(evBye)
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_rtp_ports_in_use")
}

// TestReinviteGlare: while the caller's re-INVITE waits for the callee's
// answer, the callee sends its own re-INVITE; parley has an INVITE
// transaction open on that dialog, so it answers 491 Request Pending
// (RFC 3261 §14.2). The caller's re-INVITE then completes, and the callee's
// retry goes through.
func TestReinviteGlare(t *testing.T) {
	t.Parallel()
	r := rangeGlare
	pl := startParley(t, parleyConfig{Extra: r.yaml(nil, "") + "sessions:\n  drain_grace: 1s\n"})
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	alice.answerInDialog()
	bobAnswers := bob.answerInDialog()
	alice.mustRegister()
	bob.mustRegister()
	aSock, bSock := newRTPSocket(t), newRTPSocket(t)
	alice.useRTPSocket(aSock)
	bob.useRTPSocket(bSock)
	const host = "127.0.0.1"

	mc := mustMediaCall(t, alice, bob)
	aSess, aTarget := mc.callerDialog()
	bSess, bTarget := mc.calleeDialog()

	release := bobAnswers.hold()
	defer release()
	type result struct {
		res *sip.Response
		err error
	}
	callerDone := make(chan result, 1)
	go func() {
		res, err := sendInDialog(aSess, aTarget, sip.INVITE, withDirection(mediaOffer(host, aSock.Port(), "0", "101"), "sendonly"))
		callerDone <- result{res, err}
	}()
	bob.mustEvent(evReinvite) // parley's INVITE to the callee is now pending

	res, err := sendInDialog(bSess, bTarget, sip.INVITE, mediaOffer(host, bSock.Port(), "0", "101"))
	switch {
	case err != nil:
		t.Fatalf("callee's re-INVITE during glare: %v", err)
	case res.StatusCode != 491:
		// Nothing after this means much: parley now has two offers
		// crossing on one leg.
		t.Fatalf("callee's re-INVITE while parley's own re-INVITE is pending on that leg: %d %s, want 491 Request Pending (RFC 3261 §14.2):\n%s", res.StatusCode, res.Reason, res)
	}
	release()
	select {
	case r := <-callerDone:
		if r.err != nil || !r.res.IsSuccess() {
			t.Errorf("caller's re-INVITE after the glare: %v %v, want 200", r.err, r.res)
		}
	case <-time.After(callTimeout):
		t.Fatal("caller's re-INVITE never completed")
	}
	waitCallState(t, pl, "suspended", 3*time.Second)

	// The callee tries again once the other side's transaction is over.
	time.Sleep(200 * time.Millisecond)
	mustInDialog(t, "callee (retry)", bSess, bTarget, sip.INVITE, mediaOffer(host, bSock.Port(), "0", "101"))
	alice.mustEvent(evReinvite)

	mc.Out.hangup(t)
	bob.mustEvent(evBye)
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
}

// TestMaxDuration: with sessions.max_duration 2s, parley ends an answered
// call after 2 s with BYE to both phones, though its media still flows
// (the RTP timeout is far away).
func TestMaxDuration(t *testing.T) {
	t.Parallel()
	r := rangeMaxDuration
	pl := startParley(t, parleyConfig{Extra: r.yaml(nil, "1m") + "sessions:\n  max_duration: 2s\n  drain_grace: 1s\n"})
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()
	aSock, bSock := newRTPSocket(t), newRTPSocket(t)
	alice.useRTPSocket(aSock)
	bob.useRTPSocket(bSock)

	start := time.Now()
	mc := mustMediaCall(t, alice, bob)
	// Keep media going meanwhile, as a real call would.
	go func() {
		a := rtpStream{Tag: 0xE1, SSRC: 0xE1, PayloadType: firstPT(t, mc.CallerSees), Count: 200, Interval: 20 * time.Millisecond}
		_ = aSock.send(mc.CallerSees.Addr, a)
	}()
	for _, p := range []*phone{alice, bob} {
		if _, err := p.waitEvent(evBye, 8*time.Second); err != nil {
			t.Errorf("sessions.max_duration 2s: %v", err)
		}
	}
	took := time.Since(start)
	t.Logf("BYEs %v after the call started", took.Round(10*time.Millisecond))
	if took < 1800*time.Millisecond {
		t.Errorf("BYE %v after the call started, before sessions.max_duration (2s)", took)
	}
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_rtp_ports_in_use")
}
