package testcalls

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sippReorderFlags are the flags TESTING.md asks for: a 180 that overtakes
// its 200 must not abort the call, and a call that really stalls still fails.
var sippReorderFlags = []string{"-default_behaviors", "all,-abortunexp", "-recv_timeout", "5000"}

// needSipp skips the test when SIPp is not installed.
func needSipp(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("sipp")
	if err != nil {
		t.Skip("sipp not on PATH (apt-get install sip-tester)")
	}
	return path
}

// sipp is one SIPp process.
type sipp struct {
	// Port is the SIP port SIPp listens on.
	Port int
	// Dir is SIPp's working directory, where it writes its trace files.
	Dir string
	// LogPath holds SIPp's stdout and stderr.
	LogPath string

	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// startSipp starts SIPp with args plus a free -p port, -i 127.0.0.1 and a
// free -mp media port, and stops it (SIGTERM, then SIGKILL) when t ends.
func startSipp(t *testing.T, name string, args ...string) *sipp {
	t.Helper()
	bin := needSipp(t)
	s := &sipp{Port: freeSIPPort(t), Dir: t.TempDir(), exited: make(chan struct{})}
	s.LogPath = filepath.Join(s.Dir, name+".log")
	full := append([]string{"-i", "127.0.0.1", "-p", fmt.Sprint(s.Port), "-mp", fmt.Sprint(freeMediaPort(t)), "-nostdin"}, args...)
	logf, err := os.Create(s.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(bin, full...)
	s.cmd.Dir = s.Dir
	s.cmd.Stdout = logf
	s.cmd.Stderr = logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start sipp: %v", err)
	}
	t.Logf("%s: sipp %s", name, strings.Join(full, " "))
	go func() {
		s.err = s.cmd.Wait()
		logf.Close()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			s.dump(t, name)
		}
	})
	return s
}

// waitBound waits until SIPp has bound its UDP port (a bind of ours fails).
func (s *sipp) waitBound(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			t.Fatalf("sipp exited at start: %v\n%s", s.err, tail(s.LogPath, 40))
		default:
		}
		c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", s.Port))
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("sipp did not bind udp port %d within 5s", s.Port)
}

// wait waits for SIPp to exit within d and returns its exit code (-1 when it
// had to be killed).
func (s *sipp) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-s.exited:
	case <-time.After(d):
		t.Errorf("sipp still running after %v; killing it", d)
		s.stop(t)
		return -1
	}
	var ee *exec.ExitError
	if errors.As(s.err, &ee) {
		return ee.ExitCode()
	}
	if s.err != nil {
		t.Errorf("sipp: %v", s.err)
		return -1
	}
	return 0
}

func (s *sipp) stop(t *testing.T) {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.exited:
		return
	case <-time.After(stopTimeout):
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		t.Errorf("sipp (pid %d) still running after SIGKILL", s.cmd.Process.Pid)
	}
}

// dump logs SIPp's output and error traces.
func (s *sipp) dump(t *testing.T, name string) {
	t.Logf("%s output (tail):\n%s", name, tail(s.LogPath, 60))
	files, _ := filepath.Glob(filepath.Join(s.Dir, "*"))
	for _, f := range files {
		if strings.HasSuffix(f, "_errors.log") || strings.HasSuffix(f, "_messages.log") {
			t.Logf("%s %s (tail):\n%s", name, filepath.Base(f), tail(f, 80))
		}
	}
}

// stat reads a counter from SIPp's -trace_stat CSV (the last row), e.g.
// "SuccessfulCall(C)" or "FailedCall(C)". ok is false without a CSV.
func (s *sipp) stat(column string) (value string, ok bool) {
	files, _ := filepath.Glob(filepath.Join(s.Dir, "*.csv"))
	if len(files) == 0 {
		return "", false
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		return "", false
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		return "", false
	}
	header := strings.Split(lines[0], ";")
	last := strings.Split(lines[len(lines)-1], ";")
	for i, h := range header {
		if h == column && i < len(last) {
			return last[i], true
		}
	}
	return "", false
}

// freeMediaPort returns an even UDP port with the next three free too
// (SIPp binds audio and video RTP/RTCP from -mp).
func freeMediaPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		base := 30000 + 4*int(time.Now().UnixNano()%5000)
		ok := true
		for i := range 4 {
			c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				break
			}
			c.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free media ports")
	return 0
}

// scenarioPath returns the absolute path of a scenario under scenarios/.
func scenarioPath(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("scenarios", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// startSippUAS starts SIPp's built-in callee and waits until it listens.
func startSippUAS(t *testing.T) *sipp {
	t.Helper()
	uas := startSipp(t, "sipp-uas", "-sn", "uas", "-trace_err")
	uas.waitBound(t)
	return uas
}

// TestSippUACTrusted: SIPp's built-in caller, from a trusted network (so no
// challenge), calls a route that leads to SIPp's built-in callee through
// parley; every call must complete.
func TestSippUACTrusted(t *testing.T) {
	needSipp(t)
	uas := startSippUAS(t)
	pl := startParley(t, parleyConfig{
		Trusted: []string{"127.0.0.1/32"},
		Routes:  [][2]string{{`^9(\d+)$`, fmt.Sprintf("sip:$1@127.0.0.1:%d", uas.Port)}},
	})
	const calls = 20
	args := []string{pl.SIPAddr, "-sn", "uac", "-s", "9001", "-m", fmt.Sprint(calls), "-r", "10", "-d", "100",
		"-trace_stat", "-stf", "uac.csv", "-trace_err", "-timeout", "30s", "-timeout_error"}
	uac := startSipp(t, "sipp-uac", append(args, sippReorderFlags...)...)
	if code := uac.wait(t, 40*time.Second); code != 0 {
		t.Errorf("sipp uac exit code %d, want 0 (all %d calls successful)", code, calls)
	}
	if v, ok := uac.stat("SuccessfulCall(C)"); ok && v != fmt.Sprint(calls) {
		t.Errorf("sipp uac SuccessfulCall(C) = %s, want %d", v, calls)
	}
	pl.waitMetric(t, 3*time.Second, atLeast(calls), "parley_calls_total", "result", "answered")
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
	// Trusted traffic is never challenged.
	if v, _ := pl.scrapeMetrics(t).get("parley_auth_failures_total"); v != 0 {
		t.Errorf("parley_auth_failures_total = %v for trusted traffic, want 0", v)
	}
}

// TestSippUACAuth: SIPp, untrusted, answers parley's 407 with digest
// credentials (scenarios/uac_auth.xml) and completes every call.
func TestSippUACAuth(t *testing.T) {
	needSipp(t)
	uas := startSippUAS(t)
	pl := startParley(t, parleyConfig{
		Routes: [][2]string{{`^9(\d+)$`, fmt.Sprintf("sip:$1@127.0.0.1:%d", uas.Port)}},
	})
	const calls = 5
	args := []string{pl.SIPAddr, "-sf", scenarioPath(t, "uac_auth.xml"), "-s", "9002", "-key", "caller", "1001",
		"-au", "1001", "-ap", testUsers["1001"], "-m", fmt.Sprint(calls), "-r", "5",
		"-trace_stat", "-stf", "uac.csv", "-trace_err", "-timeout", "30s", "-timeout_error"}
	uac := startSipp(t, "sipp-uac-auth", append(args, sippReorderFlags...)...)
	if code := uac.wait(t, 40*time.Second); code != 0 {
		t.Errorf("sipp uac_auth.xml exit code %d, want 0 (all %d calls successful)", code, calls)
	}
	pl.waitMetric(t, 3*time.Second, atLeast(calls), "parley_calls_total", "result", "answered")
}

// TestCallToRouteReachesSippUAS: a registered phone dials 9+digits; parley
// routes the call to SIPp's callee, which answers; the phone hangs up.
func TestCallToRouteReachesSippUAS(t *testing.T) {
	needSipp(t)
	uas := startSippUAS(t)
	pl := startParley(t, parleyConfig{
		Routes: [][2]string{{`^9(\d+)$`, fmt.Sprintf("sip:$1@127.0.0.1:%d", uas.Port)}},
	})
	alice := newPhone(t, "1001", pl.SIPAddr, "udp")
	alice.mustRegister()

	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	c := alice.call(ctx, "9123")
	c.mustAnswered(t)
	time.Sleep(200 * time.Millisecond)
	c.hangup(t)
	pl.waitMetric(t, 3*time.Second, atLeast(1), "parley_calls_total", "result", "answered")
}
