//go:build linux

package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchSize is how many datagrams one sendmmsg or recvmmsg moves.
const batchSize = 64

// mmsghdr is struct mmsghdr of recvmmsg(2) and sendmmsg(2).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// batchConn moves datagrams in batches with sendmmsg and recvmmsg through
// Go's poller, so one system call carries up to batchSize packets.
// (golang.org/x/net/ipv4's ReadBatch/WriteBatch do the same; this keeps
// parley's module free of a dependency only the load generator needs.)
type batchConn struct {
	conn *net.UDPConn
	raw  syscall.RawConn

	// Send side: buffers, iovecs, destination addresses, headers.
	sbufs  [batchSize][]byte
	siov   [batchSize]unix.Iovec
	saddr  [batchSize]unix.RawSockaddrInet4
	shdrs  [batchSize]mmsghdr
	rbufs  [batchSize][]byte
	riov   [batchSize]unix.Iovec
	rhdrs  [batchSize]mmsghdr
	rcount int
}

// newBatchConn binds a UDP socket at addr with buffers of bufBytes (forced
// past rmem_max when running as root).
func newBatchConn(addr string, bufBytes int) (*batchConn, error) {
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp4", ua)
	if err != nil {
		return nil, err
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetReadBuffer(bufBytes)
	_ = conn.SetWriteBuffer(bufBytes)
	_ = raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, bufBytes)
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, bufBytes)
	})
	b := &batchConn{conn: conn, raw: raw}
	for i := range batchSize {
		b.sbufs[i] = make([]byte, 1500)
		b.rbufs[i] = make([]byte, 1500)
		b.riov[i].Base = &b.rbufs[i][0]
		b.riov[i].SetLen(len(b.rbufs[i]))
		b.rhdrs[i].hdr.Iov = &b.riov[i]
		b.rhdrs[i].hdr.SetIovlen(1)
	}
	return b, nil
}

// LocalAddr is where the socket is bound.
func (b *batchConn) LocalAddr() netip.AddrPort {
	return b.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Close closes the socket; a blocked read returns.
func (b *batchConn) Close() error { return b.conn.Close() }

// sendBuf returns the buffer of slot i, for the caller to fill.
func (b *batchConn) sendBuf(i int) []byte { return b.sbufs[i] }

// setSend makes slot i a datagram of n bytes to dst.
func (b *batchConn) setSend(i, n int, dst netip.AddrPort) {
	a := &b.saddr[i]
	a.Family = unix.AF_INET
	p := dst.Port()
	a.Port = p>>8 | p<<8 // network byte order
	a.Addr = dst.Addr().As4()
	b.siov[i].Base = &b.sbufs[i][0]
	b.siov[i].SetLen(n)
	h := &b.shdrs[i].hdr
	h.Name = (*byte)(unsafe.Pointer(a))
	h.Namelen = unix.SizeofSockaddrInet4
	h.Iov = &b.siov[i]
	h.SetIovlen(1)
}

// send sends slots 0..n-1 and returns how many the kernel took. A datagram
// refused with an error (e.g. ECONNREFUSED from an earlier ICMP) is skipped
// and counted in failed.
func (b *batchConn) send(n int) (sent, failed int, err error) {
	off := 0
	for off < n {
		var k int
		var errno syscall.Errno
		werr := b.raw.Write(func(fd uintptr) bool {
			r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.shdrs[off])), uintptr(n-off), 0, 0, 0)
			if e == unix.EAGAIN {
				return false
			}
			k, errno = int(r), e
			return true
		})
		if werr != nil {
			return sent, failed, werr
		}
		if errno != 0 {
			if errno == unix.ECONNREFUSED || errno == unix.EPERM || errno == unix.ENOBUFS {
				// The first datagram of the rest failed: skip it.
				failed++
				off++
				continue
			}
			return sent, failed, fmt.Errorf("sendmmsg: %w", errno)
		}
		sent += k
		off += k
	}
	return sent, failed, nil
}

// recv blocks until at least one datagram arrives and returns how many
// slots hold one; slot i is recvd(i).
func (b *batchConn) recv() (int, error) {
	for i := range batchSize {
		b.rhdrs[i].hdr.Flags = 0
		b.rhdrs[i].len = 0
	}
	var k int
	var errno syscall.Errno
	rerr := b.raw.Read(func(fd uintptr) bool {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.rhdrs[0])), batchSize, unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN {
			return false
		}
		k, errno = int(r), e
		return true
	})
	if rerr != nil {
		return 0, rerr
	}
	if errno != 0 {
		if errno == unix.ECONNREFUSED {
			return 0, nil
		}
		return 0, fmt.Errorf("recvmmsg: %w", errno)
	}
	b.rcount = k
	return k, nil
}

// recvd is datagram i of the last recv.
func (b *batchConn) recvd(i int) []byte { return b.rbufs[i][:b.rhdrs[i].len] }

// errClosed reports whether err means the socket was closed.
func errClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
