package dialog

// The call state machine under the races RFC 3261 leaves to the network:
// CANCEL crossing a 200 (§9.1), BYE crossing a re-INVITE (§15.1.2), BYE
// from both sides, a 2xx never ACKed and a 2xx retransmitted (§13.3.1.4,
// §13.2.2.4), and re-INVITE glare (§14.1). Each test runs a Server on
// loopback between two scripted UDP peers that speak raw SIP, and checks
// both what each peer sees and the state machine: the parley_calls gauge,
// parley_calls_total, Server.Calls() and the transitions it reports.

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

// The 64·T1 tests would take half a minute each with RFC timers. sip.T1 is a
// global that sipgo's goroutines read, so it is not changed under them:
// those tests run their body in a child test process that sets small timers
// in init, before any goroutine exists.
const smallT1Env = "PARLEY_TEST_SMALL_T1"

// smallT1 keeps RFC 3261's ratio T2 = 8·T1; 64·T1 is 3.2 s.
const smallT1 = 50 * time.Millisecond

func init() {
	if os.Getenv(smallT1Env) == "1" {
		sip.SetTimers(smallT1, 8*smallT1, 5*time.Second)
	}
}

// inSmallT1 reports whether the calling test's body should run in this
// process. In the parent it runs the test in a child process with small
// timers, reports the child's result and returns false.
func inSmallT1(t *testing.T) bool {
	t.Helper()
	if os.Getenv(smallT1Env) == "1" {
		return true
	}
	args := []string{"-test.run=^" + t.Name() + "$", "-test.count=1", "-test.timeout=2m", "-test.v"}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), smallT1Env+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("child test with T1=%v: %v\n%s", smallT1, err, out)
	}
	if testing.Verbose() {
		t.Logf("child test with T1=%v:\n%s", smallT1, out)
	}
	return false
}

const (
	sdpCaller = "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	sdpCallee = "v=0\r\no=callee 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 42000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)

// --- what a peer receives ---

// inbound is one message a peer received.
type inbound struct {
	n    int // arrival order at the peer
	msg  sip.Message
	src  *net.UDPAddr
	at   time.Time
	used bool
}

func (m *inbound) req() *sip.Request {
	r, _ := m.msg.(*sip.Request)
	return r
}

func (m *inbound) res() *sip.Response {
	r, _ := m.msg.(*sip.Response)
	return r
}

func (m *inbound) String() string {
	if r := m.req(); r != nil {
		return r.StartLine() + " (CSeq " + r.CSeq().Value() + ")"
	}
	return m.res().StartLine() + " (CSeq " + m.res().CSeq().Value() + ")"
}

// match selects inbound messages.
type match func(*inbound) bool

func isRequest(method sip.RequestMethod) match {
	return func(m *inbound) bool { return m.req() != nil && m.req().Method == method }
}

// isResponse matches responses to method with one of codes, or any final
// response when no code is given.
func isResponse(method sip.RequestMethod, codes ...int) match {
	return func(m *inbound) bool {
		r := m.res()
		if r == nil || r.CSeq().MethodName != method {
			return false
		}
		if len(codes) == 0 {
			return r.StatusCode >= 200
		}
		return slices.Contains(codes, r.StatusCode)
	}
}

func withCSeq(seq uint32, m match) match {
	return func(in *inbound) bool { return m(in) && in.msg.CSeq().SeqNo == seq }
}

// --- a scripted UDP phone ---

// peer is a UDP socket that records every SIP message it receives and
// sends whatever raw SIP a test script writes.
type peer struct {
	name string
	conn *net.UDPConn
	mu   sync.Mutex
	in   []*inbound
	done chan struct{}
}

func newPeer(t *testing.T, name string) *peer {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{name: name, conn: conn, done: make(chan struct{})}
	go p.read()
	t.Cleanup(func() {
		conn.Close()
		<-p.done
	})
	return p
}

func (p *peer) read() {
	defer close(p.done)
	buf := make([]byte, 65535)
	for {
		n, src, err := p.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		msg, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
		if err != nil {
			continue
		}
		p.mu.Lock()
		p.in = append(p.in, &inbound{n: len(p.in), msg: msg, src: src, at: time.Now()})
		p.mu.Unlock()
	}
}

func (p *peer) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

func (p *peer) hostport() string { return fmt.Sprintf("127.0.0.1:%d", p.port()) }

// send writes one datagram; it may be called from any goroutine.
func (p *peer) send(t *testing.T, to *net.UDPAddr, msg string) {
	if _, err := p.conn.WriteToUDP([]byte(msg), to); err != nil {
		t.Errorf("%s: send: %v", p.name, err)
	}
}

// take returns the first unused message m matches, marking it used, or nil.
func (p *peer) take(m match) *inbound {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, in := range p.in {
		if !in.used && (m == nil || m(in)) {
			in.used = true
			return in
		}
	}
	return nil
}

// poll waits up to d for a message m matches; nil if none came.
func (p *peer) poll(d time.Duration, m match) *inbound {
	deadline := time.Now().Add(d)
	for {
		if in := p.take(m); in != nil {
			return in
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// expect waits up to d for a message m matches and fails the test without
// one. It may be called from any goroutine (it does not stop the test).
func (p *peer) expect(t *testing.T, what string, d time.Duration, m match) *inbound {
	t.Helper()
	in := p.poll(d, m)
	if in == nil {
		t.Errorf("%s: no %s within %v; received:\n%s", p.name, what, d, p.dump())
	}
	return in
}

// all returns every message m matches, used or not, in arrival order.
func (p *peer) all(m match) []*inbound {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*inbound
	for _, in := range p.in {
		if m(in) {
			out = append(out, in)
		}
	}
	return out
}

func (p *peer) dump() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, in := range p.in {
		fmt.Fprintf(&b, "  %s %s\n", in.at.Format("15:04:05.000"), in)
	}
	return b.String()
}

// reply answers a received request. A tag goes into To when it has none;
// 18x and 2xx to INVITE get a Contact; a body is SDP.
func (p *peer) reply(t *testing.T, in *inbound, code int, reason, tag, body string) string {
	req := in.req()
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	// sipgo gives a response to a request without a To tag a random tag of
	// its own; the script's tag replaces it.
	if to := res.To(); tag != "" && to != nil && !sipmsg.HasToTag(req) {
		to.Params.Add("tag", tag)
	}
	if req.IsInvite() && code > 100 && code < 300 {
		res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: p.name, Host: "127.0.0.1", Port: p.port()}})
	}
	if body != "" {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		res.SetBody([]byte(body))
	} else {
		res.SetBody(nil)
	}
	text := res.String()
	p.send(t, in.src, text)
	return text
}

// --- a dialog as a peer sees it ---

// dlg is one side's view of a dialog, enough to build requests in it.
type dlg struct {
	p         *peer
	parley    *net.UDPAddr
	ruri      string
	callID    string
	localURI  string
	localTag  string
	remoteURI string
	remoteTag string
	cseq      uint32
}

func branch() string { return "z9hG4bK-" + sipmsg.NewTag() }

func branchOf(req *sip.Request) string {
	br, _ := req.Via().Params.Get("branch")
	return br
}

// build writes a request in the dialog with the given CSeq and Via branch.
func (d *dlg) build(method sip.RequestMethod, cseq uint32, br, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", method, d.ruri)
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=%s;rport\r\n", d.p.hostport(), br)
	b.WriteString("Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: <%s>;tag=%s\r\n", d.localURI, d.localTag)
	if d.remoteTag != "" {
		fmt.Fprintf(&b, "To: <%s>;tag=%s\r\n", d.remoteURI, d.remoteTag)
	} else {
		fmt.Fprintf(&b, "To: <%s>\r\n", d.remoteURI)
	}
	fmt.Fprintf(&b, "Call-ID: %s\r\n", d.callID)
	fmt.Fprintf(&b, "CSeq: %d %s\r\n", cseq, method)
	if method == sip.INVITE {
		fmt.Fprintf(&b, "Contact: <sip:%s@%s>\r\n", d.p.name, d.p.hostport())
	}
	if body != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.String()
}

// request sends a new request in the dialog and returns its CSeq and branch.
func (d *dlg) request(t *testing.T, method sip.RequestMethod, body string) (uint32, string) {
	d.cseq++
	br := branch()
	d.p.send(t, d.parley, d.build(method, d.cseq, br, body))
	return d.cseq, br
}

// ack acknowledges a 2xx to the INVITE with CSeq seq (a new transaction).
func (d *dlg) ack(t *testing.T, seq uint32) {
	d.p.send(t, d.parley, d.build(sip.ACK, seq, branch(), ""))
}

// ackFailure acknowledges a non-2xx final response to the INVITE sent
// with branch br: same branch, To as the response has it (RFC 3261 §17.1.1.3).
func (d *dlg) ackFailure(t *testing.T, res *sip.Response, br string) {
	e := *d
	e.remoteTag = sipmsg.Tag(res.To().Params)
	d.p.send(t, d.parley, e.build(sip.ACK, res.CSeq().SeqNo, br, ""))
}

// --- the rig: a Server between a caller and a callee ---

type rig struct {
	s      *Server
	reg    *prometheus.Registry
	log    *stateLog
	recs   *recordLog
	parley *net.UDPAddr
	caller *peer
	callee *peer
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{reg: prometheus.NewRegistry(), log: &stateLog{}, recs: &recordLog{}}
	r.caller = newPeer(t, "caller")
	r.callee = newPeer(t, "callee")
	yaml := fmt.Sprintf("sip:\n  listen: [udp://127.0.0.1:0]\nroutes:\n  - {match: '^9(\\d+)$', target: 'sip:$1@127.0.0.1:%d'}\n", r.callee.port())
	r.s = startServer(t, yaml, WithRegisterer(r.reg), WithLogger(slog.New(&logHandler{})),
		WithStateObserver(func(call string, from, to State) { r.log.add(call, move{from.String(), to.String()}) }),
		WithRecorder(r.recs.add))
	addr, err := net.ResolveUDPAddr("udp", r.s.Addr("udp"))
	if err != nil {
		t.Fatal(err)
	}
	r.parley = addr
	t.Cleanup(func() {
		// Let a datagram a script sent last (an ACK, say) be handled before
		// the Server stops: sipgo opens, and leaks, a new socket to answer
		// a request that its transport layer reads while it is closing.
		time.Sleep(50 * time.Millisecond)
		if t.Failed() {
			t.Logf("caller received:\n%scallee received:\n%sstate log: %v", r.caller.dump(), r.callee.dump(), r.log.byCall())
		}
	})
	return r
}

// dial sends the caller's INVITE to 9123 and returns the caller's dialog
// and the INVITE's branch.
func (r *rig) dial(t *testing.T) (*dlg, string) {
	d := &dlg{
		p:         r.caller,
		parley:    r.parley,
		ruri:      "sip:9123@" + r.parley.String(),
		callID:    sipmsg.NewTag() + "@caller",
		localURI:  "sip:1001@parley.lab",
		localTag:  sipmsg.NewTag(),
		remoteURI: "sip:9123@parley.lab",
	}
	_, br := d.request(t, sip.INVITE, sdpCaller)
	return d, br
}

// incoming waits for parley's INVITE at the callee and returns it with the
// callee's view of the new dialog.
func (r *rig) incoming(t *testing.T) (*inbound, *dlg) {
	t.Helper()
	inv := r.callee.expect(t, "INVITE", 5*time.Second, isRequest(sip.INVITE))
	if inv == nil {
		t.FailNow()
	}
	req := inv.req()
	return inv, &dlg{
		p:         r.callee,
		parley:    r.parley,
		ruri:      req.Contact().Address.String(),
		callID:    sipmsg.CallID(req),
		localURI:  req.To().Address.String(),
		localTag:  sipmsg.NewTag(),
		remoteURI: req.From().Address.String(),
		remoteTag: sipmsg.Tag(req.From().Params),
	}
}

// established is a confirmed call seen from both peers.
type established struct {
	caller, callee *dlg
	id             string
}

// establish places a call and completes it with 180, 200 and ACK.
func (r *rig) establish(t *testing.T) established {
	t.Helper()
	caller, _ := r.dial(t)
	inv, callee := r.incoming(t)
	r.callee.reply(t, inv, 180, "Ringing", callee.localTag, "")
	r.callee.reply(t, inv, 200, "OK", callee.localTag, sdpCallee)
	ok := r.caller.expect(t, "200 to INVITE", 5*time.Second, isResponse(sip.INVITE, 200))
	if ok == nil {
		t.FailNow()
	}
	caller.remoteTag = sipmsg.Tag(ok.res().To().Params)
	caller.ack(t, caller.cseq)
	if r.callee.expect(t, "ACK", 5*time.Second, isRequest(sip.ACK)) == nil {
		t.FailNow()
	}
	calls := r.s.Calls()
	if len(calls) != 1 {
		t.Fatalf("Calls() = %+v, want one call", calls)
	}
	return established{caller: caller, callee: callee, id: calls[0].ID}
}

// gauges is what parley_calls should read, by state; missing states are 0.
type gauges map[string]float64

func (r *rig) checkGauges(want gauges) error {
	var b strings.Builder
	b.WriteString("# HELP parley_calls Calls in progress, by session state.\n# TYPE parley_calls gauge\n")
	for _, st := range []string{"active", "establishing", "suspended", "terminating"} {
		fmt.Fprintf(&b, "parley_calls{state=%q} %v\n", st, want[st])
	}
	return testutil.GatherAndCompare(r.reg, strings.NewReader(b.String()), "parley_calls")
}

// counter reads parley_calls_total for result, or summed over all results
// when result is "".
func (r *rig) counter(t *testing.T, result string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "parley_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "result" && (result == "" || lp.GetValue() == result) {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// wantGauges waits until parley_calls reads want.
func (r *rig) wantGauges(t *testing.T, want gauges) {
	t.Helper()
	eventually(t, 5*time.Second, func() error { return r.checkGauges(want) })
}

// wantState waits until the only call in progress is in state st.
func (r *rig) wantState(t *testing.T, st string) Snapshot {
	t.Helper()
	var snap Snapshot
	eventually(t, 5*time.Second, func() error {
		calls := r.s.Calls()
		if len(calls) != 1 || calls[0].State != st {
			return fmt.Errorf("Calls() = %+v, want one call %s", calls, st)
		}
		snap = calls[0]
		return nil
	})
	return snap
}

// wantClosed waits until no call is left: Calls() empty, every gauge 0,
// exactly one call ended, and its state log ends in one move to closed.
func (r *rig) wantClosed(t *testing.T) {
	t.Helper()
	eventually(t, 5*time.Second, func() error {
		if calls := r.s.Calls(); len(calls) != 0 {
			return fmt.Errorf("calls left: %+v", calls)
		}
		return r.checkGauges(nil)
	})
	if n := r.counter(t, ""); n != 1 {
		t.Errorf("parley_calls_total summed over results = %v, want 1 (the call ended once)", n)
	}
	for id, moves := range r.log.byCall() {
		closes := 0
		for _, m := range moves {
			if m.to == "closed" {
				closes++
			}
		}
		if closes != 1 || moves[len(moves)-1].to != "closed" {
			t.Errorf("call %s moved %v: want exactly one move to closed, last", id, moves)
		}
	}
	// One record per call, however its end raced (record_test.go).
	r.recs.wantOnePerCall(t, slices.Collect(maps.Keys(r.log.byCall())))
}

func eventually(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", d, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// --- the state transitions parley reports ---

type move struct{ from, to string }

func (m move) String() string { return m.from + "→" + m.to }

// stateLog keeps the state moves parley reports (WithStateObserver), per
// call ID, in the order each call made them.
type stateLog struct {
	mu    sync.Mutex
	calls map[string][]move
	order []string
}

func (l *stateLog) add(call string, m move) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.calls == nil {
		l.calls = map[string][]move{}
	}
	if _, ok := l.calls[call]; !ok {
		l.order = append(l.order, call)
	}
	l.calls[call] = append(l.calls[call], m)
}

func (l *stateLog) byCall() map[string][]move {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]move{}
	for k, v := range l.calls {
		out[k] = slices.Clone(v)
	}
	return out
}

// logHandler takes parley's logs at every level, so the logging paths run
// too, and drops them; PARLEY_TEST_LOG=1 prints them all, sipgo's
// included.
type logHandler struct {
	attrs []slog.Attr
	sipgo bool
}

var echoLog = func() slog.Handler {
	if os.Getenv("PARLEY_TEST_LOG") == "" {
		return nil
	}
	return slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
}()

func (h *logHandler) Enabled(context.Context, slog.Level) bool { return echoLog != nil || !h.sipgo }

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	if echoLog != nil {
		return echoLog.WithAttrs(h.attrs).Handle(ctx, r)
	}
	return nil
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := &logHandler{attrs: append(slices.Clone(h.attrs), as...), sipgo: h.sipgo}
	for _, a := range as {
		if a.Key == "component" && a.Value.String() == "sipgo" {
			n.sipgo = true
		}
	}
	return n
}

func (h *logHandler) WithGroup(string) slog.Handler { return h }

// --- the tests ---

// (1) The happy path, transition by transition: Idle→Establishing on the
// INVITE, →Active on the 2xx, →Terminating→Closed on BYE, with the gauge,
// the snapshot and the log in step.
func TestRaceHappyPathTransitions(t *testing.T) {
	r := newRig(t)
	caller, _ := r.dial(t)
	inv, callee := r.incoming(t)

	snap := r.wantState(t, "establishing")
	r.wantGauges(t, gauges{"establishing": 1})
	if !snap.Answer.IsZero() {
		t.Errorf("establishing call has an answer time: %+v", snap)
	}

	r.callee.reply(t, inv, 180, "Ringing", callee.localTag, "")
	ring := r.caller.expect(t, "180", 5*time.Second, isResponse(sip.INVITE, 180))
	if ring == nil {
		t.FailNow()
	}
	if sipmsg.Tag(ring.res().To().Params) == "" {
		t.Error("180 to the caller has no To tag: no early dialog")
	}
	r.wantGauges(t, gauges{"establishing": 1})

	r.callee.reply(t, inv, 200, "OK", callee.localTag, sdpCallee)
	ok := r.caller.expect(t, "200 to INVITE", 5*time.Second, isResponse(sip.INVITE, 200))
	if ok == nil {
		t.FailNow()
	}
	if got := string(ok.res().Body()); got != sdpCallee {
		t.Errorf("without a relay the answer must pass unchanged; got\n%s", got)
	}
	if sipmsg.Tag(ok.res().To().Params) != sipmsg.Tag(ring.res().To().Params) {
		t.Error("200 and 180 carry different To tags")
	}
	snap = r.wantState(t, "active")
	r.wantGauges(t, gauges{"active": 1})
	if snap.Answer.IsZero() {
		t.Error("active call has no answer time")
	}

	caller.remoteTag = sipmsg.Tag(ok.res().To().Params)
	caller.ack(t, caller.cseq)
	ack := r.callee.expect(t, "ACK", 5*time.Second, isRequest(sip.ACK))
	if ack == nil {
		t.FailNow()
	}
	if ack.req().CSeq().SeqNo != inv.req().CSeq().SeqNo || sipmsg.Tag(ack.req().To().Params) != callee.localTag {
		t.Errorf("callee's ACK does not match its 200: CSeq %s, To tag %q", ack.req().CSeq().Value(), sipmsg.Tag(ack.req().To().Params))
	}
	r.wantState(t, "active")

	caller.request(t, sip.BYE, "")
	if r.caller.expect(t, "200 to BYE", 5*time.Second, isResponse(sip.BYE, 200)) == nil {
		t.FailNow()
	}
	bye := r.callee.expect(t, "BYE", 5*time.Second, isRequest(sip.BYE))
	if bye == nil {
		t.FailNow()
	}
	r.callee.reply(t, bye, 200, "OK", "", "")
	r.wantClosed(t)
	if n := r.counter(t, resultAnswered); n != 1 {
		t.Errorf("parley_calls_total{result=answered} = %v, want 1", n)
	}

	want := []move{{"idle", "establishing"}, {"establishing", "active"}, {"active", "terminating"}, {"terminating", "closed"}}
	if got := r.log.byCall()[snap.ID]; !slices.Equal(got, want) {
		t.Errorf("call %s moved %v, want %v", snap.ID, got, want)
	}
}

// (2) CANCEL crossing a 200 (RFC 3261 §9.1, §15): the caller gets 200 for
// its CANCEL and either 487 or the 200, whichever won at parley; the callee,
// whose 200 went out, gets its ACK and then a BYE; the call is closed once.
func TestRaceCancelCrosses200(t *testing.T) {
	orders := []string{"cancel-first", "200-first", "together"}
	for _, order := range orders {
		for i := range 3 {
			t.Run(fmt.Sprintf("%s/%d", order, i), func(t *testing.T) {
				r := newRig(t)
				caller, br := r.dial(t)
				inv, callee := r.incoming(t)
				r.callee.reply(t, inv, 180, "Ringing", callee.localTag, "")
				if r.caller.expect(t, "180", 5*time.Second, isResponse(sip.INVITE, 180)) == nil {
					t.FailNow()
				}
				cancel := caller.build(sip.CANCEL, caller.cseq, br, "")
				answer := func() { r.callee.reply(t, inv, 200, "OK", callee.localTag, sdpCallee) }
				switch order {
				case "cancel-first":
					r.caller.send(t, r.parley, cancel)
					answer()
				case "200-first":
					answer()
					r.caller.send(t, r.parley, cancel)
				default:
					var wg sync.WaitGroup
					start := make(chan struct{})
					wg.Go(func() { <-start; r.caller.send(t, r.parley, cancel) })
					wg.Go(func() { <-start; answer() })
					close(start)
					wg.Wait()
				}

				// The callee: 200 for a CANCEL that crossed its 200 (no 487,
				// the INVITE is already answered), then the ACK and a BYE.
				var calleeDone sync.WaitGroup
				calleeDone.Go(func() {
					deadline := time.Now().Add(5 * time.Second)
					var acked, byed bool
					for !(acked && byed) && time.Now().Before(deadline) {
						in := r.callee.poll(50*time.Millisecond, nil)
						if in == nil || in.req() == nil {
							continue
						}
						switch in.req().Method {
						case sip.CANCEL:
							r.callee.reply(t, in, 200, "OK", "", "")
						case sip.ACK:
							if byed {
								t.Errorf("callee got the ACK for its 200 after the BYE")
							}
							acked = true
						case sip.BYE:
							r.callee.reply(t, in, 200, "OK", "", "")
							byed = true
						}
					}
					if !acked || !byed {
						t.Errorf("callee: ACK %v, BYE %v; received:\n%s", acked, byed, r.callee.dump())
					}
				})

				if r.caller.expect(t, "200 to CANCEL", 5*time.Second, isResponse(sip.CANCEL, 200)) == nil {
					t.FailNow()
				}
				final := r.caller.expect(t, "final response to INVITE", 5*time.Second, isResponse(sip.INVITE))
				if final == nil {
					t.FailNow()
				}
				t.Logf("caller's INVITE got %d", final.res().StatusCode)
				defer calleeDone.Wait()
				switch code := final.res().StatusCode; code {
				case 487:
					caller.ackFailure(t, final.res(), br)
					time.Sleep(time.Second)
					for _, c := range r.s.Calls() {
						if c.State == "active" {
							t.Fatalf("BUG: the caller got 487 for its CANCEL, yet the call is active: the callee is connected to nobody until 64·T1 (%+v)", c)
						}
					}
				case 200:
					caller.remoteTag = sipmsg.Tag(final.res().To().Params)
					caller.ack(t, caller.cseq)
					// Back to back, ACK and BYE race inside parley; that is
					// TestRaceAckThenByeBackToBack's business, not this test's.
					time.Sleep(50 * time.Millisecond)
					caller.request(t, sip.BYE, "")
					r.caller.expect(t, "200 to BYE", 5*time.Second, isResponse(sip.BYE, 200))
				default:
					t.Fatalf("caller's INVITE answered %d, want 487 or 200", code)
				}
				calleeDone.Wait()
				r.wantClosed(t)
				if final.res().StatusCode == 487 {
					if n := r.counter(t, resultCancelled); n != 1 {
						t.Errorf("parley_calls_total{result=cancelled} = %v, want 1", n)
					}
					// The caller's INVITE failed: it has no dialog that a
					// BYE could end (RFC 3261 §12.3, §15).
					time.Sleep(100 * time.Millisecond)
					if byes := r.caller.all(isRequest(sip.BYE)); len(byes) > 0 {
						t.Errorf("BUG: parley sent %d BYE to a caller whose INVITE it answered 487 (Call-ID %s)", len(byes), sipmsg.CallID(byes[0].msg))
						for _, b := range byes {
							// As a phone would, so the BYE is not retransmitted for 32 s.
							r.caller.reply(t, b, 481, "Call/Transaction Does Not Exist", "", "")
						}
					}
				}
			})
		}
	}
}

// (3) BYE crossing a re-INVITE: the caller's re-INVITE is relayed, and the
// callee hangs up instead of answering it. Everything ends, and the pending
// re-INVITE gets a final response (RFC 3261 §15.1.2: 487 recommended).
func TestRaceByeCrossesReinvite(t *testing.T) {
	for _, calleeAnswers := range []bool{true, false} {
		name := "callee-answers-487"
		if !calleeAnswers {
			name = "callee-never-answers"
		}
		t.Run(name, func(t *testing.T) {
			r := newRig(t)
			e := r.establish(t)
			reSeq, reBranch := e.caller.request(t, sip.INVITE, sdpCaller)
			reinv := r.callee.expect(t, "re-INVITE", 5*time.Second, isRequest(sip.INVITE))
			if reinv == nil {
				t.FailNow()
			}
			e.callee.request(t, sip.BYE, "")
			if r.callee.expect(t, "final response to BYE", 5*time.Second, isResponse(sip.BYE, 200, 481)) == nil {
				t.FailNow()
			}
			bye := r.caller.expect(t, "BYE", 5*time.Second, isRequest(sip.BYE))
			if bye == nil {
				t.FailNow()
			}
			r.caller.reply(t, bye, 200, "OK", "", "")
			if calleeAnswers {
				r.callee.reply(t, reinv, 487, "Request Terminated", e.callee.localTag, "")
			}
			r.wantClosed(t)

			// 2 s is far below Timer B (32 s): parley owes the caller an
			// answer as soon as the dialog is gone.
			final := r.caller.poll(2*time.Second, withCSeq(reSeq, isResponse(sip.INVITE)))
			if final == nil {
				t.Fatalf("BUG: the caller's re-INVITE is still unanswered 2 s after the call closed; received:\n%s", r.caller.dump())
			}
			if code := final.res().StatusCode; code != 487 && code != 481 && code != 408 {
				t.Errorf("pending re-INVITE answered %d, want 487, 481 or 408", code)
			}
			e.caller.ackFailure(t, final.res(), reBranch)
		})
	}
}

// (4) BYE from both sides at once: each gets 200 (or 481 when the other's
// BYE already ended the dialog), and the call is closed, and counted, once.
func TestRaceByeBothSides(t *testing.T) {
	for i := range 5 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			r := newRig(t)
			e := r.establish(t)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for _, side := range []*dlg{e.caller, e.callee} {
				wg.Go(func() {
					<-start
					seq, _ := side.request(t, sip.BYE, "")
					// Until the BYE has its answer, and then until the
					// peer has heard nothing for 200 ms.
					answered := false
					until := time.Now().Add(5 * time.Second)
					for time.Now().Before(until) {
						in := side.p.poll(20*time.Millisecond, nil)
						switch {
						case in == nil:
							continue
						case in.req() != nil && in.req().Method == sip.BYE:
							// parley's BYE crossed ours: answer it, as a phone would.
							side.p.reply(t, in, 200, "OK", "", "")
						case in.res() != nil && in.res().CSeq().SeqNo == seq && in.res().CSeq().MethodName == sip.BYE:
							if c := in.res().StatusCode; c != 200 && c != 481 {
								t.Errorf("%s's BYE answered %d, want 200 or 481", side.p.name, c)
							}
							answered = true
						}
						if answered {
							until = time.Now().Add(200 * time.Millisecond)
						}
					}
					if !answered {
						t.Errorf("%s's BYE got no final response; received:\n%s", side.p.name, side.p.dump())
					}
				})
			}
			close(start)
			wg.Wait()
			r.wantClosed(t)
			if n := r.counter(t, resultAnswered); n != 1 {
				t.Errorf("parley_calls_total{result=answered} = %v, want 1", n)
			}
			moves := r.log.byCall()[e.id]
			if n := len(slices.DeleteFunc(slices.Clone(moves), func(m move) bool { return m.to != "terminating" })); n != 1 {
				t.Errorf("call moved %v: want one move to terminating", moves)
			}
		})
	}
}

// (5) The caller never ACKs the 200: parley retransmits it at T1, 2T1,
// 4T1… up to T2 (RFC 3261 §13.3.1.4) and, after 64·T1, acknowledges and
// hangs up the callee and sends the caller a BYE.
func TestRaceAckNeverArrives(t *testing.T) {
	if !inSmallT1(t) {
		return
	}
	r := newRig(t)
	caller, _ := r.dial(t)
	inv, callee := r.incoming(t)
	r.callee.reply(t, inv, 200, "OK", callee.localTag, sdpCallee)
	first := r.caller.expect(t, "200 to INVITE", 5*time.Second, isResponse(sip.INVITE, 200))
	if first == nil {
		t.FailNow()
	}
	caller.remoteTag = sipmsg.Tag(first.res().To().Params)
	r.wantState(t, "active")

	wait := 64*sip.T1 + sip.T2 + 2*time.Second
	ack := r.callee.expect(t, "ACK before the BYE", wait, isRequest(sip.ACK))
	bye := r.callee.expect(t, "BYE", wait, isRequest(sip.BYE))
	if ack == nil || bye == nil {
		t.FailNow()
	}
	r.callee.reply(t, bye, 200, "OK", "", "")
	if ack.n > bye.n {
		t.Error("callee got the BYE before the ACK for its 200")
	}
	cbye := r.caller.expect(t, "BYE", 2*time.Second, isRequest(sip.BYE))
	if cbye != nil {
		r.caller.reply(t, cbye, 200, "OK", "", "")
	}
	r.wantClosed(t)
	if n := r.counter(t, resultFailed); n != 1 {
		t.Errorf("parley_calls_total{result=failed} = %v, want 1", n)
	}

	oks := r.caller.all(isResponse(sip.INVITE, 200))
	if len(oks) < 4 {
		t.Fatalf("caller got %d copies of the 200, want the first and at least 3 retransmissions", len(oks))
	}
	var gaps []time.Duration
	for i := 1; i < len(oks); i++ {
		gaps = append(gaps, oks[i].at.Sub(oks[i-1].at))
	}
	t.Logf("retransmission gaps: %v", gaps)
	if gaps[0] < sip.T1*8/10 {
		t.Errorf("first retransmission after %v, want T1 = %v", gaps[0], sip.T1)
	}
	for i := 0; i+1 < len(gaps) && i < 3; i++ {
		if gaps[i+1] < gaps[i]*3/2 {
			t.Errorf("gap %d (%v) does not grow from gap %d (%v): want doubling up to T2", i+1, gaps[i+1], i, gaps[i])
		}
	}
	for i, g := range gaps {
		// T2 give or take scheduling delays under -race.
		if g > sip.T2*3/2 {
			t.Errorf("gap %d is %v, over T2 = %v", i, g, sip.T2)
		}
	}
	if d := bye.at.Sub(first.at); d < 64*sip.T1*9/10 || d > 64*sip.T1+sip.T2+sip.T1*4 {
		t.Errorf("BYE %v after the 200, want 64·T1 = %v (give or take one T2)", d, 64*sip.T1)
	}
}

// (6) A 2xx is retransmitted until its ACK comes; then the retransmissions
// stop and the callee gets its ACK, once.
func TestRace2xxRetransmittedUntilAck(t *testing.T) {
	if !inSmallT1(t) {
		return
	}
	r := newRig(t)
	caller, _ := r.dial(t)
	inv, callee := r.incoming(t)
	r.callee.reply(t, inv, 200, "OK", callee.localTag, sdpCallee)
	eventually(t, 5*time.Second, func() error {
		if n := len(r.caller.all(isResponse(sip.INVITE, 200))); n < 4 {
			return fmt.Errorf("caller got %d copies of the 200, want 4", n)
		}
		return nil
	})
	if acks := r.callee.all(isRequest(sip.ACK)); len(acks) != 0 {
		t.Fatalf("callee got an ACK before the caller sent one")
	}
	ok := r.caller.take(isResponse(sip.INVITE, 200))
	caller.remoteTag = sipmsg.Tag(ok.res().To().Params)
	caller.ack(t, caller.cseq)
	if r.callee.expect(t, "ACK", 5*time.Second, isRequest(sip.ACK)) == nil {
		t.FailNow()
	}
	before := len(r.caller.all(isResponse(sip.INVITE, 200)))
	time.Sleep(4 * sip.T2)
	// One retransmission may have been on its way as the ACK came.
	if after := len(r.caller.all(isResponse(sip.INVITE, 200))); after > before+1 {
		t.Errorf("200 retransmitted %d more times after the ACK", after-before)
	}
	if n := len(r.callee.all(isRequest(sip.ACK))); n != 1 {
		t.Errorf("callee got %d ACKs, want 1", n)
	}
	r.wantState(t, "active")

	caller.request(t, sip.BYE, "")
	bye := r.callee.expect(t, "BYE", 5*time.Second, isRequest(sip.BYE))
	if bye == nil {
		t.FailNow()
	}
	r.callee.reply(t, bye, 200, "OK", "", "")
	r.caller.expect(t, "200 to BYE", 5*time.Second, isResponse(sip.BYE, 200))
	r.wantClosed(t)
}

// (7) The callee retransmits its 2xx, as if parley's ACK were lost: each
// retransmission gets the same ACK again (RFC 3261 §13.2.2.4), and none is
// relayed to the caller.
func TestRaceCallee2xxRetransmitted(t *testing.T) {
	r := newRig(t)
	caller, _ := r.dial(t)
	inv, callee := r.incoming(t)
	ok200 := r.callee.reply(t, inv, 200, "OK", callee.localTag, sdpCallee)
	ok := r.caller.expect(t, "200 to INVITE", 5*time.Second, isResponse(sip.INVITE, 200))
	if ok == nil {
		t.FailNow()
	}
	caller.remoteTag = sipmsg.Tag(ok.res().To().Params)
	caller.ack(t, caller.cseq)
	first := r.callee.expect(t, "ACK", 5*time.Second, isRequest(sip.ACK))
	if first == nil {
		t.FailNow()
	}
	for i := range 3 {
		// The leg holds its ACK only weakly; the transaction must keep it
		// through a collection.
		runtime.GC()
		r.callee.send(t, inv.src, ok200)
		again := r.callee.expect(t, fmt.Sprintf("ACK for retransmission %d", i+1), 2*time.Second, isRequest(sip.ACK))
		if again == nil {
			t.FailNow()
		}
		a, b := again.req(), first.req()
		if a.CSeq().Value() != b.CSeq().Value() || sipmsg.CallID(a) != sipmsg.CallID(b) || sipmsg.Tag(a.To().Params) != sipmsg.Tag(b.To().Params) || branchOf(a) != branchOf(b) {
			t.Errorf("ACK %d differs from the first: %s vs %s", i+1, a.StartLine(), b.StartLine())
		}
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(r.caller.all(isResponse(sip.INVITE, 200))); n != 1 {
		t.Errorf("caller got %d copies of the 200, want 1: retransmissions from the callee are not relayed", n)
	}
	r.wantState(t, "active")

	caller.request(t, sip.BYE, "")
	bye := r.callee.expect(t, "BYE", 5*time.Second, isRequest(sip.BYE))
	if bye == nil {
		t.FailNow()
	}
	r.callee.reply(t, bye, 200, "OK", "", "")
	r.caller.expect(t, "200 to BYE", 5*time.Second, isResponse(sip.BYE, 200))
	r.wantClosed(t)
}

// (8) re-INVITE glare: caller and callee send a re-INVITE at once. At
// least one gets 491 (RFC 3261 §14.2), the call stays active, and parley
// never sends a phone an INVITE while that phone's own INVITE is pending
// on the same dialog (§14.1).
func TestRaceReinviteGlare(t *testing.T) {
	for i := range 5 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			r := newRig(t)
			e := r.establish(t)
			type outcome struct {
				code int
				// crossed is set when parley's INVITE reached this side
				// while its own was pending: normal when the two crossed
				// on the wire, a fault of parley's when it happens to both.
				crossed bool
			}
			results := map[string]*outcome{}
			var mu sync.Mutex
			start := make(chan struct{})
			var wg sync.WaitGroup
			for _, side := range []*dlg{e.caller, e.callee} {
				body := sdpCaller
				if side == e.callee {
					body = sdpCallee
				}
				wg.Go(func() {
					out := &outcome{}
					defer func() {
						mu.Lock()
						results[side.p.name] = out
						mu.Unlock()
					}()
					<-start
					seq, br := side.request(t, sip.INVITE, body)
					pending := true
					quietUntil := time.Now().Add(5 * time.Second)
					for time.Now().Before(quietUntil) {
						in := side.p.poll(20*time.Millisecond, nil)
						if in == nil {
							continue
						}
						if !pending {
							quietUntil = time.Now().Add(300 * time.Millisecond)
						}
						switch {
						case in.req() != nil && in.req().IsInvite():
							if pending {
								out.crossed = true
								side.p.reply(t, in, 491, "Request Pending", "", "")
							} else {
								side.p.reply(t, in, 200, "OK", "", body)
							}
						case in.res() != nil && in.res().CSeq().SeqNo == seq && in.res().CSeq().MethodName == sip.INVITE:
							res := in.res()
							if res.StatusCode < 200 {
								continue
							}
							if pending {
								out.code = res.StatusCode
								pending = false
								quietUntil = time.Now().Add(300 * time.Millisecond)
							}
							if res.StatusCode < 300 {
								side.ack(t, seq)
							} else {
								side.ackFailure(t, res, br)
							}
						}
					}
					if pending {
						t.Errorf("%s's re-INVITE got no final response; received:\n%s", side.p.name, side.p.dump())
					}
				})
			}
			close(start)
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
			c, ce := results["caller"], results["callee"]
			t.Logf("caller's re-INVITE got %d, callee's got %d", c.code, ce.code)
			if c.code != 491 && ce.code != 491 {
				t.Errorf("neither re-INVITE got 491: caller %d, callee %d", c.code, ce.code)
			}
			if c.crossed && ce.crossed {
				t.Errorf("BUG: parley relayed both re-INVITEs, each to a phone whose own re-INVITE was pending (RFC 3261 §14.1); it should have answered one of them 491 itself")
			}
			r.wantState(t, "active")
			r.wantGauges(t, gauges{"active": 1})

			e.caller.request(t, sip.BYE, "")
			bye := r.callee.expect(t, "BYE", 5*time.Second, isRequest(sip.BYE))
			if bye == nil {
				t.FailNow()
			}
			r.callee.reply(t, bye, 200, "OK", "", "")
			r.caller.expect(t, "200 to BYE", 5*time.Second, isResponse(sip.BYE, 200))
			r.wantClosed(t)
		})
	}
}

// The caller's ACK and BYE arrive back to back. parley handles each in its
// own goroutine, yet the callee must get the ACK for its 2xx before the BYE
// (RFC 3261 §13.2.2.4, §15; endCall's own comment says as much).
func TestRaceAckThenByeBackToBack(t *testing.T) {
	for i := range 10 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			r := newRig(t)
			caller, _ := r.dial(t)
			inv, callee := r.incoming(t)
			r.callee.reply(t, inv, 200, "OK", callee.localTag, sdpCallee)
			ok := r.caller.expect(t, "200 to INVITE", 5*time.Second, isResponse(sip.INVITE, 200))
			if ok == nil {
				t.FailNow()
			}
			caller.remoteTag = sipmsg.Tag(ok.res().To().Params)
			caller.ack(t, caller.cseq)
			caller.request(t, sip.BYE, "")
			ack := r.callee.expect(t, "ACK", 5*time.Second, isRequest(sip.ACK))
			bye := r.callee.expect(t, "BYE", 5*time.Second, isRequest(sip.BYE))
			if ack == nil || bye == nil {
				t.FailNow()
			}
			r.callee.reply(t, bye, 200, "OK", "", "")
			r.caller.expect(t, "200 to BYE", 5*time.Second, isResponse(sip.BYE, 200))
			r.wantClosed(t)
			if bye.n < ack.n {
				t.Errorf("BUG: parley sent the callee its BYE before the ACK for its 200")
			}
		})
	}
}
