//go:build !linux

package transport

import "net"

// GrowBuffers asks for large socket buffers.
func GrowBuffers(c *net.UDPConn, size int) {
	_ = c.SetReadBuffer(size)
	_ = c.SetWriteBuffer(size)
}
