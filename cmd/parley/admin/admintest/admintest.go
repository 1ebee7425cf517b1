// Package admintest holds fakes of the tables the admin server reads, with
// sample contents, for tests of the admin server and of its clients (the
// operator commands). A *Calls is an admin.CallTable, a *Registrations an
// admin.Registrations and a *Bans an admin.Bans.
package admintest

import (
	"slices"
	"sync"
	"time"

	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/dialog/guard"
	"github.com/parley-sip/parley/registrar"
)

// Calls is a call table holding fixed calls. The zero value holds none.
type Calls struct {
	mu     sync.Mutex
	calls  []dialog.Snapshot
	hungUp []string
}

// NewCalls returns a Calls holding calls.
func NewCalls(calls ...dialog.Snapshot) *Calls { return &Calls{calls: calls} }

// Calls returns a copy of the calls held.
func (f *Calls) Calls() []dialog.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Hangup removes the call id, if held, and records that it was hung up.
func (f *Calls) Hangup(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.calls, func(s dialog.Snapshot) bool { return s.ID == id })
	if i < 0 {
		return false
	}
	f.calls = slices.Delete(f.calls, i, i+1)
	f.hungUp = append(f.hungUp, id)
	return true
}

// HungUp returns the IDs of the calls Hangup ended, in order.
func (f *Calls) HungUp() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.hungUp)
}

// Registrations is a registrar holding fixed bindings. The zero value
// holds none.
type Registrations struct {
	mu sync.Mutex
	bs []registrar.Binding
}

// NewRegistrations returns a Registrations holding bs.
func NewRegistrations(bs ...registrar.Binding) *Registrations { return &Registrations{bs: bs} }

// All returns a copy of the bindings held.
func (f *Registrations) All() []registrar.Binding {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.bs)
}

// RemoveUser removes user's bindings and returns how many there were.
func (f *Registrations) RemoveUser(user string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.bs)
	f.bs = slices.DeleteFunc(f.bs, func(b registrar.Binding) bool { return b.User == user })
	return n - len(f.bs)
}

// Bans is a guard holding fixed bans. The zero value holds none.
type Bans struct {
	mu       sync.Mutex
	bans     []guard.Ban
	unbanned []string
}

// NewBans returns a Bans holding bans.
func NewBans(bans ...guard.Ban) *Bans { return &Bans{bans: bans} }

// Bans returns a copy of the bans held, in the order given.
func (f *Bans) Bans() []guard.Ban {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.bans)
}

// Unban removes the ban on addr, if held, and records that it was lifted.
// It compares addresses as strings: the admin API checks they are
// addresses before it asks.
func (f *Bans) Unban(addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.bans, func(b guard.Ban) bool { return b.Address == addr })
	if i < 0 {
		return false
	}
	f.bans = slices.Delete(f.bans, i, i+1)
	f.unbanned = append(f.unbanned, addr)
	return true
}

// Unbanned returns the addresses Unban lifted a ban on, in order.
func (f *Bans) Unbanned() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.unbanned)
}

// Start is when the oldest sample call started (local time, so printed
// times do not depend on the zone the tests run in).
var Start = time.Date(2026, 11, 22, 10, 4, 0, 0, time.Local)

// SampleCalls returns two calls, newest first: "bbbb" from 1002 to 600,
// establishing since a minute after Start, and "aaaa" from 1001 to 1002,
// active since Start, answered 3s later, with PCMU media that lost 5 of
// 1,000 packets and 2.5ms of jitter.
func SampleCalls() *Calls {
	return NewCalls(
		dialog.Snapshot{ID: "bbbb", From: "1002", To: "600", State: "Establishing", Start: Start.Add(time.Minute)},
		dialog.Snapshot{ID: "aaaa", From: "1001", To: "1002", State: "Active", Start: Start, Answer: Start.Add(3 * time.Second),
			Media: &dialog.MediaQuality{Codec: "PCMU", Packets: 995, Lost: 5, Jitter: 2500 * time.Microsecond}},
	)
}

// SampleRegistrations returns two bindings, not sorted by user: 1002 over
// UDP from behind NAT, unreachable, expiring 90.4s after now, and 1001 over
// TCP, reachable with a 12.3ms round trip, expiring an hour and 0.4s after
// now.
func SampleRegistrations(now time.Time) *Registrations {
	return NewRegistrations(
		registrar.Binding{User: "1002", Contact: "sip:1002@192.168.1.31:5062", Source: "203.0.113.7:40112", Transport: "udp",
			Expires: now.Add(90*time.Second + 400*time.Millisecond), Reachable: registrar.ReachableNo, UserAgent: "baresip"},
		registrar.Binding{User: "1001", Contact: "sip:1001@192.168.1.30:5060", Source: "192.168.1.30:5060", Transport: "tcp",
			Expires: now.Add(time.Hour + 400*time.Millisecond), Reachable: registrar.ReachableYes, RTT: 12300 * time.Microsecond},
	)
}

// SampleBans returns two bans, not in expiry order: 2001:db8::7 for
// authentication failures until 15 minutes after Start, and 203.0.113.9
// for challenges unanswered until 5 minutes after Start.
func SampleBans() *Bans {
	return NewBans(
		guard.Ban{Address: "2001:db8::7", Until: Start.Add(15 * time.Minute), Reason: "authentication failures"},
		guard.Ban{Address: "203.0.113.9", Until: Start.Add(5 * time.Minute), Reason: "challenges unanswered"},
	)
}
