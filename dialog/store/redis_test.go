package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/redis/go-redis/v9"
)

// A node of these tests whose heartbeat should not expire while it runs.
const longBeat = time.Minute

// shortBeat is the heartbeat of a node that is to die during the test.
const shortBeat = 300 * time.Millisecond

func TestRedisWriteLoadDelete(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	c := srv.Client()
	ttl := time.Minute
	r := NewRedis(c, "n1", WithCheckpointTTL(ttl))

	if err := r.Write(map[string][]byte{"a": []byte("1"), "b": []byte("2")}, nil); err != nil {
		t.Fatal(err)
	}
	// A call both stored and deleted in one batch is deleted first, as in Bolt.
	if err := r.Write(map[string][]byte{"c": []byte("3"), "d": []byte("4")}, []string{"a", "d", "missing"}); err != nil {
		t.Fatal(err)
	}
	if err := r.Write(nil, nil); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
	got, err := r.Load()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"b": []byte("2"), "c": []byte("3"), "d": []byte("4")}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("loaded %q, want %q", got, want)
	}

	ctx := context.Background()
	if n := c.Exists(ctx, "parley:call:a").Val(); n != 0 {
		t.Errorf("deleted call a's checkpoint is still there")
	}
	if c.SIsMember(ctx, "parley:node:n1:calls", "a").Val() {
		t.Errorf("deleted call a is still in the node's set")
	}
	for _, key := range []string{"parley:call:b", "parley:call:c", "parley:node:n1:calls"} {
		pttl, err := c.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if pttl <= 0 || pttl > ttl {
			t.Errorf("PTTL %s = %v, want in (0, %v]", key, pttl, ttl)
		}
	}
	if err := r.Healthy(); err != nil {
		t.Errorf("Healthy() = %v after successful writes", err)
	}
}

func TestRedisLoadOwnCallsOnly(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	c := srv.Client()
	a, b := NewRedis(c, "a"), NewRedis(c, "b")
	if err := a.Write(map[string][]byte{"a1": []byte("x"), "a2": []byte("y")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Write(map[string][]byte{"b1": []byte("z")}, nil); err != nil {
		t.Fatal(err)
	}
	// A checkpoint that expired leaves its ID behind in the set; Load drops it.
	if err := c.Del(context.Background(), "parley:call:a2").Err(); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		store *Redis
		want  map[string][]byte
	}{
		{a, map[string][]byte{"a1": []byte("x")}},
		{b, map[string][]byte{"b1": []byte("z")}},
		{NewRedis(c, "c"), map[string][]byte{}},
	} {
		got, err := tc.store.Load()
		if err != nil {
			t.Fatal(err)
		}
		if !maps.EqualFunc(got, tc.want, slices.Equal) {
			t.Errorf("node %s loaded %q, want %q", tc.store.node, got, tc.want)
		}
	}
	if c.SIsMember(context.Background(), "parley:node:a:calls", "a2").Val() {
		t.Errorf("expired call a2 is still in node a's set after Load")
	}
}

func TestRedisLoadManyCalls(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	r := NewRedis(srv.Client(), "n1")
	put := map[string][]byte{}
	for i := range 3*mgetChunk + 7 {
		put[fmt.Sprintf("call-%d", i)] = fmt.Appendf(nil, "data-%d", i)
	}
	if err := r.Write(put, nil); err != nil {
		t.Fatal(err)
	}
	got, err := r.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !maps.EqualFunc(got, put, slices.Equal) {
		t.Fatalf("loaded %d checkpoints, want the %d written", len(got), len(put))
	}
}

func TestRedisNodes(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	c := srv.Client()
	ctx := context.Background()
	a, b := NewRedis(c, "a"), NewRedis(c, "b")
	started := time.Now().Add(-time.Hour).Truncate(time.Second)

	if err := a.Write(map[string][]byte{"a1": []byte("x"), "a2": []byte("y")}, nil); err != nil {
		t.Fatal(err)
	}
	infoA := NodeInfo{ID: "ignored", SIP: "10.0.0.1:5060", Admin: "10.0.0.1:8080", Started: started}
	if err := a.Heartbeat(ctx, infoA, shortBeat); err != nil {
		t.Fatal(err)
	}
	if err := b.Heartbeat(ctx, NodeInfo{SIP: "10.0.0.2:5060"}, longBeat); err != nil {
		t.Fatal(err)
	}

	nodes, err := b.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[0].ID != "a" || nodes[1].ID != "b" {
		t.Fatalf("Nodes() = %+v, want a and b", nodes)
	}
	na := nodes[0]
	if !na.Alive || na.Calls != 2 || na.SIP != infoA.SIP || na.Admin != infoA.Admin ||
		!na.Started.Equal(started) || time.Since(na.Seen) > 5*time.Second {
		t.Errorf("node a = %+v, want alive with 2 calls and its heartbeat's info", na)
	}
	if nb := nodes[1]; !nb.Alive || nb.Calls != 0 || nb.SIP != "10.0.0.2:5060" {
		t.Errorf("node b = %+v, want alive with no calls", nb)
	}
	if dead, err := b.DeadNodes(ctx); err != nil || len(dead) != 0 {
		t.Errorf("DeadNodes() = %q, %v while all are alive", dead, err)
	}

	waitDead(t, b, "a")
	nodes, err = b.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 {
		t.Fatalf("Nodes() = %+v, want a and b", nodes)
	}
	if na := nodes[0]; na.ID != "a" || na.Alive || na.Calls != 2 || na.SIP != infoA.SIP {
		t.Errorf("dead node a = %+v, want dead with 2 calls and its last info", na)
	}
	if !nodes[1].Alive {
		t.Errorf("node b = %+v, want alive", nodes[1])
	}
	// A node never counts itself dead: its own heartbeat is its business.
	if dead, err := a.DeadNodes(ctx); err != nil || len(dead) != 0 {
		t.Errorf("a.DeadNodes() = %q, %v; want none (a is itself, b alive)", dead, err)
	}
}

// waitDead waits until r sees node's heartbeat expired.
func waitDead(t *testing.T, r *Redis, node string) {
	t.Helper()
	deadline := time.Now().Add(10 * shortBeat)
	for {
		dead, err := r.DeadNodes(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(dead, node) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s still alive %v after its heartbeat of %v", node, 10*shortBeat, shortBeat)
		}
		time.Sleep(shortBeat / 10)
	}
}

func TestRedisClaim(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	c := srv.Client()
	ctx := context.Background()
	a, b, cc := NewRedis(c, "a"), NewRedis(c, "b"), NewRedis(c, "c")
	calls := map[string][]byte{"x": []byte("1"), "y": []byte("2"), "z": []byte("3")}
	if err := a.Write(calls, nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Redis{b, cc} {
		if err := r.Heartbeat(ctx, NodeInfo{}, longBeat); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Heartbeat(ctx, NodeInfo{}, shortBeat); err != nil {
		t.Fatal(err)
	}

	// A live node keeps its calls, and a node cannot claim itself.
	for _, tc := range []struct {
		claimer *Redis
		dead    string
	}{{b, "a"}, {a, "a"}} {
		got, err := tc.claimer.Claim(ctx, tc.dead)
		if err != nil || len(got) != 0 {
			t.Errorf("%s.Claim(%s) = %q, %v while a is alive; want nothing", tc.claimer.node, tc.dead, got, err)
		}
	}
	if got, err := a.Load(); err != nil || len(got) != 3 {
		t.Fatalf("a.Load() = %q, %v after refused claims; want its 3 calls", got, err)
	}

	waitDead(t, b, "a")
	won := race(t, "a", b, cc)
	if !maps.EqualFunc(won.got, calls, slices.Equal) {
		t.Errorf("%s claimed %q, want %q", won.by.node, won.got, calls)
	}
	if got, err := won.by.Load(); err != nil || !maps.EqualFunc(got, calls, slices.Equal) {
		t.Errorf("%s.Load() = %q, %v after its claim; want %q", won.by.node, got, err, calls)
	}
	if pttl := c.PTTL(ctx, "parley:node:"+won.by.node+":calls").Val(); pttl <= 0 {
		t.Errorf("claimer's set has PTTL %v, want an expiry", pttl)
	}
	if got, err := a.Load(); err != nil || len(got) != 0 {
		t.Errorf("a.Load() = %q, %v after a was claimed; want nothing", got, err)
	}
	nodes, err := b.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[0].ID != "b" || nodes[1].ID != "c" {
		t.Errorf("Nodes() = %+v after the claim, want b and c only", nodes)
	}
	if n := c.Exists(ctx, "parley:nodeinfo:a", "parley:node:a:calls").Val(); n != 0 {
		t.Errorf("%d of claimed node a's keys left", n)
	}
	if got, err := won.by.Claim(ctx, "a"); err != nil || len(got) != 0 {
		t.Errorf("second claim of a = %q, %v; want nothing", got, err)
	}
}

// TestRedisClaimRace races two nodes for each of many dead nodes: every
// time, exactly one of them gets all the dead node's calls.
func TestRedisClaimRace(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	c := srv.Client()
	ctx := context.Background()
	b, cc := NewRedis(c, "b"), NewRedis(c, "c")
	const deadNodes, callsEach = 20, 3
	for i := range deadNodes {
		d := NewRedis(c, fmt.Sprintf("dead-%02d", i))
		put := map[string][]byte{}
		for j := range callsEach {
			put[fmt.Sprintf("%s-call-%d", d.node, j)] = []byte("x")
		}
		if err := d.Write(put, nil); err != nil {
			t.Fatal(err)
		}
		if err := d.Heartbeat(ctx, NodeInfo{}, shortBeat); err != nil {
			t.Fatal(err)
		}
	}
	waitDead(t, b, fmt.Sprintf("dead-%02d", deadNodes-1))
	waitDead(t, b, "dead-00")
	wins := map[string]int{}
	for i := range deadNodes {
		won := race(t, fmt.Sprintf("dead-%02d", i), b, cc)
		if len(won.got) != callsEach {
			t.Errorf("%s claimed %d calls of dead-%02d, want %d", won.by.node, len(won.got), i, callsEach)
		}
		wins[won.by.node]++
	}
	total := 0
	for _, r := range []*Redis{b, cc} {
		got, err := r.Load()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != wins[r.node]*callsEach {
			t.Errorf("%s.Load() has %d calls, want %d from its %d claims", r.node, len(got), wins[r.node]*callsEach, wins[r.node])
		}
		total += len(got)
	}
	if total != deadNodes*callsEach {
		t.Errorf("b and c own %d calls, want the %d of the dead", total, deadNodes*callsEach)
	}
	t.Logf("wins: %v", wins)
}

// claimResult is what one claimer got.
type claimResult struct {
	by  *Redis
	got map[string][]byte
}

// race has every claimer claim dead at once and checks that exactly one
// got something; it returns that one.
func race(t *testing.T, dead string, claimers ...*Redis) claimResult {
	t.Helper()
	results := make([]claimResult, len(claimers))
	errs := make([]error, len(claimers))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, r := range claimers {
		wg.Go(func() {
			<-start
			got, err := r.Claim(context.Background(), dead)
			results[i], errs[i] = claimResult{by: r, got: got}, err
		})
	}
	close(start)
	wg.Wait()
	var winners []claimResult
	for i, res := range results {
		if errs[i] != nil {
			t.Fatalf("%s.Claim(%s): %v", res.by.node, dead, errs[i])
		}
		if len(res.got) > 0 {
			winners = append(winners, res)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d claimers got %s's calls, want exactly 1", len(winners), dead)
	}
	return winners[0]
}

func TestRedisClaimDropsExpiredCalls(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	c := srv.Client()
	ctx := context.Background()
	a, b := NewRedis(c, "a"), NewRedis(c, "b")
	if err := a.Write(map[string][]byte{"x": []byte("1"), "y": []byte("2")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Heartbeat(ctx, NodeInfo{}, shortBeat); err != nil {
		t.Fatal(err)
	}
	if err := c.Del(ctx, "parley:call:y").Err(); err != nil {
		t.Fatal(err)
	}
	waitDead(t, b, "a")
	got, err := b.Claim(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string][]byte{"x": []byte("1")}; !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("claimed %q, want %q", got, want)
	}
	if c.SIsMember(ctx, "parley:node:b:calls", "y").Val() {
		t.Errorf("expired call y was moved into b's set")
	}
}

func TestRedisOutage(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	r := NewRedis(srv.Client(), "n1", WithTimeout(500*time.Millisecond))
	if err := r.Write(map[string][]byte{"a": []byte("1")}, nil); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	if err := r.Write(map[string][]byte{"b": []byte("2")}, nil); err == nil {
		t.Fatal("Write succeeded with redis stopped")
	}
	if r.Healthy() == nil {
		t.Error("Healthy() = nil after a failed write")
	}
	if n := testutil.ToFloat64(r.errs.WithLabelValues(opWrite)); n < 1 {
		t.Errorf("%s{op=write} = %v after a failed write", MetricErrors, n)
	}
	if _, err := r.Load(); err == nil {
		t.Error("Load succeeded with redis stopped")
	}

	// Redis comes back on the same port, empty (it keeps nothing on disk).
	srv.Start()
	if err := r.Write(map[string][]byte{"c": []byte("3")}, nil); err != nil {
		t.Fatalf("Write after redis restarted: %v", err)
	}
	if err := r.Healthy(); err != nil {
		t.Errorf("Healthy() = %v after a successful write", err)
	}
	got, err := r.Load()
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string][]byte{"c": []byte("3")}; !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("loaded %q after the restart, want %q", got, want)
	}
}

// TestRedisMetricNames lints the store's metrics.
func TestRedisMetricNames(t *testing.T) {
	t.Parallel()
	r := NewRedis(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), "n1")
	defer r.client.Close()
	reg := prometheus.NewPedanticRegistry()
	for _, c := range r.Collectors() {
		if err := reg.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	ops := map[string]bool{opWrite: true, opLoad: true, opHeartbeat: true, opNodes: true, opDeadNodes: true, opClaim: true,
		opBanPublish: true, opBanWatch: true}
	if len(mfs) != 1 || mfs[0].GetName() != MetricErrors {
		t.Fatalf("gathered %d families, want %s only", len(mfs), MetricErrors)
	}
	for _, m := range mfs[0].GetMetric() {
		for _, l := range m.GetLabel() {
			switch {
			case l.GetName() == "store" && l.GetValue() == "redis":
			case l.GetName() == "op" && ops[l.GetValue()]:
			default:
				t.Errorf("%s has label %s=%q; only store=redis and the fixed ops are allowed", MetricErrors, l.GetName(), l.GetValue())
			}
		}
	}
	if n := len(mfs[0].GetMetric()); n != len(ops) {
		t.Errorf("%s has %d series, want one per op (%d)", MetricErrors, n, len(ops))
	}
}
