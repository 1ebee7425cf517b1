package trunk

import (
	"math"
	"time"
)

// State is where a trunk's registration stands.
type State string

// The registration's states.
const (
	// StateRegistering: no answer yet (at start, and while the first
	// attempt runs).
	StateRegistering State = "registering"
	// StateRegistered: the provider holds parley's Contact.
	StateRegistered State = "registered"
	// StateFailed: the last attempt failed (refused credentials, no
	// answer, an error); it is retried with backoff.
	StateFailed State = "failed"
	// StateUnregistered: parley removed its Contact on shutdown.
	StateUnregistered State = "unregistered"
)

// Bounds of the registration's timing.
const (
	// defaultExpires is asked for when trunks[].expires is 0.
	defaultExpires = 3600 * time.Second
	// maxExpires bounds what parley asks for and what it believes a
	// provider granted.
	maxExpires = 86400 * time.Second
	// minRefresh is the shortest time between two refreshes, whatever a
	// provider grants.
	minRefresh = 5 * time.Second
	// defaultRetry is the first wait after a failure; it doubles to
	// maxRetry.
	defaultRetry = 30 * time.Second
	maxRetry     = 10 * time.Minute
)

// machine is a registration's state and timing, a plain value driven by
// the loop in registration.go with the time passed in, so that its tests
// need no clock.
type machine struct {
	state State
	// want is the Expires parley asks for; a 423 raises it.
	want time.Duration
	// retry is the first backoff; failures counts failures in a row.
	retry    time.Duration
	failures int
	// expiresAt is when the provider drops the registration.
	expiresAt time.Time
	// next is when the next attempt is due.
	next    time.Time
	lastErr string
}

func newMachine(want, retry time.Duration) machine {
	if want <= 0 {
		want = defaultExpires
	}
	if retry <= 0 {
		retry = defaultRetry
	}
	return machine{state: StateRegistering, want: min(want, maxExpires), retry: retry}
}

// registered takes a 2xx that granted granted and returns when to
// refresh: at half the lifetime (RFC 3261 §10.2.4 leaves the margin to the
// client), not sooner than minRefresh.
func (m *machine) registered(now time.Time, granted time.Duration) time.Time {
	granted = min(max(granted, time.Second), maxExpires)
	m.state, m.failures, m.lastErr = StateRegistered, 0, ""
	m.expiresAt = now.Add(granted)
	m.next = now.Add(max(granted/2, minRefresh))
	return m.next
}

// tooBrief takes a 423 with Min-Expires minExpires (RFC 3261 §10.3 step
// 7): it reports whether asking again with it makes sense.
func (m *machine) tooBrief(minExpires time.Duration) bool {
	if minExpires <= m.want || minExpires > maxExpires {
		return false
	}
	m.want = minExpires
	return true
}

// failed takes a failed attempt and returns when to try again: retry,
// doubled for each failure in a row up to maxRetry, plus up to a quarter
// of it at random (jitter, 0 <= jitter < 1), so that many parleys refused
// at once do not come back at once. A registration still valid stays
// usable until it expires, but shows as failed.
func (m *machine) failed(now time.Time, why string, jitter float64) time.Time {
	m.state, m.lastErr = StateFailed, why
	m.failures++
	d := float64(m.retry) * math.Pow(2, float64(min(m.failures-1, 20)))
	d = min(d, float64(maxRetry))
	d += d * jitter / 4
	m.next = now.Add(min(time.Duration(d), maxRetry+maxRetry/4))
	return m.next
}

// unregistered records the Contact removed.
func (m *machine) unregistered() {
	m.state, m.expiresAt, m.next = StateUnregistered, time.Time{}, time.Time{}
}

// registeredAt reports whether the provider holds the registration at now.
func (m *machine) registeredAt(now time.Time) bool {
	return !m.expiresAt.IsZero() && now.Before(m.expiresAt)
}
