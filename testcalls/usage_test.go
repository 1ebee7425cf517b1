package testcalls

import (
	"context"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

var rangeUsage = rtpRange{29300, 29399}

// TestUsageNotCall is RFC 5057 in parley: a 481 to a NOTIFY inside a call
// (a transfer's subscription that one phone forgot) reaches the phone that
// sent it and ends nothing else: the call and its media go on. A 481 to an
// INFO, part of the call's own usage, ends the call, and then both phones
// get their BYE.
func TestUsageNotCall(t *testing.T) {
	p := startParley(t, recoveryConfig(t, rangeUsage, ""))
	caller, callee, calls := mediaCalls(t, p, 1, func(callee *phone) {
		callee.mu.Lock()
		callee.answerWith = map[sip.RequestMethod]int{sip.NOTIFY: 481, sip.INFO: 481}
		callee.mu.Unlock()
	})
	sess := calls[0].mc.Out.Session

	notify := sip.NewRequest(sip.NOTIFY, sess.InviteResponse.Contact().Address)
	notify.AppendHeader(sip.NewHeader("Event", "refer;id=7"))
	notify.AppendHeader(sip.NewHeader("Subscription-State", "active;expires=60"))
	notify.AppendHeader(sip.NewHeader("Content-Type", "message/sipfrag"))
	notify.SetBody([]byte("SIP/2.0 100 Trying\r\n"))
	rctx, rcancel := context.WithTimeout(context.Background(), callTimeout)
	defer rcancel()
	res, err := sess.Do(rctx, notify)
	if err != nil || res.StatusCode != 481 {
		t.Fatalf("in-dialog NOTIFY: %v %v; want the callee's 481 relayed", res, err)
	}
	callee.noEvent(evBye, 500*time.Millisecond)
	caller.noEvent(evBye, 100*time.Millisecond)
	if n := len(p.apiCalls(t)); n != 1 {
		t.Fatalf("%d calls after a 481 to a NOTIFY; the call must go on", n)
	}
	waitMedia(t, calls, time.Now(), 2*time.Second)

	// Not a DTMF key: the callee negotiated telephone-event, so parley
	// would answer a key itself and send it as RFC 4733 events (dtmf.go).
	info := sip.NewRequest(sip.INFO, sess.InviteResponse.Contact().Address)
	info.AppendHeader(sip.NewHeader("Content-Type", "application/x-parley-test"))
	info.SetBody([]byte("usage\r\n"))
	res, err = sess.Do(rctx, info)
	if err != nil || res.StatusCode != 481 {
		t.Fatalf("in-dialog INFO: %v %v; want the callee's 481 relayed", res, err)
	}
	if _, err := caller.waitEvent(evBye, 3*time.Second); err != nil {
		t.Errorf("caller after a 481 to INFO: %v; the call ends and both legs get BYE", err)
	}
	if _, err := callee.waitEvent(evBye, 3*time.Second); err != nil {
		t.Errorf("callee after its 481 to INFO: %v; the call ends and both legs get BYE", err)
	}
	p.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
}
