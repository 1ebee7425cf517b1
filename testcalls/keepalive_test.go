package testcalls

import (
	"net"
	"testing"
	"time"
)

// TestTCPKeepalivePong: a phone on TCP sends the RFC 5626 §3.5.1 ping (a
// double CRLF) and parley answers with the pong (a single CRLF), keeping
// the connection, and the NAT binding in front of the phone, alive.
func TestTCPKeepalivePong(t *testing.T) {
	pl := startParley(t, parleyConfig{})
	conn, err := net.DialTimeout("tcp", pl.SIPAddr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 2 {
		if _, err := conn.Write([]byte("\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 16)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("ping %d: no pong: %v", i, err)
		}
		if string(buf[:n]) != "\r\n" {
			t.Fatalf("ping %d: got %q, want a CRLF pong", i, buf[:n])
		}
	}
}
