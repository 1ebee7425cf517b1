package registrar

import (
	"slices"
	"sync"
)

// memoryStore keeps bindings in a map; it forgets them on restart.
type memoryStore struct {
	mu     sync.Mutex
	users  map[string][]Binding
	closed bool
}

// NewMemoryStore returns a Store that keeps nothing across restarts, for
// tests and for running without a store directory.
func NewMemoryStore() Store {
	return &memoryStore{users: map[string][]Binding{}}
}

func (m *memoryStore) Load() ([]Binding, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	var out []Binding
	for _, bs := range m.users {
		out = append(out, bs...)
	}
	return out, nil
}

func (m *memoryStore) Save(user string, bs []Binding) error {
	return m.SaveBatch(map[string][]Binding{user: bs})
}

func (m *memoryStore) SaveBatch(batch map[string][]Binding) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	for user, bs := range batch {
		if len(bs) == 0 {
			delete(m.users, user)
			continue
		}
		m.users[user] = slices.Clone(bs)
	}
	return nil
}

func (m *memoryStore) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
