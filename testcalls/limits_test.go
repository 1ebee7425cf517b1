package testcalls

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"
)

// Relay port blocks of the limit tests (see rtpRange).
var (
	rangeMaxCalls = rangeOf(23600)
	rangePerUser  = rangeOf(23700)
	// rangeLeak has room for the calls SIPp keeps up at once.
	rangeLeak = rtpRange{25000, 25999}
)

// wantBusy asserts c was refused with 503 and a Retry-After.
func wantBusy(t *testing.T, what string, c *outboundCall) {
	t.Helper()
	if c.status() != 503 {
		t.Errorf("%s: responses %v, final:\n%v\nwant 503", what, c.codes(), c.Final)
		return
	}
	ra := c.Final.GetHeader("Retry-After")
	if ra == nil {
		t.Errorf("%s: 503 without Retry-After:\n%s", what, c.Final)
		return
	}
	if n, err := strconv.Atoi(ra.Value()); err != nil || n <= 0 {
		t.Errorf("%s: Retry-After %q, want a number of seconds", what, ra.Value())
	}
}

// placeCall has p call user and returns the result within callTimeout.
func placeCall(p *phone, user string) *outboundCall {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	return p.call(ctx, user)
}

// TestMaxCalls: with sessions.max_calls 1, a second call while one is up
// gets 503 with Retry-After before its callee rings; once the first ends a
// new call goes through.
func TestMaxCalls(t *testing.T) {
	t.Parallel()
	pl := startParley(t, parleyConfig{Extra: rangeMaxCalls.yaml(nil, "") + "sessions:\n  max_calls: 1\n  drain_grace: 1s\n"})
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	carol := newPhone(t, "1003", pl.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()
	carol.mustRegister()

	first := mustMediaCall(t, alice, bob)
	second := placeCall(carol, "1001")
	wantBusy(t, "second call with sessions.max_calls 1", second)
	alice.noEvent(evInvite, 200*time.Millisecond)
	if second.status() == 200 {
		second.hangup(t)
	}

	first.Out.hangup(t)
	bob.mustEvent(evBye)
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
	third := mustMediaCall(t, carol, alice)
	third.Out.hangup(t)
	alice.mustEvent(evBye)
	pl.waitMetric(t, 3*time.Second, atLeast(1), "parley_sip_responses_total", "method", "INVITE", "code", "503")
}

// TestMaxCallsPerUser: with sessions.max_calls_per_user 1, a user with a
// call up gets 503 with Retry-After for a second one (here to the echo
// service), while another user still gets through; once the first call
// ends the user can call again.
func TestMaxCallsPerUser(t *testing.T) {
	t.Parallel()
	pl := startParley(t, parleyConfig{Extra: rangePerUser.yaml(nil, "") + "sessions:\n  max_calls: 10\n  max_calls_per_user: 1\n  drain_grace: 1s\n"})
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	carol := newPhone(t, "1003", pl.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()
	carol.mustRegister()

	first := mustMediaCall(t, alice, bob)
	again := placeCall(alice, "600")
	wantBusy(t, "1001's second call with sessions.max_calls_per_user 1", again)
	if again.status() == 200 {
		again.hangup(t)
	}
	other := placeCall(carol, "600")
	if other.status() != 200 {
		t.Errorf("1003's call while 1001 is at its limit: %v, want 200", other.codes())
	} else {
		other.hangup(t)
	}

	first.Out.hangup(t)
	bob.mustEvent(evBye)
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
	after := placeCall(alice, "600")
	if after.status() != 200 {
		t.Errorf("1001's call once its first ended: %v, want 200", after.codes())
	} else {
		after.hangup(t)
	}
}

// TestNoLeakAfterManyCalls: 2,000 short calls (SIPp uac at 200 calls/s,
// no media) through a route to SIPp's uas; afterwards parley holds no call,
// no relay port, and its goroutines come back to within a small margin of
// what it had idle (sipgo keeps finished transactions for up to 64*T1 =
// 32 s, so that may take a while).
func TestNoLeakAfterManyCalls(t *testing.T) {
	t.Parallel()
	needSipp(t)
	uas := startSippUAS(t)
	pl := startParley(t, parleyConfig{
		Trusted: []string{"127.0.0.1/32"},
		Routes:  [][2]string{{`^9(\d+)$`, fmt.Sprintf("sip:$1@127.0.0.1:%d", uas.Port)}},
		Extra:   rangeLeak.yaml(nil, "") + "sessions:\n  max_calls: 5000\n  drain_grace: 1s\n",
	})
	time.Sleep(time.Second)
	idle, ok := pl.scrapeMetrics(t).get("go_goroutines")
	if !ok {
		t.Fatal("parley's /metrics has no go_goroutines (the Go collector)")
	}

	const calls = 2000
	args := []string{pl.SIPAddr, "-sn", "uac", "-s", "9001", "-m", fmt.Sprint(calls), "-r", "200", "-d", "0",
		"-trace_stat", "-stf", "uac.csv", "-trace_err", "-timeout", "60s", "-timeout_error"}
	uac := startSipp(t, "sipp-uac-leak", append(args, sippReorderFlags...)...)
	if code := uac.wait(t, 70*time.Second); code != 0 {
		t.Errorf("sipp uac exit code %d, want 0 (all %d calls successful)", code, calls)
	}
	if v, ok := uac.stat("SuccessfulCall(C)"); ok && v != fmt.Sprint(calls) {
		t.Errorf("sipp uac SuccessfulCall(C) = %s, want %d", v, calls)
	}
	pl.waitMetric(t, 10*time.Second, equals(0), "parley_calls")
	pl.waitMetric(t, 10*time.Second, equals(0), "parley_rtp_ports_in_use")
	for _, state := range []string{"establishing", "active", "suspended", "terminating"} {
		pl.waitMetric(t, time.Second, func(v float64, ok bool) bool { return !ok || v == 0 }, "parley_calls", "state", state)
	}
	const margin = 10
	start := time.Now()
	peak := 0.0
	var now float64
	for {
		now, _ = pl.scrapeMetrics(t).get("go_goroutines")
		peak = max(peak, now)
		if now <= idle+margin || time.Since(start) > 45*time.Second {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("goroutines: idle %v, %v %v after the run (seen up to %v after it)", idle, now, time.Since(start).Round(time.Second), peak)
	if now > idle+margin {
		t.Errorf("go_goroutines %v 45 s after %d calls, idle was %v (margin %d): goroutines leak", now, calls, idle, margin)
	}
}
