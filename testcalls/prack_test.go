package testcalls

import (
	"context"
	"testing"
	"time"
)

var (
	rangePrack      = rtpRange{29500, 29599}
	rangePrackPlain = rtpRange{29600, 29699}
)

// TestPrack is RFC 3262 on both legs, each on its own: a SIPp caller that
// requires 100rel calls a SIPp callee that sends its 180 reliably. parley
// PRACKs the callee's 180 itself (RAck: 1 1 INVITE, checked by the callee's
// scenario), sends the caller its own reliable 180 (Require: 100rel, RSeq,
// checked by the caller's scenario), answers the caller's PRACK with 200,
// and the call is answered and hung up.
func TestPrack(t *testing.T) {
	t.Parallel()
	needSipp(t)
	uas := startScenarioUAS(t, "sipp-uas-100rel", scenarioPath(t, "uas_100rel.xml"))
	pl := startParley(t, timerConfig(rangePrack, uas.Port))
	uac := startScenarioUAC(t, "sipp-uac-100rel", pl, scenarioPath(t, "uac_100rel.xml"), "9301")
	code := uac.wait(t, 30*time.Second)
	msgs := readSippMsgs(t, uac)
	defer dumpMsgs(t, "caller", msgs)
	if code != 0 {
		t.Errorf("caller scenario (Require: 100rel, PRACK the reliable 180) exit code %d, want 0", code)
	}
	if code := uas.wait(t, 10*time.Second); code != 0 {
		umsgs := readSippMsgs(t, uas)
		dumpMsgs(t, "callee", umsgs)
		t.Errorf("callee scenario (reliable 180, wants parley's PRACK) exit code %d, want 0", code)
	}
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
}

// TestPrackCallerWithout100rel: a caller that does not know 100rel gets a
// plain 180, while parley still PRACKs the callee's reliable one.
func TestPrackCallerWithout100rel(t *testing.T) {
	t.Parallel()
	needSipp(t)
	uas := startScenarioUAS(t, "sipp-uas-100rel", scenarioPath(t, "uas_100rel.xml"))
	pl := startParley(t, timerConfig(rangePrackPlain, uas.Port))
	caller := newPhone(t, "1001", pl.SIPAddr, "udp")
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	c := caller.call(ctx, "9302")
	c.mustAnswered(t)
	var ringing int
	for _, r := range c.Responses {
		if r.StatusCode == 180 {
			ringing++
			if r.GetHeader("RSeq") != nil || r.GetHeader("Require") != nil {
				t.Errorf("180 to a caller without 100rel is sent reliably:\n%s", r)
			}
		}
	}
	if ringing != 1 {
		t.Errorf("caller saw %d 180s, want 1 (%v)", ringing, c.codes())
	}
	c.hangup(t)
	if code := uas.wait(t, 10*time.Second); code != 0 {
		dumpMsgs(t, "callee", readSippMsgs(t, uas))
		t.Errorf("callee scenario (reliable 180, wants parley's PRACK) exit code %d, want 0", code)
	}
}

var rangePrackRetrans = rtpRange{29700, 29799}

// TestPrackRetransmits: a caller slow to PRACK gets parley's reliable 180
// again, with the same RSeq, every T1 doubling (RFC 3262 §3), until its
// PRACK comes; the call then goes on as before.
func TestPrackRetransmits(t *testing.T) {
	t.Parallel()
	needSipp(t)
	// The callee answers 2.5 s after its 180, so the caller's 180 waits
	// for its PRACK meanwhile.
	late := scenarioVariant(t, "uas_100rel.xml", `<pause milliseconds="300"/>`, `<pause milliseconds="2500"/>`)
	uas := startScenarioUAS(t, "sipp-uas-100rel-late", late)
	pl := startParley(t, timerConfig(rangePrackRetrans, uas.Port))
	slow := scenarioVariant(t, "uac_100rel.xml",
		`  <send start_txn="prack">`, "  <pause milliseconds=\"1800\"/>\n\n  <send start_txn=\"prack\">")
	uac := startScenarioUAC(t, "sipp-uac-100rel-slow", pl, slow, "9303")
	code := uac.wait(t, 30*time.Second)
	msgs := readSippMsgs(t, uac)
	defer dumpMsgs(t, "caller", msgs)
	if code != 0 {
		t.Errorf("caller scenario exit code %d, want 0", code)
	}
	ringing := findMsgs(msgs, receivedResponse("INVITE", 180))
	if len(ringing) < 2 {
		t.Fatalf("caller got the reliable 180 %d times in the 1.8 s before its PRACK; want it retransmitted (T1 = 500 ms)", len(ringing))
	}
	for _, r := range ringing[1:] {
		if r.header("rseq") != ringing[0].header("rseq") {
			t.Errorf("retransmitted 180 has RSeq %q, the first %q", r.header("rseq"), ringing[0].header("rseq"))
		}
	}
	t.Logf("the reliable 180 came %d times before the PRACK", len(ringing))
	if code := uas.wait(t, 10*time.Second); code != 0 {
		t.Errorf("callee scenario exit code %d, want 0", code)
	}
}
