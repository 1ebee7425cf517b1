package resolve

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func srv(prio, weight uint16, target string) *dns.SRV {
	return &dns.SRV{Priority: prio, Weight: weight, Target: target}
}

// RFC 2782: lower priority first; within one, a record is drawn with a
// chance proportional to its weight.
func TestOrderSRVWeights(t *testing.T) {
	first := map[string]int{}
	const n = 4000
	for range n {
		got := orderSRV([]*dns.SRV{srv(20, 0, "last"), srv(10, 10, "light"), srv(10, 30, "heavy"), srv(10, 0, "zero")}, rand.IntN)
		if len(got) != 4 || got[3].Target != "last" {
			t.Fatalf("priority 20 not last: %v", got)
		}
		first[got[0].Target]++
	}
	// heavy 30/40, light 10/40, zero about 1/41.
	if h := first["heavy"]; h < n*65/100 || h > n*85/100 {
		t.Errorf("heavy first %d of %d, want about 75%%", h, n)
	}
	if l := first["light"]; l < n*15/100 || l > n*35/100 {
		t.Errorf("light first %d of %d, want about 25%%", l, n)
	}
	if z := first["zero"]; z > n*5/100 {
		t.Errorf("weight 0 first %d of %d, want rarely", z, n)
	}
}

func TestCacheBoundAndExpiry(t *testing.T) {
	c := newCache(3)
	now := time.Unix(1000, 0)
	for i := range 10 {
		c.put(cacheKey{name: string(rune('a' + i)), qtype: 1}, entry{ttl: time.Minute}, now)
	}
	if c.len() != 3 {
		t.Errorf("cache holds %d, want at most 3", c.len())
	}
	c.put(cacheKey{name: "x", qtype: 1}, entry{ttl: time.Second}, now)
	if _, ok := c.get(cacheKey{name: "x", qtype: 1}, now.Add(500*time.Millisecond)); !ok {
		t.Error("entry gone before its TTL")
	}
	if _, ok := c.get(cacheKey{name: "x", qtype: 1}, now.Add(time.Second)); ok {
		t.Error("entry kept past its TTL")
	}
}

func TestTTLBounds(t *testing.T) {
	if d := ttlOf(0); d != minTTL {
		t.Errorf("ttl 0 kept %v, want %v", d, minTTL)
	}
	if d := ttlOf(1 << 31); d != maxTTL {
		t.Errorf("huge ttl kept %v, want %v", d, maxTTL)
	}
}
