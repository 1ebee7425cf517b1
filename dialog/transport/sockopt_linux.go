package transport

import (
	"net"
	"syscall"
)

// GrowBuffers asks for large socket buffers. SO_RCVBUFFORCE passes
// net.core.rmem_max when parley runs with CAP_NET_ADMIN; otherwise the
// plain request is capped by the kernel.
func GrowBuffers(c *net.UDPConn, size int) {
	_ = c.SetReadBuffer(size)
	_ = c.SetWriteBuffer(size)
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, size)
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, size)
	})
}
