package testcalls

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Bounds on everything the harness waits for.
const (
	buildTimeout = 3 * time.Minute
	readyTimeout = 10 * time.Second
	stopTimeout  = 5 * time.Second
	logTailLines = 120
)

// parleyBin is the binary under test, built once by TestMain.
var parleyBin string

// buildErr is set when the binary could not be built; tests then fail with it.
var buildErr error

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if bin := os.Getenv("PARLEY_BIN"); bin != "" {
		parleyBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "parley-testcalls-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testcalls:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	parleyBin = filepath.Join(dir, "parley")
	buildErr = buildParley(parleyBin)
	if buildErr != nil {
		fmt.Fprintln(os.Stderr, "testcalls: building parley failed:", buildErr)
	}
	return m.Run()
}

// buildParley runs go build ./cmd/parley from the module root.
func buildParley(out string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "parley")); err != nil {
		return fmt.Errorf("./cmd/parley does not exist yet in %s: %w", root, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/parley")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/parley: %w\n%s", err, b)
	}
	return nil
}

// moduleRoot is the directory holding go.mod, above this package's directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// needParley fails the test at once when the binary could not be built.
func needParley(t *testing.T) {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("parley binary is not available: %v", buildErr)
	}
}

// testUsers are the accounts every test config holds.
var testUsers = map[string]string{"1001": "pw1001", "1002": "pw1002", "1003": "pw1003"}

// parleyConfig is the part of parley's configuration a test varies.
type parleyConfig struct {
	// Trusted lists CIDRs whose requests are not challenged.
	Trusted []string
	// Routes maps a regexp on the dialled user to a target URI.
	Routes [][2]string
	// StorePath is empty for memory only.
	StorePath string
	// Redis is store.redis (empty: none).
	Redis string
	// Extra is appended to the YAML as is (for sections a test overrides).
	Extra string
	// Registrar, when set, replaces the registrar section's flow mapping
	// (e.g. "{min_expires: 60, max_expires: 3600, qualify: 2s}"); YAML
	// refuses the section twice, so Extra cannot override it.
	Registrar string
	// DTMFModes gives test users a users[].dtmf_mode (user to mode).
	DTMFModes map[string]string
	// SRTP gives test users a users[].srtp (user to policy).
	SRTP map[string]string
	// Services, when set, replaces the services section's flow mapping
	// (default {echo: "600"}), e.g. to add rooms and playback numbers.
	Services string
	// Listen adds sip.listen entries (e.g. tls://127.0.0.1:PORT), and
	// SIP lines to the sip section, indented by two spaces (e.g.
	// "  tls: {cert: ..., key: ...}\n"); tls_test.go.
	Listen []string
	SIP    string
}

// parley is one running parley process.
type parley struct {
	// SIPAddr is host:port of both the UDP and the TCP listener.
	SIPAddr string
	// AdminAddr is host:port of the admin HTTP server.
	AdminAddr string
	// ConfigPath is the config file the process was started with.
	ConfigPath string
	// LogPath holds the process's stdout and stderr.
	LogPath string

	cmd    *exec.Cmd
	exited chan struct{}
	err    error // from Wait, valid once exited is closed
}

// yamlQuote makes s a single-quoted YAML scalar.
func yamlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// renderConfig writes a complete parley config for the given ports.
func renderConfig(c parleyConfig, sipPort, adminPort int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "sip:\n  listen: [udp://127.0.0.1:%d, tcp://127.0.0.1:%d", sipPort, sipPort)
	for _, l := range c.Listen {
		b.WriteString(", " + yamlQuote(l))
	}
	fmt.Fprintf(&b, "]\n%s  realm: parley.lab\n  trusted: [", c.SIP)
	for i, n := range c.Trusted {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(yamlQuote(n))
	}
	b.WriteString("]\n")
	fmt.Fprintf(&b, "admin:\n  listen: 127.0.0.1:%d\n", adminPort)
	fmt.Fprintf(&b, "store:\n  path: %s\n", yamlQuote(c.StorePath))
	if c.Redis != "" {
		fmt.Fprintf(&b, "  redis: %s\n", yamlQuote(c.Redis))
	}
	b.WriteString("users:\n")
	for _, u := range []string{"1001", "1002", "1003"} {
		fmt.Fprintf(&b, "  - {username: %s, password: %s", yamlQuote(u), yamlQuote(testUsers[u]))
		if m := c.DTMFModes[u]; m != "" {
			fmt.Fprintf(&b, ", dtmf_mode: %s", yamlQuote(m))
		}
		if p := c.SRTP[u]; p != "" {
			fmt.Fprintf(&b, ", srtp: %s", yamlQuote(p))
		}
		b.WriteString("}\n")
	}
	b.WriteString("routes:")
	if len(c.Routes) == 0 {
		b.WriteString(" []\n")
	} else {
		b.WriteString("\n")
		for _, r := range c.Routes {
			fmt.Fprintf(&b, "  - {match: %s, target: %s}\n", yamlQuote(r[0]), yamlQuote(r[1]))
		}
	}
	services := `{echo: "600"}`
	if c.Services != "" {
		services = c.Services
	}
	fmt.Fprintf(&b, "services: %s\n", services)
	registrar := "{min_expires: 60, max_expires: 3600, qualify: 0s}"
	if c.Registrar != "" {
		registrar = c.Registrar
	}
	fmt.Fprintf(&b, "registrar: %s\n", registrar)
	b.WriteString("log: {level: debug}\n")
	b.WriteString(c.Extra)
	return b.String()
}

// startParley runs parley with cfg on free loopback ports, waits until
// /readyz answers 200 and arranges for it to be stopped when t ends.
func startParley(t *testing.T, cfg parleyConfig) *parley {
	t.Helper()
	needParley(t)
	dir := t.TempDir()
	sipPort := freeSIPPort(t)
	adminPort := freeTCPPort(t)
	p := &parley{
		SIPAddr:    fmt.Sprintf("127.0.0.1:%d", sipPort),
		AdminAddr:  fmt.Sprintf("127.0.0.1:%d", adminPort),
		ConfigPath: filepath.Join(dir, "parley.yaml"),
		LogPath:    filepath.Join(dir, "parley.log"),
		exited:     make(chan struct{}),
	}
	if err := os.WriteFile(p.ConfigPath, []byte(renderConfig(cfg, sipPort, adminPort)), 0o600); err != nil {
		t.Fatal(err)
	}
	p.run(t, exec.Command(parleyBin, "-config", p.ConfigPath))
	return p
}

// run starts cmd (parley, or a shell that execs it) as p's process with
// its output in p.LogPath, in a process group of its own so that nothing
// it starts outlives it; it arranges for it to be stopped when t ends and
// waits until /readyz answers 200.
func (p *parley) run(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	logf, err := os.Create(p.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = cmd
	p.cmd.Dir = filepath.Dir(p.ConfigPath)
	p.cmd.Stdout = logf
	p.cmd.Stderr = logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start parley: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() || os.Getenv("PARLEY_TEST_VERBOSE") != "" {
			t.Logf("parley config %s:\n%s", p.ConfigPath, readFileOrErr(p.ConfigPath))
			t.Logf("last %d lines of parley's output (%s):\n%s", logTailLines, p.LogPath, tail(p.LogPath, logTailLines))
		}
	})
	if err := p.waitReady(readyTimeout); err != nil {
		t.Fatalf("parley did not become ready: %v", err)
	}
}

// waitReady polls /readyz until it answers 200, the process exits or d passes.
func (p *parley) waitReady(d time.Duration) error {
	deadline := time.Now().Add(d)
	client := &http.Client{Timeout: time.Second}
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("parley exited before becoming ready: %v", p.err)
		default:
		}
		res, err := client.Get("http://" + p.AdminAddr + "/readyz")
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			last = res.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no 200 from /readyz within %v (last: %s)", d, last)
}

// stop sends SIGTERM, then SIGKILL to the process group if parley has not
// exited within stopTimeout.
func (p *parley) stop(t *testing.T) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return
	case <-time.After(stopTimeout):
	}
	t.Errorf("parley did not exit within %v of SIGTERM; killing it", stopTimeout)
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		t.Errorf("parley (pid %d) still running after SIGKILL", p.cmd.Process.Pid)
	}
}

// httpGet fetches http://AdminAddr+path and returns its status and body.
func (p *parley) httpGet(t *testing.T, path string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	res, err := client.Get("http://" + p.AdminAddr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return res.StatusCode, string(b)
}

// freeTCPPort returns a loopback TCP port that was free a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// freeUDPPort returns a loopback UDP port that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// freeSIPPort returns a loopback port free for both UDP and TCP.
func freeSIPPort(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			c.Close()
			return port
		}
	}
	t.Fatal("no port free for both UDP and TCP")
	return 0
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

func readFileOrErr(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// metrics is a scrape of /metrics: series text (name{labels}) to value.
type metrics map[string]float64

// scrapeMetrics reads parley's Prometheus text exposition.
func (p *parley) scrapeMetrics(t *testing.T) metrics {
	t.Helper()
	code, body := p.httpGet(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	m := metrics{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			// A timestamp follows the value: take the field before it.
			fields := strings.Fields(line)
			if len(fields) < 3 {
				continue
			}
			if v, err = strconv.ParseFloat(fields[len(fields)-2], 64); err != nil {
				continue
			}
			i = strings.LastIndex(line, fields[len(fields)-2]) - 1
		}
		m[strings.TrimSpace(line[:i])] = v
	}
	return m
}

// get sums every series of the metric name whose labels include all of
// labels (pairs of name, value). ok is false when no series matched.
func (m metrics) get(name string, labels ...string) (sum float64, ok bool) {
	for series, v := range m {
		n, ls, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			if !strings.Contains(ls, labels[i]+"=\""+labels[i+1]+"\"") {
				match = false
				break
			}
		}
		if match {
			sum += v
			ok = true
		}
	}
	return sum, ok
}

// names lists the distinct metric names, for failure messages.
func (m metrics) names() string {
	seen := map[string]bool{}
	var out []string
	for series := range m {
		n, _, _ := strings.Cut(series, "{")
		if !seen[n] && strings.HasPrefix(n, "parley_") {
			seen[n] = true
			out = append(out, n)
		}
	}
	return strings.Join(out, " ")
}

// waitMetric polls /metrics until cond holds for the named metric or d passes;
// counters are updated after the SIP exchange ends, so a short wait is fair.
func (p *parley) waitMetric(t *testing.T, d time.Duration, cond func(v float64, ok bool) bool, name string, labels ...string) float64 {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		m := p.scrapeMetrics(t)
		v, ok := m.get(name, labels...)
		if cond(v, ok) {
			return v
		}
		if time.Now().After(deadline) {
			var dump bytes.Buffer
			for series, val := range m {
				if strings.HasPrefix(series, name) {
					fmt.Fprintf(&dump, "  %s %v\n", series, val)
				}
			}
			t.Errorf("metric %s%v: condition not met within %v (value %v, present %v); series:\n%sparley metrics: %s",
				name, labels, d, v, ok, dump.String(), m.names())
			return v
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// atLeast returns a condition for waitMetric.
func atLeast(n float64) func(float64, bool) bool {
	return func(v float64, ok bool) bool { return ok && v >= n }
}

// equals returns a condition for waitMetric.
func equals(n float64) func(float64, bool) bool {
	return func(v float64, ok bool) bool { return ok && v == n }
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
