package dialog

import (
	"sync"
)

// table is the one place that knows every live call. It maps each leg's
// (Call-ID, local tag) to the leg, so an in-dialog request finds its call in
// one lookup, and keeps per-user counts for limits. It is sharded to keep
// lock contention low under load.
type table struct {
	shards [32]shard

	mu      sync.Mutex
	calls   map[string]*Call // by Call.ID
	perUser map[string]int
}

type shard struct {
	mu   sync.Mutex
	legs map[string]*leg
}

func newTable() *table {
	t := &table{calls: map[string]*Call{}, perUser: map[string]int{}}
	for i := range t.shards {
		t.shards[i].legs = map[string]*leg{}
	}
	return t
}

func (t *table) shard(key string) *shard {
	// Call-IDs are random enough for an even spread.
	return &t.shards[fnv1a(key)%uint32(len(t.shards))]
}

// fnv1a is the 32-bit FNV-1a hash of s, without hash/fnv's allocation.
func fnv1a(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// admit adds a call if the global and per-user limits allow it.
func (t *table) admit(c *Call, user string, maxCalls, maxPerUser int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if maxCalls > 0 && len(t.calls) >= maxCalls {
		return false
	}
	if maxPerUser > 0 && user != "" && t.perUser[user] >= maxPerUser {
		return false
	}
	t.calls[c.ID] = c
	if user != "" {
		t.perUser[user]++
	}
	return true
}

// release removes a call admitted for user.
func (t *table) release(c *Call, user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.calls[c.ID]; !ok {
		return
	}
	delete(t.calls, c.ID)
	if user != "" {
		if t.perUser[user] <= 1 {
			delete(t.perUser, user)
		} else {
			t.perUser[user]--
		}
	}
}

func (t *table) addLeg(l *leg) {
	s := t.shard(l.key())
	s.mu.Lock()
	s.legs[l.key()] = l
	s.mu.Unlock()
}

func (t *table) removeLeg(l *leg) {
	s := t.shard(l.key())
	s.mu.Lock()
	if s.legs[l.key()] == l {
		delete(s.legs, l.key())
	}
	s.mu.Unlock()
}

func (t *table) lookup(callID, localTag string) *leg {
	key := callID + "\x00" + localTag
	s := t.shard(key)
	s.mu.Lock()
	l := s.legs[key]
	s.mu.Unlock()
	return l
}

// get returns the call with the given ID.
func (t *table) get(id string) *Call {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.calls[id]
}

// all returns every live call.
func (t *table) all() []*Call {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*Call, 0, len(t.calls))
	for _, c := range t.calls {
		out = append(out, c)
	}
	return out
}

func (t *table) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.calls)
}
