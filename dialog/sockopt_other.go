//go:build !linux

package dialog

import "net"

// growBuffers asks for large socket buffers.
func growBuffers(c *net.UDPConn, size int) {
	_ = c.SetReadBuffer(size)
	_ = c.SetWriteBuffer(size)
}
