package testcalls

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds on what the real phones do.
const (
	aptTimeout     = 8 * time.Minute  // one apt-get install, update included
	phoneLifetime  = 3 * time.Minute  // baresip -t: a phone quits by itself even if the test binary dies
	phoneStart     = 10 * time.Second // until a phone's control socket answers
	phoneCommand   = 5 * time.Second  // until a control command is answered
	phoneEvent     = 10 * time.Second // until an expected call event arrives
	soxTimeout     = 30 * time.Second
	toneTolerance  = 0.05 // ±5% on sox's rough frequency
	minToneRMS     = 0.1  // a full-scale sine has RMS 0.707; our tones are 0.35
	recordingStart = 0.5  // seconds of a recording skipped (jitter buffer filling)
)

// aptMu serialises apt-get: dpkg takes a lock, and parallel tests may each
// find a package missing.
var aptMu sync.Mutex

// needPackage returns the path of bin, installing the Debian package pkg
// with apt-get when bin is missing, as the end-to-end tests promise to do on
// a fresh machine. The test is skipped when apt-get cannot run here (no
// apt-get, not root and no password-free sudo) or apt knows no such package;
// it fails when the package is installable but installing it failed.
func needPackage(t *testing.T, bin, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(bin); err == nil {
		return p
	}
	aptMu.Lock()
	defer aptMu.Unlock()
	if p, err := exec.LookPath(bin); err == nil {
		return p // another test installed it meanwhile
	}
	apt, err := aptCommand()
	if err != nil {
		t.Skipf("%s is not on PATH and cannot be installed here (%v); install Debian package %s", bin, err, pkg)
	}
	t.Logf("%s is not on PATH: apt-get install -y %s", bin, pkg)
	if out, err := aptInstall(apt, pkg); err != nil {
		if !aptHasCandidate(pkg) {
			t.Skipf("%s is not on PATH and apt knows no installable package %s:\n%s", bin, pkg, out)
		}
		t.Fatalf("%s is not on PATH and apt-get install -y %s failed although apt has a candidate: %v\n%s", bin, pkg, err, out)
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("installed %s but %s is still not on PATH: %v", pkg, bin, err)
	}
	return p
}

// aptCommand is the prefix that runs apt-get as root.
func aptCommand() ([]string, error) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return nil, errors.New("no apt-get")
	}
	if os.Geteuid() == 0 {
		return []string{"apt-get"}, nil
	}
	if _, err := exec.LookPath("sudo"); err != nil {
		return nil, errors.New("not root and no sudo")
	}
	if err := exec.Command("sudo", "-n", "true").Run(); err != nil {
		return nil, errors.New("not root and sudo wants a password")
	}
	return []string{"sudo", "-n", "apt-get"}, nil
}

// aptInstall installs pkg, refreshing the package lists first only when the
// plain install fails (a fresh image often has none).
func aptInstall(apt []string, pkg string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), aptTimeout)
	defer cancel()
	run := func(args ...string) ([]byte, error) {
		full := append(append([]string{}, apt...), args...)
		cmd := exec.CommandContext(ctx, full[0], full[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	out, err := run("install", "-y", "-qq", pkg)
	if err == nil {
		return out, nil
	}
	if upd, err := run("update", "-qq"); err != nil {
		return append(out, upd...), fmt.Errorf("apt-get update: %w", err)
	}
	return run("install", "-y", "-qq", pkg)
}

// aptHasCandidate reports whether apt-cache policy names a version of pkg
// that could be installed.
func aptHasCandidate(pkg string) bool {
	out, err := exec.Command("apt-cache", "policy", pkg).Output()
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Candidate:"); ok {
			v = strings.TrimSpace(v)
			return v != "" && v != "(none)"
		}
	}
	return false
}

// needBaresip returns baresip's path (Debian baresip-core, see TESTING.md).
func needBaresip(t *testing.T) string { t.Helper(); return needPackage(t, "baresip", "baresip-core") }

// needSox returns sox's path; the audio tests make and measure tones with it.
func needSox(t *testing.T) string { t.Helper(); return needPackage(t, "sox", "sox") }

// phonePorts is a block of RTP ports a real phone may use (baresip's
// rtp_ports, linphone's audio_rtp_port); each test has its own, away from
// parley's relay blocks (rtpRange) and the kernel's ephemeral ports.
type phonePorts struct{ Min, Max int }

// baresipConfig is what a test chooses about one baresip instance.
type baresipConfig struct {
	// Name labels the phone in logs, e.g. "caller".
	Name string
	// User is the account at parley; its password comes from testUsers.
	User string
	// Source is baresip's audio_source, e.g. "ausine,440" or "aufile,/x.wav".
	Source string
	// RTP is the phone's rtp_ports block.
	RTP phonePorts
	// Record loads the sndfile module, which writes what the phone sends
	// and receives to RecDir as dump-…-enc.wav and dump-…-dec.wav.
	Record bool
	// SIPTrace makes baresip print every SIP message it sends and
	// receives to its log (baresip -s).
	SIPTrace bool
	// Codec is the codec module the phone loads instead of G.711's, e.g.
	// "g722": its offer then carries that codec only.
	Codec string

	// TLS, when set, registers the account over TLS (tls_test.go).
	TLS *baresipTLS
	// MediaEnc is the account's mediaenc, "srtp" (a=crypto on RTP/AVP,
	// best effort) or "srtp-mand" (RTP/SAVP); set, the srtp module loads.
	MediaEnc string
}

// baresipEvent is one event baresip's ctrl_tcp module reports, for example
// {"event":true,"type":"CALL_ESTABLISHED","peeruri":"sip:1001@parley.lab"}.
type baresipEvent struct {
	Type      string `json:"type"`
	Class     string `json:"class"`
	AOR       string `json:"accountaor"`
	Direction string `json:"direction"`
	PeerURI   string `json:"peeruri"`
	ID        string `json:"id"`
	Param     string `json:"param"`
}

// baresipMessage is any netstring ctrl_tcp sends: an event or the response
// to one of our commands.
type baresipMessage struct {
	baresipEvent
	Event    bool   `json:"event"`
	Response bool   `json:"response"`
	OK       bool   `json:"ok"`
	Data     string `json:"data"`
	Token    string `json:"token"`
}

// baresip is one running baresip, driven over its ctrl_tcp socket: the test
// sends commands such as dial, hangup, hold and sndcode as netstring JSON
// and reads the call events it reports.
type baresip struct {
	Name    string
	User    string
	Dir     string // the config dir (baresip -f)
	LogPath string
	RecDir  string // sndfile's snd_path when Record is set
	SIPPort int

	cmd    *exec.Cmd
	exited chan struct{}
	err    error

	conn       net.Conn
	readerDone chan struct{}

	mu        sync.Mutex
	events    []baresipEvent
	responses map[string]baresipMessage
	changed   chan struct{} // closed and replaced whenever a message arrives
	nextToken int
}

// baresipConfigText is baresip's config for c: loopback only, no sound card,
// no terminal (ctrl_tcp instead of stdio), the modules baresip 1.0 needs to
// register at all (uuid, account, menu) and G.711 only.
func baresipConfigText(c baresipConfig, sipPort, ctrlPort int, recDir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "poll_method epoll\n")
	fmt.Fprintf(&b, "sip_listen 127.0.0.1:%d\n", sipPort)
	fmt.Fprintf(&b, "net_interface 127.0.0.1\n")
	fmt.Fprintf(&b, "dns_server 127.0.0.1:53\n")
	fmt.Fprintf(&b, "rtp_ports %d-%d\n", c.RTP.Min, c.RTP.Max)
	fmt.Fprintf(&b, "audio_player aufile,/dev/null\n")
	fmt.Fprintf(&b, "audio_source %s\n", c.Source)
	if strings.HasPrefix(c.Source, "ausine") {
		// ausine only runs at 48 kHz stereo (TESTING.md); baresip resamples.
		b.WriteString("ausrc_srate 48000\nausrc_channels 2\n")
	} else {
		b.WriteString("ausrc_srate 8000\nausrc_channels 1\n")
	}
	b.WriteString("module_path /usr/lib/baresip/modules\n")
	codec := "g711"
	if c.Codec != "" {
		codec = c.Codec
	}
	fmt.Fprintf(&b, "module %s.so\nmodule ausine.so\nmodule aufile.so\n", codec)
	if recDir != "" {
		fmt.Fprintf(&b, "module sndfile.so\nsnd_path %s\n", recDir)
	}
	if c.MediaEnc != "" {
		b.WriteString("module srtp.so\n")
	}
	b.WriteString("module_tmp uuid.so\nmodule_tmp account.so\n")
	b.WriteString("module_app menu.so\nmodule_app ctrl_tcp.so\n")
	fmt.Fprintf(&b, "ctrl_tcp_listen 127.0.0.1:%d\n", ctrlPort)
	return b.String()
}

// startBaresip runs baresip for c, registering with pl, connects to its
// control socket, waits until parley holds its binding, and stops it (the
// whole process group) when t ends.
func startBaresip(t *testing.T, pl *parley, c baresipConfig) *baresip {
	t.Helper()
	bin := needBaresip(t)
	b := &baresip{
		Name:      c.Name,
		User:      c.User,
		Dir:       t.TempDir(),
		SIPPort:   freeBaresipSIPPort(t),
		exited:    make(chan struct{}),
		responses: map[string]baresipMessage{},
		changed:   make(chan struct{}),
	}
	b.LogPath = filepath.Join(b.Dir, "baresip.log")
	if c.Record {
		b.RecDir = filepath.Join(b.Dir, "rec")
		if err := os.Mkdir(b.RecDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctrlPort := freeTCPPort(t)
	cfgText, account, source := baresipConfigText(c, b.SIPPort, ctrlPort, b.RecDir), pl.SIPAddr+";transport=udp", fmt.Sprintf("127.0.0.1:%d", b.SIPPort)
	if c.TLS != nil {
		cfgText, account, source = cfgText+c.TLS.config(), c.TLS.Addr+";transport=tls", "" // from a port of its own
	}
	writeFile(t, filepath.Join(b.Dir, "config"), cfgText)
	params := ";auth_pass=" + testUsers[c.User] + ";answermode=auto;regint=60"
	if c.MediaEnc != "" {
		params += ";mediaenc=" + c.MediaEnc
	}
	writeFile(t, filepath.Join(b.Dir, "accounts"), fmt.Sprintf("<sip:%s@%s>%s\n", c.User, account, params))

	logf, err := os.Create(b.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-f", b.Dir, "-t", strconv.Itoa(int(phoneLifetime.Seconds()))}
	if c.SIPTrace {
		args = append(args, "-s")
	}
	b.cmd = exec.Command(bin, args...)
	b.cmd.Dir = b.Dir
	b.cmd.Stdout = logf
	b.cmd.Stderr = logf
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start baresip: %v", err)
	}
	go func() {
		b.err = b.cmd.Wait()
		logf.Close()
		close(b.exited)
	}()
	t.Cleanup(func() {
		b.stop(t)
		if t.Failed() || os.Getenv("PARLEY_TEST_VERBOSE") != "" {
			t.Logf("%s (baresip %s) config:\n%s", b.Name, b.User, readFileOrErr(filepath.Join(b.Dir, "config")))
			t.Logf("%s (baresip %s) output (tail):\n%s", b.Name, b.User, baresipLogTail(b.LogPath, 60))
			t.Logf("%s (baresip %s) events: %s", b.Name, b.User, b.eventTypes())
		}
	})
	b.connect(t, ctrlPort)
	waitRegistered(t, pl, c.User, source, phoneEvent)
	return b
}

// freeBaresipSIPPort returns a port P free for UDP and TCP whose P+1 is free
// for TCP too: baresip binds TLS on sip_listen's port plus one.
func freeBaresipSIPPort(t *testing.T) int {
	t.Helper()
	for range 50 {
		p := freeSIPPort(t)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1))
		if err == nil {
			l.Close()
			return p
		}
	}
	t.Fatal("no SIP port P with P+1 free")
	return 0
}

// connect dials the ctrl_tcp socket until baresip listens, then reads its
// messages in a goroutine that ends when the connection closes.
func (b *baresip) connect(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(phoneStart)
	for {
		select {
		case <-b.exited:
			t.Fatalf("%s: baresip exited at start: %v\n%s", b.Name, b.err, baresipLogTail(b.LogPath, 40))
		default:
		}
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			b.conn = conn
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: baresip's ctrl_tcp did not listen on %d within %v: %v\n%s", b.Name, port, phoneStart, err, baresipLogTail(b.LogPath, 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.readerDone = make(chan struct{})
	go b.read()
}

// read parses netstrings ("LEN:JSON,") until the connection ends.
func (b *baresip) read() {
	defer close(b.readerDone)
	r := bufio.NewReader(b.conn)
	for {
		lenText, err := r.ReadString(':')
		if err != nil {
			return
		}
		n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(lenText, ":")))
		if err != nil || n < 0 || n > 1<<20 {
			return
		}
		body := make([]byte, n+1) // the JSON and the closing comma
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		var m baresipMessage
		if err := json.Unmarshal(body[:n], &m); err != nil {
			continue
		}
		b.mu.Lock()
		switch {
		case m.Event:
			b.events = append(b.events, m.baresipEvent)
		case m.Response:
			b.responses[m.Token] = m
		}
		close(b.changed)
		b.changed = make(chan struct{})
		b.mu.Unlock()
	}
}

// command runs a baresip command (the long form of its menu commands:
// dial, hangup, hold, resume, sndcode …) and returns the data it answers.
func (b *baresip) command(t *testing.T, cmd, params string) string {
	t.Helper()
	b.mu.Lock()
	b.nextToken++
	token := fmt.Sprintf("%s-%d", b.Name, b.nextToken)
	b.mu.Unlock()
	msg, err := json.Marshal(map[string]string{"command": cmd, "params": params, "token": token})
	if err != nil {
		t.Fatal(err)
	}
	_ = b.conn.SetWriteDeadline(time.Now().Add(phoneCommand))
	if _, err := fmt.Fprintf(b.conn, "%d:%s,", len(msg), msg); err != nil {
		t.Fatalf("%s: sending %q to baresip: %v", b.Name, cmd, err)
	}
	deadline := time.After(phoneCommand)
	for {
		b.mu.Lock()
		res, ok := b.responses[token]
		changed := b.changed
		b.mu.Unlock()
		if ok {
			if !res.OK {
				t.Fatalf("%s: baresip refused %q %q: %s", b.Name, cmd, params, res.Data)
			}
			return res.Data
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%s: baresip did not answer %q within %v", b.Name, cmd, phoneCommand)
		}
	}
}

// waitEvent waits until an event of type typ arrives for which match (when
// not nil) holds, counting from event index from, and returns it with its
// index. It fails the test after phoneEvent.
func (b *baresip) waitEvent(t *testing.T, from int, typ string, match func(baresipEvent) bool) (baresipEvent, int) {
	t.Helper()
	deadline := time.After(phoneEvent)
	for {
		b.mu.Lock()
		events := b.events
		changed := b.changed
		b.mu.Unlock()
		for i := from; i < len(events); i++ {
			if events[i].Type == typ && (match == nil || match(events[i])) {
				return events[i], i
			}
		}
		select {
		case <-changed:
		case <-b.exited:
			t.Fatalf("%s: baresip exited waiting for %s: %v", b.Name, typ, b.err)
		case <-deadline:
			t.Fatalf("%s: no %s event from baresip within %v; events: %s", b.Name, typ, phoneEvent, b.eventTypes())
		}
	}
}

// eventsOf returns the events of type typ received so far.
func (b *baresip) eventsOf(typ string) []baresipEvent {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []baresipEvent
	for _, e := range b.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// eventCount is how many events have arrived, an index for waitEvent.
func (b *baresip) eventCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.events)
}

// eventTypes lists the events so far, for failure messages.
func (b *baresip) eventTypes() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var s []string
	for _, e := range b.events {
		if e.Type == "CALL_RTCP" {
			continue
		}
		if e.Param != "" {
			s = append(s, e.Type+"("+e.Param+")")
		} else {
			s = append(s, e.Type)
		}
	}
	return strings.Join(s, " ")
}

// stop ends baresip's process group (SIGTERM, then SIGKILL) and the reader.
func (b *baresip) stop(t *testing.T) {
	stopGroup(t, b.Name+" (baresip)", b.cmd, b.exited)
	if b.conn != nil {
		b.conn.Close()
		<-b.readerDone
	}
}

// stopGroup sends SIGTERM to cmd's process group and SIGKILL after
// stopTimeout; exited is closed once cmd.Wait has returned.
func stopGroup(t *testing.T, what string, cmd *exec.Cmd, exited chan struct{}) {
	select {
	case <-exited:
		return
	default:
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-exited:
		// The leader is gone; anything it started in its group goes too.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return
	case <-time.After(stopTimeout):
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-exited:
	case <-time.After(stopTimeout):
		t.Errorf("%s (pid %d) still running after SIGKILL", what, cmd.Process.Pid)
	}
}

// baresipLogTail is the end of a baresip log with its \r-separated status
// lines ("[0:00:03] audio=64000/64000 (bit/s)") dropped.
func baresipLogTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var lines []string
	for _, line := range strings.Split(strings.ReplaceAll(string(b), "\r", "\n"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || (strings.HasPrefix(line, "[") && strings.Contains(line, "audio=")) {
			continue
		}
		lines = append(lines, line)
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitRegistered waits until parley's /api/registrations holds user with
// source (host:port).
func waitRegistered(t *testing.T, pl *parley, user, source string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		regs := pl.apiRegistrations(t)
		if _, ok := registrationOf(regs, user, source); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("user %s from %s not registered at parley within %v; /api/registrations: %+v", user, source, d, regs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// writeTone writes a mono 8 kHz 16-bit WAV of a sine at freq Hz, at half
// full scale, lasting secs, with sox.
func writeTone(t *testing.T, path string, freq, secs int) {
	t.Helper()
	sox := needSox(t)
	ctx, cancel := context.WithTimeout(context.Background(), soxTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, sox, "-n", "-r", "8000", "-c", "1", "-b", "16", path,
		"synth", strconv.Itoa(secs), "sine", strconv.Itoa(freq), "vol", "0.5").CombinedOutput()
	if err != nil {
		t.Fatalf("sox making a %d Hz tone: %v\n%s", freq, err, out)
	}
}

// pcm is the sample data of a 16-bit WAV file.
type pcm struct {
	Data     []byte
	Rate     int
	Channels int
}

// Seconds is the duration of the samples.
func (p pcm) Seconds() float64 {
	if p.Rate == 0 || p.Channels == 0 {
		return 0
	}
	return float64(len(p.Data)) / float64(2*p.Channels*p.Rate)
}

// readPCM reads a 16-bit PCM WAV. baresip's sndfile module fills in the
// RIFF sizes only when the call closes, so everything after the data
// chunk's header counts as samples, whatever its size field says.
func readPCM(t *testing.T, path string) pcm {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		t.Fatalf("%s: not a WAV file", path)
	}
	var p pcm
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), int(binary.LittleEndian.Uint32(b[off+4:off+8]))
		body := off + 8
		switch id {
		case "fmt ":
			if body+16 > len(b) {
				t.Fatalf("%s: short fmt chunk", path)
			}
			format := binary.LittleEndian.Uint16(b[body:])
			p.Channels = int(binary.LittleEndian.Uint16(b[body+2:]))
			p.Rate = int(binary.LittleEndian.Uint32(b[body+4:]))
			bits := binary.LittleEndian.Uint16(b[body+14:])
			if format != 1 || bits != 16 {
				t.Fatalf("%s: format %d with %d bits, want 16-bit PCM", path, format, bits)
			}
		case "data":
			if p.Rate == 0 {
				t.Fatalf("%s: data before fmt", path)
			}
			data := b[body:]
			frame := 2 * p.Channels
			p.Data = data[:len(data)/frame*frame]
			return p
		}
		off = body + size + size%2
	}
	t.Fatalf("%s: no data chunk", path)
	return p
}

// toneStat is what sox's stat effect says about some audio.
type toneStat struct {
	Seconds float64 // what sox measured, after the skipped start
	RMS     float64 // RMS amplitude, 1 is full scale
	Freq    float64 // "Rough frequency" in Hz
}

// measure runs sox stat over the samples after skip seconds.
func (p pcm) measure(t *testing.T, skip float64) toneStat {
	t.Helper()
	sox := needSox(t)
	ctx, cancel := context.WithTimeout(context.Background(), soxTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, sox, "-t", "raw", "-r", strconv.Itoa(p.Rate), "-e", "signed", "-b", "16",
		"-c", strconv.Itoa(p.Channels), "-", "-n", "trim", strconv.FormatFloat(skip, 'f', 3, 64), "stat")
	cmd.Stdin = bytes.NewReader(p.Data)
	out, err := cmd.CombinedOutput() // stat reports on stderr
	if err != nil {
		t.Fatalf("sox stat: %v\n%s", err, out)
	}
	var s toneStat
	for _, line := range strings.Split(string(out), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch strings.Join(strings.Fields(name), " ") {
		case "Length (seconds)":
			s.Seconds = v
		case "RMS amplitude":
			s.RMS = v
		case "Rough frequency":
			s.Freq = v
		}
	}
	return s
}

// checkTone asserts s is a tone of freq Hz (±toneTolerance) at a level
// well above silence and lasting at least minSecs.
func checkTone(t *testing.T, what string, s toneStat, freq int, minSecs float64) {
	t.Helper()
	t.Logf("%s: %.2f s, rough frequency %.0f Hz, RMS amplitude %.3f", what, s.Seconds, s.Freq, s.RMS)
	if s.Seconds < minSecs {
		t.Errorf("%s: %.2f s of audio, want at least %.1f s", what, s.Seconds, minSecs)
	}
	if lo, hi := float64(freq)*(1-toneTolerance), float64(freq)*(1+toneTolerance); s.Freq < lo || s.Freq > hi {
		t.Errorf("%s: rough frequency %.0f Hz, want the %d Hz tone (%.0f–%.0f Hz)", what, s.Freq, freq, lo, hi)
	}
	if s.RMS < minToneRMS {
		t.Errorf("%s: RMS amplitude %.3f, want at least %.2f (the tone, not silence)", what, s.RMS, minToneRMS)
	}
}

// recording returns the path of the one dump-…-<kind>.wav ("dec" for what
// the phone received, "enc" for what it sent) in b's RecDir.
func (b *baresip) recording(t *testing.T, kind string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(b.RecDir, "dump-*-"+kind+".wav"))
	if len(files) != 1 {
		t.Fatalf("%s: want one %s recording in %s, found %v", b.Name, kind, b.RecDir, files)
	}
	return files[0]
}

// rtcpReceived matches the receive count in baresip's audio_debug report
// ("IP=127.0.0.1:24602 psent=0 rcvd=251").
var rtcpReceived = regexp.MustCompile(`rcvd=(\d+)`)

// rtpReceived is how many RTP packets b's current call has received from
// its peer, by baresip's own count (the audio_debug command).
func (b *baresip) rtpReceived(t *testing.T) int {
	t.Helper()
	report := b.command(t, "audio_debug", "")
	m := rtcpReceived.FindStringSubmatch(report)
	if m == nil {
		t.Fatalf("%s: no rcvd= in baresip's audio_debug:\n%s", b.Name, report)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// Lines of baresip's audio_debug report that name SSRCs: its own
// ("Encode: seq=14532 ssrc=0x532cb2b7") and each RTCP member it heard from
// ("member 0x9aadad0e: lost=0 …" then "IP=127.0.0.1:27632 psent=0 rcvd=101").
var (
	rtpOwnSSRC = regexp.MustCompile(`Encode: seq=\d+ ssrc=0x([0-9a-f]+)`)
	rtpMember  = regexp.MustCompile(`member 0x([0-9a-f]+):[^\n]*\n\s*IP=\S+ psent=\d+ rcvd=(\d+)`)
)

// rtpSSRC is the SSRC b's current call sends with.
func (b *baresip) rtpSSRC(t *testing.T) uint32 {
	t.Helper()
	report := b.command(t, "audio_debug", "")
	m := rtpOwnSSRC.FindStringSubmatch(report)
	if m == nil {
		t.Fatalf("%s: no Encode ssrc= in baresip's audio_debug:\n%s", b.Name, report)
	}
	ssrc, _ := strconv.ParseUint(m[1], 16, 32)
	return uint32(ssrc)
}

// rtpReceivedFrom is how many RTP packets b's current call has received
// with SSRC ssrc, by baresip's RTCP member list: it tells which phone's
// stream a phone hears when its recording cannot (the sndfile tap is gone
// after a re-INVITE, see TestBaresipHoldResume).
func (b *baresip) rtpReceivedFrom(t *testing.T, ssrc uint32) int {
	t.Helper()
	report := b.command(t, "audio_debug", "")
	for _, m := range rtpMember.FindAllStringSubmatch(report, -1) {
		if member, _ := strconv.ParseUint(m[1], 16, 32); uint32(member) == ssrc {
			n, _ := strconv.Atoi(m[2])
			return n
		}
	}
	return 0
}
