//go:build linux

package media

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// benchPacketSize is an RTP packet of 20 ms of G.711: 12 bytes of header
// and 160 of payload.
const benchPacketSize = 172

// benchClient is one UDP socket of the test's phones, driven with sendmmsg
// and recvmmsg so that the client costs little next to the relay and
// allocates nothing.
type benchClient struct {
	fd   int
	addr netip.AddrPort

	bufs  [][benchPacketSize + 64]byte
	iov   []unix.Iovec
	msgs  []mmsghdr
	names []unix.RawSockaddrInet6
}

func newBenchClient(t testing.TB, batch int) *benchClient {
	t.Helper()
	fd, err := bindUDP(loopback, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	// Blocking, with a timeout, so a reader waits in the kernel.
	if err := unix.SetNonblock(fd, false); err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	c := &benchClient{
		fd:    fd,
		addr:  netip.AddrPortFrom(loopback, uint16(sa.(*unix.SockaddrInet4).Port)),
		bufs:  make([][benchPacketSize + 64]byte, batch),
		iov:   make([]unix.Iovec, batch),
		msgs:  make([]mmsghdr, batch),
		names: make([]unix.RawSockaddrInet6, batch),
	}
	for i := range batch {
		c.iov[i].Base = &c.bufs[i][0]
		c.msgs[i].hdr.Iov = &c.iov[i]
		c.msgs[i].hdr.SetIovlen(1)
		b := c.bufs[i][:]
		b[0], b[1] = 0x80, 0 // RTP version 2, PCMU
	}
	return c
}

// packet returns send buffer i, set up as an RTP packet to dst.
func (c *benchClient) packet(i int, dst *sockaddr, ssrc uint32, seq uint16) []byte {
	b := c.bufs[i][:benchPacketSize]
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], uint32(seq)*160)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	c.iov[i].SetLen(benchPacketSize)
	c.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&dst.raw))
	c.msgs[i].hdr.Namelen = dst.len
	return b
}

// send sends the first n packets set up with packet.
func (c *benchClient) send(t testing.TB, n int) {
	for i := 0; i < n; {
		sent, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(c.fd), uintptr(unsafe.Pointer(&c.msgs[i])), uintptr(n-i), 0, 0, 0)
		if errno != 0 {
			t.Errorf("sendmmsg: %v", errno)
			return
		}
		i += int(sent)
	}
}

// recv waits for datagrams and returns how many arrived (0 after the
// receive timeout); packet i is bufs[i][:msgs[i].n].
func (c *benchClient) recv() int {
	for i := range c.msgs {
		c.iov[i].SetLen(len(c.bufs[i]))
		c.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&c.names[i]))
		c.msgs[i].hdr.Namelen = unix.SizeofSockaddrInet6
	}
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(c.fd), uintptr(unsafe.Pointer(&c.msgs[0])), uintptr(len(c.msgs)), unix.MSG_WAITFORONE, 0, 0)
	if errno != 0 {
		return 0
	}
	return int(n)
}

// benchCall is one bridge with both sides latched to the test's clients.
type benchCall struct {
	b    *Bridge
	a, z sockaddr // parley's RTP ports for side A and side B
	seq  [2]uint16
}

// openBenchCalls opens n bridges and latches side A of each to ca and side
// B to cb.
func openBenchCalls(t testing.TB, r *Relay, n int, ca, cb *benchClient) []*benchCall {
	t.Helper()
	calls := make([]*benchCall, n)
	for i := range calls {
		b := openBridge(t, r)
		calls[i] = &benchCall{
			b: b,
			a: makeSockaddr(bridgeAddr(b, SideA, false)),
			z: makeSockaddr(bridgeAddr(b, SideB, false)),
		}
	}
	// Side B first: until side A latches its packets go nowhere.
	for _, side := range []Side{SideB, SideA} {
		c := cb
		if side == SideA {
			c = ca
		}
		for i, call := range calls {
			dst := &call.z
			if side == SideA {
				dst = &call.a
			}
			c.packet(0, dst, uint32(i), 0)
			c.send(t, 1)
		}
		waitFor(t, func() bool {
			for _, call := range calls {
				if call.b.Stats().Side(side).Packets == 0 {
					return false
				}
			}
			return true
		})
	}
	for got := 0; got < n; got += cb.recv() {
	}
	return calls
}

// relayCPU returns the CPU time the relay's workers spent handling events
// so far (system calls and the kernel work they do included; the Go
// scheduler's share of waking them is only in processCPU).
func relayCPU(r *Relay) time.Duration {
	var sum time.Duration
	for _, w := range r.workers {
		sum += time.Duration(w.cpu.Load())
	}
	return sum
}

// measureRelay makes r's workers account their CPU time.
func measureRelay(r *Relay) {
	for _, w := range r.workers {
		w.measure.Store(true)
	}
}

// processCPU returns the user and system time of the whole process.
func processCPU(t testing.TB) time.Duration {
	t.Helper()
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRelay pushes packets both ways through 100 bridges as fast as
// the client can, a window at a time. One op is one relayed packet. Besides
// ns/op it reports relay-cpu-ns/pkt, the CPU time of the relay's threads
// per packet (system calls and the kernel's loopback delivery they do
// included), and proc-cpu-ns/pkt, that of the whole process, client
// included.
func BenchmarkRelay(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("bridges=100/workers=%d", workers), func(b *testing.B) {
			benchmarkRelay(b, 100, workers)
		})
	}
}

func benchmarkRelay(b *testing.B, bridges, workers int) {
	const window = 32 // packets in flight each way
	r, _ := startRelay(b, relayBenchPorts, 2*bridges+20, WithRelayWorkers(workers))
	measureRelay(r)
	ca, cb := newBenchClient(b, window), newBenchClient(b, window)
	calls := openBenchCalls(b, r, bridges, ca, cb)
	before := r.counts()

	next := 0
	lost := 0
	b.ReportAllocs()
	cpu0, proc0 := relayCPU(r), processCPU(b)
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(window, (b.N-done+1)/2)
		for i := range n {
			call := calls[(next+i)%len(calls)]
			call.seq[0]++
			call.seq[1]++
			ca.packet(i, &call.a, 1, call.seq[0])
			cb.packet(i, &call.z, 2, call.seq[1])
		}
		next += n
		ca.send(b, n)
		cb.send(b, n)
		for _, c := range []*benchClient{cb, ca} {
			for got := 0; got < n; {
				k := c.recv()
				if k == 0 {
					lost += n - got
					break
				}
				got += k
			}
		}
		done += 2 * n
	}
	b.StopTimer()
	cpu, proc := relayCPU(r)-cpu0, processCPU(b)-proc0
	after := r.counts()
	relayed := after.forwarded - before.forwarded
	if relayed == 0 {
		b.Fatal("nothing relayed")
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(relayed), "relay-cpu-ns/pkt")
	b.ReportMetric(float64(proc.Nanoseconds())/float64(relayed), "proc-cpu-ns/pkt")
	if lost > 0 || after.dropped != before.dropped {
		b.ReportMetric(float64(lost), "lost")
		b.ReportMetric(float64(after.dropped-before.dropped), "dropped")
	}
}

// BenchmarkRelayLoad is the target load: 800 calls, each sending 50
// packets a second each way (80,000 packets/s relayed), spread evenly over
// each 20 ms, for two seconds per op; run it with -benchtime=1x or 3x. It
// reports loss, the added latency (send to receive, so the client's own
// scheduling is in it) and the CPU time per relayed packet.
func BenchmarkRelayLoad(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("calls=800/workers=%d", workers), func(b *testing.B) {
			benchmarkRelayLoad(b, workers)
		})
	}
}

func benchmarkRelayLoad(b *testing.B, workers int) {
	const (
		ncalls   = 800
		frame    = 20 * time.Millisecond
		slots    = 100 // per frame: a call sends in slot i%slots
		duration = 2 * time.Second
	)
	r, _ := startRelay(b, relayLoadPorts, 2*ncalls+100, WithRelayWorkers(workers))
	measureRelay(r)
	ca, cb := newBenchClient(b, 2*ncalls/slots), newBenchClient(b, 2*ncalls/slots)
	rxa, rxb := newBenchClient(b, 64), newBenchClient(b, 64)
	// Receivers use their own descriptors on the same sockets.
	rxa.fd, rxb.fd = ca.fd, cb.fd
	calls := openBenchCalls(b, r, ncalls, ca, cb)

	var (
		stop     atomic.Bool
		received atomic.Int64
		mu       sync.Mutex
		lat      []time.Duration
	)
	base := time.Now()
	var wg sync.WaitGroup
	for _, c := range []*benchClient{rxa, rxb} {
		wg.Go(func() {
			mine := make([]time.Duration, 0, 2*int(duration/frame)*ncalls)
			for !stop.Load() {
				n := c.recv()
				now := time.Since(base)
				for i := range n {
					sent := time.Duration(binary.BigEndian.Uint64(c.bufs[i][12:20]))
					mine = append(mine, now-sent)
				}
				received.Add(int64(n))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}

	before := r.counts()
	cpu0, proc0 := relayCPU(r), processCPU(b)
	sent := 0
	b.ResetTimer()
	for range b.N {
		start := time.Since(base)
		for slot := 0; time.Since(base)-start < duration; slot++ {
			due := start + time.Duration(slot)*frame/slots
			if d := due - time.Since(base); d > 0 {
				time.Sleep(d)
			}
			n := 0
			for i := slot % slots; i < ncalls; i += slots {
				call := calls[i]
				call.seq[0]++
				call.seq[1]++
				stamp := uint64(time.Since(base))
				binary.BigEndian.PutUint64(ca.packet(n, &call.a, 1, call.seq[0])[12:], stamp)
				binary.BigEndian.PutUint64(cb.packet(n, &call.z, 2, call.seq[1])[12:], stamp)
				n++
			}
			ca.send(b, n)
			cb.send(b, n)
			sent += 2 * n
		}
	}
	elapsed := b.Elapsed()
	b.StopTimer()
	time.Sleep(300 * time.Millisecond) // stragglers
	stop.Store(true)
	wg.Wait()
	cpu, proc := relayCPU(r)-cpu0, processCPU(b)-proc0
	after := r.counts()

	relayed := after.forwarded - before.forwarded
	slices.Sort(lat)
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds())
	}
	b.ReportMetric(float64(sent)/elapsed.Seconds(), "pkts/s")
	b.ReportMetric(100*float64(int64(sent)-received.Load())/float64(sent), "loss-%")
	b.ReportMetric(q(0.5), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(q(1), "max-µs")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(relayed), "relay-cpu-ns/pkt")
	b.ReportMetric(float64(proc.Nanoseconds())/float64(relayed), "proc-cpu-ns/pkt")
	b.ReportMetric(float64(after.dropped-before.dropped), "dropped")
}
