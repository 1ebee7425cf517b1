package trunk

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// TestMachineRefresh: a registration is refreshed at half what the
// provider granted (RFC 3261 §10.2.4 leaves the margin to the client),
// never sooner than minRefresh, and a grant is believed up to a day.
func TestMachineRefresh(t *testing.T) {
	for _, tc := range []struct {
		granted, refresh, lifetime time.Duration
	}{
		{3600 * time.Second, 1800 * time.Second, 3600 * time.Second},
		{60 * time.Second, 30 * time.Second, 60 * time.Second},
		{4 * time.Second, minRefresh, 4 * time.Second},
		{0, minRefresh, time.Second},
		{7 * 86400 * time.Second, 43200 * time.Second, 86400 * time.Second},
	} {
		m := newMachine(0, 0)
		if m.want != defaultExpires {
			t.Fatalf("want %v with expires 0, want %v", m.want, defaultExpires)
		}
		next := m.registered(t0, tc.granted)
		if got := next.Sub(t0); got != tc.refresh {
			t.Errorf("granted %v: refresh after %v, want %v", tc.granted, got, tc.refresh)
		}
		if got := m.expiresAt.Sub(t0); got != tc.lifetime {
			t.Errorf("granted %v: expires after %v, want %v", tc.granted, got, tc.lifetime)
		}
		if m.state != StateRegistered || !m.registeredAt(t0) || m.registeredAt(m.expiresAt) {
			t.Errorf("granted %v: state %s, registered now %v", tc.granted, m.state, m.registeredAt(t0))
		}
	}
}

// TestMachineTooBrief: a 423's Min-Expires raises what parley asks for,
// once it is longer than what it asked and at most a day (RFC 3261 §10.3
// step 7); otherwise asking again is pointless.
func TestMachineTooBrief(t *testing.T) {
	m := newMachine(30*time.Second, 0)
	if !m.tooBrief(60 * time.Second) {
		t.Fatal("423 Min-Expires 60 after asking 30 not taken")
	}
	if m.want != 60*time.Second {
		t.Errorf("asks for %v after the 423, want 60s", m.want)
	}
	if m.tooBrief(60 * time.Second) {
		t.Error("423 Min-Expires 60 after asking 60 taken: it would loop")
	}
	if m.tooBrief(2 * maxExpires) {
		t.Error("423 Min-Expires of two days taken")
	}
}

// TestMachineBackoff: each refusal in a row doubles the wait from
// trunks[].retry up to maxRetry; jitter adds up to a quarter, never less;
// a success starts over.
func TestMachineBackoff(t *testing.T) {
	m := newMachine(0, 0)
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute}
	now := t0
	for i, w := range want {
		next := m.failed(now, "refused", 0)
		if got := next.Sub(now); got != w {
			t.Errorf("failure %d: next attempt after %v, want %v", i+1, got, w)
		}
		if m.state != StateFailed || m.failures != i+1 || m.lastErr != "refused" {
			t.Errorf("failure %d: state %s failures %d error %q", i+1, m.state, m.failures, m.lastErr)
		}
		now = next
	}
	if got := m.failed(now, "refused", 0.999).Sub(now); got < maxRetry || got > maxRetry+maxRetry/4 {
		t.Errorf("with full jitter the wait is %v, want between %v and %v", got, maxRetry, maxRetry+maxRetry/4)
	}
	m.registered(now, time.Minute)
	if m.failures != 0 || m.lastErr != "" {
		t.Errorf("after a success: failures %d error %q", m.failures, m.lastErr)
	}
	if got := m.failed(now, "no answer", 0.5).Sub(now); got != 30*time.Second+30*time.Second/8 {
		t.Errorf("first failure after a success with jitter 0.5 waits %v, want 33.75s", got)
	}

	short := newMachine(0, 2*time.Second)
	if got := short.failed(t0, "refused", 0).Sub(t0); got != 2*time.Second {
		t.Errorf("trunks[].retry 2s: first wait %v", got)
	}
}
