package registrar

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/redis/go-redis/v9"
)

const redisServerPath = "/usr/bin/redis-server"

// redisServer is a real redis-server on a loopback port, without
// persistence: stopping it loses every key, as a Redis restarted without
// RDB or AOF does.
type redisServer struct {
	t      *testing.T
	port   int
	dir    string
	cmd    *exec.Cmd
	exited chan error // gets cmd's exit once it has exited
}

// startRedis runs redis-server on a free loopback port below 32768 (outside
// Linux's ephemeral range, so no outgoing connection takes it between a
// stop and a start) and kills it when the test ends.
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	if _, err := os.Stat(redisServerPath); err != nil {
		t.Skipf("%s not installed (Debian package redis-server): skipping the real-Redis tests", redisServerPath)
	}
	s := &redisServer{t: t, dir: t.TempDir()}
	t.Cleanup(s.stop)
	for range 20 {
		s.port = 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", s.port))
		if err != nil {
			continue
		}
		l.Close()
		if s.tryStart() == nil {
			return s
		}
	}
	t.Fatal("could not start redis-server on a free port")
	return nil
}

// addr is "127.0.0.1:port".
func (s *redisServer) addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// start runs redis-server again on the same port.
func (s *redisServer) start() {
	s.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.tryStart()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("restarting redis-server on %s: %v", s.addr(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tryStart starts redis-server and waits until it answers PING.
func (s *redisServer) tryStart() error {
	cmd := exec.Command(redisServerPath,
		"--port", fmt.Sprint(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server exited: %v", err)
		default:
		}
		if pingRedis(s.addr()) {
			s.cmd = cmd
			s.exited = exited
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	return fmt.Errorf("redis-server on %s did not answer PING", s.addr())
}

// stop kills redis-server and waits for it to exit.
func (s *redisServer) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// pingRedis reports whether something at addr answers PING with PONG.
func pingRedis(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// quietRedisLog drops go-redis's own log lines: failed dials are expected
// while a test has Redis down.
type quietRedisLog struct{}

func (quietRedisLog) Printf(context.Context, string, ...any) {}

var quietRedis = sync.OnceFunc(func() { redis.SetLogger(quietRedisLog{}) })

// newRedisClient returns a client for addr, closed when the test ends.
func newRedisClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	quietRedis()
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, MaxRetries: 1})
	t.Cleanup(func() { c.Close() })
	return c
}

// redisNode is one parley node's Registrar on a shared Redis, running.
type redisNode struct {
	r     *Registrar
	store *RedisStore
	reg   *prometheus.Registry
}

// startRedisNode builds a Registrar named node (SIP address nodeAddr) on
// the Redis at addr and runs it until the test ends.
func startRedisNode(t *testing.T, addr, node, nodeAddr string) *redisNode {
	t.Helper()
	n := &redisNode{reg: prometheus.NewPedanticRegistry()}
	client := newRedisClient(t, addr)
	store, err := OpenRedisStore(t.Context(), client, WithRedisNode(node), WithRedisPingInterval(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	n.store = store
	n.r, err = New(newTestDigest(t, newFakeClock()), store,
		WithNode(node), WithNodeAddr(nodeAddr), WithFlushDelay(10*time.Millisecond), WithMetrics(n.reg))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Logf("%s: Run: %v", node, err)
		}
		n.r.Close()
	})
	return n
}

// register sends a REGISTER from a trusted address (no challenge) through
// the node and wants a 200.
func (n *redisNode) register(t *testing.T, v msgVars) {
	t.Helper()
	if v.Source == "" {
		v.Source = "10.0.0.7:5060"
	}
	tx := newRecordingTx()
	n.r.HandleRegister(loadRequest(t, "register.sip", v), tx)
	if res := tx.last(t); res.StatusCode != 200 {
		t.Fatalf("REGISTER %s: %d %s", v.User, res.StatusCode, res.Reason)
	}
}

// waitFor polls cond until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRedisStoreRoundTrip(t *testing.T) {
	srv := startRedis(t)
	client := newRedisClient(t, srv.addr())
	store, err := OpenRedisStore(t.Context(), client)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Millisecond)
	want := map[string][]Binding{
		"1001": {
			{User: "1001", Contact: "sip:1001@192.168.1.20:5062", Source: "203.0.113.9:40123", Transport: "udp",
				Expires: now.Add(10 * time.Minute), CallID: "c1", CSeq: 3, Q: 1, UserAgent: "TestPhone/1.0", Node: "a", NodeAddr: "192.0.2.1:5060"},
			{User: "1001", Contact: "sip:1001@192.168.1.21:5060", Source: "203.0.113.9:40124", Transport: "tcp",
				Expires: now.Add(20 * time.Minute), CallID: "c2", CSeq: 1, Q: 0.5, Node: "b", NodeAddr: "192.0.2.2:5060"},
		},
		"1002": {{User: "1002", Contact: "sip:1002@192.168.1.30", Source: "198.51.100.2:6000", Transport: "udp",
			Expires: now.Add(time.Hour), CallID: "c3", CSeq: 9, Q: 1}},
	}
	if err := store.SaveBatch(want); err != nil {
		t.Fatal(err)
	}
	// The key lives exactly as long as the last binding.
	for user, last := range map[string]time.Duration{"1001": 20 * time.Minute, "1002": time.Hour} {
		ttl, err := client.PTTL(t.Context(), redisKeyPrefix+user).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 || ttl > last || ttl < last-time.Minute {
			t.Errorf("PTTL %s = %v, want just under %v", user, ttl, last)
		}
	}
	// A damaged record costs only itself.
	if err := client.Set(t.Context(), redisKeyPrefix+"broken", "[{", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := store.Load()
	if err != nil {
		t.Fatal(err)
	}
	byUser := map[string][]Binding{}
	for _, b := range got {
		byUser[b.User] = append(byUser[b.User], b)
	}
	if len(byUser) != 2 {
		t.Fatalf("Load: users %v, want 1001 and 1002", byUser)
	}
	for user, bs := range want {
		if len(byUser[user]) != len(bs) {
			t.Fatalf("%s: %d bindings, want %d", user, len(byUser[user]), len(bs))
		}
		for i, w := range bs {
			g := byUser[user][i]
			if g.Contact != w.Contact || g.Source != w.Source || g.Transport != w.Transport || !g.Expires.Equal(w.Expires) ||
				g.CallID != w.CallID || g.CSeq != w.CSeq || g.Q != w.Q || g.UserAgent != w.UserAgent || g.Node != w.Node || g.NodeAddr != w.NodeAddr {
				t.Errorf("%s[%d]:\n got %+v\nwant %+v", user, i, g, w)
			}
		}
	}
	if n := testutil.ToFloat64(store.errs.WithLabelValues("decode")); n != 1 {
		t.Errorf("decode errors = %v, want 1", n)
	}

	// An empty slice deletes the key.
	if err := store.Save("1001", nil); err != nil {
		t.Fatal(err)
	}
	if n, _ := client.Exists(t.Context(), redisKeyPrefix+"1001").Result(); n != 0 {
		t.Error("key of a user without bindings left behind")
	}
	// So does expiry of every binding: no dead node's leftovers.
	if err := store.Save("1003", []Binding{{User: "1003", Contact: "sip:1003@192.0.2.9", Expires: now.Add(-time.Second)}}); err != nil {
		t.Fatal(err)
	}
	if n, _ := client.Exists(t.Context(), redisKeyPrefix+"1003").Result(); n != 0 {
		t.Error("key of expired bindings left behind")
	}
	if err := store.Healthy(); err != nil {
		t.Errorf("Healthy: %v", err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if err := store.Save("1002", nil); err != ErrClosed {
		t.Errorf("Save after Close: %v, want ErrClosed", err)
	}
}

// TestBindingJSONCompatible checks that the node fields are left out when
// empty, so records written before them and after them read alike.
func TestBindingJSONCompatible(t *testing.T) {
	old := `[{"user":"1001","contact":"sip:1001@192.168.1.20","source":"203.0.113.9:40123","transport":"udp",` +
		`"expires":"2026-03-01T13:00:00Z","call_id":"c","cseq":2,"q":1,"reachable":""}]`
	var bs []Binding
	if err := json.Unmarshal([]byte(old), &bs); err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 || bs[0].Node != "" || bs[0].CSeq != 2 {
		t.Fatalf("old record read as %+v", bs)
	}
	out, err := json.Marshal(bs)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "node") {
		t.Errorf("empty node fields written: %s", out)
	}
	bs[0].Node, bs[0].NodeAddr = "a", "192.0.2.1:5060"
	out, _ = json.Marshal(bs)
	if !strings.Contains(string(out), `"node":"a","node_addr":"192.0.2.1:5060"`) {
		t.Errorf("node fields missing: %s", out)
	}
}

// TestRedisTwoNodes runs two nodes on one Redis: what a phone registers
// through one is found on the other, with the node that holds its flow.
func TestRedisTwoNodes(t *testing.T) {
	srv := startRedis(t)
	a := startRedisNode(t, srv.addr(), "a", "192.0.2.1:5060")
	b := startRedisNode(t, srv.addr(), "b", "192.0.2.2:5060")

	a.register(t, msgVars{User: "1001", Expires: "600"})
	waitFor(t, time.Second, "1001 registered through a visible on b", func() bool { return len(b.r.Lookup("1001")) == 1 })
	got := b.r.Lookup("1001")[0]
	if got.Node != "a" || got.NodeAddr != "192.0.2.1:5060" || got.Source != "10.0.0.7:5060" || got.Contact != "sip:1001@192.168.1.20:5062;transport=udp" {
		t.Errorf("b sees %+v", got)
	}
	if g := testutil.ToFloat64(b.r.gauge); g != 1 {
		t.Errorf("b's %s = %v, want 1", metricRegistrations, g)
	}
	// b took the binding from Redis: it must not write it back.
	b.r.dirtyMu.Lock()
	dirty := len(b.r.dirty) + len(b.r.flushing)
	b.r.dirtyMu.Unlock()
	if dirty != 0 {
		t.Errorf("b marked %d users for writing after applying a's change", dirty)
	}

	b.register(t, msgVars{User: "1002", Expires: "600", Source: "10.0.0.8:5070"})
	waitFor(t, time.Second, "1002 registered through b visible on a", func() bool { return len(a.r.Lookup("1002")) == 1 })
	if got := a.r.Lookup("1002")[0]; got.Node != "b" || got.NodeAddr != "192.0.2.2:5060" {
		t.Errorf("a sees %+v", got)
	}

	// Unregistering through a empties 1001 on b and in Redis.
	a.register(t, msgVars{User: "1001", Expires: "0", CSeq: 2})
	waitFor(t, time.Second, "unregistering 1001 reaches b", func() bool { return len(b.r.Lookup("1001")) == 0 })
	if g := testutil.ToFloat64(b.r.gauge); g != 1 {
		t.Errorf("b's %s = %v after 1001 left, want 1 (1002)", metricRegistrations, g)
	}
	client := newRedisClient(t, srv.addr())
	waitFor(t, time.Second, "1001's key deleted", func() bool {
		n, err := client.Exists(t.Context(), redisKeyPrefix+"1001").Result()
		return err == nil && n == 0
	})
	// Each node qualifies only its own phones.
	for _, n := range []*redisNode{a, b} {
		for _, bd := range n.r.All() {
			if n.r.owns(&bd) != (bd.Node == n.r.node) {
				t.Errorf("node %s: owns(%s of node %s) = %v", n.r.node, bd.User, bd.Node, n.r.owns(&bd))
			}
		}
	}
}

// TestRedisResyncAfterRestart stops Redis (losing every key, as a Redis
// without persistence does), registers a phone meanwhile, and starts Redis
// again: the write that failed lands, the other node sees it, and the phone
// registered before the restart is written again by the node that holds it.
func TestRedisResyncAfterRestart(t *testing.T) {
	srv := startRedis(t)
	a := startRedisNode(t, srv.addr(), "a", "192.0.2.1:5060")
	b := startRedisNode(t, srv.addr(), "b", "192.0.2.2:5060")
	a.register(t, msgVars{User: "1001", Expires: "600"})
	waitFor(t, time.Second, "1001 visible on b", func() bool { return len(b.r.Lookup("1001")) == 1 })

	srv.stop()
	a.register(t, msgVars{User: "1002", Expires: "600", Source: "10.0.0.9:5060"})
	waitFor(t, 5*time.Second, "a's write fails and is counted", func() bool {
		return testutil.ToFloat64(a.store.errs.WithLabelValues("save")) >= 1
	})
	if err := a.store.Healthy(); err == nil || !strings.Contains(err.Error(), "write failed") {
		t.Errorf("Healthy = %v, want the failed write", err)
	}
	if n := len(a.r.Lookup("1002")); n != 1 {
		t.Fatalf("a lost 1002 while Redis was down: %d bindings", n)
	}

	srv.start()
	waitFor(t, 10*time.Second, "the pending write lands and b sees 1002", func() bool {
		bs := b.r.Lookup("1002")
		return len(bs) == 1 && bs[0].Node == "a"
	})
	waitFor(t, 5*time.Second, "a writes 1001 again and b sees it", func() bool { return len(b.r.Lookup("1001")) == 1 })
	waitFor(t, 5*time.Second, "both stores healthy again", func() bool { return a.store.Healthy() == nil && b.store.Healthy() == nil })
	if n := len(a.r.Lookup("1001")); n != 1 {
		t.Errorf("a holds %d bindings for 1001, want 1", n)
	}
	client := newRedisClient(t, srv.addr())
	for _, user := range []string{"1001", "1002"} {
		if ttl, err := client.PTTL(t.Context(), redisKeyPrefix+user).Result(); err != nil || ttl <= 0 {
			t.Errorf("PTTL %s = %v, %v; want a set expiry", user, ttl, err)
		}
	}
}

// applied records what Watch applies.
type applied struct {
	mu  sync.Mutex
	got []string // "user=contacts"
	ch  chan string
}

func newApplied() *applied { return &applied{ch: make(chan string, 100)} }

func (a *applied) apply(user string, bs []Binding) {
	s := user + "=" + strings.Join(contactsOf(bs), ",")
	a.mu.Lock()
	a.got = append(a.got, s)
	a.mu.Unlock()
	a.ch <- s
}

// next waits for the next apply.
func (a *applied) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-a.ch:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("nothing applied within 5s")
		return ""
	}
}

// TestRedisWatch checks Watch against miniredis: a node's own changes are
// skipped, another's applied, Refresh reads users again, and after a
// reconnection users deleted meanwhile are emptied.
func TestRedisWatch(t *testing.T) {
	m := miniredis.RunT(t)
	ca, cb := newRedisClient(t, m.Addr()), newRedisClient(t, m.Addr())
	sa, err := OpenRedisStore(t.Context(), ca, WithRedisNode("a"))
	if err != nil {
		t.Fatal(err)
	}
	sb, err := OpenRedisStore(t.Context(), cb, WithRedisNode("b"), WithRedisPingInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	bind := func(user, host string) []Binding {
		return []Binding{{User: user, Contact: "sip:" + user + "@" + host, Expires: exp}}
	}
	// pre is there before Watch starts: only the first resynchronisation
	// applies it, and once it has, that resynchronisation is over.
	if err := sa.Save("pre", bind("pre", "192.0.2.9")); err != nil {
		t.Fatal(err)
	}
	var resyncs atomic.Int32
	sb.OnResync(func() { resyncs.Add(1) })
	got := newApplied()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- sb.Watch(ctx, got.apply) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()
	if s := got.next(t); s != "pre=sip:pre@192.0.2.9" || resyncs.Load() != 1 {
		t.Fatalf("first resynchronisation applied %q after %d OnResync calls", s, resyncs.Load())
	}
	if err := sb.Save("own", bind("own", "192.0.2.1")); err != nil {
		t.Fatal(err)
	}
	if err := sa.SaveBatch(map[string][]Binding{"x": bind("x", "192.0.2.2"), "y": bind("y", "192.0.2.3")}); err != nil {
		t.Fatal(err)
	}
	first := []string{got.next(t), got.next(t)}
	slices.Sort(first)
	if want := []string{"x=sip:x@192.0.2.2", "y=sip:y@192.0.2.3"}; !slices.Equal(first, want) {
		t.Fatalf("applied %q, want %q (b's own change skipped)", first, want)
	}

	// A change that bypassed the channel is picked up by Refresh.
	if err := m.Set(redisKeyPrefix+"y", `[{"user":"y","contact":"sip:y@192.0.2.4","expires":"`+exp.Format(time.RFC3339Nano)+`"}]`); err != nil {
		t.Fatal(err)
	}
	sb.Refresh("y")
	if s := got.next(t); s != "y=sip:y@192.0.2.4" {
		t.Fatalf("Refresh applied %q", s)
	}

	// x goes while b is cut off; the reconnection resynchronises.
	m.Del(redisKeyPrefix + "x")
	m.Close()
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	var after []string
	for range 4 { // x gone; own, pre and y present
		after = append(after, got.next(t))
	}
	if n := resyncs.Load(); n != 2 {
		t.Errorf("OnResync called %d times, want 2", n)
	}
	slices.Sort(after)
	if want := []string{"own=sip:own@192.0.2.1", "pre=sip:pre@192.0.2.9", "x=", "y=sip:y@192.0.2.4"}; !slices.Equal(after, want) {
		t.Fatalf("resync applied %q, want %q", after, want)
	}
}

// TestApply checks Registrar.Apply on its own: bindings from another node
// replace the user's, keep the gauges right and are not written back; a
// user with a change of its own pending is left alone and read again after
// its write.
func TestApply(t *testing.T) {
	e := newTestEnv(t, nil, WithNode("a"))
	now := e.clock.Now()
	remote := []Binding{
		{Contact: "sip:1001@192.0.2.5", Source: "198.51.100.1:5060", Transport: "udp", Expires: now.Add(time.Minute), Node: "b", NodeAddr: "192.0.2.2:5060"},
		{Contact: "sip:1001@192.0.2.6", Expires: now.Add(-time.Second), Node: "b"}, // expired: dropped
	}
	e.r.Apply("1001", remote)
	got := e.r.Lookup("1001")
	if len(got) != 1 || got[0].User != "1001" || got[0].Node != "b" || got[0].Reachable != ReachableUnknown {
		t.Fatalf("after Apply: %+v", got)
	}
	if g := testutil.ToFloat64(e.r.gauge); g != 1 {
		t.Errorf("%s = %v, want 1", metricRegistrations, g)
	}
	if len(e.r.dirty) != 0 {
		t.Errorf("Apply marked %v for writing", e.r.dirty)
	}
	if e.r.owns(&got[0]) {
		t.Error("a owns b's binding")
	}

	// A REGISTER through this node is pending: another node's older view
	// must not undo it.
	e.registerAs(t, "register.sip", msgVars{User: "1001", CallID: "local"})
	e.r.Apply("1001", nil)
	if n := len(e.r.Lookup("1001")); n != 2 {
		t.Fatalf("Apply over a pending change: %d bindings, want 2", n)
	}
	if _, ok := e.r.missed["1001"]; !ok {
		t.Error("passed-over change not remembered")
	}
	if err := e.r.flush(); err != nil {
		t.Fatal(err)
	}
	if len(e.r.missed) != 0 {
		t.Errorf("missed = %v after the write", e.r.missed)
	}
	e.r.Apply("1001", nil)
	if n := len(e.r.Lookup("1001")); n != 0 {
		t.Fatalf("Apply of an empty user: %d bindings left", n)
	}
	if g := testutil.ToFloat64(e.r.gauge); g != 0 {
		t.Errorf("%s = %v, want 0", metricRegistrations, g)
	}
}

// TestRedisStoreMetrics lints parley_store_errors_total as the Registrar
// registers it.
func TestRedisStoreMetrics(t *testing.T) {
	m := miniredis.RunT(t)
	store, err := OpenRedisStore(t.Context(), newRedisClient(t, m.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	r, err := New(newTestDigest(t, newFakeClock()), store, WithMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
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
	var ops []string
	for _, mf := range mfs {
		if mf.GetName() != metricStoreErrors {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "store":
					if l.GetValue() != "redis" {
						t.Errorf("store=%q", l.GetValue())
					}
				case "op":
					ops = append(ops, l.GetValue())
				default:
					t.Errorf("unexpected label %s", l.GetName())
				}
			}
		}
	}
	slices.Sort(ops)
	want := slices.Sorted(slices.Values(storeOps))
	if !slices.Equal(ops, want) {
		t.Errorf("ops %q, want %q", ops, want)
	}
}

func TestRedisOptionErrors(t *testing.T) {
	m := miniredis.RunT(t)
	c := newRedisClient(t, m.Addr())
	for name, o := range map[string]RedisOption{
		"empty node":    WithRedisNode(""),
		"nil logger":    WithRedisLogger(nil),
		"zero interval": WithRedisPingInterval(0),
	} {
		if _, err := OpenRedisStore(t.Context(), c, o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := OpenRedisStore(t.Context(), nil); err == nil {
		t.Error("nil client: no error")
	}
	d := newTestDigest(t, newFakeClock())
	for _, addr := range []string{"192.0.2.1", "192.0.2.1:0", ":5060", "192.0.2.1:x"} {
		if _, err := New(d, NewMemoryStore(), WithNodeAddr(addr)); err == nil {
			t.Errorf("WithNodeAddr(%q): no error", addr)
		}
	}
	m.Close()
	if _, err := OpenRedisStore(t.Context(), c); err == nil {
		t.Error("Redis down: no error")
	}
}
