package testcalls

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// linphoneRegister bounds linphonec's start and registration: it opens its
// databases and media plugins first, which takes a few seconds.
const linphoneRegister = 20 * time.Second

// linphone is one linphonec (Debian linphone-cli) process, driven by lines
// on its standard input, the way a user types at its prompt.
type linphone struct {
	Name    string
	User    string
	Dir     string // HOME and the config file
	LogPath string // liblinphone's log (-l)
	OutPath string // what linphonec prints for a user
	SIPPort int

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{}
	err    error
}

// linphoneRC is linphonec's config for user at parley pl: loopback only,
// parley as registrar and outbound proxy for the domain parley.lab, no
// video, no network monitoring (the container's route would make liblinphone
// think the network is down and never open its SIP socket).
func linphoneRC(pl *parley, user string, sipPort int, rtp phonePorts) string {
	return fmt.Sprintf(`[sip]
sip_port=%d
sip_tcp_port=0
sip_tls_port=0
bind_address=127.0.0.1
use_ipv6=0
default_proxy=0
register_only_when_network_is_up=0

[rtp]
audio_rtp_port=%d-%d
video_rtp_port=0
bind_address=127.0.0.1

[net]
auto_net_state_mon=0

[sound]
echocancellation=0

[video]
display=0
capture=0

[misc]
enable_video=0

[proxy_0]
reg_proxy=<sip:%[4]s;transport=udp>
reg_route=<sip:%[4]s;transport=udp>
reg_identity=sip:%[5]s@parley.lab
reg_expires=60
reg_sendregister=1

[auth_info_0]
username=%[5]s
passwd=%[6]s
realm=parley.lab
domain=parley.lab
`, sipPort, rtp.Min, rtp.Max, pl.SIPAddr, user, testUsers[user])
}

// startLinphone runs linphonec as user, registering with pl, waits until
// parley holds its binding, and stops its process group when t ends.
func startLinphone(t *testing.T, pl *parley, name, user string, rtp phonePorts) *linphone {
	t.Helper()
	return startLinphoneWith(t, pl, name, user, rtp, "")
}

// startLinphoneWith is startLinphone with sipExtra added to the [sip]
// section of its config (lines of key=value).
func startLinphoneWith(t *testing.T, pl *parley, name, user string, rtp phonePorts, sipExtra string) *linphone {
	t.Helper()
	bin := needPackage(t, "linphonec", "linphone-cli")
	l := &linphone{Name: name, User: user, Dir: t.TempDir(), SIPPort: freeSIPPort(t), exited: make(chan struct{})}
	l.LogPath = filepath.Join(l.Dir, "linphone.log")
	l.OutPath = filepath.Join(l.Dir, "linphonec.out")
	rc := filepath.Join(l.Dir, "linphonerc")
	writeFile(t, rc, strings.Replace(linphoneRC(pl, user, l.SIPPort, rtp), "[sip]\n", "[sip]\n"+sipExtra, 1))
	// liblinphone 5.1 keeps its databases under $HOME/.local/share/linphone
	// and, when that directory is missing, never finishes starting (no SIP
	// socket, "No listening point matching").
	if err := os.MkdirAll(filepath.Join(l.Dir, ".local", "share", "linphone"), 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(l.OutPath)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-c", rc, "-d", "4", "-l", l.LogPath}
	if timeout, err := exec.LookPath("timeout"); err == nil {
		// The phone quits by itself even if the test binary dies.
		args = append([]string{"-k", "5", strconv.Itoa(int(phoneLifetime.Seconds())), bin}, args...)
		bin = timeout
	}
	l.cmd = exec.Command(bin, args...)
	l.cmd.Dir = l.Dir
	l.cmd.Env = append(os.Environ(), "HOME="+l.Dir, "XDG_DATA_HOME="+filepath.Join(l.Dir, ".local", "share"), "XDG_CONFIG_HOME="+filepath.Join(l.Dir, ".config"))
	l.cmd.Stdout = out
	l.cmd.Stderr = out
	l.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if l.stdin, err = l.cmd.StdinPipe(); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := l.cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("start linphonec: %v", err)
	}
	go func() {
		l.err = l.cmd.Wait()
		out.Close()
		close(l.exited)
	}()
	t.Cleanup(func() {
		l.send(t, "quit")
		select {
		case <-l.exited:
		case <-time.After(2 * time.Second):
		}
		l.stdin.Close()
		stopGroup(t, l.Name+" (linphonec)", l.cmd, l.exited)
		if t.Failed() || os.Getenv("PARLEY_TEST_VERBOSE") != "" {
			t.Logf("%s (linphonec %s) output:\n%s", l.Name, l.User, readFileOrErr(l.OutPath))
			t.Logf("%s (linphonec %s) log (tail):\n%s", l.Name, l.User, tail(l.LogPath, 60))
		}
	})
	waitRegistered(t, pl, user, fmt.Sprintf("127.0.0.1:%d", l.SIPPort), linphoneRegister)
	return l
}

// send types a command at linphonec's prompt.
func (l *linphone) send(t *testing.T, line string) {
	t.Helper()
	select {
	case <-l.exited:
		return
	default:
	}
	if _, err := io.WriteString(l.stdin, line+"\n"); err != nil {
		t.Errorf("%s: typing %q into linphonec: %v", l.Name, line, err)
	}
}

// waitOutput waits until linphonec has printed want.
func (l *linphone) waitOutput(t *testing.T, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if strings.Contains(readFileOrErr(l.OutPath), want) {
			return
		}
		select {
		case <-l.exited:
			t.Fatalf("%s: linphonec exited (%v) before printing %q:\n%s", l.Name, l.err, want, readFileOrErr(l.OutPath))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: linphonec did not print %q within %v", l.Name, want, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// outputLen is how much linphonec has printed so far: an offset for
// waitMatch, so that a test waits for what a command printed and not for an
// earlier call's line.
func (l *linphone) outputLen() int { return len(readFileOrErr(l.OutPath)) }

// waitMatch waits until what linphonec printed after offset from matches re
// and returns the submatches and the offset just past the match.
func (l *linphone) waitMatch(t *testing.T, from int, re *regexp.Regexp, d time.Duration) ([]string, int) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		out := readFileOrErr(l.OutPath)
		if from <= len(out) {
			if loc := re.FindStringSubmatchIndex(out[from:]); loc != nil {
				m := make([]string, len(loc)/2)
				for i := range m {
					if loc[2*i] >= 0 {
						m[i] = out[from+loc[2*i] : from+loc[2*i+1]]
					}
				}
				return m, from + loc[1]
			}
		}
		select {
		case <-l.exited:
			t.Fatalf("%s: linphonec exited (%v) before printing %q:\n%s", l.Name, l.err, re, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: linphonec did not print %q within %v; it printed:\n%s", l.Name, re, d, out[min(from, len(out)):])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLog waits until liblinphone's log (-l) matches re and returns the
// submatches: the log shows what the prompt does not, for example a
// transfer's progress ("Transfer state for CallSession [...] changed from
// [LinphoneCallOutgoingProgress] to [LinphoneCallConnected]").
func (l *linphone) waitLog(t *testing.T, re *regexp.Regexp, d time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if m := re.FindStringSubmatch(readFileOrErr(l.LogPath)); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: liblinphone's log has no %q after %v", l.Name, re, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLinphoneCallsBaresip: linphone's command-line phone registers with
// parley as 1003 (digest auth, parley as outbound proxy), plays a 1 kHz WAV
// instead of a microphone and calls a baresip phone registered as 1002.
// linphonec reports the call connected with its media running, baresip
// reports it established from 1003, parley shows it active and relays its
// RTP, and baresip's recording carries linphone's tone. linphone hangs up.
func TestLinphoneCallsBaresip(t *testing.T) {
	t.Parallel()
	needParley(t)
	needSox(t)
	needBaresip(t)
	needPackage(t, "linphonec", "linphone-cli")
	pl := startParley(t, parleyConfig{Extra: rangeLinphone.yaml(nil, "")})
	wav := filepath.Join(t.TempDir(), "tone.wav")
	writeTone(t, wav, fileTone, toneLength)

	callee := startBaresip(t, pl, baresipConfig{Name: "callee", User: "1002", Source: "ausine," + strconv.Itoa(sineTone), RTP: portsLinphoneBS, Record: true})
	caller := startLinphone(t, pl, "caller", "1003", portsLinphone)
	caller.send(t, "soundcard use files")
	caller.waitOutput(t, "Using wav files instead of soundcard", phoneEvent)
	caller.send(t, "play "+wav)

	from := callee.eventCount()
	caller.send(t, "call sip:1002@parley.lab")
	caller.waitOutput(t, "connected.", phoneEvent)
	caller.waitOutput(t, "Media streams established", phoneEvent)
	callee.waitEvent(t, from, "CALL_ESTABLISHED", peerIs("1003"))
	waitCallState(t, pl, "active", phoneEvent)
	if calls := pl.apiCalls(t); len(calls) != 1 || calls[0].From != "1003" || calls[0].To != "1002" {
		t.Fatalf("GET /api/calls: %+v, want one call from 1003 to 1002", calls)
	}
	pl.waitMetric(t, phoneEvent, atLeast(packetsFor(4)), "parley_rtp_packets_total")

	caller.send(t, "terminate")
	caller.waitOutput(t, "ended", phoneEvent)
	callee.waitEvent(t, from, "CALL_CLOSED", nil)
	pl.waitMetric(t, phoneEvent, equals(0), "parley_calls")
	wantCallEnded(t, pl, "BYE from caller")
	pl.waitMetric(t, phoneEvent, equals(1), "parley_calls_total", "result", "answered")

	checkTone(t, "1002's recording of linphone (the WAV file)", readPCM(t, callee.recording(t, "dec")).measure(t, recordingStart), fileTone, 3)
}
