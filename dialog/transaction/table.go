package transaction

import (
	"hash/maphash"
	"sync"
)

// txTable holds live transactions by key, in shards so that the parsing
// goroutines and the handlers seldom wait for one another.
type txTable[T comparable] struct {
	seed   maphash.Seed
	shards [64]txShard[T]
}

type txShard[T comparable] struct {
	mu sync.Mutex
	m  map[string]T
}

func (t *txTable[T]) init() {
	t.seed = maphash.MakeSeed()
	for i := range t.shards {
		t.shards[i].m = map[string]T{}
	}
}

func (t *txTable[T]) shard(key string) *txShard[T] {
	return &t.shards[maphash.String(t.seed, key)%uint64(len(t.shards))]
}

// lookup returns the transaction with key, or the zero T.
func (t *txTable[T]) lookup(key string) T {
	sh := t.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[key]
}

// insert stores tx under key unless a transaction has that key already;
// it returns the one stored and whether it is tx.
func (t *txTable[T]) insert(key string, tx T) (T, bool) {
	sh := t.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old, ok := sh.m[key]; ok {
		return old, false
	}
	sh.m[key] = tx
	return tx, true
}

// delete removes tx, if it is still the one stored under key.
func (t *txTable[T]) delete(key string, tx T) {
	sh := t.shard(key)
	sh.mu.Lock()
	if sh.m[key] == tx {
		delete(sh.m, key)
	}
	sh.mu.Unlock()
}

// len returns how many transactions are live.
func (t *txTable[T]) len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
