package testcalls

import (
	"context"
	"testing"
	"time"
)

var rangeTCPRestart = rtpRange{29400, 29499}

// TestTCPPhoneAfterRestart: a phone registered over TCP stays reachable
// when parley restarts. Its flow (the connection its REGISTER came over)
// died with the old process; the binding was kept, and parley opens a new
// connection to the phone's Contact. A phone that asked for RFC 5626
// outbound (";ob" in its Contact) is reached only over its own flows: its
// caller gets 480 until it connects again, never 503.
func TestTCPPhoneAfterRestart(t *testing.T) {
	p := startParley(t, recoveryConfig(t, rangeTCPRestart, ""))
	callee := newPhone(t, "1002", p.SIPAddr, "tcp")
	callee.mustRegister()
	outbound := newPhone(t, "1003", p.SIPAddr, "tcp")
	outbound.contact.Address.UriParams.Add("ob", "")
	outbound.mustRegister()
	// Let the registrar write the bindings to its store, then restart.
	time.Sleep(300 * time.Millisecond)
	p.stop(t)
	p.restart(t, 2)

	caller := newPhone(t, "1001", p.SIPAddr, "udp")
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	c := caller.call(ctx, "1002")
	c.mustAnswered(t)
	in := callee.mustEvent(evInvite)
	if in.Req.Transport() != "TCP" {
		t.Errorf("the INVITE reached the phone over %s, want TCP", in.Req.Transport())
	}
	c.hangup(t)
	if _, err := callee.waitEvent(evBye, 3*time.Second); err != nil {
		t.Errorf("callee: %v", err)
	}

	c = caller.call(ctx, "1003")
	if c.Final == nil || c.Final.StatusCode != 480 {
		t.Fatalf("call to an outbound phone whose flow is gone: %v, want 480", c.codes())
	}
	if w := c.Final.GetHeader("Warning"); w == nil {
		t.Errorf("480 without a Warning saying why:\n%s", c.Final)
	}
	outbound.noEvent(evInvite, 200*time.Millisecond)

	// Once the outbound phone registers again (a new flow), it is reached.
	outbound.mustRegister()
	c = caller.call(ctx, "1003")
	c.mustAnswered(t)
	c.hangup(t)
}
