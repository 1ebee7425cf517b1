package registrar

// Store keeps a copy of the location service that survives a restart. The
// Registrar reads it once at New and then only writes to it, from its own
// goroutine; lookups never reach it.
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
