package rooms

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)

func TestFloorQueue(t *testing.T) {
	var f Floor[string]
	if o, c := f.Request("a", t0); o != Granted || !c.Granted || c.To != "a" {
		t.Fatalf("a: %v %+v", o, c)
	}
	if o, _ := f.Request("a", t0); o != Holding {
		t.Errorf("a again: %v", o)
	}
	if o, c := f.Request("b", t0); o != Queued || c.Granted {
		t.Errorf("b: %v %+v", o, c)
	}
	f.Request("c", t0)
	if q := f.Queue(); len(q) != 2 || q[0] != "b" || q[1] != "c" {
		t.Errorf("queue %v", q)
	}
	// b gives up its place; a's release passes the floor to c.
	if c := f.Release("b", ReasonReleased, t0); !c.Unqueued || c.Released {
		t.Errorf("b leaves the queue: %+v", c)
	}
	c := f.Release("a", ReasonReleased, t0)
	if !c.Released || c.From != "a" || !c.Granted || c.To != "c" || !c.WasQueued {
		t.Errorf("a releases: %+v", c)
	}
	if h, ok := f.Holder(); !ok || h != "c" {
		t.Errorf("holder %v %v", h, ok)
	}
	// A release by someone who holds nothing changes nothing.
	if c := f.Release("a", ReasonReleased, t0); c.Released || c.Unqueued {
		t.Errorf("a again: %+v", c)
	}
	c = f.Release("c", ReasonHangup, t0)
	if !c.Released || c.Granted || c.Reason != ReasonHangup {
		t.Errorf("c hangs up: %+v", c)
	}
	if _, ok := f.Holder(); ok {
		t.Error("the floor is still held")
	}
}

func TestFloorQueueBound(t *testing.T) {
	var f Floor[int]
	f.Request(-1, t0)
	for i := range maxQueue {
		if o, _ := f.Request(i, t0); o != Queued {
			t.Fatalf("%d: %v", i, o)
		}
	}
	if o, _ := f.Request(99, t0); o != Refused {
		t.Errorf("past the bound: %v", o)
	}
}

func TestFloorTimeouts(t *testing.T) {
	f := Floor[string]{FloorTimeout: 5 * time.Second, MaxTalk: 30 * time.Second}
	voice := map[string]time.Time{}
	last := func(k string) time.Time { return voice[k] }

	f.Request("a", t0)
	f.Request("b", t0.Add(time.Second))
	// Silent since the grant: released at 5 s, and b gets it.
	if c := f.Check(t0.Add(4*time.Second), last); c.Released {
		t.Fatalf("released early: %+v", c)
	}
	c := f.Check(t0.Add(5*time.Second), last)
	if !c.Released || c.Reason != ReasonSilence || c.To != "b" || !c.Interrupted {
		t.Fatalf("silence: %+v", c)
	}
	// b talks all the time: max_talk ends it 30 s after its grant.
	start := t0.Add(5 * time.Second)
	for s := time.Duration(0); s < 30*time.Second; s += time.Second {
		now := start.Add(s)
		voice["b"] = now
		if c := f.Check(now, last); c.Released {
			t.Fatalf("released at %v while talking: %+v", s, c)
		}
	}
	c = f.Check(start.Add(30*time.Second), last)
	if !c.Released || c.Reason != ReasonMaxTalk || c.Granted {
		t.Fatalf("max_talk: %+v", c)
	}
	// Zero timeouts never release.
	g := Floor[string]{}
	g.Request("a", t0)
	if c := g.Check(t0.Add(24*time.Hour), last); c.Released {
		t.Errorf("no timeouts: %+v", c)
	}
}
