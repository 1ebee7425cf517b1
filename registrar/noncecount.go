package registrar

import (
	"sync"
	"time"
)

// maxNonceCounts bounds how many nonces' counts are kept. Only nonces
// answered with a correct digest are entered, so a stranger cannot fill
// it; a burst of legitimate traffic that does (at 1,000 answers a second
// and a 32 s lifetime it holds 64,000) makes every older nonce stale
// instead (see nonceCounts.floor): the clients answer again without
// asking their users, and no count is forgotten while its nonce is fresh.
const maxNonceCounts = 1 << 20

// nonceCounts remembers the highest nonce count (nc) answered for each
// nonce, so an Authorization cannot be replayed: RFC 7616 §3.4 asks the
// server to reject an nc it has seen, and a captured header carries one.
//
// Counts live in two generations of one nonce lifetime each: a nonce is
// fresh for one lifetime, so the count of any fresh nonce is in the
// current or the previous generation, and the older one can be dropped
// whole. The memory is bounded by maxNonceCounts.
type nonceCounts struct {
	mu        sync.Mutex
	lifetime  time.Duration
	cur, prev map[[nonceMACLen]byte]uint32
	curStart  time.Time
	// floor: nonces issued before it are stale (set when the table was
	// full and emptied).
	floor time.Time
}

// nonceUse is what use found.
type nonceUse int

const (
	nonceCounted nonceUse = iota // a new, higher nc: recorded
	nonceReplay                  // an nc not above one already answered
	nonceTooOld                  // issued before the floor: treat as stale
)

// use records nc for the nonce named by mac, issued at issued, unless it
// is not above the highest nc already answered for it.
func (c *nonceCounts) use(mac [nonceMACLen]byte, issued time.Time, nc int, now time.Time) nonceUse {
	c.mu.Lock()
	defer c.mu.Unlock()
	if issued.Before(c.floor) {
		return nonceTooOld
	}
	if c.cur == nil || now.Sub(c.curStart) > c.lifetime {
		c.prev, c.cur, c.curStart = c.cur, make(map[[nonceMACLen]byte]uint32), now
	}
	if nc <= 0 || nc > 0xffffffff {
		return nonceReplay
	}
	n := uint32(nc)
	if last, ok := c.cur[mac]; ok {
		if n <= last {
			return nonceReplay
		}
		c.cur[mac] = n
		return nonceCounted
	}
	if last, ok := c.prev[mac]; ok {
		if n <= last {
			return nonceReplay
		}
		c.prev[mac] = n
		return nonceCounted
	}
	if len(c.cur)+len(c.prev) >= maxNonceCounts {
		// Full: forget every count, and make every nonce issued so far
		// stale, so none of them can be replayed.
		c.floor = now
		c.cur, c.prev = make(map[[nonceMACLen]byte]uint32), nil
		c.curStart = now
		return nonceTooOld
	}
	c.cur[mac] = n
	return nonceCounted
}

// len returns how many counts are kept.
func (c *nonceCounts) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.prev)
}
