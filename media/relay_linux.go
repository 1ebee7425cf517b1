//go:build linux

package media

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Sizes of a worker's batches.
const (
	// batchSize is how many datagrams one recvmmsg or sendmmsg moves.
	batchSize = 32
	// maxEvents is how many ready sockets one epoll_wait reports.
	maxEvents = 256
	// drainRounds bounds the batches read from one socket per wake-up, so
	// a flooded port cannot starve the others; epoll is level-triggered and
	// reports what is left next time.
	drainRounds = 4
)

// relaySocket is a non-blocking UDP socket and its slot in its worker's
// table (-1 when not registered).
type relaySocket struct {
	fd   int
	slot int32
}

// sockaddr is a socket address in the kernel's form, ready for sendmmsg.
// RawSockaddrInet6 is large and aligned enough to hold an IPv4 one too.
type sockaddr struct {
	raw unix.RawSockaddrInet6
	len uint32
}

// mmsghdr is struct mmsghdr of recvmmsg(2) and sendmmsg(2), which
// golang.org/x/sys does not define.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// slot says which bridge socket an epoll event is about. gen changes each
// time the slot is freed, so an event read before a bridge closed is never
// applied to a socket that reused its slot or descriptor number.
type slot struct {
	b    *Bridge
	side Side
	sock int
	gen  uint32
}

// worker is one event loop: an epoll set over the sockets of its bridges,
// and the buffers it reads packets into. Packets are sent on from the
// buffer they were read into, by sendmmsg, so nothing is copied or
// allocated per packet.
type worker struct {
	workerBase
	r *Relay

	// Guarded by mu; epfd and evfd are -1 while Run does not run.
	epfd, evfd int
	slots      []slot
	free       []int32

	file *os.File        // epfd in Go's netpoller
	rc   syscall.RawConn // of file

	// measure makes the loop add the CPU time it spends to cpu; only
	// benchmarks set it.
	measure atomic.Bool
	cpu     atomic.Int64

	// Only the loop touches these.
	events [maxEvents]unix.EpollEvent
	rbuf   [batchSize][maxDatagram]byte
	rname  [batchSize]unix.RawSockaddrInet6
	riov   [batchSize]unix.Iovec
	rmsg   [batchSize]mmsghdr
	siov   [batchSize]unix.Iovec
	smsg   [batchSize]mmsghdr
	srtp   [batchSize]bool // smsg[i] is RTP, not RTCP
}

func newWorker(r *Relay) (*worker, error) {
	w := &worker{r: r, epfd: -1, evfd: -1}
	for i := range batchSize {
		w.riov[i].Base = &w.rbuf[i][0]
		w.riov[i].SetLen(maxDatagram)
		w.rmsg[i].hdr.Name = (*byte)(unsafe.Pointer(&w.rname[i]))
		w.rmsg[i].hdr.Namelen = unix.SizeofSockaddrInet6
		w.rmsg[i].hdr.Iov = &w.riov[i]
		w.rmsg[i].hdr.SetIovlen(1)
		w.smsg[i].hdr.Iov = &w.siov[i]
		w.smsg[i].hdr.SetIovlen(1)
	}
	return w, nil
}

// start creates the epoll set and adds the sockets of the bridges opened so
// far. The loop's stop signal is an eventfd in the same set.
func (w *worker) start() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("epoll_create1", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: -1}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(evfd)
		unix.Close(epfd)
		return os.NewSyscallError("epoll_ctl", err)
	}
	// Non-blocking, os.NewFile puts the set into Go's netpoller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(evfd)
		unix.Close(epfd)
		return os.NewSyscallError("fcntl", err)
	}
	w.epfd, w.evfd = epfd, evfd
	w.file = os.NewFile(uintptr(epfd), "epoll")
	if w.rc, err = w.file.SyscallConn(); err != nil {
		w.closeEpoll()
		return err
	}
	for i := range w.slots {
		sl := &w.slots[i]
		if sl.b == nil {
			continue
		}
		if err := w.watch(sl.b.sides[sl.side].socks[sl.sock].fd, int32(i)); err != nil {
			w.closeEpoll()
			return err
		}
	}
	return nil
}

// stop closes the epoll set once the loop has returned.
func (w *worker) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closeEpoll()
}

func (w *worker) closeEpoll() {
	if w.epfd >= 0 {
		unix.Close(w.evfd)
		w.file.Close() // closes epfd
		w.epfd, w.evfd, w.file, w.rc = -1, -1, nil, nil
	}
}

// wake tells the loop to return.
func (w *worker) wake() {
	one := [8]byte{1}
	if _, err := unix.Write(w.evfd, one[:]); err != nil {
		w.r.log.Warn("waking relay worker failed", "err", err)
	}
}

// watch adds fd to the epoll set, tagged with its slot and generation.
func (w *worker) watch(fd int, idx int32) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: idx, Pad: int32(w.slots[idx].gen)}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// add gives b's sockets slots, and watches them if the loop runs. If that
// fails it closes b's sockets.
func (w *worker) add(b *Bridge) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for s := range b.sides {
		for k := range b.sides[s].socks {
			var idx int32
			if n := len(w.free); n > 0 {
				idx, w.free = w.free[n-1], w.free[:n-1]
			} else {
				idx = int32(len(w.slots))
				w.slots = append(w.slots, slot{})
			}
			sl := &w.slots[idx]
			sl.b, sl.side, sl.sock = b, Side(s), k
			b.sides[s].socks[k].slot = idx
			if w.epfd >= 0 {
				if err := w.watch(b.sides[s].socks[k].fd, idx); err != nil {
					w.remove(b, false)
					return err
				}
			}
		}
	}
	w.attach(b)
	return nil
}

// remove takes b's sockets out of the epoll set and frees their slots, and
// closes them unless keep (the relay parks them). The caller holds mu, so
// the loop is not using them.
func (w *worker) remove(b *Bridge, keep bool) {
	for s := range b.sides {
		for k := range b.sides[s].socks {
			sk := &b.sides[s].socks[k]
			if sk.slot >= 0 {
				if w.epfd >= 0 {
					_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, sk.fd, nil)
				}
				sl := &w.slots[sk.slot]
				sl.b = nil
				sl.gen++
				w.free = append(w.free, sk.slot)
				sk.slot = -1
			}
			if !keep {
				closeSocket(*sk)
				sk.fd = -1
			}
		}
	}
	w.detach(b)
}

// loop is the worker's goroutine: wait for ready sockets, forward what they
// hold, check for silent bridges, until wake.
//
// It never blocks in epoll_wait itself: a goroutine blocked in a system
// call keeps its P (its right to run Go code) until the runtime's monitor
// takes it back, which can take milliseconds, and meanwhile another worker
// whose packets are ready waits for a P. Instead the epoll set's own
// descriptor sits in Go's netpoller, which parks the goroutine without a
// thread and wakes it when the set has events; the loop then polls the set
// with a zero timeout until it is empty.
func (w *worker) loop() error {
	var tick time.Duration
	if w.r.timeout > 0 {
		tick = idleTick(w.r.timeout)
	}
	stop := false
	work := func(fd uintptr) bool {
		if w.measure.Load() {
			t0 := threadCPUTime()
			defer func() { w.cpu.Add(threadCPUTime() - t0) }()
		}
		for range 64 {
			n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, fd,
				uintptr(unsafe.Pointer(&w.events[0])), maxEvents, 0, 0, 0)
			if errno != 0 || n == 0 {
				return false // empty: park until the set has events
			}
			w.mu.Lock()
			for i := range int(n) {
				ev := &w.events[i]
				if ev.Fd < 0 {
					stop = true
					continue
				}
				w.drain(ev.Fd, uint32(ev.Pad))
			}
			if tick > 0 {
				if now := w.r.now(); now-w.lastScan >= int64(tick) {
					w.lastScan = now
					w.scanIdle(now, int64(w.r.timeout))
				}
			}
			w.mu.Unlock()
			if stop {
				return true
			}
		}
		return true // busy: let Read return, then come back
	}
	for !stop {
		if tick > 0 {
			_ = w.file.SetReadDeadline(time.Now().Add(tick))
		}
		err := w.rc.Read(work)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			w.mu.Lock()
			now := w.r.now()
			w.lastScan = now
			w.scanIdle(now, int64(w.r.timeout))
			w.mu.Unlock()
		default:
			return fmt.Errorf("media: waiting on epoll: %w", err)
		}
	}
	return nil
}

// threadCPUTime returns the CPU time of the calling thread in nanoseconds.
func threadCPUTime() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return ts.Nano()
}

// drain reads the datagrams waiting on the socket of slot idx and forwards
// them, a batch at a time.
func (w *worker) drain(idx int32, gen uint32) {
	if int(idx) >= len(w.slots) {
		return
	}
	sl := &w.slots[idx]
	if sl.b == nil || sl.gen != gen {
		return // closed since epoll_wait returned
	}
	b, in, sock := sl.b, sl.side, sl.sock
	fd := b.sides[in].socks[sock].fd
	for range drainRounds {
		n := w.recv(fd)
		if n <= 0 {
			return
		}
		now := w.r.now()
		queued, outFd := 0, -1
		for i := range n {
			m := &w.rmsg[i]
			size, flags := int(m.n), m.hdr.Flags
			from := addrPortOf(&w.rname[i])
			m.hdr.Namelen, m.hdr.Flags = unix.SizeofSockaddrInet6, 0
			if flags&unix.MSG_TRUNC != 0 {
				b.drop(in) // larger than any audio packet: not ours
				continue
			}
			out, outSock, dst, rtp, pkt := b.route(in, sock, w.rbuf[i][:size], from, now)
			if dst == nil {
				continue
			}
			// One sendmmsg per run of packets leaving the same socket; on a
			// muxed side RTP and RTCP may leave different ones.
			ofd := out.socks[outSock].fd
			if ofd != outFd && queued > 0 {
				w.send(b, in, outFd, queued)
				queued = 0
			}
			outFd = ofd
			sm := &w.smsg[queued]
			sm.hdr.Name = (*byte)(unsafe.Pointer(&dst.sa.raw))
			sm.hdr.Namelen = dst.sa.len
			w.siov[queued].Base = &pkt[0]
			w.siov[queued].SetLen(len(pkt))
			w.srtp[queued] = rtp
			queued++
		}
		if queued > 0 {
			w.send(b, in, outFd, queued)
		}
		if n < batchSize {
			return
		}
	}
}

// recv reads up to batchSize datagrams from fd into rbuf and returns how
// many, 0 if none. recvmmsg on a non-blocking socket returns at once, so
// the raw system call spares the scheduler hand-off of a blocking one.
func (w *worker) recv(fd int) int {
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd),
		uintptr(unsafe.Pointer(&w.rmsg[0])), batchSize, unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0
	}
	return int(n)
}

// send sends the first n queued datagrams out of fd and counts them for
// side in. A datagram the kernel refuses is dropped, never retried: late
// audio is worse than lost audio.
func (w *worker) send(b *Bridge, in Side, fd, n int) {
	for i := 0; i < n; {
		sent, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(fd),
			uintptr(unsafe.Pointer(&w.smsg[i])), uintptr(n-i), unix.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == unix.EINTR:
			continue
		case errno == unix.EAGAIN:
			// Socket buffer full: drop the rest of the batch.
			for ; i < n; i++ {
				b.drop(in)
			}
			return
		case errno != 0 || sent == 0:
			// sendmmsg fails on the first datagram that cannot go; skip it.
			b.drop(in)
			i++
			continue
		}
		rtp := 0
		for j := i; j < i+int(sent); j++ {
			if w.srtp[j] {
				rtp++
			}
		}
		b.forwarded(in, rtp)
		i += int(sent)
	}
}

// openSockets binds non-blocking UDP sockets for RTP on port and RTCP on
// port+1 of addr.
func openSockets(addr netip.Addr, port int) (rtp, rtcp relaySocket, err error) {
	a, err := bindUDP(addr, port)
	if err != nil {
		return relaySocket{fd: -1, slot: -1}, relaySocket{fd: -1, slot: -1}, err
	}
	c, err := bindUDP(addr, port+1)
	if err != nil {
		unix.Close(a)
		return relaySocket{fd: -1, slot: -1}, relaySocket{fd: -1, slot: -1}, err
	}
	return relaySocket{fd: a, slot: -1}, relaySocket{fd: c, slot: -1}, nil
}

func bindUDP(addr netip.Addr, port int) (int, error) {
	family := unix.AF_INET6
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: port, Addr: addr.As16()}
	if addr.Is4() {
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: port, Addr: addr.As4()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	if family == unix.AF_INET6 {
		// An IPv6 side is IPv6 only: IPv4 phones get IPv4 sides, and the
		// same port number stays free for an IPv4 socket.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			unix.Close(fd)
			return -1, os.NewSyscallError("setsockopt", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("binding %v: %w", netip.AddrPortFrom(addr, uint16(port)), os.NewSyscallError("bind", err))
	}
	return fd, nil
}

// sendPacket sends one datagram out of s to dst, without blocking: one
// that cannot go at once is dropped, like a forwarded one.
func sendPacket(s relaySocket, dst *endpoint, pkt []byte) error {
	_, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(s.fd),
		uintptr(unsafe.Pointer(&pkt[0])), uintptr(len(pkt)), unix.MSG_DONTWAIT,
		uintptr(unsafe.Pointer(&dst.sa.raw)), uintptr(dst.sa.len))
	if errno != 0 {
		return os.NewSyscallError("sendto", errno)
	}
	return nil
}

// drainSocket reads and drops whatever waits on s.
func drainSocket(s relaySocket) {
	var buf [2048]byte
	for range 1024 {
		if _, _, err := unix.Recvfrom(s.fd, buf[:], unix.MSG_DONTWAIT); err != nil {
			return
		}
	}
}

// closeSocket closes s, if open.
func closeSocket(s relaySocket) {
	if s.fd >= 0 {
		unix.Close(s.fd)
	}
}

// makeSockaddr converts ap to the kernel's form.
func makeSockaddr(ap netip.AddrPort) sockaddr {
	var s sockaddr
	if a := ap.Addr(); a.Is4() {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&s.raw))
		sa.Family = unix.AF_INET
		sa.Addr = a.As4()
		putPort(&sa.Port, ap.Port())
		s.len = unix.SizeofSockaddrInet4
	} else {
		s.raw.Family = unix.AF_INET6
		s.raw.Addr = a.As16()
		putPort(&s.raw.Port, ap.Port())
		s.len = unix.SizeofSockaddrInet6
	}
	return s
}

// addrPortOf converts a source address recvmmsg filled in. It does not
// allocate.
func addrPortOf(raw *unix.RawSockaddrInet6) netip.AddrPort {
	switch raw.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(raw))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), getPort(&sa.Port))
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(raw.Addr), getPort(&raw.Port))
	}
	return netip.AddrPort{}
}

// putPort and getPort access a port stored in network byte order.
func putPort(p *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}

func getPort(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}
