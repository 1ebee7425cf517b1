package testcalls

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// lowSIPPort returns a loopback port below 32768, free for UDP and TCP a
// moment ago: the thousands of client connections these tests open take
// their ports from 32768 up, and must not meet parley's.
func lowSIPPort(t *testing.T) int {
	t.Helper()
	for range 200 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			c.Close()
			return port
		}
	}
	t.Fatal("no port below 32768 free for both UDP and TCP")
	return 0
}

// startParleyLow is startParley on a SIP port below 32768, with sipExtra
// added to the config's sip section and, when shell is set, parley run as
// `sh -c shell` (with the binary and its arguments as $0 and $@) so a
// test can set limits such as ulimit -n first.
func startParleyLow(t *testing.T, cfg parleyConfig, sipExtra, shell string) *parley {
	t.Helper()
	needParley(t)
	dir := t.TempDir()
	sipPort, adminPort := lowSIPPort(t), lowSIPPort(t)
	p := &parley{
		SIPAddr:    fmt.Sprintf("127.0.0.1:%d", sipPort),
		AdminAddr:  fmt.Sprintf("127.0.0.1:%d", adminPort),
		ConfigPath: filepath.Join(dir, "parley.yaml"),
		LogPath:    filepath.Join(dir, "parley.log"),
		exited:     make(chan struct{}),
	}
	conf := strings.Replace(renderConfig(cfg, sipPort, adminPort), "  realm: parley.lab\n", "  realm: parley.lab\n"+sipExtra, 1)
	writeFile(t, p.ConfigPath, conf)
	args := []string{"-config", p.ConfigPath}
	cmd := exec.Command(parleyBin, args...)
	if shell != "" {
		cmd = exec.Command("sh", append([]string{"-c", shell + ` && exec "$0" "$@"`, parleyBin}, args...)...)
	}
	p.run(t, cmd)
	return p
}

// held is one client TCP connection kept open until the server ends it;
// a goroutine of its own reads it and notes when that happens.
type held struct {
	c      *net.TCPConn
	opened time.Time

	mu     sync.Mutex
	closed time.Time // zero while open
}

func (h *held) closedAt() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// lifetime is how long the server kept h open; -1 while it is open.
func (h *held) lifetime() time.Duration {
	if c := h.closedAt(); !c.IsZero() {
		return c.Sub(h.opened)
	}
	return -1
}

// connFlood opens connections from loopback source addresses and keeps
// them; Close ends them all and waits for their readers.
type connFlood struct {
	addr string
	wg   sync.WaitGroup
	mu   sync.Mutex
	all  []*held
}

// open dials n connections from the address from, one after another (so
// parley accepts them in that order), and returns them.
func (f *connFlood) open(t *testing.T, from string, n int) []*held {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	out := make([]*held, 0, n)
	for range n {
		opened := time.Now()
		c, err := d.Dial("tcp", f.addr)
		h := &held{opened: opened}
		out = append(out, h)
		if err != nil {
			// Reset before the dial returned: refused at once.
			h.closed = time.Now()
			continue
		}
		h.c = c.(*net.TCPConn)
		f.mu.Lock()
		f.all = append(f.all, h)
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			buf := make([]byte, 512)
			for {
				if _, err := h.c.Read(buf); err != nil {
					h.mu.Lock()
					h.closed = time.Now()
					h.mu.Unlock()
					return
				}
			}
		}()
	}
	return out
}

// trickle writes an incomplete request to each of hs, a byte every
// interval, until the server closes it or the request runs out.
func (f *connFlood) trickle(hs []*held, interval time.Duration) {
	partial := []byte("OPTIONS sip:parley.lab SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-trickle\r\n")
	for _, h := range hs {
		if h.c == nil {
			continue
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			for _, b := range partial {
				time.Sleep(interval)
				if !h.closedAt().IsZero() {
					return
				}
				if _, err := h.c.Write([]byte{b}); err != nil {
					return
				}
			}
		}()
	}
}

func (f *connFlood) Close() {
	f.mu.Lock()
	for _, h := range f.all {
		h.c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// split counts the connections of hs the server closed within d of
// opening them (refused) and those it kept longer or keeps still.
func split(hs []*held, d time.Duration) (refused, kept []*held) {
	for _, h := range hs {
		if l := h.lifetime(); l >= 0 && l < d {
			refused = append(refused, h)
		} else {
			kept = append(kept, h)
		}
	}
	return refused, kept
}

// tcpOptions sends OPTIONS over a new TCP connection from the address
// from and returns the status line of the answer ("" for none), with the
// connection, which it leaves open.
func tcpOptions(t *testing.T, addr, from string) (string, *net.TCPConn) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 3 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "", nil
	}
	t.Cleanup(func() { c.Close() })
	callID := fmt.Sprintf("tcp-options-%d", time.Now().UnixNano())
	req := "OPTIONS sip:parley.lab SIP/2.0\r\nVia: SIP/2.0/TCP " + c.LocalAddr().String() + ";branch=z9hG4bK-" + callID + "\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:probe@parley.lab>;tag=p\r\nTo: <sip:parley.lab>\r\nCall-ID: " + callID +
		"\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		return "", nil
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", nil
	}
	_ = c.SetReadDeadline(time.Time{})
	return strings.TrimSpace(line), c.(*net.TCPConn)
}

// udpAnswered reports whether a UDP OPTIONS and a REGISTER from 127.0.0.1
// still get their answers (200, and the 401 challenge).
func udpAnswered(t *testing.T, addr string) error {
	t.Helper()
	for method, want := range map[string]string{"OPTIONS": "SIP/2.0 200", "REGISTER": "SIP/2.0 401"} {
		callID := fmt.Sprintf("udp-%s-%d", method, time.Now().UnixNano())
		res := sendUDP(t, addr, rawRequest(method, "parley.lab", "127.0.0.1:9", callID, "Max-Forwards: 70", "Contact: <sip:1001@127.0.0.1:9>"), 3*time.Second)
		if !strings.HasPrefix(string(res), want) {
			return fmt.Errorf("UDP %s: got %q, want %s", method, firstLine(res), want)
		}
	}
	return nil
}

// TestTCPLimits holds thousands of idle and trickling TCP connections
// from loopback against small limits: past sip.tcp.max_per_source and
// max_connections the newest connection is closed at once; a silent one
// is closed at sip.tcp.idle_timeout, one that trickles bytes without
// completing a message at first_message_timeout, and one that sent a
// message at idle_timeout after it; legitimate requests over UDP and TCP
// are answered throughout, and the listener accepts again afterwards.
func TestTCPLimits(t *testing.T) {
	const (
		perSource    = 800
		maxConns     = 2500
		idle         = 2 * time.Second
		firstMessage = 3 * time.Second
		// slack is what a loaded machine may add to a timeout.
		slack = 3 * time.Second
	)
	pl := startParleyLow(t, parleyConfig{},
		fmt.Sprintf("  tcp: {max_connections: %d, max_per_source: %d, idle_timeout: %s, first_message_timeout: %s}\n",
			maxConns, perSource, idle, firstMessage), "")
	flood := &connFlood{addr: pl.SIPAddr}
	defer flood.Close()

	// 900 from each of three sources: 800 kept, the last 100 of each
	// refused. A tenth of the kept ones trickle bytes that never complete
	// a message; the others are silent.
	start := time.Now()
	var sources [][]*held
	var tricklers []*held
	for _, src := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		hs := flood.open(t, src, perSource+100)
		flood.trickle(hs[:perSource/10], 250*time.Millisecond)
		tricklers = append(tricklers, hs[:perSource/10]...)
		sources = append(sources, hs)
	}
	// 2,400 held: a new TCP connection from another source is answered.
	status, legit := tcpOptions(t, pl.SIPAddr, "127.0.0.1")
	legitAnswered := time.Now()
	if !strings.HasPrefix(status, "SIP/2.0 200") {
		t.Fatalf("TCP OPTIONS with 2,400 connections held: %q", status)
	}
	// 200 more from a fourth source meet max_connections: 99 fit, with
	// the legitimate one 2,500; the rest, and one more from a fifth
	// source, are refused.
	fourth := flood.open(t, "127.0.0.5", 200)
	fifth := flood.open(t, "127.0.0.6", 1)
	if took := time.Since(start); took > idle-700*time.Millisecond {
		t.Fatalf("opening 2,900 connections took %v; too slow to tell refused ones from timed out ones at idle_timeout %v", took, idle)
	}
	t.Logf("opened 2,901 connections in %v", time.Since(start).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond)
	for i, hs := range sources {
		refused, kept := split(hs, time.Second)
		if len(refused) != 100 || len(kept) != perSource {
			t.Errorf("source 127.0.0.%d: %d refused, %d kept; want 100 past max_per_source %d", i+2, len(refused), len(kept), perSource)
		}
		for j, h := range hs[:perSource] {
			if l := h.lifetime(); l >= 0 && l < time.Second {
				t.Errorf("source 127.0.0.%d: connection %d was refused; only those past the limit may be", i+2, j)
				break
			}
		}
	}
	if refused, kept := split(fourth, time.Second); len(kept) != 99 || len(refused) != 101 {
		t.Errorf("127.0.0.5 at max_connections %d: %d kept, %d refused; want 99 and 101", maxConns, len(kept), len(refused))
	}
	if refused, _ := split(fifth, time.Second); len(refused) != 1 {
		t.Error("a connection from a new source past max_connections was kept")
	}
	if err := udpAnswered(t, pl.SIPAddr); err != nil {
		t.Errorf("with 2,500 TCP connections held: %v", err)
	}

	// Every held connection is closed on time.
	all := append(append(sources, fourth), tricklers)
	deadline := time.Now().Add(firstMessage + 2*slack)
	for _, hs := range all {
		for _, h := range hs {
			for h.closedAt().IsZero() && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	trickling := map[*held]bool{}
	for _, h := range tricklers {
		trickling[h] = true
	}
	type tally struct{ open, early, late, n int }
	var silent, trickled tally
	for _, hs := range append(sources, fourth) {
		_, kept := split(hs, time.Second)
		for _, h := range kept {
			want, tl := idle, &silent
			if trickling[h] {
				want, tl = firstMessage, &trickled
			}
			tl.n++
			switch l := h.lifetime(); {
			case l < 0:
				tl.open++
			case l < want-300*time.Millisecond:
				tl.early++
			case l > want+slack:
				tl.late++
			}
		}
	}
	t.Logf("closed on time: %d silent at idle_timeout %v, %d trickling at first_message_timeout %v", silent.n, idle, trickled.n, firstMessage)
	if silent.open+silent.early+silent.late > 0 || silent.n != 3*perSource+99-len(tricklers) {
		t.Errorf("%d silent connections, idle_timeout %v: %d still open, %d closed early, %d late", silent.n, idle, silent.open, silent.early, silent.late)
	}
	if trickled.open+trickled.early+trickled.late > 0 || trickled.n != len(tricklers) {
		t.Errorf("%d trickling connections, first_message_timeout %v: %d still open, %d closed early, %d late", trickled.n, firstMessage, trickled.open, trickled.early, trickled.late)
	}
	_ = legit.SetReadDeadline(time.Now().Add(idle + slack))
	if _, err := legit.Read(make([]byte, 64)); err == nil {
		t.Error("the legitimate connection got more after its answer")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("the legitimate connection was not closed %v after its last message", idle)
	} else if took := time.Since(legitAnswered); took < idle-300*time.Millisecond {
		t.Errorf("the legitimate connection was closed %v after its answer, before idle_timeout %v", took, idle)
	}

	// All gone: the listener takes new connections, and parley is well.
	if status, _ := tcpOptions(t, pl.SIPAddr, "127.0.0.2"); !strings.HasPrefix(status, "SIP/2.0 200") {
		t.Errorf("TCP OPTIONS after the flood: %q", status)
	}
	if err := udpAnswered(t, pl.SIPAddr); err != nil {
		t.Errorf("after the flood: %v", err)
	}
	if code, _ := pl.httpGet(t, "/healthz"); code != 200 {
		t.Errorf("/healthz after the flood: %d", code)
	}
	select {
	case <-pl.exited:
		t.Fatalf("parley exited during the flood: %v", pl.err)
	default:
	}
}

// TestTCPOpenFilesLimit runs parley with only 256 files allowed, hard
// limit included, and opens more TCP connections than that: accept then
// fails with EMFILE. parley must log it and keep going (it used to take
// the failure as "SIP listener stopped" and exit 0), keep answering UDP,
// and accept again once files are free.
func TestTCPOpenFilesLimit(t *testing.T) {
	pl := startParleyLow(t, parleyConfig{},
		"  tcp: {max_connections: 5000, max_per_source: 5000, idle_timeout: 60s, first_message_timeout: 30s}\n",
		"ulimit -n 256")
	flood := &connFlood{addr: pl.SIPAddr}
	defer flood.Close()
	hs := flood.open(t, "127.0.0.2", 400)

	deadline := time.Now().Add(10 * time.Second)
	for !logHas(pl.LogPath, "SIP TCP accept failed") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if !logHas(pl.LogPath, "too many open files") {
		t.Fatalf("no EMFILE in parley's log with 400 connections and 256 files:\n%s", tail(pl.LogPath, 20))
	}
	if err := udpAnswered(t, pl.SIPAddr); err != nil {
		t.Errorf("out of files: %v", err)
	}
	select {
	case <-pl.exited:
		t.Fatalf("parley exited when it ran out of files: %v\n%s", pl.err, tail(pl.LogPath, 20))
	default:
	}

	// Free the files: parley accepts again (its retry waits at most 1 s).
	for _, h := range hs[:300] {
		if h.c != nil {
			h.c.Close()
		}
	}
	var status string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if status, _ = tcpOptions(t, pl.SIPAddr, "127.0.0.1"); strings.HasPrefix(status, "SIP/2.0 200") {
			break
		}
	}
	if !strings.HasPrefix(status, "SIP/2.0 200") {
		t.Fatalf("TCP OPTIONS once files were free again: %q", status)
	}
	if logHas(pl.LogPath, "SIP listener stopped") {
		t.Error("parley logged its listener as stopped")
	}
	if !logHas(pl.LogPath, `msg="open files limit" soft=256 hard=256`) {
		t.Errorf("parley did not log its open files limit:\n%s", tail(pl.LogPath, 40))
	}
}

// logHas reports whether parley's log holds s.
func logHas(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.Contains(string(b), s)
}

// TestTCPFramingError sends a good OPTIONS and, in the same write, what
// cannot be framed: the OPTIONS is answered, then the connection closes.
// (A framing error used to close it before the answer went out.) Over
// sip.max_message_size the same holds.
func TestTCPFramingError(t *testing.T) {
	pl := startParleyLow(t, parleyConfig{}, "  max_message_size: 1500\n", "")
	bad := map[string]string{
		"negative Content-Length": "OPTIONS sip:parley.lab SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-bad\r\nContent-Length: -5\r\n\r\n",
		"no Content-Length":       "OPTIONS sip:parley.lab SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-bad\r\n\r\n",
		"not SIP":                 "GET / HTTP/1.1\r\nHost: parley.lab\r\n\r\n",
		"over max_message_size":   "OPTIONS sip:parley.lab SIP/2.0\r\nX-Pad: " + strings.Repeat("p", 2000) + "\r\nContent-Length: 0\r\n\r\n",
	}
	for name, tail := range bad {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", pl.SIPAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			callID := fmt.Sprintf("framing-%d", time.Now().UnixNano())
			good := "OPTIONS sip:parley.lab SIP/2.0\r\nVia: SIP/2.0/TCP " + c.LocalAddr().String() + ";branch=z9hG4bK-" + callID + "\r\n" +
				"Max-Forwards: 70\r\nFrom: <sip:probe@parley.lab>;tag=p\r\nTo: <sip:parley.lab>\r\nCall-ID: " + callID +
				"\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
			if _, err := c.Write([]byte(good + tail)); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			r := bufio.NewReader(c)
			line, err := r.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "SIP/2.0 200") {
				t.Fatalf("answer to the good OPTIONS before the %s: %q, %v", name, line, err)
			}
			for {
				if _, err := r.ReadString('\n'); err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						t.Fatalf("the connection stayed open after the %s", name)
					}
					break
				}
			}
		})
	}
}

// TestTCPListenerBroken breaks parley's TCP listening socket under it
// (shutdown(2) on a copy of its descriptor, taken with pidfd_getfd): the
// accept loop cannot go on, and parley must stop with a non-zero exit
// status, so a service manager restarts it (it used to exit 0).
func TestTCPListenerBroken(t *testing.T) {
	pl := startParleyLow(t, parleyConfig{}, "", "")
	_, port, _ := net.SplitHostPort(pl.SIPAddr)
	fd := listeningFD(t, pl.cmd.Process.Pid, port)
	pidfd, err := unix.PidfdOpen(pl.cmd.Process.Pid, 0)
	if err != nil {
		t.Skipf("pidfd_open: %v", err)
	}
	defer unix.Close(pidfd)
	sock, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		t.Skipf("pidfd_getfd (needs ptrace rights over parley): %v", err)
	}
	if err := unix.Shutdown(sock, unix.SHUT_RDWR); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	unix.Close(sock)
	select {
	case <-pl.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("parley went on without its TCP listener")
	}
	var exit *exec.ExitError
	if !errors.As(pl.err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("parley exited with %v; want exit status 1", pl.err)
	}
	if !logHas(pl.LogPath, "SIP listener stopped") {
		t.Errorf("parley did not log why it stopped:\n%s", tail(pl.LogPath, 20))
	}
}

// listeningFD finds the descriptor of pid's TCP socket listening on
// 127.0.0.1:port, through /proc/net/tcp's inode for it.
func listeningFD(t *testing.T, pid int, port string) int {
	t.Helper()
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Skipf("/proc/net/tcp: %v", err)
	}
	local := fmt.Sprintf("0100007F:%04X", p)
	inode := ""
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 9 && f[1] == local && f[3] == "0A" { // 0A: LISTEN
			inode = f[9]
		}
	}
	if inode == "" {
		t.Fatalf("no listening socket on %s in /proc/net/tcp", local)
	}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Skipf("%s: %v", dir, err)
	}
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && target == "socket:["+inode+"]" {
			fd, _ := strconv.Atoi(e.Name())
			return fd
		}
	}
	t.Fatalf("socket:[%s] is not among parley's descriptors", inode)
	return 0
}
