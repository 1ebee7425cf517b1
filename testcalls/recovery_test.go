package testcalls

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/redis/go-redis/v9"

	"github.com/parley-sip/parley/dialog/store"
)

// Relay port blocks of the recovery tests (see rtpRange).
var (
	rangeRecover      = rtpRange{26000, 26999}
	rangeRecoverRedis = rtpRange{27000, 27999}
	rangeUpgrade      = rtpRange{28000, 28199}
	rangeRefreshDown  = rtpRange{28200, 28299}
	rangeBadCkpt      = rtpRange{28300, 28399}
	rangeRedisAway    = rtpRange{28800, 28899}
	rangeUpgradeRedis = rtpRange{28900, 28999}
	rangeBadCkptRedis = rtpRange{22900, 22999}
	rangeByeDown      = rtpRange{29100, 29199}
)

// rtpPacketEvery is the packet interval of a flow: 20 ms audio.
const rtpPacketEvery = 20 * time.Millisecond

// flow is one phone's media in a recovery test: it sends an RTP packet
// every 20 ms to where parley's SDP said, and notes when each packet from
// parley arrives.
type flow struct {
	conn *net.UDPConn

	mu  sync.Mutex
	dst netip.AddrPort
	got []time.Time
	// ssrcs counts the packets received from each SSRC: which phone's
	// media arrived.
	ssrcs map[uint32]int
}

// newFlow binds a flow's socket on 127.0.0.1; it is closed when t ends.
func newFlow(t *testing.T) *flow {
	t.Helper()
	return newFlowAt(t, net.IPv4(127, 0, 0, 1))
}

// newFlowAt is newFlow on the loopback address ip (127.0.0.1, ::1).
func newFlowAt(t *testing.T, ip net.IP) *flow {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &flow{conn: conn}
}

func (f *flow) port() int { return f.conn.LocalAddr().(*net.UDPAddr).Port }

// setDst points the flow's packets at dst.
func (f *flow) setDst(dst netip.AddrPort) {
	f.mu.Lock()
	f.dst = dst
	f.mu.Unlock()
}

// run sends and receives until ctx ends; wg waits for both goroutines.
func (f *flow) run(ctx context.Context, wg *sync.WaitGroup, ssrc uint32) {
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			_ = f.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			n, _, err := f.conn.ReadFromUDPAddrPort(buf)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				return
			}
			var pkt rtp.Packet
			if pkt.Unmarshal(buf[:n]) != nil {
				continue
			}
			f.mu.Lock()
			f.got = append(f.got, time.Now())
			if f.ssrcs == nil {
				f.ssrcs = map[uint32]int{}
			}
			f.ssrcs[pkt.SSRC]++
			f.mu.Unlock()
		}
	})
	wg.Go(func() {
		tick := time.NewTicker(rtpPacketEvery)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			f.mu.Lock()
			dst := f.dst
			f.mu.Unlock()
			pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(i),
				Timestamp: uint32(i * 160), SSRC: ssrc}, Payload: make([]byte, 160)}
			raw, _ := pkt.Marshal()
			_, _ = f.conn.WriteToUDPAddrPort(raw, dst)
		}
	})
}

// fromSSRC returns how many packets of SSRC ssrc the flow received.
func (f *flow) fromSSRC(ssrc uint32) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ssrcs[ssrc]
}

// firstAfter returns when the first packet after t arrived.
func (f *flow) firstAfter(t time.Time) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, _ := slices.BinarySearchFunc(f.got, t, func(a, b time.Time) int { return a.Compare(b) })
	if i == len(f.got) {
		return time.Time{}, false
	}
	return f.got[i], true
}

// lastBefore returns when the last packet before t arrived.
func (f *flow) lastBefore(t time.Time) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, _ := slices.BinarySearchFunc(f.got, t, func(a, b time.Time) int { return a.Compare(b) })
	if i == 0 {
		return time.Time{}, false
	}
	return f.got[i-1], true
}

// recoveryCall is one call of a recovery test: the caller's and the
// callee's media, and the call as each phone holds it.
type recoveryCall struct {
	mc             *mediaCall
	caller, callee *flow
}

// placeRecoveryCalls has caller call callee n times, each call with its
// own media flowing both ways through parley's relay.
func placeRecoveryCalls(t *testing.T, ctx context.Context, wg *sync.WaitGroup, caller, callee *phone, n int) []*recoveryCall {
	t.Helper()
	host := "127.0.0.1"
	calls := make([]*recoveryCall, 0, n)
	for i := range n {
		rc := &recoveryCall{caller: newFlow(t), callee: newFlow(t)}
		cp, ep := rc.caller.port(), rc.callee.port()
		caller.setSDP(func(offer []byte) []byte { return mediaOffer(host, cp, "0", "8", "101") })
		callee.setSDP(func(offer []byte) []byte { return mediaAnswer(offer, host, ep) })
		rc.mc = mustMediaCall(t, caller, callee)
		rc.caller.setDst(rc.mc.CallerSees.Addr)
		rc.callee.setDst(rc.mc.CalleeSees.Addr)
		rc.caller.run(ctx, wg, uint32(2*i+1))
		rc.callee.run(ctx, wg, uint32(2*i+2))
		calls = append(calls, rc)
	}
	return calls
}

// mediaCalls starts a caller (1001) and a callee (1002, registered, set up
// first by prepare when it is not nil) at parley p, places n calls between
// them with RTP flowing both ways through the relay, and waits for the
// media. The flows stop, and their goroutines are waited for, when t ends.
func mediaCalls(t *testing.T, p *parley, n int, prepare func(callee *phone)) (caller, callee *phone, calls []*recoveryCall) {
	t.Helper()
	caller = newPhone(t, "1001", p.SIPAddr, "udp")
	callee = newPhone(t, "1002", p.SIPAddr, "udp")
	callee.mustRegister()
	if prepare != nil {
		prepare(callee)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	calls = placeRecoveryCalls(t, ctx, &wg, caller, callee, n)
	waitMedia(t, calls, time.Now(), 3*time.Second)
	return caller, callee, calls
}

// waitMedia waits until every flow has received a packet after since.
func waitMedia(t *testing.T, calls []*recoveryCall, since time.Time, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for _, rc := range calls {
		for _, f := range []*flow{rc.caller, rc.callee} {
			for {
				if _, ok := f.firstAfter(since); ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no RTP through parley within %v on port %d", d, f.port())
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}

// kill9 kills parley's process group with SIGKILL and waits for it.
func (p *parley) kill9(t *testing.T) {
	t.Helper()
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		t.Fatalf("parley (pid %d) still running after SIGKILL", p.cmd.Process.Pid)
	}
}

// restart starts parley again with the same config (and so the same ports
// and store), its output in a new log file, and waits for /readyz.
func (p *parley) restart(t *testing.T, n int) {
	t.Helper()
	p.exited = make(chan struct{})
	p.LogPath = fmt.Sprintf("%s.%d", p.LogPath, n)
	p.run(t, exec.Command(parleyBin, "-config", p.ConfigPath))
}

// gapReport is what a restart cost each call's media.
type gapReport struct {
	// Gaps are, per flow, the time between the last packet before the
	// stop and the first after it.
	Gaps []time.Duration
	// Ready is how long the new process took to answer /readyz;
	// WorstAfterReady how long after that the last flow got media.
	Ready, WorstAfterReady time.Duration
}

func (g gapReport) String() string {
	s := slices.Clone(g.Gaps)
	slices.Sort(s)
	med, worst := s[len(s)/2], s[len(s)-1]
	return fmt.Sprintf("%d flows: gap median %v (%d packets), worst %v (%d packets); new process ready in %v, media back on every flow %v after that",
		len(s), med.Round(time.Millisecond), int(med/rtpPacketEvery)-1, worst.Round(time.Millisecond), int(worst/rtpPacketEvery)-1,
		g.Ready.Round(time.Millisecond), g.WorstAfterReady.Round(time.Millisecond))
}

// measureGaps waits for media on every flow after stoppedAt, wanting it
// within within of ready, and reports the gaps.
func measureGaps(t *testing.T, calls []*recoveryCall, stoppedAt, started, ready time.Time, within time.Duration) gapReport {
	t.Helper()
	waitMedia(t, calls, ready, within+time.Second)
	g := gapReport{Ready: ready.Sub(started)}
	for _, rc := range calls {
		for _, f := range []*flow{rc.caller, rc.callee} {
			first, _ := f.firstAfter(stoppedAt)
			last, _ := f.lastBefore(stoppedAt)
			g.Gaps = append(g.Gaps, first.Sub(last))
			if d := first.Sub(ready); d > g.WorstAfterReady {
				g.WorstAfterReady = d
			}
		}
	}
	if g.WorstAfterReady > within {
		t.Errorf("media came back on every call only %v after the restart was ready, want within %v", g.WorstAfterReady, within)
	}
	return g
}

// hangupAll hangs every call up from its caller, wants 200 for each BYE
// and the BYE on the callee's side, and then an empty call table.
func hangupAll(t *testing.T, p *parley, callee *phone, calls []*recoveryCall) {
	t.Helper()
	for i, rc := range calls {
		rc.mc.Out.hangup(t)
		if _, err := callee.waitEvent(evBye, callTimeout); err != nil {
			t.Fatalf("callee got %d of %d BYEs: %v", i, len(calls), err)
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		left := p.apiCalls(t)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls left in the call table after every call was hung up: %+v", len(left), left[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// recoveryConfig is the config of a recovery test over relay ports rng.
func recoveryConfig(t *testing.T, rng rtpRange, extra string) parleyConfig {
	return parleyConfig{
		StorePath: t.TempDir(),
		Extra:     rng.yaml(nil, "") + "sessions: {max_calls: 0, max_calls_per_user: 0, checkpoint: true}\n" + extra,
	}
}

// TestRecoverAfterKill9 is part 7's crash test on the embedded store: 100
// calls with RTP both ways through the relay, kill -9, a restart on the
// same data directory, and every call carries audio again within 2 s of
// the new process being ready; then each call is hung up from a phone.
func TestRecoverAfterKill9(t *testing.T) {
	recoverAfterKill9(t, recoveryConfig(t, rangeRecover, ""), "embedded store")
}

func recoverAfterKill9(t *testing.T, cfg parleyConfig, what string) {
	const n = 100
	p := startParley(t, cfg)
	_, callee, calls := mediaCalls(t, p, n, nil)
	// Let the last checkpoints reach the store: they are written in
	// batches, a few milliseconds after each answer.
	time.Sleep(500 * time.Millisecond)

	stoppedAt := time.Now()
	p.kill9(t)
	time.Sleep(300 * time.Millisecond)
	started := time.Now()
	p.restart(t, 2)
	ready := time.Now()
	if got := len(p.apiCalls(t)); got != n {
		t.Errorf("restarted parley holds %d calls, want %d", got, n)
	}
	g := measureGaps(t, calls, stoppedAt, started, ready, 2*time.Second)
	t.Logf("kill -9 and restart with %d calls (%s): %v", n, what, g)
	hangupAll(t, p, callee, calls)
}

// TestUpgradeWithoutBYE stops parley with SIGUSR2 while calls are up (no
// BYE to anyone), starts a new process on the same store, and the calls
// carry on: media flows and each ends normally from a phone.
func TestUpgradeWithoutBYE(t *testing.T) {
	upgradeWithoutBYE(t, recoveryConfig(t, rangeUpgrade, ""), "embedded store")
}

// TestUpgradeWithoutBYERedis is TestUpgradeWithoutBYE on Redis.
func TestUpgradeWithoutBYERedis(t *testing.T) {
	rs := startRedis(t)
	cfg := recoveryConfig(t, rangeUpgradeRedis, "")
	cfg.Redis = rs.URL
	upgradeWithoutBYE(t, cfg, "Redis store")
}

func upgradeWithoutBYE(t *testing.T, cfg parleyConfig, what string) {
	const n = 10
	p := startParley(t, cfg)
	_, callee, calls := mediaCalls(t, p, n, nil)

	stoppedAt := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		t.Fatal("parley did not exit within 5 s of SIGUSR2")
	}
	if p.err != nil {
		t.Errorf("parley exited with %v after SIGUSR2, want status 0", p.err)
	}
	callee.noEvent(evBye, 200*time.Millisecond)
	p.waitLogFile(t, p.LogPath, "SIGUSR2: stopping without BYE")
	started := time.Now()
	p.restart(t, 2)
	g := measureGaps(t, calls, stoppedAt, started, time.Now(), 2*time.Second)
	t.Logf("upgrade (SIGUSR2, then a new process) with %d calls (%s): %v", n, what, g)
	hangupAll(t, p, callee, calls)
}

// waitLogFile wants s in the log file at path (of a process that ended).
func (p *parley) waitLogFile(t *testing.T, path, s string) {
	t.Helper()
	if b, err := os.ReadFile(path); err != nil || !strings.Contains(string(b), s) {
		t.Errorf("parley's log %s does not say %q:\n%s", path, s, tail(path, 30))
	}
}

// TestRefreshDueWhileDown: parley refreshes both legs of a call every 45 s
// (Session-Expires 90, RFC 4028). It is killed 35 s after the answer and
// started again 15 s later, so the refresh fell due while it was down: the
// restored call sends it at once, both phones answer, and the call goes on
// until the caller hangs up.
func TestRefreshDueWhileDown(t *testing.T) {
	t.Parallel()
	needSipp(t)
	uas := startScenarioUAS(t, "sipp-uas-timer", scenarioPath(t, "uas_timer.xml"),
		"-key", "se", fmt.Sprint(timerSE), "-key", "refresher", "uac")
	cfg := timerConfig(rangeRefreshDown, uas.Port)
	cfg.StorePath = t.TempDir()
	pl := startParley(t, cfg)
	uac := startScenarioUAC(t, "sipp-uac-parley-refreshes", pl, scenarioPath(t, "uac_timer_parley_refreshes.xml"), "9202",
		"-key", "se", fmt.Sprint(timerSE))
	// Under a loaded machine (the whole suite, -race) the set-up can take
	// a while; the schedule below counts from the answer.
	pl.waitMetric(t, 20*time.Second, equals(1), "parley_calls", "state", "active")
	answered := time.Now()
	time.Sleep(35 * time.Second)
	pl.kill9(t)
	time.Sleep(15 * time.Second)
	restarted := time.Now()
	pl.restart(t, 2)

	code := uac.wait(t, 60*time.Second)
	msgs := readSippMsgs(t, uac)
	defer dumpMsgs(t, "caller", msgs)
	if code != 0 {
		t.Errorf("caller scenario exit code %d, want 0 (it waits up to 70 s for parley's refresh)", code)
	}
	refreshes := findMsgs(msgs, isRefresh)
	if len(refreshes) == 0 {
		t.Fatal("the restored call never refreshed the caller's leg")
	}
	r := refreshes[0]
	if r.At.Before(restarted) {
		t.Errorf("refresh at %v, before the restart at %v", r.At, restarted)
	}
	t.Logf("refresh due %v after the answer was sent %v after it, %v after the restart",
		time.Duration(timerSE/2)*time.Second, r.At.Sub(answered).Round(100*time.Millisecond), r.At.Sub(restarted).Round(100*time.Millisecond))
	if code := uas.wait(t, 10*time.Second); code != 0 {
		t.Errorf("callee scenario exit code %d, want 0 (parley's refresh, then the caller's BYE)", code)
	}
	umsgs := readSippMsgs(t, uas)
	defer dumpMsgs(t, "callee", umsgs)
	checkCalleeRefreshed(t, umsgs)
	pl.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
}

// TestRecoverBadCheckpoints: of three calls, one's relay port is taken by
// another program while parley is down, and a checkpoint that does not
// parse is in the store. The restart restores the third call, ends the
// first cleanly with BYE to both phones and a log line naming the reason,
// drops the garbage with a log line, and is ready as usual.
func TestRecoverBadCheckpoints(t *testing.T) {
	cfg := recoveryConfig(t, rangeBadCkpt, "")
	recoverBadCheckpoints(t, cfg, func() {
		db, err := store.OpenBolt(filepath.Join(cfg.StorePath, "calls.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.Write(map[string][]byte{"garbage": []byte("{not json")}, nil); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRecoverBadCheckpointsRedis is TestRecoverBadCheckpoints with the
// checkpoints in Redis: the garbage is planted among the node's calls there.
func TestRecoverBadCheckpointsRedis(t *testing.T) {
	rs := startRedis(t)
	cfg := recoveryConfig(t, rangeBadCkptRedis, "node: {id: bad-ckpt-node}\n")
	cfg.Redis = rs.URL
	recoverBadCheckpoints(t, cfg, func() {
		c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", rs.Port)})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Set(ctx, "parley:call:garbage", "{not json", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.SAdd(ctx, "parley:node:bad-ckpt-node:calls", "garbage").Err(); err != nil {
			t.Fatal(err)
		}
	})
}

// recoverBadCheckpoints runs the bad-checkpoints test over cfg; plant puts
// a checkpoint that does not parse in the store while parley is down.
func recoverBadCheckpoints(t *testing.T, cfg parleyConfig, plant func()) {
	p := startParley(t, cfg)
	caller, callee, calls := mediaCalls(t, p, 3, nil)
	time.Sleep(300 * time.Millisecond)
	p.kill9(t)

	taken := calls[0].mc.CallerSees.Addr
	squatter, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(taken))
	if err != nil {
		t.Fatalf("taking relay port %v: %v", taken, err)
	}
	defer squatter.Close()
	plant()

	p.restart(t, 2)
	// The call whose port was taken ends: BYE to both phones.
	if _, err := callee.waitEvent(evBye, 5*time.Second); err != nil {
		t.Fatalf("callee of the unrestorable call: %v", err)
	}
	p.waitLog(t, `msg="call not restored: media"`, 3*time.Second)
	p.waitLog(t, `reason=unreadable`, 3*time.Second)
	if got := len(p.apiCalls(t)); got != 2 {
		t.Errorf("%d calls after the restart, want 2", got)
	}
	waitMedia(t, calls[1:], time.Now(), 2*time.Second)
	hangupAll(t, p, callee, calls[1:])
	// The caller of the unrestorable call got its BYE too.
	if _, err := caller.waitEvent(evBye, time.Second); err != nil {
		t.Errorf("caller of the unrestorable call: %v", err)
	}
}

// TestRecoverAfterKill9Redis is TestRecoverAfterKill9 with the checkpoints
// (and the registrations) in a real redis-server: store.redis.
func TestRecoverAfterKill9Redis(t *testing.T) {
	rs := startRedis(t)
	cfg := recoveryConfig(t, rangeRecoverRedis, "")
	cfg.Redis = rs.URL
	recoverAfterKill9(t, cfg, "Redis store")
}

// TestByeWhileDown: a phone hangs up while parley is down. Its BYE goes
// unanswered and is retransmitted (RFC 3261 §17.1.2); the retransmission
// that reaches the restarted parley gets 200, and the other phone its BYE.
func TestByeWhileDown(t *testing.T) {
	p := startParley(t, recoveryConfig(t, rangeByeDown, ""))
	_, callee, calls := mediaCalls(t, p, 1, nil)
	time.Sleep(200 * time.Millisecond)
	p.kill9(t)

	byeDone := make(chan error, 1)
	sent := time.Now()
	go func() {
		bctx, bcancel := context.WithTimeout(context.Background(), callTimeout)
		defer bcancel()
		byeDone <- calls[0].mc.Out.Session.Bye(bctx)
	}()
	time.Sleep(1200 * time.Millisecond) // the BYE and its first retransmissions find no one
	p.restart(t, 2)
	select {
	case err := <-byeDone:
		if err != nil {
			t.Fatalf("caller's BYE after the restart: %v, want 200", err)
		}
		t.Logf("BYE sent while parley was down answered %v later, by the restarted process", time.Since(sent).Round(10*time.Millisecond))
	case <-time.After(callTimeout):
		t.Fatal("caller's BYE never answered")
	}
	if _, err := callee.waitEvent(evBye, 3*time.Second); err != nil {
		t.Fatalf("callee: %v", err)
	}
	p.waitMetric(t, 3*time.Second, equals(0), "parley_calls")
}
