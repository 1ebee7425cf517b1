//go:build linux

// Command rtpload is the load generator of parley's media relay benchmark
// (testcalls/bench/media.sh). It sets up N calls through a relay, sends
// 50 RTP packets per second each way on every call (PCMA, 172-byte
// packets), receives them all, and prints loss, one-way latency through the
// relay and the relay's CPU time per relayed packet.
//
// Relays:
//
//	-relay parley     calls through parley with SIP: rtpload is the caller
//	                  (INVITE 9<index> to -sip, which must trust 127.0.0.1
//	                  and route ^9(\d+)$ to -sip-listen) and the callee.
//	-relay rtpengine  offer/answer/delete over rtpengine's ng protocol (-ng).
//	-relay direct     no relay: the two sides send to each other, to show
//	                  what the generator itself adds.
//
// All calls share one UDP socket per side: a relay latches on each call's
// own port, so one source address for many calls is fine. Sockets move
// packets with sendmmsg/recvmmsg in batches of 64 and a paced sender.
// Each payload carries the call, the direction, a sequence number and the
// monotonic send time, so the receiver counts loss and duplicates exactly
// and measures delay (both ends are on this host).
//
// The last line of output is machine-readable: "RESULT key=value ...".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// relay sets calls up on a media relay and tears them down.
type relay interface {
	name() string
	// setup returns, per call, where side A sends (the relay's caller-facing
	// port) and where side B sends (its callee-facing port).
	setup(ctx context.Context, calls int, a, b netip.AddrPort) (aDst, bDst []netip.AddrPort, err error)
	teardown(ctx context.Context) error
}

// directRelay is no relay at all.
type directRelay struct{}

func (directRelay) name() string { return "direct" }
func (directRelay) setup(_ context.Context, calls int, a, b netip.AddrPort) (aDst, bDst []netip.AddrPort, err error) {
	aDst, bDst = make([]netip.AddrPort, calls), make([]netip.AddrPort, calls)
	for i := range calls {
		aDst[i], bDst[i] = b, a
	}
	return aDst, bDst, nil
}
func (directRelay) teardown(context.Context) error { return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "rtpload:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		relayName = flag.String("relay", "parley", "parley, rtpengine or direct")
		calls     = flag.Int("calls", 100, "concurrent calls")
		duration  = flag.Duration("duration", 20*time.Second, "how long media flows")
		pps       = flag.Int("pps", 50, "packets per second per call and direction")
		pid       = flag.Int("pid", 0, "the relay's process id, for its CPU time (0: not measured)")
		sipAddr   = flag.String("sip", "127.0.0.1:25060", "parley's SIP address")
		sipListen = flag.String("sip-listen", "127.0.0.1:25090", "rtpload's SIP address (parley's route target)")
		setupRate = flag.Int("setup-rate", 200, "calls set up per second (parley)")
		ngAddr    = flag.String("ng", "127.0.0.1:2223", "rtpengine's ng control address")
		aAddr     = flag.String("a", "127.0.0.1:0", "side A (caller) RTP socket")
		bAddr     = flag.String("b", "127.0.0.1:0", "side B (callee) RTP socket")
		bufBytes  = flag.Int("sockbuf", 16<<20, "socket buffer size in bytes")
		timeout   = flag.Duration("timeout", 0, "overall limit (0: duration + 3 min)")
	)
	flag.Parse()
	if *calls < 1 || *pps < 1 || *duration <= 0 {
		return errors.New("-calls, -pps and -duration must be positive")
	}
	if *timeout == 0 {
		*timeout = *duration + 3*time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	var rl relay
	switch *relayName {
	case "parley":
		ap, err := netip.ParseAddrPort(*sipAddr)
		if err != nil {
			return fmt.Errorf("-sip: %w", err)
		}
		rl = &parleyRelay{proxy: ap, listen: *sipListen, rate: *setupRate, workers: 64}
	case "rtpengine":
		r, err := newRTPEngineRelay(*ngAddr)
		if err != nil {
			return err
		}
		rl = r
	case "direct":
		rl = directRelay{}
	default:
		return fmt.Errorf("unknown -relay %q", *relayName)
	}

	a, err := newBatchConn(*aAddr, *bufBytes)
	if err != nil {
		return fmt.Errorf("side A socket: %w", err)
	}
	defer a.Close()
	b, err := newBatchConn(*bAddr, *bufBytes)
	if err != nil {
		return fmt.Errorf("side B socket: %w", err)
	}
	defer b.Close()

	t0 := time.Now()
	aDst, bDst, err := rl.setup(ctx, *calls, a.LocalAddr(), b.LocalAddr())
	if err != nil {
		_ = rl.teardown(context.Background())
		return fmt.Errorf("%s: setup: %w", rl.name(), err)
	}
	setupTime := time.Since(t0)
	fmt.Fprintf(os.Stderr, "rtpload: %s: %d calls set up in %v\n", rl.name(), *calls, setupTime.Round(time.Millisecond))
	relayPorts := map[uint16]bool{}
	for i := range *calls {
		relayPorts[aDst[i].Port()] = true
		relayPorts[bDst[i].Port()] = true
	}
	ownPorts := map[uint16]bool{a.LocalAddr().Port(): true, b.LocalAddr().Port(): true}
	if *relayName == "direct" {
		relayPorts = map[uint16]bool{}
	}

	count := int(duration.Seconds() * float64(*pps))
	period := time.Second / time.Duration(*pps)
	ra := newReceiver(a, dirBtoA, *calls, count)
	rb := newReceiver(b, dirAtoB, *calls, count)
	var rwg sync.WaitGroup
	var recvErr [2]error
	rwg.Add(2)
	go func() { defer rwg.Done(); recvErr[0] = ra.run() }()
	go func() { defer rwg.Done(); recvErr[1] = rb.run() }()

	sa := &sender{conn: a, dir: dirAtoB, dsts: aDst, period: period, count: count}
	sb := &sender{conn: b, dir: dirBtoA, dsts: bDst, period: period, count: count}

	// Counters before the media starts.
	pidStr := strconv.Itoa(*pid)
	relayCPU0, relayCPUErr := time.Duration(0), error(nil)
	if *pid > 0 {
		relayCPU0, relayCPUErr = cpuTime(pidStr)
	}
	selfCPU0, _ := cpuTime("self")
	rcvbuf0, inerr0 := udpCounter("RcvbufErrors"), udpCounter("InErrors")
	ownDrops0, relayDrops0 := socketDrops(ownPorts), socketDrops(relayPorts)

	start := time.Now().Add(20 * time.Millisecond)
	stopSend := make(chan struct{})
	go func() { <-ctx.Done(); close(stopSend) }()
	var swg sync.WaitGroup
	var sendErr [2]error
	swg.Add(2)
	go func() { defer swg.Done(); sendErr[0] = sa.run(start, stopSend) }()
	go func() { defer swg.Done(); sendErr[1] = sb.run(start, stopSend) }()
	swg.Wait()
	sendTime := time.Since(start)
	// Drain: until nothing arrived for 300 ms, at most 3 s.
	drainUntil := time.Now().Add(3 * time.Second)
	for time.Now().Before(drainUntil) {
		last := max(ra.lastNS.Load(), rb.lastNS.Load())
		if ra.got.Load()+rb.got.Load() >= sa.sent.Load()+sb.sent.Load() || nowNS()-last > int64(300*time.Millisecond) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	wall := time.Since(start)

	relayCPU1 := time.Duration(0)
	if *pid > 0 && relayCPUErr == nil {
		relayCPU1, relayCPUErr = cpuTime(pidStr)
	}
	selfCPU1, _ := cpuTime("self")
	rcvbuf1, inerr1 := udpCounter("RcvbufErrors"), udpCounter("InErrors")
	ownDrops1, relayDrops1 := socketDrops(ownPorts), socketDrops(relayPorts)

	a.Close()
	b.Close()
	rwg.Wait()
	tdErr := rl.teardown(context.Background())

	for _, err := range append(sendErr[:], recvErr[:]...) {
		if err != nil {
			return err
		}
	}
	sent := sa.sent.Load() + sb.sent.Load()
	got := ra.got.Load() + rb.got.Load()
	lost := sent - got
	lossPct := 0.0
	if sent > 0 {
		lossPct = 100 * float64(lost) / float64(sent)
	}
	usPerPkt := func(d time.Duration) string {
		if got == 0 {
			return "-"
		}
		return strconv.FormatFloat(float64(d.Microseconds())/float64(got), 'f', 2, 64)
	}
	relayCPU, relayUS := "-", "-"
	if *pid > 0 && relayCPUErr == nil {
		relayCPU = strconv.FormatInt((relayCPU1 - relayCPU0).Milliseconds(), 10)
		relayUS = usPerPkt(relayCPU1 - relayCPU0)
	} else if relayCPUErr != nil {
		fmt.Fprintf(os.Stderr, "rtpload: relay CPU time: %v\n", relayCPUErr)
	}
	maxNS := max(ra.maxNS.Load(), rb.maxNS.Load())
	late := max(sa.late.Load(), sb.late.Load())
	fields := []string{
		"relay=" + rl.name(),
		"calls=" + strconv.Itoa(*calls),
		"pps_per_call_dir=" + strconv.Itoa(*pps),
		"secs=" + strconv.FormatFloat(sendTime.Seconds(), 'f', 1, 64),
		"setup_secs=" + strconv.FormatFloat(setupTime.Seconds(), 'f', 2, 64),
		"sent=" + strconv.FormatInt(sent, 10),
		"received=" + strconv.FormatInt(got, 10),
		"lost=" + strconv.FormatInt(lost, 10),
		"loss_pct=" + strconv.FormatFloat(lossPct, 'f', 4, 64),
		"calls_with_loss=" + strconv.Itoa(ra.callsWithLoss()+rb.callsWithLoss()),
		"dups=" + strconv.FormatInt(ra.dups.Load()+rb.dups.Load(), 10),
		"stray=" + strconv.FormatInt(ra.wrong.Load()+rb.wrong.Load(), 10),
		"send_failed=" + strconv.FormatInt(sa.failed.Load()+sb.failed.Load(), 10),
		"p50_us=" + strconv.Itoa(percentile(0.50, ra, rb)),
		"p99_us=" + strconv.Itoa(percentile(0.99, ra, rb)),
		"p999_us=" + strconv.Itoa(percentile(0.999, ra, rb)),
		"max_us=" + strconv.FormatInt(maxNS/1000, 10),
		"relay_cpu_ms=" + relayCPU,
		"relay_us_per_pkt=" + relayUS,
		"gen_send_pps=" + strconv.FormatFloat(float64(sent)/sendTime.Seconds(), 'f', 0, 64),
		"gen_recv_pps=" + strconv.FormatFloat(float64(got)/wall.Seconds(), 'f', 0, 64),
		"gen_max_lag_ms=" + strconv.FormatFloat(float64(late)/1e6, 'f', 1, 64),
		"gen_cpu_ms=" + strconv.FormatInt((selfCPU1-selfCPU0).Milliseconds(), 10),
		"gen_us_per_pkt=" + usPerPkt(selfCPU1-selfCPU0),
		"gen_sock_drops=" + strconv.FormatInt(ownDrops1-ownDrops0, 10),
		"relay_sock_drops=" + strconv.FormatInt(relayDrops1-relayDrops0, 10),
		"rcvbuf_errors=" + strconv.FormatInt(rcvbuf1-rcvbuf0, 10),
		"udp_in_errors=" + strconv.FormatInt(inerr1-inerr0, 10),
	}
	fmt.Println("RESULT " + strings.Join(fields, " "))
	if tdErr != nil {
		fmt.Fprintf(os.Stderr, "rtpload: %s: teardown: %v\n", rl.name(), tdErr)
	}
	return nil
}
