package dialog

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startServer runs a Server on loopback ephemeral ports until the test ends.
func startServer(t *testing.T, yaml string, opts ...Option) *Server {
	t.Helper()
	s := newTestServer(t, yaml, opts...)
	s.listeners = nil
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("Serve: %v", err)
	case <-time.After(5 * time.Second):
		cancel()
		t.Fatal("not ready")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return s
}

// exchange sends one datagram to addr and returns the first reply, or ""
// after the timeout.
func exchange(t *testing.T, addr, msg string, timeout time.Duration) string {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

func request(method, extra string) string {
	return method + " sip:parley.lab SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-" + method + "-" + sipmsg.NewTag() + ";rport\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:1001@parley.lab>;tag=f1\r\nTo: <sip:parley.lab>\r\n" +
		"Call-ID: " + sipmsg.NewTag() + "\r\nCSeq: 1 " + method + "\r\n" + extra + "Content-Length: 0\r\n\r\n"
}

func TestServeAnswersAndStops(t *testing.T) {
	s := startServer(t, "sip:\n  listen: [udp://127.0.0.1:0, tcp://127.0.0.1:0]\nusers: []\n")
	udp := s.Addr("udp")
	if udp == "" || s.Addr("tcp") == "" {
		t.Fatalf("addresses: udp=%q tcp=%q", udp, s.Addr("tcp"))
	}
	tests := []struct {
		name, msg, status, contains string
	}{
		{"options", request("OPTIONS", ""), "SIP/2.0 200", "Allow: INVITE"},
		{"unknown method", request("FOO", ""), "SIP/2.0 405", "Allow:"},
		{"bad max-forwards", strings.Replace(request("OPTIONS", ""), "Max-Forwards: 70", "Max-Forwards: x", 1), "SIP/2.0 400", "Max-Forwards"},
		{"line without colon", request("OPTIONS", "not a header\r\n"), "SIP/2.0 400", "not a header"},
		{"require", request("OPTIONS", "Require: 100rel\r\n"), "SIP/2.0 420", "Unsupported: 100rel"},
		{"bye outside dialog", request("BYE", ""), "SIP/2.0 481", ""},
		{"subscribe", request("SUBSCRIBE", "Event: presence\r\n"), "SIP/2.0 489", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := exchange(t, udp, tt.msg, 2*time.Second)
			if !strings.HasPrefix(got, tt.status) || !strings.Contains(got, tt.contains) {
				t.Fatalf("got:\n%s\nwant %s containing %q", got, tt.status, tt.contains)
			}
		})
	}
	if got := exchange(t, udp, "\x01\x02garbage\r\n\r\n", 300*time.Millisecond); got != "" {
		t.Fatalf("garbage got an answer: %q", got)
	}
	if got := exchange(t, udp, request("OPTIONS", ""), 2*time.Second); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Fatalf("OPTIONS after garbage: %q", got)
	}
}
