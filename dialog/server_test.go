package dialog

import (
	"context"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/parley-sip/parley/dialog/sipmsg"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startServer runs a Server on loopback ephemeral ports until the test ends.
func startServer(t testing.TB, yaml string, opts ...Option) *Server {
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
		{"unknown method", request("FOO", ""), "SIP/2.0 501", "Allow:"},
		{"known method not served", request("PUBLISH", ""), "SIP/2.0 405", "Allow:"},
		{"SIP/7.0", strings.Replace(request("OPTIONS", ""), "SIP/2.0\r\n", "SIP/7.0\r\n", 1), "SIP/2.0 505", "SIP/7.0"},
		{"unknown URI scheme", strings.Replace(request("OPTIONS", ""), "sip:parley.lab SIP", "nobody:knows SIP", 1), "SIP/2.0 416", ""},
		{"atypical URI scheme", strings.Replace(request("OPTIONS", ""), "sip:parley.lab SIP", "soap.beep://192.0.2.103:3002 SIP", 1), "SIP/2.0 416", "soap.beep"},
		{"request line with two spaces", strings.Replace(request("OPTIONS", ""), "OPTIONS sip", "OPTIONS  sip", 1), "SIP/2.0 400", "Request-Line"},
		{"NUL in a header", request("OPTIONS", "Subject: a\x00b\r\n"), "SIP/2.0 400", "control character in Subject"},
		{"NUL in the From", strings.Replace(request("OPTIONS", ""), "tag=f1", "tag=f\x001", 1), "SIP/2.0 400", "control character in From"},
		{"Content-Length larger than the datagram", strings.Replace(request("OPTIONS", ""), "Content-Length: 0", "Content-Length: 500", 1) + "v=0\r\n", "SIP/2.0 400", "Content-Length 500 is larger than the 5 bytes"},
		{"negative Content-Length", strings.Replace(request("OPTIONS", ""), "Content-Length: 0", "Content-Length: -3", 1), "SIP/2.0 400", "malformed Content-Length"},
		{"two CSeq", request("OPTIONS", "CSeq: 2 OPTIONS\r\n"), "SIP/2.0 400", "more than one CSeq"},
		{"INVITE with a body that is not SDP", strings.Replace(request("INVITE", "Content-Type: text/plain\r\n"), "Content-Length: 0\r\n\r\n", "Content-Length: 2\r\n\r\nhi", 1), "SIP/2.0 415", "Accept: application/sdp"},
		{"INVITE whose Accept rules out SDP", request("INVITE", "Accept: text/nobodyKnowsThis\r\n"), "SIP/2.0 406", ""},
		{"bad max-forwards", strings.Replace(request("OPTIONS", ""), "Max-Forwards: 70", "Max-Forwards: x", 1), "SIP/2.0 400", "Max-Forwards"},
		{"line without colon", request("OPTIONS", "not a header\r\n"), "SIP/2.0 400", "not a header"},
		{"require", request("OPTIONS", "Require: precondition\r\n"), "SIP/2.0 420", "Unsupported: precondition"},
		{"bye outside dialog", request("BYE", ""), "SIP/2.0 481", ""},
		{"subscribe to an unserved package", request("SUBSCRIBE", "Event: message-summary\r\n"), "SIP/2.0 489", ""},
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
	noVia := strings.Replace(request("OPTIONS", ""), "Via:", "X-Not-Via:", 1)
	if got := exchange(t, udp, noVia, 300*time.Millisecond); got != "" {
		t.Fatalf("a request without Via got an answer: %q", got)
	}
	if got := exchange(t, udp, request("OPTIONS", ""), 2*time.Second); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Fatalf("OPTIONS after garbage: %q", got)
	}
}

// TestAllowListsWhatParleyDoes: Allow names the methods parley serves or
// relays inside a call, PRACK only while 100rel is supported, and no
// method parley refuses outside a dialog without serving it.
func TestAllowListsWhatParleyDoes(t *testing.T) {
	methods := map[string]bool{}
	for _, m := range strings.Split(allowHeader, ",") {
		methods[strings.TrimSpace(m)] = true
	}
	for _, m := range []string{"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "UPDATE", "INFO", "MESSAGE", "NOTIFY", "REFER", "SUBSCRIBE", "REGISTER"} {
		if !methods[m] {
			t.Errorf("Allow %q lacks %s", allowHeader, m)
		}
	}
	if methods["PRACK"] != supported["100rel"] {
		t.Errorf("Allow %q: PRACK listed %v, 100rel supported %v", allowHeader, methods["PRACK"], supported["100rel"])
	}
	for _, m := range []string{"PUBLISH"} {
		if methods[m] {
			t.Errorf("Allow %q lists %s, which parley does not serve", allowHeader, m)
		}
	}
}

// TestServeFailsWhenAListenerCannotGoOn: a TCP listening socket that
// breaks (here shut down under it, so accept fails with EINVAL) stops the
// Server, and Serve returns the listener's error, so parley exits
// non-zero rather than serving on without it.
func TestServeFailsWhenAListenerCannotGoOn(t *testing.T) {
	s := newTestServer(t, "sip:\n  listen: [udp://127.0.0.1:0, tcp://127.0.0.1:0]\nusers: []\n")
	s.listeners = nil
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("not ready")
	}
	raw, err := s.listenerFor("tcp", "").TCP.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	_ = raw.Control(func(fd uintptr) { _ = syscall.Shutdown(int(fd), syscall.SHUT_RDWR) })
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "tcp://") {
			t.Fatalf("Serve returned %v, want the TCP listener's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve went on without its TCP listener")
	}
}
