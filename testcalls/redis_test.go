package testcalls

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisServer is a real redis-server a test started on a loopback port.
type redisServer struct {
	Port int
	// URL is its store.redis value.
	URL string
	cmd *exec.Cmd
	dir string
	bin string
}

// startRedis runs redis-server (Debian's package redis-server, which the
// test command installs) on a free loopback port below the ephemeral range,
// without persistence, and stops it when t ends.
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found (the README's test command installs it: apt-get install -y redis-server): %v", err)
	}
	r := &redisServer{dir: t.TempDir(), bin: bin}
	for port := 29000 + os.Getpid()%500; port < 29999; port++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		r.Port = port
		break
	}
	if r.Port == 0 {
		t.Fatal("no free port for redis-server in 29000-29999")
	}
	r.URL = fmt.Sprintf("redis://127.0.0.1:%d/0", r.Port)
	r.start(t)
	t.Cleanup(func() { r.stop() })
	return r
}

// start runs the server (again, on the same port, empty: no persistence).
func (r *redisServer) start(t *testing.T) {
	t.Helper()
	r.cmd = exec.Command(r.bin, "--port", fmt.Sprint(r.Port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log"))
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", r.Port), 200*time.Millisecond)
		if err == nil {
			_, _ = c.Write([]byte("PING\r\n"))
			buf := make([]byte, 16)
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := c.Read(buf)
			c.Close()
			if string(buf[:n]) == "+PONG\r\n" {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("redis-server on port %d did not answer PING within 5 s", r.Port)
}

// stop kills the server.
func (r *redisServer) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// keys returns the keys of r matching pattern.
func (r *redisServer) keys(t *testing.T, pattern string) []string {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.Port)})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	keys, err := c.Keys(ctx, pattern).Result()
	if err != nil {
		t.Fatalf("redis KEYS %s: %v", pattern, err)
	}
	return keys
}

// readyzBody returns the status of p's /readyz and its body.
func (p *parley) readyzBody() (int, string) {
	client := &http.Client{Timeout: time.Second}
	res, err := client.Get("http://" + p.AdminAddr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// waitReadyz polls /readyz until its status is want, for up to d.
func (p *parley) waitReadyz(t *testing.T, want int, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		code, body := p.readyzBody()
		if code == want {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz answered %d %q for %v, want %d", code, body, d, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRedisAway: Redis stops while calls are up. The calls go on, with
// media; /readyz turns 503 naming the store, the store errors are counted,
// and a phone registering meanwhile is still answered. When Redis is back
// (empty) /readyz turns 200 again and the stores catch up: the new
// registration and every call's checkpoint are in Redis. The calls then end
// normally and their checkpoints go.
func TestRedisAway(t *testing.T) {
	const n = 5
	rs := startRedis(t)
	cfg := recoveryConfig(t, rangeRedisAway, "")
	cfg.Redis = rs.URL
	p := startParley(t, cfg)
	_, callee, calls := mediaCalls(t, p, n, nil)
	deadline := time.Now().Add(3 * time.Second)
	for len(rs.keys(t, "parley:call:*")) != n {
		if time.Now().After(deadline) {
			t.Fatalf("Redis holds checkpoints %q, want %d", rs.keys(t, "parley:call:*"), n)
		}
		time.Sleep(50 * time.Millisecond)
	}

	rs.stop()
	body := p.waitReadyz(t, http.StatusServiceUnavailable, 12*time.Second)
	if !strings.Contains(body, "Redis") && !strings.Contains(body, "checkpoint") {
		t.Errorf("/readyz while Redis is away says %q; want it to name the store", body)
	}
	late := newPhone(t, "1003", p.SIPAddr, "udp")
	late.mustRegister()
	p.waitMetric(t, 10*time.Second, atLeast(1), "parley_checkpoint_writes_total", "result", "error")
	waitMedia(t, calls, time.Now(), 2*time.Second)
	if got := len(p.apiCalls(t)); got != n {
		t.Errorf("%d calls while Redis is away, want %d", got, n)
	}

	rs.start(t)
	p.waitReadyz(t, http.StatusOK, 15*time.Second)
	deadline = time.Now().Add(10 * time.Second)
	for {
		regs, ckpts := rs.keys(t, "parley:reg:*"), rs.keys(t, "parley:call:*")
		if slices.Contains(regs, "parley:reg:1003") && len(ckpts) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Redis came back: registrations %q, checkpoints %d; want 1003 among them and %d", regs, len(ckpts), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	hangupAll(t, p, callee, calls)
	deadline = time.Now().Add(3 * time.Second)
	for len(rs.keys(t, "parley:call:*")) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("checkpoints left in Redis after every call ended: %q", rs.keys(t, "parley:call:*"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
