package store

import (
	"context"
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

var (
	banned1 = netip.MustParseAddr("198.51.100.7")
	banned2 = netip.MustParseAddr("203.0.113.9")
	banned3 = netip.MustParseAddr("2001:db8::7")
)

// applied is one call of Watch's apply.
type applied struct {
	addr   netip.Addr
	until  time.Time
	reason string
}

// watching runs r.Watch until the test ends and returns what it applies.
func watching(t *testing.T, r *Redis) <-chan applied {
	t.Helper()
	got := make(chan applied, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- r.Watch(ctx, func(addr netip.Addr, until time.Time, reason string) {
			got <- applied{addr, until, reason}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch returned %v when its context ended, want nil", err)
		}
	})
	return got
}

// next returns what Watch applies next, failing after d.
func next(t *testing.T, got <-chan applied, d time.Duration) applied {
	t.Helper()
	select {
	case a := <-got:
		return a
	case <-time.After(d):
		t.Fatalf("Watch applied nothing within %v", d)
		return applied{}
	}
}

// quiet checks that Watch applies nothing for d.
func quiet(t *testing.T, got <-chan applied, d time.Duration) {
	t.Helper()
	select {
	case a := <-got:
		t.Fatalf("Watch applied %+v, want nothing", a)
	case <-time.After(d):
	}
}

// want checks that a is a ban on addr until until for reason (a lift when
// until is zero).
func want(t *testing.T, a applied, addr netip.Addr, until time.Time, reason string) {
	t.Helper()
	if a.addr != addr || !a.until.Equal(until) || a.reason != reason {
		t.Fatalf("Watch applied %v until %v (%q), want %v until %v (%q)", a.addr, a.until, a.reason, addr, until, reason)
	}
}

// TestRedisBanPublish: a ban is the key parley:ban:<ip>, expiring at its
// end, holding until, reason and node, and a message on parley:bans; a
// lift deletes the key and says so on the channel.
func TestRedisBanPublish(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	c := srv.Client()
	r := NewRedis(c, "node-a")
	ctx := context.Background()
	sub := c.Subscribe(ctx, "parley:bans")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the subscription
		t.Fatal(err)
	}
	message := func() map[string]any {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		m, err := sub.ReceiveMessage(rctx)
		if err != nil {
			t.Fatalf("no message on parley:bans: %v", err)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(m.Payload), &v); err != nil {
			t.Fatalf("message %q: %v", m.Payload, err)
		}
		return v
	}

	until := time.Now().Add(time.Minute).Round(time.Millisecond)
	// An IPv4-mapped address is the IPv4 source it stands for.
	if err := r.Publish(ctx, netip.MustParseAddr("::ffff:198.51.100.7"), until, "authentication failures"); err != nil {
		t.Fatal(err)
	}
	data, err := c.Get(ctx, "parley:ban:198.51.100.7").Bytes()
	if err != nil {
		t.Fatalf("GET parley:ban:198.51.100.7: %v", err)
	}
	var rec struct {
		Until  time.Time `json:"until"`
		Reason string    `json:"reason"`
		Node   string    `json:"node"`
	}
	if err := json.Unmarshal(data, &rec); err != nil || !rec.Until.Equal(until) || rec.Reason != "authentication failures" || rec.Node != "node-a" {
		t.Errorf("parley:ban:198.51.100.7 = %s (%v), want until %v, the reason and node-a", data, err, until)
	}
	if at, err := c.PExpireTime(ctx, "parley:ban:198.51.100.7").Result(); err != nil || at != time.Duration(until.UnixMilli())*time.Millisecond {
		t.Errorf("PEXPIRETIME = %v (%v), want the ban's end %v", at, err, until.UnixMilli())
	}
	m := message()
	if m["addr"] != "198.51.100.7" || m["until"] != until.Format(time.RFC3339Nano) || m["reason"] != "authentication failures" || m["node"] != "node-a" {
		t.Errorf("ban message %v", m)
	}

	if err := r.Publish(ctx, banned1, time.Time{}, ""); err != nil {
		t.Fatal(err)
	}
	if n := c.Exists(ctx, "parley:ban:198.51.100.7").Val(); n != 0 {
		t.Error("the lifted ban's key is still there")
	}
	m = message()
	if _, ok := m["until"]; ok || m["addr"] != "198.51.100.7" || m["node"] != "node-a" {
		t.Errorf("lift message %v, want addr and node, no until", m)
	}
	if err := r.Publish(ctx, netip.Addr{}, until, "x"); err == nil {
		t.Error("a ban on no address was published")
	}
	if err := r.Healthy(); err == nil {
		t.Error("Healthy() = nil after a failed publish")
	}
}

// TestRedisBanWatch: Watch applies the bans in force when it starts, then
// each ban and lift other nodes publish, and never this node's own.
func TestRedisBanWatch(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	c := srv.Client()
	a, b := NewRedis(c, "node-a"), NewRedis(c, "node-b")
	ctx := context.Background()
	until := time.Now().Add(time.Hour).Round(time.Millisecond)
	if err := a.Publish(ctx, banned1, until, "authentication failures"); err != nil {
		t.Fatal(err)
	}
	// Something in the key space that is not a ban this build reads.
	c.Set(ctx, "parley:ban:not-an-address", `{"until":"2999-01-01T00:00:00Z"}`, 0)

	gotB := watching(t, b)
	want(t, next(t, gotB, 3*time.Second), banned1, until, "authentication failures")
	quiet(t, gotB, 200*time.Millisecond)
	gotA := watching(t, a)
	// A node's own bans in force are applied too: it may have restarted.
	want(t, next(t, gotA, 3*time.Second), banned1, until, "authentication failures")

	if err := a.Publish(ctx, banned3, until, "challenges unanswered"); err != nil {
		t.Fatal(err)
	}
	want(t, next(t, gotB, 2*time.Second), banned3, until, "challenges unanswered")
	if err := b.Publish(ctx, banned1, time.Time{}, ""); err != nil {
		t.Fatal(err)
	}
	want(t, next(t, gotA, 2*time.Second), banned1, time.Time{}, "")
	quiet(t, gotA, 200*time.Millisecond)
	quiet(t, gotB, 50*time.Millisecond)

	// A message no node could have sent is counted and skipped.
	c.Publish(ctx, "parley:bans", "{not json")
	c.Publish(ctx, "parley:bans", `{"addr":"nowhere","until":"2999-01-01T00:00:00Z","node":"node-c"}`)
	quiet(t, gotB, 200*time.Millisecond)
	if n := testutil.ToFloat64(b.errs.WithLabelValues(opBanWatch)); n != 2 {
		t.Errorf("%s{op=ban_watch} = %v after two bad messages, want 2", MetricErrors, n)
	}
}

// TestRedisBanWatchReconnect: after its subscription is cut, Watch reads
// the bans again: it applies one it missed and lifts one of another node
// whose key went while it was not listening.
func TestRedisBanWatchReconnect(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	c := srv.Client()
	a, b := NewRedis(c, "node-a"), NewRedis(c, "node-b")
	ctx := context.Background()
	until := time.Now().Add(time.Hour).Round(time.Millisecond)
	if err := a.Publish(ctx, banned1, until, "authentication failures"); err != nil {
		t.Fatal(err)
	}
	gotB := watching(t, b)
	want(t, next(t, gotB, 3*time.Second), banned1, until, "authentication failures")

	// Changes nobody announced: a ban set and one deleted, as if published
	// while b was away.
	rec, _ := json.Marshal(banRecord{Until: until, Reason: "challenges unanswered", Node: "node-a"})
	if err := c.Set(ctx, "parley:ban:203.0.113.9", rec, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Del(ctx, "parley:ban:198.51.100.7").Err(); err != nil {
		t.Fatal(err)
	}
	quiet(t, gotB, 200*time.Millisecond)
	if err := c.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	got := map[netip.Addr]applied{}
	for range 2 {
		x := next(t, gotB, 5*time.Second)
		got[x.addr] = x
	}
	want(t, got[banned1], banned1, time.Time{}, "")
	want(t, got[banned2], banned2, until, "challenges unanswered")
}

// TestRedisBanOutage: with Redis away a publish fails and is counted;
// once Redis is back (empty: it keeps nothing on disk) Watch subscribes
// again, lifts the other node's bans that are gone, and takes new ones.
func TestRedisBanOutage(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	c := srv.Client()
	a := NewRedis(c, "node-a", WithTimeout(500*time.Millisecond))
	b := NewRedis(c, "node-b", WithTimeout(500*time.Millisecond))
	ctx := context.Background()
	until := time.Now().Add(time.Hour).Round(time.Millisecond)
	if err := a.Publish(ctx, banned1, until, "authentication failures"); err != nil {
		t.Fatal(err)
	}
	gotB := watching(t, b)
	want(t, next(t, gotB, 3*time.Second), banned1, until, "authentication failures")

	srv.Stop()
	if err := a.Publish(ctx, banned2, until, "authentication failures"); err == nil {
		t.Fatal("Publish succeeded with redis stopped")
	}
	if n := testutil.ToFloat64(a.errs.WithLabelValues(opBanPublish)); n != 1 {
		t.Errorf("%s{op=ban_publish} = %v after a failed publish, want 1", MetricErrors, n)
	}
	srv.Start()
	want(t, next(t, gotB, 10*time.Second), banned1, time.Time{}, "")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := a.Publish(ctx, banned3, until, "challenges unanswered"); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("Publish after redis came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	want(t, next(t, gotB, 3*time.Second), banned3, until, "challenges unanswered")
}
