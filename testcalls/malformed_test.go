package testcalls

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sendUDP sends payload to addr from a fresh socket and returns what comes
// back within wait (nil if nothing).
func sendUDP(t *testing.T, addr string, payload string, wait time.Duration) []byte {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteTo([]byte(payload), raddr); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65535)
	n, _, err := conn.ReadFrom(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// rawRequest builds a request from local (host:port) with the given extra
// header lines; the Via, Call-ID and CSeq are valid.
func rawRequest(method, target, local, callID string, extra ...string) string {
	lines := []string{
		fmt.Sprintf("%s sip:%s SIP/2.0", method, target),
		fmt.Sprintf("Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s;rport", local, callID),
		"From: <sip:1001@parley.lab>;tag=raw" + callID,
		"To: <sip:" + target + ">",
		"Call-ID: " + callID,
		"CSeq: 1 " + method,
	}
	lines = append(lines, extra...)
	lines = append(lines, "Content-Length: 0", "", "")
	return strings.Join(lines, "\r\n")
}

// TestMalformedMessages: garbage gets no reply, a recognisable request with
// a broken header gets 400, and parley keeps answering afterwards.
func TestMalformedMessages(t *testing.T) {
	pl := startParley(t, parleyConfig{})
	// The reply goes to the Via sent-by; rport makes parley use our source.
	const local = "127.0.0.1:9"

	t.Run("garbage gets no reply", func(t *testing.T) {
		for _, g := range []string{
			"\x00\x01\x02garbage\xff\xfe",
			"hello parley\r\n\r\n",
			"INVITE\r\n\r\n",
			strings.Repeat("A", 2000),
		} {
			if b := sendUDP(t, pl.SIPAddr, g, 500*time.Millisecond); b != nil {
				t.Errorf("garbage %q got a reply:\n%s", g[:min(len(g), 20)], b)
			}
		}
	})

	broken := []struct{ name, header string }{
		{"Max-Forwards not a number", "Max-Forwards: lots"},
		{"unterminated Contact", "Contact: <sip:1001@127.0.0.1:5999"},
		{"header line without a colon", "This line is not a header"},
	}
	for i, b := range broken {
		t.Run("400 for "+b.name, func(t *testing.T) {
			callID := fmt.Sprintf("broken-%d-%d", i, time.Now().UnixNano())
			req := rawRequest("OPTIONS", "parley.lab", local, callID, b.header)
			res := sendUDP(t, pl.SIPAddr, req, 2*time.Second)
			if res == nil {
				t.Fatalf("no reply to a request with a broken header (%s):\n%s", b.header, req)
			}
			if !strings.HasPrefix(string(res), "SIP/2.0 400") {
				t.Fatalf("reply to a request with a broken header (%s):\n%s\nwant SIP/2.0 400", b.header, res)
			}
			if !strings.Contains(string(res), callID) {
				t.Errorf("400 does not echo the Call-ID %s:\n%s", callID, res)
			}
		})
	}

	// RFC 3261's answers to the smaller deviations of issue 11 (the RFC
	// 4475 messages are in torture_test.go).
	options := func(callID string) string {
		return rawRequest("OPTIONS", "parley.lab", local, callID, "Max-Forwards: 70")
	}
	deviations := []struct {
		name   string
		mangle func(req string) string
		status string // "" when it must be dropped
		has    string
	}{
		{"unknown method gets 501", func(r string) string {
			return strings.ReplaceAll(r, "OPTIONS", "FROBNICATE")
		}, "SIP/2.0 501", "Allow: "},
		{"known method outside a dialog gets 405", func(r string) string {
			return strings.ReplaceAll(r, "OPTIONS", "PUBLISH")
		}, "SIP/2.0 405", "Allow: "},
		{"Content-Length past the datagram gets 400", func(r string) string {
			return strings.Replace(r, "Content-Length: 0", "Content-Length: 300", 1) + "v=0\r\n"
		}, "SIP/2.0 400", "Content-Length 300 is larger than"},
		{"negative Content-Length gets 400", func(r string) string {
			return strings.Replace(r, "Content-Length: 0", "Content-Length: -1", 1)
		}, "SIP/2.0 400", "malformed Content-Length"},
		{"NUL in a header value gets 400", func(r string) string {
			return strings.Replace(r, "Max-Forwards: 70", "Max-Forwards: 70\r\nSubject: nul\x00here", 1)
		}, "SIP/2.0 400", "control character in Subject"},
		{"SIP/3.0 gets 505", func(r string) string {
			return strings.Replace(r, "SIP/2.0\r\n", "SIP/3.0\r\n", 1)
		}, "SIP/2.0 505", ""},
		{"http: Request-URI gets 416", func(r string) string {
			return strings.Replace(r, "sip:parley.lab SIP", "http://parley.lab/ SIP", 1)
		}, "SIP/2.0 416", ""},
		{"no Via is dropped", func(r string) string {
			return strings.Replace(r, "Via:", "X-Via:", 1)
		}, "", ""},
	}
	for i, d := range deviations {
		t.Run(d.name, func(t *testing.T) {
			callID := fmt.Sprintf("deviation-%d-%d", i, time.Now().UnixNano())
			req := d.mangle(options(callID))
			wait := 2 * time.Second
			if d.status == "" {
				wait = 500 * time.Millisecond
			}
			res := sendUDP(t, pl.SIPAddr, req, wait)
			switch {
			case d.status == "" && res != nil:
				t.Fatalf("got a reply, want none:\n%s", res)
			case d.status == "":
			case res == nil:
				t.Fatalf("no reply to:\n%q\nwant %s", req, d.status)
			case !strings.HasPrefix(string(res), d.status) || !strings.Contains(string(res), d.has) || !strings.Contains(string(res), callID):
				t.Fatalf("reply:\n%s\nwant %s containing %q and the Call-ID", res, d.status, d.has)
			}
		})
	}

	t.Run("OPTIONS still answered", func(t *testing.T) {
		callID := fmt.Sprintf("options-%d", time.Now().UnixNano())
		req := rawRequest("OPTIONS", "parley.lab", local, callID, "Max-Forwards: 70", "Accept: application/sdp")
		res := sendUDP(t, pl.SIPAddr, req, 2*time.Second)
		if res == nil {
			t.Fatalf("no reply to OPTIONS after the malformed messages:\n%s", req)
		}
		if !strings.HasPrefix(string(res), "SIP/2.0 200") {
			t.Fatalf("OPTIONS after the malformed messages:\n%s\nwant SIP/2.0 200", res)
		}
	})

	if code, _ := pl.httpGet(t, "/healthz"); code != 200 {
		t.Errorf("/healthz after malformed messages: %d", code)
	}
}

// TestCheckConfig: -check-config accepts a good file and rejects a bad one
// with a message naming the bad key.
func TestCheckConfig(t *testing.T) {
	needParley(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, good, renderConfig(parleyConfig{}, 5999, 5998))
	writeFile(t, bad, renderConfig(parleyConfig{Extra: "rtp: {port_min: 7}\n"}, 5999, 5998))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, parleyBin, "-check-config", "-config", good).CombinedOutput()
	if err != nil {
		t.Errorf("-check-config on a valid file: %v\n%s", err, out)
	}
	out, err = exec.CommandContext(ctx, parleyBin, "-check-config", "-config", bad).CombinedOutput()
	if err == nil {
		t.Errorf("-check-config accepted rtp.port_min: 7:\n%s", out)
	}
	if !strings.Contains(string(out), "rtp.port_min") {
		t.Errorf("-check-config message does not name rtp.port_min:\n%s", out)
	}
}
