package testcalls

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Relay port blocks of the shutdown tests (see rtpRange).
var (
	rangeDrainHangup = rangeOf(23300)
	rangeDrainGrace  = rangeOf(23400)
	rangeSIGINT      = rangeOf(23500)
)

// signal sends sig to the parley process.
func (p *parley) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to parley: %v", sig, err)
	}
}

// exitCode waits up to d for parley to exit and returns its exit code, or
// -1 (with an error) when it is still running or died of a signal.
func (p *parley) exitCode(d time.Duration) (int, error) {
	select {
	case <-p.exited:
	case <-time.After(d):
		return -1, fmt.Errorf("parley still running after %v", d)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -1, fmt.Errorf("parley died of %v", ws.Signal())
		}
		return ee.ExitCode(), nil
	}
	if p.err != nil {
		return -1, p.err
	}
	return 0, nil
}

// running reports whether parley has not exited.
func (p *parley) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// readyz returns the status of GET /readyz.
func (p *parley) readyz(t *testing.T) int {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	res, err := client.Get("http://" + p.AdminAddr + "/readyz")
	if err != nil {
		t.Errorf("GET /readyz while draining: %v (the admin server must keep answering)", err)
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

// checkPortsFree asserts parley's SIP port and the relay ports a call used
// can be bound again once it has exited.
func checkPortsFree(t *testing.T, pl *parley, mc *mediaCall) {
	t.Helper()
	addrs := []string{pl.SIPAddr}
	if mc != nil {
		addrs = append(addrs, mc.CallerSees.Addr.String(), mc.CalleeSees.Addr.String())
	}
	for _, a := range addrs {
		c, err := net.ListenPacket("udp", a)
		if err != nil {
			t.Errorf("UDP %s still taken after parley exited: %v", a, err)
			continue
		}
		c.Close()
	}
	l, err := net.Listen("tcp", pl.SIPAddr)
	if err != nil {
		t.Errorf("TCP %s still taken after parley exited: %v", pl.SIPAddr, err)
		return
	}
	l.Close()
}

// drainConfig is a config with its own relay ports and drain_grace.
func drainConfig(r rtpRange, grace string) parleyConfig {
	return parleyConfig{Extra: r.yaml(nil, "") + "sessions:\n  drain_grace: " + grace + "\n"}
}

// TestDrainSIGTERM: on SIGTERM parley drains: a new INVITE gets 503,
// /readyz answers 503, and the call in progress goes on; once it is hung
// up parley exits 0 at once, well before sessions.drain_grace (10 s), and
// its ports are free again.
func TestDrainSIGTERM(t *testing.T) {
	t.Parallel()
	pl := startParley(t, drainConfig(rangeDrainHangup, "10s"))
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	carol := newPhone(t, "1003", pl.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()
	carol.mustRegister()
	aSock, bSock := newRTPSocket(t), newRTPSocket(t)
	alice.useRTPSocket(aSock)
	bob.useRTPSocket(bSock)
	mc := mustMediaCall(t, alice, bob)

	pl.signal(t, syscall.SIGTERM)
	deadline := time.Now().Add(2 * time.Second)
	code := pl.readyz(t)
	for code != http.StatusServiceUnavailable && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		code = pl.readyz(t)
	}
	if code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz while draining: %d, want 503", code)
	}

	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	c := carol.call(ctx, "1001")
	if c.status() != 503 {
		t.Errorf("new call while draining: %v, want 503", c.codes())
	} else if c.Final.GetHeader("Retry-After") == nil {
		t.Errorf("503 while draining without Retry-After:\n%s", c.Final)
	}
	alice.noEvent(evInvite, 100*time.Millisecond)
	if !pl.running() {
		t.Fatalf("parley exited during the drain with a call up (drain_grace 10s)")
	}
	// The call in progress still works.
	flows(t, "during the drain", aSock, bSock, mc.CallerSees, mc.CalleeSees, 20)
	for _, p := range []*phone{alice, bob} {
		p.noEvent(evBye, 10*time.Millisecond)
	}

	mc.Out.hangup(t)
	bob.mustEvent(evBye)
	hungUp := time.Now()
	exit, err := pl.exitCode(3 * time.Second)
	if err != nil || exit != 0 {
		t.Fatalf("after the last call ended during the drain: exit %d (%v), want 0 within 3 s", exit, err)
	}
	t.Logf("parley exited %v after the last call ended", time.Since(hungUp).Round(10*time.Millisecond))
	checkPortsFree(t, pl, mc)
}

// TestDrainGraceExpires: on SIGTERM with a call that does not end, parley
// waits sessions.drain_grace (2 s), then sends BYE to both phones and
// exits 0.
func TestDrainGraceExpires(t *testing.T) {
	t.Parallel()
	pl := startParley(t, drainConfig(rangeDrainGrace, "2s"))
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()
	mc := mustMediaCall(t, alice, bob)

	pl.signal(t, syscall.SIGTERM)
	sent := time.Now()
	for _, p := range []*phone{alice, bob} {
		if _, err := p.waitEvent(evBye, 6*time.Second); err != nil {
			t.Errorf("after drain_grace: %v", err)
		}
	}
	took := time.Since(sent)
	t.Logf("BYEs %v after SIGTERM", took.Round(10*time.Millisecond))
	if took < 1500*time.Millisecond {
		t.Errorf("BYEs %v after SIGTERM, before sessions.drain_grace (2s)", took.Round(10*time.Millisecond))
	}
	exit, err := pl.exitCode(3 * time.Second)
	if err != nil || exit != 0 {
		t.Fatalf("after drain_grace: exit %d (%v), want 0", exit, err)
	}
	t.Logf("parley exited %v after SIGTERM", time.Since(sent).Round(10*time.Millisecond))
	checkPortsFree(t, pl, mc)
}

// TestSIGINT: SIGINT stops parley at once: BYE to both phones of the call
// in progress (sessions.drain_grace, 30 s here, does not apply), exit 0,
// ports free.
func TestSIGINT(t *testing.T) {
	t.Parallel()
	pl := startParley(t, drainConfig(rangeSIGINT, "30s"))
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	bob := newPhone(t, "1002", pl.SIPAddr, "udp")
	alice.mustRegister()
	bob.mustRegister()
	mc := mustMediaCall(t, alice, bob)

	pl.signal(t, syscall.SIGINT)
	sent := time.Now()
	for _, p := range []*phone{alice, bob} {
		if _, err := p.waitEvent(evBye, 2*time.Second); err != nil {
			t.Errorf("after SIGINT: %v", err)
		}
	}
	t.Logf("BYEs %v after SIGINT", time.Since(sent).Round(10*time.Millisecond))
	exit, err := pl.exitCode(3 * time.Second)
	if err != nil || exit != 0 {
		t.Fatalf("after SIGINT: exit %d (%v), want 0 within 3 s", exit, err)
	}
	t.Logf("parley exited %v after SIGINT", time.Since(sent).Round(10*time.Millisecond))
	checkPortsFree(t, pl, mc)
}
