package admin

import (
	"github.com/parley-sip/parley/dialog"
	"github.com/parley-sip/parley/dialog/guard"
	"github.com/parley-sip/parley/dialog/store"
	"github.com/parley-sip/parley/registrar"
)

// CallTable is what the admin API needs from the B2BUA. *dialog.Server
// implements it.
type CallTable interface {
	// Calls returns a snapshot of every call in progress.
	Calls() []dialog.Snapshot
	// Hangup ends one call with BYE on both legs, reporting whether it
	// existed.
	Hangup(id string) bool
}

// Registrations is what the admin API needs from the registrar.
// *registrar.Registrar implements it.
type Registrations interface {
	// All returns every live binding.
	All() []registrar.Binding
	// RemoveUser removes every binding of user and returns how many there
	// were.
	RemoveUser(user string) int
}

// Bans is what the admin API needs from the guard against hostile
// sources. *guard.Guard implements it.
type Bans interface {
	// Bans returns the bans in force.
	Bans() []guard.Ban
	// Unban lifts the ban on addr, an IP address, reporting whether there
	// was one.
	Unban(addr string) bool
}

// Nodes is what the admin API needs to show a cluster of parley nodes
// sharing one Redis: every node, its heartbeat and how many calls it owns.
type Nodes interface {
	Nodes() []store.NodeInfo
}

// noNodes is the Nodes of a Server built without WithNodes: a single
// node, not in a cluster.
type noNodes struct{}

func (noNodes) Nodes() []store.NodeInfo { return nil }

// noCalls is the CallTable of a Server built without WithCalls.
type noCalls struct{}

func (noCalls) Calls() []dialog.Snapshot { return nil }
func (noCalls) Hangup(string) bool       { return false }

// noRegistrations is the Registrations of a Server built without
// WithRegistrations.
type noRegistrations struct{}

func (noRegistrations) All() []registrar.Binding { return nil }
func (noRegistrations) RemoveUser(string) int    { return 0 }

// noBans is the Bans of a Server built without WithBans.
type noBans struct{}

func (noBans) Bans() []guard.Ban { return nil }
func (noBans) Unban(string) bool { return false }
