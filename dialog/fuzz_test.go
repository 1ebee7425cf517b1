package dialog

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzDatagram feeds whole datagrams to a running Server: its UDP
// listener, parley's own reading and parsing, the stateless hook, the
// transactions and the handlers. After each it checks that the Server
// still answers an OPTIONS from the same address, so no input may crash
// it, stop its reading or wedge its handlers. The seeds are the requests
// under testdata/ and RFC 4475's torture messages. testcalls/fuzz.sh runs
// it (and every other fuzz target) for a bounded time, with small SIP
// timers (PARLEY_TEST_SMALL_T1, see races_test.go) so that the
// transactions of a million inputs do not pile up; the normal test run
// replays the seeds.
func FuzzDatagram(f *testing.F) {
	for _, pattern := range []string{"testdata/*.sip", "../testcalls/testdata/torture/*.dat"} {
		files, _ := filepath.Glob(pattern)
		for _, name := range files {
			if data, err := os.ReadFile(name); err == nil {
				f.Add(data)
			}
		}
	}
	s := startServer(f, "sip:\n  listen: [udp://127.0.0.1:0]\nusers: []\nsecurity: {ban_after: 0}\n"+
		"routes:\n  - {match: '^9(\\d+)$', target: 'sip:$1@127.0.0.1:9'}\n")
	addr, err := net.ResolveUDPAddr("udp", s.Addr("udp"))
	if err != nil {
		f.Fatal(err)
	}
	conn, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { conn.Close() })
	buf := make([]byte, 65535)
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := conn.Write(data); err != nil {
			t.Skip("not sendable as one datagram")
		}
		ping := request("OPTIONS", "")
		callID := []byte(ping[bytes.Index([]byte(ping), []byte("Call-ID: ")):])
		callID = callID[:bytes.Index(callID, []byte("\r\n"))]
		if _, err := conn.Write([]byte(ping)); err != nil {
			t.Fatal(err)
		}
		// Generous: under the fuzzer the machine is saturated, and the
		// Server holds every INVITE's transaction for 32 s; a wedged
		// Server never answers.
		deadline := time.Now().Add(10 * time.Second)
		for {
			_ = conn.SetReadDeadline(deadline)
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("no answer to an OPTIONS after the datagram %q: %v", data, err)
			}
			if bytes.Contains(buf[:n], callID) {
				if !bytes.HasPrefix(buf[:n], []byte("SIP/2.0 200")) {
					t.Fatalf("OPTIONS after %q answered:\n%s", data, buf[:n])
				}
				return
			}
		}
	})
}
