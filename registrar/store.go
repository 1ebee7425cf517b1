package registrar

import "context"

// Store keeps a copy of the location service that survives a restart. The
// Registrar reads it once at New and then only writes to it, from its own
// goroutine; lookups never reach it. A Store shared with other nodes is
// also a [Watcher], through which the Registrar learns what they write.
type Store interface {
	// Load returns every stored binding (expired ones may be included; the
	// Registrar drops them).
	Load() ([]Binding, error)
	// Save replaces the bindings of user; an empty bs deletes the user.
	Save(user string, bs []Binding) error
	// Close releases the store.
	Close() error
}

// BatchStore is a Store that can write many users in one transaction. The
// Registrar uses SaveBatch when the Store has it, so a burst of
// registrations costs one disk sync instead of one per user.
type BatchStore interface {
	Store
	// SaveBatch replaces the bindings of every user in batch; an empty
	// slice deletes that user.
	SaveBatch(batch map[string][]Binding) error
}

// Watcher is a Store that several parley nodes share, so a phone that
// registered through one node is found by a call entering another. When the
// Store has it, [Registrar.Run] runs Watch, which feeds what the other nodes
// write to [Registrar.Apply].
type Watcher interface {
	// Watch calls apply with the bindings of every user another node
	// changed (bs empty: the user has none left) until ctx ends, and then
	// returns. Change notices may be lost while the connection is down, so
	// each time Watch (re)connects it resynchronises: it calls the function
	// given to OnResync, then applies every user the store holds and
	// empties those it no longer holds.
	Watch(ctx context.Context, apply func(user string, bs []Binding)) error
	// OnResync sets the function Watch calls before each
	// resynchronisation. The Registrar uses it to write the bindings of its
	// own phones again, in case the store lost them (a Redis restarted
	// without persistence). Call it before Watch.
	OnResync(f func())
	// Refresh has Watch read users again and apply them. The Registrar asks
	// for it after writing users whose change from another node it passed
	// over because a change of its own was on its way.
	Refresh(users ...string)
}
