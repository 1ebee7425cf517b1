package testcalls

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The session timer tests (RFC 4028) run in real time with the shortest
// interval parley allows, 90 s: a refresh is due after about 45 s and a
// session nobody refreshes ends 60 s after its last refresh. So each test
// runs in parallel with the others, on its own relay ports.
var (
	rangeTimerCallerRefreshes = rangeOf(22000)
	rangeTimerParleyRefreshes = rangeOf(22100)
	rangeTimerNoSupport       = rangeOf(22200)
	rangeTimerExpires         = rangeOf(22300)
	rangeTimer422             = rangeOf(22400)
	rangeTimer422Compact      = rangeOf(22500)
	rangeTimerCallee422       = rangeOf(22600)
	rangeTimerRefused481      = rangeOf(22700)
	rangeTimerRefused408      = rangeOf(22800)
)

// timerSE is the session interval the timer tests ask for: sessions.min_se's
// default and the RFC 4028 minimum.
const timerSE = 90

// timerByeAfter is when parley must give up a session whose refresher
// stopped: SE − min(32, SE/3) after the last refresh (RFC 4028 §10).
const timerByeAfter = timerSE - timerSE/3

// timerConfig routes 9… to the SIPp callee at uasPort from a trusted
// network, with a 90 s session interval, RTP timeout out of the way (SIPp
// sends no RTP here) and a short drain so a failed test stops quickly.
func timerConfig(r rtpRange, uasPort int) parleyConfig {
	return parleyConfig{
		Trusted: []string{"127.0.0.1/32"},
		Routes:  [][2]string{{`^9(\d+)$`, fmt.Sprintf("sip:$1@127.0.0.1:%d", uasPort)}},
		Extra:   r.yaml(nil, "10m") + fmt.Sprintf("sessions:\n  expires: %d\n  min_se: %d\n  drain_grace: 1s\n", timerSE, timerSE),
	}
}

// startScenarioUAS runs a callee scenario from scenarios/ (or a path) for
// one call, tracing its messages, and waits until it listens.
func startScenarioUAS(t *testing.T, name, scenario string, args ...string) *sipp {
	t.Helper()
	full := append([]string{"-sf", scenario, "-m", "1", "-trace_msg", "-trace_err"}, args...)
	uas := startSipp(t, name, full...)
	uas.waitBound(t)
	return uas
}

// startScenarioUAC runs a caller scenario for one call to number at
// parley, tracing its messages. SIPp's default receive timeout is raised:
// the scenarios set their own on the long waits.
func startScenarioUAC(t *testing.T, name string, pl *parley, scenario, number string, args ...string) *sipp {
	t.Helper()
	full := append([]string{pl.SIPAddr, "-sf", scenario, "-s", number, "-m", "1", "-l", "1",
		"-trace_msg", "-trace_err", "-default_behaviors", "all,-abortunexp", "-recv_timeout", "10000"}, args...)
	return startSipp(t, name, full...)
}

// scenarioVariant writes scenarios/name with each old→new replacement
// (pairs) applied to a temporary file and returns its path. It fails when
// a replacement matches nothing, so a scenario edit cannot silently void it.
func scenarioVariant(t *testing.T, name string, pairs ...string) string {
	t.Helper()
	b, err := os.ReadFile(scenarioPath(t, name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("scenario %s has no %q to replace", name, pairs[i])
		}
		s = strings.ReplaceAll(s, pairs[i], pairs[i+1])
	}
	p := filepath.Join(t.TempDir(), strings.TrimSuffix(name, ".xml")+"_variant.xml")
	writeFile(t, p, s)
	return p
}

// sippMsg is one message of a SIPp -trace_msg log.
type sippMsg struct {
	// At is when SIPp sent or received it.
	At time.Time
	// Sent is true for what SIPp sent, false for what it received.
	Sent bool
	// Method is the request's method, or the CSeq method of a response.
	Method string
	// Code is the status of a response, 0 for a request.
	Code int
	// Headers maps lowercase full header names (compact forms expanded) to
	// their values in order.
	Headers map[string][]string
	Body    string
	Raw     string
}

// compactHeaders are the compact forms of RFC 3261 §7.3.3 and RFC 4028.
var compactHeaders = map[string]string{
	"i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
	"c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to",
	"v": "via", "x": "session-expires",
}

// header returns the first value of name (any case, full name), or "".
func (m sippMsg) header(name string) string {
	v := m.Headers[strings.ToLower(name)]
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// has reports whether the comma-separated option-tag header name lists tag.
func (m sippMsg) has(name, tag string) bool {
	for _, v := range m.Headers[strings.ToLower(name)] {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), tag) {
				return true
			}
		}
	}
	return false
}

// inDialog reports whether a request's To carries a tag.
func (m sippMsg) inDialog() bool { return strings.Contains(m.header("to"), "tag=") }

// cseq is the CSeq number.
func (m sippMsg) cseq() int {
	n, _ := strconv.Atoi(strings.Fields(m.header("cseq") + " 0")[0])
	return n
}

func (m sippMsg) String() string {
	dir := "received"
	if m.Sent {
		dir = "sent"
	}
	return fmt.Sprintf("[%s %s]\n%s", dir, m.At.Format("15:04:05.000"), m.Raw)
}

// readSippMsgs parses the -trace_msg log SIPp wrote in its directory.
func readSippMsgs(t *testing.T, s *sipp) []sippMsg {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(s.Dir, "*_messages.log"))
	if len(files) == 0 {
		t.Fatalf("no SIPp message log in %s (was -trace_msg given?)", s.Dir)
	}
	f, err := os.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const sep = "-----------------------------------------------"
	var out []sippMsg
	var cur *sippMsg
	var lines []string
	flush := func() {
		if cur == nil {
			return
		}
		// The first line says sent or received; a blank line follows.
		if len(lines) > 0 {
			cur.Sent = strings.Contains(lines[0], "message sent")
			lines = lines[1:]
		}
		for len(lines) > 0 && strings.TrimSpace(lines[0]) == "" {
			lines = lines[1:]
		}
		parseSippMsg(cur, lines)
		if cur.Method != "" {
			out = append(out, *cur)
		}
		cur, lines = nil, nil
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.HasPrefix(line, sep) {
			flush()
			stamp := strings.TrimSpace(strings.TrimPrefix(line, sep))
			at, _ := time.ParseInLocation("2006-01-02 15:04:05.000000", stamp, time.Local)
			cur = &sippMsg{At: at}
			continue
		}
		if cur != nil {
			lines = append(lines, line)
		}
	}
	flush()
	return out
}

func parseSippMsg(m *sippMsg, lines []string) {
	m.Headers = map[string][]string{}
	m.Raw = strings.TrimSpace(strings.Join(lines, "\n"))
	if len(lines) == 0 {
		return
	}
	first := strings.Fields(lines[0])
	i := 1
	for ; i < len(lines) && strings.TrimSpace(lines[i]) != ""; i++ {
		name, value, ok := strings.Cut(lines[i], ":")
		if !ok {
			continue
		}
		name = strings.ToLower(strings.TrimSpace(name))
		if long, ok := compactHeaders[name]; ok {
			name = long
		}
		m.Headers[name] = append(m.Headers[name], strings.TrimSpace(value))
	}
	if i < len(lines) {
		m.Body = strings.TrimSpace(strings.Join(lines[i+1:], "\n"))
	}
	if len(first) >= 2 && strings.HasPrefix(first[0], "SIP/2.0") {
		m.Code, _ = strconv.Atoi(first[1])
		if f := strings.Fields(m.header("cseq")); len(f) == 2 {
			m.Method = f[1]
		}
	} else if len(first) >= 3 {
		m.Method = first[0]
	}
}

// sessionExpires parses a Session-Expires value: delta-seconds and the
// refresher parameter ("" when absent).
func sessionExpires(v string) (secs int, refresher string, ok bool) {
	parts := strings.Split(v, ";")
	n, err := strconv.Atoi(strings.TrimSpace(parts[0]))
	if err != nil {
		return 0, "", false
	}
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "refresher") {
			refresher = strings.ToLower(strings.TrimSpace(val))
		}
	}
	return n, refresher, true
}

// find returns the messages that match.
func findMsgs(msgs []sippMsg, match func(sippMsg) bool) []sippMsg {
	var out []sippMsg
	for _, m := range msgs {
		if match(m) {
			out = append(out, m)
		}
	}
	return out
}

// received matches a request SIPp received (in or outside a dialog).
func receivedRequest(method string, inDialog bool) func(sippMsg) bool {
	return func(m sippMsg) bool {
		return !m.Sent && m.Code == 0 && m.Method == method && m.inDialog() == inDialog
	}
}

// receivedResponse matches a response SIPp received to method.
func receivedResponse(method string, code int) func(sippMsg) bool {
	return func(m sippMsg) bool { return !m.Sent && m.Code == code && m.Method == method }
}

// refreshes matches a re-INVITE or UPDATE SIPp received inside a dialog.
func isRefresh(m sippMsg) bool {
	return !m.Sent && m.Code == 0 && (m.Method == "INVITE" || m.Method == "UPDATE") && m.inDialog()
}

// dumpMsgs logs a SIPp message log when a test failed.
func dumpMsgs(t *testing.T, name string, msgs []sippMsg) {
	t.Helper()
	if !t.Failed() && os.Getenv("PARLEY_TEST_VERBOSE") == "" {
		return
	}
	var b strings.Builder
	for _, m := range msgs {
		fmt.Fprintf(&b, "%s\n\n", m)
	}
	t.Logf("%s messages:\n%s", name, b.String())
}

// checkSE asserts msg carries Session-Expires of at least min seconds (and
// exactly want when want > 0) with refresher (when not "").
func checkSE(t *testing.T, what string, m sippMsg, want, min int, refresher string) {
	t.Helper()
	v := m.header("session-expires")
	if v == "" {
		t.Errorf("%s: no Session-Expires (RFC 4028 §9):\n%s", what, m.Raw)
		return
	}
	secs, ref, ok := sessionExpires(v)
	switch {
	case !ok:
		t.Errorf("%s: Session-Expires %q does not parse", what, v)
	case want > 0 && secs != want:
		t.Errorf("%s: Session-Expires %d, want %d", what, secs, want)
	case secs < min:
		t.Errorf("%s: Session-Expires %d is below %d", what, secs, min)
	case refresher != "" && ref != refresher:
		t.Errorf("%s: Session-Expires %q has refresher=%q, want refresher=%s", what, v, ref, refresher)
	}
}

// checkCalleeRefreshed asserts that parley, the refresher of its leg to a
// uas_timer.xml callee, sent that callee a refresh at least every SE/2
// (+ slack) from the INVITE until the call ended, and that its INVITE
// advertised Supported: timer.
func checkCalleeRefreshed(t *testing.T, msgs []sippMsg) {
	t.Helper()
	invites := findMsgs(msgs, receivedRequest("INVITE", false))
	if len(invites) == 0 {
		t.Errorf("callee: no INVITE from parley")
		return
	}
	if !invites[0].has("supported", "timer") {
		t.Errorf("callee: parley's INVITE has no Supported: timer (RFC 4028 §7.1):\n%s", invites[0].Raw)
	}
	last := invites[0].At
	var times []string
	for _, m := range msgs {
		end := !m.Sent && m.Method == "BYE" && m.Code == 0
		if !isRefresh(m) && !end {
			continue
		}
		gap := m.At.Sub(last)
		times = append(times, fmt.Sprintf("%s at +%.1fs", m.Method, m.At.Sub(invites[0].At).Seconds()))
		if gap > time.Duration(timerSE/2+8)*time.Second {
			t.Errorf("callee leg (refresher=uac: parley refreshes it): %v without a refresh before this %s; want one at about SE/2 = %ds", gap.Round(time.Second), m.Method, timerSE/2)
		}
		last = m.At
	}
	t.Logf("callee leg: %s", strings.Join(times, ", "))
}

// timerCase is one session timer scenario. start launches its processes
// (on the parent test, so they outlive start) and returns check, which
// waits for them and checks what they saw. TestSessionTimers starts every
// case before checking any: the cases wait in real time (up to 85 s), and
// go test runs only GOMAXPROCS parallel tests at once (2 here), so
// t.Parallel subtests would queue.
type timerCase struct {
	name  string
	doc   string
	start func(t *testing.T) (check func(t *testing.T))
}

// TestSessionTimers runs the RFC 4028 scenarios side by side, each against
// its own parley and SIPp pair, then checks each in a subtest.
func TestSessionTimers(t *testing.T) {
	t.Parallel()
	needSipp(t)
	cases := []timerCase{
		{"caller refreshes", docCallerRefreshes, startCallerRefreshes},
		{"parley refreshes refresher=uas", docParleyRefreshes, func(t *testing.T) func(*testing.T) {
			return startParleyRefreshes(t, rangeTimerParleyRefreshes, true)
		}},
		{"parley refreshes a caller without timer support", docParleyRefreshes, func(t *testing.T) func(*testing.T) {
			return startParleyRefreshes(t, rangeTimerNoSupport, false)
		}},
		{"refreshes stop", docExpires, startExpires},
		{"422 Session-Expires", doc422, func(t *testing.T) func(*testing.T) { return start422(t, rangeTimer422, false) }},
		{"422 compact x", doc422, func(t *testing.T) func(*testing.T) { return start422(t, rangeTimer422Compact, true) }},
		{"callee 422", docCallee422, startCallee422},
		{"refresh refused 481", docRefreshRefused, func(t *testing.T) func(*testing.T) {
			return startRefreshRefused(t, rangeTimerRefused481, 481)
		}},
		{"refresh refused 408", docRefreshRefused, func(t *testing.T) func(*testing.T) {
			return startRefreshRefused(t, rangeTimerRefused408, 408)
		}},
	}
	checks := make([]func(*testing.T), len(cases))
	for i, tc := range cases {
		checks[i] = tc.start(t)
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.doc)
			checks[i](t)
		})
	}
}

const docCallerRefreshes = `The caller takes the refresher role (Session-Expires: 90;refresher=uac
with Supported: timer). parley's 2xx confirms the interval and, the
refresher being the UAC, says Require: timer (RFC 4028 §9). The caller
refreshes with a re-INVITE after 20 s and an UPDATE 55 s later and hangs
up 10 s after that: without either refresh parley would have ended the
call (60 s after the last one), so the call lasting 85 s shows both were
taken. Meanwhile the callee, which made parley the refresher of its own
leg, is refreshed by parley.`

func startCallerRefreshes(t *testing.T) func(*testing.T) {
	uas := startScenarioUAS(t, "sipp-uas-timer", scenarioPath(t, "uas_timer.xml"),
		"-key", "se", fmt.Sprint(timerSE), "-key", "refresher", "uac")
	pl := startParley(t, timerConfig(rangeTimerCallerRefreshes, uas.Port))
	uac := startScenarioUAC(t, "sipp-uac-refresh", pl, scenarioPath(t, "uac_timer_refresh.xml"), "9201",
		"-key", "se", fmt.Sprint(timerSE))
	return func(t *testing.T) {
		code := uac.wait(t, 120*time.Second)
		msgs := readSippMsgs(t, uac)
		defer dumpMsgs(t, "caller", msgs)
		if code != 0 {
			t.Errorf("caller scenario (refresh at +20 s and +75 s, BYE at +85 s) exit code %d, want 0", code)
		}
		if byes := findMsgs(msgs, receivedRequest("BYE", true)); len(byes) > 0 {
			t.Errorf("parley hung up on a caller that refreshed in time (BYE %v after the INVITE)", byes[0].At.Sub(msgs[0].At).Round(time.Second))
		}
		oks := findMsgs(msgs, receivedResponse("INVITE", 200))
		if len(oks) == 0 {
			t.Fatal("caller: no 200 to the INVITE")
		}
		checkSE(t, "200 to the INVITE", oks[0], timerSE, 0, "uac")
		if !oks[0].has("require", "timer") {
			t.Errorf("200 to the INVITE: refresher=uac but no Require: timer (RFC 4028 §9):\n%s", oks[0].Raw)
		}
		if !oks[0].has("supported", "timer") {
			t.Errorf("200 to the INVITE: no Supported: timer:\n%s", oks[0].Raw)
		}
		if len(oks) >= 2 {
			checkSE(t, "200 to the refreshing re-INVITE", oks[1], timerSE, 0, "uac")
		} else {
			t.Errorf("caller: no 200 to its refreshing re-INVITE")
		}
		if ups := findMsgs(msgs, receivedResponse("UPDATE", 200)); len(ups) > 0 {
			checkSE(t, "200 to the refreshing UPDATE", ups[0], timerSE, 0, "uac")
		} else {
			t.Errorf("caller: no 200 to its refreshing UPDATE")
		}

		if code := uas.wait(t, 10*time.Second); code != 0 {
			t.Errorf("callee scenario exit code %d, want 0", code)
		}
		umsgs := readSippMsgs(t, uas)
		defer dumpMsgs(t, "callee", umsgs)
		checkCalleeRefreshed(t, umsgs)
		pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
	}
}

const docParleyRefreshes = `parley is the refresher of the caller's leg, either because the caller
asked (refresher=uas) or because the caller does not support timers at
all (no Supported: timer: then even a Session-Expires below
sessions.min_se gets no 422, RFC 4028 §8.1/§9). parley sends the caller a
refresh, a re-INVITE with the current SDP or an UPDATE, at about half the
interval; the caller's scenario answers it and hangs up.`

func startParleyRefreshes(t *testing.T, r rtpRange, support bool) func(*testing.T) {
	scenario := scenarioPath(t, "uac_timer_parley_refreshes.xml")
	se := timerSE
	if !support {
		// No Supported: timer anywhere, no Session-Expires in the answers
		// to refreshes, and a Session-Expires below sessions.min_se (as a
		// proxy on the way might add) in the INVITE.
		scenario = scenarioVariant(t, "uac_timer_parley_refreshes.xml",
			"      Supported: timer\n", "",
			"      Session-Expires: [se];refresher=uas\n", "",
			"      Session-Expires: [se];refresher=uac\n", "",
			"      Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE\n",
			"      Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE\n      Session-Expires: [se]\n")
		se = 60
	}
	uas := startScenarioUAS(t, "sipp-uas-timer", scenarioPath(t, "uas_timer.xml"),
		"-key", "se", fmt.Sprint(timerSE), "-key", "refresher", "uac")
	pl := startParley(t, timerConfig(r, uas.Port))
	uac := startScenarioUAC(t, "sipp-uac-parley-refreshes", pl, scenario, "9202", "-key", "se", fmt.Sprint(se))
	return func(t *testing.T) {
		code := uac.wait(t, 90*time.Second)
		msgs := readSippMsgs(t, uac)
		defer dumpMsgs(t, "caller", msgs)
		if code != 0 {
			t.Errorf("caller scenario exit code %d, want 0 (it waits up to 70 s for parley's refresh)", code)
		}
		if rejected := findMsgs(msgs, receivedResponse("INVITE", 422)); len(rejected) > 0 {
			t.Errorf("422 to a caller without Supported: timer (RFC 4028 §8.1 forbids it):\n%s", rejected[0].Raw)
		}
		oks := findMsgs(msgs, receivedResponse("INVITE", 200))
		if len(oks) == 0 {
			t.Fatal("caller: no 200 to the INVITE")
		}
		if support {
			checkSE(t, "200 to the INVITE", oks[0], timerSE, 0, "uas")
		} else {
			if oks[0].header("session-expires") != "" {
				checkSE(t, "200 to the INVITE", oks[0], 0, timerSE, "uas")
			}
			if oks[0].has("require", "timer") {
				t.Errorf("200 to a caller without timer support says Require: timer (RFC 4028 §9):\n%s", oks[0].Raw)
			}
		}
		refreshes := findMsgs(msgs, isRefresh)
		if len(refreshes) == 0 {
			t.Fatalf("parley never refreshed the caller's leg (no re-INVITE or UPDATE within 70 s; due at SE/2 = %d s)", timerSE/2)
		}
		r := refreshes[0]
		after := r.At.Sub(oks[0].At)
		t.Logf("parley refreshed the caller with %s %v after the answer", r.Method, after.Round(100*time.Millisecond))
		if after < time.Duration(timerSE/2-10)*time.Second || after > time.Duration(timerSE/2+10)*time.Second {
			t.Errorf("parley's refresh came %v after the answer; want about SE/2 = %d s", after.Round(time.Second), timerSE/2)
		}
		if support {
			// parley sends the refresh, so it is the UAC of that
			// transaction and stays the refresher: refresher=uac (§7.4).
			checkSE(t, "parley's refresh", r, timerSE, 0, "uac")
		}
		if r.Method == "INVITE" {
			if r.Body == "" {
				t.Errorf("parley's refreshing re-INVITE has no SDP; it must carry the current one:\n%s", r.Raw)
			} else {
				got := parseAudio(t, "refreshing re-INVITE", []byte(r.Body+"\n"))
				want := parseAudio(t, "200 to the INVITE", []byte(oks[0].Body+"\n"))
				if got.Addr != want.Addr {
					t.Errorf("refreshing re-INVITE's SDP names %v; the call's current SDP (the 200) names %v", got.Addr, want.Addr)
				}
			}
		}
		if code := uas.wait(t, 10*time.Second); code != 0 {
			t.Errorf("callee scenario exit code %d, want 0", code)
		}
		umsgs := readSippMsgs(t, uas)
		defer dumpMsgs(t, "callee", umsgs)
		pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
	}
}

const docExpires = `The caller takes the refresher role with a 90 s interval and never
refreshes. parley sends BYE to both legs 60 s (SE − min(32, SE/3),
RFC 4028 §10) after the answer.`

func startExpires(t *testing.T) func(*testing.T) {
	uas := startScenarioUAS(t, "sipp-uas-timer", scenarioPath(t, "uas_timer.xml"),
		"-key", "se", fmt.Sprint(timerSE), "-key", "refresher", "uac")
	pl := startParley(t, timerConfig(rangeTimerExpires, uas.Port))
	uac := startScenarioUAC(t, "sipp-uac-expire", pl, scenarioPath(t, "uac_timer_expire.xml"), "9203",
		"-key", "se", fmt.Sprint(timerSE))
	return func(t *testing.T) {
		code := uac.wait(t, 110*time.Second)
		msgs := readSippMsgs(t, uac)
		defer dumpMsgs(t, "caller", msgs)
		if code != 0 {
			t.Errorf("caller scenario exit code %d, want 0 (it waits up to 100 s for parley's BYE)", code)
		}
		oks := findMsgs(msgs, receivedResponse("INVITE", 200))
		byes := findMsgs(msgs, receivedRequest("BYE", true))
		if len(oks) == 0 || len(byes) == 0 {
			t.Fatalf("caller: 200s %d, BYEs %d; want parley to answer and then hang up the unrefreshed session", len(oks), len(byes))
		}
		after := byes[0].At.Sub(oks[0].At)
		t.Logf("parley hung up the unrefreshed session %v after the answer", after.Round(100*time.Millisecond))
		if after < time.Duration(timerByeAfter-5)*time.Second || after > time.Duration(timerByeAfter+6)*time.Second {
			t.Errorf("BYE %v after the answer; want about SE − min(32, SE/3) = %d s (RFC 4028 §10)", after.Round(time.Second), timerByeAfter)
		}
		if code := uas.wait(t, 10*time.Second); code != 0 {
			t.Errorf("callee scenario exit code %d, want 0 (BYE from parley)", code)
		}
		umsgs := readSippMsgs(t, uas)
		defer dumpMsgs(t, "callee", umsgs)
		if ub := findMsgs(umsgs, receivedRequest("BYE", true)); len(ub) == 0 {
			t.Errorf("callee: no BYE from parley when the caller's session expired")
		} else if d := ub[0].At.Sub(byes[0].At); d > 3*time.Second || d < -3*time.Second {
			t.Errorf("callee's BYE %v apart from the caller's; want both legs hung up together", d)
		}
		pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
	}
}

const doc422 = `An INVITE with Supported: timer asking for 60 s, less than
sessions.min_se (90), gets 422 Session Interval Too Small with Min-SE: 90
(RFC 4028 §8.2), also when it uses the compact form x; the retry asking
for 90 is answered. The callee sees only the retry.`

func start422(t *testing.T, r rtpRange, compact bool) func(*testing.T) {
	scenario := scenarioPath(t, "uac_timer_422.xml")
	if compact {
		scenario = scenarioVariant(t, "uac_timer_422.xml", "Session-Expires: [se_low]", "x: [se_low]")
	}
	uas := startScenarioUAS(t, "sipp-uas-timer", scenarioPath(t, "uas_timer.xml"),
		"-key", "se", fmt.Sprint(timerSE), "-key", "refresher", "uac")
	pl := startParley(t, timerConfig(r, uas.Port))
	uac := startScenarioUAC(t, "sipp-uac-422", pl, scenario, "9204",
		"-key", "se_low", "60", "-key", "se", fmt.Sprint(timerSE))
	return func(t *testing.T) {
		code := uac.wait(t, 30*time.Second)
		msgs := readSippMsgs(t, uac)
		defer dumpMsgs(t, "caller", msgs)
		if code != 0 {
			t.Errorf("caller scenario (422, then retry) exit code %d, want 0", code)
		}
		rej := findMsgs(msgs, receivedResponse("INVITE", 422))
		if len(rej) == 0 {
			finals := findMsgs(msgs, func(m sippMsg) bool { return !m.Sent && m.Code >= 200 })
			t.Fatalf("INVITE asking Session-Expires 60 with Supported: timer: no 422 (final responses: %v)", finals)
		}
		if v := rej[0].header("min-se"); v == "" {
			t.Errorf("422 without Min-SE (RFC 4028 §6):\n%s", rej[0].Raw)
		} else if n, _, _ := sessionExpires(v); n != timerSE {
			t.Errorf("422 has Min-SE %q, want %d (sessions.min_se)", v, timerSE)
		}
		oks := findMsgs(msgs, receivedResponse("INVITE", 200))
		if len(oks) == 0 {
			t.Fatal("retry with Session-Expires 90: no 200")
		}
		checkSE(t, "200 to the retry", oks[0], timerSE, 0, "")
		if code := uas.wait(t, 10*time.Second); code != 0 {
			t.Errorf("callee scenario exit code %d, want 0", code)
		}
		umsgs := readSippMsgs(t, uas)
		defer dumpMsgs(t, "callee", umsgs)
		if n := len(findMsgs(umsgs, receivedRequest("INVITE", false))); n != 1 {
			t.Errorf("callee got %d INVITEs; want 1 (the refused one must not reach it)", n)
		}
		pl.waitMetric(t, 3*time.Second, atLeast(1), "parley_sip_responses_total", "method", "INVITE", "code", "422")
	}
}

const docCallee422 = `The callee refuses parley's INVITE with 422 and Min-SE: 120; parley
retries with Session-Expires of at least 120 (RFC 4028 §7.4) and the
call goes through.`

func startCallee422(t *testing.T) func(*testing.T) {
	uas := startScenarioUAS(t, "sipp-uas-422", scenarioPath(t, "uas_422.xml"),
		"-key", "min_se", "120", "-key", "se", "120", "-key", "refresher", "uac")
	pl := startParley(t, timerConfig(rangeTimerCallee422, uas.Port))
	uac := startSipp(t, "sipp-uac", pl.SIPAddr, "-sn", "uac", "-s", "9205", "-m", "1", "-d", "1000",
		"-trace_msg", "-trace_err", "-default_behaviors", "all,-abortunexp", "-recv_timeout", "10000")
	return func(t *testing.T) {
		if code := uac.wait(t, 30*time.Second); code != 0 {
			t.Errorf("caller (SIPp uac) exit code %d, want 0: parley must retry the callee's 422 itself", code)
		}
		uas.wait(t, 10*time.Second)
		umsgs := readSippMsgs(t, uas)
		defer dumpMsgs(t, "callee", umsgs)
		invites := findMsgs(umsgs, receivedRequest("INVITE", false))
		if len(invites) < 2 {
			t.Fatalf("callee got %d INVITEs; want the retry after its 422", len(invites))
		}
		checkSE(t, "INVITE retried after 422 with Min-SE 120", invites[1], 0, 120, "")
		if v := invites[1].header("min-se"); v != "" {
			if n, _, _ := sessionExpires(v); n < 120 {
				t.Errorf("retried INVITE has Min-SE %q, want at least 120 (RFC 4028 §7.4)", v)
			}
		}
		pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
	}
}

const docRefreshRefused = `parley refreshes the callee's leg and the callee answers the refresh
481 (dialog gone) or 408; the session is over, so parley hangs up the
caller (RFC 4028 §10, RFC 5057 §5.1) at the refresh, about SE/2 after the
answer. The caller keeps the refresher role of its own leg with a long
interval, so nothing there ends the call first.`

func startRefreshRefused(t *testing.T, r rtpRange, status int) func(*testing.T) {
	scenario := scenarioPath(t, "uas_refresh_fail.xml")
	if status == 408 {
		scenario = scenarioVariant(t, "uas_refresh_fail.xml",
			"SIP/2.0 481 Call/Transaction Does Not Exist\n      [last_Via:]\n      [last_From:]\n      [last_To:]\n      [last_Call-ID:]\n      [last_CSeq:]\n      Content-Length: 0\n\n    ]]>\n  </send>\n\n  <!-- parley ACKs",
			"SIP/2.0 408 Request Timeout\n      [last_Via:]\n      [last_From:]\n      [last_To:]\n      [last_Call-ID:]\n      [last_CSeq:]\n      Content-Length: 0\n\n    ]]>\n  </send>\n\n  <!-- parley ACKs")
	}
	uas := startScenarioUAS(t, "sipp-uas-refuse", scenario, "-key", "se", fmt.Sprint(timerSE), "-key", "refresher", "uac")
	pl := startParley(t, timerConfig(r, uas.Port))
	uac := startScenarioUAC(t, "sipp-uac-wait-bye", pl, scenarioPath(t, "uac_timer_expire.xml"), "9206",
		"-key", "se", "1800")
	return func(t *testing.T) {
		code := uac.wait(t, 110*time.Second)
		msgs := readSippMsgs(t, uac)
		defer dumpMsgs(t, "caller", msgs)
		uas.wait(t, 10*time.Second)
		umsgs := readSippMsgs(t, uas)
		defer dumpMsgs(t, "callee", umsgs)
		if code != 0 {
			t.Errorf("caller scenario exit code %d, want 0 (BYE from parley)", code)
		}
		refreshes := findMsgs(umsgs, isRefresh)
		if len(refreshes) == 0 {
			t.Fatalf("parley never refreshed the callee's leg (callee said refresher=uac, SE %d)", timerSE)
		}
		oks := findMsgs(msgs, receivedResponse("INVITE", 200))
		byes := findMsgs(msgs, receivedRequest("BYE", true))
		if len(oks) == 0 || len(byes) == 0 {
			t.Fatalf("caller: 200s %d, BYEs %d; want a BYE once the callee refused the refresh with %d", len(oks), len(byes), status)
		}
		d := byes[0].At.Sub(refreshes[0].At)
		t.Logf("caller's BYE %v after the callee's refused refresh", d.Round(100*time.Millisecond))
		if d < -time.Second || d > 8*time.Second {
			t.Errorf("caller's BYE came %v after the refused refresh; want right after it (the session timer interval would end it only later)", d.Round(time.Second))
		}
		pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
	}
}
