package resolve

import (
	"sync"
	"time"

	"github.com/miekg/dns"
)

type cacheKey struct {
	name  string
	qtype uint16
}

// entry is one answer: its records, or the CNAME target still to ask, or
// the error (a negative answer).
type entry struct {
	rrs  []dns.RR
	next string
	err  error
	ttl  time.Duration
}

type cached struct {
	entry
	expires time.Time
}

// cache keeps answers until their TTL runs out, at most max of them: when
// full, the expired go first, then arbitrary ones.
type cache struct {
	mu  sync.Mutex
	max int
	m   map[cacheKey]cached
}

func newCache(max int) *cache {
	return &cache{max: max, m: make(map[cacheKey]cached)}
}

func (c *cache) get(k cacheKey, now time.Time) (entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return entry{}, false
	}
	if !now.Before(e.expires) {
		delete(c.m, k)
		return entry{}, false
	}
	return e.entry, true
}

// put keeps e for its ttl from now.
func (c *cache) put(k cacheKey, e entry, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		for key, v := range c.m {
			if !now.Before(v.expires) {
				delete(c.m, key)
			}
		}
		for key := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, key)
		}
	}
	c.m[k] = cached{entry: e, expires: now.Add(e.ttl)}
}

// len reports the entries held.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
