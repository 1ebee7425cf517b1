package testcalls

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// redisServer is a real redis-server a test started on a loopback port.
type redisServer struct {
	Port int
	// URL is its store.redis value.
	URL string
	cmd *exec.Cmd
	dir string
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
	r := &redisServer{dir: t.TempDir()}
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
	r.start(t, bin)
	t.Cleanup(func() { r.stop() })
	return r
}

func (r *redisServer) start(t *testing.T, bin string) {
	t.Helper()
	r.cmd = exec.Command(bin, "--port", fmt.Sprint(r.Port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
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

func (r *redisServer) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}
